/* The per-token arithmetic of the policy objectives (algorithms.md §1, §2):
 * the aggregation's weight, the log-ratio clamp, the PPO-clip surrogate and
 * d loss / d logp of one token. objective.c (CPU, double) and
 * objective_cuda.cu (one GPU thread per token) both call these, so the two
 * paths compute the same formulas from one definition; the GPU build
 * compiles them with --fmad=false so nothing is fused (docs/cuda.md). */
#ifndef KPO_LEARNER_OBJECTIVE_TOKEN_H
#define KPO_LEARNER_OBJECTIVE_TOKEN_H

#include <math.h>
#include <stdint.h>

#include "core/hostdev.h"
#include "learner/objective.h"

/* verl clamps the raw token log-ratio of GRPO's vanilla loss to [-20, 20]
 * (log_ratio_max is the KPO/GSPO code's one-sided clamp). */
#define OBJECTIVE_GRPO_LOG_RATIO_LIMIT 20.0

/* What one token contributes. */
typedef struct objective_token {
    double loss;    /* weight * surrogate: the token's share of the aggregated loss */
    double d_logp;  /* d loss / d logp (0 where a clamp or a clip holds the loss constant) */
    double ratio;   /* exp(l_t) after the clamp: the ratio the surrogate used */
    int clipped;    /* the PPO clip (not the dual clip) held the loss */
} objective_token;

/* The weight of each token of an n-token response in the aggregated loss. */
KPO_HOSTDEV static inline double objective_token_weight(loss_aggregation agg,
                                                        objective_normalizer norm, int64_t n)
{
    switch (agg) {
    case LOSS_AGG_TOKEN_MEAN:
        return 1.0 / norm.tokens;
    case LOSS_AGG_SEQ_MEAN_TOKEN_SUM:
        return 1.0 / norm.responses;
    default:
        return 1.0 / (norm.responses * (double)n);
    }
}

/* PPO-clip surrogate of one token: returns the loss, and through *grad_r
 * d loss / d r (0 where a clip holds the loss constant). */
KPO_HOSTDEV static inline double objective_surrogate(const objective_config *cfg,
                                                     double advantage, double ratio,
                                                     double *grad_r, int *clipped)
{
    double loss = -advantage * ratio;
    *grad_r = -advantage;
    *clipped = 0;
    if (!cfg->clip)
        return loss;
    double bounded = fmin(fmax(ratio, 1.0 - cfg->clip_low), 1.0 + cfg->clip_high);
    double clipped_loss = -advantage * bounded;
    if (clipped_loss > loss) {
        loss = clipped_loss;
        *grad_r = 0.0;
        *clipped = 1;
    }
    if (cfg->kind == OBJECTIVE_GRPO && cfg->dual_clip > 0 && advantage < 0) {
        double cap = -advantage * cfg->dual_clip;
        if (loss > cap) {
            loss = cap;
            *grad_r = 0.0;
        }
    }
    return loss;
}

/* One token with log-ratio l (the method's l_t, see objective.h) in a
 * response with this advantage and per-token weight. */
KPO_HOSTDEV static inline objective_token objective_token_eval(const objective_config *cfg,
                                                               double advantage, double weight,
                                                               double l)
{
    /* A clamped log-ratio is constant: no gradient flows through it. */
    int passes = 1;
    double upper = cfg->kind == OBJECTIVE_GRPO ? OBJECTIVE_GRPO_LOG_RATIO_LIMIT
                                               : cfg->log_ratio_max;
    if (l > upper) {
        l = upper;
        passes = 0;
    } else if (cfg->kind == OBJECTIVE_GRPO && l < -OBJECTIVE_GRPO_LOG_RATIO_LIMIT) {
        l = -OBJECTIVE_GRPO_LOG_RATIO_LIMIT;
        passes = 0;
    }
    objective_token tok;
    double grad_r;
    tok.ratio = exp(l);
    double loss = objective_surrogate(cfg, advantage, tok.ratio, &grad_r, &tok.clipped);
    tok.loss = weight * loss;
    tok.d_logp = passes ? weight * grad_r * tok.ratio : 0.0;
    return tok;
}

/* The mean of a response's z, summed in token order: GSPO's l_t. */
KPO_HOSTDEV static inline double objective_response_mean(const double *z, int64_t n)
{
    double mean = 0.0;
    for (int64_t t = 0; t < n; t++)
        mean += z[t];
    return mean / (double)n;
}

/* The per-token part of objective_metrics: what a pass over tokens
 * accumulates (the CPU in token order; the GPU per thread, then merged
 * down a fixed tree). */
typedef struct objective_sums {
    double loss, clipped, log_ratio, raw_sum, used_sum;
    double raw_min, raw_max, used_min, used_max;
    double entropy; /* the GPU path only: the response tokens' entropies */
} objective_sums;

KPO_HOSTDEV static inline void objective_sums_clear(objective_sums *s)
{
    s->loss = s->clipped = s->log_ratio = s->raw_sum = s->used_sum = s->entropy = 0.0;
    s->raw_min = s->used_min = INFINITY;
    s->raw_max = s->used_max = -INFINITY;
}

/* Adds one token whose raw log-ratio is z. */
KPO_HOSTDEV static inline void objective_sums_add(objective_sums *s, const objective_token *tok,
                                                  double z)
{
    s->loss += tok->loss;
    s->clipped += tok->clipped;
    double raw = exp(z);
    s->raw_min = fmin(s->raw_min, raw);
    s->raw_max = fmax(s->raw_max, raw);
    s->raw_sum += raw;
    s->used_min = fmin(s->used_min, tok->ratio);
    s->used_max = fmax(s->used_max, tok->ratio);
    s->used_sum += tok->ratio;
    s->log_ratio += z;
}

KPO_HOSTDEV static inline void objective_sums_merge(objective_sums *into,
                                                    const objective_sums *other)
{
    into->loss += other->loss;
    into->clipped += other->clipped;
    into->log_ratio += other->log_ratio;
    into->raw_sum += other->raw_sum;
    into->used_sum += other->used_sum;
    into->entropy += other->entropy;
    into->raw_min = fmin(into->raw_min, other->raw_min);
    into->raw_max = fmax(into->raw_max, other->raw_max);
    into->used_min = fmin(into->used_min, other->used_min);
    into->used_max = fmax(into->used_max, other->used_max);
}

#ifdef __cplusplus
extern "C" {
#endif
/* metrics (host) += s and n_tokens more tokens (objective.c). */
void objective_metrics_add_sums(objective_metrics *metrics, const objective_sums *s,
                                double n_tokens);
#ifdef __cplusplus
}
#endif

#endif
