/* Which GPUs this process can use. A machine with the toolkit but no driver
 * or GPU (CUDA error 35, "driver insufficient") simply has none. */
#ifndef KPO_MODEL_CUDA_CUDA_PROBE_H
#define KPO_MODEL_CUDA_CUDA_PROBE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" { /* also core/error.h's: the project's C headers carry no linkage guards */
#endif

#include "core/error.h"

/* Returns the number of usable GPUs (0 when none or no CUDA build) and
 * writes a one-line description: device names, or why there are none. */
int cuda_probe_devices(char *description, size_t size);

/* Bytes in use on GPU `device` now: total minus free (cudaMemGetInfo), so
 * every process's allocations and contexts on that GPU, not only this
 * one's. cudart keeps no high-water mark: a peak is the max of samples.
 * Leaves the calling thread's current device as it was. Without CUDA, or
 * when the query fails, KPO_ERR with the reason. */
int cuda_memory_used_bytes(int device, size_t *used, kpo_error *err);

#ifdef __cplusplus
}
#endif

#endif
