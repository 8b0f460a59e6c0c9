/* subs.c: subscriptions (subs.h; PROTOCOL.md 6-7).
 *
 * Records of the store's subs database (keys are byte strings):
 *   "c/" id              the subscription: a fixed header (1 byte 'i' idle
 *                        or 'b' busy, be64 next_ms: when a deliverer must
 *                        look at it, 0 never, be64 its number), its pattern
 *                        and '\n', then a JSON object with its
 *                        configuration and state
 *   "l/" number path     a linked stream: "<kinds> <acked offset>", kinds
 *                        1 glob, 2 explicit, 3 both
 *   "k/" kid             a webhook signing key: 32 bytes raw Ed25519,
 *                        be64 created, be64 retired (0: the active one)
 *   "s"                  32 random bytes that sign wake tokens (HMAC)
 *
 * A subscription is busy while a wake is due, outstanding or claimed; the
 * header lets a write that appends to a linked stream see that at once
 * and go on, and a deliverer find what is due without parsing JSON.
 * Wake tokens (callback_token, claim token) are "<generation>.<expiry
 * ms>.<hex HMAC-SHA256>" over the subscription id, its creation nonce, the
 * generation and the expiry: valid for that subscription and generation
 * only; fencing then compares generation and wake_id. */
#include "core/subs.h"
#include "core/access.h"
#include "core/core.h"
#include "lib/glob.h"
#include "lib/hookurl.h"
#include "lib/limits.h"
#include "lib/log.h"
#include "lib/offset.h"
#include "lib/sign.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HDR 17                                 /* flag byte, be64 next_ms, be64 number */
#define DEFAULT_LEASE_MS 30000
#define MIN_LEASE_MS 1000
#define MAX_LEASE_MS 600000
#define TOKEN_LIFE_MS (60LL * 60 * 1000)
#define RETRY_FIRST_MS 1000
#define RETRY_MAX_MS 60000
#define KEY_KEEP_MS (60LL * 60 * 1000)         /* a retired key stays in the JWKS */
#define MAX_EXPLICIT 1024
#define MAX_DESCRIPTION 1024

static atomic_int marked;

int subs_marked(void) { return atomic_load(&marked); }
void subs_unmark(void) { atomic_store(&marked, 0); }

static void put_be64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static uint64_t get_be64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* --- keys of the subs database ------------------------------------------- */

static size_t key_sub(unsigned char *k, const char *id)
{
	size_t n = strlen(id);
	memcpy(k, "c/", 2);
	memcpy(k + 2, id, n);
	return n + 2;
}

/* "l/", the subscription's number (be64), then the path (none when plen is
 * 0: the prefix of all its links). A number, not the id, so that the
 * longest id and the longest path fit LMDB's 511-byte keys. */
static size_t key_link(unsigned char *k, uint64_t num, const char *path, size_t plen)
{
	memcpy(k, "l/", 2);
	put_be64(k + 2, num);
	memcpy(k + 10, path, plen);
	return 10 + plen;
}
#define LINK_KEY_MAX (10 + LS_MAX_PATH_HARD)

/* --- a subscription in memory --------------------------------------------- */

struct sub {
	char id[LS_MAX_SUB_ID + 1];
	char busy;
	int64_t next_ms;
	uint64_t num;      /* keys its links (key_link), from store_new_id */
	cJSON *j;          /* the JSON part, owned */
};

static void sub_free(struct sub *s)
{
	cJSON_Delete(s->j);
	s->j = NULL;
}

static const char *jstr(const cJSON *j, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int64_t jnum(const cJSON *j, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
	return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

static void jset_num(cJSON *j, const char *k, int64_t v)
{
	cJSON *n = cJSON_CreateNumber((double)v);
	if (n && !cJSON_ReplaceItemInObjectCaseSensitive(j, k, n) && !cJSON_AddItemToObject(j, k, n))
		cJSON_Delete(n);
}

static void jset_str(cJSON *j, const char *k, const char *v)
{
	cJSON *n = v ? cJSON_CreateString(v) : cJSON_CreateNull();
	if (n && !cJSON_ReplaceItemInObjectCaseSensitive(j, k, n) && !cJSON_AddItemToObject(j, k, n))
		cJSON_Delete(n);
}

static int sub_load(struct store_txn *t, const char *id, struct sub *s)
{
	unsigned char k[2 + LS_MAX_SUB_ID];
	const void *v;
	size_t vl;
	int rc = store_sub_get(t, k, key_sub(k, id), &v, &vl);
	if (rc)
		return rc;
	const unsigned char *p = v, *nl = vl > HDR ? memchr(p + HDR, '\n', vl - HDR) : NULL;
	if (!nl)
		return ST_ERROR;
	snprintf(s->id, sizeof s->id, "%s", id);
	s->busy = (char)p[0];
	s->next_ms = (int64_t)get_be64(p + 1);
	s->num = get_be64(p + 9);
	s->j = cJSON_ParseWithLength((const char *)nl + 1, vl - (size_t)(nl + 1 - p));
	return s->j ? ST_OK : ST_ERROR;
}

/* When a deliverer must look at s: an attempt running until it times out,
 * else the due time and the end of an outstanding lease. */
static int64_t sub_next(const struct sub *s)
{
	int64_t att = jnum(s->j, "att"), due = jnum(s->j, "due"), lease = jnum(s->j, "lease");
	if (att)
		return att;
	int64_t n = due;
	if (lease && (jstr(s->j, "wake") || jstr(s->j, "holder")) && (!n || lease < n))
		n = lease;
	return n;
}

static int sub_store(struct store_txn *w, struct sub *s)
{
	const char *pat = jstr(s->j, "pattern");
	size_t pl = pat ? strlen(pat) : 0;
	char *json = cJSON_PrintUnformatted(s->j);
	if (!json)
		return ST_ERROR;
	size_t jl = strlen(json);
	unsigned char *v = malloc(HDR + pl + 1 + jl);
	if (!v) {
		free(json);
		return ST_ERROR;
	}
	int busy = jstr(s->j, "wake") || jstr(s->j, "holder") || jnum(s->j, "due") || jnum(s->j, "att");
	v[0] = busy ? 'b' : 'i';
	put_be64(v + 1, (uint64_t)sub_next(s));
	put_be64(v + 9, s->num);
	if (pl)
		memcpy(v + HDR, pat, pl);
	v[HDR + pl] = '\n';
	memcpy(v + HDR + pl + 1, json, jl);
	unsigned char k[2 + LS_MAX_SUB_ID];
	int rc = store_sub_put(w, k, key_sub(k, s->id), v, HDR + pl + 1 + jl);
	free(v);
	free(json);
	return rc;
}

/* --- links -------------------------------------------------------------------- */

struct link {
	int kinds;                 /* 1 glob, 2 explicit */
	struct offset acked;
};

static int link_get(struct store_txn *t, uint64_t num, const char *path, size_t plen, struct link *l)
{
	unsigned char k[LINK_KEY_MAX];
	const void *v;
	size_t vl;
	int rc = store_sub_get(t, k, key_link(k, num, path, plen), &v, &vl);
	if (rc)
		return rc;
	const char *p = v;
	if (vl != 2 + OFFSET_LEN || p[1] != ' ' || p[0] < '1' || p[0] > '3' ||
	    offset_parse(p + 2, OFFSET_LEN, &l->acked) || l->acked.kind != OFFSET_AT)
		return ST_ERROR;
	l->kinds = p[0] - '0';
	return ST_OK;
}

static int link_put(struct store_txn *w, uint64_t num, const char *path, size_t plen, const struct link *l)
{
	unsigned char k[LINK_KEY_MAX];
	char v[2 + OFFSET_LEN + 1];
	v[0] = (char)('0' + l->kinds);
	v[1] = ' ';
	offset_format(v + 2, l->acked.seq, l->acked.bytes);
	return store_sub_put(w, k, key_link(k, num, path, plen), v, 2 + OFFSET_LEN);
}

/* The tail of a stream as subscriptions see it: 0_0 when there is none. */
static void tail_of(struct store_txn *t, const char *path, size_t plen, int64_t now, struct offset *o)
{
	struct stream_meta *m = malloc(sizeof *m);
	o->kind = OFFSET_AT;
	o->seq = o->bytes = 0;
	if (m && core_usable(t, path, plen, now, m) == E_OK) {
		o->seq = m->tail_seq;
		o->bytes = m->tail_bytes;
	}
	free(m);
}

/* The linked streams of a subscription, in path order. */
struct linked {
	size_t n, cap;
	struct linked_one {
		char *path;
		size_t len;
		struct link l;
		struct offset tail;
	} *v;
};

static void linked_free(struct linked *ls)
{
	for (size_t i = 0; i < ls->n; i++)
		free(ls->v[i].path);
	free(ls->v);
	memset(ls, 0, sizeof *ls);
}

struct collect {
	struct linked *ls;
	size_t skip;
	int failed;
};

static int collect_link(void *vctx, const unsigned char *key, size_t klen, const void *val, size_t vlen)
{
	struct collect *c = vctx;
	struct linked *ls = c->ls;
	const char *p = val;
	if (ls->n == ls->cap) {
		size_t cap = ls->cap ? ls->cap * 2 : 8;
		void *nv = realloc(ls->v, cap * sizeof *ls->v);
		if (!nv) {
			c->failed = 1;
			return 1;
		}
		ls->v = nv;
		ls->cap = cap;
	}
	struct linked_one *o = &ls->v[ls->n];
	if (vlen != 2 + OFFSET_LEN || offset_parse(p + 2, OFFSET_LEN, &o->l.acked) || klen <= c->skip)
		return 0;
	o->l.kinds = p[0] - '0';
	o->len = klen - c->skip;
	if (!(o->path = malloc(o->len + 1))) {
		c->failed = 1;
		return 1;
	}
	memcpy(o->path, key + c->skip, o->len);
	o->path[o->len] = '\0';
	ls->n++;
	return 0;
}

static int linked_load(struct store_txn *t, uint64_t num, int64_t now, struct linked *ls)
{
	unsigned char k[LINK_KEY_MAX];
	struct collect c = { ls, key_link(k, num, "", 0), 0 };
	memset(ls, 0, sizeof *ls);
	int rc = store_sub_scan(t, k, c.skip, collect_link, &c);
	if (rc == ST_OK && c.failed)
		rc = ST_ERROR;
	for (size_t i = 0; rc == ST_OK && i < ls->n; i++)
		tail_of(t, ls->v[i].path, ls->v[i].len, now, &ls->v[i].tail);
	if (rc)
		linked_free(ls);
	return rc;
}

static int pending(const struct linked_one *o)
{
	return o->tail.seq > o->l.acked.seq;
}

static int any_pending(const struct linked *ls)
{
	for (size_t i = 0; i < ls->n; i++)
		if (pending(&ls->v[i]))
			return 1;
	return 0;
}

/* {path, link_type, acked_offset[, tail_offset, has_pending]} per stream. */
static cJSON *streams_json(const struct linked *ls, int with_tail)
{
	cJSON *a = cJSON_CreateArray();
	char off[OFFSET_LEN + 1];
	for (size_t i = 0; a && i < ls->n; i++) {
		const struct linked_one *o = &ls->v[i];
		cJSON *e = cJSON_CreateObject();
		if (!e)
			break;
		cJSON_AddStringToObject(e, "path", o->path);
		cJSON_AddStringToObject(e, "link_type", o->l.kinds & 2 ? "explicit" : "glob");
		offset_format(off, o->l.acked.seq, o->l.acked.bytes);
		cJSON_AddStringToObject(e, "acked_offset", off);
		if (with_tail) {
			offset_format(off, o->tail.seq, o->tail.bytes);
			cJSON_AddStringToObject(e, "tail_offset", off);
			cJSON_AddBoolToObject(e, "has_pending", pending(o));
		}
		cJSON_AddItemToArray(a, e);
	}
	return a;
}

/* --- wakes --------------------------------------------------------------------- */

static void random_hex(char *out, size_t nbytes)
{
	unsigned char b[32];
	static const char hex[] = "0123456789abcdef";
	if (nbytes > sizeof b)
		nbytes = sizeof b;
	if (RAND_bytes(b, (int)nbytes) != 1)
		for (size_t i = 0; i < nbytes; i++)
			b[i] = (unsigned char)rand();
	for (size_t i = 0; i < nbytes; i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 15];
	}
	out[2 * nbytes] = '\0';
}

/* The secret that signs wake tokens, made at first use. */
static int token_secret(struct store_txn *t, unsigned char out[32], int may_write)
{
	const void *v;
	size_t vl;
	int rc = store_sub_get(t, "s", 1, &v, &vl);
	if (rc == ST_OK && vl == 32) {
		memcpy(out, v, 32);
		return ST_OK;
	}
	if (rc != ST_NOTFOUND && rc != ST_OK)
		return rc;
	if (!may_write || RAND_bytes(out, 32) != 1)
		return ST_ERROR;
	return store_sub_put(t, "s", 1, out, 32);
}

static void token_mac(const unsigned char secret[32], const struct sub *s, uint64_t gen, int64_t exp,
                      char hex[65])
{
	char msg[LS_MAX_SUB_ID + 128];
	unsigned char mac[32];
	unsigned int ml = 0;
	const char *nonce = jstr(s->j, "nonce");
	int n = snprintf(msg, sizeof msg, "%s\n%s\n%" PRIu64 "\n%" PRId64, s->id, nonce ? nonce : "", gen, exp);
	HMAC(EVP_sha256(), secret, 32, (const unsigned char *)msg, (size_t)n, mac, &ml);
	static const char x[] = "0123456789abcdef";
	for (int i = 0; i < 32; i++) {
		hex[2 * i] = x[mac[i] >> 4];
		hex[2 * i + 1] = x[mac[i] & 15];
	}
	hex[64] = '\0';
}

static int token_make(struct store_txn *w, const struct sub *s, int64_t now, char *out, size_t cap)
{
	unsigned char secret[32];
	char mac[65];
	int rc = token_secret(w, secret, 1);
	if (rc)
		return rc;
	uint64_t gen = (uint64_t)jnum(s->j, "gen");
	int64_t exp = now + TOKEN_LIFE_MS;
	token_mac(secret, s, gen, exp, mac);
	snprintf(out, cap, "%" PRIu64 ".%" PRId64 ".%s", gen, exp, mac);
	OPENSSL_cleanse(secret, sizeof secret);
	return ST_OK;
}

/* E_OK, E_SUB_TOKEN (not ours, or expired) or E_FENCED. */
static enum proto_err token_check(struct store_txn *t, const struct sub *s, const char *token, int64_t now,
                                  uint64_t req_gen, const char *req_wake)
{
	unsigned char secret[32];
	char mac[65];
	uint64_t gen;
	int64_t exp;
	int used = 0;
	if (!token || sscanf(token, "%" SCNu64 ".%" SCNd64 ".%n", &gen, &exp, &used) != 2 || !used ||
	    strlen(token + used) != 64 || token_secret(t, secret, 0))
		return E_SUB_TOKEN;
	token_mac(secret, s, gen, exp, mac);
	OPENSSL_cleanse(secret, sizeof secret);
	if (CRYPTO_memcmp(mac, token + used, 64) || exp < now)
		return E_SUB_TOKEN;
	const char *wake = jstr(s->j, "wake");
	if (gen != (uint64_t)jnum(s->j, "gen") || req_gen != gen || !wake || !req_wake || strcmp(wake, req_wake))
		return E_FENCED;
	return E_OK;
}

/* Ends the current wake (acked, released or run out). */
static void wake_clear(struct sub *s)
{
	jset_str(s->j, "wake", NULL);
	jset_str(s->j, "holder", NULL);
	jset_num(s->j, "lease", 0);
	cJSON_DeleteItemFromObjectCaseSensitive(s->j, "snap");
}

/* Starts a wake: the next generation, a new wake_id, and the tails it
 * covers (a webhook's {"done": true} acks those). */
static void wake_start(struct sub *s, const struct linked *ls)
{
	char wid[40];
	memcpy(wid, "w_", 2);
	random_hex(wid + 2, 12);
	jset_num(s->j, "gen", jnum(s->j, "gen") + 1);
	jset_str(s->j, "wake", wid);
	cJSON *snap = cJSON_CreateObject();
	char off[OFFSET_LEN + 1];
	for (size_t i = 0; snap && i < ls->n; i++) {
		offset_format(off, ls->v[i].tail.seq, ls->v[i].tail.bytes);
		cJSON_AddStringToObject(snap, ls->v[i].path, off);
	}
	cJSON_DeleteItemFromObjectCaseSensitive(s->j, "snap");
	if (snap)
		cJSON_AddItemToObject(s->j, "snap", snap);
}

/* After a wake ended: due again at once when work is pending. */
static void rearm(struct sub *s, const struct linked *ls, int64_t now)
{
	if (any_pending(ls)) {
		int64_t due = jnum(s->j, "due");
		jset_num(s->j, "due", due > now ? due : now);
		atomic_store(&marked, 1);
	} else {
		jset_num(s->j, "due", 0);
	}
}

/* --- the write hook ----------------------------------------------------------- */

struct hook_scan {
	const char *name;
	size_t nlen;
	size_t n, cap;
	struct hook_hit { char id[LS_MAX_SUB_ID + 1]; uint64_t num; int glob; char busy; } *v;
	int failed;
};

static int hook_visit(void *vctx, const unsigned char *key, size_t klen, const void *val, size_t vlen)
{
	struct hook_scan *h = vctx;
	const unsigned char *p = val, *nl = vlen > HDR ? memchr(p + HDR, '\n', vlen - HDR) : NULL;
	if (!nl || klen - 2 > LS_MAX_SUB_ID)
		return 0;
	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 8;
		void *nv = realloc(h->v, cap * sizeof *h->v);
		if (!nv) {
			h->failed = 1;
			return 1;
		}
		h->v = nv;
		h->cap = cap;
	}
	struct hook_hit *hit = &h->v[h->n++];
	memcpy(hit->id, key + 2, klen - 2);
	hit->id[klen - 2] = '\0';
	size_t pl = (size_t)(nl - (p + HDR));
	hit->glob = pl && glob_match((const char *)p + HDR, pl, h->name, h->nlen);
	hit->busy = (char)p[0];
	hit->num = get_be64(p + 9);
	return 0;
}

static int hook_hits(struct store_txn *w, const char *name, size_t nlen, struct hook_scan *h)
{
	memset(h, 0, sizeof *h);
	h->name = name;
	h->nlen = nlen;
	int rc = store_sub_scan(w, "c/", 2, hook_visit, h);
	return rc ? rc : h->failed ? ST_ERROR : ST_OK;
}

int subs_on_write(struct store_txn *w, const char *name, size_t nlen, uint64_t before_seq,
                  uint64_t before_bytes, const struct stream_meta *m)
{
	struct hook_scan h;
	int rc = hook_hits(w, name, nlen, &h);
	int64_t now = store_now_ms();
	for (size_t i = 0; rc == ST_OK && i < h.n; i++) {
		struct link l;
		int lr = link_get(w, h.v[i].num, name, nlen, &l);
		if (lr == ST_NOTFOUND && h.v[i].glob) {
			/* Discovered by this write: linked before it, so it wakes. */
			l = (struct link){ 1, { OFFSET_AT, before_seq, before_bytes } };
			lr = link_put(w, h.v[i].num, name, nlen, &l);
		} else if (lr == ST_NOTFOUND) {
			continue;
		}
		if ((rc = lr))
			break;
		if (h.v[i].busy == 'b' || m->tail_seq <= l.acked.seq)
			continue;
		struct sub s = { 0 };
		if ((rc = sub_load(w, h.v[i].id, &s)) == ST_OK) {
			jset_num(s.j, "due", now);
			rc = sub_store(w, &s);
			atomic_store(&marked, 1);
		}
		sub_free(&s);
	}
	free(h.v);
	return rc;
}

int subs_on_delete(struct store_txn *w, const char *name, size_t nlen)
{
	struct hook_scan h;
	int rc = hook_hits(w, name, nlen, &h);
	for (size_t i = 0; rc == ST_OK && i < h.n; i++) {
		unsigned char k[LINK_KEY_MAX];
		rc = store_sub_del(w, k, key_link(k, h.v[i].num, name, nlen));
	}
	free(h.v);
	return rc;
}

/* --- signing keys ---------------------------------------------------------------- */

struct keyscan {
	int64_t now;
	int have_active;
	unsigned char active[32];
	char kid[48];
	cJSON *jwks;               /* when set: the JWK of every key still published */
	size_t nstale;
	char stale[8][48];         /* retired longer than KEY_KEEP_MS */
};

static int key_visit(void *vctx, const unsigned char *key, size_t klen, const void *val, size_t vlen)
{
	struct keyscan *ks = vctx;
	const unsigned char *p = val;
	if (vlen != 48 || klen < 3 || klen - 2 >= 48)
		return 0;
	int64_t retired = (int64_t)get_be64(p + 40);
	if (retired && ks->now - retired > KEY_KEEP_MS) {
		if (ks->nstale < 8) {
			memcpy(ks->stale[ks->nstale], key + 2, klen - 2);
			ks->stale[ks->nstale++][klen - 2] = '\0';
		}
		return 0;
	}
	if (!retired && !ks->have_active) {
		ks->have_active = 1;
		memcpy(ks->active, p, 32);
		memcpy(ks->kid, key + 2, klen - 2);
		ks->kid[klen - 2] = '\0';
	}
	if (ks->jwks) {
		unsigned char pub[32];
		char jwk[512];
		cJSON *o;
		if (!sign_public(p, pub) && sign_jwk(pub, jwk, sizeof jwk) > 0 && (o = cJSON_Parse(jwk)))
			cJSON_AddItemToArray(ks->jwks, o);
	}
	return 0;
}

static int key_new(struct store_txn *w, int64_t now, struct keyscan *ks)
{
	unsigned char rec[48], pub[32];
	char kid[48];
	if (sign_keygen(rec) || sign_public(rec, pub) || sign_kid(pub, kid, sizeof kid) <= 0)
		return ST_ERROR;
	put_be64(rec + 32, (uint64_t)now);
	put_be64(rec + 40, 0);
	unsigned char k[2 + 48];
	size_t kl = strlen(kid);
	memcpy(k, "k/", 2);
	memcpy(k + 2, kid, kl);
	int rc = store_sub_put(w, k, 2 + kl, rec, sizeof rec);
	if (rc == ST_OK) {
		ks->have_active = 1;
		memcpy(ks->active, rec, 32);
		snprintf(ks->kid, sizeof ks->kid, "%s", kid);
	}
	OPENSSL_cleanse(rec, sizeof rec);
	return rc;
}

/* The active key (made when there is none, if w may write). */
static int key_active(struct store_txn *t, int may_write, struct keyscan *ks)
{
	ks->now = store_now_ms();
	int rc = store_sub_scan(t, "k/", 2, key_visit, ks);
	if (rc == ST_OK && !ks->have_active)
		rc = may_write ? key_new(t, ks->now, ks) : ST_NOTFOUND;
	return rc;
}

int subs_key_rotate(struct store *st, char kid[48])
{
	struct store_txn w;
	struct keyscan ks = { 0 };
	int rc = store_write_begin(&w, st);
	if (rc)
		return rc;
	ks.now = store_now_ms();
	if ((rc = store_sub_scan(&w, "k/", 2, key_visit, &ks)) == ST_OK && ks.have_active) {
		unsigned char k[2 + 48];
		const void *v;
		size_t vl, kl = strlen(ks.kid);
		memcpy(k, "k/", 2);
		memcpy(k + 2, ks.kid, kl);
		if ((rc = store_sub_get(&w, k, 2 + kl, &v, &vl)) == ST_OK && vl == 48) {
			unsigned char rec[48];
			memcpy(rec, v, 48);
			put_be64(rec + 40, (uint64_t)ks.now);
			rc = store_sub_put(&w, k, 2 + kl, rec, 48);
			OPENSSL_cleanse(rec, sizeof rec);
		}
	}
	for (size_t i = 0; rc == ST_OK && i < ks.nstale; i++) {
		unsigned char k[2 + 48];
		size_t kl = strlen(ks.stale[i]);
		memcpy(k, "k/", 2);
		memcpy(k + 2, ks.stale[i], kl);
		rc = store_sub_del(&w, k, 2 + kl);
	}
	if (rc == ST_OK)
		rc = key_new(&w, ks.now, &ks);
	OPENSSL_cleanse(ks.active, sizeof ks.active);
	if (rc == ST_OK && (rc = store_commit(&w, 0)) == ST_OK)
		snprintf(kid, 48, "%s", ks.kid);
	else if (w.active)
		store_abort(&w);
	return rc;
}

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
		const char *url = wh ? jstr(wh, "url") : NULL;
		if (!url || strlen(url) >= SUBS_MAX_URL)
			return (*why = "webhook.url is required"), E_SUB_REQUEST;
		if (hookurl_check(url, cfg->subscriptions_allow_loopback, why))
			return E_WEBHOOK_URL;
		cJSON_AddStringToObject(c, "url", url);
		cJSON_AddNullToObject(c, "wake_stream");
		return E_OK;
	}
	const char *ws = jstr(in, "wake_stream");
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
	const char *type = jstr(in, "type");
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
	const char *pat = jstr(s->j, "pattern"), *url = jstr(s->j, "url"), *ws = jstr(s->j, "wake_stream");
	const char *desc = jstr(s->j, "description");
	cJSON_AddStringToObject(o, "id", s->id);
	cJSON_AddStringToObject(o, "subscription_id", s->id);
	cJSON_AddStringToObject(o, "type", jstr(s->j, "type"));
	if (pat)
		cJSON_AddStringToObject(o, "pattern", pat);
	else
		cJSON_AddNullToObject(o, "pattern");
	cJSON_AddItemToObject(o, "streams", streams_json(ls, 0));
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
	cJSON_AddNumberToObject(o, "lease_ttl_ms", (double)jnum(s->j, "lease_ttl_ms"));
	cJSON_AddStringToObject(o, "created_at", jstr(s->j, "created_at"));
	const char *status = jstr(s->j, "status");
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
	const char *pat = jstr(c, "pattern");
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
		tail_of(w, path, pl, now, &l.acked);
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
	if (jstr(s->j, "url") && (rc = key_active(t, t->write, &ks)) && rc != ST_NOTFOUND) {
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
		const char *old = jstr(s.j, "hash");
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
	random_hex(nonce, 16);
	iso_time(now, created);
	cJSON_AddStringToObject(c, "hash", hash);
	cJSON_AddStringToObject(c, "nonce", nonce);
	cJSON_AddStringToObject(c, "created_at", created);
	cJSON_AddStringToObject(c, "callback_url", j->callback_url);
	cJSON_AddStringToObject(c, "status", "active");
	cJSON_AddNumberToObject(c, "gen", 0);
	const cJSON *e2;
	const char *pat = jstr(c, "pattern");
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
	log_info("subscription %s created (%s)", j->q->ctl_id, jstr(j->in, "type"));
	return 1;
}

static int del_links(struct store_txn *w, uint64_t num)
{
	struct linked ls;
	int rc = linked_load(w, num, 0, &ls);
	for (size_t i = 0; rc == ST_OK && i < ls.n; i++) {
		unsigned char k[LINK_KEY_MAX];
		rc = store_sub_del(w, k, key_link(k, num, ls.v[i].path, ls.v[i].len));
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
		rc = store_sub_del(w, k, key_sub(k, s.id));
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
			const char *pat = jstr(s.j, "pattern");
			l.kinds &= ~2;
			if (pat && glob_match(pat, strlen(pat), path, pl)) {
				rc = link_put(w, s.num, path, pl, &l);
			} else {
				unsigned char k[LINK_KEY_MAX];
				rc = store_sub_del(w, k, key_link(k, s.num, path, pl));
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
			const char *p = jstr(a, "stream"), *o = jstr(a, "offset");
			struct offset off, tail;
			struct link l;
			if (!p)
				p = jstr(a, "path");
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
			tail_of(w, p, pl, now, &tail);
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
	int pull = !strcmp(jstr(s.j, "type"), "pull-wake");
	enum proto_err e = E_OK;
	const cJSON *gen = cJSON_GetObjectItemCaseSensitive(j->in, "generation");
	const char *wake = jstr(j->in, "wake_id");
	if ((r == CTL_CALLBACK) == pull)
		e = r == CTL_CALLBACK ? E_SUB_REQUEST : E_NOT_PULL_WAKE;
	else if (!cJSON_IsObject(j->in) || !cJSON_IsNumber(gen) || !wake)
		e = E_SUB_REQUEST, why = "expected wake_id and generation";
	else if (j->q->cred != CRED_BEARER)
		e = E_SUB_TOKEN, why = "Authorization: Bearer <token of the wake> is required";
	else
		e = token_check(w, &s, j->q->cred_token, now, (uint64_t)gen->valuedouble, wake);
	/* a lease that ran out ended the wake, whatever the token says */
	int64_t lease = jnum(s.j, "lease");
	if (!e && lease && lease <= now && !jnum(s.j, "att"))
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
			rearm(&s, &ls, now);
			next = jnum(s.j, "due") != 0;
			linked_free(&ls);
		}
	} else {
		jset_num(s.j, "lease", now + jnum(s.j, "lease_ttl_ms"));
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
	const char *worker = cJSON_IsObject(j->in) ? jstr(j->in, "worker") : NULL;
	const char *holder = jstr(s.j, "holder");
	int64_t lease = jnum(s.j, "lease");
	struct linked ls = { 0 };
	int rc = ST_OK;
	if (strcmp(jstr(s.j, "type"), "pull-wake")) {
		answer_error(j->resp, E_NOT_PULL_WAKE, NULL, NULL);
	} else if (!worker || !*worker || strlen(worker) > 256) {
		answer_error(j->resp, E_SUB_REQUEST, "worker is required (a name of at most 256 bytes)", NULL);
	} else if (sub_access(j, s.j, RIGHT_READ, RIGHT__COUNT)) {
		/* answered */
	} else if (holder && lease > now) {
		cJSON *x = cJSON_CreateObject();
		cJSON_AddStringToObject(x, "current_holder", holder);
		cJSON_AddNumberToObject(x, "generation", (double)jnum(s.j, "gen"));
		answer_error(j->resp, E_ALREADY_CLAIMED, NULL, x);
	} else if ((rc = linked_load(w, s.num, now, &ls)) == ST_OK && !any_pending(&ls)) {
		if (holder)
			wake_clear(&s), rc = sub_store(w, &s);
		answer_error(j->resp, E_NO_PENDING_WORK, NULL, NULL);
	} else if (rc == ST_OK) {
		char token[128];
		if (holder || !jstr(s.j, "wake"))
			wake_start(&s, &ls);     /* the earlier claim ran out: a new wake */
		jset_str(s.j, "holder", worker);
		jset_num(s.j, "lease", now + jnum(s.j, "lease_ttl_ms"));
		jset_num(s.j, "due", 0);
		if (!(rc = token_make(w, &s, now, token, sizeof token)) && !(rc = sub_store(w, &s))) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "wake_id", jstr(s.j, "wake"));
			cJSON_AddNumberToObject(o, "generation", (double)jnum(s.j, "gen"));
			cJSON_AddStringToObject(o, "token", token);
			cJSON_AddItemToObject(o, "streams", streams_json(&ls, 1));
			cJSON_AddNumberToObject(o, "lease_ttl_ms", (double)jnum(s.j, "lease_ttl_ms"));
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
	int rc = store_sub_scan(t, "k/", 2, key_visit, &ks);
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
	int rc = key_active(w, 1, &ks);
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
	if ((rc = key_active(&ctx->rtxn, 0, &ks)) == ST_OK)
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

/* --- delivery ----------------------------------------------------------------------------- */

struct due_scan {
	int64_t now, next;
	int due;
	size_t n, cap;
	char (*ids)[LS_MAX_SUB_ID + 1];
	int collect;
};

static int due_visit(void *vctx, const unsigned char *key, size_t klen, const void *val, size_t vlen)
{
	struct due_scan *d = vctx;
	const unsigned char *p = val;
	if (vlen < HDR || klen - 2 > LS_MAX_SUB_ID)
		return 0;
	int64_t at = (int64_t)get_be64(p + 1);
	if (!at)
		return 0;
	if (at <= d->now) {
		d->due = 1;
		if (d->collect && d->n < d->cap) {
			memcpy(d->ids[d->n], key + 2, klen - 2);
			d->ids[d->n++][klen - 2] = '\0';
		}
	} else if (!d->next || at < d->next) {
		d->next = at;
	}
	return 0;
}

int subs_due(struct store *st, int64_t now, int64_t *next_ms)
{
	struct store_txn t;
	struct due_scan d = { .now = now };
	store_txn_init(&t, st);
	int rc = store_read_begin(&t);
	if (rc == ST_OK) {
		rc = store_sub_scan(&t, "c/", 2, due_visit, &d);
		store_read_end(&t);
	}
	store_txn_release(&t);
	*next_ms = d.next;
	return rc ? 0 : d.due;
}

void subs_attempt_free(struct subs_attempt *a)
{
	free(a->body);
	a->body = NULL;
	OPENSSL_cleanse(a->key, sizeof a->key);
}

/* Appends a pull-wake event to the subscription's wake stream. */
static int wake_event(struct store_txn *w, struct sub *s, const struct linked *ls, int64_t now,
                      struct subs_woke *woke)
{
	const char *ws = jstr(s->j, "wake_stream");
	struct stream_meta *m = malloc(sizeof *m);
	const char *first = "";
	for (size_t i = 0; i < ls->n; i++)
		if (pending(&ls->v[i])) {
			first = ls->v[i].path;
			break;
		}
	if (!m)
		return ST_ERROR;
	if (core_usable(w, ws, strlen(ws), now, m) != E_OK || m->closed) {
		log_warn("subscription %s: wake stream %s is missing or closed: no wake event written", s->id, ws);
		free(m);
		return ST_OK;
	}
	cJSON *ev = cJSON_CreateObject();
	cJSON_AddStringToObject(ev, "type", "wake");
	cJSON_AddStringToObject(ev, "subscription_id", s->id);
	cJSON_AddStringToObject(ev, "stream", first);
	cJSON_AddNumberToObject(ev, "generation", (double)jnum(s->j, "gen"));
	cJSON_AddNumberToObject(ev, "ts", (double)now);
	char *text = cJSON_PrintUnformatted(ev);
	cJSON_Delete(ev);
	int rc = ST_ERROR;
	if (text) {
		struct messages ms = { 0 };
		size_t len = strlen(text);
		ms.one = (struct span){ 0, (uint32_t)len };
		ms.v = &ms.one;
		ms.n = 1;
		if ((rc = store_room(w, len)) == ST_OK && (rc = messages_append(w, m, text, &ms)) == ST_OK &&
		    (rc = store_meta_put(w, ws, strlen(ws), m)) == ST_OK && woke->n < 16)
			woke->ids[woke->n++] = m->id;
		free(text);
	}
	free(m);
	return rc;
}

/* The webhook body of s's current wake. */
static int webhook_body(struct store_txn *w, struct sub *s, const struct linked *ls, int64_t now,
                        struct subs_attempt *a)
{
	char token[128];
	int rc = token_make(w, s, now, token, sizeof token);
	if (rc)
		return rc;
	/* the wake's snapshot of tails, as a {"done": true} would ack them */
	struct linked snap = *ls;
	struct linked_one *v = malloc((ls->n ? ls->n : 1) * sizeof *v);
	if (!v)
		return ST_ERROR;
	const cJSON *sn = cJSON_GetObjectItemCaseSensitive(s->j, "snap");
	for (size_t i = 0; i < ls->n; i++) {
		v[i] = ls->v[i];
		const char *o = jstr(sn, ls->v[i].path);
		struct offset t;
		if (o && !offset_parse(o, strlen(o), &t) && t.kind == OFFSET_AT)
			v[i].tail = t;
	}
	snap.v = v;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "subscription_id", s->id);
	cJSON_AddStringToObject(o, "wake_id", jstr(s->j, "wake"));
	cJSON_AddNumberToObject(o, "generation", (double)jnum(s->j, "gen"));
	cJSON_AddItemToObject(o, "streams", streams_json(&snap, 1));
	cJSON_AddStringToObject(o, "callback_url", jstr(s->j, "callback_url"));
	cJSON_AddStringToObject(o, "callback_token", token);
	free(v);
	a->body = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!a->body)
		return ST_ERROR;
	a->body_len = strlen(a->body);
	return ST_OK;
}

/* One subscription the deliverer looks at: 1 with *a to send, 0 done. */
static int take_one(struct store_txn *w, const struct config *cfg, const char *id, int64_t now,
                    struct subs_attempt *a, struct subs_woke *woke)
{
	struct sub s = { 0 };
	struct linked ls;
	int rc = sub_load(w, id, &s), send = 0;
	if (rc)
		return rc == ST_NOTFOUND ? 0 : rc;
	if ((rc = linked_load(w, s.num, now, &ls))) {
		sub_free(&s);
		return rc;
	}
	int pull = !strcmp(jstr(s.j, "type"), "pull-wake");
	int64_t att = jnum(s.j, "att"), lease = jnum(s.j, "lease"), due = jnum(s.j, "due");
	if (att && att <= now) {
		/* an attempt that never reported back (its process died) */
		jset_num(s.j, "att", 0);
		att = 0;
		if (!due || due > now)
			jset_num(s.j, "due", due = now);
	}
	if (!att && lease && lease <= now && (jstr(s.j, "wake") || jstr(s.j, "holder"))) {
		wake_clear(&s);
		rearm(&s, &ls, now);
		due = jnum(s.j, "due");
	}
	if (!att && due && due <= now) {
		if (!any_pending(&ls) && !jstr(s.j, "wake")) {
			jset_num(s.j, "due", 0);
		} else if (pull) {
			if (!jstr(s.j, "wake") && !jstr(s.j, "holder")) {
				wake_start(&s, &ls);
				rc = wake_event(w, &s, &ls, now, woke);
				jset_num(s.j, "n_wakes", jnum(s.j, "n_wakes") + 1);
			}
			jset_num(s.j, "due", 0);
		} else {
			if (!jstr(s.j, "wake")) {
				wake_start(&s, &ls);
				jset_num(s.j, "lease", now + jnum(s.j, "lease_ttl_ms"));
			}
			struct keyscan ks = { 0 };
			if (!rc && !(rc = key_active(w, 1, &ks)) && !(rc = webhook_body(w, &s, &ls, now, a))) {
				snprintf(a->id, sizeof a->id, "%s", s.id);
				snprintf(a->url, sizeof a->url, "%s", jstr(s.j, "url"));
				snprintf(a->wake_id, sizeof a->wake_id, "%s", jstr(s.j, "wake"));
				a->gen = (uint64_t)jnum(s.j, "gen");
				a->taken_ms = now;
				memcpy(a->key, ks.active, 32);
				jset_num(s.j, "att", now + cfg->webhook_timeout_ms + 5000);
				send = 1;
			}
			OPENSSL_cleanse(ks.active, sizeof ks.active);
		}
	}
	if (!rc)
		rc = sub_store(w, &s);
	linked_free(&ls);
	sub_free(&s);
	if (rc && send)
		subs_attempt_free(a);
	return rc ? rc : send;
}

int subs_take(struct store *st, const struct config *cfg, int64_t now, struct subs_attempt *a,
              struct subs_woke *woke)
{
	char ids[64][LS_MAX_SUB_ID + 1];
	struct due_scan d = { .now = now, .ids = ids, .cap = 64, .collect = 1 };
	struct store_txn w;
	memset(a, 0, sizeof *a);
	int rc = store_write_begin(&w, st);
	if (rc)
		return rc;
	rc = store_sub_scan(&w, "c/", 2, due_visit, &d);
	int got = 0;
	for (size_t i = 0; rc == ST_OK && !got && i < d.n; i++) {
		int r = take_one(&w, cfg, ids[i], now, a, woke);
		if (r < 0)
			rc = r;
		else
			got = r;
	}
	if (rc == ST_OK && (rc = store_commit(&w, 0)) == ST_OK) {
		woke->txnid = w.committed_txnid;
		return got;
	}
	if (w.active)
		store_abort(&w);
	if (got)
		subs_attempt_free(a);
	return rc;
}

/* Backoff after the n-th failure in a row: 1 s doubling to 60 s, +-20 %. */
static int64_t retry_delay(int64_t n)
{
	int64_t base = RETRY_FIRST_MS;
	for (int64_t i = 1; i < n && base < RETRY_MAX_MS; i++)
		base *= 2;
	if (base > RETRY_MAX_MS)
		base = RETRY_MAX_MS;
	unsigned r = 0;
	RAND_bytes((unsigned char *)&r, sizeof r);
	return base + (int64_t)((double)base * 0.2 * ((double)(r % 20001) / 10000.0 - 1.0));
}

int subs_attempt_end(struct store *st, const struct subs_attempt *a, int64_t now, long status,
                     const char *body, size_t len, const char *why)
{
	struct store_txn w;
	struct sub s = { 0 };
	int rc = store_write_begin(&w, st);
	if (rc)
		return rc;
	if ((rc = sub_load(&w, a->id, &s)) == ST_NOTFOUND) {
		store_abort(&w);
		return ST_OK; /* deleted meanwhile */
	}
	int same = rc == ST_OK && (uint64_t)jnum(s.j, "gen") == a->gen && jstr(s.j, "wake") &&
	           !strcmp(jstr(s.j, "wake"), a->wake_id);
	if (rc == ST_OK) {
		jset_num(s.j, "att", 0);
		jset_num(s.j, status >= 200 && status < 300 ? "n_ok" : "n_failed",
		         jnum(s.j, status >= 200 && status < 300 ? "n_ok" : "n_failed") + 1);
		if (status >= 200 && status < 300) {
			jset_num(s.j, "retry", 0);
			jset_str(s.j, "status", "active");
			cJSON *r = cJSON_ParseWithLength(body ? body : "", len);
			if (same && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "done"))) {
				/* done: the wake's snapshot is acked */
				const cJSON *sn = cJSON_GetObjectItemCaseSensitive(s.j, "snap"), *e;
				cJSON_ArrayForEach(e, sn) {
					struct link l;
					struct offset o;
					size_t pl = strlen(e->string);
					if (cJSON_IsString(e) && !offset_parse(e->valuestring, strlen(e->valuestring), &o) &&
					    link_get(&w, s.num, e->string, pl, &l) == ST_OK && o.seq > l.acked.seq) {
						l.acked = o;
						if ((rc = link_put(&w, s.num, e->string, pl, &l)))
							break;
					}
				}
				wake_clear(&s);
			}
			cJSON_Delete(r);
			if (same && jstr(s.j, "wake"))
				jset_num(s.j, "due", 0); /* now the receiver's: until its callback or the lease */
		} else if (same) {
			int64_t n = jnum(s.j, "retry") + 1;
			jset_num(s.j, "retry", n);
			jset_str(s.j, "status", "failed");
			jset_num(s.j, "due", now + retry_delay(n));
			if (status)
				log_warn("subscription %s: webhook to %s answered %ld; retry %" PRId64 " in %" PRId64 " ms",
				         s.id, a->url, status, n, jnum(s.j, "due") - now);
			else
				log_warn("subscription %s: webhook to %s failed: %s; retry %" PRId64 " in %" PRId64 " ms",
				         s.id, a->url, why && *why ? why : "no answer", n, jnum(s.j, "due") - now);
		}
		if (!jstr(s.j, "wake") && !jstr(s.j, "holder") && rc == ST_OK) {
			struct linked ls;
			if ((rc = linked_load(&w, s.num, now, &ls)) == ST_OK) {
				rearm(&s, &ls, now);
				linked_free(&ls);
			}
		}
	}
	if (rc == ST_OK)
		rc = sub_store(&w, &s);
	sub_free(&s);
	if (rc == ST_OK)
		return store_commit(&w, 0);
	store_abort(&w);
	return rc;
}

/* --- statistics ---------------------------------------------------------------------- */

static int stats_visit(void *vctx, const unsigned char *key, size_t klen, const void *val, size_t vlen)
{
	struct subs_stats *st = vctx;
	const unsigned char *p = val, *nl = vlen > HDR ? memchr(p + HDR, '\n', vlen - HDR) : NULL;
	(void)key;
	(void)klen;
	if (!nl)
		return 0;
	cJSON *j = cJSON_ParseWithLength((const char *)nl + 1, vlen - (size_t)(nl + 1 - p));
	if (!j)
		return 0;
	int pull = jstr(j, "type") && !strcmp(jstr(j, "type"), "pull-wake");
	st->subscriptions[pull]++;
	st->busy += p[0] == 'b';
	st->failing += jstr(j, "status") && !strcmp(jstr(j, "status"), "failed");
	st->webhooks_ok += (uint64_t)jnum(j, "n_ok");
	st->webhooks_failed += (uint64_t)jnum(j, "n_failed");
	st->wake_events += (uint64_t)jnum(j, "n_wakes");
	cJSON_Delete(j);
	return 0;
}

int subs_stats(struct store_txn *t, struct subs_stats *s)
{
	memset(s, 0, sizeof *s);
	return store_sub_scan(t, "c/", 2, stats_visit, s);
}
