/* RMSNorm forward/backward: one warp per row (rows are thousands of tokens,
 * or tokens * heads for QK-norm, so warps are plentiful), bf16 pairs per
 * lane. The weight gradient is a column sum over rows: row chunks write fp32
 * partials, then one pass sums the chunks in order, so it repeats bit for
 * bit (no atomics). */
#include "model/cuda/kernels_common.cuh"
#include "model/cuda/kernels_alias.h"
#include "model/cuda/kernels_norm.h"

enum { NORM_WARPS = KERNELS_THREADS / 32, NORM_ROWS_PER_CHUNK = 64, NORM_MAX_CHUNKS = 1024 };

static __global__ void rmsnorm_forward_kernel(int64_t rows, int half_n, const __nv_bfloat162 *x,
                                              const __nv_bfloat162 *w, float eps,
                                              __nv_bfloat162 *y, float *rstd)
{
    const int64_t row = (int64_t)blockIdx.x * NORM_WARPS + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= rows)
        return;
    const __nv_bfloat162 *xr = x + row * half_n;
    __nv_bfloat162 *yr = y + row * half_n;
    float ss = 0.0f;
    for (int j = lane; j < half_n; j += 32) {
        const float2 v = __bfloat1622float2(xr[j]);
        ss += v.x * v.x + v.y * v.y;
    }
    ss = kernels_warp_sum(ss);
    const float s = 1.0f / sqrtf(ss / (float)(2 * half_n) + eps);
    if (lane == 0 && rstd)
        rstd[row] = s;
    /* HF: normalise in fp32, cast to bf16, then multiply by the weight. */
    for (int j = lane; j < half_n; j += 32) {
        const float2 v = __bfloat1622float2(xr[j]);
        const float2 t = __bfloat1622float2(__floats2bfloat162_rn(v.x * s, v.y * s));
        const float2 g = __bfloat1622float2(w[j]);
        yr[j] = __floats2bfloat162_rn(g.x * t.x, g.y * t.y);
    }
}

static __global__ void rmsnorm_backward_dx_kernel(int64_t rows, int half_n,
                                                  const __nv_bfloat162 *x,
                                                  const __nv_bfloat162 *w, const float *rstd,
                                                  const __nv_bfloat162 *dy, __nv_bfloat162 *dx,
                                                  int accumulate)
{
    const int64_t row = (int64_t)blockIdx.x * NORM_WARPS + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= rows)
        return;
    const __nv_bfloat162 *xr = x + row * half_n, *dyr = dy + row * half_n;
    __nv_bfloat162 *dxr = dx + row * half_n;
    const float s = rstd[row];
    float dot = 0.0f;
    for (int j = lane; j < half_n; j += 32) {
        const float2 d = __bfloat1622float2(dyr[j]), g = __bfloat1622float2(w[j]),
                     v = __bfloat1622float2(xr[j]);
        dot += d.x * g.x * v.x + d.y * g.y * v.y;
    }
    dot = kernels_warp_sum(dot);
    const float c = dot * s * s * s / (float)(2 * half_n);
    for (int j = lane; j < half_n; j += 32) {
        const float2 d = __bfloat1622float2(dyr[j]), g = __bfloat1622float2(w[j]),
                     v = __bfloat1622float2(xr[j]);
        float2 acc = accumulate ? __bfloat1622float2(dxr[j]) : make_float2(0.0f, 0.0f);
        acc.x += d.x * g.x * s - v.x * c;
        acc.y += d.y * g.y * s - v.y * c;
        dxr[j] = __floats2bfloat162_rn(acc.x, acc.y);
    }
}

/* partial[chunk, j] = sum over the chunk's rows of dy * x * rstd. */
static __global__ void rmsnorm_backward_dw_partial_kernel(int64_t rows, int64_t n,
                                                          int64_t rows_per_chunk, const bf16 *x,
                                                          const float *rstd, const bf16 *dy,
                                                          float *partial)
{
    const int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int64_t chunk = blockIdx.y;
    if (j >= n)
        return;
    const int64_t r0 = chunk * rows_per_chunk;
    const int64_t r1 = r0 + rows_per_chunk < rows ? r0 + rows_per_chunk : rows;
    float acc = 0.0f;
    for (int64_t r = r0; r < r1; r++)
        acc += __bfloat162float(dy[r * n + j]) * __bfloat162float(x[r * n + j]) * rstd[r];
    partial[chunk * n + j] = acc;
}

static __global__ void rmsnorm_backward_dw_sum_kernel(int64_t n, int64_t chunks,
                                                      const float *partial, float *dw)
{
    KERNELS_GRID_STRIDE(j, n) {
        float acc = 0.0f;
        for (int64_t c = 0; c < chunks; c++)
            acc += partial[c * n + j];
        dw[j] += acc;
    }
}

static int norm_check_shape(const char *what, int64_t rows, int64_t n, const void *a,
                            const void *b, const void *c, const void *d, kpo_error *err)
{
    if (rows < 0 || n <= 0 || n % 2 != 0 || n / 2 > INT32_MAX)
        return error_set(err, "%s: width %lld must be even and positive (rows %lld)", what,
                         (long long)n, (long long)rows);
    if (((uintptr_t)a | (uintptr_t)b | (uintptr_t)c | (uintptr_t)d) % 4 != 0)
        return error_set(err, "%s: bf16 buffers must be 4-byte aligned", what);
    return KPO_OK;
}

static unsigned norm_blocks(int64_t rows)
{
    return (unsigned)((rows + NORM_WARPS - 1) / NORM_WARPS);
}

extern "C" int gpu_rmsnorm_forward(int64_t rows, int64_t n, const uint16_t *x, const uint16_t *w,
                                   float eps, uint16_t *y, float *rstd, void *stream,
                                   kpo_error *err)
{
    if (norm_check_shape("gpu_rmsnorm_forward", rows, n, x, w, y, y, err) != KPO_OK)
        return KPO_ERR;
    if (rows == 0)
        return KPO_OK;
    rmsnorm_forward_kernel<<<norm_blocks(rows), KERNELS_THREADS, 0, (cudaStream_t)stream>>>(
        rows, (int)(n / 2), (const __nv_bfloat162 *)x, (const __nv_bfloat162 *)w, eps,
        (__nv_bfloat162 *)y, rstd);
    return kernels_launch_check("gpu_rmsnorm_forward", err);
}

/* dx may be dy without accumulation: dw is summed from dy before the dx
 * kernel runs, and that kernel reads each element of a row before its lane
 * writes it. Every other overlap is refused. */
static int rmsnorm_backward_check_alias(int64_t rows, int64_t n, const uint16_t *x,
                                        const uint16_t *w, const float *rstd,
                                        const uint16_t *dy, const uint16_t *dx, int accumulate,
                                        const float *dw, kpo_error *err)
{
    const size_t act = (size_t)(rows * n) * 2;
    const bool dx_over_dy = !accumulate && dx == dy;
    const kernels_span out[] = {{"dx", dx, act}, {"dw", dw, (size_t)n * 4}};
    const kernels_span in[] = {{"x", x, act},
                               {"w", w, (size_t)n * 2},
                               {"rstd", rstd, (size_t)rows * 4},
                               {"dy", dx_over_dy ? NULL : dy, act}};
    return kernels_check_disjoint("gpu_rmsnorm_backward", out, 2, in, 4, err);
}

extern "C" int gpu_rmsnorm_backward(int64_t rows, int64_t n, const uint16_t *x,
                                    const uint16_t *w, const float *rstd, const uint16_t *dy,
                                    uint16_t *dx, int accumulate, float *dw, void *stream,
                                    kpo_error *err)
{
    if (norm_check_shape("gpu_rmsnorm_backward", rows, n, x, w, dy, dx, err) != KPO_OK ||
        rmsnorm_backward_check_alias(rows, n, x, w, rstd, dy, dx, accumulate, dw, err) != KPO_OK)
        return KPO_ERR;
    if (rows == 0)
        return KPO_OK;
    cudaStream_t s = (cudaStream_t)stream;
    /* dw first: it reads dy, which the dx kernel may overwrite (QK-norm). */
    int64_t chunks = (rows + NORM_ROWS_PER_CHUNK - 1) / NORM_ROWS_PER_CHUNK;
    chunks = chunks > (int64_t)NORM_MAX_CHUNKS ? (int64_t)NORM_MAX_CHUNKS : chunks;
    const int64_t rows_per_chunk = (rows + chunks - 1) / chunks;
    float *partial = NULL; /* [chunks, n] fp32; stream-ordered, so cheap after the first */
    if (cuda_check(cudaMallocAsync((void **)&partial, (size_t)(chunks * n) * sizeof(float), s),
                   "gpu_rmsnorm_backward: partial sums", err) != KPO_OK)
        return KPO_ERR;
    const dim3 grid((unsigned)((n + KERNELS_THREADS - 1) / KERNELS_THREADS), (unsigned)chunks);
    rmsnorm_backward_dw_partial_kernel<<<grid, KERNELS_THREADS, 0, s>>>(
        rows, n, rows_per_chunk, kernels_bf16(x), rstd, kernels_bf16(dy), partial);
    int rc = kernels_launch_check("gpu_rmsnorm_backward: dw partials", err);
    if (rc == KPO_OK) {
        rmsnorm_backward_dw_sum_kernel<<<kernels_blocks(n), KERNELS_THREADS, 0, s>>>(
            n, chunks, partial, dw);
        rc = kernels_launch_check("gpu_rmsnorm_backward: dw", err);
    }
    cudaFreeAsync(partial, s);
    if (rc != KPO_OK)
        return KPO_ERR;
    rmsnorm_backward_dx_kernel<<<norm_blocks(rows), KERNELS_THREADS, 0, s>>>(
        rows, (int)(n / 2), (const __nv_bfloat162 *)x, (const __nv_bfloat162 *)w, rstd,
        (const __nv_bfloat162 *)dy, (__nv_bfloat162 *)dx, accumulate);
    return kernels_launch_check("gpu_rmsnorm_backward: dx", err);
}
