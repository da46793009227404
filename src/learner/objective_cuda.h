/* The policy objective on the GPU (docs/cuda.md, "The device objective"):
 * from the log-probs a GPU forward left on the device, the raw log-ratios
 * z, the filter (kpo), the clipped surrogate and d loss / d logp, written
 * into the device dlogp the GPU backward reads, so no per-token array
 * crosses to the host. The per-token formulas are objective_token.h, the
 * ones objective_compute uses. Built from objective_cuda.cu with CUDA,
 * from objective_cuda_none.c without ("no usable GPU: ..."); the argument
 * checks (objective_cuda_check.c) run in every build. */
#ifndef KPO_LEARNER_OBJECTIVE_CUDA_H
#define KPO_LEARNER_OBJECTIVE_CUDA_H

#include <stdint.h>

#include "core/error.h"
#include "learner/objective.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One packed micro-batch as the device objective sees it. Response r's
 * tokens are [offsets[r], offsets[r+1]) in response-token order (the order
 * of logp_old), and sit in consecutive packed rows rows[r], rows[r] + 1, ...
 * of d_logp / d_entropy / d_dlogp; responses do not share rows. */
typedef struct objective_cuda_batch {
    int64_t n_responses;
    const int64_t *offsets;   /* host [n_responses + 1], offsets[0] = 0, non-decreasing */
    const int64_t *rows;      /* host [n_responses] packed row of each response's first token */
    const double *advantages; /* host [n_responses] */
    const double *logp_old;   /* host [offsets[n_responses]] old-policy log-probs (uploaded) */
    int64_t n_rows;           /* rows of the packed batch */
    const float *d_logp;      /* device [n_rows] the forward's log-probs */
    const float *d_entropy;   /* device [n_rows] its entropies; NULL: none summed */
    float *d_dlogp;           /* device [n_rows] receives d loss / d logp; 0 on every row
                                 that is no response token (prompt rows, last rows) */
    double *logp_out;         /* host [logp_out_tokens] or NULL: the first response tokens'
                                 log-probs (as doubles), for the run file's samples */
    int64_t logp_out_tokens;
} objective_cuda_batch;

/* The host-side checks objective_cuda_compute starts with (they need no
 * GPU): the config (objective_config_validate), the normalizer, every
 * pointer, offsets, rows within [0, n_rows) without overlap. Errors name
 * the argument at fault. */
int objective_cuda_check(const objective_config *cfg, const objective_cuda_batch *b,
                         objective_normalizer norm, kpo_error *err);

/* objective_compute on the device: writes b->d_dlogp, adds the batch to
 * metrics (host; the innovation statistics through filter_cuda_apply_device)
 * and, when entropy_sum is not NULL, the response tokens' entropies to
 * *entropy_sum. The metrics are reduced on the device in a fixed order
 * (repeatable run to run) and downloaded: a few hundred bytes.
 *
 * A non-finite log-prob (new or old) of a response token: with finite not
 * NULL, *finite becomes 0 and metrics stay as they were (d_dlogp may be
 * zeroed already): a diverged model, which the learner skips, is not an
 * input error. With finite NULL it is objective_compute's error.
 * stream: the cudaStream_t the forward ran on (and the backward will);
 * returns once the metrics are on the host. */
int objective_cuda_compute(const objective_config *cfg, const objective_cuda_batch *b,
                           objective_normalizer norm, objective_metrics *metrics,
                           double *entropy_sum, int *finite, void *stream, kpo_error *err);

#ifdef __cplusplus
}
#endif

#endif
