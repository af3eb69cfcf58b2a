/*
 * liveness.h — whether an agent is alive, as the collector sees it: the pure core of the
 * "agent lost" detector (no loop, no clock of its own, no I/O; watch.c drives it).
 *
 * An agent says in its Hello how often it sends a heartbeat (interval_ms; 0 for an older
 * agent, which sends none). Every frame it sends moves its deadline to now + its window:
 * `misses` intervals (collector.yaml `lost_after`, 3 by default, so 30 s for the default
 * 10 s). When its connection closes the deadline is close + window: an agent that comes back
 * within it was never lost. An agent without heartbeats keeps today's idle timeout: while
 * connected it has no deadline, the idle timeout closing its connection loses it at once
 * (kvl_live_idle), and after another close its window is the fallback (idle_timeout). A deadline
 * passed makes the agent lost, once; its next accepted Hello makes it back, once, and closes its
 * lost period [last seen before the loss, the Hello of the return].
 *
 * Two clocks: deadlines are in monotonic milliseconds (`now`), what is reported and kept
 * across restarts (last seen, when lost, the lost periods) in wall-clock milliseconds
 * (`wall`), the time agents stamp their events with. An event whose time falls inside a lost
 * period of its agent is late (kvl_live_late): the agent_lost alert already covered it.
 *
 * The state file format (kvl_live_format_line / kvl_live_parse_line) is one line per agent:
 *   <U|L> <interval_ms> <lost_from_ms> <lost_at_ms> <id length>:<id> <site length>:<site>
 * lengths in bytes, so ids and sites may hold any byte but NUL.
 */
#ifndef KVL_LIVENESS_H
#define KVL_LIVENESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KVL_LIVE_PERIODS 8 /* closed lost periods kept per agent, the newest */
#define KVL_LIVE_REASON_MAX 200

typedef struct kvl_live_cfg {
    uint32_t misses;      /* heartbeats missed before the agent is lost (lost_after) */
    uint64_t fallback_ms; /* the window of an agent without heartbeats (idle_timeout) */
} kvl_live_cfg_t;

typedef struct kvl_live_period {
    int64_t from_ms, to_ms; /* wall clock */
} kvl_live_period_t;

typedef struct kvl_live {
    uint32_t interval_ms; /* heartbeat interval from the last Hello; 0: none */
    bool connected;
    bool watched;         /* deadline_ms is set */
    uint64_t deadline_ms; /* monotonic: lost when reached without a frame */
    int64_t last_seen_ms; /* wall: the last frame (or Hello); 0: never seen in this run */
    bool lost;
    int64_t lost_from_ms;                        /* wall: last seen before the loss */
    int64_t lost_at_ms;                          /* wall: when it was declared */
    char close_reason[KVL_LIVE_REASON_MAX];      /* why its last connection closed, or "" */
    kvl_live_period_t periods[KVL_LIVE_PERIODS]; /* closed lost periods, a ring */
    size_t n_periods, next_period;
} kvl_live_t;

/* How long the agent may stay silent: misses x interval, or the fallback without one. */
uint64_t kvl_live_window(const kvl_live_t *l, const kvl_live_cfg_t *cfg);

/* A Hello was accepted (interval_ms as it said). Returns true when the agent was lost: it is
 * back (then *lost_for_ms is how long since it was last seen, and the period is closed). */
bool kvl_live_hello(kvl_live_t *l, const kvl_live_cfg_t *cfg, uint32_t interval_ms, uint64_t now,
                    int64_t wall, int64_t *lost_for_ms);

/* A frame came on the agent's connection. */
void kvl_live_frame(kvl_live_t *l, const kvl_live_cfg_t *cfg, uint64_t now, int64_t wall);

/* The connection is not being read (backpressure): its silence is not the agent's. */
void kvl_live_hold(kvl_live_t *l, const kvl_live_cfg_t *cfg, uint64_t now);

/* The agent's connection closed (why: as logged; may be NULL). */
void kvl_live_closed(kvl_live_t *l, const kvl_live_cfg_t *cfg, uint64_t now, const char *why);

/* The idle timeout closed the connection of an agent without heartbeats (after
 * kvl_live_closed): it is lost at the next check. Nothing for an agent with heartbeats. */
void kvl_live_idle(kvl_live_t *l, uint64_t now);

/* Watches an agent known from the state file (not lost) that has not connected yet: lost if
 * it does not within grace_ms + its window. */
void kvl_live_expect(kvl_live_t *l, const kvl_live_cfg_t *cfg, uint64_t now, uint64_t grace_ms);

/* Returns true when the agent becomes lost now (once per loss): its deadline has passed.
 * The reason is written to why ("no heartbeat for 30 s", "connection closed: ..."). */
bool kvl_live_check(kvl_live_t *l, uint64_t now, int64_t wall, char *why, size_t whylen);

/* Whether an event of the agent stamped time_ms falls inside one of its lost periods (the
 * open one included). */
bool kvl_live_late(const kvl_live_t *l, int64_t time_ms);

/* One state-file line for the agent (see the top), with the newline. Returns the length, or
 * a negative code when it does not fit. */
int kvl_live_format_line(const kvl_live_t *l, const char *id, const char *site, char *out,
                         size_t outlen);

/* Parses one line (without its newline): fills *l (lost state and interval; nothing
 * watched), the id and the site (NUL-terminated, each up to idlen-1 / sitelen-1 bytes).
 * Returns 0 or KVL_EINVAL for a line that is not one. */
int kvl_live_parse_line(const char *line, size_t len, kvl_live_t *l, char *id, size_t idlen,
                        char *site, size_t sitelen);

#endif
