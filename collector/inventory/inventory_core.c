/*
 * inventory_core.c — the inventory's model and its sink (inventory.h): agents, their devices and
 * the devices' interfaces in one hash by (agent, device, instance), labels merged as
 * definitions bring them (a key given replaces its value, a key not given is kept: a
 * device down at the agent's start reports no sysName, which is no change), every
 * changed value recorded as a change, retirement by the device's ifIndexes and by the
 * agent's configured devices.
 */
#include "inventory_int.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "kvl.h"
#include "log.h"
#include "names.h"
#include "timeutil.h"

static const char *const MOD = "inventory";

#define EVENT_CONFIGURED "devices_configured"
#define LABEL_IFINDEXES "ifIndexes"
#define LABEL_NEIGHBOURS "neighbours" /* a neighbour list's instances (scope neighbour, "") */

int64_t inv_now(const kvl_inventory_t *inv)
{
    return inv->o.now_ms != NULL ? inv->o.now_ms(inv->o.now_ctx) : kvl_now_ms();
}

static size_t usable(const void *p)
{
    return p != NULL ? malloc_usable_size((void *)p) : 0;
}

/* Whether s is well-formed UTF-8 (the files and the API are JSON: names and labels that are
 * not cannot be kept). */
static bool utf8_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p != '\0') {
        unsigned c = *p++;
        int more;
        unsigned min;
        if (c < 0x80) {
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            more = 1, min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            more = 2, min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            more = 3, min = 0x10000;
        } else {
            return false;
        }
        unsigned v = c & (0x3fu >> more);
        for (int i = 0; i < more; i++, p++) {
            if ((*p & 0xc0) != 0x80) {
                return false;
            }
            v = (v << 6) | (*p & 0x3fu);
        }
        if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) {
            return false;
        }
    }
    return true;
}

static uint32_t fnv(uint32_t h, const char *s)
{
    for (; *s != '\0'; s++) {
        h = (h ^ (uint8_t)*s) * 16777619u;
    }
    return (h ^ 0xffu) * 16777619u; /* the terminator, so "ab","c" differs from "a","bc" */
}

static uint32_t key_hash(const char *agent, const char *device, const char *instance)
{
    return fnv(fnv(fnv(2166136261u, agent), device), instance != NULL ? instance : "");
}

static const char *entry_device(const inv_entry_t *e)
{
    return e->dev != NULL ? e->dev->name : e->name;
}

static bool entry_is(const inv_entry_t *e, const char *agent, const char *device,
                     const char *instance)
{
    if (strcmp(e->agent->id, agent) != 0) {
        return false;
    }
    if (instance == NULL || instance[0] == '\0') {
        return e->dev == NULL && strcmp(e->name, device) == 0;
    }
    return e->dev != NULL && strcmp(e->dev->name, device) == 0 && strcmp(e->name, instance) == 0;
}

inv_entry_t *inv_find(const kvl_inventory_t *inv, const char *agent, const char *device,
                      const char *instance)
{
    if (inv->tab_size == 0) {
        return NULL;
    }
    uint32_t h = key_hash(agent, device, instance);
    for (inv_entry_t *e = inv->tab[h & (inv->tab_size - 1)]; e != NULL; e = e->hnext) {
        if (e->hash == h && entry_is(e, agent, device, instance)) {
            return e;
        }
    }
    return NULL;
}

static int tab_grow(kvl_inventory_t *inv)
{
    size_t n = inv->tab_size ? inv->tab_size * 2 : 1024;
    inv_entry_t **t = calloc(n, sizeof(*t));
    if (t == NULL) {
        return KVL_ENOMEM;
    }
    for (size_t i = 0; i < inv->tab_size; i++) {
        for (inv_entry_t *e = inv->tab[i], *next; e != NULL; e = next) {
            next = e->hnext;
            e->hnext = t[e->hash & (n - 1)];
            t[e->hash & (n - 1)] = e;
        }
    }
    inv->bytes -= inv->tab_size * sizeof(*t);
    inv->bytes += n * sizeof(*t);
    free(inv->tab);
    inv->tab = t;
    inv->tab_size = n;
    return 0;
}

static void tab_remove(kvl_inventory_t *inv, inv_entry_t *e)
{
    inv_entry_t **pp = &inv->tab[e->hash & (inv->tab_size - 1)];
    while (*pp != NULL && *pp != e) {
        pp = &(*pp)->hnext;
    }
    if (*pp == e) {
        *pp = e->hnext;
        inv->n_entries--;
    }
}

static int push_ptr(void ***arr, size_t *n, size_t *cap, void *p, size_t *bytes)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        void **a = realloc(*arr, nc * sizeof(*a));
        if (a == NULL) {
            return KVL_ENOMEM;
        }
        *bytes += (nc - *cap) * sizeof(*a);
        *arr = a;
        *cap = nc;
    }
    (*arr)[(*n)++] = p;
    return 0;
}

inv_agent_t *inv_agent(kvl_inventory_t *inv, const char *id, const char *site, bool create)
{
    if (inv->last_agent < inv->n_agents && strcmp(inv->agents[inv->last_agent]->id, id) == 0) {
        inv_agent_t *a = inv->agents[inv->last_agent];
        if (site != NULL && strcmp(a->site, site) != 0 && utf8_ok(site)) {
            char *s = strdup(site);
            if (s != NULL) {
                inv->bytes += usable(s) - usable(a->site);
                free(a->site);
                a->site = s;
            }
        }
        return a;
    }
    /* agents are kept sorted by id: a binary search, then the insertion point */
    size_t lo = 0, hi = inv->n_agents;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(inv->agents[mid]->id, id);
        if (c == 0) {
            inv->last_agent = mid;
            return inv_agent(inv, id, site, create);
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (!create) {
        return NULL;
    }
    inv_agent_t *a = calloc(1, sizeof(*a));
    if (a == NULL || (a->id = strdup(id)) == NULL ||
        (a->site = strdup(site != NULL && utf8_ok(site) ? site : "")) == NULL) {
        if (a != NULL) {
            free(a->id);
        }
        free(a);
        return NULL;
    }
    if (push_ptr((void ***)&inv->agents, &inv->n_agents, &inv->cap_agents, a, &inv->bytes) != 0) {
        free(a->id);
        free(a->site);
        free(a);
        return NULL;
    }
    memmove(&inv->agents[lo + 1], &inv->agents[lo],
            (inv->n_agents - 1 - lo) * sizeof(*inv->agents));
    inv->agents[lo] = a;
    inv->bytes += usable(a) + usable(a->id) + usable(a->site);
    inv->last_agent = lo;
    return a;
}

/* An entry's memory with its name, owner and times (entry_new and nbr_new link it in). */
static inv_entry_t *entry_alloc(inv_agent_t *a, inv_entry_t *dev, const char *name, int64_t t_ms)
{
    size_t len = strlen(name);
    inv_entry_t *e = calloc(1, sizeof(*e) + len + 1);
    if (e != NULL) {
        memcpy(e->name, name, len + 1);
        e->agent = a;
        e->dev = dev;
        e->first_ms = e->last_ms = t_ms;
    }
    return e;
}

/* A new entry (no labels yet): a device of a, or an interface of dev. */
static inv_entry_t *entry_new(kvl_inventory_t *inv, inv_agent_t *a, inv_entry_t *dev,
                              const char *name, int64_t t_ms)
{
    if ((inv->n_entries + 1) * 4 > inv->tab_size * 3 && tab_grow(inv) != 0) {
        return NULL;
    }
    inv_entry_t *e = entry_alloc(a, dev, name, t_ms);
    if (e == NULL) {
        return NULL;
    }
    int rc = dev != NULL ? push_ptr((void ***)&dev->ifs, &dev->n_ifs, &dev->cap_ifs, e, &inv->bytes)
                         : push_ptr((void ***)&a->devs, &a->n_devs, &a->cap_devs, e, &inv->bytes);
    if (rc != 0) {
        free(e);
        return NULL;
    }
    if (dev != NULL) {
        inv->n_ifaces++;
    } else {
        inv->n_devices++;
    }
    e->hash = key_hash(a->id, entry_device(e), dev != NULL ? name : "");
    e->hnext = inv->tab[e->hash & (inv->tab_size - 1)];
    inv->tab[e->hash & (inv->tab_size - 1)] = e;
    inv->n_entries++;
    inv->bytes += usable(e);
    return e;
}

const char *inv_label(const inv_entry_t *e, const char *key)
{
    const char *p = e->labels;
    for (uint16_t i = 0; i < e->n_labels; i++) {
        size_t kl = strlen(p);
        if (strcmp(p, key) == 0) {
            return p + kl + 1;
        }
        p += kl + 1;
        p += strlen(p) + 1;
    }
    return NULL;
}

/* A label worth keeping: key and value present, well-formed UTF-8, the key short. */
static bool label_ok(const kvl_label_t *l)
{
    return l->key != NULL && l->value != NULL && strlen(l->key) <= 128 && utf8_ok(l->key) &&
           utf8_ok(l->value);
}

/* A value's length cut to KVL_INV_LABEL_MAX bytes, never inside a UTF-8 sequence. */
static size_t cut_len(const char *v)
{
    size_t n = strnlen(v, KVL_INV_LABEL_MAX + 1);
    if (n <= KVL_INV_LABEL_MAX) {
        return n;
    }
    n = KVL_INV_LABEL_MAX;
    while (n > 0 && ((unsigned char)v[n] & 0xc0) == 0x80) {
        n--;
    }
    return n;
}

/* The merge of labels into e (see labels_merge) written to blob, or only measured (blob NULL:
 * nothing recorded either). Sets *len and *nl; returns whether a value changed. */
static bool merge_into(kvl_inventory_t *inv, const inv_entry_t *e, const kvl_label_t *l, size_t n,
                       int64_t t_ms, bool quiet, char *blob, size_t *len, uint16_t *nl)
{
    bool changed = false;
    *len = 0;
    *nl = 0;
    /* the old ones, with their new values where given */
    const char *p = e->labels;
    for (uint16_t i = 0; i < e->n_labels; i++) {
        const char *k = p, *v = p + strlen(p) + 1;
        p = v + strlen(v) + 1;
        const char *nv = v;
        for (size_t j = 0; j < n; j++) {
            if (label_ok(&l[j]) && strcmp(l[j].key, k) == 0) {
                nv = l[j].value;
                break;
            }
        }
        size_t kl = strlen(k), vl = cut_len(nv);
        if (nv != v && (strlen(v) != vl || memcmp(v, nv, vl) != 0)) {
            changed = true;
            if (blob != NULL && !quiet) {
                char cut[KVL_INV_LABEL_MAX + 1];
                memcpy(cut, nv, vl);
                cut[vl] = '\0';
                inv_change_push(inv, t_ms, e->agent->id, entry_device(e),
                                e->dev != NULL ? e->name : "", k, v, cut);
            }
        }
        if (blob != NULL) {
            memcpy(blob + *len, k, kl + 1);
            memcpy(blob + *len + kl + 1, nv, vl);
            blob[*len + kl + 1 + vl] = '\0';
        }
        *len += kl + vl + 2;
        (*nl)++;
    }
    /* the new keys */
    for (size_t j = 0; j < n; j++) {
        const char *k = l[j].key, *v = l[j].value;
        if (!label_ok(&l[j]) || k[0] == '\0' || strcmp(k, LABEL_IFINDEXES) == 0 ||
            inv_label(e, k) != NULL || *nl >= KVL_INV_LABELS_MAX) {
            continue;
        }
        bool dup = false;
        for (size_t i = 0; i < j && !dup; i++) {
            dup = label_ok(&l[i]) && strcmp(l[i].key, k) == 0;
        }
        if (dup) {
            continue;
        }
        size_t kl = strlen(k), vl = cut_len(v);
        if (blob != NULL) {
            memcpy(blob + *len, k, kl + 1);
            memcpy(blob + *len + kl + 1, v, vl);
            blob[*len + kl + 1 + vl] = '\0';
            if (!quiet && e->labels != NULL) { /* a key added to what was known */
                char cut[KVL_INV_LABEL_MAX + 1];
                memcpy(cut, v, vl);
                cut[vl] = '\0';
                inv_change_push(inv, t_ms, e->agent->id, entry_device(e),
                                e->dev != NULL ? e->name : "", k, "", cut);
            }
        }
        *len += kl + vl + 2;
        (*nl)++;
        changed = true;
    }
    return changed;
}

/* Merges labels into e: a key given replaces its value (cut to KVL_INV_LABEL_MAX bytes), a
 * key not given is kept; each changed value is recorded (unless `quiet`). "ifIndexes" is
 * not kept, nor labels that are not UTF-8. An update that would make the entry's labels
 * larger than KVL_INV_LABELS_BYTES is not kept (logged). Returns 1 when something changed,
 * 0 when not, or KVL_ENOMEM. */
static int labels_merge(kvl_inventory_t *inv, inv_entry_t *e, const kvl_label_t *l, size_t n,
                        int64_t t_ms, bool quiet)
{
    size_t len;
    uint16_t nl;
    if (!merge_into(inv, e, l, n, t_ms, quiet, NULL, &len, &nl)) {
        return 0;
    }
    if (len > KVL_INV_LABELS_BYTES) {
        KVL_LOG_WARN(MOD, entry_device(e), "agent %s: labels of %s%s beyond %d bytes not kept",
                     e->agent->id, e->dev != NULL ? "interface " : "the device",
                     e->dev != NULL ? e->name : "", KVL_INV_LABELS_BYTES);
        return 0;
    }
    char *blob = malloc(len > 0 ? len : 1);
    if (blob == NULL) {
        return KVL_ENOMEM;
    }
    merge_into(inv, e, l, n, t_ms, quiet, blob, &len, &nl);
    inv->bytes -= usable(e->labels);
    free(e->labels);
    e->labels = blob;
    e->labels_len = (uint32_t)len;
    e->n_labels = nl;
    inv->bytes += usable(blob);
    return 1;
}

static void set_retired(kvl_inventory_t *inv, inv_entry_t *e, int64_t t_ms)
{
    if (e->retired_ms == 0) {
        e->retired_ms = t_ms > 0 ? t_ms : 1;
        inv_store_entry(inv, e);
        KVL_LOG_INFO(MOD, entry_device(e), "%s%s of agent %s retired",
                     e->dev != NULL ? "interface " : "device", e->dev != NULL ? e->name : "",
                     e->agent->id);
    }
}

static void set_back(kvl_inventory_t *inv, inv_entry_t *e, int64_t t_ms)
{
    KVL_UNUSED(inv); /* the caller writes the entry */
    if (e->retired_ms != 0 && t_ms >= e->retired_ms) {
        e->retired_ms = 0;
        e->last_ms = t_ms;
        KVL_LOG_INFO(MOD, entry_device(e), "%s%s of agent %s is back",
                     e->dev != NULL ? "interface " : "device", e->dev != NULL ? e->name : "",
                     e->agent->id);
    }
}

static uint32_t ifindex_of(const inv_entry_t *e, bool *ok)
{
    const char *s = inv_label(e, "ifIndex");
    char *end = NULL;
    errno = 0;
    unsigned long v = s != NULL ? strtoul(s, &end, 10) : 0;
    *ok = s != NULL && end != s && *end == '\0' && errno == 0 && v <= UINT32_MAX;
    return (uint32_t)v;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct if_slot {
    uint32_t ifindex;
    inv_entry_t *e;
} if_slot_t;

static int cmp_slot(const void *a, const void *b)
{
    const if_slot_t *x = a, *y = b;
    if (x->ifindex != y->ifindex) {
        return x->ifindex < y->ifindex ? -1 : 1;
    }
    /* the latest defined first */
    return x->e->last_ms > y->e->last_ms ? -1 : x->e->last_ms < y->e->last_ms;
}

/* The device's discovery reported exactly these ifIndexes (space-separated): the newest
 * interface of each is current, every other one retired. */
static int apply_ifindexes(kvl_inventory_t *inv, inv_entry_t *dev, const char *list, int64_t t)
{
    size_t n = 0, cap = 16;
    uint32_t *idx = malloc(cap * sizeof(*idx));
    if_slot_t *sl = malloc((dev->n_ifs ? dev->n_ifs : 1) * sizeof(*sl));
    if (idx == NULL || sl == NULL) {
        free(idx);
        free(sl);
        return KVL_ENOMEM;
    }
    const char *p = list;
    while (*p != '\0') {
        char *end;
        errno = 0;
        unsigned long v = strtoul(p, &end, 10);
        if (end == p || errno != 0 || v > UINT32_MAX) {
            KVL_LOG_WARN(MOD, dev->name, "agent %s: a malformed ifIndexes label ignored",
                         dev->agent->id);
            free(idx);
            free(sl);
            return 0;
        }
        if (n == cap) {
            uint32_t *m = realloc(idx, 2 * cap * sizeof(*idx));
            if (m == NULL) {
                free(idx);
                free(sl);
                return KVL_ENOMEM;
            }
            idx = m;
            cap *= 2;
        }
        idx[n++] = (uint32_t)v;
        p = end;
        while (*p == ' ' || *p == ',') {
            p++;
        }
    }
    qsort(idx, n, sizeof(*idx), cmp_u32);
    size_t m = 0;
    for (size_t i = 0; i < dev->n_ifs; i++) {
        bool ok;
        uint32_t x = ifindex_of(dev->ifs[i], &ok);
        if (!ok || bsearch(&x, idx, n, sizeof(*idx), cmp_u32) == NULL) {
            set_retired(inv, dev->ifs[i], t);
        } else {
            sl[m++] = (if_slot_t){x, dev->ifs[i]};
        }
    }
    qsort(sl, m, sizeof(*sl), cmp_slot);
    for (size_t i = 0; i < m; i++) {
        if (i > 0 && sl[i].ifindex == sl[i - 1].ifindex) {
            set_retired(inv, sl[i].e, t);
        } else if (sl[i].e->retired_ms != 0) {
            set_back(inv, sl[i].e, t);
            inv_store_entry(inv, sl[i].e);
        }
    }
    free(idx);
    free(sl);
    return 0;
}

/* A new interface took an ifIndex: older ones of the device with it are retired. */
static void retire_same_ifindex(kvl_inventory_t *inv, inv_entry_t *e, int64_t t)
{
    bool ok;
    uint32_t x = ifindex_of(e, &ok);
    for (size_t i = 0; ok && i < e->dev->n_ifs; i++) {
        inv_entry_t *o = e->dev->ifs[i];
        bool ok2;
        if (o != e && o->retired_ms == 0 && ifindex_of(o, &ok2) == x && ok2) {
            set_retired(inv, o, t);
        }
    }
}

/* --- renames ------------------------------------------------------------------------------ */

static bool mac_given(const char *m)
{
    if (m == NULL || m[0] == '\0') {
        return false;
    }
    for (; *m != '\0'; m++) {
        if (*m != '0' && *m != ':') {
            return true;
        }
    }
    return false; /* all zeros: a port without an address of its own */
}

static bool same_given(const char *a, const char *b)
{
    return a != NULL && b != NULL && a[0] != '\0' && strcmp(a, b) == 0;
}

bool kvl_inventory_same_interface(const kvl_inv_port_t *a, const kvl_inv_port_t *b)
{
    if (!same_given(a->ifindex, b->ifindex) ||
        strspn(a->ifindex, "0123456789") != strlen(a->ifindex)) {
        return false;
    }
    bool ma = mac_given(a->mac), mb = mac_given(b->mac);
    if (ma || mb) {
        return ma && mb && strcasecmp(a->mac, b->mac) == 0;
    }
    return same_given(a->type, b->type) && same_given(a->speed, b->speed);
}

static kvl_inv_port_t port_of(const inv_entry_t *e)
{
    return (kvl_inv_port_t){inv_label(e, "ifIndex"), inv_label(e, "ifPhysAddress"),
                            inv_label(e, "ifType"), inv_label(e, "ifSpeed")};
}

/* Whether the batch (if any) defines the interface `name` of device `dev`. */
static bool batch_defines(const kvl_batch_t *b, const char *dev, const char *name)
{
    for (size_t i = 0; b != NULL && i < b->n_defs; i++) {
        const kvl_series_def_t *d = &b->defs[i];
        if (d->scope == KVL_SCOPE_INTERFACE && d->device != NULL && d->instance != NULL &&
            strcmp(d->device, dev) == 0 && strcmp(d->instance, name) == 0) {
            return true;
        }
    }
    return false;
}

/* The interface of e's device that e was known as before (the rename rule), or NULL: the
 * newest defined of those that match, none of them defined at t or in the batch. */
static inv_entry_t *renamed_from(const inv_entry_t *e, const kvl_batch_t *b, int64_t t)
{
    kvl_inv_port_t pe = port_of(e);
    inv_entry_t *best = NULL;
    for (size_t i = 0; i < e->dev->n_ifs; i++) {
        inv_entry_t *o = e->dev->ifs[i];
        if (o == e || o->last_ms >= t || (best != NULL && o->last_ms <= best->last_ms)) {
            continue;
        }
        const char *oi = inv_label(o, "ifIndex");
        if (oi == NULL || pe.ifindex == NULL || strcmp(oi, pe.ifindex) != 0) {
            continue; /* the cheap test first: a device's first discovery meets many */
        }
        kvl_inv_port_t po = port_of(o);
        if (kvl_inventory_same_interface(&po, &pe) && !batch_defines(b, e->dev->name, o->name)) {
            best = o;
        }
    }
    return best;
}

static bool has_alias(const inv_entry_t *e, const char *name)
{
    const char *p = e->aliases;
    for (uint16_t i = 0; i < e->n_aliases; i++, p += strlen(p) + 1) {
        if (strcmp(p, name) == 0) {
            return true;
        }
    }
    return false;
}

int inv_set_aliases(kvl_inventory_t *inv, inv_entry_t *e, const json_t *aliases, bool pending)
{
    size_t len = 0, n = 0, i;
    const json_t *v;
    json_array_foreach((json_t *)aliases, i, v)
    {
        const char *s = json_string_value(v);
        if (s != NULL && s[0] != '\0' && utf8_ok(s) && n < UINT16_MAX) {
            len += strlen(s) + 1;
            n++;
        }
    }
    char *blob = n > 0 ? malloc(len) : NULL;
    if (n > 0 && blob == NULL) {
        return KVL_ENOMEM;
    }
    char *p = blob;
    json_array_foreach((json_t *)aliases, i, v)
    {
        const char *s = json_string_value(v);
        if (p != NULL && s != NULL && s[0] != '\0' && utf8_ok(s) &&
            (size_t)(p - blob) + strlen(s) + 1 <= len) {
            memcpy(p, s, strlen(s) + 1);
            p += strlen(s) + 1;
        }
    }
    inv->bytes -= usable(e->aliases);
    free(e->aliases);
    e->aliases = blob;
    e->n_aliases = (uint16_t)n;
    e->move_pending = pending && n > 0;
    inv->bytes += usable(blob);
    return 0;
}

/* e (the new name) takes over o (the old one): o's former names and name become e's aliases
 * (e's own name left out: renamed back; the newest KVL_INV_ALIASES_MAX kept), o's first-seen
 * time e's; o goes. The entry is
 * written before o's removal and before the store is asked to move the archive. Returns 0
 * or KVL_ENOMEM (nothing changed). */
static int take_over(kvl_inventory_t *inv, inv_entry_t *e, inv_entry_t *o, const char *site,
                     int64_t t)
{
    json_t *al = json_array();
    const char *lists[2] = {o->aliases, e->aliases};
    uint16_t counts[2] = {o->n_aliases, e->n_aliases};
    for (int k = 0; al != NULL && k < 2; k++) {
        const char *p = lists[k];
        for (uint16_t i = 0; i < counts[k]; i++, p += strlen(p) + 1) {
            if (strcmp(p, e->name) != 0 && strcmp(p, o->name) != 0 &&
                (k == 0 || !has_alias(o, p))) {
                json_array_append_new(al, json_string(p));
            }
        }
    }
    char *from = strdup(o->name); /* o goes below */
    bool ok = al != NULL && from != NULL && json_array_append_new(al, json_string(o->name)) == 0;
    while (ok && json_array_size(al) > KVL_INV_ALIASES_MAX) {
        ok = json_array_remove(al, 0) == 0;
    }
    if (!ok || inv_set_aliases(inv, e, al, true) != 0) {
        json_decref(al);
        free(from);
        return KVL_ENOMEM;
    }
    json_decref(al);
    if (o->first_ms < e->first_ms) {
        e->first_ms = o->first_ms;
    }
    inv_change_push(inv, t, e->agent->id, e->dev->name, e->name, "name", from, e->name);
    inv_store_entry(inv, e);
    inv_store_forget_iface(inv, e->agent->id, e->dev->name, from);
    inv_remove_iface(inv, o);
    KVL_LOG_DEBUG(MOD, e->dev->name,
                  "agent %s: interface %s is now %s (same port): its archive "
                  "follows",
                  e->agent->id, from, e->name);
    if (inv->o.on_rename != NULL) {
        inv->o.on_rename(inv->o.rename_ctx, e->agent->id, site != NULL ? site : e->agent->site,
                         e->dev->name, from, e->name);
    }
    free(from);
    return 0;
}

/* The entry of a device's interface now named `name` or formerly so, or NULL. */
static inv_entry_t *iface_known_as(const kvl_inventory_t *inv, const char *agent,
                                   const char *device, const char *name)
{
    inv_entry_t *e = inv_find(inv, agent, device, name);
    inv_entry_t *dev = inv_find(inv, agent, device, "");
    for (size_t i = 0; e == NULL && dev != NULL && i < dev->n_ifs; i++) {
        if (has_alias(dev->ifs[i], name)) {
            e = dev->ifs[i];
        }
    }
    return e;
}

const char *kvl_inventory_current_name(const kvl_inventory_t *inv, const char *agent,
                                       const char *device, const char *name)
{
    if (agent == NULL || device == NULL || name == NULL || name[0] == '\0') {
        return NULL;
    }
    const inv_entry_t *e = iface_known_as(inv, agent, device, name);
    return e != NULL ? e->name : NULL;
}

void kvl_inventory_moved(kvl_inventory_t *inv, const char *agent, const char *device,
                         const char *from, const char *to, kvl_inv_move_t how)
{
    inv_entry_t *e = iface_known_as(inv, agent, device, to);
    const char *idx = e != NULL ? inv_label(e, "ifIndex") : NULL;
    char target[KVL_NAME_FILE_MAX + 8];
    snprintf(target, sizeof(target), "%s", device);
    if (how == KVL_INV_KEPT_BOTH) {
        KVL_LOG_WARN(MOD, target,
                     "interface renamed: %s/%s %s -> %s (ifIndex %s), both names have an "
                     "archive: both kept, nothing moved",
                     agent, device, from, to, idx != NULL ? idx : "?");
    } else {
        KVL_LOG_INFO(MOD, target, "interface renamed: %s/%s %s -> %s (ifIndex %s), %s", agent,
                     device, from, to, idx != NULL ? idx : "?",
                     how == KVL_INV_MOVED ? "archive moved" : "no archive under the old name");
    }
    if (e == NULL || !e->move_pending || strcmp(e->name, to) != 0 || e->n_aliases == 0) {
        return;
    }
    const char *last = e->aliases;
    for (uint16_t i = 1; i < e->n_aliases; i++) {
        last += strlen(last) + 1;
    }
    if (strcmp(last, from) == 0) { /* the newest former name: the archive is settled */
        e->move_pending = false;
        inv_store_entry(inv, e);
    }
}

size_t kvl_inventory_pending_moves(kvl_inventory_t *inv)
{
    size_t n = 0;
    for (size_t i = 0; i < inv->tab_size; i++) {
        for (const inv_entry_t *e = inv->tab[i]; e != NULL; e = e->hnext) {
            if (!e->move_pending || e->dev == NULL || inv->o.on_rename == NULL) {
                continue;
            }
            const char *p = e->aliases;
            for (uint16_t k = 0; k < e->n_aliases; k++, p += strlen(p) + 1) {
                inv->o.on_rename(inv->o.rename_ctx, e->agent->id, e->agent->site, e->dev->name, p,
                                 e->name);
                n++;
            }
        }
    }
    return n;
}

/* --- definitions ---------------------------------------------------------------------------- */

/* A definition (kvl_inventory_define), from batch b when the sink has one (NULL: alone). */
/* --- neighbours (LLDP/CDP, agent/snmp/nbrwalk.h) ------------------------------------------------
 */

inv_entry_t *inv_find_nbr(const inv_entry_t *dev, const char *instance)
{
    for (size_t i = 0; i < dev->n_nbrs; i++) {
        if (strcmp(dev->nbrs[i]->name, instance) == 0) {
            return dev->nbrs[i];
        }
    }
    return NULL;
}

static inv_entry_t *nbr_new(kvl_inventory_t *inv, inv_agent_t *a, inv_entry_t *dev,
                            const char *name, int64_t t_ms)
{
    inv_entry_t *e = entry_alloc(a, dev, name, t_ms);
    if (e == NULL) {
        return NULL;
    }
    e->nbr = true;
    if (push_ptr((void ***)&dev->nbrs, &dev->n_nbrs, &dev->cap_nbrs, e, &inv->bytes) != 0) {
        free(e);
        return NULL;
    }
    inv->bytes += usable(e);
    return e;
}

/* "<sys_name or chassis id> port <port id>" of a neighbour, for the log. */
static void nbr_what(const inv_entry_t *e, char *buf, size_t len)
{
    const char *sys = inv_label(e, "sys_name"), *ch = inv_label(e, "chassis_id"),
               *port = inv_label(e, "port_id");
    snprintf(buf, len, "%s port %s", sys != NULL && sys[0] != '\0' ? sys : (ch != NULL ? ch : "?"),
             port != NULL && port[0] != '\0' ? port : "?");
}

/* "interface X" or "port N" (no interface known) of a neighbour, for the log. */
static void nbr_where(const inv_entry_t *e, char *buf, size_t len)
{
    const char *ifn = inv_label(e, "local_if"), *port = inv_label(e, "local_port");
    if (ifn != NULL && ifn[0] != '\0') {
        snprintf(buf, len, "interface %s", ifn);
    } else {
        snprintf(buf, len, "local port %s", port != NULL && port[0] != '\0' ? port : "?");
    }
}

/* Logs a neighbour's change at INFO (recabling): `what` is "appeared", "gone" or "back". */
static void nbr_log(const kvl_inventory_t *inv, const inv_entry_t *e, const char *what)
{
    if (inv->loading) {
        return;
    }
    char who[600], where[300];
    nbr_what(e, who, sizeof(who));
    nbr_where(e, where, sizeof(where));
    const char *proto = inv_label(e, "protocol");
    KVL_LOG_INFO(MOD, e->dev->name, "agent %s: %s neighbour on %s %s: %s", e->agent->id,
                 proto != NULL ? proto : "", where, what, who);
}

/* A neighbour's definition (labels from the agent's discovery). */
static int define_nbr(kvl_inventory_t *inv, inv_agent_t *a, inv_entry_t *dev,
                      const kvl_series_def_t *d, int64_t t_ms)
{
    inv_entry_t *e = inv_find_nbr(dev, d->instance);
    bool e_new = e == NULL;
    if (e == NULL && (e = nbr_new(inv, a, dev, d->instance, t_ms)) == NULL) {
        return KVL_ENOMEM;
    }
    char before[600] = "", where_before[300] = "";
    if (!e_new) {
        nbr_what(e, before, sizeof(before));
        nbr_where(e, where_before, sizeof(where_before));
    }
    int rc = labels_merge(inv, e, d->labels, d->n_labels, t_ms, e_new);
    if (rc < 0) {
        return rc;
    }
    bool was_gone = e->retired_ms != 0;
    if (was_gone && t_ms >= e->retired_ms) {
        e->retired_ms = 0;
    }
    if (e_new) {
        nbr_log(inv, e, "appeared");
    } else if (rc > 0) {
        char after[600], where_after[300];
        nbr_what(e, after, sizeof(after));
        nbr_where(e, where_after, sizeof(where_after));
        if (strcmp(before, after) != 0 || strcmp(where_before, where_after) != 0) {
            KVL_LOG_INFO(MOD, dev->name, "agent %s: neighbour %s changed: %s on %s -> %s on %s",
                         a->id, e->name, before, where_before, after, where_after);
        }
    } else if (was_gone && e->retired_ms == 0) {
        nbr_log(inv, e, "back");
    }
    if (rc > 0 || e_new || was_gone != (e->retired_ms != 0)) {
        e->last_ms = t_ms > e->last_ms ? t_ms : e->last_ms;
        inv_store_entry(inv, e);
    }
    return 0;
}

/* The device's discovery saw exactly these neighbours (instances, space-separated): the others
 * are gone, these current (those already known; a new one comes with its definition). */
static void apply_neighbours(kvl_inventory_t *inv, inv_entry_t *dev, const char *list, int64_t t)
{
    for (size_t i = 0; i < dev->n_nbrs; i++) {
        inv_entry_t *e = dev->nbrs[i];
        size_t len = strlen(e->name);
        bool listed = false;
        for (const char *p = list; !listed && (p = strstr(p, e->name)) != NULL; p += len) {
            listed = (p == list || p[-1] == ' ') && (p[len] == '\0' || p[len] == ' ');
        }
        if (!listed && e->retired_ms == 0) {
            e->retired_ms = t > 0 ? t : 1;
            nbr_log(inv, e, "gone");
            inv_store_entry(inv, e);
        } else if (listed && e->retired_ms != 0 && t >= e->retired_ms) {
            e->retired_ms = 0;
            e->last_ms = t;
            nbr_log(inv, e, "back");
            inv_store_entry(inv, e);
        }
    }
}

/* A restored record's labels replace the entry's (a record holds the whole entry), with its
 * times. Returns 0 or KVL_ENOMEM. */
static int restore_labels(kvl_inventory_t *inv, inv_entry_t *e, const json_t *labels, int64_t first,
                          int64_t last, int64_t retired)
{
    size_t n = json_object_size(labels);
    kvl_label_t *l = calloc(n ? n : 1, sizeof(*l));
    if (l == NULL) {
        return KVL_ENOMEM;
    }
    size_t k = 0;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)labels, key, v)
    {
        if (json_is_string(v)) {
            l[k++] = (kvl_label_t){key, json_string_value(v)};
        }
    }
    inv->bytes -= usable(e->labels);
    free(e->labels);
    e->labels = NULL;
    e->n_labels = 0;
    e->labels_len = 0;
    int rc = labels_merge(inv, e, l, k, last, true);
    free(l);
    if (rc < 0) {
        return rc;
    }
    e->first_ms = first;
    e->last_ms = last;
    e->retired_ms = retired;
    return 0;
}

int inv_restore_nbr(kvl_inventory_t *inv, const char *agent, const char *site, const char *device,
                    const char *instance, const json_t *labels, int64_t first, int64_t last,
                    int64_t gone)
{
    if (instance == NULL || instance[0] == '\0') {
        return KVL_EINVAL;
    }
    inv_agent_t *a = inv_agent(inv, agent, site, true);
    if (a == NULL) {
        return KVL_ENOMEM;
    }
    inv_entry_t *dev = inv_find(inv, agent, device, "");
    if (dev == NULL && (dev = entry_new(inv, a, NULL, device, first)) == NULL) {
        return KVL_ENOMEM;
    }
    inv_entry_t *e = inv_find_nbr(dev, instance);
    if (e == NULL && (e = nbr_new(inv, a, dev, instance, first)) == NULL) {
        return KVL_ENOMEM;
    }
    return restore_labels(inv, e, labels, first, last, gone);
}

static int define(kvl_inventory_t *inv, const char *agent, const char *site,
                  const kvl_series_def_t *d, int64_t t_ms, const kvl_batch_t *b)
{
    if (d->scope != KVL_SCOPE_DEVICE && d->scope != KVL_SCOPE_INTERFACE &&
        d->scope != KVL_SCOPE_NEIGHBOUR) {
        return 0;
    }
    bool named = d->scope == KVL_SCOPE_INTERFACE; /* a neighbour's "": the device's list */
    bool has_inst = d->scope != KVL_SCOPE_DEVICE;
    if (agent == NULL || agent[0] == '\0' || d->device == NULL || d->device[0] == '\0' ||
        (has_inst && d->instance == NULL) || (named && d->instance[0] == '\0') || !utf8_ok(agent) ||
        (site != NULL && !utf8_ok(site)) || !utf8_ok(d->device) ||
        (has_inst && !utf8_ok(d->instance))) {
        return KVL_EINVAL; /* no name, or one that JSON cannot hold */
    }
    inv_agent_t *a = inv_agent(inv, agent, site, true);
    if (a == NULL) {
        return KVL_ENOMEM;
    }
    inv_entry_t *dev = inv_find(inv, agent, d->device, "");
    bool dev_new = dev == NULL;
    if (dev == NULL && (dev = entry_new(inv, a, NULL, d->device, t_ms)) == NULL) {
        return KVL_ENOMEM;
    }
    if (d->scope == KVL_SCOPE_DEVICE) {
        int rc = labels_merge(inv, dev, d->labels, d->n_labels, t_ms, dev_new);
        if (rc < 0) {
            return rc;
        }
        bool was_retired = dev->retired_ms != 0;
        set_back(inv, dev, t_ms);
        if (rc > 0 || dev_new || was_retired != (dev->retired_ms != 0)) {
            dev->last_ms = t_ms > dev->last_ms ? t_ms : dev->last_ms;
            inv_store_entry(inv, dev);
        }
        for (size_t i = 0; i < d->n_labels; i++) {
            if (d->labels[i].key != NULL && d->labels[i].value != NULL &&
                strcmp(d->labels[i].key, LABEL_IFINDEXES) == 0) {
                return apply_ifindexes(inv, dev, d->labels[i].value, t_ms);
            }
        }
        return 0;
    }
    if (dev_new) {
        inv_store_entry(inv, dev);
    }
    if (d->scope == KVL_SCOPE_NEIGHBOUR && d->instance != NULL && d->instance[0] == '\0') {
        /* the device's neighbour list; its other labels (its own LLDP chassis id and system
         * name) are the device's */
        kvl_label_t own[8];
        size_t n_own = 0;
        for (size_t i = 0; i < d->n_labels; i++) {
            if (d->labels[i].key == NULL || d->labels[i].value == NULL) {
                continue;
            }
            if (strcmp(d->labels[i].key, LABEL_NEIGHBOURS) == 0) {
                apply_neighbours(inv, dev, d->labels[i].value, t_ms);
            } else if (n_own < KVL_ARRAY_SIZE(own)) {
                own[n_own++] = d->labels[i];
            }
        }
        int rc = labels_merge(inv, dev, own, n_own, t_ms, dev_new);
        if (rc > 0) {
            inv_store_entry(inv, dev);
        }
        return rc < 0 ? rc : 0;
    }
    if (d->scope == KVL_SCOPE_NEIGHBOUR) {
        return define_nbr(inv, a, dev, d, t_ms);
    }
    inv_entry_t *e = inv_find(inv, agent, d->device, d->instance);
    bool e_new = e == NULL;
    if (e == NULL && (e = entry_new(inv, a, dev, d->instance, t_ms)) == NULL) {
        return KVL_ENOMEM;
    }
    const char *old_idx = inv_label(e, "ifIndex");
    char before[16] = "";
    if (old_idx != NULL) {
        snprintf(before, sizeof(before), "%s", old_idx);
    }
    int rc = labels_merge(inv, e, d->labels, d->n_labels, t_ms, e_new);
    if (rc < 0) {
        return rc;
    }
    bool was_retired = e->retired_ms != 0;
    set_back(inv, e, t_ms);
    if (rc > 0 || e_new || was_retired != (e->retired_ms != 0)) {
        e->last_ms = t_ms > e->last_ms ? t_ms : e->last_ms;
        inv_store_entry(inv, e);
    }
    const char *now_idx = inv_label(e, "ifIndex");
    if (e->retired_ms == 0 && now_idx != NULL && (e_new || strcmp(before, now_idx) != 0)) {
        inv_entry_t *o = renamed_from(e, b, t_ms);
        if (o != NULL && (rc = take_over(inv, e, o, site, t_ms)) != 0) {
            return rc;
        }
        retire_same_ifindex(inv, e, t_ms);
    }
    return 0;
}

int kvl_inventory_define(kvl_inventory_t *inv, const char *agent, const char *site,
                         const kvl_series_def_t *d, int64_t t_ms)
{
    return define(inv, agent, site, d, t_ms, NULL);
}

void kvl_inventory_seen(kvl_inventory_t *inv, const char *agent, const char *site, int64_t t_ms)
{
    inv_agent_t *a = inv_agent(inv, agent, site, false);
    if (a != NULL && t_ms > a->last_ms) {
        a->last_ms = t_ms;
    }
}

int kvl_inventory_configured(kvl_inventory_t *inv, const char *agent, const char *site,
                             const char *const *devices, size_t n, int64_t t_ms)
{
    if (agent == NULL || agent[0] == '\0' || !utf8_ok(agent) || (site != NULL && !utf8_ok(site))) {
        return KVL_EINVAL;
    }
    inv_agent_t *a = inv_agent(inv, agent, site, true);
    if (a == NULL) {
        return KVL_ENOMEM;
    }
    size_t retired = 0;
    for (size_t i = 0; i < a->n_devs; i++) {
        inv_entry_t *d = a->devs[i];
        bool named = false;
        for (size_t j = 0; j < n && !named; j++) {
            named = devices[j] != NULL && strcmp(devices[j], d->name) == 0;
        }
        if (!named && d->retired_ms == 0) {
            set_retired(inv, d, t_ms);
            retired++;
        } else if (named && d->retired_ms != 0) {
            set_back(inv, d, t_ms);
            inv_store_entry(inv, d);
        }
    }
    KVL_LOG_INFO(MOD, agent, "the agent's configuration names %zu devices (%zu retired now)", n,
                 retired);
    return 0;
}

static void entry_free(kvl_inventory_t *inv, inv_entry_t *e)
{
    inv->bytes -=
        usable(e->labels) + usable(e->ifs) + usable(e->aliases) + usable(e->nbrs) + usable(e);
    free(e->labels);
    free(e->aliases);
    free(e->ifs);
    free(e->nbrs);
    free(e);
}

void inv_remove_iface(kvl_inventory_t *inv, inv_entry_t *e)
{
    inv_entry_t *dev = e->dev;
    KVL_ASSERT(dev != NULL);
    for (size_t i = 0; i < dev->n_ifs; i++) {
        if (dev->ifs[i] == e) {
            memmove(&dev->ifs[i], &dev->ifs[i + 1], (dev->n_ifs - i - 1) * sizeof(*dev->ifs));
            dev->n_ifs--;
            break;
        }
    }
    tab_remove(inv, e);
    entry_free(inv, e);
    inv->n_ifaces--;
}

void inv_remove_device(kvl_inventory_t *inv, inv_entry_t *dev)
{
    inv_agent_t *a = dev->agent;
    for (size_t i = 0; i < dev->n_nbrs; i++) {
        entry_free(inv, dev->nbrs[i]);
    }
    for (size_t i = 0; i < dev->n_ifs; i++) {
        tab_remove(inv, dev->ifs[i]);
        entry_free(inv, dev->ifs[i]);
        inv->n_ifaces--;
    }
    for (size_t i = 0; i < a->n_devs; i++) {
        if (a->devs[i] == dev) {
            memmove(&a->devs[i], &a->devs[i + 1], (a->n_devs - i - 1) * sizeof(*a->devs));
            a->n_devs--;
            break;
        }
    }
    tab_remove(inv, dev);
    entry_free(inv, dev);
    inv->n_devices--;
}

int kvl_inventory_forget(kvl_inventory_t *inv, const char *agent, const char *device)
{
    inv_entry_t *dev = inv_find(inv, agent, device, "");
    if (dev == NULL) {
        return KVL_EINVAL;
    }
    size_t n = dev->n_ifs;
    inv_remove_device(inv, dev);
    inv_store_forget(inv, agent, device);
    KVL_LOG_INFO(MOD, device, "device of agent %s and its %zu interfaces forgotten (archives kept)",
                 agent, n);
    return inv->log_fd < 0 && !inv->loading ? KVL_EIO : 0;
}

int64_t inv_last_seen(const inv_entry_t *e)
{
    if (e->retired_ms != 0) {
        return e->retired_ms;
    }
    const inv_entry_t *dev = e->dev != NULL ? e->dev : e;
    if (dev->retired_ms != 0) {
        return dev->retired_ms;
    }
    return e->agent->last_ms > e->last_ms ? e->agent->last_ms : e->last_ms;
}

int inv_restore_entry(kvl_inventory_t *inv, const char *agent, const char *site, const char *device,
                      const char *instance, const json_t *labels, int64_t first, int64_t last,
                      int64_t retired)
{
    inv_agent_t *a = inv_agent(inv, agent, site, true);
    if (a == NULL) {
        return KVL_ENOMEM;
    }
    inv_entry_t *dev = inv_find(inv, agent, device, "");
    if (dev == NULL && (dev = entry_new(inv, a, NULL, device, first)) == NULL) {
        return KVL_ENOMEM;
    }
    inv_entry_t *e = dev;
    if (instance != NULL && instance[0] != '\0') {
        e = inv_find(inv, agent, device, instance);
        if (e == NULL && (e = entry_new(inv, a, dev, instance, first)) == NULL) {
            return KVL_ENOMEM;
        }
    }
    return restore_labels(inv, e, labels, first, last, retired);
}

void inv_change_push(kvl_inventory_t *inv, int64_t at, const char *agent, const char *device,
                     const char *instance, const char *key, const char *old, const char *nw)
{
    size_t max = inv->o.changes_max;
    const char *f[6] = {agent, device, instance, key, old, nw};
    size_t len = 0;
    for (int i = 0; i < 6; i++) {
        len += strlen(f[i] != NULL ? f[i] : "") + 1;
    }
    char *blob = malloc(len);
    if (blob == NULL) {
        return;
    }
    char *p = blob;
    for (int i = 0; i < 6; i++) {
        size_t l = strlen(f[i] != NULL ? f[i] : "") + 1;
        memcpy(p, f[i] != NULL ? f[i] : "", l);
        p += l;
    }
    inv_change_t *slot;
    if (inv->ch_n < max) {
        slot = &inv->changes[(inv->ch_head + inv->ch_n) % max];
        inv->ch_n++;
    } else {
        slot = &inv->changes[inv->ch_head];
        inv->ch_head = (inv->ch_head + 1) % max;
        inv->bytes -= usable(slot->blob);
        free(slot->blob);
    }
    slot->at = at;
    slot->blob = blob;
    inv->bytes += usable(blob);
    inv_store_change(inv, slot);
}

const inv_change_t *inv_change_at(const kvl_inventory_t *inv, size_t i)
{
    return i < inv->ch_n ? &inv->changes[(inv->ch_head + i) % inv->o.changes_max] : NULL;
}

void inv_change_fields(const inv_change_t *c, const char **agent, const char **device,
                       const char **instance, const char **key, const char **old, const char **nw)
{
    const char **out[6] = {agent, device, instance, key, old, nw};
    const char *p = c->blob;
    for (int i = 0; i < 6; i++) {
        if (out[i] != NULL) {
            *out[i] = p;
        }
        p += strlen(p) + 1;
    }
}

/* --- the sink ------------------------------------------------------------------------------ */

static int64_t batch_time(const kvl_inventory_t *inv, const kvl_batch_t *b)
{
    int64_t t = 0;
    for (size_t i = 0; i < b->n_groups; i++) {
        t = b->groups[i].time_ms > t ? b->groups[i].time_ms : t;
    }
    for (size_t i = 0; i < b->n_events; i++) {
        t = b->events[i].time_ms > t ? b->events[i].time_ms : t;
    }
    return t > 0 ? t : inv_now(inv);
}

static int sink_batch(void *ctx, const kvl_sink_batch_t *b, kvl_sink_done_cb done, void *token)
{
    kvl_inventory_t *inv = ctx;
    int64_t t = batch_time(inv, b->batch);
    for (size_t i = 0; i < b->batch->n_defs; i++) {
        int rc = define(inv, b->agent, b->site, &b->batch->defs[i], t, b->batch);
        if (rc == KVL_ENOMEM) {
            KVL_LOG_ERROR(MOD, b->agent, "out of memory: a definition not kept");
        }
    }
    kvl_inventory_seen(inv, b->agent, b->site, t);
    done(token, NULL);
    return 0;
}

static void sink_event(void *ctx, const kvl_sink_event_t *se)
{
    kvl_inventory_t *inv = ctx;
    const kvl_event_t *ev = se->event;
    if (se->synthetic || ev == NULL || ev->kind == NULL ||
        strcmp(ev->kind, EVENT_CONFIGURED) != 0 || se->agent == NULL) {
        return;
    }
    const char **names = calloc(ev->n_fields ? ev->n_fields : 1, sizeof(*names));
    if (names == NULL) {
        KVL_LOG_ERROR(MOD, se->agent, "out of memory: the configured devices not applied");
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < ev->n_fields; i++) {
        if (ev->fields[i].key != NULL && ev->fields[i].value != NULL &&
            strcmp(ev->fields[i].key, "device") == 0) {
            names[n++] = ev->fields[i].value;
        }
    }
    kvl_inventory_configured(inv, se->agent, se->site, names, n,
                             ev->time_ms > 0 ? ev->time_ms : inv_now(inv));
    free(names);
}

const kvl_sink_t kvl_inventory_sink = {
    .name = "inventory", .on_batch = sink_batch, .on_event = sink_event};

/* --- lifetime ------------------------------------------------------------------------------ */

int kvl_inventory_new(const kvl_inventory_opts_t *o, kvl_inventory_t **out, char *err,
                      size_t errlen)
{
    *out = NULL;
    if (o == NULL || o->dir == NULL || strlen(o->dir) + 32 > sizeof(((kvl_inventory_t *)0)->dir)) {
        snprintf(err, errlen, "inventory: no folder, or too long a path");
        return KVL_EINVAL;
    }
    kvl_inventory_t *inv = calloc(1, sizeof(*inv));
    if (inv == NULL) {
        snprintf(err, errlen, "inventory: out of memory");
        return KVL_ENOMEM;
    }
    inv->o = *o;
    if (inv->o.changes_max == 0) {
        inv->o.changes_max = KVL_INV_CHANGES_MAX;
    }
    snprintf(inv->dir, sizeof(inv->dir), "%s", o->dir);
    inv->o.dir = inv->dir;
    inv->log_fd = -1;
    inv->lock_fd = -1;
    inv->changes = calloc(inv->o.changes_max, sizeof(*inv->changes));
    if (inv->changes == NULL || tab_grow(inv) != 0) {
        snprintf(err, errlen, "inventory: out of memory");
        kvl_inventory_free(inv);
        return KVL_ENOMEM;
    }
    inv->bytes += inv->o.changes_max * sizeof(*inv->changes) + sizeof(*inv);
    int rc = inv_store_open(inv, err, errlen);
    if (rc != 0) {
        kvl_inventory_free(inv);
        return rc;
    }
    *out = inv;
    return 0;
}

void kvl_inventory_free(kvl_inventory_t *inv)
{
    if (inv == NULL) {
        return;
    }
    inv_store_close(inv);
    for (size_t i = 0; i < inv->n_agents; i++) {
        inv_agent_t *a = inv->agents[i];
        while (a->n_devs > 0) {
            inv_remove_device(inv, a->devs[a->n_devs - 1]);
        }
        free(a->devs);
        free(a->id);
        free(a->site);
        free(a);
    }
    free(inv->agents);
    for (size_t i = 0; inv->changes != NULL && i < inv->ch_n; i++) {
        free(inv->changes[(inv->ch_head + i) % inv->o.changes_max].blob);
    }
    free(inv->changes);
    free(inv->tab);
    free(inv);
}

void kvl_inventory_stats(const kvl_inventory_t *inv, kvl_inventory_stats_t *st)
{
    memset(st, 0, sizeof(*st));
    st->agents = inv->n_agents;
    st->devices = inv->n_devices;
    st->interfaces = inv->n_ifaces;
    for (size_t i = 0; i < inv->tab_size; i++) {
        for (const inv_entry_t *e = inv->tab[i]; e != NULL; e = e->hnext) {
            st->retired += e->retired_ms != 0;
        }
    }
    st->changes = inv->ch_n;
    st->bytes = inv->bytes;
    st->damaged = inv->damaged;
    st->written = inv->written;
}

const char *kvl_inventory_site(kvl_inventory_t *inv, const char *agent)
{
    inv_agent_t *a = inv_agent(inv, agent, NULL, false); /* moves its look-up hint only */
    return a != NULL && a->site[0] != '\0' ? a->site : NULL;
}

const char *kvl_inventory_label(const kvl_inventory_t *inv, const char *agent, const char *device,
                                const char *interface, const char *key)
{
    const inv_entry_t *e = inv_find(inv, agent, device, interface != NULL ? interface : "");
    return e != NULL ? inv_label(e, key) : NULL;
}
