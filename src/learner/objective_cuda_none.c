/* Builds without CUDA: the device objective exists as a symbol that checks
 * its arguments (as the CUDA build does) and then says why it cannot run,
 * so callers need no #if. */
#include "learner/objective_cuda.h"

int objective_cuda_compute(const objective_config *cfg, const objective_cuda_batch *b,
                           objective_normalizer norm, objective_metrics *metrics,
                           double *entropy_sum, int *finite, void *stream, kpo_error *err)
{
    (void)metrics, (void)entropy_sum, (void)finite, (void)stream;
    if (objective_cuda_check(cfg, b, norm, err) != KPO_OK)
        return KPO_ERR;
    return error_set(err, "no usable GPU: kpo was built without CUDA (the device objective is "
                          "not compiled in)");
}
