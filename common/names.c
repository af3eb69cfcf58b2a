/*
 * names.c — file-safe names (see names.h).
 */
#include "names.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "kvl.h"

static bool keep(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
}

int kvl_name_file_safe(const char *name, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    if (outlen == 0) {
        return KVL_EINVAL;
    }
    if (name[0] == '\0') {
        if (outlen < 4) {
            return KVL_EINVAL;
        }
        memcpy(out, "%00", 4);
        return 3;
    }
    for (size_t i = 0; name[i] != '\0'; i++) {
        unsigned char c = (unsigned char)name[i];
        if (keep(c) && !(i == 0 && (c == '.' || c == '_'))) {
            if (o + 1 >= outlen) {
                return KVL_EINVAL;
            }
            out[o++] = (char)c;
        } else {
            if (o + 3 >= outlen) {
                return KVL_EINVAL;
            }
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return (int)o;
}

size_t kvl_name_file_len(const char *name)
{
    if (name[0] == '\0') {
        return 3;
    }
    size_t n = 0;
    for (size_t i = 0; name[i] != '\0'; i++) {
        unsigned char c = (unsigned char)name[i];
        n += keep(c) && !(i == 0 && (c == '.' || c == '_')) ? 1 : 3;
    }
    return n;
}

int kvl_name_check(const char *what, const char *name, char *why, size_t whylen)
{
    size_t n = kvl_name_file_len(name);
    if (n <= KVL_NAME_FILE_MAX) {
        return 0;
    }
    if (why != NULL && whylen > 0) {
        snprintf(why, whylen,
                 "%s name of %zu bytes is too long for an archive file name (%zu bytes as a "
                 "file name, at most %d)",
                 what, strlen(name), n, KVL_NAME_FILE_MAX);
    }
    return KVL_EINVAL;
}
