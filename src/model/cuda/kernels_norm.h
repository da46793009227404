/* RMSNorm on the device, bf16 activations with fp32 statistics, as HF's
 * Qwen3RMSNorm: y = w * bf16(x * rstd), rstd = 1 / sqrt(mean(x^2) + eps).
 * The per-head QK-norm is the same call over rows = tokens * heads and
 * n = head_dim ([tokens, heads, head_dim] is [tokens * heads, head_dim]).
 * n must be even (bf16 pairs are loaded as one word; every Qwen3 width is)
 * and the pointers 4-byte aligned. Only built with CUDA. */
#ifndef KPO_MODEL_CUDA_KERNELS_NORM_H
#define KPO_MODEL_CUDA_KERNELS_NORM_H

#include <stdint.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* x [rows, n] bf16, w [n] bf16 -> y [rows, n] bf16 (y may be x: in place),
 * rstd [rows] fp32 (NULL: not kept, e.g. in decode). */
int gpu_rmsnorm_forward(int64_t rows, int64_t n, const uint16_t *x, const uint16_t *w, float eps,
                        uint16_t *y, float *rstd, void *stream, kpo_error *err);

/* Given dy [rows, n] bf16, the forward's input x and rstd:
 * dx [rows, n] bf16 = (accumulate ? dx : 0) + d/dx, dw [n] fp32 += d/dw
 * (the same formulas as ops_rmsnorm_backward, in fp32). dw's sum over rows
 * runs in a fixed order: repeatable.
 * In place: dx may be dy (the same pointer) when accumulate is 0; dw is
 * summed from dy before dx is written. Any other overlap between dx or dw
 * and an input, or between dx and dw, is refused before anything runs. */
int gpu_rmsnorm_backward(int64_t rows, int64_t n, const uint16_t *x, const uint16_t *w,
                         const float *rstd, const uint16_t *dy, uint16_t *dx, int accumulate,
                         float *dw, void *stream, kpo_error *err);

#ifdef __cplusplus
}
#endif

#endif
