/* Rollout generation on a tiny random Qwen3: greedy responses agree with
 * the training forward's argmax; sampled responses replay exactly. */
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
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_matches_training_forward),
        cmocka_unit_test(test_sampling_replays_whatever_the_batching),
        cmocka_unit_test(test_rejects_bad_requests),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
