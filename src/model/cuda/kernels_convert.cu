/* Elementwise dtype conversion, grid-stride. */
#include "model/cuda/kernels_common.cuh"
#include "model/cuda/kernels_convert.h"

static __global__ void convert_f32_to_bf16_kernel(int64_t n, const float *src, bf16 *dst)
{
    KERNELS_GRID_STRIDE(i, n) dst[i] = __float2bfloat16_rn(src[i]);
}

static __global__ void convert_bf16_to_f32_kernel(int64_t n, const bf16 *src, float *dst)
{
    KERNELS_GRID_STRIDE(i, n) dst[i] = __bfloat162float(src[i]);
}

extern "C" int gpu_convert_f32_to_bf16(int64_t n, const float *src, uint16_t *dst, void *stream,
                                       kpo_error *err)
{
    if (n <= 0)
        return n == 0 ? KPO_OK : error_set(err, "gpu_convert_f32_to_bf16: n = %lld", (long long)n);
    convert_f32_to_bf16_kernel<<<kernels_blocks(n), KERNELS_THREADS, 0, (cudaStream_t)stream>>>(
        n, src, kernels_bf16(dst));
    return kernels_launch_check("gpu_convert_f32_to_bf16", err);
}

extern "C" int gpu_convert_bf16_to_f32(int64_t n, const uint16_t *src, float *dst, void *stream,
                                       kpo_error *err)
{
    if (n <= 0)
        return n == 0 ? KPO_OK : error_set(err, "gpu_convert_bf16_to_f32: n = %lld", (long long)n);
    convert_bf16_to_f32_kernel<<<kernels_blocks(n), KERNELS_THREADS, 0, (cudaStream_t)stream>>>(
        n, kernels_bf16(src), dst);
    return kernels_launch_check("gpu_convert_bf16_to_f32", err);
}
