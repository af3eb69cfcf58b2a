/*
 * server.c — agent connections at the collector (see ingest.h): the room's design, start
 * (listen, replay) and stop.
 *
 * Files: conn.c (connections, limits, TLS, timeouts), protocol.c (frames → batches),
 * agents.c (per-agent state, definitions, queues), apply.c (journal positions, acks,
 * batches applied in order), replay.c (the journal at start), journal.c (the journal
 * itself), watch.c on liveness.c (agents lost and back: heartbeats, agent_lost/agent_back,
 * late events, <data_dir>/_agents.state); ingest_internal.h holds what they share.
 *
 * Per connection: a frame reader, TLS, timers (handshake, then idle), and whether it is
 * being read. Per agent id, across connections (agent_state_t): its site, the series
 * definitions of its current connection (ids are small and dense, so plain arrays), its
 * positions per lane (journaled, acknowledged) and in the journal (applied), and the queue
 * of its batches waiting for the sinks, one batch with them at a time, in order.
 *
 * The path of a batch (journal.h has the why):
 *   read → decode → definitions → checked against them (so a batch that does not fit its
 *   definitions closes the connection before anything is written)
 *   → journal append (BATCH record, its segment held) → the agent's queue
 *   → group commit on disk (on_synced): Ack to the agent's current connection, and the
 *     batch may go to the sinks (sink.h; the RRD store is one) → every sink's `done`:
 *     APPLIED record, segment released.
 * So an agent is acknowledged as soon as its batch is on disk in the journal, before the
 * sinks have it; the sinks follow in order, and after a crash the journal's replay
 * (replay.c) gives them what was not applied yet, before any agent is accepted. A batch
 * whose seq is already journaled (resent after a reconnect) is acknowledged (once the
 * journal has it on disk) and not written again; the journal keeps these positions across
 * restarts, so Welcome tells an agent where to resume.
 *
 * A sink's failure that can pass (the archives' disk read-only or full; sink.h) leaves the
 * batch unapplied, first in its agent's queue and in the journal, and pauses applying for
 * that agent until a retry (1 s doubling to 30 s) succeeds (apply.c); a stop leaves it in
 * the journal for the next start.
 *
 * Bounds: the journal is the buffer between agents and sinks. A batch waiting for the
 * sinks is kept decoded in memory while its agent has fewer than
 * MEM_AGENT_HIGH such and all agents fewer than MEM_SAMPLES_HIGH samples; otherwise it is
 * "spilled": only its place in the journal is kept (with a reference to its connection's
 * definitions) and it is read back on the thread pool when its turn comes. Nobody is read
 * (TCP backpressure) while the journal is above journal_max_bytes (segments go only when
 * all their batches are applied) or more than BACKLOG_HIGH bytes wait for the disk; an
 * agent with QUEUE_HIGH batches waiting is not read until QUEUE_LOW. Connections before their
 * Hello take handshake slots (max_handshakes, max_handshakes_per_address; when full the oldest
 * with the least progress is closed: conn.c); agents past it, max_connections (more are
 * refused at the Hello). No frame for idle_timeout (time spent not reading, for backpressure,
 * does not count): closed. Lines a peer can repeat are rate-limited per reason (conn.c).
 *
 * TLS (common/tls.h, unless `insecure: true`): each connection has a session between the
 * socket and the frame reader (tls_read, send_msg); the timer covers the handshake.
 * The agent id a Hello claims must equal the CN of the certificate the handshake verified
 * (check_identity); otherwise the agent gets a Refusal and the connection closes.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ingest_internal.h"
#include "kvl.h"
#include "log.h"

static void on_server_closed(uv_handle_t *h);

int kvl_ingest_new(uv_loop_t *loop, const kvl_collector_cfg_t *cfg, const kvl_sinks_t *sinks,
                   kvl_ingest_t **out, char *err, size_t errlen)
{
    *out = NULL;
    kvl_ingest_t *in = calloc(1, sizeof(*in));
    if (in == NULL) {
        snprintf(err, errlen, "out of memory");
        return KVL_ENOMEM;
    }
    in->loop = loop;
    in->cfg = cfg;
    in->sinks = sinks;
    in->journal_closed = true; /* until it is open */
    if (cfg->tls.insecure) {
        KVL_LOG_WARN("ingest", cfg->listen,
                     "INSECURE: plain TCP (insecure: true); agents are not authenticated, any "
                     "peer may claim any agent id, and nothing is encrypted");
    } else {
        char why[512];
        in->tls_ctx = kvl_tls_ctx_new(KVL_TLS_SERVER, cfg->tls.ca, cfg->tls.cert, cfg->tls.key, why,
                                      sizeof(why));
        if (in->tls_ctx == NULL) {
            snprintf(err, errlen, "%s: TLS: %s", cfg->listen, why);
            free(in);
            return KVL_ETLS;
        }
        KVL_LOG_INFO("ingest", cfg->listen, "mutual TLS as %s; agents need a certificate from %s",
                     kvl_tls_ctx_subject(in->tls_ctx), cfg->tls.ca);
    }
    uv_tcp_init(loop, &in->server);
    in->server.data = in;
    uv_timer_init(loop, &in->retry_timer);
    in->retry_timer.data = in;
    ingest_sweep_start(in); /* releases the definitions of agents gone */
    ingest_watch_start(in); /* agents lost and back */
    struct sockaddr_storage addr;
    int rc = uv_ip4_addr(cfg->listen_host, cfg->listen_port, (struct sockaddr_in *)&addr);
    if (rc != 0) {
        rc = uv_ip6_addr(cfg->listen_host, cfg->listen_port, (struct sockaddr_in6 *)&addr);
    }
    if (rc == 0) {
        rc = uv_tcp_bind(&in->server, (const struct sockaddr *)&addr, 0);
    }
    if (rc == 0) {
        /* A deep accept queue: a burst of connections (a flood, or every agent after a
         * restart) waits there for the handshake slots rather than having SYNs dropped,
         * which costs a real agent a second-long retransmission (the kernel caps it at
         * net.core.somaxconn). */
        rc = uv_listen((uv_stream_t *)&in->server, 4096, ingest_on_connection);
    }
    if (rc != 0) {
        snprintf(err, errlen, "%s: cannot listen: %s%s", cfg->listen, uv_strerror(rc),
                 rc == UV_EINVAL ? " (listen needs a numeric IP address)" : "");
    }
    in->replaying = true;
    if (rc == 0 && ingest_watch_load(in) != 0) {
        snprintf(err, errlen, "out of memory reading the agents' state");
        rc = KVL_ENOMEM;
    }
    if (rc == 0) {
        rc = ingest_replay_start(in, err, errlen);
        in->journal_closed = in->journal == NULL || rc != 0;
    }
    if (rc != 0) {
        kvl_ingest_free(in); /* goes once the loop has closed its handles */
        return rc;
    }
    *out = in;
    ingest_replay_maybe_done(in);
    return 0;
}

/* Frees the ingest once the server and every connection (closing ones too) are gone and no
 * archive write is in flight; the journal's last commit is written then. */
void ingest_maybe_free(kvl_ingest_t *in)
{
    if (!in->freeing || !in->server_closed || !in->retry_timer_closed || in->sweep_open ||
        in->watch_open || in->watch_busy || in->live > 0 || in->writing > 0) {
        return;
    }
    if (!in->journal_closed) {
        in->journal_closed = true;
        kvl_journal_close(in->journal); /* batches still queued are replayed next time */
    } else if (in->journal != NULL && in->replaying) {
        kvl_journal_close(in->journal); /* opened, never started: freed at once */
    }
    in->journal = NULL;
    while (in->acks_head != NULL) {
        ack_wait_t *w = in->acks_head;
        in->acks_head = w->next;
        free(w);
    }
    while (in->agents != NULL) {
        agent_state_t *a = in->agents;
        in->agents = a->next;
        while (a->q_head != NULL) {
            pending_t *p = a->q_head;
            a->q_head = p->next;
            ingest_pending_free(p);
        }
        ingest_defs_free(a->defs);
        free(a->id);
        free(a);
    }
    ingest_deferred_free(in);
    kvl_tls_ctx_free(in->tls_ctx);
    free(in);
}

static void on_server_closed(uv_handle_t *h)
{
    kvl_ingest_t *in = h->data;
    in->server_closed = true;
    ingest_maybe_free(in);
}

static void on_retry_timer_closed(uv_handle_t *h)
{
    kvl_ingest_t *in = h->data;
    in->retry_timer_closed = true;
    ingest_maybe_free(in);
}

void kvl_ingest_free(kvl_ingest_t *in)
{
    if (in == NULL || in->freeing) {
        return;
    }
    in->freeing = true;
    /* A batch waiting for its retry (apply.c) stays in the journal: replayed next time. */
    uv_close((uv_handle_t *)&in->retry_timer, on_retry_timer_closed);
    ingest_sweep_stop(in);
    ingest_watch_stop(in);
    uv_close((uv_handle_t *)&in->server, on_server_closed);
    while (in->conns != NULL) {
        ingest_conn_close(in->conns, NULL);
    }
}

void kvl_ingest_stats(const kvl_ingest_t *in, kvl_ingest_stats_t *out)
{
    *out = in->stats;
    out->apply_paused_agents = in->apply_paused;
    out->connections_open = in->n_conns;
    out->agents_connected = in->n_agent_conns;
    if (!in->journal_closed) {
        kvl_journal_stats_t st;
        kvl_journal_stats(in->journal, &st);
        out->journal_commits = st.commits;
        out->journal_bytes = st.bytes;
        out->journal_backlog_bytes = st.backlog_bytes;
        out->journal_segments = st.segments;
    }
}

int kvl_ingest_port(const kvl_ingest_t *in)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getsockname(&in->server, (struct sockaddr *)&ss, &len) != 0) {
        return -1;
    }
    if (ss.ss_family == AF_INET) {
        return ntohs(((const struct sockaddr_in *)&ss)->sin_port);
    }
    return ntohs(((const struct sockaddr_in6 *)&ss)->sin6_port);
}
