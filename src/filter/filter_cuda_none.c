/* Builds without CUDA: the GPU filter exists as a symbol and says why it
 * cannot run, so callers need no #if. */
#include "filter/filter_cuda.h"

int filter_cuda_apply(const filter_config *cfg, const double *values, const int64_t *offsets,
                      int64_t n_responses, filter_outputs *out, innov_stats *stats,
                      kpo_error *err)
{
    (void)cfg, (void)values, (void)offsets, (void)n_responses, (void)out, (void)stats;
    return error_set(err, "no usable GPU: kpo was built without CUDA (the filter kernel is "
                          "not compiled in)");
}

int filter_cuda_apply_device(const filter_config *cfg, const double *d_values,
                             const int64_t *d_offsets, int64_t n_responses, int64_t n_tokens,
                             const filter_outputs *d_out, innov_stats *stats, void *stream,
                             kpo_error *err)
{
    (void)cfg, (void)d_values, (void)d_offsets, (void)n_responses, (void)n_tokens, (void)d_out,
        (void)stats, (void)stream;
    return filter_cuda_apply(NULL, NULL, NULL, 0, NULL, NULL, err);
}
