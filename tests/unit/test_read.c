/* test_read.c: unit tests of src/core/read.c (and the TTL touch of
 * src/core/protocol.c) through proto_handle: TTL and expiry as reads see them
 * (a GET touches, a HEAD does not), catch-up paging of GET, and the size
 * limits of requests and response headers. Reads of what was written, ETags
 * and If-None-Match are in test_write.c (test_append_read). The harness is
 * protocol_harness.h. */
#include "protocol_harness.h"

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
	/* An absolute expiry already past is refused: such a stream could never
	 * be read (before 1970 it could not even be deleted, once). */
	{ __LINE__, M_PUT, P("past"), .ct = "text/plain", .exp = "2000-01-01T00:00:00Z", .status = 400 },
	{ __LINE__, M_GET, P("past"), .status = 404 },
	{ __LINE__, M_PUT, P("past"), .ct = "text/plain", .exp = "1960-01-01T00:00:00Z", .status = 400 },
	{ __LINE__, M_PUT, P("past"), .ct = "text/plain", .exp = "1970-01-01T00:00:00Z", .status = 400 },
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

int main(void)
{
	int rc = harness_open("test_read", "protocol-read");
	if (rc)
		return rc;

	test_ttl();
	test_paging();
	test_limits();

	harness_close();
	return unit_done();
}
