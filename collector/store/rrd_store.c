/*
 * rrd_store.c — creating and updating RRD files through librrd (see rrd_store.h).
 *
 * librrd reports errors through a per-thread context (rrd_get_error); each call here clears
 * it first and copies the message out. An update at or before the file's last update is
 * not an I/O problem but an ordering one, and is reported as KVL_RRD_STALE; a file locked
 * by a reader (rrdtool fetch and graph take a shared lock, and librrd's update does not
 * wait for it) is reported as KVL_RRD_BUSY so the caller can try again.
 *
 * Failures that can pass (KVL_RRD_AGAIN) are told from those that cannot by librrd's
 * message: its file errors carry strerror's text ("opening 'x.rrd': Read-only file
 * system"), its writes of a file's parts have fixed texts ("rrd_write live_head to rrd").
 * librrd 1.7's create loses the reason of a failed write altogether (write_fh returns -1
 * with no message, and the unlink of its temporary file overwrites errno): a create that
 * fails without a message, or in writing its temporary file, is a file-system failure, and
 * the file system is examined (statvfs) to say which; a create refused for its arguments
 * has a message of its own and is permanent.
 *
 * Data sources a file lacks are added with rrd_tune's "DS:" specifications (librrd 1.5 and
 * later: rrd_modify copies the file with the new data sources, unknown in every old row, and
 * renames the copy over it); which ones it lacks is read with rrd_info_r.
 *
 * A file librrd has just written whole (rrd_create_r2, rrd_tune's copy) is written out and
 * dropped from the page cache (kvl_rrd_uncache): librrd writes each archive's rows with one
 * write(), which the kernel keeps in large folios (ext4 since Linux 6.16, XFS before), and an
 * update touching a few bytes of such a folio through librrd's shared mapping has the whole
 * folio (up to 2 MiB) written again. Read back a page at a time (librrd maps the file with
 * MADV_RANDOM: no readahead), the file costs an update only the pages it touches.
 *
 * rrdcached mode: librrd's client (rrdc_*: Debian's librrd 1.7 exports no other) keeps one
 * connection for the process, each request under its lock, made on first use and again
 * after a failure. rrdcached's UPDATE takes no template, so the update is put in the file's order
 * of data sources, read from the file once (rrd_info_r) and remembered per file (forgotten
 * when kvl_rrd_add_ds changes the file). rrdcached checks the time of an update against the
 * file's when it takes it, with librrd's message (stale); a file it cannot open it refuses
 * ("No such file"); its other refusals are its own texts.
 */
#include "rrd_store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
/* the file's header structures (rrd_format.h, the on-disk format librrd writes): read for
 * a file's last update to the microsecond (file_last_update) */
#define RRD_EXPORT_DEPRECATED
#include <rrd.h>
#include <rrd_client.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* errno values of a file system that can recover, or of a process short of a resource. */
static const int transient_errnos[] = {EROFS,  ENOSPC, EDQUOT, EIO,    EACCES, EPERM,
                                       EAGAIN, EMFILE, ENFILE, ENOMEM, EBUSY,  EINTR};

/* librrd's messages of a write or of resources, without an errno's text. */
static const char *const transient_texts[] = {
    "rrd_write ",
    "seek rrd for live header",
    "seek error in rrd",
    "writing rrd",
    "Cannot create temporary file",
    "Cannot open output file",
    "Cannot chmod temporary file",
    "Cannot rename temporary file",
    "could not lock RRD",
    "out of memory",
    "malloc",
    "error message was lost",
    "Unable to connect to rrdcached",
    "while talking to rrdcached",
    "rrdcached is not connected",
    "malloc failed",
    "strdup failed",
    "stat failed",
};

/* msg: librrd's message ("" when it gave none: then saved_errno decides, unless
 * empty_fails_write says that a call without a message failed in writing). */
static bool is_transient(const char *msg, int saved_errno, bool empty_fails_write)
{
    if (msg[0] == '\0') {
        if (empty_fails_write) {
            return true;
        }
        for (size_t i = 0; i < sizeof(transient_errnos) / sizeof(transient_errnos[0]); i++) {
            if (saved_errno == transient_errnos[i]) {
                return true;
            }
        }
        return false;
    }
    for (size_t i = 0; i < sizeof(transient_errnos) / sizeof(transient_errnos[0]); i++) {
        if (strstr(msg, strerror(transient_errnos[i])) != NULL) {
            return true;
        }
    }
    for (size_t i = 0; i < sizeof(transient_texts) / sizeof(transient_texts[0]); i++) {
        if (strstr(msg, transient_texts[i]) != NULL) {
            return true;
        }
    }
    return false;
}

/* What the file system holding `path` (or its nearest existing folder) says about itself,
 * appended to out: read-only, full, out of inodes, or how much room it has. */
static void describe_fs(const char *path, char *out, size_t outlen)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    struct statvfs v;
    int rc = -1;
    for (char *slash = strrchr(dir, '/'); slash != NULL; slash = strrchr(dir, '/')) {
        *slash = '\0';
        if (dir[0] == '\0') {
            snprintf(dir, sizeof(dir), "/");
        }
        if ((rc = statvfs(dir, &v)) == 0 || dir[1] == '\0') {
            break;
        }
    }
    size_t n = strlen(out);
    if (n >= outlen) {
        return;
    }
    if (rc != 0) {
        snprintf(out + n, outlen - n, " (its folder cannot be examined: %s)", strerror(errno));
    } else if (v.f_flag & ST_RDONLY) {
        snprintf(out + n, outlen - n, " (%s: read-only file system)", dir);
    } else if (v.f_files > 0 && v.f_favail == 0) {
        snprintf(out + n, outlen - n, " (%s: no inodes left)", dir);
    } else {
        unsigned long long kib = (unsigned long long)v.f_bavail * v.f_frsize / 1024;
        snprintf(out + n, outlen - n, " (%s: %s%llu KiB free)", dir,
                 v.f_bavail == 0 ? "no space left on device, " : "", kib);
    }
}

static kvl_rrd_result_t take_error(const char *path, int saved_errno, bool creating, char *err,
                                   size_t errlen)
{
    const char *msg = rrd_get_error();
    char text[512];
    snprintf(text, sizeof(text), "%s", msg != NULL ? msg : "");
    rrd_clear_error();
    if (strstr(text, "illegal attempt to update using time") != NULL) {
        snprintf(err, errlen, "%s", text);
        return KVL_RRD_STALE;
    }
    if (strstr(text, "could not lock") != NULL) {
        snprintf(err, errlen, "%s", text);
        return KVL_RRD_BUSY;
    }
    if ((strncmp(text, "opening '", 9) == 0 && strstr(text, strerror(ENOENT)) != NULL) ||
        (strncmp(text, "rrdcached@", 10) == 0 && strstr(text, ": No such file") != NULL)) {
        snprintf(err, errlen, "%s", text);
        return KVL_RRD_MISSING;
    }
    bool again = is_transient(text, saved_errno, creating);
    if (text[0] == '\0' && creating) {
        /* errno is the unlink of librrd's temporary file by now: not the reason */
        snprintf(err, errlen, "writing the file failed (librrd gives no reason)");
    } else if (text[0] == '\0') {
        snprintf(err, errlen, "librrd gave no reason%s%s", saved_errno != 0 ? "; errno: " : "",
                 saved_errno != 0 ? strerror(saved_errno) : "");
    } else {
        snprintf(err, errlen, "%s", text);
    }
    if (again) {
        describe_fs(path, err, errlen);
    }
    return again ? KVL_RRD_AGAIN : KVL_RRD_ERROR;
}

/* ---- rrdcached mode ---------------------------------------------------------------- */

static char *daemon_addr; /* set once before the pool runs; NULL: direct */
static bool remote_files; /* `rrdcached_files: remote`: no file here is ever touched */
static pthread_mutex_t order_lock = PTHREAD_MUTEX_INITIALIZER;

/* The files' orders of data sources ("a:b:c"), by path: chained, ORDER_BUCKETS heads. */
#define ORDER_BUCKETS 65536u
typedef struct ds_order {
    struct ds_order *next;
    uint64_t hash;
    char *path;
    char *names;
    double last; /* remote: the file's last update when first asked (whole seconds) */
} ds_order_t;
static ds_order_t **orders; /* under order_lock */

int kvl_rrd_use_daemon(const char *addr)
{
    free(daemon_addr);
    daemon_addr = NULL;
    if (addr == NULL || addr[0] == '\0') {
        return 0;
    }
    daemon_addr = strdup(addr);
    return daemon_addr != NULL ? 0 : KVL_RRD_ERROR;
}

const char *kvl_rrd_daemon(void)
{
    return daemon_addr;
}

void kvl_rrd_set_remote(bool remote)
{
    remote_files = remote;
}

bool kvl_rrd_remote(void)
{
    return daemon_addr != NULL && remote_files;
}

/* The connection to rrdcached, made when there is none (a no-op otherwise). false with
 * err set: a failure that can pass. */
static bool connected(char *err, size_t errlen)
{
    rrd_clear_error();
    if (rrdc_connect(daemon_addr) != 0) {
        const char *msg = rrd_get_error();
        snprintf(err, errlen, "rrdcached at %s: %s", daemon_addr,
                 msg != NULL && msg[0] != '\0' ? msg : "Unable to connect to rrdcached");
        rrd_clear_error();
        return false;
    }
    return true;
}

/* The result of a client call that failed (rc != 0): stale, missing, again or error. Only
 * rrdcached's own answers carry its name ("rrdcached@<address>: ..."); anything else is the
 * connection (librrd's client has closed it: the next call connects again). */
static kvl_rrd_result_t client_error(const char *path, int rc, char *err, size_t errlen)
{
    const char *msg = rrd_get_error();
    if (msg != NULL && strncmp(msg, "rrdcached@", 10) == 0) {
        return take_error(path, 0, false, err, errlen);
    }
    char text[512];
    snprintf(text, sizeof(text), "%s", msg != NULL ? msg : "");
    rrd_clear_error();
    snprintf(err, errlen, "rrdcached at %s: %s", daemon_addr,
             text[0] != '\0' ? text
             : rc > 0        ? strerror(rc)
                             : "rrdcached is not connected");
    return rc == ENOBUFS ? KVL_RRD_ERROR : KVL_RRD_AGAIN;
}

static uint64_t hash_of(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        h = (h ^ *p) * 1099511628211ull;
    }
    return h;
}

/* What the file's header says (librrd's own structures, as it writes them): its data
 * sources' names in order ("a:b:c", into names when not NULL) and its last update with its
 * microseconds (the live head after the data sources' and archives' definitions; format
 * 0003 has the microseconds). Plain reads: librrd's readers (rrd_info, rrd_fetch) take the
 * file's lock, and rrdcached, finding it taken when it writes, drops what it held of the
 * file. False when it cannot be read. */
static bool read_head(const char *path, char *names, size_t nameslen, double *last)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    stat_head_t sh;
    live_head_t lh;
    bool ok = pread(fd, &sh, sizeof(sh), 0) == (ssize_t)sizeof(sh) &&
              memcmp(sh.cookie, RRD_COOKIE, 4) == 0 && sh.ds_cnt > 0 && sh.ds_cnt < 4096 &&
              sh.rra_cnt < 4096;
    for (unsigned long i = 0; ok && names != NULL && i < sh.ds_cnt; i++) {
        ds_def_t d;
        size_t len = strlen(names);
        ok = pread(fd, &d, sizeof(d), (off_t)(sizeof(sh) + i * sizeof(d))) == (ssize_t)sizeof(d);
        d.ds_nam[DS_NAM_SIZE - 1] = '\0';
        int w = ok ? snprintf(names + len, nameslen - len, "%s%s", i > 0 ? ":" : "", d.ds_nam) : -1;
        ok = ok && w > 0 && (size_t)w < nameslen - len;
    }
    if (ok) {
        off_t off =
            (off_t)(sizeof(sh) + sh.ds_cnt * sizeof(ds_def_t) + sh.rra_cnt * sizeof(rra_def_t));
        bool usec = strncmp(sh.version, "0003", 4) >= 0;
        size_t want = usec ? sizeof(lh) : sizeof(lh.last_up);
        ok = pread(fd, &lh, want, off) == (ssize_t)want;
        *last = ok ? (double)lh.last_up + (usec ? (double)lh.last_up_usec / 1e6 : 0.0) : 0.0;
    }
    close(fd);
    return ok;
}

static void order_forget(const char *path)
{
    uint64_t h = hash_of(path);
    pthread_mutex_lock(&order_lock);
    for (ds_order_t **p = orders != NULL ? &orders[h % ORDER_BUCKETS] : NULL; p != NULL && *p;
         p = &(*p)->next) {
        if ((*p)->hash == h && strcmp((*p)->path, path) == 0) {
            ds_order_t *o = *p;
            *p = o->next;
            free(o->path);
            free(o->names);
            free(o);
            break;
        }
    }
    pthread_mutex_unlock(&order_lock);
}

/* Remote mode: the file's INFO from rrdcached into *out (rrd_info_free it). KVL_RRD_OK, or
 * again (not connected), missing, error. */
static kvl_rrd_result_t remote_info(const char *path, rrd_info_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!connected(err, errlen)) {
        return KVL_RRD_AGAIN;
    }
    rrd_clear_error();
    *out = rrdc_info(path);
    return *out != NULL ? KVL_RRD_OK : client_error(path, -1, err, errlen);
}

/* Remote mode: the file's data sources in order ("a:b:c") and its last update (whole
 * seconds), as rrdcached reads them (INFO). KVL_RRD_OK, or missing, again, error. */
static kvl_rrd_result_t remote_head(const char *path, char *names, size_t nameslen, double *last,
                                    char *err, size_t errlen)
{
    rrd_info_t *info;
    kvl_rrd_result_t irc = remote_info(path, &info, err, errlen);
    if (irc != KVL_RRD_OK) {
        return irc;
    }
    /* "ds[<name>].index" gives each data source's place */
    const char *by_index[256] = {0};
    size_t n = 0;
    *last = -1.0;
    for (const rrd_info_t *i = info; i != NULL; i = i->next) {
        size_t kl = strlen(i->key);
        if (strcmp(i->key, "last_update") == 0 && i->type == RD_I_CNT) {
            *last = (double)i->value.u_cnt;
        } else if (kl > 9 && strncmp(i->key, "ds[", 3) == 0 &&
                   strcmp(i->key + kl - 7, "].index") == 0 && i->type == RD_I_CNT &&
                   i->value.u_cnt < 256 && by_index[i->value.u_cnt] == NULL) {
            by_index[i->value.u_cnt] = i->key + 3;
            n++;
        }
    }
    names[0] = '\0';
    size_t len = 0;
    bool ok = n > 0 && *last >= 0.0;
    for (size_t k = 0; ok && k < n; k++) {
        ok = by_index[k] != NULL;
        size_t nl = ok ? strcspn(by_index[k], "]") : 0;
        int w = ok ? snprintf(names + len, nameslen - len, "%s%.*s", k > 0 ? ":" : "", (int)nl,
                              by_index[k])
                   : -1;
        ok = ok && w > 0 && (size_t)w < nameslen - len;
        len += ok ? (size_t)w : 0;
    }
    rrd_info_free(info);
    if (!ok) {
        snprintf(err, errlen,
                 "%s: rrdcached's INFO of the file names no data sources or no last "
                 "update",
                 path);
        return KVL_RRD_ERROR;
    }
    return KVL_RRD_OK;
}

/* The file's data sources in order, "a:b:c", into out, and its last update when first
 * asked (*last: used in remote mode only; local mode reads the header at every update).
 * KVL_RRD_OK, or the failure of reading the file (missing, again, error). */
static kvl_rrd_result_t order_of(const char *path, char *out, size_t outlen, double *last,
                                 char *err, size_t errlen)
{
    uint64_t h = hash_of(path);
    pthread_mutex_lock(&order_lock);
    for (ds_order_t *o = orders != NULL ? orders[h % ORDER_BUCKETS] : NULL; o != NULL;
         o = o->next) {
        if (o->hash == h && strcmp(o->path, path) == 0) {
            snprintf(out, outlen, "%s", o->names);
            *last = o->last;
            pthread_mutex_unlock(&order_lock);
            return KVL_RRD_OK;
        }
    }
    pthread_mutex_unlock(&order_lock);
    out[0] = '\0';
    errno = 0;
    *last = -1.0;
    if (kvl_rrd_remote()) {
        kvl_rrd_result_t rc = remote_head(path, out, outlen, last, err, errlen);
        if (rc != KVL_RRD_OK) {
            return rc;
        }
    } else if (!read_head(path, out, outlen, last)) {
        int e = errno;
        struct stat st;
        if (stat(path, &st) != 0 && errno == ENOENT) {
            snprintf(err, errlen, "opening '%s': %s", path, strerror(ENOENT));
            return KVL_RRD_MISSING;
        }
        snprintf(err, errlen, "%s: cannot read the file's data sources%s%s", path,
                 e != 0 ? ": " : "", e != 0 ? strerror(e) : "");
        bool again = e != 0 && is_transient("", e, false);
        if (again) {
            describe_fs(path, err, errlen);
        }
        return again ? KVL_RRD_AGAIN : KVL_RRD_ERROR;
    }
    ds_order_t *o = calloc(1, sizeof(*o));
    pthread_mutex_lock(&order_lock);
    if (orders == NULL) {
        orders = calloc(ORDER_BUCKETS, sizeof(*orders));
    }
    if (o != NULL && orders != NULL && (o->path = strdup(path)) != NULL &&
        (o->names = strdup(out)) != NULL) {
        o->hash = h;
        o->last = *last;
        o->next = orders[h % ORDER_BUCKETS];
        orders[h % ORDER_BUCKETS] = o;
        o = NULL;
    }
    pthread_mutex_unlock(&order_lock);
    if (o != NULL) {
        free(o->path);
        free(o);
    }
    return KVL_RRD_OK;
}

/* The n-th ':'-separated field of s (its length in *len), or NULL. */
static const char *field(const char *s, size_t n, size_t *len)
{
    for (size_t i = 0; i < n && s != NULL; i++) {
        s = strchr(s, ':');
        s = s != NULL ? s + 1 : NULL;
    }
    if (s != NULL) {
        const char *e = strchr(s, ':');
        *len = e != NULL ? (size_t)(e - s) : strlen(s);
    }
    return s;
}

/* "time:v1:v2" for the template's names into the file's order (U for the others). */
static kvl_rrd_result_t reorder(const char *order, const char *tmpl, const char *update, char *out,
                                size_t outlen, char *err, size_t errlen)
{
    size_t tl = 0;
    const char *t = field(update, 0, &tl);
    int w = snprintf(out, outlen, "%.*s", (int)tl, t);
    size_t len = w > 0 ? (size_t)w : 0;
    size_t n_t = 1;
    for (const char *p = tmpl; *p != '\0'; p++) {
        n_t += *p == ':';
    }
    /* every name of the template must be one of the file's */
    for (size_t k = 0; k < n_t; k++) {
        size_t nl = 0, ol = 0;
        const char *name = field(tmpl, k, &nl);
        bool found = false;
        for (size_t i = 0; !found; i++) {
            const char *o = field(order, i, &ol);
            if (o == NULL) {
                break;
            }
            found = ol == nl && strncmp(o, name, nl) == 0;
        }
        if (!found) {
            snprintf(err, errlen, "unknown DS name '%.*s'", (int)nl, name);
            return KVL_RRD_ERROR;
        }
    }
    for (size_t i = 0;; i++) {
        size_t ol = 0, nl = 0, vl = 1;
        const char *o = field(order, i, &ol);
        if (o == NULL) {
            break;
        }
        const char *v = "U";
        for (size_t k = 0; k < n_t; k++) {
            const char *name = field(tmpl, k, &nl);
            if (nl == ol && strncmp(name, o, ol) == 0) {
                v = field(update, k + 1, &vl);
                if (v == NULL) {
                    snprintf(err, errlen, "expected %zu values in the update", n_t);
                    return KVL_RRD_ERROR;
                }
                break;
            }
        }
        w = snprintf(out + len, outlen - len, ":%.*s", (int)vl, v);
        if (w < 0 || (size_t)w >= outlen - len) {
            snprintf(err, errlen, "update too long for rrdcached");
            return KVL_RRD_ERROR;
        }
        len += (size_t)w;
    }
    return KVL_RRD_OK;
}

static kvl_rrd_result_t daemon_update(const char *path, const char *tmpl, const char *update,
                                      char *sent, size_t sentlen, char *err, size_t errlen)
{
    /* rrdcached checks an update's time against what it holds of the file, or else against
     * the file's last update in whole seconds; librrd, when rrdcached writes, to the
     * microsecond, and then drops every update it held for the file with the one it refuses.
     * So an update not newer than the file's (a batch replayed) is refused here. */
    double last, t = strtod(update, NULL);
    char order[2048];
    if (kvl_rrd_remote()) {
        /* Remote: the file's last update as INFO gave it when first asked, in whole seconds;
         * an update in that second may be older than the file's (rrdcached would take it and
         * its write fail), so it is refused. Past that, rrdcached compares with what it
         * took. */
        kvl_rrd_result_t rc = order_of(path, order, sizeof(order), &last, err, errlen);
        if (rc != KVL_RRD_OK) {
            return rc;
        }
        if (t < last + 1.0) {
            snprintf(err, errlen,
                     "illegal attempt to update using time %.6f when last update time is %.0f "
                     "(in the file, whole seconds)",
                     t, last);
            return KVL_RRD_STALE;
        }
    }
    /* (librrd keeps whole microseconds, cut from a float product of the time it parsed,
     * and a double near 1.8e9 s resolves 0.24 us: our times are in milliseconds, so within
     * half of one is the same time) */
    else if (read_head(path, NULL, 0, &last) && t < last + 0.0005) {
        snprintf(err, errlen,
                 "illegal attempt to update using time %.6f when last update time is %.6f "
                 "(in the file)",
                 t, last);
        return KVL_RRD_STALE;
    }
    char line[RRD_CMD_MAX];
    if (tmpl != NULL) {
        kvl_rrd_result_t rc = order_of(path, order, sizeof(order), &last, err, errlen);
        if (rc == KVL_RRD_OK) {
            rc = reorder(order, tmpl, update, line, sizeof(line), err, errlen);
        }
        if (rc != KVL_RRD_OK) {
            return rc;
        }
    } else {
        snprintf(line, sizeof(line), "%s", update);
    }
    if (!connected(err, errlen)) {
        return KVL_RRD_AGAIN;
    }
    const char *values[1] = {line};
    rrd_clear_error();
    int rc = rrdc_update(path, 1, values);
    if (rc != 0) {
        return client_error(path, rc, err, errlen);
    }
    if (sent != NULL) {
        snprintf(sent, sentlen, "%s", line);
    }
    return KVL_RRD_OK;
}

kvl_rrd_result_t kvl_rrd_flush(const char *path, char *err, size_t errlen)
{
    if (daemon_addr == NULL) {
        return KVL_RRD_OK;
    }
    if (!connected(err, errlen)) {
        return KVL_RRD_AGAIN;
    }
    rrd_clear_error();
    int rc = rrdc_flush(path);
    return rc == 0 ? KVL_RRD_OK : client_error(path, rc, err, errlen);
}

kvl_rrd_result_t kvl_rrd_forget(const char *path, char *err, size_t errlen)
{
    if (daemon_addr == NULL) {
        return KVL_RRD_OK;
    }
    if (!connected(err, errlen)) {
        return KVL_RRD_AGAIN;
    }
    order_forget(path); /* read again at the next update (remote: rrdcached may have written) */
    rrd_clear_error();
    int rc = rrdc_forget(path);
    if (rc == 0) {
        return KVL_RRD_OK;
    }
    kvl_rrd_result_t r = client_error(path, rc, err, errlen);
    return r == KVL_RRD_AGAIN ? r : KVL_RRD_OK; /* it held nothing of the file */
}

void kvl_rrd_uncache(const char *path)
{
    if (kvl_rrd_remote()) {
        return; /* the file is on rrdcached's host */
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return;
    }
    /* Dirty pages and pages under writeback cannot be dropped: written and waited for first
     * (the data only: not a durability point). */
    if (sync_file_range(fd, 0, 0,
                        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                            SYNC_FILE_RANGE_WAIT_AFTER) == 0) {
        (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    }
    close(fd);
}

/* Remote mode: rrdcached creates the file (CREATE, not overwriting one that exists), with the
 * same definitions as librrd would here. */
static kvl_rrd_result_t remote_create(const char *path, uint32_t step, int64_t start, int argc,
                                      const char **argv, char *err, size_t errlen)
{
    if (!connected(err, errlen)) {
        return KVL_RRD_AGAIN;
    }
    rrd_clear_error();
    int rc = rrdc_create_r2(path, step, (time_t)start, 1, NULL, NULL, argc, argv);
    if (rc == 0) {
        return KVL_RRD_OK;
    }
    const char *msg = rrd_get_error();
    char text[512];
    snprintf(text, sizeof(text), "%s", msg != NULL ? msg : "");
    if (strncmp(text, "rrdcached@", 10) == 0 && strstr(text, "exists") != NULL) {
        rrd_clear_error();
        return KVL_RRD_OK; /* made before (a replay) or by someone else */
    }
    if (strstr(text, "rrdc_create: out of memory") != NULL) {
        rrd_clear_error(); /* librrd's client: the command does not fit its buffer */
        snprintf(err, errlen, "the archive's definition is too long for rrdcached's CREATE");
        return KVL_RRD_ERROR;
    }
    if (strstr(text, "recursively create") != NULL) {
        rrd_clear_error();
        snprintf(err, errlen, "rrdcached may not make the archive's folder (start it with -R): %s",
                 text);
        return KVL_RRD_AGAIN; /* a setting of rrdcached's: can pass once it is fixed */
    }
    kvl_rrd_result_t r = client_error(path, rc, err, errlen);
    return r == KVL_RRD_STALE || r == KVL_RRD_BUSY || r == KVL_RRD_MISSING ? KVL_RRD_ERROR : r;
}

kvl_rrd_result_t kvl_rrd_create(const char *path, uint32_t step, int64_t start,
                                const kvl_rrd_ds_t *ds, size_t n_ds, const kvl_rrd_rra_t *rra,
                                size_t n_rra, char *err, size_t errlen)
{
    size_t n = n_ds + n_rra;
    const char **argv = calloc(n, sizeof(*argv));
    char *text = calloc(n, 96);
    if (argv == NULL || text == NULL) {
        free(argv);
        free(text);
        snprintf(err, errlen, "out of memory");
        return KVL_RRD_ERROR;
    }
    size_t k = 0;
    for (size_t i = 0; i < n_ds; i++, k++) {
        char *t = text + k * 96;
        snprintf(t, 96, "DS:%s:%s:%u:%s:U", ds[i].name, ds[i].counter ? "DERIVE" : "GAUGE",
                 step * 2, ds[i].counter ? "0" : "U");
        argv[k] = t;
    }
    for (size_t i = 0; i < n_rra; i++, k++) {
        char *t = text + k * 96;
        snprintf(t, 96, "RRA:%s:0.5:%u:%u", rra[i].cf, rra[i].steps, rra[i].rows);
        argv[k] = t;
    }
    if (kvl_rrd_remote()) {
        kvl_rrd_result_t res = remote_create(path, step, start, (int)n, argv, err, errlen);
        free(argv);
        free(text);
        return res;
    }
    rrd_clear_error();
    errno = 0;
    /* no_overwrite: two writers racing to create the same file must not clobber it. */
    int rc = rrd_create_r2(path, step, (time_t)start, 1, NULL, NULL, (int)n, argv);
    int saved_errno = errno;
    kvl_rrd_result_t res = KVL_RRD_OK;
    if (rc == 0) {
        kvl_rrd_uncache(path);
    } else {
        const char *msg = rrd_get_error();
        bool exists = msg != NULL && strstr(msg, "exists") != NULL;
        res = take_error(path, saved_errno, true, err, errlen);
        if (exists) {
            res = KVL_RRD_OK; /* someone else made it first */
        } else if (res != KVL_RRD_AGAIN) {
            res = KVL_RRD_ERROR; /* its arguments refused */
        }
    }
    free(argv);
    free(text);
    return res;
}

kvl_rrd_result_t kvl_rrd_update(const char *path, const char *tmpl, const char *update, char *err,
                                size_t errlen)
{
    return kvl_rrd_update_sent(path, tmpl, update, NULL, 0, err, errlen);
}

kvl_rrd_result_t kvl_rrd_update_sent(const char *path, const char *tmpl, const char *update,
                                     char *sent, size_t sentlen, char *err, size_t errlen)
{
    if (daemon_addr != NULL) {
        return daemon_update(path, tmpl, update, sent, sentlen, err, errlen);
    }
    if (sent != NULL) {
        snprintf(sent, sentlen, "%s", update);
    }
    const char *argv[1] = {update};
    rrd_clear_error();
    errno = 0;
    if (rrd_update_r(path, tmpl, 1, argv) != 0) {
        return take_error(path, errno, false, err, errlen);
    }
    return KVL_RRD_OK;
}

/* Whether rrd_info's list names data source `name` ("ds[<name>].index"). */
static bool info_has_ds(const rrd_info_t *info, const char *name)
{
    size_t n = strlen(name);
    for (const rrd_info_t *i = info; i != NULL; i = i->next) {
        if (strncmp(i->key, "ds[", 3) == 0 && strncmp(i->key + 3, name, n) == 0 &&
            strcmp(i->key + 3 + n, "].index") == 0) {
            return true;
        }
    }
    return false;
}

/* What rrdcreate takes as a data source name: [a-zA-Z0-9_]{1,19} (rrd_tune would cut a
 * longer one short, adding a data source no update names). */
static bool ds_name_ok(const char *name)
{
    size_t n = strlen(name);
    return n >= 1 && n <= 19 &&
           strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == n;
}

/* Remote mode's kvl_rrd_add_ds: which data sources the file lacks, from rrdcached's INFO;
 * adding them needs rrd_tune on rrdcached's host, which its protocol has no command for. */
static kvl_rrd_result_t remote_missing(const char *path, const kvl_rrd_ds_t *ds, size_t n_ds,
                                       bool add, bool *missing, size_t *n_missing, char *err,
                                       size_t errlen)
{
    rrd_info_t *info;
    kvl_rrd_result_t irc = remote_info(path, &info, err, errlen);
    if (irc != KVL_RRD_OK) {
        return irc;
    }
    for (size_t i = 0; i < n_ds; i++) {
        missing[i] = !info_has_ds(info, ds[i].name);
        *n_missing += missing[i];
    }
    rrd_info_free(info);
    if (add && *n_missing > 0) {
        snprintf(err, errlen,
                 "data sources cannot be added to an archive on a remote rrdcached (no tune in "
                 "its protocol; run `rrdtool tune` on its host, or move the file aside there)");
        return KVL_RRD_ERROR;
    }
    return KVL_RRD_OK;
}

kvl_rrd_result_t kvl_rrd_add_ds(const char *path, const kvl_rrd_ds_t *ds, size_t n_ds, bool add,
                                bool *missing, size_t *n_missing, size_t *n_added, char *err,
                                size_t errlen)
{
    *n_missing = *n_added = 0;
    if (n_ds > 64) {
        snprintf(err, errlen, "too many data sources (%zu)", n_ds);
        return KVL_RRD_ERROR;
    }
    memset(missing, 0, n_ds * sizeof(*missing));
    if (kvl_rrd_remote()) {
        return remote_missing(path, ds, n_ds, add, missing, n_missing, err, errlen);
    }
    if (add && daemon_addr != NULL) {
        /* what rrdcached holds goes into the file before the file is replaced */
        kvl_rrd_result_t frc = kvl_rrd_flush(path, err, errlen);
        if (frc != KVL_RRD_OK) {
            return frc;
        }
    }
    rrd_clear_error();
    errno = 0;
    /* rrdcached mode: rrdcached reads it (rrd_info's lock would make its writes fail) */
    char cerr[256];
    rrd_info_t *info =
        daemon_addr != NULL && connected(cerr, sizeof(cerr)) ? rrdc_info(path) : NULL;
    if (info == NULL) {
        rrd_clear_error();
        errno = 0;
        info = rrd_info_r(path);
    }
    if (info == NULL) {
        return take_error(path, errno, false, err, errlen);
    }
    unsigned long step = 0;
    for (const rrd_info_t *i = info; i != NULL; i = i->next) {
        if (strcmp(i->key, "step") == 0 && i->type == RD_I_CNT) {
            step = i->value.u_cnt;
        }
    }
    for (size_t i = 0; i < n_ds; i++) {
        missing[i] = !info_has_ds(info, ds[i].name);
        *n_missing += missing[i];
    }
    rrd_info_free(info);
    if (step == 0) {
        snprintf(err, errlen, "rrd_info gives no step");
        return KVL_RRD_ERROR;
    }
    if (!add || *n_missing == 0) {
        return KVL_RRD_OK;
    }
    /* argv: "tune", the file, one "DS:..." per missing data source (rrd_tune wants them
     * writable). */
    char tune[] = "tune";
    char text[64][96];
    char *argv[64 + 2];
    char *file = strdup(path);
    if (file == NULL) {
        snprintf(err, errlen, "out of memory");
        return KVL_RRD_AGAIN;
    }
    int argc = 0;
    argv[argc++] = tune;
    argv[argc++] = file;
    for (size_t i = 0; i < n_ds; i++) {
        if (missing[i] && ds_name_ok(ds[i].name)) {
            snprintf(text[argc - 2], sizeof(text[0]), "DS:%s:%s:%lu:%s:U", ds[i].name,
                     ds[i].counter ? "DERIVE" : "GAUGE", step * 2, ds[i].counter ? "0" : "U");
            argv[argc] = text[argc - 2];
            argc++;
        }
    }
    kvl_rrd_result_t res = KVL_RRD_OK;
    rrd_clear_error();
    errno = 0;
    if (argc == 2) {
        snprintf(err, errlen, "no valid data source name among those the file lacks");
        res = KVL_RRD_ERROR;
    } else if (rrd_tune(argc, argv) != 0) {
        res = take_error(path, errno, false, err, errlen);
    } else {
        *n_added = (size_t)argc - 2;
        order_forget(path);
        kvl_rrd_uncache(path); /* a new file, written by librrd as a created one */
    }
    free(file);
    return res;
}

kvl_rrd_result_t kvl_rrd_fetch(const char *path, const char *cf, int64_t start, int64_t end,
                               uint32_t step, kvl_rrd_points_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    time_t s = (time_t)start, e = (time_t)end;
    unsigned long st = step, n_ds = 0;
    char **names = NULL;
    rrd_value_t *data = NULL;
    rrd_clear_error();
    errno = 0;
    /* rrdcached mode: rrdcached reads (its FETCH writes what it holds of the file first, and
     * its reader's lock does not stand in the way of its own writes, as ours would); when it
     * cannot be reached, the file as it is, read here (then it writes nothing meanwhile) */
    char ferr[256];
    int rc = -1;
    bool fetched = false;
    if (daemon_addr != NULL && connected(ferr, sizeof(ferr))) {
        rc = rrdc_fetch(path, cf, &s, &e, &st, &n_ds, &names, &data);
        const char *msg = rrd_get_error();
        fetched = rc == 0 || (msg != NULL && strncmp(msg, "rrdcached@", 10) == 0);
        if (rc != 0 && msg != NULL && strstr(msg, "No such file") != NULL) {
            snprintf(err, errlen, "%s", msg);
            rrd_clear_error();
            return KVL_RRD_MISSING;
        }
        if (!fetched) {
            s = (time_t)start, e = (time_t)end, st = step;
            rrd_clear_error();
        }
    } else if (kvl_rrd_remote()) {
        snprintf(err, errlen, "%s (the archives are on its host)", ferr);
        return KVL_RRD_ERROR;
    }
    if (!fetched && kvl_rrd_remote()) {
        snprintf(err, errlen, "rrdcached at %s could not be asked (the archives are on its host)",
                 daemon_addr);
        return KVL_RRD_ERROR;
    }
    if (!fetched) {
        errno = 0;
        rc = rrd_fetch_r(path, cf, &s, &e, &st, &n_ds, &names, &data);
    }
    if (rc != 0) {
        int saved = errno;
        const char *msg = rrd_get_error();
        snprintf(err, errlen, "%s", msg != NULL && msg[0] != '\0' ? msg : strerror(saved));
        rrd_clear_error();
        return saved == ENOENT ? KVL_RRD_MISSING : KVL_RRD_ERROR;
    }
    out->start = s;
    out->end = e;
    out->step = (uint32_t)st;
    out->n_ds = n_ds;
    out->n_rows = st > 0 && e > s ? (size_t)((e - s) / (time_t)st) : 0;
    out->ds_names = calloc(n_ds ? n_ds : 1, sizeof(char *));
    size_t cells = out->n_rows * n_ds;
    out->values = malloc((cells > 0 ? cells : 1) * sizeof(double));
    bool ok = out->ds_names != NULL && out->values != NULL;
    for (unsigned long i = 0; i < n_ds; i++) {
        if (ok && (out->ds_names[i] = strdup(names[i])) == NULL) {
            ok = false;
        }
        rrd_freemem(names[i]);
    }
    rrd_freemem(names);
    if (ok) {
        memcpy(out->values, data, cells * sizeof(double));
    }
    rrd_freemem(data);
    if (!ok) {
        kvl_rrd_points_free(out);
        snprintf(err, errlen, "out of memory");
        return KVL_RRD_ERROR;
    }
    return KVL_RRD_OK;
}

void kvl_rrd_points_free(kvl_rrd_points_t *p)
{
    if (p == NULL) {
        return;
    }
    for (size_t i = 0; p->ds_names != NULL && i < p->n_ds; i++) {
        free(p->ds_names[i]);
    }
    free(p->ds_names);
    free(p->values);
    memset(p, 0, sizeof(*p));
}
