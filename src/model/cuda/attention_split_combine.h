/* The arithmetic of split-KV decode attention (flash-decoding,
 * kernels_attention_decode_split.cu) that does not need a GPU, so the CPU
 * unit test (tests/unit/test_attention_split_combine.c) checks the very
 * code the kernels run:
 *
 * - the merge of softmax partials. A partial covers some keys of one
 *   (query, head): m = the largest base-2 score s_j (-inf: no keys),
 *   l = sum_j 2^(s_j - m), o[c] = sum_j 2^(s_j - m) v_j[c]. Two partials
 *   merge exactly (up to rounding) into the partial of their union, in any
 *   order; the attention output is o / l.
 * - the split plan: how many splits per (query, kv head), how many query
 *   heads a block takes, queries per launch, and the workspace in bytes.
 *
 * Merge functions are KPO_HOSTDEV (core/hostdev.h): nvcc compiles them for
 * the combine kernel, a C compiler for the test. Plain C otherwise. */
#ifndef KPO_MODEL_CUDA_ATTENTION_SPLIT_COMBINE_H
#define KPO_MODEL_CUDA_ATTENTION_SPLIT_COMBINE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "core/hostdev.h"

/* ------------------------------------------------------------ the merge */

/* A partial's statistics; its outputs o[d] live beside it. */
typedef struct att_split_stats {
    float m; /* max base-2 score; -INFINITY when the partial saw no key */
    float l; /* sum of 2^(s - m); 0 when empty */
} att_split_stats;

KPO_HOSTDEV static inline att_split_stats att_split_empty(void)
{
    att_split_stats e;
    e.m = -INFINITY;
    e.l = 0.0f;
    return e;
}

/* Empty: no key (a split past its query's causal limit). Its outputs are
 * not written by the kernel, so they must never be read. */
KPO_HOSTDEV static inline int att_split_is_empty(att_split_stats p) { return !(p.l > 0.0f); }

/* Merges b's statistics into a and gives the factors for the outputs:
 * afterwards every o_a[c] becomes att_split_merge_value(o_a[c], fa,
 * o_b[c], fb). Returns 0, changing nothing, when b is empty (then b's
 * outputs are not to be read). When a is empty fa is 0 and fb 1. */
KPO_HOSTDEV static inline int att_split_merge_stats(att_split_stats *a, att_split_stats b,
                                                    float *fa, float *fb)
{
    if (att_split_is_empty(b))
        return 0;
    const float m = fmaxf(a->m, b.m); /* finite: b is not empty */
    *fa = exp2f(a->m - m);            /* a empty: 2^-inf = 0 */
    *fb = exp2f(b.m - m);
    a->l = a->l * *fa + b.l * *fb;
    a->m = m;
    return 1;
}

/* One merged output. fa == 0 takes b alone, so an empty a's unwritten
 * outputs (NaN, say) do not leak in; a non-empty a whose weight underflows
 * to 0 contributes 0 either way. */
KPO_HOSTDEV static inline float att_split_merge_value(float o_a, float fa, float o_b, float fb)
{
    return fa == 0.0f ? o_b * fb : o_a * fa + o_b * fb;
}

/* Merges partial (b, o_b[d]) into (a, o_a[d]). */
KPO_HOSTDEV static inline void att_split_merge(att_split_stats *a, float *o_a, att_split_stats b,
                                               const float *o_b, int d)
{
    float fa, fb;
    if (!att_split_merge_stats(a, b, &fa, &fb))
        return;
    for (int c = 0; c < d; c++)
        o_a[c] = att_split_merge_value(o_a[c], fa, o_b[c], fb);
}

/* The attention output from a merged partial: NaN when no key was seen
 * (0 / 0), which a valid query cannot give (it always sees its own key). */
KPO_HOSTDEV static inline float att_split_normalise(float o, att_split_stats p) { return o / p.l; }

/* ------------------------------------------------------------ the plan */

enum {
    ATT_SPLIT_THREADS = 128,      /* per split block: 4 warps */
    ATT_SPLIT_MAX_HEADS = 8,      /* query heads one block scores each key row against */
    ATT_SPLIT_MAX_KEYS = 1024,    /* keys per split: its scores fit shared memory */
    ATT_SPLIT_MIN_KEYS = 64,      /* shorter splits cost more in partials than they save */
    ATT_SPLIT_BLOCKS_PER_SM = 8,  /* blocks wanted per SM: ~2 waves at 4 resident */
    ATT_SPLIT_MAX_GRID_Y = 65535, /* queries per launch (grid y) */
};
/* Queries per launch are capped so the fp32 partials stay this small. */
#define ATT_SPLIT_WORKSPACE_CAP ((size_t)32 << 20)

typedef struct att_split_plan {
    int heads_per_block; /* HB: 1, 2, 4 or 8, the kernel's template */
    int head_chunks;     /* blocks per (query, kv head, split): ceil(group / HB) */
    int64_t n_splits;    /* splits per (query, kv head): 1 writes the output directly */
    int64_t split_len;   /* keys per split, <= ATT_SPLIT_MAX_KEYS */
    int64_t chunk;       /* queries per launch */
    size_t workspace;    /* bytes of partials for one launch (0 when n_splits == 1) */
} att_split_plan;

static inline int64_t att_split_div_up(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* Bytes of partials per query: o [heads, n_splits, d], m and l [heads,
 * n_splits], fp32. */
static inline size_t att_split_query_bytes(int heads, int head_dim, int64_t n_splits)
{
    return (size_t)heads * (size_t)n_splits * ((size_t)head_dim + 2) * sizeof(float);
}

/* HB: the smallest power of two >= the group, at most ATT_SPLIT_MAX_HEADS
 * (registers: a lane holds 8 q and 8 output values per head). */
static inline int att_split_heads_per_block(int group)
{
    int hb = 1;
    while (hb < group && hb < ATT_SPLIT_MAX_HEADS)
        hb *= 2;
    return hb;
}

/* Splits before evening out: enough blocks for ATT_SPLIT_BLOCKS_PER_SM
 * per SM (units: blocks per split), but none under ATT_SPLIT_MIN_KEYS
 * keys (unless the context is shorter) and none over ATT_SPLIT_MAX_KEYS.
 * Non-decreasing in max_context, non-increasing in units. */
static inline int64_t att_split_count(int64_t units, int64_t max_context, int n_sm)
{
    const int64_t want = att_split_div_up((int64_t)ATT_SPLIT_BLOCKS_PER_SM * (n_sm > 0 ? n_sm : 1),
                                          units > 0 ? units : 1);
    const int64_t by_len = max_context / ATT_SPLIT_MIN_KEYS > 1 ? max_context / ATT_SPLIT_MIN_KEYS : 1;
    const int64_t fewest = att_split_div_up(max_context, ATT_SPLIT_MAX_KEYS);
    const int64_t ns = want < by_len ? want : by_len;
    return ns > fewest ? ns : fewest;
}

/* The plan for n_queries queries whose contexts reach max_context, on n_sm
 * SMs. The split length is evened out (ceil(max_context / splits)) so the
 * last split is not a sliver, which can only lower the count. Callers
 * checked the shape (heads a multiple of kv_heads, 1 <= max_context). */
static inline att_split_plan att_split_plan_make(int64_t n_queries, int heads, int kv_heads,
                                                 int head_dim, int64_t max_context, int n_sm)
{
    att_split_plan p;
    const int group = heads / kv_heads;
    p.heads_per_block = att_split_heads_per_block(group);
    p.head_chunks = (int)att_split_div_up(group, p.heads_per_block);
    const int64_t ns = att_split_count(n_queries * kv_heads * p.head_chunks, max_context, n_sm);
    p.split_len = att_split_div_up(max_context, ns);
    p.n_splits = att_split_div_up(max_context, p.split_len);
    const int64_t grid_y = ATT_SPLIT_MAX_GRID_Y;
    const int64_t most = n_queries < grid_y ? n_queries : grid_y;
    if (p.n_splits == 1) {
        p.chunk = most;
        p.workspace = 0;
        return p;
    }
    const size_t per_query = att_split_query_bytes(heads, head_dim, p.n_splits);
    const int64_t fit = (int64_t)(ATT_SPLIT_WORKSPACE_CAP / per_query);
    p.chunk = fit < 1 ? 1 : fit < most ? fit : most;
    p.workspace = (size_t)p.chunk * per_query;
    return p;
}

/* The most workspace any plan with these heads and contexts up to max_len
 * asks for: a launch holds at most the cap, or one query's partials when
 * those alone exceed it; a query has at most att_split_count(units of one
 * query, max_len) splits (the count falls with the queries and grows with
 * the context). */
static inline size_t att_split_workspace_bound(int heads, int kv_heads, int head_dim,
                                               int64_t max_len, int n_sm)
{
    const int chunks = (int)att_split_div_up(heads / kv_heads,
                                             att_split_heads_per_block(heads / kv_heads));
    const int64_t ns = att_split_count((int64_t)kv_heads * chunks, max_len, n_sm);
    const size_t one = att_split_query_bytes(heads, head_dim, ns);
    return one > ATT_SPLIT_WORKSPACE_CAP ? one : ATT_SPLIT_WORKSPACE_CAP;
}

#endif
