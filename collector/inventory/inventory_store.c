/*
 * inventory_store.c — the inventory's files in <data_dir>/_inventory/ (inventory.h,
 * "Persistence"), lines of "<CRC-32C in 8 hex digits> <JSON record>\n" as the alert book
 * keeps them (collector/alerts/book_store.c):
 *   inventory.snap   {"t":"head","gen":N,"format":V}, then one record per agent ({"t":"agent"}) and
 *                    per entry ({"t":"entry"}; a device's LLDP/CDP neighbour: {"t":"neighbour"},
 *                    the same fields, "r" when it went): written by kvl_file_replace;
 *   inventory.log    {"t":"head","gen":N,"format":V}, then every entry as it changed and every
 *                    forgotten device ({"t":"forget"}; with "i": an interface merged into
 *                    another by a rename, whose entry records its former names "al" and
 *                    whether the archive's move is pending "mv") since the snapshot of generation N
 *                    (a log of another generation is ignored: the snapshot has it); not
 *                    synced per line (what the kernel holds survives the collector), a
 *                    snapshot replaces it at a start that finds records (or damage) in
 *                    it or in the snapshot, at the stop and every COMPACT_RECORDS records;
 *   changes.log      the label changes, one per line, rotated to changes.1.log when it has
 *                    changes_max lines, so the two hold at least the newest changes_max.
 * V is KVL_INV_FORMAT_VERSION: a head without "format" (written before versions were kept) is
 * version 1 and the snapshot is written again with it at start; a newer one is refused at
 * open with a sentence saying what to do (the files untouched).
 * Loading skips damaged lines (counted, logged once per file) and drops a torn last line (in
 * changes.log, ended with a newline so that the next change starts a line of its own).
 */
#include "inventory_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "crc32c.h"
#include "fileio.h"
#include "kvl.h"
#include "log.h"

#define COMPACT_RECORDS 50000
#define LINE_MAX_BYTES (1u << 20)

static const char *const MOD = "inventory";

static void path_of(const kvl_inventory_t *inv, const char *name, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", inv->dir, name);
}

/* One line for a record (malloc'd), or NULL. Takes the reference. */
static char *line_of(json_t *rec, size_t *len)
{
    char *text = rec != NULL ? json_dumps(rec, JSON_COMPACT) : NULL;
    json_decref(rec);
    if (text == NULL) {
        return NULL;
    }
    size_t n = strlen(text);
    char *line = malloc(n + 11);
    if (line != NULL) {
        uint32_t crc = kvl_crc32c(0, text, n);
        snprintf(line, n + 11, "%08" PRIx32 " %s\n", crc, text);
        *len = n + 10;
    }
    free(text);
    return line;
}

static json_t *parse_line(const char *line, size_t n)
{
    if (n < 11 || line[8] != ' ' || strspn(line, "0123456789abcdef") < 8) {
        return NULL;
    }
    uint32_t want = (uint32_t)strtoul(line, NULL, 16);
    if (kvl_crc32c(0, line + 9, n - 9) != want) {
        return NULL;
    }
    json_t *rec = json_loadb(line + 9, n - 9, 0, NULL);
    if (rec != NULL && !json_is_object(rec)) {
        json_decref(rec);
        return NULL;
    }
    return rec;
}

json_t *inv_entry_record(const inv_entry_t *e)
{
    json_t *l = json_object();
    const char *p = e->labels;
    for (uint16_t i = 0; l != NULL && i < e->n_labels; i++) {
        const char *k = p, *v = p + strlen(p) + 1;
        p = v + strlen(v) + 1;
        json_object_set_new(l, k, json_string(v));
    }
    json_t *r = json_pack(
        "{s:s, s:s, s:s, s:o, s:I, s:I, s:I}", "t", e->nbr ? "neighbour" : "entry", "a",
        e->agent->id, "d", e->dev != NULL ? e->dev->name : e->name, "l", l, "f",
        (json_int_t)e->first_ms, "ls", (json_int_t)e->last_ms, "r", (json_int_t)e->retired_ms);
    if (r != NULL && e->dev != NULL) {
        json_object_set_new(r, "i", json_string(e->name));
    }
    if (r != NULL && e->n_aliases > 0) { /* former names (a rename) */
        json_t *al = json_array();
        const char *q = e->aliases;
        for (uint16_t k = 0; al != NULL && k < e->n_aliases; k++, q += strlen(q) + 1) {
            json_array_append_new(al, json_string(q));
        }
        json_object_set_new(r, "al", al);
        json_object_set_new(r, "mv", json_boolean(e->move_pending));
    }
    if (r != NULL) {
        json_object_set_new(r, "s", json_string(e->agent->site));
    }
    return r;
}

static json_t *agent_record(const inv_agent_t *a)
{
    return json_pack("{s:s, s:s, s:s, s:I}", "t", "agent", "a", a->id, "s", a->site, "ls",
                     (json_int_t)a->last_ms);
}

static int64_t int_of(const json_t *rec, const char *key)
{
    const json_t *v = json_object_get(rec, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

/* Applies a record of the snapshot or the log. Returns 0, or -1 when it is malformed. */
static int apply_record(kvl_inventory_t *inv, const json_t *rec)
{
    const char *t = json_string_value(json_object_get(rec, "t"));
    const char *a = json_string_value(json_object_get(rec, "a"));
    const char *s = json_string_value(json_object_get(rec, "s"));
    const char *d = json_string_value(json_object_get(rec, "d"));
    if (t == NULL || a == NULL || a[0] == '\0') {
        return -1;
    }
    if (strcmp(t, "agent") == 0) {
        inv_agent_t *ag = inv_agent(inv, a, s, true);
        int64_t ls = int_of(rec, "ls");
        if (ag != NULL && ls > ag->last_ms) {
            ag->last_ms = ls;
        }
        return ag != NULL && ls >= 0 ? 0 : -1;
    }
    if (d == NULL || d[0] == '\0') {
        return -1;
    }
    if (strcmp(t, "forget") == 0) {
        const char *fi = json_string_value(json_object_get(rec, "i"));
        inv_entry_t *e = inv_find(inv, a, d, fi != NULL ? fi : "");
        if (e != NULL && e->dev != NULL) {
            inv_remove_iface(inv, e); /* merged into another by a rename */
        } else if (e != NULL) {
            inv_remove_device(inv, e);
        }
        return 0;
    }
    const json_t *i = json_object_get(rec, "i");
    const json_t *l = json_object_get(rec, "l");
    const json_t *jf = json_object_get(rec, "f"), *jls = json_object_get(rec, "ls");
    int64_t r = int_of(rec, "r");
    if (strcmp(t, "neighbour") == 0) {
        if (!json_is_string(i) || !json_is_object(l) || !json_is_integer(jf) ||
            !json_is_integer(jls) || r < 0) {
            return -1;
        }
        return inv_restore_nbr(inv, a, s, d, json_string_value(i), l,
                               (int64_t)json_integer_value(jf), (int64_t)json_integer_value(jls),
                               r) == 0
                   ? 0
                   : -1;
    }
    if (strcmp(t, "entry") != 0 || (i != NULL && !json_is_string(i)) || !json_is_object(l) ||
        !json_is_integer(jf) || !json_is_integer(jls) || r < 0) {
        return -1;
    }
    int64_t f = (int64_t)json_integer_value(jf), ls = (int64_t)json_integer_value(jls);
    if (inv_restore_entry(inv, a, s, d, json_string_value(i), l, f, ls, r) != 0) {
        return -1;
    }
    const json_t *al = json_object_get(rec, "al");
    inv_entry_t *e = i != NULL ? inv_find(inv, a, d, json_string_value(i)) : NULL;
    if (e == NULL || (al != NULL && !json_is_array(al))) {
        return e != NULL || i == NULL ? 0 : -1;
    }
    return inv_set_aliases(inv, e, al, json_is_true(json_object_get(rec, "mv"))) == 0 ? 0 : -1;
}

static int apply_change(kvl_inventory_t *inv, const json_t *rec)
{
    const char *f[6];
    static const char *const keys[6] = {"a", "d", "i", "k", "o", "n"};
    for (int i = 0; i < 6; i++) {
        if ((f[i] = json_string_value(json_object_get(rec, keys[i]))) == NULL) {
            return -1;
        }
    }
    int64_t at = int_of(rec, "at");
    if (at < 0) {
        return -1;
    }
    inv_change_push(inv, at, f[0], f[1], f[2], f[3], f[4], f[5]);
    return 0;
}

typedef struct scan {
    size_t damaged, records;
    bool torn, has_head;
    uint64_t gen;
    uint32_t format; /* the head's "format", 0 without one */
} scan_t;

/* Reads a file of records (after its head, when `head`); a missing file is empty. Returns 0
 * or KVL_EIO. want_gen: a file of another generation is skipped (check_gen). */
static int scan_file(kvl_inventory_t *inv, const char *path, bool head, bool check_gen,
                     uint64_t want_gen, bool changes, scan_t *sc)
{
    memset(sc, 0, sizeof(*sc));
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return errno == ENOENT ? 0 : KVL_EIO;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    bool first = head, skip = false;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] != '\n') {
            sc->torn = true;
            break;
        }
        json_t *rec = (size_t)n <= LINE_MAX_BYTES ? parse_line(line, (size_t)n - 1) : NULL;
        if (first) {
            first = false;
            const char *t = rec != NULL ? json_string_value(json_object_get(rec, "t")) : NULL;
            int64_t gen = rec != NULL ? int_of(rec, "gen") : -1;
            if (t == NULL || strcmp(t, "head") != 0 || gen < 0) {
                sc->damaged++;
                skip = true;
            } else {
                sc->has_head = true;
                sc->gen = (uint64_t)gen;
                int64_t v = int_of(rec, "format");
                sc->format = v < 0 ? 0 : v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
                skip = (check_gen && sc->gen != want_gen) || sc->format > KVL_INV_FORMAT_VERSION;
            }
            json_decref(rec);
            continue;
        }
        if (!skip) {
            int rc = rec == NULL ? -1 : changes ? apply_change(inv, rec) : apply_record(inv, rec);
            if (rc != 0) {
                sc->damaged++;
            } else {
                sc->records++;
            }
        }
        json_decref(rec);
    }
    free(line);
    bool err = ferror(f) != 0;
    fclose(f);
    return err ? KVL_EIO : 0;
}

static int write_line(int fd, json_t *rec)
{
    size_t len;
    char *line = line_of(rec, &len);
    int rc = line != NULL ? kvl_write_all(fd, line, len) : KVL_ENOMEM;
    free(line);
    return rc;
}

/* Appends a record's line to out (the record's reference taken). 0 or KVL_ENOMEM. */
static int buf_line(kvl_buf_t *out, json_t *rec)
{
    size_t len;
    char *line = line_of(rec, &len);
    int rc = line != NULL ? kvl_buf_append(out, line, len) : KVL_ENOMEM;
    free(line);
    return rc;
}

/* Writes name atomically (kvl_file_replace): a head of generation gen, then (snapshot)
 * every agent and entry. */
static int write_atomic(kvl_inventory_t *inv, const char *name, uint64_t gen, bool snapshot)
{
    char path[4200];
    path_of(inv, name, path, sizeof(path));
    kvl_buf_t out = {0};
    int rc = buf_line(&out, json_pack("{s:s, s:I, s:I}", "t", "head", "gen", (json_int_t)gen,
                                      "format", (json_int_t)KVL_INV_FORMAT_VERSION));
    for (size_t i = 0; snapshot && rc == 0 && i < inv->n_agents; i++) {
        const inv_agent_t *a = inv->agents[i];
        rc = buf_line(&out, agent_record(a));
        for (size_t j = 0; rc == 0 && j < a->n_devs; j++) {
            const inv_entry_t *d = a->devs[j];
            rc = buf_line(&out, inv_entry_record(d));
            for (size_t k = 0; rc == 0 && k < d->n_ifs; k++) {
                rc = buf_line(&out, inv_entry_record(d->ifs[k]));
            }
            for (size_t k = 0; rc == 0 && k < d->n_nbrs; k++) {
                rc = buf_line(&out, inv_entry_record(d->nbrs[k]));
            }
        }
    }
    if (rc == 0) {
        rc = kvl_file_replace(path, out.data, out.len, 0640) == 0 ? 0 : KVL_EIO;
    }
    kvl_buf_free(&out);
    return rc;
}

int inv_store_compact(kvl_inventory_t *inv)
{
    uint64_t gen = inv->gen + 1;
    int rc = write_atomic(inv, "inventory.snap", gen, true);
    if (rc == 0) {
        rc = write_atomic(inv, "inventory.log", gen, false);
    }
    if (rc != 0) {
        KVL_LOG_ERROR(MOD, inv->dir, "the inventory could not be written: %s", strerror(errno));
        return rc;
    }
    char path[4200];
    path_of(inv, "inventory.log", path, sizeof(path));
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) {
        KVL_LOG_ERROR(MOD, path, "cannot open: %s", strerror(errno));
        return KVL_EIO;
    }
    if (inv->log_fd >= 0) {
        close(inv->log_fd);
    }
    inv->log_fd = fd;
    inv->gen = gen;
    inv->log_records = 0;
    return 0;
}

static void append(kvl_inventory_t *inv, json_t *rec)
{
    if (inv->loading) {
        json_decref(rec);
        return;
    }
    int rc = inv->log_fd >= 0 ? write_line(inv->log_fd, rec) : (json_decref(rec), KVL_EIO);
    if (rc != 0) {
        if (!inv->io_failed_logged) {
            inv->io_failed_logged = true;
            KVL_LOG_ERROR(MOD, inv->dir, "inventory.log: write failed: %s", kvl_strerror(rc));
        }
        return;
    }
    inv->io_failed_logged = false;
    inv->written++;
    if (++inv->log_records >= COMPACT_RECORDS) {
        inv_store_compact(inv);
    }
}

void inv_store_entry(kvl_inventory_t *inv, const inv_entry_t *e)
{
    if (!inv->loading) {
        append(inv, inv_entry_record(e));
    }
}

void inv_store_forget(kvl_inventory_t *inv, const char *agent, const char *device)
{
    append(inv, json_pack("{s:s, s:s, s:s}", "t", "forget", "a", agent, "d", device));
}

void inv_store_forget_iface(kvl_inventory_t *inv, const char *agent, const char *device,
                            const char *instance)
{
    append(inv, json_pack("{s:s, s:s, s:s, s:s}", "t", "forget", "a", agent, "d", device, "i",
                          instance));
}

void inv_store_agent(kvl_inventory_t *inv, const inv_agent_t *a)
{
    append(inv, agent_record(a));
}

static void changes_rotate(kvl_inventory_t *inv)
{
    char path[4200], old[4200];
    path_of(inv, "changes.log", path, sizeof(path));
    path_of(inv, "changes.1.log", old, sizeof(old));
    if (inv->ch_file != NULL) {
        fclose(inv->ch_file);
        inv->ch_file = NULL;
    }
    if (rename(path, old) != 0 && errno != ENOENT) {
        KVL_LOG_ERROR(MOD, path, "cannot rotate: %s", strerror(errno));
    }
    inv->ch_file = fopen(path, "a");
    inv->ch_lines = 0;
}

void inv_store_change(kvl_inventory_t *inv, const inv_change_t *c)
{
    if (inv->loading) {
        return;
    }
    if (inv->ch_lines >= inv->o.changes_max) {
        changes_rotate(inv);
    }
    if (inv->ch_file == NULL) {
        return;
    }
    const char *f[6];
    inv_change_fields(c, &f[0], &f[1], &f[2], &f[3], &f[4], &f[5]);
    size_t len;
    char *line =
        line_of(json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s}", "at", (json_int_t)c->at, "a", f[0],
                          "d", f[1], "i", f[2], "k", f[3], "o", f[4], "n", f[5]),
                &len);
    if (line != NULL && fwrite(line, 1, len, inv->ch_file) == len && fflush(inv->ch_file) == 0) {
        inv->ch_lines++;
    }
    free(line);
}

static void report(const char *path, const scan_t *sc)
{
    if (sc->damaged > 0 || sc->torn) {
        KVL_LOG_WARN(MOD, path, "%zu damaged lines skipped%s", sc->damaged,
                     sc->torn ? ", a torn last line dropped" : "");
    }
}

int inv_store_open(kvl_inventory_t *inv, char *err, size_t errlen)
{
    if (mkdir(inv->dir, 0750) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "inventory: cannot make %s: %s", inv->dir, strerror(errno));
        return KVL_EIO;
    }
    char path[4200];
    /* One process at a time: `--forget-device` beside a running collector is refused. */
    path_of(inv, "lock", path, sizeof(path));
    inv->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (inv->lock_fd < 0 || flock(inv->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        bool busy = inv->lock_fd >= 0 && errno == EWOULDBLOCK;
        snprintf(err, errlen, "inventory: %s %s%s",
                 busy ? "in use by another process:" : "cannot lock", inv->dir,
                 busy ? " (is the collector running?)" : "");
        return KVL_EIO;
    }
    scan_t sc;
    inv->loading = true;
    static const char *const names[] = {"inventory.snap", "inventory.log", "changes.1.log",
                                        "changes.log"};
    uint64_t gen = 0;
    bool snap_ok = false, log_empty = false, ch_torn = false;
    for (size_t i = 0; i < KVL_ARRAY_SIZE(names); i++) {
        path_of(inv, names[i], path, sizeof(path));
        bool changes = i >= 2;
        if (scan_file(inv, path, !changes, i == 1, gen, changes, &sc) != 0) {
            inv->loading = false;
            snprintf(err, errlen, "inventory: cannot read %s: %s", path, strerror(errno));
            return KVL_EIO;
        }
        if (i < 2 && kvl_format_check(path, sc.format, KVL_INV_FORMAT_VERSION, "kaaval-collector",
                                      "the devices' former names are then lost; the inventory is "
                                      "learned again from the agents",
                                      err, errlen) != 0) {
            inv->loading = false;
            return KVL_EPROTO;
        }
        if (i == 0) {
            gen = sc.gen;
            /* (a snapshot of an older format is written again, with this one's) */
            snap_ok =
                sc.has_head && sc.damaged == 0 && !sc.torn && sc.format == KVL_INV_FORMAT_VERSION;
        } else if (i == 1) {
            log_empty =
                sc.has_head && sc.gen == gen && sc.records == 0 && sc.damaged == 0 && !sc.torn;
        } else if (i == 3) {
            inv->ch_lines = sc.records + sc.damaged;
            ch_torn = sc.torn;
        }
        inv->damaged += sc.damaged;
        report(path, &sc);
    }
    inv->loading = false;
    inv->gen = gen;
    /* A sound snapshot and an empty log of its generation: appended to as they are; else
     * the state is written again (the log folded in, damage and torn tails left behind). */
    if (snap_ok && log_empty) {
        path_of(inv, "inventory.log", path, sizeof(path));
        inv->log_fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    }
    if (inv->log_fd < 0 && inv_store_compact(inv) != 0) {
        snprintf(err, errlen, "inventory: cannot write in %s: %s", inv->dir, strerror(errno));
        return KVL_EIO;
    }
    path_of(inv, "changes.log", path, sizeof(path));
    inv->ch_file = fopen(path, "a");
    if (inv->ch_file == NULL) {
        snprintf(err, errlen, "inventory: cannot open %s: %s", path, strerror(errno));
        return KVL_EIO;
    }
    if (ch_torn) {
        fputc('\n', inv->ch_file); /* the torn line ends here, a damaged line skipped later */
        fflush(inv->ch_file);
    }
    return 0;
}

void inv_store_close(kvl_inventory_t *inv)
{
    if (inv->log_fd >= 0) {
        inv_store_compact(inv);
        close(inv->log_fd);
        inv->log_fd = -1;
    }
    if (inv->ch_file != NULL) {
        fclose(inv->ch_file);
        inv->ch_file = NULL;
    }
    if (inv->lock_fd >= 0) {
        close(inv->lock_fd); /* and with it the lock */
        inv->lock_fd = -1;
    }
}
