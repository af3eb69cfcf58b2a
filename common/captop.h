/*
 * captop.h — the capture's top hosts and conversations of one interval as text, the form
 * they travel in (the agent's `capture_top` event, agent/capture/capship.h) and are kept in
 * at the collector (collector/captop/captop_store.h). Pure: no allocation, no I/O.
 *
 * A list: entries separated by ',', each "ADDR BYTES ERROR PACKETS" (a host) or
 * "ADDR ADDR BYTES ERROR PACKETS" (a conversation); ADDR an IPv4 or IPv6 address as
 * inet_ntop writes it, the numbers decimal (BYTES an upper bound, BYTES - ERROR a lower one;
 * PACKETS the frames since the entry took its counter). An empty list is "". At most
 * KVL_CAPTOP_MAX entries: a parser refuses more, so what is held never follows what a peer
 * claims.
 *
 * A record (one line of the collector's file, without its newline):
 *   START_MS END_MS|HOSTS|CONVS
 */
#ifndef KVL_CAPTOP_H
#define KVL_CAPTOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KVL_CAPTOP_MAX 20  /* entries per list */
#define KVL_CAPTOP_ADDR 46 /* an address's text with its NUL (INET6_ADDRSTRLEN) */
/* The longest list's text: KVL_CAPTOP_MAX conversations of two IPv6 addresses and three
 * 20-digit numbers, with separators; and a record's. */
#define KVL_CAPTOP_LIST_LEN (KVL_CAPTOP_MAX * (2 * KVL_CAPTOP_ADDR + 3 * 21) + 1)
#define KVL_CAPTOP_LINE_LEN (2 * 21 + 2 * KVL_CAPTOP_LIST_LEN + 4)

typedef struct kvl_captop_entry {
    char a[KVL_CAPTOP_ADDR];
    char b[KVL_CAPTOP_ADDR]; /* "" for a host */
    uint64_t bytes, err, packets;
} kvl_captop_entry_t;

typedef struct kvl_captop {
    int64_t start_ms, end_ms;
    size_t n_hosts, n_convs;
    kvl_captop_entry_t hosts[KVL_CAPTOP_MAX];
    kvl_captop_entry_t convs[KVL_CAPTOP_MAX];
} kvl_captop_t;

/* Writes n entries (conversations when conv) as a list into out. Returns the length, or
 * KVL_EINVAL when it does not fit (out then holds "") or an entry's address is empty. */
int kvl_captop_list_format(const kvl_captop_entry_t *e, size_t n, bool conv, char *out,
                           size_t outlen);
/* Parses a list (hosts, or conversations when conv) into out (room for max). Returns how
 * many, or KVL_EDECODE: an address inet_pton refuses, a number that is not plain decimal or
 * above 2^64 - 1, ERROR above BYTES, a missing or extra part, more than max entries. */
int kvl_captop_list_parse(const char *s, bool conv, kvl_captop_entry_t *out, size_t max);

/* A record's line into out (at least KVL_CAPTOP_LINE_LEN). Returns the length or KVL_EINVAL. */
int kvl_captop_line_format(const kvl_captop_t *t, char *out, size_t outlen);
/* Parses len bytes of a line (no newline). Returns 0, or KVL_EDECODE (as for the lists; also
 * times that are not decimal, END before START). */
int kvl_captop_line_parse(const char *line, size_t len, kvl_captop_t *t);

#endif
