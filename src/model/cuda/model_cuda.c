/* The GPU model's lifetime, weights in and out, gradients and the AdamW
 * step (model_cuda.h). The forward/backward are model_cuda_train.c, one
 * layer model_cuda_layer.c, decoding model_cuda_decode.c. */
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "core/cuda_check.h"
#include "kpo_config.h"
#include "model/cuda/kernels_adamw.h"
#include "model/cuda/kernels_attention.h"
#include "model/cuda/kernels_convert.h"
#include "model/cuda/kernels_logprob.h"
#include "model/cuda/model_cuda_internal.h"

static const double GIB = 1024.0 * 1024.0 * 1024.0;

int gpu_alloc(void **ptr, size_t bytes, const char *what, kpo_error *err)
{
    *ptr = NULL;
    if (bytes == 0)
        return KPO_OK;
    const cudaError_t status = cudaMalloc(ptr, bytes);
    if (status != cudaSuccess) {
        *ptr = NULL;
        (void)cudaGetLastError(); /* an allocation failure is not sticky: clear it */
        return error_set(err, "gpu model: cudaMalloc of %s (%zu bytes, %.3f GiB) failed: %s",
                         what, bytes, (double)bytes / GIB, cudaGetErrorString(status));
    }
    return KPO_OK;
}

void gpu_free(void *ptr)
{
    if (ptr)
        cudaFree(ptr);
}

int gpu_buffer_reserve(gpu_buffer *b, size_t bytes, const char *what, kpo_error *err)
{
    if (bytes <= b->bytes)
        return KPO_OK;
    /* Queued work may still read the old buffer: let it finish first. */
    if (b->ptr && cuda_check(cudaDeviceSynchronize(), what, err) != KPO_OK)
        return KPO_ERR;
    gpu_buffer_free(b);
    if (gpu_alloc(&b->ptr, bytes, what, err) != KPO_OK)
        return KPO_ERR;
    b->bytes = bytes;
    return KPO_OK;
}

void gpu_buffer_free(gpu_buffer *b)
{
    gpu_free(b->ptr);
    b->ptr = NULL;
    b->bytes = 0;
}

int gpu_upload(gpu_model *g, void *dst, const void *src, size_t bytes, const char *what,
               kpo_error *err)
{
    if (bytes == 0)
        return KPO_OK;
    /* From pageable memory the call returns once src has been staged, so
     * the caller may reuse src at once. */
    return cuda_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice,
                                      (cudaStream_t)g->stream),
                      what, err);
}

int gpu_download(const gpu_model *g, void *dst, const void *src, size_t bytes, const char *what,
                 kpo_error *err)
{
    if (bytes == 0)
        return KPO_OK;
    if (cuda_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost,
                                   (cudaStream_t)g->stream),
                   what, err) != KPO_OK)
        return KPO_ERR;
    return cuda_check(cudaStreamSynchronize((cudaStream_t)g->stream), what, err);
}

int gpu_acts_reserve(gpu_model *g, gpu_acts *a, gpu_layer_acts **layers, gpu_buffer *arena,
                     int64_t T, gpu_acts_mode mode, const char *what, kpo_error *err)
{
    const model_config *c = &g->shape.config;
    if (a->capacity >= T && *layers && a->mode == mode)
        return KPO_OK;
    if (!*layers) {
        *layers = calloc((size_t)c->num_hidden_layers, sizeof **layers);
        if (!*layers)
            return error_set(err, "%s: out of host memory", what);
    }
    /* Wait for work still reading the old arena before it is freed. */
    if (cuda_check(cudaStreamSynchronize((cudaStream_t)g->stream), what, err) != KPO_OK)
        return KPO_ERR;
    a->layers = NULL;
    const size_t bytes = gpu_acts_layout(a, c, T, mode, NULL);
    a->capacity = 0;
    if (gpu_buffer_reserve(arena, bytes, what, err) != KPO_OK)
        return KPO_ERR;
    a->layers = *layers;
    gpu_acts_layout(a, c, T, mode, arena->ptr);
    return KPO_OK;
}

const gpu_memory_plan *gpu_model_memory_plan(const gpu_model *g) { return g ? &g->plan : NULL; }

/* The table's offsets of every tensor (pointer differences in the host
 * model, whose weights use the same layout), and whether q|k|v and
 * gate|up are adjacent so one GEMM can cover them. */
static int layout_from_model(gpu_model *g, const model *m, kpo_error *err)
{
    const model_config *c = &m->config;
    const float *base = m->weights.data;
    const int64_t h = c->hidden_size, qd = c->num_attention_heads * c->head_dim;
    const int64_t kvd = c->num_key_value_heads * c->head_dim, inter = c->intermediate_size;
    g->layer = calloc((size_t)c->num_hidden_layers, sizeof *g->layer);
    if (!g->layer)
        return error_set(err, "gpu model: out of host memory");
    g->fused_qkv = g->fused_gate_up = true;
    for (int64_t l = 0; l < c->num_hidden_layers; l++) {
        const model_layer *w = &m->weights.layers[l];
        gpu_layer_offsets *o = &g->layer[l];
        o->input_norm = w->input_norm - base;
        o->q_proj = w->q_proj - base;
        o->k_proj = w->k_proj - base;
        o->v_proj = w->v_proj - base;
        o->q_norm = w->q_norm - base;
        o->k_norm = w->k_norm - base;
        o->o_proj = w->o_proj - base;
        o->post_norm = w->post_norm - base;
        o->gate_proj = w->gate_proj - base;
        o->up_proj = w->up_proj - base;
        o->down_proj = w->down_proj - base;
        if (o->k_proj != o->q_proj + qd * h || o->v_proj != o->k_proj + kvd * h)
            g->fused_qkv = false;
        if (o->up_proj != o->gate_proj + inter * h)
            g->fused_gate_up = false;
    }
    g->embed = m->weights.embed - base;
    g->final_norm = m->weights.final_norm - base;
    g->lm_head = m->weights.lm_head - base;
    return KPO_OK;
}

/* The shape of `model` the device code needs: config and the parameter
 * table (gpu_adamw_step walks it), without a host copy of the weights. */
static int shape_from_model(gpu_model *g, const model *m, kpo_error *err)
{
    g->shape.config = m->config;
    g->shape.n_params_table = m->n_params_table;
    g->shape.params = malloc(m->n_params_table * sizeof *g->shape.params);
    if (!g->shape.params)
        return error_set(err, "gpu model: out of host memory");
    memcpy(g->shape.params, m->params, m->n_params_table * sizeof *g->shape.params);
    g->shape.weights.n_params = m->weights.n_params;
    g->n_params = m->weights.n_params;
    return KPO_OK;
}

/* The plan's workspace items from the kernels' own answers (the portable
 * plan can only estimate them), and the device's free memory. */
static int plan_measure(gpu_model *g, kpo_error *err)
{
    const model_config *c = &g->shape.config;
    const gpu_model_options *o = &g->opt;
    gpu_memory_plan *p = &g->plan;
    *p = gpu_model_plan(c, o);
    const int64_t T = o->max_tokens > 0 ? o->max_tokens : 1;
    const gpu_logprob_shape ls = {.rows = T, .hidden = c->hidden_size, .vocab = c->vocab_size,
                                  .chunk_rows = o->logprob_chunk > 0 ? o->logprob_chunk
                                                                     : GPU_MODEL_LOGPROB_CHUNK};
    p->logprob_scratch = gpu_logprob_workspace(&ls);
    p->workspace = GPU_MODEL_GEMM_WORKSPACE;
    if (o->train) {
        const gpu_attention_shape as = {.n_tokens = T, .n_seqs = 1, .seq_offsets = NULL,
                                        .max_seq_len = T,
                                        .heads = (int)c->num_attention_heads,
                                        .kv_heads = (int)c->num_key_value_heads,
                                        .head_dim = (int)c->head_dim};
        p->workspace += gpu_attention_backward_workspace(&as);
#if KPO_HAVE_CUDNN
        /* cuDNN's backward buffers (dQ accumulator, softmax sum, GQA's
         * per-head dK/dV) are known now; its plans' own workspace only once
         * built, so that part is reserved lazily and not counted. */
        if (o->attention == GPU_ATTENTION_CUDNN)
            p->workspace += attention_cudnn_bwd_layout_of(T, as.heads, as.kv_heads, as.head_dim)
                                .bytes;
#endif
    }
    p->total = p->weights_bf16 + p->master_fp32 + p->grads_fp32 + p->adam_fp32 +
               p->activations + p->layer_scratch + p->logprob_scratch + p->workspace;
    size_t free_b = 0, total_b = 0;
    if (cuda_check(cudaMemGetInfo(&free_b, &total_b), "gpu model: cudaMemGetInfo", err) !=
        KPO_OK)
        return KPO_ERR;
    p->device_free = free_b;
    p->device_total = total_b;
    gpu_memory_plan_kv(p, c, o); /* the KV cache gets what the rest leaves */
    return KPO_OK;
}

/* learner.recompute = auto: both plans on this device, then the rule
 * (gpu_memory_plan_skip_recompute). */
static int plan_choose_recompute(gpu_model *g, kpo_error *err)
{
    g->opt.recompute = true;
    TRY(plan_measure(g, err));
    const gpu_memory_plan with = g->plan;
    g->opt.recompute = false;
    TRY(plan_measure(g, err));
    if (gpu_memory_plan_skip_recompute(&with, &g->plan))
        return KPO_OK;
    g->opt.recompute = true;
    g->plan = with;
    return KPO_OK;
}

/* The plan for the device; fails, naming the shortfall, when it does not
 * fit the free memory. */
static int plan_for_device(gpu_model *g, kpo_error *err)
{
    if (g->opt.train && g->opt.recompute_auto)
        TRY(plan_choose_recompute(g, err));
    else
        TRY(plan_measure(g, err));
    const gpu_memory_plan *p = &g->plan;
    const gpu_model_options *o = &g->opt;
    const size_t free_b = p->device_free, total_b = p->device_total;
    if (p->total > free_b)
        return error_set(err,
                         "gpu model: the memory plan needs %.2f GiB (weights %.2f, optimizer "
                         "state %.2f, activations %.2f at %lld tokens, scratch %.2f) but %.2f "
                         "GiB of %.2f GiB are free: short by %.2f GiB (turn recompute on, or "
                         "lower max_tokens)",
                         (double)p->total / GIB,
                         (double)(p->weights_bf16 + p->master_fp32) / GIB,
                         (double)(p->grads_fp32 + p->adam_fp32) / GIB,
                         (double)p->activations / GIB, (long long)o->max_tokens,
                         (double)(p->layer_scratch + p->logprob_scratch + p->workspace) / GIB,
                         (double)free_b / GIB, (double)total_b / GIB,
                         (double)(p->total - free_b) / GIB);
    return KPO_OK;
}

static int alloc_params(gpu_model *g, kpo_error *err)
{
    const size_t n = (size_t)g->n_params;
    if (gpu_alloc((void **)&g->w16, n * 2, "the bf16 weights", err) != KPO_OK)
        return KPO_ERR;
    if (!g->opt.train)
        return KPO_OK;
    if (gpu_alloc((void **)&g->master, n * 4, "the fp32 master weights", err) != KPO_OK ||
        gpu_alloc((void **)&g->grads, n * 4, "the fp32 gradients", err) != KPO_OK ||
        gpu_alloc((void **)&g->adam_m, n * 4, "the AdamW first moments", err) != KPO_OK ||
        gpu_alloc((void **)&g->adam_v, n * 4, "the AdamW second moments", err) != KPO_OK)
        return KPO_ERR;
    cudaStream_t s = (cudaStream_t)g->stream;
    if (cuda_check(cudaMemsetAsync(g->grads, 0, n * 4, s), "gpu model: zero gradients", err) ||
        cuda_check(cudaMemsetAsync(g->adam_m, 0, n * 4, s), "gpu model: zero moments", err) ||
        cuda_check(cudaMemsetAsync(g->adam_v, 0, n * 4, s), "gpu model: zero moments", err))
        return KPO_ERR;
    return KPO_OK;
}

int gpu_model_create(gpu_model **out, const model *m, const gpu_model_options *o,
                     kpo_error *err)
{
    *out = NULL;
    if (!m || !o || !m->weights.data)
        return error_set(err, "gpu_model_create: no model or options");
    if (o->max_tokens < 0 || o->logprob_chunk < 0)
        return error_set(err, "gpu_model_create: max_tokens %lld and logprob_chunk %lld must "
                              "be >= 0",
                         (long long)o->max_tokens, (long long)o->logprob_chunk);
    if (model_config_validate(&m->config, "gpu_model_create", err) != KPO_OK)
        return KPO_ERR;
    /* A shape the attention kernels cannot run fails here, not mid-step. */
    const gpu_attention_shape probe = {.n_tokens = 1, .n_seqs = 1, .max_seq_len = 1,
                                       .heads = (int)m->config.num_attention_heads,
                                       .kv_heads = (int)m->config.num_key_value_heads,
                                       .head_dim = (int)m->config.head_dim};
    if (gpu_attention_check_shape(&probe, "gpu_model_create", err) != KPO_OK)
        return KPO_ERR;
    if (cuda_require_device(err) != KPO_OK)
        return KPO_ERR;
    gpu_model *g = calloc(1, sizeof *g);
    if (!g)
        return error_set(err, "gpu_model_create: out of host memory");
    g->opt = *o;
    if (g->opt.logprob_chunk == 0)
        g->opt.logprob_chunk = GPU_MODEL_LOGPROB_CHUNK;
    cudaStream_t stream = NULL;
    int rc = shape_from_model(g, m, err);
    if (rc == KPO_OK)
        rc = layout_from_model(g, m, err);
    if (rc == KPO_OK)
        rc = plan_for_device(g, err);
    if (rc == KPO_OK)
        rc = cuda_check(cudaStreamCreate(&stream), "gpu_model_create: cudaStreamCreate", err);
    g->stream = stream;
    if (rc == KPO_OK)
        rc = gemm_lt_create(&g->gemm, GPU_MODEL_GEMM_WORKSPACE, err);
    if (rc == KPO_OK)
        rc = alloc_params(g, err);
    if (rc == KPO_OK)
        rc = gpu_model_upload(g, m, err);
    if (rc != KPO_OK) {
        gpu_model_destroy(g);
        return KPO_ERR;
    }
    *out = g;
    return KPO_OK;
}

void gpu_model_destroy(gpu_model *g)
{
    if (!g)
        return;
    if (g->stream)
        cudaStreamSynchronize((cudaStream_t)g->stream);
    gpu_model_kv_cache_free(g); /* and the decoder's step buffers */
    gpu_buffer_free(&g->acts_arena);
    free(g->acts_layers);
    gpu_buffer_free(&g->attn_ws);
    attention_cudnn_destroy(g->cudnn);
    gpu_buffer_free(&g->logprob_ws);
    gpu_rope_table_free(&g->rope);
    gpu_embed_index_free(&g->embed_index);
    gpu_free(g->w16);
    gpu_free(g->master);
    gpu_free(g->grads);
    gpu_free(g->adam_m);
    gpu_free(g->adam_v);
    if (g->gemm)
        gemm_lt_destroy(g->gemm);
    if (g->stream)
        cudaStreamDestroy((cudaStream_t)g->stream);
    free(g->layer);
    free(g->shape.params);
    free(g);
}

static int same_shape(const gpu_model *g, const model *m, const char *what, kpo_error *err)
{
    const model_config *a = &g->shape.config, *b = &m->config;
    if (m->weights.n_params != g->n_params || a->vocab_size != b->vocab_size ||
        a->hidden_size != b->hidden_size || a->intermediate_size != b->intermediate_size ||
        a->num_hidden_layers != b->num_hidden_layers ||
        a->num_attention_heads != b->num_attention_heads ||
        a->num_key_value_heads != b->num_key_value_heads || a->head_dim != b->head_dim ||
        a->tie_word_embeddings != b->tie_word_embeddings)
        return error_set(err, "%s: the host model's shape (%lld parameters) differs from the "
                              "GPU model's (%lld)",
                         what, (long long)m->weights.n_params, (long long)g->n_params);
    return KPO_OK;
}

/* Without master weights, host fp32 goes through a device staging buffer
 * a chunk at a time into the bf16 copy (and back). */
enum { STAGING_FLOATS = 16 << 20 };

int gpu_model_upload(gpu_model *g, const model *m, kpo_error *err)
{
    if (same_shape(g, m, "gpu_model_upload", err) != KPO_OK)
        return KPO_ERR;
    const int64_t n = g->n_params;
    if (g->master) {
        if (gpu_upload(g, g->master, m->weights.data, (size_t)n * 4,
                       "gpu_model_upload: master weights", err) != KPO_OK)
            return KPO_ERR;
        return gpu_convert_f32_to_bf16(n, g->master, g->w16, g->stream, err);
    }
    float *staging = NULL;
    const int64_t chunk = n < STAGING_FLOATS ? n : STAGING_FLOATS;
    if (gpu_alloc((void **)&staging, (size_t)chunk * 4, "the upload staging buffer", err) !=
        KPO_OK)
        return KPO_ERR;
    int rc = KPO_OK;
    for (int64_t i = 0; rc == KPO_OK && i < n; i += chunk) {
        const int64_t k = n - i < chunk ? n - i : chunk;
        rc = gpu_upload(g, staging, m->weights.data + i, (size_t)k * 4,
                        "gpu_model_upload: weights", err);
        if (rc == KPO_OK)
            rc = gpu_convert_f32_to_bf16(k, staging, g->w16 + i, g->stream, err);
    }
    /* The staging buffer is freed only after the conversions read it. */
    if (rc == KPO_OK)
        rc = cuda_check(cudaStreamSynchronize((cudaStream_t)g->stream), "gpu_model_upload",
                        err);
    gpu_free(staging);
    return rc;
}

int gpu_model_download(const gpu_model *g, model *m, kpo_error *err)
{
    if (same_shape(g, m, "gpu_model_download", err) != KPO_OK)
        return KPO_ERR;
    const int64_t n = g->n_params;
    if (g->master)
        return gpu_download(g, m->weights.data, g->master, (size_t)n * 4,
                            "gpu_model_download: master weights", err);
    float *staging = NULL;
    const int64_t chunk = n < STAGING_FLOATS ? n : STAGING_FLOATS;
    if (gpu_alloc((void **)&staging, (size_t)chunk * 4, "the download staging buffer", err) !=
        KPO_OK)
        return KPO_ERR;
    int rc = KPO_OK;
    for (int64_t i = 0; rc == KPO_OK && i < n; i += chunk) {
        const int64_t k = n - i < chunk ? n - i : chunk;
        rc = gpu_convert_bf16_to_f32(k, g->w16 + i, staging, g->stream, err);
        if (rc == KPO_OK)
            rc = gpu_download(g, m->weights.data + i, staging, (size_t)k * 4,
                              "gpu_model_download: weights", err);
    }
    gpu_free(staging);
    return rc;
}

static int require_train(const gpu_model *g, const char *what, kpo_error *err)
{
    if (!g->opt.train)
        return error_set(err, "%s: the GPU model was created without train (no gradients or "
                              "optimizer state)",
                         what);
    return KPO_OK;
}

int gpu_model_optimizer_upload(gpu_model *g, const adamw_state *opt, kpo_error *err)
{
    if (require_train(g, "gpu_model_optimizer_upload", err) != KPO_OK)
        return KPO_ERR;
    if (opt->n_params != g->n_params || !opt->m || !opt->v)
        return error_set(err, "gpu_model_optimizer_upload: %lld moments for %lld parameters",
                         (long long)opt->n_params, (long long)g->n_params);
    const size_t bytes = (size_t)g->n_params * 4;
    if (gpu_upload(g, g->adam_m, opt->m, bytes, "gpu_model_optimizer_upload: m", err) ||
        gpu_upload(g, g->adam_v, opt->v, bytes, "gpu_model_optimizer_upload: v", err))
        return KPO_ERR;
    g->adam_step = opt->step;
    return KPO_OK;
}

int gpu_model_optimizer_download(const gpu_model *g, adamw_state *opt, kpo_error *err)
{
    if (require_train(g, "gpu_model_optimizer_download", err) != KPO_OK)
        return KPO_ERR;
    if (opt->n_params != g->n_params || !opt->m || !opt->v)
        return error_set(err, "gpu_model_optimizer_download: %lld moments for %lld parameters",
                         (long long)opt->n_params, (long long)g->n_params);
    const size_t bytes = (size_t)g->n_params * 4;
    if (gpu_download(g, opt->m, g->adam_m, bytes, "gpu_model_optimizer_download: m", err) ||
        gpu_download(g, opt->v, g->adam_v, bytes, "gpu_model_optimizer_download: v", err))
        return KPO_ERR;
    opt->step = g->adam_step;
    return KPO_OK;
}

int gpu_model_zero_grads(gpu_model *g, kpo_error *err)
{
    if (require_train(g, "gpu_model_zero_grads", err) != KPO_OK)
        return KPO_ERR;
    return cuda_check(cudaMemsetAsync(g->grads, 0, (size_t)g->n_params * 4,
                                      (cudaStream_t)g->stream),
                      "gpu_model_zero_grads", err);
}

float *gpu_model_grads(gpu_model *g, int64_t *n_params)
{
    *n_params = g && g->grads ? g->n_params : 0;
    return g ? g->grads : NULL;
}

int gpu_model_grads_download(const gpu_model *g, model_weights *grads, kpo_error *err)
{
    if (require_train(g, "gpu_model_grads_download", err) != KPO_OK)
        return KPO_ERR;
    if (grads->n_params != g->n_params)
        return error_set(err, "gpu_model_grads_download: buffer of %lld for %lld parameters",
                         (long long)grads->n_params, (long long)g->n_params);
    return gpu_download(g, grads->data, g->grads, (size_t)g->n_params * 4,
                        "gpu_model_grads_download", err);
}

uint16_t *gpu_model_bf16_weights(gpu_model *g, int64_t *n_params)
{
    *n_params = g ? g->n_params : 0;
    return g ? g->w16 : NULL;
}

int gpu_model_grad_norm(gpu_model *g, double *norm, kpo_error *err)
{
    if (require_train(g, "gpu_model_grad_norm", err) != KPO_OK)
        return KPO_ERR;
    return gpu_adamw_grad_norm(g->grads, g->n_params, norm, g->stream, err);
}

int gpu_model_adamw_step(gpu_model *g, double *grad_norm, kpo_error *err)
{
    if (require_train(g, "gpu_model_adamw_step", err) != KPO_OK)
        return KPO_ERR;
    return gpu_adamw_step(&g->opt.optim, &g->adam_step, &g->shape, g->master, g->w16, g->grads,
                          g->adam_m, g->adam_v, grad_norm, g->stream, err);
}

int64_t gpu_model_adamw_steps(const gpu_model *g) { return g ? g->adam_step : 0; }
