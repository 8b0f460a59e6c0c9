/* test_fork.c: unit tests of src/core/fork.c through proto_handle: forks
 * (Stream-Forked-From, Stream-Fork-Offset) and how retention treats the rows
 * a fork still reads. The harness is protocol_harness.h. */
#include "protocol_harness.h"

/* --- forks and retention ----------------------------------------------------------------------- */

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
	CHECK_INT(get_meta("rf", &m), ST_OK);
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
	CHECK_INT(get_meta("rf", &m), ST_OK);
	CHECK_UINT(m.first_seq, 3);
	CHECK_UINT(m.purged_seq, 3);
	/* A State stream cannot be forked. */
	const struct step stm[] = { { __LINE__, M_PUT, P("rf-st"), .query = "state", .ct = JS, .status = 201 } };
	RUN(stm);
	fork_put(__LINE__, P("rf-st-fork"), P("rf-st"), NULL, 409);
}

/* --- main ----------------------------------------------------------------------------------------- */

int main(void)
{
	int rc = harness_open("test_fork", "protocol-fork");
	if (rc)
		return rc;

	test_retention_forks();

	harness_close();
	return unit_done();
}
