/* kpo eval's pipeline (eval_run.h): inputs loaded on every rank, the
 * counts over the ranks, the table, eval file and dump on rank 0. */
#include "eval/eval_run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm/comm_world.h"
#include "eval/eval_device.h"
#include "eval/eval_dump.h"
#include "io/evalfile.h"
#include "stats/eval_stats.h"

/* Tokenizer, model and every benchmark's prompts; the same on each rank. */
static int load_inputs(eval_settings *c, tokenizer **tok, model *m, eval_bench *benches,
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
static size_t describe_settings(const eval_settings *c, char values[][64], evalfile_attr *attrs)
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
    if (c->device == MODEL_DEVICE_CUDA) { /* the kernels that decoded: bf16 sums differ */
        attrs[n++] = (evalfile_attr){"decode_attention",
                                     c->gpu.decode_attention == GPU_DECODE_ATTENTION_SPLIT
                                         ? "split"
                                         : "block"};
        attrs[n++] = (evalfile_attr){"prefill_attention",
                                     c->gpu.prefill_attention == GPU_PREFILL_ATTENTION_FLASH
                                         ? "flash"
                                         : "decode"};
        attrs[n++] = (evalfile_attr){"decode_graphs", c->gpu.decode_graphs ? "true" : "false"};
    }
    /* Like max_batch it should not change a draw, yet can in the last bits
     * of the CPU's batched products (docs/train.md, "Rollout schedule"). */
    attrs[n++] = (evalfile_attr){"schedule",
                                 s->schedule == ROLLOUT_REFILL ? "refill" : "waves"};
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
static void print_settings(const eval_settings *c)
{
    const eval_defaults *d = &c->defaults;
    char difficulty[32];
    snprintf(difficulty, sizeof difficulty, "%d", c->prompts.arith_difficulty);
    const struct {
        const char *option, *value;
        const eval_default *fallback;
        bool given;
    } rows[] = {
        {"prompt-template", c->prompts.prompt_template, &d->prompt_template,
         c->given_prompt_template},
        {"chat-template", chat_template_name(c->prompts.chat), &d->chat_template,
         c->given_chat_template},
        {"reward", reward_kind_name(c->sampling.reward), &d->reward, c->given_reward},
        {"reward-program", c->sampling.reward_program, &d->reward_program,
         c->given_reward_program},
        {"arith-difficulty", difficulty, &d->arith_difficulty, c->given_arith_difficulty},
    };
    printf("settings (options given win; else the run's config, else the model's "
           "kpo_model.json, else kpo eval's default):\n");
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) {
        if (!rows[k].value)
            continue;
        const char *source = rows[k].given ? "the command line" : rows[k].fallback->source;
        printf("  --%-17s %-20s from %s\n", rows[k].option, rows[k].value, source);
    }
    if (d->note[0])
        printf("  note: %s\n", d->note);
}

/* Rank 0: the table and the file from the summed counts, and the dump
 * (written first, and removed again if the eval file fails, so a failed
 * run leaves neither). */
static int report(const eval_settings *c, const eval_bench *benches, int64_t *const *correct,
                  const text_buf *dumps, kpo_error *err)
{
    evalfile_bench out[EVAL_MAX_BENCHES];
    int64_t *samples[EVAL_MAX_BENCHES] = {NULL};
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

int eval_run(eval_settings *c, int status, int rank, int size, kpo_error *err)
{
    tokenizer *tok = NULL;
    model m;
    memset(&m, 0, sizeof m);
    int model_loaded = 0;
    eval_bench benches[EVAL_MAX_BENCHES];
    memset(benches, 0, sizeof benches);
    int64_t *correct[EVAL_MAX_BENCHES] = {NULL};
    text_buf dumps[EVAL_MAX_BENCHES];
    for (size_t j = 0; j < EVAL_MAX_BENCHES; j++)
        text_buf_init(&dumps[j]);
    model_backend be;
    memset(&be, 0, sizeof be);
    if (status == KPO_OK) {
        status = load_inputs(c, &tok, &m, benches, err);
        model_loaded = status == KPO_OK;
    }
    for (size_t j = 0; status == KPO_OK && j < c->n_benches; j++) {
        correct[j] = calloc((size_t)benches[j].prompts.n + 1, sizeof *correct[j]);
        if (!correct[j])
            status = error_set(err, "out of memory");
    }
    /* Every rank gets here: input errors, then the device's set-up
     * failures (no GPU on some rank), are reported once, by the first rank
     * that saw one, and nobody is left waiting in a collective. */
    int first_failed = comm_world_first_failure(status != KPO_OK);
    if (first_failed < 0)
        first_failed = eval_device_open(&be, c->device, &c->gpu, &m, err);
    if (first_failed == rank)
        fprintf(stderr, "kpo: %s\n", err->message);
    if (first_failed < 0 && rank == 0) {
        print_settings(c);
        fflush(stdout);
    }
    for (size_t j = 0; first_failed < 0 && j < c->n_benches; j++) {
        text_buf mine;
        text_buf_init(&mine);
        if (eval_count_correct(&be, tok, &benches[j], &c->sampling, rank, size, correct[j],
                               c->dump_path ? &mine : NULL, err) != KPO_OK)
            comm_world_abort(err->message);
        comm_world_sum_to_root(correct[j], benches[j].prompts.n);
        /* Gathered per benchmark: rank 0 holds the dump, the others one
         * benchmark's share at a time. */
        if (c->dump_path && eval_dump_gather(&mine, &benches[j], &c->sampling, rank, size,
                                             &dumps[j], err) != KPO_OK)
            comm_world_abort(err->message);
        text_buf_free(&mine);
    }
    status = first_failed < 0 ? KPO_OK : KPO_ERR;
    if (first_failed < 0 && rank == 0 && report(c, benches, correct, dumps, err) != KPO_OK) {
        fprintf(stderr, "kpo: %s\n", err->message);
        status = KPO_ERR;
    }
    for (size_t j = 0; j < EVAL_MAX_BENCHES; j++) {
        free(correct[j]);
        text_buf_free(&dumps[j]);
        eval_bench_free(&benches[j]);
    }
    model_backend_free(&be);
    if (model_loaded)
        model_free(&m);
    if (tok)
        tokenizer_free(tok);
    return status == KPO_OK ? 0 : 1;
}
