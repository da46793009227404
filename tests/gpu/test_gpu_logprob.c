/* The fused lm_head log-prob/entropy and the token embedding on the GPU
 * against double-precision references computed here on the same
 * bf16-rounded h and head:
 *
 * - forward: logp, entropy and lse for vocabularies of 1000 (a multiple of
 *   nothing useful), 32768 and 151,936 (Qwen3), 64 rows in chunks of 24
 *   (so two full chunks and a short one), a few rows without a target;
 * - backward: dh and the head gradient (accumulated onto a nonzero start),
 *   with and without the entropy term;
 * - tied: the head gradient lands in the embedding gradient, which the
 *   embedding's backward then adds to; the sum is checked;
 * - embedding: the gather bit-exact (wide and narrow rows), the backward's
 *   scatter-add against model_backward's serial fp32 scatter (expected bit
 *   for bit; checked within 1e-6) and bit-identical across two runs.
 *
 * Each check prints its worst element: |gpu - cpu| <= rtol |cpu| + atol.
 * Skips without a GPU (exit 77); the host-side argument checks run anyway.
 * Only built with CUDA. */
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
#include "model/cuda/gemm_lt.h"
#include "model/cuda/kernels_embed.h"
#include "model/cuda/kernels_logprob.h"
#include "model/safetensors.h"

/* logp, entropy and lse come from fp32 logits (fp32 accumulation of bf16
 * products: ~1e-7 relative of |z| <= ~40 here, i.e. a few 1e-6) and fp32
 * sums over <= 151,936 terms in a fixed tree (~1e-6 relative of lse): the
 * GPU is expected within ~1e-5 of the double reference; 1e-4 absolute leaves
 * margin and is still ~500x below what bf16 logits would cost (~0.05). */
#define LOGPROB_ATOL 1e-4
/* dh and the head gradient: dlogits are rounded to bf16 (2^-9 relative per
 * term) and dh once more on output; the sums over the vocabulary cancel
 * (sum_j dl_j = 0), hence an atol relative to the largest element. */
#define GRAD_RTOL (1.0 / 128.0)
#define GRAD_ATOL_OF_MAX (1.0 / 256.0)

/* Prints and checks the worst element (NaN is the worst); frees got. */
static void expect_close(const char *what, float *got, const double *want, int64_t n,
                         double rtol, double atol)
{
    int64_t at;
    const double worst = worst_element(got, want, n, rtol, atol, 1e-300, &at);
    print_message("%-44s n=%-9lld worst at %lld: gpu %.9g cpu %.9g (%.3g of tolerance %.3g rel + %.3g)\n",
                  what, (long long)n, (long long)at, n ? got[at] : 0.0, n ? want[at] : 0.0,
                  worst, rtol, atol);
    if (!(worst <= 1.0))
        fail_msg("%s: element %lld outside tolerance", what, (long long)at);
    free(got);
}

/* ---- the double-precision reference ---- */

typedef struct lp_case {
    int64_t rows, hidden, vocab, chunk;
    float *h, *w;           /* [rows, hidden], [vocab, hidden]: bf16 values */
    uint16_t *h_bits, *w_bits;
    int32_t *targets;       /* [rows] */
    double *z;              /* [rows, vocab] reference logits (rows with a target) */
    double *logp, *entropy, *lse; /* [rows] */
} lp_case;

/* z = h W^T in double, then per row lse, H = lse - E_p[z], log p(target). */
static void ref_forward(lp_case *c)
{
    const int64_t V = c->vocab, H = c->hidden;
    for (int64_t r = 0; r < c->rows; r++) {
        c->logp[r] = c->entropy[r] = c->lse[r] = 0;
        if (c->targets[r] < 0)
            continue;
        double *z = c->z + r * V, mx = -INFINITY, sum = 0, weighted = 0;
        for (int64_t j = 0; j < V; j++) {
            double acc = 0;
            for (int64_t k = 0; k < H; k++)
                acc += (double)c->h[r * H + k] * c->w[j * H + k];
            z[j] = acc;
            mx = fmax(mx, acc);
        }
        for (int64_t j = 0; j < V; j++) {
            const double e = exp(z[j] - mx);
            sum += e;
            weighted += e * z[j];
        }
        c->lse[r] = mx + log(sum);
        c->entropy[r] = c->lse[r] - weighted / sum;
        c->logp[r] = z[c->targets[r]] - c->lse[r];
    }
}

/* dh [rows, hidden] = dl W and dhead [vocab, hidden] += dl^T h, with
 * dl_j = dlogp (1[j = t] - p_j) - dentropy p_j (z_j - E_p[z]) (rows with a
 * target only; dentropy NULL: 0). */
static void ref_backward(const lp_case *c, const float *dlogp, const float *dentropy, double *dh,
                         double *dhead)
{
    const int64_t V = c->vocab, H = c->hidden;
    double *dl = malloc((size_t)V * sizeof *dl);
    memset(dh, 0, (size_t)(c->rows * H) * sizeof *dh);
    for (int64_t r = 0; r < c->rows; r++) {
        const int32_t t = c->targets[r];
        if (t < 0)
            continue;
        const double *z = c->z + r * V, a = dlogp[r], b = dentropy ? dentropy[r] : 0;
        const double mean = c->lse[r] - c->entropy[r];
        for (int64_t j = 0; j < V; j++) {
            const double p = exp(z[j] - c->lse[r]);
            dl[j] = -a * p - b * p * (z[j] - mean) + (j == t ? a : 0);
        }
        for (int64_t j = 0; j < V; j++) {
            const float *wj = c->w + j * H;
            double *dhr = dh + r * H, *dwj = dhead + j * H;
            const float *hr = c->h + r * H;
            for (int64_t k = 0; k < H; k++) {
                dhr[k] += dl[j] * wj[k];
                dwj[k] += dl[j] * hr[k];
            }
        }
    }
    free(dl);
}

/* h rows at different scales (peaked and flat distributions: logits up to
 * ~40 and entropies from ~0.1 to ~log V); a few rows without a target. */
static void case_init(lp_case *c, int64_t rows, int64_t hidden, int64_t vocab, int64_t chunk,
                      uint64_t seed)
{
    memset(c, 0, sizeof *c);
    c->rows = rows, c->hidden = hidden, c->vocab = vocab, c->chunk = chunk;
    c->w = random_bf16(vocab * hidden, 0.05, seed, &c->w_bits);
    rng_stream rng;
    rng_stream_init(&rng, seed, 11);
    c->h = malloc((size_t)(rows * hidden) * sizeof *c->h);
    c->h_bits = malloc((size_t)(rows * hidden) * sizeof *c->h_bits);
    for (int64_t r = 0; r < rows; r++) {
        const double scale = 1.0 + 3.0 * (double)(r % 5);
        for (int64_t k = 0; k < hidden; k++) {
            const uint16_t b = safetensors_f32_to_bf16((float)(scale * rng_normal(&rng)));
            c->h_bits[r * hidden + k] = b;
            c->h[r * hidden + k] = safetensors_bf16_to_f32(b);
        }
    }
    c->targets = malloc((size_t)rows * sizeof *c->targets);
    for (int64_t r = 0; r < rows; r++)
        c->targets[r] = (r % 13 == 5) ? -1 : (int32_t)(rng_next_u32(&rng) % (uint32_t)vocab);
    c->targets[rows - 1] = (int32_t)(vocab - 1); /* the last id: no off-by-one at the end */
    c->z = malloc((size_t)(rows * vocab) * sizeof *c->z);
    c->logp = malloc((size_t)rows * sizeof(double));
    c->entropy = malloc((size_t)rows * sizeof(double));
    c->lse = malloc((size_t)rows * sizeof(double));
    ref_forward(c);
}

static void case_free(lp_case *c)
{
    free(c->h), free(c->w), free(c->h_bits), free(c->w_bits), free(c->targets), free(c->z);
    free(c->logp), free(c->entropy), free(c->lse);
}

/* The case on the device: inputs, forward outputs, workspace. */
typedef struct lp_device {
    gpu_logprob_shape shape;
    uint16_t *h, *w;
    int32_t *targets;
    float *logp, *entropy, *lse;
    void *workspace;
} lp_device;

static void device_init(lp_device *d, const lp_case *c)
{
    d->shape = (gpu_logprob_shape){.rows = c->rows, .hidden = c->hidden, .vocab = c->vocab,
                                   .chunk_rows = c->chunk};
    d->h = device_copy(c->h_bits, (size_t)(c->rows * c->hidden) * 2, 0);
    d->w = device_copy(c->w_bits, (size_t)(c->vocab * c->hidden) * 2, 0);
    d->targets = device_copy(c->targets, (size_t)c->rows * 4, 0);
    d->logp = device_copy(NULL, (size_t)c->rows * 4, 0);
    d->entropy = device_copy(NULL, (size_t)c->rows * 4, 0);
    d->lse = device_copy(NULL, (size_t)c->rows * 4, 0);
    d->workspace = device_copy(NULL, gpu_logprob_workspace(&d->shape), 0);
}

static void device_free(lp_device *d)
{
    cudaFree(d->h), cudaFree(d->w), cudaFree(d->targets), cudaFree(d->logp);
    cudaFree(d->entropy), cudaFree(d->lse), cudaFree(d->workspace);
}

static void check_forward(gemm_lt *g, const lp_case *c, lp_device *d)
{
    char what[96];
    CHECK_OK(gpu_logprob_forward(g, &d->shape, d->h, d->w, d->targets, d->logp, d->entropy,
                                 d->lse, d->workspace, NULL, ERR));
    float *logp = download_f32(d->logp, c->rows);
    /* Once more: fixed-order reductions repeat bit for bit. */
    CHECK_OK(gpu_logprob_forward(g, &d->shape, d->h, d->w, d->targets, d->logp, d->entropy,
                                 d->lse, d->workspace, NULL, ERR));
    float *again = download_f32(d->logp, c->rows);
    assert_memory_equal(logp, again, (size_t)c->rows * 4);
    free(again);
    snprintf(what, sizeof what, "logp    V=%lld", (long long)c->vocab);
    expect_close(what, logp, c->logp, c->rows, 0, LOGPROB_ATOL);
    snprintf(what, sizeof what, "entropy V=%lld", (long long)c->vocab);
    expect_close(what, download_f32(d->entropy, c->rows), c->entropy, c->rows, 0, LOGPROB_ATOL);
    snprintf(what, sizeof what, "lse     V=%lld", (long long)c->vocab);
    expect_close(what, download_f32(d->lse, c->rows), c->lse, c->rows, 0, LOGPROB_ATOL);
}

/* Runs the backward onto d_dhead (already holding dhead0) and checks dh;
 * returns the host dh reference's head part in dhead_ref (+= onto it). */
static void run_backward(gemm_lt *g, const lp_case *c, lp_device *d, const float *dlogp,
                         const float *dentropy, float *d_dhead, double *dhead_ref,
                         const char *label)
{
    char what[96];
    const int64_t rows = c->rows, H = c->hidden;
    float *d_dlogp = device_copy(dlogp, (size_t)rows * 4, 0);
    float *d_dent = dentropy ? device_copy(dentropy, (size_t)rows * 4, 0) : NULL;
    uint16_t *d_dh = device_copy(NULL, (size_t)(rows * H) * 2, 0);
    assert_int_equal(cudaMemset(d_dh, 0xff, (size_t)(rows * H) * 2), cudaSuccess); /* NaN: must be written */
    CHECK_OK(gpu_logprob_backward(g, &d->shape, d->h, d->w, d->targets, d->lse, d->entropy,
                                  d_dlogp, d_dent, d_dh, d_dhead, d->workspace, NULL, ERR));
    double *dh = malloc((size_t)(rows * H) * sizeof *dh);
    ref_backward(c, dlogp, dentropy, dh, dhead_ref);
    snprintf(what, sizeof what, "dh      V=%lld %s", (long long)c->vocab, label);
    expect_close(what, download_bf16(d_dh, rows * H), dh, rows * H, GRAD_RTOL,
                 GRAD_ATOL_OF_MAX * max_abs(dh, rows * H));
    free(dh);
    cudaFree(d_dlogp), cudaFree(d_dent), cudaFree(d_dh);
}

/* Backward with and without the entropy term, each onto a nonzero head
 * gradient (it accumulates). */
static void check_backward(gemm_lt *g, const lp_case *c, lp_device *d)
{
    char what[96];
    const int64_t n = c->vocab * c->hidden;
    float *dlogp = random_f32(c->rows, 1.0, 71), *dentropy = random_f32(c->rows, 0.5, 72);
    for (int with_entropy = 0; with_entropy < 2; with_entropy++) {
        const char *label = with_entropy ? "(dlogp + dentropy)" : "(dlogp only)";
        float *dhead0 = random_f32(n, 1e-3, 73 + (uint64_t)with_entropy);
        double *dhead = malloc((size_t)n * sizeof *dhead);
        for (int64_t i = 0; i < n; i++)
            dhead[i] = dhead0[i];
        float *d_dhead = device_copy(dhead0, (size_t)n * 4, 0);
        run_backward(g, c, d, dlogp, with_entropy ? dentropy : NULL, d_dhead, dhead, label);
        snprintf(what, sizeof what, "dhead   V=%lld %s", (long long)c->vocab, label);
        expect_close(what, download_f32(d_dhead, n), dhead, n, GRAD_RTOL,
                     GRAD_ATOL_OF_MAX * max_abs(dhead, n));
        cudaFree(d_dhead);
        free(dhead0), free(dhead);
    }
    free(dlogp), free(dentropy);
}

static void check_vocab(int64_t vocab, uint64_t seed)
{
    lp_case c;
    case_init(&c, 64, 128, vocab, 24, seed);
    lp_device d;
    device_init(&d, &c);
    gemm_lt *g;
    CHECK_OK(gemm_lt_create(&g, 0, ERR));
    check_forward(g, &c, &d);
    check_backward(g, &c, &d);
    gemm_lt_destroy(g);
    device_free(&d);
    case_free(&c);
}

static void test_logprob_v1000(void **state)
{
    (void)state;
    GPU_REQUIRE_OR_SKIP();
    check_vocab(1000, 101);
}

static void test_logprob_v32768(void **state)
{
    (void)state;
    GPU_REQUIRE_OR_SKIP();
    check_vocab(32768, 102);
}

static void test_logprob_v151936(void **state)
{
    (void)state;
    GPU_REQUIRE_OR_SKIP();
    check_vocab(151936, 103);
}

/* Tied embeddings: the head is the embedding, so the lm_head's gradient and
 * the embedding's scatter-add land in one fp32 buffer. */
static void test_tied(void **state)
{
    (void)state;
    GPU_REQUIRE_OR_SKIP();
    lp_case c;
    case_init(&c, 64, 128, 1000, 24, 104);
    const int64_t rows = c.rows, H = c.hidden, n = c.vocab * H;
    lp_device d;
    device_init(&d, &c);
    gemm_lt *g;
    CHECK_OK(gemm_lt_create(&g, 0, ERR));
    CHECK_OK(gpu_logprob_forward(g, &d.shape, d.h, d.w, d.targets, d.logp, d.entropy, d.lse,
                                 d.workspace, NULL, ERR));
    float *dlogp = random_f32(rows, 1.0, 81), *dentropy = random_f32(rows, 0.5, 82);
    float *dembed0 = random_f32(n, 1e-3, 83);
    double *dembed = malloc((size_t)n * sizeof *dembed);
    for (int64_t i = 0; i < n; i++)
        dembed[i] = dembed0[i];
    float *d_dembed = device_copy(dembed0, (size_t)n * 4, 0);
    run_backward(g, &c, &d, dlogp, dentropy, d_dembed, dembed, "(tied)");
    /* The embedding's share: input tokens (repeats) and their gradient. */
    int32_t *tokens = malloc((size_t)rows * sizeof *tokens);
    for (int64_t r = 0; r < rows; r++)
        tokens[r] = (int32_t)((r * r * 7 + 3) % 41) * 20; /* 41 ids, many repeated */
    uint16_t *dx_bits;
    float *dx = random_bf16(rows * H, 0.3, 84, &dx_bits);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < H; k++)
            dembed[(int64_t)tokens[r] * H + k] += dx[r * H + k];
    uint16_t *d_dx = device_copy(dx_bits, (size_t)(rows * H) * 2, 0);
    gpu_embed_index ix = {0};
    CHECK_OK(gpu_embed_index_build(&ix, tokens, rows, NULL, ERR));
    CHECK_OK(gpu_embed_backward(&ix, H, d_dx, d_dembed, NULL, ERR));
    expect_close("tied dembed = dhead + scatter(dx)", download_f32(d_dembed, n), dembed, n,
                 GRAD_RTOL, GRAD_ATOL_OF_MAX * max_abs(dembed, n));
    gpu_embed_index_free(&ix);
    gemm_lt_destroy(g);
    cudaFree(d_dembed), cudaFree(d_dx);
    device_free(&d);
    free(dlogp), free(dentropy), free(dembed0), free(dembed), free(tokens), free(dx), free(dx_bits);
    case_free(&c);
}

/* Tokens with heavy repeats, a few unique ids and the last id. */
static int32_t *embed_tokens(int64_t rows, int32_t vocab)
{
    int32_t *t = malloc((size_t)rows * sizeof *t);
    for (int64_t r = 0; r < rows; r++)
        t[r] = r % 10 == 9 ? (int32_t)(vocab - 1 - r) : (int32_t)((r * r * 7) % 37);
    t[rows / 2] = vocab - 1;
    return t;
}

/* Returns dembed after gpu_embed_backward from dembed0 (host copy). */
static float *embed_backward_once(gpu_embed_index *ix, const int32_t *tokens, int64_t rows,
                                  int64_t hidden, int64_t vocab, const uint16_t *d_dx,
                                  const float *dembed0)
{
    float *d_dembed = device_copy(dembed0, (size_t)(vocab * hidden) * 4, 0);
    CHECK_OK(gpu_embed_index_build(ix, tokens, rows, NULL, ERR));
    CHECK_OK(gpu_embed_backward(ix, hidden, d_dx, d_dembed, NULL, ERR));
    float *out = download_f32(d_dembed, vocab * hidden);
    cudaFree(d_dembed);
    return out;
}

static void check_embed(int64_t hidden)
{
    char what[96];
    const int64_t rows = 300, vocab = 5000, n = vocab * hidden;
    int32_t *tokens = embed_tokens(rows, (int32_t)vocab);
    uint16_t *e_bits, *dx_bits;
    float *e = random_bf16(n, 0.02, 91, &e_bits);
    float *dx = random_bf16(rows * hidden, 1.0, 92, &dx_bits);
    /* Forward: a gather is exact. */
    int32_t *d_tokens = device_copy(tokens, (size_t)rows * 4, 0);
    uint16_t *d_e = device_copy(e_bits, (size_t)n * 2, 0);
    uint16_t *d_x = device_copy(NULL, (size_t)(rows * hidden) * 2, 0);
    CHECK_OK(gpu_embed_forward(rows, hidden, d_tokens, d_e, d_x, NULL, ERR));
    uint16_t *x = malloc((size_t)(rows * hidden) * 2);
    assert_int_equal(cudaMemcpy(x, d_x, (size_t)(rows * hidden) * 2, cudaMemcpyDeviceToHost), cudaSuccess);
    for (int64_t r = 0; r < rows; r++)
        assert_memory_equal(x + r * hidden, e_bits + (int64_t)tokens[r] * hidden, (size_t)hidden * 2);
    print_message("embed gather hidden=%-5lld %lld rows bit-exact\n", (long long)hidden, (long long)rows);
    /* Backward: model_backward's serial fp32 scatter is the reference. */
    float *dembed0 = random_f32(n, 0.1, 93), *want = malloc((size_t)n * sizeof *want);
    memcpy(want, dembed0, (size_t)n * sizeof *want);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < hidden; k++)
            want[(int64_t)tokens[r] * hidden + k] += dx[r * hidden + k];
    uint16_t *d_dx = device_copy(dx_bits, (size_t)(rows * hidden) * 2, 0);
    gpu_embed_index ix = {0};
    CHECK_OK(gpu_embed_index_build(&ix, tokens, 10, NULL, ERR)); /* small first: then it grows */
    float *got = embed_backward_once(&ix, tokens, rows, hidden, vocab, d_dx, dembed0);
    float *again = embed_backward_once(&ix, tokens, rows, hidden, vocab, d_dx, dembed0); /* reuses */
    assert_memory_equal(got, again, (size_t)n * sizeof *got);
    int64_t identical = 0;
    double *want_d = malloc((size_t)n * sizeof *want_d);
    for (int64_t i = 0; i < n; i++)
        identical += got[i] == want[i], want_d[i] = want[i];
    print_message("embed backward hidden=%-5lld %lld of %lld bit-identical to the CPU scatter "
                  "(expected: all); two runs identical\n",
                  (long long)hidden, (long long)identical, (long long)n);
    snprintf(what, sizeof what, "embed dembed hidden=%lld", (long long)hidden);
    expect_close(what, got, want_d, n, 1e-6, 1e-6 * max_abs(want_d, n));
    gpu_embed_index_free(&ix);
    cudaFree(d_tokens), cudaFree(d_e), cudaFree(d_x), cudaFree(d_dx);
    free(tokens), free(e), free(e_bits), free(dx), free(dx_bits), free(x), free(dembed0);
    free(want), free(want_d), free(again);
}

static void test_embed(void **state)
{
    (void)state;
    GPU_REQUIRE_OR_SKIP();
    check_embed(256); /* 16-byte rows: the wide gather */
    check_embed(99);  /* odd width: one bf16 at a time, unaligned rows */
}

/* Checkable everywhere: workspace arithmetic and argument checks that fail
 * before touching the device. */
static void test_host_checks(void **state)
{
    (void)state;
    gpu_logprob_shape s = {.rows = 64, .hidden = 128, .vocab = 1000, .chunk_rows = 24};
    /* logits 24 x 1000 x 4 = 96000 bytes (a multiple of 256), then bf16. */
    assert_int_equal(gpu_logprob_workspace(&s), 96000 + 48000);
    s.vocab = 1001; /* 96096 bytes of logits, rounded up to 96256 */
    assert_int_equal(gpu_logprob_workspace(&s), 96256 + 48048);
    s.rows = 5; /* fewer rows than a chunk: only what they need */
    assert_int_equal(gpu_logprob_workspace(&s), 20224 + 10010);
    s.chunk_rows = 0;
    assert_int_equal(gpu_logprob_workspace(&s), 0);
    kpo_error err;
    assert_int_equal(gpu_logprob_forward(NULL, &s, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                                         &err), KPO_ERR);
    assert_non_null(strstr(err.message, "bad shape"));
    gpu_embed_index ix = {0};
    const int32_t bad[3] = {4, -2, 7};
    assert_int_equal(gpu_embed_index_build(&ix, bad, 3, NULL, &err), KPO_ERR);
    assert_non_null(strstr(err.message, "negative"));
    assert_int_equal(ix.n_unique, 0);
    print_message("host checks: workspace sizes and argument errors as expected\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_checks),    cmocka_unit_test(test_logprob_v1000),
        cmocka_unit_test(test_logprob_v32768), cmocka_unit_test(test_logprob_v151936),
        cmocka_unit_test(test_tied),           cmocka_unit_test(test_embed),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    char why[512];
    /* 77: meson's SKIP, so a run without a GPU says so in its summary */
    return failed ? 1 : gpu_unavailable(why, sizeof why) ? 77 : 0;
}
