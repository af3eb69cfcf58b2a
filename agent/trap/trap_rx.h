/*
 * trap_rx.h — the agent's trap receiver: SNMP traps and informs arriving on one UDP socket
 * on the agent's libuv loop become events on the events lane (batcher.h).
 *
 * Each datagram, in this order:
 *  - its source address is looked up among the configured devices (poller.h); a source
 *    that is no configured device is counted (`unknown_source`), logged (rate-limited,
 *    with the address) and dropped: never forwarded, never answered;
 *  - at most `max_per_second` datagrams per device and second are taken, the rest counted
 *    (`rate_limited`) and dropped, so one chattering device cannot flood the events lane;
 *  - v1 and v2c (trap_pdu.h): decoded strictly (a bad packet is counted as `decode_errors`
 *    and logged, rate-limited, with the reason); the community must be the device's own
 *    (its credential set's) or one of the sets `traps.credentials` names, else it is counted
 *    (`bad_community`), logged (rate-limited, never the community itself) and dropped; a v2c
 *    inform is answered (its Response, RFC 3416 4.2.7) once accepted;
 *  - v3: authenticated and decrypted by the SNMP room (snmp_v3rx.h) with USM users made
 *    from the v3 credential sets the devices use and `traps.credentials` names; informs are
 *    answered there (this agent being the authoritative engine); failures are counted
 *    (`v3_auth_failures`) and logged, rate-limited;
 *  - an accepted trap becomes one event of the device, timed at its receipt: linkDown and
 *    linkUp with the interface named as the poller names it (`interface`, `if_index`,
 *    `admin_status`, `oper_status` when the trap carries them) and that device polled at
 *    once (kvl_poller_poll_now) so its archives show the change; coldStart, warmStart,
 *    authenticationFailure, egpNeighborLoss by those names; any other trap by its MIB name
 *    (from the MIB folders, snmp_mib.h) or its numeric OID, its varbinds as fields (object
 *    names where a MIB gives them). Every event also carries `source`, `version` and
 *    `trap_oid`. Severity: linkDown, authenticationFailure and egpNeighborLoss warning,
 *    the rest info.
 *
 * The socket is bound at kvl_trap_rx_new; when that fails (port 162 without
 * CAP_NET_BIND_SERVICE, an address in use) the agent says so in one WARN line and runs on
 * without traps. Loop thread only.
 */
#ifndef KVL_TRAP_RX_H
#define KVL_TRAP_RX_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "batcher.h"
#include "poller.h"
#include "snmp_config.h"
#include "trap_config.h"

typedef struct kvl_trap_rx kvl_trap_rx_t;

/* What the receiver works with; all must outlive it. */
typedef struct kvl_trap_rx_opts {
    const kvl_trap_cfg_t *cfg;
    const kvl_snmp_cfg_t *snmp; /* credential sets, MIB folders */
    kvl_poller_t *poller;       /* the devices, their interfaces' names, polls at once */
    kvl_batcher_t *batcher;     /* where the events go */
    const char *state_path;     /* SNMPv3 senders' latest engineBoots/Time kept here across
                                   restarts (replay protection, snmp_v3rx.c); NULL: not kept */
} kvl_trap_rx_opts_t;

/* Loads the MIB names (before the loop runs: a fraction of a second), makes the v3 users
 * and binds the socket. Returns 0 and sets *out, also when the receiver is off or could not
 * bind (then logged, and kvl_trap_rx_listening says false); or a negative code with the
 * reason in err (out of memory, a v3 user that cannot be made). */
int kvl_trap_rx_new(uv_loop_t *loop, const kvl_trap_rx_opts_t *opts, kvl_trap_rx_t **out, char *err,
                    size_t errlen);
/* Stops receiving; frees once the socket's close completes (run the loop). NULL-safe. Free
 * it before the poller and the batcher. */
void kvl_trap_rx_free(kvl_trap_rx_t *rx);

/* A reload: the configuration the receiver was made with (opts' cfg and snmp, the same
 * structs) now holds the new file's settings, with the same `listen:` (a change of it needs
 * a restart). The per-device rate limits start over (devices may have moved), the MIB
 * names are loaded again when mibs_changed, the SNMPv3 users are made again. The socket
 * stays open and the counters go on. Returns 0, or a negative code with err set (then v3
 * traps are refused until the next good reload; the rest works). */
int kvl_trap_rx_reload(kvl_trap_rx_t *rx, bool mibs_changed, char *err, size_t errlen);

/* Whether the socket is bound. */
bool kvl_trap_rx_listening(const kvl_trap_rx_t *rx);

/* Totals since the start, for the agent's own statistics (stats.c reads them through the
 * pointer kvl_trap_rx_counters returns, valid as long as the receiver). */
typedef struct kvl_trap_rx_stats {
    uint64_t received;         /* datagrams */
    uint64_t v1, v2c, v3;      /* accepted traps and informs, by version */
    uint64_t informs_answered; /* Responses sent */
    uint64_t decode_errors;
    uint64_t unknown_source;
    uint64_t bad_community;
    uint64_t v3_auth_failures;
    uint64_t rate_limited;
} kvl_trap_rx_stats_t;
const kvl_trap_rx_stats_t *kvl_trap_rx_counters(const kvl_trap_rx_t *rx);

#endif
