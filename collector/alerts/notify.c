/*
 * notify.c — the outbox and its scheduling (see notify.h), and the transport the HTTP and
 * SMTP receivers share: libcurl's multi interface driven by the collector's libuv loop.
 *
 * On disk, per receiver, under <state_dir>/<name>/:
 *   <16 hex>.nob  segments of common/seglog.h, format { "kvlnotif", 1, ".nob", no extra
 *                 fields, CRC over len too, bodies 1 byte to 16 MiB }; each record is one
 *                 notification as compact JSON:
 *                   {"receiver": ..., "group_key": ..., "status": "firing"|"resolved",
 *                    "repeat": bool, "escalated": bool, "queued": "<RFC 3339>",
 *                    "alerts": [kvl_alert_to_json, ...]}
 *                 appended and fdatasync'ed before kvl_notify_enqueue returns 0.
 *   cursor        {"cursor": N, "state": ...}: every record with seq <= N is done
 *                 (confirmed by the receiver, or dropped at the bound); "state" is the
 *                 type's own (Alertmanager: the alerts it knows are firing). Replaced
 *                 atomically (cursor.tmp, fdatasync, rename, fsync of the folder) after
 *                 each confirmation, before segments wholly below it are deleted.
 * A segment is closed at seg_bytes (max_bytes / 8, between 64 KiB and 8 MiB); a restart
 * resumes after the cursor, so only what was not confirmed is sent again. A damaged record
 * is skipped (logged) and the reading resynchronises on the next good one; a torn tail of
 * the last segment is cut off.
 *
 * The queue above the cursor is also kept in memory (bounded by max_bytes per receiver), so
 * a delivery never reads the disk on the loop; only appends and the cursor write it.
 *
 * Delivery: one notification at a time per receiver, oldest first; a failure retries the
 * same one after 1 s, doubling to 5 min. A receiver that refuses one for good (an HTTP 4xx
 * but 408 and 429: the same request would be refused again) has it dropped, counted and
 * logged with the start of its answer, so it does not hold back the others for ever. At the bound
 * (bytes waiting > max_bytes) the oldest are dropped (the newest always stays), counted, logged
 * once per burst.
 *
 * Transport: common/curl_uv.c (libcurl's multi interface on the loop), one for all receivers.
 */
#include "notify.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "curl_uv.h"
#include "fileio.h"
#include "kvl.h"
#include "log.h"
#include "notify_config.h"
#include "notify_int.h"
#include "seglog.h"

#define MOD "notify"
#define REC_HDR KVL_SEGLOG_REC_BASE
#define BODY_MAX (16u << 20)
#define RETRY_FIRST_MS 1000u
#define RETRY_MAX_MS (5u * 60u * 1000u)
#define CURSOR_MAX (256 << 20) /* a cursor file (with the firing alerts) larger is damaged */
#define OUTBOX_LOSS "the notifications waiting in it are then not sent"

static const kvl_seglog_format_t fmt = {
    .magic = {'k', 'v', 'l', 'n', 'o', 't', 'i', 'f'},
    .version = KVL_NOTIFY_FORMAT_VERSION,
    .suffix = ".nob",
    .extra = 0,
    .crc_covers_len = true,
    .len_min = 1,
    .len_max = BODY_MAX,
};

struct kvl_notify_entry {
    kvl_notify_entry_t *next;
    uint64_t seq;
    char *body;
    uint32_t len;
};

struct kvl_notify_seg {
    uint64_t num;
    uint64_t last_seq; /* of its records (num - 1 when none yet) */
};

typedef struct xfer {
    kvl_notify_rcv_t *r;
    struct curl_slist *hdrs;
    char *body;
    kvl_notify_xfer_cb done;
    char err[CURL_ERROR_SIZE];
    char answer[256]; /* the start of the answer's body, for the log */
    size_t answer_len;
} xfer_t;

struct kvl_notify {
    uv_loop_t *loop;
    const kvl_notify_cfg_t *cfg;
    kvl_notify_rcv_t *rcv;
    size_t n_rcv;
    kvl_curl_uv_t *curl; /* the HTTP and SMTP transfers */
    unsigned open_handles;
    bool freeing;
    kvl_notify_stats_t st;
};

static const kvl_notify_ops_t *const type_ops[] = {
    [KVL_RCV_ALERTMANAGER] = &kvl_notify_am_ops, [KVL_RCV_WEBHOOK] = &kvl_notify_webhook_ops,
    [KVL_RCV_EMAIL] = &kvl_notify_smtp_ops,      [KVL_RCV_EXEC] = &kvl_notify_exec_ops,
    [KVL_RCV_SYSLOG] = &kvl_notify_syslog_ops,   [KVL_RCV_SNMP] = &kvl_notify_snmp_ops,
};

/* ---- the notification as the types read it ---------------------------------------------- */

const char *kvl_notify_label(const kvl_alert_t *a, const char *key)
{
    const char *v = kvl_alert_label(a, key);
    return v ? v : "";
}

void kvl_notify_msg_clear(kvl_notify_msg_t *m)
{
    for (size_t i = 0; i < m->n_alerts; i++) {
        kvl_alert_free(m->alerts[i]);
    }
    free(m->alerts);
    json_decref(m->json);
    memset(m, 0, sizeof(*m));
}

int kvl_notify_msg_parse(const char *text, size_t len, kvl_notify_msg_t *m, char *why,
                         size_t whylen)
{
    memset(m, 0, sizeof(*m));
    json_error_t je;
    m->json = json_loadb(text, len, 0, &je);
    json_t *alerts = m->json ? json_object_get(m->json, "alerts") : NULL;
    m->group_key = json_string_value(json_object_get(m->json, "group_key"));
    m->status = json_string_value(json_object_get(m->json, "status"));
    if (!json_is_array(alerts) || json_array_size(alerts) == 0 || m->group_key == NULL ||
        m->status == NULL) {
        snprintf(why, whylen, "not a notification record%s%s", m->json ? "" : ": ",
                 m->json ? "" : je.text);
        kvl_notify_msg_clear(m);
        return KVL_EINVAL;
    }
    size_t n = json_array_size(alerts);
    if ((m->alerts = calloc(n, sizeof(*m->alerts))) == NULL) {
        snprintf(why, whylen, "out of memory");
        kvl_notify_msg_clear(m);
        return KVL_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        m->alerts[i] = kvl_alert_from_json(json_array_get(alerts, i), why, whylen);
        if (m->alerts[i] == NULL) {
            kvl_notify_msg_clear(m);
            return KVL_EINVAL;
        }
        m->n_alerts = i + 1;
        m->n_firing += m->alerts[i]->status != KVL_ALERT_RESOLVED;
    }
    return 0;
}

/* ---- the outbox on disk ---------------------------------------------------------------------- */

static int sync_fd(int fd, bool dir)
{
    int rc = dir ? fsync(fd) : fdatasync(fd);
    return rc == 0 ? 0 : -errno;
}

static int cursor_save(kvl_notify_rcv_t *r)
{
    json_t *o = json_object();
    json_t *state = r->ops->state_save ? r->ops->state_save(r) : NULL;
    if (o == NULL || json_object_set_new(o, "format", json_integer((json_int_t)fmt.version)) != 0 ||
        json_object_set_new(o, "cursor", json_integer((json_int_t)r->cursor)) != 0 ||
        (state != NULL && json_object_set_new(o, "state", state) != 0)) {
        json_decref(o);
        return KVL_ENOMEM;
    }
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (text == NULL) {
        return KVL_ENOMEM;
    }
    int rc = 0;
    int fd = openat(r->dir_fd, "cursor.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = -errno;
    } else {
        rc = kvl_seglog_pwrite(fd, text, strlen(text), 0);
        if (rc == 0) {
            rc = sync_fd(fd, false);
        }
        close(fd);
    }
    free(text);
    if (rc == 0 && renameat(r->dir_fd, "cursor.tmp", r->dir_fd, "cursor") != 0) {
        rc = -errno;
    }
    if (rc == 0) {
        rc = sync_fd(r->dir_fd, true);
    }
    if (rc != 0) {
        KVL_LOG_ERROR(MOD, r->cfg->name,
                      "cannot write the outbox cursor: %s (a restart may "
                      "send confirmed notifications again)",
                      kvl_strerror(rc));
    }
    return rc;
}

/* Reads the cursor file (missing: 0). A damaged one is logged and taken as 0. Returns 0, or
 * KVL_EPROTO with a sentence in err when a newer collector wrote it (dir: the receiver's
 * folder, for the sentence). */
static int cursor_load(kvl_notify_rcv_t *r, const char *dir, char *err, size_t errlen)
{
    r->cursor = 0;
    int fd = openat(r->dir_fd, "cursor", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    struct stat sb;
    int rc = fstat(fd, &sb) == 0 ? 0 : -errno;
    size_t size = rc == 0 && sb.st_size > 0 && sb.st_size <= CURSOR_MAX ? (size_t)sb.st_size : 0;
    char *buf = size ? malloc(size) : NULL;
    size_t got = 0;
    if (buf != NULL) {
        rc = kvl_seglog_pread(fd, buf, size, 0, &got);
    }
    close(fd);
    json_error_t je;
    json_t *o = buf != NULL && rc == 0 ? json_loadb(buf, got, 0, &je) : NULL;
    free(buf);
    json_t *f = json_object_get(o, "format");
    json_int_t v = json_is_integer(f) ? json_integer_value(f) : 0;
    char path[4400];
    snprintf(path, sizeof(path), "%s/cursor", dir);
    if (kvl_format_check(path,
                         v < 0            ? 0
                         : v > UINT32_MAX ? UINT32_MAX
                                          : (uint32_t)v,
                         fmt.version, "kaaval-collector", OUTBOX_LOSS, err, errlen) != 0) {
        json_decref(o);
        return KVL_EPROTO;
    }
    json_t *c = json_object_get(o, "cursor");
    if (!json_is_integer(c) || json_integer_value(c) < 0) {
        KVL_LOG_WARN(MOD, r->cfg->name,
                     "outbox cursor unreadable: everything in the outbox "
                     "is sent again");
    } else {
        r->cursor = (uint64_t)json_integer_value(c);
        if (r->ops->state_load && json_object_get(o, "state")) {
            r->ops->state_load(r, json_object_get(o, "state"));
        }
    }
    json_decref(o);
    return 0;
}

static int segs_push(kvl_notify_rcv_t *r, uint64_t num, uint64_t last_seq)
{
    if (r->n_segs == r->cap_segs) {
        size_t cap = r->cap_segs ? r->cap_segs * 2 : 8;
        kvl_notify_seg_t *s = realloc(r->segs, cap * sizeof(*s));
        if (s == NULL) {
            return KVL_ENOMEM;
        }
        r->segs = s;
        r->cap_segs = cap;
    }
    r->segs[r->n_segs++] = (kvl_notify_seg_t){.num = num, .last_seq = last_seq};
    return 0;
}

static int entry_push(kvl_notify_rcv_t *r, uint64_t seq, const uint8_t *body, uint32_t len)
{
    kvl_notify_entry_t *e = calloc(1, sizeof(*e));
    char *b = malloc(len);
    if (e == NULL || b == NULL) {
        free(e);
        free(b);
        return KVL_ENOMEM;
    }
    memcpy(b, body, len);
    *e = (kvl_notify_entry_t){.seq = seq, .body = b, .len = len};
    if (r->tail) {
        r->tail->next = e;
    } else {
        r->head = e;
    }
    r->tail = e;
    r->waiting++;
    r->waiting_bytes += len;
    return 0;
}

static void entry_pop(kvl_notify_rcv_t *r)
{
    kvl_notify_entry_t *e = r->head;
    KVL_ASSERT(e != NULL && r->waiting > 0 && r->waiting_bytes >= e->len);
    KVL_ASSERT(e->seq > r->cursor);
    r->cursor = e->seq;
    r->head = e->next;
    if (r->head == NULL) {
        r->tail = NULL;
    }
    r->waiting--;
    r->waiting_bytes -= e->len;
    free(e->body);
    free(e);
}

/* Deletes the segments (but the last) whose records are all at or below the cursor. */
static void segs_collect(kvl_notify_rcv_t *r)
{
    size_t k = 0;
    while (k + 1 < r->n_segs && r->segs[k].last_seq <= r->cursor) {
        int rc = kvl_seglog_unlink(&fmt, r->dir_fd, r->segs[k].num);
        if (rc != 0) {
            KVL_LOG_WARN(MOD, r->cfg->name, "cannot delete an outbox segment: %s",
                         kvl_strerror(rc));
            break;
        }
        k++;
    }
    if (k > 0) {
        memmove(r->segs, r->segs + k, (r->n_segs - k) * sizeof(*r->segs));
        r->n_segs -= k;
    }
}

/* Moves a segment that cannot be read aside (<name>.damaged), so its number stays free. */
static void set_aside(kvl_notify_rcv_t *r, uint64_t num, const char *why)
{
    char name[KVL_SEGLOG_NAME_MAX], to[KVL_SEGLOG_NAME_MAX + 16];
    kvl_seglog_name(&fmt, num, name);
    snprintf(to, sizeof(to), "%s.damaged", name);
    KVL_LOG_WARN(MOD, r->cfg->name, "outbox segment %s %s: set aside as %s", name, why, to);
    renameat(r->dir_fd, name, r->dir_fd, to);
}

/* Reads one segment's records above the cursor into the queue. Returns 0, KVL_EIO, or
 * KVL_EPROTO with a sentence in err when a newer collector wrote it (dir: the receiver's
 * folder, for the sentence). */
static int read_segment(kvl_notify_rcv_t *r, uint64_t num, uint64_t next_num, bool last,
                        uint64_t *max_seq, const char *dir, char *err, size_t errlen)
{
    kvl_seglog_file_t sf;
    kvl_seglog_file_init(&sf);
    kvl_seglog_bounds_t b = {.min_seq = num, .max_seq = next_num ? next_num - 1 : 0};
    kvl_seglog_scan_t sc;
    const char *what = NULL;
    int flags = last ? KVL_SEGLOG_CHECK_REPAIR | KVL_SEGLOG_CHECK_WRITE : 0;
    int rc = kvl_seglog_check(&fmt, &sf, r->dir_fd, num, flags, &b, &sc, &what);
    if (rc == 0 && !sc.oversize && sc.header == 0 && sc.version > fmt.version) {
        char name[KVL_SEGLOG_NAME_MAX], path[4400];
        kvl_seglog_name(&fmt, num, name);
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        kvl_format_check(path, sc.version, fmt.version, "kaaval-collector", OUTBOX_LOSS, err,
                         errlen);
        kvl_seglog_scan_free(&sc);
        kvl_seglog_file_free(&sf);
        return KVL_EPROTO;
    }
    if (rc != 0 || sc.oversize || sc.header != 0 || sc.version != fmt.version) {
        kvl_seglog_scan_free(&sc);
        kvl_seglog_file_free(&sf);
        if (rc != 0) {
            KVL_LOG_ERROR(MOD, r->cfg->name, "outbox segment: %s: %s", what ? what : "check",
                          kvl_strerror(rc));
            return KVL_EIO;
        }
        set_aside(r, num, "is not an outbox segment of this version");
        return 0;
    }
    for (size_t i = 0; i < sc.n_damage; i++) {
        KVL_LOG_WARN(MOD, r->cfg->name,
                     "outbox segment %016" PRIx64 ": %" PRIu64 " damaged bytes skipped (%s)", num,
                     sc.damage[i].to - sc.damage[i].from, sc.damage[i].why);
    }
    if (sc.cut) {
        KVL_LOG_WARN(MOD, r->cfg->name, "outbox segment %016" PRIx64 ": torn tail cut (%s)", num,
                     sc.why ? sc.why : "incomplete record");
    }
    uint64_t off = KVL_SEGLOG_HEADER, last_seq = num - 1;
    while (off < sc.end && rc == 0) {
        kvl_seglog_rec_t rec;
        int got = kvl_seglog_file_next(&fmt, &sf, off, sc.end, &rec, NULL);
        if (got == KVL_EPROTO) {
            uint64_t at;
            got = kvl_seglog_resync(&fmt, &sf, off, sc.end, last_seq, &b, &at, &rec);
            off = at;
        }
        if (got <= 0) {
            break;
        }
        last_seq = rec.seq;
        if (rec.seq > r->cursor) {
            rc = entry_push(r, rec.seq, rec.body, rec.len);
        }
        off += rec.size;
    }
    uint64_t end = sc.end;
    kvl_seglog_scan_free(&sc);
    if (rc == 0) {
        rc = segs_push(r, num, last_seq);
    }
    if (rc == 0 && last) {
        r->active_fd = kvl_seglog_file_release(&sf);
        r->active_end = end;
    }
    kvl_seglog_file_free(&sf);
    *max_seq = last_seq > *max_seq ? last_seq : *max_seq;
    return rc;
}

static int outbox_open(kvl_notify_rcv_t *r, int state_fd, const char *state_dir, char *err,
                       size_t errlen)
{
    if (mkdirat(state_fd, r->cfg->name, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "outbox of receiver %s: cannot create its folder: %s", r->cfg->name,
                 strerror(errno));
        return KVL_EIO;
    }
    r->dir_fd = openat(state_fd, r->cfg->name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (r->dir_fd < 0) {
        snprintf(err, errlen, "outbox of receiver %s: %s", r->cfg->name, strerror(errno));
        return KVL_EIO;
    }
    char dir[4300];
    snprintf(dir, sizeof(dir), "%s/%s", state_dir, r->cfg->name);
    if (cursor_load(r, dir, err, errlen) != 0) {
        return KVL_EPROTO;
    }
    uint64_t *nums = NULL, max_seq = r->cursor;
    size_t n = 0;
    int rc = kvl_seglog_list(&fmt, r->dir_fd, &nums, &n, NULL, NULL);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = read_segment(r, nums[i], i + 1 < n ? nums[i + 1] : 0, i + 1 == n, &max_seq, dir, err,
                          errlen);
    }
    free(nums);
    if (rc == KVL_EPROTO) {
        return rc;
    }
    if (rc != 0) {
        snprintf(err, errlen, "outbox of receiver %s cannot be read: %s", r->cfg->name,
                 kvl_strerror(rc));
        return rc;
    }
    r->next_seq = max_seq + 1;
    segs_collect(r);
    if (r->waiting > 0) {
        KVL_LOG_INFO(MOD, r->cfg->name, "%" PRIu64 " notifications waiting in the outbox",
                     r->waiting);
    }
    return 0;
}

static int segment_create(kvl_notify_rcv_t *r)
{
    char name[KVL_SEGLOG_NAME_MAX];
    kvl_seglog_name(&fmt, r->next_seq, name);
    int fd = openat(r->dir_fd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        return -errno;
    }
    uint8_t h[KVL_SEGLOG_HEADER];
    kvl_seglog_header_make(&fmt, h);
    int rc = kvl_seglog_pwrite(fd, h, sizeof(h), 0);
    if (rc == 0) {
        rc = sync_fd(fd, false);
    }
    if (rc == 0) {
        rc = sync_fd(r->dir_fd, true);
    }
    if (rc == 0) {
        rc = segs_push(r, r->next_seq, r->next_seq - 1);
    }
    if (rc != 0) {
        close(fd);
        unlinkat(r->dir_fd, name, 0);
        return rc;
    }
    if (r->active_fd >= 0) {
        close(r->active_fd);
    }
    r->active_fd = fd;
    r->active_end = KVL_SEGLOG_HEADER;
    return 0;
}

static int outbox_append(kvl_notify_rcv_t *r, const char *body, size_t len)
{
    size_t need = REC_HDR + len;
    int rc = 0;
    if (r->active_fd < 0 ||
        (r->active_end + need > r->seg_bytes && r->active_end > KVL_SEGLOG_HEADER)) {
        rc = segment_create(r);
    }
    uint8_t hdr[REC_HDR];
    if (rc == 0) {
        kvl_seglog_seal(&fmt, hdr, r->next_seq, body, len, NULL, 0);
        rc = kvl_seglog_pwrite(r->active_fd, hdr, sizeof(hdr), r->active_end);
    }
    if (rc == 0) {
        rc = kvl_seglog_pwrite(r->active_fd, body, len, r->active_end + REC_HDR);
    }
    if (rc == 0) {
        rc = sync_fd(r->active_fd, false);
    }
    if (rc == 0) {
        rc = entry_push(r, r->next_seq, (const uint8_t *)body, (uint32_t)len);
    }
    if (rc != 0) {
        if (r->active_fd >= 0 && ftruncate(r->active_fd, (off_t)r->active_end) != 0) {
            KVL_LOG_ERROR(MOD, r->cfg->name, "cannot cut a failed append: %s", strerror(errno));
        }
        return rc;
    }
    r->active_end += need;
    r->segs[r->n_segs - 1].last_seq = r->next_seq;
    r->next_seq++;
    return 0;
}

/* ---- delivery -------------------------------------------------------------------------------- */

static kvl_notify_msg_t *cur_msg(kvl_notify_rcv_t *r);

static void kick(kvl_notify_rcv_t *r, uint64_t delay_ms);

static void deliver(kvl_notify_rcv_t *r)
{
    if (r->busy || r->head == NULL || r->closing) {
        return;
    }
    kvl_notify_entry_t *e = r->head;
    kvl_notify_msg_t *m = cur_msg(r);
    char why[512] = "";
    if (kvl_notify_msg_parse(e->body, e->len, m, why, sizeof(why)) != 0) {
        KVL_LOG_ERROR(MOD, r->cfg->name, "outbox record %" PRIu64 " skipped: %s", e->seq, why);
        r->n->st.dropped++;
        r->st.dropped++;
        entry_pop(r);
        cursor_save(r);
        segs_collect(r);
        kick(r, 0);
        return;
    }
    r->busy = true;
    r->busy_seq = e->seq;
    int rc = r->ops->send(r, m, why, sizeof(why));
    if (rc == 1) {
        kvl_notify_rcv_done(r, true, NULL);
    } else if (rc < 0) {
        kvl_notify_rcv_done(r, false, why[0] ? why : kvl_strerror(rc));
    }
}

static void on_retry(uv_timer_t *t)
{
    deliver(t->data);
}

static void kick(kvl_notify_rcv_t *r, uint64_t delay_ms)
{
    if (!r->closing && !r->busy && r->head != NULL) {
        uv_timer_start(&r->retry, on_retry, delay_ms, 0);
    }
}

void kvl_notify_kick(kvl_notify_rcv_t *r)
{
    if (!uv_is_active((uv_handle_t *)&r->retry)) {
        kick(r, 0);
    }
}

void kvl_notify_count_failed(kvl_notify_rcv_t *r)
{
    r->n->st.failed_attempts++;
    r->st.failed_attempts++;
}

void kvl_notify_rcv_result(kvl_notify_rcv_t *r, int result, const char *why)
{
    if (result != KVL_NOTIFY_REFUSED) {
        kvl_notify_rcv_done(r, result == KVL_NOTIFY_DELIVERED, why);
        return;
    }
    KVL_ASSERT(r->busy);
    r->busy = false;
    kvl_notify_msg_t *m = cur_msg(r);
    if (!r->closing && r->head != NULL && r->head->seq == r->busy_seq) {
        KVL_LOG_ERROR(MOD, r->cfg->name,
                      "notification %" PRIu64 " (%s) refused for good, dropped: %s", r->busy_seq,
                      m->group_key ? m->group_key : "?", why ? why : "");
        r->n->st.dropped++;
        r->st.dropped++;
        r->attempts = 0;
        entry_pop(r);
        cursor_save(r);
        segs_collect(r);
    }
    kvl_notify_msg_clear(m);
    kick(r, 0);
}

void kvl_notify_rcv_done(kvl_notify_rcv_t *r, bool ok, const char *why)
{
    KVL_ASSERT(r->busy);
    r->busy = false;
    kvl_notify_msg_t *m = cur_msg(r);
    if (r->closing || r->head == NULL || r->head->seq != r->busy_seq) {
        /* closing, or the notification was dropped at the bound meanwhile */
        kvl_notify_msg_clear(m);
        kick(r, 0);
        return;
    }
    if (!ok) {
        r->attempts++;
        r->n->st.failed_attempts++;
        r->st.failed_attempts++;
        unsigned shift = r->attempts - 1 < 9 ? r->attempts - 1 : 9;
        uint64_t delay = (uint64_t)RETRY_FIRST_MS << shift;
        delay = delay > RETRY_MAX_MS ? RETRY_MAX_MS : delay;
        if (r->attempts == 1) {
            KVL_LOG_WARN(MOD, r->cfg->name, "delivery failed: %s (retrying, 1s doubling to 5m)",
                         why ? why : "unknown error");
        } else {
            KVL_LOG_DEBUG(MOD, r->cfg->name, "attempt %u failed: %s", r->attempts,
                          why ? why : "unknown error");
        }
        kvl_notify_msg_clear(m);
        kick(r, delay);
        return;
    }
    if (r->attempts > 0) {
        KVL_LOG_INFO(MOD, r->cfg->name, "delivering again after %u failed attempts", r->attempts);
    }
    if (r->drop_burst > 0) {
        KVL_LOG_WARN(MOD, r->cfg->name,
                     "%" PRIu64 " notifications were dropped at the outbox bound (%" PRId64
                     " bytes)",
                     r->drop_burst, r->cfg->max_bytes);
        r->drop_burst = 0;
    }
    r->attempts = 0;
    if (r->ops->confirmed) {
        r->ops->confirmed(r, m);
    }
    kvl_notify_msg_clear(m);
    entry_pop(r);
    r->n->st.delivered++;
    r->st.delivered++;
    cursor_save(r);
    segs_collect(r);
    kick(r, 0);
}

/* ---- transfers (common/curl_uv.c) ------------------------------------------------------------ */

static const kvl_curl_uv_api_t curl_api = KVL_CURL_UV_API_LINKED;

static void xfer_free(xfer_t *x, CURL *e)
{
    curl_easy_cleanup(e);
    curl_slist_free_all(x->hdrs);
    free(x->body);
    free(x);
}

/* The KVL_NOTIFY_* result of a finished transfer: CURLE_OK and, for HTTP, a 2xx status. */
static int transfer_result(const xfer_t *x, CURL *e, CURLcode rc, char *why, size_t whylen)
{
    if (rc != CURLE_OK) {
        snprintf(why, whylen, "%s", x->err[0] ? x->err : curl_easy_strerror(rc));
        return KVL_NOTIFY_FAILED;
    }
    const char *scheme = NULL;
    curl_easy_getinfo(e, CURLINFO_SCHEME, &scheme);
    if (scheme == NULL || strncasecmp(scheme, "http", 4) != 0) {
        return KVL_NOTIFY_DELIVERED;
    }
    long code = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    if (code >= 200 && code <= 299) {
        return KVL_NOTIFY_DELIVERED;
    }
    char answer[sizeof(x->answer) + 1];
    size_t n = 0;
    for (size_t i = 0; i < x->answer_len; i++) { /* one line, printable */
        unsigned char c = (unsigned char)x->answer[i];
        answer[n++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    answer[n] = '\0';
    snprintf(why, whylen, "HTTP status %ld%s%s", code, n ? ": " : "", answer);
    bool refused = code >= 400 && code <= 499 && code != 408 && code != 429;
    return refused ? KVL_NOTIFY_REFUSED : KVL_NOTIFY_FAILED;
}

static size_t on_answer(char *p, size_t size, size_t nmemb, void *userp)
{
    xfer_t *x = userp;
    size_t n = size * nmemb, room = sizeof(x->answer) - x->answer_len;
    memcpy(x->answer + x->answer_len, p, n < room ? n : room);
    x->answer_len += n < room ? n : room;
    return n;
}

/* A transfer ended: its result to the receiver's type. */
static void on_xfer_done(void *arg, CURL *e, CURLcode rc)
{
    xfer_t *x = arg;
    char why[512] = "";
    int result = transfer_result(x, e, rc, why, sizeof(why));
    kvl_notify_rcv_t *r = x->r;
    kvl_notify_xfer_cb done = x->done;
    xfer_free(x, e);
    done(r, result, why);
}

/* A transfer under way at kvl_notify_free: no callback, the receivers are closing. */
static void on_xfer_drop(void *arg, CURL *e)
{
    xfer_free(arg, e);
}

int kvl_notify_xfer(kvl_notify_rcv_t *r, CURL *e, struct curl_slist *hdrs, char *body,
                    kvl_notify_xfer_cb done, char *why, size_t whylen)
{
    kvl_notify_t *n = r->n;
    xfer_t *x = calloc(1, sizeof(*x));
    if (x == NULL) {
        curl_easy_cleanup(e);
        curl_slist_free_all(hdrs);
        free(body);
        snprintf(why, whylen, "out of memory");
        return KVL_ENOMEM;
    }
    *x = (xfer_t){.r = r, .hdrs = hdrs, .body = body, .done = done};
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->err);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_answer);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)r->cfg->timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "kaaval-collector");
    if (r->cfg->ca) {
        curl_easy_setopt(e, CURLOPT_CAINFO, r->cfg->ca);
    }
    if (hdrs) {
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    }
    if (kvl_curl_uv_add(n->curl, e, on_xfer_done, x, why, whylen) != 0) {
        xfer_free(x, e);
        return KVL_EIO;
    }
    return 0;
}

/* ---- the object ------------------------------------------------------------------------------ */

static kvl_notify_msg_t *cur_msg(kvl_notify_rcv_t *r)
{
    return &r->msg;
}

static void handle_closed(kvl_notify_t *n);

void kvl_notify_closing(kvl_notify_rcv_t *r)
{
    r->n->open_handles++;
}

void kvl_notify_closed(kvl_notify_rcv_t *r)
{
    handle_closed(r->n);
}

static void really_free(kvl_notify_t *n)
{
    for (size_t i = 0; i < n->n_rcv; i++) {
        kvl_notify_rcv_t *r = &n->rcv[i];
        while (r->head) {
            kvl_notify_entry_t *e = r->head;
            r->head = e->next;
            free(e->body);
            free(e);
        }
        kvl_notify_msg_clear(&r->msg);
        free(r->segs);
        if (r->active_fd >= 0) {
            close(r->active_fd);
        }
        if (r->dir_fd >= 0) {
            close(r->dir_fd);
        }
        free(r->priv);
    }
    free(n->rcv);
    free(n);
}

static void handle_closed(kvl_notify_t *n)
{
    KVL_ASSERT(n->open_handles > 0);
    n->open_handles--;
    if (n->freeing && n->open_handles == 0) {
        really_free(n);
    }
}

static void on_retry_closed(uv_handle_t *h)
{
    kvl_notify_rcv_t *r = h->data;
    handle_closed(r->n);
}

void kvl_notify_free(kvl_notify_t *n)
{
    if (n == NULL) {
        return;
    }
    n->freeing = true;
    n->open_handles++; /* held while closing, so nothing frees n under us */
    for (size_t i = 0; i < n->n_rcv; i++) {
        n->rcv[i].closing = true;
    }
    kvl_curl_uv_free(n->curl, on_xfer_drop); /* before the types close (SMTP frees rcpt) */
    n->curl = NULL;
    for (size_t i = 0; i < n->n_rcv; i++) {
        kvl_notify_rcv_t *r = &n->rcv[i];
        if (r->ops == NULL) {
            continue; /* never opened */
        }
        uv_close((uv_handle_t *)&r->retry, on_retry_closed);
        if (r->ops->close) {
            r->ops->close(r);
        }
    }
    handle_closed(n);
}

int kvl_notify_new(uv_loop_t *loop, const kvl_notify_cfg_t *cfg, const char *state_dir,
                   kvl_notify_t **out, char *err, size_t errlen)
{
    *out = NULL;
    static bool curl_ready;
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            snprintf(err, errlen, "libcurl cannot be initialised");
            return KVL_EIO;
        }
        curl_ready = true;
    }
    if (mkdir(state_dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "notify state folder %s: %s", state_dir, strerror(errno));
        return KVL_EIO;
    }
    int state_fd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (state_fd < 0) {
        snprintf(err, errlen, "notify state folder %s: %s", state_dir, strerror(errno));
        return KVL_EIO;
    }
    kvl_notify_t *n = calloc(1, sizeof(*n));
    size_t nr = cfg ? cfg->n : 0;
    if (n == NULL || (nr > 0 && (n->rcv = calloc(nr, sizeof(*n->rcv))) == NULL) ||
        kvl_curl_uv_new(loop, &curl_api, &n->curl, err, errlen) != 0) {
        free(n ? n->rcv : NULL);
        free(n);
        close(state_fd);
        snprintf(err, errlen, "out of memory");
        return KVL_ENOMEM;
    }
    n->loop = loop;
    n->cfg = cfg;
    n->n_rcv = nr;
    for (size_t i = 0; i < nr; i++) {
        n->rcv[i].dir_fd = -1;
        n->rcv[i].active_fd = -1;
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < nr; i++) {
        kvl_notify_rcv_t *r = &n->rcv[i];
        r->n = n;
        r->loop = loop;
        r->cfg = &cfg->receivers[i];
        r->ops = type_ops[r->cfg->type];
        uint64_t seg = (uint64_t)r->cfg->max_bytes / 8;
        r->seg_bytes = seg < (64u << 10) ? (64u << 10) : seg > (8u << 20) ? (8u << 20) : seg;
        uv_timer_init(loop, &r->retry);
        r->retry.data = r;
        n->open_handles++;
        char why[512] = "";
        if (r->ops->open && (rc = r->ops->open(r, why, sizeof(why))) != 0) {
            snprintf(err, errlen, "receiver %s: %s", r->cfg->name, why);
            break;
        }
        rc = outbox_open(r, state_fd, state_dir, err, errlen);
        kvl_notify_kick(r);
    }
    close(state_fd);
    if (rc != 0) {
        kvl_notify_free(n);
        return rc;
    }
    *out = n;
    return 0;
}

bool kvl_notify_has_receiver(const kvl_notify_t *n, const char *receiver)
{
    for (size_t i = 0; n && receiver && i < n->n_rcv; i++) {
        if (strcmp(n->rcv[i].cfg->name, receiver) == 0) {
            return true;
        }
    }
    return false;
}

static json_t *notification_json(const kvl_notification_t *nt)
{
    json_t *o = json_object(), *alerts = json_array();
    bool firing = false;
    int rc = o && alerts ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < nt->n_alerts; i++) {
        json_t *a = kvl_alert_to_json(nt->alerts[i]);
        rc = a ? json_array_append_new(alerts, a) : -1;
        firing = firing || nt->alerts[i]->status != KVL_ALERT_RESOLVED;
    }
    char now[40];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    kvl_alert_time_format((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, now, sizeof(now));
    if (rc == 0) {
        rc |= json_object_set_new(o, "receiver", json_string(nt->receiver));
        rc |= json_object_set_new(o, "group_key", json_string(nt->group_key));
        rc |= json_object_set_new(o, "status", json_string(firing ? "firing" : "resolved"));
        rc |= json_object_set_new(o, "repeat", json_boolean(nt->repeat));
        rc |= json_object_set_new(o, "escalated", json_boolean(nt->escalated));
        rc |= json_object_set_new(o, "queued", json_string(now));
        rc |= json_object_set(o, "alerts", alerts);
    }
    json_decref(alerts);
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int kvl_notify_enqueue(kvl_notify_t *n, const kvl_notification_t *nt)
{
    kvl_notify_rcv_t *r = NULL;
    for (size_t i = 0; nt && nt->receiver && i < n->n_rcv; i++) {
        if (strcmp(n->rcv[i].cfg->name, nt->receiver) == 0) {
            r = &n->rcv[i];
        }
    }
    if (r == NULL || nt->n_alerts == 0 || nt->group_key == NULL || n->freeing) {
        return KVL_EINVAL;
    }
    json_t *o = notification_json(nt);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (text == NULL) {
        return KVL_ENOMEM;
    }
    size_t len = strlen(text);
    if (len > BODY_MAX) {
        free(text);
        return KVL_EINVAL;
    }
    int rc = outbox_append(r, text, len);
    free(text);
    if (rc != 0) {
        KVL_LOG_ERROR(MOD, r->cfg->name, "cannot append to the outbox: %s", kvl_strerror(rc));
        return rc == KVL_ENOMEM ? rc : KVL_EIO;
    }
    n->st.queued++;
    r->st.queued++;
    uint64_t dropped = 0;
    while (r->waiting_bytes > (uint64_t)r->cfg->max_bytes && r->head != r->tail) {
        entry_pop(r);
        dropped++;
    }
    if (dropped > 0) {
        if (r->drop_burst == 0) {
            KVL_LOG_WARN(MOD, r->cfg->name,
                         "outbox full (%" PRId64 " bytes): dropping the oldest notifications",
                         r->cfg->max_bytes);
        }
        r->drop_burst += dropped;
        n->st.dropped += dropped;
        r->st.dropped += dropped;
        cursor_save(r);
        segs_collect(r);
    }
    kvl_notify_kick(r);
    return 0;
}

void kvl_notify_receiver_stats(const kvl_notify_t *n, kvl_notify_receiver_stats_fn fn, void *ctx)
{
    for (size_t i = 0; n != NULL && i < n->n_rcv; i++) {
        const kvl_notify_rcv_t *r = &n->rcv[i];
        kvl_notify_stats_t st = {.queued = r->st.queued,
                                 .delivered = r->st.delivered,
                                 .failed_attempts = r->st.failed_attempts,
                                 .dropped = r->st.dropped,
                                 .waiting = r->waiting};
        fn(ctx, r->cfg->name, &st);
    }
}

void kvl_notify_stats(const kvl_notify_t *n, kvl_notify_stats_t *out)
{
    *out = n->st;
    out->waiting = 0;
    for (size_t i = 0; i < n->n_rcv; i++) {
        out->waiting += n->rcv[i].waiting;
    }
}
