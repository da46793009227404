/* The GPU model's benchmarks for tests/gpu/run.sh (not a test), on random
 * weights in the Qwen3-0.6B and Qwen3-4B shapes (bench_shapes.h). Prints
 * "ROW|<what>|<value>|<unit>|<note>" lines, which run.sh gathers into its
 * table; everything else is log. Every number is measured here.
 *
 *   bench_gpu_model train  0.6b|4b SEQS LEN [recompute 0|1]
 *       one RL learner update per repetition (zero grads, forward with
 *       log-probs and entropies, backward, grad norm, AdamW) on SEQS
 *       sequences of LEN tokens: tokens/s and MFU.
 *   bench_gpu_model decode 0.6b|4b BATCH...
 *       prefill BATCH prompts of 128 tokens, then 64 steps of sample +
 *       decode: tokens/s against the HBM-bandwidth bound.
 *
 * MFU counts the model FLOPs of the update, not the hardware's (no credit
 * for recomputation): 6 N_mm T for the products (N_mm: bench_matmul_params,
 * T tokens: 2 forward + 4 backward FLOPs per weight and token), plus causal
 * attention 6 L H d sum_i len_i^2 (forward QK^T and PV are 2 d len^2 / 2
 * each per head and layer; backward twice the forward), against the bf16
 * dense peak KPO_PEAK_TFLOPS (default 989, the H100/H200 SXM datasheet). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_shapes.h"
#include "model/cuda/cuda_probe.h"
#include "bench_util.h"
#include "kpo_config.h"
#include "model/model.h"
#include "model/model_batch.h"
#include "model/model_cuda.h"

#if KPO_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

static int fail(const char *what, const kpo_error *err)
{
    fprintf(stderr, "bench_gpu_model: %s: %s\n", what, err->message);
    return 1;
}

/* splitmix64: a cheap, seekable generator, so billions of weights fill in
 * parallel in a fraction of a second, the same however many threads. */
static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Matrices uniform with std 0.02 (a trained model's scale), norm gains 1. */
static void fill_random(model *m)
{
    const float a = 0.02f * sqrtf(3.0f);
    for (size_t p = 0; p < m->n_params_table; p++) {
        const model_param *mp = &m->params[p];
        float *w = m->weights.data + mp->offset;
        if (mp->is_norm) {
            for (int64_t i = 0; i < mp->numel; i++)
                w[i] = 1.0f;
            continue;
        }
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < mp->numel; i++) {
            uint64_t r = splitmix64(((uint64_t)p << 40) ^ (uint64_t)i);
            w[i] = a * (2.0f * (float)((double)(r >> 11) * 0x1.0p-53) - 1.0f);
        }
    }
}

static int make_model(const char *shape, model *m)
{
    model_config c;
    kpo_error err;
    if (bench_shape_config(shape, &c) != 0) {
        fprintf(stderr, "bench_gpu_model: unknown shape '%s' (0.6b or 4b)\n", shape);
        return 1;
    }
    if (model_init(m, &c, &err) != KPO_OK)
        return fail("model_init", &err);
    fill_random(m);
    return 0;
}

#if KPO_HAVE_CUDA
/* One timed learner update; returns seconds or a negative value on error. */
static double train_update(gpu_model *g, const model_batch *batch, const int32_t *targets,
                           float *logp, float *entropy, const float *dlogp, kpo_error *err)
{
    double t0 = now_seconds(), norm;
    if (gpu_model_zero_grads(g, err) != KPO_OK ||
        gpu_model_forward(g, batch, targets, logp, entropy, err) != KPO_OK ||
        gpu_model_backward(g, dlogp, NULL, err) != KPO_OK ||
        gpu_model_grad_norm(g, &norm, err) != KPO_OK ||
        gpu_model_adamw_step(g, &norm, err) != KPO_OK || cudaDeviceSynchronize() != cudaSuccess)
        return -1.0;
    return now_seconds() - t0;
}

static int bench_train(const char *shape, int64_t seqs, int64_t len, int recompute)
{
    model m;
    if (make_model(shape, &m))
        return 1;
    const int64_t T = seqs * len, V = m.config.vocab_size;
    int32_t *tokens = malloc((size_t)T * sizeof *tokens), *targets = malloc((size_t)T * sizeof *targets);
    int64_t *offsets = malloc((size_t)(seqs + 1) * sizeof *offsets);
    float *logp = malloc((size_t)T * sizeof *logp), *entropy = malloc((size_t)T * sizeof *entropy);
    float *dlogp = malloc((size_t)T * sizeof *dlogp);
    if (!tokens || !targets || !offsets || !logp || !entropy || !dlogp) {
        fprintf(stderr, "bench_gpu_model: out of host memory\n");
        return 1;
    }
    for (int64_t t = 0; t < T; t++)
        tokens[t] = (int32_t)(splitmix64((uint64_t)t) % (uint64_t)V);
    for (int64_t i = 0; i <= seqs; i++)
        offsets[i] = i * len;
    model_batch batch = {tokens, T, offsets, seqs};
    model_batch_next_targets(&batch, targets);
    for (int64_t t = 0; t < T; t++)
        dlogp[t] = targets[t] >= 0 ? 1.0f / (float)T : 0.0f;

    gpu_model_options o = {.train = true, .recompute = recompute != 0, .max_tokens = T,
                           .logprob_chunk = 0, .optim = adamw_config_default()};
    gpu_model *g;
    kpo_error err;
    double t_up = now_seconds();
    if (gpu_model_create(&g, &m, &o, &err) != KPO_OK)
        return fail("gpu_model_create", &err);
    t_up = now_seconds() - t_up;
    gpu_memory_plan_print(gpu_model_memory_plan(g), &m.config, &o, stdout);
    printf("create + upload of %lld parameters: %.2f s\n",
           (long long)model_config_param_count(&m.config), t_up);

    double best = INFINITY;
    for (int rep = 0; rep < 4; rep++) { /* the first warms plans and allocations up */
        double t = train_update(g, &batch, targets, logp, entropy, dlogp, &err);
        if (t < 0)
            return fail("train update", &err);
        printf("update %d: %.3f s\n", rep, t);
        best = rep > 0 && t < best ? t : best;
    }
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);

    const model_config *c = &m.config;
    double flops = 6.0 * (double)bench_matmul_params(c) * (double)T +
                   6.0 * (double)c->num_hidden_layers * (double)(c->num_attention_heads * c->head_dim) *
                       (double)seqs * (double)len * (double)len;
    const char *peak_env = getenv("KPO_PEAK_TFLOPS");
    double peak = peak_env ? atof(peak_env) : 989.0;
    char what[128], note[160];
    snprintf(what, sizeof what, "train %s %lldx%lld%s", shape, (long long)seqs, (long long)len,
             recompute ? " recompute" : "");
    snprintf(note, sizeof note, "best of 3 updates (%.3f s); %.1f GiB of %.1f GiB in use",
             best, (double)(total_b - free_b) / 1073741824.0, (double)total_b / 1073741824.0);
    row(what, (double)T / best, "tokens/s", note);
    snprintf(what, sizeof what, "train %s %lldx%lld MFU", shape, (long long)seqs, (long long)len);
    snprintf(note, sizeof note, "%.1f TFLOP/s of model FLOPs vs %.0f peak", flops / best / 1e12,
             peak);
    row(what, 100.0 * flops / best / 1e12 / peak, "%", note);
    gpu_model_destroy(g);
    model_free(&m);
    free(tokens), free(targets), free(offsets), free(logp), free(entropy), free(dlogp);
    return 0;
}

/* Device memory bandwidth as a large device-to-device copy sees it (bytes
 * read + written per second): what the decode bound is measured against. */
static double copy_bandwidth(void)
{
    const size_t bytes = (size_t)2 << 30;
    void *a, *b;
    if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess)
        return NAN;
    cudaMemset(a, 0, bytes);
    double best = INFINITY;
    for (int rep = 0; rep < 5; rep++) {
        cudaDeviceSynchronize();
        double t0 = now_seconds();
        cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);
        cudaDeviceSynchronize();
        double t = now_seconds() - t0;
        best = rep > 0 && t < best ? t : best;
    }
    cudaFree(a);
    cudaFree(b);
    return 2.0 * (double)bytes / best;
}

static int bench_decode_batch(gpu_model *g, const char *shape, const model_config *c, int64_t batch,
                              double bw)
{
    enum { PROMPT = 128, STEPS = 64 };
    kpo_error err;
    if (gpu_model_kv_cache_init(g, batch, PROMPT + STEPS + 1, &err) != KPO_OK)
        return fail("kv cache", &err);
    int64_t *slots = malloc((size_t)batch * sizeof *slots), *n_new = malloc((size_t)batch * sizeof *n_new);
    int32_t *feed = malloc((size_t)(batch * PROMPT) * sizeof *feed);
    uint64_t *ids = malloc((size_t)batch * sizeof *ids), *draws = malloc((size_t)batch * sizeof *draws);
    if (!slots || !n_new || !feed || !ids || !draws) {
        fprintf(stderr, "bench_gpu_model: out of host memory\n");
        return 1;
    }
    for (int64_t i = 0; i < batch; i++) {
        slots[i] = i;
        n_new[i] = PROMPT;
        ids[i] = (uint64_t)i;
        draws[i] = 0;
    }
    for (int64_t t = 0; t < batch * PROMPT; t++)
        feed[t] = (int32_t)(splitmix64((uint64_t)t + 17) % (uint64_t)c->vocab_size);
    gpu_sample_request req = {.sampler = {1.0, 1.0}, .seed = 1, .drawable = c->vocab_size,
                              .stream_ids = ids, .draw_index = draws};
    if (gpu_model_decode_step(g, batch, slots, n_new, feed, NULL, &err) != KPO_OK)
        return fail("prefill", &err);
    cudaDeviceSynchronize();
    double t0 = now_seconds();
    for (int s = 0; s < STEPS; s++) {
        if (gpu_model_sample(g, &req, batch, feed, &err) != KPO_OK)
            return fail("sample", &err);
        for (int64_t i = 0; i < batch; i++) {
            n_new[i] = 1;
            draws[i]++;
        }
        if (gpu_model_decode_step(g, batch, slots, n_new, feed, NULL, &err) != KPO_OK)
            return fail("decode step", &err);
    }
    cudaDeviceSynchronize();
    double seconds = now_seconds() - t0;
    /* Per step every bf16 weight is read once (the tied embedding as the
     * head), and every slot's cached K and V (mean context over the run). */
    double weight_bytes = 2.0 * (double)model_config_param_count(c);
    double kv_bytes = (double)batch * (PROMPT + STEPS / 2.0) * (double)c->num_hidden_layers * 2.0 *
                      (double)(c->num_key_value_heads * c->head_dim) * 2.0;
    double bound = (double)batch * bw / (weight_bytes + kv_bytes);
    double rate = (double)(batch * STEPS) / seconds;
    char what[96], note[160];
    snprintf(what, sizeof what, "decode %s %lld seqs", shape, (long long)batch);
    snprintf(note, sizeof note, "%.0f%% of the HBM bound %.4g tok/s (%.2f GB/step at %.0f GB/s)",
             100.0 * rate / bound, bound, (weight_bytes + kv_bytes) / 1e9, bw / 1e9);
    row(what, rate, "tokens/s", note);
    gpu_model_kv_cache_free(g);
    free(slots), free(n_new), free(feed), free(ids), free(draws);
    return 0;
}

static int bench_decode(const char *shape, int argc, char **argv)
{
    model m;
    if (make_model(shape, &m))
        return 1;
    gpu_model_options o = {.train = false, .recompute = false, .max_tokens = 0,
                           .logprob_chunk = 0, .optim = adamw_config_default()};
    gpu_model *g;
    kpo_error err;
    if (gpu_model_create(&g, &m, &o, &err) != KPO_OK)
        return fail("gpu_model_create", &err);
    double bw = copy_bandwidth();
    char note[96];
    snprintf(note, sizeof note, "device-to-device copy, read + write, %s", shape);
    row("HBM copy bandwidth", bw / 1e9, "GB/s", note);
    int status = 0;
    for (int k = 0; k < argc && status == 0; k++)
        status = bench_decode_batch(g, shape, &m.config, atoll(argv[k]), bw);
    gpu_model_destroy(g);
    model_free(&m);
    return status;
}
#endif

int main(int argc, char **argv)
{
    const char *what = argc > 2 ? argv[1] : "";
#if KPO_HAVE_CUDA
    char why[512];
    if (what[0] && cuda_probe_devices(why, sizeof why) <= 0) {
        /* Before building a 16 GB host model for nothing. */
        fprintf(stderr, "bench_gpu_model: %s\n", why);
        return 1;
    }
    if (strcmp(what, "train") == 0 && argc >= 5)
        return bench_train(argv[2], atoll(argv[3]), atoll(argv[4]), argc > 5 ? atoi(argv[5]) : 1);
    if (strcmp(what, "decode") == 0 && argc >= 4)
        return bench_decode(argv[2], argc - 3, argv + 3);
#else
    (void)make_model;
    if (what[0]) {
        fprintf(stderr, "bench_gpu_model: built without CUDA\n");
        return 1;
    }
#endif
    fprintf(stderr, "usage: bench_gpu_model train 0.6b|4b SEQS LEN [recompute 0|1]\n"
                    "       bench_gpu_model decode 0.6b|4b BATCH...\n");
    return 2;
}
