/*
 * test_rwrite_send.c — remote-write's senders (collector/rwrite/rwrite.c) against a small
 * HTTP server of the test's own (libmicrohttpd) that answers with a status the test scripts.
 *
 * Checked: the sink answers `done` at once; every request carries the protocol's headers
 * and a snappy body; a 503 is retried after the backoff with the same samples and counted;
 * requests hold at most max_samples_per_send samples and together every sample once; a 400
 * drops its samples (counted as rejected) and sending goes on; a full queue drops its oldest
 * (counted); labels of the inventory come from the callback; the stop with samples still
 * queued frees everything (the loop closes).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <microhttpd.h>

#include "kvl.h"
#include "rw_proto.h"
#include "rwrite.h"

#define WAIT_MS 15000

/* ---- the server ------------------------------------------------------------------------------ */

typedef struct server {
    pthread_mutex_t mu;
    int script[16]; /* statuses answered in turn; past the end: 204 */
    size_t n_script, answered;
    int headers_ok;     /* requests with every header right */
    size_t samples[16]; /* samples in each request */
    char ifalias[64];   /* the ifAlias label seen */
} server_t;

typedef struct upload {
    kvl_buf_t body;
} upload_t;

/* A varint at *p (the test's own bodies: well formed). */
static uint64_t varint(const uint8_t **p)
{
    uint64_t v = 0;
    for (int s = 0; s < 64; s += 7) {
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << s;
        if (!(b & 0x80)) {
            break;
        }
    }
    return v;
}

/* The samples of a WriteRequest (TimeSeries' field 2 inside its field 1), and the value of an
 * ifAlias label into alias. */
static size_t samples_in(const uint8_t *p, size_t n, char *alias, size_t alen)
{
    size_t count = 0;
    const uint8_t *end = p + n;
    while (p < end) {
        varint(&p); /* WriteRequest.timeseries */
        uint64_t len = varint(&p);
        const uint8_t *ts_end = p + len;
        const uint8_t *q = p;
        p = ts_end;
        while (q < ts_end) {
            uint64_t key = varint(&q);
            uint64_t flen = varint(&q);
            const uint8_t *f_end = q + flen;
            if (key == 0x12) {
                count++;
            } else if (key == 0x0A) { /* a Label: name then value */
                const uint8_t *l = q;
                varint(&l);
                uint64_t nl = varint(&l);
                const uint8_t *name = l;
                l += nl;
                varint(&l);
                uint64_t vl = varint(&l);
                if (nl == 7 && memcmp(name, "ifAlias", 7) == 0 && vl < alen) {
                    memcpy(alias, l, vl);
                    alias[vl] = '\0';
                }
            }
            q = f_end;
        }
    }
    return count;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *data_len, void **state)
{
    (void)url, (void)version;
    server_t *s = cls;
    upload_t *u = *state;
    if (u == NULL) {
        u = calloc(1, sizeof(*u));
        *state = u;
        return u != NULL ? MHD_YES : MHD_NO;
    }
    if (*data_len > 0) {
        kvl_buf_append(&u->body, data, *data_len);
        *data_len = 0;
        return MHD_YES;
    }
    const char *ce = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Encoding");
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    const char *v =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Prometheus-Remote-Write-Version");
    kvl_buf_t raw = {0};
    bool decoded = kvl_rw_uncompress(u->body.data, u->body.len, &raw) == 0;
    pthread_mutex_lock(&s->mu);
    int status = s->answered < s->n_script ? s->script[s->answered] : 204;
    if (s->answered < 16) {
        s->samples[s->answered] =
            decoded ? samples_in(raw.data, raw.len, s->ifalias, sizeof(s->ifalias)) : 0;
    }
    s->headers_ok += strcmp(method, "POST") == 0 && ce != NULL && strcmp(ce, "snappy") == 0 &&
                     ct != NULL && strcmp(ct, "application/x-protobuf") == 0 && v != NULL &&
                     strcmp(v, "0.1.0") == 0 && decoded;
    s->answered++;
    pthread_mutex_unlock(&s->mu);
    kvl_buf_free(&raw);
    struct MHD_Response *r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    enum MHD_Result rc = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return rc;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **state,
                         enum MHD_RequestTerminationCode why)
{
    (void)cls, (void)c, (void)why;
    upload_t *u = *state;
    if (u != NULL) {
        kvl_buf_free(&u->body);
        free(u);
    }
}

/* ---- the fixture ----------------------------------------------------------------------------- */

typedef struct fixture {
    uv_loop_t loop;
    uv_timer_t tick;
    struct MHD_Daemon *mhd;
    int port;
    server_t srv;
    char url[128];
    kvl_rw_endpoint_cfg_t ep;
    kvl_rw_cfg_t cfg;
    kvl_rwrite_t *rw;
    int done_calls;
} fixture_t;

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

static char *labels_carried[] = {"ifAlias"};

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    pthread_mutex_init(&f->srv.mu, NULL);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->tick);
    uv_timer_start(&f->tick, on_tick, 5, 5);
    f->mhd = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, &f->srv,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_SOCK_ADDR,
        &(struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)},
        MHD_OPTION_END);
    assert_non_null(f->mhd);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(f->mhd, MHD_DAEMON_INFO_BIND_PORT);
    f->port = di->port;
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d/api/v1/write", f->port);
    f->ep = (kvl_rw_endpoint_cfg_t){.name = "test",
                                    .url = f->url,
                                    .timeout_ms = 5000,
                                    .max_queue = 1000,
                                    .max_samples_per_send = 3,
                                    .shards = 1,
                                    .min_backoff_ms = 20,
                                    .max_backoff_ms = 40,
                                    .series_labels = labels_carried,
                                    .n_series_labels = 1};
    f->cfg = (kvl_rw_cfg_t){.n = 1, .at = &f->ep};
    *state = f;
    return 0;
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    kvl_rwrite_free(f->rw);
    uv_close((uv_handle_t *)&f->tick, NULL);
    for (int i = 0; i < 1000 && uv_run(&f->loop, UV_RUN_NOWAIT) != 0; i++) {
        usleep(1000);
    }
    int rc = uv_loop_close(&f->loop);
    if (rc != 0) {
        uv_walk(&f->loop, close_any, NULL);
        uv_run(&f->loop, UV_RUN_NOWAIT);
        uv_loop_close(&f->loop);
    }
    MHD_stop_daemon(f->mhd);
    pthread_mutex_destroy(&f->srv.mu);
    free(f);
    assert_int_equal(rc, 0); /* every handle of the senders closed */
    return 0;
}

static const char *inventory_label(void *ctx, const char *agent, const char *device,
                                   const char *interface, const char *key)
{
    (void)ctx;
    bool ours = strcmp(agent, "a1") == 0 && strcmp(device, "rtr1") == 0 &&
                strcmp(interface, "ge-0/0/1") == 0 && strcmp(key, "ifAlias") == 0;
    return ours ? "to DHQ" : NULL;
}

/* ---- batches --------------------------------------------------------------------------------- */

static const kvl_series_def_t defs[] = {
    {.id = 1,
     .device = "rtr1",
     .scope = KVL_SCOPE_INTERFACE,
     .instance = "ge-0/0/1",
     .metric = "in_octets",
     .kind = KVL_KIND_COUNTER},
    {.id = 2,
     .device = "rtr1",
     .scope = KVL_SCOPE_INTERFACE,
     .instance = "ge-0/0/1",
     .metric = "out_octets",
     .kind = KVL_KIND_COUNTER},
    {.id = 3,
     .device = "rtr1",
     .scope = KVL_SCOPE_INTERFACE,
     .instance = "ge-0/0/1",
     .metric = "speed_bps",
     .kind = KVL_KIND_GAUGE},
    {.id = 4,
     .device = "rtr1",
     .scope = KVL_SCOPE_DEVICE,
     .instance = "",
     .metric = "reachable",
     .kind = KVL_KIND_GAUGE},
    {.id = 5,
     .device = "rtr1",
     .scope = KVL_SCOPE_DEVICE,
     .instance = "",
     .metric = "interfaces",
     .kind = KVL_KIND_GAUGE},
};

static const kvl_series_def_t *def_of(const void *table, uint32_t id)
{
    (void)table;
    return id >= 1 && id <= KVL_ARRAY_SIZE(defs) ? &defs[id - 1] : NULL;
}

static const kvl_family_t *family_of(const void *table, const kvl_series_def_t *def)
{
    (void)table, (void)def;
    return NULL;
}

static const kvl_sink_defs_t sink_defs = {.def = def_of, .family = family_of};

static void on_done(void *token, const kvl_sink_result_t *r)
{
    (void)r;
    fixture_t *f = token;
    f->done_calls++;
}

/* Hands the sink one batch of the five series (one unknown when `unknown`) at time t. */
static void batch(fixture_t *f, int64_t t, bool unknown)
{
    static const uint32_t ids[] = {1, 2, 3, 4, 5};
    const uint64_t values[] = {1000 + (uint64_t)t, 2000, 100000000, 1, 1};
    const uint32_t unk[] = {4};
    kvl_group_t g = {.time_ms = t,
                     .ids = ids,
                     .n_ids = 5,
                     .values = values,
                     .n_values = unknown ? 4 : 5,
                     .unknown = unk,
                     .n_unknown = unknown ? 1 : 0};
    kvl_batch_t b = {.seq = (uint64_t)t, .groups = &g, .n_groups = 1};
    kvl_sink_batch_t sb = {.agent = "a1", .site = "tvm", .defs = &sink_defs, .batch = &b};
    int before = f->done_calls;
    assert_int_equal(kvl_rwrite_sink.on_batch(f->rw, &sb, on_done, f), 0);
    assert_int_equal(f->done_calls, before + 1); /* at once */
}

static void get_stats(void *ctx, const kvl_rwrite_stats_t *st)
{
    *(kvl_rwrite_stats_t *)ctx = *st;
}

static kvl_rwrite_stats_t stats(fixture_t *f)
{
    kvl_rwrite_stats_t st = {0};
    kvl_rwrite_each(f->rw, get_stats, &st);
    return st;
}

/* Runs the loop until `answered` requests were answered and (when `empty`) the endpoint has
 * nothing waiting, or WAIT_MS pass. */
static void run_until_answered(fixture_t *f, size_t answered, bool empty)
{
    uv_update_time(&f->loop);
    uint64_t end = uv_now(&f->loop) + WAIT_MS;
    for (;;) {
        pthread_mutex_lock(&f->srv.mu);
        size_t n = f->srv.answered;
        pthread_mutex_unlock(&f->srv.mu);
        if ((n >= answered && (!empty || stats(f).queued == 0)) || uv_now(&f->loop) >= end) {
            break;
        }
        uv_run(&f->loop, UV_RUN_ONCE);
    }
}

static void test_retry_and_refusal(void **state)
{
    fixture_t *f = *state;
    f->srv.script[0] = 503; /* the first request fails once, then goes through */
    f->srv.script[1] = 204;
    f->srv.script[2] = 204;
    f->srv.script[3] = 400; /* the next batch's first request is refused for good */
    f->srv.n_script = 4;
    char err[256] = "";
    assert_int_equal(
        kvl_rwrite_new(&f->loop, &f->cfg, inventory_label, NULL, &f->rw, err, sizeof(err)), 0);
    batch(f, 1700000000000, true); /* 4 known samples: requests of 3 and 1 */
    run_until_answered(f, 3, true);
    kvl_rwrite_stats_t st = stats(f);
    assert_int_equal(st.sent, 4);
    assert_int_equal(st.retries, 1);
    assert_int_equal(st.requests, 2);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.dropped_rejected, 0);
    assert_true(st.last_success_ms > 0);
    pthread_mutex_lock(&f->srv.mu);
    assert_int_equal(f->srv.answered, 3);
    assert_int_equal(f->srv.headers_ok, 3);
    assert_int_equal(f->srv.samples[0], 3);
    assert_int_equal(f->srv.samples[1], 3); /* the same request again */
    assert_int_equal(f->srv.samples[2], 1);
    assert_string_equal(f->srv.ifalias, "to DHQ");
    pthread_mutex_unlock(&f->srv.mu);

    batch(f, 1700000010000, false); /* 5 samples: 3 refused, 2 sent */
    run_until_answered(f, 5, true);
    st = stats(f);
    assert_int_equal(st.dropped_rejected, 3);
    assert_int_equal(st.sent, 6);
    assert_int_equal(st.requests, 3);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.series, 0); /* nothing waits: every series released */
}

static void test_queue_full(void **state)
{
    fixture_t *f = *state;
    for (size_t i = 0; i < 16; i++) {
        f->srv.script[i] = 503; /* the receiver fails all along */
    }
    f->srv.n_script = 16;
    f->ep.max_queue = 4;
    f->ep.max_backoff_ms = 1000;
    char err[256] = "";
    assert_int_equal(kvl_rwrite_new(&f->loop, &f->cfg, NULL, NULL, &f->rw, err, sizeof(err)), 0);
    batch(f, 1700000000000, false); /* 5 samples into a queue of 4: the oldest goes */
    batch(f, 1700000002000, false); /* 3 went into the request, 1 left; 5 more: 2 more go */
    kvl_rwrite_stats_t st = stats(f);
    assert_int_equal(st.dropped_full, 3);
    assert_int_equal(st.queued, 7); /* 3 in the request, 4 queued */
    assert_true(st.lag_s > 0);
    run_until_answered(f, 2, false);
    st = stats(f);
    assert_true(st.retries >= 2);
    assert_int_equal(st.sent, 0);
    assert_int_equal(st.queued, 7);
    /* teardown stops it with samples waiting: dropped, everything closed and freed */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_retry_and_refusal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_full, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
