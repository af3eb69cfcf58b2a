/*
 * rrd_store.c — creating and updating RRD files through librrd (see rrd_store.h).
 *
 * librrd reports errors through a per-thread context (rrd_get_error); each call here clears
 * it first and copies the message out. An update at or before the file's last update is
 * not an I/O problem but an ordering one, and is reported as KVL_RRD_STALE; a file locked
 * by a reader (rrdtool fetch and graph take a shared lock, and librrd's update does not
 * wait for it) is reported as KVL_RRD_BUSY so the caller can try again.
 */
#include "rrd_store.h"

#include <errno.h>
#include <rrd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static kvl_rrd_result_t take_error(char *err, size_t errlen)
{
    const char *msg = rrd_get_error();
    snprintf(err, errlen, "%s", msg && *msg ? msg : "unknown librrd error");
    rrd_clear_error();
    if (strstr(err, "illegal attempt to update using time") != NULL) {
        return KVL_RRD_STALE;
    }
    if (strstr(err, "could not lock") != NULL) {
        return KVL_RRD_BUSY;
    }
    if (strncmp(err, "opening '", 9) == 0 && strstr(err, "No such file or directory") != NULL) {
        return KVL_RRD_MISSING;
    }
    return KVL_RRD_ERROR;
}

kvl_rrd_result_t kvl_rrd_create(const char *path, uint32_t step, int64_t start,
                                const kvl_rrd_ds_t *ds, size_t n_ds, const kvl_rrd_rra_t *rra,
                                size_t n_rra, char *err, size_t errlen)
{
    size_t n = n_ds + n_rra;
    const char **argv = calloc(n, sizeof(*argv));
    char *text = calloc(n, 96);
    if (argv == NULL || text == NULL) {
        free(argv);
        free(text);
        snprintf(err, errlen, "out of memory");
        return KVL_RRD_ERROR;
    }
    size_t k = 0;
    for (size_t i = 0; i < n_ds; i++, k++) {
        char *t = text + k * 96;
        snprintf(t, 96, "DS:%s:%s:%u:%s:U", ds[i].name, ds[i].counter ? "DERIVE" : "GAUGE",
                 step * 2, ds[i].counter ? "0" : "U");
        argv[k] = t;
    }
    for (size_t i = 0; i < n_rra; i++, k++) {
        char *t = text + k * 96;
        snprintf(t, 96, "RRA:%s:0.5:%u:%u", rra[i].cf, rra[i].steps, rra[i].rows);
        argv[k] = t;
    }
    rrd_clear_error();
    /* no_overwrite: two writers racing to create the same file must not clobber it. */
    int rc = rrd_create_r2(path, step, (time_t)start, 1, NULL, NULL, (int)n, argv);
    kvl_rrd_result_t res = KVL_RRD_OK;
    if (rc != 0) {
        res = take_error(err, errlen);
        if (strstr(err, "exists") != NULL || errno == EEXIST) {
            res = KVL_RRD_OK; /* someone else made it first */
        } else {
            res = KVL_RRD_ERROR;
        }
    }
    free(argv);
    free(text);
    return res;
}

kvl_rrd_result_t kvl_rrd_update(const char *path, const char *tmpl, const char *update, char *err,
                                size_t errlen)
{
    const char *argv[1] = {update};
    rrd_clear_error();
    if (rrd_update_r(path, tmpl, 1, argv) != 0) {
        return take_error(err, errlen);
    }
    return KVL_RRD_OK;
}
