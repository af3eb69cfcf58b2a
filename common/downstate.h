/*
 * downstate.h — which of the agent's devices (or probe targets) are down, why and since when,
 * kept in a small file so that an agent restart neither raises a second down event for
 * something still down nor restarts its down time.
 *
 * The file (text, in the agent's spool folder) lists only what is down:
 *
 *   kaaval-downstate 1
 *   <since_ms> <reason> <name>          one line per entry; since_ms: Unix ms
 *   end <entries> <crc32c of every byte before this line, 8 hex digits>
 *
 * It is rewritten whole, atomically (a temporary file written, fsync'd and renamed over it,
 * the folder fsync'd), only after a change, at most once per KVL_DOWNSTATE_DELAY_MS (the
 * changes of one burst written together, on the loop: the file is small), and at
 * kvl_downstate_free when a change is still unwritten. A change in the last moments before a
 * crash can be lost: the device is then evented once more, as before this file existed.
 *
 * A file that cannot be read, does not parse, or whose count or checksum does not match is
 * ignored with one warning (everything starts unknown, as without a file) and replaced at the
 * next change; never a failure. A file of a newer format version (its first line
 * "kaaval-downstate N", N > KVL_DOWNSTATE_FORMAT_VERSION) is ignored likewise, its warning
 * saying so: the file only spares a repeated down event, so it is rebuilt. Names with a control
 * character are not kept. Runs on the loop thread only.
 */
#ifndef KVL_DOWNSTATE_H
#define KVL_DOWNSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define KVL_DOWNSTATE_FORMAT_VERSION 1u
#define KVL_DOWNSTATE_DELAY_MS 50
#define KVL_DOWNSTATE_MAX_BYTES (16u << 20) /* a larger file is not read */
#define KVL_DOWNSTATE_NAME_MAX 1000         /* longer names are not kept */

typedef struct kvl_downstate kvl_downstate_t;

/* Loads path (a missing file is an empty state; a damaged one is ignored with a warning
 * naming `what`, e.g. "device state"). Returns 0 and sets *out, or a negative code with a
 * sentence in err (out of memory; path too long). */
int kvl_downstate_new(uv_loop_t *loop, const char *path, const char *what, kvl_downstate_t **out,
                      char *err, size_t errlen);
/* Writes a pending change, then frees once its timer has closed (run the loop). NULL-safe. */
void kvl_downstate_free(kvl_downstate_t *s);

/* True and the stored reason and since when name is down. */
bool kvl_downstate_get(const kvl_downstate_t *s, const char *name, int *reason, int64_t *since_ms);
/* name is down for reason since since_ms (written soon when that is a change). */
void kvl_downstate_set(kvl_downstate_t *s, const char *name, int reason, int64_t since_ms);
/* name is not down (written soon when it was). */
void kvl_downstate_clear(kvl_downstate_t *s, const char *name);
/* Forgets every entry whose name is not among names[0..n) (devices or targets no longer
 * configured); written soon when any was forgotten. Returns how many were. */
size_t kvl_downstate_retain(kvl_downstate_t *s, const char *const *names, size_t n);
/* Entries held now. */
size_t kvl_downstate_count(const kvl_downstate_t *s);
/* Writes a pending change now. Returns 0 or a negative code (logged). */
int kvl_downstate_flush(kvl_downstate_t *s);

/* Pure, for tests and the fuzzer: parses a file's text. Returns the number of entries, each
 * given to cb, or -1 with a static reason in *why when the text is not a whole, intact file
 * (then cb may have been called for some entries: the caller discards them). */
int kvl_downstate_parse(const char *text, size_t len,
                        void (*cb)(void *arg, const char *name, size_t name_len, int reason,
                                   int64_t since_ms),
                        void *arg, const char **why);

#endif
