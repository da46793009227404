#include "core/rng.h"

#include <math.h>

enum { PHILOX_ROUNDS = 10 };
static const uint32_t PHILOX_M0 = 0xD2511F53u, PHILOX_M1 = 0xCD9E8D57u;
static const uint32_t PHILOX_W0 = 0x9E3779B9u, PHILOX_W1 = 0xBB67AE85u;

void rng_philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < PHILOX_ROUNDS; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
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
    rng->key[0] = (uint32_t)seed;
    rng->key[1] = (uint32_t)(seed >> 32);
    rng->counter[0] = 0;
    rng->counter[1] = 0;
    rng->counter[2] = (uint32_t)stream_id;
    rng->counter[3] = (uint32_t)(stream_id >> 32);
    rng->used = 4;
    rng->has_spare_normal = 0;
    rng->spare_normal = 0.0;
}

uint32_t rng_next_u32(rng_stream *rng)
{
    if (rng->used == 4) {
        rng_philox4x32_10(rng->counter, rng->key, rng->block);
        if (++rng->counter[0] == 0)
            rng->counter[1]++;
        rng->used = 0;
    }
    return rng->block[rng->used++];
}

double rng_uniform(rng_stream *rng)
{
    uint64_t hi = rng_next_u32(rng) >> 5; /* 27 bits */
    uint64_t lo = rng_next_u32(rng) >> 6; /* 26 bits */
    /* (k + 0.5) / 2^53 never hits 0 or 1, so log() below is always finite. */
    return ((double)((hi << 26) | lo) + 0.5) * 0x1p-53;
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
