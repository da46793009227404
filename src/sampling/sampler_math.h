/* The sampler's per-token arithmetic, shared by sampler.c (CPU) and
 * kernels_sample.cu (one block per row), so the two backends agree on what
 * a token's probability is, which tokens the nucleus keeps and which token
 * a uniform maps to. static inline KPO_HOSTDEV; the device build compiles
 * it with --fmad=false (docs/cuda.md).
 *
 * The definition both implement:
 *   p_i    = exp((l_i - max_l) / T) / sum_j exp((l_j - max_l) / T)   (double)
 *   rank   = logit descending, equal logits by ascending id (probabilities
 *            are monotone in the logit, so this is a most-probable-first
 *            order; ranking by the fp32 logit keeps exp() out of the order)
 *   nucleus= the shortest prefix of that order with mass >= top_p, named by
 *            its last member (the cut: a logit and an id); all when top_p = 1
 *   draw   = target = u * kept mass (u itself when top_p = 1); walk the kept
 *            ids in ASCENDING ID order, first whose cumulative sum exceeds
 *            the target; the last kept id if rounding leaves none.
 * Walking in id order lets a GPU find the token with a prefix scan instead
 * of sorting the vocabulary; the distribution is the same as walking in
 * rank order, only which token a given u lands on differs. */
#ifndef KPO_SAMPLING_SAMPLER_MATH_H
#define KPO_SAMPLING_SAMPLER_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/hostdev.h"

/* The nucleus's last member in rank order; keep_all when the nucleus is the
 * whole vocabulary (top_p = 1, or rounding left the mass short of top_p). */
typedef struct sampler_cut {
    int keep_all;
    uint32_t key; /* sampler_logit_key of the cut's logit */
    int32_t id;
} sampler_cut;

/* Unnormalised tempered probability: 1 at the maximum logit. */
KPO_HOSTDEV static inline double sampler_weight(float logit, double max_logit, double temperature)
{
    return exp(((double)logit - max_logit) / temperature);
}

/* An order-preserving integer encoding of a float logit: a > b as floats
 * iff key(a) > key(b) (NaN aside). -0 is folded onto +0 so that float
 * equality and key equality coincide, and ties mean the same on both sides. */
KPO_HOSTDEV static inline uint32_t sampler_logit_key(float logit)
{
    uint32_t bits;
    if (logit == 0.0f)
        logit = 0.0f;
#ifdef __CUDA_ARCH__
    bits = __float_as_uint(logit);
#else
    memcpy(&bits, &logit, sizeof bits);
#endif
    return (bits & 0x80000000u) ? ~bits : bits | 0x80000000u;
}

/* Rank order: does (key_a, id_a) come before (key_b, id_b)? */
KPO_HOSTDEV static inline int sampler_ranks_before(uint32_t key_a, int32_t id_a, uint32_t key_b,
                                                   int32_t id_b)
{
    return key_a > key_b || (key_a == key_b && id_a < id_b);
}

/* Is token id (with logit key `key`) in the nucleus? Everything ranked
 * at or before the cut. */
KPO_HOSTDEV static inline int sampler_is_kept(const sampler_cut *cut, uint32_t key, int32_t id)
{
    return cut->keep_all || key > cut->key || (key == cut->key && id <= cut->id);
}

/* The point the id-order walk looks for. top_p = 1 keeps the unscaled u so
 * plain temperature sampling reads the normalised probabilities directly. */
KPO_HOSTDEV static inline double sampler_draw_target(double u, double kept_mass, double top_p)
{
    return top_p >= 1.0 ? u : u * kept_mass;
}

/* The walk's stopping rule: the first id whose cumulative sum exceeds the
 * target is drawn. */
KPO_HOSTDEV static inline int sampler_crosses(double cumulative, double target)
{
    return target < cumulative;
}

#endif
