/* The scalar attention reference (kernels_attention_reference.h). One warp
 * per row; lane l holds elements l, l + 32, ... of the head vectors in
 * registers (up to 8 each: head_dim <= 256); every dot product is a warp
 * sum. fp32 throughout, P and dS never rounded to bf16, so its only
 * roundings are the bf16 outputs. Deterministic: each output row is one
 * warp's sequential loop. */
#include <math.h>

#include "model/cuda/kernels_common.cuh" /* first: C headers under extern "C" */
#include "model/cuda/kernels_attention_reference.h"

enum { REF_PER_LANE = 256 / 32, REF_WARPS = KERNELS_THREADS / 32 };


/* dst[u] = row[lane + 32 u] (0 past d). */
static __device__ void ref_load_row(float *dst, const bf16 *row, int d, int lane)
{
#pragma unroll
    for (int u = 0; u < REF_PER_LANE; u++) {
        const int c = lane + 32 * u;
        dst[u] = c < d ? __bfloat162float(row[c]) : 0.0f;
    }
}

/* The warp-wide dot product of a register row with a global bf16 row. */
static __device__ float ref_dot(const float *a, const bf16 *row, int d, int lane)
{
    float part = 0.0f;
#pragma unroll
    for (int u = 0; u < REF_PER_LANE; u++) {
        const int c = lane + 32 * u;
        if (c < d)
            part += a[u] * __bfloat162float(row[c]);
    }
    return kernels_warp_sum(part);
}

static __device__ void ref_store_row(bf16 *row, const float *src, float mul, int d, int lane)
{
#pragma unroll
    for (int u = 0; u < REF_PER_LANE; u++) {
        const int c = lane + 32 * u;
        if (c < d)
            row[c] = __float2bfloat16(src[u] * mul);
    }
}

/* out [tokens, heads, d], lse [tokens, heads]: warp per (token, head). */
static __global__ void ref_forward_kernel(int64_t n_tokens, int64_t n_seqs,
                                          const int64_t *seq_offsets, int heads, int kv_heads,
                                          int d, float scale, const bf16 *q, const bf16 *k,
                                          const bf16 *v, bf16 *out, float *lse)
{
    const int64_t row = (int64_t)blockIdx.x * REF_WARPS + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= n_tokens * heads)
        return;
    const int64_t t = row / heads;
    const int h = (int)(row % heads), g = h / (heads / kv_heads);
    const int64_t start = seq_offsets[kernels_find_seq(seq_offsets, n_seqs, t)];
    float qv[REF_PER_LANE], acc[REF_PER_LANE];
    ref_load_row(qv, q + row * d, d, lane);
    for (int u = 0; u < REF_PER_LANE; u++)
        acc[u] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    for (int64_t j = start; j <= t; j++) {
        const bf16 *krow = k + (j * kv_heads + g) * d, *vrow = v + (j * kv_heads + g) * d;
        const float s = ref_dot(qv, krow, d, lane) * scale;
        const float m_new = fmaxf(m, s);
        const float alpha = expf(m - m_new), p = expf(s - m_new); /* m = -inf: alpha 0 */
        l = l * alpha + p;
        for (int u = 0; u < REF_PER_LANE; u++) {
            const int c = lane + 32 * u;
            acc[u] = acc[u] * alpha + (c < d ? p * __bfloat162float(vrow[c]) : 0.0f);
        }
        m = m_new;
    }
    ref_store_row(out + row * d, acc, 1.0f / l, d, lane);
    if (lane == 0)
        lse[row] = m + logf(l);
}

/* dq [tokens, heads, d]: warp per (token, head), keys of its sequence up to
 * the token. */
static __global__ void ref_dq_kernel(int64_t n_tokens, int64_t n_seqs, const int64_t *seq_offsets,
                                     int heads, int kv_heads, int d, float scale, const bf16 *q,
                                     const bf16 *k, const bf16 *v, const bf16 *out,
                                     const bf16 *dout, const float *lse, bf16 *dq)
{
    const int64_t row = (int64_t)blockIdx.x * REF_WARPS + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= n_tokens * heads)
        return;
    const int64_t t = row / heads;
    const int h = (int)(row % heads), g = h / (heads / kv_heads);
    const int64_t start = seq_offsets[kernels_find_seq(seq_offsets, n_seqs, t)];
    float qv[REF_PER_LANE], dov[REF_PER_LANE], acc[REF_PER_LANE];
    ref_load_row(qv, q + row * d, d, lane);
    ref_load_row(dov, dout + row * d, d, lane);
    for (int u = 0; u < REF_PER_LANE; u++)
        acc[u] = 0.0f;
    const float delta = ref_dot(dov, out + row * d, d, lane), lrow = lse[row];
    for (int64_t j = start; j <= t; j++) {
        const bf16 *krow = k + (j * kv_heads + g) * d, *vrow = v + (j * kv_heads + g) * d;
        const float p = expf(ref_dot(qv, krow, d, lane) * scale - lrow);
        const float ds = p * (ref_dot(dov, vrow, d, lane) - delta) * scale;
        for (int u = 0; u < REF_PER_LANE; u++) {
            const int c = lane + 32 * u;
            acc[u] += c < d ? ds * __bfloat162float(krow[c]) : 0.0f;
        }
    }
    ref_store_row(dq + row * d, acc, 1.0f, d, lane);
}

/* dk, dv [tokens, kv_heads, d]: warp per (key token, kv head), over the
 * group's query heads and the queries at or after the key. */
static __global__ void ref_dkdv_kernel(int64_t n_tokens, int64_t n_seqs,
                                       const int64_t *seq_offsets, int heads, int kv_heads, int d,
                                       float scale, const bf16 *q, const bf16 *k, const bf16 *v,
                                       const bf16 *out, const bf16 *dout, const float *lse,
                                       bf16 *dk, bf16 *dv)
{
    const int64_t row = (int64_t)blockIdx.x * REF_WARPS + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= n_tokens * kv_heads)
        return;
    const int64_t j = row / kv_heads;
    const int g = (int)(row % kv_heads), group = heads / kv_heads;
    const int64_t end = seq_offsets[kernels_find_seq(seq_offsets, n_seqs, j) + 1];
    float kv[REF_PER_LANE], vv[REF_PER_LANE], dk_acc[REF_PER_LANE], dv_acc[REF_PER_LANE];
    ref_load_row(kv, k + row * d, d, lane);
    ref_load_row(vv, v + row * d, d, lane);
    for (int u = 0; u < REF_PER_LANE; u++)
        dk_acc[u] = 0.0f, dv_acc[u] = 0.0f;
    for (int hq = g * group; hq < (g + 1) * group; hq++)
        for (int64_t i = j; i < end; i++) {
            const int64_t qrow = i * heads + hq;
            const bf16 *qr = q + qrow * d, *dor = dout + qrow * d, *orow = out + qrow * d;
            float dov[REF_PER_LANE];
            ref_load_row(dov, dor, d, lane);
            const float p = expf(ref_dot(kv, qr, d, lane) * scale - lse[qrow]);
            const float delta = ref_dot(dov, orow, d, lane);
            const float ds = p * (ref_dot(vv, dor, d, lane) - delta) * scale;
            for (int u = 0; u < REF_PER_LANE; u++) {
                const int c = lane + 32 * u;
                if (c < d) {
                    dv_acc[u] += p * dov[u];
                    dk_acc[u] += ds * __bfloat162float(qr[c]);
                }
            }
        }
    ref_store_row(dk + row * d, dk_acc, 1.0f, d, lane);
    ref_store_row(dv + row * d, dv_acc, 1.0f, d, lane);
}

static unsigned ref_blocks(int64_t rows)
{
    return (unsigned)((rows + REF_WARPS - 1) / REF_WARPS);
}

extern "C" int gpu_attention_forward_reference(const gpu_attention_shape *s, const uint16_t *q,
                                               const uint16_t *k, const uint16_t *v,
                                               uint16_t *out, float *lse, void *stream,
                                               kpo_error *err)
{
    const char *what = "gpu_attention_forward_reference";
    const void *ptrs[] = {q, k, v, out, lse};
    const char *names[] = {"q", "k", "v", "out", "lse"};
    if (gpu_attention_check_call(s, what, ptrs, names, 5, err) != KPO_OK)
        return KPO_ERR;
    if (s->n_tokens == 0)
        return KPO_OK;
    ref_forward_kernel<<<ref_blocks(s->n_tokens * s->heads), KERNELS_THREADS, 0,
                         (cudaStream_t)stream>>>(
        s->n_tokens, s->n_seqs, s->seq_offsets, s->heads, s->kv_heads, s->head_dim,
        1.0f / sqrtf((float)s->head_dim), kernels_bf16(q), kernels_bf16(k), kernels_bf16(v),
        kernels_bf16(out), lse);
    return kernels_launch_check(what, err);
}

extern "C" int gpu_attention_backward_reference(const gpu_attention_shape *s, const uint16_t *q,
                                                const uint16_t *k, const uint16_t *v,
                                                const uint16_t *out, const uint16_t *dout,
                                                const float *lse, uint16_t *dq, uint16_t *dk,
                                                uint16_t *dv, void *workspace, void *stream,
                                                kpo_error *err)
{
    (void)workspace; /* the scalar kernels need no scratch */
    const void *ptrs[] = {q, k, v, out, dout, lse, dq, dk, dv};
    const char *names[] = {"q", "k", "v", "out", "dout", "lse", "dq", "dk", "dv"};
    if (gpu_attention_check_call(s, "gpu_attention_backward_reference", ptrs, names, 9, err) !=
        KPO_OK)
        return KPO_ERR;
    if (s->n_tokens == 0)
        return KPO_OK;
    cudaStream_t st = (cudaStream_t)stream;
    const float scale = 1.0f / sqrtf((float)s->head_dim);
    ref_dq_kernel<<<ref_blocks(s->n_tokens * s->heads), KERNELS_THREADS, 0, st>>>(
        s->n_tokens, s->n_seqs, s->seq_offsets, s->heads, s->kv_heads, s->head_dim, scale,
        kernels_bf16(q), kernels_bf16(k), kernels_bf16(v), kernels_bf16(out), kernels_bf16(dout),
        lse, kernels_bf16(dq));
    if (kernels_launch_check("gpu_attention_backward_reference: dQ", err) != KPO_OK)
        return KPO_ERR;
    ref_dkdv_kernel<<<ref_blocks(s->n_tokens * s->kv_heads), KERNELS_THREADS, 0, st>>>(
        s->n_tokens, s->n_seqs, s->seq_offsets, s->heads, s->kv_heads, s->head_dim, scale,
        kernels_bf16(q), kernels_bf16(k), kernels_bf16(v), kernels_bf16(out), kernels_bf16(dout),
        lse, kernels_bf16(dk), kernels_bf16(dv));
    return kernels_launch_check("gpu_attention_backward_reference: dK/dV", err);
}
