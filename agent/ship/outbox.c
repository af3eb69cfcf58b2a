/*
 * outbox.c — the lanes of batches waiting for the collectors (see outbox.h).
 *
 * Each lane keeps, in memory, an index of the sequence numbers it holds that some reader has
 * not acknowledged yet (8 bytes a batch; with a spool the frames themselves stay on disk, in
 * memory they sit next to their number). The index answers "how many batches wait for this
 * reader" with a binary search, and in memory it is the queue itself: a reader's position is
 * an absolute index into it (records appended so far), so reading, rewinding and dropping the
 * oldest are all O(1) or O(log n).
 *
 * With a spool the index is rebuilt at open by reading the lane once from the reader that is
 * furthest behind, and trimmed whenever the slowest reader's acknowledged position (which
 * the spool also moves past records its bound dropped) advances.
 */
#include "outbox.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kvl.h"
#include "log.h"
#include "spool.h"
#include "timeutil.h"

#define EVENTS_MAX_BYTES (16ull << 20)
#define SEGMENT_MAX (4ull << 20)

typedef struct slot {
    uint64_t seq;
    uint8_t *data; /* in memory only */
    size_t len;
} slot_t;

typedef struct mreader {
    uint64_t acked;
    uint64_t pos; /* absolute index of the next record to read */
    uint64_t dropped;
} mreader_t;

typedef struct lane {
    const char *name;
    kvl_spool_t *sp; /* NULL: in memory */
    slot_t *ring;    /* capacity a power of two */
    size_t cap;
    uint64_t head, tail; /* absolute indexes: ring[i & (cap - 1)] for head <= i < tail */
    uint64_t bytes;      /* in memory: frame bytes held */
    uint64_t last_seq;
    uint64_t max_records; /* in memory: the bound */
    mreader_t r[KVL_SPOOL_MAX_READERS];
    uint64_t drop_logged;
    kvl_log_limit_t ack_log; /* acknowledgements of numbers this agent cannot have made */
} lane_t;

struct kvl_outbox {
    uv_loop_t *loop;
    const kvl_ship_cfg_t *cfg;
    char *dir;
    size_t n_readers;
    lane_t lanes[KVL_LANES];
    uv_timer_t sync_timer;
    uv_work_t sync_work;
    kvl_spool_sync_job_t jobs[KVL_LANES];
    bool job_used[KVL_LANES];
    bool sync_busy;
    bool freeing;
    bool timer_closed;
    kvl_outbox_notify_fn notify; /* told of every append (the uplink) */
    void *notify_arg;
};

static slot_t *at(const lane_t *l, uint64_t i)
{
    return &l->ring[i & (l->cap - 1)];
}

static int ring_push(lane_t *l, uint64_t seq, uint8_t *data, size_t len)
{
    if (l->tail - l->head == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1024;
        slot_t *nr = malloc(cap * sizeof(*nr));
        if (nr == NULL) {
            return KVL_ENOMEM;
        }
        for (uint64_t i = l->head; i < l->tail; i++) {
            nr[i & (cap - 1)] = *at(l, i);
        }
        free(l->ring);
        l->ring = nr;
        l->cap = cap;
    }
    *at(l, l->tail) = (slot_t){.seq = seq, .data = data, .len = len};
    l->tail++;
    return 0;
}

/* The first absolute index whose seq is above `seq`. */
static uint64_t first_after(const lane_t *l, uint64_t seq)
{
    uint64_t lo = l->head, hi = l->tail;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (at(l, mid)->seq <= seq) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static uint64_t reader_acked(const kvl_outbox_t *o, const lane_t *l, int r)
{
    KVL_UNUSED(o);
    if (l->sp != NULL) {
        kvl_spool_reader_stats_t st;
        kvl_spool_reader_stats(l->sp, r, &st);
        return st.acked_seq;
    }
    return l->r[r].acked;
}

static void pop_front(lane_t *l)
{
    slot_t *s = at(l, l->head);
    if (s->data != NULL) {
        l->bytes -= s->len;
        free(s->data);
        s->data = NULL;
    }
    l->head++;
}

/* Forgets what every reader has acknowledged. */
static void trim(kvl_outbox_t *o, lane_t *l)
{
    uint64_t min = UINT64_MAX;
    for (size_t r = 0; r < o->n_readers; r++) {
        uint64_t a = reader_acked(o, l, (int)r);
        min = a < min ? a : min;
    }
    while (l->head < l->tail && at(l, l->head)->seq <= min) {
        pop_front(l);
    }
}

static void set_err(char *err, size_t errlen, const char *what, const char *dir, int rc)
{
    snprintf(err, errlen, "%s %s: %s", what, dir, kvl_strerror(rc));
}

static int open_lane_spool(kvl_outbox_t *o, lane_t *l, uint64_t max_bytes,
                           const char *const *readers, size_t n_readers, char *err, size_t errlen)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", o->dir, l->name);
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        set_err(err, errlen, "cannot create the spool folder", path, -errno);
        return -errno;
    }
    uint64_t seg = max_bytes / 8;
    seg = seg > SEGMENT_MAX ? SEGMENT_MAX : seg;
    seg = seg < KVL_SPOOL_MIN_SEGMENT_BYTES ? KVL_SPOOL_MIN_SEGMENT_BYTES : seg;
    kvl_spool_opts_t so = {.dir = path,
                           .max_bytes = max_bytes,
                           .segment_bytes = seg,
                           .sync_interval_ms = o->cfg->spool.sync_interval_ms,
                           .readers = readers,
                           .n_readers = n_readers};
    int rc = kvl_spool_open(&so, &l->sp, err, errlen);
    if (rc != 0) {
        return rc;
    }
    l->last_seq = kvl_spool_last_seq(l->sp);
    /* The index: every record the reader furthest behind has not acknowledged. */
    int slow = 0;
    for (size_t r = 1; r < n_readers; r++) {
        if (reader_acked(o, l, (int)r) < reader_acked(o, l, slow)) {
            slow = (int)r;
        }
    }
    kvl_buf_t tmp = {0};
    uint64_t seq;
    while ((rc = kvl_spool_read(l->sp, slow, &seq, &tmp)) == 1) {
        if ((rc = ring_push(l, seq, NULL, 0)) != 0) {
            break;
        }
    }
    kvl_buf_free(&tmp);
    kvl_spool_rewind(l->sp, slow);
    if (rc < 0) {
        set_err(err, errlen, "cannot read the spool", path, rc);
        return rc;
    }
    return 0;
}

static void on_sync_timer(uv_timer_t *t);

int kvl_outbox_open(uv_loop_t *loop, const kvl_ship_cfg_t *cfg, const char *const *readers,
                    size_t n_readers, kvl_outbox_t **out, char *err, size_t errlen)
{
    if (n_readers == 0 || n_readers > KVL_SPOOL_MAX_READERS) {
        snprintf(err, errlen, "1 to %d collectors", KVL_SPOOL_MAX_READERS);
        return KVL_EINVAL;
    }
    kvl_outbox_t *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        snprintf(err, errlen, "out of memory");
        return KVL_ENOMEM;
    }
    o->loop = loop;
    o->cfg = cfg;
    o->n_readers = n_readers;
    o->lanes[KVL_LANE_BULK].name = "bulk";
    o->lanes[KVL_LANE_EVENTS].name = "events";
    uv_timer_init(loop, &o->sync_timer);
    o->sync_timer.data = o;
    int rc = 0;
    if (cfg->spool.dir != NULL) {
        o->dir = strdup(cfg->spool.dir);
        uint64_t bulk_max = (uint64_t)cfg->spool.max_bytes, ev_max = EVENTS_MAX_BYTES;
        if (cfg->spool.lane_max_bytes > 0) {
            bulk_max = ev_max = (uint64_t)cfg->spool.lane_max_bytes;
            KVL_LOG_INFO("outbox", cfg->spool.dir,
                         "spool.lane_max_bytes: each lane bounded to %" PRIu64 " bytes", bulk_max);
        }
        rc = o->dir == NULL ? KVL_ENOMEM : 0;
        /* The spool folder itself is made when missing (its parent must exist). */
        if (rc == 0 && mkdir(o->dir, 0700) != 0 && errno != EEXIST) {
            rc = -errno;
            set_err(err, errlen, "cannot create the spool folder", o->dir, rc);
        }
        if (rc == 0) {
            rc = open_lane_spool(o, &o->lanes[KVL_LANE_BULK], bulk_max, readers, n_readers, err,
                                 errlen);
        }
        if (rc == 0) {
            rc = open_lane_spool(o, &o->lanes[KVL_LANE_EVENTS], ev_max, readers, n_readers, err,
                                 errlen);
        }
        if (rc == 0 && cfg->spool.sync_interval_ms > 0) {
            uv_timer_start(&o->sync_timer, on_sync_timer, (uint64_t)cfg->spool.sync_interval_ms,
                           (uint64_t)cfg->spool.sync_interval_ms);
        }
    } else {
        for (int i = 0; i < KVL_LANES; i++) {
            o->lanes[i].max_records = (uint64_t)cfg->max_queue;
        }
    }
    if (rc != 0) {
        kvl_outbox_free(o);
        return rc;
    }
    /* Numbers start at the clock (microseconds), as the uplink's always did. */
    uint64_t now = (uint64_t)kvl_now_ms() * 1000u;
    for (int i = 0; i < KVL_LANES; i++) {
        lane_t *l = &o->lanes[i];
        l->ack_log = (kvl_log_limit_t)KVL_LOG_LIMIT_INIT(10000);
        l->last_seq = l->last_seq > now ? l->last_seq : now;
        if (l->last_seq > KVL_SEQ_IMPOSSIBLE || l->last_seq - now > KVL_SEQ_AHEAD_DEFAULT_US) {
            /* An older agent adopted an impossible acknowledgement and the spool kept it. */
            KVL_LOG_ERROR("outbox", l->name,
                          "the spool's last sequence number %" PRIu64
                          " is impossible (an older version took it from a collector): new "
                          "batches numbered above it would be refused; move the spool folder "
                          "aside",
                          l->last_seq);
        }
    }
    if (o->dir != NULL) {
        KVL_LOG_INFO(
            "outbox", o->dir,
            "spool opened: %" PRIu64 " bulk and %" PRIu64 " event batches not yet acknowledged",
            kvl_outbox_waiting(o, KVL_LANE_BULK, 0), kvl_outbox_waiting(o, KVL_LANE_EVENTS, 0));
    } else {
        KVL_LOG_INFO("outbox", NULL,
                     "no spool configured: unacknowledged batches are kept in memory (at most "
                     "%lld per lane) and lost if the agent stops",
                     (long long)cfg->max_queue);
    }
    *out = o;
    return 0;
}

/* ----------------------------------------------------------------- syncing ------------- */

static void sync_run(uv_work_t *w)
{
    kvl_outbox_t *o = w->data;
    for (int i = 0; i < KVL_LANES; i++) {
        if (o->job_used[i]) {
            kvl_spool_sync_run(&o->jobs[i]);
        }
    }
}

static void finish_free(kvl_outbox_t *o)
{
    for (int i = 0; i < KVL_LANES; i++) {
        lane_t *l = &o->lanes[i];
        kvl_spool_free(l->sp);
        while (l->head < l->tail) {
            pop_front(l);
        }
        free(l->ring);
    }
    free(o->dir);
    free(o);
}

static void sync_done(uv_work_t *w, int status)
{
    KVL_UNUSED(status);
    kvl_outbox_t *o = w->data;
    for (int i = 0; i < KVL_LANES; i++) {
        if (o->job_used[i]) {
            kvl_spool_sync_done(o->lanes[i].sp, &o->jobs[i]);
            o->job_used[i] = false;
        }
    }
    o->sync_busy = false;
    if (o->freeing && o->timer_closed) {
        finish_free(o);
    }
}

static void on_sync_timer(uv_timer_t *t)
{
    kvl_outbox_t *o = t->data;
    if (o->sync_busy) {
        return;
    }
    bool any = false;
    for (int i = 0; i < KVL_LANES; i++) {
        if (o->lanes[i].sp != NULL && kvl_spool_sync_prepare(o->lanes[i].sp, &o->jobs[i]) == 1) {
            o->job_used[i] = any = true;
        }
    }
    if (!any) {
        return;
    }
    o->sync_work.data = o;
    if (uv_queue_work(o->loop, &o->sync_work, sync_run, sync_done) == 0) {
        o->sync_busy = true;
    } else {
        sync_run(&o->sync_work); /* cannot happen with a live loop; stay correct anyway */
        sync_done(&o->sync_work, 0);
    }
}

static void on_timer_closed(uv_handle_t *h)
{
    kvl_outbox_t *o = h->data;
    o->timer_closed = true;
    if (!o->sync_busy) {
        finish_free(o);
    }
}

void kvl_outbox_free(kvl_outbox_t *o)
{
    if (o == NULL) {
        return;
    }
    o->freeing = true;
    uv_timer_stop(&o->sync_timer);
    uv_close((uv_handle_t *)&o->sync_timer, on_timer_closed);
}

/* ----------------------------------------------------------------- lanes --------------- */

bool kvl_outbox_on_disk(const kvl_outbox_t *o)
{
    return o->dir != NULL;
}

const char *kvl_outbox_dir(const kvl_outbox_t *o)
{
    return o->dir;
}

uint64_t kvl_outbox_next_seq(kvl_outbox_t *o, int lane)
{
    lane_t *l = &o->lanes[lane];
    /* Microseconds since the epoch (as the uplink always did): above any number an agent
     * without a spool used before; the lane's last number keeps it above what the spool
     * holds even if the clock went back. */
    uint64_t s = (uint64_t)kvl_now_ms() * 1000u;
    if (l->sp != NULL && kvl_spool_last_seq(l->sp) > l->last_seq) {
        l->last_seq = kvl_spool_last_seq(l->sp); /* an acknowledgement beyond our last */
    }
    if (s <= l->last_seq) {
        /* never wraps: at the top the spool refuses the batch (and says so) */
        s = l->last_seq < UINT64_MAX ? l->last_seq + 1 : UINT64_MAX;
    }
    l->last_seq = s;
    return s;
}

uint64_t kvl_outbox_last_seq(kvl_outbox_t *o, int lane)
{
    lane_t *l = &o->lanes[lane];
    if (l->sp != NULL && kvl_spool_last_seq(l->sp) > l->last_seq) {
        l->last_seq = kvl_spool_last_seq(l->sp);
    }
    return l->last_seq;
}

static void drop_oldest_in_memory(kvl_outbox_t *o, lane_t *l)
{
    slot_t *s = at(l, l->head);
    bool counted = false;
    for (size_t r = 0; r < o->n_readers; r++) {
        mreader_t *mr = &l->r[r];
        if (mr->acked < s->seq) {
            mr->acked = s->seq;
            mr->dropped++;
            counted = true;
        }
        if (mr->pos <= l->head) {
            mr->pos = l->head + 1;
        }
    }
    pop_front(l);
    uint64_t most = 0;
    for (size_t r = 0; r < o->n_readers; r++) {
        most = l->r[r].dropped > most ? l->r[r].dropped : most;
    }
    if (counted && (l->drop_logged == 0 || most - l->drop_logged >= 1000)) {
        KVL_LOG_ERROR("outbox", l->name,
                      "queue full (%" PRIu64 " batches): dropped the oldest, %" PRIu64
                      " dropped so far",
                      l->max_records, most);
        l->drop_logged = most;
    }
}

void kvl_outbox_watch(kvl_outbox_t *o, kvl_outbox_notify_fn fn, void *arg)
{
    o->notify = fn;
    o->notify_arg = arg;
}

static int append(kvl_outbox_t *o, int lane, uint64_t seq, const void *frame, size_t len)
{
    lane_t *l = &o->lanes[lane];
    if (seq > l->last_seq) {
        l->last_seq = seq; /* a number given by the caller is handed out too */
    }
    if (l->sp != NULL) {
        int rc = kvl_spool_append(l->sp, seq, frame, len);
        if (rc != 0) {
            return rc;
        }
        rc = ring_push(l, seq, NULL, 0);
        trim(o, l); /* the bound may have dropped segments */
        return rc;
    }
    uint8_t *copy = malloc(len ? len : 1);
    if (copy == NULL) {
        return KVL_ENOMEM;
    }
    memcpy(copy, frame, len);
    int rc = ring_push(l, seq, copy, len);
    if (rc != 0) {
        free(copy);
        return rc;
    }
    l->bytes += len;
    while (l->tail - l->head > l->max_records) {
        drop_oldest_in_memory(o, l);
    }
    return 0;
}

int kvl_outbox_append(kvl_outbox_t *o, int lane, uint64_t seq, const void *frame, size_t len)
{
    int rc = append(o, lane, seq, frame, len);
    if (rc == 0 && o->notify != NULL) {
        o->notify(o->notify_arg, lane);
    }
    return rc;
}

int kvl_outbox_read(kvl_outbox_t *o, int lane, int reader, uint64_t *seq, kvl_buf_t *out)
{
    lane_t *l = &o->lanes[lane];
    if (l->sp != NULL) {
        return kvl_spool_read(l->sp, reader, seq, out);
    }
    mreader_t *r = &l->r[reader];
    if (r->pos < l->head) {
        r->pos = l->head;
    }
    while (r->pos < l->tail && at(l, r->pos)->seq <= r->acked) {
        r->pos++;
    }
    if (r->pos == l->tail) {
        return 0;
    }
    slot_t *s = at(l, r->pos++);
    kvl_buf_reset(out);
    int rc = kvl_buf_append(out, s->data, s->len);
    if (rc != 0) {
        r->pos--;
        return rc;
    }
    *seq = s->seq;
    return 1;
}

int kvl_outbox_ack(kvl_outbox_t *o, int lane, int reader, uint64_t seq)
{
    lane_t *l = &o->lanes[lane];
    uint64_t now_us = (uint64_t)kvl_now_ms() * 1000u;
    kvl_outbox_last_seq(o, lane); /* l->last_seq as the spool has it */
    if (seq > l->last_seq &&
        (seq > KVL_SEQ_IMPOSSIBLE || seq > now_us + KVL_SEQ_AHEAD_DEFAULT_US)) {
        /* Not a number this agent made, nor one it could make soon: taking it would number
         * every later batch above it (or wrap) and drop what waits. */
        KVL_LOG_LIMITED(KVL_LOG_LEVEL_ERROR, &l->ack_log, "outbox", l->name,
                        "a collector acknowledged batch %" PRIu64
                        ", which this agent cannot have sent (its last is %" PRIu64
                        ", its clock %" PRIu64 "): ignored, numbering kept",
                        seq, l->last_seq, now_us);
        return KVL_EINVAL;
    }
    if (seq > l->last_seq) {
        /* The collector has seen numbers above any this outbox handed out (the spool was
         * removed and the clock is behind): number new batches above them, or the
         * collector would take them for duplicates. */
        KVL_LOG_WARN("outbox", l->name,
                     "a collector acknowledged batch %" PRIu64 ", above the last one here (%" PRIu64
                     "): later batches are numbered above it",
                     seq, l->last_seq);
        l->last_seq = seq;
    }
    if (l->sp != NULL) {
        kvl_spool_ack(l->sp, reader, seq);
    } else if (seq > l->r[reader].acked) {
        l->r[reader].acked = seq;
    }
    trim(o, l);
    return 0;
}

void kvl_outbox_rewind(kvl_outbox_t *o, int lane, int reader)
{
    lane_t *l = &o->lanes[lane];
    if (l->sp != NULL) {
        kvl_spool_rewind(l->sp, reader);
    } else {
        l->r[reader].pos = first_after(l, l->r[reader].acked);
    }
}

uint64_t kvl_outbox_waiting(const kvl_outbox_t *o, int lane, int reader)
{
    const lane_t *l = &o->lanes[lane];
    return l->tail - first_after(l, reader_acked(o, l, reader));
}

uint64_t kvl_outbox_dropped(const kvl_outbox_t *o, int lane, int reader)
{
    const lane_t *l = &o->lanes[lane];
    if (l->sp != NULL) {
        kvl_spool_reader_stats_t st;
        kvl_spool_reader_stats(l->sp, reader, &st);
        return st.dropped_records;
    }
    return l->r[reader].dropped;
}

void kvl_outbox_stats(const kvl_outbox_t *o, kvl_outbox_stats_t *st)
{
    memset(st, 0, sizeof(*st));
    for (int i = 0; i < KVL_LANES; i++) {
        const lane_t *l = &o->lanes[i];
        if (l->sp != NULL) {
            kvl_spool_stats_t ss;
            kvl_spool_stats(l->sp, &ss);
            st->bytes += ss.bytes;
            st->lost += ss.lost_records;
        } else {
            st->bytes += l->bytes;
        }
        uint64_t waiting = 0, dropped = 0;
        for (size_t r = 0; r < o->n_readers; r++) {
            uint64_t w = kvl_outbox_waiting(o, i, (int)r), d = kvl_outbox_dropped(o, i, (int)r);
            waiting = w > waiting ? w : waiting;
            dropped = d > dropped ? d : dropped;
        }
        if (i == KVL_LANE_EVENTS) {
            st->events_waiting = waiting;
        }
        st->waiting += waiting;
        st->dropped += dropped;
    }
}
