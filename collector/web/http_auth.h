/*
 * http_auth.h — who may use the HTTP server: users (a users file, one line per user,
 * `name:role:hash` with a yescrypt hash from crypt(3), like /etc/shadow's field), API tokens
 * (a tokens file, `name:role:sha256-hex` of a 256-bit random token that is shown once), and
 * browser sessions (in memory, each with its CSRF token, ending after the session TTL).
 *
 * The files are read at kvl_http_auth_new and read again when they change (checked at each
 * lookup), so `kaaval-collector --add-user` takes effect without a restart. Lookups are
 * thread-safe (one mutex); password checks run crypt(3) outside it. Writing the files
 * (kvl_http_users_set, kvl_http_tokens_add) is for the command line: a new file written
 * beside the old with mode 0600, synced, renamed over it.
 */
#ifndef KVL_HTTP_AUTH_H
#define KVL_HTTP_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "http_role.h"

#define KVL_HTTP_SID_LEN 64 /* hex characters of a session id, a CSRF token */

typedef struct kvl_http_auth_db kvl_http_auth_db_t;

/* "viewer", "operator", "admin" ("none" for KVL_ROLE_NONE). */
const char *kvl_http_role_name(kvl_role_t r);
/* Returns 0 and the role for "viewer", "operator" or "admin"; else KVL_EINVAL. */
int kvl_http_role_parse(const char *s, kvl_role_t *out);

/* Missing files are empty (nobody may log in yet); an unreadable or malformed one is an
 * error naming the file and line. */
int kvl_http_auth_new(const char *users_file, const char *tokens_file, int64_t session_ttl_ms,
                      kvl_http_auth_db_t **out, char *err, size_t errlen);
void kvl_http_auth_free(kvl_http_auth_db_t *db);

/* The user's role when the password matches, else KVL_ROLE_NONE (unknown users cost the same
 * time as known ones). */
kvl_role_t kvl_http_auth_password(kvl_http_auth_db_t *db, const char *user, const char *password);
/* The token's role and name (copied into name, len bytes), else KVL_ROLE_NONE. */
kvl_role_t kvl_http_auth_token(kvl_http_auth_db_t *db, const char *token, char *name, size_t len);

/* Starts a session: writes its id and CSRF token (KVL_HTTP_SID_LEN hex + NUL each). At most
 * 4096 sessions live; the oldest ends when a new one would pass that. Returns 0 or
 * KVL_EIO (no randomness). */
int kvl_http_session_new(kvl_http_auth_db_t *db, const char *user, kvl_role_t role,
                         char sid[KVL_HTTP_SID_LEN + 1], char csrf[KVL_HTTP_SID_LEN + 1]);
/* The live session's role, as the users file gives its user's role now (user and CSRF token
 * copied out), else KVL_ROLE_NONE (also when the user is no longer in the file). */
kvl_role_t kvl_http_session_get(kvl_http_auth_db_t *db, const char *sid, char *user, size_t len,
                                char csrf[KVL_HTTP_SID_LEN + 1]);
void kvl_http_session_end(kvl_http_auth_db_t *db, const char *sid);

/* [{"name", "role", "kind": "user"|"token"}, ...] of both files as now (no hashes). */
json_t *kvl_http_auth_list(kvl_http_auth_db_t *db);

/* Whether a and b are the same string, in a time that does not depend on where they differ. */
int kvl_http_secret_eq(const char *a, const char *b);

/* Adds or replaces user `name` with a fresh yescrypt hash of password. Returns 0, or a
 * negative KVL_E* with a sentence in err. */
int kvl_http_users_set(const char *file, const char *name, kvl_role_t role, const char *password,
                       char *err, size_t errlen);
/* Adds or replaces token `name`: writes the new token ("kvl_" + 64 hex) into token (at least
 * 69 bytes) and stores its SHA-256. Returns 0 or a negative KVL_E* with err. */
int kvl_http_tokens_add(const char *file, const char *name, kvl_role_t role, char *token,
                        size_t tokenlen, char *err, size_t errlen);

#endif
