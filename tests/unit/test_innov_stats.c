/* Innovation statistics: merging equals one pass, kurtosis of known laws,
 * histogram slots, the flat form an MPI reduction carries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/rng.h"
#include "filter/innov_stats.h"

static void add_sample(innov_stats *s, double x, int k)
{
    /* Distinct gains, sigmas, thresholds and clip flags so every field is
     * exercised by the merge. */
    double threshold = (k % 7 == 0) ? INFINITY : 2.0 + 0.001 * (k % 13);
    innov_stats_add(s, x, 1.0 + 0.01 * (k % 5), 0.05 + 0.001 * (k % 3), threshold, k % 11 == 0);
}

static void assert_close(double a, double b, double rel)
{
    double scale = fmax(fabs(a), fabs(b));
    if (!(fabs(a - b) <= rel * fmax(scale, 1e-300)))
        fail_msg("%.17g vs %.17g differ by more than %g relative", a, b, rel);
}

static void assert_stats_equal(const innov_stats *a, const innov_stats *b)
{
    assert_true(a->count == b->count);
    assert_close(a->mean, b->mean, 1e-12);
    assert_close(a->m2, b->m2, 1e-12);
    assert_close(a->m3, b->m3, 1e-9);
    assert_close(a->m4, b->m4, 1e-12);
    assert_true(a->max_abs == b->max_abs);
    assert_true(a->clip_count == b->clip_count);
    assert_close(a->gain_sum, b->gain_sum, 1e-11);
    assert_close(a->sigma_sum, b->sigma_sum, 1e-11);
    assert_close(a->threshold_sum, b->threshold_sum, 1e-11);
    assert_true(a->threshold_count == b->threshold_count);
    assert_memory_equal(a->hist, b->hist, sizeof a->hist);
}

/* Split a stream into uneven parts (as mini-batches and ranks would), merge
 * in a tree, compare with one pass over everything. */
static void test_merge_equals_one_pass(void **state)
{
    (void)state;
    enum { N = 100000, PARTS = 7 };
    const int cuts[PARTS + 1] = {0, 1, 13, 5000, 5001, 40000, 77777, N};
    double *x = malloc(N * sizeof *x);
    rng_stream rng;
    rng_stream_init(&rng, 3, 0);
    for (int i = 0; i < N; i++)
        x[i] = 0.8 + 0.3 * rng_student_t(&rng, 5); /* offset mean, heavy tails */
    innov_stats whole, parts[PARTS];
    innov_stats_init(&whole);
    for (int i = 0; i < N; i++)
        add_sample(&whole, x[i], i);
    for (int p = 0; p < PARTS; p++) {
        innov_stats_init(&parts[p]);
        for (int i = cuts[p]; i < cuts[p + 1]; i++)
            add_sample(&parts[p], x[i], i);
    }
    innov_stats left = parts[0], right = parts[4];
    for (int p = 1; p < 4; p++)
        innov_stats_merge(&left, &parts[p]);
    for (int p = 5; p < PARTS; p++)
        innov_stats_merge(&right, &parts[p]);
    innov_stats_merge(&left, &right);
    assert_stats_equal(&left, &whole);
    assert_close(innov_stats_kurtosis(&left), innov_stats_kurtosis(&whole), 1e-12);

    /* Merging with an empty accumulator changes nothing, on either side. */
    innov_stats empty, copy = whole;
    innov_stats_init(&empty);
    innov_stats_merge(&copy, &empty);
    assert_memory_equal(&copy, &whole, sizeof copy);
    innov_stats_merge(&empty, &whole);
    assert_memory_equal(&empty, &whole, sizeof empty);
    free(x);
}

/* Direct two-pass central moments as the independent reference. */
static void test_moments_against_two_pass(void **state)
{
    (void)state;
    enum { N = 5000 };
    double x[N], mean = 0;
    rng_stream rng;
    rng_stream_init(&rng, 8, 0);
    innov_stats s;
    innov_stats_init(&s);
    for (int i = 0; i < N; i++) {
        x[i] = 1e3 + rng_laplace(&rng); /* mean far from zero: cancellation test */
        mean += x[i] / N;
        innov_stats_add(&s, x[i], 1.0, 0.1, INFINITY, 0);
    }
    double m2 = 0, m4 = 0;
    for (int i = 0; i < N; i++) {
        double d = x[i] - mean;
        m2 += d * d;
        m4 += d * d * d * d;
    }
    assert_close(s.mean, mean, 1e-13);
    assert_close(s.m2, m2, 1e-10);
    assert_close(s.m4, m4, 1e-9);
    assert_close(innov_stats_kurtosis(&s), N * m4 / (m2 * m2), 1e-9);
}

static double sample_kurtosis(int law, int n)
{
    rng_stream rng;
    rng_stream_init(&rng, 100 + law, 0);
    innov_stats s;
    innov_stats_init(&s);
    for (int i = 0; i < n; i++)
        innov_stats_add(&s, law ? rng_laplace(&rng) : rng_normal(&rng), 1, 0, INFINITY, 0);
    return innov_stats_kurtosis(&s);
}

static void test_kurtosis_of_known_laws(void **state)
{
    (void)state;
    double gaussian = sample_kurtosis(0, 1000000), laplace = sample_kurtosis(1, 1000000);
    print_message("kurtosis: Gaussian %.4f (3), Laplace %.4f (6)\n", gaussian, laplace);
    assert_true(fabs(gaussian - 3.0) < 0.05); /* SE ~ sqrt(24/n) = 0.005 */
    assert_true(fabs(laplace - 6.0) < 0.3);   /* SE ~ 0.05 */
}

static void test_histogram_slots(void **state)
{
    (void)state;
    innov_stats s;
    innov_stats_init(&s);
    const double width = (INNOV_HIST_HIGH - INNOV_HIST_LOW) / INNOV_HIST_BINS;
    innov_stats_add(&s, -100, 1, 0, INFINITY, 0);            /* underflow */
    innov_stats_add(&s, INNOV_HIST_LOW, 1, 0, INFINITY, 0);  /* first bin, lower edge */
    innov_stats_add(&s, 0.0, 1, 0, INFINITY, 0);             /* bin with edge 0 */
    innov_stats_add(&s, -1e-12, 1, 0, INFINITY, 0);          /* bin just below 0 */
    innov_stats_add(&s, INNOV_HIST_HIGH, 1, 0, INFINITY, 0); /* overflow (upper edge open) */
    innov_stats_add(&s, 4.0, 2.0, 0, INFINITY, 0);           /* normalised: 4/2 = 2 */
    int zero_slot = 1 + (int)((0.0 - INNOV_HIST_LOW) / width);
    int two_slot = 1 + (int)((2.0 - INNOV_HIST_LOW) / width);
    assert_true(s.hist[0] == 1);
    assert_true(s.hist[1] == 1);
    assert_true(s.hist[zero_slot] == 1);
    assert_true(s.hist[zero_slot - 1] == 1);
    assert_true(s.hist[INNOV_HIST_BINS + 1] == 1);
    assert_true(s.hist[two_slot] == 1);
    assert_true(innov_stats_bin_low(zero_slot) == 0.0);
    double total = 0;
    for (int k = 0; k < INNOV_HIST_SLOTS; k++)
        total += s.hist[k];
    assert_true(total == s.count);
}

static void test_flat_form_round_trip_and_merge(void **state)
{
    (void)state;
    innov_stats a, b, expected;
    innov_stats_init(&a);
    innov_stats_init(&b);
    for (int i = 0; i < 300; i++)
        add_sample(i < 100 ? &a : &b, sin(i) * 0.4, i);
    expected = a;
    innov_stats_merge(&expected, &b);

    double flat_a[2 * INNOV_STATS_FLAT_LEN], flat_b[2 * INNOV_STATS_FLAT_LEN];
    innov_stats_to_flat(&a, flat_a);
    innov_stats_to_flat(&b, flat_b);
    /* Second record: b merged into a copy of b (a different record). */
    innov_stats_to_flat(&b, flat_a + INNOV_STATS_FLAT_LEN);
    innov_stats_to_flat(&b, flat_b + INNOV_STATS_FLAT_LEN);
    innov_stats_merge_flat(flat_a, flat_b, 2);
    innov_stats merged, doubled, bb = b;
    innov_stats_from_flat(&merged, flat_a);
    innov_stats_from_flat(&doubled, flat_a + INNOV_STATS_FLAT_LEN);
    assert_memory_equal(&merged, &expected, sizeof merged);
    innov_stats_merge(&bb, &b);
    assert_memory_equal(&doubled, &bb, sizeof doubled);

    innov_stats back;
    innov_stats_to_flat(&a, flat_a);
    innov_stats_from_flat(&back, flat_a);
    assert_memory_equal(&back, &a, sizeof back);
}

static void test_empty_statistics_are_nan(void **state)
{
    (void)state;
    innov_stats s;
    innov_stats_init(&s);
    assert_true(isnan(innov_stats_kurtosis(&s)));
    assert_true(isnan(innov_stats_clip_fraction(&s)));
    assert_true(isnan(innov_stats_mean_gain(&s)));
    assert_true(isnan(innov_stats_variance(&s)));
    innov_stats_add(&s, 1.0, 1, 0.5, 3.0, 1);
    assert_true(isnan(innov_stats_kurtosis(&s))); /* zero variance */
    assert_true(innov_stats_clip_fraction(&s) == 1.0);
    assert_true(innov_stats_mean_threshold(&s) == 3.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_equals_one_pass),
        cmocka_unit_test(test_moments_against_two_pass),
        cmocka_unit_test(test_kurtosis_of_known_laws),
        cmocka_unit_test(test_histogram_slots),
        cmocka_unit_test(test_flat_form_round_trip_and_merge),
        cmocka_unit_test(test_empty_statistics_are_nan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
