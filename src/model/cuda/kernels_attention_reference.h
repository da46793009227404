/* A scalar reference for the tiled attention kernels (kernels_attention.h):
 * the same signatures and contract, one warp per query row (forward, dQ) or
 * key row (dK/dV), plain fp32 loops with an online softmax, no tensor cores,
 * no shared-memory tiles and no bf16 rounding of P or dS. Slow (every dot
 * product is a warp reduction); it exists so that, when the tiled kernels
 * disagree with the CPU, a test can tell a tiling bug from a formula bug.
 * Only built with CUDA. */
#ifndef KPO_MODEL_CUDA_KERNELS_ATTENTION_REFERENCE_H
#define KPO_MODEL_CUDA_KERNELS_ATTENTION_REFERENCE_H

#include "model/cuda/kernels_attention.h"

#ifdef __cplusplus
extern "C" {
#endif

int gpu_attention_forward_reference(const gpu_attention_shape *s, const uint16_t *q,
                                    const uint16_t *k, const uint16_t *v, uint16_t *out,
                                    float *lse, void *stream, kpo_error *err);

/* workspace is not used (may be NULL): rowsum(dO * O) is recomputed where
 * needed. */
int gpu_attention_backward_reference(const gpu_attention_shape *s, const uint16_t *q,
                                     const uint16_t *k, const uint16_t *v, const uint16_t *out,
                                     const uint16_t *dout, const float *lse, uint16_t *dq,
                                     uint16_t *dk, uint16_t *dv, void *workspace, void *stream,
                                     kpo_error *err);

#ifdef __cplusplus
}
#endif

#endif
