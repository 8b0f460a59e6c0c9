/* test_state.c: unit tests of src/core/state.c: which messages are change events
 * or control messages, the row keys they name, and the JSON of snapshot rows
 * (checked by parsing it back, with state_parse and with cJSON). */
#include "core/state.h"
#include "unit.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

static struct buf arena;

static int parse(const char *msg, struct state_event *ev, const char **why)
{
	buf_reset(&arena);
	return state_parse(msg, strlen(msg), ev, &arena, why);
}

/* The row key of ev as "type|key" for comparisons (test data has no '|'). */
static const char *rowkey_str(const struct state_event *ev)
{
	static char out[1024];
	const unsigned char *rk = (const unsigned char *)arena.data + ev->rk_off;
	if (ev->rk_len < 2)
		return "";
	size_t tlen = ((size_t)rk[0] << 8) | rk[1];
	snprintf(out, sizeof out, "%.*s|%.*s", (int)tlen, (const char *)rk + 2,
	         (int)(ev->rk_len - 2 - tlen), (const char *)rk + 2 + tlen);
	return out;
}

/* --- valid messages -------------------------------------------------------------- */

static const struct good {
	int line;
	const char *msg;
	enum state_op op;
	const char *rowkey;   /* "type|key", "" for control messages */
	const char *value;    /* exact bytes of value, "" when absent */
} good[] = {
	{ __LINE__, "{\"type\":\"user\",\"key\":\"1\",\"value\":{\"name\":\"Alice\"},\"headers\":{\"operation\":\"insert\"}}",
	  STATE_INSERT, "user|1", "{\"name\":\"Alice\"}" },
	{ __LINE__, "{\"headers\":{\"operation\":\"update\"},\"value\":[1, 2.50, 1e400],\"key\":\"k\",\"type\":\"t\"}",
	  STATE_UPDATE, "t|k", "[1, 2.50, 1e400]" },
	{ __LINE__, "{\"type\":\"t\",\"key\":\"k\",\"value\":\"x\",\"headers\":{\"operation\":\"upsert\",\"txid\":\"42\"}}",
	  STATE_UPSERT, "t|k", "\"x\"" },
	{ __LINE__, "{\"type\":\"t\",\"key\":\"k\",\"headers\":{\"operation\":\"delete\"}}", STATE_DELETE, "t|k", "" },
	{ __LINE__, "{\"type\":\"t\",\"key\":\"k\",\"value\":null,\"old_value\":{\"a\":1},\"headers\":{\"operation\":\"delete\"}}",
	  STATE_DELETE, "t|k", "null" },
	{ __LINE__, " {\"type\" : \"t\" , \"key\" : \"k\" , \"value\" : 0 , \"headers\" : { \"operation\" : \"insert\" } } ",
	  STATE_INSERT, "t|k", "0" },
	{ __LINE__, "{\"type\":\"t\",\"key\":\"k\",\"value\":false,\"headers\":{\"operation\":\"insert\",\"timestamp\":\"2025-01-15T10:30:00.123Z\",\"from\":\"x\",\"extra\":{\"a\":[1]}}}",
	  STATE_INSERT, "t|k", "false" },
	/* Strings inside the value with braces and quotes do not confuse the scan. */
	{ __LINE__, "{\"type\":\"t\",\"key\":\"k\",\"value\":{\"s\":\"}]\\\"{\"},\"headers\":{\"operation\":\"insert\"}}",
	  STATE_INSERT, "t|k", "{\"s\":\"}]\\\"{\"}" },
	/* Escaped member names are the same names. */
	{ __LINE__, "{\"\\u0074ype\":\"t\",\"key\":\"k\",\"value\":1,\"headers\":{\"op\\u0065ration\":\"insert\"}}",
	  STATE_INSERT, "t|k", "1" },
	/* Escapes in type and key are decoded. */
	{ __LINE__, "{\"type\":\"a\\/b\",\"key\":\"\\u00e9\\n\",\"value\":1,\"headers\":{\"operation\":\"insert\"}}",
	  STATE_INSERT, "a/b|\xc3\xa9\n", "1" },
	{ __LINE__, "{\"type\":\"t\",\"key\":\"\\ud83d\\ude00\",\"value\":1,\"headers\":{\"operation\":\"insert\"}}",
	  STATE_INSERT, "t|\xf0\x9f\x98\x80", "1" },
	{ __LINE__, "{\"headers\":{\"control\":\"snapshot-start\",\"offset\":\"0000000000000001_0000000000000002\"}}",
	  STATE_SNAPSHOT_START, "", "" },
	{ __LINE__, "{\"headers\":{\"control\":\"snapshot-end\"}}", STATE_SNAPSHOT_END, "", "" },
	{ __LINE__, "{\"headers\":{\"control\":\"reset\"}}", STATE_RESET, "", "" },
};

static void test_good(void)
{
	for (size_t i = 0; i < NELEM(good); i++) {
		const struct good *g = &good[i];
		struct state_event ev;
		const char *why = "(none)";
		int rc = parse(g->msg, &ev, &why);
		CHECK_INT_AT(g->line, rc, 0);
		if (rc) {
			printf("  reason: %s\n", why ? why : "(null)");
			continue;
		}
		CHECK_INT_AT(g->line, ev.op, g->op);
		CHECK_STR_AT(g->line, rowkey_str(&ev), g->rowkey);
		CHECK_MEM_AT(g->line, g->msg + ev.value_off, ev.value_len, g->value, strlen(g->value));
	}
}

/* --- rejected messages ------------------------------------------------------------ */

static const struct bad {
	int line;
	const char *msg;
	const char *reason;   /* a substring of the reason */
} bad[] = {
	{ __LINE__, "[1]", "must be a JSON object" },
	{ __LINE__, "\"x\"", "must be a JSON object" },
	{ __LINE__, "{}", "missing headers" },
	{ __LINE__, "{\"type\":\"t\",\"key\":\"k\",\"value\":1}", "missing headers" },
	{ __LINE__, "{\"type\":\"t\",\"key\":\"k\",\"value\":1,\"headers\":{}}", "missing headers.operation" },
	{ __LINE__, "{\"type\":\"t\",\"key\":\"k\",\"value\":1,\"headers\":[]}", "headers must be an object" },
	{ __LINE__, "{\"type\":\"t\",\"key\":\"k\",\"value\":1,\"headers\":{\"operation\":\"replace\"}}", "insert, update, upsert or delete" },
	{ __LINE__, "{\"type\":\"t\",\"key\":\"k\",\"value\":1,\"headers\":{\"operation\":\"INSERT\"}}", "insert, update, upsert or delete" },
	{ __LINE__, "{\"type\":\"t\",\"key\":\"k\",\"value\":1,\"headers\":{\"operation\":1}}", "operation must be a string" },
	{ __LINE__, "{\"key\":\"k\",\"value\":1,\"headers\":{\"operation\":\"insert\"}}", "missing type" },
	{ __LINE__, "{\"type\":\"t\",\"value\":1,\"headers\":{\"operation\":\"insert\"}}", "missing key" },
	{ __LINE__, "{\"type\":\"t\",\"key\":\"k\",\"headers\":{\"operation\":\"insert\"}}", "missing value" },
	{ __LINE__, "{\"type\":\"t\",\"key\":\"k\",\"headers\":{\"operation\":\"update\"}}", "missing value" },
	{ __LINE__, "{\"type\":\"t\",\"key\":\"k\",\"headers\":{\"operation\":\"upsert\"}}", "missing value" },
	{ __LINE__, "{\"type\":1,\"key\":\"k\",\"value\":1,\"headers\":{\"operation\":\"insert\"}}", "type must be a string" },
	{ __LINE__, "{\"type\":\"t\",\"key\":7,\"value\":1,\"headers\":{\"operation\":\"insert\"}}", "key must be a string" },
	{ __LINE__, "{\"type\":\"t\",\"key\":null,\"value\":1,\"headers\":{\"operation\":\"insert\"}}", "key must be a string" },
	{ __LINE__, "{\"type\":\"\",\"key\":\"k\",\"value\":1,\"headers\":{\"operation\":\"insert\"}}", "type must not be empty" },
	{ __LINE__, "{\"type\":\"t\",\"key\":\"\",\"value\":1,\"headers\":{\"operation\":\"insert\"}}", "key must not be empty" },
	{ __LINE__, "{\"type\":\"t\",\"key\":\"k\",\"key\":\"j\",\"value\":1,\"headers\":{\"operation\":\"insert\"}}", "duplicate member" },
	{ __LINE__, "{\"type\":\"t\",\"key\":\"k\",\"value\":1,\"headers\":{\"operation\":\"insert\",\"operation\":\"delete\"}}", "duplicate member in headers" },
	{ __LINE__, "{\"type\":\"t\",\"key\":\"k\",\"value\":1,\"extra\":1,\"headers\":{\"operation\":\"insert\"}}", "unknown member" },
	{ __LINE__, "{\"type\":\"t\",\"key\":\"k\",\"value\":1,\"headers\":{\"operation\":\"insert\",\"control\":\"reset\"}}", "both operation and control" },
	{ __LINE__, "{\"type\":\"t\",\"headers\":{\"control\":\"reset\"}}", "only headers" },
	{ __LINE__, "{\"headers\":{\"control\":\"flush\"}}", "snapshot-start, snapshot-end or reset" },
	{ __LINE__, "{\"headers\":{\"control\":\"reset\",\"offset\":\"\"}}", "offset must not be empty" },
	{ __LINE__, "{\"headers\":{\"control\":\"reset\",\"offset\":5}}", "offset must be a string" },
	{ __LINE__, "{\"type\":\"t\",\"key\":\"k\",\"value\":1,\"headers\":{\"operation\":\"insert\",\"txid\":\"\"}}", "txid must not be empty" },
	{ __LINE__, "{\"type\":\"t\",\"key\":\"k\",\"value\":1,\"headers\":{\"operation\":\"insert\",\"timestamp\":\"yesterday\"}}", "RFC 3339" },
	{ __LINE__, "{\"type\":\"t\",\"key\":\"k\",\"value\":1,\"headers\":{\"operation\":\"insert\"}", "malformed" },
	{ __LINE__, "{\"type\":\"t\",\"key\":\"k\",\"value\":1,\"headers\":{\"operation\":\"insert\"}} x", "malformed" },
	{ __LINE__, "{\"type\":\"t\",\"key\":\"k\\q\",\"value\":1,\"headers\":{\"operation\":\"insert\"}}", "malformed" },
	{ __LINE__, "", "must be a JSON object" },
};

static void test_bad(void)
{
	for (size_t i = 0; i < NELEM(bad); i++) {
		const struct bad *b = &bad[i];
		struct state_event ev;
		const char *why = NULL;
		buf_reset(&arena);
		buf_puts(&arena, "kept");
		int rc = state_parse(b->msg, strlen(b->msg), &ev, &arena, &why);
		CHECK_INT_AT(b->line, rc, -1);
		CHECK_AT(b->line, why && strstr(why, b->reason));
		if (why && !strstr(why, b->reason))
			printf("  reason was: %s\n", why);
		CHECK_INT_AT(b->line, arena.len, 4); /* the arena is left as it was */
		CHECK_AT(b->line, why == NULL || strchr(why, '\n') == NULL);
	}
}

/* --- keys --------------------------------------------------------------------------- */

static char *event_with_key(const char *key_json)
{
	struct buf b;
	buf_init(&b);
	buf_printf(&b, "{\"type\":\"t\",\"key\":%s,\"value\":1,\"headers\":{\"operation\":\"insert\"}}", key_json);
	return b.data;
}

static void test_keys(void)
{
	struct state_event ev;
	const char *why;

	/* The longest key: 2 + 1 (type) + 497 = 500 bytes of row key; one more is refused. */
	char longkey[600];
	for (int extra = 0; extra < 2; extra++) {
		longkey[0] = '"';
		memset(longkey + 1, 'k', (size_t)(497 + extra));
		strcpy(longkey + 498 + extra, "\"");
		char *lm = event_with_key(longkey);
		int rc = parse(lm, &ev, &why);
		CHECK_INT(rc, extra ? -1 : 0);
		if (extra)
			CHECK(rc && why && strstr(why, "too long"));
		else
			CHECK_INT(ev.rk_len, STATE_MAX_ROW_KEY);
		free(lm);
	}
	char *m;
	/* Decoded length counts: 166 escaped 3-byte characters are 498 bytes. */
	struct buf k;
	buf_init(&k);
	buf_puts(&k, "\"");
	for (int i = 0; i < 166; i++)
		buf_puts(&k, "\\u20ac");
	buf_puts(&k, "\"");
	m = event_with_key(k.data);
	CHECK_INT(parse(m, &ev, &why), -1);
	free(m);
	buf_free(&k);

	/* Raw UTF-8 and its escape are the same key. */
	struct state_event a, b;
	m = event_with_key("\"caf\xc3\xa9\"");
	CHECK_INT(parse(m, &a, &why), 0);
	char ka[64];
	snprintf(ka, sizeof ka, "%s", rowkey_str(&a));
	free(m);
	m = event_with_key("\"caf\\u00E9\"");
	CHECK_INT(parse(m, &b, &why), 0);
	CHECK_STR(rowkey_str(&b), ka);
	free(m);

	/* A NUL inside a key is kept, not a terminator: "a\u0000b" != "a". */
	m = event_with_key("\"a\\u0000b\"");
	CHECK_INT(parse(m, &ev, &why), 0);
	CHECK_INT(ev.rk_len, 2 + 1 + 3);
	CHECK_MEM(arena.data + ev.rk_off + 3, 3, "a\0b", 3);
	free(m);

	/* A lone surrogate keeps a 3-byte form, distinct from any other key. */
	m = event_with_key("\"\\ud800\"");
	CHECK_INT(parse(m, &ev, &why), 0);
	CHECK_MEM(arena.data + ev.rk_off + 3, (size_t)ev.rk_len - 3, "\xed\xa0\x80", 3);
	free(m);

	/* Type and key are split by the length prefix: ("ab","c") != ("a","bc"). */
	const char *e1 = "{\"type\":\"ab\",\"key\":\"c\",\"value\":1,\"headers\":{\"operation\":\"insert\"}}";
	const char *e2 = "{\"type\":\"a\",\"key\":\"bc\",\"value\":1,\"headers\":{\"operation\":\"insert\"}}";
	buf_reset(&arena);
	CHECK_INT(state_parse(e1, strlen(e1), &a, &arena, &why), 0);
	CHECK_INT(state_parse(e2, strlen(e2), &b, &arena, &why), 0);
	CHECK(a.rk_off != b.rk_off);
	CHECK(a.rk_len == b.rk_len && memcmp(arena.data + a.rk_off, arena.data + b.rk_off, a.rk_len) != 0);
}

/* --- snapshot JSON ---------------------------------------------------------------- */

static const char *const roundtrip_keys[] = {
	"\"plain\"", "\"quote\\\" back\\\\slash\"", "\"ctl\\u0001\\u001f\\n\\t\"", "\"nul\\u0000nul\"",
	"\"\\ud83d\\ude00 emoji\"", "\"lone \\udc00 low\"", "\"lone \\ud800\"", "\"caf\xc3\xa9 \xe2\x82\xac\"",
	"\"\\u2028\\u2029\"", "\"slash/\\/\"",
};

static void test_roundtrip(void)
{
	struct buf out;
	buf_init(&out);
	for (size_t i = 0; i < NELEM(roundtrip_keys); i++) {
		struct state_event ev, ev2;
		const char *why;
		char *m = event_with_key(roundtrip_keys[i]);
		CHECK_INT(parse(m, &ev, &why), 0);
		buf_reset(&out);
		CHECK_INT(state_put_row(&out, (const unsigned char *)arena.data + ev.rk_off, ev.rk_len,
		                        m + ev.value_off, ev.value_len), 0);
		/* The row, parsed again, names the same key with the same value. */
		size_t mark = arena.len;
		CHECK_INT(state_parse(out.data, out.len, &ev2, &arena, &why), 0);
		CHECK_INT(ev2.op, STATE_INSERT);
		CHECK_MEM(arena.data + ev2.rk_off, ev2.rk_len, arena.data + ev.rk_off, ev.rk_len);
		CHECK_MEM(out.data + ev2.value_off, ev2.value_len, "1", 1);
		CHECK(ev2.rk_off == mark);
		/* It is JSON a strict parser reads (cJSON refuses lone surrogates,
		 * which JavaScript's JSON.parse accepts: those rows are skipped). */
		if (!strstr(roundtrip_keys[i], "lone")) {
			cJSON *j = cJSON_ParseWithLength(out.data, out.len);
			CHECK(j != NULL);
			CHECK(j && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "key")));
			cJSON_Delete(j);
		}
		free(m);
	}

	/* The value is copied verbatim, whatever its shape. */
	const char *raw = "{\"n\":1.0e2, \"big\":123456789012345678901234567890,\"s\":\"\\u00e9\"}";
	buf_reset(&out);
	const unsigned char rk[] = { 0, 1, 't', 'k' };
	CHECK_INT(state_put_row(&out, rk, sizeof rk, raw, strlen(raw)), 0);
	CHECK(strstr(out.data, raw) != NULL);
	CHECK_STR(out.data, "{\"type\":\"t\",\"key\":\"k\",\"value\":{\"n\":1.0e2, \"big\":123456789012345678901234567890,"
	                    "\"s\":\"\\u00e9\"},\"headers\":{\"operation\":\"insert\"}}");
	/* A row key whose type length runs past its end is refused. */
	const unsigned char broken[] = { 0, 9, 't' };
	CHECK_INT(state_put_row(&out, broken, sizeof broken, "1", 1), -1);

	buf_reset(&out);
	CHECK_INT(state_put_control(&out, "snapshot-end", "0000000000000003_0000000000000010"), 0);
	CHECK_STR(out.data, "{\"headers\":{\"control\":\"snapshot-end\",\"offset\":\"0000000000000003_0000000000000010\"}}");
	struct state_event ev;
	const char *why;
	CHECK_INT(state_parse(out.data, out.len, &ev, &arena, &why), 0);
	CHECK_INT(ev.op, STATE_SNAPSHOT_END);
	buf_free(&out);
}

/* Truncations of a valid event never read past the end (run under ASan) and
 * are all refused. */
static void test_truncated(void)
{
	const char *m = "{\"type\":\"t\\u00e9\",\"key\":\"k\\\"\",\"value\":{\"a\":[1,\"}\"]},\"headers\":{\"operation\":\"insert\"}}";
	size_t n = strlen(m);
	int refused = 0;
	for (size_t len = 0; len < n; len++) {
		char *copy = malloc(len ? len : 1);
		memcpy(copy, m, len);
		struct state_event ev;
		const char *why;
		buf_reset(&arena);
		if (state_parse(copy, len, &ev, &arena, &why) < 0)
			refused++;
		free(copy);
	}
	CHECK_INT(refused, (int)n);
}

int main(void)
{
	buf_init(&arena);
	test_good();
	test_bad();
	test_keys();
	test_roundtrip();
	test_truncated();
	buf_free(&arena);
	return unit_done();
}
