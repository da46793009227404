/* Causal GQA attention for training through cuDNN 9's fused flash attention
 * (model.attention = cudnn; docs/cuda.md), with the same contract as
 * kernels_attention.h: q [tokens, heads, d], k/v [tokens, kv_heads, d], out
 * like q, all bf16; lse [tokens, heads] fp32, the natural log-sum-exp of the
 * scaled scores (scale 1/sqrt(d)), causal inside each packed sequence.
 *
 * Plain C over the cuDNN backend (graph) API; libcudnn is dlopen()ed on
 * first use, so a binary built with cuDNN still runs (on the kernels) where
 * the library is missing. Every entry point returns KPO_ERR with a message
 * naming the cuDNN call, its status and cuDNN's own last error when cuDNN is
 * absent, too old (< 9.6.0, or 9.10.0/9.10.1), or has no engine for a
 * shape; the model then prints that once and falls back to the kernel.
 * Built without cuDNN, attention_cudnn_none.c stands in: every call says
 * "kpo was built without cuDNN".
 *
 * The packed batch is cuDNN's ragged "THD" layout: batch = the sequences,
 * s = a bucket >= the longest one, per-sequence lengths for the padding
 * mask and ragged offsets into our tensors; cuDNN writes its softmax
 * statistics straight into lse (ragged stats, cuDNN >= 9.6), so lse means
 * the same under both paths and either backward can follow either forward.
 * Plans are cached per (direction, sequence-count bucket, length bucket,
 * heads, kv_heads, head_dim): a run builds a handful.
 *
 * The pure host logic (buckets, the per-batch arrays) is inline here so the
 * unit suite tests it in every build. */
#ifndef KPO_MODEL_CUDA_ATTENTION_CUDNN_H
#define KPO_MODEL_CUDA_ATTENTION_CUDNN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "model/cuda/kernels_attention.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The oldest cuDNN the graph is built for: GQA on ragged (packed)
 * sequences and ragged softmax statistics arrived in 9.6.0. */
#define ATTENTION_CUDNN_MIN_VERSION 90600
/* Built plans kept (least recently used one dropped beyond that). */
#define ATTENTION_CUDNN_MAX_PLANS 32

typedef struct attention_cudnn attention_cudnn;

/* Loads cuDNN (KPO_CUDNN_LIB/libcudnn.so.9 first when that is set, then the
 * build's library folder, then the loader's search path), checks its
 * version and makes a handle on the current device. */
int attention_cudnn_create(attention_cudnn **out, kpo_error *err);
void attention_cudnn_destroy(attention_cudnn *a);
/* cudnnGetVersion() of the loaded library (91900 for 9.19.0). */
size_t attention_cudnn_version(const attention_cudnn *a);

/* Prepares the batch every later call on shape s uses (sequence lengths,
 * ragged offsets, on the device): once per packed batch, from the host copy
 * of s->seq_offsets. Copies on stream. */
int attention_cudnn_set_batch(attention_cudnn *a, const gpu_attention_shape *s,
                              const int64_t *host_seq_offsets, void *stream, kpo_error *err);

/* Device workspace bytes the forward (backward = false) or backward of s
 * needs; builds (and caches) the plan, so it may take a while the first
 * time a bucket is seen. */
int attention_cudnn_workspace(attention_cudnn *a, const gpu_attention_shape *s, bool backward,
                              size_t *bytes, kpo_error *err);

/* out and lse from q, k, v, as gpu_attention_forward. workspace: at least
 * what attention_cudnn_workspace said, 256-byte aligned. */
int attention_cudnn_forward(attention_cudnn *a, const gpu_attention_shape *s, const uint16_t *q,
                            const uint16_t *k, const uint16_t *v, uint16_t *out, float *lse,
                            void *workspace, size_t workspace_bytes, void *stream,
                            kpo_error *err);

/* dq, dk, dv (written, not accumulated) from dout and the forward's q, k, v,
 * out, lse, as gpu_attention_backward. Not bit-repeatable: cuDNN sums dQ
 * over key tiles with fp32 atomics (see docs/cuda.md for why not its
 * deterministic variant). */
int attention_cudnn_backward(attention_cudnn *a, const gpu_attention_shape *s, const uint16_t *q,
                             const uint16_t *k, const uint16_t *v, const uint16_t *out,
                             const uint16_t *dout, const float *lse, uint16_t *dq, uint16_t *dk,
                             uint16_t *dv, void *workspace, size_t workspace_bytes, void *stream,
                             kpo_error *err);

/* ---- Pure host logic (no cuDNN, no GPU) ---- */

/* Batch size of the graph: the next power of two >= n_seqs; the unused
 * sequences get length 0. */
static inline int64_t attention_cudnn_bucket_seqs(int64_t n_seqs)
{
    int64_t b = 1;
    while (b < n_seqs)
        b *= 2;
    return b;
}

/* The graph's sequence length: the smallest of 128, 192, 256, 384, 512,
 * 768, ... (2^k and 3 * 2^(k-1), all multiples of 64) >= max_seq_len, so a
 * bucket overshoots by at most 1.5x and lengths up to 8192 need 13 of them. */
static inline int64_t attention_cudnn_bucket_len(int64_t max_seq_len)
{
    int64_t p = 128;
    for (;;) {
        if (max_seq_len <= p)
            return p;
        if (max_seq_len <= p + p / 2)
            return p + p / 2;
        p *= 2;
    }
}

/* What a built plan depends on. */
typedef struct attention_cudnn_key {
    int backward;
    int64_t b, s;
    int heads, kv_heads, head_dim;
} attention_cudnn_key;

/* exact: no buckets (b = n_seqs, s = max_seq_len); KPO_CUDNN_EXACT_SHAPES=1
 * asks for it, to tell a bucketing problem from another on a GPU. */
static inline attention_cudnn_key attention_cudnn_key_of(const gpu_attention_shape *s,
                                                         bool backward, bool exact)
{
    attention_cudnn_key k = {.backward = backward ? 1 : 0,
                             .b = exact ? s->n_seqs : attention_cudnn_bucket_seqs(s->n_seqs),
                             .s = exact ? s->max_seq_len : attention_cudnn_bucket_len(s->max_seq_len),
                             .heads = s->heads, .kv_heads = s->kv_heads, .head_dim = s->head_dim};
    return k;
}

static inline bool attention_cudnn_key_equal(const attention_cudnn_key *x,
                                             const attention_cudnn_key *y)
{
    return x->backward == y->backward && x->b == y->b && x->s == y->s && x->heads == y->heads &&
           x->kv_heads == y->kv_heads && x->head_dim == y->head_dim;
}

/* The per-batch device arrays, one buffer: ragged offsets in elements (int64
 * [b + 1] each) for the q-shaped tensors (q, out, dout, dq: token * heads *
 * d), the kv-shaped ones (k, v, dk, dv: token * kv_heads * d) and the
 * statistics (token * heads), then the sequence lengths (int32 [b]). Each
 * array starts on a 16-byte boundary (cuDNN's default tensor alignment). */
typedef struct attention_cudnn_batch_layout {
    size_t q_off, kv_off, stats_off, seq_len, bytes;
} attention_cudnn_batch_layout;

static inline size_t attention_cudnn_align16(size_t n) { return (n + 15) / 16 * 16; }

static inline attention_cudnn_batch_layout attention_cudnn_batch_layout_of(int64_t b)
{
    const size_t offs = attention_cudnn_align16((size_t)(b + 1) * 8);
    attention_cudnn_batch_layout l = {.q_off = 0, .kv_off = offs, .stats_off = 2 * offs,
                                      .seq_len = 3 * offs};
    l.bytes = l.seq_len + attention_cudnn_align16((size_t)b * 4);
    return l;
}

/* Fills buf (layout of b >= n_seqs sequences) from the token offsets
 * seq_offsets[0..n_seqs]; sequences n_seqs..b-1 are empty and start at the
 * end of the batch. */
static inline void attention_cudnn_batch_fill(void *buf, int64_t b, const int64_t *seq_offsets,
                                              int64_t n_seqs, int heads, int kv_heads,
                                              int head_dim)
{
    const attention_cudnn_batch_layout l = attention_cudnn_batch_layout_of(b);
    unsigned char *base = (unsigned char *)buf;
    int64_t *q = (int64_t *)(void *)(base + l.q_off), *kv = (int64_t *)(void *)(base + l.kv_off);
    int64_t *st = (int64_t *)(void *)(base + l.stats_off);
    int32_t *len = (int32_t *)(void *)(base + l.seq_len);
    for (int64_t i = 0; i <= b; i++) {
        const int64_t t = seq_offsets[i <= n_seqs ? i : n_seqs];
        q[i] = t * heads * head_dim;
        kv[i] = t * kv_heads * head_dim;
        st[i] = t * heads;
        if (i < b)
            len[i] = i < n_seqs ? (int32_t)(seq_offsets[i + 1] - t) : 0;
    }
}

/* Extra backward buffers the graph names (they live in the workspace after
 * the plan's own part, each 256-byte aligned): the fp32 dQ accumulator
 * [tokens, heads, d], the fp32 softmax sum [tokens, heads], and with GQA the
 * per-query-head dK and dV [tokens, heads, d] before their sum over the
 * group (sized at 4 bytes an element, as NVIDIA's frontend sizes them).
 * Each holds ATTENTION_CUDNN_BWD_SLACK tokens more than the batch: the
 * frontend sizes them by max_total_seq_len, which its own tests round up
 * to 64 tokens and TransformerEngine to a bucket, so no engine has been
 * run with them exactly full; the slack costs ~1 MiB at 32 heads. */
#define ATTENTION_CUDNN_BWD_SLACK 128
typedef struct attention_cudnn_bwd_layout {
    size_t dq_accum, softmax_sum, dk_full, dv_full, bytes; /* offsets from the extras' start */
} attention_cudnn_bwd_layout;

static inline size_t attention_cudnn_align256(size_t n) { return (n + 255) / 256 * 256; }

static inline attention_cudnn_bwd_layout attention_cudnn_bwd_layout_of(int64_t n_tokens,
                                                                       int heads, int kv_heads,
                                                                       int head_dim)
{
    const size_t rows = (size_t)n_tokens + ATTENTION_CUDNN_BWD_SLACK;
    const size_t full = attention_cudnn_align256(rows * heads * head_dim * 4);
    attention_cudnn_bwd_layout l = {.dq_accum = 0, .softmax_sum = full};
    l.dk_full = l.softmax_sum + attention_cudnn_align256(rows * heads * 4);
    l.dv_full = l.dk_full + (heads != kv_heads ? full : 0);
    l.bytes = l.dv_full + (heads != kv_heads ? full : 0);
    return l;
}

#ifdef __cplusplus
}
#endif

#endif
