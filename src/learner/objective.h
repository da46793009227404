/* The policy objectives: KPO (filtered token ratio), GRPO (raw token
 * ratio) and GSPO (sequence ratio), as one PPO-clip surrogate over a
 * per-token log-ratio that differs by method (algorithms.md §1, §2).
 *
 * For every method the ratio's value is r_t = exp(l_t) and its gradient
 * with respect to the token's log-prob is r_t (the stop-gradient
 * construction log r = log pi - sg(log pi) + sg(l_t)), where
 *   kpo:  l_t = rho_t, the Kalman-filtered log-ratio (src/filter)
 *   grpo: l_t = z_t = log pi - log pi_old
 *   gspo: l_t = mean over the response of z
 * so the loss gradient enters the model as d loss / d log pi per token.
 * The per-token formulas are objective_token.h; objective_cuda.h computes
 * the same on a GPU, from log-probs that stay on the device. */
#ifndef KPO_LEARNER_OBJECTIVE_H
#define KPO_LEARNER_OBJECTIVE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "filter/filter.h"
#include "filter/innov_stats.h"

typedef enum objective_kind {
    OBJECTIVE_KPO = 0,
    OBJECTIVE_GRPO,
    OBJECTIVE_GSPO,
    OBJECTIVE_COUNT
} objective_kind;

typedef enum loss_aggregation {
    LOSS_AGG_TOKEN_MEAN = 0,         /* sum over all tokens / global token count */
    LOSS_AGG_SEQ_MEAN_TOKEN_MEAN,    /* per-response token mean, then mean over responses */
    LOSS_AGG_SEQ_MEAN_TOKEN_SUM,     /* per-response token sum, then mean over responses */
    LOSS_AGG_COUNT
} loss_aggregation;

typedef struct objective_config {
    objective_kind kind;
    double clip_low;      /* eps_low: ratios below 1 - eps_low are clipped (A < 0) */
    double clip_high;     /* eps_high: ratios above 1 + eps_high are clipped (A > 0) */
    double dual_clip;     /* grpo only: c > 1 caps the loss of A < 0 at -A c; 0 = off */
    int clip;             /* 0: unclipped surrogate -A r (KPO's is_clip = false) */
    loss_aggregation aggregation;
    double log_ratio_max; /* kpo, gspo: l_t is clamped at this (their code: 10); grpo uses
                             verl's fixed [-20, 20] */
    filter_config filter; /* kpo only */
    /* kpo: official_width > 0 takes l_t from the official code's float32
     * parallel filter (filter/filter_official.h) over each response padded
     * to this width, as verl pads to response_length; a NaN it produces,
     * in the response or its padding, makes the loss NaN as it does there
     * (and the learner then skips the update, as verl's actor does). The
     * exact filter still runs for the innovation statistics. 0: the exact
     * recursion (filter_apply). */
    int64_t official_width;
} objective_config;

/* Global batch sizes the aggregation divides by: the whole mini-batch
 * across learner ranks, so that summing gradients over ranks (all-reduce)
 * gives the single-rank result. */
typedef struct objective_normalizer {
    double responses;
    double tokens;
} objective_normalizer;

typedef struct objective_metrics {
    double loss;               /* this rank's share of the aggregated loss */
    double tokens;             /* tokens seen */
    double clipped_tokens;     /* tokens whose surrogate was clipped (zero gradient) */
    double log_ratio_sum;      /* sum of z_t, for approx_kl = -mean z */
    double raw_ratio_min, raw_ratio_max, raw_ratio_sum;   /* exp(z_t) */
    double used_ratio_min, used_ratio_max, used_ratio_sum; /* exp(l_t) */
    innov_stats innovation;    /* kpo: the filter's statistics */
} objective_metrics;

void objective_config_default(objective_config *cfg);

/* The learner's parameters (the [learner] section of `kpo train`), stored
 * in a learner_config (learner/learner_step.h); objective_config_default's
 * values are these rows' defaults. */
struct param_def; /* core/param_table.h */
const struct param_def *learner_params(size_t *n_rows);
int objective_config_validate(const objective_config *cfg, kpo_error *err);
int objective_kind_parse(const char *name, objective_kind *kind, kpo_error *err);
const char *objective_kind_name(objective_kind kind);
int loss_aggregation_parse(const char *name, loss_aggregation *agg, kpo_error *err);
const char *loss_aggregation_name(loss_aggregation agg);

void objective_metrics_init(objective_metrics *m);
/* Adds another rank's or mini-batch's metrics. */
void objective_metrics_merge(objective_metrics *into, const objective_metrics *other);

/* Responses r: tokens [offsets[r], offsets[r+1]). logp, logp_old and
 * d_logp: [n_tokens]; advantages: [n_responses]. Writes d loss / d logp
 * into d_logp and adds this batch to metrics. */
int objective_compute(const objective_config *cfg, const double *logp, const double *logp_old,
                      const int64_t *offsets, int64_t n_responses, const double *advantages,
                      objective_normalizer norm, double *d_logp, objective_metrics *metrics,
                      kpo_error *err);

#endif
