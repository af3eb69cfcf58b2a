/*
 * crc32c.c — CRC-32C, one byte per step through a 256-entry table (see crc32c.h).
 *
 * The table is built on first use under pthread_once; each entry is the remainder of its
 * index shifted through eight reflected polynomial divisions.
 */
#include "crc32c.h"

#include <pthread.h>

#define POLY 0x82F63B78u

static uint32_t table[256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void build_table(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t r = i;
        for (int k = 0; k < 8; k++) {
            r = (r & 1u) ? (r >> 1) ^ POLY : r >> 1;
        }
        table[i] = r;
    }
}

uint32_t kvl_crc32c(uint32_t crc, const void *p, size_t n)
{
    pthread_once(&table_once, build_table);
    const uint8_t *b = p;
    uint32_t c = ~crc;
    for (size_t i = 0; i < n; i++) {
        c = table[(c ^ b[i]) & 0xffu] ^ (c >> 8);
    }
    return ~c;
}
