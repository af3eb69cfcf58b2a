/*
 * main.c — kaaval-agent: polls SNMP devices and streams their samples to the collector.
 *
 *   kaaval-agent -c agent.yaml                run until SIGINT/SIGTERM
 *   kaaval-agent -c agent.yaml --check-config check the file and exit (0 good, 2 bad)
 *   kaaval-agent -c agent.yaml --poll-once    poll every device once, print, exit
 *   kaaval-agent -c agent.yaml --probe-once   probe every link target for one interval
 *                 [--probe-intervals N] [--probe-verbose]   (or N), print the figures, exit
 *
 * Exit status: 0 normal, 1 runtime failure, 2 usage or configuration error.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "agent_config.h"
#include "batcher.h"
#include "log.h"
#include "poller.h"
#include "prober.h"
#include "uplink.h"

#define DRAIN_MS 5000 /* how long a stopping agent waits for the last acknowledgements */

typedef struct app {
    uv_loop_t *loop;
    kvl_agent_cfg_t *cfg;
    kvl_uplink_t *up;
    kvl_batcher_t *batcher;
    kvl_poller_t *poller;
    kvl_prober_t *prober;
    uv_signal_t sigint, sigterm;
    uv_timer_t drain;
    uint64_t drain_deadline;
    bool stopping;
} app_t;

static void usage(FILE *f)
{
    fprintf(f, "usage: kaaval-agent -c FILE [--check-config | --poll-once]\n"
               "  -c, --config FILE   agent configuration (YAML)\n"
               "      --check-config  check the configuration and exit\n"
               "      --poll-once     poll every device once, print the samples, exit\n"
               "      --probe-once    probe the link targets for one interval, print, exit\n"
               "      --probe-intervals N   with --probe-once: N intervals\n"
               "      --probe-verbose with --probe-once: print every reply too\n"
               "  -V, --version       print the version\n"
               "  -h, --help          this help\n");
}

static void close_all(app_t *a)
{
    kvl_poller_free(a->poller);
    a->poller = NULL;
    kvl_prober_free(a->prober);
    a->prober = NULL;
    kvl_batcher_free(a->batcher);
    a->batcher = NULL;
    kvl_uplink_free(a->up);
    a->up = NULL;
    uv_close((uv_handle_t *)&a->sigint, NULL);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
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
    stop(s->data);
}

/* The agent's statistics about its spool (or memory queue). */
static void spool_stats(void *arg, uint64_t *bytes, uint64_t *waiting, uint64_t *dropped)
{
    app_t *a = arg;
    kvl_outbox_stats_t st;
    kvl_uplink_stats(a->up, &st);
    *bytes = st.bytes;
    *waiting = st.waiting;
    *dropped = st.dropped;
}

static void on_polled_once(void *arg)
{
    app_t *a = arg;
    kvl_batcher_flush(a->batcher);
    /* Not from inside the poller's callback: let the drain timer close everything. */
    uv_timer_start(&a->drain, on_drain, 0, 0);
}

static void on_probed(void *arg)
{
    app_t *a = arg;
    uv_timer_start(&a->drain, on_drain, 0, 0);
}

/* --probe-once: the prober alone, printing; no collector, no SNMP. */
static int probe_only(app_t *a, unsigned intervals, bool verbose)
{
    a->prober = kvl_prober_new(a->loop, &a->cfg->probes, a->cfg->id, NULL);
    int rc = 0;
    if (a->prober == NULL) {
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
        {NULL, 0, NULL, 0},
    };
    bool probe_once = false, probe_verbose = false;
    unsigned probe_intervals = 1;
    const char *path = NULL;
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
    if (path == NULL || optind != argc || (once && probe_once)) {
        usage(stderr);
        return 2;
    }
    char err[600];
    app_t a = {0};
    a.cfg = kvl_agent_cfg_load(path, err, sizeof(err));
    if (a.cfg == NULL) {
        fprintf(stderr, "kaaval-agent: %s\n", err);
        return 2;
    }
    if (check) {
        printf("%s: configuration is valid (%zu devices)\n", path, a.cfg->snmp.n_devices);
        kvl_agent_cfg_free(a.cfg);
        return 0;
    }
    kvl_log_level = a.cfg->log_level;
    signal(SIGPIPE, SIG_IGN);

    a.loop = uv_default_loop();
    uv_signal_init(a.loop, &a.sigint);
    uv_signal_init(a.loop, &a.sigterm);
    uv_timer_init(a.loop, &a.drain);
    a.sigint.data = a.sigterm.data = a.drain.data = &a;
    uv_signal_start(&a.sigint, on_signal, SIGINT);
    uv_signal_start(&a.sigterm, on_signal, SIGTERM);

    if (probe_once) {
        return probe_only(&a, probe_intervals, probe_verbose);
    }
    if (!once) {
        a.up = kvl_uplink_new(a.loop, a.cfg);
        if (a.up == NULL) {
            fprintf(stderr, "kaaval-agent: cannot start the uplink (see above)\n");
            return 1;
        }
    }
    a.batcher = kvl_batcher_new(a.loop, a.up, a.cfg->flush_interval_ms);
    if (a.batcher == NULL) {
        fprintf(stderr, "kaaval-agent: out of memory\n");
        return 1;
    }
    if (once) {
        kvl_batcher_set_dump(a.batcher, stdout);
    } else {
        kvl_uplink_set_batcher(a.up, a.batcher);
        if (a.cfg->spool.dir != NULL) {
            /* Series keep their ids across restarts: spooled batches stay valid. */
            char defs[4200];
            snprintf(defs, sizeof(defs), "%s/series.defs", a.cfg->spool.dir);
            if (kvl_batcher_persist(a.batcher, defs) != 0) {
                fprintf(stderr, "kaaval-agent: cannot keep the series registry (see above)\n");
                close_all(&a);
                uv_run(a.loop, UV_RUN_DEFAULT);
                kvl_agent_cfg_free(a.cfg);
                return 1;
            }
        }
    }
    a.poller = kvl_poller_new(a.loop, &a.cfg->snmp, a.cfg->id, a.batcher);
    if (a.poller == NULL) {
        close_all(&a);
        uv_run(a.loop, UV_RUN_DEFAULT);
        kvl_agent_cfg_free(a.cfg);
        return 1;
    }
    if (once) {
        kvl_poller_set_once(a.poller, on_polled_once, &a);
    } else {
        kvl_poller_set_spool_stats(a.poller, spool_stats, &a);
        a.prober = kvl_prober_new(a.loop, &a.cfg->probes, a.cfg->id, a.batcher);
        if (a.prober == NULL) {
            close_all(&a);
            uv_run(a.loop, UV_RUN_DEFAULT);
            kvl_agent_cfg_free(a.cfg);
            return 1;
        }
        KVL_LOG_INFO("agent", a.cfg->id,
                     "kaaval-agent %s starting: site %s, %zu devices, collector %s%s", KVL_VERSION,
                     a.cfg->site, a.cfg->snmp.n_devices, a.cfg->collector,
                     a.cfg->n_collectors > 1 ? " and more" : "");
        kvl_uplink_start(a.up);
    }
    uv_run(a.loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(a.loop);
    if (rc != 0) {
        KVL_LOG_DEBUG("agent", NULL, "loop closed with handles open: %s", uv_strerror(rc));
    }
    kvl_agent_cfg_free(a.cfg);
    return 0;
}
