/* test_parse.c: unit tests of src/lib/parse.c (header values, stream path, query). */
#include "lib/limits.h"
#include "lib/parse.h"
#include "unit.h"

#include <stdlib.h>

/* Every parser gets a heap copy of exactly len bytes, not NUL terminated
 * (unit_dup_exact), so that AddressSanitizer and valgrind see any read past
 * the length. */

#define LEN(row) ((row).len ? (row).len : strlen((row).s))

/* --- Stream-TTL ------------------------------------------------------------ */

static const struct {
	int line;
	const char *s;
	size_t len;
	int rc;
	uint64_t want;
} ttl_rows[] = {
	{ __LINE__, "0", 0, 0, 0 },
	{ __LINE__, "1", 0, 0, 1 },
	{ __LINE__, "60", 0, 0, 60 },
	{ __LINE__, "3600", 0, 0, 3600 },
	{ __LINE__, "9999999999", 0, 0, 9999999999ULL },
	{ __LINE__, "1000000000", 0, 0, 1000000000ULL },
	{ __LINE__, "", 0, -1, 0 },
	{ __LINE__, "00", 0, -1, 0 },
	{ __LINE__, "00060", 0, -1, 0 },
	{ __LINE__, "01", 0, -1, 0 },
	{ __LINE__, "+60", 0, -1, 0 },
	{ __LINE__, "60.5", 0, -1, 0 },
	{ __LINE__, "60.0", 0, -1, 0 },
	{ __LINE__, "1e3", 0, -1, 0 },
	{ __LINE__, "3.6e3", 0, -1, 0 },
	{ __LINE__, "-1", 0, -1, 0 },
	{ __LINE__, "-0", 0, -1, 0 },
	{ __LINE__, "abc", 0, -1, 0 },
	{ __LINE__, " 1", 0, -1, 0 },
	{ __LINE__, "1 ", 0, -1, 0 },
	{ __LINE__, "0x10", 0, -1, 0 },
	{ __LINE__, "10000000000", 0, -1, 0 },   /* 11 digits */
	{ __LINE__, "99999999999", 0, -1, 0 },
	{ __LINE__, "18446744073709551617", 0, -1, 0 },
	{ __LINE__, "1\0", 2, -1, 0 },
	{ __LINE__, "\0", 1, -1, 0 },
	{ __LINE__, "3600", 2, 0, 36 },          /* only len bytes count */
};

static void test_ttl(void)
{
	for (size_t i = 0; i < NELEM(ttl_rows); i++) {
		int line = ttl_rows[i].line;
		size_t len = LEN(ttl_rows[i]);
		char *s = unit_dup_exact(ttl_rows[i].s, len);
		uint64_t v = 12345;
		int rc = parse_ttl(s, len, &v);
		CHECK_INT_AT(line, rc, ttl_rows[i].rc);
		if (rc == 0 && ttl_rows[i].rc == 0)
			CHECK_UINT_AT(line, v, ttl_rows[i].want);
		free(s);
	}
}

/* --- Stream-Expires-At ------------------------------------------------------- */

#define BAD_TS INT64_MIN

static const struct {
	int line;
	const char *s;
	int64_t want;   /* BAD_TS: must be rejected */
} exp_rows[] = {
	{ __LINE__, "1970-01-01T00:00:00Z", 0 },
	{ __LINE__, "2024-10-09T00:00:00Z", 1728432000000LL },
	{ __LINE__, "2024-10-09T00:00:00+00:00", 1728432000000LL },
	{ __LINE__, "2024-10-09T00:00:00-00:00", 1728432000000LL },
	{ __LINE__, "2024-10-09T00:00:00-05:30", 1728451800000LL },
	{ __LINE__, "2024-10-09T05:30:00+05:30", 1728432000000LL },
	{ __LINE__, "2024-10-08T19:00:00-05:00", 1728432000000LL },
	{ __LINE__, "2024-10-09t00:00:00z", 1728432000000LL },
	{ __LINE__, "2024-10-09 00:00:00Z", 1728432000000LL },   /* RFC 3339 5.6 note */
	{ __LINE__, "2000-01-01T00:00:00Z", 946684800000LL },
	{ __LINE__, "2025-01-01T00:00:00Z", 1735689600000LL },
	{ __LINE__, "2038-01-19T03:14:08Z", 2147483648000LL },
	{ __LINE__, "1969-12-31T23:59:59Z", -1000 },
	{ __LINE__, "1969-12-31T23:59:59.5Z", -500 },
	{ __LINE__, "1600-03-01T00:00:00Z", -11670912000000LL },
	{ __LINE__, "9999-12-31T23:59:59Z", 253402300799000LL },
	/* Fractions: milliseconds kept, the rest truncated. */
	{ __LINE__, "1970-01-01T00:00:00.1Z", 100 },
	{ __LINE__, "1970-01-01T00:00:00.12Z", 120 },
	{ __LINE__, "1970-01-01T00:00:00.123Z", 123 },
	{ __LINE__, "1970-01-01T00:00:00.1239Z", 123 },
	{ __LINE__, "1970-01-01T00:00:00.999999999Z", 999 },
	{ __LINE__, "2024-10-09T00:00:00.250+00:00", 1728432000250LL },
	/* Leap days. */
	{ __LINE__, "2024-02-29T12:00:00Z", 1709208000000LL },
	{ __LINE__, "2000-02-29T00:00:00Z", 951782400000LL },
	{ __LINE__, "2100-02-28T23:59:59Z", 4107542399000LL },
	{ __LINE__, "2023-02-29T00:00:00Z", BAD_TS },
	{ __LINE__, "2100-02-29T00:00:00Z", BAD_TS },
	{ __LINE__, "2024-02-30T00:00:00Z", BAD_TS },
	{ __LINE__, "2024-04-31T00:00:00Z", BAD_TS },
	/* Not timestamps. */
	{ __LINE__, "", BAD_TS },
	{ __LINE__, "not-a-timestamp", BAD_TS },
	{ __LINE__, "tomorrow at noon, please", BAD_TS },
	{ __LINE__, "1728432000", BAD_TS },
	{ __LINE__, "2024-10-09", BAD_TS },
	{ __LINE__, "2024-10-09T00:00Z", BAD_TS },
	{ __LINE__, "24-10-09T00:00:00Z", BAD_TS },
	{ __LINE__, "2024-1-09T00:00:00Z", BAD_TS },
	{ __LINE__, "2024/10/09T00:00:00Z", BAD_TS },
	{ __LINE__, "2024-10-09X00:00:00Z", BAD_TS },
	{ __LINE__, "Wed, 09 Oct 2024 00:00:00 GMT", BAD_TS },
	/* Field ranges. */
	{ __LINE__, "2024-13-01T00:00:00Z", BAD_TS },
	{ __LINE__, "2024-00-01T00:00:00Z", BAD_TS },
	{ __LINE__, "2024-01-00T00:00:00Z", BAD_TS },
	{ __LINE__, "2024-01-32T00:00:00Z", BAD_TS },
	{ __LINE__, "2024-01-01T24:00:00Z", BAD_TS },
	{ __LINE__, "2024-01-01T00:60:00Z", BAD_TS },
	{ __LINE__, "2024-01-01T00:00:61Z", BAD_TS },
	/* Zone. */
	{ __LINE__, "2024-10-09T00:00:00", BAD_TS },
	{ __LINE__, "2024-10-09T00:00:00.5", BAD_TS },
	{ __LINE__, "2024-10-09T00:00:00+0000", BAD_TS },
	{ __LINE__, "2024-10-09T00:00:00+00", BAD_TS },
	{ __LINE__, "2024-10-09T00:00:00+24:00", BAD_TS },
	{ __LINE__, "2024-10-09T00:00:00+00:60", BAD_TS },
	{ __LINE__, "2024-10-09T00:00:00 Z", BAD_TS },
	{ __LINE__, "2024-10-09T00:00:00UTC", BAD_TS },
	{ __LINE__, "2024-10-09T00:00:00GMT", BAD_TS },
	/* Fractions. */
	{ __LINE__, "2024-10-09T00:00:00.Z", BAD_TS },
	{ __LINE__, "2024-10-09T00:00:00,5Z", BAD_TS },
	{ __LINE__, "2024-10-09T00:00:00.1234567890Z", BAD_TS }, /* beyond nanoseconds */
	/* Trailing junk. */
	{ __LINE__, "2024-10-09T00:00:00Zjunk", BAD_TS },
	{ __LINE__, "2024-10-09T00:00:00Z ", BAD_TS },
	{ __LINE__, "2024-10-09T00:00:00ZZ", BAD_TS },
	{ __LINE__, "2024-10-09T00:00:00+00:00Z", BAD_TS },
	{ __LINE__, "2024-10-09T00:00:00+00:00 ", BAD_TS },
	{ __LINE__, " 2024-10-09T00:00:00Z", BAD_TS },
	{ __LINE__, "+2024-10-09T00:00:00Z", BAD_TS },
	{ __LINE__, "-2024-10-09T00:00:00Z", BAD_TS },
	/* Longer than LS_MAX_EXPIRES_AT. */
	{ __LINE__, "2024-10-09T00:00:00.000000000000000000000000000000000000000000000000Z", BAD_TS },
};

static void test_expires_at(void)
{
	for (size_t i = 0; i < NELEM(exp_rows); i++) {
		int line = exp_rows[i].line;
		size_t len = strlen(exp_rows[i].s);
		char *s = unit_dup_exact(exp_rows[i].s, len);
		int64_t ms = 42;
		int rc = parse_expires_at(s, len, &ms);
		if (exp_rows[i].want == BAD_TS) {
			CHECK_INT_AT(line, rc, -1);
		} else {
			CHECK_INT_AT(line, rc, 0);
			if (rc == 0)
				CHECK_INT_AT(line, ms, exp_rows[i].want);
		}
		free(s);
	}

	/* A NUL inside the length. */
	char *s = unit_dup_exact("2024-10-09T00:00:00Z\0", 21);
	int64_t ms;
	CHECK_INT(parse_expires_at(s, 21, &ms), -1);
	free(s);
	s = unit_dup_exact("2024-10-09T00:\0:00Z", 20);
	CHECK_INT(parse_expires_at(s, 20, &ms), -1);
	free(s);
}

/* --- Producer-Epoch / Producer-Seq ------------------------------------------------ */

static const struct {
	int line;
	const char *s;
	size_t len;
	int rc;
	uint64_t want;
} u53_rows[] = {
	{ __LINE__, "0", 0, 0, 0 },
	{ __LINE__, "1", 0, 0, 1 },
	{ __LINE__, "42", 0, 0, 42 },
	{ __LINE__, "9007199254740991", 0, 0, 9007199254740991ULL },   /* 2^53 - 1 */
	{ __LINE__, "9007199254740992", 0, -1, 0 },                    /* 2^53 */
	{ __LINE__, "9999999999999999", 0, -1, 0 },
	{ __LINE__, "18446744073709551615", 0, -1, 0 },
	{ __LINE__, "18446744073709551616", 0, -1, 0 },
	{ __LINE__, "99999999999999999999999", 0, -1, 0 },
	{ __LINE__, "", 0, -1, 0 },
	{ __LINE__, "1abc", 0, -1, 0 },
	{ __LINE__, "0xyz", 0, -1, 0 },
	{ __LINE__, "0x10", 0, -1, 0 },
	{ __LINE__, "1e3", 0, -1, 0 },
	{ __LINE__, "1.0", 0, -1, 0 },
	{ __LINE__, "-1", 0, -1, 0 },
	{ __LINE__, "-0", 0, -1, 0 },
	{ __LINE__, "+1", 0, -1, 0 },
	{ __LINE__, " 1", 0, -1, 0 },
	{ __LINE__, "1 ", 0, -1, 0 },
	{ __LINE__, "abc", 0, -1, 0 },
	{ __LINE__, "1\0", 2, -1, 0 },
};

static void test_uint53(void)
{
	for (size_t i = 0; i < NELEM(u53_rows); i++) {
		int line = u53_rows[i].line;
		size_t len = LEN(u53_rows[i]);
		char *s = unit_dup_exact(u53_rows[i].s, len);
		uint64_t v = 777;
		int rc = parse_uint53(s, len, &v);
		CHECK_INT_AT(line, rc, u53_rows[i].rc);
		if (rc == 0 && u53_rows[i].rc == 0)
			CHECK_UINT_AT(line, v, u53_rows[i].want);
		free(s);
	}
}

/* --- Content-Type ------------------------------------------------------------------- */

static const struct {
	int line;
	const char *s;
	size_t cap;          /* 0: 64 */
	const char *want;    /* NULL: rejected */
} mt_rows[] = {
	{ __LINE__, "text/plain", 0, "text/plain" },
	{ __LINE__, "Text/Plain", 0, "text/plain" },
	{ __LINE__, "APPLICATION/JSON", 0, "application/json" },
	{ __LINE__, "application/json; charset=utf-8", 0, "application/json" },
	{ __LINE__, "application/JSON;charset=UTF-8", 0, "application/json" },
	{ __LINE__, "application/json;", 0, "application/json" },
	{ __LINE__, "application/json ; x=y", 0, "application/json" },
	{ __LINE__, "  application/json  ", 0, "application/json" },
	{ __LINE__, "\ttext/html\t", 0, "text/html" },
	{ __LINE__, "application/vnd.api+json", 0, "application/vnd.api+json" },
	{ __LINE__, "application/octet-stream", 0, "application/octet-stream" },
	{ __LINE__, "x-a!#$%&'*+-.^_`|~/b", 0, "x-a!#$%&'*+-.^_`|~/b" },
	{ __LINE__, "text/plain", 11, "text/plain" },     /* exactly fits with the NUL */
	{ __LINE__, "text/plain", 10, NULL },             /* one byte short */
	{ __LINE__, "text", 0, NULL },
	{ __LINE__, "text/", 0, NULL },
	{ __LINE__, "/x", 0, NULL },
	{ __LINE__, "/", 0, NULL },
	{ __LINE__, "a b/c", 0, NULL },
	{ __LINE__, "a/b c", 0, NULL },
	{ __LINE__, "a/b/c", 0, NULL },
	{ __LINE__, "a//b", 0, NULL },
	{ __LINE__, "", 0, NULL },
	{ __LINE__, "   ", 0, NULL },
	{ __LINE__, ";", 0, NULL },
	{ __LINE__, "; a/b", 0, NULL },
	{ __LINE__, "a/b\"", 0, NULL },
	{ __LINE__, "a(b)/c", 0, NULL },
	{ __LINE__, "a/b,c/d", 0, NULL },
	{ __LINE__, "a/b\r\n", 0, NULL },
	{ __LINE__, "a/\x80", 0, NULL },
	{ __LINE__, "te\xc3\xa9/plain", 0, NULL },
	{ __LINE__, "a/b\x01", 0, NULL },
};

static void test_media_type(void)
{
	for (size_t i = 0; i < NELEM(mt_rows); i++) {
		int line = mt_rows[i].line;
		size_t len = strlen(mt_rows[i].s);
		size_t cap = mt_rows[i].cap ? mt_rows[i].cap : 64;
		char *s = unit_dup_exact(mt_rows[i].s, len);
		char *out = malloc(cap);
		int rc = parse_media_type(s, len, out, cap);
		if (!mt_rows[i].want) {
			CHECK_INT_AT(line, rc, -1);
		} else {
			CHECK_INT_AT(line, rc, (int)strlen(mt_rows[i].want));
			if (rc >= 0)
				CHECK_STR_AT(line, out, mt_rows[i].want);
		}
		free(out);
		free(s);
	}

	/* A NUL is not a token character; the length, not the NUL, ends the value. */
	char out[32];
	CHECK_INT(parse_media_type("a/b\0c", 5, out, sizeof out), -1);
	CHECK_INT(parse_media_type("text/plain", 7, out, sizeof out), 7);
	CHECK_STR(out, "text/pl");
}

/* --- header values that are stored and echoed ------------------------------------------ */

static const struct {
	int line;
	const char *s;
	size_t len;
	size_t max;
	int rc;
} safe_rows[] = {
	{ __LINE__, "abc", 0, 3, 0 },
	{ __LINE__, "abc", 0, 2, -1 },
	{ __LINE__, "a b", 0, 16, 0 },
	{ __LINE__, " ", 0, 16, 0 },
	{ __LINE__, "~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./", 0, 64, 0 },
	{ __LINE__, "", 0, 16, -1 },
	{ __LINE__, "a\tb", 0, 16, -1 },
	{ __LINE__, "a\rb", 0, 16, -1 },
	{ __LINE__, "a\nb", 0, 16, -1 },
	{ __LINE__, "a\x7f", 0, 16, -1 },
	{ __LINE__, "\x80", 0, 16, -1 },
	{ __LINE__, "caf\xc3\xa9", 0, 16, -1 },
	{ __LINE__, "\xff", 0, 16, -1 },
	{ __LINE__, "a\0b", 3, 16, -1 },
	{ __LINE__, "ok\r\nSet-Cookie: x=1", 0, 64, -1 },
};

static void test_header_safe(void)
{
	for (size_t i = 0; i < NELEM(safe_rows); i++) {
		int line = safe_rows[i].line;
		size_t len = LEN(safe_rows[i]);
		char *s = unit_dup_exact(safe_rows[i].s, len);
		CHECK_INT_AT(line, parse_header_safe(s, len, safe_rows[i].max), safe_rows[i].rc);
		free(s);
	}
	/* Exactly at the limit. */
	char big[LS_MAX_PRODUCER_ID + 1];
	memset(big, 'p', sizeof big);
	CHECK_INT(parse_header_safe(big, LS_MAX_PRODUCER_ID, LS_MAX_PRODUCER_ID), 0);
	CHECK_INT(parse_header_safe(big, LS_MAX_PRODUCER_ID + 1, LS_MAX_PRODUCER_ID), -1);
}

/* --- stream path --------------------------------------------------------------------------- */

#define PFX "/v1/stream/"

static const struct {
	int line;
	const char *target;
	size_t len;              /* 0: strlen */
	const char *prefix;      /* NULL: PFX */
	size_t max;              /* 0: 16 */
	enum path_error rc;
	const char *name;        /* on PATH_OK */
	size_t nlen;             /* 0: strlen(name) */
} path_rows[] = {
	{ __LINE__, PFX "a", 0, NULL, 0, PATH_OK, "a", 0 },
	{ __LINE__, PFX "my-stream_1.log", 0, NULL, 0, PATH_OK, "my-stream_1.log", 0 },
	{ __LINE__, PFX "a/b/c", 0, NULL, 0, PATH_OK, "a/b/c", 0 },
	/* Web servers match their path rules against "a%2Fb": a name with
	 * %2F is refused, so that the name they checked is the name used. */
	{ __LINE__, PFX "a%2Fb", 0, NULL, 0, PATH_ENCODED_SLASH, NULL, 0 },
	{ __LINE__, PFX "a%2fb", 0, NULL, 0, PATH_ENCODED_SLASH, NULL, 0 },
	{ __LINE__, PFX "private%2F", 0, NULL, 0, PATH_ENCODED_SLASH, NULL, 0 },
	{ __LINE__, PFX "a%252Fb", 0, NULL, 0, PATH_OK, "a%2Fb", 0 },
	{ __LINE__, PFX "a%20b", 0, NULL, 0, PATH_OK, "a b", 0 },
	{ __LINE__, PFX "%41%42", 0, NULL, 0, PATH_OK, "AB", 0 },
	{ __LINE__, PFX "caf%C3%A9", 0, NULL, 0, PATH_OK, "caf\xc3\xa9", 0 },
	{ __LINE__, PFX "caf\xc3\xa9", 0, NULL, 0, PATH_OK, "caf\xc3\xa9", 0 },
	{ __LINE__, PFX "a+b", 0, NULL, 0, PATH_OK, "a+b", 0 },
	{ __LINE__, PFX "...", 0, NULL, 0, PATH_OK, "...", 0 },
	{ __LINE__, PFX ".a", 0, NULL, 0, PATH_OK, ".a", 0 },
	{ __LINE__, PFX "..a", 0, NULL, 0, PATH_OK, "..a", 0 },
	{ __LINE__, PFX "a..", 0, NULL, 0, PATH_OK, "a..", 0 },
	{ __LINE__, PFX "a/..b/c", 0, NULL, 0, PATH_OK, "a/..b/c", 0 },
	{ __LINE__, "/s/x", 0, "/s/", 0, PATH_OK, "x", 0 },
	{ __LINE__, "/x", 0, "/", 0, PATH_OK, "x", 0 },
	/* Only target_len bytes count. */
	{ __LINE__, PFX "abc?offset=1", sizeof PFX - 1 + 3, NULL, 0, PATH_OK, "abc", 0 },

	{ __LINE__, "", 0, NULL, 0, PATH_NOT_PREFIX, NULL, 0 },
	{ __LINE__, "/", 0, NULL, 0, PATH_NOT_PREFIX, NULL, 0 },
	{ __LINE__, "/v1/stream", 0, NULL, 0, PATH_NOT_PREFIX, NULL, 0 },
	{ __LINE__, "/v1/streams/a", 0, NULL, 0, PATH_NOT_PREFIX, NULL, 0 },
	{ __LINE__, "/v2/stream/a", 0, NULL, 0, PATH_NOT_PREFIX, NULL, 0 },
	{ __LINE__, "v1/stream/a", 0, NULL, 0, PATH_NOT_PREFIX, NULL, 0 },
	{ __LINE__, "/V1/STREAM/a", 0, NULL, 0, PATH_NOT_PREFIX, NULL, 0 },
	{ __LINE__, "/v1%2Fstream/a", 0, NULL, 0, PATH_NOT_PREFIX, NULL, 0 },
	{ __LINE__, "//v1/stream/a", 0, NULL, 0, PATH_NOT_PREFIX, NULL, 0 },
	{ __LINE__, PFX, 0, NULL, 0, PATH_EMPTY, NULL, 0 },

	{ __LINE__, PFX "%00", 0, NULL, 0, PATH_BAD_CHAR, NULL, 0 },
	{ __LINE__, PFX "a%00b", 0, NULL, 0, PATH_BAD_CHAR, NULL, 0 },
	{ __LINE__, PFX "a%0d%0aSet-Cookie:x", 0, NULL, 64, PATH_BAD_CHAR, NULL, 0 },
	{ __LINE__, PFX "a%0D", 0, NULL, 0, PATH_BAD_CHAR, NULL, 0 },
	{ __LINE__, PFX "a%0A", 0, NULL, 0, PATH_BAD_CHAR, NULL, 0 },
	{ __LINE__, PFX "a%09", 0, NULL, 0, PATH_BAD_CHAR, NULL, 0 },
	{ __LINE__, PFX "a%7F", 0, NULL, 0, PATH_BAD_CHAR, NULL, 0 },
	{ __LINE__, PFX "a%1f", 0, NULL, 0, PATH_BAD_CHAR, NULL, 0 },
	{ __LINE__, PFX "a\tb", 0, NULL, 0, PATH_BAD_CHAR, NULL, 0 },
	{ __LINE__, PFX "a\rb", 0, NULL, 0, PATH_BAD_CHAR, NULL, 0 },
	{ __LINE__, PFX "a\x7f", 0, NULL, 0, PATH_BAD_CHAR, NULL, 0 },
	{ __LINE__, PFX "a\0b", sizeof PFX - 1 + 3, NULL, 0, PATH_BAD_CHAR, NULL, 0 },

	{ __LINE__, PFX "..", 0, NULL, 0, PATH_DOT_SEGMENT, NULL, 0 },
	{ __LINE__, PFX ".", 0, NULL, 0, PATH_DOT_SEGMENT, NULL, 0 },
	{ __LINE__, PFX "%2e%2e", 0, NULL, 0, PATH_DOT_SEGMENT, NULL, 0 },
	{ __LINE__, PFX "%2E%2E", 0, NULL, 0, PATH_DOT_SEGMENT, NULL, 0 },
	{ __LINE__, PFX ".%2e", 0, NULL, 0, PATH_DOT_SEGMENT, NULL, 0 },
	{ __LINE__, PFX "%2e", 0, NULL, 0, PATH_DOT_SEGMENT, NULL, 0 },
	{ __LINE__, PFX "a/./b", 0, NULL, 0, PATH_DOT_SEGMENT, NULL, 0 },
	{ __LINE__, PFX "a/../b", 0, NULL, 0, PATH_DOT_SEGMENT, NULL, 0 },
	{ __LINE__, PFX "a/..", 0, NULL, 0, PATH_DOT_SEGMENT, NULL, 0 },
	{ __LINE__, PFX "a/.", 0, NULL, 0, PATH_DOT_SEGMENT, NULL, 0 },
	{ __LINE__, PFX "./a", 0, NULL, 0, PATH_DOT_SEGMENT, NULL, 0 },
	{ __LINE__, PFX "../a", 0, NULL, 0, PATH_DOT_SEGMENT, NULL, 0 },
	{ __LINE__, PFX "a%2F..%2Fb", 0, NULL, 0, PATH_ENCODED_SLASH, NULL, 0 },
	{ __LINE__, PFX "a/%2e%2e", 0, NULL, 0, PATH_DOT_SEGMENT, NULL, 0 },
	{ __LINE__, PFX "..%2Fetc%2Fpasswd", 0, NULL, 0, PATH_ENCODED_SLASH, NULL, 0 },

	{ __LINE__, PFX "%", 0, NULL, 0, PATH_BAD_ESCAPE, NULL, 0 },
	{ __LINE__, PFX "a%", 0, NULL, 0, PATH_BAD_ESCAPE, NULL, 0 },
	{ __LINE__, PFX "a%4", 0, NULL, 0, PATH_BAD_ESCAPE, NULL, 0 },
	{ __LINE__, PFX "%G1", 0, NULL, 0, PATH_BAD_ESCAPE, NULL, 0 },
	{ __LINE__, PFX "%1G", 0, NULL, 0, PATH_BAD_ESCAPE, NULL, 0 },
	{ __LINE__, PFX "%%41", 0, NULL, 0, PATH_BAD_ESCAPE, NULL, 0 },
	{ __LINE__, PFX "%-1", 0, NULL, 0, PATH_BAD_ESCAPE, NULL, 0 },
	{ __LINE__, PFX "% 1", 0, NULL, 0, PATH_BAD_ESCAPE, NULL, 0 },
	{ __LINE__, PFX "%41%4", 0, NULL, 0, PATH_BAD_ESCAPE, NULL, 0 },
	/* The escape must lie within the length. */
	{ __LINE__, PFX "a%41", sizeof PFX - 1 + 3, NULL, 0, PATH_BAD_ESCAPE, NULL, 0 },

	/* max_name 16. */
	{ __LINE__, PFX "aaaaaaaaaaaaaaaa", 0, NULL, 0, PATH_OK, "aaaaaaaaaaaaaaaa", 0 },
	{ __LINE__, PFX "aaaaaaaaaaaaaaaaa", 0, NULL, 0, PATH_TOO_LONG, NULL, 0 },
	{ __LINE__, PFX "%61%61%61%61%61%61%61%61%61%61%61%61%61%61%61%61", 0, NULL, 0, PATH_OK,
	  "aaaaaaaaaaaaaaaa", 0 },
	{ __LINE__, PFX "%61%61%61%61%61%61%61%61%61%61%61%61%61%61%61%61a", 0, NULL, 0,
	  PATH_TOO_LONG, NULL, 0 },
	{ __LINE__, PFX "%61%61%61%61%61%61%61%61%61%61%61%61%61%61%61%61%61", 0, NULL, 0,
	  PATH_TOO_LONG, NULL, 0 },
	{ __LINE__, PFX "a", 0, NULL, 1, PATH_OK, "a", 0 },
	{ __LINE__, PFX "ab", 0, NULL, 1, PATH_TOO_LONG, NULL, 0 },
};

static void test_stream_path(void)
{
	for (size_t i = 0; i < NELEM(path_rows); i++) {
		int line = path_rows[i].line;
		size_t len = path_rows[i].len ? path_rows[i].len : strlen(path_rows[i].target);
		size_t max = path_rows[i].max ? path_rows[i].max : 16;
		const char *prefix = path_rows[i].prefix ? path_rows[i].prefix : PFX;
		char *t = unit_dup_exact(path_rows[i].target, len);
		char *out = malloc(max + 1);   /* exactly what the contract asks for */
		size_t olen = 9999;
		enum path_error rc = parse_stream_path(t, len, prefix, max, out, &olen);
		CHECK_INT_AT(line, rc, path_rows[i].rc);
		if (rc == PATH_OK && path_rows[i].rc == PATH_OK) {
			size_t wl = path_rows[i].nlen ? path_rows[i].nlen : strlen(path_rows[i].name);
			CHECK_MEM_AT(line, out, olen, path_rows[i].name, wl);
			CHECK_AT(line, out[olen] == '\0');
		}
		free(out);
		free(t);
	}

	/* The default and the hard maximum. */
	char target[sizeof PFX + 3 * LS_MAX_PATH_HARD + 8];
	char out[LS_MAX_PATH_HARD + 1];
	size_t olen;
	size_t p = (size_t)snprintf(target, sizeof target, "%s", PFX);
	memset(target + p, 'x', LS_DEFAULT_MAX_PATH);
	CHECK_INT(parse_stream_path(target, p + LS_DEFAULT_MAX_PATH, PFX, LS_DEFAULT_MAX_PATH, out, &olen), PATH_OK);
	CHECK_UINT(olen, LS_DEFAULT_MAX_PATH);
	target[p + LS_DEFAULT_MAX_PATH] = 'x';
	CHECK_INT(parse_stream_path(target, p + LS_DEFAULT_MAX_PATH + 1, PFX, LS_DEFAULT_MAX_PATH, out, &olen),
	          PATH_TOO_LONG);
	for (size_t i = 0; i < LS_MAX_PATH_HARD; i++)
		memcpy(target + p + 3 * i, "%7e", 3);
	CHECK_INT(parse_stream_path(target, p + 3 * LS_MAX_PATH_HARD, PFX, LS_MAX_PATH_HARD, out, &olen), PATH_OK);
	CHECK_UINT(olen, LS_MAX_PATH_HARD);
	CHECK(out[0] == '~' && out[LS_MAX_PATH_HARD - 1] == '~' && out[LS_MAX_PATH_HARD] == '\0');
}

/* --- query string ------------------------------------------------------------------------ */

static const struct {
	int line;
	const char *q;
	const char *name;
	size_t cap;           /* 0: 64 */
	int count;
	const char *val;      /* NULL: *vlen == (size_t)-1 */
	size_t vlen;          /* 0: strlen(val) */
} query_rows[] = {
	{ __LINE__, "offset=1", "offset", 0, 1, "1", 0 },
	{ __LINE__, "offset=-1&live=sse", "offset", 0, 1, "-1", 0 },
	{ __LINE__, "offset=-1&live=sse", "live", 0, 1, "sse", 0 },
	{ __LINE__, "live=sse&offset=now", "offset", 0, 1, "now", 0 },
	{ __LINE__, "live=sse", "offset", 0, 0, NULL, 0 },
	{ __LINE__, "", "offset", 0, 0, NULL, 0 },
	{ __LINE__, "&", "offset", 0, 0, NULL, 0 },
	{ __LINE__, "&&offset=5&&", "offset", 0, 1, "5", 0 },
	/* Repeats are counted; the first value is returned. */
	{ __LINE__, "offset=1&offset=2", "offset", 0, 2, "1", 0 },
	{ __LINE__, "offset=1&live=sse&offset=2&offset=3", "offset", 0, 3, "1", 0 },
	{ __LINE__, "offset&offset=2", "offset", 0, 2, "", 0 },
	/* A missing '=' is an empty value. */
	{ __LINE__, "offset", "offset", 0, 1, "", 0 },
	{ __LINE__, "offset=", "offset", 0, 1, "", 0 },
	{ __LINE__, "live&offset=1", "live", 0, 1, "", 0 },
	{ __LINE__, "offset=1=2", "offset", 0, 1, "1=2", 0 },
	/* Names must match exactly and are not decoded. */
	{ __LINE__, "xoffset=1&offsetx=2&Offset=3", "offset", 0, 0, NULL, 0 },
	{ __LINE__, "off%73et=1", "offset", 0, 0, NULL, 0 },
	{ __LINE__, "offset=1;live=sse", "offset", 0, 1, "1;live=sse", 0 },
	/* Values are percent-decoded ('+' stays '+'). */
	{ __LINE__, "cursor=a%20b", "cursor", 0, 1, "a b", 0 },
	{ __LINE__, "offset=%2D1", "offset", 0, 1, "-1", 0 },
	{ __LINE__, "offset=0000000000000001%5F0000000000000005", "offset", 0, 1,
	  "0000000000000001_0000000000000005", 0 },
	{ __LINE__, "x=a+b", "x", 0, 1, "a+b", 0 },
	{ __LINE__, "x=%00", "x", 0, 1, "\0", 1 },
	{ __LINE__, "x=%", "x", 0, 1, NULL, 0 },
	{ __LINE__, "x=%4", "x", 0, 1, NULL, 0 },
	{ __LINE__, "x=%G1", "x", 0, 1, NULL, 0 },
	{ __LINE__, "x=%&x=1", "x", 0, 2, NULL, 0 },
	/* Overflow of val. */
	{ __LINE__, "x=abcdef", "x", 7, 1, "abcdef", 0 },
	{ __LINE__, "x=abcdef", "x", 6, 1, NULL, 0 },
	{ __LINE__, "x=abcdef", "x", 1, 1, NULL, 0 },
	{ __LINE__, "x=", "x", 1, 1, "", 0 },
	{ __LINE__, "x=%41%42%43", "x", 4, 1, "ABC", 0 },
	{ __LINE__, "x=%41%42%43", "x", 3, 1, NULL, 0 },
};


/* What a handler wants of the iterator: how often name occurs, and its
 * first value percent-decoded into val (vlen (size_t)-1 when it does not
 * fit or is malformed). */
static int query_param(const char *q, size_t qlen, const char *name, char *val, size_t cap, size_t *vlen)
{
	struct query_pair p;
	int count = 0;
	*vlen = (size_t)-1;
	for (size_t pos = 0; parse_query_next(q, qlen, &pos, &p);) {
		if (p.klen != strlen(name) || memcmp(p.key, name, p.klen))
			continue;
		if (count++ == 0) {
			long d = parse_percent_decode(p.val, p.vlen, val, cap);
			if (d >= 0)
				*vlen = (size_t)d;
		}
	}
	return count;
}

static void test_query(void)
{
	for (size_t i = 0; i < NELEM(query_rows); i++) {
		int line = query_rows[i].line;
		size_t qlen = strlen(query_rows[i].q);
		size_t cap = query_rows[i].cap ? query_rows[i].cap : 64;
		char *q = unit_dup_exact(query_rows[i].q, qlen);
		char *val = malloc(cap);
		size_t vlen = 12345;
		int n = query_param(q, qlen, query_rows[i].name, val, cap, &vlen);
		CHECK_INT_AT(line, n, query_rows[i].count);
		if (!query_rows[i].val) {
			CHECK_UINT_AT(line, vlen, (size_t)-1);
		} else {
			size_t wl = query_rows[i].vlen ? query_rows[i].vlen : strlen(query_rows[i].val);
			CHECK_UINT_AT(line, vlen, wl);
			if (vlen == wl) {
				CHECK_MEM_AT(line, val, vlen, query_rows[i].val, wl);
				CHECK_AT(line, val[vlen] == '\0');
			}
		}
		free(val);
		free(q);
	}
}

/* --- percent-decoding ------------------------------------------------------------------------ */

static const struct {
	int line;
	const char *in;
	size_t cap;        /* 0: 64 */
	long rc;
	const char *out;   /* rc bytes */
} pct_rows[] = {
	{ __LINE__, "", 0, 0, "" },
	{ __LINE__, "", 1, 0, "" },
	{ __LINE__, "abc", 0, 3, "abc" },
	{ __LINE__, "abc", 4, 3, "abc" },
	{ __LINE__, "abc", 3, -1, NULL },
	{ __LINE__, "%41", 0, 1, "A" },
	{ __LINE__, "%4a%4A", 0, 2, "JJ" },
	{ __LINE__, "%e2%82%AC", 0, 3, "\xe2\x82\xac" },
	{ __LINE__, "%00", 0, 1, "\0" },
	{ __LINE__, "%25", 0, 1, "%" },
	{ __LINE__, "%2541", 0, 3, "%41" },    /* decoded once only */
	{ __LINE__, "a+b", 0, 3, "a+b" },
	{ __LINE__, "%", 0, -1, NULL },
	{ __LINE__, "%4", 0, -1, NULL },
	{ __LINE__, "a%", 0, -1, NULL },
	{ __LINE__, "a%2", 0, -1, NULL },
	{ __LINE__, "%G1", 0, -1, NULL },
	{ __LINE__, "%1G", 0, -1, NULL },
	{ __LINE__, "%%", 0, -1, NULL },
	{ __LINE__, "%%41", 0, -1, NULL },
	{ __LINE__, "%x", 0, -1, NULL },
	{ __LINE__, "% 41", 0, -1, NULL },
	{ __LINE__, "%41", 2, 1, "A" },
	{ __LINE__, "%41", 1, -1, NULL },
	{ __LINE__, "%41%42", 2, -1, NULL },
};

static void test_percent_decode(void)
{
	for (size_t i = 0; i < NELEM(pct_rows); i++) {
		int line = pct_rows[i].line;
		size_t len = strlen(pct_rows[i].in);
		size_t cap = pct_rows[i].cap ? pct_rows[i].cap : 64;
		char *in = unit_dup_exact(pct_rows[i].in, len);
		char *out = malloc(cap);
		long rc = parse_percent_decode(in, len, out, cap);
		CHECK_INT_AT(line, rc, pct_rows[i].rc);
		if (rc >= 0 && rc == pct_rows[i].rc) {
			CHECK_MEM_AT(line, out, (size_t)rc, pct_rows[i].out, (size_t)rc);
			CHECK_AT(line, out[rc] == '\0');
		}
		free(out);
		free(in);
	}
	/* cap 0: nothing may be written, not even the NUL. */
	char c = 'z';
	CHECK_INT(parse_percent_decode("", 0, &c, 0), -1);
	CHECK(c == 'z');
	CHECK_INT(parse_percent_decode("a", 1, &c, 0), -1);
	CHECK(c == 'z');
	/* The escape must lie within the length. */
	char out[8];
	CHECK_INT(parse_percent_decode("a%41", 3, out, sizeof out), -1);
}

/* --- lists of words -------------------------------------------------------------------- */

static const struct {
	int line;
	const char *list;
	const char *words;   /* the words found, joined by '|' */
} word_rows[] = {
	{ __LINE__, NULL, "" },
	{ __LINE__, "", "" },
	{ __LINE__, " \t ", "" },
	{ __LINE__, "a", "a" },
	{ __LINE__, "demo/** chat/**", "demo/**|chat/**" },
	{ __LINE__, "  a\t\tb  c ", "a|b|c" },
	{ __LINE__, "https://app.example\thttp://x:8080", "https://app.example|http://x:8080" },
};

static void test_words(void)
{
	for (size_t i = 0; i < NELEM(word_rows); i++) {
		char got[128] = "";
		size_t used = 0, pos = 0, n;
		const char *w;
		while (parse_next_word(word_rows[i].list, &pos, &w, &n))
			used += (size_t)snprintf(got + used, sizeof got - used, "%s%.*s", used ? "|" : "", (int)n, w);
		CHECK_STR_AT(word_rows[i].line, got, word_rows[i].words);
	}
}

/* Forwarded (RFC 7239): a parameter of the last element only. */
static const struct {
	int line;
	const char *h, *name;
	int len;              /* -1: none */
	const char *value;
} fw_rows[] = {
	{ __LINE__, "for=127.0.0.1;remote_user=\"alice\"", "remote_user", 5, "alice" },
	{ __LINE__, "for=127.0.0.1;remote_user=alice", "remote_user", 5, "alice" },
	{ __LINE__, "for=127.0.0.1;Remote_User=alice", "remote_user", 5, "alice" },
	{ __LINE__, "proto=https;remote_user=\"a b\"", "proto", 5, "https" },
	{ __LINE__, "proto=http;remote_user=\"a b\"", "remote_user", 3, "a b" },
	{ __LINE__, "remote_user=\"a\\\"b\\\\c\"", "remote_user", 5, "a\"b\\c" },
	{ __LINE__, "remote_user=\"a,b;c=d\"", "remote_user", 7, "a,b;c=d" },
	/* only the last element counts: a client's earlier one never does */
	{ __LINE__, "remote_user=admin, for=127.0.0.1", "remote_user", -1, NULL },
	{ __LINE__, "for=1.2.3.4;remote_user=admin, for=127.0.0.1;remote_user=bob", "remote_user", 3, "bob" },
	{ __LINE__, "for=1.2.3.4;remote_user=admin , for=127.0.0.1", "remote_user", -1, NULL },
	{ __LINE__, "for=x;remote_user=admin,", "remote_user", -1, NULL },
	{ __LINE__, "for=\"x,remote_user=admin\", for=y", "remote_user", -1, NULL },
	{ __LINE__, "for=127.0.0.1", "remote_user", -1, NULL },
	{ __LINE__, "", "remote_user", -1, NULL },
	/* malformed anywhere: nothing */
	{ __LINE__, "remote_user=\"alice", "remote_user", -1, NULL },
	{ __LINE__, "remote_user=\"alice\"x", "remote_user", -1, NULL },
	{ __LINE__, "remote_user=al\"ice", "remote_user", -1, NULL },
	{ __LINE__, "remote_user", "remote_user", -1, NULL },
	{ __LINE__, "=alice", "remote_user", -1, NULL },
	{ __LINE__, "remote_user=\"al\nice\"", "remote_user", -1, NULL },
	{ __LINE__, "remote_user=\"a\\", "remote_user", -1, NULL },
	{ __LINE__, "for=x y;remote_user=a", "remote_user", -1, NULL },
	/* too long for the buffer (16 bytes here) */
	{ __LINE__, "remote_user=0123456789abcdef", "remote_user", -1, NULL },
	{ __LINE__, "remote_user=0123456789abcde", "remote_user", 15, "0123456789abcde" },
};

static void test_forwarded(void)
{
	for (size_t i = 0; i < NELEM(fw_rows); i++) {
		char out[16] = "";
		int n = parse_forwarded_last(fw_rows[i].h, fw_rows[i].name, out, sizeof out);
		CHECK_INT_AT(fw_rows[i].line, n, fw_rows[i].len);
		if (n >= 0 && fw_rows[i].value)
			CHECK_STR_AT(fw_rows[i].line, out, fw_rows[i].value);
	}
}

int main(void)
{
	test_forwarded();
	test_words();
	test_ttl();
	test_expires_at();
	test_uint53();
	test_media_type();
	test_header_safe();
	test_stream_path();
	test_query();
	test_percent_decode();
	return unit_done();
}
