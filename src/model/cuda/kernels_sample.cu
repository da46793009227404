/* Next-token sampling on the device: one block per row, the definition of
 * sampling/sampler_math.h (the CPU sampler's), no sort.
 *
 *   greedy     argmax, lowest id on ties (one pass)
 *   otherwise  max logit; total = sum exp((l - max) / T) in double; p = w / total
 *              top_p < 1: the nucleus cut by a radix select on the logits'
 *              order-preserving keys: four passes over 8-bit digits, most
 *              significant first, each a 256-bin histogram of probability
 *              mass, pick the digit where the mass above crosses top_p; then
 *              ties at the cut logit resolved by ascending id (first id whose
 *              mass-above + cumulative tied mass reaches top_p)
 *              u = philox_uniform_at(seed, stream_id, draw_index)
 *              target = u * kept mass; first kept id (ascending) whose
 *              cumulative probability exceeds the target (id-order scan)
 *
 * Determinism. Every sum runs in a fixed order (fixed strides, fixed
 * shuffle trees, warps combined in order), so a row gives the same token on
 * every run. The histogram masses are 2^-62 fixed-point integers, whose
 * atomic sums are exact and so independent of the order atomics land in.
 *
 * Agreement with sampler_draw. Given the same fp32 logits both compute the
 * same per-token doubles (compiled --fmad=false; exp may differ from glibc's
 * by 1 ulp) and apply the same rules; they differ only in summation order
 * (CPU: one sequential pass; here: trees, and fixed point for the nucleus
 * search). That moves a sum by ~1e-16 relative (fixed point: at most
 * vocab * 2^-63, ~2e-14 for 151,936 ids), so a token differs only when
 * top_p or u * mass lies that close to a cumulative boundary: about 1e-13
 * per draw for continuous logits (tests/gpu/test_gpu_sample.c counts them). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/philox.h"
#include "model/cuda/kernels_common.cuh"
#include "model/cuda/kernels_sample.h"
#include "sampling/sampler_math.h"

enum { SAMPLE_THREADS = 1024, SAMPLE_WARPS = SAMPLE_THREADS / 32, SAMPLE_BINS = 256 };

#define SAMPLE_FULL_MASK 0xffffffffu

/* What every phase of one row needs. */
struct sample_row {
    const float *logits; /* this row */
    int64_t n;           /* drawable ids */
    double temperature, max_logit, total;
};

/* Block-shared scratch. */
struct sample_shared {
    unsigned long long hist[SAMPLE_BINS];
    double partial_d[SAMPLE_WARPS];
    unsigned long long partial_q[SAMPLE_WARPS];
    float partial_f[SAMPLE_WARPS];
    int32_t partial_i[SAMPLE_WARPS];
    long long partial_l[SAMPLE_WARPS];
    /* the radix select's running state, written by thread 0 */
    uint32_t prefix;
    unsigned long long above;
    int keep_all;
    /* the id-order scan's choice, written by thread 0 / the chosen warp */
    int crossing_warp;
    double target, base_d;
    unsigned long long base_q;
    int64_t found;
};

static __device__ inline int sample_lane() { return (int)(threadIdx.x % 32); }
static __device__ inline int sample_warp() { return (int)(threadIdx.x / 32); }

static __device__ inline double sample_prob(const sample_row &r, int64_t i)
{
    return sampler_weight(r.logits[i], r.max_logit, r.temperature) / r.total;
}

/* Probability as a 2^-62 fixed-point integer: p <= 1, so a row's sum stays
 * below 2^63 and integer atomics add it exactly. */
static __device__ inline unsigned long long sample_fixed(double p)
{
    return __double2ull_rn(p * 0x1p62);
}

/* ---- reductions: butterflies leave the same bits in every lane (a + b ==
 * b + a), then every warp reduces the warps' partials the same way, so all
 * threads hold the result without a broadcast. ---- */

struct sample_add {
    __device__ double operator()(double a, double b) const { return a + b; }
};
struct sample_max_float {
    __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct sample_max_id {
    __device__ long long operator()(long long a, long long b) const { return a > b ? a : b; }
};

template <typename T, typename Op> static __device__ inline T sample_warp_reduce(T v, Op op)
{
    for (int offset = 16; offset > 0; offset /= 2)
        v = op(v, __shfl_xor_sync(SAMPLE_FULL_MASK, v, offset));
    return v;
}

static_assert(SAMPLE_WARPS == 32, "the second reduction level gives each lane one warp");

template <typename T, typename Op> static __device__ T sample_block_reduce(T v, Op op, T *partial)
{
    v = sample_warp_reduce(v, op);
    if (sample_lane() == 0)
        partial[sample_warp()] = v;
    __syncthreads();
    v = sample_warp_reduce(partial[sample_lane()], op);
    __syncthreads(); /* partial may be reused at once */
    return v;
}

/* ---- greedy ---- */

/* (logit, id) pairs: the larger logit wins, then the lower id. The rule is
 * a total order, so the butterfly leaves the same winner in every lane. */
static __device__ inline void sample_argmax_warp(float *best, int32_t *best_id)
{
    for (int offset = 16; offset > 0; offset /= 2) {
        float other = __shfl_xor_sync(SAMPLE_FULL_MASK, *best, offset);
        int32_t other_id = __shfl_xor_sync(SAMPLE_FULL_MASK, *best_id, offset);
        if (other > *best || (other == *best && other_id < *best_id)) {
            *best = other;
            *best_id = other_id;
        }
    }
}

static __device__ int32_t sample_argmax(const float *logits, int64_t n, sample_shared *sh)
{
    float best = -INFINITY;
    int32_t best_id = INT32_MAX; /* "none": loses every tie */
    for (int64_t i = threadIdx.x; i < n; i += SAMPLE_THREADS)
        if (best_id == INT32_MAX || logits[i] > best) { /* ids ascend: strict keeps the lowest */
            best = logits[i];
            best_id = (int32_t)i;
        }
    sample_argmax_warp(&best, &best_id);
    if (sample_lane() == 0) {
        sh->partial_f[sample_warp()] = best;
        sh->partial_i[sample_warp()] = best_id;
    }
    __syncthreads();
    best = sh->partial_f[sample_lane()];
    best_id = sh->partial_i[sample_lane()];
    sample_argmax_warp(&best, &best_id);
    return best_id;
}

/* ---- the nucleus cut: radix select on logit keys ---- */

/* Adds every matching token's fixed-point mass to hist[digit]. A thread's
 * consecutive tokens mostly share a digit (most logits share their top
 * byte), so it accumulates runs and flushes on change: few atomics. */
static __device__ void sample_histogram(const sample_row &r, uint32_t prefix, uint32_t high_mask,
                                        int shift, sample_shared *sh)
{
    int run_digit = -1;
    unsigned long long run_mass = 0;
    for (int64_t i = threadIdx.x; i < r.n; i += SAMPLE_THREADS) {
        uint32_t key = sampler_logit_key(r.logits[i]);
        if ((key & high_mask) != prefix)
            continue;
        int digit = (int)((key >> shift) & 0xFFu);
        if (digit != run_digit) {
            if (run_mass)
                atomicAdd(&sh->hist[run_digit], run_mass);
            run_digit = digit;
            run_mass = 0;
        }
        run_mass += sample_fixed(sample_prob(r, i));
    }
    if (run_mass)
        atomicAdd(&sh->hist[run_digit], run_mass);
}

/* Thread 0: the largest digit whose bin, with all mass above it, reaches
 * `need`; the mass strictly above moves into sh->above. None (only when the
 * whole row's mass is short of top_p after rounding): keep everything. */
static __device__ void sample_pick_digit(int shift, unsigned long long need, sample_shared *sh)
{
    for (int digit = SAMPLE_BINS - 1; digit >= 0; digit--) {
        if (sh->above + sh->hist[digit] >= need) {
            sh->prefix |= (uint32_t)digit << shift;
            return;
        }
        sh->above += sh->hist[digit];
    }
    sh->keep_all = 1;
}

/* After it: sh->prefix is the cut logit's key and sh->above the mass of
 * every token with a larger logit (or sh->keep_all). */
static __device__ void sample_select_key(const sample_row &r, unsigned long long need,
                                         sample_shared *sh)
{
    if (threadIdx.x == 0) {
        sh->prefix = 0;
        sh->above = 0;
        sh->keep_all = 0;
    }
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int b = threadIdx.x; b < SAMPLE_BINS; b += SAMPLE_THREADS)
            sh->hist[b] = 0;
        __syncthreads();
        uint32_t high_mask = shift == 24 ? 0u : ~0u << (shift + 8);
        sample_histogram(r, sh->prefix, high_mask, shift, sh);
        __syncthreads();
        if (threadIdx.x == 0)
            sample_pick_digit(shift, need, sh);
        __syncthreads();
        if (sh->keep_all)
            return;
    }
}

/* ---- id-order scans: the first id whose running sum crosses a bound ----
 *
 * Warp w owns ids [w span, (w + 1) span), span a multiple of 32, and walks
 * them 32 at a time (coalesced) with an inclusive shuffle scan, carrying a
 * running sum. Pass 1: each warp's total. Thread 0 adds the totals in warp
 * order and finds the warp where the sum crosses. Pass 2: that warp walks
 * again, with the same arithmetic, to the first crossing id. */

template <typename T> static __device__ inline T sample_warp_scan(T v)
{
    for (int offset = 1; offset < 32; offset *= 2) {
        T other = __shfl_up_sync(SAMPLE_FULL_MASK, v, offset);
        if (sample_lane() >= offset)
            v = v + other;
    }
    return v;
}

static __device__ inline int64_t sample_span(int64_t n)
{
    int64_t per_warp = (n + SAMPLE_WARPS - 1) / SAMPLE_WARPS;
    return (per_warp + 31) / 32 * 32;
}

/* This warp's sum, walked chunk by chunk exactly as sample_scan_warp does. */
template <typename T, typename Value>
static __device__ T sample_warp_total(int64_t n, Value value)
{
    const int64_t span = sample_span(n), begin = sample_warp() * span;
    const int64_t end = begin + span < n ? begin + span : n;
    T run = 0;
    for (int64_t chunk = begin; chunk < end; chunk += 32) {
        int64_t i = chunk + sample_lane();
        T incl = sample_warp_scan<T>(i < end ? value(i) : T(0));
        run = run + __shfl_sync(SAMPLE_FULL_MASK, incl, 31);
    }
    return run;
}

/* Warp `warp`'s walk from running sum `base`: the first id whose
 * base + (run + inclusive) crosses; if the partial last chunk's scan order
 * leaves none (ulp level), the warp's last id with a nonzero value. */
template <typename T, typename Value, typename Crossed>
static __device__ int64_t sample_scan_warp(int64_t n, Value value, Crossed crossed, T base)
{
    const int64_t span = sample_span(n), begin = sample_warp() * span;
    const int64_t end = begin + span < n ? begin + span : n;
    T run = 0;
    int64_t last_positive = -1;
    for (int64_t chunk = begin; chunk < end; chunk += 32) {
        int64_t i = chunk + sample_lane();
        T v = i < end ? value(i) : T(0);
        T incl = sample_warp_scan<T>(v);
        unsigned hit = __ballot_sync(SAMPLE_FULL_MASK, i < end && crossed(base + (run + incl)));
        if (hit)
            return chunk + __ffs((int)hit) - 1;
        unsigned positive = __ballot_sync(SAMPLE_FULL_MASK, i < end && v > T(0));
        if (positive)
            last_positive = chunk + 31 - __clz((int)positive);
        run = run + __shfl_sync(SAMPLE_FULL_MASK, incl, 31);
    }
    return last_positive;
}

/* Thread 0: the first warp at whose end base + totals crosses, and the
 * running sum before it; -1 when none does. */
template <typename T, typename Crossed>
static __device__ int sample_crossing_warp(const T *totals, Crossed crossed, T *base)
{
    for (int w = 0; w < SAMPLE_WARPS; w++) {
        if (crossed(*base + totals[w]))
            return w;
        *base = *base + totals[w];
    }
    return -1;
}

/* ---- one row ---- */

/* The cut in rank order (sampler_cut); top_p < 1 only. */
static __device__ sampler_cut sample_nucleus_cut(const sample_row &r, double top_p,
                                                 sample_shared *sh)
{
    sampler_cut cut = {1, 0u, 0};
    const unsigned long long need = (unsigned long long)ceil(top_p * 0x1p62);
    sample_select_key(r, need, sh);
    if (sh->keep_all)
        return cut;
    const uint32_t key = sh->prefix;
    const unsigned long long above = sh->above;
    /* Ties at the cut logit: ascending id until the mass reaches top_p. */
    auto tied = [&](int64_t i) -> unsigned long long {
        return sampler_logit_key(r.logits[i]) == key ? sample_fixed(sample_prob(r, i)) : 0ull;
    };
    auto reached = [&](unsigned long long mass) { return mass >= need; };
    unsigned long long total = sample_warp_total<unsigned long long>(r.n, tied);
    if (sample_lane() == 0)
        sh->partial_q[sample_warp()] = total;
    __syncthreads();
    if (threadIdx.x == 0) {
        sh->base_q = above;
        sh->crossing_warp = sample_crossing_warp(sh->partial_q, reached, &sh->base_q);
        sh->found = -1;
    }
    __syncthreads();
    if (sample_warp() == sh->crossing_warp) {
        int64_t id = sample_scan_warp(r.n, tied, reached, sh->base_q);
        if (sample_lane() == 0)
            sh->found = id;
    }
    __syncthreads();
    cut.keep_all = 0;
    cut.key = key;
    /* Integer sums are exact, so a crossing always exists; if not, keeping
     * every tie is the safe side. */
    cut.id = sh->found >= 0 ? (int32_t)sh->found : INT32_MAX;
    __syncthreads();
    return cut;
}

/* The last kept id: the CPU's fallback when rounding leaves u * mass at or
 * above the final cumulative sum. */
static __device__ int64_t sample_last_kept(const sample_row &r, const sampler_cut &cut,
                                           sample_shared *sh)
{
    long long last = -1;
    for (int64_t i = threadIdx.x; i < r.n; i += SAMPLE_THREADS)
        if (sampler_is_kept(&cut, sampler_logit_key(r.logits[i]), (int32_t)i))
            last = i;
    return sample_block_reduce(last, sample_max_id(), sh->partial_l);
}

static __device__ int32_t sample_draw(const sample_row &r, double top_p, double u,
                                      const sampler_cut &cut, sample_shared *sh)
{
    auto kept = [&](int64_t i) -> double {
        return sampler_is_kept(&cut, sampler_logit_key(r.logits[i]), (int32_t)i) ? sample_prob(r, i)
                                                                                 : 0.0;
    };
    double total = sample_warp_total<double>(r.n, kept);
    if (sample_lane() == 0)
        sh->partial_d[sample_warp()] = total;
    __syncthreads();
    if (threadIdx.x == 0) {
        double mass = 0.0;
        for (int w = 0; w < SAMPLE_WARPS; w++)
            mass += sh->partial_d[w];
        double target = sampler_draw_target(u, mass, top_p), base = 0.0;
        sh->crossing_warp = sample_crossing_warp(
            sh->partial_d, [&](double c) { return sampler_crosses(c, target); }, &base);
        sh->target = target;
        sh->base_d = base;
        sh->found = -1;
    }
    __syncthreads();
    const double target = sh->target, base = sh->base_d;
    if (sample_warp() == sh->crossing_warp) {
        int64_t id = sample_scan_warp(
            r.n, kept, [&](double c) { return sampler_crosses(c, target); }, base);
        if (sample_lane() == 0)
            sh->found = id;
    }
    __syncthreads();
    int64_t found = sh->found;
    __syncthreads();
    if (found < 0)
        found = sample_last_kept(r, cut, sh);
    return (int32_t)found;
}

__global__ void __launch_bounds__(SAMPLE_THREADS)
    sample_rows_kernel(const float *logits, int64_t row_stride, int64_t drawable,
                       double temperature, double top_p, uint64_t seed,
                       const gpu_sample_stream *streams, int32_t *tokens)
{
    __shared__ sample_shared sh;
    const int64_t row = blockIdx.x;
    sample_row r;
    r.logits = logits + row * row_stride;
    r.n = drawable;
    r.temperature = temperature;
    if (temperature == 0.0) {
        int32_t id = sample_argmax(r.logits, r.n, &sh);
        if (threadIdx.x == 0)
            tokens[row] = id;
        return;
    }
    float local_max = -INFINITY;
    for (int64_t i = threadIdx.x; i < r.n; i += SAMPLE_THREADS)
        local_max = fmaxf(local_max, r.logits[i]);
    r.max_logit = (double)sample_block_reduce(local_max, sample_max_float(), sh.partial_f);
    double local_total = 0.0;
    for (int64_t i = threadIdx.x; i < r.n; i += SAMPLE_THREADS)
        local_total += sampler_weight(r.logits[i], r.max_logit, r.temperature);
    r.total = sample_block_reduce(local_total, sample_add(), sh.partial_d);
    sampler_cut cut = {1, 0u, 0};
    if (top_p < 1.0)
        cut = sample_nucleus_cut(r, top_p, &sh);
    const gpu_sample_stream s = streams[row];
    const double u = philox_uniform_at(seed, s.stream_id, s.draw_index);
    int32_t id = sample_draw(r, top_p, u, cut, &sh);
    if (threadIdx.x == 0)
        tokens[row] = id;
}

extern "C" size_t gpu_sample_workspace(int64_t rows, int64_t vocab)
{
    (void)rows;
    (void)vocab;
    return 0; /* everything lives in shared memory and registers */
}

extern "C" int gpu_sample_tokens(const sampler_config *cfg, int64_t rows, int64_t row_stride,
                                 int64_t drawable, const float *logits, uint64_t seed,
                                 const gpu_sample_stream *streams, int32_t *tokens,
                                 void *workspace, void *stream, kpo_error *err)
{
    (void)workspace;
    if (sampler_config_validate(cfg, err) != KPO_OK)
        return KPO_ERR;
    if (rows < 0 || rows > INT32_MAX)
        return error_set(err, "gpu_sample_tokens: rows must be in [0, 2^31), got %lld",
                         (long long)rows);
    if (drawable < 1 || drawable > row_stride || drawable > INT32_MAX)
        return error_set(err,
                         "gpu_sample_tokens: drawable must be in [1, row_stride = %lld], got %lld",
                         (long long)row_stride, (long long)drawable);
    if (rows == 0)
        return KPO_OK;
    sample_rows_kernel<<<(unsigned)rows, SAMPLE_THREADS, 0, (cudaStream_t)stream>>>(
        logits, row_stride, drawable, cfg->temperature, cfg->top_p, seed, streams, tokens);
    return kernels_launch_check("gpu_sample_tokens", err);
}
