#include "rollout/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int sampler_config_validate(const sampler_config *cfg, kpo_error *err)
{
    if (!(cfg->temperature >= 0 && isfinite(cfg->temperature)))
        return error_set(err, "rollout.temperature: must be >= 0, got %g", cfg->temperature);
    if (!(cfg->top_p > 0 && cfg->top_p <= 1))
        return error_set(err, "rollout.top_p: must be in (0, 1], got %g", cfg->top_p);
    return KPO_OK;
}

int sampler_scratch_init(sampler_scratch *s, int64_t vocab, kpo_error *err)
{
    s->capacity = vocab;
    s->probs = malloc((size_t)vocab * sizeof *s->probs);
    s->order = malloc((size_t)vocab * sizeof *s->order);
    if (!s->probs || !s->order) {
        sampler_scratch_free(s);
        return error_set(err, "sampler: out of memory for a %lld-token vocabulary",
                         (long long)vocab);
    }
    return KPO_OK;
}

void sampler_scratch_free(sampler_scratch *s)
{
    free(s->probs);
    free(s->order);
    s->probs = NULL;
    s->order = NULL;
}

void sampler_stream_init(rng_stream *rng, uint64_t seed, int64_t step, int64_t prompt,
                         int64_t sample)
{
    rng_stream_init(rng, seed, rng_stream_id((uint64_t)step, (uint64_t)prompt, (uint64_t)sample));
}

static int32_t argmax(const float *logits, int64_t vocab)
{
    int64_t best = 0;
    for (int64_t i = 1; i < vocab; i++)
        if (logits[i] > logits[best])
            best = i;
    return (int32_t)best;
}

/* Most probable first; ties by lower id, so the order is deterministic. */
static int by_probability_desc(const void *a, const void *b)
{
    const sampler_candidate *x = a, *y = b;
    if (x->prob != y->prob)
        return x->prob > y->prob ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Fills scratch->probs with the softmax of logits / T; returns how many of
 * scratch->order (most probable first) form the nucleus, or vocab when
 * top_p = 1 (then order is unused). */
static int64_t nucleus(const sampler_config *cfg, const float *logits, int64_t vocab,
                       sampler_scratch *s)
{
    double max_logit = -INFINITY;
    for (int64_t i = 0; i < vocab; i++)
        max_logit = fmax(max_logit, (double)logits[i]);
    double total = 0.0;
    for (int64_t i = 0; i < vocab; i++) {
        s->probs[i] = exp(((double)logits[i] - max_logit) / cfg->temperature);
        total += s->probs[i];
    }
    for (int64_t i = 0; i < vocab; i++)
        s->probs[i] /= total;
    if (cfg->top_p >= 1.0)
        return vocab;
    for (int64_t i = 0; i < vocab; i++)
        s->order[i] = (sampler_candidate){s->probs[i], (int32_t)i};
    qsort(s->order, (size_t)vocab, sizeof *s->order, by_probability_desc);
    double mass = 0.0;
    int64_t kept = 0;
    while (kept < vocab && mass < cfg->top_p)
        mass += s->order[kept++].prob;
    return kept;
}

int32_t sampler_draw(const sampler_config *cfg, const float *logits, int64_t vocab,
                     sampler_scratch *scratch, rng_stream *rng)
{
    if (cfg->temperature == 0.0)
        return argmax(logits, vocab);
    int64_t kept = nucleus(cfg, logits, vocab, scratch);
    double u = rng_uniform(rng);
    if (kept == vocab) {
        double cumulative = 0.0;
        for (int64_t i = 0; i < vocab; i++) {
            cumulative += scratch->probs[i];
            if (u < cumulative)
                return (int32_t)i;
        }
        return (int32_t)(vocab - 1);
    }
    double mass = 0.0;
    for (int64_t k = 0; k < kept; k++)
        mass += scratch->order[k].prob;
    double target = u * mass, cumulative = 0.0;
    for (int64_t k = 0; k < kept; k++) {
        cumulative += scratch->order[k].prob;
        if (target < cumulative)
            return scratch->order[k].id;
    }
    return scratch->order[kept - 1].id;
}

void sampler_distribution(const sampler_config *cfg, const float *logits, int64_t vocab,
                          sampler_scratch *scratch, double *probs)
{
    memset(probs, 0, (size_t)vocab * sizeof *probs);
    if (cfg->temperature == 0.0) {
        probs[argmax(logits, vocab)] = 1.0;
        return;
    }
    int64_t kept = nucleus(cfg, logits, vocab, scratch);
    if (kept == vocab) {
        memcpy(probs, scratch->probs, (size_t)vocab * sizeof *probs);
        return;
    }
    double mass = 0.0;
    for (int64_t k = 0; k < kept; k++)
        mass += scratch->order[k].prob;
    for (int64_t k = 0; k < kept; k++)
        probs[scratch->order[k].id] = scratch->order[k].prob / mass;
}
