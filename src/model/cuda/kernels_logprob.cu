/* The fused lm_head + log-softmax (model_logprobs.c and logprobs_backward
 * on the device), a chunk of rows at a time:
 *
 *   forward, per chunk:  logits fp32 [n, vocab] = h W^T       (cuBLASLt)
 *                        one block per row: max, lse, log p(target), entropy
 *   backward, per chunk: logits fp32 again (recomputed: storing them for all
 *                        rows would cost rows x vocab x 4 bytes, 2.5 GB at
 *                        4096 tokens), then one block per row writes
 *                        dlogits bf16 [n, vocab],
 *                        dh [n, hidden] = dlogits W           (cuBLASLt, bf16 out)
 *                        dW [vocab, hidden] += dlogits^T h    (cuBLASLt, fp32 out)
 *
 * Why the logits are fp32 but their gradient bf16. A log-prob is
 * z_target - lse, a difference of two numbers of size ~10-30 whose absolute
 * error goes straight into the importance ratio exp(logp - logp_old): bf16
 * logits (8 significant bits, spacing 0.125 at 20) would put ~0.05 into it,
 * fp32 logits ~1e-6. The gradient is another matter: dlogits is only ever
 * an operand of the two backward GEMMs, and cuBLASLt's bf16 tensor-core
 * path takes both operands in bf16 (an fp32 operand would mean a TF32 or
 * SIMT product, several times slower, and twice the memory). Each dl_j is
 * one term of sums over the vocabulary (dh) or over rows (dW); rounding it
 * to nearest bf16 costs 2^-9 relative per term, unbiased, i.e. the same
 * precision as every other activation gradient of the bf16 model.
 *
 * Reductions run in a fixed order (each thread strides the row in the same
 * way every time, then a fixed warp-shuffle tree and a fixed tree over the
 * warps), so results repeat bit for bit. No fast-math: expf/logf are the
 * accurate (few-ulp) versions. */
#include <math.h>

#include "model/cuda/kernels_common.cuh"
#include "model/cuda/kernels_alias.h"
#include "model/cuda/kernels_logprob.h"

/* 512 threads: a 151,936-wide row is ~300 elements per thread, and a chunk
 * of 1024 rows is 1024 blocks, several waves over 132 SMs. */
enum { LOGPROB_THREADS = 512, LOGPROB_WARPS = LOGPROB_THREADS / 32 };

/* Byte alignment of the bf16 gradient inside the workspace (cuBLASLt's
 * heuristic assumes at most 256). */
enum { LOGPROB_ALIGN = 256 };

static __device__ inline float logprob_warp_max(float v)
{
    for (int offset = 16; offset > 0; offset /= 2)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

/* The block's max, returned to every thread. Each warp reduces by a
 * butterfly, lane 0 parks the result, then every warp reduces the parked
 * values the same way (so all threads hold the same bits, no broadcast
 * needed). fmaxf drops NaN; a NaN logit still poisons the sums below. */
static __device__ float logprob_block_max(float v, float *shared /* [LOGPROB_WARPS] */)
{
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    v = logprob_warp_max(v);
    if (lane == 0)
        shared[warp] = v;
    __syncthreads();
    v = logprob_warp_max(lane < LOGPROB_WARPS ? shared[lane] : -INFINITY);
    __syncthreads(); /* shared is reused by the next reduction */
    return v;
}

/* The block's sums of two values (same fixed tree as logprob_block_max). */
static __device__ float2 logprob_block_sum2(float2 v, float2 *shared /* [LOGPROB_WARPS] */)
{
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    v.x = kernels_warp_sum(v.x);
    v.y = kernels_warp_sum(v.y);
    if (lane == 0)
        shared[warp] = v;
    __syncthreads();
    v = lane < LOGPROB_WARPS ? shared[lane] : make_float2(0.0f, 0.0f);
    v.x = kernels_warp_sum(v.x);
    v.y = kernels_warp_sum(v.y);
    __syncthreads();
    return v;
}

/* Per row: lse = m + log s and H = lse - E_p[z] = log s - w / s, with
 * m = max z, s = sum exp(z - m) >= 1 and w = sum exp(z - m) (z - m) <= 0.
 * Keeping w relative to the max (not sum e z) avoids subtracting two
 * ~lse-sized numbers to get a small entropy. Two passes over the row (max,
 * then the sums); an online (max, sum) single pass would save one read of
 * the chunk's logits, ~10% of the forward at Qwen3 shapes: left until
 * measured. */
typedef struct logprob_stats {
    float lse, entropy;
} logprob_stats;

static __device__ logprob_stats logprob_row_stats(const float *z /* [vocab] */, int vocab)
{
    __shared__ float shared_max[LOGPROB_WARPS];
    __shared__ float2 shared_sum[LOGPROB_WARPS];
    float m = -INFINITY;
    for (int j = threadIdx.x; j < vocab; j += LOGPROB_THREADS)
        m = fmaxf(m, z[j]);
    m = logprob_block_max(m, shared_max);
    float2 sw = make_float2(0.0f, 0.0f);
    for (int j = threadIdx.x; j < vocab; j += LOGPROB_THREADS) {
        const float d = z[j] - m, e = expf(d);
        sw.x += e;
        sw.y += e * d;
    }
    sw = logprob_block_sum2(sw, shared_sum);
    const float log_s = logf(sw.x);
    logprob_stats st;
    st.lse = m + log_s;
    st.entropy = log_s - sw.y / sw.x;
    return st;
}

/* One block per row of the chunk. targets, logp, entropy, lse: the chunk's
 * rows [n]. A target >= vocab (the caller's bug) gives NaN: poison rather
 * than read out of bounds or lie. */
static __global__ void __launch_bounds__(LOGPROB_THREADS)
    logprob_forward_kernel(int vocab, const float *logits /* [n, vocab] */,
                           const int32_t *targets, float *logp, float *entropy, float *lse)
{
    const int64_t row = blockIdx.x;
    const int32_t t = targets[row];
    if (t < 0) { /* block-uniform: no thread reaches a barrier */
        if (threadIdx.x == 0)
            logp[row] = entropy[row] = lse[row] = 0.0f;
        return;
    }
    const float *z = logits + row * vocab;
    const logprob_stats st = logprob_row_stats(z, vocab);
    if (threadIdx.x == 0) {
        const bool ok = t < vocab;
        logp[row] = ok ? z[t] - st.lse : NAN;
        entropy[row] = ok ? st.entropy : NAN;
        lse[row] = ok ? st.lse : NAN;
    }
}

/* dlogits [n, vocab] bf16 for one chunk, from the recomputed logits and the
 * forward's lse and entropy (per row: log p_j = z_j - lse):
 *   dl_j = dlogp (1[j = t] - p_j) - dentropy p_j (log p_j + H)
 * which is logprobs_backward's -dH p (z - E_p[z]) since log p + H = z - E_p[z].
 * Rows without a target are written as zeros (the GEMMs read every row). */
static __global__ void __launch_bounds__(LOGPROB_THREADS)
    logprob_backward_kernel(int vocab, const float *logits /* [n, vocab] */,
                            const int32_t *targets, const float *lse, const float *entropy,
                            const float *dlogp, const float *dentropy /* each NULL: 0 */,
                            bf16 *dlogits /* [n, vocab] */)
{
    const int64_t row = blockIdx.x;
    const int32_t t = targets[row];
    const float *z = logits + row * vocab;
    bf16 *dl = dlogits + row * vocab;
    if (t < 0 || t >= vocab) {
        const bf16 fill = __float2bfloat16_rn(t < 0 ? 0.0f : NAN);
        for (int j = threadIdx.x; j < vocab; j += LOGPROB_THREADS)
            dl[j] = fill;
        return;
    }
    const float a = dlogp ? dlogp[row] : 0.0f, b = dentropy ? dentropy[row] : 0.0f;
    const float l = lse[row], h = entropy[row];
    for (int j = threadIdx.x; j < vocab; j += LOGPROB_THREADS) {
        const float log_p = z[j] - l, p = expf(log_p);
        float g = -a * p - b * p * (log_p + h);
        if (j == t)
            g += a;
        dl[j] = __float2bfloat16_rn(g);
    }
}

/* Rows whose logits exist at once: the chunk, or all rows when fewer. */
static int64_t logprob_chunk_rows(const gpu_logprob_shape *s)
{
    return s->chunk_rows < s->rows ? s->chunk_rows : s->rows;
}

/* Workspace layout: logits fp32 [chunk, vocab] at 0, then dlogits bf16
 * [chunk, vocab] at this offset. */
static size_t logprob_dlogits_offset(const gpu_logprob_shape *s)
{
    const size_t bytes = (size_t)(logprob_chunk_rows(s) * s->vocab) * sizeof(float);
    return (bytes + LOGPROB_ALIGN - 1) / LOGPROB_ALIGN * LOGPROB_ALIGN;
}

static bool logprob_shape_valid(const gpu_logprob_shape *s)
{
    return s->rows >= 0 && s->hidden > 0 && s->vocab > 0 && s->vocab <= INT32_MAX &&
           s->chunk_rows > 0 && s->chunk_rows <= INT32_MAX;
}

extern "C" size_t gpu_logprob_workspace(const gpu_logprob_shape *s)
{
    if (!logprob_shape_valid(s))
        return 0;
    return logprob_dlogits_offset(s) + (size_t)(logprob_chunk_rows(s) * s->vocab) * sizeof(bf16);
}

static int logprob_check(const char *what, const gpu_logprob_shape *s, const void *workspace,
                         kpo_error *err)
{
    if (!logprob_shape_valid(s))
        return error_set(err, "%s: bad shape rows %lld hidden %lld vocab %lld chunk_rows %lld",
                         what, (long long)s->rows, (long long)s->hidden, (long long)s->vocab,
                         (long long)s->chunk_rows);
    if (s->rows > 0 && !workspace)
        return error_set(err, "%s: no workspace (gpu_logprob_workspace bytes needed)", what);
    if ((uintptr_t)workspace % LOGPROB_ALIGN != 0)
        return error_set(err, "%s: workspace must be %d-byte aligned (cudaMalloc's is)", what,
                         (int)LOGPROB_ALIGN);
    return KPO_OK;
}

extern "C" int gpu_logprob_forward(gemm_lt *g, const gpu_logprob_shape *s, const uint16_t *h,
                                   const uint16_t *head, const int32_t *targets, float *logp,
                                   float *entropy, float *lse, void *workspace, void *stream,
                                   kpo_error *err)
{
    if (logprob_check("gpu_logprob_forward", s, workspace, err) != KPO_OK)
        return KPO_ERR;
    const int64_t chunk = logprob_chunk_rows(s), hd = s->hidden;
    float *logits = (float *)workspace; /* [chunk, vocab] */
    for (int64_t c0 = 0; c0 < s->rows; c0 += chunk) {
        const int64_t n = s->rows - c0 < chunk ? s->rows - c0 : chunk;
        if (gemm_lt_linear_f32(g, n, hd, s->vocab, h + c0 * hd, head, logits, stream, err) !=
            KPO_OK)
            return KPO_ERR;
        logprob_forward_kernel<<<(unsigned)n, LOGPROB_THREADS, 0, (cudaStream_t)stream>>>(
            (int)s->vocab, logits, targets + c0, logp + c0, entropy + c0, lse + c0);
        if (kernels_launch_check("gpu_logprob_forward", err) != KPO_OK)
            return KPO_ERR;
    }
    return KPO_OK;
}

/* Nothing in place: dh and dhead are written chunk by chunk while every
 * input is read again for later chunks (dhead against head matters when
 * the model's tied embedding is both). */
static int logprob_backward_check_alias(const gpu_logprob_shape *s, const uint16_t *h,
                                        const uint16_t *head, const int32_t *targets,
                                        const float *lse, const float *entropy,
                                        const float *dlogp, const float *dentropy,
                                        const uint16_t *dh, const float *dhead,
                                        const void *workspace, kpo_error *err)
{
    const size_t rows4 = (size_t)s->rows * 4, hidden = (size_t)s->hidden;
    const kernels_span outs[] = {{"dh", dh, (size_t)s->rows * hidden * 2},
                                 {"dhead", dhead, (size_t)s->vocab * hidden * 4},
                                 {"workspace", workspace, gpu_logprob_workspace(s)}};
    const kernels_span ins[] = {{"h", h, (size_t)s->rows * hidden * 2},
                                {"head", head, (size_t)s->vocab * hidden * 2},
                                {"targets", targets, rows4},
                                {"lse", lse, rows4},
                                {"entropy", entropy, rows4},
                                {"dlogp", dlogp, rows4},
                                {"dentropy", dentropy, rows4}};
    return kernels_check_disjoint("gpu_logprob_backward", outs, 3, ins, 7, err);
}

extern "C" int gpu_logprob_backward(gemm_lt *g, const gpu_logprob_shape *s, const uint16_t *h,
                                    const uint16_t *head, const int32_t *targets,
                                    const float *lse, const float *entropy, const float *dlogp,
                                    const float *dentropy, uint16_t *dh, float *dhead,
                                    void *workspace, void *stream, kpo_error *err)
{
    if (logprob_check("gpu_logprob_backward", s, workspace, err) != KPO_OK ||
        logprob_backward_check_alias(s, h, head, targets, lse, entropy, dlogp, dentropy, dh,
                                     dhead, workspace, err) != KPO_OK)
        return KPO_ERR;
    const int64_t chunk = logprob_chunk_rows(s), hd = s->hidden, vocab = s->vocab;
    float *logits = (float *)workspace; /* [chunk, vocab] */
    bf16 *dlogits = (bf16 *)((char *)workspace + logprob_dlogits_offset(s)); /* [chunk, vocab] */
    uint16_t *dlogits_bits = (uint16_t *)dlogits;
    for (int64_t c0 = 0; c0 < s->rows; c0 += chunk) {
        const int64_t n = s->rows - c0 < chunk ? s->rows - c0 : chunk;
        const uint16_t *hc = h + c0 * hd; /* [n, hidden] */
        if (gemm_lt_linear_f32(g, n, hd, vocab, hc, head, logits, stream, err) != KPO_OK)
            return KPO_ERR;
        logprob_backward_kernel<<<(unsigned)n, LOGPROB_THREADS, 0, (cudaStream_t)stream>>>(
            (int)vocab, logits, targets + c0, lse + c0, entropy + c0, dlogp ? dlogp + c0 : NULL,
            dentropy ? dentropy + c0 : NULL, dlogits);
        if (kernels_launch_check("gpu_logprob_backward", err) != KPO_OK)
            return KPO_ERR;
        /* dh's rows are this chunk's alone: written (beta 0), never summed. */
        if (gemm_lt_linear_dx(g, n, hd, vocab, dlogits_bits, head, dh + c0 * hd, 0.0f, stream,
                              err) != KPO_OK)
            return KPO_ERR;
        /* dW accumulates chunk after chunk, in chunk order, on one stream. */
        if (gemm_lt_linear_dw(g, n, hd, vocab, dlogits_bits, hc, dhead, stream, err) != KPO_OK)
            return KPO_ERR;
    }
    return KPO_OK;
}
