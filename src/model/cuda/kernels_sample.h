/* Next-token sampling on the device (temperature, top-p, greedy), drawing
 * each row's uniform from the same counter-based Philox stream the CPU
 * sampler uses (sampling/sampler.h), so a response is named by (seed, step,
 * prompt, sample) on either backend. Given the same logits, the device and
 * sampler_draw pick the same token (up to float summation order at a
 * nucleus or cumulative boundary). Only built with CUDA. */
#ifndef KPO_MODEL_CUDA_KERNELS_SAMPLE_H
#define KPO_MODEL_CUDA_KERNELS_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif
#include "sampling/sampler.h"

/* One row's random source: draw number draw_index of stream
 * (seed, stream_id), exactly the draw_index-th rng_uniform of a stream made
 * by rng_stream_init(seed, stream_id) that only ever drew uniforms. */
typedef struct gpu_sample_stream {
    uint64_t stream_id;
    uint64_t draw_index;
} gpu_sample_stream;

/* Device scratch bytes gpu_sample_tokens needs for rows x vocab. */
size_t gpu_sample_workspace(int64_t rows, int64_t vocab);

/* tokens [rows] int32 (device) drawn from logits [rows, row_stride] fp32
 * (device), considering only ids below `drawable` (<= row_stride). streams
 * [rows] is device memory. Consumes no randomness when greedy. */
int gpu_sample_tokens(const sampler_config *cfg, int64_t rows, int64_t row_stride,
                      int64_t drawable, const float *logits, uint64_t seed,
                      const gpu_sample_stream *streams, int32_t *tokens, void *workspace,
                      void *stream, kpo_error *err);

#ifdef __cplusplus
}
#endif

#endif
