/* src/filter: the Kalman filter over token log-ratios.
 * defines:
 *   filter, filter_step.h      the exact recursion and saturation modes (this header)
 *   filter_cuda, filter_cuda_none.c
 *       the same recursion on a GPU
 *   filter_params, filter_config.c
 *       the filter's parameters and their config section
 *   filter_official            the official code's float32 filter, as it runs
 *   gain                       closed forms: K_t, K_inf, memory, thresholds
 *   innov_stats, innov_stats_update.h
 *       innovation statistics that merge exactly */
/* The KPO Kalman filter over token log-ratios, with innovation saturation.
 *
 * Model (per response, reset at its first token):
 *   rho_t = rho_{t-1} + w_t,  w_t ~ N(0, Q)      latent smoothed log-ratio
 *   z_t   = rho_t + v_t,      v_t ~ N(0, V)      observed log pi - log pi_old
 * Each token: P_pred = P + Q, K = P_pred / (P_pred + V), delta = z - rho,
 * rho += K * sat(delta), P = P_pred * V / (P_pred + V). The recursion runs
 * sequentially in double precision: the official code's parallel cumsum form
 * loses the result after ~700 tokens at Q/V = 1e-2 (docs/filter.md). */
#ifndef KPO_FILTER_FILTER_H
#define KPO_FILTER_FILTER_H

#include <stdint.h>

#include "core/error.h"
#include "filter/innov_stats.h"

typedef enum filter_mode {
    FILTER_MODE_NONE = 0,  /* KPO: no saturation */
    FILTER_MODE_SIGMA,     /* IS-KPO: clip delta at kappa * sqrt(P_pred + V) */
    FILTER_MODE_SQRTV,     /* clip delta at kappa * sqrt(V) (Yang & Boyd, one step) */
    FILTER_MODE_ITERATED,  /* Yang & Boyd's iteratively saturated update */
    FILTER_MODE_ADAPTIVE,  /* Fang et al.-style adaptive saturation bound */
    FILTER_MODE_COUNT
} filter_mode;

typedef struct filter_config {
    double q;          /* process noise variance Q >= 0 */
    double v;          /* measurement noise variance V > 0 */
    double rho0;       /* initial state of every response */
    double p0;         /* initial posterior variance of every response, >= 0 */
    filter_mode mode;
    double kappa;      /* sigma: multiple of sigma_t; sqrtv and iterated: c_o, multiple of
                          sqrt(V); adaptive: the nominal bound in units of sigma_t */
    /* iterated only */
    int iterations;    /* scaled-gradient iterations n >= 1 */
    double c_state;    /* c_s: Huber threshold on the state residual (units of sqrt(P_pred)) */
    double step_size;  /* eta in (0, 2) */
    int scale_covariance; /* 1: P^-1 = alpha/P_pred + beta/V (Yang & Boyd's default) */
    /* adaptive only */
    double lambda_bound;  /* forgetting factor of the squared bound s_t, in [0, 1) */
    double lambda_energy; /* forgetting factor of the innovation energy eps_t, in [0, 1) */
} filter_config;

/* The defaults of the filter's parameter table (filter/filter_params.c,
 * which also names the modes): Q = 1e-6, V = 1, rho0 = P0 = 0 (the KPO
 * code's defaults), mode none, kappa = 3, iterated: n = 3, c_s = kappa
 * (filter_config_resolve), eta = 1, scaled covariance; adaptive:
 * lambda_bound = lambda_energy = 0.9. */
void filter_config_default(filter_config *cfg);

/* Rejects every parameter outside its domain with a message naming it. */
int filter_config_validate(const filter_config *cfg, kpo_error *err);

int filter_mode_parse(const char *name, filter_mode *mode, kpo_error *err);
const char *filter_mode_name(filter_mode mode);

/* Per-token outputs; each array holds n_tokens entries. Any pointer may be
 * NULL when the caller does not need that output. */
typedef struct filter_outputs {
    double *rho;        /* [n_tokens] filtered log-ratio rho_{t|t} */
    double *gain;       /* [n_tokens] Kalman gain K_t */
    double *innovation; /* [n_tokens] raw innovation delta_t = z_t - rho_{t|t-1} */
    double *threshold;  /* [n_tokens] saturation threshold (+inf in mode none) */
    uint8_t *clipped;   /* [n_tokens] 1 where |delta_t| > threshold */
} filter_outputs;

/* The input checks filter_apply makes before writing anything: offsets
 * start at 0 and never decrease, and every value is finite (the message
 * names the response and token). */
int filter_validate_input(const double *values, const int64_t *offsets, int64_t n_responses,
                          kpo_error *err);

/* Filters a batch of ragged responses. Response r holds
 * values[offsets[r] .. offsets[r+1]), so offsets has n_responses + 1
 * non-decreasing entries starting at 0. Statistics of every token are added
 * to stats when it is not NULL. Non-finite values are an error naming the
 * response and token. */
int filter_apply(const filter_config *cfg, const double *values, const int64_t *offsets,
                 int64_t n_responses, filter_outputs *out, innov_stats *stats,
                 kpo_error *err);

#endif
