/*
 * capacity_report.c — one capacity report computed on the thread pool (capacity.h): every
 * interface's and device's archive read once (rrd_store.h's kvl_rrd_fetch), the link
 * archives found under <data_dir>/<site>/<agent>/_links/, figures from capacity_calc.h.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capacity_calc.h"
#include "capacity_int.h"
#include "kvl.h"
#include "rrd_store.h"
#include "store.h"

#define WANTED_STEP 300
#define DAYS_MAX 800 /* daily means kept per series (365 days and the edges fit) */
#define TOO_MANY 1   /* find_links: more links than the report may read */

static json_t *num(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static json_t *pct(double v, double speed)
{
    return isfinite(v) && speed > 0.0 ? json_real(100.0 * v / speed) : json_null();
}

static size_t ds_index(const kvl_rrd_points_t *p, const char *name)
{
    for (size_t k = 0; k < p->n_ds; k++) {
        if (strcmp(p->ds_names[k], name) == 0) {
            return k;
        }
    }
    return SIZE_MAX;
}

/* The rows that end by `to` (librrd also returns the row under way, or one beyond): the
 * period's rows. */
static size_t rows_until(const kvl_rrd_points_t *p, int64_t to)
{
    if (p->step == 0 || to <= p->start) {
        return 0;
    }
    size_t n = (size_t)((to - p->start) / p->step);
    return n < p->n_rows ? n : p->n_rows;
}

/* The rows of one data source times `scale` into a new array (NaN where unknown or where
 * the archive has no such data source). */
static double *column(const kvl_rrd_points_t *p, size_t k, double scale)
{
    double *v = malloc((p->n_rows ? p->n_rows : 1) * sizeof(*v));
    for (size_t i = 0; v != NULL && i < p->n_rows; i++) {
        v[i] = k == SIZE_MAX ? NAN : p->values[i * p->n_ds + k] * scale;
    }
    return v;
}

typedef struct dir_figs {
    kvl_cap_stats_t st;
    double p95;
} dir_figs_t;

static json_t *dir_json(const dir_figs_t *f, double speed)
{
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "avg_bps", num(f->st.avg), "peak_bps",
                     num(f->st.peak), "p95_bps", num(f->p95), "avg_pct", pct(f->st.avg, speed),
                     "peak_pct", pct(f->st.peak, speed), "p95_pct", pct(f->p95, speed));
}

/* The figures of one interface into o, from its archive's rows ending by `to`. Returns 0 or
 * KVL_ENOMEM. */
static int iface_figures(json_t *o, kvl_rrd_points_t *p, int64_t to)
{
    p->n_rows = rows_until(p, to);
    p->end = p->start + (int64_t)p->n_rows * p->step;
    double *in = column(p, ds_index(p, "in_octets"), 8.0);
    double *out = column(p, ds_index(p, "out_octets"), 8.0);
    double *sp = column(p, ds_index(p, "speed_bps"), 1.0);
    double *day = malloc(DAYS_MAX * sizeof(double)), *mean = malloc(DAYS_MAX * sizeof(double));
    if (in == NULL || out == NULL || sp == NULL || day == NULL || mean == NULL) {
        free(in), free(out), free(sp), free(day), free(mean);
        return KVL_ENOMEM;
    }
    /* the speed: the last known in the period, else the inventory's label */
    double speed = NAN;
    const char *source = NULL;
    for (size_t i = p->n_rows; i-- > 0;) {
        if (!isnan(sp[i]) && sp[i] > 0.0) {
            speed = sp[i];
            source = "archive";
            break;
        }
    }
    const char *label = json_string_value(json_object_get(o, "_speed"));
    if (source == NULL && label != NULL) {
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(label, &end, 10);
        if (errno == 0 && end != label && *end == '\0' && v > 0) {
            speed = (double)v;
            source = "inventory";
        }
    }
    dir_figs_t fin, fout;
    kvl_cap_stats(in, p->n_rows, 1, &fin.st);
    kvl_cap_stats(out, p->n_rows, 1, &fout.st);
    bool out_busier = isnan(fin.st.avg) || (!isnan(fout.st.avg) && fout.st.avg > fin.st.avg);
    /* daily means of the busier direction (before the columns are sorted) over the whole
     * UTC days of the period: a part of a day would weigh its hours (a night) as a day */
    long long step = p->step, day_lo = ((long long)p->start + 86399) / 86400,
              day_hi = (long long)p->end / 86400; /* days [day_lo, day_hi) */
    size_t first = 0, last = p->n_rows;           /* rows [first, last) */
    while (first < last && (long long)p->start + (long long)first * step < day_lo * 86400) {
        first++;
    }
    while (last > first && (long long)p->start + (long long)last * step > day_hi * 86400) {
        last--;
    }
    size_t nd =
        kvl_cap_daily((long long)p->start + (long long)(first + 1) * step, step,
                      (out_busier ? out : in) + first, last - first, 1, day, mean, DAYS_MAX);
    for (size_t i = 0; i < nd; i++) {
        day[i] += 0.5; /* a day's mean stands at its middle */
    }
    fin.p95 = kvl_cap_percentile(in, p->n_rows, 95.0);
    fout.p95 = kvl_cap_percentile(out, p->n_rows, 95.0);
    kvl_cap_fit_t fit;
    double slope = NAN, at_end = NAN, days80 = -1.0;
    if (kvl_cap_fit(day, mean, nd, &fit) == 0) {
        slope = fit.slope;
        at_end = fit.intercept + fit.slope * ((double)p->end / 86400.0);
        if (speed > 0.0) {
            days80 = kvl_cap_days_to(at_end, slope, 0.8 * speed);
        }
    }
    json_object_set_new(o, "speed_bps", num(speed));
    json_object_set_new(o, "speed_source", source != NULL ? json_string(source) : json_null());
    json_object_set_new(o, "resolution_s", json_integer(p->step));
    json_object_set_new(o, "start", json_integer(p->start));
    json_object_set_new(o, "end", json_integer(p->end));
    json_object_set_new(o, "samples", json_integer((json_int_t)fin.st.known));
    json_object_set_new(o, "unknown", json_integer((json_int_t)fin.st.unknown));
    json_object_set_new(o, "in", dir_json(&fin, speed));
    json_object_set_new(o, "out", dir_json(&fout, speed));
    json_object_set_new(o, "busier", json_string(out_busier ? "out" : "in"));
    json_object_set_new(o, "trend_days", json_integer((json_int_t)fit.n));
    json_object_set_new(o, "trend_bps_per_day", num(slope));
    json_object_set_new(o, "trend_end_bps", num(at_end));
    json_object_set_new(o, "days_to_80", days80 >= 0.0 ? json_real(days80) : json_null());
    free(in), free(out), free(sp), free(day), free(mean);
    return 0;
}

static void avail_json(json_t *o, const kvl_cap_avail_t *a)
{
    json_object_set_new(o, "availability_pct", num(kvl_cap_avail_pct(a)));
    json_object_set_new(o, "up_minutes", json_real(a->up_s / 60.0));
    json_object_set_new(o, "outage_minutes", json_real(a->down_s / 60.0));
    json_object_set_new(o, "unknown_minutes", json_real(a->unknown_s / 60.0));
}

/* Reads one state archive (a device's `reachable`, a link's `lost_pct`) into o and adds
 * its time to the site's. Returns 0, 1 (no archive: o left out) or KVL_ENOMEM. */
static int state_figures(cap_job_t *job, json_t *o, const char *path, const char *ds,
                         double down_at, json_t *sites)
{
    if (path == NULL) {
        return 1; /* a job runs once: its paths are taken out of the answer */
    }
    kvl_rrd_points_t p = {0};
    char err[400];
    kvl_rrd_result_t rc =
        kvl_rrd_fetch(path, "AVERAGE", job->from, job->to, WANTED_STEP, &p, err, sizeof(err));
    if (rc == KVL_RRD_MISSING) {
        return 1;
    }
    kvl_cap_avail_t a = {0};
    if (rc != KVL_RRD_OK) {
        json_object_set_new(o, "error", json_string(err));
    } else {
        size_t k = ds_index(&p, ds);
        if (k == SIZE_MAX) {
            json_object_set_new(o, "error", json_sprintf("the archive has no %s", ds));
        } else {
            kvl_cap_avail_add(&a, p.values + k, rows_until(&p, job->to), p.n_ds, (double)p.step,
                              down_at);
        }
        json_object_set_new(o, "resolution_s", json_integer(p.step));
    }
    kvl_rrd_points_free(&p);
    avail_json(o, &a);
    const char *site = json_string_value(json_object_get(o, "site"));
    json_t *s = json_object_get(sites, site);
    if (s == NULL) {
        s = json_pack("{s:s, s:f, s:f, s:f, s:i, s:i}", "site", site, "up_s", 0.0, "down_s", 0.0,
                      "unknown_s", 0.0, "devices", 0, "links", 0);
        if (s == NULL || json_object_set_new(sites, site, s) != 0) {
            return KVL_ENOMEM;
        }
    }
    static const char *const keys[] = {"up_s", "down_s", "unknown_s"};
    const double add[] = {a.up_s, a.down_s, a.unknown_s};
    for (size_t i = 0; i < 3; i++) {
        double v = json_real_value(json_object_get(s, keys[i])) + add[i];
        json_object_set_new(s, keys[i], json_real(v));
    }
    const char *count = down_at >= 0.0 ? "links" : "devices";
    json_object_set_new(s, count, json_integer(json_integer_value(json_object_get(s, count)) + 1));
    return 0;
}

/* The links under <data_dir>/<site>/<agent>/_links/ that the job selects, as objects
 * {agent, site, target, "_path"} appended to links (none when the archives are on a remote
 * rrdcached: data_dir ""). Returns 0, KVL_ENOMEM, or TOO_MANY
 * when more than `room` were found. */
static int find_links(cap_job_t *job, json_t *links, size_t room)
{
    if (job->data_dir[0] == '\0') {
        return 0; /* remote rrdcached: no folder here to list (its LIST is not in librrd 1.7) */
    }
    DIR *top = opendir(job->data_dir);
    if (top == NULL) {
        return 0;
    }
    int rc = 0;
    struct dirent *se;
    char site[512], agent[512], target[512], path[PATH_MAX];
    while (rc == 0 && (se = readdir(top)) != NULL) {
        if (se->d_name[0] == '_' || se->d_name[0] == '.' ||
            kvl_cap_name_decode(se->d_name, site, sizeof(site)) != 0 ||
            (job->sites != NULL && json_object_get(job->sites, site) == NULL)) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", job->data_dir, se->d_name);
        DIR *sd = opendir(path);
        struct dirent *ae;
        while (rc == 0 && sd != NULL && (ae = readdir(sd)) != NULL) {
            if (ae->d_name[0] == '_' || ae->d_name[0] == '.' ||
                kvl_cap_name_decode(ae->d_name, agent, sizeof(agent)) != 0 ||
                (job->agent != NULL && strcmp(job->agent, agent) != 0)) {
                continue;
            }
            int n = snprintf(path, sizeof(path), "%s/%s/%s/_links", job->data_dir, se->d_name,
                             ae->d_name);
            DIR *ld = n > 0 && (size_t)n < sizeof(path) ? opendir(path) : NULL;
            struct dirent *le;
            while (rc == 0 && ld != NULL && (le = readdir(ld)) != NULL) {
                size_t len = strlen(le->d_name);
                char base[512];
                if (len <= 4 || len - 4 >= sizeof(base) ||
                    strcmp(le->d_name + len - 4, ".rrd") != 0) {
                    continue;
                }
                memcpy(base, le->d_name, len - 4);
                base[len - 4] = '\0';
                if (kvl_cap_name_decode(base, target, sizeof(target)) != 0) {
                    continue;
                }
                if (json_array_size(links) >= room) {
                    rc = TOO_MANY;
                    break;
                }
                char file[PATH_MAX];
                n = snprintf(file, sizeof(file), "%s/%s", path, le->d_name);
                json_t *o = n > 0 && (size_t)n < sizeof(file)
                                ? json_pack("{s:s, s:s, s:s, s:s}", "agent", agent, "site", site,
                                            "target", target, "_path", file)
                                : NULL;
                if (o == NULL || json_array_append_new(links, o) != 0) {
                    rc = KVL_ENOMEM;
                }
            }
            if (ld != NULL) {
                closedir(ld);
            }
            /* path is reused: the site's folder again for the next agent */
            snprintf(path, sizeof(path), "%s/%s", job->data_dir, se->d_name);
        }
        if (sd != NULL) {
            closedir(sd);
        }
    }
    closedir(top);
    return rc;
}

/* Removes the keys starting with '_' (paths, labels) from every object of arr. */
static void strip_private(json_t *arr)
{
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        const char *key;
        json_t *v;
        void *tmp;
        json_object_foreach_safe(o, tmp, key, v)
        {
            if (key[0] == '_') {
                json_object_del(o, key);
            }
        }
    }
}

/* A job's interface archives read into their objects. Returns 0 or KVL_ENOMEM. */
static int read_ifaces(cap_job_t *job, json_t *kept, int64_t *coarsest)
{
    size_t i;
    json_t *o;
    json_array_foreach(job->ifaces, i, o)
    {
        const char *path = json_string_value(json_object_get(o, "_path"));
        if (path == NULL) {
            continue; /* a job runs once: its paths are taken out of the answer */
        }
        kvl_rrd_points_t p = {0};
        char err[400];
        kvl_rrd_result_t rc =
            kvl_rrd_fetch(path, "AVERAGE", job->from, job->to, WANTED_STEP, &p, err, sizeof(err));
        if (rc == KVL_RRD_MISSING) {
            continue; /* in the inventory, never archived (or moved away): no figures */
        }
        int frc = 0;
        if (rc != KVL_RRD_OK) {
            json_object_set_new(o, "error", json_string(err));
        } else {
            frc = iface_figures(o, &p, job->to);
            if ((int64_t)p.step > *coarsest) {
                *coarsest = p.step;
            }
        }
        kvl_rrd_points_free(&p);
        if (frc != 0 || json_array_append(kept, o) != 0) {
            return KVL_ENOMEM;
        }
    }
    return 0;
}

/* v replaced by x when x is known and v is not, or x is larger (smaller when `min`). */
static void keep_extreme(json_t *o, const char *key, const json_t *x, bool min)
{
    if (!json_is_number(x)) {
        return;
    }
    const json_t *v = json_object_get(o, key);
    double a = json_number_value(x);
    if (!json_is_number(v) || (min ? a < json_number_value(v) : a > json_number_value(v))) {
        json_object_set_new(o, key, json_real(a));
    }
}

/* The circuits: the interfaces grouped by their circuit name (ifAlias; both ends of a
 * circuit when both are polled), with the worst of their figures. Returns the array, or
 * NULL when out of memory. */
static json_t *circuits_list(const json_t *ifaces)
{
    json_t *by = json_object(), *arr = json_array();
    size_t i;
    const json_t *o;
    json_array_foreach(ifaces, i, o)
    {
        const char *name = json_string_value(json_object_get(o, "circuit"));
        if (name == NULL || by == NULL || arr == NULL) {
            continue;
        }
        json_t *c = json_object_get(by, name);
        if (c == NULL) {
            c = json_pack("{s:s, s:[], s:n, s:n, s:n, s:n, s:n, s:n}", "circuit", name, "members",
                          "speed_bps", "p95_bps", "p95_pct", "peak_pct", "trend_bps_per_day",
                          "days_to_80");
            if (c == NULL || json_object_set_new(by, name, c) != 0 ||
                json_array_append(arr, c) != 0) {
                json_decref(arr);
                arr = NULL;
                continue;
            }
        }
        json_array_append_new(
            json_object_get(c, "members"),
            json_pack("{s:O, s:O, s:O, s:O}", "agent", json_object_get(o, "agent"), "site",
                      json_object_get(o, "site"), "device", json_object_get(o, "device"),
                      "interface", json_object_get(o, "interface")));
        keep_extreme(c, "speed_bps", json_object_get(o, "speed_bps"), false);
        static const char *const dirs[] = {"in", "out"};
        for (size_t d = 0; d < 2; d++) {
            const json_t *f = json_object_get(o, dirs[d]);
            keep_extreme(c, "p95_bps", json_object_get(f, "p95_bps"), false);
            keep_extreme(c, "p95_pct", json_object_get(f, "p95_pct"), false);
            keep_extreme(c, "peak_pct", json_object_get(f, "peak_pct"), false);
        }
        keep_extreme(c, "trend_bps_per_day", json_object_get(o, "trend_bps_per_day"), false);
        keep_extreme(c, "days_to_80", json_object_get(o, "days_to_80"), true);
    }
    json_decref(by);
    return arr;
}

static json_t *sites_list(json_t *sites)
{
    json_t *arr = json_array();
    const char *name;
    json_t *s;
    json_object_foreach(sites, name, s)
    {
        kvl_cap_avail_t a = {json_real_value(json_object_get(s, "up_s")),
                             json_real_value(json_object_get(s, "down_s")),
                             json_real_value(json_object_get(s, "unknown_s"))};
        json_t *o = json_pack("{s:s, s:O, s:O}", "site", name, "devices",
                              json_object_get(s, "devices"), "links", json_object_get(s, "links"));
        if (o == NULL || arr == NULL) {
            json_decref(o);
            json_decref(arr);
            return NULL;
        }
        avail_json(o, &a);
        json_array_append_new(arr, o);
    }
    return arr;
}

void kvl_cap_report_run(cap_job_t *job)
{
    json_t *ifaces = json_array(), *devices = json_array(), *links = json_array();
    json_t *sites = json_object();
    int64_t coarsest = 0;
    int rc = ifaces && devices && links && sites ? 0 : KVL_ENOMEM;
    size_t files = json_array_size(job->ifaces) + json_array_size(job->devices);
    if (rc == 0 && job->links) {
        rc = find_links(job, links, files < job->files_max ? job->files_max - files : 0);
        if (rc == TOO_MANY) {
            job->status = 400;
            snprintf(job->err, sizeof(job->err),
                     "the report would read more than %zu archives: narrow it with site=, "
                     "agent= or device=",
                     job->files_max);
        }
    }
    if (rc == 0) {
        rc = read_ifaces(job, ifaces, &coarsest);
    }
    size_t i;
    json_t *o;
    json_array_foreach(job->devices, i, o)
    {
        if (rc != 0) {
            break;
        }
        int r = state_figures(job, o, json_string_value(json_object_get(o, "_path")), "reachable",
                              -1.0, sites);
        if (r < 0 || (r == 0 && json_array_append(devices, o) != 0)) {
            rc = KVL_ENOMEM;
        }
    }
    json_t *kept_links = json_array();
    json_array_foreach(links, i, o)
    {
        if (rc != 0 || kept_links == NULL) {
            break;
        }
        int r = state_figures(job, o, json_string_value(json_object_get(o, "_path")), "lost_pct",
                              99.999, sites);
        if (r < 0 || (r == 0 && json_array_append(kept_links, o) != 0)) {
            rc = KVL_ENOMEM;
        }
    }
    json_t *site_arr = rc == 0 ? sites_list(sites) : NULL;
    json_t *circuits = rc == 0 ? circuits_list(ifaces) : NULL;
    if (rc == 0 && (site_arr == NULL || kept_links == NULL || circuits == NULL)) {
        rc = KVL_ENOMEM;
    }
    if (rc == 0) {
        strip_private(ifaces);
        strip_private(devices);
        strip_private(kept_links);
        job->answer = json_object();
        json_t *a = job->answer;
        if (a != NULL) {
            json_object_set_new(a, "days", json_integer(job->days));
            json_object_set_new(a, "from", json_integer(job->from));
            json_object_set_new(a, "to", json_integer(job->to));
            json_object_set_new(a, "resolution_wanted_s", json_integer(WANTED_STEP));
            json_object_set_new(a, "resolution_s", coarsest ? json_integer(coarsest) : json_null());
            if (json_object_set(a, "interfaces", ifaces) != 0 ||
                json_object_set(a, "devices", devices) != 0 ||
                json_object_set(a, "links", kept_links) != 0 ||
                json_object_set(a, "sites", site_arr) != 0 ||
                json_object_set(a, "circuits", circuits) != 0) {
                json_decref(a);
                job->answer = NULL;
            }
        }
        if (job->answer == NULL) {
            rc = KVL_ENOMEM;
        } else {
            job->status = 200;
        }
    }
    if (rc == KVL_ENOMEM) {
        job->status = 500;
        snprintf(job->err, sizeof(job->err), "out of memory");
    }
    json_decref(ifaces);
    json_decref(devices);
    json_decref(links);
    json_decref(kept_links);
    json_decref(site_arr);
    json_decref(circuits);
    json_decref(sites);
}
