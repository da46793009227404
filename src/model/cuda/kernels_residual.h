/* Small elementwise kernels the GPU model's wiring needs between the
 * library kernels: the residual add (HF's bf16 `hidden + out`), copying a
 * column block between row-strided matrices (splitting the fused q/k/v
 * product and joining its gradients), and gathering rows (each decoded
 * sequence's last token). Only built with CUDA. */
#ifndef KPO_MODEL_CUDA_KERNELS_RESIDUAL_H
#define KPO_MODEL_CUDA_KERNELS_RESIDUAL_H

#include <stdint.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out [n] bf16 = bf16(float(a) + float(b)), one rounding as torch's bf16
 * add; out may be a or b (in place). */
int gpu_residual_add(int64_t n, const uint16_t *a, const uint16_t *b, uint16_t *out,
                     void *stream, kpo_error *err);

/* dst[r, 0..width) = src[r, 0..width) for r < rows, bf16, rows of src
 * src_ld elements apart and of dst dst_ld apart (both >= width). */
int gpu_columns_copy(int64_t rows, int64_t width, const uint16_t *src, int64_t src_ld,
                     uint16_t *dst, int64_t dst_ld, void *stream, kpo_error *err);

/* dst [n_rows, width] bf16 = src[rows[i]] (src [*, width] bf16, rows
 * device int32, each a valid row of src). */
int gpu_rows_gather(int64_t n_rows, int64_t width, const int32_t *rows, const uint16_t *src,
                    uint16_t *dst, void *stream, kpo_error *err);

#ifdef __cplusplus
}
#endif

#endif
