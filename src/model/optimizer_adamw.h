/* AdamW (Loshchilov & Hutter) with decoupled weight decay that skips the
 * RMSNorm gains, bias-corrected moments, global gradient-norm clipping and
 * a linear-warmup-then-constant learning rate. */
#ifndef KPO_MODEL_OPTIMIZER_ADAMW_H
#define KPO_MODEL_OPTIMIZER_ADAMW_H

#include <stdint.h>

#include "model/adamw_update.h"
#include "model/model.h"

typedef struct adamw_config {
    double lr;           /* peak learning rate */
    int64_t warmup_steps; /* linear ramp from lr / warmup_steps to lr */
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
