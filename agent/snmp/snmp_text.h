/*
 * snmp_text.h — SNMP OCTET STRING values as text for names and labels (ifName, ifDescr,
 * ifAlias, sysName, metric group instances and label columns): one policy for every place
 * a device's string becomes a name.
 *
 * The policy: the value is cut at its first NUL; valid UTF-8 (RFC 3629: no overlong forms,
 * no surrogates, nothing above U+10FFFF) is kept as it is; each byte that does not start a
 * valid sequence becomes '?' (the next byte is looked at afresh); C0 control characters
 * and DEL become spaces; leading and trailing spaces are dropped. The result is valid
 * UTF-8 without control characters, at most n bytes long. (tests/snmprec/check_device.py
 * computes the same text independently, from the recordings.) Names become file names at
 * the collector through common/names.c, which percent-encodes every byte outside
 * [A-Za-z0-9._-]: one-to-one, so two different texts never share an archive.
 */
#ifndef KVL_SNMP_TEXT_H
#define KVL_SNMP_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* The text of the n bytes at s, as above, in a new NUL-terminated string the caller frees.
 * Returns NULL when out of memory. */
char *kvl_snmp_text_clean(const uint8_t *s, size_t n);

#endif
