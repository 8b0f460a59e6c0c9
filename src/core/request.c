/* request.c: parses a request once, driven by one table of its fields
 * (query parameters and headers), then checks the rules that tie fields
 * together. The only module that reads the query string or a raw header. */
#include "core/request.h"
#include "lib/num.h"
#include "lib/parse.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* How a field's value is parsed, and where it goes in struct req (at off;
 * aux is the offset of its companion: a presence flag (int) or a length
 * (size_t), as the kind says). */
enum field_kind {
	K_OFFSET,     /* struct offset; aux: int flag */
	K_LIVE,       /* enum live_mode */
	K_CURSOR,     /* char[24], kept only when it fits; never fails */
	K_TOKEN,      /* struct snap_token; aux: int flag (present); "" is the first page */
	K_STATE,      /* int: "", "true" or "1" */
	K_POSITIVE,   /* uint64_t, 1..max digits, not 0 */
	K_PRESENT,    /* int: set when the parameter is there at all */
	K_MEDIA,      /* struct media; never fails (the method's rules decide) */
	K_COUNT,      /* uint64_t, "0" or digits without a leading zero; aux: int flag */
	K_EXPIRES,    /* int64_t ms; aux: const char * (the safe raw value) */
	K_TRUE,       /* int: "true", any case */
	K_SAFE,       /* const char *, printable, 1..max bytes; aux: size_t length */
	K_UINT53,     /* uint64_t, at most 2^53 - 1 */
	K_PATH,       /* struct stream_name under the prefix; aux: int flag */
	K_RAW,        /* const char *, as sent */
	K_CRED,       /* char[LS_MAX_TOKEN + 1]: the query's token (find_credential decides) */
};

#define IN_QUERY ((enum proto_hdr)-1)
#define NO_AUX ((size_t)-1)
#define BIT(m) (1u << (m))
#define F(member) offsetof(struct req, member)
#define ALL_METHODS (BIT(M_GET) | BIT(M_HEAD) | BIT(M_PUT) | BIT(M_POST) | BIT(M_DELETE))

struct field {
	const char *name;       /* query parameter name, or NULL */
	enum proto_hdr hdr;     /* header, or IN_QUERY */
	enum field_kind kind;
	unsigned methods;       /* BIT(M_...) of the methods that read it */
	size_t max;             /* bytes, or digits for numbers */
	size_t off, aux;
	enum proto_err bad;     /* an invalid value */
	enum proto_err twice;   /* a repeated query parameter; E_OK: the first counts */
};

#define SNAP_TOKEN_MAX (2 * STATE_MAX_ROW_KEY + 48)

/* In the order they are checked: the first error found is the answer. */
static const struct field fields[] = {
	/* GET */
	{ "offset", IN_QUERY, K_OFFSET, BIT(M_GET), 64, F(offset), F(has_offset), E_OFFSET, E_OFFSET_TWICE },
	{ "live", IN_QUERY, K_LIVE, BIT(M_GET), 16, F(live), NO_AUX, E_LIVE, E_LIVE_TWICE },
	{ "snapshot", IN_QUERY, K_TOKEN, BIT(M_GET), SNAP_TOKEN_MAX, F(token), F(snapshot), E_SNAPSHOT_TOKEN, E_SNAPSHOT_TWICE },
	{ "cursor", IN_QUERY, K_CURSOR, BIT(M_GET), 23, F(cursor), NO_AUX, E_OK, E_OK },
	{ NULL, H_IF_NONE_MATCH, K_RAW, BIT(M_GET), 0, F(if_none_match), NO_AUX, E_OK, E_OK },
	/* PUT: a fork, then the stream's configuration */
	{ NULL, H_FORKED_FROM, K_PATH, BIT(M_PUT), 0, F(fork_src), F(is_fork), E_FORKED_FROM, E_OK },
	{ NULL, H_FORK_OFFSET, K_OFFSET, BIT(M_PUT), 64, F(fork_offset), F(has_fork_offset), E_FORK_OFFSET, E_OK },
	{ NULL, H_FORK_SUB_OFFSET, K_COUNT, BIT(M_PUT), 10, F(fork_sub), NO_AUX, E_FORK_SUB_OFFSET, E_OK },
	{ "state", IN_QUERY, K_STATE, BIT(M_PUT), 4, F(state), NO_AUX, E_STATE_PARAM, E_STATE_PARAM },
	{ "retention-age", IN_QUERY, K_POSITIVE, BIT(M_PUT), 15, F(ret_age_s), NO_AUX, E_RETENTION_AGE, E_RETENTION_AGE },
	{ "retention-bytes", IN_QUERY, K_POSITIVE, BIT(M_PUT), 15, F(ret_bytes), NO_AUX, E_RETENTION_BYTES, E_RETENTION_BYTES },
	{ NULL, H_STREAM_TTL, K_COUNT, BIT(M_PUT), 10, F(ttl_s), F(has_ttl), E_TTL, E_OK },
	{ NULL, H_STREAM_EXPIRES_AT, K_EXPIRES, BIT(M_PUT), LS_MAX_EXPIRES_AT, F(expires_ms), F(expires_at), E_EXPIRES_AT, E_OK },
	/* PUT and POST */
	{ NULL, H_CONTENT_TYPE, K_MEDIA, BIT(M_PUT) | BIT(M_POST), LS_MAX_CONTENT_TYPE, F(ct), NO_AUX, E_OK, E_OK },
	{ NULL, H_STREAM_CLOSED, K_TRUE, BIT(M_PUT) | BIT(M_POST), 0, F(closed), NO_AUX, E_OK, E_OK },
	/* POST */
	{ "compact", IN_QUERY, K_PRESENT, BIT(M_POST), 0, F(compact), NO_AUX, E_OK, E_OK },
	{ NULL, H_PRODUCER_ID, K_SAFE, BIT(M_POST), LS_MAX_PRODUCER_ID, F(producer_id), F(producer_id_len), E_PRODUCER_ID, E_OK },
	{ NULL, H_PRODUCER_EPOCH, K_UINT53, BIT(M_POST), 0, F(producer_epoch), NO_AUX, E_PRODUCER_EPOCH, E_OK },
	{ NULL, H_PRODUCER_SEQ, K_UINT53, BIT(M_POST), 0, F(producer_seq), NO_AUX, E_PRODUCER_SEQ, E_OK },
	{ NULL, H_STREAM_SEQ, K_SAFE, BIT(M_POST), LS_MAX_STREAM_SEQ, F(stream_seq), F(stream_seq_len), E_STREAM_SEQ, E_OK },
	{ NULL, H_IF_MATCH, K_RAW, BIT(M_POST), 0, F(if_match), NO_AUX, E_OK, E_OK },
	/* every method */
	{ "token", IN_QUERY, K_CRED, ALL_METHODS, LS_MAX_TOKEN, F(cred_token), NO_AUX, E_OK, E_OK },
	{ NULL, H_ORIGIN, K_RAW, ALL_METHODS, 0, F(origin), NO_AUX, E_OK, E_OK },
};
#define NFIELDS (sizeof fields / sizeof fields[0])

/* --- values ------------------------------------------------------------- */

enum media_kind media_kind_of(const char *content_type)
{
	char mt[LS_MAX_CONTENT_TYPE + 1];
	if (!content_type || parse_media_type(content_type, strlen(content_type), mt, sizeof mt) < 0)
		return MEDIA_BINARY;
	return parse_media_kind(mt);
}

enum media_kind media_kind_legacy_of(const char *content_type)
{
	char mt[LS_MAX_CONTENT_TYPE + 1];
	if (!content_type || parse_media_type(content_type, strlen(content_type), mt, sizeof mt) < 0)
		return MEDIA_BINARY;
	return parse_media_kind_legacy(mt);
}

int media_same(const char *a, const char *b)
{
	char ma[LS_MAX_CONTENT_TYPE + 1], mb[LS_MAX_CONTENT_TYPE + 1];
	if (!a || !b || parse_media_type(a, strlen(a), ma, sizeof ma) < 0 ||
	    parse_media_type(b, strlen(b), mb, sizeof mb) < 0)
		return 0;
	return !strcmp(ma, mb);
}

static void parse_media(const char *v, size_t len, size_t max, struct media *m)
{
	memset(m, 0, sizeof *m);
	if (!len)
		return; /* an empty Content-Type counts as none */
	m->raw = v;
	if (parse_media_type(v, len, m->type, sizeof m->type) <= 0) {
		m->type[0] = '\0';
		return;
	}
	m->kind = parse_media_kind(m->type);
	/* A stored Content-Type is echoed in headers: printable bytes only. */
	m->valid = !parse_header_safe(v, len, max);
}

void snap_token_format(char *out, size_t cap, uint64_t seq, uint64_t sid,
                       const unsigned char *rk, size_t rk_len)
{
	int n = snprintf(out, cap, "%llu.%llu.", (unsigned long long)seq, (unsigned long long)sid);
	if (n < 0 || (size_t)n + 2 * rk_len + 1 > cap) {
		out[0] = '\0';
		return;
	}
	num_hex_encode(rk, rk_len, out + n);
}

/* "<seq>.<sid>.<hex>", each number at most 19 digits, the key 1..500 bytes. */
static int parse_token(const char *s, size_t len, struct snap_token *t)
{
	const char *d1 = memchr(s, '.', len);
	const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - s)) : NULL;
	if (!d2 || num_decimal(s, (size_t)(d1 - s), 19, &t->seq) ||
	    num_decimal(d1 + 1, (size_t)(d2 - d1 - 1), 19, &t->sid))
		return -1;
	size_t hl = len - (size_t)(d2 + 1 - s);
	if (hl == 0 || hl % 2 || hl / 2 > STATE_MAX_ROW_KEY || num_hex_decode(d2 + 1, hl / 2, t->after))
		return -1;
	t->after_len = hl / 2;
	return 0;
}

static enum proto_err parse_path(const char *v, size_t len, const struct config *cfg,
                                 struct stream_name *n, int source)
{
	switch (parse_stream_path(v, len, cfg->prefix, cfg->max_path, n->s, &n->len)) {
	case PATH_OK: return E_OK;
	case PATH_NOT_PREFIX:
	case PATH_EMPTY: return source ? E_SOURCE_NOT_FOUND : E_NOT_FOUND;
	case PATH_TOO_LONG: return source ? E_FORKED_FROM : E_PATH_TOO_LONG;
	case PATH_BAD_ESCAPE: return source ? E_FORKED_FROM : E_PATH_ESCAPE;
	case PATH_BAD_CHAR: return source ? E_FORKED_FROM : E_PATH_CHAR;
	case PATH_DOT_SEGMENT: return source ? E_FORKED_FROM : E_PATH_DOT;
	case PATH_ENCODED_SLASH: return source ? E_FORKED_FROM : E_PATH_SLASH;
	}
	return E_NOT_FOUND;
}

/* --- one field ------------------------------------------------------------ */

static void set_flag(struct req *r, size_t aux)
{
	if (aux != NO_AUX)
		*(int *)((char *)r + aux) = 1;
}

/* Numbers and flags. Returns 0, or -1 for the field's error. */
static int parse_scalar(const struct field *f, const char *v, size_t len, void *dst)
{
	uint64_t n;
	switch (f->kind) {
	case K_LIVE:
		if (len == 9 && !memcmp(v, "long-poll", 9))
			*(enum live_mode *)dst = LIVE_LONG_POLL;
		else if (len == 3 && !memcmp(v, "sse", 3))
			*(enum live_mode *)dst = LIVE_SSE;
		else if (!(len == 5 && !memcmp(v, "false", 5)))
			return -1;
		return 0;
	case K_STATE:
		*(int *)dst = 1;
		return len == 0 || (len == 4 && !memcmp(v, "true", 4)) || (len == 1 && v[0] == '1') ? 0 : -1;
	case K_POSITIVE:
		if (num_decimal(v, len, f->max, &n) || n == 0)
			return -1;
		*(uint64_t *)dst = n;
		return 0;
	case K_COUNT:
		return parse_ttl(v, len, (uint64_t *)dst);
	case K_UINT53:
		return parse_uint53(v, len, (uint64_t *)dst);
	case K_TRUE:
		*(int *)dst = len == 4 && !strncasecmp(v, "true", 4);
		return 0;
	case K_PRESENT:
		*(int *)dst = 1;
		return 0;
	default:
		return -1;
	}
}

static enum proto_err parse_field(const struct field *f, const char *v, size_t len,
                                  const struct config *cfg, struct req *r)
{
	void *dst = (char *)r + f->off;
	switch (f->kind) {
	case K_OFFSET:
		if (offset_parse(v, len, dst))
			return f->bad;
		break;
	case K_CURSOR:
		if (len < 24) {
			memcpy(dst, v, len);
			((char *)dst)[len] = '\0';
		}
		return E_OK;
	case K_TOKEN:
		r->has_token = len > 0;
		if (len && parse_token(v, len, dst))
			r->token.after_len = (size_t)-1; /* checked with the other snapshot rules */
		break;
	case K_MEDIA:
		parse_media(v, len, f->max, dst);
		return E_OK;
	case K_EXPIRES:
		if (parse_header_safe(v, len, f->max) || parse_expires_at(v, len, dst))
			return f->bad;
		*(const char **)((char *)r + f->aux) = v;
		return E_OK;
	case K_SAFE:
		if (f->hdr == H_PRODUCER_ID && len == 0)
			return E_PRODUCER_ID_EMPTY;
		if (parse_header_safe(v, len, f->max))
			return f->bad;
		*(const char **)dst = v;
		*(size_t *)((char *)r + f->aux) = len;
		return E_OK;
	case K_PATH: {
		enum proto_err e = parse_path(v, strcspn(v, "?#"), cfg, dst, 1);
		if (e)
			return e;
		break;
	}
	case K_RAW:
		*(const char **)dst = v;
		return E_OK;
	case K_CRED:
		memcpy(dst, v, len);
		((char *)dst)[len] = '\0';
		r->cred = CRED_QUERY;
		return E_OK;
	default:
		if (parse_scalar(f, v, len, dst))
			return f->bad;
		break;
	}
	set_flag(r, f->aux);
	return E_OK;
}

/* --- the query string, scanned once -------------------------------------------- */

struct seen {
	int count;
	const char *v;   /* the first occurrence's raw value */
	size_t vlen;
};

static void scan_query(const char *q, size_t qlen, unsigned method, struct seen *seen)
{
	struct query_pair p;
	for (size_t pos = 0; parse_query_next(q, qlen, &pos, &p);) {
		for (size_t k = 0; k < NFIELDS; k++) {
			const struct field *f = &fields[k];
			if (f->hdr != IN_QUERY || !(f->methods & method) || strlen(f->name) != p.klen ||
			    memcmp(f->name, p.key, p.klen))
				continue;
			if (seen[k].count++ == 0) {
				seen[k].v = p.val;
				seen[k].vlen = p.vlen;
			}
		}
	}
}

/* A query field, percent-decoded. */
static enum proto_err query_field(const struct field *f, const struct seen *s,
                                  const struct config *cfg, struct req *r)
{
	char val[(SNAP_TOKEN_MAX > LS_MAX_TOKEN ? SNAP_TOKEN_MAX : LS_MAX_TOKEN) + 1];
	if (s->count > 1 && f->twice != E_OK)
		return f->twice;
	if (f->kind == K_PRESENT)
		return parse_field(f, "", 0, cfg, r); /* whatever its value */
	long n = parse_percent_decode(s->v, s->vlen, val, f->max + 1 < sizeof val ? f->max + 1 : sizeof val);
	if (n < 0 && f->kind == K_CRED) {
		r->cred = CRED_QUERY;
		r->cred_too_long = 1;
		return E_OK;
	}
	if (n < 0)
		return f->kind == K_CURSOR ? E_OK : f->bad;
	return parse_field(f, val, (size_t)n, cfg, r);
}

/* --- the credential ------------------------------------------------------------------ */

/* Takes a credential of len bytes at v into r. */
static void take_credential(struct req *r, enum cred_source src, const char *v, size_t len)
{
	r->cred = src;
	r->cred_too_long = len > LS_MAX_TOKEN;
	if (r->cred_too_long)
		len = 0;
	memcpy(r->cred_token, v, len);
	r->cred_token[len] = '\0';
}

/* The value of cookie name in a Cookie header ("a=1; b=2"), or NULL. */
static const char *cookie_value(const char *h, const char *name, size_t *len)
{
	size_t nl = strlen(name);
	while (*h) {
		h += strspn(h, " \t;");
		size_t n = strcspn(h, ";");
		if (n > nl && h[nl] == '=' && !memcmp(h, name, nl)) {
			*len = n - nl - 1;
			while (*len && (h[nl + *len] == ' ' || h[nl + *len] == '\t'))
				(*len)--;
			return h + nl + 1;
		}
		h += n;
	}
	return NULL;
}

/* One credential counts, in this order: Authorization: Bearer, the cookie
 * auth_cookie, the query parameter token (already read by the table). An
 * Authorization header of another scheme (Basic, from the web server's own
 * authentication) is not a token. */
static void find_credential(const struct proto_request *raw, const struct config *cfg, struct req *r)
{
	const char *a = raw->h[H_AUTHORIZATION], *c = raw->h[H_COOKIE], *v;
	size_t len;
	if (a && !strncasecmp(a, "Bearer", 6) && (a[6] == ' ' || a[6] == '\0')) {
		a += 6 + strspn(a + 6, " ");
		len = strlen(a);
		while (len && a[len - 1] == ' ')
			len--;
		take_credential(r, CRED_BEARER, a, len);
	} else if (c && (v = cookie_value(c, cfg->auth_cookie, &len))) {
		take_credential(r, CRED_COOKIE, v, len);
	}
}

/* The user the web server authenticated, if its name can stand for one
 * path segment: printable, no '/', not "." or "..", at most LS_MAX_USER
 * bytes. Another name gives no identity (the request is then anonymous). */
static const char *usable_user(const char *u)
{
	if (!u || !*u || !strcmp(u, ".") || !strcmp(u, ".."))
		return NULL;
	size_t n = 0;
	for (; u[n]; n++)
		if ((unsigned char)u[n] < 0x20 || u[n] == 0x7f || u[n] == '/' || n >= LS_MAX_USER)
			return NULL;
	return u;
}

/* --- rules between fields --------------------------------------------------------- */

static enum proto_err check_get(struct req *r)
{
	if (r->snapshot) {
		if (r->has_offset)
			return E_SNAPSHOT_OFFSET;
		if (r->live == LIVE_SSE && r->has_token)
			return E_SNAPSHOT_SSE_TOKEN;
		if (r->has_token && r->token.after_len == (size_t)-1)
			return E_SNAPSHOT_TOKEN;
		return E_OK;
	}
	if (r->live != LIVE_NONE && !r->has_offset)
		return r->live == LIVE_SSE ? E_SSE_NEEDS_OFFSET : E_LONGPOLL_NEEDS_OFFSET;
	return E_OK;
}

static enum proto_err check_put(struct req *r, const struct proto_request *raw)
{
	if (!r->is_fork && (raw->h[H_FORK_OFFSET] || raw->h[H_FORK_SUB_OFFSET]))
		return E_FORK_HEADERS_ALONE;
	if (r->fork_sub && !r->has_fork_offset)
		return E_FORK_SUB_NEEDS_OFFSET;
	if (r->state && r->is_fork)
		return E_FORK_STATE;
	if (r->has_ttl && r->expires_at)
		return E_TTL_AND_EXPIRES;
	if (r->ct.raw && !r->ct.valid)
		return E_CONTENT_TYPE;
	if (r->state && r->ct.kind != MEDIA_JSON)
		return E_STATE_NEEDS_JSON;
	return E_OK;
}

static enum proto_err check_post(struct req *r, const struct proto_request *raw)
{
	int nprod = !!raw->h[H_PRODUCER_ID] + !!raw->h[H_PRODUCER_EPOCH] + !!raw->h[H_PRODUCER_SEQ];
	if (r->compact && (r->body_len || r->closed || raw->h[H_PRODUCER_ID] || r->if_match))
		return E_COMPACT_ARGS;
	if (nprod && nprod != 3)
		return E_PRODUCER_PARTIAL;
	r->has_producer = nprod == 3;
	/* A producer's retries are deduplicated by its sequence numbers; an
	 * If-Match retry would be refused as stale: one or the other. */
	if (nprod && r->if_match)
		return E_IF_MATCH_PRODUCER;
	if (!r->compact && r->body_len == 0 && !r->closed)
		return E_EMPTY_BODY;
	if (r->body_len && !r->ct.raw)
		return E_CONTENT_TYPE_REQUIRED;
	if (r->body_len && !r->ct.type[0])
		return E_CONTENT_TYPE;
	return E_OK;
}

const char *req_origin(const struct proto_request *raw)
{
	return raw->h[H_ORIGIN];
}

/* --- entry ------------------------------------------------------------------------ */

static enum proto_err parse_fields(const struct proto_request *raw, const struct config *cfg,
                                   struct req *r)
{
	struct seen seen[NFIELDS];
	unsigned method = BIT(raw->method);
	memset(seen, 0, sizeof seen);
	scan_query(raw->query ? raw->query : "", raw->query_len, method, seen);
	for (size_t k = 0; k < NFIELDS; k++) {
		const struct field *f = &fields[k];
		enum proto_err e = E_OK;
		if (!(f->methods & method))
			continue;
		if (f->hdr == IN_QUERY && seen[k].count)
			e = query_field(f, &seen[k], cfg, r);
		else if (f->hdr != IN_QUERY && raw->h[f->hdr])
			e = parse_field(f, raw->h[f->hdr], strlen(raw->h[f->hdr]), cfg, r);
		if (e)
			return e;
	}
	return E_OK;
}

/* The route of a target under {prefix}__ds ("rest" is what follows the
 * prefix, still percent-encoded). */
static enum proto_err parse_ctl(const char *rest, size_t len, const struct config *cfg, struct req *r)
{
	static const struct { const char *name; enum ctl_route route; } actions[] = {
		{ "streams", CTL_SUB_STREAMS }, { "callback", CTL_CALLBACK }, { "claim", CTL_CLAIM },
		{ "ack", CTL_ACK }, { "release", CTL_RELEASE },
	};
	static const char subs[] = "__ds/subscriptions/";
	r->ctl = CTL_UNKNOWN;
	if (len == 14 && !memcmp(rest, "__ds/jwks.json", 14)) {
		r->ctl = CTL_JWKS;
		return E_OK;
	}
	if (len <= sizeof subs - 1 || memcmp(rest, subs, sizeof subs - 1))
		return E_OK;
	const char *id = rest + sizeof subs - 1, *end = rest + len;
	const char *slash = memchr(id, '/', (size_t)(end - id));
	size_t idlen = (size_t)((slash ? slash : end) - id);
	if (!idlen || idlen > LS_MAX_SUB_ID ||
	    strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-") < idlen ||
	    (idlen <= 2 && id[0] == '.' && (idlen == 1 || id[1] == '.')))
		return E_OK;
	memcpy(r->ctl_id, id, idlen);
	r->ctl_id[idlen] = '\0';
	if (!slash) {
		r->ctl = CTL_SUB;
		return E_OK;
	}
	const char *act = slash + 1, *aend = memchr(act, '/', (size_t)(end - act));
	size_t alen = (size_t)((aend ? aend : end) - act);
	for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++) {
		if (alen != strlen(actions[i].name) || memcmp(act, actions[i].name, alen))
			continue;
		if (!aend) {
			r->ctl = actions[i].route;
			return E_OK;
		}
		if (actions[i].route != CTL_SUB_STREAMS || aend + 1 >= end)
			return E_OK;
		/* The stream path is one URL-encoded segment: %2F is '/' here. */
		char enc[LS_MAX_PATH_HARD * 3 + 1];
		size_t n = 0;
		for (const char *p = aend + 1; p < end && n + 1 < sizeof enc; p++) {
			if (p + 2 < end && p[0] == '%' && p[1] == '2' && (p[2] == 'F' || p[2] == 'f')) {
				enc[n++] = '/';
				p += 2;
			} else {
				enc[n++] = *p;
			}
		}
		enc[n] = '\0';
		enum path_error pe = parse_stream_path(enc, n, "", cfg->max_path, r->ctl_path.s, &r->ctl_path.len);
		if (pe == PATH_TOO_LONG)
			return E_PATH_TOO_LONG;
		if (pe != PATH_OK)
			return E_SUB_REQUEST;
		r->ctl = CTL_SUB_STREAM;
		return E_OK;
	}
	return E_OK;
}

enum proto_err req_parse(const struct proto_request *raw, const struct config *cfg, struct req *r)
{
	memset(r, 0, sizeof *r);
	r->method = raw->method;
	r->host = raw->h[H_HOST];
	r->https = raw->https;
	r->body = raw->body ? raw->body : "";
	r->body_len = raw->body_len;
	r->loopback = raw->loopback;
	if (proto_is_metrics_path(cfg, raw->target, raw->target_len)) {
		/* Not a stream: no query or body is read; access needs "admin on
		 * everything", which is what the name says in a denial. */
		r->metrics = 1;
		memcpy(r->name.s, "**", 3);
		r->name.len = 2;
		find_credential(raw, cfg, r);
		r->user = usable_user(raw->remote_user);
		return r->method == M_GET || r->method == M_HEAD ? E_OK : E_METHOD;
	}
	size_t plen = strlen(cfg->prefix);
	if (raw->target_len >= plen + 4 && !memcmp(raw->target, cfg->prefix, plen) &&
	    !memcmp(raw->target + plen, "__ds", 4) && (raw->target_len == plen + 4 || raw->target[plen + 4] == '/')) {
		/* Routed before streams: no stream is called __ds (PROTOCOL.md 6). */
		find_credential(raw, cfg, r);
		r->user = usable_user(raw->remote_user);
		if (raw->body_too_large)
			return E_BODY_TOO_LARGE;
		return parse_ctl(raw->target + plen, raw->target_len - plen, cfg, r);
	}
	enum proto_err e = parse_path(raw->target, raw->target_len, cfg, &r->name, 0);
	if (e)
		return e;
	if (raw->body_too_large)
		return E_BODY_TOO_LARGE;
	if ((e = parse_fields(raw, cfg, r)))
		return e;
	find_credential(raw, cfg, r);
	r->user = usable_user(raw->remote_user);
	switch (r->method) {
	case M_GET: return check_get(r);
	case M_PUT: return check_put(r, raw);
	case M_POST: return check_post(r, raw);
	default: return E_OK;
	}
}
