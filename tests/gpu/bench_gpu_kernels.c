/* Kernel micro-benchmarks for tests/gpu/run.sh (not a test): cuBLASLt bf16
 * GEMM TFLOP/s at Qwen3-4B shapes (4096 tokens; hidden 2560, intermediate
 * 9728, q 4096), forward and both backward products; causal GQA attention
 * forward and backward at the 4B's 32 query heads, 8 kv heads, head_dim 128,
 * for one 4096-token sequence and for 8 packed sequences of 512. Prints
 * "ROW|<what>|<value>|<unit>|<note>" per measurement; the value is always
 * measured (CUDA events around 20 calls, 10 for attention, after 3 warm-ups,
 * random data). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cuda_runtime_api.h>

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

/* Attention forward and backward over n_seqs packed sequences of seq_len
 * tokens each. Causal FLOPs: the forward's two products (Q K^T and P V)
 * cost 2 * head_dim multiply-adds per visible (query, key) pair and head,
 * and about T^2/2 pairs are visible in a sequence of T tokens, so forward =
 * 4 * T^2/2 * head_dim * heads per sequence; the backward's five products
 * (S and dP recomputed, dV, dK, dQ) make it 2.5x the forward. */
static int bench_attention(int64_t n_seqs, int64_t seq_len, kpo_error *err)
{
    const int heads = 32, kv_heads = 8, head_dim = 128, warm = 3, reps = 10;
    const int64_t T = n_seqs * seq_len;
    const size_t nq = (size_t)T * heads * head_dim, nk = (size_t)T * kv_heads * head_dim;
    int64_t offsets[65];
    for (int64_t i = 0; i <= n_seqs; i++)
        offsets[i] = i * seq_len;
    uint16_t *q, *k, *v, *out, *dout, *dq, *dk, *dv;
    float *lse;
    int64_t *d_off;
    void *ws;
    if (cudaMalloc((void **)&d_off, (size_t)(n_seqs + 1) * 8))
        return error_set(err, "bench attention: cudaMalloc failed");
    cudaMemcpy(d_off, offsets, (size_t)(n_seqs + 1) * 8, cudaMemcpyHostToDevice);
    const gpu_attention_shape s = {.n_tokens = T, .n_seqs = n_seqs, .seq_offsets = d_off,
                                   .max_seq_len = seq_len, .heads = heads,
                                   .kv_heads = kv_heads, .head_dim = head_dim};
    const size_t ws_bytes = gpu_attention_backward_workspace(&s);
    if (cudaMalloc((void **)&q, nq * 2) || cudaMalloc((void **)&k, nk * 2) ||
        cudaMalloc((void **)&v, nk * 2) || cudaMalloc((void **)&out, nq * 2) ||
        cudaMalloc((void **)&dout, nq * 2) || cudaMalloc((void **)&dq, nq * 2) ||
        cudaMalloc((void **)&dk, nk * 2) || cudaMalloc((void **)&dv, nk * 2) ||
        cudaMalloc((void **)&lse, (size_t)T * heads * 4) || cudaMalloc(&ws, ws_bytes))
        return error_set(err, "bench attention: cudaMalloc failed");
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

    const double fwd_flops = (double)n_seqs * 4.0 * ((double)seq_len * seq_len / 2) * head_dim * heads;
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0), cudaEventCreate(&e1);
    int rc = KPO_OK;
    for (int pass = 0; pass < 2 && rc == KPO_OK; pass++) {
        for (int i = 0; i < warm + reps && rc == KPO_OK; i++) {
            if (i == warm)
                cudaEventRecord(e0, NULL);
            rc = pass == 0 ? gpu_attention_forward(&s, q, k, v, out, lse, NULL, err)
                           : gpu_attention_backward(&s, q, k, v, out, dout, lse, dq, dk, dv, ws,
                                                    NULL, err);
        }
        if (rc != KPO_OK)
            break;
        cudaEventRecord(e1, NULL);
        if (cudaEventSynchronize(e1) != cudaSuccess) {
            rc = error_set(err, "bench attention: %s", cudaGetErrorString(cudaGetLastError()));
            break;
        }
        float ms = 0;
        cudaEventElapsedTime(&ms, e0, e1);
        const double flops = pass == 0 ? fwd_flops : 2.5 * fwd_flops;
        const double tflops = flops * reps / (ms * 1e-3) / 1e12;
        char what[128];
        snprintf(what, sizeof what, "attention %s %lldx%lld tokens, 32/8 heads, d 128",
                 pass == 0 ? "forward" : "backward", (long long)n_seqs, (long long)seq_len);
        printf("ROW|%s|%.1f|TFLOP/s|%.3f ms per call; causal FLOPs (fwd 4*T^2/2*d*heads, bwd 2.5x)\n",
               what, tflops, ms / reps);
        fflush(stdout);
    }
    cudaEventDestroy(e0), cudaEventDestroy(e1);
    cudaFree(q), cudaFree(k), cudaFree(v), cudaFree(out), cudaFree(dout), cudaFree(dq);
    cudaFree(dk), cudaFree(dv), cudaFree(lse), cudaFree(d_off), cudaFree(ws);
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
    if (bench_attention(1, 4096, &err) != KPO_OK || bench_attention(8, 512, &err) != KPO_OK) {
        fprintf(stderr, "bench_gpu_kernels: %s\n", err.message);
        return 1;
    }
    return 0;
}
