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
 *     status                                      the collector and who you are
 *
 * The URL comes from --url, else KAAVAL_URL, else http://127.0.0.1:8080. Credentials: --token,
 * else --user (password from KAAVAL_PASSWORD or a prompt without echo), else the token in
 * KAAVAL_TOKEN, else the first line of ~/.config/kaaval/token. HTTPS is verified against
 * --cacert (or KAAVAL_CACERT), else the system's CAs.
 *
 * Exit status: 0 done, 1 an error from the server or the connection (its sentence on
 * stderr), 2 usage.
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
               "  status\n"
               "URL: --url, KAAVAL_URL or http://127.0.0.1:8080. Credentials: --token, --user\n"
               "(password from KAAVAL_PASSWORD or a prompt), KAAVAL_TOKEN or "
               "~/.config/kaaval/token.\n"
               "Exit status: 0 done, 1 error from the server or the connection, 2 usage.\n");
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
        printf("%-16s  %-8s  %-8s  %-20s  %-12s  %-16s  %-14s  %-11s  %-3s  %s\n",
               str(a, "fingerprint"), str(a, "status"), str(a, "severity"), str(a, "rule"),
               str(l, "site"), str(l, "device"), what,
               short_time(str(a, "starts_at"), tb, sizeof(tb)), acked ? "yes" : "no",
               str(a, "summary"));
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

static int cmd_status(const ctl_t *c)
{
    json_t *s, *w;
    if (call(c, "GET", "/api/v1/status", NULL, &s) != 0) {
        return 1;
    }
    if (call(c, "GET", "/api/v1/whoami", NULL, &w) != 0) {
        json_decref(s);
        return 1;
    }
    json_t *up = json_object_get(s, "uptime_s");
    printf("collector  %s\nversion    %s\nuptime     %llds\nyou        %s (%s)\n",
           str(s, "collector"), str(s, "version"),
           json_is_integer(up) ? (long long)json_integer_value(up) : -1LL, str(w, "user"),
           str(w, "role"));
    json_decref(s);
    json_decref(w);
    return 0;
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
    } else if (strcmp(cmd, "status") == 0 && sub_argc == 0) {
        rc = cmd_status(&c);
    } else {
        usage(stderr);
        rc = 2;
    }
    curl_global_cleanup();
    return rc;
}
