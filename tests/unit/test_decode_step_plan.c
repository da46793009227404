/* The decode step's division of its attention (src/model/cuda/
 * decode_step_plan.h, plain C): which leading sequences take the flash
 * kernel under prefill_attention = flash, the grid sizes of both parts and
 * the rebased offsets of the rest. Host-only, every build. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model/cuda/decode_step_plan.h"

/* offsets [n + 1] of n sequences of n_new tokens, packed. */
static void pack(int64_t n, const int64_t *n_new, int64_t *offsets)
{
    offsets[0] = 0;
    for (int64_t i = 0; i < n; i++)
        offsets[i + 1] = offsets[i] + n_new[i];
}

/* Off: nothing to flash, the rest is the whole step. */
static void test_off(void **state)
{
    (void)state;
    const int64_t starts[3] = {0, 0, 7}, n_new[3] = {12, 3, 1};
    const decode_step_plan p = decode_step_plan_make(3, starts, n_new, false);
    assert_int_equal(p.n_fresh, 0);
    assert_int_equal(p.fresh_tokens, 0);
    assert_int_equal(p.fresh_max_len, 0);
    assert_int_equal(p.max_new, 12);
    assert_int_equal(p.max_context, 12);
    assert_int_equal(p.rest_max_new, 12);
    assert_int_equal(p.rest_max_context, 12);
}

/* A pure prefill (a wave's first step), a 1-token prompt included: all
 * through flash, no decode call. */
static void test_all_fresh(void **state)
{
    (void)state;
    const int64_t starts[5] = {0, 0, 0, 0, 0}, n_new[5] = {1, 2, 17, 300, 64};
    const decode_step_plan p = decode_step_plan_make(5, starts, n_new, true);
    assert_int_equal(p.n_fresh, 5);
    assert_int_equal(p.fresh_tokens, 384);
    assert_int_equal(p.fresh_max_len, 300);
    assert_int_equal(p.max_new, 300);
    assert_int_equal(p.max_context, 300);
    assert_int_equal(p.rest_max_new, 0);
    assert_int_equal(p.rest_max_context, 0);
}

/* A fresh prompt after a cached sequence is not in the leading run: the
 * whole step goes to the decode attention. */
static void test_fresh_after_cached(void **state)
{
    (void)state;
    const int64_t starts[3] = {5, 0, 0}, n_new[3] = {1, 17, 4};
    const decode_step_plan p = decode_step_plan_make(3, starts, n_new, true);
    assert_int_equal(p.n_fresh, 0);
    assert_int_equal(p.fresh_tokens, 0);
    assert_int_equal(p.rest_max_new, 17);
    assert_int_equal(p.rest_max_context, 17);
    assert_int_equal(p.max_context, 17);
}

/* Fresh prompts first, then 1-token steps and a fresh prompt after them:
 * the first two flash; the rest's sizes and offsets cover only the others,
 * its offsets rebased to 0. */
static void test_fresh_then_mixed(void **state)
{
    (void)state;
    const int64_t starts[5] = {0, 0, 9, 3, 0}, n_new[5] = {40, 6, 1, 1, 20};
    int64_t offsets[6], rest[6];
    pack(5, n_new, offsets);
    const decode_step_plan p = decode_step_plan_make(5, starts, n_new, true);
    assert_int_equal(p.n_fresh, 2);
    assert_int_equal(p.fresh_tokens, 46);
    assert_int_equal(p.fresh_tokens, offsets[p.n_fresh]);
    assert_int_equal(p.fresh_max_len, 40);
    assert_int_equal(p.max_new, 40);
    assert_int_equal(p.max_context, 40);
    assert_int_equal(p.rest_max_new, 20);
    assert_int_equal(p.rest_max_context, 20);
    decode_step_rest_offsets(&p, 5, offsets, rest);
    const int64_t want[4] = {0, 1, 2, 22};
    assert_memory_equal(rest, want, sizeof want);
}

/* One cached sequence after the fresh one: the rest's context is the
 * cached one's start + 1. */
static void test_rest_context(void **state)
{
    (void)state;
    const int64_t starts[2] = {0, 100}, n_new[2] = {8, 1};
    const decode_step_plan p = decode_step_plan_make(2, starts, n_new, true);
    assert_int_equal(p.n_fresh, 1);
    assert_int_equal(p.max_context, 101);
    assert_int_equal(p.rest_max_new, 1);
    assert_int_equal(p.rest_max_context, 101);
}

/* More fresh prompts than one flash call's grid takes: the surplus goes
 * to the decode attention. */
static void test_flash_seq_limit(void **state)
{
    (void)state;
    const int64_t n = DECODE_FLASH_MAX_SEQS + 2;
    int64_t *starts = calloc((size_t)n, sizeof *starts), *n_new = malloc((size_t)n * 8);
    int64_t *offsets = malloc((size_t)(n + 1) * 8), *rest = malloc((size_t)(n + 1) * 8);
    assert_non_null(starts);
    assert_non_null(n_new);
    assert_non_null(offsets);
    assert_non_null(rest);
    for (int64_t i = 0; i < n; i++)
        n_new[i] = 1 + i % 3;
    pack(n, n_new, offsets);
    const decode_step_plan p = decode_step_plan_make(n, starts, n_new, true);
    assert_int_equal(p.n_fresh, DECODE_FLASH_MAX_SEQS);
    assert_int_equal(p.fresh_tokens, offsets[DECODE_FLASH_MAX_SEQS]);
    decode_step_rest_offsets(&p, n, offsets, rest);
    assert_int_equal(rest[0], 0);
    assert_int_equal(rest[1], n_new[n - 2]);
    assert_int_equal(rest[2], n_new[n - 2] + n_new[n - 1]);
    free(starts), free(n_new), free(offsets), free(rest);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_off),
        cmocka_unit_test(test_all_fresh),
        cmocka_unit_test(test_fresh_after_cached),
        cmocka_unit_test(test_fresh_then_mixed),
        cmocka_unit_test(test_rest_context),
        cmocka_unit_test(test_flash_seq_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
