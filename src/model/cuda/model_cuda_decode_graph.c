/* CUDA graphs of pure decode steps (model.decode_graphs; the rules in
 * decode_graph_cache.h): a step's device work (decode_step_enqueue) is
 * captured once per key (batch, split plan context) on the current
 * buffers and replayed, one launch instead of a few hundred. */
#include <stdio.h>

#include <cuda_runtime_api.h>

#include "core/cuda_check.h"
#include "model/cuda/decode_graph_cache.h"
#include "model/cuda/model_cuda_decode_step.h"

void decode_graphs_destroy(gpu_decode_state *d)
{
    for (int k = 0; k < DECODE_GRAPHS_MAX; k++)
        if (d->graphs.entries[k].exec)
            cudaGraphExecDestroy((cudaGraphExec_t)d->graphs.entries[k].exec);
}

/* Records decode_step_enqueue's work into an executable graph. A failure ends
 * the capture (the stream back to normal) and drops what it recorded. */
static int graph_capture(gpu_model *g, const step_work *w, cudaGraphExec_t *exec, kpo_error *err)
{
    cudaStream_t s = (cudaStream_t)g->stream;
    *exec = NULL;
    TRY(cuda_check(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal),
                   "decode graph: begin capture", err));
    const int enqueued = decode_step_enqueue(g, w, err);
    cudaGraph_t graph = NULL;
    const cudaError_t ended = cudaStreamEndCapture(s, &graph);
    int rc = enqueued;
    if (rc == KPO_OK)
        rc = cuda_check(ended, "decode graph: end capture", err);
    if (rc == KPO_OK)
        rc = cuda_check(cudaGraphInstantiate(exec, graph, 0), "decode graph: instantiate", err);
    if (graph)
        cudaGraphDestroy(graph);
    if (rc != KPO_OK) {
        *exec = NULL;
        (void)cudaGetLastError(); /* reported here, not by the next unrelated check */
    }
    return rc;
}

/* A new graph for w's batch, into the cache (replacing a stale one of the
 * same batch, or the least recently used). */
static int graph_add(gpu_model *g, const step_work *w, decode_graph_entry **out, kpo_error *err)
{
    gpu_decode_state *d = &g->dec;
    cudaGraphExec_t exec;
    TRY(graph_capture(g, w, &exec, err));
    const int64_t context = w->sa.split_plan_context;
    decode_graph_entry *e = decode_graph_slot(&d->graphs, w->n_seqs, context);
    if (e->exec) /* a launch still in flight completes first (cudaGraphExecDestroy) */
        cudaGraphExecDestroy((cudaGraphExec_t)e->exec);
    decode_graph_store(&d->graphs, e, w->n_seqs, context, d->graph_generation, exec);
    d->graph_captures++;
    *out = e;
    return KPO_OK;
}

/* Whether a step of w's key (batch, split plan context) on the current
 * buffers ran directly before (the warm-up: that run loaded its kernels
 * and built cuBLASLt's plans, work that may make calls a capture
 * forbids); if not, it is the warm-up now. */
static bool graph_warm(gpu_decode_state *d, const step_work *w)
{
    if (d->graph_warm_n_seqs == w->n_seqs && d->graph_warm_context == w->sa.split_plan_context &&
        d->graph_warm_generation == d->graph_generation)
        return true;
    d->graph_warm_n_seqs = w->n_seqs;
    d->graph_warm_context = w->sa.split_plan_context;
    d->graph_warm_generation = d->graph_generation;
    return false;
}

/* The step's work through its batch's graph, captured at the batch's
 * second step on the current buffers (the first runs directly: the
 * warm-up). Any CUDA failure on the way (capture, instantiation, launch)
 * prints one line, turns graphs off for this model and runs the step
 * directly instead: a run never fails because of graphs. Running it again
 * after a failed launch is safe: the step only writes what its uploaded
 * inputs determine. */
int decode_graph_step(gpu_model *g, const step_work *w, kpo_error *err)
{
    gpu_decode_state *d = &g->dec;
    decode_graph_entry *e = decode_graph_find(&d->graphs, w->n_seqs, w->sa.split_plan_context,
                                              d->graph_generation);
    if (d->graphs_eager || (!e && !graph_warm(d, w)))
        return decode_step_enqueue(g, w, err);
    kpo_error why;
    if ((e || graph_add(g, w, &e, &why) == KPO_OK) &&
        cuda_check(cudaGraphLaunch((cudaGraphExec_t)e->exec, (cudaStream_t)g->stream),
                   "decode graph: launch", &why) == KPO_OK)
        return KPO_OK;
    (void)cudaGetLastError();
    fprintf(stderr, "kpo: model.decode_graphs: %s; decoding without CUDA graphs from now on\n",
            why.message);
    g->opt.decode_graphs = false; /* the graphs made so far go with the KV cache */
    return decode_step_enqueue(g, w, err);
}
