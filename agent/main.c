/*
 * main.c — kaaval-agent: polls SNMP devices and streams their samples to the collector.
 *
 *   kaaval-agent -c agent.yaml                run until SIGINT/SIGTERM
 *   kaaval-agent -c agent.yaml --check-config check the file and exit (0 good, 2 bad)
 *   kaaval-agent -c agent.yaml --poll-once    poll every device once, print, exit (1 when
 *                                             a device did not answer: "N devices, M
 *                                             answering" on stderr)
 *   kaaval-agent -c agent.yaml --probe-once   probe every link target for one interval
 *                 [--probe-intervals N] [--probe-verbose]   (or N), print the figures, exit
 *   kaaval-agent [-c agent.yaml] --capture-once FILE.pcap   read a pcap file through the
 *                                             capture (its `capture:` settings, or the
 *                                             defaults without -c), print its figures, exit
 *   kaaval-agent -c agent.yaml --capture-live N   capture on `capture: interfaces` for N
 *                                             intervals, print each one's figures, exit
 *                                             (every capability dropped once the rings
 *                                             are open)
 *
 * --poll-once, --probe-once and --capture-once ship nothing: their file needs no collector
 * and no TLS.
 * Exit status: 0 normal, 1 runtime failure (or a device silent at --poll-once), 2 usage or
 * configuration error.
 */
#include <errno.h>
#include <getopt.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <uv.h>

#include "agent_config.h"
#include "batcher.h"
#include "capship.h"
#include "capture.h"
#include "fileio.h"
#include "kvl.h"
#include "linkwatch.h"
#include "log.h"
#include "outbox.h"
#include "poller.h"
#include "prober.h"
#include "registry.h"
#include "sdnotify.h"
#include "stats.h"
#include "tls.h"
#include "trap_rx.h"
#include "uplink.h"

#define DRAIN_MS 5000 /* how long a stopping agent waits for the last acknowledgements */

typedef struct app {
    uv_loop_t *loop;
    kvl_agent_cfg_t *cfg;
    kvl_registry_t *registry; /* freed last, after the loop */
    kvl_outbox_t *outbox;
    kvl_uplink_t *up;
    kvl_batcher_t *batcher;
    kvl_poller_t *poller;
    kvl_prober_t *prober;
    kvl_trap_rx_t *traps;
    kvl_capture_t *capture; /* `capture:` configured, or --capture-live */
    kvl_capship_t *capship; /* the capture's figures to the batcher */
    kvl_stats_t *stats;
    uv_signal_t sigint, sigterm, sighup;
    uv_timer_t drain;
    uint64_t drain_deadline;
    bool stopping;
    bool once_failed;       /* --poll-once: a device did not answer */
    bool once;              /* --poll-once or --probe-once: no reload */
    const char *path;       /* the configuration file, read again at SIGHUP */
    char spool_state[4200]; /* <spool>/targets.state, or "" without a spool */
    kvl_linkwatch_t *links; /* the host's links' carrier, said in the log */
    bool capture_stale;     /* a reload's `capture:` could not be applied: tried again */
} app_t;

static void usage(FILE *f)
{
    fprintf(f, "usage: kaaval-agent -c FILE [--check-config | --poll-once]\n"
               "       kaaval-agent [-c FILE] --capture-once FILE.pcap\n"
               "  -c, --config FILE   agent configuration (YAML)\n"
               "      --check-config  check the configuration and exit\n"
               "      --poll-once     poll every device once, print the samples, exit\n"
               "                      (1 when a device did not answer; no collector needed)\n"
               "      --probe-once    probe the link targets for one interval, print, exit\n"
               "      --probe-intervals N   with --probe-once: N intervals\n"
               "      --probe-verbose with --probe-once: print every reply too\n"
               "      --capture-once FILE   read a pcap file as one capture interval, print\n"
               "                      its figures, exit (-c optional: its `capture:` keys)\n"
               "      --capture-live N      capture on the configured interfaces for N\n"
               "                      intervals, print each interval's figures, exit\n"
               "  -V, --version       print the version\n"
               "  -h, --help          this help\n");
}

static void close_all(app_t *a)
{
    kvl_stats_free(a->stats); /* before the rooms it reads */
    a->stats = NULL;
    kvl_trap_rx_free(a->traps); /* before the poller and the batcher it uses */
    a->traps = NULL;
    kvl_poller_free(a->poller);
    a->poller = NULL;
    kvl_prober_free(a->prober);
    a->prober = NULL;
    kvl_capture_free(a->capture); /* no more intervals to capship after this */
    a->capture = NULL;
    kvl_capship_free(a->capship);
    a->capship = NULL;
    kvl_batcher_free(a->batcher);
    a->batcher = NULL;
    kvl_uplink_free(a->up);
    a->up = NULL;
    kvl_linkwatch_free(a->links);
    a->links = NULL;
    kvl_outbox_free(a->outbox); /* after the batcher's last flush and the uplink */
    a->outbox = NULL;
    uv_close((uv_handle_t *)&a->sigint, NULL);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
    uv_close((uv_handle_t *)&a->sighup, NULL);
    uv_close((uv_handle_t *)&a->drain, NULL);
}

static void on_drain(uv_timer_t *t)
{
    app_t *a = t->data;
    if (a->up == NULL || kvl_uplink_pending(a->up) == 0 || uv_now(a->loop) >= a->drain_deadline) {
        uv_timer_stop(t);
        close_all(a);
    }
}

static void stop(app_t *a)
{
    if (a->stopping) {
        return;
    }
    a->stopping = true;
    KVL_LOG_INFO("agent", a->cfg->id, "stopping");
    kvl_stats_free(a->stats);
    a->stats = NULL;
    kvl_trap_rx_free(a->traps);
    a->traps = NULL;
    kvl_poller_free(a->poller);
    a->poller = NULL;
    kvl_prober_free(a->prober);
    a->prober = NULL;
    if (a->batcher != NULL) {
        kvl_batcher_flush(a->batcher);
    }
    /* Give the collector a moment to acknowledge what is in flight. */
    a->drain_deadline = uv_now(a->loop) + DRAIN_MS;
    uv_timer_start(&a->drain, on_drain, 0, 100);
}

static void on_signal(uv_signal_t *s, int signum)
{
    KVL_UNUSED(signum);
    kvl_sd_stopping();
    stop(s->data);
}

static void on_polled_once(void *arg)
{
    app_t *a = arg;
    kvl_poller_stats_t st;
    kvl_poller_stats(a->poller, &st);
    /* the summary a deployment gate reads; a device that did not answer fails the run */
    fprintf(stderr, "kaaval-agent: %llu devices, %llu answering\n", (unsigned long long)st.devices,
            (unsigned long long)(st.devices - st.devices_down));
    a->once_failed = st.devices_down > 0;
    kvl_batcher_flush(a->batcher);
    /* Not from inside the poller's callback: let the drain timer close everything. */
    uv_timer_start(&a->drain, on_drain, 0, 0);
}

static void on_probed(void *arg)
{
    app_t *a = arg;
    uv_timer_start(&a->drain, on_drain, 0, 0);
}

/* The ship room, wired one way: registry <- batcher -> outbox <- uplink (which also reads the
 * registry). --poll-once: no outbox and no uplink, the batcher prints. Returns 0, or 1 after
 * saying why. */
static int start_shipping(app_t *a, bool once)
{
    const kvl_ship_cfg_t *ship = &a->cfg->ship;
    char err[1200];
    if (kvl_registry_new(&a->registry, err, sizeof(err)) != 0) {
        fprintf(stderr, "kaaval-agent: %s\n", err);
        return 1;
    }
    if (!once) {
        kvl_uplink_reader_names_t names;
        const char *readers[KVL_MAX_COLLECTORS];
        size_t n = kvl_uplink_readers(ship, &names, readers);
        if (kvl_outbox_open(a->loop, ship, readers, n, &a->outbox, err, sizeof(err)) != 0) {
            KVL_LOG_ERROR("uplink", ship->spool.dir, "cannot open the spool: %s", err);
            fprintf(stderr, "kaaval-agent: cannot start the uplink (see above)\n");
            return 1;
        }
        kvl_uplink_opts_t uo = {.cfg = ship,
                                .agent_id = a->cfg->id,
                                .site = a->cfg->site,
                                .outbox = a->outbox,
                                .registry = a->registry};
        if (kvl_uplink_new(a->loop, &uo, &a->up, err, sizeof(err)) != 0) {
            KVL_LOG_ERROR("uplink", ship->collector, "%s", err);
            fprintf(stderr, "kaaval-agent: cannot start the uplink (see above)\n");
            return 1;
        }
        if (ship->spool.dir != NULL) {
            /* Series keep their ids across restarts: spooled batches stay valid. */
            char defs[4200];
            snprintf(defs, sizeof(defs), "%s/series.defs", ship->spool.dir);
            if (kvl_registry_persist(a->registry, defs) != 0) {
                fprintf(stderr, "kaaval-agent: cannot keep the series registry (see above)\n");
                return 1;
            }
        }
    }
    if (kvl_batcher_new(a->loop, a->registry, a->outbox, ship->flush_interval_ms, &a->batcher, err,
                        sizeof(err)) != 0) {
        fprintf(stderr, "kaaval-agent: %s\n", err);
        return 1;
    }
    if (once) {
        kvl_batcher_set_dump(a->batcher, stdout);
    }
    return 0;
}

/* With a spool, devices' and probe targets' down states are kept beside it, so a restart
 * neither raises their down events again nor restarts their down times. Returns 0, or 1
 * after saying why. */
static int keep_state(app_t *a)
{
    const char *dir = a->cfg->ship.spool.dir;
    if (dir == NULL) {
        return 0;
    }
    char path[4200];
    char err[1200];
    snprintf(path, sizeof(path), "%s/devices.state", dir);
    if (kvl_poller_keep_state(a->poller, path, err, sizeof(err)) != 0) {
        fprintf(stderr, "kaaval-agent: %s\n", err);
        return 1;
    }
    snprintf(a->spool_state, sizeof(a->spool_state), "%s/targets.state", dir);
    if (kvl_prober_keep_state(a->prober, a->spool_state, err, sizeof(err)) != 0) {
        fprintf(stderr, "kaaval-agent: %s\n", err);
        return 1;
    }
    return 0;
}

/* --check-config's second half: what start-up would refuse beyond the file's own form. The
 * spool folder (it, or its parent, a writable folder), the TLS files (readable, the key the
 * certificate's, the CA usable) and the certificate's CN (the agent's id: the collector
 * takes the CN as the agent's identity and refuses another). Returns 0, or 2 after saying
 * why on stderr. */
static int check_startup(const kvl_agent_cfg_t *c, const char *path, char *msg, size_t len)
{
    char why[1200];
    const kvl_ship_cfg_t *s = &c->ship;
    if (s->spool.dir != NULL && kvl_dir_usable(s->spool.dir, why, sizeof(why)) != 0) {
        snprintf(msg, len, "%s: spool: dir: %s", path, why);
        return 2;
    }
    if (s->tls.given) {
        kvl_tls_ctx_t *ctx =
            kvl_tls_ctx_new(KVL_TLS_CLIENT, s->tls.ca, s->tls.cert, s->tls.key, why, sizeof(why));
        if (ctx == NULL) {
            snprintf(msg, len, "%s: tls: %s", path, why);
            return 2;
        }
        const char *cn = kvl_tls_ctx_id(ctx);
        bool same = cn != NULL && strcmp(cn, c->id) == 0;
        if (!same) {
            snprintf(msg, len,
                     "%s: tls: cert %s is for '%s', not this agent's id '%s' (the collector "
                     "takes the certificate's CN as the agent's id and refuses another)",
                     path, s->tls.cert, cn != NULL ? cn : "(no single CN)", c->id);
        }
        kvl_tls_ctx_free(ctx);
        if (!same) {
            return 2;
        }
    }
    return 0;
}

/* --- reload (SIGHUP, systemctl reload) ------------------------------------------------------ */

/* The STATUS systemd shows for a running agent, into buf; returns buf. */
static const char *ready_status(const app_t *a, char *buf, size_t len)
{
    snprintf(buf, len, "polling %zu devices for site %s", a->cfg->snmp.n_devices, a->cfg->site);
    return buf;
}

/* Keys a running agent cannot take: its identity, the spool and the batching the spool's
 * files were made with. Changing one refuses the whole reload (restart to apply). */
static const char *const restart_keys[] = {"id", "site", "spool", "max_queue", "flush_interval"};
/* The uplink's keys: a change makes the connections again from the spool's positions. */
static const char *const ship_keys[] = {"collector", "collectors", "mode",    "reconnect_max",
                                        "heartbeat", "tls",        "insecure"};
/* The poller's keys. */
static const char *const snmp_keys[] = {"max_inflight", "credentials", "defaults",     "devices",
                                        "groups",       "mib_path",    "metric_groups"};

static bool any_changed(const kvl_agent_cfg_t *a, const kvl_agent_cfg_t *b, const char *const *keys,
                        size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (kvl_agent_cfg_key_changed(a, b, keys[i])) {
            return true;
        }
    }
    return false;
}

/* What in n cannot be applied to the running agent, named in need (empty: all can). */
static void restart_needed(const app_t *a, const kvl_agent_cfg_t *n, char *need, size_t len)
{
    const kvl_agent_cfg_t *c = a->cfg;
    size_t at = 0;
    need[0] = '\0';
    for (size_t i = 0; i < KVL_ARRAY_SIZE(restart_keys); i++) {
        if (kvl_agent_cfg_key_changed(c, n, restart_keys[i]) && at < len) {
            at += (size_t)snprintf(need + at, len - at, "%s%s", at ? ", " : "", restart_keys[i]);
        }
    }
    if ((c->traps.enabled != n->traps.enabled || strcmp(c->traps.host, n->traps.host) != 0 ||
         c->traps.port != n->traps.port) &&
        at < len) {
        at += (size_t)snprintf(need + at, len - at, "%straps: listen", at ? ", " : "");
    }
    /* dual mode: each collector has its own position in the spool, named after it */
    kvl_uplink_reader_names_t was, now;
    const char *r1[KVL_MAX_COLLECTORS], *r2[KVL_MAX_COLLECTORS];
    size_t n1 = kvl_uplink_readers(&c->ship, &was, r1);
    size_t n2 = kvl_uplink_readers(&n->ship, &now, r2);
    bool same = n1 == n2;
    for (size_t i = 0; same && i < n1; i++) {
        same = strcmp(r1[i], r2[i]) == 0;
    }
    if (!same && at < len) {
        snprintf(need + at, len - at,
                 "%scollectors with mode: dual (each has its own position in the spool)",
                 at ? ", " : "");
    }
}

static void on_capture_interval(void *arg, const kvl_capture_interval_t *iv);

#define SWAP(x, y)                                                                                 \
    do {                                                                                           \
        __typeof__(x) swap_tmp_ = (x);                                                             \
        (x) = (y);                                                                                 \
        (y) = swap_tmp_;                                                                           \
    } while (0)

/* The uplink again for the (new) ship settings: its connections are made again and each
 * collector goes on from what it acknowledged (the outbox and spool are untouched). */
static int restart_uplink(app_t *a, char *err, size_t errlen)
{
    kvl_uplink_free(a->up);
    a->up = NULL;
    kvl_uplink_opts_t uo = {.cfg = &a->cfg->ship,
                            .agent_id = a->cfg->id,
                            .site = a->cfg->site,
                            .outbox = a->outbox,
                            .registry = a->registry};
    int rc = kvl_uplink_new(a->loop, &uo, &a->up, err, errlen);
    if (rc == 0) {
        kvl_uplink_start(a->up);
    }
    return rc;
}

/* `capture:` changed (or the capture failed at start): the new capture is opened first, and
 * when it cannot be (an interface missing, out of memory) the old one runs on with an ERROR
 * line. Else the old one's running interval is reported at once (kvl_capture_flush: its last
 * figures shipped), it is closed (its rings with it) and the new one takes its place; the
 * section is swapped into the running configuration. The rings open again because the daemon
 * keeps CAP_NET_RAW (the unit's ambient capability; only --capture-live drops it). Both
 * capture for the instant between the new rings' opening and the old ones' last read, so the
 * frames of that instant may count in both, none is lost. The phrase for the summary goes to
 * sum. */
static void reload_capture(app_t *a, kvl_agent_cfg_t *n, char *sum, size_t len)
{
    a->capture_stale = true; /* until applied */
    kvl_agent_cfg_t *c = a->cfg;
    const kvl_capture_cfg_t *nc = &n->capture;
    uint32_t interval_s = (uint32_t)((nc->interval_ms + 999) / 1000);
    char err[1200];
    kvl_capture_t *fresh = NULL;
    sum[0] = '\0';
    if (nc->enabled) {
        if (a->capship == NULL && (a->capship = kvl_capship_new(a->batcher, c->id, interval_s,
                                                                (size_t)nc->top_n)) == NULL) {
            KVL_LOG_ERROR("capture", c->id, "the new capture is not applied: out of memory");
            return;
        }
        if (kvl_capture_new(a->loop, nc, on_capture_interval, a, &fresh, err, sizeof(err)) != 0) {
            KVL_LOG_ERROR("capture", c->id, "the new capture is not applied: %s; %s", err,
                          a->capture != NULL ? "capturing as before"
                                             : "running without the capture");
            return;
        }
    }
    a->capture_stale = false;
    kvl_capture_flush(a->capture); /* the old settings' last interval, shipped */
    kvl_capture_free(a->capture);
    a->capture = fresh;
    SWAP(c->capture, n->capture);
    kvl_capture_move_cfg(a->capture, &c->capture);
    if (a->capship != NULL) {
        kvl_capship_configure(a->capship, interval_s, (size_t)c->capture.top_n);
    }
    if (a->capture == NULL) {
        snprintf(sum, len, "capture stopped; ");
    } else {
        snprintf(sum, len, "capture made again (%zu %s); ",
                 c->capture.file != NULL ? (size_t)1 : c->capture.n_interfaces,
                 c->capture.file != NULL ? "file" : "interfaces");
    }
}

/* Reads the file again and applies what changed: devices (kept, changed, added, removed:
 * kvl_poller_reload), credentials, groups and metric groups with them, the trap receiver's
 * users, the probes (a new prober; the STAMP reflector handed over), the collectors (the
 * uplink made again), the capture (reload_capture), log_level. The configuration's sections
 * are swapped into the running one (a->cfg keeps its address: the rooms hold pointers to its
 * sections), and the old contents freed once no room points into them. A file that does not
 * load or check, or that changes a key only a restart can apply, is refused as a whole: one
 * ERROR line, nothing changed. */
static void reload(app_t *a)
{
    const char *id = a->cfg->id;
    char err[2400];
    char why[1200];
    kvl_sd_reloading();
    KVL_LOG_INFO("agent", id, "SIGHUP: reading %s again", a->path);
    kvl_agent_cfg_t *n = kvl_agent_cfg_load(a->path, err, sizeof(err));
    if (n == NULL || check_startup(n, a->path, err, sizeof(err)) != 0) {
        KVL_LOG_ERROR("agent", id,
                      "reload refused: %s; still running with the configuration it had", err);
        goto done;
    }
    restart_needed(a, n, why, sizeof(why));
    if (why[0] != '\0') {
        KVL_LOG_ERROR("agent", id,
                      "reload refused: %s cannot change while the agent runs (restart it to "
                      "apply); still running with the configuration it had, nothing changed",
                      why);
        goto done;
    }
    kvl_agent_cfg_t *c = a->cfg;
    bool ship_ch = any_changed(c, n, ship_keys, KVL_ARRAY_SIZE(ship_keys));
    bool snmp_ch = any_changed(c, n, snmp_keys, KVL_ARRAY_SIZE(snmp_keys));
    bool mibs_ch = kvl_agent_cfg_key_changed(c, n, "mib_path");
    bool traps_ch = kvl_agent_cfg_key_changed(c, n, "traps");
    bool probes_ch = kvl_agent_cfg_key_changed(c, n, "probes");
    /* a capture that could not start, or a new one not applied, is tried again at each reload */
    bool capture_ch = kvl_agent_cfg_key_changed(c, n, "capture") || a->capture_stale ||
                      (c->capture.enabled && a->capture == NULL);
    char summary[600];
    size_t at = 0;
    summary[0] = '\0';
    if (c->log_level != n->log_level) {
        c->log_level = n->log_level;
        kvl_log_level = c->log_level;
        at += (size_t)snprintf(summary + at, sizeof(summary) - at, "log_level changed; ");
    }
    if (snmp_ch || traps_ch) {
        /* the trap settings point into the SNMP ones (credential sets): both move together */
        SWAP(c->snmp, n->snmp);
        SWAP(c->traps, n->traps);
        kvl_poller_reload_stats_t ps;
        if (kvl_poller_reload(a->poller, &c->snmp, &ps) != 0) {
            SWAP(c->snmp, n->snmp);
            SWAP(c->traps, n->traps);
            KVL_LOG_ERROR("agent", id,
                          "reload refused: out of memory applying the devices; "
                          "still running with the configuration it had");
            goto done;
        }
        if (a->traps != NULL && kvl_trap_rx_reload(a->traps, mibs_ch, err, sizeof(err)) != 0) {
            KVL_LOG_ERROR("trap", NULL, "after the reload: %s", err);
        }
        at += (size_t)snprintf(summary + at, sizeof(summary) - at,
                               "%zu devices kept, %zu changed, %zu added, %zu removed; ", ps.kept,
                               ps.changed, ps.added, ps.removed);
    } else {
        at += (size_t)snprintf(summary + at, sizeof(summary) - at, "devices unchanged; ");
    }
    if (probes_ch && a->prober != NULL) {
        SWAP(c->probes, n->probes);
        if (kvl_prober_reload(&a->prober, &c->probes, err, sizeof(err)) != 0) {
            SWAP(c->probes, n->probes);
            KVL_LOG_ERROR("probe", NULL, "the new probes are not applied: %s; probing as before",
                          err);
        } else {
            if (a->spool_state[0] != '\0' &&
                kvl_prober_keep_state(a->prober, a->spool_state, err, sizeof(err)) != 0) {
                KVL_LOG_ERROR("probe", NULL, "%s", err);
            }
            at += (size_t)snprintf(summary + at, sizeof(summary) - at, "%zu probe targets; ",
                                   c->probes.n_targets);
        }
    }
    if (ship_ch) {
        SWAP(c->ship, n->ship);
        SWAP(c->ship.spool, n->ship.spool); /* unchanged (a restart key): the outbox's */
        if (restart_uplink(a, err, sizeof(err)) != 0) {
            KVL_LOG_ERROR("uplink", NULL, "the new collectors are not applied: %s", err);
            SWAP(c->ship.spool, n->ship.spool);
            SWAP(c->ship, n->ship);
            if (restart_uplink(a, err, sizeof(err)) != 0) {
                KVL_LOG_ERROR("uplink", NULL, "cannot connect again: %s", err);
            }
        } else {
            at += (size_t)snprintf(summary + at, sizeof(summary) - at,
                                   "collectors made again (%zu); ", c->ship.n_collectors);
        }
    }
    if (capture_ch && at < sizeof(summary)) {
        reload_capture(a, n, summary + at, sizeof(summary) - at);
        at += strlen(summary + at);
    }
    memcpy(c->key_digest, n->key_digest, sizeof(c->key_digest));
    if (at >= 2 && at < sizeof(summary)) {
        summary[at - 2] = '\0'; /* the last "; " */
    }
    KVL_LOG_INFO("agent", id, "reloaded: %s", summary);
done:
    kvl_agent_cfg_free(n); /* the new file's, or the previous contents swapped out */
    char st[160];
    kvl_sd_reloaded(ready_status(a, st, sizeof(st)));
}

/* SIGHUP (systemctl reload's signal): the configuration read again (reload above). */
static void on_hup(uv_signal_t *s, int signum)
{
    KVL_UNUSED(signum);
    app_t *a = s->data;
    if (a->once || a->stopping || a->poller == NULL) {
        KVL_LOG_INFO("agent", a->cfg->id, "SIGHUP ignored (%s)",
                     a->stopping ? "stopping"
                     : a->once   ? "a run of one poll"
                                 : "starting");
        return;
    }
    reload(a);
}

/* --capture-once: a pcap file through the capture room, its figures printed; the
 * configuration (optional) gives the `capture:` keys, the file given replaces theirs. */
static int capture_only(const char *path, const char *pcap_file)
{
    char err[1200];
    kvl_agent_cfg_t *cfg = NULL;
    kvl_capture_cfg_t defaults, *cc = &defaults;
    kvl_capture_cfg_init(&defaults);
    if (path != NULL) {
        cfg = kvl_agent_cfg_load_standalone(path, err, sizeof(err));
        if (cfg == NULL) {
            fprintf(stderr, "kaaval-agent: %s\n", err);
            return 2;
        }
        if (cfg->capture.enabled) {
            cc = &cfg->capture;
        }
    }
    int rc = kvl_capture_once(cc, pcap_file, stdout, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "kaaval-agent: %s\n", err);
    }
    kvl_agent_cfg_free(cfg);
    kvl_capture_cfg_free(&defaults);
    return rc == 0 ? 0 : 1;
}

/* --capture-live N: the capture on the configured interfaces for N intervals, each printed. */
typedef struct live_run {
    app_t *a;
    unsigned left; /* interval ends still to print (one per interface each) */
} live_run_t;

static void on_captured(void *arg, const kvl_capture_interval_t *iv)
{
    live_run_t *r = arg;
    kvl_capture_print(stdout, &r->a->cfg->capture, iv);
    fflush(stdout);
    if (r->left > 0 && --r->left == 0) {
        /* From the capture's own timer, at its last interface: its handles close after this
         * call returns, its memory goes with their close callbacks. */
        close_all(r->a);
    }
}

/* Once the capture rings are open the process needs no privilege to read them: every
 * capability goes (effective, permitted, inheritable, ambient), and no exec may regain any.
 * Returns 0, or -1 with the reason in why. */
static int drop_capabilities(char *why, size_t len)
{
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        snprintf(why, len, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
        return -1;
    }
    /* EINVAL: a kernel without ambient capabilities, which then has none to clear */
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
        snprintf(why, len, "clearing ambient capabilities: %s", strerror(errno));
        return -1;
    }
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
    memset(d, 0, sizeof(d));
    if (syscall(SYS_capset, &h, d) != 0) {
        snprintf(why, len, "capset: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static int capture_live(app_t *a, unsigned intervals)
{
    char err[1200];
    if (!a->cfg->capture.enabled || a->cfg->capture.n_interfaces == 0) {
        fprintf(stderr, "kaaval-agent: %s: no `capture: interfaces` to capture on\n", a->path);
        kvl_agent_cfg_free(a->cfg);
        return 2;
    }
    live_run_t r = {.a = a, .left = intervals * (unsigned)a->cfg->capture.n_interfaces};
    int rc = 0;
    if (kvl_capture_new(a->loop, &a->cfg->capture, on_captured, &r, &a->capture, err,
                        sizeof(err)) != 0) {
        fprintf(stderr, "kaaval-agent: %s\n", err);
        rc = 1;
        close_all(a);
    } else if (drop_capabilities(err, sizeof(err)) != 0) {
        KVL_LOG_WARN("capture", a->cfg->id, "capabilities kept: %s", err);
    }
    uv_run(a->loop, UV_RUN_DEFAULT);
    uv_loop_close(a->loop);
    kvl_agent_cfg_free(a->cfg);
    return rc;
}

/* The running agent's capture: each interface's interval to the collector. */
static void on_capture_interval(void *arg, const kvl_capture_interval_t *iv)
{
    app_t *a = arg;
    kvl_capship_interval(a->capship, iv);
}

/* Starts the capture when `capture:` is configured. An interface that cannot be opened (not
 * there, no CAP_NET_RAW) is logged and the agent runs on without the capture: polling and
 * probing a site do not stop for its mirror port. Returns 0, or -1 when out of memory
 * (printed). */
static int capture_start(app_t *a)
{
    const kvl_capture_cfg_t *cc = &a->cfg->capture;
    if (!cc->enabled) {
        return 0;
    }
    char err[1200];
    a->capship = kvl_capship_new(a->batcher, a->cfg->id, (uint32_t)((cc->interval_ms + 999) / 1000),
                                 (size_t)cc->top_n);
    if (a->capship == NULL) {
        fprintf(stderr, "kaaval-agent: out of memory for the capture\n");
        return -1;
    }
    if (kvl_capture_new(a->loop, cc, on_capture_interval, a, &a->capture, err, sizeof(err)) != 0) {
        KVL_LOG_ERROR("capture", a->cfg->id,
                      "%s; running without the capture (a reload or a restart tries again)", err);
        return 0;
    }
    KVL_LOG_INFO("capture", a->cfg->id, "capturing on %zu %s every %lldms",
                 cc->file != NULL ? (size_t)1 : cc->n_interfaces,
                 cc->file != NULL ? "file" : "interfaces", (long long)cc->interval_ms);
    return 0;
}

/* --probe-once: the prober alone, printing; no collector, no SNMP. */
static int probe_only(app_t *a, unsigned intervals, bool verbose)
{
    char err[1200];
    int rc = 0;
    if (kvl_prober_new(a->loop, &a->cfg->probes, a->cfg->id, NULL, &a->prober, err, sizeof(err)) !=
        0) {
        fprintf(stderr, "kaaval-agent: %s\n", err);
        rc = 1;
        close_all(a);
    } else {
        kvl_prober_set_once(a->prober, intervals, verbose, stdout, on_probed, a);
    }
    uv_run(a->loop, UV_RUN_DEFAULT);
    uv_loop_close(a->loop);
    kvl_agent_cfg_free(a->cfg);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 'k'},
        {"poll-once", no_argument, NULL, 'o'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {"probe-once", no_argument, NULL, 'p'},
        {"probe-intervals", required_argument, NULL, 'n'},
        {"probe-verbose", no_argument, NULL, 'v'},
        {"capture-once", required_argument, NULL, 'P'},
        {"capture-live", required_argument, NULL, 'L'},
        {NULL, 0, NULL, 0},
    };
    bool probe_once = false, probe_verbose = false;
    unsigned probe_intervals = 1, capture_intervals = 0;
    const char *path = NULL, *capture_file = NULL;
    bool check = false, once = false;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            path = optarg;
            break;
        case 'k':
            check = true;
            break;
        case 'o':
            once = true;
            break;
        case 'p':
            probe_once = true;
            break;
        case 'n':
            probe_intervals = (unsigned)strtoul(optarg, NULL, 10);
            if (probe_intervals == 0) {
                usage(stderr);
                return 2;
            }
            break;
        case 'v':
            probe_verbose = true;
            break;
        case 'P':
            capture_file = optarg;
            break;
        case 'L':
            capture_intervals = (unsigned)strtoul(optarg, NULL, 10);
            if (capture_intervals == 0) {
                usage(stderr);
                return 2;
            }
            break;
        case 'V':
            printf("kaaval-agent %s\n", KVL_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (capture_file != NULL) {
        if (optind != argc || once || probe_once || check) {
            usage(stderr);
            return 2;
        }
        return capture_only(path, capture_file);
    }
    if (path == NULL || optind != argc || (once && probe_once) ||
        (capture_intervals > 0 && (once || probe_once || check))) {
        usage(stderr);
        return 2;
    }
    char err[1200];
    app_t a = {0};
    a.path = path;
    a.once = once || probe_once || capture_intervals > 0;
    /* --poll-once, --probe-once and --capture-live ship nothing: no collector or TLS needed */
    a.cfg = a.once ? kvl_agent_cfg_load_standalone(path, err, sizeof(err))
                   : kvl_agent_cfg_load(path, err, sizeof(err));
    if (a.cfg == NULL) {
        fprintf(stderr, "kaaval-agent: %s\n", err);
        return 2;
    }
    if (check) {
        char msg[2400];
        int crc = check_startup(a.cfg, path, msg, sizeof(msg));
        if (crc != 0) {
            fprintf(stderr, "kaaval-agent: %s\n", msg);
        } else {
            printf("%s: configuration is valid (%zu devices)\n", path, a.cfg->snmp.n_devices);
        }
        kvl_agent_cfg_free(a.cfg);
        return crc;
    }
    kvl_log_level = a.cfg->log_level;
    signal(SIGPIPE, SIG_IGN);

    a.loop = uv_default_loop();
    uv_signal_init(a.loop, &a.sigint);
    uv_signal_init(a.loop, &a.sigterm);
    uv_signal_init(a.loop, &a.sighup);
    uv_timer_init(a.loop, &a.drain);
    a.sigint.data = a.sigterm.data = a.sighup.data = a.drain.data = &a;
    uv_signal_start(&a.sigint, on_signal, SIGINT);
    uv_signal_start(&a.sigterm, on_signal, SIGTERM);
    uv_signal_start(&a.sighup, on_hup, SIGHUP);

    if (probe_once) {
        return probe_only(&a, probe_intervals, probe_verbose);
    }
    if (capture_intervals > 0) {
        return capture_live(&a, capture_intervals);
    }
    int status = 1;
    if (start_shipping(&a, once) != 0) {
        goto out;
    }
    if (kvl_poller_new(a.loop, &a.cfg->snmp, a.batcher, &a.poller, err, sizeof(err)) != 0) {
        fprintf(stderr, "kaaval-agent: %s\n", err);
        goto out;
    }
    if (once) {
        kvl_poller_set_once(a.poller, on_polled_once, &a);
    } else {
        char times[4200]; /* the v3 senders' engine times, beside the spool like devices.state */
        snprintf(times, sizeof(times), "%s/traps.state",
                 a.cfg->ship.spool.dir != NULL ? a.cfg->ship.spool.dir : "");
        kvl_trap_rx_opts_t to = {.cfg = &a.cfg->traps,
                                 .snmp = &a.cfg->snmp,
                                 .poller = a.poller,
                                 .batcher = a.batcher,
                                 .state_path = a.cfg->ship.spool.dir != NULL ? times : NULL};
        if (kvl_trap_rx_new(a.loop, &to, &a.traps, err, sizeof(err)) != 0) {
            fprintf(stderr, "kaaval-agent: %s\n", err);
            goto out;
        }
        kvl_stats_opts_t so = {.agent_id = a.cfg->id,
                               .batcher = a.batcher,
                               .poller = a.poller,
                               .outbox = a.outbox,
                               .registry = a.registry,
                               .traps = kvl_trap_rx_counters(a.traps)};
        if (kvl_stats_new(a.loop, &so, &a.stats, err, sizeof(err)) != 0) {
            fprintf(stderr, "kaaval-agent: %s\n", err);
            goto out;
        }
        if (kvl_prober_new(a.loop, &a.cfg->probes, a.cfg->id, a.batcher, &a.prober, err,
                           sizeof(err)) != 0) {
            fprintf(stderr, "kaaval-agent: %s\n", err);
            goto out;
        }
        if (capture_start(&a) != 0) {
            goto out;
        }
        if (keep_state(&a) != 0) {
            goto out;
        }
        KVL_LOG_INFO("agent", a.cfg->id,
                     "kaaval-agent %s starting: site %s, %zu devices, collector %s%s", KVL_VERSION,
                     a.cfg->site, a.cfg->snmp.n_devices, a.cfg->ship.collector,
                     a.cfg->ship.n_collectors > 1 ? " and more" : "");
        kvl_uplink_start(a.up);
        if (kvl_linkwatch_new(a.loop, &a.links, err, sizeof(err)) != 0) {
            KVL_LOG_WARN("link", a.cfg->id, "%s", err); /* runs on without it */
        }
        char st[160];
        kvl_sd_ready(a.loop, ready_status(&a, st, sizeof(st)));
    }
    status = 0;
out:
    if (status != 0) {
        close_all(&a);
    }
    uv_run(a.loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(a.loop);
    if (rc != 0) {
        KVL_LOG_DEBUG("agent", NULL, "loop closed with handles open: %s", uv_strerror(rc));
    }
    kvl_registry_free(a.registry); /* after the loop: the batcher's close has completed */
    kvl_agent_cfg_free(a.cfg);
    return status != 0 ? status : a.once_failed ? 1 : 0;
}
