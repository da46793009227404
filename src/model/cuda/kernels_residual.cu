/* Residual add, strided column copy and row gather: grid-stride loops,
 * bf16 in and out. */
#include "model/cuda/kernels_common.cuh"
#include "model/cuda/kernels_residual.h"

static __global__ void residual_add_kernel(int64_t n, const bf16 *a, const bf16 *b, bf16 *out)
{
    KERNELS_GRID_STRIDE(i, n) {
        out[i] = __float2bfloat16_rn(__bfloat162float(a[i]) + __bfloat162float(b[i]));
    }
}

static __global__ void columns_copy_kernel(int64_t rows, int64_t width, const bf16 *src,
                                           int64_t src_ld, bf16 *dst, int64_t dst_ld)
{
    KERNELS_GRID_STRIDE(i, rows * width) {
        const int64_t r = i / width, c = i % width;
        dst[r * dst_ld + c] = src[r * src_ld + c];
    }
}

static __global__ void rows_gather_kernel(int64_t n_rows, int64_t width, const int32_t *rows,
                                          const bf16 *src, bf16 *dst)
{
    KERNELS_GRID_STRIDE(i, n_rows * width) {
        const int64_t r = i / width, c = i % width;
        dst[i] = src[(int64_t)rows[r] * width + c];
    }
}

extern "C" int gpu_residual_add(int64_t n, const uint16_t *a, const uint16_t *b, uint16_t *out,
                                void *stream, kpo_error *err)
{
    if (n < 0)
        return error_set(err, "gpu_residual_add: negative length %lld", (long long)n);
    if (n == 0)
        return KPO_OK;
    residual_add_kernel<<<kernels_blocks(n), KERNELS_THREADS, 0, (cudaStream_t)stream>>>(
        n, kernels_bf16(a), kernels_bf16(b), kernels_bf16(out));
    return kernels_launch_check("gpu_residual_add", err);
}

extern "C" int gpu_columns_copy(int64_t rows, int64_t width, const uint16_t *src, int64_t src_ld,
                                uint16_t *dst, int64_t dst_ld, void *stream, kpo_error *err)
{
    if (rows < 0 || width < 0 || src_ld < width || dst_ld < width)
        return error_set(err, "gpu_columns_copy: rows %lld, width %lld, ld %lld/%lld (need ld >= "
                              "width)",
                         (long long)rows, (long long)width, (long long)src_ld, (long long)dst_ld);
    if (rows * width == 0)
        return KPO_OK;
    columns_copy_kernel<<<kernels_blocks(rows * width), KERNELS_THREADS, 0,
                          (cudaStream_t)stream>>>(rows, width, kernels_bf16(src), src_ld,
                                                  kernels_bf16(dst), dst_ld);
    return kernels_launch_check("gpu_columns_copy", err);
}

extern "C" int gpu_rows_gather(int64_t n_rows, int64_t width, const int32_t *rows,
                               const uint16_t *src, uint16_t *dst, void *stream, kpo_error *err)
{
    if (n_rows < 0 || width < 0)
        return error_set(err, "gpu_rows_gather: negative shape");
    if (n_rows * width == 0)
        return KPO_OK;
    rows_gather_kernel<<<kernels_blocks(n_rows * width), KERNELS_THREADS, 0,
                         (cudaStream_t)stream>>>(n_rows, width, rows, kernels_bf16(src),
                                                 kernels_bf16(dst));
    return kernels_launch_check("gpu_rows_gather", err);
}
