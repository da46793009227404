/* The hyperparameters of a Qwen3 dense decoder, as HF's config.json names
 * them. head_dim is explicit: Qwen3 does not derive it from hidden / heads. */
#ifndef KPO_MODEL_MODEL_CONFIG_H
#define KPO_MODEL_MODEL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct model_config {
    int64_t vocab_size;
    int64_t hidden_size;
    int64_t intermediate_size;
    int64_t num_hidden_layers;
    int64_t num_attention_heads;
    int64_t num_key_value_heads;
    int64_t head_dim;
    int64_t max_position_embeddings;
    double rope_theta;
    double rms_norm_eps;
    bool tie_word_embeddings;
} model_config;

/* Reads and validates dir-less `path` (a config.json). Every field above is
 * required (tie_word_embeddings defaults to false as in HF) and must be > 0;
 * heads must be a multiple of kv heads and head_dim even (RoPE pairs). */
int model_config_load(const char *path, model_config *config, kpo_error *err);

/* Checks the invariants model_config_load enforces; `where` prefixes errors. */
int model_config_validate(const model_config *config, const char *where, kpo_error *err);

/* Writes a config.json that HF transformers loads as Qwen3ForCausalLM. */
int model_config_save(const model_config *config, const char *path, const char *torch_dtype,
                      kpo_error *err);

/* Parameter count, counting a tied lm_head once. */
int64_t model_config_param_count(const model_config *config);

#endif
