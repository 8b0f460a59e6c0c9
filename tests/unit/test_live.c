/* test_live.c: unit tests of src/core/live.c: long-poll (proto_longpoll_poll,
 * proto_longpoll_timeout) and SSE (proto_sse_step), started through
 * proto_handle. The harness is protocol_harness.h. */
#include "protocol_harness.h"

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

/* --- main ----------------------------------------------------------------------------------------- */

int main(void)
{
	int rc = harness_open("test_live", "protocol-live");
	if (rc)
		return rc;

	test_longpoll();
	test_sse();

	harness_close();
	return unit_done();
}
