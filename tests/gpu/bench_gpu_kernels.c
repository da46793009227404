/* Kernel micro-benchmarks for tests/gpu/run.sh (not a test): cuBLASLt bf16
 * GEMM TFLOP/s at Qwen3-4B shapes (4096 tokens; hidden 2560, intermediate
 * 9728, q 4096), forward and both backward products; causal GQA attention
 * forward and backward at the 4B's 32 query heads, 8 kv heads, head_dim 128,
 * for one 4096-token sequence, 8 packed sequences of 512 and a ragged
 * 10,240-token pack (5120, 3000, 1500, 600, 20), with the kernels and with
 * cuDNN's fused attention (rows "attention cudnn ...") when it can run. Prints
 * "ROW|<what>|<value>|<unit>|<note>" per measurement; the value is always
 * measured (CUDA events around 20 calls, 10 for attention, after 3 warm-ups,
 * random data). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cuda_runtime_api.h>

#include "model/cuda/attention_cudnn.h"
#include "model/cuda/gemm_lt.h"
#include "model/cuda/kernels_attention.h"

typedef enum { FWD, DX, DW } product;

static int bench_one(gemm_lt *g, int64_t rows, int64_t in, int64_t out, product p,
                     uint16_t *a, uint16_t *b, void *c, kpo_error *err)
{
    const int warm = 3, reps = 20;
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0), cudaEventCreate(&e1);
    for (int i = 0; i < warm + reps; i++) {
        if (i == warm)
            cudaEventRecord(e0, NULL);
        int rc = p == FWD  ? gemm_lt_linear(g, rows, in, out, a, b, c, NULL, err)
                 : p == DX ? gemm_lt_linear_dx(g, rows, in, out, a, b, c, 0.0f, NULL, err)
                           : gemm_lt_linear_dw(g, rows, in, out, a, b, c, NULL, err);
        if (rc != KPO_OK)
            return rc;
    }
    cudaEventRecord(e1, NULL);
    if (cudaEventSynchronize(e1) != cudaSuccess)
        return error_set(err, "bench: %s", cudaGetErrorString(cudaGetLastError()));
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    const double tflops = 2.0 * rows * in * out * reps / (ms * 1e-3) / 1e12;
    static const char *names[] = {"y=xW^T", "dx=dyW", "dw+=dy^Tx"};
    char what[96];
    snprintf(what, sizeof what, "gemm %s %lldx%lld->%lld", names[p], (long long)rows,
             (long long)in, (long long)out);
    printf("ROW|%s|%.1f|TFLOP/s|%.0f%% of 790 (bf16 rate measured on H200, KINDS.md)\n", what,
           tflops, 100.0 * tflops / 790.0);
    fflush(stdout);
    cudaEventDestroy(e0), cudaEventDestroy(e1);
    return KPO_OK;
}

/* Random-ish small bf16 bits (not zeros: zeros run faster), |x| ~ 2^-7..2^-6. */
static void fill_random_bf16(uint16_t *h, size_t n, uint32_t seed)
{
    uint32_t s = seed;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        h[i] = (uint16_t)(0x3c00u | ((s >> 16) & 0x01ffu) | ((s >> 31) << 15));
    }
}

/* One attention implementation on a packed batch: the kernels, or cuDNN
 * (attention_cudnn.h; its plan is built before the timed calls). */
typedef struct attn_bench {
    const gpu_attention_shape *s;
    attention_cudnn *cudnn; /* NULL: the kernels */
    const uint16_t *q, *k, *v, *dout;
    uint16_t *out, *dq, *dk, *dv;
    float *lse;
    void *ws;
    size_t ws_bytes;
} attn_bench;

static int attn_call(const attn_bench *b, int backward, kpo_error *err)
{
    const gpu_attention_shape *s = b->s;
    if (!b->cudnn)
        return backward ? gpu_attention_backward(s, b->q, b->k, b->v, b->out, b->dout, b->lse,
                                                 b->dq, b->dk, b->dv, b->ws, NULL, err)
                        : gpu_attention_forward(s, b->q, b->k, b->v, b->out, b->lse, NULL, err);
    return backward ? attention_cudnn_backward(b->cudnn, s, b->q, b->k, b->v, b->out, b->dout,
                                               b->lse, b->dq, b->dk, b->dv, b->ws, b->ws_bytes,
                                               NULL, err)
                    : attention_cudnn_forward(b->cudnn, s, b->q, b->k, b->v, b->out, b->lse,
                                              b->ws, b->ws_bytes, NULL, err);
}

/* ms per call of pass (0 forward, 1 backward) over reps calls after warm. */
static int attn_time(const attn_bench *b, int pass, double *ms_per_call, kpo_error *err)
{
    const int warm = 3, reps = 10;
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0), cudaEventCreate(&e1);
    int rc = KPO_OK;
    for (int i = 0; i < warm + reps && rc == KPO_OK; i++) {
        if (i == warm)
            cudaEventRecord(e0, NULL);
        rc = attn_call(b, pass, err);
    }
    cudaEventRecord(e1, NULL);
    if (rc == KPO_OK && cudaEventSynchronize(e1) != cudaSuccess)
        rc = error_set(err, "bench attention: %s", cudaGetErrorString(cudaGetLastError()));
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    cudaEventDestroy(e0), cudaEventDestroy(e1);
    *ms_per_call = ms / reps;
    return rc;
}

/* The workspace the implementation asks for (the kernels' backward one,
 * or the larger of cuDNN's forward and backward, which builds both plans). */
static int attn_workspace(attn_bench *b, kpo_error *err)
{
    size_t fwd = 0, bwd = gpu_attention_backward_workspace(b->s);
    if (b->cudnn && (attention_cudnn_workspace(b->cudnn, b->s, false, &fwd, err) != KPO_OK ||
                     attention_cudnn_workspace(b->cudnn, b->s, true, &bwd, err) != KPO_OK))
        return KPO_ERR;
    b->ws_bytes = fwd > bwd ? fwd : bwd;
    if (cudaMalloc(&b->ws, b->ws_bytes ? b->ws_bytes : 1))
        return error_set(err, "bench attention: cudaMalloc of the workspace failed");
    return KPO_OK;
}

/* Attention forward and backward over packed sequences of lens[0..n_seqs)
 * tokens, with the kernels or cuDNN. Causal FLOPs: the forward's two
 * products (Q K^T and P V) cost 2 * head_dim multiply-adds per visible
 * (query, key) pair and head, and about len^2/2 pairs are visible in a
 * sequence of len tokens, so forward = sum over sequences of 4 * len^2/2 *
 * head_dim * heads; the backward's five products (S and dP recomputed, dV,
 * dK, dQ) make it 2.5x the forward. */
static int bench_attention(const int64_t *lens, int64_t n_seqs, const char *label,
                           attention_cudnn *cudnn, kpo_error *err)
{
    const int heads = 32, kv_heads = 8, head_dim = 128;
    int64_t offsets[65] = {0}, max_len = 0;
    double fwd_flops = 0;
    for (int64_t i = 0; i < n_seqs; i++) {
        offsets[i + 1] = offsets[i] + lens[i];
        max_len = lens[i] > max_len ? lens[i] : max_len;
        fwd_flops += 4.0 * ((double)lens[i] * lens[i] / 2) * head_dim * heads;
    }
    const int64_t T = offsets[n_seqs];
    const size_t nq = (size_t)T * heads * head_dim, nk = (size_t)T * kv_heads * head_dim;
    uint16_t *q, *k, *v, *out, *dout, *dq, *dk, *dv;
    float *lse;
    int64_t *d_off;
    if (cudaMalloc((void **)&d_off, (size_t)(n_seqs + 1) * 8) ||
        cudaMalloc((void **)&q, nq * 2) || cudaMalloc((void **)&k, nk * 2) ||
        cudaMalloc((void **)&v, nk * 2) || cudaMalloc((void **)&out, nq * 2) ||
        cudaMalloc((void **)&dout, nq * 2) || cudaMalloc((void **)&dq, nq * 2) ||
        cudaMalloc((void **)&dk, nk * 2) || cudaMalloc((void **)&dv, nk * 2) ||
        cudaMalloc((void **)&lse, (size_t)T * heads * 4))
        return error_set(err, "bench attention: cudaMalloc failed");
    cudaMemcpy(d_off, offsets, (size_t)(n_seqs + 1) * 8, cudaMemcpyHostToDevice);
    uint16_t *h = malloc(nq * 2);
    fill_random_bf16(h, nq, 1);
    cudaMemcpy(q, h, nq * 2, cudaMemcpyHostToDevice);
    fill_random_bf16(h, nq, 2);
    cudaMemcpy(dout, h, nq * 2, cudaMemcpyHostToDevice);
    fill_random_bf16(h, nk, 3);
    cudaMemcpy(k, h, nk * 2, cudaMemcpyHostToDevice);
    fill_random_bf16(h, nk, 4);
    cudaMemcpy(v, h, nk * 2, cudaMemcpyHostToDevice);
    free(h);
    const gpu_attention_shape s = {.n_tokens = T, .n_seqs = n_seqs, .seq_offsets = d_off,
                                   .max_seq_len = max_len, .heads = heads,
                                   .kv_heads = kv_heads, .head_dim = head_dim};
    attn_bench b = {.s = &s, .cudnn = cudnn, .q = q, .k = k, .v = v, .dout = dout, .out = out,
                    .dq = dq, .dk = dk, .dv = dv, .lse = lse};
    int rc = cudnn ? attention_cudnn_set_batch(cudnn, &s, offsets, NULL, err) : KPO_OK;
    if (rc == KPO_OK)
        rc = attn_workspace(&b, err);
    for (int pass = 0; pass < 2 && rc == KPO_OK; pass++) {
        double ms = 0;
        rc = attn_time(&b, pass, &ms, err);
        if (rc != KPO_OK)
            break;
        const double flops = pass == 0 ? fwd_flops : 2.5 * fwd_flops;
        char what[160];
        snprintf(what, sizeof what, "attention %s%s %s tokens, 32/8 heads, d 128",
                 cudnn ? "cudnn " : "", pass == 0 ? "forward" : "backward", label);
        printf("ROW|%s|%.1f|TFLOP/s|%.3f ms per call; causal FLOPs (fwd 4*len^2/2*d*heads per "
               "sequence, bwd 2.5x)\n",
               what, flops / (ms * 1e-3) / 1e12, ms);
        fflush(stdout);
    }
    cudaFree(q), cudaFree(k), cudaFree(v), cudaFree(out), cudaFree(dout), cudaFree(dq);
    cudaFree(dk), cudaFree(dv), cudaFree(lse), cudaFree(d_off), cudaFree(b.ws);
    return rc;
}

/* The attention rows: 1 x 4096, 8 x 512 and the ragged 10,240-token pack,
 * with the kernels, then with cuDNN when it can run here (otherwise one
 * line on stderr says why and those rows are absent). */
static int bench_attention_all(kpo_error *err)
{
    static const int64_t one[] = {4096}, eight[] = {512, 512, 512, 512, 512, 512, 512, 512};
    static const int64_t ragged[] = {5120, 3000, 1500, 600, 20};
    const struct {
        const int64_t *lens;
        int64_t n;
        const char *label;
    } shapes[] = {{one, 1, "1x4096"}, {eight, 8, "8x512"}, {ragged, 5, "ragged 5120+3000+1500+600+20"}};
    attention_cudnn *cudnn = NULL;
    kpo_error why;
    if (attention_cudnn_create(&cudnn, &why) != KPO_OK)
        fprintf(stderr, "bench_gpu_kernels: no cuDNN attention rows: %s\n", why.message);
    int rc = KPO_OK;
    for (int impl = 0; impl < (cudnn ? 2 : 1) && rc == KPO_OK; impl++)
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0] && rc == KPO_OK; i++)
            rc = bench_attention(shapes[i].lens, shapes[i].n, shapes[i].label,
                                 impl ? cudnn : NULL, err);
    attention_cudnn_destroy(cudnn);
    return rc;
}

int main(void)
{
    const int64_t tokens = 4096;
    const int64_t shapes[][2] = {{2560, 9728}, {9728, 2560}, {2560, 4096}}; /* in, out */
    const size_t max_elems = (size_t)tokens * 9728 > (size_t)9728 * 2560 ? (size_t)tokens * 9728
                                                                         : (size_t)9728 * 2560;
    uint16_t *a, *b;
    float *c; /* fp32 is big enough for every output */
    kpo_error err;
    gemm_lt *g;
    if (gemm_lt_create(&g, 0, &err) != KPO_OK) {
        fprintf(stderr, "bench_gpu_kernels: %s\n", err.message);
        return 1;
    }
    if (cudaMalloc((void **)&a, max_elems * 2) || cudaMalloc((void **)&b, max_elems * 2) ||
        cudaMalloc((void **)&c, max_elems * 4)) {
        fprintf(stderr, "bench_gpu_kernels: cudaMalloc failed\n");
        return 1;
    }
    /* Random-ish bits (not zeros: zeros run faster): small bf16 values. */
    uint16_t *h = malloc(max_elems * 2);
    uint32_t s = 12345;
    for (size_t i = 0; i < max_elems; i++) {
        s = s * 1664525u + 1013904223u;
        h[i] = (uint16_t)(0x3c00u | ((s >> 16) & 0x01ffu) | ((s >> 31) << 15)); /* |x| ~ 2^-7..2^-6 */
    }
    cudaMemcpy(a, h, max_elems * 2, cudaMemcpyHostToDevice);
    cudaMemcpy(b, h, max_elems * 2, cudaMemcpyHostToDevice);
    free(h);
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++)
        for (int p = FWD; p <= DW; p++)
            if (bench_one(g, tokens, shapes[k][0], shapes[k][1], (product)p, a, b, c, &err) != KPO_OK) {
                fprintf(stderr, "bench_gpu_kernels: %s\n", err.message);
                return 1;
            }
    gemm_lt_destroy(g);
    cudaFree(a), cudaFree(b), cudaFree(c);
    if (bench_attention_all(&err) != KPO_OK) {
        fprintf(stderr, "bench_gpu_kernels: %s\n", err.message);
        return 1;
    }
    return 0;
}
