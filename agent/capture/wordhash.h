/*
 * wordhash.h — the pieces of the capture's word-at-a-time hashes (flows.c's flow keys,
 * sketch.c's host and conversation keys): a rotation, and a 64-bit finalizer that spreads
 * every input bit over the 32 bits the tables index with.
 */
#ifndef KVL_CAPTURE_WORDHASH_H
#define KVL_CAPTURE_WORDHASH_H

#include <stdint.h>

static inline uint64_t kvl_rotl64(uint64_t x, unsigned r)
{
    return x << r | x >> (64 - r);
}

/* h's bits mixed (two multiply-xorshift rounds), the low 32 kept. */
static inline uint32_t kvl_fmix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return (uint32_t)h;
}

#endif
