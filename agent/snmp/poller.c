/*
 * poller.c — SNMP polling of the agent's devices (see poller.h): the device state machine,
 * the GET polls, counters, up/down and reporting. Two files of the room hold the rest: the
 * min-heap schedule, phases, probe gaps and the in-flight queue are in poll_sched.c, and
 * what the interface MIB walks ask and how their answers become named, filtered interfaces
 * in ifwalk.c.
 *
 * Scheduling. Each device ticks on a fixed schedule (one timer for all of them, the devices in a
 * min-heap by their next tick). The first tick comes at once after the start, spread over a
 * tenth of the interval (10 s at most) by the name's hash: the agent does not know when an
 * earlier run last polled the device, and waiting for the phase could leave a gap longer than
 * the archives' heartbeat (two steps). The second tick comes one interval later (a new
 * archive's first two updates one step apart, see poll_sched.h), the third on the device's
 * phase (FNV-1a hash of its name modulo the interval, counted from the Unix epoch, so it
 * survives restarts and 2,000 devices spread evenly) at least half an interval after the
 * second; then one every interval, never drifting; a tick that finds the previous poll still
 * running is skipped. Counters need no help across a restart: they go out raw (extended past wraps)
 * into DERIVE data sources, so the first poll of a new run is a rate against the archive's last
 * update from the earlier run (only a 32-bit counter that wrapped during the earlier run starts
 * again below that update: that one step is unknown).
 *
 * Every request goes through dev_send: at most max_inflight are in flight over all devices;
 * beyond that a device waits in one FIFO queue, and a slot that frees goes to the queue's head
 * before the device that freed it may send again, so no device can starve another. A poll is a
 * small state machine over one kvl_snmp session:
 *
 *   1. GET sysUpTime.0, sysName.0, ifNumber.0 and ifTableLastChange.0 (v1: a noSuchName
 *      drops that OID, remembered until the next discovery, and asks again). No usable
 *      answer: the device is down with a reason (down_reason 1 timeout, 2 SNMPv3 Report,
 *      3 neither sysUpTime nor sysName, 4 other), logged and evented once per outage.
 *   2a. Discovery (first poll, every `rediscover`, and at once when ifNumber or
 *      ifTableLastChange moved, sysUpTime went back or an interface vanished): walk the
 *      ifTable and ifXTable columns in parallel, one varbind per column per request
 *      (GETBULK in v2c/v3 with columns x repetitions <= 60, GETNEXT in v1), so an
 *      interface's in and out counters travel in one PDU. A column ends when it leaves its
 *      subtree, at endOfMibView, when an OID does not increase, or (v1) on noSuchName.
 *      Values land in rows keyed by ifIndex; the interface list is every index seen. Each
 *      row is named (ifName, else ifDescr, else "if<ifIndex>", "#<ifIndex>" added to
 *      duplicates) and passed through the device's filters; the included rows are reported
 *      and become the inventory: name, labels and the value columns each one has. Then the
 *      model and serial (ENTITY-MIB, first chassis entry) and the LLDP/CDP neighbours
 *      (nbrwalk.h: four tables walked one after the other, GETNEXT for each table's first
 *      request, GETBULK after; each neighbour reported as a KVL_SCOPE_NEIGHBOUR definition
 *      with a present=1 sample, and the list of their instances as the neighbour-scope
 *      instance "" (label "neighbours", metric count, with the device's own LLDP chassis id
 *      and system name from one GET after the tables), so the collector can tell one that
 *      went; a walk cut short reports nothing and the collector keeps what it knew).
 *   2b. Between discoveries: GET exactly those columns of the inventory's interfaces, all
 *      of one interface in one PDU, as many interfaces per PDU as fit in 60 varbinds (fewer
 *      while the adaptive size is below the configured one). A missing instance means the
 *      table changed: the poll turns into a discovery. Excluded interfaces cost nothing.
 *   3. Counters go through kvl_counter_update with state kept per interface name; one group
 *      per interface, timed when the PDU carrying its in_octets arrived, and one device
 *      group timed when the system GET answered.
 *   4. Metric groups (mibgroups.h), when the device has any: after the interface part
 *      (unless it ended on a timeout, send failure or Report), interfaces_done hands over
 *      to kvl_mg_next / kvl_mg_response, one request at a time through dev_send, so the
 *      groups share the session, the in-flight cap and the adaptive size; then the poll ends.
 *
 * Dead devices: after DEAD_AFTER polls in a row timed out, a tick sends only a sysUpTime
 * GET without retries, and only every probe_gap ticks (doubling up to DEAD_MAX_GAP_MS); the
 * ticks in between report the device down (reachable 0, down_reason 1) without asking. Any
 * answer ends it, and the same tick goes on with a full poll.
 *
 * Adaptive size: a tooBig, or a timeout in the middle of a walk or of the GETs, halves the
 * device's max-repetitions (and with it the GET batch size) and resends (at most
 * MID_POLL_RETRIES times per poll for timeouts); the failed size minus one stays a ceiling
 * for CEILING_MS; each poll without such trouble adds one, up to the configured maximum.
 *
 * Down state across restarts: when the agent keeps state (kvl_poller_keep_state), every
 * change of a device's down state (down with its reason and since when, a new reason, up) goes
 * to the devices' down-state file (downstate.h). At the start a device the file says is down
 * starts down: a poll that still gets no answer raises no second device_down and its down
 * time runs from the stored start; the first answer raises device_up with the whole time.
 *
 * Everything runs on the agent's loop; the SNMP session layer (snmp.h) never blocks.
 */
#include "poller.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "counter.h"
#include "downstate.h"
#include "ifwalk.h"
#include "log.h"
#include "mibgroups.h"
#include "nbrwalk.h"
#include "poll_sched.h"
#include "snmp.h"
#include "snmp_text.h"
#include "timeutil.h"

#define MOD "snmp"
#define MAX_VBS_PER_RESPONSE 60 /* walks: snmpsim answers at most 64; keep a margin */
#define MAX_REQUESTS_PER_WALK 20000
#define DEFAULT_MAX_REPS 25
#define DEFAULT_MAX_INFLIGHT 500
/* A dead device's return is seen within DEAD_MAX_GAP_MS (or one interval, if longer). */
#define DEAD_AFTER 3          /* polls timed out in a row before probing only */
#define DEAD_MAX_GAP_MS 60000 /* longest gap between probes of a dead device */
#define MID_POLL_RETRIES 2    /* smaller resends after timeouts, per poll */
#define CEILING_MS 3600000    /* how long a size that failed caps the growth */

/* --- what is asked and reported -------------------------------------------------------------- */

static const uint32_t sys_uptime[] = {1, 3, 6, 1, 2, 1, 1, 3, 0};
static const uint32_t sys_name[] = {1, 3, 6, 1, 2, 1, 1, 5, 0};
static const uint32_t if_number[] = {1, 3, 6, 1, 2, 1, 2, 1, 0};
static const uint32_t if_table_last_change[] = {1, 3, 6, 1, 2, 1, 31, 1, 5, 0};
static const uint32_t sys_descr[] = {1, 3, 6, 1, 2, 1, 1, 1, 0};
static const uint32_t sys_location[] = {1, 3, 6, 1, 2, 1, 1, 6, 0};

/* What the system GET asks, in this order (sysDescr and sysLocation only for the
 * inventory: labels of the device's definition). */
enum { SYS_UPTIME, SYS_NAME, SYS_IFNUMBER, SYS_LASTCHANGE, SYS_DESCR, SYS_LOCATION, N_SYS };

static const struct {
    const uint32_t *sub;
    size_t len;
} sys_objects[N_SYS] = {
    [SYS_UPTIME] = {sys_uptime, KVL_ARRAY_SIZE(sys_uptime)},
    [SYS_NAME] = {sys_name, KVL_ARRAY_SIZE(sys_name)},
    [SYS_IFNUMBER] = {if_number, KVL_ARRAY_SIZE(if_number)},
    [SYS_LASTCHANGE] = {if_table_last_change, KVL_ARRAY_SIZE(if_table_last_change)},
    [SYS_DESCR] = {sys_descr, KVL_ARRAY_SIZE(sys_descr)},
    [SYS_LOCATION] = {sys_location, KVL_ARRAY_SIZE(sys_location)},
};

/* An interface's metrics: the counters above in their order, then its states. */
enum { IF_OPER = N_CTR, IF_ADMIN, IF_SPEED, N_IF_METRICS };

static const char *const if_metrics[N_IF_METRICS] = {
    "in_octets",      "out_octets",    "in_ucast_pkts",  "out_ucast_pkts", "in_mcast_pkts",
    "out_mcast_pkts", "in_bcast_pkts", "out_bcast_pkts", "in_errors",      "out_errors",
    "in_discards",    "out_discards",  "oper_status",    "admin_status",   "speed_bps",
};

static const kvl_kind_t if_kinds[N_IF_METRICS] = {
    KVL_KIND_COUNTER, KVL_KIND_COUNTER, KVL_KIND_COUNTER, KVL_KIND_COUNTER, KVL_KIND_COUNTER,
    KVL_KIND_COUNTER, KVL_KIND_COUNTER, KVL_KIND_COUNTER, KVL_KIND_COUNTER, KVL_KIND_COUNTER,
    KVL_KIND_COUNTER, KVL_KIND_COUNTER, KVL_KIND_GAUGE,   KVL_KIND_GAUGE,   KVL_KIND_GAUGE,
};

static const kvl_family_t if_family = {
    .name = "if", .n = N_IF_METRICS, .metrics = if_metrics, .kinds = if_kinds};

/* A device's own metrics. */
enum { DEV_REACHABLE, DEV_DOWN_REASON, DEV_UPTIME, DEV_RESPONSE, DEV_IFACES, N_DEV_METRICS };

static const char *const dev_metrics[N_DEV_METRICS] = {"reachable", "down_reason", "uptime_s",
                                                       "response_ms", "interfaces"};
static const kvl_kind_t dev_kinds[N_DEV_METRICS] = {KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_GAUGE,
                                                    KVL_KIND_GAUGE, KVL_KIND_GAUGE};
static const bool dev_reals[N_DEV_METRICS] = {[DEV_RESPONSE] = true};

static const kvl_family_t dev_family = {.name = "device",
                                        .n = N_DEV_METRICS,
                                        .metrics = dev_metrics,
                                        .kinds = dev_kinds,
                                        .reals = dev_reals};

/* A neighbour (nbrwalk.h): one gauge, 1 at each discovery that saw it; what it is travels in
 * its definition's labels. */
static const char *const nbr_metrics[] = {"present"};
static const kvl_kind_t nbr_kinds[] = {KVL_KIND_GAUGE};
static const kvl_family_t nbr_family = {
    .name = "neighbour", .n = 1, .metrics = nbr_metrics, .kinds = nbr_kinds};
/* A device's neighbour list (instance ""): how many, and their instances in the label
 * "neighbours" (scope neighbour, so an older collector never sees it). */
static const char *const nbr_list_metrics[] = {"count"};
static const kvl_family_t nbr_list_family = {
    .name = "neighbours", .n = 1, .metrics = nbr_list_metrics, .kinds = nbr_kinds};

/* Why a device is down: the value of its down_reason gauge. */
enum { R_UP = 0, R_TIMEOUT = 1, R_AUTH = 2, R_NO_SUCH_NAME = 3, R_OTHER = 4 };

static const char *const reason_names[] = {
    [R_UP] = "up",
    [R_TIMEOUT] = "timeout",
    [R_AUTH] = "authentication failure",
    [R_NO_SUCH_NAME] = "no such name",
    [R_OTHER] = "error",
};

/* --- state ----------------------------------------------------------------------------------- */

/* One reported interface found by the last discovery, and what survives between polls for
 * it. Kept small and in one array per device (sorted by name): at 2,000 devices of 49
 * interfaces there are 98,000 of these. Labels are not kept: they are given to the
 * batcher at each discovery, which notices a change. A counter's previous raw reading is
 * its continuous value modulo 2^bits (kvl_counter keeps them congruent), so only the
 * continuous value is stored; all counters of an interface are read at one time. */
typedef struct iface {
    uint32_t id; /* of its first metric (if_family); its name is the batcher's instance */
    uint32_t ifindex;
    uint32_t cols; /* bit per column: what to GET between discoveries */
    uint32_t disc; /* ifCounterDiscontinuityTime (TimeTicks) */
    uint16_t have; /* bit per counter: a previous reading; HAVE_DISC: disc is known */
    uint16_t is64; /* bit per counter: that reading was 64-bit */
    int32_t dt_ms; /* time of the previous readings, from that poll's system GET (t_if) */
    uint64_t ext[N_CTR];
} iface_t;

#define HAVE_DISC 0x8000u /* in iface_t.have, above the counters' bits */

/* Where each varbind of a GET batch goes. */
typedef struct get_slot {
    uint32_t inv;
    uint8_t col;
} get_slot_t;

typedef enum { ST_IDLE, ST_PROBE, ST_SYS, ST_WALK, ST_GET, ST_GROUPS } dev_state_t;

/* The OID arrays a poll works with: ~25 KB, so held only while the device is being polled
 * (with polls spread over the interval, few devices are at any moment). */
typedef struct poll_work {
    kvl_ifwalk_t walk;              /* the walk's columns and cursors (ifwalk.h) */
    kvl_snmp_oid_t sys_oids[N_SYS]; /* the system GET */
    get_slot_t *get_map;            /* GET poll: what each varbind is (room: n_req) */
    size_t n_req;                   /* room in req_oids and get_map */
    kvl_snmp_oid_t req_oids[];      /* the request being sent or waiting */
} poll_work_t;

typedef struct device {
    kvl_poller_t *p;
    const kvl_device_cfg_t *cfg;
    size_t index; /* in p->devs, the configuration's order */
    uint32_t interval_s;
    uint64_t interval_ms;
    uint64_t next_due;   /* loop time (ms) of the next tick (the poller's schedule) */
    uint64_t due;        /* loop time the current poll was due */
    uint8_t start_ticks; /* ticks since the start, up to 2: on the device's phase since */
    uint64_t start_ns;   /* uv_hrtime of the current poll's first request, 0 before */
    kvl_snmp_session_t *sess;
    dev_state_t state;
    bool polled_once;

    /* the request being sent or waiting for a slot (its OIDs are in w->req_oids) */
    size_t req_n;
    kvl_snmp_op_t req_op;
    uint32_t req_reps;
    int req_retries;
    kvl_snmp_cb req_cb;
    kvl_inflight_wait_t wait; /* in the poller's queue for a slot */

    /* reachability */
    bool down;
    int down_reason;
    int64_t down_since_ms; /* start of the first poll that got no answer */
    int64_t poll_start_ms;
    unsigned timeouts_in_row;
    bool dead;           /* probed only, see the top of this file */
    unsigned probe_gap;  /* ticks between probes */
    unsigned skip_ticks; /* ticks to go before the next probe */

    /* system group of the current poll */
    int sys_which[N_SYS];
    size_t n_sys_oids;
    uint32_t sys_missing; /* bit per SYS_*: noSuchName in v1, not asked until rediscovery */
    int64_t t_sys;
    int64_t t_if; /* t_sys of the last poll that reported the interfaces */
    double rtt_ms;
    bool have_uptime, have_sysname, have_ifnumber, have_lastchange;
    uint32_t uptime;
    int64_t ifnumber;
    uint32_t lastchange;
    char *sysname;
    char *sysdescr, *syslocation; /* kept from the last answer that had them */
    char *ifindexes;              /* the last discovery's reported ifIndexes, for the label */
    char *model, *serial;         /* ENTITY-MIB, first chassis entry, read at discovery */
    unsigned ent_requests;        /* of the discovery's ENTITY-MIB look-up */
    char *neighbours; /* the instances of the last complete neighbour walk, space-separated */
    kvl_nbrs_t nbrs;  /* the neighbour walk's rows, only during it */
    int nbr_table;    /* the table being walked (kvl_nbr_table_t) */
    unsigned nbr_requests;
    uint32_t nbr_reps;
    bool nbr_first; /* the table's first request: a GETNEXT (most devices have none of it) */
    bool have_prev_uptime;
    uint32_t prev_uptime;
    bool reboot_pending; /* sysUpTime went back; cleared once counters have seen it */

    /* walk or GETs of the current poll */
    poll_work_t *w; /* only while a poll runs */
    unsigned requests;
    unsigned mid_retries; /* smaller resends after timeouts in this poll */
    bool strained;        /* tooBig or a timeout in this poll: no growth */
    kvl_ifrows_t rows;
    bool poll_failing;
    bool nonincr_logged;
    size_t get_n;     /* varbinds of the batch in flight */
    size_t get_first; /* inventory range of the batch in flight */
    size_t get_count;

    /* adaptive size */
    uint32_t reps;     /* of the last GETBULK */
    uint32_t reps_cap; /* current upper bound */
    uint32_t reps_max; /* configured */
    uint32_t reps_ceiling;
    int64_t ceiling_until_ms;

    /* inventory */
    iface_t *inv; /* sorted by name */
    size_t n_inv;
    bool discovered;
    bool rediscover_now;
    int64_t next_discovery_ms;
    bool inv_have_ifnumber, inv_have_lastchange;
    int64_t inv_ifnumber;
    uint32_t inv_lastchange;
    size_t inv_seen;    /* rows seen by the last discovery */
    size_t inv_unnamed; /* of those, included but without an id (a name refused) */

    /* series */
    uint32_t dev_id; /* first id of dev_family, registered at each poll's report */

    kvl_mg_dev_t *mg; /* metric groups (mibgroups.h), NULL when the device has none */
    bool groups_skip; /* the interface part ended without an answer: no groups this poll */
} device_t;

struct kvl_poller {
    uv_loop_t *loop;
    const kvl_snmp_cfg_t *cfg;
    kvl_batcher_t *b;
    kvl_downstate_t *state; /* devices down, kept across restarts; NULL: not kept */
    device_t **devs;        /* each its own allocation: a reload keeps a device where it is */
    size_t n_devs;
    bool once;
    bool announced; /* the configured devices went out (event devices_configured) */
    void (*done)(void *arg);
    void *done_arg;
    size_t n_done;
    uv_timer_t done_timer;
    int open_handles;

    /* One timer for every device's ticks: a min-heap of device indices by next_due
     * (poll_sched.h). */
    uv_timer_t sched_timer;
    kvl_sched_t sched;

    /* requests in flight and devices waiting for a slot (FIFO, poll_sched.h) */
    kvl_inflight_t inflight;

    /* statistics: totals, and maxima of the current period */
    uint64_t n_requests, n_timeouts, n_varbinds, n_errors;
    double cycle_max_ms, lag_max_ms;
    bool any_poll;

    /* the devices' numeric addresses, made at the first kvl_poller_device_by_addr */
    struct dev_addr *addrs;
    /* polls asked for at once but deferred (kvl_poller_poll_now): a flag per device and a
     * timer, initialised at the first such poll */
    bool *soon;
    uv_timer_t soon_timer;
    bool soon_timer_open;
};

static void start_poll(device_t *d);
static void start_sys(device_t *d);
static void send_walk(device_t *d);
static void start_walk(device_t *d);
static void send_get(device_t *d);

/* --- small helpers --------------------------------------------------------------------------- */

static void format_duration(int64_t ms, char *buf, size_t len)
{
    int64_t s = ms / 1000;
    if (s < 60) {
        snprintf(buf, len, "%" PRId64 "s", s);
    } else if (s < 3600) {
        snprintf(buf, len, "%" PRId64 "m %" PRId64 "s", s / 60, s % 60);
    } else if (s < 86400) {
        snprintf(buf, len, "%" PRId64 "h %" PRId64 "m", s / 3600, (s % 3600) / 60);
    } else {
        snprintf(buf, len, "%" PRId64 "d %" PRId64 "h", s / 86400, (s % 86400) / 3600);
    }
}

static bool is_v1(const device_t *d)
{
    return d->cfg->version == KVL_SNMP_V1;
}

static const char *cred_name(const device_t *d)
{
    return d->cfg->credentials != NULL ? d->cfg->credentials->name : NULL;
}

/* --- poll bookkeeping ------------------------------------------------------------------------ */

static void on_done_timer(uv_timer_t *t)
{
    kvl_poller_t *p = t->data;
    if (p->done != NULL) {
        p->done(p->done_arg);
    }
}

/* Ends the current poll, whatever its outcome. */
static void finish_poll(device_t *d)
{
    kvl_poller_t *p = d->p;
    d->state = ST_IDLE;
    kvl_ifrows_free(&d->rows); /* rows live only during a poll: polls are spread, few run at once */
    free(d->w);
    d->w = NULL;
    /* A v1/v2c session is a socket, two handles and its buffers, and opening it again is a
     * socket() and a connect(): closed between polls, so 2,000 idle devices hold none of
     * them (nor 2,000 file descriptors). SNMPv3 sessions stay open with their engine and
     * keys. A late answer to this poll then meets a closed port and is not mistaken for
     * the next poll's. */
    if (d->sess != NULL && kvl_snmp_reopen_is_cheap(d->sess)) {
        kvl_snmp_close(d->sess); /* nothing is pending: the poll is over */
        d->sess = NULL;
    }
    if (d->start_ns != 0) {
        double ms = (double)(uv_hrtime() - d->start_ns) / 1e6;
        if (!p->any_poll || ms > p->cycle_max_ms) {
            p->cycle_max_ms = ms;
        }
        p->any_poll = true;
    }
    if (!d->polled_once) {
        d->polled_once = true;
        p->n_done++;
        if (p->once && p->n_done == p->n_devs) {
            /* Called from the loop, never from inside an SNMP callback, so `done` may free
             * the poller. */
            uv_timer_start(&p->done_timer, on_done_timer, 0, 0);
        }
    }
}

/* --- requests: the in-flight cap and its queue ----------------------------------------------- */

static void do_send(device_t *d);

/* Gives free slots to the devices waiting for one, oldest first. */
static void pump(kvl_poller_t *p)
{
    device_t *d;
    while ((d = kvl_inflight_next(&p->inflight)) != NULL) {
        do_send(d);
    }
}

static void on_any_response(kvl_snmp_session_t *s, const kvl_snmp_result_t *res, void *arg)
{
    device_t *d = arg;
    kvl_poller_t *p = d->p;
    KVL_ASSERT(p->inflight.n > 0);
    p->inflight.n--;
    switch (res->status) {
    case KVL_SNMP_TIMEOUT:
        p->n_timeouts++;
        break;
    case KVL_SNMP_RESPONSE:
        p->n_varbinds += res->n_vbs;
        if (res->error_status != KVL_SNMP_ERR_NONE &&
            !(is_v1(d) && res->error_status == KVL_SNMP_ERR_NO_SUCH_NAME)) {
            p->n_errors++; /* (v1 noSuchName is how a v1 walk ends) */
        }
        break;
    default:
        p->n_errors++;
        break;
    }
    pump(p); /* the slot goes to whoever waited first, then this device may ask again */
    d->req_cb(s, res, d);
}

/* Sends the device's request now. A request that cannot be sent completes at once through
 * its callback as KVL_SNMP_SEND_FAILED. */
static void do_send(device_t *d)
{
    kvl_poller_t *p = d->p;
    if (d->start_ns == 0) {
        uint64_t now = uv_now(p->loop);
        double lag = now > d->due ? (double)(now - d->due) : 0.0;
        if (lag > p->lag_max_ms) {
            p->lag_max_ms = lag;
        }
        d->start_ns = uv_hrtime();
    }
    char err[256];
    p->inflight.n++;
    KVL_ASSERT(p->inflight.n <= p->inflight.max); /* the cap: dev_send and pump checked it */
    int rc = kvl_snmp_send(d->sess, d->req_op, d->w->req_oids, d->req_n, d->req_reps,
                           d->req_retries, on_any_response, d, err, sizeof(err));
    if (rc < 0) {
        p->inflight.n--;
        p->n_errors++;
        kvl_snmp_result_t res;
        memset(&res, 0, sizeof(res));
        res.status = KVL_SNMP_SEND_FAILED;
        res.error_text = err;
        d->req_cb(d->sess, &res, d);
        return;
    }
    p->n_requests++;
}

/* Sends the request in d->w->req_oids[0..n) when a slot is free, else queues the device. cb
 * runs once with the result; nothing of d may be touched after this call. */
static void dev_send(device_t *d, kvl_snmp_op_t op, size_t n, uint32_t reps, int retries,
                     kvl_snmp_cb cb)
{
    kvl_poller_t *p = d->p;
    d->req_op = op;
    d->req_n = n;
    d->req_reps = reps;
    d->req_retries = retries;
    d->req_cb = cb;
    if (kvl_inflight_may_send(&p->inflight)) {
        do_send(d);
        return;
    }
    kvl_inflight_enqueue(&p->inflight, &d->wait, d);
}

/* --- adaptive size --------------------------------------------------------------------------- */

/* A request of `failed` repetitions was too big or timed out. */
static void shrink(device_t *d, uint32_t failed)
{
    d->reps_cap = failed > 1 ? failed / 2 : 1;
    d->reps_ceiling = failed > 1 ? failed - 1 : 1;
    d->ceiling_until_ms = kvl_now_ms() + CEILING_MS;
    d->strained = true;
}

/* A poll went through without tooBig or timeouts: one more, up to what is allowed. */
static void grow(device_t *d)
{
    if (d->strained) {
        return;
    }
    uint32_t limit = d->reps_max;
    if (kvl_now_ms() < d->ceiling_until_ms && d->reps_ceiling < limit) {
        limit = d->reps_ceiling;
    }
    if (d->reps_cap < limit) {
        d->reps_cap++;
    }
}

/* --- device group ---------------------------------------------------------------------------- */

/* Reports the device group. n_ifaces < 0: the interface poll failed, the count is unknown. */
static void report_device(device_t *d, bool reachable, int64_t t_ms, long n_ifaces)
{
    kvl_batcher_t *b = d->p->b;
    /* Registered every time (a hash lookup): a label may have changed. The labels describe
     * the device for the collector's inventory; those not known yet are left out. */
    kvl_label_t labels[8];
    size_t nl = 0;
    const struct {
        const char *key, *value;
    } known[] = {
        {"sysName", d->sysname},      {"sysDescr", d->sysdescr}, {"sysLocation", d->syslocation},
        {"address", d->cfg->address}, {"model", d->model},       {"serial", d->serial},
        {"ifIndexes", d->ifindexes}};
    for (size_t i = 0; i < KVL_ARRAY_SIZE(known); i++) {
        if (known[i].value != NULL) {
            labels[nl++] = (kvl_label_t){known[i].key, known[i].value};
        }
    }
    kvl_instance_key_t key = {.device = d->cfg->name,
                              .scope = KVL_SCOPE_DEVICE,
                              .instance = "",
                              .family = &dev_family,
                              .interval_s = d->interval_s,
                              .labels = labels,
                              .n_labels = nl};
    uint32_t id = d->dev_id = kvl_batcher_instance(b, &key);
    if (id == 0) {
        return;
    }
    kvl_batcher_group_begin(b, t_ms);
    kvl_batcher_add(b, id + DEV_REACHABLE, reachable ? 1 : 0);
    kvl_batcher_add(b, id + DEV_DOWN_REASON, reachable ? R_UP : (uint64_t)d->down_reason);
    if (reachable) {
        if (d->have_uptime) {
            kvl_batcher_add(b, id + DEV_UPTIME, d->uptime / 100u);
        }
        kvl_batcher_add_real(b, id + DEV_RESPONSE, d->rtt_ms);
        if (n_ifaces >= 0) {
            kvl_batcher_add(b, id + DEV_IFACES, (uint64_t)n_ifaces);
        } else {
            kvl_batcher_add_unknown(b, id + DEV_IFACES);
        }
    }
    kvl_batcher_group_end(b);
}

/* The device's position in the agent's configuration, counting from 1 (the `index` field of
 * its device_down/device_up events: kaavalDeviceIndex in mibs/KAAVAL-MIB.txt). */
static void device_index(const device_t *d, char *buf, size_t len)
{
    snprintf(buf, len, "%zu", d->index + 1);
}

/* The poll found the device down for `reason` (R_*): logs and events it once per outage
 * (and once more when the reason changes), reports it and ends the poll. */
static void mark_down(device_t *d, int reason, const char *fmt, ...) KVL_PRINTF(3, 4);

static void mark_down(device_t *d, int reason, const char *fmt, ...)
{
    kvl_poller_t *p = d->p;
    char detail[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    char text[512];
    if (reason == R_TIMEOUT) {
        snprintf(text, sizeof(text), "not answering: %s", detail);
    } else {
        snprintf(text, sizeof(text), "down (%s): %s", reason_names[reason], detail);
    }
    int64_t now = kvl_now_ms();
    if (!d->down) {
        d->down = true;
        d->down_reason = reason;
        d->down_since_ms = d->poll_start_ms;
        kvl_downstate_set(p->state, d->cfg->name, reason, d->down_since_ms);
        KVL_LOG_WARN(MOD, d->cfg->name, "%s", text);
        char index[16];
        device_index(d, index, sizeof(index));
        kvl_label_t fields[] = {
            {"address", d->cfg->address}, {"reason", reason_names[reason]}, {"index", index}};
        kvl_event_t ev = {
            .time_ms = now,
            .device = d->cfg->name,
            .kind = "device_down",
            .severity = KVL_SEV_CRITICAL,
            .text = text,
            .fields = fields,
            .n_fields = KVL_ARRAY_SIZE(fields),
        };
        kvl_batcher_event(p->b, &ev);
    } else if (d->down_reason != reason) {
        d->down_reason = reason;
        kvl_downstate_set(p->state, d->cfg->name, reason, d->down_since_ms);
        KVL_LOG_WARN(MOD, d->cfg->name, "still down, now %s", text);
    } else {
        KVL_LOG_DEBUG(MOD, d->cfg->name, "still %s", text);
    }
    d->timeouts_in_row = reason == R_TIMEOUT ? d->timeouts_in_row + 1 : 0;
    if (reason == R_TIMEOUT && !p->once && !d->dead && d->timeouts_in_row >= DEAD_AFTER) {
        d->dead = true;
        d->probe_gap = 2;
        d->skip_ticks = 1;
        KVL_LOG_INFO(MOD, d->cfg->name,
                     "no answer to %u polls in a row: from now on probed with a single GET "
                     "without retries, at growing gaps (up to %ds)",
                     d->timeouts_in_row, DEAD_MAX_GAP_MS / 1000);
    }
    report_device(d, false, now, -1);
    finish_poll(d);
}

static void mark_up(device_t *d)
{
    d->timeouts_in_row = 0;
    if (!d->down) {
        return;
    }
    d->down = false;
    d->down_reason = R_UP;
    kvl_downstate_clear(d->p->state, d->cfg->name);
    char dur[64];
    char text[160];
    format_duration(d->t_sys - d->down_since_ms, dur, sizeof(dur));
    KVL_LOG_INFO(MOD, d->cfg->name, "answering again after %s down", dur);
    snprintf(text, sizeof(text), "answering again after %s down", dur);
    char secs[32];
    snprintf(secs, sizeof(secs), "%" PRId64, (d->t_sys - d->down_since_ms) / 1000);
    char index[16];
    device_index(d, index, sizeof(index));
    kvl_label_t fields[] = {{"address", d->cfg->address}, {"down_s", secs}, {"index", index}};
    kvl_event_t ev = {
        .time_ms = d->t_sys,
        .device = d->cfg->name,
        .kind = "device_up",
        .severity = KVL_SEV_INFO,
        .text = text,
        .fields = fields,
        .n_fields = KVL_ARRAY_SIZE(fields),
    };
    kvl_batcher_event(d->p->b, &ev);
}

int kvl_poller_keep_state(kvl_poller_t *p, const char *path, char *err, size_t errlen)
{
    if (p->state != NULL) {
        snprintf(err, errlen, "the device state is already kept");
        return KVL_EINVAL;
    }
    int rc = kvl_downstate_new(p->loop, path, "device state", &p->state, err, errlen);
    if (rc != 0) {
        return rc;
    }
    const char **names = calloc(p->n_devs ? p->n_devs : 1, sizeof(*names));
    if (names == NULL) {
        kvl_downstate_free(p->state);
        p->state = NULL;
        snprintf(err, errlen, "out of memory loading the device state");
        return KVL_ENOMEM;
    }
    for (size_t i = 0; i < p->n_devs; i++) {
        names[i] = p->devs[i]->cfg->name;
    }
    size_t gone = kvl_downstate_retain(p->state, names, p->n_devs);
    free(names);
    if (gone > 0) {
        KVL_LOG_INFO(MOD, NULL, "%zu devices no longer configured forgotten from %s", gone, path);
    }
    int64_t now = kvl_now_ms();
    for (size_t i = 0; i < p->n_devs; i++) {
        device_t *d = p->devs[i];
        int reason;
        int64_t since;
        if (!kvl_downstate_get(p->state, d->cfg->name, &reason, &since)) {
            continue;
        }
        if (reason <= R_UP || reason > R_OTHER) {
            reason = R_OTHER; /* a reason this agent does not know: kept as an error */
        }
        d->down = true;
        d->down_reason = reason;
        d->down_since_ms = since;
        char dur[64];
        format_duration(now - since, dur, sizeof(dur));
        KVL_LOG_INFO(MOD, d->cfg->name,
                     "down (%s) for %s before this start: no new device_down while it stays "
                     "down",
                     reason_names[reason], dur);
    }
    return 0;
}

/* --- interfaces ------------------------------------------------------------------------------ */

/* Reports one interface of the inventory from this poll's row. */
static void report_iface(device_t *d, row_t *r, iface_t *f)
{
    kvl_batcher_t *b = d->p->b;
    if (f->id == 0) {
        return; /* not registered (out of memory at discovery) */
    }
    uint64_t speed = 0;
    bool have_speed = kvl_ifrow_speed(r, &speed);

    bool disc = d->reboot_pending;
    if (kvl_ifrow_has(r, X_DISC_TIME)) {
        if ((f->have & HAVE_DISC) != 0 && f->disc != (uint32_t)r->val[X_DISC_TIME]) {
            disc = true;
        }
        f->have |= HAVE_DISC;
        f->disc = (uint32_t)r->val[X_DISC_TIME];
    }

    /* The group's time: when the PDU carrying in_octets arrived. */
    int64_t t = r->t_first;
    if (kvl_ifrow_has(r, X_HC_IN_OCT)) {
        t = r->t_in64;
    } else if (kvl_ifrow_has(r, C_IN_OCT)) {
        t = r->t_in32;
    }

    kvl_batcher_group_begin(b, t);
    uint16_t have = 0, is64 = 0;
    for (size_t m = 0; m < N_CTR; m++) {
        const counter_def_t *cd = &kvl_ifwalk_counters[m];
        int col = kvl_ifrow_counter_col(r, m);
        if (col < 0) {
            continue; /* not read this time: its next reading starts afresh */
        }
        unsigned bits = (r->is64 & (1u << col)) != 0 ? 64 : 32;
        double max_rate = 0;
        if (cd->octets && have_speed && speed > 0) {
            max_rate = (bits == 32 ? 1.2 : 10.0) * (double)speed / 8.0;
        }
        uint16_t bit = (uint16_t)(1u << m);
        bool had = (f->have & bit) != 0;
        unsigned prev_bits = (f->is64 & bit) != 0 ? 64 : 32;
        kvl_counter_t c = {.have = had,
                           .raw = prev_bits == 64 ? f->ext[m] : (f->ext[m] & 0xffffffffu),
                           .ext = f->ext[m],
                           .t_ms = d->t_if + f->dt_ms};
        bool d_ctr = disc || (had && prev_bits != bits);
        uint64_t out = 0;
        if (kvl_counter_update(&c, r->val[col], bits, t, max_rate, d_ctr, &out) ==
            KVL_COUNTER_KNOWN) {
            kvl_batcher_add(b, f->id + (uint32_t)m, out);
        } else {
            kvl_batcher_add_unknown(b, f->id + (uint32_t)m);
        }
        f->ext[m] = c.ext;
        have |= bit;
        if (bits == 64) {
            is64 |= bit;
        }
    }
    f->have = (uint16_t)(have | (f->have & HAVE_DISC));
    f->is64 = is64;
    int64_t dt = t - d->t_sys; /* within a poll: milliseconds to seconds */
    f->dt_ms = dt > INT32_MAX ? INT32_MAX : (dt < INT32_MIN ? INT32_MIN : (int32_t)dt);
    if (kvl_ifrow_has(r, C_OPER)) {
        kvl_batcher_add(b, f->id + IF_OPER, r->val[C_OPER]);
    }
    if (kvl_ifrow_has(r, C_ADMIN)) {
        kvl_batcher_add(b, f->id + IF_ADMIN, r->val[C_ADMIN]);
    }
    if (have_speed) {
        kvl_batcher_add(b, f->id + IF_SPEED, speed);
    }
    kvl_batcher_group_end(b);
}

/* --- inventory ------------------------------------------------------------------------------- */

static void free_inventory(device_t *d)
{
    free(d->inv);
    d->inv = NULL;
    d->n_inv = 0;
}

/* Makes the inventory from a discovery's named rows (sorted by name): the included ones,
 * each keeping the state of the interface of that name from the last inventory, and
 * registered with its labels. Returns false when out of memory. */
static bool build_inventory(device_t *d, named_row_t *nr, size_t n)
{
    size_t n_in = 0;
    for (size_t i = 0; i < n; i++) {
        nr[i].included = kvl_ifwalk_included(&d->cfg->ifs, nr[i].r, nr[i].base);
        n_in += nr[i].included;
    }
    iface_t *inv = calloc(n_in > 0 ? n_in : 1, sizeof(*inv));
    if (inv == NULL) {
        return false;
    }
    size_t k = 0, old = 0;
    d->inv_unnamed = 0;
    for (size_t i = 0; i < n; i++) {
        if (!nr[i].included) {
            continue;
        }
        row_t *r = nr[i].r;
        const char *name = kvl_batcher_intern(d->p->b, nr[i].name);
        if (name == NULL) {
            free(inv);
            return false;
        }
        iface_t *f = &inv[k++];
        /* Both lists are in name order: a merge finds the state kept under this name. */
        const char *old_name = NULL;
        while (old < d->n_inv &&
               ((old_name = kvl_batcher_instance_of(d->p->b, d->inv[old].id)) == NULL ||
                strcmp(old_name, name) < 0)) {
            old++;
        }
        if (old < d->n_inv && old_name == name) {
            *f = d->inv[old++];
        }
        f->ifindex = r->ifindex;
        f->cols = kvl_ifrow_value_cols(r);
        char idx[16], type[24] = "";
        snprintf(idx, sizeof(idx), "%" PRIu32, r->ifindex);
        if (kvl_ifrow_has(r, C_TYPE)) {
            snprintf(type, sizeof(type), "%" PRIu64, r->val[C_TYPE]);
        }
        const char *ifname = kvl_ifrow_str(r, X_NAME), *descr = kvl_ifrow_str(r, C_DESCR),
                   *alias = kvl_ifrow_str(r, X_ALIAS), *mac = kvl_ifrow_str(r, C_PHYS);
        char speed[24] = "";
        uint64_t bps = 0;
        if (kvl_ifrow_speed(r, &bps)) {
            snprintf(speed, sizeof(speed), "%" PRIu64, bps);
        }
        kvl_label_t labels[] = {
            {"ifIndex", idx},
            {"ifName", ifname != NULL ? ifname : ""},
            {"ifDescr", descr != NULL ? descr : ""},
            {"ifAlias", alias != NULL ? alias : ""},
            {"ifType", type},
            {"ifSpeed", speed},
            {"ifPhysAddress", mac != NULL ? mac : ""},
        };
        kvl_instance_key_t key = {.device = d->cfg->name,
                                  .scope = KVL_SCOPE_INTERFACE,
                                  .instance = name,
                                  .family = &if_family,
                                  .interval_s = d->interval_s,
                                  .labels = labels,
                                  .n_labels = KVL_ARRAY_SIZE(labels)};
        f->id = kvl_batcher_instance(d->p->b, &key);
        if (f->id == 0) {
            /* Refused (a name the collector could not archive: the registry logged it once)
             * or out of memory: not reported, so not asked for either. */
            k--;
            d->inv_unnamed++;
        }
    }
    free(d->inv);
    d->inv = inv;
    d->n_inv = k;
    return true;
}

/* --- metric groups (mibgroups.h): after the interface part, same session and queue ----------- */

static void send_group(device_t *d);

static void on_group_response(kvl_snmp_session_t *s, const kvl_snmp_result_t *res, void *arg)
{
    device_t *d = arg;
    KVL_UNUSED(s);
    kvl_mg_response(d->mg, res);
    send_group(d);
}

static void send_group(device_t *d)
{
    kvl_snmp_op_t op = KVL_SNMP_GET;
    uint32_t reps = 0;
    size_t n = kvl_mg_next(d->mg, d->w->req_oids, MAX_VBS_PER_RESPONSE, d->reps_cap, &op, &reps);
    if (n == 0) {
        finish_poll(d);
        return;
    }
    dev_send(d, op, n, reps, -1, on_group_response);
}

/* The interface part of the poll is over (the device answered the system GET): the device's
 * metric groups, if any, then the end of the poll. */
static void interfaces_done(device_t *d)
{
    bool skip = d->groups_skip;
    d->groups_skip = false;
    if (d->mg == NULL || skip || d->w == NULL) {
        finish_poll(d);
        return;
    }
    kvl_mg_begin(d->mg, is_v1(d), d->state == ST_WALK, d->have_uptime, d->uptime);
    d->state = ST_GROUPS;
    send_group(d);
}

/* --- ENTITY-MIB at discovery: model and serial of the first chassis entry -------------------- */

/* entPhysicalClass, entPhysicalSerialNum and entPhysicalModelName (numerically: no MIB). */
static const uint32_t ent_class[] = {1, 3, 6, 1, 2, 1, 47, 1, 1, 1, 1, 5};
#define ENT_COL 11          /* where the column number is in those OIDs */
#define ENT_SERIAL 11       /* entPhysicalSerialNum */
#define ENT_MODEL 13        /* entPhysicalModelName */
#define ENT_CHASSIS 3       /* PhysicalClass chassis(3) */
#define ENT_MAX_REQUESTS 16 /* entries looked at: chassis entries come first in practice */

static void start_nbr(device_t *d);

static void nbr_done(device_t *d, bool complete);

static void entity_done(device_t *d)
{
    if (d->cfg->neighbours) {
        start_nbr(d); /* then the device's report and the rest of the poll */
    } else {
        nbr_done(d, false);
    }
}

static void on_entity_class(kvl_snmp_session_t *s, const kvl_snmp_result_t *res, void *arg);

/* Asks for the entPhysicalClass value after the OID in req_oids[0]: GETNEXT, one varbind, so
 * that the look-up never meets a tooBig nor moves the walk's adaptive size. */
static void send_entity_next(device_t *d)
{
    dev_send(d, KVL_SNMP_GETNEXT, 1, 0, -1, on_entity_class);
}

/* Looks for the first chassis entry among the first ENT_MAX_REQUESTS entries; a device without
 * ENTITY-MIB (the walk leaves the column at once) simply has no model and serial. */
static void start_entity(device_t *d)
{
    d->ent_requests = 0;
    kvl_snmp_oid_set(&d->w->req_oids[0], ent_class, KVL_ARRAY_SIZE(ent_class));
    send_entity_next(d);
}

/* Keeps s (an OCTET STRING, cleaned) in *slot; an empty one is none. */
static void keep_text(char **slot, const kvl_snmp_vb_t *vb)
{
    char *t = vb->type == KVL_SNMP_T_OCTETS ? kvl_snmp_text_clean(vb->str, vb->str_len) : NULL;
    if (t != NULL && t[0] == '\0') {
        free(t);
        t = NULL;
    }
    free(*slot);
    *slot = t;
}

static void on_entity_details(kvl_snmp_session_t *s, const kvl_snmp_result_t *res, void *arg)
{
    device_t *d = arg;
    KVL_UNUSED(s);
    if (res->status == KVL_SNMP_RESPONSE && res->error_status == KVL_SNMP_ERR_NONE) {
        for (size_t i = 0; i < res->n_vbs; i++) {
            const kvl_snmp_vb_t *vb = &res->vbs[i];
            if (vb->oid.len == KVL_ARRAY_SIZE(ent_class) + 1 && vb->oid.sub[ENT_COL] == ENT_MODEL) {
                keep_text(&d->model, vb);
            } else if (vb->oid.len == KVL_ARRAY_SIZE(ent_class) + 1 &&
                       vb->oid.sub[ENT_COL] == ENT_SERIAL) {
                keep_text(&d->serial, vb);
            }
        }
    }
    entity_done(d);
}

static void on_entity_class(kvl_snmp_session_t *s, const kvl_snmp_result_t *res, void *arg)
{
    device_t *d = arg;
    KVL_UNUSED(s);
    const size_t clen = KVL_ARRAY_SIZE(ent_class);
    if (res->status != KVL_SNMP_RESPONSE || res->error_status != KVL_SNMP_ERR_NONE ||
        res->n_vbs == 0) {
        entity_done(d); /* no answer, or (v1) noSuchName: no ENTITY-MIB */
        return;
    }
    kvl_snmp_oid_t *cur = &d->w->req_oids[0];
    for (size_t i = 0; i < res->n_vbs; i++) {
        const kvl_snmp_vb_t *vb = &res->vbs[i];
        if (vb->oid.len != clen + 1 ||
            memcmp(vb->oid.sub, ent_class, clen * sizeof(uint32_t)) != 0 ||
            (cur->len == clen + 1 && vb->oid.sub[clen] <= cur->sub[clen])) {
            entity_done(d); /* past the column (or not increasing): no chassis */
            return;
        }
        if (vb->type == KVL_SNMP_T_INTEGER && vb->integer == ENT_CHASSIS) {
            uint32_t idx = vb->oid.sub[clen];
            uint32_t sub[KVL_ARRAY_SIZE(ent_class) + 1];
            memcpy(sub, ent_class, sizeof(ent_class));
            sub[clen] = idx;
            sub[ENT_COL] = ENT_MODEL;
            kvl_snmp_oid_set(&d->w->req_oids[0], sub, clen + 1);
            sub[ENT_COL] = ENT_SERIAL;
            kvl_snmp_oid_set(&d->w->req_oids[1], sub, clen + 1);
            dev_send(d, KVL_SNMP_GET, 2, 0, -1, on_entity_details);
            return;
        }
        *cur = vb->oid;
    }
    if (++d->ent_requests >= ENT_MAX_REQUESTS) {
        entity_done(d);
        return;
    }
    send_entity_next(d);
}

/* --- neighbours at discovery: LLDP-MIB and CISCO-CDP-MIB (nbrwalk.h) ------------------------- */

#define NBR_MAX_REQUESTS 2000 /* per discovery, over the four tables */

static void on_nbr_response(kvl_snmp_session_t *s, const kvl_snmp_result_t *res, void *arg);

/* Asks for what follows the cursor (req_oids[0]) in the table being walked: one varbind, so
 * the look-up never moves the walk's adaptive size (its own size only falls on tooBig). A
 * table's first request is a GETNEXT, which can meet no tooBig: a device without the table
 * (most have one of LLDP and CDP at most) costs one small request per table and discovery;
 * GETBULK only once the table has rows. */
static void send_nbr(device_t *d)
{
    if (is_v1(d) || d->nbr_first) {
        dev_send(d, KVL_SNMP_GETNEXT, 1, 0, -1, on_nbr_response);
    } else {
        dev_send(d, KVL_SNMP_GETBULK, 1, d->nbr_reps, -1, on_nbr_response);
    }
}

static void start_nbr(device_t *d)
{
    kvl_nbrs_clear(&d->nbrs);
    d->nbr_table = KVL_NBR_T_LOCPORT;
    d->nbr_requests = 0;
    d->nbr_reps = d->reps_cap < MAX_VBS_PER_RESPONSE ? d->reps_cap : MAX_VBS_PER_RESPONSE;
    d->nbr_reps = d->nbr_reps > 0 ? d->nbr_reps : 1;
    d->nbr_first = true;
    kvl_nbr_table_oid(&d->w->req_oids[0], KVL_NBR_T_LOCPORT);
    send_nbr(d);
}

/* The local interface's name: the interface archive's (the discovery's naming of its rows,
 * whether or not the filters report it), "" when the neighbour has none. */
static const char *nbr_local_name(device_t *d, const kvl_nbr_t *nb, named_row_t *nr, char *idx,
                                  size_t idxlen)
{
    uint32_t ifindex;
    idx[0] = '\0';
    if (nr == NULL || !kvl_nbr_local_ifindex(&d->nbrs, nb, &d->rows, &ifindex)) {
        return "";
    }
    snprintf(idx, idxlen, "%" PRIu32, ifindex);
    for (size_t i = 0; i < d->rows.n; i++) {
        if (nr[i].r->ifindex == ifindex) {
            return nr[i].name;
        }
    }
    return "";
}

/* Reports every neighbour of a complete walk (its definition, a group with present = 1), then
 * the list of their instances (instance "", label "neighbours", count), so the collector can
 * tell one that disappeared. Nothing when out of memory. */
static void report_nbrs(device_t *d)
{
    kvl_nbrs_t *ns = &d->nbrs;
    named_row_t *nr = d->rows.n > 0 ? kvl_ifwalk_name_rows(&d->rows) : NULL;
    char *list = malloc(ns->n * 32 + 1);
    if ((d->rows.n > 0 && nr == NULL) || list == NULL) {
        KVL_LOG_ERROR(MOD, d->cfg->name, "out of memory reporting %zu neighbours", ns->n);
        free(list);
        if (nr != NULL) {
            kvl_ifwalk_free_named(nr, d->rows.n);
        }
        return;
    }
    size_t len = 0, n_lldp = 0, n_cdp = 0;
    list[0] = '\0';
    for (size_t i = 0; i < ns->n; i++) {
        const kvl_nbr_t *nb = &ns->v[i];
        char inst[40], port[16] = "", ifidx[16], cst[16] = "", pst[16] = "";
        snprintf(inst, sizeof(inst), "%s.%" PRIu32 ".%" PRIu32, kvl_nbr_proto_name(nb->proto),
                 nb->local_port, nb->rem_index);
        if (nb->local_port != 0) {
            snprintf(port, sizeof(port), "%" PRIu32, nb->local_port);
        }
        if (nb->chassis_subtype >= 0) {
            snprintf(cst, sizeof(cst), "%d", nb->chassis_subtype);
        }
        if (nb->port_subtype >= 0) {
            snprintf(pst, sizeof(pst), "%d", nb->port_subtype);
        }
        const char *local = nbr_local_name(d, nb, nr, ifidx, sizeof(ifidx));
#define S(x) ((x) != NULL ? (x) : "")
        kvl_label_t labels[] = {
            {"protocol", kvl_nbr_proto_name(nb->proto)},
            {"local_port", port},
            {"local_ifindex", ifidx},
            {"local_if", local},
            {"chassis_id", S(nb->chassis_id)},
            {"chassis_id_subtype", cst},
            {"sys_name", S(nb->sys_name)},
            {"port_id", S(nb->port_id)},
            {"port_id_subtype", pst},
            {"port_desc", S(nb->port_desc)},
            {"mgmt_addr", S(nb->mgmt_addr)},
            {"sys_desc", S(nb->sys_desc)},
        };
#undef S
        kvl_instance_key_t key = {.device = d->cfg->name,
                                  .scope = KVL_SCOPE_NEIGHBOUR,
                                  .instance = inst,
                                  .family = &nbr_family,
                                  .interval_s = d->interval_s,
                                  .labels = labels,
                                  .n_labels = KVL_ARRAY_SIZE(labels)};
        uint32_t id = kvl_batcher_instance(d->p->b, &key);
        if (id == 0) {
            continue;
        }
        kvl_batcher_group_begin(d->p->b, d->t_sys);
        kvl_batcher_add(d->p->b, id, 1);
        kvl_batcher_group_end(d->p->b);
        len += (size_t)snprintf(list + len, 33, len > 0 ? " %s" : "%s", inst);
        n_lldp += nb->proto == KVL_NBR_LLDP;
        n_cdp += nb->proto == KVL_NBR_CDP;
    }
    if (nr != NULL) {
        kvl_ifwalk_free_named(nr, d->rows.n);
    }
    if (ns->dropped > 0) {
        KVL_LOG_WARN(MOD, d->cfg->name,
                     "%zu neighbour table rows beyond the bounds (%d neighbours, %d local "
                     "ports) left out",
                     ns->dropped, KVL_NBR_MAX, KVL_NBR_PORTS_MAX);
    }
    if (d->neighbours != NULL ? strcmp(d->neighbours, list) != 0 : ns->n > 0) {
        KVL_LOG_INFO(MOD, d->cfg->name, "%zu neighbours (%zu LLDP, %zu CDP)", n_lldp + n_cdp,
                     n_lldp, n_cdp);
    }
    free(d->neighbours);
    d->neighbours = list;
    char lst[16] = "";
    if (ns->loc_chassis_subtype >= 0) {
        snprintf(lst, sizeof(lst), "%d", ns->loc_chassis_subtype);
    }
    kvl_label_t ll[] = {
        {"neighbours", list},
        {"lldp_chassis_id", ns->loc_chassis_id != NULL ? ns->loc_chassis_id : ""},
        {"lldp_chassis_id_subtype", lst},
        {"lldp_sys_name", ns->loc_sys_name != NULL ? ns->loc_sys_name : ""},
    };
    kvl_instance_key_t key = {.device = d->cfg->name,
                              .scope = KVL_SCOPE_NEIGHBOUR,
                              .instance = "",
                              .family = &nbr_list_family,
                              .interval_s = d->interval_s,
                              .labels = ll,
                              .n_labels = KVL_ARRAY_SIZE(ll)};
    uint32_t id = kvl_batcher_instance(d->p->b, &key);
    if (id != 0) {
        kvl_batcher_group_begin(d->p->b, d->t_sys);
        kvl_batcher_add(d->p->b, id, (uint64_t)(n_lldp + n_cdp));
        kvl_batcher_group_end(d->p->b);
    }
}

/* The neighbour walk is over (complete: every table to its end): the device's report and the
 * rest of the poll. An incomplete walk reports nothing, so the collector keeps what it knew. */
static void nbr_done(device_t *d, bool complete)
{
    if (complete) {
        report_nbrs(d);
    }
    kvl_nbrs_free(&d->nbrs);
    report_device(d, true, d->t_sys, (long)d->n_inv);
    interfaces_done(d);
}

static void on_nbr_local(kvl_snmp_session_t *s, const kvl_snmp_result_t *res, void *arg)
{
    device_t *d = arg;
    KVL_UNUSED(s);
    if (res->status == KVL_SNMP_RESPONSE && res->error_status == KVL_SNMP_ERR_NONE) {
        for (size_t i = 0; i < res->n_vbs; i++) {
            if (kvl_nbrs_take_local(&d->nbrs, &res->vbs[i]) != 0) {
                KVL_LOG_ERROR(MOD, d->cfg->name, "out of memory reading neighbours");
                nbr_done(d, false);
                return;
            }
        }
    } /* else (v1 noSuchName, no answer): the device gives no LLDP identity of its own */
    nbr_done(d, true);
}

static void nbr_next_table(device_t *d)
{
    if (++d->nbr_table >= KVL_NBR_TABLES) {
        /* the tables are complete; then the device's own LLDP identity, in one GET */
        kvl_nbr_local_oids(d->w->req_oids);
        dev_send(d, KVL_SNMP_GET, KVL_NBR_LOCAL_N, 0, -1, on_nbr_local);
        return;
    }
    d->nbr_first = true;
    kvl_nbr_table_oid(&d->w->req_oids[0], (kvl_nbr_table_t)d->nbr_table);
    send_nbr(d);
}

static void on_nbr_response(kvl_snmp_session_t *s, const kvl_snmp_result_t *res, void *arg)
{
    device_t *d = arg;
    KVL_UNUSED(s);
    if (res->status != KVL_SNMP_RESPONSE) {
        KVL_LOG_WARN(MOD, d->cfg->name, "neighbour walk failed (%s): neighbours not updated",
                     res->status == KVL_SNMP_TIMEOUT ? "timeout" : "no answer");
        nbr_done(d, false);
        return;
    }
    if (res->error_status != KVL_SNMP_ERR_NONE) {
        if (res->error_status == KVL_SNMP_ERR_TOO_BIG && !is_v1(d) && d->nbr_reps > 1) {
            d->nbr_reps /= 2;
            send_nbr(d);
            return;
        }
        /* (v1) noSuchName, or an error for this table: the device has none of it */
        nbr_next_table(d);
        return;
    }
    kvl_snmp_oid_t root;
    kvl_nbr_table_oid(&root, (kvl_nbr_table_t)d->nbr_table);
    kvl_snmp_oid_t *cur = &d->w->req_oids[0];
    for (size_t i = 0; i < res->n_vbs; i++) {
        const kvl_snmp_vb_t *vb = &res->vbs[i];
        if (vb->type == KVL_SNMP_T_END_OF_MIB_VIEW || vb->type == KVL_SNMP_T_NO_SUCH_OBJECT ||
            vb->type == KVL_SNMP_T_NO_SUCH_INSTANCE || !kvl_snmp_oid_has_prefix(&vb->oid, &root) ||
            kvl_snmp_oid_cmp(&vb->oid, cur) <= 0) {
            nbr_next_table(d); /* the end of this table */
            return;
        }
        if (kvl_nbrs_take(&d->nbrs, (kvl_nbr_table_t)d->nbr_table, vb) != 0) {
            KVL_LOG_ERROR(MOD, d->cfg->name, "out of memory reading neighbours");
            nbr_done(d, false);
            return;
        }
        *cur = vb->oid;
        d->nbr_first = false;
    }
    if (res->n_vbs == 0) {
        nbr_next_table(d);
        return;
    }
    if (++d->nbr_requests >= NBR_MAX_REQUESTS) {
        KVL_LOG_WARN(MOD, d->cfg->name,
                     "neighbour walk stopped after %d requests: neighbours not updated",
                     NBR_MAX_REQUESTS);
        nbr_done(d, false);
        return;
    }
    send_nbr(d);
}

/* --- the walk and the GETs ------------------------------------------------------------------- */

/* The interface part of a poll failed: the device is up, its interfaces unknown this time. */
static void poll_failed(device_t *d, const char *fmt, ...) KVL_PRINTF(2, 3);

static void poll_failed(device_t *d, const char *fmt, ...)
{
    char reason[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    const char *what = d->state == ST_GET ? "interface poll" : "interface walk";
    if (!d->poll_failing) {
        d->poll_failing = true;
        KVL_LOG_WARN(MOD, d->cfg->name, "%s failed: %s; interfaces not reported until it works",
                     what, reason);
    } else {
        KVL_LOG_DEBUG(MOD, d->cfg->name, "%s failed again: %s", what, reason);
    }
    report_device(d, true, d->t_sys, -1);
    interfaces_done(d);
}

static void poll_works(device_t *d)
{
    if (d->poll_failing) {
        d->poll_failing = false;
        KVL_LOG_INFO(MOD, d->cfg->name, "interface polling works again");
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The device's "ifIndexes" label: the ifIndex of every interface the discovery reported,
 * sorted, space-separated (the collector's inventory retires the others). Left as it was
 * when out of memory. */
static void keep_ifindexes(device_t *d)
{
    uint32_t *idx = malloc((d->n_inv > 0 ? d->n_inv : 1) * sizeof(*idx));
    char *s = malloc(d->n_inv * 11 + 1);
    if (idx == NULL || s == NULL) {
        free(idx);
        free(s);
        return;
    }
    for (size_t i = 0; i < d->n_inv; i++) {
        idx[i] = d->inv[i].ifindex;
    }
    qsort(idx, d->n_inv, sizeof(*idx), cmp_u32);
    size_t len = 0;
    s[0] = '\0';
    for (size_t i = 0; i < d->n_inv; i++) {
        len += (size_t)snprintf(s + len, 12, i > 0 ? " %" PRIu32 : "%" PRIu32, idx[i]);
    }
    free(idx);
    free(d->ifindexes);
    d->ifindexes = s;
}

/* The walk is complete: name, filter, keep the inventory, report. */
static void walk_done(device_t *d)
{
    named_row_t *nr = kvl_ifwalk_name_rows(&d->rows);
    if (nr == NULL || !build_inventory(d, nr, d->rows.n)) {
        if (nr != NULL) {
            kvl_ifwalk_free_named(nr, d->rows.n);
        }
        KVL_LOG_ERROR(MOD, d->cfg->name, "out of memory naming %zu interfaces", d->rows.n);
        report_device(d, true, d->t_sys, -1);
        interfaces_done(d);
        return;
    }
    kvl_ifwalk_free_named(nr, d->rows.n);
    keep_ifindexes(d);
    poll_works(d);
    bool changed = !d->discovered || d->inv_seen != d->rows.n;
    d->discovered = true;
    d->rediscover_now = false;
    d->next_discovery_ms = kvl_now_ms() + d->cfg->rediscover_ms;
    d->inv_have_ifnumber = d->have_ifnumber;
    d->inv_ifnumber = d->ifnumber;
    d->inv_have_lastchange = d->have_lastchange;
    d->inv_lastchange = d->lastchange;
    d->inv_seen = d->rows.n;
    if (changed && d->inv_unnamed > 0) {
        KVL_LOG_INFO(MOD, d->cfg->name,
                     "%zu interfaces, %zu reported (%zu left out by filters, %zu not reported: "
                     "name refused)",
                     d->rows.n, d->n_inv, d->rows.n - d->n_inv - d->inv_unnamed, d->inv_unnamed);
    } else if (changed) {
        KVL_LOG_INFO(MOD, d->cfg->name, "%zu interfaces, %zu reported (%zu left out by filters)",
                     d->rows.n, d->n_inv, d->rows.n - d->n_inv);
    }
    for (size_t i = 0; i < d->n_inv; i++) {
        report_iface(d, kvl_ifrows_find(&d->rows, d->inv[i].ifindex), &d->inv[i]);
    }
    d->t_if = d->t_sys;
    d->reboot_pending = false;
    grow(d);
    KVL_LOG_DEBUG(MOD, d->cfg->name,
                  "discovery done: %zu interfaces (%zu reported) in %u requests, "
                  "max-repetitions now %u",
                  d->rows.n, d->n_inv, d->requests, d->reps_cap);
    start_entity(d); /* then the device's report and the rest of the poll */
}

/* Ends the poll for a result that carries no data (timeout, send failure, Report).
 * Returns true when it did. */
static bool poll_failed_on(device_t *d, const kvl_snmp_result_t *res)
{
    d->groups_skip = res->status != KVL_SNMP_RESPONSE; /* no answer: no groups either */
    switch (res->status) {
    case KVL_SNMP_TIMEOUT:
        poll_failed(d, "timeout after %d tries to %s", res->tries, kvl_snmp_peer(d->sess));
        return true;
    case KVL_SNMP_SEND_FAILED:
        poll_failed(d, "send failed: %s", res->error_text);
        return true;
    case KVL_SNMP_REPORT:
        poll_failed(d, "refused: %s", res->error_text);
        return true;
    default:
        return false;
    }
}

static void on_walk_response(kvl_snmp_session_t *s, const kvl_snmp_result_t *res, void *arg)
{
    device_t *d = arg;
    KVL_UNUSED(s);
    if (res->status == KVL_SNMP_TIMEOUT) {
        if (!is_v1(d) && d->reps > 1 && d->mid_retries < MID_POLL_RETRIES) {
            d->mid_retries++;
            shrink(d, d->reps);
            KVL_LOG_DEBUG(MOD, d->cfg->name, "timeout in the walk: max-repetitions lowered to %u",
                          d->reps_cap);
            send_walk(d);
            return;
        }
    }
    if (poll_failed_on(d, res)) {
        return;
    }
    size_t n = d->w->walk.n_req_cols;
    if (res->error_status != KVL_SNMP_ERR_NONE) {
        if (is_v1(d) && res->error_status == KVL_SNMP_ERR_NO_SUCH_NAME && res->error_index >= 1 &&
            (size_t)res->error_index <= n) {
            /* v1: nothing more in that column (or a Counter64 a v1 agent cannot send). */
            kvl_ifwalk_end_column(&d->w->walk, (size_t)res->error_index - 1);
            send_walk(d);
            return;
        }
        if (!is_v1(d) && res->error_status == KVL_SNMP_ERR_TOO_BIG && d->reps > 1) {
            shrink(d, d->reps);
            KVL_LOG_DEBUG(MOD, d->cfg->name, "tooBig: max-repetitions lowered to %u", d->reps_cap);
            send_walk(d);
            return;
        }
        poll_failed(d, "error-status %d at index %d", res->error_status, res->error_index);
        return;
    }
    if (res->n_vbs == 0) {
        poll_failed(d, "empty response");
        return;
    }
    switch (kvl_ifwalk_take(&d->w->walk, &d->rows, res->vbs, res->n_vbs, kvl_now_ms(), d->cfg->name,
                            &d->nonincr_logged)) {
    case KVL_IFWALK_NOMEM:
        poll_failed(d, "out of memory");
        return;
    case KVL_IFWALK_STALLED:
        poll_failed(d, "response without progress");
        return;
    case KVL_IFWALK_OK:
        break;
    }
    send_walk(d);
}

/* Asks for the next rows of every column still active, or finishes the walk. */
static void send_walk(device_t *d)
{
    size_t n = kvl_ifwalk_next(&d->w->walk, d->w->req_oids);
    if (n == 0) {
        walk_done(d);
        return;
    }
    if (++d->requests > MAX_REQUESTS_PER_WALK) {
        poll_failed(d, "more than %d requests", MAX_REQUESTS_PER_WALK);
        return;
    }
    uint32_t reps = (uint32_t)(MAX_VBS_PER_RESPONSE / n);
    if (reps > d->reps_cap) {
        reps = d->reps_cap;
    }
    if (reps < 1) {
        reps = 1;
    }
    d->reps = reps;
    dev_send(d, is_v1(d) ? KVL_SNMP_GETNEXT : KVL_SNMP_GETBULK, n, reps, -1, on_walk_response);
}

static void start_walk(device_t *d)
{
    d->state = ST_WALK;
    d->requests = 0;
    kvl_ifrows_clear(&d->rows);
    kvl_ifwalk_start(&d->w->walk);
    send_walk(d);
}

/* Turns the GET poll into a discovery, now. */
static void rediscover_now(device_t *d, const char *why)
{
    KVL_LOG_INFO(MOD, d->cfg->name, "%s: discovering the interfaces again", why);
    d->rediscover_now = true;
    start_walk(d);
}

/* Every interface of the inventory has been asked: report them. */
static void get_done(device_t *d)
{
    poll_works(d);
    for (size_t i = 0; i < d->n_inv; i++) {
        row_t *r = kvl_ifrows_find(&d->rows, d->inv[i].ifindex);
        if (r == NULL) {
            poll_failed(d, "out of memory");
            return;
        }
        if (d->cfg->ifs.skip_admin_down && kvl_ifrow_has(r, C_ADMIN) && r->val[C_ADMIN] == 2) {
            d->rediscover_now = true; /* it is left out from the next poll on */
        }
    }
    for (size_t i = 0; i < d->n_inv; i++) {
        report_iface(d, kvl_ifrows_find(&d->rows, d->inv[i].ifindex), &d->inv[i]);
    }
    d->t_if = d->t_sys;
    d->reboot_pending = false;
    grow(d);
    KVL_LOG_DEBUG(MOD, d->cfg->name, "poll done: %zu interfaces in %u requests", d->n_inv,
                  d->requests);
    report_device(d, true, d->t_sys, (long)d->n_inv);
    interfaces_done(d);
}

/* Varbinds per GET: max_varbinds at the configured size, less while the adaptive size is
 * lower. */
static size_t get_limit(const device_t *d)
{
    size_t limit = (size_t)d->cfg->max_varbinds * d->reps_cap / (d->reps_max ? d->reps_max : 1);
    if (limit > d->w->n_req) {
        limit = d->w->n_req;
    }
    return limit > 0 ? limit : 1;
}

static void on_get_response(kvl_snmp_session_t *s, const kvl_snmp_result_t *res, void *arg)
{
    device_t *d = arg;
    KVL_UNUSED(s);
    bool timeout = res->status == KVL_SNMP_TIMEOUT;
    bool too_big = res->status == KVL_SNMP_RESPONSE && res->error_status == KVL_SNMP_ERR_TOO_BIG;
    if ((timeout && d->mid_retries < MID_POLL_RETRIES) || (too_big && d->get_count > 1)) {
        if (timeout) {
            d->mid_retries++;
        }
        shrink(d, d->reps_cap);
        KVL_LOG_DEBUG(MOD, d->cfg->name, "%s: GET batch size lowered to %zu varbinds",
                      timeout ? "timeout" : "tooBig", get_limit(d));
        send_get(d); /* the same interfaces again, in smaller batches */
        return;
    }
    if (poll_failed_on(d, res)) {
        return;
    }
    if (res->error_status == KVL_SNMP_ERR_NO_SUCH_NAME) {
        rediscover_now(d, "an interface is gone (noSuchName)");
        return;
    }
    if (res->error_status != KVL_SNMP_ERR_NONE) {
        poll_failed(d, "error-status %d at index %d", res->error_status, res->error_index);
        return;
    }
    if (res->n_vbs != d->get_n) {
        poll_failed(d, "%zu varbinds in the answer to a GET of %zu", res->n_vbs, d->get_n);
        return;
    }
    int64_t t = kvl_now_ms();
    for (size_t k = 0; k < res->n_vbs; k++) {
        const kvl_snmp_vb_t *vb = &res->vbs[k];
        const get_slot_t *slot = &d->w->get_map[k];
        if (vb->type == KVL_SNMP_T_NO_SUCH_OBJECT || vb->type == KVL_SNMP_T_NO_SUCH_INSTANCE ||
            vb->type == KVL_SNMP_T_END_OF_MIB_VIEW) {
            char why[200];
            snprintf(why, sizeof(why), "interface %s (ifIndex %" PRIu32 ") is gone",
                     kvl_batcher_instance_of(d->p->b, d->inv[slot->inv].id),
                     d->inv[slot->inv].ifindex);
            rediscover_now(d, why);
            return;
        }
        if (!kvl_ifrows_store(&d->rows, slot->col, d->inv[slot->inv].ifindex, vb, t)) {
            poll_failed(d, "out of memory");
            return;
        }
    }
    d->get_first += d->get_count;
    send_get(d);
}

/* Asks for the next batch of interfaces from d->get_first on, or finishes. */
static void send_get(device_t *d)
{
    size_t limit = get_limit(d);
    size_t n = 0;
    size_t i = d->get_first;
    while (i < d->n_inv) {
        uint32_t cols = d->inv[i].cols;
        size_t k = 0;
        for (int c = 0; c < N_COLS; c++) {
            k += (cols >> c) & 1u;
        }
        if (n > 0 && n + k > limit) {
            break;
        }
        for (int c = 0; c < N_COLS; c++) {
            if ((cols & (1u << c)) == 0) {
                continue;
            }
            kvl_ifwalk_instance_oid(&d->w->req_oids[n], c, d->inv[i].ifindex);
            d->w->get_map[n].inv = (uint32_t)i;
            d->w->get_map[n].col = (uint8_t)c;
            n++;
        }
        i++;
    }
    d->get_count = i - d->get_first;
    d->get_n = n;
    if (n == 0) {
        get_done(d); /* nothing (more) to ask */
        return;
    }
    if (++d->requests > MAX_REQUESTS_PER_WALK) {
        poll_failed(d, "more than %d requests", MAX_REQUESTS_PER_WALK);
        return;
    }
    dev_send(d, KVL_SNMP_GET, n, 0, -1, on_get_response);
}

static void start_get(device_t *d)
{
    d->state = ST_GET;
    d->requests = 0;
    d->get_first = 0;
    kvl_ifrows_clear(&d->rows);
    send_get(d);
}

/* --- system group ---------------------------------------------------------------------------- */

/* Whether this poll must discover the interfaces; why in `why`. */
static bool need_discovery(device_t *d, char *why, size_t len)
{
    if (!d->discovered) {
        snprintf(why, len, "first discovery");
    } else if (d->rediscover_now) {
        snprintf(why, len, "the interface table changed");
    } else if (d->cfg->rediscover_ms == 0) {
        snprintf(why, len, "discovery at every poll");
    } else if (kvl_now_ms() >= d->next_discovery_ms) {
        snprintf(why, len, "scheduled");
    } else if (d->reboot_pending) {
        snprintf(why, len, "sysUpTime went back");
    } else if (d->have_ifnumber && d->inv_have_ifnumber && d->ifnumber != d->inv_ifnumber) {
        snprintf(why, len, "ifNumber moved from %" PRId64 " to %" PRId64, d->inv_ifnumber,
                 d->ifnumber);
    } else if (d->have_lastchange && d->inv_have_lastchange && d->lastchange != d->inv_lastchange) {
        snprintf(why, len, "ifTableLastChange moved from %" PRIu32 " to %" PRIu32,
                 d->inv_lastchange, d->lastchange);
    } else {
        return false;
    }
    return true;
}

static void send_sys(device_t *d);

static void on_sys_response(kvl_snmp_session_t *s, const kvl_snmp_result_t *res, void *arg)
{
    device_t *d = arg;
    KVL_UNUSED(s);
    if (res->status == KVL_SNMP_TIMEOUT) {
        mark_down(d, R_TIMEOUT, "timeout after %d tries to %s", res->tries, kvl_snmp_peer(d->sess));
        return;
    }
    if (res->status == KVL_SNMP_SEND_FAILED) {
        mark_down(d, R_OTHER, "send to %s failed: %s", kvl_snmp_peer(d->sess), res->error_text);
        return;
    }
    if (res->status == KVL_SNMP_REPORT) {
        const char *set = cred_name(d);
        mark_down(d, R_AUTH, "%s%s%s%s", res->error_text, set != NULL ? " (credentials '" : "",
                  set != NULL ? set : "", set != NULL ? "')" : "");
        return;
    }
    d->t_sys = kvl_now_ms();
    d->rtt_ms = res->rtt_ms;
    if (res->error_status == KVL_SNMP_ERR_NO_SUCH_NAME && res->error_index >= 1 &&
        (size_t)res->error_index <= d->n_sys_oids) {
        /* v1: that object does not exist; ask again for the rest. */
        size_t i = (size_t)res->error_index - 1;
        d->sys_missing |= 1u << d->sys_which[i];
        memmove(&d->w->sys_oids[i], &d->w->sys_oids[i + 1],
                (d->n_sys_oids - i - 1) * sizeof(d->w->sys_oids[0]));
        memmove(&d->sys_which[i], &d->sys_which[i + 1],
                (d->n_sys_oids - i - 1) * sizeof(d->sys_which[0]));
        d->n_sys_oids--;
        if (d->n_sys_oids > 0) {
            send_sys(d);
            return;
        }
    } else if (res->error_status != KVL_SNMP_ERR_NONE) {
        mark_down(d, R_OTHER, "the system GET got error-status %d at index %d", res->error_status,
                  res->error_index);
        return;
    } else {
        for (size_t i = 0; i < res->n_vbs; i++) {
            const kvl_snmp_vb_t *vb = &res->vbs[i];
            int which = -1;
            for (int k = 0; k < N_SYS && which < 0; k++) {
                if (vb->oid.len == sys_objects[k].len &&
                    memcmp(vb->oid.sub, sys_objects[k].sub,
                           sys_objects[k].len * sizeof(uint32_t)) == 0) {
                    which = k;
                }
            }
            if (which == SYS_UPTIME && vb->type == KVL_SNMP_T_TIMETICKS) {
                d->have_uptime = true;
                d->uptime = (uint32_t)vb->u;
            } else if (which == SYS_NAME && vb->type == KVL_SNMP_T_OCTETS) {
                char *name = kvl_snmp_text_clean(vb->str, vb->str_len);
                if (name != NULL) {
                    free(d->sysname);
                    d->sysname = name;
                    d->have_sysname = true;
                }
            } else if ((which == SYS_DESCR || which == SYS_LOCATION) &&
                       vb->type == KVL_SNMP_T_OCTETS) {
                char *text = kvl_snmp_text_clean(vb->str, vb->str_len);
                char **slot = which == SYS_DESCR ? &d->sysdescr : &d->syslocation;
                if (text != NULL) {
                    free(*slot);
                    *slot = text;
                }
            } else if (which == SYS_IFNUMBER && vb->type == KVL_SNMP_T_INTEGER) {
                d->have_ifnumber = true;
                d->ifnumber = vb->integer;
            } else if (which == SYS_LASTCHANGE && vb->type == KVL_SNMP_T_TIMETICKS) {
                d->have_lastchange = true;
                d->lastchange = (uint32_t)vb->u;
            }
        }
    }
    if (!d->have_uptime && !d->have_sysname) {
        mark_down(d, R_NO_SUCH_NAME,
                  "%s answers without a system group (%s for sysUpTime.0 and sysName.0)",
                  kvl_snmp_peer(d->sess),
                  res->n_vbs == 0 && res->error_status == KVL_SNMP_ERR_NONE ? "an empty answer"
                                                                            : "no such name");
        return;
    }
    mark_up(d);
    if (d->have_uptime) {
        if (d->have_prev_uptime && d->uptime < d->prev_uptime) {
            KVL_LOG_INFO(MOD, d->cfg->name,
                         "sysUpTime went back (%" PRIu32 " -> %" PRIu32 "): counters restart",
                         d->prev_uptime, d->uptime);
            d->reboot_pending = true;
            d->sys_missing = 0; /* perhaps new software: ask for everything again */
        }
        d->have_prev_uptime = true;
        d->prev_uptime = d->uptime;
    }
    char why[160];
    if (need_discovery(d, why, sizeof(why))) {
        KVL_LOG_DEBUG(MOD, d->cfg->name, "discovering the interfaces: %s", why);
        start_walk(d);
    } else {
        start_get(d);
    }
}

static void send_sys(device_t *d)
{
    memcpy(d->w->req_oids, d->w->sys_oids, d->n_sys_oids * sizeof(d->w->sys_oids[0]));
    dev_send(d, KVL_SNMP_GET, d->n_sys_oids, 0, -1, on_sys_response);
}

static void start_sys(device_t *d)
{
    d->state = ST_SYS;
    d->have_uptime = d->have_sysname = d->have_ifnumber = d->have_lastchange = false;
    d->rtt_ms = 0;
    d->n_sys_oids = 0;
    for (int k = 0; k < N_SYS; k++) {
        if ((d->sys_missing & (1u << k)) == 0) {
            kvl_snmp_oid_set(&d->w->sys_oids[d->n_sys_oids], sys_objects[k].sub,
                             sys_objects[k].len);
            d->sys_which[d->n_sys_oids++] = k;
        }
    }
    send_sys(d);
}

/* --- dead devices ---------------------------------------------------------------------------- */

static void on_probe_response(kvl_snmp_session_t *s, const kvl_snmp_result_t *res, void *arg)
{
    device_t *d = arg;
    KVL_UNUSED(s);
    if (res->status == KVL_SNMP_TIMEOUT || res->status == KVL_SNMP_SEND_FAILED) {
        d->probe_gap = kvl_sched_probe_gap(d->probe_gap, d->interval_ms, DEAD_MAX_GAP_MS);
        d->skip_ticks = d->probe_gap - 1;
        KVL_LOG_DEBUG(MOD, d->cfg->name, "probe: %s; next one in %u polls",
                      res->status == KVL_SNMP_TIMEOUT ? "no answer" : res->error_text,
                      d->probe_gap);
        report_device(d, false, kvl_now_ms(), -1);
        finish_poll(d);
        return;
    }
    /* It answers (perhaps only with a Report): back to normal polls, starting now. */
    d->dead = false;
    d->timeouts_in_row = 0;
    KVL_LOG_INFO(MOD, d->cfg->name, "answers a probe again: back on its normal schedule");
    start_sys(d);
}

static void start_probe(device_t *d)
{
    d->state = ST_PROBE;
    kvl_snmp_oid_set(&d->w->req_oids[0], sys_uptime, KVL_ARRAY_SIZE(sys_uptime));
    dev_send(d, KVL_SNMP_GET, 1, 0, 0, on_probe_response);
}

/* --- scheduling ------------------------------------------------------------------------------ */

static void start_poll(device_t *d)
{
    if (d->w == NULL) {
        /* Room for the larger of a walk's request and the configured GET size. */
        size_t n = (size_t)d->cfg->max_varbinds > MAX_VBS_PER_RESPONSE
                       ? (size_t)d->cfg->max_varbinds
                       : MAX_VBS_PER_RESPONSE;
        d->w = malloc(sizeof(*d->w) + n * (sizeof(kvl_snmp_oid_t) + sizeof(get_slot_t)));
        if (d->w == NULL) {
            KVL_LOG_ERROR(MOD, d->cfg->name, "out of memory: poll skipped");
            return;
        }
        d->w->n_req = n;
        d->w->get_map = (get_slot_t *)(void *)&d->w->req_oids[n];
    }
    d->poll_start_ms = kvl_now_ms();
    d->start_ns = 0;
    d->mid_retries = 0;
    d->strained = false;
    d->state = ST_SYS;
    if (d->sess == NULL) {
        kvl_snmp_target_t t = {
            .name = d->cfg->name,
            .address = d->cfg->address,
            .port = (uint16_t)d->cfg->port,
            .version = (kvl_snmp_version_t)d->cfg->version,
            .community = d->cfg->community != NULL ? d->cfg->community : "",
            .usm = d->cfg->credentials,
            .timeout_ms = d->cfg->timeout_ms,
            .retries = (int)d->cfg->retries,
        };
        char err[512];
        d->sess = kvl_snmp_open(d->p->loop, &t, err, sizeof(err));
        if (d->sess == NULL) {
            mark_down(d, R_OTHER, "%s", err);
            return;
        }
    }
    if (d->dead) {
        start_probe(d);
    } else {
        start_sys(d);
    }
}

/* --- the schedule: one timer, devices in a min-heap by next_due ------------------------------ */

static void on_sched(uv_timer_t *t);

static void sched_arm(kvl_poller_t *p)
{
    uint32_t top;
    uint64_t due;
    if (!kvl_sched_top(&p->sched, &top, &due)) {
        uv_timer_stop(&p->sched_timer);
        return;
    }
    uint64_t now = uv_now(p->loop);
    uv_timer_start(&p->sched_timer, on_sched, due > now ? due - now : 0, 0);
}

/* A device's tick: its next one is scheduled first (on the fixed schedule, skipping any
 * the loop was too late for), then it is polled unless its last poll still runs or it is a
 * dead device waiting out its gap. */
static void device_tick(device_t *d, uint64_t now)
{
    d->due = d->next_due;
    if (d->start_ticks < 2 && ++d->start_ticks == 2) {
        /* The second tick, an interval after the first (at start): the next one on the
         * device's phase (poll_sched.h). */
        d->next_due =
            now + kvl_sched_join_delay(d->cfg->name, d->interval_ms, (uint64_t)kvl_now_ms());
    } else {
        unsigned skipped = kvl_sched_advance(&d->next_due, d->interval_ms, now);
        if (skipped > 0) {
            KVL_LOG_DEBUG(MOD, d->cfg->name, "loop late: %u ticks skipped", skipped);
        }
    }
    if (d->state != ST_IDLE) {
        KVL_LOG_DEBUG(MOD, d->cfg->name, "previous poll still running: tick skipped");
        return;
    }
    if (d->dead && d->skip_ticks > 0) {
        d->skip_ticks--;
        report_device(d, false, kvl_now_ms(), -1); /* still down, as far as we know */
        return;
    }
    start_poll(d);
}

/* Once, at the first tick of a running agent: the event devices_configured names every
 * device of the configuration (one field "device" each), so that the collector's inventory
 * retires those no longer polled. */
static void announce_devices(kvl_poller_t *p)
{
    p->announced = true;
    kvl_label_t *f = calloc(p->n_devs > 0 ? p->n_devs : 1, sizeof(*f));
    if (f == NULL) {
        KVL_LOG_ERROR(MOD, NULL, "out of memory: the configured devices not announced");
        return;
    }
    for (size_t i = 0; i < p->n_devs; i++) {
        f[i] = (kvl_label_t){"device", p->devs[i]->cfg->name};
    }
    char text[64];
    snprintf(text, sizeof(text), "%zu SNMP devices configured", p->n_devs);
    kvl_event_t ev = {.time_ms = kvl_now_ms(),
                      .device = "",
                      .kind = "devices_configured",
                      .severity = KVL_SEV_INFO,
                      .text = text,
                      .fields = f,
                      .n_fields = p->n_devs};
    kvl_batcher_event(p->b, &ev);
    free(f);
}

static void on_sched(uv_timer_t *t)
{
    kvl_poller_t *p = t->data;
    uint64_t now = uv_now(p->loop);
    if (!p->announced && !p->once) {
        announce_devices(p);
    }
    /* Every device due now, each once (a tick moves its next_due past now); in --poll-once
     * mode each device is polled once and leaves the schedule. */
    for (size_t budget = p->sched.n; budget > 0; budget--) {
        uint32_t i;
        uint64_t due;
        if (!kvl_sched_top(&p->sched, &i, &due) || due > now) {
            break;
        }
        device_t *d = p->devs[i];
        kvl_sched_pop(&p->sched);
        if (p->once) {
            if (d->state == ST_IDLE && !d->polled_once) {
                d->due = now;
                start_poll(d);
            }
            continue;
        }
        device_tick(d, now);
        kvl_sched_push(&p->sched, i, d->next_due);
    }
    sched_arm(p);
}

/* --- the agent's own statistics (reported by agent/stats.c) ---------------------------------- */

void kvl_poller_stats(kvl_poller_t *p, kvl_poller_stats_t *st)
{
    uint64_t down = 0;
    for (size_t i = 0; i < p->n_devs; i++) {
        down += p->devs[i]->down ? 1 : 0;
    }
    *st = (kvl_poller_stats_t){.requests = p->n_requests,
                               .timeouts = p->n_timeouts,
                               .varbinds = p->n_varbinds,
                               .errors = p->n_errors,
                               .devices = p->n_devs,
                               .devices_down = down,
                               .inflight = p->inflight.n,
                               .any_poll = p->any_poll,
                               .cycle_max_ms = p->cycle_max_ms,
                               .lag_max_ms = p->lag_max_ms};
    p->cycle_max_ms = p->lag_max_ms = 0;
    p->any_poll = false;
}

/* --- life cycle ------------------------------------------------------------------------------ */

static void free_dev_state(device_t *d)
{
    free(d->w);
    d->w = NULL;
    kvl_ifrows_free(&d->rows);
    free_inventory(d);
    free(d->sysname);
    free(d->sysdescr);
    free(d->syslocation);
    free(d->ifindexes);
    free(d->neighbours);
    kvl_nbrs_free(&d->nbrs);
    free(d->model);
    free(d->serial);
    kvl_mg_dev_free(d->mg);
}

/* Drops one open handle; the last one frees the poller. */
static void poller_release(kvl_poller_t *p)
{
    if (--p->open_handles > 0) {
        return;
    }
    for (size_t i = 0; i < p->n_devs; i++) {
        if (p->devs[i] != NULL) {
            free_dev_state(p->devs[i]);
            free(p->devs[i]);
        }
    }
    kvl_sched_fini(&p->sched);
    free(p->devs);
    free(p->addrs);
    free(p->soon);
    free(p);
}

static void on_timer_closed(uv_handle_t *h)
{
    poller_release(h->data);
}

/* A device of the configuration, new to the poller: its first poll at once (spread over a
 * short window), then on its phase. NULL when out of memory. */
static device_t *dev_new(kvl_poller_t *p, const kvl_device_cfg_t *cfg, uint64_t now)
{
    device_t *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        return NULL;
    }
    d->p = p;
    d->cfg = cfg;
    int64_t ims = d->cfg->interval_ms > 0 ? d->cfg->interval_ms : 60000;
    d->interval_ms = (uint64_t)ims;
    d->interval_s = (uint32_t)((ims + 500) / 1000);
    if (d->interval_s == 0) {
        d->interval_s = 1;
    }
    d->reps_max =
        d->cfg->max_repetitions > 0 ? (uint32_t)d->cfg->max_repetitions : DEFAULT_MAX_REPS;
    d->reps_cap = d->reps_ceiling = d->reps_max;
    d->mg = kvl_mg_dev_new(d->cfg, d->interval_s, p->b);
    unsigned char a[16];
    if (inet_pton(AF_INET, d->cfg->address, a) != 1 &&
        inet_pton(AF_INET6, d->cfg->address, a) != 1) {
        KVL_LOG_WARN(MOD, d->cfg->name,
                     "address '%s' is not a numeric IP address: it is looked up with a "
                     "blocking call when the session opens (once: that session is kept)",
                     d->cfg->address);
    }
    d->next_due = now + kvl_sched_start_delay(d->cfg->name, d->interval_ms);
    return d;
}

/* Frees a device that is not being polled (its session closed first). */
static void dev_free(device_t *d)
{
    if (d == NULL) {
        return;
    }
    kvl_snmp_close(d->sess);
    free_dev_state(d);
    free(d);
}

int kvl_poller_new(uv_loop_t *loop, const kvl_snmp_cfg_t *cfg, kvl_batcher_t *b, kvl_poller_t **out,
                   char *err, size_t errlen)
{
    *out = NULL;
    if (cfg->n_devices > UINT32_MAX) {
        snprintf(err, errlen, "too many devices (%zu)", cfg->n_devices);
        return KVL_EINVAL;
    }
    kvl_poller_t *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        goto nomem;
    }
    p->loop = loop;
    p->cfg = cfg;
    p->b = b;
    p->n_devs = cfg->n_devices;
    p->inflight.max =
        cfg->max_inflight > 0 ? (unsigned)cfg->max_inflight : (unsigned)DEFAULT_MAX_INFLIGHT;
    p->devs = calloc(p->n_devs > 0 ? p->n_devs : 1, sizeof(*p->devs));
    if (p->devs == NULL) {
        goto nomem;
    }
    if (kvl_sched_init(&p->sched, p->n_devs) < 0) {
        goto nomem;
    }
    uv_timer_init(loop, &p->done_timer);
    p->done_timer.data = p;
    uv_timer_init(loop, &p->sched_timer);
    p->sched_timer.data = p;
    p->open_handles = 2;
    uint64_t now = uv_now(loop);
    for (size_t i = 0; i < p->n_devs; i++) {
        p->devs[i] = dev_new(p, &cfg->devices[i], now);
        if (p->devs[i] == NULL) {
            goto nomem;
        }
        p->devs[i]->index = i;
        kvl_sched_push(&p->sched, (uint32_t)i, p->devs[i]->next_due);
    }
    sched_arm(p);
    if (p->n_devs == 0) {
        KVL_LOG_INFO(MOD, NULL, "no devices to poll");
    }
    *out = p;
    return 0;

nomem:
    if (p != NULL) {
        if (p->open_handles > 0) { /* the timers were made: they free the rest */
            p->n_devs = 0;
            for (size_t i = 0; p->devs != NULL && i < cfg->n_devices; i++) {
                dev_free(p->devs[i]);
            }
            kvl_poller_free(p);
            snprintf(err, errlen, "out of memory creating the poller");
            return KVL_ENOMEM;
        }
        kvl_sched_fini(&p->sched);
        free(p->devs);
        free(p);
    }
    snprintf(err, errlen, "out of memory creating the poller");
    return KVL_ENOMEM;
}

void kvl_poller_set_once(kvl_poller_t *p, void (*done)(void *arg), void *arg)
{
    if (p == NULL) {
        return;
    }
    p->once = true;
    p->done = done;
    p->done_arg = arg;
    /* No spreading: every device right away (the in-flight cap still applies). */
    uint64_t now = uv_now(p->loop);
    for (size_t i = 0; i < p->n_devs; i++) {
        p->devs[i]->next_due = now;
    }
    kvl_sched_clear(&p->sched);
    for (size_t i = 0; i < p->n_devs; i++) {
        kvl_sched_push(&p->sched, (uint32_t)i, p->devs[i]->next_due);
    }
    sched_arm(p);
    if (p->n_devs == 0) {
        uv_timer_start(&p->done_timer, on_done_timer, 0, 0);
    }
}

void kvl_poller_free(kvl_poller_t *p)
{
    if (p == NULL) {
        return;
    }
    kvl_downstate_free(p->state); /* a change still unwritten is written now */
    p->state = NULL;
    kvl_inflight_drop(&p->inflight); /* queued requests are dropped */
    for (size_t i = 0; i < p->n_devs; i++) {
        device_t *d = p->devs[i];
        kvl_snmp_close(d->sess); /* pending requests are dropped without callbacks */
        d->sess = NULL;
        d->state = ST_IDLE;
    }
    kvl_sched_clear(&p->sched);
    uv_timer_stop(&p->sched_timer);
    uv_close((uv_handle_t *)&p->sched_timer, on_timer_closed);
    uv_timer_stop(&p->done_timer);
    uv_close((uv_handle_t *)&p->done_timer, on_timer_closed);
    if (p->soon_timer_open) {
        uv_timer_stop(&p->soon_timer);
        uv_close((uv_handle_t *)&p->soon_timer, on_timer_closed);
    }
}

/* --- what the trap receiver asks (see poller.h) ---------------------------------------------- */

/* A device's address as the kernel gives a datagram's source: 4 bytes (IPv4) or 16. */
struct dev_addr {
    uint8_t a[16];
    uint8_t len; /* 0: not a numeric address */
};

/* Into *out an address of family AF_INET (4 bytes at b) or AF_INET6 (16; an IPv4-mapped one
 * kept as its IPv4 address). False for another family. */
static bool addr_bytes(int family, const void *b, struct dev_addr *out)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    memset(out, 0, sizeof(*out));
    if (family == AF_INET) {
        memcpy(out->a, b, 4);
        out->len = 4;
    } else if (family == AF_INET6) {
        if (memcmp(b, mapped, sizeof(mapped)) == 0) {
            memcpy(out->a, (const uint8_t *)b + 12, 4);
            out->len = 4;
        } else {
            memcpy(out->a, b, 16);
            out->len = 16;
        }
    }
    return out->len != 0;
}

/* Into *out the address of sa: IPv4 (also when IPv4-mapped IPv6) or IPv6. False otherwise. */
static bool sockaddr_bytes(const struct sockaddr *sa, struct dev_addr *out)
{
    if (sa->sa_family == AF_INET) {
        return addr_bytes(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out);
    }
    if (sa->sa_family == AF_INET6) {
        return addr_bytes(AF_INET6,
                          ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr, out);
    }
    memset(out, 0, sizeof(*out));
    return false;
}

long kvl_poller_device_by_addr(kvl_poller_t *p, const struct sockaddr *sa)
{
    if (p->addrs == NULL) {
        p->addrs = calloc(p->n_devs > 0 ? p->n_devs : 1, sizeof(*p->addrs));
        if (p->addrs == NULL) {
            return -1;
        }
        for (size_t i = 0; i < p->n_devs; i++) {
            struct in_addr v4;
            struct in6_addr v6;
            if (inet_pton(AF_INET, p->devs[i]->cfg->address, &v4) == 1) {
                addr_bytes(AF_INET, &v4, &p->addrs[i]);
            } else if (inet_pton(AF_INET6, p->devs[i]->cfg->address, &v6) == 1) {
                addr_bytes(AF_INET6, v6.s6_addr, &p->addrs[i]);
            }
        }
    }
    struct dev_addr from;
    if (!sockaddr_bytes(sa, &from)) {
        return -1;
    }
    for (size_t i = 0; i < p->n_devs; i++) {
        if (p->addrs[i].len == from.len && memcmp(p->addrs[i].a, from.a, from.len) == 0) {
            return (long)i;
        }
    }
    return -1;
}

const kvl_device_cfg_t *kvl_poller_device(const kvl_poller_t *p, size_t i)
{
    KVL_ASSERT(i < p->n_devs);
    return p->devs[i]->cfg;
}

const char *kvl_poller_if_name(const kvl_poller_t *p, size_t i, uint32_t ifindex, char *buf,
                               size_t len)
{
    KVL_ASSERT(i < p->n_devs);
    const device_t *d = p->devs[i];
    for (size_t k = 0; k < d->n_inv; k++) {
        if (d->inv[k].ifindex == ifindex) {
            const char *name = kvl_batcher_instance_of(p->b, d->inv[k].id);
            if (name != NULL) {
                snprintf(buf, len, "%s", name);
                return buf;
            }
        }
    }
    snprintf(buf, len, "if%" PRIu32, ifindex);
    return buf;
}

/* Milliseconds until device d may be polled at once: 0 now; a running poll is looked at
 * again after a short wait. */
static uint64_t soon_wait(const device_t *d, int64_t now)
{
    if (d->state != ST_IDLE) {
        return 250;
    }
    int64_t since = now - d->poll_start_ms;
    return d->poll_start_ms == 0 || since >= KVL_POLLER_POLL_NOW_GAP_MS
               ? 0
               : (uint64_t)(KVL_POLLER_POLL_NOW_GAP_MS - since);
}

static void start_soon(device_t *d)
{
    KVL_LOG_DEBUG(MOD, d->cfg->name, "polling now, out of schedule (asked for at once)");
    d->due = uv_now(d->p->loop);
    d->skip_ticks = 0; /* a dead device is probed now too */
    start_poll(d);
}

/* The deferred polls whose time has come; the timer again for the others. */
static void on_soon(uv_timer_t *t)
{
    kvl_poller_t *p = t->data;
    int64_t now = kvl_now_ms();
    uint64_t next = 0;
    for (size_t i = 0; p->soon != NULL && i < p->n_devs; i++) {
        if (!p->soon[i]) {
            continue;
        }
        uint64_t w = soon_wait(p->devs[i], now);
        if (w == 0) {
            p->soon[i] = false;
            start_soon(p->devs[i]);
        } else if (next == 0 || w < next) {
            next = w;
        }
    }
    if (next > 0) {
        uv_timer_start(&p->soon_timer, on_soon, next, 0);
    }
}

bool kvl_poller_poll_now(kvl_poller_t *p, size_t i)
{
    KVL_ASSERT(i < p->n_devs);
    device_t *d = p->devs[i];
    if (p->once) {
        return false;
    }
    uint64_t w = soon_wait(d, kvl_now_ms());
    if (w == 0) {
        start_soon(d);
        return true;
    }
    if (p->soon == NULL) {
        p->soon = calloc(p->n_devs, sizeof(*p->soon));
        if (p->soon == NULL) {
            return false;
        }
    }
    if (!p->soon_timer_open) {
        uv_timer_init(p->loop, &p->soon_timer);
        p->soon_timer.data = p;
        p->soon_timer_open = true;
        p->open_handles++;
    }
    p->soon[i] = true;
    uint64_t due = uv_timer_get_due_in(&p->soon_timer);
    if (!uv_is_active((uv_handle_t *)&p->soon_timer) || w < due) {
        uv_timer_start(&p->soon_timer, on_soon, w, 0);
    }
    return false;
}

/* --- reload (see poller.h) ------------------------------------------------------------------- */

static int by_name(const void *a, const void *b)
{
    const device_t *x = *(device_t *const *)a, *y = *(device_t *const *)b;
    return strcmp(x->cfg->name, y->cfg->name);
}

/* Stops device d now and frees it: a request waiting for a slot leaves the queue, one in
 * flight is dropped with the session (no callback) and gives its slot back. */
static void dev_drop(kvl_poller_t *p, device_t *d)
{
    if (d->state != ST_IDLE && !kvl_inflight_remove(&p->inflight, &d->wait)) {
        KVL_ASSERT(p->inflight.n > 0);
        p->inflight.n--;
    }
    dev_free(d);
}

#define NO_PREV SIZE_MAX /* a device new to the poller */

int kvl_poller_reload(kvl_poller_t *p, const kvl_snmp_cfg_t *cfg, kvl_poller_reload_stats_t *st)
{
    *st = (kvl_poller_reload_stats_t){0};
    size_t n = cfg->n_devices;
    device_t **old = malloc((p->n_devs ? p->n_devs : 1) * sizeof(*old));
    device_t **devs = calloc(n ? n : 1, sizeof(*devs));
    /* where in old the device of the same name was, or NO_PREV */
    size_t *was_at = calloc(n ? n : 1, sizeof(*was_at));
    kvl_sched_t sched = {0};
    if (old == NULL || devs == NULL || was_at == NULL || n > UINT32_MAX ||
        kvl_sched_init(&sched, n) < 0) {
        goto nomem;
    }
    memcpy(old, p->devs, p->n_devs * sizeof(*old));
    qsort(old, p->n_devs, sizeof(*old), by_name);
    /* First what needs memory, so that running out of it changes nothing. */
    uint64_t now = uv_now(p->loop);
    for (size_t i = 0; i < n; i++) {
        const kvl_device_cfg_t *c = &cfg->devices[i];
        device_t key_dev = {.cfg = c};
        device_t *key = &key_dev;
        device_t **hit = bsearch(&key, old, p->n_devs, sizeof(*old), by_name);
        was_at[i] = hit != NULL ? (size_t)(hit - old) : NO_PREV;
        if (hit == NULL || !kvl_device_cfg_same((*hit)->cfg, c)) {
            devs[i] = dev_new(p, c, now);
            if (devs[i] == NULL) {
                goto nomem;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        const kvl_device_cfg_t *c = &cfg->devices[i];
        device_t *prev = NULL;
        if (was_at[i] != NO_PREV) {
            prev = old[was_at[i]];
            old[was_at[i]] = NULL; /* taken: not removed below */
        }
        if (devs[i] == NULL) { /* the same settings: kept as it is */
            prev->cfg = c;
            kvl_mg_dev_set_cfg(prev->mg, c);
            devs[i] = prev;
            st->kept++;
        } else if (prev != NULL) {
            /* changed: polled afresh, but a device down stays down (no second device_down) */
            devs[i]->down = prev->down;
            devs[i]->down_reason = prev->down_reason;
            devs[i]->down_since_ms = prev->down_since_ms;
            devs[i]->timeouts_in_row = prev->timeouts_in_row;
            KVL_LOG_INFO(MOD, c->name, "settings changed: polled afresh under the new ones");
            dev_drop(p, prev);
            st->changed++;
        } else {
            KVL_LOG_INFO(MOD, c->name, "added: polling %s", c->address);
            st->added++;
        }
    }
    for (size_t i = 0; i < p->n_devs; i++) {
        if (old[i] != NULL) {
            KVL_LOG_INFO(MOD, old[i]->cfg->name, "removed: no longer polled");
            if (p->state != NULL) {
                kvl_downstate_clear(p->state, old[i]->cfg->name);
            }
            dev_drop(p, old[i]);
            st->removed++;
        }
    }
    free(old);
    free(was_at);
    free(p->devs);
    p->devs = devs;
    p->n_devs = n;
    kvl_sched_fini(&p->sched);
    p->sched = sched;
    for (size_t i = 0; i < n; i++) {
        devs[i]->index = i;
        kvl_sched_push(&p->sched, (uint32_t)i, devs[i]->next_due);
    }
    /* per-index tables: made again when next needed */
    free(p->addrs);
    p->addrs = NULL;
    free(p->soon);
    p->soon = NULL;
    p->inflight.max =
        cfg->max_inflight > 0 ? (unsigned)cfg->max_inflight : (unsigned)DEFAULT_MAX_INFLIGHT;
    p->announced = false; /* the collector's inventory learns the new list */
    sched_arm(p);
    pump(p);
    return 0;

nomem:
    for (size_t i = 0; devs != NULL && i < n; i++) {
        dev_free(devs[i]); /* only the new ones are there yet */
    }
    free(old);
    free(devs);
    free(was_at);
    kvl_sched_fini(&sched);
    return KVL_ENOMEM;
}
