/* The GPU model's memory plan, on the CPU (no GPU needed): the Qwen3-4B
 * shape with recompute fits an H200's 141 GB at 5120 tokens, the weight
 * and optimizer items are 2, 4, 4 and 8 bytes per parameter, activations
 * without recompute grow linearly in max_tokens (and recompute keeps far
 * less), and the plan prints. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "model/model_cuda.h"

/* Qwen3-4B from the shared data's config.json when present, else the same
 * numbers written out. */
static model_config qwen3_4b(void)
{
    model_config c = {.vocab_size = 151936, .hidden_size = 2560, .intermediate_size = 9728,
                      .num_hidden_layers = 36, .num_attention_heads = 32,
                      .num_key_value_heads = 8, .head_dim = 128,
                      .max_position_embeddings = 32768, .rope_theta = 1000000.0,
                      .rms_norm_eps = 1e-6, .tie_word_embeddings = true};
    const char *shared = getenv("KPO_SHARED");
    char path[1024];
    snprintf(path, sizeof path, "%s/data/qwen3_configs/Qwen3-4B-Base.config.json",
             shared ? shared : "../shared");
    model_config loaded;
    kpo_error err;
    if (model_config_load(path, &loaded, &err) == KPO_OK) {
        print_message("config: %s\n", path);
        assert_int_equal(loaded.hidden_size, c.hidden_size);
        assert_int_equal(loaded.num_hidden_layers, c.num_hidden_layers);
        assert_int_equal(loaded.num_key_value_heads, c.num_key_value_heads);
        assert_int_equal(loaded.head_dim, c.head_dim);
        assert_int_equal(loaded.intermediate_size, c.intermediate_size);
        assert_int_equal(loaded.vocab_size, c.vocab_size);
        assert_true(loaded.tie_word_embeddings);
        return loaded;
    }
    print_message("config: built in (%s)\n", err.message);
    return c;
}

static gpu_model_options train_options(int64_t max_tokens, bool recompute)
{
    gpu_model_options o = {.train = true, .recompute = recompute, .max_tokens = max_tokens,
                           .logprob_chunk = 0, .optim = adamw_config_default()};
    return o;
}

static void test_qwen3_4b_fits(void **state)
{
    (void)state;
    const model_config c = qwen3_4b();
    const gpu_model_options o = train_options(5120, true);
    const gpu_memory_plan p = gpu_model_plan(&c, &o);
    gpu_memory_plan_print(&p, &c, &o, stdout);
    const size_t n = (size_t)model_config_param_count(&c);
    /* Tied: embed + 36 layers + final norm, the lm_head counted once. */
    assert_int_equal(n, 4022468096ull);
    assert_int_equal(p.weights_bf16, 2 * n);
    assert_int_equal(p.master_fp32, 4 * n);
    assert_int_equal(p.grads_fp32, 4 * n);
    assert_int_equal(p.adam_fp32, 8 * n);
    assert_int_equal(p.total, p.weights_bf16 + p.master_fp32 + p.grads_fp32 + p.adam_fp32 +
                                  p.activations + p.layer_scratch + p.logprob_scratch +
                                  p.workspace);
    assert_true(p.total < (size_t)141e9);
    /* Recompute keeps one [T, hidden] bf16 input per layer plus the
     * head's few tensors: a few GB, not tens. */
    assert_true(p.activations >= (size_t)36 * 5120 * 2560 * 2);
    assert_true(p.activations < (size_t)2e9);

    const gpu_model_options full = train_options(5120, false);
    const gpu_memory_plan q = gpu_model_plan(&c, &full);
    gpu_memory_plan_print(&q, &c, &full, stdout);
    assert_true(q.activations > 10 * p.activations);

    /* Inference only: the bf16 weights and one layer's buffers. */
    gpu_model_options infer = train_options(5120, false);
    infer.train = false;
    const gpu_memory_plan r = gpu_model_plan(&c, &infer);
    gpu_memory_plan_print(&r, &c, &infer, stdout);
    assert_int_equal(r.master_fp32 + r.grads_fp32 + r.adam_fp32, 0);
    assert_true(r.activations < p.activations);
}

/* At multiples of 128 tokens every tensor is a whole number of 256-byte
 * alignment units, so the arena is exactly linear in the token count. */
static void test_activations_linear(void **state)
{
    (void)state;
    const model_config c = qwen3_4b();
    for (int recompute = 0; recompute <= 1; recompute++) {
        size_t act[4], scratch[4];
        for (int k = 1; k <= 3; k++) {
            const gpu_model_options o = train_options(1024 * k, recompute);
            const gpu_memory_plan p = gpu_model_plan(&c, &o);
            act[k] = p.activations;
            scratch[k] = p.layer_scratch;
        }
        print_message("recompute %d: activations %zu bytes per 1024 tokens, scratch %zu\n",
                      recompute, act[2] - act[1], scratch[2] - scratch[1]);
        assert_int_equal(act[2] - act[1], act[3] - act[2]);
        assert_int_equal(scratch[2] - scratch[1], scratch[3] - scratch[2]);
    }
}

/* The paper's rollout at 4B on one rank: 32 prompts x 8 responses of up to
 * 1024 + 4096 tokens. K and V take 2 x 36 layers x 8 kv heads x 128 x 2
 * bytes = 147,456 bytes a position, 0.70 GiB a slot of 5120: all 256 slots
 * are about 190 GB, more than an H200 has, so the plan gives the slots
 * that fit beside the weights and says how the step is scheduled. */
static void test_kv_cache_planned(void **state)
{
    (void)state;
    const model_config c = qwen3_4b();
    /* A rollout-only rank: no training forward (max_tokens 0); its decode
     * steps' activations are counted with the cache. */
    gpu_model_options o = train_options(0, false);
    o.train = false;
    o.decode_responses = 256;
    o.decode_slots = 256;
    o.decode_max_len = 5120;
    o.decode_prefill = 1024;
    gpu_memory_plan p = gpu_model_plan(&c, &o);
    const size_t kv_per_position = (size_t)2 * 36 * 8 * 128 * 2;
    assert_int_equal(kv_per_position, 147456);
    /* Device unknown: every slot wanted, K and V alone about 193 GB. */
    assert_int_equal(p.kv_slots, 256);
    assert_true(p.kv_cache >= 256 * 5120 * kv_per_position);
    assert_int_equal(p.kv_slot, 5120 * kv_per_position);
    assert_int_equal(p.kv_cache, gpu_decode_bytes(&c, 256, 5120, 1024, 0));
    assert_int_equal(p.decode_waves, 1);
    gpu_memory_plan_print(&p, &c, &o, stdout);

    /* An H200's 141 GB free: the slots that fit in what the rest leaves,
     * and no more (one more slot would not). */
    p.device_free = (size_t)141e9;
    p.device_total = (size_t)143e9;
    gpu_memory_plan_kv(&p, &c, &o);
    const size_t left = p.device_free - p.total - GPU_MODEL_DECODE_RESERVE;
    print_message("141 GB free: %lld slots (%.1f GB of %.1f GB left)\n", (long long)p.kv_slots,
                  (double)p.kv_cache / 1e9, (double)left / 1e9);
    assert_true(p.kv_slots > 120 && p.kv_slots < 256);
    assert_true(gpu_decode_bytes(&c, p.kv_slots, 5120, 1024, 0) <= left);
    assert_true(gpu_decode_bytes(&c, p.kv_slots + 1, 5120, 1024, 0) > left);
    assert_int_equal(p.decode_waves, (256 + p.kv_slots - 1) / p.kv_slots);
    gpu_memory_plan_print(&p, &c, &o, stdout);
    o.decode_refill = true;
    gpu_memory_plan_print(&p, &c, &o, stdout);

    /* rollout.prefill_tokens = 16384: a step's activations no longer grow
     * with the slots, so more of them fit in the same memory. */
    gpu_model_options budgeted = o;
    budgeted.decode_prefill_budget = 16384;
    gpu_memory_plan pb = p;
    gpu_memory_plan_kv(&pb, &c, &budgeted);
    gpu_memory_plan_print(&pb, &c, &budgeted, stdout);
    assert_true(pb.kv_slots > p.kv_slots);
    assert_true(gpu_decode_bytes(&c, pb.kv_slots, 5120, 1024, 16384) <= left);
    assert_true(gpu_decode_bytes(&c, pb.kv_slots + 1, 5120, 1024, 16384) > left);
    /* What the budget saves: the activations of a step that prefills all
     * 256 prompts at once, against those of at most 16384 prompt tokens. */
    const size_t all_at_once = gpu_decode_bytes(&c, 256, 5120, 1024, 0);
    const size_t capped = gpu_decode_bytes(&c, 256, 5120, 1024, 16384);
    print_message("256 prompts of 1024 in one step: %.1f GiB more than 16384 tokens a step\n",
                  (double)(all_at_once - capped) / (1 << 30));
    assert_true(all_at_once - capped > (size_t)25 << 30);
    /* A budget below one prompt still feeds that prompt (whole). */
    assert_int_equal(gpu_decode_bytes(&c, 4, 5120, 1024, 1),
                     gpu_decode_bytes(&c, 4, 5120, 1024, 1024));

    /* Nothing left: no slot, and the plan says so. */
    p.device_free = p.total;
    gpu_memory_plan_kv(&p, &c, &o);
    assert_int_equal(p.kv_slots, 0);
    assert_int_equal(p.kv_cache, 0);

    /* No rollout on this model: no KV items. */
    const gpu_model_options learner = train_options(5120, true);
    const gpu_memory_plan q = gpu_model_plan(&c, &learner);
    assert_int_equal(q.kv_slots, 0);
    assert_int_equal(q.kv_cache, 0);
}

/* learner.recompute = auto on an H200 (141 GB free): Qwen3-4B's update at
 * 5120 tokens fits without recomputation (~88 GiB), so recomputation goes;
 * at 40,960 tokens a micro-batch it does not, so it stays; a learner that
 * also decodes keeps it when dropping it would cost the rollout slots. */
static void test_recompute_auto(void **state)
{
    (void)state;
    const model_config c = qwen3_4b();
    for (int64_t tokens = 5120; tokens <= 40960; tokens *= 8) {
        gpu_model_options o = train_options(tokens, true);
        gpu_memory_plan with = gpu_model_plan(&c, &o);
        o.recompute = false;
        gpu_memory_plan without = gpu_model_plan(&c, &o);
        with.device_free = without.device_free = (size_t)141e9;
        const bool skip = gpu_memory_plan_skip_recompute(&with, &without);
        print_message("%lld tokens: %.1f GiB with recomputation, %.1f without: %s\n",
                      (long long)tokens, (double)with.total / (1 << 30),
                      (double)without.total / (1 << 30), skip ? "off" : "on");
        assert_true(skip == (tokens == 5120));
    }
    /* Colocated with a rollout: 64 slots of 5120 wanted. Without
     * recomputation the plan leaves fewer of them, so it stays on. */
    gpu_model_options o = train_options(5120, true);
    o.decode_responses = o.decode_slots = 64;
    o.decode_max_len = 5120;
    o.decode_prefill = 1024;
    gpu_memory_plan with = gpu_model_plan(&c, &o);
    o.recompute = false;
    gpu_memory_plan without = gpu_model_plan(&c, &o);
    with.device_free = without.device_free = (size_t)141e9;
    gpu_memory_plan_kv(&with, &c, &o);
    gpu_memory_plan_kv(&without, &c, &o);
    print_message("colocated: %lld slots with recomputation, %lld without\n",
                  (long long)with.kv_slots, (long long)without.kv_slots);
    assert_true(without.kv_slots < with.kv_slots);
    assert_false(gpu_memory_plan_skip_recompute(&with, &without));
}

/* model.attention = cudnn: the plan (and so kpo train --plan) counts
 * cuDNN's backward buffers as gpu_model_create does. At 10,240 tokens,
 * 32/8 heads of 128, 128 rows of slack: fp32 dQ accumulator, softmax sum,
 * and GQA's per-head dK and dV. */
static void test_cudnn_buffers_planned(void **state)
{
    (void)state;
    const model_config c = qwen3_4b();
    gpu_model_options o = train_options(10240, true);
    const gpu_memory_plan kernel = gpu_model_plan(&c, &o);
    o.attention = GPU_ATTENTION_CUDNN;
    const gpu_memory_plan cudnn = gpu_model_plan(&c, &o);
    const size_t rows = 10240 + 128, full = rows * 32 * 128 * 4, sum = rows * 32 * 4;
    print_message("cuDNN's backward buffers at 10,240 tokens: %.1f MB\n",
                  (double)(3 * full + sum) / 1e6);
    assert_int_equal(cudnn.workspace - kernel.workspace, 3 * full + sum);
    assert_int_equal(cudnn.total - kernel.total, 3 * full + sum);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qwen3_4b_fits),
        cmocka_unit_test(test_activations_linear),
        cmocka_unit_test(test_kv_cache_planned),
        cmocka_unit_test(test_recompute_auto),
        cmocka_unit_test(test_cudnn_buffers_planned),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
