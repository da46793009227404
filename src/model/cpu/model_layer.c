/* One decoder layer on the CPU (model_layer.h), shared by the training
 * forward and the decoder. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/cpu/model_layer.h"

int64_t layer_acts_floats(const model_config *c, int64_t T)
{
    const int64_t h = c->hidden_size, q = c->num_attention_heads * c->head_dim;
    const int64_t kv = c->num_key_value_heads * c->head_dim, i = c->intermediate_size;
    return T * (4 * h + 2 + 3 * q + 3 * kv + 2 * c->num_attention_heads +
                c->num_key_value_heads + 3 * i);
}

void layer_acts_bind(const model_config *c, int64_t T, float **cursor, model_layer_acts *a)
{
    const int64_t h = c->hidden_size, q = c->num_attention_heads * c->head_dim;
    const int64_t kv = c->num_key_value_heads * c->head_dim, i = c->intermediate_size;
    float *p = *cursor;
#define TAKE(field, n)   \
    do {                 \
        a->field = p;    \
        p += T * (n);    \
    } while (0)
    TAKE(x, h);
    TAKE(rstd1, 1);
    TAKE(xn, h);
    TAKE(q_raw, q);
    TAKE(k_raw, kv);
    TAKE(rstd_q, c->num_attention_heads);
    TAKE(rstd_k, c->num_key_value_heads);
    TAKE(q, q);
    TAKE(k, kv);
    TAKE(v, kv);
    TAKE(attn, q);
    TAKE(lse, c->num_attention_heads);
    TAKE(x_mid, h);
    TAKE(rstd2, 1);
    TAKE(xn2, h);
    TAKE(gate, i);
    TAKE(up, i);
    TAKE(act, i);
#undef TAKE
    *cursor = p;
}

void layer_forward_qkv(const model *m, int64_t layer, int64_t T, const int32_t *positions,
                       const ops_rope_table *rope, model_layer_acts *a)
{
    const model_config *c = &m->config;
    const model_layer *w = &m->weights.layers[layer];
    const int64_t h = c->hidden_size, d = c->head_dim;
    const int64_t nq = c->num_attention_heads, nkv = c->num_key_value_heads;
    const float eps = (float)c->rms_norm_eps;
    ops_rmsnorm(T, h, a->x, w->input_norm, eps, a->xn, a->rstd1);
    ops_linear(T, h, nq * d, a->xn, w->q_proj, a->q_raw);
    ops_linear(T, h, nkv * d, a->xn, w->k_proj, a->k_raw);
    ops_linear(T, h, nkv * d, a->xn, w->v_proj, a->v);
    /* QK-norm comes before RoPE (Qwen3), one RMSNorm per head vector. */
    ops_rmsnorm(T * nq, d, a->q_raw, w->q_norm, eps, a->q, a->rstd_q);
    ops_rmsnorm(T * nkv, d, a->k_raw, w->k_norm, eps, a->k, a->rstd_k);
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; t++) {
        ops_rope_apply(rope, positions[t], nq, a->q + t * nq * d, 0);
        ops_rope_apply(rope, positions[t], nkv, a->k + t * nkv * d, 0);
    }
}

static void attention_forward(const model_config *c, int64_t T, const int32_t *positions,
                              const float *q, const float *k_rows, const float *v_rows,
                              const int64_t *key_row0, float *out, float *lse)
{
    const int64_t d = c->head_dim, nq = c->num_attention_heads, nkv = c->num_key_value_heads;
    const int64_t group = nq / nkv, kvdim = nkv * d;
    const float scale = 1.0f / sqrtf((float)d);
    int64_t max_keys = 1;
    for (int64_t t = 0; t < T; t++)
        if (positions[t] + 1 > max_keys)
            max_keys = positions[t] + 1;
#pragma omp parallel
    {
        float *scores = malloc((size_t)max_keys * sizeof *scores);
#pragma omp for schedule(static)
        for (int64_t th = 0; th < T * nq; th++) {
            const int64_t t = th / nq, hq = th % nq, g = hq / group, n = positions[t] + 1;
            const float *qv = q + t * nq * d + hq * d;
            const float *kb = k_rows + key_row0[t] * kvdim + g * d;
            const float *vb = v_rows + key_row0[t] * kvdim + g * d;
            float mx = -INFINITY;
            for (int64_t j = 0; j < n; j++) {
                float s = 0;
                for (int64_t e = 0; e < d; e++)
                    s += qv[e] * kb[j * kvdim + e];
                scores[j] = s * scale;
                if (scores[j] > mx)
                    mx = scores[j];
            }
            float *o = out + t * nq * d + hq * d;
            memset(o, 0, (size_t)d * sizeof *o);
            double sum = 0;
            for (int64_t j = 0; j < n; j++) {
                const float p = expf(scores[j] - mx);
                sum += p;
                for (int64_t e = 0; e < d; e++)
                    o[e] += p * vb[j * kvdim + e];
            }
            const float inv = (float)(1.0 / sum);
            for (int64_t e = 0; e < d; e++)
                o[e] *= inv;
            lse[t * nq + hq] = mx + (float)log(sum);
        }
        free(scores);
    }
}

void layer_forward_rest(const model *m, int64_t layer, int64_t T, const int32_t *positions,
                        const float *k_rows, const float *v_rows, const int64_t *key_row0,
                        model_layer_acts *a, float *x_out)
{
    const model_config *c = &m->config;
    const model_layer *w = &m->weights.layers[layer];
    const int64_t h = c->hidden_size, qd = c->num_attention_heads * c->head_dim;
    const int64_t inter = c->intermediate_size;
    attention_forward(c, T, positions, a->q, k_rows, v_rows, key_row0, a->attn, a->lse);
    ops_linear(T, qd, h, a->attn, w->o_proj, a->x_mid);
    for (int64_t i = 0; i < T * h; i++)
        a->x_mid[i] += a->x[i];
    ops_rmsnorm(T, h, a->x_mid, w->post_norm, (float)c->rms_norm_eps, a->xn2, a->rstd2);
    ops_linear(T, h, inter, a->xn2, w->gate_proj, a->gate);
    ops_linear(T, h, inter, a->xn2, w->up_proj, a->up);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < T * inter; i++)
        a->act[i] = a->gate[i] * ops_sigmoid(a->gate[i]) * a->up[i];
    ops_linear(T, inter, h, a->act, w->down_proj, x_out);
    for (int64_t i = 0; i < T * h; i++)
        x_out[i] += a->x_mid[i];
}
