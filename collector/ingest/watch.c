/*
 * watch.c — agents lost and back (the loop's side of liveness.h): every frame of an agent
 * moves its deadline; a timer (WATCH_TICK_MS) finds the agents whose deadline passed and
 * declares them lost: one event line (a WARNING), a synthetic `agent_lost` event to the
 * sinks (sink.h), its connection closed if still open. Its next accepted Hello makes it
 * back: `agent_back` with how long it was gone. Events are marked late here too
 * (ingest_event_late).
 *
 * Exactly once across restarts, simply: who is watched and who is lost (with since when) is
 * kept in <data_dir>/_agents.state (liveness.h has the lines), written whole as
 * _agents.state.tmp, synced and renamed over it on the thread pool, after each change (at
 * most one write in flight; changes during it make another). At start the file is read
 * before the journal's replay: an agent lost before the restart stays lost (no second
 * agent_lost; agent_back when it returns, with its lost period for the late marks), and an
 * agent that was connected gets START_GRACE_MS plus its window to come back before it is
 * declared lost. The event goes to the sinks before the file is written: a collector killed
 * in between says it once more after its restart (the alert book dedups by fingerprint),
 * never not at all.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "ingest_internal.h"
#include "kvl.h"
#include "log.h"
#include "names.h"
#include "timeutil.h"

#define WATCH_TICK_MS 500
#define START_GRACE_MS 30000 /* agents reconnecting after a collector restart (backoff) */
#define STATE_FILE "_agents.state"
#define STATE_NAME "kaaval agents" /* the header line: "<name> <format version>" */
#define STATE_FORMAT 1u
#define STATE_HEADER "kaaval agents 1\n"
_Static_assert(STATE_FORMAT == 1, "STATE_HEADER says the version");
#define STATE_MAX_BYTES (64u << 20)

/* ----------------------------------------------------------------- events -------------- */

static void fmt_time(int64_t ms, char *out, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        snprintf(out, len, "%" PRId64, ms);
    }
}

/* An event of the collector's own about agent a: logged like an agent's, to the sinks. */
static void raise_event(kvl_ingest_t *in, agent_state_t *a, const kvl_event_t *ev)
{
    ingest_log_event(a->id, a->site, ev, false);
    kvl_sink_event_t e = {.agent = a->id,
                          .site = a->site,
                          .event = ev,
                          .seq = 0,
                          .lane = KVL_LANE_EVENTS,
                          .replayed = false,
                          .late = false,
                          .synthetic = true};
    kvl_sinks_event(in->sinks, &e);
}

static void declare_lost(kvl_ingest_t *in, agent_state_t *a, const char *why)
{
    char last[40], text[400];
    fmt_time(a->live.lost_from_ms, last, sizeof(last));
    snprintf(text, sizeof(text), "agent lost: %s (last seen %s)", why, last);
    kvl_label_t fields[] = {{"last_seen", last}, {"reason", why}};
    kvl_event_t ev = {.time_ms = a->live.lost_at_ms,
                      .device = a->id,
                      .kind = "agent_lost",
                      .severity = KVL_SEV_CRITICAL,
                      .text = text,
                      .fields = fields,
                      .n_fields = KVL_ARRAY_SIZE(fields)};
    in->stats.agents_lost++;
    raise_event(in, a, &ev);
    if (a->conn != NULL) {
        ingest_conn_close(a->conn, NULL); /* the line above says why */
    }
    in->watch_dirty = true;
}

static void declare_back(kvl_ingest_t *in, agent_state_t *a, int64_t lost_for_ms,
                         int64_t last_seen_ms)
{
    char last[40], lost_for[32], text[200];
    fmt_time(last_seen_ms, last, sizeof(last));
    snprintf(lost_for, sizeof(lost_for), "%" PRId64, lost_for_ms / 1000);
    snprintf(text, sizeof(text), "agent back after %" PRId64 " s (last seen %s)",
             lost_for_ms / 1000, last);
    kvl_label_t fields[] = {{"last_seen", last}, {"lost_for_s", lost_for}};
    kvl_event_t ev = {.time_ms = kvl_now_ms(),
                      .device = a->id,
                      .kind = "agent_back",
                      .severity = KVL_SEV_INFO,
                      .text = text,
                      .fields = fields,
                      .n_fields = KVL_ARRAY_SIZE(fields)};
    in->stats.agents_back++;
    raise_event(in, a, &ev);
}

bool ingest_time_late(const kvl_ingest_t *in, const agent_state_t *a, int64_t time_ms)
{
    return kvl_live_late(&a->live, time_ms) ||
           (in->cfg->late_after_ms > 0 && kvl_now_ms() - time_ms > in->cfg->late_after_ms);
}

bool ingest_event_late(const kvl_ingest_t *in, const agent_state_t *a, const kvl_event_t *e)
{
    return ingest_time_late(in, a, e->time_ms);
}

bool ingest_batch_late(const kvl_ingest_t *in, const agent_state_t *a, const kvl_batch_t *b)
{
    bool any = false;
    int64_t newest = INT64_MIN;
    for (size_t i = 0; i < b->n_groups; i++) {
        any = true;
        newest = b->groups[i].time_ms > newest ? b->groups[i].time_ms : newest;
    }
    for (size_t i = 0; i < b->n_events && b->n_groups == 0; i++) {
        any = true;
        newest = b->events[i].time_ms > newest ? b->events[i].time_ms : newest;
    }
    return any && ingest_time_late(in, a, newest);
}

/* ----------------------------------------------------------------- hooks --------------- */

void ingest_watch_hello(kvl_ingest_t *in, agent_state_t *a, uint32_t heartbeat_ms)
{
    int64_t lost_for = 0, last_seen = a->live.lost_from_ms;
    uint32_t before = a->live.interval_ms;
    bool was_watched = a->live.watched || a->live.lost;
    if (kvl_live_hello(&a->live, &in->live_cfg, heartbeat_ms, uv_now(in->loop), kvl_now_ms(),
                       &lost_for)) {
        declare_back(in, a, lost_for, last_seen);
        in->watch_dirty = true;
    }
    if (!was_watched || before != heartbeat_ms) {
        in->watch_dirty = true;
    }
}

void ingest_watch_frame(conn_t *c)
{
    if (c->agent != NULL && c->agent->conn == c) {
        kvl_live_frame(&c->agent->live, &c->in->live_cfg, uv_now(c->in->loop), kvl_now_ms());
    }
}

void ingest_watch_idle(kvl_ingest_t *in, agent_state_t *a)
{
    if (a != NULL && a->conn == NULL) {
        kvl_live_idle(&a->live, uv_now(in->loop));
    }
}

void ingest_watch_closed(conn_t *c, const char *why)
{
    if (c->agent != NULL && c->agent->conn == c && !c->in->freeing) {
        kvl_live_closed(&c->agent->live, &c->in->live_cfg, uv_now(c->in->loop), why);
    }
}

/* ----------------------------------------------------------------- the state file ------ */

typedef struct state_write {
    uv_work_t work;
    kvl_ingest_t *in;
    char path[4200], dir[4200];
    kvl_buf_t buf;
    int err; /* 0 or -errno */
    const char *step;
} state_write_t;

/* Whole file, replaced atomically (kvl_file_replace). Returns 0 or -errno. */
static int state_write_file(state_write_t *s)
{
    s->step = "replace";
    return kvl_file_replace(s->path, s->buf.data, s->buf.len, 0600);
}

static void on_state_work(uv_work_t *w)
{
    state_write_t *s = w->data;
    s->err = state_write_file(s);
}

static void state_save(kvl_ingest_t *in);

static void on_state_done(uv_work_t *w, int status)
{
    static kvl_log_limit_t lim = KVL_LOG_LIMIT_INIT(60000);
    state_write_t *s = w->data;
    kvl_ingest_t *in = s->in;
    int rc = status != 0 ? status : s->err;
    if (rc != 0) {
        in->watch_dirty = true; /* tried again at the next tick */
        KVL_LOG_LIMITED(KVL_LOG_LEVEL_ERROR, &lim, "ingest", s->path,
                        "cannot keep the agents' state (%s): %s (tried again); until it is "
                        "written a restart may repeat an agent's loss or return",
                        s->step, kvl_strerror(rc));
    }
    kvl_buf_free(&s->buf);
    free(s);
    in->watch_busy = false;
    ingest_maybe_free(in);
}

static void state_paths(const kvl_ingest_t *in, char *path, size_t plen, char *dir, size_t dlen)
{
    snprintf(path, plen, "%s/%s", in->cfg->data_dir, STATE_FILE);
    snprintf(dir, dlen, "%s", in->cfg->data_dir);
}

/* The file's content: the agents watched or lost. Returns 0 or KVL_ENOMEM. */
static int state_encode(kvl_ingest_t *in, kvl_buf_t *b)
{
    int rc = kvl_buf_append(b, STATE_HEADER, strlen(STATE_HEADER));
    char line[KVL_AGENT_ID_MAX + sizeof(((agent_state_t *)0)->site) + 128];
    for (agent_state_t *a = in->agents; a != NULL && rc == 0; a = a->next) {
        if (!a->live.lost && !a->live.watched && !a->live.connected) {
            continue;
        }
        int n = kvl_live_format_line(&a->live, a->id, a->site, line, sizeof(line));
        if (n > 0) {
            rc = kvl_buf_append(b, line, (size_t)n);
        }
    }
    return rc;
}

/* Writes the file on the thread pool when something changed and no write is in flight. */
static void state_save(kvl_ingest_t *in)
{
    if (!in->watch_dirty || in->watch_busy) {
        return;
    }
    state_write_t *s = calloc(1, sizeof(*s));
    if (s == NULL || state_encode(in, &s->buf) != 0) {
        if (s != NULL) {
            kvl_buf_free(&s->buf);
        }
        free(s);
        return; /* dirty still: tried again at the next tick */
    }
    s->in = in;
    state_paths(in, s->path, sizeof(s->path), s->dir, sizeof(s->dir));
    s->work.data = s;
    if (uv_queue_work(in->loop, &s->work, on_state_work, on_state_done) != 0) {
        kvl_buf_free(&s->buf);
        free(s);
        return;
    }
    in->watch_dirty = false;
    in->watch_busy = true;
}

/* At stop: what changed since the last write, written now (the loop is ending). */
static void state_save_now(kvl_ingest_t *in)
{
    if (!in->watch_dirty || in->watch_busy) {
        return;
    }
    state_write_t s = {.in = in};
    state_paths(in, s.path, sizeof(s.path), s.dir, sizeof(s.dir));
    if (state_encode(in, &s.buf) == 0 && (s.err = state_write_file(&s)) != 0) {
        KVL_LOG_ERROR("ingest", s.path, "cannot keep the agents' state (%s): %s", s.step,
                      kvl_strerror(s.err));
    }
    kvl_buf_free(&s.buf);
    in->watch_dirty = false;
}

int ingest_watch_load(kvl_ingest_t *in)
{
    /* (a configuration made by hand, without the parser's defaults: its defaults) */
    in->live_cfg = (kvl_live_cfg_t){
        .misses = in->cfg->lost_after > 0 ? (uint32_t)in->cfg->lost_after : 3,
        .fallback_ms = in->cfg->idle_timeout_ms > 0 ? (uint64_t)in->cfg->idle_timeout_ms : 300000};
    char path[4200], dir[4200];
    state_paths(in, path, sizeof(path), dir, sizeof(dir));
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        if (errno != ENOENT) {
            KVL_LOG_WARN("ingest", path, "cannot read the agents' state: %s; starting without",
                         strerror(errno));
        }
        return 0;
    }
    char *line = NULL;
    size_t cap = 0, lost = 0, watched = 0, bad = 0, lineno = 0, total = 0;
    ssize_t n;
    char id[KVL_AGENT_ID_MAX + 1], site[sizeof(((agent_state_t *)0)->site)];
    while ((n = getline(&line, &cap, f)) > 0 && total < STATE_MAX_BYTES) {
        total += (size_t)n;
        lineno++;
        if (n > 0 && line[n - 1] == '\n') {
            n--;
        }
        if (lineno == 1) {
            uint32_t v = 0;
            if (kvl_format_text_header(line, (size_t)n, STATE_NAME, &v) != 0) {
                KVL_LOG_WARN("ingest", path, "not an agents' state file: ignored");
                break;
            }
            if (v > STATE_FORMAT) {
                /* Only who was lost: ignored, written again in this format at the next change. */
                KVL_LOG_WARN("ingest", path,
                             "written by a newer kaaval (format %" PRIu32
                             "; this kaaval-collector reads up to %u): ignored, written again in "
                             "format %u (a lost agent may be reported lost again)",
                             v, STATE_FORMAT, STATE_FORMAT);
                in->watch_dirty = true;
                break;
            }
            continue;
        }
        kvl_live_t l;
        if (kvl_live_parse_line(line, (size_t)n, &l, id, sizeof(id), site, sizeof(site)) != 0) {
            bad++;
            continue;
        }
        agent_state_t *a = ingest_agent_get(in, id, strlen(id));
        if (a == NULL) {
            free(line);
            fclose(f);
            return KVL_ENOMEM;
        }
        snprintf(a->site, sizeof(a->site), "%s", site[0] ? site : "default");
        a->live = l;
        if (l.lost) {
            lost++;
        } else {
            kvl_live_expect(&a->live, &in->live_cfg, uv_now(in->loop), START_GRACE_MS);
            watched++;
        }
    }
    free(line);
    fclose(f);
    if (bad > 0) {
        KVL_LOG_WARN("ingest", path, "%zu damaged lines of the agents' state skipped", bad);
    }
    KVL_LOG_INFO("ingest", NULL,
                 "agents' state: %zu lost (agent_back when they return), %zu expected back "
                 "within %d s plus their window",
                 lost, watched, START_GRACE_MS / 1000);
    return 0;
}

/* ----------------------------------------------------------------- the timer ----------- */

/* Every WATCH_TICK_MS: agents held (not read), agents lost, the state file. */
void kvl_ingest_agents(const kvl_ingest_t *in, void (*fn)(void *ctx, const kvl_ingest_agent_t *a),
                       void *ctx)
{
    for (const agent_state_t *a = in->agents; a != NULL; a = a->next) {
        kvl_ingest_agent_t v = {.id = a->id,
                                .site = a->site,
                                .version = a->version,
                                .connected = a->live.connected,
                                .lost = a->live.lost,
                                .lost_since_ms = a->live.lost ? a->live.lost_at_ms : 0,
                                .last_seen_ms = a->live.last_seen_ms};
        fn(ctx, &v);
    }
}

static void on_watch(uv_timer_t *t)
{
    kvl_ingest_t *in = t->data;
    uint64_t now = uv_now(in->loop);
    int64_t wall = kvl_now_ms();
    char why[KVL_LIVE_REASON_MAX + 64];
    if (in->replaying) {
        /* No agent can connect before the journal's replay is done: nobody is judged. */
        in->watch_after_replay = true;
        state_save(in);
        return;
    }
    for (agent_state_t *a = in->agents; a != NULL && in->watch_after_replay; a = a->next) {
        /* the agents expected back get their grace from now on */
        if (a->live.watched) {
            kvl_live_expect(&a->live, &in->live_cfg, now, START_GRACE_MS);
        }
    }
    in->watch_after_replay = false;
    for (agent_state_t *a = in->agents; a != NULL; a = a->next) {
        if (a->conn != NULL && !a->conn->reading) {
            /* not read (backpressure): its frames wait in the socket, it is not silent */
            kvl_live_hold(&a->live, &in->live_cfg, now);
        }
        if (kvl_live_check(&a->live, now, wall, why, sizeof(why))) {
            declare_lost(in, a, why);
        }
    }
    state_save(in);
}

void ingest_watch_start(kvl_ingest_t *in)
{
    uv_timer_init(in->loop, &in->watch); /* cannot fail on a live loop */
    in->watch.data = in;
    in->watch_open = true;
    uv_timer_start(&in->watch, on_watch, WATCH_TICK_MS, WATCH_TICK_MS);
}

static void on_watch_closed(uv_handle_t *h)
{
    kvl_ingest_t *in = h->data;
    in->watch_open = false;
    ingest_maybe_free(in);
}

void ingest_watch_stop(kvl_ingest_t *in)
{
    if (in->watch_open && !uv_is_closing((uv_handle_t *)&in->watch)) {
        state_save_now(in);
        uv_close((uv_handle_t *)&in->watch, on_watch_closed);
    }
}
