/* auth.h: signed tokens (JWT), verified with libjwt: the keys of a process
 * and what a verified token grants. The rules that decide a request live in
 * access.c; this module only knows keys and tokens.
 *
 * Keys come from auth_key: one or more files, separated by spaces. A file
 * holding a PEM public key ("-----BEGIN PUBLIC KEY-----") is an RS256 (RSA,
 * at least 2048 bits) or ES256 (EC P-256) key; a file without PEM armour is
 * an HS256 secret (its bytes, without trailing CR/LF; at least 32 bytes);
 * any other PEM file (a private key, another curve, a short RSA key) is
 * refused. A key file that group or others may write is refused. A key's id
 * ("kid") is its file name without directory and last extension, so
 * "keys/2024.pem" (private, for lmstreamctl) and "keys/2024.pub" (public,
 * for the server) share the id "2024": a token whose header names a kid is
 * checked with that key only; a token without one with every key.
 * A token is accepted only when its header's "alg" is exactly its key's:
 * never "none", never an HS256 token checked against an RSA public key. */
#ifndef LS_AUTH_H
#define LS_AUTH_H
#include <stddef.h>
#include <stdint.h>
#include "lib/config.h"

enum right { RIGHT_READ, RIGHT_WRITE, RIGHT_ADMIN, RIGHT__COUNT };

/* Path patterns (lib/glob.h), as NUL-terminated strings. */
struct patterns {
	size_t n;
	char **v;               /* owned */
};

/* What a verified token says. */
struct grant {
	char sub[128];          /* "sub", "" when absent (cut to fit, at a UTF-8 character) */
	int64_t exp_ms;         /* "exp" in ms since the epoch */
	struct patterns rights[RIGHT__COUNT];  /* "lmstream": {"read": [...], ...} */
};

struct auth;

/* Loads the keys named by cfg->auth_key (an empty auth_key means the file
 * auth.key in cfg->data_dir). Returns 0 with *out (owned: auth_close), or
 * -1 with a one-line reason in err naming the file. Two files with the same
 * key id are refused. */
int auth_open(struct auth **out, const struct config *cfg, char *err, size_t errlen);
void auth_close(struct auth *a);    /* NULL is fine */

/* How many keys were loaded. */
size_t auth_nkeys(const struct auth *a);

/* Verifies token (NUL terminated) at now_ms, allowing skew_s seconds of
 * clock difference for "exp" and "nbf" ("exp" is required; a token is
 * expired from exp + skew on, valid from nbf - skew on). Returns 0 with *g
 * filled (release with grant_free), or -1 with *g empty and a short static
 * reason in *why that never contains the token. Safe to call from many
 * threads at once with one struct auth.
 *
 * A token verified once is remembered by its struct auth (512 tokens at
 * most, the least recently used go first): the same bytes again are not
 * verified again, but exp and nbf are checked at every now_ms as above, and
 * *g is a copy as before. A refused token is never remembered; a new
 * struct auth (new keys) starts with none. The environment variable
 * LMSTREAM_BENCH_NO_AUTH_CACHE=1, when auth_open runs, turns this off (for
 * tests/bench/run). */
int auth_verify(const struct auth *a, const char *token, int64_t now_ms, int skew_s,
                struct grant *g, const char **why);

/* What the cache of verified tokens holds and did (all 0 without one). */
struct auth_cache_stats {
	uint64_t hits, misses;  /* auth_verify calls looked up (a token of 1 to LS_MAX_TOKEN bytes):
	                         * answered from it, and verified */
	size_t entries;         /* tokens held */
	size_t capacity;        /* tokens it can hold */
	size_t bytes;           /* its memory: the table and the copies its entries own */
};
void auth_cache_stats(const struct auth *a, struct auth_cache_stats *out);

void grant_free(struct grant *g);

/* Whether path (path_len bytes, relative to the prefix) matches one of p. */
int patterns_match(const struct patterns *p, const char *path, size_t path_len);

/* Parses a space-separated list of patterns (public_read, public_write).
 * Returns 0 or -1 when out of memory (p is then empty). */
int patterns_parse(struct patterns *p, const char *list);
void patterns_free(struct patterns *p);

/* --- shared with lmstreamctl (src/front/ctl.c), which signs tokens --------- */

#define AUTH_SECRET_MIN 32  /* bytes of an HS256 secret */
#define AUTH_KID_MAX    128 /* bytes of a key id, NUL included */

enum auth_alg { AUTH_HS256 = 1, AUTH_RS256, AUTH_ES256 };

/* One key file, read and classified. */
struct auth_keyfile {
	int alg;                /* enum auth_alg */
	char kid[AUTH_KID_MAX]; /* the file name without directory and last extension */
	unsigned char *key;     /* owned: the bytes libjwt takes (the secret, or the PEM text) */
	size_t len;
};

/* Reads and classifies the key file path: for verifying (private_key = 0)
 * a secret or a PEM public key, for signing (private_key = 1) a secret or
 * an unencrypted PEM private key. Returns 0 with *k (release with
 * auth_keyfile_free), or -1 with "path: reason" in err. */
int auth_keyfile_load(struct auth_keyfile *k, const char *path, int private_key, char *err, size_t errlen);
void auth_keyfile_free(struct auth_keyfile *k);

/* The name of alg as in a token's header: "HS256", "RS256" or "ES256". */
const char *auth_alg_name(int alg);

/* Writes the i-th file of cfg->auth_key (from 0; <data_dir>/auth.key when
 * auth_key is empty) to out. Returns 0, 1 past the last file, or -1 when
 * the name does not fit. */
int auth_key_file(const struct config *cfg, size_t i, char *out, size_t outlen);

/* The claims that carry rights, as JSON text: {"lmstream": {"read": [...],
 * ...}} with only the rights that have patterns, "{}" with none. Returns
 * the text (owned: free) or NULL when out of memory. */
char *auth_rights_json(const struct patterns rights[RIGHT__COUNT]);

/* The first 16 bytes of SHA-256(kind name): a fixed-size name of a
 * principal (producer state is kept per principal). Returns 0, or -1. */
int auth_principal(const char *kind, const char *name, unsigned char out[16]);

#endif
