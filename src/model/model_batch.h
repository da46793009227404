/* What a forward or a decode step is given, shared by both backends (the
 * CPU model, cpu/model_compute.h, and the GPU model, model_cuda.h): a packed
 * batch of sequences and the checks of its arguments, so both refuse the
 * same inputs with the same words. */
#ifndef KPO_MODEL_MODEL_BATCH_H
#define KPO_MODEL_MODEL_BATCH_H

#include <stdint.h>

#include "core/error.h"
#include "model/model.h"

/* Sequences packed end to end; attention is causal inside a sequence and
 * never crosses into another. */
typedef struct model_batch {
    const int32_t *tokens;      /* [n_tokens], sequences back to back */
    int64_t n_tokens;
    const int64_t *seq_offsets; /* [n_seqs + 1], seq_offsets[0] = 0 */
    int64_t n_seqs;
} model_batch;

/* Checks offsets, lengths and every token id against the vocabulary. */
int model_batch_validate(const model *m, const model_batch *batch, kpo_error *err);

/* targets[t] = the next token of t's sequence, -1 on each sequence's last. */
void model_batch_next_targets(const model_batch *batch, int32_t *targets);

/* The arguments of a decode step against a cache of n_slots slots of
 * max_len positions holding lengths[slot] tokens each: slots in range and
 * distinct, new tokens that fit, token ids below vocab. *total: the step's
 * tokens. Shared by the CPU and GPU decoders, so both say the same. */
int model_decode_check(int64_t vocab, int64_t n_slots, int64_t max_len, const int64_t *lengths,
                       int64_t n_seqs, const int64_t *slots, const int64_t *n_new,
                       const int32_t *tokens, int64_t *total, kpo_error *err);

/* Empties slots[0..n) of such a cache (their sequences ended), each
 * checked in range first. Shared by the CPU and GPU decoders. */
int model_decode_release(int64_t n_slots, int64_t *lengths, int64_t n, const int64_t *slots,
                         kpo_error *err);

#endif
