/* The CPU model's backward pass (fp32): from d loss / d log-prob per token
 * through the head, every layer and the embedding into the gradients. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/cpu/model_layer.h"

/* Gradient buffers for one layer at a time, reused down the stack. */
typedef struct backward_scratch {
    float *dx;    /* [T, hidden] gradient w.r.t. the current layer's output, then input */
    float *dmid;  /* [T, hidden] w.r.t. x_mid */
    float *dxn;   /* [T, hidden] w.r.t. a normed input */
    float *dact;  /* [T, intermediate] */
    float *dgate; /* [T, intermediate] */
    float *dup;   /* [T, intermediate] */
    float *dattn; /* [T, heads * head_dim] */
    float *dq;    /* [T, heads * head_dim] */
    float *dk;    /* [T, kv_heads * head_dim] */
    float *dv;    /* [T, kv_heads * head_dim] */
    float *dq_raw; /* [T, heads * head_dim] */
    float *dk_raw; /* [T, kv_heads * head_dim] */
    float *buffer;
} backward_scratch;

static int scratch_init(backward_scratch *s, const model_config *c, int64_t T)
{
    const int64_t h = c->hidden_size, i = c->intermediate_size;
    const int64_t q = c->num_attention_heads * c->head_dim;
    const int64_t kv = c->num_key_value_heads * c->head_dim;
    s->buffer = malloc((size_t)(T * (3 * h + 3 * i + 3 * q + 3 * kv)) * sizeof(float));
    if (!s->buffer)
        return -1;
    float *p = s->buffer;
    float **fields[] = {&s->dx, &s->dmid, &s->dxn, &s->dact, &s->dgate, &s->dup,
                        &s->dattn, &s->dq, &s->dq_raw, &s->dk, &s->dv, &s->dk_raw};
    const int64_t widths[] = {h, h, h, i, i, i, q, q, q, kv, kv, kv};
    for (size_t k = 0; k < sizeof widths / sizeof widths[0]; k++) {
        *fields[k] = p;
        p += T * widths[k];
    }
    return 0;
}

/* Per (sequence, kv head): rebuilds each softmax from the saved lse, and
 * accumulates dK, dV of that head's keys in a fixed order, so no two
 * threads write the same row and the sums do not depend on the thread
 * count. */
static void attention_backward(const model_config *c, const model_acts *acts,
                               const model_layer_acts *a, const float *dout, float *dq,
                               float *dk, float *dv)
{
    const int64_t d = c->head_dim, nq = c->num_attention_heads, nkv = c->num_key_value_heads;
    const int64_t group = nq / nkv, qdim = nq * d, kvdim = nkv * d, T = acts->n_tokens;
    const int64_t *seq_offsets = acts->seq_offsets, n_seqs = acts->n_seqs;
    const float scale = 1.0f / sqrtf((float)d);
    memset(dk, 0, (size_t)(T * kvdim) * sizeof *dk);
    memset(dv, 0, (size_t)(T * kvdim) * sizeof *dv);
    int64_t longest = 1;
    for (int64_t s = 0; s < n_seqs; s++)
        if (seq_offsets[s + 1] - seq_offsets[s] > longest)
            longest = seq_offsets[s + 1] - seq_offsets[s];
#pragma omp parallel
    {
        float *p = malloc((size_t)longest * sizeof *p);
        float *dp = malloc((size_t)longest * sizeof *dp);
#pragma omp for schedule(dynamic)
        for (int64_t sg = 0; sg < n_seqs * nkv; sg++) {
            const int64_t s = sg / nkv, g = sg % nkv, start = seq_offsets[s];
            const int64_t len = seq_offsets[s + 1] - start;
            const float *kb = a->k + start * kvdim + g * d, *vb = a->v + start * kvdim + g * d;
            float *dkb = dk + start * kvdim + g * d, *dvb = dv + start * kvdim + g * d;
            for (int64_t i = 0; i < len; i++) {
                const int64_t t = start + i;
                for (int64_t hq = g * group; hq < (g + 1) * group; hq++) {
                    const float *qv = a->q + t * qdim + hq * d, *dov = dout + t * qdim + hq * d;
                    const float lse = a->lse[t * nq + hq];
                    float D = 0;
                    for (int64_t j = 0; j <= i; j++) {
                        float sc = 0, dpj = 0;
                        for (int64_t e = 0; e < d; e++) {
                            sc += qv[e] * kb[j * kvdim + e];
                            dpj += dov[e] * vb[j * kvdim + e];
                        }
                        p[j] = expf(sc * scale - lse);
                        dp[j] = dpj;
                        D += p[j] * dpj;
                    }
                    float *dqv = dq + t * qdim + hq * d;
                    memset(dqv, 0, (size_t)d * sizeof *dqv);
                    for (int64_t j = 0; j <= i; j++) {
                        const float ds = p[j] * (dp[j] - D) * scale;
                        for (int64_t e = 0; e < d; e++) {
                            dqv[e] += ds * kb[j * kvdim + e];
                            dkb[j * kvdim + e] += ds * qv[e];
                            dvb[j * kvdim + e] += p[j] * dov[e];
                        }
                    }
                }
            }
        }
        free(p);
        free(dp);
    }
}

/* s->dx holds d(layer output) on entry and d(layer input) on return. */
static void layer_backward(const model *m, int64_t l, const model_acts *acts, backward_scratch *s,
                           model_layer *g)
{
    const model_config *c = &m->config;
    const model_layer *w = &m->weights.layers[l];
    const model_layer_acts *a = &acts->layers[l];
    const int64_t T = acts->n_tokens, h = c->hidden_size, inter = c->intermediate_size;
    const int64_t d = c->head_dim, nq = c->num_attention_heads, nkv = c->num_key_value_heads;
    const int64_t qd = nq * d, kvd = nkv * d;

    /* MLP: out = x_mid + down(silu(gate) * up) */
    memcpy(s->dmid, s->dx, (size_t)(T * h) * sizeof *s->dmid);
    ops_linear_dw(T, inter, h, s->dx, a->act, g->down_proj);
    ops_linear_dx(T, inter, h, s->dx, w->down_proj, s->dact, 0.0f);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < T * inter; i++) {
        const float x = a->gate[i], sg = ops_sigmoid(x);
        s->dup[i] = s->dact[i] * x * sg;
        s->dgate[i] = s->dact[i] * a->up[i] * sg * (1.0f + x * (1.0f - sg));
    }
    ops_linear_dw(T, h, inter, s->dgate, a->xn2, g->gate_proj);
    ops_linear_dw(T, h, inter, s->dup, a->xn2, g->up_proj);
    ops_linear_dx(T, h, inter, s->dgate, w->gate_proj, s->dxn, 0.0f);
    ops_linear_dx(T, h, inter, s->dup, w->up_proj, s->dxn, 1.0f);
    ops_rmsnorm_backward(T, h, a->x_mid, w->post_norm, a->rstd2, s->dxn, s->dmid, g->post_norm);

    /* Attention: x_mid = x + o_proj(attn) */
    memcpy(s->dx, s->dmid, (size_t)(T * h) * sizeof *s->dx);
    ops_linear_dw(T, qd, h, s->dmid, a->attn, g->o_proj);
    ops_linear_dx(T, qd, h, s->dmid, w->o_proj, s->dattn, 0.0f);
    attention_backward(c, acts, a, s->dattn, s->dq, s->dk, s->dv);
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; t++) {
        ops_rope_apply(&acts->rope, acts->positions[t], nq, s->dq + t * qd, 1);
        ops_rope_apply(&acts->rope, acts->positions[t], nkv, s->dk + t * kvd, 1);
    }
    memset(s->dq_raw, 0, (size_t)(T * qd) * sizeof *s->dq_raw);
    memset(s->dk_raw, 0, (size_t)(T * kvd) * sizeof *s->dk_raw);
    ops_rmsnorm_backward(T * nq, d, a->q_raw, w->q_norm, a->rstd_q, s->dq, s->dq_raw, g->q_norm);
    ops_rmsnorm_backward(T * nkv, d, a->k_raw, w->k_norm, a->rstd_k, s->dk, s->dk_raw,
                         g->k_norm);
    ops_linear_dw(T, h, qd, s->dq_raw, a->xn, g->q_proj);
    ops_linear_dw(T, h, kvd, s->dk_raw, a->xn, g->k_proj);
    ops_linear_dw(T, h, kvd, s->dv, a->xn, g->v_proj);
    ops_linear_dx(T, h, qd, s->dq_raw, w->q_proj, s->dxn, 0.0f);
    ops_linear_dx(T, h, kvd, s->dk_raw, w->k_proj, s->dxn, 1.0f);
    ops_linear_dx(T, h, kvd, s->dv, w->v_proj, s->dxn, 1.0f);
    ops_rmsnorm_backward(T, h, a->x, w->input_norm, a->rstd1, s->dxn, s->dx, g->input_norm);
}

int model_backward(const model *m, const model_acts *acts, const int32_t *targets,
                   const float *dlogp, const float *dentropy, model_weights *grads,
                   kpo_error *err)
{
    const model_config *c = &m->config;
    const int64_t T = acts->n_tokens, h = c->hidden_size;
    backward_scratch s;
    if (scratch_init(&s, c, T) != 0)
        return error_set(err, "out of memory for the backward pass of %lld tokens",
                         (long long)T);
    /* dxn doubles as dh: it is free until the last layer's MLP. */
    if (logprobs_backward(m, acts, targets, dlogp, dentropy, s.dxn, grads->lm_head, err) !=
        KPO_OK) {
        free(s.buffer);
        return KPO_ERR;
    }
    memset(s.dx, 0, (size_t)(T * h) * sizeof *s.dx);
    ops_rmsnorm_backward(T, h, acts->x_final, m->weights.final_norm, acts->rstd_final, s.dxn,
                         s.dx, grads->final_norm);
    for (int64_t l = c->num_hidden_layers - 1; l >= 0; l--)
        layer_backward(m, l, acts, &s, &grads->layers[l]);
    /* Serial scatter: repeated tokens add up in a fixed order. With tied
     * embeddings this lands on the same buffer lm_head's gradient did. */
    for (int64_t t = 0; t < T; t++) {
        float *row = grads->embed + (int64_t)acts->tokens[t] * h;
        for (int64_t j = 0; j < h; j++)
            row[j] += s.dx[t * h + j];
    }
    free(s.buffer);
    return KPO_OK;
}
