/* The parameter table in HF order, the one allocation holding all weights,
 * and the named pointers into it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

/* The table in HF's order. `slot` says where each tensor's pointer goes. */
static size_t build_table(const model_config *c, model_param *out)
{
    const int64_t h = c->hidden_size, d = c->head_dim, i = c->intermediate_size;
    const int64_t q = c->num_attention_heads * d, kv = c->num_key_value_heads * d;
    size_t n = 0;
    int64_t offset = 0;
#define ADD(rank_, s0, s1, norm, ...)                                                   \
    do {                                                                                \
        if (out) {                                                                      \
            model_param *p = &out[n];                                                   \
            snprintf(p->name, sizeof p->name, __VA_ARGS__);                             \
            p->rank = rank_;                                                            \
            p->shape[0] = s0;                                                           \
            p->shape[1] = s1;                                                           \
            p->numel = (rank_) == 1 ? (s0) : (s0) * (s1);                               \
            p->offset = offset;                                                         \
            p->is_norm = norm;                                                          \
            offset += p->numel;                                                         \
        }                                                                               \
        n++;                                                                            \
    } while (0)
    ADD(2, c->vocab_size, h, false, "model.embed_tokens.weight");
    for (int64_t l = 0; l < c->num_hidden_layers; l++) {
        const long long L = (long long)l;
        ADD(1, h, 0, true, "model.layers.%lld.input_layernorm.weight", L);
        ADD(2, q, h, false, "model.layers.%lld.self_attn.q_proj.weight", L);
        ADD(2, kv, h, false, "model.layers.%lld.self_attn.k_proj.weight", L);
        ADD(2, kv, h, false, "model.layers.%lld.self_attn.v_proj.weight", L);
        ADD(1, d, 0, true, "model.layers.%lld.self_attn.q_norm.weight", L);
        ADD(1, d, 0, true, "model.layers.%lld.self_attn.k_norm.weight", L);
        ADD(2, h, q, false, "model.layers.%lld.self_attn.o_proj.weight", L);
        ADD(1, h, 0, true, "model.layers.%lld.post_attention_layernorm.weight", L);
        ADD(2, i, h, false, "model.layers.%lld.mlp.gate_proj.weight", L);
        ADD(2, i, h, false, "model.layers.%lld.mlp.up_proj.weight", L);
        ADD(2, h, i, false, "model.layers.%lld.mlp.down_proj.weight", L);
    }
    ADD(1, h, 0, true, "model.norm.weight");
    if (!c->tie_word_embeddings)
        ADD(2, c->vocab_size, h, false, "lm_head.weight");
#undef ADD
    return n;
}

/* Points the named fields at their slices of w->data, in table order. */
static void bind(const model *m, model_weights *w)
{
    const model_param *p = m->params;
    size_t k = 0;
    w->embed = w->data + p[k++].offset;
    for (int64_t l = 0; l < m->config.num_hidden_layers; l++) {
        model_layer *L = &w->layers[l];
        float **slots[] = {&L->input_norm, &L->q_proj, &L->k_proj, &L->v_proj,
                           &L->q_norm,     &L->k_norm, &L->o_proj, &L->post_norm,
                           &L->gate_proj,  &L->up_proj, &L->down_proj};
        for (size_t s = 0; s < sizeof slots / sizeof slots[0]; s++)
            *slots[s] = w->data + p[k++].offset;
    }
    w->final_norm = w->data + p[k++].offset;
    w->lm_head = m->config.tie_word_embeddings ? w->embed : w->data + p[k++].offset;
}

int model_weights_init(const model *m, model_weights *w, kpo_error *err)
{
    memset(w, 0, sizeof *w);
    const model_param *last = &m->params[m->n_params_table - 1];
    w->n_params = last->offset + last->numel;
    w->data = calloc((size_t)w->n_params, sizeof *w->data);
    w->layers = calloc((size_t)m->config.num_hidden_layers, sizeof *w->layers);
    if (!w->data || !w->layers) {
        /* w may be m->weights: take the count before freeing clears it. */
        const long long n_params = (long long)w->n_params;
        model_weights_free(w);
        return error_set(err, "out of memory allocating %lld parameters", n_params);
    }
    bind(m, w);
    return KPO_OK;
}

void model_weights_free(model_weights *w)
{
    free(w->data);
    free(w->layers);
    memset(w, 0, sizeof *w);
}

int model_init(model *m, const model_config *config, kpo_error *err)
{
    memset(m, 0, sizeof *m);
    if (model_config_validate(config, "config", err) != KPO_OK)
        return KPO_ERR;
    m->config = *config;
    m->n_params_table = build_table(config, NULL);
    m->params = calloc(m->n_params_table, sizeof *m->params);
    if (!m->params)
        return error_set(err, "out of memory");
    build_table(config, m->params);
    if (model_weights_init(m, &m->weights, err) != KPO_OK) {
        model_free(m);
        return KPO_ERR;
    }
    return KPO_OK;
}

void model_free(model *m)
{
    model_weights_free(&m->weights);
    free(m->params);
    memset(m, 0, sizeof *m);
}

const model_param *model_find_param(const model *m, const char *name)
{
    for (size_t k = 0; k < m->n_params_table; k++)
        if (strcmp(m->params[k].name, name) == 0)
            return &m->params[k];
    return NULL;
}
