/*
 * classify.h — application protocols of flows with nDPI (libndpi 4.2; classify.c is the only
 * file that includes its headers), behind the flow table's classifier seam (flows.h).
 *
 * A flow takes a classification slot when it starts (at most `max_flows` at once; a flow
 * finding none stays unclassified, counted); its packets go to nDPI until nDPI decides or
 * `give_up` packets have gone by or its TCP connection closes (FIN, RST: flows.c), then
 * nDPI's guess (by port) is taken, or unknown. The
 * decision frees the slot at once, so nDPI's memory lives only while a flow is undecided.
 * Memory: at most max_flows * (nDPI's flow state, 688 bytes in 4.2, plus what nDPI hangs on
 * it while it works) plus 8 bytes a slot; the detection module itself (its protocol tables,
 * a few MiB) once.
 *
 * Application ids are nDPI's protocol ids (0: unknown): the application protocol when nDPI
 * names one (e.g. YouTube over TLS), else the master one (TLS).
 */
#ifndef KVL_CAPTURE_CLASSIFY_H
#define KVL_CAPTURE_CLASSIFY_H

#include <stddef.h>
#include <stdint.h>

#include "flows.h"
#include "sketch.h"

typedef struct kvl_classify kvl_classify_t;

typedef struct kvl_classify_stats {
    uint64_t decided; /* flows nDPI named within give_up packets */
    uint64_t guessed; /* flows given up and named by nDPI's guess */
    uint64_t unknown; /* flows given up unnamed */
    uint64_t no_slot; /* flows that found every slot taken */
    uint64_t in_use;  /* slots taken now */
} kvl_classify_stats_t;

/* max_flows: slots (>= 1); give_up: packets before a flow is given up (>= 1); names: counters
 * of the names' sketch (>= 1). NULL with a sentence in err when nDPI cannot start or memory is
 * short. */
kvl_classify_t *kvl_classify_new(size_t max_flows, unsigned give_up, size_t names, char *err,
                                 size_t errlen);
void kvl_classify_free(kvl_classify_t *c); /* NULL-safe; releases every slot */

/* The names nDPI read from decided flows (TLS and QUIC server names, HTTP Host, DNS query
 * names), by connections, in a space-saving sketch of `names` counters (sketch.h: a count is
 * never below the truth and above it by at most its error, <= connections / names). A name
 * longer than KVL_SKETCH_KEY bytes keeps its last KVL_SKETCH_KEY - 1 bytes after a '~' (the
 * end of a name tells its domain). */
typedef struct kvl_classify_name {
    char name[KVL_SKETCH_KEY + 1];
    uint64_t connections, error;
} kvl_classify_name_t;
/* The at most n names with the most connections since the last reset, most first. */
size_t kvl_classify_top_names(const kvl_classify_t *c, kvl_classify_name_t *out, size_t n);
/* Starts a new interval of names. */
void kvl_classify_names_reset(kvl_classify_t *c);

/* The seam flows.h calls (ctx = c). */
void kvl_classify_seam(kvl_classify_t *c, kvl_flows_classifier_t *out);
void kvl_classify_get_stats(const kvl_classify_t *c, kvl_classify_stats_t *out);

#endif
