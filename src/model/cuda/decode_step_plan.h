/* How a decode step (gpu_model_decode_step, model_cuda_decode.c) divides
 * its attention between the training forward's flash kernel and the decode
 * attention, and the grid sizes of each part. Pure host C, inline here so
 * the unit suite tests it in every build (tests/unit/test_decode_step_plan.c).
 *
 * With model.prefill_attention = flash, the step's leading fresh prompts
 * (slots with nothing cached: start position 0) are plain causal
 * self-attention over their own new tokens, which the tensor-core flash
 * kernel computes far faster than the decode kernels (a block per query
 * walking its whole prefix). Only a leading run qualifies: the flash call
 * then covers query rows [0, fresh_tokens) and its sequence offsets are the
 * step's own, which start at 0. The sequences after it (cached ones, and
 * fresh ones that come after a cached one) go through the decode
 * attention. A 1-token fresh prompt joins the run too: flash over one key
 * is the same attention. */
#ifndef KPO_MODEL_CUDA_DECODE_STEP_PLAN_H
#define KPO_MODEL_CUDA_DECODE_STEP_PLAN_H

#include <stdbool.h>
#include <stdint.h>

/* The most sequences one flash call takes (gpu_attention_check_shape's
 * grid limit); a longer fresh run leaves the rest to the decode attention. */
#define DECODE_FLASH_MAX_SEQS 65535

typedef struct decode_step_plan {
    /* Every sequence of the step: what the KV-cache write is sized by. */
    int64_t max_new;     /* the most new tokens of a sequence */
    int64_t max_context; /* the longest start + new tokens */
    /* Sequences [0, n_fresh): fresh prompts through the flash kernel. */
    int64_t n_fresh;
    int64_t fresh_tokens;  /* their new tokens: query rows [0, fresh_tokens) */
    int64_t fresh_max_len; /* the longest of them (0 when n_fresh = 0) */
    /* Sequences [n_fresh, n_seqs): the decode attention (all 0 when none). */
    int64_t rest_max_new, rest_max_context;
} decode_step_plan;

/* The plan of a step of n_seqs sequences with starts[i] tokens cached
 * before the step and n_new[i] >= 1 new tokens each, packed in this order.
 * flash: model.prefill_attention = flash (false: everything to the decode
 * attention, n_fresh = 0). */
static inline decode_step_plan decode_step_plan_make(int64_t n_seqs, const int64_t *starts,
                                                     const int64_t *n_new, bool flash)
{
    decode_step_plan p = {0};
    while (flash && p.n_fresh < n_seqs && p.n_fresh < DECODE_FLASH_MAX_SEQS &&
           starts[p.n_fresh] == 0)
        p.n_fresh++;
    for (int64_t i = 0; i < n_seqs; i++) {
        const int64_t context = starts[i] + n_new[i];
        p.max_new = n_new[i] > p.max_new ? n_new[i] : p.max_new;
        p.max_context = context > p.max_context ? context : p.max_context;
        if (i < p.n_fresh) {
            p.fresh_tokens += n_new[i];
            p.fresh_max_len = n_new[i] > p.fresh_max_len ? n_new[i] : p.fresh_max_len;
        } else {
            p.rest_max_new = n_new[i] > p.rest_max_new ? n_new[i] : p.rest_max_new;
            p.rest_max_context = context > p.rest_max_context ? context : p.rest_max_context;
        }
    }
    return p;
}

/* rest [n_seqs - n_fresh + 1]: the query offsets of the sequences after
 * the fresh run, rebased to start at 0 (the decode attention's contract),
 * from the step's offsets [n_seqs + 1]. */
static inline void decode_step_rest_offsets(const decode_step_plan *p, int64_t n_seqs,
                                            const int64_t *offsets, int64_t *rest)
{
    for (int64_t i = p->n_fresh; i <= n_seqs; i++)
        rest[i - p->n_fresh] = offsets[i] - offsets[p->n_fresh];
}

#endif
