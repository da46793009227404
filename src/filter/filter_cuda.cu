/* The filter on a GPU. Work mapping (docs/cuda.md):
 *  - one thread per response runs the exact sequential recursion in double
 *    (filter_step.h, the CPU's own code), so a response's tokens never
 *    leave one thread and nothing is reassociated;
 *  - each thread keeps the scalar statistics of its response in registers
 *    (Welford), the block bins every token into one shared-memory
 *    histogram (atomics on integers: exact), and merges its threads'
 *    scalars with Pebay's pairwise update down a fixed warp-shuffle tree;
 *  - one warp then merges the per-block partials in block order, so the
 *    statistics are reproducible run to run.
 * Inputs are checked on the device before anything is written. */
#include <cstdint>
#include <cstring>
#include <vector>

#include <cuda_runtime.h>

extern "C" {
#include "core/error.h"
#include "filter/filter.h"
#include "filter/innov_stats.h"
}
#include "core/cuda_check.h"
#include "filter/filter_cuda.h"
#include "filter/filter_step.h"
#include "filter/innov_stats_update.h"

namespace {

/* Responses per block: small, so a step's few hundred responses still
 * spread over every SM (each thread is a long serial chain; occupancy
 * beyond a few warps per SM buys nothing). */
constexpr int kFilterThreads = 64;
constexpr int kWarp = 32;
constexpr int kCheckThreads = 256;
constexpr unsigned kFullMask = 0xffffffffu;
constexpr unsigned long long kNone = ~0ULL;

/* What the device-side input check found; kNone where nothing. */
struct input_check {
    unsigned long long first_bad_value;  /* smallest token index with a non-finite value */
    unsigned long long first_bad_offset; /* smallest i with offsets[i] < offsets[i-1]; 0: offsets[0] != 0 */
    unsigned long long last_mismatch;    /* not kNone when offsets[n_responses] != n_tokens */
};

__device__ innov_stats shfl_down_scalars(const innov_stats &s, int delta)
{
    innov_stats o;
    o.count = __shfl_down_sync(kFullMask, s.count, delta);
    o.mean = __shfl_down_sync(kFullMask, s.mean, delta);
    o.m2 = __shfl_down_sync(kFullMask, s.m2, delta);
    o.m3 = __shfl_down_sync(kFullMask, s.m3, delta);
    o.m4 = __shfl_down_sync(kFullMask, s.m4, delta);
    o.max_abs = __shfl_down_sync(kFullMask, s.max_abs, delta);
    o.clip_count = __shfl_down_sync(kFullMask, s.clip_count, delta);
    o.gain_sum = __shfl_down_sync(kFullMask, s.gain_sum, delta);
    o.sigma_sum = __shfl_down_sync(kFullMask, s.sigma_sum, delta);
    o.threshold_sum = __shfl_down_sync(kFullMask, s.threshold_sum, delta);
    o.threshold_count = __shfl_down_sync(kFullMask, s.threshold_count, delta);
    return o;
}

/* Lane 0 ends with the merge of the warp's 32 accumulators, in a fixed
 * order (pairs, then pairs of pairs). Every lane must call it. */
__device__ void warp_merge_scalars(innov_stats &s)
{
    for (int delta = kWarp / 2; delta > 0; delta /= 2) {
        innov_stats other = shfl_down_scalars(s, delta);
        innov_stats_merge_scalars(&s, &other);
    }
}

__global__ void __launch_bounds__(kCheckThreads)
filter_check_kernel(const double *__restrict__ values, int64_t n_tokens,
                    const int64_t *__restrict__ offsets /* [n_responses + 1] */,
                    int64_t n_responses, input_check *check)
{
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    const int64_t n = n_tokens > n_responses + 1 ? n_tokens : n_responses + 1;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        if (i < n_tokens && !isfinite(values[i]))
            atomicMin(&check->first_bad_value, (unsigned long long)i);
        if (i <= n_responses) {
            bool bad = i == 0 ? offsets[0] != 0 : offsets[i] < offsets[i - 1];
            if (bad)
                atomicMin(&check->first_bad_offset, (unsigned long long)i);
            if (i == n_responses && offsets[i] != n_tokens)
                check->last_mismatch = (unsigned long long)offsets[i];
        }
    }
}

/* partials: [gridDim.x] per-block statistics, or nullptr for none. */
__global__ void __launch_bounds__(kFilterThreads)
filter_kernel(filter_config cfg, const double *__restrict__ values /* [n_tokens] */,
              const int64_t *__restrict__ offsets /* [n_responses + 1] */, int64_t n_responses,
              filter_outputs out /* device arrays [n_tokens] or NULL */, innov_stats *partials)
{
    __shared__ unsigned long long hist[INNOV_HIST_SLOTS];
    __shared__ innov_stats warp_totals[kFilterThreads / kWarp];
    const bool want_stats = partials != nullptr;
    if (want_stats) {
        for (int k = threadIdx.x; k < INNOV_HIST_SLOTS; k += blockDim.x)
            hist[k] = 0;
        __syncthreads();
    }

    innov_stats s;
    innov_stats_clear_scalars(&s);
    const int64_t r = (int64_t)blockIdx.x * kFilterThreads + threadIdx.x;
    if (r < n_responses) {
        response_state st = filter_state_initial(&cfg);
        const int64_t end = offsets[r + 1];
        for (int64_t i = offsets[r]; i < end; i++) {
            token_result t = filter_step(&cfg, &st, values[i]);
            filter_store_token(&out, i, st.rho, &t);
            if (want_stats) {
                innov_stats_add_scalars(&s, t.delta, t.sigma, t.gain, t.threshold, t.clipped);
                atomicAdd(&hist[innov_hist_slot(t.delta / t.sigma)], 1ULL);
            }
        }
    }
    if (!want_stats)
        return;

    warp_merge_scalars(s);
    const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
    if (lane == 0) {
        innov_stats_clear_scalars(&warp_totals[warp]);
        innov_stats_merge_scalars(&warp_totals[warp], &s);
    }
    __syncthreads(); /* warp totals and every histogram atomic are done */
    innov_stats *block = &partials[blockIdx.x];
    if (threadIdx.x == 0) {
        innov_stats total = warp_totals[0];
        for (int w = 1; w < kFilterThreads / kWarp; w++)
            innov_stats_merge_scalars(&total, &warp_totals[w]);
        innov_stats_clear_scalars(block);
        innov_stats_merge_scalars(block, &total);
    }
    for (int k = threadIdx.x; k < INNOV_HIST_SLOTS; k += blockDim.x)
        block->hist[k] = (double)hist[k];
}

/* One warp: lane l merges blocks l, l + 32, ... in order, then the warp
 * tree; histogram slots are summed exactly (integers in double). */
__global__ void __launch_bounds__(kWarp)
filter_merge_kernel(const innov_stats *__restrict__ partials, int64_t n_blocks, innov_stats *total)
{
    innov_stats s;
    innov_stats_clear_scalars(&s);
    for (int64_t b = threadIdx.x; b < n_blocks; b += kWarp)
        innov_stats_merge_scalars(&s, &partials[b]);
    warp_merge_scalars(s);
    if (threadIdx.x == 0) {
        innov_stats_clear_scalars(total);
        innov_stats_merge_scalars(total, &s);
    }
    for (int k = threadIdx.x; k < INNOV_HIST_SLOTS; k += kWarp) {
        double sum = 0.0;
        for (int64_t b = 0; b < n_blocks; b++)
            sum += partials[b].hist[k];
        total->hist[k] = sum;
    }
}

/* Device scratch for one call: the check, the total and the per-block
 * partials, in one stream-ordered allocation. */
struct workspace {
    void *base;
    input_check *check;
    innov_stats *total;
    innov_stats *partials; /* [n_blocks] */
};

int workspace_alloc(workspace *ws, int64_t n_blocks, cudaStream_t stream, kpo_error *err)
{
    /* innov_stats is all doubles and input_check all 8-byte words, so the
     * parts stay aligned back to back. */
    size_t bytes = sizeof(input_check) + sizeof(innov_stats) * (size_t)(n_blocks + 1);
    ws->base = nullptr;
    if (cuda_check(cudaMallocAsync(&ws->base, bytes, stream), "filter workspace", err))
        return KPO_ERR;
    ws->check = (input_check *)ws->base;
    ws->total = (innov_stats *)(ws->check + 1);
    ws->partials = ws->total + 1;
    return KPO_OK;
}

/* Turns a failed device check into the message filter_validate_input
 * would give on the host for the same input. */
int report_bad_input(const input_check &c, const double *d_values, const int64_t *d_offsets,
                     int64_t n_responses, int64_t n_tokens, cudaStream_t stream, kpo_error *err)
{
    if (c.first_bad_offset == 0)
        return error_set(err, "offsets: must start at 0 and hold n_responses + 1 entries");
    if (c.first_bad_offset != kNone) {
        int64_t pair[2];
        int64_t i = (int64_t)c.first_bad_offset;
        if (cuda_check(cudaMemcpyAsync(pair, d_offsets + i - 1, sizeof pair,
                                       cudaMemcpyDeviceToHost, stream), "offsets", err) ||
            cuda_check(cudaStreamSynchronize(stream), "offsets", err))
            return KPO_ERR;
        return error_set(err, "offsets: entry %lld (%lld) is below entry %lld (%lld)",
                         (long long)i, (long long)pair[1], (long long)(i - 1), (long long)pair[0]);
    }
    if (c.last_mismatch != kNone)
        return error_set(err, "offsets: last entry (%lld) differs from the token count (%lld)",
                         (long long)c.last_mismatch, (long long)n_tokens);
    /* A non-finite value: find its response on the host (error path only). */
    std::vector<int64_t> offsets((size_t)n_responses + 1);
    int64_t i = (int64_t)c.first_bad_value;
    double value = 0.0;
    if (cuda_check(cudaMemcpyAsync(offsets.data(), d_offsets, offsets.size() * sizeof(int64_t),
                                   cudaMemcpyDeviceToHost, stream), "offsets", err) ||
        cuda_check(cudaMemcpyAsync(&value, d_values + i, sizeof value, cudaMemcpyDeviceToHost,
                                   stream), "values", err) ||
        cuda_check(cudaStreamSynchronize(stream), "values", err))
        return KPO_ERR;
    int64_t r = 0;
    while (r + 1 < n_responses && offsets[(size_t)r + 1] <= i)
        r++;
    return error_set(err, "log-ratio of response %lld, token %lld is %g: values must be finite",
                     (long long)r, (long long)(i - offsets[(size_t)r]), value);
}

int check_input(const double *d_values, const int64_t *d_offsets, int64_t n_responses,
                int64_t n_tokens, const workspace &ws, cudaStream_t stream, kpo_error *err)
{
    input_check c;
    int64_t n = n_tokens > n_responses + 1 ? n_tokens : n_responses + 1;
    int blocks = (int)((n + kCheckThreads - 1) / kCheckThreads);
    if (blocks > 4096) /* grid-stride beyond this: the check is bandwidth-bound */
        blocks = 4096;
    if (cuda_check(cudaMemsetAsync(ws.check, 0xff, sizeof c, stream), "filter check", err))
        return KPO_ERR;
    filter_check_kernel<<<blocks, kCheckThreads, 0, stream>>>(d_values, n_tokens, d_offsets,
                                                              n_responses, ws.check);
    if (cuda_check(cudaGetLastError(), "filter check kernel", err) ||
        cuda_check(cudaMemcpyAsync(&c, ws.check, sizeof c, cudaMemcpyDeviceToHost, stream),
                   "filter check", err) ||
        cuda_check(cudaStreamSynchronize(stream), "filter check", err))
        return KPO_ERR;
    if (c.first_bad_value == kNone && c.first_bad_offset == kNone && c.last_mismatch == kNone)
        return KPO_OK;
    return report_bad_input(c, d_values, d_offsets, n_responses, n_tokens, stream, err);
}

int run_filter(const filter_config *cfg, const double *d_values, const int64_t *d_offsets,
               int64_t n_responses, int64_t n_tokens, const filter_outputs *d_out,
               innov_stats *stats, cudaStream_t stream, const workspace &ws, kpo_error *err)
{
    if (check_input(d_values, d_offsets, n_responses, n_tokens, ws, stream, err))
        return KPO_ERR;
    const int64_t n_blocks = (n_responses + kFilterThreads - 1) / kFilterThreads;
    filter_outputs out = {};
    if (d_out)
        out = *d_out;
    filter_kernel<<<(unsigned)n_blocks, kFilterThreads, 0, stream>>>(
        *cfg, d_values, d_offsets, n_responses, out, stats ? ws.partials : nullptr);
    if (cuda_check(cudaGetLastError(), "filter kernel", err))
        return KPO_ERR;
    if (!stats)
        return KPO_OK;
    filter_merge_kernel<<<1, kWarp, 0, stream>>>(ws.partials, n_blocks, ws.total);
    innov_stats total;
    if (cuda_check(cudaGetLastError(), "filter statistics kernel", err) ||
        cuda_check(cudaMemcpyAsync(&total, ws.total, sizeof total, cudaMemcpyDeviceToHost, stream),
                   "filter statistics", err) ||
        cuda_check(cudaStreamSynchronize(stream), "filter kernel", err))
        return KPO_ERR;
    innov_stats_merge(stats, &total);
    return KPO_OK;
}

} // namespace

extern "C" int filter_cuda_apply_device(const filter_config *cfg, const double *d_values,
                                        const int64_t *d_offsets, int64_t n_responses,
                                        int64_t n_tokens, const filter_outputs *d_out,
                                        innov_stats *stats, void *stream_handle, kpo_error *err)
{
    if (filter_config_validate(cfg, err) != KPO_OK)
        return KPO_ERR;
    if (n_responses < 0 || n_tokens < 0)
        return error_set(err, "filter: negative response (%lld) or token (%lld) count",
                         (long long)n_responses, (long long)n_tokens);
    if (n_responses == 0)
        return KPO_OK;
    if (cuda_require_device(err) != KPO_OK)
        return KPO_ERR;
    if ((n_responses + kFilterThreads - 1) / kFilterThreads > 0x7fffffff)
        return error_set(err, "filter: %lld responses exceed one grid", (long long)n_responses);
    cudaStream_t stream = (cudaStream_t)stream_handle;
    workspace ws;
    if (workspace_alloc(&ws, (n_responses + kFilterThreads - 1) / kFilterThreads, stream, err))
        return KPO_ERR;
    int status = run_filter(cfg, d_values, d_offsets, n_responses, n_tokens, d_out, stats, stream,
                            ws, err);
    cudaError_t freed = cudaFreeAsync(ws.base, stream);
    if (status == KPO_OK && cuda_check(freed, "filter workspace", err))
        return KPO_ERR;
    return status;
}

namespace {

/* Host mirrors of the device buffers filter_cuda_apply copies through. */
struct device_batch {
    double *values = nullptr;
    int64_t *offsets = nullptr;
    filter_outputs out = {};
};

void device_batch_free(device_batch *b)
{
    void *ptrs[] = {b->values, b->offsets, b->out.rho, b->out.gain, b->out.innovation,
                    b->out.threshold, b->out.clipped};
    for (void *p : ptrs)
        if (p)
            cudaFree(p);
}

/* Allocates a device twin of each requested host output. */
int device_outputs_alloc(const filter_outputs *host, filter_outputs *dev, int64_t n_tokens,
                         kpo_error *err)
{
    size_t bytes = (size_t)(n_tokens > 0 ? n_tokens : 1) * sizeof(double);
    double *const *hd[] = {&host->rho, &host->gain, &host->innovation, &host->threshold};
    double **dd[] = {&dev->rho, &dev->gain, &dev->innovation, &dev->threshold};
    for (int k = 0; k < 4; k++)
        if (*hd[k] && cuda_check(cudaMalloc((void **)dd[k], bytes), "filter outputs", err))
            return KPO_ERR;
    if (host->clipped &&
        cuda_check(cudaMalloc((void **)&dev->clipped, bytes / sizeof(double)), "filter outputs",
                   err))
        return KPO_ERR;
    return KPO_OK;
}

int device_outputs_copy_back(const filter_outputs *host, const filter_outputs *dev,
                             int64_t n_tokens, kpo_error *err)
{
    size_t bytes = (size_t)n_tokens * sizeof(double);
    double *hd[] = {host->rho, host->gain, host->innovation, host->threshold};
    const double *dd[] = {dev->rho, dev->gain, dev->innovation, dev->threshold};
    for (int k = 0; k < 4; k++)
        if (hd[k] && cuda_check(cudaMemcpy(hd[k], dd[k], bytes, cudaMemcpyDeviceToHost),
                                "filter outputs", err))
            return KPO_ERR;
    if (host->clipped &&
        cuda_check(cudaMemcpy(host->clipped, dev->clipped, (size_t)n_tokens,
                              cudaMemcpyDeviceToHost), "filter outputs", err))
        return KPO_ERR;
    return KPO_OK;
}

int apply_through_device(const filter_config *cfg, const double *values, const int64_t *offsets,
                         int64_t n_responses, filter_outputs *out, innov_stats *stats,
                         device_batch *b, kpo_error *err)
{
    const int64_t n_tokens = offsets[n_responses];
    const size_t value_bytes = (size_t)(n_tokens > 0 ? n_tokens : 1) * sizeof(double);
    const size_t offset_bytes = (size_t)(n_responses + 1) * sizeof(int64_t);
    if (cuda_check(cudaMalloc((void **)&b->values, value_bytes), "filter values", err) ||
        cuda_check(cudaMalloc((void **)&b->offsets, offset_bytes), "filter offsets", err) ||
        (out && device_outputs_alloc(out, &b->out, n_tokens, err)) ||
        cuda_check(cudaMemcpy(b->values, values, (size_t)n_tokens * sizeof(double),
                              cudaMemcpyHostToDevice), "filter values", err) ||
        cuda_check(cudaMemcpy(b->offsets, offsets, offset_bytes, cudaMemcpyHostToDevice),
                   "filter offsets", err))
        return KPO_ERR;
    if (filter_cuda_apply_device(cfg, b->values, b->offsets, n_responses, n_tokens, &b->out, stats,
                                 nullptr, err))
        return KPO_ERR;
    if (cuda_check(cudaDeviceSynchronize(), "filter kernel", err))
        return KPO_ERR;
    return out ? device_outputs_copy_back(out, &b->out, n_tokens, err) : KPO_OK;
}

} // namespace

extern "C" int filter_cuda_apply(const filter_config *cfg, const double *values,
                                 const int64_t *offsets, int64_t n_responses, filter_outputs *out,
                                 innov_stats *stats, kpo_error *err)
{
    if (filter_config_validate(cfg, err) != KPO_OK ||
        filter_validate_input(values, offsets, n_responses, err) != KPO_OK)
        return KPO_ERR;
    if (n_responses == 0)
        return KPO_OK;
    if (cuda_require_device(err) != KPO_OK)
        return KPO_ERR;
    device_batch b;
    int status = apply_through_device(cfg, values, offsets, n_responses, out, stats, &b, err);
    device_batch_free(&b);
    return status;
}
