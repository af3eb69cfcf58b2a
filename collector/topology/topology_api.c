/*
 * topology_api.c — GET /api/v1/topology (topology.h): the graph refreshed from the
 * collector's sources and recomputed at each request (on the loop: well under a
 * millisecond at the state network's size), answered as JSON.
 */
#include "http.h"
#include "kvl.h"
#include "topology.h"

static void topology_get(void *ctx, const kvl_http_req_t *req, kvl_http_resp_t *resp)
{
    kvl_topology_t *t = ctx;
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
