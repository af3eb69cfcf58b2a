/*
 * rwrite.c — the remote-write sink and its senders (rwrite.h): endpoints, each with its
 * shards (a sample queue, the request in flight or waiting for its retry, a backoff timer),
 * over one libcurl multi handle on the loop (common/curl_uv.c).
 */
#include "rwrite.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "curl_uv.h"
#include "kvl.h"
#include "log.h"
#include "rw_proto.h"
#include "rw_queue.h"
#include "timeutil.h"

#define MOD "remote-write"
#define REFUSAL_LOG_EVERY_MS (60 * 1000)

typedef struct endpoint endpoint_t;

typedef struct shard {
    endpoint_t *ep;
    kvl_rw_queue_t q;
    kvl_buf_t raw;       /* the request being encoded */
    kvl_buf_t body;      /* the compressed request in flight or waiting (len 0: none) */
    size_t body_samples; /* samples in body */
    int64_t body_oldest; /* the time of its first sample (the oldest queued when taken) */
    CURL *e;             /* the transfer under way, or NULL */
    uv_timer_t timer;    /* the backoff before a retry */
    bool waiting;        /* the timer runs */
    int64_t backoff_ms;  /* the next wait */
    char err[CURL_ERROR_SIZE];
    char answer[256];
    size_t answer_len;
} shard_t;

struct endpoint {
    kvl_rwrite_t *rw;
    const kvl_rw_endpoint_cfg_t *cfg;
    kvl_rw_map_t map;
    kvl_rw_intern_t *intern;
    shard_t *shards;
    size_t n_shards;
    size_t n_timers; /* shards whose timer is initialised */
    struct curl_slist *hdrs;
    kvl_rwrite_stats_t st;
    bool failing;              /* retrying since the last success (logged once) */
    int64_t refusal_logged_ms; /* refusals are logged once a minute at most */
    uint64_t refusals_unlogged;
};

struct kvl_rwrite {
    uv_loop_t *loop;
    kvl_curl_uv_t *curl;
    endpoint_t *eps;
    size_t n;
    size_t closing; /* timers whose close callback is still due */
    bool stopping;
    kvl_buf_t labels; /* scratch: one series' encoded labels */
    kvl_rwrite_label_fn label_of;
    void *label_ctx;
    struct instance *instance; /* scratch of on_batch */
};

static const kvl_curl_uv_api_t curl_api = KVL_CURL_UV_API_LINKED;

static void kick(shard_t *s);

/* ---- sending --------------------------------------------------------------------------------- */

static size_t on_answer(char *p, size_t size, size_t nmemb, void *userp)
{
    shard_t *s = userp;
    size_t n = size * nmemb, room = sizeof(s->answer) - 1 - s->answer_len;
    size_t k = n < room ? n : room;
    memcpy(s->answer + s->answer_len, p, k);
    s->answer_len += k;
    s->answer[s->answer_len] = '\0';
    return n;
}

static void on_timer(uv_timer_t *t)
{
    shard_t *s = t->data;
    s->waiting = false;
    kick(s);
}

/* The request failed for a reason that can pass: kept, sent again after the backoff. */
static void retry_later(shard_t *s, const char *why)
{
    endpoint_t *ep = s->ep;
    ep->st.retries++;
    if (!ep->failing) {
        KVL_LOG_WARN(MOD, ep->cfg->name,
                     "sending to %s failed: %s; retrying (backoff from %lld ms)", ep->cfg->url, why,
                     (long long)s->backoff_ms);
        ep->failing = true;
    }
    s->waiting = true;
    uv_timer_start(&s->timer, on_timer, (uint64_t)s->backoff_ms, 0);
    s->backoff_ms =
        s->backoff_ms * 2 < ep->cfg->max_backoff_ms ? s->backoff_ms * 2 : ep->cfg->max_backoff_ms;
}

static void request_over(shard_t *s)
{
    s->body.len = 0;
    s->body_samples = 0;
    s->backoff_ms = s->ep->cfg->min_backoff_ms;
}

static void on_done(void *arg, CURL *e, CURLcode rc)
{
    shard_t *s = arg;
    endpoint_t *ep = s->ep;
    long code = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(e);
    s->e = NULL;
    char why[CURL_ERROR_SIZE + 300];
    for (char *p = s->answer; *p != '\0'; p++) { /* one printable line for the log */
        *p = (unsigned char)*p < 0x20 || *p == 0x7f ? ' ' : *p;
    }
    if (rc != CURLE_OK) {
        snprintf(why, sizeof(why), "%s", s->err[0] ? s->err : curl_easy_strerror(rc));
        retry_later(s, why);
        return;
    }
    if (code >= 200 && code <= 299) {
        ep->st.sent += s->body_samples;
        ep->st.requests++;
        ep->st.last_success_ms = kvl_now_ms();
        if (ep->failing) {
            KVL_LOG_INFO(MOD, ep->cfg->name, "sending to %s again", ep->cfg->url);
            ep->failing = false;
        }
        request_over(s);
        kick(s);
        return;
    }
    snprintf(why, sizeof(why), "HTTP status %ld%s%s", code, s->answer[0] ? ": " : "", s->answer);
    if (code >= 500 || code == 429 || code == 408) {
        retry_later(s, why);
        return;
    }
    /* refused for good (bad data, out of order, too old): dropped, counted */
    ep->st.dropped_rejected += s->body_samples;
    int64_t now = kvl_now_ms();
    if (now - ep->refusal_logged_ms >= REFUSAL_LOG_EVERY_MS) {
        KVL_LOG_WARN(MOD, ep->cfg->name,
                     "%s refused %zu samples (%s); dropped (%llu more refused requests since "
                     "the last such line)",
                     ep->cfg->url, s->body_samples, why, (unsigned long long)ep->refusals_unlogged);
        ep->refusal_logged_ms = now;
        ep->refusals_unlogged = 0;
    } else {
        ep->refusals_unlogged++;
    }
    request_over(s);
    kick(s);
}

/* Starts the shard's request (body). Returns 0 or a negative code (logged). */
static int send_body(shard_t *s)
{
    endpoint_t *ep = s->ep;
    CURL *e = curl_easy_init();
    if (e == NULL) {
        return KVL_ENOMEM;
    }
    s->err[0] = '\0';
    s->answer[0] = '\0';
    s->answer_len = 0;
    curl_easy_setopt(e, CURLOPT_URL, ep->cfg->url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, (const char *)s->body.data);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)s->body.len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, ep->hdrs);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)ep->cfg->timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "kaaval-collector/" KVL_VERSION);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, s->err);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_answer);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
    if (ep->cfg->ca != NULL) {
        curl_easy_setopt(e, CURLOPT_CAINFO, ep->cfg->ca);
    }
    if (ep->cfg->username != NULL) {
        curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(e, CURLOPT_USERNAME, ep->cfg->username);
        curl_easy_setopt(e, CURLOPT_PASSWORD, ep->cfg->password);
    }
    char why[300];
    int rc = kvl_curl_uv_add(ep->rw->curl, e, on_done, s, why, sizeof(why));
    if (rc != 0) {
        curl_easy_cleanup(e);
        KVL_LOG_ERROR(MOD, ep->cfg->name, "cannot start a request: %s", why);
        return rc;
    }
    s->e = e;
    return 0;
}

/* Sends what the shard holds, unless a request is under way or waiting for its retry. */
static void kick(shard_t *s)
{
    endpoint_t *ep = s->ep;
    if (s->e != NULL || s->waiting || ep->rw->stopping) {
        return;
    }
    if (s->body.len == 0) {
        size_t n = 0, ns = 0;
        int64_t newest = 0;
        int64_t oldest = s->q.len > 0 ? s->q.ring[s->q.head].time_ms : 0;
        if (kvl_rw_queue_take(&s->q, ep->intern, (size_t)ep->cfg->max_samples_per_send, &s->raw, &n,
                              &ns, &newest) != 0 ||
            n == 0) {
            return; /* nothing, or out of memory: the next batch tries again */
        }
        if (kvl_rw_compress(s->raw.data, s->raw.len, &s->body) != 0) {
            ep->st.dropped_rejected += n;
            KVL_LOG_ERROR(MOD, ep->cfg->name, "cannot compress a request: %zu samples dropped", n);
            s->body.len = 0;
            return;
        }
        s->body_samples = n;
        s->body_oldest = oldest;
    }
    if (send_body(s) != 0) {
        retry_later(s, "the request could not start");
    }
}

/* ---- the sink -------------------------------------------------------------------------------- */

/* What a series' own label lookup needs (kvl_rw_label_fn's ctx). */
typedef struct label_ctx {
    const kvl_rwrite_t *rw;
    const char *agent, *device, *interface;
} label_ctx_t;

static const char *own_label(void *ctx, const char *key)
{
    const label_ctx_t *c = ctx;
    return c->rw->label_of(c->rw->label_ctx, c->agent, c->device, c->interface, key);
}

/* The instance of the samples being queued: its labels per endpoint, made once for all its
 * metrics. */
typedef struct instance {
    const kvl_series_def_t *def; /* the first definition seen of it, NULL: none yet */
    bool ok[KVL_RW_ENDPOINTS_MAX];
    kvl_rw_labels_t labels[KVL_RW_ENDPOINTS_MAX];
} instance_t;

static bool same_instance(const kvl_series_def_t *a, const kvl_series_def_t *b)
{
    return a != NULL && a->scope == b->scope && strcmp(a->device, b->device) == 0 &&
           strcmp(a->instance, b->instance) == 0;
}

static void instance_labels(kvl_rwrite_t *rw, const kvl_sink_batch_t *b,
                            const kvl_series_def_t *def, instance_t *in)
{
    in->def = def;
    /* only devices and interfaces have labels of their own in the inventory */
    bool lookup = rw->label_of != NULL &&
                  (def->scope == KVL_SCOPE_DEVICE || def->scope == KVL_SCOPE_INTERFACE);
    label_ctx_t lc = {.rw = rw,
                      .agent = b->agent,
                      .device = def->device,
                      .interface = def->scope == KVL_SCOPE_INTERFACE ? def->instance : ""};
    for (size_t i = 0; i < rw->n; i++) {
        in->ok[i] = kvl_rw_labels_of(&rw->eps[i].map, b->site, b->agent, def,
                                     lookup ? own_label : NULL, &lc, &in->labels[i]) == 0;
    }
}

/* Queues one sample for every endpoint. */
static void queue_sample(kvl_rwrite_t *rw, instance_t *in, const char *name, int64_t time_ms,
                         double v)
{
    for (size_t i = 0; i < rw->n; i++) {
        endpoint_t *ep = &rw->eps[i];
        if (!in->ok[i]) {
            continue;
        }
        in->labels[i].value[0] = name;
        rw->labels.len = 0;
        kvl_rw_series_t *s = NULL;
        if (kvl_rw_encode_labels(&in->labels[i], &rw->labels) != 0 ||
            (s = kvl_rw_intern(ep->intern, rw->labels.data, rw->labels.len)) == NULL) {
            ep->st.dropped_full++; /* out of memory: as if the queue were full */
            continue;
        }
        shard_t *sh = &ep->shards[kvl_rw_series_hash(s) % ep->n_shards];
        if (kvl_rw_queue_push(&sh->q, ep->intern, s, time_ms, v) != 0) {
            ep->st.dropped_full++;
        }
    }
}

static int rw_on_batch(void *ctx, const kvl_sink_batch_t *b, kvl_sink_done_cb done, void *token)
{
    kvl_rwrite_t *rw = ctx;
    const kvl_batch_t *batch = b->batch;
    instance_t *in = rw->instance;
    in->def = NULL;
    char name[256];
    for (size_t g = 0; g < batch->n_groups; g++) {
        const kvl_group_t *grp = &batch->groups[g];
        kvl_group_iter_t it;
        kvl_sample_t s;
        kvl_group_iter_init(&it, grp);
        while (kvl_group_iter_next(&it, kvl_sink_def, (void *)b->defs, &s) == 1) {
            if (s.unknown || s.def->scope >= KVL_SCOPE_FIRST_LATER ||
                kvl_rw_name(s.def, kvl_sink_family(b->defs, s.def), name, sizeof(name)) == 0) {
                continue; /* not measured: no sample (a gap), as in the archives */
            }
            if (!same_instance(in->def, s.def)) {
                instance_labels(rw, b, s.def, in);
            }
            double v = s.def->real ? s.real : (double)s.value;
            queue_sample(rw, in, name, grp->time_ms, v);
        }
    }
    for (size_t i = 0; i < rw->n; i++) {
        for (size_t k = 0; k < rw->eps[i].n_shards; k++) {
            kick(&rw->eps[i].shards[k]);
        }
    }
    done(token, NULL);
    return 0;
}

const kvl_sink_t kvl_rwrite_sink = {.name = "remote-write", .on_batch = rw_on_batch};

/* ---- life ------------------------------------------------------------------------------------ */

static void free_memory(kvl_rwrite_t *rw)
{
    for (size_t i = 0; i < rw->n; i++) {
        endpoint_t *ep = &rw->eps[i];
        for (size_t k = 0; ep->shards != NULL && k < ep->n_shards; k++) {
            shard_t *s = &ep->shards[k];
            kvl_rw_queue_free(&s->q, ep->intern);
            kvl_buf_free(&s->raw);
            kvl_buf_free(&s->body);
        }
        free(ep->shards);
        kvl_rw_intern_free(ep->intern);
        curl_slist_free_all(ep->hdrs);
    }
    kvl_buf_free(&rw->labels);
    free(rw->instance);
    free(rw->eps);
    free(rw);
}

static void on_timer_closed(uv_handle_t *h)
{
    shard_t *s = h->data;
    kvl_rwrite_t *rw = s->ep->rw;
    KVL_ASSERT(rw->closing > 0);
    if (--rw->closing == 0) {
        free_memory(rw);
    }
}

/* A transfer under way at the stop: its easy handle cleaned up, its samples dropped. */
static void on_drop(void *arg, CURL *e)
{
    shard_t *s = arg;
    curl_easy_cleanup(e);
    s->e = NULL;
}

void kvl_rwrite_free(kvl_rwrite_t *rw)
{
    if (rw == NULL) {
        return;
    }
    rw->stopping = true;
    kvl_curl_uv_free(rw->curl, on_drop);
    rw->curl = NULL;
    for (size_t i = 0; i < rw->n; i++) {
        endpoint_t *ep = &rw->eps[i];
        size_t lost = 0;
        for (size_t k = 0; k < ep->n_timers; k++) {
            lost += ep->shards[k].q.len + ep->shards[k].body_samples;
        }
        if (lost > 0) {
            KVL_LOG_WARN(MOD, ep->cfg->name, "stopping: %zu samples not sent to %s are dropped",
                         lost, ep->cfg->url);
        }
        for (size_t k = 0; k < ep->n_timers; k++) {
            uv_timer_stop(&ep->shards[k].timer);
            uv_close((uv_handle_t *)&ep->shards[k].timer, on_timer_closed);
        }
    }
    if (rw->closing == 0) {
        free_memory(rw);
    }
}

static int endpoint_init(kvl_rwrite_t *rw, endpoint_t *ep, const kvl_rw_endpoint_cfg_t *c,
                         char *err, size_t errlen)
{
    ep->rw = rw;
    ep->cfg = c;
    ep->st.name = c->name;
    ep->map = (kvl_rw_map_t){.external = c->external,
                             .n_external = c->n_external,
                             .series_labels = c->series_labels,
                             .n_series_labels = c->n_series_labels};
    ep->intern = kvl_rw_intern_new();
    ep->n_shards = (size_t)c->shards;
    ep->shards = calloc(ep->n_shards, sizeof(*ep->shards));
    if (ep->intern == NULL || ep->shards == NULL) {
        snprintf(err, errlen, "out of memory");
        return KVL_ENOMEM;
    }
    const char *fixed[] = {"Content-Encoding: snappy", "Content-Type: application/x-protobuf",
                           "X-Prometheus-Remote-Write-Version: 0.1.0", "Expect:"};
    for (size_t i = 0; i < KVL_ARRAY_SIZE(fixed); i++) {
        struct curl_slist *h = curl_slist_append(ep->hdrs, fixed[i]);
        if (h == NULL) {
            snprintf(err, errlen, "out of memory");
            return KVL_ENOMEM;
        }
        ep->hdrs = h;
    }
    if (c->bearer_token != NULL) {
        char auth[4200];
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->bearer_token);
        struct curl_slist *h = curl_slist_append(ep->hdrs, auth);
        if (h == NULL) {
            snprintf(err, errlen, "out of memory");
            return KVL_ENOMEM;
        }
        ep->hdrs = h;
    }
    size_t per = (size_t)c->max_queue / ep->n_shards;
    for (size_t k = 0; k < ep->n_shards; k++) {
        shard_t *s = &ep->shards[k];
        s->ep = ep;
        s->backoff_ms = c->min_backoff_ms;
        uv_timer_init(rw->loop, &s->timer);
        s->timer.data = s;
        rw->closing++;
        ep->n_timers++;
        if (kvl_rw_queue_init(&s->q, per > 0 ? per : 1) != 0) {
            snprintf(err, errlen, "out of memory for a queue of %zu samples", per);
            return KVL_ENOMEM;
        }
    }
    return 0;
}

int kvl_rwrite_new(uv_loop_t *loop, const kvl_rw_cfg_t *cfg, kvl_rwrite_label_fn label_of,
                   void *label_ctx, kvl_rwrite_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (cfg == NULL || cfg->n == 0) {
        return 0;
    }
    static bool curl_ready;
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            snprintf(err, errlen, "libcurl cannot be initialised");
            return KVL_EIO;
        }
        curl_ready = true;
    }
    kvl_rwrite_t *rw = calloc(1, sizeof(*rw));
    if (rw == NULL || (rw->eps = calloc(cfg->n, sizeof(*rw->eps))) == NULL ||
        (rw->instance = malloc(sizeof(*rw->instance))) == NULL) {
        if (rw != NULL) {
            free(rw->eps);
        }
        free(rw);
        snprintf(err, errlen, "out of memory");
        return KVL_ENOMEM;
    }
    rw->loop = loop;
    rw->n = cfg->n;
    rw->label_of = label_of;
    rw->label_ctx = label_ctx;
    int rc = kvl_curl_uv_new(loop, &curl_api, &rw->curl, err, errlen);
    for (size_t i = 0; rc == 0 && i < cfg->n; i++) {
        rc = endpoint_init(rw, &rw->eps[i], &cfg->at[i], err, errlen);
    }
    if (rc != 0) {
        kvl_rwrite_free(rw);
        return rc;
    }
    for (size_t i = 0; i < cfg->n; i++) {
        const kvl_rw_endpoint_cfg_t *c = &cfg->at[i];
        KVL_LOG_INFO(MOD, c->name,
                     "sending samples to %s: %lld shards, %lld samples queued at most, %lld per "
                     "request",
                     c->url, (long long)c->shards, (long long)c->max_queue,
                     (long long)c->max_samples_per_send);
    }
    *out = rw;
    return 0;
}

void kvl_rwrite_each(const kvl_rwrite_t *rw, void (*fn)(void *ctx, const kvl_rwrite_stats_t *st),
                     void *ctx)
{
    for (size_t i = 0; rw != NULL && i < rw->n; i++) {
        const endpoint_t *ep = &rw->eps[i];
        kvl_rwrite_stats_t st = ep->st;
        st.queued = 0;
        int64_t oldest = INT64_MAX;
        for (size_t k = 0; k < ep->n_shards; k++) {
            const shard_t *s = &ep->shards[k];
            st.queued += s->q.len + s->body_samples;
            if (s->body_samples > 0 && s->body_oldest < oldest) {
                oldest = s->body_oldest;
            }
            if (s->q.len > 0 && s->q.ring[s->q.head].time_ms < oldest) {
                oldest = s->q.ring[s->q.head].time_ms;
            }
        }
        st.series = kvl_rw_intern_count(ep->intern);
        int64_t now = kvl_now_ms();
        st.lag_s = oldest != INT64_MAX && now > oldest ? (double)(now - oldest) / 1000.0 : 0.0;
        fn(ctx, &st);
    }
}
