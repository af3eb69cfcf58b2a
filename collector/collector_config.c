/*
 * collector_config.c — reads collector.yaml into kvl_collector_cfg_t
 * (see collector_config.h). Errors name file:line:column.
 */
#include "collector_config.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "kvl.h"
#include "log.h"
#include "timeutil.h"
#include "wire.h"

/* Named retention profiles (`archives: NAME`); the first is the default. Sizes of one
 * interface's archive (15 data sources, AVERAGE and MAX) at a 60 s step: standard 2.4 MiB,
 * compact 1.2 MiB, planning 5.4 MiB (docs/configuration.md, "Archive sizes"). */
static const struct {
    const char *name;
    const char *specs[4];
} profiles[] = {
    {"standard", {"step:2d", "5m:2w", "30m:62d", "1d:2y"}},
    {"compact", {"step:1d", "5m:1w", "1h:62d", "1d:1y"}},
    {"planning", {"step:2d", "5m:35d", "1h:1y", "1d:5y"}},
};
static const char *const default_cfs[] = {"AVERAGE", "MAX"};
static const char *const known_cfs[] = {"AVERAGE", "MAX", "MIN", "LAST"};

static int parse_listen(kvl_cfg_node_t n, void *target)
{
    kvl_collector_cfg_t *c = target;
    const char *s = kvl_cfg_scalar(n);
    unsigned char addr[16];
    if (s == NULL ||
        kvl_parse_hostport(s, c->listen_host, sizeof(c->listen_host), &c->listen_port) != 0 ||
        (inet_pton(AF_INET, c->listen_host, addr) != 1 &&
         inet_pton(AF_INET6, c->listen_host, addr) != 1)) {
        /* a name is not looked up: where to listen must not depend on a resolver */
        return kvl_cfg_error(n, "expected a numeric address to listen on as host:port, e.g. "
                                "0.0.0.0:5140 or [::]:5140");
    }
    free(c->listen);
    c->listen = strdup(s);
    return 0;
}

/* "step:2d" or "5m:2w" → spec. Returns 0 or -1. */
static int archive_from_text(const char *s, kvl_archive_spec_t *out)
{
    const char *colon = strchr(s, ':');
    if (colon == NULL) {
        return -1;
    }
    char res[64];
    size_t rl = (size_t)(colon - s);
    if (rl == 0 || rl >= sizeof(res)) {
        return -1;
    }
    memcpy(res, s, rl);
    res[rl] = '\0';
    if (strcmp(res, "step") == 0) {
        out->resolution_ms = 0;
    } else if (kvl_duration_parse(res, &out->resolution_ms) != 0 || out->resolution_ms < 1000) {
        return -1;
    }
    if (kvl_duration_parse(colon + 1, &out->retention_ms) != 0 ||
        out->retention_ms < out->resolution_ms || out->retention_ms == 0) {
        return -1;
    }
    return 0;
}

/* `archives: NAME`: the profile's specs. */
static int archives_profile(kvl_cfg_node_t n, kvl_collector_cfg_t *c)
{
    const char *s = kvl_cfg_scalar(n);
    for (size_t p = 0; s != NULL && p < KVL_ARRAY_SIZE(profiles); p++) {
        if (strcmp(s, profiles[p].name) != 0) {
            continue;
        }
        size_t len = KVL_ARRAY_SIZE(profiles[p].specs);
        kvl_archive_spec_t *a = calloc(len, sizeof(*a));
        if (a == NULL) {
            return kvl_cfg_error(n, "out of memory");
        }
        for (size_t i = 0; i < len; i++) {
            KVL_ASSERT(archive_from_text(profiles[p].specs[i], &a[i]) == 0);
        }
        free(c->archives);
        c->archives = a;
        c->n_archives = len;
        return 0;
    }
    return kvl_cfg_error(n, "expected a retention profile (standard, compact or planning) or a "
                            "non-empty list of resolution:retention, e.g. [step:2d, 5m:2w]");
}

static int parse_archives(kvl_cfg_node_t n, void *target)
{
    kvl_collector_cfg_t *c = target;
    if (kvl_cfg_is_scalar(n)) {
        return archives_profile(n, c);
    }
    if (!kvl_cfg_is_seq(n) || kvl_cfg_seq_len(n) == 0) {
        return kvl_cfg_error(n, "expected a retention profile (standard, compact or planning) "
                                "or a non-empty list of resolution:retention, e.g. "
                                "[step:2d, 5m:2w]");
    }
    size_t len = kvl_cfg_seq_len(n);
    kvl_archive_spec_t *a = calloc(len, sizeof(*a));
    if (a == NULL) {
        return kvl_cfg_error(n, "out of memory");
    }
    for (size_t i = 0; i < len; i++) {
        kvl_cfg_node_t item = kvl_cfg_seq_at(n, i);
        const char *s = kvl_cfg_scalar(item);
        if (s == NULL || archive_from_text(s, &a[i]) != 0) {
            free(a);
            return kvl_cfg_error(item,
                                 "expected resolution:retention such as step:2d or 5m:2w "
                                 "(resolution 'step' or at least 1s, retention at least the "
                                 "resolution), got %s%s%s",
                                 s ? "'" : "", s ? s : "a non-text value", s ? "'" : "");
        }
    }
    free(c->archives);
    c->archives = a;
    c->n_archives = len;
    return 0;
}

static void free_cfs(char **cfs)
{
    for (size_t i = 0; cfs && cfs[i]; i++) {
        free(cfs[i]);
    }
    free(cfs);
}

static int parse_cfs(kvl_cfg_node_t n, void *target)
{
    kvl_collector_cfg_t *c = target;
    if (!kvl_cfg_is_seq(n) || kvl_cfg_seq_len(n) == 0) {
        return kvl_cfg_error(n, "expected a non-empty list such as [AVERAGE, MAX]");
    }
    size_t len = kvl_cfg_seq_len(n);
    char **cfs = calloc(len + 1, sizeof(*cfs));
    if (cfs == NULL) {
        return kvl_cfg_error(n, "out of memory");
    }
    for (size_t i = 0; i < len; i++) {
        kvl_cfg_node_t item = kvl_cfg_seq_at(n, i);
        const char *s = kvl_cfg_scalar(item);
        bool ok = false;
        for (size_t k = 0; s && k < KVL_ARRAY_SIZE(known_cfs); k++) {
            ok = ok || strcmp(s, known_cfs[k]) == 0;
        }
        if (!ok) {
            free_cfs(cfs);
            return kvl_cfg_error(item, "expected AVERAGE, MAX, MIN or LAST");
        }
        cfs[i] = strdup(s);
    }
    free_cfs(c->consolidations);
    c->consolidations = cfs;
    return 0;
}

static int parse_web_url(kvl_cfg_node_t n, void *target)
{
    kvl_collector_cfg_t *c = target;
    const char *s = kvl_cfg_scalar(n);
    bool ok = s != NULL && (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0) &&
              strlen(s) < 512 && strpbrk(s, " \t\r\n\"<>?#") == NULL;
    if (!ok || s[strncmp(s, "https", 5) == 0 ? 8 : 7] == '\0') {
        return kvl_cfg_error(
            n, "expected the collector's web address as http(s)://host[:port][/path], "
               "e.g. http://127.0.0.1:8080");
    }
    free(c->web_url);
    c->web_url = strdup(s);
    return c->web_url != NULL ? 0 : kvl_cfg_error(n, "out of memory");
}

/* rrdcached's address as librrd's client takes it: "unix:/path" or "/path" (an absolute
 * socket path), or "host[:port]" / "[v6]:port" (port 1-65535). */
static int parse_rrdcached(kvl_cfg_node_t n, void *target)
{
    kvl_collector_cfg_t *c = target;
    const char *s = kvl_cfg_scalar(n);
    const char *why = NULL;
    if (s == NULL || s[0] == '\0') {
        why = "expected rrdcached's address";
    } else if (strlen(s) >= 108 || strpbrk(s, " \t\r\n") != NULL) {
        why = "an address without spaces, shorter than 108 characters";
    } else if (strncmp(s, "unix:", 5) == 0 || s[0] == '/') {
        const char *path = s[0] == '/' ? s : s + 5;
        if (path[0] != '/' || path[1] == '\0') {
            why = "a unix socket needs an absolute path, e.g. unix:/run/rrdcached.sock";
        }
    } else {
        const char *port = NULL;
        if (s[0] == '[') {
            const char *end = strchr(s, ']');
            if (end == NULL || end == s + 1 || (end[1] != '\0' && end[1] != ':')) {
                why = "expected [IPv6 address]:port";
            } else if (end[1] == ':') {
                port = end + 2;
            }
        } else if (strchr(s, ':') != NULL) {
            port = strchr(s, ':') + 1;
            if (strchr(port, ':') != NULL || port == s + 1) {
                why = "expected host:port (an IPv6 address in brackets)";
            }
        }
        if (why == NULL && port != NULL) {
            char *end = NULL;
            long v = strtol(port, &end, 10);
            if (port[0] == '\0' || *end != '\0' || v < 1 || v > 65535) {
                why = "the port must be a number from 1 to 65535";
            }
        }
    }
    if (why != NULL) {
        return kvl_cfg_error(n, "%s: unix:/path, /path or host[:port] (rrdcached's -l)", why);
    }
    free(c->rrdcached);
    c->rrdcached = strdup(s);
    return c->rrdcached != NULL ? 0 : kvl_cfg_error(n, "out of memory");
}

/* `rrdcached_files`: local (the archives are files here too) or remote (only on rrdcached's
 * host). */
static int parse_rrdcached_files(kvl_cfg_node_t n, void *target)
{
    kvl_collector_cfg_t *c = target;
    const char *s = kvl_cfg_scalar(n);
    if (s != NULL && strcmp(s, "local") == 0) {
        c->rrdcached_remote = false;
    } else if (s != NULL && strcmp(s, "remote") == 0) {
        c->rrdcached_remote = true;
    } else {
        return kvl_cfg_error(n, "expected local or remote");
    }
    return 0;
}

/* What `rrdcached_files: remote` needs: an rrdcached, reached over TCP (librrd's client
 * resolves a path sent over a unix socket on this host, where the archives are not).
 * Returns 0 or kvl_cfg_error's code. */
static int check_rrdcached_files(kvl_cfg_node_t root, const kvl_collector_cfg_t *c)
{
    kvl_cfg_node_t n;
    if (!c->rrdcached_remote || !kvl_cfg_map_get(root, "rrdcached_files", &n)) {
        return 0;
    }
    if (c->rrdcached == NULL) {
        return kvl_cfg_error(n, "rrdcached_files: remote needs `rrdcached:` (host:port)");
    }
    if (strncmp(c->rrdcached, "unix:", 5) == 0 || c->rrdcached[0] == '/') {
        return kvl_cfg_error(n, "rrdcached_files: remote needs rrdcached at host:port, not a unix "
                                "socket (librrd's client resolves a path sent over a socket on "
                                "this host, where the archives are not)");
    }
    return 0;
}

#define OFF(field) offsetof(kvl_collector_cfg_t, field)

static const kvl_cfg_field_t fields[] = {
    {"id", KVL_CFG_STR, OFF(id), 0, 0, NULL, NULL, 0, "name sent to agents"},
    {"listen", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_listen, KVL_CFG_REQUIRED,
     "host:port agents connect to"},
    {"data_dir", KVL_CFG_STR, OFF(data_dir), 0, 0, NULL, NULL, KVL_CFG_REQUIRED,
     "folder for the archives"},
    {"log_level", KVL_CFG_CUSTOM, OFF(log_level), 0, 0, NULL, kvl_cfg_parse_log_level, 0,
     "error, warn, info or debug"},
    {"max_connections", KVL_CFG_INT, OFF(max_connections), 1, 100000, NULL, NULL, 0,
     "agents connected at once, past their Hello (2000)"},
    {"max_frame", KVL_CFG_INT, OFF(max_frame), 1024, 64 * 1024 * 1024, NULL, NULL, 0,
     "largest frame accepted, bytes (4194304)"},
    {"handshake_timeout", KVL_CFG_DURATION, OFF(handshake_timeout_ms), 100, 3600 * 1000, NULL, NULL,
     0, "time for the TLS handshake and the Hello (10s)"},
    {"idle_timeout", KVL_CFG_DURATION, OFF(idle_timeout_ms), 1000, 7 * 86400 * 1000ll, NULL, NULL,
     0, "a connection without a frame for this long is closed (5m)"},
    {"journal_max_bytes", KVL_CFG_INT, OFF(journal_max_bytes), 1 << 20, 1ll << 50, NULL, NULL, 0,
     "journal size above which agents are not read until the archives catch up (1 GiB)"},
    {"journal_segment_bytes", KVL_CFG_INT, OFF(journal_segment_bytes), 1 << 16, 1ll << 32, NULL,
     NULL, 0, "size of one journal file (64 MiB)"},
    {"journal_commit_delay", KVL_CFG_DURATION, OFF(journal_commit_delay_ms), 0, 100, NULL, NULL, 0,
     "longest wait for more batches before a group commit (2ms)"},
    {"journal_sync", KVL_CFG_BOOL, OFF(journal_sync), 0, 0, NULL, NULL, 0,
     "fdatasync every commit (true; false only for tests)"},
    {"archives", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_archives, 0,
     "a retention profile or a list of resolution:retention"},
    {"consolidations", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_cfs, 0, "e.g. [AVERAGE, MAX]"},
    {"rrdcached", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_rrdcached, 0,
     "write the archives through rrdcached at unix:/path, /path or host[:port] (none)"},
    {"rrdcached_checkpoint", KVL_CFG_DURATION, OFF(rrdcached_checkpoint_ms), 1000, 3600 * 1000ll,
     NULL, NULL, 0,
     "how often rrdcached is made to write what it holds; updates kept until then (5m)"},
    {"rrdcached_files", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_rrdcached_files, 0,
     "local: the archives are files here too; remote: only on rrdcached's host (local)"},
    {"tls", KVL_CFG_CUSTOM, OFF(tls), 0, 0, NULL, kvl_tls_cfg_parse_server, 0,
     "mutual TLS: ca, cert, key"},
    {"insecure", KVL_CFG_BOOL, OFF(tls.insecure), 0, 0, NULL, NULL, 0,
     "true: plain TCP, agents not authenticated (instead of tls)"},
    {"max_seq_ahead", KVL_CFG_DURATION, OFF(max_seq_ahead_ms), 60 * 1000, 30 * 86400 * 1000ll, NULL,
     NULL, 0, "a batch numbered further ahead of this collector's clock is refused (1d)"},
    {"max_handshakes", KVL_CFG_INT, OFF(max_handshakes), 1, 10000, NULL, NULL, 0,
     "connections still in their TLS handshake or before their Hello, at once (512)"},
    {"max_handshakes_per_address", KVL_CFG_INT, OFF(max_handshakes_per_address), 1, 10000, NULL,
     NULL, 0, "of those, from one source address (16)"},
    {"max_series_per_agent", KVL_CFG_INT, OFF(max_series_per_agent), 1, 1ll << 32, NULL, NULL, 0,
     "series ids one agent may define; more refuse its definitions (2000000)"},
    {"max_families_per_agent", KVL_CFG_INT, OFF(max_families_per_agent), 1, 1ll << 32, NULL, NULL,
     0, "families one agent may define; more refuse its definitions (1024)"},
    {"agent_state_ttl", KVL_CFG_DURATION, OFF(agent_state_ttl_ms), 100, 30 * 86400 * 1000ll, NULL,
     NULL, 0, "definitions of an agent without connection or queue kept this long (10m)"},
    {"future_tolerance", KVL_CFG_DURATION, OFF(future_tolerance_ms), 1000, 30 * 86400 * 1000ll,
     NULL, NULL, 0, "samples timestamped further ahead of the clock are refused (10m)"},
    {"max_sample_age", KVL_CFG_DURATION, OFF(max_sample_age_ms), 60 * 1000,
     10 * 365 * 86400 * 1000ll, NULL, NULL, 0, "samples older than this are refused (31d)"},
    {"alerts", KVL_CFG_CUSTOM, OFF(alerts), 0, 0, NULL, kvl_alerts_cfg_parse, 0,
     "routing of alerts to receivers (alerts_config.h)"},
    {"http", KVL_CFG_CUSTOM, OFF(http), 0, 0, NULL, kvl_http_cfg_parse, 0,
     "the HTTP server: API and dashboards (web/http_config.h)"},
    {"rules", KVL_CFG_STR, OFF(rules), 0, 0, NULL, NULL, 0,
     "alert rules file or folder of *.yaml files (none: the built-in rules alone)"},
    {"late_after", KVL_CFG_DURATION, OFF(late_after_ms), 1000, 86400 * 1000ll, NULL, NULL, 0,
     "events and samples older than this when they arrive are history, not pages (2m)"},
    {"web_url", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_web_url, 0,
     "base of the graph links alerts carry (http://127.0.0.1:8080)"},
    {"receivers", KVL_CFG_CUSTOM, OFF(receivers), 0, 0, NULL, kvl_notify_cfg_parse, 0,
     "where alerts are delivered (notify_config.h)"},
    {"lost_after", KVL_CFG_INT, OFF(lost_after), 2, 100, NULL, NULL, 0,
     "heartbeats an agent may miss before it is declared lost (3)"},
    {"sites", KVL_CFG_CUSTOM, OFF(sites), 0, 0, NULL, kvl_sites_cfg_parse, 0,
     "the site tree, or {file: path} (board/sites_config.h)"},
    {"remote_write", KVL_CFG_CUSTOM, OFF(remote_write), 0, 0, NULL, kvl_rw_cfg_parse, 0,
     "Prometheus remote-write endpoints (rwrite/rwrite_config.h)"},
    {NULL},
};

void kvl_collector_cfg_free(kvl_collector_cfg_t *c)
{
    if (c == NULL) {
        return;
    }
    free(c->id);
    free(c->listen);
    free(c->data_dir);
    free(c->rules);
    free(c->web_url);
    free(c->rrdcached);
    free(c->archives);
    free_cfs(c->consolidations);
    kvl_tls_cfg_free(&c->tls);
    kvl_alerts_cfg_free(c->alerts);
    kvl_http_cfg_free(c->http);
    kvl_notify_cfg_free(c->receivers);
    kvl_sites_cfg_free(c->sites);
    kvl_rw_cfg_free(c->remote_write);
    free(c);
}

static int set_defaults(kvl_collector_cfg_t *c)
{
    char host[256];
    if (gethostname(host, sizeof(host)) != 0) {
        snprintf(host, sizeof(host), "collector");
    }
    host[sizeof(host) - 1] = '\0';
    c->id = strdup(host);
    c->log_level = KVL_LOG_LEVEL_INFO;
    c->max_connections = 2000;
    c->max_frame = 4 * 1024 * 1024;
    c->handshake_timeout_ms = 10 * 1000;
    c->idle_timeout_ms = 5 * 60 * 1000;
    c->journal_max_bytes = 1ll << 30;
    c->journal_segment_bytes = 64ll << 20;
    c->journal_commit_delay_ms = 2;
    c->journal_sync = true;
    c->rrdcached_checkpoint_ms = 5 * 60 * 1000;
    c->max_seq_ahead_ms = (int64_t)(KVL_SEQ_AHEAD_DEFAULT_US / 1000u);
    c->max_handshakes = 512;
    c->max_handshakes_per_address = 16;
    c->max_series_per_agent = 2000000;
    c->max_families_per_agent = 1024;
    c->agent_state_ttl_ms = 10 * 60 * 1000;
    c->future_tolerance_ms = 10 * 60 * 1000;
    c->max_sample_age_ms = 31ll * 86400 * 1000;
    c->lost_after = 3;
    c->late_after_ms = 2 * 60 * 1000;
    c->web_url = strdup("http://127.0.0.1:8080");
    c->n_archives = KVL_ARRAY_SIZE(profiles[0].specs);
    c->archives = calloc(c->n_archives, sizeof(*c->archives));
    c->consolidations = calloc(KVL_ARRAY_SIZE(default_cfs) + 1, sizeof(char *));
    c->http = kvl_http_cfg_new();
    if (c->id == NULL || c->archives == NULL || c->consolidations == NULL || c->http == NULL ||
        c->web_url == NULL) {
        return KVL_ENOMEM;
    }
    for (size_t i = 0; i < c->n_archives; i++) {
        archive_from_text(profiles[0].specs[i], &c->archives[i]);
    }
    for (size_t i = 0; i < KVL_ARRAY_SIZE(default_cfs); i++) {
        if ((c->consolidations[i] = strdup(default_cfs[i])) == NULL) {
            return KVL_ENOMEM;
        }
    }
    return 0;
}

static kvl_collector_cfg_t *finish(kvl_cfg_t *y, char *err, size_t errlen)
{
    kvl_collector_cfg_t *c = calloc(1, sizeof(*c));
    if (c == NULL || set_defaults(c) != 0) {
        snprintf(err, errlen, "out of memory");
        kvl_collector_cfg_free(c);
        kvl_cfg_free(y);
        return NULL;
    }
    kvl_cfg_node_t http_node = {0};
    if (!kvl_cfg_map_get(kvl_cfg_root(y), "http", &http_node)) {
        http_node = kvl_cfg_root(y);
    }
    if (kvl_cfg_apply(kvl_cfg_root(y), fields, c) != 0 ||
        kvl_tls_cfg_check(kvl_cfg_root(y), &c->tls) != 0 ||
        check_rrdcached_files(kvl_cfg_root(y), c) != 0 ||
        kvl_http_cfg_finish(http_node, c->http, c->data_dir, c->id, &c->tls) != 0) {
        snprintf(err, errlen, "%s", kvl_cfg_last_error(y));
        kvl_collector_cfg_free(c);
        c = NULL;
    }
    kvl_cfg_free(y);
    return c;
}

kvl_collector_cfg_t *kvl_collector_cfg_load(const char *path, char *err, size_t errlen)
{
    kvl_cfg_t *y = kvl_cfg_load_file(path, err, errlen);
    return y ? finish(y, err, errlen) : NULL;
}

kvl_collector_cfg_t *kvl_collector_cfg_parse(const char *name, const char *text, char *err,
                                             size_t errlen)
{
    kvl_cfg_t *y = kvl_cfg_load_string(name, text, err, errlen);
    return y ? finish(y, err, errlen) : NULL;
}
