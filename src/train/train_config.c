/* kpo train's configuration: the run, model, data and rollout tables,
 * the schema joined from every part's table, and the cross-part checks
 * that turn a config into train_settings. */
#include "train/train_config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/file_util.h"
#include "core/param_table.h"
#include "filter/filter_params.h"

#define AT(member) PARAM_AT(train_settings, member)

/* The trainer's own parts: [run], [model], [data] and [rollout], stored in
 * train_settings. Defaults follow the KPO code (algorithms.md §1) where the
 * paper is silent. */
static const param_def RUN_PARAMS[] = {
    {.name = "out", .type = CONFIG_STRING, .default_value = "runs/train",
     .help = "run directory: run.h5, checkpoints/, samples", AT(out_dir)},
    {.name = "seed", .type = CONFIG_INT, .default_value = "1", .min = 0, .max = PARAM_BIG,
     .help = "seed of the data order and every RNG stream", AT(seed)},
    {.name = "steps", .type = CONFIG_INT, .default_value = "16", .min = 1, .max = PARAM_BIG,
     .help = "training steps (rollout batches)", AT(steps)},
    {.name = "checkpoint_every", .type = CONFIG_INT, .default_value = "4", .min = 0,
     .max = PARAM_BIG, .help = "steps between checkpoints (0: only at the end)",
     AT(checkpoint_every)},
    {.name = "keep_checkpoints", .type = CONFIG_INT, .default_value = "2", .min = 1, .max = 1000,
     .help = "newest checkpoints kept", AT(keep_checkpoints)},
    {.name = "log_samples", .type = CONFIG_INT, .default_value = "8", .min = 0, .max = 1e6,
     .help = "raw log-ratio sequences recorded per step for kpo filter", AT(log_samples)},
    {.name = "dump_responses", .type = CONFIG_INT, .default_value = "0", .min = 0, .max = 1e9,
     .help = "responses of each step written to run.out/responses.jsonl, spread over the batch; "
             "0: off",
     AT(dump_responses)},
    {.name = "device", .type = CONFIG_CHOICE, .default_value = "cpu", .choices = "cpu|cuda",
     .help = "where the model runs: cpu (fp32) or cuda (bf16, a GPU per rank or shared: "
             "run.gpu_comm)",
     AT(device)},
    {.name = "gpu_comm", .type = CONFIG_CHOICE, .default_value = "auto",
     .choices = "auto|nccl|host",
     .help = "device = cuda: gradients and weights over NCCL, or host memory + MPI; auto: NCCL "
             "unless ranks share a GPU",
     AT(gpu_comm)},
    {.name = "allow_config_change", .type = CONFIG_BOOL, .default_value = "false",
     .help = "--resume: continue although keys that change the experiment differ from the "
             "checkpoint's (each change recorded in run.h5); false: refuse, naming them",
     PARAM_NOWHERE},
};

static const param_def MODEL_PARAMS[] = {
    {.name = "path", .type = CONFIG_STRING, .default_value = "",
     .help = "HF model directory (required)", AT(model_path)},
    {.name = "tokenizer", .type = CONFIG_STRING, .default_value = "",
     .help = "byte, a tokenizer directory, or empty for the model's (kpo_model.json or its files)",
     AT(tokenizer)},
    {.name = "attention", .type = CONFIG_CHOICE, .default_value = "kernel",
     .choices = "kernel|cudnn", /* gpu_attention_impl's order */
     .help = "device = cuda: training attention by kpo's own kernel, or cuDNN 9's fused "
             "attention (new, unmeasured: falls back to the kernel where cuDNN is absent or "
             "refuses the shape; docs/cuda.md)",
     AT(attention)},
    {.name = "decode_attention", .type = CONFIG_CHOICE, .default_value = "block",
     .choices = "block|split", /* gpu_decode_attention_impl's order */
     .help = "device = cuda: decode attention with a block per query and head, or split-KV "
             "flash-decoding (new, unmeasured; docs/cuda.md)",
     AT(decode_attention)},
    {.name = "prefill_attention", .type = CONFIG_CHOICE, .default_value = "decode",
     .choices = "decode|flash", /* gpu_prefill_attention_impl's order */
     .help = "device = cuda: prompts entering the KV cache through the decode attention, or "
             "through the training forward's flash kernel (new, unmeasured; docs/cuda.md)",
     AT(prefill_attention)},
    {.name = "decode_graphs", .type = CONFIG_BOOL, .default_value = "false",
     .help = "device = cuda: replay each pure decode step (one token per sequence) as a CUDA "
             "graph: fewer launches (new, unmeasured; docs/cuda.md)",
     AT(decode_graphs)},
};

static const int CHAT_TEMPLATE_VALUES[] = {CHAT_TEMPLATE_QWEN3, CHAT_TEMPLATE_QWEN3_THINKING,
                                           CHAT_TEMPLATE_RAW};

static const param_def DATA_PARAMS[] = {
    {.name = "train", .type = CONFIG_STRING, .default_value = "arith",
     .help = "training problems: arith (built-in) or a JSONL file", AT(train_data)},
    {.name = "problem_field", .type = CONFIG_STRING, .default_value = "",
     .help = "JSONL field of the problem (empty: problem, else prompt)", AT(problem_field)},
    {.name = "answer_field", .type = CONFIG_STRING, .default_value = "",
     .help = "JSONL field of the answer (empty: answer, else reward_model.ground_truth)",
     AT(answer_field)},
    {.name = "arith_difficulty", .type = CONFIG_INT, .default_value = "2", .min = 1, .max = 5,
     .help = "arith: difficulty 1-5", AT(arith_difficulty)},
    {.name = "arith_problems", .type = CONFIG_INT, .default_value = "5000", .min = 1, .max = 1e8,
     .help = "arith: training problems", AT(arith_problems)},
    {.name = "prompt_template", .type = CONFIG_STRING, .default_value = "dapo",
     .help = "dapo, kpo, boxed, raw, or a text with {problem}", AT(prompt_template)},
    {.name = "chat_template", .type = CONFIG_CHOICE, .default_value = "qwen3",
     .choices = "qwen3|qwen3-thinking|raw", .values = CHAT_TEMPLATE_VALUES,
     .help = "how the prompt is framed for the model", AT(chat_template)},
    {.name = "max_prompt_tokens", .type = CONFIG_INT, .default_value = "1024", .min = 1,
     .max = 1e7, .help = "longer prompts are skipped (counted in the run file)",
     AT(max_prompt_tokens)},
};

static const param_def ROLLOUT_PARAMS[] = {
    {.name = "ranks", .type = CONFIG_INT, .default_value = "0", .min = 0, .max = 1e6,
     .help = "rollout ranks (the last ones); 0: every rank does both roles", AT(rollout_ranks)},
    {.name = "prompts_per_step", .type = CONFIG_INT, .default_value = "32", .min = 1, .max = 1e7,
     .help = "prompts per rollout batch", AT(prompts_per_step)},
    {.name = "group_size", .type = CONFIG_INT, .default_value = "8", .min = 2, .max = 1e4,
     .help = "G responses per prompt", AT(learner.group_size)},
    {.name = "temperature", .type = CONFIG_DOUBLE, .default_value = "1.0", .min = 0, .max = 100,
     .help = "sampling temperature", AT(sampler.temperature)},
    {.name = "top_p", .type = CONFIG_DOUBLE, .default_value = "1.0", .min = 1e-9, .max = 1,
     .help = "nucleus mass", AT(sampler.top_p)},
    {.name = "stop", .type = CONFIG_STRING, .default_value = "model",
     .help = "what ends a response: model (end-of-text + generation_config.json's eos ids, as the "
             "paper's vLLM rollout), chat (+ <|im_end|>), or ids/tokens 'a,b'",
     AT(stop)},
    {.name = "max_new_tokens", .type = CONFIG_INT, .default_value = "4096", .min = 1, .max = 1e7,
     .help = "response length cap", AT(max_new_tokens)},
    {.name = "max_batch", .type = CONFIG_INT, .default_value = "64", .min = 1, .max = 1e6,
     .help = "sequences decoded together per rank (KV-cache slots)", AT(max_batch)},
    {.name = "schedule", .type = CONFIG_CHOICE, .default_value = "waves",
     .choices = "waves|refill", /* rollout_schedule's order */
     .help = "waves: max_batch responses decoded to their ends before the next ones start; "
             "refill: a slot whose response ended takes the next prompt at once (same tokens)",
     AT(schedule)},
    {.name = "prefill_tokens", .type = CONFIG_INT, .default_value = "0", .min = 0, .max = 1e9,
     .help = "most prompt tokens one decode step prefills (the rest wait a step; same tokens): "
             "bounds the activations beside the KV cache; 0: every admitted prompt at once",
     AT(prefill_tokens)},
    {.name = "reward", .type = CONFIG_CHOICE, .default_value = "dapo",
     .choices = "dapo|boxed|kpo|program", /* reward_kind's order */
     .help = "exact-match reward, or program: rollout.reward_program grades", AT(reward)},
    {.name = "reward_program", .type = CONFIG_STRING, .default_value = "",
     .help = "reward = program: the grader's command line, run by /bin/sh once per rollout rank "
             "(docs/text.md)",
     AT(reward_program)},
    {.name = "reward_timeout", .type = CONFIG_DOUBLE, .default_value = "30", .min = 1e-3,
     .max = 1e6, .help = "reward = program: seconds to wait for each answer", AT(reward_timeout)},
    {.name = "reward_binary", .type = CONFIG_BOOL, .default_value = "true",
     .help = "score 1/0 (the paper) rather than dapo's +1/-1 (same advantages)",
     AT(reward_binary)},
};

/* learner.recompute's values, in its choices' order (train_recompute). */
static const int RECOMPUTE_VALUES[] = {TRAIN_RECOMPUTE_ON, TRAIN_RECOMPUTE_OFF,
                                       TRAIN_RECOMPUTE_AUTO};

/* [learner] keys of the trainer rather than the objective. */
static const param_def TRAINER_LEARNER_PARAMS[] = {
    {.name = "recompute", .type = CONFIG_CHOICE, .default_value = "true",
     .choices = "true|false|auto", .values = RECOMPUTE_VALUES,
     .help = "device = cuda: keep each layer's input only and redo the layer in backward; "
             "auto: only where the memory plan without it does not fit (or would take KV-cache "
             "slots from the rollout)",
     AT(recompute)},
};

#define ROWS(table) table, sizeof table / sizeof table[0], NULL

/* The schema: each part's table under its section, in this order; base:
 * where the part's struct lies in train_settings. */
typedef struct train_part {
    const char *section;
    const param_def *rows; /* n rows, or NULL: table() gives them */
    size_t n;
    const param_def *(*table)(size_t *n_rows);
    size_t base;
} train_part;

static const param_def *filter_params(size_t *n_rows)
{
    *n_rows = FILTER_PARAMS_LEN;
    return FILTER_PARAMS;
}

static const train_part PARTS[] = {
    {"run", ROWS(RUN_PARAMS), 0},
    {"model", ROWS(MODEL_PARAMS), 0},
    {"data", ROWS(DATA_PARAMS), 0},
    {"rollout", ROWS(ROLLOUT_PARAMS), 0},
    {"learner", NULL, 0, learner_params, offsetof(train_settings, learner)},
    {"learner", ROWS(TRAINER_LEARNER_PARAMS), 0},
    {"filter", NULL, 0, filter_params, offsetof(train_settings, learner.objective.filter)},
    {"optim", NULL, 0, adamw_params, offsetof(train_settings, optim)},
};
enum { N_PARTS = sizeof PARTS / sizeof PARTS[0], MAX_KEYS = 256 };

static const param_def *part_rows(const train_part *part, size_t *n)
{
    if (part->table)
        return part->table(n);
    *n = part->n;
    return part->rows;
}

static config_key schema[MAX_KEYS];
static size_t schema_len;

const config_key *train_schema(void)
{
    if (!schema_len)
        for (size_t p = 0; p < N_PARTS; p++) {
            size_t n;
            const param_def *rows = part_rows(&PARTS[p], &n);
            if (schema_len + n > MAX_KEYS)
                abort(); /* MAX_KEYS is too small for the tables */
            param_table_schema(PARTS[p].section, rows, n, schema + schema_len);
            schema_len += n;
        }
    return schema;
}

size_t train_schema_len(void)
{
    train_schema();
    return schema_len;
}

static int check_paths(const train_settings *s, kpo_error *err)
{
    if (!s->model_path[0])
        return error_set(err, "model.path: required (an HF model directory)");
    char config_json[4200];
    snprintf(config_json, sizeof config_json, "%s/config.json", s->model_path);
    if (!file_exists(config_json))
        return error_set(err, "model.path = '%s': no config.json there", s->model_path);
    if (strcmp(s->train_data, "arith") != 0 && !file_exists(s->train_data))
        return error_set(err, "data.train = '%s': no such file", s->train_data);
    if (s->tokenizer[0] && strcmp(s->tokenizer, "byte") != 0 && !file_exists(s->tokenizer))
        return error_set(err, "model.tokenizer = '%s': no such directory", s->tokenizer);
    return KPO_OK;
}

/* The batch must split evenly over the ranks of each role. */
static int check_batch(const train_settings *s, int world_size, kpo_error *err)
{
    const int M = s->learner.minibatches, G = s->learner.group_size;
    int rollout_ranks = s->rollout_ranks ? s->rollout_ranks : world_size;
    int learners = s->rollout_ranks ? world_size - s->rollout_ranks : world_size;
    if (s->rollout_ranks >= world_size && s->rollout_ranks > 0)
        return error_set(err, "rollout.ranks = %d: needs at least one learner among the %d "
                              "rank(s) (use 0 to colocate)", s->rollout_ranks, world_size);
    if (s->prompts_per_step % rollout_ranks != 0)
        return error_set(err, "rollout.prompts_per_step = %lld: not divisible by the %d rollout "
                              "rank(s)", (long long)s->prompts_per_step, rollout_ranks);
    if (s->prompts_per_step % M != 0)
        return error_set(err, "learner.minibatches = %d: must divide rollout.prompts_per_step = "
                              "%lld so mini-batches hold whole groups",
                         M, (long long)s->prompts_per_step);
    int dp = s->learner.balance_dp_size > 0 ? s->learner.balance_dp_size : learners;
    if (s->learner.minibatch_order == MINIBATCH_ORDER_BALANCED &&
        s->prompts_per_step * G % ((int64_t)dp * M) != 0)
        return error_set(err, "learner.balance_dp_size = %d: %lld responses do not split into "
                              "%d rank(s) x %d mini-batch(es) of equal size, as verl's "
                              "balance_batch needs", dp, (long long)(s->prompts_per_step * G),
                         dp, M);
    if ((s->prompts_per_step / M) * G % learners != 0)
        return error_set(err, "learner.minibatches = %d: a mini-batch of %lld responses does not "
                              "split over %d learner rank(s)",
                         M, (long long)(s->prompts_per_step / M * G), learners);
    return KPO_OK;
}

int train_settings_from_config(const config *cfg, int world_size, train_settings *s,
                               kpo_error *err)
{
    memset(s, 0, sizeof *s);
    learner_config *l = &s->learner;
    objective_config *o = &l->objective;
    objective_config_default(o);
    s->optim = adamw_config_default();
    for (size_t p = 0; p < N_PARTS; p++) {
        size_t n;
        const param_def *rows = part_rows(&PARTS[p], &n);
        if (param_table_load(cfg, PARTS[p].section, rows, n, (char *)s + PARTS[p].base, err) !=
            KPO_OK)
            return KPO_ERR;
    }

    /* What one part's keys mean for another's settings. */
    l->log_samples = s->log_samples;
    filter_config_resolve(&o->filter);
    if (s->reward == REWARD_PROGRAM && !s->reward_program[0])
        return error_set(err, "rollout.reward = program: set rollout.reward_program to the "
                              "grader's command line");
    if (strcmp(config_get_string(cfg, "filter.implementation"), "official") == 0) {
        /* The official code has one filter: no saturation, kpo's objective. */
        if (o->filter.mode != FILTER_MODE_NONE || o->kind != OBJECTIVE_KPO)
            return error_set(err, "filter.implementation = official: needs learner.objective = "
                                  "kpo and filter.mode = none (the official code has no "
                                  "saturation)");
        const int64_t width = config_get_int(cfg, "filter.official_width");
        o->official_width = width > 0 ? width : s->max_new_tokens;
    }
    if (o->dual_clip != 0 && o->dual_clip <= 1)
        return error_set(err, "learner.dual_clip = %g: must be 0 (off) or > 1", o->dual_clip);

    adamw_config *a = &s->optim;
    if (a->schedule == ADAMW_SCHEDULE_VERL) {
        /* verl: num_warmup_steps = int(ratio * total_training_steps), in
         * scheduler steps, one per rollout batch of M updates. */
        const int64_t total = config_get_int(cfg, "optim.schedule_steps");
        a->updates_per_rollout = s->learner.minibatches;
        a->warmup_steps = (int64_t)(config_get_double(cfg, "optim.warmup_ratio") *
                                    (double)(total > 0 ? total : s->steps));
    }

    if (check_batch(s, world_size, err) != KPO_OK || check_paths(s, err) != KPO_OK)
        return KPO_ERR;
    return KPO_OK;
}

/* ---- resume: the trainer state and what a resumed run may change ---- */

/* Harmless: the run's length, where and how often things are written, and
 * how the same computation is scheduled over ranks, micro-batches and
 * KV-cache slots (results equal up to float summation order). The paths
 * (model.path, model.tokenizer, data.train) may move: what they feed the
 * run is compared through the prompts' fingerprint ("data") instead. */
static const char *const HARMLESS_KEYS[] = {
    "run.out",           "run.steps",           "run.checkpoint_every", "run.keep_checkpoints",
    "run.log_samples",   "run.dump_responses",  "run.gpu_comm",         "run.allow_config_change",
    "model.path",        "model.tokenizer",     "data.train",           "rollout.ranks",
    "rollout.max_batch", "rollout.reward_timeout", "learner.micro_batch_tokens",
    "learner.recompute", "model.attention",   "model.decode_attention", "rollout.schedule",
    "model.prefill_attention", "rollout.prefill_tokens", "model.decode_graphs",
};

int train_config_harmless(const char *dotted)
{
    for (size_t k = 0; k < sizeof HARMLESS_KEYS / sizeof HARMLESS_KEYS[0]; k++)
        if (strcmp(HARMLESS_KEYS[k], dotted) == 0)
            return 1;
    return 0;
}

char *train_state_json(const config *cfg, int64_t step, const train_data_cursor *cursor)
{
    cJSON *root = cJSON_CreateObject(), *data = cJSON_CreateObject(),
          *values = cJSON_CreateObject();
    char hex[17], key[256];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)cursor->prompts_hash);
    cJSON_AddNumberToObject(root, "step", (double)step);
    cJSON_AddNumberToObject(root, "seed", (double)config_get_int(cfg, "run.seed"));
    cJSON_AddNumberToObject(data, "position", (double)cursor->position);
    cJSON_AddNumberToObject(data, "epoch", (double)cursor->epoch);
    cJSON_AddNumberToObject(data, "offset", (double)cursor->offset);
    cJSON_AddNumberToObject(data, "problems", (double)cursor->problems);
    cJSON_AddStringToObject(data, "prompts_xxh64", hex);
    cJSON_AddItemToObject(root, "data", data);
    for (size_t k = 0; k < cfg->n_keys; k++) {
        snprintf(key, sizeof key, "%s.%s", cfg->schema[k].section, cfg->schema[k].name);
        cJSON_AddStringToObject(values, key, cfg->values[k]);
    }
    cJSON_AddItemToObject(root, "config", values);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    return text;
}

void train_state_check_free(train_state_check *check)
{
    for (size_t k = 0; k < check->n_changes; k++) {
        free(check->changes[k].before);
        free(check->changes[k].after);
    }
    free(check->changes);
    memset(check, 0, sizeof *check);
}

static int add_change(train_state_check *check, const char *key, const char *before,
                      const char *after)
{
    train_config_change *grown =
        realloc(check->changes, (check->n_changes + 1) * sizeof *check->changes);
    if (!grown)
        return KPO_ERR;
    check->changes = grown;
    train_config_change *c = &check->changes[check->n_changes];
    snprintf(c->key, sizeof c->key, "%s", key);
    c->before = strdup(before);
    c->after = strdup(after);
    c->harmless = train_config_harmless(key);
    check->n_changes++;
    check->n_refused += !c->harmless;
    return c->before && c->after ? KPO_OK : KPO_ERR;
}

/* An integer field of obj, whole and >= 0; -1 when absent or not one. */
static int64_t json_count(const cJSON *obj, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!cJSON_IsNumber(item) || item->valuedouble < 0 || item->valuedouble > 9e15 ||
        item->valuedouble != (double)(int64_t)item->valuedouble)
        return -1;
    return (int64_t)item->valuedouble;
}

/* "data": the cursor, consistent with the step and the checkpoint's
 * prompts_per_step. */
static int check_cursor(const char *path, const cJSON *data, int64_t step, int64_t per_step,
                        train_data_cursor *saved, kpo_error *err)
{
    static const char *const FIELDS[] = {"position", "epoch", "offset", "problems"};
    int64_t *slots[] = {&saved->position, &saved->epoch, &saved->offset, &saved->problems};
    if (!cJSON_IsObject(data))
        return error_set(err, "%s: field 'data' is missing or not an object", path);
    for (int k = 0; k < 4; k++)
        if ((*slots[k] = json_count(data, FIELDS[k])) < 0)
            return error_set(err, "%s: field 'data.%s' is missing or not a count", path,
                             FIELDS[k]);
    const cJSON *hex = cJSON_GetObjectItemCaseSensitive(data, "prompts_xxh64");
    char *end = NULL;
    if (!cJSON_IsString(hex) || strlen(hex->valuestring) != 16 ||
        (saved->prompts_hash = strtoull(hex->valuestring, &end, 16), *end != '\0'))
        return error_set(err, "%s: field 'data.prompts_xxh64' is missing or not 16 hex digits",
                         path);
    if (saved->problems == 0 || saved->position != step * per_step ||
        saved->epoch != saved->position / saved->problems ||
        saved->offset != saved->position % saved->problems)
        return error_set(err, "%s: field 'data' (position %lld, epoch %lld, offset %lld of %lld "
                              "problems) does not match step %lld x %lld prompts per step",
                         path, (long long)saved->position, (long long)saved->epoch,
                         (long long)saved->offset, (long long)saved->problems, (long long)step,
                         (long long)per_step);
    return KPO_OK;
}

/* Every key of cfg against the checkpoint's "config". */
static int compare_config(const char *path, const cJSON *values, const config *cfg,
                          train_state_check *check, kpo_error *err)
{
    for (const cJSON *item = values->child; item; item = item->next)
        if (!cJSON_IsString(item))
            return error_set(err, "%s: field 'config.%s' is not a string", path, item->string);
    for (size_t k = 0; k < cfg->n_keys; k++) {
        const config_key *key = &cfg->schema[k];
        char dotted[256];
        snprintf(dotted, sizeof dotted, "%s.%s", key->section, key->name);
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(values, dotted);
        /* A key newer than the checkpoint: the run had its default. */
        const char *before = item ? item->valuestring : key->default_value;
        if (!config_values_equal(key, before, cfg->values[k]) &&
            add_change(check, dotted, before, cfg->values[k]) != KPO_OK)
            return error_set(err, "%s: out of memory", path);
    }
    return KPO_OK;
}

static int check_state(const char *path, const cJSON *root, int64_t step, const config *cfg,
                       const train_data_cursor *cursor, int legacy_ok, train_state_check *check,
                       kpo_error *err)
{
    if (!cJSON_IsObject(root))
        return error_set(err, "%s: not valid JSON (an object)", path);
    const int64_t saved_step = json_count(root, "step");
    if (saved_step < 0)
        return error_set(err, "%s: field 'step' is missing or not a step count", path);
    if (saved_step != step)
        return error_set(err, "%s: field 'step' is %lld but the checkpoint is step %lld", path,
                         (long long)saved_step, (long long)step);
    if (json_count(root, "seed") < 0)
        return error_set(err, "%s: field 'seed' is missing or not a seed", path);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
    const cJSON *values = cJSON_GetObjectItemCaseSensitive(root, "config");
    if (legacy_ok && !data && !values) {
        check->legacy = 1;
        return KPO_OK;
    }
    if (!cJSON_IsObject(values))
        return error_set(err, "%s: field 'config' is missing or not an object", path);
    const cJSON *per_step = cJSON_GetObjectItemCaseSensitive(values, "rollout.prompts_per_step");
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(values, "run.seed");
    if (!cJSON_IsString(per_step) || !cJSON_IsString(seed))
        return error_set(err, "%s: field 'config' lacks rollout.prompts_per_step or run.seed",
                         path);
    if (strtoll(seed->valuestring, NULL, 10) != json_count(root, "seed"))
        return error_set(err, "%s: field 'seed' differs from config's run.seed = %s", path,
                         seed->valuestring);
    train_data_cursor saved;
    if (check_cursor(path, data, step, strtoll(per_step->valuestring, NULL, 10), &saved, err) !=
        KPO_OK)
        return KPO_ERR;
    if (compare_config(path, values, cfg, check, err) != KPO_OK)
        return KPO_ERR;
    if (saved.problems != cursor->problems || saved.prompts_hash != cursor->prompts_hash) {
        char before[96], after[96];
        snprintf(before, sizeof before, "%lld prompts xxh64 %016llx", (long long)saved.problems,
                 (unsigned long long)saved.prompts_hash);
        snprintf(after, sizeof after, "%lld prompts xxh64 %016llx", (long long)cursor->problems,
                 (unsigned long long)cursor->prompts_hash);
        if (add_change(check, "data", before, after) != KPO_OK)
            return error_set(err, "%s: out of memory", path);
    }
    return KPO_OK;
}

int train_state_check_file(const char *path, int64_t step, const config *cfg,
                           const train_data_cursor *cursor, int legacy_ok,
                           train_state_check *check, kpo_error *err)
{
    memset(check, 0, sizeof *check);
    char *text;
    if (file_read_all(path, &text, NULL, err) != KPO_OK)
        return KPO_ERR;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root)
        return error_set(err, "%s: not valid JSON", path);
    int status = check_state(path, root, step, cfg, cursor, legacy_ok, check, err);
    cJSON_Delete(root);
    if (status != KPO_OK)
        train_state_check_free(check);
    return status;
}

void train_config_changes_describe(const train_state_check *check, int harmless, char *out,
                                   size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t k = 0; k < check->n_changes && used < size; k++) {
        const train_config_change *c = &check->changes[k];
        if (c->harmless != harmless)
            continue;
        used += (size_t)snprintf(out + used, size - used, "%s%s: %.60s -> %.60s",
                                 used ? "; " : "", c->key, c->before[0] ? c->before : "''",
                                 c->after[0] ? c->after : "''");
    }
}
