/* Philox4x32-10 (Salmon et al. 2011) and the uniform built from it: the one
 * definition that rng.c (CPU streams) and the CUDA sampler both compile, so
 * a device thread can read draw n of a stream directly, without replaying
 * draws 0..n-1, and get exactly the bits rng_uniform gives on the CPU. */
#ifndef KPO_CORE_PHILOX_H
#define KPO_CORE_PHILOX_H

#include <stdint.h>

#include "core/hostdev.h"

/* Macros, not static consts: a namespace-scope const is not visible to
 * device code in every nvcc mode, and C11 enums cannot hold them. */
#define PHILOX_ROUNDS 10
#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

/* One Philox4x32 round function applied 10 times (Random123's layout). */
KPO_HOSTDEV static inline void philox4x32_10(const uint32_t counter[4], const uint32_t key[2],
                                             uint32_t out[4])
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

/* The stream layout rng_stream_init sets up: key = seed (low word first),
 * counter = [block index (64 bits, low word first), stream id (same)]. */
KPO_HOSTDEV static inline void philox_key_of(uint64_t seed, uint32_t key[2])
{
    key[0] = (uint32_t)seed;
    key[1] = (uint32_t)(seed >> 32);
}

KPO_HOSTDEV static inline void philox_counter_of(uint64_t block, uint64_t stream_id,
                                                 uint32_t counter[4])
{
    counter[0] = (uint32_t)block;
    counter[1] = (uint32_t)(block >> 32);
    counter[2] = (uint32_t)stream_id;
    counter[3] = (uint32_t)(stream_id >> 32);
}

/* Two consecutive 32-bit words -> a uniform in the open interval (0, 1)
 * with 53 random bits: the first word's top 27 bits, then the second's top
 * 26. (k + 0.5) / 2^53 never hits 0 or 1, so log(u) is always finite. */
KPO_HOSTDEV static inline double philox_uniform_from_words(uint32_t first, uint32_t second)
{
    uint64_t hi = first >> 5;  /* 27 bits */
    uint64_t lo = second >> 6; /* 26 bits */
    return ((double)((hi << 26) | lo) + 0.5) * 0x1p-53;
}

/* The n-th (from 0) value rng_uniform returns from a stream made by
 * rng_stream_init(seed, stream_id) that has only ever drawn uniforms: each
 * uniform takes two words and a Philox block holds four, so uniform n is
 * words 2(n mod 2), 2(n mod 2) + 1 of block n / 2. */
KPO_HOSTDEV static inline double philox_uniform_at(uint64_t seed, uint64_t stream_id, uint64_t n)
{
    uint32_t key[2], counter[4], block[4];
    philox_key_of(seed, key);
    philox_counter_of(n / 2, stream_id, counter);
    philox4x32_10(counter, key, block);
    int first = (int)(n % 2) * 2;
    return philox_uniform_from_words(block[first], block[first + 1]);
}

#endif
