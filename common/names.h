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

/* Writes the file-safe form of `name` into out (NUL-terminated). Returns the length, or
 * KVL_EINVAL if it does not fit. */
int kvl_name_file_safe(const char *name, char *out, size_t outlen);

#endif
