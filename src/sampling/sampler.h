/* Next-token sampling from logits: temperature, nucleus (top-p) and greedy,
 * driven by a counter-based stream so a response can be replayed from
 * (seed, step, prompt, sample) alone. */
#ifndef KPO_SAMPLING_SAMPLER_H
#define KPO_SAMPLING_SAMPLER_H

#include <stdint.h>

#include "core/error.h"
#include "core/rng.h"

typedef struct sampler_config {
    double temperature; /* 0: greedy (argmax, lowest id on ties) */
    double top_p;       /* (0, 1]: keep the smallest most-probable set with mass >= top_p */
} sampler_config;

typedef struct sampler_candidate {
    double prob;
    int32_t id;
} sampler_candidate;

/* Scratch for the nucleus sort; one per thread. */
typedef struct sampler_scratch {
    int64_t capacity;
    double *probs;              /* [vocab] */
    sampler_candidate *order;   /* [vocab] most probable first */
} sampler_scratch;

int sampler_config_validate(const sampler_config *cfg, kpo_error *err);
int sampler_scratch_init(sampler_scratch *s, int64_t vocab, kpo_error *err);
void sampler_scratch_free(sampler_scratch *s);

/* The stream of response `sample` of prompt `prompt` at `step`. */
void sampler_stream_init(rng_stream *rng, uint64_t seed, int64_t step, int64_t prompt,
                         int64_t sample);

/* Draws one token from logits[vocab]; consumes exactly one uniform from
 * rng unless greedy. */
int32_t sampler_draw(const sampler_config *cfg, const float *logits, int64_t vocab,
                     sampler_scratch *scratch, rng_stream *rng);

/* The probability sampler_draw gives each token (tests; probs[vocab]). */
void sampler_distribution(const sampler_config *cfg, const float *logits, int64_t vocab,
                          sampler_scratch *scratch, double *probs);

#endif
