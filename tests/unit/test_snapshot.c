/* test_snapshot.c: unit tests of src/core/snapshot.c through proto_handle:
 * State streams (?state, change events), GET ?snapshot, POST ?compact and
 * retention (?retention-bytes, ?retention-age, Stream-Earliest-Offset). The
 * harness is protocol_harness.h. */
#include "protocol_harness.h"

/* --- State streams and retention ------------------------------------------------- */

#define EV(type, key, op, value) "{\"type\":\"" type "\",\"key\":\"" key "\",\"value\":" value \
	",\"headers\":{\"operation\":\"" op "\"}}"
#define DEL(type, key) "{\"type\":\"" type "\",\"key\":\"" key "\",\"headers\":{\"operation\":\"delete\"}}"

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

/* --- main ----------------------------------------------------------------------------------------- */

int main(void)
{
	int rc = harness_open("test_snapshot", "protocol-snapshot");
	if (rc)
		return rc;

	test_state();
	test_retention();

	harness_close();
	return unit_done();
}
