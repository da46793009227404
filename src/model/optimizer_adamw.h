/* AdamW (Loshchilov & Hutter) with decoupled weight decay that skips the
 * RMSNorm gains, bias-corrected moments, global gradient-norm clipping and
 * a linear-warmup-then-constant learning rate, counted in optimizer steps
 * or, as verl counts it, in rollout steps. */
#ifndef KPO_MODEL_OPTIMIZER_ADAMW_H
#define KPO_MODEL_OPTIMIZER_ADAMW_H

#include <stddef.h>
#include <stdint.h>

#include "model/adamw_update.h"
#include "model/model.h"

/* What the warmup counts.
 *   UPDATES: optimizer steps; step t < W runs at lr t / W (from lr / W up).
 *   VERL: rollout steps, as verl's get_constant_schedule_with_warmup does
 *         when its scheduler steps once per rollout batch: every update of
 *         rollout step r (0-based: the r-th batch) runs at lr r / W while
 *         r < W, so the first batch's updates run at lr 0. */
typedef enum adamw_schedule { ADAMW_SCHEDULE_UPDATES = 0, ADAMW_SCHEDULE_VERL } adamw_schedule;

typedef struct adamw_config {
    double lr;           /* peak learning rate */
    int64_t warmup_steps; /* W: the ramp's length, in what the schedule counts */
    adamw_schedule schedule;
    int64_t updates_per_rollout; /* VERL: optimizer steps per rollout step (the mini-batches) */
    double beta1, beta2, eps;
    double weight_decay;
    double max_grad_norm; /* <= 0: no clipping */
} adamw_config;

typedef struct adamw_state {
    adamw_config config;
    int64_t step;  /* steps taken */
    float *m;      /* [n_params] first moment */
    float *v;      /* [n_params] second moment */
    int64_t n_params;
} adamw_state;

adamw_config adamw_config_default(void);

/* The optimizer's parameters (the [optim] section of `kpo train`), stored
 * in an adamw_config; warmup_ratio and schedule_steps (lr_schedule = verl)
 * are turned into warmup_steps by the trainer. The library defaults above
 * are not these rows' (weight decay 0.01, no warmup). */
struct param_def; /* core/param_table.h */
const struct param_def *adamw_params(size_t *n_rows);
int adamw_init(adamw_state *state, const model *m, const adamw_config *config, kpo_error *err);
void adamw_free(adamw_state *state);

/* Learning rate of 1-based step `step`. */
double adamw_lr_at(const adamw_config *config, int64_t step);

/* L2 norm of all gradients, accumulated in double in a fixed order. */
double adamw_grad_norm(const model_weights *grads);

/* The scalars of 1-based step `step` given the pre-clip gradient norm
 * (decay_rate = lr * weight_decay; a tensor's decay is 0 when is_norm).
 * Shared by adamw_step and the GPU optimizer. */
adamw_coeffs adamw_coeffs_at(const adamw_config *config, int64_t step, double grad_norm);

/* Clips grads to max_grad_norm (in place), then updates m's weights.
 * Returns the pre-clip gradient norm through *grad_norm when not NULL. */
void adamw_step(adamw_state *state, model *m, model_weights *grads, double *grad_norm);

#endif
