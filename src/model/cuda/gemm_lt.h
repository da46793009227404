/* bf16 matrix products through cuBLASLt (fp32 accumulate), in the CPU
 * model's row-major terms: weights are HF's [out, in], activations
 * [rows, features], so the forward is y = x W^T and backward needs
 * dX = dY W and dW += dY^T X (the same three products as model_ops.h).
 * Only built with CUDA. */
#ifndef KPO_MODEL_CUDA_GEMM_LT_H
#define KPO_MODEL_CUDA_GEMM_LT_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One cuBLASLt handle, one device workspace and a small cache of matmul
 * plans (descriptors + the heuristic's algorithm) keyed by shape,
 * transposes, types and pointer alignment. Not thread-safe: one per
 * thread/stream user. */
typedef struct gemm_lt gemm_lt;

/* workspace_bytes: 0 picks 32 MiB (what cuBLAS recommends on Hopper). */
int gemm_lt_create(gemm_lt **out, size_t workspace_bytes, kpo_error *err);
void gemm_lt_destroy(gemm_lt *g);

/* y[rows, out] bf16 = x[rows, in] bf16 W[out, in]^T bf16 (fp32 accumulate,
 * one rounding to bf16 at the end). stream: a cudaStream_t, NULL = default. */
int gemm_lt_linear(gemm_lt *g, int64_t rows, int64_t in, int64_t out, const uint16_t *x,
                   const uint16_t *w, uint16_t *y, void *stream, kpo_error *err);

/* y[rows, out] fp32 = x[rows, in] bf16 W[out, in]^T bf16, the fp32
 * accumulator written without rounding to bf16: for outputs whose absolute
 * error matters, as the lm_head's logits (a log-prob is a difference of two
 * ~10-30 sized numbers; bf16 would put ~0.05 of error into it). */
int gemm_lt_linear_f32(gemm_lt *g, int64_t rows, int64_t in, int64_t out, const uint16_t *x,
                       const uint16_t *w, float *y, void *stream, kpo_error *err);

/* dx[rows, in] bf16 = beta * dx + dy[rows, out] bf16 W[out, in] bf16
 * (beta 0 or 1: 1 sums the gate and up paths' input gradients). */
int gemm_lt_linear_dx(gemm_lt *g, int64_t rows, int64_t in, int64_t out, const uint16_t *dy,
                      const uint16_t *w, uint16_t *dx, float beta, void *stream, kpo_error *err);

/* dw[out, in] fp32 += dy[rows, out]^T bf16 x[rows, in] bf16: weight
 * gradients accumulate in fp32 across micro-batches (and tied uses). */
int gemm_lt_linear_dw(gemm_lt *g, int64_t rows, int64_t in, int64_t out, const uint16_t *dy,
                      const uint16_t *x, float *dw, void *stream, kpo_error *err);

#ifdef __cplusplus
}
#endif

#endif
