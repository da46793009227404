/* cuBLASLt for the model's three row-major products. cuBLAS is column-major:
 * a row-major [r, c] matrix is the column-major [c, r] matrix with leading
 * dimension c, so row-major D = op(A) op(B) is computed as the column-major
 * D^T = op(B)^T op(A)^T, i.e. our B goes in cuBLAS's A slot and vice versa,
 * with the same transpose flags. */
#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

extern "C" { /* the project's C headers carry no linkage guards */
#include "core/error.h"
#include "core/cuda_check.h"
}
#include "model/cuda/gemm_lt.h"
#include "model/cuda/kernels_alias.h"

enum { GEMM_LT_PLANS = 64 };

/* Everything the heuristic's choice depends on. */
typedef struct gemm_key {
    int64_t m, n, k;  /* row-major D[m, n], inner dimension k */
    int ta, tb;       /* A stored [k, m] / B stored [n, k] when set */
    int d_fp32;       /* D is fp32 (else bf16) */
    int align_a, align_b, align_d; /* bytes, power of two <= 256 */
} gemm_key;

typedef struct gemm_plan {
    int used;
    gemm_key key;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t lt_a, lt_b, lt_d; /* cuBLAS's A (our B), B (our A), C = D */
    cublasLtMatmulAlgo_t algo;
} gemm_plan;

struct gemm_lt {
    cublasLtHandle_t handle;
    void *workspace; /* [workspace_bytes] device scratch for split-K etc. */
    size_t workspace_bytes;
    gemm_plan plans[GEMM_LT_PLANS];
    int next_evict; /* round robin: shapes repeat every layer, so LRU buys little */
};

static int lt_check(cublasStatus_t status, const char *what, kpo_error *err)
{
    if (status == CUBLAS_STATUS_SUCCESS)
        return KPO_OK;
    return error_set(err, "cuBLASLt %s: %s (%s, status %d)", what, cublasLtGetStatusName(status),
                     cublasLtGetStatusString(status), (int)status);
}

static int ptr_alignment(const void *p)
{
    const uintptr_t u = (uintptr_t)p;
    int a = 256;
    while (a > 1 && u % (uintptr_t)a != 0)
        a /= 2;
    return a;
}

static void plan_release(gemm_plan *p)
{
    if (!p->used)
        return;
    cublasLtMatrixLayoutDestroy(p->lt_a);
    cublasLtMatrixLayoutDestroy(p->lt_b);
    cublasLtMatrixLayoutDestroy(p->lt_d);
    cublasLtMatmulDescDestroy(p->op);
    memset(p, 0, sizeof *p);
}

/* Layout of a row-major [rows, cols] matrix as cuBLAS sees it. */
static int layout_rowmajor(cublasLtMatrixLayout_t *lt, cudaDataType_t type, int64_t rows,
                           int64_t cols, kpo_error *err)
{
    return lt_check(cublasLtMatrixLayoutCreate(lt, type, (uint64_t)cols, (uint64_t)rows, cols),
                    "matrix layout", err);
}

static int plan_build(gemm_lt *g, gemm_plan *p, const gemm_key *key, kpo_error *err)
{
    memset(p, 0, sizeof *p);
    p->key = *key;
    const cublasOperation_t op_a = key->tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t op_b = key->ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cudaDataType_t d_type = key->d_fp32 ? CUDA_R_32F : CUDA_R_16BF;
    cublasLtMatmulPreference_t pref = NULL;
    int count = 0;
    cublasLtMatmulHeuristicResult_t result;
    memset(&result, 0, sizeof result);
    const uint32_t align[3] = {(uint32_t)key->align_b, (uint32_t)key->align_a,
                               (uint32_t)key->align_d};
    int rc = lt_check(cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F),
                      "matmul descriptor", err);
    if (rc == KPO_OK)
        rc = lt_check(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &op_a,
                                                     sizeof op_a), "transpose A", err);
    if (rc == KPO_OK)
        rc = lt_check(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &op_b,
                                                     sizeof op_b), "transpose B", err);
    /* Our B is stored [k, n] or [n, k]; our A [m, k] or [k, m]. */
    if (rc == KPO_OK)
        rc = layout_rowmajor(&p->lt_a, CUDA_R_16BF, key->tb ? key->n : key->k,
                             key->tb ? key->k : key->n, err);
    if (rc == KPO_OK)
        rc = layout_rowmajor(&p->lt_b, CUDA_R_16BF, key->ta ? key->k : key->m,
                             key->ta ? key->m : key->k, err);
    if (rc == KPO_OK)
        rc = layout_rowmajor(&p->lt_d, d_type, key->m, key->n, err);
    if (rc == KPO_OK)
        rc = lt_check(cublasLtMatmulPreferenceCreate(&pref), "preference", err);
    if (rc == KPO_OK)
        rc = lt_check(cublasLtMatmulPreferenceSetAttribute(
                          pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &g->workspace_bytes,
                          sizeof g->workspace_bytes), "workspace preference", err);
    /* The default assumes 256-byte aligned pointers; sub-views may not be. */
    const cublasLtMatmulPreferenceAttributes_t align_attr[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; i < 4 && rc == KPO_OK; i++)
        rc = lt_check(cublasLtMatmulPreferenceSetAttribute(pref, align_attr[i], &align[i < 3 ? i : 2],
                                                           sizeof align[0]),
                      "alignment preference", err);
    if (rc == KPO_OK)
        rc = lt_check(cublasLtMatmulAlgoGetHeuristic(g->handle, p->op, p->lt_a, p->lt_b, p->lt_d,
                                                     p->lt_d, pref, 1, &result, &count),
                      "algorithm heuristic", err);
    if (rc == KPO_OK && count == 0)
        rc = error_set(err, "cuBLASLt: no algorithm for bf16 [%lld, %lld] x [%lld, %lld] -> %s",
                       (long long)key->m, (long long)key->k, (long long)key->k,
                       (long long)key->n, key->d_fp32 ? "fp32" : "bf16");
    if (pref)
        cublasLtMatmulPreferenceDestroy(pref);
    p->used = 1; /* so plan_release frees whatever was created */
    if (rc != KPO_OK) {
        plan_release(p);
        return KPO_ERR;
    }
    p->algo = result.algo;
    return KPO_OK;
}

static int plan_find(gemm_lt *g, const gemm_key *key, gemm_plan **out, kpo_error *err)
{
    for (int i = 0; i < GEMM_LT_PLANS; i++)
        if (g->plans[i].used && memcmp(&g->plans[i].key, key, sizeof *key) == 0) {
            *out = &g->plans[i];
            return KPO_OK;
        }
    gemm_plan *p = &g->plans[g->next_evict];
    g->next_evict = (g->next_evict + 1) % GEMM_LT_PLANS;
    plan_release(p);
    if (plan_build(g, p, key, err) != KPO_OK)
        return KPO_ERR;
    *out = p;
    return KPO_OK;
}

/* Row-major D[m, n] = op(A) op(B) + beta D, A stored [m, k] (ta = 0) or
 * [k, m], B stored [k, n] (tb = 0) or [n, k]; bf16 in, fp32 accumulate. */
static int gemm_rowmajor(const char *what, gemm_lt *g, int ta, int tb, int64_t m, int64_t n,
                         int64_t k, const uint16_t *a, const uint16_t *b, void *d, int d_fp32,
                         float beta, void *stream, kpo_error *err)
{
    if (m < 0 || n < 0 || k < 0)
        return error_set(err, "%s: negative shape [%lld, %lld, %lld]", what, (long long)m,
                         (long long)n, (long long)k);
    /* cuBLASLt reads A and B while it writes D: no product runs in place. */
    const kernels_span out[] = {{"D", d, (size_t)(m * n) * (d_fp32 ? 4 : 2)}};
    const kernels_span in[] = {{"A", a, (size_t)(m * k) * 2}, {"B", b, (size_t)(k * n) * 2}};
    if (kernels_check_disjoint(what, out, 1, in, 2, err) != KPO_OK)
        return KPO_ERR;
    if (m == 0 || n == 0)
        return KPO_OK;
    if (k == 0) /* an empty sum: D = beta D */
        return beta != 0.0f ? KPO_OK
                            : cuda_check(cudaMemsetAsync(d, 0, (size_t)(m * n) * (d_fp32 ? 4 : 2),
                                                         (cudaStream_t)stream),
                                         "gemm_lt: zero output", err);
    gemm_key key;
    memset(&key, 0, sizeof key); /* padding too: the key is compared with memcmp */
    key.m = m, key.n = n, key.k = k, key.ta = ta, key.tb = tb, key.d_fp32 = d_fp32;
    key.align_a = ptr_alignment(a), key.align_b = ptr_alignment(b), key.align_d = ptr_alignment(d);
    gemm_plan *p;
    if (plan_find(g, &key, &p, err) != KPO_OK)
        return KPO_ERR;
    const float alpha = 1.0f;
    return lt_check(cublasLtMatmul(g->handle, p->op, &alpha, b, p->lt_a, a, p->lt_b, &beta, d,
                                   p->lt_d, d, p->lt_d, &p->algo, g->workspace,
                                   g->workspace_bytes, (cudaStream_t)stream),
                    "matmul", err);
}

extern "C" int gemm_lt_create(gemm_lt **out, size_t workspace_bytes, kpo_error *err)
{
    *out = NULL;
    if (cuda_require_device(err) != KPO_OK)
        return KPO_ERR;
    gemm_lt *g = (gemm_lt *)calloc(1, sizeof *g);
    if (!g)
        return error_set(err, "gemm_lt: out of host memory");
    g->workspace_bytes = workspace_bytes ? workspace_bytes : (size_t)32 << 20;
    if (lt_check(cublasLtCreate(&g->handle), "create", err) != KPO_OK) {
        free(g);
        return KPO_ERR;
    }
    if (cuda_check(cudaMalloc(&g->workspace, g->workspace_bytes), "gemm_lt: workspace",
                   err) != KPO_OK) {
        gemm_lt_destroy(g);
        return KPO_ERR;
    }
    *out = g;
    return KPO_OK;
}

extern "C" void gemm_lt_destroy(gemm_lt *g)
{
    if (!g)
        return;
    for (int i = 0; i < GEMM_LT_PLANS; i++)
        plan_release(&g->plans[i]);
    cudaFree(g->workspace);
    cublasLtDestroy(g->handle);
    free(g);
}

extern "C" int gemm_lt_linear(gemm_lt *g, int64_t rows, int64_t in, int64_t out,
                              const uint16_t *x, const uint16_t *w, uint16_t *y, void *stream,
                              kpo_error *err)
{
    return gemm_rowmajor("gemm_lt_linear (A = x, B = w, D = y)", g, 0, 1, rows, out, in, x, w,
                         y, 0, 0.0f, stream, err);
}

extern "C" int gemm_lt_linear_f32(gemm_lt *g, int64_t rows, int64_t in, int64_t out,
                                  const uint16_t *x, const uint16_t *w, float *y, void *stream,
                                  kpo_error *err)
{
    return gemm_rowmajor("gemm_lt_linear_f32 (A = x, B = w, D = y)", g, 0, 1, rows, out, in, x, w,
                         y, 1, 0.0f, stream, err);
}

extern "C" int gemm_lt_linear_dx(gemm_lt *g, int64_t rows, int64_t in, int64_t out,
                                 const uint16_t *dy, const uint16_t *w, uint16_t *dx, float beta,
                                 void *stream, kpo_error *err)
{
    return gemm_rowmajor("gemm_lt_linear_dx (A = dy, B = w, D = dx)", g, 0, 0, rows, in, out, dy,
                         w, dx, 0, beta, stream, err);
}

extern "C" int gemm_lt_linear_dw(gemm_lt *g, int64_t rows, int64_t in, int64_t out,
                                 const uint16_t *dy, const uint16_t *x, float *dw, void *stream,
                                 kpo_error *err)
{
    return gemm_rowmajor("gemm_lt_linear_dw (A = dy, B = x, D = dw)", g, 1, 0, out, in, rows, dy,
                         x, dw, 1, 1.0f, stream, err);
}
