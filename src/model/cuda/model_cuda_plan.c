/* The GPU model's memory plan (model_cuda.h): what its buffers will take,
 * computed from the config and options alone, so it is printed (and
 * tested) without a GPU. Activations come from the arena layout the
 * allocator itself uses (cuda/model_cuda_acts.c). The two workspaces are
 * estimates here; gpu_model_create replaces them with the kernels' own
 * answers before comparing with the device's free memory. */
#include "model/cuda/model_cuda_acts.h"
#include "model/model_cuda.h"

static const double GIB = 1024.0 * 1024.0 * 1024.0;

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
    p.total = p.weights_bf16 + p.master_fp32 + p.grads_fp32 + p.adam_fp32 + p.activations +
              p.layer_scratch + p.logprob_scratch + p.workspace;
    return p;
}

static void plan_line(FILE *out, const char *what, size_t bytes, const char *note)
{
    fprintf(out, "  %-26s %9.3f GiB  %s\n", what, (double)bytes / GIB, note);
}

void gpu_memory_plan_print(const gpu_memory_plan *p, const model_config *c,
                           const gpu_model_options *o, FILE *out)
{
    char note[128];
    fprintf(out, "GPU memory plan: %lld parameters, %s, recompute %s, max_tokens %lld\n",
            (long long)model_config_param_count(c), o->train ? "training" : "inference only",
            o->recompute ? "on" : "off", (long long)o->max_tokens);
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
}
