#include "cuda/cuda_probe.h"

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
