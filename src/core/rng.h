/* Counter-based random numbers (Philox4x32-10, Salmon et al. 2011).
 *
 * A stream is fully determined by (seed, stream id): the n-th draw is a pure
 * function of those and n, so a rollout sample or a synthetic response can
 * be regenerated anywhere without replaying earlier draws. */
#ifndef KPO_CORE_RNG_H
#define KPO_CORE_RNG_H

#include <stdint.h>

typedef struct rng_stream {
    uint32_t key[2];     /* the seed */
    uint32_t counter[4]; /* [0..1] block index, [2..3] stream id */
    uint32_t block[4];   /* the current Philox output block */
    int used;            /* words of block already handed out */
    int has_spare_normal;
    double spare_normal;
} rng_stream;

/* One Philox4x32 round function applied 10 times. */
void rng_philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);

/* Folds several identifiers (step, prompt, sample, ...) into one stream id. */
uint64_t rng_stream_id(uint64_t a, uint64_t b, uint64_t c);

void rng_stream_init(rng_stream *rng, uint64_t seed, uint64_t stream_id);
uint32_t rng_next_u32(rng_stream *rng);
/* Uniform in the open interval (0, 1), 53 random bits. */
double rng_uniform(rng_stream *rng);
double rng_normal(rng_stream *rng);
/* Laplace with scale b = 1 (variance 2, excess kurtosis 3). */
double rng_laplace(rng_stream *rng);
/* Student's t with integer degrees of freedom nu >= 1. */
double rng_student_t(rng_stream *rng, int nu);

#endif
