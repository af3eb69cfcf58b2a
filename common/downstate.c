/*
 * downstate.c — the down-state file of the agent's devices and probe targets (see
 * downstate.h): loading (strict, all or nothing), the table held in memory (a plain array:
 * only what is down, looked up on changes), and the delayed, atomic rewrite.
 */
#include "downstate.h"

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

#define MOD "state"
#define MAGIC "kaaval-downstate 1\n" /* the header line: its name and the format version */
_Static_assert(KVL_DOWNSTATE_FORMAT_VERSION == 1, "MAGIC says the version");

typedef struct entry {
    char *name;
    int reason;
    int64_t since_ms;
} entry_t;

struct kvl_downstate {
    uv_loop_t *loop;
    uv_timer_t timer;
    char *path;
    char *what;
    entry_t *e;
    size_t n, cap;
    bool dirty;
    bool write_failing;
};

static bool name_ok(const char *name)
{
    if (name == NULL || *name == '\0') {
        return false;
    }
    for (const unsigned char *c = (const unsigned char *)name; *c; c++) {
        if (*c < 0x20 || *c == 0x7f) {
            return false;
        }
    }
    return true;
}

/* --- parsing --------------------------------------------------------------------------------- */

static bool parse_i64(const char **p, const char *end, int64_t *out)
{
    const char *s = *p;
    bool neg = false;
    if (s < end && *s == '-') {
        neg = true;
        s++;
    }
    if (s == end || *s < '0' || *s > '9') {
        return false;
    }
    int64_t v = 0;
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
        if (v > (INT64_MAX - (*s - '0')) / 10) {
            return false;
        }
        v = v * 10 + (*s - '0');
    }
    *p = s;
    *out = neg ? -v : v;
    return true;
}

int kvl_downstate_parse(const char *text, size_t len,
                        void (*cb)(void *arg, const char *name, size_t name_len, int reason,
                                   int64_t since_ms),
                        void *arg, const char **why)
{
    const char *end = text + len;
    size_t ml = strlen(MAGIC);
    if (len < ml || memcmp(text, MAGIC, ml) != 0) {
        *why = "not a kaaval down-state file (first line)";
        return -1;
    }
    const char *p = text + ml;
    int n = 0;
    for (;;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL) {
            *why = "cut short (no end line)";
            return -1;
        }
        if (nl - p >= 4 && memcmp(p, "end ", 4) == 0) {
            const char *q = p + 4;
            int64_t count;
            if (!parse_i64(&q, nl, &count) || q == nl || *q != ' ' || nl - (q + 1) != 8) {
                *why = "damaged end line";
                return -1;
            }
            uint32_t want = 0;
            for (const char *h = q + 1; h < nl; h++) {
                int d = *h >= '0' && *h <= '9'   ? *h - '0'
                        : *h >= 'a' && *h <= 'f' ? *h - 'a' + 10
                                                 : -1;
                if (d < 0) {
                    *why = "damaged end line";
                    return -1;
                }
                want = want << 4 | (uint32_t)d;
            }
            if (count != n) {
                *why = "entry count does not match";
                return -1;
            }
            if (kvl_crc32c(0, text, (size_t)(p - text)) != want) {
                *why = "checksum does not match";
                return -1;
            }
            if (nl + 1 != end) {
                *why = "bytes after the end line";
                return -1;
            }
            return n;
        }
        const char *q = p;
        int64_t since, reason;
        if (!parse_i64(&q, nl, &since) || q == nl || *q++ != ' ' || !parse_i64(&q, nl, &reason) ||
            q == nl || *q++ != ' ' || q == nl || reason < INT32_MIN || reason > INT32_MAX) {
            *why = "damaged entry line";
            return -1;
        }
        for (const char *c = q; c < nl; c++) {
            if ((unsigned char)*c < 0x20 || *c == 0x7f) {
                *why = "control character in a name";
                return -1;
            }
        }
        if (n == INT32_MAX) {
            *why = "too many entries";
            return -1;
        }
        cb(arg, q, (size_t)(nl - q), (int)reason, since);
        n++;
        p = nl + 1;
    }
}

/* --- the table ------------------------------------------------------------------------------- */

static entry_t *find(const kvl_downstate_t *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->e[i].name, name) == 0) {
            return &s->e[i];
        }
    }
    return NULL;
}

static int add(kvl_downstate_t *s, const char *name, size_t len, int reason, int64_t since)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        entry_t *e = realloc(s->e, cap * sizeof(*e));
        if (e == NULL) {
            return KVL_ENOMEM;
        }
        s->e = e;
        s->cap = cap;
    }
    char *copy = malloc(len + 1);
    if (copy == NULL) {
        return KVL_ENOMEM;
    }
    memcpy(copy, name, len);
    copy[len] = '\0';
    s->e[s->n++] = (entry_t){.name = copy, .reason = reason, .since_ms = since};
    return 0;
}

static void clear_all(kvl_downstate_t *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->e[i].name);
    }
    s->n = 0;
}

typedef struct load_ctx {
    kvl_downstate_t *s;
    int rc;
} load_ctx_t;

static void on_loaded(void *arg, const char *name, size_t len, int reason, int64_t since)
{
    load_ctx_t *c = arg;
    if (c->rc != 0) {
        return;
    }
    /* A name twice: the later line wins (never written so, but harmless). */
    char tmp[KVL_DOWNSTATE_NAME_MAX + 1];
    if (len <= KVL_DOWNSTATE_NAME_MAX) {
        memcpy(tmp, name, len);
        tmp[len] = '\0';
        entry_t *e = find(c->s, tmp);
        if (e != NULL) {
            e->reason = reason;
            e->since_ms = since;
            return;
        }
    }
    c->rc = add(c->s, name, len, reason, since);
}

static int load(kvl_downstate_t *s)
{
    int fd = open(s->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            return 0;
        }
        KVL_LOG_WARN(MOD, s->path, "cannot read the %s (%s): ignored, everything starts unknown",
                     s->what, strerror(errno));
        return 0;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > KVL_DOWNSTATE_MAX_BYTES) {
        close(fd);
        KVL_LOG_WARN(MOD, s->path,
                     "the %s is not a regular file of at most %u bytes: ignored, everything "
                     "starts unknown",
                     s->what, KVL_DOWNSTATE_MAX_BYTES);
        return 0;
    }
    size_t size = (size_t)st.st_size;
    char *text = malloc(size ? size : 1);
    if (text == NULL) {
        close(fd);
        return KVL_ENOMEM;
    }
    size_t got = kvl_read_all(fd, text, size);
    close(fd);
    const char *nl = got == size ? memchr(text, '\n', size) : NULL;
    uint32_t v = 0;
    if (nl != NULL &&
        kvl_format_text_header(text, (size_t)(nl - text), "kaaval-downstate", &v) == 0 &&
        v > KVL_DOWNSTATE_FORMAT_VERSION) {
        /* Only what is down (a cache of events): ignored and written again in this format. */
        free(text);
        KVL_LOG_WARN(MOD, s->path,
                     "the %s was written by a newer kaaval (format %" PRIu32
                     "; this one reads up to %u): ignored, everything starts unknown, and it is "
                     "written again in format %u",
                     s->what, v, KVL_DOWNSTATE_FORMAT_VERSION, KVL_DOWNSTATE_FORMAT_VERSION);
        s->dirty = true;
        return 0;
    }
    load_ctx_t c = {.s = s};
    const char *why = "cannot be read whole";
    int n = got == size ? kvl_downstate_parse(text, size, on_loaded, &c, &why) : -1;
    free(text);
    if (c.rc != 0) {
        clear_all(s);
        return c.rc;
    }
    if (n < 0) {
        clear_all(s);
        KVL_LOG_WARN(MOD, s->path, "the %s is damaged (%s): ignored, everything starts unknown",
                     s->what, why);
        s->dirty = true; /* replaced by an intact one soon */
    }
    return 0;
}

/* --- writing --------------------------------------------------------------------------------- */

static int write_file(kvl_downstate_t *s)
{
    kvl_buf_t b = {0};
    int rc = kvl_buf_append(&b, MAGIC, strlen(MAGIC));
    for (size_t i = 0; rc == 0 && i < s->n; i++) {
        char line[64];
        int l = snprintf(line, sizeof(line), "%" PRId64 " %d ", s->e[i].since_ms, s->e[i].reason);
        rc = kvl_buf_append(&b, line, (size_t)l);
        if (rc == 0) {
            rc = kvl_buf_append(&b, s->e[i].name, strlen(s->e[i].name));
        }
        if (rc == 0) {
            rc = kvl_buf_append(&b, "\n", 1);
        }
    }
    if (rc == 0) {
        char line[64];
        int l = snprintf(line, sizeof(line), "end %zu %08" PRIx32 "\n", s->n,
                         kvl_crc32c(0, b.data, b.len));
        rc = kvl_buf_append(&b, line, (size_t)l);
    }
    if (rc != 0) {
        kvl_buf_free(&b);
        return rc;
    }
    rc = kvl_file_replace(s->path, b.data, b.len, 0644);
    kvl_buf_free(&b);
    return rc;
}

int kvl_downstate_flush(kvl_downstate_t *s)
{
    if (s == NULL || !s->dirty) {
        return 0;
    }
    int rc = write_file(s);
    if (rc == 0) {
        s->dirty = false;
        if (s->write_failing) {
            s->write_failing = false;
            KVL_LOG_INFO(MOD, s->path, "the %s is written again", s->what);
        }
    } else if (!s->write_failing) {
        s->write_failing = true;
        KVL_LOG_WARN(MOD, s->path, "cannot write the %s: %s (tried again at the next change)",
                     s->what, rc > -4096 && rc < 0 ? strerror(-rc) : kvl_strerror(rc));
    }
    return rc;
}

static void on_timer(uv_timer_t *h)
{
    kvl_downstate_flush(h->data);
}

static void changed(kvl_downstate_t *s)
{
    s->dirty = true;
    if (!uv_is_active((uv_handle_t *)&s->timer)) {
        uv_timer_start(&s->timer, on_timer, KVL_DOWNSTATE_DELAY_MS, 0);
    }
}

/* --- the interface --------------------------------------------------------------------------- */

int kvl_downstate_new(uv_loop_t *loop, const char *path, const char *what, kvl_downstate_t **out,
                      char *err, size_t errlen)
{
    *out = NULL;
    if (strlen(path) > 4000) {
        snprintf(err, errlen, "the %s's path is too long", what);
        return KVL_EINVAL;
    }
    kvl_downstate_t *s = calloc(1, sizeof(*s));
    if (s != NULL) {
        s->path = strdup(path);
        s->what = strdup(what);
    }
    if (s == NULL || s->path == NULL || s->what == NULL) {
        if (s != NULL) {
            free(s->path);
            free(s->what);
        }
        free(s);
        snprintf(err, errlen, "out of memory loading the %s", what);
        return KVL_ENOMEM;
    }
    s->loop = loop;
    int rc = load(s);
    if (rc != 0) {
        free(s->e);
        free(s->path);
        free(s->what);
        free(s);
        snprintf(err, errlen, "out of memory loading the %s", what);
        return rc;
    }
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    if (s->dirty) {
        changed(s);
    }
    *out = s;
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    kvl_downstate_t *s = h->data;
    clear_all(s);
    free(s->e);
    free(s->path);
    free(s->what);
    free(s);
}

void kvl_downstate_free(kvl_downstate_t *s)
{
    if (s == NULL) {
        return;
    }
    kvl_downstate_flush(s);
    uv_close((uv_handle_t *)&s->timer, on_closed);
}

bool kvl_downstate_get(const kvl_downstate_t *s, const char *name, int *reason, int64_t *since_ms)
{
    const entry_t *e = s != NULL ? find(s, name) : NULL;
    if (e == NULL) {
        return false;
    }
    *reason = e->reason;
    *since_ms = e->since_ms;
    return true;
}

void kvl_downstate_set(kvl_downstate_t *s, const char *name, int reason, int64_t since_ms)
{
    if (s == NULL || !name_ok(name) || strlen(name) > KVL_DOWNSTATE_NAME_MAX) {
        return;
    }
    entry_t *e = find(s, name);
    if (e != NULL) {
        if (e->reason != reason || e->since_ms != since_ms) {
            e->reason = reason;
            e->since_ms = since_ms;
            changed(s);
        }
        return;
    }
    if (add(s, name, strlen(name), reason, since_ms) != 0) {
        KVL_LOG_WARN(MOD, name, "out of memory: not kept in the %s", s->what);
        return;
    }
    changed(s);
}

void kvl_downstate_clear(kvl_downstate_t *s, const char *name)
{
    entry_t *e = s != NULL ? find(s, name) : NULL;
    if (e == NULL) {
        return;
    }
    free(e->name);
    *e = s->e[--s->n];
    changed(s);
}

size_t kvl_downstate_retain(kvl_downstate_t *s, const char *const *names, size_t n)
{
    size_t gone = 0;
    for (size_t i = 0; s != NULL && i < s->n;) {
        bool keep = false;
        for (size_t j = 0; j < n && !keep; j++) {
            keep = strcmp(s->e[i].name, names[j]) == 0;
        }
        if (keep) {
            i++;
            continue;
        }
        free(s->e[i].name);
        s->e[i] = s->e[--s->n];
        gone++;
    }
    if (gone > 0) {
        changed(s);
    }
    return gone;
}

size_t kvl_downstate_count(const kvl_downstate_t *s)
{
    return s != NULL ? s->n : 0;
}
