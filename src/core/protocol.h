/* protocol.h: the Durable Streams protocol, independent of any transport.
 *
 * A front (FastCGI/CGI, libmicrohttpd) parses the HTTP request into a
 * struct proto_request, calls proto_handle and writes out the struct
 * proto_response it gets back. No I/O happens here; the store is the only
 * thing touched. Live reads come back as an action the front carries out:
 * wait for a commit and call proto_longpoll_* again, or stream the events
 * proto_sse_* produce. */
#ifndef LS_PROTOCOL_H
#define LS_PROTOCOL_H
#include <stddef.h>
#include <stdint.h>
#include "core/errors.h"
#include "lib/buf.h"
#include "lib/sse.h"
#include "lib/config.h"
#include "lib/offset.h"
#include "store/store.h"

enum proto_method {
	M_GET, M_HEAD, M_PUT, M_POST, M_DELETE, M_OPTIONS, M_OTHER,
};

/* The method named by an HTTP request line; M_OTHER for any other (405). */
enum proto_method proto_method(const char *name);
/* Whether a request of this method may write (and so may be queued: see
 * struct proto_ctx's on_written). */
int proto_may_write(enum proto_method m);

/* The request headers the protocol reads (and the browser may send: the
 * CORS allow list is made from this table). A front looks each one up by
 * name, or by its CGI variable, and stores the value at its index. */
enum proto_hdr {
	H_CONTENT_TYPE, H_HOST, H_IF_NONE_MATCH, H_IF_MATCH,
	H_STREAM_SEQ, H_STREAM_TTL, H_STREAM_EXPIRES_AT, H_STREAM_CLOSED,
	H_PRODUCER_ID, H_PRODUCER_EPOCH, H_PRODUCER_SEQ,
	H_FORKED_FROM, H_FORK_OFFSET, H_FORK_SUB_OFFSET,
	H_AUTHORIZATION, H_LAST_EVENT_ID, H_CACHE_CONTROL,
	H_COOKIE, H_ORIGIN,
	H__COUNT
};

struct proto_header_def {
	const char *name;    /* as sent: "Stream-Seq" */
	const char *cgi;     /* the CGI/FastCGI variable: "HTTP_STREAM_SEQ" */
	int cors;            /* listed in Access-Control-Allow-Headers */
};

/* One entry per enum proto_hdr, in its order. */
extern const struct proto_header_def proto_headers[H__COUNT];

/* What the front found in the request: raw bytes, parsed once by the core
 * (core/request.h). Header values are NULL when absent; all strings are NUL
 * terminated and owned by the front for the duration of the call. */
struct proto_request {
	enum proto_method method;
	const char *target;  size_t target_len;  /* raw path, percent-encoded, no query */
	const char *query;   size_t query_len;   /* raw query, no '?' */
	const char *h[H__COUNT];                 /* header values by enum proto_hdr */
	int https;
	/* The user the web server authenticated (REMOTE_USER; from lmstream-live
	 * only on its unix: socket), NULL when none: fills {user} in user_*. */
	const char *remote_user;
	const char *body;    size_t body_len;
	int body_too_large;  /* the front stopped reading past max_body: answer 413 */
	/* The client is on this machine: REMOTE_ADDR, as the web server saw it,
	 * is a loopback address (lmstream-live: a TCP peer on loopback whose
	 * request no proxy forwarded). Only reading the metrics cares. */
	int loopback;
	/* The front's handle on the request, given back to ctx->on_written;
	 * NULL: the front waits for this request's write (the response is not
	 * one that may be filled later, by another thread). */
	void *owner;
};

enum proto_action {
	PROTO_DONE,      /* send the response as it is */
	PROTO_WAIT,      /* long-poll: wait for a commit, then proto_longpoll_poll */
	PROTO_SSE,       /* send the headers, then stream proto_sse_step output */
	PROTO_QUEUED,    /* a write went to the writer thread: wait for ctx->on_written */
};

#define PROTO_MAX_HEADERS 24

struct proto_header {
	const char *name;    /* static string */
	char *value;         /* points into hbuf */
};

struct proto_response {
	int status;
	const char *reason;                 /* short reason phrase for logs */
	struct proto_header headers[PROTO_MAX_HEADERS];
	int nheaders;
	char hbuf[4096];                    /* storage of header values (a snapshot page token takes up to 1 KiB) */
	size_t hlen;
	struct buf body;                    /* owned: proto_response_free */
	enum proto_action action;
	enum proto_err err;                 /* the failure answered (proto_fail), E_OK for an answer */
};

/* State of one live read (long-poll or SSE) between calls. Small and fixed:
 * a waiting connection holds this and nothing else. */
struct proto_live {
	uint64_t stream_id;
	uint64_t seq;             /* next message to deliver */
	uint64_t bytes;           /* byte count at seq */
	char cursor_in[24];       /* client's cursor, "" if none */
	unsigned json : 1, base64 : 1, control_sent : 1;
	/* Snapshot then live (?snapshot&live=sse): the snapshot goes out in
	 * pages that all reflect offset snap_seq; then the read goes on from
	 * there. If the state moves on between pages, a reset control message
	 * starts the snapshot over (after two restarts, in pages of
	 * snapshot_page bytes). */
	unsigned snapshot : 1, snap_started : 1, snap_restarts : 2;
	uint64_t snap_seq, snap_bytes, snap_sid;
	size_t snap_after_len;
	unsigned char *snap_after;  /* owned: row key of the last row sent */
	size_t name_len;
	char *name;               /* owned: set for live reads, freed by proto_live_clear */
	/* SSE: a message longer than LS_SSE_PIECE_BYTES goes out as one data
	 * event written a piece per step: bytes of message seq written so far
	 * (0: none in progress), and the framing state between pieces */
	uint64_t piece_off;
	struct sse_part piece;
	int64_t expires_ms;       /* the token's expiry: the response ends then; 0: none */
	unsigned credentialed : 1;  /* the read needed a token or user: answers are private */
};

/* When a live response must end (monotonic ms, from mono_now): after
 * lifetime_ms, or when the token that allowed it expires, if sooner. */
int64_t proto_live_deadline(const struct proto_live *live, int64_t mono_now, int lifetime_ms);

/* Frees what a live read holds and zeroes it; safe on a zeroed struct. */
void proto_live_clear(struct proto_live *live);

/* Called after every commit that touched stream_id, so the front can wake
 * live readers (in this process or, through notify.h, in lmstream-live). */
typedef void (*proto_commit_hook)(void *arg, uint64_t stream_id, uint64_t txnid);

struct auth;

struct proto_ctx {
	const struct config *cfg;
	const struct auth *auth;  /* keys of auth = token (core/auth.h); NULL: none loaded */
	const char *front;        /* "fcgi", "cgi", "live": named in denial log lines */
	struct store *store;
	struct store_txn rtxn;    /* reusable read transaction of this thread */
	proto_commit_hook on_commit;
	void *hook_arg;
	struct batch *batch;      /* shared by the process's threads; NULL: commit alone */
	/* Set by a front that lets writes go without waiting for them: with it
	 * (and batch's threads running), a write is queued and proto_handle
	 * returns PROTO_QUEUED at once; on_written(req->owner) is called later,
	 * from the batch's flusher thread, when resp holds the whole answer.
	 * Until then the request (its body too) and resp are the core's. */
	void (*on_written)(void *owner);
	struct core_call *call;   /* the core's: the request it handles now (NULL once
	                           * a queued write took it) */
};

void proto_init(struct proto_ctx *ctx, const struct config *cfg, struct store *st);
void proto_fini(struct proto_ctx *ctx);

void proto_response_init(struct proto_response *r);
void proto_response_reset(struct proto_response *r);
void proto_response_free(struct proto_response *r);

/* Handles one request. Fills resp; for live reads also fills live and sets
 * resp->action. Returns resp->action, with a complete status and headers;
 * or PROTO_QUEUED, without touching resp again (ctx->on_written). */
enum proto_action proto_handle(struct proto_ctx *ctx, const struct proto_request *req,
                  struct proto_response *resp, struct proto_live *live);

/* Long-poll: after a commit (or spuriously), check again. Returns with
 * action PROTO_WAIT (nothing new yet; resp untouched) or PROTO_DONE, with
 * resp replaced as a whole: resp may still hold an earlier response. */
void proto_longpoll_poll(struct proto_ctx *ctx, const struct proto_request *req,
                         struct proto_live *live, struct proto_response *resp);
/* Long-poll deadline reached: 204 with the current offset and a cursor. */
void proto_longpoll_timeout(struct proto_ctx *ctx, const struct proto_request *req,
                            struct proto_live *live, struct proto_response *resp);

enum sse_step {
	SSE_MORE,   /* events were written and more are ready: call again */
	SSE_IDLE,   /* caught up: wait for a commit */
	SSE_END,    /* the stream closed (final events written) or vanished: finish */
};

/* Appends the next events (at most ~LS_SSE_BATCH_BYTES of messages, each
 * batch followed by a control event) to out. */
enum sse_step proto_sse_step(struct proto_ctx *ctx, struct proto_live *live, struct buf *out);

/* Adds a response header (value copied). Returns 0 or -1 when full. */
int proto_add_header(struct proto_response *r, const char *name, const char *value);

/* The value of the first header called name (case-insensitive), or NULL. */
const char *proto_get_header(const struct proto_response *r, const char *name);

/* Replaces r with the answer to a failure: its status, its one-line reason
 * as a text/plain body, Retry-After on 503 and 507, Allow on 405. The core
 * answers every failure so; fronts use it for what they refuse themselves
 * (503 when over capacity). */
void proto_fail(struct proto_response *r, enum proto_err e);

/* Whether target (a raw path, no query) is the core's: under the prefix,
 * or metrics_path exactly. A front serves anything else itself (static
 * files of lmstream-live) or refuses it. */
int proto_serves(const struct config *cfg, const char *target, size_t len);
/* Whether it is metrics_path exactly (that path's own URL). */
int proto_is_metrics_path(const struct config *cfg, const char *target, size_t len);

/* Counts a response sent (the node's lmstream_responses_total): by its
 * error when it is a failure of the table, else by its status. A front
 * calls it once per response it sends, of the core or its own. */
void proto_count(const struct proto_response *r);
void proto_count_status(int status, enum proto_err e);

/* The methods the protocol serves, for Allow and CORS preflights. */
extern const char proto_allow_methods[];

#endif
