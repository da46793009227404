/* The device objective (objective_cuda_compute) against objective_compute
 * on the same inputs, and the learner's CUDA path against the host
 * objective on the same GPU model.
 *
 * Inputs: ragged packed micro-batches (prompts of 1-20 rows, responses of
 * 0-max_len tokens, some empty, one 4x long), the new log-probs as floats
 * (what the GPU forward makes), old log-probs in double, z heavy-tailed
 * (Student-t(3) plus 1% +-25 outliers, so the log_ratio_max and GRPO +-20
 * clamps fire), near on-policy and stale; every objective, aggregation,
 * clip on/off, dual clip, every filter mode for kpo. Rows that hold no
 * response token carry NaN log-probs and entropies: they must be ignored,
 * and their dlogp must come back 0.
 *
 * Tolerances, and why. The host gets the device's float log-probs widened
 * to double, so z is the same subtraction on both sides (bit-identical),
 * the filter's l is bit-identical but for adaptive's exp (docs/cuda.md),
 * and per token the device runs objective_token.h, the host's own code,
 * without FMA. What differs: CUDA's exp (<= 1 ulp from glibc's) and the
 * summation order of the metrics (a fixed tree against one sequential
 * pass). Hence:
 *  - dlogp: the device rounds its double once to float; the host's double,
 *    rounded to float, may land one float ulp away: |gpu - (float)cpu| <=
 *    2^-23 |cpu|; exactly 0 wherever the host's is 0 (clamped, clipped, or
 *    not a response token);
 *  - clip counts and token counts: exact (a clip flips only if a ratio lies
 *    within an ulp of 1 +- eps: never, on these inputs);
 *  - sums: 1e-12 of the sum of the terms' magnitudes (double rounding over
 *    <= 1e5 terms in any order stays ~1e-14 of it; a lost or doubled token
 *    is >= 1e-5 of it here); min/max of ratios: 1e-14 relative (exp's ulp);
 *  - innovation statistics: counts and histogram exact, moments within
 *    1e-9 of their natural scale n sd^k (different merge order);
 *  - the device repeats itself bit for bit (metrics and dlogp).
 * The learner test compares gradients after the GPU backward from the two
 * dlogp's: 1e-5 of the largest gradient (they differ at most by those
 * float ulps of dlogp).
 * Host-side argument checks run without a GPU; the rest skips (exit 77). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/rng.h"
#include "gpu_skip.h"
#include "kpo_config.h"
#include "learner/learner_step.h"
#include "learner/objective.h"
#include "learner/objective_cuda.h"
#include "learner/objective_token.h"
#include "model/model_backend.h"
#include "tests/learner/learner_fixture.h"

#if KPO_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "gpu_test_util.h"
#endif

/* ---- a random packed micro-batch ---- */

typedef struct obj_case {
    int64_t R, N, n_rows;
    int64_t *offsets, *rows; /* [R + 1], [R] */
    double *advantages;      /* [R] */
    double *logp, *logp_old; /* [N] response order; logp = the float rows widened */
    double *entropy;         /* [N] */
    float *logp_rows, *entropy_rows; /* [n_rows], NaN where no response token */
} obj_case;

static void case_random(obj_case *c, int64_t R, int max_len, double scale, uint64_t seed)
{
    rng_stream rng;
    rng_stream_init(&rng, seed, 11);
    c->R = R;
    c->offsets = calloc((size_t)R + 1, sizeof *c->offsets);
    c->rows = calloc((size_t)R + 1, sizeof *c->rows);
    c->advantages = calloc((size_t)R + 1, sizeof *c->advantages);
    int64_t row = 0;
    for (int64_t r = 0; r < R; r++) {
        int64_t prompt = 1 + (int64_t)(rng_uniform(&rng) * 20);
        int64_t n = r % 11 == 4 ? 0 : (int64_t)(rng_uniform(&rng) * max_len);
        if (r == R / 2)
            n = 4 * max_len;
        c->rows[r] = row + prompt - 1; /* as response_targets: the last prompt row predicts */
        row += prompt + n;
        c->offsets[r + 1] = c->offsets[r] + n;
        c->advantages[r] = r % 7 == 2 ? 0.0 : rng_normal(&rng);
    }
    c->N = c->offsets[R];
    c->n_rows = row;
    c->logp = malloc((size_t)(c->N + 1) * sizeof *c->logp);
    c->logp_old = malloc((size_t)(c->N + 1) * sizeof *c->logp_old);
    c->entropy = malloc((size_t)(c->N + 1) * sizeof *c->entropy);
    c->logp_rows = malloc((size_t)(row + 1) * sizeof *c->logp_rows);
    c->entropy_rows = malloc((size_t)(row + 1) * sizeof *c->entropy_rows);
    for (int64_t i = 0; i < row; i++)
        c->logp_rows[i] = c->entropy_rows[i] = NAN;
    for (int64_t r = 0; r < R; r++)
        for (int64_t t = 0; t < c->offsets[r + 1] - c->offsets[r]; t++) {
            const int64_t k = c->offsets[r] + t, p = c->rows[r] + t;
            double z = scale * rng_student_t(&rng, 3);
            if (rng_uniform(&rng) < 0.01)
                z += rng_uniform(&rng) < 0.5 ? -25.0 : 25.0;
            c->logp_old[k] = -3.0 * fabs(rng_normal(&rng));
            c->logp_rows[p] = (float)(c->logp_old[k] + z);
            c->logp[k] = (double)c->logp_rows[p];
            c->entropy_rows[p] = (float)(3.0 * rng_uniform(&rng));
            c->entropy[k] = (double)c->entropy_rows[p];
        }
}

static void case_free(obj_case *c)
{
    free(c->offsets);
    free(c->rows);
    free(c->advantages);
    free(c->logp);
    free(c->logp_old);
    free(c->entropy);
    free(c->logp_rows);
    free(c->entropy_rows);
}

static objective_cuda_batch case_batch(const obj_case *c, const float *d_logp,
                                       const float *d_entropy, float *d_dlogp)
{
    objective_cuda_batch b = {.n_responses = c->R, .offsets = c->offsets, .rows = c->rows,
                              .advantages = c->advantages, .logp_old = c->logp_old,
                              .n_rows = c->n_rows, .d_logp = d_logp, .d_entropy = d_entropy,
                              .d_dlogp = d_dlogp};
    return b;
}

/* ---- host-side checks: run in every build, with or without a GPU ---- */

static void expect_error(int status, const kpo_error *err, const char *words)
{
    assert_int_equal(status, KPO_ERR);
    if (!strstr(err->message, words))
        fail_msg("expected an error with '%s', got '%s'", words, err->message);
}

static void test_host_checks(void **state)
{
    (void)state;
    obj_case c;
    case_random(&c, 6, 10, 0.1, 3);
    objective_config cfg;
    objective_config_default(&cfg);
    objective_normalizer norm = {6, (double)c.N};
    float fake[1]; /* never dereferenced: the checks fail first */
    objective_cuda_batch good = case_batch(&c, fake, NULL, fake);
    objective_metrics m;
    objective_metrics_init(&m);
    kpo_error err;
    objective_cuda_batch b = good;
    b.offsets = NULL;
    expect_error(objective_cuda_compute(&cfg, &b, norm, &m, NULL, NULL, NULL, &err), &err,
                 "offsets");
    b = good;
    b.d_dlogp = NULL;
    expect_error(objective_cuda_compute(&cfg, &b, norm, &m, NULL, NULL, NULL, &err), &err,
                 "d_dlogp");
    b = good;
    b.n_rows = c.rows[c.R - 1]; /* the last response would run past the rows */
    expect_error(objective_cuda_compute(&cfg, &b, norm, &m, NULL, NULL, NULL, &err), &err,
                 "rows[5]");
    int64_t overlapping[6];
    memcpy(overlapping, c.rows, sizeof overlapping);
    overlapping[1] = overlapping[0]; /* response 1 on response 0's rows */
    b = good;
    b.rows = overlapping;
    expect_error(objective_cuda_compute(&cfg, &b, norm, &m, NULL, NULL, NULL, &err), &err,
                 "rows[1]");
    int64_t bad_offsets[7];
    memcpy(bad_offsets, c.offsets, sizeof bad_offsets);
    bad_offsets[3] = bad_offsets[2] - 1;
    b = good;
    b.offsets = bad_offsets;
    expect_error(objective_cuda_compute(&cfg, &b, norm, &m, NULL, NULL, NULL, &err), &err,
                 "offsets[3]");
    b = good;
    b.logp_out = c.logp;
    b.logp_out_tokens = c.N + 1;
    expect_error(objective_cuda_compute(&cfg, &b, norm, &m, NULL, NULL, NULL, &err), &err,
                 "logp_out_tokens");
    objective_normalizer empty = {0, 0};
    expect_error(objective_cuda_compute(&cfg, &good, empty, &m, NULL, NULL, NULL, &err), &err,
                 "no responses or tokens");
    objective_config bad_cfg = cfg;
    bad_cfg.clip_low = 1.5;
    expect_error(objective_cuda_compute(&bad_cfg, &good, norm, &m, NULL, NULL, NULL, &err),
                 &err, "clip_low");
    assert_true(m.tokens == 0); /* nothing was added */
    /* The model's device path: CUDA only, arguments checked first. */
    model_backend cpu = model_backend_cpu(NULL, NULL, NULL);
    gpu_model_head head;
    expect_error(model_backend_forward_device(&cpu, NULL, NULL, &head, &err), &err,
                 "needs device = cuda");
    expect_error(model_backend_backward_device(&cpu, false, &err), &err, "needs device = cuda");
#if KPO_HAVE_CUDA
    const char *missing = "missing argument";
#else
    const char *missing = "no usable GPU";
#endif
    expect_error(gpu_model_forward_device(NULL, NULL, NULL, &head, &err), &err, missing);
    expect_error(gpu_model_backward_device(NULL, false, &err), &err, missing);
    char why[512];
    if (gpu_unavailable(why, sizeof why)) /* valid arguments: only the GPU is missing */
        expect_error(objective_cuda_compute(&cfg, &good, norm, &m, NULL, NULL, NULL, &err), &err,
                     "no usable GPU");
    print_message("host checks: every bad argument named\n");
    case_free(&c);
}

#if KPO_HAVE_CUDA

/* ---- device against host ---- */

/* Fails unless |gpu - cpu| <= tol; prints nothing when it holds. */
static void expect_near(const char *what, const char *label, double gpu, double cpu, double tol)
{
    if (!(fabs(gpu - cpu) <= tol) && !(gpu == cpu))
        fail_msg("%s: %s gpu %.17g cpu %.17g (|diff| %.3g > %.3g)", label, what, gpu, cpu,
                 fabs(gpu - cpu), tol);
}

static void expect_stats_match(const char *label, const innov_stats *g, const innov_stats *c)
{
    assert_true(g->count == c->count && g->clip_count == c->clip_count &&
                g->threshold_count == c->threshold_count);
    for (int k = 0; k < INNOV_HIST_SLOTS; k++)
        if (g->hist[k] != c->hist[k])
            fail_msg("%s: innovation histogram slot %d: gpu %g cpu %g", label, k, g->hist[k],
                     c->hist[k]);
    if (c->count == 0)
        return;
    const double sd = sqrt(c->m2 / c->count) + 1e-300, n = c->count;
    expect_near("innovation mean", label, g->mean, c->mean, 1e-9 * sd);
    expect_near("innovation m2", label, g->m2, c->m2, 1e-9 * n * sd * sd);
    expect_near("innovation m3", label, g->m3, c->m3, 1e-9 * n * sd * sd * sd);
    expect_near("innovation m4", label, g->m4, c->m4, 1e-9 * n * sd * sd * sd * sd);
    expect_near("innovation max", label, g->max_abs, c->max_abs, 1e-12 * c->max_abs);
    expect_near("gain sum", label, g->gain_sum, c->gain_sum, 1e-12 * c->gain_sum);
    expect_near("sigma sum", label, g->sigma_sum, c->sigma_sum, 1e-12 * c->sigma_sum);
    expect_near("threshold sum", label, g->threshold_sum, c->threshold_sum,
                1e-12 * c->threshold_sum);
}

/* Bounds on the magnitudes each summed metric adds up, from the inputs
 * and the host's results: the sums' tolerances scale with them. */
typedef struct sum_scales {
    double loss, log_ratio, entropy;
} sum_scales;

static sum_scales scales_of(const objective_config *cfg, const obj_case *c,
                            objective_normalizer norm, const objective_metrics *host)
{
    sum_scales s = {0, 0, 0};
    double most = fmax(host->used_ratio_max, 1.0 + cfg->clip_high);
    most = fmax(most, cfg->dual_clip);
    for (int64_t r = 0; r < c->R; r++) {
        const int64_t n = c->offsets[r + 1] - c->offsets[r];
        if (n > 0)
            s.loss += (double)n * objective_token_weight(cfg->aggregation, norm, n) *
                      fabs(c->advantages[r]) * most;
    }
    for (int64_t k = 0; k < c->N; k++) {
        s.log_ratio += fabs(c->logp[k] - c->logp_old[k]);
        s.entropy += c->entropy[k];
    }
    return s;
}

static void expect_metrics_match(const char *label, const objective_config *cfg,
                                 const obj_case *c, objective_normalizer norm,
                                 const objective_metrics *g, const objective_metrics *h)
{
    const sum_scales s = scales_of(cfg, c, norm, h);
    assert_true(g->tokens == h->tokens);
    if (g->clipped_tokens != h->clipped_tokens)
        fail_msg("%s: clipped tokens gpu %g cpu %g", label, g->clipped_tokens, h->clipped_tokens);
    expect_near("loss", label, g->loss, h->loss, 1e-12 * s.loss);
    expect_near("log_ratio_sum", label, g->log_ratio_sum, h->log_ratio_sum, 1e-12 * s.log_ratio);
    expect_near("raw_ratio_sum", label, g->raw_ratio_sum, h->raw_ratio_sum,
                1e-12 * h->raw_ratio_sum);
    expect_near("used_ratio_sum", label, g->used_ratio_sum, h->used_ratio_sum,
                1e-12 * h->used_ratio_sum);
    expect_near("raw_ratio_min", label, g->raw_ratio_min, h->raw_ratio_min,
                1e-14 * h->raw_ratio_min);
    expect_near("raw_ratio_max", label, g->raw_ratio_max, h->raw_ratio_max,
                1e-14 * h->raw_ratio_max);
    expect_near("used_ratio_min", label, g->used_ratio_min, h->used_ratio_min,
                1e-14 * h->used_ratio_min);
    expect_near("used_ratio_max", label, g->used_ratio_max, h->used_ratio_max,
                1e-14 * h->used_ratio_max);
    expect_stats_match(label, &g->innovation, &h->innovation);
}

/* dlogp rows against the host's response-order d_logp; returns how many
 * response tokens came out bit-identical to (float) of the host's. */
static int64_t expect_dlogp_match(const char *label, const obj_case *c, const float *rows,
                                  const double *host)
{
    int64_t identical = 0, k = 0;
    for (int64_t r = 0; r < c->R; r++) {
        const int64_t first_row = c->rows[r], n = c->offsets[r + 1] - c->offsets[r];
        for (int64_t t = 0; t < n; t++, k++) {
            const float want = (float)host[k], got = rows[first_row + t];
            identical += memcmp(&want, &got, sizeof got) == 0;
            if (host[k] == 0.0 ? got != 0.0f
                               : !(fabs((double)got - (double)want) <= 0x1p-23 * fabs(host[k])))
                fail_msg("%s: dlogp of response %lld token %lld: gpu %.9g cpu %.17g", label,
                         (long long)r, (long long)t, (double)got, host[k]);
        }
    }
    /* Every other row is exactly 0, whatever the buffer held before. */
    int64_t resp = 0;
    for (int64_t p = 0; p < c->n_rows; p++) {
        while (resp < c->R && (c->offsets[resp + 1] == c->offsets[resp] ||
                               p >= c->rows[resp] + c->offsets[resp + 1] - c->offsets[resp]))
            resp++;
        const int inside = resp < c->R && p >= c->rows[resp];
        if (!inside && rows[p] != 0.0f)
            fail_msg("%s: dlogp of row %lld (no response token) is %g, not 0", label,
                     (long long)p, (double)rows[p]);
    }
    return identical;
}

typedef struct device_case {
    float *logp, *entropy, *dlogp; /* device [n_rows] */
} device_case;

static device_case device_upload(const obj_case *c)
{
    device_case d;
    d.logp = device_copy(c->logp_rows, (size_t)c->n_rows * 4, 0);
    d.entropy = device_copy(c->entropy_rows, (size_t)c->n_rows * 4, 0);
    d.dlogp = device_copy(NULL, (size_t)c->n_rows * 4, 0x7f); /* garbage the call must clear */
    return d;
}

static void device_free(device_case *d)
{
    cudaFree(d->logp);
    cudaFree(d->entropy);
    cudaFree(d->dlogp);
}

/* One config on one case: host vs device, then the device again (bits). */
static void compare_one(const char *label, const objective_config *cfg, const obj_case *c,
                        const device_case *d, int64_t *identical)
{
    objective_normalizer norm = {(double)c->R * 1.25, (double)c->N * 1.5 + 1};
    objective_metrics host, dev, again;
    objective_metrics_init(&host);
    objective_metrics_init(&dev);
    objective_metrics_init(&again);
    double *d_host = malloc((size_t)(c->N + 1) * sizeof *d_host);
    CHECK_OK(objective_compute(cfg, c->logp, c->logp_old, c->offsets, c->R, c->advantages, norm,
                               d_host, &host, ERR));
    double entropy_host = 0, entropy_dev = 0, entropy_again = 0;
    for (int64_t k = 0; k < c->N; k++)
        entropy_host += c->entropy[k];
    const int64_t out_tokens = c->offsets[c->R < 3 ? c->R : 3];
    double *logp_out = malloc((size_t)(out_tokens + 1) * sizeof *logp_out);
    objective_cuda_batch b = case_batch(c, d->logp, d->entropy, d->dlogp);
    b.logp_out = logp_out;
    b.logp_out_tokens = out_tokens;
    int finite = 1;
    CHECK_OK(objective_cuda_compute(cfg, &b, norm, &dev, &entropy_dev, &finite, NULL, ERR));
    assert_int_equal(finite, 1);
    float *rows = download_f32(d->dlogp, c->n_rows);
    *identical += expect_dlogp_match(label, c, rows, d_host);
    expect_metrics_match(label, cfg, c, norm, &dev, &host);
    sum_scales s = scales_of(cfg, c, norm, &host);
    expect_near("entropy sum", label, entropy_dev, entropy_host, 1e-12 * s.entropy);
    for (int64_t k = 0; k < out_tokens; k++)
        assert_true(logp_out[k] == c->logp[k]);
    b.logp_out = NULL;
    assert_int_equal(cudaMemset(d->dlogp, 0x7f, (size_t)c->n_rows * 4), cudaSuccess);
    CHECK_OK(objective_cuda_compute(cfg, &b, norm, &again, &entropy_again, &finite, NULL, ERR));
    float *rows_again = download_f32(d->dlogp, c->n_rows);
    assert_memory_equal(rows, rows_again, (size_t)c->n_rows * 4);
    assert_memory_equal(&dev, &again, sizeof dev);
    assert_memory_equal(&entropy_dev, &entropy_again, sizeof entropy_dev);
    free(rows);
    free(rows_again);
    free(logp_out);
    free(d_host);
}

/* Every objective x aggregation x clip (x dual clip for grpo, x filter
 * mode for kpo) on one case. */
static void compare_all(const obj_case *c, const char *name, double clip_low, double clip_high)
{
    device_case d = device_upload(c);
    int64_t identical = 0, tokens = 0;
    char label[160];
    for (int kind = 0; kind < OBJECTIVE_COUNT; kind++)
        for (int agg = 0; agg < LOSS_AGG_COUNT; agg++)
            for (int clip = 0; clip <= 1; clip++)
                for (int variant = 0; variant < FILTER_MODE_COUNT; variant++) {
                    objective_config cfg;
                    objective_config_default(&cfg);
                    cfg.kind = (objective_kind)kind;
                    cfg.aggregation = (loss_aggregation)agg;
                    cfg.clip = clip;
                    cfg.clip_low = clip_low;
                    cfg.clip_high = clip_high;
                    cfg.filter.q = 0.01;
                    if (kind == OBJECTIVE_KPO)
                        cfg.filter.mode = (filter_mode)variant;
                    else if (variant > (kind == OBJECTIVE_GRPO && clip))
                        continue; /* grpo: dual clip off and on (variant 1) */
                    cfg.dual_clip = kind == OBJECTIVE_GRPO && variant == 1 ? 3.0 : 0.0;
                    snprintf(label, sizeof label, "%s %s %s clip %d %s%s", name,
                             objective_kind_name(cfg.kind), loss_aggregation_name(cfg.aggregation),
                             clip, kind == OBJECTIVE_KPO ? filter_mode_name(cfg.filter.mode) : "",
                             cfg.dual_clip > 0 ? "dual 3" : "");
                    compare_one(label, &cfg, c, &d, &identical);
                    tokens += c->N;
                }
    print_message("%s: %lld responses, %lld tokens, %lld rows; dlogp bit-identical to the host's "
                  "(as float) on %lld of %lld tokens\n",
                  name, (long long)c->R, (long long)c->N, (long long)c->n_rows,
                  (long long)identical, (long long)tokens);
    device_free(&d);
}

static void test_on_policy(void **state)
{
    (void)state;
    GPU_REQUIRE_OR_SKIP();
    obj_case c;
    case_random(&c, 70, 300, 1e-3, 41);
    compare_all(&c, "near on-policy, eps 3e-4/4e-4", 3e-4, 4e-4);
    case_free(&c);
}

static void test_stale(void **state)
{
    (void)state;
    GPU_REQUIRE_OR_SKIP();
    obj_case c;
    case_random(&c, 300, 200, 0.5, 42);
    compare_all(&c, "stale, eps 0.2/0.28", 0.2, 0.28);
    case_free(&c);
}

/* A non-finite log-prob: *finite = 0 and nothing added, or the host's
 * error; an empty batch only zeroes dlogp. */
static void test_not_finite_and_empty(void **state)
{
    (void)state;
    GPU_REQUIRE_OR_SKIP();
    obj_case c;
    case_random(&c, 12, 30, 0.1, 43);
    const int64_t r = 5, t = 1;
    assert_true(c.offsets[r + 1] - c.offsets[r] > t);
    c.logp_rows[c.rows[r] + t] = INFINITY;
    c.logp[c.offsets[r] + t] = INFINITY;
    device_case d = device_upload(&c);
    objective_config cfg;
    objective_config_default(&cfg);
    objective_normalizer norm = {12, (double)c.N};
    objective_metrics m, untouched;
    objective_metrics_init(&m);
    untouched = m;
    objective_cuda_batch b = case_batch(&c, d.logp, d.entropy, d.dlogp);
    int finite = 1;
    double entropy = 0;
    CHECK_OK(objective_cuda_compute(&cfg, &b, norm, &m, &entropy, &finite, NULL, ERR));
    assert_int_equal(finite, 0);
    assert_memory_equal(&m, &untouched, sizeof m);
    assert_true(entropy == 0);
    kpo_error gpu_err, cpu_err;
    assert_int_equal(objective_cuda_compute(&cfg, &b, norm, &m, NULL, NULL, NULL, &gpu_err),
                     KPO_ERR);
    double *dl = malloc((size_t)c.N * sizeof *dl);
    assert_int_equal(objective_compute(&cfg, c.logp, c.logp_old, c.offsets, c.R, c.advantages,
                                       norm, dl, &m, &cpu_err), KPO_ERR);
    assert_string_equal(gpu_err.message, cpu_err.message);
    /* No responses at all: dlogp all zeros, metrics unchanged. */
    objective_metrics_init(&m);
    b.n_responses = 0;
    assert_int_equal(cudaMemset(d.dlogp, 0x7f, (size_t)c.n_rows * 4), cudaSuccess);
    CHECK_OK(objective_cuda_compute(&cfg, &b, norm, &m, NULL, NULL, NULL, ERR));
    float *rows = download_f32(d.dlogp, c.n_rows);
    for (int64_t p = 0; p < c.n_rows; p++)
        assert_true(rows[p] == 0.0f);
    assert_memory_equal(&m, &untouched, sizeof m);
    print_message("non-finite: skipped with *finite = 0, else '%s'\n", gpu_err.message);
    free(rows);
    free(dl);
    device_free(&d);
    case_free(&c);
}

/* ---- the learner's CUDA path against the host objective ---- */

static void learner_model(model *m)
{
    /* head_dim 16: what the attention kernels support. */
    model_config mc = {.vocab_size = 64, .hidden_size = 64, .intermediate_size = 96,
                       .num_hidden_layers = 2, .num_attention_heads = 4,
                       .num_key_value_heads = 2, .head_dim = 16,
                       .max_position_embeddings = 128, .rope_theta = 1e4, .rms_norm_eps = 1e-6,
                       .tie_word_embeddings = true};
    CHECK_OK(model_init(m, &mc, ERR));
    model_init_random(m, 5, 0.3);
}

/* The old path on the same GPU model for one micro-batch: floats down,
 * objective_compute on the host, dlogp up (what learner_gradients did
 * before). logp [response tokens] receives the log-probs. */
static void host_micro_batch(model_backend *be, const learner_config *cfg, const rl_batch *b,
                             const double *old, objective_normalizer norm,
                             objective_metrics *om, double *entropy_sum, double *logp)
{
    const int64_t T = b->seq_offsets[b->n], R = rl_batch_response_tokens(b);
    int32_t *targets = malloc((size_t)T * sizeof *targets);
    float *lp = malloc((size_t)T * 4), *ent = malloc((size_t)T * 4), *dpos = calloc((size_t)T, 4);
    double *dl = malloc((size_t)(R + 1) * 8);
    int64_t *offsets = malloc((size_t)(b->n + 1) * 8);
    offsets[0] = 0;
    for (int64_t i = 0; i < b->n; i++) {
        const int64_t start = b->seq_offsets[i], end = b->seq_offsets[i + 1];
        offsets[i + 1] = offsets[i] + (end - start - b->prompt_len[i]);
        for (int64_t p = start; p < end; p++)
            targets[p] = p >= start + b->prompt_len[i] - 1 && p < end - 1 ? b->tokens[p + 1] : -1;
    }
    model_batch mb = {b->tokens, T, b->seq_offsets, b->n};
    CHECK_OK(model_backend_forward(be, &mb, targets, lp, ent, ERR));
    for (int64_t p = 0, k = 0; p < T; p++)
        if (targets[p] >= 0) {
            logp[k] = lp[p];
            *entropy_sum += ent[p];
            k++;
        }
    CHECK_OK(objective_compute(&cfg->objective, logp, old, offsets, b->n, b->advantage, norm, dl,
                               om, ERR));
    for (int64_t p = 0, k = 0; p < T; p++)
        if (targets[p] >= 0)
            dpos[p] = (float)dl[k++];
    CHECK_OK(model_backend_backward(be, dpos, NULL, ERR));
    free(targets);
    free(lp);
    free(ent);
    free(dpos);
    free(dl);
    free(offsets);
}

/* The host path over the share in learner_gradients' micro-batches
 * (whole sequences while they fit the budget). */
static void host_gradients(model_backend *be, const learner_config *cfg, const rl_batch *b,
                           const double *old, objective_normalizer norm, objective_metrics *om,
                           double *entropy_sum, double *logp)
{
    const int64_t budget = cfg->micro_batch_tokens;
    CHECK_OK(model_backend_zero_grads(be, ERR));
    int64_t done = 0;
    for (int64_t first = 0; first < b->n;) {
        int64_t count = 1;
        while (budget > 0 && first + count < b->n &&
               b->seq_offsets[first + count + 1] - b->seq_offsets[first] <= budget)
            count++;
        if (budget <= 0)
            count = b->n - first;
        rl_batch mb;
        CHECK_OK(rl_batch_slice(b, first, count, &mb, ERR));
        host_micro_batch(be, cfg, &mb, old + done, norm, om, entropy_sum, logp + done);
        done += rl_batch_response_tokens(&mb);
        rl_batch_free(&mb);
        first += count;
    }
}

static void compare_learner(model_backend *be, model *m, const learner_config *cfg,
                            const rl_batch *b, const double *old, const char *label)
{
    const int64_t R = rl_batch_response_tokens(b);
    objective_normalizer norm = {(double)b->n, (double)R};
    objective_metrics dev, host;
    objective_metrics_init(&dev);
    objective_metrics_init(&host);
    double ent_dev = 0, ent_host = 0;
    double *logp = malloc((size_t)R * sizeof *logp);
    learner_metrics samples = {0};
    model_weights g_dev, g_host;
    CHECK_OK(model_weights_init(m, &g_dev, ERR));
    CHECK_OK(model_weights_init(m, &g_host, ERR));
    CHECK_OK(learner_gradients(be, cfg, b, old, norm, &dev, &ent_dev, &samples, ERR));
    CHECK_OK(gpu_model_grads_download(be->gpu, &g_dev, ERR));
    host_gradients(be, cfg, b, old, norm, &host, &ent_host, logp);
    CHECK_OK(gpu_model_grads_download(be->gpu, &g_host, ERR));
    assert_true(dev.tokens == host.tokens && dev.tokens == (double)R);
    assert_true(dev.clipped_tokens == host.clipped_tokens);
    /* seq-mean-token-mean: response r's terms add up to at most |A_r| times
     * the largest ratio (or clip bound) over the responses count. */
    const objective_config *oc = &cfg->objective;
    const double most_ratio = fmax(fmax(host.used_ratio_max, 1.0 + oc->clip_high), oc->dual_clip);
    double loss_scale = 0;
    for (int64_t i = 0; i < b->n; i++)
        loss_scale += fabs(b->advantage[i]) * most_ratio / norm.responses;
    expect_near("loss", label, dev.loss, host.loss, 1e-12 * loss_scale);
    expect_near("entropy sum", label, ent_dev, ent_host, 1e-12 * ent_host);
    expect_stats_match(label, &dev.innovation, &host.innovation);
    double most = 0, worst = 0;
    for (int64_t i = 0; i < g_host.n_params; i++) {
        most = fmax(most, fabs(g_host.data[i]));
        worst = fmax(worst, fabs(g_dev.data[i] - g_host.data[i]));
    }
    print_message("%s, micro-batches of %lld tokens: loss %.6g, %g of %g tokens clipped, "
                  "gradients: worst |diff| %.3g of max %.3g\n", label,
                  (long long)cfg->micro_batch_tokens, dev.loss, dev.clipped_tokens, dev.tokens,
                  worst, most);
    assert_true(most > 0 && worst <= 1e-5 * most);
    /* The run file's samples: z of the first log_samples responses. */
    assert_int_equal(samples.n_samples, cfg->log_samples);
    for (int64_t k = 0; k < samples.sample_offsets[samples.n_samples]; k++)
        assert_true(samples.sample_values[k] == logp[k] - old[k]);
    learner_metrics_free(&samples);
    model_weights_free(&g_dev);
    model_weights_free(&g_host);
    free(logp);
}

static void test_learner_cuda_path(void **state)
{
    (void)state;
    GPU_REQUIRE_OR_SKIP();
    model m;
    learner_model(&m);
    rl_batch b;
    assert_int_equal(fixture_batch(&b, 3, 4, 21), 0);
    rng_stream rng;
    rng_stream_init(&rng, 77, 0);
    for (int64_t i = 0; i < b.n; i++)
        b.advantage[i] = rng_normal(&rng);
    gpu_model_options o = {.train = true, .recompute = true, .max_tokens = b.seq_offsets[b.n],
                           .logprob_chunk = 32, .optim = adamw_config_default()};
    adamw_state opt;
    CHECK_OK(adamw_init(&opt, &m, &o.optim, ERR));
    model_backend be;
    CHECK_OK(model_backend_cuda_create(&be, &m, &opt, &o, ERR));
    const int64_t R = rl_batch_response_tokens(&b);
    double *old = malloc((size_t)R * sizeof *old);
    CHECK_OK(learner_response_logprobs(&be, &b, 0, old, NULL, ERR));
    for (int64_t k = 0; k < R; k++)
        old[k] += 0.3 * rng_normal(&rng); /* stale: ratios away from 1, clips fire */
    learner_config cfg = {.minibatches = 1, .group_size = 4, .norm_adv_by_std = 1,
                          .adv_eps = 1e-6, .log_samples = 3, .micro_batch_tokens = 0};
    const objective_kind kinds[] = {OBJECTIVE_KPO, OBJECTIVE_GRPO, OBJECTIVE_GSPO};
    for (int k = 0; k < 3; k++) {
        objective_config_default(&cfg.objective);
        cfg.objective.kind = kinds[k];
        cfg.objective.aggregation = LOSS_AGG_SEQ_MEAN_TOKEN_MEAN; /* compare_learner's scale */
        cfg.objective.clip_low = 0.2;
        cfg.objective.clip_high = 0.28;
        cfg.objective.dual_clip = kinds[k] == OBJECTIVE_GRPO ? 3.0 : 0.0;
        cfg.objective.filter.q = 0.01;
        cfg.objective.filter.mode = FILTER_MODE_SIGMA;
        for (int budget = 0; budget <= 40; budget += 40) { /* whole share; several */
            cfg.micro_batch_tokens = budget;
            compare_learner(&be, &m, &cfg, &b, old, objective_kind_name(kinds[k]));
        }
    }
    free(old);
    model_backend_free(&be);
    adamw_free(&opt);
    rl_batch_free(&b);
    model_free(&m);
}

#else /* without CUDA only the host checks exist */

static void test_on_policy(void **state) { (void)state; GPU_REQUIRE_OR_SKIP(); }
static void test_stale(void **state) { (void)state; GPU_REQUIRE_OR_SKIP(); }
static void test_not_finite_and_empty(void **state) { (void)state; GPU_REQUIRE_OR_SKIP(); }
static void test_learner_cuda_path(void **state) { (void)state; GPU_REQUIRE_OR_SKIP(); }

#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_checks),
        cmocka_unit_test(test_on_policy),
        cmocka_unit_test(test_stale),
        cmocka_unit_test(test_not_finite_and_empty),
        cmocka_unit_test(test_learner_cuda_path),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    char why[512];
    /* 77: meson's SKIP, so a run without a GPU says so in its summary */
    return failed ? 1 : gpu_unavailable(why, sizeof why) ? 77 : 0;
}
