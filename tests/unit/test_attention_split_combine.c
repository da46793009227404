/* The split-KV decode attention's host-and-device arithmetic
 * (src/model/cuda/attention_split_combine.h), on the CPU: the very merge
 * functions the combine kernel runs, and the split plan the launches use.
 *
 * Merge: random base-2 scores and values over n keys (1..300, some with
 * a spread wide enough that a partial's weight underflows to 0) are cut
 * into 1..8 parts at random points (empty parts included); each part's
 * partial is computed in float as the split kernel does (m = max, p =
 * 2^(s - m), l = sum p, o = sum p v), empty parts get m = -inf, l = 0 and
 * NaN outputs (the kernel leaves them unwritten). Merged in order, in
 * reverse, in a random order and as a tree, normalised: equal to the
 * softmax-weighted sum in double within float rounding, and to each other
 * within rounding. Plan: the invariants the kernels rely on over a grid of
 * shapes, and four plans worked out by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model/cuda/attention_split_combine.h"

enum { MAX_KEYS = 300, DIM = 16, MAX_PARTS = 8, TRIALS = 400 };

/* splitmix64: reproducible, no global state. */
static uint64_t next_u64(uint64_t *s)
{
    uint64_t x = (*s += 0x9e3779b97f4a7c15ull);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static double uniform(uint64_t *s) { return (double)(next_u64(s) >> 11) * 0x1.0p-53; }

typedef struct partial {
    att_split_stats st;
    float o[DIM];
} partial;

/* keys [a, b) as the split kernel computes them, in float. */
static partial partial_of(const float *s, const float (*v)[DIM], int a, int b)
{
    partial p;
    p.st = att_split_empty();
    for (int c = 0; c < DIM; c++)
        p.o[c] = NAN; /* an empty split's outputs are never written */
    if (a >= b)
        return p;
    float m = -INFINITY, l = 0.0f;
    for (int j = a; j < b; j++)
        m = fmaxf(m, s[j]);
    for (int c = 0; c < DIM; c++)
        p.o[c] = 0.0f;
    for (int j = a; j < b; j++) {
        const float w = exp2f(s[j] - m);
        l += w;
        for (int c = 0; c < DIM; c++)
            p.o[c] += w * v[j][c];
    }
    p.st.m = m;
    p.st.l = l;
    return p;
}

/* The softmax-weighted sum of v in double. */
static void direct(const float *s, const float (*v)[DIM], int n, double *out)
{
    double m = -INFINITY, l = 0.0;
    for (int j = 0; j < n; j++)
        m = fmax(m, s[j]);
    for (int c = 0; c < DIM; c++)
        out[c] = 0.0;
    for (int j = 0; j < n; j++) {
        const double w = exp2((double)s[j] - m);
        l += w;
        for (int c = 0; c < DIM; c++)
            out[c] += w * v[j][c];
    }
    for (int c = 0; c < DIM; c++)
        out[c] /= l;
}

/* Merges parts in the order given, starting from an empty accumulator
 * whose outputs are NaN (they must not leak in), and normalises. */
static void merge_in_order(const partial *parts, const int *order, int k, float *out)
{
    partial acc = {att_split_empty(), {0}};
    for (int c = 0; c < DIM; c++)
        acc.o[c] = NAN;
    for (int i = 0; i < k; i++)
        att_split_merge(&acc.st, acc.o, parts[order[i]].st, parts[order[i]].o, DIM);
    for (int c = 0; c < DIM; c++)
        out[c] = att_split_normalise(acc.o[c], acc.st);
}

/* Pairwise: parts[i] absorbs parts[i + step], step doubling. */
static void merge_tree(const partial *parts, int k, float *out)
{
    partial p[MAX_PARTS];
    memcpy(p, parts, (size_t)k * sizeof *p);
    for (int step = 1; step < k; step *= 2)
        for (int i = 0; i + step < k; i += 2 * step)
            att_split_merge(&p[i].st, p[i].o, p[i + step].st, p[i + step].o, DIM);
    for (int c = 0; c < DIM; c++)
        out[c] = att_split_normalise(p[0].o[c], p[0].st);
}

static void expect_near(const float *got, const double *want, double tol, const char *what,
                        int trial)
{
    for (int c = 0; c < DIM; c++)
        if (!(fabs((double)got[c] - want[c]) <= tol))
            fail_msg("trial %d, %s, column %d: %.9g vs %.9g (tolerance %.3g)", trial, what, c,
                     (double)got[c], want[c], tol);
}

/* n keys, k parts cut at random points (repeats: empty parts). */
static void random_case(uint64_t *rng, int trial, float *s, float (*v)[DIM], int *n, int *cuts,
                        int *k)
{
    *n = 1 + (int)(next_u64(rng) % MAX_KEYS);
    /* Score spread: peaked, flat, and (every fifth trial) wide enough that
     * 2^(m_a - m) underflows to 0 for some partial. */
    const double spread = trial % 5 == 4 ? 400.0 : trial % 2 ? 8.0 : 1.0;
    for (int j = 0; j < *n; j++) {
        s[j] = (float)(spread * (uniform(rng) - 0.5));
        for (int c = 0; c < DIM; c++)
            v[j][c] = (float)(2.0 * uniform(rng) - 1.0);
    }
    *k = 1 + (int)(next_u64(rng) % MAX_PARTS);
    cuts[0] = 0;
    cuts[*k] = *n;
    for (int i = 1; i < *k; i++)
        cuts[i] = (int)(next_u64(rng) % (uint64_t)(*n + 1));
    /* sort the inner cuts (insertion sort: k <= 8) */
    for (int i = 2; i < *k; i++)
        for (int j = i; j > 1 && cuts[j - 1] > cuts[j]; j--) {
            const int t = cuts[j];
            cuts[j] = cuts[j - 1];
            cuts[j - 1] = t;
        }
}

static void test_merge_matches_direct_softmax(void **state)
{
    (void)state;
    uint64_t rng = 12345;
    static float s[MAX_KEYS], v[MAX_KEYS][DIM];
    int empties = 0;
    for (int trial = 0; trial < TRIALS; trial++) {
        int n, k, cuts[MAX_PARTS + 1];
        random_case(&rng, trial, s, v, &n, cuts, &k);
        partial parts[MAX_PARTS];
        int order[MAX_PARTS];
        for (int i = 0; i < k; i++) {
            parts[i] = partial_of(s, (const float(*)[DIM])v, cuts[i], cuts[i + 1]);
            empties += att_split_is_empty(parts[i].st);
            order[i] = i;
        }
        double want[DIM];
        direct(s, (const float(*)[DIM])v, n, want);
        /* Outputs are convex combinations of values in [-1, 1]: float
         * sums of <= 300 terms are good to a few 1e-6 absolute. */
        const double tol = 5e-5;
        float fwd[DIM], rev[DIM], shuf[DIM], tree[DIM];
        merge_in_order(parts, order, k, fwd);
        expect_near(fwd, want, tol, "in order", trial);
        for (int i = 0; i < k; i++)
            order[i] = k - 1 - i;
        merge_in_order(parts, order, k, rev);
        expect_near(rev, want, tol, "reversed", trial);
        for (int i = k - 1; i > 0; i--) { /* Fisher-Yates */
            const int j = (int)(next_u64(&rng) % (uint64_t)(i + 1)), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        merge_in_order(parts, order, k, shuf);
        expect_near(shuf, want, tol, "shuffled", trial);
        merge_tree(parts, k, tree);
        expect_near(tree, want, tol, "tree", trial);
        /* Orders agree with each other to rounding. */
        double fwd_d[DIM];
        for (int c = 0; c < DIM; c++)
            fwd_d[c] = fwd[c];
        expect_near(rev, fwd_d, 1e-5, "reversed vs in order", trial);
        expect_near(tree, fwd_d, 1e-5, "tree vs in order", trial);
    }
    assert_true(empties > TRIALS / 4); /* the empty-split path was exercised */
}

static void test_single_key_and_empties(void **state)
{
    (void)state;
    const float s[1] = {3.25f};
    float v[1][DIM];
    for (int c = 0; c < DIM; c++)
        v[0][c] = (float)c - 7.5f;
    /* One key, alone or among empty parts: its value exactly (p = 1, l = 1). */
    partial parts[3] = {partial_of(s, (const float(*)[DIM])v, 0, 0),
                        partial_of(s, (const float(*)[DIM])v, 0, 1),
                        partial_of(s, (const float(*)[DIM])v, 1, 1)};
    assert_true(att_split_is_empty(parts[0].st) && att_split_is_empty(parts[2].st));
    assert_false(att_split_is_empty(parts[1].st));
    const int orders[3][3] = {{0, 1, 2}, {2, 1, 0}, {1, 0, 2}};
    for (int i = 0; i < 3; i++) {
        float out[DIM];
        merge_in_order(parts, orders[i], 3, out);
        for (int c = 0; c < DIM; c++)
            assert_true(out[c] == v[0][c]);
    }
    float out[DIM];
    merge_in_order(parts, orders[0] + 1, 1, out); /* the lone partial */
    for (int c = 0; c < DIM; c++)
        assert_true(out[c] == v[0][c]);
    /* Empty into empty changes nothing and reports nothing to merge. */
    att_split_stats a = att_split_empty();
    float fa = -1.0f, fb = -1.0f;
    assert_int_equal(att_split_merge_stats(&a, att_split_empty(), &fa, &fb), 0);
    assert_true(att_split_is_empty(a) && a.m == -INFINITY && fa == -1.0f && fb == -1.0f);
    /* Nothing merged at all: NaN, so a query that saw no key shows. */
    merge_in_order(parts, orders[0], 0, out);
    assert_true(isnan(out[0]));
    /* A non-empty partial into an empty accumulator: factors 0 and 1. */
    assert_int_equal(att_split_merge_stats(&a, parts[1].st, &fa, &fb), 1);
    assert_true(fa == 0.0f && fb == 1.0f && a.m == s[0] && a.l == 1.0f);
    assert_true(att_split_merge_value(NAN, fa, 2.0f, fb) == 2.0f);
}

/* The invariants the split kernel and its launches rely on. */
static void check_plan(int64_t nq, int heads, int kv_heads, int d, int64_t mc, int n_sm)
{
    const att_split_plan p = att_split_plan_make(nq, heads, kv_heads, d, mc, n_sm);
    const int group = heads / kv_heads, hb = p.heads_per_block;
    assert_true(hb == 1 || hb == 2 || hb == 4 || hb == ATT_SPLIT_MAX_HEADS);
    assert_true(hb >= group || hb == ATT_SPLIT_MAX_HEADS); /* the whole group when it fits */
    assert_true(hb < 2 * group || hb == 1);                /* no more than twice the group */
    assert_int_equal(p.head_chunks, (group + hb - 1) / hb);
    assert_true(p.split_len >= 1 && p.split_len <= ATT_SPLIT_MAX_KEYS);
    assert_true(p.n_splits * p.split_len >= mc);       /* every key in some split */
    assert_true((p.n_splits - 1) * p.split_len < mc);  /* no split wholly past the longest */
    assert_true(p.split_len >= (mc < ATT_SPLIT_MIN_KEYS ? mc : ATT_SPLIT_MIN_KEYS));
    const int64_t most = nq < ATT_SPLIT_MAX_GRID_Y ? nq : ATT_SPLIT_MAX_GRID_Y;
    assert_true(p.chunk >= 1 && p.chunk <= most);
    if (p.n_splits == 1) {
        assert_true(p.workspace == 0 && p.chunk == most);
        return;
    }
    const size_t per_query = att_split_query_bytes(heads, d, p.n_splits);
    assert_true(p.workspace == (size_t)p.chunk * per_query);
    assert_true(p.workspace <= ATT_SPLIT_WORKSPACE_CAP || p.chunk == 1);
    assert_true(p.chunk == most || (size_t)(p.chunk + 1) * per_query > ATT_SPLIT_WORKSPACE_CAP);
    /* What the model reserves before knowing the steps covers this step. */
    assert_true(p.workspace <= att_split_workspace_bound(heads, kv_heads, d, mc, n_sm));
    assert_true(p.workspace <= att_split_workspace_bound(heads, kv_heads, d, 40960, n_sm));
}

static void test_split_plan(void **state)
{
    (void)state;
    static const int64_t queries[] = {1, 2, 8, 64, 256, 4096, 100000};
    static const int heads[][2] = {{16, 8}, {32, 8}, {8, 2}, {3, 1}, {12, 1}, {64, 4}, {40, 40}};
    static const int dims[] = {16, 64, 128, 256};
    static const int64_t contexts[] = {1, 2, 63, 64, 65, 127, 128, 1000, 1024, 1025, 4096, 5120, 40960};
    static const int sms[] = {1, 132};
    for (size_t a = 0; a < sizeof queries / sizeof *queries; a++)
        for (size_t b = 0; b < sizeof heads / sizeof *heads; b++)
            for (size_t c = 0; c < sizeof dims / sizeof *dims; c++)
                for (size_t e = 0; e < sizeof contexts / sizeof *contexts; e++)
                    for (size_t f = 0; f < sizeof sms / sizeof *sms; f++)
                        check_plan(queries[a], heads[b][0], heads[b][1], dims[c], contexts[e],
                                   sms[f]);
    /* A huge head count: one query's partials exceed the cap alone. */
    check_plan(3, 4096, 1, 256, 40960, 132);

    /* Qwen3-4B (32/8 heads, head_dim 128) on 132 SMs. One sequence at 4096:
     * 8 units want 132 splits, the 64-key floor allows 64. */
    att_split_plan p = att_split_plan_make(1, 32, 8, 128, 4096, 132);
    assert_int_equal(p.heads_per_block, 4);
    assert_int_equal(p.head_chunks, 1);
    assert_int_equal(p.n_splits, 64);
    assert_int_equal(p.split_len, 64);
    /* 8 sequences at 4096: 64 units want 17 splits of 241 keys (1088 blocks). */
    p = att_split_plan_make(8, 32, 8, 128, 4096, 132);
    assert_int_equal(p.n_splits, 17);
    assert_int_equal(p.split_len, 241);
    /* 64 sequences at 4096: 512 units want 3 splits, 1024 keys force 4. */
    p = att_split_plan_make(64, 32, 8, 128, 4096, 132);
    assert_int_equal(p.n_splits, 4);
    assert_int_equal(p.split_len, 1024);
    assert_int_equal(p.workspace, (size_t)64 * 32 * 4 * 130 * 4);
    /* 256 sequences at 128 fill the GPU without splitting: no workspace. */
    p = att_split_plan_make(256, 32, 8, 128, 128, 132);
    assert_int_equal(p.n_splits, 1);
    assert_int_equal(p.workspace, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_matches_direct_softmax),
        cmocka_unit_test(test_single_key_and_empties),
        cmocka_unit_test(test_split_plan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
