/* What a kernel may read and write in the same memory, checked on the host
 * before anything is launched. A backward kernel that writes an output over
 * an input it still reads (the QK-norm's weight gradient read dy after dx
 * had overwritten it) is a silent wrong gradient, not a crash: every
 * backward entry point states which buffers may alias, and calls
 * kernels_check_disjoint for the rest. Plain C, built everywhere, so the
 * checks are tested without a GPU. */
#ifndef KPO_MODEL_CUDA_KERNELS_ALIAS_H
#define KPO_MODEL_CUDA_KERNELS_ALIAS_H

#include <stddef.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A buffer's extent: [ptr, ptr + bytes). A NULL ptr or 0 bytes takes part
 * in no overlap (an optional buffer left out). */
typedef struct kernels_span {
    const char *name;
    const void *ptr;
    size_t bytes;
} kernels_span;

/* Fails with "<what>: <output> overlaps <other>" when an output overlaps
 * an input, or another output. A buffer allowed to alias (dx over dy
 * where the kernel reads each element before writing it) is left out of
 * `inputs` by the caller, which says why. */
int kernels_check_disjoint(const char *what, const kernels_span *outputs, int n_outputs,
                           const kernels_span *inputs, int n_inputs, kpo_error *err);

#ifdef __cplusplus
}
#endif

#endif
