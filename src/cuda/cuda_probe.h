/* Which GPUs this process can use. A machine with the toolkit but no driver
 * or GPU (CUDA error 35, "driver insufficient") simply has none. */
#ifndef KPO_CUDA_CUDA_PROBE_H
#define KPO_CUDA_CUDA_PROBE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Returns the number of usable GPUs (0 when none or no CUDA build) and
 * writes a one-line description: device names, or why there are none. */
int cuda_probe_devices(char *description, size_t size);

#ifdef __cplusplus
}
#endif

#endif
