/* errors.h: every way a request can fail, as one enum and one table
 * {status, reason}. The core answers each failure with proto_fail (or its
 * variants in response.h), so every 4xx/5xx body comes from this table;
 * the fronts use it too for what they refuse before the core runs. */
#ifndef LS_ERRORS_H
#define LS_ERRORS_H

/* X(name, HTTP status, one-line reason). */
#define PROTO_ERRORS(X) \
	/* the request line and the path */ \
	X(E_METHOD, 405, "method not allowed") \
	X(E_LIVE_ONLY, 405, "behind the web server lmstream-live serves live reads only: GET, HEAD, OPTIONS") \
	X(E_NUL, 400, "NUL byte in the request line or a header") \
	X(E_CONTENT_LENGTH, 400, "more than one Content-Length, or Content-Length with Transfer-Encoding") \
	X(E_NOT_FOUND, 404, "not found") \
	X(E_PATH_TOO_LONG, 414, "stream path too long") \
	X(E_PATH_ESCAPE, 400, "malformed percent-encoding in path") \
	X(E_PATH_CHAR, 400, "control character in path") \
	X(E_PATH_DOT, 400, "'.' and '..' path segments are not allowed") \
	X(E_PATH_SLASH, 400, "an encoded '/' (%2F) is not allowed in a stream path: write '/'") \
	X(E_BODY_TOO_LARGE, 413, "request body too large") \
	X(E_HEADERS_TOO_LARGE, 431, "request headers too large") \
	/* access (access.c) */ \
	X(E_AUTH_REQUIRED, 401, "a token is required") \
	X(E_TOKEN_INVALID, 401, "invalid token") \
	X(E_FORBIDDEN, 403, "the token does not grant this") \
	X(E_CROSS_SITE, 403, "a cookie does not authorize writes from another site") \
	X(E_AUTH_UNAVAILABLE, 503, "the keys that verify tokens cannot be read") \
	/* query parameters */ \
	X(E_OFFSET_TWICE, 400, "more than one offset parameter") \
	X(E_OFFSET, 400, "invalid offset") \
	X(E_LIVE_TWICE, 400, "more than one live parameter") \
	X(E_LIVE, 400, "invalid live mode: expected long-poll or sse") \
	X(E_SSE_NEEDS_OFFSET, 400, "SSE requires an offset parameter") \
	X(E_LONGPOLL_NEEDS_OFFSET, 400, "long-poll requires an offset parameter") \
	X(E_SNAPSHOT_TWICE, 400, "more than one snapshot parameter") \
	X(E_SNAPSHOT_TOKEN, 400, "invalid snapshot page token") \
	X(E_SNAPSHOT_OFFSET, 400, "snapshot and offset cannot be combined: the snapshot names its offset") \
	X(E_SNAPSHOT_SSE_TOKEN, 400, "live=sse sends the whole snapshot: use ?snapshot without a token") \
	X(E_STATE_PARAM, 400, "invalid state parameter: use ?state to declare a State stream") \
	X(E_RETENTION_AGE, 400, "invalid retention-age: expected a positive number of seconds") \
	X(E_RETENTION_BYTES, 400, "invalid retention-bytes: expected a positive number of bytes") \
	X(E_COMPACT_ARGS, 400, "?compact takes no body, producer, Stream-Closed or If-Match") \
	/* headers */ \
	X(E_CONTENT_TYPE, 400, "invalid Content-Type") \
	X(E_CONTENT_TYPE_REQUIRED, 400, "Content-Type header is required") \
	X(E_TTL, 400, "invalid Stream-TTL: expected a non-negative integer of seconds") \
	X(E_EXPIRES_AT, 400, "invalid Stream-Expires-At: expected an RFC 3339 timestamp") \
	X(E_EXPIRES_PAST, 400, "Stream-Expires-At is not in the future") \
	X(E_TTL_AND_EXPIRES, 400, "Stream-TTL and Stream-Expires-At cannot be combined") \
	X(E_STREAM_SEQ, 400, "invalid Stream-Seq") \
	X(E_PRODUCER_PARTIAL, 400, "Producer-Id, Producer-Epoch and Producer-Seq must be sent together") \
	X(E_PRODUCER_ID_EMPTY, 400, "invalid Producer-Id: must not be empty") \
	X(E_PRODUCER_ID, 400, "invalid Producer-Id") \
	X(E_PRODUCER_EPOCH, 400, "invalid Producer-Epoch: must be a non-negative integer") \
	X(E_PRODUCER_SEQ, 400, "invalid Producer-Seq: must be a non-negative integer") \
	X(E_FORK_HEADERS_ALONE, 400, "Stream-Fork-Offset and Stream-Fork-Sub-Offset need Stream-Forked-From") \
	X(E_FORKED_FROM, 400, "invalid Stream-Forked-From: expected the source stream's path") \
	X(E_FORK_OFFSET, 400, "invalid Stream-Fork-Offset") \
	X(E_FORK_SUB_OFFSET, 400, "invalid Stream-Fork-Sub-Offset: expected a non-negative integer") \
	X(E_FORK_SUB_NEEDS_OFFSET, 400, "Stream-Fork-Sub-Offset needs Stream-Fork-Offset") \
	X(E_FORK_STATE, 400, "a fork cannot be declared a State stream") \
	X(E_STATE_NEEDS_JSON, 400, "a State stream must have a JSON Content-Type: application/json or a +json type") \
	X(E_IF_MATCH_PRODUCER, 400, "If-Match cannot be combined with Producer-Id, Producer-Epoch and Producer-Seq") \
	/* bodies */ \
	X(E_EMPTY_BODY, 400, "empty body: nothing to append") \
	X(E_EMPTY_ARRAY, 400, "empty JSON array: nothing to append") \
	X(E_JSON, 400, "invalid JSON body") \
	X(E_TOO_MANY_MESSAGES, 413, "too many messages in one request") \
	X(E_CHANGE_EVENT, 400, "invalid change event") \
	/* the stream's state */ \
	X(E_STREAM_NOT_FOUND, 404, "stream not found") \
	X(E_DELETED, 410, "stream was deleted") \
	X(E_EXISTS, 409, "stream already exists with a different configuration") \
	X(E_EXISTS_DELETED, 409, "a deleted stream still read by forks holds this path") \
	X(E_CLOSED, 409, "stream is closed") \
	X(E_TYPE_MISMATCH, 409, "Content-Type does not match the stream's") \
	X(E_SEQ_NOT_GREATER, 409, "Stream-Seq is not greater than the last one") \
	X(E_PRODUCER_STALE, 403, "stale producer epoch") \
	X(E_PRODUCER_NEW_EPOCH, 400, "a new producer epoch must start at sequence 0") \
	X(E_PRODUCER_GAP, 409, "producer sequence gap") \
	X(E_PRECONDITION, 412, "If-Match does not match the stream's current ETag: read it again (HEAD), then retry") \
	/* (www/lmstream.js recognises this one by its first words: keep them) */ \
	X(E_BEYOND_TAIL, 400, "offset is beyond the stream's tail: it comes from another copy of the stream (restored, or deleted and created again); read from -1") \
	X(E_BEFORE_EARLIEST, 410, "offset is before the earliest retained offset") \
	X(E_BEFORE_EARLIEST_STATE, 410, "offset is before the earliest retained offset; read the snapshot") \
	X(E_NOT_STATE, 400, "not a State stream: create it with ?state to read snapshots") \
	X(E_COMPACT_NOT_STATE, 400, "only State streams can be compacted (their snapshot keeps the state)") \
	X(E_SNAPSHOT_MOVED, 409, "the state moved on since this snapshot began: start again with ?snapshot") \
	/* forks */ \
	X(E_SOURCE_NOT_FOUND, 404, "source stream not found") \
	X(E_SOURCE_DELETED, 409, "source stream was deleted") \
	X(E_SOURCE_STATE, 409, "State streams cannot be forked") \
	X(E_SOURCE_TYPE, 409, "Content-Type does not match the source stream's") \
	X(E_FORK_BEYOND_TAIL, 400, "Stream-Fork-Offset is beyond the source stream's tail") \
	X(E_FORK_NOT_OFFSET, 400, "Stream-Fork-Offset is not an offset of the source stream") \
	X(E_FORK_BEFORE_EARLIEST, 410, "the fork point is before the source's earliest retained offset") \
	X(E_FORK_SUB_NO_DATA, 400, "Stream-Fork-Sub-Offset: the source has no data after Stream-Fork-Offset") \
	X(E_FORK_SUB_PAST_LAST, 400, "Stream-Fork-Sub-Offset is past the source's last message") \
	X(E_FORK_SUB_PAST_END, 400, "Stream-Fork-Sub-Offset is past the end of the message at Stream-Fork-Offset") \
	X(E_FORK_TOO_DEEP, 400, "fork chain too deep") \
	X(E_FORK_TOO_MANY, 409, "the source stream has as many forks as it may have (max_forks)") \
	/* subscriptions (subs.c: JSON bodies {"error": {"code", "message"}}) */ \
	X(E_CTL_NOT_FOUND, 404, "no such control API under __ds") \
	X(E_SUB_NOT_FOUND, 404, "subscription not found") \
	X(E_SUB_REQUEST, 400, "invalid subscription request") \
	X(E_SUB_EXISTS, 409, "subscription already exists with a different configuration") \
	X(E_WEBHOOK_URL, 400, "webhook URL rejected") \
	X(E_SUB_TOKEN, 401, "invalid or expired wake token") \
	X(E_FENCED, 409, "stale wake: its generation or wake_id is not the current one") \
	X(E_ALREADY_CLAIMED, 409, "another worker holds the subscription's lease") \
	X(E_NO_PENDING_WORK, 409, "the subscription has no pending work") \
	X(E_ACK_OFFSET, 409, "ack names a stream the subscription does not link, or an offset behind its cursor or beyond the tail") \
	X(E_NOT_PULL_WAKE, 400, "claim, ack and release are for pull-wake subscriptions") \
	/* resources and the store */ \
	X(E_STORAGE_FULL, 507, "storage is full") \
	X(E_BUSY, 503, "server busy, try again") \
	X(E_NO_MEMORY, 503, "out of memory") \
	X(E_MEMORY_BUDGET, 503, "the server holds as much buffered data as it may (memory_budget), try again") \
	X(E_STORAGE, 500, "internal storage error") \
	X(E_STORAGE_UNAVAILABLE, 503, "storage unavailable") \
	X(E_TOO_MANY_CONNECTIONS, 503, "too many connections") \
	X(E_LIVE_BUSY, 503, "the workers serve as many live reads as they may (max_live_reads), try again") \
	X(E_SHUTTING_DOWN, 503, "server is shutting down")

enum proto_err {
	E_OK = 0,
#define LS_ERR_ENUM(name, status, reason) name,
	PROTO_ERRORS(LS_ERR_ENUM)
#undef LS_ERR_ENUM
	E__COUNT
};

/* The HTTP status and the reason of an error (E_OK: 200, ""). */
int proto_err_status(enum proto_err e);
const char *proto_err_reason(enum proto_err e);

/* The reason phrase of an HTTP status ("Not Found"; "Unknown" for a
 * status lmstream never sends). */
const char *proto_status_text(int status);

#endif
