/*
 * kaavalctl.c — the command line over the collector's HTTP API, for on-call people who live
 * in terminals:
 *
 *   kaavalctl [--url URL] [--token T | --user U] [--cacert FILE] COMMAND
 *     alerts [--status pending|firing|resolved]   the alerts, as a table
 *     ack FINGERPRINT [-m COMMENT]                acknowledge an alert
 *     silence add --match k=v... --for 2h -m COMMENT   (also k!=v, k=~re, k!~re)
 *     silence list
 *     silence rm ID
 *     status [--json] [--loss PCT] [--stale DUR]  the collector, then what is not up (sites
 *                                                 not ok, agents lost or stale, devices down,
 *                                                 links down or lossy: since when and why)
 *     topology [--json]                           the site tree from the NOC with each
 *                                                 site's reachability, then the root causes
 *                                                 with what each cuts off
 *
 * The URL comes from --url, else KAAVAL_URL, else http://127.0.0.1:8080. Credentials: --token,
 * else --user (password from KAAVAL_PASSWORD or a prompt without echo), else the token in
 * KAAVAL_TOKEN, else the first line of ~/.config/kaaval/token. HTTPS is verified against
 * --cacert (or KAAVAL_CACERT), else the system's CAs.
 *
 * Exit status: 0 done, 1 an error from the server or the connection (its sentence on
 * stderr), 2 usage; `status` also 2 when something is down, lost or stale; `topology`
 * also 2 when something is cut off or down.
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define MAX_RESPONSE (16 * 1024 * 1024)

typedef struct ctl {
    const char *url;
    char token[512];
    const char *user;
    char password[512];
    const char *cacert;
} ctl_t;

typedef struct buf {
    char *p;
    size_t n;
    bool too_big;
} buf_t;

static void usage(FILE *f)
{
    fprintf(f, "usage: kaavalctl [--url URL] [--token T | --user U] [--cacert FILE] COMMAND\n"
               "  alerts [--status pending|firing|resolved]\n"
               "  ack FINGERPRINT [-m COMMENT]\n"
               "  silence add --match NAME=VALUE... --for DURATION [-m COMMENT]\n"
               "              (matchers: = != =~ !~; duration like 2h, 90m, 1h30m, 1d)\n"
               "  silence list\n"
               "  silence rm ID\n"
               "  status [--json] [--loss PCT] [--stale DURATION]\n"
               "  topology [--json]\n"
               "      what is not up, as the board shows it: sites not ok, agents lost or\n"
               "      stale (silent for DURATION, 15m), devices down, links down or lossy\n"
               "      (PCT %% loss or more, 5), each with since when and why; exit 2 when\n"
               "      something is down, lost or stale, or a site critical, major or lost\n"
               "URL: --url, KAAVAL_URL or http://127.0.0.1:8080. Credentials: --token, --user\n"
               "(password from KAAVAL_PASSWORD or a prompt), KAAVAL_TOKEN or "
               "~/.config/kaaval/token. HTTPS: --cacert or KAAVAL_CACERT, else the system's\n"
               "CAs. -h, --help: this help.\n"
               "Exit status: 0 done, 1 error from the server or the connection, 2 usage;\n"
               "status, topology: 2 also when something is down.\n");
}

static size_t on_body(char *d, size_t sz, size_t nm, void *ud)
{
    buf_t *b = ud;
    size_t n = sz * nm;
    if (b->n + n > MAX_RESPONSE) {
        b->too_big = true;
        return 0;
    }
    char *np = realloc(b->p, b->n + n + 1);
    if (np == NULL) {
        return 0;
    }
    memcpy(np + b->n, d, n);
    b->p = np;
    b->n += n;
    b->p[b->n] = '\0';
    return n;
}

/* Sends one request; on a 2xx answer returns 0 and its JSON (or NULL for none) in *out;
 * else prints the server's sentence or the failure and returns 1. */
static int call(const ctl_t *c, const char *method, const char *path, json_t *body, json_t **out)
{
    *out = NULL;
    char url[4096];
    size_t ul = strlen(c->url);
    snprintf(url, sizeof(url), "%.*s%s", (int)(ul > 0 && c->url[ul - 1] == '/' ? ul - 1 : ul),
             c->url, path);
    CURL *h = curl_easy_init();
    if (h == NULL) {
        fprintf(stderr, "kaavalctl: libcurl did not start\n");
        return 1;
    }
    struct curl_slist *hl = NULL;
    char auth[700];
    if (c->token[0] != '\0') {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->token);
        hl = curl_slist_append(hl, auth);
    } else if (c->user != NULL) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, c->user);
        curl_easy_setopt(h, CURLOPT_PASSWORD, c->password);
    }
    char *text = NULL;
    if (body != NULL) {
        text = json_dumps(body, JSON_COMPACT);
        hl = curl_slist_append(hl, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, text ? text : "{}");
    }
    hl = curl_slist_append(hl, "Accept: application/json");
    buf_t b = {0};
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (c->cacert != NULL) {
        curl_easy_setopt(h, CURLOPT_CAINFO, c->cacert);
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(h);
    free(text);
    if (rc != CURLE_OK) {
        fprintf(stderr, "kaavalctl: %s: %s\n", url,
                b.too_big   ? "the answer is too large"
                : errbuf[0] ? errbuf
                            : curl_easy_strerror(rc));
        free(b.p);
        return 1;
    }
    json_t *j = NULL;
    if (b.n > 0) {
        json_error_t e;
        j = json_loadb(b.p, b.n, 0, &e);
    }
    if (status < 200 || status > 299) {
        json_t *err = json_object_get(j, "error");
        fprintf(stderr, "kaavalctl: %s %s: %ld %s\n", method, path, status,
                json_is_string(err) ? json_string_value(err) : "(no explanation)");
        json_decref(j);
        free(b.p);
        return 1;
    }
    if (b.n > 0 && j == NULL) {
        fprintf(stderr, "kaavalctl: %s %s: the answer is not JSON\n", method, path);
        free(b.p);
        return 1;
    }
    free(b.p);
    *out = j;
    return 0;
}

static const char *str(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : "-";
}

/* "2026-12-05T14:33:00.000Z" shortened to "12-05 14:33" for tables. */
static const char *short_time(const char *t, char *buf, size_t len)
{
    if (strlen(t) >= 16 && t[4] == '-' && t[10] == 'T') {
        snprintf(buf, len, "%.5s %.5s", t + 5, t + 11);
        return buf;
    }
    return t;
}

/* The list in an answer: the answer itself when an array, else its member `key`. */
static json_t *list_of(json_t *j, const char *key)
{
    if (json_is_array(j)) {
        return j;
    }
    json_t *v = json_object_get(j, key);
    return json_is_array(v) ? v : NULL;
}

static int cmd_alerts(const ctl_t *c, int argc, char **argv)
{
    const char *status = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--status") == 0 && i + 1 < argc) {
            status = argv[++i];
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (status != NULL && strcmp(status, "pending") != 0 && strcmp(status, "firing") != 0 &&
        strcmp(status, "resolved") != 0) {
        fprintf(stderr, "kaavalctl: --status is pending, firing or resolved\n");
        return 2;
    }
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/alerts%s%s", status ? "?status=" : "",
             status ? status : "");
    json_t *j;
    if (call(c, "GET", path, NULL, &j) != 0) {
        return 1;
    }
    json_t *list = list_of(j, "alerts");
    if (list == NULL) {
        fprintf(stderr, "kaavalctl: the answer holds no list of alerts\n");
        json_decref(j);
        return 1;
    }
    printf("%-16s  %-8s  %-8s  %-20s  %-12s  %-16s  %-14s  %-11s  %-3s  %s\n", "FINGERPRINT",
           "STATUS", "SEVERITY", "RULE", "SITE", "DEVICE", "INTERFACE", "SINCE", "ACK", "SUMMARY");
    size_t i;
    json_t *a;
    json_array_foreach(list, i, a)
    {
        json_t *l = json_object_get(a, "labels");
        const char *what = str(l, "interface");
        if (strcmp(what, "-") == 0) {
            what = str(l, "target");
        }
        char tb[32];
        json_t *ack = json_object_get(a, "ack");
        bool acked = (json_is_object(ack) && json_object_size(ack) > 0) || json_is_true(ack) ||
                     json_is_true(json_object_get(a, "acked"));
        /* held back by the topology (root-cause alerts): said after the summary */
        const char *supp = json_string_value(json_object_get(a, "suppressed"));
        printf("%-16s  %-8s  %-8s  %-20s  %-12s  %-16s  %-14s  %-11s  %-3s  %s%s%s%s\n",
               str(a, "fingerprint"), str(a, "status"), str(a, "severity"), str(a, "rule"),
               str(l, "site"), str(l, "device"), what,
               short_time(str(a, "starts_at"), tb, sizeof(tb)), acked ? "yes" : "no",
               str(a, "summary"), supp != NULL ? " (suppressed: " : "", supp != NULL ? supp : "",
               supp != NULL ? ")" : "");
    }
    if (json_array_size(list) == 0) {
        printf("(no alerts)\n");
    }
    json_decref(j);
    return 0;
}

static bool hex_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

static int cmd_ack(const ctl_t *c, int argc, char **argv)
{
    const char *fp = NULL, *comment = "";
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-m") == 0 && i + 1 < argc) {
            comment = argv[++i];
        } else if (fp == NULL && argv[i][0] != '-') {
            fp = argv[i];
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (fp == NULL || !hex_ok(fp)) {
        fprintf(stderr, "kaavalctl: ack needs a fingerprint (hex, as `kaavalctl alerts` shows)\n");
        return 2;
    }
    char path[160];
    snprintf(path, sizeof(path), "/api/v1/alerts/%s/ack", fp);
    json_t *body = json_pack("{s:s}", "comment", comment);
    json_t *j;
    int rc = call(c, "POST", path, body, &j);
    json_decref(body);
    if (rc == 0) {
        printf("acknowledged %s\n", fp);
    }
    json_decref(j);
    return rc;
}

/* "2h", "90m", "1h30m", "1d", "45s" into seconds; -1 when malformed. */
static long long parse_duration(const char *s)
{
    long long total = 0;
    const char *p = s;
    if (*p == '\0') {
        return -1;
    }
    while (*p != '\0') {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 0 || errno != 0 || v > 10000000) {
            return -1;
        }
        long long unit;
        switch (*end) {
        case 's':
            unit = 1;
            break;
        case 'm':
            unit = 60;
            break;
        case 'h':
            unit = 3600;
            break;
        case 'd':
            unit = 86400;
            break;
        case 'w':
            unit = 7 * 86400;
            break;
        default:
            return -1;
        }
        total += v * unit;
        if (total > 366LL * 86400 * 10) {
            return -1;
        }
        p = end + 1;
    }
    return total;
}

static void rfc3339(time_t t, char *buf, size_t len)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
}

/* "name=value", "name!=value", "name=~re", "name!~re" into a matcher object, or NULL. */
static json_t *parse_matcher(const char *s)
{
    size_t i = strcspn(s, "=!");
    if (i == 0 || s[i] == '\0') {
        return NULL;
    }
    const char *op;
    size_t skip;
    if (s[i] == '!' && s[i + 1] == '=') {
        op = "!=";
        skip = 2;
    } else if (s[i] == '!' && s[i + 1] == '~') {
        op = "!~";
        skip = 2;
    } else if (s[i] == '=' && s[i + 1] == '~') {
        op = "=~";
        skip = 2;
    } else if (s[i] == '=') {
        op = "=";
        skip = 1;
    } else {
        return NULL;
    }
    return json_pack("{s:s%, s:s, s:s}", "name", s, i, "value", s + i + skip, "op", op);
}

static int cmd_silence(const ctl_t *c, int argc, char **argv)
{
    if (argc < 1) {
        usage(stderr);
        return 2;
    }
    json_t *j = NULL;
    if (strcmp(argv[0], "list") == 0 && argc == 1) {
        if (call(c, "GET", "/api/v1/silences", NULL, &j) != 0) {
            return 1;
        }
        json_t *list = list_of(j, "silences");
        if (list == NULL) {
            fprintf(stderr, "kaavalctl: the answer holds no list of silences\n");
            json_decref(j);
            return 1;
        }
        printf("%-18s  %-11s  %-40s  %-12s  %s\n", "ID", "ENDS", "MATCHERS", "AUTHOR", "COMMENT");
        size_t i, k;
        json_t *s, *m;
        json_array_foreach(list, i, s)
        {
            char ms[512] = "";
            json_array_foreach(json_object_get(s, "matchers"), k, m)
            {
                size_t l = strlen(ms);
                snprintf(ms + l, sizeof(ms) - l, "%s%s%s%s", l ? "," : "", str(m, "name"),
                         str(m, "op"), str(m, "value"));
            }
            json_t *id = json_object_get(s, "id");
            char idb[64];
            if (json_is_integer(id)) {
                snprintf(idb, sizeof(idb), "%lld", (long long)json_integer_value(id));
            } else {
                snprintf(idb, sizeof(idb), "%s", str(s, "id"));
            }
            const char *author = str(s, "author");
            if (strcmp(author, "-") == 0) {
                author = str(s, "created_by");
            }
            char tb[32];
            printf("%-18s  %-11s  %-40s  %-12s  %s\n", idb,
                   short_time(str(s, "ends_at"), tb, sizeof(tb)), ms, author, str(s, "comment"));
        }
        if (json_array_size(list) == 0) {
            printf("(no silences)\n");
        }
        json_decref(j);
        return 0;
    }
    if (strcmp(argv[0], "rm") == 0 && argc == 2) {
        const char *id = argv[1];
        for (const char *p = id; *p; p++) {
            if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
                  (*p >= 'A' && *p <= 'Z') || *p == '-' || *p == '_')) {
                fprintf(stderr, "kaavalctl: a silence id is letters, digits, - and _\n");
                return 2;
            }
        }
        if (id[0] == '\0' || strlen(id) > 64) {
            fprintf(stderr, "kaavalctl: a silence id is 1 to 64 characters\n");
            return 2;
        }
        char path[128];
        snprintf(path, sizeof(path), "/api/v1/silences/%s", id);
        int rc = call(c, "DELETE", path, NULL, &j);
        if (rc == 0) {
            printf("silence %s removed\n", id);
        }
        json_decref(j);
        return rc;
    }
    if (strcmp(argv[0], "add") != 0) {
        usage(stderr);
        return 2;
    }
    json_t *matchers = json_array();
    long long dur = -1;
    const char *comment = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--match") == 0 && i + 1 < argc) {
            while (i + 1 < argc && argv[i + 1][0] != '-') {
                json_t *m = parse_matcher(argv[++i]);
                if (m == NULL) {
                    fprintf(stderr,
                            "kaavalctl: a matcher is NAME=VALUE, NAME!=VALUE, "
                            "NAME=~REGEX or NAME!~REGEX, not '%s'\n",
                            argv[i]);
                    json_decref(matchers);
                    return 2;
                }
                json_array_append_new(matchers, m);
            }
        } else if (strcmp(argv[i], "--for") == 0 && i + 1 < argc) {
            dur = parse_duration(argv[++i]);
            if (dur <= 0) {
                fprintf(stderr, "kaavalctl: --for takes a duration like 2h, 90m or 1h30m\n");
                json_decref(matchers);
                return 2;
            }
        } else if (strcmp(argv[i], "-m") == 0 && i + 1 < argc) {
            comment = argv[++i];
        } else {
            usage(stderr);
            json_decref(matchers);
            return 2;
        }
    }
    if (json_array_size(matchers) == 0 || dur <= 0) {
        fprintf(stderr, "kaavalctl: silence add needs --match and --for\n");
        json_decref(matchers);
        return 2;
    }
    time_t now = time(NULL);
    char start[40], end[40];
    rfc3339(now, start, sizeof(start));
    rfc3339(now + (time_t)dur, end, sizeof(end));
    json_t *body = json_pack("{s:o, s:s, s:s, s:s}", "matchers", matchers, "starts_at", start,
                             "ends_at", end, "comment", comment ? comment : "");
    int rc = call(c, "POST", "/api/v1/silences", body, &j);
    json_decref(body);
    if (rc == 0) {
        json_t *id = json_object_get(j, "id");
        if (json_is_integer(id)) {
            printf("silence %lld until %s\n", (long long)json_integer_value(id), end);
        } else {
            printf("silence %s until %s\n", str(j, "id"), end);
        }
    }
    json_decref(j);
    return rc;
}

/* ------------------------------------------------------------------ status */

/* "2026-12-05T14:33:00.000Z" as Unix milliseconds, or 0. */
static int64_t rfc3339_ms(const char *t)
{
    struct tm tm = {0};
    int ms = 0;
    if (t == NULL || sscanf(t, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                            &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6) {
        return 0;
    }
    if (strlen(t) > 20 && t[19] == '.') {
        ms = atoi(t + 20) % 1000;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* An age as "3d4h", "2h05m", "4m10s", "12s". */
static const char *age_text(int64_t ms, char *buf, size_t len)
{
    long long s = ms > 0 ? ms / 1000 : 0;
    if (s >= 86400) {
        snprintf(buf, len, "%lldd%lldh", s / 86400, s % 86400 / 3600);
    } else if (s >= 3600) {
        snprintf(buf, len, "%lldh%02lldm", s / 3600, s % 3600 / 60);
    } else if (s >= 60) {
        snprintf(buf, len, "%lldm%02llds", s / 60, s % 60);
    } else {
        snprintf(buf, len, "%llds", s);
    }
    return buf;
}

static int64_t int_of(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

static bool str_eq(json_t *o, const char *key, const char *want)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) && want != NULL && strcmp(json_string_value(v), want) == 0;
}

/* Of the firing alerts, the oldest whose labels have every value given (NULL: any); with
 * device_wide, only alerts without an interface label. */
static json_t *alert_for(json_t *alerts, const char *label, const char *value, const char *agent,
                         const char *device, const char *target, bool device_wide)
{
    json_t *best = NULL;
    size_t i;
    json_t *a;
    json_array_foreach(alerts, i, a)
    {
        json_t *l = json_object_get(a, "labels");
        if (!str_eq(a, "status", "firing") || (label && !str_eq(l, label, value)) ||
            (agent && !str_eq(l, "agent", agent)) || (device && !str_eq(l, "device", device)) ||
            (target && !str_eq(l, "target", target)) ||
            (device_wide && json_object_get(l, "interface") != NULL)) {
            continue;
        }
        if (best == NULL || rfc3339_ms(str(a, "starts_at")) < rfc3339_ms(str(best, "starts_at"))) {
            best = a;
        }
    }
    return best;
}

/* One problem, appended to list: extra (taken; NULL: a new object) with name, state, since
 * (Unix ms or null), age_s, why and kind. */
static void problem(json_t *list, int64_t now, const char *kind, const char *name,
                    const char *state, int64_t since_ms, const char *why, json_t *extra)
{
    json_t *o = extra != NULL ? extra : json_object();
    if (o == NULL) {
        return;
    }
    json_object_set_new(o, "kind", json_string(kind));
    json_object_set_new(o, "name", json_string(name));
    json_object_set_new(o, "state", json_string(state));
    json_object_set_new(o, "since_ms", since_ms > 0 ? json_integer(since_ms) : json_null());
    json_object_set_new(o, "age_s",
                        since_ms > 0 ? json_integer((now - since_ms) / 1000) : json_null());
    json_object_set_new(o, "why", json_string(why != NULL ? why : ""));
    json_array_append_new(list, o);
}

static bool bad_site_state(const char *st)
{
    return strcmp(st, "ok") != 0 && strcmp(st, "unknown") != 0 && strcmp(st, "-") != 0;
}

/* Appends ", 2 devices down" (or " 2 ..." right after the colon) when n > 0. */
static void count_word(char *buf, size_t len, size_t n, const char *what, const char *state)
{
    size_t l = strlen(buf);
    if (n == 0 || l == 0) {
        return;
    }
    snprintf(buf + l, len - l, "%s%zu %s%s %s", buf[l - 1] == ':' ? " " : ", ", n, what,
             n == 1 ? "" : "s", state);
}

typedef struct status_opts {
    bool json;
    double loss_pct;  /* a link with this loss or more is lossy (100: down) */
    int64_t stale_ms; /* a connected agent that sent nothing this long is stale */
} status_opts_t;

typedef struct status_sum {
    size_t sites, sites_bad, agents, lost, stale, devices, down, links, links_down, lossy;
    bool bad;
} status_sum_t;

static void status_sites(json_t *sites, json_t *alerts, int64_t now, json_t *out, status_sum_t *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(sites, i, v)
    {
        const char *st = str(v, "state"), *own = str(v, "own_state"), *name = str(v, "name");
        if (strcmp(st, "critical") == 0 || strcmp(st, "major") == 0 || strcmp(st, "lost") == 0) {
            s->bad = true;
        }
        s->sites++;
        if (!bad_site_state(st)) {
            continue;
        }
        s->sites_bad++;
        json_t *a = alert_for(alerts, "site", name, NULL, NULL, NULL, false);
        char why[600];
        if (bad_site_state(own)) {
            snprintf(why, sizeof(why), "%s", a != NULL ? str(a, "summary") : own);
        } else {
            snprintf(why, sizeof(why), "a site below it is %s", st);
        }
        problem(out, now, "site", name, st,
                a != NULL && bad_site_state(own) ? rfc3339_ms(str(a, "starts_at")) : 0, why,
                json_pack("{s:O?}", "site_kind", json_object_get(v, "kind")));
    }
}

static void status_agents(json_t *agents, json_t *alerts, int64_t now, int64_t stale_ms,
                          json_t *out, status_sum_t *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(agents, i, v)
    {
        const char *id = str(v, "id");
        int64_t seen = int_of(v, "last_seen_ms"), batch = int_of(v, "last_batch_ms");
        bool connected = json_is_true(json_object_get(v, "connected"));
        s->agents++;
        if (json_is_true(json_object_get(v, "lost"))) {
            s->lost++;
            json_t *a = alert_for(alerts, "alertname", "agent_lost", id, NULL, NULL, false);
            problem(out, now, "agent", id, "lost", int_of(v, "lost_since_ms"),
                    a != NULL ? str(a, "summary") : "no heartbeat within lost_after",
                    json_pack("{s:s}", "site", str(v, "site")));
        } else if (!connected || (now - (batch > seen ? batch : seen) > stale_ms)) {
            s->stale++;
            problem(out, now, "agent", id, "stale", batch > seen ? batch : seen,
                    connected ? "nothing received lately" : "not connected (not yet declared lost)",
                    json_pack("{s:s}", "site", str(v, "site")));
        }
    }
}

static void status_devices(json_t *reach, json_t *alerts, int64_t now, json_t *out, status_sum_t *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(reach, i, v)
    {
        json_t *val = json_object_get(v, "value");
        if (!json_is_number(val) || json_number_value(val) != 0) {
            continue;
        }
        s->down++;
        const char *agent = str(v, "agent"), *dev = str(v, "device");
        json_t *a = alert_for(alerts, NULL, NULL, agent, dev, NULL, true);
        char name[600];
        snprintf(name, sizeof(name), "%s/%s", agent, dev);
        problem(out, now, "device", name, "down", a != NULL ? rfc3339_ms(str(a, "starts_at")) : 0,
                a != NULL ? str(a, "summary") : "not reachable at its last poll",
                json_pack("{s:s, s:s, s:s, s:I}", "agent", agent, "device", dev, "site",
                          str(v, "site"), "polled_ms", (json_int_t)int_of(v, "time_ms")));
    }
}

static void status_links(json_t *links, json_t *alerts, int64_t now, double loss_pct, json_t *out,
                         status_sum_t *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(links, i, v)
    {
        s->links++;
        json_t *loss = json_object_get(v, "loss_pct");
        if (!json_is_number(loss) || json_number_value(loss) < loss_pct) {
            continue;
        }
        double lp = json_number_value(loss);
        bool down = lp >= 100.0;
        s->links_down += down;
        s->lossy += !down;
        const char *agent = str(v, "agent"), *target = str(v, "target");
        json_t *a = alert_for(alerts, NULL, NULL, agent, NULL, target, false);
        char name[600], why[600];
        snprintf(name, sizeof(name), "%s->%s", agent, target);
        if (a != NULL) {
            snprintf(why, sizeof(why), "%s", str(a, "summary"));
        } else {
            snprintf(why, sizeof(why), "%.1f %% loss in the last interval", lp);
        }
        problem(out, now, "link", name, down ? "down" : "lossy",
                a != NULL ? rfc3339_ms(str(a, "starts_at")) : 0, why,
                json_pack("{s:s, s:s, s:s, s:f}", "agent", agent, "target", target, "site",
                          str(v, "site"), "loss_pct", lp));
    }
}

static void print_problems(json_t *list, int64_t now)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        char age[32], since[64] = "since ?";
        int64_t ms = int_of(v, "since_ms");
        if (ms > 0) {
            time_t t = (time_t)(ms / 1000);
            struct tm tm;
            gmtime_r(&t, &tm);
            strftime(since, sizeof(since), "since %m-%d %H:%M:%SZ", &tm);
            size_t k = strlen(since);
            snprintf(since + k, sizeof(since) - k, " (%s)", age_text(now - ms, age, sizeof(age)));
        }
        printf("%-7s %-36s %-9s %-31s %s\n", str(v, "kind"), str(v, "name"), str(v, "state"), since,
               str(v, "why"));
    }
}

static int cmd_status(const ctl_t *c, int argc, char **argv)
{
    status_opts_t o = {.json = false, .loss_pct = 5.0, .stale_ms = 900 * 1000};
    for (int i = 0; i < argc; i++) {
        char *end = NULL;
        if (strcmp(argv[i], "--json") == 0) {
            o.json = true;
        } else if (strcmp(argv[i], "--loss") == 0 && i + 1 < argc) {
            o.loss_pct = strtod(argv[++i], &end);
            if (end == argv[i] || *end != '\0' || !(o.loss_pct > 0 && o.loss_pct <= 100)) {
                fprintf(stderr, "kaavalctl: --loss is a percentage above 0, at most 100\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--stale") == 0 && i + 1 < argc) {
            long long d = parse_duration(argv[++i]);
            if (d <= 0) {
                fprintf(stderr, "kaavalctl: --stale is a duration like 15m or 1h\n");
                return 2;
            }
            o.stale_ms = d * 1000;
        } else {
            usage(stderr);
            return 2;
        }
    }
    static const char *const paths[] = {
        "/api/v1/status",
        "/api/v1/whoami",
        "/api/v1/sites",
        "/api/v1/agents",
        "/api/v1/devices?retired=no",
        "/api/v1/latest?scope=device&metric=reachable&limit=10000",
        "/api/v1/links?limit=10000",
        "/api/v1/alerts?status=firing",
    };
    enum { P_STATUS, P_WHO, P_SITES, P_AGENTS, P_DEVICES, P_REACH, P_LINKS, P_ALERTS, P_N };
    json_t *r[P_N] = {0};
    int rc = 0;
    for (size_t i = 0; i < P_N && rc == 0; i++) {
        rc = call(c, "GET", paths[i], NULL, &r[i]);
    }
    json_t *p_sites = json_array(), *p_agents = json_array(), *p_devices = json_array(),
           *p_links = json_array();
    if (rc == 0 && (p_sites == NULL || p_agents == NULL || p_devices == NULL || p_links == NULL)) {
        fprintf(stderr, "kaavalctl: out of memory\n");
        rc = 1;
    }
    int64_t now = now_ms();
    status_sum_t s = {0};
    char summary[512] = "";
    if (rc == 0) {
        json_t *alerts = list_of(r[P_ALERTS], "alerts");
        status_sites(list_of(r[P_SITES], "sites"), alerts, now, p_sites, &s);
        status_agents(list_of(r[P_AGENTS], "agents"), alerts, now, o.stale_ms, p_agents, &s);
        status_devices(list_of(r[P_REACH], "values"), alerts, now, p_devices, &s);
        status_links(list_of(r[P_LINKS], "links"), alerts, now, o.loss_pct, p_links, &s);
        json_t *total = json_object_get(r[P_DEVICES], "total");
        s.devices = json_is_integer(total) ? (size_t)json_integer_value(total)
                                           : json_array_size(list_of(r[P_DEVICES], "devices"));
        s.bad = s.bad || s.lost + s.stale + s.down + s.links_down > 0;
        snprintf(summary, sizeof(summary),
                 "%zu site%s, %zu agent%s, %zu device%s, %zu link%s:", s.sites,
                 s.sites == 1 ? "" : "s", s.agents, s.agents == 1 ? "" : "s", s.devices,
                 s.devices == 1 ? "" : "s", s.links, s.links == 1 ? "" : "s");
        count_word(summary, sizeof(summary), s.sites_bad, "site", "not ok");
        count_word(summary, sizeof(summary), s.lost, "agent", "lost");
        count_word(summary, sizeof(summary), s.stale, "agent", "stale");
        count_word(summary, sizeof(summary), s.down, "device", "down");
        count_word(summary, sizeof(summary), s.links_down, "link", "down");
        count_word(summary, sizeof(summary), s.lossy, "link", "lossy");
        size_t sl = strlen(summary);
        if (sl > 0 && summary[sl - 1] == ':') {
            snprintf(summary + sl, sizeof(summary) - sl, " all up");
        }
    }
    json_t *up = json_object_get(r[P_STATUS], "uptime_s");
    long long uptime = json_is_integer(up) ? (long long)json_integer_value(up) : -1LL;
    if (rc == 0 && o.json) {
        json_t *out = json_pack(
            "{s:s, s:s, s:I, s:s, s:b, s:s, s:I, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
            "s:I, s:I}, s:O, s:O, s:O, s:O}",
            "collector", str(r[P_STATUS], "collector"), "version", str(r[P_STATUS], "version"),
            "uptime_s", (json_int_t)uptime, "user", str(r[P_WHO], "user"), "ok", !s.bad, "summary",
            summary, "now_ms", (json_int_t)now, "counts", "sites", (json_int_t)s.sites, "agents",
            (json_int_t)s.agents, "devices", (json_int_t)s.devices, "links", (json_int_t)s.links,
            "sites_not_ok", (json_int_t)s.sites_bad, "agents_lost", (json_int_t)s.lost,
            "agents_stale", (json_int_t)s.stale, "devices_down", (json_int_t)s.down, "links_down",
            (json_int_t)s.links_down, "links_lossy", (json_int_t)s.lossy, "alerts_firing",
            (json_int_t)json_array_size(list_of(r[P_ALERTS], "alerts")), "sites", p_sites, "agents",
            p_agents, "devices", p_devices, "links", p_links);
        char *text = out != NULL ? json_dumps(out, JSON_INDENT(2)) : NULL;
        if (text == NULL) {
            fprintf(stderr, "kaavalctl: out of memory\n");
            rc = 1;
        } else {
            printf("%s\n", text);
        }
        free(text);
        json_decref(out);
    } else if (rc == 0) {
        printf("collector  %s\nversion    %s\nuptime     %llds\nyou        %s (%s)\n\n%s\n",
               str(r[P_STATUS], "collector"), str(r[P_STATUS], "version"), uptime,
               str(r[P_WHO], "user"), str(r[P_WHO], "role"), summary);
        print_problems(p_sites, now);
        print_problems(p_agents, now);
        print_problems(p_devices, now);
        print_problems(p_links, now);
    }
    json_decref(p_sites);
    json_decref(p_agents);
    json_decref(p_devices);
    json_decref(p_links);
    for (size_t k = 0; k < P_N; k++) {
        json_decref(r[k]);
    }
    return rc != 0 ? rc : s.bad ? 2 : 0;
}

static int read_secret(const char *prompt, char *out, size_t len)
{
    bool tty = isatty(STDIN_FILENO);
    struct termios old, quiet;
    if (tty) {
        fprintf(stderr, "%s", prompt);
        tcgetattr(STDIN_FILENO, &old);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    char *got = fgets(out, (int)len, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    if (got == NULL) {
        return -1;
    }
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

/* The token from KAAVAL_TOKEN or ~/.config/kaaval/token (first line), if any. */
static void default_token(char *out, size_t len)
{
    const char *env = getenv("KAAVAL_TOKEN");
    if (env != NULL && env[0] != '\0') {
        snprintf(out, len, "%s", env);
        return;
    }
    const char *home = getenv("HOME");
    if (home == NULL) {
        return;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/.config/kaaval/token", home);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return;
    }
    if (fgets(out, (int)len, f) == NULL) {
        out[0] = '\0';
    }
    out[strcspn(out, "\r\n \t")] = '\0';
    fclose(f);
}

/* ------------------------------------------------------------------ topology */

/* The sites of the topology's nodes under parent (NULL: the roots), indented by depth. */
static void print_site_tree(json_t *nodes, const char *parent, int depth)
{
    size_t i;
    json_t *n;
    json_array_foreach(nodes, i, n)
    {
        if (!str_eq(n, "kind", "site")) {
            continue;
        }
        json_t *p = json_object_get(n, "parent");
        bool mine = parent == NULL ? !json_is_string(p)
                                   : json_is_string(p) && strcmp(json_string_value(p), parent) == 0;
        if (!mine || depth > 64) {
            continue;
        }
        const char *state = str(n, "state");
        json_t *cause = json_object_get(n, "cause");
        json_t *kj = json_object_get(n, "site_kind");
        const char *kind = json_is_string(kj) ? json_string_value(kj) : "";
        printf("%*s%s%s%s%s  %s%s%s\n", 2 * depth, "", str(n, "name"), kind[0] ? " [" : "", kind,
               kind[0] ? "]" : "", strcmp(state, "reachable") == 0 ? "ok" : state,
               json_is_object(cause) ? ", behind " : "",
               json_is_object(cause) ? str(cause, "name") : "");
        print_site_tree(nodes, str(n, "name"), depth + 1);
    }
}

static int cmd_topology(const ctl_t *c, int argc, char **argv)
{
    bool as_json = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            as_json = true;
        } else {
            usage(stderr);
            return 2;
        }
    }
    json_t *r = NULL;
    int rc = call(c, "GET", "/api/v1/topology", NULL, &r);
    if (rc != 0) {
        return rc;
    }
    json_t *causes = list_of(r, "causes");
    if (as_json) {
        char *text = json_dumps(r, JSON_INDENT(2));
        if (text == NULL) {
            fprintf(stderr, "kaavalctl: out of memory\n");
            json_decref(r);
            return 1;
        }
        printf("%s\n", text);
        free(text);
    } else {
        print_site_tree(list_of(r, "nodes"), NULL, 0);
        size_t i;
        json_t *k;
        if (json_array_size(causes) == 0) {
            printf("\nno root causes: everything known is reachable from the NOC\n");
        } else {
            printf("\nroot causes:\n");
        }
        json_array_foreach(causes, i, k)
        {
            json_t *cut = json_object_get(k, "cut");
            printf("  %s %s: %s; cuts off %lld site%s, %lld agent%s, %lld device%s", str(k, "type"),
                   str(k, "name"), str(k, "reason"), (long long)int_of(cut, "sites"),
                   int_of(cut, "sites") == 1 ? "" : "s", (long long)int_of(cut, "agents"),
                   int_of(cut, "agents") == 1 ? "" : "s", (long long)int_of(cut, "devices"),
                   int_of(cut, "devices") == 1 ? "" : "s");
            size_t j;
            json_t *sn;
            json_array_foreach(list_of(k, "sites_cut"), j, sn)
            {
                printf("%s%s", j == 0 ? ": " : ", ", json_string_value(sn));
            }
            printf("\n");
        }
    }
    rc = json_array_size(causes) > 0 ? 2 : 0;
    json_decref(r);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'},  {"token", required_argument, NULL, 't'},
        {"user", required_argument, NULL, 'U'}, {"cacert", required_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
    };
    ctl_t c = {0};
    c.url = getenv("KAAVAL_URL");
    c.cacert = getenv("KAAVAL_CACERT");
    int ch;
    /* "+": stop at the command word, whose own options follow it */
    while ((ch = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (ch) {
        case 'u':
            c.url = optarg;
            break;
        case 't':
            snprintf(c.token, sizeof(c.token), "%s", optarg);
            break;
        case 'U':
            c.user = optarg;
            break;
        case 'C':
            c.cacert = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind >= argc || (c.token[0] != '\0' && c.user != NULL)) {
        usage(stderr);
        return 2;
    }
    if (c.url == NULL || c.url[0] == '\0') {
        c.url = "http://127.0.0.1:8080";
    }
    if (strncmp(c.url, "http://", 7) != 0 && strncmp(c.url, "https://", 8) != 0) {
        fprintf(stderr, "kaavalctl: the URL must start with http:// or https://\n");
        return 2;
    }
    if (c.user != NULL) {
        const char *pw = getenv("KAAVAL_PASSWORD");
        if (pw != NULL) {
            snprintf(c.password, sizeof(c.password), "%s", pw);
        } else if (read_secret("Password: ", c.password, sizeof(c.password)) != 0) {
            fprintf(stderr, "kaavalctl: no password given\n");
            return 2;
        }
    } else if (c.token[0] == '\0') {
        default_token(c.token, sizeof(c.token));
    }
    const char *cmd = argv[optind];
    int sub_argc = argc - optind - 1;
    char **sub_argv = argv + optind + 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc;
    if (strcmp(cmd, "alerts") == 0) {
        rc = cmd_alerts(&c, sub_argc, sub_argv);
    } else if (strcmp(cmd, "ack") == 0) {
        rc = cmd_ack(&c, sub_argc, sub_argv);
    } else if (strcmp(cmd, "silence") == 0) {
        rc = cmd_silence(&c, sub_argc, sub_argv);
    } else if (strcmp(cmd, "status") == 0) {
        rc = cmd_status(&c, sub_argc, sub_argv);
    } else if (strcmp(cmd, "topology") == 0) {
        rc = cmd_topology(&c, sub_argc, sub_argv);
    } else {
        usage(stderr);
        rc = 2;
    }
    curl_global_cleanup();
    return rc;
}
