/*
 * main.c — kaaval-collector: receives agents' samples and keeps them in RRD archives.
 *
 *   kaaval-collector -c collector.yaml                 run until SIGINT/SIGTERM
 *   kaaval-collector -c collector.yaml --check-config  check the file and exit
 *   kaaval-collector -c collector.yaml --add-user NAME --role ROLE   add or replace an HTTP
 *                                      user (password from stdin, or a prompt without echo)
 *   kaaval-collector -c collector.yaml --add-token NAME --role ROLE  add or replace an API
 *                                      token and print it (once)
 *   kaaval-collector -c collector.yaml --forget-device AGENT/DEVICE  delete a device's
 *                                      inventory entry (not its archives; collector stopped)
 *
 * Exit status: 0 normal, 1 runtime failure, 2 usage or configuration error.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <uv.h>

#include "board.h"
#include "book.h"
#include "capacity.h"
#include "captop_store.h"
#include "collector_config.h"
#include "collector_diff.h"
#include "engine.h"
#include "fileio.h"
#include "graph.h"
#include "http.h"
#include "http_auth.h"
#include "ingest.h"
#include "inventory.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "rootcause.h"
#include "rules.h"
#include "rwrite.h"
#include "sdnotify.h"
#include "sink.h"
#include "store.h"
#include "timeutil.h"
#include "tls.h"
#include "topology.h"

/* What a reload replaced: the previous sections and rules. Rooms that close asynchronously
 * may still read them for a while (a notifier's receivers until their last delivery attempt
 * ends: `timeout` is 10 min at most), so they are freed by a reload RETIRED_KEEP_MS later,
 * or at exit. */
typedef struct retired {
    struct retired *next;
    kvl_collector_cfg_t *cfg;
    kvl_rules_t *rules;
    int64_t at_ms; /* when it was retired */
} retired_t;

#define RETIRED_KEEP_MS (15 * 60 * 1000)

typedef struct app {
    uv_loop_t *loop;
    const char *cfg_path; /* read again on SIGHUP */
    kvl_collector_cfg_t *cfg;
    retired_t *retired;
    size_t n_users, n_tokens; /* in the users and tokens files at start or the last reload */
    kvl_store_t *store;
    kvl_sinks_t sinks; /* what the ingest hands batches and events to, in this order */
    kvl_ingest_t *ingest;
    kvl_http_t *http;           /* NULL without an `http:` section */
    kvl_inventory_t *inventory; /* devices and interfaces (the first sink: renames) */
    /* alerts: the engine (a sink) reports changes to the book, which tells the notifiers */
    kvl_rules_t *rules;
    kvl_notify_t *notify;
    kvl_book_t *book;
    kvl_engine_t *engine;
    /* the board: latest values (a sink after the store) and its API */
    kvl_latest_t *latest;
    kvl_board_t *board;
    kvl_capacity_t *capacity;   /* the planners' report (its API) */
    kvl_captop_store_t *captop; /* the capture's top lists (a sink, its API) */
    kvl_topology_t *topology;   /* the topology graph and reachability (its API) */
    kvl_rootcause_t *rootcause; /* root-cause alerts from it (NULL: off, or no site tree) */
    kvl_graph_t *graph;         /* graphs drawn from the archives */
    kvl_rwrite_t *rwrite;       /* Prometheus remote-write out (NULL: none configured) */
    kvl_metrics_src_t metrics;  /* what GET /metrics reads */
    uv_timer_t journal_timer;   /* the journal's fill as the collector's own figure */
    uv_signal_t sigint, sigterm, sighup;
} app_t;

static void usage(FILE *f)
{
    fprintf(f, "usage: kaaval-collector -c FILE [--check-config]\n"
               "       kaaval-collector -c FILE --add-user NAME --role ROLE\n"
               "       kaaval-collector -c FILE --add-token NAME --role ROLE\n"
               "  -c, --config FILE   collector configuration (YAML)\n"
               "      --check-config  check the configuration and exit\n"
               "      --add-user NAME add or replace an HTTP user; the password is read from\n"
               "                      stdin (a prompt without echo on a terminal)\n"
               "      --add-token NAME  add or replace an API token and print it once\n"
               "      --role ROLE     viewer, operator or admin\n"
               "      --forget-device AGENT/DEVICE  delete a device's inventory entry (its\n"
               "                      archives are kept); run it with the collector stopped\n"
               "  -V, --version       print the version\n"
               "  -h, --help          this help\n");
}

/* rrdcached mode: a checkpoint had rrdcached write the archives (store.h): the journal may
 * record the batches it covers as applied. */
static void on_archives_durable(void *ctx, uint64_t point)
{
    app_t *a = ctx;
    if (a->ingest != NULL) {
        kvl_ingest_durable(a->ingest, point);
    }
}

static void on_signal(uv_signal_t *s, int signum)
{
    app_t *a = s->data;
    KVL_LOG_INFO("collector", a->cfg->id, "stopping (signal %d): finishing archive writes", signum);
    kvl_sd_stopping();
    kvl_http_free(a->http);
    a->http = NULL;
    kvl_ingest_free(a->ingest);
    a->ingest = NULL;
    kvl_rwrite_free(a->rwrite);
    a->rwrite = NULL;
    kvl_board_free(a->board);
    a->board = NULL;
    kvl_capacity_free(a->capacity);
    a->capacity = NULL;
    kvl_captop_store_free(a->captop); /* after the ingest: no more events */
    a->captop = NULL;
    kvl_rootcause_free(a->rootcause);
    a->rootcause = NULL;
    kvl_topology_free(a->topology);
    a->topology = NULL;
    kvl_graph_free(a->graph);
    a->graph = NULL;
    uv_close((uv_handle_t *)&a->journal_timer, NULL);
    kvl_engine_free(a->engine);
    a->engine = NULL;
    kvl_book_free(a->book);
    a->book = NULL;
    kvl_notify_free(a->notify);
    a->notify = NULL;
    kvl_inventory_free(a->inventory);
    a->inventory = NULL;
    uv_close((uv_handle_t *)&a->sigint, NULL);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
    uv_close((uv_handle_t *)&a->sighup, NULL);
}

/* Whether the `receivers:` list names a receiver (ctx: the kvl_notify_cfg_t, may be NULL). */
static bool has_receiver(const void *ctx, const char *name)
{
    const kvl_notify_cfg_t *n = ctx;
    for (size_t i = 0; n != NULL && i < n->n; i++) {
        if (strcmp(n->receivers[i].name, name) == 0) {
            return true;
        }
    }
    return false;
}

static void restore_alert(void *ctx, const kvl_alert_t *alert)
{
    if (alert->status == KVL_ALERT_FIRING || alert->status == KVL_ALERT_PENDING) {
        kvl_engine_restore(ctx, alert);
    }
}

/* The graphs' site of an agent: the one its batches report, else the inventory's. */
typedef struct graph_site {
    const char *agent, *site;
} graph_site_t;

static void graph_site_one(void *ctx, const kvl_latest_agent_t *la)
{
    graph_site_t *c = ctx;
    if (c->site == NULL && strcmp(la->id, c->agent) == 0) {
        c->site = la->site;
    }
}

static const char *graph_site(void *ctx, const char *agent)
{
    app_t *a = ctx;
    graph_site_t c = {.agent = agent};
    kvl_latest_agents(a->latest, graph_site_one, &c);
    return c.site != NULL ? c.site : kvl_inventory_site(a->inventory, agent);
}

static const char *graph_name(void *ctx, const char *agent, const char *device,
                              const char *interface)
{
    return kvl_inventory_current_name(ctx, agent, device, interface);
}

static const char *graph_label(void *ctx, const char *agent, const char *device,
                               const char *interface, const char *key)
{
    return kvl_inventory_label(ctx, agent, device, interface, key);
}

/* The board's view of the firing alerts (board.h): their site label and severity. */
typedef struct board_alerts {
    kvl_board_alert_fn fn;
    void *ctx;
} board_alerts_t;

static void board_alert(void *ctx, const kvl_alert_t *alert)
{
    board_alerts_t *c = ctx;
    if (alert->status == KVL_ALERT_FIRING) {
        c->fn(c->ctx, kvl_alert_label(alert, "site"), kvl_rules_severity_name(alert->severity));
    }
}

static void board_alerts_each(void *src, kvl_board_alert_fn fn, void *ctx)
{
    board_alerts_t c = {.fn = fn, .ctx = ctx};
    if (src != NULL) {
        kvl_book_each_active(src, board_alert, &c);
    }
}

/* The board's view of the agents: the ingest's (connection, loss, version). */
typedef struct board_agents {
    kvl_board_agent_fn fn;
    void *ctx;
} board_agents_t;

static void board_agent(void *ctx, const kvl_ingest_agent_t *a)
{
    board_agents_t *c = ctx;
    kvl_board_agent_t v = {.id = a->id,
                           .site = a->site,
                           .version = a->version,
                           .connected = a->connected,
                           .lost = a->lost,
                           .lost_since_ms = a->lost_since_ms,
                           .last_seen_ms = a->last_seen_ms};
    c->fn(c->ctx, &v);
}

static void board_agents_each(void *src, kvl_board_agent_fn fn, void *ctx)
{
    app_t *a = src;
    board_agents_t c = {.fn = fn, .ctx = ctx};
    if (a->ingest != NULL) {
        kvl_ingest_agents(a->ingest, board_agent, &c);
    }
}

/* The sink the ingest calls for the rule engine: the app's engine of the moment, so that a
 * reload can replace it (the registry is fixed once the ingest runs). */
static int engine_slot_batch(void *ctx, const kvl_sink_batch_t *b, kvl_sink_done_cb done,
                             void *token)
{
    app_t *a = ctx;
    return kvl_engine_sink.on_batch(a->engine, b, done, token);
}

static void engine_slot_event(void *ctx, const kvl_sink_event_t *e)
{
    app_t *a = ctx;
    kvl_engine_sink.on_event(a->engine, e);
}

static const kvl_sink_t engine_slot = {
    .name = "rule engine", .on_batch = engine_slot_batch, .on_event = engine_slot_event};

/* Every 10 s: the journal's fill, a figure of the collector's own that a rule watches. */
static void on_journal_timer(uv_timer_t *t)
{
    app_t *a = t->data;
    if (a->ingest == NULL || a->engine == NULL) {
        return;
    }
    kvl_ingest_stats_t st;
    kvl_ingest_stats(a->ingest, &st);
    double pct = 100.0 * (double)st.journal_bytes / (double)a->cfg->journal_max_bytes;
    kvl_engine_collector_value(a->engine, a->cfg->id, "journal_used_pct", pct, kvl_now_ms());
}

/* The alerts: rules, notifiers, the book (which restores what fired or was pending before a
 * restart) and the engine, registered as a sink after the store. Returns 0, or 1 with the reason
 * logged (what was made is freed by the caller's stop path). */
static int start_alerts(app_t *a, char *err, size_t errlen)
{
    char path[4096];
    if (kvl_rules_load(a->cfg->rules, &a->rules, err, errlen) != 0) {
        KVL_LOG_ERROR("alerts", a->cfg->id, "%s", err);
        return 1;
    }
    snprintf(path, sizeof(path), "%s/_notify", a->cfg->data_dir);
    if (kvl_notify_new(a->loop, a->cfg->receivers, path, &a->notify, err, errlen) != 0) {
        KVL_LOG_ERROR("notify", a->cfg->id, "%s", err);
        return 1;
    }
    snprintf(path, sizeof(path), "%s/_alerts", a->cfg->data_dir);
    kvl_book_opts_t bo = {.loop = a->loop, .cfg = a->cfg->alerts, .notify = a->notify, .dir = path};
    if (kvl_book_new(&bo, &a->book, err, errlen) != 0) {
        KVL_LOG_ERROR("alerts", a->cfg->id, "%s", err);
        return 1;
    }
    kvl_engine_cfg_t ec = {
        .rules = a->rules, .late_after_ms = a->cfg->late_after_ms, .web_url = a->cfg->web_url};
    if (kvl_engine_new(a->loop, &ec, kvl_book_alert_cb, a->book, &a->engine, err, errlen) != 0) {
        KVL_LOG_ERROR("alerts", a->cfg->id, "%s", err);
        return 1;
    }
    kvl_book_each_active(a->book, restore_alert, a->engine);
    kvl_sinks_register(&a->sinks, &engine_slot, a);
    uv_timer_init(a->loop, &a->journal_timer);
    a->journal_timer.data = a;
    uv_timer_start(&a->journal_timer, on_journal_timer, 10000, 10000);
    uv_unref((uv_handle_t *)&a->journal_timer);
    KVL_LOG_INFO("alerts", a->cfg->id, "%zu alert rules, %zu receivers", a->rules->n,
                 a->cfg->receivers != NULL ? a->cfg->receivers->n : 0);
    return 0;
}

/* The topology (always: its API and `kaavalctl topology` need it) and, with a site tree and
 * `alerts: root_cause: enabled`, the root-cause alerts on top of it. Returns 0 or 1 (err). */
static int start_topology(app_t *a, char *err, size_t errlen)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/_topology", a->cfg->data_dir);
    kvl_topology_opts_t to = {.sites = a->cfg->sites,
                              .latest = a->latest,
                              .inventory = a->inventory,
                              .agents = board_agents_each,
                              .agents_src = a,
                              .dir = dir};
    if (kvl_topology_new(&to, &a->topology, err, errlen) != 0) {
        return 1;
    }
    const kvl_alerts_cfg_t *ac = a->cfg->alerts;
    bool enabled = ac == NULL || ac->root_cause.enabled;
    if (!enabled || a->cfg->sites == NULL || a->cfg->sites->n == 0) {
        KVL_LOG_INFO("rootcause", a->cfg->id, "root-cause alerts off (%s)",
                     enabled ? "no `sites:` tree" : "alerts: root_cause: enabled: false");
        return 0;
    }
    kvl_rootcause_opts_t ro = {.hold_ms = ac != NULL ? ac->root_cause.hold_ms : 30000,
                               .settle_ms = ac != NULL ? ac->root_cause.settle_ms : 120000};
    if (kvl_rootcause_new(&ro, NULL, NULL, &a->rootcause) != 0 ||
        kvl_rootcause_start(a->rootcause, a->loop, a->topology, a->book) != 0) {
        snprintf(err, errlen, "root-cause alerts could not start (out of memory)");
        return 1;
    }
    KVL_LOG_INFO("rootcause", a->cfg->id, "root-cause alerts on: hold %lld s, settle %lld s",
                 (long long)ro.hold_ms / 1000, (long long)ro.settle_ms / 1000);
    return 0;
}

/* Frees what start_alerts made, when the collector could not start (the loop is run after). */
static void stop_alerts(app_t *a)
{
    if (a->journal_timer.data != NULL) { /* initialised */
        uv_close((uv_handle_t *)&a->journal_timer, NULL);
    }
    kvl_engine_free(a->engine);
    a->engine = NULL;
    kvl_book_free(a->book);
    a->book = NULL;
    kvl_notify_free(a->notify);
    a->notify = NULL;
}

/* An interface renamed on its device (the inventory decided): its archive follows, moved by
 * the store before the agent's next rows (ctx: the app). */
static void on_if_renamed(void *ctx, const char *agent, const char *site, const char *device,
                          const char *from, const char *to)
{
    app_t *a = ctx;
    int rc = kvl_store_move(a->store, agent, site, device, from, to);
    if (rc != 0) {
        KVL_LOG_ERROR("store", device, "agent %s: the archive of %s cannot follow to %s: %s", agent,
                      from, to, kvl_strerror(rc));
    }
}

/* The store's answer: the inventory logs the rename, the old name's latest values go. */
static void on_archive_moved(void *ctx, const char *agent, const char *device, const char *from,
                             const char *to, kvl_store_move_how_t how)
{
    app_t *a = ctx;
    if (a->inventory != NULL) {
        kvl_inventory_moved(a->inventory, agent, device, from, to,
                            how == KVL_STORE_MOVED       ? KVL_INV_MOVED
                            : how == KVL_STORE_KEPT_BOTH ? KVL_INV_KEPT_BOTH
                                                         : KVL_INV_NO_ARCHIVE);
    }
    if (a->latest != NULL) {
        kvl_latest_drop(a->latest, agent, device, KVL_SCOPE_INTERFACE, from);
    }
}

/* The inventory (<data_dir>/_inventory), restored; renames go to the app's store (app NULL:
 * none). Returns 0, or 1 with the reason logged. */
static int open_inventory(const kvl_collector_cfg_t *cfg, app_t *app, kvl_inventory_t **out)
{
    char path[4096], err[600];
    snprintf(path, sizeof(path), "%s/_inventory", cfg->data_dir);
    kvl_inventory_opts_t io = {
        .dir = path, .on_rename = app != NULL ? on_if_renamed : NULL, .rename_ctx = app};
    if (kvl_inventory_new(&io, out, err, sizeof(err)) != 0) {
        KVL_LOG_ERROR("inventory", cfg->id, "%s", err);
        return 1;
    }
    return 0;
}

/* --forget-device AGENT/DEVICE (the first '/' separates them). Returns the exit status. */
static int forget_device(const kvl_collector_cfg_t *cfg, const char *what)
{
    const char *slash = strchr(what, '/');
    if (slash == NULL || slash == what || slash[1] == '\0') {
        fprintf(stderr, "kaaval-collector: --forget-device wants AGENT/DEVICE\n");
        return 2;
    }
    char agent[512];
    snprintf(agent, sizeof(agent), "%.*s", (int)(slash - what), what);
    kvl_inventory_t *inv = NULL;
    if (open_inventory(cfg, NULL, &inv) != 0) {
        return 1;
    }
    int rc = kvl_inventory_forget(inv, agent, slash + 1);
    kvl_inventory_free(inv);
    if (rc == KVL_EINVAL) {
        fprintf(stderr, "kaaval-collector: no device %s of agent %s in the inventory\n", slash + 1,
                agent);
        return 1;
    }
    if (rc != 0) {
        fprintf(stderr, "kaaval-collector: %s\n", kvl_strerror(rc));
        return 1;
    }
    fprintf(stderr, "device %s of agent %s forgotten (its archives are kept)\n", slash + 1, agent);
    return 0;
}

/* Reads a password: from a terminal with a prompt, without echo, twice; else one line of
 * stdin. Returns 0 or -1 with a sentence on stderr. */
static int read_password(const char *user, char *pw, size_t len)
{
    bool tty = isatty(STDIN_FILENO);
    struct termios old, quiet;
    char again[300];
    for (int round = 0; round < (tty ? 2 : 1); round++) {
        char *dst = round == 0 ? pw : again;
        size_t dlen = round == 0 ? len : sizeof(again);
        if (tty) {
            fprintf(stderr, round == 0 ? "Password for %s: " : "Again: ", user);
            tcgetattr(STDIN_FILENO, &old);
            quiet = old;
            quiet.c_lflag &= ~(tcflag_t)ECHO;
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
        }
        char *got = fgets(dst, (int)dlen, stdin);
        if (tty) {
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
            fputc('\n', stderr);
        }
        if (got == NULL) {
            fprintf(stderr, "kaaval-collector: no password given\n");
            return -1;
        }
        dst[strcspn(dst, "\r\n")] = '\0';
    }
    if (tty && strcmp(pw, again) != 0) {
        fprintf(stderr, "kaaval-collector: the passwords differ\n");
        return -1;
    }
    explicit_bzero(again, sizeof(again));
    return 0;
}

/* --add-user / --add-token. Returns the exit status. */
static int add_credential(const kvl_collector_cfg_t *cfg, const char *user, const char *token,
                          const char *role_s)
{
    kvl_role_t role;
    char err[1200];
    if (kvl_http_role_parse(role_s, &role) != 0) {
        fprintf(stderr, "kaaval-collector: --role must be viewer, operator or admin\n");
        return 2;
    }
    if (user != NULL) {
        char pw[300];
        if (read_password(user, pw, sizeof(pw)) != 0) {
            return 2;
        }
        int rc = kvl_http_users_set(cfg->http->users_file, user, role, pw, err, sizeof(err));
        explicit_bzero(pw, sizeof(pw));
        if (rc != 0) {
            fprintf(stderr, "kaaval-collector: %s\n", err);
            return rc == KVL_EINVAL ? 2 : 1;
        }
        fprintf(stderr, "user %s (%s) written to %s\n", user, role_s, cfg->http->users_file);
        return 0;
    }
    char tok[80];
    int rc = kvl_http_tokens_add(cfg->http->tokens_file, token, role, tok, sizeof(tok), err,
                                 sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "kaaval-collector: %s\n", err);
        return rc == KVL_EINVAL ? 2 : 1;
    }
    printf("%s\n", tok);
    fprintf(stderr, "token %s (%s) written to %s: keep the line above, it is not shown again\n",
            token, role_s, cfg->http->tokens_file);
    return 0;
}

/* What `rrdcached_files: remote` gives up, said at start and by --check-config
 * (docs/configuration.md). */
#define REMOTE_ARCHIVES_NOTE                                                                       \
    "archives on rrdcached's host only (rrdcached_files: remote): created, written and read "      \
    "through rrdcached; not available: archives following a renamed interface, data sources "      \
    "added to an existing archive, links in the capacity report"

/* The checks start-up and --check-config make beyond the file's own form: the rules, the
 * receivers `alerts:` names, the data folder and the TLS files. Returns 0 with the rules in
 * *rules, or KVL_ECONFIG with the reason in err (file:line:column for the rules). */
static int config_checks(const char *path, const kvl_collector_cfg_t *cfg, kvl_rules_t **rules,
                         char *err, size_t errlen)
{
    char why[3000];
    *rules = NULL;
    if (kvl_rules_load(cfg->rules, rules, err, errlen) != 0) {
        return KVL_ECONFIG;
    }
    const char *bad = NULL;
    if (cfg->alerts != NULL && kvl_alerts_cfg_check_receivers(cfg->alerts, has_receiver,
                                                              cfg->receivers, err, errlen) != 0) {
        kvl_rules_free(*rules);
        *rules = NULL;
        return KVL_ECONFIG;
    }
    if (kvl_dir_usable(cfg->data_dir, why, sizeof(why)) != 0) {
        bad = "data_dir";
    } else if (cfg->tls.given) {
        kvl_tls_ctx_t *ctx = kvl_tls_ctx_new(KVL_TLS_SERVER, cfg->tls.ca, cfg->tls.cert,
                                             cfg->tls.key, why, sizeof(why));
        bad = ctx == NULL ? "tls" : NULL;
        kvl_tls_ctx_free(ctx);
    }
    if (bad != NULL) {
        snprintf(err, errlen, "%s: %s: %s", path, bad, why);
        kvl_rules_free(*rules);
        *rules = NULL;
        return KVL_ECONFIG;
    }
    return 0;
}

/* How many users and tokens the HTTP files hold. Returns 0, or an error naming the file and
 * line in err. */
static int count_credentials(const kvl_http_cfg_t *h, size_t *users, size_t *tokens, char *err,
                             size_t errlen)
{
    kvl_http_auth_db_t *db = NULL;
    *users = *tokens = 0;
    int rc = kvl_http_auth_new(h->users_file, h->tokens_file, h->session_ttl_ms, &db, err, errlen);
    if (rc != 0) {
        return rc;
    }
    json_t *all = kvl_http_auth_list(db);
    size_t i;
    json_t *v;
    json_array_foreach(all, i, v)
    {
        const char *kind = json_string_value(json_object_get(v, "kind"));
        if (kind != NULL && strcmp(kind, "token") == 0) {
            (*tokens)++;
        } else {
            (*users)++;
        }
    }
    json_decref(all);
    kvl_http_auth_free(db);
    return 0;
}

/* The book's active alerts, copied (the book may change while they are handed on). */
typedef struct alert_list {
    kvl_alert_t **v;
    size_t n, cap;
    bool nomem;
} alert_list_t;

static void alert_list_add(void *ctx, const kvl_alert_t *alert)
{
    alert_list_t *l = ctx;
    if (l->n == l->cap) {
        size_t nc = l->cap == 0 ? 16 : l->cap * 2;
        kvl_alert_t **v = realloc(l->v, nc * sizeof(*v));
        if (v == NULL) {
            l->nomem = true;
            return;
        }
        l->v = v;
        l->cap = nc;
    }
    if ((l->v[l->n] = kvl_alert_dup(alert)) == NULL) {
        l->nomem = true;
        return;
    }
    l->n++;
}

/* Hands the book's active alerts to the new engine (it continues them silently, as after a
 * restart) and resolves those of rules the reload removed: nothing could resolve them any
 * more, and the receivers they paged are owed their resolution. Returns how many were
 * resolved. */
static size_t carry_alerts(app_t *a, kvl_engine_t *engine, const kvl_rules_t *old_rules,
                           const kvl_rules_t *new_rules)
{
    alert_list_t l = {0};
    kvl_book_each_active(a->book, alert_list_add, &l);
    size_t resolved = 0;
    int64_t now = kvl_now_ms();
    for (size_t i = 0; i < l.n; i++) {
        kvl_alert_t *al = l.v[i];
        bool gone = al->rule != NULL && kvl_rules_find(old_rules, al->rule) != NULL &&
                    kvl_rules_find(new_rules, al->rule) == NULL;
        if (!gone) {
            restore_alert(engine, al);
        } else {
            al->status = KVL_ALERT_RESOLVED;
            al->ends_at_ms = al->changed_ms = now;
            al->late = false;
            kvl_book_update(a->book, al);
            resolved++;
        }
        kvl_alert_free(al);
    }
    if (l.nomem) {
        KVL_LOG_ERROR("alerts", a->cfg->id,
                      "out of memory while carrying the alerts over: some may page again");
    }
    free(l.v);
    return resolved;
}

/* Moves the live sections of neu into the running configuration and the running ones into
 * neu (which is then retired): the rooms keep pointing at a->cfg's fields. */
static void swap_live_sections(kvl_collector_cfg_t *cur, kvl_collector_cfg_t *neu, bool receivers)
{
    kvl_alerts_cfg_t *alerts = cur->alerts;
    cur->alerts = neu->alerts;
    neu->alerts = alerts;
    char *str = cur->rules;
    cur->rules = neu->rules;
    neu->rules = str;
    str = cur->web_url;
    cur->web_url = neu->web_url;
    neu->web_url = str;
    kvl_sites_cfg_t *sites = cur->sites;
    cur->sites = neu->sites;
    neu->sites = sites;
    int64_t late = cur->late_after_ms;
    cur->late_after_ms = neu->late_after_ms;
    neu->late_after_ms = late;
    int level = cur->log_level;
    cur->log_level = neu->log_level;
    neu->log_level = level;
    if (receivers) {
        kvl_notify_cfg_t *rcv = cur->receivers;
        cur->receivers = neu->receivers;
        neu->receivers = rcv;
    }
}

/* Frees the previous configurations a reload retired before `before_ms` (INT64_MAX: all). */
static void free_retired(app_t *a, int64_t before_ms)
{
    retired_t **at = &a->retired;
    while (*at != NULL) {
        retired_t *r = *at;
        if (r->at_ms >= before_ms) {
            at = &r->next;
            continue;
        }
        *at = r->next;
        kvl_collector_cfg_free(r->cfg);
        kvl_rules_free(r->rules);
        free(r);
    }
}

/* SIGHUP (and systemctl reload): the configuration file and the rules are read again and
 * checked as at start; refused (the running configuration stays, every room untouched) when
 * they do not parse or check or when a key that needs a restart changed; else the rules,
 * routing, receivers, sites and log level are applied. Connections, the journal and the
 * store are never touched. */
static void on_hup(uv_signal_t *s, int signum)
{
    KVL_UNUSED(signum);
    app_t *a = s->data;
    const char *id = a->cfg->id;
    char err[4096], keys[1024];
    kvl_sd_reloading();
    KVL_LOG_INFO("collector", id, "reloading %s (signal %d)", a->cfg_path, signum);
    free_retired(a, kvl_now_ms() - RETIRED_KEEP_MS);
    kvl_rules_t *rules = NULL;
    kvl_notify_t *notify = NULL;
    kvl_engine_t *engine = NULL;
    size_t n_users = 0, n_tokens = 0;
    kvl_names_diff_t rcv = {0}, rd = {0};
    int rc = 0;
    kvl_collector_cfg_t *neu = kvl_collector_cfg_load(a->cfg_path, err, sizeof(err));
    if (neu == NULL) {
        rc = KVL_ECONFIG;
    }
    if (rc == 0) {
        rc = config_checks(a->cfg_path, neu, &rules, err, sizeof(err));
    }
    if (rc == 0 && kvl_collector_cfg_restart_keys(a->cfg, neu, keys, sizeof(keys)) > 0) {
        snprintf(err, sizeof(err), "%s: %s changed: needs a restart", a->cfg_path, keys);
        rc = KVL_ECONFIG;
    }
    if (rc == 0) {
        rc = count_credentials(neu->http, &n_users, &n_tokens, err, sizeof(err));
    }
    if (rc == 0) {
        kvl_receivers_diff(a->cfg->receivers, neu->receivers, &rcv);
        kvl_rules_diff(a->rules, rules, &rd);
    }
    bool new_receivers = rcv.added + rcv.removed + rcv.changed > 0;
    /* the engine is made again only when what it evaluates changed: else its series, rates
     * and clocks go on untouched */
    bool new_engine =
        neu != NULL &&
        (rd.added + rd.removed + rd.changed > 0 || neu->late_after_ms != a->cfg->late_after_ms ||
         (neu->web_url == NULL) != (a->cfg->web_url == NULL) ||
         (neu->web_url != NULL && strcmp(neu->web_url, a->cfg->web_url) != 0));
    if (rc == 0 && new_receivers) {
        char dir[4096];
        snprintf(dir, sizeof(dir), "%s/_notify", a->cfg->data_dir);
        rc = kvl_notify_new(a->loop, neu->receivers, dir, &notify, err, sizeof(err));
    }
    if (rc == 0 && new_engine) {
        kvl_engine_cfg_t ec = {
            .rules = rules, .late_after_ms = neu->late_after_ms, .web_url = neu->web_url};
        rc = kvl_engine_new(a->loop, &ec, kvl_book_alert_cb, a->book, &engine, err, sizeof(err));
    }
    if (rc == 0) {
        rc = kvl_book_reconfigure(a->book, neu->alerts, notify != NULL ? notify : a->notify, err,
                                  sizeof(err));
    }
    if (rc != 0) {
        KVL_LOG_ERROR("collector", id, "reload refused: %s; keeping the running configuration",
                      err);
        kvl_engine_free(engine);
        kvl_notify_free(notify);
        kvl_rules_free(rules);
        kvl_collector_cfg_free(neu);
        kvl_sd_reloaded("reload refused: the running configuration is kept");
        return;
    }
    /* taken: nothing below can fail */
    kvl_names_diff_t sd;
    kvl_sites_diff(a->cfg->sites, neu->sites, &sd);
    bool routing_same = kvl_alerts_routing_same(a->cfg->alerts, neu->alerts);
    size_t resolved = 0;
    kvl_rules_t *old_rules = NULL;
    if (new_engine) {
        resolved = carry_alerts(a, engine, a->rules, rules);
        kvl_engine_t *old_engine = a->engine;
        a->engine = engine;
        kvl_engine_free(old_engine);
        old_rules = a->rules;
        a->rules = rules;
    } else {
        kvl_rules_free(rules);
        rules = a->rules;
    }
    if (notify != NULL) {
        kvl_notify_free(a->notify);
        a->notify = notify;
        a->metrics.notify = notify;
    }
    swap_live_sections(a->cfg, neu, new_receivers);
    kvl_log_level = a->cfg->log_level;
    kvl_topology_set_sites(a->topology, a->cfg->sites);
    if (a->board != NULL) {
        kvl_board_set_sites(a->board, a->cfg->sites);
    }
    if (a->capacity != NULL) {
        kvl_capacity_set_sites(a->capacity, a->cfg->sites);
    }
    retired_t *r = calloc(1, sizeof(*r));
    if (r != NULL) {
        *r = (retired_t){.next = a->retired, .cfg = neu, .rules = old_rules, .at_ms = kvl_now_ms()};
        a->retired = r;
    } else {
        /* cannot be kept: leaked rather than freed under a closing room */
        KVL_LOG_WARN("collector", id, "out of memory: the previous configuration is leaked");
    }

    char rs[128], rcs[128], ss[128];
    kvl_names_diff_format(&rd, rs, sizeof(rs));
    kvl_names_diff_format(&rcv, rcs, sizeof(rcs));
    kvl_names_diff_format(&sd, ss, sizeof(ss));
    KVL_LOG_INFO("collector", id,
                 "reloaded: rules %s (%zu now, rule engine %s), receivers %s, routes %s, sites %s, "
                 "users %zu (was %zu), tokens %zu (was %zu); %zu alerts of removed rules resolved",
                 rs, rules->n, new_engine ? "made again" : "kept", rcs,
                 routing_same ? "unchanged" : "changed", ss, n_users, a->n_users, n_tokens,
                 a->n_tokens, resolved);
    a->n_users = n_users;
    a->n_tokens = n_tokens;
    char st[300];
    snprintf(st, sizeof(st), "started on %s; configuration reloaded (%zu alert rules)",
             a->cfg->listen, rules->n);
    kvl_sd_reloaded(st);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 'k'},
        {"add-user", required_argument, NULL, 'U'},
        {"add-token", required_argument, NULL, 'T'},
        {"role", required_argument, NULL, 'R'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {"forget-device", required_argument, NULL, 'F'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    bool check = false;
    const char *add_user = NULL, *add_token = NULL, *role = NULL, *forget = NULL;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            path = optarg;
            break;
        case 'k':
            check = true;
            break;
        case 'U':
            add_user = optarg;
            break;
        case 'T':
            add_token = optarg;
            break;
        case 'R':
            role = optarg;
            break;
        case 'F':
            forget = optarg;
            break;
        case 'V':
            printf("kaaval-collector %s\n", KVL_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (path == NULL || optind != argc || (add_user && add_token) ||
        ((add_user || add_token) != (role != NULL)) || (check && (add_user || add_token)) ||
        (forget && (check || add_user || add_token))) {
        usage(stderr);
        return 2;
    }
    char err[1200];
    app_t a = {0};
    a.cfg = kvl_collector_cfg_load(path, err, sizeof(err));
    if (a.cfg == NULL) {
        fprintf(stderr, "kaaval-collector: %s\n", err);
        return 2;
    }
    if (check) {
        kvl_rules_t *rules = NULL;
        char rerr[4096];
        if (config_checks(path, a.cfg, &rules, rerr, sizeof(rerr)) != 0) {
            fprintf(stderr, "kaaval-collector: %s\n", rerr);
            kvl_collector_cfg_free(a.cfg);
            return 2;
        }
        printf("%s: configuration is valid (%zu alert rules)\n", path, rules->n);
        if (a.cfg->rrdcached_remote) {
            printf("%s: %s\n", path, REMOTE_ARCHIVES_NOTE);
        }
        if (a.cfg->sites != NULL) {
            printf("%s: %zu sites in the site tree\n", path, a.cfg->sites->n);
        }
        kvl_rules_free(rules);
        kvl_collector_cfg_free(a.cfg);
        return 0;
    }
    if (add_user != NULL || add_token != NULL) {
        int rc = add_credential(a.cfg, add_user, add_token, role);
        kvl_collector_cfg_free(a.cfg);
        return rc;
    }
    if (forget != NULL) {
        int rc = forget_device(a.cfg, forget);
        kvl_collector_cfg_free(a.cfg);
        return rc;
    }
    kvl_log_level = a.cfg->log_level;
    a.cfg_path = path;
    if (count_credentials(a.cfg->http, &a.n_users, &a.n_tokens, err, sizeof(err)) != 0) {
        a.n_users = a.n_tokens = 0; /* the HTTP server says why, if it runs */
    }
    signal(SIGPIPE, SIG_IGN);
    a.loop = uv_default_loop();

    kvl_store_cfg_t scfg = {.data_dir = a.cfg->data_dir,
                            .archives = a.cfg->archives,
                            .n_archives = a.cfg->n_archives,
                            .consolidations = (const char *const *)a.cfg->consolidations,
                            .rrdcached = a.cfg->rrdcached,
                            .rrdcached_checkpoint_ms = a.cfg->rrdcached_checkpoint_ms,
                            .rrdcached_remote = a.cfg->rrdcached_remote};
    if (kvl_store_new(a.loop, &scfg, &a.store, err, sizeof(err)) != 0) {
        KVL_LOG_ERROR("store", NULL, "%s", err);
        kvl_collector_cfg_free(a.cfg);
        return 1;
    }
    /* where the readers find the archives: "" is relative to rrdcached's folder (remote) */
    const char *archive_dir = a.cfg->rrdcached_remote ? "" : a.cfg->data_dir;
    if (a.cfg->rrdcached_remote) {
        KVL_LOG_INFO("store", a.cfg->rrdcached, "%s", REMOTE_ARCHIVES_NOTE);
    }
    /* The inventory first: a rename it learns from a batch queues the archive's move, which
     * the store then does before that batch's rows (store.h). */
    int src = open_inventory(a.cfg, &a, &a.inventory);
    if (src == 0) {
        kvl_sinks_register(&a.sinks, &kvl_inventory_sink, a.inventory);
        kvl_sinks_register(&a.sinks, &kvl_store_sink, a.store);
        kvl_store_on_moved(a.store, on_archive_moved, &a);
        kvl_inventory_pending_moves(a.inventory); /* asked again: a crash may have cut them */
        src = kvl_latest_new(0, NULL, &a.latest, err, sizeof(err)) != 0;
    }
    if (src == 0) {
        kvl_sinks_register(&a.sinks, &kvl_latest_sink, a.latest);
        src = start_alerts(&a, err, sizeof(err));
    }
    if (src == 0 &&
        kvl_captop_store_new(a.loop, a.cfg->data_dir, NULL, &a.captop, err, sizeof(err)) != 0) {
        KVL_LOG_ERROR("captop", a.cfg->id, "%s", err);
        src = 1;
    }
    if (src == 0) {
        kvl_sinks_register(&a.sinks, &kvl_captop_sink, a.captop);
    }
    /* remote-write after the rooms that keep data: it copies and answers at once */
    if (src == 0 && kvl_rwrite_new(a.loop, a.cfg->remote_write, graph_label, a.inventory, &a.rwrite,
                                   err, sizeof(err)) != 0) {
        KVL_LOG_ERROR("remote-write", a.cfg->id, "%s", err);
        src = 1;
    }
    if (src == 0 && a.rwrite != NULL) {
        kvl_sinks_register(&a.sinks, &kvl_rwrite_sink, a.rwrite);
    }
    if (src == 0 && kvl_ingest_new(a.loop, a.cfg, &a.sinks, &a.ingest, err, sizeof(err)) != 0) {
        KVL_LOG_ERROR("collector", a.cfg->id, "%s", err);
        src = 1;
    }
    if (src == 0) {
        kvl_store_on_durable(a.store, on_archives_durable, &a);
    }
    if (src == 0 && start_topology(&a, err, sizeof(err)) != 0) {
        KVL_LOG_ERROR("topology", a.cfg->id, "%s", err);
        src = 1;
    }
    if (src != 0) {
        kvl_rootcause_free(a.rootcause);
        kvl_topology_free(a.topology);
        kvl_ingest_free(a.ingest);
        kvl_rwrite_free(a.rwrite);
        kvl_captop_store_free(a.captop);
        kvl_inventory_free(a.inventory);
        stop_alerts(&a);
        uv_run(a.loop, UV_RUN_DEFAULT);
        kvl_latest_free(a.latest);
        kvl_store_free(a.store);
        kvl_rules_free(a.rules);
        kvl_collector_cfg_free(a.cfg);
        return 1;
    }
    /* The HTTP server (`http:`): made, then the rooms' routes registered, then started. */
    int hrc = 0;
    if (a.cfg->http->enabled) {
        hrc = kvl_http_new(a.loop, a.cfg->http, &a.http, err, sizeof(err));
        if (hrc == 0) {
            hrc = kvl_book_api_register(a.book, a.http);
        }
        kvl_board_opts_t bo = {.loop = a.loop,
                               .sites = a.cfg->sites,
                               .latest = a.latest,
                               .data_dir = archive_dir,
                               .alerts = board_alerts_each,
                               .alerts_src = a.book,
                               .agents = board_agents_each,
                               .agents_src = &a};
        if (hrc == 0) {
            hrc = kvl_board_new(&bo, &a.board, err, sizeof(err));
        }
        if (hrc == 0) {
            hrc = kvl_board_api_register(a.board, a.http);
        }
        if (hrc == 0) {
            hrc = kvl_inventory_api_register(a.inventory, a.http);
        }
        kvl_capacity_opts_t co = {.loop = a.loop,
                                  .data_dir = archive_dir,
                                  .sites = a.cfg->sites,
                                  .inventory = a.inventory};
        if (hrc == 0) {
            hrc = kvl_capacity_new(&co, &a.capacity, err, sizeof(err));
        }
        if (hrc == 0) {
            hrc = kvl_capacity_api_register(a.capacity, a.http);
        }
        if (hrc == 0) {
            hrc = kvl_topology_api_register(a.topology, a.http);
        }
        if (hrc == 0) {
            hrc = kvl_captop_api_register(a.captop, a.http);
        }
        kvl_graph_opts_t go = {.loop = a.loop,
                               .data_dir = archive_dir,
                               .site_of = graph_site,
                               .site_ctx = &a,
                               .label_of = graph_label,
                               .label_ctx = a.inventory,
                               .name_of = graph_name,
                               .name_ctx = a.inventory};
        if (hrc == 0) {
            hrc = kvl_graph_new(&go, &a.graph, err, sizeof(err));
        }
        if (hrc == 0) {
            hrc = kvl_graph_api_register(a.graph, a.http);
        }
        a.metrics = (kvl_metrics_src_t){.loop = a.loop,
                                        .collector_id = a.cfg->id,
                                        .ingest = a.ingest,
                                        .store = a.store,
                                        .book = a.book,
                                        .notify = a.notify,
                                        .inventory = a.inventory,
                                        .latest = a.latest,
                                        .rwrite = a.rwrite,
                                        .http = a.http};
        if (hrc == 0) {
            hrc = kvl_metrics_register(a.http, &a.metrics);
        }
        if (hrc == 0) {
            hrc = kvl_http_start(a.http, err, sizeof(err));
        }
    }
    if (hrc != 0) {
        KVL_LOG_ERROR("http", a.cfg->id, "%s", err);
        kvl_http_free(a.http);
        kvl_ingest_free(a.ingest);
        kvl_rwrite_free(a.rwrite);
        kvl_board_free(a.board);
        kvl_capacity_free(a.capacity);
        kvl_captop_store_free(a.captop);
        kvl_rootcause_free(a.rootcause);
        kvl_topology_free(a.topology);
        kvl_graph_free(a.graph);
        kvl_inventory_free(a.inventory);
        stop_alerts(&a);
        uv_run(a.loop, UV_RUN_DEFAULT);
        kvl_latest_free(a.latest);
        kvl_store_free(a.store);
        kvl_rules_free(a.rules);
        kvl_collector_cfg_free(a.cfg);
        return 1;
    }
    uv_signal_init(a.loop, &a.sigint);
    uv_signal_init(a.loop, &a.sigterm);
    uv_signal_init(a.loop, &a.sighup);
    a.sigint.data = a.sigterm.data = a.sighup.data = &a;
    uv_signal_start(&a.sigint, on_signal, SIGINT);
    uv_signal_start(&a.sigterm, on_signal, SIGTERM);
    uv_signal_start(&a.sighup, on_hup, SIGHUP);
    KVL_LOG_INFO("collector", a.cfg->id, "kaaval-collector %s: archives in %s%s", KVL_VERSION,
                 a.cfg->rrdcached_remote ? "rrdcached's folder at " : "",
                 a.cfg->rrdcached_remote ? a.cfg->rrdcached : a.cfg->data_dir);
    /* ready once everything is made: agents are accepted once the journal is replayed (the
     * ingest then says so in STATUS), which may take long after a crash: not awaited here,
     * or systemd's start timeout would kill a collector that is catching up */
    char st[300];
    snprintf(st, sizeof(st), "started on %s; agents accepted once the journal is replayed",
             a.cfg->listen);
    kvl_sd_ready(a.loop, st);

    uv_run(a.loop, UV_RUN_DEFAULT);
    uv_loop_close(a.loop);
    kvl_latest_free(a.latest);
    kvl_store_free(a.store);
    kvl_rules_free(a.rules);
    free_retired(&a, INT64_MAX);
    kvl_collector_cfg_free(a.cfg);
    return 0;
}
