/*
 * engine_sink.c — the rule engine as a collector sink (sink.h): a batch is evaluated at
 * once on the loop (engine.h says why that is cheap enough) and `done` is called before
 * on_batch returns; events are evaluated as they are handed over (on_event), so the
 * events a batch also carries are not evaluated twice.
 */
#include "engine.h"
#include "kvl.h"
#include "log.h"

static int engine_on_batch(void *ctx, const kvl_sink_batch_t *b, kvl_sink_done_cb done, void *token)
{
    /* Nothing to count for the ingest: its figures are about archive updates, and an
     * instant the engine skips (not newer than the last) is no refused update. */
    int rc = kvl_engine_batch(ctx, b);
    if (rc == 0) {
        done(token, NULL);
    }
    return rc;
}

static void engine_on_event(void *ctx, const kvl_sink_event_t *ev)
{
    kvl_engine_event(ctx, ev);
}

const kvl_sink_t kvl_engine_sink = {
    .name = "rule engine", .on_batch = engine_on_batch, .on_event = engine_on_event};
