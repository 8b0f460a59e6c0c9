/* sse.h: Server-Sent Events framing for the protocol's live=sse mode. */
#ifndef LS_SSE_H
#define LS_SSE_H
#include <stddef.h>
#include "lib/buf.h"

/* Appends "event: data\n", one "data:" line per line of payload (CRLF, CR and
 * LF all end a line, so a payload can never end the event early or forge
 * another one) and the blank line that ends the event. Returns 0 or -1. */
int sse_data_event(struct buf *out, const char *payload, size_t len);

/* A data event written in parts, for a message too large to frame at once:
 * sse_data_begin, sse_data_part any number of times, sse_data_end give
 * the bytes sse_data_event gives for the parts' concatenation. */
struct sse_part {
	unsigned line_open : 1; /* "data:" of the current line is written */
	unsigned after_cr : 1;  /* the last part ended with CR (an LF after it is the same break) */
};
int sse_data_begin(struct buf *out, struct sse_part *st);
int sse_data_part(struct buf *out, struct sse_part *st, const char *p, size_t len);
int sse_data_end(struct buf *out, struct sse_part *st);

/* Appends the standard base64 encoding of data (with '=' padding). */
int sse_base64(struct buf *out, const void *data, size_t len);

/* Appends a control event: {"streamNextOffset":..,"streamCursor":..,"upToDate":true}
 * or, when closed, {"streamNextOffset":..,"streamClosed":true,"upToDate":true} (no cursor).
 * cursor may be NULL. */
int sse_control_event(struct buf *out, const char *next_offset, const char *cursor,
                      int up_to_date, int closed);

/* Appends a comment line (": text\n\n"), used as a heartbeat. */
int sse_comment(struct buf *out, const char *text);

#endif
