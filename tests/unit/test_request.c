/* test_request.c: unit tests of src/core/request.c (req_parse and the media
 * type helpers) and of the error table (proto_err_status, proto_err_reason,
 * proto_status_text), with no store: struct proto_request in, struct req or
 * an enum proto_err out.
 *
 * Every table row is a request (method, path, query, headers, body) and what
 * req_parse must give: its error, and for a valid request the typed fields.
 * The target and the query are passed as heap copies of exactly their length
 * (no NUL), so AddressSanitizer and valgrind see any read past them. After
 * every valid parse, the fields of the methods that were not asked stay
 * zero (check_untouched). */
#include "core/request.h"
#include "unit.h"

#include <stdlib.h>

#define P(name) "/v1/stream/" name

/* The request part of a row. */
#define REQ_FIELDS \
	int line; \
	enum proto_method m; \
	const char *path;         /* NULL: P("s") */ \
	const char *query;        /* NULL: no query at all */ \
	const char *body;         /* NULL: none */ \
	int too_large, https; \
	const char *h[H__COUNT]

/* Headers, as designated initializers of a row. */
#define CT(v) .h[H_CONTENT_TYPE] = (v)
#define HOST(v) .h[H_HOST] = (v)
#define INM(v) .h[H_IF_NONE_MATCH] = (v)
#define IFM(v) .h[H_IF_MATCH] = (v)
#define SSEQ(v) .h[H_STREAM_SEQ] = (v)
#define TTL(v) .h[H_STREAM_TTL] = (v)
#define EXP(v) .h[H_STREAM_EXPIRES_AT] = (v)
#define CLOSED(v) .h[H_STREAM_CLOSED] = (v)
#define PID(v) .h[H_PRODUCER_ID] = (v)
#define PEP(v) .h[H_PRODUCER_EPOCH] = (v)
#define PSEQ(v) .h[H_PRODUCER_SEQ] = (v)
#define PROD(id, epoch, seq) PID(id), PEP(epoch), PSEQ(seq)
#define FROM(v) .h[H_FORKED_FROM] = (v)
#define FOFF(v) .h[H_FORK_OFFSET] = (v)
#define FSUB(v) .h[H_FORK_SUB_OFFSET] = (v)
#define JS "application/json"
#define TXT "text/plain"

static struct config cfg;        /* the defaults: prefix /v1/stream/, names of 400 bytes */
static struct config cfg_small;  /* prefix /s/, names of 16 bytes */

struct in {
	int line;
	enum proto_method m;
	const char *path, *query, *body;
	int too_large, https;
	const char *const *h;
};

#define IN(row) ((struct in){ (row)->line, (row)->m, (row)->path, (row)->query, (row)->body, \
                             (row)->too_large, (row)->https, (row)->h })

/* "E_OFFSET" for E_OFFSET, for failure messages. */
static const char *err_name(enum proto_err e)
{
	static const char *names[] = {
		"E_OK",
#define NAME(name, status, reason) #name,
		PROTO_ERRORS(NAME)
#undef NAME
	};
	return (unsigned)e < NELEM(names) ? names[e] : "(out of range)";
}

static const char *method_name(enum proto_method m)
{
	static const char *names[] = { "GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "OTHER" };
	return (unsigned)m < NELEM(names) ? names[m] : "?";
}

/* The fields of the methods other than m stay zero: req_parse reads only
 * what m reads. */
static void check_untouched(int line, enum proto_method m, const struct req *r)
{
	if (m != M_GET) {
		CHECK_INT_AT(line, r->has_offset, 0);
		CHECK_INT_AT(line, r->live, LIVE_NONE);
		CHECK_STR_AT(line, r->cursor, "");
		CHECK_INT_AT(line, r->snapshot, 0);
		CHECK_INT_AT(line, r->has_token, 0);
		CHECK_AT(line, r->if_none_match == NULL);
	}
	if (m != M_PUT) {
		CHECK_INT_AT(line, r->state, 0);
		CHECK_UINT_AT(line, r->ret_age_s, 0);
		CHECK_UINT_AT(line, r->ret_bytes, 0);
		CHECK_INT_AT(line, r->has_ttl, 0);
		CHECK_AT(line, r->expires_at == NULL);
		CHECK_INT_AT(line, r->is_fork, 0);
		CHECK_INT_AT(line, r->has_fork_offset, 0);
		CHECK_UINT_AT(line, r->fork_sub, 0);
	}
	if (m != M_PUT && m != M_POST) {
		CHECK_AT(line, r->ct.raw == NULL);
		CHECK_INT_AT(line, r->closed, 0);
	}
	if (m != M_POST) {
		CHECK_INT_AT(line, r->compact, 0);
		CHECK_INT_AT(line, r->has_producer, 0);
		CHECK_AT(line, r->producer_id == NULL);
		CHECK_AT(line, r->stream_seq == NULL);
		CHECK_AT(line, r->if_match == NULL);
	}
}

/* Parses the row's request with c (NULL: cfg) into r and checks the error
 * and, for a valid request, what every method shares. Returns 1 when the
 * request parsed as wanted and was valid: the caller checks its fields. */
static int parse_as(const struct config *c, struct in in, enum proto_err want, struct req *r)
{
	const char *path = in.path ? in.path : P("s");
	size_t plen = strlen(path), qlen = in.query ? strlen(in.query) : 0;
	struct proto_request raw;
	memset(&raw, 0, sizeof raw);
	raw.method = in.m;
	raw.target = unit_dup_exact(path, plen);
	raw.target_len = plen;
	raw.query = in.query ? unit_dup_exact(in.query, qlen) : NULL;
	raw.query_len = qlen;
	for (int i = 0; i < H__COUNT; i++)
		raw.h[i] = in.h[i];
	raw.https = in.https;
	raw.body = in.body;
	raw.body_len = in.body ? strlen(in.body) : 0;
	raw.body_too_large = in.too_large;

	memset(r, 0x5a, sizeof *r);   /* req_parse must set every field */
	enum proto_err got = req_parse(&raw, c ? c : &cfg, r);
	free((char *)raw.target);
	free((char *)raw.query);

	unit_result(got == want, __FILE__, in.line, "req_parse %s %s?%s: got %s, want %s",
	            method_name(in.m), unit_show(path, plen), in.query ? unit_show(in.query, qlen) : "",
	            err_name(got), err_name(want));
	CHECK_INT_AT(in.line, r->method, in.m);
	if (got != E_OK || want != E_OK)
		return 0;
	CHECK_AT(in.line, r->host == in.h[H_HOST]);
	CHECK_INT_AT(in.line, r->https, in.https);
	CHECK_AT(in.line, in.body ? r->body == in.body : (r->body && !strcmp(r->body, "")));
	CHECK_UINT_AT(in.line, r->body_len, in.body ? strlen(in.body) : 0);
	check_untouched(in.line, in.m, r);
	return 1;
}

/* --- paths ------------------------------------------------------------------------ */

static const struct {
	REQ_FIELDS;
	int small;                /* parse with cfg_small */
	enum proto_err want;
	const char *name;         /* the decoded name of a valid request */
} path_rows[] = {
	{ __LINE__, M_GET, P("a"), .name = "a" },
	{ __LINE__, M_GET, P("a/b/c"), .name = "a/b/c" },
	{ __LINE__, M_GET, P("d%20e/f/g"), .name = "d e/f/g" },
	{ __LINE__, M_GET, P("d%20e/f%2Fg"), .want = E_PATH_SLASH },
	{ __LINE__, M_PUT, P("caf%C3%A9"), .name = "caf\xc3\xa9" },
	{ __LINE__, M_PUT, P("caf\xc3\xa9"), .name = "caf\xc3\xa9" },   /* bytes above 0x7f as they are */
	{ __LINE__, M_POST, P("%41%62"), .body = "x", CT(TXT), .name = "Ab" },
	{ __LINE__, M_DELETE, P("..."), .name = "..." },
	{ __LINE__, M_HEAD, P(".a/b."), .name = ".a/b." },
	{ __LINE__, M_GET, P("a//b"), .name = "a//b" },
	{ __LINE__, M_GET, P("a/"), .name = "a/" },
	{ __LINE__, M_GET, P("~!$&'()*+,;=:@"), .name = "~!$&'()*+,;=:@" },
	/* Not under the prefix, or the prefix alone: 404. */
	{ __LINE__, M_GET, "", .want = E_NOT_FOUND },
	{ __LINE__, M_GET, "/", .want = E_NOT_FOUND },
	{ __LINE__, M_PUT, "/v1/stream", .want = E_NOT_FOUND },
	{ __LINE__, M_PUT, "/v1/stream/", .want = E_NOT_FOUND },
	{ __LINE__, M_PUT, "/v1/other/x", .want = E_NOT_FOUND },
	{ __LINE__, M_GET, "/V1/stream/x", .want = E_NOT_FOUND },
	{ __LINE__, M_GET, "v1/stream/x", .want = E_NOT_FOUND },
	{ __LINE__, M_GET, "/v1/stream%2Fx", .want = E_NOT_FOUND },
	{ __LINE__, M_DELETE, "/elsewhere", .want = E_NOT_FOUND },
	{ __LINE__, M_OTHER, "/anything", .want = E_NOT_FOUND },
	/* Malformed escapes. */
	{ __LINE__, M_GET, P("%"), .want = E_PATH_ESCAPE },
	{ __LINE__, M_GET, P("a%"), .want = E_PATH_ESCAPE },
	{ __LINE__, M_GET, P("a%4"), .want = E_PATH_ESCAPE },
	{ __LINE__, M_PUT, P("a%G1"), .want = E_PATH_ESCAPE },
	{ __LINE__, M_PUT, P("a%zz"), .want = E_PATH_ESCAPE },
	{ __LINE__, M_PUT, P("%%41"), .want = E_PATH_ESCAPE },
	/* Control bytes, raw or escaped. */
	{ __LINE__, M_PUT, P("a%00"), .want = E_PATH_CHAR },
	{ __LINE__, M_PUT, P("a%0d%0a"), .want = E_PATH_CHAR },
	{ __LINE__, M_PUT, P("a%09b"), .want = E_PATH_CHAR },
	{ __LINE__, M_PUT, P("a%7f"), .want = E_PATH_CHAR },
	{ __LINE__, M_PUT, P("a%1F"), .want = E_PATH_CHAR },
	{ __LINE__, M_GET, P("a\x01"), .want = E_PATH_CHAR },
	{ __LINE__, M_GET, P("a\tb"), .want = E_PATH_CHAR },
	{ __LINE__, M_GET, P("a\x7f"), .want = E_PATH_CHAR },
	/* "." and ".." segments, raw or escaped. */
	{ __LINE__, M_PUT, P("."), .want = E_PATH_DOT },
	{ __LINE__, M_PUT, P(".."), .want = E_PATH_DOT },
	{ __LINE__, M_PUT, P("a/./b"), .want = E_PATH_DOT },
	{ __LINE__, M_PUT, P("a/../b"), .want = E_PATH_DOT },
	{ __LINE__, M_PUT, P("a/.."), .want = E_PATH_DOT },
	{ __LINE__, M_PUT, P("./a"), .want = E_PATH_DOT },
	{ __LINE__, M_PUT, P("a/%2e%2e/b"), .want = E_PATH_DOT },
	{ __LINE__, M_PUT, P("%2E"), .want = E_PATH_DOT },
	{ __LINE__, M_PUT, P("a%2F..%2Fb"), .want = E_PATH_SLASH },
	/* Length: at most max_path decoded bytes (cfg_small: 16), and at most
	 * three times that before decoding. */
	{ __LINE__, M_GET, "/s/0123456789abcdef", .small = 1, .name = "0123456789abcdef" },
	{ __LINE__, M_GET, "/s/0123456789abcdefg", .small = 1, .want = E_PATH_TOO_LONG },
	{ __LINE__, M_GET, "/s/%41%41%41%41%41%41%41%41%41%41%41%41%41%41%41%41", .small = 1,
	  .name = "AAAAAAAAAAAAAAAA" },
	{ __LINE__, M_GET, "/s/%41%41%41%41%41%41%41%41%41%41%41%41%41%41%41%41%41", .small = 1,
	  .want = E_PATH_TOO_LONG },
	{ __LINE__, M_GET, "/s/%41%41%41%41%41%41%41%41%41%41%41%41%41%41%41%41a", .small = 1,
	  .want = E_PATH_TOO_LONG },
	{ __LINE__, M_GET, P("a"), .small = 1, .want = E_NOT_FOUND },
	{ __LINE__, M_GET, "/s/", .small = 1, .want = E_NOT_FOUND },
	/* The path is checked first: before a body too large and before any field. */
	{ __LINE__, M_PUT, "/v1/stream/", .too_large = 1, .want = E_NOT_FOUND },
	{ __LINE__, M_POST, P("%zz"), .too_large = 1, .want = E_PATH_ESCAPE },
	{ __LINE__, M_GET, P("%zz"), .query = "offset=zzz", .want = E_PATH_ESCAPE },
	{ __LINE__, M_PUT, P(".."), TTL("x"), .want = E_PATH_DOT },
	{ __LINE__, M_POST, "/s/0123456789abcdefg", .small = 1, .body = "x", .want = E_PATH_TOO_LONG },
	/* A body too large comes right after the path, before the fields, for
	 * every method. */
	{ __LINE__, M_POST, P("a"), .too_large = 1, .body = "x", CT(TXT), .want = E_BODY_TOO_LARGE },
	{ __LINE__, M_PUT, P("a"), .too_large = 1, TTL("garbage"), CT("zzz"), .want = E_BODY_TOO_LARGE },
	{ __LINE__, M_POST, P("a"), .too_large = 1, PID(""), .want = E_BODY_TOO_LARGE },
	{ __LINE__, M_GET, P("a"), .too_large = 1, .query = "offset=zzz", .want = E_BODY_TOO_LARGE },
	{ __LINE__, M_DELETE, P("a"), .too_large = 1, .want = E_BODY_TOO_LARGE },
	/* Host and https are passed through (Location validates the host). */
	{ __LINE__, M_PUT, P("h"), HOST("example.com:8080"), .https = 1, .name = "h" },
	{ __LINE__, M_PUT, P("h"), HOST("evil\r\nX: y"), .name = "h" },
};

static void test_paths(void)
{
	for (size_t i = 0; i < NELEM(path_rows); i++) {
		struct req r;
		if (!parse_as(path_rows[i].small ? &cfg_small : NULL, IN(&path_rows[i]), path_rows[i].want, &r))
			continue;
		int line = path_rows[i].line;
		CHECK_MEM_AT(line, r.name.s, r.name.len, path_rows[i].name, strlen(path_rows[i].name));
		CHECK_AT(line, r.name.s[r.name.len] == '\0');
	}
}

/* --- GET: offset, live, cursor, snapshot, If-None-Match --------------------------------- */

static const struct {
	REQ_FIELDS;
	enum proto_err want;
	int has_offset;
	struct offset off;
	enum live_mode live;
	const char *cursor;       /* NULL: "" */
	int snapshot, has_token;
	uint64_t tseq, tsid;
	const char *after;        /* the token's row key, in hex */
} get_rows[] = {
	{ __LINE__, M_GET, .want = E_OK },
	{ __LINE__, M_GET, .query = "" },
	{ __LINE__, M_GET, .query = "&&&" },
	{ __LINE__, M_GET, .query = "foo=bar&=x&&baz" },
	/* offset */
	{ __LINE__, M_GET, .query = "offset=-1", .has_offset = 1, .off = { OFFSET_START, 0, 0 } },
	{ __LINE__, M_GET, .query = "offset=now", .has_offset = 1, .off = { OFFSET_NOW, 0, 0 } },
	{ __LINE__, M_GET, .query = "offset=0000000000000001_0000000000000005", .has_offset = 1,
	  .off = { OFFSET_AT, 1, 5 } },
	{ __LINE__, M_GET, .query = "offset=0000000000000007_0000000000000012", .has_offset = 1, .off = { OFFSET_AT, 7, 12 } },
	{ __LINE__, M_GET, .query = "offset=7_12", .want = E_OFFSET },   /* one spelling per position */
	{ __LINE__, M_GET, .query = "offset=9999999999999999999_9999999999999999999", .want = E_OFFSET },
	{ __LINE__, M_GET, .query = "a=1&offset=-1&b=2", .has_offset = 1, .off = { OFFSET_START, 0, 0 } },
	/* Values are percent-decoded; names are not. */
	{ __LINE__, M_GET, .query = "offset=%2D1", .has_offset = 1, .off = { OFFSET_START, 0, 0 } },
	{ __LINE__, M_GET, .query = "offset=n%6Fw", .has_offset = 1, .off = { OFFSET_NOW, 0, 0 } },
	{ __LINE__, M_GET, .query = "offset=0000000000000003%5f0000000000000004", .has_offset = 1, .off = { OFFSET_AT, 3, 4 } },
	{ __LINE__, M_GET, .query = "offset=%30%30%30%30%30%30%30%30%30%30%30%30%30%30%30%31_"
	                            "%30%30%30%30%30%30%30%30%30%30%30%30%30%30%30%35",
	  .has_offset = 1, .off = { OFFSET_AT, 1, 5 } },
	{ __LINE__, M_GET, .query = "%6Fffset=zzz" },
	{ __LINE__, M_GET, .query = "Offset=zzz" },
	{ __LINE__, M_GET, .query = "offset =-1" },
	{ __LINE__, M_GET, .query = "offset=", .want = E_OFFSET },
	{ __LINE__, M_GET, .query = "offset", .want = E_OFFSET },
	{ __LINE__, M_GET, .query = "offset=abc", .want = E_OFFSET },
	{ __LINE__, M_GET, .query = "offset=-2", .want = E_OFFSET },
	{ __LINE__, M_GET, .query = "offset=NOW", .want = E_OFFSET },
	{ __LINE__, M_GET, .query = "offset=1_", .want = E_OFFSET },
	{ __LINE__, M_GET, .query = "offset=+1_2", .want = E_OFFSET },
	{ __LINE__, M_GET, .query = "offset=00000000000000000000_0", .want = E_OFFSET },
	{ __LINE__, M_GET, .query = "offset=-1%20", .want = E_OFFSET },
	{ __LINE__, M_GET, .query = "offset=now%00", .want = E_OFFSET },
	{ __LINE__, M_GET, .query = "offset=%zz", .want = E_OFFSET },
	{ __LINE__, M_GET, .query = "offset=%", .want = E_OFFSET },
	{ __LINE__, M_GET, .query = "offset=%2", .want = E_OFFSET },
	{ __LINE__, M_GET, .query = "offset=-1&offset=-1", .want = E_OFFSET_TWICE },
	{ __LINE__, M_GET, .query = "offset=-1&offset=zzz", .want = E_OFFSET_TWICE },
	{ __LINE__, M_GET, .query = "offset=zzz&x=1&offset", .want = E_OFFSET_TWICE },
	/* live */
	{ __LINE__, M_GET, .query = "offset=-1&live=long-poll", .has_offset = 1, .off = { OFFSET_START, 0, 0 },
	  .live = LIVE_LONG_POLL },
	{ __LINE__, M_GET, .query = "live=sse&offset=now", .has_offset = 1, .off = { OFFSET_NOW, 0, 0 },
	  .live = LIVE_SSE },
	{ __LINE__, M_GET, .query = "offset=now&live=false", .has_offset = 1, .off = { OFFSET_NOW, 0, 0 } },
	{ __LINE__, M_GET, .query = "live=false" },
	{ __LINE__, M_GET, .query = "offset=-1&live=long%2Dpoll", .has_offset = 1, .off = { OFFSET_START, 0, 0 },
	  .live = LIVE_LONG_POLL },
	{ __LINE__, M_GET, .query = "offset=-1&live=%73%73%65", .has_offset = 1, .off = { OFFSET_START, 0, 0 },
	  .live = LIVE_SSE },
	{ __LINE__, M_GET, .query = "offset=-1&live=bogus", .want = E_LIVE },
	{ __LINE__, M_GET, .query = "offset=-1&live=", .want = E_LIVE },
	{ __LINE__, M_GET, .query = "offset=-1&live", .want = E_LIVE },
	{ __LINE__, M_GET, .query = "offset=-1&live=SSE", .want = E_LIVE },
	{ __LINE__, M_GET, .query = "offset=-1&live=long-poll%20", .want = E_LIVE },
	{ __LINE__, M_GET, .query = "offset=-1&live=true", .want = E_LIVE },
	{ __LINE__, M_GET, .query = "offset=-1&live=%zz", .want = E_LIVE },
	{ __LINE__, M_GET, .query = "offset=-1&live=long-poll-long-poll-long-poll", .want = E_LIVE },
	{ __LINE__, M_GET, .query = "offset=-1&live=sse&live=sse", .want = E_LIVE_TWICE },
	{ __LINE__, M_GET, .query = "offset=-1&live=sse&live=bogus", .want = E_LIVE_TWICE },
	/* live needs an offset (unless it reads a snapshot) */
	{ __LINE__, M_GET, .query = "live=sse", .want = E_SSE_NEEDS_OFFSET },
	{ __LINE__, M_GET, .query = "live=long-poll", .want = E_LONGPOLL_NEEDS_OFFSET },
	{ __LINE__, M_GET, .query = "live=long-poll&%6Fffset=-1", .want = E_LONGPOLL_NEEDS_OFFSET },
	/* The fields are checked in the table's order, not the query's. */
	{ __LINE__, M_GET, .query = "live=bogus&offset=zzz", .want = E_OFFSET },
	{ __LINE__, M_GET, .query = "live=bogus&live=sse&offset=zzz", .want = E_OFFSET },
	{ __LINE__, M_GET, .query = "snapshot=1.2&live=x", .want = E_LIVE },
	/* cursor: kept when it fits in 23 bytes, ignored otherwise, never an error */
	{ __LINE__, M_GET, .query = "cursor=123", .cursor = "123" },
	{ __LINE__, M_GET, .query = "cursor=", .cursor = "" },
	{ __LINE__, M_GET, .query = "cursor=%31%32", .cursor = "12" },
	{ __LINE__, M_GET, .query = "cursor=12345678901234567890123", .cursor = "12345678901234567890123" },
	{ __LINE__, M_GET, .query = "cursor=123456789012345678901234", .cursor = "" },
	{ __LINE__, M_GET, .query = "cursor=%zz" },
	{ __LINE__, M_GET, .query = "cursor=1&cursor=2", .cursor = "1" },
	{ __LINE__, M_GET, .query = "cursor=x&offset=-1&live=long-poll", .cursor = "x", .has_offset = 1,
	  .off = { OFFSET_START, 0, 0 }, .live = LIVE_LONG_POLL },
	/* snapshot: the first page, or a later page's token */
	{ __LINE__, M_GET, .query = "snapshot", .snapshot = 1 },
	{ __LINE__, M_GET, .query = "snapshot=", .snapshot = 1 },
	{ __LINE__, M_GET, .query = "snapshot=5.7.00ff", .snapshot = 1, .has_token = 1, .tseq = 5, .tsid = 7,
	  .after = "00ff" },
	{ __LINE__, M_GET, .query = "snapshot=0.0.AbCd", .snapshot = 1, .has_token = 1, .after = "abcd" },
	{ __LINE__, M_GET, .query = "snapshot=0012.34.61", .snapshot = 1, .has_token = 1, .tseq = 12, .tsid = 34,
	  .after = "61" },
	{ __LINE__, M_GET, .query = "snapshot=5%2E7%2e%36%31", .snapshot = 1, .has_token = 1, .tseq = 5, .tsid = 7,
	  .after = "61" },
	{ __LINE__, M_GET, .query = "snapshot=9999999999999999999.9999999999999999999.ff", .snapshot = 1,
	  .has_token = 1, .tseq = 9999999999999999999ULL, .tsid = 9999999999999999999ULL, .after = "ff" },
	{ __LINE__, M_GET, .query = "snapshot&live=sse", .snapshot = 1, .live = LIVE_SSE },
	{ __LINE__, M_GET, .query = "snapshot&live=long-poll", .snapshot = 1, .live = LIVE_LONG_POLL },
	{ __LINE__, M_GET, .query = "snapshot=1.2.ab&live=long-poll", .snapshot = 1, .has_token = 1, .tseq = 1,
	  .tsid = 2, .after = "ab", .live = LIVE_LONG_POLL },
	{ __LINE__, M_GET, .query = "snapshot=1.2", .want = E_SNAPSHOT_TOKEN },
	{ __LINE__, M_GET, .query = "snapshot=1.2.", .want = E_SNAPSHOT_TOKEN },
	{ __LINE__, M_GET, .query = "snapshot=1.2.abc", .want = E_SNAPSHOT_TOKEN },
	{ __LINE__, M_GET, .query = "snapshot=1.2.zz", .want = E_SNAPSHOT_TOKEN },
	{ __LINE__, M_GET, .query = "snapshot=1.2.ab.cd", .want = E_SNAPSHOT_TOKEN },
	{ __LINE__, M_GET, .query = "snapshot=a.2.ab", .want = E_SNAPSHOT_TOKEN },
	{ __LINE__, M_GET, .query = "snapshot=1..ab", .want = E_SNAPSHOT_TOKEN },
	{ __LINE__, M_GET, .query = "snapshot=.2.ab", .want = E_SNAPSHOT_TOKEN },
	{ __LINE__, M_GET, .query = "snapshot=-1.2.ab", .want = E_SNAPSHOT_TOKEN },
	{ __LINE__, M_GET, .query = "snapshot=1.2.a%20", .want = E_SNAPSHOT_TOKEN },
	{ __LINE__, M_GET, .query = "snapshot=12345678901234567890.2.ab", .want = E_SNAPSHOT_TOKEN },
	{ __LINE__, M_GET, .query = "snapshot=1.12345678901234567890.ab", .want = E_SNAPSHOT_TOKEN },
	{ __LINE__, M_GET, .query = "snapshot=x", .want = E_SNAPSHOT_TOKEN },
	{ __LINE__, M_GET, .query = "snapshot=%zz", .want = E_SNAPSHOT_TOKEN },
	{ __LINE__, M_GET, .query = "snapshot&snapshot", .want = E_SNAPSHOT_TWICE },
	{ __LINE__, M_GET, .query = "snapshot=1.2.ab&snapshot=x", .want = E_SNAPSHOT_TWICE },
	/* snapshot with offset, or a later page over SSE */
	{ __LINE__, M_GET, .query = "snapshot&offset=-1", .want = E_SNAPSHOT_OFFSET },
	{ __LINE__, M_GET, .query = "offset=now&snapshot=1.2.ab", .want = E_SNAPSHOT_OFFSET },
	{ __LINE__, M_GET, .query = "snapshot=bad&offset=-1", .want = E_SNAPSHOT_OFFSET },
	{ __LINE__, M_GET, .query = "snapshot=1.2.ab&live=sse", .want = E_SNAPSHOT_SSE_TOKEN },
	{ __LINE__, M_GET, .query = "snapshot=bad&live=sse", .want = E_SNAPSHOT_SSE_TOKEN },
	{ __LINE__, M_GET, .query = "snapshot&offset=zzz", .want = E_OFFSET },
	{ __LINE__, M_GET, .query = "snapshot&live=sse&offset=-1", .want = E_SNAPSHOT_OFFSET },
	/* If-None-Match is kept as sent */
	{ __LINE__, M_GET, INM("\"abc\"") },
	{ __LINE__, M_GET, INM("") },
	{ __LINE__, M_GET, INM("W/\"a\", \"b\"\r\n"), .query = "offset=-1", .has_offset = 1,
	  .off = { OFFSET_START, 0, 0 } },
	/* The fields of other methods are not read on a GET. */
	{ __LINE__, M_GET, .query = "state=maybe&retention-age=0&retention-bytes=x&compact=1" },
	{ __LINE__, M_GET, TTL("garbage"), EXP("tomorrow"), CT("zzz"), CLOSED("true") },
	{ __LINE__, M_GET, TTL("60"), EXP("2099-01-01T00:00:00Z") },
	{ __LINE__, M_GET, PID(""), PEP("x"), SSEQ("\x7f") },
	{ __LINE__, M_GET, PID("w1") },
	{ __LINE__, M_GET, FROM("garbage"), FOFF("zzz"), FSUB("-1") },
	{ __LINE__, M_GET, FOFF("-1") },
	{ __LINE__, M_GET, .body = "a body" },
};

/* Decodes hex (lower or upper case) into out; returns its length. */
static size_t unhex(const char *hex, unsigned char *out)
{
	size_t n = strlen(hex) / 2;
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		sscanf(hex + 2 * i, "%2x", &v);
		out[i] = (unsigned char)v;
	}
	return n;
}

static void test_get(void)
{
	for (size_t i = 0; i < NELEM(get_rows); i++) {
		struct req r;
		if (!parse_as(NULL, IN(&get_rows[i]), get_rows[i].want, &r))
			continue;
		int line = get_rows[i].line;
		CHECK_INT_AT(line, r.has_offset, get_rows[i].has_offset);
		if (get_rows[i].has_offset) {
			CHECK_INT_AT(line, r.offset.kind, get_rows[i].off.kind);
			CHECK_UINT_AT(line, r.offset.seq, get_rows[i].off.seq);
			CHECK_UINT_AT(line, r.offset.bytes, get_rows[i].off.bytes);
		}
		CHECK_INT_AT(line, r.live, get_rows[i].live);
		CHECK_STR_AT(line, r.cursor, get_rows[i].cursor ? get_rows[i].cursor : "");
		CHECK_INT_AT(line, r.snapshot, get_rows[i].snapshot);
		CHECK_INT_AT(line, r.has_token, get_rows[i].has_token);
		if (get_rows[i].has_token) {
			unsigned char key[STATE_MAX_ROW_KEY];
			size_t klen = unhex(get_rows[i].after, key);
			CHECK_UINT_AT(line, r.token.seq, get_rows[i].tseq);
			CHECK_UINT_AT(line, r.token.sid, get_rows[i].tsid);
			CHECK_MEM_AT(line, r.token.after, r.token.after_len, key, klen);
		}
		CHECK_AT(line, r.if_none_match == get_rows[i].h[H_IF_NONE_MATCH]);
	}
}

/* --- PUT: forks, State, retention, TTL, expiry, Stream-Closed ------------------------------- */

static const struct {
	REQ_FIELDS;
	enum proto_err want;
	int state;
	uint64_t age, bytes;
	int has_ttl;
	uint64_t ttl;
	int64_t expires_ms;       /* when Stream-Expires-At is sent */
	const char *src;          /* the fork's decoded source name; NULL: not a fork */
	int has_foff;
	struct offset foff;
	uint64_t fsub;
	int closed;
} put_rows[] = {
	{ __LINE__, M_PUT, .want = E_OK },
	{ __LINE__, M_PUT, CT(TXT), .body = "initial" },
	/* ?state */
	{ __LINE__, M_PUT, .query = "state", CT(JS), .state = 1 },
	{ __LINE__, M_PUT, .query = "state=", CT(JS), .state = 1 },
	{ __LINE__, M_PUT, .query = "state=true", CT(JS), .state = 1 },
	{ __LINE__, M_PUT, .query = "state=1", CT(JS), .state = 1 },
	{ __LINE__, M_PUT, .query = "state=tru%65", CT(JS), .state = 1 },
	{ __LINE__, M_PUT, .query = "state", CT("application/json; charset=utf-8"), .state = 1 },
	{ __LINE__, M_PUT, .query = "state", CT("Application/JSON"), .state = 1 },
	{ __LINE__, M_PUT, .query = "state=maybe", CT(JS), .want = E_STATE_PARAM },
	{ __LINE__, M_PUT, .query = "state=TRUE", CT(JS), .want = E_STATE_PARAM },
	{ __LINE__, M_PUT, .query = "state=0", CT(JS), .want = E_STATE_PARAM },
	{ __LINE__, M_PUT, .query = "state=false", CT(JS), .want = E_STATE_PARAM },
	{ __LINE__, M_PUT, .query = "state=yes", CT(JS), .want = E_STATE_PARAM },
	{ __LINE__, M_PUT, .query = "state=%zz", CT(JS), .want = E_STATE_PARAM },
	{ __LINE__, M_PUT, .query = "state&state", CT(JS), .want = E_STATE_PARAM },
	{ __LINE__, M_PUT, .query = "state=1&state=1", CT(JS), .want = E_STATE_PARAM },
	/* A State stream holds JSON. */
	{ __LINE__, M_PUT, .query = "state", .want = E_STATE_NEEDS_JSON },
	{ __LINE__, M_PUT, .query = "state", CT(TXT), .want = E_STATE_NEEDS_JSON },
	{ __LINE__, M_PUT, .query = "state", CT("application/octet-stream"), .want = E_STATE_NEEDS_JSON },
	{ __LINE__, M_PUT, .query = "state", CT("application/ld+json"), .state = 1 }, /* a +json type is JSON */
	{ __LINE__, M_PUT, .query = "state", CT(""), .want = E_STATE_NEEDS_JSON },
	{ __LINE__, M_PUT, .query = "state", CT("zzz"), .want = E_CONTENT_TYPE },
	/* ?retention-age, ?retention-bytes: positive, at most 15 digits */
	{ __LINE__, M_PUT, .query = "retention-age=3600", .age = 3600 },
	{ __LINE__, M_PUT, .query = "retention-bytes=1", .bytes = 1 },
	{ __LINE__, M_PUT, .query = "retention-age=010&retention-bytes=%31%30", .age = 10, .bytes = 10 },
	{ __LINE__, M_PUT, .query = "retention-bytes=999999999999999", .bytes = 999999999999999ULL },
	{ __LINE__, M_PUT, .query = "state&retention-age=60&retention-bytes=1000", CT(JS), .state = 1, .age = 60,
	  .bytes = 1000 },
	{ __LINE__, M_PUT, .query = "retention-age=0", .want = E_RETENTION_AGE },
	{ __LINE__, M_PUT, .query = "retention-age=", .want = E_RETENTION_AGE },
	{ __LINE__, M_PUT, .query = "retention-age", .want = E_RETENTION_AGE },
	{ __LINE__, M_PUT, .query = "retention-age=1s", .want = E_RETENTION_AGE },
	{ __LINE__, M_PUT, .query = "retention-age=-1", .want = E_RETENTION_AGE },
	{ __LINE__, M_PUT, .query = "retention-age=+1", .want = E_RETENTION_AGE },
	{ __LINE__, M_PUT, .query = "retention-age=%201", .want = E_RETENTION_AGE },
	{ __LINE__, M_PUT, .query = "retention-age=1000000000000000", .want = E_RETENTION_AGE },
	{ __LINE__, M_PUT, .query = "retention-age=%zz", .want = E_RETENTION_AGE },
	{ __LINE__, M_PUT, .query = "retention-age=1&retention-age=1", .want = E_RETENTION_AGE },
	{ __LINE__, M_PUT, .query = "retention-bytes=0", .want = E_RETENTION_BYTES },
	{ __LINE__, M_PUT, .query = "retention-bytes=1e3", .want = E_RETENTION_BYTES },
	{ __LINE__, M_PUT, .query = "retention-bytes=1000000000000000", .want = E_RETENTION_BYTES },
	{ __LINE__, M_PUT, .query = "retention-bytes=5&retention-bytes=6", .want = E_RETENTION_BYTES },
	/* Stream-TTL: "0" or digits without a leading zero, at most 10 */
	{ __LINE__, M_PUT, TTL("0"), .has_ttl = 1, .ttl = 0 },
	{ __LINE__, M_PUT, TTL("60"), .has_ttl = 1, .ttl = 60 },
	{ __LINE__, M_PUT, TTL("9999999999"), .has_ttl = 1, .ttl = 9999999999ULL },
	{ __LINE__, M_PUT, TTL(""), .want = E_TTL },
	{ __LINE__, M_PUT, TTL("00060"), .want = E_TTL },
	{ __LINE__, M_PUT, TTL("00"), .want = E_TTL },
	{ __LINE__, M_PUT, TTL("+60"), .want = E_TTL },
	{ __LINE__, M_PUT, TTL("-1"), .want = E_TTL },
	{ __LINE__, M_PUT, TTL("abc"), .want = E_TTL },
	{ __LINE__, M_PUT, TTL("1e3"), .want = E_TTL },
	{ __LINE__, M_PUT, TTL(" 60"), .want = E_TTL },
	{ __LINE__, M_PUT, TTL("60 "), .want = E_TTL },
	{ __LINE__, M_PUT, TTL("10000000000"), .want = E_TTL },
	/* Stream-Expires-At: RFC 3339, printable, at most 64 bytes */
	{ __LINE__, M_PUT, EXP("2099-01-01T00:00:00Z"), .expires_ms = 4070908800000LL },
	{ __LINE__, M_PUT, EXP("2099-01-01T00:00:00.5+01:00"), .expires_ms = 4070905200500LL },
	{ __LINE__, M_PUT, EXP("2024-02-29t12:30:15.250z"), .expires_ms = 1709209815250LL },
	{ __LINE__, M_PUT, EXP("2000-01-01 00:00:00-05:30"), .expires_ms = 946704600000LL },
	{ __LINE__, M_PUT, EXP("1970-01-01T00:00:00Z"), .expires_ms = 0 },
	{ __LINE__, M_PUT, EXP(""), .want = E_EXPIRES_AT },
	{ __LINE__, M_PUT, EXP("tomorrow"), .want = E_EXPIRES_AT },
	{ __LINE__, M_PUT, EXP("2099-13-01T00:00:00Z"), .want = E_EXPIRES_AT },
	{ __LINE__, M_PUT, EXP("2023-02-29T00:00:00Z"), .want = E_EXPIRES_AT },
	{ __LINE__, M_PUT, EXP("2099-01-01T00:00:00"), .want = E_EXPIRES_AT },
	{ __LINE__, M_PUT, EXP("2099-01-01T00:00:00Z "), .want = E_EXPIRES_AT },
	{ __LINE__, M_PUT, EXP("2099-01-01T00:00:00Z\x01"), .want = E_EXPIRES_AT },
	{ __LINE__, M_PUT, EXP("\t2099-01-01T00:00:00Z"), .want = E_EXPIRES_AT },
	{ __LINE__, M_PUT, EXP("2099-01-01T00:00:00.1234567890Z"), .want = E_EXPIRES_AT },
	/* Stream-TTL and Stream-Expires-At exclude each other. */
	{ __LINE__, M_PUT, TTL("60"), EXP("2099-01-01T00:00:00Z"), .want = E_TTL_AND_EXPIRES },
	{ __LINE__, M_PUT, TTL("0"), EXP("2099-01-01T00:00:00Z"), .want = E_TTL_AND_EXPIRES },
	{ __LINE__, M_PUT, TTL("x"), EXP("2099-01-01T00:00:00Z"), .want = E_TTL },
	{ __LINE__, M_PUT, TTL("60"), EXP("x"), .want = E_EXPIRES_AT },
	/* Stream-Closed: "true" in any case; anything else is "not closed" */
	{ __LINE__, M_PUT, CLOSED("true"), .closed = 1 },
	{ __LINE__, M_PUT, CLOSED("TRUE"), .closed = 1 },
	{ __LINE__, M_PUT, CLOSED("tRuE"), CT(TXT), .body = "x", .closed = 1 },
	{ __LINE__, M_PUT, CLOSED("false") },
	{ __LINE__, M_PUT, CLOSED("") },
	{ __LINE__, M_PUT, CLOSED("yes") },
	{ __LINE__, M_PUT, CLOSED("true ") },
	{ __LINE__, M_PUT, CLOSED("1") },
	/* Forks: the source's path under the prefix, optional offset and sub-offset */
	{ __LINE__, M_PUT, FROM(P("src")), .src = "src" },
	{ __LINE__, M_PUT, FROM(P("a%20b/c")), .src = "a b/c" },
	{ __LINE__, M_PUT, FROM(P("src?offset=1#x")), .src = "src" },
	{ __LINE__, M_PUT, FROM(P("src#frag")), .src = "src" },
	{ __LINE__, M_PUT, FROM(P("src")), FOFF("-1"), .src = "src", .has_foff = 1, .foff = { OFFSET_START, 0, 0 } },
	{ __LINE__, M_PUT, FROM(P("src")), FOFF("now"), .src = "src", .has_foff = 1, .foff = { OFFSET_NOW, 0, 0 } },
	{ __LINE__, M_PUT, FROM(P("src")), FOFF("0000000000000002_0000000000000008"), .src = "src", .has_foff = 1,
	  .foff = { OFFSET_AT, 2, 8 } },
	{ __LINE__, M_PUT, FROM(P("src")), FOFF("0000000000000002_0000000000000008"), FSUB("3"), .src = "src", .has_foff = 1,
	  .foff = { OFFSET_AT, 2, 8 }, .fsub = 3 },
	{ __LINE__, M_PUT, FROM(P("src")), FOFF("0000000000000002_0000000000000008"), FSUB("0"), .src = "src", .has_foff = 1,
	  .foff = { OFFSET_AT, 2, 8 } },
	{ __LINE__, M_PUT, FROM(P("src")), FOFF("0000000000000002_0000000000000008"), FSUB("9999999999"), .src = "src", .has_foff = 1,
	  .foff = { OFFSET_AT, 2, 8 }, .fsub = 9999999999ULL },
	/* A sub-offset of 0 is no sub-offset: it needs no Stream-Fork-Offset. */
	{ __LINE__, M_PUT, FROM(P("src")), FSUB("0"), .src = "src" },
	{ __LINE__, M_PUT, FROM(P("src")), TTL("60"), CT(TXT), .src = "src", .has_ttl = 1, .ttl = 60 },
	{ __LINE__, M_PUT, FROM(""), .want = E_SOURCE_NOT_FOUND },
	{ __LINE__, M_PUT, FROM("src"), .want = E_SOURCE_NOT_FOUND },
	{ __LINE__, M_PUT, FROM("/elsewhere/src"), .want = E_SOURCE_NOT_FOUND },
	{ __LINE__, M_PUT, FROM("http://localhost/v1/stream/src"), .want = E_SOURCE_NOT_FOUND },
	{ __LINE__, M_PUT, FROM(P("")), .want = E_SOURCE_NOT_FOUND },
	{ __LINE__, M_PUT, FROM(P("?x")), .want = E_SOURCE_NOT_FOUND },
	{ __LINE__, M_PUT, FROM(P("%zz")), .want = E_FORKED_FROM },
	{ __LINE__, M_PUT, FROM(P("..")), .want = E_FORKED_FROM },
	{ __LINE__, M_PUT, FROM(P("a/%2e/b")), .want = E_FORKED_FROM },
	{ __LINE__, M_PUT, FROM(P("a%00")), .want = E_FORKED_FROM },
	{ __LINE__, M_PUT, FROM(P("a\r\nb")), .want = E_FORKED_FROM },
	{ __LINE__, M_PUT, FROM(P("src")), FOFF(""), .want = E_FORK_OFFSET },
	{ __LINE__, M_PUT, FROM(P("src")), FOFF("zzz"), .want = E_FORK_OFFSET },
	{ __LINE__, M_PUT, FROM(P("src")), FOFF("-2"), .want = E_FORK_OFFSET },
	{ __LINE__, M_PUT, FROM(P("src")), FOFF("1_2 "), .want = E_FORK_OFFSET },
	{ __LINE__, M_PUT, FROM(P("src")), FOFF("0000000000000002_0000000000000008"), FSUB(""), .want = E_FORK_SUB_OFFSET },
	{ __LINE__, M_PUT, FROM(P("src")), FOFF("0000000000000002_0000000000000008"), FSUB("-1"), .want = E_FORK_SUB_OFFSET },
	{ __LINE__, M_PUT, FROM(P("src")), FOFF("0000000000000002_0000000000000008"), FSUB("03"), .want = E_FORK_SUB_OFFSET },
	{ __LINE__, M_PUT, FROM(P("src")), FOFF("0000000000000002_0000000000000008"), FSUB("x"), .want = E_FORK_SUB_OFFSET },
	{ __LINE__, M_PUT, FROM(P("src")), FOFF("0000000000000002_0000000000000008"), FSUB("10000000000"), .want = E_FORK_SUB_OFFSET },
	/* Rules between the fork headers. */
	{ __LINE__, M_PUT, FOFF("0000000000000002_0000000000000008"), .want = E_FORK_HEADERS_ALONE },
	{ __LINE__, M_PUT, FOFF("-1"), .want = E_FORK_HEADERS_ALONE },
	{ __LINE__, M_PUT, FSUB("3"), .want = E_FORK_HEADERS_ALONE },
	{ __LINE__, M_PUT, FSUB("0"), .want = E_FORK_HEADERS_ALONE },
	{ __LINE__, M_PUT, FOFF("0000000000000002_0000000000000008"), FSUB("3"), .want = E_FORK_HEADERS_ALONE },
	{ __LINE__, M_PUT, FOFF("zzz"), .want = E_FORK_OFFSET },     /* a bad value is found first */
	{ __LINE__, M_PUT, FROM(P("src")), FSUB("3"), .want = E_FORK_SUB_NEEDS_OFFSET },
	{ __LINE__, M_PUT, FROM(P("src")), .query = "state", CT(JS), .want = E_FORK_STATE },
	{ __LINE__, M_PUT, FROM(P("src")), .query = "state", .want = E_FORK_STATE },
	/* The order of the rules: fork headers, fork and State, TTL and expiry,
	 * Content-Type, State and JSON. */
	{ __LINE__, M_PUT, FOFF("0000000000000001_0000000000000001"), .query = "state", TTL("1"), EXP("2099-01-01T00:00:00Z"), CT("zzz"),
	  .want = E_FORK_HEADERS_ALONE },
	{ __LINE__, M_PUT, FROM(P("src")), FSUB("3"), .query = "state", TTL("1"), EXP("2099-01-01T00:00:00Z"),
	  .want = E_FORK_SUB_NEEDS_OFFSET },
	{ __LINE__, M_PUT, FROM(P("src")), .query = "state", TTL("1"), EXP("2099-01-01T00:00:00Z"), CT("zzz"),
	  .want = E_FORK_STATE },
	{ __LINE__, M_PUT, .query = "state", TTL("1"), EXP("2099-01-01T00:00:00Z"), CT("zzz"),
	  .want = E_TTL_AND_EXPIRES },
	/* Field errors come in the table's order, before the rules. */
	{ __LINE__, M_PUT, .query = "state=maybe&retention-age=0", TTL("x"), FROM("%"), .want = E_SOURCE_NOT_FOUND },
	{ __LINE__, M_PUT, .query = "retention-age=0&state=maybe", TTL("x"), .want = E_STATE_PARAM },
	{ __LINE__, M_PUT, .query = "retention-bytes=0&retention-age=0", .want = E_RETENTION_AGE },
	{ __LINE__, M_PUT, .query = "retention-bytes=0", TTL("x"), .want = E_RETENTION_BYTES },
	{ __LINE__, M_PUT, TTL("x"), EXP("x"), .want = E_TTL },
	/* The fields of other methods are not read on a PUT. */
	{ __LINE__, M_PUT, .query = "offset=zzz&live=bogus&snapshot=x&cursor=1" },
	{ __LINE__, M_PUT, .query = "offset=-1&offset=-1&live=sse&live=sse&snapshot&snapshot" },
	{ __LINE__, M_PUT, .query = "live=sse" },
	{ __LINE__, M_PUT, INM("\"x\""), IFM("\"x\"") },
	{ __LINE__, M_PUT, .query = "compact", CT(TXT), .body = "x" },
	{ __LINE__, M_PUT, PID(""), PEP("abc"), PSEQ("-1"), SSEQ("\x7f") },
	{ __LINE__, M_PUT, PID("w1") },
};

static void test_put(void)
{
	for (size_t i = 0; i < NELEM(put_rows); i++) {
		struct req r;
		if (!parse_as(NULL, IN(&put_rows[i]), put_rows[i].want, &r))
			continue;
		int line = put_rows[i].line;
		CHECK_INT_AT(line, r.state, put_rows[i].state);
		CHECK_UINT_AT(line, r.ret_age_s, put_rows[i].age);
		CHECK_UINT_AT(line, r.ret_bytes, put_rows[i].bytes);
		CHECK_INT_AT(line, r.has_ttl, put_rows[i].has_ttl);
		if (put_rows[i].has_ttl)
			CHECK_UINT_AT(line, r.ttl_s, put_rows[i].ttl);
		CHECK_AT(line, r.expires_at == put_rows[i].h[H_STREAM_EXPIRES_AT]);
		if (r.expires_at)
			CHECK_INT_AT(line, r.expires_ms, put_rows[i].expires_ms);
		CHECK_INT_AT(line, r.is_fork, put_rows[i].src != NULL);
		if (put_rows[i].src)
			CHECK_MEM_AT(line, r.fork_src.s, r.fork_src.len, put_rows[i].src, strlen(put_rows[i].src));
		CHECK_INT_AT(line, r.has_fork_offset, put_rows[i].has_foff);
		if (put_rows[i].has_foff) {
			CHECK_INT_AT(line, r.fork_offset.kind, put_rows[i].foff.kind);
			CHECK_UINT_AT(line, r.fork_offset.seq, put_rows[i].foff.seq);
			CHECK_UINT_AT(line, r.fork_offset.bytes, put_rows[i].foff.bytes);
		}
		CHECK_UINT_AT(line, r.fork_sub, put_rows[i].fsub);
		CHECK_INT_AT(line, r.closed, put_rows[i].closed);
	}
}

/* --- POST: bodies, Content-Type, producers, Stream-Seq, ?compact, Stream-Closed ------------------ */

static const struct {
	REQ_FIELDS;
	enum proto_err want;
	int closed, compact, has_producer;
	uint64_t epoch, seq;      /* with has_producer */
} post_rows[] = {
	{ __LINE__, M_POST, CT(TXT), .body = "x" },
	{ __LINE__, M_POST, CT(JS), .body = "[1,2]" },
	/* An empty body appends nothing: only Stream-Closed makes it a request. */
	{ __LINE__, M_POST, CT(TXT), .want = E_EMPTY_BODY },
	{ __LINE__, M_POST, CT(TXT), .body = "", .want = E_EMPTY_BODY },
	{ __LINE__, M_POST, .want = E_EMPTY_BODY },
	{ __LINE__, M_POST, CLOSED("false"), .want = E_EMPTY_BODY },
	{ __LINE__, M_POST, CLOSED("yes"), CT(TXT), .want = E_EMPTY_BODY },
	{ __LINE__, M_POST, CLOSED("true"), .closed = 1 },
	{ __LINE__, M_POST, CLOSED("TRUE"), CT(JS), .closed = 1 },
	{ __LINE__, M_POST, CLOSED("true"), CT("zzz"), .closed = 1 },   /* no body: the type is not read */
	{ __LINE__, M_POST, CLOSED("True"), CT(TXT), .body = "end", .closed = 1 },
	{ __LINE__, M_POST, CLOSED("no"), CT(TXT), .body = "x" },
	/* A body needs a Content-Type that parses. */
	{ __LINE__, M_POST, .body = "x", .want = E_CONTENT_TYPE_REQUIRED },
	{ __LINE__, M_POST, CT(""), .body = "x", .want = E_CONTENT_TYPE_REQUIRED },
	{ __LINE__, M_POST, CLOSED("true"), .body = "x", .want = E_CONTENT_TYPE_REQUIRED },
	{ __LINE__, M_POST, CT("zzz"), .body = "x", .want = E_CONTENT_TYPE },
	{ __LINE__, M_POST, CT("application/"), .body = "x", .want = E_CONTENT_TYPE },
	{ __LINE__, M_POST, CT("text/plain\r\nX: y"), .body = "x", .want = E_CONTENT_TYPE },
	{ __LINE__, M_POST, CT("   "), .body = "x", .want = E_CONTENT_TYPE },
	/* Producers: all three headers or none */
	{ __LINE__, M_POST, CT(TXT), .body = "x", PROD("w1", "0", "0"), .has_producer = 1 },
	{ __LINE__, M_POST, CT(TXT), .body = "x", PROD("w 1/\"~", "7", "42"), .has_producer = 1, .epoch = 7,
	  .seq = 42 },
	{ __LINE__, M_POST, CT(TXT), .body = "x", PROD("w1", "9007199254740991", "9007199254740991"),
	  .has_producer = 1, .epoch = 9007199254740991ULL, .seq = 9007199254740991ULL },
	{ __LINE__, M_POST, CT(TXT), .body = "x", PROD("w1", "007", "0010"), .has_producer = 1, .epoch = 7,
	  .seq = 10 },
	{ __LINE__, M_POST, CLOSED("true"), PROD("w1", "1", "2"), .closed = 1, .has_producer = 1, .epoch = 1,
	  .seq = 2 },
	{ __LINE__, M_POST, CT(TXT), .body = "x", PID("w1"), .want = E_PRODUCER_PARTIAL },
	{ __LINE__, M_POST, CT(TXT), .body = "x", PEP("1"), .want = E_PRODUCER_PARTIAL },
	{ __LINE__, M_POST, CT(TXT), .body = "x", PSEQ("1"), .want = E_PRODUCER_PARTIAL },
	{ __LINE__, M_POST, CT(TXT), .body = "x", PID("w1"), PEP("1"), .want = E_PRODUCER_PARTIAL },
	{ __LINE__, M_POST, CT(TXT), .body = "x", PID("w1"), PSEQ("1"), .want = E_PRODUCER_PARTIAL },
	{ __LINE__, M_POST, CT(TXT), .body = "x", PEP("1"), PSEQ("1"), .want = E_PRODUCER_PARTIAL },
	{ __LINE__, M_POST, PEP("1"), PSEQ("1"), .want = E_PRODUCER_PARTIAL },   /* before the empty body */
	{ __LINE__, M_POST, CT(TXT), .body = "x", PROD("", "1", "1"), .want = E_PRODUCER_ID_EMPTY },
	{ __LINE__, M_POST, CT(TXT), .body = "x", PID(""), .want = E_PRODUCER_ID_EMPTY },
	{ __LINE__, M_POST, CT(TXT), .body = "x", PROD("w\n1", "1", "1"), .want = E_PRODUCER_ID },
	{ __LINE__, M_POST, CT(TXT), .body = "x", PROD("w\x7f", "1", "1"), .want = E_PRODUCER_ID },
	{ __LINE__, M_POST, CT(TXT), .body = "x", PROD("caf\xc3\xa9", "1", "1"), .want = E_PRODUCER_ID },
	{ __LINE__, M_POST, CT(TXT), .body = "x", PROD("w1", "", "1"), .want = E_PRODUCER_EPOCH },
	{ __LINE__, M_POST, CT(TXT), .body = "x", PROD("w1", "abc", "1"), .want = E_PRODUCER_EPOCH },
	{ __LINE__, M_POST, CT(TXT), .body = "x", PROD("w1", "-1", "1"), .want = E_PRODUCER_EPOCH },
	{ __LINE__, M_POST, CT(TXT), .body = "x", PROD("w1", "+1", "1"), .want = E_PRODUCER_EPOCH },
	{ __LINE__, M_POST, CT(TXT), .body = "x", PROD("w1", "1.5", "1"), .want = E_PRODUCER_EPOCH },
	{ __LINE__, M_POST, CT(TXT), .body = "x", PROD("w1", "9007199254740992", "0"), .want = E_PRODUCER_EPOCH },
	{ __LINE__, M_POST, CT(TXT), .body = "x", PROD("w1", "99999999999999999", "0"), .want = E_PRODUCER_EPOCH },
	{ __LINE__, M_POST, CT(TXT), .body = "x", PROD("w1", "1", ""), .want = E_PRODUCER_SEQ },
	{ __LINE__, M_POST, CT(TXT), .body = "x", PROD("w1", "1", "-1"), .want = E_PRODUCER_SEQ },
	{ __LINE__, M_POST, CT(TXT), .body = "x", PROD("w1", "1", "1 "), .want = E_PRODUCER_SEQ },
	{ __LINE__, M_POST, CT(TXT), .body = "x", PROD("w1", "1", "9007199254740992"), .want = E_PRODUCER_SEQ },
	/* A bad value is found before a missing header. */
	{ __LINE__, M_POST, CT(TXT), .body = "x", PID("w1"), PEP("x"), .want = E_PRODUCER_EPOCH },
	{ __LINE__, M_POST, CT(TXT), .body = "x", PSEQ("x"), .want = E_PRODUCER_SEQ },
	{ __LINE__, M_POST, CT(TXT), .body = "x", PROD("", "x", "x"), .want = E_PRODUCER_ID_EMPTY },
	{ __LINE__, M_POST, CT(TXT), .body = "x", PROD("w1", "x", "x"), .want = E_PRODUCER_EPOCH },
	/* Stream-Seq: printable, 1..256 bytes */
	{ __LINE__, M_POST, CT(TXT), .body = "x", SSEQ("abc") },
	{ __LINE__, M_POST, CT(TXT), .body = "x", SSEQ(" a b ~") },
	{ __LINE__, M_POST, CT(TXT), .body = "x", SSEQ(""), .want = E_STREAM_SEQ },
	{ __LINE__, M_POST, CT(TXT), .body = "x", SSEQ("a\x01"), .want = E_STREAM_SEQ },
	{ __LINE__, M_POST, CT(TXT), .body = "x", SSEQ("\x7f"), .want = E_STREAM_SEQ },
	{ __LINE__, M_POST, CT(TXT), .body = "x", SSEQ("a\tb"), .want = E_STREAM_SEQ },
	{ __LINE__, M_POST, CT(TXT), .body = "x", SSEQ("\xc3\xa9"), .want = E_STREAM_SEQ },
	{ __LINE__, M_POST, CT(TXT), .body = "x", SSEQ(""), PID(""), .want = E_PRODUCER_ID_EMPTY },
	/* ?compact: no body, producer or Stream-Closed */
	{ __LINE__, M_POST, .query = "compact", .compact = 1 },
	{ __LINE__, M_POST, .query = "compact=", .compact = 1 },
	{ __LINE__, M_POST, .query = "compact", CT(JS), .compact = 1 },
	{ __LINE__, M_POST, .query = "compact&compact", .compact = 1 },
	{ __LINE__, M_POST, .query = "x=1&compact&y", .compact = 1 },
	{ __LINE__, M_POST, .query = "compact", CLOSED("false"), .compact = 1 },
	{ __LINE__, M_POST, .query = "compact", SSEQ("a"), .compact = 1 },
	{ __LINE__, M_POST, .query = "compact", CT(JS), .body = "[1]", .want = E_COMPACT_ARGS },
	{ __LINE__, M_POST, .query = "compact", .body = "x", .want = E_COMPACT_ARGS },
	{ __LINE__, M_POST, .query = "compact", CLOSED("true"), .want = E_COMPACT_ARGS },
	{ __LINE__, M_POST, .query = "compact", PROD("w1", "0", "0"), .want = E_COMPACT_ARGS },
	{ __LINE__, M_POST, .query = "compact", PID("w1"), .want = E_COMPACT_ARGS },
	{ __LINE__, M_POST, .query = "compact", PEP("0"), PSEQ("0"), .want = E_PRODUCER_PARTIAL },
	{ __LINE__, M_POST, .query = "compact", IFM("\"x\""), .want = E_COMPACT_ARGS },
	/* If-Match: kept as sent (compared under the writer lock); not with a producer. */
	{ __LINE__, M_POST, CT(TXT), .body = "x", IFM("\"1.2-0-3\"") },
	{ __LINE__, M_POST, CT(TXT), .body = "x", IFM("*") },
	{ __LINE__, M_POST, CT(TXT), .body = "x", IFM("") },
	{ __LINE__, M_POST, CLOSED("true"), IFM("\"1.2-0-3\""), .closed = 1 },
	{ __LINE__, M_POST, CT(TXT), .body = "x", IFM("\"x\""), PROD("w1", "0", "0"), .want = E_IF_MATCH_PRODUCER },
	{ __LINE__, M_POST, CLOSED("true"), IFM("\"x\""), PROD("w1", "0", "0"), .want = E_IF_MATCH_PRODUCER },
	{ __LINE__, M_POST, CT(TXT), .body = "x", IFM("\"x\""), PID("w1"), .want = E_PRODUCER_PARTIAL },
	{ __LINE__, M_POST, .query = "Compact", .want = E_EMPTY_BODY },
	/* The fields of other methods are not read on a POST. */
	{ __LINE__, M_POST, CT(TXT), .body = "x", .query = "offset=zzz&live=bogus&snapshot=x&snapshot&cursor=1" },
	{ __LINE__, M_POST, CT(TXT), .body = "x", .query = "snapshot&offset=-1" },
	{ __LINE__, M_POST, CT(TXT), .body = "x", .query = "state=maybe&retention-age=0&retention-bytes=0" },
	{ __LINE__, M_POST, CT(TXT), .body = "x", .query = "state", },
	{ __LINE__, M_POST, CT(TXT), .body = "x", TTL("garbage"), EXP("tomorrow") },
	{ __LINE__, M_POST, CT(TXT), .body = "x", TTL("60"), EXP("2099-01-01T00:00:00Z") },
	{ __LINE__, M_POST, CT(TXT), .body = "x", FROM("%"), FOFF("zzz"), FSUB("x") },
	{ __LINE__, M_POST, CT(TXT), .body = "x", FOFF("0000000000000001_0000000000000001") },
	{ __LINE__, M_POST, CT(TXT), .body = "x", INM("\"x\"") },
};

static void test_post(void)
{
	for (size_t i = 0; i < NELEM(post_rows); i++) {
		struct req r;
		if (!parse_as(NULL, IN(&post_rows[i]), post_rows[i].want, &r))
			continue;
		int line = post_rows[i].line;
		const char *const *h = post_rows[i].h;
		CHECK_INT_AT(line, r.closed, post_rows[i].closed);
		CHECK_INT_AT(line, r.compact, post_rows[i].compact);
		CHECK_INT_AT(line, r.has_producer, post_rows[i].has_producer);
		CHECK_AT(line, r.producer_id == h[H_PRODUCER_ID]);
		if (post_rows[i].has_producer) {
			CHECK_UINT_AT(line, r.producer_id_len, strlen(h[H_PRODUCER_ID]));
			CHECK_UINT_AT(line, r.producer_epoch, post_rows[i].epoch);
			CHECK_UINT_AT(line, r.producer_seq, post_rows[i].seq);
		}
		CHECK_AT(line, r.stream_seq == h[H_STREAM_SEQ]);
		if (h[H_STREAM_SEQ])
			CHECK_UINT_AT(line, r.stream_seq_len, strlen(h[H_STREAM_SEQ]));
		CHECK_AT(line, r.if_match == h[H_IF_MATCH]);
	}
}

/* --- Content-Type: the media type of PUT and POST ----------------------------------------- */

static const struct {
	REQ_FIELDS;
	enum proto_err want;
	int valid;
	enum media_kind kind;
	const char *type;         /* NULL: "" */
} media_rows[] = {
	{ __LINE__, M_PUT, CT(TXT), .valid = 1, .kind = MEDIA_TEXT, .type = "text/plain" },
	{ __LINE__, M_PUT, CT("TEXT/Plain; charset=utf-8"), .valid = 1, .kind = MEDIA_TEXT, .type = "text/plain" },
	{ __LINE__, M_PUT, CT("text/html"), .valid = 1, .kind = MEDIA_TEXT, .type = "text/html" },
	{ __LINE__, M_PUT, CT(JS), .valid = 1, .kind = MEDIA_JSON, .type = JS },
	{ __LINE__, M_PUT, CT("application/json; charset=utf-8"), .valid = 1, .kind = MEDIA_JSON, .type = JS },
	{ __LINE__, M_PUT, CT("Application/JSON"), .valid = 1, .kind = MEDIA_JSON, .type = JS },
	{ __LINE__, M_PUT, CT("application/json;x=y"), .valid = 1, .kind = MEDIA_JSON, .type = JS },
	{ __LINE__, M_PUT, CT("  application/json  ; a=b"), .valid = 1, .kind = MEDIA_JSON, .type = JS },
	{ __LINE__, M_PUT, CT("application/octet-stream"), .valid = 1, .kind = MEDIA_BINARY,
	  .type = "application/octet-stream" },
	/* A +json suffix (RFC 6839) is JSON; a suffix alone, or +json inside, is not. */
	{ __LINE__, M_PUT, CT("application/ld+json"), .valid = 1, .kind = MEDIA_JSON, .type = "application/ld+json" },
	{ __LINE__, M_PUT, CT("Application/VND.Example+JSON; charset=utf-8"), .valid = 1, .kind = MEDIA_JSON,
	  .type = "application/vnd.example+json" },
	{ __LINE__, M_PUT, CT("text/x+json"), .valid = 1, .kind = MEDIA_JSON, .type = "text/x+json" },
	{ __LINE__, M_PUT, CT("application/+json"), .valid = 1, .kind = MEDIA_BINARY, .type = "application/+json" },
	{ __LINE__, M_PUT, CT("application/x+json+xml"), .valid = 1, .kind = MEDIA_BINARY,
	  .type = "application/x+json+xml" },
	{ __LINE__, M_PUT, CT("application/x+jsonx"), .valid = 1, .kind = MEDIA_BINARY, .type = "application/x+jsonx" },
	{ __LINE__, M_PUT, CT("json/+json"), .valid = 1, .kind = MEDIA_BINARY, .type = "json/+json" },
	{ __LINE__, M_PUT, CT("application/jsonx"), .valid = 1, .kind = MEDIA_BINARY, .type = "application/jsonx" },
	{ __LINE__, M_PUT, CT("image/png"), .valid = 1, .kind = MEDIA_BINARY, .type = "image/png" },
	{ __LINE__, M_PUT, CT("x-a.b/y!#$%&'*+-.^_`|~z"), .valid = 1, .kind = MEDIA_BINARY,
	  .type = "x-a.b/y!#$%&'*+-.^_`|~z" },
	/* An empty value is none (the stream's default). */
	{ __LINE__, M_PUT, CT("") },
	{ __LINE__, M_PUT, .want = E_OK },
	/* Not "type/subtype" of token characters: no type, refused by PUT. */
	{ __LINE__, M_PUT, CT("text"), .want = E_CONTENT_TYPE },
	{ __LINE__, M_PUT, CT("text/"), .want = E_CONTENT_TYPE },
	{ __LINE__, M_PUT, CT("/plain"), .want = E_CONTENT_TYPE },
	{ __LINE__, M_PUT, CT("a b/c"), .want = E_CONTENT_TYPE },
	{ __LINE__, M_PUT, CT("text/plain/x"), .want = E_CONTENT_TYPE },
	{ __LINE__, M_PUT, CT("text/pl@in"), .want = E_CONTENT_TYPE },
	{ __LINE__, M_PUT, CT("text/plain x"), .want = E_CONTENT_TYPE },
	{ __LINE__, M_PUT, CT("text/plain\r\nX: y"), .want = E_CONTENT_TYPE },
	{ __LINE__, M_PUT, CT(" "), .want = E_CONTENT_TYPE },
	{ __LINE__, M_PUT, CT(";"), .want = E_CONTENT_TYPE },
	/* A type that parses, with bytes that cannot be echoed in a header:
	 * refused by PUT (the type is stored and echoed). */
	{ __LINE__, M_PUT, CT("text/plain; charset=\x01"), .want = E_CONTENT_TYPE },
	{ __LINE__, M_PUT, CT("text/plain; charset=caf\xc3\xa9"), .want = E_CONTENT_TYPE },
	{ __LINE__, M_PUT, CT("text/plain; x=\x7f"), .want = E_CONTENT_TYPE },
	{ __LINE__, M_PUT, CT("\ttext/plain"), .want = E_CONTENT_TYPE },
	/* POST reads the type only to compare it with the stream's: a type that
	 * parses is enough, it is not stored. */
	{ __LINE__, M_POST, CT(TXT), .body = "x", .valid = 1, .kind = MEDIA_TEXT, .type = "text/plain" },
	{ __LINE__, M_POST, CT("Application/Json ; q=1"), .body = "1", .valid = 1, .kind = MEDIA_JSON, .type = JS },
	{ __LINE__, M_POST, CT("text/plain; charset=\x01"), .body = "x", .valid = 0, .kind = MEDIA_TEXT,
	  .type = "text/plain" },
	{ __LINE__, M_POST, CT("\ttext/plain"), .body = "x", .valid = 0, .kind = MEDIA_TEXT, .type = "text/plain" },
	{ __LINE__, M_POST, CT("text"), CLOSED("true") },
	{ __LINE__, M_POST, CT("text"), .body = "x", .want = E_CONTENT_TYPE },
	/* Not read on the other methods. */
	{ __LINE__, M_GET, CT("text") },
	{ __LINE__, M_HEAD, CT("text/plain\r\n") },
	{ __LINE__, M_DELETE, CT("zzz") },
};

static void test_media(void)
{
	for (size_t i = 0; i < NELEM(media_rows); i++) {
		struct req r;
		if (!parse_as(NULL, IN(&media_rows[i]), media_rows[i].want, &r))
			continue;
		int line = media_rows[i].line;
		const char *ct = media_rows[i].h[H_CONTENT_TYPE];
		int read = media_rows[i].m == M_PUT || media_rows[i].m == M_POST;
		CHECK_AT(line, r.ct.raw == (read && ct && *ct ? ct : NULL));
		CHECK_INT_AT(line, r.ct.valid, media_rows[i].valid);
		CHECK_INT_AT(line, r.ct.kind, media_rows[i].kind);
		CHECK_STR_AT(line, r.ct.type, media_rows[i].type ? media_rows[i].type : "");
	}
}

/* media_kind_of and media_same, on stored values. */
static void test_media_helpers(void)
{
	static const struct {
		int line;
		const char *a, *b;
		enum media_kind kind_a;
		int same;
	} rows[] = {
		{ __LINE__, "text/plain", "TEXT/PLAIN; charset=utf-8", MEDIA_TEXT, 1 },
		{ __LINE__, "text/plain", "text/html", MEDIA_TEXT, 0 },
		{ __LINE__, "application/json", " application/json ;x=1", MEDIA_JSON, 1 },
		{ __LINE__, "application/json", "application/octet-stream", MEDIA_JSON, 0 },
		{ __LINE__, "application/octet-stream", "application/octet-stream", MEDIA_BINARY, 1 },
		{ __LINE__, "image/png", "image/PNG", MEDIA_BINARY, 1 },
		{ __LINE__, "bad", "bad", MEDIA_BINARY, 0 },
		{ __LINE__, "text", "text/plain", MEDIA_BINARY, 0 },
		{ __LINE__, "", "", MEDIA_BINARY, 0 },
		{ __LINE__, NULL, "text/plain", MEDIA_BINARY, 0 },
		{ __LINE__, "text/plain", NULL, MEDIA_TEXT, 0 },
		{ __LINE__, NULL, NULL, MEDIA_BINARY, 0 },
	};
	/* The rule of releases before +json types were JSON. */
	CHECK_INT(media_kind_legacy_of("application/json; charset=utf-8"), MEDIA_JSON);
	CHECK_INT(media_kind_legacy_of("application/vnd.example+json"), MEDIA_BINARY);
	CHECK_INT(media_kind_legacy_of("text/x+json"), MEDIA_TEXT);
	CHECK_INT(media_kind_legacy_of("bad"), MEDIA_BINARY);
	CHECK_INT(media_kind_of("application/vnd.example+json"), MEDIA_JSON);
	for (size_t i = 0; i < NELEM(rows); i++) {
		int line = rows[i].line;
		CHECK_INT_AT(line, media_kind_of(rows[i].a), rows[i].kind_a);
		CHECK_INT_AT(line, media_same(rows[i].a, rows[i].b), rows[i].same);
		CHECK_INT_AT(line, media_same(rows[i].b, rows[i].a), rows[i].same);
	}
}

/* --- methods that read no field ----------------------------------------------------------- */

static const struct {
	REQ_FIELDS;
	enum proto_err want;
} other_rows[] = {
	{ __LINE__, M_HEAD, .want = E_OK },
	{ __LINE__, M_HEAD, .query = "offset=zzz&offset=1&live=bogus&snapshot=1.2&snapshot&cursor=%zz" },
	{ __LINE__, M_HEAD, .query = "live=sse" },
	{ __LINE__, M_HEAD, TTL("x"), CT("zzz"), PID(""), FOFF("0000000000000001_0000000000000001"), INM("\"x\""), IFM("*") },
	{ __LINE__, M_DELETE, .want = E_OK },
	{ __LINE__, M_DELETE, .query = "offset=zzz&state=maybe&retention-age=0&compact" },
	{ __LINE__, M_DELETE, TTL("x"), EXP("x"), CT("zzz"), CLOSED("true"), PROD("", "x", "x"),
	  SSEQ(""), FROM("%"), FOFF("x"), FSUB("x") },
	{ __LINE__, M_DELETE, FOFF("0000000000000001_0000000000000001"), FSUB("1") },
	{ __LINE__, M_DELETE, .body = "x" },
	{ __LINE__, M_OPTIONS, .query = "offset=zzz", TTL("x") },
	{ __LINE__, M_OTHER, .query = "live=sse", PID("w1") },
	/* ...but their path is read. */
	{ __LINE__, M_HEAD, P("%zz"), .want = E_PATH_ESCAPE },
	{ __LINE__, M_DELETE, "/v1/stream/", .want = E_NOT_FOUND },
	{ __LINE__, M_OPTIONS, P(".."), .want = E_PATH_DOT },
};

static void test_other_methods(void)
{
	for (size_t i = 0; i < NELEM(other_rows); i++) {
		struct req r;
		parse_as(NULL, IN(&other_rows[i]), other_rows[i].want, &r);
	}
}

/* --- limits: values built at run time ------------------------------------------------------- */

static char *repeat(const char *head, const char *unit, size_t n, const char *tail)
{
	size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
	char *s = malloc(hl + ul * n + tl + 1);
	if (!s)
		abort();
	memcpy(s, head, hl);
	for (size_t i = 0; i < n; i++)
		memcpy(s + hl + ul * i, unit, ul);
	memcpy(s + hl + ul * n, tail, tl + 1);
	return s;
}

static void test_limits(void)
{
	struct {
		int line;
		char *path, *query, *ct, *pid, *sseq, *exp, *from;
		enum proto_err want;
	} rows[] = {
		/* names: 400 decoded bytes by default, escapes count once */
		{ __LINE__, .path = repeat(P(""), "n", LS_DEFAULT_MAX_PATH, ""), .want = E_OK },
		{ __LINE__, .path = repeat(P(""), "n", LS_DEFAULT_MAX_PATH + 1, ""), .want = E_PATH_TOO_LONG },
		{ __LINE__, .path = repeat(P(""), "%C3", LS_DEFAULT_MAX_PATH, ""), .want = E_OK },
		{ __LINE__, .path = repeat(P(""), "%C3", LS_DEFAULT_MAX_PATH, "n"), .want = E_PATH_TOO_LONG },
		{ __LINE__, .path = repeat(P(""), "%C3", LS_DEFAULT_MAX_PATH + 1, ""), .want = E_PATH_TOO_LONG },
		{ __LINE__, .from = repeat(P(""), "n", LS_DEFAULT_MAX_PATH, ""), .want = E_OK },
		{ __LINE__, .from = repeat(P(""), "n", LS_DEFAULT_MAX_PATH + 1, ""), .want = E_FORKED_FROM },
		/* header values */
		{ __LINE__, .ct = repeat("text/", "x", LS_MAX_CONTENT_TYPE - 5, ""), .want = E_OK },
		{ __LINE__, .ct = repeat("text/", "x", LS_MAX_CONTENT_TYPE - 4, ""), .want = E_CONTENT_TYPE },
		{ __LINE__, .ct = repeat("text/plain; a=", "x", LS_MAX_CONTENT_TYPE - 14, ""), .want = E_OK },
		{ __LINE__, .ct = repeat("text/plain; a=", "x", LS_MAX_CONTENT_TYPE - 13, ""), .want = E_CONTENT_TYPE },
		{ __LINE__, .pid = repeat("", "p", LS_MAX_PRODUCER_ID, ""), .want = E_OK },
		{ __LINE__, .pid = repeat("", "p", LS_MAX_PRODUCER_ID + 1, ""), .want = E_PRODUCER_ID },
		{ __LINE__, .sseq = repeat("", "s", LS_MAX_STREAM_SEQ, ""), .want = E_OK },
		{ __LINE__, .sseq = repeat("", "s", LS_MAX_STREAM_SEQ + 1, ""), .want = E_STREAM_SEQ },
		{ __LINE__, .exp = repeat("2099-01-01T00:00:00.", "0", 9, "+00:00"), .want = E_OK },
		{ __LINE__, .exp = repeat("2099-01-01T00:00:00.", "0", 9, "+00:00 "), .want = E_EXPIRES_AT },
		{ __LINE__, .exp = repeat("2099-01-01T00:00:00Z", " ", 45, ""), .want = E_EXPIRES_AT },
		/* query values: the limits apply to decoded values */
		{ __LINE__, .query = repeat("offset=", "%30", 16, "_0000000000000000"), .want = E_OK },
		{ __LINE__, .query = repeat("offset=", "%30", 19, "_%30"), .want = E_OFFSET },
		{ __LINE__, .query = repeat("offset=", "0", 80, "_0"), .want = E_OFFSET },
		{ __LINE__, .query = repeat("snapshot=1.2.", "ab", STATE_MAX_ROW_KEY, ""), .want = E_OK },
		{ __LINE__, .query = repeat("snapshot=1.2.", "ab", STATE_MAX_ROW_KEY + 1, ""), .want = E_SNAPSHOT_TOKEN },
		{ __LINE__, .query = repeat("snapshot=9999999999999999999.9999999999999999999.", "%41%42",
		                            STATE_MAX_ROW_KEY, ""), .want = E_OK },
		{ __LINE__, .query = repeat("snapshot=1.2.", "ab", 2000, ""), .want = E_SNAPSHOT_TOKEN },
		{ __LINE__, .query = repeat("retention-age=", "0", 14, "1"), .want = E_OK },
		{ __LINE__, .query = repeat("retention-age=", "0", 15, "1"), .want = E_RETENTION_AGE },
	};
	for (size_t i = 0; i < NELEM(rows); i++) {
		int line = rows[i].line;
		const char *q = rows[i].query;
		enum proto_method m = M_PUT;
		if (q && (!strncmp(q, "offset=", 7) || !strncmp(q, "snapshot=", 9)))
			m = M_GET;
		else if (rows[i].pid || rows[i].sseq)
			m = M_POST;
		struct in in = { line, m, rows[i].path, q, m == M_POST ? "x" : NULL, 0, 0, NULL };
		const char *h[H__COUNT] = { 0 };
		h[H_CONTENT_TYPE] = rows[i].ct ? rows[i].ct : m == M_POST ? TXT : NULL;
		if (rows[i].pid) {
			h[H_PRODUCER_ID] = rows[i].pid;
			h[H_PRODUCER_EPOCH] = "0";
			h[H_PRODUCER_SEQ] = "0";
		}
		h[H_STREAM_SEQ] = rows[i].sseq;
		h[H_STREAM_EXPIRES_AT] = rows[i].exp;
		h[H_FORKED_FROM] = rows[i].from;
		in.h = h;
		struct req r;
		if (parse_as(NULL, in, rows[i].want, &r)) {
			if (rows[i].path)
				CHECK_UINT_AT(line, r.name.len, LS_DEFAULT_MAX_PATH);
			if (rows[i].from)
				CHECK_UINT_AT(line, r.fork_src.len, LS_DEFAULT_MAX_PATH);
			if (rows[i].ct)
				CHECK_INT_AT(line, r.ct.valid, 1);
			if (rows[i].pid)
				CHECK_UINT_AT(line, r.producer_id_len, LS_MAX_PRODUCER_ID);
			if (rows[i].sseq)
				CHECK_UINT_AT(line, r.stream_seq_len, LS_MAX_STREAM_SEQ);
			if (q && !strncmp(q, "snapshot=", 9))
				CHECK_UINT_AT(line, r.token.after_len, STATE_MAX_ROW_KEY);
		}
		free(rows[i].path);
		free(rows[i].query);
		free(rows[i].ct);
		free(rows[i].pid);
		free(rows[i].sseq);
		free(rows[i].exp);
		free(rows[i].from);
	}
}

/* --- snapshot page tokens ------------------------------------------------------------------- */

/* snap_token_format writes what ?snapshot=TOKEN reads back. */
static void test_snap_token(void)
{
	static const struct {
		int line;
		uint64_t seq, sid;
		const char *key;      /* hex */
		const char *want;
	} rows[] = {
		{ __LINE__, 0, 0, "00", "0.0.00" },
		{ __LINE__, 5, 7, "00ff", "5.7.00ff" },
		{ __LINE__, 123456789, 42, "6b6579", "123456789.42.6b6579" },
		{ __LINE__, 9999999999999999999ULL, 1, "ab", "9999999999999999999.1.ab" },
	};
	for (size_t i = 0; i < NELEM(rows); i++) {
		int line = rows[i].line;
		unsigned char key[STATE_MAX_ROW_KEY];
		size_t klen = unhex(rows[i].key, key);
		char tok[64], q[96];
		snap_token_format(tok, sizeof tok, rows[i].seq, rows[i].sid, key, klen);
		CHECK_STR_AT(line, tok, rows[i].want);
		snprintf(q, sizeof q, "snapshot=%s", tok);
		const char *h[H__COUNT] = { 0 };
		struct req r;
		if (parse_as(NULL, (struct in){ line, M_GET, NULL, q, NULL, 0, 0, h }, E_OK, &r)) {
			CHECK_INT_AT(line, r.has_token, 1);
			CHECK_UINT_AT(line, r.token.seq, rows[i].seq);
			CHECK_UINT_AT(line, r.token.sid, rows[i].sid);
			CHECK_MEM_AT(line, r.token.after, r.token.after_len, key, klen);
		}
		/* Too small a buffer: an empty token, nothing written past it. */
		char small[64];
		size_t cap = strlen(rows[i].want);
		memset(small, 'X', sizeof small);
		snap_token_format(small, cap, rows[i].seq, rows[i].sid, key, klen);
		CHECK_STR_AT(line, small, "");
		CHECK_AT(line, small[cap] == 'X');
	}
	/* The longest key fits a token of SNAP_TOKEN_MAX bytes. */
	unsigned char key[STATE_MAX_ROW_KEY];
	memset(key, 0xa5, sizeof key);
	char tok[2 * STATE_MAX_ROW_KEY + 48];
	snap_token_format(tok, sizeof tok, 9999999999999999999ULL, 9999999999999999999ULL, key, sizeof key);
	CHECK_UINT(strlen(tok), 19 + 1 + 19 + 1 + 2 * STATE_MAX_ROW_KEY);
}

/* --- the error table ---------------------------------------------------------------------------- */

static void test_errors(void)
{
	static const struct {
		enum proto_err e;
		const char *name;
		int status;
		const char *reason;
	} table[] = {
#define ROW(name, status, reason) { name, #name, status, reason },
		PROTO_ERRORS(ROW)
#undef ROW
	};
	CHECK_UINT(NELEM(table), E__COUNT - 1);
	CHECK_INT(proto_err_status(E_OK), 200);
	CHECK_STR(proto_err_reason(E_OK), "");
	for (size_t i = 0; i < NELEM(table); i++) {
		enum proto_err e = table[i].e;
		int status = proto_err_status(e);
		const char *reason = proto_err_reason(e);
		unit_result(e == (enum proto_err)(i + 1), __FILE__, __LINE__, "%s is %d, at %zu", table[i].name, (int)e, i + 1);
		unit_result(status == table[i].status, __FILE__, __LINE__, "%s: status %d, want %d", table[i].name,
		            status, table[i].status);
		unit_result(status >= 400 && status <= 599, __FILE__, __LINE__, "%s: status %d is not 4xx/5xx",
		            table[i].name, status);
		unit_result(reason && !strcmp(reason, table[i].reason), __FILE__, __LINE__, "%s: reason \"%s\"",
		            table[i].name, reason ? reason : "(null)");
		size_t len = reason ? strlen(reason) : 0;
		int printable = len > 0;
		for (size_t k = 0; k < len; k++)
			if ((unsigned char)reason[k] < 0x20 || (unsigned char)reason[k] >= 0x7f)
				printable = 0;
		unit_result(printable && len < 200, __FILE__, __LINE__,
		            "%s: reason \"%s\" is not one printable line under 200 bytes", table[i].name,
		            unit_show(reason, len));
		const char *text = proto_status_text(status);
		unit_result(text && *text && strcmp(text, "Unknown") != 0, __FILE__, __LINE__,
		            "%s: proto_status_text(%d) is \"%s\"", table[i].name, status, text ? text : "(null)");
		/* Each reason tells its error apart in logs. */
		for (size_t j = 0; j < i; j++)
			unit_result(strcmp(table[j].reason, table[i].reason) != 0, __FILE__, __LINE__,
			            "%s and %s share the reason \"%s\"", table[j].name, table[i].name, table[i].reason);
	}
	/* Past the table: an internal error. */
	CHECK_INT(proto_err_status(E__COUNT), 500);
	CHECK_INT(proto_err_status((enum proto_err)-1), 500);
	CHECK_STR(proto_err_reason(E__COUNT), "internal error");

	/* The statuses of successful answers have their text too; others are "Unknown". */
	static const struct { int line, status; const char *text; } texts[] = {
		{ __LINE__, 200, "OK" }, { __LINE__, 201, "Created" }, { __LINE__, 204, "No Content" },
		{ __LINE__, 304, "Not Modified" }, { __LINE__, 404, "Not Found" }, { __LINE__, 410, "Gone" },
		{ __LINE__, 413, "Payload Too Large" }, { __LINE__, 414, "URI Too Long" },
		{ __LINE__, 507, "Insufficient Storage" },
		{ __LINE__, 0, "Unknown" }, { __LINE__, 418, "Unknown" }, { __LINE__, 999, "Unknown" },
		{ __LINE__, -1, "Unknown" },
	};
	for (size_t i = 0; i < NELEM(texts); i++)
		CHECK_STR_AT(texts[i].line, proto_status_text(texts[i].status), texts[i].text);
}

/* --- ?compact with a value ----------------------------------------------------------------------
 * A presence-only parameter counts whatever its value. (The first table of
 * fields decoded the value into a 1-byte buffer and dropped the parameter
 * when it had one.) */

static const struct {
	REQ_FIELDS;
	enum proto_err want;
	int compact;
} compact_rows[] = {
	{ __LINE__, M_POST, .query = "compact=1", .compact = 1 },
	{ __LINE__, M_POST, .query = "compact=true", CT(JS), .compact = 1 },
	{ __LINE__, M_POST, .query = "compact=true", CT(JS), .body = "[1]", .want = E_COMPACT_ARGS },
	{ __LINE__, M_POST, .query = "compact=1", CLOSED("true"), .want = E_COMPACT_ARGS },
};

static void test_compact_values(void)
{
	for (size_t i = 0; i < NELEM(compact_rows); i++) {
		struct proto_request raw;
		memset(&raw, 0, sizeof raw);
		raw.method = compact_rows[i].m;
		raw.target = P("s");
		raw.target_len = strlen(raw.target);
		raw.query = compact_rows[i].query;
		raw.query_len = raw.query ? strlen(raw.query) : 0;
		memcpy(raw.h, compact_rows[i].h, sizeof raw.h);
		raw.body = compact_rows[i].body;
		raw.body_len = raw.body ? strlen(raw.body) : 0;
		struct req r;
		enum proto_err got = req_parse(&raw, &cfg, &r);
		int ok = got == compact_rows[i].want && (got != E_OK || r.compact == compact_rows[i].compact);
		unit_result(ok, __FILE__, compact_rows[i].line, "POST ?%s: got %s, compact %d; want %s, compact %d",
		            compact_rows[i].query, err_name(got), r.compact, err_name(compact_rows[i].want),
		            compact_rows[i].compact);
	}
}

int main(void)
{
	config_defaults(&cfg);
	config_defaults(&cfg_small);
	snprintf(cfg_small.prefix, sizeof cfg_small.prefix, "/s/");
	cfg_small.max_path = 16;

	test_paths();
	test_get();
	test_put();
	test_post();
	test_media();
	test_media_helpers();
	test_other_methods();
	test_limits();
	test_snap_token();
	test_errors();
	test_compact_values();
	return unit_done();
}
