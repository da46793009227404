/* One token of the Kalman recursion, shared by filter.c (CPU) and
 * filter_cuda.cu (one GPU thread per response). Everything here is static
 * inline and KPO_HOSTDEV so both compilers see the same source; the GPU
 * build compiles it with --fmad=false so no multiply-add is fused and the
 * two paths round alike (docs/cuda.md). */
#ifndef KPO_FILTER_FILTER_STEP_H
#define KPO_FILTER_FILTER_STEP_H

#include <math.h>

#include "core/hostdev.h"
#include "filter/filter.h"

/* The state carried from one token to the next within a response. */
typedef struct response_state {
    double rho;    /* posterior mean rho_{t|t} */
    double p;      /* posterior variance P_{t|t} */
    double bound2; /* adaptive: squared bound s_t, in units of sigma_t^2 */
    double energy; /* adaptive: innovation energy eps_t (EMA of (delta/sigma)^2) */
} response_state;

/* What one token's update produced. */
typedef struct token_result {
    double gain, delta, sigma, threshold;
    int clipped;
} token_result;

/* The state at a response's first token: the configured prior, and the
 * adaptive bound at its nominal values. */
KPO_HOSTDEV static inline response_state filter_state_initial(const filter_config *cfg)
{
    response_state st;
    st.rho = cfg->rho0;
    st.p = cfg->p0;
    st.bound2 = cfg->kappa * cfg->kappa;
    st.energy = 1.0;
    return st;
}

KPO_HOSTDEV static inline double filter_clip_symmetric(double x, double limit)
{
    return x > limit ? limit : (x < -limit ? -limit : x);
}

/* Yang & Boyd (2025), scalar case with C = 1: scaled-gradient iterations on
 * the Huber problem H_cs(|x - x_pred| / sqrt(P_pred)) + H_co(|z - x| / sqrt(V)),
 * started at the prediction. Returns the posterior mean; *p_post receives the
 * posterior variance. */
KPO_HOSTDEV static inline double filter_iterated_update(const filter_config *cfg, double x_pred,
                                                        double p_pred, double z, double gain,
                                                        double *p_post)
{
    const double sp = sqrt(p_pred), sv = sqrt(cfg->v);
    const double c_o = cfg->kappa, c_s = cfg->c_state;
    double x = x_pred;
    for (int j = 0; j < cfg->iterations; j++) {
        double state_residual = sp > 0 ? fabs(x - x_pred) / sp : 0.0;
        double measurement_residual = fabs(z - x) / sv;
        double alpha = state_residual > c_s ? c_s / state_residual : 1.0;
        double beta = measurement_residual > c_o ? c_o / measurement_residual : 1.0;
        x += cfg->step_size * (beta * gain * (z - x) + alpha * (1.0 - gain) * (x_pred - x));
    }
    if (p_pred == 0.0) {
        *p_post = 0.0; /* a zero prior variance stays zero: the state is known */
    } else if (cfg->scale_covariance) {
        double state_residual = fabs(x - x_pred) / sp;
        double measurement_residual = fabs(z - x) / sv;
        double alpha = state_residual > c_s ? c_s / state_residual : 1.0;
        double beta = measurement_residual > c_o ? c_o / measurement_residual : 1.0;
        alpha = fmax(alpha, 1e-9);
        beta = fmax(beta, 1e-9);
        *p_post = 1.0 / (alpha / p_pred + beta / cfg->v);
    } else {
        *p_post = p_pred * cfg->v / (p_pred + cfg->v);
    }
    return x;
}

/* Advances st by one observed log-ratio z and reports the token's gain,
 * raw innovation, sigma_t, threshold and whether it was clipped. */
KPO_HOSTDEV static inline token_result filter_step(const filter_config *cfg, response_state *st,
                                                   double z)
{
    token_result r;
    const double p_pred = st->p + cfg->q;
    const double innovation_var = p_pred + cfg->v;
    r.gain = p_pred / innovation_var;
    r.delta = z - st->rho;
    r.sigma = sqrt(innovation_var);

    switch (cfg->mode) {
    case FILTER_MODE_SIGMA:
        r.threshold = cfg->kappa * r.sigma;
        break;
    case FILTER_MODE_SQRTV:
    case FILTER_MODE_ITERATED:
        r.threshold = cfg->kappa * sqrt(cfg->v);
        break;
    case FILTER_MODE_ADAPTIVE:
        r.threshold = sqrt(st->bound2) * r.sigma;
        break;
    default:
        r.threshold = INFINITY;
        break;
    }
    r.clipped = fabs(r.delta) > r.threshold;

    if (cfg->mode == FILTER_MODE_ITERATED) {
        st->rho = filter_iterated_update(cfg, st->rho, p_pred, z, r.gain, &st->p);
        return r;
    }

    st->rho += r.gain * filter_clip_symmetric(r.delta, r.threshold);
    /* P_pred * V / (P_pred + V) rather than (1 - K) * P_pred: no cancellation
     * when K is close to 1. */
    st->p = p_pred * cfg->v / innovation_var;

    if (cfg->mode == FILTER_MODE_ADAPTIVE) {
        /* s_{t+1} = l1 s_t + g1 eps_t exp(-eps_t);  eps_{t+1} = l2 eps_t + g2 (delta/sigma)^2,
         * with g2 = 1 - l2 (eps is an EMA of the squared normalised innovation, 1 under
         * the model) and g1 = (1 - l1) kappa^2 e, so that s settles at kappa^2 when the
         * innovations are as the model says, and shrinks under a burst of outliers. */
        double normalised = r.delta / r.sigma;
        double g1 = (1.0 - cfg->lambda_bound) * cfg->kappa * cfg->kappa * M_E;
        st->bound2 = cfg->lambda_bound * st->bound2 + g1 * st->energy * exp(-st->energy);
        st->energy = cfg->lambda_energy * st->energy
                     + (1.0 - cfg->lambda_energy) * normalised * normalised;
    }
    return r;
}

/* Writes token i's outputs into whichever arrays out asks for (out and any
 * of its pointers may be NULL). */
KPO_HOSTDEV static inline void filter_store_token(const filter_outputs *out, int64_t i, double rho,
                                                  const token_result *t)
{
    if (!out)
        return;
    if (out->rho)
        out->rho[i] = rho;
    if (out->gain)
        out->gain[i] = t->gain;
    if (out->innovation)
        out->innovation[i] = t->delta;
    if (out->threshold)
        out->threshold[i] = t->threshold;
    if (out->clipped)
        out->clipped[i] = (uint8_t)t->clipped;
}

#endif
