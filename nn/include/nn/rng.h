/* rng.h: the library's one random number generator, seeded and
 * reproducible: xoshiro128+-style state advanced by splitmix64, small
 * enough to store in a checkpoint. Never rand(). Not for cryptography. */
#ifndef NN_RNG_H
#define NN_RNG_H

#include <stdint.h>

typedef struct nn_rng {
    uint64_t s[2];
} nn_rng;

/* Seeds r from a 64-bit seed (any value, 0 included). */
void nn_rng_seed(nn_rng *r, uint64_t seed);
/* 64 random bits (xorshift128+). */
uint64_t nn_rng_next(nn_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double nn_rng_uniform(nn_rng *r);
/* Standard normal (Box-Muller; one value per call, the second is dropped
 * so the stream depends only on the number of calls). */
double nn_rng_normal(nn_rng *r);
/* Uniform integer in [0, n), n >= 1 (Lemire's multiply-shift; bias below
 * 2^-32 for n < 2^32, irrelevant here). */
uint32_t nn_rng_below(nn_rng *r, uint32_t n);
/* A stateless hash of (seed, counter) to [0, 1): the same on every backend,
 * so a dropout mask on the GPU equals the CPU's for the same step. */
static inline double nn_hash_uniform(uint64_t seed, uint64_t counter)
{
    uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (counter + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

#endif
