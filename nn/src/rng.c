/* rng.c: xorshift128+ seeded through splitmix64 (Vigna), Box-Muller. */
#include <math.h>
#include "nn/rng.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void nn_rng_seed(nn_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    r->s[0] = splitmix64(&x);
    r->s[1] = splitmix64(&x);
    if (!r->s[0] && !r->s[1]) /* the one state xorshift cannot leave */
        r->s[1] = 1;
}

uint64_t nn_rng_next(nn_rng *r)
{
    uint64_t s1 = r->s[0];
    const uint64_t s0 = r->s[1];
    r->s[0] = s0;
    s1 ^= s1 << 23;
    r->s[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return r->s[1] + s0;
}

double nn_rng_uniform(nn_rng *r)
{
    return (double)(nn_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

double nn_rng_normal(nn_rng *r)
{
    double u1 = nn_rng_uniform(r), u2 = nn_rng_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

uint32_t nn_rng_below(nn_rng *r, uint32_t n)
{
    return (uint32_t)(((nn_rng_next(r) >> 32) * (uint64_t)n) >> 32);
}
