/* access.h: the access rules of every request (see access.c), and the
 * CORS answer that goes with them. */
#ifndef LS_ACCESS_H
#define LS_ACCESS_H
#include <stdint.h>
#include "core/auth.h"
#include "core/errors.h"
#include "core/protocol.h"
#include "core/request.h"

/* What an allowed request was granted. */
struct access {
	int64_t expires_ms;   /* when the token stops being accepted (exp + auth_skew):
	                       * live reads end then; 0: no token */
	int credentialed;       /* a right came from the token or the user: the answer is private */
	int has_principal;      /* a POST with producer headers by a known writer: */
	unsigned char principal[16]; /* SHA-256 (first 16 bytes) of "t:" sub of the token,
	                         * else of "u:" the web server's user */
};

/* Decides q under the configuration and keys of ctx. With auth on, a POST
 * with producer headers from a token or a web server user gets a principal
 * (producer state is kept per principal, so no writer can lock another's
 * producer out with a high epoch). Returns E_OK with
 * *out, or the error of a denial with resp filled (401 with
 * WWW-Authenticate, or 403, each with a one-line reason) and one log line
 * (front, method, path, sub, reason; never the token). */
enum proto_err access_check(const struct proto_ctx *ctx, const struct req *q, struct access *out,
                            struct proto_response *resp);

/* For the control APIs (core/subs.c), which access_check lets through:
 * whether q's credential grants each right over every stream path the
 * pattern may match (a path without wildcards is just that path), by the
 * same sources as access_check. Returns E_OK, or the denial with resp
 * filled and one log line. */
struct access_need {
	enum right right;
	const char *pattern;
	size_t len;
};
enum proto_err access_check_cover(const struct proto_ctx *ctx, const struct req *q,
                                  const struct access_need *need, size_t n, struct access *out,
                                  struct proto_response *resp);

/* Whether origin is one of the words of cors_origins (ignoring case):
 * access_origin_listed(cfg, "*") says whether any page may read. */
int access_origin_listed(const struct config *cfg, const char *origin);

#endif
