/* SwiGLU on the device: h = silu(gate) * up, as HF's Qwen3MLP in bf16
 * (silu rounded to bf16, then the product). gate and up rows may be
 * strided (ld), so one fused [tokens, 2 * inter] gate_up product can feed
 * it (gate = base, up = base + inter, ld = 2 * inter). Only built with
 * CUDA. */
#ifndef KPO_MODEL_CUDA_KERNELS_SWIGLU_H
#define KPO_MODEL_CUDA_KERNELS_SWIGLU_H

#include <stdint.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* gate, up [rows, n] bf16 with row stride ld -> h [rows, n] bf16 (contiguous). */
int gpu_swiglu_forward(int64_t rows, int64_t n, int64_t ld, const uint16_t *gate,
                       const uint16_t *up, uint16_t *h, void *stream, kpo_error *err);

/* dh [rows, n] bf16 -> dgate, dup [rows, n] bf16 with row stride ld (the
 * CPU backward's formulas: dup = dh silu(g), dgate = dh u s (1 + g (1 - s)),
 * s = sigmoid(g)). In place: dgate may be gate and dup up (each element
 * is read before it is written); dh must not overlap either output
 * (refused before anything runs). */
int gpu_swiglu_backward(int64_t rows, int64_t n, int64_t ld, const uint16_t *gate,
                        const uint16_t *up, const uint16_t *dh, uint16_t *dgate, uint16_t *dup,
                        void *stream, kpo_error *err);

#ifdef __cplusplus
}
#endif

#endif
