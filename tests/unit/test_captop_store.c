/*
 * test_captop_store.c — collector/captop/captop_store.c on a real loop and a temp folder:
 * capture_top events appended to <data_dir>/_capture/<agent>/<interface>.top in order,
 * after the version line; other events and events that do not parse ignored or counted;
 * records older than the kept days dropped once the first one is a day past them; a file of
 * a newer format left untouched, the failure counted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "captop_store.h"
#include "kvl.h"

#define DAY_MS 86400000ll

static int64_t fake_now;
static int64_t now_fn(void)
{
    return fake_now;
}

static char dir[256];

static void send_top(kvl_captop_store_t *s, const char *kind, const char *iface, int64_t start,
                     const char *hosts)
{
    char a[24], b[24];
    snprintf(a, sizeof(a), "%lld", (long long)start);
    snprintf(b, sizeof(b), "%lld", (long long)(start + 60000));
    kvl_label_t f[] = {{"interface", iface},
                       {"start_ms", a},
                       {"end_ms", b},
                       {"hosts", hosts},
                       {"convs", "10.0.0.1 10.0.0.2 5 0 1"}};
    kvl_event_t ev = {.time_ms = start, .device = "ag", .kind = kind, .fields = f, .n_fields = 5};
    kvl_sink_event_t se = {.agent = "ag", .site = "s", .event = &ev, .seq = 1};
    kvl_captop_sink.on_event(s, &se);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return NULL;
    }
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++) {
        n += *s == '\n';
    }
    return n;
}

static void test_store(void **state)
{
    KVL_UNUSED(state);
    uv_loop_t loop;
    uv_loop_init(&loop);
    snprintf(dir, sizeof(dir), "/tmp/kvl-captop.XXXXXX");
    assert_non_null(mkdtemp(dir));
    kvl_captop_store_t *s;
    char err[200];
    fake_now = 100 * DAY_MS;
    assert_int_equal(kvl_captop_store_new(&loop, dir, now_fn, &s, err, sizeof(err)), 0);

    send_top(s, "capture_top", "eth1", fake_now - 120000, "10.0.0.1 10 0 1");
    send_top(s, "capture_top", "eth1", fake_now - 60000, "10.0.0.1 20 0 2,10.0.0.2 5 1 1");
    send_top(s, "target_down", "eth1", fake_now, "10.0.0.1 10 0 1");     /* not ours */
    send_top(s, "capture_top", "eth1", fake_now, "10.0.0.999 10 0 1");   /* does not parse */
    send_top(s, "capture_top", "eth/2", fake_now, "2001:db8::1 10 0 1"); /* a name escaped */
    uv_run(&loop, UV_RUN_DEFAULT);
    kvl_captop_stats_t st;
    kvl_captop_store_stats(s, &st);
    assert_int_equal(st.written, 3);
    assert_int_equal(st.bad, 1);
    assert_int_equal(st.failed, 0);

    char path[512];
    assert_int_equal(kvl_captop_path(dir, "ag", "eth1", path, sizeof(path)), 0);
    char *text = slurp(path);
    assert_non_null(text);
    char want[400];
    snprintf(want, sizeof(want),
             "kaaval-captop 1\n%lld %lld|10.0.0.1 10 0 1|10.0.0.1 10.0.0.2 5 0 1\n"
             "%lld %lld|10.0.0.1 20 0 2,10.0.0.2 5 1 1|10.0.0.1 10.0.0.2 5 0 1\n",
             (long long)(fake_now - 120000), (long long)(fake_now - 60000),
             (long long)(fake_now - 60000), (long long)fake_now);
    assert_string_equal(text, want);
    assert_int_equal(kvl_captop_path(dir, "ag", "eth/2", path, sizeof(path)), 0);
    assert_non_null(strstr(path, "/_capture/ag/eth%2F2.top"));
    assert_non_null(slurp(path));

    /* Days later: the first record is more than a day past the kept days: the old ones go. */
    fake_now += (KVL_CAPTOP_KEEP_DAYS + 2) * DAY_MS;
    send_top(s, "capture_top", "eth1", fake_now, "10.0.0.3 1 0 1");
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(kvl_captop_path(dir, "ag", "eth1", path, sizeof(path)), 0);
    text = slurp(path);
    assert_int_equal(count_lines(text), 2);
    assert_non_null(strstr(text, "kaaval-captop 1\n"));
    assert_non_null(strstr(text, "10.0.0.3 1 0 1"));
    assert_null(strstr(text, "10.0.0.2 5 1 1"));

    /* A file of a newer format: left as it is, the write counted as failed. */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("kaaval-captop 9\nwhatever\n", f);
    fclose(f);
    send_top(s, "capture_top", "eth1", fake_now + 60000, "10.0.0.4 1 0 1");
    uv_run(&loop, UV_RUN_DEFAULT);
    kvl_captop_store_stats(s, &st);
    assert_int_equal(st.failed, 1);
    text = slurp(path);
    assert_null(strstr(text, "10.0.0.4"));

    kvl_captop_store_free(s);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
