/* kpo eval's work on one rank: its chunks of a benchmark generated with the
 * rollout decoder and scored by the reward into per-problem counts. */
#include "eval/eval_count.h"

#include "rollout/generate.h"
#include "rollout/response_score.h"

int64_t eval_chunk_problems(const eval_sampling *s)
{
    int64_t n = s->max_batch / s->k;
    return n > 0 ? n : 1;
}

/* Generates and scores problems [first, first + count) of b. */
static int count_chunk(model_backend *be, const tokenizer *tok, const eval_bench *b,
                       const eval_sampling *s, int64_t first, int64_t count, int64_t *correct,
                       kpo_error *err)
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
                           .sample_vocab = (int64_t)tokenizer_vocab_size(tok)};
    rollout_responses out;
    if (rollout_generate(be, &req, &out, err) != KPO_OK)
        return KPO_ERR;
    /* Accuracy is binary whatever the reward's scale, so dapo's -1 never
     * enters a count. */
    reward_options opt = {.zero_one = true};
    int status = KPO_OK;
    for (int64_t r = 0; r < out.n_responses && status == KPO_OK; r++) {
        int64_t p = r / s->k;
        const char *gold = b->problems.records[b->prompts.source[first + p]].answer;
        reward_result result;
        status = rollout_score_response(tok, s->reward, &opt, out.tokens + out.offsets[r],
                                        out.offsets[r + 1] - out.offsets[r], out.stopped[r], gold,
                                        &result, err);
        if (status == KPO_OK && result.correct)
            correct[first + p]++;
    }
    rollout_responses_free(&out);
    return status;
}

int eval_count_correct(model_backend *be, const tokenizer *tok, const eval_bench *b,
                       const eval_sampling *s, int rank, int n_ranks, int64_t *correct,
                       kpo_error *err)
{
    if (s->k < 1 || s->k > (1 << 30))
        return error_set(err, "--k must be in [1, 2^30]");
    const int64_t n = b->prompts.n, per_chunk = eval_chunk_problems(s);
    int status = KPO_OK;
    for (int64_t c = 0; c * per_chunk < n && status == KPO_OK; c++) {
        if (c % n_ranks != rank)
            continue;
        int64_t first = c * per_chunk, count = n - first < per_chunk ? n - first : per_chunk;
        if (count_chunk(be, tok, b, s, first, count, correct, err) != KPO_OK)
            status = error_prefix(err, "benchmark %s: ", b->name);
    }
    return status;
}
