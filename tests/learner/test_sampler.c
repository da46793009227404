/* Sampling: greedy, temperature, nucleus; empirical frequencies against the
 * exact distribution; replay from the stream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>

#include <cmocka.h>

#include "core/philox.h"
#include "sampling/sampler.h"

static const float LOGITS[6] = {2.0f, 1.0f, 0.5f, 2.0f, -1.0f, 0.0f};

static void test_greedy_takes_first_maximum(void **state)
{
    (void)state;
    sampler_config cfg = {0.0, 1.0};
    sampler_scratch s;
    assert_int_equal(sampler_scratch_init(&s, 6, NULL), KPO_OK);
    rng_stream rng;
    sampler_stream_init(&rng, 1, 0, 0, 0);
    assert_int_equal(sampler_draw(&cfg, LOGITS, 6, &s, &rng), 0);
    sampler_scratch_free(&s);
}

static void test_distribution_temperature_and_top_p(void **state)
{
    (void)state;
    sampler_scratch s;
    assert_int_equal(sampler_scratch_init(&s, 6, NULL), KPO_OK);
    double p[6], z = 0;
    sampler_config plain = {0.5, 1.0};
    sampler_distribution(&plain, LOGITS, 6, &s, p);
    for (int i = 0; i < 6; i++)
        z += exp(LOGITS[i] / 0.5);
    for (int i = 0; i < 6; i++)
        assert_true(fabs(p[i] - exp(LOGITS[i] / 0.5) / z) < 1e-15);
    /* T = 1: probs of ids 0 and 3 are 0.336 each (mass 0.672); top_p 0.6
     * keeps both (the crossing token is kept), nothing else. */
    sampler_config nucleus = {1.0, 0.6};
    sampler_distribution(&nucleus, LOGITS, 6, &s, p);
    assert_true(fabs(p[0] - 0.5) < 1e-15 && fabs(p[3] - 0.5) < 1e-15);
    assert_true(p[1] == 0 && p[2] == 0 && p[4] == 0 && p[5] == 0);
    sampler_config narrow = {1.0, 0.2};
    sampler_distribution(&narrow, LOGITS, 6, &s, p);
    assert_true(p[0] == 1.0); /* ties broken towards the lower id */
    sampler_scratch_free(&s);
}

static void test_frequencies_match_distribution(void **state)
{
    (void)state;
    sampler_config cfg = {0.8, 0.9};
    sampler_scratch s;
    assert_int_equal(sampler_scratch_init(&s, 6, NULL), KPO_OK);
    double p[6], count[6] = {0};
    sampler_distribution(&cfg, LOGITS, 6, &s, p);
    const int n = 200000;
    rng_stream rng;
    sampler_stream_init(&rng, 9, 3, 1, 2);
    for (int i = 0; i < n; i++)
        count[sampler_draw(&cfg, LOGITS, 6, &s, &rng)] += 1;
    for (int i = 0; i < 6; i++) {
        double se = sqrt(p[i] * (1 - p[i]) / n);
        assert_true(fabs(count[i] / n - p[i]) <= 6 * se + 1e-12);
    }
    sampler_scratch_free(&s);
}

static void test_streams_replay(void **state)
{
    (void)state;
    sampler_config cfg = {1.0, 1.0};
    sampler_scratch s;
    assert_int_equal(sampler_scratch_init(&s, 6, NULL), KPO_OK);
    rng_stream a, b, c;
    sampler_stream_init(&a, 5, 7, 11, 3);
    sampler_stream_init(&b, 5, 7, 11, 3);
    sampler_stream_init(&c, 5, 7, 11, 4);
    int same = 1, differ = 0;
    for (int i = 0; i < 64; i++) {
        int32_t x = sampler_draw(&cfg, LOGITS, 6, &s, &a), y = sampler_draw(&cfg, LOGITS, 6, &s, &b);
        same &= x == y;
        differ += x != sampler_draw(&cfg, LOGITS, 6, &s, &c);
    }
    assert_true(same && differ > 10);
    sampler_scratch_free(&s);
    kpo_error err;
    sampler_config bad = {1.0, 0.0};
    assert_int_equal(sampler_config_validate(&bad, &err), KPO_ERR);
    bad = (sampler_config){-1.0, 1.0};
    assert_int_equal(sampler_config_validate(&bad, &err), KPO_ERR);
}

/* The draw walks the kept tokens in ascending id order (so a GPU can find
 * the token with a prefix scan instead of a sort): with T = 1, top_p = 0.9
 * the nucleus is ids {0, 3, 1, 2} (rank order), and u maps to the first id
 * whose cumulative mass in id order 0, 1, 2, 3 exceeds u * kept mass. */
static void test_draw_walks_kept_ids_in_id_order(void **state)
{
    (void)state;
    sampler_config cfg = {1.0, 0.9};
    sampler_scratch s;
    assert_int_equal(sampler_scratch_init(&s, 6, NULL), KPO_OK);
    double w[6], total = 0;
    for (int i = 0; i < 6; i++)
        total += w[i] = exp(LOGITS[i]);
    double kept = (w[0] + w[1] + w[2] + w[3]) / total; /* 0.933: ids 4 and 5 are cut */
    double edge[4], cumulative = 0;
    for (int i = 0; i < 4; i++)
        edge[i] = (cumulative += w[i] / total) / kept;
    rng_stream rng;
    const uint64_t seed = 11, stream_id = rng_stream_id(4, 5, 6);
    rng_stream_init(&rng, seed, stream_id);
    int landed_on_1 = 0;
    for (uint64_t n = 0; n < 2000; n++) {
        double u = philox_uniform_at(seed, stream_id, n);
        int32_t expected = u < edge[0] ? 0 : u < edge[1] ? 1 : u < edge[2] ? 2 : 3;
        assert_int_equal(sampler_draw(&cfg, LOGITS, 6, &s, &rng), expected);
        /* e.g. u = 0.45: id 1 here, where a walk in rank order (0, 3, ...)
         * would have given id 3. */
        landed_on_1 += u > 0.40 && u < 0.50 && expected == 1;
    }
    assert_true(landed_on_1 > 0);
    sampler_scratch_free(&s);
}

/* Equal logits at the nucleus boundary are kept lowest id first; -0 and +0
 * are the same logit. */
static void test_ties_at_the_cut_keep_lower_ids(void **state)
{
    (void)state;
    sampler_scratch s;
    assert_int_equal(sampler_scratch_init(&s, 5, NULL), KPO_OK);
    const float tied[5] = {1.0f, 3.0f, 3.0f, 3.0f, 0.0f}; /* p(3) = 0.314 each */
    double p[5];
    sampler_config cfg = {1.0, 0.5};
    sampler_distribution(&cfg, tied, 5, &s, p);
    assert_true(p[1] == 0.5 && p[2] == 0.5 && p[0] == 0 && p[3] == 0 && p[4] == 0);
    const float zeros[2] = {-0.0f, 0.0f};
    cfg.top_p = 0.5;
    sampler_distribution(&cfg, zeros, 2, &s, p);
    assert_true(p[0] == 1.0 && p[1] == 0.0);
    sampler_scratch_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_takes_first_maximum),
        cmocka_unit_test(test_distribution_temperature_and_top_p),
        cmocka_unit_test(test_frequencies_match_distribution),
        cmocka_unit_test(test_streams_replay),
        cmocka_unit_test(test_draw_walks_kept_ids_in_id_order),
        cmocka_unit_test(test_ties_at_the_cut_keep_lower_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
