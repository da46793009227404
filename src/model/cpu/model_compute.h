/* Training forward/backward, fused log-probs and KV-cache decode for the CPU
 * model. A batch packs sequences end to end; attention is causal inside a
 * sequence and never crosses into another. The batch and the checks both
 * backends share (model_batch, model_batch_validate,
 * model_batch_next_targets, model_decode_check) are the interface's:
 * model/model_batch.h. */
#ifndef KPO_MODEL_CPU_MODEL_COMPUTE_H
#define KPO_MODEL_CPU_MODEL_COMPUTE_H

#include <stdint.h>

#include "model/model.h"
#include "model/model_batch.h"
#include "model/cpu/model_ops.h"

/* What backward needs from one layer, for the batch's T tokens. */
typedef struct model_layer_acts {
    float *x;      /* [T, hidden] the layer's input (residual stream) */
    float *rstd1;  /* [T] input_layernorm 1/rms */
    float *xn;     /* [T, hidden] */
    float *q_raw;  /* [T, heads * head_dim] before q_norm */
    float *k_raw;  /* [T, kv_heads * head_dim] before k_norm */
    float *rstd_q; /* [T, heads] */
    float *rstd_k; /* [T, kv_heads] */
    float *q;      /* [T, heads * head_dim] normed and rotated */
    float *k;      /* [T, kv_heads * head_dim] normed and rotated */
    float *v;      /* [T, kv_heads * head_dim] */
    float *attn;   /* [T, heads * head_dim] attention output before o_proj */
    float *lse;    /* [T, heads] log-sum-exp of the scores, to rebuild softmax */
    float *x_mid;  /* [T, hidden] residual after attention */
    float *rstd2;  /* [T] */
    float *xn2;    /* [T, hidden] */
    float *gate;   /* [T, intermediate] */
    float *up;     /* [T, intermediate] */
    float *act;    /* [T, intermediate] silu(gate) * up */
} model_layer_acts;

typedef struct model_acts {
    int64_t capacity;          /* tokens the buffers hold */
    int64_t n_tokens;
    const int32_t *tokens;     /* [n_tokens] the batch's, borrowed */
    const int64_t *seq_offsets; /* [n_seqs + 1] the batch's, borrowed */
    int64_t n_seqs;
    int32_t *positions;        /* [capacity] position inside its sequence */
    int64_t *seq_start;        /* [capacity] row of the token's sequence start */
    model_layer_acts *layers;  /* [num_hidden_layers] */
    float *x_final;            /* [T, hidden] last layer's output */
    float *rstd_final;         /* [T] */
    float *h;                  /* [T, hidden] after model.norm: lm_head's input */
    ops_rope_table rope;       /* grown to the longest sequence seen */
    float *buffer;
} model_acts;

int model_acts_init(model_acts *acts, const model *m, int64_t capacity, kpo_error *err);
void model_acts_free(model_acts *acts);

int model_forward_train(const model *m, const model_batch *batch, model_acts *acts,
                        kpo_error *err);

/* Fused lm_head + log-softmax: for each token t with targets[t] >= 0,
 * logp[t] = log p(targets[t] | prefix) and entropy[t] of the next-token
 * distribution; both 0 where targets[t] < 0. Logits exist only a chunk of
 * rows at a time. */
void model_logprobs(const model *m, const model_acts *acts, const int32_t *targets, float *logp,
                    float *entropy);

/* Full logits [T, vocab] (tests and small vocabularies only). */
void model_logits(const model *m, const model_acts *acts, float *logits);

/* Accumulates into grads the gradient of sum_t dlogp[t] * logp[t] +
 * dentropy[t] * entropy[t] (dentropy may be NULL). Tied embeddings receive
 * both the lm_head and the embedding contribution. */
int model_backward(const model *m, const model_acts *acts, const int32_t *targets,
                   const float *dlogp, const float *dentropy, model_weights *grads,
                   kpo_error *err);

/* Per-slot K and V of every layer for batched incremental decoding. */
typedef struct model_kv_cache {
    int64_t n_slots;
    int64_t max_len;
    int64_t *lengths; /* [n_slots] tokens already cached */
    float *k;         /* [layers, n_slots, max_len, kv_heads * head_dim] normed, rotated */
    float *v;         /* [layers, n_slots, max_len, kv_heads * head_dim] */
    ops_rope_table rope; /* [max_len] */
} model_kv_cache;

int model_kv_cache_init(model_kv_cache *cache, const model *m, int64_t n_slots, int64_t max_len,
                        kpo_error *err);
void model_kv_cache_free(model_kv_cache *cache);

/* Appends n_new[i] tokens to slot slots[i] for each of n_seqs sequences
 * (tokens packed back to back) and writes the next-token logits after each
 * sequence's last new token to logits[n_seqs, vocab]. A prefill is a call
 * with whole prompts, a step one with n_new = 1. */
int model_decode_step(const model *m, model_kv_cache *cache, int64_t n_seqs,
                      const int64_t *slots, const int64_t *n_new, const int32_t *tokens,
                      float *logits, kpo_error *err);

#endif
