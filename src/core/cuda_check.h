/* CUDA runtime status -> kpo_error, for host code in C and in .cu files.
 * Only include where the CUDA toolkit is (KPO_HAVE_CUDA). In core, not in
 * model/cuda/, because the filter's, the objective's and NCCL's CUDA code
 * use it too, and none of them may depend on the model. */
#ifndef KPO_CORE_CUDA_CHECK_H
#define KPO_CORE_CUDA_CHECK_H

#include <cuda_runtime_api.h>

#include "core/error.h"

/* KPO_OK on cudaSuccess; otherwise fills err with what failed and why. */
static inline int cuda_check(cudaError_t status, const char *what, kpo_error *err)
{
    if (status == cudaSuccess)
        return KPO_OK;
    return error_set(err, "%s: CUDA error %d (%s)", what, (int)status,
                     cudaGetErrorString(status));
}

/* KPO_OK when this process sees at least one GPU. A toolkit without a
 * driver (error 35) or a machine without a GPU is "no usable GPU: <why>",
 * the words the gpu tests look for to skip. */
static inline int cuda_require_device(kpo_error *err)
{
    int count = 0;
    cudaError_t status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess)
        return error_set(err, "no usable GPU: %s (CUDA error %d)", cudaGetErrorString(status),
                         (int)status);
    if (count == 0)
        return error_set(err, "no usable GPU: the driver reports no devices");
    return KPO_OK;
}

#endif
