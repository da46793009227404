/* RoPE: one thread per (token, head, pair j); math as ops_rope_apply in
 * fp32, one bf16 rounding per output. */
#include <math.h>
#include <string.h>

#include "model/cuda/kernels_common.cuh"
#include "model/cuda/kernels_rope.h"
/* The CPU model's own fp32 cos/sin table (ops_rope_table_init), built on the
 * host and copied up: one shared definition, so both backends rotate by the
 * very same angles. */
extern "C" {
#include "model/cpu/model_ops.h"
}

static __global__ void rope_kernel(int64_t tokens, int64_t heads, int64_t half,
                                   int64_t n_positions, const float *cos_table,
                                   const float *sin_table, const int32_t *positions, bf16 *x,
                                   float sign)
{
    KERNELS_GRID_STRIDE(i, tokens * heads * half) {
        const int64_t j = i % half, th = i / half, t = th / heads;
        bf16 *v = x + th * 2 * half;
        const int64_t p = positions[t];
        const float a = __bfloat162float(v[j]), b = __bfloat162float(v[j + half]);
        if (p < 0 || p >= n_positions) {
            v[j] = v[j + half] = __float2bfloat16_rn(NAN);
            continue;
        }
        const float c = cos_table[p * half + j], sn = sign * sin_table[p * half + j];
        v[j] = __float2bfloat16_rn(a * c - b * sn);
        v[j + half] = __float2bfloat16_rn(b * c + a * sn);
    }
}

extern "C" int gpu_rope_table_create(gpu_rope_table *table, int64_t n_positions,
                                     int64_t head_dim, double theta, kpo_error *err)
{
    memset(table, 0, sizeof *table);
    ops_rope_table host;
    if (n_positions <= 0 || head_dim <= 0 || head_dim % 2 != 0)
        return error_set(err, "gpu_rope_table_create: %lld positions, head_dim %lld (must be even)",
                         (long long)n_positions, (long long)head_dim);
    if (ops_rope_table_init(&host, n_positions, head_dim, theta) != 0)
        return error_set(err, "gpu_rope_table_create: out of host memory");
    const size_t bytes = (size_t)(n_positions * host.half) * sizeof(float);
    table->n_positions = n_positions;
    table->half = host.half;
    int rc = cuda_check(cudaMalloc((void **)&table->cos, bytes), "gpu_rope_table_create", err);
    if (rc == KPO_OK)
        rc = cuda_check(cudaMalloc((void **)&table->sin, bytes), "gpu_rope_table_create", err);
    if (rc == KPO_OK)
        rc = cuda_check(cudaMemcpy(table->cos, host.cos, bytes, cudaMemcpyHostToDevice),
                        "gpu_rope_table_create: copy", err);
    if (rc == KPO_OK)
        rc = cuda_check(cudaMemcpy(table->sin, host.sin, bytes, cudaMemcpyHostToDevice),
                        "gpu_rope_table_create: copy", err);
    ops_rope_table_free(&host);
    if (rc != KPO_OK)
        gpu_rope_table_free(table);
    return rc;
}

extern "C" void gpu_rope_table_free(gpu_rope_table *table)
{
    cudaFree(table->cos);
    cudaFree(table->sin);
    memset(table, 0, sizeof *table);
}

extern "C" int gpu_rope_apply(const gpu_rope_table *table, int64_t tokens, int64_t heads,
                              const int32_t *positions, uint16_t *x, int inverse, void *stream,
                              kpo_error *err)
{
    if (tokens < 0 || heads < 0)
        return error_set(err, "gpu_rope_apply: negative shape");
    const int64_t n = tokens * heads * table->half;
    if (n == 0)
        return KPO_OK;
    rope_kernel<<<kernels_blocks(n), KERNELS_THREADS, 0, (cudaStream_t)stream>>>(
        tokens, heads, table->half, table->n_positions, table->cos, table->sin, positions,
        kernels_bf16(x), inverse ? -1.0f : 1.0f);
    return kernels_launch_check("gpu_rope_apply", err);
}
