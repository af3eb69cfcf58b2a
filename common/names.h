/*
 * names.h — turning device, site and interface names into file names.
 *
 * Names travel as the devices report them ("GigabitEthernet1/0/1", "ge-0/0/4.0",
 * "Slot: 0 Port: 1 Gigabit - Level"). A file name keeps letters, digits, '-', '_' and '.'
 * and writes every other byte as %XX (uppercase hex), so the mapping is one-to-one and a
 * reader can still recognise the name. An empty name becomes "%00"; a leading '.' is
 * escaped so no name is hidden or climbs out of its folder, and a leading '_' is escaped
 * so names starting with '_' stay free for kaaval's own files (e.g. "_agent").
 */
#ifndef KVL_NAMES_H
#define KVL_NAMES_H

#include <stddef.h>

/* Bounds the agent and the collector share. A name becomes one component of an archive's
 * path (a folder, or a file with ".rrd", or "_" + group + ".rrd"); file systems allow 255
 * bytes per component, so a name's file-safe form may have at most KVL_NAME_FILE_MAX. */
#define KVL_NAME_FILE_MAX 250
#define KVL_AGENT_ID_MAX 200 /* bytes of an agent id (never empty) */
#define KVL_SITE_MAX 200     /* bytes of a site name */

/* Writes the file-safe form of `name` into out (NUL-terminated). Returns the length, or
 * KVL_EINVAL if it does not fit. */
int kvl_name_file_safe(const char *name, char *out, size_t outlen);

/* The length of name's file-safe form (without writing it). */
size_t kvl_name_file_len(const char *name);

/* 0 when `name` can become an archive path component (its file-safe form has at most
 * KVL_NAME_FILE_MAX bytes); otherwise KVL_EINVAL and a sentence in why, naming `what`
 * ("interface", "device", ...) and the lengths. */
int kvl_name_check(const char *what, const char *name, char *why, size_t whylen);

#endif
