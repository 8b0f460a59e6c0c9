/* subs.c: subscriptions (subs.h; PROTOCOL.md 6-7): their records, links,
 * wakes and wake tokens, the signing keys, and the hook of every write.
 * The __ds requests are subs_api.c's; what deliverers take and report,
 * subs_deliver.c's.
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
#include "core/subs_int.h"
#include "core/access.h"
#include "core/core.h"
#include "lib/glob.h"
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

static atomic_int marked;

int subs_marked(void) { return atomic_load(&marked); }
void subs_unmark(void) { atomic_store(&marked, 0); }

void sub_put_be64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

uint64_t sub_get_be64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* --- keys of the subs database ------------------------------------------- */

size_t sub_key(unsigned char *k, const char *id)
{
	size_t n = strlen(id);
	memcpy(k, "c/", 2);
	memcpy(k + 2, id, n);
	return n + 2;
}

/* "l/", the subscription's number (be64), then the path (none when plen is
 * 0: the prefix of all its links). A number, not the id, so that the
 * longest id and the longest path fit LMDB's 511-byte keys. */
size_t link_key(unsigned char *k, uint64_t num, const char *path, size_t plen)
{
	memcpy(k, "l/", 2);
	sub_put_be64(k + 2, num);
	memcpy(k + 10, path, plen);
	return 10 + plen;
}

/* --- a subscription in memory --------------------------------------------- */


void sub_free(struct sub *s)
{
	cJSON_Delete(s->j);
	s->j = NULL;
}

const char *sj_str(const cJSON *j, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

int64_t sj_num(const cJSON *j, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
	return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

void sj_set_num(cJSON *j, const char *k, int64_t v)
{
	cJSON *n = cJSON_CreateNumber((double)v);
	if (n && !cJSON_ReplaceItemInObjectCaseSensitive(j, k, n) && !cJSON_AddItemToObject(j, k, n))
		cJSON_Delete(n);
}

void sj_set_str(cJSON *j, const char *k, const char *v)
{
	cJSON *n = v ? cJSON_CreateString(v) : cJSON_CreateNull();
	if (n && !cJSON_ReplaceItemInObjectCaseSensitive(j, k, n) && !cJSON_AddItemToObject(j, k, n))
		cJSON_Delete(n);
}

int sub_load(struct store_txn *t, const char *id, struct sub *s)
{
	unsigned char k[2 + LS_MAX_SUB_ID];
	const void *v;
	size_t vl;
	int rc = store_sub_get(t, k, sub_key(k, id), &v, &vl);
	if (rc)
		return rc;
	const unsigned char *p = v, *nl = vl > HDR ? memchr(p + HDR, '\n', vl - HDR) : NULL;
	if (!nl)
		return ST_ERROR;
	snprintf(s->id, sizeof s->id, "%s", id);
	s->busy = (char)p[0];
	s->next_ms = (int64_t)sub_get_be64(p + 1);
	s->num = sub_get_be64(p + 9);
	s->j = cJSON_ParseWithLength((const char *)nl + 1, vl - (size_t)(nl + 1 - p));
	return s->j ? ST_OK : ST_ERROR;
}

/* When a deliverer must look at s: an attempt running until it times out,
 * else the due time and the end of an outstanding lease. */
static int64_t sub_next(const struct sub *s)
{
	int64_t att = sj_num(s->j, "att"), due = sj_num(s->j, "due"), lease = sj_num(s->j, "lease");
	if (att)
		return att;
	int64_t n = due;
	if (lease && (sj_str(s->j, "wake") || sj_str(s->j, "holder")) && (!n || lease < n))
		n = lease;
	return n;
}

int sub_store(struct store_txn *w, struct sub *s)
{
	const char *pat = sj_str(s->j, "pattern");
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
	int busy = sj_str(s->j, "wake") || sj_str(s->j, "holder") || sj_num(s->j, "due") || sj_num(s->j, "att");
	v[0] = busy ? 'b' : 'i';
	sub_put_be64(v + 1, (uint64_t)sub_next(s));
	sub_put_be64(v + 9, s->num);
	if (pl)
		memcpy(v + HDR, pat, pl);
	v[HDR + pl] = '\n';
	memcpy(v + HDR + pl + 1, json, jl);
	unsigned char k[2 + LS_MAX_SUB_ID];
	int rc = store_sub_put(w, k, sub_key(k, s->id), v, HDR + pl + 1 + jl);
	free(v);
	free(json);
	return rc;
}

/* --- links -------------------------------------------------------------------- */


int link_get(struct store_txn *t, uint64_t num, const char *path, size_t plen, struct link *l)
{
	unsigned char k[LINK_KEY_MAX];
	const void *v;
	size_t vl;
	int rc = store_sub_get(t, k, link_key(k, num, path, plen), &v, &vl);
	if (rc)
		return rc;
	const char *p = v;
	if (vl != 2 + OFFSET_LEN || p[1] != ' ' || p[0] < '1' || p[0] > '3' ||
	    offset_parse(p + 2, OFFSET_LEN, &l->acked) || l->acked.kind != OFFSET_AT)
		return ST_ERROR;
	l->kinds = p[0] - '0';
	return ST_OK;
}

int link_put(struct store_txn *w, uint64_t num, const char *path, size_t plen, const struct link *l)
{
	unsigned char k[LINK_KEY_MAX];
	char v[2 + OFFSET_LEN + 1];
	v[0] = (char)('0' + l->kinds);
	v[1] = ' ';
	offset_format(v + 2, l->acked.seq, l->acked.bytes);
	return store_sub_put(w, k, link_key(k, num, path, plen), v, 2 + OFFSET_LEN);
}

/* The tail of a stream as subscriptions see it: 0_0 when there is none. */
void link_tail(struct store_txn *t, const char *path, size_t plen, int64_t now, struct offset *o)
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

void linked_free(struct linked *ls)
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

int linked_load(struct store_txn *t, uint64_t num, int64_t now, struct linked *ls)
{
	unsigned char k[LINK_KEY_MAX];
	struct collect c = { ls, link_key(k, num, "", 0), 0 };
	memset(ls, 0, sizeof *ls);
	int rc = store_sub_scan(t, k, c.skip, collect_link, &c);
	if (rc == ST_OK && c.failed)
		rc = ST_ERROR;
	for (size_t i = 0; rc == ST_OK && i < ls->n; i++)
		link_tail(t, ls->v[i].path, ls->v[i].len, now, &ls->v[i].tail);
	if (rc)
		linked_free(ls);
	return rc;
}

int link_pending(const struct linked_one *o)
{
	return o->tail.seq > o->l.acked.seq;
}

int links_pending(const struct linked *ls)
{
	for (size_t i = 0; i < ls->n; i++)
		if (link_pending(&ls->v[i]))
			return 1;
	return 0;
}

/* {path, link_type, acked_offset[, tail_offset, has_pending]} per stream. */
cJSON *links_json(const struct linked *ls, int with_tail)
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
			cJSON_AddBoolToObject(e, "has_pending", link_pending(o));
		}
		cJSON_AddItemToArray(a, e);
	}
	return a;
}

/* --- wakes --------------------------------------------------------------------- */

void sub_random_hex(char *out, size_t nbytes)
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
	const char *nonce = sj_str(s->j, "nonce");
	int n = snprintf(msg, sizeof msg, "%s\n%s\n%" PRIu64 "\n%" PRId64, s->id, nonce ? nonce : "", gen, exp);
	HMAC(EVP_sha256(), secret, 32, (const unsigned char *)msg, (size_t)n, mac, &ml);
	static const char x[] = "0123456789abcdef";
	for (int i = 0; i < 32; i++) {
		hex[2 * i] = x[mac[i] >> 4];
		hex[2 * i + 1] = x[mac[i] & 15];
	}
	hex[64] = '\0';
}

int wake_token_make(struct store_txn *w, const struct sub *s, int64_t now, char *out, size_t cap)
{
	unsigned char secret[32];
	char mac[65];
	int rc = token_secret(w, secret, 1);
	if (rc)
		return rc;
	uint64_t gen = (uint64_t)sj_num(s->j, "gen");
	int64_t exp = now + TOKEN_LIFE_MS;
	token_mac(secret, s, gen, exp, mac);
	snprintf(out, cap, "%" PRIu64 ".%" PRId64 ".%s", gen, exp, mac);
	OPENSSL_cleanse(secret, sizeof secret);
	return ST_OK;
}

/* E_OK, E_SUB_TOKEN (not ours, or expired) or E_FENCED. */
enum proto_err wake_token_check(struct store_txn *t, const struct sub *s, const char *token, int64_t now,
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
	const char *wake = sj_str(s->j, "wake");
	if (gen != (uint64_t)sj_num(s->j, "gen") || req_gen != gen || !wake || !req_wake || strcmp(wake, req_wake))
		return E_FENCED;
	return E_OK;
}

/* Ends the current wake (acked, released or run out). */
void wake_clear(struct sub *s)
{
	sj_set_str(s->j, "wake", NULL);
	sj_set_str(s->j, "holder", NULL);
	sj_set_num(s->j, "lease", 0);
	cJSON_DeleteItemFromObjectCaseSensitive(s->j, "snap");
}

/* Starts a wake: the next generation, a new wake_id, and the tails it
 * covers (a webhook's {"done": true} acks those). */
void wake_start(struct sub *s, const struct linked *ls)
{
	char wid[40];
	memcpy(wid, "w_", 2);
	sub_random_hex(wid + 2, 12);
	sj_set_num(s->j, "gen", sj_num(s->j, "gen") + 1);
	sj_set_str(s->j, "wake", wid);
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
void wake_rearm(struct sub *s, const struct linked *ls, int64_t now)
{
	if (links_pending(ls)) {
		int64_t due = sj_num(s->j, "due");
		sj_set_num(s->j, "due", due > now ? due : now);
		atomic_store(&marked, 1);
	} else {
		sj_set_num(s->j, "due", 0);
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
	hit->num = sub_get_be64(p + 9);
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
			sj_set_num(s.j, "due", now);
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
		rc = store_sub_del(w, k, link_key(k, h.v[i].num, name, nlen));
	}
	free(h.v);
	return rc;
}

/* --- signing keys ---------------------------------------------------------------- */


int subs_key_visit(void *vctx, const unsigned char *key, size_t klen, const void *val, size_t vlen)
{
	struct keyscan *ks = vctx;
	const unsigned char *p = val;
	if (vlen != 48 || klen < 3 || klen - 2 >= 48)
		return 0;
	int64_t retired = (int64_t)sub_get_be64(p + 40);
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
	sub_put_be64(rec + 32, (uint64_t)now);
	sub_put_be64(rec + 40, 0);
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
int subs_key_active(struct store_txn *t, int may_write, struct keyscan *ks)
{
	ks->now = store_now_ms();
	int rc = store_sub_scan(t, "k/", 2, subs_key_visit, ks);
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
	if ((rc = store_sub_scan(&w, "k/", 2, subs_key_visit, &ks)) == ST_OK && ks.have_active) {
		unsigned char k[2 + 48];
		const void *v;
		size_t vl, kl = strlen(ks.kid);
		memcpy(k, "k/", 2);
		memcpy(k + 2, ks.kid, kl);
		if ((rc = store_sub_get(&w, k, 2 + kl, &v, &vl)) == ST_OK && vl == 48) {
			unsigned char rec[48];
			memcpy(rec, v, 48);
			sub_put_be64(rec + 40, (uint64_t)ks.now);
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
