/* The CUDA model's first kernels against the CPU model's ops: cuBLASLt's
 * three products against sgemm on the same bf16-rounded inputs, RMSNorm and
 * QK-norm forward/backward, RoPE (and its inverse), SwiGLU forward/backward,
 * fp32<->bf16 conversion (bit-exact) and AdamW (expected bit-identical: one
 * shared update, no FMA). Each check reports its worst element against a
 * tolerance of the form |gpu - cpu| <= rtol |cpu| + atol max|cpu|, with
 * rtol sized by the bf16 roundings the GPU path takes (2^-8 relative per
 * rounding) and atol covering cancellation (docs/cuda.md). Skips without a
 * GPU. Only built with CUDA. */
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
#include "model/cuda/gemm_lt.h"
#include "model/cuda/kernels_adamw.h"
#include "model/cuda/kernels_convert.h"
#include "model/cuda/kernels_norm.h"
#include "model/cuda/kernels_rope.h"
#include "model/cuda/kernels_swiglu.h"
#include "model/cpu/model_ops.h"
#include "model/optimizer_adamw.h"
#include "model/safetensors.h"

#define BF16_ULP (1.0 / 256.0) /* relative spacing of bf16 near 1: 2^-8 */

/* This file's inputs: offset + scale * normal on stream 7 (bits may be
 * NULL), as they were drawn before the helpers moved to gpu_test_util.h. */
static float *random_bf16_offset(int64_t n, double scale, double offset, uint64_t seed,
                                 uint16_t **bits)
{
    return random_bf16_stream(n, scale, offset, seed, 7, bits);
}

/* Prints and checks the worst element; frees got. */
static void expect_close(const char *what, float *got, const float *want, int64_t n, double rtol,
                         double atol)
{
    double scale = 0, worst = -1;
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(want[i]));
    for (int64_t i = 0; i < n; i++) {
        const double excess = fabs((double)got[i] - want[i]) / (rtol * fabs(want[i]) + atol * scale + 1e-30);
        if (!(excess <= worst) || i == 0) { /* NaN counts as worst */
            if (isnan(excess) || excess > worst)
                worst = isnan(excess) ? INFINITY : excess, at = i;
        }
    }
    print_message("%-28s n=%-8lld worst at %lld: gpu %.7g cpu %.7g (%.3g of tolerance; max|cpu| %.4g)\n",
                  what, (long long)n, (long long)at, got[at], want[at], worst, scale);
    if (!(worst <= 1.0))
        fail_msg("%s: element %lld outside tolerance", what, (long long)at);
    free(got);
}

static void test_gemm(void **state)
{
    (void)state;
    GPU_REQUIRE_OR_SKIP();
    const int64_t rows = 77, in = 96, out = 136; /* odd rows: no tile-multiple shapes */
    uint16_t *xb, *wb, *dyb;
    float *x = random_bf16_offset(rows * in, 1, 0, 1, &xb);
    float *w = random_bf16_offset(out * in, 0.1, 0, 2, &wb);
    float *dy = random_bf16_offset(rows * out, 1, 0, 3, &dyb);
    float *y = malloc((size_t)(rows * out) * 4), *dx = calloc((size_t)(rows * in), 4);
    float *dw = malloc((size_t)(out * in) * 4);
    for (int64_t i = 0; i < out * in; i++)
        dw[i] = 0.5f; /* dW accumulates: start from something */
    float *dw0 = malloc((size_t)(out * in) * 4);
    memcpy(dw0, dw, (size_t)(out * in) * 4);
    ops_linear(rows, in, out, x, w, y);
    ops_linear_dx(rows, in, out, dy, w, dx, 0.0f);
    ops_linear_dw(rows, in, out, dy, x, dw);

    uint16_t *d_x = device_copy(xb, (size_t)(rows * in) * 2, 0);
    uint16_t *d_w = device_copy(wb, (size_t)(out * in) * 2, 0);
    uint16_t *d_dy = device_copy(dyb, (size_t)(rows * out) * 2, 0);
    uint16_t *d_y = device_copy(NULL, (size_t)(rows * out) * 2, 0);
    uint16_t *d_dx = device_copy(NULL, (size_t)(rows * in) * 2, 0);
    float *d_dw = device_copy(dw0, (size_t)(out * in) * 4, 0);
    gemm_lt *g;
    CHECK_OK(gemm_lt_create(&g, 0, ERR));
    CHECK_OK(gemm_lt_linear(g, rows, in, out, d_x, d_w, d_y, NULL, ERR));
    CHECK_OK(gemm_lt_linear_dx(g, rows, in, out, d_dy, d_w, d_dx, 0.0f, NULL, ERR));
    CHECK_OK(gemm_lt_linear_dw(g, rows, in, out, d_dy, d_x, d_dw, NULL, ERR));
    /* Twice more: the second call of a shape takes the cached plan. */
    CHECK_OK(gemm_lt_linear(g, rows, in, out, d_x, d_w, d_y, NULL, ERR));
    /* bf16 outputs: one final rounding (2^-8 relative, half of it to nearest)
     * plus fp32 summation-order noise; dW stays fp32. */
    expect_close("gemm y = x W^T", download_bf16(d_y, rows * out), y, rows * out, BF16_ULP, 1e-5);
    expect_close("gemm dx = dy W", download_bf16(d_dx, rows * in), dx, rows * in, BF16_ULP, 1e-5);
    expect_close("gemm dw += dy^T x", download_f32(d_dw, out * in), dw, out * in, 1e-5, 1e-5);
    gemm_lt_destroy(g);
    cudaFree(d_x), cudaFree(d_w), cudaFree(d_dy), cudaFree(d_y), cudaFree(d_dx), cudaFree(d_dw);
    free(x), free(w), free(dy), free(y), free(dx), free(dw), free(dw0), free(xb), free(wb), free(dyb);
}

/* Forward and backward of one RMSNorm shape (QK-norm: rows = tokens * heads). */
/* The backward runs in place (dx over dy, as the model's QK-norm does) or
 * into its own dx, accumulating onto what is there (the residual stream's
 * gradient): the weight gradient must come out the same either way. */
static void check_rmsnorm(const char *name, int64_t rows, int64_t n, int in_place)
{
    char what[64];
    uint16_t *xb, *wb, *dyb, *dx0b;
    float *x = random_bf16_offset(rows * n, 2, 0.3, 11, &xb);
    float *w = random_bf16_offset(n, 0.2, 1, 12, &wb);
    float *dy = random_bf16_offset(rows * n, 1, 0, 13, &dyb);
    /* in place: dx starts at 0 (no accumulation); else at these values */
    float *dx = random_bf16_offset(rows * n, in_place ? 0 : 1, 0, 14, &dx0b);
    float *y = malloc((size_t)(rows * n) * 4), *rstd = malloc((size_t)rows * 4);
    float *dw = calloc((size_t)n, 4);
    ops_rmsnorm(rows, n, x, w, 1e-6f, y, rstd);
    ops_rmsnorm_backward(rows, n, x, w, rstd, dy, dx, dw); /* dx += d/dx */

    uint16_t *d_x = device_copy(xb, (size_t)(rows * n) * 2, 0);
    uint16_t *d_w = device_copy(wb, (size_t)n * 2, 0);
    uint16_t *d_dy = device_copy(dyb, (size_t)(rows * n) * 2, 0);
    uint16_t *d_y = device_copy(in_place ? xb : NULL, (size_t)(rows * n) * 2, 0);
    uint16_t *d_dx = in_place ? d_dy : device_copy(dx0b, (size_t)(rows * n) * 2, 0);
    float *d_rstd = device_copy(NULL, (size_t)rows * 4, 0);
    float *d_dw = device_copy(NULL, (size_t)n * 4, 0);
    CHECK_OK(gpu_rmsnorm_forward(rows, n, in_place ? d_y : d_x, d_w, 1e-6f, d_y, d_rstd, NULL, ERR));
    CHECK_OK(gpu_rmsnorm_backward(rows, n, d_x, d_w, d_rstd, d_dy, d_dx, !in_place, d_dw, NULL,
                                  ERR));
    /* y: x*rstd and w*t each round to bf16 (2 roundings). rstd: fp32 vs
     * double statistics. dx: one rounding after a cancelling difference.
     * dw: fp32 sums of many rows. */
    snprintf(what, sizeof what, "%s y", name);
    expect_close(what, download_bf16(d_y, rows * n), y, rows * n, 2 * BF16_ULP, 1e-6);
    snprintf(what, sizeof what, "%s rstd", name);
    expect_close(what, download_f32(d_rstd, rows), rstd, rows, 1e-5, 0);
    snprintf(what, sizeof what, "%s dx (%s)", name, in_place ? "over dy" : "accumulated");
    expect_close(what, download_bf16(d_dx, rows * n), dx, rows * n, BF16_ULP, BF16_ULP / 4);
    snprintf(what, sizeof what, "%s dw", name);
    expect_close(what, download_f32(d_dw, n), dw, n, 1e-4, 1e-5);
    if (!in_place)
        cudaFree(d_dx);
    cudaFree(d_x), cudaFree(d_w), cudaFree(d_dy), cudaFree(d_y), cudaFree(d_rstd), cudaFree(d_dw);
    free(x), free(w), free(dy), free(y), free(rstd), free(dx), free(dw), free(xb), free(wb),
        free(dyb), free(dx0b);
}

static void test_rmsnorm(void **state)
{
    (void)state;
    GPU_REQUIRE_OR_SKIP();
    check_rmsnorm("rmsnorm [300, 2560]", 300, 2560, 0);
    check_rmsnorm("rmsnorm in place [300, 2560]", 300, 2560, 1);
    check_rmsnorm("qknorm in place [123*8, 128]", 123 * 8, 128, 1);
    check_rmsnorm("qknorm [123*8, 128]", 123 * 8, 128, 0);
}

static void test_rope(void **state)
{
    (void)state;
    GPU_REQUIRE_OR_SKIP();
    const int64_t tokens = 50, heads = 6, d = 128, n = tokens * heads * d;
    int32_t positions[50];
    for (int t = 0; t < tokens; t++)
        positions[t] = t < 20 ? t : (t - 20) * 97; /* two packed sequences, large angles */
    uint16_t *xb;
    float *x = random_bf16_offset(n, 1, 0, 21, &xb), *inv = malloc((size_t)n * 4);
    memcpy(inv, x, (size_t)n * 4);
    ops_rope_table table;
    assert_int_equal(ops_rope_table_init(&table, 4096, d, 1e6), 0);
    for (int t = 0; t < tokens; t++) {
        ops_rope_apply(&table, positions[t], heads, x + t * heads * d, 0);
        ops_rope_apply(&table, positions[t], heads, inv + t * heads * d, 1);
    }
    gpu_rope_table gt;
    CHECK_OK(gpu_rope_table_create(&gt, 4096, d, 1e6, ERR));
    int32_t *d_pos = device_copy(positions, sizeof positions, 0);
    uint16_t *d_x = device_copy(xb, (size_t)n * 2, 0), *d_inv = device_copy(xb, (size_t)n * 2, 0);
    CHECK_OK(gpu_rope_apply(&gt, tokens, heads, d_pos, d_x, 0, NULL, ERR));
    CHECK_OK(gpu_rope_apply(&gt, tokens, heads, d_pos, d_inv, 1, NULL, ERR));
    /* One rounding of a*c -/+ b*s, which can cancel. */
    expect_close("rope", download_bf16(d_x, n), x, n, BF16_ULP, BF16_ULP / 16);
    expect_close("rope inverse", download_bf16(d_inv, n), inv, n, BF16_ULP, BF16_ULP / 16);
    gpu_rope_table_free(&gt);
    ops_rope_table_free(&table);
    cudaFree(d_pos), cudaFree(d_x), cudaFree(d_inv);
    free(x), free(inv), free(xb);
}

static void test_swiglu(void **state)
{
    (void)state;
    GPU_REQUIRE_OR_SKIP();
    const int64_t rows = 37, n = 500, ld = 2 * n; /* fused [rows, gate | up] layout */
    uint16_t *gub, *dhb;
    float *gu = random_bf16_offset(rows * ld, 2, 0, 31, &gub);
    float *dh = random_bf16_offset(rows * n, 1, 0, 32, &dhb);
    float *h = malloc((size_t)(rows * n) * 4), *dg = malloc((size_t)(rows * n) * 4);
    float *du = malloc((size_t)(rows * n) * 4);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < n; i++) { /* model_layer.c and model_backward.c's formulas */
            const float g = gu[r * ld + i], u = gu[r * ld + n + i], s = ops_sigmoid(g);
            h[r * n + i] = g * s * u;
            du[r * n + i] = dh[r * n + i] * g * s;
            dg[r * n + i] = dh[r * n + i] * u * s * (1.0f + g * (1.0f - s));
        }
    uint16_t *d_gu = device_copy(gub, (size_t)(rows * ld) * 2, 0);
    uint16_t *d_dh = device_copy(dhb, (size_t)(rows * n) * 2, 0);
    uint16_t *d_h = device_copy(NULL, (size_t)(rows * n) * 2, 0);
    uint16_t *d_dgu = device_copy(NULL, (size_t)(rows * ld) * 2, 0);
    CHECK_OK(gpu_swiglu_forward(rows, n, ld, d_gu, d_gu + n, d_h, NULL, ERR));
    CHECK_OK(gpu_swiglu_backward(rows, n, ld, d_gu, d_gu + n, d_dh, d_dgu, d_dgu + n, NULL, ERR));
    float *dgu = download_bf16(d_dgu, rows * ld), *got_dg = malloc((size_t)(rows * n) * 4);
    float *got_du = malloc((size_t)(rows * n) * 4);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < n; i++)
            got_dg[r * n + i] = dgu[r * ld + i], got_du[r * n + i] = dgu[r * ld + n + i];
    /* h: silu rounded, then the product (2 roundings, as HF); the backward
     * rounds once; expf may differ from glibc's by an ulp or two. */
    expect_close("swiglu h", download_bf16(d_h, rows * n), h, rows * n, 2 * BF16_ULP, 1e-6);
    expect_close("swiglu dgate", got_dg, dg, rows * n, BF16_ULP, 1e-6);
    expect_close("swiglu dup", got_du, du, rows * n, BF16_ULP, 1e-6);
    cudaFree(d_gu), cudaFree(d_dh), cudaFree(d_h), cudaFree(d_dgu);
    free(gu), free(dh), free(h), free(dg), free(du), free(dgu), free(gub), free(dhb);
}

static void test_convert(void **state)
{
    (void)state;
    GPU_REQUIRE_OR_SKIP();
    const int64_t n = 100003;
    rng_stream rng;
    rng_stream_init(&rng, 41, 1);
    float *x = malloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(rng_normal(&rng) * pow(10.0, (double)(i % 13) - 6)); /* many exponents, all tie cases rare */
    float *d_x = device_copy(x, (size_t)n * 4, 0), *d_back = device_copy(NULL, (size_t)n * 4, 0);
    uint16_t *d_b = device_copy(NULL, (size_t)n * 2, 0), *b = malloc((size_t)n * 2);
    CHECK_OK(gpu_convert_f32_to_bf16(n, d_x, d_b, NULL, ERR));
    CHECK_OK(gpu_convert_bf16_to_f32(n, d_b, d_back, NULL, ERR));
    assert_int_equal(cudaMemcpy(b, d_b, (size_t)n * 2, cudaMemcpyDeviceToHost), cudaSuccess);
    float *back = download_f32(d_back, n);
    for (int64_t i = 0; i < n; i++) {
        if (b[i] != safetensors_f32_to_bf16(x[i]) || back[i] != safetensors_bf16_to_f32(b[i]))
            fail_msg("convert: element %lld (%.9g) -> 0x%04x, host 0x%04x", (long long)i, x[i],
                     b[i], safetensors_f32_to_bf16(x[i]));
    }
    print_message("convert fp32<->bf16: %lld values bit-exact\n", (long long)n);
    cudaFree(d_x), cudaFree(d_back), cudaFree(d_b);
    free(x), free(b), free(back);
}

static void test_adamw(void **state)
{
    (void)state;
    GPU_REQUIRE_OR_SKIP();
    /* A fake three-tensor table: a matrix, a norm gain, a matrix. */
    model_param params[3] = {{.offset = 0, .numel = 1000, .is_norm = false},
                             {.offset = 1000, .numel = 64, .is_norm = true},
                             {.offset = 1064, .numel = 3000, .is_norm = false}};
    const int64_t n = 4064;
    model m = {.params = params, .n_params_table = 3};
    m.weights.n_params = n;
    m.weights.data = random_bf16_offset(n, 0.05, 0, 51, NULL);
    adamw_config cfg = adamw_config_default();
    cfg.lr = 1e-3, cfg.weight_decay = 0.1, cfg.max_grad_norm = 0.5, cfg.warmup_steps = 2;
    adamw_state cpu;
    CHECK_OK(adamw_init(&cpu, &m, &cfg, ERR));
    float *d_w = device_copy(m.weights.data, (size_t)n * 4, 0);
    float *d_g = device_copy(NULL, (size_t)n * 4, 0);
    float *d_m = device_copy(NULL, (size_t)n * 4, 0), *d_v = device_copy(NULL, (size_t)n * 4, 0);
    uint16_t *d_wb = device_copy(NULL, (size_t)n * 2, 0);
    int64_t gpu_step = 0;
    for (int step = 0; step < 3; step++) {
        model_weights grads = {.data = random_bf16_offset(n, step == 1 ? 0.001 : 0.1, 0, 60 + step,
                                                          NULL),
                               .n_params = n}; /* step 1: under the clip threshold */
        assert_int_equal(cudaMemcpy(d_g, grads.data, (size_t)n * 4, cudaMemcpyHostToDevice), cudaSuccess);
        double cpu_norm, gpu_norm;
        adamw_step(&cpu, &m, &grads, &cpu_norm);
        CHECK_OK(gpu_adamw_step(&cfg, &gpu_step, &m, d_w, d_wb, d_g, d_m, d_v, &gpu_norm, NULL, ERR));
        assert_true(fabs(gpu_norm - cpu_norm) <= 1e-12 * cpu_norm);
        expect_close("adamw clipped grad", download_f32(d_g, n), grads.data, n, 1e-6, 0);
        free(grads.data);
    }
    assert_int_equal(gpu_step, cpu.step);
    float *w = download_f32(d_w, n), *wb = download_bf16(d_wb, n);
    int64_t identical = 0;
    for (int64_t i = 0; i < n; i++) {
        identical += w[i] == m.weights.data[i];
        assert_true(wb[i] == safetensors_bf16_to_f32(safetensors_f32_to_bf16(w[i])));
    }
    print_message("adamw: %lld of %lld weights bit-identical to the CPU (expected: all)\n",
                  (long long)identical, (long long)n);
    expect_close("adamw w", w, m.weights.data, n, 1e-6, 0);
    expect_close("adamw m", download_f32(d_m, n), cpu.m, n, 1e-6, 0);
    expect_close("adamw v", download_f32(d_v, n), cpu.v, n, 1e-6, 0);
    free(wb);
    adamw_free(&cpu);
    free(m.weights.data);
    cudaFree(d_w), cudaFree(d_g), cudaFree(d_m), cudaFree(d_v), cudaFree(d_wb);
}

/* Checkable everywhere: without a GPU, gemm_lt_create fails with the
 * words the suite skips on. */
static void test_reports_missing_gpu(void **state)
{
    (void)state;
    char why[512];
    if (!gpu_unavailable(why, sizeof why))
        skip();
    gemm_lt *g = (gemm_lt *)1;
    kpo_error err;
    assert_int_equal(gemm_lt_create(&g, 0, &err), KPO_ERR);
    assert_null(g);
    assert_non_null(strstr(err.message, "no usable GPU"));
    print_message("no usable GPU: %s (gemm_lt_create says \"%s\")\n", why, err.message);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm),    cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_rope),    cmocka_unit_test(test_swiglu),
        cmocka_unit_test(test_convert), cmocka_unit_test(test_adamw),
        cmocka_unit_test(test_reports_missing_gpu),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    char why[512];
    /* 77: meson's SKIP, so a run without a GPU says so in its summary */
    return failed ? 1 : gpu_unavailable(why, sizeof why) ? 77 : 0;
}
