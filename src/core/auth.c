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

struct auth {
	size_t n;
	struct auth_keyfile keys[AUTH_MAX_KEYS];
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

static const char *check_times(const cJSON *claims, int64_t now_ms, int skew_s, int64_t *exp_ms)
{
	const cJSON *nbf = cJSON_GetObjectItemCaseSensitive(claims, "nbf");
	int64_t skew_ms = skew_s > 0 ? (int64_t)skew_s * 1000 : 0, nbf_ms;
	if (claim_ms(cJSON_GetObjectItemCaseSensitive(claims, "exp"), exp_ms))
		return "no exp";
	if (now_ms >= *exp_ms + skew_ms)
		return "expired";
	if (nbf && claim_ms(nbf, &nbf_ms))
		return "bad nbf";
	if (nbf && now_ms + skew_ms < nbf_ms)
		return "not yet valid";
	return NULL;
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

/* Checks the claims of the verified token v and fills g. */
static const char *read_claims(jwt_t *v, int64_t now_ms, int skew_s, struct grant *g)
{
	char *text = jwt_get_grants_json(v, NULL);
	cJSON *claims = text ? cJSON_Parse(text) : NULL;
	const char *why = NULL;
	free(text);
	if (!cJSON_IsObject(claims))
		why = "malformed claims";
	if (!why)
		why = check_times(claims, now_ms, skew_s, &g->exp_ms);
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
	size_t len = token ? strnlen(token, LS_MAX_TOKEN + 1) : 0;

	memset(g, 0, sizeof *g);
	*why = NULL;
	if (!a)
		*why = "no key";
	else if (!token || !*token)
		*why = "no token";
	else if (len > LS_MAX_TOKEN)
		*why = "token too long";
	else if (!token_shape(token, len))
		*why = "malformed token";
	if (!*why)
		*why = read_header(token, &alg, kid, sizeof kid, &has_kid);
	if (!*why)
		*why = check_signature(a, token, alg, has_kid ? kid : NULL, &v);
	if (!*why)
		*why = read_claims(v, now_ms, skew_s, g);
	jwt_free(v);
	ERR_clear_error(); /* libjwt leaves OpenSSL's errors of a failed check */
	if (*why) {
		grant_free(g);
		return -1;
	}
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
