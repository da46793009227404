/* Rollout generation on a tiny random Qwen3: greedy responses agree with
 * the training forward's argmax; sampled responses replay exactly, under
 * either slot schedule (waves, refill) and any number of slots; refill
 * takes no more decode steps than waves and keeps the slots fuller. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model/cpu/model_compute.h"
#include "rollout/generate.h"

static model tiny;
static const int32_t PROMPTS[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
static const int64_t PROMPT_OFFSETS[] = {0, 3, 9, 10};
static const int64_t PROMPT_IDS[] = {17, 4, 99};
static const int32_t STOP[] = {7};

static int setup(void **state)
{
    (void)state;
    model_config c = {.vocab_size = 40, .hidden_size = 32, .intermediate_size = 64,
                      .num_hidden_layers = 2, .num_attention_heads = 4, .num_key_value_heads = 2,
                      .head_dim = 8, .max_position_embeddings = 128, .rope_theta = 1e4,
                      .rms_norm_eps = 1e-6, .tie_word_embeddings = true};
    if (model_init(&tiny, &c, NULL) != KPO_OK)
        return -1;
    model_init_random(&tiny, 3, 0.5);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    model_free(&tiny);
    return 0;
}

/* rollout_generate on the CPU model. */
static int generate(const rollout_request *req, rollout_responses *out, kpo_error *err)
{
    model_backend cpu = model_backend_cpu_eval(&tiny);
    int status = rollout_generate(&cpu, req, out, err);
    model_backend_free(&cpu);
    return status;
}

static rollout_request request(double temperature, int64_t max_batch)
{
    return (rollout_request){.prompt_tokens = PROMPTS, .prompt_offsets = PROMPT_OFFSETS,
                             .prompt_ids = PROMPT_IDS, .n_prompts = 3, .group_size = 2,
                             .max_new_tokens = 12, .stop_ids = STOP, .n_stop = 1,
                             .sampler = {temperature, 1.0}, .seed = 5, .step = 2,
                             .max_batch = max_batch};
}

static void test_greedy_matches_training_forward(void **state)
{
    (void)state;
    rollout_request req = request(0.0, 4); /* 6 responses in chunks of 4 and 2 */
    rollout_responses out;
    assert_int_equal(generate(&req, &out, NULL), KPO_OK);
    assert_int_equal(out.n_responses, 6);
    const int64_t vocab = tiny.config.vocab_size;
    int checked = 0;
    for (int64_t r = 0; r < out.n_responses; r++) {
        int64_t p = r / 2, plen = PROMPT_OFFSETS[p + 1] - PROMPT_OFFSETS[p];
        int64_t len = out.offsets[r + 1] - out.offsets[r];
        assert_true(len >= 1 && len <= 12);
        if (out.stopped[r])
            assert_int_equal(out.tokens[out.offsets[r + 1] - 1], 7);
        else
            assert_int_equal(len, 12);
        /* Both samples of a prompt are the same under greedy decoding. */
        if (r % 2 == 1)
            assert_memory_equal(out.tokens + out.offsets[r - 1], out.tokens + out.offsets[r],
                                (size_t)len * sizeof(int32_t));
        int32_t seq[32];
        memcpy(seq, PROMPTS + PROMPT_OFFSETS[p], (size_t)plen * sizeof *seq);
        memcpy(seq + plen, out.tokens + out.offsets[r], (size_t)len * sizeof *seq);
        int64_t offsets[2] = {0, plen + len};
        model_batch batch = {seq, plen + len, offsets, 1};
        model_acts acts;
        assert_int_equal(model_acts_init(&acts, &tiny, plen + len, NULL), KPO_OK);
        assert_int_equal(model_forward_train(&tiny, &batch, &acts, NULL), KPO_OK);
        float *logits = malloc((size_t)((plen + len) * vocab) * sizeof *logits);
        model_logits(&tiny, &acts, logits);
        for (int64_t t = 0; t < len; t++) {
            const float *row = logits + (plen - 1 + t) * vocab;
            int32_t best = 0;
            for (int32_t v = 1; v < vocab; v++)
                if (row[v] > row[best])
                    best = v;
            assert_int_equal(best, seq[plen + t]);
            checked++;
        }
        free(logits);
        model_acts_free(&acts);
    }
    print_message("greedy decode agrees with the training forward on %d tokens\n", checked);
    rollout_responses_free(&out);
}

static void test_sampling_replays_whatever_the_batching(void **state)
{
    (void)state;
    rollout_responses a, b;
    rollout_request req = request(1.0, 6);
    assert_int_equal(generate(&req, &a, NULL), KPO_OK);
    req.max_batch = 1;
    assert_int_equal(generate(&req, &b, NULL), KPO_OK);
    assert_memory_equal(a.offsets, b.offsets, 7 * sizeof(int64_t));
    assert_memory_equal(a.tokens, b.tokens, (size_t)a.offsets[6] * sizeof(int32_t));
    /* Samples of one prompt differ (their streams do). */
    int64_t len0 = a.offsets[1], len1 = a.offsets[2] - a.offsets[1];
    assert_true(len0 != len1 ||
                memcmp(a.tokens, a.tokens + len0, (size_t)len0 * sizeof(int32_t)) != 0);
    rollout_responses_free(&a);
    rollout_responses_free(&b);
}

/* Eight prompts of lengths 1 to 7, three samples each, with three stop
 * tokens, so responses end at many different lengths. */
static const int32_t MANY_PROMPTS[] = {1, 2,  3,  4,  5,  6,  8,  9,  10, 11, 12, 13,
                                       14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
                                       26, 27, 28};
static const int64_t MANY_OFFSETS[] = {0, 3, 9, 10, 14, 19, 21, 23, 27};
static const int64_t MANY_IDS[] = {17, 4, 99, 5, 6, 7, 8, 9};
static const int32_t MANY_STOPS[] = {7, 13, 30};
enum { MANY_N = 8 * 3, MANY_MAX_NEW = 16 };

static rollout_request varied_request(double temperature, int64_t max_batch,
                                      rollout_schedule schedule)
{
    return (rollout_request){.prompt_tokens = MANY_PROMPTS, .prompt_offsets = MANY_OFFSETS,
                             .prompt_ids = MANY_IDS, .n_prompts = 8, .group_size = 3,
                             .max_new_tokens = MANY_MAX_NEW, .stop_ids = MANY_STOPS,
                             .n_stop = 3, .sampler = {temperature, 1.0}, .seed = 11,
                             .step = 3, .max_batch = max_batch, .schedule = schedule};
}

static void assert_same_responses(const rollout_responses *a, const rollout_responses *b)
{
    assert_int_equal(a->n_responses, b->n_responses);
    assert_memory_equal(a->offsets, b->offsets, (size_t)(a->n_responses + 1) * sizeof(int64_t));
    assert_memory_equal(a->stopped, b->stopped, (size_t)a->n_responses);
    assert_memory_equal(a->tokens, b->tokens, (size_t)a->offsets[a->n_responses] * sizeof(int32_t));
}

/* The lengths differ (else refill has nothing to refill) and some
 * responses stopped while others ran to max_new_tokens. */
static void assert_lengths_vary(const rollout_responses *r)
{
    int64_t shortest = MANY_MAX_NEW, stopped = 0;
    for (int64_t i = 0; i < r->n_responses; i++) {
        int64_t length = r->offsets[i + 1] - r->offsets[i];
        shortest = length < shortest ? length : shortest;
        stopped += r->stopped[i];
    }
    assert_true(shortest < MANY_MAX_NEW / 2);
    assert_true(stopped > 0 && stopped < r->n_responses);
}

static const int64_t MAX_BATCHES[] = {1, 2, 3, MANY_N - 1, MANY_N, MANY_N + 5};

/* Each response draws from its own stream, so which responses share a
 * decode step, and when, changes nothing: every (schedule, max_batch)
 * gives the responses of waves with one slot per response. */
static void assert_every_schedule_draws_the_same(double temperature)
{
    rollout_responses reference;
    rollout_request req = varied_request(temperature, MANY_N, ROLLOUT_WAVES);
    assert_int_equal(generate(&req, &reference, NULL), KPO_OK);
    assert_lengths_vary(&reference);
    for (size_t k = 0; k < sizeof MAX_BATCHES / sizeof MAX_BATCHES[0]; k++)
        for (int schedule = ROLLOUT_WAVES; schedule <= ROLLOUT_REFILL; schedule++) {
            rollout_responses out;
            req = varied_request(temperature, MAX_BATCHES[k], (rollout_schedule)schedule);
            assert_int_equal(generate(&req, &out, NULL), KPO_OK);
            assert_same_responses(&reference, &out);
            rollout_responses_free(&out);
        }
    rollout_responses_free(&reference);
}

static void test_refill_draws_what_waves_draw_greedy(void **state)
{
    (void)state;
    assert_every_schedule_draws_the_same(0.0);
}

static void test_refill_draws_what_waves_draw_sampled(void **state)
{
    (void)state;
    assert_every_schedule_draws_the_same(1.0);
}

static double occupancy(const rollout_responses *r)
{
    return (double)r->busy_slot_steps / (double)(r->decode_steps * r->slots);
}

/* Waves decode each wave for as many steps as its longest response. */
static int64_t wave_steps(const rollout_responses *r, int64_t slots)
{
    int64_t steps = 0;
    for (int64_t first = 0; first < r->n_responses; first += slots) {
        int64_t longest = 0;
        for (int64_t i = first; i < first + slots && i < r->n_responses; i++) {
            int64_t length = r->offsets[i + 1] - r->offsets[i];
            longest = length > longest ? length : longest;
        }
        steps += longest;
    }
    return steps;
}

static void test_refill_keeps_slots_busier(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof MAX_BATCHES / sizeof MAX_BATCHES[0]; k++) {
        const int64_t max_batch = MAX_BATCHES[k];
        const int64_t slots = max_batch < MANY_N ? max_batch : MANY_N;
        rollout_responses waves, refill;
        rollout_request req = varied_request(1.0, max_batch, ROLLOUT_WAVES);
        assert_int_equal(generate(&req, &waves, NULL), KPO_OK);
        req.schedule = ROLLOUT_REFILL;
        assert_int_equal(generate(&req, &refill, NULL), KPO_OK);
        assert_int_equal(waves.slots, slots);
        assert_int_equal(refill.slots, slots);
        assert_int_equal(waves.decode_steps, wave_steps(&waves, slots));
        /* A response of length L is fed in L steps (its prefill, then L - 1 tokens). */
        assert_int_equal(waves.busy_slot_steps, waves.offsets[MANY_N]);
        assert_int_equal(refill.busy_slot_steps, refill.offsets[MANY_N]);
        assert_true(refill.decode_steps <= waves.decode_steps);
        assert_true(occupancy(&refill) >= occupancy(&waves));
        assert_true(occupancy(&refill) <= 1.0);
        /* One slot, or one per response: nothing to refill, the same steps. */
        if (slots == 1 || slots == MANY_N)
            assert_int_equal(refill.decode_steps, waves.decode_steps);
        else
            assert_true(refill.decode_steps < waves.decode_steps);
        print_message("max_batch %2lld: steps waves %3lld refill %3lld, occupancy waves %.3f "
                      "refill %.3f\n",
                      (long long)max_batch, (long long)waves.decode_steps,
                      (long long)refill.decode_steps, occupancy(&waves), occupancy(&refill));
        rollout_responses_free(&waves);
        rollout_responses_free(&refill);
    }
}

/* rollout.prefill_tokens: prompts beyond the step's budget wait for a
 * later step, still fresh. The responses stay those of the reference;
 * only the step count grows (a budget of 1 feeds one prompt a step). */
static void test_prefill_budget_draws_the_same(void **state)
{
    (void)state;
    static const int64_t BUDGETS[] = {1, 4, 9, 1000};
    rollout_responses reference;
    rollout_request req = varied_request(1.0, MANY_N, ROLLOUT_WAVES);
    assert_int_equal(generate(&req, &reference, NULL), KPO_OK);
    for (size_t k = 0; k < sizeof BUDGETS / sizeof BUDGETS[0]; k++)
        for (int schedule = ROLLOUT_WAVES; schedule <= ROLLOUT_REFILL; schedule++) {
            const int64_t max_batch[] = {3, MANY_N};
            for (int m = 0; m < 2; m++) {
                rollout_responses unbudgeted, out;
                req = varied_request(1.0, max_batch[m], (rollout_schedule)schedule);
                assert_int_equal(generate(&req, &unbudgeted, NULL), KPO_OK);
                req.prefill_tokens = BUDGETS[k];
                assert_int_equal(generate(&req, &out, NULL), KPO_OK);
                assert_same_responses(&reference, &out);
                /* Every response still fed once per token it holds. */
                assert_int_equal(out.busy_slot_steps, out.offsets[MANY_N]);
                if (BUDGETS[k] == 1 && max_batch[m] == MANY_N)
                    assert_true(out.decode_steps > unbudgeted.decode_steps);
                if (BUDGETS[k] == 1000)
                    assert_int_equal(out.decode_steps, unbudgeted.decode_steps);
                rollout_responses_free(&unbudgeted);
                rollout_responses_free(&out);
            }
        }
    rollout_responses_free(&reference);
}

static void test_rejects_bad_requests(void **state)
{
    (void)state;
    rollout_responses out;
    kpo_error err;
    rollout_request req = request(1.0, 2);
    req.sampler.top_p = 0;
    assert_int_equal(generate(&req, &out, &err), KPO_ERR);
    req = request(1.0, 2);
    int32_t bad_prompt[] = {1, 2, 400};
    int64_t offsets[] = {0, 3};
    req.prompt_tokens = bad_prompt;
    req.prompt_offsets = offsets;
    req.n_prompts = 1;
    assert_int_equal(generate(&req, &out, &err), KPO_ERR);
    assert_non_null(strstr(err.message, "400"));
    req = request(1.0, 2);
    req.schedule = (rollout_schedule)7;
    assert_int_equal(generate(&req, &out, &err), KPO_ERR);
    assert_non_null(strstr(err.message, "schedule"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_matches_training_forward),
        cmocka_unit_test(test_sampling_replays_whatever_the_batching),
        cmocka_unit_test(test_refill_draws_what_waves_draw_greedy),
        cmocka_unit_test(test_refill_draws_what_waves_draw_sampled),
        cmocka_unit_test(test_prefill_budget_draws_the_same),
        cmocka_unit_test(test_refill_keeps_slots_busier),
        cmocka_unit_test(test_rejects_bad_requests),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
