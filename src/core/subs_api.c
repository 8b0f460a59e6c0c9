/* subs_api.c: the requests under {prefix}__ds/ (subs.h, subs_handle):
 * subscriptions made, read and deleted, their streams, callbacks, claims,
 * acks and releases, and the JWKS. Writes go through the batch like the
 * stream writes; every answer is JSON ({"error": {"code", "message"}} for
 * a failure). */
#include "core/subs.h"
#include "core/subs_int.h"
#include "core/access.h"
#include "core/core.h"
#include "lib/glob.h"
#include "lib/hookurl.h"
#include "lib/log.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* --- answers ---------------------------------------------------------------------- */

static const char *err_code(enum proto_err e)
{
	switch (e) {
	case E_SUB_NOT_FOUND:
	case E_CTL_NOT_FOUND: return "SUBSCRIPTION_NOT_FOUND";
	case E_SUB_EXISTS: return "SUBSCRIPTION_ALREADY_EXISTS";
	case E_WEBHOOK_URL: return "WEBHOOK_URL_REJECTED";
	case E_SUB_TOKEN: return "TOKEN_INVALID";
	case E_FENCED: return "FENCED";
	case E_ALREADY_CLAIMED: return "ALREADY_CLAIMED";
	case E_NO_PENDING_WORK: return "NO_PENDING_WORK";
	case E_ACK_OFFSET: return "INVALID_OFFSET";
	default: return "INVALID_REQUEST";
	}
}

static void answer_json(struct proto_response *resp, int status, cJSON *body)
{
	char *text = body ? cJSON_PrintUnformatted(body) : NULL;
	cJSON_Delete(body);
	if (!text) {
		proto_fail(resp, E_NO_MEMORY);
		return;
	}
	resp_start(resp, status);
	resp_set_header(resp, "Content-Type", "application/json");
	resp_set_header(resp, "Cache-Control", "no-store");
	buf_append(&resp->body, text, strlen(text));
	free(text);
}

/* A failure as {"error": {"code", "message"}}; extra (owned) joins it. */
static void answer_error(struct proto_response *resp, enum proto_err e, const char *detail, cJSON *extra)
{
	if (proto_err_status(e) >= 500 || e == E_AUTH_REQUIRED || e == E_TOKEN_INVALID || e == E_FORBIDDEN ||
	    e == E_CROSS_SITE || e == E_BODY_TOO_LARGE || e == E_PATH_TOO_LONG) {
		cJSON_Delete(extra);
		if (detail)
			proto_fail_detail(resp, e, detail);
		else
			proto_fail(resp, e);
		return;
	}
	char msg[512];
	snprintf(msg, sizeof msg, "%s%s%s", proto_err_reason(e), detail ? ": " : "", detail ? detail : "");
	cJSON *err = extra ? extra : cJSON_CreateObject(), *body = cJSON_CreateObject();
	if (err && body) {
		cJSON_AddStringToObject(err, "code", err_code(e));
		cJSON_AddStringToObject(err, "message", msg);
		cJSON_AddItemToObject(body, "error", err);
		err = NULL;
	}
	cJSON_Delete(err);
	answer_json(resp, proto_err_status(e), body);
	resp->err = e;
}

/* --- requests ------------------------------------------------------------------------ */

/* What a request under __ds asks, parsed before the writer lock. */
struct ctl_job {
	struct proto_ctx *ctx;
	const struct req *q;
	struct proto_response *resp;
	const struct config *cfg;
	cJSON *in;                 /* the request body (PUT, POST), owned */
	char jwks_url[LS_MAX_URL];
	char callback_url[LS_MAX_URL];
	int kept;
};

/* A stream path of a body, normalised (no leading, trailing or double
 * slashes) into out; -1 when it is not one. */
static int norm_path(const char *p, const struct config *cfg, char *out, size_t cap)
{
	size_t n = 0;
	for (const char *s = p; *s; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return -1;
		if (*s == '/' && (n == 0 || out[n - 1] == '/'))
			continue;
		if (n + 1 >= cap)
			return -1;
		out[n++] = *s;
	}
	while (n && out[n - 1] == '/')
		n--;
	out[n] = '\0';
	if (!n || n > cfg->max_path)
		return -1;
	/* no "." or ".." segments, as in stream paths */
	for (const char *seg = out; seg;) {
		const char *e = strchr(seg, '/');
		size_t l = e ? (size_t)(e - seg) : strlen(seg);
		if ((l == 1 && seg[0] == '.') || (l == 2 && seg[0] == '.' && seg[1] == '.'))
			return -1;
		seg = e ? e + 1 : NULL;
	}
	return (int)n;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The explicit streams of a PUT, normalised, sorted and without
 * duplicates, into the array st. Returns 0 or -1. */
static int parse_streams(const cJSON *streams, const struct config *cfg, cJSON *st)
{
	char buf[LS_MAX_PATH_HARD + 1];
	if (!streams || cJSON_IsNull(streams))
		return 0;
	int n = cJSON_GetArraySize(streams);
	if (!cJSON_IsArray(streams) || n > MAX_EXPLICIT)
		return -1;
	char **v = calloc((size_t)n + 1, sizeof *v);
	int k = 0, bad = !v;
	const cJSON *e;
	cJSON_ArrayForEach(e, streams) {
		if (bad || !cJSON_IsString(e) || norm_path(e->valuestring, cfg, buf, sizeof buf) < 0 ||
		    !(v[k++] = strdup(buf))) {
			bad = 1;
			break;
		}
	}
	if (!bad) {
		qsort(v, (size_t)k, sizeof *v, str_cmp);
		for (int i = 0; i < k; i++)
			if (!i || strcmp(v[i], v[i - 1]))
				cJSON_AddItemToArray(st, cJSON_CreateString(v[i]));
	}
	for (int i = 0; v && i < k; i++)
		free(v[i]);
	free(v);
	return bad ? -1 : 0;
}

/* Where a PUT's wakes go: webhook.url (checked against the SSRF rules)
 * or wake_stream, into c. */
static enum proto_err parse_delivery(const cJSON *in, const char *type, const struct config *cfg, cJSON *c,
                                     const char **why)
{
	char buf[LS_MAX_PATH_HARD + 1];
	if (!strcmp(type, "webhook")) {
		const cJSON *wh = cJSON_GetObjectItemCaseSensitive(in, "webhook");
		const char *url = wh ? sj_str(wh, "url") : NULL;
		if (!url || strlen(url) >= SUBS_MAX_URL)
			return (*why = "webhook.url is required"), E_SUB_REQUEST;
		if (hookurl_check(url, cfg->subscriptions_allow_loopback, why))
			return E_WEBHOOK_URL;
		cJSON_AddStringToObject(c, "url", url);
		cJSON_AddNullToObject(c, "wake_stream");
		return E_OK;
	}
	const char *ws = sj_str(in, "wake_stream");
	if (!ws || norm_path(ws, cfg, buf, sizeof buf) < 0)
		return (*why = "wake_stream is required: the stream path of the wake channel"), E_SUB_REQUEST;
	cJSON_AddNullToObject(c, "url");
	cJSON_AddStringToObject(c, "wake_stream", buf);
	return E_OK;
}

/* Validates and normalises a PUT body into a canonical configuration
 * object (*cfg_out), whose text hashes to the idempotency hash. */
static enum proto_err parse_create(const cJSON *in, const struct config *cfg, cJSON **cfg_out, const char **why)
{
	char buf[LS_MAX_PATH_HARD + 1];
	*why = NULL;
	if (!cJSON_IsObject(in))
		return (*why = "expected a JSON object"), E_SUB_REQUEST;
	const char *type = sj_str(in, "type");
	if (!type || (strcmp(type, "webhook") && strcmp(type, "pull-wake")))
		return (*why = "type must be webhook or pull-wake"), E_SUB_REQUEST;
	cJSON *c = cJSON_CreateObject();
	if (!c)
		return E_NO_MEMORY;
	cJSON_AddStringToObject(c, "type", type);
	const cJSON *pat = cJSON_GetObjectItemCaseSensitive(in, "pattern");
	if (pat && !cJSON_IsNull(pat)) {
		if (!cJSON_IsString(pat) || norm_path(pat->valuestring, cfg, buf, sizeof buf) < 0) {
			cJSON_Delete(c);
			return (*why = "pattern must be a stream path pattern"), E_SUB_REQUEST;
		}
		cJSON_AddStringToObject(c, "pattern", buf);
	} else {
		cJSON_AddNullToObject(c, "pattern");
	}
	cJSON *st = cJSON_AddArrayToObject(c, "streams");
	if (parse_streams(cJSON_GetObjectItemCaseSensitive(in, "streams"), cfg, st)) {
		cJSON_Delete(c);
		return (*why = "streams must be an array of at most 1024 stream paths"), E_SUB_REQUEST;
	}
	if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(c, "pattern")) && !cJSON_GetArraySize(st)) {
		cJSON_Delete(c);
		return (*why = "pattern or streams is required"), E_SUB_REQUEST;
	}
	enum proto_err e = parse_delivery(in, type, cfg, c, why);
	if (e) {
		cJSON_Delete(c);
		return e;
	}
	const cJSON *ttl = cJSON_GetObjectItemCaseSensitive(in, "lease_ttl_ms");
	double ms = DEFAULT_LEASE_MS;
	if (ttl && !cJSON_IsNull(ttl)) {
		ms = cJSON_IsNumber(ttl) ? ttl->valuedouble : -1;
		if (ms < MIN_LEASE_MS || ms > MAX_LEASE_MS || ms != (double)(int64_t)ms) {
			cJSON_Delete(c);
			return (*why = "lease_ttl_ms must be a whole number from 1000 to 600000"), E_SUB_REQUEST;
		}
	}
	cJSON_AddNumberToObject(c, "lease_ttl_ms", ms);
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(in, "description");
	if (d && !cJSON_IsNull(d) && (!cJSON_IsString(d) || strlen(d->valuestring) > MAX_DESCRIPTION)) {
		cJSON_Delete(c);
		return (*why = "description must be a string of at most 1024 bytes"), E_SUB_REQUEST;
	}
	if (d && cJSON_IsString(d))
		cJSON_AddStringToObject(c, "description", d->valuestring);
	else
		cJSON_AddNullToObject(c, "description");
	*cfg_out = c;
	return E_OK;
}

static void hash_config(const cJSON *c, char out[65])
{
	char *text = cJSON_PrintUnformatted(c);
	unsigned char md[32];
	unsigned int ml = 0;
	static const char x[] = "0123456789abcdef";
	EVP_Digest(text ? text : "", text ? strlen(text) : 0, md, &ml, EVP_sha256(), NULL);
	free(text);
	for (int i = 0; i < 32; i++) {
		out[2 * i] = x[md[i] >> 4];
		out[2 * i + 1] = x[md[i] & 15];
	}
	out[64] = '\0';
}

/* The subscription as GET shows it. */
static cJSON *sub_json(const struct sub *s, const struct linked *ls, const char *jwks_url, const char *kid)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	const char *pat = sj_str(s->j, "pattern"), *url = sj_str(s->j, "url"), *ws = sj_str(s->j, "wake_stream");
	const char *desc = sj_str(s->j, "description");
	cJSON_AddStringToObject(o, "id", s->id);
	cJSON_AddStringToObject(o, "subscription_id", s->id);
	cJSON_AddStringToObject(o, "type", sj_str(s->j, "type"));
	if (pat)
		cJSON_AddStringToObject(o, "pattern", pat);
	else
		cJSON_AddNullToObject(o, "pattern");
	cJSON_AddItemToObject(o, "streams", links_json(ls, 0));
	if (url) {
		cJSON *wh = cJSON_AddObjectToObject(o, "webhook"), *sg;
		cJSON_AddStringToObject(wh, "url", url);
		if ((sg = cJSON_AddObjectToObject(wh, "signing"))) {
			cJSON_AddStringToObject(sg, "alg", "ed25519");
			cJSON_AddStringToObject(sg, "kid", kid);
			cJSON_AddStringToObject(sg, "jwks_url", jwks_url);
		}
	}
	if (ws)
		cJSON_AddStringToObject(o, "wake_stream", ws);
	else
		cJSON_AddNullToObject(o, "wake_stream");
	cJSON_AddNumberToObject(o, "lease_ttl_ms", (double)sj_num(s->j, "lease_ttl_ms"));
	cJSON_AddStringToObject(o, "created_at", sj_str(s->j, "created_at"));
	const char *status = sj_str(s->j, "status");
	cJSON_AddStringToObject(o, "status", status ? status : "active");
	if (desc)
		cJSON_AddStringToObject(o, "description", desc);
	else
		cJSON_AddNullToObject(o, "description");
	return o;
}

/* The rights a subscription's streams need: right over its pattern and
 * each explicit path (of c, a configuration, or of the stored one). */
static enum proto_err sub_access(struct ctl_job *j, const cJSON *c, enum right r1, enum right r2)
{
	struct access_need need[2 * (MAX_EXPLICIT + 1)];
	size_t n = 0;
	const char *pat = sj_str(c, "pattern");
	enum right rs[2] = { r1, r2 };
	for (int k = 0; k < 2; k++) {
		if (rs[k] == RIGHT__COUNT)
			continue;
		if (pat)
			need[n++] = (struct access_need){ rs[k], pat, strlen(pat) };
		const cJSON *e;
		cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(c, "streams"))
			if (cJSON_IsString(e) && n < sizeof need / sizeof need[0])
				need[n++] = (struct access_need){ rs[k], e->valuestring, strlen(e->valuestring) };
	}
	struct access acc;
	return access_check_cover(j->ctx, j->q, need, n, &acc, j->resp);
}

static void iso_time(int64_t ms, char out[32])
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&s, &tm);
	size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

/* Links path explicitly (kinds |= 2) at its tail, unless it is already. */
static int link_explicit(struct store_txn *w, uint64_t num, const char *path, int64_t now)
{
	struct link l;
	size_t pl = strlen(path);
	int rc = link_get(w, num, path, pl, &l);
	if (rc == ST_OK) {
		if (l.kinds & 2)
			return ST_OK;
		l.kinds |= 2;
	} else if (rc == ST_NOTFOUND) {
		l.kinds = 2;
		link_tail(w, path, pl, now, &l.acked);
	} else {
		return rc;
	}
	return link_put(w, num, path, pl, &l);
}

struct names {
	size_t n, cap;
	char **v;
	size_t *len;
	struct offset *tail;
	const char *pat;
	int64_t now;
	int failed;
};

static int name_visit(void *vctx, const char *name, size_t len, const struct stream_meta *m)
{
	struct names *ns = vctx;
	if (m->soft_deleted || core_expired(m, ns->now) || !glob_match(ns->pat, strlen(ns->pat), name, len))
		return 0;
	if (ns->n == ns->cap) {
		size_t cap = ns->cap ? ns->cap * 2 : 16;
		char **v = realloc(ns->v, cap * sizeof *v);
		if (v)
			ns->v = v;
		size_t *l = realloc(ns->len, cap * sizeof *l);
		if (l)
			ns->len = l;
		struct offset *t = realloc(ns->tail, cap * sizeof *t);
		if (t)
			ns->tail = t;
		if (!v || !l || !t) {
			ns->failed = 1;
			return 1;
		}
		ns->cap = cap;
	}
	if (!(ns->v[ns->n] = malloc(len))) {
		ns->failed = 1;
		return 1;
	}
	memcpy(ns->v[ns->n], name, len);
	ns->len[ns->n] = len;
	ns->tail[ns->n] = (struct offset){ OFFSET_AT, m->tail_seq, m->tail_bytes };
	ns->n++;
	return 0;
}

/* Links every existing stream the pattern matches, at its tail. */
static int backfill(struct store_txn *w, uint64_t num, const char *pat, int64_t now)
{
	struct names ns = { .pat = pat, .now = now };
	int rc = store_meta_scan(w, NULL, 0, name_visit, &ns);
	if (rc == ST_OK && ns.failed)
		rc = ST_ERROR;
	for (size_t i = 0; rc == ST_OK && i < ns.n; i++) {
		struct link l;
		int lr = link_get(w, num, ns.v[i], ns.len[i], &l);
		if (lr == ST_OK) {
			l.kinds |= 1;
		} else if (lr == ST_NOTFOUND) {
			l = (struct link){ 1, ns.tail[i] };
		} else {
			rc = lr;
			break;
		}
		rc = link_put(w, num, ns.v[i], ns.len[i], &l);
	}
	for (size_t i = 0; i < ns.n; i++)
		free(ns.v[i]);
	free(ns.v);
	free(ns.len);
	free(ns.tail);
	return rc;
}

static int answer_sub(struct ctl_job *j, struct store_txn *t, const struct sub *s, int status)
{
	struct linked ls;
	struct keyscan ks = { 0 };
	int rc = linked_load(t, s->num, store_now_ms(), &ls);
	if (rc)
		return rc;
	if (sj_str(s->j, "url") && (rc = subs_key_active(t, t->write, &ks)) && rc != ST_NOTFOUND) {
		linked_free(&ls);
		return rc;
	}
	OPENSSL_cleanse(ks.active, sizeof ks.active);
	answer_json(j->resp, status, sub_json(s, &ls, j->jwks_url, ks.have_active ? ks.kid : ""));
	linked_free(&ls);
	return ST_OK;
}

static int put_job(struct store_txn *w, void *arg, uint64_t *key)
{
	struct ctl_job *j = arg;
	cJSON *c = NULL;
	const char *why;
	struct sub s = { 0 };
	(void)key;
	enum proto_err e = parse_create(j->in, j->cfg, &c, &why);
	if (e) {
		answer_error(j->resp, e, why, NULL);
		return 0;
	}
	char hash[65];
	hash_config(c, hash);
	int64_t now = store_now_ms();
	int rc = sub_load(w, j->q->ctl_id, &s);
	if (rc == ST_OK) {
		const char *old = sj_str(s.j, "hash");
		if (!old || strcmp(old, hash))
			answer_error(j->resp, E_SUB_EXISTS, NULL, NULL);
		else
			rc = answer_sub(j, w, &s, 200);
		sub_free(&s);
		cJSON_Delete(c);
		return 0;
	}
	if (rc != ST_NOTFOUND) {
		cJSON_Delete(c);
		resp_store_error(j->resp, rc);
		return 0;
	}
	if (store_room(w, 4096) != ST_OK) {
		cJSON_Delete(c);
		return core_no_room(j->resp);
	}
	snprintf(s.id, sizeof s.id, "%s", j->q->ctl_id);
	s.j = c;
	if ((rc = store_new_id(w, &s.num))) {
		sub_free(&s);
		resp_store_error(j->resp, rc);
		return 0;
	}
	char nonce[33], created[32];
	sub_random_hex(nonce, 16);
	iso_time(now, created);
	cJSON_AddStringToObject(c, "hash", hash);
	cJSON_AddStringToObject(c, "nonce", nonce);
	cJSON_AddStringToObject(c, "created_at", created);
	cJSON_AddStringToObject(c, "callback_url", j->callback_url);
	cJSON_AddStringToObject(c, "status", "active");
	cJSON_AddNumberToObject(c, "gen", 0);
	const cJSON *e2;
	const char *pat = sj_str(c, "pattern");
	cJSON_ArrayForEach(e2, cJSON_GetObjectItemCaseSensitive(c, "streams"))
		if (!rc || rc == ST_NOTFOUND)
			rc = link_explicit(w, s.num, e2->valuestring, now);
	if (rc == ST_NOTFOUND)
		rc = ST_OK;
	if (rc == ST_OK && pat)
		rc = backfill(w, s.num, pat, now);
	if (rc == ST_OK)
		rc = sub_store(w, &s);
	if (rc == ST_OK)
		rc = answer_sub(j, w, &s, 201);
	sub_free(&s);
	if (rc) {
		resp_store_error(j->resp, rc);
		return 0;
	}
	log_info("subscription %s created (%s)", j->q->ctl_id, sj_str(j->in, "type"));
	return 1;
}

static int del_links(struct store_txn *w, uint64_t num)
{
	struct linked ls;
	int rc = linked_load(w, num, 0, &ls);
	for (size_t i = 0; rc == ST_OK && i < ls.n; i++) {
		unsigned char k[LINK_KEY_MAX];
		rc = store_sub_del(w, k, link_key(k, num, ls.v[i].path, ls.v[i].len));
	}
	linked_free(&ls);
	return rc;
}

/* Loads q's subscription in w, answering 404 when there is none. */
static int job_load(struct ctl_job *j, struct store_txn *t, struct sub *s)
{
	int rc = sub_load(t, j->q->ctl_id, s);
	if (rc == ST_NOTFOUND)
		answer_error(j->resp, E_SUB_NOT_FOUND, NULL, NULL);
	else if (rc)
		resp_store_error(j->resp, rc);
	return rc;
}

static int delete_job(struct store_txn *w, void *arg, uint64_t *key)
{
	struct ctl_job *j = arg;
	struct sub s = { 0 };
	(void)key;
	if (job_load(j, w, &s))
		return 0;
	int rc = sub_access(j, s.j, RIGHT_ADMIN, RIGHT__COUNT) ? ST_REFUSED : ST_OK;
	unsigned char k[2 + LS_MAX_SUB_ID];
	if (rc == ST_OK && !(rc = del_links(w, s.num)))
		rc = store_sub_del(w, k, sub_key(k, s.id));
	sub_free(&s);
	if (rc == ST_OK) {
		resp_start(j->resp, 204);
		log_info("subscription %s deleted", j->q->ctl_id);
		return 1;
	}
	if (rc != ST_REFUSED)
		resp_store_error(j->resp, rc);
	return 0;
}

static int streams_job(struct store_txn *w, void *arg, uint64_t *key)
{
	struct ctl_job *j = arg;
	struct sub s = { 0 };
	char buf[LS_MAX_PATH_HARD + 1];
	(void)key;
	if (job_load(j, w, &s))
		return 0;
	int rc = ST_OK;
	int64_t now = store_now_ms();
	if (j->q->method == M_POST) {
		const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j->in, "streams"), *e;
		int ok = cJSON_IsArray(arr) && cJSON_GetArraySize(arr) <= MAX_EXPLICIT;
		cJSON_ArrayForEach(e, arr)
			ok = ok && cJSON_IsString(e) && norm_path(e->valuestring, j->cfg, buf, sizeof buf) >= 0;
		if (!ok) {
			answer_error(j->resp, E_SUB_REQUEST, "expected {\"streams\": [stream paths]}", NULL);
			sub_free(&s);
			return 0;
		}
		/* the new paths need the same rights as the subscription's own */
		cJSON *need = cJSON_CreateObject();
		cJSON_AddItemToObject(need, "streams", cJSON_Duplicate(arr, 1));
		if (sub_access(j, need, RIGHT_ADMIN, RIGHT_READ) || sub_access(j, s.j, RIGHT_ADMIN, RIGHT__COUNT))
			rc = ST_REFUSED;
		cJSON_Delete(need);
		cJSON_ArrayForEach(e, arr)
			if (rc == ST_OK && norm_path(e->valuestring, j->cfg, buf, sizeof buf) >= 0)
				rc = link_explicit(w, s.num, buf, now);
	} else {
		struct link l;
		const char *path = j->q->ctl_path.s;
		size_t pl = j->q->ctl_path.len;
		if (sub_access(j, s.j, RIGHT_ADMIN, RIGHT__COUNT))
			rc = ST_REFUSED;
		else if ((rc = link_get(w, s.num, path, pl, &l)) == ST_NOTFOUND)
			rc = ST_OK;
		else if (rc == ST_OK && (l.kinds & 2)) {
			const char *pat = sj_str(s.j, "pattern");
			l.kinds &= ~2;
			if (pat && glob_match(pat, strlen(pat), path, pl)) {
				rc = link_put(w, s.num, path, pl, &l);
			} else {
				unsigned char k[LINK_KEY_MAX];
				rc = store_sub_del(w, k, link_key(k, s.num, path, pl));
			}
		}
	}
	sub_free(&s);
	if (rc == ST_OK) {
		resp_start(j->resp, 204);
		return 1;
	}
	if (rc != ST_REFUSED)
		resp_store_error(j->resp, rc);
	return 0;
}

/* The {stream, offset} acks of a callback or ack: checked all, then applied. */
static enum proto_err apply_acks(struct store_txn *w, struct sub *s, const cJSON *acks, int64_t now,
                                 const char **why)
{
	const cJSON *a;
	if (!acks || cJSON_IsNull(acks))
		return E_OK;
	if (!cJSON_IsArray(acks))
		return (*why = "acks must be an array"), E_SUB_REQUEST;
	for (int pass = 0; pass < 2; pass++) {
		cJSON_ArrayForEach(a, acks) {
			const char *p = sj_str(a, "stream"), *o = sj_str(a, "offset");
			struct offset off, tail;
			struct link l;
			if (!p)
				p = sj_str(a, "path");
			size_t pl = p ? strlen(p) : 0;
			while (p && pl && p[pl - 1] == '/')
				pl--;
			while (p && *p == '/')
				p++, pl--;
			if (!p || !o || !pl || pl > LS_MAX_PATH_HARD)
				return (*why = "each ack needs stream and offset"), E_SUB_REQUEST;
			if (offset_parse(o, strlen(o), &off) || off.kind != OFFSET_AT)
				return (*why = "ack offset must be an offset of the stream"), E_ACK_OFFSET;
			int rc = link_get(w, s->num, p, pl, &l);
			if (rc)
				return rc == ST_NOTFOUND ? ((*why = "unknown subscription stream"), E_ACK_OFFSET) : err_of_store(rc);
			link_tail(w, p, pl, now, &tail);
			if (off.seq < l.acked.seq)
				return (*why = "ack offset regresses the committed cursor"), E_ACK_OFFSET;
			if (off.seq > tail.seq)
				return (*why = "ack offset is beyond the stream's tail"), E_ACK_OFFSET;
			if (pass == 1) {
				l.acked = off;
				if ((rc = link_put(w, s->num, p, pl, &l)))
					return err_of_store(rc);
			}
		}
	}
	return E_OK;
}

/* callback (webhook), ack and release (pull-wake). */
static int wake_call_job(struct store_txn *w, void *arg, uint64_t *key)
{
	struct ctl_job *j = arg;
	struct sub s = { 0 };
	const char *why = NULL;
	(void)key;
	if (job_load(j, w, &s))
		return 0;
	int64_t now = store_now_ms();
	enum ctl_route r = j->q->ctl;
	int pull = !strcmp(sj_str(s.j, "type"), "pull-wake");
	enum proto_err e = E_OK;
	const cJSON *gen = cJSON_GetObjectItemCaseSensitive(j->in, "generation");
	const char *wake = sj_str(j->in, "wake_id");
	if ((r == CTL_CALLBACK) == pull)
		e = r == CTL_CALLBACK ? E_SUB_REQUEST : E_NOT_PULL_WAKE;
	else if (!cJSON_IsObject(j->in) || !cJSON_IsNumber(gen) || !wake)
		e = E_SUB_REQUEST, why = "expected wake_id and generation";
	else if (j->q->cred != CRED_BEARER)
		e = E_SUB_TOKEN, why = "Authorization: Bearer <token of the wake> is required";
	else
		e = wake_token_check(w, &s, j->q->cred_token, now, (uint64_t)gen->valuedouble, wake);
	/* a lease that ran out ended the wake, whatever the token says */
	int64_t lease = sj_num(s.j, "lease");
	if (!e && lease && lease <= now && !sj_num(s.j, "att"))
		e = E_FENCED;
	if (!e && r != CTL_RELEASE)
		e = apply_acks(w, &s, cJSON_GetObjectItemCaseSensitive(j->in, "acks"), now, &why);
	if (e) {
		answer_error(j->resp, e, why, NULL);
		sub_free(&s);
		return 0;
	}
	int done = r == CTL_RELEASE || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j->in, "done"));
	int next = 0, rc = ST_OK;
	if (done) {
		struct linked ls;
		wake_clear(&s);
		if ((rc = linked_load(w, s.num, now, &ls)) == ST_OK) {
			wake_rearm(&s, &ls, now);
			next = sj_num(s.j, "due") != 0;
			linked_free(&ls);
		}
	} else {
		sj_set_num(s.j, "lease", now + sj_num(s.j, "lease_ttl_ms"));
	}
	if (rc == ST_OK)
		rc = sub_store(w, &s);
	sub_free(&s);
	if (rc) {
		resp_store_error(j->resp, rc);
		return 0;
	}
	if (r == CTL_RELEASE) {
		resp_start(j->resp, 204);
	} else {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddBoolToObject(o, "ok", 1);
		cJSON_AddBoolToObject(o, "next_wake", next);
		answer_json(j->resp, 200, o);
	}
	return 1;
}

static int claim_job(struct store_txn *w, void *arg, uint64_t *key)
{
	struct ctl_job *j = arg;
	struct sub s = { 0 };
	(void)key;
	if (job_load(j, w, &s))
		return 0;
	int64_t now = store_now_ms();
	const char *worker = cJSON_IsObject(j->in) ? sj_str(j->in, "worker") : NULL;
	const char *holder = sj_str(s.j, "holder");
	int64_t lease = sj_num(s.j, "lease");
	struct linked ls = { 0 };
	int rc = ST_OK;
	if (strcmp(sj_str(s.j, "type"), "pull-wake")) {
		answer_error(j->resp, E_NOT_PULL_WAKE, NULL, NULL);
	} else if (!worker || !*worker || strlen(worker) > 256) {
		answer_error(j->resp, E_SUB_REQUEST, "worker is required (a name of at most 256 bytes)", NULL);
	} else if (sub_access(j, s.j, RIGHT_READ, RIGHT__COUNT)) {
		/* answered */
	} else if (holder && lease > now) {
		cJSON *x = cJSON_CreateObject();
		cJSON_AddStringToObject(x, "current_holder", holder);
		cJSON_AddNumberToObject(x, "generation", (double)sj_num(s.j, "gen"));
		answer_error(j->resp, E_ALREADY_CLAIMED, NULL, x);
	} else if ((rc = linked_load(w, s.num, now, &ls)) == ST_OK && !links_pending(&ls)) {
		answer_error(j->resp, E_NO_PENDING_WORK, NULL, NULL);
	} else if (rc == ST_OK) {
		char token[128];
		if (holder || !sj_str(s.j, "wake"))
			wake_start(&s, &ls);     /* the earlier claim ran out: a new wake */
		sj_set_str(s.j, "holder", worker);
		sj_set_num(s.j, "lease", now + sj_num(s.j, "lease_ttl_ms"));
		sj_set_num(s.j, "due", 0);
		if (!(rc = wake_token_make(w, &s, now, token, sizeof token)) && !(rc = sub_store(w, &s))) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "wake_id", sj_str(s.j, "wake"));
			cJSON_AddNumberToObject(o, "generation", (double)sj_num(s.j, "gen"));
			cJSON_AddStringToObject(o, "token", token);
			cJSON_AddItemToObject(o, "streams", links_json(&ls, 1));
			cJSON_AddNumberToObject(o, "lease_ttl_ms", (double)sj_num(s.j, "lease_ttl_ms"));
			answer_json(j->resp, 200, o);
			j->kept = 1;
		}
	}
	linked_free(&ls);
	sub_free(&s);
	if (rc)
		resp_store_error(j->resp, rc);
	return rc == ST_OK && j->kept;
}

static void ctl_after(void *arg)
{
	struct ctl_job *j = arg;
	cJSON_Delete(j->in);
	free(j);
}

static void get_sub(struct ctl_job *j)
{
	struct proto_ctx *ctx = j->ctx;
	struct sub s = { 0 };
	int rc = store_read_begin(&ctx->rtxn);
	if (rc) {
		resp_store_error(j->resp, rc);
		return;
	}
	if (!job_load(j, &ctx->rtxn, &s) && !sub_access(j, s.j, RIGHT_READ, RIGHT__COUNT) &&
	    (rc = answer_sub(j, &ctx->rtxn, &s, 200)))
		resp_store_error(j->resp, rc);
	sub_free(&s);
	store_read_end(&ctx->rtxn);
}

/* The JWK Set of the keys still published, from t. */
static int jwks_answer(struct ctl_job *j, struct store_txn *t)
{
	cJSON *o = cJSON_CreateObject();
	struct keyscan ks = { .now = store_now_ms(), .jwks = cJSON_AddArrayToObject(o, "keys") };
	int rc = store_sub_scan(t, "k/", 2, subs_key_visit, &ks);
	OPENSSL_cleanse(ks.active, sizeof ks.active);
	if (rc) {
		cJSON_Delete(o);
		return rc;
	}
	answer_json(j->resp, 200, o);
	resp_set_header(j->resp, "Content-Type", "application/jwk-set+json");
	resp_set_header(j->resp, "Cache-Control", "public, max-age=300");
	return ST_OK;
}

static int jwks_job(struct store_txn *w, void *arg, uint64_t *key)
{
	struct ctl_job *j = arg;
	struct keyscan ks = { 0 };
	(void)key;
	int rc = subs_key_active(w, 1, &ks);
	OPENSSL_cleanse(ks.active, sizeof ks.active);
	if (rc == ST_OK)
		rc = jwks_answer(j, w);
	if (rc)
		resp_store_error(j->resp, rc);
	return rc == ST_OK;
}

static void get_jwks(struct ctl_job *j)
{
	struct proto_ctx *ctx = j->ctx;
	struct keyscan ks = { 0 };
	int rc = store_read_begin(&ctx->rtxn);
	if (rc) {
		resp_store_error(j->resp, rc);
		return;
	}
	if ((rc = subs_key_active(&ctx->rtxn, 0, &ks)) == ST_OK)
		rc = jwks_answer(j, &ctx->rtxn);
	OPENSSL_cleanse(ks.active, sizeof ks.active);
	store_read_end(&ctx->rtxn);
	if (rc == ST_NOTFOUND) {
		/* the first key: made once, by whoever asks first */
		struct ctl_job *k = malloc(sizeof *k);
		if (!k) {
			proto_fail(j->resp, E_NO_MEMORY);
			return;
		}
		*k = *j;
		k->in = NULL;
		core_write(ctx, 0, jwks_job, k, ctl_after);
	} else if (rc) {
		resp_store_error(j->resp, rc);
	}
}

void subs_handle(struct proto_ctx *ctx, const struct req *q, struct proto_response *resp)
{
	static const struct { enum ctl_route r; enum proto_method m; batch_fn fn; } writes[] = {
		{ CTL_SUB, M_PUT, put_job }, { CTL_SUB, M_DELETE, delete_job },
		{ CTL_SUB_STREAMS, M_POST, streams_job }, { CTL_SUB_STREAM, M_DELETE, streams_job },
		{ CTL_CALLBACK, M_POST, wake_call_job }, { CTL_ACK, M_POST, wake_call_job },
		{ CTL_RELEASE, M_POST, wake_call_job }, { CTL_CLAIM, M_POST, claim_job },
	};
	struct ctl_job *j = calloc(1, sizeof *j);
	if (!j) {
		proto_fail(resp, E_NO_MEMORY);
		return;
	}
	*j = (struct ctl_job){ .ctx = ctx, .q = q, .resp = resp, .cfg = ctx->cfg };
	char path[LS_MAX_SUB_ID + 64];
	resp_stream_url(j->jwks_url, sizeof j->jwks_url, q, ctx->cfg, "__ds/jwks.json", 14);
	int n = snprintf(path, sizeof path, "__ds/subscriptions/%s/callback", q->ctl_id);
	resp_stream_url(j->callback_url, sizeof j->callback_url, q, ctx->cfg, path, (size_t)n);
	if (q->ctl == CTL_UNKNOWN) {
		answer_error(resp, E_CTL_NOT_FOUND, NULL, NULL);
	} else if (q->ctl == CTL_JWKS) {
		if (q->method == M_GET || q->method == M_HEAD)
			get_jwks(j);
		else
			proto_fail(resp, E_METHOD);
	} else if (q->ctl == CTL_SUB && (q->method == M_GET || q->method == M_HEAD)) {
		get_sub(j);
	} else {
		for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++) {
			if (writes[i].r != q->ctl || writes[i].m != q->method)
				continue;
			if (q->body_len && !(j->in = cJSON_ParseWithLength(q->body, q->body_len))) {
				answer_error(resp, E_SUB_REQUEST, "invalid JSON body", NULL);
				break;
			}
			/* The rights of a new subscription are known from its body. */
			if (writes[i].fn == put_job) {
				cJSON *c = NULL;
				const char *why;
				enum proto_err e = parse_create(j->in, ctx->cfg, &c, &why);
				if (e) {
					answer_error(resp, e, why, NULL);
					break;
				}
				e = sub_access(j, c, RIGHT_ADMIN, RIGHT_READ);
				cJSON_Delete(c);
				if (e)
					break;
			}
			core_write(ctx, q->body_len, writes[i].fn, j, ctl_after);
			return;
		}
		if (!resp->status)
			proto_fail(resp, E_METHOD);
	}
	ctl_after(j);
}
