/* The CPU model's training forward (fp32) over a packed batch of
 * sequences, keeping the activations the backward needs. */
#include <stdlib.h>
#include <string.h>

#include "model/cpu/model_layer.h"

int model_acts_init(model_acts *acts, const model *m, int64_t capacity, kpo_error *err)
{
    memset(acts, 0, sizeof *acts);
    const model_config *c = &m->config;
    const int64_t L = c->num_hidden_layers, h = c->hidden_size;
    const int64_t floats = L * layer_acts_floats(c, capacity) + capacity * (2 * h + 1);
    acts->capacity = capacity;
    acts->buffer = malloc((size_t)floats * sizeof(float));
    acts->layers = calloc((size_t)L, sizeof *acts->layers);
    acts->positions = malloc((size_t)capacity * sizeof *acts->positions);
    acts->seq_start = malloc((size_t)capacity * sizeof *acts->seq_start);
    if (!acts->buffer || !acts->layers || !acts->positions || !acts->seq_start) {
        model_acts_free(acts);
        return error_set(err, "out of memory for activations of %lld tokens",
                         (long long)capacity);
    }
    float *cursor = acts->buffer;
    for (int64_t l = 0; l < L; l++)
        layer_acts_bind(c, capacity, &cursor, &acts->layers[l]);
    acts->x_final = cursor;
    cursor += capacity * h;
    acts->rstd_final = cursor;
    cursor += capacity;
    acts->h = cursor;
    return KPO_OK;
}

void model_acts_free(model_acts *acts)
{
    free(acts->buffer);
    free(acts->layers);
    free(acts->positions);
    free(acts->seq_start);
    ops_rope_table_free(&acts->rope);
    memset(acts, 0, sizeof *acts);
}

int model_forward_train(const model *m, const model_batch *b, model_acts *acts, kpo_error *err)
{
    const model_config *c = &m->config;
    const int64_t h = c->hidden_size, T = b->n_tokens;
    if (model_batch_validate(m, b, err) != KPO_OK)
        return KPO_ERR;
    if (T > acts->capacity)
        return error_set(err, "batch: %lld tokens exceed the activation capacity %lld",
                         (long long)T, (long long)acts->capacity);
    int64_t longest = 0;
    for (int64_t s = 0; s < b->n_seqs; s++) {
        const int64_t start = b->seq_offsets[s], len = b->seq_offsets[s + 1] - start;
        if (len > longest)
            longest = len;
        for (int64_t t = start; t < start + len; t++) {
            acts->positions[t] = (int32_t)(t - start);
            acts->seq_start[t] = start;
        }
    }
    if (longest > acts->rope.n_positions) {
        ops_rope_table_free(&acts->rope);
        if (ops_rope_table_init(&acts->rope, longest, c->head_dim, c->rope_theta) != 0)
            return error_set(err, "out of memory for the RoPE table");
    }
    acts->n_tokens = T;
    acts->tokens = b->tokens;
    acts->seq_offsets = b->seq_offsets;
    acts->n_seqs = b->n_seqs;
    float *x0 = acts->layers[0].x;
    for (int64_t t = 0; t < T; t++)
        memcpy(x0 + t * h, m->weights.embed + (int64_t)b->tokens[t] * h, (size_t)h * sizeof *x0);
    for (int64_t l = 0; l < c->num_hidden_layers; l++) {
        model_layer_acts *a = &acts->layers[l];
        float *x_out = l + 1 < c->num_hidden_layers ? acts->layers[l + 1].x : acts->x_final;
        layer_forward_qkv(m, l, T, acts->positions, &acts->rope, a);
        layer_forward_rest(m, l, T, acts->positions, a->k, a->v, acts->seq_start, a, x_out);
    }
    ops_rmsnorm(T, h, acts->x_final, m->weights.final_norm, (float)c->rms_norm_eps, acts->h,
                acts->rstd_final);
    return KPO_OK;
}
