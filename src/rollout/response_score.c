/* A generated response's token ids scored (response_score.h): decoded
 * without its final stop token, then the reward. */
#include "rollout/response_score.h"

int rollout_score_response(const tokenizer *tok, reward_kind kind, const reward_options *opt,
                           const int32_t *tokens, int64_t n, int stopped, const char *gold,
                           reward_result *out, kpo_error *err)
{
    text_buf text;
    text_buf_init(&text);
    int status = tokenizer_decode(tok, tokens, (size_t)(n - (stopped ? 1 : 0)), &text, err);
    if (status == KPO_OK && text.failed)
        status = error_set(err, "rollout: out of memory decoding a response");
    if (status == KPO_OK)
        status = reward_score(kind, text.data ? text.data : "", gold, opt, out, err);
    text_buf_free(&text);
    return status;
}
