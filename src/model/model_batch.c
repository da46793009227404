/* The checks of a packed batch and of a decode step's arguments, and the
 * next-token targets of a batch: shared by the CPU and GPU models. */
#include "model/model_batch.h"

int model_batch_validate(const model *m, const model_batch *b, kpo_error *err)
{
    if (b->n_seqs < 1 || !b->seq_offsets || b->seq_offsets[0] != 0 ||
        b->seq_offsets[b->n_seqs] != b->n_tokens)
        return error_set(err, "batch: sequence offsets must start at 0 and end at %lld",
                         (long long)b->n_tokens);
    for (int64_t s = 0; s < b->n_seqs; s++)
        if (b->seq_offsets[s + 1] <= b->seq_offsets[s])
            return error_set(err, "batch: sequence %lld is empty", (long long)s);
    for (int64_t s = 0; s < b->n_seqs; s++)
        for (int64_t t = b->seq_offsets[s]; t < b->seq_offsets[s + 1]; t++)
            if (b->tokens[t] < 0 || b->tokens[t] >= m->config.vocab_size)
                return error_set(err,
                                 "batch: sequence %lld, position %lld: token id %d is out of "
                                 "range [0, %lld)",
                                 (long long)s, (long long)(t - b->seq_offsets[s]),
                                 (int)b->tokens[t], (long long)m->config.vocab_size);
    return KPO_OK;
}

void model_batch_next_targets(const model_batch *b, int32_t *targets)
{
    for (int64_t s = 0; s < b->n_seqs; s++)
        for (int64_t t = b->seq_offsets[s]; t < b->seq_offsets[s + 1]; t++)
            targets[t] = t + 1 < b->seq_offsets[s + 1] ? b->tokens[t + 1] : -1;
}

int model_decode_check(int64_t vocab, int64_t n_slots, int64_t max_len, const int64_t *lengths,
                       int64_t n_seqs, const int64_t *slots, const int64_t *n_new,
                       const int32_t *tokens, int64_t *total, kpo_error *err)
{
    int64_t T = 0;
    for (int64_t i = 0; i < n_seqs; i++) {
        if (slots[i] < 0 || slots[i] >= n_slots)
            return error_set(err, "decode: slot %lld out of range [0, %lld)",
                             (long long)slots[i], (long long)n_slots);
        for (int64_t j = 0; j < i; j++)
            if (slots[j] == slots[i])
                return error_set(err, "decode: slot %lld appears twice", (long long)slots[i]);
        if (n_new[i] < 1 || lengths[slots[i]] + n_new[i] > max_len)
            return error_set(err, "decode: slot %lld: %lld new tokens after %lld exceed the "
                             "cache length %lld",
                             (long long)slots[i], (long long)n_new[i],
                             (long long)lengths[slots[i]], (long long)max_len);
        T += n_new[i];
    }
    for (int64_t t = 0; t < T; t++)
        if (tokens[t] < 0 || tokens[t] >= vocab)
            return error_set(err, "decode: token id %d is out of range [0, %lld)",
                             (int)tokens[t], (long long)vocab);
    *total = T;
    return KPO_OK;
}

int model_decode_release(int64_t n_slots, int64_t *lengths, int64_t n, const int64_t *slots,
                         kpo_error *err)
{
    for (int64_t i = 0; i < n; i++)
        if (slots[i] < 0 || slots[i] >= n_slots)
            return error_set(err, "decode: slot %lld out of range [0, %lld)", (long long)slots[i],
                             (long long)n_slots);
    for (int64_t i = 0; i < n; i++)
        lengths[slots[i]] = 0;
    return KPO_OK;
}
