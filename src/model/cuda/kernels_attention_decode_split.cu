/* Split-KV decode attention (flash-decoding): kernels_attention_decode_split.h.
 *
 * Why. The block decode kernel (kernels_attention.cu) runs one block per
 * (query, query head) over the whole context: under GQA every kv head's
 * cache is read once per query head of its group (4x at Qwen3-4B), and a
 * batch of 1-8 long sequences gives too few blocks for 132 SMs. Here a
 * block owns (query, kv head, split of the context) and up to
 * ATT_SPLIT_MAX_HEADS query heads of the group, so each K/V row is read
 * once per query, and the splits fill the GPU whatever the batch.
 *
 * Split kernel, per block (ATT_SPLIT_THREADS threads). A key row of d bf16
 * is read by `lanes` threads, 8 elements (16 bytes) each, `lanes` the
 * power of two >= d/8 (so a row's lanes sit inside one warp; lanes past
 * d/8 hold zeros): consecutive threads read consecutive 16 bytes, and
 * rows = ATT_SPLIT_THREADS / lanes rows are read at once, SPLIT_UNROLL
 * times before any arithmetic, for memory-level parallelism.
 *   A. scores: each lane multiplies its 8 K values with its 8 (pre-scaled)
 *      q values of every head, the row's lanes sum by shuffles, and the
 *      row's first lane stores the HB base-2 scores to shared memory
 *      ([keys][HB]: one 16-byte access gives a key's 4 heads).
 *   B. the split's softmax per head: block max, p = 2^(s - max) in place,
 *      block sum (a split has at most ATT_SPLIT_MAX_KEYS keys, so all its
 *      scores fit: no online rescaling inside a block).
 *   C. outputs: each lane accumulates p * V over its rows for its 8
 *      columns and HB heads in registers; the row groups' sums meet in
 *      shared memory (reusing the scores' space) and are added in a fixed
 *      order.
 * With one split the block normalises and writes bf16 out; otherwise it
 * writes the fp32 partial (m, l, o[d]) of each of its heads, and a split
 * past its query's causal limit writes an empty one (m = -inf, l = 0, o
 * not written). The combine kernel (one thread per column of a (query,
 * head)) merges the splits in order with attention_split_combine.h.
 *
 * Softmax in base 2 as the other attention kernels: q is scaled by
 * log2(e)/sqrt(d) once, exp2f does the rest. Indexing into the cache is
 * int64 (256 slots x 5120 positions x 8 x 128 elements > 2^31). */
#include <math.h>

/* kernels_common.cuh first: it includes the C headers (core/error.h) under
 * extern "C", which the attention headers, included after, rely on. */
#include "model/cuda/kernels_common.cuh"
#include "model/cuda/attention_split_combine.h"
#include "model/cuda/kernels_attention_decode_split.h"

enum {
    SPLIT_UNROLL = 4, /* key rows in flight per row group before any arithmetic */
    SPLIT_ELEMS = 8,  /* bf16 per lane per row: one 16-byte load */
    SPLIT_WARPS = ATT_SPLIT_THREADS / 32,
};

#define SPLIT_LOG2E 1.4426950408889634f

/* Lanes per key row: the power of two >= d/8 (d/8 >= 2). */
static __host__ __device__ constexpr int split_row_lanes(int d)
{
    int lanes = 1;
    while (lanes < d / SPLIT_ELEMS)
        lanes *= 2;
    return lanes;
}

/* What a launch needs; one struct keeps the kernel's signature short. */
struct split_args {
    int64_t n_seqs;
    const int64_t *query_offsets, *slots, *start_positions; /* device [n_seqs (+1)] */
    int64_t n_slots, max_len;
    int heads, kv_heads, d;
    float scale_log2;
    int64_t n_splits, split_len;
    int64_t q0;                   /* first query of this launch */
    const bf16 *q;                /* [n_queries, heads, d] */
    const bf16 *k_cache, *v_cache; /* [n_slots, max_len, kv_heads, d] */
    bf16 *out;                    /* [n_queries, heads, d] */
    float *ws_o;                  /* [chunk, heads, n_splits, d] partial outputs */
    float *ws_m, *ws_l;           /* [chunk, heads, n_splits] partial statistics */
};

/* 8 bf16 (one 16-byte load) to fp32: a bf16 is the top half of a float. */
static __device__ inline void split_unpack8(uint4 x, float *f)
{
    const unsigned w[4] = {x.x, x.y, x.z, x.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        f[2 * i] = __uint_as_float(w[i] << 16);
        f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
}

/* HB consecutive floats of shared memory, as wide as alignment allows
 * (src is HB floats into a 16-byte aligned array). */
template <int HB>
static __device__ inline void split_load(const float *src, float *v)
{
    if constexpr (HB % 4 == 0) {
#pragma unroll
        for (int i = 0; i < HB / 4; i++) {
            const float4 x = reinterpret_cast<const float4 *>(src)[i];
            v[4 * i] = x.x, v[4 * i + 1] = x.y, v[4 * i + 2] = x.z, v[4 * i + 3] = x.w;
        }
    } else if constexpr (HB == 2) {
        const float2 x = *reinterpret_cast<const float2 *>(src);
        v[0] = x.x, v[1] = x.y;
    } else {
        v[0] = src[0];
    }
}

template <int HB>
static __device__ inline void split_store(float *dst, const float *v)
{
    if constexpr (HB % 4 == 0) {
#pragma unroll
        for (int i = 0; i < HB / 4; i++)
            reinterpret_cast<float4 *>(dst)[i] =
                make_float4(v[4 * i], v[4 * i + 1], v[4 * i + 2], v[4 * i + 3]);
    } else if constexpr (HB == 2) {
        *reinterpret_cast<float2 *>(dst) = make_float2(v[0], v[1]);
    } else {
        dst[0] = v[0];
    }
}

static __device__ inline float split_warp_max(float v)
{
    for (int offset = 16; offset > 0; offset /= 2)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

/* A block with no keys: an empty partial per head (its outputs are not
 * written: the combine does not read them). poison: the query's slot or
 * position is outside the cache, which must not pass silently: split 0
 * then writes NaN outputs (directly, or as a partial that merges to NaN). */
static __device__ void split_write_edge(const split_args &a, int64_t qq, int64_t n, int64_t sp,
                                        int h0, int nh, int d, bool poison)
{
    if (poison)
        for (int idx = threadIdx.x; idx < nh * d; idx += blockDim.x) {
            const int h = idx / d, c = idx % d;
            if (a.n_splits == 1)
                a.out[(n * a.heads + h0 + h) * d + c] = __float2bfloat16(NAN);
            else
                a.ws_o[((qq * a.heads + h0 + h) * a.n_splits + sp) * d + c] = NAN;
        }
    if (a.n_splits > 1 && (int)threadIdx.x < nh) {
        const int64_t cell = (qq * a.heads + h0 + threadIdx.x) * a.n_splits + sp;
        a.ws_m[cell] = poison ? 0.0f : -INFINITY;
        a.ws_l[cell] = poison ? 1.0f : 0.0f;
    }
}

/* Where a block's threads sit over a key row (the file comment): `lanes`
 * threads per row of d bf16, 8 columns each from column 8 * part; `rows`
 * rows at once, this thread in row group r; lanes past d/8 are idle. */
struct split_lanes {
    int d, lanes, rows, r, part;
    bool active;
};

static __device__ __forceinline__ split_lanes split_lanes_make(int d)
{
    split_lanes L;
    L.d = d;
    L.lanes = split_row_lanes(d);
    L.rows = ATT_SPLIT_THREADS / L.lanes;
    L.r = (int)threadIdx.x / L.lanes;
    L.part = (int)threadIdx.x % L.lanes;
    L.active = L.part < d / SPLIT_ELEMS;
    return L;
}

/* This lane's 8 columns of each owned head's query (heads h0 .. h0 + nh of
 * query n), times log2(e)/sqrt(d); zeros for idle lanes and heads. */
template <int HB>
static __device__ __forceinline__ void split_load_query(const split_args &a, const split_lanes &L,
                                                        int64_t n, int h0, int nh,
                                                        float (&qf)[HB][SPLIT_ELEMS])
{
#pragma unroll
    for (int h = 0; h < HB; h++) {
        uint4 x = make_uint4(0u, 0u, 0u, 0u);
        if (L.active && h < nh)
            x = *reinterpret_cast<const uint4 *>(a.q + (n * a.heads + h0 + h) * L.d +
                                                  L.part * SPLIT_ELEMS);
        split_unpack8(x, qf[h]);
#pragma unroll
        for (int e = 0; e < SPLIT_ELEMS; e++)
            qf[h][e] *= a.scale_log2;
    }
}

/* This lane's 16 bytes of key (or value) rows j0 + u * rows + r, u <
 * SPLIT_UNROLL, of the split's nk (col: this lane's column of the first
 * row, row_vecs uint4s from one row to the next), all in flight before any
 * arithmetic; zeros past the split and for idle lanes. */
static __device__ __forceinline__ void split_load_rows(const split_lanes &L, const uint4 *col,
                                                       int64_t row_vecs, int nk, int j0,
                                                       uint4 (&x)[SPLIT_UNROLL])
{
#pragma unroll
    for (int u = 0; u < SPLIT_UNROLL; u++) {
        const int j = j0 + u * L.rows + L.r;
        x[u] = L.active && j < nk ? __ldg(col + j * row_vecs) : make_uint4(0u, 0u, 0u, 0u);
    }
}

/* Phase A: the base-2 scores of the split's nk key rows (kcol: this lane's
 * column of the first, row_vecs uint4s from one row to the next) against
 * every owned head, into sc [nk][HB]. The loop bound is uniform, so every
 * lane reaches the shuffles; rows past the split load zeros and store
 * nothing. */
template <int HB>
static __device__ __forceinline__ void split_scores(const split_lanes &L, const uint4 *kcol,
                                                    int64_t row_vecs, int nk,
                                                    const float (&qf)[HB][SPLIT_ELEMS],
                                                    float *sc)
{
    for (int j0 = 0; j0 < nk; j0 += L.rows * SPLIT_UNROLL) {
        uint4 kx[SPLIT_UNROLL];
        split_load_rows(L, kcol, row_vecs, nk, j0, kx);
#pragma unroll
        for (int u = 0; u < SPLIT_UNROLL; u++) {
            float kf[SPLIT_ELEMS], s[HB];
            split_unpack8(kx[u], kf);
#pragma unroll
            for (int h = 0; h < HB; h++) {
                s[h] = 0.0f;
#pragma unroll
                for (int e = 0; e < SPLIT_ELEMS; e++)
                    s[h] = fmaf(qf[h][e], kf[e], s[h]);
            }
            for (int off = L.lanes / 2; off > 0; off /= 2)
#pragma unroll
                for (int h = 0; h < HB; h++)
                    s[h] += __shfl_xor_sync(0xffffffffu, s[h], off);
            const int j = j0 + u * L.rows + L.r;
            if (L.part == 0 && j < nk)
                split_store<HB>(sc + j * HB, s);
        }
    }
}

/* Phase B (after a barrier on phase A): per head the split's max, then
 * p = 2^(s - max) in place in sc and the sum; stats receives (max, sum).
 * Each thread revisits only the keys it read for the max, so no barrier
 * between the max and the exponentials beyond the reduction's. Ends with
 * a barrier: the probabilities are visible to every thread (stats after
 * the next one). */
template <int HB>
static __device__ __forceinline__ void split_softmax(float *sc, int nk,
                                                     float (*red_max)[HB], float (*red_sum)[HB],
                                                     att_split_stats *stats)
{
    const int warp = (int)threadIdx.x / 32, lane = (int)threadIdx.x % 32;
    float mx[HB], sum[HB];
#pragma unroll
    for (int h = 0; h < HB; h++)
        mx[h] = -INFINITY, sum[h] = 0.0f;
    for (int j = threadIdx.x; j < nk; j += ATT_SPLIT_THREADS) {
        float s[HB];
        split_load<HB>(sc + j * HB, s);
#pragma unroll
        for (int h = 0; h < HB; h++)
            mx[h] = fmaxf(mx[h], s[h]);
    }
#pragma unroll
    for (int h = 0; h < HB; h++) {
        mx[h] = split_warp_max(mx[h]);
        if (lane == 0)
            red_max[warp][h] = mx[h];
    }
    __syncthreads();
#pragma unroll
    for (int h = 0; h < HB; h++)
        for (int w = 0; w < SPLIT_WARPS; w++)
            mx[h] = fmaxf(mx[h], red_max[w][h]); /* finite: the split has a key */
    for (int j = threadIdx.x; j < nk; j += ATT_SPLIT_THREADS) {
        float s[HB];
        split_load<HB>(sc + j * HB, s);
#pragma unroll
        for (int h = 0; h < HB; h++) {
            s[h] = exp2f(s[h] - mx[h]);
            sum[h] += s[h];
        }
        split_store<HB>(sc + j * HB, s);
    }
#pragma unroll
    for (int h = 0; h < HB; h++) {
        sum[h] = kernels_warp_sum(sum[h]);
        if (lane == 0)
            red_sum[warp][h] = sum[h];
    }
    __syncthreads(); /* the probabilities and the warps' sums are visible */
    if (threadIdx.x == 0)
#pragma unroll
        for (int h = 0; h < HB; h++) {
            float l = 0.0f;
            for (int w = 0; w < SPLIT_WARPS; w++)
                l += red_sum[w][h];
            stats[h].m = mx[h];
            stats[h].l = l;
        }
}

/* Phase C: p * V over this lane's row group's rows (vcol as kcol), for its
 * 8 columns and every owned head, in registers. */
template <int HB>
static __device__ __forceinline__ void split_accumulate(const split_lanes &L, const uint4 *vcol,
                                                        int64_t row_vecs, int nk, const float *sc,
                                                        float (&acc)[HB][SPLIT_ELEMS])
{
#pragma unroll
    for (int h = 0; h < HB; h++)
#pragma unroll
        for (int e = 0; e < SPLIT_ELEMS; e++)
            acc[h][e] = 0.0f;
    for (int j0 = 0; j0 < nk; j0 += L.rows * SPLIT_UNROLL) {
        uint4 vx[SPLIT_UNROLL];
        split_load_rows(L, vcol, row_vecs, nk, j0, vx);
#pragma unroll
        for (int u = 0; u < SPLIT_UNROLL; u++) {
            const int j = j0 + u * L.rows + L.r;
            if (j >= nk)
                continue;
            float vf[SPLIT_ELEMS], p[HB];
            split_unpack8(vx[u], vf);
            split_load<HB>(sc + j * HB, p); /* the row group's lanes read one address */
#pragma unroll
            for (int h = 0; h < HB; h++)
#pragma unroll
                for (int e = 0; e < SPLIT_ELEMS; e++)
                    acc[h][e] = fmaf(p[h], vf[e], acc[h][e]);
        }
    }
}

/* The row groups' outputs meet in so [rows][HB][d] (sbuf, free again once
 * every thread is past phase C: the caller's barrier) and are added in a
 * fixed order; consecutive threads take consecutive columns
 * (conflict-free reads, coalesced writes). With one split the result is
 * normalised and written as bf16 out, else as the partial (o, m, l) of
 * split sp of query qq of this launch. */
template <int HB>
static __device__ __forceinline__ void split_write(const split_args &a, const split_lanes &L,
                                                   const float (&acc)[HB][SPLIT_ELEMS], float *so,
                                                   const att_split_stats *stats, int64_t qq,
                                                   int64_t n, int64_t sp, int h0, int nh)
{
    const int d = L.d;
    if (L.active)
#pragma unroll
        for (int h = 0; h < HB; h++)
#pragma unroll
            for (int e = 0; e < SPLIT_ELEMS; e += 4)
                *reinterpret_cast<float4 *>(so + (L.r * HB + h) * d + L.part * SPLIT_ELEMS + e) =
                    make_float4(acc[h][e], acc[h][e + 1], acc[h][e + 2], acc[h][e + 3]);
    __syncthreads();
    for (int idx = threadIdx.x; idx < nh * d; idx += ATT_SPLIT_THREADS) {
        const int h = idx / d, c = idx % d;
        float o = 0.0f;
        for (int rr = 0; rr < L.rows; rr++)
            o += so[(rr * HB + h) * d + c];
        if (a.n_splits == 1)
            a.out[(n * a.heads + h0 + h) * d + c] =
                __float2bfloat16(att_split_normalise(o, stats[h]));
        else
            a.ws_o[((qq * a.heads + h0 + h) * a.n_splits + sp) * d + c] = o;
    }
    if (a.n_splits > 1 && (int)threadIdx.x < nh) {
        const int64_t cell = (qq * a.heads + h0 + threadIdx.x) * a.n_splits + sp;
        a.ws_m[cell] = stats[threadIdx.x].m;
        a.ws_l[cell] = stats[threadIdx.x].l;
    }
}

/* One (query, kv head, head chunk, split): see the file comment. Grid
 * (n_splits, queries of this launch, kv_heads * head chunks),
 * ATT_SPLIT_THREADS threads. HB: heads per block (template so the
 * per-head registers are arrays the compiler can keep in registers). */
template <int HB, int DFIX>
static __global__ void __launch_bounds__(ATT_SPLIT_THREADS)
    attention_decode_split_kernel(const split_args a)
{
    /* Scores [nk][HB] (phases A, B), then the row groups' outputs
     * [rows][HB][d] (phase C): rows * d <= ATT_SPLIT_THREADS / lanes * 8
     * lanes = 1024 = ATT_SPLIT_MAX_KEYS, so one buffer serves both. */
    __shared__ __align__(16) float sbuf[HB * ATT_SPLIT_MAX_KEYS];
    __shared__ float red_max[SPLIT_WARPS][HB], red_sum[SPLIT_WARPS][HB];
    __shared__ att_split_stats stats[HB];
    static_assert(ATT_SPLIT_THREADS * SPLIT_ELEMS <= ATT_SPLIT_MAX_KEYS, "phase C buffer");

    const int d = DFIX ? DFIX : a.d;
    const int group = a.heads / a.kv_heads, chunks = (group + HB - 1) / HB;
    const int g = (int)blockIdx.z / chunks, hc = (int)blockIdx.z % chunks;
    const int h0 = g * group + hc * HB, nh = min(HB, group - hc * HB); /* query heads owned */
    const int64_t sp = blockIdx.x, qq = blockIdx.y, n = a.q0 + qq;
    const int64_t i = kernels_find_seq(a.query_offsets, a.n_seqs, n);
    const int64_t slot = a.slots[i], pos = a.start_positions[i] + (n - a.query_offsets[i]);
    const bool bad = slot < 0 || slot >= a.n_slots || pos < 0 || pos >= a.max_len;
    const int64_t k0 = sp * a.split_len; /* keys [k0, k1): this split up to the causal limit */
    const int64_t k1 = bad ? k0 : min(k0 + a.split_len, pos + 1);
    if (k0 >= k1) { /* uniform over the block: no __syncthreads skipped by some threads */
        split_write_edge(a, qq, n, sp, h0, nh, d, bad && sp == 0);
        return;
    }
    const int nk = (int)(k1 - k0);

    const split_lanes L = split_lanes_make(d);
    const int64_t row_vecs = (int64_t)a.kv_heads * d / SPLIT_ELEMS; /* uint4s a position */
    /* This lane's column of key row k0 of kv head g in the slot. */
    const int64_t col0 = ((slot * a.max_len + k0) * a.kv_heads + g) * d + L.part * SPLIT_ELEMS;
    float qf[HB][SPLIT_ELEMS], acc[HB][SPLIT_ELEMS];
    split_load_query<HB>(a, L, n, h0, nh, qf);
    split_scores<HB>(L, reinterpret_cast<const uint4 *>(a.k_cache + col0), row_vecs, nk, qf, sbuf);
    __syncthreads();
    split_softmax<HB>(sbuf, nk, red_max, red_sum, stats);
    split_accumulate<HB>(L, reinterpret_cast<const uint4 *>(a.v_cache + col0), row_vecs, nk, sbuf,
                         acc);
    __syncthreads(); /* every lane is done with the probabilities: sbuf is reused */
    split_write<HB>(a, L, acc, sbuf, stats, qq, n, sp, h0, nh);
}

/* out for query q0 + blockIdx.x, head blockIdx.y: its n_splits partials
 * merged in split order. One thread per column (d rounded up to a warp). */
static __global__ void attention_decode_combine_kernel(int64_t q0, int heads, int d,
                                                       int64_t n_splits, const float *ws_o,
                                                       const float *ws_m, const float *ws_l,
                                                       bf16 *out)
{
    const int c = threadIdx.x;
    if (c >= d)
        return;
    const int64_t qq = blockIdx.x, h = blockIdx.y;
    const int64_t cell0 = (qq * heads + h) * n_splits;
    att_split_stats acc = att_split_empty();
    float o = 0.0f;
    for (int64_t sp = 0; sp < n_splits; sp++) {
        att_split_stats b;
        b.m = ws_m[cell0 + sp];
        b.l = ws_l[cell0 + sp];
        float fa, fb;
        if (att_split_merge_stats(&acc, b, &fa, &fb)) /* empty partials' o is unwritten */
            o = att_split_merge_value(o, fa, ws_o[(cell0 + sp) * d + c], fb);
    }
    out[((q0 + qq) * heads + h) * d + c] = __float2bfloat16(att_split_normalise(o, acc));
}

/* ---------------------------------------------------------------- host */

/* plan_context: the context the plan is made for (s->max_context, or a
 * fixed one for graph replays: gpu_attention_decode_split_fixed). */
static att_split_plan split_plan(const gpu_decode_shape *s, int64_t plan_context, int n_sm)
{
    return att_split_plan_make(s->n_queries, s->heads, s->kv_heads, s->head_dim, plan_context,
                               n_sm > 0 ? n_sm : kernels_sm_count());
}

/* KPO_OK when plan_context may replace s->max_context: at least the
 * step's context (a query's keys all lie in some split) and within the
 * cache (no split starts past it). Host-only. */
static int split_check_plan_context(const gpu_decode_shape *s, int64_t plan_context,
                                    const char *what, kpo_error *err)
{
    if (plan_context < s->max_context || plan_context > s->max_len)
        return error_set(err, "%s: plan context %lld must be in [max_context %lld, max_len %lld]",
                         what, (long long)plan_context, (long long)s->max_context,
                         (long long)s->max_len);
    return KPO_OK;
}

template <int HB, int DFIX>
static int split_launch(const split_args &a, const att_split_plan &p, int64_t count,
                        cudaStream_t stream, kpo_error *err)
{
    const dim3 grid((unsigned)p.n_splits, (unsigned)count,
                    (unsigned)(a.kv_heads * p.head_chunks));
    attention_decode_split_kernel<HB, DFIX><<<grid, ATT_SPLIT_THREADS, 0, stream>>>(a);
    return kernels_launch_check("gpu_attention_decode_split", err);
}

/* Qwen3's head_dim 128 compiled as a constant (unrolled shuffles). */
template <int HB>
static int split_launch_d(const split_args &a, const att_split_plan &p, int64_t count,
                          cudaStream_t stream, kpo_error *err)
{
    if (a.d == 128)
        return split_launch<HB, 128>(a, p, count, stream, err);
    return split_launch<HB, 0>(a, p, count, stream, err);
}

static int split_launch_any(const split_args &a, const att_split_plan &p, int64_t count,
                            cudaStream_t stream, kpo_error *err)
{
    switch (p.heads_per_block) {
    case 1:
        return split_launch_d<1>(a, p, count, stream, err);
    case 2:
        return split_launch_d<2>(a, p, count, stream, err);
    case 4:
        return split_launch_d<4>(a, p, count, stream, err);
    default:
        return split_launch_d<ATT_SPLIT_MAX_HEADS>(a, p, count, stream, err);
    }
}

extern "C" size_t gpu_attention_decode_split_workspace(const gpu_decode_shape *s, int n_sm)
{
    if (gpu_decode_check_shape(s, "gpu_attention_decode_split_workspace", NULL) != KPO_OK ||
        s->n_queries == 0)
        return 0;
    return split_plan(s, s->max_context, n_sm).workspace;
}

extern "C" size_t gpu_attention_decode_split_workspace_fixed(const gpu_decode_shape *s,
                                                             int64_t plan_context, int n_sm)
{
    const char *what = "gpu_attention_decode_split_workspace_fixed";
    if (gpu_decode_check_shape(s, what, NULL) != KPO_OK || s->n_queries == 0 ||
        split_check_plan_context(s, plan_context, what, NULL) != KPO_OK)
        return 0;
    return split_plan(s, plan_context, n_sm).workspace;
}

extern "C" size_t gpu_attention_decode_split_workspace_max(int heads, int kv_heads, int head_dim,
                                                           int64_t max_len, int n_sm)
{
    if (heads < 1 || kv_heads < 1 || heads % kv_heads != 0 || head_dim < 1 || max_len < 1)
        return 0;
    return att_split_workspace_bound(heads, kv_heads, head_dim, max_len,
                                     n_sm > 0 ? n_sm : kernels_sm_count());
}

static split_args split_args_make(const gpu_decode_shape *s, const att_split_plan &p,
                                  const uint16_t *q, const uint16_t *k_cache,
                                  const uint16_t *v_cache, uint16_t *out, void *workspace)
{
    split_args a;
    a.n_seqs = s->n_seqs;
    a.query_offsets = s->query_offsets, a.slots = s->slots, a.start_positions = s->start_positions;
    a.n_slots = s->n_slots, a.max_len = s->max_len;
    a.heads = s->heads, a.kv_heads = s->kv_heads, a.d = s->head_dim;
    a.scale_log2 = SPLIT_LOG2E / sqrtf((float)s->head_dim);
    a.n_splits = p.n_splits, a.split_len = p.split_len, a.q0 = 0;
    a.q = kernels_bf16(q), a.k_cache = kernels_bf16(k_cache), a.v_cache = kernels_bf16(v_cache);
    a.out = kernels_bf16(out);
    a.ws_o = a.ws_m = a.ws_l = NULL;
    if (p.workspace > 0) { /* [chunk, heads, n_splits] cells: o (d each), then m, then l */
        const size_t cells = (size_t)p.chunk * (size_t)s->heads * (size_t)p.n_splits;
        a.ws_o = (float *)workspace;
        a.ws_m = a.ws_o + cells * (size_t)s->head_dim;
        a.ws_l = a.ws_m + cells;
    }
    return a;
}

/* Both entry points: the split plan made for plan_context (checked by the
 * caller), the launches in stream order. */
static int split_run(const char *what, const gpu_decode_shape *s, int64_t plan_context,
                     const uint16_t *q, const uint16_t *k_cache, const uint16_t *v_cache,
                     uint16_t *out, void *workspace, size_t workspace_bytes, void *stream,
                     kpo_error *err)
{
    const att_split_plan p = split_plan(s, plan_context, 0);
    if (p.workspace > 0 && (!workspace || workspace_bytes < p.workspace))
        return error_set(err, "%s: the workspace has %zu bytes, %zu needed", what,
                         workspace ? workspace_bytes : (size_t)0, p.workspace);
    if (p.n_splits > INT32_MAX) /* grid x */
        return error_set(err, "%s: %lld splits of the context are too many", what,
                         (long long)p.n_splits);
    split_args a = split_args_make(s, p, q, k_cache, v_cache, out, workspace);
    cudaStream_t st = (cudaStream_t)stream;
    const unsigned combine_threads = (unsigned)((s->head_dim + 31) / 32 * 32);
    /* Launches of at most p.chunk queries share the workspace in stream order. */
    for (int64_t q0 = 0; q0 < s->n_queries; q0 += p.chunk) {
        const int64_t count = s->n_queries - q0 < p.chunk ? s->n_queries - q0 : p.chunk;
        a.q0 = q0;
        if (split_launch_any(a, p, count, st, err) != KPO_OK)
            return KPO_ERR;
        if (p.n_splits == 1)
            continue;
        attention_decode_combine_kernel<<<dim3((unsigned)count, (unsigned)s->heads),
                                          combine_threads, 0, st>>>(
            q0, s->heads, s->head_dim, p.n_splits, a.ws_o, a.ws_m, a.ws_l, a.out);
        if (kernels_launch_check("gpu_attention_decode_split: combine", err) != KPO_OK)
            return KPO_ERR;
    }
    return KPO_OK;
}

/* Both entry points: the shape and pointers checked, then the run with
 * the splits planned for plan_context (fixed: the caller's, checked;
 * otherwise the step's own max_context). */
static int split_entry(const char *what, const gpu_decode_shape *s, bool fixed,
                       int64_t plan_context, const uint16_t *q, const uint16_t *k_cache,
                       const uint16_t *v_cache, uint16_t *out, void *workspace,
                       size_t workspace_bytes, void *stream, kpo_error *err)
{
    const void *ptrs[] = {q, k_cache, v_cache, out};
    const char *names[] = {"q", "k_cache", "v_cache", "out"};
    if (gpu_decode_check_call(s, what, ptrs, names, 4, err) != KPO_OK)
        return KPO_ERR;
    if (s->n_queries == 0)
        return KPO_OK;
    if (fixed && split_check_plan_context(s, plan_context, what, err) != KPO_OK)
        return KPO_ERR;
    return split_run(what, s, fixed ? plan_context : s->max_context, q, k_cache, v_cache, out,
                     workspace, workspace_bytes, stream, err);
}

extern "C" int gpu_attention_decode_split(const gpu_decode_shape *s, const uint16_t *q,
                                          const uint16_t *k_cache, const uint16_t *v_cache,
                                          uint16_t *out, void *workspace, size_t workspace_bytes,
                                          void *stream, kpo_error *err)
{
    return split_entry("gpu_attention_decode_split", s, false, 0, q, k_cache, v_cache, out,
                       workspace, workspace_bytes, stream, err);
}

extern "C" int gpu_attention_decode_split_fixed(const gpu_decode_shape *s, int64_t plan_context,
                                                const uint16_t *q, const uint16_t *k_cache,
                                                const uint16_t *v_cache, uint16_t *out,
                                                void *workspace, size_t workspace_bytes,
                                                void *stream, kpo_error *err)
{
    return split_entry("gpu_attention_decode_split_fixed", s, true, plan_context, q, k_cache,
                       v_cache, out, workspace, workspace_bytes, stream, err);
}
