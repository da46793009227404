/* The whole GPU model against the CPU model (its oracle), on tiny random
 * Qwen3 shapes: tied with GQA 1, untied with GQA 4, tied with GQA 2 and
 * head_dim != hidden / heads (3 layers). Both start from the same weights,
 * rounded to bf16 first so the GPU's bf16 copy holds them exactly and only
 * the activations' roundings differ. Checked: log-probs and entropies of a
 * packed batch of 3 ragged sequences; every parameter's gradient; recompute
 * on vs off bit-identical; KV-cache decode (prefill + steps) vs the
 * forward's log-probs; the split-KV decode attention against the block
 * kernel at contexts long enough to split (logits and greedy tokens);
 * fresh prompts through the flash kernel (prefill_attention = flash)
 * against the decode attention and the CPU's decode, in pure and mixed
 * steps (logits, log-probs, greedy tokens); decode steps replayed as CUDA graphs
 * (model.decode_graphs) against the same steps run directly, bit for bit; one AdamW step vs
 * the CPU step; weight upload and download exact; the memory plan prints.
 *
 * Tolerance rule, per tensor: max_i |gpu_i - cpu_i| <= tol_max * max_i
 * |cpu_i| and ||gpu - cpu||_2 <= tol_rms ||cpu||_2. Why relative to the
 * tensor's scale rather than per element: bf16 keeps 8 significant bits
 * (2^-9 relative per rounding) and the GPU path rounds every activation
 * (about ten roundings per layer, feeding each other), so each output
 * carries an error of ~1% of its tensor's typical magnitude, and an element
 * that cancels to near zero has no relative precision at all. A wrong
 * operation, a missing term or a layout slip gives errors of the order of
 * the values themselves. Outputs (log-probs, entropies): 2% max, 2% rms;
 * gradients (one more pass of bf16 roundings backward): 10% max, 5% rms.
 * The worst element of each tensor is printed. Skips without a GPU. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cuda_runtime_api.h>

#include "core/rng.h"
#include "gpu_skip.h"
#include "gpu_test_util.h"
#include "model/cpu/model_compute.h"
#include "model/cuda/attention_cudnn.h"
#include "model/cuda/model_cuda_internal.h" /* the decode graphs' counters and test switch */
#include "model/model_cuda.h"
#include "model/optimizer_adamw.h"
#include "model/safetensors.h"

enum { OUT_TOL_PCT = 2, OUT_RMS_PCT = 2, GRAD_TOL_PCT = 10, GRAD_RMS_PCT = 5 };

typedef struct variant {
    const char *name;
    int tied;
    int64_t hidden, inter, heads, kv_heads, head_dim, layers, vocab;
} variant;

/* head_dim is a multiple of 16: what the attention kernels support. */
static const variant VARIANTS[] = {
    {"tied, GQA 1", 1, 64, 96, 4, 4, 16, 2, 304},
    {"untied, GQA 4", 0, 64, 112, 8, 2, 16, 2, 264},
    {"tied, GQA 2, head_dim 32 != 48/4", 1, 48, 80, 4, 2, 32, 3, 312},
};

/* 3 ragged sequences: one longer than an attention tile (64), one of a
 * single token. */
static const int64_t SEQ_LENS[] = {70, 1, 29};
#define N_SEQS 3
#define N_TOKENS 100

typedef struct fixture {
    model m;
    int32_t tokens[N_TOKENS];
    int64_t offsets[N_SEQS + 1];
    int32_t targets[N_TOKENS];
    float dlogp[N_TOKENS], dentropy[N_TOKENS];
    float logp[N_TOKENS], entropy[N_TOKENS]; /* CPU */
    model_weights grads;                     /* CPU */
} fixture;

static model_batch fixture_batch(const fixture *f)
{
    model_batch b = {f->tokens, N_TOKENS, f->offsets, N_SEQS};
    return b;
}

static float bf16_round(float x) { return safetensors_bf16_to_f32(safetensors_f32_to_bf16(x)); }

/* Random weights (norm gains perturbed so their gradients are not
 * trivial), every one rounded to bf16; a batch, targets (the first tokens
 * of sequence 0 have none, as a prompt) and the objective's weights; the
 * CPU's forward, log-probs and gradients. */
static void fixture_init(fixture *f, const variant *v, uint64_t seed)
{
    model_config c = {.vocab_size = v->vocab, .hidden_size = v->hidden,
                      .intermediate_size = v->inter, .num_hidden_layers = v->layers,
                      .num_attention_heads = v->heads, .num_key_value_heads = v->kv_heads,
                      .head_dim = v->head_dim, .max_position_embeddings = 256,
                      .rope_theta = 10000.0, .rms_norm_eps = 1e-6,
                      .tie_word_embeddings = v->tied};
    CHECK_OK(model_init(&f->m, &c, ERR));
    model_init_random(&f->m, seed, 0.3);
    rng_stream rng;
    rng_stream_init(&rng, seed, 999);
    for (size_t k = 0; k < f->m.n_params_table; k++)
        if (f->m.params[k].is_norm)
            for (int64_t i = 0; i < f->m.params[k].numel; i++)
                f->m.weights.data[f->m.params[k].offset + i] += (float)(0.2 * rng_normal(&rng));
    for (int64_t i = 0; i < f->m.weights.n_params; i++)
        f->m.weights.data[i] = bf16_round(f->m.weights.data[i]);

    f->offsets[0] = 0;
    for (int s = 0; s < N_SEQS; s++)
        f->offsets[s + 1] = f->offsets[s] + SEQ_LENS[s];
    assert_int_equal(f->offsets[N_SEQS], N_TOKENS);
    for (int t = 0; t < N_TOKENS; t++)
        f->tokens[t] = (int32_t)(rng_uniform(&rng) * (double)v->vocab) % (int32_t)v->vocab;
    model_batch b = fixture_batch(f);
    model_batch_next_targets(&b, f->targets);
    for (int t = 0; t < 5; t++)
        f->targets[t] = -1;
    for (int t = 0; t < N_TOKENS; t++) {
        f->dlogp[t] = (float)rng_normal(&rng);
        f->dentropy[t] = (float)(0.5 * rng_normal(&rng));
    }

    model_acts acts;
    CHECK_OK(model_acts_init(&acts, &f->m, N_TOKENS, ERR));
    CHECK_OK(model_forward_train(&f->m, &b, &acts, ERR));
    model_logprobs(&f->m, &acts, f->targets, f->logp, f->entropy);
    CHECK_OK(model_weights_init(&f->m, &f->grads, ERR));
    CHECK_OK(model_backward(&f->m, &acts, f->targets, f->dlogp, f->dentropy, &f->grads, ERR));
    model_acts_free(&acts);
}

static void fixture_free(fixture *f)
{
    model_weights_free(&f->grads);
    model_free(&f->m);
}

/* The rule in the header comment; prints the worst element. Returns 1
 * when within tolerance. */
static int compare(const char *what, const float *gpu, const float *cpu, int64_t n,
                   double tol_max, double tol_rms)
{
    double scale = 0, worst = 0, diff2 = 0, ref2 = 0;
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(cpu[i]));
    for (int64_t i = 0; i < n; i++) {
        const double e = fabs((double)gpu[i] - cpu[i]);
        diff2 += e * e;
        ref2 += (double)cpu[i] * cpu[i];
        if (!(e <= worst)) { /* NaN counts as worst */
            worst = isnan(e) ? INFINITY : e;
            at = i;
        }
    }
    const double rel_max = scale > 0 ? worst / scale : worst;
    const double rel_rms = ref2 > 0 ? sqrt(diff2 / ref2) : sqrt(diff2);
    const int ok = rel_max <= tol_max && rel_rms <= tol_rms;
    print_message("  %-52s n=%-6lld max|cpu| %-9.3g worst [%lld] gpu %-10.6g cpu %-10.6g: "
                  "%.2e of scale, rms %.2e%s\n",
                  what, (long long)n, scale, (long long)at, n ? gpu[at] : 0.0,
                  n ? cpu[at] : 0.0, rel_max, rel_rms, ok ? "" : "  <-- OUTSIDE TOLERANCE");
    return ok;
}

static gpu_model_options options(int train, int recompute)
{
    gpu_model_options o = {.train = train, .recompute = recompute, .max_tokens = N_TOKENS,
                           .logprob_chunk = 32, .optim = adamw_config_default()};
    o.optim.lr = 1e-3; /* a visible step */
    return o;
}

/* GPU forward + backward; logp, entropy [N_TOKENS], grads (model layout). */
static void gpu_train_pass(const fixture *f, gpu_model *g, float *logp, float *entropy,
                           model_weights *grads)
{
    model_batch b = fixture_batch(f);
    CHECK_OK(gpu_model_zero_grads(g, ERR));
    CHECK_OK(gpu_model_forward(g, &b, f->targets, logp, entropy, ERR));
    CHECK_OK(gpu_model_backward(g, f->dlogp, f->dentropy, ERR));
    CHECK_OK(gpu_model_grads_download(g, grads, ERR));
}

static void check_train(const variant *v, fixture *f)
{
    print_message("%s: forward/backward vs CPU\n", v->name);
    float logp[2][N_TOKENS], entropy[2][N_TOKENS];
    model_weights grads[2];
    for (int recompute = 0; recompute <= 1; recompute++) {
        gpu_model *g;
        const gpu_model_options o = options(1, recompute);
        CHECK_OK(gpu_model_create(&g, &f->m, &o, ERR));
        CHECK_OK(model_weights_init(&f->m, &grads[recompute], ERR));
        gpu_train_pass(f, g, logp[recompute], entropy[recompute], &grads[recompute]);
        gpu_model_destroy(g);
    }
    int ok = 1;
    ok &= compare("log-probs", logp[0], f->logp, N_TOKENS, OUT_TOL_PCT / 100.0,
                  OUT_RMS_PCT / 100.0);
    ok &= compare("entropies", entropy[0], f->entropy, N_TOKENS, OUT_TOL_PCT / 100.0,
                  OUT_RMS_PCT / 100.0);
    for (int t = 0; t < N_TOKENS; t++)
        if (f->targets[t] < 0 && (logp[0][t] != 0 || entropy[0][t] != 0))
            fail_msg("token %d has no target but log-prob %g entropy %g", t, logp[0][t],
                     entropy[0][t]);
    for (size_t k = 0; k < f->m.n_params_table; k++) {
        const model_param *p = &f->m.params[k];
        ok &= compare(p->name, grads[0].data + p->offset, f->grads.data + p->offset, p->numel,
                      GRAD_TOL_PCT / 100.0, GRAD_RMS_PCT / 100.0);
    }
    /* Recompute re-runs the same kernels on the same inputs. */
    const int same = memcmp(logp[0], logp[1], sizeof logp[0]) == 0 &&
                     memcmp(entropy[0], entropy[1], sizeof entropy[0]) == 0 &&
                     memcmp(grads[0].data, grads[1].data,
                            (size_t)grads[0].n_params * sizeof(float)) == 0;
    print_message("  recompute on vs off: %s\n", same ? "bit-identical" : "DIFFERENT");
    model_weights_free(&grads[0]);
    model_weights_free(&grads[1]);
    if (!ok)
        fail_msg("%s: GPU outside tolerance (see above)", v->name);
    if (!same)
        fail_msg("%s: recompute changed the results", v->name);
}

/* model.attention = cudnn: the whole model's log-probs, entropies and
 * every gradient against the CPU, with the same tolerances as the kernel
 * (cuDNN's backward sums dQ with atomics: not bit-repeatable, so only
 * tolerances). Where cuDNN cannot run here (missing, too old, no engine)
 * the model falls back to the kernel and says why on stderr: then this
 * says so and checks nothing new, and fails if the library itself was
 * usable (the model's graphs were refused). */
static void check_train_cudnn(const variant *v, fixture *f)
{
    print_message("%s: forward/backward with cuDNN's attention vs CPU\n", v->name);
    float logp[N_TOKENS], entropy[N_TOKENS];
    model_weights grads;
    gpu_model_options o = options(1, 0);
    o.attention = GPU_ATTENTION_CUDNN;
    gpu_model *g;
    CHECK_OK(gpu_model_create(&g, &f->m, &o, ERR));
    CHECK_OK(model_weights_init(&f->m, &grads, ERR));
    gpu_train_pass(f, g, logp, entropy, &grads);
    const int used = g->opt.attention == GPU_ATTENTION_CUDNN;
    gpu_model_destroy(g);
    if (!used) {
        model_weights_free(&grads);
        /* Nothing to compare; but a library that loads and opens a handle
         * here and still fell back means the model's graphs were refused:
         * that fails, so a run cannot pass this check vacuously. */
        attention_cudnn *probe = NULL;
        kpo_error why;
        if (attention_cudnn_create(&probe, &why) == KPO_OK) {
            attention_cudnn_destroy(probe);
            fail_msg("%s: cuDNN is usable here but the model fell back to the kernel (its "
                     "reason is on stderr)", v->name);
        }
        print_message("  cuDNN cannot run here (%s): the model fell back to the kernel, "
                      "nothing checked\n", why.message);
        return;
    }
    int ok = compare("log-probs", logp, f->logp, N_TOKENS, OUT_TOL_PCT / 100.0,
                     OUT_RMS_PCT / 100.0);
    ok &= compare("entropies", entropy, f->entropy, N_TOKENS, OUT_TOL_PCT / 100.0,
                  OUT_RMS_PCT / 100.0);
    for (size_t k = 0; k < f->m.n_params_table; k++) {
        const model_param *p = &f->m.params[k];
        ok &= compare(p->name, grads.data + p->offset, f->grads.data + p->offset, p->numel,
                      GRAD_TOL_PCT / 100.0, GRAD_RMS_PCT / 100.0);
    }
    model_weights_free(&grads);
    if (!ok)
        fail_msg("%s: GPU with cuDNN's attention outside tolerance (see above)", v->name);
}

/* log p(token | row's logits), in double. */
static float log_softmax_at(const float *z, int64_t V, int32_t token)
{
    double mx = -INFINITY, sum = 0;
    for (int64_t j = 0; j < V; j++)
        mx = fmax(mx, z[j]);
    for (int64_t j = 0; j < V; j++)
        sum += exp((double)z[j] - mx);
    return (float)((double)z[token] - mx - log(sum));
}

/* Prefill each sequence's first tokens into a shuffled set of slots, then
 * single-token steps: each step's logits at the next token give the
 * forward's log-prob of that position. */
static void check_decode(const variant *v, fixture *f)
{
    print_message("%s: decode vs forward\n", v->name);
    gpu_model *g;
    const gpu_model_options o = options(0, 0);
    CHECK_OK(gpu_model_create(&g, &f->m, &o, ERR));
    CHECK_OK(gpu_model_kv_cache_init(g, 4, 128, ERR));
    const int64_t V = v->vocab, slots[N_SEQS] = {2, 0, 3};
    const int64_t prefill[N_SEQS] = {40, 1, 9}; /* then steps to each sequence's end */
    float *logits = malloc((size_t)(N_SEQS * V) * sizeof *logits);
    float got[N_TOKENS], want[N_TOKENS];
    int64_t n = 0, done[N_SEQS], fed = 0;
    int32_t step_tokens[N_TOKENS];
    for (int s = 0; s < N_SEQS; s++)
        for (int64_t j = 0; j < prefill[s]; j++)
            step_tokens[fed++] = f->tokens[f->offsets[s] + j];
    CHECK_OK(gpu_model_decode_step(g, N_SEQS, slots, prefill, step_tokens, logits, ERR));
    for (int s = 0; s < N_SEQS; s++) {
        done[s] = prefill[s];
        const int64_t t = f->offsets[s] + done[s] - 1; /* the last token fed */
        if (f->targets[t] >= 0) {
            got[n] = log_softmax_at(logits + s * V, V, f->targets[t]);
            want[n++] = f->logp[t];
        }
    }
    for (;;) {
        int64_t live_slots[N_SEQS], ones[N_SEQS], live = 0;
        int32_t next[N_SEQS];
        int which[N_SEQS];
        for (int s = 0; s < N_SEQS; s++)
            if (done[s] < SEQ_LENS[s]) {
                which[live] = s;
                live_slots[live] = slots[s];
                ones[live] = 1;
                next[live++] = f->tokens[f->offsets[s] + done[s]];
            }
        if (live == 0)
            break;
        /* Row r of the step's logits belongs to live sequence which[r]. */
        CHECK_OK(gpu_model_decode_step(g, live, live_slots, ones, next, logits, ERR));
        for (int64_t r = 0; r < live; r++) {
            const int s = which[r];
            done[s]++;
            const int64_t t = f->offsets[s] + done[s] - 1;
            if (f->targets[t] >= 0) {
                got[n] = log_softmax_at(logits + r * V, V, f->targets[t]);
                want[n++] = f->logp[t];
            }
        }
    }
    /* Greedy sampling from the last step's logits (one live sequence left:
     * sequence 0, in logits row 0) is its argmax, lowest id on ties. */
    {
        const uint64_t ids[1] = {7}, draws[1] = {0};
        gpu_sample_request req = {.sampler = {.temperature = 0, .top_p = 1}, .seed = 1,
                                  .drawable = V, .stream_ids = ids, .draw_index = draws};
        int32_t token = -1, best = 0;
        CHECK_OK(gpu_model_sample(g, &req, 1, &token, ERR));
        for (int64_t j = 1; j < V; j++)
            if (logits[j] > logits[best])
                best = (int32_t)j;
        print_message("  greedy sample %d, argmax %d\n", token, best);
        assert_int_equal(token, best);
    }
    free(logits);
    const int ok = compare("decode log p(next) vs CPU forward", got, want, n,
                           OUT_TOL_PCT / 100.0, OUT_RMS_PCT / 100.0);

    /* Argument checks name what is wrong, as model_decode_step does. */
    kpo_error err;
    const int64_t bad_slot[1] = {4}, dup[2] = {1, 1}, one[2] = {1, 1}, too_many[1] = {200};
    const int32_t tok[2] = {1, 2}, bad_tok[1] = {(int32_t)V};
    const int64_t slot1[1] = {1};
    assert_int_equal(gpu_model_decode_step(g, 1, bad_slot, one, tok, NULL, &err), KPO_ERR);
    assert_non_null(strstr(err.message, "out of range"));
    assert_int_equal(gpu_model_decode_step(g, 2, dup, one, tok, NULL, &err), KPO_ERR);
    assert_non_null(strstr(err.message, "appears twice"));
    assert_int_equal(gpu_model_decode_step(g, 1, slot1, too_many, tok, NULL, &err), KPO_ERR);
    assert_non_null(strstr(err.message, "exceed the cache length"));
    assert_int_equal(gpu_model_decode_step(g, 1, slot1, one, bad_tok, NULL, &err), KPO_ERR);
    assert_non_null(strstr(err.message, "token id"));
    gpu_model_kv_cache_free(g);
    gpu_model_destroy(g);
    if (!ok)
        fail_msg("%s: decode outside tolerance", v->name);
}

/* Row r's argmax of logits [rows, V] (lowest id on ties). */
static int32_t argmax_row(const float *logits, int64_t V, int64_t r)
{
    int32_t best = 0;
    for (int64_t j = 1; j < V; j++)
        if (logits[r * V + j] > logits[r * V + best])
            best = (int32_t)j;
    return best;
}

/* The split decode attention (decode_attention = split) against the block
 * kernel through the whole model: a prefill of 500 and 300 tokens (one
 * split per query: the direct path), then greedy steps fed the block
 * model's tokens, whose contexts (~300-500 over 64-key splits) use several
 * splits and the combine. Each step's logits within the output tolerance
 * of the block's; the greedy token equal wherever the block's top two
 * logits are further apart than that tolerance (closer, bf16 noise may
 * decide either way, and the gap is printed). */
static void check_decode_split_vs_block(const variant *v, fixture *f)
{
    enum { SEQS = 2, STEPS = 6, MAX_LEN = 512 };
    print_message("%s: split decode attention vs block\n", v->name);
    const int64_t V = v->vocab, slots[SEQS] = {2, 0}, prompt[SEQS] = {500, 300};
    const int64_t ones[SEQS] = {1, 1};
    gpu_model *g[2];
    float *logits[2];
    for (int k = 0; k < 2; k++) {
        gpu_model_options o = options(0, 0);
        o.decode_attention = k ? GPU_DECODE_ATTENTION_SPLIT : GPU_DECODE_ATTENTION_BLOCK;
        CHECK_OK(gpu_model_create(&g[k], &f->m, &o, ERR));
        CHECK_OK(gpu_model_kv_cache_init(g[k], SEQS + 1, MAX_LEN, ERR));
        logits[k] = malloc((size_t)(SEQS * V) * sizeof *logits[k]);
    }
    int32_t *feed = malloc((size_t)(prompt[0] + prompt[1]) * sizeof *feed);
    for (int64_t t = 0; t < prompt[0] + prompt[1]; t++)
        feed[t] = (int32_t)((t * 7919 + 13) % V);
    int ok = 1;
    for (int step = 0; step <= STEPS; step++) {
        for (int k = 0; k < 2; k++)
            CHECK_OK(gpu_model_decode_step(g[k], SEQS, slots, step ? ones : prompt, feed,
                                           logits[k], ERR));
        char what[64];
        snprintf(what, sizeof what, "step %d logits, split vs block", step);
        ok &= compare(what, logits[1], logits[0], SEQS * V, OUT_TOL_PCT / 100.0,
                      OUT_RMS_PCT / 100.0);
        double scale = 0;
        for (int64_t j = 0; j < SEQS * V; j++)
            scale = fmax(scale, fabs(logits[0][j]));
        for (int64_t r = 0; r < SEQS; r++) {
            const int32_t b = argmax_row(logits[0], V, r), sp = argmax_row(logits[1], V, r);
            const double gap = logits[0][r * V + b] - logits[0][r * V + sp];
            if (sp != b)
                print_message("  step %d row %lld: greedy %d (split) vs %d (block), block gap "
                              "%.3g of max|logit| %.3g\n",
                              step, (long long)r, sp, b, gap, scale);
            ok &= sp == b || gap <= OUT_TOL_PCT / 100.0 * scale;
            feed[r] = b; /* both models are fed the block model's greedy tokens */
        }
    }
    for (int k = 0; k < 2; k++) {
        gpu_model_kv_cache_free(g[k]);
        gpu_model_destroy(g[k]);
        free(logits[k]);
    }
    free(feed);
    if (!ok)
        fail_msg("%s: split decode attention differs from block", v->name);
}

/* The steps of check_prefill_flash: (slot, new tokens) per sequence, in
 * this order; a slot's first step brings its prompt. Flash takes the
 * leading run of fresh prompts (src/model/cuda/decode_step_plan.h). */
enum { FLASH_SLOTS = 9, FLASH_MAX_LEN = 512, FLASH_FEED_MAX = 512 };
typedef struct flash_step {
    const char *what;
    int n;
    int64_t slot[FLASH_SLOTS], n_new[FLASH_SLOTS];
} flash_step;
static const flash_step FLASH_STEPS[] = {
    {"5 fresh prompts (all flash)", 5, {3, 0, 5, 1, 6}, {1, 2, 17, 300, 64}},
    {"fresh prompt after cached (all decode)", 3, {3, 0, 2}, {1, 1, 33}},
    {"fresh prompt, then 1-token steps", 7, {4, 3, 0, 5, 1, 6, 2}, {70, 1, 1, 1, 1, 1, 1}},
    {"2 fresh prompts (130, 1), then steps", 9, {7, 8, 4, 3, 0, 5, 1, 6, 2},
     {130, 1, 1, 1, 1, 1, 1, 1, 1}},
    {"1-token steps only", 9, {8, 7, 6, 5, 4, 3, 2, 1, 0}, {1, 1, 1, 1, 1, 1, 1, 1, 1}},
};

/* feed: the step's tokens, packed: a fresh slot's prompt (a fixed
 * pattern), else the token chosen after its last step (next[slot]). */
static void flash_step_feed(const flash_step *st, const int64_t *cached, const int32_t *next,
                            int64_t V, int32_t *feed)
{
    int64_t t = 0;
    for (int i = 0; i < st->n; i++) {
        const int64_t slot = st->slot[i];
        for (int64_t j = 0; j < st->n_new[i]; j++, t++)
            feed[t] = cached[slot] ? next[slot] : (int32_t)((slot * 131 + j * 7919 + 13) % V);
    }
    assert_true(t <= FLASH_FEED_MAX);
}

/* out [rows, V] = log_softmax of each row of z, in double. */
static void log_softmax_rows(const float *z, int64_t rows, int64_t V, float *out)
{
    for (int64_t r = 0; r < rows; r++) {
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < V; j++)
            mx = fmax(mx, z[r * V + j]);
        for (int64_t j = 0; j < V; j++)
            sum += exp((double)z[r * V + j] - mx);
        for (int64_t j = 0; j < V; j++)
            out[r * V + j] = (float)((double)z[r * V + j] - mx - log(sum));
    }
}

/* 1 when every row's argmax of got equals ref's, or ref's top two (ref's
 * argmax vs got's) are within the output tolerance of max|ref| (bf16
 * noise may then decide either way; the gap is printed). */
static int greedy_agrees(const char *what, const float *got, const float *ref, int64_t rows,
                         int64_t V)
{
    double scale = 0;
    for (int64_t j = 0; j < rows * V; j++)
        scale = fmax(scale, fabs(ref[j]));
    int ok = 1;
    for (int64_t r = 0; r < rows; r++) {
        const int32_t b = argmax_row(ref, V, r), o = argmax_row(got, V, r);
        const double gap = ref[r * V + b] - ref[r * V + o];
        if (o != b)
            print_message("  %s row %lld: greedy %d vs %d, gap %.3g of max|logit| %.3g\n", what,
                          (long long)r, o, b, gap, scale);
        ok &= o == b || gap <= OUT_TOL_PCT / 100.0 * scale;
    }
    return ok;
}

/* One step's checks: logits [rows, V] of prefill_attention = flash
 * (logits[1]) within the output tolerance of decode's (logits[0]), greedy
 * tokens as check_decode_split_vs_block's, and both paths' log-probs
 * (logp: scratch) within it of the CPU decode's (logits[2]), as
 * check_decode holds decode to the CPU. next[slot] := decode's greedy
 * token (what both models and the CPU are fed next). */
static int flash_step_check(const flash_step *st, int64_t V, float *const *logits,
                            float *const *logp, int32_t *next)
{
    const int64_t rows = st->n;
    const double tol = OUT_TOL_PCT / 100.0, rms = OUT_RMS_PCT / 100.0;
    print_message("  step: %s\n", st->what);
    int ok = compare("logits, flash vs decode", logits[1], logits[0], rows * V, tol, rms);
    ok &= greedy_agrees("flash vs decode", logits[1], logits[0], rows, V);
    for (int k = 0; k < 3; k++)
        log_softmax_rows(logits[k], rows, V, logp[k]);
    ok &= compare("log p, flash vs CPU decode", logp[1], logp[2], rows * V, tol, rms);
    ok &= compare("log p, decode vs CPU decode", logp[0], logp[2], rows * V, tol, rms);
    for (int64_t r = 0; r < rows; r++)
        next[st->slot[r]] = argmax_row(logits[0], V, r);
    return ok;
}

/* FLASH_STEPS through two GPU models that differ only in
 * prefill_attention (decode, flash), both with decode attention impl for
 * the sequences flash does not take, and through the CPU's decode. */
static int check_prefill_flash_run(const variant *v, fixture *f, gpu_decode_attention_impl impl)
{
    const int64_t V = v->vocab;
    gpu_model *g[2];
    float *logits[3], *logp[3]; /* decode, flash, CPU: [FLASH_SLOTS, V] */
    for (int k = 0; k < 2; k++) {
        gpu_model_options o = options(0, 0);
        o.decode_attention = impl;
        o.prefill_attention = k ? GPU_PREFILL_ATTENTION_FLASH : GPU_PREFILL_ATTENTION_DECODE;
        CHECK_OK(gpu_model_create(&g[k], &f->m, &o, ERR));
        CHECK_OK(gpu_model_kv_cache_init(g[k], FLASH_SLOTS, FLASH_MAX_LEN, ERR));
    }
    model_kv_cache cache;
    CHECK_OK(model_kv_cache_init(&cache, &f->m, FLASH_SLOTS, FLASH_MAX_LEN, ERR));
    for (int k = 0; k < 3; k++) {
        logits[k] = malloc((size_t)(FLASH_SLOTS * V) * sizeof *logits[k]);
        logp[k] = malloc((size_t)(FLASH_SLOTS * V) * sizeof *logp[k]);
    }
    int32_t feed[FLASH_FEED_MAX], next[FLASH_SLOTS] = {0};
    int64_t cached[FLASH_SLOTS] = {0};
    int ok = 1;
    for (size_t s = 0; s < sizeof FLASH_STEPS / sizeof FLASH_STEPS[0]; s++) {
        const flash_step *st = &FLASH_STEPS[s];
        flash_step_feed(st, cached, next, V, feed);
        for (int k = 0; k < 2; k++)
            CHECK_OK(gpu_model_decode_step(g[k], st->n, st->slot, st->n_new, feed, logits[k],
                                           ERR));
        CHECK_OK(model_decode_step(&f->m, &cache, st->n, st->slot, st->n_new, feed, logits[2],
                                   ERR));
        ok &= flash_step_check(st, V, logits, logp, next);
        for (int i = 0; i < st->n; i++)
            cached[st->slot[i]] += st->n_new[i];
    }
    for (int k = 0; k < 3; k++) {
        free(logits[k]);
        free(logp[k]);
    }
    model_kv_cache_free(&cache);
    for (int k = 0; k < 2; k++) {
        gpu_model_kv_cache_free(g[k]);
        gpu_model_destroy(g[k]);
    }
    return ok;
}

/* prefill_attention = flash against decode, with either decode attention
 * taking the sequences after the flash prefix. */
static void check_prefill_flash(const variant *v, fixture *f)
{
    int ok = 1;
    for (int split = 0; split <= 1; split++) {
        print_message("%s: prefill attention flash vs decode (%s decode attention)\n", v->name,
                      split ? "split" : "block");
        ok &= check_prefill_flash_run(v, f, split ? GPU_DECODE_ATTENTION_SPLIT
                                                  : GPU_DECODE_ATTENTION_BLOCK);
    }
    if (!ok)
        fail_msg("%s: flash prefill differs from the decode path or the CPU", v->name);
}

/* check_decode_graphs' three models, fed the same steps: graphs off
 * (k = 0), on (k = 1), and on but run directly (k = 2: graphs_eager, the
 * same work and split plan without capture). */
enum { GRAPH_MODELS = 3, GRAPH_SLOTS = 4, GRAPH_MAX_LEN = 256, GRAPH_FEED_MAX = 256 };
typedef struct graph_models {
    gpu_model *g[GRAPH_MODELS];
    float *logits[GRAPH_MODELS]; /* [GRAPH_SLOTS, V] */
    int64_t V;
    gpu_decode_attention_impl impl;
    int ok;
} graph_models;

static void graph_models_init(graph_models *m, const variant *v, fixture *f,
                              gpu_decode_attention_impl impl)
{
    m->V = v->vocab;
    m->impl = impl;
    m->ok = 1;
    for (int k = 0; k < GRAPH_MODELS; k++) {
        gpu_model_options o = options(0, 0);
        o.decode_attention = impl;
        o.decode_graphs = k > 0;
        CHECK_OK(gpu_model_create(&m->g[k], &f->m, &o, ERR));
        CHECK_OK(gpu_model_kv_cache_init(m->g[k], GRAPH_SLOTS, GRAPH_MAX_LEN, ERR));
        m->logits[k] = malloc((size_t)(GRAPH_SLOTS * m->V) * sizeof *m->logits[k]);
    }
    m->g[2]->dec.graphs_eager = true;
}

static void graph_models_free(graph_models *m)
{
    for (int k = 0; k < GRAPH_MODELS; k++) {
        gpu_model_kv_cache_free(m->g[k]);
        gpu_model_destroy(m->g[k]);
        free(m->logits[k]);
    }
}

/* 0 (and the first difference printed) unless a and b [n] are the same bits. */
static int same_bits(const char *what, const float *a, const float *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof a[i]) != 0) {
            print_message("  %s: element %lld differs: %.9g vs %.9g  <-- NOT BIT-IDENTICAL\n",
                          what, (long long)i, a[i], b[i]);
            return 0;
        }
    return 1;
}

/* One step through the three models. Graph replay and the same work run
 * directly: the same bits. Graphs off: the same bits with the block
 * kernel; the split kernel plans its splits for the step's context there
 * and for that context rounded up to a power of two under graphs, so only
 * within tolerance. */
static void graph_models_step(graph_models *m, const char *what, int64_t n, const int64_t *slots,
                              const int64_t *n_new, const int32_t *feed)
{
    for (int k = 0; k < GRAPH_MODELS; k++)
        CHECK_OK(gpu_model_decode_step(m->g[k], n, slots, n_new, feed, m->logits[k], ERR));
    m->ok &= same_bits(what, m->logits[1], m->logits[2], n * m->V);
    if (m->impl == GPU_DECODE_ATTENTION_BLOCK)
        m->ok &= same_bits(what, m->logits[1], m->logits[0], n * m->V);
    else
        m->ok &= compare(what, m->logits[1], m->logits[0], n * m->V, OUT_TOL_PCT / 100.0,
                         OUT_RMS_PCT / 100.0);
}

/* Prompts of n_new[i] tokens (a fixed pattern) into empty slots: eager. */
static void graph_models_prefill(graph_models *m, int64_t n, const int64_t *slots,
                                 const int64_t *n_new, int32_t *next)
{
    int32_t feed[GRAPH_FEED_MAX];
    int64_t t = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n_new[i]; j++, t++)
            feed[t] = (int32_t)((slots[i] * 131 + j * 7919 + 13) % m->V);
    assert_true(t <= GRAPH_FEED_MAX);
    graph_models_step(m, "prefill", n, slots, n_new, feed);
    for (int64_t i = 0; i < n; i++)
        next[slots[i]] = argmax_row(m->logits[0], m->V, i);
}

/* steps pure decode steps of the sequences in slots, each fed the graphs-off
 * model's greedy token (next[slot]). */
static void graph_models_decode(graph_models *m, const char *what, int64_t n,
                                const int64_t *slots, int32_t *next, int steps)
{
    const int64_t ones[GRAPH_SLOTS] = {1, 1, 1, 1};
    for (int step = 0; step < steps; step++) {
        int32_t feed[GRAPH_SLOTS];
        for (int64_t i = 0; i < n; i++)
            feed[i] = next[slots[i]];
        char label[96];
        snprintf(label, sizeof label, "%s, step %d", what, step);
        graph_models_step(m, label, n, slots, ones, feed);
        for (int64_t i = 0; i < n; i++)
            next[slots[i]] = argmax_row(m->logits[0], m->V, i);
    }
}

static void graph_models_release(graph_models *m, int64_t slot)
{
    for (int k = 0; k < GRAPH_MODELS; k++)
        CHECK_OK(gpu_model_kv_cache_release(m->g[k], 1, &slot, ERR));
}

/* Prefill 3 prompts (70, 9, 40 tokens), 12 pure decode steps of 3
 * sequences (the first runs directly as the warm-up, the second captures
 * the graph for 3), one sequence ends: 4 steps of 2 (a second graph); a
 * longer prompt (150 tokens) into the freed slot grows the activations,
 * so the next 4 steps of 2 capture again. Contexts reach 154 of 256:
 * several of the fixed split plan's splits (64 keys on an H200), the later
 * ones empty. Returns 1 when all agree and exactly those 3 graphs were
 * captured, graphs still on. */
static int check_decode_graphs_run(const variant *v, fixture *f, gpu_decode_attention_impl impl)
{
    graph_models m;
    graph_models_init(&m, v, f, impl);
    int32_t next[GRAPH_SLOTS] = {0};
    const int64_t slots3[3] = {2, 0, 3}, prompts[3] = {70, 9, 40};
    graph_models_prefill(&m, 3, slots3, prompts, next);
    graph_models_decode(&m, "3 sequences", 3, slots3, next, 12);
    graph_models_release(&m, 0);
    const int64_t slots2[2] = {2, 3};
    graph_models_decode(&m, "2 sequences", 2, slots2, next, 4);
    graph_models_release(&m, 2);
    const int64_t slot2[1] = {2}, longer[1] = {150}, slots_grown[2] = {3, 2};
    graph_models_prefill(&m, 1, slot2, longer, next);
    graph_models_decode(&m, "2 sequences after growth", 2, slots_grown, next, 4);
    const gpu_model *on = m.g[1];
    print_message("  graphs captured %lld (3 expected), still on: %s; direct run %lld\n",
                  (long long)on->dec.graph_captures, on->opt.decode_graphs ? "yes" : "NO",
                  (long long)m.g[2]->dec.graph_captures);
    int ok = m.ok && on->opt.decode_graphs && on->dec.graph_captures == 3 &&
             m.g[2]->dec.graph_captures == 0;
    graph_models_free(&m);
    return ok;
}

/* model.decode_graphs against the same steps without graphs, with either
 * decode attention. */
static void check_decode_graphs(const variant *v, fixture *f)
{
    int ok = 1;
    for (int split = 0; split <= 1; split++) {
        print_message("%s: decode graphs vs direct (%s decode attention)\n", v->name,
                      split ? "split" : "block");
        ok &= check_decode_graphs_run(v, f, split ? GPU_DECODE_ATTENTION_SPLIT
                                                  : GPU_DECODE_ATTENTION_BLOCK);
    }
    if (!ok)
        fail_msg("%s: decode graphs differ from direct steps (see above)", v->name);
}

/* One AdamW step from identical weights and gradients (the CPU's, copied
 * into the device's gradient buffer): expected bit-identical (one shared
 * update, no FMA), the gradient norm equal within double rounding. */
static void check_adamw(const variant *v, fixture *f)
{
    print_message("%s: AdamW step vs CPU\n", v->name);
    gpu_model *g;
    const gpu_model_options o = options(1, 1);
    CHECK_OK(gpu_model_create(&g, &f->m, &o, ERR));
    int64_t n = 0;
    float *d_grads = gpu_model_grads(g, &n);
    assert_int_equal(n, f->m.weights.n_params);
    assert_int_equal(cudaMemcpy(d_grads, f->grads.data, (size_t)n * 4, cudaMemcpyHostToDevice),
                     cudaSuccess);
    double gpu_norm = 0, cpu_norm = 0;
    CHECK_OK(gpu_model_adamw_step(g, &gpu_norm, ERR));
    assert_int_equal(gpu_model_adamw_steps(g), 1);

    model cpu;
    CHECK_OK(model_init(&cpu, &f->m.config, ERR));
    memcpy(cpu.weights.data, f->m.weights.data, (size_t)n * 4);
    model_weights cpu_grads;
    CHECK_OK(model_weights_init(&cpu, &cpu_grads, ERR));
    memcpy(cpu_grads.data, f->grads.data, (size_t)n * 4);
    adamw_state st, gst;
    CHECK_OK(adamw_init(&st, &cpu, &o.optim, ERR));
    CHECK_OK(adamw_init(&gst, &cpu, &o.optim, ERR));
    adamw_step(&st, &cpu, &cpu_grads, &cpu_norm);

    model got;
    CHECK_OK(model_init(&got, &f->m.config, ERR));
    CHECK_OK(gpu_model_download(g, &got, ERR));
    CHECK_OK(gpu_model_optimizer_download(g, &gst, ERR));
    assert_int_equal(gst.step, 1);
    int64_t same_w = 0, same_m = 0, same_v = 0;
    for (int64_t i = 0; i < n; i++) {
        same_w += got.weights.data[i] == cpu.weights.data[i];
        same_m += gst.m[i] == st.m[i];
        same_v += gst.v[i] == st.v[i];
    }
    print_message("  grad norm gpu %.17g cpu %.17g; bit-identical: weights %lld/%lld, m "
                  "%lld, v %lld\n",
                  gpu_norm, cpu_norm, (long long)same_w, (long long)n, (long long)same_m,
                  (long long)same_v);
    assert_true(fabs(gpu_norm - cpu_norm) <= 1e-10 * cpu_norm);
    int ok = 1;
    ok &= compare("AdamW weights", got.weights.data, cpu.weights.data, n, 1e-6, 1e-6);
    ok &= compare("AdamW m", gst.m, st.m, n, 1e-6, 1e-6);
    ok &= compare("AdamW v", gst.v, st.v, n, 1e-6, 1e-6);

    /* Moments round trip: upload what was downloaded, read it back. */
    CHECK_OK(gpu_model_optimizer_upload(g, &gst, ERR));
    adamw_state back;
    CHECK_OK(adamw_init(&back, &cpu, &o.optim, ERR));
    CHECK_OK(gpu_model_optimizer_download(g, &back, ERR));
    assert_memory_equal(back.m, gst.m, (size_t)n * 4);
    assert_memory_equal(back.v, gst.v, (size_t)n * 4);
    assert_int_equal(back.step, 1);
    adamw_free(&back);
    adamw_free(&st);
    adamw_free(&gst);
    model_weights_free(&cpu_grads);
    model_free(&cpu);
    model_free(&got);
    gpu_model_destroy(g);
    if (!ok)
        fail_msg("%s: AdamW differs from the CPU", v->name);
}

/* bf16-representable weights survive upload and download exactly, through
 * the master copy (train) and through the bf16 copy alone. */
static void check_round_trip(const variant *v, fixture *f)
{
    for (int train = 0; train <= 1; train++) {
        gpu_model *g;
        const gpu_model_options o = options(train, 0);
        CHECK_OK(gpu_model_create(&g, &f->m, &o, ERR));
        model back;
        CHECK_OK(model_init(&back, &f->m.config, ERR));
        CHECK_OK(gpu_model_download(g, &back, ERR));
        assert_memory_equal(back.weights.data, f->m.weights.data,
                            (size_t)f->m.weights.n_params * 4);
        CHECK_OK(gpu_model_upload(g, &back, ERR));
        CHECK_OK(gpu_model_download(g, &back, ERR));
        assert_memory_equal(back.weights.data, f->m.weights.data,
                            (size_t)f->m.weights.n_params * 4);
        print_message("%s: upload/download exact (%s)\n", v->name,
                      train ? "master fp32" : "bf16 copy");
        if (train)
            gpu_memory_plan_print(gpu_model_memory_plan(g), &f->m.config, &o, stdout);
        model_free(&back);
        gpu_model_destroy(g);
    }
}

/* Bad input fails with a message and leaves the model usable. */
static void check_errors(fixture *f)
{
    gpu_model *g;
    const gpu_model_options o = options(1, 0);
    CHECK_OK(gpu_model_create(&g, &f->m, &o, ERR));
    kpo_error err;
    kpo_error *e = &err;
    assert_int_equal(gpu_model_backward(g, f->dlogp, NULL, e), KPO_ERR);
    assert_non_null(strstr(err.message, "no forward"));
    int32_t tokens[N_TOKENS];
    memcpy(tokens, f->tokens, sizeof tokens);
    tokens[3] = (int32_t)f->m.config.vocab_size;
    model_batch b = {tokens, N_TOKENS, f->offsets, N_SEQS};
    float logp[N_TOKENS], entropy[N_TOKENS];
    assert_int_equal(gpu_model_forward(g, &b, f->targets, logp, entropy, e), KPO_ERR);
    assert_non_null(strstr(err.message, "out of range"));
    gpu_model_destroy(g);
}

static void run_variant(int k)
{
    fixture f;
    memset(&f, 0, sizeof f);
    fixture_init(&f, &VARIANTS[k], 1234 + (uint64_t)k);
    check_train(&VARIANTS[k], &f);
    check_train_cudnn(&VARIANTS[k], &f);
    check_decode(&VARIANTS[k], &f);
    check_decode_split_vs_block(&VARIANTS[k], &f);
    check_prefill_flash(&VARIANTS[k], &f);
    check_decode_graphs(&VARIANTS[k], &f);
    check_adamw(&VARIANTS[k], &f);
    check_round_trip(&VARIANTS[k], &f);
    if (k == 0)
        check_errors(&f);
    fixture_free(&f);
}

static void test_tied_gqa1(void **state)
{
    (void)state;
    GPU_REQUIRE_OR_SKIP();
    run_variant(0);
}

static void test_untied_gqa4(void **state)
{
    (void)state;
    GPU_REQUIRE_OR_SKIP();
    run_variant(1);
}

static void test_tied_gqa2_wide_heads(void **state)
{
    (void)state;
    GPU_REQUIRE_OR_SKIP();
    run_variant(2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tied_gqa1),
        cmocka_unit_test(test_untied_gqa4),
        cmocka_unit_test(test_tied_gqa2_wide_heads),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    char why[512];
    return failed ? 1 : gpu_unavailable(why, sizeof why) ? 77 : 0;
}
