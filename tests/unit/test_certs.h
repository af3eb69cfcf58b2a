/*
 * test_certs.h — where the TLS tests (test_tls.c, test_stream.c) find their certificates:
 * the folder tests/tls/make-test-certs.sh fills at test time (a ctest fixture), named by
 * KVL_TLS_CERTS. test_certs_init() in main() reads it (0, or 1 with a message when unset);
 * cert_path("agent-a.crt") is a file in it (eight results stay valid at once).
 */
#ifndef KVL_TEST_CERTS_H
#define KVL_TEST_CERTS_H

#include <stdio.h>
#include <stdlib.h>

static char certs[512];

static int test_certs_init(void)
{
    const char *dir = getenv("KVL_TLS_CERTS");
    if (dir == NULL) {
        fprintf(stderr, "KVL_TLS_CERTS is not set (ctest sets it; see tests/CMakeLists.txt)\n");
        return 1;
    }
    snprintf(certs, sizeof(certs), "%s", dir);
    return 0;
}

static const char *cert_path(const char *name)
{
    static char paths[8][640];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, 640, "%s/%s", certs, name);
    return p;
}

#endif
