/* The gpu suite's one rule without a GPU: say why, then skip (never fail).
 * cuda_probe_devices also covers builds without CUDA. */
#ifndef KPO_TESTS_GPU_SKIP_H
#define KPO_TESTS_GPU_SKIP_H

#include <string.h>

#include "model/cuda/cuda_probe.h"

/* 1 when this process has no GPU, with the reason in why. */
static inline int gpu_unavailable(char *why, size_t size)
{
    if (cuda_probe_devices(why, size) > 0)
        return 0;
    const char *prefix = "no usable GPU "; /* the probe's own wording: don't say it twice */
    if (strncmp(why, prefix, strlen(prefix)) == 0)
        memmove(why, why + strlen(prefix), strlen(why + strlen(prefix)) + 1);
    return 1;
}

/* Call at the top of a cmocka test. */
#define GPU_REQUIRE_OR_SKIP()                                                  \
    do {                                                                       \
        char gpu_why_[512];                                                    \
        if (gpu_unavailable(gpu_why_, sizeof gpu_why_)) {                      \
            print_message("no usable GPU: %s\n", gpu_why_);                    \
            skip();                                                            \
        }                                                                      \
    } while (0)

#endif
