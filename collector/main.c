/*
 * main.c — kaaval-collector: receives agents' samples and keeps them in RRD archives.
 *
 *   kaaval-collector -c collector.yaml                 run until SIGINT/SIGTERM
 *   kaaval-collector -c collector.yaml --check-config  check the file and exit
 *
 * Exit status: 0 normal, 1 runtime failure, 2 usage or configuration error.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#include "collector_config.h"
#include "ingest.h"
#include "log.h"
#include "rules.h"
#include "sink.h"
#include "store.h"

typedef struct app {
    uv_loop_t *loop;
    kvl_collector_cfg_t *cfg;
    kvl_store_t *store;
    kvl_sinks_t sinks; /* what the ingest hands batches and events to, in this order */
    kvl_ingest_t *ingest;
    uv_signal_t sigint, sigterm;
} app_t;

static void usage(FILE *f)
{
    fprintf(f, "usage: kaaval-collector -c FILE [--check-config]\n"
               "  -c, --config FILE   collector configuration (YAML)\n"
               "      --check-config  check the configuration and exit\n"
               "  -V, --version       print the version\n"
               "  -h, --help          this help\n");
}

static void on_signal(uv_signal_t *s, int signum)
{
    app_t *a = s->data;
    KVL_LOG_INFO("collector", a->cfg->id, "stopping (signal %d): finishing archive writes", signum);
    kvl_ingest_free(a->ingest);
    a->ingest = NULL;
    uv_close((uv_handle_t *)&a->sigint, NULL);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 'k'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    bool check = false;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            path = optarg;
            break;
        case 'k':
            check = true;
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
    if (path == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    char err[600];
    app_t a = {0};
    a.cfg = kvl_collector_cfg_load(path, err, sizeof(err));
    if (a.cfg == NULL) {
        fprintf(stderr, "kaaval-collector: %s\n", err);
        return 2;
    }
    if (check) {
        kvl_rules_t *rules = NULL;
        char rerr[4096];
        if (kvl_rules_load(a.cfg->rules, &rules, rerr, sizeof(rerr)) != 0) {
            fprintf(stderr, "kaaval-collector: %s\n", rerr);
            kvl_collector_cfg_free(a.cfg);
            return 2;
        }
        printf("%s: configuration is valid (%zu alert rules)\n", path, rules->n);
        kvl_rules_free(rules);
        kvl_collector_cfg_free(a.cfg);
        return 0;
    }
    kvl_log_level = a.cfg->log_level;
    signal(SIGPIPE, SIG_IGN);
    a.loop = uv_default_loop();

    kvl_store_cfg_t scfg = {.data_dir = a.cfg->data_dir,
                            .archives = a.cfg->archives,
                            .n_archives = a.cfg->n_archives,
                            .consolidations = (const char *const *)a.cfg->consolidations};
    if (kvl_store_new(a.loop, &scfg, &a.store, err, sizeof(err)) != 0) {
        KVL_LOG_ERROR("store", NULL, "%s", err);
        kvl_collector_cfg_free(a.cfg);
        return 1;
    }
    kvl_sinks_register(&a.sinks, &kvl_store_sink, a.store);
    if (kvl_ingest_new(a.loop, a.cfg, &a.sinks, &a.ingest, err, sizeof(err)) != 0) {
        KVL_LOG_ERROR("collector", a.cfg->id, "%s", err);
        uv_run(a.loop, UV_RUN_DEFAULT);
        kvl_store_free(a.store);
        kvl_collector_cfg_free(a.cfg);
        return 1;
    }
    uv_signal_init(a.loop, &a.sigint);
    uv_signal_init(a.loop, &a.sigterm);
    a.sigint.data = a.sigterm.data = &a;
    uv_signal_start(&a.sigint, on_signal, SIGINT);
    uv_signal_start(&a.sigterm, on_signal, SIGTERM);
    KVL_LOG_INFO("collector", a.cfg->id, "kaaval-collector %s: archives in %s", KVL_VERSION,
                 a.cfg->data_dir);

    uv_run(a.loop, UV_RUN_DEFAULT);
    uv_loop_close(a.loop);
    kvl_store_free(a.store);
    kvl_collector_cfg_free(a.cfg);
    return 0;
}
