/*
 * rrd-write.c — what one archive update writes to disk, for tests/bench/rrd-write/run.
 *
 * N interface archives are made the way the collector makes them and updated for M steps
 * (timestamps one step apart, counters growing); after every K steps (--sync-every, 1) the
 * folder's file system is synced, so that the next step finds the pages it touches written
 * back and clean, as the kernel's writeback leaves them in a collector whose step (60 s) is
 * longer than dirty pages live (vm.dirty_expire_centisecs, 30 s). What the updates cost is
 * read in two places: /proc/self/io write_bytes (the page cache the process dirtied: a whole
 * folio each time it touches a clean one; rrdcached's own counter when it is the writer) and
 * the block device holding the folder (/sys/dev/block/MAJ:MIN/stat, sectors written: the file
 * system's journal included, and every other writer of that disk too).
 *
 * Variants (--variants a,b,...; all by default):
 *   librrd             rrd_create_r2 as the store called it before it dropped new files from
 *                      the page cache; updates by rrd_update_r
 *   store              collector/store as built (kvl_store jobs on a libuv loop)
 *   uncache            as librrd, then kvl_rrd_uncache (written out, dropped from the page
 *                      cache) before the first update
 *   smallwrites        as librrd under another name, then copied with 4 KiB writes
 *   rrdcached          files as librrd; updates through Debian's rrdcached (rrdc_update), each
 *                      file flushed every F steps (--flush-every 5: its -w 300 at a 60 s step)
 *   rrdcached-uncache  the same with the files as uncache
 *   store-rrdcached    collector/store as built in rrdcached mode (`rrdcached:`): files made
 *                      by the store, updates through rrdcached, a checkpoint every F steps
 *   store-remote       the same with `rrdcached_files: remote`: rrdcached on 127.0.0.1 (TCP,
 *                      -b the variant's folder -B -R) creates the files (CREATE) and writes
 *                      them; the store sends relative paths and touches no file
 *   store-remote-evict the same, and after the files were made the storage host's own job
 *                      drops them from its page cache (EVICT_CMD, as docs/scale.md gives it)
 * The data sources and archives are the store's own: a reference file is made through
 * kvl_store with the collector's default archives and consolidations (from its configuration
 * parser, or those of --config FILE), and the other variants create theirs from it
 * (rrd_create_r2's template). Only the interface metric names are written out here.
 *
 * librrd is called here directly (the one place outside collector/store/): how it is called
 * is what is measured.
 *
 * Prints a line per variant with the details and, at the end, one
 *   RESULT variant=... kb_per_update=... disk_kb_per_update=... create_ms_per_file=...
 * line per variant. Exits 1 when --max-kb is given and the store variant dirtied more per
 * update, 2 on a usage or set-up error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/magic.h>
#include <netinet/in.h>
#include <rrd.h>
#include <rrd_client.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "collector_config.h"
#include "kvl.h"
#include "rrd_store.h"
#include "store.h"
#include "timeutil.h"

#define T0 1700000040L /* the first update's time (a multiple of 60) */
#define SITE "bench"
#define PER_DEVICE 48 /* interfaces per device folder */

/* The agent's interface metrics, in the order of the store's interface archive (checked
 * against the reference file: rrdcached's updates name no data sources). */
static const char *const if_metrics[] = {
    "in_octets",      "out_octets",    "in_ucast_pkts",  "out_ucast_pkts", "in_mcast_pkts",
    "out_mcast_pkts", "in_bcast_pkts", "out_bcast_pkts", "in_errors",      "out_errors",
    "in_discards",    "out_discards",  "oper_status",    "admin_status",   "speed_bps",
};
#define N_METRICS KVL_ARRAY_SIZE(if_metrics)

typedef enum { MAKE_LIBRRD, MAKE_UNCACHE, MAKE_SMALL, MAKE_STORE } make_t;
typedef enum {
    WRITE_LIBRRD,
    WRITE_STORE,
    WRITE_CACHED,
    WRITE_STORE_CACHED,
    WRITE_STORE_REMOTE
} writer_t;

typedef struct variant {
    const char *name;
    make_t make;
    writer_t writer;
    bool evict; /* the made files dropped from the page cache by EVICT_CMD */
} variant_t;

/* What docs/scale.md has the storage host run on archives rrdcached has just made (%s: the
 * folder): each file, written out already, dropped from the page cache (GNU dd's nocache). */
#define EVICT_CMD                                                                                  \
    "find '%s' -name '*.rrd' -exec sh -c 'for f; do sync \"$f\" && "                               \
    "dd if=\"$f\" iflag=nocache count=0 status=none; done' sh {} +"

static const variant_t variants[] = {
    {"librrd", MAKE_LIBRRD, WRITE_LIBRRD},
    {"store", MAKE_STORE, WRITE_STORE},
    {"uncache", MAKE_UNCACHE, WRITE_LIBRRD},
    {"smallwrites", MAKE_SMALL, WRITE_LIBRRD},
    {"rrdcached", MAKE_LIBRRD, WRITE_CACHED},
    {"rrdcached-uncache", MAKE_UNCACHE, WRITE_CACHED},
    {"store-rrdcached", MAKE_STORE, WRITE_STORE_CACHED},
    {"store-remote", MAKE_STORE, WRITE_STORE_REMOTE},
    {"store-remote-evict", MAKE_STORE, WRITE_STORE_REMOTE, true},
};

typedef struct result {
    bool done;
    double file_kb, create_ms, create_kb, kb, disk_kb;
} result_t;

typedef struct bench {
    const char *dir; /* options */
    size_t files;
    unsigned steps, sync_every, flush_every;
    uint32_t step;
    const char *only; /* --variants, NULL: all */
    const char *config;
    const char *rrdcached;
    long max_kb;              /* < 0: none */
    kvl_collector_cfg_t *cfg; /* its archives and consolidations */
    uv_loop_t loop;
    int dirfd;
    char devstat[128];  /* "" when the folder's block device is not found */
    char ref[PATH_MAX]; /* the store's reference file */
    char tmpl[512];     /* the metrics joined by ':' */
} bench_t;

static pid_t cached_pid; /* rrdcached while it runs */

static void cached_stop(void)
{
    if (cached_pid <= 0) {
        return;
    }
    rrdc_disconnect();
    kill(cached_pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (waitpid(cached_pid, NULL, WNOHANG) == cached_pid) {
            cached_pid = 0;
            return;
        }
        usleep(50000);
    }
    kill(cached_pid, SIGKILL);
    waitpid(cached_pid, NULL, 0);
    cached_pid = 0;
}

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("rrd-write: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    cached_stop();
    exit(2);
}

/* write_bytes of /proc/<pid>/io (pid 0: this process). */
static uint64_t write_bytes(pid_t pid)
{
    char path[64];
    if (pid == 0) {
        snprintf(path, sizeof(path), "/proc/self/io");
    } else {
        snprintf(path, sizeof(path), "/proc/%d/io", (int)pid);
    }
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        die("%s: %s", path, strerror(errno));
    }
    char line[128];
    uint64_t v = 0;
    bool found = false;
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        found = sscanf(line, "write_bytes: %" SCNu64, &v) == 1;
    }
    fclose(f);
    if (!found) {
        die("%s: no write_bytes (a kernel without task I/O accounting?)", path);
    }
    return v;
}

/* Sectors (512 bytes) written to the folder's block device so far; 0 when unknown. */
static uint64_t disk_sectors(const bench_t *b)
{
    if (b->devstat[0] == '\0') {
        return 0;
    }
    FILE *f = fopen(b->devstat, "r");
    unsigned long long v[7];
    int n = f != NULL ? fscanf(f, "%llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                               &v[4], &v[5], &v[6])
                      : 0;
    if (f != NULL) {
        fclose(f);
    }
    return n == 7 ? (uint64_t)v[6] : 0;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    KVL_UNUSED(sb);
    KVL_UNUSED(flag);
    KVL_UNUSED(ftw);
    return remove(path);
}

static void rm_tree(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void mkdirs_for(const char *path)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s", path);
    for (char *s = strchr(p + 1, '/'); s != NULL; s = strchr(s + 1, '/')) {
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            die("%s: %s", p, strerror(errno));
        }
        *s = '/';
    }
}

static void names(size_t i, char *dev, size_t devlen, char *ifname, size_t iflen)
{
    snprintf(dev, devlen, "sw%04zu", i / PER_DEVICE);
    snprintf(ifname, iflen, "ge-0/0/%zu", i % PER_DEVICE);
}

/* File i's path under data folder vdir (the store's layout). */
static void file_path(const char *vdir, size_t i, char *out, size_t outlen)
{
    char dev[32], ifname[32];
    names(i, dev, sizeof(dev), ifname, sizeof(ifname));
    if (kvl_store_path(vdir, SITE, dev, KVL_SCOPE_INTERFACE, ifname, out, outlen) != 0) {
        die("%s: path too long", vdir);
    }
}

/* Metric m of file i at step k: counters growing at rates of their own, states up, 1 Gbit/s. */
static uint64_t metric_value(size_t i, size_t m, unsigned k, uint32_t step)
{
    if (m == N_METRICS - 1) {
        return 1000000000u;
    }
    if (m >= N_METRICS - 3) {
        return 1;
    }
    uint64_t rate = 1000 + (uint64_t)i * 7 + (uint64_t)m * 131;
    return 1000000u * (uint64_t)(m + 1) + rate * step * k;
}

/* "time:v1:...:v15" of file i at step k. */
static void update_text(const bench_t *b, size_t i, unsigned k, char *out, size_t outlen)
{
    size_t n = (size_t)snprintf(out, outlen, "%ld", T0 + (long)k * (long)b->step);
    for (size_t m = 0; m < N_METRICS && n < outlen; m++) {
        n += (size_t)snprintf(out + n, outlen - n, ":%" PRIu64, metric_value(i, m, k, b->step));
    }
}

/* ------------------------------------------------------------------ the store --------- */

typedef struct job_done {
    int calls;
    kvl_store_result_t r;
} job_done_t;

static void on_job_done(void *arg, const kvl_store_result_t *r)
{
    job_done_t *d = arg;
    d->calls++;
    d->r = *r;
}

/* rrdcached: its address for the store, NULL: direct writes; remote: the files on
 * rrdcached's side only (`rrdcached_files: remote`). */
static kvl_store_t *store_new(bench_t *b, const char *data_dir, const char *rrdcached, bool remote)
{
    kvl_store_cfg_t cfg = {.data_dir = data_dir,
                           .archives = b->cfg->archives,
                           .n_archives = b->cfg->n_archives,
                           .consolidations = (const char *const *)b->cfg->consolidations,
                           .rrdcached = rrdcached,
                           .rrdcached_checkpoint_ms = 86400 * 1000, /* only when asked */
                           .rrdcached_remote = remote};
    kvl_store_t *s = NULL;
    char err[256];
    if (kvl_store_new(&b->loop, &cfg, &s, err, sizeof(err)) != 0) {
        die("store: %s", err);
    }
    return s;
}

/* Step k of files 0..n-1 through the store: one job, run to its end. */
static void store_step(bench_t *b, kvl_store_t *s, size_t n, unsigned k)
{
    kvl_store_job_t *j = kvl_store_job_new();
    if (j == NULL) {
        die("out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        char dev[32], ifname[32];
        names(i, dev, sizeof(dev), ifname, sizeof(ifname));
        kvl_store_value_t v[N_METRICS];
        for (size_t m = 0; m < N_METRICS; m++) {
            v[m] = (kvl_store_value_t){.metric = if_metrics[m],
                                       .value = metric_value(i, m, k, b->step)};
        }
        kvl_store_row_t row = {.site = SITE,
                               .device = dev,
                               .scope = KVL_SCOPE_INTERFACE,
                               .instance = ifname,
                               .interval_s = b->step,
                               .time_ms = (T0 + (int64_t)k * b->step) * 1000,
                               .values = v,
                               .n_values = N_METRICS};
        if (kvl_store_job_add(j, &row) != 0) {
            die("out of memory");
        }
    }
    job_done_t d = {0};
    if (kvl_store_submit(s, j, on_job_done, &d) != 0) {
        die("store: cannot submit a job");
    }
    uv_run(&b->loop, UV_RUN_DEFAULT);
    if (d.calls != 1 || d.r.rows != n) {
        die("store, step %u: %zu of %zu rows written (errors %zu, stale %zu, retry %zu: %s)", k,
            d.r.rows, n, d.r.errors, d.r.stale, d.r.retry, d.r.why);
    }
}

/* store-rrdcached: the store's checkpoint (rrdcached writes the files), run to its end. */
static void store_checkpoint(bench_t *b, kvl_store_t *s, const variant_t *v)
{
    if (v->writer == WRITE_STORE_CACHED || v->writer == WRITE_STORE_REMOTE) {
        kvl_store_checkpoint(s);
        uv_run(&b->loop, UV_RUN_DEFAULT);
    }
}

/* The reference file must have if_metrics as its data sources, in this order. */
static void check_ref(const bench_t *b)
{
    rrd_info_t *info = rrd_info_r(b->ref);
    if (info == NULL) {
        die("%s: %s", b->ref, rrd_get_error());
    }
    size_t found = 0, n_ds = 0;
    for (const rrd_info_t *i = info; i != NULL; i = i->next) {
        if (strncmp(i->key, "ds[", 3) != 0 || strstr(i->key, "].index") == NULL ||
            i->type != RD_I_CNT) {
            continue;
        }
        n_ds++;
        for (size_t m = 0; m < N_METRICS; m++) {
            char key[64];
            snprintf(key, sizeof(key), "ds[%s].index", if_metrics[m]);
            found += strcmp(i->key, key) == 0 && i->value.u_cnt == m;
        }
    }
    rrd_info_free(info);
    if (found != N_METRICS || n_ds != N_METRICS) {
        die("%s: the store's interface archive has other data sources than if_metrics here "
            "(%zu of %zu in place, %zu in the file): update the list",
            b->ref, found, N_METRICS, n_ds);
    }
}

/* ------------------------------------------------------------------ librrd directly --- */

static void direct_update(const bench_t *b, const char *path, const char *upd)
{
    const char *argv[1] = {upd};
    rrd_clear_error();
    if (rrd_update_r(path, b->tmpl, 1, argv) != 0) {
        die("%s: %s", path, rrd_get_error());
    }
}

/* Copies `from` into a new file `to` with 4 KiB write()s. */
static void copy_small(const char *from, const char *to)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (in < 0 || out < 0) {
        die("copying %s to %s: %s", from, to, strerror(errno));
    }
    char buf[4096];
    for (;;) {
        ssize_t r = read(in, buf, sizeof(buf));
        if (r < 0) {
            die("reading %s: %s", from, strerror(errno));
        }
        if (r == 0) {
            break;
        }
        if (write(out, buf, (size_t)r) != r) {
            die("writing %s: %s", to, strerror(errno));
        }
    }
    close(in);
    if (close(out) != 0) {
        die("writing %s: %s", to, strerror(errno));
    }
}

static void make_file(const bench_t *b, make_t how, const char *path)
{
    char big[PATH_MAX + 8];
    const char *target = path;
    if (how == MAKE_SMALL) {
        snprintf(big, sizeof(big), "%s.big", path);
        target = big;
    }
    mkdirs_for(path);
    rrd_clear_error();
    if (rrd_create_r2(target, b->step, T0 - 1, 1, NULL, b->ref, 0, NULL) != 0) {
        die("%s: %s", target, rrd_get_error());
    }
    if (how == MAKE_UNCACHE) {
        kvl_rrd_uncache(path);
    } else if (how == MAKE_SMALL) {
        copy_small(big, path);
        unlink(big);
    }
}

/* ------------------------------------------------------------------ rrdcached --------- */

/* A free TCP port on 127.0.0.1 (bound, read, closed), or 0. */
static unsigned free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    unsigned port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0) {
        port = ntohs(sa.sin_port);
    }
    if (fd >= 0) {
        close(fd);
    }
    return port;
}

/* Starts rrdcached (no journal; it writes only when flushed) and connects to it: on a socket
 * in the folder with the folder as its base, or with `remote` on 127.0.0.1 over TCP with
 * `base` as its -b (-B -R: it makes the folders). listen gets the address. False (said why)
 * when it does not start. */
static bool cached_start(const bench_t *b, bool remote, const char *base, char *listen,
                         size_t listenlen)
{
    char sock[PATH_MAX + 16], pidf[PATH_MAX + 16], log[PATH_MAX + 16];
    snprintf(sock, sizeof(sock), "%s/rrdcached.sock", b->dir);
    snprintf(pidf, sizeof(pidf), "%s/rrdcached.pid", b->dir);
    snprintf(log, sizeof(log), "%s/rrdcached.log", b->dir);
    unsigned port = remote ? free_port() : 0;
    if (remote && port == 0) {
        fprintf(stderr, "rrd-write: no free TCP port on 127.0.0.1\n");
        return false;
    }
    if (remote) {
        snprintf(listen, listenlen, "127.0.0.1:%u", port);
    } else {
        snprintf(listen, listenlen, "unix:%s", sock);
        base = b->dir;
    }
    pid_t pid = fork();
    if (pid < 0) {
        die("fork: %s", strerror(errno));
    }
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execlp(b->rrdcached, b->rrdcached, "-g", "-l", listen, "-p", pidf, "-b", base, "-B", "-w",
               "86400", "-f", "172800", "-z", "1", remote ? "-R" : (char *)NULL, (char *)NULL);
        _exit(127);
    }
    cached_pid = pid;
    for (int i = 0; i < 100; i++) {
        if ((remote || access(sock, F_OK) == 0) && rrdc_connect(listen) == 0) {
            return true;
        }
        rrd_clear_error();
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            cached_pid = 0;
            fprintf(stderr, "rrd-write: %s did not start\n", b->rrdcached);
            return false;
        }
        usleep(50000);
    }
    cached_stop();
    fprintf(stderr, "rrd-write: %s did not answer on %s in 5 s\n", b->rrdcached, listen);
    return false;
}

/* ------------------------------------------------------------------ one variant ------- */

static bool run_variant(bench_t *b, const variant_t *v, result_t *r)
{
    char vdir[PATH_MAX];
    snprintf(vdir, sizeof(vdir), "%s/%s", b->dir, v->name);
    if (mkdir(vdir, 0755) != 0) {
        die("%s: %s", vdir, strerror(errno));
    }
    bool remote = v->writer == WRITE_STORE_REMOTE;
    bool cached = v->writer == WRITE_CACHED || v->writer == WRITE_STORE_CACHED || remote;
    char addr[PATH_MAX + 32];
    if (cached && !cached_start(b, remote, vdir, addr, sizeof(addr))) {
        rm_tree(vdir);
        return false;
    }
    kvl_store_t *s =
        v->make == MAKE_STORE
            ? store_new(b, vdir, v->writer == WRITE_STORE_CACHED || remote ? addr : NULL, remote)
            : NULL;
    char path[PATH_MAX], upd[512];

    /* Step 0: the files made and given their first update. */
    /* remote: rrdcached creates the files: its writes count too */
    uint64_t t0 = kvl_mono_ns(), w0 = write_bytes(0) + (remote ? write_bytes(cached_pid) : 0);
    if (s != NULL) {
        store_step(b, s, b->files, 0);
        store_checkpoint(b, s, v);
    }
    for (size_t i = 0; s == NULL && i < b->files; i++) {
        file_path(vdir, i, path, sizeof(path));
        make_file(b, v->make, path);
        update_text(b, i, 0, upd, sizeof(upd));
        direct_update(b, path, upd);
    }
    if (syncfs(b->dirfd) != 0) {
        die("syncfs: %s", strerror(errno));
    }
    if (v->evict) {
        char cmd[PATH_MAX + 256];
        snprintf(cmd, sizeof(cmd), EVICT_CMD, vdir);
        if (system(cmd) != 0) {
            die("the eviction failed: %s", cmd);
        }
    }
    uint64_t t1 = kvl_mono_ns(), w1 = write_bytes(0) + (remote ? write_bytes(cached_pid) : 0);
    struct stat st;
    file_path(vdir, 0, path, sizeof(path));
    if (stat(path, &st) != 0) {
        die("%s: %s", path, strerror(errno));
    }
    r->file_kb = (double)st.st_size / 1024.0;
    r->create_ms = (double)(t1 - t0) / 1e6 / (double)b->files;
    r->create_kb = (double)(w1 - w0) / 1024.0 / (double)b->files;

    /* Steps 1..M, the file system synced every K. */
    uint64_t c0 = cached_pid > 0 ? write_bytes(cached_pid) : 0;
    uint64_t d0 = disk_sectors(b);
    w0 = write_bytes(0);
    for (unsigned k = 1; k <= b->steps; k++) {
        if (s != NULL) {
            store_step(b, s, b->files, k);
        }
        for (size_t i = 0; s == NULL && i < b->files; i++) {
            file_path(vdir, i, path, sizeof(path));
            update_text(b, i, k, upd, sizeof(upd));
            if (v->writer == WRITE_CACHED) {
                const char *vals[1] = {upd};
                if (rrdc_update(path, 1, vals) != 0) {
                    die("rrdcached, update of %s: %s", path, rrd_get_error());
                }
            } else {
                direct_update(b, path, upd);
            }
        }
        bool last = k == b->steps;
        if (s != NULL && (k % b->flush_every == 0 || last)) {
            store_checkpoint(b, s, v);
        }
        if (v->writer == WRITE_CACHED && (k % b->flush_every == 0 || last)) {
            for (size_t i = 0; i < b->files; i++) {
                file_path(vdir, i, path, sizeof(path));
                if (rrdc_flush(path) != 0) {
                    die("rrdcached, flush of %s: %s", path, rrd_get_error());
                }
            }
        }
        if ((k % b->sync_every == 0 || last) && syncfs(b->dirfd) != 0) {
            die("syncfs: %s", strerror(errno));
        }
    }
    uint64_t w = write_bytes(0) - w0;
    uint64_t c = cached_pid > 0 ? write_bytes(cached_pid) - c0 : 0;
    uint64_t d = disk_sectors(b) - d0;
    double updates = (double)b->files * (double)b->steps;
    r->kb = (double)(w + c) / 1024.0 / updates;
    r->disk_kb = (double)d * 512.0 / 1024.0 / updates;
    r->done = true;
    kvl_store_free(s);
    kvl_rrd_use_daemon(NULL); /* the store's rrdcached mode is the process's */
    cached_stop();
    rm_tree(vdir);
    return true;
}

/* ------------------------------------------------------------------ main -------------- */

static void usage(void)
{
    fprintf(stderr, "usage: kvl-rrd-write --dir FOLDER [--files N] [--steps M] [--step S] "
                    "[--sync-every K] [--flush-every F] [--variants a,b,...] "
                    "[--config collector.yaml] [--rrdcached PATH] [--max-kb X]\n");
    exit(2);
}

static unsigned long number(const char *opt, const char *s, unsigned long min, unsigned long max)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        die("%s: expected a number from %lu to %lu, got '%s'", opt, min, max, s);
    }
    return v;
}

static bool wanted(const char *only, const char *name)
{
    if (only == NULL) {
        return true;
    }
    size_t n = strlen(name);
    for (const char *p = only; *p != '\0';) {
        size_t len = strcspn(p, ",");
        if (len == n && strncmp(p, name, n) == 0) {
            return true;
        }
        p += len + (p[len] == ',');
    }
    return false;
}

int main(int argc, char **argv)
{
    bench_t b = {.files = 500,
                 .steps = 10,
                 .step = 60,
                 .sync_every = 1,
                 .flush_every = 5,
                 .rrdcached = "rrdcached",
                 .max_kb = -1};
    for (int i = 1; i < argc; i += 2) {
        const char *o = argv[i];
        if (i + 1 >= argc) {
            usage();
        }
        const char *a = argv[i + 1];
        if (strcmp(o, "--dir") == 0) {
            b.dir = a;
        } else if (strcmp(o, "--files") == 0) {
            b.files = number(o, a, 1, 1000000);
        } else if (strcmp(o, "--steps") == 0) {
            b.steps = (unsigned)number(o, a, 1, 100000);
        } else if (strcmp(o, "--step") == 0) {
            b.step = (uint32_t)number(o, a, 1, 86400);
        } else if (strcmp(o, "--sync-every") == 0) {
            b.sync_every = (unsigned)number(o, a, 1, 100000);
        } else if (strcmp(o, "--flush-every") == 0) {
            b.flush_every = (unsigned)number(o, a, 1, 100000);
        } else if (strcmp(o, "--variants") == 0) {
            b.only = a;
        } else if (strcmp(o, "--config") == 0) {
            b.config = a;
        } else if (strcmp(o, "--rrdcached") == 0) {
            b.rrdcached = a;
        } else if (strcmp(o, "--max-kb") == 0) {
            b.max_kb = (long)number(o, a, 0, 1000000);
        } else {
            usage();
        }
    }
    if (b.dir == NULL) {
        usage();
    }
    char dir[PATH_MAX];
    if (realpath(b.dir, dir) == NULL) {
        die("%s: %s", b.dir, strerror(errno));
    }
    b.dir = dir;
    struct statfs fs;
    if (statfs(b.dir, &fs) != 0) {
        die("%s: %s", b.dir, strerror(errno));
    }
    if (fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC) {
        die("%s is in memory: choose a folder on a disk", b.dir);
    }
    if ((b.dirfd = open(b.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        die("%s: %s", b.dir, strerror(errno));
    }
    struct stat st;
    if (fstat(b.dirfd, &st) != 0) {
        die("%s: %s", b.dir, strerror(errno));
    }
    snprintf(b.devstat, sizeof(b.devstat), "/sys/dev/block/%u:%u/stat", major(st.st_dev),
             minor(st.st_dev));
    if (access(b.devstat, R_OK) != 0) {
        fprintf(stderr, "rrd-write: no block device found for %s: disk figures left out\n", b.dir);
        b.devstat[0] = '\0';
    }

    char err[512];
    if (b.config != NULL) {
        b.cfg = kvl_collector_cfg_load(b.config, err, sizeof(err));
    } else {
        char text[PATH_MAX + 128];
        snprintf(text, sizeof(text), "listen: 127.0.0.1:5140\ndata_dir: %s\ninsecure: true\n",
                 b.dir);
        b.cfg = kvl_collector_cfg_parse("defaults", text, err, sizeof(err));
    }
    if (b.cfg == NULL) {
        die("%s", err);
    }
    if (uv_loop_init(&b.loop) != 0) {
        die("cannot make a libuv loop");
    }
    size_t tl = 0;
    for (size_t m = 0; m < N_METRICS; m++) {
        tl +=
            (size_t)snprintf(b.tmpl + tl, sizeof(b.tmpl) - tl, "%s%s", m ? ":" : "", if_metrics[m]);
    }
    char refdir[PATH_MAX + 8];
    snprintf(refdir, sizeof(refdir), "%s/ref", b.dir);
    kvl_store_t *s = store_new(&b, refdir, NULL, false);
    store_step(&b, s, 1, 0);
    kvl_store_free(s);
    file_path(refdir, 0, b.ref, sizeof(b.ref));
    check_ref(&b);

    printf("rrd-write: %zu files, %u steps of %u s, the file system synced every %u step(s), "
           "rrdcached flushed every %u, in %s (%s)\n",
           b.files, b.steps, b.step, b.sync_every, b.flush_every, b.dir,
           b.devstat[0] ? b.devstat : "no block device");
    fflush(stdout);
    result_t res[KVL_ARRAY_SIZE(variants)];
    memset(res, 0, sizeof(res));
    for (size_t v = 0; v < KVL_ARRAY_SIZE(variants); v++) {
        if (!wanted(b.only, variants[v].name)) {
            continue;
        }
        if (!run_variant(&b, &variants[v], &res[v])) {
            printf("variant=%s skipped\n", variants[v].name);
            continue;
        }
        printf("variant=%s file_kb=%.0f create_ms_per_file=%.2f create_kb_per_file=%.0f "
               "kb_per_update=%.1f disk_kb_per_update=%.1f\n",
               variants[v].name, res[v].file_kb, res[v].create_ms, res[v].create_kb, res[v].kb,
               res[v].disk_kb);
        fflush(stdout);
    }
    rm_tree(refdir);

    int rc = 0;
    for (size_t v = 0; v < KVL_ARRAY_SIZE(variants); v++) {
        if (!res[v].done) {
            continue;
        }
        char disk[32];
        snprintf(disk, sizeof(disk), "%.1f", res[v].disk_kb);
        printf("RESULT variant=%s kb_per_update=%.1f disk_kb_per_update=%s "
               "create_ms_per_file=%.2f files=%zu steps=%u step_s=%u\n",
               variants[v].name, res[v].kb, b.devstat[0] ? disk : "na", res[v].create_ms, b.files,
               b.steps, b.step);
        if (b.max_kb >= 0 && strcmp(variants[v].name, "store") == 0 &&
            res[v].kb > (double)b.max_kb) {
            fprintf(stderr, "rrd-write: FAIL: the store wrote %.1f KB per update (limit %ld)\n",
                    res[v].kb, b.max_kb);
            rc = 1;
        }
    }
    kvl_collector_cfg_free(b.cfg);
    uv_loop_close(&b.loop);
    close(b.dirfd);
    return rc;
}
