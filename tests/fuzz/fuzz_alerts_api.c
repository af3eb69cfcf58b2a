/*
 * fuzz_alerts_api.c — libFuzzer target for what the alert book's HTTP API and files take
 * from outside: silence and maintenance bodies (silence.h, as an API body and as a stored
 * record), the query parameters of GET /api/v1/alerts and its history (book_query.c),
 * the `alerts:` section of collector.yaml (alerts_config.h), and the book's own file: lines
 * of records (the harness adds each line's CRC, so the records' meaning is what is
 * fuzzed) loaded by kvl_book_new.
 *
 * The first byte chooses what the rest is. Checked beyond "no crash": every refusal has a
 * sentence; an accepted body written out as JSON and read back as a stored record gives
 * the same JSON (nothing lost or invented); an accepted filter's limit is 1-10000; a
 * configuration error names f.yaml:line:column; a book loaded from any records and
 * compacted holds, opened again, the same state (its snapshot is its state). The notifier
 * is faked here (kvl_notify_enqueue, kvl_notify_has_receiver).
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alerts_config.h"
#include "book.h"
#include "crc32c.h"
#include "fuzz_check.h"
#include "log.h"
#include "silence.h"

#define NOW_MS 1796464800000LL /* 2026-12-05T10:00:00Z */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void round_trip(json_t *first, bool maint)
{
    char why[256];
    json_t *again = NULL;
    if (maint) {
        kvl_maint_t *m = NULL;
        CHECK(kvl_maint_from_json(first, true, NULL, 0, &m, why, sizeof(why)) == 0);
        again = kvl_maint_to_json(m);
        kvl_maint_free(m);
    } else {
        kvl_silence_t *s = NULL;
        CHECK(kvl_silence_from_json(first, true, NULL, 0, &s, why, sizeof(why)) == 0);
        again = kvl_silence_to_json(s);
        kvl_silence_free(s);
    }
    CHECK(again != NULL && json_equal(first, again));
    json_decref(again);
}

static void body(const uint8_t *data, size_t size, bool maint, bool stored)
{
    json_t *o = json_loadb((const char *)data, size, 0, NULL);
    if (o == NULL) {
        return;
    }
    char why[256] = "";
    json_t *out = NULL;
    int rc;
    if (maint) {
        kvl_maint_t *m = NULL;
        rc = kvl_maint_from_json(o, stored, "fuzz", NOW_MS, &m, why, sizeof(why));
        if (rc == 0) {
            CHECK(m->weekly ? (m->days != 0 && m->duration_ms > 0) : m->ends_ms > m->starts_ms);
            out = kvl_maint_to_json(m);
            kvl_maint_free(m);
        }
    } else {
        kvl_silence_t *s = NULL;
        rc = kvl_silence_from_json(o, stored, "fuzz", NOW_MS, &s, why, sizeof(why));
        if (rc == 0) {
            CHECK(s->ends_ms > s->starts_ms && s->m.n >= 1 && s->m.n <= KVL_MATCHERS_MAX);
            out = kvl_silence_to_json(s);
            kvl_silence_free(s);
        }
    }
    if (rc == 0) {
        CHECK(out != NULL);
        round_trip(out, maint);
        json_decref(out);
    } else {
        CHECK(why[0] != '\0');
    }
    json_decref(o);
}

typedef struct params {
    char text[4096];
} params_t;

/* "k=v&k=v": the first value of key, in a static buffer. */
static const char *get(const void *ctx, const char *key)
{
    const params_t *p = ctx;
    static char value[4096];
    size_t kl = strlen(key);
    const char *s = p->text;
    while (*s != '\0') {
        const char *end = strchr(s, '&');
        size_t len = end != NULL ? (size_t)(end - s) : strlen(s);
        if (len > kl && strncmp(s, key, kl) == 0 && s[kl] == '=') {
            memcpy(value, s + kl + 1, len - kl - 1);
            value[len - kl - 1] = '\0';
            return value;
        }
        s += len + (end != NULL ? 1 : 0);
    }
    return NULL;
}

static void filter(const uint8_t *data, size_t size)
{
    params_t p;
    if (size >= sizeof(p.text)) {
        return;
    }
    memcpy(p.text, data, size);
    p.text[size] = '\0';
    kvl_book_filter_t f;
    char why[256] = "";
    if (kvl_book_filter_parse(get, &p, &f, why, sizeof(why)) == 0) {
        CHECK(f.limit >= 1 && f.limit <= 10000);
        CHECK(f.status >= 0 && f.status <= KVL_ALERT_RESOLVED);
    } else {
        CHECK(why[0] != '\0');
    }
    uint64_t fp;
    if (kvl_book_fp_parse(p.text, &fp) == 0) {
        char back[24];
        snprintf(back, sizeof(back), "%016llx", (unsigned long long)fp);
        CHECK(strcmp(back, p.text) == 0);
    }
}

static void config(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL) {
        return;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    char err[512] = "";
    kvl_alerts_cfg_t *c = kvl_alerts_cfg_parse_text("f.yaml", text, err, sizeof(err));
    if (c != NULL) {
        for (size_t i = 0; i < c->n_routes; i++) {
            CHECK(c->routes[i].receiver != NULL);
        }
        CHECK(c->history_max >= 100);
        kvl_alerts_cfg_free(c);
    } else {
        fuzz_check_position(err);
    }
    free(text);
}

bool kvl_notify_has_receiver(const kvl_notify_t *n, const char *receiver)
{
    (void)n;
    (void)receiver;
    return true;
}

int kvl_notify_enqueue(kvl_notify_t *n, const kvl_notification_t *note)
{
    (void)n;
    CHECK(note->n_alerts > 0 && note->receiver != NULL && note->group_key != NULL);
    return 0;
}

static int64_t fixed_clock(void *ctx)
{
    (void)ctx;
    return NOW_MS;
}

static kvl_book_t *book_open(uv_loop_t *loop, const char *dir)
{
    kvl_book_opts_t o = {.loop = loop, .dir = dir, .now_ms = fixed_clock};
    kvl_book_t *b = NULL;
    char err[512] = "";
    int rc = kvl_book_new(&o, &b, err, sizeof(err));
    CHECK(rc == 0 || err[0] != '\0');
    return b;
}

static void book_close(uv_loop_t *loop, kvl_book_t *b)
{
    kvl_book_free(b);
    uv_run(loop, UV_RUN_NOWAIT);
}

static char book_dir[64];

static void book_dir_remove(void)
{
    static const char *const names[] = {"book.snap", "book.log", "history.log", "history.1.log"};
    char path[128];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", book_dir, names[i]);
        unlink(path);
    }
    rmdir(book_dir);
}

/* The input's lines as book.log records after a head of generation 0. */
static void book_file(const uint8_t *data, size_t size)
{
    char *dir = book_dir;
    if (dir[0] == '\0') {
        /* memory-backed when there is one: each run syncs and renames a few files */
        snprintf(dir, sizeof(book_dir), "%s/kvl-fuzz-book-XXXXXX",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        CHECK(mkdtemp(dir) != NULL);
        atexit(book_dir_remove);
    }
    char path[128];
    snprintf(path, sizeof(path), "%s/book.snap", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/book.log", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    const char *head = "{\"t\":\"head\",\"gen\":0}";
    fprintf(f, "%08x %s\n", kvl_crc32c(0, head, strlen(head)), head);
    const char *p = (const char *)data;
    const char *end = p + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
        fprintf(f, "%08x ", kvl_crc32c(0, p, n));
        fwrite(p, 1, n, f);
        fputc('\n', f);
        p += n + 1;
    }
    fclose(f);
    uv_loop_t loop;
    CHECK(uv_loop_init(&loop) == 0);
    kvl_book_t *b = book_open(&loop, dir);
    if (b != NULL) {
        book_close(&loop, b);
        /* settled now (owed resolutions sent): twice more, the same state */
        kvl_book_stats_t s1, s2;
        b = book_open(&loop, dir);
        CHECK(b != NULL);
        kvl_book_stats(b, &s1);
        book_close(&loop, b);
        b = book_open(&loop, dir);
        CHECK(b != NULL);
        kvl_book_stats(b, &s2);
        book_close(&loop, b);
        CHECK(s1.active == s2.active && s1.unsettled == s2.unsettled &&
              s1.silences == s2.silences && s1.maintenance == s2.maintenance &&
              s2.damaged_lines == 0);
    }
    CHECK(uv_loop_close(&loop) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kvl_log_level = KVL_LOG_LEVEL_ERROR - 1;
    if (size < 1) {
        return 0;
    }
    switch ((uint8_t)(data[0] - (uint8_t)'0') % 7) { /* seeds start with a digit */
    case 0:
        body(data + 1, size - 1, false, false);
        break;
    case 1:
        body(data + 1, size - 1, true, false);
        break;
    case 2:
        body(data + 1, size - 1, false, true);
        break;
    case 3:
        body(data + 1, size - 1, true, true);
        break;
    case 4:
        filter(data + 1, size - 1);
        break;
    case 5:
        config(data + 1, size - 1);
        break;
    default:
        book_file(data + 1, size - 1);
        break;
    }
    return 0;
}
