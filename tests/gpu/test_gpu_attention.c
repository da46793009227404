/* Causal GQA attention on the device (model/cuda/kernels_attention.h)
 * against a double-precision CPU reference written here: naive softmax
 * attention per (sequence, head) on the same bf16-rounded inputs, and its
 * analytic backward. Both the tiled tensor-core kernels and the scalar
 * reference kernels (kernels_attention_reference.h) are checked, so when the
 * tiled ones fail and the scalar ones pass, the bug is in the tiling.
 *
 * Cases: GQA ratios 1, 2, 3, 4; head_dim 16, 48, 64, 128, 256 (tile 64 with
 * a compile-time 128, tile 64 with a runtime head_dim, tile 32 above 128);
 * ragged packs with a length-1 sequence, lengths off the 64/32 tile and an
 * exact tile; one 2048-token sequence (32 key tiles). Decode: a KV cache
 * filled by a prefill and then by single-token (and one 3-token) steps over
 * several slots, against the training forward of the same sequences, for
 * the block kernel and the split-KV one (kernels_attention_decode_split.h).
 * Split decode also against the block kernel and a double CPU reference
 * over random caches: batch 1, 8, 64, 256 at contexts 1..4096 (ragged),
 * prefill steps of several new tokens mixed with 1-token sequences, heads
 * 16/8 and 32/8, head_dim 64 and 128 (and the edge paths: a group of 12,
 * more than a block's 8 heads; head_dim 48 and 256), slots out of order,
 * cache positions past each query's limit left NaN so a causal slip shows,
 * and bit-for-bit repeats.
 *
 * Tolerance per check: |gpu - ref| <= rtol |ref| + atol max|ref|, the
 * worst element printed. bf16 outputs round once (2^-9 relative); the tiled
 * kernels also round P (forward) and P, dS (backward) to bf16 before the
 * second product, and the backward's rowsum(dO * O) uses the bf16 output,
 * so rtol = 2^-7 (four final roundings) and atol = 2^-8 (forward output)
 * or 2^-7 (gradients: sums of many rounded terms that can cancel) of the
 * largest reference value. lse is fp32: 1e-4. Skips without a GPU, except
 * the shape-validation test, which runs before any CUDA call. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cuda_runtime_api.h>

#include "core/rng.h"
#include "gpu_skip.h"
#include "gpu_test_util.h"
#include "model/cuda/kernels_attention.h"
#include "model/cuda/kernels_attention_decode_split.h"
#include "model/cuda/kernels_attention_reference.h"
#include "model/safetensors.h"

#define RTOL (1.0 / 128.0)     /* 2^-7 */
#define ATOL_OUT (1.0 / 256.0) /* 2^-8 of max|ref| */
#define ATOL_GRAD (1.0 / 128.0)
#define TOL_LSE 1e-4

/* Unwritten device outputs read as NaN (device_copy's fill byte). */
#define UNWRITTEN 0xff

/* ------------------------------------------------------------ host helpers */

/* Prints the worst element against rtol |want| + atol max|want| and fails
 * past it (NaN counts as worst); frees got. */
static void expect_close(const char *what, float *got, const double *want, int64_t n,
                         double rtol, double atol)
{
    const double scale = max_abs(want, n);
    int64_t at;
    const double worst = worst_element(got, want, n, rtol, atol * scale, 1e-30, &at);
    print_message("  %-34s n=%-8lld worst at %lld: gpu %.7g ref %.7g (%.3g of tolerance; max|ref| %.4g)\n",
                  what, (long long)n, (long long)at, got[at], want[at], worst, scale);
    if (!(worst <= 1.0))
        fail_msg("%s: element %lld outside tolerance", what, (long long)at);
    free(got);
}

/* ------------------------------------------------------- the CPU reference */

typedef struct att_case {
    const char *name;
    int heads, kv_heads, head_dim;
    int n_seqs;
    int64_t lens[8];
} att_case;

typedef struct att_host {
    int64_t T, offsets[9], max_len;
    float *q, *k, *v, *dout; /* bf16-rounded values */
    uint16_t *qb, *kb, *vb, *doutb;
    double *out, *lse, *dq, *dk, *dv;
} att_host;

/* Scaled scores of query t (head h) against keys start..t into s[]; returns
 * the log-sum-exp and leaves p[] = softmax. */
static double cpu_softmax_row(const att_case *c, const att_host *a, int64_t start, int64_t t,
                              int h, double *p)
{
    const int d = c->head_dim, g = h / (c->heads / c->kv_heads);
    const double scale = 1.0 / sqrt((double)d);
    const float *qv = a->q + (t * c->heads + h) * d;
    double mx = -INFINITY;
    for (int64_t j = start; j <= t; j++) {
        const float *kv = a->k + (j * c->kv_heads + g) * d;
        double s = 0;
        for (int e = 0; e < d; e++)
            s += (double)qv[e] * kv[e];
        p[j - start] = s * scale;
        mx = fmax(mx, p[j - start]);
    }
    double sum = 0;
    for (int64_t j = start; j <= t; j++)
        sum += (p[j - start] = exp(p[j - start] - mx));
    for (int64_t j = start; j <= t; j++)
        p[j - start] /= sum;
    return mx + log(sum);
}

/* out, lse and dq, dk, dv (double) from a's inputs: the textbook formulas,
 * dS = P (dP - rowsum(P dP)) / sqrt(d). */
static void cpu_attention(const att_case *c, att_host *a)
{
    const int d = c->head_dim, hq = c->heads, hk = c->kv_heads, group = hq / hk;
    const double scale = 1.0 / sqrt((double)d);
    const int64_t T = a->T;
    a->out = calloc((size_t)(T * hq * d), sizeof(double));
    a->lse = calloc((size_t)(T * hq), sizeof(double));
    a->dq = calloc((size_t)(T * hq * d), sizeof(double));
    a->dk = calloc((size_t)(T * hk * d), sizeof(double));
    a->dv = calloc((size_t)(T * hk * d), sizeof(double));
    double *p = malloc((size_t)a->max_len * sizeof *p), *dp = malloc((size_t)a->max_len * sizeof *dp);
    for (int s = 0; s < c->n_seqs; s++) {
        const int64_t start = a->offsets[s], end = a->offsets[s + 1];
        for (int64_t t = start; t < end; t++)
            for (int h = 0; h < hq; h++) {
                const int g = h / group;
                const int64_t row = t * hq + h;
                a->lse[row] = cpu_softmax_row(c, a, start, t, h, p);
                const float *dov = a->dout + row * d, *qv = a->q + row * d;
                double delta = 0;
                for (int64_t j = start; j <= t; j++) {
                    const float *vv = a->v + (j * hk + g) * d;
                    double dpj = 0;
                    for (int e = 0; e < d; e++) {
                        a->out[row * d + e] += p[j - start] * vv[e];
                        dpj += (double)dov[e] * vv[e];
                    }
                    dp[j - start] = dpj;
                    delta += p[j - start] * dpj;
                }
                for (int64_t j = start; j <= t; j++) {
                    const double ds = p[j - start] * (dp[j - start] - delta) * scale;
                    const float *kv = a->k + (j * hk + g) * d;
                    double *dkv = a->dk + (j * hk + g) * d, *dvv = a->dv + (j * hk + g) * d;
                    for (int e = 0; e < d; e++) {
                        a->dq[row * d + e] += ds * kv[e];
                        dkv[e] += ds * qv[e];
                        dvv[e] += p[j - start] * dov[e];
                    }
                }
            }
    }
    free(p), free(dp);
}

static void att_host_make(const att_case *c, uint64_t seed, att_host *a)
{
    memset(a, 0, sizeof *a);
    for (int s = 0; s < c->n_seqs; s++) {
        a->offsets[s + 1] = a->offsets[s] + c->lens[s];
        a->max_len = c->lens[s] > a->max_len ? c->lens[s] : a->max_len;
    }
    a->T = a->offsets[c->n_seqs];
    const int64_t nq = a->T * c->heads * c->head_dim, nk = a->T * c->kv_heads * c->head_dim;
    /* q, k ~ N(0, 1.2^2): scores of standard deviation ~1.4, so some rows
     * are peaked and some flat. */
    a->q = random_bf16(nq, 1.2, seed, &a->qb);
    a->k = random_bf16(nk, 1.2, seed + 1, &a->kb);
    a->v = random_bf16(nk, 1.0, seed + 2, &a->vb);
    a->dout = random_bf16(nq, 1.0, seed + 3, &a->doutb);
    cpu_attention(c, a);
}

static void att_host_free(att_host *a)
{
    free(a->q), free(a->k), free(a->v), free(a->dout);
    free(a->qb), free(a->kb), free(a->vb), free(a->doutb);
    free(a->out), free(a->lse), free(a->dq), free(a->dk), free(a->dv);
}

/* ---------------------------------------------------------- training tests */

typedef int (*forward_fn)(const gpu_attention_shape *, const uint16_t *, const uint16_t *,
                          const uint16_t *, uint16_t *, float *, void *, kpo_error *);
typedef int (*backward_fn)(const gpu_attention_shape *, const uint16_t *, const uint16_t *,
                           const uint16_t *, const uint16_t *, const uint16_t *, const float *,
                           uint16_t *, uint16_t *, uint16_t *, void *, void *, kpo_error *);

/* Runs one implementation's forward then backward (on its own out and
 * lse) and checks all five outputs. */
static void check_impl(const char *impl, const att_case *c, const att_host *a, forward_fn fwd,
                       backward_fn bwd)
{
    const int64_t T = a->T, nq = T * c->heads * c->head_dim, nk = T * c->kv_heads * c->head_dim;
    int64_t *d_off = device_copy(a->offsets, (size_t)(c->n_seqs + 1) * sizeof(int64_t), 0);
    const gpu_attention_shape s = {.n_tokens = T, .n_seqs = c->n_seqs, .seq_offsets = d_off,
                                   .max_seq_len = a->max_len, .heads = c->heads,
                                   .kv_heads = c->kv_heads, .head_dim = c->head_dim};
    uint16_t *d_q = device_copy(a->qb, (size_t)nq * 2, 0);
    uint16_t *d_k = device_copy(a->kb, (size_t)nk * 2, 0);
    uint16_t *d_v = device_copy(a->vb, (size_t)nk * 2, 0);
    uint16_t *d_do = device_copy(a->doutb, (size_t)nq * 2, 0);
    uint16_t *d_out = device_copy(NULL, (size_t)nq * 2, UNWRITTEN);
    uint16_t *d_dq = device_copy(NULL, (size_t)nq * 2, UNWRITTEN);
    uint16_t *d_dk = device_copy(NULL, (size_t)nk * 2, UNWRITTEN);
    uint16_t *d_dv = device_copy(NULL, (size_t)nk * 2, UNWRITTEN);
    float *d_lse = device_copy(NULL, (size_t)(T * c->heads) * 4, UNWRITTEN);
    const size_t ws_bytes = gpu_attention_backward_workspace(&s);
    assert_true(ws_bytes >= (size_t)(T * c->heads) * 4);
    void *d_ws = device_copy(NULL, ws_bytes, UNWRITTEN);

    CHECK_OK(fwd(&s, d_q, d_k, d_v, d_out, d_lse, NULL, ERR));
    CHECK_OK(bwd(&s, d_q, d_k, d_v, d_out, d_do, d_lse, d_dq, d_dk, d_dv, d_ws, NULL, ERR));
    assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);

    char what[96];
    snprintf(what, sizeof what, "%s out", impl);
    expect_close(what, download_bf16(d_out, nq), a->out, nq, RTOL, ATOL_OUT);
    snprintf(what, sizeof what, "%s lse", impl);
    expect_close(what, download_f32(d_lse, T * c->heads), a->lse, T * c->heads, TOL_LSE, TOL_LSE);
    snprintf(what, sizeof what, "%s dq", impl);
    expect_close(what, download_bf16(d_dq, nq), a->dq, nq, RTOL, ATOL_GRAD);
    snprintf(what, sizeof what, "%s dk", impl);
    expect_close(what, download_bf16(d_dk, nk), a->dk, nk, RTOL, ATOL_GRAD);
    snprintf(what, sizeof what, "%s dv", impl);
    expect_close(what, download_bf16(d_dv, nk), a->dv, nk, RTOL, ATOL_GRAD);

    /* The tiled backward promises bit-for-bit repeats (no atomics). */
    if (bwd == gpu_attention_backward) {
        float *dk1 = download_bf16(d_dk, nk);
        CHECK_OK(bwd(&s, d_q, d_k, d_v, d_out, d_do, d_lse, d_dq, d_dk, d_dv, d_ws, NULL, ERR));
        float *dk2 = download_bf16(d_dk, nk);
        assert_memory_equal(dk1, dk2, (size_t)nk * sizeof *dk1);
        free(dk1), free(dk2);
    }
    cudaFree(d_off), cudaFree(d_q), cudaFree(d_k), cudaFree(d_v), cudaFree(d_do);
    cudaFree(d_out), cudaFree(d_dq), cudaFree(d_dk), cudaFree(d_dv), cudaFree(d_lse), cudaFree(d_ws);
}

static void check_case(const att_case *c, uint64_t seed)
{
    print_message("%s: heads %d, kv_heads %d, head_dim %d, %d sequences\n", c->name, c->heads,
                  c->kv_heads, c->head_dim, c->n_seqs);
    att_host a;
    att_host_make(c, seed, &a);
    check_impl("tiled", c, &a, gpu_attention_forward, gpu_attention_backward);
    check_impl("scalar reference", c, &a, gpu_attention_forward_reference,
               gpu_attention_backward_reference);
    att_host_free(&a);
}

static void test_ragged_gqa(void **state)
{
    (void)state;
    GPU_REQUIRE_OR_SKIP();
    static const att_case cases[] = {
        {"ratio 1, head_dim 16", 2, 2, 16, 4, {1, 37, 64, 100}},
        {"ratio 2, head_dim 64", 4, 2, 64, 4, {70, 1, 129, 5}},
        {"ratio 4, head_dim 128", 8, 2, 128, 4, {33, 200, 1, 65}},
        {"ratio 3, head_dim 48", 3, 1, 48, 2, {50, 17}},
        {"ratio 2, head_dim 256 (tile 32)", 4, 2, 256, 3, {45, 1, 80}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(&cases[i], 100 + 10 * i);
}

static void test_long_sequence(void **state)
{
    (void)state;
    GPU_REQUIRE_OR_SKIP();
    static const att_case c = {"one 2048-token sequence", 4, 1, 128, 1, {2048}};
    check_case(&c, 900);
}

/* ------------------------------------------------------------------ decode */

/* Rows [seq offsets + from, + count) of a [T, width] bf16 matrix, packed. */
static void gather_rows(const uint16_t *src, int64_t width, const int64_t *offsets,
                        const int64_t *from, const int64_t *count, int n_seqs, uint16_t *dst)
{
    int64_t r = 0;
    for (int i = 0; i < n_seqs; i++)
        for (int64_t j = 0; j < count[i]; j++, r++)
            memcpy(dst + r * width, src + (offsets[i] + from[i] + j) * width, (size_t)width * 2);
}

typedef enum decode_impl { DECODE_BLOCK, DECODE_SPLIT } decode_impl;
static const char *const DECODE_IMPL_NAMES[] = {"block", "split"};

/* out from q and the cache with one decode kernel; the split kernel's
 * workspace starts as NaN, so a partial it reads unwritten shows. */
static void run_decode(decode_impl impl, const gpu_decode_shape *s, const uint16_t *d_q,
                       const uint16_t *d_kc, const uint16_t *d_vc, uint16_t *d_out)
{
    if (impl == DECODE_BLOCK) {
        CHECK_OK(gpu_attention_decode(s, d_q, d_kc, d_vc, d_out, NULL, ERR));
        return;
    }
    const size_t bytes = gpu_attention_decode_split_workspace(s, 0);
    void *d_ws = device_copy(NULL, bytes, UNWRITTEN);
    CHECK_OK(gpu_attention_decode_split(s, d_q, d_kc, d_vc, d_out, d_ws, bytes, NULL, ERR));
    assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
    cudaFree(d_ws);
}

/* One gpu_kv_cache_write + decode call: sequence i brings count[i] new
 * tokens (0 allowed) at position from[i]; their outputs land in the
 * matching rows of got [T, heads, d] (host floats). */
static void decode_call(decode_impl impl, const att_case *c, const att_host *a,
                        const int64_t *slots, const int64_t *from, const int64_t *count,
                        int64_t n_slots, int64_t max_len, uint16_t *d_kc, uint16_t *d_vc,
                        float *got)
{
    const int ns = c->n_seqs, d = c->head_dim;
    const int64_t qw = (int64_t)c->heads * d, kw = (int64_t)c->kv_heads * d;
    int64_t qoff[9] = {0}, max_new = 0, max_ctx = 0;
    for (int i = 0; i < ns; i++) {
        qoff[i + 1] = qoff[i] + count[i];
        max_new = count[i] > max_new ? count[i] : max_new;
        max_ctx = from[i] + count[i] > max_ctx ? from[i] + count[i] : max_ctx;
    }
    const int64_t n = qoff[ns];
    uint16_t *q = malloc((size_t)(n * qw) * 2), *k = malloc((size_t)(n * kw) * 2);
    uint16_t *v = malloc((size_t)(n * kw) * 2);
    gather_rows(a->qb, qw, a->offsets, from, count, ns, q);
    gather_rows(a->kb, kw, a->offsets, from, count, ns, k);
    gather_rows(a->vb, kw, a->offsets, from, count, ns, v);
    int64_t *d_qoff = device_copy(qoff, (size_t)(ns + 1) * 8, 0);
    int64_t *d_slots = device_copy(slots, (size_t)ns * 8, 0);
    int64_t *d_from = device_copy(from, (size_t)ns * 8, 0);
    uint16_t *d_q = device_copy(q, (size_t)(n * qw) * 2, 0);
    uint16_t *d_k = device_copy(k, (size_t)(n * kw) * 2, 0);
    uint16_t *d_v = device_copy(v, (size_t)(n * kw) * 2, 0);
    uint16_t *d_out = device_copy(NULL, (size_t)(n * qw) * 2, UNWRITTEN);
    const gpu_decode_shape s = {.n_queries = n, .n_seqs = ns, .query_offsets = d_qoff,
                                .slots = d_slots, .start_positions = d_from, .n_slots = n_slots,
                                .max_len = max_len, .max_new = max_new, .max_context = max_ctx,
                                .heads = c->heads, .kv_heads = c->kv_heads, .head_dim = d};
    CHECK_OK(gpu_kv_cache_write(&s, d_k, d_v, d_kc, d_vc, NULL, ERR));
    run_decode(impl, &s, d_q, d_kc, d_vc, d_out);
    float *out = download_bf16(d_out, n * qw);
    int64_t r = 0;
    for (int i = 0; i < ns; i++)
        for (int64_t j = 0; j < count[i]; j++, r++)
            memcpy(got + (a->offsets[i] + from[i] + j) * qw, out + r * qw, (size_t)qw * sizeof *got);
    free(out), free(q), free(k), free(v);
    cudaFree(d_qoff), cudaFree(d_slots), cudaFree(d_from), cudaFree(d_q), cudaFree(d_k);
    cudaFree(d_v), cudaFree(d_out);
}

/* Prefill (prompt[i] tokens), then a 3-token chunk for sequence 1 and single
 * tokens for the rest until every sequence is complete; finished sequences
 * stay in the call with 0 new tokens. */
static void check_decode(decode_impl impl, const att_case *c, const int64_t *prompt,
                         const int64_t *slots, int64_t n_slots, int64_t max_len, uint64_t seed)
{
    print_message("%s decode %s: heads %d, kv_heads %d, head_dim %d, %d sequences\n",
                  DECODE_IMPL_NAMES[impl], c->name, c->heads, c->kv_heads, c->head_dim, c->n_seqs);
    att_host a;
    att_host_make(c, seed, &a);
    const int64_t qw = (int64_t)c->heads * c->head_dim, kw = (int64_t)c->kv_heads * c->head_dim;
    const int64_t nq = a.T * qw, cache = n_slots * max_len * kw;
    uint16_t *d_kc = device_copy(NULL, (size_t)cache * 2, UNWRITTEN);
    uint16_t *d_vc = device_copy(NULL, (size_t)cache * 2, UNWRITTEN);
    float *got = malloc((size_t)nq * sizeof *got);
    for (int64_t i = 0; i < nq; i++)
        got[i] = NAN; /* a row no call produced fails the check */
    int64_t from[8] = {0}, count[8];
    for (int i = 0; i < c->n_seqs; i++)
        count[i] = prompt[i];
    for (int step = 0;; step++) {
        decode_call(impl, c, &a, slots, from, count, n_slots, max_len, d_kc, d_vc, got);
        int left = 0;
        for (int i = 0; i < c->n_seqs; i++) {
            from[i] += count[i];
            const int64_t rest = c->lens[i] - from[i], want = step == 0 && i == 1 ? 3 : 1;
            count[i] = rest < want ? rest : want;
            left += count[i] > 0;
        }
        if (!left)
            break;
    }
    /* The training forward over the full packed sequences. */
    int64_t *d_off = device_copy(a.offsets, (size_t)(c->n_seqs + 1) * 8, 0);
    const gpu_attention_shape s = {.n_tokens = a.T, .n_seqs = c->n_seqs, .seq_offsets = d_off,
                                   .max_seq_len = a.max_len, .heads = c->heads,
                                   .kv_heads = c->kv_heads, .head_dim = c->head_dim};
    uint16_t *d_q = device_copy(a.qb, (size_t)nq * 2, 0);
    uint16_t *d_k = device_copy(a.kb, (size_t)(a.T * kw) * 2, 0);
    uint16_t *d_v = device_copy(a.vb, (size_t)(a.T * kw) * 2, 0);
    uint16_t *d_out = device_copy(NULL, (size_t)nq * 2, UNWRITTEN);
    float *d_lse = device_copy(NULL, (size_t)(a.T * c->heads) * 4, UNWRITTEN);
    CHECK_OK(gpu_attention_forward(&s, d_q, d_k, d_v, d_out, d_lse, NULL, ERR));
    float *train = download_bf16(d_out, nq);
    double *train_d = malloc((size_t)nq * sizeof *train_d);
    for (int64_t i = 0; i < nq; i++)
        train_d[i] = train[i];
    float *got2 = malloc((size_t)nq * sizeof *got2);
    memcpy(got2, got, (size_t)nq * sizeof *got2);
    /* Two bf16 outputs of different summation orders: each within one
     * rounding (plus the tiled kernel's rounded P) of the exact value. */
    expect_close("decode vs training forward", got, train_d, nq, RTOL, ATOL_OUT);
    expect_close("decode vs cpu", got2, a.out, nq, RTOL, ATOL_OUT);
    free(train), free(train_d);
    cudaFree(d_off), cudaFree(d_q), cudaFree(d_k), cudaFree(d_v), cudaFree(d_out), cudaFree(d_lse);
    cudaFree(d_kc), cudaFree(d_vc);
    att_host_free(&a);
}

static void test_decode(void **state)
{
    (void)state;
    GPU_REQUIRE_OR_SKIP();
    /* Slots permuted and one left unused, so a slot mix-up shows. */
    static const att_case c1 = {"ratio 2, head_dim 64", 4, 2, 64, 3, {9, 20, 14}};
    const int64_t prompt1[] = {5, 12, 1}, slots1[] = {2, 0, 1};
    static const att_case c2 = {"ratio 4, head_dim 128", 8, 2, 128, 2, {300, 7}};
    const int64_t prompt2[] = {290, 2}, slots2[] = {1, 0};
    for (int impl = DECODE_BLOCK; impl <= DECODE_SPLIT; impl++) {
        check_decode((decode_impl)impl, &c1, prompt1, slots1, 4, 24, 500);
        check_decode((decode_impl)impl, &c2, prompt2, slots2, 2, 320, 600);
    }
}


/* ------------------------------------------------- split decode at scale */

/* One decode call over a cache filled directly: sequence i has start[i]
 * positions cached in slot slots[i] and brings n_new[i] tokens (written by
 * gpu_kv_cache_write); its rows k[i], v[i] [start + n_new, kv_heads, d]. */
typedef struct split_case {
    const char *name;
    int heads, kv_heads, head_dim, n_seqs;
    const int64_t *start, *n_new;
} split_case;

typedef struct split_host {
    int64_t T, max_ctx, max_new, *qoff, *slots;
    float *q, **k, **v;
    uint16_t *qb, **kb, **vb;
} split_host;

static uint64_t split_rand(uint64_t *s) /* splitmix64 */
{
    uint64_t x = (*s += 0x9e3779b97f4a7c15ull);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Random q, K, V (bf16-rounded, as att_host_make's scales) and slots: a
 * random permutation of n_seqs + 1 slots, the last left unused. */
static void split_host_make(const split_case *c, uint64_t seed, split_host *h)
{
    const int ns = c->n_seqs;
    const int64_t kw = (int64_t)c->kv_heads * c->head_dim;
    h->qoff = malloc((size_t)(ns + 1) * sizeof *h->qoff);
    h->slots = malloc((size_t)(ns + 1) * sizeof *h->slots);
    h->k = malloc((size_t)ns * sizeof *h->k), h->v = malloc((size_t)ns * sizeof *h->v);
    h->kb = malloc((size_t)ns * sizeof *h->kb), h->vb = malloc((size_t)ns * sizeof *h->vb);
    h->qoff[0] = 0, h->max_ctx = 0, h->max_new = 0;
    for (int i = 0; i < ns; i++) {
        const int64_t len = c->start[i] + c->n_new[i];
        h->qoff[i + 1] = h->qoff[i] + c->n_new[i];
        h->max_ctx = len > h->max_ctx ? len : h->max_ctx;
        h->max_new = c->n_new[i] > h->max_new ? c->n_new[i] : h->max_new;
        h->k[i] = random_bf16(len * kw, 1.2, seed + 10 + 2 * (uint64_t)i, &h->kb[i]);
        h->v[i] = random_bf16(len * kw, 1.0, seed + 11 + 2 * (uint64_t)i, &h->vb[i]);
    }
    h->T = h->qoff[ns];
    h->q = random_bf16(h->T * c->heads * c->head_dim, 1.2, seed, &h->qb);
    uint64_t rng = seed;
    for (int i = 0; i <= ns; i++)
        h->slots[i] = i;
    for (int i = ns; i > 0; i--) { /* Fisher-Yates */
        const int j = (int)(split_rand(&rng) % (uint64_t)(i + 1));
        const int64_t t = h->slots[i];
        h->slots[i] = h->slots[j], h->slots[j] = t;
    }
}

static void split_host_free(const split_case *c, split_host *h)
{
    for (int i = 0; i < c->n_seqs; i++)
        free(h->k[i]), free(h->v[i]), free(h->kb[i]), free(h->vb[i]);
    free(h->k), free(h->v), free(h->kb), free(h->vb);
    free(h->q), free(h->qb), free(h->qoff), free(h->slots);
}

/* out [T, heads, d] in double: new token j of sequence i attends to its
 * keys [0, start_i + j]. */
static double *split_reference(const split_case *c, const split_host *h)
{
    const int d = c->head_dim, hq = c->heads, hk = c->kv_heads, group = hq / hk;
    const double scale = 1.0 / sqrt((double)d);
    double *out = calloc((size_t)(h->T * hq * d), sizeof *out);
    double *p = malloc((size_t)h->max_ctx * sizeof *p);
    for (int i = 0; i < c->n_seqs; i++)
        for (int64_t j = 0; j < c->n_new[i]; j++) {
            const int64_t t = h->qoff[i] + j, pos = c->start[i] + j;
            for (int head = 0; head < hq; head++) {
                const int g = head / group;
                const float *qv = h->q + (t * hq + head) * d;
                double mx = -INFINITY, sum = 0;
                for (int64_t key = 0; key <= pos; key++) {
                    const float *kv = h->k[i] + (key * hk + g) * d;
                    double dot = 0;
                    for (int e = 0; e < d; e++)
                        dot += (double)qv[e] * kv[e];
                    p[key] = dot * scale;
                    mx = fmax(mx, p[key]);
                }
                for (int64_t key = 0; key <= pos; key++)
                    sum += (p[key] = exp(p[key] - mx));
                double *o = out + (t * hq + head) * d;
                for (int64_t key = 0; key <= pos; key++) {
                    const float *vv = h->v[i] + (key * hk + g) * d;
                    for (int e = 0; e < d; e++)
                        o[e] += p[key] / sum * vv[e];
                }
            }
        }
    free(p);
    return out;
}

/* The cache on the device: NaN everywhere (positions past a query's limit
 * must not be read), then each sequence's cached rows in its slot. */
static uint16_t *split_cache(const split_case *c, const split_host *h, uint16_t *const *rows,
                             int64_t max_len)
{
    const int64_t kw = (int64_t)c->kv_heads * c->head_dim, n_slots = c->n_seqs + 1;
    uint16_t *d_cache = device_copy(NULL, (size_t)(n_slots * max_len * kw) * 2, UNWRITTEN);
    for (int i = 0; i < c->n_seqs; i++)
        if (c->start[i] > 0)
            assert_int_equal(cudaMemcpy(d_cache + h->slots[i] * max_len * kw, rows[i],
                                        (size_t)(c->start[i] * kw) * 2, cudaMemcpyHostToDevice),
                             cudaSuccess);
    return d_cache;
}

/* The new tokens' rows of every sequence, packed [T, kv_heads, d], on the device. */
static uint16_t *split_new_rows(const split_case *c, const split_host *h, uint16_t *const *rows)
{
    const int64_t kw = (int64_t)c->kv_heads * c->head_dim;
    uint16_t *packed = malloc((size_t)(h->T * kw) * 2);
    for (int i = 0; i < c->n_seqs; i++)
        memcpy(packed + h->qoff[i] * kw, rows[i] + c->start[i] * kw,
               (size_t)(c->n_new[i] * kw) * 2);
    uint16_t *d = device_copy(packed, (size_t)(h->T * kw) * 2, 0);
    free(packed);
    return d;
}

static double *to_double(const float *x, int64_t n)
{
    double *y = malloc((size_t)n * sizeof *y);
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i];
    return y;
}

/* Split vs the double reference, the block kernel vs it, split vs block,
 * and the split kernel's repeat bit for bit. */
static void check_split(const split_case *c, uint64_t seed)
{
    split_host h;
    split_host_make(c, seed, &h);
    const int ns = c->n_seqs;
    const int64_t max_len = h.max_ctx + 3; /* spare NaN positions past every context */
    const int64_t nq = h.T * c->heads * c->head_dim;
    uint16_t *d_kc = split_cache(c, &h, h.kb, max_len), *d_vc = split_cache(c, &h, h.vb, max_len);
    uint16_t *d_knew = split_new_rows(c, &h, h.kb), *d_vnew = split_new_rows(c, &h, h.vb);
    int64_t *d_qoff = device_copy(h.qoff, (size_t)(ns + 1) * 8, 0);
    int64_t *d_slots = device_copy(h.slots, (size_t)ns * 8, 0);
    int64_t *d_start = device_copy(c->start, (size_t)ns * 8, 0);
    uint16_t *d_q = device_copy(h.qb, (size_t)nq * 2, 0);
    uint16_t *d_block = device_copy(NULL, (size_t)nq * 2, UNWRITTEN);
    uint16_t *d_split = device_copy(NULL, (size_t)nq * 2, UNWRITTEN);
    const gpu_decode_shape s = {.n_queries = h.T, .n_seqs = ns, .query_offsets = d_qoff,
                                .slots = d_slots, .start_positions = d_start,
                                .n_slots = ns + 1, .max_len = max_len, .max_new = h.max_new,
                                .max_context = h.max_ctx, .heads = c->heads,
                                .kv_heads = c->kv_heads, .head_dim = c->head_dim};
    print_message("split decode %s: heads %d/%d, head_dim %d, %d sequences, %lld queries, "
                  "longest context %lld, workspace %zu bytes\n",
                  c->name, c->heads, c->kv_heads, c->head_dim, ns, (long long)h.T,
                  (long long)h.max_ctx, gpu_attention_decode_split_workspace(&s, 0));
    CHECK_OK(gpu_kv_cache_write(&s, d_knew, d_vnew, d_kc, d_vc, NULL, ERR));
    run_decode(DECODE_BLOCK, &s, d_q, d_kc, d_vc, d_block);
    run_decode(DECODE_SPLIT, &s, d_q, d_kc, d_vc, d_split);
    float *split1 = download_bf16(d_split, nq), *block = download_bf16(d_block, nq);
    run_decode(DECODE_SPLIT, &s, d_q, d_kc, d_vc, d_split);
    float *split2 = download_bf16(d_split, nq);
    assert_memory_equal(split1, split2, (size_t)nq * sizeof *split1); /* no atomics */
    double *ref = split_reference(c, &h), *block_d = to_double(block, nq);
    expect_close("split vs cpu", split1, ref, nq, RTOL, ATOL_OUT);
    expect_close("block vs cpu", block, ref, nq, RTOL, ATOL_OUT);
    expect_close("split vs block", split2, block_d, nq, RTOL, ATOL_OUT);
    free(ref), free(block_d);
    cudaFree(d_kc), cudaFree(d_vc), cudaFree(d_knew), cudaFree(d_vnew), cudaFree(d_qoff);
    cudaFree(d_slots), cudaFree(d_start), cudaFree(d_q), cudaFree(d_block), cudaFree(d_split);
    split_host_free(c, &h);
}

/* n_seqs contexts uniform in [0, below), new tokens 1 each. */
static void random_starts(int64_t *start, int64_t *n_new, int n, int64_t below, uint64_t seed)
{
    uint64_t rng = seed;
    for (int i = 0; i < n; i++) {
        start[i] = (int64_t)(split_rand(&rng) % (uint64_t)below);
        n_new[i] = 1;
    }
}

static void test_decode_split(void **state)
{
    (void)state;
    GPU_REQUIRE_OR_SKIP();
    static const int64_t one[] = {1}, s4095[] = {4095}, s0[] = {0};
    const split_case b1_long = {"batch 1, context 4096", 32, 8, 128, 1, s4095, one};
    check_split(&b1_long, 1000);
    const split_case b1_short = {"batch 1, context 1", 16, 8, 128, 1, s0, one};
    check_split(&b1_short, 1010);
    static const int64_t s8[] = {0, 62, 63, 64, 999, 1024, 2047, 4095};
    static const int64_t ones8[] = {1, 1, 1, 1, 1, 1, 1, 1};
    const split_case b8 = {"batch 8, contexts 1..4096", 16, 8, 128, 8, s8, ones8};
    check_split(&b8, 1020);

    static int64_t start[256], n_new[256];
    random_starts(start, n_new, 64, 600, 1030);
    start[17] = 4095;
    const split_case b64 = {"batch 64, ragged", 32, 8, 128, 64, start, n_new};
    check_split(&b64, 1030);
    random_starts(start, n_new, 256, 64, 1040);
    start[3] = 4095, start[100] = 2500, start[201] = 1023, start[255] = 0;
    const split_case b256 = {"batch 256, ragged", 16, 8, 128, 256, start, n_new};
    check_split(&b256, 1040);

    /* Prefills (whole prompts, chunks) in the same call as 1-token steps. */
    static const int64_t pf_new[] = {37, 1, 5, 1, 128, 1, 3, 1, 1, 16, 1, 2};
    static const int64_t pf_start[] = {0, 2000, 100, 4095, 0, 63, 1021, 0, 700, 3000, 1, 4000};
    const split_case prefill = {"prefill mixed with steps", 32, 8, 128, 12, pf_start, pf_new};
    check_split(&prefill, 1050);
    static const int64_t d64_new[] = {1, 1, 4, 1, 1, 16, 1, 1};
    static const int64_t d64_start[] = {3000, 0, 17, 1200, 64, 0, 2500, 511};
    const split_case d64 = {"head_dim 64", 16, 8, 64, 8, d64_start, d64_new};
    check_split(&d64, 1060);

    /* Edge paths: a group of 12 takes two blocks (8 + 4 heads); head_dim
     * 48 leaves 2 of 8 lanes per key row idle; head_dim 256 is 32 lanes. */
    static const int64_t g12_new[] = {1, 9, 1, 2}, g12_start[] = {700, 0, 65, 300};
    const split_case g12 = {"group 12", 24, 2, 128, 4, g12_start, g12_new};
    check_split(&g12, 1070);
    static const int64_t d48_new[] = {1, 1, 2, 7}, d48_start[] = {1500, 3, 128, 0};
    const split_case d48 = {"group 3, head_dim 48", 6, 2, 48, 4, d48_start, d48_new};
    check_split(&d48, 1080);
    static const int64_t d256_new[] = {1, 3, 1}, d256_start[] = {2100, 0, 40};
    const split_case d256 = {"group 1, head_dim 256", 2, 2, 256, 3, d256_start, d256_new};
    check_split(&d256, 1090);
}

/* ------------------------------------------------------- shape validation */

/* Runs here too: every entry point validates its shape before any CUDA
 * call, so the messages can be checked without a GPU. */
static void expect_error(int rc, const kpo_error *err, const char *needle)
{
    assert_int_equal(rc, KPO_ERR);
    if (!strstr(err->message, needle))
        fail_msg("message \"%s\" lacks \"%s\"", err->message, needle);
    print_message("  rejected: %s\n", err->message);
}

static void test_bad_shapes(void **state)
{
    (void)state;
    kpo_error err;
    const int64_t fake_offsets = 0; /* never dereferenced: validation comes first */
    gpu_attention_shape s = {.n_tokens = 10, .n_seqs = 1, .seq_offsets = &fake_offsets,
                             .max_seq_len = 10, .heads = 4, .kv_heads = 2, .head_dim = 100};
    expect_error(gpu_attention_forward(&s, NULL, NULL, NULL, NULL, NULL, NULL, &err), &err,
                 "head_dim 100");
    expect_error(gpu_attention_backward(&s, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                                        NULL, NULL, &err),
                 &err, "head_dim 100");
    expect_error(gpu_attention_forward_reference(&s, NULL, NULL, NULL, NULL, NULL, NULL, &err),
                 &err, "head_dim 100");
    assert_int_equal(gpu_attention_backward_workspace(&s), 0);
    s.head_dim = 272; /* a multiple of 16, past 256 */
    expect_error(gpu_attention_check_shape(&s, "check", &err), &err, "head_dim 272");
    s.head_dim = 64, s.heads = 6, s.kv_heads = 4;
    expect_error(gpu_attention_forward(&s, NULL, NULL, NULL, NULL, NULL, NULL, &err), &err,
                 "heads 6 is not a multiple of kv_heads 4");
    expect_error(gpu_attention_backward_reference(&s, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                                                  NULL, NULL, NULL, NULL, &err),
                 &err, "kv_heads 4");
    s.heads = 4, s.n_tokens = -1;
    expect_error(gpu_attention_forward(&s, NULL, NULL, NULL, NULL, NULL, NULL, &err), &err,
                 "n_tokens -1");
    s.n_tokens = 10, s.max_seq_len = 11;
    expect_error(gpu_attention_forward(&s, NULL, NULL, NULL, NULL, NULL, NULL, &err), &err,
                 "max_seq_len 11");
    s.max_seq_len = 10; /* a valid shape: the NULL tensors are next */
    expect_error(gpu_attention_forward(&s, NULL, NULL, NULL, NULL, NULL, NULL, &err), &err,
                 "q is NULL");
    assert_int_equal(gpu_attention_check_shape(&s, "check", &err), KPO_OK);
    /* The model sizes the workspace and probes head configurations with no
     * offsets (model_cuda.c); only the entry points need them. */
    s.seq_offsets = NULL;
    assert_int_equal(gpu_attention_check_shape(&s, "check", &err), KPO_OK);
    assert_true(gpu_attention_backward_workspace(&s) >= 10 * 4 * sizeof(float));
    expect_error(gpu_attention_forward(&s, NULL, NULL, NULL, NULL, NULL, NULL, &err), &err,
                 "seq_offsets is NULL");
    expect_error(gpu_attention_backward(&s, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                                        NULL, NULL, &err),
                 &err, "seq_offsets is NULL");

    gpu_decode_shape ds = {.n_queries = 3, .n_seqs = 1, .query_offsets = &fake_offsets,
                           .slots = &fake_offsets, .start_positions = &fake_offsets,
                           .n_slots = 2, .max_len = 16, .max_new = 3, .max_context = 3,
                           .heads = 4, .kv_heads = 2, .head_dim = 100};
    expect_error(gpu_attention_decode(&ds, NULL, NULL, NULL, NULL, NULL, &err), &err,
                 "head_dim 100");
    ds.head_dim = 64, ds.kv_heads = 3;
    expect_error(gpu_kv_cache_write(&ds, NULL, NULL, NULL, NULL, NULL, &err), &err,
                 "heads 4 is not a multiple of kv_heads 3");
    ds.kv_heads = 2, ds.max_context = 17;
    expect_error(gpu_attention_decode(&ds, NULL, NULL, NULL, NULL, NULL, &err), &err,
                 "max_context 17");
    expect_error(gpu_attention_decode_split(&ds, NULL, NULL, NULL, NULL, NULL, 0, NULL, &err),
                 &err, "max_context 17");
    assert_int_equal(gpu_attention_decode_split_workspace(&ds, 132), 0);
    ds.max_context = 3, ds.head_dim = 100;
    expect_error(gpu_attention_decode_split(&ds, NULL, NULL, NULL, NULL, NULL, 0, NULL, &err),
                 &err, "head_dim 100");
    ds.head_dim = 64;
    expect_error(gpu_attention_decode_split(&ds, NULL, NULL, NULL, NULL, NULL, 0, NULL, &err),
                 &err, "q is NULL");
    /* One query over 4096 positions is split, so it needs a workspace:
     * refused before any launch (the tensors are never touched). */
    static _Alignas(16) uint16_t fake[8];
    ds = (gpu_decode_shape){.n_queries = 1, .n_seqs = 1, .query_offsets = &fake_offsets,
                            .slots = &fake_offsets, .start_positions = &fake_offsets,
                            .n_slots = 1, .max_len = 4096, .max_new = 1, .max_context = 4096,
                            .heads = 32, .kv_heads = 8, .head_dim = 128};
    const size_t ws = gpu_attention_decode_split_workspace(&ds, 132);
    assert_true(ws > 0);
    assert_true(ws <= gpu_attention_decode_split_workspace_max(32, 8, 128, 4096, 132));
    expect_error(gpu_attention_decode_split(&ds, fake, fake, fake, fake, NULL, 0, NULL, &err),
                 &err, "workspace");
    expect_error(gpu_attention_decode_split(&ds, fake, fake, fake, fake, fake, 16, NULL, &err),
                 &err, "workspace");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_shapes),
        cmocka_unit_test(test_ragged_gqa),
        cmocka_unit_test(test_long_sequence),
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_decode_split),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    char why[512];
    /* 77: meson's SKIP, so a run without a GPU says so in its summary */
    return failed ? 1 : gpu_unavailable(why, sizeof why) ? 77 : 0;
}
