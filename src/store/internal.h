/* internal.h: what the files of the store share (store.c, admin.c,
 * verify.c): the store's structure and the encodings of its rows. Only
 * src/store includes it, and only src/store includes lmdb.h. */
#ifndef LS_STORE_INTERNAL_H
#define LS_STORE_INTERNAL_H
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include "store/store.h"

#define PRODUCER_KEY_MAX (8 + 1 + STORE_PRINCIPAL_LEN + LS_MAX_PRODUCER_ID)

/* A read that counts as access to a stream with a sliding TTL. */
struct touch {
	uint64_t id;
	int64_t at;
	size_t len;
	char name[LS_MAX_PATH_HARD];
};
#define TOUCH_MAX 256

/* Shared between processes through a small mapped file: the highest
 * transaction id known to be on disk (group commit). */
struct sync_shared {
	_Atomic uint64_t synced_txnid;
};

struct store {
	MDB_env *env;
	MDB_dbi streams, data, producers, expiry, gc, sys, state, marks, retain, subs;
	enum durability durability;
	uint64_t reserve;       /* map_reserve, at most an eighth of the map */
	size_t psize;           /* LMDB page size */
	/* Where this process's sweep of idle producer state stands (a key of
	 * the producers database; 0 bytes: from the start). */
	pthread_mutex_t sweep_mu;
	/* Sliding TTL touches noted by reads and not yet written (store.h). */
	pthread_mutex_t touch_mu;
	int touch_flushing;
	int64_t touch_flushed;  /* store_mono_ms of the last flush */
	size_t ntouch;
	struct touch *touches;  /* TOUCH_MAX, allocated at the first touch */
	size_t sweep_len;
	unsigned char sweep_at[PRODUCER_KEY_MAX];
	int sync_fd;
	struct sync_shared *sync;
	char dir[512];
	uint64_t incarnation;  /* sys "incarnation", read at open (store.h) */
	/* Every transaction holds this shared; adopting a map grown by another
	 * process (mdb_env_set_mapsize) needs it exclusive: no transaction may
	 * be active in the process then. glibc's rwlock lets new readers in
	 * while a writer waits, so under steady reads the adoption could wait
	 * forever: resizers counts threads waiting to adopt, and a thread that
	 * holds no transaction waits at the gate while it is not 0 (a thread
	 * that holds one goes on: it must finish for the adoption to happen). */
	pthread_rwlock_t resize_lock;
	atomic_int resizers;
	pthread_mutex_t gate;
	pthread_cond_t gate_open;
};

/* The format of the store as a whole, in sys "format" (be64). A store
 * without it is format 1. Format 2 keys the expiry index by the expiry
 * with its sign bit flipped (order-preserving for times before 1970, which
 * format 1 sorted after every other) and has no stream that expired before
 * 1970. Format 3 records each stream's JSON mode in its metadata (a +json
 * type is JSON in streams created since, and stays bytes in those created
 * before, whose metadata does not record it): a release before it would read
 * the JSON streams of +json types as bytes, so it must not open such a store.
 * The upgrade from 2 changes no row. store_open upgrades older formats in
 * place, in one transaction, and refuses newer ones. */
#define STORE_FORMAT 3

/* Big-endian 64-bit integers, the keys of every database. */
void be64(unsigned char *p, uint64_t v);
uint64_t get_be64(const unsigned char *p);
/* An LMDB return code as an enum store_rc (errors logged with what). */
int map_rc(struct store *st, int rc, const char *what);
/* Decodes a streams value. Returns 0 or -1. */
int meta_decode(const unsigned char *p, size_t len, struct stream_meta *m);
/* The key of the expiry index for (expiry, id). */
int expiry_key(unsigned char k[16], int64_t expiry, uint64_t id);
/* Whether the stream belongs in the retain index. */
int needs_retain(const struct stream_meta *m);
/* Reads sys "incarnation" into st (writing a random one when there is
 * none, or always when renew is set) in the write transaction txn. */
int read_incarnation(struct store *st, MDB_txn *txn, int renew);

#endif
