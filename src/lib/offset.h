/* offset.h: stream offsets, the opaque tokens clients resume from.
 *
 * Format: "SSSSSSSSSSSSSSSS_BBBBBBBBBBBBBBBB", 16 decimal digits of message
 * count, '_', 16 decimal digits of byte count. Fixed width, so the byte order
 * of two tokens is their stream order. Only the message count is used to
 * position a read; the byte count is informative. */
#ifndef LS_OFFSET_H
#define LS_OFFSET_H
#include <stddef.h>
#include <stdint.h>

#define OFFSET_LEN 33 /* characters, without the NUL */

enum offset_kind {
	OFFSET_START,  /* "-1" or absent: from the beginning */
	OFFSET_NOW,    /* "now": from the current tail */
	OFFSET_AT,     /* a token: from message number seq */
};

struct offset {
	enum offset_kind kind;
	uint64_t seq;
	uint64_t bytes;
};

/* Parses a query value (already percent-decoded). Accepts "-1", "now" and
 * exactly what offset_format writes: 16 digits, '_', 16 digits. Returns 0
 * or -1. */
int offset_parse(const char *s, size_t len, struct offset *out);

/* Writes the token for (seq, bytes) into out (OFFSET_LEN + 1 bytes). */
void offset_format(char out[OFFSET_LEN + 1], uint64_t seq, uint64_t bytes);

#endif
