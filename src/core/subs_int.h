/* subs_int.h: what the files of subscriptions share (subs.c: records,
 * links, wakes, wake tokens, signing keys and the write hook; subs_api.c:
 * the __ds requests; subs_deliver.c: what deliverers take and report).
 * Internal to src/core; subs.h is the interface. */
#ifndef LS_SUBS_INT_H
#define LS_SUBS_INT_H
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include "core/errors.h"
#include "core/request.h"
#include "lib/limits.h"
#include "lib/offset.h"
#include "store/store.h"

#define HDR 17                                 /* flag byte, be64 next_ms, be64 number */
#define DEFAULT_LEASE_MS 30000
#define MIN_LEASE_MS 1000
#define MAX_LEASE_MS 600000
#define TOKEN_LIFE_MS (24LL * 60 * 60 * 1000)  /* a claim heartbeats with one token */
#define RETRY_FIRST_MS 1000
#define RETRY_MAX_MS 60000
#define KEY_KEEP_MS (60LL * 60 * 1000)         /* a retired key stays in the JWKS */
#define MAX_EXPLICIT 1024
#define MAX_DESCRIPTION 1024
#define LINK_KEY_MAX (10 + LS_MAX_PATH_HARD)

/* A subscription as loaded: its record's header and JSON part. */
struct sub {
	char id[LS_MAX_SUB_ID + 1];
	char busy;
	int64_t next_ms;
	uint64_t num;      /* keys its links (link_key), from store_new_id */
	cJSON *j;          /* the JSON part, owned */
};

/* One linked stream. */
struct link {
	int kinds;                 /* 1 glob, 2 explicit */
	struct offset acked;
};

/* The linked streams of a subscription, in path order, with their tails. */
struct linked {
	size_t n, cap;
	struct linked_one {
		char *path;
		size_t len;
		struct link l;
		struct offset tail;
	} *v;
};

/* A pass over the signing keys: the active one, and the JWKS when asked. */
struct keyscan {
	int64_t now;
	int have_active;
	unsigned char active[32];
	char kid[48];
	cJSON *jwks;               /* when set: the JWK of every key still published */
	size_t nstale;
	char stale[8][48];         /* retired longer than KEY_KEEP_MS */
};

/* Big-endian numbers of record headers and keys. */
void sub_put_be64(unsigned char *p, uint64_t v);
uint64_t sub_get_be64(const unsigned char *p);

/* Keys: "c/" id, and "l/" number path (plen 0: the prefix of all links). */
size_t sub_key(unsigned char *k, const char *id);
size_t link_key(unsigned char *k, uint64_t num, const char *path, size_t plen);

/* Records: load (ST_NOTFOUND when there is none), store (the header made
 * from the JSON state), free. The JSON fields: sj_*. */
void sub_free(struct sub *s);
const char *sj_str(const cJSON *j, const char *k);
int64_t sj_num(const cJSON *j, const char *k);
void sj_set_num(cJSON *j, const char *k, int64_t v);
void sj_set_str(cJSON *j, const char *k, const char *v);
int sub_load(struct store_txn *t, const char *id, struct sub *s);
int sub_store(struct store_txn *w, struct sub *s);

/* Links and the tails of the streams they name (0_0: no stream). */
int link_get(struct store_txn *t, uint64_t num, const char *path, size_t plen, struct link *l);
int link_put(struct store_txn *w, uint64_t num, const char *path, size_t plen, const struct link *l);
void link_tail(struct store_txn *t, const char *path, size_t plen, int64_t now, struct offset *o);
void linked_free(struct linked *ls);
int linked_load(struct store_txn *t, uint64_t num, int64_t now, struct linked *ls);

/* Whether the stream has events past its acked offset; whether any has;
 * {path, link_type, acked_offset[, tail_offset, has_pending]} of each. */
int link_pending(const struct linked_one *o);
int links_pending(const struct linked *ls);
cJSON *links_json(const struct linked *ls, int with_tail);

/* nbytes random bytes as hex (2 * nbytes characters and a NUL). */
void sub_random_hex(char *out, size_t nbytes);

/* Wake tokens of the current generation; check: E_OK, E_SUB_TOKEN or E_FENCED. */
int wake_token_make(struct store_txn *w, const struct sub *s, int64_t now, char *out, size_t cap);
enum proto_err wake_token_check(struct store_txn *t, const struct sub *s, const char *token, int64_t now,
                                uint64_t req_gen, const char *req_wake);

/* Ends the wake; starts the next generation with a new wake_id and the
 * tails it covers; after a wake, due again at once when work is pending. */
void wake_clear(struct sub *s);
void wake_start(struct sub *s, const struct linked *ls);
void wake_rearm(struct sub *s, const struct linked *ls, int64_t now);

/* The signing keys: a store_sub_scan callback over "k/", and the active key
 * (made when there is none and t may write; else ST_NOTFOUND). */
int subs_key_visit(void *vctx, const unsigned char *key, size_t klen, const void *val, size_t vlen);
int subs_key_active(struct store_txn *t, int may_write, struct keyscan *ks);

#endif
