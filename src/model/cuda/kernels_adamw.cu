/* AdamW: a deterministic global gradient norm (fixed grid, fixed reduction
 * tree, double), then one update launch per run of consecutive tensors that
 * share a decay (norm gains: none). Compiled with --fmad=false so that
 * adamw_update_element rounds as the C build does. */
#include "model/cuda/kernels_common.cuh"
#include "model/cuda/kernels_adamw.h"
extern "C" {
#include "model/adamw_update.h"
}

enum { NORM_BLOCKS = 1024 }; /* fixed, so the summation order never changes */

/* The block's sum of acc by a fixed tree; valid in thread 0. */
static __device__ double adamw_block_sum(double acc)
{
    __shared__ double shared[KERNELS_THREADS];
    shared[threadIdx.x] = acc;
    __syncthreads();
    for (int stride = KERNELS_THREADS / 2; stride > 0; stride /= 2) {
        if ((int)threadIdx.x < stride)
            shared[threadIdx.x] += shared[threadIdx.x + stride];
        __syncthreads();
    }
    return shared[0];
}

/* partial[block] = sum over its grid-stride elements of g^2, tree-reduced. */
static __global__ void adamw_sumsq_kernel(const float *g, int64_t n, double *partial)
{
    double acc = 0.0;
    KERNELS_GRID_STRIDE(i, n) acc += (double)g[i] * g[i];
    acc = adamw_block_sum(acc);
    if (threadIdx.x == 0)
        partial[blockIdx.x] = acc;
}

/* One block: partial[NORM_BLOCKS] -> partial[0], same tree. */
static __global__ void adamw_sum_partials_kernel(double *partial)
{
    double acc = 0.0;
    for (int i = threadIdx.x; i < NORM_BLOCKS; i += KERNELS_THREADS)
        acc += partial[i];
    acc = adamw_block_sum(acc);
    if (threadIdx.x == 0)
        partial[0] = acc;
}

static __global__ void adamw_update_kernel(int64_t n, float *w, bf16 *w_bf16, float *g, float *m1,
                                           float *m2, float decay, adamw_coeffs c)
{
    KERNELS_GRID_STRIDE(i, n) {
        adamw_update_element(&w[i], &g[i], &m1[i], &m2[i], decay, &c);
        if (w_bf16)
            w_bf16[i] = __float2bfloat16_rn(w[i]);
    }
}

extern "C" int gpu_adamw_grad_norm(const float *g, int64_t n, double *norm, void *stream,
                                   kpo_error *err)
{
    cudaStream_t s = (cudaStream_t)stream;
    double *partial = NULL; /* [NORM_BLOCKS] */
    double sum = 0.0;
    if (cuda_check(cudaMallocAsync((void **)&partial, NORM_BLOCKS * sizeof(double), s),
                   "gpu_adamw_grad_norm: partial sums", err) != KPO_OK)
        return KPO_ERR;
    adamw_sumsq_kernel<<<NORM_BLOCKS, KERNELS_THREADS, 0, s>>>(g, n, partial);
    int rc = kernels_launch_check("gpu_adamw_grad_norm", err);
    if (rc == KPO_OK) {
        adamw_sum_partials_kernel<<<1, KERNELS_THREADS, 0, s>>>(partial);
        rc = kernels_launch_check("gpu_adamw_grad_norm: sum", err);
    }
    if (rc == KPO_OK)
        rc = cuda_check(cudaMemcpyAsync(&sum, partial, sizeof sum, cudaMemcpyDeviceToHost, s),
                        "gpu_adamw_grad_norm: read back", err);
    cudaFreeAsync(partial, s);
    if (rc == KPO_OK)
        rc = cuda_check(cudaStreamSynchronize(s), "gpu_adamw_grad_norm", err);
    *norm = sqrt(sum);
    return rc;
}

extern "C" int gpu_adamw_step(const adamw_config *config, int64_t *step, const model *m,
                              float *w, uint16_t *w_bf16, float *g, float *m1, float *m2,
                              double *grad_norm, void *stream, kpo_error *err)
{
    double norm = 0.0;
    if (gpu_adamw_grad_norm(g, m->weights.n_params, &norm, stream, err) != KPO_OK)
        return KPO_ERR;
    if (grad_norm)
        *grad_norm = norm;
    *step += 1;
    const adamw_coeffs c = adamw_coeffs_at(config, *step, norm);
    bf16 *copy = w_bf16 ? kernels_bf16(w_bf16) : NULL;
    size_t t = 0;
    while (t < m->n_params_table) {
        /* A run of consecutive, contiguous tensors with the same decay. */
        const model_param *first = &m->params[t];
        int64_t end = first->offset + first->numel;
        for (t++; t < m->n_params_table && m->params[t].offset == end &&
                  m->params[t].is_norm == first->is_norm;
             t++)
            end += m->params[t].numel;
        const int64_t o = first->offset, n = end - o;
        const float decay = first->is_norm ? 0.0f : (float)c.decay_rate;
        adamw_update_kernel<<<kernels_blocks(n), KERNELS_THREADS, 0, (cudaStream_t)stream>>>(
            n, w + o, copy ? copy + o : NULL, g + o, m1 + o, m2 + o, decay, c);
        if (kernels_launch_check("gpu_adamw_step", err) != KPO_OK)
            return KPO_ERR;
    }
    return KPO_OK;
}
