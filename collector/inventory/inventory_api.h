/*
 * inventory_api.h — the inventory API's parameter checks (inventory_api.c), apart so that a
 * fuzz target (tests/fuzz/fuzz_inventory_api.c) and the tests can call them.
 */
#ifndef KVL_INVENTORY_API_H
#define KVL_INVENTORY_API_H

#include <stdbool.h>
#include <stddef.h>

#define INV_Q_MAX 200               /* bytes of q= */
#define INV_DEVICES_LIMIT_MAX 10000 /* devices listed at most (and by default) */
#define INV_SEARCH_LIMIT_DEFAULT 50 /* search results per kind by default */
#define INV_SEARCH_LIMIT_MAX 500    /* and at most */

typedef struct inv_query {
    const char *site;  /* NULL: any */
    const char *agent; /* NULL: any */
    const char *q;     /* NULL: no text filter (required for a search) */
    int retired;       /* -1 all, 0 not retired, 1 retired only */
    size_t limit;
} inv_query_t;

/* Reads and checks the parameters of GET /api/v1/devices (search false: site, agent, q,
 * retired, limit) or GET /api/v1/search (q, limit) through get (NULL: absent). Returns 0,
 * or KVL_EINVAL with a sentence in why. The strings stay get's. */
int inv_query_parse(const char *(*get)(const void *ctx, const char *key), const void *ctx,
                    bool search, inv_query_t *q, char *why, size_t whylen);

#endif
