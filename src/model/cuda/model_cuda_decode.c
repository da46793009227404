/* Batched incremental decoding on the device (model_decode.c's contract)
 * over a bf16 KV cache, and sampling from the last step's logits. A
 * prefill is a step with whole prompts; positions continue from each
 * slot's cached length. With model.decode_graphs, pure decode steps replay
 * a CUDA graph of their device work (model_cuda_decode_graph.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "core/cuda_check.h"
#include "model/cuda/decode_step_plan.h"
#include "model/cuda/kernels_attention_decode_split.h"
#include "model/cuda/kernels_embed.h"
#include "model/cuda/kernels_norm.h"
#include "model/cuda/kernels_residual.h"
#include "model/cuda/kernels_sample.h"
#include "model/cuda/model_cuda_decode_step.h"
#include "model/cuda/model_cuda_internal.h"


/* The split decode attention's workspace at its largest for contexts up
 * to max_len (0 with the block kernel, which needs none). */
static size_t split_workspace_bytes(const gpu_model *g, int64_t max_len)
{
    const model_config *c = &g->shape.config;
    if (g->opt.decode_attention != GPU_DECODE_ATTENTION_SPLIT)
        return 0;
    return gpu_attention_decode_split_workspace_max((int)c->num_attention_heads,
                                                    (int)c->num_key_value_heads, (int)c->head_dim,
                                                    max_len, 0);
}

/* Device bytes decoding needs besides what exists now: per slot its cache
 * and step buffers, the activations of the largest step (allocated at the
 * first step, after the cache) (gpu_decode_bytes), and whatever the
 * sampler and the split attention take for up to `wanted` sequences. */
int64_t gpu_model_kv_slots_fit(const gpu_model *g, int64_t wanted, int64_t max_len,
                               int64_t prefill_tokens, int64_t prefill_budget, size_t reserve)
{
    size_t free_b = 0, total_b = 0;
    if (!g || wanted < 1 || max_len < 1 || prefill_tokens < 0 ||
        cudaMemGetInfo(&free_b, &total_b) != cudaSuccess || free_b <= reserve)
        return 0;
    const model_config *c = &g->shape.config;
    const size_t extra = gpu_sample_workspace(wanted, c->vocab_size) +
                         split_workspace_bytes(g, max_len);
    return gpu_decode_slots_within(c, wanted, max_len, prefill_tokens, prefill_budget, extra,
                                   free_b - reserve);
}

static void free_seq_buffers(gpu_decode_state *d)
{
    gpu_free(d->query_offsets);
    gpu_free(d->rest_offsets);
    gpu_free(d->slots);
    gpu_free(d->start_positions);
    gpu_free(d->last_rows);
    gpu_free(d->last);
    gpu_free(d->logits);
    gpu_free(d->streams);
    gpu_free(d->sampled);
    d->query_offsets = d->rest_offsets = d->slots = d->start_positions = NULL;
    d->last_rows = d->sampled = NULL;
    d->last = NULL;
    d->logits = NULL;
    d->streams = NULL;
    d->seq_capacity = d->n_logits = 0;
}

void gpu_model_kv_cache_free(gpu_model *g)
{
    if (!g)
        return;
    gpu_decode_state *d = &g->dec;
    if (g->stream)
        cudaStreamSynchronize((cudaStream_t)g->stream);
    decode_graphs_destroy(d);
    gpu_free(d->k_cache);
    gpu_free(d->v_cache);
    free(d->lengths);
    gpu_rope_table_free(&d->rope);
    gpu_buffer_free(&d->acts_arena);
    free(d->acts_layers);
    gpu_buffer_free(&d->sample_ws);
    gpu_buffer_free(&d->split_ws);
    free_seq_buffers(d);
    memset(d, 0, sizeof *d);
}

int gpu_model_kv_cache_init(gpu_model *g, int64_t n_slots, int64_t max_len, kpo_error *err)
{
    if (!g)
        return error_set(err, "kv cache: no GPU model");
    gpu_model_kv_cache_free(g);
    const model_config *c = &g->shape.config;
    if (n_slots < 1 || max_len < 1)
        return error_set(err, "kv cache: need at least one slot and one position");
    gpu_decode_state *d = &g->dec;
    const size_t half = gpu_decode_kv_bytes(c, n_slots, max_len) / 2;
    char what[128];
    snprintf(what, sizeof what, "the KV cache's K (%lld slots x %lld positions)",
             (long long)n_slots, (long long)max_len);
    int rc = gpu_alloc((void **)&d->k_cache, half, what, err);
    if (rc == KPO_OK) {
        snprintf(what, sizeof what, "the KV cache's V (%lld slots x %lld positions)",
                 (long long)n_slots, (long long)max_len);
        rc = gpu_alloc((void **)&d->v_cache, half, what, err);
    }
    if (rc == KPO_OK) {
        d->lengths = calloc((size_t)n_slots, sizeof *d->lengths);
        if (!d->lengths)
            rc = error_set(err, "kv cache: out of host memory");
    }
    if (rc == KPO_OK)
        rc = gpu_rope_table_create(&d->rope, max_len, c->head_dim, c->rope_theta, err);
    if (rc != KPO_OK) {
        gpu_model_kv_cache_free(g);
        return KPO_ERR;
    }
    d->n_slots = n_slots;
    d->max_len = max_len;
    return KPO_OK;
}

void gpu_model_kv_cache_reset(gpu_model *g)
{
    if (g && g->dec.lengths)
        memset(g->dec.lengths, 0, (size_t)g->dec.n_slots * sizeof *g->dec.lengths);
}

int gpu_model_kv_cache_release(gpu_model *g, int64_t n, const int64_t *slots, kpo_error *err)
{
    if (!g || !g->dec.lengths)
        return error_set(err, "kv cache release: no KV cache");
    return model_decode_release(g->dec.n_slots, g->dec.lengths, n, slots, err);
}

static int reserve_seqs(gpu_model *g, int64_t n, kpo_error *err)
{
    gpu_decode_state *d = &g->dec;
    if (n <= d->seq_capacity)
        return KPO_OK;
    d->graph_generation++; /* graphs captured so far use the buffers freed below */
    TRY(cuda_check(cudaStreamSynchronize((cudaStream_t)g->stream), "decode", err));
    free_seq_buffers(d);
    const model_config *c = &g->shape.config;
    const size_t un = (size_t)n;
    if (gpu_alloc((void **)&d->query_offsets, (un + 1) * 8, "decode query offsets", err) ||
        gpu_alloc((void **)&d->rest_offsets, (un + 1) * 8, "decode rest offsets", err) ||
        gpu_alloc((void **)&d->slots, un * 8, "decode slots", err) ||
        gpu_alloc((void **)&d->start_positions, un * 8, "decode start positions", err) ||
        gpu_alloc((void **)&d->last_rows, un * 4, "decode last rows", err) ||
        gpu_alloc((void **)&d->last, un * (size_t)c->hidden_size * 2, "decode last hidden",
                  err) ||
        gpu_alloc((void **)&d->logits, un * (size_t)c->vocab_size * 4, "decode logits (fp32)",
                  err) ||
        gpu_alloc((void **)&d->streams, un * sizeof(gpu_sample_stream), "sampling streams",
                  err) ||
        gpu_alloc((void **)&d->sampled, un * 4, "sampled tokens", err)) {
        free_seq_buffers(d);
        return KPO_ERR;
    }
    d->seq_capacity = n;
    return KPO_OK;
}

/* Host-side step description: positions, offsets, last rows (uploaded),
 * and how its attention divides (plan; with a flash prefix and sequences
 * after it, their rebased offsets go up too). */
static int upload_step(gpu_model *g, int64_t n_seqs, const int64_t *slots, const int64_t *n_new,
                       const int32_t *tokens, int64_t T, decode_step_plan *plan, kpo_error *err)
{
    gpu_decode_state *d = &g->dec;
    int32_t *positions = malloc((size_t)T * sizeof *positions);
    int64_t *offsets = malloc((size_t)(n_seqs + 1) * sizeof *offsets);
    int64_t *rest = malloc((size_t)(n_seqs + 1) * sizeof *rest);
    int64_t *starts = malloc((size_t)n_seqs * sizeof *starts);
    int32_t *last = malloc((size_t)n_seqs * sizeof *last);
    int rc = KPO_OK;
    if (!positions || !offsets || !rest || !starts || !last)
        rc = error_set(err, "decode: out of host memory for %lld tokens", (long long)T);
    for (int64_t i = 0, t = 0; rc == KPO_OK && i < n_seqs; i++) {
        offsets[i] = t;
        starts[i] = d->lengths[slots[i]];
        for (int64_t j = 0; j < n_new[i]; j++, t++)
            positions[t] = (int32_t)(starts[i] + j);
        last[i] = (int32_t)(t - 1);
        offsets[i + 1] = t;
    }
    if (rc == KPO_OK)
        *plan = decode_step_plan_make(n_seqs, starts, n_new,
                                      g->opt.prefill_attention == GPU_PREFILL_ATTENTION_FLASH);
    const gpu_acts *a = &d->acts;
    if (rc == KPO_OK)
        rc = gpu_upload(g, a->positions, positions, (size_t)T * 4, "decode: positions", err);
    if (rc == KPO_OK)
        rc = gpu_upload(g, a->tokens, tokens, (size_t)T * 4, "decode: tokens", err);
    if (rc == KPO_OK)
        rc = gpu_upload(g, d->query_offsets, offsets, (size_t)(n_seqs + 1) * 8,
                        "decode: query offsets", err);
    if (rc == KPO_OK && plan->n_fresh > 0 && plan->n_fresh < n_seqs) {
        decode_step_rest_offsets(plan, n_seqs, offsets, rest);
        rc = gpu_upload(g, d->rest_offsets, rest, (size_t)(n_seqs - plan->n_fresh + 1) * 8,
                        "decode: rest offsets", err);
    }
    if (rc == KPO_OK)
        rc = gpu_upload(g, d->slots, slots, (size_t)n_seqs * 8, "decode: slots", err);
    if (rc == KPO_OK)
        rc = gpu_upload(g, d->start_positions, starts, (size_t)n_seqs * 8,
                        "decode: start positions", err);
    if (rc == KPO_OK)
        rc = gpu_upload(g, d->last_rows, last, (size_t)n_seqs * 4, "decode: last rows", err);
    free(positions);
    free(offsets);
    free(rest);
    free(starts);
    free(last);
    return rc;
}

/* all: the whole step (what the KV-cache write takes); rest_offsets:
 * device, uploaded by upload_step when the plan has a fresh prefix. */
static step_attention step_attention_make(const gpu_decode_shape *all, const decode_step_plan *p,
                                          const int64_t *rest_offsets)
{
    step_attention sa;
    memset(&sa, 0, sizeof sa);
    sa.fresh = (gpu_attention_shape){.n_tokens = p->fresh_tokens, .n_seqs = p->n_fresh,
                                     .seq_offsets = all->query_offsets,
                                     .max_seq_len = p->fresh_max_len, .heads = all->heads,
                                     .kv_heads = all->kv_heads, .head_dim = all->head_dim};
    sa.rest = *all;
    sa.rest.n_queries = all->n_queries - p->fresh_tokens;
    sa.rest.n_seqs = all->n_seqs - p->n_fresh;
    if (p->n_fresh > 0) {
        sa.rest.query_offsets = rest_offsets;
        sa.rest.slots = all->slots + p->n_fresh;
        sa.rest.start_positions = all->start_positions + p->n_fresh;
    }
    sa.rest.max_new = p->rest_max_new;
    sa.rest.max_context = p->rest_max_context;
    return sa;
}

/* la->attn [T, heads, head_dim] from la->q and the layer's cache kc, vc
 * (after gpu_kv_cache_write stored the step's new tokens there). */
static int step_attention_run(gpu_model *g, const step_attention *sa, gpu_layer_acts *la,
                              const uint16_t *kc, const uint16_t *vc, kpo_error *err)
{
    gpu_decode_state *d = &g->dec;
    void *s = g->stream;
    /* A fresh prompt's context is its own new tokens: la->k, la->v [T,
     * kv_heads, head_dim] hold exactly what the cache write stored. The lse
     * [fresh tokens, heads] is not needed: the forward layout's lse buffer
     * ([T, heads] fp32) takes it as scratch. */
    if (sa->fresh.n_seqs > 0)
        TRY(gpu_attention_forward(&sa->fresh, la->q, la->k, la->v, la->attn, la->lse, s, err));
    if (sa->rest.n_seqs == 0)
        return KPO_OK;
    const int64_t row0 = sa->fresh.n_tokens * (int64_t)sa->rest.heads * sa->rest.head_dim;
    const uint16_t *q = la->q + row0;
    uint16_t *out = la->attn + row0;
    if (g->opt.decode_attention != GPU_DECODE_ATTENTION_SPLIT)
        return gpu_attention_decode(&sa->rest, q, kc, vc, out, s, err);
    if (sa->split_plan_context > 0)
        return gpu_attention_decode_split_fixed(&sa->rest, sa->split_plan_context, q, kc, vc, out,
                                                d->split_ws.ptr, d->split_ws.bytes, s, err);
    return gpu_attention_decode_split(&sa->rest, q, kc, vc, out, d->split_ws.ptr,
                                      d->split_ws.bytes, s, err);
}

/* The split attention's workspace for sa's plan (0 with the block kernel
 * or no sequence for the decode attention). */
static size_t step_split_workspace(const gpu_model *g, const step_attention *sa)
{
    if (g->opt.decode_attention != GPU_DECODE_ATTENTION_SPLIT || sa->rest.n_seqs == 0)
        return 0;
    if (sa->split_plan_context > 0)
        return gpu_attention_decode_split_workspace_fixed(&sa->rest, sa->split_plan_context, 0);
    return gpu_attention_decode_split_workspace(&sa->rest, 0);
}

/* The decode activations for T tokens. A relayout (a larger step than
 * before) moves every activation: graphs captured so far are stale. */
static int reserve_acts(gpu_model *g, int64_t T, kpo_error *err)
{
    gpu_decode_state *d = &g->dec;
    const void *arena = d->acts_arena.ptr;
    const int64_t capacity = d->acts.capacity;
    const int rc = gpu_acts_reserve(g, &d->acts, &d->acts_layers, &d->acts_arena, T,
                                    GPU_ACTS_FORWARD, "the decode activations", err);
    if (rc != KPO_OK || d->acts_arena.ptr != arena || d->acts.capacity != capacity)
        d->graph_generation++;
    return rc;
}

/* The split workspace for sa, growing it (a new buffer: graphs captured
 * so far are stale). */
static int reserve_split_workspace(gpu_model *g, const step_attention *sa, kpo_error *err)
{
    gpu_decode_state *d = &g->dec;
    const size_t bytes = step_split_workspace(g, sa);
    if (bytes > d->split_ws.bytes)
        d->graph_generation++;
    return gpu_buffer_reserve(&d->split_ws, bytes, "the split decode attention's workspace", err);
}

/* fixed: a graph step, whose split plan must not follow the context. */
static step_work step_work_make(const gpu_model *g, int64_t n_seqs, int64_t T,
                                const decode_step_plan *plan, bool fixed)
{
    const gpu_decode_state *d = &g->dec;
    const model_config *c = &g->shape.config;
    step_work w;
    memset(&w, 0, sizeof w);
    w.T = T;
    w.n_seqs = n_seqs;
    w.all = (gpu_decode_shape){.n_queries = T, .n_seqs = n_seqs,
                               .query_offsets = d->query_offsets, .slots = d->slots,
                               .start_positions = d->start_positions, .n_slots = d->n_slots,
                               .max_len = d->max_len, .max_new = plan->max_new,
                               .max_context = plan->max_context,
                               .heads = (int)c->num_attention_heads,
                               .kv_heads = (int)c->num_key_value_heads,
                               .head_dim = (int)c->head_dim};
    w.sa = step_attention_make(&w.all, plan, d->rest_offsets);
    /* A graph step's split plan must not follow the context, which grows
     * every step: it is made for the context rounded up (the graph's key). */
    if (fixed && g->opt.decode_attention == GPU_DECODE_ATTENTION_SPLIT)
        w.sa.split_plan_context = decode_graph_plan_context(plan->rest_max_context, d->max_len);
    return w;
}

/* The step's device work, from the uploaded inputs to the fp32 logits:
 * what a graph captures. It only enqueues kernels and GEMMs on g->stream
 * (no allocation, synchronisation or copy, which a capture forbids), and
 * every host argument it passes follows from w's sizes and the decode
 * state's buffers: max_context only feeds the entry points' checks. */
int decode_step_enqueue(gpu_model *g, const step_work *w, kpo_error *err)
{
    gpu_decode_state *d = &g->dec;
    const model_config *c = &g->shape.config;
    const int64_t h = c->hidden_size, kvd = c->num_key_value_heads * c->head_dim;
    const int64_t T = w->T, n_seqs = w->n_seqs;
    const int64_t layer_stride = d->n_slots * d->max_len * kvd;
    gpu_acts *a = &d->acts;
    gpu_layer_acts *la = &a->layers[0]; /* FORWARD mode: every layer shares these */
    void *s = g->stream;
    TRY(gpu_embed_forward(T, h, a->tokens, gpu_w(g, g->embed), la->x, s, err));
    for (int64_t l = 0; l < c->num_hidden_layers; l++) {
        uint16_t *kc = d->k_cache + l * layer_stride, *vc = d->v_cache + l * layer_stride;
        TRY(gpu_layer_forward_qkv(g, l, T, &d->rope, a->positions, la, a->qkv, err));
        TRY(gpu_kv_cache_write(&w->all, la->k, la->v, kc, vc, s, err));
        TRY(step_attention_run(g, &w->sa, la, kc, vc, err));
        TRY(gpu_layer_forward_rest(g, l, T, la, la->x, err));
    }
    /* Only each sequence's last new token needs the vocabulary. */
    TRY(gpu_rows_gather(n_seqs, h, d->last_rows, la->x, d->last, s, err));
    TRY(gpu_rmsnorm_forward(n_seqs, h, d->last, gpu_w(g, g->final_norm), (float)c->rms_norm_eps,
                            d->last, NULL, s, err));
    return gemm_lt_linear_f32(g->gemm, n_seqs, h, c->vocab_size, d->last, gpu_w(g, g->lm_head),
                              d->logits, s, err);
}

int gpu_model_decode_step(gpu_model *g, int64_t n_seqs, const int64_t *slots,
                          const int64_t *n_new, const int32_t *tokens, float *logits_host,
                          kpo_error *err)
{
    if (!g || !g->dec.k_cache)
        return error_set(err, "decode: no KV cache (call gpu_model_kv_cache_init first)");
    if (n_seqs < 1)
        return error_set(err, "decode: no sequences");
    if (!slots || !n_new || !tokens)
        return error_set(err, "decode: missing argument");
    int64_t T = 0;
    TRY(model_decode_check(g->shape.config.vocab_size, g->dec.n_slots, g->dec.max_len,
                           g->dec.lengths, n_seqs, slots, n_new, tokens, &T, err));
    gpu_decode_state *d = &g->dec;
    const int64_t V = g->shape.config.vocab_size;
    d->n_logits = 0;
    /* Every buffer is reserved and every input uploaded before the work is
     * enqueued: a graph capture allows neither. */
    TRY(reserve_acts(g, T, err));
    TRY(reserve_seqs(g, n_seqs, err));
    decode_step_plan plan;
    TRY(upload_step(g, n_seqs, slots, n_new, tokens, T, &plan, err));
    const bool graph = g->opt.decode_graphs && decode_graph_step_pure(n_seqs, n_new, plan.n_fresh);
    const step_work w = step_work_make(g, n_seqs, T, &plan, graph);
    TRY(reserve_split_workspace(g, &w.sa, err));
    TRY(graph ? decode_graph_step(g, &w, err) : decode_step_enqueue(g, &w, err));
    if (logits_host)
        TRY(gpu_download(g, logits_host, d->logits, (size_t)n_seqs * (size_t)V * sizeof(float),
                         "decode: logits", err));
    else
        TRY(cuda_check(cudaStreamSynchronize((cudaStream_t)g->stream), "decode", err));
    for (int64_t i = 0; i < n_seqs; i++)
        d->lengths[slots[i]] += n_new[i];
    d->n_logits = n_seqs;
    return KPO_OK;
}

int gpu_model_sample(gpu_model *g, const gpu_sample_request *req, int64_t n_seqs,
                     int32_t *tokens, kpo_error *err)
{
    if (!g || !req || !tokens || !req->stream_ids || !req->draw_index)
        return error_set(err, "sample: missing argument");
    gpu_decode_state *d = &g->dec;
    const int64_t V = g->shape.config.vocab_size;
    if (n_seqs < 1 || n_seqs > d->n_logits)
        return error_set(err, "sample: %lld rows asked, the last decode step left %lld",
                         (long long)n_seqs, (long long)d->n_logits);
    if (req->drawable < 1 || req->drawable > V)
        return error_set(err, "sample: drawable %lld outside [1, %lld]",
                         (long long)req->drawable, (long long)V);
    gpu_sample_stream *streams = malloc((size_t)n_seqs * sizeof *streams);
    if (!streams)
        return error_set(err, "sample: out of host memory");
    for (int64_t i = 0; i < n_seqs; i++) {
        streams[i].stream_id = req->stream_ids[i];
        streams[i].draw_index = req->draw_index[i];
    }
    int rc = gpu_upload(g, d->streams, streams, (size_t)n_seqs * sizeof *streams,
                        "sample: streams", err);
    free(streams);
    TRY(rc);
    TRY(gpu_buffer_reserve(&d->sample_ws, gpu_sample_workspace(n_seqs, V),
                           "the sampling workspace", err));
    TRY(gpu_sample_tokens(&req->sampler, n_seqs, V, req->drawable, d->logits, req->seed,
                          d->streams, d->sampled, d->sample_ws.ptr, g->stream, err));
    return gpu_download(g, tokens, d->sampled, (size_t)n_seqs * 4, "sample: tokens", err);
}
