/* Benchmark of the fused lm_head log-prob/entropy (not a test): forward, and
 * forward + backward, at Qwen3-4B's head (hidden 2560, vocab 151,936) for
 * 4096 tokens in chunks of 1024 rows. Prints "ROW|<what>|<value>|<unit>|<note>"
 * per measurement, as bench_gpu_kernels: CUDA events around 5 calls after
 * one warm-up, random data. The note gives the GEMM rate implied by the
 * time (forward: one product of 2 rows hidden vocab flops; backward: the
 * recomputed logits, dh and dW, three more), so the row kernels' share shows
 * as the gap to the bare GEMM rate of bench_gpu_kernels. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cuda_runtime_api.h>

#include "model/cuda/gemm_lt.h"
#include "model/cuda/kernels_logprob.h"

enum { BENCH_WARM = 1, BENCH_REPS = 5 };

typedef struct bench_bufs {
    uint16_t *h, *head, *dh;                          /* [rows, hidden], [vocab, hidden], [rows, hidden] */
    int32_t *targets;                                 /* [rows] */
    float *logp, *entropy, *lse, *dlogp, *dentropy;   /* [rows] */
    float *dhead;                                     /* [vocab, hidden] */
    void *workspace;
} bench_bufs;

/* bf16 bits with random mantissa and sign, exponent fixed near 2^exp2. */
static uint16_t *bench_random_bf16(size_t n, int exp2, uint32_t seed)
{
    uint16_t *x = malloc(n * sizeof *x);
    uint32_t s = seed;
    for (size_t i = 0; i < n && x; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (uint16_t)(((uint32_t)(127 + exp2) << 7) | ((s >> 16) & 0x7fu) | ((s >> 31) << 15));
    }
    return x;
}

static int bench_upload(void **d, const void *host, size_t bytes)
{
    if (cudaMalloc(d, bytes) != cudaSuccess)
        return -1;
    return (host ? cudaMemcpy(*d, host, bytes, cudaMemcpyHostToDevice)
                 : cudaMemset(*d, 0, bytes)) == cudaSuccess ? 0 : -1;
}

static int bench_alloc(bench_bufs *b, const gpu_logprob_shape *s)
{
    const size_t rh = (size_t)(s->rows * s->hidden), vh = (size_t)(s->vocab * s->hidden);
    const size_t r = (size_t)s->rows;
    uint16_t *h = bench_random_bf16(rh, 0, 1), *head = bench_random_bf16(vh, -6, 2);
    int32_t *targets = malloc(r * sizeof *targets);
    float *ones = malloc(r * sizeof *ones);
    int rc = h && head && targets && ones ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < r; i++)
        targets[i] = (int32_t)((i * 2654435761u) % (size_t)s->vocab), ones[i] = 1.0f;
    rc = rc || bench_upload((void **)&b->h, h, rh * 2) || bench_upload((void **)&b->head, head, vh * 2);
    rc = rc || bench_upload((void **)&b->dh, NULL, rh * 2);
    rc = rc || bench_upload((void **)&b->targets, targets, r * 4);
    rc = rc || bench_upload((void **)&b->logp, NULL, r * 4) || bench_upload((void **)&b->entropy, NULL, r * 4);
    rc = rc || bench_upload((void **)&b->lse, NULL, r * 4);
    rc = rc || bench_upload((void **)&b->dlogp, ones, r * 4) || bench_upload((void **)&b->dentropy, ones, r * 4);
    rc = rc || bench_upload((void **)&b->dhead, NULL, vh * 4);
    rc = rc || bench_upload(&b->workspace, NULL, gpu_logprob_workspace(s));
    free(h), free(head), free(targets), free(ones);
    return rc;
}

static void bench_free(bench_bufs *b)
{
    cudaFree(b->h), cudaFree(b->head), cudaFree(b->dh), cudaFree(b->targets);
    cudaFree(b->logp), cudaFree(b->entropy), cudaFree(b->lse), cudaFree(b->dlogp);
    cudaFree(b->dentropy), cudaFree(b->dhead), cudaFree(b->workspace);
}

/* One forward, or one forward + backward (with the entropy term). */
static int bench_step(gemm_lt *g, const gpu_logprob_shape *s, bench_bufs *b, int backward,
                      kpo_error *err)
{
    if (gpu_logprob_forward(g, s, b->h, b->head, b->targets, b->logp, b->entropy, b->lse,
                            b->workspace, NULL, err) != KPO_OK)
        return KPO_ERR;
    if (!backward)
        return KPO_OK;
    return gpu_logprob_backward(g, s, b->h, b->head, b->targets, b->lse, b->entropy, b->dlogp,
                                b->dentropy, b->dh, b->dhead, b->workspace, NULL, err);
}

static int bench_run(gemm_lt *g, const gpu_logprob_shape *s, bench_bufs *b, int backward,
                     kpo_error *err)
{
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0), cudaEventCreate(&e1);
    for (int i = 0; i < BENCH_WARM + BENCH_REPS; i++) {
        if (i == BENCH_WARM)
            cudaEventRecord(e0, NULL);
        if (bench_step(g, s, b, backward, err) != KPO_OK)
            return KPO_ERR;
    }
    cudaEventRecord(e1, NULL);
    if (cudaEventSynchronize(e1) != cudaSuccess)
        return error_set(err, "bench: %s", cudaGetErrorString(cudaGetLastError()));
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    cudaEventDestroy(e0), cudaEventDestroy(e1);
    const double per_call_s = ms * 1e-3 / BENCH_REPS;
    const double gemm_flops = (backward ? 8.0 : 2.0) * (double)s->rows * s->hidden * s->vocab;
    char what[128];
    /* The key (what) is the one bench/torch_reference.py prints too, so
     * run.sh can join the two: the chunk size goes into the note. */
    snprintf(what, sizeof what, "logprob %s %lldx%lld->%lld", backward ? "fwd+bwd" : "fwd",
             (long long)s->rows, (long long)s->hidden, (long long)s->vocab);
    printf("ROW|%s|%.2f|us/token|%.2f ms per call, chunks of %lld rows; %.0f TFLOP/s of GEMM work "
           "(790: H200 bf16 rate, KINDS.md)\n",
           what, per_call_s * 1e6 / (double)s->rows, per_call_s * 1e3, (long long)s->chunk_rows,
           gemm_flops / per_call_s / 1e12);
    fflush(stdout);
    return KPO_OK;
}

int main(void)
{
    const gpu_logprob_shape s = {.rows = 4096, .hidden = 2560, .vocab = 151936, .chunk_rows = 1024};
    kpo_error err;
    gemm_lt *g;
    if (gemm_lt_create(&g, 0, &err) != KPO_OK) {
        fprintf(stderr, "bench_gpu_logprob: %s\n", err.message);
        return 1;
    }
    bench_bufs b = {0};
    int rc = bench_alloc(&b, &s) == 0 ? KPO_OK : error_set(&err, "device allocation failed");
    for (int backward = 0; backward < 2 && rc == KPO_OK; backward++)
        rc = bench_run(g, &s, &b, backward, &err);
    if (rc != KPO_OK)
        fprintf(stderr, "bench_gpu_logprob: %s\n", err.message);
    bench_free(&b);
    gemm_lt_destroy(g);
    return rc == KPO_OK ? 0 : 1;
}
