/*
 * fileio.c — small file helpers (fileio.h).
 */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
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

size_t kvl_read_all(int fd, void *p, size_t n)
{
    char *c = p;
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, c + got, n - got);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            break;
        }
        got += (size_t)r;
    }
    return got;
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

int kvl_file_replace(const char *path, const void *p, size_t n, unsigned mode)
{
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 5);
    if (tmp == NULL) {
        return KVL_ENOMEM;
    }
    memcpy(tmp, path, pl);
    memcpy(tmp + pl, ".tmp", 5);
    int rc = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)mode);
    if (fd < 0) {
        rc = -errno;
    } else {
        if (kvl_write_all(fd, p, n) != 0 || fsync(fd) != 0) {
            rc = errno != 0 ? -errno : KVL_EIO;
        }
        if (close(fd) != 0 && rc == 0) {
            rc = -errno;
        }
        if (rc == 0 && rename(tmp, path) != 0) {
            rc = -errno;
        }
        if (rc != 0) {
            unlink(tmp);
        }
    }
    free(tmp);
    if (rc == 0) {
        /* The rename itself on disk: fsync the folder. */
        char dir[4096];
        kvl_path_parent(path, dir, sizeof(dir));
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    return rc;
}

int kvl_format_check(const char *path, uint32_t found, uint32_t known, const char *program,
                     const char *loss, char *why, size_t whylen)
{
    if (found <= known) {
        return 0;
    }
    snprintf(why, whylen,
             "%s: written by a newer kaaval (format %" PRIu32 "; this %s reads up to %" PRIu32
             "): run the newer %s, or move %s aside to start afresh (%s)",
             path, found, program, known, program, path, loss);
    return KVL_EPROTO;
}

int kvl_format_text_header(const char *line, size_t n, const char *name, uint32_t *version)
{
    size_t nl = strlen(name);
    if (n < nl + 2 || memcmp(line, name, nl) != 0 || line[nl] != ' ' || n - nl - 1 > 10) {
        return -1;
    }
    uint64_t v = 0;
    for (size_t i = nl + 1; i < n; i++) {
        if (line[i] < '0' || line[i] > '9') {
            return -1;
        }
        v = v * 10 + (uint64_t)(line[i] - '0');
    }
    if (v == 0 || v > UINT32_MAX) {
        return -1;
    }
    *version = (uint32_t)v;
    return 0;
}
