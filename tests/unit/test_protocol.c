/* test_protocol.c: unit tests of src/core/protocol.c, driving proto_handle and the
 * live-read calls with struct proto_request directly (no HTTP) on a store in
 * a temporary directory (removed at the end).
 *
 * Most tests are scripts: tables of steps run in order, each a request and
 * what the response must carry. A header expectation is an exact value,
 * ABSENT, ANY, "~text" (contains text) or OFF(seq, bytes) (an offset token). */
#include "lib/log.h"
#include "core/protocol.h"
#include "unit.h"

#include <dirent.h>
#include <stdlib.h>
#include <strings.h>
#include <unistd.h>

#define P(name) "/v1/stream/" name
#define ABSENT "\001absent"
#define ANY "\001any"
#define OFF(seq, bytes) "@" #seq ":" #bytes

struct hexp { const char *name, *value; };

struct step {
	int line;
	enum proto_method m;
	const char *path;
	const char *query;
	const char *ct, *body;
	size_t body_len;          /* 0: strlen(body) */
	const char *seq, *ttl, *exp, *closed, *pid, *pep, *pseq, *inm, *host;
	int https, too_large;
	int status;
	enum proto_action action;
	const char *want_body;    /* NULL: not checked */
	struct hexp h[6];
};

static char tmpdir[64];
static struct config cfg;
static struct store *st;
static struct proto_ctx ctx;
static struct proto_response R;
static struct proto_live L;

/* A live read owns its name: copies get their own. */
static struct proto_live live_dup(const struct proto_live *l)
{
	struct proto_live c = *l;
	c.name = l->name ? strdup(l->name) : NULL;
	return c;
}
static struct proto_request Q;

/* The commit hook: what proto reported. */
static int hook_calls;
static uint64_t hook_stream, hook_txnid;

static void on_commit(void *arg, uint64_t stream_id, uint64_t txnid)
{
	(void)arg;
	hook_calls++;
	hook_stream = stream_id;
	hook_txnid = txnid;
}

/* --- running steps ------------------------------------------------------------- */

static void build(const struct step *s, struct proto_request *r)
{
	memset(r, 0, sizeof *r);
	r->method = s->m;
	r->target = s->path;
	r->target_len = strlen(s->path);
	r->query = s->query ? s->query : "";
	r->query_len = strlen(r->query);
	r->h[H_HOST] = s->host;
	r->https = s->https;
	r->h[H_CONTENT_TYPE] = s->ct;
	r->h[H_STREAM_SEQ] = s->seq;
	r->h[H_STREAM_TTL] = s->ttl;
	r->h[H_STREAM_EXPIRES_AT] = s->exp;
	r->h[H_STREAM_CLOSED] = s->closed;
	r->h[H_PRODUCER_ID] = s->pid;
	r->h[H_PRODUCER_EPOCH] = s->pep;
	r->h[H_PRODUCER_SEQ] = s->pseq;
	r->h[H_IF_NONE_MATCH] = s->inm;
	r->body = s->body;
	r->body_len = s->body_len ? s->body_len : (s->body ? strlen(s->body) : 0);
	r->body_too_large = s->too_large;
}

static int header_ok(const struct proto_response *r, const struct hexp *e)
{
	const char *v = proto_get_header(r, e->name);
	if (!strcmp(e->value, ABSENT))
		return v == NULL;
	if (!v)
		return 0;
	if (!strcmp(e->value, ANY))
		return 1;
	if (e->value[0] == '~')
		return strstr(v, e->value + 1) != NULL;
	if (e->value[0] == '@') {
		unsigned long long seq, bytes;
		char off[OFFSET_LEN + 1];
		if (sscanf(e->value + 1, "%llu:%llu", &seq, &bytes) != 2)
			return 0;
		offset_format(off, seq, bytes);
		return !strcmp(v, off);
	}
	return !strcmp(v, e->value);
}

/* What every complete response must satisfy. */
static void check_invariants(int line, const struct proto_response *r, enum proto_method m)
{
	CHECK_AT(line, r->status >= 200 && r->status < 600);
	CHECK_AT(line, r->nheaders <= PROTO_MAX_HEADERS && r->hlen <= sizeof r->hbuf);
	/* Header values can be written out as they are. */
	for (int i = 0; i < r->nheaders; i++) {
		const char *v = r->headers[i].value;
		int safe = 1;
		for (const char *c = v; *c; c++)
			if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
				safe = 0;
		unit_result(safe, __FILE__, line, "header %s: \"%s\" is not printable ASCII",
		            r->headers[i].name, unit_show(v, strlen(v)));
	}
	/* No body on 204 and 304; none on a successful HEAD (fronts drop HEAD bodies). */
	if (r->status == 204 || r->status == 304 || (m == M_HEAD && r->status == 200))
		CHECK_UINT_AT(line, r->body.len, 0);
	CHECK_AT(line, proto_get_header(r, "Access-Control-Allow-Origin") != NULL);
	/* No header twice: HTTP clients join repeated values with ", ", which
	 * makes an offset unusable. */
	for (int i = 0; i < r->nheaders; i++)
		for (int j = i + 1; j < r->nheaders; j++)
			unit_result(strcasecmp(r->headers[i].name, r->headers[j].name) != 0, __FILE__, line,
			            "header %s twice", r->headers[i].name);
}

static void show_headers(int line, const struct proto_response *r)
{
	printf("%s:%d:   response %d (%s):", __FILE__, line, r->status, r->reason ? r->reason : "");
	for (int i = 0; i < r->nheaders; i++)
		printf(" [%s: %s]", r->headers[i].name, r->headers[i].value);
	printf(" body \"%s\"\n", unit_show(r->body.data, r->body.len));
}

/* Runs one step into R (and Q, L); returns 0 when it matched. */
static int run(const struct step *s)
{
	int before = unit_failed;
	build(s, &Q);
	proto_response_reset(&R);
	proto_handle(&ctx, &Q, &R, &L);
	CHECK_INT_AT(s->line, R.action, s->action);
	if (R.action != PROTO_WAIT) {
		CHECK_INT_AT(s->line, R.status, s->status);
		check_invariants(s->line, &R, s->m);
	}
	for (size_t i = 0; i < NELEM(s->h) && s->h[i].name; i++)
		unit_result(header_ok(&R, &s->h[i]), __FILE__, s->line, "header %s: got \"%s\", want \"%s\"",
		            s->h[i].name, proto_get_header(&R, s->h[i].name) ? proto_get_header(&R, s->h[i].name) : "(absent)",
		            s->h[i].value[0] == '\001' ? s->h[i].value + 1 : s->h[i].value);
	if (s->want_body)
		CHECK_MEM_AT(s->line, R.body.data, R.body.len, s->want_body, strlen(s->want_body));
	if (unit_failed != before)
		show_headers(s->line, &R);
	return unit_failed != before;
}

static void run_all(const struct step *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		run(&s[i]);
}

#define RUN(table) run_all(table, NELEM(table))

/* --- store helpers ---------------------------------------------------------------- */

static int get_meta(const char *name, struct stream_meta *m)
{
	struct store_txn r;
	store_txn_init(&r, st);
	if (store_read_begin(&r))
		return -1;
	int rc = store_meta_get(&r, name, strlen(name), m);
	store_read_end(&r);
	store_txn_release(&r);
	return rc;
}

/* Moves the stream's last access (and creation) into the past. */
static void backdate(const char *name, int64_t ms)
{
	struct store_txn w;
	struct stream_meta m;
	if (store_write_begin(&w, st))
		return;
	if (store_meta_get(&w, name, strlen(name), &m) == ST_OK) {
		m.access_ms -= ms;
		m.created_ms -= ms;
		store_meta_put(&w, name, strlen(name), &m);
		store_commit(&w, 1);
		return;
	}
	store_abort(&w);
}

static const char *mem_find(const char *h, size_t hl, const char *n)
{
	size_t nl = strlen(n);
	for (size_t i = 0; nl <= hl && i <= hl - nl; i++)
		if (!memcmp(h + i, n, nl))
			return h + i;
	return NULL;
}

static int count_of(const char *h, size_t hl, const char *n)
{
	int c = 0;
	const char *p;
	while ((p = mem_find(h, hl, n))) {
		c++;
		hl -= (size_t)(p - h) + 1;
		h = p + 1;
	}
	return c;
}

/* --- create --------------------------------------------------------------------------- */

static const struct step create_steps[] = {
	{ __LINE__, M_PUT, P("a"), .ct = "text/plain", .status = 201,
	  .h = { { "Location", "http://localhost/v1/stream/a" }, { "Content-Type", "text/plain" },
	         { "Stream-Next-Offset", OFF(0, 0) }, { "Stream-Closed", ABSENT } } },
	/* Same configuration: 200; the media type compares without parameters and case. */
	{ __LINE__, M_PUT, P("a"), .ct = "text/plain", .status = 200,
	  .h = { { "Stream-Next-Offset", OFF(0, 0) }, { "Content-Type", "text/plain" }, { "Location", ABSENT } } },
	{ __LINE__, M_PUT, P("a"), .ct = "TEXT/Plain; charset=utf-8", .status = 200 },
	/* Different configuration: 409. */
	{ __LINE__, M_PUT, P("a"), .ct = "application/json", .status = 409 },
	{ __LINE__, M_PUT, P("a"), .status = 409 },    /* default application/octet-stream */
	{ __LINE__, M_PUT, P("a"), .ct = "text/plain", .ttl = "60", .status = 409 },
	{ __LINE__, M_PUT, P("a"), .ct = "text/plain", .exp = "2099-01-01T00:00:00Z", .status = 409 },
	{ __LINE__, M_PUT, P("a"), .ct = "text/plain", .closed = "true", .status = 409 },
	/* Initial content. */
	{ __LINE__, M_PUT, P("b"), .ct = "text/plain", .body = "hello", .status = 201,
	  .h = { { "Stream-Next-Offset", OFF(1, 5) } } },
	{ __LINE__, M_GET, P("b"), .status = 200, .want_body = "hello",
	  .h = { { "Stream-Next-Offset", OFF(1, 5) }, { "Content-Type", "text/plain" },
	         { "Stream-Up-To-Date", "true" }, { "Stream-Closed", ABSENT } } },
	/* Location: scheme, a plausible Host, the name encoded again. */
	{ __LINE__, M_PUT, P("c"), .host = "example.com:8080", .https = 1, .status = 201,
	  .h = { { "Location", "https://example.com:8080/v1/stream/c" },
	         { "Content-Type", "application/octet-stream" } } },
	{ __LINE__, M_PUT, P("c2"), .host = "evil.example/x?\r\nSet-Cookie: a=b", .status = 201,
	  .h = { { "Location", "http://localhost/v1/stream/c2" } } },
	{ __LINE__, M_PUT, P("d%20e/f%2Fg"), .host = "[::1]:8081", .status = 201,
	  .h = { { "Location", "http://[::1]:8081/v1/stream/d%20e/f/g" } } },
	{ __LINE__, M_PUT, P("caf%C3%A9"), .status = 201,
	  .h = { { "Location", "http://localhost/v1/stream/caf%C3%A9" } } },
	/* Invalid headers: 400, nothing created. */
	{ __LINE__, M_PUT, P("bad"), .ttl = "60", .exp = "2099-01-01T00:00:00Z", .status = 400 },
	{ __LINE__, M_PUT, P("bad"), .ttl = "00060", .status = 400 },
	{ __LINE__, M_PUT, P("bad"), .ttl = "+60", .status = 400 },
	{ __LINE__, M_PUT, P("bad"), .ttl = "-1", .status = 400 },
	{ __LINE__, M_PUT, P("bad"), .ttl = "abc", .status = 400 },
	{ __LINE__, M_PUT, P("bad"), .ttl = "1e3", .status = 400 },
	{ __LINE__, M_PUT, P("bad"), .exp = "tomorrow", .status = 400 },
	{ __LINE__, M_PUT, P("bad"), .exp = "2099-13-01T00:00:00Z", .status = 400 },
	{ __LINE__, M_PUT, P("bad"), .ct = "text", .status = 400 },
	{ __LINE__, M_PUT, P("bad"), .ct = "a b/c", .status = 400 },
	{ __LINE__, M_PUT, P("bad"), .ct = "text/plain\r\nX: y", .status = 400 },
	{ __LINE__, M_PUT, P("bad"), .ct = "application/json", .body = "[1,]", .status = 400 },
	{ __LINE__, M_PUT, P("bad"), .ct = "application/json", .body = "{", .status = 400 },
	{ __LINE__, M_HEAD, P("bad"), .status = 404 },
	/* Paths. */
	{ __LINE__, M_PUT, "/v1/other/x", .status = 404 },
	{ __LINE__, M_PUT, "/v1/stream/", .status = 404 },
	{ __LINE__, M_PUT, "/v1/stream", .status = 404 },
	{ __LINE__, M_PUT, P(".."), .status = 400 },
	{ __LINE__, M_PUT, P("a/%2e%2e/b"), .status = 400 },
	{ __LINE__, M_PUT, P("a%00"), .status = 400 },
	{ __LINE__, M_PUT, P("a%0d%0a"), .status = 400 },
	{ __LINE__, M_PUT, P("a%G1"), .status = 400 },
	{ __LINE__, M_GET, P("%"), .status = 400 },
	/* JSON streams: the body is validated and split. */
	{ __LINE__, M_PUT, P("j0"), .ct = "application/json", .body = "[]", .status = 201,
	  .h = { { "Stream-Next-Offset", OFF(0, 0) } } },
	{ __LINE__, M_PUT, P("j1"), .ct = "application/json", .body = "[1, {\"a\":2}]", .status = 201,
	  .h = { { "Stream-Next-Offset", OFF(2, 8) } } },
	{ __LINE__, M_GET, P("j1"), .status = 200, .want_body = "[1,{\"a\":2}]" },
	/* No body at all: an empty JSON stream. */
	{ __LINE__, M_PUT, P("j-nobody"), .ct = "application/json", .status = 201,
	  .h = { { "Stream-Next-Offset", OFF(0, 0) } } },
	{ __LINE__, M_GET, P("j-nobody"), .status = 200, .want_body = "[]" },
	/* Created closed, with and without a body. */
	{ __LINE__, M_PUT, P("done"), .ct = "text/plain", .body = "final", .closed = "true", .status = 201,
	  .h = { { "Stream-Closed", "true" }, { "Stream-Next-Offset", OFF(1, 5) } } },
	{ __LINE__, M_PUT, P("done"), .ct = "text/plain", .closed = "true", .status = 200,
	  .h = { { "Stream-Closed", "true" } } },
	{ __LINE__, M_PUT, P("done"), .ct = "text/plain", .status = 409 },
	{ __LINE__, M_PUT, P("empty-done"), .closed = "true", .status = 201,
	  .h = { { "Stream-Closed", "true" }, { "Stream-Next-Offset", OFF(0, 0) } } },
	{ __LINE__, M_GET, P("empty-done"), .status = 200, .want_body = "",
	  .h = { { "Stream-Closed", "true" }, { "Stream-Up-To-Date", "true" } } },
};

/* The stream name reaches the store exactly as decoded. */
static void test_create(void)
{
	RUN(create_steps);
	struct stream_meta m;
	CHECK_INT(get_meta("d e/f/g", &m), ST_OK);
	CHECK_INT(get_meta("caf\xc3\xa9", &m), ST_OK);
	CHECK_INT(get_meta("bad", &m), ST_NOTFOUND);
}

/* --- append, read ------------------------------------------------------------------------- */

static const struct step append_steps[] = {
	{ __LINE__, M_PUT, P("ap"), .ct = "text/plain", .status = 201 },
	{ __LINE__, M_POST, P("ap"), .ct = "text/plain", .body = "hello", .status = 204,
	  .h = { { "Stream-Next-Offset", OFF(1, 5) }, { "Stream-Closed", ABSENT } } },
	{ __LINE__, M_POST, P("ap"), .ct = "text/plain; charset=utf-8", .body = " world", .status = 204,
	  .h = { { "Stream-Next-Offset", OFF(2, 11) } } },
	{ __LINE__, M_POST, P("ap"), .ct = "text/plain", .body = "\0\r\n\xff", .body_len = 4, .status = 204,
	  .h = { { "Stream-Next-Offset", OFF(3, 15) } } },
	{ __LINE__, M_GET, P("ap"), .status = 200,
	  .h = { { "Stream-Next-Offset", OFF(3, 15) }, { "Stream-Up-To-Date", "true" },
	         { "ETag", ANY }, { "Content-Type", "text/plain" }, { "Cache-Control", ANY } } },
	{ __LINE__, M_GET, P("ap"), .query = "offset=-1", .status = 200,
	  .h = { { "Stream-Next-Offset", OFF(3, 15) } } },
	{ __LINE__, M_GET, P("ap"), .query = "offset=0000000000000001_0000000000000005", .status = 200,
	  .h = { { "Stream-Next-Offset", OFF(3, 15) } } },
	{ __LINE__, M_GET, P("ap"), .query = "offset=0000000000000002_0000000000000011&live=false", .status = 200,
	  .h = { { "Stream-Next-Offset", OFF(3, 15) }, { "Stream-Up-To-Date", "true" } } },
	/* At the tail: empty, up to date, not cacheable. */
	{ __LINE__, M_GET, P("ap"), .query = "offset=0000000000000003_0000000000000015", .status = 200,
	  .want_body = "",
	  .h = { { "Stream-Next-Offset", OFF(3, 15) }, { "Stream-Up-To-Date", "true" },
	         { "Cache-Control", "no-cache" }, { "Stream-Closed", ABSENT } } },
	{ __LINE__, M_GET, P("ap"), .query = "offset=now", .status = 200, .want_body = "",
	  .h = { { "Stream-Next-Offset", OFF(3, 15) }, { "Stream-Up-To-Date", "true" } } },
	{ __LINE__, M_HEAD, P("ap"), .status = 200,
	  .h = { { "Stream-Next-Offset", OFF(3, 15) }, { "Content-Type", "text/plain" },
	         { "Cache-Control", "no-store" }, { "Stream-Closed", ABSENT }, { "Stream-TTL", ABSENT } } },
	/* Append errors. */
	{ __LINE__, M_POST, P("ap"), .body = "x", .status = 400 },                       /* no Content-Type */
	{ __LINE__, M_POST, P("ap"), .ct = "zzz", .body = "x", .status = 400 },
	{ __LINE__, M_POST, P("ap"), .ct = "application/json", .body = "1", .status = 409 },
	{ __LINE__, M_POST, P("ap"), .ct = "text/html", .body = "x", .status = 409 },
	{ __LINE__, M_POST, P("ap"), .ct = "text/plain", .status = 400 },                /* empty body */
	{ __LINE__, M_POST, P("ap"), .ct = "text/plain", .body = "", .status = 400 },
	{ __LINE__, M_POST, P("ap"), .ct = "text/plain", .closed = "false", .status = 400 },
	{ __LINE__, M_POST, P("missing"), .ct = "text/plain", .body = "x", .status = 404 },
	{ __LINE__, M_POST, P("ap"), .ct = "text/plain", .body = "x", .seq = "a\x01", .status = 400 },
	/* Stream-Seq: strictly increasing, byte-wise. */
	{ __LINE__, M_POST, P("ap"), .ct = "text/plain", .body = "1", .seq = "b", .status = 204 },
	{ __LINE__, M_POST, P("ap"), .ct = "text/plain", .body = "2", .seq = "a", .status = 409 },
	{ __LINE__, M_POST, P("ap"), .ct = "text/plain", .body = "2", .seq = "b", .status = 409 },
	{ __LINE__, M_POST, P("ap"), .ct = "text/plain", .body = "2", .seq = "c", .status = 204 },
	{ __LINE__, M_POST, P("ap"), .ct = "text/plain", .body = "3", .seq = "bz", .status = 409 },
	{ __LINE__, M_POST, P("ap"), .ct = "text/plain", .body = "3", .seq = "c0", .status = 204 },
	{ __LINE__, M_POST, P("ap"), .ct = "text/plain", .body = "4", .status = 204 },   /* Stream-Seq optional */
	{ __LINE__, M_POST, P("ap"), .ct = "text/plain", .body = "5", .seq = "c", .status = 409 },
	{ __LINE__, M_GET, P("ap"), .query = "offset=0000000000000003_0000000000000015", .status = 200,
	  .want_body = "1234", .h = { { "Stream-Next-Offset", OFF(7, 19) } } },
	/* Query errors. */
	{ __LINE__, M_GET, P("ap"), .query = "offset=abc", .status = 400 },
	{ __LINE__, M_GET, P("ap"), .query = "offset=", .status = 400 },
	{ __LINE__, M_GET, P("ap"), .query = "offset", .status = 400 },
	{ __LINE__, M_GET, P("ap"), .query = "offset=%zz", .status = 400 },
	{ __LINE__, M_GET, P("ap"), .query = "offset=-1&offset=-1", .status = 400 },
	{ __LINE__, M_GET, P("ap"), .query = "offset=-1&live=bogus", .status = 400 },
	{ __LINE__, M_GET, P("ap"), .query = "offset=-1&live=sse&live=sse", .status = 400 },
	{ __LINE__, M_GET, P("ap"), .query = "live=long-poll", .status = 400 },
	{ __LINE__, M_GET, P("ap"), .query = "live=sse", .status = 400 },
	{ __LINE__, M_GET, P("missing"), .status = 404 },
	{ __LINE__, M_HEAD, P("missing"), .status = 404 },
	{ __LINE__, M_GET, P("missing"), .query = "offset=-1&live=long-poll", .status = 404 },
	{ __LINE__, M_GET, P("missing"), .query = "offset=-1&live=sse", .status = 404 },
};

static void test_append_read(void)
{
	RUN(append_steps);

	/* Binary bytes round-trip exactly. */
	static const struct step get1 = { __LINE__, M_GET, P("ap"), .query = "offset=0000000000000001_0000000000000005",
	                                  .status = 200 };
	run(&get1);
	CHECK_MEM(R.body.data, R.body.len, " world\0\r\n\xff" "1234", 14);

	/* ETag and If-None-Match. */
	static const struct step get = { __LINE__, M_GET, P("ap"), .status = 200 };
	run(&get);
	char etag[128];
	snprintf(etag, sizeof etag, "%s", proto_get_header(&R, "ETag") ? proto_get_header(&R, "ETag") : "");
	CHECK(etag[0] == '"' && etag[strlen(etag) - 1] == '"');
	char list[300], weak[140];
	snprintf(list, sizeof list, "\"nope\", %s", etag);
	snprintf(weak, sizeof weak, "W/%s", etag);
	const struct step inm[] = {
		{ __LINE__, M_GET, P("ap"), .inm = etag, .status = 304, .want_body = "", .h = { { "ETag", etag } } },
		{ __LINE__, M_GET, P("ap"), .inm = list, .status = 304 },
		{ __LINE__, M_GET, P("ap"), .inm = weak, .status = 304 },
		{ __LINE__, M_GET, P("ap"), .inm = "*", .status = 304 },
		{ __LINE__, M_GET, P("ap"), .inm = "\"nope\"", .status = 200 },
		{ __LINE__, M_GET, P("ap"), .inm = "", .status = 200 },
		/* Another range has another tag. */
		{ __LINE__, M_GET, P("ap"), .query = "offset=0000000000000001_0000000000000005", .inm = etag, .status = 200 },
		/* A new append changes the tag of a read from the start. */
		{ __LINE__, M_POST, P("ap"), .ct = "text/plain", .body = "more", .status = 204 },
		{ __LINE__, M_GET, P("ap"), .inm = etag, .status = 200 },
	};
	RUN(inm);
}

/* --- JSON mode ---------------------------------------------------------------------------- */

static const struct step json_steps[] = {
	{ __LINE__, M_PUT, P("js"), .ct = "application/json", .body = "[]", .status = 201 },
	{ __LINE__, M_POST, P("js"), .ct = "application/json", .body = "{\"a\":1}", .status = 204,
	  .h = { { "Stream-Next-Offset", OFF(1, 7) } } },
	{ __LINE__, M_POST, P("js"), .ct = "application/json; charset=utf-8", .body = "[1, 2 ,\"x\"]", .status = 204,
	  .h = { { "Stream-Next-Offset", OFF(4, 12) } } },
	{ __LINE__, M_POST, P("js"), .ct = "application/json", .body = " [[1, 2]] ", .status = 204,
	  .h = { { "Stream-Next-Offset", OFF(5, 18) } } },
	{ __LINE__, M_POST, P("js"), .ct = "application/json", .body = "1.0e400", .status = 204 },
	{ __LINE__, M_POST, P("js"), .ct = "application/json", .body = "[]", .status = 400 },
	{ __LINE__, M_POST, P("js"), .ct = "application/json", .body = "[1,]", .status = 400 },
	{ __LINE__, M_POST, P("js"), .ct = "application/json", .body = "01", .status = 400 },
	{ __LINE__, M_POST, P("js"), .ct = "application/json", .body = "\"\xc0\x80\"", .status = 400 },
	{ __LINE__, M_POST, P("js"), .ct = "application/json", .body = "1 2", .status = 400 },
	{ __LINE__, M_POST, P("js"), .ct = "text/plain", .body = "1", .status = 409 },
	{ __LINE__, M_GET, P("js"), .status = 200, .want_body = "[{\"a\":1},1,2,\"x\",[1, 2],1.0e400]",
	  .h = { { "Content-Type", "application/json" }, { "Stream-Next-Offset", OFF(6, 25) } } },
	{ __LINE__, M_GET, P("js"), .query = "offset=0000000000000001_0000000000000007", .status = 200,
	  .want_body = "[1,2,\"x\",[1, 2],1.0e400]" },
	{ __LINE__, M_GET, P("js"), .query = "offset=now", .status = 200, .want_body = "[]",
	  .h = { { "Stream-Next-Offset", OFF(6, 25) } } },
	{ __LINE__, M_GET, P("js"), .query = "offset=0000000000000006_0000000000000025", .status = 200,
	  .want_body = "[]" },
};

static void test_json(void)
{
	RUN(json_steps);
}

/* --- long-poll ---------------------------------------------------------------------------- */

static void test_longpoll(void)
{
	static const struct step setup[] = {
		{ __LINE__, M_PUT, P("lp"), .ct = "text/plain", .body = "a", .status = 201 },
	};
	RUN(setup);

	/* Before the tail: data at once, with a cursor. */
	static const struct step early = { __LINE__, M_GET, P("lp"), .query = "offset=-1&live=long-poll",
		.status = 200, .want_body = "a",
		.h = { { "Stream-Cursor", ANY }, { "Stream-Next-Offset", OFF(1, 1) }, { "Stream-Up-To-Date", "true" } } };
	run(&early);

	/* At the tail: wait. */
	static const struct step wait = { __LINE__, M_GET, P("lp"),
		.query = "offset=0000000000000001_0000000000000001&live=long-poll", .action = PROTO_WAIT };
	run(&wait);
	struct proto_request wreq = Q;   /* the front keeps the request while waiting */
	struct proto_live wlive = live_dup(&L);
	proto_response_reset(&R);
	proto_longpoll_poll(&ctx, &wreq, &wlive, &R);
	CHECK_INT(R.action, PROTO_WAIT);
	/* A second reader waits at the same offset. */
	run(&wait);
	struct proto_request wreq2 = Q;
	struct proto_live wlive2 = live_dup(&L);

	/* An append wakes it with the new data. */
	static const struct step post = { __LINE__, M_POST, P("lp"), .ct = "text/plain", .body = "bc", .status = 204 };
	struct proto_response pr;
	proto_response_init(&pr);
	struct proto_request preq;
	build(&post, &preq);
	struct proto_live plive = { 0 };
	proto_handle(&ctx, &preq, &pr, &plive);
	CHECK_INT(pr.status, 204);
	proto_response_free(&pr);

	proto_response_reset(&R);
	proto_longpoll_poll(&ctx, &wreq, &wlive, &R);
	CHECK_INT(R.action, PROTO_DONE);
	CHECK_INT(R.status, 200);
	CHECK_MEM(R.body.data, R.body.len, "bc", 2);
	CHECK(header_ok(&R, &(struct hexp){ "Stream-Next-Offset", OFF(2, 3) }));
	CHECK(header_ok(&R, &(struct hexp){ "Stream-Cursor", ANY }));
	CHECK(header_ok(&R, &(struct hexp){ "Stream-Up-To-Date", "true" }));
	check_invariants(__LINE__, &R, M_GET);

	/* The same commit wakes the second reader, polled into the same response
	 * object without a reset (lmstream-live keeps one per thread): it gets
	 * the same answer, each header once. */
	proto_longpoll_poll(&ctx, &wreq2, &wlive2, &R);
	CHECK_INT(R.action, PROTO_DONE);
	CHECK_INT(R.status, 200);
	CHECK_MEM(R.body.data, R.body.len, "bc", 2);
	CHECK(header_ok(&R, &(struct hexp){ "Stream-Next-Offset", OFF(2, 3) }));
	check_invariants(__LINE__, &R, M_GET);
	proto_live_clear(&wlive2);

	/* Timeout: 204 with the offset, up to date, and a cursor. */
	static const struct step wait2 = { __LINE__, M_GET, P("lp"),
		.query = "offset=0000000000000002_0000000000000003&live=long-poll&cursor=5", .action = PROTO_WAIT };
	run(&wait2);
	wreq = Q;
	proto_live_clear(&wlive);
	wlive = live_dup(&L);
	proto_response_reset(&R);
	proto_longpoll_timeout(&ctx, &wreq, &wlive, &R);
	CHECK_INT(R.action, PROTO_DONE);
	CHECK_INT(R.status, 204);
	CHECK_UINT(R.body.len, 0);
	CHECK(header_ok(&R, &(struct hexp){ "Stream-Next-Offset", OFF(2, 3) }));
	CHECK(header_ok(&R, &(struct hexp){ "Stream-Up-To-Date", "true" }));
	CHECK(header_ok(&R, &(struct hexp){ "Stream-Closed", ABSENT }));
	const char *cur = proto_get_header(&R, "Stream-Cursor");
	CHECK(cur && strspn(cur, "0123456789") == strlen(cur) && *cur);
	check_invariants(__LINE__, &R, M_GET);

	/* A client cursor at or past the current interval is moved ahead. */
	char far[32], q[128];
	unsigned long long now_iv = (unsigned long long)((store_now_ms() - LS_CURSOR_EPOCH_MS) / (LS_CURSOR_INTERVAL_S * 1000));
	snprintf(far, sizeof far, "%llu", now_iv + 100);
	snprintf(q, sizeof q, "offset=0000000000000002_0000000000000003&live=long-poll&cursor=%s", far);
	const struct step wait3 = { __LINE__, M_GET, P("lp"), .query = q, .action = PROTO_WAIT };
	run(&wait3);
	wreq = Q;
	proto_live_clear(&wlive);
	wlive = live_dup(&L);
	proto_response_reset(&R);
	proto_longpoll_timeout(&ctx, &wreq, &wlive, &R);
	cur = proto_get_header(&R, "Stream-Cursor");
	CHECK(cur && strtoull(cur, NULL, 10) > now_iv + 100);

	/* Closing while waiting ends the wait with 204 and Stream-Closed. */
	run(&wait2);
	wreq = Q;
	proto_live_clear(&wlive);
	wlive = live_dup(&L);
	static const struct step close = { __LINE__, M_POST, P("lp"), .closed = "true", .status = 204 };
	build(&close, &preq);
	proto_response_init(&pr);
	proto_handle(&ctx, &preq, &pr, &plive);
	CHECK_INT(pr.status, 204);
	proto_response_free(&pr);
	proto_response_reset(&R);
	proto_longpoll_poll(&ctx, &wreq, &wlive, &R);
	CHECK_INT(R.action, PROTO_DONE);
	CHECK_INT(R.status, 204);
	CHECK(header_ok(&R, &(struct hexp){ "Stream-Closed", "true" }));
	CHECK(header_ok(&R, &(struct hexp){ "Stream-Up-To-Date", "true" }));
	CHECK(header_ok(&R, &(struct hexp){ "Stream-Next-Offset", OFF(2, 3) }));

	/* A closed stream at the tail answers at once. */
	static const struct step closed_tail = { __LINE__, M_GET, P("lp"),
		.query = "offset=0000000000000002_0000000000000003&live=long-poll", .status = 204,
		.h = { { "Stream-Closed", "true" }, { "Stream-Up-To-Date", "true" }, { "Stream-Next-Offset", OFF(2, 3) } } };
	run(&closed_tail);
	static const struct step closed_now = { __LINE__, M_GET, P("lp"), .query = "offset=now&live=long-poll",
		.status = 204, .h = { { "Stream-Closed", "true" } } };
	run(&closed_now);

	/* A stream deleted while waiting: 404. */
	static const struct step steps2[] = {
		{ __LINE__, M_PUT, P("lp2"), .ct = "text/plain", .status = 201 },
		{ __LINE__, M_GET, P("lp2"), .query = "offset=now&live=long-poll", .action = PROTO_WAIT },
	};
	RUN(steps2);
	wreq = Q;
	proto_live_clear(&wlive);
	wlive = live_dup(&L);
	static const struct step del = { __LINE__, M_DELETE, P("lp2"), .status = 204 };
	run(&del);
	proto_response_reset(&R);
	proto_longpoll_poll(&ctx, &wreq, &wlive, &R);
	CHECK_INT(R.action, PROTO_DONE);
	CHECK_INT(R.status, 404);

	/* ...and re-created meanwhile under the same name: still 404 for the old reader. */
	static const struct step steps3[] = {
		{ __LINE__, M_PUT, P("lp3"), .ct = "text/plain", .status = 201 },
		{ __LINE__, M_GET, P("lp3"), .query = "offset=now&live=long-poll", .action = PROTO_WAIT },
	};
	RUN(steps3);
	wreq = Q;
	proto_live_clear(&wlive);
	wlive = live_dup(&L);
	static const struct step recreate[] = {
		{ __LINE__, M_DELETE, P("lp3"), .status = 204 },
		{ __LINE__, M_PUT, P("lp3"), .ct = "text/plain", .body = "new", .status = 201 },
	};
	RUN(recreate);
	proto_response_reset(&R);
	proto_longpoll_poll(&ctx, &wreq, &wlive, &R);
	CHECK_INT(R.action, PROTO_DONE);
	CHECK_INT(R.status, 404);
	proto_live_clear(&wlive);
	proto_live_clear(&plive);
}

/* --- SSE -------------------------------------------------------------------------------------- */

static int starts_with(const struct buf *b, const char *prefix)
{
	size_t n = strlen(prefix);
	return b->len >= n && !memcmp(b->data, prefix, n);
}

static enum sse_step sse(struct proto_live *live, struct buf *out)
{
	buf_reset(out);
	return proto_sse_step(&ctx, live, out);
}

static void test_sse(void)
{
	static const struct step setup[] = {
		{ __LINE__, M_PUT, P("ss"), .ct = "text/plain", .status = 201 },
		{ __LINE__, M_POST, P("ss"), .ct = "text/plain", .body = "one", .status = 204 },
		{ __LINE__, M_POST, P("ss"), .ct = "text/plain", .body = "two", .status = 204 },
		{ __LINE__, M_GET, P("ss"), .query = "offset=-1&live=sse", .status = 200, .action = PROTO_SSE,
		  .h = { { "Content-Type", "text/event-stream" }, { "Stream-SSE-Data-Encoding", ABSENT },
		         { "Cache-Control", ANY } } },
	};
	RUN(setup);
	struct proto_live live = live_dup(&L);
	struct buf out;
	buf_init(&out);
	char want[256];

	/* Catch-up: one data event, then a control event at the tail. */
	CHECK_INT(sse(&live, &out), SSE_IDLE);
	CHECK(starts_with(&out, "event: data\ndata:onetwo\n\nevent: control\ndata:{"));
	snprintf(want, sizeof want, "\"streamNextOffset\":\"%s\"", "0000000000000002_0000000000000006");
	CHECK(mem_find(out.data, out.len, want) != NULL);
	CHECK(mem_find(out.data, out.len, "\"streamCursor\":\"") != NULL);
	CHECK(mem_find(out.data, out.len, "\"upToDate\":true}\n\n") != NULL);
	CHECK_INT(count_of(out.data, out.len, "event: "), 2);

	/* Nothing new: idle, nothing written. */
	CHECK_INT(sse(&live, &out), SSE_IDLE);
	CHECK_UINT(out.len, 0);

	/* An append: its data and a control event. */
	static const struct step post3 = { __LINE__, M_POST, P("ss"), .ct = "text/plain", .body = "three", .status = 204 };
	struct proto_live scratch = { 0 };
	struct proto_request rq;
	struct proto_response rs;
	proto_response_init(&rs);
#define SIDE(step) do { build(&(step), &rq); proto_response_reset(&rs); \
		proto_handle(&ctx, &rq, &rs, &scratch); CHECK_INT_AT((step).line, rs.status, (step).status); } while (0)
	SIDE(post3);
	CHECK_INT(sse(&live, &out), SSE_IDLE);
	CHECK(starts_with(&out, "event: data\ndata:three\n\nevent: control\n"));
	CHECK(mem_find(out.data, out.len, "0000000000000003_0000000000000011") != NULL);

	/* Closed without data while the reader idles at the tail: the final
	 * control event carries streamClosed and the stream ends (PROTOCOL.md 5.8). */
	static const struct step close = { __LINE__, M_POST, P("ss"), .closed = "true", .status = 204 };
	SIDE(close);
	enum sse_step rc = sse(&live, &out);
	CHECK_INT(rc, SSE_END);
	CHECK(mem_find(out.data, out.len, "\"streamClosed\":true") != NULL);
	CHECK(mem_find(out.data, out.len, "streamCursor") == NULL);

	/* Append and close while idle: data, then the closing control event. */
	static const struct step s2[] = {
		{ __LINE__, M_PUT, P("ss2"), .ct = "text/plain", .status = 201 },
		{ __LINE__, M_GET, P("ss2"), .query = "offset=now&live=sse", .status = 200, .action = PROTO_SSE },
	};
	RUN(s2);
	proto_live_clear(&live);
	live = live_dup(&L);
	CHECK_INT(sse(&live, &out), SSE_IDLE);     /* the first control event */
	CHECK(mem_find(out.data, out.len, "\"upToDate\":true") != NULL);
	CHECK(mem_find(out.data, out.len, "event: data") == NULL);
	static const struct step last = { __LINE__, M_POST, P("ss2"), .ct = "text/plain", .body = "bye",
	                                  .closed = "true", .status = 204 };
	SIDE(last);
	CHECK_INT(sse(&live, &out), SSE_END);
	CHECK(starts_with(&out, "event: data\ndata:bye\n\nevent: control\n"));
	CHECK(mem_find(out.data, out.len, "\"streamClosed\":true") != NULL);
	CHECK(mem_find(out.data, out.len, "streamCursor") == NULL);

	/* Already closed at the tail when connecting: one control event, end. */
	static const struct step s3 = { __LINE__, M_GET, P("ss2"), .query = "offset=now&live=sse", .status = 200,
	                                .action = PROTO_SSE };
	run(&s3);
	proto_live_clear(&live);
	live = live_dup(&L);
	CHECK_INT(sse(&live, &out), SSE_END);
	CHECK_INT(count_of(out.data, out.len, "event: "), 1);
	CHECK(mem_find(out.data, out.len, "event: control\n") == out.data);
	CHECK(mem_find(out.data, out.len, "\"streamClosed\":true") != NULL);

	/* Binary streams are base64-encoded. */
	static const struct step bin[] = {
		{ __LINE__, M_PUT, P("ssb"), .ct = "application/octet-stream", .body = "\0\r\n\xff", .body_len = 4,
		  .status = 201 },
		{ __LINE__, M_GET, P("ssb"), .query = "offset=-1&live=sse", .status = 200, .action = PROTO_SSE,
		  .h = { { "Stream-SSE-Data-Encoding", "base64" } } },
	};
	RUN(bin);
	proto_live_clear(&live);
	live = live_dup(&L);
	CHECK_INT(sse(&live, &out), SSE_IDLE);
	CHECK(starts_with(&out, "event: data\ndata:AA0K/w==\n\n"));

	/* JSON streams: one array per data event. */
	static const struct step js[] = {
		{ __LINE__, M_PUT, P("ssj"), .ct = "application/json", .body = "[{\"k\":\"v\"},2]", .status = 201 },
		{ __LINE__, M_GET, P("ssj"), .query = "offset=-1&live=sse", .status = 200, .action = PROTO_SSE,
		  .h = { { "Stream-SSE-Data-Encoding", ABSENT } } },
	};
	RUN(js);
	proto_live_clear(&live);
	live = live_dup(&L);
	CHECK_INT(sse(&live, &out), SSE_IDLE);
	CHECK(starts_with(&out, "event: data\ndata:[{\"k\":\"v\"},2]\n\n"));

	/* Large catch-up comes in batches: more, more, then idle. */
	static const struct step big0 = { __LINE__, M_PUT, P("ssl"), .ct = "text/plain", .status = 201 };
	run(&big0);
	char *chunk = malloc(40000);
	memset(chunk, 'x', 40000);
	for (int i = 0; i < 3; i++) {
		const struct step big = { __LINE__, M_POST, P("ssl"), .ct = "text/plain", .body = chunk,
		                          .body_len = 40000, .status = 204 };
		SIDE(big);
	}
	free(chunk);
	static const struct step bigget = { __LINE__, M_GET, P("ssl"), .query = "offset=-1&live=sse", .status = 200,
	                                    .action = PROTO_SSE };
	run(&bigget);
	proto_live_clear(&live);
	live = live_dup(&L);
	CHECK_INT(sse(&live, &out), SSE_MORE);
	CHECK(mem_find(out.data, out.len, "upToDate") == NULL);
	CHECK(mem_find(out.data, out.len, "0000000000000001_0000000000040000") != NULL);
	CHECK_INT(sse(&live, &out), SSE_MORE);
	CHECK_INT(sse(&live, &out), SSE_IDLE);
	CHECK(mem_find(out.data, out.len, "0000000000000003_0000000000120000") != NULL);
	CHECK(mem_find(out.data, out.len, "\"upToDate\":true") != NULL);

	/* Deleted: the stream ends. */
	static const struct step del = { __LINE__, M_DELETE, P("ssl"), .status = 204 };
	SIDE(del);
	CHECK_INT(sse(&live, &out), SSE_END);
#undef SIDE
	proto_response_free(&rs);
	buf_free(&out);
	proto_live_clear(&live);
	proto_live_clear(&scratch);
}

/* --- idempotent producers ---------------------------------------------------------------------- */

#define PROD(epoch, seq) .pid = "w1", .pep = #epoch, .pseq = #seq

static const struct step producer_steps[] = {
	{ __LINE__, M_PUT, P("pr"), .ct = "text/plain", .status = 201 },
	{ __LINE__, M_POST, P("pr"), .ct = "text/plain", .body = "a", PROD(0, 0), .status = 200,
	  .h = { { "Producer-Epoch", "0" }, { "Producer-Seq", "0" }, { "Stream-Next-Offset", OFF(1, 1) } } },
	/* A retry is a duplicate: 204, nothing appended. */
	{ __LINE__, M_POST, P("pr"), .ct = "text/plain", .body = "a", PROD(0, 0), .status = 204,
	  .h = { { "Producer-Epoch", "0" }, { "Producer-Seq", "0" } } },
	{ __LINE__, M_POST, P("pr"), .ct = "text/plain", .body = "b", PROD(0, 1), .status = 200,
	  .h = { { "Producer-Seq", "1" }, { "Stream-Next-Offset", OFF(2, 2) } } },
	{ __LINE__, M_POST, P("pr"), .ct = "text/plain", .body = "a", PROD(0, 0), .status = 204,
	  .h = { { "Producer-Seq", "1" } } },
	/* A gap: 409 with the expected and received sequence. */
	{ __LINE__, M_POST, P("pr"), .ct = "text/plain", .body = "d", PROD(0, 3), .status = 409,
	  .h = { { "Producer-Expected-Seq", "2" }, { "Producer-Received-Seq", "3" } } },
	{ __LINE__, M_POST, P("pr"), .ct = "text/plain", .body = "c", PROD(0, 2), .status = 200 },
	/* A new epoch starts at 0. */
	{ __LINE__, M_POST, P("pr"), .ct = "text/plain", .body = "e", PROD(1, 1), .status = 400 },
	{ __LINE__, M_POST, P("pr"), .ct = "text/plain", .body = "e", PROD(1, 0), .status = 200,
	  .h = { { "Producer-Epoch", "1" }, { "Producer-Seq", "0" } } },
	/* A stale epoch is fenced: 403 with the current epoch. */
	{ __LINE__, M_POST, P("pr"), .ct = "text/plain", .body = "z", PROD(0, 3), .status = 403,
	  .h = { { "Producer-Epoch", "1" } } },
	{ __LINE__, M_POST, P("pr"), .ct = "text/plain", .body = "z", PROD(0, 0), .status = 403 },
	/* An unknown producer must start at 0. */
	{ __LINE__, M_POST, P("pr"), .ct = "text/plain", .body = "z", .pid = "w2", .pep = "0", .pseq = "5",
	  .status = 409, .h = { { "Producer-Expected-Seq", "0" }, { "Producer-Received-Seq", "5" } } },
	{ __LINE__, M_POST, P("pr"), .ct = "text/plain", .body = "f", .pid = "w2", .pep = "7", .pseq = "0",
	  .status = 200 },
	/* Bad producer headers: 400. */
	{ __LINE__, M_POST, P("pr"), .ct = "text/plain", .body = "z", .pid = "w1", .status = 400 },
	{ __LINE__, M_POST, P("pr"), .ct = "text/plain", .body = "z", .pid = "w1", .pep = "1", .status = 400 },
	{ __LINE__, M_POST, P("pr"), .ct = "text/plain", .body = "z", .pep = "1", .pseq = "1", .status = 400 },
	{ __LINE__, M_POST, P("pr"), .ct = "text/plain", .body = "z", .pid = "", .pep = "1", .pseq = "1", .status = 400 },
	{ __LINE__, M_POST, P("pr"), .ct = "text/plain", .body = "z", .pid = "w\n1", .pep = "1", .pseq = "1", .status = 400 },
	{ __LINE__, M_POST, P("pr"), .ct = "text/plain", .body = "z", .pid = "w1", .pep = "abc", .pseq = "1", .status = 400 },
	{ __LINE__, M_POST, P("pr"), .ct = "text/plain", .body = "z", .pid = "w1", .pep = "1", .pseq = "-1", .status = 400 },
	{ __LINE__, M_POST, P("pr"), .ct = "text/plain", .body = "z", .pid = "w1", .pep = "9007199254740992", .pseq = "0",
	  .status = 400 },
	{ __LINE__, M_POST, P("pr"), .ct = "text/plain", .body = "z", .pid = "w1", .pep = "1", .pseq = "1.5", .status = 400 },
	{ __LINE__, M_GET, P("pr"), .status = 200, .want_body = "abcef" },
	/* Closing with a final append; its retry is a duplicate; others get 409. */
	{ __LINE__, M_POST, P("pr"), .ct = "text/plain", .body = "Z", PROD(1, 1), .closed = "true", .status = 200,
	  .h = { { "Stream-Closed", "true" }, { "Producer-Seq", "1" }, { "Stream-Next-Offset", OFF(6, 6) } } },
	{ __LINE__, M_POST, P("pr"), .ct = "text/plain", .body = "Z", PROD(1, 1), .closed = "true", .status = 204,
	  .h = { { "Stream-Closed", "true" } } },
	{ __LINE__, M_POST, P("pr"), .ct = "text/plain", .body = "Y", PROD(1, 2), .status = 409,
	  .h = { { "Stream-Closed", "true" }, { "Stream-Next-Offset", OFF(6, 6) } } },
	{ __LINE__, M_GET, P("pr"), .status = 200, .want_body = "abcefZ", .h = { { "Stream-Closed", "true" } } },
};

static void test_producers(void)
{
	RUN(producer_steps);
}

/* --- closure -------------------------------------------------------------------------------------- */

static const struct step close_steps[] = {
	{ __LINE__, M_PUT, P("cl"), .ct = "text/plain", .status = 201 },
	{ __LINE__, M_POST, P("cl"), .ct = "text/plain", .body = "x", .status = 204 },
	{ __LINE__, M_POST, P("cl"), .closed = "true", .status = 204,
	  .h = { { "Stream-Closed", "true" }, { "Stream-Next-Offset", OFF(1, 1) } } },
	/* Close-only is idempotent, even with a Content-Type attached. */
	{ __LINE__, M_POST, P("cl"), .closed = "true", .status = 204, .h = { { "Stream-Closed", "true" } } },
	{ __LINE__, M_POST, P("cl"), .ct = "application/json", .closed = "true", .status = 204 },
	/* Appends are refused with Stream-Closed and the final offset, before other checks. */
	{ __LINE__, M_POST, P("cl"), .ct = "text/plain", .body = "y", .status = 409,
	  .h = { { "Stream-Closed", "true" }, { "Stream-Next-Offset", OFF(1, 1) } } },
	{ __LINE__, M_POST, P("cl"), .ct = "text/plain", .body = "y", .closed = "true", .status = 409,
	  .h = { { "Stream-Closed", "true" } } },
	{ __LINE__, M_POST, P("cl"), .ct = "text/html", .body = "y", .status = 409,
	  .h = { { "Stream-Closed", "true" } } },
	{ __LINE__, M_GET, P("cl"), .status = 200, .want_body = "x",
	  .h = { { "Stream-Closed", "true" }, { "Stream-Up-To-Date", "true" }, { "Stream-Next-Offset", OFF(1, 1) } } },
	{ __LINE__, M_GET, P("cl"), .query = "offset=0000000000000001_0000000000000001", .status = 200, .want_body = "",
	  .h = { { "Stream-Closed", "true" }, { "Stream-Up-To-Date", "true" } } },
	{ __LINE__, M_GET, P("cl"), .query = "offset=now", .status = 200, .h = { { "Stream-Closed", "true" } } },
	{ __LINE__, M_HEAD, P("cl"), .status = 200, .h = { { "Stream-Closed", "true" } } },
	{ __LINE__, M_PUT, P("cl"), .ct = "text/plain", .status = 409 },
	{ __LINE__, M_PUT, P("cl"), .ct = "text/plain", .closed = "true", .status = 200,
	  .h = { { "Stream-Closed", "true" } } },
	/* Append and close in one request; the value is case-insensitive. */
	{ __LINE__, M_PUT, P("cl2"), .ct = "text/plain", .status = 201 },
	{ __LINE__, M_POST, P("cl2"), .ct = "text/plain", .body = "end", .closed = "TRUE", .status = 204,
	  .h = { { "Stream-Closed", "true" }, { "Stream-Next-Offset", OFF(1, 3) } } },
	{ __LINE__, M_GET, P("cl2"), .status = 200, .want_body = "end", .h = { { "Stream-Closed", "true" } } },
	/* Reading part of a closed stream is not its end. */
	{ __LINE__, M_PUT, P("cl3"), .ct = "text/plain", .body = "a", .status = 201 },
	{ __LINE__, M_POST, P("cl3"), .ct = "text/plain", .body = "b", .closed = "true", .status = 204 },
	{ __LINE__, M_GET, P("cl3"), .query = "offset=now", .status = 200, .h = { { "Stream-Closed", "true" } } },
	{ __LINE__, M_POST, P("missing"), .closed = "true", .status = 404 },
};

static void test_close(void)
{
	RUN(close_steps);
}

/* --- delete, bad inputs, methods -------------------------------------------------------------------- */

static const struct step delete_steps[] = {
	{ __LINE__, M_PUT, P("del"), .ct = "text/plain", .body = "old", .status = 201 },
	{ __LINE__, M_DELETE, P("del"), .status = 204 },
	{ __LINE__, M_GET, P("del"), .status = 404 },
	{ __LINE__, M_HEAD, P("del"), .status = 404 },
	{ __LINE__, M_POST, P("del"), .ct = "text/plain", .body = "x", .status = 404 },
	{ __LINE__, M_DELETE, P("del"), .status = 404 },
	{ __LINE__, M_DELETE, P("never"), .status = 404 },
	{ __LINE__, M_DELETE, "/elsewhere", .status = 404 },
	/* Re-created: a new, empty stream. */
	{ __LINE__, M_PUT, P("del"), .ct = "text/plain", .status = 201, .h = { { "Stream-Next-Offset", OFF(0, 0) } } },
	{ __LINE__, M_GET, P("del"), .status = 200, .want_body = "", .h = { { "Stream-Next-Offset", OFF(0, 0) } } },
};

/* Every rejected request leaves the stream as it was. */
static const struct step bad_steps[] = {
	{ __LINE__, M_PUT, P("u"), .ct = "application/json", .body = "[1]", .status = 201 },
	{ __LINE__, M_POST, P("u"), .ct = "application/json", .body = "[2,", .status = 400 },
	{ __LINE__, M_POST, P("u"), .ct = "application/json", .body = "[]", .status = 400 },
	{ __LINE__, M_POST, P("u"), .ct = "application/json", .status = 400 },
	{ __LINE__, M_POST, P("u"), .body = "2", .status = 400 },
	{ __LINE__, M_POST, P("u"), .ct = "application/", .body = "2", .status = 400 },
	{ __LINE__, M_POST, P("u"), .ct = "application/json", .body = "2", .pid = "p", .status = 400 },
	{ __LINE__, M_POST, P("u"), .ct = "application/json", .body = "2", .pid = "p", .pep = "x", .pseq = "0", .status = 400 },
	{ __LINE__, M_POST, P("u"), .ct = "application/json", .body = "2", .seq = "\x7f", .status = 400 },
	{ __LINE__, M_POST, P("u"), .ct = "application/json", .body = "2", .too_large = 1, .status = 413 },
	{ __LINE__, M_PUT, P("u"), .ct = "application/json", .body = "2", .too_large = 1, .status = 413 },
	{ __LINE__, M_PUT, P("u"), .ct = "application/json", .ttl = "x", .status = 400 },
	{ __LINE__, M_PUT, P("u"), .ct = "application/json", .status = 200 },
	{ __LINE__, M_HEAD, P("u"), .status = 200, .h = { { "Stream-Next-Offset", OFF(1, 1) }, { "Stream-TTL", ABSENT } } },
	{ __LINE__, M_GET, P("u"), .status = 200, .want_body = "[1]" },
	{ __LINE__, M_PUT, P("big"), .ct = "text/plain", .body = "x", .too_large = 1, .status = 413 },
	{ __LINE__, M_HEAD, P("big"), .status = 404 },
};

static const struct step method_steps[] = {
	{ __LINE__, M_OTHER, P("u"), .status = 405, .h = { { "Allow", "~GET" }, { "Allow", "~POST" }, { "Allow", "~DELETE" } } },
	{ __LINE__, M_OTHER, "/anything", .status = 405 },
	{ __LINE__, M_OPTIONS, P("u"), .status = 204,
	  .h = { { "Access-Control-Allow-Headers", "~If-None-Match" }, { "Access-Control-Allow-Headers", "~Producer-Id" },
	         { "Access-Control-Allow-Headers", "~Stream-Closed" }, { "Access-Control-Allow-Methods", "~PUT" },
	         { "Access-Control-Allow-Origin", "*" } } },
	{ __LINE__, M_OPTIONS, "/anything", .status = 204 },
	{ __LINE__, M_GET, P("u"), .status = 200,
	  .h = { { "Access-Control-Expose-Headers", "~Stream-Next-Offset" },
	         { "Access-Control-Expose-Headers", "~Producer-Expected-Seq" },
	         { "Access-Control-Expose-Headers", "~ETag" }, { "X-Content-Type-Options", "nosniff" } } },
};

static void test_delete_bad_methods(void)
{
	RUN(delete_steps);
	RUN(bad_steps);
	RUN(method_steps);
}

/* --- TTL and expiry ------------------------------------------------------------------------------- */

static const struct step ttl_steps[] = {
	{ __LINE__, M_PUT, P("t"), .ct = "text/plain", .ttl = "3600", .status = 201 },
	{ __LINE__, M_HEAD, P("t"), .status = 200, .h = { { "Stream-TTL", "3600" }, { "Stream-Expires-At", ABSENT } } },
	{ __LINE__, M_PUT, P("t"), .ct = "text/plain", .ttl = "3600", .status = 200 },
	{ __LINE__, M_PUT, P("t"), .ct = "text/plain", .ttl = "7200", .status = 409 },
	{ __LINE__, M_PUT, P("t"), .ct = "text/plain", .status = 409 },
	{ __LINE__, M_PUT, P("e"), .ct = "text/plain", .exp = "2099-01-01T00:00:00Z", .status = 201 },
	{ __LINE__, M_HEAD, P("e"), .status = 200,
	  .h = { { "Stream-Expires-At", "2099-01-01T00:00:00Z" }, { "Stream-TTL", ABSENT } } },
	{ __LINE__, M_PUT, P("e"), .ct = "text/plain", .exp = "2099-01-01T00:00:00Z", .status = 200 },
	{ __LINE__, M_PUT, P("e"), .ct = "text/plain", .exp = "2099-01-02T00:00:00Z", .status = 409 },
	/* Stream-TTL: 0 is a valid value: idle for zero seconds, it has expired. */
	{ __LINE__, M_PUT, P("t0"), .ct = "text/plain", .ttl = "0", .status = 201 },
	{ __LINE__, M_HEAD, P("t0"), .status = 404 },
	/* An absolute expiry already past. */
	{ __LINE__, M_PUT, P("past"), .ct = "text/plain", .exp = "2000-01-01T00:00:00Z", .status = 201 },
	{ __LINE__, M_GET, P("past"), .status = 404 },
};

static void test_ttl(void)
{
	RUN(ttl_steps);
	struct stream_meta m;

	/* Idle past its TTL: gone for every method, and PUT creates it afresh. */
	static const struct step s1[] = {
		{ __LINE__, M_PUT, P("slide"), .ct = "text/plain", .ttl = "10", .body = "old", .status = 201 },
	};
	RUN(s1);
	backdate("slide", 20000);
	static const struct step s2[] = {
		{ __LINE__, M_GET, P("slide"), .status = 404 },
		{ __LINE__, M_HEAD, P("slide"), .status = 404 },
		{ __LINE__, M_POST, P("slide"), .ct = "text/plain", .body = "x", .status = 404 },
		{ __LINE__, M_DELETE, P("slide"), .status = 404 },
		{ __LINE__, M_GET, P("slide"), .query = "offset=-1&live=long-poll", .status = 404 },
		{ __LINE__, M_PUT, P("slide"), .ct = "text/plain", .ttl = "10", .status = 201,
		  .h = { { "Stream-Next-Offset", OFF(0, 0) } } },
		{ __LINE__, M_GET, P("slide"), .status = 200, .want_body = "" },
	};
	RUN(s2);

	/* A read resets the countdown; HEAD does not. */
	static const struct step s3[] = {
		{ __LINE__, M_PUT, P("touch"), .ct = "text/plain", .ttl = "100", .status = 201 },
	};
	RUN(s3);
	backdate("touch", 50000);
	int64_t before = get_meta("touch", &m) == ST_OK ? m.access_ms : 0;
	static const struct step head = { __LINE__, M_HEAD, P("touch"), .status = 200 };
	run(&head);
	CHECK(get_meta("touch", &m) == ST_OK && m.access_ms == before);
	static const struct step get = { __LINE__, M_GET, P("touch"), .status = 200 };
	run(&get);
	CHECK(get_meta("touch", &m) == ST_OK && m.access_ms >= store_now_ms() - 5000);
	/* ...and so does a write. */
	backdate("touch", 50000);
	static const struct step post = { __LINE__, M_POST, P("touch"), .ct = "text/plain", .body = "x", .status = 204 };
	run(&post);
	CHECK(get_meta("touch", &m) == ST_OK && m.access_ms >= store_now_ms() - 5000);
}

/* --- the commit hook ---------------------------------------------------------------------------- */

static void test_hook(void)
{
	struct stream_meta m;
	ctx.on_commit = on_commit;
	static const struct step steps[] = {
		{ __LINE__, M_PUT, P("hook"), .ct = "text/plain", .status = 201 },
		{ __LINE__, M_POST, P("hook"), .ct = "text/plain", .body = "x", .status = 204 },
		{ __LINE__, M_POST, P("hook"), .closed = "true", .status = 204 },
		{ __LINE__, M_DELETE, P("hook"), .status = 204 },
	};
	for (size_t i = 0; i < NELEM(steps); i++) {
		uint64_t id = get_meta("hook", &m) == ST_OK ? m.id : 0;
		hook_calls = 0;
		run(&steps[i]);
		if (!id && get_meta("hook", &m) == ST_OK)
			id = m.id;
		CHECK_INT_AT(steps[i].line, hook_calls, 1);
		CHECK_UINT_AT(steps[i].line, hook_stream, id);
		CHECK_UINT_AT(steps[i].line, hook_txnid, store_last_txnid(st));
	}
	/* Nothing committed, nothing announced. */
	static const struct step none[] = {
		{ __LINE__, M_PUT, P("hook2"), .ct = "text/plain", .status = 201 },
		{ __LINE__, M_PUT, P("hook2"), .ct = "text/plain", .status = 200 },
		{ __LINE__, M_PUT, P("hook2"), .ct = "text/html", .status = 409 },
		{ __LINE__, M_POST, P("hook2"), .ct = "text/html", .body = "x", .status = 409 },
		{ __LINE__, M_POST, P("hook2"), .ct = "text/plain", .status = 400 },
		{ __LINE__, M_GET, P("hook2"), .status = 200 },
		{ __LINE__, M_HEAD, P("hook2"), .status = 200 },
		{ __LINE__, M_DELETE, P("nohook"), .status = 404 },
	};
	run(&none[0]);
	for (size_t i = 1; i < NELEM(none); i++) {
		hook_calls = 0;
		run(&none[i]);
		CHECK_INT_AT(none[i].line, hook_calls, 0);
	}
	ctx.on_commit = NULL;
}

/* --- catch-up paging ------------------------------------------------------------------------------ */

static void test_paging(void)
{
	static const struct step s0 = { __LINE__, M_PUT, P("page"), .ct = "text/plain", .status = 201 };
	run(&s0);
	size_t n = 600 * 1024;
	char *chunk = malloc(n);
	memset(chunk, 'p', n);
	for (int i = 0; i < 3; i++) {
		const struct step post = { __LINE__, M_POST, P("page"), .ct = "text/plain", .body = chunk, .body_len = n,
		                           .status = 204 };
		run(&post);
	}
	free(chunk);
	/* About 1 MiB per response, at least one message; not up to date until the end. */
	static const struct step g1 = { __LINE__, M_GET, P("page"), .status = 200,
		.h = { { "Stream-Up-To-Date", ABSENT }, { "Stream-Next-Offset", OFF(1, 614400) },
		       { "Cache-Control", "public, max-age=60, stale-while-revalidate=300" } } };
	run(&g1);
	CHECK_UINT(R.body.len, n);
	static const struct step g2 = { __LINE__, M_GET, P("page"), .query = "offset=0000000000000002_0000000001228800",
		.status = 200, .h = { { "Stream-Up-To-Date", "true" }, { "Stream-Next-Offset", OFF(3, 1843200) } } };
	run(&g2);
	CHECK_UINT(R.body.len, n);
}

/* --- limits --------------------------------------------------------------------------------------- */

static char *repeat(const char *head, const char *unit, size_t n)
{
	size_t hl = strlen(head), ul = strlen(unit);
	char *s = malloc(hl + ul * n + 1);
	memcpy(s, head, hl);
	for (size_t i = 0; i < n; i++)
		memcpy(s + hl + ul * i, unit, ul);
	s[hl + ul * n] = '\0';
	return s;
}

/* A JSON batch is split before the write: at most LS_MAX_BATCH_MESSAGES
 * messages, the whole batch or nothing. */
static void test_batch(void)
{
	size_t n = LS_MAX_BATCH_MESSAGES;
	size_t len = 2 * (n + 1) + 1;
	char *big = malloc(len + 1);
	big[0] = '[';
	for (size_t i = 0; i <= n; i++) {   /* n + 1 elements: one too many */
		big[1 + 2 * i] = '7';
		big[2 + 2 * i] = ',';
	}
	big[len - 1] = ']';
	big[len] = '\0';
	const struct step steps[] = {
		{ __LINE__, M_PUT, P("batch"), .ct = "application/json", .status = 201, .h = { { "Stream-Next-Offset", "@0:0" } } },
		{ __LINE__, M_POST, P("batch"), .ct = "application/json", .body = big, .body_len = len, .status = 413 },
		{ __LINE__, M_HEAD, P("batch"), .status = 200, .h = { { "Stream-Next-Offset", "@0:0" } } },
	};
	RUN(steps);
	/* One fewer fits, and every element is its own message. */
	big[2] = '[';  /* big + 2 is "[7,7,...]" with n elements */
	const struct step fits = { __LINE__, M_POST, P("batch"), .ct = "application/json", .body = big + 2,
	                           .body_len = len - 2, .status = 204 };
	run(&fits);
	char want[OFFSET_LEN + 1];
	offset_format(want, n, n);
	static const struct step head = { __LINE__, M_HEAD, P("batch"), .status = 200 };
	run(&head);
	const char *got = proto_get_header(&R, "Stream-Next-Offset");
	CHECK(got && !strcmp(got, want));
	free(big);
}

static void test_limits(void)
{
	char *name_max = repeat(P(""), "n", LS_DEFAULT_MAX_PATH);
	char *name_over = repeat(P(""), "n", LS_DEFAULT_MAX_PATH + 1);
	char *name_enc = repeat(P(""), "%C3", LS_DEFAULT_MAX_PATH);       /* 400 bytes, each escaped */
	char *pid_max = repeat("", "p", LS_MAX_PRODUCER_ID);
	char *pid_over = repeat("", "p", LS_MAX_PRODUCER_ID + 1);
	char *seq_max = repeat("", "s", LS_MAX_STREAM_SEQ);
	char *seq_over = repeat("", "t", LS_MAX_STREAM_SEQ + 1);
	char *ct_max = repeat("text/", "x", LS_MAX_CONTENT_TYPE - 5);
	char *ct_over = repeat("text/", "x", LS_MAX_CONTENT_TYPE - 4);
	char *host_max = repeat("", "h", 255);
	const struct step steps[] = {
		{ __LINE__, M_PUT, name_max, .ct = "text/plain", .status = 201 },
		{ __LINE__, M_PUT, name_over, .ct = "text/plain", .status = 414 },
		{ __LINE__, M_PUT, P("lim"), .ct = ct_max, .status = 201, .h = { { "Content-Type", ct_max } } },
		{ __LINE__, M_HEAD, P("lim"), .status = 200, .h = { { "Content-Type", ct_max } } },
		{ __LINE__, M_PUT, P("lim2"), .ct = ct_over, .status = 400 },
		{ __LINE__, M_POST, P("lim"), .ct = ct_max, .body = "a", .pid = pid_max, .pep = "0", .pseq = "0",
		  .seq = seq_max, .status = 200 },
		{ __LINE__, M_POST, P("lim"), .ct = ct_max, .body = "b", .pid = pid_over, .pep = "0", .pseq = "0",
		  .status = 400 },
		{ __LINE__, M_POST, P("lim"), .ct = ct_max, .body = "b", .seq = seq_over, .status = 400 },
		{ __LINE__, M_GET, P("lim"), .status = 200, .want_body = "a" },
		/* The largest response headers still fit: every header is present. */
		{ __LINE__, M_PUT, name_enc, .ct = ct_max, .host = host_max, .https = 1, .closed = "true", .status = 201,
		  .h = { { "Location", "~%C3%C3%C3" }, { "Content-Type", ct_max }, { "Stream-Closed", "true" },
		         { "Stream-Next-Offset", OFF(0, 0) } } },
	};
	RUN(steps);
	free(name_max);
	free(name_over);
	free(name_enc);
	free(pid_max);
	free(pid_over);
	free(seq_max);
	free(seq_over);
	free(ct_max);
	free(ct_over);
	free(host_max);
}

/* --- main ----------------------------------------------------------------------------------------- */

/* --- State streams and retention ------------------------------------------------- */

#define EV(type, key, op, value) "{\"type\":\"" type "\",\"key\":\"" key "\",\"value\":" value \
	",\"headers\":{\"operation\":\"" op "\"}}"
#define DEL(type, key) "{\"type\":\"" type "\",\"key\":\"" key "\",\"headers\":{\"operation\":\"delete\"}}"
#define JS "application/json"

/* GET ?snapshot (one page): the rows between the control messages, which
 * must name the page's Stream-Next-Offset. Returns "" on any mismatch. */
static const char *snapshot_rows(int line, const char *path)
{
	static char rows[8192];
	const struct step get = { line, M_GET, path, .query = "snapshot", .status = 200 };
	rows[0] = '\0';
	if (run(&get))
		return rows;
	const char *off = proto_get_header(&R, "Stream-Next-Offset");
	char head[128], tail[128];
	snprintf(head, sizeof head, "[{\"headers\":{\"control\":\"snapshot-start\",\"offset\":\"%s\"}}", off ? off : "");
	snprintf(tail, sizeof tail, "{\"headers\":{\"control\":\"snapshot-end\",\"offset\":\"%s\"}}]", off ? off : "");
	size_t hl = strlen(head), tl = strlen(tail), n = R.body.len;
	int ok = n >= hl + tl && !memcmp(R.body.data, head, hl) && !memcmp(R.body.data + n - tl, tail, tl);
	CHECK_AT(line, ok);
	if (!ok)
		return rows;
	const char *b = R.body.data + hl;
	size_t bl = n - hl - tl;
	if (bl && *b == ',') { b++; bl--; }
	if (bl && b[bl - 1] == ',') bl--;
	snprintf(rows, sizeof rows, "%.*s", (int)bl, b);
	return rows;
}

#define ROW(type, key, value) "{\"type\":\"" type "\",\"key\":\"" key "\",\"value\":" value \
	",\"headers\":{\"operation\":\"insert\"}}"

static void test_state(void)
{
	const struct step steps[] = {
		{ __LINE__, M_PUT, P("st"), .query = "state", .ct = JS, .status = 201 },
		{ __LINE__, M_HEAD, P("st"), .status = 200, .h = { { "Stream-State", "true" } } },
		{ __LINE__, M_PUT, P("st"), .query = "state", .ct = JS, .status = 200 },
		{ __LINE__, M_PUT, P("st"), .ct = JS, .status = 409 },
		{ __LINE__, M_PUT, P("st-bin"), .query = "state", .ct = "text/plain", .status = 400 },
		{ __LINE__, M_PUT, P("st-bad"), .query = "state=maybe", .ct = JS, .status = 400 },
		/* insert, update of another type, upsert of a new key, raw values kept */
		{ __LINE__, M_POST, P("st"), .ct = JS, .status = 204,
		  .body = "[" EV("todo", "a", "insert", "{\"t\":1.50}") "," EV("tool", "a", "update", "[1e2]") ","
		          EV("todo", "b", "upsert", "\"x\"") "]" },
		/* invalid events: 400, and nothing of the batch lands */
		{ __LINE__, M_POST, P("st"), .ct = JS, .status = 400,
		  .body = "[" EV("todo", "c", "insert", "1") ",{\"type\":\"todo\",\"key\":\"d\",\"headers\":{\"operation\":\"insert\"}}]" },
		{ __LINE__, M_POST, P("st"), .ct = JS, .status = 400, .body = "{\"hello\":\"world\"}" },
		{ __LINE__, M_POST, P("st"), .ct = JS, .status = 400, .body = EV("todo", "", "insert", "1") },
		{ __LINE__, M_HEAD, P("st"), .status = 200, .h = { { "Stream-Next-Offset", OFF(3, 219) } } },
	};
	RUN(steps);
	CHECK_STR(snapshot_rows(__LINE__, P("st")),
	          ROW("todo", "a", "{\"t\":1.50}") "," ROW("todo", "b", "\"x\"") "," ROW("tool", "a", "[1e2]"));

	/* update replaces, delete removes (a missing key is no error), control
	 * messages change nothing, an escaped key is the same key. */
	const struct step more[] = {
		{ __LINE__, M_POST, P("st"), .ct = JS, .status = 204,
		  .body = "[" EV("todo", "a", "update", "2") "," DEL("tool", "a") "," DEL("tool", "zz") ","
		          "{\"headers\":{\"control\":\"snapshot-start\"}}," EV("todo", "\\u0062", "insert", "3") "]" },
	};
	RUN(more);
	CHECK_STR(snapshot_rows(__LINE__, P("st")), ROW("todo", "a", "2") "," ROW("todo", "b", "3"));

	/* reset empties the state; what follows it in the same batch stays. */
	const struct step reset[] = {
		{ __LINE__, M_POST, P("st"), .ct = JS, .status = 204,
		  .body = "[" EV("x", "1", "insert", "1") ",{\"headers\":{\"control\":\"reset\"}}," EV("y", "2", "insert", "2") "]" },
	};
	RUN(reset);
	CHECK_STR(snapshot_rows(__LINE__, P("st")), ROW("y", "2", "2"));

	/* Keys: long, unicode, control characters written back escaped. */
	char *longkey = repeat("", "k", 497);
	char body[1200];
	snprintf(body, sizeof body, "[" EV("t", "%s", "insert", "1") "," EV("t", "\\u00e9\\u0000", "insert", "2") "]", longkey);
	struct step keys = { __LINE__, M_POST, P("st"), .ct = JS, .body = body, .status = 204 };
	run(&keys);
	char want[1400];
	snprintf(want, sizeof want, ROW("t", "%s", "1") "," ROW("t", "\xc3\xa9\\u0000", "2") "," ROW("y", "2", "2"), longkey);
	CHECK_STR(snapshot_rows(__LINE__, P("st")), want);
	snprintf(body, sizeof body, EV("t", "x%s", "insert", "1"), longkey);
	keys.body = body;
	keys.status = 400;
	keys.line = __LINE__;
	run(&keys);
	free(longkey);

	/* Snapshots of plain streams are refused; offsets cannot be combined. */
	const struct step refused[] = {
		{ __LINE__, M_PUT, P("st-plain"), .ct = JS, .status = 201 },
		{ __LINE__, M_GET, P("st-plain"), .query = "snapshot", .status = 400 },
		{ __LINE__, M_GET, P("st"), .query = "snapshot&offset=-1", .status = 400 },
		{ __LINE__, M_GET, P("st"), .query = "snapshot=1.2.zz", .status = 400 },
		{ __LINE__, M_POST, P("st-plain"), .query = "compact", .ct = JS, .status = 400 },
	};
	RUN(refused);

	/* The state is deleted with its stream; a new stream of the name starts empty. */
	const struct step recreate[] = {
		{ __LINE__, M_DELETE, P("st"), .status = 204 },
		{ __LINE__, M_PUT, P("st"), .query = "state", .ct = JS, .status = 201 },
	};
	RUN(recreate);
	CHECK_STR(snapshot_rows(__LINE__, P("st")), "");
}

static void test_retention(void)
{
	const struct step steps[] = {
		{ __LINE__, M_PUT, P("rt"), .query = "retention-bytes=10", .ct = "text/plain", .status = 201 },
		{ __LINE__, M_PUT, P("rt"), .query = "retention-bytes=11", .ct = "text/plain", .status = 409 },
		{ __LINE__, M_PUT, P("rt-bad"), .query = "retention-bytes=0", .ct = "text/plain", .status = 400 },
		{ __LINE__, M_PUT, P("rt-bad"), .query = "retention-age=1s", .ct = "text/plain", .status = 400 },
		{ __LINE__, M_POST, P("rt"), .ct = "text/plain", .body = "aaaa", .status = 204 },
		{ __LINE__, M_POST, P("rt"), .ct = "text/plain", .body = "bbbb", .status = 204 },
		{ __LINE__, M_GET, P("rt"), .query = "offset=-1", .status = 200, .want_body = "aaaabbbb" },
		{ __LINE__, M_POST, P("rt"), .ct = "text/plain", .body = "cccc", .status = 204 },
		/* 12 bytes > 10: the oldest message goes. */
		{ __LINE__, M_GET, P("rt"), .query = "offset=-1", .status = 410,
		  .h = { { "Stream-Earliest-Offset", OFF(1, 4) }, { "Link", ABSENT } } },
		{ __LINE__, M_GET, P("rt"), .query = "offset=0000000000000001_0000000000000004", .status = 200,
		  .want_body = "bbbbcccc" },
		{ __LINE__, M_GET, P("rt"), .query = "offset=now", .status = 200 },
		{ __LINE__, M_HEAD, P("rt"), .status = 200,
		  .h = { { "Stream-Earliest-Offset", OFF(1, 4) }, { "Stream-Retention-Bytes", "10" } } },
		/* One message larger than the bound is kept alone. */
		{ __LINE__, M_POST, P("rt"), .ct = "text/plain", .body = "dddddddddddddddd", .status = 204 },
		{ __LINE__, M_GET, P("rt"), .query = "offset=0000000000000003_0000000000000012", .status = 200,
		  .want_body = "dddddddddddddddd" },
		{ __LINE__, M_GET, P("rt"), .query = "offset=0000000000000002_0000000000000008", .status = 410,
		  .h = { { "Stream-Earliest-Offset", OFF(3, 12) } } },
		/* Compaction of a State stream: 410 points at the snapshot. */
		{ __LINE__, M_PUT, P("rt-st"), .query = "state", .ct = JS, .status = 201 },
		{ __LINE__, M_POST, P("rt-st"), .ct = JS, .body = EV("t", "k", "insert", "1"), .status = 204 },
		{ __LINE__, M_POST, P("rt-st"), .query = "compact", .ct = JS, .status = 204,
		  .h = { { "Stream-Earliest-Offset", ANY } } },
		{ __LINE__, M_GET, P("rt-st"), .query = "offset=-1", .status = 410,
		  .h = { { "Link", "</v1/stream/rt-st?snapshot>; rel=\"snapshot\"" } } },
		{ __LINE__, M_GET, P("rt-st"), .query = "offset=-1&live=long-poll", .status = 410 },
	};
	RUN(steps);
	CHECK_STR(snapshot_rows(__LINE__, P("rt-st")), ROW("t", "k", "1"));

	/* The rows before the earliest offset are deleted from the store. */
	struct stream_meta m;
	CHECK_INT(get_meta("rt", &m), ST_OK);
	CHECK_UINT(m.first_seq, 3);
	CHECK_UINT(m.purged_seq, 3);
}

/* Retention never deletes rows a fork still reads; a fork cannot start
 * before its source's earliest offset and inherits it. */
static void fork_put(int line, const char *path, const char *from, const char *offset, int status)
{
	const struct step put = { line, M_PUT, path, .ct = "text/plain", .status = status };
	build(&put, &Q);
	Q.h[H_FORKED_FROM] = from;
	Q.h[H_FORK_OFFSET] = offset;
	proto_response_reset(&R);
	proto_handle(&ctx, &Q, &R, &L);
	CHECK_INT_AT(line, R.status, status);
}

static void test_retention_forks(void)
{
	const struct step src[] = {
		{ __LINE__, M_PUT, P("rf"), .query = "retention-bytes=8", .ct = "text/plain", .status = 201 },
		{ __LINE__, M_POST, P("rf"), .ct = "text/plain", .body = "aaaa", .status = 204 },
		{ __LINE__, M_POST, P("rf"), .ct = "text/plain", .body = "bbbb", .status = 204 },
	};
	RUN(src);
	fork_put(__LINE__, P("rf-fork"), P("rf"), NULL, 201);
	const struct step more[] = {
		{ __LINE__, M_POST, P("rf"), .ct = "text/plain", .body = "cccc", .status = 204 },
		{ __LINE__, M_POST, P("rf"), .ct = "text/plain", .body = "dddd", .status = 204 },
		/* The source's readers lose the old messages ... */
		{ __LINE__, M_GET, P("rf"), .query = "offset=-1", .status = 410, .h = { { "Stream-Earliest-Offset", OFF(2, 8) } } },
		/* ... the fork still reads them: the rows were not deleted. */
		{ __LINE__, M_GET, P("rf-fork"), .query = "offset=-1", .status = 200, .want_body = "aaaabbbb" },
	};
	RUN(more);
	struct stream_meta m;
	CHECK_INT(get_meta(P("rf") + strlen("/v1/stream/"), &m), ST_OK);
	CHECK_UINT(m.first_seq, 2);
	CHECK_UINT(m.purged_seq, 0);
	/* A fork from before the earliest offset is refused; from it, allowed. */
	fork_put(__LINE__, P("rf-old"), P("rf"), "0000000000000001_0000000000000004", 410);
	fork_put(__LINE__, P("rf-new"), P("rf"), "0000000000000002_0000000000000008", 201);
	const struct step late[] = {
		{ __LINE__, M_GET, P("rf-new"), .query = "offset=-1", .status = 410, .h = { { "Stream-Earliest-Offset", OFF(2, 8) } } },
		{ __LINE__, M_GET, P("rf-new"), .query = "offset=0000000000000002_0000000000000008", .status = 200,
		  .want_body = "" },
		/* Once the forks are gone, the next append deletes the rows. */
		{ __LINE__, M_DELETE, P("rf-fork"), .status = 204 },
		{ __LINE__, M_DELETE, P("rf-new"), .status = 204 },
		{ __LINE__, M_POST, P("rf"), .ct = "text/plain", .body = "eeee", .status = 204 },
	};
	RUN(late);
	CHECK_INT(get_meta(P("rf") + strlen("/v1/stream/"), &m), ST_OK);
	CHECK_UINT(m.first_seq, 3);
	CHECK_UINT(m.purged_seq, 3);
	/* A State stream cannot be forked. */
	const struct step stm[] = { { __LINE__, M_PUT, P("rf-st"), .query = "state", .ct = JS, .status = 201 } };
	RUN(stm);
	fork_put(__LINE__, P("rf-st-fork"), P("rf-st"), NULL, 409);
}

static void rm_rf(const char *path)
{
	DIR *d = opendir(path);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d))) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			char sub[512];
			snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
			rm_rf(sub);
		}
		closedir(d);
		rmdir(path);
	} else {
		unlink(path);
	}
}

int main(void)
{
	log_init("test_protocol", LOG_LVL_WARN);
	snprintf(tmpdir, sizeof tmpdir, "/tmp/lmstream-test-protocol-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 99;
	}
	config_defaults(&cfg);
	snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", tmpdir);
	cfg.map_size = 64ULL << 20;
	cfg.durability = DURABILITY_FAST;
	if (store_open(&st, &cfg) != ST_OK) {
		printf("%s:%d: FAIL: store_open %s\n", __FILE__, __LINE__, tmpdir);
		rm_rf(tmpdir);
		return 1;
	}
	proto_init(&ctx, &cfg, st);
	proto_response_init(&R);

	test_create();
	test_append_read();
	test_json();
	test_longpoll();
	test_sse();
	test_producers();
	test_close();
	test_delete_bad_methods();
	test_ttl();
	test_hook();
	test_paging();
	test_batch();
	test_limits();
	test_state();
	test_retention();
	test_retention_forks();

	proto_response_free(&R);
	proto_live_clear(&L);
	proto_fini(&ctx);
	store_close(st);
	rm_rf(tmpdir);
	return unit_done();
}
