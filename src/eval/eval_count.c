/* kpo eval's work on one rank: its chunks of a benchmark generated with the
 * rollout decoder and scored by the reward into per-problem counts. */
#include "eval/eval_count.h"

#include <stdlib.h>

#include <cjson/cJSON.h>

#include "eval/eval_dump.h"
#include "eval/eval_sample.h"
#include "rollout/generate.h"

int64_t eval_chunk_problems(const eval_sampling *s)
{
    int64_t n = s->max_batch / s->k;
    return n > 0 ? n : 1;
}

/* One response's line of the dump: everything needed to read it without
 * kpo, keys in a fixed order so dumps compare byte for byte. */
static int dump_line(text_buf *dump, const eval_bench *b, int64_t problem, int64_t sample,
                     const text_buf *prompt_text, const text_buf *response_text,
                     const char *gold, const reward_result *r, int stopped, int64_t tokens,
                     kpo_error *err)
{
    text_buf prompt, response;
    text_buf_init(&prompt);
    text_buf_init(&response);
    eval_dump_clean_text(prompt_text->data ? prompt_text->data : "", prompt_text->len, &prompt);
    eval_dump_clean_text(response_text->data ? response_text->data : "", response_text->len,
                         &response);
    cJSON *o = prompt.failed || response.failed ? NULL : cJSON_CreateObject();
    int ok = o && cJSON_AddStringToObject(o, "benchmark", b->name) &&
             cJSON_AddNumberToObject(o, "problem", (double)problem) &&
             cJSON_AddNumberToObject(o, "sample", (double)sample) &&
             cJSON_AddStringToObject(o, "prompt", prompt.data ? prompt.data : "") &&
             cJSON_AddStringToObject(o, "response", response.data ? response.data : "") &&
             cJSON_AddStringToObject(o, "pred", r->pred) &&
             cJSON_AddBoolToObject(o, "extracted", r->extracted) &&
             cJSON_AddStringToObject(o, "gold", gold) &&
             cJSON_AddNumberToObject(o, "reward", r->score) &&
             cJSON_AddBoolToObject(o, "correct", r->correct) &&
             cJSON_AddBoolToObject(o, "stopped", stopped) &&
             cJSON_AddNumberToObject(o, "response_tokens", (double)tokens);
    char *text = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    text_buf_free(&prompt);
    text_buf_free(&response);
    if (text) {
        text_buf_append_str(dump, text);
        text_buf_append_char(dump, '\n');
    }
    free(text);
    return text && !dump->failed ? KPO_OK : error_set(err, "--dump: out of memory");
}

/* eval_sample_count's visitor for --dump: a chunk's responses as lines. */
typedef struct dump_ctx {
    text_buf *dump;
    const tokenizer *tok;
    const eval_bench *b;
    int64_t first;   /* the chunk's first problem */
    text_buf prompt; /* the current problem's prompt, decoded at its first sample */
} dump_ctx;

static int dump_response(void *ctx, const eval_scored *r, kpo_error *err)
{
    dump_ctx *d = ctx;
    const int64_t p = d->first + r->prompt;
    if (r->sample == 0) {
        const int64_t *po = d->b->prompts.offsets + p;
        text_buf_clear(&d->prompt);
        if (tokenizer_decode(d->tok, d->b->prompts.tokens + po[0], (size_t)(po[1] - po[0]),
                             &d->prompt, err) != KPO_OK)
            return KPO_ERR;
        if (d->prompt.failed)
            return error_set(err, "out of memory decoding a response");
    }
    return dump_line(d->dump, d->b, d->b->prompts.source[p], r->sample, &d->prompt, r->text,
                     r->record->answer, r->result, r->stopped, r->n_tokens, err);
}

/* Generates and scores problems [first, first + count) of b. */
static int count_chunk(model_backend *be, const tokenizer *tok, const eval_bench *b,
                       const eval_sampling *s, int64_t first, int64_t count, int64_t *correct,
                       text_buf *dump, kpo_error *err)
{
    /* Offsets stay absolute into the whole token buffer: rollout_generate
     * only reads prompt_tokens[offsets[p] .. offsets[p + 1]). */
    rollout_request req = {.prompt_tokens = b->prompts.tokens,
                           .prompt_offsets = b->prompts.offsets + first,
                           .prompt_ids = b->prompts.source + first,
                           .n_prompts = count,
                           .group_size = (int)s->k,
                           .max_new_tokens = s->max_new_tokens,
                           .stop_ids = s->stop.ids,
                           .n_stop = s->stop.n,
                           .sampler = s->sampler,
                           .seed = s->seed,
                           .step = EVAL_STREAM_STEP,
                           .max_batch = s->max_batch,
                           .schedule = s->schedule,
                           .sample_vocab = (int64_t)tokenizer_vocab_size(tok)};
    /* Accuracy is binary whatever the reward's scale, so dapo's -1 never
     * enters a count. */
    const reward_options opt = {.zero_one = true, .program = s->reward_program,
                                .program_timeout = s->reward_timeout};
    dump_ctx d = {.dump = dump, .tok = tok, .b = b, .first = first};
    text_buf_init(&d.prompt);
    int status = eval_sample_count(be, tok, &req, &b->problems, s->reward, &opt, correct + first,
                                   NULL, dump ? dump_response : NULL, &d, err);
    text_buf_free(&d.prompt);
    return status;
}

int eval_count_correct(model_backend *be, const tokenizer *tok, const eval_bench *b,
                       const eval_sampling *s, int rank, int n_ranks, int64_t *correct,
                       text_buf *dump, kpo_error *err)
{
    if (s->k < 1 || s->k > (1 << 30))
        return error_set(err, "--k must be in [1, 2^30]");
    const int64_t n = b->prompts.n, per_chunk = eval_chunk_problems(s);
    int status = KPO_OK;
    for (int64_t c = 0; c * per_chunk < n && status == KPO_OK; c++) {
        if (c % n_ranks != rank)
            continue;
        int64_t first = c * per_chunk, count = n - first < per_chunk ? n - first : per_chunk;
        if (count_chunk(be, tok, b, s, first, count, correct, dump, err) != KPO_OK)
            status = error_prefix(err, "benchmark %s: ", b->name);
    }
    return status;
}
