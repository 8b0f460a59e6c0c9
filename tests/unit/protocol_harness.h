/* protocol_harness.h: what the unit tests of src/core share (test_write.c,
 * test_read.c, test_live.c, test_fork.c, test_snapshot.c). They drive
 * proto_handle and the live-read calls with struct proto_request directly (no
 * HTTP) on a store in a temporary directory of their own, created by
 * harness_open and removed by harness_close.
 *
 * Most tests are scripts: tables of steps run in order, each a request and
 * what the response must carry. A header expectation is an exact value,
 * ABSENT, ANY, "~text" (contains text) or OFF(seq, bytes) (an offset token).
 *
 * Every function here is static inline, so a program that uses only some of
 * them gets no warning. */
#ifndef LS_PROTOCOL_HARNESS_H
#define LS_PROTOCOL_HARNESS_H
#include "lib/log.h"
#include "core/protocol.h"
#include "unit.h"

#include <stdlib.h>
#include <strings.h>
#include <unistd.h>

#define P(name) "/v1/stream/" name
#define ABSENT "\001absent"
#define ANY "\001any"
#define OFF(seq, bytes) "@" #seq ":" #bytes
#define JS "application/json"

struct hexp { const char *name, *value; };

struct step {
	int line;
	enum proto_method m;
	const char *path;
	const char *query;
	const char *ct, *body;
	size_t body_len;          /* 0: strlen(body) */
	const char *seq, *ttl, *exp, *closed, *pid, *pep, *pseq, *inm, *ifm, *host;
	int https, too_large;
	int status;
	enum proto_action action;
	const char *want_body;    /* NULL: not checked */
	struct hexp h[6];
};

/* The fixture: one store and one context per program. R, Q and L hold the
 * last step's response, request and live state. */
static const char *harness_file = __FILE__;   /* the test program's, for failures */
static char tmpdir[64];
static struct config cfg;
static struct store *st;
static struct proto_ctx ctx;
static struct proto_response R;
static struct proto_request Q;
static struct proto_live L;

/* A live read owns its name: copies get their own. */
static inline struct proto_live live_dup(const struct proto_live *l)
{
	struct proto_live c = *l;
	c.name = l->name ? strdup(l->name) : NULL;
	return c;
}

/* The commit hook: what proto reported. */
static int hook_calls;
static uint64_t hook_stream, hook_txnid;

static inline void on_commit(void *arg, uint64_t stream_id, uint64_t txnid)
{
	(void)arg;
	hook_calls++;
	hook_stream = stream_id;
	hook_txnid = txnid;
}

/* --- the fixture ------------------------------------------------------------------- */

/* A step names its line in the test program, not in this header: the checks
 * the runner makes say harness_file (set by harness_open) instead of __FILE__;
 * otherwise as CHECK_AT, CHECK_INT_AT, CHECK_UINT_AT and CHECK_MEM_AT of unit.h. */
#define STEP_CHECK_AT(line, cond) \
	unit_result(!!(cond), harness_file, (line), "%s", #cond)
#define STEP_CHECK_INT_AT(line, got, want) do { \
	intmax_t g_ = (intmax_t)(got), w_ = (intmax_t)(want); \
	unit_result(g_ == w_, harness_file, (line), "%s == %s: got %jd, want %jd", #got, #want, g_, w_); \
} while (0)
#define STEP_CHECK_UINT_AT(line, got, want) do { \
	uintmax_t g_ = (uintmax_t)(got), w_ = (uintmax_t)(want); \
	unit_result(g_ == w_, harness_file, (line), "%s == %s: got %ju, want %ju", #got, #want, g_, w_); \
} while (0)
#define STEP_CHECK_MEM_AT(line, got, glen, want, wlen) do { \
	const void *g_ = (got), *w_ = (want); \
	size_t gl_ = (glen), wl_ = (wlen); \
	int ok_ = gl_ == wl_ && (gl_ == 0 || !memcmp(g_, w_, gl_)); \
	unit_result(ok_, harness_file, (line), "%s == %s: got \"%s\" (%zu), want \"%s\" (%zu)", #got, #want, \
	            unit_show(g_, gl_), gl_, unit_show(w_, wl_), wl_); \
} while (0)

/* Logs as program, opens a store in a fresh /tmp/lmstream-test-<name>-XXXXXX
 * and the context on it. Returns 0, or the exit status for main (after
 * printing why). */
#define harness_open(program, name) harness_open_in(__FILE__, program, name)

static inline int harness_open_in(const char *file, const char *program, const char *name)
{
	harness_file = file;
	log_init(program, LOG_LVL_WARN);
	if (unit_tmpdir(tmpdir, sizeof tmpdir, name))
		return 99;
	config_defaults(&cfg);
	snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", tmpdir);
	cfg.map_size = 64ULL << 20;
	cfg.durability = DURABILITY_FAST;
	if (store_open(&st, &cfg) != ST_OK) {
		printf("%s:%d: FAIL: store_open %s\n", __FILE__, __LINE__, tmpdir);
		unit_rm_rf(tmpdir);
		return 1;
	}
	proto_init(&ctx, &cfg, st);
	proto_response_init(&R);
	return 0;
}

/* Frees the fixture and removes its directory. */
static inline void harness_close(void)
{
	proto_response_free(&R);
	proto_live_clear(&L);
	proto_fini(&ctx);
	store_close(st);
	unit_rm_rf(tmpdir);
}

/* --- running steps ------------------------------------------------------------- */

static inline void build(const struct step *s, struct proto_request *r)
{
	memset(r, 0, sizeof *r);
	r->method = s->m;
	r->target = s->path;
	r->target_len = strlen(s->path);
	r->query = s->query ? s->query : "";
	r->query_len = strlen(r->query);
	r->h[H_HOST] = s->host;
	r->https = s->https;
	r->h[H_CONTENT_TYPE] = s->ct;
	r->h[H_STREAM_SEQ] = s->seq;
	r->h[H_STREAM_TTL] = s->ttl;
	r->h[H_STREAM_EXPIRES_AT] = s->exp;
	r->h[H_STREAM_CLOSED] = s->closed;
	r->h[H_PRODUCER_ID] = s->pid;
	r->h[H_PRODUCER_EPOCH] = s->pep;
	r->h[H_PRODUCER_SEQ] = s->pseq;
	r->h[H_IF_NONE_MATCH] = s->inm;
	r->h[H_IF_MATCH] = s->ifm;
	r->body = s->body;
	r->body_len = s->body_len ? s->body_len : (s->body ? strlen(s->body) : 0);
	r->body_too_large = s->too_large;
}

static inline int header_ok(const struct proto_response *r, const struct hexp *e)
{
	const char *v = proto_get_header(r, e->name);
	if (!strcmp(e->value, ABSENT))
		return v == NULL;
	if (!v)
		return 0;
	if (!strcmp(e->value, ANY))
		return 1;
	if (e->value[0] == '~')
		return strstr(v, e->value + 1) != NULL;
	if (e->value[0] == '@') {
		unsigned long long seq, bytes;
		char off[OFFSET_LEN + 1];
		if (sscanf(e->value + 1, "%llu:%llu", &seq, &bytes) != 2)
			return 0;
		offset_format(off, seq, bytes);
		return !strcmp(v, off);
	}
	return !strcmp(v, e->value);
}

/* What every complete response must satisfy. */
static inline void check_invariants(int line, const struct proto_response *r, enum proto_method m)
{
	STEP_CHECK_AT(line, r->status >= 200 && r->status < 600);
	STEP_CHECK_AT(line, r->nheaders <= PROTO_MAX_HEADERS && r->hlen <= sizeof r->hbuf);
	/* Header values can be written out as they are. */
	for (int i = 0; i < r->nheaders; i++) {
		const char *v = r->headers[i].value;
		int safe = 1;
		for (const char *c = v; *c; c++)
			if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
				safe = 0;
		unit_result(safe, harness_file, line, "header %s: \"%s\" is not printable ASCII",
		            r->headers[i].name, unit_show(v, strlen(v)));
	}
	/* No body on 204 and 304; none on a successful HEAD (fronts drop HEAD bodies). */
	if (r->status == 204 || r->status == 304 || (m == M_HEAD && r->status == 200))
		STEP_CHECK_UINT_AT(line, r->body.len, 0);
	STEP_CHECK_AT(line, proto_get_header(r, "Access-Control-Allow-Origin") != NULL);
	/* No header twice: HTTP clients join repeated values with ", ", which
	 * makes an offset unusable. */
	for (int i = 0; i < r->nheaders; i++)
		for (int j = i + 1; j < r->nheaders; j++)
			unit_result(strcasecmp(r->headers[i].name, r->headers[j].name) != 0, harness_file, line,
			            "header %s twice", r->headers[i].name);
}

static inline void show_headers(int line, const struct proto_response *r)
{
	printf("%s:%d:   response %d (%s):", harness_file, line, r->status, r->reason ? r->reason : "");
	for (int i = 0; i < r->nheaders; i++)
		printf(" [%s: %s]", r->headers[i].name, r->headers[i].value);
	printf(" body \"%s\"\n", unit_show(r->body.data, r->body.len));
}

/* Runs one step into R (and Q, L); returns 0 when it matched. */
static inline int run(const struct step *s)
{
	int before = unit_failed;
	build(s, &Q);
	proto_response_reset(&R);
	proto_handle(&ctx, &Q, &R, &L);
	STEP_CHECK_INT_AT(s->line, R.action, s->action);
	if (R.action != PROTO_WAIT) {
		STEP_CHECK_INT_AT(s->line, R.status, s->status);
		check_invariants(s->line, &R, s->m);
	}
	for (size_t i = 0; i < NELEM(s->h) && s->h[i].name; i++)
		unit_result(header_ok(&R, &s->h[i]), harness_file, s->line, "header %s: got \"%s\", want \"%s\"",
		            s->h[i].name, proto_get_header(&R, s->h[i].name) ? proto_get_header(&R, s->h[i].name) : "(absent)",
		            s->h[i].value[0] == '\001' ? s->h[i].value + 1 : s->h[i].value);
	if (s->want_body)
		STEP_CHECK_MEM_AT(s->line, R.body.data, R.body.len, s->want_body, strlen(s->want_body));
	if (unit_failed != before)
		show_headers(s->line, &R);
	return unit_failed != before;
}

static inline void run_all(const struct step *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		run(&s[i]);
}

#define RUN(table) run_all(table, NELEM(table))

/* --- store helpers ---------------------------------------------------------------- */

static inline int get_meta(const char *name, struct stream_meta *m)
{
	struct store_txn r;
	store_txn_init(&r, st);
	if (store_read_begin(&r))
		return -1;
	int rc = store_meta_get(&r, name, strlen(name), m);
	store_read_end(&r);
	store_txn_release(&r);
	return rc;
}

/* Moves the stream's last access (and creation) into the past. */
static inline void backdate(const char *name, int64_t ms)
{
	struct store_txn w;
	struct stream_meta m;
	if (store_write_begin(&w, st))
		return;
	if (store_meta_get(&w, name, strlen(name), &m) == ST_OK) {
		m.access_ms -= ms;
		m.created_ms -= ms;
		store_meta_put(&w, name, strlen(name), &m);
		store_commit(&w, 1);
		return;
	}
	store_abort(&w);
}

/* --- bytes ------------------------------------------------------------------------- */

static inline const char *mem_find(const char *h, size_t hl, const char *n)
{
	size_t nl = strlen(n);
	for (size_t i = 0; nl <= hl && i <= hl - nl; i++)
		if (!memcmp(h + i, n, nl))
			return h + i;
	return NULL;
}

static inline int count_of(const char *h, size_t hl, const char *n)
{
	int c = 0;
	const char *p;
	while ((p = mem_find(h, hl, n))) {
		c++;
		hl -= (size_t)(p - h) + 1;
		h = p + 1;
	}
	return c;
}

/* head followed by n copies of unit, NUL terminated; the caller frees it. */
static inline char *repeat(const char *head, const char *unit, size_t n)
{
	size_t hl = strlen(head), ul = strlen(unit);
	char *s = malloc(hl + ul * n + 1);
	memcpy(s, head, hl);
	for (size_t i = 0; i < n; i++)
		memcpy(s + hl + ul * i, unit, ul);
	s[hl + ul * n] = '\0';
	return s;
}

#endif
