/*
 * topology_api.c — GET /api/v1/topology (topology.h): the graph refreshed from the
 * collector's sources and recomputed at each request (on the loop: well under a
 * millisecond at the state network's size), answered as JSON; and
 * GET /api/v1/topology/changes?since=V&limit=N, what changed after version V.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "kvl.h"
#include "topology.h"

/* A query parameter as an unsigned number in [0, max], def when absent. 0, or KVL_EINVAL. */
static int param_u64(const kvl_http_req_t *req, const char *key, uint64_t def, uint64_t max,
                     uint64_t *out)
{
    const char *v = kvl_http_query(req, key);
    *out = def;
    if (v == NULL) {
        return 0;
    }
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (v[0] < '0' || v[0] > '9' || *end != '\0' || errno != 0 || n > max) {
        return KVL_EINVAL;
    }
    *out = n;
    return 0;
}

static void changes_get(kvl_topology_t *t, const kvl_http_req_t *req, kvl_http_resp_t *resp)
{
    uint64_t since, limit;
    if (param_u64(req, "since", 0, UINT64_MAX / 2, &since) != 0) {
        kvl_http_error(resp, 400, "since: expected a version number");
        return;
    }
    if (param_u64(req, "limit", 1000, 10000, &limit) != 0 || limit == 0) {
        kvl_http_error(resp, 400, "limit: expected 1-10000");
        return;
    }
    int rc = kvl_topology_refresh(t);
    json_t *body = rc == 0 ? kvl_topology_changes_json(t, since, (size_t)limit) : NULL;
    if (body == NULL) {
        kvl_http_error(resp, 500, "topology: %s", kvl_strerror(rc != 0 ? rc : KVL_ENOMEM));
        return;
    }
    resp->status = 200;
    resp->body = body;
}

static void topology_get(void *ctx, const kvl_http_req_t *req, kvl_http_resp_t *resp)
{
    kvl_topology_t *t = ctx;
    if (req->n_segs == 1 && strcmp(req->segs[0], "changes") == 0) {
        changes_get(t, req, resp);
        return;
    }
    if (req->n_segs > 0) {
        kvl_http_error(resp, 404, "no such resource under %s", req->path);
        return;
    }
    int rc = kvl_topology_refresh(t);
    json_t *body = rc == 0 ? kvl_topology_json(t) : NULL;
    if (body == NULL) {
        kvl_http_error(resp, 500, "topology: %s", kvl_strerror(rc != 0 ? rc : KVL_ENOMEM));
        return;
    }
    resp->status = 200;
    resp->body = body;
}

int kvl_topology_api_register(kvl_topology_t *t, kvl_http_t *http)
{
    return kvl_http_route(http, "GET", "/api/v1/topology", KVL_ROLE_VIEWER, topology_get, t);
}
