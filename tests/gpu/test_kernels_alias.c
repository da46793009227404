/* The kernels' in-place contracts (src/model/cuda/kernels_alias.h), checked
 * on the host before any launch, so this runs without a GPU: every backward
 * entry point refuses the overlaps its kernels cannot survive, names the
 * buffers at fault, and accepts the one in-place use it documents. The
 * pointers point into a host array and are never dereferenced: each call
 * here fails before anything reaches the device. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "model/cuda/gemm_lt.h"
#include "model/cuda/kernels_alias.h"
#include "model/cuda/kernels_attention.h"
#include "model/cuda/kernels_logprob.h"
#include "model/cuda/kernels_norm.h"
#include "model/cuda/kernels_swiglu.h"

/* A fake address space: 1 MiB, 256-byte aligned offsets into it. */
static _Alignas(256) unsigned char arena[1 << 20];
static void *at(size_t offset) { return arena + offset; }

static void expect_refused(int status, const kpo_error *err, const char *what, const char *a,
                           const char *b)
{
    assert_int_equal(status, KPO_ERR);
    print_message("refused: %s\n", err->message);
    assert_non_null(strstr(err->message, what));
    assert_non_null(strstr(err->message, a));
    assert_non_null(strstr(err->message, b));
}

static void test_disjoint_spans(void **state)
{
    (void)state;
    kpo_error err;
    const kernels_span out[] = {{"o", at(100), 10}};
    const kernels_span touching[] = {{"i", at(110), 10}, {"j", at(90), 10}};
    assert_int_equal(kernels_check_disjoint("op", out, 1, touching, 2, &err), KPO_OK);
    const kernels_span one_byte[] = {{"i", at(109), 10}};
    expect_refused(kernels_check_disjoint("op", out, 1, one_byte, 1, &err), &err, "op", "o", "i");
    const kernels_span absent[] = {{"i", NULL, 10}, {"j", at(100), 0}};
    assert_int_equal(kernels_check_disjoint("op", out, 1, absent, 2, &err), KPO_OK);
    const kernels_span outs[] = {{"o1", at(0), 64}, {"o2", at(32), 64}};
    expect_refused(kernels_check_disjoint("op", outs, 2, NULL, 0, &err), &err, "op", "o1", "o2");
}

/* The bug this guards: the QK-norm passed one buffer as dy and dx, and dw
 * was summed from dy after dx had overwritten it. dw now comes first; dx
 * over dy stays allowed without accumulation, and nothing else is. */
static void test_rmsnorm_backward(void **state)
{
    (void)state;
    kpo_error err;
    const int64_t rows = 16, n = 64;
    const size_t act = (size_t)(rows * n) * 2;
    uint16_t *x = at(0), *w = at(act), *dy = at(2 * act), *dx = at(3 * act);
    float *rstd = at(5 * act), *dw = at(6 * act);
    /* dx over dy while accumulating: dx's old values are gone. */
    expect_refused(gpu_rmsnorm_backward(rows, n, x, w, rstd, dy, dy, 1, dw, NULL, &err), &err,
                   "gpu_rmsnorm_backward", "dx", "dy");
    /* A shifted dx: rows would overwrite later rows' dy. */
    expect_refused(gpu_rmsnorm_backward(rows, n, x, w, rstd, dy, dy + n, 0, dw, NULL, &err),
                   &err, "gpu_rmsnorm_backward", "dx", "dy");
    expect_refused(gpu_rmsnorm_backward(rows, n, x, w, rstd, dy, x, 0, dw, NULL, &err), &err,
                   "gpu_rmsnorm_backward", "dx", "x");
    expect_refused(gpu_rmsnorm_backward(rows, n, x, w, rstd, dy, dx, 0, rstd, NULL, &err), &err,
                   "gpu_rmsnorm_backward", "dw", "rstd");
    expect_refused(gpu_rmsnorm_backward(rows, n, x, w, rstd, dy, dx, 0, (float *)(void *)dx,
                                        NULL, &err),
                   &err, "gpu_rmsnorm_backward", "dx", "dw");
}

static void test_swiglu_backward(void **state)
{
    (void)state;
    kpo_error err;
    const int64_t rows = 8, n = 32, ld = 2 * n; /* the fused gate|up layout */
    uint16_t *gate_up = at(0), *dh = at(4096), *dgu = at(8192);
    expect_refused(gpu_swiglu_backward(rows, n, ld, gate_up, gate_up + n, dh, dh, dgu + n, NULL,
                                       &err),
                   &err, "gpu_swiglu_backward", "dgate", "dh");
    expect_refused(gpu_swiglu_backward(rows, n, ld, gate_up, gate_up + n, dh, dgu, dh + 5, NULL,
                                       &err),
                   &err, "gpu_swiglu_backward", "dup", "dh");
}

static void test_attention_backward(void **state)
{
    (void)state;
    kpo_error err;
    int64_t offsets[2] = {0, 8};
    const gpu_attention_shape s = {.n_tokens = 8, .n_seqs = 1, .seq_offsets = offsets,
                                   .max_seq_len = 8, .heads = 2, .kv_heads = 1, .head_dim = 64};
    const size_t qo = 8 * 2 * 64 * 2, kv = 8 * 64 * 2;
    uint16_t *q = at(0), *k = at(qo), *v = at(qo + kv), *out = at(qo + 2 * kv);
    uint16_t *dout = at(2 * qo + 2 * kv), *dq = at(3 * qo + 2 * kv), *dk = at(4 * qo + 2 * kv);
    uint16_t *dv = at(4 * qo + 3 * kv);
    float *lse = at(16384);
    void *ws = at(65536);
    expect_refused(gpu_attention_backward(&s, q, k, v, out, dout, lse, q, dk, dv, ws, NULL, &err),
                   &err, "gpu_attention_backward", "dq", "q");
    expect_refused(gpu_attention_backward(&s, q, k, v, out, dout, lse, dq, dk, dout, ws, NULL,
                                          &err),
                   &err, "gpu_attention_backward", "dv", "dout");
    expect_refused(gpu_attention_backward(&s, q, k, v, out, dout, lse, dq, dk, dk, ws, NULL, &err),
                   &err, "gpu_attention_backward", "dk", "dv");
}

static void test_logprob_backward(void **state)
{
    (void)state;
    kpo_error err;
    const gpu_logprob_shape s = {.rows = 4, .hidden = 32, .vocab = 100, .chunk_rows = 4};
    uint16_t *h = at(0), *head = at(1024), *dh = at(8192);
    int32_t *targets = at(16384);
    float *lse = at(16640), *ent = at(16896), *dlogp = at(17152), *dhead = at(20480);
    void *ws = at(65536);
    expect_refused(gpu_logprob_backward(NULL, &s, h, head, targets, lse, ent, dlogp, NULL, h,
                                        dhead, ws, NULL, &err),
                   &err, "gpu_logprob_backward", "dh", "h");
    expect_refused(gpu_logprob_backward(NULL, &s, h, head, targets, lse, ent, dlogp, NULL, dh,
                                        (float *)ws, ws, NULL, &err),
                   &err, "gpu_logprob_backward", "dhead", "workspace");
}

static void test_gemm(void **state)
{
    (void)state;
    kpo_error err;
    uint16_t *a = at(0), *b = at(4096);
    expect_refused(gemm_lt_linear_dx(NULL, 8, 16, 16, a, b, a, 0.0f, NULL, &err), &err,
                   "gemm_lt_linear_dx", "D", "A");
    expect_refused(gemm_lt_linear_dw(NULL, 8, 16, 16, a, b, (float *)(void *)(b + 8), NULL, &err),
                   &err, "gemm_lt_linear_dw", "D", "B");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_disjoint_spans),   cmocka_unit_test(test_rmsnorm_backward),
        cmocka_unit_test(test_swiglu_backward),  cmocka_unit_test(test_attention_backward),
        cmocka_unit_test(test_logprob_backward), cmocka_unit_test(test_gemm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
