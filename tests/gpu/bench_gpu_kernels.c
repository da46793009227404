/* Kernel micro-benchmarks for tests/gpu/run.sh (not a test): cuBLASLt bf16
 * GEMM TFLOP/s at Qwen3-4B shapes (4096 tokens; hidden 2560, intermediate
 * 9728, q 4096), forward and both backward products. Prints
 * "ROW|<what>|<value>|<unit>|<note>" per measurement; the value is always
 * measured (CUDA events around 20 calls after 3 warm-ups, random data). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cuda_runtime_api.h>

#include "model/cuda/gemm_lt.h"

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
    return 0;
}
