/* src/sim: synthetic data.
 * defines:
 *   logratio_synth             log-ratio streams shaped like a KPO run (this header) */
/* Synthetic token log-ratio streams shaped like those of a KPO run, for the
 * demonstration and the tests of the offline tools before a model exists.
 *
 * A rollout batch is split into M mini-batches; mini-batch k is k optimizer
 * steps stale, so its log-ratios z_t = log pi - log pi_old spread more:
 *   z_t = d_t + s_k * e_t,  s_k = noise_scale * (k + staleness_floor),
 *   d_t = d_{t-1} + sqrt(drift_q) * N(0,1)   (slow drift within a response)
 *   e_t ~ Student-t(nu) / sqrt(nu / (nu - 2))  (unit variance, heavy tails)
 * Every response is a pure function of (seed, step, response index). */
#ifndef KPO_SIM_LOGRATIO_SYNTH_H
#define KPO_SIM_LOGRATIO_SYNTH_H

#include <stdint.h>

#include "core/error.h"

typedef struct synth_config {
    uint64_t seed;
    int64_t responses;    /* per step */
    int64_t minibatches;  /* M >= 1 */
    int64_t min_length, max_length;
    double noise_scale;   /* spread added per step of staleness */
    double staleness_floor; /* numerical noise of the on-policy mini-batch */
    int nu;               /* Student-t degrees of freedom, >= 3 */
    double drift_q;       /* variance of the drift's per-token increment */
} synth_config;

void synth_config_default(synth_config *cfg);
int synth_config_validate(const synth_config *cfg, kpo_error *err);

/* Fills values[offsets[r] .. offsets[r+1]) for r < cfg->responses.
 * offsets must hold responses + 1 entries; values is malloc'ed. */
int synth_generate_step(const synth_config *cfg, int64_t step, double **values, int64_t *offsets,
                        kpo_error *err);

#endif
