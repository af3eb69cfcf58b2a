/*
 * fileio.h — small file helpers the rooms that keep their own files share (the alert book,
 * the inventory, the topology's versions, the down-state files, the agents' state, the series
 * registry): a write that finishes or fails; a file replaced whole and atomically; whether a
 * folder can hold a daemon's files; the format versions those files carry (ARCHITECTURE.md,
 * "Files on disk", lists them).
 */
#ifndef KVL_FILEIO_H
#define KVL_FILEIO_H

#include <stddef.h>
#include <stdint.h>

/* Writes all n bytes of p to fd (again after EINTR or a short write). Returns 0, or KVL_EIO
 * (errno says why) when a write fails or writes nothing. */
int kvl_write_all(int fd, const void *p, size_t n);

/* Reads from fd into p until n bytes, the end of the file or an error (again after EINTR).
 * Returns the bytes read: fewer than n at the end of the file or on an error (errno says). */
size_t kvl_read_all(int fd, void *p, size_t n);

/* The folder path is in ("a/b/c" -> "a/b", "c" -> ".", "/c" -> "/"; trailing '/' ignored),
 * into out. */
void kvl_path_parent(const char *path, char *out, size_t outlen);

/* Whether a daemon could keep its files in dir: the folder exists and is writable, or, not
 * there yet, its parent is (the daemon makes it). Returns 0, or KVL_EINVAL with a sentence in
 * why (what, and what to do). For --check-config: what start-up would refuse. */
int kvl_dir_usable(const char *dir, char *why, size_t whylen);

/* Replaces path with the n bytes of p: written to "<path>.tmp" (mode), fsync'd, renamed over
 * path, then the folder fsync'd. Returns 0, or a negative errno (the temporary file removed;
 * path untouched). */
int kvl_file_replace(const char *path, const void *p, size_t n, unsigned mode);

/* --- format versions ---------------------------------------------------------------------- */

/* Checks a file's format version against the newest this program reads. A file without a
 * version (written before versions were kept) is given found = 0 and is read as version 1.
 * Returns 0 when found <= known; otherwise KVL_EPROTO with one sentence in why saying what
 * to do:
 *   "<path>: written by a newer kaaval (format F; this <program> reads up to K): run the
 *    newer <program>, or move <path> aside to start afresh (<loss>)"
 * program: "kaaval-agent" or "kaaval-collector"; loss: what moving it aside costs. */
int kvl_format_check(const char *path, uint32_t found, uint32_t known, const char *program,
                     const char *loss, char *why, size_t whylen);

/* Reads the version of a text header line "<name> <version>" (n bytes at line, without the
 * newline; name e.g. "kaaval-downstate"). Returns 0 with *version (1 .. 2^32-1), or -1 when
 * the line is not such a header. */
int kvl_format_text_header(const char *line, size_t n, const char *name, uint32_t *version);

#endif
