/* core.h: what the modules of the protocol core share: looking streams up,
 * running writes through the batch, splitting bodies into messages, and the
 * handlers each module provides to the dispatcher (protocol.c). Internal to
 * src/core. */
#ifndef LS_CORE_H
#define LS_CORE_H
#include <stddef.h>
#include <stdint.h>
#include "core/access.h"
#include "core/errors.h"
#include "core/protocol.h"
#include "core/request.h"
#include "core/response.h"
#include "store/batch.h"
#include "store/store.h"

/* --- streams (protocol.c) --- */

/* Whether a stream's TTL or Expires-At has passed at now. */
int core_expired(const struct stream_meta *m, int64_t now);

/* A stream as clients may use it, in any transaction: E_OK, an expired
 * stream E_STREAM_NOT_FOUND, a soft-deleted one E_DELETED, or the error of
 * a store failure. */
enum proto_err core_usable(struct store_txn *t, const char *name, size_t nlen, int64_t now,
                           struct stream_meta *m);

/* core_usable in the thread's read transaction, which stays open on E_OK
 * (the caller ends it with store_read_end(&ctx->rtxn)). */
enum proto_err core_lookup(struct proto_ctx *ctx, const char *name, size_t nlen, struct stream_meta *m);

/* Sliding TTL: a read counts as access (at most once per LS_TTL_TOUCH_MS). */
void core_touch(struct proto_ctx *ctx, const char *name, size_t nlen, const struct stream_meta *seen);

/* One request through the core: what proto_handle parsed and decided. On
 * its stack, or on the heap for a write the front lets go without waiting
 * (ctx->on_written): then a queued write keeps it until it is answered. */
struct core_call {
	struct req q;
	struct access acc;
	const struct proto_request *raw;
	struct proto_response *resp;
	int may_queue;          /* on the heap: core_write may queue the write (it
	                         * then sets ctx->call to NULL: the call is the
	                         * writer threads' from then on) */
	/* what the writer threads need of a queued write */
	struct batch_job job;
	void (*after)(void *arg);
	const struct config *cfg;
	proto_commit_hook on_commit;
	void *hook_arg;
	void (*on_written)(void *owner);
};

/* Runs fn(w, arg, &key) as a job of this process's batch (store/batch.h):
 * durable before the answer goes out. Then after(arg) (when not NULL)
 * does the handler's last work and frees what arg holds; it is called once
 * the write is answered (kept and durable, refused, or failed), with the
 * call's response final but for a store error that failed the commit. A
 * commit wakes the stream's live readers.
 * When the call may queue, this returns at once and everything after runs
 * on the flusher thread: the handler must not touch q, the response or arg
 * once core_write returns. Else it returns after all of it. */
void core_write(struct proto_ctx *ctx, size_t bytes, batch_fn fn, void *arg, void (*after)(void *arg));

/* For a job refused because the map is nearly full (store_room): 507 with
 * Retry-After in resp, and BATCH_RECLAIM to return. */
int core_no_room(struct proto_response *resp);

/* The last touches of every answer (also of long-polls answered later):
 * CORS for the request's Origin under cors_origins, and, when a right came
 * from a token (credentialed), no public caching. */
void core_finish(const struct config *cfg, const struct proto_request *raw, int credentialed,
                 struct proto_response *resp);

/* --- messages of a body (write.c) --- */

struct messages {
	size_t n, cap;
	struct span { uint32_t off, len; } *v;
	struct span one;          /* storage when there is a single message */
};

/* Splits a body into messages (JSON: one per array element or value),
 * validating JSON. Returns E_OK, E_JSON, E_TOO_MANY_MESSAGES or E_NO_MEMORY;
 * messages_free releases ms in every case. */
enum proto_err messages_split(const char *body, size_t len, int json, struct messages *ms);
void messages_free(struct messages *ms);

/* Appends the messages to the stream in the open write transaction. */
int messages_append(struct store_txn *w, struct stream_meta *m, const char *body,
                    const struct messages *ms);

/* --- change events of State streams (snapshot.c) --- */

struct events {
	struct state_event *v;
	size_t n;
	struct buf arena;
	int parsed;
};

/* Parses the change events of the messages; fills resp and returns -1 when
 * they are refused. */
int events_parse(const char *body, const struct messages *ms, struct events *ev,
                 struct proto_response *resp);
void events_free(struct events *ev);
/* Materialises the events of messages appended from seq on. */
int events_apply(struct store_txn *w, struct stream_meta *m, uint64_t seq, const char *body,
                 const struct messages *ms, const struct events *ev);

/* Stream-State, retention and Stream-Earliest-Offset headers. */
void state_add_headers(struct proto_response *resp, const struct stream_meta *m, int64_t now);

/* 410 for a read before the earliest retained offset (with the snapshot's
 * Link for State streams). */
void state_gone(struct proto_response *resp, const char *prefix, const struct stream_meta *m,
                uint64_t first, uint64_t first_bytes, const char *name, size_t nlen);

/* GET ?snapshot (one page) and POST ?compact. */
void state_snapshot(struct proto_ctx *ctx, const struct req *q, struct proto_response *resp);
void state_compact(struct proto_ctx *ctx, const struct req *q, struct proto_response *resp);

/* One step of the snapshot phase of ?snapshot&live=sse, with the read
 * transaction open on m (this ends it). */
enum sse_step state_sse_step(struct proto_ctx *ctx, struct proto_live *live,
                             const struct stream_meta *m, struct buf *out);

/* --- forks (fork.c) --- */

/* Fills the fork part of a new stream m from its source inside the write
 * transaction (m's content type becomes the source's), within max_forks
 * forks of one source and LS_MAX_FORK_DEPTH in a chain. Returns ST_OK, a
 * store error, or ST_REFUSED with resp filled. */
int fork_make(struct store_txn *w, const struct req *q, int64_t now, int max_forks,
              struct stream_meta *m, struct proto_response *resp);

/* Whether an existing stream has the configuration a PUT asks for. */
int fork_same_config(const struct stream_meta *m, const struct req *q, const char *ct);

/* --- handlers --- */

void read_get(struct proto_ctx *ctx, const struct req *q, struct proto_response *resp,
              struct proto_live *live);
void read_head(struct proto_ctx *ctx, const struct req *q, struct proto_response *resp);
/* Reads messages from *seq on into out (JSON messages comma-separated, no
 * brackets), at most about limit bytes (one message at least), unless the
 * first is longer than first_max (when not 0): then nothing is read,
 * *count is 0 and *first_len (when not NULL) its length. */
int read_messages(struct store_txn *t, const struct stream_meta *m, int json, size_t limit,
                  size_t first_max, size_t *first_len,
                  struct buf *out, uint64_t *seq, uint64_t *bytes, size_t *count);
/* A 200 catch-up response from live->seq, replacing resp (read txn open). */
int read_fill(struct proto_ctx *ctx, const struct stream_meta *m, struct proto_live *live,
              uint64_t start_seq, const char *if_none_match, int long_poll,
              struct proto_response *resp);
/* Whether an If-None-Match header names etag (or is "*"): weak comparison. */
int etag_matches(const char *header, const char *etag);
/* Whether an If-Match header names etag (or is "*"): strong comparison, so
 * a weak tag (W/"...") never matches. */
int etag_matches_strong(const char *header, const char *etag);
/* The stream's current ETag, as HEAD gives it (its whole range, closure),
 * into out (cap bytes, 80 are enough). */
void etag_of_stream(char *out, size_t cap, struct store *st, const struct stream_meta *m);

void write_put(struct proto_ctx *ctx, const struct req *q, struct proto_response *resp);
void write_post(struct proto_ctx *ctx, const struct req *q, struct proto_response *resp);
void write_delete(struct proto_ctx *ctx, const struct req *q, struct proto_response *resp);

/* GET or HEAD of metrics_path: the node's metrics (scrape.c). */
void scrape_answer(struct proto_ctx *ctx, const struct req *q, struct proto_response *resp);

#endif
