/*
 * fuzz_ingest.c — libFuzzer target for what an agent's frames make the collector hold: the
 * ingest's definitions tables, batch checks and the time filter (collector/ingest/agents.c)
 * as protocol.c drives them on one connection.
 *
 * The input is a stream of frames (4-byte big-endian length, payload), as a peer sends
 * after its Hello: each is decoded; SeriesDefs are stored, a Batch's definitions stored,
 * its groups filtered by time and checked, its samples looked up through the sinks' view
 * (kvl_sink_def, kvl_sink_family); the first refusal ends the "connection". Beyond "no
 * crash, no sanitizer report", it checks that memory follows what is held, never what a
 * peer claims:
 *  - the table's bytes stay within a bound proportional to the series and families it
 *    holds (an array sized by the largest id, or a definition copied again each time it
 *    is repeated, breaks it; run.sh also gives this target -malloc_limit_mb=64, so one
 *    allocation sized by an id fails at once);
 *  - the series and families held stay within the configured per-agent limits;
 *  - the checkpoint (ingest_defs_encode) stored into a fresh table gives the same ids and
 *    the same bytes: nothing replaced is still held (unless a family changed under
 *    instances that still use the old one, which the check then skips).
 * A broken promise calls abort(), which libFuzzer reports as a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector_config.h"
#include "frame.h"
#include "fuzz_check.h"
#include "ingest_internal.h"
#include "kvl.h"
#include "log.h"
#include "names.h"
#include "sink.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_SERIES 20000
#define MAX_FAMILIES 64

static kvl_collector_cfg_t *cfg;

/* What a table holding `series` ids and `families` families may weigh at most. */
static size_t bound(size_t series, size_t families)
{
    size_t name = KVL_NAME_FILE_MAX + 1;
    size_t maps = 2 * 16 * (64 + 3 * (series + families));
    size_t per_series = 2 * sizeof(kvl_series_def_t) + 64 + 3 * name;
    size_t per_family = 128 + name + KVL_FAMILY_MAX * (name + sizeof(char *) + sizeof(int) + 1);
    return sizeof(defs_table_t) + maps + series * per_series + families * per_family;
}

/* Family ids stored with different content along the way (the checkpoint then differs). */
typedef struct fam_seen {
    uint32_t id;
    uint64_t hash;
} fam_seen_t;

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h = (h ^ ((const uint8_t *)p)[i]) * 0x100000001b3ull;
    }
    return h;
}

static uint64_t family_hash(const kvl_family_t *f)
{
    uint64_t h =
        fnv(0xcbf29ce484222325ull, f->name ? f->name : "", strlen(f->name ? f->name : "") + 1);
    h = fnv(h, &f->n, sizeof(f->n));
    for (size_t i = 0; i < f->n; i++) {
        const char *m = f->metrics[i] ? f->metrics[i] : "";
        bool real = f->reals != NULL && f->reals[i];
        h = fnv(h, m, strlen(m) + 1);
        h = fnv(h, &f->kinds[i], sizeof(f->kinds[i]));
        h = fnv(h, &real, sizeof(real));
    }
    return h;
}

static bool note_families(fam_seen_t *seen, size_t *n_seen, const kvl_family_t *f, size_t nf)
{
    bool changed = false;
    for (size_t i = 0; i < nf; i++) {
        uint64_t h = family_hash(&f[i]);
        size_t k = 0;
        while (k < *n_seen && seen[k].id != f[i].id) {
            k++;
        }
        if (k == *n_seen) {
            if (*n_seen == 256) {
                return true; /* too many to follow: treat as changed */
            }
            seen[k] = (fam_seen_t){.id = f[i].id, .hash = h};
            (*n_seen)++;
        } else if (seen[k].hash != h) {
            changed = true;
        }
    }
    return changed;
}

static void check_table(defs_table_t *t, bool families_changed)
{
    size_t series = ingest_defs_series(t), families = ingest_defs_families(t);
    CHECK(series <= MAX_SERIES && families <= MAX_FAMILIES);
    CHECK(ingest_defs_bytes(t) <= bound(series, families));
    kvl_buf_t buf = {0};
    CHECK(ingest_defs_encode(t, &buf) == 0);
    kvl_msg_t m = {0};
    char err[256];
    CHECK(kvl_wire_decode(buf.data, buf.len, &m, err, sizeof(err)) == 0);
    CHECK(m.type == KVL_MSG_SERIES_DEFS);
    if (!families_changed) {
        kvl_ingest_t in;
        memset(&in, 0, sizeof(in));
        in.cfg = cfg;
        defs_table_t *t2 = ingest_defs_new(&in, "fuzz");
        CHECK(t2 != NULL);
        const char *why = NULL;
        CHECK(ingest_store_defs(t2, m.u.series_defs.families, m.u.series_defs.n_families,
                                m.u.series_defs.defs, m.u.series_defs.n, &why) == 0);
        CHECK(ingest_defs_series(t2) == series);
        CHECK(ingest_defs_families(t2) == families);
        CHECK(ingest_defs_bytes(t2) == ingest_defs_bytes(t));
        for (size_t i = 0; i < m.u.series_defs.n; i++) {
            uint32_t id = m.u.series_defs.defs[i].id;
            const kvl_series_def_t *a = ingest_defs_find(t, id), *b = ingest_defs_find(t2, id);
            CHECK(a != NULL && b != NULL);
            CHECK(strcmp(a->metric, b->metric) == 0 && a->kind == b->kind);
        }
        ingest_defs_free(t2);
    }
    kvl_msg_clear(&m);
    kvl_buf_free(&buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (cfg == NULL) {
        kvl_log_level = -1; /* quiet: most inputs are refused */
        char err[256];
        char text[256];
        snprintf(text, sizeof(text),
                 "listen: 127.0.0.1:1\ndata_dir: /nonexistent\ninsecure: true\n"
                 "max_series_per_agent: %d\nmax_families_per_agent: %d\n",
                 MAX_SERIES, MAX_FAMILIES);
        cfg = kvl_collector_cfg_parse("fuzz.yaml", text, err, sizeof(err));
        CHECK(cfg != NULL);
    }
    kvl_ingest_t in;
    memset(&in, 0, sizeof(in));
    in.cfg = cfg;
    agent_state_t a;
    memset(&a, 0, sizeof(a));
    a.in = &in;
    a.id = "fuzz";
    defs_table_t *t = ingest_defs_new(&in, "fuzz");
    CHECK(t != NULL);
    fam_seen_t seen[256];
    size_t n_seen = 0;
    bool changed = false;
    kvl_sink_defs_t view = ingest_defs_view(t);

    size_t off = 0;
    bool open = true;
    while (open && size - off >= KVL_FRAME_HEADER) {
        uint32_t len = (uint32_t)data[off] << 24 | (uint32_t)data[off + 1] << 16 |
                       (uint32_t)data[off + 2] << 8 | data[off + 3];
        off += KVL_FRAME_HEADER;
        if (len == 0 || len > size - off) {
            break;
        }
        const uint8_t *payload = data + off;
        off += len;
        kvl_msg_t m = {0};
        char err[256];
        if (kvl_wire_decode(payload, len, &m, err, sizeof(err)) != 0) {
            kvl_msg_clear(&m);
            break; /* the ingest closes the connection */
        }
        const char *why = NULL;
        if (m.type == KVL_MSG_SERIES_DEFS) {
            changed |=
                note_families(seen, &n_seen, m.u.series_defs.families, m.u.series_defs.n_families);
            open = ingest_store_defs(t, m.u.series_defs.families, m.u.series_defs.n_families,
                                     m.u.series_defs.defs, m.u.series_defs.n, &why) == 0;
        } else if (m.type == KVL_MSG_BATCH) {
            kvl_batch_t *b = &m.u.batch;
            changed |= note_families(seen, &n_seen, b->families, b->n_families);
            open = ingest_store_defs(t, b->families, b->n_families, b->defs, b->n_defs, &why) == 0;
            const uint8_t *p = payload;
            size_t plen = len;
            if (open) {
                CHECK(ingest_batch_filter_times(&in, &a, b, &p, &plen) == 0);
                if (p != payload) {
                    /* what goes to the journal decodes to the groups kept */
                    kvl_msg_t again = {0};
                    CHECK(kvl_wire_decode(p, plen, &again, err, sizeof(err)) == 0);
                    CHECK(again.type == KVL_MSG_BATCH && again.u.batch.n_groups == b->n_groups);
                    kvl_msg_clear(&again);
                }
                uint64_t samples = 0;
                open = ingest_batch_check(t, b, &samples, err, sizeof(err)) == 0;
            }
            for (size_t g = 0; open && g < b->n_groups; g++) {
                kvl_group_iter_t it;
                kvl_sample_t s;
                kvl_group_iter_init(&it, &b->groups[g]);
                while (kvl_group_iter_next(&it, kvl_sink_def, &view, &s) == 1) {
                    CHECK(s.def != NULL && s.def->id == s.id);
                    const kvl_family_t *f = kvl_sink_family(&view, s.def);
                    CHECK((f != NULL) == (s.def->family != 0));
                }
            }
        }
        kvl_msg_clear(&m);
        CHECK(ingest_defs_bytes(t) <= bound(ingest_defs_series(t), ingest_defs_families(t)));
    }
    check_table(t, changed);
    ingest_defs_free(t);
    kvl_buf_free(&in.times_buf);
    return 0;
}
