/* Evaluation statistics against hand-computed values and closed forms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "stats/eval_stats.h"

static double binom(long n, long k)
{
    return exp(lgamma(n + 1.0) - lgamma(k + 1.0) - lgamma(n - k + 1.0));
}

static void test_pass_at_k(void **state)
{
    (void)state;
    assert_true(eval_pass_at_k_one(16, 0, 1) == 0.0);
    assert_true(eval_pass_at_k_one(16, 16, 16) == 1.0);
    assert_true(fabs(eval_pass_at_k_one(16, 4, 1) - 0.25) < 1e-15); /* pass@1 = c / n */
    assert_true(eval_pass_at_k_one(16, 1, 16) == 1.0);
    for (long c = 0; c <= 20; c++)
        for (long k = 1; k <= 20 - c; k++)
            assert_true(fabs(eval_pass_at_k_one(20, c, k) - (1 - binom(20 - c, k) / binom(20, k))) <
                        1e-12);
    problem_count counts[] = {{4, 16}, {0, 16}, {16, 16}};
    double p;
    kpo_error err;
    assert_int_equal(eval_pass_at_k(counts, 3, 1, &p, &err), KPO_OK);
    assert_true(fabs(p - (0.25 + 0 + 1) / 3) < 1e-15);
    assert_true(fabs(eval_avg_at_k(counts, 3) - p) < 1e-15);
    assert_int_equal(eval_pass_at_k(counts, 3, 17, &p, &err), KPO_ERR);
}

/* kpo stats once looped once per correct answer: 2^61 correct of 2^62
 * samples with --k 1 never finished. Counts past the bound are refused and
 * every allowed count is quick; the alarm turns a hang into a failure. */
static void test_pass_at_k_huge_counts(void **state)
{
    (void)state;
    alarm(20);
    const long big = EVAL_PASS_AT_K_MAX_SAMPLES;
    double p = 0;
    kpo_error err;
    if (sizeof(long) >= 8) {
        long huge = (long)(((unsigned long)1 << 62) & (unsigned long)LONG_MAX);
        problem_count flipped[] = {{huge / 2, huge}};
        assert_true(isnan(eval_pass_at_k_one(huge, huge / 2, 1)));
        assert_int_equal(eval_pass_at_k(flipped, 1, 1, &p, &err), KPO_ERR);
        assert_non_null(strstr(err.message, "more than"));
    }
    problem_count over[] = {{4, 16}, {1, big + 1}};
    assert_int_equal(eval_pass_at_k(over, 2, 1, &p, &err), KPO_ERR);
    assert_non_null(strstr(err.message, "problem 2"));
    /* Inconsistent counts are refused, not read as pass@k = 1. */
    problem_count bad[] = {{17, 16}};
    assert_int_equal(eval_pass_at_k(bad, 1, 1, &p, &err), KPO_ERR);
    bad[0].correct = -1;
    assert_int_equal(eval_pass_at_k(bad, 1, 1, &p, &err), KPO_ERR);
    assert_true(isnan(eval_pass_at_k_one(16, 17, 1)));
    assert_true(isnan(eval_pass_at_k_one(16, 4, 0)));
    /* At the bound: exact where the product is short, 1 where it underflows. */
    problem_count at[] = {{big / 2, big}, {big - 1, big}, {0, big}};
    assert_int_equal(eval_pass_at_k(at, 3, 1, &p, &err), KPO_OK);
    assert_true(fabs(p - (0.5 + (double)(big - 1) / (double)big + 0) / 3) < 1e-15);
    assert_true(eval_pass_at_k_one(big, big / 2, big / 2) == 1.0);
    assert_true(eval_pass_at_k_one(big, 1000, big / 4) == 1.0);
    for (long c = 1; c <= 4096; c *= 8)
        for (long k = 1; k <= 4096; k *= 8) { /* against the k-factor product, in long double */
            long double log_none = 0;
            for (long i = 0; i < k; i++)
                log_none += log1pl(-(long double)c / (long double)(big - i));
            double want = (double)-expm1l(log_none);
            assert_true(fabs(eval_pass_at_k_one(big, c, k) - want) < 1e-12 * want);
        }
    alarm(0);
}

static void test_student_t(void **state)
{
    (void)state;
    /* Known two-sided values: t = 2.776 at df 4 and 1.96 at df 1e6 are 5%. */
    assert_true(fabs(eval_student_t_p(2.7764451, 4) - 0.05) < 1e-6);
    assert_true(fabs(eval_student_t_p(1.959964, 1e6) - 0.05) < 1e-5);
    assert_true(fabs(eval_student_t_p(0, 10) - 1.0) < 1e-12);
    assert_true(fabs(eval_student_t_p(1.0, 1) - 0.5) < 1e-12); /* Cauchy */
}

static void test_paired_and_bootstrap(void **state)
{
    (void)state;
    problem_count a[] = {{10, 16}, {3, 16}, {16, 16}, {0, 16}, {8, 16}};
    problem_count b[] = {{9, 16}, {3, 16}, {15, 16}, {0, 16}, {7, 16}};
    problem_count r[] = {{12, 16}, {5, 16}, {16, 16}, {2, 16}, {9, 16}};
    paired_test t;
    kpo_error err;
    assert_int_equal(eval_paired_test(a, b, 5, &t, &err), KPO_OK);
    /* d = (1, 0, 1, 0, 1) / 16: mean 3/80, sd sqrt(0.3)/16, t = sqrt 6 */
    assert_true(fabs(t.mean_diff - 3.0 / 80) < 1e-15);
    assert_true(fabs(t.std_error - sqrt(0.3) / 16 / sqrt(5)) < 1e-15);
    assert_true(fabs(t.p_value - 0.0704840) < 1e-6);
    assert_int_equal(t.df, 4);
    bootstrap_ci ci, again;
    assert_int_equal(eval_bootstrap_diff(a, b, 5, 5000, 3, 0.95, &ci, &err), KPO_OK);
    assert_int_equal(eval_bootstrap_diff(a, b, 5, 5000, 3, 0.95, &again, &err), KPO_OK);
    assert_true(ci.low == again.low && ci.high == again.high); /* seeded */
    assert_true(ci.low <= ci.estimate && ci.estimate <= ci.high);
    assert_true(ci.low >= 0 && ci.high <= 3.0 / 16 + 1e-12); /* d_i in {0, 1/16} */
    bootstrap_ci gap;
    assert_int_equal(eval_bootstrap_gap(a, b, r, 5, 5000, 3, 0.9, &gap, &err), KPO_OK);
    assert_true(fabs(gap.estimate - 100 * (0.4625 - 0.425) / (0.55 - 0.425)) < 1e-9);
    assert_int_equal(eval_bootstrap_gap(a, b, b, 5, 5000, 3, 0.9, &gap, &err), KPO_ERR);
    assert_int_equal(eval_bootstrap_diff(a, b, 5, 5000, 3, 1.5, &ci, &err), KPO_ERR);
    assert_int_equal(eval_paired_test(a, b, 1, &t, &err), KPO_ERR);
    assert_int_equal(eval_paired_test(a, a, 5, &t, &err), KPO_OK);
    assert_true(t.p_value == 1.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pass_at_k),
        cmocka_unit_test(test_pass_at_k_huge_counts),
        cmocka_unit_test(test_student_t),
        cmocka_unit_test(test_paired_and_bootstrap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
