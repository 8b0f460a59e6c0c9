/* parse.h: small parsers for request parts: header values, the stream path
 * and the query string. Pure functions over (const char *, size_t); no I/O. */
#ifndef LS_PARSE_H
#define LS_PARSE_H
#include <stddef.h>
#include <stdint.h>

/* Stream-TTL: "0" or a decimal without sign or leading zeros, at most
 * 10 digits. Returns 0 or -1. */
int parse_ttl(const char *s, size_t len, uint64_t *seconds);

/* Stream-Expires-At: an RFC 3339 timestamp ("2025-01-01T00:00:00Z",
 * optional fraction, "Z" or "+hh:mm"). Returns 0 with milliseconds since the
 * epoch, or -1. */
int parse_expires_at(const char *s, size_t len, int64_t *ms);

/* Producer-Epoch / Producer-Seq: digits only, at most 2^53 - 1. */
int parse_uint53(const char *s, size_t len, uint64_t *out);

/* Lower-cased media type of a Content-Type value, without parameters or
 * surrounding spaces, into out (cap bytes). Returns its length, or -1 when
 * the value is not "type/subtype" made of token characters. */
int parse_media_type(const char *s, size_t len, char *out, size_t cap);

/* How a stream's messages are framed and sent, from its media type. */
enum media_kind {
	MEDIA_BINARY,  /* anything else: base64 in SSE */
	MEDIA_TEXT,    /* text/...: sent as it is */
	MEDIA_JSON,    /* application/json or a +json type: one message per value, arrays in reads */
};

/* The kind of a lower-cased media type as parse_media_type gives it:
 * application/json and every type with the +json suffix
 * ("application/vnd.example+json") are JSON. */
enum media_kind parse_media_kind(const char *media_type);
/* The kind as releases before +json types were JSON saw it: only
 * application/json is JSON. Streams those releases created keep it (the
 * store records each stream's JSON mode since: store.c). */
enum media_kind parse_media_kind_legacy(const char *media_type);

/* Checks that a header value may be stored and echoed: printable ASCII and
 * spaces only, 1..max bytes. Returns 0 or -1. */
int parse_header_safe(const char *s, size_t len, size_t max);

enum path_error {
	PATH_OK = 0,
	PATH_NOT_PREFIX,    /* outside the configured prefix: 404 */
	PATH_EMPTY,         /* the prefix itself, no stream name: 404 */
	PATH_TOO_LONG,      /* 414 */
	PATH_BAD_ESCAPE,    /* malformed %XX: 400 */
	PATH_BAD_CHAR,      /* NUL, CR, LF or another control byte: 400 */
	PATH_DOT_SEGMENT,   /* "." or ".." segment: 400 */
	PATH_ENCODED_SLASH, /* %2F: a web server's path rules would see another name: 400 */
};

/* Decodes the path of a request target (percent-encoded, no query) that must
 * start with prefix, and validates the stream name that follows it. On
 * PATH_OK out holds the decoded name (NUL terminated, *outlen bytes). out
 * must hold max_name + 1 bytes. */
enum path_error parse_stream_path(const char *target, size_t len, const char *prefix,
                                  size_t max_name, char *out, size_t *outlen);

/* One "key=value" pair of a query string, both still percent-encoded. */
struct query_pair {
	const char *key;
	size_t klen;
	const char *val;     /* "" when the pair has no '=' */
	size_t vlen;
};

/* Walks a query string ("a=1&b=2", no '?') one pair at a time: start with
 * *pos = 0. Returns 1 with *p (an empty pair for "&&"), or 0 at the end. */
int parse_query_next(const char *q, size_t qlen, size_t *pos, struct query_pair *p);

/* Walks a list of words separated by spaces and tabs (the configuration's
 * lists: key files, patterns, origins): start with *pos = 0. Returns 1 with
 * the next word at *w, *n bytes long, or 0 at the end. list may be NULL. */
int parse_next_word(const char *list, size_t *pos, const char **w, size_t *n);

/* The parameter name (case-insensitive) of the LAST element of a Forwarded
 * header h (RFC 7239: elements separated by ',', pairs by ';', values a
 * token or a quoted-string), unquoted into out (cap bytes with the NUL):
 * the element a proxy appends, never one a client sent before it. Returns
 * its length, or -1 when that element has no such parameter, when it does
 * not fit, or when h is malformed anywhere. */
int parse_forwarded_last(const char *h, const char *name, char *out, size_t cap);

/* Whether an IP address in text (REMOTE_ADDR) is a loopback address:
 * 127.0.0.0/8, ::1, or 127.0.0.0/8 mapped into IPv6. NULL or anything that
 * is not an address: no. */
int parse_is_loopback(const char *addr);

struct sockaddr;
/* The same for a socket address (AF_INET, AF_INET6; anything else: no). */
int sockaddr_is_loopback(const struct sockaddr *sa);

/* Percent-decodes in into out (cap bytes, NUL terminated). Returns the
 * decoded length or -1 on a malformed escape or overflow. */
long parse_percent_decode(const char *in, size_t len, char *out, size_t cap);

#endif
