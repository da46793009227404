/* The token embedding: a row gather forward; backward, the scatter-add of
 * dx's rows into the fp32 embedding gradient, one block per distinct token
 * over an index built on the host (rows grouped by token, ascending inside
 * a group). Each element starts from dembed's current value and adds the
 * token's rows in row order, which is exactly model_backward's serial
 * scatter (row[j] += dx[t, j] for t ascending): pure fp32 additions, nothing
 * to contract into an FMA, so the GPU's gradient is expected to equal the
 * CPU's bit for bit, and certainly to repeat run to run (no atomics). */
#include <stdlib.h>
#include <string.h>

#include "model/cuda/kernels_common.cuh"
#include "model/cuda/kernels_embed.h"

/* x[r, :] = embed[tokens[r], :], in words of Word (uint4: 8 bf16 at once
 * when rows are 16-byte multiples and aligned; else one bf16). words is the
 * row length in Words. */
template <typename Word>
static __global__ void embed_gather_kernel(int64_t rows, int64_t words, const int32_t *tokens,
                                           const Word *embed /* [vocab, words] */,
                                           Word *x /* [rows, words] */)
{
    KERNELS_GRID_STRIDE(i, rows * words) {
        const int64_t r = i / words, c = i - r * words;
        x[i] = embed[(int64_t)tokens[r] * words + c];
    }
}

extern "C" int gpu_embed_forward(int64_t rows, int64_t hidden, const int32_t *tokens,
                                 const uint16_t *embed, uint16_t *x, void *stream, kpo_error *err)
{
    if (rows < 0 || hidden <= 0)
        return error_set(err, "gpu_embed_forward: bad shape rows %lld hidden %lld",
                         (long long)rows, (long long)hidden);
    if (rows == 0)
        return KPO_OK;
    cudaStream_t s = (cudaStream_t)stream;
    const bool wide = hidden % 8 == 0 && ((uintptr_t)embed | (uintptr_t)x) % 16 == 0;
    if (wide) {
        const int64_t words = hidden / 8;
        embed_gather_kernel<uint4><<<kernels_blocks(rows * words), KERNELS_THREADS, 0, s>>>(
            rows, words, tokens, (const uint4 *)embed, (uint4 *)x);
    } else {
        embed_gather_kernel<uint16_t><<<kernels_blocks(rows * hidden), KERNELS_THREADS, 0, s>>>(
            rows, hidden, tokens, embed, x);
    }
    return kernels_launch_check("gpu_embed_forward", err);
}

/* Stable bottom-up merge sort of order[0..n) by tokens[order[i]] (tmp: [n]
 * scratch). Stable, and order starts ascending, so each token's rows stay
 * ascending. O(n log n) whatever the id range (a counting sort would need
 * a vocabulary-sized table). */
static void embed_sort_rows(const int32_t *tokens, int64_t n, int64_t *order, int64_t *tmp)
{
    for (int64_t i = 0; i < n; i++)
        order[i] = i;
    int64_t *src = order, *dst = tmp;
    for (int64_t width = 1; width < n; width *= 2) {
        for (int64_t lo = 0; lo < n; lo += 2 * width) {
            const int64_t mid = lo + width < n ? lo + width : n;
            const int64_t hi = lo + 2 * width < n ? lo + 2 * width : n;
            int64_t a = lo, b = mid, k = lo;
            while (a < mid && b < hi) /* <=: ties take the left (earlier) row */
                dst[k++] = tokens[src[a]] <= tokens[src[b]] ? src[a++] : src[b++];
            while (a < mid)
                dst[k++] = src[a++];
            while (b < hi)
                dst[k++] = src[b++];
        }
        int64_t *swap = src;
        src = dst, dst = swap;
    }
    if (src != order)
        memcpy(order, src, (size_t)n * sizeof *order);
}

/* Makes *buf hold at least need elements of elem bytes; contents are not
 * kept. The stream is synchronised first: an earlier backward queued on it
 * may still read the old buffer. */
static int embed_grow(void **buf, int64_t *capacity, int64_t need, size_t elem, cudaStream_t s,
                      const char *what, kpo_error *err)
{
    if (need <= *capacity && *buf)
        return KPO_OK;
    if (cuda_check(cudaStreamSynchronize(s), what, err) != KPO_OK)
        return KPO_ERR;
    cudaFree(*buf);
    *buf = NULL;
    *capacity = 0;
    const int64_t cap = need > 1 ? need + need / 4 : 1; /* headroom: batches vary a little */
    if (cuda_check(cudaMalloc(buf, (size_t)cap * elem), what, err) != KPO_OK)
        return KPO_ERR;
    *capacity = cap;
    return KPO_OK;
}

/* Host arrays of one index (what gets copied up). */
typedef struct embed_host_index {
    int64_t *order;       /* [n_rows] rows sorted by token */
    int64_t *tmp;         /* [n_rows] sort scratch */
    int32_t *ids;         /* [n_rows] (n_unique used) */
    int64_t *row_offsets; /* [n_rows + 1] (n_unique + 1 used) */
} embed_host_index;

static void embed_host_free(embed_host_index *h)
{
    free(h->order), free(h->tmp), free(h->ids), free(h->row_offsets);
}

/* Groups the sorted rows by token; returns the number of distinct ids. */
static int64_t embed_group_rows(const int32_t *tokens, int64_t n_rows, embed_host_index *h)
{
    int64_t n_unique = 0;
    for (int64_t k = 0; k < n_rows; k++)
        if (k == 0 || tokens[h->order[k]] != tokens[h->order[k - 1]]) {
            h->ids[n_unique] = tokens[h->order[k]];
            h->row_offsets[n_unique++] = k;
        }
    h->row_offsets[n_unique] = n_rows;
    return n_unique;
}

extern "C" int gpu_embed_index_build(gpu_embed_index *ix, const int32_t *tokens, int64_t n_rows,
                                     void *stream, kpo_error *err)
{
    if (n_rows < 0)
        return error_set(err, "gpu_embed_index_build: %lld rows", (long long)n_rows);
    for (int64_t r = 0; r < n_rows; r++)
        if (tokens[r] < 0)
            return error_set(err, "gpu_embed_index_build: token %d at row %lld is negative",
                             (int)tokens[r], (long long)r);
    ix->n_unique = ix->n_rows = 0;
    if (n_rows == 0)
        return KPO_OK;
    const size_t n = (size_t)n_rows;
    embed_host_index h;
    h.order = (int64_t *)malloc(n * sizeof(int64_t));
    h.tmp = (int64_t *)malloc(n * sizeof(int64_t));
    h.ids = (int32_t *)malloc(n * sizeof(int32_t));
    h.row_offsets = (int64_t *)malloc((n + 1) * sizeof(int64_t));
    if (!h.order || !h.tmp || !h.ids || !h.row_offsets) {
        embed_host_free(&h);
        return error_set(err, "gpu_embed_index_build: out of host memory for %lld rows",
                         (long long)n_rows);
    }
    embed_sort_rows(tokens, n_rows, h.order, h.tmp);
    const int64_t n_unique = embed_group_rows(tokens, n_rows, &h);
    cudaStream_t s = (cudaStream_t)stream;
    /* Invariant: ids holds capacity_unique ids, row_offsets one more. */
    int64_t cap_ids = ix->capacity_unique, cap_offsets = ix->capacity_unique + 1;
    int rc = embed_grow((void **)&ix->ids, &cap_ids, n_unique, sizeof(int32_t), s,
                        "gpu_embed_index_build: ids", err);
    if (rc == KPO_OK)
        rc = embed_grow((void **)&ix->row_offsets, &cap_offsets, n_unique + 1, sizeof(int64_t),
                        s, "gpu_embed_index_build: row offsets", err);
    const int64_t cap_unique = cap_ids < cap_offsets - 1 ? cap_ids : cap_offsets - 1;
    ix->capacity_unique = cap_unique > 0 ? cap_unique : 0;
    if (rc == KPO_OK)
        rc = embed_grow((void **)&ix->rows, &ix->capacity_rows, n_rows, sizeof(int64_t), s,
                        "gpu_embed_index_build: rows", err);
    /* From pageable memory, cudaMemcpyAsync returns once the source has been
     * staged, so the host arrays may be freed right after. */
    if (rc == KPO_OK)
        rc = cuda_check(cudaMemcpyAsync(ix->ids, h.ids, (size_t)n_unique * sizeof(int32_t),
                                        cudaMemcpyHostToDevice, s),
                        "gpu_embed_index_build: copy ids", err);
    if (rc == KPO_OK)
        rc = cuda_check(cudaMemcpyAsync(ix->row_offsets, h.row_offsets,
                                        (size_t)(n_unique + 1) * sizeof(int64_t),
                                        cudaMemcpyHostToDevice, s),
                        "gpu_embed_index_build: copy row offsets", err);
    if (rc == KPO_OK)
        rc = cuda_check(cudaMemcpyAsync(ix->rows, h.order, n * sizeof(int64_t),
                                        cudaMemcpyHostToDevice, s),
                        "gpu_embed_index_build: copy rows", err);
    embed_host_free(&h);
    if (rc == KPO_OK)
        ix->n_unique = n_unique, ix->n_rows = n_rows;
    return rc;
}

extern "C" void gpu_embed_index_free(gpu_embed_index *ix)
{
    cudaFree(ix->ids);
    cudaFree(ix->row_offsets);
    cudaFree(ix->rows);
    memset(ix, 0, sizeof *ix);
}

/* One block per distinct token u: dembed[ids[u], j] += dx[r, j] for the
 * token's rows r in ascending order, each thread owning columns j. */
static __global__ void embed_backward_kernel(int64_t hidden, const int32_t *ids /* [n_unique] */,
                                             const int64_t *row_offsets /* [n_unique + 1] */,
                                             const int64_t *rows /* [n_rows] */,
                                             const bf16 *dx /* [rows, hidden] */,
                                             float *dembed /* [vocab, hidden] */)
{
    const int64_t u = blockIdx.x;
    const int64_t k0 = row_offsets[u], k1 = row_offsets[u + 1];
    float *out = dembed + (int64_t)ids[u] * hidden;
    for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x) {
        float acc = out[j]; /* starting here, not from 0, matches the CPU's order */
        for (int64_t k = k0; k < k1; k++)
            acc += __bfloat162float(dx[rows[k] * hidden + j]);
        out[j] = acc;
    }
}

extern "C" int gpu_embed_backward(const gpu_embed_index *ix, int64_t hidden, const uint16_t *dx,
                                  float *dembed, void *stream, kpo_error *err)
{
    if (hidden <= 0)
        return error_set(err, "gpu_embed_backward: hidden %lld", (long long)hidden);
    if (ix->n_unique == 0)
        return KPO_OK;
    if (ix->n_unique > INT32_MAX)
        return error_set(err, "gpu_embed_backward: %lld distinct tokens", (long long)ix->n_unique);
    embed_backward_kernel<<<(unsigned)ix->n_unique, KERNELS_THREADS, 0, (cudaStream_t)stream>>>(
        hidden, ix->ids, ix->row_offsets, ix->rows, kernels_bf16(dx), dembed);
    return kernels_launch_check("gpu_embed_backward", err);
}
