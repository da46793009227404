/* Rotary position embedding on the device, HF's rotate-half layout
 * (element j pairs with j + head_dim / 2), with the CPU's fp32 cos/sin
 * table (ops_rope_table_init) copied up, so both backends use the very same
 * angles. Only built with CUDA. */
#ifndef KPO_MODEL_CUDA_KERNELS_ROPE_H
#define KPO_MODEL_CUDA_KERNELS_ROPE_H

#include <stdint.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gpu_rope_table {
    float *cos; /* [n_positions, half] fp32, device */
    float *sin; /* [n_positions, half] fp32, device */
    int64_t n_positions;
    int64_t half; /* head_dim / 2 */
} gpu_rope_table;

int gpu_rope_table_create(gpu_rope_table *table, int64_t n_positions, int64_t head_dim,
                          double theta, kpo_error *err);
void gpu_rope_table_free(gpu_rope_table *table);

/* Rotates x [tokens, heads, 2 * half] bf16 in place by the angles of
 * positions [tokens] int32 (device; positions restart in each packed
 * sequence); inverse rotates by -angle, which is the backward. A position
 * outside the table makes that token's outputs NaN (loud, not silent). */
int gpu_rope_apply(const gpu_rope_table *table, int64_t tokens, int64_t heads,
                   const int32_t *positions, uint16_t *x, int inverse, void *stream,
                   kpo_error *err);

#ifdef __cplusplus
}
#endif

#endif
