/*
 * store_move.c — an interface's archive that follows its interface's new name (store.h,
 * kvl_store_move): moves queued on the loop per agent, in the order asked, and run on the
 * thread pool by the store sink before the rows of that agent's next batch. Each move is
 * idempotent (the old file renamed only when the new name has none), so asking again after
 * a crash is harmless. The queue and the outcomes live on the loop; a worker only gets a
 * list taken off the queue and gives it back with each move's outcome.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvl.h"
#include "log.h"
#include "names.h"
#include "rrd_store.h"
#include "store.h"
#include "store_int.h"

typedef enum move_state {
    MOVE_DONE,     /* how holds the outcome */
    MOVE_AGAIN,    /* failed for now: asked again with the batch */
    MOVE_FAILED,   /* failed for good: logged, dropped */
    MOVE_NOT_TRIED /* after one that failed for now: kept, in order */
} move_state_t;

typedef struct store_move {
    struct store_move *next;
    char *agent, *site, *device, *from, *to; /* one block */
    move_state_t state;
    kvl_store_move_how_t how;
    char why[512];
} store_move_t;

struct store_moves {
    store_move_t *head; /* pending, oldest first */
    size_t n;
    kvl_store_moved_fn fn;
    void *ctx;
};

typedef struct move_run {
    uv_work_t work;
    kvl_store_t *store;
    store_move_t *list; /* the agent's moves, in order */
    store_moves_done_fn done;
    void *arg;
} move_run_t;

static store_moves_t *moves_of(kvl_store_t *s)
{
    store_moves_t **slot = store_moves_slot(s);
    if (*slot == NULL) {
        *slot = calloc(1, sizeof(**slot));
    }
    return *slot;
}

void store_moves_free(store_moves_t *m)
{
    if (m == NULL) {
        return;
    }
    for (store_move_t *v = m->head, *next; v != NULL; v = next) {
        next = v->next;
        free(v);
    }
    free(m);
}

void kvl_store_on_moved(kvl_store_t *s, kvl_store_moved_fn fn, void *ctx)
{
    store_moves_t *m = moves_of(s);
    if (m != NULL) {
        m->fn = fn;
        m->ctx = ctx;
    }
}

size_t kvl_store_moves_pending(const kvl_store_t *s)
{
    store_moves_t *const *slot = store_moves_slot((kvl_store_t *)s);
    return *slot != NULL ? (*slot)->n : 0;
}

int kvl_store_move(kvl_store_t *s, const char *agent, const char *site, const char *device,
                   const char *from, const char *to)
{
    const char *f[5] = {agent, site, device, from, to};
    size_t len[5], total = 0;
    for (int i = 0; i < 5; i++) {
        if (f[i] == NULL || (i != 1 && f[i][0] == '\0')) {
            return KVL_EINVAL;
        }
        len[i] = strlen(f[i]) + 1;
        total += len[i];
    }
    char a[4096], b[4096];
    if (strcmp(from, to) == 0 || kvl_name_file_len(from) > KVL_NAME_FILE_MAX ||
        kvl_name_file_len(to) > KVL_NAME_FILE_MAX ||
        kvl_store_path(store_data_dir(s), site, device, KVL_SCOPE_INTERFACE, from, a, sizeof(a)) !=
            0 ||
        kvl_store_path(store_data_dir(s), site, device, KVL_SCOPE_INTERFACE, to, b, sizeof(b)) !=
            0) {
        return KVL_EINVAL;
    }
    store_moves_t *m = moves_of(s);
    store_move_t *v = m != NULL ? calloc(1, sizeof(*v) + total) : NULL;
    if (v == NULL) {
        return KVL_ENOMEM;
    }
    char *p = (char *)(v + 1);
    char **dst[5] = {&v->agent, &v->site, &v->device, &v->from, &v->to};
    for (int i = 0; i < 5; i++) {
        memcpy(p, f[i], len[i]);
        *dst[i] = p;
        p += len[i];
    }
    store_move_t **tail = &m->head;
    while (*tail != NULL) {
        tail = &(*tail)->next;
    }
    *tail = v;
    m->n++;
    return 0;
}

/* ----------------------------------------------------------------- worker side --------- */

static bool can_pass(int e)
{
    return e == EROFS || e == ENOSPC || e == EIO || e == EDQUOT || e == EBUSY || e == ENOMEM ||
           e == EAGAIN || e == EINTR || e == ETXTBSY;
}

static void fail(store_move_t *v, int e, const char *what, const char *path)
{
    v->state = can_pass(e) ? MOVE_AGAIN : MOVE_FAILED;
    snprintf(v->why, sizeof(v->why), "%.300s: %s: %s", path, what, strerror(e));
}

static void sync_dir(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL) {
        return;
    }
    *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd); /* the rename is done; a failed sync only weakens it on power loss */
        close(fd);
    }
}

/* One move: old -> new only when new does not exist (see store.h). */
static void move_one(const char *data_dir, store_move_t *v)
{
    char from[4096], to[4096];
    if (kvl_store_path(data_dir, v->site, v->device, KVL_SCOPE_INTERFACE, v->from, from,
                       sizeof(from)) != 0 ||
        kvl_store_path(data_dir, v->site, v->device, KVL_SCOPE_INTERFACE, v->to, to, sizeof(to)) !=
            0) {
        v->state = MOVE_FAILED;
        snprintf(v->why, sizeof(v->why), "no archive path for %s or %s", v->from, v->to);
        return;
    }
    struct stat so, sn;
    bool have_old = lstat(from, &so) == 0;
    if (!have_old && errno != ENOENT) {
        fail(v, errno, "cannot look at the old name's archive", from);
        return;
    }
    bool have_new = lstat(to, &sn) == 0;
    if (!have_new && errno != ENOENT) {
        fail(v, errno, "cannot look at the new name's archive", to);
        return;
    }
    v->state = MOVE_DONE;
    if (!have_old) {
        v->how = KVL_STORE_NO_ARCHIVE;
        return;
    }
    if (have_new && (so.st_dev != sn.st_dev || so.st_ino != sn.st_ino)) {
        v->how = KVL_STORE_KEPT_BOTH;
        return;
    }
    /* rrdcached mode: what it holds of the old name goes into the file first (after the
     * move it would write to a name that is gone) */
    char ferr[512];
    if (kvl_rrd_flush(from, ferr, sizeof(ferr)) == KVL_RRD_AGAIN ||
        kvl_rrd_forget(from, ferr, sizeof(ferr)) == KVL_RRD_AGAIN) {
        v->state = MOVE_AGAIN;
        snprintf(v->why, sizeof(v->why),
                 "%.300s: rrdcached cannot write it before the move: %.150s", from, ferr);
        return;
    }
    if (have_new) { /* one file under both names: a link-then-unlink cut short by a crash */
        if (unlink(from) != 0 && errno != ENOENT) {
            fail(v, errno, "cannot remove the old name", from);
            return;
        }
    } else if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) != 0) {
        int e = errno;
        if (e == EEXIST) {
            v->how = KVL_STORE_KEPT_BOTH; /* the new name's file came meanwhile */
            return;
        }
        if (e != EINVAL && e != ENOSYS) {
            fail(v, e, "cannot move to the new name", from);
            return;
        }
        /* no RENAME_NOREPLACE here: link (refuses an existing name), then unlink */
        if (link(from, to) != 0) {
            if (errno == EEXIST) {
                v->how = KVL_STORE_KEPT_BOTH;
                return;
            }
            fail(v, errno, "cannot link to the new name", from);
            return;
        }
        if (unlink(from) != 0 && errno != ENOENT) {
            fail(v, errno, "cannot remove the old name", from);
            return;
        }
    }
    sync_dir(to);
    v->how = KVL_STORE_MOVED;
}

/* Remote rrdcached (kvl_rrd_remote): it has no rename, so the old name's archive stays and
 * the new name gets its own; said as both kept. */
static void remote_no_move(store_move_t *v)
{
    KVL_LOG_WARN("store", v->device,
                 "agent %s: archives on a remote rrdcached do not follow a renamed interface: "
                 "%s keeps its archive, %s starts a new one",
                 v->agent, v->from, v->to);
    v->state = MOVE_DONE;
    v->how = KVL_STORE_KEPT_BOTH;
}

static void on_move_work(uv_work_t *w)
{
    move_run_t *r = w->data;
    const char *dir = store_data_dir(r->store);
    bool stop = false;
    for (store_move_t *v = r->list; v != NULL; v = v->next) {
        if (stop) {
            v->state = MOVE_NOT_TRIED;
            continue;
        }
        if (kvl_rrd_remote()) {
            remote_no_move(v);
        } else {
            move_one(dir, v);
        }
        stop = v->state == MOVE_AGAIN;
    }
}

static void on_move_after(uv_work_t *w, int status)
{
    move_run_t *r = w->data;
    store_moves_t *m = *store_moves_slot(r->store);
    bool failed = false;
    char why[640] = "";
    store_move_t *back = NULL, **back_tail = &back;
    size_t n_back = 0;
    for (store_move_t *v = r->list, *next; v != NULL; v = next) {
        next = v->next;
        v->next = NULL;
        if (status == UV_ECANCELED) {
            v->state = MOVE_NOT_TRIED;
            snprintf(v->why, sizeof(v->why), "the move was cancelled");
        }
        if (v->state == MOVE_DONE) {
            KVL_LOG_DEBUG("store", v->device, "agent %s: archive of %s -> %s: %s", v->agent,
                          v->from, v->to,
                          v->how == KVL_STORE_MOVED       ? "moved"
                          : v->how == KVL_STORE_KEPT_BOTH ? "both kept"
                                                          : "none to move");
            if (m != NULL && m->fn != NULL) {
                m->fn(m->ctx, v->agent, v->device, v->from, v->to, v->how);
            }
            free(v);
        } else if (v->state == MOVE_FAILED) {
            KVL_LOG_ERROR("store", v->device,
                          "agent %s: the archive of interface %s cannot follow its new name %s: "
                          "%s (not retried)",
                          v->agent, v->from, v->to, v->why);
            free(v);
        } else { /* again, or not tried: back to the queue's head, in order */
            if (!failed && v->state == MOVE_AGAIN) {
                snprintf(why, sizeof(why), "%s", v->why);
            }
            failed = true;
            *back_tail = v;
            back_tail = &v->next;
            n_back++;
        }
    }
    KVL_ASSERT(back == NULL || m != NULL); /* the queue gave them, so it exists */
    if (back != NULL) {
        *back_tail = m->head;
        m->head = back;
        m->n += n_back;
    }
    store_moves_done_fn done = r->done;
    void *arg = r->arg;
    free(r);
    done(arg, failed, why);
}

int store_moves_run(kvl_store_t *s, const char *agent, store_moves_done_fn done, void *arg)
{
    store_moves_t *m = *store_moves_slot(s);
    if (m == NULL || m->head == NULL) {
        return 0;
    }
    store_move_t *list = NULL, **tail = &list;
    size_t n = 0;
    for (store_move_t **pp = &m->head; *pp != NULL;) {
        store_move_t *v = *pp;
        if (strcmp(v->agent, agent) == 0) {
            *pp = v->next;
            v->next = NULL;
            *tail = v;
            tail = &v->next;
            m->n--;
            n++;
        } else {
            pp = &v->next;
        }
    }
    if (list == NULL) {
        return 0;
    }
    move_run_t *r = calloc(1, sizeof(*r));
    int rc = r != NULL ? 0 : KVL_ENOMEM;
    if (r != NULL) {
        *r = (move_run_t){.store = s, .list = list, .done = done, .arg = arg};
        r->work.data = r;
        rc = uv_queue_work(store_loop(s), &r->work, on_move_work, on_move_after);
    }
    if (rc != 0) { /* back to the queue, in order */
        *tail = m->head;
        m->head = list;
        m->n += n;
        free(r);
        return rc < 0 ? rc : KVL_EIO;
    }
    return 1;
}
