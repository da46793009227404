/* Synthetic token log-ratio streams shaped like a KPO run's
 * (logratio_synth.h), for kpo simulate and the offline tools' tests. */
#include "sim/logratio_synth.h"

#include <math.h>
#include <stdlib.h>

#include "core/rng.h"

void synth_config_default(synth_config *cfg)
{
    *cfg = (synth_config){
        .seed = 1,
        .responses = 64,
        .minibatches = 4,
        .min_length = 64,
        .max_length = 1024,
        .noise_scale = 0.012,
        .staleness_floor = 0.05,
        .nu = 4,
        .drift_q = 1e-6,
    };
}

int synth_config_validate(const synth_config *cfg, kpo_error *err)
{
    if (cfg->responses < 1)
        return error_set(err, "responses: must be >= 1, got %lld", (long long)cfg->responses);
    if (cfg->minibatches < 1 || cfg->minibatches > cfg->responses)
        return error_set(err, "minibatches: must be in [1, responses], got %lld",
                         (long long)cfg->minibatches);
    if (cfg->min_length < 1 || cfg->max_length < cfg->min_length)
        return error_set(err, "lengths: need 1 <= min-length <= max-length, got %lld..%lld",
                         (long long)cfg->min_length, (long long)cfg->max_length);
    if (!(cfg->noise_scale > 0) || !isfinite(cfg->noise_scale))
        return error_set(err, "noise-scale: must be > 0, got %g", cfg->noise_scale);
    if (cfg->nu < 3)
        return error_set(err, "nu: Student-t degrees of freedom must be >= 3 (finite "
                              "variance), got %d", cfg->nu);
    if (!(cfg->drift_q >= 0) || !isfinite(cfg->drift_q))
        return error_set(err, "drift-q: must be >= 0, got %g", cfg->drift_q);
    return KPO_OK;
}

int synth_generate_step(const synth_config *cfg, int64_t step, double **values, int64_t *offsets,
                        kpo_error *err)
{
    if (synth_config_validate(cfg, err) != KPO_OK)
        return KPO_ERR;
    /* Lengths first, from their own stream, so values can be sized. */
    rng_stream lengths;
    rng_stream_init(&lengths, cfg->seed, rng_stream_id((uint64_t)step, UINT64_MAX, 0));
    int64_t span = cfg->max_length - cfg->min_length + 1;
    offsets[0] = 0;
    for (int64_t r = 0; r < cfg->responses; r++) {
        int64_t length = cfg->min_length + (int64_t)(rng_uniform(&lengths) * (double)span);
        offsets[r + 1] = offsets[r] + (length > cfg->max_length ? cfg->max_length : length);
    }
    double *out = malloc((size_t)offsets[cfg->responses] * sizeof *out);
    if (!out)
        return error_set(err, "synthetic step %lld: out of memory", (long long)step);

    const double unit = 1.0 / sqrt((double)cfg->nu / (cfg->nu - 2.0));
    const int64_t per_minibatch = (cfg->responses + cfg->minibatches - 1) / cfg->minibatches;
    for (int64_t r = 0; r < cfg->responses; r++) {
        rng_stream rng;
        rng_stream_init(&rng, cfg->seed, rng_stream_id((uint64_t)step, (uint64_t)r, 1));
        double staleness = (double)(r / per_minibatch) + cfg->staleness_floor;
        double scale = cfg->noise_scale * staleness, drift = 0.0;
        for (int64_t i = offsets[r]; i < offsets[r + 1]; i++) {
            drift += sqrt(cfg->drift_q) * rng_normal(&rng);
            out[i] = drift + scale * unit * rng_student_t(&rng, cfg->nu);
        }
    }
    *values = out;
    return KPO_OK;
}
