/* state.c: State Protocol change events: parse and validate, write snapshots.
 *
 * The parser walks the raw bytes rather than building a cJSON tree: it needs
 * the exact bytes of "value" (stored and served verbatim, never re-printed)
 * and the full decoded type and key (cJSON stops a string at \u0000). */
#include "core/state.h"
#include "lib/num.h"
#include "lib/limits.h"
#include "lib/parse.h"

#include <string.h>

struct cur {
	const char *p, *end;
};

/* A destination for decoded string bytes: a fixed buffer (names and
 * enumerated values) or the arena (type and key). */
struct sink {
	char *fixed;
	size_t cap, len;
	int overflow;
	struct buf *arena;
};

static void sink_put(struct sink *s, const void *p, size_t n)
{
	if (s->arena) {
		buf_append(s->arena, p, n);
	} else if (s->len + n <= s->cap) {
		memcpy(s->fixed + s->len, p, n);
	} else {
		s->overflow = 1;
	}
	s->len += n;
}

static void ws(struct cur *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

static int hex4(const char *p, const char *end, unsigned *out)
{
	unsigned v = 0;
	if (end - p < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		int d = num_hex_digit(p[i]);
		if (d < 0)
			return -1;
		v = v << 4 | (unsigned)d;
	}
	*out = v;
	return 0;
}

static void put_utf8(struct sink *s, unsigned cp)
{
	unsigned char u[4];
	size_t n;
	if (cp < 0x80) {
		u[0] = (unsigned char)cp; n = 1;
	} else if (cp < 0x800) {
		u[0] = (unsigned char)(0xC0 | (cp >> 6)); u[1] = (unsigned char)(0x80 | (cp & 0x3F)); n = 2;
	} else if (cp < 0x10000) {
		/* Lone surrogates land here too: their generalised 3-byte form. */
		u[0] = (unsigned char)(0xE0 | (cp >> 12)); u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		u[2] = (unsigned char)(0x80 | (cp & 0x3F)); n = 3;
	} else {
		u[0] = (unsigned char)(0xF0 | (cp >> 18)); u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
		u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F)); u[3] = (unsigned char)(0x80 | (cp & 0x3F)); n = 4;
	}
	sink_put(s, u, n);
}

/* Decodes the string literal at c->p (which must be '"') into s. */
static int string(struct cur *c, struct sink *s)
{
	if (c->p >= c->end || *c->p != '"')
		return -1;
	c->p++;
	for (;;) {
		const char *run = c->p;
		while (c->p < c->end && *c->p != '"' && *c->p != '\\' && (unsigned char)*c->p >= 0x20)
			c->p++;
		if (c->p > run)
			sink_put(s, run, (size_t)(c->p - run));
		if (c->p >= c->end || (unsigned char)*c->p < 0x20)
			return -1;
		if (*c->p == '"') {
			c->p++;
			return 0;
		}
		/* An escape. */
		if (c->end - c->p < 2)
			return -1;
		char e = c->p[1], ch;
		c->p += 2;
		switch (e) {
		case '"': ch = '"'; break;
		case '\\': ch = '\\'; break;
		case '/': ch = '/'; break;
		case 'b': ch = '\b'; break;
		case 'f': ch = '\f'; break;
		case 'n': ch = '\n'; break;
		case 'r': ch = '\r'; break;
		case 't': ch = '\t'; break;
		case 'u': {
			unsigned u, lo;
			if (hex4(c->p, c->end, &u))
				return -1;
			c->p += 4;
			if (u >= 0xD800 && u < 0xDC00 && c->end - c->p >= 6 && c->p[0] == '\\' && c->p[1] == 'u' &&
			    !hex4(c->p + 2, c->end, &lo) && lo >= 0xDC00 && lo < 0xE000) {
				c->p += 6;
				u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
			}
			put_utf8(s, u);
			continue;
		}
		default: return -1;
		}
		sink_put(s, &ch, 1);
	}
}

/* Skips one JSON value (already validated by json_split; here only its
 * extent matters, so nested grammar is not checked again). */
static int skip_value(struct cur *c)
{
	if (c->p >= c->end)
		return -1;
	if (*c->p == '"') {
		c->p++;
		while (c->p < c->end && *c->p != '"') {
			if (*c->p == '\\' && c->end - c->p < 2)
				return -1;
			c->p += *c->p == '\\' ? 2 : 1;
		}
		if (c->p >= c->end)
			return -1;
		c->p++;
		return 0;
	}
	if (*c->p == '{' || *c->p == '[') {
		int depth = 0;
		while (c->p < c->end) {
			char ch = *c->p;
			if (ch == '"') {
				if (skip_value(c))
					return -1;
				continue;
			}
			if (ch == '{' || ch == '[') {
				if (++depth > LS_JSON_MAX_DEPTH)
					return -1;
			} else if (ch == '}' || ch == ']') {
				if (--depth == 0) {
					c->p++;
					return 0;
				}
			}
			c->p++;
		}
		return -1;
	}
	const char *start = c->p;
	while (c->p < c->end && !strchr(",}] \t\r\n", *c->p))
		c->p++;
	return c->p > start ? 0 : -1;
}

/* Decodes a short string (a member name or an enumerated value) into out
 * (NUL terminated); a longer one yields "" so it matches nothing. */
static int short_string(struct cur *c, char *out, size_t cap)
{
	struct sink s = { out, cap - 1, 0, 0, NULL };
	if (string(c, &s))
		return -1;
	out[s.overflow ? 0 : s.len] = '\0';
	if (!s.overflow && memchr(out, '\0', s.len))
		out[0] = '\0'; /* an embedded \u0000 matches no name either */
	return 0;
}

/* Calls fn for each member of the object at c->p with its decoded name and
 * the cursor on its value; fn must consume the value. */
typedef const char *(*member_fn)(void *ctx, const char *name, struct cur *c);

static const char *object(struct cur *c, member_fn fn, void *ctx)
{
	char name[16];
	if (c->p >= c->end || *c->p != '{')
		return "not a JSON object";
	c->p++;
	ws(c);
	if (c->p < c->end && *c->p == '}') {
		c->p++;
		return NULL;
	}
	for (;;) {
		ws(c);
		if (short_string(c, name, sizeof name))
			return "malformed JSON";
		ws(c);
		if (c->p >= c->end || *c->p != ':')
			return "malformed JSON";
		c->p++;
		ws(c);
		const char *why = fn(ctx, name, c);
		if (why)
			return why;
		ws(c);
		if (c->p < c->end && *c->p == ',') {
			c->p++;
			continue;
		}
		if (c->p < c->end && *c->p == '}') {
			c->p++;
			return NULL;
		}
		return "malformed JSON";
	}
}

/* --- the event ------------------------------------------------------------------ */

enum { M_TYPE = 1, M_KEY = 2, M_VALUE = 4, M_OLD = 8, M_HEADERS = 16,
       H_OPERATION = 1, H_CONTROL = 2, H_TXID = 4, H_TIMESTAMP = 8, H_OFFSET = 16 };

struct parse {
	const char *msg;
	unsigned seen, hseen;
	int op, control;
	struct cur type, key;       /* where the type and key strings start */
	size_t value_off, value_len;
};

static int lookup(const char *s, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(s, names[i]))
			return i;
	return -1;
}

static const char *header_member(void *vctx, const char *name, struct cur *c)
{
	static const char *const ops[] = { "insert", "update", "upsert", "delete" };
	static const char *const controls[] = { "snapshot-start", "snapshot-end", "reset" };
	static const char *const names[] = { "operation", "control", "txid", "timestamp", "offset" };
	struct parse *ps = vctx;
	char v[48];
	int which = lookup(name, names, 5);
	if (which < 0)
		return skip_value(c) ? "malformed JSON" : NULL; /* other headers are free-form */
	if (ps->hseen & (1u << which))
		return "duplicate member in headers";
	ps->hseen |= 1u << which;
	if (c->p >= c->end || *c->p != '"') {
		static const char *const need[] = {
			"headers.operation must be a string", "headers.control must be a string",
			"headers.txid must be a string", "headers.timestamp must be a string",
			"headers.offset must be a string" };
		return need[which];
	}
	if (which == 3) {
		/* timestamp: RFC 3339 */
		struct sink s = { v, sizeof v - 1, 0, 0, NULL };
		int64_t ms;
		if (string(c, &s))
			return "malformed JSON";
		if (s.overflow || parse_expires_at(v, s.len, &ms))
			return "headers.timestamp must be an RFC 3339 timestamp";
		return NULL;
	}
	const char *start = c->p;
	if (short_string(c, v, sizeof v))
		return "malformed JSON";
	switch (which) {
	case 0:
		if ((ps->op = lookup(v, ops, 4)) < 0)
			return "headers.operation must be insert, update, upsert or delete";
		break;
	case 1:
		if ((ps->control = lookup(v, controls, 3)) < 0)
			return "headers.control must be snapshot-start, snapshot-end or reset";
		break;
	default:
		/* txid and offset: non-empty strings */
		if (c->p - start == 2)
			return which == 2 ? "headers.txid must not be empty" : "headers.offset must not be empty";
		break;
	}
	return NULL;
}

static const char *top_member(void *vctx, const char *name, struct cur *c)
{
	static const char *const names[] = { "type", "key", "value", "old_value", "headers" };
	struct parse *ps = vctx;
	int which = lookup(name, names, 5);
	if (which < 0)
		return "unknown member: a change event has only type, key, value, old_value and headers";
	if (ps->seen & (1u << which))
		return "duplicate member";
	ps->seen |= 1u << which;
	const char *start = c->p;
	switch (which) {
	case 0:
	case 1:
		if (c->p >= c->end || *c->p != '"')
			return which == 0 ? "type must be a string" : "key must be a string";
		*(which == 0 ? &ps->type : &ps->key) = *c;
		return skip_value(c) ? "malformed JSON" : NULL;
	case 4:
		if (c->p >= c->end || *c->p != '{')
			return "headers must be an object";
		return object(c, header_member, ps);
	default:
		if (skip_value(c))
			return "malformed JSON";
		if (which == 2) {
			ps->value_off = (size_t)(start - ps->msg);
			ps->value_len = (size_t)(c->p - start);
		}
		return NULL;
	}
}

int state_op_sets(enum state_op op)
{
	return op == STATE_INSERT || op == STATE_UPDATE || op == STATE_UPSERT;
}

/* The row key of a change event into the arena: be16 type length, type,
 * key (both decoded); fills ev's key and value. Returns 0, or -1 with why
 * (NULL when out of memory) and the arena as it was. */
static int row_key(struct parse *ps, struct state_event *ev, struct buf *arena, const char **why)
{
	size_t mark = arena->len;
	unsigned char hdr[2] = { 0, 0 };
	struct sink s = { NULL, 0, 0, 0, arena };
	buf_append(arena, hdr, 2);
	if (string(&ps->type, &s)) {
		*why = "malformed JSON";
		goto fail;
	}
	size_t tlen = s.len;
	if (string(&ps->key, &s)) {
		*why = "malformed JSON";
		goto fail;
	}
	if (tlen == 0 || s.len == tlen) {
		*why = tlen == 0 ? "type must not be empty" : "key must not be empty";
		goto fail;
	}
	if (s.len + 2 > STATE_MAX_ROW_KEY) {
		*why = "type and key are too long (at most 498 bytes together after decoding)";
		goto fail;
	}
	if (arena->failed) {
		*why = NULL;
		goto fail;
	}
	arena->data[mark] = (char)(tlen >> 8);
	arena->data[mark + 1] = (char)tlen;
	ev->rk_off = (uint32_t)mark;
	ev->rk_len = (uint16_t)(s.len + 2);
	if (ps->seen & M_VALUE) {
		ev->value_off = (uint32_t)ps->value_off;
		ev->value_len = (uint32_t)ps->value_len;
	}
	return 0;
fail:
	arena->len = mark;
	return -1;
}

int state_parse(const char *msg, size_t len, struct state_event *ev, struct buf *arena,
                const char **why)
{
	struct parse ps = { .msg = msg, .op = -1, .control = -1 };
	struct cur c = { msg, msg + len };

	ws(&c);
	if (c.p >= c.end || *c.p != '{') {
		*why = "a State stream message must be a JSON object (a change event or a control message)";
		return -1;
	}
	*why = object(&c, top_member, &ps);
	if (*why)
		return -1;
	ws(&c);
	if (c.p != c.end) {
		*why = "malformed JSON";
		return -1;
	}
	if (!(ps.seen & M_HEADERS)) {
		*why = "missing headers (with operation or control)";
		return -1;
	}
	memset(ev, 0, sizeof *ev);
	if (ps.hseen & H_CONTROL) {
		if (ps.hseen & H_OPERATION) {
			*why = "headers cannot hold both operation and control";
			return -1;
		}
		if (ps.seen & ~(unsigned)M_HEADERS) {
			*why = "a control message has only headers";
			return -1;
		}
		ev->op = (uint8_t)(STATE_SNAPSHOT_START + ps.control);
		return 0;
	}
	if (!(ps.hseen & H_OPERATION)) {
		*why = "missing headers.operation (or headers.control)";
		return -1;
	}
	if (!(ps.seen & M_TYPE)) {
		*why = "missing type";
		return -1;
	}
	if (!(ps.seen & M_KEY)) {
		*why = "missing key";
		return -1;
	}
	ev->op = (uint8_t)(STATE_INSERT + ps.op);
	if (state_op_sets((enum state_op)ev->op) && !(ps.seen & M_VALUE)) {
		*why = "missing value (required for insert, update and upsert)";
		return -1;
	}

	return row_key(&ps, ev, arena, why);
}

/* --- snapshots ----------------------------------------------------------------- */

int state_put_string(struct buf *out, const unsigned char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	buf_append(out, "\"", 1);
	size_t run = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = s[i];
		char esc[8];
		size_t n = 0;
		if (ch == '"' || ch == '\\') {
			esc[0] = '\\'; esc[1] = (char)ch; n = 2;
		} else if (ch < 0x20) {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[ch >> 4]; esc[5] = hex[ch & 15]; n = 6;
		} else if (ch == 0xED && i + 2 < len && s[i + 1] >= 0xA0) {
			/* A lone surrogate kept in its 3-byte form. */
			unsigned u = 0xD000 | ((unsigned)(s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F);
			esc[0] = '\\'; esc[1] = 'u';
			esc[2] = hex[u >> 12]; esc[3] = hex[(u >> 8) & 15]; esc[4] = hex[(u >> 4) & 15]; esc[5] = hex[u & 15];
			n = 6;
		} else {
			continue;
		}
		buf_append(out, s + run, i - run);
		buf_append(out, esc, n);
		if (ch == 0xED)
			i += 2;
		run = i + 1;
	}
	buf_append(out, s + run, len - run);
	buf_append(out, "\"", 1);
	return out->failed ? -1 : 0;
}

int state_put_row(struct buf *out, const unsigned char *rk, size_t rk_len,
                  const char *value, size_t value_len)
{
	if (rk_len < 2)
		return -1;
	size_t tlen = ((size_t)rk[0] << 8) | rk[1];
	if (tlen > rk_len - 2)
		return -1;
	buf_puts(out, "{\"type\":");
	state_put_string(out, rk + 2, tlen);
	buf_puts(out, ",\"key\":");
	state_put_string(out, rk + 2 + tlen, rk_len - 2 - tlen);
	buf_puts(out, ",\"value\":");
	buf_append(out, value, value_len);
	buf_puts(out, ",\"headers\":{\"operation\":\"insert\"}}");
	return out->failed ? -1 : 0;
}

int state_put_control(struct buf *out, const char *control, const char *offset)
{
	buf_printf(out, "{\"headers\":{\"control\":\"%s\",\"offset\":\"%s\"}}", control, offset);
	return out->failed ? -1 : 0;
}
