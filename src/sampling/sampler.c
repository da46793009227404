/* The next-token sampler shared by both backends' decoding (sampler.h). */
#include "sampling/sampler.h"

#include "sampling/sampler_math.h"

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

/* Rank order (sampling/sampler_math.h): logit descending, ties by lower id.
 * order[k].prob carries the logit's key, not a probability: a uint32_t is
 * exact in a double, and ranking by the logit keeps exp() out of the order. */
static int by_rank(const void *a, const void *b)
{
    const sampler_candidate *x = a, *y = b;
    uint32_t kx = (uint32_t)x->prob, ky = (uint32_t)y->prob;
    if (sampler_ranks_before(kx, x->id, ky, y->id))
        return -1;
    return sampler_ranks_before(ky, y->id, kx, x->id) ? 1 : 0;
}

/* probs[vocab] = the softmax of logits / T (sampler_weight, normalised). */
static void tempered_probabilities(const sampler_config *cfg, const float *logits, int64_t vocab,
                                   double *probs)
{
    double max_logit = -INFINITY;
    for (int64_t i = 0; i < vocab; i++)
        max_logit = fmax(max_logit, (double)logits[i]);
    double total = 0.0;
    for (int64_t i = 0; i < vocab; i++) {
        probs[i] = sampler_weight(logits[i], max_logit, cfg->temperature);
        total += probs[i];
    }
    for (int64_t i = 0; i < vocab; i++)
        probs[i] /= total;
}

/* The nucleus's last member in rank order (the reference: it sorts; the
 * GPU finds the same cut by a radix select on the keys). */
static sampler_cut nucleus_cut(const sampler_config *cfg, const float *logits, int64_t vocab,
                               sampler_scratch *s)
{
    sampler_cut cut = {1, 0, 0};
    if (cfg->top_p >= 1.0)
        return cut;
    for (int64_t i = 0; i < vocab; i++)
        s->order[i] = (sampler_candidate){(double)sampler_logit_key(logits[i]), (int32_t)i};
    qsort(s->order, (size_t)vocab, sizeof *s->order, by_rank);
    double mass = 0.0;
    for (int64_t k = 0; k < vocab; k++) {
        mass += s->probs[s->order[k].id];
        if (mass >= cfg->top_p)
            return (sampler_cut){0, (uint32_t)s->order[k].prob, s->order[k].id};
    }
    return cut; /* rounding kept the total short of top_p: keep everything */
}

static int is_kept(const sampler_cut *cut, const float *logits, int64_t i)
{
    return sampler_is_kept(cut, sampler_logit_key(logits[i]), (int32_t)i);
}

/* Sum of the kept probabilities, in id order (the order the draw walks). */
static double kept_mass(const sampler_cut *cut, const float *logits, const double *probs,
                        int64_t vocab)
{
    double mass = 0.0;
    for (int64_t i = 0; i < vocab; i++)
        if (is_kept(cut, logits, i))
            mass += probs[i];
    return mass;
}

int32_t sampler_draw(const sampler_config *cfg, const float *logits, int64_t vocab,
                     sampler_scratch *scratch, rng_stream *rng)
{
    if (cfg->temperature == 0.0)
        return argmax(logits, vocab);
    tempered_probabilities(cfg, logits, vocab, scratch->probs);
    sampler_cut cut = nucleus_cut(cfg, logits, vocab, scratch);
    double u = rng_uniform(rng);
    double mass = cfg->top_p >= 1.0 ? 1.0 : kept_mass(&cut, logits, scratch->probs, vocab);
    double target = sampler_draw_target(u, mass, cfg->top_p), cumulative = 0.0;
    int32_t last = 0;
    for (int64_t i = 0; i < vocab; i++) {
        if (!is_kept(&cut, logits, i))
            continue;
        cumulative += scratch->probs[i];
        last = (int32_t)i;
        if (sampler_crosses(cumulative, target))
            return last;
    }
    return last;
}

void sampler_distribution(const sampler_config *cfg, const float *logits, int64_t vocab,
                          sampler_scratch *scratch, double *probs)
{
    memset(probs, 0, (size_t)vocab * sizeof *probs);
    if (cfg->temperature == 0.0) {
        probs[argmax(logits, vocab)] = 1.0;
        return;
    }
    tempered_probabilities(cfg, logits, vocab, scratch->probs);
    if (cfg->top_p >= 1.0) {
        memcpy(probs, scratch->probs, (size_t)vocab * sizeof *probs);
        return;
    }
    sampler_cut cut = nucleus_cut(cfg, logits, vocab, scratch);
    double mass = kept_mass(&cut, logits, scratch->probs, vocab);
    for (int64_t i = 0; i < vocab; i++)
        if (is_kept(&cut, logits, i))
            probs[i] = scratch->probs[i] / mass;
}
