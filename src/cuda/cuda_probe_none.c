/* cuda_probe.h in a build without CUDA: no GPUs, and every query says why. */
#include "cuda/cuda_probe.h"

#include <stdio.h>

int cuda_probe_devices(char *description, size_t size)
{
    snprintf(description, size, "kpo was built without CUDA");
    return 0;
}

int cuda_memory_used_bytes(int device, size_t *used, kpo_error *err)
{
    *used = 0;
    return error_set(err, "gpu memory of GPU %d: kpo was built without CUDA", device);
}
