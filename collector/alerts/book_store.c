/*
 * book_store.c — the alert book's files (book.h, "Persistence"): book.snap and book.log,
 * lines of "<CRC-32C in 8 hex digits> <JSON record>\n" whose first line is the head
 * {"t": "head", "gen": N, "format": V} (V: KVL_BOOK_FORMAT_VERSION; absent: 1, a newer one
 * refused at open); loading (damaged lines skipped and counted, a torn last line
 * dropped, a log of another generation than the snapshot ignored), appending with
 * fdatasync on demand, compaction (kvl_file_replace),
 * and the bounded history (history.log, rotated to history.1.log at history_max lines).
 */
#include "book_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "crc32c.h"
#include "fileio.h"
#include "kvl.h"
#include "log.h"

#define COMPACT_RECORDS 10000
#define LINE_MAX_BYTES (16u << 20)

static const char *const MOD = "alerts";

static void path_of(const kvl_book_t *b, const char *name, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", b->dir, name);
}

/* One line for a record (malloc'd, NUL-terminated), or NULL. */
static char *line_of(const json_t *rec, size_t *len)
{
    char *text = json_dumps(rec, JSON_COMPACT);
    if (text == NULL) {
        return NULL;
    }
    size_t n = strlen(text);
    char *line = malloc(n + 11);
    if (line != NULL) {
        uint32_t crc = kvl_crc32c(0, text, n);
        snprintf(line, n + 11, "%08" PRIx32 " %s\n", crc, text);
        *len = n + 10;
    }
    free(text);
    return line;
}

/* A line's record (new reference), or NULL when damaged. */
static json_t *parse_line(const char *line, size_t n)
{
    if (n < 11 || line[8] != ' ' || strspn(line, "0123456789abcdef") != 8) {
        return NULL;
    }
    uint32_t want = (uint32_t)strtoul(line, NULL, 16);
    if (kvl_crc32c(0, line + 9, n - 9) != want) {
        return NULL;
    }
    json_t *rec = json_loadb(line + 9, n - 9, 0, NULL);
    if (rec != NULL && !json_is_object(rec)) {
        json_decref(rec);
        return NULL;
    }
    return rec;
}

typedef struct file_scan {
    uint64_t damaged;
    bool torn;
    bool has_head;
    uint64_t gen;
    uint32_t format; /* the head's "format", 0 without one */
} file_scan_t;

typedef int (*record_fn)(kvl_book_t *b, const json_t *rec, void *ctx);

/* Reads a file of records, calling fn for each after the head (head_needed) or each
 * (history). Returns 0 (missing file included) or KVL_EIO. */
static int scan_file(kvl_book_t *b, const char *path, bool head_needed, uint64_t want_gen,
                     bool check_gen, record_fn fn, void *ctx, file_scan_t *sc)
{
    memset(sc, 0, sizeof(*sc));
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return errno == ENOENT ? 0 : KVL_EIO;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    bool first = true;
    bool skip_all = false;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] != '\n') {
            sc->torn = true;
            break;
        }
        json_t *rec = (size_t)n <= LINE_MAX_BYTES ? parse_line(line, (size_t)n - 1) : NULL;
        if (first && head_needed) {
            first = false;
            const char *t = rec != NULL ? json_string_value(json_object_get(rec, "t")) : NULL;
            const json_t *gen = rec != NULL ? json_object_get(rec, "gen") : NULL;
            if (t == NULL || strcmp(t, "head") != 0 || !json_is_integer(gen)) {
                sc->damaged++;
                skip_all = true; /* without its head, a file's generation is unknown */
            } else {
                sc->has_head = true;
                sc->gen = (uint64_t)json_integer_value(gen);
                const json_t *fmt = json_object_get(rec, "format");
                json_int_t v = json_is_integer(fmt) ? json_integer_value(fmt) : 0;
                sc->format = v < 0 ? 0 : v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
                skip_all =
                    (check_gen && sc->gen != want_gen) || sc->format > KVL_BOOK_FORMAT_VERSION;
            }
            json_decref(rec);
            continue;
        }
        if (skip_all) {
            json_decref(rec);
            continue;
        }
        if (rec == NULL || fn(b, rec, ctx) != 0) {
            sc->damaged++;
        }
        json_decref(rec);
    }
    free(line);
    bool err = ferror(f) != 0;
    fclose(f);
    return err ? KVL_EIO : 0;
}

static int apply_fn(kvl_book_t *b, const json_t *rec, void *ctx)
{
    KVL_UNUSED(ctx);
    return book_apply_record(b, rec);
}

static void ring_push(kvl_book_t *b, json_t *rec)
{
    if (b->hist_cap == 0) {
        json_decref(rec);
        return;
    }
    if (b->hist_n == b->hist_cap) {
        json_decref(b->hist[b->hist_head]);
        b->hist[b->hist_head] = rec;
        b->hist_head = (b->hist_head + 1) % b->hist_cap;
    } else {
        b->hist[(b->hist_head + b->hist_n) % b->hist_cap] = rec;
        b->hist_n++;
    }
}

static int hist_fn(kvl_book_t *b, const json_t *rec, void *ctx)
{
    uint64_t *count = ctx;
    if (!json_is_integer(json_object_get(rec, "at")) ||
        !json_is_string(json_object_get(rec, "event"))) {
        return KVL_EINVAL;
    }
    ring_push(b, json_incref((json_t *)rec));
    (*count)++;
    return 0;
}

json_t *book_history_at(const kvl_book_t *b, size_t i)
{
    KVL_ASSERT(i < b->hist_n);
    return b->hist[(b->hist_head + i) % b->hist_cap];
}

/* Appends a record's line to out. Returns 0 or KVL_ENOMEM. */
static int buf_line(kvl_buf_t *out, const json_t *rec)
{
    size_t len;
    char *line = rec != NULL ? line_of(rec, &len) : NULL;
    int rc = line != NULL ? kvl_buf_append(out, line, len) : KVL_ENOMEM;
    free(line);
    return rc;
}

/* Writes name atomically (kvl_file_replace): the head of generation gen, then the records. */
static int write_atomic(kvl_book_t *b, const char *name, uint64_t gen, const json_t *records)
{
    char path[4096];
    path_of(b, name, path, sizeof(path));
    kvl_buf_t out = {0};
    json_t *head = json_pack("{s:s, s:I, s:I}", "t", "head", "gen", (json_int_t)gen, "format",
                             (json_int_t)KVL_BOOK_FORMAT_VERSION);
    int rc = buf_line(&out, head);
    json_decref(head);
    for (size_t i = 0; rc == 0 && records != NULL && i < json_array_size(records); i++) {
        rc = buf_line(&out, json_array_get(records, i));
    }
    if (rc == 0) {
        rc = kvl_file_replace(path, out.data, out.len, 0640) == 0 ? 0 : KVL_EIO;
    }
    kvl_buf_free(&out);
    return rc;
}

int book_compact(kvl_book_t *b, bool force)
{
    if (!force && b->log_records < COMPACT_RECORDS) {
        return 0;
    }
    json_t *records = json_array();
    if (records == NULL || book_state_records(b, records) != 0) {
        json_decref(records);
        return KVL_ENOMEM;
    }
    uint64_t gen = b->gen + 1;
    int rc = write_atomic(b, "book.snap", gen, records);
    json_decref(records);
    if (rc == 0) {
        rc = write_atomic(b, "book.log", gen, NULL);
    }
    if (rc != 0) {
        KVL_LOG_ERROR(MOD, b->dir, "the alert book could not be compacted: %s", strerror(errno));
        return rc;
    }
    char path[4096];
    path_of(b, "book.log", path, sizeof(path));
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) {
        KVL_LOG_ERROR(MOD, path, "cannot open: %s", strerror(errno));
        return KVL_EIO;
    }
    if (b->log_fd >= 0) {
        close(b->log_fd);
    }
    b->log_fd = fd;
    b->gen = gen;
    b->log_records = 0;
    b->log_unsynced = false;
    return 0;
}

int book_log(kvl_book_t *b, json_t *rec)
{
    if (b->replaying) {
        json_decref(rec);
        return 0;
    }
    if (rec == NULL) {
        return KVL_ENOMEM;
    }
    size_t len;
    char *line = line_of(rec, &len);
    json_decref(rec);
    if (line == NULL) {
        return KVL_ENOMEM;
    }
    int rc = b->log_fd >= 0 ? kvl_write_all(b->log_fd, line, len) : KVL_EIO;
    free(line);
    if (rc != 0) {
        KVL_LOG_ERROR(MOD, b->dir, "book.log: write failed: %s", strerror(errno));
        return rc;
    }
    b->log_records++;
    b->log_unsynced = true;
    return 0;
}

int book_log_sync(kvl_book_t *b)
{
    if (!b->log_unsynced || b->log_fd < 0) {
        return 0;
    }
    if (fdatasync(b->log_fd) != 0) {
        KVL_LOG_ERROR(MOD, b->dir, "book.log: fdatasync failed: %s", strerror(errno));
        return KVL_EIO;
    }
    b->log_unsynced = false;
    return 0;
}

static int hist_open(kvl_book_t *b)
{
    char path[4096];
    path_of(b, "history.log", path, sizeof(path));
    b->hist_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    return b->hist_fd >= 0 ? 0 : KVL_EIO;
}

void book_history(kvl_book_t *b, json_t *rec)
{
    if (b->replaying || rec == NULL) {
        json_decref(rec);
        return;
    }
    size_t len;
    char *line = line_of(rec, &len);
    ring_push(b, rec);
    if (line == NULL || b->hist_fd < 0) {
        free(line);
        return;
    }
    if (kvl_write_all(b->hist_fd, line, len) != 0) {
        KVL_LOG_ERROR(MOD, b->dir, "history.log: write failed: %s", strerror(errno));
    }
    free(line);
    if (++b->hist_in_file >= (uint64_t)b->cfg->history_max) {
        char cur[4096], old[4096];
        path_of(b, "history.log", cur, sizeof(cur));
        path_of(b, "history.1.log", old, sizeof(old));
        close(b->hist_fd);
        b->hist_fd = -1;
        if (rename(cur, old) != 0 || hist_open(b) != 0) {
            KVL_LOG_ERROR(MOD, b->dir, "history.log: rotation failed: %s", strerror(errno));
        }
        b->hist_in_file = 0;
    }
}

static void report(const char *path, const file_scan_t *sc)
{
    if (sc->damaged > 0) {
        KVL_LOG_WARN(MOD, path, "%" PRIu64 " damaged records skipped, the rest kept", sc->damaged);
    }
    if (sc->torn) {
        KVL_LOG_WARN(MOD, path, "a torn last record (a write cut short) dropped");
    }
}

int book_store_open(kvl_book_t *b, char *err, size_t errlen)
{
    if (mkdir(b->dir, 0750) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: cannot create: %s", b->dir, strerror(errno));
        return KVL_EIO;
    }
    b->hist_cap = (size_t)b->cfg->history_max;
    b->hist = calloc(b->hist_cap, sizeof(*b->hist));
    if (b->hist == NULL) {
        snprintf(err, errlen, "out of memory");
        return KVL_ENOMEM;
    }
    char snap[4096], log[4096], h1[4096], h0[4096];
    path_of(b, "book.snap", snap, sizeof(snap));
    path_of(b, "book.log", log, sizeof(log));
    path_of(b, "history.1.log", h1, sizeof(h1));
    path_of(b, "history.log", h0, sizeof(h0));
    file_scan_t sc;
    b->replaying = true;
    int rc = scan_file(b, snap, true, 0, false, apply_fn, NULL, &sc);
    const char *loss = "its alerts, acknowledgements, silences and history are then lost";
    if (rc == 0 && kvl_format_check(snap, sc.format, KVL_BOOK_FORMAT_VERSION, "kaaval-collector",
                                    loss, err, errlen) != 0) {
        b->replaying = false;
        return KVL_EPROTO;
    }
    report(snap, &sc);
    b->st.damaged_lines += sc.damaged;
    uint64_t gen = sc.has_head ? sc.gen : 0;
    if (rc == 0) {
        rc = scan_file(b, log, true, gen, true, apply_fn, NULL, &sc);
        if (rc == 0 && kvl_format_check(log, sc.format, KVL_BOOK_FORMAT_VERSION, "kaaval-collector",
                                        loss, err, errlen) != 0) {
            b->replaying = false;
            return KVL_EPROTO;
        }
        report(log, &sc);
        b->st.damaged_lines += sc.damaged;
        if (sc.has_head && sc.gen != gen) {
            KVL_LOG_INFO(MOD, log,
                         "generation %" PRIu64 ", not the snapshot's %" PRIu64
                         ": already in the snapshot, not replayed",
                         sc.gen, gen);
        }
    }
    uint64_t count = 0;
    if (rc == 0) {
        rc = scan_file(b, h1, false, 0, false, hist_fn, &count, &sc);
        report(h1, &sc);
        count = 0;
    }
    if (rc == 0) {
        rc = scan_file(b, h0, false, 0, false, hist_fn, &count, &sc);
        report(h0, &sc);
        b->hist_in_file = count + sc.damaged;
    }
    b->replaying = false;
    if (rc != 0) {
        snprintf(err, errlen, "%s: cannot read the alert book: %s", b->dir, strerror(errno));
        return rc;
    }
    b->gen = gen;
    if (book_compact(b, true) != 0 || hist_open(b) != 0) {
        snprintf(err, errlen, "%s: cannot write the alert book: %s", b->dir, strerror(errno));
        return KVL_EIO;
    }
    return 0;
}

void book_store_close(kvl_book_t *b)
{
    if (b->log_fd >= 0) {
        close(b->log_fd);
        b->log_fd = -1;
    }
    if (b->hist_fd >= 0) {
        close(b->hist_fd);
        b->hist_fd = -1;
    }
    for (size_t i = 0; i < b->hist_n; i++) {
        json_decref(b->hist[(b->hist_head + i) % b->hist_cap]);
    }
    free(b->hist);
    b->hist = NULL;
    b->hist_n = 0;
}
