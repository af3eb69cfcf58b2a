/*
 * inventory_api.c — the inventory's HTTP API (inventory.h, kvl_inventory_api_register),
 * handlers on the loop (collector/web/http.h), answers made with jansson:
 *
 *   GET    /api/v1/devices                   viewer: {"devices": [...], "total", "truncated"}
 *          ?site= &agent= (exact) &q= (a case-insensitive substring of the device's name,
 *          address, sysName, sysDescr or sysLocation) &retired=all|yes|no (default all)
 *          &limit=1..10000 (default 10000)
 *   GET    /api/v1/devices/<agent>/<device>  viewer: the device with its interfaces and its
 *          newest label changes (at most 200); each interface's former names in
 *          `aliases` (renames on the device, oldest first); its LLDP/CDP `neighbours` (current
 *          and gone: `retired` says when), each with the agent's labels (nbrwalk.h)
 *   DELETE /api/v1/devices/<agent>/<device>  admin: forgets the entry (not the archives)
 *   GET    /api/v1/search?q=                 viewer: devices (name, address, sysName,
 *          sysDescr, sysLocation) and interfaces (name, former names, ifName, ifDescr, ifAlias,
 *          MAC)
 *          whose text holds q (case-insensitive); &limit=1..500 (default 50) per kind
 *
 * Every parameter is checked by inv_query_parse (a 400 with a sentence); an unknown device
 * is a 404. Times are ISO 8601 in UTC with milliseconds.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http.h"
#include "inventory_api.h"
#include "inventory_int.h"
#include "kvl.h"
#include "names.h"

#define CHANGES_SHOWN 200

/* --- parameters ----------------------------------------------------------------------------- */

static bool has_ctl(const char *s)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f) {
            return true;
        }
    }
    return false;
}

int inv_query_parse(const char *(*get)(const void *ctx, const char *key), const void *ctx,
                    bool search, inv_query_t *q, char *why, size_t whylen)
{
    memset(q, 0, sizeof(*q));
    q->retired = -1;
    q->limit = search ? INV_SEARCH_LIMIT_DEFAULT : INV_DEVICES_LIMIT_MAX;
    if (!search) {
        q->site = get(ctx, "site");
        q->agent = get(ctx, "agent");
        if (q->site != NULL && (strlen(q->site) > KVL_SITE_MAX || has_ctl(q->site))) {
            snprintf(why, whylen, "site: at most %d bytes, no control characters", KVL_SITE_MAX);
            return KVL_EINVAL;
        }
        if (q->agent != NULL &&
            (q->agent[0] == '\0' || strlen(q->agent) > KVL_AGENT_ID_MAX || has_ctl(q->agent))) {
            snprintf(why, whylen, "agent: 1 to %d bytes, no control characters", KVL_AGENT_ID_MAX);
            return KVL_EINVAL;
        }
        const char *r = get(ctx, "retired");
        if (r != NULL) {
            if (strcmp(r, "all") == 0) {
                q->retired = -1;
            } else if (strcmp(r, "yes") == 0) {
                q->retired = 1;
            } else if (strcmp(r, "no") == 0) {
                q->retired = 0;
            } else {
                snprintf(why, whylen, "retired: all, yes or no");
                return KVL_EINVAL;
            }
        }
    }
    q->q = get(ctx, "q");
    if (search && q->q == NULL) {
        snprintf(why, whylen, "q: required (what to search for)");
        return KVL_EINVAL;
    }
    if (q->q != NULL && (q->q[0] == '\0' || strlen(q->q) > INV_Q_MAX || has_ctl(q->q))) {
        snprintf(why, whylen, "q: 1 to %d bytes, no control characters", INV_Q_MAX);
        return KVL_EINVAL;
    }
    const char *l = get(ctx, "limit");
    if (l != NULL) {
        size_t max = search ? INV_SEARCH_LIMIT_MAX : INV_DEVICES_LIMIT_MAX;
        size_t v = 0, n = strlen(l);
        bool ok = n > 0 && n <= 6 && strspn(l, "0123456789") == n;
        if (ok) {
            v = strtoul(l, NULL, 10);
        }
        if (!ok || v < 1 || v > max) {
            snprintf(why, whylen, "limit: a whole number from 1 to %zu", max);
            return KVL_EINVAL;
        }
        q->limit = v;
    }
    return 0;
}

/* --- JSON ------------------------------------------------------------------------------------ */

static json_t *time_json(int64_t ms)
{
    if (ms <= 0) {
        return json_null();
    }
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&s, &tm) == NULL) {
        return json_null();
    }
    char t[48];
    snprintf(t, sizeof(t), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    return json_string(t);
}

static json_t *str_or_null(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

/* A label that is a whole number, as a JSON integer, else null. */
static json_t *int_label(const inv_entry_t *e, const char *key)
{
    const char *s = inv_label(e, key);
    if (s == NULL || s[0] == '\0' || strlen(s) > 19 || strspn(s, "0123456789") != strlen(s)) {
        return json_null();
    }
    return json_integer((json_int_t)strtoll(s, NULL, 10));
}

static json_t *labels_json(const inv_entry_t *e)
{
    json_t *o = json_object();
    const char *p = e->labels;
    for (uint16_t i = 0; o != NULL && i < e->n_labels; i++) {
        const char *k = p, *v = p + strlen(p) + 1;
        p = v + strlen(v) + 1;
        json_object_set_new(o, k, json_string(v));
    }
    return o;
}

static void times_json(json_t *o, const inv_entry_t *e)
{
    json_object_set_new(o, "first_seen", time_json(e->first_ms));
    json_object_set_new(o, "last_seen", time_json(inv_last_seen(e)));
    json_object_set_new(o, "retired", time_json(e->retired_ms));
}

static json_t *device_json(const inv_entry_t *d)
{
    size_t retired = 0;
    for (size_t i = 0; i < d->n_ifs; i++) {
        retired += d->ifs[i]->retired_ms != 0;
    }
    json_t *o = json_object();
    if (o == NULL) {
        return NULL;
    }
    json_object_set_new(o, "agent", json_string(d->agent->id));
    json_object_set_new(o, "site", json_string(d->agent->site));
    json_object_set_new(o, "device", json_string(d->name));
    static const char *const keys[] = {"address",     "sysName", "sysDescr",
                                       "sysLocation", "model",   "serial"};
    for (size_t i = 0; i < KVL_ARRAY_SIZE(keys); i++) {
        json_object_set_new(o, keys[i], str_or_null(inv_label(d, keys[i])));
    }
    json_object_set_new(o, "interfaces", json_integer((json_int_t)(d->n_ifs - retired)));
    json_object_set_new(o, "interfaces_retired", json_integer((json_int_t)retired));
    times_json(o, d);
    json_object_set_new(o, "labels", labels_json(d));
    return o;
}

static json_t *iface_json(const inv_entry_t *e)
{
    json_t *o = json_object();
    if (o == NULL) {
        return NULL;
    }
    json_object_set_new(o, "name", json_string(e->name));
    json_object_set_new(o, "ifIndex", int_label(e, "ifIndex"));
    json_object_set_new(o, "ifName", str_or_null(inv_label(e, "ifName")));
    json_object_set_new(o, "ifDescr", str_or_null(inv_label(e, "ifDescr")));
    json_object_set_new(o, "ifAlias", str_or_null(inv_label(e, "ifAlias")));
    json_object_set_new(o, "type", int_label(e, "ifType"));
    json_object_set_new(o, "speed", int_label(e, "ifSpeed"));
    const char *mac = inv_label(e, "ifPhysAddress");
    json_object_set_new(o, "mac", mac != NULL && mac[0] != '\0' ? json_string(mac) : json_null());
    json_t *al = json_array(); /* former names, oldest first (renames on the device) */
    const char *p = e->aliases;
    for (uint16_t i = 0; al != NULL && i < e->n_aliases; i++, p += strlen(p) + 1) {
        json_array_append_new(al, json_string(p));
    }
    json_object_set_new(o, "aliases", al != NULL ? al : json_null());
    times_json(o, e);
    return o;
}

static bool holds(const char *text, const char *q)
{
    return text != NULL && strcasestr(text, q) != NULL;
}

static bool device_matches(const inv_entry_t *d, const char *q)
{
    return q == NULL || holds(d->name, q) || holds(inv_label(d, "address"), q) ||
           holds(inv_label(d, "sysName"), q) || holds(inv_label(d, "sysDescr"), q) ||
           holds(inv_label(d, "sysLocation"), q);
}

static bool alias_matches(const inv_entry_t *e, const char *q)
{
    const char *p = e->aliases;
    for (uint16_t i = 0; i < e->n_aliases; i++, p += strlen(p) + 1) {
        if (holds(p, q)) {
            return true;
        }
    }
    return false;
}

static bool iface_matches(const inv_entry_t *e, const char *q)
{
    return holds(e->name, q) || alias_matches(e, q) || holds(inv_label(e, "ifName"), q) ||
           holds(inv_label(e, "ifDescr"), q) || holds(inv_label(e, "ifAlias"), q) ||
           holds(inv_label(e, "ifPhysAddress"), q);
}

/* --- handlers --------------------------------------------------------------------------------- */

static const char *req_param(const void *ctx, const char *key)
{
    return kvl_http_query(ctx, key);
}

static void list_devices(kvl_inventory_t *inv, const kvl_http_req_t *req, kvl_http_resp_t *resp)
{
    inv_query_t q;
    char why[200];
    if (inv_query_parse(req_param, req, false, &q, why, sizeof(why)) != 0) {
        kvl_http_error(resp, 400, "%s", why);
        return;
    }
    json_t *arr = json_array();
    size_t total = 0;
    for (size_t i = 0; arr != NULL && i < inv->n_agents; i++) {
        const inv_agent_t *a = inv->agents[i];
        if ((q.agent != NULL && strcmp(a->id, q.agent) != 0) ||
            (q.site != NULL && strcmp(a->site, q.site) != 0)) {
            continue;
        }
        for (size_t j = 0; j < a->n_devs; j++) {
            const inv_entry_t *d = a->devs[j];
            if ((q.retired == 1 && d->retired_ms == 0) || (q.retired == 0 && d->retired_ms != 0) ||
                !device_matches(d, q.q)) {
                continue;
            }
            if (total++ < q.limit) {
                json_array_append_new(arr, device_json(d));
            }
        }
    }
    resp->body = arr != NULL ? json_pack("{s:o, s:I, s:b}", "devices", arr, "total",
                                         (json_int_t)total, "truncated", total > q.limit)
                             : NULL;
    if (resp->body == NULL) {
        kvl_http_error(resp, 500, "out of memory");
    }
}

/* A neighbour: its instance, the agent's labels (protocol, local_if, chassis_id, sys_name,
 * port_id ...) and its times (`retired`: when a discovery no longer saw it). */
static json_t *nbr_json(const inv_entry_t *e)
{
    json_t *o = labels_json(e);
    if (o == NULL) {
        return NULL;
    }
    json_object_set_new(o, "instance", json_string(e->name));
    times_json(o, e);
    return o;
}

static json_t *changes_json(const kvl_inventory_t *inv, const inv_entry_t *d)
{
    json_t *arr = json_array();
    for (size_t i = inv->ch_n; arr != NULL && i-- > 0 && json_array_size(arr) < CHANGES_SHOWN;) {
        const inv_change_t *c = inv_change_at(inv, i);
        const char *a, *dev, *inst, *key, *old, *nw;
        inv_change_fields(c, &a, &dev, &inst, &key, &old, &nw);
        if (strcmp(a, d->agent->id) != 0 || strcmp(dev, d->name) != 0) {
            continue;
        }
        json_t *o = json_pack("{s:o, s:s, s:s, s:s}", "at", time_json(c->at), "key", key, "old",
                              old, "new", nw);
        if (o != NULL) {
            json_object_set_new(o, "interface", inst[0] != '\0' ? json_string(inst) : json_null());
            json_array_append_new(arr, o);
        }
    }
    return arr;
}

static void one_device(kvl_inventory_t *inv, const kvl_http_req_t *req, kvl_http_resp_t *resp)
{
    inv_entry_t *d = inv_find(inv, req->segs[0], req->segs[1], "");
    if (d == NULL) {
        kvl_http_error(resp, 404, "no device %s of agent %s in the inventory", req->segs[1],
                       req->segs[0]);
        return;
    }
    if (strcmp(req->method, "DELETE") == 0) {
        int rc = kvl_inventory_forget(inv, req->segs[0], req->segs[1]);
        if (rc != 0) {
            kvl_http_error(resp, 500, "forgotten, but not recorded: %s", kvl_strerror(rc));
            return;
        }
        resp->body = json_pack("{s:s, s:s}", "forgotten", req->segs[1], "agent", req->segs[0]);
        return;
    }
    json_t *o = device_json(d);
    json_t *ifs = json_array();
    for (size_t i = 0; ifs != NULL && i < d->n_ifs; i++) {
        json_array_append_new(ifs, iface_json(d->ifs[i]));
    }
    if (o == NULL || ifs == NULL) {
        json_decref(o);
        json_decref(ifs);
        kvl_http_error(resp, 500, "out of memory");
        return;
    }
    json_object_set_new(o, "interface_list", ifs);
    json_t *nbrs = json_array();
    for (size_t i = 0; nbrs != NULL && i < d->n_nbrs; i++) {
        json_array_append_new(nbrs, nbr_json(d->nbrs[i]));
    }
    json_object_set_new(o, "neighbours", nbrs != NULL ? nbrs : json_null());
    json_object_set_new(o, "changes", changes_json(inv, d));
    resp->body = o;
}

static void devices_handler(void *ctx, const kvl_http_req_t *req, kvl_http_resp_t *resp)
{
    kvl_inventory_t *inv = ctx;
    bool del = strcmp(req->method, "DELETE") == 0;
    if (req->n_segs == 0 && !del) {
        list_devices(inv, req, resp);
    } else if (req->n_segs == 2 && req->segs[0][0] != '\0' && req->segs[1][0] != '\0') {
        one_device(inv, req, resp);
    } else {
        kvl_http_error(resp, 404,
                       "no such resource (/api/v1/devices or "
                       "/api/v1/devices/<agent>/<device>)");
    }
}

static void search_handler(void *ctx, const kvl_http_req_t *req, kvl_http_resp_t *resp)
{
    kvl_inventory_t *inv = ctx;
    if (req->n_segs != 0) {
        kvl_http_error(resp, 404, "no such resource (/api/v1/search?q=...)");
        return;
    }
    inv_query_t q;
    char why[200];
    if (inv_query_parse(req_param, req, true, &q, why, sizeof(why)) != 0) {
        kvl_http_error(resp, 400, "%s", why);
        return;
    }
    json_t *devs = json_array(), *ifs = json_array();
    bool truncated = false;
    for (size_t i = 0; devs != NULL && ifs != NULL && i < inv->n_agents; i++) {
        const inv_agent_t *a = inv->agents[i];
        for (size_t j = 0; j < a->n_devs; j++) {
            const inv_entry_t *d = a->devs[j];
            if (device_matches(d, q.q)) {
                if (json_array_size(devs) < q.limit) {
                    json_array_append_new(devs, device_json(d));
                } else {
                    truncated = true;
                }
            }
            for (size_t k = 0; k < d->n_ifs; k++) {
                if (!iface_matches(d->ifs[k], q.q)) {
                    continue;
                }
                if (json_array_size(ifs) >= q.limit) {
                    truncated = true;
                    continue;
                }
                json_t *o = iface_json(d->ifs[k]);
                if (o != NULL) {
                    json_object_set_new(o, "agent", json_string(a->id));
                    json_object_set_new(o, "site", json_string(a->site));
                    json_object_set_new(o, "device", json_string(d->name));
                    json_array_append_new(ifs, o);
                }
            }
        }
    }
    if (devs == NULL || ifs == NULL) {
        json_decref(devs);
        json_decref(ifs);
        kvl_http_error(resp, 500, "out of memory");
        return;
    }
    resp->body =
        json_pack("{s:o, s:o, s:b}", "devices", devs, "interfaces", ifs, "truncated", truncated);
    if (resp->body == NULL) {
        kvl_http_error(resp, 500, "out of memory");
    }
}

int kvl_inventory_api_register(kvl_inventory_t *inv, kvl_http_t *http)
{
    if (inv == NULL || http == NULL) {
        return KVL_EINVAL;
    }
    int rc = 0;
    rc |= kvl_http_route(http, "GET", "/api/v1/devices", KVL_ROLE_VIEWER, devices_handler, inv);
    rc |= kvl_http_route(http, "DELETE", "/api/v1/devices", KVL_ROLE_ADMIN, devices_handler, inv);
    rc |= kvl_http_route(http, "GET", "/api/v1/search", KVL_ROLE_VIEWER, search_handler, inv);
    return rc != 0 ? KVL_EINVAL : 0;
}
