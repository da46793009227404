/* Placeholder (issue 7, being written): the memory plan. */
#include "model/model_cuda.h"

gpu_memory_plan gpu_model_plan(const model_config *c, const gpu_model_options *o)
{
    (void)c, (void)o;
    gpu_memory_plan p = {0};
    return p;
}

void gpu_memory_plan_print(const gpu_memory_plan *plan, const model_config *c,
                           const gpu_model_options *o, FILE *out)
{
    (void)plan, (void)c, (void)o, (void)out;
}
