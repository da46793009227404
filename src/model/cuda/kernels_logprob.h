/* The fused lm_head + log-softmax on the device: log p(target) and the
 * entropy of the next-token distribution for each row, over a vocabulary of
 * any size (Qwen3: 151,936), a chunk of rows at a time, so the logits never
 * exist for more than chunk_rows rows. The logits are produced in fp32 by
 * cuBLASLt (bf16 inputs, fp32 accumulate and output): rounding 150k logits
 * of magnitude ~10 to bf16 would put ~0.02 of noise into every log-prob,
 * i.e. into the importance ratios the filter sees. Only built with CUDA. */
#ifndef KPO_MODEL_CUDA_KERNELS_LOGPROB_H
#define KPO_MODEL_CUDA_KERNELS_LOGPROB_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "model/cuda/gemm_lt.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gpu_logprob_shape {
    int64_t rows;       /* tokens */
    int64_t hidden;
    int64_t vocab;      /* rows of the head matrix */
    int64_t chunk_rows; /* rows whose logits exist at once */
} gpu_logprob_shape;

/* Device scratch bytes for shape s (the fp32 logits of one chunk, and the
 * bf16 gradient of one chunk's logits for the backward); 0 for a bad shape.
 * The workspace must be 256-byte aligned (cudaMalloc's is). */
size_t gpu_logprob_workspace(const gpu_logprob_shape *s);

/* h [rows, hidden] bf16 (after the final norm), head [vocab, hidden] bf16
 * (the embedding when tied), targets [rows] int32 device (< 0: no target).
 * Writes logp, entropy and lse [rows] fp32 (device; logp and entropy 0 where
 * targets < 0, as model_logprobs; lse is kept for the backward). */
int gpu_logprob_forward(gemm_lt *g, const gpu_logprob_shape *s, const uint16_t *h,
                        const uint16_t *head, const int32_t *targets, float *logp,
                        float *entropy, float *lse, void *workspace, void *stream,
                        kpo_error *err);

/* The gradient of sum_r dlogp[r] logp[r] + dentropy[r] entropy[r]
 * (dentropy NULL: 0, dlogp likewise; rows with targets < 0 contribute
 * nothing and get dh rows of zeros):
 * dh [rows, hidden] bf16 written, dhead [vocab, hidden] fp32 accumulated.
 * Recomputes each chunk's logits; lse and entropy are the forward's.
 * Nothing in place: an output (dh, dhead, the workspace) overlapping an
 * input or another output is refused before anything runs. */
int gpu_logprob_backward(gemm_lt *g, const gpu_logprob_shape *s, const uint16_t *h,
                         const uint16_t *head, const int32_t *targets, const float *lse,
                         const float *entropy, const float *dlogp, const float *dentropy,
                         uint16_t *dh, float *dhead, void *workspace, void *stream,
                         kpo_error *err);

#ifdef __cplusplus
}
#endif

#endif
