/* response.h: building responses inside the core: the headers every
 * answer carries, offsets, numbers, Location, and failures from the error
 * table (errors.h). */
#ifndef LS_RESPONSE_H
#define LS_RESPONSE_H
#include <stdint.h>
#include "core/errors.h"
#include "core/protocol.h"
#include "core/request.h"

/* Starts a successful answer: status and the headers every answer carries
 * (CORS exposure, nosniff, resource policy). */
void resp_start(struct proto_response *r, int status);

void resp_add_u64(struct proto_response *r, const char *name, uint64_t v);
/* Content-Type of a stream's data, and Content-Disposition: attachment
 * when browsers would render that type as an active document. */
void resp_add_stream_type(struct proto_response *r, const char *content_type);

/* Replaces the value of header name (adds it when absent; value copied).
 * With value NULL, removes it. */
void resp_set_header(struct proto_response *r, const char *name, const char *value);

/* Stream-Next-Offset for (seq, bytes). */
void resp_add_offset(struct proto_response *r, uint64_t seq, uint64_t bytes);

/* Stream-Closed: true. */
void resp_add_closed(struct proto_response *r);

/* The path of a stream's URL (prefix, then the name percent-encoded where
 * it must be) in out; returns its length, or 0 when cap is too small
 * (LS_MAX_URL always fits). */
size_t resp_url_path(char *out, size_t cap, const char *prefix, const char *name, size_t nlen);

/* Location: the stream's absolute URL, under public_url when it is set,
 * else from the request's scheme and Host (when Host looks like a host
 * name; "localhost" otherwise). */
void resp_add_location(struct proto_response *r, const struct req *q, const struct config *cfg,
                       const char *name, size_t nlen);
/* That URL into url (cap bytes): its length, or 0 when it does not fit. */
size_t resp_stream_url(char *url, size_t cap, const struct req *q, const struct config *cfg,
                       const char *name, size_t nlen);

/* The next Stream-Cursor: the current 20-second interval, or a random
 * distance past the client's when it is already there (PROTOCOL.md,
 * caching), as a decimal string. */
void cursor_next(const char *client_cursor, char out[24]);

/* Stream-Cursor: cursor_next as a header. */
void resp_add_cursor(struct proto_response *r, const char *client_cursor);

/* A failure from the table with a detail after the reason ("reason:
 * detail"), for the parsers that say what exactly is wrong. */
void proto_fail_detail(struct proto_response *r, enum proto_err e, const char *detail);

/* The error of a store result (enum store_rc other than ST_OK). */
enum proto_err err_of_store(int rc);

/* Answers a store failure. */
void resp_store_error(struct proto_response *r, int rc);

#endif
