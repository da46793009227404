/* The policy objective on the GPU (objective_cuda.h). Work mapping:
 *  - z: one block per response, threads striding over its tokens; z = logp
 *    (float, widened) - logp_old (double), the same subtraction the host
 *    did on the downloaded floats; the first non-finite token is found with
 *    atomicMin and read back before anything else runs;
 *  - l_t: kpo runs filter_cuda_apply_device on z (one thread per response,
 *    the CPU's recursion); gspo's response mean is summed by one thread in
 *    token order (the CPU's order, so the same bits); grpo uses z;
 *  - per token, objective_token_eval (objective_token.h, shared with
 *    objective.c) in the same blocks; each thread accumulates an
 *    objective_sums, merged down a fixed warp-shuffle tree, then across
 *    warps in order, into one partial per response; one block merges the
 *    partials (thread i takes responses i, i + 256, ..., then the tree).
 * Every order is fixed by the launch shape, so the metrics repeat run to
 * run. Compiled with --fmad=false: per token the device performs the CPU's
 * operations; only exp may differ by an ulp from glibc's. */
#include <cstdint>

#include <cuda_runtime.h>

extern "C" {
#include "core/error.h"
#include "filter/filter.h"
#include "filter/innov_stats.h"
#include "learner/objective.h"
}
#include "core/cuda_check.h"
#include "filter/filter_cuda.h"
#include "learner/objective_cuda.h"
#include "learner/objective_token.h"

namespace {

constexpr int kThreads = 256; /* per response block and in the final merge */
constexpr int kWarp = 32;
constexpr unsigned kFullMask = 0xffffffffu;
constexpr unsigned long long kNone = ~0ULL;

/* Device scratch for one call, one stream-ordered allocation; every part
 * is 8-byte words, so the parts stay aligned back to back. */
struct workspace {
    void *base;
    int64_t *offsets;        /* [R + 1] */
    int64_t *rows;           /* [R] */
    double *advantages;      /* [R] */
    double *logp_old;        /* [N] */
    double *z;               /* [N] */
    double *l;               /* [N] kpo: the filtered log-ratio rho */
    double *logp;            /* [N] response log-probs as doubles, when logp_out asks */
    objective_sums *partials; /* [R] */
    objective_sums *total;   /* [1] */
    unsigned long long *first_bad; /* [1] smallest response-token index not finite */
};

__device__ objective_sums shfl_down_sums(const objective_sums &s, int delta)
{
    objective_sums o;
    o.loss = __shfl_down_sync(kFullMask, s.loss, delta);
    o.clipped = __shfl_down_sync(kFullMask, s.clipped, delta);
    o.log_ratio = __shfl_down_sync(kFullMask, s.log_ratio, delta);
    o.raw_sum = __shfl_down_sync(kFullMask, s.raw_sum, delta);
    o.used_sum = __shfl_down_sync(kFullMask, s.used_sum, delta);
    o.raw_min = __shfl_down_sync(kFullMask, s.raw_min, delta);
    o.raw_max = __shfl_down_sync(kFullMask, s.raw_max, delta);
    o.used_min = __shfl_down_sync(kFullMask, s.used_min, delta);
    o.used_max = __shfl_down_sync(kFullMask, s.used_max, delta);
    o.entropy = __shfl_down_sync(kFullMask, s.entropy, delta);
    return o;
}

/* Thread 0 ends with the merge of the block's accumulators: each warp's
 * by a fixed shuffle tree, then the warps in order. Every thread of the
 * (kThreads-thread) block must call it. */
__device__ objective_sums block_merge_sums(objective_sums s)
{
    __shared__ objective_sums warp_totals[kThreads / kWarp];
    for (int delta = kWarp / 2; delta > 0; delta /= 2) {
        objective_sums other = shfl_down_sums(s, delta);
        objective_sums_merge(&s, &other);
    }
    const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
    if (lane == 0)
        warp_totals[warp] = s;
    __syncthreads();
    if (threadIdx.x == 0)
        for (int w = 1; w < kThreads / kWarp; w++)
            objective_sums_merge(&s, &warp_totals[w]);
    return s;
}

/* Block r: z of response r's tokens; logp_resp (may be null) receives the
 * widened log-probs in response-token order. */
__global__ void __launch_bounds__(kThreads)
objective_z_kernel(const float *__restrict__ logp /* [n_rows] */,
                   const double *__restrict__ logp_old /* [N] */,
                   const int64_t *__restrict__ offsets, const int64_t *__restrict__ rows,
                   double *__restrict__ z /* [N] */, double *__restrict__ logp_resp,
                   unsigned long long *first_bad)
{
    const int64_t r = blockIdx.x, first = offsets[r], n = offsets[r + 1] - first;
    for (int64_t t = threadIdx.x; t < n; t += kThreads) {
        const double lp = (double)logp[rows[r] + t], old = logp_old[first + t];
        if (!isfinite(lp) || !isfinite(old))
            atomicMin(first_bad, (unsigned long long)(first + t));
        z[first + t] = lp - old;
        if (logp_resp)
            logp_resp[first + t] = lp;
    }
}

/* Block r: response r's tokens through the surrogate; d loss / d logp into
 * its rows of dlogp, its metrics into partials[r]. l: kpo's filtered
 * log-ratios, null for grpo and gspo (l_t from z). */
__global__ void __launch_bounds__(kThreads)
objective_token_kernel(objective_config cfg, objective_normalizer norm,
                       const double *__restrict__ z, const double *__restrict__ l,
                       const int64_t *__restrict__ offsets, const int64_t *__restrict__ rows,
                       const double *__restrict__ advantages,
                       const float *__restrict__ entropy /* [n_rows] or null */,
                       float *__restrict__ dlogp /* [n_rows] */, objective_sums *partials)
{
    __shared__ double response_mean;
    const int64_t r = blockIdx.x, first = offsets[r], n = offsets[r + 1] - first;
    if (cfg.kind == OBJECTIVE_GSPO) {
        if (threadIdx.x == 0 && n > 0)
            response_mean = objective_response_mean(z + first, n);
        __syncthreads();
    }
    objective_sums s;
    objective_sums_clear(&s);
    if (n > 0) {
        const double weight = objective_token_weight(cfg.aggregation, norm, n);
        const double advantage = advantages[r];
        for (int64_t t = threadIdx.x; t < n; t += kThreads) {
            const double zt = z[first + t];
            const double lt = l ? l[first + t] : cfg.kind == OBJECTIVE_GSPO ? response_mean : zt;
            const objective_token tok = objective_token_eval(&cfg, advantage, weight, lt);
            dlogp[rows[r] + t] = (float)tok.d_logp;
            objective_sums_add(&s, &tok, zt);
            if (entropy)
                s.entropy += (double)entropy[rows[r] + t];
        }
    }
    s = block_merge_sums(s);
    if (threadIdx.x == 0)
        partials[r] = s;
}

/* One block: thread i merges partials i, i + kThreads, ... in order, then
 * the block tree. */
__global__ void __launch_bounds__(kThreads)
objective_merge_kernel(const objective_sums *__restrict__ partials, int64_t n,
                       objective_sums *total)
{
    objective_sums s;
    objective_sums_clear(&s);
    for (int64_t i = threadIdx.x; i < n; i += kThreads)
        objective_sums_merge(&s, &partials[i]);
    s = block_merge_sums(s);
    if (threadIdx.x == 0)
        *total = s;
}

int workspace_alloc(workspace *ws, int64_t R, int64_t N, bool want_logp, cudaStream_t stream,
                    kpo_error *err)
{
    const size_t words = (size_t)(R + 1) + (size_t)R * 2 + (size_t)N * (want_logp ? 4 : 3);
    const size_t bytes = words * 8 + sizeof(objective_sums) * (size_t)(R + 1) + 8;
    ws->base = nullptr;
    if (cuda_check(cudaMallocAsync(&ws->base, bytes, stream), "objective_cuda: workspace", err))
        return KPO_ERR;
    ws->offsets = (int64_t *)ws->base;
    ws->rows = ws->offsets + R + 1;
    ws->advantages = (double *)(ws->rows + R);
    ws->logp_old = ws->advantages + R;
    ws->z = ws->logp_old + N;
    ws->l = ws->z + N;
    ws->logp = want_logp ? ws->l + N : nullptr;
    ws->partials = (objective_sums *)(ws->l + N + (want_logp ? N : 0));
    ws->total = ws->partials + R;
    ws->first_bad = (unsigned long long *)(ws->total + 1);
    return KPO_OK;
}

int upload(void *dst, const void *src, size_t bytes, const char *what, cudaStream_t stream,
           kpo_error *err)
{
    if (bytes == 0)
        return KPO_OK;
    return cuda_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream), what,
                      err);
}

/* The batch's host arrays into the workspace; dlogp zeroed; z computed and
 * checked. *bad: the first non-finite response token, kNone if none. */
int compute_z(const objective_cuda_batch *b, const workspace &ws, cudaStream_t stream,
              unsigned long long *bad, kpo_error *err)
{
    const int64_t R = b->n_responses, N = b->offsets[R];
    if (upload(ws.offsets, b->offsets, (size_t)(R + 1) * 8, "objective_cuda: offsets", stream,
               err) ||
        upload(ws.rows, b->rows, (size_t)R * 8, "objective_cuda: rows", stream, err) ||
        upload(ws.advantages, b->advantages, (size_t)R * 8, "objective_cuda: advantages", stream,
               err) ||
        upload(ws.logp_old, b->logp_old, (size_t)N * 8, "objective_cuda: logp_old", stream,
               err) ||
        cuda_check(cudaMemsetAsync(ws.first_bad, 0xff, 8, stream), "objective_cuda: check",
                   err) ||
        cuda_check(cudaMemsetAsync(b->d_dlogp, 0, (size_t)b->n_rows * 4, stream),
                   "objective_cuda: d_dlogp", err))
        return KPO_ERR;
    objective_z_kernel<<<(unsigned)R, kThreads, 0, stream>>>(b->d_logp, ws.logp_old, ws.offsets,
                                                             ws.rows, ws.z, ws.logp,
                                                             ws.first_bad);
    return cuda_check(cudaGetLastError(), "objective_cuda: z kernel", err) ||
                   cuda_check(cudaMemcpyAsync(bad, ws.first_bad, 8, cudaMemcpyDeviceToHost,
                                              stream), "objective_cuda: check", err) ||
                   cuda_check(cudaStreamSynchronize(stream), "objective_cuda: z kernel", err)
               ? KPO_ERR
               : KPO_OK;
}

/* objective_compute's message for the first non-finite token. */
int report_not_finite(const objective_cuda_batch *b, unsigned long long bad, kpo_error *err)
{
    int64_t r = 0;
    while (r + 1 < b->n_responses && b->offsets[r + 1] <= (int64_t)bad)
        r++;
    return error_set(err, "objective: log-ratio of response %lld, token %lld is not finite",
                     (long long)r, (long long)((int64_t)bad - b->offsets[r]));
}

/* The surrogate and the metrics, once z (and kpo's l) are on the device. */
int compute_tokens(const objective_config *cfg, const objective_cuda_batch *b,
                   objective_normalizer norm, const workspace &ws, objective_sums *total,
                   cudaStream_t stream, kpo_error *err)
{
    const int64_t R = b->n_responses;
    objective_token_kernel<<<(unsigned)R, kThreads, 0, stream>>>(
        *cfg, norm, ws.z, cfg->kind == OBJECTIVE_KPO ? ws.l : nullptr, ws.offsets, ws.rows,
        ws.advantages, b->d_entropy, b->d_dlogp, ws.partials);
    if (cuda_check(cudaGetLastError(), "objective_cuda: token kernel", err))
        return KPO_ERR;
    objective_merge_kernel<<<1, kThreads, 0, stream>>>(ws.partials, R, ws.total);
    if (cuda_check(cudaGetLastError(), "objective_cuda: merge kernel", err) ||
        cuda_check(cudaMemcpyAsync(total, ws.total, sizeof *total, cudaMemcpyDeviceToHost,
                                   stream), "objective_cuda: metrics", err))
        return KPO_ERR;
    if (b->logp_out && b->logp_out_tokens > 0 &&
        cuda_check(cudaMemcpyAsync(b->logp_out, ws.logp, (size_t)b->logp_out_tokens * 8,
                                   cudaMemcpyDeviceToHost, stream), "objective_cuda: logp_out",
                   err))
        return KPO_ERR;
    return cuda_check(cudaStreamSynchronize(stream), "objective_cuda: token kernel", err);
}

int run_objective(const objective_config *cfg, const objective_cuda_batch *b,
                  objective_normalizer norm, objective_metrics *metrics, double *entropy_sum,
                  int *finite, const workspace &ws, cudaStream_t stream, kpo_error *err)
{
    const int64_t R = b->n_responses, N = b->offsets[R];
    unsigned long long bad = kNone;
    if (compute_z(b, ws, stream, &bad, err))
        return KPO_ERR;
    if (bad != kNone) {
        if (!finite)
            return report_not_finite(b, bad, err);
        *finite = 0;
        return KPO_OK;
    }
    if (cfg->kind == OBJECTIVE_KPO) {
        filter_outputs out = {};
        out.rho = ws.l;
        if (filter_cuda_apply_device(&cfg->filter, ws.z, ws.offsets, R, N, &out,
                                     &metrics->innovation, stream, err))
            return KPO_ERR;
    }
    objective_sums total;
    if (compute_tokens(cfg, b, norm, ws, &total, stream, err))
        return KPO_ERR;
    objective_metrics_add_sums(metrics, &total, (double)N);
    if (entropy_sum)
        *entropy_sum += total.entropy;
    return KPO_OK;
}

} // namespace

extern "C" int objective_cuda_compute(const objective_config *cfg, const objective_cuda_batch *b,
                                      objective_normalizer norm, objective_metrics *metrics,
                                      double *entropy_sum, int *finite, void *stream_handle,
                                      kpo_error *err)
{
    if (objective_cuda_check(cfg, b, norm, err) != KPO_OK)
        return KPO_ERR;
    if (!metrics)
        return error_set(err, "objective_cuda: missing metrics");
    const int64_t R = b->n_responses;
    if (R > 0x7fffffff)
        return error_set(err, "objective_cuda: %lld responses exceed one grid", (long long)R);
    if (cuda_require_device(err) != KPO_OK)
        return KPO_ERR;
    cudaStream_t stream = (cudaStream_t)stream_handle;
    if (R == 0) /* nothing to launch; dlogp is still all zeros */
        return cuda_check(cudaMemsetAsync(b->d_dlogp, 0, (size_t)b->n_rows * 4, stream),
                          "objective_cuda: d_dlogp", err);
    workspace ws;
    if (workspace_alloc(&ws, R, b->offsets[R], b->logp_out != nullptr, stream, err))
        return KPO_ERR;
    int status = run_objective(cfg, b, norm, metrics, entropy_sum, finite, ws, stream, err);
    cudaError_t freed = cudaFreeAsync(ws.base, stream);
    if (status == KPO_OK && cuda_check(freed, "objective_cuda: workspace", err))
        return KPO_ERR;
    return status;
}
