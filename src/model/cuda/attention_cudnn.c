/* cuDNN 9 fused flash attention for the training forward and backward
 * (attention_cudnn.h): the plan cache and the calls. A plan is built from
 * the graph attention_cudnn_graph.c describes (engine heuristics, the first
 * config that finalizes) and cached per key, least recently used dropped;
 * the batch's arrays are uploaded once per batch and every call runs its
 * plan with a variant pack. The library itself is loaded by
 * attention_cudnn_lib.c.
 *
 * Every descriptor a plan needs is kept in its cache entry and destroyed
 * with it; a failure anywhere destroys all of them. */
#include "model/cuda/attention_cudnn_internal.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "core/cuda_check.h"

enum { MAX_CONFIGS = 16 };

/* ---- Plans ---- */

void plan_entry_free(const attention_cudnn *a, plan_entry *e)
{
    /* Reverse creation order: users before what they point at. */
    for (int i = e->n_descs - 1; i >= 0; i--)
        a->api.BackendDestroyDescriptor(e->descs[i]);
    free(e->descs);
    memset(e, 0, sizeof *e);
}

/* The operation graph, finalized. */
static cudnnBackendDescriptor_t operation_graph(builder *b)
{
    cudnnBackendDescriptor_t og = b_new(b, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, "graph");
    SET(b, og, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, b->n_ops, b->ops,
        "graph");
    SET(b, og, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &b->a->handle, "graph");
    b_finalize(b, og, "the attention operation graph");
    return og;
}

/* cuDNN's own words for its last refusal, kept before a later call
 * overwrites them. */
typedef struct refusal {
    cudnnStatus_t status;
    char call[96];
    char why[512];
} refusal;

static void refusal_note(const builder *b, refusal *r, cudnnStatus_t st, const char *call)
{
    r->status = st;
    snprintf(r->call, sizeof r->call, "%s", call);
    r->why[0] = '\0';
    if (b->a->api.GetLastErrorString)
        b->a->api.GetLastErrorString(r->why, sizeof r->why);
}

/* The engine configs heuristics mode `mode` offers (at most MAX_CONFIGS);
 * a mode cuDNN refuses offers none (noted in r), it is not an error. */
static int heuristic_configs(builder *b, cudnnBackendDescriptor_t og, cudnnBackendHeurMode_t mode,
                             cudnnBackendDescriptor_t *cfgs, refusal *r)
{
    const char *what = mode == CUDNN_HEUR_MODE_A ? "heuristics mode A" : "heuristics fallback";
    cudnnBackendDescriptor_t h = b_new(b, CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, what);
    SET(b, h, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &og, what);
    SET(b, h, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode, what);
    if (b->failed)
        return 0;
    cudnnStatus_t st = b->a->api.BackendFinalize(h);
    if (st != CUDNN_STATUS_SUCCESS) {
        refusal_note(b, r, st, mode == CUDNN_HEUR_MODE_A ? "cudnnBackendFinalize(heuristics A)"
                                                         : "cudnnBackendFinalize(heuristics "
                                                           "fallback)");
        return 0;
    }
    int64_t count = 0;
    st = b->a->api.BackendGetAttribute(h, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                       CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, NULL);
    if (st != CUDNN_STATUS_SUCCESS) {
        refusal_note(b, r, st, "cudnnBackendGetAttribute(CUDNN_ATTR_ENGINEHEUR_RESULTS count)");
        return 0;
    }
    if (count > MAX_CONFIGS)
        count = MAX_CONFIGS;
    for (int64_t i = 0; i < count; i++)
        cfgs[i] = b_new(b, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, what);
    int64_t got = 0;
    if (b->failed || count == 0)
        return 0;
    st = b->a->api.BackendGetAttribute(h, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                       CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &got, cfgs);
    if (st != CUDNN_STATUS_SUCCESS) {
        refusal_note(b, r, st, "cudnnBackendGetAttribute(CUDNN_ATTR_ENGINEHEUR_RESULTS)");
        return 0;
    }
    return (int)got;
}

/* An execution plan from the first config that finalizes; the refusals
 * are not errors until every config has refused. */
static cudnnBackendDescriptor_t first_plan(builder *b, const cudnnBackendDescriptor_t *cfgs, int n,
                                           refusal *r)
{
    for (int i = 0; i < n && !b->failed; i++) {
        cudnnBackendDescriptor_t plan = b_new(b, CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, "plan");
        SET(b, plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &b->a->handle,
            "plan");
        SET(b, plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
            &cfgs[i], "plan");
        if (b->failed)
            return NULL;
        const cudnnStatus_t st = b->a->api.BackendFinalize(plan);
        if (st == CUDNN_STATUS_SUCCESS)
            return plan;
        refusal_note(b, r, st, "cudnnBackendFinalize(execution plan)");
    }
    return NULL;
}

/* Heuristics mode A, then the fallback list; the first plan that builds.
 * When none does, the error names the first refusal cuDNN explained (an
 * engine refusing the graph says more than the fallback list's answer). */
static cudnnBackendDescriptor_t choose_plan(builder *b, cudnnBackendDescriptor_t og)
{
    const cudnnBackendHeurMode_t modes[2] = {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK};
    refusal first = {.status = CUDNN_STATUS_SUCCESS};
    int offered = 0;
    for (int m = 0; m < 2 && !b->failed; m++) {
        cudnnBackendDescriptor_t cfgs[MAX_CONFIGS];
        refusal r = {.status = CUDNN_STATUS_SUCCESS};
        const int n = heuristic_configs(b, og, modes[m], cfgs, &r);
        offered += n;
        cudnnBackendDescriptor_t plan = first_plan(b, cfgs, n, &r);
        if (plan)
            return plan;
        if (r.status != CUDNN_STATUS_SUCCESS &&
            (first.status == CUDNN_STATUS_SUCCESS || (!first.why[0] && r.why[0])))
            first = r;
    }
    if (!b->failed) {
        error_set(b->err,
                  "cuDNN %s: no engine for this attention graph: %d config(s) offered, none "
                  "built; %s: %s%s%s",
                  b->a->version_str, offered, first.call[0] ? first.call : "heuristics",
                  b->a->api.GetErrorString(first.status != CUDNN_STATUS_SUCCESS
                                               ? first.status
                                               : CUDNN_STATUS_NOT_SUPPORTED),
                  first.why[0] ? ": " : "", first.why);
        b->failed = true;
    }
    return NULL;
}

static size_t plan_workspace(builder *b, cudnnBackendDescriptor_t plan)
{
    int64_t ws = 0, got = 0;
    if (b->failed)
        return 0;
    const cudnnStatus_t st = b->a->api.BackendGetAttribute(
        plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &got, &ws);
    if (st != CUDNN_STATUS_SUCCESS)
        b_fail(b, st, "cudnnBackendGetAttribute", "CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE");
    return ws > 0 ? (size_t)ws : 0;
}

/* Builds the plan for key into e (which owns every descriptor after). */
static int build_plan(attention_cudnn *a, const attention_cudnn_key *key, plan_entry *e,
                      kpo_error *err)
{
    const gshape g = {.B = key->b, .H = key->heads, .K = key->kv_heads, .S = key->s,
                      .D = key->head_dim};
    builder b;
    b_init(&b, a, err);
    if (key->backward)
        build_backward(&b, &g);
    else
        build_forward(&b, &g);
    cudnnBackendDescriptor_t plan = choose_plan(&b, operation_graph(&b));
    const size_t ws = plan_workspace(&b, plan);
    if (b.failed) {
        b_free(&b);
        return error_prefix(err, "%s graph (%lld sequences of <= %lld tokens, %d/%d heads, d %d): ",
                            key->backward ? "backward" : "forward", (long long)key->b,
                            (long long)key->s, key->heads, key->kv_heads, key->head_dim);
    }
    memset(e, 0, sizeof *e);
    e->key = *key;
    e->plan = plan;
    e->descs = b.descs;
    e->n_descs = b.n_descs;
    memcpy(e->uids, b.uids, sizeof b.uids);
    e->n_uids = b.n_uids;
    e->workspace = ws;
    return KPO_OK;
}

/* The cached plan for key, built on a miss (evicting the least recently
 * used one when the cache is full). */
static int get_plan(attention_cudnn *a, const attention_cudnn_key *key, plan_entry **out,
                    kpo_error *err)
{
    a->clock++;
    for (int i = 0; i < a->n_plans; i++)
        if (attention_cudnn_key_equal(&a->plans[i].key, key)) {
            a->plans[i].last_used = a->clock;
            *out = &a->plans[i];
            return KPO_OK;
        }
    plan_entry fresh;
    if (build_plan(a, key, &fresh, err) != KPO_OK)
        return KPO_ERR;
    int slot = a->n_plans;
    if (slot == ATTENTION_CUDNN_MAX_PLANS) {
        slot = 0;
        for (int i = 1; i < a->n_plans; i++)
            if (a->plans[i].last_used < a->plans[slot].last_used)
                slot = i;
        plan_entry_free(a, &a->plans[slot]);
    } else {
        a->n_plans++;
    }
    fresh.last_used = a->clock;
    a->plans[slot] = fresh;
    *out = &a->plans[slot];
    return KPO_OK;
}

/* ---- Batches and calls ---- */

/* What cuDNN can be asked about s: the kernels' own shape rules, plus
 * head_dim <= 256 (Hopper's limit; older GPUs refuse above 128 when the
 * plan is built) and the frontend's d % 16 for packed workspaces. */
static int check_shape(const gpu_attention_shape *s, const char *what, kpo_error *err)
{
    if (gpu_attention_check_shape(s, what, err) != KPO_OK)
        return KPO_ERR;
    if (s->head_dim % 16 != 0 || s->head_dim > 256)
        return error_set(err, "%s: head_dim %d is not a multiple of 16 up to 256", what,
                         s->head_dim);
    return KPO_OK;
}

int attention_cudnn_set_batch(attention_cudnn *a, const gpu_attention_shape *s,
                              const int64_t *host_seq_offsets, void *stream, kpo_error *err)
{
    if (!a || !s || (!host_seq_offsets && s->n_tokens > 0))
        return error_set(err, "attention_cudnn_set_batch: missing argument");
    if (check_shape(s, "attention_cudnn_set_batch", err) != KPO_OK)
        return KPO_ERR;
    a->have_batch = false;
    if (s->n_tokens == 0)
        return KPO_OK;
    const int64_t b = attention_cudnn_key_of(s, false, a->exact).b;
    const attention_cudnn_batch_layout l = attention_cudnn_batch_layout_of(b);
    if (l.bytes > a->batch_dev_bytes) {
        /* Queued attention calls may still read the old arrays. */
        if (cuda_check(cudaStreamSynchronize((cudaStream_t)stream), "cuDNN attention batch", err))
            return KPO_ERR;
        cudaFree(a->batch_dev);
        a->batch_dev = NULL;
        a->batch_dev_bytes = 0;
        if (cuda_check(cudaMalloc(&a->batch_dev, l.bytes), "cuDNN attention batch: cudaMalloc",
                       err))
            return KPO_ERR;
        a->batch_dev_bytes = l.bytes;
    }
    void *host = calloc(1, l.bytes);
    if (!host)
        return error_set(err, "attention_cudnn_set_batch: out of host memory");
    attention_cudnn_batch_fill(host, b, host_seq_offsets, s->n_seqs, s->heads, s->kv_heads,
                               s->head_dim);
    /* From pageable memory the copy returns once host is staged. */
    const int rc = cuda_check(cudaMemcpyAsync(a->batch_dev, host, l.bytes, cudaMemcpyHostToDevice,
                                              (cudaStream_t)stream),
                              "cuDNN attention batch: upload", err);
    free(host);
    if (rc != KPO_OK)
        return KPO_ERR;
    a->batch = *s;
    a->batch.seq_offsets = NULL;
    a->batch_b = b;
    a->have_batch = true;
    return KPO_OK;
}

/* The call's shape is the prepared batch's (same sequences and heads). */
static int check_batch(const attention_cudnn *a, const gpu_attention_shape *s, const char *what,
                       kpo_error *err)
{
    const gpu_attention_shape *p = &a->batch;
    if (!a->have_batch || p->n_tokens != s->n_tokens || p->n_seqs != s->n_seqs ||
        p->max_seq_len != s->max_seq_len || p->heads != s->heads ||
        p->kv_heads != s->kv_heads || p->head_dim != s->head_dim)
        return error_set(err, "%s: the batch (%lld tokens, %lld sequences, %d/%d heads) was not "
                              "prepared with attention_cudnn_set_batch",
                         what, (long long)s->n_tokens, (long long)s->n_seqs, s->heads,
                         s->kv_heads);
    return KPO_OK;
}

static size_t workspace_of(const plan_entry *e, const gpu_attention_shape *s)
{
    size_t bytes = attention_cudnn_align256(e->workspace);
    if (e->key.backward)
        bytes += attention_cudnn_bwd_layout_of(s->n_tokens, s->heads, s->kv_heads, s->head_dim)
                     .bytes;
    return bytes;
}

/* The plan for s in direction backward, checked against the batch. */
static int plan_for(attention_cudnn *a, const gpu_attention_shape *s, bool backward,
                    const char *what, plan_entry **e, kpo_error *err)
{
    if (!a || !s)
        return error_set(err, "%s: missing argument", what);
    if (check_shape(s, what, err) != KPO_OK || check_batch(a, s, what, err) != KPO_OK)
        return KPO_ERR;
    const attention_cudnn_key key = attention_cudnn_key_of(s, backward, a->exact);
    if (get_plan(a, &key, e, err) != KPO_OK)
        return error_prefix(err, "%s: ", what);
    return KPO_OK;
}

int attention_cudnn_workspace(attention_cudnn *a, const gpu_attention_shape *s, bool backward,
                              size_t *bytes, kpo_error *err)
{
    *bytes = 0;
    if (s && s->n_tokens == 0)
        return KPO_OK;
    plan_entry *e;
    if (plan_for(a, s, backward, "attention_cudnn_workspace", &e, err) != KPO_OK)
        return KPO_ERR;
    *bytes = workspace_of(e, s);
    return KPO_OK;
}

/* Runs e's plan with ptr[uid] behind every real tensor of its graph. */
static int execute(attention_cudnn *a, const plan_entry *e, void *const *ptr, void *workspace,
                   void *stream, kpo_error *err)
{
    void *data[UID_REAL_END];
    for (int i = 0; i < e->n_uids; i++) {
        data[i] = ptr[e->uids[i]];
        if (!data[i])
            return error_set(err, "cuDNN attention: no pointer for tensor %lld",
                             (long long)e->uids[i]);
    }
    cudnnStatus_t st = a->api.SetStream(a->handle, (cudaStream_t)stream);
    if (st != CUDNN_STATUS_SUCCESS)
        return cudnn_error(a, st, "cudnnSetStream", "the model's stream", err);
    builder b;
    b_init(&b, a, err);
    cudnnBackendDescriptor_t vp = b_new(&b, CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, "variant pack");
    SET(&b, vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, e->n_uids, e->uids,
        "variant pack");
    SET(&b, vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, e->n_uids, data,
        "variant pack");
    SET(&b, vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace,
        "variant pack");
    b_finalize(&b, vp, "variant pack");
    if (!b.failed) {
        st = a->api.BackendExecute(a->handle, e->plan, vp);
        if (st != CUDNN_STATUS_SUCCESS)
            b_fail(&b, st, "cudnnBackendExecute", e->key.backward ? "backward" : "forward");
    }
    const bool failed = b.failed;
    b_free(&b);
    return failed ? KPO_ERR : KPO_OK;
}

/* The host scalars (by value) and the batch arrays, by UID. */
typedef struct call_scalars {
    float scale, neg_inf, one;
} call_scalars;

static void common_pointers(const attention_cudnn *a, const gpu_attention_shape *s,
                            call_scalars *c, void **ptr)
{
    const attention_cudnn_batch_layout l = attention_cudnn_batch_layout_of(a->batch_b);
    unsigned char *batch = (unsigned char *)a->batch_dev;
    c->scale = 1.0f / sqrtf((float)s->head_dim);
    /* Before 9.10 cuDNN wants the lowest float, not -inf (as the frontend). */
    c->neg_inf = a->version < 91000 ? -FLT_MAX : -INFINITY;
    c->one = 1.0f;
    ptr[UID_SCALE] = &c->scale;
    ptr[UID_NEG_INF_PAD] = ptr[UID_NEG_INF_CAUSAL] = ptr[UID_NEG_INF_PAD2] = &c->neg_inf;
    ptr[UID_ONE] = &c->one;
    ptr[UID_OFF_Q] = batch + l.q_off;
    ptr[UID_OFF_KV] = batch + l.kv_off;
    ptr[UID_OFF_STATS] = batch + l.stats_off;
    ptr[UID_SEQ_Q] = ptr[UID_SEQ_KV] = batch + l.seq_len;
}

/* Casts away const for the variant pack, which takes void *. */
static void *mut(const void *p) { return (void *)(uintptr_t)p; }

static int check_workspace(const plan_entry *e, const gpu_attention_shape *s, const void *ws,
                           size_t bytes, const char *what, kpo_error *err)
{
    const size_t need = workspace_of(e, s);
    if (bytes < need || (need > 0 && !ws) || ((uintptr_t)ws % 256) != 0)
        return error_set(err, "%s: the workspace (%zu bytes at %p) must hold %zu bytes, "
                              "256-byte aligned",
                         what, bytes, ws, need);
    return KPO_OK;
}

int attention_cudnn_forward(attention_cudnn *a, const gpu_attention_shape *s, const uint16_t *q,
                            const uint16_t *k, const uint16_t *v, uint16_t *out, float *lse,
                            void *workspace, size_t workspace_bytes, void *stream,
                            kpo_error *err)
{
    const char *what = "attention_cudnn_forward";
    if (s && s->n_tokens == 0)
        return KPO_OK;
    if (!q || !k || !v || !out || !lse)
        return error_set(err, "%s: missing argument", what);
    plan_entry *e;
    if (plan_for(a, s, false, what, &e, err) != KPO_OK ||
        check_workspace(e, s, workspace, workspace_bytes, what, err) != KPO_OK)
        return KPO_ERR;
    void *ptr[UID_REAL_END] = {0};
    call_scalars c;
    common_pointers(a, s, &c, ptr);
    ptr[UID_Q] = mut(q), ptr[UID_K] = mut(k), ptr[UID_V] = mut(v);
    ptr[UID_O] = out, ptr[UID_STATS] = lse;
    return execute(a, e, ptr, workspace, stream, err);
}

int attention_cudnn_backward(attention_cudnn *a, const gpu_attention_shape *s, const uint16_t *q,
                             const uint16_t *k, const uint16_t *v, const uint16_t *out,
                             const uint16_t *dout, const float *lse, uint16_t *dq, uint16_t *dk,
                             uint16_t *dv, void *workspace, size_t workspace_bytes, void *stream,
                             kpo_error *err)
{
    const char *what = "attention_cudnn_backward";
    if (s && s->n_tokens == 0)
        return KPO_OK;
    if (!q || !k || !v || !out || !dout || !lse || !dq || !dk || !dv)
        return error_set(err, "%s: missing argument", what);
    plan_entry *e;
    if (plan_for(a, s, true, what, &e, err) != KPO_OK ||
        check_workspace(e, s, workspace, workspace_bytes, what, err) != KPO_OK)
        return KPO_ERR;
    void *ptr[UID_REAL_END] = {0};
    call_scalars c;
    common_pointers(a, s, &c, ptr);
    ptr[UID_Q] = mut(q), ptr[UID_K] = mut(k), ptr[UID_V] = mut(v), ptr[UID_O] = mut(out);
    ptr[UID_DO] = mut(dout), ptr[UID_STATS] = mut(lse);
    ptr[UID_DQ] = dq, ptr[UID_DK] = dk, ptr[UID_DV] = dv;
    /* The graph's own buffers after the plan's workspace. */
    unsigned char *extra = (unsigned char *)workspace + attention_cudnn_align256(e->workspace);
    const attention_cudnn_bwd_layout l =
        attention_cudnn_bwd_layout_of(s->n_tokens, s->heads, s->kv_heads, s->head_dim);
    ptr[UID_DQ_ACCUM] = extra + l.dq_accum;
    ptr[UID_SOFTMAX_SUM] = extra + l.softmax_sum;
    ptr[UID_DK_FULL] = extra + l.dk_full;
    ptr[UID_DV_FULL] = extra + l.dv_full;
    return execute(a, e, ptr, workspace, stream, err);
}
