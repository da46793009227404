/* The GPU queries of cuda_probe.h over the CUDA runtime: the devices this
 * process sees and the memory in use on one of them. */
extern "C" { /* the project's C headers carry no linkage guards */
#include "core/cuda_check.h"
#include "core/error.h"
}
#include "model/cuda/cuda_probe.h"

#include <cstdio>
#include <cstring>

#include <cuda_runtime.h>

extern "C" int cuda_probe_devices(char *description, size_t size)
{
    int count = 0;
    cudaError_t status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess) {
        snprintf(description, size, "no usable GPU (%s)", cudaGetErrorString(status));
        return 0;
    }
    size_t used = (size_t)snprintf(description, size, "%d GPU(s):", count);
    for (int d = 0; d < count && used < size; d++) {
        cudaDeviceProp prop;
        if (cudaGetDeviceProperties(&prop, d) != cudaSuccess)
            continue;
        used += (size_t)snprintf(description + used, size - used, " [%d] %s sm_%d%d %.0f GiB", d,
                                 prop.name, prop.major, prop.minor,
                                 (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
    }
    return count;
}

extern "C" int cuda_memory_used_bytes(int device, size_t *used, kpo_error *err)
{
    int current = -1;
    if (cuda_check(cudaGetDevice(&current), "gpu memory: cudaGetDevice", err) != KPO_OK)
        return KPO_ERR;
    /* cudaMemGetInfo answers for the current device: switch only when asked
     * about another one, and switch back. */
    if (current != device &&
        cuda_check(cudaSetDevice(device), "gpu memory: cudaSetDevice", err) != KPO_OK)
        return KPO_ERR;
    size_t free_b = 0, total_b = 0;
    const cudaError_t status = cudaMemGetInfo(&free_b, &total_b);
    if (current != device)
        cudaSetDevice(current);
    char what[64];
    snprintf(what, sizeof what, "gpu memory: cudaMemGetInfo on GPU %d", device);
    if (cuda_check(status, what, err) != KPO_OK)
        return KPO_ERR;
    *used = total_b - free_b;
    return KPO_OK;
}
