/* The Qwen3 dense decoder on the CPU, fp32. Parameters live in one
 * contiguous buffer described by a table of HF tensor names, so loading,
 * saving, initialisation and the optimizer all walk the same list. */
#ifndef KPO_MODEL_MODEL_H
#define KPO_MODEL_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "model/model_config.h"
#include "model/safetensors.h"

typedef struct model_layer {
    float *input_norm; /* [hidden] */
    float *q_proj;     /* [heads * head_dim, hidden] */
    float *k_proj;     /* [kv_heads * head_dim, hidden] */
    float *v_proj;     /* [kv_heads * head_dim, hidden] */
    float *q_norm;     /* [head_dim] */
    float *k_norm;     /* [head_dim] */
    float *o_proj;     /* [hidden, heads * head_dim] */
    float *post_norm;  /* [hidden] */
    float *gate_proj;  /* [intermediate, hidden] */
    float *up_proj;    /* [intermediate, hidden] */
    float *down_proj;  /* [hidden, intermediate] */
} model_layer;

/* Parameters or their gradients: the same layout over a different buffer. */
typedef struct model_weights {
    float *data;         /* [n_params] */
    int64_t n_params;
    float *embed;        /* [vocab, hidden] */
    model_layer *layers; /* [num_hidden_layers] */
    float *final_norm;   /* [hidden] */
    float *lm_head;      /* [vocab, hidden]; the embed buffer itself when tied */
} model_weights;

typedef struct model_param {
    char name[96]; /* HF name, "model.layers.3.self_attn.q_proj.weight" */
    int rank;
    int64_t shape[2];
    int64_t offset; /* into model_weights.data */
    int64_t numel;
    bool is_norm; /* RMSNorm gains: no weight decay */
} model_param;

typedef struct model {
    model_config config;
    model_param *params; /* [n_params_table] */
    size_t n_params_table;
    model_weights weights;
} model;

/* Allocates a model for config with weights zeroed. */
int model_init(model *m, const model_config *config, kpo_error *err);
void model_free(model *m);

/* Allocates a weights/gradients buffer with m's layout, zeroed. */
int model_weights_init(const model *m, model_weights *w, kpo_error *err);
void model_weights_free(model_weights *w);

/* Reads dir/config.json and dir's safetensors (single or sharded); every
 * tensor must be present with the config's shape. On error *m is untouched. */
int model_load(const char *dir, model *m, kpo_error *err);

/* Writes dir/config.json and dir/model.safetensors (F32 or BF16). */
int model_save(const model *m, const char *dir, safetensors_dtype dtype, kpo_error *err);

/* Normal(0, std) matrices and embeddings, norm gains 1: a deterministic
 * function of the seed (one Philox stream per tensor). */
void model_init_random(model *m, uint64_t seed, double std);

const model_param *model_find_param(const model *m, const char *name);

#endif
