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

/* A reload (SIGHUP, systemctl reload) begins: RELOADING=1. Each one ends with
 * kvl_sd_reloaded, whether the new configuration was taken or refused. */
void kvl_sd_reloading(void);

/* The reload is over: READY=1 again, with STATUS=status. */
void kvl_sd_reloaded(const char *status);

/* STOPPING=1 and the watchdog's timer closed (the loop must run afterwards to finish it). */
void kvl_sd_stopping(void);

#endif
