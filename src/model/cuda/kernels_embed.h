/* The token embedding on the device: a row gather forward and, backward, a
 * deterministic scatter-add into the fp32 embedding gradient (which, tied,
 * also receives the lm_head's gradient). Only built with CUDA. */
#ifndef KPO_MODEL_CUDA_KERNELS_EMBED_H
#define KPO_MODEL_CUDA_KERNELS_EMBED_H

#include <stdint.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* x [rows, hidden] bf16 = embed[tokens[r]] (embed [vocab, hidden] bf16,
 * tokens device int32, already checked against the vocabulary). */
int gpu_embed_forward(int64_t rows, int64_t hidden, const int32_t *tokens, const uint16_t *embed,
                      uint16_t *x, void *stream, kpo_error *err);

/* The rows of each distinct token, built on the host from the batch's
 * tokens (which the host has anyway) and copied up: the backward then sums
 * each token's rows in row order, one block per token, without atomics, so
 * the gradient repeats bit for bit. */
typedef struct gpu_embed_index {
    int64_t n_unique, n_rows, capacity_unique, capacity_rows;
    int32_t *ids;         /* device [n_unique] distinct token ids */
    int64_t *row_offsets; /* device [n_unique + 1] into rows */
    int64_t *rows;        /* device [n_rows] rows grouped by token, ascending inside a group */
} gpu_embed_index;

/* (Re)builds ix for tokens [n_rows] (host, each >= 0), growing its buffers
 * as needed. Use the stream the backward runs on: the copies are queued
 * behind any earlier backward still reading ix (growing synchronises it). */
int gpu_embed_index_build(gpu_embed_index *ix, const int32_t *tokens, int64_t n_rows,
                          void *stream, kpo_error *err);
void gpu_embed_index_free(gpu_embed_index *ix);

/* dembed [vocab, hidden] fp32 += for each token id, the sum of dx [rows,
 * hidden] bf16 over its rows. Not in place (an fp32 sum of bf16 rows);
 * dembed's extent depends on ids the device holds, so this one is not
 * checked: the model passes the embedding's own gradient. */
int gpu_embed_backward(const gpu_embed_index *ix, int64_t hidden, const uint16_t *dx,
                       float *dembed, void *stream, kpo_error *err);

#ifdef __cplusplus
}
#endif

#endif
