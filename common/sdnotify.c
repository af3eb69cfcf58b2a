/*
 * sdnotify.c — READY, STATUS, STOPPING and the watchdog's pings to systemd (sdnotify.h).
 */
#include "sdnotify.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>

#include "log.h"

static uv_timer_t watchdog;
static bool watchdog_on, ready;

static void ping(uv_timer_t *t)
{
    (void)t;
    sd_notify(0, "WATCHDOG=1");
}

void kvl_sd_ready(uv_loop_t *loop, const char *status)
{
    char msg[512];
    snprintf(msg, sizeof(msg), "%sSTATUS=%s", ready ? "" : "READY=1\n", status);
    int sent = sd_notify(0, msg);
    if (ready) {
        return;
    }
    ready = true;
    uint64_t usec = 0;
    if (sent > 0 && sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        uint64_t every_ms = usec / 2000;
        if (every_ms == 0) {
            every_ms = 1;
        }
        uv_timer_init(loop, &watchdog);
        uv_unref((uv_handle_t *)&watchdog);
        uv_timer_start(&watchdog, ping, 0, every_ms);
        watchdog_on = true;
        KVL_LOG_INFO("systemd", NULL, "ready; the watchdog's ping every %llu ms",
                     (unsigned long long)every_ms);
    } else if (sent > 0) {
        KVL_LOG_INFO("systemd", NULL, "ready (told systemd)");
    }
}

void kvl_sd_status(const char *status)
{
    char msg[512];
    snprintf(msg, sizeof(msg), "STATUS=%s", status);
    sd_notify(0, msg);
}

void kvl_sd_stopping(void)
{
    sd_notify(0, "STOPPING=1");
    if (watchdog_on) {
        watchdog_on = false;
        uv_close((uv_handle_t *)&watchdog, NULL);
    }
}

void kvl_sd_reloading(void)
{
    /* systemd wants the monotonic clock with RELOADING=1 (for its reload's bookkeeping) */
    char msg[128];
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)(uv_hrtime() / 1000));
    sd_notify(0, msg);
}

void kvl_sd_reloaded(const char *status)
{
    char msg[512];
    snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s", status);
    sd_notify(0, msg);
}
