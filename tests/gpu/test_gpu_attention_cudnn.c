/* cuDNN's fused attention (model/cuda/attention_cudnn.h) against the
 * project's own kernels on the device: the scalar reference kernels
 * (kernels_attention_reference.h: fp32, no bf16 rounding of P or dS) are
 * the truth, the tiled kernels are checked against it the same way, so a
 * cuDNN failure reads next to what the kernel achieves on the same data.
 *
 * Shapes: one 4096-token sequence, 8 x 512, the ragged 10,240-token pack
 * (5120, 3000, 1500, 600, 20), heads 32/8 and 16/8, head_dim 128, and a
 * small ragged pack with a length-1 sequence and lengths off every tile.
 * Per shape: cuDNN forward and backward; the kernel backward on cuDNN's
 * out and lse, and cuDNN's backward on the kernel's (the model's fallback
 * may switch between them mid-step); forward repeatability (no atomics, so
 * bit for bit) and whether the backward repeats (dQ uses fp32 atomics: not
 * expected, printed).
 *
 * Tolerances: test_gpu_attention.c's (|got - ref| <= rtol |ref| + atol
 * max|ref|: rtol 2^-7, atol 2^-8 for out and 2^-7 for gradients, lse 1e-4)
 * with rtol widened by 2^-9 because the reference here is itself a bf16
 * output (one more rounding than the double CPU reference there).
 *
 * Without a GPU, or when cuDNN cannot be used (built without it, library
 * missing or too old: the reason is printed), the device tests skip and the
 * program exits 77 (meson's SKIP). test_create_without_gpu runs anywhere:
 * creating the cuDNN state must fail with a message, never crash. */
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

#include "gpu_skip.h"
#include "gpu_test_util.h"
#include "kpo_config.h"
#include "model/cuda/attention_cudnn.h"
#include "model/cuda/kernels_attention.h"
#include "model/cuda/kernels_attention_reference.h"

#define RTOL (1.0 / 128.0 + 1.0 / 512.0)
#define ATOL_OUT (1.0 / 256.0)
#define ATOL_GRAD (1.0 / 128.0)
#define TOL_LSE 1e-4
#define UNWRITTEN 0xff /* unwritten outputs read as NaN */

/* Why cuDNN cannot run here ("" when it can), decided once in main. */
static char cudnn_why[1024];

#define CUDNN_REQUIRE_OR_SKIP()                                                \
    do {                                                                       \
        GPU_REQUIRE_OR_SKIP();                                                 \
        if (cudnn_why[0]) {                                                    \
            print_message("cuDNN unavailable: %s\n", cudnn_why);               \
            skip();                                                            \
        }                                                                      \
    } while (0)

typedef struct att_case {
    const char *name;
    int heads, kv_heads;
    int n_seqs;
    int64_t lens[8];
} att_case;

enum { HEAD_DIM = 128 };

/* Device inputs and one set of outputs per implementation. */
typedef struct outputs {
    uint16_t *out, *dq, *dk, *dv;
    float *lse;
} outputs;

typedef struct att_dev {
    gpu_attention_shape s;
    int64_t offsets[9], nq, nk;
    uint16_t *q, *k, *v, *dout;
} att_dev;

static void outputs_alloc(const att_dev *d, outputs *o)
{
    o->out = device_copy(NULL, (size_t)d->nq * 2, UNWRITTEN);
    o->dq = device_copy(NULL, (size_t)d->nq * 2, UNWRITTEN);
    o->dk = device_copy(NULL, (size_t)d->nk * 2, UNWRITTEN);
    o->dv = device_copy(NULL, (size_t)d->nk * 2, UNWRITTEN);
    o->lse = device_copy(NULL, (size_t)(d->s.n_tokens * d->s.heads) * 4, UNWRITTEN);
}

static void outputs_free(outputs *o)
{
    cudaFree(o->out), cudaFree(o->dq), cudaFree(o->dk), cudaFree(o->dv), cudaFree(o->lse);
}

static void upload_random(uint16_t **dst, int64_t n, double scale, uint64_t seed)
{
    uint16_t *bits;
    free(random_bf16(n, scale, seed, &bits));
    *dst = device_copy(bits, (size_t)n * 2, 0);
    free(bits);
}

static void att_dev_make(const att_case *c, uint64_t seed, att_dev *d)
{
    memset(d, 0, sizeof *d);
    int64_t max_len = 0;
    for (int i = 0; i < c->n_seqs; i++) {
        d->offsets[i + 1] = d->offsets[i] + c->lens[i];
        max_len = c->lens[i] > max_len ? c->lens[i] : max_len;
    }
    const int64_t T = d->offsets[c->n_seqs];
    d->nq = T * c->heads * HEAD_DIM;
    d->nk = T * c->kv_heads * HEAD_DIM;
    d->s = (gpu_attention_shape){
        .n_tokens = T, .n_seqs = c->n_seqs,
        .seq_offsets = device_copy(d->offsets, (size_t)(c->n_seqs + 1) * 8, 0),
        .max_seq_len = max_len, .heads = c->heads, .kv_heads = c->kv_heads,
        .head_dim = HEAD_DIM};
    /* As test_gpu_attention.c: q, k ~ N(0, 1.2^2), so some rows are peaked. */
    upload_random(&d->q, d->nq, 1.2, seed);
    upload_random(&d->k, d->nk, 1.2, seed + 1);
    upload_random(&d->v, d->nk, 1.0, seed + 2);
    upload_random(&d->dout, d->nq, 1.0, seed + 3);
}

static void att_dev_free(att_dev *d)
{
    cudaFree((void *)d->s.seq_offsets);
    cudaFree(d->q), cudaFree(d->k), cudaFree(d->v), cudaFree(d->dout);
}

/* ------------------------------------------------------------ comparisons */

static double *to_double(float *x, int64_t n)
{
    double *y = malloc((size_t)n * sizeof *y);
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i];
    free(x);
    return y;
}

/* The reference's outputs as doubles (the expectation of every check). */
typedef struct truth {
    double *out, *lse, *dq, *dk, *dv;
} truth;

static void expect_close(const char *what, float *got, const double *want, int64_t n,
                         double rtol, double atol)
{
    const double scale = max_abs(want, n);
    int64_t at;
    const double worst = worst_element(got, want, n, rtol, atol * scale, 1e-30, &at);
    print_message("  %-40s n=%-9lld worst at %lld: got %.7g ref %.7g (%.3g of tolerance)\n",
                  what, (long long)n, (long long)at, got[at], want[at], worst);
    if (!(worst <= 1.0))
        fail_msg("%s: element %lld outside tolerance", what, (long long)at);
    free(got);
}

static void check_forward(const char *impl, const att_dev *d, const outputs *o, const truth *t)
{
    char what[96];
    const int64_t nl = d->s.n_tokens * d->s.heads;
    snprintf(what, sizeof what, "%s out", impl);
    expect_close(what, download_bf16(o->out, d->nq), t->out, d->nq, RTOL, ATOL_OUT);
    snprintf(what, sizeof what, "%s lse", impl);
    expect_close(what, download_f32(o->lse, nl), t->lse, nl, TOL_LSE, TOL_LSE);
}

static void check_backward(const char *impl, const att_dev *d, const outputs *o, const truth *t)
{
    char what[96];
    snprintf(what, sizeof what, "%s dq", impl);
    expect_close(what, download_bf16(o->dq, d->nq), t->dq, d->nq, RTOL, ATOL_GRAD);
    snprintf(what, sizeof what, "%s dk", impl);
    expect_close(what, download_bf16(o->dk, d->nk), t->dk, d->nk, RTOL, ATOL_GRAD);
    snprintf(what, sizeof what, "%s dv", impl);
    expect_close(what, download_bf16(o->dv, d->nk), t->dv, d->nk, RTOL, ATOL_GRAD);
}

/* ------------------------------------------------------------------ runs */

static void run_reference(const att_dev *d, truth *t)
{
    outputs o;
    outputs_alloc(d, &o);
    CHECK_OK(gpu_attention_forward_reference(&d->s, d->q, d->k, d->v, o.out, o.lse, NULL, ERR));
    CHECK_OK(gpu_attention_backward_reference(&d->s, d->q, d->k, d->v, o.out, d->dout, o.lse,
                                              o.dq, o.dk, o.dv, NULL, NULL, ERR));
    assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
    const int64_t nl = d->s.n_tokens * d->s.heads;
    t->out = to_double(download_bf16(o.out, d->nq), d->nq);
    t->lse = to_double(download_f32(o.lse, nl), nl);
    t->dq = to_double(download_bf16(o.dq, d->nq), d->nq);
    t->dk = to_double(download_bf16(o.dk, d->nk), d->nk);
    t->dv = to_double(download_bf16(o.dv, d->nk), d->nk);
    outputs_free(&o);
}

static void kernel_backward(const att_dev *d, const outputs *fwd, outputs *o)
{
    void *ws = device_copy(NULL, gpu_attention_backward_workspace(&d->s), UNWRITTEN);
    CHECK_OK(gpu_attention_backward(&d->s, d->q, d->k, d->v, fwd->out, d->dout, fwd->lse, o->dq,
                                    o->dk, o->dv, ws, NULL, ERR));
    assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
    cudaFree(ws);
}

/* A workspace of the size cuDNN asks for (NaN-filled, so nothing may
 * depend on its contents). */
static void *cudnn_ws(attention_cudnn *a, const att_dev *d, bool backward, size_t *bytes)
{
    CHECK_OK(attention_cudnn_workspace(a, &d->s, backward, bytes, ERR));
    return device_copy(NULL, *bytes, UNWRITTEN);
}

static void cudnn_forward(attention_cudnn *a, const att_dev *d, outputs *o)
{
    size_t bytes;
    void *ws = cudnn_ws(a, d, false, &bytes);
    CHECK_OK(attention_cudnn_forward(a, &d->s, d->q, d->k, d->v, o->out, o->lse, ws, bytes, NULL,
                                     ERR));
    assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
    cudaFree(ws);
}

static void cudnn_backward(attention_cudnn *a, const att_dev *d, const outputs *fwd, outputs *o)
{
    size_t bytes;
    void *ws = cudnn_ws(a, d, true, &bytes);
    CHECK_OK(attention_cudnn_backward(a, &d->s, d->q, d->k, d->v, fwd->out, d->dout, fwd->lse,
                                      o->dq, o->dk, o->dv, ws, bytes, NULL, ERR));
    assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
    cudaFree(ws);
}

/* Bit-for-bit equality of two device buffers. */
static bool same_bits(const void *x, const void *y, size_t bytes)
{
    unsigned char *hx = malloc(bytes), *hy = malloc(bytes);
    assert_int_equal(cudaMemcpy(hx, x, bytes, cudaMemcpyDeviceToHost), cudaSuccess);
    assert_int_equal(cudaMemcpy(hy, y, bytes, cudaMemcpyDeviceToHost), cudaSuccess);
    const bool same = memcmp(hx, hy, bytes) == 0;
    free(hx), free(hy);
    return same;
}

static void repeatability(attention_cudnn *a, const att_dev *d, const outputs *first)
{
    outputs again;
    outputs_alloc(d, &again);
    cudnn_forward(a, d, &again);
    assert_true(same_bits(first->out, again.out, (size_t)d->nq * 2));
    assert_true(same_bits(first->lse, again.lse, (size_t)(d->s.n_tokens * d->s.heads) * 4));
    cudnn_backward(a, d, first, &again);
    print_message("  cuDNN forward repeats bit for bit; backward dq %s, dk %s\n",
                  same_bits(first->dq, again.dq, (size_t)d->nq * 2) ? "repeats" : "differs",
                  same_bits(first->dk, again.dk, (size_t)d->nk * 2) ? "repeats" : "differs");
    outputs_free(&again);
}

static void check_case(attention_cudnn *a, const att_case *c, uint64_t seed)
{
    print_message("%s: heads %d/%d, head_dim %d, %d sequences\n", c->name, c->heads, c->kv_heads,
                  HEAD_DIM, c->n_seqs);
    att_dev d;
    att_dev_make(c, seed, &d);
    CHECK_OK(attention_cudnn_set_batch(a, &d.s, d.offsets, NULL, ERR));
    truth t;
    run_reference(&d, &t);
    outputs kern, cud, mixed;
    outputs_alloc(&d, &kern), outputs_alloc(&d, &cud), outputs_alloc(&d, &mixed);
    CHECK_OK(gpu_attention_forward(&d.s, d.q, d.k, d.v, kern.out, kern.lse, NULL, ERR));
    kernel_backward(&d, &kern, &kern);
    check_forward("kernel", &d, &kern, &t);
    check_backward("kernel", &d, &kern, &t);
    cudnn_forward(a, &d, &cud);
    check_forward("cuDNN", &d, &cud, &t);
    cudnn_backward(a, &d, &cud, &cud);
    check_backward("cuDNN", &d, &cud, &t);
    kernel_backward(&d, &cud, &mixed);
    check_backward("kernel backward after cuDNN forward", &d, &mixed, &t);
    cudnn_backward(a, &d, &kern, &mixed);
    check_backward("cuDNN backward after kernel forward", &d, &mixed, &t);
    repeatability(a, &d, &cud);
    outputs_free(&kern), outputs_free(&cud), outputs_free(&mixed);
    free(t.out), free(t.lse), free(t.dq), free(t.dk), free(t.dv);
    att_dev_free(&d);
}

/* ------------------------------------------------------------------ tests */

static void test_create_without_gpu(void **state)
{
    (void)state;
    char why[512];
    if (!gpu_unavailable(why, sizeof why)) {
        print_message("a GPU is here: nothing to check\n");
        return;
    }
    /* No GPU: loading may work, the handle cannot; either way an error. */
    attention_cudnn *a = NULL;
    kpo_error err;
    error_clear(&err);
    assert_int_equal(attention_cudnn_create(&a, &err), KPO_ERR);
    assert_null(a);
    print_message("without a GPU: %s\n", err.message);
#if !KPO_HAVE_CUDNN
    assert_non_null(strstr(err.message, "kpo was built without cuDNN"));
#else
    assert_non_null(strstr(err.message, "cuDNN"));
#endif
}

static void test_against_kernels(void **state)
{
    (void)state;
    CUDNN_REQUIRE_OR_SKIP();
    static const att_case cases[] = {
        {"small ragged pack", 16, 8, 5, {1, 37, 64, 100, 129}},
        {"1 x 4096", 32, 8, 1, {4096}},
        {"8 x 512", 32, 8, 8, {512, 512, 512, 512, 512, 512, 512, 512}},
        {"8 x 512", 16, 8, 8, {512, 512, 512, 512, 512, 512, 512, 512}},
        {"ragged 10,240-token pack", 32, 8, 5, {5120, 3000, 1500, 600, 20}},
        {"ragged 10,240-token pack", 16, 8, 5, {5120, 3000, 1500, 600, 20}},
    };
    attention_cudnn *a;
    CHECK_OK(attention_cudnn_create(&a, ERR));
    print_message("cuDNN %zu\n", attention_cudnn_version(a));
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(a, &cases[i], 500 + 10 * i);
    attention_cudnn_destroy(a);
}

/* The prepared batch is checked: a call for another shape is refused. */
static void test_unprepared_batch(void **state)
{
    (void)state;
    CUDNN_REQUIRE_OR_SKIP();
    static const att_case c = {"unprepared", 16, 8, 2, {10, 20}};
    att_dev d;
    att_dev_make(&c, 7, &d);
    attention_cudnn *a;
    CHECK_OK(attention_cudnn_create(&a, ERR));
    size_t bytes = 0;
    kpo_error err;
    assert_int_equal(attention_cudnn_workspace(a, &d.s, false, &bytes, &err), KPO_ERR);
    print_message("%s\n", err.message);
    assert_non_null(strstr(err.message, "attention_cudnn_set_batch"));
    attention_cudnn_destroy(a);
    att_dev_free(&d);
}

int main(void)
{
    char why[512];
    if (!gpu_unavailable(why, sizeof why)) {
        attention_cudnn *a = NULL;
        kpo_error err;
        if (attention_cudnn_create(&a, &err) == KPO_OK)
            attention_cudnn_destroy(a);
        else
            snprintf(cudnn_why, sizeof cudnn_why, "%s", err.message);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_without_gpu),
        cmocka_unit_test(test_against_kernels),
        cmocka_unit_test(test_unprepared_batch),
    };
    const int failed = cmocka_run_group_tests(tests, NULL, NULL);
    /* 77: meson's SKIP, so a run without a GPU or cuDNN says so. */
    return failed ? 1 : gpu_unavailable(why, sizeof why) || cudnn_why[0] ? 77 : 0;
}
