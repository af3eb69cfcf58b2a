/*
 * reach.c — a probe target's reachability: the watched probe, confirmation rounds and the
 * up/down state (see reach.h). Pure: times are the caller's (loop ms).
 *
 * A confirmation probe's number: KVL_REACH_CONFIRM_BIT, the round (23 bits) and the probe's
 * place in it (4 bits). Answers to an earlier round, or to a scheduled probe sent before the
 * target was declared down, prove nothing new and are ignored, so a reply that was merely
 * slower than every timeout does not undo the verdict it came too late for.
 */
#include "reach.h"

#include <string.h>

#include "kvl.h"

#define ROUND_MASK 0x7fffffu
#define ROUND_SHIFT 4
#define PLACE_MASK 0xfu

static uint32_t confirm_seq(uint32_t round, uint32_t k)
{
    return KVL_REACH_CONFIRM_BIT | ((round & ROUND_MASK) << ROUND_SHIFT) | k;
}

void kvl_reach_init(kvl_reach_t *r, uint32_t confirm_n, int64_t spacing_ms, int64_t min_ms,
                    int64_t normal_ms)
{
    KVL_ASSERT(confirm_n >= 1 && confirm_n <= KVL_REACH_CONFIRM_MAX);
    memset(r, 0, sizeof(*r));
    r->state = KVL_REACH_UNKNOWN;
    r->confirm_n = confirm_n;
    r->spacing_ms = spacing_ms > 0 ? spacing_ms : 0;
    r->min_ms = min_ms > 0 ? min_ms : 1;
    r->normal_ms = normal_ms > 0 ? normal_ms : 1;
}

void kvl_reach_set_down(kvl_reach_t *r)
{
    r->state = KVL_REACH_DOWN;
    r->watching = false;
    r->confirming = false;
    r->have_down_seq = false;
}

int64_t kvl_reach_timeout(const kvl_reach_t *r)
{
    if (r->n_rtt == 0) {
        return r->normal_ms;
    }
    int64_t v[KVL_REACH_RTTS];
    uint32_t n = r->n_rtt;
    memcpy(v, r->rtt_ms, sizeof(v));
    for (uint32_t i = 1; i < n; i++) { /* insertion sort: at most 8 */
        int64_t x = v[i];
        uint32_t j = i;
        for (; j > 0 && v[j - 1] > x; j--) {
            v[j] = v[j - 1];
        }
        v[j] = x;
    }
    int64_t median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2] + 1) / 2;
    int64_t t = 4 * median;
    t = t < r->min_ms ? r->min_ms : t;
    return t < r->normal_ms ? t : r->normal_ms;
}

static void start_round(kvl_reach_t *r, int64_t now, int64_t lost_at)
{
    r->watching = false;
    if (r->state == KVL_REACH_DOWN || r->confirming) {
        return;
    }
    r->confirming = true;
    r->round++;
    r->rounds++;
    r->c_sent = 0;
    r->c_lost = 0;
    r->c_next = now;
    r->lost_at = lost_at;
}

static void expire_watch(kvl_reach_t *r, int64_t now)
{
    if (r->watching && now >= r->watch_deadline) {
        start_round(r, now, r->watch_sent);
    }
}

void kvl_reach_sent(kvl_reach_t *r, uint32_t seq, int64_t now)
{
    expire_watch(r, now);
    r->last_seq = seq;
    r->have_last_seq = true;
    if (r->state == KVL_REACH_DOWN || r->confirming) {
        return;
    }
    r->watching = true;
    r->watch_seq = seq;
    r->watch_sent = now;
    r->watch_deadline = now + (r->patient ? r->normal_ms + 1000 : kvl_reach_timeout(r));
}

/* The place of confirmation probe seq in the current round, or -1 when it is not one of its
 * probes sent so far. */
static int round_place(const kvl_reach_t *r, uint32_t seq)
{
    if (!r->confirming || ((seq >> ROUND_SHIFT) & ROUND_MASK) != (r->round & ROUND_MASK)) {
        return -1;
    }
    uint32_t k = seq & PLACE_MASK;
    return k < r->c_sent ? (int)k : -1;
}

/* Scheduled probes' numbers run modulo 2^31: a is after b when less than half that ahead. */
static bool later(uint32_t a, uint32_t b)
{
    uint32_t d = (a - b) & ~KVL_REACH_CONFIRM_BIT;
    return d != 0 && d < 0x40000000u;
}

bool kvl_reach_answer(kvl_reach_t *r, uint32_t seq, int64_t rtt_ns, int64_t now)
{
    KVL_UNUSED(now);
    if (kvl_reach_is_confirm(seq)) {
        if (round_place(r, seq) < 0) {
            return false; /* an earlier round's: too late to count */
        }
    } else if (r->state == KVL_REACH_DOWN && r->have_down_seq && !later(seq, r->down_seq)) {
        return false; /* sent before the target was declared down */
    }
    if (rtt_ns >= 0) {
        r->rtt_ms[r->rtt_pos] = (rtt_ns + 999999) / 1000000;
        r->rtt_pos = (r->rtt_pos + 1) % KVL_REACH_RTTS;
        r->n_rtt += r->n_rtt < KVL_REACH_RTTS;
    }
    if (r->watching && seq == r->watch_seq) {
        r->watching = false;
    }
    r->confirming = false;
    bool came_up = r->state == KVL_REACH_DOWN;
    r->state = KVL_REACH_UP;
    return came_up;
}

void kvl_reach_failed(kvl_reach_t *r, uint32_t seq, int64_t now)
{
    if (kvl_reach_is_confirm(seq)) {
        int k = round_place(r, seq);
        if (k >= 0) {
            r->c_lost |= 1u << k;
        }
        return;
    }
    if (r->watching && seq == r->watch_seq) {
        start_round(r, now, r->watch_sent);
    }
}

static bool round_lost(const kvl_reach_t *r)
{
    return r->c_sent == r->confirm_n && r->c_lost == (1u << r->confirm_n) - 1;
}

kvl_reach_action_t kvl_reach_poll(kvl_reach_t *r, int64_t now, uint32_t *seq)
{
    expire_watch(r, now);
    if (!r->confirming) {
        return KVL_REACH_NONE;
    }
    for (uint32_t k = 0; k < r->c_sent; k++) {
        if ((r->c_lost & (1u << k)) == 0 && now >= r->c_deadline[k]) {
            r->c_lost |= 1u << k;
        }
    }
    if (r->c_sent < r->confirm_n && now >= r->c_next) {
        uint32_t k = r->c_sent++;
        r->c_deadline[k] = now + kvl_reach_timeout(r);
        r->c_next = now + r->spacing_ms;
        *seq = confirm_seq(r->round, k);
        return KVL_REACH_SEND;
    }
    if (round_lost(r)) {
        r->confirming = false;
        r->state = KVL_REACH_DOWN;
        r->rounds_down++;
        r->down_seq = r->last_seq;
        r->have_down_seq = r->have_last_seq;
        return KVL_REACH_WENT_DOWN;
    }
    return KVL_REACH_NONE;
}

int64_t kvl_reach_next(const kvl_reach_t *r)
{
    int64_t next = INT64_MAX;
    if (r->watching) {
        next = r->watch_deadline;
    }
    if (!r->confirming) {
        return next;
    }
    if (round_lost(r)) {
        return 0;
    }
    if (r->c_sent < r->confirm_n && r->c_next < next) {
        next = r->c_next;
    }
    for (uint32_t k = 0; k < r->c_sent; k++) {
        if ((r->c_lost & (1u << k)) == 0 && r->c_deadline[k] < next) {
            next = r->c_deadline[k];
        }
    }
    return next;
}
