#include "train/train_config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/file_util.h"

#define BIG 1e15

/* Defaults follow the KPO code (algorithms.md §1) where the paper is silent. */
const config_key TRAIN_SCHEMA[] = {
    {"run", "out", CONFIG_STRING, "runs/train", 0, 0, NULL,
     "run directory: run.h5, checkpoints/, samples"},
    {"run", "seed", CONFIG_INT, "1", 0, BIG, NULL, "seed of the data order and every RNG stream"},
    {"run", "steps", CONFIG_INT, "16", 1, BIG, NULL, "training steps (rollout batches)"},
    {"run", "checkpoint_every", CONFIG_INT, "4", 0, BIG, NULL,
     "steps between checkpoints (0: only at the end)"},
    {"run", "keep_checkpoints", CONFIG_INT, "2", 1, 1000, NULL, "newest checkpoints kept"},
    {"run", "log_samples", CONFIG_INT, "8", 0, 1e6, NULL,
     "raw log-ratio sequences recorded per step for kpo filter"},
    {"run", "dump_responses", CONFIG_INT, "0", 0, 1e9, NULL,
     "responses of each step written to run.out/responses.jsonl, spread over the batch; 0: off"},
    {"run", "device", CONFIG_CHOICE, "cpu", 0, 0, "cpu|cuda",
     "where the model runs: cpu (fp32) or cuda (bf16, a GPU per rank or shared: run.gpu_comm)"},
    {"run", "gpu_comm", CONFIG_CHOICE, "auto", 0, 0, "auto|nccl|host",
     "device = cuda: gradients and weights over NCCL, or host memory + MPI; auto: NCCL unless "
     "ranks share a GPU"},
    {"run", "allow_config_change", CONFIG_BOOL, "false", 0, 0, NULL,
     "--resume: continue although keys that change the experiment differ from the checkpoint's "
     "(each change recorded in run.h5); false: refuse, naming them"},
    {"model", "path", CONFIG_STRING, "", 0, 0, NULL, "HF model directory (required)"},
    {"model", "tokenizer", CONFIG_STRING, "", 0, 0, NULL,
     "byte, a tokenizer directory, or empty for the model's (kpo_model.json or its files)"},
    {"data", "train", CONFIG_STRING, "arith", 0, 0, NULL,
     "training problems: arith (built-in) or a JSONL file"},
    {"data", "problem_field", CONFIG_STRING, "", 0, 0, NULL,
     "JSONL field of the problem (empty: problem, else prompt)"},
    {"data", "answer_field", CONFIG_STRING, "", 0, 0, NULL,
     "JSONL field of the answer (empty: answer, else reward_model.ground_truth)"},
    {"data", "arith_difficulty", CONFIG_INT, "2", 1, 5, NULL, "arith: difficulty 1-5"},
    {"data", "arith_problems", CONFIG_INT, "5000", 1, 1e8, NULL, "arith: training problems"},
    {"data", "prompt_template", CONFIG_STRING, "dapo", 0, 0, NULL,
     "dapo, kpo, boxed, raw, or a text with {problem}"},
    {"data", "chat_template", CONFIG_CHOICE, "qwen3", 0, 0, "qwen3|qwen3-thinking|raw",
     "how the prompt is framed for the model"},
    {"data", "max_prompt_tokens", CONFIG_INT, "1024", 1, 1e7, NULL,
     "longer prompts are skipped (counted in the run file)"},
    {"rollout", "ranks", CONFIG_INT, "0", 0, 1e6, NULL,
     "rollout ranks (the last ones); 0: every rank does both roles"},
    {"rollout", "prompts_per_step", CONFIG_INT, "32", 1, 1e7, NULL, "prompts per rollout batch"},
    {"rollout", "group_size", CONFIG_INT, "8", 2, 1e4, NULL, "G responses per prompt"},
    {"rollout", "temperature", CONFIG_DOUBLE, "1.0", 0, 100, NULL, "sampling temperature"},
    {"rollout", "top_p", CONFIG_DOUBLE, "1.0", 1e-9, 1, NULL, "nucleus mass"},
    {"rollout", "stop", CONFIG_STRING, "model", 0, 0, NULL,
     "what ends a response: model (end-of-text + generation_config.json's eos ids, as the "
     "paper's vLLM rollout), chat (+ <|im_end|>), or ids/tokens 'a,b'"},
    {"rollout", "max_new_tokens", CONFIG_INT, "4096", 1, 1e7, NULL, "response length cap"},
    {"rollout", "max_batch", CONFIG_INT, "64", 1, 1e6, NULL,
     "sequences decoded together per rank (KV-cache slots)"},
    {"rollout", "reward", CONFIG_CHOICE, "dapo", 0, 0, "dapo|boxed|kpo|program",
     "exact-match reward, or program: rollout.reward_program grades"},
    {"rollout", "reward_program", CONFIG_STRING, "", 0, 0, NULL,
     "reward = program: the grader's command line, run by /bin/sh once per rollout rank "
     "(docs/text.md)"},
    {"rollout", "reward_timeout", CONFIG_DOUBLE, "30", 1e-3, 1e6, NULL,
     "reward = program: seconds to wait for each answer"},
    {"rollout", "reward_binary", CONFIG_BOOL, "true", 0, 0, NULL,
     "score 1/0 (the paper) rather than dapo's +1/-1 (same advantages)"},
    {"learner", "objective", CONFIG_CHOICE, "kpo", 0, 0, "kpo|grpo|gspo", "policy objective"},
    {"learner", "minibatches", CONFIG_INT, "4", 1, 1e6, NULL,
     "optimizer steps per rollout batch (M)"},
    {"learner", "clip", CONFIG_BOOL, "true", 0, 0, NULL, "clipped surrogate"},
    {"learner", "clip_low", CONFIG_DOUBLE, "3e-4", 0, 0.999999, NULL, "eps_low"},
    {"learner", "clip_high", CONFIG_DOUBLE, "4e-4", 0, 100, NULL, "eps_high"},
    {"learner", "dual_clip", CONFIG_DOUBLE, "0", 0, 1e6, NULL, "grpo: dual-clip c > 1, 0 off"},
    {"learner", "loss_aggregation", CONFIG_CHOICE, "seq-mean-token-mean", 0, 0,
     "token-mean|seq-mean-token-mean|seq-mean-token-sum", "loss aggregation"},
    {"learner", "norm_adv_by_std", CONFIG_BOOL, "true", 0, 0, NULL,
     "GRPO (true) or Dr. GRPO (false) advantages"},
    {"learner", "adv_eps", CONFIG_DOUBLE, "1e-6", 0, 1, NULL, "advantage std epsilon"},
    {"learner", "log_ratio_max", CONFIG_DOUBLE, "10", 1e-9, 1e6, NULL,
     "kpo/gspo: clamp of the log-ratio"},
    {"learner", "micro_batch_tokens", CONFIG_INT, "0", 0, 1e12, NULL,
     "forward/backward over micro-batches of whole sequences up to this many tokens; 0: "
     "a learner's share at once"},
    {"learner", "minibatch_order", CONFIG_CHOICE, "prompt", 0, 0, "prompt|balanced",
     "what a mini-batch holds: whole groups in rollout order, or verl's balance_batch order "
     "(docs/minibatch-order.md)"},
    {"learner", "balance_dp_size", CONFIG_INT, "0", 0, 1e6, NULL,
     "minibatch_order = balanced: the verl data-parallel ranks mimicked (the paper's script: "
     "2); 0: the learner ranks"},
    {"learner", "nonfinite_update", CONFIG_CHOICE, "skip", 0, 0, "skip|fail",
     "an update whose loss or gradient norm is not finite: skip it (verl's actor; counted in "
     "skipped_updates) or end the run"},
    {"learner", "recompute", CONFIG_BOOL, "true", 0, 0, NULL,
     "device = cuda: keep each layer's input only and redo the layer in backward"},
    {"filter", "q", CONFIG_DOUBLE, "1e-6", 0, BIG, NULL, "process noise Q"},
    {"filter", "v", CONFIG_DOUBLE, "1", 1e-300, BIG, NULL, "measurement noise V"},
    {"filter", "rho0", CONFIG_DOUBLE, "0", -BIG, BIG, NULL, "initial state"},
    {"filter", "p0", CONFIG_DOUBLE, "0", 0, BIG, NULL, "initial variance"},
    {"filter", "implementation", CONFIG_CHOICE, "exact", 0, 0, "exact|official",
     "exact recursion, or the official KPO code's float32 parallel filter over responses padded "
     "to official_width (docs/filter.md; kpo, mode none)"},
    {"filter", "official_width", CONFIG_INT, "0", 0, 1 << 24, NULL,
     "implementation = official: the padded width (verl's response_length); 0: "
     "rollout.max_new_tokens"},
    {"filter", "mode", CONFIG_CHOICE, "none", 0, 0, "none|sigma|sqrtv|iterated|adaptive",
     "innovation saturation"},
    {"filter", "kappa", CONFIG_DOUBLE, "3", 1e-300, BIG, NULL, "saturation multiplier"},
    {"filter", "iterations", CONFIG_INT, "3", 1, 1000, NULL, "iterated: iterations"},
    {"filter", "c_state", CONFIG_DOUBLE, "0", 0, BIG, NULL,
     "iterated: state threshold (0: same as kappa)"},
    {"filter", "step_size", CONFIG_DOUBLE, "1", 1e-9, 1.999999, NULL, "iterated: step size"},
    {"filter", "scale_covariance", CONFIG_BOOL, "true", 0, 0, NULL, "iterated: scaled P update"},
    {"filter", "lambda_bound", CONFIG_DOUBLE, "0.9", 0, 0.999999, NULL, "adaptive: bound factor"},
    {"filter", "lambda_energy", CONFIG_DOUBLE, "0.9", 0, 0.999999, NULL,
     "adaptive: energy factor"},
    {"optim", "lr", CONFIG_DOUBLE, "1e-6", 0, 10, NULL, "peak learning rate"},
    {"optim", "lr_schedule", CONFIG_CHOICE, "updates", 0, 0, "updates|verl",
     "what the warmup counts: optimizer updates (warmup_steps), or rollout steps as verl's "
     "scheduler does (int(warmup_ratio x schedule_steps), lr 0 through the first batch)"},
    {"optim", "warmup_steps", CONFIG_INT, "3", 0, BIG, NULL,
     "lr_schedule = updates: optimizer updates of linear warmup"},
    {"optim", "warmup_ratio", CONFIG_DOUBLE, "0.05", 0, 1, NULL,
     "lr_schedule = verl: verl's lr_warmup_steps_ratio"},
    {"optim", "schedule_steps", CONFIG_INT, "0", 0, BIG, NULL,
     "lr_schedule = verl: the rollout steps verl schedules over (total_training_steps); "
     "0: run.steps"},
    {"optim", "weight_decay", CONFIG_DOUBLE, "0.1", 0, 10, NULL, "decoupled weight decay"},
    {"optim", "beta1", CONFIG_DOUBLE, "0.9", 0, 0.999999, NULL, "AdamW beta1"},
    {"optim", "beta2", CONFIG_DOUBLE, "0.999", 0, 0.999999999, NULL, "AdamW beta2"},
    {"optim", "eps", CONFIG_DOUBLE, "1e-8", 1e-30, 1, NULL, "AdamW epsilon"},
    {"optim", "grad_clip", CONFIG_DOUBLE, "1.0", 0, BIG, NULL, "global norm clip (0: off)"},
};
const size_t TRAIN_SCHEMA_LEN = sizeof TRAIN_SCHEMA / sizeof TRAIN_SCHEMA[0];

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
    s->out_dir = config_get_string(cfg, "run.out");
    s->seed = (uint64_t)config_get_int(cfg, "run.seed");
    s->steps = config_get_int(cfg, "run.steps");
    s->checkpoint_every = config_get_int(cfg, "run.checkpoint_every");
    s->keep_checkpoints = (int)config_get_int(cfg, "run.keep_checkpoints");
    s->log_samples = config_get_int(cfg, "run.log_samples");
    s->dump_responses = config_get_int(cfg, "run.dump_responses");
    if (model_device_parse(config_get_string(cfg, "run.device"), &s->device, err) != KPO_OK)
        return error_prefix(err, "run.");
    if (comm_gpu_mode_parse(config_get_string(cfg, "run.gpu_comm"), &s->gpu_comm, err) != KPO_OK)
        return error_prefix(err, "run.");
    s->model_path = config_get_string(cfg, "model.path");
    s->tokenizer = config_get_string(cfg, "model.tokenizer");
    s->train_data = config_get_string(cfg, "data.train");
    s->problem_field = config_get_string(cfg, "data.problem_field");
    s->answer_field = config_get_string(cfg, "data.answer_field");
    s->arith_difficulty = (int)config_get_int(cfg, "data.arith_difficulty");
    s->arith_problems = config_get_int(cfg, "data.arith_problems");
    s->prompt_template = config_get_string(cfg, "data.prompt_template");
    s->max_prompt_tokens = config_get_int(cfg, "data.max_prompt_tokens");
    s->rollout_ranks = (int)config_get_int(cfg, "rollout.ranks");
    s->prompts_per_step = config_get_int(cfg, "rollout.prompts_per_step");
    s->sampler.temperature = config_get_double(cfg, "rollout.temperature");
    s->sampler.top_p = config_get_double(cfg, "rollout.top_p");
    s->max_new_tokens = config_get_int(cfg, "rollout.max_new_tokens");
    s->stop = config_get_string(cfg, "rollout.stop");
    s->max_batch = config_get_int(cfg, "rollout.max_batch");
    s->reward_binary = config_get_bool(cfg, "rollout.reward_binary");
    s->reward_program = config_get_string(cfg, "rollout.reward_program");
    s->reward_timeout = config_get_double(cfg, "rollout.reward_timeout");
    if (chat_template_parse(config_get_string(cfg, "data.chat_template"), &s->chat_template,
                            err) != KPO_OK ||
        reward_kind_parse(config_get_string(cfg, "rollout.reward"), &s->reward, err) != KPO_OK)
        return KPO_ERR;
    if (s->reward == REWARD_PROGRAM && !s->reward_program[0])
        return error_set(err, "rollout.reward = program: set rollout.reward_program to the "
                              "grader's command line");

    learner_config *l = &s->learner;
    objective_config *o = &l->objective;
    objective_config_default(o);
    l->minibatches = (int)config_get_int(cfg, "learner.minibatches");
    l->group_size = (int)config_get_int(cfg, "rollout.group_size");
    l->norm_adv_by_std = config_get_bool(cfg, "learner.norm_adv_by_std");
    l->adv_eps = config_get_double(cfg, "learner.adv_eps");
    l->log_samples = s->log_samples;
    l->micro_batch_tokens = config_get_int(cfg, "learner.micro_batch_tokens");
    l->balance_dp_size = (int)config_get_int(cfg, "learner.balance_dp_size");
    l->fail_nonfinite = strcmp(config_get_string(cfg, "learner.nonfinite_update"), "fail") == 0;
    if (minibatch_order_parse(config_get_string(cfg, "learner.minibatch_order"),
                              &l->minibatch_order, err) != KPO_OK)
        return error_prefix(err, "learner.");
    s->recompute = config_get_bool(cfg, "learner.recompute");
    if (objective_kind_parse(config_get_string(cfg, "learner.objective"), &o->kind, err) != KPO_OK ||
        loss_aggregation_parse(config_get_string(cfg, "learner.loss_aggregation"),
                               &o->aggregation, err) != KPO_OK)
        return KPO_ERR;
    o->clip = config_get_bool(cfg, "learner.clip");
    o->clip_low = config_get_double(cfg, "learner.clip_low");
    o->clip_high = config_get_double(cfg, "learner.clip_high");
    o->dual_clip = config_get_double(cfg, "learner.dual_clip");
    o->log_ratio_max = config_get_double(cfg, "learner.log_ratio_max");
    filter_config *f = &o->filter;
    f->q = config_get_double(cfg, "filter.q");
    f->v = config_get_double(cfg, "filter.v");
    f->rho0 = config_get_double(cfg, "filter.rho0");
    f->p0 = config_get_double(cfg, "filter.p0");
    f->kappa = config_get_double(cfg, "filter.kappa");
    f->iterations = (int)config_get_int(cfg, "filter.iterations");
    double c_state = config_get_double(cfg, "filter.c_state");
    f->c_state = c_state > 0 ? c_state : f->kappa;
    f->step_size = config_get_double(cfg, "filter.step_size");
    f->scale_covariance = config_get_bool(cfg, "filter.scale_covariance");
    f->lambda_bound = config_get_double(cfg, "filter.lambda_bound");
    f->lambda_energy = config_get_double(cfg, "filter.lambda_energy");
    if (filter_mode_parse(config_get_string(cfg, "filter.mode"), &f->mode, err) != KPO_OK)
        return error_prefix(err, "filter.");
    if (strcmp(config_get_string(cfg, "filter.implementation"), "official") == 0) {
        /* The official code has one filter: no saturation, kpo's objective. */
        if (f->mode != FILTER_MODE_NONE || o->kind != OBJECTIVE_KPO)
            return error_set(err, "filter.implementation = official: needs learner.objective = "
                                  "kpo and filter.mode = none (the official code has no "
                                  "saturation)");
        const int64_t width = config_get_int(cfg, "filter.official_width");
        o->official_width = width > 0 ? width : s->max_new_tokens;
    }
    if (o->dual_clip != 0 && o->dual_clip <= 1)
        return error_set(err, "learner.dual_clip = %g: must be 0 (off) or > 1", o->dual_clip);

    adamw_config *a = &s->optim;
    *a = adamw_config_default();
    a->lr = config_get_double(cfg, "optim.lr");
    a->warmup_steps = config_get_int(cfg, "optim.warmup_steps");
    if (strcmp(config_get_string(cfg, "optim.lr_schedule"), "verl") == 0) {
        /* verl: num_warmup_steps = int(ratio * total_training_steps), in
         * scheduler steps, one per rollout batch of M updates. */
        const int64_t total = config_get_int(cfg, "optim.schedule_steps");
        a->schedule = ADAMW_SCHEDULE_VERL;
        a->updates_per_rollout = s->learner.minibatches;
        a->warmup_steps = (int64_t)(config_get_double(cfg, "optim.warmup_ratio") *
                                    (double)(total > 0 ? total : s->steps));
    }
    a->weight_decay = config_get_double(cfg, "optim.weight_decay");
    a->beta1 = config_get_double(cfg, "optim.beta1");
    a->beta2 = config_get_double(cfg, "optim.beta2");
    a->eps = config_get_double(cfg, "optim.eps");
    a->max_grad_norm = config_get_double(cfg, "optim.grad_clip");

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
    "learner.recompute",
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
