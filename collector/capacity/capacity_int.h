/*
 * capacity_int.h — the capacity room's insides, shared by capacity_api.c (the route, its
 * parameters, the cache, CSV) and capacity_report.c (the archives read on the thread pool).
 */
#ifndef KVL_CAPACITY_INT_H
#define KVL_CAPACITY_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "capacity.h"

/* What one report reads, made on the loop and then owned by the worker until it is done.
 * ifaces: objects {agent, site, device, interface, circuit, retired, "_path", "_speed"};
 * devices: {agent, site, device, retired, "_path"}. Keys starting with '_' are removed
 * before the answer goes out. */
typedef struct cap_job {
    const char *data_dir;
    int days;
    int64_t from, to; /* unix seconds */
    json_t *ifaces, *devices;
    json_t *sites;    /* names selected (object used as a set), NULL: every site */
    char *agent;      /* NULL: every agent */
    bool links;       /* false when device= excludes links */
    size_t files_max; /* archives read at most, counting the links found */
    /* results */
    json_t *answer; /* the whole answer, or NULL with status and err */
    int status;
    char err[512];
} cap_job_t;

/* Runs on the thread pool: reads every archive of the job and sets job->answer (or status
 * and err). */
void kvl_cap_report_run(cap_job_t *job);

/* The answer's interfaces as CSV (malloc'd, *len set), or NULL when out of memory. */
char *kvl_cap_csv(const json_t *answer, size_t *len); /* NUL-terminated; len without it */

/* A file-safe name (names.h) decoded into out; returns 0, or -1 when it is not one. */
int kvl_cap_name_decode(const char *safe, char *out, size_t outlen);

#endif
