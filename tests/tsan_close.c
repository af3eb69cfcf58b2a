/* tsan_close.c - linked into every program of a -DKVL_TSAN=ON build: shows ThreadSanitizer
 * the descriptors libuv closes.
 *
 * Debian's libuv (1.44, not built with TSan) closes every descriptor with
 * syscall(SYS_close, fd), which TSan does not intercept. TSan then still believes a socket
 * the loop closed is open, and when another thread gets the same number back from the
 * kernel (the journal's writer opening a segment index, librrd writing an archive) it
 * reports a race on the descriptor between the loop's last use of the socket and the
 * thread's use of its file. This program's own syscall() comes first in symbol lookup for
 * libuv, tells TSan of the close (its public syscall hook: the descriptor's history is
 * reset there) and makes the real call. */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdarg.h>
#include <sys/syscall.h>

void __sanitizer_syscall_pre_impl_close(long fd);
long syscall(long number, ...);

typedef long syscall_fn(long, ...);

long syscall(long number, ...)
{
    static syscall_fn *real;
    syscall_fn *fn = __atomic_load_n(&real, __ATOMIC_ACQUIRE);
    if (fn == 0) {
        fn = (syscall_fn *)dlsym(RTLD_NEXT, "syscall");
        __atomic_store_n(&real, fn, __ATOMIC_RELEASE);
    }
    /* A system call takes at most six arguments in registers; read them all, whatever this
     * call passed (x86-64 and aarch64 pass them in registers, so the extra ones are only
     * unused register values). */
    va_list ap;
    va_start(ap, number);
    long a[6];
    for (int i = 0; i < 6; i++) {
        a[i] = va_arg(ap, long);
    }
    va_end(ap);
    if (number == SYS_close) {
        __sanitizer_syscall_pre_impl_close(a[0]);
    }
    return fn(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}
