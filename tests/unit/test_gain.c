/* Closed forms of the random-walk filter's gain against its recursion. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>

#include <cmocka.h>

#include "filter/filter.h"
#include "filter/gain.h"

/* Every row of algorithms.md §5: q, K_inf (as printed there), tolerance. */
static void test_steady_gain_matches_table(void **state)
{
    (void)state;
    const struct {
        double q, v, k_inf, tolerance, sigma;
    } rows[] = {
        {1e-6, 1.0, 0.0009995, 1e-7, 1.0005},
        {1e-4, 1.0, 0.00995, 1e-5, 1.005},
        {0.01, 1.0, 0.0951, 1e-4, 1.051},
        {0.01, 0.1, 0.270, 1e-3, 0.370},
        {0.05, 1.0, 0.2000, 1e-12, 1.118},
        {0.1, 1.0, 0.270, 1e-3, 1.170},
    };
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) {
        double ratio = rows[k].q / rows[k].v;
        double gain = gain_steady(ratio);
        assert_true(fabs(gain - rows[k].k_inf) <= rows[k].tolerance);
        /* It is the positive root of K^2 + qK - q = 0 ... */
        assert_true(fabs(gain * gain + ratio * gain - ratio) < 1e-15);
        /* ... and the limit of the recursion from P0 = 0. */
        double *seq = malloc(200000 * sizeof *seq);
        gain_sequence(ratio, 0.0, 200000, seq);
        assert_true(fabs(seq[199999] - gain) < 1e-12 * fmax(1.0, gain));
        free(seq);
        double sigma = sqrt(gain_steady_prior_variance(rows[k].q, rows[k].v) + rows[k].v);
        assert_true(fabs(sigma - rows[k].sigma) < 1e-3);
    }
}

static void test_transient_from_zero_prior(void **state)
{
    (void)state;
    const double qs[] = {1e-6, 1e-4, 1e-2, 0.1, 1.0};
    for (size_t k = 0; k < sizeof qs / sizeof qs[0]; k++) {
        double q = qs[k], seq[3];
        gain_sequence(q, 0.0, 3, seq);
        assert_true(fabs(seq[0] - q / (1 + q)) < 1e-17);
        double k2 = (seq[0] + q) / (seq[0] + q + 1);
        assert_true(fabs(seq[1] - k2) < 1e-17);
        /* Gains rise monotonically towards K_inf from below. */
        assert_true(seq[0] < seq[1] && seq[1] < seq[2] && seq[2] < gain_steady(q));
    }
    /* The paper's "~2%" at Q/V = 1e-2 is the second token's gain, not K_inf. */
    double seq[2];
    gain_sequence(0.01, 0.0, 2, seq);
    assert_true(fabs(seq[1] - 0.0195) < 1e-4);
}

/* algorithms.md §5's data-weight table: 1 - prod(1 - K_j) after t tokens. */
static void test_data_weight_table(void **state)
{
    (void)state;
    double w[4096];
    gain_data_weight(1e-6, 0.0, 4096, w);
    assert_true(fabs(w[99] - 0.005) < 5e-4);
    assert_true(fabs(w[499] - 0.113) < 1e-3);
    assert_true(fabs(w[999] - 0.352) < 1e-3);
    assert_true(fabs(w[1999] - 0.734) < 1e-3);
    assert_true(fabs(w[4095] - 0.967) < 1e-3);
    gain_data_weight(1e-4, 0.0, 500, w);
    assert_true(fabs(w[99] - 0.354) < 1e-3);
    assert_true(fabs(w[499] - 0.987) < 1e-3);
    gain_data_weight(1e-2, 0.0, 10, w);
    assert_true(fabs(w[9] - 0.375) < 1e-3);
}

/* The filter's own gains (what kpo trains with) equal the closed forms. */
static void test_filter_gain_equals_closed_form(void **state)
{
    (void)state;
    filter_config cfg;
    filter_config_default(&cfg);
    cfg.q = 0.02;
    cfg.v = 0.5;
    cfg.p0 = 0.3;
    enum { T = 300 };
    double z[T], gain[T], expected[T];
    for (int t = 0; t < T; t++)
        z[t] = 0.01 * sin(t);
    int64_t offsets[2] = {0, T};
    filter_outputs out = {.gain = gain};
    assert_int_equal(filter_apply(&cfg, z, offsets, 1, &out, NULL, NULL), 0);
    gain_sequence(cfg.q / cfg.v, cfg.p0 / cfg.v, T, expected);
    for (int t = 0; t < T; t++)
        assert_true(fabs(gain[t] - expected[t]) < 1e-15);
    assert_true(fabs(gain[T - 1] - gain_steady(cfg.q / cfg.v)) < 1e-12);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_steady_gain_matches_table),
        cmocka_unit_test(test_transient_from_zero_prior),
        cmocka_unit_test(test_data_weight_table),
        cmocka_unit_test(test_filter_gain_equals_closed_form),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
