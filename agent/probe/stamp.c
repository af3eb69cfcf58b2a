/*
 * stamp.c — STAMP packets, error estimates, the four-timestamp arithmetic and the clock's
 * synchronisation state (see stamp.h). No sockets: probe_stamp.c does the I/O.
 */
#include "stamp.h"

#include <string.h>
#include <sys/timex.h>

#define NTP_UNIX_OFFSET 2208988800ull /* seconds from 1900-01-01 to 1970-01-01 */
#define NS 1000000000ll

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t get64(const uint8_t *p)
{
    return ((uint64_t)get32(p) << 32) | get32(p + 4);
}

uint64_t kvl_stamp_ntp_from_ns(int64_t unix_ns)
{
    if (unix_ns < 0) {
        unix_ns = 0;
    }
    uint64_t sec = (uint64_t)(unix_ns / NS) + NTP_UNIX_OFFSET;
    uint64_t frac = ((uint64_t)(unix_ns % NS) << 32) / (uint64_t)NS;
    return (sec << 32) | (frac & 0xffffffffu);
}

int64_t kvl_stamp_ns_from_ntp(uint64_t ntp)
{
    /* Era 0 only (until 2036): seconds below the 1970 offset are before the Unix epoch. */
    int64_t sec = (int64_t)(ntp >> 32) - (int64_t)NTP_UNIX_OFFSET;
    uint64_t frac = ntp & 0xffffffffu;
    /* Rounded to the nearest nanosecond, so ns -> ntp -> ns is exact. */
    int64_t ns = (int64_t)((frac * (uint64_t)NS + (1ull << 31)) >> 32);
    return sec * NS + ns;
}

int64_t kvl_stamp_ns_from_ptp(uint64_t ptp)
{
    uint64_t ns = ptp & 0xffffffffu;
    if (ns > 999999999u) {
        ns = 999999999u; /* not a valid PTP value; clamped so arithmetic stays bounded */
    }
    return (int64_t)(ptp >> 32) * NS + (int64_t)ns;
}

uint16_t kvl_stamp_err_encode(bool synced, int64_t err_ns)
{
    /* err = Multiplier x 2^(Scale - 32) s: in units of 2^-32 s the error is err_ns x 2^32 /
     * 1e9; the smallest Scale whose Multiplier (rounded up) fits in 8 bits. */
    if (err_ns < 1) {
        err_ns = 1;
    }
    long double units = (long double)err_ns * 4294967296.0L / 1e9L;
    unsigned scale = 0;
    long double m = units;
    while (scale < 63 && m > 255.0L) {
        scale++;
        m /= 2.0L;
    }
    unsigned mult = (unsigned)m;
    if ((long double)mult < m) {
        mult++;
    }
    if (mult > 255) {
        mult = 255;
    }
    if (mult == 0) {
        mult = 1;
    }
    return (uint16_t)((synced ? 0x8000u : 0u) | (scale << 8) | mult);
}

void kvl_stamp_err_decode(uint16_t v, kvl_stamp_err_t *out)
{
    out->synced = (v & 0x8000u) != 0;
    out->ptp = (v & 0x4000u) != 0;
    unsigned scale = (v >> 8) & 0x3fu;
    unsigned mult = v & 0xffu;
    if (mult == 0) {
        out->err_ns = -1;
        return;
    }
    long double e = (long double)mult * 1e9L;
    for (unsigned i = 0; i < scale; i++) {
        e *= 2.0L;
    }
    e /= 4294967296.0L;
    out->err_ns = e > 9.2e18L ? INT64_MAX : (int64_t)(e + 0.999999L);
}

int kvl_stamp_sender_encode(uint8_t *buf, size_t len, uint32_t seq, uint64_t t1_ntp, uint16_t err)
{
    if (len < KVL_STAMP_BASE || len > KVL_STAMP_MAX) {
        return -1;
    }
    memset(buf, 0, len);
    put32(buf, seq);
    put64(buf + 4, t1_ntp);
    put16(buf + 12, err);
    return (int)len;
}

int kvl_stamp_sender_parse(const uint8_t *buf, size_t len, kvl_stamp_sender_pkt_t *out)
{
    if (len < KVL_STAMP_MIN_RX || len > KVL_STAMP_MAX) {
        return -1;
    }
    out->seq = get32(buf);
    out->t1 = get64(buf + 4);
    out->err = get16(buf + 12);
    return 0;
}

int kvl_stamp_reflect(uint8_t *out, size_t outcap, size_t rx_len, const kvl_stamp_sender_pkt_t *in,
                      uint64_t t2_ntp, uint16_t err, uint8_t ttl)
{
    size_t len = rx_len < KVL_STAMP_BASE ? KVL_STAMP_BASE : rx_len;
    if (len > KVL_STAMP_MAX || len > outcap) {
        return -1;
    }
    memset(out, 0, len);
    put32(out, in->seq); /* stateless */
    put16(out + 12, err);
    put64(out + 16, t2_ntp);
    put32(out + 24, in->seq);
    put64(out + 28, in->t1);
    put16(out + 36, in->err);
    out[40] = ttl;
    return (int)len;
}

void kvl_stamp_reflect_set_t3(uint8_t *out, uint64_t t3_ntp)
{
    put64(out + 4, t3_ntp);
}

int kvl_stamp_reflector_parse(const uint8_t *buf, size_t len, kvl_stamp_reflector_pkt_t *out)
{
    if (len < KVL_STAMP_BASE || len > KVL_STAMP_MAX) {
        return -1;
    }
    out->seq = get32(buf);
    out->t3 = get64(buf + 4);
    out->err = get16(buf + 12);
    out->t2 = get64(buf + 16);
    out->sender_seq = get32(buf + 24);
    out->t1 = get64(buf + 28);
    out->sender_err = get16(buf + 36);
    out->ttl = buf[40];
    return 0;
}

void kvl_stamp_times(int64_t t1, int64_t t2, int64_t t3, int64_t t4, bool local_synced,
                     int64_t local_err_ns, uint16_t refl_err, int64_t max_err_ns,
                     kvl_stamp_times_t *out)
{
    memset(out, 0, sizeof(*out));
    int64_t rtt = (t4 - t1) - (t3 - t2);
    out->rtt_ns = rtt >= 0 ? rtt : -1;
    kvl_stamp_err_t re;
    kvl_stamp_err_decode(refl_err, &re);
    if (!local_synced || !re.synced || re.ptp || re.err_ns < 0 || local_err_ns < 0) {
        return;
    }
    /* Each bounded first, so the sum cannot overflow. */
    if (re.err_ns > max_err_ns || local_err_ns > max_err_ns ||
        local_err_ns + re.err_ns > max_err_ns) {
        return;
    }
    int64_t sum = local_err_ns + re.err_ns;
    out->oneway = true;
    out->err_ns = sum;
    out->fwd_ns = t2 - t1;
    out->bwd_ns = t4 - t3;
}

void kvl_clock_sync_from_timex(int rc, int status, long maxerror_us, long esterror_us,
                               int64_t max_err_ns, kvl_clock_sync_t *out)
{
    out->err_ns = esterror_us < 0 ? -1 : (int64_t)esterror_us * 1000;
    out->maxerr_ns = maxerror_us < 0 ? -1 : (int64_t)maxerror_us * 1000;
    out->synced = false;
    if (rc < 0) {
        out->why = "ntp_adjtime failed";
    } else if (rc == TIME_ERROR || (status & STA_UNSYNC)) {
        out->why = "kernel clock unsynchronised (STA_UNSYNC)";
    } else if (out->maxerr_ns < 0 || out->maxerr_ns > max_err_ns) {
        out->why = "kernel maxerror above the limit";
    } else {
        out->synced = true;
        out->why = "kernel clock synchronised";
        /* The estimate claimed on the wire is the bound, not the (smaller) estimate. */
        out->err_ns = out->maxerr_ns;
    }
}

void kvl_clock_sync_read(int mode, int64_t assumed_err_ns, int64_t max_err_ns,
                         kvl_clock_sync_t *out)
{
    if (mode == KVL_CLOCK_ASSUMED) {
        out->synced = true;
        out->err_ns = out->maxerr_ns = assumed_err_ns;
        out->why = "synchronisation assumed by configuration";
        return;
    }
    if (mode == KVL_CLOCK_NONE) {
        out->synced = false;
        out->err_ns = out->maxerr_ns = -1;
        out->why = "synchronisation never claimed (configuration)";
        return;
    }
    struct timex tx;
    memset(&tx, 0, sizeof(tx));
    int rc = ntp_adjtime(&tx);
    kvl_clock_sync_from_timex(rc, tx.status, tx.maxerror, tx.esterror, max_err_ns, out);
}
