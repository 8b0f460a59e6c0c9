/* test_write.c: unit tests of src/core/write.c through proto_handle: PUT
 * (create, initial content, Location), POST (appends, Stream-Seq, JSON bodies,
 * idempotent producers, Stream-Closed, JSON batches), DELETE, bad inputs and
 * methods, and the commit hook; test_append_read also reads back what it
 * wrote (offsets, query errors, ETag and If-None-Match). The harness is
 * protocol_harness.h. */
#include "protocol_harness.h"

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
	{ __LINE__, M_PUT, P("d%20e/f/g"), .host = "[::1]:8081", .status = 201,
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

/* With public_url, Location never comes from the request's Host. */
static const struct step public_url_steps[] = {
	{ __LINE__, M_PUT, P("pu"), .host = "evil.example:1", .https = 1, .status = 201,
	  .h = { { "Location", "https://streams.example.com/v1/stream/pu" } } },
	{ __LINE__, M_PUT, P("pu%20x"), .status = 201,
	  .h = { { "Location", "https://streams.example.com/v1/stream/pu%20x" } } },
};

/* Every answer forbids a browser that opens it as a page to run anything;
 * types a browser renders as active documents are downloads besides. */
static const struct step active_steps[] = {
	{ __LINE__, M_PUT, P("xss/html"), .ct = "text/html", .body = "<script>alert(1)</script>", .status = 201,
	  .h = { { "Content-Security-Policy", "sandbox" }, { "Content-Disposition", "attachment" } } },
	{ __LINE__, M_GET, P("xss/html"), .status = 200, .want_body = "<script>alert(1)</script>",
	  .h = { { "Content-Type", "text/html" }, { "Content-Security-Policy", "sandbox" },
	         { "Content-Disposition", "attachment" }, { "X-Content-Type-Options", "nosniff" } } },
	{ __LINE__, M_PUT, P("xss/svg"), .ct = "image/svg+xml; charset=utf-8", .body = "<svg onload=\"alert(1)\"/>",
	  .status = 201 },
	{ __LINE__, M_GET, P("xss/svg"), .status = 200,
	  .h = { { "Content-Security-Policy", "sandbox" }, { "Content-Disposition", "attachment" } } },
	{ __LINE__, M_HEAD, P("xss/svg"), .status = 200,
	  .h = { { "Content-Security-Policy", "sandbox" }, { "Content-Disposition", "attachment" } } },
	{ __LINE__, M_PUT, P("xss/xhtml"), .ct = "Application/XHTML+XML", .body = "x", .status = 201 },
	{ __LINE__, M_GET, P("xss/xhtml"), .status = 200, .h = { { "Content-Disposition", "attachment" } } },
	{ __LINE__, M_PUT, P("xss/xml"), .ct = "text/xml", .body = "x", .status = 201 },
	{ __LINE__, M_GET, P("xss/xml"), .status = 200, .h = { { "Content-Disposition", "attachment" } } },
	{ __LINE__, M_PUT, P("xss/mp"), .ct = "multipart/x-mixed-replace; boundary=b", .body = "x", .status = 201 },
	{ __LINE__, M_GET, P("xss/mp"), .status = 200, .h = { { "Content-Disposition", "attachment" } } },
	/* Browsers take the last of several types; the first is inert here. */
	{ __LINE__, M_PUT, P("xss/two"), .ct = "text/plain; x=a, text/html", .body = "<script>", .status = 201 },
	{ __LINE__, M_GET, P("xss/two"), .status = 200,
	  .h = { { "Content-Security-Policy", "sandbox" }, { "Content-Disposition", "attachment" } } },
	/* Inert types are shown as they are, still sandboxed. */
	{ __LINE__, M_PUT, P("xss/text"), .ct = "text/plain", .body = "<script>", .status = 201 },
	{ __LINE__, M_GET, P("xss/text"), .status = 200,
	  .h = { { "Content-Security-Policy", "sandbox" }, { "Content-Disposition", ABSENT } } },
	{ __LINE__, M_PUT, P("xss/json"), .ct = "application/json", .body = "[1]", .status = 201 },
	{ __LINE__, M_GET, P("xss/json"), .status = 200, .h = { { "Content-Disposition", ABSENT } } },
	{ __LINE__, M_GET, P("xss/absent"), .status = 404, .h = { { "Content-Security-Policy", "sandbox" } } },
};

static void test_active_types(void)
{
	RUN(active_steps);
	snprintf(cfg.public_url, sizeof cfg.public_url, "https://streams.example.com");
	RUN(public_url_steps);
	cfg.public_url[0] = '\0';
}

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

/* +json types are JSON: flattened, validated, read as arrays. */
static const struct step json_suffix_steps[] = {
	{ __LINE__, M_PUT, P("vnd"), .ct = "application/vnd.example+json", .body = "[{\"a\":1},{\"b\":2}]",
	  .status = 201, .h = { { "Stream-Next-Offset", OFF(2, 14) } } },
	{ __LINE__, M_POST, P("vnd"), .ct = "application/vnd.example+json; charset=utf-8", .body = "[3, [4]]",
	  .status = 204, .h = { { "Stream-Next-Offset", OFF(4, 18) } } },
	{ __LINE__, M_POST, P("vnd"), .ct = "application/vnd.example+json", .body = "not json", .status = 400,
	  .want_body = "invalid JSON body\n" },
	{ __LINE__, M_POST, P("vnd"), .ct = "application/vnd.example+json", .body = "[]", .status = 400 },
	{ __LINE__, M_POST, P("vnd"), .ct = "application/json", .body = "5", .status = 409 },
	{ __LINE__, M_GET, P("vnd"), .query = "offset=-1", .status = 200,
	  .want_body = "[{\"a\":1},{\"b\":2},3,[4]]", .h = { { "Content-Type", "application/vnd.example+json" } } },
	/* A State stream may have a +json type. */
	{ __LINE__, M_PUT, P("vnd-state"), .query = "state", .ct = "application/ld+json", .status = 201 },
};

static void test_json_suffix(void)
{
	RUN(json_suffix_steps);
}

/* --- If-Match on appends --------------------------------------------------------------------- */

static void test_if_match(void)
{
	static const struct step setup[] = {
		{ __LINE__, M_PUT, P("im"), .ct = "text/plain", .body = "a", .status = 201 },
		{ __LINE__, M_HEAD, P("im"), .status = 200 },
	};
	RUN(setup);
	char e1[128], e2[128], weak[140], list[300];
	snprintf(e1, sizeof e1, "%s", proto_get_header(&R, "ETag") ? proto_get_header(&R, "ETag") : "");
	CHECK(e1[0] == '"');
	snprintf(weak, sizeof weak, "W/%s", e1);
	snprintf(list, sizeof list, "\"nope\", %s", e1);
	/* The tag as HEAD gives it, in a list too: appended, and the next tag is sent. */
	const struct step ok[] = {
		{ __LINE__, M_POST, P("im"), .ct = "text/plain", .body = "b", .ifm = list, .status = 204,
		  .h = { { "Stream-Next-Offset", OFF(2, 2) }, { "ETag", ANY } } },
	};
	RUN(ok);
	snprintf(e2, sizeof e2, "%s", proto_get_header(&R, "ETag") ? proto_get_header(&R, "ETag") : "");
	static const struct step head2 = { __LINE__, M_HEAD, P("im"), .status = 200 };
	run(&head2);
	CHECK_STR(proto_get_header(&R, "ETag") ? proto_get_header(&R, "ETag") : "", e2);
	CHECK(strcmp(e1, e2) != 0);
	const struct step refused[] = {
		/* The tag before that append: 412 with where the stream is, nothing stored. */
		{ __LINE__, M_POST, P("im"), .ct = "text/plain", .body = "c", .ifm = e1, .status = 412,
		  .want_body = "If-Match does not match the stream's current ETag: read it again (HEAD), then retry\n",
		  .h = { { "ETag", e2 }, { "Stream-Next-Offset", OFF(2, 2) } } },
		/* A weak tag never matches (strong comparison), nor an unquoted or empty one. */
		{ __LINE__, M_POST, P("im"), .ct = "text/plain", .body = "c", .ifm = weak, .status = 412 },
		{ __LINE__, M_POST, P("im"), .ct = "text/plain", .body = "c", .ifm = "", .status = 412 },
		{ __LINE__, M_POST, P("im"), .ct = "text/plain", .body = "c", .ifm = e2 + 1, .status = 412 },
		/* With a producer: 400 before anything is looked at. */
		{ __LINE__, M_POST, P("im"), .ct = "text/plain", .body = "c", .ifm = e2, .pid = "w", .pep = "0",
		  .pseq = "0", .status = 400, .want_body = "If-Match cannot be combined with Producer-Id, Producer-Epoch and Producer-Seq\n" },
		/* A mismatched type is 409 whatever If-Match says; a missing stream 404. */
		{ __LINE__, M_POST, P("im"), .ct = "application/json", .body = "1", .ifm = e1, .status = 409 },
		{ __LINE__, M_POST, P("im-none"), .ct = "text/plain", .body = "c", .ifm = "*", .status = 404 },
		{ __LINE__, M_GET, P("im"), .query = "offset=-1", .status = 200, .want_body = "ab" },
		/* "*": any state of a stream that exists. */
		{ __LINE__, M_POST, P("im"), .ct = "text/plain", .body = "c", .ifm = "*", .status = 204,
		  .h = { { "Stream-Next-Offset", OFF(3, 3) } } },
		/* Closing with the stale tag: 412, still open. */
		{ __LINE__, M_POST, P("im"), .closed = "true", .ifm = e2, .status = 412, .h = { { "Stream-Closed", ABSENT } } },
		{ __LINE__, M_HEAD, P("im"), .status = 200, .h = { { "Stream-Closed", ABSENT } } },
	};
	RUN(refused);
	char e3[128], e4[128];
	snprintf(e3, sizeof e3, "%s", proto_get_header(&R, "ETag") ? proto_get_header(&R, "ETag") : "");
	const struct step close[] = {
		{ __LINE__, M_POST, P("im"), .closed = "true", .ifm = e3, .status = 204, .h = { { "Stream-Closed", "true" } } },
	};
	RUN(close);
	snprintf(e4, sizeof e4, "%s", proto_get_header(&R, "ETag") ? proto_get_header(&R, "ETag") : "");
	const struct step closed[] = {
		/* Closing again: 204 with the closed stream's tag, 412 with an older one. */
		{ __LINE__, M_POST, P("im"), .closed = "true", .ifm = e4, .status = 204 },
		{ __LINE__, M_POST, P("im"), .closed = "true", .ifm = e3, .status = 412,
		  .h = { { "ETag", e4 }, { "Stream-Closed", "true" } } },
		/* Appending to it: 409, whatever the tag. */
		{ __LINE__, M_POST, P("im"), .ct = "text/plain", .body = "d", .ifm = e4, .status = 409 },
		{ __LINE__, M_GET, P("im"), .query = "offset=-1", .status = 200, .want_body = "abc" },
	};
	RUN(closed);
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

/* --- main ----------------------------------------------------------------------------------------- */

/* A context starts with no batch (each write commits alone) and no hook,
 * whatever the memory held before. */
static void test_init(void)
{
	struct proto_ctx c;
	memset(&c, 0xa5, sizeof c);
	proto_init(&c, &cfg, st);
	CHECK(c.batch == NULL);
	CHECK(c.on_commit == NULL);
	CHECK(c.hook_arg == NULL);
	proto_fini(&c);
}

int main(void)
{
	int rc = harness_open("test_write", "protocol-write");
	if (rc)
		return rc;

	test_init();
	test_create();
	test_active_types();
	test_append_read();
	test_json();
	test_json_suffix();
	test_if_match();
	test_producers();
	test_close();
	test_delete_bad_methods();
	test_hook();
	test_batch();

	harness_close();
	return unit_done();
}
