/* The Qwen3 shapes the GPU benchmarks run at, from the published
 * config.json files (../shared/data/qwen3_configs), built in so a GPU image
 * without the data can still run them. Random weights: only the shapes
 * matter for speed. */
#ifndef KPO_TESTS_GPU_BENCH_SHAPES_H
#define KPO_TESTS_GPU_BENCH_SHAPES_H

#include <string.h>

#include "model/model_config.h"

/* 0 and *c filled for "0.6b" or "4b"; -1 for anything else. */
static inline int bench_shape_config(const char *name, model_config *c)
{
    memset(c, 0, sizeof *c);
    c->vocab_size = 151936;
    c->head_dim = 128;
    c->num_key_value_heads = 8;
    c->max_position_embeddings = 32768;
    c->rope_theta = 1e6;
    c->rms_norm_eps = 1e-6;
    c->tie_word_embeddings = true;
    if (strcmp(name, "0.6b") == 0) {
        c->hidden_size = 1024;
        c->intermediate_size = 3072;
        c->num_hidden_layers = 28;
        c->num_attention_heads = 16;
        return 0;
    }
    if (strcmp(name, "4b") == 0) {
        c->hidden_size = 2560;
        c->intermediate_size = 9728;
        c->num_hidden_layers = 36;
        c->num_attention_heads = 32;
        return 0;
    }
    return -1;
}

/* Parameters that enter a matrix product per token: every projection plus
 * the lm_head (the tied embedding counted once, as the head; the lookup is
 * a gather). */
static inline int64_t bench_matmul_params(const model_config *c)
{
    const int64_t h = c->hidden_size, q = c->num_attention_heads * c->head_dim,
                  kv = c->num_key_value_heads * c->head_dim;
    const int64_t per_layer = h * q + 2 * h * kv + q * h + 3 * h * c->intermediate_size;
    return c->num_hidden_layers * per_layer + c->vocab_size * h;
}

#endif
