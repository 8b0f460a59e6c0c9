/* test_sse.c: unit tests of src/lib/sse.c (SSE framing and base64). */
#include "lib/buf.h"
#include "lib/sse.h"
#include "unit.h"

#include <stdlib.h>

/* --- a reference SSE parser (WHATWG HTML, "interpreting an event stream") --- */

struct sse_event {
	char type[32];
	char *data;
	size_t len;
};

struct sse_parsed {
	struct sse_event ev[8];
	int n;
	int comments;
	int unterminated;   /* bytes after the last blank line */
};

static void parsed_free(struct sse_parsed *p)
{
	for (int i = 0; i < p->n; i++)
		free(p->ev[i].data);
}

/* Lines end with CRLF, LF or CR. "field:value" drops one space after the
 * colon; "data" lines are joined with LF; a blank line dispatches the event
 * (without the final LF). */
static void sse_parse(const char *s, size_t len, struct sse_parsed *p)
{
	char type[32] = "";
	struct buf data;
	int have_data = 0;
	size_t i = 0;

	memset(p, 0, sizeof *p);
	buf_init(&data);
	while (i < len) {
		size_t e = i;
		while (e < len && s[e] != '\n' && s[e] != '\r')
			e++;
		if (e == len) {
			p->unterminated = 1;
			break;
		}
		const char *line = s + i;
		size_t ll = e - i;
		i = e + ((s[e] == '\r' && e + 1 < len && s[e + 1] == '\n') ? 2 : 1);
		if (ll == 0) {
			if (have_data && p->n < (int)NELEM(p->ev)) {
				struct sse_event *ev = &p->ev[p->n++];
				snprintf(ev->type, sizeof ev->type, "%s", type[0] ? type : "message");
				ev->len = data.len ? data.len - 1 : 0;
				ev->data = malloc(ev->len + 1);
				memcpy(ev->data, data.data ? data.data : "", ev->len);
				ev->data[ev->len] = '\0';
			}
			type[0] = '\0';
			buf_reset(&data);
			have_data = 0;
			continue;
		}
		if (line[0] == ':') {
			p->comments++;
			continue;
		}
		const char *colon = memchr(line, ':', ll);
		size_t fl = colon ? (size_t)(colon - line) : ll;
		const char *val = colon ? colon + 1 : line + ll;
		size_t vl = colon ? ll - fl - 1 : 0;
		if (vl && val[0] == ' ') {
			val++;
			vl--;
		}
		if (fl == 5 && !memcmp(line, "event", 5)) {
			snprintf(type, sizeof type, "%.*s", (int)vl, val);
		} else if (fl == 4 && !memcmp(line, "data", 4)) {
			buf_append(&data, val, vl);
			buf_append(&data, "\n", 1);
			have_data = 1;
		}
	}
	buf_free(&data);
}

/* Counts lines of out (split on CR, LF, CRLF) that start with prefix. */
static int lines_starting(const char *s, size_t len, const char *prefix)
{
	size_t pl = strlen(prefix);
	int n = 0;
	for (size_t i = 0; i < len;) {
		size_t e = i;
		while (e < len && s[e] != '\n' && s[e] != '\r')
			e++;
		if (e - i >= pl && !memcmp(s + i, prefix, pl))
			n++;
		i = e + ((e < len && s[e] == '\r' && e + 1 < len && s[e + 1] == '\n') ? 2 : 1);
	}
	return n;
}

/* --- sse_data_event ------------------------------------------------------- */

static const struct {
	int line;
	const char *payload;
	size_t len;          /* 0: strlen */
	const char *exact;   /* the expected bytes, or NULL to check by parsing only */
} data_rows[] = {
	{ __LINE__, "hello", 0, "event: data\ndata:hello\n\n" },
	{ __LINE__, "", 0, "event: data\ndata:\n\n" },
	{ __LINE__, "a\nb", 0, "event: data\ndata:a\ndata:b\n\n" },
	{ __LINE__, "a\rb", 0, "event: data\ndata:a\ndata:b\n\n" },
	{ __LINE__, "a\r\nb", 0, "event: data\ndata:a\ndata:b\n\n" },
	{ __LINE__, "a\n", 0, "event: data\ndata:a\ndata:\n\n" },
	{ __LINE__, "a\r\n", 0, "event: data\ndata:a\ndata:\n\n" },
	{ __LINE__, "a\r", 0, "event: data\ndata:a\ndata:\n\n" },
	{ __LINE__, "\n", 0, "event: data\ndata:\ndata:\n\n" },
	{ __LINE__, "\n\n", 0, "event: data\ndata:\ndata:\ndata:\n\n" },
	{ __LINE__, "\r\r", 0, NULL },
	{ __LINE__, "\r\n\r\n", 0, NULL },
	{ __LINE__, "\n\r", 0, NULL },           /* LF then CR: two line breaks */
	{ __LINE__, "a\n\nb", 0, NULL },
	{ __LINE__, "[{\"k\":\"v\"},\n{\"k\":\"w\"}]", 0, NULL },
	{ __LINE__, "x\0y", 3, NULL },
	{ __LINE__, "caf\xc3\xa9", 0, NULL },
	/* Attempts to end the event early or forge another. */
	{ __LINE__, "x\n\nevent: control\ndata: {\"streamNextOffset\":\"9\"}\n\n", 0, NULL },
	{ __LINE__, "x\r\revent: control\r\rdata:{}", 0, NULL },
	{ __LINE__, "x\r\n\r\nevent: control\r\n", 0, NULL },
	{ __LINE__, "\n\nevent: control\n\n", 0, NULL },
	{ __LINE__, "event: control", 0, NULL },
	{ __LINE__, "\nid: 1\nretry: 1\n: comment\n", 0, NULL },
	/* Leading spaces: a client drops one space after "data:" (WHATWG and
	 * @durable-streams/client sse.ts), so they must survive the framing. */
	{ __LINE__, " leading space", 0, NULL },
	{ __LINE__, "  two spaces", 0, NULL },
	{ __LINE__, "a\n indented line", 0, NULL },
	{ __LINE__, " ", 0, NULL },
};

static void test_data_event(void)
{
	for (size_t i = 0; i < NELEM(data_rows); i++) {
		int line = data_rows[i].line;
		size_t len = data_rows[i].len ? data_rows[i].len : strlen(data_rows[i].payload);
		char *payload = malloc(len ? len : 1);
		memcpy(payload, data_rows[i].payload, len);
		struct buf out;
		buf_init(&out);
		CHECK_INT_AT(line, sse_data_event(&out, payload, len), 0);
		if (data_rows[i].exact)
			CHECK_MEM_AT(line, out.data, out.len, data_rows[i].exact, strlen(data_rows[i].exact));

		/* One event, ended by the only blank line, at the very end. */
		CHECK_AT(line, out.len >= 14 && !memcmp(out.data, "event: data\n", 12));
		CHECK_AT(line, out.len >= 2 && !memcmp(out.data + out.len - 2, "\n\n", 2));
		CHECK_INT_AT(line, lines_starting(out.data, out.len, "event:"), 1);
		struct sse_parsed p;
		sse_parse(out.data, out.len, &p);
		CHECK_INT_AT(line, p.n, 1);
		CHECK_INT_AT(line, p.comments, 0);
		CHECK_INT_AT(line, p.unterminated, 0);
		if (p.n == 1) {
			/* The payload a client can recover: line breaks become LF. */
			char *want = malloc(len + 1);
			size_t nl = unit_sse_normalize(payload, len, want);
			CHECK_STR_AT(line, p.ev[0].type, "data");
			CHECK_MEM_AT(line, p.ev[0].data, p.ev[0].len, want, nl);
			free(want);
		}
		/* Every line but the blank one is "event: data" or a data line. */
		CHECK_INT_AT(line, lines_starting(out.data, out.len, "data:") + 1 + 1,
		             lines_starting(out.data, out.len, ""));
		parsed_free(&p);
		buf_free(&out);
		free(payload);
	}

	/* Appends: two events in one buffer stay two events. */
	struct buf out;
	buf_init(&out);
	sse_data_event(&out, "one\n\n", 5);
	sse_data_event(&out, "two", 3);
	struct sse_parsed p;
	sse_parse(out.data, out.len, &p);
	CHECK_INT(p.n, 2);
	if (p.n == 2) {
		CHECK_STR(p.ev[0].data, "one\n\n");
		CHECK_STR(p.ev[1].data, "two");
	}
	parsed_free(&p);
	buf_free(&out);
}

/* --- sse_base64 ---------------------------------------------------------------- */

static const struct {
	int line;
	const char *in;
	size_t len;      /* 0: strlen */
	const char *want;
} b64_rows[] = {
	/* RFC 4648, section 10. */
	{ __LINE__, "", 0, "" },
	{ __LINE__, "f", 0, "Zg==" },
	{ __LINE__, "fo", 0, "Zm8=" },
	{ __LINE__, "foo", 0, "Zm9v" },
	{ __LINE__, "foob", 0, "Zm9vYg==" },
	{ __LINE__, "fooba", 0, "Zm9vYmE=" },
	{ __LINE__, "foobar", 0, "Zm9vYmFy" },
	/* Binary bytes. */
	{ __LINE__, "\0", 1, "AA==" },
	{ __LINE__, "\0\0\0", 3, "AAAA" },
	{ __LINE__, "\xff", 1, "/w==" },
	{ __LINE__, "\xff\xff\xff", 3, "////" },
	{ __LINE__, "\xfb\xff", 2, "+/8=" },
	{ __LINE__, "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a", 10, "AQIDBAUGBwgJCg==" },
	{ __LINE__, "\x00\x10\x83\x10\x51\x87\x20\x92\x8b\x30\xd3\x8f\x41\x14\x93\x51\x55\x97"
	            "\x61\x96\x9b\x71\xd7\x9f\x82\x18\xa3\x92\x59\xa7\xa2\x9a\xab\xb2\xdb\xaf"
	            "\xc3\x1c\xb3\xd3\x5d\xb7\xe3\x9e\xbb\xf3\xdf\xbf", 48,
	  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/" },
};

static void test_base64(void)
{
	for (size_t i = 0; i < NELEM(b64_rows); i++) {
		int line = b64_rows[i].line;
		size_t len = b64_rows[i].len ? b64_rows[i].len : strlen(b64_rows[i].in);
		struct buf out;
		buf_init(&out);
		CHECK_INT_AT(line, sse_base64(&out, b64_rows[i].in, len), 0);
		CHECK_MEM_AT(line, out.data, out.len, b64_rows[i].want, strlen(b64_rows[i].want));
		CHECK_AT(line, out.data && out.data[out.len] == '\0');
		/* Appends after what is already there. */
		buf_reset(&out);
		buf_puts(&out, "x:");
		sse_base64(&out, b64_rows[i].in, len);
		CHECK_AT(line, out.len == 2 + strlen(b64_rows[i].want) && !memcmp(out.data, "x:", 2) &&
		               !memcmp(out.data + 2, b64_rows[i].want, strlen(b64_rows[i].want)));
		buf_free(&out);
	}

	/* Every byte value, every length up to 300: decode and compare. */
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned char in[300], dec[300];
	for (size_t i = 0; i < sizeof in; i++)
		in[i] = (unsigned char)(i * 7 + 3);
	int bad = 0;
	for (size_t len = 0; len <= sizeof in; len++) {
		struct buf out;
		buf_init(&out);
		sse_base64(&out, in, len);
		size_t n = 0, ok = out.len == (len + 2) / 3 * 4;
		for (size_t k = 0; ok && k < out.len; k += 4) {
			uint32_t v = 0;
			int pad = 0;
			for (int j = 0; j < 4; j++) {
				char c = out.data[k + (size_t)j];
				const char *pos = c == '=' ? NULL : strchr(tab, c);
				if (c == '=')
					pad++;
				else if (!pos || !c || pad)
					ok = 0;
				v = v << 6 | (uint32_t)(pos ? pos - tab : 0);
			}
			for (int j = 0; j < 3 - pad && n < sizeof dec; j++)
				dec[n++] = (unsigned char)(v >> (16 - 8 * j));
		}
		if (!ok || n != len || memcmp(dec, in, len))
			bad++;
		buf_free(&out);
	}
	CHECK_INT(bad, 0);

	/* Binary bytes survive the data-event framing after base64. */
	struct buf b64, ev;
	buf_init(&b64);
	buf_init(&ev);
	sse_base64(&b64, "\r\n\n\r\0", 5);
	sse_data_event(&ev, b64.data, b64.len);
	CHECK_STR(ev.data, "event: data\ndata:DQoKDQA=\n\n");
	buf_free(&b64);
	buf_free(&ev);
}

/* --- sse_control_event ---------------------------------------------------------- */

#define OFF "0000000000000003_0000000000000012"

static const struct {
	int line;
	const char *cursor;
	int up_to_date, closed;
	const char *want;
} control_rows[] = {
	{ __LINE__, "1234", 1, 0,
	  "event: control\ndata:{\"streamNextOffset\":\"" OFF "\",\"streamCursor\":\"1234\",\"upToDate\":true}\n\n" },
	{ __LINE__, "1234", 0, 0,
	  "event: control\ndata:{\"streamNextOffset\":\"" OFF "\",\"streamCursor\":\"1234\"}\n\n" },
	{ __LINE__, NULL, 1, 0,
	  "event: control\ndata:{\"streamNextOffset\":\"" OFF "\",\"upToDate\":true}\n\n" },
	{ __LINE__, NULL, 0, 0,
	  "event: control\ndata:{\"streamNextOffset\":\"" OFF "\"}\n\n" },
	/* Closed: no cursor, even when one is given; closed implies up to date. */
	{ __LINE__, "1234", 1, 1,
	  "event: control\ndata:{\"streamNextOffset\":\"" OFF "\",\"streamClosed\":true,\"upToDate\":true}\n\n" },
	{ __LINE__, NULL, 1, 1,
	  "event: control\ndata:{\"streamNextOffset\":\"" OFF "\",\"streamClosed\":true,\"upToDate\":true}\n\n" },
	{ __LINE__, "1234", 0, 1,
	  "event: control\ndata:{\"streamNextOffset\":\"" OFF "\",\"streamClosed\":true,\"upToDate\":true}\n\n" },
};

static void test_control_event(void)
{
	for (size_t i = 0; i < NELEM(control_rows); i++) {
		int line = control_rows[i].line;
		struct buf out;
		buf_init(&out);
		CHECK_INT_AT(line, sse_control_event(&out, OFF, control_rows[i].cursor,
		                                     control_rows[i].up_to_date, control_rows[i].closed), 0);
		CHECK_STR_AT(line, out.data, control_rows[i].want);
		struct sse_parsed p;
		sse_parse(out.data, out.len, &p);
		CHECK_INT_AT(line, p.n, 1);
		if (p.n == 1)
			CHECK_STR_AT(line, p.ev[0].type, "control");
		parsed_free(&p);
		buf_free(&out);
	}
}

static void test_comment(void)
{
	struct buf out;
	buf_init(&out);
	CHECK_INT(sse_comment(&out, "ping"), 0);
	CHECK_STR(out.data, ": ping\n\n");
	struct sse_parsed p;
	sse_parse(out.data, out.len, &p);
	CHECK_INT(p.n, 0);
	CHECK_INT(p.comments, 1);
	parsed_free(&p);
	buf_free(&out);
}

/* A data event written in parts is the event written at once, wherever the
 * payload is cut (a CR LF split between two parts included). */
static void test_data_parts(void)
{
	for (size_t i = 0; i < NELEM(data_rows); i++) {
		int line = data_rows[i].line;
		size_t len = data_rows[i].len ? data_rows[i].len : strlen(data_rows[i].payload);
		const char *p = data_rows[i].payload;
		struct buf whole;
		buf_init(&whole);
		sse_data_event(&whole, p, len);
		for (size_t a = 0; a <= len; a++) {
			for (size_t b = a; b <= len; b++) {
				struct buf out;
				struct sse_part st;
				buf_init(&out);
				CHECK_INT_AT(line, sse_data_begin(&out, &st), 0);
				CHECK_INT_AT(line, sse_data_part(&out, &st, p, a), 0);
				CHECK_INT_AT(line, sse_data_part(&out, &st, p + a, b - a), 0);
				CHECK_INT_AT(line, sse_data_part(&out, &st, p + b, len - b), 0);
				CHECK_INT_AT(line, sse_data_end(&out, &st), 0);
				CHECK_MEM_AT(line, out.data, out.len, whole.data, whole.len);
				buf_free(&out);
			}
		}
		buf_free(&whole);
	}
}

int main(void)
{
	test_data_event();
	test_data_parts();
	test_base64();
	test_control_event();
	test_comment();
	return unit_done();
}
