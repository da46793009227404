/* The Kalman filter over token log-ratios: exactness, reset per response,
 * and every saturation mode's activation rule. */
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

static filter_config config_with(double q, double v, filter_mode mode, double kappa)
{
    filter_config cfg;
    filter_config_default(&cfg);
    cfg.q = q;
    cfg.v = v;
    cfg.mode = mode;
    cfg.kappa = kappa;
    cfg.c_state = kappa;
    return cfg;
}

static void gaussian_stream(double *z, int n, double scale, uint64_t seed)
{
    rng_stream rng;
    rng_stream_init(&rng, seed, 0);
    for (int i = 0; i < n; i++)
        z[i] = scale * rng_normal(&rng);
}

/* The straightforward recursion in extended precision: the reference. */
static void reference_recursion(const double *z, int n, double q, double v, long double *rho)
{
    long double x = 0, p = 0;
    for (int t = 0; t < n; t++) {
        long double prior = p + q;
        long double gain = prior / (prior + v);
        x = x + gain * ((long double)z[t] - x);
        p = prior * v / (prior + v);
        rho[t] = x;
    }
}

/* The official KPO code's parallel form in float32 with its clamps:
 * A_t = prod(1-K_j) >= 1e-30, 1/A_i <= e^80, rho_t = A_t sum K_i z_i / A_i. */
static void official_parallel_form(const double *z, int n, double q, float *rho)
{
    float log_a = 0.0f, sum = 0.0f, k = 0.0f;
    for (int t = 0; t < n; t++) {
        float prior = k + (float)q;
        k = prior / (prior + 1.0f);
        k = fminf(fmaxf(k, 1e-6f), 1.0f - 1e-6f);
        log_a += logf(1.0f - k);
        float a = fmaxf(expf(log_a), 1e-30f);
        float inv_a = fminf(expf(-log_a), expf(80.0f));
        sum += k * (float)z[t] * inv_a;
        rho[t] = a * sum;
    }
}

/* The long-response test: q = 1e-2 over 4096 tokens. */
static void test_long_response_exact_at_weak_smoothing(void **state)
{
    (void)state;
    enum { T = 4096 };
    double *z = malloc(T * sizeof *z), *rho = malloc(T * sizeof *rho);
    long double *exact = malloc(T * sizeof *exact);
    float *official = malloc(T * sizeof *official);
    gaussian_stream(z, T, 0.05, 11);
    filter_config cfg = config_with(1e-2, 1.0, FILTER_MODE_NONE, 3);
    int64_t offsets[2] = {0, T};
    filter_outputs out = {.rho = rho};
    assert_int_equal(filter_apply(&cfg, z, offsets, 1, &out, NULL, NULL), KPO_OK);
    reference_recursion(z, T, 1e-2, 1.0, exact);
    official_parallel_form(z, T, 1e-2, official);
    double worst = 0;
    int first_official_break = -1;
    for (int t = 0; t < T; t++) {
        worst = fmax(worst, fabs(rho[t] - (double)exact[t]));
        if (first_official_break < 0 && fabs(official[t] - (double)exact[t]) > 1e-3)
            first_official_break = t;
    }
    print_message("max |kpo - extended-precision recursion| = %.3g over %d tokens; the "
                  "official parallel form first departs by > 1e-3 at token %d\n",
                  worst, T, first_official_break);
    assert_true(worst < 1e-14);
    /* The published form breaks down long before 4096 tokens (algorithms.md §1). */
    assert_true(first_official_break > 0 && first_official_break < 1500);
    free(z);
    free(rho);
    free(exact);
    free(official);
}

/* rho_t = sum_i w_{t,i} z_i with w_{t,i} = K_i prod_{j>i} (1 - K_j). */
static void test_matches_explicit_weights(void **state)
{
    (void)state;
    enum { T = 64 };
    double z[T], rho[T], gain[T];
    gaussian_stream(z, T, 0.1, 5);
    filter_config cfg = config_with(0.05, 0.7, FILTER_MODE_NONE, 3);
    int64_t offsets[2] = {0, T};
    filter_outputs out = {.rho = rho, .gain = gain};
    assert_int_equal(filter_apply(&cfg, z, offsets, 1, &out, NULL, NULL), KPO_OK);
    for (int t = 0; t < T; t++) {
        double expected = 0;
        for (int i = 0; i <= t; i++) {
            double w = gain[i];
            for (int j = i + 1; j <= t; j++)
                w *= 1 - gain[j];
            expected += w * z[i];
        }
        assert_true(fabs(rho[t] - expected) < 1e-14);
    }
}

static void test_reset_per_response(void **state)
{
    (void)state;
    enum { A = 37, B = 91 };
    double z[A + B], batched[A + B], single[A + B];
    gaussian_stream(z, A + B, 0.2, 9);
    for (int mode = 0; mode < FILTER_MODE_COUNT; mode++) {
        filter_config cfg = config_with(1e-2, 0.3, (filter_mode)mode, 1.5);
        int64_t both[3] = {0, A, A + B}, first[2] = {0, A}, second[2] = {0, B};
        filter_outputs out = {.rho = batched};
        assert_int_equal(filter_apply(&cfg, z, both, 2, &out, NULL, NULL), KPO_OK);
        out.rho = single;
        assert_int_equal(filter_apply(&cfg, z, first, 1, &out, NULL, NULL), KPO_OK);
        out.rho = single + A;
        assert_int_equal(filter_apply(&cfg, z + A, second, 1, &out, NULL, NULL), KPO_OK);
        assert_memory_equal(batched, single, sizeof batched);
    }
}

static void test_initial_state_is_configurable(void **state)
{
    (void)state;
    double z[5] = {1, -1, 2, -2, 3}, rho[5], gain[5];
    filter_config cfg = config_with(0.0, 1.0, FILTER_MODE_NONE, 3);
    cfg.rho0 = 0.3; /* Q = 0 and P0 = 0: the state is known and never moves */
    int64_t offsets[2] = {0, 5};
    filter_outputs out = {.rho = rho, .gain = gain};
    assert_int_equal(filter_apply(&cfg, z, offsets, 1, &out, NULL, NULL), KPO_OK);
    for (int t = 0; t < 5; t++) {
        assert_true(rho[t] == 0.3);
        assert_true(gain[t] == 0.0);
    }
    cfg.p0 = 1.0; /* P0 = V: the first gain is 1/2 */
    assert_int_equal(filter_apply(&cfg, z, offsets, 1, &out, NULL, NULL), KPO_OK);
    assert_true(fabs(gain[0] - 0.5) < 1e-16);
    assert_true(fabs(rho[0] - (0.3 + 0.5 * (1 - 0.3))) < 1e-16);
}

/* First-token threshold of each mode from rho0 = P0 = 0. */
static double first_threshold(const filter_config *cfg)
{
    switch (cfg->mode) {
    case FILTER_MODE_SIGMA:
    case FILTER_MODE_ADAPTIVE:
        return cfg->kappa * sqrt(cfg->q + cfg->v);
    case FILTER_MODE_SQRTV:
    case FILTER_MODE_ITERATED:
        return cfg->kappa * sqrt(cfg->v);
    default:
        return INFINITY;
    }
}

/* Saturation activates exactly when |delta| exceeds the threshold. */
static void test_saturation_activates_exactly_above_threshold(void **state)
{
    (void)state;
    for (int mode = FILTER_MODE_SIGMA; mode < FILTER_MODE_COUNT; mode++) {
        filter_config cfg = config_with(0.01, 0.25, (filter_mode)mode, 2.0);
        double limit = first_threshold(&cfg);
        double at = limit, above = nextafter(limit, INFINITY), below = -limit;
        double beyond = -nextafter(limit, INFINITY);
        const double cases[4] = {at, above, below, beyond};
        const int expected[4] = {0, 1, 0, 1};
        for (int k = 0; k < 4; k++) {
            double z = cases[k], rho, gain, delta, threshold;
            uint8_t clipped;
            int64_t offsets[2] = {0, 1};
            filter_outputs out = {&rho, &gain, &delta, &threshold, &clipped};
            assert_int_equal(filter_apply(&cfg, &z, offsets, 1, &out, NULL, NULL), KPO_OK);
            assert_true(threshold == limit);
            assert_int_equal(clipped, expected[k]);
            if (mode != FILTER_MODE_ITERATED) {
                /* The update uses the saturated innovation. */
                double used = fmin(fmax(delta, -threshold), threshold);
                assert_true(fabs(rho - gain * used) < 1e-17);
            }
        }
    }
}

static void test_no_saturation_in_mode_none(void **state)
{
    (void)state;
    double z[3] = {50, -80, 1e3}, threshold[3];
    uint8_t clipped[3];
    filter_config cfg = config_with(0.01, 1, FILTER_MODE_NONE, 3);
    int64_t offsets[2] = {0, 3};
    filter_outputs out = {.threshold = threshold, .clipped = clipped};
    innov_stats stats;
    innov_stats_init(&stats);
    assert_int_equal(filter_apply(&cfg, z, offsets, 1, &out, &stats, NULL), KPO_OK);
    for (int t = 0; t < 3; t++) {
        assert_int_equal(clipped[t], 0);
        assert_true(isinf(threshold[t]));
    }
    assert_true(stats.clip_count == 0);
    assert_true(isnan(innov_stats_mean_threshold(&stats)));
}

/* Outliers move the saturated filter by at most K * threshold per token. */
static void test_sigma_mode_bounds_outlier_influence(void **state)
{
    (void)state;
    enum { T = 200 };
    double z[T], plain[T], saturated[T], gain[T], threshold[T];
    gaussian_stream(z, T, 0.05, 3);
    z[150] = 25.0;
    filter_config cfg = config_with(0.01, 1.0, FILTER_MODE_NONE, 3);
    int64_t offsets[2] = {0, T};
    filter_outputs out = {.rho = plain};
    assert_int_equal(filter_apply(&cfg, z, offsets, 1, &out, NULL, NULL), KPO_OK);
    cfg.mode = FILTER_MODE_SIGMA;
    innov_stats stats;
    innov_stats_init(&stats);
    filter_outputs sat = {.rho = saturated, .gain = gain, .threshold = threshold};
    assert_int_equal(filter_apply(&cfg, z, offsets, 1, &sat, &stats, NULL), KPO_OK);
    assert_true(stats.clip_count == 1);
    assert_true(fabs(plain[150] - plain[149]) > 2.0);
    assert_true(fabs(saturated[150] - saturated[149]) <= gain[150] * threshold[150] + 1e-15);
    for (int t = 0; t < 150; t++)
        assert_true(plain[t] == saturated[t]);
}

/* Yang & Boyd: one iteration with eta = 1 and a plain covariance update is
 * exactly the sqrt(V)-normalised one-step saturation; with small
 * innovations the iteration rests at the Kalman update. */
static void test_iterated_mode_limits(void **state)
{
    (void)state;
    enum { T = 300 };
    double z[T], iterated[T], reference[T];
    gaussian_stream(z, T, 1.5, 21);
    int64_t offsets[2] = {0, T};
    filter_config cfg = config_with(0.05, 0.5, FILTER_MODE_ITERATED, 1.0);
    cfg.iterations = 1;
    cfg.scale_covariance = 0;
    cfg.c_state = INFINITY;
    filter_outputs out = {.rho = iterated};
    assert_int_equal(filter_apply(&cfg, z, offsets, 1, &out, NULL, NULL), KPO_OK);
    filter_config one_step = config_with(0.05, 0.5, FILTER_MODE_SQRTV, 1.0);
    out.rho = reference;
    assert_int_equal(filter_apply(&one_step, z, offsets, 1, &out, NULL, NULL), KPO_OK);
    for (int t = 0; t < T; t++)
        assert_true(fabs(iterated[t] - reference[t]) < 1e-12);

    gaussian_stream(z, T, 1e-3, 22);
    cfg = config_with(1e-6, 1.0, FILTER_MODE_ITERATED, 3.0);
    out.rho = iterated;
    assert_int_equal(filter_apply(&cfg, z, offsets, 1, &out, NULL, NULL), KPO_OK);
    filter_config plain = config_with(1e-6, 1.0, FILTER_MODE_NONE, 3.0);
    out.rho = reference;
    assert_int_equal(filter_apply(&plain, z, offsets, 1, &out, NULL, NULL), KPO_OK);
    for (int t = 0; t < T; t++)
        assert_true(fabs(iterated[t] - reference[t]) < 1e-15);
}

/* Scaled covariance: a saturated measurement carries less information, so
 * the posterior variance (hence the next gain) stays larger. */
static void test_iterated_scaled_covariance(void **state)
{
    (void)state;
    double z[2] = {40.0, 0.0}, gain[2];
    int64_t offsets[2] = {0, 2};
    filter_config cfg = config_with(0.1, 1.0, FILTER_MODE_ITERATED, 1.0);
    filter_outputs out = {.gain = gain};
    assert_int_equal(filter_apply(&cfg, z, offsets, 1, &out, NULL, NULL), KPO_OK);
    double scaled_next = gain[1];
    cfg.scale_covariance = 0;
    assert_int_equal(filter_apply(&cfg, z, offsets, 1, &out, NULL, NULL), KPO_OK);
    assert_true(scaled_next > gain[1]);
}

/* Adaptive bound: near kappa * sigma under the model's own innovations,
 * shrinking under a burst of outliers. */
static void test_adaptive_bound_behaviour(void **state)
{
    (void)state;
    enum { T = 20000 };
    double *z = malloc(T * sizeof *z), *threshold = malloc(T * sizeof *threshold);
    gaussian_stream(z, T, 1.0, 31); /* V = 1, q ~ 0: innovations ~ N(0, 1) */
    filter_config cfg = config_with(1e-8, 1.0, FILTER_MODE_ADAPTIVE, 3.0);
    int64_t offsets[2] = {0, T};
    filter_outputs out = {.threshold = threshold};
    assert_int_equal(filter_apply(&cfg, z, offsets, 1, &out, NULL, NULL), KPO_OK);
    double mean = 0;
    for (int t = T / 2; t < T; t++)
        mean += threshold[t] / (T / 2);
    print_message("adaptive: mean threshold under nominal innovations %.3f (kappa sigma = 3)\n",
                  mean);
    assert_true(mean > 2.4 && mean < 3.3);
    for (int t = 1000; t < 1040; t++)
        z[t] = (t % 2 ? 30.0 : -30.0);
    assert_int_equal(filter_apply(&cfg, z, offsets, 1, &out, NULL, NULL), KPO_OK);
    assert_true(threshold[1040] < 0.5 * threshold[999]);
    free(z);
    free(threshold);
}

static void test_statistics_count_every_token(void **state)
{
    (void)state;
    enum { T = 500 };
    double z[T];
    uint8_t clipped[T];
    gaussian_stream(z, T, 1.0, 41);
    int64_t offsets[4] = {0, 100, 100, T}; /* an empty response in the middle */
    filter_config cfg = config_with(0.01, 1.0, FILTER_MODE_SIGMA, 1.0);
    innov_stats stats;
    innov_stats_init(&stats);
    filter_outputs out = {.clipped = clipped};
    assert_int_equal(filter_apply(&cfg, z, offsets, 3, &out, &stats, NULL), KPO_OK);
    double clips = 0;
    for (int t = 0; t < T; t++)
        clips += clipped[t];
    assert_true(stats.count == T);
    assert_true(stats.clip_count == clips);
    assert_true(clips > 0.2 * T && clips < 0.45 * T); /* P(|N(0,1)| > ~1.05) ~ 0.3 */
}

static void test_rejects_bad_input_without_writing(void **state)
{
    (void)state;
    double z[3] = {0.1, NAN, 0.2}, rho[3] = {7, 7, 7};
    int64_t offsets[2] = {0, 3};
    filter_config cfg = config_with(0.01, 1.0, FILTER_MODE_NONE, 3);
    filter_outputs out = {.rho = rho};
    kpo_error err;
    assert_int_equal(filter_apply(&cfg, z, offsets, 1, &out, NULL, &err), KPO_ERR);
    assert_non_null(strstr(err.message, "token 1"));
    assert_true(rho[0] == 7 && rho[2] == 7);

    z[1] = 0.0;
    int64_t bad_offsets[2] = {0, -1};
    assert_int_equal(filter_apply(&cfg, z, bad_offsets, 1, &out, NULL, &err), KPO_ERR);
    assert_non_null(strstr(err.message, "offsets"));

    const struct {
        double q, v, p0, kappa;
        filter_mode mode;
        const char *names;
    } bad[] = {
        {-1e-3, 1, 0, 3, FILTER_MODE_NONE, "q:"},
        {0.01, 0, 0, 3, FILTER_MODE_NONE, "v:"},
        {0.01, -1, 0, 3, FILTER_MODE_NONE, "v:"},
        {0.01, NAN, 0, 3, FILTER_MODE_NONE, "v:"},
        {0.01, 1, -1, 3, FILTER_MODE_NONE, "p0:"},
        {0.01, 1, 0, 0, FILTER_MODE_SIGMA, "kappa:"},
        {0.01, 1, 0, -2, FILTER_MODE_SQRTV, "kappa:"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        filter_config c = config_with(bad[k].q, bad[k].v, bad[k].mode, bad[k].kappa);
        c.p0 = bad[k].p0;
        assert_int_equal(filter_apply(&c, z, offsets, 1, &out, NULL, &err), KPO_ERR);
        assert_non_null(strstr(err.message, bad[k].names));
    }
    filter_mode mode;
    assert_int_equal(filter_mode_parse("huber", &mode, &err), KPO_ERR);
    assert_non_null(strstr(err.message, "huber"));
    assert_int_equal(filter_mode_parse("iterated", &mode, &err), KPO_OK);
    assert_int_equal(mode, FILTER_MODE_ITERATED);
    assert_true(rho[0] == 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_long_response_exact_at_weak_smoothing),
        cmocka_unit_test(test_matches_explicit_weights),
        cmocka_unit_test(test_reset_per_response),
        cmocka_unit_test(test_initial_state_is_configurable),
        cmocka_unit_test(test_saturation_activates_exactly_above_threshold),
        cmocka_unit_test(test_no_saturation_in_mode_none),
        cmocka_unit_test(test_sigma_mode_bounds_outlier_influence),
        cmocka_unit_test(test_iterated_mode_limits),
        cmocka_unit_test(test_iterated_scaled_covariance),
        cmocka_unit_test(test_adaptive_bound_behaviour),
        cmocka_unit_test(test_statistics_count_every_token),
        cmocka_unit_test(test_rejects_bad_input_without_writing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
