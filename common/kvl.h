/*
 * kvl.h — small definitions every kaaval module shares: error codes and a few macros.
 *
 * Functions in kaaval return 0 (or a non-negative count) on success and a negative
 * KVL_E* code on failure. Codes from libuv (UV_E*) are negative errno values and may be
 * passed through unchanged; our own codes sit below -10000 so they never collide.
 */
#ifndef KVL_H
#define KVL_H

#include <stddef.h>

enum {
    KVL_OK = 0,
    KVL_ENOMEM = -10001,           /* allocation failed */
    KVL_EINVAL = -10002,           /* bad argument or value */
    KVL_EFRAME_TOO_BIG = -10003,   /* frame length above the maximum */
    KVL_EFRAME_EMPTY = -10004,     /* frame of length zero */
    KVL_EFRAME_TRUNCATED = -10005, /* stream ended inside a frame */
    KVL_EDECODE = -10006,          /* payload is not a valid message */
    KVL_EPROTO = -10007,           /* valid message, wrong place or inconsistent */
    KVL_ECONFIG = -10008,          /* configuration error (message already formatted) */
    KVL_EIO = -10009,              /* file or archive error */
    KVL_ETLS = -10010,             /* TLS failure (the session's own text says which) */
    KVL_ECLOSED = -10011,          /* the peer ended the TLS session (close_notify) */
};

/* Returns a static description of a KVL_E* code (or of a libuv code). */
const char *kvl_strerror(int code);

#define KVL_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define KVL_UNUSED(x) ((void)(x))

#if defined(__GNUC__)
#define KVL_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define KVL_PRINTF(fmt, args)
#endif

#endif
