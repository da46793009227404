/* Sampling, scoring and counting correct responses per problem: the loop
 * kpo eval and kpo sft's evaluation share (eval_sample.h). */
#include "eval/eval_sample.h"

static int decode(const tokenizer *tok, const int32_t *ids, int64_t n, text_buf *out,
                  kpo_error *err)
{
    text_buf_clear(out);
    if (tokenizer_decode(tok, ids, (size_t)n, out, err) != KPO_OK)
        return KPO_ERR;
    return out->failed ? error_set(err, "out of memory decoding a response") : KPO_OK;
}

int eval_sample_count(model_backend *be, const tokenizer *tok, const rollout_request *req,
                      const dataset *ds, reward_kind kind, const reward_options *opt,
                      int64_t *correct, int64_t *unstopped, eval_scored_fn visit, void *ctx,
                      kpo_error *err)
{
    rollout_responses out = {0};
    if (rollout_generate(be, req, &out, err) != KPO_OK) {
        rollout_responses_free(&out);
        return KPO_ERR;
    }
    reward_options options = opt ? *opt : (reward_options){0};
    text_buf text;
    text_buf_init(&text);
    int status = KPO_OK;
    const int64_t k = req->group_size;
    for (int64_t r = 0; r < out.n_responses && status == KPO_OK; r++) {
        const int64_t p = r / k;
        const dataset_record *rec = &ds->records[req->prompt_ids[p]];
        const int64_t n = out.offsets[r + 1] - out.offsets[r];
        reward_result result;
        options.problem = rec->problem;
        /* The reward reads the text without the final stop token, which is
         * no part of the answer (as rollout_score_response). */
        status = decode(tok, out.tokens + out.offsets[r], n - (out.stopped[r] ? 1 : 0), &text, err);
        if (status == KPO_OK)
            status = reward_score(kind, text.data ? text.data : "", rec->answer,
                                  opt ? &options : NULL, &result, err);
        if (status == KPO_OK && result.correct)
            correct[p]++;
        if (unstopped)
            *unstopped += !out.stopped[r];
        if (status == KPO_OK && visit) {
            const eval_scored scored = {.prompt = p, .sample = r % k, .record = rec,
                                        .text = &text, .result = &result,
                                        .stopped = out.stopped[r], .n_tokens = n};
            status = visit(ctx, &scored, err);
        }
    }
    text_buf_free(&text);
    rollout_responses_free(&out);
    return status;
}
