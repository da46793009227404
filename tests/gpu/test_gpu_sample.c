/* The device sampler (model/cuda/kernels_sample.h) against sampler_draw on
 * the CPU: the same logits and the same stream at the same draw index must
 * give the same token, except where float summation order decides a
 * boundary (documented in kernels_sample.cu: ~1e-13 per draw), so the test
 * asks for >= 99.9% agreement and prints every disagreement. Greedy is
 * exact (lowest id on ties). */
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
#include "model/cuda/kernels_sample.h"
#include "sampling/sampler.h"

static const uint64_t SEED = 0x5EEDull;

typedef struct sample_case {
    int64_t vocab, drawable;
    int rows;
} sample_case;

/* Round to the nearest bf16 (ties to even): model logits often come out of
 * a bf16 path, so equal logits, and ties at the nucleus cut, are common. */
static float round_bf16(float x)
{
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    bits += 0x7FFFu + ((bits >> 16) & 1u);
    bits &= 0xFFFF0000u;
    memcpy(&x, &bits, sizeof x);
    return x;
}

/* Row r: normal logits with a spread from 1 to 5 (flat to peaked), every
 * other row rounded to bf16; ids at or past `drawable` get a huge logit the
 * sampler must never see. */
static void fill_logits(float *row, const sample_case *c, int r, rng_stream *rng)
{
    double spread = 1.0 + 4.0 * rng_uniform(rng);
    for (int64_t i = 0; i < c->vocab; i++) {
        float x = (float)(spread * rng_normal(rng));
        row[i] = i >= c->drawable ? 100.0f : (r % 2 ? round_bf16(x) : x);
    }
}

static uint64_t case_stream_id(int case_index, int row)
{
    return rng_stream_id(17, (uint64_t)case_index, (uint64_t)row);
}

/* Draw indices spread over block boundaries (two uniforms per block). */
static uint64_t case_draw_index(int row) { return (uint64_t)(row % 7) * 13 + (uint64_t)(row % 2); }

/* The CPU's token: a fresh stream advanced past draw_index uniforms. */
static int32_t cpu_token(const sampler_config *cfg, const float *row, int64_t drawable,
                         sampler_scratch *scratch, uint64_t stream_id, uint64_t draw_index)
{
    rng_stream rng;
    rng_stream_init(&rng, SEED, stream_id);
    for (uint64_t k = 0; k < draw_index; k++)
        (void)rng_uniform(&rng);
    return sampler_draw(cfg, row, drawable, scratch, &rng);
}

/* Uploads logits and streams, samples, returns the tokens (host). */
static void gpu_tokens(const sampler_config *cfg, const sample_case *c, const float *logits,
                       const gpu_sample_stream *streams, int32_t *tokens)
{
    int32_t *d_tokens;
    void *d_work = NULL;
    size_t work = gpu_sample_workspace(c->rows, c->vocab);
    size_t logit_bytes = (size_t)c->rows * (size_t)c->vocab * sizeof *logits;
    float *d_logits = device_copy(logits, logit_bytes, 0);
    gpu_sample_stream *d_streams = device_copy(streams, (size_t)c->rows * sizeof *streams, 0);
    assert_int_equal(cudaMalloc((void **)&d_tokens, (size_t)c->rows * sizeof *tokens), cudaSuccess);
    if (work)
        assert_int_equal(cudaMalloc(&d_work, work), cudaSuccess);
    kpo_error err;
    int rc = gpu_sample_tokens(cfg, c->rows, c->vocab, c->drawable, d_logits, SEED, d_streams,
                               d_tokens, d_work, NULL, &err);
    if (rc != KPO_OK)
        fail_msg("gpu_sample_tokens: %s", err.message);
    assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
    assert_int_equal(cudaMemcpy(tokens, d_tokens, (size_t)c->rows * sizeof *tokens,
                                cudaMemcpyDeviceToHost),
                     cudaSuccess);
    cudaFree(d_logits);
    cudaFree(d_streams);
    cudaFree(d_tokens);
    cudaFree(d_work);
}

static void test_sampled_tokens_match_cpu(void **state)
{
    (void)state;
    GPU_REQUIRE_OR_SKIP();
    /* Qwen3: 151,936 output rows, 151,669 of them real tokens. */
    const sample_case cases[] = {{1000, 1000, 256}, {32768, 32768, 96}, {151936, 151669, 40}};
    const double temperatures[] = {0.7, 1.0}, top_ps[] = {0.7, 0.95, 1.0};
    int64_t compared = 0, disagreed = 0;
    for (int ci = 0; ci < 3; ci++) {
        const sample_case *c = &cases[ci];
        float *logits = malloc((size_t)c->rows * (size_t)c->vocab * sizeof *logits);
        gpu_sample_stream *streams = malloc((size_t)c->rows * sizeof *streams);
        int32_t *tokens = malloc((size_t)c->rows * sizeof *tokens);
        int32_t *again = malloc((size_t)c->rows * sizeof *again);
        sampler_scratch scratch;
        assert_int_equal(sampler_scratch_init(&scratch, c->vocab, NULL), KPO_OK);
        rng_stream data;
        rng_stream_init(&data, 99, (uint64_t)ci);
        for (int r = 0; r < c->rows; r++) {
            fill_logits(logits + (int64_t)r * c->vocab, c, r, &data);
            streams[r] = (gpu_sample_stream){case_stream_id(ci, r), case_draw_index(r)};
        }
        for (int ti = 0; ti < 2; ti++)
            for (int pi = 0; pi < 3; pi++) {
                sampler_config cfg = {temperatures[ti], top_ps[pi]};
                gpu_tokens(&cfg, c, logits, streams, tokens);
                gpu_tokens(&cfg, c, logits, streams, again);
                assert_memory_equal(tokens, again, (size_t)c->rows * sizeof *tokens);
                for (int r = 0; r < c->rows; r++) {
                    const float *row = logits + (int64_t)r * c->vocab;
                    int32_t want = cpu_token(&cfg, row, c->drawable, &scratch, streams[r].stream_id,
                                             streams[r].draw_index);
                    assert_true(tokens[r] >= 0 && tokens[r] < c->drawable);
                    compared++;
                    if (tokens[r] != want) {
                        disagreed++;
                        print_message("disagree: vocab %lld T %g top_p %g row %d: cpu %d (logit "
                                      "%.9g) gpu %d (logit %.9g)\n",
                                      (long long)c->vocab, cfg.temperature, cfg.top_p, r, want,
                                      row[want], tokens[r], row[tokens[r]]);
                    }
                }
            }
        sampler_scratch_free(&scratch);
        free(logits);
        free(streams);
        free(tokens);
        free(again);
    }
    print_message("device sampler: %lld of %lld tokens agree with the CPU\n",
                  (long long)(compared - disagreed), (long long)compared);
    assert_true((double)(compared - disagreed) >= 0.999 * (double)compared);
}

/* Greedy: the first maximum, exactly; ids past drawable never count. */
static void test_greedy_ties_take_lowest_id(void **state)
{
    (void)state;
    GPU_REQUIRE_OR_SKIP();
    const sample_case c = {151936, 151669, 6};
    float *logits = malloc((size_t)c.rows * (size_t)c.vocab * sizeof *logits);
    rng_stream data;
    rng_stream_init(&data, 5, 0);
    for (int64_t i = 0; i < (int64_t)c.rows * c.vocab; i++)
        logits[i] = round_bf16((float)rng_normal(&data));
    float *row[6];
    for (int r = 0; r < c.rows; r++) {
        row[r] = logits + (int64_t)r * c.vocab;
        row[r][c.vocab - 1] = 1000.0f; /* past drawable: ignored */
    }
    const int32_t expected[6] = {5, 0, 151668, 77, 1234, 0};
    row[0][5] = row[0][500] = row[0][151000] = 50.0f;   /* three-way tie */
    for (int64_t i = 0; i < c.vocab - 1; i++)
        row[1][i] = -3.0f;                                /* all equal */
    row[2][151668] = 60.0f;                               /* the last drawable id */
    row[3][77] = 0.0f;                                    /* +0 and -0 tie... */
    row[3][78] = -0.0f;
    for (int64_t i = 0; i < c.drawable; i++)              /* ...as the maximum */
        if (i != 77 && i != 78)
            row[3][i] = -fabsf(row[3][i]) - 1.0f;
    row[4][1234] = row[4][1235] = INFINITY;               /* +inf ties */
    for (int64_t i = 0; i < c.vocab - 1; i++)
        row[5][i] = -INFINITY;                            /* nothing finite: id 0, as the CPU */
    gpu_sample_stream streams[6] = {{0, 0}};
    int32_t tokens[6];
    sampler_config greedy = {0.0, 1.0};
    gpu_tokens(&greedy, &c, logits, streams, tokens);
    sampler_scratch scratch;
    assert_int_equal(sampler_scratch_init(&scratch, c.vocab, NULL), KPO_OK);
    for (int r = 0; r < c.rows; r++) {
        int32_t cpu = cpu_token(&greedy, row[r], c.drawable, &scratch, 0, 0);
        print_message("greedy row %d: gpu %d cpu %d expected %d\n", r, tokens[r], cpu, expected[r]);
        assert_int_equal(cpu, expected[r]);
        assert_int_equal(tokens[r], expected[r]);
    }
    sampler_scratch_free(&scratch);
    free(logits);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_ties_take_lowest_id),
        cmocka_unit_test(test_sampled_tokens_match_cpu),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    char why[512];
    return failed ? 1 : gpu_unavailable(why, sizeof why) ? 77 : 0;
}
