/* Host helpers shared by the gpu suite's cmocka tests (test_gpu_*.c): error
 * checks, bf16-rounded random inputs, device uploads and downloads, and the
 * worst-element search behind each file's expect_close. Include it after
 * <cmocka.h> (for fail_msg, assert_*) and <cuda_runtime_api.h>; everything
 * is static inline, so a file that uses only part of it gets no warnings.
 * Tolerances stay in the test files. */
#ifndef KPO_TESTS_GPU_TEST_UTIL_H
#define KPO_TESTS_GPU_TEST_UTIL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/rng.h"
#include "model/safetensors.h"

/* Fails the test with the callee's message unless call returns KPO_OK;
 * the call names its error ERR. */
#define CHECK_OK(call)                                                         \
    do {                                                                       \
        kpo_error err_;                                                        \
        error_clear(&err_);                                                    \
        if ((call) != KPO_OK)                                                  \
            fail_msg("%s: %s", #call, err_.message);                           \
    } while (0)
#define ERR (&err_)

/* n values offset + scale * normal from rng stream (seed, stream), rounded
 * to bf16 so CPU and GPU see the same inputs: floats, and (unless bits is
 * NULL) the same values as bf16 bits. */
static inline float *random_bf16_stream(int64_t n, double scale, double offset, uint64_t seed,
                                        uint64_t stream, uint16_t **bits)
{
    rng_stream rng;
    rng_stream_init(&rng, seed, stream);
    float *x = malloc((size_t)n * sizeof *x);
    if (bits)
        *bits = malloc((size_t)n * sizeof **bits);
    for (int64_t i = 0; i < n; i++) {
        const uint16_t b = safetensors_f32_to_bf16((float)(offset + scale * rng_normal(&rng)));
        x[i] = safetensors_bf16_to_f32(b);
        if (bits)
            (*bits)[i] = b;
    }
    return x;
}

/* n normal values times scale, rounded to bf16 (stream 3). */
static inline float *random_bf16(int64_t n, double scale, uint64_t seed, uint16_t **bits)
{
    return random_bf16_stream(n, scale, 0.0, seed, 3, bits);
}

/* n normal values times scale as fp32 (stream 5: not random_bf16's). */
static inline float *random_f32(int64_t n, double scale, uint64_t seed)
{
    rng_stream rng;
    rng_stream_init(&rng, seed, 5);
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(scale * rng_normal(&rng));
    return x;
}

/* A device copy of host[bytes], or with host NULL a buffer of `fill`
 * bytes: each test picks what unwritten outputs should read as (0, or
 * 0xff for NaN bits). Zero bytes still allocate, so the pointer is real. */
static inline void *device_copy(const void *host, size_t bytes, int fill)
{
    void *d = NULL;
    assert_int_equal(cudaMalloc(&d, bytes ? bytes : 1), cudaSuccess);
    if (host)
        assert_int_equal(cudaMemcpy(d, host, bytes, cudaMemcpyHostToDevice), cudaSuccess);
    else
        assert_int_equal(cudaMemset(d, fill, bytes), cudaSuccess);
    return d;
}

/* Device bf16 [n] -> host floats (synchronises). */
static inline float *download_bf16(const uint16_t *d, int64_t n)
{
    uint16_t *bits = malloc((size_t)n * sizeof *bits);
    float *x = malloc((size_t)n * sizeof *x);
    assert_int_equal(cudaMemcpy(bits, d, (size_t)n * 2, cudaMemcpyDeviceToHost), cudaSuccess);
    for (int64_t i = 0; i < n; i++)
        x[i] = safetensors_bf16_to_f32(bits[i]);
    free(bits);
    return x;
}

/* Device fp32 [n] -> host (synchronises). */
static inline float *download_f32(const float *d, int64_t n)
{
    float *x = malloc((size_t)n * sizeof *x);
    assert_int_equal(cudaMemcpy(x, d, (size_t)n * 4, cudaMemcpyDeviceToHost), cudaSuccess);
    return x;
}

static inline double max_abs(const double *x, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++)
        m = fmax(m, fabs(x[i]));
    return m;
}

/* The worst element of got against want: the largest
 * |got - want| / (rtol |want| + atol + guard), NaN counting as infinite,
 * the first such element on ties. guard keeps a zero tolerance from
 * dividing by zero; each test passes its own. Returns -1 for n == 0. */
static inline double worst_element(const float *got, const double *want, int64_t n, double rtol,
                                   double atol, double guard, int64_t *at)
{
    double worst = -1;
    *at = 0;
    for (int64_t i = 0; i < n; i++) {
        double excess = fabs((double)got[i] - want[i]) / (rtol * fabs(want[i]) + atol + guard);
        if (isnan(excess))
            excess = INFINITY;
        if (excess > worst)
            worst = excess, *at = i;
    }
    return worst;
}

#endif
