/*
 * kvl-hostile.c — a hostile agent for the reliability tests: speaks kaaval's framed
 * protocol (common/wire.h) over plain TCP to a collector with `insecure: true` and sends
 * what a broken or malicious peer would, then prints what the collector answered.
 *
 *   kvl-hostile --port P --agent ID --attack NAME [--repeat N] [--wait-ms MS]
 *   kvl-hostile --out FILE --attack NAME [--repeat N]     (the frames into a file: seeds)
 *
 * Attacks (each after a Hello as agent ID):
 *   bigid      a definition naming series id 16,777,216, then a batch using it
 *   maxid      a definition naming id 2^32-1 (no batch can use it: ids travel as deltas)
 *   famrepeat  one SeriesDefs frame repeating a 64-metric family definition, filling
 *              --repeat bytes (default 4,000,000: under the default max_frame)
 *   future     a batch with one group a million years ahead and one of now
 *   longname   a definition whose device name has 300 bytes
 * Prints one line per answer: "welcome", "ack <lane> <seq>", "refused: <reason>", and
 * "closed" when the collector closed the connection. Exits 0 once it has waited --wait-ms
 * (default 1500) or the connection closed, 1 on a usage or connection error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "frame.h"
#include "kvl.h"
#include "timeutil.h"
#include "wire.h"

static const char *metric_names[KVL_FAMILY_MAX];
static kvl_kind_t metric_kinds[KVL_FAMILY_MAX];

static int put(kvl_buf_t *out, const kvl_msg_t *m)
{
    int rc = kvl_wire_encode(m, out);
    if (rc != 0) {
        fprintf(stderr, "kvl-hostile: cannot encode: %s\n", kvl_strerror(rc));
    }
    return rc;
}

static int put_hello(kvl_buf_t *out, const char *agent)
{
    kvl_msg_t m = {.type = KVL_MSG_HELLO};
    m.u.hello = (kvl_hello_t){
        .protocol = KVL_PROTOCOL_VERSION, .agent_id = agent, .version = "hostile", .site = "lab"};
    return put(out, &m);
}

static int put_defs(kvl_buf_t *out, const kvl_series_def_t *d, size_t n, const kvl_family_t *f,
                    size_t nf)
{
    kvl_msg_t m = {.type = KVL_MSG_SERIES_DEFS};
    m.u.series_defs.defs = d;
    m.u.series_defs.n = n;
    m.u.series_defs.families = f;
    m.u.series_defs.n_families = nf;
    return put(out, &m);
}

static int put_batch(kvl_buf_t *out, uint64_t seq, uint32_t id, const int64_t *times, size_t n)
{
    static const uint64_t vals[] = {42};
    kvl_group_t g[4];
    for (size_t i = 0; i < n && i < 4; i++) {
        g[i] = (kvl_group_t){
            .time_ms = times[i], .ids = &id, .n_ids = 1, .values = vals, .n_values = 1};
    }
    kvl_msg_t m = {.type = KVL_MSG_BATCH};
    m.u.batch = (kvl_batch_t){.seq = seq, .lane = KVL_LANE_BULK, .groups = g, .n_groups = n};
    return put(out, &m);
}

static kvl_series_def_t gauge(uint32_t id, const char *device)
{
    return (kvl_series_def_t){.id = id,
                              .device = device,
                              .scope = KVL_SCOPE_DEVICE,
                              .instance = "",
                              .metric = "hostile",
                              .kind = KVL_KIND_GAUGE,
                              .interval_s = 60};
}

static int build(const char *attack, const char *agent, size_t repeat, kvl_buf_t *out)
{
    int64_t now = kvl_now_ms();
    if (put_hello(out, agent) != 0) {
        return 1;
    }
    if (strcmp(attack, "bigid") == 0 || strcmp(attack, "maxid") == 0) {
        /* 2^32-1 only as a definition: a group's first id travels as a 32-bit signed
         * delta, so no batch can name it (the encoder and the decoder refuse) */
        bool big = strcmp(attack, "bigid") == 0;
        uint32_t id = big ? 16777216u : UINT32_MAX;
        kvl_series_def_t d = gauge(id, "hostile-dev");
        return put_defs(out, &d, 1, NULL, 0) || (big && put_batch(out, 1, id, &now, 1));
    }
    if (strcmp(attack, "famrepeat") == 0) {
        char names[KVL_FAMILY_MAX][16];
        for (int i = 0; i < KVL_FAMILY_MAX; i++) {
            snprintf(names[i], sizeof(names[i]), "metric%02d", i);
            metric_names[i] = names[i];
            metric_kinds[i] = KVL_KIND_COUNTER;
        }
        kvl_family_t one = {.id = 1,
                            .name = "hostile",
                            .n = KVL_FAMILY_MAX,
                            .metrics = metric_names,
                            .kinds = metric_kinds};
        /* the size of one family on the wire, then as many as fit in `repeat` bytes */
        kvl_buf_t probe = {0};
        if (put_defs(&probe, NULL, 0, &one, 1) != 0) {
            return 1;
        }
        size_t each = probe.len - KVL_FRAME_HEADER;
        kvl_buf_free(&probe);
        size_t n = repeat / (each + 1);
        kvl_family_t *fams = calloc(n ? n : 1, sizeof(*fams));
        if (fams == NULL) {
            return 1;
        }
        for (size_t i = 0; i < n; i++) {
            fams[i] = one;
        }
        int rc = put_defs(out, NULL, 0, fams, n);
        free(fams);
        return rc;
    }
    if (strcmp(attack, "future") == 0) {
        kvl_series_def_t d = gauge(1, "hostile-dev");
        int64_t t[] = {now + 1000000ll * 365 * 86400 * 1000, now};
        return put_defs(out, &d, 1, NULL, 0) || put_batch(out, 1, 1, t, 2);
    }
    if (strcmp(attack, "longname") == 0) {
        char dev[301];
        memset(dev, 'n', 300);
        dev[300] = '\0';
        kvl_series_def_t d = gauge(1, dev);
        return put_defs(out, &d, 1, NULL, 0) || put_batch(out, 1, 1, &now, 1);
    }
    fprintf(stderr, "kvl-hostile: unknown attack '%s'\n", attack);
    return 1;
}

/* Prints the collector's answers until it closes or wait_ms pass. */
static void answers(int fd, int wait_ms)
{
    kvl_frame_reader_t r;
    kvl_frame_reader_init(&r, KVL_FRAME_MAX_DEFAULT);
    uint64_t end = kvl_mono_ns() / 1000000 + (uint64_t)wait_ms;
    for (;;) {
        uint64_t now = kvl_mono_ns() / 1000000;
        if (now >= end) {
            break;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)(end - now)) <= 0) {
            continue;
        }
        uint8_t buf[65536];
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0) {
            printf("closed\n");
            break;
        }
        kvl_frame_reader_feed(&r, buf, (size_t)n);
        const uint8_t *pl;
        size_t len;
        while (kvl_frame_next(&r, &pl, &len) == 1) {
            kvl_msg_t m = {0};
            char err[256];
            if (kvl_wire_decode(pl, len, &m, err, sizeof(err)) == 0) {
                if (m.type == KVL_MSG_WELCOME) {
                    printf("welcome\n");
                } else if (m.type == KVL_MSG_ACK) {
                    printf("ack %" PRIu32 " %" PRIu64 "\n", m.u.ack.lane, m.u.ack.seq);
                } else if (m.type == KVL_MSG_REFUSAL) {
                    printf("refused: %s\n", m.u.refusal);
                }
            }
            kvl_msg_clear(&m);
        }
        fflush(stdout);
    }
    kvl_frame_reader_free(&r);
}

int main(int argc, char **argv)
{
    const char *attack = NULL, *agent = "hostile", *outfile = NULL;
    int port = 0, wait_ms = 1500;
    size_t repeat = 4000000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0) {
            port = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--agent") == 0) {
            agent = argv[i + 1];
        } else if (strcmp(argv[i], "--attack") == 0) {
            attack = argv[i + 1];
        } else if (strcmp(argv[i], "--repeat") == 0) {
            repeat = (size_t)strtoull(argv[i + 1], NULL, 10);
        } else if (strcmp(argv[i], "--wait-ms") == 0) {
            wait_ms = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--out") == 0) {
            outfile = argv[i + 1];
        } else {
            attack = NULL;
            break;
        }
    }
    if (attack == NULL || (port <= 0 && outfile == NULL)) {
        fprintf(stderr, "usage: kvl-hostile (--port P | --out FILE) --attack "
                        "bigid|maxid|famrepeat|future|longname [--agent ID] [--repeat N] "
                        "[--wait-ms MS]\n");
        return 1;
    }
    kvl_buf_t out = {0};
    if (build(attack, agent, repeat, &out) != 0) {
        return 1;
    }
    if (outfile != NULL) {
        FILE *f = fopen(outfile, "wb");
        int ok = f != NULL && fwrite(out.data, 1, out.len, f) == out.len;
        ok = f != NULL && fclose(f) == 0 && ok;
        kvl_buf_free(&out);
        return ok ? 0 : 1;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        fprintf(stderr, "kvl-hostile: cannot connect to 127.0.0.1:%d: %s\n", port, strerror(errno));
        return 1;
    }
    size_t off = 0;
    while (off < out.len) {
        ssize_t n = send(fd, out.data + off, out.len - off, MSG_NOSIGNAL);
        if (n <= 0) {
            printf("closed\n"); /* refused before it read everything */
            break;
        }
        off += (size_t)n;
    }
    printf("sent %zu bytes\n", off);
    fflush(stdout);
    answers(fd, wait_ms);
    close(fd);
    kvl_buf_free(&out);
    return 0;
}
