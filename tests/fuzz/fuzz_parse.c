/* fuzz_parse.c: fuzz harness for the request parsers: offset_parse
 * (src/lib/offset.c) and parse_ttl, parse_expires_at, parse_uint53,
 * parse_media_type, parse_header_safe, parse_stream_path, parse_query_next,
 * parse_percent_decode (src/lib/parse.c).
 *
 * Every parser sees the whole input (as a value, a path and a query). Outputs
 * go to buffers of exactly the promised size, and what a parser accepts must
 * satisfy its contract (see the properties below). */
#include "lib/limits.h"
#include "lib/offset.h"
#include "lib/parse.h"
#include "fuzz.h"

#include <inttypes.h>

static int is_digits(const char *s, size_t len)
{
	if (!len)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

static void check_offset(const char *s, size_t len)
{
	struct offset o;
	if (offset_parse(s, len, &o))
		return;
	if (o.kind == OFFSET_START) {
		FUZZ_ASSERT(len == 2 && !memcmp(s, "-1", 2));
		return;
	}
	if (o.kind == OFFSET_NOW) {
		FUZZ_ASSERT(len == 3 && !memcmp(s, "now", 3));
		return;
	}
	FUZZ_ASSERT(o.kind == OFFSET_AT);
	const char *us = memchr(s, '_', len);
	FUZZ_ASSERT(us && is_digits(s, (size_t)(us - s)) && is_digits(us + 1, len - (size_t)(us - s) - 1));
	if (o.seq < 10000000000000000ULL && o.bytes < 10000000000000000ULL) {
		char tok[OFFSET_LEN + 1];
		struct offset back;
		offset_format(tok, o.seq, o.bytes);
		FUZZ_ASSERT(strlen(tok) == OFFSET_LEN);
		FUZZ_ASSERT(offset_parse(tok, OFFSET_LEN, &back) == 0);
		FUZZ_ASSERT(back.kind == OFFSET_AT && back.seq == o.seq && back.bytes == o.bytes);
	}
}

static void check_numbers(const char *s, size_t len)
{
	uint64_t v;
	if (parse_ttl(s, len, &v) == 0) {
		char back[32];
		int n = snprintf(back, sizeof back, "%" PRIu64, v);
		FUZZ_ASSERT((size_t)n == len && !memcmp(back, s, len));   /* canonical decimal */
	}
	if (parse_uint53(s, len, &v) == 0) {
		FUZZ_ASSERT(v <= 9007199254740991ULL);
		FUZZ_ASSERT(is_digits(s, len));
	}
	int64_t ms;
	if (parse_expires_at(s, len, &ms) == 0) {
		/* Years 0000..9999 with any zone offset. */
		FUZZ_ASSERT(ms >= -62167219200000LL - 86400000LL && ms <= 253402300800000LL + 86400000LL);
		FUZZ_ASSERT(len >= 20 && len <= LS_MAX_EXPIRES_AT);
	}
}

static int is_token(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static void check_header_values(const char *s, size_t len)
{
	static const size_t caps[] = { 1, 2, 8, 64, LS_MAX_CONTENT_TYPE + 1 };
	for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
		char *out = malloc(caps[k]);
		int n = parse_media_type(s, len, out, caps[k]);
		if (n >= 0) {
			FUZZ_ASSERT((size_t)n < caps[k] && out[n] == '\0' && n >= 3);
			int slashes = 0;
			for (int i = 0; i < n; i++) {
				if (out[i] == '/')
					slashes++;
				else
					FUZZ_ASSERT(is_token((unsigned char)out[i]));
			}
			FUZZ_ASSERT(slashes == 1 && out[0] != '/' && out[n - 1] != '/');
		}
		free(out);
	}
	if (parse_header_safe(s, len, LS_MAX_PRODUCER_ID) == 0) {
		FUZZ_ASSERT(len >= 1 && len <= LS_MAX_PRODUCER_ID);
		for (size_t i = 0; i < len; i++)
			FUZZ_ASSERT((unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f);
	}
}

static void check_path(const char *target, size_t len, const char *prefix, size_t max)
{
	char *out = malloc(max + 1);
	size_t olen = (size_t)-1;
	enum path_error e = parse_stream_path(target, len, prefix, max, out, &olen);
	if (e == PATH_OK) {
		FUZZ_ASSERT(olen >= 1 && olen <= max && out[olen] == '\0');
		for (size_t i = 0; i < olen; i++)
			FUZZ_ASSERT((unsigned char)out[i] >= 0x20 && out[i] != 0x7f);
		for (size_t a = 0; a < olen;) {
			size_t b = a;
			while (b < olen && out[b] != '/')
				b++;
			FUZZ_ASSERT(!(b - a == 1 && out[a] == '.'));
			FUZZ_ASSERT(!(b - a == 2 && out[a] == '.' && out[a + 1] == '.'));
			a = b + 1;
		}
		FUZZ_ASSERT(len >= strlen(prefix) && !memcmp(target, prefix, strlen(prefix)));
	}
	free(out);
}

/* The query iterator: pairs cover the string in order, one per '&'-separated
 * part, each key and value inside its part; the walk ends. */
static void check_query(const char *q, size_t len)
{
	size_t amps = 0, n = 0, pos = 0, last_end = 0;
	struct query_pair p;
	for (size_t i = 0; i < len; i++)
		amps += q[i] == '&';
	while (parse_query_next(q, len, &pos, &p)) {
		n++;
		FUZZ_ASSERT(n <= amps + 1);
		FUZZ_ASSERT(p.key >= q + last_end && p.key + p.klen <= q + len);
		FUZZ_ASSERT(!memchr(p.key, '&', p.klen) && !memchr(p.key, '=', p.klen));
		if (p.vlen)
			FUZZ_ASSERT(p.val == p.key + p.klen + 1 && p.val + p.vlen <= q + len);
		FUZZ_ASSERT(!memchr(p.val, '&', p.vlen));
		last_end = (size_t)(p.key - q) + p.klen + (p.vlen ? p.vlen + 1 : 0);
	}
	FUZZ_ASSERT(n == amps + 1);
}

static void check_decode(const char *s, size_t len)
{
	size_t cap = len + 1;
	char *out = malloc(cap);
	long n = parse_percent_decode(s, len, out, cap);
	if (n >= 0) {
		FUZZ_ASSERT((size_t)n <= len && out[n] == '\0');
		/* Each escape shrinks the text by two. */
		size_t pct = 0;
		for (size_t i = 0; i < len; i++)
			pct += s[i] == '%';
		FUZZ_ASSERT((size_t)n == len - 2 * pct);
		/* A smaller buffer either fits exactly or fails. */
		char *small = malloc((size_t)n + 1);
		FUZZ_ASSERT(parse_percent_decode(s, len, small, (size_t)n + 1) == n && !memcmp(small, out, (size_t)n));
		if (n > 0)
			FUZZ_ASSERT(parse_percent_decode(s, len, small, (size_t)n) == -1);
		free(small);
	}
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;

	check_offset(s, size);
	check_numbers(s, size);
	check_header_values(s, size);
	check_query(s, size);
	check_decode(s, size);

	/* The input as a request target under two prefixes and limits. */
	static const char prefix[] = "/v1/stream/";
	char *target = malloc(sizeof prefix - 1 + size + 1);
	memcpy(target, prefix, sizeof prefix - 1);
	if (size)
		memcpy(target + sizeof prefix - 1, data, size);
	check_path(target, sizeof prefix - 1 + size, prefix, LS_DEFAULT_MAX_PATH);
	check_path(target, sizeof prefix - 1 + size, prefix, 16);
	check_path(s, size, "/", LS_MAX_PATH_HARD);
	check_path(s, size, prefix, 1);
	free(target);
	return 0;
}
