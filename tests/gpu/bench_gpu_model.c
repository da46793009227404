/* The GPU model's benchmarks for tests/gpu/run.sh (not a test), on random
 * weights in the Qwen3-0.6B and Qwen3-4B shapes (bench_shapes.h). Prints
 * "ROW|<what>|<value>|<unit>|<note>" lines, which run.sh gathers into its
 * table; everything else is log. Every number is measured here.
 *
 *   bench_gpu_model train  0.6b|4b SEQS LEN [recompute 0|1] [--attention kernel|cudnn]
 *       one RL learner update per repetition (zero grads, forward with
 *       log-probs and entropies, backward, grad norm, AdamW) on SEQS
 *       sequences of LEN tokens: tokens/s and MFU. --attention sets
 *       gpu_model_options.attention (default kernel).
 *   bench_gpu_model decode 0.6b|4b [--attention block|split[,...]]
 *                          [--context N[,...]] [--graphs off|on[,...]] BATCH...
 *       for each decode attention (default block), CUDA graphs setting
 *       (model.decode_graphs, default off), context (default 128) and
 *       batch: BATCH sequences with N cached tokens, then 64 steps of
 *       sample + decode: tokens/s against the HBM-bandwidth bound. With
 *       graphs, two untimed decode steps first (the warm-up and the
 *       capture), so the timed ones replay the graph. Up to
 *       512 tokens the context is a real prefill; longer ones are written
 *       into the cache directly (a prefill that long through the decode
 *       kernels would take minutes; a step reads every cached row
 *       whatever its values). A batch whose cache does not fit the free
 *       memory is skipped with a message. Row names add " ctx N" when N is
 *       not 128, " split" for the split kernel and " graphs" with graphs,
 *       so the default rows keep the names the PyTorch reference joins on.
 *   bench_gpu_model prefill 0.6b|4b [--prefill decode|flash[,...]]
 *                           [--attention block|split] BATCHxLEN...
 *       for each prefill attention (default decode,flash) and size: one
 *       decode step bringing BATCH prompts of LEN tokens into empty slots
 *       (a rollout wave's first step; whole model, logits left on the
 *       device), best of 3 after a warm-up: tokens/s, and with both paths
 *       the flash speedup. --attention: the decode attention (default
 *       block) of the decode path. A size whose KV cache does not fit is
 *       skipped with a message.
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

/* Only to fill a long context's cache directly (fill_cache_directly). */
#include "model/cuda/model_cuda_internal.h"
#endif

/* The options either mode takes, anywhere after the mode; the rest are
 * positional. */
typedef struct bench_args {
    const char *attention; /* train: kernel|cudnn; decode: block|split[,...] */
    const char *context;   /* decode: N[,...] */
    const char *prefill;   /* prefill: decode|flash[,...] */
    const char *graphs;    /* decode: off|on[,...] */
    int n;                 /* positional arguments */
    char *pos[64];
} bench_args;

static int parse_args(int argc, char **argv, bench_args *a)
{
    a->attention = NULL, a->context = NULL, a->prefill = NULL, a->graphs = NULL, a->n = 0;
    for (int k = 0; k < argc; k++) {
        const char **opt = strcmp(argv[k], "--attention") == 0 ? &a->attention
                           : strcmp(argv[k], "--context") == 0 ? &a->context
                           : strcmp(argv[k], "--prefill") == 0 ? &a->prefill
                           : strcmp(argv[k], "--graphs") == 0  ? &a->graphs
                                                               : NULL;
        if (opt) {
            if (k + 1 >= argc)
                return 1;
            *opt = argv[++k];
        } else if (a->n < 64) {
            a->pos[a->n++] = argv[k];
        } else {
            return 1;
        }
    }
    return 0;
}

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

static int bench_train(const char *shape, int64_t seqs, int64_t len, int recompute,
                       const char *attention)
{
    const int cudnn = attention && strcmp(attention, "cudnn") == 0;
    if (attention && !cudnn && strcmp(attention, "kernel") != 0) {
        fprintf(stderr, "bench_gpu_model: --attention %s: kernel or cudnn\n", attention);
        return 2;
    }
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
                           .logprob_chunk = 0, .optim = adamw_config_default(),
                           .attention = cudnn ? GPU_ATTENTION_CUDNN : GPU_ATTENTION_KERNEL};
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
    snprintf(what, sizeof what, "train %s %lldx%lld%s%s", shape, (long long)seqs,
             (long long)len, recompute ? " recompute" : "", cudnn ? " cudnn" : "");
    snprintf(note, sizeof note, "best of 3 updates (%.3f s); %.1f GiB of %.1f GiB in use",
             best, (double)(total_b - free_b) / 1073741824.0, (double)total_b / 1073741824.0);
    row(what, (double)T / best, "tokens/s", note);
    snprintf(what, sizeof what, "train %s %lldx%lld%s MFU", shape, (long long)seqs,
             (long long)len, cudnn ? " cudnn" : "");
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

/* A long context without its prefill: every slot holds context - 1
 * positions of a constant small K and V (bf16 0x3c3c, ~0.0115: finite
 * scores, a flat softmax), as if prefilled; the first step adds one. */
static int fill_cache_directly(gpu_model *g, int64_t batch, int64_t cached)
{
    gpu_decode_state *d = &g->dec;
    const model_config *c = &g->shape.config;
    const size_t bytes = (size_t)c->num_hidden_layers * (size_t)d->n_slots * (size_t)d->max_len *
                         (size_t)(c->num_key_value_heads * c->head_dim) * sizeof(uint16_t);
    if (cudaMemset(d->k_cache, 0x3c, bytes) != cudaSuccess ||
        cudaMemset(d->v_cache, 0x3c, bytes) != cudaSuccess)
        return 1;
    for (int64_t i = 0; i < batch; i++)
        d->lengths[i] = cached;
    return 0;
}

/* Row name: the default (block, 128 cached tokens, no graphs) keeps the
 * name the PyTorch reference's rows join on. */
static void decode_row_name(char *what, size_t n, const char *shape, int64_t batch,
                            int64_t context, gpu_decode_attention_impl impl, bool graphs)
{
    char ctx[32] = "";
    if (context != 128)
        snprintf(ctx, sizeof ctx, " ctx %lld", (long long)context);
    snprintf(what, n, "decode %s %lld seqs%s%s%s", shape, (long long)batch, ctx,
             impl == GPU_DECODE_ATTENTION_SPLIT ? " split" : "", graphs ? " graphs" : "");
}

/* The untimed decode steps before the timed ones: with graphs the first
 * pure step runs directly (the warm-up), the second captures the graph. */
static int decode_untimed_steps(bool graphs) { return graphs ? 2 : 0; }

/* With graphs: how many were captured, or that they were given up (then
 * the row's steps, or some, ran directly). */
static void decode_graphs_note(const gpu_model *g, bool graphs, char *out, size_t n)
{
    if (!graphs)
        out[0] = 0;
    else if (g->opt.decode_graphs)
        snprintf(out, n, "; %lld graph(s) captured", (long long)g->dec.graph_captures);
    else
        snprintf(out, n, "; graphs FAILED (see stderr): ran directly");
}

/* One sample + pure decode step of the batch (draws advanced). */
static int decode_one_step(gpu_model *g, gpu_sample_request *req, int64_t batch,
                           const int64_t *slots, int64_t *n_new, uint64_t *draws, int32_t *feed)
{
    kpo_error err;
    if (gpu_model_sample(g, req, batch, feed, &err) != KPO_OK)
        return fail("sample", &err);
    for (int64_t i = 0; i < batch; i++) {
        n_new[i] = 1;
        draws[i]++;
    }
    if (gpu_model_decode_step(g, batch, slots, n_new, feed, NULL, &err) != KPO_OK)
        return fail("decode step", &err);
    return 0;
}

/* graphs: the model was made with decode_graphs (which a failed capture
 * turns off: the row keeps its name, its note says so). */
static int bench_decode_batch(gpu_model *g, const char *shape, const model_config *c, int64_t batch,
                              int64_t context, gpu_decode_attention_impl impl, bool graphs,
                              double bw)
{
    enum { STEPS = 64, REAL_PREFILL_MAX = 512 };
    kpo_error err;
    char what[128], note[320], graphs_note[96];
    decode_row_name(what, sizeof what, shape, batch, context, impl, graphs);
    const int real = context <= REAL_PREFILL_MAX;
    const int64_t max_len = context + STEPS + 1 + decode_untimed_steps(graphs);
    const int64_t fit = gpu_model_kv_slots_fit(g, batch, max_len, real ? context : 1, 0, 0);
    if (fit < batch) {
        printf("%s: skipped: %lld slots of %lld positions fit the free memory\n", what,
               (long long)fit, (long long)max_len);
        return 0;
    }
    if (gpu_model_kv_cache_init(g, batch, max_len, &err) != KPO_OK)
        return fail("kv cache", &err);
    const int64_t first = real ? context : 1; /* tokens of the untimed first step */
    int64_t *slots = malloc((size_t)batch * sizeof *slots), *n_new = malloc((size_t)batch * sizeof *n_new);
    int32_t *feed = malloc((size_t)(batch * first) * sizeof *feed);
    uint64_t *ids = malloc((size_t)batch * sizeof *ids), *draws = malloc((size_t)batch * sizeof *draws);
    if (!slots || !n_new || !feed || !ids || !draws) {
        fprintf(stderr, "bench_gpu_model: out of host memory\n");
        return 1;
    }
    for (int64_t i = 0; i < batch; i++) {
        slots[i] = i;
        n_new[i] = first;
        ids[i] = (uint64_t)i;
        draws[i] = 0;
    }
    for (int64_t t = 0; t < batch * first; t++)
        feed[t] = (int32_t)(splitmix64((uint64_t)t + 17) % (uint64_t)c->vocab_size);
    gpu_sample_request req = {.sampler = {1.0, 1.0}, .seed = 1, .drawable = c->vocab_size,
                              .stream_ids = ids, .draw_index = draws};
    if (!real && fill_cache_directly(g, batch, context - 1)) {
        fprintf(stderr, "bench_gpu_model: filling the cache failed\n");
        return 1;
    }
    if (gpu_model_decode_step(g, batch, slots, n_new, feed, NULL, &err) != KPO_OK)
        return fail("prefill", &err);
    for (int s = 0, untimed = decode_untimed_steps(graphs); s < untimed; s++)
        if (decode_one_step(g, &req, batch, slots, n_new, draws, feed))
            return 1;
    cudaDeviceSynchronize();
    double t0 = now_seconds();
    for (int s = 0; s < STEPS; s++)
        if (decode_one_step(g, &req, batch, slots, n_new, draws, feed))
            return 1;
    cudaDeviceSynchronize();
    double seconds = now_seconds() - t0;
    decode_graphs_note(g, graphs, graphs_note, sizeof graphs_note);
    /* Per step every bf16 weight is read once (the tied embedding as the
     * head), and every slot's cached K and V (mean context over the run). */
    double weight_bytes = 2.0 * (double)model_config_param_count(c);
    double kv_bytes = (double)batch * ((double)context + STEPS / 2.0) *
                      (double)c->num_hidden_layers * 2.0 *
                      (double)(c->num_key_value_heads * c->head_dim) * 2.0;
    double bound = (double)batch * bw / (weight_bytes + kv_bytes);
    double rate = (double)(batch * STEPS) / seconds;
    snprintf(note, sizeof note,
             "%.0f%% of the HBM bound %.4g tok/s (%.2f GB/step: %.2f weights + %.2f KV, at %.0f "
             "GB/s)%s%s",
             100.0 * rate / bound, bound, (weight_bytes + kv_bytes) / 1e9, weight_bytes / 1e9,
             kv_bytes / 1e9, bw / 1e9, real ? "" : "; context written into the cache directly",
             graphs_note);
    row(what, rate, "tokens/s", note);
    gpu_model_kv_cache_free(g);
    free(slots), free(n_new), free(feed), free(ids), free(draws);
    return 0;
}

/* "block" or "split"; -1 otherwise. */
static int decode_impl_parse(const char *name)
{
    if (strcmp(name, "block") == 0)
        return GPU_DECODE_ATTENTION_BLOCK;
    if (strcmp(name, "split") == 0)
        return GPU_DECODE_ATTENTION_SPLIT;
    return -1;
}

/* "off" (0) or "on" (1); -1 otherwise. */
static int graphs_parse(const char *name)
{
    return strcmp(name, "off") == 0 ? 0 : strcmp(name, "on") == 0 ? 1 : -1;
}

/* Every context x batch with one decode attention and graphs setting, on
 * a fresh GPU model. */
static int bench_decode_impl(const model *m, const char *shape, gpu_decode_attention_impl impl,
                             bool graphs, const char *contexts, int n_batch, char **batches,
                             double bw)
{
    gpu_model_options o = {.train = false, .recompute = false, .max_tokens = 0,
                           .logprob_chunk = 0, .optim = adamw_config_default(),
                           .decode_attention = impl, .decode_graphs = graphs};
    gpu_model *g;
    kpo_error err;
    if (gpu_model_create(&g, m, &o, &err) != KPO_OK)
        return fail("gpu_model_create", &err);
    char list[256];
    snprintf(list, sizeof list, "%s", contexts);
    int status = 0;
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok && status == 0;
         tok = strtok_r(NULL, ",", &save)) {
        const int64_t context = atoll(tok);
        if (context < 1) {
            fprintf(stderr, "bench_gpu_model: context '%s' is not a positive count\n", tok);
            status = 2;
        }
        for (int k = 0; k < n_batch && status == 0; k++)
            status = bench_decode_batch(g, shape, &m->config, atoll(batches[k]), context, impl,
                                        graphs, bw);
    }
    gpu_model_destroy(g);
    return status;
}

/* 1 when every comma-separated item of list parses (parse(item) >= 0);
 * else 0, naming the bad item after option. */
static int list_valid(const char *list, int (*parse)(const char *), const char *option,
                      const char *expected)
{
    char copy[256];
    snprintf(copy, sizeof copy, "%s", list);
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        if (parse(tok) < 0) {
            fprintf(stderr, "bench_gpu_model: %s %s: %s\n", option, tok, expected);
            return 0;
        }
    return 1;
}

/* Every graphs setting (off|on[,...]) of one decode attention. */
static int bench_decode_graphs(const model *m, const char *shape, gpu_decode_attention_impl impl,
                               const char *graphs, const char *contexts, int n_batch,
                               char **batches, double bw)
{
    char list[256];
    snprintf(list, sizeof list, "%s", graphs);
    int status = 0;
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok && status == 0;
         tok = strtok_r(NULL, ",", &save))
        status = bench_decode_impl(m, shape, impl, graphs_parse(tok) == 1, contexts, n_batch,
                                   batches, bw);
    return status;
}

static int bench_decode(const char *shape, const char *attentions, const char *contexts,
                        const char *graphs, int n_batch, char **batches)
{
    char list[256];
    if (!list_valid(attentions ? attentions : "block", decode_impl_parse, "--attention",
                    "block or split") ||
        !list_valid(graphs ? graphs : "off", graphs_parse, "--graphs", "off or on"))
        return 2;
    model m;
    if (make_model(shape, &m))
        return 1;
    double bw = copy_bandwidth();
    char note[96];
    snprintf(note, sizeof note, "device-to-device copy, read + write, %s", shape);
    row("HBM copy bandwidth", bw / 1e9, "GB/s", note);
    snprintf(list, sizeof list, "%s", attentions ? attentions : "block");
    int status = 0;
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok && status == 0;
         tok = strtok_r(NULL, ",", &save))
        status = bench_decode_graphs(&m, shape, (gpu_decode_attention_impl)decode_impl_parse(tok),
                                     graphs ? graphs : "off", contexts ? contexts : "128",
                                     n_batch, batches, bw);
    model_free(&m);
    return status;
}
/* The prefill mode's sizes: BATCH prompts of LEN tokens each. */
enum { PREFILL_MAX_SIZES = 16, PREFILL_REPS = 3 };
typedef struct prefill_size {
    int64_t batch, len;
} prefill_size;

/* "decode" or "flash"; -1 otherwise. */
static int prefill_impl_parse(const char *name)
{
    if (strcmp(name, "decode") == 0)
        return GPU_PREFILL_ATTENTION_DECODE;
    if (strcmp(name, "flash") == 0)
        return GPU_PREFILL_ATTENTION_FLASH;
    return -1;
}

/* One timed prefill step: z->batch prompts of z->len tokens into the
 * (reset, so empty) slots of g's cache. Seconds, negative on error. */
static double prefill_step(gpu_model *g, const prefill_size *z, const int64_t *slots,
                           const int64_t *n_new, const int32_t *feed, kpo_error *err)
{
    gpu_model_kv_cache_reset(g);
    const double t0 = now_seconds();
    /* No host logits: the step ends by synchronizing the stream. */
    if (gpu_model_decode_step(g, z->batch, slots, n_new, feed, NULL, err) != KPO_OK)
        return -1.0;
    return now_seconds() - t0;
}

/* The best of PREFILL_REPS prefill steps after a warm-up (which also
 * allocates the activations); negative on error. */
static double prefill_seconds(gpu_model *g, const model_config *c, const prefill_size *z,
                              kpo_error *err)
{
    int64_t *slots = malloc((size_t)z->batch * sizeof *slots);
    int64_t *n_new = malloc((size_t)z->batch * sizeof *n_new);
    int32_t *feed = malloc((size_t)(z->batch * z->len) * sizeof *feed);
    double best = INFINITY;
    if (!slots || !n_new || !feed) {
        error_set(err, "out of host memory");
        best = -1.0;
    } else {
        for (int64_t i = 0; i < z->batch; i++) {
            slots[i] = i;
            n_new[i] = z->len;
        }
        for (int64_t t = 0; t < z->batch * z->len; t++)
            feed[t] = (int32_t)(splitmix64((uint64_t)t + 29) % (uint64_t)c->vocab_size);
    }
    for (int rep = 0; best > 0 && rep <= PREFILL_REPS; rep++) {
        const double t = prefill_step(g, z, slots, n_new, feed, err);
        if (t >= 0)
            printf("prefill step %d: %.4f s\n", rep, t);
        if (t < 0 || (rep > 0 && t < best))
            best = t;
    }
    free(slots), free(n_new), free(feed);
    return best;
}

/* Every size through one prefill attention on a fresh GPU model: a row
 * each, tokens/s into rates[k] (0: skipped). */
static int bench_prefill_impl(const model *m, const char *shape, gpu_prefill_attention_impl impl,
                              gpu_decode_attention_impl att, int n_sizes, const prefill_size *sizes,
                              double *rates)
{
    gpu_model_options o = {.train = false, .recompute = false, .max_tokens = 0,
                           .logprob_chunk = 0, .optim = adamw_config_default(),
                           .decode_attention = att, .prefill_attention = impl};
    gpu_model *g;
    kpo_error err;
    if (gpu_model_create(&g, m, &o, &err) != KPO_OK)
        return fail("gpu_model_create", &err);
    for (int k = 0; k < n_sizes; k++) {
        const prefill_size *z = &sizes[k];
        char what[128], note[192];
        const int flash = impl == GPU_PREFILL_ATTENTION_FLASH;
        /* A pure prefill under flash never reaches the decode attention. */
        snprintf(what, sizeof what, "prefill %s %lldx%lld %s%s", shape, (long long)z->batch,
                 (long long)z->len, flash ? "flash" : "decode",
                 !flash && att == GPU_DECODE_ATTENTION_SPLIT ? " split" : "");
        rates[k] = 0;
        if (gpu_model_kv_cache_init(g, z->batch, z->len, &err) != KPO_OK) {
            printf("%s: skipped: %s\n", what, err.message);
            continue;
        }
        const double best = prefill_seconds(g, &m->config, z, &err);
        if (best < 0)
            return fail(what, &err);
        rates[k] = (double)(z->batch * z->len) / best;
        snprintf(note, sizeof note,
                 "best of %d steps (%.1f ms): %lld prompts of %lld tokens into empty slots, "
                 "whole model",
                 PREFILL_REPS, 1e3 * best, (long long)z->batch, (long long)z->len);
        row(what, rates[k], "tokens/s", note);
        gpu_model_kv_cache_free(g);
    }
    gpu_model_destroy(g);
    return 0;
}

/* sizes from "BATCHxLEN" arguments; the count, or -1 on a bad one. */
static int prefill_sizes_parse(int n, char **args, prefill_size *sizes)
{
    if (n < 1 || n > PREFILL_MAX_SIZES)
        return -1;
    for (int k = 0; k < n; k++) {
        long long b = 0, l = 0;
        char tail = 0;
        if (sscanf(args[k], "%lldx%lld%c", &b, &l, &tail) != 2 || b < 1 || l < 1) {
            fprintf(stderr, "bench_gpu_model: size '%s' is not BATCHxLEN\n", args[k]);
            return -1;
        }
        sizes[k] = (prefill_size){b, l};
    }
    return n;
}

static int bench_prefill(const char *shape, const char *impls, const char *attention, int n_args,
                         char **args)
{
    prefill_size sizes[PREFILL_MAX_SIZES];
    const int n_sizes = prefill_sizes_parse(n_args, args, sizes);
    const int att = decode_impl_parse(attention ? attention : "block");
    char list[256];
    snprintf(list, sizeof list, "%s", impls ? impls : "decode,flash");
    int n_impl = 0, impl[8];
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok && n_impl < 8;
         tok = strtok_r(NULL, ",", &save))
        if ((impl[n_impl++] = prefill_impl_parse(tok)) < 0) {
            fprintf(stderr, "bench_gpu_model: --prefill %s: decode or flash\n", tok);
            return 2;
        }
    if (n_sizes < 0 || att < 0) {
        fprintf(stderr, "bench_gpu_model: prefill: 1 to %d sizes BATCHxLEN, --attention "
                        "block|split\n", PREFILL_MAX_SIZES);
        return 2;
    }
    model m;
    if (make_model(shape, &m))
        return 1;
    /* rates[path][size], path decode or flash (the last run of each). */
    double rates[2][PREFILL_MAX_SIZES] = {{0}};
    int status = 0;
    for (int i = 0; i < n_impl && status == 0; i++)
        status = bench_prefill_impl(&m, shape, (gpu_prefill_attention_impl)impl[i],
                                    (gpu_decode_attention_impl)att, n_sizes, sizes,
                                    rates[impl[i]]);
    for (int k = 0; status == 0 && k < n_sizes; k++) {
        const double dec = rates[GPU_PREFILL_ATTENTION_DECODE][k];
        const double flash = rates[GPU_PREFILL_ATTENTION_FLASH][k];
        if (dec <= 0 || flash <= 0)
            continue;
        char what[128], note[96];
        snprintf(what, sizeof what, "prefill %s %lldx%lld flash speedup", shape,
                 (long long)sizes[k].batch, (long long)sizes[k].len);
        snprintf(note, sizeof note, "tokens/s of flash over decode (%s decode attention)",
                 att == GPU_DECODE_ATTENTION_SPLIT ? "split" : "block");
        row(what, flash / dec, "x", note);
    }
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
    bench_args a;
    if (argc > 2 && parse_args(argc - 2, argv + 2, &a) == 0) {
        if (strcmp(what, "train") == 0 && a.n >= 3)
            return bench_train(a.pos[0], atoll(a.pos[1]), atoll(a.pos[2]),
                               a.n > 3 ? atoi(a.pos[3]) : 1, a.attention);
        if (strcmp(what, "decode") == 0 && a.n >= 2)
            return bench_decode(a.pos[0], a.attention, a.context, a.graphs, a.n - 1, a.pos + 1);
        if (strcmp(what, "prefill") == 0 && a.n >= 2)
            return bench_prefill(a.pos[0], a.prefill, a.attention, a.n - 1, a.pos + 1);
    }
#else
    (void)make_model;
    (void)parse_args;
    if (what[0]) {
        fprintf(stderr, "bench_gpu_model: built without CUDA\n");
        return 1;
    }
#endif
    fprintf(stderr, "usage: bench_gpu_model train 0.6b|4b SEQS LEN [recompute 0|1] "
                    "[--attention kernel|cudnn]\n"
                    "       bench_gpu_model decode 0.6b|4b [--attention block|split[,...]] "
                    "[--context N[,...]] [--graphs off|on[,...]] BATCH...\n"
                    "       bench_gpu_model prefill 0.6b|4b [--prefill decode|flash[,...]] "
                    "[--attention block|split] BATCHxLEN...\n");
    return 2;
}
