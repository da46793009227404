/* One decoder layer on the device, in the CPU model's order
 * (model_layer.c, model_backward.c) with bf16 activations as HF rounds
 * them. Attention itself is the caller's (training: packed causal; decode:
 * over the KV cache), between gpu_layer_forward_qkv and _rest. */
#include <stdio.h>

#include "model/cuda/kernels_norm.h"
#include "model/cuda/kernels_residual.h"
#include "model/cuda/kernels_swiglu.h"
#include "model/cuda/model_cuda_internal.h"


/* Gate and up as the SwiGLU kernels see them: interleaved per row
 * ([T, 2 I], gate then up) after the fused product, else two [T, I]
 * blocks. */
typedef struct gate_up_view {
    uint16_t *gate, *up;
    int64_t ld;
} gate_up_view;

static gate_up_view gate_up_of(const gpu_model *g, int64_t T, uint16_t *gate_up)
{
    const int64_t inter = g->shape.config.intermediate_size;
    gate_up_view v;
    v.gate = gate_up;
    v.up = g->fused_gate_up ? gate_up + inter : gate_up + T * inter;
    v.ld = g->fused_gate_up ? 2 * inter : inter;
    return v;
}

int gpu_layer_forward_qkv(gpu_model *g, int64_t l, int64_t T, const gpu_rope_table *rope,
                          const int32_t *positions, gpu_layer_acts *a, uint16_t *qkv,
                          kpo_error *err)
{
    const model_config *c = &g->shape.config;
    const gpu_layer_offsets *o = &g->layer[l];
    const int64_t h = c->hidden_size, d = c->head_dim;
    const int64_t nq = c->num_attention_heads, nkv = c->num_key_value_heads;
    const int64_t qd = nq * d, kvd = nkv * d, ld = qd + 2 * kvd;
    const float eps = (float)c->rms_norm_eps;
    void *s = g->stream;
    TRY(gpu_rmsnorm_forward(T, h, a->x, gpu_w(g, o->input_norm), eps, a->xn, a->rstd1, s, err));
    if (g->fused_qkv) {
        /* qkv [T, qd + 2 kvd] = xn [q_proj; k_proj; v_proj]^T, then split
         * into the contiguous tensors the norm and attention kernels read. */
        TRY(gemm_lt_linear(g->gemm, T, h, ld, a->xn, gpu_w(g, o->q_proj), qkv, s, err));
        TRY(gpu_columns_copy(T, qd, qkv, ld, a->q_raw, qd, s, err));
        TRY(gpu_columns_copy(T, kvd, qkv + qd, ld, a->k_raw, kvd, s, err));
        TRY(gpu_columns_copy(T, kvd, qkv + qd + kvd, ld, a->v, kvd, s, err));
    } else {
        TRY(gemm_lt_linear(g->gemm, T, h, qd, a->xn, gpu_w(g, o->q_proj), a->q_raw, s, err));
        TRY(gemm_lt_linear(g->gemm, T, h, kvd, a->xn, gpu_w(g, o->k_proj), a->k_raw, s, err));
        TRY(gemm_lt_linear(g->gemm, T, h, kvd, a->xn, gpu_w(g, o->v_proj), a->v, s, err));
    }
    /* QK-norm before RoPE (Qwen3), one RMSNorm per head vector. */
    TRY(gpu_rmsnorm_forward(T * nq, d, a->q_raw, gpu_w(g, o->q_norm), eps, a->q, a->rstd_q, s,
                            err));
    TRY(gpu_rmsnorm_forward(T * nkv, d, a->k_raw, gpu_w(g, o->k_norm), eps, a->k, a->rstd_k, s,
                            err));
    TRY(gpu_rope_apply(rope, T, nq, positions, a->q, 0, s, err));
    TRY(gpu_rope_apply(rope, T, nkv, positions, a->k, 0, s, err));
    return KPO_OK;
}

int gpu_layer_forward_rest(gpu_model *g, int64_t l, int64_t T, gpu_layer_acts *a,
                           uint16_t *x_out, kpo_error *err)
{
    const model_config *c = &g->shape.config;
    const gpu_layer_offsets *o = &g->layer[l];
    const int64_t h = c->hidden_size, inter = c->intermediate_size;
    const int64_t qd = c->num_attention_heads * c->head_dim;
    void *s = g->stream;
    /* x_mid = x + o_proj(attn) */
    TRY(gemm_lt_linear(g->gemm, T, qd, h, a->attn, gpu_w(g, o->o_proj), a->x_mid, s, err));
    TRY(gpu_residual_add(T * h, a->x_mid, a->x, a->x_mid, s, err));
    TRY(gpu_rmsnorm_forward(T, h, a->x_mid, gpu_w(g, o->post_norm), (float)c->rms_norm_eps,
                            a->xn2, a->rstd2, s, err));
    const gate_up_view gu = gate_up_of(g, T, a->gate_up);
    if (g->fused_gate_up) {
        TRY(gemm_lt_linear(g->gemm, T, h, 2 * inter, a->xn2, gpu_w(g, o->gate_proj), a->gate_up,
                           s, err));
    } else {
        TRY(gemm_lt_linear(g->gemm, T, h, inter, a->xn2, gpu_w(g, o->gate_proj), gu.gate, s,
                           err));
        TRY(gemm_lt_linear(g->gemm, T, h, inter, a->xn2, gpu_w(g, o->up_proj), gu.up, s, err));
    }
    TRY(gpu_swiglu_forward(T, inter, gu.ld, gu.gate, gu.up, a->act, s, err));
    if (!x_out)
        return KPO_OK;
    /* x_out = x_mid + down(act); x (maybe x_out) is no longer read. */
    TRY(gemm_lt_linear(g->gemm, T, inter, h, a->act, gpu_w(g, o->down_proj), x_out, s, err));
    TRY(gpu_residual_add(T * h, x_out, a->x_mid, x_out, s, err));
    return KPO_OK;
}

/* ---- Training attention: cuDNN or the kernels (model.attention) ---- */

/* cuDNN refused: say why once, run the kernels from now on. Nothing of
 * cuDNN's is needed after: its forward leaves out and lse exactly as the
 * kernel's would (same layout and meaning), so the kernel backward can
 * follow it. */
static void cudnn_give_up(gpu_model *g, const kpo_error *why)
{
    fprintf(stderr, "kpo: model.attention = cudnn: %s; using the attention kernel from now on\n",
            why->message);
    g->opt.attention = GPU_ATTENTION_KERNEL;
    attention_cudnn_destroy(g->cudnn);
    g->cudnn = NULL;
}

void gpu_attention_prepare(gpu_model *g, const gpu_attention_shape *s,
                           const int64_t *host_seq_offsets)
{
    if (g->opt.attention != GPU_ATTENTION_CUDNN)
        return;
    kpo_error why;
    if ((!g->cudnn && attention_cudnn_create(&g->cudnn, &why) != KPO_OK) ||
        attention_cudnn_set_batch(g->cudnn, s, host_seq_offsets, g->stream, &why) != KPO_OK)
        cudnn_give_up(g, &why);
}

/* The plan's workspace, reserved in the model's attention workspace (it
 * grows to the largest batch seen; the memory plan cannot count it, as
 * only a built plan knows its size). */
static int cudnn_workspace(gpu_model *g, const gpu_attention_shape *s, bool backward,
                           size_t *bytes, kpo_error *err)
{
    TRY(attention_cudnn_workspace(g->cudnn, s, backward, bytes, err));
    return gpu_buffer_reserve(&g->attn_ws, *bytes, "the cuDNN attention workspace", err);
}

int gpu_attention_run_forward(gpu_model *g, const gpu_attention_shape *s, gpu_layer_acts *a,
                              kpo_error *err)
{
    if (g->opt.attention == GPU_ATTENTION_CUDNN) {
        kpo_error why;
        size_t ws = 0;
        if (cudnn_workspace(g, s, false, &ws, &why) == KPO_OK &&
            attention_cudnn_forward(g->cudnn, s, a->q, a->k, a->v, a->attn, a->lse,
                                    g->attn_ws.ptr, ws, g->stream, &why) == KPO_OK)
            return KPO_OK;
        cudnn_give_up(g, &why);
    }
    return gpu_attention_forward(s, a->q, a->k, a->v, a->attn, a->lse, g->stream, err);
}

static int attention_backward(gpu_model *g, const gpu_attention_shape *s, gpu_layer_acts *a,
                              gpu_grad_scratch *d, kpo_error *err)
{
    if (g->opt.attention == GPU_ATTENTION_CUDNN) {
        kpo_error why;
        size_t ws = 0;
        if (cudnn_workspace(g, s, true, &ws, &why) == KPO_OK &&
            attention_cudnn_backward(g->cudnn, s, a->q, a->k, a->v, a->attn, d->dattn, a->lse,
                                     d->dq, d->dk, d->dv, g->attn_ws.ptr, ws, g->stream,
                                     &why) == KPO_OK)
            return KPO_OK;
        cudnn_give_up(g, &why);
    }
    gpu_buffer *ws = &g->attn_ws;
    TRY(gpu_buffer_reserve(ws, gpu_attention_backward_workspace(s),
                           "the attention backward workspace", err));
    return gpu_attention_backward(s, a->q, a->k, a->v, a->attn, d->dattn, a->lse, d->dq, d->dk,
                                  d->dv, ws->ptr, g->stream, err);
}

/* d(q_raw) | d(k_raw) | d(v) -> weight gradients of q/k/v_proj and
 * d(xn) (written). */
static int qkv_backward(gpu_model *g, const gpu_layer_offsets *o, int64_t T,
                        const gpu_layer_acts *a, const gpu_grad_scratch *d, uint16_t *qkv,
                        kpo_error *err)
{
    const model_config *c = &g->shape.config;
    const int64_t h = c->hidden_size;
    const int64_t qd = c->num_attention_heads * c->head_dim;
    const int64_t kvd = c->num_key_value_heads * c->head_dim, ld = qd + 2 * kvd;
    void *s = g->stream;
    if (g->fused_qkv) {
        /* The three gradients side by side: one dW over the concatenated
         * rows (their gradients are adjacent too) and one dX. */
        TRY(gpu_columns_copy(T, qd, d->dq, qd, qkv, ld, s, err));
        TRY(gpu_columns_copy(T, kvd, d->dk, kvd, qkv + qd, ld, s, err));
        TRY(gpu_columns_copy(T, kvd, d->dv, kvd, qkv + qd + kvd, ld, s, err));
        TRY(gemm_lt_linear_dw(g->gemm, T, h, ld, qkv, a->xn, gpu_g(g, o->q_proj), s, err));
        TRY(gemm_lt_linear_dx(g->gemm, T, h, ld, qkv, gpu_w(g, o->q_proj), d->dxn, 0.0f, s,
                              err));
        return KPO_OK;
    }
    TRY(gemm_lt_linear_dw(g->gemm, T, h, qd, d->dq, a->xn, gpu_g(g, o->q_proj), s, err));
    TRY(gemm_lt_linear_dw(g->gemm, T, h, kvd, d->dk, a->xn, gpu_g(g, o->k_proj), s, err));
    TRY(gemm_lt_linear_dw(g->gemm, T, h, kvd, d->dv, a->xn, gpu_g(g, o->v_proj), s, err));
    TRY(gemm_lt_linear_dx(g->gemm, T, h, qd, d->dq, gpu_w(g, o->q_proj), d->dxn, 0.0f, s, err));
    TRY(gemm_lt_linear_dx(g->gemm, T, h, kvd, d->dk, gpu_w(g, o->k_proj), d->dxn, 1.0f, s,
                          err));
    TRY(gemm_lt_linear_dx(g->gemm, T, h, kvd, d->dv, gpu_w(g, o->v_proj), d->dxn, 1.0f, s,
                          err));
    return KPO_OK;
}

int gpu_layer_backward(gpu_model *g, int64_t l, int64_t T, const gpu_attention_shape *shape,
                       gpu_layer_acts *a, gpu_grad_scratch *d, uint16_t *qkv, kpo_error *err)
{
    const model_config *c = &g->shape.config;
    const gpu_layer_offsets *o = &g->layer[l];
    const int64_t h = c->hidden_size, inter = c->intermediate_size, hd = c->head_dim;
    const int64_t nq = c->num_attention_heads, nkv = c->num_key_value_heads;
    const int64_t qd = nq * hd;
    void *s = g->stream;

    /* MLP: out = x_mid + down(silu(gate) * up); d->dres is d(out), and
     * becomes d(x_mid) in place when the post norm's dx is added to it. */
    TRY(gemm_lt_linear_dw(g->gemm, T, inter, h, d->dres, a->act, gpu_g(g, o->down_proj), s,
                          err));
    TRY(gemm_lt_linear_dx(g->gemm, T, inter, h, d->dres, gpu_w(g, o->down_proj), d->dact, 0.0f,
                          s, err));
    /* d(gate), d(up) into their own buffer (not over gate/up), so the
     * saved activations survive for another backward of the same forward. */
    const gate_up_view gu = gate_up_of(g, T, a->gate_up), dgu = gate_up_of(g, T, d->dgate_up);
    TRY(gpu_swiglu_backward(T, inter, gu.ld, gu.gate, gu.up, d->dact, dgu.gate, dgu.up, s, err));
    if (g->fused_gate_up) {
        TRY(gemm_lt_linear_dw(g->gemm, T, h, 2 * inter, d->dgate_up, a->xn2,
                              gpu_g(g, o->gate_proj), s, err));
        TRY(gemm_lt_linear_dx(g->gemm, T, h, 2 * inter, d->dgate_up, gpu_w(g, o->gate_proj),
                              d->dxn, 0.0f, s, err));
    } else {
        TRY(gemm_lt_linear_dw(g->gemm, T, h, inter, dgu.gate, a->xn2, gpu_g(g, o->gate_proj), s,
                              err));
        TRY(gemm_lt_linear_dw(g->gemm, T, h, inter, dgu.up, a->xn2, gpu_g(g, o->up_proj), s,
                              err));
        TRY(gemm_lt_linear_dx(g->gemm, T, h, inter, dgu.gate, gpu_w(g, o->gate_proj), d->dxn,
                              0.0f, s, err));
        TRY(gemm_lt_linear_dx(g->gemm, T, h, inter, dgu.up, gpu_w(g, o->up_proj), d->dxn, 1.0f,
                              s, err));
    }
    TRY(gpu_rmsnorm_backward(T, h, a->x_mid, gpu_w(g, o->post_norm), a->rstd2, d->dxn, d->dres,
                             1, gpu_g(g, o->post_norm), s, err));

    /* Attention: x_mid = x + o_proj(attn); d->dres becomes d(x) in place
     * when the input norm's dx is added. */
    TRY(gemm_lt_linear_dw(g->gemm, T, qd, h, d->dres, a->attn, gpu_g(g, o->o_proj), s, err));
    TRY(gemm_lt_linear_dx(g->gemm, T, qd, h, d->dres, gpu_w(g, o->o_proj), d->dattn, 0.0f, s,
                          err));
    TRY(attention_backward(g, shape, a, d, err));
    TRY(gpu_rope_apply(&g->rope, T, nq, g->acts.positions, d->dq, 1, s, err));
    TRY(gpu_rope_apply(&g->rope, T, nkv, g->acts.positions, d->dk, 1, s, err));
    /* d(q_raw), d(k_raw) in place over dq, dk: the norm backward sums dw
     * from dy before its dx overwrites it (kernels_norm.h). */
    TRY(gpu_rmsnorm_backward(T * nq, hd, a->q_raw, gpu_w(g, o->q_norm), a->rstd_q, d->dq, d->dq,
                             0, gpu_g(g, o->q_norm), s, err));
    TRY(gpu_rmsnorm_backward(T * nkv, hd, a->k_raw, gpu_w(g, o->k_norm), a->rstd_k, d->dk, d->dk,
                             0, gpu_g(g, o->k_norm), s, err));
    TRY(qkv_backward(g, o, T, a, d, qkv, err));
    TRY(gpu_rmsnorm_backward(T, h, a->x, gpu_w(g, o->input_norm), a->rstd1, d->dxn, d->dres, 1,
                             gpu_g(g, o->input_norm), s, err));
    return KPO_OK;
}
