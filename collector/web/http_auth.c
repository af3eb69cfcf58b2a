/*
 * http_auth.c — users, tokens and sessions of http_auth.h. The only user of libcrypt
 * (yescrypt hashes) and, in the web room, of OpenSSL's SHA-256.
 */
#include "http_auth.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "http_parse.h"
#include "kvl.h"
#include "log.h"

#define MAX_SESSIONS 4096
#define MAX_ENTRIES 10000
#define LINE_MAX_BYTES 1024

typedef struct entry {
    char name[KVL_HTTP_USER_MAX + 1];
    kvl_role_t role;
    char hash[256]; /* yescrypt string, or the token's SHA-256 in hex */
} entry_t;

typedef struct table {
    const char *file;
    entry_t *e;
    size_t n;
    struct stat st; /* of the file when read (st_ino 0: absent) */
} table_t;

typedef struct session {
    char sid[KVL_HTTP_SID_LEN + 1];
    char csrf[KVL_HTTP_SID_LEN + 1];
    char user[KVL_HTTP_USER_MAX + 8];
    kvl_role_t role;
    int64_t expires_ms;
} session_t;

struct kvl_http_auth_db {
    pthread_mutex_t mu;
    char *users_file, *tokens_file;
    table_t users, tokens;
    session_t *sessions;
    size_t n_sessions;
    int64_t ttl_ms;
    char dummy[256]; /* a yescrypt hash checked for unknown users, so they cost the same */
};

static const char *const role_names[] = {"none", "viewer", "operator", "admin"};

const char *kvl_http_role_name(kvl_role_t r)
{
    return (unsigned)r < KVL_ARRAY_SIZE(role_names) ? role_names[r] : "none";
}

int kvl_http_role_parse(const char *s, kvl_role_t *out)
{
    for (int r = KVL_ROLE_VIEWER; r <= KVL_ROLE_ADMIN; r++) {
        if (s != NULL && strcmp(s, role_names[r]) == 0) {
            *out = (kvl_role_t)r;
            return 0;
        }
    }
    return KVL_EINVAL;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int kvl_http_secret_eq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = (unsigned char)(la != lb);
    for (size_t i = 0; i < la; i++) {
        d |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    }
    return d == 0 && lb != 0;
}

static int set_err(char *err, size_t errlen, int code, const char *fmt, ...) KVL_PRINTF(4, 5);

static int set_err(char *err, size_t errlen, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return code;
}

/* Parses one "name:role:hash" line into e. */
static int parse_line(char *line, entry_t *e)
{
    char *c1 = strchr(line, ':');
    char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (c2 == NULL) {
        return KVL_EINVAL;
    }
    *c1 = *c2 = '\0';
    if (!kvl_http_user_name_ok(line) || kvl_http_role_parse(c1 + 1, &e->role) != 0 ||
        strlen(c2 + 1) == 0 || strlen(c2 + 1) >= sizeof(e->hash) || strchr(c2 + 1, ':')) {
        return KVL_EINVAL;
    }
    snprintf(e->name, sizeof(e->name), "%s", line);
    snprintf(e->hash, sizeof(e->hash), "%s", c2 + 1);
    return 0;
}

/* Reads a file of entries; a missing file is empty. */
static int read_entries(const char *file, entry_t **out, size_t *n, struct stat *st, char *err,
                        size_t errlen)
{
    *out = NULL;
    *n = 0;
    memset(st, 0, sizeof(*st));
    FILE *f = fopen(file, "r");
    if (f == NULL) {
        if (errno == ENOENT) {
            return 0;
        }
        return set_err(err, errlen, KVL_EIO, "%s: %s", file, strerror(errno));
    }
    fstat(fileno(f), st);
    char line[LINE_MAX_BYTES + 2];
    size_t lineno = 0, cap = 0;
    entry_t *v = NULL;
    int rc = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        size_t l = strlen(line);
        if (l > LINE_MAX_BYTES) {
            rc = set_err(err, errlen, KVL_ECONFIG, "%s:%zu: line too long", file, lineno);
            break;
        }
        while (l > 0 && (line[l - 1] == '\n' || line[l - 1] == '\r')) {
            line[--l] = '\0';
        }
        if (l == 0 || line[0] == '#') {
            continue;
        }
        if (*n == MAX_ENTRIES) {
            rc = set_err(err, errlen, KVL_ECONFIG, "%s: more than %d entries", file, MAX_ENTRIES);
            break;
        }
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            entry_t *nv = realloc(v, cap * sizeof(*v));
            if (nv == NULL) {
                rc = set_err(err, errlen, KVL_ENOMEM, "out of memory");
                break;
            }
            v = nv;
        }
        if (parse_line(line, &v[*n]) != 0) {
            rc = set_err(err, errlen, KVL_ECONFIG,
                         "%s:%zu: expected name:role:hash (role viewer, operator or admin)", file,
                         lineno);
            break;
        }
        (*n)++;
    }
    fclose(f);
    if (rc != 0) {
        free(v);
        *n = 0;
        return rc;
    }
    *out = v;
    return 0;
}

/* Reads the table again when its file changed (mutex held). A file that became unreadable
 * keeps the last good contents, with a warning. */
static void table_refresh(table_t *t)
{
    struct stat st;
    memset(&st, 0, sizeof(st));
    if (stat(t->file, &st) != 0) {
        memset(&st, 0, sizeof(st));
    }
    if (st.st_ino == t->st.st_ino && st.st_mtim.tv_sec == t->st.st_mtim.tv_sec &&
        st.st_mtim.tv_nsec == t->st.st_mtim.tv_nsec && st.st_size == t->st.st_size) {
        return;
    }
    entry_t *e;
    size_t n;
    char err[300];
    if (read_entries(t->file, &e, &n, &st, err, sizeof(err)) != 0) {
        KVL_LOG_WARN("http", NULL, "%s (keeping what was read before)", err);
        t->st = st;
        return;
    }
    free(t->e);
    t->e = e;
    t->n = n;
    t->st = st;
}

int kvl_http_auth_new(const char *users_file, const char *tokens_file, int64_t session_ttl_ms,
                      kvl_http_auth_db_t **out, char *err, size_t errlen)
{
    *out = NULL;
    kvl_http_auth_db_t *db = calloc(1, sizeof(*db));
    if (db == NULL || (db->users_file = strdup(users_file)) == NULL ||
        (db->tokens_file = strdup(tokens_file)) == NULL ||
        (db->sessions = calloc(MAX_SESSIONS, sizeof(*db->sessions))) == NULL) {
        kvl_http_auth_free(db);
        return set_err(err, errlen, KVL_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&db->mu, NULL);
    db->ttl_ms = session_ttl_ms;
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data *cd = calloc(1, sizeof(*cd));
    const char *dh = cd && crypt_gensalt_rn("$y$", 0, NULL, 0, salt, sizeof(salt))
                         ? crypt_r("kaaval: no such user", salt, cd)
                         : NULL;
    snprintf(db->dummy, sizeof(db->dummy), "%s", dh ? dh : "*");
    free(cd);
    db->users.file = db->users_file;
    db->tokens.file = db->tokens_file;
    int rc = read_entries(users_file, &db->users.e, &db->users.n, &db->users.st, err, errlen);
    if (rc == 0) {
        rc = read_entries(tokens_file, &db->tokens.e, &db->tokens.n, &db->tokens.st, err, errlen);
    }
    if (rc != 0) {
        kvl_http_auth_free(db);
        return rc;
    }
    *out = db;
    return 0;
}

void kvl_http_auth_free(kvl_http_auth_db_t *db)
{
    if (db == NULL) {
        return;
    }
    if (db->sessions != NULL) {
        pthread_mutex_destroy(&db->mu);
    }
    free(db->users.e);
    free(db->tokens.e);
    free(db->sessions);
    free(db->users_file);
    free(db->tokens_file);
    free(db);
}

kvl_role_t kvl_http_auth_password(kvl_http_auth_db_t *db, const char *user, const char *password)
{
    char hash[256];
    kvl_role_t role = KVL_ROLE_NONE;
    pthread_mutex_lock(&db->mu);
    table_refresh(&db->users);
    snprintf(hash, sizeof(hash), "%s", db->dummy);
    for (size_t i = 0; i < db->users.n; i++) {
        if (strcmp(db->users.e[i].name, user) == 0) {
            snprintf(hash, sizeof(hash), "%s", db->users.e[i].hash);
            role = db->users.e[i].role;
            break;
        }
    }
    pthread_mutex_unlock(&db->mu);
    struct crypt_data *cd = calloc(1, sizeof(*cd));
    if (cd == NULL) {
        return KVL_ROLE_NONE;
    }
    const char *h = crypt_r(password, hash, cd);
    bool ok = h != NULL && h[0] != '*' && kvl_http_secret_eq(h, hash);
    explicit_bzero(cd, sizeof(*cd));
    free(cd);
    return ok ? role : KVL_ROLE_NONE;
}

static void sha256_hex(const char *s, char out[65])
{
    unsigned char md[32];
    unsigned int len = 0;
    EVP_Digest(s, strlen(s), md, &len, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++) {
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    }
}

kvl_role_t kvl_http_auth_token(kvl_http_auth_db_t *db, const char *token, char *name, size_t len)
{
    char hex[65];
    sha256_hex(token, hex);
    kvl_role_t role = KVL_ROLE_NONE;
    pthread_mutex_lock(&db->mu);
    table_refresh(&db->tokens);
    for (size_t i = 0; i < db->tokens.n; i++) {
        if (kvl_http_secret_eq(db->tokens.e[i].hash, hex) && role == KVL_ROLE_NONE) {
            role = db->tokens.e[i].role;
            snprintf(name, len, "%s", db->tokens.e[i].name);
        }
    }
    pthread_mutex_unlock(&db->mu);
    return role;
}

json_t *kvl_http_auth_list(kvl_http_auth_db_t *db)
{
    json_t *a = json_array();
    pthread_mutex_lock(&db->mu);
    table_refresh(&db->users);
    table_refresh(&db->tokens);
    const table_t *t[2] = {&db->users, &db->tokens};
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; a != NULL && i < t[k]->n; i++) {
            json_array_append_new(a, json_pack("{s:s, s:s, s:s}", "name", t[k]->e[i].name, "role",
                                               kvl_http_role_name(t[k]->e[i].role), "kind",
                                               k == 0 ? "user" : "token"));
        }
    }
    pthread_mutex_unlock(&db->mu);
    return a;
}

static int random_hex(char *out, size_t n_bytes)
{
    unsigned char b[64];
    KVL_ASSERT(n_bytes <= sizeof(b));
    size_t got = 0;
    while (got < n_bytes) {
        ssize_t r = getrandom(b + got, n_bytes - got, 0);
        if (r < 0 && errno != EINTR) {
            return KVL_EIO;
        }
        got += r > 0 ? (size_t)r : 0;
    }
    for (size_t i = 0; i < n_bytes; i++) {
        snprintf(out + 2 * i, 3, "%02x", b[i]);
    }
    explicit_bzero(b, sizeof(b));
    return 0;
}

int kvl_http_session_new(kvl_http_auth_db_t *db, const char *user, kvl_role_t role,
                         char sid[KVL_HTTP_SID_LEN + 1], char csrf[KVL_HTTP_SID_LEN + 1])
{
    if (random_hex(sid, KVL_HTTP_SID_LEN / 2) != 0 || random_hex(csrf, KVL_HTTP_SID_LEN / 2) != 0) {
        return KVL_EIO;
    }
    int64_t now = now_ms();
    pthread_mutex_lock(&db->mu);
    size_t slot = 0;
    int64_t oldest = INT64_MAX;
    for (size_t i = 0; i < MAX_SESSIONS; i++) {
        session_t *s = &db->sessions[i];
        if (s->sid[0] == '\0' || s->expires_ms <= now) {
            slot = i;
            break;
        }
        if (s->expires_ms < oldest) {
            oldest = s->expires_ms;
            slot = i;
        }
    }
    session_t *s = &db->sessions[slot];
    snprintf(s->sid, sizeof(s->sid), "%s", sid);
    snprintf(s->csrf, sizeof(s->csrf), "%s", csrf);
    snprintf(s->user, sizeof(s->user), "%s", user);
    s->role = role;
    s->expires_ms = now + db->ttl_ms;
    pthread_mutex_unlock(&db->mu);
    return 0;
}

kvl_role_t kvl_http_session_get(kvl_http_auth_db_t *db, const char *sid, char *user, size_t len,
                                char csrf[KVL_HTTP_SID_LEN + 1])
{
    kvl_role_t role = KVL_ROLE_NONE;
    if (strlen(sid) != KVL_HTTP_SID_LEN) {
        return role;
    }
    int64_t now = now_ms();
    pthread_mutex_lock(&db->mu);
    for (size_t i = 0; i < MAX_SESSIONS; i++) {
        session_t *s = &db->sessions[i];
        if (s->sid[0] != '\0' && s->expires_ms > now && kvl_http_secret_eq(s->sid, sid)) {
            /* the user's role as the users file says now: a user removed or lowered loses
             * the session's rights at once */
            table_refresh(&db->users);
            for (size_t k = 0; k < db->users.n; k++) {
                if (strcmp(db->users.e[k].name, s->user) == 0) {
                    role = db->users.e[k].role;
                }
            }
            if (role == KVL_ROLE_NONE) {
                memset(s, 0, sizeof(*s));
                break;
            }
            s->role = role;
            snprintf(user, len, "%s", s->user);
            snprintf(csrf, KVL_HTTP_SID_LEN + 1, "%s", s->csrf);
            break;
        }
    }
    pthread_mutex_unlock(&db->mu);
    return role;
}

void kvl_http_session_end(kvl_http_auth_db_t *db, const char *sid)
{
    pthread_mutex_lock(&db->mu);
    for (size_t i = 0; i < MAX_SESSIONS; i++) {
        session_t *s = &db->sessions[i];
        if (s->sid[0] != '\0' && kvl_http_secret_eq(s->sid, sid)) {
            memset(s, 0, sizeof(*s));
        }
    }
    pthread_mutex_unlock(&db->mu);
}

/* Writes entries with `name` replaced by (or appended as) line: temp file 0600, fsync,
 * rename, fsync of the folder. */
static int write_entries(const char *file, const char *name, const char *line, char *err,
                         size_t errlen)
{
    entry_t *e;
    size_t n;
    struct stat st;
    int rc = read_entries(file, &e, &n, &st, err, errlen);
    if (rc != 0) {
        return rc;
    }
    size_t tl = strlen(file) + 8;
    char *tmp = malloc(tl);
    if (tmp == NULL) {
        free(e);
        return set_err(err, errlen, KVL_ENOMEM, "out of memory");
    }
    snprintf(tmp, tl, "%s.new", file);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 && errno == ENOENT) {
        /* the data folder not made yet (no collector started): make it, as the daemon would */
        char *d = strdup(file);
        if (d != NULL && mkdir(dirname(d), 0750) == 0) {
            fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        }
        free(d);
        errno = fd < 0 && errno == 0 ? ENOENT : errno;
    }
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (f == NULL) {
        rc = set_err(err, errlen, KVL_EIO, "%s: %s", tmp, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        free(tmp);
        free(e);
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(e[i].name, name) != 0) {
            fprintf(f, "%s:%s:%s\n", e[i].name, kvl_http_role_name(e[i].role), e[i].hash);
        }
    }
    fprintf(f, "%s\n", line);
    free(e);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        rc = set_err(err, errlen, KVL_EIO, "%s: %s", tmp, strerror(errno));
    }
    if (fclose(f) != 0 && rc == 0) {
        rc = set_err(err, errlen, KVL_EIO, "%s: %s", tmp, strerror(errno));
    }
    if (rc == 0 && rename(tmp, file) != 0) {
        rc = set_err(err, errlen, KVL_EIO, "%s: %s", file, strerror(errno));
    }
    if (rc != 0) {
        unlink(tmp);
    } else {
        char *d = strdup(file);
        int dfd = d ? open(dirname(d), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        free(d);
    }
    free(tmp);
    return rc;
}

int kvl_http_users_set(const char *file, const char *name, kvl_role_t role, const char *password,
                       char *err, size_t errlen)
{
    if (!kvl_http_user_name_ok(name)) {
        return set_err(err, errlen, KVL_EINVAL,
                       "a user name is 1 to %d of A-Z a-z 0-9 _ . @ - (not starting with - or .)",
                       KVL_HTTP_USER_MAX);
    }
    size_t pl = strlen(password);
    if (pl < 8 || pl > KVL_HTTP_PASSWORD_MAX || !kvl_http_text_ok(password, pl, false)) {
        return set_err(err, errlen, KVL_EINVAL,
                       "a password is 8 to %d characters, no control characters",
                       KVL_HTTP_PASSWORD_MAX);
    }
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    if (crypt_gensalt_rn("$y$", 0, NULL, 0, salt, sizeof(salt)) == NULL) {
        return set_err(err, errlen, KVL_EIO, "crypt_gensalt: %s", strerror(errno));
    }
    struct crypt_data *cd = calloc(1, sizeof(*cd));
    if (cd == NULL) {
        return set_err(err, errlen, KVL_ENOMEM, "out of memory");
    }
    const char *h = crypt_r(password, salt, cd);
    int rc;
    if (h == NULL || h[0] == '*') {
        rc = set_err(err, errlen, KVL_EIO, "crypt: no yescrypt hash could be made");
    } else {
        char line[LINE_MAX_BYTES];
        snprintf(line, sizeof(line), "%s:%s:%s", name, kvl_http_role_name(role), h);
        rc = write_entries(file, name, line, err, errlen);
        explicit_bzero(line, sizeof(line));
    }
    explicit_bzero(cd, sizeof(*cd));
    free(cd);
    return rc;
}

int kvl_http_tokens_add(const char *file, const char *name, kvl_role_t role, char *token,
                        size_t tokenlen, char *err, size_t errlen)
{
    if (!kvl_http_user_name_ok(name)) {
        return set_err(err, errlen, KVL_EINVAL,
                       "a token name is 1 to %d of A-Z a-z 0-9 _ . @ - (not starting with - or .)",
                       KVL_HTTP_USER_MAX);
    }
    if (tokenlen < 69) {
        return set_err(err, errlen, KVL_EINVAL, "no room for the token");
    }
    memcpy(token, "kvl_", 4);
    if (random_hex(token + 4, 32) != 0) {
        return set_err(err, errlen, KVL_EIO, "getrandom: %s", strerror(errno));
    }
    char hex[65];
    sha256_hex(token, hex);
    char line[LINE_MAX_BYTES];
    snprintf(line, sizeof(line), "%s:%s:%s", name, kvl_http_role_name(role), hex);
    return write_entries(file, name, line, err, errlen);
}
