/* Causal grouped-query attention on the device, bf16 in and out, fp32
 * softmax statistics, flash-style: keys are visited a tile at a time with an
 * online softmax, so no time x time matrix ever exists, whatever the length.
 * Layouts are the CPU model's (cpu/model_compute.h): q [tokens, heads, head_dim],
 * k and v [tokens, kv_heads, head_dim], out like q, lse [tokens, heads] the
 * natural log-sum-exp of the scaled scores (scale 1/sqrt(head_dim)). Query
 * head h reads kv head h / (heads / kv_heads). Only built with CUDA. */
#ifndef KPO_MODEL_CUDA_KERNELS_ATTENTION_H
#define KPO_MODEL_CUDA_KERNELS_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A packed training batch: sequences back to back, attention causal inside
 * each and never across. */
typedef struct gpu_attention_shape {
    int64_t n_tokens;
    int64_t n_seqs;
    const int64_t *seq_offsets; /* device [n_seqs + 1], seq_offsets[0] = 0 */
    int64_t max_seq_len;        /* the longest sequence: sizes the grid */
    int heads, kv_heads, head_dim;
} gpu_attention_shape;

/* KPO_OK when s describes a batch the kernels support: n_tokens >= 0,
 * 1 <= n_seqs <= 65535 (when there are tokens), 1 <= max_seq_len <=
 * n_tokens, head_dim a multiple of 16 in [16, 256], heads a multiple of
 * kv_heads; seq_offsets is not looked at (it may be NULL when sizing a
 * workspace; the entry points reject NULL). Host-only (no CUDA call), so
 * it also works without a GPU.
 * `what` prefixes the message. Every entry point below calls it first. */
int gpu_attention_check_shape(const gpu_attention_shape *s, const char *what, kpo_error *err);

/* What every entry point on a packed batch checks first: the shape, then,
 * when there are tokens, seq_offsets and the n tensors ptrs (named names:
 * present and 16-byte aligned). Host-only. */
int gpu_attention_check_call(const gpu_attention_shape *s, const char *what,
                             const void *const *ptrs, const char *const *names, int n,
                             kpo_error *err);

/* out and lse from q, k, v. */
int gpu_attention_forward(const gpu_attention_shape *s, const uint16_t *q, const uint16_t *k,
                          const uint16_t *v, uint16_t *out, float *lse, void *stream,
                          kpo_error *err);

/* Device scratch bytes gpu_attention_backward needs for shape s. */
size_t gpu_attention_backward_workspace(const gpu_attention_shape *s);

/* dq, dk, dv (written, not accumulated) from dout and the forward's q, k,
 * v, out, lse. Deterministic: no floating-point atomics. Nothing in place:
 * an output overlapping an input, the workspace or another output is
 * refused before anything runs. */
int gpu_attention_backward(const gpu_attention_shape *s, const uint16_t *q, const uint16_t *k,
                           const uint16_t *v, const uint16_t *out, const uint16_t *dout,
                           const float *lse, uint16_t *dq, uint16_t *dk, uint16_t *dv,
                           void *workspace, void *stream, kpo_error *err);

/* Incremental decoding over one layer's KV cache, k_cache and v_cache
 * [n_slots, max_len, kv_heads, head_dim] bf16. n_seqs sequences bring
 * query_offsets[i+1] - query_offsets[i] new tokens each (1 in a decode
 * step, a whole prompt in a prefill), packed as q [n_queries, heads,
 * head_dim]; sequence i lives in cache slot slots[i], and its first new
 * token sits at position start_positions[i] (the tokens it had cached).
 * New token j of sequence i attends to cache positions
 * [0, start_positions[i] + j] of its slot. */
typedef struct gpu_decode_shape {
    int64_t n_queries;
    int64_t n_seqs;
    const int64_t *query_offsets;   /* device [n_seqs + 1] */
    const int64_t *slots;           /* device [n_seqs] */
    const int64_t *start_positions; /* device [n_seqs] */
    int64_t n_slots, max_len;
    int64_t max_new;                /* the most new tokens of any sequence: sizes the grid */
    int64_t max_context;            /* the longest start_positions[i] + new tokens */
    int heads, kv_heads, head_dim;
} gpu_decode_shape;

/* KPO_OK when s describes a decode call the kernels support: 0 <=
 * n_queries < 2^31, the head configuration as gpu_attention_check_shape's,
 * and when there are queries: n_seqs >= 1, query_offsets, slots and
 * start_positions present, n_slots and max_len positive, 1 <= max_new <=
 * n_queries, 1 <= max_context <= max_len. Host-only. */
int gpu_decode_check_shape(const gpu_decode_shape *s, const char *what, kpo_error *err);

/* What every decode entry point checks first: the shape, then, when there
 * are queries, the n tensors ptrs (named names: present and 16-byte
 * aligned). Host-only. */
int gpu_decode_check_call(const gpu_decode_shape *s, const char *what, const void *const *ptrs,
                          const char *const *names, int n, kpo_error *err);

/* Writes the new tokens' k_new, v_new [n_queries, kv_heads, head_dim]
 * (normed and rotated, as the forward makes them) into their slots. */
int gpu_kv_cache_write(const gpu_decode_shape *s, const uint16_t *k_new, const uint16_t *v_new,
                       uint16_t *k_cache, uint16_t *v_cache, void *stream, kpo_error *err);

/* out [n_queries, heads, head_dim] from q and the cache (after
 * gpu_kv_cache_write put the new tokens there). */
int gpu_attention_decode(const gpu_decode_shape *s, const uint16_t *q, const uint16_t *k_cache,
                         const uint16_t *v_cache, uint16_t *out, void *stream, kpo_error *err);

#ifdef __cplusplus
}
#endif

#endif
