/*
 * graph_draw.c — rrd_graph_v's arguments per kind of graph and the call itself
 * (graph_draw.h). With store/rrd_store.c the only users of librrd.
 *
 * No argument is built from unchecked text: the path comes from the store's path functions
 * (names made file-safe) and has its ':' escaped as rrdtool wants ("\:"); data sources are
 * the file's own names (librrd allows [A-Za-z0-9_] only) and are checked again here; the
 * title is its own argument (rrdtool does not parse it) with control characters replaced;
 * every legend is a fixed text.
 */
#include "graph_draw.h"

#include <errno.h>
#include <inttypes.h>
#include <rrd.h>
#include <rrd_client.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#include "kvl.h"
#include "rrd_store.h"

#define ARGS_MAX 600

static char daemon_opt[] = "--daemon";
#define DS_MAX 64
#define GROUP_LINES_MAX 24
#define TITLE_MAX 300

/* librrd's graphing (fonts, the option parser) is not reentrant in every path. */
static uv_once_t lock_once = UV_ONCE_INIT;
static uv_mutex_t lock;

static void lock_init(void)
{
    if (uv_mutex_init(&lock) != 0) {
        abort();
    }
}

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KVL_GRAPH_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(KVL_GRAPH_ASAN)
/* LeakSanitizer (ASan builds; CI runs the tests with detect_leaks=1): librrd 1.7's graphing
 * and the fonts under it keep memory of their own (fontconfig's caches; strings librrd
 * formats with vasprintf while parsing, whose stacks the fast unwinder loses inside libc: no
 * kaaval code calls vasprintf, arg() below formats with vsnprintf). A few hundred bytes a
 * draw, measured with valgrind too. Not kaaval's to free: a program that draws names them
 * here, and nothing else. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:librrd.so\nleak:libfontconfig.so\nleak:libpango\nleak:libcairo.so\n"
           "leak:libglib-2.0.so\nleak:vasprintf\n";
}
#endif

typedef struct args {
    char **v;
    int n;
    bool nomem;
} args_t;

static void arg(args_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void arg(args_t *a, const char *fmt, ...)
{
    if (a->nomem || a->n >= ARGS_MAX) {
        a->nomem = true;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s == NULL) {
        a->nomem = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    a->v[a->n++] = s;
}

void kvl_graph_args_free(char **argv, int argc)
{
    for (int i = 0; argv != NULL && i < argc; i++) {
        free(argv[i]);
    }
    free(argv);
}

/* ':' escaped with a backslash, as DEF's file name needs. */
static char *escape_path(const char *path)
{
    size_t n = 0;
    for (const char *p = path; *p != '\0'; p++) {
        n += *p == ':' ? 2 : 1;
    }
    char *out = malloc(n + 1), *o = out;
    if (out == NULL) {
        return NULL;
    }
    for (const char *p = path; *p != '\0'; p++) {
        if (*p == ':') {
            *o++ = '\\';
        }
        *o++ = *p;
    }
    *o = '\0';
    return out;
}

static bool has(const char *const *ds, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(ds[i], name) == 0) {
            return true;
        }
    }
    return false;
}

static bool ds_name_ok(const char *s)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_')) {
            return false;
        }
    }
    return n > 0 && n <= 19;
}

typedef struct theme {
    const char *back, *canvas, *font, *axis, *mgrid, *grid;
    const char *smoke[3]; /* outer, middle, inner */
    const char *in, *out, *in95, *out95, *speed;
} theme_t;

static const theme_t themes[2] = {
    [KVL_GRAPH_DARK] = {"#11151a",
                        "#181d24",
                        "#e8e8e8",
                        "#9aa3ad",
                        "#59616b",
                        "#2c323a",
                        {"#3a3f46", "#5b626b", "#838b94"},
                        "#27ae60",
                        "#4aa3ff",
                        "#a8f0c0",
                        "#b8dcff",
                        "#ff5c5c"},
    [KVL_GRAPH_LIGHT] = {"#ffffff",
                         "#ffffff",
                         "#000000",
                         "#333333",
                         "#9a9a9a",
                         "#dddddd",
                         {"#e2e2e2", "#c4c4c4", "#a0a0a0"},
                         "#1e9e50",
                         "#1f5fbf",
                         "#0a6630",
                         "#0b2f66",
                         "#d01010"},
};

static const char *const palette[] = {"#27ae60", "#4aa3ff", "#f39c12", "#e74c3c",
                                      "#9b59b6", "#1abc9c", "#f1c40f", "#e67e22",
                                      "#95a5a6", "#ff6fb0", "#34495e", "#7fdbff"};

static void common_args(args_t *a, const kvl_graph_draw_t *d)
{
    const theme_t *t = &themes[d->theme == KVL_GRAPH_LIGHT ? KVL_GRAPH_LIGHT : KVL_GRAPH_DARK];
    char title[TITLE_MAX + 1];
    size_t k = 0;
    for (const unsigned char *p = (const unsigned char *)(d->title ? d->title : "");
         *p != '\0' && k < TITLE_MAX; p++) {
        title[k++] = *p < 0x20 || *p == 0x7f ? ' ' : (char)*p;
    }
    title[k] = '\0';
    arg(a, "graph"); /* argv[0], as rrdtool's command line hands it */
    arg(a, "-");
    arg(a, "--imgformat");
    arg(a, "%s", d->format == KVL_GRAPH_SVG ? "SVG" : "PNG");
    arg(a, "--start");
    arg(a, "%" PRId64, d->from);
    arg(a, "--end");
    arg(a, "%" PRId64, d->to);
    arg(a, "--width");
    arg(a, "%" PRIu32, d->width);
    arg(a, "--height");
    arg(a, "%" PRIu32, d->height);
    arg(a, "--title=%s", title); /* one argument: never one that starts with the text */
    arg(a, "--border");
    arg(a, "0");
    arg(a, "--slope-mode");
    arg(a, "--disable-rrdtool-tag");
    arg(a, "--font");
    arg(a, "DEFAULT:9:");
    arg(a, "--font");
    arg(a, "TITLE:11:");
    static const char *const which[] = {"BACK",  "CANVAS", "FONT",   "AXIS",   "ARROW",
                                        "MGRID", "GRID",   "SHADEA", "SHADEB", "FRAME"};
    const char *col[] = {t->back,  t->canvas, t->font, t->axis, t->axis,
                         t->mgrid, t->grid,   t->back, t->back, t->back};
    for (size_t i = 0; i < KVL_ARRAY_SIZE(which); i++) {
        arg(a, "--color");
        arg(a, "%s%s", which[i], col[i]);
    }
}

/* last, avg, max (and with_min the minimum) of vname (VDEFs <v>l, <v>a, <v>m, <v>n)
 * printed with fmt, the last one ending the legend's line. */
static void stats_of(args_t *a, const char *v, const char *fmt, bool with_min)
{
    arg(a, "VDEF:%sl=%s,LAST", v, v);
    arg(a, "VDEF:%sa=%s,AVERAGE", v, v);
    arg(a, "VDEF:%sm=%s,MAXIMUM", v, v);
    if (with_min) {
        arg(a, "VDEF:%sn=%s,MINIMUM", v, v);
    }
    arg(a, "GPRINT:%sl:%s", v, fmt);
    arg(a, "GPRINT:%sa:%s", v, fmt);
    arg(a, with_min ? "GPRINT:%sm:%s" : "GPRINT:%sm:%s\\l", v, fmt);
    if (with_min) {
        arg(a, "GPRINT:%sn:%s\\l", v, fmt);
    }
}

static void stats(args_t *a, const char *v, const char *fmt)
{
    stats_of(a, v, fmt, false);
}

static void header(args_t *a, const char *extra)
{
    arg(a, "COMMENT:%-18s%-12s%-12s%-12s%s\\l", " ", "last", "average", "maximum", extra);
}

static void traffic(args_t *a, const char *p, const theme_t *t)
{
    arg(a, "--vertical-label");
    arg(a, "bit/s");
    arg(a, "--lower-limit");
    arg(a, "0");
    arg(a, "DEF:ib=%s:in_octets:AVERAGE", p);
    arg(a, "DEF:ob=%s:out_octets:AVERAGE", p);
    arg(a, "DEF:spd=%s:speed_bps:AVERAGE", p);
    arg(a, "CDEF:in=ib,8,*");
    arg(a, "CDEF:out=ob,8,*");
    arg(a, "VDEF:in95=in,95,PERCENTNAN");
    arg(a, "VDEF:out95=out,95,PERCENTNAN");
    arg(a, "VDEF:spdl=spd,LAST");
    header(a, "95th percentile");
    arg(a, "AREA:in%s:%-16s", t->in, "in");
    arg(a, "VDEF:inl=in,LAST");
    arg(a, "VDEF:ina=in,AVERAGE");
    arg(a, "VDEF:inm=in,MAXIMUM");
    arg(a, "GPRINT:inl:%%7.2lf %%sb/s");
    arg(a, "GPRINT:ina:%%7.2lf %%sb/s");
    arg(a, "GPRINT:inm:%%7.2lf %%sb/s");
    arg(a, "GPRINT:in95:%%7.2lf %%sb/s\\l");
    arg(a, "LINE2:out%s:%-16s", t->out, "out");
    arg(a, "VDEF:outl=out,LAST");
    arg(a, "VDEF:outa=out,AVERAGE");
    arg(a, "VDEF:outm=out,MAXIMUM");
    arg(a, "GPRINT:outl:%%7.2lf %%sb/s");
    arg(a, "GPRINT:outa:%%7.2lf %%sb/s");
    arg(a, "GPRINT:outm:%%7.2lf %%sb/s");
    arg(a, "GPRINT:out95:%%7.2lf %%sb/s\\l");
    arg(a, "HRULE:in95%s:95th in:dashes", t->in95);
    arg(a, "HRULE:out95%s:95th out:dashes", t->out95);
    arg(a, "LINE1:spd%s:speed", t->speed);
    arg(a, "GPRINT:spdl:%%7.2lf %%sb/s\\l");
}

static void lines(args_t *a, const char *p, const char *const (*ds)[2], size_t n, const char *unit)
{
    arg(a, "--vertical-label");
    arg(a, "%s", unit);
    arg(a, "--lower-limit");
    arg(a, "0");
    header(a, "");
    for (size_t i = 0; i < n; i++) {
        arg(a, "DEF:v%zu=%s:%s:AVERAGE", i, p, ds[i][0]);
        arg(a, "LINE%d:v%zu%s:%-16s", i < 2 ? 2 : 1, i, palette[i % KVL_ARRAY_SIZE(palette)],
            ds[i][1]);
        char v[24];
        snprintf(v, sizeof(v), "v%zu", i);
        stats(a, v, "%7.2lf %s");
    }
}

/* The delay data sources of a link: rtt_ (icmp, stamp), connect_ (tcp) or total_ (http). */
static const char *delay_prefix(const char *const *ds, size_t n)
{
    static const char *const prefixes[] = {"rtt_", "connect_", "total_"};
    char name[40];
    for (size_t i = 0; i < KVL_ARRAY_SIZE(prefixes); i++) {
        snprintf(name, sizeof(name), "%smedian_ms", prefixes[i]);
        if (has(ds, n, name)) {
            return prefixes[i];
        }
    }
    return NULL;
}

/* Loss bands of the median line and the strip: (lo, hi] percent, SmokePing's colours. */
static const struct {
    double lo, hi;
    const char *colour, *legend;
} loss_bands[] = {
    {-1, 0, "#26ff00", "loss 0"}, {0, 5, "#00b8ff", "<=5%"},    {5, 10, "#0059ff", "<=10%"},
    {10, 20, "#7e00ff", "<=20%"}, {20, 50, "#dd00ff", "<=50%"}, {50, 1000, "#ff0000", ">50%"},
};

static int latency(args_t *a, const char *p, const theme_t *t, const char *const *ds, size_t n,
                   char *err, size_t errlen)
{
    const char *pre = delay_prefix(ds, n);
    char mn[32], md[32], mx[32];
    if (pre != NULL) {
        snprintf(mn, sizeof(mn), "%smin_ms", pre);
        snprintf(md, sizeof(md), "%smedian_ms", pre);
        snprintf(mx, sizeof(mx), "%smax_ms", pre);
    }
    if (pre == NULL || !has(ds, n, mn) || !has(ds, n, mx)) {
        snprintf(err, errlen, "the link's archive has no delays (min, median, max)");
        return KVL_GRAPH_NODATA;
    }
    arg(a, "--vertical-label");
    arg(a, "ms");
    arg(a, "--lower-limit");
    arg(a, "0");
    arg(a, "DEF:mn=%s:%s:AVERAGE", p, mn);
    arg(a, "DEF:md=%s:%s:AVERAGE", p, md);
    arg(a, "DEF:mx=%s:%s:AVERAGE", p, mx);
    bool quantiles = strcmp(pre, "rtt_") == 0 && has(ds, n, "rtt_p10_ms") &&
                     has(ds, n, "rtt_p25_ms") && has(ds, n, "rtt_p75_ms") &&
                     has(ds, n, "rtt_p90_ms");
    arg(a, "AREA:mn");
    if (quantiles) {
        /* rows written before the quantiles existed have them unknown: min..max then */
        arg(a, "DEF:q10=%s:rtt_p10_ms:AVERAGE", p);
        arg(a, "DEF:q25=%s:rtt_p25_ms:AVERAGE", p);
        arg(a, "DEF:q75=%s:rtt_p75_ms:AVERAGE", p);
        arg(a, "DEF:q90=%s:rtt_p90_ms:AVERAGE", p);
        arg(a, "CDEF:a10=q10,UN,mn,q10,IF");
        arg(a, "CDEF:a25=q25,UN,a10,q25,IF");
        arg(a, "CDEF:a90=q90,UN,mx,q90,IF");
        arg(a, "CDEF:a75=q75,UN,a90,q75,IF");
        arg(a, "CDEF:s1=a10,mn,-");
        arg(a, "CDEF:s2=a25,a10,-");
        arg(a, "CDEF:s3=md,a25,-");
        arg(a, "CDEF:s4=a75,md,-");
        arg(a, "CDEF:s5=a90,a75,-");
        arg(a, "CDEF:s6=mx,a90,-");
        arg(a, "AREA:s1%s::STACK", t->smoke[0]);
        arg(a, "AREA:s2%s::STACK", t->smoke[1]);
        arg(a, "AREA:s3%s::STACK", t->smoke[2]);
        arg(a, "AREA:s4%s::STACK", t->smoke[2]);
        arg(a, "AREA:s5%s::STACK", t->smoke[1]);
        arg(a, "AREA:s6%s::STACK", t->smoke[0]);
    } else {
        arg(a, "CDEF:s=mx,mn,-");
        arg(a, "AREA:s%s::STACK", t->smoke[1]);
    }
    bool loss = has(ds, n, "lost_pct");
    if (loss) {
        arg(a, "DEF:ls=%s:lost_pct:AVERAGE", p);
        arg(a, "COMMENT:median by loss\\:");
        for (size_t i = 0; i < KVL_ARRAY_SIZE(loss_bands); i++) {
            arg(a, "CDEF:ml%zu=ls,%g,GT,ls,%g,LE,*,md,UNKN,IF", i, loss_bands[i].lo,
                loss_bands[i].hi);
            arg(a, "LINE2:ml%zu%s:%s", i, loss_bands[i].colour, loss_bands[i].legend);
        }
        arg(a, "CDEF:mlu=ls,UN,md,UNKN,IF");
        arg(a, "LINE2:mlu%s:loss unknown\\l", t->axis);
        for (size_t i = 1; i < KVL_ARRAY_SIZE(loss_bands); i++) {
            arg(a, "CDEF:lt%zu=ls,%g,GT,ls,%g,LE,*,1,UNKN,IF", i, loss_bands[i].lo,
                loss_bands[i].hi);
            arg(a, "TICK:lt%zu%s:0.05", i, loss_bands[i].colour);
        }
    } else {
        arg(a, "LINE2:md%s:median\\l", loss_bands[0].colour);
    }
    header(a, "");
    arg(a, "COMMENT:%-18s", "median");
    stats(a, "md", "%7.2lf ms");
    if (quantiles) {
        arg(a, "COMMENT:smoke\\: min, 10, 25, 75, 90 %%, max\\l");
    } else {
        arg(a, "COMMENT:smoke\\: min .. max\\l");
    }
    if (loss) {
        arg(a, "COMMENT:%-18s", "loss");
        stats(a, "ls", "%7.2lf %%");
    }
    return 0;
}

static int owd(args_t *a, const char *p, const char *const *ds, size_t n, char *err, size_t errlen)
{
    static const char *const need[] = {"owd_fwd_min_ms", "owd_fwd_median_ms", "owd_fwd_max_ms",
                                       "owd_bwd_min_ms", "owd_bwd_median_ms", "owd_bwd_max_ms"};
    for (size_t i = 0; i < KVL_ARRAY_SIZE(need); i++) {
        if (!has(ds, n, need[i])) {
            snprintf(err, errlen, "the link's archive has no one-way delays (not a STAMP link)");
            return KVL_GRAPH_NODATA;
        }
    }
    arg(a, "--vertical-label");
    arg(a, "ms");
    static const struct {
        const char *dir, *legend, *band, *line;
    } d[] = {{"fwd", "forward", "#4aa3ff60", "#4aa3ff"},
             {"bwd", "backward", "#f39c1260", "#f39c12"}};
    for (size_t i = 0; i < 2; i++) {
        arg(a, "DEF:%smn=%s:owd_%s_min_ms:AVERAGE", d[i].dir, p, d[i].dir);
        arg(a, "DEF:%smd=%s:owd_%s_median_ms:AVERAGE", d[i].dir, p, d[i].dir);
        arg(a, "DEF:%smx=%s:owd_%s_max_ms:AVERAGE", d[i].dir, p, d[i].dir);
        arg(a, "CDEF:%ss=%smx,%smn,-", d[i].dir, d[i].dir, d[i].dir);
        arg(a, "AREA:%smn", d[i].dir);
        arg(a, "AREA:%ss%s::STACK", d[i].dir, d[i].band);
    }
    header(a, "");
    for (size_t i = 0; i < 2; i++) {
        char v[8];
        snprintf(v, sizeof(v), "%smd", d[i].dir);
        arg(a, "LINE2:%s%s:%-16s", v, d[i].line, d[i].legend);
        stats(a, v, "%7.2lf ms");
    }
    arg(a, "COMMENT:bands\\: min .. max of the interval\\l");
    return 0;
}

static int mos(args_t *a, const char *p, const char *const *ds, size_t n, char *err, size_t errlen)
{
    if (!has(ds, n, "mos")) {
        snprintf(err, errlen, "the link's archive has no MOS");
        return KVL_GRAPH_NODATA;
    }
    arg(a, "--vertical-label");
    arg(a, "MOS");
    arg(a, "--lower-limit");
    arg(a, "1");
    arg(a, "--upper-limit");
    arg(a, "4.5");
    arg(a, "--rigid");
    arg(a, "DEF:mos=%s:mos:AVERAGE", p);
    header(a, "minimum");
    arg(a, "LINE2:mos#27ae60:%-16s", "MOS");
    stats_of(a, "mos", "%7.2lf", true);
    arg(a, "HRULE:3.6#f39c12:3.6 (some users dissatisfied below):dashes");
    return 0;
}

static int availability(args_t *a, const char *p, const theme_t *t, const char *const *ds, size_t n,
                        char *err, size_t errlen)
{
    if (!has(ds, n, "reachable")) {
        snprintf(err, errlen, "the device's archive has no reachability");
        return KVL_GRAPH_NODATA;
    }
    arg(a, "--vertical-label");
    arg(a, "%% reachable");
    arg(a, "--lower-limit");
    arg(a, "0");
    arg(a, "--upper-limit");
    arg(a, "100");
    arg(a, "--rigid");
    arg(a, "DEF:r=%s:reachable:AVERAGE", p);
    arg(a, "CDEF:pct=r,100,*");
    arg(a, "CDEF:dn=r,1,LT,1,UNKN,IF");
    arg(a, "CDEF:un=r,UN,1,UNKN,IF");
    arg(a, "AREA:pct%s:reachable", t->in);
    arg(a, "TICK:dn#e74c3c:1.0:down");
    arg(a, "TICK:un%s:1.0:nothing known\\l", t->grid);
    arg(a, "VDEF:pa=pct,AVERAGE");
    arg(a, "GPRINT:pa:availability %%8.3lf %%%%\\l");
    return 0;
}

static int group(args_t *a, const char *p, const char *const *ds, size_t n, char *err,
                 size_t errlen)
{
    if (n == 0) {
        snprintf(err, errlen, "the group's archive has no data sources");
        return KVL_GRAPH_NODATA;
    }
    const char *pairs[GROUP_LINES_MAX][2];
    size_t k = 0;
    for (size_t i = 0; i < n && k < GROUP_LINES_MAX; i++) {
        if (ds_name_ok(ds[i])) {
            pairs[k][0] = ds[i];
            pairs[k][1] = ds[i];
            k++;
        }
    }
    lines(a, p, (const char *const(*)[2])pairs, k, "per second or value");
    return 0;
}

int kvl_graph_args(const kvl_graph_draw_t *d, const char *const *ds, size_t n, char ***argv,
                   int *argc, char *err, size_t errlen)
{
    *argv = NULL;
    *argc = 0;
    args_t a = {.v = calloc(ARGS_MAX + 1, sizeof(char *))};
    char *p = escape_path(d->path);
    if (a.v == NULL || p == NULL) {
        free(a.v);
        free(p);
        snprintf(err, errlen, "out of memory");
        return KVL_ENOMEM;
    }
    const theme_t *t = &themes[d->theme == KVL_GRAPH_LIGHT ? KVL_GRAPH_LIGHT : KVL_GRAPH_DARK];
    common_args(&a, d);
    int rc = 0;
    static const char *const errors_ds[][2] = {{"in_errors", "in errors"},
                                               {"out_errors", "out errors"},
                                               {"in_discards", "in discards"},
                                               {"out_discards", "out discards"}};
    static const char *const packets_ds[][2] = {
        {"in_ucast_pkts", "in unicast"},   {"out_ucast_pkts", "out unicast"},
        {"in_mcast_pkts", "in multicast"}, {"out_mcast_pkts", "out multicast"},
        {"in_bcast_pkts", "in broadcast"}, {"out_bcast_pkts", "out broadcast"}};
    switch (d->kind) {
    case KVL_GRAPH_TRAFFIC:
        if (!has(ds, n, "in_octets") || !has(ds, n, "out_octets") || !has(ds, n, "speed_bps")) {
            snprintf(err, errlen, "the archive is not an interface's");
            rc = KVL_GRAPH_NODATA;
        } else {
            traffic(&a, p, t);
        }
        break;
    case KVL_GRAPH_ERRORS:
    case KVL_GRAPH_PACKETS: {
        const char *const(*want)[2] = d->kind == KVL_GRAPH_ERRORS ? errors_ds : packets_ds;
        size_t nw =
            d->kind == KVL_GRAPH_ERRORS ? KVL_ARRAY_SIZE(errors_ds) : KVL_ARRAY_SIZE(packets_ds);
        for (size_t i = 0; i < nw && rc == 0; i++) {
            if (!has(ds, n, want[i][0])) {
                snprintf(err, errlen, "the archive is not an interface's");
                rc = KVL_GRAPH_NODATA;
            }
        }
        if (rc == 0) {
            lines(&a, p, want, nw, d->kind == KVL_GRAPH_ERRORS ? "per second" : "packets/s");
        }
        break;
    }
    case KVL_GRAPH_LATENCY:
        rc = latency(&a, p, t, ds, n, err, errlen);
        break;
    case KVL_GRAPH_OWD:
        rc = owd(&a, p, ds, n, err, errlen);
        break;
    case KVL_GRAPH_MOS:
        rc = mos(&a, p, ds, n, err, errlen);
        break;
    case KVL_GRAPH_AVAILABILITY:
        rc = availability(&a, p, t, ds, n, err, errlen);
        break;
    case KVL_GRAPH_GROUP:
        rc = group(&a, p, ds, n, err, errlen);
        break;
    default:
        snprintf(err, errlen, "unknown kind of graph");
        rc = KVL_GRAPH_NODATA;
        break;
    }
    free(p);
    if (rc == 0 && a.nomem) {
        snprintf(err, errlen, "out of memory (or too many arguments)");
        rc = KVL_ENOMEM;
    }
    if (rc != 0) {
        kvl_graph_args_free(a.v, a.n);
        return rc;
    }
    *argv = a.v;
    *argc = a.n;
    return 0;
}

/* The file's data sources (names from "ds[<name>].type") and step, from rrd_info_r. */
static int read_ds(const char *path, char *names[DS_MAX], size_t *n, uint32_t *step, char *err,
                   size_t errlen)
{
    *n = 0;
    rrd_clear_error();
    /* rrdcached mode: rrdcached reads the header (rrd_info takes the file's lock, which
     * would make rrdcached's writes of it fail); unreachable, the file is read here */
    const char *daemon = kvl_rrd_daemon();
    rrd_info_t *info = NULL;
    if (daemon != NULL && rrdc_connect(daemon) == 0) {
        info = rrdc_info(path);
        if (info == NULL && kvl_rrd_remote()) {
            /* remote: rrdcached alone can read it (no file here to fall back on) */
            const char *msg = rrd_get_error();
            bool missing = msg != NULL && strstr(msg, "No such file") != NULL;
            snprintf(err, errlen, "%s",
                     missing       ? "the archive does not exist (yet)"
                     : msg != NULL ? msg
                                   : "rrdcached could not read the archive");
            rrd_clear_error();
            return missing ? KVL_GRAPH_MISSING : KVL_EIO;
        }
        rrd_clear_error();
    } else if (kvl_rrd_remote()) {
        snprintf(err, errlen, "rrdcached at %s cannot be reached (the archives are on its host)",
                 daemon);
        rrd_clear_error();
        return KVL_EIO;
    }
    if (info == NULL) {
        info = rrd_info_r(path);
    }
    if (info == NULL) {
        snprintf(err, errlen, "reading the archive: %s", rrd_get_error());
        return KVL_EIO;
    }
    for (rrd_info_t *i = info; i != NULL; i = i->next) {
        size_t kl = strlen(i->key);
        if (strcmp(i->key, "step") == 0 && i->type == RD_I_CNT) {
            *step = (uint32_t)i->value.u_cnt;
        } else if (kl > 9 && strncmp(i->key, "ds[", 3) == 0 &&
                   strcmp(i->key + kl - 6, "].type") == 0 && *n < DS_MAX) {
            char *name = strndup(i->key + 3, kl - 9);
            if (name != NULL && ds_name_ok(name)) {
                names[(*n)++] = name;
            } else {
                free(name);
            }
        }
    }
    rrd_info_free(info);
    return 0;
}

static long info_long(const rrd_info_t *info, const char *key)
{
    for (const rrd_info_t *i = info; i != NULL; i = i->next) {
        if (strcmp(i->key, key) == 0) {
            if (i->type == RD_I_CNT) {
                return (long)i->value.u_cnt;
            }
            if (i->type == RD_I_VAL) {
                return (long)i->value.u_val;
            }
            if (i->type == RD_I_INT) {
                return (long)i->value.u_int;
            }
        }
    }
    return -1;
}

int kvl_graph_draw(const kvl_graph_draw_t *d, kvl_graph_image_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    struct stat st;
    if (!kvl_rrd_remote() && stat(d->path, &st) != 0) { /* remote: read_ds finds out */
        if (errno == ENOENT || errno == ENOTDIR) {
            snprintf(err, errlen, "the archive does not exist (yet)");
            return KVL_GRAPH_MISSING;
        }
        snprintf(err, errlen, "the archive: %s", strerror(errno));
        return KVL_EIO;
    }
    uv_once(&lock_once, lock_init);
    uv_mutex_lock(&lock);
    char *names[DS_MAX];
    size_t n = 0;
    int rc = read_ds(d->path, names, &n, &out->step, err, errlen);
    char **argv = NULL;
    int argc = 0;
    if (rc == 0) {
        rc = kvl_graph_args(d, (const char *const *)names, n, &argv, &argc, err, errlen);
    }
    rrd_info_t *info = NULL;
    if (rc == 0) {
        /* librrd's option parser reorders (and may overwrite) the array it is given: it
         * gets a copy, so that every argument is freed from the original */
        /* rrdcached mode: librrd's graph reads through rrdcached (--daemon: it writes what it
         * holds of the file first, and our reader's lock would make its writes fail) */
        const char *daemon = kvl_rrd_daemon();
        int extra = daemon != NULL ? 2 : 0;
        char **copy = malloc((size_t)(argc + extra + 1) * sizeof(*copy));
        if (copy == NULL) {
            snprintf(err, errlen, "out of memory");
            rc = KVL_ENOMEM;
        } else {
            copy[0] = argv[0];
            if (daemon != NULL) {
                copy[1] = daemon_opt;
                copy[2] = (char *)daemon;
            }
            memcpy(copy + 1 + extra, argv + 1, (size_t)argc * sizeof(*copy));
            rrd_clear_error();
            info = rrd_graph_v(argc + extra, copy);
            free(copy);
        }
        if (rc == 0 && info == NULL) {
            snprintf(err, errlen, "drawing: %s", rrd_get_error());
            rc = KVL_EIO;
        }
    }
    for (const rrd_info_t *i = info; i != NULL && rc == 0; i = i->next) {
        if (strcmp(i->key, "image") == 0 && i->type == RD_I_BLO && out->bytes == NULL) {
            out->bytes = malloc(i->value.u_blo.size ? i->value.u_blo.size : 1);
            if (out->bytes == NULL) {
                snprintf(err, errlen, "out of memory");
                rc = KVL_ENOMEM;
                break;
            }
            memcpy(out->bytes, i->value.u_blo.ptr, i->value.u_blo.size);
            out->len = i->value.u_blo.size;
        }
    }
    if (rc == 0 && out->bytes == NULL) {
        snprintf(err, errlen, "librrd drew no image");
        rc = KVL_EIO;
    }
    if (rc == 0) {
        out->start = info_long(info, "graph_start");
        out->end = info_long(info, "graph_end");
        out->graph_left = info_long(info, "graph_left");
        out->graph_top = info_long(info, "graph_top");
        out->graph_width = info_long(info, "graph_width");
        out->graph_height = info_long(info, "graph_height");
        out->image_width = info_long(info, "image_width");
        out->image_height = info_long(info, "image_height");
    }
    rrd_info_free(info);
    uv_mutex_unlock(&lock);
    kvl_graph_args_free(argv, argc);
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
    }
    if (rc != 0) {
        free(out->bytes);
        out->bytes = NULL;
        out->len = 0;
    }
    return rc;
}
