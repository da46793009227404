/* A rollout batch as the learners see it (rl_batch.h): prompt + response
 * sequences packed back to back. */
#include "learner/rl_batch.h"

#include <stdlib.h>
#include <string.h>

int rl_batch_alloc(rl_batch *b, int64_t n, int64_t n_tokens, kpo_error *err)
{
    memset(b, 0, sizeof *b);
    b->n = n;
    size_t rows = (size_t)(n > 0 ? n : 1);
    b->tokens = malloc((size_t)(n_tokens > 0 ? n_tokens : 1) * sizeof *b->tokens);
    b->seq_offsets = calloc(rows + 1, sizeof *b->seq_offsets);
    b->prompt_len = calloc(rows, sizeof *b->prompt_len);
    b->group = calloc(rows, sizeof *b->group);
    b->reward = calloc(rows, sizeof *b->reward);
    b->advantage = calloc(rows, sizeof *b->advantage);
    b->stopped = calloc(rows, sizeof *b->stopped);
    if (!b->tokens || !b->seq_offsets || !b->prompt_len || !b->group || !b->reward ||
        !b->advantage || !b->stopped) {
        rl_batch_free(b);
        return error_set(err, "batch: out of memory for %lld sequences", (long long)n);
    }
    return KPO_OK;
}

void rl_batch_free(rl_batch *b)
{
    free(b->tokens);
    free(b->seq_offsets);
    free(b->prompt_len);
    free(b->group);
    free(b->reward);
    free(b->advantage);
    free(b->stopped);
    memset(b, 0, sizeof *b);
}

int rl_batch_slice(const rl_batch *b, int64_t first, int64_t count, rl_batch *out,
                   kpo_error *err)
{
    int64_t t0 = b->seq_offsets[first], t1 = b->seq_offsets[first + count];
    if (rl_batch_alloc(out, count, t1 - t0, err) != KPO_OK)
        return KPO_ERR;
    memcpy(out->tokens, b->tokens + t0, (size_t)(t1 - t0) * sizeof *out->tokens);
    for (int64_t i = 0; i <= count; i++)
        out->seq_offsets[i] = b->seq_offsets[first + i] - t0;
    memcpy(out->prompt_len, b->prompt_len + first, (size_t)count * sizeof *out->prompt_len);
    memcpy(out->group, b->group + first, (size_t)count * sizeof *out->group);
    memcpy(out->reward, b->reward + first, (size_t)count * sizeof *out->reward);
    memcpy(out->advantage, b->advantage + first, (size_t)count * sizeof *out->advantage);
    memcpy(out->stopped, b->stopped + first, (size_t)count * sizeof *out->stopped);
    return KPO_OK;
}

int64_t rl_batch_response_tokens(const rl_batch *b)
{
    int64_t total = 0;
    for (int64_t i = 0; i < b->n; i++)
        total += b->seq_offsets[i + 1] - b->seq_offsets[i] - b->prompt_len[i];
    return total;
}
