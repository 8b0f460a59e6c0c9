/* request.h: a request parsed once, at the edge of the core, into typed and
 * validated fields. Only request.c reads the query string and raw header
 * values (make check greps for it); handlers read struct req. */
#ifndef LS_REQUEST_H
#define LS_REQUEST_H
#include <stddef.h>
#include <stdint.h>
#include "core/errors.h"
#include "core/protocol.h"
#include "core/state.h"
#include "lib/limits.h"
#include "lib/offset.h"
#include "lib/parse.h"

enum live_mode { LIVE_NONE, LIVE_LONG_POLL, LIVE_SSE };

/* A Content-Type value: the raw value (stored and echoed when safe) and its
 * parsed media type. */
struct media {
	const char *raw;            /* NULL when absent */
	int valid;                  /* raw is "type/subtype[; params]" and safe to store */
	enum media_kind kind;
	char type[LS_MAX_CONTENT_TYPE + 1];  /* lower-cased "type/subtype" when valid */
};

/* A decoded stream name. */
struct stream_name {
	char s[LS_MAX_PATH_HARD + 1];
	size_t len;
};

/* Page token of GET ?snapshot=TOKEN: "<seq>.<state id>.<hex row key>". */
struct snap_token {
	uint64_t seq, sid;
	size_t after_len;           /* 0: the first page */
	unsigned char after[STATE_MAX_ROW_KEY];
};

/* The reserved control APIs under {prefix}__ds/ (core/subs.c). */
enum ctl_route {
	CTL_NONE,          /* a stream */
	CTL_UNKNOWN,       /* under __ds/, but no API: 404 */
	CTL_JWKS,          /* __ds/jwks.json */
	CTL_SUB,           /* __ds/subscriptions/:id */
	CTL_SUB_STREAMS,   /* .../:id/streams */
	CTL_SUB_STREAM,    /* .../:id/streams/:path (path URL-encoded, %2F allowed) */
	CTL_CALLBACK,      /* .../:id/callback */
	CTL_CLAIM,         /* .../:id/claim */
	CTL_ACK,           /* .../:id/ack */
	CTL_RELEASE,       /* .../:id/release */
};
#define LS_MAX_SUB_ID 128

/* Where the request's credential came from (access.c). */
enum cred_source { CRED_NONE, CRED_BEARER, CRED_COOKIE, CRED_QUERY };

struct req {
	enum proto_method method;
	struct stream_name name;
	const char *host;           /* Host, for Location (validated where used) */
	int https;
	const char *body;
	size_t body_len;

	/* GET */
	int has_offset;
	struct offset offset;
	enum live_mode live;
	char cursor[24];            /* the client's Stream-Cursor echo; "" none */
	int snapshot;               /* ?snapshot present */
	int has_token;              /* ?snapshot=TOKEN (a later page) */
	struct snap_token token;
	const char *if_none_match;

	/* PUT */
	int state;                  /* ?state */
	uint64_t ret_age_s, ret_bytes;  /* ?retention-age, ?retention-bytes (0: none) */
	int has_ttl;
	uint64_t ttl_s;
	const char *expires_at;     /* Stream-Expires-At, safe to store; NULL: none */
	int64_t expires_ms;
	int is_fork;
	struct stream_name fork_src;
	int has_fork_offset;
	struct offset fork_offset;
	uint64_t fork_sub;

	/* PUT and POST */
	struct media ct;
	int closed;                 /* Stream-Closed: true */

	/* POST */
	int compact;                /* ?compact */
	int has_producer;
	const char *producer_id;
	size_t producer_id_len;
	uint64_t producer_epoch, producer_seq;
	const char *if_match;       /* If-Match as sent (etag_matches_strong); NULL: none */
	const char *stream_seq;     /* Stream-Seq, safe to store; NULL: none */
	size_t stream_seq_len;

	/* every method: who asks (access.c) */
	enum cred_source cred;      /* the one credential used, by precedence */
	int cred_too_long;          /* longer than LS_MAX_TOKEN: invalid */
	char cred_token[LS_MAX_TOKEN + 1];
	const char *origin;         /* Origin, NULL when absent */
	const char *user;           /* the web server's authenticated user: a usable
	                             * name (1..LS_MAX_USER printable bytes, no '/'),
	                             * or NULL */
	int metrics;                /* the request is for metrics_path, not a stream */
	enum ctl_route ctl;         /* a control API, not a stream (name is then empty) */
	char ctl_id[LS_MAX_SUB_ID + 1];  /* the subscription id: [A-Za-z0-9._~-], 1..128 */
	struct stream_name ctl_path;     /* CTL_SUB_STREAM's stream path */
	int loopback;               /* from proto_request */
	const unsigned char *who;   /* the principal whose producer ids a POST uses
	                             * (STORE_PRINCIPAL_LEN bytes, set by access_check
	                             * with auth on), or NULL: the anonymous space */
};

/* Parses and validates raw for the core's configuration (prefix, path
 * limit). Returns E_OK with *r filled, or the first error found. r borrows
 * raw's strings: it is valid while raw is. */
enum proto_err req_parse(const struct proto_request *raw, const struct config *cfg, struct req *r);

/* The Origin header of a request, or NULL (for answers made without a
 * parsed request: refusals before parsing, long-polls answered later). */
const char *req_origin(const struct proto_request *raw);

/* The kind of a media type value ("application/json; charset=utf-8" is
 * JSON). Values that do not parse are binary. */
enum media_kind media_kind_of(const char *content_type);
/* The same by the rule of releases before +json types were JSON. */
enum media_kind media_kind_legacy_of(const char *content_type);

/* Whether two Content-Type values name the same media type (parameters
 * and case aside). */
int media_same(const char *a, const char *b);

/* Writes a snapshot page token for (seq, sid, row key) into out (cap bytes). */
void snap_token_format(char *out, size_t cap, uint64_t seq, uint64_t sid,
                       const unsigned char *rk, size_t rk_len);

#endif
