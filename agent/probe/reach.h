/*
 * reach.h — whether a probe target answers, decided within seconds of a lost probe (pure: no
 * loop, no sockets; the prober feeds it what was sent and what came back, with its loop time
 * in ms, and does what it asks).
 *
 * A target is unknown at the start (or up or down as the agent's state file says), up after
 * any answer, down after a confirmed loss:
 *
 *  - Every scheduled probe of a target that is not down is watched: no answer within the
 *    probe timeout (below), or an explicit failure (send refused, connection refused, fetch
 *    failed), makes it lost and starts a confirmation round at once.
 *  - A confirmation round sends `confirm_count` extra probes `confirm_spacing` apart (the
 *    first at once), each watched with the probe timeout. Any answer during the round (to
 *    one of its probes, or a late one to a scheduled probe) ends it: the target answers. When
 *    every probe of the round was lost the target is down (kvl_reach_poll says so once).
 *  - While down, no confirmation runs; the scheduled probes go on, and the first answer to any
 *    of them brings the target up (kvl_reach_answer says so).
 *
 * The probe timeout follows the target's recent round-trip times: four times the median of
 * the last KVL_REACH_RTTS answers, at least a minimum (100 ms; the prober gives http 1 s, as
 * a fetch's time varies more), at most the normal timeout (the gap between the target's
 * scheduled probes); the normal timeout itself while nothing came back yet.
 *
 * A late answer is still an answer while the round is open: the verdict comes only when the
 * last probe's timeout has passed, so an answer to any probe of the round (or to the lost
 * scheduled one) up to 2 x spacing + timeout after the loss was seen ends the round; a link
 * whose RTT merely grows for a moment is not declared down. A target whose scheduled probes
 * report their own failure (http: the fetch gives up at the normal timeout) is `patient`: its
 * scheduled probe is watched for the normal timeout plus a second, and only its failure (or
 * that) starts a round.
 *
 * Confirmation probes have numbers of their own (KVL_REACH_CONFIRM_BIT set, the round and the
 * probe's place below it), so their answers never reach the interval's statistics: they are
 * neither sent nor lost nor received there.
 */
#ifndef KVL_REACH_H
#define KVL_REACH_H

#include <stdbool.h>
#include <stdint.h>

#define KVL_REACH_CONFIRM_MAX 10
#define KVL_REACH_RTTS 8
#define KVL_REACH_CONFIRM_BIT 0x80000000u

typedef enum { KVL_REACH_UNKNOWN = 0, KVL_REACH_UP, KVL_REACH_DOWN } kvl_reach_state_t;

/* What kvl_reach_poll asks of the prober. */
typedef enum { KVL_REACH_NONE = 0, KVL_REACH_SEND, KVL_REACH_WENT_DOWN } kvl_reach_action_t;

typedef struct kvl_reach {
    int state;    /* kvl_reach_state_t */
    bool patient; /* set by the caller after init: see the top */
    uint32_t confirm_n;
    int64_t spacing_ms, min_ms, normal_ms;
    int64_t rtt_ms[KVL_REACH_RTTS]; /* the last answers' round trips (ms, rounded up) */
    uint32_t n_rtt, rtt_pos;
    /* the scheduled probe being watched */
    bool watching;
    uint32_t watch_seq;
    int64_t watch_deadline, watch_sent;
    /* the confirmation round */
    bool confirming;
    uint32_t round;                            /* rounds started, for the numbers */
    uint32_t c_sent;                           /* probes of the round sent */
    uint32_t c_lost;                           /* bit per probe: known lost */
    int64_t c_next;                            /* when the next one is due */
    int64_t c_deadline[KVL_REACH_CONFIRM_MAX]; /* per sent probe */
    int64_t lost_at;                           /* send time of the lost scheduled probe */
    uint32_t last_seq;                         /* the last scheduled probe sent */
    bool have_last_seq;
    uint32_t down_seq; /* answers to scheduled probes up to this one do not bring it up */
    bool have_down_seq;
    uint32_t rounds, rounds_down; /* counted: rounds, rounds that ended down */
} kvl_reach_t;

/* confirm_n: 1 .. KVL_REACH_CONFIRM_MAX; spacing_ms >= 0; timeouts within [min_ms, normal_ms]
 * (normal_ms wins when it is the smaller). */
void kvl_reach_init(kvl_reach_t *r, uint32_t confirm_n, int64_t spacing_ms, int64_t min_ms,
                    int64_t normal_ms);
/* Starts down (the state file said so): no event until an answer brings it up. */
void kvl_reach_set_down(kvl_reach_t *r);

/* The timeout of a probe sent now (see the top). */
int64_t kvl_reach_timeout(const kvl_reach_t *r);
/* A scheduled probe numbered seq left at now (or the kernel refused it: then call
 * kvl_reach_failed too). */
void kvl_reach_sent(kvl_reach_t *r, uint32_t seq, int64_t now);
/* An answer to probe seq (scheduled or confirmation) with its round trip (ns; < 0 unknown).
 * Returns true when it brought a down target up. */
bool kvl_reach_answer(kvl_reach_t *r, uint32_t seq, int64_t rtt_ns, int64_t now);
/* Probe seq failed without waiting for its timeout (send refused, connection refused, a
 * fetch that failed). */
void kvl_reach_failed(kvl_reach_t *r, uint32_t seq, int64_t now);
/* Advances to now. KVL_REACH_SEND: send confirmation probe *seq now (and call again);
 * KVL_REACH_WENT_DOWN: the round ended with every probe lost, the target is down (call
 * again); KVL_REACH_NONE: nothing more until kvl_reach_next. */
kvl_reach_action_t kvl_reach_poll(kvl_reach_t *r, int64_t now, uint32_t *seq);
/* When kvl_reach_poll has something to do next (INT64_MAX: nothing pending). */
int64_t kvl_reach_next(const kvl_reach_t *r);
/* True when seq is a confirmation probe's number. */
static inline bool kvl_reach_is_confirm(uint32_t seq)
{
    return (seq & KVL_REACH_CONFIRM_BIT) != 0;
}

#endif
