/*
 * fileio.c — small file helpers (fileio.h).
 */
#include "fileio.h"

#include <errno.h>
#include <unistd.h>

#include "kvl.h"

int kvl_write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return KVL_EIO;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}
