/* Host-side overlap checks of the kernels' buffers (kernels_alias.h). */
#include "model/cuda/kernels_alias.h"

#include <stdint.h>

static int spans_overlap(const kernels_span *a, const kernels_span *b)
{
    if (!a->ptr || !b->ptr || a->bytes == 0 || b->bytes == 0)
        return 0;
    const uintptr_t a0 = (uintptr_t)a->ptr, b0 = (uintptr_t)b->ptr;
    return a0 < b0 + b->bytes && b0 < a0 + a->bytes;
}

int kernels_check_disjoint(const char *what, const kernels_span *outputs, int n_outputs,
                           const kernels_span *inputs, int n_inputs, kpo_error *err)
{
    for (int i = 0; i < n_outputs; i++) {
        for (int j = 0; j < n_inputs; j++)
            if (spans_overlap(&outputs[i], &inputs[j]))
                return error_set(err, "%s: output %s overlaps input %s (the kernel would read "
                                      "what it has already overwritten)",
                                 what, outputs[i].name, inputs[j].name);
        for (int j = i + 1; j < n_outputs; j++)
            if (spans_overlap(&outputs[i], &outputs[j]))
                return error_set(err, "%s: outputs %s and %s overlap", what, outputs[i].name,
                                 outputs[j].name);
    }
    return KPO_OK;
}
