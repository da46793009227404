/* What the cuDNN attention files share (attention_cudnn.h is the public
 * interface): attention_cudnn_lib.c loads libcudnn, checks its version,
 * makes the handle and words cuDNN's errors; attention_cudnn_graph.c builds
 * backend descriptors and the forward and backward attention graphs;
 * attention_cudnn.c caches the plans and runs the batches and calls. */
#ifndef KPO_MODEL_CUDA_ATTENTION_CUDNN_INTERNAL_H
#define KPO_MODEL_CUDA_ATTENTION_CUDNN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>
#include <cudnn_graph.h>

#include "core/error.h"
#include "model/cuda/attention_cudnn.h"

/* The cuDNN entry points, looked up in the loaded library. */
typedef struct cudnn_api {
    size_t (*GetVersion)(void);
    const char *(*GetErrorString)(cudnnStatus_t);
    void (*GetLastErrorString)(char *, size_t);
    cudnnStatus_t (*Create)(cudnnHandle_t *);
    cudnnStatus_t (*Destroy)(cudnnHandle_t);
    cudnnStatus_t (*SetStream)(cudnnHandle_t, cudaStream_t);
    cudnnStatus_t (*BackendCreateDescriptor)(cudnnBackendDescriptorType_t,
                                             cudnnBackendDescriptor_t *);
    cudnnStatus_t (*BackendDestroyDescriptor)(cudnnBackendDescriptor_t);
    cudnnStatus_t (*BackendFinalize)(cudnnBackendDescriptor_t);
    cudnnStatus_t (*BackendSetAttribute)(cudnnBackendDescriptor_t, cudnnBackendAttributeName_t,
                                         cudnnBackendAttributeType_t, int64_t, const void *);
    cudnnStatus_t (*BackendGetAttribute)(cudnnBackendDescriptor_t const,
                                         cudnnBackendAttributeName_t,
                                         cudnnBackendAttributeType_t, int64_t, int64_t *, void *);
    cudnnStatus_t (*BackendExecute)(cudnnHandle_t, cudnnBackendDescriptor_t,
                                    cudnnBackendDescriptor_t);
} cudnn_api;

/* UIDs of the tensors with memory behind them (the variant pack's keys);
 * virtual tensors are numbered from UID_VIRTUAL up. */
enum {
    UID_Q = 1, UID_K, UID_V, UID_O, UID_STATS, UID_DO, UID_DQ, UID_DK, UID_DV,
    UID_SEQ_Q, UID_SEQ_KV, UID_OFF_Q, UID_OFF_KV, UID_OFF_STATS,
    UID_SCALE, UID_NEG_INF_PAD, UID_NEG_INF_CAUSAL, UID_NEG_INF_PAD2, UID_ONE,
    UID_SOFTMAX_SUM, UID_DQ_ACCUM, UID_DK_FULL, UID_DV_FULL,
    UID_REAL_END,
    UID_VIRTUAL = 1000
};

/* Operations one graph may hold (the builder's list). */
enum { MAX_OPS = 64 };

/* A built plan and every descriptor it rests on. */
typedef struct plan_entry {
    attention_cudnn_key key;
    cudnnBackendDescriptor_t plan;
    cudnnBackendDescriptor_t *descs;
    int n_descs;
    int64_t uids[UID_REAL_END]; /* the real tensors the graph names */
    int n_uids;
    size_t workspace; /* the plan's own */
    uint64_t last_used;
} plan_entry;

/* The loaded library, its handle, the plan cache and the prepared batch. */
struct attention_cudnn {
    void *lib;
    cudnn_api api;
    size_t version;
    char version_str[32];
    cudnnHandle_t handle;
    bool exact; /* KPO_CUDNN_EXACT_SHAPES: no buckets */
    plan_entry plans[ATTENTION_CUDNN_MAX_PLANS];
    int n_plans;
    uint64_t clock;
    /* The prepared batch (attention_cudnn_set_batch). */
    bool have_batch;
    gpu_attention_shape batch; /* seq_offsets not kept */
    int64_t batch_b;
    void *batch_dev;
    size_t batch_dev_bytes;
};

/* A failed cuDNN call, named, with cuDNN's own explanation when it has one
 * (attention_cudnn_lib.c). */
int cudnn_error(const attention_cudnn *a, cudnnStatus_t st, const char *call, const char *what,
                kpo_error *err);

/* Destroys every descriptor of e and clears it (attention_cudnn.c). */
void plan_entry_free(const attention_cudnn *a, plan_entry *e);

/* ---- Building descriptors (attention_cudnn_graph.c) ---- */

/* Descriptors under construction: the first failure is kept (later calls
 * do nothing), every descriptor created is on one list, freed together. */
typedef struct builder {
    attention_cudnn *a;
    kpo_error *err;
    bool failed;
    cudnnBackendDescriptor_t *descs;
    int n_descs, cap_descs;
    cudnnBackendDescriptor_t ops[MAX_OPS];
    int n_ops;
    int64_t uids[UID_REAL_END];
    int n_uids;
    int64_t next_virtual;
} builder;

/* An empty builder for a's handle; errors go to err. */
void b_init(builder *b, attention_cudnn *a, kpo_error *err);
/* Destroys every descriptor b created (reverse order). */
void b_free(builder *b);
/* Records a failed call unless one failed before. */
void b_fail(builder *b, cudnnStatus_t st, const char *call, const char *what);
/* A new descriptor of type, on b's list; NULL once b has failed. */
cudnnBackendDescriptor_t b_new(builder *b, cudnnBackendDescriptorType_t type, const char *what);
/* Sets one attribute of d; use SET, which names the attribute. */
void b_set(builder *b, cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name,
           cudnnBackendAttributeType_t type, int64_t count, const void *value, const char *what,
           const char *attr);
/* Names the attribute in the message. */
#define SET(b, d, attr, type, count, value, what)                              \
    b_set(b, d, attr, type, count, value, what, #attr)
/* Finalizes d. */
void b_finalize(builder *b, cudnnBackendDescriptor_t d, const char *what);

/* ---- The attention graphs (attention_cudnn_graph.c) ---- */

/* B sequences, H query heads, K kv heads, S (bucketed) length, D head dim. */
typedef struct gshape {
    int64_t B, H, K, S, D;
} gshape;

/* The forward graph's operations into b (out and the statistics from q, k,
 * v); the backward graph's (dq, dk, dv from dout and the forward's tensors). */
void build_forward(builder *b, const gshape *g);
void build_backward(builder *b, const gshape *g);

#endif
