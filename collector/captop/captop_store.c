/*
 * captop_store.c — the capture's top lists kept per agent and interface (captop_store.h): the sink
 * that takes `capture_top` events, the file writes on the thread pool one at a time, the reads
 * behind GET /api/v1/capture.
 */
#include "captop_store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "captop.h"
#include "fileio.h"
#include "kvl.h"
#include "log.h"
#include "names.h"
#include "timeutil.h"

#define MOD "captop"
#define HEAD_NAME "kaaval-captop"
#define DAY_MS 86400000ll

typedef struct job {
    struct job *next;
    kvl_captop_store_t *s;
    uv_work_t work;
    char *path;
    char *line; /* without its newline */
    size_t len;
    int64_t now_ms;
    int rc;
    char why[600];
} job_t;

struct kvl_captop_store {
    uv_loop_t *loop;
    char *data_dir;
    int64_t (*now_ms)(void);
    job_t *head, *tail; /* waiting; head runs when running */
    size_t queued;
    bool running;
    bool freeing;
    size_t reads; /* API reads under way */
    bool full_said;
    char last_why[600]; /* the last failure logged: the same one again is not */
    kvl_captop_stats_t st;
};

static int64_t now_of(const kvl_captop_store_t *s)
{
    return s->now_ms != NULL ? s->now_ms() : kvl_now_ms();
}

int kvl_captop_path(const char *data_dir, const char *agent, const char *iface, char *out,
                    size_t outlen)
{
    char a[512], i[768];
    if (agent == NULL || iface == NULL || agent[0] == '\0' || iface[0] == '\0' ||
        kvl_name_file_safe(agent, a, sizeof(a)) < 0 ||
        kvl_name_file_safe(iface, i, sizeof(i)) < 0) {
        return KVL_EINVAL;
    }
    int n = snprintf(out, outlen, "%s/_capture/%s/%s.top", data_dir, a, i);
    return n < 0 || (size_t)n >= outlen ? KVL_EINVAL : 0;
}

int kvl_captop_store_new(uv_loop_t *loop, const char *data_dir, int64_t (*now_ms)(void),
                         kvl_captop_store_t **out, char *err, size_t errlen)
{
    kvl_captop_store_t *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->data_dir = strdup(data_dir)) == NULL) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return KVL_ENOMEM;
    }
    s->loop = loop;
    s->now_ms = now_ms;
    *out = s;
    return 0;
}

static void job_free(job_t *j)
{
    free(j->path);
    free(j->line);
    free(j);
}

static void release(kvl_captop_store_t *s)
{
    while (s->head != NULL) {
        job_t *j = s->head;
        s->head = j->next;
        job_free(j);
    }
    free(s->data_dir);
    free(s);
}

void kvl_captop_store_free(kvl_captop_store_t *s)
{
    if (s == NULL) {
        return;
    }
    s->freeing = true;
    if (!s->running && s->reads == 0) {
        release(s);
    }
}

void kvl_captop_store_stats(const kvl_captop_store_t *s, kvl_captop_stats_t *out)
{
    *out = s->st;
}

/* ----------------------------------------------------------------- the file -------------- */

static int mkdirs_for(char *path)
{
    for (char *p = strchr(path + 1, '/'); p != NULL; p = strchr(p + 1, '/')) {
        *p = '\0';
        int rc = mkdir(path, 0755);
        int e = errno;
        *p = '/';
        if (rc != 0 && e != EEXIST) {
            errno = e;
            return -1;
        }
    }
    return 0;
}

/* Reads the whole file (at most max bytes; more: KVL_EIO with why). *buf malloc'd. */
static int read_file(const char *path, size_t max, char **buf, size_t *len, char *why, size_t wlen)
{
    *buf = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(why, wlen, "%s: %s", path, strerror(e));
        return e == ENOENT ? KVL_EINVAL : KVL_EIO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(why, wlen, "%s: %s", path, strerror(errno));
        close(fd);
        return KVL_EIO;
    }
    if ((uint64_t)st.st_size > max) {
        snprintf(why, wlen, "%s: larger than %zu bytes, left alone", path, max);
        close(fd);
        return KVL_EIO;
    }
    size_t n = (size_t)st.st_size;
    char *b = malloc(n + 1);
    if (b == NULL) {
        close(fd);
        snprintf(why, wlen, "%s: out of memory", path);
        return KVL_ENOMEM;
    }
    size_t got = kvl_read_all(fd, b, n);
    close(fd);
    b[got] = '\0';
    *buf = b;
    *len = got;
    return 0;
}

/* The file's header: its version checked. Returns the offset of the first record, or
 * KVL_EPROTO (a newer format: why says what to do) or KVL_EDECODE (no header). */
static long header_check(const char *path, const char *b, size_t len, char *why, size_t wlen)
{
    const char *nl = memchr(b, '\n', len);
    uint32_t v = 0;
    if (nl == NULL || kvl_format_text_header(b, (size_t)(nl - b), HEAD_NAME, &v) != 0) {
        snprintf(why, wlen, "%.500s: not a kaaval-captop file, left alone", path);
        return KVL_EDECODE;
    }
    if (kvl_format_check(path, v, KVL_CAPTOP_FORMAT_VERSION, "kaaval-collector",
                         "the top lists kept", why, wlen) != 0) {
        return KVL_EPROTO;
    }
    return (long)(nl + 1 - b);
}

/* Rewrites the file with the records ending after now - keep; if they still take more than
 * half the bound, only the newest that fit it. */
static int prune(const char *path, const char *b, size_t len, size_t off, int64_t now_ms, char *why,
                 size_t wlen)
{
    int64_t cut = now_ms - KVL_CAPTOP_KEEP_DAYS * DAY_MS;
    size_t keep_from = len;
    /* records in order: the first one ending after cut starts what is kept */
    for (size_t at = off; at < len;) {
        const char *nl = memchr(b + at, '\n', len - at);
        size_t end = nl != NULL ? (size_t)(nl - b) : len;
        kvl_captop_t t;
        if (kvl_captop_line_parse(b + at, end - at, &t) == 0 && t.end_ms >= cut) {
            keep_from = at;
            break;
        }
        at = end + 1;
    }
    while (len - keep_from > KVL_CAPTOP_MAX_FILE / 2) {
        const char *nl = memchr(b + keep_from, '\n', len - keep_from);
        keep_from = nl != NULL ? (size_t)(nl - b) + 1 : len;
    }
    size_t n = off + (len - keep_from);
    char *nb = malloc(n ? n : 1);
    if (nb == NULL) {
        snprintf(why, wlen, "%s: out of memory", path);
        return KVL_ENOMEM;
    }
    memcpy(nb, b, off);
    memcpy(nb + off, b + keep_from, len - keep_from);
    int rc = kvl_file_replace(path, nb, n, 0644);
    free(nb);
    if (rc != 0) {
        snprintf(why, wlen, "%s: rewriting: %s", path, strerror(-rc));
        return KVL_EIO;
    }
    return 0;
}

static void write_work(uv_work_t *w)
{
    job_t *j = w->data;
    j->rc = 0;
    if (mkdirs_for(j->path) != 0) {
        snprintf(j->why, sizeof(j->why), "%s: making its folder: %s", j->path, strerror(errno));
        j->rc = KVL_EIO;
        return;
    }
    int fd = open(j->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(j->why, sizeof(j->why), "%s: %s", j->path, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        j->rc = KVL_EIO;
        return;
    }
    char head[64];
    int hn = snprintf(head, sizeof(head), "%s %u\n", HEAD_NAME, KVL_CAPTOP_FORMAT_VERSION);
    if (st.st_size == 0 && kvl_write_all(fd, head, (size_t)hn) != 0) {
        snprintf(j->why, sizeof(j->why), "%s: writing: %s", j->path, strerror(errno));
        close(fd);
        j->rc = KVL_EIO;
        return;
    }
    close(fd);
    /* the whole file read when it must be checked or pruned: at most the bound and a record */
    char *b;
    size_t len;
    if (read_file(j->path, KVL_CAPTOP_MAX_FILE + KVL_CAPTOP_LINE_LEN + 64, &b, &len, j->why,
                  sizeof(j->why)) != 0) {
        j->rc = KVL_EIO;
        return;
    }
    long off = header_check(j->path, b, len, j->why, sizeof(j->why));
    if (off < 0) {
        free(b);
        j->rc = (int)off;
        return;
    }
    kvl_captop_t first;
    const char *nl = memchr(b + off, '\n', len - (size_t)off);
    bool old = nl != NULL && kvl_captop_line_parse(b + off, (size_t)(nl - b - off), &first) == 0 &&
               first.end_ms < j->now_ms - KVL_CAPTOP_KEEP_DAYS * DAY_MS - DAY_MS;
    if (len + j->len + 1 > KVL_CAPTOP_MAX_FILE || old) {
        j->rc = prune(j->path, b, len, (size_t)off, j->now_ms, j->why, sizeof(j->why));
    }
    free(b);
    if (j->rc != 0) {
        return;
    }
    fd = open(j->path, O_WRONLY | O_APPEND | O_CLOEXEC);
    j->line[j->len] = '\n';
    if (fd < 0 || kvl_write_all(fd, j->line, j->len + 1) != 0) {
        snprintf(j->why, sizeof(j->why), "%s: writing: %s", j->path, strerror(errno));
        j->rc = KVL_EIO;
    }
    j->line[j->len] = '\0';
    if (fd >= 0) {
        close(fd);
    }
}

static void start_next(kvl_captop_store_t *s);

static void write_done(uv_work_t *w, int status)
{
    job_t *j = w->data;
    kvl_captop_store_t *s = j->s;
    KVL_UNUSED(status);
    if (j->rc == 0) {
        s->st.written++;
        s->last_why[0] = '\0';
    } else {
        s->st.failed++;
        if (strcmp(s->last_why, j->why) != 0) {
            KVL_LOG_ERROR(MOD, NULL, "%s", j->why);
            snprintf(s->last_why, sizeof(s->last_why), "%s", j->why);
        }
    }
    s->head = j->next;
    if (s->head == NULL) {
        s->tail = NULL;
    }
    s->queued--;
    s->running = false;
    job_free(j);
    if (s->freeing) {
        if (s->reads == 0) {
            release(s);
        }
        return;
    }
    start_next(s);
}

static void start_next(kvl_captop_store_t *s)
{
    if (s->running || s->head == NULL) {
        return;
    }
    if (s->queued < KVL_CAPTOP_QUEUE / 2) {
        s->full_said = false;
    }
    s->running = true;
    s->head->work.data = s->head;
    int rc = uv_queue_work(s->loop, &s->head->work, write_work, write_done);
    if (rc != 0) {
        s->head->rc = KVL_EIO;
        snprintf(s->head->why, sizeof(s->head->why), "queueing a write: %s", uv_strerror(rc));
        write_done(&s->head->work, rc);
    }
}

/* ----------------------------------------------------------------- the sink -------------- */

static const char *field(const kvl_event_t *ev, const char *key)
{
    for (size_t i = 0; i < ev->n_fields; i++) {
        if (ev->fields[i].key != NULL && strcmp(ev->fields[i].key, key) == 0) {
            return ev->fields[i].value;
        }
    }
    return NULL;
}

static void on_event(void *ctx, const kvl_sink_event_t *se)
{
    kvl_captop_store_t *s = ctx;
    const kvl_event_t *ev = se->event;
    if (s->freeing || ev == NULL || ev->kind == NULL || strcmp(ev->kind, "capture_top") != 0 ||
        se->synthetic) {
        return;
    }
    const char *iface = field(ev, "interface"), *start = field(ev, "start_ms"),
               *end = field(ev, "end_ms"), *hosts = field(ev, "hosts"), *convs = field(ev, "convs");
    char path[4096];
    size_t cap = KVL_CAPTOP_LINE_LEN + 2;
    char *line = malloc(cap);
    kvl_captop_t t;
    int n = -1;
    if (line != NULL && iface != NULL && start != NULL && end != NULL && hosts != NULL &&
        convs != NULL && strlen(start) < 22 && strlen(end) < 22 &&
        strlen(hosts) < KVL_CAPTOP_LIST_LEN && strlen(convs) < KVL_CAPTOP_LIST_LEN) {
        n = snprintf(line, cap, "%s %s|%s|%s", start, end, hosts, convs);
    }
    if (n < 0 || (size_t)n >= cap || kvl_captop_line_parse(line, (size_t)n, &t) != 0 ||
        kvl_captop_path(s->data_dir, se->agent, iface, path, sizeof(path)) != 0) {
        s->st.bad++;
        KVL_LOG_WARN(MOD, se->agent, "a capture_top event that does not parse, dropped");
        free(line);
        return;
    }
    if (s->queued >= KVL_CAPTOP_QUEUE) {
        s->st.dropped++;
        if (!s->full_said) {
            s->full_said = true;
            KVL_LOG_WARN(MOD, se->agent,
                         "%d top lists wait to be written: dropping new ones until they are",
                         KVL_CAPTOP_QUEUE);
        }
        free(line);
        return;
    }
    job_t *j = calloc(1, sizeof(*j));
    if (j == NULL || (j->path = strdup(path)) == NULL) {
        free(j);
        free(line);
        s->st.dropped++;
        return;
    }
    j->s = s;
    j->line = line;
    j->len = (size_t)n;
    j->now_ms = now_of(s);
    if (s->tail != NULL) {
        s->tail->next = j;
    } else {
        s->head = j;
    }
    s->tail = j;
    s->queued++;
    start_next(s);
}

const kvl_sink_t kvl_captop_sink = {.name = "capture top lists", .on_event = on_event};

/* ----------------------------------------------------------------- the API --------------- */

typedef struct read_job {
    uv_work_t work;
    kvl_captop_store_t *s;
    kvl_http_later_t *later;
    char path[4096];
    char *agent, *iface;
    int64_t from_ms, to_ms;
    int status;
    json_t *body;
} read_job_t;

static json_t *entries_json(const kvl_captop_entry_t *e, size_t n, bool conv)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < n; i++) {
        json_t *o = conv ? json_pack("{s:s, s:s, s:I, s:I, s:I}", "a", e[i].a, "b", e[i].b, "bytes",
                                     (json_int_t)e[i].bytes, "error", (json_int_t)e[i].err,
                                     "packets", (json_int_t)e[i].packets)
                         : json_pack("{s:s, s:I, s:I, s:I}", "addr", e[i].a, "bytes",
                                     (json_int_t)e[i].bytes, "error", (json_int_t)e[i].err,
                                     "packets", (json_int_t)e[i].packets);
        if (o == NULL || json_array_append_new(arr, o) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

static json_t *error_body(const char *msg)
{
    return json_pack("{s:s}", "error", msg);
}

static void read_work(uv_work_t *w)
{
    read_job_t *r = w->data;
    char why[600];
    char *b;
    size_t len;
    int rc = read_file(r->path, KVL_CAPTOP_MAX_FILE + KVL_CAPTOP_LINE_LEN + 64, &b, &len, why,
                       sizeof(why));
    if (rc == KVL_EINVAL) {
        r->status = 404;
        char msg[1200];
        snprintf(msg, sizeof(msg), "no top lists kept for agent %s, interface %s", r->agent,
                 r->iface);
        r->body = error_body(msg);
        return;
    }
    if (rc != 0) {
        r->status = 500;
        r->body = error_body(why);
        return;
    }
    long off = header_check(r->path, b, len, why, sizeof(why));
    if (off < 0) {
        free(b);
        r->status = 500;
        r->body = error_body(why);
        return;
    }
    json_t *list = json_array();
    bool truncated = false;
    kvl_captop_t *t = malloc(sizeof(*t));
    for (size_t at = (size_t)off; list != NULL && t != NULL && at < len;) {
        const char *nl = memchr(b + at, '\n', len - at);
        size_t end = nl != NULL ? (size_t)(nl - b) : len;
        if (kvl_captop_line_parse(b + at, end - at, t) == 0 && t->end_ms >= r->from_ms &&
            t->end_ms <= r->to_ms) {
            if (json_array_size(list) == KVL_CAPTOP_ANSWER_MAX) {
                truncated = true;
                break;
            }
            json_t *o =
                json_pack("{s:I, s:I, s:o, s:o}", "start", (json_int_t)t->start_ms, "end",
                          (json_int_t)t->end_ms, "hosts", entries_json(t->hosts, t->n_hosts, false),
                          "convs", entries_json(t->convs, t->n_convs, true));
            if (o == NULL || json_array_append_new(list, o) != 0) {
                json_decref(list);
                list = NULL;
            }
        }
        at = end + 1;
    }
    free(t);
    free(b);
    if (list == NULL) {
        r->status = 500;
        r->body = error_body("out of memory");
        return;
    }
    r->status = 200;
    r->body = json_pack("{s:s, s:s, s:I, s:I, s:b, s:o}", "agent", r->agent, "interface", r->iface,
                        "from", (json_int_t)(r->from_ms / 1000), "to",
                        (json_int_t)(r->to_ms / 1000), "truncated", truncated, "intervals", list);
}

static void read_done(uv_work_t *w, int status)
{
    read_job_t *r = w->data;
    KVL_UNUSED(status);
    kvl_captop_store_t *s = r->s;
    kvl_http_answer(r->later, r->status, r->body);
    free(r->agent);
    free(r->iface);
    free(r);
    s->reads--;
    if (s->freeing && s->reads == 0 && !s->running) {
        release(s);
    }
}

/* A time parameter: Unix seconds, 0 .. 2^40. */
static int time_param(const char *v, int64_t *out)
{
    if (v == NULL || v[0] == '\0' || strlen(v) > 13 || strspn(v, "0123456789") != strlen(v)) {
        return -1;
    }
    long long x = strtoll(v, NULL, 10);
    if (x > (1ll << 40)) {
        return -1;
    }
    *out = (int64_t)x;
    return 0;
}

static void capture_get(void *ctx, const kvl_http_req_t *req, kvl_http_resp_t *resp)
{
    kvl_captop_store_t *s = ctx;
    if (req->n_segs != 0) {
        kvl_http_error(resp, 404, "no such resource (GET /api/v1/capture?agent=&interface=)");
        return;
    }
    const char *agent = kvl_http_query(req, "agent"), *iface = kvl_http_query(req, "interface");
    const char *from = kvl_http_query(req, "from"), *to = kvl_http_query(req, "to");
    if (agent == NULL || agent[0] == '\0' || iface == NULL || iface[0] == '\0') {
        kvl_http_error(resp, 400,
                       "agent and interface are needed (an agent's id and a capture "
                       "interface, or the base name of its capture file)");
        return;
    }
    int64_t t_to = now_of(s) / 1000, t_from;
    if (to != NULL && time_param(to, &t_to) != 0) {
        kvl_http_error(resp, 400, "to: expected Unix seconds, got \"%.40s\"", to);
        return;
    }
    t_from = t_to - 3600;
    if (from != NULL && time_param(from, &t_from) != 0) {
        kvl_http_error(resp, 400, "from: expected Unix seconds, got \"%.40s\"", from);
        return;
    }
    if (t_from > t_to) {
        kvl_http_error(resp, 400, "from (%lld) is after to (%lld)", (long long)t_from,
                       (long long)t_to);
        return;
    }
    read_job_t *r = calloc(1, sizeof(*r));
    if (r == NULL || kvl_captop_path(s->data_dir, agent, iface, r->path, sizeof(r->path)) != 0) {
        free(r);
        kvl_http_error(resp, 400, "agent or interface too long");
        return;
    }
    r->agent = strdup(agent);
    r->iface = strdup(iface);
    r->s = s;
    r->from_ms = t_from * 1000;
    r->to_ms = t_to * 1000 + 999;
    r->work.data = r;
    if (r->agent == NULL || r->iface == NULL || (r->later = kvl_http_defer(req)) == NULL) {
        free(r->agent);
        free(r->iface);
        free(r);
        kvl_http_error(resp, 500, "out of memory");
        return;
    }
    s->reads++;
    int rc = uv_queue_work(s->loop, &r->work, read_work, read_done);
    if (rc != 0) {
        r->status = 500;
        r->body = error_body(uv_strerror(rc));
        read_done(&r->work, rc);
    }
}

int kvl_captop_api_register(kvl_captop_store_t *s, kvl_http_t *http)
{
    return kvl_http_route(http, "GET", "/api/v1/capture", KVL_ROLE_VIEWER, capture_get, s);
}
