/* test_jsonsplit.c: unit tests of src/lib/jsonsplit.c (json_split), with cJSON as
 * an oracle for the documents it accepts. */
#include "lib/jsonsplit.h"
#include "lib/limits.h"
#include "unit.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

#define MAXMSG 8

/* Collects the slices json_split hands out, checking each lies inside the
 * input. */
struct got {
	const char *base;
	size_t baselen;
	size_t n;
	const char *msg[64];
	size_t len[64];
	int outside;      /* a slice outside the input */
	int stop_at;      /* return stop_rc on this call (1-based), 0 = never */
	int stop_rc;
};

static int collect(void *ctx, const char *msg, size_t len)
{
	struct got *g = ctx;
	if (msg < g->base || msg + len > g->base + g->baselen)
		g->outside = 1;
	if (g->n < NELEM(g->msg)) {
		g->msg[g->n] = msg;
		g->len[g->n] = len;
	}
	g->n++;
	if (g->stop_at && (int)g->n == g->stop_at)
		return g->stop_rc;
	return 0;
}

/* --- valid documents and the exact messages they split into ------------------ */

static const struct {
	int line;
	const char *doc;
	const char *msgs[MAXMSG];   /* NULL terminated; { NULL } = no message */
} valid_rows[] = {
	/* Scalars: one message each, bytes unchanged. */
	{ __LINE__, "0", { "0" } },
	{ __LINE__, "1", { "1" } },
	{ __LINE__, "-0", { "-0" } },
	{ __LINE__, "1.0", { "1.0" } },
	{ __LINE__, "1e400", { "1e400" } },
	{ __LINE__, "-1.5E-3", { "-1.5E-3" } },
	{ __LINE__, "0.0e+0", { "0.0e+0" } },
	{ __LINE__, "1E5", { "1E5" } },
	{ __LINE__, "123456789012345678901234567890", { "123456789012345678901234567890" } },
	{ __LINE__, "0.10000000000000000000000001", { "0.10000000000000000000000001" } },
	{ __LINE__, "true", { "true" } },
	{ __LINE__, "false", { "false" } },
	{ __LINE__, "null", { "null" } },
	{ __LINE__, "\"\"", { "\"\"" } },
	{ __LINE__, "\"x\"", { "\"x\"" } },
	{ __LINE__, "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", { "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"" } },
	{ __LINE__, "\"\\u00e9\\u00E9\\u0000\\uFFFF\"", { "\"\\u00e9\\u00E9\\u0000\\uFFFF\"" } },
	{ __LINE__, "\"\\ud83d\\ude00\"", { "\"\\ud83d\\ude00\"" } },
	{ __LINE__, "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"", { "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"" } },
	{ __LINE__, "\"\x7f\"", { "\"\x7f\"" } },
	/* UTF-8 boundaries. */
	{ __LINE__, "\"\xc2\x80\xdf\xbf\"", { "\"\xc2\x80\xdf\xbf\"" } },
	{ __LINE__, "\"\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf\"", { "\"\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf\"" } },
	{ __LINE__, "\"\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"", { "\"\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"" } },
	/* Objects are one message. */
	{ __LINE__, "{}", { "{}" } },
	{ __LINE__, "{\"a\":1}", { "{\"a\":1}" } },
	{ __LINE__, " {\"k\" : \"v\"} ", { "{\"k\" : \"v\"}" } },
	{ __LINE__, "{\"a\":[1,2],\"b\":{\"c\":null}}", { "{\"a\":[1,2],\"b\":{\"c\":null}}" } },
	{ __LINE__, "{\"a\":1,\"a\":2}", { "{\"a\":1,\"a\":2}" } },
	{ __LINE__, "{\"\":\"\"}", { "{\"\":\"\"}" } },
	/* Arrays are flattened one level, each element exactly as sent. */
	{ __LINE__, "[]", { NULL } },
	{ __LINE__, "[ ]", { NULL } },
	{ __LINE__, " \t\r\n[ \n]\n", { NULL } },
	{ __LINE__, "[1]", { "1" } },
	{ __LINE__, "[ 1 , {\"a\" : [2]} ,\"x\" ]", { "1", "{\"a\" : [2]}", "\"x\"" } },
	{ __LINE__, "[1.0,1e400,-0]", { "1.0", "1e400", "-0" } },
	{ __LINE__, "[true,false,null]", { "true", "false", "null" } },
	{ __LINE__, "[[1,2],[3]]", { "[1,2]", "[3]" } },
	{ __LINE__, "[[]]", { "[]" } },
	{ __LINE__, "[[[]]]", { "[[]]" } },
	{ __LINE__, "[[],[],{}]", { "[]", "[]", "{}" } },
	{ __LINE__, "[\"a,b\",\"c]d\", \"[\", \"\\\"]\"]", { "\"a,b\"", "\"c]d\"", "\"[\"", "\"\\\"]\"" } },
	{ __LINE__, "[{\"a\":\"]\"},\"}\"]", { "{\"a\":\"]\"}", "\"}\"" } },
	{ __LINE__, "[1,\n2]", { "1", "2" } },
	{ __LINE__, "\n\n[\r\n\t1\r\n,\r\n\t2\r\n]\r\n", { "1", "2" } },
	{ __LINE__, "[{ \"a\" : 1 }\t,\t[ 2 , 3 ]]", { "{ \"a\" : 1 }", "[ 2 , 3 ]" } },
	{ __LINE__, "[\"\",0,\"\"]", { "\"\"", "0", "\"\"" } },
	{ __LINE__, "[-0.0e-0]", { "-0.0e-0" } },
};

static size_t nmsgs(const char *const *m)
{
	size_t n = 0;
	while (n < MAXMSG && m[n])
		n++;
	return n;
}

static void test_valid(void)
{
	for (size_t i = 0; i < NELEM(valid_rows); i++) {
		int line = valid_rows[i].line;
		size_t len = strlen(valid_rows[i].doc);
		char *doc = unit_dup_exact(valid_rows[i].doc, len);
		size_t want = nmsgs(valid_rows[i].msgs);
		struct got g = { .base = doc, .baselen = len };
		size_t count = 999;
		const char *why = NULL;

		int rc = json_split(doc, len, collect, &g, &count, &why);
		CHECK_INT_AT(line, rc, 0);
		CHECK_UINT_AT(line, count, want);
		CHECK_UINT_AT(line, g.n, want);
		CHECK_AT(line, !g.outside);
		for (size_t k = 0; k < want && k < g.n; k++)
			CHECK_MEM_AT(line, g.msg[k], g.len[k], valid_rows[i].msgs[k], strlen(valid_rows[i].msgs[k]));

		/* fn may be NULL: validation and count only. */
		count = 999;
		CHECK_INT_AT(line, json_split(doc, len, NULL, NULL, &count, &why), 0);
		CHECK_UINT_AT(line, count, want);
		free(doc);
	}
}

/* --- invalid documents --------------------------------------------------------- */

static const struct {
	int line;
	const char *doc;
	size_t len;     /* 0: strlen */
} invalid_rows[] = {
	/* Empty. */
	{ __LINE__, "", 0 },
	{ __LINE__, "   ", 0 },
	{ __LINE__, "\n\t\r ", 0 },
	/* Trailing and missing commas, structure. */
	{ __LINE__, "[1,]", 0 },
	{ __LINE__, "[1,2,]", 0 },
	{ __LINE__, "{\"a\":1,}", 0 },
	{ __LINE__, "[,1]", 0 },
	{ __LINE__, "[,]", 0 },
	{ __LINE__, "[1 2]", 0 },
	{ __LINE__, "[1,,2]", 0 },
	{ __LINE__, "{\"a\" 1}", 0 },
	{ __LINE__, "{\"a\":1 \"b\":2}", 0 },
	{ __LINE__, "{a:1}", 0 },
	{ __LINE__, "{\"a\":}", 0 },
	{ __LINE__, "{\"a\"}", 0 },
	{ __LINE__, "{1:2}", 0 },
	{ __LINE__, "{,}", 0 },
	{ __LINE__, "[", 0 },
	{ __LINE__, "{", 0 },
	{ __LINE__, "]", 0 },
	{ __LINE__, "}", 0 },
	{ __LINE__, ":", 0 },
	{ __LINE__, ",", 0 },
	{ __LINE__, "[[]", 0 },
	{ __LINE__, "[]]", 0 },
	{ __LINE__, "{\"a\":1}}", 0 },
	{ __LINE__, "[}", 0 },
	{ __LINE__, "{]", 0 },
	{ __LINE__, "[1}", 0 },
	/* Two top-level values. */
	{ __LINE__, "1 2", 0 },
	{ __LINE__, "[1][2]", 0 },
	{ __LINE__, "[] []", 0 },
	{ __LINE__, "{} {}", 0 },
	{ __LINE__, "\"a\" \"b\"", 0 },
	{ __LINE__, "1,2", 0 },
	{ __LINE__, "true false", 0 },
	{ __LINE__, "nulltrue", 0 },
	/* Numbers. */
	{ __LINE__, "01", 0 },
	{ __LINE__, "[01]", 0 },
	{ __LINE__, "-01", 0 },
	{ __LINE__, "00", 0 },
	{ __LINE__, ".5", 0 },
	{ __LINE__, "-.5", 0 },
	{ __LINE__, "1.", 0 },
	{ __LINE__, "[1.]", 0 },
	{ __LINE__, "1.e3", 0 },
	{ __LINE__, "+1", 0 },
	{ __LINE__, "-", 0 },
	{ __LINE__, "[-]", 0 },
	{ __LINE__, "--1", 0 },
	{ __LINE__, "1e", 0 },
	{ __LINE__, "1e+", 0 },
	{ __LINE__, "1E-", 0 },
	{ __LINE__, "[1e]", 0 },
	{ __LINE__, "1e1.5", 0 },
	{ __LINE__, "0x10", 0 },
	{ __LINE__, "1_000", 0 },
	{ __LINE__, "NaN", 0 },
	{ __LINE__, "Infinity", 0 },
	{ __LINE__, "-Infinity", 0 },
	/* Bare words. */
	{ __LINE__, "tru", 0 },
	{ __LINE__, "True", 0 },
	{ __LINE__, "nul", 0 },
	{ __LINE__, "nulll", 0 },
	{ __LINE__, "falsey", 0 },
	{ __LINE__, "undefined", 0 },
	{ __LINE__, "abc", 0 },
	{ __LINE__, "'a'", 0 },
	{ __LINE__, "[t]", 0 },
	/* Comments, BOM and non-JSON whitespace. */
	{ __LINE__, "/* c */ 1", 0 },
	{ __LINE__, "// c\n1", 0 },
	{ __LINE__, "1 # c", 0 },
	{ __LINE__, "\xef\xbb\xbf" "1", 0 },
	{ __LINE__, "\f1", 0 },
	{ __LINE__, "\v1", 0 },
	{ __LINE__, "\xc2\xa0" "1", 0 },
	{ __LINE__, "[1,\f2]", 0 },
	/* Unterminated strings. */
	{ __LINE__, "\"", 0 },
	{ __LINE__, "\"abc", 0 },
	{ __LINE__, "\"abc\\\"", 0 },
	{ __LINE__, "\"\\", 0 },
	{ __LINE__, "[\"a]", 0 },
	{ __LINE__, "{\"a:1}", 0 },
	/* Raw control bytes in strings. */
	{ __LINE__, "\"a\nb\"", 0 },
	{ __LINE__, "\"a\tb\"", 0 },
	{ __LINE__, "\"a\rb\"", 0 },
	{ __LINE__, "\"\x01\"", 0 },
	{ __LINE__, "\"\x1f\"", 0 },
	{ __LINE__, "\"a\0b\"", 5 },
	{ __LINE__, "{\"a\nb\":1}", 0 },
	/* NUL outside strings. */
	{ __LINE__, "\0", 1 },
	{ __LINE__, "1\0", 2 },
	{ __LINE__, "[1\0]", 4 },
	{ __LINE__, "\0[]", 3 },
	/* Bad escapes. */
	{ __LINE__, "\"\\x41\"", 0 },
	{ __LINE__, "\"\\a\"", 0 },
	{ __LINE__, "\"\\'\"", 0 },
	{ __LINE__, "\"\\0\"", 0 },
	{ __LINE__, "\"\\U0041\"", 0 },
	{ __LINE__, "\"\\u12G4\"", 0 },
	{ __LINE__, "\"\\u123\"", 0 },
	{ __LINE__, "\"\\u\"", 0 },
	{ __LINE__, "\"\\u12\"", 0 },
	{ __LINE__, "\"\\u 123\"", 0 },
	{ __LINE__, "\"\\u-123\"", 0 },
	{ __LINE__, "\"\\u12", 0 },
	{ __LINE__, "\"\\\xc3\xa9\"", 0 },
	/* Invalid UTF-8 in strings. */
	{ __LINE__, "\"\xc0\x80\"", 0 },           /* overlong NUL */
	{ __LINE__, "\"\xc1\xbf\"", 0 },           /* overlong */
	{ __LINE__, "\"\xe0\x80\x80\"", 0 },       /* overlong, 3 bytes */
	{ __LINE__, "\"\xe0\x9f\xbf\"", 0 },
	{ __LINE__, "\"\xf0\x80\x80\x80\"", 0 },   /* overlong, 4 bytes */
	{ __LINE__, "\"\xf0\x8f\xbf\xbf\"", 0 },
	{ __LINE__, "\"\xed\xa0\x80\"", 0 },       /* surrogate U+D800 */
	{ __LINE__, "\"\xed\xbf\xbf\"", 0 },       /* surrogate U+DFFF */
	{ __LINE__, "\"\xed\xa0\xbd\xed\xb8\x80\"", 0 }, /* CESU-8 pair */
	{ __LINE__, "\"\xf4\x90\x80\x80\"", 0 },   /* U+110000 */
	{ __LINE__, "\"\xf5\x80\x80\x80\"", 0 },
	{ __LINE__, "\"\xf7\xbf\xbf\xbf\"", 0 },
	{ __LINE__, "\"\xf8\x88\x80\x80\x80\"", 0 },
	{ __LINE__, "\"\xfc\x84\x80\x80\x80\x80\"", 0 },
	{ __LINE__, "\"\xfe\"", 0 },
	{ __LINE__, "\"\xff\"", 0 },
	{ __LINE__, "\"\x80\"", 0 },               /* lone continuation */
	{ __LINE__, "\"\xbf\"", 0 },
	{ __LINE__, "\"a\x80\x80\"", 0 },
	{ __LINE__, "\"\xc3\"", 0 },               /* truncated sequences */
	{ __LINE__, "\"\xe2\x82\"", 0 },
	{ __LINE__, "\"\xf0\x9f\x98\"", 0 },
	{ __LINE__, "\"\xc3\x28\"", 0 },
	{ __LINE__, "\"\xe2\x28\xa1\"", 0 },
	{ __LINE__, "\"\xf0\x28\x8c\xbc\"", 0 },
	{ __LINE__, "\"\xc3", 0 },                 /* truncated at the end of input */
	{ __LINE__, "\"\xe2\x82", 0 },
	{ __LINE__, "\"\xf0\x9f\x98", 0 },
	{ __LINE__, "\"\xf0\x9f\x98\x80", 0 },
	/* Non-ASCII outside strings. */
	{ __LINE__, "\xc3\xa9", 0 },
	{ __LINE__, "[\xc3\xa9]", 0 },
	{ __LINE__, "{\"a\":\xe2\x82\xac}", 0 },
};

static void test_invalid(void)
{
	for (size_t i = 0; i < NELEM(invalid_rows); i++) {
		int line = invalid_rows[i].line;
		size_t len = invalid_rows[i].len ? invalid_rows[i].len : strlen(invalid_rows[i].doc);
		char *doc = unit_dup_exact(invalid_rows[i].doc, len);
		struct got g = { .base = doc, .baselen = len };
		size_t count = 999;
		const char *why = NULL;

		int rc = json_split(doc, len, collect, &g, &count, &why);
		CHECK_INT_AT(line, rc, -1);
		CHECK_AT(line, why != NULL && why[0] != '\0');
		CHECK_UINT_AT(line, g.n, 0);   /* invalid: fn is never called */
		why = NULL;
		CHECK_INT_AT(line, json_split(doc, len, NULL, NULL, &count, &why), -1);
		CHECK_AT(line, why != NULL);
		free(doc);
	}
}

/* --- nesting --------------------------------------------------------------------- */

/* n nested containers: "[[[...]]]" or {"a":{"a":...1}} */
static char *nested(int n, int objects, size_t *len)
{
	size_t cap = (size_t)n * 6 + 8, l = 0;
	char *s = malloc(cap);
	for (int i = 0; i < n; i++) {
		if (objects) {
			memcpy(s + l, "{\"a\":", 5);
			l += 5;
		} else {
			s[l++] = '[';
		}
	}
	if (objects)
		s[l++] = '1';
	for (int i = 0; i < n; i++)
		s[l++] = objects ? '}' : ']';
	*len = l;
	return s;
}

static void test_depth(void)
{
	static const struct { int line; int n, objects, rc; } rows[] = {
		{ __LINE__, 1, 0, 0 },
		{ __LINE__, 2, 0, 0 },
		{ __LINE__, LS_JSON_MAX_DEPTH - 1, 0, 0 },
		{ __LINE__, LS_JSON_MAX_DEPTH, 0, 0 },
		{ __LINE__, LS_JSON_MAX_DEPTH + 1, 0, -1 },
		{ __LINE__, LS_JSON_MAX_DEPTH * 4, 0, -1 },
		{ __LINE__, 100000, 0, -1 },
		{ __LINE__, LS_JSON_MAX_DEPTH, 1, 0 },
		{ __LINE__, LS_JSON_MAX_DEPTH + 1, 1, -1 },
		{ __LINE__, 100000, 1, -1 },
	};
	for (size_t i = 0; i < NELEM(rows); i++) {
		size_t len, count = 0;
		const char *why = NULL;
		char *s = nested(rows[i].n, rows[i].objects, &len);
		struct got g = { .base = s, .baselen = len };
		int rc = json_split(s, len, collect, &g, &count, &why);
		CHECK_INT_AT(rows[i].line, rc, rows[i].rc);
		if (rc == 0) {
			/* "[[...]]" is one message, the array inside ("[]" none); an object is one. */
			CHECK_UINT_AT(rows[i].line, count, rows[i].n == 1 && !rows[i].objects ? 0 : 1);
			if (g.n == 1 && !rows[i].objects)
				CHECK_MEM_AT(rows[i].line, g.msg[0], g.len[0], s + 1, len - 2);
		} else {
			CHECK_UINT_AT(rows[i].line, g.n, 0);
		}
		free(s);
	}

	/* Unclosed deep nesting ends cleanly too. */
	char *open = malloc(5000);
	memset(open, '[', 5000);
	size_t count;
	const char *why = NULL;
	CHECK_INT(json_split(open, 5000, NULL, NULL, &count, &why), -1);
	CHECK(why != NULL);
	free(open);
}

/* --- fn stops the split --------------------------------------------------------------- */

static void test_stop(void)
{
	const char *doc = "[1,2,3,4]";
	struct got g = { .base = doc, .baselen = strlen(doc), .stop_at = 2, .stop_rc = 7 };
	size_t count = 0;
	const char *why = NULL;
	CHECK_INT(json_split(doc, strlen(doc), collect, &g, &count, &why), 7);
	CHECK_UINT(g.n, 2);

	struct got g2 = { .base = "5", .baselen = 1, .stop_at = 1, .stop_rc = -5 };
	CHECK_INT(json_split("5", 1, collect, &g2, &count, &why), -5);
	CHECK_UINT(g2.n, 1);
}

/* --- cJSON as an oracle ------------------------------------------------------------------ */

static char *print(const cJSON *j)
{
	char *p = cJSON_PrintUnformatted(j);
	return p ? p : NULL;
}

/* The document must parse with cJSON; each message must parse on its own,
 * consuming exactly its bytes, to the same value as the array element (or
 * the whole document) it came from. Returns the number of disagreements. */
static int oracle(int line, const char *doc, size_t len)
{
	struct got g = { .base = doc, .baselen = len };
	size_t count = 0;
	const char *why = NULL;
	int bad = 0;

	if (json_split(doc, len, collect, &g, &count, &why) != 0) {
		unit_result(0, __FILE__, line, "json_split rejects \"%s\": %s", unit_show(doc, len), why);
		return 1;
	}
	cJSON *whole = cJSON_ParseWithLength(doc, len);
	if (!whole) {
		unit_result(0, __FILE__, line, "cJSON rejects \"%s\"", unit_show(doc, len));
		return 1;
	}
	size_t want = cJSON_IsArray(whole) ? (size_t)cJSON_GetArraySize(whole) : 1;
	if (count != want || g.n != want) {
		unit_result(0, __FILE__, line, "\"%s\": %zu messages, cJSON sees %zu", unit_show(doc, len), count, want);
		cJSON_Delete(whole);
		return 1;
	}
	for (size_t k = 0; k < g.n && k < NELEM(g.msg); k++) {
		const char *m = g.msg[k], *end = NULL;
		size_t ml = g.len[k];
		if (ml == 0 || unit_is_ws(m[0]) || unit_is_ws(m[ml - 1])) {
			unit_result(0, __FILE__, line, "message %zu \"%s\" is empty or not trimmed", k, unit_show(m, ml));
			bad++;
			continue;
		}
		cJSON *one = cJSON_ParseWithLengthOpts(m, ml, &end, 0);
		if (!one || end != m + ml) {
			unit_result(0, __FILE__, line, "message %zu \"%s\" does not parse alone", k, unit_show(m, ml));
			cJSON_Delete(one);
			bad++;
			continue;
		}
		const cJSON *ref = cJSON_IsArray(whole) ? cJSON_GetArrayItem(whole, (int)k) : whole;
		char *a = print(one), *b = print(ref);
		if (!a || !b || strcmp(a, b)) {
			unit_result(0, __FILE__, line, "message %zu \"%s\" differs from cJSON's element", k, unit_show(m, ml));
			bad++;
		}
		free(a);
		free(b);
		cJSON_Delete(one);
	}
	cJSON_Delete(whole);
	unit_result(bad == 0, __FILE__, line, "oracle");
	return bad;
}

static void test_oracle_rows(void)
{
	for (size_t i = 0; i < NELEM(valid_rows); i++) {
		size_t len = strlen(valid_rows[i].doc);
		char *doc = unit_dup_exact(valid_rows[i].doc, len);
		oracle(valid_rows[i].line, doc, len);
		free(doc);
	}
}

/* Every proper prefix of a document whose top level is an array, object or
 * string is incomplete, so it must be rejected (and never read past its end). */
static void test_prefixes(void)
{
	for (size_t i = 0; i < NELEM(valid_rows); i++) {
		const char *d = valid_rows[i].doc;
		size_t len = strlen(d), start = 0, end = len;
		while (start < len && unit_is_ws(d[start]))
			start++;
		while (end > start && unit_is_ws(d[end - 1]))
			end--;
		if (d[start] != '[' && d[start] != '{' && d[start] != '"')
			continue;
		int bad = 0;
		for (size_t k = 0; k < end; k++) {
			char *p = unit_dup_exact(d, k);
			struct got g = { .base = p, .baselen = k };
			size_t count;
			const char *why = NULL;
			if (json_split(p, k, collect, &g, &count, &why) != -1 || g.n) {
				if (!bad++)
					unit_result(0, __FILE__, valid_rows[i].line, "prefix of %zu bytes accepted", k);
			}
			free(p);
		}
		unit_result(bad == 0, __FILE__, valid_rows[i].line, "prefixes");
	}
}

/* --- generated documents ------------------------------------------------------------------ */

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;
static uint32_t rnd(uint32_t n)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 2685821657736338717ULL) >> 33) % n;
}

struct sb { char *s; size_t len, cap; };

static void put(struct sb *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->s = realloc(b->s, b->cap);
		if (!b->s)
			abort();
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}
static void PUTS(struct sb *b, const char *s)
{
	put(b, s, strlen(s));
}

static void gen_ws(struct sb *b)
{
	static const char *ws[] = { "", "", "", " ", "\n", "\t", "\r\n", "  \n\t " };
	PUTS(b, ws[rnd(NELEM(ws))]);
}

static void gen_number(struct sb *b)
{
	static const char *ints[] = { "0", "-0", "1", "-7", "42", "1234567890123", "99999999999999999999" };
	static const char *fracs[] = { "", "", ".0", ".5", ".25", ".000001", ".1000000000000000055511151231257827" };
	static const char *exps[] = { "", "", "", "e1", "E+2", "e-3", "E400", "e-400", "e0" };
	PUTS(b, ints[rnd(NELEM(ints))]);
	PUTS(b, fracs[rnd(NELEM(fracs))]);
	PUTS(b, exps[rnd(NELEM(exps))]);
}

static void gen_string(struct sb *b)
{
	static const char *pieces[] = {
		"a", "Z", " ", "0", ",", "[", "]", "{", "}", ":", "'", "/", "\x7f",
		"\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t",
		"\\u0041", "\\u00e9", "\\u20AC", "\\ud83d\\ude00", "\\uFFFD",
		"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xc2\x80", "\xf4\x8f\xbf\xbf",
	};
	PUTS(b, "\"");
	for (uint32_t n = rnd(8); n; n--)
		PUTS(b, pieces[rnd(NELEM(pieces))]);
	PUTS(b, "\"");
}

static void gen_value(struct sb *b, int depth)
{
	uint32_t kind = depth > 5 ? rnd(5) : rnd(7);
	switch (kind) {
	case 0: gen_number(b); break;
	case 1: gen_string(b); break;
	case 2: PUTS(b, "true"); break;
	case 3: PUTS(b, rnd(2) ? "false" : "null"); break;
	case 4: gen_number(b); break;
	case 5:
	case 6: {
		int obj = kind == 6;
		PUTS(b, obj ? "{" : "[");
		uint32_t n = rnd(5);
		gen_ws(b);
		for (uint32_t i = 0; i < n; i++) {
			if (i) {
				PUTS(b, ",");
				gen_ws(b);
			}
			if (obj) {
				gen_string(b);
				gen_ws(b);
				PUTS(b, ":");
				gen_ws(b);
			}
			gen_value(b, depth + 1);
			gen_ws(b);
		}
		PUTS(b, obj ? "}" : "]");
		break;
	}
	}
}

static void test_generated(void)
{
	int bad = 0;
	for (int i = 0; i < 3000; i++) {
		struct sb b = { 0 };
		gen_ws(&b);
		if (rnd(2)) {
			/* Top-level array: the case that is split. */
			PUTS(&b, "[");
			gen_ws(&b);
			uint32_t n = rnd(6);
			for (uint32_t k = 0; k < n; k++) {
				if (k) {
					PUTS(&b, ",");
					gen_ws(&b);
				}
				gen_value(&b, 1);
				gen_ws(&b);
			}
			PUTS(&b, "]");
		} else {
			gen_value(&b, 0);
		}
		gen_ws(&b);
		char *doc = unit_dup_exact(b.s, b.len);
		if (oracle(__LINE__, doc, b.len) && bad++ > 5) {
			free(doc);
			free(b.s);
			break;
		}
		free(doc);
		free(b.s);
	}
	CHECK_INT(bad, 0);
}

int main(void)
{
	test_valid();
	test_invalid();
	test_depth();
	test_stop();
	test_oracle_rows();
	test_prefixes();
	test_generated();
	return unit_done();
}
