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
    kvl_engine_t *e = ctx;
    kvl_engine_stats_t before, after;
    kvl_engine_get_stats(e, &before);
    int rc = kvl_engine_batch(e, b);
    if (rc != 0) {
        return rc;
    }
    kvl_engine_get_stats(e, &after);
    kvl_sink_result_t res = {.values = (size_t)(after.samples - before.samples),
                             .stale = (size_t)(after.stale - before.stale)};
    done(token, &res);
    return 0;
}

static void engine_on_event(void *ctx, const kvl_sink_event_t *ev)
{
    kvl_engine_event(ctx, ev);
}

const kvl_sink_t kvl_engine_sink = {
    .name = "rule engine", .on_batch = engine_on_batch, .on_event = engine_on_event};
