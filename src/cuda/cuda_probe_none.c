#include "cuda/cuda_probe.h"

#include <stdio.h>

int cuda_probe_devices(char *description, size_t size)
{
    snprintf(description, size, "kpo was built without CUDA");
    return 0;
}
