/* Which decode steps replay a CUDA graph, and which captured graph
 * (model.decode_graphs; gpu_model_decode_step, model_cuda_decode.c). Pure
 * host C, inline here so the unit suite tests it in every build
 * (tests/unit/test_decode_graph_cache.c); a graph is opaque here (its
 * cudaGraphExec_t as void *).
 *
 * Only pure decode steps replay graphs: every sequence brings one new
 * token and none is a fresh prompt for the flash kernel. Then the step's
 * tokens are its sequences, and every kernel's grid and host argument
 * follows from the sequence count and, with the split attention, the
 * context its splits are planned for: not the step's own (it grows every
 * step) but that rounded up to a power of two (decode_graph_plan_context),
 * so a rollout's growing contexts need a handful of graphs per batch, and
 * a short context in a long cache is not split as if it filled the cache.
 * A graph is keyed by both. What changes from step to step (tokens, positions, slots,
 * start positions) reaches the graph through device buffers it reads at
 * fixed addresses. A graph is only valid for the buffers it was captured
 * against: the decode state counts its reallocations (its generation) and
 * a graph of an older generation is captured again. */
#ifndef KPO_MODEL_CUDA_DECODE_GRAPH_CACHE_H
#define KPO_MODEL_CUDA_DECODE_GRAPH_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Batches with a graph at once: a rollout's batch shrinks as sequences
 * end (refill keeps it near full), so a handful of counts recur. */
enum { DECODE_GRAPHS_MAX = 8 };

typedef struct decode_graph_entry {
    void *exec;          /* cudaGraphExec_t; NULL: an empty entry */
    int64_t n_seqs;      /* the key: the batch */
    int64_t context;     /* and the split plan's context (0: the block attention) */
    uint64_t generation; /* the decode state's buffer generation at capture */
    uint64_t last_use;   /* the cache's clock at its capture or last replay */
} decode_graph_entry;

typedef struct decode_graph_cache {
    decode_graph_entry entries[DECODE_GRAPHS_MAX];
    uint64_t clock; /* advances at every find and store */
} decode_graph_cache;

/* A step of n_seqs sequences with n_new[i] new tokens each, of which the
 * first n_fresh go to the flash kernel (decode_step_plan.h): may it replay
 * a graph? */
static inline bool decode_graph_step_pure(int64_t n_seqs, const int64_t *n_new, int64_t n_fresh)
{
    if (n_seqs < 1 || n_fresh != 0)
        return false;
    for (int64_t i = 0; i < n_seqs; i++)
        if (n_new[i] != 1)
            return false;
    return true;
}

/* The context a graph step's split attention is planned for: the step's
 * longest context rounded up to a power of two (at least 128), at most
 * the cache's length. */
static inline int64_t decode_graph_plan_context(int64_t context, int64_t max_len)
{
    int64_t planned = 128;
    while (planned < context)
        planned *= 2;
    return planned < max_len ? planned : max_len;
}

/* The graph to replay for n_seqs sequences whose split plan has context
 * `context`, with the buffers of generation gen, marked used; NULL: none
 * (capture one into decode_graph_slot's). */
static inline decode_graph_entry *decode_graph_find(decode_graph_cache *c, int64_t n_seqs,
                                                    int64_t context, uint64_t gen)
{
    for (int k = 0; k < DECODE_GRAPHS_MAX; k++) {
        decode_graph_entry *e = &c->entries[k];
        if (e->exec && e->n_seqs == n_seqs && e->context == context && e->generation == gen) {
            e->last_use = ++c->clock;
            return e;
        }
    }
    return NULL;
}

/* Where a new graph for (n_seqs, context) goes: the entry that key
 * already has (stale: captured against older buffers), else an empty one,
 * else the least recently used. Its exec, when not NULL, is the caller's
 * to destroy before decode_graph_store replaces it. */
static inline decode_graph_entry *decode_graph_slot(decode_graph_cache *c, int64_t n_seqs,
                                                    int64_t context)
{
    decode_graph_entry *empty = NULL, *oldest = NULL;
    for (int k = 0; k < DECODE_GRAPHS_MAX; k++) {
        decode_graph_entry *e = &c->entries[k];
        if (e->exec && e->n_seqs == n_seqs && e->context == context)
            return e;
        if (!e->exec && !empty)
            empty = e;
        if (e->exec && (!oldest || e->last_use < oldest->last_use))
            oldest = e;
    }
    return empty ? empty : oldest;
}

/* e (from decode_graph_slot, its old exec destroyed) now holds exec. */
static inline void decode_graph_store(decode_graph_cache *c, decode_graph_entry *e,
                                      int64_t n_seqs, int64_t context, uint64_t gen, void *exec)
{
    e->exec = exec;
    e->n_seqs = n_seqs;
    e->context = context;
    e->generation = gen;
    e->last_use = ++c->clock;
}

#endif
