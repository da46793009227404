/* One decode step's device work (model_cuda_decode.c), shared by the
 * direct path and the CUDA graphs that record and replay it
 * (model_cuda_decode_graph.c, model.decode_graphs). Internal to
 * src/model/cuda. */
#ifndef KPO_MODEL_CUDA_MODEL_CUDA_DECODE_STEP_H
#define KPO_MODEL_CUDA_MODEL_CUDA_DECODE_STEP_H

#include "model/cuda/kernels_attention.h"
#include "model/cuda/model_cuda_internal.h"

/* One step's attention, the same in every layer (decode_step_plan.h): the
 * leading fresh prompts through the training forward's flash kernel
 * (prefill_attention = flash), the other sequences through the decode
 * attention (block or split). */
typedef struct step_attention {
    gpu_attention_shape fresh; /* sequences [0, n_fresh), query rows [0, fresh tokens);
                                  n_seqs 0: none */
    gpu_decode_shape rest;     /* the others, query rows from fresh.n_tokens on, offsets
                                  rebased to 0; n_seqs 0: none */
    int64_t split_plan_context; /* the split attention's plan: 0 for rest.max_context; graph
                                   steps the context rounded up to a power of two, the same
                                   plan for every step of the graph (decode_graph_cache.h) */
} step_attention;

/* What one step's device work needs, made on the host before the work is
 * enqueued (directly, or under a graph capture). */
typedef struct step_work {
    int64_t T, n_seqs;
    gpu_decode_shape all; /* the whole step: what the KV-cache write takes */
    step_attention sa;
} step_work;

/* The step's device work, from the uploaded inputs to the fp32 logits,
 * enqueued on g->stream: what a graph captures (model_cuda_decode.c). */
int decode_step_enqueue(gpu_model *g, const step_work *w, kpo_error *err);

/* The step's work through its batch's graph (model_cuda_decode_graph.c):
 * captured at the key's second step on the current buffers, replayed
 * after; any CUDA failure on the way turns graphs off for this model and
 * runs the step directly. */
int decode_graph_step(gpu_model *g, const step_work *w, kpo_error *err);

/* Destroys every captured graph (with the KV cache). */
void decode_graphs_destroy(gpu_decode_state *d);

#endif
