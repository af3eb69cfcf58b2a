/*
 * store_int.h — what the store's files share besides store.h: the pending archive moves
 * (store_move.c) that the store sink (store_sink.c) runs before a batch's rows, and the few
 * fields of the store they need (store.c keeps the struct).
 */
#ifndef KVL_STORE_INT_H
#define KVL_STORE_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct kvl_store kvl_store_t; /* store.h */
typedef struct store_moves store_moves_t;

/* store.c: the store's slot for its moves (NULL until the first is asked), its loop, its
 * data folder. */
store_moves_t **store_moves_slot(kvl_store_t *s);
uv_loop_t *store_loop(const kvl_store_t *s);
const char *store_data_dir(const kvl_store_t *s);

/* store_move.c */
void store_moves_free(store_moves_t *m);
/* After the agent's moves ran: failed set when one could not be done for now (why says
 * what), and the batch must be asked again. On the loop. */
typedef void (*store_moves_done_fn)(void *arg, bool failed, const char *why);
/* Runs the agent's pending moves on the thread pool, then calls done. Returns 1 (done will
 * be called), 0 (no moves pending for the agent: done is not called) or a negative code
 * (done is not called; the moves stay pending). */
int store_moves_run(kvl_store_t *s, const char *agent, store_moves_done_fn done, void *arg);

/* store_redo.c: rrdcached mode's updates not yet written by rrdcached, and its restarts
 * (thread-safe; jobs call enter and leave around their rows on the pool). */
typedef struct store_redo store_redo_t;
typedef struct kvl_store_rrdcached_stats kvl_store_rrdcached_stats_t; /* store.h */
/* NULL when out of memory. */
store_redo_t *store_redo_new(const char *addr);
void store_redo_free(store_redo_t *r);
/* Before a job sends anything: recovers first when rrdcached went away (or was never
 * reached). 0 (call store_redo_leave after the job), or KVL_RRD_AGAIN with why (logged once
 * until rrdcached is reached again; do not call leave). */
int store_redo_enter(store_redo_t *r, char *why, size_t whylen);
void store_redo_leave(store_redo_t *r);
/* Remembers an update rrdcached took (between enter and leave). 0 or KVL_ENOMEM. */
int store_redo_add(store_redo_t *r, const char *path, const char *sent);
/* Has rrdcached write every file with remembered updates, and forgets those. On the pool.
 * True when every file was written (then every update remembered before the call is in its
 * file); false when rrdcached went away or could not be reached meanwhile. */
bool store_redo_checkpoint(store_redo_t *r);
void store_redo_stats(store_redo_t *r, kvl_store_rrdcached_stats_t *out);

#endif
