/*
 * http_role.h — the roles of the HTTP server's users and tokens, in increasing power: a
 * route names the least role it needs. Apart from http.h so that the users' store
 * (http_auth.h) needs nothing else of the server.
 */
#ifndef KVL_HTTP_ROLE_H
#define KVL_HTTP_ROLE_H

typedef enum {
    KVL_ROLE_NONE = 0, /* a route anyone may read (none is, but the kiosk link) */
    KVL_ROLE_VIEWER,
    KVL_ROLE_OPERATOR,
    KVL_ROLE_ADMIN,
} kvl_role_t;

#endif
