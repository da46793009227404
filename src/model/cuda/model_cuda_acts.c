/* The activation arena's layout (model_cuda_acts.h). One walk serves both
 * the allocator and the memory plan, so the plan counts exactly what the
 * forward keeps. Every tensor starts 256-byte aligned: cuBLASLt picks its
 * fastest kernels for aligned operands (and caches plans per alignment). */
#include <string.h>

#include "model/cuda/model_cuda_acts.h"

enum { ACTS_ALIGN = 256 };

typedef struct acts_cursor {
    char *base;    /* NULL: counting only */
    size_t offset; /* bytes taken so far */
} acts_cursor;

static void *acts_take(acts_cursor *cur, int64_t count, size_t elem)
{
    const size_t bytes = (size_t)count * elem;
    const size_t at = cur->offset;
    cur->offset += (bytes + ACTS_ALIGN - 1) / ACTS_ALIGN * ACTS_ALIGN;
    return cur->base ? cur->base + at : NULL;
}

#define TAKE16(cur, n) ((uint16_t *)acts_take((cur), (n), sizeof(uint16_t)))
#define TAKE32(cur, n) ((float *)acts_take((cur), (n), sizeof(float)))

/* Everything of one layer except its input x. */
static void layer_take_rest(acts_cursor *cur, const model_config *c, int64_t T,
                            gpu_layer_acts *l)
{
    const int64_t h = c->hidden_size, nq = c->num_attention_heads;
    const int64_t nkv = c->num_key_value_heads, d = c->head_dim, i = c->intermediate_size;
    l->rstd1 = TAKE32(cur, T);
    l->xn = TAKE16(cur, T * h);
    l->q_raw = TAKE16(cur, T * nq * d);
    l->k_raw = TAKE16(cur, T * nkv * d);
    l->rstd_q = TAKE32(cur, T * nq);
    l->rstd_k = TAKE32(cur, T * nkv);
    l->q = TAKE16(cur, T * nq * d);
    l->k = TAKE16(cur, T * nkv * d);
    l->v = TAKE16(cur, T * nkv * d);
    l->attn = TAKE16(cur, T * nq * d);
    l->lse = TAKE32(cur, T * nq);
    l->x_mid = TAKE16(cur, T * h);
    l->rstd2 = TAKE32(cur, T);
    l->xn2 = TAKE16(cur, T * h);
    l->gate_up = TAKE16(cur, T * 2 * i);
    l->act = TAKE16(cur, T * i);
}

size_t gpu_acts_layout(gpu_acts *a, const model_config *c, int64_t T, gpu_acts_mode mode,
                       void *base)
{
    gpu_layer_acts *layers = a->layers;
    memset(a, 0, sizeof *a);
    a->layers = layers;
    a->capacity = T;
    a->mode = mode;
    const int64_t L = c->num_hidden_layers, h = c->hidden_size, i = c->intermediate_size;
    const int64_t qd = c->num_attention_heads * c->head_dim;
    const int64_t kvd = c->num_key_value_heads * c->head_dim;
    acts_cursor cur = {.base = base, .offset = 0};
    gpu_layer_acts shared = {0}, one;

    /* Saved: what survives from forward to backward. */
    for (int64_t l = 0; l < L; l++) {
        memset(&one, 0, sizeof one);
        if (mode == GPU_ACTS_FORWARD && l > 0)
            one.x = layers ? layers[0].x : NULL; /* one residual stream, in place */
        else
            one.x = TAKE16(&cur, T * h);
        if (mode == GPU_ACTS_SAVE_ALL)
            layer_take_rest(&cur, c, T, &one);
        if (layers)
            layers[l] = one;
    }
    a->x_final = mode == GPU_ACTS_FORWARD ? (layers ? layers[0].x : NULL) : TAKE16(&cur, T * h);
    a->rstd_final = TAKE32(&cur, T);
    a->h = TAKE16(&cur, T * h);
    a->logp = TAKE32(&cur, T);
    a->entropy = TAKE32(&cur, T);
    a->lse = TAKE32(&cur, T);
    a->tokens = (int32_t *)acts_take(&cur, T, sizeof(int32_t));
    a->targets = (int32_t *)acts_take(&cur, T, sizeof(int32_t));
    a->positions = (int32_t *)acts_take(&cur, T, sizeof(int32_t));
    a->seq_offsets = (int64_t *)acts_take(&cur, T + 1, sizeof(int64_t));
    if (mode != GPU_ACTS_FORWARD) {
        a->dlogp = TAKE32(&cur, T);
        a->dentropy = TAKE32(&cur, T);
    }
    a->saved_bytes = cur.offset;

    /* Scratch: one layer's working set (recomputed in backward) and the
     * gradient buffers of one layer at a time. */
    if (mode != GPU_ACTS_SAVE_ALL) {
        layer_take_rest(&cur, c, T, &shared);
        for (int64_t l = 0; layers && l < L; l++) {
            uint16_t *x = layers[l].x;
            layers[l] = shared;
            layers[l].x = x;
        }
    }
    a->qkv = TAKE16(&cur, T * (qd + 2 * kvd));
    if (mode != GPU_ACTS_FORWARD) {
        a->grad.dres = TAKE16(&cur, T * h);
        a->grad.dxn = TAKE16(&cur, T * h);
        a->grad.dact = TAKE16(&cur, T * i);
        a->grad.dgate_up = TAKE16(&cur, T * 2 * i);
        a->grad.dattn = TAKE16(&cur, T * qd);
        a->grad.dq = TAKE16(&cur, T * qd);
        a->grad.dk = TAKE16(&cur, T * kvd);
        a->grad.dv = TAKE16(&cur, T * kvd);
    }
    a->scratch_bytes = cur.offset - a->saved_bytes;
    return cur.offset;
}
