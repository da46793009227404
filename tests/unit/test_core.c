/* Core helpers: Philox known-answer vectors, strict parsing, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/error.h"
#include "core/parse.h"
#include "core/philox.h"
#include "core/rng.h"

/* Known-answer vectors of Philox4x32-10 from the Random123 distribution
 * (kat_vectors): counter, key -> output. */
static void test_philox_known_answers(void **state)
{
    (void)state;
    const struct {
        uint32_t counter[4], key[2], expected[4];
    } cases[] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
         {0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
         {0xa4093822, 0x299f31d0},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        uint32_t out[4];
        rng_philox4x32_10(cases[k].counter, cases[k].key, out);
        assert_memory_equal(out, cases[k].expected, sizeof out);
    }
}

static void test_rng_streams_replay_and_differ(void **state)
{
    (void)state;
    rng_stream a, b, c;
    rng_stream_init(&a, 42, rng_stream_id(3, 7, 1));
    rng_stream_init(&b, 42, rng_stream_id(3, 7, 1));
    rng_stream_init(&c, 42, rng_stream_id(3, 7, 2));
    int differs = 0;
    for (int i = 0; i < 1000; i++) {
        uint32_t x = rng_next_u32(&a), y = rng_next_u32(&b), z = rng_next_u32(&c);
        assert_int_equal(x, y);
        differs += x != z;
    }
    assert_true(differs > 990);
}

/* philox_uniform_at (what a GPU thread calls) is the n-th rng_uniform of a
 * uniform-only stream, bit for bit, across block boundaries, large seeds and
 * stream ids with both 32-bit halves set. */
static void test_philox_uniform_at_matches_stream(void **state)
{
    (void)state;
    const uint64_t seeds[] = {0, 1, 42, 0xFFFFFFFFull, 0x123456789ABCDEF0ull, ~0ull};
    int checked = 0;
    for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++)
        for (uint64_t k = 0; k < 8; k++) {
            uint64_t id = k < 4 ? k : rng_stream_id(k, s, 7);
            rng_stream rng;
            rng_stream_init(&rng, seeds[s], id);
            for (uint64_t n = 0; n < 301; n++) {
                double stream = rng_uniform(&rng), direct = philox_uniform_at(seeds[s], id, n);
                assert_memory_equal(&stream, &direct, sizeof stream);
                checked++;
            }
        }
    assert_int_equal(checked, 6 * 8 * 301);
}

static void test_rng_distributions_moments(void **state)
{
    (void)state;
    rng_stream rng;
    rng_stream_init(&rng, 7, 0);
    const int n = 200000;
    double su = 0, sn = 0, sn2 = 0, sl2 = 0;
    for (int i = 0; i < n; i++) {
        double u = rng_uniform(&rng);
        assert_true(u > 0 && u < 1);
        su += u;
        double g = rng_normal(&rng);
        sn += g;
        sn2 += g * g;
        double l = rng_laplace(&rng);
        sl2 += l * l;
    }
    /* Tolerances are ~6 standard errors of each estimate. */
    assert_true(fabs(su / n - 0.5) < 6 * 0.2887 / sqrt(n));
    assert_true(fabs(sn / n) < 6 / sqrt(n));
    assert_true(fabs(sn2 / n - 1.0) < 6 * sqrt(2.0 / n));
    assert_true(fabs(sl2 / n - 2.0) < 6 * sqrt(20.0 / n)); /* Var(L^2) = 24 - 4 = 20 */
}

static void test_parse_strict(void **state)
{
    (void)state;
    kpo_error err;
    double x;
    int64_t i;
    assert_int_equal(parse_double("1e-2", "--q", &x, &err), KPO_OK);
    assert_true(x == 1e-2);
    assert_int_equal(parse_double("1e-2x", "--q", &x, &err), KPO_ERR);
    assert_non_null(strstr(err.message, "--q"));
    assert_int_equal(parse_double("nan", "--v", &x, &err), KPO_ERR);
    assert_non_null(strstr(err.message, "finite"));
    assert_int_equal(parse_double("inf", "--v", &x, &err), KPO_ERR);
    assert_int_equal(parse_double("", "--v", &x, &err), KPO_ERR);
    assert_int_equal(parse_int64("12", "--steps", &i, &err), KPO_OK);
    assert_int_equal(i, 12);
    assert_int_equal(parse_int64("1.5", "--steps", &i, &err), KPO_ERR);
    int64_t *list;
    size_t n;
    assert_int_equal(parse_int64_list("1,5,10,15", "--steps", &list, &n, &err), KPO_OK);
    assert_int_equal(n, 4);
    assert_int_equal(list[3], 15);
    free(list);
    assert_int_equal(parse_int64_list("1,x", "--steps", &list, &n, &err), KPO_ERR);
    /* Issue 17: "1,,2" was read as 1,2; every item must be there. */
    static const char *const gaps[] = {"1,,2", ",1", "1,", ",", ""};
    for (size_t k = 0; k < sizeof gaps / sizeof gaps[0]; k++) {
        assert_int_equal(parse_int64_list(gaps[k], "--tokens", &list, &n, &err), KPO_ERR);
        assert_non_null(strstr(err.message, "--tokens"));
    }
    assert_int_equal(parse_int64_list("1,,2", "--tokens", &list, &n, &err), KPO_ERR);
    assert_non_null(strstr(err.message, "item 2 of '1,,2' is empty"));
    assert_int_equal(parse_int64_list("-3", "--tokens", &list, &n, &err), KPO_OK);
    assert_int_equal(n, 1);
    assert_int_equal(list[0], -3);
    free(list);
}

static void test_error_prefix_keeps_message(void **state)
{
    (void)state;
    kpo_error err;
    error_set(&err, "mode: unknown");
    error_prefix(&err, "--");
    assert_string_equal(err.message, "--mode: unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_philox_known_answers),
        cmocka_unit_test(test_rng_streams_replay_and_differ),
        cmocka_unit_test(test_philox_uniform_at_matches_stream),
        cmocka_unit_test(test_rng_distributions_moments),
        cmocka_unit_test(test_parse_strict),
        cmocka_unit_test(test_error_prefix_keeps_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
