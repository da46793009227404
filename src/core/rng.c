/* Counter-based random streams (rng.h): Philox4x32-10 draws as a pure
 * function of (seed, stream, n); uniform, normal, Laplace and Student-t variates. */
#include "core/rng.h"

#include "core/philox.h"

#include <math.h>

/* The round function and the uniform's bit layout live in core/philox.h,
 * shared with the CUDA sampler, so both backends draw the same numbers. */
void rng_philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4])
{
    philox4x32_10(counter, key, out);
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

uint64_t rng_stream_id(uint64_t a, uint64_t b, uint64_t c)
{
    return splitmix64(splitmix64(splitmix64(a) ^ b) ^ c);
}

void rng_stream_init(rng_stream *rng, uint64_t seed, uint64_t stream_id)
{
    philox_key_of(seed, rng->key);
    philox_counter_of(0, stream_id, rng->counter);
    rng->used = 4;
    rng->has_spare_normal = 0;
    rng->spare_normal = 0.0;
}

uint32_t rng_next_u32(rng_stream *rng)
{
    if (rng->used == 4) {
        philox4x32_10(rng->counter, rng->key, rng->block);
        if (++rng->counter[0] == 0)
            rng->counter[1]++;
        rng->used = 0;
    }
    return rng->block[rng->used++];
}

double rng_uniform(rng_stream *rng)
{
    uint32_t first = rng_next_u32(rng); /* two statements: the order is fixed */
    uint32_t second = rng_next_u32(rng);
    return philox_uniform_from_words(first, second);
}

double rng_normal(rng_stream *rng)
{
    if (rng->has_spare_normal) {
        rng->has_spare_normal = 0;
        return rng->spare_normal;
    }
    double u1 = rng_uniform(rng), u2 = rng_uniform(rng);
    double radius = sqrt(-2.0 * log(u1));
    double angle = 2.0 * M_PI * u2;
    rng->spare_normal = radius * sin(angle);
    rng->has_spare_normal = 1;
    return radius * cos(angle);
}

double rng_laplace(rng_stream *rng)
{
    double u = rng_uniform(rng) - 0.5;
    return u < 0 ? log(1.0 + 2.0 * u) : -log(1.0 - 2.0 * u);
}

double rng_student_t(rng_stream *rng, int nu)
{
    double chi2 = 0.0;
    for (int i = 0; i < nu; i++) {
        double g = rng_normal(rng);
        chi2 += g * g;
    }
    return rng_normal(rng) / sqrt(chi2 / nu);
}
