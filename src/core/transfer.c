/* transfer.c: a stream out of one store and into another with the same
 * offsets (lmstreamctl export / import). The format, one JSON object per
 * line (docs/operations.md):
 *   {"lmstream_export":"1","name":...,"content_type":...,"json":true,"first_seq":...,...}
 *   {"m":"<base64 of a message>"}          one per message, in order
 *   {"row":"<hex row key>","seq":"N","v":"<base64 value>"}   State rows
 *   {"end":"<lines before this one>"}
 * Integers are decimal strings (they may exceed a double's precision).
 * Base64 is OpenSSL's. */
#include "core/core.h"
#include "core/ops.h"
#include "lib/limits.h"
#include "lib/num.h"

#include <cJSON.h>
#include <openssl/evp.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT_VERSION "1"

static int fail(char *err, size_t errlen, int *status, int code, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static int fail(char *err, size_t errlen, int *status, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	*status = code;
	return -1;
}

/* --- export ------------------------------------------------------------------ */

static int add_u64(cJSON *o, const char *key, uint64_t v)
{
	char s[24];
	snprintf(s, sizeof s, "%" PRIu64, v);
	return cJSON_AddStringToObject(o, key, s) ? 0 : -1;
}

/* Row and producer keys as hex: a State row key is the longest of them. */
#define KEY_MAX STATE_MAX_ROW_KEY

static int put_producer(void *ctx, const unsigned char *key, size_t klen, const struct producer_state *ps)
{
	cJSON *arr = ctx, *o = cJSON_CreateObject();
	char k[2 * KEY_MAX + 1];
	if (klen > KEY_MAX || !o || !cJSON_AddItemToArray(arr, o))
		return cJSON_Delete(o), 1;
	num_hex_encode(key, klen, k);
	return !cJSON_AddStringToObject(o, "key", k) || add_u64(o, "epoch", ps->epoch) ||
	       add_u64(o, "seq", ps->last_seq) || add_u64(o, "updated_ms", (uint64_t)ps->updated_ms);
}

static cJSON *header_of(struct store_txn *t, const char *name, size_t len, const struct stream_meta *m,
                        uint64_t first, uint64_t first_bytes)
{
	cJSON *h = cJSON_CreateObject(), *prods = cJSON_CreateArray();
	char *nm = strndup(name, len);
	int bad = !h || !prods || !nm || !cJSON_AddStringToObject(h, "lmstream_export", EXPORT_VERSION) ||
	          !cJSON_AddStringToObject(h, "name", nm) ||
	          !cJSON_AddStringToObject(h, "content_type", m->content_type) ||
	          add_u64(h, "first_seq", first) || add_u64(h, "first_bytes", first_bytes) ||
	          add_u64(h, "tail_seq", m->tail_seq) || add_u64(h, "tail_bytes", m->tail_bytes) ||
	          add_u64(h, "created_ms", (uint64_t)m->created_ms) ||
	          !cJSON_AddBoolToObject(h, "closed", m->closed) ||
	          !cJSON_AddBoolToObject(h, "state", m->state) ||
	          !cJSON_AddBoolToObject(h, "json", m->media == MEDIA_JSON);
	free(nm);
	if (!bad && m->closed_by_producer) {
		cJSON *cb = cJSON_AddObjectToObject(h, "closed_by");
		char *id = strndup(m->cb_id, m->cb_id_len);
		bad = !cb || !id || !cJSON_AddStringToObject(cb, "producer", id) || add_u64(cb, "epoch", m->cb_epoch) ||
		      add_u64(cb, "seq", m->cb_seq);
		free(id);
	}
	if (!bad && m->has_last_seq) {
		char *s = strndup(m->last_seq, m->last_seq_len);
		bad = !s || !cJSON_AddStringToObject(h, "stream_seq", s);
		free(s);
	}
	if (!bad && m->has_ttl)
		bad = add_u64(h, "ttl_s", m->ttl_s);
	if (!bad && m->expires_at[0])
		bad = !cJSON_AddStringToObject(h, "expires_at", m->expires_at) ||
		      add_u64(h, "expires_ms", (uint64_t)m->expires_ms);
	if (!bad && m->ret_age_s)
		bad = add_u64(h, "retention_age_s", m->ret_age_s);
	if (!bad && m->ret_bytes)
		bad = add_u64(h, "retention_bytes", m->ret_bytes);
	if (!bad)
		bad = store_producer_scan(t, m->id, put_producer, prods) != ST_OK;
	if (!bad) {
		cJSON_AddItemToObject(h, "producers", prods);
		prods = NULL;
	}
	cJSON_Delete(prods);
	if (bad) {
		cJSON_Delete(h);
		return NULL;
	}
	return h;
}

struct out {
	core_line_out put;
	void *put_ctx;
	struct buf line;
	uint64_t lines;
	char *b64;
	size_t cap;
	int failed;
};

/* Base64 of p into o->b64 (grown as needed). */
static const char *b64(struct out *o, const void *p, size_t n)
{
	size_t need = 4 * ((n + 2) / 3) + 1;
	if (need > o->cap) {
		char *nb = realloc(o->b64, need);
		if (!nb)
			return NULL;
		o->b64 = nb;
		o->cap = need;
	}
	EVP_EncodeBlock((unsigned char *)o->b64, p, (int)n);
	return o->b64;
}

/* Formats one line and hands it to the caller's writer. Returns 0 or -1. */
static int emit(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int emit(struct out *o, const char *fmt, ...)
{
	va_list ap;
	buf_reset(&o->line);
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || buf_reserve(&o->line, (size_t)n + 1))
		return -1;
	va_start(ap, fmt);
	vsnprintf(o->line.data, (size_t)n + 1, fmt, ap);
	va_end(ap);
	o->line.len = (size_t)n;
	return o->put(o->put_ctx, o->line.data, o->line.len) ? -1 : 0;
}

static int put_msg(void *ctx, uint64_t seq, uint64_t end_bytes, const char *data, size_t len)
{
	struct out *o = ctx;
	const char *s = b64(o, data, len);
	(void)seq;
	(void)end_bytes;
	if (!s || emit(o, "{\"m\":\"%s\"}\n", s)) {
		o->failed = 1;
		return 1;
	}
	o->lines++;
	return 0;
}

static int put_row(void *ctx, const unsigned char *rk, size_t rk_len, uint64_t seq, const char *value,
                   size_t value_len)
{
	struct out *o = ctx;
	char k[2 * KEY_MAX + 1];
	const char *s = rk_len <= KEY_MAX ? b64(o, value, value_len) : NULL;
	if (s)
		num_hex_encode(rk, rk_len, k);
	if (!s || emit(o, "{\"row\":\"%s\",\"seq\":\"%" PRIu64 "\",\"v\":\"%s\"}\n", k, seq, s)) {
		o->failed = 1;
		return 1;
	}
	o->lines++;
	return 0;
}

int core_export(struct store *st, const char *name, size_t len, core_line_out put, void *put_ctx, int *status,
                char *err, size_t errlen)
{
	struct store_txn t;
	struct stream_meta m;
	struct out o = { .put = put, .put_ctx = put_ctx };
	int ret = -1;

	*status = 500;
	store_txn_init(&t, st);
	if (store_read_begin(&t))
		return fail(err, errlen, status, 503, "cannot read the store");
	enum proto_err e = core_usable(&t, name, len, store_now_ms(), &m);
	if (e) {
		fail(err, errlen, status, proto_err_status(e), "%s", proto_err_reason(e));
		goto out;
	}
	uint64_t first_bytes, first = store_first_seq(&m, store_now_ms(), &first_bytes);
	cJSON *h = header_of(&t, name, len, &m, first, first_bytes);
	char *line = h ? cJSON_PrintUnformatted(h) : NULL;
	cJSON_Delete(h);
	if (!line) {
		fail(err, errlen, status, 503, "out of memory");
		goto out;
	}
	int wrote = emit(&o, "%s\n", line);
	free(line);
	if (wrote || store_stream_scan(&t, &m, first, put_msg, &o) ||
	    (m.state && store_state_scan(&t, m.state_id, NULL, 0, put_row, &o)) || o.failed ||
	    emit(&o, "{\"end\":\"%" PRIu64 "\"}\n", o.lines)) {
		fail(err, errlen, status, 500, "cannot write the export");
		goto out;
	}
	*status = 200;
	ret = 0;
out:
	free(o.b64);
	buf_free(&o.line);
	store_read_end(&t);
	store_txn_release(&t);
	return ret;
}

/* --- import ------------------------------------------------------------------ */

/* A decimal string member: 0 with *v, or -1. */
static int get_u64(const cJSON *o, const char *key, uint64_t *v, int required)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!x)
		return required ? -1 : 0;
	return cJSON_IsString(x) ? num_decimal(x->valuestring, strlen(x->valuestring), 19, v) : -1;
}

static const char *get_str(const cJSON *o, const char *key)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(x) ? x->valuestring : NULL;
}

/* Decodes base64 s into *out (malloc). Returns the length, or -1. */
static long unb64(const char *s, unsigned char **out)
{
	size_t n = strlen(s);
	if (n % 4 || n > (size_t)INT32_MAX)
		return -1;
	unsigned char *p = malloc(n / 4 * 3 + 1);
	if (!p)
		return -1;
	int got = EVP_DecodeBlock(p, (const unsigned char *)s, (int)n);
	if (got < 0) {
		free(p);
		return -1;
	}
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	if (n && s[n - 1] == '=')
		got--;
	if (n > 1 && s[n - 2] == '=')
		got--;
	*out = p;
	return got;
}

/* Decodes the hex string s into out (cap bytes). Returns the length, or -1. */
static long unhex(const char *s, unsigned char *out, size_t cap)
{
	size_t n = strlen(s);
	if (n % 2 || n / 2 > cap || num_hex_decode(s, n / 2, out))
		return -1;
	return (long)(n / 2);
}

/* The metadata of the stream an export header describes. */
static int meta_of(const cJSON *h, struct stream_meta *m, int64_t now, char *err, size_t errlen, int *status)
{
	const char *ct = get_str(h, "content_type"), *v = get_str(h, "lmstream_export");
	uint64_t created = 0;
	if (!v || strcmp(v, EXPORT_VERSION))
		return fail(err, errlen, status, 400, "not an lmstream export of format %s", EXPORT_VERSION);
	if (!ct || !*ct || strlen(ct) > LS_MAX_CONTENT_TYPE)
		return fail(err, errlen, status, 400, "export: content_type missing or too long");
	if (get_u64(h, "first_seq", &m->first_seq, 1) || get_u64(h, "first_bytes", &m->first_bytes, 1) ||
	    get_u64(h, "tail_seq", &m->tail_seq, 1) || get_u64(h, "tail_bytes", &m->tail_bytes, 1) ||
	    get_u64(h, "created_ms", &created, 0) || get_u64(h, "ttl_s", &m->ttl_s, 0) ||
	    get_u64(h, "expires_ms", (uint64_t *)&m->expires_ms, 0) ||
	    get_u64(h, "retention_age_s", &m->ret_age_s, 0) || get_u64(h, "retention_bytes", &m->ret_bytes, 0) ||
	    m->first_seq > m->tail_seq || m->first_bytes > m->tail_bytes)
		return fail(err, errlen, status, 400, "export: a count or offset in the header is missing or invalid");
	store_meta_set_type(m, ct);
	/* The stream's JSON mode; an export without it (from a release before
	 * +json types were JSON) made only application/json JSON. */
	const cJSON *json = cJSON_GetObjectItemCaseSensitive(h, "json");
	if (json && !cJSON_IsBool(json))
		return fail(err, errlen, status, 400, "export: json must be true or false");
	store_meta_set_json(m, json ? cJSON_IsTrue(json) : media_kind_legacy_of(ct) == MEDIA_JSON);
	m->created_ms = (int64_t)created;
	m->access_ms = now;
	m->last_append_ms = now;
	m->has_ttl = cJSON_GetObjectItemCaseSensitive(h, "ttl_s") != NULL;
	m->closed = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(h, "closed"));
	m->state = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(h, "state"));
	m->purged_seq = m->first_seq;
	const char *ea = get_str(h, "expires_at"), *ss = get_str(h, "stream_seq");
	if (ea && strlen(ea) <= LS_MAX_EXPIRES_AT)
		snprintf(m->expires_at, sizeof m->expires_at, "%s", ea);
	if (ss) {
		if (strlen(ss) > LS_MAX_STREAM_SEQ)
			return fail(err, errlen, status, 400, "export: stream_seq too long");
		m->has_last_seq = 1;
		m->last_seq_len = strlen(ss);
		memcpy(m->last_seq, ss, m->last_seq_len + 1);
	}
	const cJSON *cb = cJSON_GetObjectItemCaseSensitive(h, "closed_by");
	if (cb) {
		const char *pid = get_str(cb, "producer");
		if (!pid || strlen(pid) > LS_MAX_PRODUCER_ID || get_u64(cb, "epoch", &m->cb_epoch, 1) ||
		    get_u64(cb, "seq", &m->cb_seq, 1))
			return fail(err, errlen, status, 400, "export: closed_by is invalid");
		m->closed_by_producer = 1;
		m->cb_id_len = strlen(pid);
		memcpy(m->cb_id, pid, m->cb_id_len + 1);
	}
	if (m->state && m->media != MEDIA_JSON)
		return fail(err, errlen, status, 400, "export: a State stream must be JSON");
	return 0;
}

static int put_producers(struct store_txn *w, const cJSON *h, uint64_t id, char *err, size_t errlen, int *status)
{
	const cJSON *p, *arr = cJSON_GetObjectItemCaseSensitive(h, "producers");
	cJSON_ArrayForEach(p, arr) {
		unsigned char key[LS_MAX_PRODUCER_ID + 32];
		struct producer_state ps;
		uint64_t upd;
		const char *k = get_str(p, "key");
		long kl = k ? unhex(k, key, sizeof key) : -1;
		if (kl <= 0 || get_u64(p, "epoch", &ps.epoch, 1) || get_u64(p, "seq", &ps.last_seq, 1) ||
		    get_u64(p, "updated_ms", &upd, 1))
			return fail(err, errlen, status, 400, "export: a producer is invalid");
		ps.updated_ms = (int64_t)upd;
		if (store_producer_put_raw(w, id, key, (size_t)kl, &ps))
			return fail(err, errlen, status, 400, "export: a producer key is invalid");
	}
	return 0;
}

/* Whether data is exactly one JSON value, as a JSON stream's messages are. */
static int one_json(const char *data, size_t len)
{
	/* As the element of a one-element array: a message may be an array. */
	struct messages ms;
	char *arr = malloc(len + 2);
	if (!arr)
		return 0;
	arr[0] = '[';
	memcpy(arr + 1, data, len);
	arr[len + 1] = ']';
	int ok = messages_split(arr, len + 2, 1, &ms) == E_OK && ms.n == 1 && ms.v[0].len == len;
	messages_free(&ms);
	free(arr);
	return ok;
}

/* Reads the message and row lines into the open write transaction. */
static int put_lines(struct store_txn *w, core_line_in get, void *get_ctx, struct stream_meta *m, char *err,
                     size_t errlen, int *status)
{
	char *line = NULL;
	size_t cap = 0;
	uint64_t seq = m->first_seq, bytes = m->first_bytes, lines = 0;
	int ret = -1, ended = 0;
	for (long n; !ended && (n = get(get_ctx, &line, &cap)) > 0;) {
		cJSON *o = cJSON_ParseWithLength(line, (size_t)n);
		const char *msg = get_str(o, "m"), *row = get_str(o, "row"), *v = get_str(o, "v");
		unsigned char *data = NULL;
		uint64_t end = 0, rseq;
		long len;
		int rc = ST_OK;
		if (msg && (len = unb64(msg, &data)) >= 0) {
			if (seq >= m->tail_seq)
				fail(err, errlen, status, 400, "export: more messages than tail_seq says");
			else if (m->media == MEDIA_JSON && !one_json((const char *)data, (size_t)len))
				fail(err, errlen, status, 400, "export: message %" PRIu64 " is not one JSON value", seq);
			else if ((rc = store_room(w, (uint64_t)len)) == ST_OK &&
			         (rc = store_msg_put(w, m->id, seq, bytes + (uint64_t)len, data, (size_t)len)) == ST_OK) {
				seq++;
				bytes += (uint64_t)len;
				lines++;
			}
		} else if (row && v && m->state && get_u64(o, "seq", &rseq, 1) == 0 && (len = unb64(v, &data)) >= 0) {
			unsigned char rk[STATE_MAX_ROW_KEY];
			long rl = unhex(row, rk, sizeof rk);
			if (rl <= 0 || rseq >= m->tail_seq)
				fail(err, errlen, status, 400, "export: a State row is invalid");
			else if ((rc = store_state_put(w, m->state_id, rk, (size_t)rl, rseq, data, (size_t)len)) == ST_OK)
				lines++;
		} else if (get_u64(o, "end", &end, 1) == 0) {
			ended = 1;
			if (end != lines)
				fail(err, errlen, status, 400, "export: %" PRIu64 " lines announced, %" PRIu64 " read", end, lines);
		} else {
			fail(err, errlen, status, 400, "export: line %" PRIu64 " is not a message, a row or the end", lines + 2);
		}
		free(data);
		cJSON_Delete(o);
		if (rc == ST_MAPFULL)
			fail(err, errlen, status, 507, "storage is full");
		else if (rc)
			fail(err, errlen, status, 500, "cannot write to the store");
		if (*status != 200)
			goto out;
	}
	if (!ended)
		fail(err, errlen, status, 400, "export: truncated (no end line)");
	else if (seq != m->tail_seq || bytes != m->tail_bytes)
		fail(err, errlen, status, 400, "export: the messages end at %" PRIu64 "_%" PRIu64 ", the header says %" PRIu64
		     "_%" PRIu64, seq, bytes, m->tail_seq, m->tail_bytes);
	else
		ret = 0;
out:
	free(line);
	return ret;
}

int core_import(struct store *st, core_line_in get, void *get_ctx, const char *name, size_t len, uint64_t *id,
                uint64_t *txnid,
                int *status, char *err, size_t errlen)
{
	char *line = NULL;
	size_t cap = 0;
	long n = get(get_ctx, &line, &cap);
	cJSON *h = n > 0 ? cJSON_ParseWithLength(line, (size_t)n) : NULL;
	struct stream_meta *m = calloc(1, sizeof *m), old;
	struct store_txn w;
	int64_t now = store_now_ms();
	int ret = -1;

	free(line);
	*status = 200;
	if (!m) {
		fail(err, errlen, status, 503, "out of memory");
		goto done;
	}
	if (!h) {
		fail(err, errlen, status, 400, "not an lmstream export: the first line is not a JSON object");
		goto done;
	}
	char key[LS_MAX_PATH_HARD + 2];
	if (!len) {
		const char *nm = get_str(h, "name");
		if (nm && *nm && snprintf(key, sizeof key, "%s", nm) < (int)sizeof key) {
			name = key;
			len = strlen(key);
		}
	}
	if (!len || len > LS_MAX_PATH_HARD || memchr(name, '\0', len)) {
		fail(err, errlen, status, 400, "export: the stream's name is missing or too long");
		goto done;
	}
	if (meta_of(h, m, now, err, errlen, status))
		goto done;
	if (store_write_begin(&w, st)) {
		fail(err, errlen, status, 503, "cannot write to the store");
		goto done;
	}
	int rc = store_meta_get(&w, name, len, &old);
	if (rc == ST_OK)
		fail(err, errlen, status, 409, "a stream of that name exists");
	else if (rc != ST_NOTFOUND || store_new_id(&w, &m->id) || (m->state && store_new_id(&w, &m->state_id)))
		fail(err, errlen, status, 500, "cannot write to the store");
	else if (!put_producers(&w, h, m->id, err, errlen, status) && !put_lines(&w, get, get_ctx, m, err, errlen, status) &&
	         (rc = store_meta_put(&w, name, len, m)))
		fail(err, errlen, status, 500, "cannot write to the store");
	if (*status != 200) {
		store_abort(&w);
		goto done;
	}
	if ((rc = store_commit(&w, 0))) {
		fail(err, errlen, status, rc == ST_MAPFULL ? 507 : 500, "the commit failed");
		goto done;
	}
	*id = m->id;
	*txnid = w.committed_txnid;
	ret = 0;
done:
	cJSON_Delete(h);
	free(m);
	return ret;
}
