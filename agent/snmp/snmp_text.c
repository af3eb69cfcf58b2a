/*
 * snmp_text.c — SNMP strings as text for names and labels (the policy is in snmp_text.h).
 * Pure: no I/O, one allocation per call.
 */
#include "snmp_text.h"

#include <stdlib.h>
#include <string.h>

/* The length of the valid UTF-8 sequence starting at s (n bytes available), or 0 when the
 * byte at s starts none: RFC 3629's table, so overlong forms (C0, C1, E0 80-9F, F0 80-8F),
 * surrogates (ED A0-BF) and code points above U+10FFFF (F4 90-BF, F5-FF) are refused. */
static size_t utf8_seq(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    uint8_t lo = 0x80, hi = 0xbf; /* the bounds of the second byte */
    size_t len;
    if (c < 0x80) {
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        lo = c == 0xe0 ? 0xa0 : lo;
        hi = c == 0xed ? 0x9f : hi;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        lo = c == 0xf0 ? 0x90 : lo;
        hi = c == 0xf4 ? 0x8f : hi;
    } else {
        return 0;
    }
    if (len > n || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t k = 2; k < len; k++) {
        if ((s[k] & 0xc0) != 0x80) {
            return 0;
        }
    }
    return len;
}

char *kvl_snmp_text_clean(const uint8_t *s, size_t n)
{
    const uint8_t *nul = n > 0 ? memchr(s, 0, n) : NULL;
    if (nul != NULL) {
        n = (size_t)(nul - s);
    }
    char *out = malloc(n + 1);
    if (out == NULL) {
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t len = utf8_seq(s + i, n - i);
        if (len == 0) {
            out[o++] = '?';
            i++;
        } else if (len == 1) {
            out[o++] = (s[i] < 0x20 || s[i] == 0x7f) ? ' ' : (char)s[i];
            i++;
        } else {
            memcpy(out + o, s + i, len);
            o += len;
            i += len;
        }
    }
    while (o > 0 && out[o - 1] == ' ') {
        o--;
    }
    out[o] = '\0';
    size_t lead = strspn(out, " ");
    memmove(out, out + lead, o - lead + 1);
    return out;
}
