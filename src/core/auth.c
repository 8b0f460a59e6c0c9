/* auth.c: the keys of a process (auth_key files) and the verification of signed tokens (JWT) with libjwt. */
#include "core/auth.h"
#include "lib/glob.h"
#include "lib/limits.h"
#include "lib/parse.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define AUTH_MAX_KEYS   32
#define KEY_FILE_MAX    (64 * 1024)     /* bytes: larger files are no key */
#define RSA_MIN_BITS    2048
#define CLAIM_MAX_S     253402300799.0  /* 9999-12-31T23:59:59Z: exp and nbf beyond are refused */

struct auth_cache;

struct auth {
	size_t n;
	struct auth_keyfile keys[AUTH_MAX_KEYS];
	struct auth_cache *cache;  /* owned; NULL: no cache (LMSTREAM_BENCH_NO_AUTH_CACHE) */
};

static const char *const right_names[RIGHT__COUNT] = { "read", "write", "admin" };

/* --- patterns ------------------------------------------------------------- */

int patterns_parse(struct patterns *p, const char *list)
{
	const char *w;
	size_t n = 0, len, pos;
	memset(p, 0, sizeof *p);
	for (pos = 0; parse_next_word(list, &pos, &w, &len);)
		n++;
	if (!n)
		return 0;
	if (!(p->v = calloc(n, sizeof *p->v)))
		return -1;
	for (pos = 0; parse_next_word(list, &pos, &w, &len); p->n++) {
		if (!(p->v[p->n] = strndup(w, len))) {
			patterns_free(p);
			return -1;
		}
	}
	return 0;
}

void patterns_free(struct patterns *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->v[i]);
	free(p->v);
	p->v = NULL;
	p->n = 0;
}

int patterns_match(const struct patterns *p, const char *path, size_t path_len)
{
	for (size_t i = 0; i < p->n; i++)
		if (glob_match(p->v[i], strlen(p->v[i]), path, path_len))
			return 1;
	return 0;
}

void grant_free(struct grant *g)
{
	for (int r = 0; r < RIGHT__COUNT; r++)
		patterns_free(&g->rights[r]);
	memset(g, 0, sizeof *g);
}

/* --- key files ------------------------------------------------------------ */

const char *auth_alg_name(int alg)
{
	switch (alg) {
	case AUTH_HS256: return "HS256";
	case AUTH_RS256: return "RS256";
	case AUTH_ES256: return "ES256";
	default: return "?";
	}
}

/* The alg of exactly "HS256", "RS256" or "ES256", else 0. */
static int alg_from_name(const char *s)
{
	for (int alg = AUTH_HS256; alg <= AUTH_ES256; alg++)
		if (!strcmp(s, auth_alg_name(alg)))
			return alg;
	return 0;
}

int auth_key_file(const struct config *cfg, size_t i, char *out, size_t outlen)
{
	const char *w;
	size_t seen = 0, len;
	int n;
	for (size_t pos = 0; parse_next_word(cfg->auth_key, &pos, &w, &len);) {
		if (seen++ == i) {
			if (len >= outlen)
				return -1;
			memcpy(out, w, len);
			out[len] = '\0';
			return 0;
		}
	}
	if (seen || i)
		return 1;
	n = snprintf(out, outlen, "%s/auth.key", cfg->data_dir);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* The key id of path: its file name without directory and last extension
 * (a leading dot starts no extension). Returns 0, or -1 when empty or too long. */
static int key_id(const char *path, char *out, size_t outlen)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	const char *dot = strrchr(base, '.');
	size_t len = dot && dot != base ? (size_t)(dot - base) : strlen(base);
	if (!len || len >= outlen)
		return -1;
	memcpy(out, base, len);
	out[len] = '\0';
	return 0;
}

/* Reads the regular file path, at most KEY_FILE_MAX bytes, into *data
 * (owned; a NUL follows the *len bytes). Refuses a file that group or others
 * may write. Returns 0, or -1 with "path: reason" in err. */
static int read_key_file(const char *path, unsigned char **data, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	size_t n = 0;
	/* O_NONBLOCK: a FIFO named as a key must not hang the start-up. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	*data = NULL;
	if (fd < 0 || fstat(fd, &st)) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	const char *why = !S_ISREG(st.st_mode) ? "not a regular file"
	                  : st.st_mode & (S_IWGRP | S_IWOTH) ? "writable by group or others"
	                  : st.st_size > KEY_FILE_MAX ? "larger than 64 KiB: not a key" : NULL;
	if (!why && !(*data = malloc(KEY_FILE_MAX + 2)))
		why = "out of memory";
	while (!why && n <= KEY_FILE_MAX) {
		ssize_t got = read(fd, *data + n, KEY_FILE_MAX + 1 - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			why = strerror(errno);
		if (got <= 0)
			break;
		n += (size_t)got;
	}
	if (!why && n > KEY_FILE_MAX)
		why = "larger than 64 KiB: not a key";
	close(fd);
	if (why) {
		snprintf(err, errlen, "%s: %s", path, why);
		free(*data);
		*data = NULL;
		return -1;
	}
	(*data)[n] = '\0';
	*len = n;
	unsigned char *fit = realloc(*data, n + 1);
	if (fit)
		*data = fit;
	return 0;
}

/* OpenSSL asks no passphrase: an encrypted key is refused, never prompted for. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return 0;
}

/* The alg of a PEM key: RS256 for RSA of at least RSA_MIN_BITS, ES256 for
 * EC on P-256. Returns it, or 0 with "path: reason" in err. */
static int pkey_alg(EVP_PKEY *pk, const char *path, char *err, size_t errlen)
{
	char curve[80] = "";
	int bits = EVP_PKEY_get_bits(pk);
	switch (EVP_PKEY_get_base_id(pk)) {
	case EVP_PKEY_RSA:
		if (bits >= RSA_MIN_BITS)
			return AUTH_RS256;
		snprintf(err, errlen, "%s: RSA key of %d bits: at least %d are needed", path, bits, RSA_MIN_BITS);
		return 0;
	case EVP_PKEY_EC:
		if (EVP_PKEY_get_group_name(pk, curve, sizeof curve, NULL) && OBJ_sn2nid(curve) == NID_X9_62_prime256v1)
			return AUTH_ES256;
		snprintf(err, errlen, "%s: EC key on curve %s: only P-256 (ES256) is supported", path,
		         *curve ? curve : "(unnamed)");
		return 0;
	default:
		snprintf(err, errlen, "%s: %s key: only RSA (RS256) and EC P-256 (ES256) keys are supported", path,
		         EVP_PKEY_get0_type_name(pk) ? EVP_PKEY_get0_type_name(pk) : "unknown");
		return 0;
	}
}

/* Reads a PEM public key (private_key = 0) or private key (1) from data.
 * Returns NULL when there is none. */
static EVP_PKEY *read_pem(const unsigned char *data, size_t len, int private_key)
{
	EVP_PKEY *pk = NULL;
	BIO *bio = BIO_new_mem_buf(data, (int)len);
	if (bio) {
		pk = private_key ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL)
		                 : PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
		BIO_free(bio);
	}
	ERR_clear_error();
	return pk;
}

/* Why a PEM file holds no key of the kind wanted, in err. */
static void pem_refusal(const struct auth_keyfile *k, const char *path, int private_key, char *err, size_t errlen)
{
	EVP_PKEY *other = read_pem(k->key, k->len, !private_key);
	const char *text = (const char *)k->key;
	if (private_key && other)
		snprintf(err, errlen, "%s is a public key: lmstream only verifies with it; "
		         "sign with the matching private key (--key)", path);
	else if (private_key && strstr(text, "ENCRYPTED"))
		snprintf(err, errlen, "%s: an encrypted private key: not supported (no passphrase is asked)", path);
	else if (!private_key && (other || strstr(text, "PRIVATE KEY-----")))
		snprintf(err, errlen, "%s: a private key: lmstream verifies with the public key "
		         "(openssl pkey -in %s -pubout)", path, path);
	else
		snprintf(err, errlen, "%s: a PEM file without a %s key (\"BEGIN %s\")", path,
		         private_key ? "private" : "public", private_key ? "PRIVATE KEY" : "PUBLIC KEY");
	EVP_PKEY_free(other);
}

/* Classifies the bytes read into k: PEM or secret. Returns 0 or -1 with err. */
static int classify(struct auth_keyfile *k, const char *path, int private_key, char *err, size_t errlen)
{
	if (!memmem(k->key, k->len, "-----BEGIN ", 11)) {
		size_t n = k->len;
		while (n && (k->key[n - 1] == '\n' || k->key[n - 1] == '\r'))
			n--;
		if (n < AUTH_SECRET_MIN) {
			snprintf(err, errlen, "%s: a secret of %zu bytes: at least %d are needed (or a PEM %s key)", path, n,
			         AUTH_SECRET_MIN, private_key ? "private" : "public");
			return -1;
		}
		k->len = n;
		k->alg = AUTH_HS256;
		return 0;
	}
	EVP_PKEY *pk = read_pem(k->key, k->len, private_key);
	if (!pk) {
		pem_refusal(k, path, private_key, err, errlen);
		return -1;
	}
	k->alg = pkey_alg(pk, path, err, errlen);
	EVP_PKEY_free(pk);
	return k->alg ? 0 : -1;
}

int auth_keyfile_load(struct auth_keyfile *k, const char *path, int private_key, char *err, size_t errlen)
{
	memset(k, 0, sizeof *k);
	if (read_key_file(path, &k->key, &k->len, err, errlen))
		return -1;
	if (key_id(path, k->kid, sizeof k->kid)) {
		snprintf(err, errlen, "%s: the file name gives no key id of 1 to %d bytes", path, AUTH_KID_MAX - 1);
		auth_keyfile_free(k);
		return -1;
	}
	if (classify(k, path, private_key, err, errlen)) {
		auth_keyfile_free(k);
		return -1;
	}
	return 0;
}

void auth_keyfile_free(struct auth_keyfile *k)
{
	if (k->key) {
		OPENSSL_cleanse(k->key, k->len);
		free(k->key);
	}
	memset(k, 0, sizeof *k);
}

/* --- the cache of verified tokens ------------------------------------------ */

/* A set-associative table: a token's hash picks one of CACHE_SETS sets of
 * CACHE_WAYS slots, each set with its own mutex (threads that present
 * different tokens seldom wait for each other). A slot holds a copy of the
 * whole token, which a lookup compares byte for byte (the hash only picks
 * the set), and what its verification gave: exp, nbf, sub and the patterns.
 * Only verified tokens are put in; a full set gives up the slot of an
 * expired token, else its least recently used one. The cache belongs to its
 * struct auth: the keys it was verified with are the ones it lives with. */
#define CACHE_SETS 128
#define CACHE_WAYS 4

struct cache_slot {
	uint64_t hash;
	/* owned, NULL when the slot is empty: the token (len bytes and a NUL),
	 * then sub, then every pattern of rights[0], rights[1] and rights[2],
	 * each NUL-terminated */
	char *block;
	size_t len, bytes;          /* the token's bytes; the block's */
	int64_t exp_ms, nbf_ms;     /* nbf_ms INT64_MIN: no "nbf" */
	uint64_t used;              /* the set's clock at the last use */
	uint32_t npat[RIGHT__COUNT];
};

struct cache_set {
	pthread_mutex_t lock;
	uint64_t clock, hits, misses;
	size_t bytes;               /* the blocks of its slots */
	struct cache_slot slot[CACHE_WAYS];
};

struct auth_cache {
	struct cache_set set[CACHE_SETS];
};

/* murmur3's finalizer: every bit of x reaches every bit of the result. */
static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	return x ^ (x >> 33);
}

/* A hash of the token's bytes, to pick a set (never to decide a match). */
static uint64_t token_hash(const char *t, size_t len)
{
	uint64_t h = len, w;
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		memcpy(&w, t + i, 8);
		h = (h ^ mix64(w)) * 0x9e3779b97f4a7c15ULL;
		h = h << 31 | h >> 33;
	}
	w = 0;
	memcpy(&w, t + i, len - i);
	return mix64(h ^ mix64(w ^ 0x5bd1e995ULL));
}

static struct cache_set *cache_set_of(struct auth_cache *c, uint64_t hash)
{
	return &c->set[(hash >> 32) % CACHE_SETS];
}

static struct auth_cache *cache_new(void)
{
	struct auth_cache *c = calloc(1, sizeof *c);
	for (size_t i = 0; c && i < CACHE_SETS; i++) {
		if (pthread_mutex_init(&c->set[i].lock, NULL)) {
			while (i--)
				pthread_mutex_destroy(&c->set[i].lock);
			free(c);
			return NULL;
		}
	}
	return c;
}

static void slot_clear(struct cache_set *s, struct cache_slot *e)
{
	s->bytes -= e->bytes;
	free(e->block);
	memset(e, 0, sizeof *e);
}

static void cache_free(struct auth_cache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < CACHE_SETS; i++) {
		for (size_t w = 0; w < CACHE_WAYS; w++)
			slot_clear(&c->set[i], &c->set[i].slot[w]);
		pthread_mutex_destroy(&c->set[i].lock);
	}
	free(c);
}

/* Whether a token of exp_ms and nbf_ms is valid at now_ms: NULL, or why
 * not, by check_times' rules. */
static const char *times_ok(int64_t exp_ms, int64_t nbf_ms, int64_t now_ms, int skew_s)
{
	int64_t skew_ms = skew_s > 0 ? (int64_t)skew_s * 1000 : 0;
	if (now_ms >= exp_ms + skew_ms)
		return "expired";
	if (nbf_ms != INT64_MIN && now_ms + skew_ms < nbf_ms)
		return "not yet valid";
	return NULL;
}

/* Fills g (empty) from slot e: an independent copy. Returns 0 or -1 when
 * out of memory (g is then empty). */
static int grant_from_slot(const struct cache_slot *e, struct grant *g)
{
	const char *p = e->block + e->len + 1;
	size_t n = strlen(p);
	memcpy(g->sub, p, n + 1);
	p += n + 1;
	g->exp_ms = e->exp_ms;
	for (int r = 0; r < RIGHT__COUNT; r++) {
		if (!e->npat[r])
			continue;
		struct patterns *pt = &g->rights[r];
		if (!(pt->v = calloc(e->npat[r], sizeof *pt->v)))
			goto oom;
		for (; pt->n < e->npat[r]; pt->n++) {
			n = strlen(p);
			if (!(pt->v[pt->n] = malloc(n + 1)))
				goto oom;
			memcpy(pt->v[pt->n], p, n + 1);
			p += n + 1;
		}
	}
	return 0;
oom:
	grant_free(g);
	return -1;
}

/* Looks token up. Returns 1 with *g (a copy) when it is there and valid at
 * now_ms, 1 with *why when it is there but expired or not yet valid (the
 * slot is dropped), 0 when it is not there. */
static int cache_get(struct auth_cache *c, const char *token, size_t len, int64_t now_ms, int skew_s,
                     struct grant *g, const char **why)
{
	uint64_t h = token_hash(token, len);
	struct cache_set *s = cache_set_of(c, h);
	int found = 0;
	pthread_mutex_lock(&s->lock);
	for (size_t w = 0; w < CACHE_WAYS && !found; w++) {
		struct cache_slot *e = &s->slot[w];
		if (!e->block || e->hash != h || e->len != len || memcmp(e->block, token, len))
			continue;
		found = 1;
		if ((*why = times_ok(e->exp_ms, e->nbf_ms, now_ms, skew_s)))
			slot_clear(s, e);
		else if (grant_from_slot(e, g))
			found = 0; /* out of memory: verified again */
		else
			e->used = ++s->clock;
	}
	if (found)
		s->hits++;
	else
		s->misses++;
	pthread_mutex_unlock(&s->lock);
	return found;
}

/* Which slot of a full set goes first: 0 an empty one, 1 one that is not
 * valid at now_ms, 2 one that is (then the least recently used). */
static int slot_rank(const struct cache_slot *e, int64_t now_ms, int skew_s)
{
	return !e->block ? 0 : times_ok(e->exp_ms, e->nbf_ms, now_ms, skew_s) ? 1 : 2;
}

/* Puts the verified token and its grant g in the cache. Out of memory,
 * it is left out. */
static void cache_put(struct auth_cache *c, const char *token, size_t len, int64_t nbf_ms,
                      const struct grant *g, int64_t now_ms, int skew_s)
{
	size_t bytes = len + 1 + strlen(g->sub) + 1;
	for (int r = 0; r < RIGHT__COUNT; r++)
		for (size_t i = 0; i < g->rights[r].n; i++)
			bytes += strlen(g->rights[r].v[i]) + 1;
	char *block = malloc(bytes), *p = block;
	if (!block)
		return;
	memcpy(p, token, len);
	p[len] = '\0';
	p += len + 1;
	p = stpcpy(p, g->sub) + 1;
	for (int r = 0; r < RIGHT__COUNT; r++)
		for (size_t i = 0; i < g->rights[r].n; i++)
			p = stpcpy(p, g->rights[r].v[i]) + 1;

	uint64_t h = token_hash(token, len);
	struct cache_set *s = cache_set_of(c, h);
	struct cache_slot *victim = NULL;
	pthread_mutex_lock(&s->lock);
	for (size_t w = 0; w < CACHE_WAYS; w++) {
		struct cache_slot *e = &s->slot[w];
		if (e->block && e->hash == h && e->len == len && !memcmp(e->block, token, len)) {
			victim = e; /* another thread put it in meanwhile: replaced */
			break;
		}
		int rank = slot_rank(e, now_ms, skew_s), vrank = victim ? slot_rank(victim, now_ms, skew_s) : 3;
		if (rank < vrank || (rank == vrank && e->used < victim->used))
			victim = e;
	}
	slot_clear(s, victim);
	*victim = (struct cache_slot){ .hash = h, .block = block, .len = len, .bytes = bytes, .exp_ms = g->exp_ms,
	                               .nbf_ms = nbf_ms, .used = ++s->clock };
	for (int r = 0; r < RIGHT__COUNT; r++)
		victim->npat[r] = (uint32_t)g->rights[r].n;
	s->bytes += bytes;
	pthread_mutex_unlock(&s->lock);
}

void auth_cache_stats(const struct auth *a, struct auth_cache_stats *out)
{
	memset(out, 0, sizeof *out);
	if (!a || !a->cache)
		return;
	out->capacity = CACHE_SETS * CACHE_WAYS;
	out->bytes = sizeof *a->cache;
	for (size_t i = 0; i < CACHE_SETS; i++) {
		struct cache_set *s = &a->cache->set[i];
		pthread_mutex_lock(&s->lock);
		out->hits += s->hits;
		out->misses += s->misses;
		out->bytes += s->bytes;
		for (size_t w = 0; w < CACHE_WAYS; w++)
			out->entries += s->slot[w].block != NULL;
		pthread_mutex_unlock(&s->lock);
	}
}

/* --- opening -------------------------------------------------------------- */

/* Loads the key file path into a. Returns 0 or -1 with err. */
static int add_key(struct auth *a, const char *path, char *err, size_t errlen)
{
	if (a->n == AUTH_MAX_KEYS) {
		snprintf(err, errlen, "auth_key: more than %d key files", AUTH_MAX_KEYS);
		return -1;
	}
	struct auth_keyfile *k = &a->keys[a->n];
	if (auth_keyfile_load(k, path, 0, err, errlen))
		return -1;
	for (size_t j = 0; j < a->n; j++) {
		if (!strcmp(a->keys[j].kid, k->kid)) {
			snprintf(err, errlen, "%s: key id \"%s\" is another key file's too: rename one", path, k->kid);
			auth_keyfile_free(k);
			return -1;
		}
	}
	a->n++;
	return 0;
}

int auth_open(struct auth **out, const struct config *cfg, char *err, size_t errlen)
{
	char path[sizeof cfg->auth_key + sizeof cfg->data_dir + 16];
	struct auth *a = calloc(1, sizeof *a);
	int r = 0;
	*out = NULL;
	if (!a) {
		snprintf(err, errlen, "auth_key: out of memory");
		return -1;
	}
	for (size_t i = 0; r == 0; i++) {
		r = auth_key_file(cfg, i, path, sizeof path);
		if (r < 0)
			snprintf(err, errlen, "auth_key: a file name is too long");
		if (r == 0 && add_key(a, path, err, errlen))
			r = -1;
	}
	/* The cache is only a speed-up: without memory for it, none. */
	const char *off = getenv("LMSTREAM_BENCH_NO_AUTH_CACHE");
	if (r >= 0 && !(off && *off && strcmp(off, "0")))
		a->cache = cache_new();
	if (r < 0) {
		auth_close(a);
		return -1;
	}
	*out = a;
	return 0;
}

void auth_close(struct auth *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->n; i++)
		auth_keyfile_free(&a->keys[i]);
	cache_free(a->cache);
	free(a);
}

size_t auth_nkeys(const struct auth *a)
{
	return a ? a->n : 0;
}

/* --- verifying ------------------------------------------------------------ */

/* Whether token (len bytes) looks like a signed JWT: three base64url parts
 * separated by dots, the first two not empty. */
static int token_shape(const char *t, size_t len)
{
	size_t dots = 0, part = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)t[i];
		if (c == '.') {
			if (dots++ < 2 && !part)
				return 0;
			part = 0;
		} else if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
		           c == '_') {
			part++;
		} else {
			return 0;
		}
	}
	return dots == 2;
}

/* Reads the header of token without verifying it: its alg (*alg) and kid
 * (kid, "" with *has_kid = 0 when absent). Returns NULL or why not. */
static const char *read_header(const char *token, int *alg, char *kid, size_t cap, int *has_kid)
{
	jwt_t *j = NULL;
	const char *why = NULL;
	/* Without a key libjwt 1.10 parses without verifying, and then reports
	 * JWT_ALG_NONE from jwt_get_alg whatever the token says: the header's
	 * "alg" string is read instead. */
	if (jwt_decode(&j, token, NULL, 0) || !j)
		return "malformed token";
	const char *s = jwt_get_header(j, "alg");
	const char *k = jwt_get_header(j, "kid");
	char *raw_kid = k ? NULL : jwt_get_headers_json(j, "kid");
	if (!s)
		why = "malformed token";
	else if (!strcasecmp(s, "none"))
		why = "alg none";
	else if (!(*alg = alg_from_name(s)))
		why = "unsupported alg";
	else if (raw_kid)
		why = "malformed kid"; /* present but not a string */
	else if (k && strlen(k) >= cap)
		why = "unknown key";
	*has_kid = k != NULL;
	snprintf(kid, cap, "%s", k && !why ? k : "");
	free(raw_kid);
	jwt_free(j);
	return why;
}

/* Verifies token with its candidate keys: the key named by kid (NULL: every
 * key), and only keys of the token's alg, so that a public key is never an
 * HMAC secret. Returns NULL with *out (the verified token) or why not. */
static const char *check_signature(const struct auth *a, const char *token, int alg, const char *kid, jwt_t **out)
{
	int named = 0;
	/* libjwt 1.10 (Debian 12) writes past a malloc(0) when it decodes an
	 * empty RS256/ES256 signature: such a token never reaches it. */
	if (!strrchr(token, '.')[1])
		return "bad signature";
	for (size_t i = 0; i < a->n; i++) {
		const struct auth_keyfile *k = &a->keys[i];
		if (kid && strcmp(kid, k->kid))
			continue;
		named = 1;
		if (k->alg != alg)
			continue;
		jwt_t *v = NULL;
		if (jwt_decode(&v, token, k->key, (int)k->len) || !v)
			continue;
		/* libjwt verified with the alg the token names: it must be the key's. */
		if (jwt_get_alg(v) == jwt_str_alg(auth_alg_name(k->alg))) {
			*out = v;
			return NULL;
		}
		jwt_free(v);
	}
	return kid && !named ? "unknown key" : "bad signature";
}

/* A NumericDate claim as ms: a number in [0, CLAIM_MAX_S]. Returns 0 or -1. */
static int claim_ms(const cJSON *c, int64_t *ms)
{
	if (!cJSON_IsNumber(c) || !(c->valuedouble >= 0 && c->valuedouble <= CLAIM_MAX_S))
		return -1;
	*ms = (int64_t)(c->valuedouble * 1000.0); /* >= 0: truncation is floor */
	return 0;
}

/* Reads "exp" (*exp_ms) and "nbf" (*nbf_ms, INT64_MIN when absent) and
 * checks them at now_ms (times_ok). Returns NULL or why not. */
static const char *check_times(const cJSON *claims, int64_t now_ms, int skew_s, int64_t *exp_ms, int64_t *nbf_ms)
{
	const cJSON *nbf = cJSON_GetObjectItemCaseSensitive(claims, "nbf");
	*nbf_ms = INT64_MIN;
	if (claim_ms(cJSON_GetObjectItemCaseSensitive(claims, "exp"), exp_ms))
		return "no exp";
	if (now_ms >= *exp_ms + (skew_s > 0 ? (int64_t)skew_s * 1000 : 0))
		return "expired";
	if (nbf && claim_ms(nbf, nbf_ms))
		return "bad nbf";
	return times_ok(*exp_ms, *nbf_ms, now_ms, skew_s);
}

/* Copies the "sub" claim into out (cap bytes), cut at a UTF-8 character. */
static const char *read_sub(const cJSON *claims, char *out, size_t cap)
{
	const cJSON *sub = cJSON_GetObjectItemCaseSensitive(claims, "sub");
	if (!sub)
		return NULL;
	if (!cJSON_IsString(sub))
		return "malformed sub";
	const char *s = sub->valuestring;
	size_t n = strlen(s);
	if (n >= cap) {
		n = cap - 1;
		while (n && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(out, s, n);
	out[n] = '\0';
	return NULL;
}

/* Sets p to the strings of the JSON array arr. Returns 0, or -1 when an
 * element is not a string or out of memory. */
static int set_patterns(struct patterns *p, const cJSON *arr)
{
	int n = cJSON_GetArraySize(arr);
	patterns_free(p);
	if (n <= 0)
		return 0;
	if (!(p->v = calloc((size_t)n, sizeof *p->v)))
		return -1;
	for (const cJSON *e = arr->child; e; e = e->next) {
		if (!cJSON_IsString(e) || !(p->v[p->n] = strdup(e->valuestring)))
			return -1;
		p->n++;
	}
	return 0;
}

/* Reads the "lmstream" claim: an object whose members are "read", "write"
 * and "admin", each an array of strings. */
static const char *read_rights(const cJSON *claims, struct patterns rights[RIGHT__COUNT])
{
	const cJSON *ls = cJSON_GetObjectItemCaseSensitive(claims, "lmstream");
	if (!ls)
		return NULL;
	if (!cJSON_IsObject(ls))
		return "malformed lmstream claim";
	for (const cJSON *m = ls->child; m; m = m->next) {
		int r = 0;
		while (r < RIGHT__COUNT && strcmp(m->string, right_names[r]))
			r++;
		if (r == RIGHT__COUNT || !cJSON_IsArray(m) || set_patterns(&rights[r], m))
			return "malformed lmstream claim";
	}
	return NULL;
}

/* Checks the claims of the verified token v and fills g and *nbf_ms. */
static const char *read_claims(jwt_t *v, int64_t now_ms, int skew_s, struct grant *g, int64_t *nbf_ms)
{
	char *text = jwt_get_grants_json(v, NULL);
	cJSON *claims = text ? cJSON_Parse(text) : NULL;
	const char *why = NULL;
	free(text);
	if (!cJSON_IsObject(claims))
		why = "malformed claims";
	if (!why)
		why = check_times(claims, now_ms, skew_s, &g->exp_ms, nbf_ms);
	if (!why)
		why = read_sub(claims, g->sub, sizeof g->sub);
	if (!why)
		why = read_rights(claims, g->rights);
	cJSON_Delete(claims);
	return why;
}

int auth_verify(const struct auth *a, const char *token, int64_t now_ms, int skew_s,
                struct grant *g, const char **why)
{
	char kid[AUTH_KID_MAX];
	int alg = 0, has_kid = 0;
	jwt_t *v = NULL;
	int64_t nbf_ms = INT64_MIN;
	size_t len = token ? strnlen(token, LS_MAX_TOKEN + 1) : 0;

	memset(g, 0, sizeof *g);
	*why = NULL;
	if (!a)
		*why = "no key";
	else if (!token || !*token)
		*why = "no token";
	else if (len > LS_MAX_TOKEN)
		*why = "token too long";
	else if (a->cache && cache_get(a->cache, token, len, now_ms, skew_s, g, why))
		return *why ? -1 : 0; /* the same bytes were verified with these keys */
	else if (!token_shape(token, len))
		*why = "malformed token";
	if (!*why)
		*why = read_header(token, &alg, kid, sizeof kid, &has_kid);
	if (!*why)
		*why = check_signature(a, token, alg, has_kid ? kid : NULL, &v);
	if (!*why)
		*why = read_claims(v, now_ms, skew_s, g, &nbf_ms);
	jwt_free(v);
	ERR_clear_error(); /* libjwt leaves OpenSSL's errors of a failed check */
	if (*why) {
		grant_free(g);
		return -1;
	}
	if (a->cache)
		cache_put(a->cache, token, len, nbf_ms, g, now_ms, skew_s);
	return 0;
}

/* --- signing (lmstreamctl) ------------------------------------------------ */

char *auth_rights_json(const struct patterns rights[RIGHT__COUNT])
{
	cJSON *root = cJSON_CreateObject(), *ls = NULL;
	char *text = NULL;
	int ok = root != NULL;
	for (int r = 0; ok && r < RIGHT__COUNT; r++) {
		if (!rights[r].n)
			continue;
		if (!ls)
			ok = (ls = cJSON_AddObjectToObject(root, "lmstream")) != NULL;
		cJSON *arr = ok ? cJSON_CreateStringArray((const char *const *)rights[r].v, (int)rights[r].n) : NULL;
		ok = arr && cJSON_AddItemToObject(ls, right_names[r], arr);
		if (!ok)
			cJSON_Delete(arr);
	}
	if (ok)
		text = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	return text;
}

int auth_principal(const char *kind, const char *name, unsigned char out[16])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	int ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) && EVP_DigestUpdate(c, kind, strlen(kind)) &&
	         EVP_DigestUpdate(c, name, strlen(name)) && EVP_DigestFinal_ex(c, md, &n) && n >= 16;
	EVP_MD_CTX_free(c);
	if (ok)
		memcpy(out, md, 16);
	return ok ? 0 : -1;
}
