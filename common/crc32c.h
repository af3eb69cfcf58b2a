/*
 * crc32c.h — CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven.
 *
 * Used to checksum records kept on disk (the agent's spool). kvl_crc32c(0, "123456789", 9)
 * is 0xE3069283. A running checksum is continued by passing the previous result as `crc`.
 */
#ifndef KVL_CRC32C_H
#define KVL_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Returns the CRC-32C of n bytes at p, continuing from `crc` (0 to start). */
uint32_t kvl_crc32c(uint32_t crc, const void *p, size_t n);

#endif
