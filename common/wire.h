/*
 * wire.h — the agent<->collector messages as kaaval's own C types, and their encoding.
 *
 * proto/kaaval.proto is the schema; this module is the only one that includes the code
 * protoc-c generates from it. Encoding appends a whole frame (header + payload) to a
 * buffer; decoding takes one frame's payload and fills a kvl_msg_t whose memory lives in
 * the message's own arena (kvl_msg_clear frees it all at once).
 *
 * Groups are kept as they travel: ids, integer values and real values in three arrays.
 * Which array a series' value comes from depends on its definition (SeriesDef.real), so
 * kvl_group_iter pairs them up given a lookup of the definitions.
 */
#ifndef KVL_WIRE_H
#define KVL_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define KVL_PROTOCOL_VERSION 1u

/* Sequence numbers are the agent's clock in microseconds (+1 for two batches in one
 * microsecond). One a day ahead of the clock of whoever checks it is impossible for an
 * agent whose clock is right: a collector refuses such a batch (its max_seq_ahead, this by
 * default) and an agent never adopts such an acknowledgement; nor one above
 * KVL_SEQ_IMPOSSIBLE, whatever the clock. */
#define KVL_SEQ_AHEAD_DEFAULT_US (86400ull * 1000000ull)
#define KVL_SEQ_IMPOSSIBLE (UINT64_MAX / 2)

/* Lanes: each has its own sequence numbers, acknowledgements and order. Events travel on
 * their own lane so an alarm is never queued behind a backlog of metrics. */
enum { KVL_LANE_BULK = 0, KVL_LANE_EVENTS = 1, KVL_LANES = 2 };

typedef enum {
    KVL_SCOPE_DEVICE = 1,
    KVL_SCOPE_INTERFACE = 2,
    KVL_SCOPE_AGENT = 3, /* the agent's own statistics; device = the agent id */
    KVL_SCOPE_GROUP = 4, /* a metric group's row (instance) or its scalars (instance "") */
    KVL_SCOPE_LINK = 5,  /* link measurement: device = the agent id, instance = the target */
    /* Later scopes (proto/kaaval.proto): encoded in fields an older collector skips. */
    KVL_SCOPE_NEIGHBOUR = 6, /* an LLDP/CDP neighbour of a device (agent/snmp/nbrwalk.h) */
    KVL_SCOPE_CAPTURE = 7,   /* passive capture: device = the agent id, instance = the
                                interface (agent/capture/capship.h) */
} kvl_scope_t;

#define KVL_SCOPE_FIRST_LATER KVL_SCOPE_NEIGHBOUR
#define KVL_SCOPE_LAST KVL_SCOPE_CAPTURE

typedef enum {
    KVL_KIND_COUNTER = 1,
    KVL_KIND_GAUGE = 2,
} kvl_kind_t;

typedef enum {
    KVL_SEV_INFO = 1,
    KVL_SEV_WARNING = 2,
    KVL_SEV_CRITICAL = 3,
} kvl_severity_t;

/* A family: the metrics one instance (an interface, a row of a metric group, a group's
 * scalars) reports together. Its metrics are the data sources of that instance's archive;
 * for SCOPE_GROUP its name is the group's name. */
typedef struct kvl_family {
    const char *name;
    size_t n;
    const char *const *metrics;
    const kvl_kind_t *kinds;
    const bool *reals; /* may be NULL: all integer */
    uint32_t id;       /* on the wire; the batcher assigns it */
} kvl_family_t;

#define KVL_FAMILY_MAX 64 /* metrics per family */

typedef struct kvl_label {
    const char *key;
    const char *value;
} kvl_label_t;

typedef struct kvl_series_def {
    uint32_t id;
    const char *device;
    kvl_scope_t scope;
    const char *instance;
    const char *metric;
    kvl_kind_t kind;
    uint32_t interval_s;
    bool real;
    const kvl_label_t *labels;
    size_t n_labels;
    uint32_t family; /* 0, or the family this definition names (ids id .. id+n-1); decoded
                        definitions of a family leave metric, kind and real unset */
} kvl_series_def_t;

typedef struct kvl_group {
    int64_t time_ms;
    const uint32_t *ids;
    size_t n_ids;
    const uint64_t *values; /* integer series, in id order, unknown ones left out */
    size_t n_values;
    const double *reals; /* real-valued series, likewise */
    size_t n_reals;
    const uint32_t *unknown; /* increasing positions into ids */
    size_t n_unknown;
    bool later; /* its series are of a later scope (>= KVL_SCOPE_FIRST_LATER): encoded in
                   Batch.later_groups; decoded ones come after the others */
} kvl_group_t;

typedef struct kvl_event {
    int64_t time_ms;
    const char *device;
    const char *kind;
    kvl_severity_t severity;
    const char *text;
    const kvl_label_t *fields;
    size_t n_fields;
} kvl_event_t;

/* Whether events of this kind carry data for a collector's room rather than news of an
 * incident: `capture_top` (the capture's top lists, collector/captop/) and
 * `devices_configured` (an agent's devices, the inventory). No catch-all alert rule matches
 * them and the collector logs them at debug only. */
bool kvl_event_is_data(const char *kind);

typedef struct kvl_batch {
    uint64_t seq;
    uint32_t lane; /* KVL_LANE_* */
    const kvl_family_t *families;
    size_t n_families;
    const kvl_series_def_t *defs;
    size_t n_defs;
    const kvl_group_t *groups;
    size_t n_groups;
    const kvl_event_t *events;
    size_t n_events;
} kvl_batch_t;

typedef struct kvl_hello {
    uint32_t protocol;
    const char *agent_id;
    const char *version;
    const char *site;
    uint64_t boot_id;
    /* The agent's highest sequence number handed out, per lane (no batch of it is numbered
     * above); has_last_seq false: not sent (an older agent). */
    bool has_last_seq;
    uint64_t last_seq;
    uint64_t last_event_seq;
    /* How often the agent sends a heartbeat (kvl_heartbeat_t), in ms; 0: it sends none (an
     * older agent). */
    uint32_t heartbeat_ms;
} kvl_hello_t;

/* The agent is alive (sent every kvl_hello_t.heartbeat_ms once welcomed). */
typedef struct kvl_heartbeat {
    int64_t time_ms;         /* the agent's clock when sent */
    uint64_t last_seq;       /* its highest seq handed out on the bulk lane */
    uint64_t last_event_seq; /* and on the events lane */
} kvl_heartbeat_t;

typedef struct kvl_welcome {
    uint32_t protocol;
    const char *collector_id;
    const char *version;
    uint64_t last_acked_seq;
    uint64_t last_acked_event_seq;
    bool takes_heartbeats; /* the collector knows Heartbeat (an older one closes on it) */
} kvl_welcome_t;

typedef enum {
    KVL_MSG_NONE = 0,
    KVL_MSG_HELLO,
    KVL_MSG_WELCOME,
    KVL_MSG_REFUSAL,
    KVL_MSG_SERIES_DEFS,
    KVL_MSG_BATCH,
    KVL_MSG_ACK,
    KVL_MSG_HEARTBEAT,
} kvl_msg_type_t;

typedef struct kvl_msg {
    kvl_msg_type_t type;
    union {
        kvl_hello_t hello;
        kvl_welcome_t welcome;
        const char *refusal;
        struct {
            const kvl_series_def_t *defs;
            size_t n;
            const kvl_family_t *families;
            size_t n_families;
        } series_defs;
        kvl_batch_t batch;
        struct {
            uint64_t seq;
            uint32_t lane;
        } ack;
        kvl_heartbeat_t heartbeat;
    } u;
    kvl_arena_t arena; /* owns everything a decoded message points to */
} kvl_msg_t;

/* Encodes m and appends it to out as one frame. Returns 0, KVL_EINVAL for an inconsistent
 * message (e.g. a group whose value counts do not match), or KVL_ENOMEM. */
int kvl_wire_encode(const kvl_msg_t *m, kvl_buf_t *out);

/* Decodes one frame payload into m (which the caller zero-initialised or cleared).
 * Returns 0 or KVL_EDECODE with a reason in err. Always call kvl_msg_clear afterwards. */
int kvl_wire_decode(const uint8_t *payload, size_t len, kvl_msg_t *m, char *err, size_t errlen);

/* Frees what a decoded message owns and zeroes it. NULL-safe. */
void kvl_msg_clear(kvl_msg_t *m);

/* Walks a group's samples in order. lookup returns the definition of an id or NULL. */
typedef struct kvl_group_iter {
    const kvl_group_t *g;
    size_t pos, vi, ri, ui;
} kvl_group_iter_t;

typedef struct kvl_sample {
    uint32_t id;
    const kvl_series_def_t *def;
    bool unknown;
    uint64_t value; /* integer series */
    double real;    /* real series */
} kvl_sample_t;

void kvl_group_iter_init(kvl_group_iter_t *it, const kvl_group_t *g);
/* Returns 1 with *s filled, 0 at the end, or KVL_EPROTO when the group refers to an
 * unknown id or its arrays do not add up. */
int kvl_group_iter_next(kvl_group_iter_t *it,
                        const kvl_series_def_t *(*lookup)(void *ctx, uint32_t id), void *ctx,
                        kvl_sample_t *s);

#endif
