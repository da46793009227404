/* AdamW on the device: fp32 master weights, gradients and moments laid out
 * as model_weights (one buffer, the parameter table's offsets), plus the
 * bf16 copy the forward reads. The per-element update is the CPU's own
 * (model/adamw_update.h). Only built with CUDA. */
#ifndef KPO_MODEL_CUDA_KERNELS_ADAMW_H
#define KPO_MODEL_CUDA_KERNELS_ADAMW_H

#include <stdint.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" { /* the C headers below carry no guards of their own */
#endif
#include "model/model.h"
#include "model/optimizer_adamw.h"

/* *norm = L2 norm of g [n] fp32, summed in double in a fixed order (the
 * same every run; not the CPU's order, so equal to adamw_grad_norm within
 * double rounding, not bit for bit). Synchronises the stream. */
int gpu_adamw_grad_norm(const float *g, int64_t n, double *norm, void *stream, kpo_error *err);

/* As adamw_step: *step += 1, clip g in place by the global norm (returned
 * in *grad_norm when not NULL), update m, v, w (decay skipped on m's
 * is_norm tensors) and write w_bf16 (NULL: no copy). Device buffers, each
 * [m->weights.n_params]: w, g, m1, m2 fp32, w_bf16 bf16. */
int gpu_adamw_step(const adamw_config *config, int64_t *step, const model *m, float *w,
                   uint16_t *w_bf16, float *g, float *m1, float *m2, double *grad_norm,
                   void *stream, kpo_error *err);

#ifdef __cplusplus
}
#endif

#endif
