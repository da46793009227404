/* Split-KV decode attention (flash-decoding) over the rollout's KV cache:
 * the same contract as gpu_attention_decode (kernels_attention.h), built
 * for few queries over long contexts under GQA. The cache of each
 * (query, kv head) is cut into splits; one block per (query, kv head,
 * split) reads each K and V row of its split once and scores it against
 * every query head of the group, writing fp32 softmax partials to a
 * workspace; a second kernel merges each (query, head)'s splits
 * (attention_split_combine.h) into the bf16 output. When one split per
 * query suffices (prefills, short contexts with many queries) the first
 * kernel writes the output itself and the workspace is not touched.
 * Selected by gpu_model_options.decode_attention = GPU_DECODE_ATTENTION_SPLIT
 * (model.decode_attention = split). Only built with CUDA. */
#ifndef KPO_MODEL_CUDA_KERNELS_ATTENTION_DECODE_SPLIT_H
#define KPO_MODEL_CUDA_KERNELS_ATTENTION_DECODE_SPLIT_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "model/cuda/kernels_attention.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Device bytes of workspace gpu_attention_decode_split needs for s on a
 * device with n_sm SMs (n_sm <= 0: the current device's, as the call
 * itself uses). 0 when s is invalid or one split per query suffices. */
size_t gpu_attention_decode_split_workspace(const gpu_decode_shape *s, int n_sm);

/* The most gpu_attention_decode_split_workspace gives for any shape with
 * these heads and max_context <= max_len (so a memory budget can count it
 * before the steps are known). 0 for an invalid head configuration. */
size_t gpu_attention_decode_split_workspace_max(int heads, int kv_heads, int head_dim,
                                                int64_t max_len, int n_sm);

/* out [n_queries, heads, head_dim] bf16 from q [n_queries, heads,
 * head_dim] and the cache k_cache, v_cache [n_slots, max_len, kv_heads,
 * head_dim] (after gpu_kv_cache_write put the new tokens there): new token
 * j of sequence i attends to positions [0, start_positions[i] + j] of slot
 * slots[i]. workspace: device, workspace_bytes >= the size above (may be
 * NULL when that is 0). Shapes and pointers are checked as
 * gpu_attention_decode checks them (gpu_decode_check_call). A slot or
 * position outside the cache gives NaN rows, as there. */
int gpu_attention_decode_split(const gpu_decode_shape *s, const uint16_t *q,
                               const uint16_t *k_cache, const uint16_t *v_cache, uint16_t *out,
                               void *workspace, size_t workspace_bytes, void *stream,
                               kpo_error *err);

/* gpu_attention_decode_split with the split plan made for contexts up to
 * plan_context (s->max_context <= plan_context <= s->max_len, else an
 * error) instead of s->max_context: the kernels' grids and arguments then
 * depend on s's sizes and pointers alone, not on how far the sequences
 * have got, so a CUDA graph captured once replays every later decode step
 * (model.decode_graphs, model_cuda_decode.c). Splits past a query's causal
 * limit write empty partials, which the combine skips: the same attention,
 * split at other boundaries (equal up to fp32 summation order). */
int gpu_attention_decode_split_fixed(const gpu_decode_shape *s, int64_t plan_context,
                                     const uint16_t *q, const uint16_t *k_cache,
                                     const uint16_t *v_cache, uint16_t *out, void *workspace,
                                     size_t workspace_bytes, void *stream, kpo_error *err);

/* Its workspace (as gpu_attention_decode_split_workspace; within
 * gpu_attention_decode_split_workspace_max of max_len). 0 also when
 * plan_context is outside [s->max_context, s->max_len]. */
size_t gpu_attention_decode_split_workspace_fixed(const gpu_decode_shape *s,
                                                  int64_t plan_context, int n_sm);

#ifdef __cplusplus
}
#endif

#endif
