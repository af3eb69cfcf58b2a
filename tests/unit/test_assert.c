/*
 * test_assert.c — KVL_ASSERT and KVL_ASSERT_DEBUG (common/kvl.h): a holding condition is
 * evaluated once and lets the program go on; a broken one aborts with file, line, function and
 * the condition's text on stderr. Each broken assertion runs in a forked child whose stderr is
 * a pipe; the parent checks that the child died of SIGABRT and what it wrote.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "kvl.h"

typedef struct child {
    int status;     /* from waitpid */
    char err[1024]; /* what it wrote to stderr */
} child_t;

/* Runs fn in a forked child with stderr on a pipe; fills out with how it ended and its text. */
static void run_child(void (*fn)(int), int arg, child_t *out)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core); /* an expected abort leaves no core file */
        close(fds[0]);
        dup2(fds[1], STDERR_FILENO);
        fn(arg);
        _exit(0);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t r;
    while ((r = read(fds[0], out->err + n, sizeof(out->err) - 1 - n)) > 0) {
        n += (size_t)r;
    }
    out->err[n] = '\0';
    close(fds[0]);
    assert_int_equal(waitpid(pid, &out->status, 0), pid);
}

static int evaluations;

static int counted(int v)
{
    evaluations++;
    return v;
}

/* KVL_ASSERT, noting the line it stands on (__LINE__ is the same in both: one macro use). */
static int asserted_line;
#define ASSERT_NOTING_LINE(cond) (asserted_line = __LINE__, KVL_ASSERT(cond))

static void broken(int value)
{
    ASSERT_NOTING_LINE(value == 2 && "queue order");
}

static void holds(int value)
{
    KVL_ASSERT(value == 2);
    KVL_ASSERT_DEBUG(value == 2);
}

/* Exits with the number of evaluations, unless the assertion aborts. */
static void broken_debug(int value)
{
    evaluations = 0;
    KVL_ASSERT_DEBUG(counted(value) == 2);
    _exit(evaluations);
}

static void test_holding_assertion_goes_on(void **state)
{
    (void)state;
    evaluations = 0;
    KVL_ASSERT(counted(1) == 1);
    assert_int_equal(evaluations, 1); /* evaluated exactly once */
    child_t c;
    run_child(holds, 2, &c);
    assert_true(WIFEXITED(c.status));
    assert_int_equal(WEXITSTATUS(c.status), 0);
    assert_string_equal(c.err, "");
}

static void test_broken_assertion_aborts_with_where_and_what(void **state)
{
    (void)state;
    child_t c;
    run_child(broken, 3, &c);
    assert_true(WIFSIGNALED(c.status));
    assert_int_equal(WTERMSIG(c.status), SIGABRT);
    broken(2); /* holds here: sets asserted_line in this process too */
    char want[512];
    snprintf(want, sizeof(want),
             "kaaval: %s:%d: broken: assertion failed: value == 2 && \"queue order\"\n", __FILE__,
             asserted_line);
    assert_string_equal(c.err, want);
}

static void test_debug_assertion(void **state)
{
    (void)state;
    child_t c;
    run_child(broken_debug, 3, &c);
#ifdef NDEBUG
    /* compiled out: the condition is never evaluated and nothing aborts */
    assert_true(WIFEXITED(c.status));
    assert_int_equal(WEXITSTATUS(c.status), 0);
    assert_string_equal(c.err, "");
#else
    assert_true(WIFSIGNALED(c.status));
    assert_int_equal(WTERMSIG(c.status), SIGABRT);
    assert_non_null(strstr(c.err, "assertion failed: counted(value) == 2"));
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_holding_assertion_goes_on),
        cmocka_unit_test(test_broken_assertion_aborts_with_where_and_what),
        cmocka_unit_test(test_debug_assertion),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
