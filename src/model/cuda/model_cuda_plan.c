/* The GPU model's memory plan (model_cuda.h): what its buffers will take,
 * computed from the config and options alone, so it is printed (and
 * tested) without a GPU. Activations come from the arena layout the
 * allocator itself uses (cuda/model_cuda_acts.c). The two workspaces are
 * estimates here; gpu_model_create replaces them with the kernels' own
 * answers before comparing with the device's free memory. */
#include "model/cuda/attention_cudnn.h"
#include "model/cuda/attention_split_combine.h"
#include "model/cuda/model_cuda_acts.h"
#include "model/model_cuda.h"

#include <string.h>

static const double GIB = 1024.0 * 1024.0 * 1024.0;

size_t gpu_decode_kv_bytes(const model_config *c, int64_t n_slots, int64_t max_len)
{
    return (size_t)2 * (size_t)c->num_hidden_layers * (size_t)n_slots * (size_t)max_len *
           (size_t)(c->num_key_value_heads * c->head_dim) * sizeof(uint16_t);
}

/* The most tokens one decode step of n slots feeds (gpu_decode_bytes). */
static int64_t decode_step_tokens(int64_t n, int64_t prefill_tokens, int64_t prefill_budget)
{
    const int64_t all = n * prefill_tokens;
    if (prefill_budget <= 0)
        return all;
    const int64_t prompts = prefill_budget > prefill_tokens ? prefill_budget : prefill_tokens;
    return prompts + n < all ? prompts + n : all;
}

size_t gpu_decode_bytes(const model_config *c, int64_t n, int64_t max_len,
                        int64_t prefill_tokens, int64_t prefill_budget)
{
    gpu_acts counted;
    memset(&counted, 0, sizeof counted);
    const int64_t step = decode_step_tokens(n, prefill_tokens, prefill_budget);
    const size_t acts = gpu_acts_layout(&counted, c, step, GPU_ACTS_FORWARD, NULL);
    const size_t per_seq = (size_t)c->vocab_size * sizeof(float) +
                           (size_t)c->hidden_size * sizeof(uint16_t) + 64;
    return gpu_decode_kv_bytes(c, n, max_len) + (size_t)n * per_seq + acts;
}

int64_t gpu_decode_slots_within(const model_config *c, int64_t wanted, int64_t max_len,
                                int64_t prefill_tokens, int64_t prefill_budget, size_t extra,
                                size_t bytes)
{
    if (wanted < 1 || max_len < 1 || prefill_tokens < 0)
        return 0;
    /* The need grows with n (the activation arena in steps of its
     * alignment): the largest n within budget, by bisection. */
    int64_t lo = 0, hi = wanted + 1;
    while (hi - lo > 1) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (gpu_decode_bytes(c, mid, max_len, prefill_tokens, prefill_budget) + extra <= bytes)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

bool gpu_memory_plan_skip_recompute(const gpu_memory_plan *with, const gpu_memory_plan *without)
{
    return without->total + GPU_MODEL_DECODE_RESERVE <= without->device_free &&
           without->kv_slots >= with->kv_slots;
}

void gpu_memory_plan_kv(gpu_memory_plan *p, const model_config *c, const gpu_model_options *o)
{
    p->kv_slot = p->kv_cache = 0;
    p->kv_slots = p->decode_waves = p->kv_slots_room = 0;
    if (o->decode_slots < 1 || o->decode_max_len < 1)
        return;
    const int64_t len = o->decode_max_len, prompt = o->decode_prefill;
    const int64_t budget = o->decode_prefill_budget;
    p->kv_slot = gpu_decode_kv_bytes(c, 1, len);
    /* The split attention's partials at their largest; the SM count of an
     * H100/H200 (132) stands in for the device's: the bound barely moves
     * with it (32 MiB for Qwen3's shapes). */
    const size_t extra = o->decode_attention == GPU_DECODE_ATTENTION_SPLIT
                             ? att_split_workspace_bound((int)c->num_attention_heads,
                                                         (int)c->num_key_value_heads,
                                                         (int)c->head_dim, len, 132)
                             : 0;
    int64_t slots = o->decode_slots;
    if (p->device_free > 0) {
        const size_t taken = p->total + GPU_MODEL_DECODE_RESERVE;
        const size_t left = p->device_free > taken ? p->device_free - taken : 0;
        slots = gpu_decode_slots_within(c, slots, len, prompt, budget, extra, left);
        p->kv_slots_room =
            gpu_decode_slots_within(c, o->decode_responses, len, prompt, budget, extra, left);
    }
    p->kv_slots = slots;
    p->kv_cache = slots > 0 ? gpu_decode_bytes(c, slots, len, prompt, budget) + extra : 0;
    p->decode_waves = slots > 0 ? (o->decode_responses + slots - 1) / slots : 0;
}

gpu_memory_plan gpu_model_plan(const model_config *c, const gpu_model_options *o)
{
    gpu_memory_plan p = {0};
    const size_t n = (size_t)model_config_param_count(c);
    const int64_t T = o->max_tokens > 0 ? o->max_tokens : 0;
    const int64_t chunk = o->logprob_chunk > 0 ? o->logprob_chunk : GPU_MODEL_LOGPROB_CHUNK;
    p.weights_bf16 = 2 * n;
    if (o->train) {
        p.master_fp32 = 4 * n;
        p.grads_fp32 = 4 * n;
        p.adam_fp32 = 8 * n; /* m and v */
    }
    const gpu_acts_mode mode = !o->train       ? GPU_ACTS_FORWARD
                               : o->recompute ? GPU_ACTS_RECOMPUTE
                                              : GPU_ACTS_SAVE_ALL;
    gpu_acts acts = {0};
    gpu_acts_layout(&acts, c, T, mode, NULL);
    p.activations = acts.saved_bytes;
    p.layer_scratch = acts.scratch_bytes;
    /* fp32 logits of one chunk, and in training their bf16 gradient. */
    const size_t rows = (size_t)(T > 0 && T < chunk ? T : chunk);
    p.logprob_scratch = rows * (size_t)c->vocab_size * (o->train ? 4 + 2 : 4);
    /* cuBLASLt's workspace; the attention backward's, estimated as fp32
     * partial dq, dk, dv of every token (the kernel's exact need is asked
     * at create time). */
    p.workspace = GPU_MODEL_GEMM_WORKSPACE;
    if (o->train)
        p.workspace += (size_t)T * 4 *
                       (size_t)((c->num_attention_heads + 2 * c->num_key_value_heads) *
                                c->head_dim);
    /* cuDNN's backward buffers, as gpu_model_create counts them (a build
     * without cuDNN falls back to the kernel and does without them). */
    if (o->train && o->attention == GPU_ATTENTION_CUDNN)
        p.workspace += attention_cudnn_bwd_layout_of(T, (int)c->num_attention_heads,
                                                     (int)c->num_key_value_heads,
                                                     (int)c->head_dim)
                           .bytes;
    p.total = p.weights_bf16 + p.master_fp32 + p.grads_fp32 + p.adam_fp32 + p.activations +
              p.layer_scratch + p.logprob_scratch + p.workspace;
    gpu_memory_plan_kv(&p, c, o);
    return p;
}

static void plan_line(FILE *out, const char *what, size_t bytes, const char *note)
{
    fprintf(out, "  %-26s %9.3f GiB  %s\n", what, (double)bytes / GIB, note);
}

/* The rollout's KV cache and how the step's responses use it. */
static void plan_print_kv(const gpu_memory_plan *p, const gpu_model_options *o, FILE *out)
{
    if (o->decode_slots < 1)
        return;
    char note[200];
    snprintf(note, sizeof note, "%lld of %lld slots x %lld positions (K, V %.3f GiB a slot)%s",
             (long long)p->kv_slots, (long long)o->decode_slots, (long long)o->decode_max_len,
             (double)p->kv_slot / GIB,
             p->device_free > 0 ? ", in what the total leaves" : " (device memory unknown)");
    plan_line(out, "KV cache (bf16) + decode", p->kv_cache, note);
    if (p->kv_slots_room > p->kv_slots)
        fprintf(out, "  %-26s %13s  rollout.max_batch = %lld caps them: %lld would fit\n", "", "",
                (long long)o->decode_slots, (long long)p->kv_slots_room);
    if (o->decode_prefill_budget > 0)
        fprintf(out, "  %-26s %13s  at most %lld prompt tokens a step (rollout.prefill_tokens)\n",
                "", "", (long long)o->decode_prefill_budget);
    else
        fprintf(out, "  %-26s %13s  every slot's prompt in one step (rollout.prefill_tokens = 0)\n",
                "", "");
    if (p->kv_slots < 1) {
        fprintf(out, "  rollout: NOT ONE KV-cache slot fits: lower rollout.max_new_tokens or "
                     "data.max_prompt_tokens, or use separate rollout ranks\n");
        return;
    }
    if (o->decode_refill)
        fprintf(out, "  rollout: %lld responses a step through %lld slots, each refilled as its "
                     "response ends (rollout.schedule = refill)\n",
                (long long)o->decode_responses, (long long)p->kv_slots);
    else
        fprintf(out, "  rollout: %lld responses a step in %lld wave(s) of up to %lld "
                     "(rollout.schedule = waves; refill keeps every slot busy)\n",
                (long long)o->decode_responses, (long long)p->decode_waves,
                (long long)p->kv_slots);
}

void gpu_memory_plan_print(const gpu_memory_plan *p, const model_config *c,
                           const gpu_model_options *o, FILE *out)
{
    char note[128];
    fprintf(out, "GPU memory plan: %lld parameters, %s, recompute %s%s, max_tokens %lld\n",
            (long long)model_config_param_count(c), o->train ? "training" : "inference only",
            o->recompute ? "on" : "off", o->train && o->recompute_auto ? " (auto)" : "",
            (long long)o->max_tokens);
    plan_line(out, "weights (bf16)", p->weights_bf16, "2 bytes/parameter");
    if (o->train) {
        plan_line(out, "master weights (fp32)", p->master_fp32, "4 bytes/parameter");
        plan_line(out, "gradients (fp32)", p->grads_fp32, "4 bytes/parameter");
        plan_line(out, "AdamW m, v (fp32)", p->adam_fp32, "8 bytes/parameter");
    }
    snprintf(note, sizeof note, "%s, %lld tokens",
             !o->train      ? "one layer's stream"
             : o->recompute ? "each layer's input only"
                            : "every layer's tensors",
             (long long)o->max_tokens);
    plan_line(out, "saved activations", p->activations, note);
    plan_line(out, "layer scratch + gradients", p->layer_scratch,
              !o->train      ? "one layer's buffers"
              : o->recompute ? "one layer, recomputed in backward; gradients"
                             : "one layer's gradients");
    plan_line(out, "log-prob chunk", p->logprob_scratch, "fp32 logits (+ bf16 gradient)");
    plan_line(out, "workspaces", p->workspace, "cuBLASLt 32 MiB + attention backward");
    if (p->device_total > 0)
        fprintf(out, "  %-26s %9.3f GiB  of %.3f GiB free (%.3f GiB on the device): %s\n",
                "total", (double)p->total / GIB, (double)p->device_free / GIB,
                (double)p->device_total / GIB,
                p->total <= p->device_free ? "fits" : "DOES NOT FIT");
    else
        fprintf(out, "  %-26s %9.3f GiB  (device memory unknown)\n", "total",
                (double)p->total / GIB);
    plan_print_kv(p, o, out);
}
