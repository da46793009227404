/* The decode graphs' cache (src/model/cuda/decode_graph_cache.h, plain C):
 * which steps may replay a graph, lookup by batch and buffer generation,
 * where a new graph goes (its batch's stale entry, an empty one, the least
 * recently used). Graphs are stand-in pointers. Host-only, every build. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model/cuda/decode_graph_cache.h"

/* Stand-ins for cudaGraphExec_t: distinct non-NULL pointers. */
static char GRAPHS[3 * DECODE_GRAPHS_MAX];

/* Captures a graph for n_seqs at gen as the decode step would: the slot,
 * its old graph dropped, the new one stored. Returns the old graph. */
static void *capture(decode_graph_cache *c, int64_t n_seqs, uint64_t gen, void *exec)
{
    decode_graph_entry *e = decode_graph_slot(c, n_seqs, 0);
    assert_non_null(e);
    void *old = e->exec;
    decode_graph_store(c, e, n_seqs, 0, gen, exec);
    return old;
}

/* Pure decode steps only: one token per sequence, no fresh flash prefix. */
static void test_step_pure(void **state)
{
    (void)state;
    const int64_t ones[3] = {1, 1, 1}, prompt[3] = {1, 5, 1};
    assert_true(decode_graph_step_pure(3, ones, 0));
    assert_true(decode_graph_step_pure(1, ones, 0));
    assert_false(decode_graph_step_pure(3, prompt, 0));
    assert_false(decode_graph_step_pure(3, ones, 1)); /* a 1-token fresh prompt through flash */
    assert_false(decode_graph_step_pure(0, ones, 0));
}

/* Found by batch and generation; another batch or an older generation is
 * not found, and the stale entry is where its batch's recapture goes. */
static void test_find_and_stale(void **state)
{
    (void)state;
    decode_graph_cache c;
    memset(&c, 0, sizeof c);
    assert_null(decode_graph_find(&c, 4, 0, 0));
    assert_null(capture(&c, 4, 7, &GRAPHS[0]));
    decode_graph_entry *e = decode_graph_find(&c, 4, 0, 7);
    assert_non_null(e);
    assert_ptr_equal(e->exec, &GRAPHS[0]);
    assert_null(decode_graph_find(&c, 3, 0, 7));
    assert_null(decode_graph_find(&c, 4, 0, 8)); /* buffers reallocated since */
    assert_ptr_equal(decode_graph_slot(&c, 4, 0), e);
    assert_ptr_equal(capture(&c, 4, 8, &GRAPHS[1]), &GRAPHS[0]); /* the caller destroys it */
    assert_ptr_equal(decode_graph_find(&c, 4, 0, 8)->exec, &GRAPHS[1]);
    int used = 0;
    for (int k = 0; k < DECODE_GRAPHS_MAX; k++)
        used += c.entries[k].exec != NULL;
    assert_int_equal(used, 1); /* one entry per batch */
}

/* Empty entries fill first; when full, the least recently used (captured
 * or replayed) makes room. */
static void test_lru(void **state)
{
    (void)state;
    decode_graph_cache c;
    memset(&c, 0, sizeof c);
    for (int k = 0; k < DECODE_GRAPHS_MAX; k++)
        assert_null(capture(&c, k + 1, 0, &GRAPHS[k]));
    /* Replay batch 1 (the oldest capture): batch 2 becomes the LRU. */
    assert_non_null(decode_graph_find(&c, 1, 0, 0));
    assert_ptr_equal(capture(&c, 100, 0, &GRAPHS[DECODE_GRAPHS_MAX]), &GRAPHS[1]);
    assert_null(decode_graph_find(&c, 2, 0, 0));
    assert_non_null(decode_graph_find(&c, 1, 0, 0));
    assert_non_null(decode_graph_find(&c, 100, 0, 0));
    /* Now batch 3 is the oldest. */
    assert_ptr_equal(capture(&c, 101, 0, &GRAPHS[DECODE_GRAPHS_MAX + 1]), &GRAPHS[2]);
    assert_null(decode_graph_find(&c, 3, 0, 0));
    for (int k = 4; k <= DECODE_GRAPHS_MAX; k++)
        assert_non_null(decode_graph_find(&c, k, 0, 0));
}

/* The split plan's context: a power of two (at least 128) no shorter than
 * the step's, at most the cache; graphs of one batch at two planned
 * contexts are different entries. */
static void test_plan_context(void **state)
{
    (void)state;
    assert_int_equal(decode_graph_plan_context(1, 5120), 128);
    assert_int_equal(decode_graph_plan_context(128, 5120), 128);
    assert_int_equal(decode_graph_plan_context(129, 5120), 256);
    assert_int_equal(decode_graph_plan_context(4097, 5120), 5120);
    assert_int_equal(decode_graph_plan_context(100, 64), 64);
    /* Over a 4096-token response from a 300-token prompt: 5 plans. */
    int64_t plans = 0, last = 0;
    for (int64_t ctx = 301; ctx <= 4396; ctx++) {
        const int64_t p = decode_graph_plan_context(ctx, 5120);
        assert_true(p >= ctx && p <= 5120);
        plans += p != last;
        last = p;
    }
    assert_int_equal(plans, 5);
    decode_graph_cache c;
    memset(&c, 0, sizeof c);
    decode_graph_entry *e = decode_graph_slot(&c, 8, 256);
    decode_graph_store(&c, e, 8, 256, 0, &GRAPHS[0]);
    assert_null(decode_graph_find(&c, 8, 512, 0));
    assert_ptr_equal(decode_graph_find(&c, 8, 256, 0), e);
    assert_ptr_not_equal(decode_graph_slot(&c, 8, 512), e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_step_pure),
        cmocka_unit_test(test_find_and_stale),
        cmocka_unit_test(test_lru),
        cmocka_unit_test(test_plan_context),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
