/*
 * store_redo.c — what the store sent to rrdcached and rrdcached has not written yet, kept
 * until it has, so that a restart of rrdcached (kill -9 included) loses nothing (store_int.h).
 *
 * Every update rrdcached took is remembered here, by file, in the order sent. A checkpoint
 * (every `rrdcached_checkpoint`) has rrdcached write each such file (FLUSH, which answers
 * once the file is written) and forgets the updates sent before it. rrdcached's death is
 * seen on a connection of our own that never sends anything (the sentinel): when it reads
 * as closed, the rrdcached that took the remembered updates is gone, and before anything
 * else is sent, every remembered file is forgotten in the new rrdcached (FORGET: what it
 * may have taken of them since it started, or read back from its own journal) and its
 * updates sent again, in order; those the file already has come back stale. librrd's client
 * connects again by itself when a send fails, so its own connections cannot tell.
 *
 * Locking: jobs (store.c) run between store_redo_enter and store_redo_leave under a read
 * lock, so that a recovery (the write lock) runs alone; the checkpoint also holds the read
 * lock and forgets, per file, only the updates that were there before its FLUSH. The table
 * and the counters have their own mutex.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "kvl.h"
#include "log.h"
#include "rrd_store.h"
#include "store.h"
#include "store_int.h"

#define REDO_BUCKETS 65536u

typedef struct redo_file {
    struct redo_file *next;
    uint64_t hash;
    char *path;
    char **sent; /* updates in the file's order, oldest first */
    size_t n, cap;
} redo_file_t;

struct store_redo {
    char *addr;
    uv_rwlock_t gate; /* jobs and checkpoints: read; recovery: write */
    uv_mutex_t lock;  /* the table, the flags and the counters */
    redo_file_t **files;
    int sentinel;     /* our idle connection to rrdcached, -1 when none */
    bool lost;        /* the sentinel closed: recover before sending anything */
    bool unreachable; /* said so in the log; said again when it is reached */
    kvl_store_rrdcached_stats_t st;
};

static uint64_t hash_of(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        h = (h ^ *p) * 1099511628211ull;
    }
    return h;
}

store_redo_t *store_redo_new(const char *addr)
{
    store_redo_t *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return NULL;
    }
    r->sentinel = -1;
    r->addr = strdup(addr);
    r->files = calloc(REDO_BUCKETS, sizeof(*r->files));
    if (r->addr == NULL || r->files == NULL) {
        free(r->addr);
        free(r->files);
        free(r);
        return NULL;
    }
    uv_rwlock_init(&r->gate);
    uv_mutex_init(&r->lock);
    r->st.enabled = true;
    return r;
}

static void file_free(redo_file_t *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->sent[i]);
    }
    free(f->sent);
    free(f->path);
    free(f);
}

void store_redo_free(store_redo_t *r)
{
    if (r == NULL) {
        return;
    }
    for (size_t b = 0; b < REDO_BUCKETS; b++) {
        while (r->files[b] != NULL) {
            redo_file_t *f = r->files[b];
            r->files[b] = f->next;
            file_free(f);
        }
    }
    if (r->sentinel >= 0) {
        close(r->sentinel);
    }
    uv_rwlock_destroy(&r->gate);
    uv_mutex_destroy(&r->lock);
    free(r->files);
    free(r->addr);
    free(r);
}

/* Connects a socket to rrdcached's address: "unix:/path", "/path" or "host[:port]". */
static int connect_to(const char *addr, char *err, size_t errlen)
{
    const char *unix_path = strncmp(addr, "unix:", 5) == 0 ? addr + 5
                            : addr[0] == '/'               ? addr
                                                           : NULL;
    if (unix_path != NULL) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (strlen(unix_path) >= sizeof(sa.sun_path)) {
            snprintf(err, errlen, "socket path too long");
            return -1;
        }
        memcpy(sa.sun_path, unix_path, strlen(unix_path) + 1);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            snprintf(err, errlen, "%s", strerror(errno));
            if (fd >= 0) {
                close(fd);
            }
            return -1;
        }
        return fd;
    }
    char host[256], port[16] = "42217";
    const char *colon = strrchr(addr, ':');
    if (addr[0] == '[') { /* [v6]:port */
        const char *end = strchr(addr, ']');
        snprintf(host, sizeof(host), "%.*s", end != NULL ? (int)(end - addr - 1) : 0, addr + 1);
        if (end != NULL && end[1] == ':') {
            snprintf(port, sizeof(port), "%s", end + 2);
        }
    } else if (colon != NULL && strchr(addr, ':') == colon) {
        snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
        snprintf(port, sizeof(port), "%s", colon + 1);
    } else {
        snprintf(host, sizeof(host), "%s", addr);
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "%s", gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    snprintf(err, errlen, "no address");
    for (struct addrinfo *a = res; a != NULL && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            snprintf(err, errlen, "%s", strerror(errno));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

/* Whether the sentinel still reads as open (nothing is ever sent on it, so anything to
 * read is its end). */
static bool sentinel_alive(store_redo_t *r)
{
    if (r->sentinel < 0) {
        return false;
    }
    struct pollfd p = {.fd = r->sentinel, .events = POLLIN | POLLRDHUP};
    int rc = poll(&p, 1, 0);
    return rc == 0 || (rc < 0 && errno == EINTR);
}

/* Whether rrdcached is the one that took the remembered updates; marks it lost if not. */
static bool still_same(store_redo_t *r)
{
    uv_mutex_lock(&r->lock);
    if (!r->lost && !sentinel_alive(r)) {
        r->lost = true;
    }
    bool ok = !r->lost;
    uv_mutex_unlock(&r->lock);
    return ok;
}

/* Under the write lock: connects the sentinel again and sends every remembered update
 * again, each file forgotten first. 0, or KVL_RRD_AGAIN with why. */
static int recover(store_redo_t *r, char *why, size_t whylen)
{
    if (r->sentinel >= 0) {
        close(r->sentinel);
        r->sentinel = -1;
    }
    char err[512];
    int fd = connect_to(r->addr, err, sizeof(err));
    if (fd < 0) {
        snprintf(why, whylen, "rrdcached at %s cannot be reached: %s", r->addr, err);
        return KVL_RRD_AGAIN;
    }
    r->sentinel = fd;
    size_t files = 0, updates = 0;
    for (size_t b = 0; b < REDO_BUCKETS; b++) {
        for (redo_file_t **p = &r->files[b]; *p != NULL;) {
            redo_file_t *f = *p;
            kvl_rrd_result_t rc = f->n > 0 ? kvl_rrd_forget(f->path, err, sizeof(err)) : KVL_RRD_OK;
            for (size_t i = 0; i < f->n && rc != KVL_RRD_AGAIN && rc != KVL_RRD_MISSING; i++) {
                rc = kvl_rrd_update(f->path, NULL, f->sent[i], err, sizeof(err));
                if (rc == KVL_RRD_ERROR) {
                    KVL_LOG_WARN("store", f->path, "update sent again to rrdcached refused: %s",
                                 err);
                }
                updates += rc == KVL_RRD_OK;
            }
            if (rc == KVL_RRD_AGAIN) {
                /* the connection went again while its updates were sent again (a connection
                 * failure, as kvl_rrd_update's AGAIN is): said as recover's connect says it,
                 * the address once (err names it already) */
                close(r->sentinel);
                r->sentinel = -1;
                char prefix[300];
                snprintf(prefix, sizeof(prefix), "rrdcached at %s: ", r->addr);
                size_t pl = strlen(prefix);
                snprintf(why, whylen, "rrdcached at %s cannot be reached: %s", r->addr,
                         strncmp(err, prefix, pl) == 0 ? err + pl : err);
                return KVL_RRD_AGAIN;
            }
            files += f->n > 0;
            if (rc == KVL_RRD_MISSING || f->n == 0) { /* the file is gone (moved): nothing */
                *p = f->next;
                file_free(f);
            } else {
                p = &f->next;
            }
        }
    }
    uv_mutex_lock(&r->lock);
    r->lost = false;
    r->st.connected = true;
    r->st.recoveries++;
    r->st.replayed += updates;
    bool was_unreachable = r->unreachable;
    r->unreachable = false;
    uv_mutex_unlock(&r->lock);
    if (files > 0 || was_unreachable || r->st.recoveries == 1) {
        KVL_LOG_INFO("store", r->addr,
                     "writing through rrdcached (%zu updates of %zu files not yet written "
                     "by it sent again)",
                     updates, files);
    }
    return 0;
}

int store_redo_enter(store_redo_t *r, char *why, size_t whylen)
{
    for (int tries = 0; tries < 3; tries++) {
        uv_rwlock_rdlock(&r->gate);
        if (still_same(r)) {
            return 0;
        }
        uv_rwlock_rdunlock(&r->gate);
        uv_rwlock_wrlock(&r->gate);
        int rc = 0;
        uv_mutex_lock(&r->lock);
        bool need = r->lost || !sentinel_alive(r);
        uv_mutex_unlock(&r->lock);
        if (need) {
            rc = recover(r, why, whylen);
        }
        uv_rwlock_wrunlock(&r->gate);
        if (rc != 0) {
            uv_mutex_lock(&r->lock);
            r->st.failures++;
            r->st.connected = false;
            bool first = !r->unreachable;
            r->unreachable = true;
            uv_mutex_unlock(&r->lock);
            if (first) {
                KVL_LOG_ERROR("store", r->addr, "%s (updates wait in the journal)", why);
            }
            return KVL_RRD_AGAIN;
        }
    }
    snprintf(why, whylen, "rrdcached at %s keeps going away", r->addr);
    return KVL_RRD_AGAIN;
}

void store_redo_leave(store_redo_t *r)
{
    (void)still_same(r); /* died during the job: recovered before the next one sends */
    uv_rwlock_rdunlock(&r->gate);
}

int store_redo_add(store_redo_t *r, const char *path, const char *sent)
{
    uint64_t h = hash_of(path);
    char *copy = strdup(sent);
    if (copy == NULL) {
        return KVL_ENOMEM;
    }
    uv_mutex_lock(&r->lock);
    redo_file_t *f = r->files[h % REDO_BUCKETS];
    while (f != NULL && (f->hash != h || strcmp(f->path, path) != 0)) {
        f = f->next;
    }
    if (f == NULL && (f = calloc(1, sizeof(*f))) != NULL) {
        if ((f->path = strdup(path)) == NULL) {
            free(f);
            f = NULL;
        } else {
            f->hash = h;
            f->next = r->files[h % REDO_BUCKETS];
            r->files[h % REDO_BUCKETS] = f;
        }
    }
    if (f != NULL && f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        char **s = realloc(f->sent, cap * sizeof(*s));
        if (s != NULL) {
            f->sent = s;
            f->cap = cap;
        }
    }
    int rc = KVL_ENOMEM;
    if (f != NULL && f->n < f->cap) {
        f->sent[f->n++] = copy;
        r->st.pending_updates++;
        r->st.pending_bytes += strlen(copy) + 1;
        rc = 0;
    }
    uv_mutex_unlock(&r->lock);
    if (rc != 0) {
        free(copy);
    }
    return rc;
}

bool store_redo_checkpoint(store_redo_t *r)
{
    uv_rwlock_rdlock(&r->gate);
    if (!still_same(r)) {
        uv_rwlock_rdunlock(&r->gate);
        return false; /* the next job recovers first */
    }
    /* The files with updates, and how many each has now: those are flushed and forgotten.
     * Only this function removes files from the table, so the pointers hold. */
    uv_mutex_lock(&r->lock);
    size_t n = 0, cap = 0;
    bool complete = true;
    struct {
        redo_file_t *f;
        size_t n;
    } *todo = NULL;
    for (size_t b = 0; b < REDO_BUCKETS; b++) {
        for (redo_file_t *f = r->files[b]; f != NULL; f = f->next) {
            if (n == cap) {
                size_t c = cap ? cap * 2 : 1024;
                void *t = realloc(todo, c * sizeof(*todo));
                if (t == NULL) {
                    complete = false;
                    break;
                }
                todo = t;
                cap = c;
            }
            todo[n].f = f;
            todo[n].n = f->n;
            n++;
        }
    }
    uv_mutex_unlock(&r->lock);
    size_t written = 0;
    for (size_t i = 0; i < n; i++) {
        char err[512];
        kvl_rrd_result_t rc =
            todo[i].n > 0 ? kvl_rrd_flush(todo[i].f->path, err, sizeof(err)) : KVL_RRD_OK;
        if (rc == KVL_RRD_AGAIN || !still_same(r)) {
            complete = false;
            break; /* the next job finds out and recovers */
        }
        redo_file_t *f = todo[i].f;
        uv_mutex_lock(&r->lock);
        for (size_t k = 0; k < todo[i].n; k++) {
            r->st.pending_bytes -= strlen(f->sent[k]) + 1;
            free(f->sent[k]);
        }
        memmove(f->sent, f->sent + todo[i].n, (f->n - todo[i].n) * sizeof(*f->sent));
        f->n -= todo[i].n;
        r->st.pending_updates -= todo[i].n;
        written += todo[i].n;
        uv_mutex_unlock(&r->lock);
    }
    /* files without updates left go (a file not updated for a whole interval) */
    uv_mutex_lock(&r->lock);
    for (size_t b = 0; b < REDO_BUCKETS; b++) {
        for (redo_file_t **p = &r->files[b]; *p != NULL;) {
            if ((*p)->n == 0) {
                redo_file_t *f = *p;
                *p = f->next;
                file_free(f);
            } else {
                p = &(*p)->next;
            }
        }
    }
    r->st.checkpoints++;
    r->st.checkpointed += written;
    uv_mutex_unlock(&r->lock);
    free(todo);
    uv_rwlock_rdunlock(&r->gate);
    return complete;
}

void store_redo_stats(store_redo_t *r, kvl_store_rrdcached_stats_t *out)
{
    uv_mutex_lock(&r->lock);
    *out = r->st;
    uv_mutex_unlock(&r->lock);
}
