/* The GPU model's activation arena: which device tensors a forward keeps
 * for the backward, and the one layer's working set, carved out of a single
 * allocation. Pure C and compiled in every build, because the memory plan
 * (model_cuda_plan.c, no CUDA) counts the very bytes the allocator carves.
 * Internal to the GPU model. bf16 tensors are uint16_t, T = capacity. */
#ifndef KPO_MODEL_CUDA_MODEL_CUDA_ACTS_H
#define KPO_MODEL_CUDA_MODEL_CUDA_ACTS_H

#include <stddef.h>
#include <stdint.h>

#include "model/model_config.h"

/* How much of each layer the forward keeps. */
typedef enum gpu_acts_mode {
    GPU_ACTS_SAVE_ALL,  /* training: every layer keeps all that its backward reads */
    GPU_ACTS_RECOMPUTE, /* training: each layer keeps its input x; the rest is one shared
                           layer's scratch, refilled by re-running the layer in backward */
    GPU_ACTS_FORWARD    /* no backward (log-probs, decode): one layer's buffers, the
                           residual stream x updated in place */
} gpu_acts_mode;

/* One layer's forward tensors (the CPU's model_layer_acts in bf16). */
typedef struct gpu_layer_acts {
    uint16_t *x;       /* [T, hidden] layer input (residual stream) */
    float *rstd1;      /* [T] input_layernorm 1/rms */
    uint16_t *xn;      /* [T, hidden] */
    uint16_t *q_raw;   /* [T, heads, head_dim] before q_norm */
    uint16_t *k_raw;   /* [T, kv_heads, head_dim] before k_norm */
    float *rstd_q;     /* [T, heads] */
    float *rstd_k;     /* [T, kv_heads] */
    uint16_t *q;       /* [T, heads, head_dim] normed and rotated */
    uint16_t *k;       /* [T, kv_heads, head_dim] normed and rotated */
    uint16_t *v;       /* [T, kv_heads, head_dim] */
    uint16_t *attn;    /* [T, heads, head_dim] attention output before o_proj */
    float *lse;        /* [T, heads] log-sum-exp of the scaled scores */
    uint16_t *x_mid;   /* [T, hidden] residual after attention */
    float *rstd2;      /* [T] */
    uint16_t *xn2;     /* [T, hidden] */
    uint16_t *gate_up; /* [T, 2 * intermediate]: gate then up (see gpu_model's layouts) */
    uint16_t *act;     /* [T, intermediate] silu(gate) * up */
} gpu_layer_acts;

/* Gradient buffers for one layer at a time, reused down the stack. */
typedef struct gpu_grad_scratch {
    uint16_t *dres;  /* [T, hidden] d(residual stream): a layer's output, then its input */
    uint16_t *dxn;   /* [T, hidden] d(a normed input); first d(final norm output) */
    uint16_t *dact;  /* [T, intermediate] */
    uint16_t *dgate_up; /* [T, 2 * intermediate] laid out as gate_up */
    uint16_t *dattn; /* [T, heads, head_dim] */
    uint16_t *dq;    /* [T, heads, head_dim] after attention backward; q_norm backward
                        turns it into d(q_raw) in place */
    uint16_t *dk;    /* [T, kv_heads, head_dim] likewise d(k_raw) */
    uint16_t *dv;    /* [T, kv_heads, head_dim] */
} gpu_grad_scratch;

typedef struct gpu_acts {
    int64_t capacity; /* tokens */
    gpu_acts_mode mode;
    gpu_layer_acts *layers; /* host [num_hidden_layers], the caller's; device pointers */
    uint16_t *qkv;          /* [T, (heads + 2 kv_heads) head_dim]: the fused q|k|v product;
                               in backward the fused d(q_raw)|d(k_raw)|d(v) */
    uint16_t *x_final;      /* [T, hidden] last layer's output (FORWARD: = layers[0].x) */
    float *rstd_final;      /* [T] */
    uint16_t *h;            /* [T, hidden] after model.norm: the lm_head's input */
    float *logp, *entropy, *lse; /* [T] the log-prob head's outputs */
    float *dlogp, *dentropy;     /* [T] the objective's weights (training modes) */
    int32_t *tokens;        /* [T] */
    int32_t *targets;       /* [T] */
    int32_t *positions;     /* [T] position inside the token's sequence */
    int64_t *seq_offsets;   /* [T + 1] */
    gpu_grad_scratch grad;  /* training modes only */
    size_t saved_bytes;     /* kept from forward to backward */
    size_t scratch_bytes;   /* one layer's working set and the gradient buffers */
} gpu_acts;

/* Lays out an arena for T tokens at base (device memory of at least
 * saved_bytes + scratch_bytes, 256-byte aligned), filling a's pointers
 * (and a->layers[l] when a->layers is not NULL). base NULL: only counts
 * (a's pointers stay NULL). Returns the arena's total bytes. */
size_t gpu_acts_layout(gpu_acts *a, const model_config *c, int64_t T, gpu_acts_mode mode,
                       void *base);

#endif
