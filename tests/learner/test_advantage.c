/* GRPO advantages against hand-computed values (algorithms.md §2). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>

#include <cmocka.h>

#include "learner/advantage.h"

static void test_group_normalised(void **state)
{
    (void)state;
    /* Rewards 1,0,0,1,1,0,0,0: mean 3/8, unbiased std sqrt(15/56). */
    double r[8] = {1, 0, 0, 1, 1, 0, 0, 0}, a[8];
    assert_int_equal(advantage_grpo(r, 1, 8, 1, 1e-6, a, NULL), KPO_OK);
    double mean = 3.0 / 8.0, std = sqrt((3 * 0.625 * 0.625 + 5 * 0.375 * 0.375) / 7.0);
    for (int i = 0; i < 8; i++)
        assert_true(fabs(a[i] - (r[i] - mean) / (std + 1e-6)) < 1e-15);
    /* +-1 rewards give the same advantages up to eps (affine invariance). */
    double pm[8], b[8];
    for (int i = 0; i < 8; i++)
        pm[i] = 2 * r[i] - 1;
    assert_int_equal(advantage_grpo(pm, 1, 8, 1, 0.0, b, NULL), KPO_OK);
    assert_int_equal(advantage_grpo(r, 1, 8, 1, 0.0, a, NULL), KPO_OK);
    for (int i = 0; i < 8; i++)
        assert_true(fabs(a[i] - b[i]) < 1e-14);
}

static void test_equal_rewards_contribute_nothing(void **state)
{
    (void)state;
    double r[6] = {0.3, 0.3, 0.3, 1, 0, 1}, a[6];
    assert_int_equal(advantage_grpo(r, 2, 3, 1, 1e-6, a, NULL), KPO_OK);
    assert_true(a[0] == 0 && a[1] == 0 && a[2] == 0);
    assert_true(a[3] > 0 && a[4] < 0 && a[5] > 0);
}

static void test_dr_grpo_and_singletons(void **state)
{
    (void)state;
    double r[4] = {1, 0, 0, 0}, a[4];
    assert_int_equal(advantage_grpo(r, 1, 4, 0, 1e-6, a, NULL), KPO_OK);
    assert_true(fabs(a[0] - 0.75) < 1e-15 && fabs(a[1] + 0.25) < 1e-15);
    double one[2] = {0.7, -0.2}, b[2];
    assert_int_equal(advantage_grpo(one, 2, 1, 1, 1e-6, b, NULL), KPO_OK);
    assert_true(fabs(b[0] - 0.7 / (1 + 1e-6)) < 1e-15); /* mean 0, std 1 */
    kpo_error err;
    double bad[2] = {1, NAN};
    assert_int_equal(advantage_grpo(bad, 1, 2, 1, 1e-6, b, &err), KPO_ERR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_group_normalised),
        cmocka_unit_test(test_equal_rewards_contribute_nothing),
        cmocka_unit_test(test_dr_grpo_and_singletons),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
