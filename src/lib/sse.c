/* sse.c: Server-Sent Events framing. */
#include "lib/sse.h"

#include <string.h>

int sse_data_begin(struct buf *out, struct sse_part *st)
{
	st->line_open = 0;
	st->after_cr = 0;
	return buf_puts(out, "event: data\n");
}

int sse_data_part(struct buf *out, struct sse_part *st, const char *p, size_t len)
{
	size_t i = 0;
	if (!len)
		return out->failed ? -1 : 0;
	if (st->after_cr && p[0] == '\n')
		i = 1; /* the LF of a CR LF split between parts */
	st->after_cr = 0;
	while (i < len) {
		size_t e = i;
		while (e < len && p[e] != '\n' && p[e] != '\r')
			e++;
		if (e > i) {
			/* Readers drop one space after "data:": keep a leading one. */
			if (!st->line_open)
				buf_puts(out, p[i] == ' ' ? "data: " : "data:");
			st->line_open = 1;
			buf_append(out, p + i, e - i);
		}
		if (e == len)
			break;
		/* CR, LF and CR LF all end a line, so a payload can never end the
		 * event early or forge another one. */
		if (!st->line_open)
			buf_puts(out, "data:");
		buf_puts(out, "\n");
		st->line_open = 0;
		if (p[e] == '\r' && e + 1 == len)
			st->after_cr = 1;
		i = e + ((p[e] == '\r' && e + 1 < len && p[e + 1] == '\n') ? 2 : 1);
	}
	return out->failed ? -1 : 0;
}

int sse_data_end(struct buf *out, struct sse_part *st)
{
	/* The last line, even an empty one after a final line break. */
	buf_puts(out, st->line_open ? "\n\n" : "data:\n\n");
	st->line_open = 0;
	return out->failed ? -1 : 0;
}

int sse_data_event(struct buf *out, const char *p, size_t len)
{
	struct sse_part st;
	sse_data_begin(out, &st);
	sse_data_part(out, &st, p, len);
	return sse_data_end(out, &st);
}

int sse_base64(struct buf *out, const void *data, size_t len)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *s = data;
	size_t olen = (len + 2) / 3 * 4;

	if (buf_reserve(out, olen) < 0)
		return -1;
	char *o = out->data + out->len;
	size_t i = 0;
	for (; i + 2 < len; i += 3) {
		*o++ = tab[s[i] >> 2];
		*o++ = tab[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
		*o++ = tab[((s[i + 1] & 15) << 2) | (s[i + 2] >> 6)];
		*o++ = tab[s[i + 2] & 63];
	}
	if (i < len) {
		*o++ = tab[s[i] >> 2];
		if (i + 1 < len) {
			*o++ = tab[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
			*o++ = tab[(s[i + 1] & 15) << 2];
		} else {
			*o++ = tab[(s[i] & 3) << 4];
			*o++ = '=';
		}
		*o++ = '=';
	}
	out->len += olen;
	out->data[out->len] = '\0';
	return 0;
}

int sse_control_event(struct buf *out, const char *next_offset, const char *cursor,
                      int up_to_date, int closed)
{
	/* Offsets and cursors are digits and '_' only: no escaping needed. */
	buf_puts(out, "event: control\ndata:{\"streamNextOffset\":\"");
	buf_puts(out, next_offset);
	buf_puts(out, "\"");
	if (closed) {
		buf_puts(out, ",\"streamClosed\":true,\"upToDate\":true");
	} else {
		if (cursor) {
			buf_puts(out, ",\"streamCursor\":\"");
			buf_puts(out, cursor);
			buf_puts(out, "\"");
		}
		if (up_to_date)
			buf_puts(out, ",\"upToDate\":true");
	}
	return buf_puts(out, "}\n\n");
}

int sse_comment(struct buf *out, const char *text)
{
	buf_puts(out, ": ");
	buf_puts(out, text);
	return buf_puts(out, "\n\n");
}
