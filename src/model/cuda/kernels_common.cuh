/* Shared by the model's .cu files: the bf16 type behind the C headers'
 * uint16_t pointers, launch-error checking, grid sizing, warp sums. */
#ifndef KPO_MODEL_CUDA_KERNELS_COMMON_CUH
#define KPO_MODEL_CUDA_KERNELS_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>
#include <stdint.h>

extern "C" { /* the project's C headers carry no linkage guards */
#include "core/error.h"
#include "core/cuda_check.h"
}

typedef __nv_bfloat16 bf16;

/* The C API passes bf16 as uint16_t (same bits, no CUDA types in C). */
static inline const bf16 *kernels_bf16(const uint16_t *p) { return reinterpret_cast<const bf16 *>(p); }
static inline bf16 *kernels_bf16(uint16_t *p) { return reinterpret_cast<bf16 *>(p); }

enum { KERNELS_THREADS = 256 };

/* The current device's SM count, asked once per device (grid caps are
 * multiples of it). If the query fails, 132 (an H100/H200): a cap, not a
 * correctness matter, since the kernels it sizes stride over their work. */
static inline int kernels_sm_count(void)
{
    enum { MAX_DEVICES = 64, FALLBACK = 132 };
    static int counts[MAX_DEVICES]; /* 0: not asked yet; a race only asks twice */
    int device = 0, n = 0;
    if (cudaGetDevice(&device) != cudaSuccess || device < 0 || device >= MAX_DEVICES)
        return FALLBACK;
    if (counts[device] == 0)
        counts[device] = cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device) ==
                                     cudaSuccess &&
                                 n > 0
                             ? n
                             : FALLBACK;
    return counts[device];
}

/* Blocks for a grid-stride loop over n items: enough to fill the GPU,
 * never more than the items need. */
static inline unsigned kernels_blocks(int64_t n)
{
    int64_t blocks = (n + KERNELS_THREADS - 1) / KERNELS_THREADS;
    const int64_t cap = (int64_t)kernels_sm_count() * 16; /* 16 resident blocks per SM is plenty */
    return (unsigned)(blocks < 1 ? 1 : blocks > cap ? cap : blocks);
}

/* Launches are asynchronous: this reports bad configurations only; faults
 * inside a kernel surface at the next synchronising call. */
static inline int kernels_launch_check(const char *what, kpo_error *err)
{
    return cuda_check(cudaGetLastError(), what, err);
}

static __device__ inline float kernels_warp_sum(float v)
{
    for (int offset = 16; offset > 0; offset /= 2)
        v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

/* The sequence of packed row n: the largest i < n_seqs with offsets[i] <= n
 * (a sequence with no rows shares its offset with the next one, and the
 * largest such i is the one that owns n). */
static __device__ inline int64_t kernels_find_seq(const int64_t *offsets, int64_t n_seqs,
                                                  int64_t n)
{
    int64_t lo = 0, hi = n_seqs - 1;
    while (lo < hi) {
        const int64_t mid = (lo + hi + 1) / 2;
        if (offsets[mid] <= n)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

#define KERNELS_GRID_STRIDE(i, n)                                                     \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);         \
         i += (int64_t)gridDim.x * blockDim.x)

#endif
