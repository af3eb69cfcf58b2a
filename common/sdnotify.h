/*
 * sdnotify.h — telling systemd how a daemon is (a unit of Type=notify): READY=1 once it
 * serves, STATUS= lines, STOPPING=1 when it stops, and WATCHDOG=1 from the daemon's loop at
 * half the unit's WatchdogSec= (systemd sets WATCHDOG_USEC), so a loop that hangs stops
 * pinging and systemd restarts the daemon. Not started by systemd (no NOTIFY_SOCKET), all
 * of it does nothing. libsystemd's sd_notify is the only one used; one per process, on the
 * loop's thread.
 */
#ifndef KVL_SDNOTIFY_H
#define KVL_SDNOTIFY_H

#include <uv.h>

/* READY=1 with STATUS=status, and the watchdog's pings on loop when the unit asks for them
 * (an unreferenced timer: it never keeps the loop running). Once; a second call only sends
 * the status. */
void kvl_sd_ready(uv_loop_t *loop, const char *status);

/* STATUS=status (a line `systemctl status` shows). */
void kvl_sd_status(const char *status);

/* What a daemon does with SIGHUP (an operator's reflex, systemctl reload's signal) until it
 * can reload: one warning line, for `module` and `id`, and it runs on unchanged. */
void kvl_sd_reload_refused(const char *module, const char *id);

/* STOPPING=1 and the watchdog's timer closed (the loop must run afterwards to finish it). */
void kvl_sd_stopping(void);

#endif
