/*
 * fileio.h — small file helpers the rooms that keep their own files share (the alert book,
 * the inventory, the topology's versions): a write that finishes or fails; whether a folder
 * can hold a daemon's files.
 */
#ifndef KVL_FILEIO_H
#define KVL_FILEIO_H

#include <stddef.h>

/* Writes all n bytes of p to fd (again after EINTR or a short write). Returns 0, or KVL_EIO
 * (errno says why) when a write fails or writes nothing. */
int kvl_write_all(int fd, const void *p, size_t n);

/* The folder path is in ("a/b/c" -> "a/b", "c" -> ".", "/c" -> "/"; trailing '/' ignored),
 * into out. */
void kvl_path_parent(const char *path, char *out, size_t outlen);

/* Whether a daemon could keep its files in dir: the folder exists and is writable, or, not
 * there yet, its parent is (the daemon makes it). Returns 0, or KVL_EINVAL with a sentence in
 * why (what, and what to do). For --check-config: what start-up would refuse. */
int kvl_dir_usable(const char *dir, char *why, size_t whylen);

#endif
