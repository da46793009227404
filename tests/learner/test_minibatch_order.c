/* The mini-batch order (minibatch_order.h): a permutation moves every field
 * of an rl_batch together, its inverse restores the batch, bad
 * permutations are refused, and the balanced order of a few batches small
 * enough to work by hand. The comparison with verl's algorithm on many
 * random batches is test_minibatch_order.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "learner/minibatch_order.h"
#include "learner_fixture.h"

/* Position j of out must be response perm[j] of b, field by field. */
static void assert_reordered(const rl_batch *b, const rl_batch *out, const int64_t *perm)
{
    assert_int_equal(out->n, b->n);
    assert_int_equal(out->seq_offsets[0], 0);
    assert_int_equal(out->seq_offsets[out->n], b->seq_offsets[b->n]);
    for (int64_t j = 0; j < b->n; j++) {
        int64_t i = perm[j];
        int64_t len = b->seq_offsets[i + 1] - b->seq_offsets[i];
        assert_int_equal(out->seq_offsets[j + 1] - out->seq_offsets[j], len);
        assert_memory_equal(out->tokens + out->seq_offsets[j], b->tokens + b->seq_offsets[i],
                            (size_t)len * sizeof *b->tokens);
        assert_int_equal(out->prompt_len[j], b->prompt_len[i]);
        assert_int_equal(out->group[j], b->group[i]);
        assert_true(out->reward[j] == b->reward[i]);
        assert_true(out->advantage[j] == b->advantage[i]);
        assert_int_equal(out->stopped[j], b->stopped[i]);
    }
}

static void test_apply_moves_every_field(void **state)
{
    (void)state;
    rl_batch b, out;
    assert_int_equal(fixture_batch(&b, 4, 4, 7), 0);
    for (int64_t i = 0; i < b.n; i++) { /* distinct values in the fields the fixture leaves alike */
        b.advantage[i] = 0.25 * (double)i - 1.0;
        b.stopped[i] = (uint8_t)(i % 3 == 0);
    }
    int64_t perm[16];
    kpo_error err;
    assert_int_equal(minibatch_order_of_batch(&b, MINIBATCH_ORDER_BALANCED, 2, 2, perm, &err),
                     KPO_OK);
    assert_int_equal(minibatch_order_apply(&b, perm, &out, &err), KPO_OK);
    assert_reordered(&b, &out, perm);

    /* In place, then the inverse: back to the original, byte for byte. */
    int64_t inverse[16];
    minibatch_order_invert(perm, b.n, inverse);
    assert_int_equal(minibatch_order_apply_inplace(&out, inverse, &err), KPO_OK);
    assert_reordered(&b, &out, (int64_t[16]){0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15});
    rl_batch_free(&out);

    /* prompt is the identity. */
    assert_int_equal(minibatch_order_of_batch(&b, MINIBATCH_ORDER_PROMPT, 2, 2, perm, &err),
                     KPO_OK);
    for (int64_t i = 0; i < b.n; i++)
        assert_int_equal(perm[i], i);
    rl_batch_free(&b);
}

static void test_bad_permutations_refused(void **state)
{
    (void)state;
    rl_batch b, out;
    assert_int_equal(fixture_batch(&b, 1, 4, 3), 0);
    kpo_error err;
    int64_t twice[4] = {0, 1, 1, 3}, outside[4] = {0, 1, 2, 4}, negative[4] = {-1, 1, 2, 3};
    assert_int_equal(minibatch_order_apply(&b, twice, &out, &err), KPO_ERR);
    assert_non_null(strstr(err.message, "position 2"));
    assert_int_equal(minibatch_order_apply(&b, outside, &out, &err), KPO_ERR);
    assert_int_equal(minibatch_order_apply_inplace(&b, negative, &err), KPO_ERR);
    assert_int_equal(b.n, 4); /* untouched on failure */
    rl_batch_free(&b);
}

static void test_balanced_by_hand(void **state)
{
    (void)state;
    kpo_error err;
    int64_t perm[8];
    /* One rank: its part is every response, sorted by length (1 2 3 4 5 6
     * at indices 1 3 4 2 0 5) and folded, even positions then odd ones
     * reversed: 1 4 0 | 5 2 3; two mini-batches take three each. */
    int64_t len6[6] = {5, 1, 4, 2, 3, 6};
    assert_int_equal(minibatch_order_balanced(len6, 6, 1, 2, perm, &err), KPO_OK);
    int64_t want6[6] = {1, 4, 0, 5, 2, 3};
    assert_memory_equal(perm, want6, sizeof want6);

    /* Two ranks, lengths 1 2 3 4 (workloads 24577, 49156, 73737, 98320):
     * the seeds are {1}{0} (spread 24579) and {3}{2} (spread 24583); the
     * wider pops first and takes the other reversed: {3,0} and {2,1}. Rank
     * 0 gets the heavier {0,3}, rank 1 {1,2}. Two mini-batches of one
     * response per rank: {0,1} then {3,2}. */
    int64_t len4[4] = {1, 2, 3, 4};
    assert_int_equal(minibatch_order_balanced(len4, 4, 2, 2, perm, &err), KPO_OK);
    int64_t want4[4] = {0, 1, 3, 2};
    assert_memory_equal(perm, want4, sizeof want4);
    int64_t parts[4], work[4];
    for (int i = 0; i < 4; i++)
        work[i] = minibatch_order_workload(len4[i]);
    assert_int_equal(work[3], 98320);
    assert_int_equal(minibatch_order_partition(work, 4, 2, parts, &err), KPO_OK);
    int64_t want_parts[4] = {0, 3, 1, 2};
    assert_memory_equal(parts, want_parts, sizeof want_parts);

    /* All equal: ties go by index. Seeds {1}{0} and {3}{2} have spread 0;
     * the one whose heavier set has the larger list, {3}, pops first, and
     * the final sets {3,0} > {2,1} by their first index. */
    int64_t same[4] = {7, 7, 7, 7};
    assert_int_equal(minibatch_order_balanced(same, 4, 2, 1, perm, &err), KPO_OK);
    int64_t want_same[4] = {0, 3, 1, 2};
    assert_memory_equal(perm, want_same, sizeof want_same);
}

static void test_balanced_refuses_uneven_splits(void **state)
{
    (void)state;
    kpo_error err;
    int64_t len[6] = {1, 2, 3, 4, 5, 6}, perm[6];
    assert_int_equal(minibatch_order_balanced(len, 6, 4, 1, perm, &err), KPO_ERR);
    assert_non_null(strstr(err.message, "4 data-parallel"));
    assert_int_equal(minibatch_order_balanced(len, 6, 2, 2, perm, &err), KPO_ERR);
    assert_int_equal(minibatch_order_balanced(len, 6, 0, 1, perm, &err), KPO_ERR);
    len[2] = -1;
    assert_int_equal(minibatch_order_balanced(len, 6, 1, 1, perm, &err), KPO_ERR);
    assert_non_null(strstr(err.message, "response 2"));
    minibatch_order_kind kind;
    assert_int_equal(minibatch_order_parse("balanced", &kind, &err), KPO_OK);
    assert_int_equal(kind, MINIBATCH_ORDER_BALANCED);
    assert_string_equal(minibatch_order_name(kind), "balanced");
    assert_int_equal(minibatch_order_parse("verl", &kind, &err), KPO_ERR);
    assert_non_null(strstr(err.message, "'verl'"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apply_moves_every_field),
        cmocka_unit_test(test_bad_permutations_refused),
        cmocka_unit_test(test_balanced_by_hand),
        cmocka_unit_test(test_balanced_refuses_uneven_splits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
