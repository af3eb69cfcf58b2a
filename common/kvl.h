/*
 * kvl.h — small definitions every kaaval module shares: error codes and a few macros.
 *
 * Functions in kaaval return 0 (or a non-negative count) on success and a negative
 * KVL_E* code on failure. Codes from libuv (UV_E*) are negative errno values and may be
 * passed through unchanged; our own codes sit below -10000 so they never collide.
 *
 * Invariants (a state machine's transitions, a queue's order, a count that cannot go below
 * zero) are asserted with KVL_ASSERT, which stays in release builds: a broken invariant stops
 * the process with file, line, function and the condition on stderr, before it corrupts a
 * journal, a spool or an archive. Errors that input, peers or the system can cause are never
 * asserted: they are returned as KVL_E* codes.
 */
#ifndef KVL_H
#define KVL_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

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

#if defined(__GNUC__)
#define KVL_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define KVL_NORETURN_COLD __attribute__((noreturn, cold))
#else
#define KVL_UNLIKELY(x) (x)
#define KVL_NORETURN_COLD
#endif

/* Writes "kaaval: FILE:LINE: FUNC: assertion failed: COND" to stderr and aborts (a core dump
 * where the system keeps them). Called by KVL_ASSERT only. */
KVL_NORETURN_COLD static inline void kvl_assert_fail(const char *file, int line, const char *func,
                                                     const char *cond)
{
    fprintf(stderr, "kaaval: %s:%d: %s: assertion failed: %s\n", file, line, func, cond);
    fflush(stderr);
    abort();
}

/* KVL_ASSERT(cond): cond must hold; evaluated exactly once, in every build (one compare and a
 * predicted branch: cheap enough for the loop's hot paths). KVL_ASSERT_DEBUG(cond): the same
 * for checks too costly for release (a walk over a whole queue); compiled out, cond not
 * evaluated but still type-checked, when NDEBUG is defined (Release and RelWithDebInfo). */
#define KVL_ASSERT(cond)                                                                           \
    (KVL_UNLIKELY(!(cond)) ? kvl_assert_fail(__FILE__, __LINE__, __func__, #cond) : (void)0)
#ifdef NDEBUG
#define KVL_ASSERT_DEBUG(cond) ((void)sizeof(!(cond)))
#else
#define KVL_ASSERT_DEBUG(cond) KVL_ASSERT(cond)
#endif

#endif
