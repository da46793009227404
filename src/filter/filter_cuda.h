/* The filter on a GPU: the same recursion as filter_apply (one GPU thread
 * per response, shared per-token code in filter_step.h), with the
 * innovation statistics accumulated on the device. Without CUDA every call
 * fails with a message saying so (filter_cuda_none.c). */
#ifndef KPO_FILTER_FILTER_CUDA_H
#define KPO_FILTER_FILTER_CUDA_H

#include <stdint.h>

#include "core/error.h"
#include "filter/filter.h"
#include "filter/innov_stats.h"

#ifdef __cplusplus
extern "C" {
#endif

/* As filter_apply, from host arrays: copies values [offsets[n_responses]]
 * and offsets [n_responses + 1] to the current device, filters there, and
 * copies back the outputs out asks for. stats (may be NULL) receives every
 * token, as filter_apply's would. Fails with "no usable GPU: ..." when the
 * process has none. */
int filter_cuda_apply(const filter_config *cfg, const double *values, const int64_t *offsets,
                      int64_t n_responses, filter_outputs *out, innov_stats *stats,
                      kpo_error *err);

/* As filter_cuda_apply, with device pointers: d_values [n_tokens],
 * d_offsets [n_responses + 1] and every non-NULL pointer of d_out
 * [n_tokens] live on the current device; stream is a cudaStream_t (NULL:
 * the default stream). Inputs are checked on the device before anything is
 * written. Returns after the outputs are complete on the stream; the
 * statistics (merged into the host struct stats when not NULL) are read
 * back, which synchronises the stream. */
int filter_cuda_apply_device(const filter_config *cfg, const double *d_values,
                             const int64_t *d_offsets, int64_t n_responses, int64_t n_tokens,
                             const filter_outputs *d_out, innov_stats *stats, void *stream,
                             kpo_error *err);

#ifdef __cplusplus
}
#endif

#endif
