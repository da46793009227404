/* Batched incremental decoding on the CPU: the KV cache and one decode
 * step over several sequences (prefill is a step with whole prompts). */
#include <stdlib.h>
#include <string.h>

#include "model/cpu/model_layer.h"

int model_kv_cache_init(model_kv_cache *cache, const model *m, int64_t n_slots, int64_t max_len,
                        kpo_error *err)
{
    memset(cache, 0, sizeof *cache);
    const model_config *c = &m->config;
    if (n_slots < 1 || max_len < 1)
        return error_set(err, "kv cache: need at least one slot and one position");
    const size_t floats = (size_t)(c->num_hidden_layers * n_slots * max_len *
                                   c->num_key_value_heads * c->head_dim);
    cache->n_slots = n_slots;
    cache->max_len = max_len;
    cache->lengths = calloc((size_t)n_slots, sizeof *cache->lengths);
    cache->k = malloc(floats * sizeof *cache->k);
    cache->v = malloc(floats * sizeof *cache->v);
    if (!cache->lengths || !cache->k || !cache->v ||
        ops_rope_table_init(&cache->rope, max_len, c->head_dim, c->rope_theta) != 0) {
        model_kv_cache_free(cache);
        return error_set(err, "kv cache: out of memory for %lld slots x %lld positions",
                         (long long)n_slots, (long long)max_len);
    }
    return KPO_OK;
}

void model_kv_cache_free(model_kv_cache *cache)
{
    free(cache->lengths);
    free(cache->k);
    free(cache->v);
    ops_rope_table_free(&cache->rope);
    memset(cache, 0, sizeof *cache);
}

int model_decode_step(const model *m, model_kv_cache *cache, int64_t n_seqs,
                      const int64_t *slots, const int64_t *n_new, const int32_t *tokens,
                      float *logits, kpo_error *err)
{
    const model_config *c = &m->config;
    const int64_t h = c->hidden_size, kvd = c->num_key_value_heads * c->head_dim;
    int64_t T = 0;
    if (n_seqs < 1 || model_decode_check(c->vocab_size, cache->n_slots, cache->max_len,
                                         cache->lengths, n_seqs, slots, n_new, tokens, &T,
                                         err) != KPO_OK)
        return n_seqs < 1 ? error_set(err, "decode: no sequences") : KPO_ERR;
    float *buffer = malloc((size_t)(layer_acts_floats(c, T) + T * h + n_seqs * 2 * h) *
                           sizeof *buffer);
    int32_t *positions = malloc((size_t)T * sizeof *positions);
    int64_t *key_row0 = malloc((size_t)T * sizeof *key_row0);
    int64_t *cache_row = malloc((size_t)T * sizeof *cache_row);
    int status = KPO_OK;
    if (!buffer || !positions || !key_row0 || !cache_row) {
        status = error_set(err, "decode: out of memory for %lld tokens", (long long)T);
        goto done;
    }
    model_layer_acts a;
    float *cursor = buffer;
    layer_acts_bind(c, T, &cursor, &a);
    float *x_out = cursor, *last = cursor + T * h, *rstd = last + n_seqs * h;
    for (int64_t i = 0, t = 0; i < n_seqs; i++)
        for (int64_t j = 0; j < n_new[i]; j++, t++) {
            positions[t] = (int32_t)(cache->lengths[slots[i]] + j);
            key_row0[t] = slots[i] * cache->max_len;
            cache_row[t] = key_row0[t] + positions[t];
        }
    for (int64_t t = 0; t < T; t++)
        memcpy(a.x + t * h, m->weights.embed + (int64_t)tokens[t] * h, (size_t)h * sizeof *a.x);
    const int64_t layer_stride = cache->n_slots * cache->max_len * kvd;
    for (int64_t l = 0; l < c->num_hidden_layers; l++) {
        float *k_rows = cache->k + l * layer_stride, *v_rows = cache->v + l * layer_stride;
        layer_forward_qkv(m, l, T, positions, &cache->rope, &a);
        for (int64_t t = 0; t < T; t++) {
            memcpy(k_rows + cache_row[t] * kvd, a.k + t * kvd, (size_t)kvd * sizeof *a.k);
            memcpy(v_rows + cache_row[t] * kvd, a.v + t * kvd, (size_t)kvd * sizeof *a.v);
        }
        layer_forward_rest(m, l, T, positions, k_rows, v_rows, key_row0, &a, x_out);
        memcpy(a.x, x_out, (size_t)(T * h) * sizeof *a.x);
    }
    /* Only each sequence's last new token needs the vocabulary. */
    for (int64_t i = 0, t = 0; i < n_seqs; i++) {
        t += n_new[i];
        memcpy(last + i * h, a.x + (t - 1) * h, (size_t)h * sizeof *last);
        cache->lengths[slots[i]] += n_new[i];
    }
    ops_rmsnorm(n_seqs, h, last, m->weights.final_norm, (float)c->rms_norm_eps, last, rstd);
    ops_linear(n_seqs, h, c->vocab_size, last, m->weights.lm_head, logits);
done:
    free(buffer);
    free(positions);
    free(key_row0);
    free(cache_row);
    return status;
}
