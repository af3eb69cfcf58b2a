/*
 * classify.c — flows' applications with nDPI 4.2 (see classify.h).
 *
 * Slots are an array with a stack of free ones; a taken slot holds nDPI's flow state
 * (allocated with ndpi_flow_malloc when taken, released with ndpi_free_flow when the flow is
 * decided or ends) and the count of packets nDPI has seen of it.
 */
#include "classify.h"

#include <ndpi_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct slot {
    struct ndpi_flow_struct *nf; /* NULL: free */
    unsigned pkts;
} slot_t;

struct kvl_classify {
    struct ndpi_detection_module_struct *nd;
    slot_t *slots;
    uint32_t *free_stack;
    size_t max, n_free;
    unsigned give_up;
    size_t flow_size;
    int max_app;
    kvl_sketch_t *names;
    kvl_classify_stats_t st;
};

kvl_classify_t *kvl_classify_new(size_t max_flows, unsigned give_up, size_t names, char *err,
                                 size_t errlen)
{
    if (max_flows < 1 || max_flows > (1u << 24) || give_up < 1 || names < 1) {
        snprintf(err, errlen, "classification bounds out of range");
        return NULL;
    }
    kvl_classify_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->max = max_flows;
    c->give_up = give_up;
    c->slots = calloc(max_flows, sizeof(*c->slots));
    c->free_stack = malloc(max_flows * sizeof(*c->free_stack));
    c->names = kvl_sketch_new(names);
    if (c->slots == NULL || c->free_stack == NULL || c->names == NULL) {
        snprintf(err, errlen, "out of memory for %zu classification slots", max_flows);
        kvl_classify_free(c);
        return NULL;
    }
    for (size_t i = 0; i < max_flows; i++) {
        c->free_stack[i] = (uint32_t)(max_flows - 1 - i);
    }
    c->n_free = max_flows;
    c->nd = ndpi_init_detection_module(ndpi_no_prefs);
    if (c->nd == NULL) {
        snprintf(err, errlen, "nDPI's detection module could not start");
        kvl_classify_free(c);
        return NULL;
    }
    NDPI_PROTOCOL_BITMASK all;
    NDPI_BITMASK_SET_ALL(all);
    ndpi_set_protocol_detection_bitmask2(c->nd, &all);
    ndpi_finalize_initialization(c->nd);
    c->flow_size = ndpi_detection_get_sizeof_ndpi_flow_struct();
    c->max_app = (int)ndpi_get_num_supported_protocols(c->nd);
    return c;
}

static void release(kvl_classify_t *c, int32_t h)
{
    slot_t *s = &c->slots[h];
    if (s->nf == NULL) {
        return;
    }
    ndpi_free_flow(s->nf);
    s->nf = NULL;
    c->free_stack[c->n_free++] = (uint32_t)h;
    c->st.in_use--;
}

void kvl_classify_free(kvl_classify_t *c)
{
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; c->slots != NULL && c->free_stack != NULL && i < c->max; i++) {
        release(c, (int32_t)i);
    }
    if (c->nd != NULL) {
        ndpi_exit_detection_module(c->nd);
    }
    kvl_sketch_free(c->names);
    free(c->slots);
    free(c->free_stack);
    free(c);
}

/* The name nDPI read from the flow, if any, counted as one connection. */
static void count_name(kvl_classify_t *c, const struct ndpi_flow_struct *nf)
{
    const char *name = nf->host_server_name;
    size_t len = strnlen(name, sizeof(nf->host_server_name));
    if (len == 0) {
        return;
    }
    uint8_t key[KVL_SKETCH_KEY];
    memset(key, 0, sizeof(key));
    if (len <= KVL_SKETCH_KEY) {
        memcpy(key, name, len);
    } else {
        key[0] = '~';
        memcpy(key + 1, name + len - (KVL_SKETCH_KEY - 1), KVL_SKETCH_KEY - 1);
    }
    kvl_sketch_add(c->names, key, 1);
}

size_t kvl_classify_top_names(const kvl_classify_t *c, kvl_classify_name_t *out, size_t n)
{
    kvl_sketch_entry_t *e = calloc(n > 0 ? n : 1, sizeof(*e));
    if (e == NULL) {
        return 0;
    }
    size_t k = kvl_sketch_top(c->names, e, n);
    for (size_t i = 0; i < k; i++) {
        memcpy(out[i].name, e[i].key, KVL_SKETCH_KEY);
        out[i].name[KVL_SKETCH_KEY] = '\0';
        out[i].connections = e[i].count;
        out[i].error = e[i].error;
    }
    free(e);
    return k;
}

void kvl_classify_names_reset(kvl_classify_t *c)
{
    kvl_sketch_reset(c->names);
}

static int32_t on_begin(void *ctx)
{
    kvl_classify_t *c = ctx;
    if (c->n_free == 0) {
        c->st.no_slot++;
        return -1;
    }
    struct ndpi_flow_struct *nf = ndpi_flow_malloc(c->flow_size);
    if (nf == NULL) {
        c->st.no_slot++;
        return -1;
    }
    memset(nf, 0, c->flow_size);
    int32_t h = (int32_t)c->free_stack[--c->n_free];
    c->slots[h].nf = nf;
    c->slots[h].pkts = 0;
    c->st.in_use++;
    return h;
}

/* The id counted for a result: the application protocol when there is one, else the master. */
static int app_of(const kvl_classify_t *c, ndpi_protocol r)
{
    int app = r.app_protocol != NDPI_PROTOCOL_UNKNOWN ? r.app_protocol : r.master_protocol;
    return app >= 0 && app < c->max_app ? app : NDPI_PROTOCOL_UNKNOWN;
}

/* nDPI's last word on a flow (its guess by port when it could not tell), the slot released. */
static int give_up(kvl_classify_t *c, int32_t h)
{
    uint8_t guessed = 0;
    int app = app_of(c, ndpi_detection_giveup(c->nd, c->slots[h].nf, 1, &guessed));
    count_name(c, c->slots[h].nf);
    if (app != NDPI_PROTOCOL_UNKNOWN) {
        c->st.guessed++;
    } else {
        c->st.unknown++;
    }
    release(c, h);
    return app;
}

static int on_packet(void *ctx, int32_t h, const kvl_pkt_t *p, int64_t ts_ns)
{
    kvl_classify_t *c = ctx;
    slot_t *s = &c->slots[h];
    if (s->nf == NULL) {
        return NDPI_PROTOCOL_UNKNOWN; /* not ours: decided as unknown */
    }
    s->pkts++;
    if (p->l3 != NULL && p->l3_cap > 0) {
        unsigned short len = (unsigned short)(p->l3_cap > 65535 ? 65535 : p->l3_cap);
        ndpi_protocol r =
            ndpi_detection_process_packet(c->nd, s->nf, p->l3, len, (uint64_t)ts_ns / 1000000);
        int app = app_of(c, r);
        if (app != NDPI_PROTOCOL_UNKNOWN) {
            c->st.decided++;
            count_name(c, s->nf);
            release(c, h);
            return app;
        }
    }
    if (s->pkts < c->give_up) {
        return -1;
    }
    return give_up(c, h);
}

static int on_end(void *ctx, int32_t h)
{
    kvl_classify_t *c = ctx;
    if (c->slots[h].nf == NULL) {
        return NDPI_PROTOCOL_UNKNOWN;
    }
    return give_up(c, h);
}

static const char *on_name(void *ctx, int app)
{
    kvl_classify_t *c = ctx;
    const char *n = ndpi_get_proto_name(c->nd, (uint16_t)app);
    return n != NULL ? n : "Unknown";
}

void kvl_classify_seam(kvl_classify_t *c, kvl_flows_classifier_t *out)
{
    memset(out, 0, sizeof(*out));
    out->ctx = c;
    out->begin = on_begin;
    out->packet = on_packet;
    out->end = on_end;
    out->name = on_name;
    out->max_app = c->max_app;
}

void kvl_classify_get_stats(const kvl_classify_t *c, kvl_classify_stats_t *out)
{
    *out = c->st;
}
