/* fp32 <-> bf16 on the device (round to nearest even, as
 * safetensors_f32_to_bf16 on the host). Only built with CUDA. */
#ifndef KPO_MODEL_CUDA_KERNELS_CONVERT_H
#define KPO_MODEL_CUDA_KERNELS_CONVERT_H

#include <stdint.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* dst [n] bf16 = src [n] fp32 */
int gpu_convert_f32_to_bf16(int64_t n, const float *src, uint16_t *dst, void *stream,
                            kpo_error *err);
/* dst [n] fp32 = src [n] bf16 (exact) */
int gpu_convert_bf16_to_f32(int64_t n, const uint16_t *src, float *dst, void *stream,
                            kpo_error *err);

#ifdef __cplusplus
}
#endif

#endif
