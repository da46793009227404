/* The CUDA filter against the CPU filter: random heavy-tailed ragged
 * batches (empty responses, a long one, Student-t values with rare large
 * outliers), every saturation mode. Per-token outputs within 1e-6 (they
 * are expected to be bit-identical except adaptive's exp, see
 * docs/cuda.md), clip flags, counts and the histogram exact, moments
 * within 1e-6 of their natural scale. Skips without a GPU. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/rng.h"
#include "filter/filter.h"
#include "filter/filter_cuda.h"
#include "gpu_skip.h"
#include "kpo_config.h"

#if KPO_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

typedef struct batch {
    int64_t n_responses, n_tokens;
    int64_t *offsets; /* [n_responses + 1] */
    double *values;   /* [n_tokens] */
} batch;

typedef struct results {
    double *rho, *gain, *innovation, *threshold; /* [n_tokens] each */
    uint8_t *clipped;                            /* [n_tokens] */
    filter_outputs out;
    innov_stats stats;
} results;

/* Lengths: mostly up to max_len, some empty, one 4x long. Values: scale *
 * Student-t(3), plus a 1% chance of a +-40 scale outlier, so every mode
 * clips and the histogram's under/overflow slots fill. */
static void batch_random(batch *b, int64_t n_responses, int max_len, double scale, uint64_t seed)
{
    rng_stream rng;
    rng_stream_init(&rng, seed, 1);
    b->n_responses = n_responses;
    b->offsets = malloc((size_t)(n_responses + 1) * sizeof *b->offsets);
    b->offsets[0] = 0;
    for (int64_t r = 0; r < n_responses; r++) {
        int64_t len = (int64_t)(rng_uniform(&rng) * max_len);
        if (r % 17 == 5)
            len = 0;
        if (r == n_responses / 2)
            len = 4 * max_len;
        b->offsets[r + 1] = b->offsets[r] + len;
    }
    b->n_tokens = b->offsets[n_responses];
    b->values = malloc((size_t)(b->n_tokens > 0 ? b->n_tokens : 1) * sizeof *b->values);
    for (int64_t i = 0; i < b->n_tokens; i++) {
        double z = scale * rng_student_t(&rng, 3);
        if (rng_uniform(&rng) < 0.01)
            z += (rng_uniform(&rng) < 0.5 ? -40.0 : 40.0) * scale;
        b->values[i] = z;
    }
}

static void batch_free(batch *b)
{
    free(b->offsets);
    free(b->values);
}

static void results_init(results *r, int64_t n_tokens)
{
    size_t n = (size_t)(n_tokens > 0 ? n_tokens : 1);
    r->rho = malloc(n * sizeof(double));
    r->gain = malloc(n * sizeof(double));
    r->innovation = malloc(n * sizeof(double));
    r->threshold = malloc(n * sizeof(double));
    r->clipped = malloc(n);
    r->out = (filter_outputs){r->rho, r->gain, r->innovation, r->threshold, r->clipped};
    innov_stats_init(&r->stats);
}

static void results_free(results *r)
{
    free(r->rho);
    free(r->gain);
    free(r->innovation);
    free(r->threshold);
    free(r->clipped);
}

static filter_config mode_config(filter_mode mode)
{
    filter_config cfg;
    filter_config_default(&cfg);
    cfg.mode = mode;
    cfg.q = 1e-3;
    cfg.v = 0.04;
    cfg.p0 = 0.01;
    cfg.kappa = 1.5;
    cfg.c_state = 1.5;
    return cfg;
}

/* Largest |a - b| / (1 + |b|) over n entries (inf == inf counts as 0);
 * *identical is cleared at the first bitwise difference. */
static double worst_difference(const double *a, const double *b, int64_t n, int *identical)
{
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        if (memcmp(&a[i], &b[i], sizeof a[i]) != 0)
            *identical = 0;
        if (a[i] == b[i])
            continue;
        double d = fabs(a[i] - b[i]) / (1.0 + fabs(b[i]));
        worst = isnan(d) ? INFINITY : fmax(worst, d);
    }
    return worst;
}

static void assert_close(const char *what, double gpu, double cpu, double scale)
{
    double d = fabs(gpu - cpu);
    if (!(d <= 1e-6 * scale))
        fail_msg("%s: gpu %.17g cpu %.17g (|diff| %.3g > 1e-6 x scale %.3g)", what, gpu, cpu, d,
                 scale);
}

static void assert_stats_match(const innov_stats *g, const innov_stats *c)
{
    assert_true(g->count == c->count);
    assert_true(g->clip_count == c->clip_count);
    assert_true(g->threshold_count == c->threshold_count);
    for (int k = 0; k < INNOV_HIST_SLOTS; k++)
        if (g->hist[k] != c->hist[k])
            fail_msg("histogram slot %d: gpu %g cpu %g", k, g->hist[k], c->hist[k]);
    if (c->count == 0)
        return;
    /* Central moments are compared at their natural scale, n sd^k: an odd
     * moment near zero has no relative precision to speak of. */
    double sd = sqrt(c->m2 / c->count);
    assert_close("mean", g->mean, c->mean, fabs(c->mean) + sd);
    assert_close("m2", g->m2, c->m2, c->m2);
    assert_close("m3", g->m3, c->m3, fabs(c->m3) + c->count * sd * sd * sd);
    assert_close("m4", g->m4, c->m4, c->m4);
    assert_close("max_abs", g->max_abs, c->max_abs, c->max_abs);
    assert_close("gain_sum", g->gain_sum, c->gain_sum, fabs(c->gain_sum));
    assert_close("sigma_sum", g->sigma_sum, c->sigma_sum, c->sigma_sum);
    assert_close("threshold_sum", g->threshold_sum, c->threshold_sum, fabs(c->threshold_sum));
}

static void compare_mode(filter_mode mode, const batch *b, int scale_covariance)
{
    filter_config cfg = mode_config(mode);
    cfg.scale_covariance = scale_covariance;
    results cpu, gpu;
    results_init(&cpu, b->n_tokens);
    results_init(&gpu, b->n_tokens);
    kpo_error err;
    assert_int_equal(filter_apply(&cfg, b->values, b->offsets, b->n_responses, &cpu.out,
                                  &cpu.stats, &err), KPO_OK);
    if (filter_cuda_apply(&cfg, b->values, b->offsets, b->n_responses, &gpu.out, &gpu.stats,
                          &err) != KPO_OK)
        fail_msg("%s", err.message);

    int identical = 1;
    double d_rho = worst_difference(gpu.rho, cpu.rho, b->n_tokens, &identical);
    double d_gain = worst_difference(gpu.gain, cpu.gain, b->n_tokens, &identical);
    double d_innov = worst_difference(gpu.innovation, cpu.innovation, b->n_tokens, &identical);
    double d_thr = worst_difference(gpu.threshold, cpu.threshold, b->n_tokens, &identical);
    int64_t clip_mismatch = 0;
    for (int64_t i = 0; i < b->n_tokens; i++)
        clip_mismatch += gpu.clipped[i] != cpu.clipped[i];
    print_message("%-9s%s %8lld tokens: max rel diff rho %.2e gain %.2e innovation %.2e "
                  "threshold %.2e; clip flags differing %lld of %.0f clipped; %s\n",
                  filter_mode_name(mode), mode == FILTER_MODE_ITERATED && !scale_covariance
                      ? "/plain" : "",
                  (long long)b->n_tokens, d_rho, d_gain, d_innov, d_thr,
                  (long long)clip_mismatch, cpu.stats.clip_count,
                  identical ? "bit-identical" : "not bit-identical");
    assert_true(d_rho <= 1e-6 && d_gain <= 1e-6 && d_innov <= 1e-6 && d_thr <= 1e-6);
    assert_int_equal(clip_mismatch, 0);
    assert_stats_match(&gpu.stats, &cpu.stats);
    results_free(&cpu);
    results_free(&gpu);
}

static void test_every_mode_matches_cpu(void **state)
{
    (void)state;
    GPU_REQUIRE_OR_SKIP();
    batch b;
    batch_random(&b, 1000, 600, 0.05, 11); /* 16 blocks: exercises the cross-block merge */
    for (int m = 0; m < FILTER_MODE_COUNT; m++)
        compare_mode((filter_mode)m, &b, 1);
    compare_mode(FILTER_MODE_ITERATED, &b, 0);
    batch_free(&b);
}

/* A batch smaller than one warp, and one response: the tree merges with
 * mostly empty lanes. */
static void test_tiny_batches(void **state)
{
    (void)state;
    GPU_REQUIRE_OR_SKIP();
    for (int n = 1; n <= 3; n += 2) {
        batch b;
        batch_random(&b, n, 50, 1.0, 20 + (uint64_t)n);
        compare_mode(FILTER_MODE_SIGMA, &b, 1);
        compare_mode(FILTER_MODE_ADAPTIVE, &b, 1);
        batch_free(&b);
    }
}

/* Statistics merge into what the caller already holds, as on the CPU;
 * NULL outputs and NULL statistics are both allowed. */
static void test_stats_accumulate_and_null_outputs(void **state)
{
    (void)state;
    GPU_REQUIRE_OR_SKIP();
    batch b;
    batch_random(&b, 200, 300, 0.1, 31);
    filter_config cfg = mode_config(FILTER_MODE_SIGMA);
    innov_stats cpu, gpu;
    innov_stats_init(&cpu);
    innov_stats_init(&gpu);
    kpo_error err;
    for (int pass = 0; pass < 2; pass++) {
        assert_int_equal(filter_apply(&cfg, b.values, b.offsets, b.n_responses, NULL, &cpu, &err),
                         KPO_OK);
        if (filter_cuda_apply(&cfg, b.values, b.offsets, b.n_responses, NULL, &gpu, &err))
            fail_msg("%s", err.message);
    }
    assert_stats_match(&gpu, &cpu);
    results only_rho;
    results_init(&only_rho, b.n_tokens);
    filter_outputs out = {.rho = only_rho.rho};
    if (filter_cuda_apply(&cfg, b.values, b.offsets, b.n_responses, &out, NULL, &err))
        fail_msg("%s", err.message);
    results cpu_rho;
    results_init(&cpu_rho, b.n_tokens);
    assert_int_equal(filter_apply(&cfg, b.values, b.offsets, b.n_responses, &cpu_rho.out, NULL,
                                  &err), KPO_OK);
    int identical = 1;
    assert_true(worst_difference(only_rho.rho, cpu_rho.rho, b.n_tokens, &identical) <= 1e-6);
    results_free(&only_rho);
    results_free(&cpu_rho);
    batch_free(&b);
}

/* Bad input: the same message as the CPU filter, from the host API (checked
 * on the host) and from the device API (checked on the device). */
static void test_bad_input_messages(void **state)
{
    (void)state;
    GPU_REQUIRE_OR_SKIP();
    batch b;
    batch_random(&b, 40, 30, 0.1, 41);
    int64_t victim = b.offsets[7] + 2 < b.offsets[8] ? b.offsets[7] + 2 : b.offsets[9];
    b.values[victim] = NAN;
    filter_config cfg = mode_config(FILTER_MODE_NONE);
    kpo_error cpu_err, gpu_err;
    assert_int_equal(filter_apply(&cfg, b.values, b.offsets, b.n_responses, NULL, NULL, &cpu_err),
                     KPO_ERR);
    assert_int_equal(filter_cuda_apply(&cfg, b.values, b.offsets, b.n_responses, NULL, NULL,
                                       &gpu_err), KPO_ERR);
    assert_string_equal(gpu_err.message, cpu_err.message);
#if KPO_HAVE_CUDA
    double *d_values;
    int64_t *d_offsets;
    size_t offset_bytes = (size_t)(b.n_responses + 1) * sizeof(int64_t);
    assert_int_equal(cudaMalloc((void **)&d_values, (size_t)b.n_tokens * sizeof(double)), 0);
    assert_int_equal(cudaMalloc((void **)&d_offsets, offset_bytes), 0);
    cudaMemcpy(d_values, b.values, (size_t)b.n_tokens * sizeof(double), cudaMemcpyHostToDevice);
    cudaMemcpy(d_offsets, b.offsets, offset_bytes, cudaMemcpyHostToDevice);
    assert_int_equal(filter_cuda_apply_device(&cfg, d_values, d_offsets, b.n_responses, b.n_tokens,
                                              NULL, NULL, NULL, &gpu_err), KPO_ERR);
    assert_string_equal(gpu_err.message, cpu_err.message);
    /* decreasing offsets */
    b.values[victim] = 0.0;
    int64_t saved = b.offsets[12];
    b.offsets[12] = b.offsets[11] - 1;
    assert_int_equal(filter_apply(&cfg, b.values, b.offsets, b.n_responses, NULL, NULL, &cpu_err),
                     KPO_ERR);
    cudaMemcpy(d_values, b.values, (size_t)b.n_tokens * sizeof(double), cudaMemcpyHostToDevice);
    cudaMemcpy(d_offsets, b.offsets, offset_bytes, cudaMemcpyHostToDevice);
    assert_int_equal(filter_cuda_apply_device(&cfg, d_values, d_offsets, b.n_responses, b.n_tokens,
                                              NULL, NULL, NULL, &gpu_err), KPO_ERR);
    assert_string_equal(gpu_err.message, cpu_err.message);
    b.offsets[12] = saved;
    cudaFree(d_values);
    cudaFree(d_offsets);
#endif
    batch_free(&b);
}

/* The one thing checkable everywhere: without a GPU the call fails with
 * the words the suite skips on, and never crashes. */
static void test_reports_missing_gpu(void **state)
{
    (void)state;
    char why[512];
    if (!gpu_unavailable(why, sizeof why))
        skip();
    batch b;
    batch_random(&b, 4, 10, 0.1, 51);
    filter_config cfg = mode_config(FILTER_MODE_NONE);
    kpo_error err;
    assert_int_equal(filter_cuda_apply(&cfg, b.values, b.offsets, b.n_responses, NULL, NULL, &err),
                     KPO_ERR);
    assert_non_null(strstr(err.message, "no usable GPU"));
    print_message("no usable GPU: %s (filter_cuda_apply says \"%s\")\n", why, err.message);
    batch_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_mode_matches_cpu),
        cmocka_unit_test(test_tiny_batches),
        cmocka_unit_test(test_stats_accumulate_and_null_outputs),
        cmocka_unit_test(test_bad_input_messages),
        cmocka_unit_test(test_reports_missing_gpu),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    char why[512];
    /* 77: meson's SKIP, so a run without a GPU says so in its summary */
    return failed ? 1 : gpu_unavailable(why, sizeof why) ? 77 : 0;
}
