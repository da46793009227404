/* The GPU model's private state and the helpers its files share
 * (model_cuda.c: create/destroy/transfers/optimizer; model_cuda_layer.c:
 * one decoder layer forward and backward; model_cuda_train.c: the training
 * forward/backward; model_cuda_decode.c: KV cache, decode, sampling).
 * All device work runs in order on g->stream. */
#ifndef KPO_MODEL_CUDA_MODEL_CUDA_INTERNAL_H
#define KPO_MODEL_CUDA_MODEL_CUDA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/cuda/attention_cudnn.h"
#include "model/cuda/decode_graph_cache.h"
#include "model/cuda/gemm_lt.h"
#include "model/cuda/kernels_attention.h"
#include "model/cuda/kernels_embed.h"
#include "model/cuda/kernels_rope.h"
#include "model/cuda/kernels_sample.h"
#include "model/cuda/model_cuda_acts.h"
#include "model/model_cuda.h"

/* Returns KPO_ERR from the enclosing function when call fails (its message
 * is already in err). */
#define TRY(call)                                                              \
    do {                                                                       \
        if ((call) != KPO_OK)                                                  \
            return KPO_ERR;                                                    \
    } while (0)

/* Where one layer's tensors start, in elements, in every parameter-layout
 * buffer (bf16 copy, master, gradients, moments): the table's offsets. */
typedef struct gpu_layer_offsets {
    int64_t input_norm, q_proj, k_proj, v_proj, q_norm, k_norm, o_proj, post_norm;
    int64_t gate_proj, up_proj, down_proj;
} gpu_layer_offsets;

/* A device buffer that only grows. */
typedef struct gpu_buffer {
    void *ptr;
    size_t bytes;
} gpu_buffer;

/* The decoder's KV cache and its per-step buffers. */
typedef struct gpu_decode_state {
    uint16_t *k_cache;   /* [layers, n_slots, max_len, kv_heads, head_dim] bf16 */
    uint16_t *v_cache;   /* same */
    int64_t n_slots, max_len;
    int64_t *lengths;    /* host [n_slots] tokens cached per slot */
    gpu_rope_table rope; /* [max_len] positions */
    /* One layer's forward buffers for a step's new tokens (FORWARD mode). */
    gpu_acts acts;
    gpu_layer_acts *acts_layers; /* host [layers] */
    gpu_buffer acts_arena;
    int64_t acts_capacity;       /* tokens */
    /* Per-sequence buffers, grown to the most sequences a step has had. */
    int64_t seq_capacity;
    int64_t *query_offsets;   /* device [seq_capacity + 1] */
    int64_t *rest_offsets;    /* device [seq_capacity + 1]: query_offsets of the sequences
                                 after a step's flash prefill, rebased to 0
                                 (prefill_attention = flash; decode_step_plan.h) */
    int64_t *slots;           /* device [seq_capacity] */
    int64_t *start_positions; /* device [seq_capacity] */
    int32_t *last_rows;       /* device [seq_capacity] each sequence's last new token */
    uint16_t *last;           /* device [seq_capacity, hidden] its residual, then normed */
    float *logits;            /* device [seq_capacity, vocab] fp32 */
    int64_t n_logits;         /* rows of the last step's logits (what sampling reads) */
    gpu_sample_stream *streams; /* device [seq_capacity] */
    int32_t *sampled;         /* device [seq_capacity] */
    gpu_buffer sample_ws;
    /* Split-KV decode attention's fp32 partials (decode_attention = split;
     * kernels_attention_decode_split.h), grown to the largest step's. */
    gpu_buffer split_ws;
    /* model.decode_graphs: pure decode steps captured once per batch size
     * and replayed (decode_graph_cache.h). graph_generation counts the
     * reallocations of the buffers a step reads and writes (activations,
     * per-sequence buffers, split workspace): a graph captured before the
     * last one is captured again. */
    decode_graph_cache graphs;
    uint64_t graph_generation;
    int64_t graph_warm_n_seqs;      /* the batch whose last step ran directly as the warm-up */
    int64_t graph_warm_context;     /* and its split plan's context */
    uint64_t graph_warm_generation; /* on the buffers of this generation */
    int64_t graph_captures; /* graphs captured since the cache was made (tests, bench) */
    bool graphs_eager;      /* tests: run graph-mode steps directly, not through a graph (the
                               same work and split plan: the exact reference for its logits);
                               cleared by gpu_model_kv_cache_init */
} gpu_decode_state;

struct gpu_model {
    model shape;      /* config and parameter table; no host weights (data NULL) */
    gpu_model_options opt;
    gpu_memory_plan plan;
    int64_t n_params;
    gpu_layer_offsets *layer; /* [layers] */
    int64_t embed, final_norm, lm_head; /* offsets; lm_head == embed when tied */
    /* q|k|v (and gate|up) adjacent in the table: one GEMM over the
     * concatenated rows. Otherwise separate GEMMs (and gate, up stored as
     * two [T, intermediate] blocks instead of interleaved rows). */
    bool fused_qkv, fused_gate_up;
    void *stream; /* cudaStream_t */
    gemm_lt *gemm;
    uint16_t *w16;   /* [n_params] bf16: what every kernel reads */
    float *master;   /* [n_params] fp32 (train) */
    float *grads;    /* [n_params] fp32 (train) */
    float *adam_m;   /* [n_params] fp32 (train) */
    float *adam_v;   /* [n_params] fp32 (train) */
    int64_t adam_step;
    /* The training forward's activations, grown to the largest batch. */
    gpu_acts acts;
    gpu_layer_acts *acts_layers; /* host [layers] */
    gpu_buffer acts_arena;
    gpu_buffer attn_ws;    /* attention backward workspace */
    attention_cudnn *cudnn; /* model.attention = cudnn: handle + plan cache, made at the first
                               batch; NULL (and opt.attention = kernel) once cuDNN refused */
    gpu_buffer logprob_ws; /* the logits chunk and its gradient */
    gpu_rope_table rope;   /* grown to the longest training sequence */
    gpu_embed_index embed_index;
    bool have_forward; /* acts hold a forward the backward may use */
    int64_t n_tokens, n_seqs, max_seq_len;
    gpu_decode_state dec;
};

/* Device pointers of the parameter at element offset `off`. */
static inline uint16_t *gpu_w(const gpu_model *g, int64_t off) { return g->w16 + off; }
static inline float *gpu_g(const gpu_model *g, int64_t off) { return g->grads + off; }

/* cudaMalloc naming the buffer and size on failure; 0 bytes gives NULL. */
int gpu_alloc(void **ptr, size_t bytes, const char *what, kpo_error *err);
void gpu_free(void *ptr);
/* Grows b to at least bytes (contents are lost). */
int gpu_buffer_reserve(gpu_buffer *b, size_t bytes, const char *what, kpo_error *err);
void gpu_buffer_free(gpu_buffer *b);

/* Host -> device / device -> host on g->stream (device -> host waits). */
int gpu_upload(gpu_model *g, void *dst, const void *src, size_t bytes, const char *what,
               kpo_error *err);
int gpu_download(const gpu_model *g, void *dst, const void *src, size_t bytes, const char *what,
                 kpo_error *err);

/* (Re)lays an activation set out for T tokens in mode, growing arena. */
int gpu_acts_reserve(gpu_model *g, gpu_acts *a, gpu_layer_acts **layers, gpu_buffer *arena,
                     int64_t T, gpu_acts_mode mode, const char *what, kpo_error *err);

/* One decoder layer (model_cuda_layer.c), the CPU's layer_forward_qkv /
 * layer_forward_rest / layer_backward in bf16. positions: device [T];
 * qkv: device [T, (heads + 2 kv_heads) head_dim] scratch for the fused
 * product. */
int gpu_layer_forward_qkv(gpu_model *g, int64_t l, int64_t T, const gpu_rope_table *rope,
                          const int32_t *positions, gpu_layer_acts *a, uint16_t *qkv,
                          kpo_error *err);
/* o_proj, residual, post norm, gate/up, SwiGLU; then down and the second
 * residual into x_out, unless x_out is NULL (recompute needs only act).
 * x_out may be a->x (FORWARD mode: the stream updated in place). */
int gpu_layer_forward_rest(gpu_model *g, int64_t l, int64_t T, gpu_layer_acts *a,
                           uint16_t *x_out, kpo_error *err);
/* grad->dres holds d(layer output) on entry, d(layer input) on return;
 * weight gradients accumulate into g->grads. qkv: [T, q+2kv dims] scratch. */
int gpu_layer_backward(gpu_model *g, int64_t l, int64_t T, const gpu_attention_shape *shape,
                       gpu_layer_acts *a, gpu_grad_scratch *grad, uint16_t *qkv,
                       kpo_error *err);

/* The training batch's attention through g->opt.attention
 * (model_cuda_layer.c): cuDNN while it works, else the kernels. The first
 * cuDNN failure prints one line to stderr and turns the model to the
 * kernels for good (either backward can follow either forward: same lse).
 * _prepare: once per batch, from the host sequence offsets. */
void gpu_attention_prepare(gpu_model *g, const gpu_attention_shape *s,
                           const int64_t *host_seq_offsets);
int gpu_attention_run_forward(gpu_model *g, const gpu_attention_shape *s, gpu_layer_acts *a,
                              kpo_error *err);

#endif
