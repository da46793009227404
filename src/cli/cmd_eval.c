/* kpo eval: k samples per problem for one or more benchmarks, the work
 * spread over the ranks of mpirun/srun (or one process; --device cuda: one
 * GPU per rank), per-problem correct counts into an HDF5 eval file, avg@k
 * and pass@k printed as in the paper's Table 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "core/file_util.h"
#include "data/arith_task.h"
#include "eval/eval_bench.h"
#include "eval/eval_comm.h"
#include "eval/eval_count.h"
#include "eval/eval_defaults.h"
#include "eval/eval_device.h"
#include "eval/eval_dump.h"
#include "io/evalfile.h"
#include "rollout/reward_program.h"
#include "stats/eval_stats.h"
#include "train/train_data.h"

enum { MAX_BENCHES = 32 };

/* Everything the command line says, checked. */
typedef struct eval_cli {
    const char *model_dir, *out_path;
    const char *dump_path;  /* --dump: every response as JSONL, or NULL */
    const char *stop;       /* --stop: model | chat | ids/tokens (data/stop_tokens.h) */
    char tokenizer_name[4096];
    eval_sampling sampling;
    eval_prompt_options prompts;
    eval_defaults defaults; /* what the run used, for the options not given */
    model_device device;
    const char *bench_specs[MAX_BENCHES];
    size_t n_benches;
} eval_cli;

static cli_option OPTIONS[] = {
    {"model", "DIR", "checkpoint directory (required)", NULL},
    {"tokenizer", "byte|DIR", "default: the model's kpo_model.json \"tokenizer\", else DIR", NULL},
    {"bench", "NAME=FILE", "a JSONL benchmark, or 'arith' (test split); repeatable", NULL},
    {"arith-problems", "N", "arith: problems (default 256)", NULL},
    {"arith-difficulty", "D", "arith: difficulty 1..5 (default: the run's when it trained on "
                              "arith, else 1)", NULL},
    {"k", "N", "samples per problem (default 16)", NULL},
    {"temperature", "T", "sampling temperature, 0 = greedy (default 1.0)", NULL},
    {"top-p", "P", "nucleus mass (default 0.7, the KPO code's validation sampling)", NULL},
    {"max-new-tokens", "N", "response length cap (default 4096)", NULL},
    {"prompt-template", "NAME", "dapo, kpo, boxed, raw or a {problem} template (default: the "
                                "run's, else the model's kpo_model.json, else dapo)", NULL},
    {"chat-template", "NAME", "qwen3, qwen3-thinking or raw (default: the run's, else "
                              "kpo_model.json, else qwen3)", NULL},
    {"reward", "NAME", "dapo, boxed, kpo or program (default: the run's, else kpo_model.json, "
                       "else dapo); accuracy is correct/incorrect", NULL},
    {"reward-program", "CMD", "--reward program: the grader's command line, run by /bin/sh "
                              "once per rank (default: the run's) (docs/text.md)", NULL},
    {"reward-timeout", "S", "--reward program: seconds to wait for each answer (default 30)",
     NULL},
    {"seed", "N", "sampling seed (default 0)", NULL},
    {"max-batch", "N", "sequences decoded together (default 64)", NULL},
    {"out", "EVAL.h5", "the eval file to write (required; never overwritten)", NULL},
    {"dump", "FILE.jsonl", "also write every response, one JSON line each, ordered by "
                           "(benchmark, problem, sample) (never overwritten)", NULL},
    {"device", "cpu|cuda", "where the model computes (default cpu; cuda: bf16, one GPU per rank)",
     NULL},
    {"stop", "model|chat|LIST", "what ends a response (default model: end-of-text and the "
                                "model's generation_config.json eos ids, as the paper's code)",
     NULL},
};
enum { N_OPTIONS = sizeof OPTIONS / sizeof OPTIONS[0] };

static cli_command_spec SPEC = {
    "eval", "--model DIR --bench NAME=FILE.jsonl|arith [--bench ...] --out EVAL.h5 [options]",
    "Sample k responses per problem, count the correct ones per problem, print avg@k and "
    "pass@k per benchmark and write the counts to an HDF5 eval file (kpo stats compares two). "
    "Runs alone or under mpirun/srun, the problems spread over the ranks. Templates, reward and "
    "arith difficulty default to what the run that wrote the checkpoint used (its config, "
    "else kpo_model.json); options given win.",
    OPTIONS, N_OPTIONS};

static int read_int(const char *name, long long fallback, long long low, long long high,
                    long long *out, kpo_error *err)
{
    if (cli_get_int64(&SPEC, name, fallback, out, err) != KPO_OK)
        return KPO_ERR;
    if (*out < low || *out > high)
        return error_set(err, "--%s must be in [%lld, %lld], not %lld", name, low, high, *out);
    return KPO_OK;
}

static int read_settings(int argc, char **argv, eval_cli *c, kpo_error *err)
{
    memset(c, 0, sizeof *c);
    c->model_dir = cli_get(&SPEC, "model");
    c->stop = cli_get(&SPEC, "stop") ? cli_get(&SPEC, "stop") : "model";
    c->out_path = cli_get(&SPEC, "out");
    if (!c->model_dir || !c->out_path)
        return error_set(err, "kpo eval: --model and --out are required");
    c->n_benches = cli_get_all(&SPEC, argc, argv, "bench", c->bench_specs, MAX_BENCHES);
    if (c->n_benches == 0)
        return error_set(err, "kpo eval: give at least one --bench NAME=FILE.jsonl (or arith)");
    if (c->n_benches > MAX_BENCHES)
        return error_set(err, "kpo eval: at most %d --bench", MAX_BENCHES);
    if (eval_defaults_resolve(c->model_dir, &c->defaults, err) != KPO_OK)
        return error_prefix(err, "--model: ");
    const eval_defaults *d = &c->defaults;
    char *difficulty_end = NULL;
    long long default_difficulty = strtoll(d->arith_difficulty.value, &difficulty_end, 10);
    if (difficulty_end == d->arith_difficulty.value || *difficulty_end != '\0')
        return error_set(err, "%s: arith difficulty '%s' is not a number",
                         d->arith_difficulty.source, d->arith_difficulty.value);
    long long k, max_new, max_batch, seed, arith_n, arith_d;
    double temperature, top_p, reward_timeout;
    if (read_int("k", 16, 1, 1 << 20, &k, err) != KPO_OK ||
        read_int("max-new-tokens", 4096, 1, 10000000, &max_new, err) != KPO_OK ||
        read_int("max-batch", 64, 1, 1000000, &max_batch, err) != KPO_OK ||
        read_int("seed", 0, 0, INT64_MAX, &seed, err) != KPO_OK ||
        read_int("arith-problems", 256, 1, 10000000, &arith_n, err) != KPO_OK ||
        read_int("arith-difficulty", default_difficulty, ARITH_MIN_DIFFICULTY,
                 ARITH_MAX_DIFFICULTY, &arith_d, err) != KPO_OK ||
        cli_get_double(&SPEC, "temperature", 1.0, &temperature, err) != KPO_OK ||
        cli_get_double(&SPEC, "top-p", 0.7, &top_p, err) != KPO_OK ||
        cli_get_double(&SPEC, "reward-timeout", REWARD_PROGRAM_DEFAULT_TIMEOUT, &reward_timeout,
                       err) != KPO_OK)
        return KPO_ERR;
    if (!(reward_timeout > 0))
        return error_set(err, "--reward-timeout must be > 0 seconds, not %g", reward_timeout);
    const char *chat = cli_get(&SPEC, "chat-template"), *reward = cli_get(&SPEC, "reward");
    const char *device = cli_get(&SPEC, "device");
    c->sampling = (eval_sampling){.k = k, .sampler = {temperature, top_p},
                                  .max_new_tokens = max_new, .max_batch = max_batch,
                                  .seed = (uint64_t)seed,
                                  .reward_program = cli_get(&SPEC, "reward-program"),
                                  .reward_timeout = reward_timeout};
    /* The arithmetic test problems are drawn with seed 0 whatever --seed
     * says: two evaluations with different sampling seeds still see the
     * same problems, which the paired statistics need. */
    c->prompts = (eval_prompt_options){.prompt_template = cli_get(&SPEC, "prompt-template"),
                                       .arith_problems = arith_n, .arith_difficulty = (int)arith_d,
                                       .arith_seed = 0};
    if (!c->prompts.prompt_template)
        c->prompts.prompt_template = d->prompt_template.value;
    if (sampler_config_validate(&c->sampling.sampler, err) != KPO_OK)
        return KPO_ERR;
    if (chat_template_parse(chat ? chat : d->chat_template.value, &c->prompts.chat, err) != KPO_OK)
        return chat ? KPO_ERR : error_prefix(err, "%s: ", d->chat_template.source);
    if (reward_kind_parse(reward ? reward : d->reward.value, &c->sampling.reward, err) != KPO_OK)
        return reward ? KPO_ERR : error_prefix(err, "%s: ", d->reward.source);
    /* The run's grader goes with program, whether the run or --reward chose it. */
    if (c->sampling.reward == REWARD_PROGRAM && !c->sampling.reward_program &&
        d->reward_program.value[0])
        c->sampling.reward_program = d->reward_program.value;
    if ((c->sampling.reward == REWARD_PROGRAM) != (c->sampling.reward_program != NULL))
        return error_set(err, "kpo eval: --reward-program CMD goes with --reward program, and "
                              "only there");
    c->dump_path = cli_get(&SPEC, "dump");
    if (c->dump_path && file_exists(c->dump_path))
        return error_set(err, "--dump %s: already exists; refusing to overwrite it",
                         c->dump_path);
    if (model_device_parse(device ? device : "cpu", &c->device, err) != KPO_OK)
        return error_prefix(err, "--");
    if (!file_exists(c->model_dir))
        return error_set(err, "--model %s: no such directory", c->model_dir);
    if (file_exists(c->out_path))
        return error_set(err, "--out %s: already exists; refusing to overwrite an eval file",
                         c->out_path);
    return train_tokenizer_resolve(cli_get(&SPEC, "tokenizer"), c->model_dir, c->tokenizer_name,
                                   sizeof c->tokenizer_name, err);
}

/* Tokenizer, model and every benchmark's prompts; the same on each rank. */
static int load_inputs(eval_cli *c, tokenizer **tok, model *m, eval_bench *benches,
                       kpo_error *err)
{
    for (size_t j = 0; j < c->n_benches; j++) {
        if (eval_bench_parse(c->bench_specs[j], &benches[j], err) != KPO_OK)
            return KPO_ERR;
        for (size_t i = 0; i < j; i++)
            if (strcmp(benches[i].name, benches[j].name) == 0)
                return error_set(err, "--bench: the name '%s' is given twice", benches[j].name);
    }
    if (tokenizer_load(tok, c->tokenizer_name, err) != KPO_OK ||
        stop_tokens_resolve(c->stop, "--stop", c->model_dir, *tok, &c->sampling.stop, err) !=
            KPO_OK)
        return KPO_ERR;
    for (size_t j = 0; j < c->n_benches; j++)
        if (eval_bench_load(&benches[j], &c->prompts, *tok, err) != KPO_OK)
            return KPO_ERR;
    if (model_load(c->model_dir, m, err) != KPO_OK)
        return KPO_ERR;
    if ((int64_t)tokenizer_vocab_size(*tok) > m->config.vocab_size) {
        error_set(err, "%s: vocab_size %lld is smaller than the tokenizer's %zu", c->model_dir,
                  (long long)m->config.vocab_size, tokenizer_vocab_size(*tok));
        model_free(m);
        return KPO_ERR;
    }
    return KPO_OK;
}

/* The root attributes: the settings that decide the counts. */
static size_t describe_settings(const eval_cli *c, char values[][64], evalfile_attr *attrs)
{
    const eval_sampling *s = &c->sampling;
    size_t n = 0;
    attrs[n++] = (evalfile_attr){"model", c->model_dir};
    attrs[n++] = (evalfile_attr){"tokenizer", c->tokenizer_name};
    attrs[n++] = (evalfile_attr){"prompt_template", c->prompts.prompt_template};
    attrs[n++] = (evalfile_attr){"chat_template", chat_template_name(c->prompts.chat)};
    attrs[n++] = (evalfile_attr){"reward", reward_kind_name(s->reward)};
    if (s->reward == REWARD_PROGRAM)
        attrs[n++] = (evalfile_attr){"reward_program", s->reward_program};
    attrs[n++] = (evalfile_attr){"stop", c->stop};
    /* bf16 on the GPU can draw other tokens than fp32 on the CPU: counts
     * from two devices are two measurements, not one repeated. */
    attrs[n++] = (evalfile_attr){"device", model_device_name(c->device)};
    attrs[n++] = (evalfile_attr){"dtype", eval_device_dtype(c->device)};
    static const char *const names[] = {"k", "temperature", "top_p", "max_new_tokens", "seed",
                                        "max_batch", "arith_problems", "arith_difficulty"};
    snprintf(values[0], 64, "%lld", (long long)s->k);
    snprintf(values[1], 64, "%.17g", s->sampler.temperature);
    snprintf(values[2], 64, "%.17g", s->sampler.top_p);
    snprintf(values[3], 64, "%lld", (long long)s->max_new_tokens);
    snprintf(values[4], 64, "%llu", (unsigned long long)s->seed);
    snprintf(values[5], 64, "%lld", (long long)s->max_batch);
    snprintf(values[6], 64, "%lld", (long long)c->prompts.arith_problems);
    snprintf(values[7], 64, "%d", c->prompts.arith_difficulty);
    for (size_t j = 0; j < sizeof names / sizeof names[0]; j++)
        attrs[n++] = (evalfile_attr){names[j], values[j]};
    return n;
}

/* Rank 0, before sampling: the prompt, reward and arith settings and where
 * each came from (the command line, the run, kpo_model.json or kpo eval's
 * own default). */
static void print_settings(const eval_cli *c)
{
    const eval_defaults *d = &c->defaults;
    char difficulty[32];
    snprintf(difficulty, sizeof difficulty, "%d", c->prompts.arith_difficulty);
    const struct {
        const char *option, *value;
        const eval_default *fallback;
    } rows[] = {
        {"prompt-template", c->prompts.prompt_template, &d->prompt_template},
        {"chat-template", chat_template_name(c->prompts.chat), &d->chat_template},
        {"reward", reward_kind_name(c->sampling.reward), &d->reward},
        {"reward-program", c->sampling.reward_program, &d->reward_program},
        {"arith-difficulty", difficulty, &d->arith_difficulty},
    };
    printf("settings (options given win; else the run's config, else the model's "
           "kpo_model.json, else kpo eval's default):\n");
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) {
        if (!rows[k].value)
            continue;
        const char *source = cli_get(&SPEC, rows[k].option) ? "the command line"
                                                            : rows[k].fallback->source;
        printf("  --%-17s %-20s from %s\n", rows[k].option, rows[k].value, source);
    }
    if (d->note[0])
        printf("  note: %s\n", d->note);
}

/* Rank 0: the table and the file from the summed counts, and the dump
 * (written first, and removed again if the eval file fails, so a failed
 * run leaves neither). */
static int report(const eval_cli *c, const eval_bench *benches, int64_t *const *correct,
                  const text_buf *dumps, kpo_error *err)
{
    evalfile_bench out[MAX_BENCHES];
    int64_t *samples[MAX_BENCHES] = {NULL};
    const long k = (long)c->sampling.k;
    int status = KPO_OK;
    printf("%-20s %9s %6s %9s %9s\n", "benchmark", "problems", "k", "avg@k %", "pass@k %");
    for (size_t j = 0; j < c->n_benches && status == KPO_OK; j++) {
        const int64_t n = benches[j].prompts.n;
        samples[j] = malloc((size_t)n * sizeof *samples[j]);
        problem_count *counts = malloc((size_t)n * sizeof *counts);
        status = samples[j] && counts ? KPO_OK : error_set(err, "out of memory");
        for (int64_t i = 0; status == KPO_OK && i < n; i++) {
            samples[j][i] = k;
            counts[i] = (problem_count){.correct = (long)correct[j][i], .samples = k};
        }
        double pass = 0;
        if (status == KPO_OK)
            status = eval_pass_at_k(counts, (size_t)n, k, &pass, err);
        if (status == KPO_OK) {
            out[j] = (evalfile_bench){.name = benches[j].name, .source = benches[j].source,
                                      .n_problems = n, .correct = correct[j],
                                      .samples = samples[j],
                                      .problem_index = benches[j].prompts.source, .k = k,
                                      .avg_at_k = eval_avg_at_k(counts, (size_t)n),
                                      .pass_at_k = pass};
            printf("%-20s %9lld %6ld %9.2f %9.2f\n", benches[j].name, (long long)n, k,
                   100 * out[j].avg_at_k, 100 * pass);
        }
        free(counts);
    }
    evalfile_attr attrs[24];
    char values[8][64];
    size_t n_attrs = describe_settings(c, values, attrs);
    int dumped = 0;
    if (status == KPO_OK && c->dump_path)
        dumped = (status = eval_dump_write(c->dump_path, dumps, c->n_benches, err)) == KPO_OK;
    if (status == KPO_OK)
        status = evalfile_write(c->out_path, attrs, n_attrs, out, c->n_benches, err);
    if (status != KPO_OK && dumped)
        unlink(c->dump_path);
    if (status == KPO_OK)
        printf("wrote %s\n", c->out_path);
    if (status == KPO_OK && dumped)
        printf("wrote %s\n", c->dump_path);
    for (size_t j = 0; j < c->n_benches; j++)
        free(samples[j]);
    return status;
}

int cmd_eval(int argc, char **argv)
{
    const char *positional[1];
    size_t n_positional;
    int wants_help = 0;
    kpo_error err;
    int parsed = cli_parse(&SPEC, argc, argv, positional, 0, &n_positional, &wants_help, &err);
    if (parsed == KPO_OK && wants_help) {
        cli_print_help(stdout, &SPEC);
        return 0;
    }
    int rank, size;
    eval_comm_init(&argc, &argv, &rank, &size);
    eval_cli c;
    tokenizer *tok = NULL;
    model m;
    memset(&m, 0, sizeof m);
    int model_loaded = 0;
    eval_bench benches[MAX_BENCHES];
    memset(benches, 0, sizeof benches);
    int64_t *correct[MAX_BENCHES] = {NULL};
    text_buf dumps[MAX_BENCHES];
    for (size_t j = 0; j < MAX_BENCHES; j++)
        text_buf_init(&dumps[j]);
    model_backend be;
    memset(&be, 0, sizeof be);
    int status = parsed;
    if (status == KPO_OK)
        status = read_settings(argc, argv, &c, &err);
    if (status == KPO_OK) {
        status = load_inputs(&c, &tok, &m, benches, &err);
        model_loaded = status == KPO_OK;
    }
    for (size_t j = 0; status == KPO_OK && j < c.n_benches; j++) {
        correct[j] = calloc((size_t)benches[j].prompts.n + 1, sizeof *correct[j]);
        if (!correct[j])
            status = error_set(&err, "out of memory");
    }
    /* Every rank gets here: input errors, then the device's set-up
     * failures (no GPU on some rank), are reported once, by the first rank
     * that saw one, and nobody is left waiting in a collective. */
    int first_failed = eval_comm_first_failure(status != KPO_OK);
    if (first_failed < 0)
        first_failed = eval_device_open(&be, c.device, &m, &err);
    if (first_failed == rank)
        fprintf(stderr, "kpo: %s\n", err.message);
    if (first_failed < 0 && rank == 0) {
        print_settings(&c);
        fflush(stdout);
    }
    for (size_t j = 0; first_failed < 0 && j < c.n_benches; j++) {
        text_buf mine;
        text_buf_init(&mine);
        if (eval_count_correct(&be, tok, &benches[j], &c.sampling, rank, size, correct[j],
                               c.dump_path ? &mine : NULL, &err) != KPO_OK)
            eval_comm_abort(err.message);
        eval_comm_sum_to_root(correct[j], benches[j].prompts.n);
        /* Gathered per benchmark: rank 0 holds the dump, the others one
         * benchmark's share at a time. */
        if (c.dump_path && eval_dump_gather(&mine, &benches[j], &c.sampling, rank, size,
                                            &dumps[j], &err) != KPO_OK)
            eval_comm_abort(err.message);
        text_buf_free(&mine);
    }
    status = first_failed < 0 ? KPO_OK : KPO_ERR;
    if (first_failed < 0 && rank == 0 && report(&c, benches, correct, dumps, &err) != KPO_OK) {
        fprintf(stderr, "kpo: %s\n", err.message);
        status = KPO_ERR;
    }
    for (size_t j = 0; j < MAX_BENCHES; j++) {
        free(correct[j]);
        text_buf_free(&dumps[j]);
        eval_bench_free(&benches[j]);
    }
    model_backend_free(&be);
    if (model_loaded)
        model_free(&m);
    if (tok)
        tokenizer_free(tok);
    eval_comm_finalize();
    return status == KPO_OK ? 0 : 1;
}
