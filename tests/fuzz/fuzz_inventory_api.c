/*
 * fuzz_inventory_api.c — libFuzzer target for what the inventory (collector/inventory/)
 * takes from outside: the query parameters of GET /api/v1/devices and /api/v1/search
 * (inv_query_parse), its own files (lines of records, the harness adding each line's CRC
 * so that the records' meaning is what is fuzzed, loaded by kvl_inventory_new), and the
 * definitions and events agents send (kvl_inventory_define, kvl_inventory_configured,
 * kvl_inventory_forget with names and labels from the input).
 *
 * Files go to a folder under /dev/shm (else /tmp). The first byte chooses what the rest is. Checked
 * beyond "no crash": every refusal has a sentence; an accepted query's limit is within its bounds
 * and its q 1-200 bytes without control characters; an inventory loaded from any records, or built
 * from any definitions, holds the same agents, devices, interfaces and retirements once written and
 * opened again (its snapshot is its state).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crc32c.h"
#include "fuzz_check.h"
#include "inventory.h"
#include "inventory_api.h"
#include "kvl.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* --- query parameters -------------------------------------------------------------------- */

typedef struct params {
    char *key[8], *val[8];
    size_t n;
} params_t;

static const char *get(const void *ctx, const char *key)
{
    const params_t *p = ctx;
    for (size_t i = 0; i < p->n; i++) {
        if (strcmp(p->key[i], key) == 0) {
            return p->val[i];
        }
    }
    return NULL;
}

static void query(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return;
    }
    bool search = data[0] & 1;
    char *text = strndup((const char *)data + 1, size - 1);
    params_t p = {0};
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line != NULL && p.n < 8;
         line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (eq == NULL) {
            continue;
        }
        *eq = '\0';
        p.key[p.n] = line;
        p.val[p.n++] = eq + 1;
    }
    inv_query_t q;
    char why[200] = "";
    int rc = inv_query_parse(get, &p, search, &q, why, sizeof(why));
    if (rc != 0) {
        CHECK(rc == KVL_EINVAL && why[0] != '\0');
    } else {
        CHECK(q.limit >= 1 && q.limit <= (search ? INV_SEARCH_LIMIT_MAX : INV_DEVICES_LIMIT_MAX));
        CHECK(!search || q.q != NULL);
        if (q.q != NULL) {
            size_t n = strlen(q.q);
            CHECK(n >= 1 && n <= INV_Q_MAX);
            for (size_t i = 0; i < n; i++) {
                CHECK((unsigned char)q.q[i] >= 0x20 && q.q[i] != 0x7f);
            }
        }
        CHECK(q.retired >= -1 && q.retired <= 1);
        CHECK(search || q.agent == NULL || (q.agent[0] != '\0' && strlen(q.agent) <= 200));
    }
    free(text);
}

/* --- the files and the model -------------------------------------------------------------- */

static char g_dir[64];

static void clean_dir(void)
{
    static const char *const names[] = {"inventory.snap",     "inventory.log",
                                        "changes.log",        "changes.1.log",
                                        "inventory.snap.tmp", "inventory.log.tmp"};
    char path[128];
    for (size_t i = 0; i < KVL_ARRAY_SIZE(names); i++) {
        snprintf(path, sizeof(path), "%s/%s", g_dir, names[i]);
        unlink(path);
    }
}

static kvl_inventory_t *open_inv(void)
{
    kvl_inventory_opts_t o = {.dir = g_dir, .changes_max = 8};
    kvl_inventory_t *inv = NULL;
    char err[256] = "";
    int rc = kvl_inventory_new(&o, &inv, err, sizeof(err));
    CHECK(rc == 0 || err[0] != '\0');
    return inv;
}

/* Written and opened again: the same state. */
static void reopen_same(kvl_inventory_t *inv)
{
    kvl_inventory_stats_t a, b;
    kvl_inventory_stats(inv, &a);
    kvl_inventory_free(inv);
    inv = open_inv();
    CHECK(inv != NULL);
    kvl_inventory_stats(inv, &b);
    CHECK(a.agents == b.agents && a.devices == b.devices && a.interfaces == b.interfaces &&
          a.retired == b.retired);
    kvl_inventory_free(inv);
}

static void write_line(FILE *f, const char *text, size_t n)
{
    fprintf(f, "%08x %.*s\n", kvl_crc32c(0, text, n), (int)n, text);
}

static void files(const uint8_t *data, size_t size)
{
    clean_dir();
    char path[128];
    snprintf(path, sizeof(path), "%s/inventory.snap", g_dir);
    FILE *snap = fopen(path, "w");
    snprintf(path, sizeof(path), "%s/inventory.log", g_dir);
    FILE *log = fopen(path, "w");
    snprintf(path, sizeof(path), "%s/changes.log", g_dir);
    FILE *ch = fopen(path, "w");
    CHECK(snap != NULL && log != NULL && ch != NULL);
    const char *head = "{\"t\":\"head\",\"gen\":3}";
    write_line(snap, head, strlen(head));
    write_line(log, head, strlen(head));
    /* lines: the first byte of each says which file (snapshot, log, changes) */
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
        if (n > 1) {
            FILE *f = p[0] % 3 == 0 ? snap : p[0] % 3 == 1 ? log : ch;
            write_line(f, p + 1, n - 1);
        }
        p += n + 1;
    }
    fclose(snap);
    fclose(log);
    fclose(ch);
    kvl_inventory_t *inv = open_inv();
    CHECK(inv != NULL);
    reopen_same(inv);
}

static const char *pick(const uint8_t **p, const uint8_t *end, char *buf, size_t cap)
{
    static const char *const names[] = {"a",       "b",       "rtr1",      "Gi0/1",   "",
                                        "ifIndex", "sysName", "ifIndexes", "ifAlias", "1",
                                        "2 1",     "1 x",     "device"};
    if (*p >= end) {
        return "a";
    }
    uint8_t c = *(*p)++;
    if (c < 0xf0) {
        return names[c % KVL_ARRAY_SIZE(names)];
    }
    size_t n = (size_t)(c - 0xf0);
    size_t k = 0;
    while (k < n && k + 1 < cap && *p < end) {
        buf[k++] = (char)*(*p)++;
    }
    buf[k] = '\0';
    return buf;
}

static void model(const uint8_t *data, size_t size)
{
    clean_dir();
    kvl_inventory_t *inv = open_inv();
    CHECK(inv != NULL);
    const uint8_t *p = data, *end = data + size;
    int64_t t = 1000;
    for (int ops = 0; p < end && ops < 64; ops++) {
        uint8_t op = *p++;
        char b[6][32];
        const char *agent = pick(&p, end, b[0], sizeof(b[0]));
        const char *dev = pick(&p, end, b[1], sizeof(b[1]));
        t += (op >> 4) * 1000 - 3000;
        switch (op % 4) {
        case 0:
        case 1: {
            kvl_label_t l[2];
            l[0].key = pick(&p, end, b[2], sizeof(b[2]));
            l[0].value = pick(&p, end, b[3], sizeof(b[3]));
            l[1].key = pick(&p, end, b[4], sizeof(b[4]));
            l[1].value = pick(&p, end, b[5], sizeof(b[5]));
            kvl_series_def_t d = {.device = dev,
                                  .scope = op % 4 == 0 ? KVL_SCOPE_DEVICE : KVL_SCOPE_INTERFACE,
                                  .instance = op % 4 == 0 ? "" : l[1].value,
                                  .labels = l,
                                  .n_labels = 2};
            int rc = kvl_inventory_define(inv, agent, "s", &d, t);
            CHECK(rc == 0 || rc == KVL_EINVAL);
            break;
        }
        case 2: {
            const char *names[2] = {dev, pick(&p, end, b[2], sizeof(b[2]))};
            int rc = kvl_inventory_configured(inv, agent, "s", names, 2, t);
            CHECK(rc == 0 || rc == KVL_EINVAL);
            break;
        }
        default: {
            int rc = kvl_inventory_forget(inv, agent, dev);
            CHECK(rc == 0 || rc == KVL_EINVAL);
        }
        }
    }
    reopen_same(inv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (g_dir[0] == '\0') {
        kvl_log_level = -1; /* quiet: most inputs are damaged */
        /* tmpfs when there is one: every input writes and syncs a snapshot twice */
        snprintf(g_dir, sizeof(g_dir), "%s/kvl-fuzz-inventory-XXXXXX",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        CHECK(mkdtemp(g_dir) != NULL);
    }
    if (size < 1) {
        return 0;
    }
    switch (data[0] % 3) {
    case 0:
        query(data + 1, size - 1);
        break;
    case 1:
        files(data + 1, size - 1);
        break;
    default:
        model(data + 1, size - 1);
    }
    return 0;
}
