/*
 * fileio.h — small file helpers the rooms that keep their own files share (the alert book,
 * the inventory, the topology's versions): a write that finishes or fails.
 */
#ifndef KVL_FILEIO_H
#define KVL_FILEIO_H

#include <stddef.h>

/* Writes all n bytes of p to fd (again after EINTR or a short write). Returns 0, or KVL_EIO
 * (errno says why) when a write fails or writes nothing. */
int kvl_write_all(int fd, const void *p, size_t n);

#endif
