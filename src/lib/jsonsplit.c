/* jsonsplit.c: a non-allocating strict JSON validator and message splitter. */
#include "lib/jsonsplit.h"
#include "lib/num.h"
#include "lib/limits.h"

#include <stdint.h>

struct jp {
	const unsigned char *s;
	size_t len, i;
	const char *why;
};

static int fail(struct jp *p, const char *why)
{
	if (!p->why)
		p->why = why;
	return -1;
}

static void skip_ws(struct jp *p)
{
	while (p->i < p->len) {
		unsigned char c = p->s[p->i];
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		p->i++;
	}
}

/* Validates one UTF-8 sequence starting at p->i (first byte >= 0x80). */
static int utf8(struct jp *p)
{
	const unsigned char *s = p->s;
	size_t i = p->i, n;
	unsigned char c = s[i];
	uint32_t cp, min;

	if (c >= 0xc2 && c <= 0xdf) { n = 1; cp = c & 0x1f; min = 0x80; }
	else if (c >= 0xe0 && c <= 0xef) { n = 2; cp = c & 0x0f; min = 0x800; }
	else if (c >= 0xf0 && c <= 0xf4) { n = 3; cp = c & 0x07; min = 0x10000; }
	else return fail(p, "invalid UTF-8");
	if (p->len - i <= n)
		return fail(p, "invalid UTF-8");
	for (size_t k = 1; k <= n; k++) {
		if ((s[i + k] & 0xc0) != 0x80)
			return fail(p, "invalid UTF-8");
		cp = (cp << 6) | (s[i + k] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return fail(p, "invalid UTF-8");
	p->i = i + n + 1;
	return 0;
}

static int hex4(struct jp *p)
{
	if (p->len - p->i < 4)
		return fail(p, "bad \\u escape");
	for (int k = 0; k < 4; k++) {
		if (num_hex_digit(p->s[p->i + (size_t)k]) < 0)
			return fail(p, "bad \\u escape");
	}
	p->i += 4;
	return 0;
}

static int string(struct jp *p)
{
	p->i++; /* opening quote */
	while (p->i < p->len) {
		unsigned char c = p->s[p->i];
		if (c == '"') {
			p->i++;
			return 0;
		}
		if (c < 0x20)
			return fail(p, "control character in string");
		if (c == '\\') {
			if (++p->i >= p->len)
				break;
			c = p->s[p->i++];
			if (c == 'u') {
				if (hex4(p))
					return -1;
			} else if (!(c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' ||
			             c == 'n' || c == 'r' || c == 't')) {
				return fail(p, "bad escape in string");
			}
			continue;
		}
		if (c >= 0x80) {
			if (utf8(p))
				return -1;
			continue;
		}
		p->i++;
	}
	return fail(p, "unterminated string");
}

static int digits(struct jp *p)
{
	size_t start = p->i;
	while (p->i < p->len && p->s[p->i] >= '0' && p->s[p->i] <= '9')
		p->i++;
	return p->i > start ? 0 : -1;
}

static int number(struct jp *p)
{
	if (p->s[p->i] == '-')
		p->i++;
	if (p->i < p->len && p->s[p->i] == '0') {
		p->i++;
	} else if (digits(p)) {
		return fail(p, "bad number");
	}
	if (p->i < p->len && p->s[p->i] == '.') {
		p->i++;
		if (digits(p))
			return fail(p, "bad number");
	}
	if (p->i < p->len && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
		p->i++;
		if (p->i < p->len && (p->s[p->i] == '+' || p->s[p->i] == '-'))
			p->i++;
		if (digits(p))
			return fail(p, "bad number");
	}
	return 0;
}

static int literal(struct jp *p, const char *word, size_t n)
{
	if (p->len - p->i < n)
		return fail(p, "unexpected token");
	for (size_t k = 0; k < n; k++)
		if (p->s[p->i + k] != (unsigned char)word[k])
			return fail(p, "unexpected token");
	p->i += n;
	return 0;
}

static int value(struct jp *p, int depth);

static int container(struct jp *p, int depth, unsigned char close)
{
	if (depth >= LS_JSON_MAX_DEPTH)
		return fail(p, "nesting too deep");
	p->i++;
	skip_ws(p);
	if (p->i < p->len && p->s[p->i] == close) {
		p->i++;
		return 0;
	}
	for (;;) {
		if (close == '}') {
			skip_ws(p);
			if (p->i >= p->len || p->s[p->i] != '"')
				return fail(p, "expected object key");
			if (string(p))
				return -1;
			skip_ws(p);
			if (p->i >= p->len || p->s[p->i] != ':')
				return fail(p, "expected ':'");
			p->i++;
		}
		if (value(p, depth + 1))
			return -1;
		skip_ws(p);
		if (p->i >= p->len)
			return fail(p, "unexpected end of input");
		unsigned char c = p->s[p->i++];
		if (c == close)
			return 0;
		if (c != ',')
			return fail(p, close == ']' ? "expected ',' or ']'" : "expected ',' or '}'");
	}
}

static int value(struct jp *p, int depth)
{
	skip_ws(p);
	if (p->i >= p->len)
		return fail(p, "unexpected end of input");
	switch (p->s[p->i]) {
	case '{': return container(p, depth, '}');
	case '[': return container(p, depth, ']');
	case '"': return string(p);
	case 't': return literal(p, "true", 4);
	case 'f': return literal(p, "false", 5);
	case 'n': return literal(p, "null", 4);
	default:
		if (p->s[p->i] == '-' || (p->s[p->i] >= '0' && p->s[p->i] <= '9'))
			return number(p);
		return fail(p, "unexpected token");
	}
}

int json_split(const char *s, size_t len, json_message_fn fn, void *ctx,
               size_t *count, const char **why)
{
	struct jp p = { (const unsigned char *)s, len, 0, NULL };

	*count = 0;
	if (value(&p, 0))
		goto invalid;
	skip_ws(&p);
	if (p.i != len) {
		fail(&p, "trailing data after JSON value");
		goto invalid;
	}

	/* Valid: walk again to hand out the messages. */
	p.i = 0;
	skip_ws(&p);
	if (p.s[p.i] != '[') {
		size_t start = p.i;
		value(&p, 0);
		*count = 1;
		return fn ? fn(ctx, s + start, p.i - start) : 0;
	}
	p.i++;
	skip_ws(&p);
	if (p.s[p.i] == ']')
		return 0;
	for (;;) {
		skip_ws(&p);
		size_t start = p.i;
		value(&p, 1);
		(*count)++;
		if (fn) {
			int rc = fn(ctx, s + start, p.i - start);
			if (rc)
				return rc;
		}
		skip_ws(&p);
		if (p.s[p.i++] == ']')
			return 0;
	}
invalid:
	*why = p.why ? p.why : "invalid JSON";
	return -1;
}
