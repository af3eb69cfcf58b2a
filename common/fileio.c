/*
 * fileio.c — small file helpers (fileio.h).
 */
#include "fileio.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
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

void kvl_path_parent(const char *path, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s", path);
    size_t n = strlen(out);
    while (n > 1 && out[n - 1] == '/') {
        out[--n] = '\0';
    }
    char *slash = strrchr(out, '/');
    if (slash == NULL) {
        snprintf(out, outlen, ".");
    } else if (slash == out) {
        out[1] = '\0';
    } else {
        *slash = '\0';
    }
}

int kvl_dir_usable(const char *dir, char *why, size_t whylen)
{
    struct stat st;
    if (dir == NULL || dir[0] == '\0') {
        snprintf(why, whylen, "no folder given");
        return KVL_EINVAL;
    }
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            snprintf(why, whylen, "%s is not a folder", dir);
            return KVL_EINVAL;
        }
        if (access(dir, W_OK | X_OK) != 0) {
            snprintf(why, whylen, "%s is not writable by this user (%s)", dir, strerror(errno));
            return KVL_EINVAL;
        }
        return 0;
    }
    if (errno != ENOENT) {
        snprintf(why, whylen, "%s: %s", dir, strerror(errno));
        return KVL_EINVAL;
    }
    char parent[4096];
    kvl_path_parent(dir, parent, sizeof(parent));
    if (stat(parent, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(why, whylen,
                 "%s does not exist and cannot be made: its parent %s is not a folder "
                 "(make it first)",
                 dir, parent);
        return KVL_EINVAL;
    }
    if (access(parent, W_OK | X_OK) != 0) {
        snprintf(why, whylen,
                 "%s does not exist and cannot be made: %s is not writable by this user", dir,
                 parent);
        return KVL_EINVAL;
    }
    return 0;
}
