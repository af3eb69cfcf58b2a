/*
 * sink.c — the registry of sinks and the helpers sinks share (see sink.h): registration in
 * order, events handed to every sink, definitions looked up by id.
 */
#include "sink.h"

#include "kvl.h"

int kvl_sinks_register(kvl_sinks_t *s, const kvl_sink_t *sink, void *ctx)
{
    if (s == NULL || sink == NULL || s->n >= KVL_SINKS_MAX) {
        return KVL_EINVAL;
    }
    s->at[s->n].sink = sink;
    s->at[s->n].ctx = ctx;
    s->n++;
    return 0;
}

void kvl_sinks_event(const kvl_sinks_t *s, const kvl_sink_event_t *e)
{
    for (size_t i = 0; s != NULL && i < s->n; i++) {
        if (s->at[i].sink->on_event != NULL) {
            s->at[i].sink->on_event(s->at[i].ctx, e);
        }
    }
}

const kvl_series_def_t *kvl_sink_def(void *ctx, uint32_t id)
{
    const kvl_sink_defs_t *d = ctx;
    return d->def(d->table, id);
}

const kvl_family_t *kvl_sink_family(const kvl_sink_defs_t *d, const kvl_series_def_t *def)
{
    return def->family != 0 ? d->family(d->table, def) : NULL;
}
