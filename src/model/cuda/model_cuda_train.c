/* The training forward and backward of a packed batch on the device
 * (model_forward.c, model_logprobs.c, model_backward.c in bf16). With
 * options.recompute the forward keeps each layer's input only and the
 * backward re-runs each layer's forward (the same kernels on the same
 * inputs, so the same bits) into one layer's scratch before its backward. */
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "core/cuda_check.h"
#include "model/cuda/kernels_embed.h"
#include "model/cuda/kernels_logprob.h"
#include "model/cuda/kernels_norm.h"
#include "model/cuda/model_cuda_internal.h"


static gpu_acts_mode train_mode(const gpu_model *g)
{
    if (!g->opt.train)
        return GPU_ACTS_FORWARD;
    return g->opt.recompute ? GPU_ACTS_RECOMPUTE : GPU_ACTS_SAVE_ALL;
}

static gpu_attention_shape attention_shape(const gpu_model *g)
{
    const model_config *c = &g->shape.config;
    gpu_attention_shape s = {.n_tokens = g->n_tokens, .n_seqs = g->n_seqs,
                             .seq_offsets = g->acts.seq_offsets, .max_seq_len = g->max_seq_len,
                             .heads = (int)c->num_attention_heads,
                             .kv_heads = (int)c->num_key_value_heads,
                             .head_dim = (int)c->head_dim};
    return s;
}

static gpu_logprob_shape logprob_shape(const gpu_model *g)
{
    const model_config *c = &g->shape.config;
    gpu_logprob_shape s = {.rows = g->n_tokens, .hidden = c->hidden_size,
                           .vocab = c->vocab_size, .chunk_rows = g->opt.logprob_chunk};
    return s;
}

/* Positions restarting per sequence (host), the longest sequence, and a
 * RoPE table covering it. */
static int prepare_positions(gpu_model *g, const model_batch *b, int32_t *positions,
                             kpo_error *err)
{
    int64_t longest = 0;
    for (int64_t s = 0; s < b->n_seqs; s++) {
        const int64_t start = b->seq_offsets[s], len = b->seq_offsets[s + 1] - start;
        if (len > longest)
            longest = len;
        for (int64_t t = start; t < start + len; t++)
            positions[t] = (int32_t)(t - start);
    }
    g->max_seq_len = longest;
    if (longest > g->rope.n_positions) {
        /* Queued kernels may still read the old table. */
        TRY(cuda_check(cudaStreamSynchronize((cudaStream_t)g->stream), "gpu_model_forward",
                       err));
        gpu_rope_table_free(&g->rope);
        TRY(gpu_rope_table_create(&g->rope, longest, g->shape.config.head_dim,
                                  g->shape.config.rope_theta, err));
    }
    return KPO_OK;
}

static int check_targets(const gpu_model *g, const model_batch *b, const int32_t *targets,
                         kpo_error *err)
{
    for (int64_t t = 0; t < b->n_tokens; t++)
        if (targets[t] >= g->shape.config.vocab_size)
            return error_set(err, "batch: token %lld: target id %d is out of range [0, %lld)",
                             (long long)t, (int)targets[t],
                             (long long)g->shape.config.vocab_size);
    return KPO_OK;
}

/* The inputs' host -> device copies. */
static int upload_batch(gpu_model *g, const model_batch *b, const int32_t *targets,
                        kpo_error *err)
{
    const gpu_acts *a = &g->acts;
    const int64_t T = b->n_tokens;
    int32_t *positions = malloc((size_t)T * sizeof *positions);
    if (!positions)
        return error_set(err, "gpu_model_forward: out of host memory");
    int rc = prepare_positions(g, b, positions, err);
    if (rc == KPO_OK)
        rc = gpu_upload(g, a->positions, positions, (size_t)T * 4, "gpu_model_forward: positions",
                        err);
    free(positions);
    TRY(rc);
    TRY(gpu_upload(g, a->tokens, b->tokens, (size_t)T * 4, "gpu_model_forward: tokens", err));
    TRY(gpu_upload(g, a->targets, targets, (size_t)T * 4, "gpu_model_forward: targets", err));
    TRY(gpu_upload(g, a->seq_offsets, b->seq_offsets, (size_t)(b->n_seqs + 1) * 8,
                   "gpu_model_forward: sequence offsets", err));
    /* The embedding's backward sums each token's rows: index them now,
     * while the host tokens are at hand. */
    if (g->opt.train)
        TRY(gpu_embed_index_build(&g->embed_index, b->tokens, T, g->stream, err));
    return KPO_OK;
}

/* Layer l's full forward from its input, into a (attention on the packed
 * batch); x_out NULL stops at the MLP activation (recompute). */
static int layer_forward(gpu_model *g, int64_t l, uint16_t *x_out, kpo_error *err)
{
    gpu_acts *acts = &g->acts;
    gpu_layer_acts *a = &acts->layers[l];
    const gpu_attention_shape shape = attention_shape(g);
    TRY(gpu_layer_forward_qkv(g, l, g->n_tokens, &g->rope, acts->positions, a, acts->qkv, err));
    TRY(gpu_attention_run_forward(g, &shape, a, err));
    return gpu_layer_forward_rest(g, l, g->n_tokens, a, x_out, err);
}

/* The forward up to the log-prob head's outputs, which stay on the
 * device (a->logp, a->entropy). `who` names the caller in errors. */
static int forward_run(gpu_model *g, const model_batch *batch, const int32_t *targets,
                       const char *who, kpo_error *err)
{
    if (!g || !batch || !targets)
        return error_set(err, "%s: missing argument", who);
    TRY(model_batch_validate(&g->shape, batch, err));
    TRY(check_targets(g, batch, targets, err));
    const model_config *c = &g->shape.config;
    const int64_t T = batch->n_tokens, h = c->hidden_size, L = c->num_hidden_layers;
    g->have_forward = false;
    TRY(gpu_acts_reserve(g, &g->acts, &g->acts_layers, &g->acts_arena, T, train_mode(g),
                         "the training activations", err));
    g->n_tokens = T;
    g->n_seqs = batch->n_seqs;
    TRY(upload_batch(g, batch, targets, err));
    /* cuDNN's per-batch arrays come from the host offsets (model.attention). */
    const gpu_attention_shape shape = attention_shape(g);
    gpu_attention_prepare(g, &shape, batch->seq_offsets);
    gpu_acts *a = &g->acts;
    void *s = g->stream;
    TRY(gpu_embed_forward(T, h, a->tokens, gpu_w(g, g->embed), a->layers[0].x, s, err));
    for (int64_t l = 0; l < L; l++)
        TRY(layer_forward(g, l, l + 1 < L ? a->layers[l + 1].x : a->x_final, err));
    TRY(gpu_rmsnorm_forward(T, h, a->x_final, gpu_w(g, g->final_norm), (float)c->rms_norm_eps,
                            a->h, a->rstd_final, s, err));
    const gpu_logprob_shape ls = logprob_shape(g);
    TRY(gpu_buffer_reserve(&g->logprob_ws, gpu_logprob_workspace(&ls),
                           "the log-prob workspace", err));
    return gpu_logprob_forward(g->gemm, &ls, a->h, gpu_w(g, g->lm_head), a->targets, a->logp,
                               a->entropy, a->lse, g->logprob_ws.ptr, s, err);
}

int gpu_model_forward(gpu_model *g, const model_batch *batch, const int32_t *targets,
                      float *logp, float *entropy, kpo_error *err)
{
    if (!logp || !entropy)
        return error_set(err, "gpu_model_forward: missing argument");
    TRY(forward_run(g, batch, targets, "gpu_model_forward", err));
    const int64_t T = g->n_tokens;
    TRY(gpu_download(g, logp, g->acts.logp, (size_t)T * 4, "gpu_model_forward: log-probs", err));
    TRY(gpu_download(g, entropy, g->acts.entropy, (size_t)T * 4, "gpu_model_forward: entropies",
                     err));
    g->have_forward = true;
    return KPO_OK;
}

int gpu_model_forward_device(gpu_model *g, const model_batch *batch, const int32_t *targets,
                             gpu_model_head *head, kpo_error *err)
{
    if (!head)
        return error_set(err, "gpu_model_forward_device: missing argument");
    memset(head, 0, sizeof *head);
    TRY(forward_run(g, batch, targets, "gpu_model_forward_device", err));
    gpu_acts *a = &g->acts;
    head->logp = a->logp;
    head->entropy = a->entropy;
    /* The inference layout has no gradient buffers; backward refuses it. */
    head->dlogp = g->opt.train ? a->dlogp : NULL;
    head->dentropy = g->opt.train ? a->dentropy : NULL;
    head->n_tokens = g->n_tokens;
    head->stream = g->stream;
    g->have_forward = true;
    return KPO_OK;
}

/* The backward from a->dlogp (and a->dentropy) on the device. */
static int backward_run(gpu_model *g, bool with_dentropy, const char *who, kpo_error *err)
{
    if (!g)
        return error_set(err, "%s: missing argument", who);
    if (!g->opt.train)
        return error_set(err, "%s: the GPU model was created without train", who);
    if (!g->have_forward)
        return error_set(err, "%s: no forward to differentiate (call the forward first)", who);
    const model_config *c = &g->shape.config;
    const int64_t T = g->n_tokens, h = c->hidden_size;
    gpu_acts *a = &g->acts;
    gpu_grad_scratch *d = &a->grad;
    void *s = g->stream;
    /* d(final norm output) into dxn: free until the last layer's MLP. With
     * tied embeddings d(lm_head) lands on the embedding's gradient. */
    const gpu_logprob_shape ls = logprob_shape(g);
    TRY(gpu_logprob_backward(g->gemm, &ls, a->h, gpu_w(g, g->lm_head), a->targets, a->lse,
                             a->entropy, a->dlogp, with_dentropy ? a->dentropy : NULL, d->dxn,
                             gpu_g(g, g->lm_head), g->logprob_ws.ptr, s, err));
    TRY(gpu_rmsnorm_backward(T, h, a->x_final, gpu_w(g, g->final_norm), a->rstd_final, d->dxn,
                             d->dres, 0, gpu_g(g, g->final_norm), s, err));
    const gpu_attention_shape shape = attention_shape(g);
    for (int64_t l = c->num_hidden_layers - 1; l >= 0; l--) {
        if (a->mode == GPU_ACTS_RECOMPUTE)
            TRY(layer_forward(g, l, NULL, err));
        TRY(gpu_layer_backward(g, l, T, &shape, &a->layers[l], d, a->qkv, err));
    }
    /* d(embedding) += each token's rows of d(layer 0 input), in row order. */
    TRY(gpu_embed_backward(&g->embed_index, h, d->dres, gpu_g(g, g->embed), s, err));
    /* Report faults of this backward here, not at some later call. */
    return cuda_check(cudaStreamSynchronize((cudaStream_t)s), who, err);
}

int gpu_model_backward(gpu_model *g, const float *dlogp, const float *dentropy, kpo_error *err)
{
    if (!g || !dlogp)
        return error_set(err, "gpu_model_backward: missing argument");
    if (!g->opt.train || !g->have_forward) /* backward_run says which */
        return backward_run(g, false, "gpu_model_backward", err);
    gpu_acts *a = &g->acts;
    const size_t bytes = (size_t)g->n_tokens * 4;
    TRY(gpu_upload(g, a->dlogp, dlogp, bytes, "gpu_model_backward: dlogp", err));
    if (dentropy)
        TRY(gpu_upload(g, a->dentropy, dentropy, bytes, "gpu_model_backward: dentropy", err));
    return backward_run(g, dentropy != NULL, "gpu_model_backward", err);
}

int gpu_model_backward_device(gpu_model *g, bool with_dentropy, kpo_error *err)
{
    return backward_run(g, with_dentropy, "gpu_model_backward_device", err);
}
