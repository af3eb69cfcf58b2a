/*
 * fuzz_config.c — libFuzzer target for the configuration parsers: the input, made into a
 * string, is parsed as agent.yaml (kvl_agent_cfg_parse) and as collector.yaml
 * (kvl_collector_cfg_parse), which between them drive libyaml and every field type of
 * common/cfg.c.
 *
 * Beyond "no crash, no leak, no sanitizer report": a failure always comes with a message
 * of the form "name:line:column: ..." (or "name: ..."), and a configuration that parses
 * keeps the rules the parsers enforce (unique non-empty device names, timeouts that fit
 * the interval, at least one archive and consolidation; the trap receiver's port, engine IDs
 * and credential sets). A broken rule calls abort().
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_config.h"
#include "collector_config.h"
#include "fuzz_check.h"
#include "kvl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_agent(const kvl_agent_cfg_t *c)
{
    CHECK(c->id != NULL && c->site != NULL && c->ship.collector != NULL);
    CHECK(c->ship.collector_host[0] != '\0' && c->ship.collector_port != 0);
    for (size_t i = 0; i < c->snmp.n_devices; i++) {
        const kvl_device_cfg_t *d = &c->snmp.devices[i];
        CHECK(d->name != NULL && d->name[0] != '\0' && d->address != NULL);
        CHECK(d->community != NULL);
        CHECK(d->port >= 1 && d->port <= 65535);
        CHECK(d->version == KVL_SNMP_V1 || d->version == KVL_SNMP_V2C || d->version == KVL_SNMP_V3);
        CHECK(d->timeout_ms * (d->retries + 1) < d->interval_ms);
        for (size_t k = 0; k < i; k++) {
            CHECK(strcmp(c->snmp.devices[k].name, d->name) != 0);
        }
    }
    const kvl_trap_cfg_t *t = &c->traps; /* trap_config.h */
    CHECK(!t->enabled || (t->port != 0 && t->host[0] != '\0'));
    CHECK(t->engine_id.len >= 5 && t->engine_id.len <= KVL_TRAP_ENGINE_ID_MAX);
    for (size_t i = 0; i < t->n_engine_ids; i++) {
        CHECK(t->engine_ids[i].len >= 5 && t->engine_ids[i].len <= KVL_TRAP_ENGINE_ID_MAX);
    }
    for (size_t i = 0; i < t->n_cred_names; i++) {
        CHECK(t->creds[i] != NULL && strcmp(t->creds[i]->name, t->cred_names[i]) == 0);
    }
    CHECK(t->max_per_second >= 1 && t->max_per_second <= 1000000);
    const kvl_capture_cfg_t *k = &c->capture; /* capture_config.h */
    if (k->enabled) {
        CHECK((k->n_interfaces > 0) != (k->file != NULL));
        for (size_t i = 0; i < k->n_interfaces; i++) {
            CHECK(k->interfaces[i][0] != '\0' && strlen(k->interfaces[i]) <= 15);
        }
        CHECK(k->sketch_size >= k->top_n && k->active_timeout_ms >= k->idle_timeout_ms);
        CHECK(k->snaplen >= 64 && k->sampling >= 1 && k->max_flows >= 16);
        for (size_t i = 0; i < k->n_local; i++) {
            CHECK((k->local[i].ver == 4 && k->local[i].len <= 32) ||
                  (k->local[i].ver == 6 && k->local[i].len <= 128));
        }
    }
}

static void check_collector(const kvl_collector_cfg_t *c)
{
    CHECK(c->id != NULL && c->listen != NULL && c->data_dir != NULL);
    CHECK(c->listen_port != 0);
    CHECK(c->n_archives >= 1 && c->archives != NULL);
    for (size_t i = 0; i < c->n_archives; i++) {
        const kvl_archive_spec_t *a = &c->archives[i];
        CHECK(a->resolution_ms == 0 || a->resolution_ms >= 1000);
        CHECK(a->retention_ms > 0 && a->retention_ms >= a->resolution_ms);
    }
    CHECK(c->consolidations != NULL && c->consolidations[0] != NULL);
    CHECK(c->max_frame >= 1024);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';

    char err[1024];
    err[0] = '\0';
    kvl_agent_cfg_t *a = kvl_agent_cfg_parse("f.yaml", text, err, sizeof(err));
    if (a != NULL) {
        check_agent(a);
        kvl_agent_cfg_free(a);
    } else {
        fuzz_check_position(err);
    }

    err[0] = '\0';
    kvl_collector_cfg_t *c = kvl_collector_cfg_parse("f.yaml", text, err, sizeof(err));
    if (c != NULL) {
        check_collector(c);
        kvl_collector_cfg_free(c);
    } else {
        fuzz_check_position(err);
    }
    free(text);
    return 0;
}
