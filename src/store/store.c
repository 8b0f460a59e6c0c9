/* store.c: LMDB storage for streams, messages and producer state. */
#include "store/store.h"
#include "store/internal.h"
#include "lib/dir.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/parse.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

/* Transactions (of any store) this thread holds: see resize_lock. */
static _Thread_local int txns_held;

/* The encoding of stream metadata, written with its version first. Version
 * 1 had no fork fields; version 2 appends them; version 3 appends State and
 * retention fields. Every version is read. */
#define META_VERSION 3


int64_t store_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t store_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void be64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (unsigned char)v;
		v >>= 8;
	}
}

uint64_t get_be64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

int map_rc(struct store *st, int rc, const char *what)
{
	(void)st;
	switch (rc) {
	case 0: return ST_OK;
	case MDB_NOTFOUND: return ST_NOTFOUND;
	case MDB_MAP_FULL: return ST_MAPFULL;
	case MDB_READERS_FULL: return ST_BUSY;
	default:
		log_error("lmdb %s: %s", what, mdb_strerror(rc));
		return ST_ERROR;
	}
}

static int open_sync_file(struct store *st)
{
	char path[600];
	snprintf(path, sizeof path, "%s/lmstream.sync", st->dir);
	st->sync_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0660);
	if (st->sync_fd < 0) {
		log_error("open %s: %s", path, strerror(errno));
		return -1;
	}
	struct stat sb;
	if (fstat(st->sync_fd, &sb) == 0 && sb.st_size < (off_t)sizeof(struct sync_shared) &&
	    ftruncate(st->sync_fd, (off_t)sizeof(struct sync_shared)) < 0) {
		log_error("ftruncate %s: %s", path, strerror(errno));
		return -1;
	}
	void *p = mmap(NULL, sizeof(struct sync_shared), PROT_READ | PROT_WRITE, MAP_SHARED, st->sync_fd, 0);
	if (p == MAP_FAILED) {
		log_error("mmap %s: %s", path, strerror(errno));
		return -1;
	}
	st->sync = p;
	return 0;
}

static int check_format(struct store *st, MDB_txn *txn);

int read_incarnation(struct store *st, MDB_txn *txn, int renew)
{
	MDB_val k = { 11, "incarnation" }, v;
	unsigned char b[8];
	int rc = renew ? MDB_NOTFOUND : mdb_get(txn, st->sys, &k, &v);
	if (rc == 0 && v.mv_size == 8) {
		st->incarnation = get_be64(v.mv_data);
		return ST_OK;
	}
	if (rc && rc != MDB_NOTFOUND)
		return map_rc(st, rc, "get incarnation");
	/* A new store, or a restored one: a value no earlier store had. */
	uint64_t x = 0;
	if (getrandom(&x, sizeof x, 0) != (ssize_t)sizeof x)
		x = (uint64_t)store_now_ms() ^ ((uint64_t)getpid() << 40);
	be64(b, x);
	v.mv_size = 8;
	v.mv_data = b;
	if ((rc = mdb_put(txn, st->sys, &k, &v, 0)))
		return map_rc(st, rc, "put incarnation");
	st->incarnation = x;
	return ST_OK;
}

static int open_dbis(struct store *st)
{
	MDB_txn *txn;
	int rc;

	/* A DBI opened in a transaction becomes usable by the process only once
	 * that transaction commits, so open them all in one write transaction. */
	rc = mdb_txn_begin(st->env, NULL, 0, &txn);
	if (rc)
		return map_rc(st, rc, "txn_begin (open)");
	if ((rc = mdb_dbi_open(txn, "streams", MDB_CREATE, &st->streams)) ||
	    (rc = mdb_dbi_open(txn, "data", MDB_CREATE, &st->data)) ||
	    (rc = mdb_dbi_open(txn, "producers", MDB_CREATE, &st->producers)) ||
	    (rc = mdb_dbi_open(txn, "expiry", MDB_CREATE, &st->expiry)) ||
	    (rc = mdb_dbi_open(txn, "gc", MDB_CREATE, &st->gc)) ||
	    (rc = mdb_dbi_open(txn, "sys", MDB_CREATE, &st->sys)) ||
	    (rc = mdb_dbi_open(txn, "state", MDB_CREATE, &st->state)) ||
	    (rc = mdb_dbi_open(txn, "marks", MDB_CREATE, &st->marks)) ||
	    (rc = mdb_dbi_open(txn, "retain", MDB_CREATE, &st->retain)) ||
	    (rc = mdb_dbi_open(txn, "subs", MDB_CREATE, &st->subs))) {
		mdb_txn_abort(txn);
		return map_rc(st, rc, "dbi_open");
	}
	if ((rc = check_format(st, txn)) != ST_OK || (rc = read_incarnation(st, txn, 0)) != ST_OK) {
		mdb_txn_abort(txn);
		return rc;
	}
	rc = mdb_txn_commit(txn);
	return map_rc(st, rc, "txn_commit (open)");
}

/* Network filesystems, where LMDB's lock file and shared map do not work:
 * its documentation rules out remote filesystems even for processes on one
 * host. Shared hosts often put home directories on NFS. (Magic numbers from
 * statfs(2).) */
static const struct { long type; const char *name; } network_fs[] = {
	{ 0x6969, "NFS" },
	{ 0x517B, "SMB" },
	{ (long)0xFF534D42, "CIFS" },
	{ (long)0xFE534D42, "SMB2" },
	{ 0x5346414F, "AFS" },
	{ 0x6B414653, "AFS" },
	{ 0x73757245, "Coda" },
	{ 0x564c, "NCP" },
	{ 0x01021997, "9P" },
	{ 0x00c36400, "Ceph" },
	{ 0x47504653, "GPFS" },
	{ 0x0BD00BD0, "Lustre" },
};

const char *store_network_fs(long f_type)
{
	for (size_t i = 0; i < sizeof network_fs / sizeof network_fs[0]; i++)
		if ((unsigned long)network_fs[i].type == (unsigned long)f_type)
			return network_fs[i].name;
	return NULL;
}

/* Refuses a data directory on a network filesystem, with a message that
 * says what to do. */
static int refuse_network_fs(const char *dir)
{
	struct statfs fs;
	if (statfs(dir, &fs) < 0) {
		log_error("cannot examine data directory %s: %s", dir, strerror(errno));
		return -1;
	}
	const char *name = store_network_fs((long)fs.f_type);
	if (!name)
		return 0;
	log_error("data directory %s is on %s (a network filesystem), where LMDB's locks and"
	          " shared map do not work: set data_dir to a directory on a local disk",
	          dir, name);
	return -1;
}

static int open_store(struct store **out, const struct config *cfg, int clear_readers);

int store_open(struct store **out, const struct config *cfg)
{
	return open_store(out, cfg, 1);
}

int store_open_keep_readers(struct store **out, const struct config *cfg)
{
	return open_store(out, cfg, 0);
}

static int open_store(struct store **out, const struct config *cfg, int clear_readers)
{
	struct store *st = calloc(1, sizeof *st);
	int rc;

	if (!st)
		return ST_ERROR;
	st->sync_fd = -1;
	st->durability = cfg->durability;
	pthread_rwlock_init(&st->resize_lock, NULL);
	pthread_mutex_init(&st->gate, NULL);
	pthread_cond_init(&st->gate_open, NULL);
	pthread_mutex_init(&st->sweep_mu, NULL);
	pthread_mutex_init(&st->touch_mu, NULL);
	st->reserve = cfg->map_reserve < cfg->map_size / 8 ? cfg->map_reserve : cfg->map_size / 8;
	snprintf(st->dir, sizeof st->dir, "%s", cfg->data_dir);
	if (dir_make(st->dir) < 0) {
		log_error("cannot create data directory %s: %s", st->dir, strerror(errno));
		free(st);
		return ST_ERROR;
	}
	if (refuse_network_fs(st->dir) < 0) {
		free(st);
		return ST_ERROR;
	}
	if ((rc = mdb_env_create(&st->env)) ||
	    (rc = mdb_env_set_maxdbs(st->env, 12)) ||
	    (rc = mdb_env_set_maxreaders(st->env, LS_MAX_READERS)) ||
	    (rc = mdb_env_set_mapsize(st->env, (size_t)cfg->map_size))) {
		log_error("lmdb setup: %s", mdb_strerror(rc));
		goto fail;
	}
	/* NOMETASYNC: the commit flushes the data pages; the meta page is flushed
	 * by store_commit outside the writer lock, shared by concurrent writers.
	 * Power loss can only undo commits that were not yet acknowledged. */
	for (int attempt = 0;; attempt++) {
		rc = mdb_env_open(st->env, st->dir, MDB_NOMETASYNC | MDB_NORDAHEAD, 0660);
		if (rc == 0)
			break;
		/* Opening can race another process's open or close: retry a little. */
		if (attempt >= 20 || rc == ENOENT || rc == EACCES || rc == MDB_VERSION_MISMATCH ||
		    rc == MDB_INVALID) {
			log_error("cannot open LMDB environment in %s: %s", st->dir, mdb_strerror(rc));
			goto fail;
		}
		usleep(5000);
	}
	MDB_stat es;
	mdb_env_stat(st->env, &es);
	st->psize = es.ms_psize;
	int dead = 0;
	if (clear_readers)
		mdb_reader_check(st->env, &dead);
	if (dead)
		log_info("cleared %d stale reader slot(s)", dead);
	if (open_sync_file(st) < 0)
		goto fail;
	rc = open_dbis(st);
	if (rc != ST_OK)
		goto fail_rc;
	*out = st;
	return ST_OK;
fail:
	rc = ST_ERROR;
fail_rc:
	store_close(st);
	return rc;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	if (st->env && st->ntouch)
		store_touch_flush(st, 1);
	if (st->env)
		mdb_env_close(st->env);
	if (st->sync)
		munmap(st->sync, sizeof(struct sync_shared));
	if (st->sync_fd >= 0)
		close(st->sync_fd);
	pthread_rwlock_destroy(&st->resize_lock);
	pthread_mutex_destroy(&st->gate);
	pthread_cond_destroy(&st->gate_open);
	pthread_mutex_destroy(&st->sweep_mu);
	pthread_mutex_destroy(&st->touch_mu);
	free(st->touches);
	free(st);
}

uint64_t store_last_txnid(struct store *st)
{
	MDB_envinfo info;
	mdb_env_info(st->env, &info);
	return info.me_last_txnid;
}

int store_reader_check(struct store *st)
{
	MDB_stat es;
	mdb_env_stat(st->env, &es);
	st->psize = es.ms_psize;
	int dead = 0;
	mdb_reader_check(st->env, &dead);
	return dead;
}

/* resize_lock shared, for a transaction; a thread that holds none first
 * lets a waiting resizer go. */
static void hold_shared(struct store *st)
{
	if (!txns_held && atomic_load(&st->resizers)) {
		pthread_mutex_lock(&st->gate);
		while (atomic_load(&st->resizers))
			pthread_cond_wait(&st->gate_open, &st->gate);
		pthread_mutex_unlock(&st->gate);
	}
	pthread_rwlock_rdlock(&st->resize_lock);
	txns_held++;
}

static void release_shared(struct store *st)
{
	txns_held--;
	pthread_rwlock_unlock(&st->resize_lock);
}

/* Adopts the map size another process set, with no transaction of this
 * process active (the caller held resize_lock shared and gives it up). */
static void adopt_mapsize(struct store *st)
{
	release_shared(st);
	atomic_fetch_add(&st->resizers, 1);
	pthread_rwlock_wrlock(&st->resize_lock);
	mdb_env_set_mapsize(st->env, 0);
	pthread_rwlock_unlock(&st->resize_lock);
	pthread_mutex_lock(&st->gate);
	atomic_fetch_sub(&st->resizers, 1);
	pthread_cond_broadcast(&st->gate_open);
	pthread_mutex_unlock(&st->gate);
	hold_shared(st);
}

/* Begins a transaction with resize_lock held shared (released by txn_end).
 * If another process grew the map, adopt its size and retry. */
static int txn_begin(struct store *st, unsigned flags, MDB_txn **txn)
{
	hold_shared(st);
	int rc = mdb_txn_begin(st->env, NULL, flags, txn);
	if (rc == MDB_MAP_RESIZED) {
		adopt_mapsize(st);
		rc = mdb_txn_begin(st->env, NULL, flags, txn);
	}
	if (rc == MDB_READERS_FULL) {
		/* Slots of dead processes are the usual cause. */
		store_reader_check(st);
		rc = mdb_txn_begin(st->env, NULL, flags, txn);
	}
	if (rc)
		release_shared(st);
	return rc;
}

static void txn_end(struct store *st)
{
	release_shared(st);
}

void store_txn_init(struct store_txn *t, struct store *st)
{
	t->st = st;
	t->txn = NULL;
	t->write = 0;
	t->active = 0;
	t->child = 0;
	t->committed_txnid = 0;
}

int store_read_begin(struct store_txn *t)
{
	int rc;
	if (t->txn) {
		hold_shared(t->st);
		rc = mdb_txn_renew(t->txn);
		if (rc == 0) {
			t->active = 1;
			return ST_OK;
		}
		release_shared(t->st);
		mdb_txn_abort(t->txn);
		t->txn = NULL;
	}
	MDB_txn *txn;
	rc = txn_begin(t->st, MDB_RDONLY, &txn);
	if (rc)
		return map_rc(t->st, rc, "read txn_begin");
	t->txn = txn;
	t->active = 1;
	return ST_OK;
}

void store_read_end(struct store_txn *t)
{
	if (t->txn && t->active) {
		mdb_txn_reset(t->txn);
		txn_end(t->st);
	}
	t->active = 0;
}

void store_txn_release(struct store_txn *t)
{
	if (t->txn && t->active)
		txn_end(t->st);
	if (t->txn)
		mdb_txn_abort(t->txn);
	t->txn = NULL;
	t->active = 0;
}

int store_write_begin(struct store_txn *t, struct store *st)
{
	MDB_txn *txn;
	store_txn_init(t, st);
	int rc = txn_begin(st, 0, &txn);
	if (rc)
		return map_rc(st, rc, "write txn_begin");
	t->txn = txn;
	t->write = 1;
	t->active = 1;
	return ST_OK;
}

int store_child_begin(struct store_txn *t, struct store_txn *parent)
{
	MDB_txn *txn;
	store_txn_init(t, parent->st);
	int rc = mdb_txn_begin(parent->st->env, parent->txn, 0, &txn);
	if (rc)
		return map_rc(parent->st, rc, "child txn_begin");
	t->txn = txn;
	t->write = 1;
	t->active = 1;
	t->child = 1;
	return ST_OK;
}

void store_abort(struct store_txn *t)
{
	if (t->txn) {
		mdb_txn_abort(t->txn);
		if (!t->child)
			txn_end(t->st);
	}
	t->txn = NULL;
	t->active = 0;
}

static void note_synced(struct store *st, uint64_t txnid)
{
	uint64_t cur = atomic_load(&st->sync->synced_txnid);
	while (cur < txnid && !atomic_compare_exchange_weak(&st->sync->synced_txnid, &cur, txnid))
		;
}

/* Every commit flushes its data pages before it writes its meta page, and
 * that flush takes the meta page of the commit before it along: so the
 * commit before the last one is always on disk. (An empty commit neither
 * flushes nor writes a meta page, nor changes the last ID.) */
static void note_covered(struct store *st)
{
	uint64_t last = store_last_txnid(st);
	if (last > 0)
		note_synced(st, last - 1);
}

/* Group commit: make every commit up to txnid durable. The first writer to
 * take the lock flushes for everyone who committed before it; those waiting
 * behind it find their commit covered and return without flushing. */
static int group_sync(struct store *st, uint64_t txnid)
{
	note_covered(st);
	if (atomic_load(&st->sync->synced_txnid) >= txnid)
		return ST_OK;
	while (flock(st->sync_fd, LOCK_EX) < 0) {
		if (errno != EINTR)
			return ST_ERROR;
	}
	int rc = ST_OK;
	if (atomic_load(&st->sync->synced_txnid) < txnid) {
		uint64_t last = store_last_txnid(st);
		uint64_t t0 = metrics_now_us();
		int r = mdb_env_sync(st->env, 1);
		metrics_observe(MH_FLUSH, metrics_now_us() - t0);
		metrics_add(MC_FLUSHES, 1);
		if (r) {
			log_error("fsync: %s", mdb_strerror(r));
			rc = ST_ERROR;
		} else {
			note_synced(st, last);
		}
	}
	flock(st->sync_fd, LOCK_UN);
	return rc;
}

int store_sync_needed(struct store *st, uint64_t txnid)
{
	if (st->durability == DURABILITY_FAST)
		return 0;
	note_covered(st);
	return atomic_load(&st->sync->synced_txnid) < txnid;
}

int store_commit(struct store_txn *t, int nosync)
{
	MDB_txn *txn = t->txn;
	uint64_t id = mdb_txn_id(txn);
	t->txn = NULL;
	t->active = 0;
	if (t->child) {
		int rc = mdb_txn_commit(txn);
		return rc ? map_rc(t->st, rc, "child txn_commit") : ST_OK;
	}
	uint64_t t0 = metrics_now_us();
	int rc = mdb_txn_commit(txn);
	txn_end(t->st);
	if (rc)
		return map_rc(t->st, rc, "txn_commit");
	metrics_observe(MH_COMMIT, metrics_now_us() - t0);
	metrics_add(MC_COMMITS, 1);
	t->committed_txnid = id;
	note_covered(t->st);
	return nosync ? ST_OK : store_sync(t->st, id);
}

int store_sync(struct store *st, uint64_t txnid)
{
	if (st->durability == DURABILITY_FAST)
		return ST_OK;
	return group_sync(st, txnid);
}

/* Pages in use in t's snapshot: those of every database, the free list's
 * own and the two meta pages (free pages are in none of them). */
static uint64_t used_pages(struct store_txn *t)
{
	struct store *st = t->st;
	const MDB_dbi dbis[] = { 0, 1, st->streams, st->data, st->producers, st->expiry, st->gc,
	                         st->sys, st->state, st->marks, st->retain, st->subs };
	uint64_t n = 2;
	for (size_t i = 0; i < sizeof dbis / sizeof dbis[0]; i++) {
		MDB_stat s;
		if (mdb_stat(t->txn, dbis[i], &s) == 0)
			n += s.ms_branch_pages + s.ms_leaf_pages + s.ms_overflow_pages;
	}
	return n;
}

int store_room(struct store_txn *t, uint64_t bytes)
{
	MDB_envinfo info;
	mdb_env_info(t->st->env, &info);
	uint64_t psize = t->st->psize, map = info.me_mapsize;
	/* The rows, their share of pages and the tree pages above them. */
	uint64_t need = (used_pages(t) + 16) * psize + bytes + bytes / 8;
	return need + t->st->reserve <= map ? ST_OK : ST_MAPFULL;
}

uint64_t store_used_bytes(struct store_txn *t)
{
	return used_pages(t) * t->st->psize;
}

/* --- stream metadata ------------------------------------------------- */

static int put_str(unsigned char **p, const char *s, size_t len)
{
	(*p)[0] = (unsigned char)(len >> 8);
	(*p)[1] = (unsigned char)len;
	memcpy(*p + 2, s, len);
	*p += 2 + len;
	return 0;
}

static int get_str(const unsigned char **p, const unsigned char *end, char *out, size_t cap, size_t *len)
{
	if (end - *p < 2)
		return -1;
	size_t n = ((size_t)(*p)[0] << 8) | (*p)[1];
	if ((size_t)(end - *p) < 2 + n || n >= cap)
		return -1;
	memcpy(out, *p + 2, n);
	out[n] = '\0';
	*p += 2 + n;
	if (len)
		*len = n;
	return 0;
}

/* The kind of the media type of ct by the current rule, or by the rule of
 * releases before +json types were JSON. */
static int kind_of(const char *ct, int legacy)
{
	char mt[LS_MAX_CONTENT_TYPE + 1];
	if (parse_media_type(ct, strlen(ct), mt, sizeof mt) <= 0)
		return MEDIA_BINARY;
	return (int)(legacy ? parse_media_kind_legacy(mt) : parse_media_kind(mt));
}

#define META_FIXED (1 + 8 * 10 + 1)
#define META_FORK_FIXED (8 * 6 + 1)
#define META_V3_FIXED (8 * 8 + 1)
#define META_MAX (META_FIXED + 8 + LS_MAX_PRODUCER_ID + LS_MAX_STREAM_SEQ + LS_MAX_CONTENT_TYPE + \
                  LS_MAX_EXPIRES_AT + META_FORK_FIXED + 2 + LS_MAX_PATH_HARD + 1 + \
                  24 * LS_MAX_FORK_DEPTH + META_V3_FIXED)

static size_t meta_encode(const struct stream_meta *m, unsigned char *buf)
{
	unsigned char *p = buf;
	*p++ = META_VERSION;
	be64(p, m->id); p += 8;
	be64(p, m->tail_seq); p += 8;
	be64(p, m->tail_bytes); p += 8;
	be64(p, (uint64_t)m->created_ms); p += 8;
	be64(p, (uint64_t)m->access_ms); p += 8;
	be64(p, (uint64_t)m->expires_ms); p += 8;
	be64(p, m->ttl_s); p += 8;
	be64(p, m->cb_epoch); p += 8;
	be64(p, m->cb_seq); p += 8;
	be64(p, 0); p += 8; /* reserved */
	*p++ = (unsigned char)((m->has_ttl ? 1 : 0) | (m->closed ? 2 : 0) |
	                       (m->closed_by_producer ? 4 : 0) | (m->has_last_seq ? 8 : 0));
	put_str(&p, m->cb_id, m->cb_id_len);
	put_str(&p, m->last_seq, m->last_seq_len);
	put_str(&p, m->content_type, strlen(m->content_type));
	put_str(&p, m->expires_at, strlen(m->expires_at));
	/* Version 2: forks. */
	be64(p, m->fork_refs); p += 8;
	be64(p, m->base_seq); p += 8;
	be64(p, m->source_id); p += 8;
	be64(p, m->fork_seq); p += 8;
	be64(p, m->fork_bytes); p += 8;
	be64(p, m->fork_sub); p += 8;
	*p++ = (unsigned char)((m->soft_deleted ? 1 : 0) | (m->is_fork ? 2 : 0) |
	                       (m->ttl_inherited ? 4 : 0) | (m->expires_inherited ? 8 : 0));
	put_str(&p, m->source, m->source_len);
	*p++ = (unsigned char)m->nseg;
	for (int i = 0; i < m->nseg; i++) {
		be64(p, m->seg[i].id); p += 8;
		be64(p, m->seg[i].from); p += 8;
		be64(p, m->seg[i].to); p += 8;
	}
	/* Version 3: State streams and retention. */
	be64(p, m->state_id); p += 8;
	be64(p, m->first_seq); p += 8;
	be64(p, m->first_bytes); p += 8;
	be64(p, m->purged_seq); p += 8;
	be64(p, m->ret_age_s); p += 8;
	be64(p, m->ret_bytes); p += 8;
	be64(p, (uint64_t)m->last_append_ms); p += 8;
	be64(p, (uint64_t)m->last_mark_ms); p += 8;
	/* Bit 2 says bit 1 is the stream's JSON mode (store_meta_set_json);
	 * metadata without it was written before the mode was recorded. */
	*p++ = (unsigned char)((m->state ? 1 : 0) | (m->media == MEDIA_JSON ? 2 : 0) | 4);
	return (size_t)(p - buf);
}

int meta_decode(const unsigned char *p, size_t len, struct stream_meta *m)
{
	const unsigned char *end = p + len;
	if (len < META_FIXED || p[0] < 1 || p[0] > META_VERSION)
		return -1;
	int version = *p++;
	memset(m, 0, sizeof *m);
	m->id = get_be64(p); p += 8;
	m->tail_seq = get_be64(p); p += 8;
	m->tail_bytes = get_be64(p); p += 8;
	m->created_ms = (int64_t)get_be64(p); p += 8;
	m->access_ms = (int64_t)get_be64(p); p += 8;
	m->expires_ms = (int64_t)get_be64(p); p += 8;
	m->ttl_s = get_be64(p); p += 8;
	m->cb_epoch = get_be64(p); p += 8;
	m->cb_seq = get_be64(p); p += 8;
	p += 8;
	unsigned flags = *p++;
	m->has_ttl = !!(flags & 1);
	m->closed = !!(flags & 2);
	m->closed_by_producer = !!(flags & 4);
	m->has_last_seq = !!(flags & 8);
	if (get_str(&p, end, m->cb_id, sizeof m->cb_id, &m->cb_id_len) ||
	    get_str(&p, end, m->last_seq, sizeof m->last_seq, &m->last_seq_len) ||
	    get_str(&p, end, m->content_type, sizeof m->content_type, NULL) ||
	    get_str(&p, end, m->expires_at, sizeof m->expires_at, NULL))
		return -1;
	/* The JSON mode as the release that wrote the metadata saw it (only
	 * application/json), unless the metadata records it (below). */
	store_meta_set_type(m, m->content_type);
	store_meta_set_json(m, kind_of(m->content_type, 1) == MEDIA_JSON);
	if (version == 1)
		return 0;
	if (end - p < META_FORK_FIXED)
		return -1;
	m->fork_refs = get_be64(p); p += 8;
	m->base_seq = get_be64(p); p += 8;
	m->source_id = get_be64(p); p += 8;
	m->fork_seq = get_be64(p); p += 8;
	m->fork_bytes = get_be64(p); p += 8;
	m->fork_sub = get_be64(p); p += 8;
	flags = *p++;
	m->soft_deleted = !!(flags & 1);
	m->is_fork = !!(flags & 2);
	m->ttl_inherited = !!(flags & 4);
	m->expires_inherited = !!(flags & 8);
	if (get_str(&p, end, m->source, sizeof m->source, &m->source_len) || end - p < 1)
		return -1;
	m->nseg = *p++;
	if (m->nseg > LS_MAX_FORK_DEPTH || (size_t)(end - p) < (size_t)m->nseg * 24)
		return -1;
	for (int i = 0; i < m->nseg; i++) {
		m->seg[i].id = get_be64(p); p += 8;
		m->seg[i].from = get_be64(p); p += 8;
		m->seg[i].to = get_be64(p); p += 8;
	}
	if (version == 2)
		return 0;
	if (end - p < META_V3_FIXED)
		return -1;
	m->state_id = get_be64(p); p += 8;
	m->first_seq = get_be64(p); p += 8;
	m->first_bytes = get_be64(p); p += 8;
	m->purged_seq = get_be64(p); p += 8;
	m->ret_age_s = get_be64(p); p += 8;
	m->ret_bytes = get_be64(p); p += 8;
	m->last_append_ms = (int64_t)get_be64(p); p += 8;
	m->last_mark_ms = (int64_t)get_be64(p); p += 8;
	flags = *p++;
	m->state = flags & 1;
	if (flags & 4)
		store_meta_set_json(m, flags & 2);
	return 0;
}

void store_meta_set_type(struct stream_meta *m, const char *content_type)
{
	if (m->content_type != content_type)
		snprintf(m->content_type, sizeof m->content_type, "%s", content_type);
	m->media = kind_of(m->content_type, 0);
}

void store_meta_set_json(struct stream_meta *m, int json)
{
	if (json)
		m->media = MEDIA_JSON;
	else if (m->media == MEDIA_JSON) /* a +json type of a byte stream: text/x+json stays text */
		m->media = kind_of(m->content_type, 1) == MEDIA_TEXT ? MEDIA_TEXT : MEDIA_BINARY;
}

int64_t store_meta_expiry(const struct stream_meta *m)
{
	int64_t e = 0;
	if (m->soft_deleted)
		return 0;
	if (m->expires_ms)
		e = m->expires_ms;
	if (m->has_ttl) {
		int64_t t = m->access_ms + (int64_t)m->ttl_s * 1000;
		if (!e || t < e)
			e = t;
	}
	return e;
}

int store_meta_get(struct store_txn *t, const char *name, size_t len, struct stream_meta *m)
{
	MDB_val k = { len, (void *)name }, v;
	int rc = mdb_get(t->txn, t->st->streams, &k, &v);
	if (rc)
		return map_rc(t->st, rc, "get meta");
	if (meta_decode(v.mv_data, v.mv_size, m)) {
		log_error("corrupt metadata for a stream (%zu bytes)", v.mv_size);
		return ST_ERROR;
	}
	return ST_OK;
}

/* The expiry index: be64 of the expiry with its sign bit flipped, so keys
 * sort as the times do (also before 1970), then be64 id. */
#define EXPIRY_SIGN (1ULL << 63)

int expiry_key(unsigned char k[16], int64_t expiry, uint64_t id)
{
	be64(k, (uint64_t)expiry ^ EXPIRY_SIGN);
	be64(k + 8, id);
	return 0;
}

static int64_t expiry_of_key(const unsigned char *k)
{
	return (int64_t)(get_be64(k) ^ EXPIRY_SIGN);
}

static int expiry_index(struct store_txn *t, const char *name, size_t len,
                        int64_t old_exp, uint64_t old_id, int64_t new_exp, uint64_t new_id)
{
	unsigned char kb[16];
	MDB_val k = { 16, kb };
	int rc;

	if (old_exp == new_exp && old_id == new_id)
		return ST_OK;
	if (old_exp) {
		expiry_key(kb, old_exp, old_id);
		rc = mdb_del(t->txn, t->st->expiry, &k, NULL);
		if (rc && rc != MDB_NOTFOUND)
			return map_rc(t->st, rc, "del expiry");
	}
	if (new_exp) {
		MDB_val v = { len, (void *)name };
		expiry_key(kb, new_exp, new_id);
		rc = mdb_put(t->txn, t->st->expiry, &k, &v, 0);
		if (rc)
			return map_rc(t->st, rc, "put expiry");
	}
	return ST_OK;
}

/* Does the stream need retention passes: a bound, or trimmed rows left? */
int needs_retain(const struct stream_meta *m)
{
	uint64_t purged = m->purged_seq > m->base_seq ? m->purged_seq : m->base_seq;
	return m->ret_age_s || m->ret_bytes || m->first_seq > purged;
}

int store_meta_put(struct store_txn *t, const char *name, size_t len, const struct stream_meta *m)
{
	unsigned char buf[META_MAX];
	struct stream_meta old;
	int64_t old_exp = 0;
	uint64_t old_id = 0;
	int old_retain = 0;

	if (store_meta_get(t, name, len, &old) == ST_OK) {
		old_exp = store_meta_expiry(&old);
		old_id = old.id;
		old_retain = needs_retain(&old);
	}
	int rc = expiry_index(t, name, len, old_exp, old_id, store_meta_expiry(m), m->id);
	if (rc)
		return rc;
	if (needs_retain(m) && (old_id != m->id || !old_retain)) {
		unsigned char idb[8];
		MDB_val rk = { 8, idb }, rv = { len, (void *)name };
		be64(idb, m->id);
		if ((rc = mdb_put(t->txn, t->st->retain, &rk, &rv, 0)))
			return map_rc(t->st, rc, "put retain");
	}
	MDB_val k = { len, (void *)name }, v = { meta_encode(m, buf), buf };
	rc = mdb_put(t->txn, t->st->streams, &k, &v, 0);
	return map_rc(t->st, rc, "put meta");
}

/* Removes a stream outright: its name, its expiry entry, and (later, in
 * store_housekeep) its rows. */
static int hard_delete(struct store_txn *t, const char *name, size_t len, const struct stream_meta *m)
{
	unsigned char idb[8];
	MDB_val k = { len, (void *)name }, gk = { 8, idb }, gv = { 0, "" };
	int rc = expiry_index(t, name, len, store_meta_expiry(m), m->id, 0, 0);
	if (rc)
		return rc;
	rc = mdb_del(t->txn, t->st->streams, &k, NULL);
	if (rc)
		return map_rc(t->st, rc, "del meta");
	be64(idb, m->id);
	rc = mdb_put(t->txn, t->st->gc, &gk, &gv, 0);
	if (rc)
		return map_rc(t->st, rc, "put gc");
	rc = mdb_del(t->txn, t->st->retain, &gk, NULL);
	if (rc && rc != MDB_NOTFOUND)
		return map_rc(t->st, rc, "del retain");
	if (m->state_id) {
		be64(idb, m->state_id);
		rc = mdb_put(t->txn, t->st->gc, &gk, &gv, 0);
		if (rc)
			return map_rc(t->st, rc, "put gc");
	}
	return ST_OK;
}

int store_meta_del(struct store_txn *t, const char *name, size_t len, const struct stream_meta *m)
{
	if (m->fork_refs) {
		if (m->soft_deleted)
			return ST_OK;
		struct stream_meta soft = *m;
		soft.soft_deleted = 1;
		return store_meta_put(t, name, len, &soft);
	}
	int rc = hard_delete(t, name, len, m);
	if (rc || !m->is_fork)
		return rc;

	/* Release the source; a soft-deleted source released by its last fork
	 * goes too, and so on up the chain (iteratively: chains can be long). */
	char src[LS_MAX_PATH_HARD + 1];
	size_t slen = m->source_len;
	uint64_t sid = m->source_id;
	struct stream_meta s;
	memcpy(src, m->source, slen);
	for (;;) {
		rc = store_meta_get(t, src, slen, &s);
		if (rc == ST_NOTFOUND || (rc == ST_OK && s.id != sid)) {
			log_error("fork source %.*s is missing: nothing to release", (int)slen, src);
			return ST_OK;
		}
		if (rc)
			return rc;
		if (s.fork_refs)
			s.fork_refs--;
		if (s.fork_refs || !s.soft_deleted)
			return store_meta_put(t, src, slen, &s);
		if ((rc = hard_delete(t, src, slen, &s)) || !s.is_fork)
			return rc;
		slen = s.source_len;
		sid = s.source_id;
		memcpy(src, s.source, slen);
	}
}

int store_fork_link(struct stream_meta *fork, struct stream_meta *src, const char *src_name,
                    size_t src_len, uint64_t seq)
{
	int n = 0;
	if (seq > src->tail_seq)
		seq = src->tail_seq;
	for (int i = 0; i < src->nseg && src->seg[i].from < seq; i++) {
		fork->seg[n] = src->seg[i];
		if (fork->seg[n].to > seq)
			fork->seg[n].to = seq;
		n++;
	}
	if (seq > src->base_seq) {
		if (n == LS_MAX_FORK_DEPTH)
			return ST_ERROR;
		fork->seg[n].id = src->id;
		fork->seg[n].from = src->base_seq;
		fork->seg[n].to = seq;
		n++;
	}
	fork->nseg = n;
	fork->is_fork = 1;
	fork->base_seq = seq;
	fork->source_id = src->id;
	fork->source_len = src_len;
	memcpy(fork->source, src_name, src_len);
	fork->source[src_len] = '\0';
	src->fork_refs++;
	return ST_OK;
}

/* --- the store's format ------------------------------------------------ */

/* Format 1 to 2: rebuild the expiry index with order-preserving keys, and
 * delete the streams that expired before 1970 (format 1 accepted such a
 * Stream-Expires-At; its key sorted last, out of housekeeping's reach). */
static int upgrade_to_2(struct store *st, MDB_txn *txn, size_t *removed)
{
	struct store_txn t = { .st = st, .txn = txn, .write = 1, .active = 1 };
	struct stream_meta *m = malloc(sizeof *m);
	struct name { size_t len; char s[LS_MAX_PATH_HARD]; } *bad = NULL;
	size_t nbad = 0, cap = 0;
	MDB_cursor *c = NULL;
	MDB_val k, v;
	int rc = m ? mdb_drop(txn, st->expiry, 0) : ENOMEM;
	if (!rc)
		rc = mdb_cursor_open(txn, st->streams, &c);
	for (int op = MDB_FIRST; !rc; op = MDB_NEXT) {
		if ((rc = mdb_cursor_get(c, &k, &v, op)))
			break;
		if (k.mv_size > LS_MAX_PATH_HARD || meta_decode(v.mv_data, v.mv_size, m)) {
			log_error("upgrade: unreadable metadata of a stream (%zu bytes): left as it is", v.mv_size);
			continue;
		}
		int64_t e = store_meta_expiry(m);
		if (m->expires_ms < 0) {
			if (nbad == cap) {
				cap = cap ? cap * 2 : 16;
				struct name *nb = realloc(bad, cap * sizeof *bad);
				if (!nb) {
					rc = ENOMEM;
					break;
				}
				bad = nb;
			}
			bad[nbad].len = k.mv_size;
			memcpy(bad[nbad++].s, k.mv_data, k.mv_size);
		} else if (e) {
			unsigned char kb[16];
			MDB_val ek = { 16, kb };
			expiry_key(kb, e, m->id);
			rc = mdb_put(txn, st->expiry, &ek, &k, 0);
		}
	}
	if (c)
		mdb_cursor_close(c);
	rc = rc == MDB_NOTFOUND ? ST_OK : map_rc(st, rc, "upgrade");
	/* Deleted one by one: a fork's deletion may release its source. */
	for (size_t i = 0; i < nbad && rc == ST_OK; i++) {
		int g = store_meta_get(&t, bad[i].s, bad[i].len, m);
		if (g == ST_OK && m->expires_ms < 0)
			rc = store_meta_del(&t, bad[i].s, bad[i].len, m);
		else if (g != ST_NOTFOUND && g != ST_OK)
			rc = g;
	}
	*removed = nbad;
	free(bad);
	free(m);
	return rc;
}

static int check_format(struct store *st, MDB_txn *txn)
{
	MDB_val k = { 6, "format" }, v;
	unsigned char b[8];
	uint64_t format = 1;
	int rc = mdb_get(txn, st->sys, &k, &v);
	if (rc == 0 && v.mv_size == 8)
		format = get_be64(v.mv_data);
	else if (rc == 0 || rc != MDB_NOTFOUND)
		return rc ? map_rc(st, rc, "get format") : ST_ERROR;
	if (format == STORE_FORMAT)
		return ST_OK;
	if (format > STORE_FORMAT) {
		log_error("the store in %s has format %llu, newer than this lmstream's %d: run the lmstream "
		          "that wrote it (or a newer one)", st->dir, (unsigned long long)format, STORE_FORMAT);
		return ST_ERROR;
	}
	size_t removed = 0;
	MDB_val nk = { 7, "next_id" };
	int fresh = mdb_get(txn, st->sys, &nk, &v) == MDB_NOTFOUND;
	if (format < 2 && (rc = upgrade_to_2(st, txn, &removed)))
		return rc;
	/* Format 2 to 3: nothing to rewrite (metadata without a recorded JSON
	 * mode keeps the mode it had: meta_decode). */
	be64(b, STORE_FORMAT);
	v.mv_size = 8;
	v.mv_data = b;
	if ((rc = mdb_put(txn, st->sys, &k, &v, 0)))
		return map_rc(st, rc, "put format");
	if (!fresh && format < 2)
		log_info("store in %s upgraded from format %llu to %d (%zu stream(s) that expired before 1970 removed)",
		         st->dir, (unsigned long long)format, STORE_FORMAT, removed);
	else if (!fresh)
		log_info("store in %s upgraded from format %llu to %d", st->dir, (unsigned long long)format, STORE_FORMAT);
	return ST_OK;
}

int store_new_id(struct store_txn *t, uint64_t *id)
{
	MDB_val k = { 7, "next_id" }, v;
	unsigned char b[8];
	uint64_t next = 1;
	int rc = mdb_get(t->txn, t->st->sys, &k, &v);
	if (rc == 0 && v.mv_size == 8)
		next = get_be64(v.mv_data);
	else if (rc && rc != MDB_NOTFOUND)
		return map_rc(t->st, rc, "get next_id");
	be64(b, next + 1);
	v.mv_size = 8;
	v.mv_data = b;
	rc = mdb_put(t->txn, t->st->sys, &k, &v, 0);
	if (rc)
		return map_rc(t->st, rc, "put next_id");
	*id = next;
	return ST_OK;
}

/* --- messages ---------------------------------------------------------- */

int store_msg_put(struct store_txn *t, uint64_t id, uint64_t seq, uint64_t end_bytes,
                  const void *data, size_t len)
{
	unsigned char kb[16];
	MDB_val k = { 16, kb }, v = { len + 8, NULL };
	be64(kb, id);
	be64(kb + 8, seq);
	/* Reserve the value in place and write it once. */
	int rc = mdb_put(t->txn, t->st->data, &k, &v, MDB_RESERVE);
	if (rc)
		return map_rc(t->st, rc, "put data");
	be64(v.mv_data, end_bytes);
	if (len)
		memcpy((unsigned char *)v.mv_data + 8, data, len);
	return ST_OK;
}

/* Calls fn for the messages of id with from <= seq < to. Sets *stopped when
 * fn asked to stop. */
static int scan_range(struct store_txn *t, uint64_t id, uint64_t from, uint64_t to,
                      store_msg_fn fn, void *ctx, int *stopped)
{
	unsigned char kb[16];
	MDB_val k = { 16, kb }, v;
	MDB_cursor *c;
	if (from >= to)
		return ST_OK;
	int rc = mdb_cursor_open(t->txn, t->st->data, &c);
	if (rc)
		return map_rc(t->st, rc, "cursor_open");
	be64(kb, id);
	be64(kb + 8, from);
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (rc == 0) {
		if (k.mv_size != 16 || get_be64(k.mv_data) != id)
			break;
		if (v.mv_size < 8) {
			rc = EINVAL;
			break;
		}
		uint64_t seq = get_be64((unsigned char *)k.mv_data + 8);
		if (seq >= to)
			break;
		if (fn(ctx, seq, get_be64(v.mv_data), (const char *)v.mv_data + 8, v.mv_size - 8)) {
			*stopped = 1;
			break;
		}
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	if (rc == MDB_NOTFOUND)
		rc = 0;
	return map_rc(t->st, rc, "scan data");
}

int store_msg_scan(struct store_txn *t, uint64_t id, uint64_t from, store_msg_fn fn, void *ctx)
{
	int stopped = 0;
	return scan_range(t, id, from, UINT64_MAX, fn, ctx, &stopped);
}

int store_stream_scan(struct store_txn *t, const struct stream_meta *m, uint64_t from,
                      store_msg_fn fn, void *ctx)
{
	int stopped = 0, rc;
	for (int i = 0; i < m->nseg && !stopped; i++) {
		const struct store_segment *g = &m->seg[i];
		if (g->to <= from)
			continue;
		if ((rc = scan_range(t, g->id, from > g->from ? from : g->from, g->to, fn, ctx, &stopped)))
			return rc;
	}
	if (stopped)
		return ST_OK;
	return scan_range(t, m->id, from > m->base_seq ? from : m->base_seq, m->tail_seq, fn, ctx,
	                  &stopped);
}

int store_msg_end_bytes(struct store_txn *t, uint64_t id, uint64_t seq, uint64_t *bytes)
{
	unsigned char kb[16];
	MDB_val k = { 16, kb }, v;
	if (seq == 0) {
		*bytes = 0;
		return ST_OK;
	}
	be64(kb, id);
	be64(kb + 8, seq - 1);
	int rc = mdb_get(t->txn, t->st->data, &k, &v);
	if (rc)
		return map_rc(t->st, rc, "get data");
	if (v.mv_size < 8)
		return ST_ERROR;
	*bytes = get_be64(v.mv_data);
	return ST_OK;
}

int store_stream_end_bytes(struct store_txn *t, const struct stream_meta *m, uint64_t seq,
                           uint64_t *bytes)
{
	if (seq == 0) {
		*bytes = 0;
		return ST_OK;
	}
	if (seq - 1 >= m->base_seq)
		return store_msg_end_bytes(t, m->id, seq, bytes);
	for (int i = 0; i < m->nseg; i++)
		if (m->seg[i].from <= seq - 1 && seq - 1 < m->seg[i].to)
			return store_msg_end_bytes(t, m->seg[i].id, seq, bytes);
	return ST_NOTFOUND;
}

/* --- producers --------------------------------------------------------- */

/* be64 id, then the producer id; or, for a producer of a principal
 * (store.h), be64 id, a 0 byte (no Producer-Id starts with one: header
 * values hold no NUL), the principal's 16 bytes, then the producer id. */
static size_t producer_key(unsigned char *kb, uint64_t id, const unsigned char *who, const char *pid,
                           size_t plen)
{
	size_t n = 8;
	be64(kb, id);
	if (who) {
		kb[n++] = 0;
		memcpy(kb + n, who, STORE_PRINCIPAL_LEN);
		n += STORE_PRINCIPAL_LEN;
	}
	memcpy(kb + n, pid, plen);
	return n + plen;
}

int store_producer_get(struct store_txn *t, uint64_t id, const unsigned char *who, const char *pid,
                       size_t plen, struct producer_state *ps)
{
	unsigned char kb[PRODUCER_KEY_MAX];
	if (plen > LS_MAX_PRODUCER_ID)
		return ST_NOTFOUND;
	MDB_val k = { producer_key(kb, id, who, pid, plen), kb }, v;
	int rc = mdb_get(t->txn, t->st->producers, &k, &v);
	if (rc)
		return map_rc(t->st, rc, "get producer");
	if (v.mv_size != 24)
		return ST_ERROR;
	ps->epoch = get_be64(v.mv_data);
	ps->last_seq = get_be64((unsigned char *)v.mv_data + 8);
	ps->updated_ms = (int64_t)get_be64((unsigned char *)v.mv_data + 16);
	return ST_OK;
}

int store_producer_put(struct store_txn *t, uint64_t id, const unsigned char *who, const char *pid,
                       size_t plen, const struct producer_state *ps)
{
	unsigned char kb[PRODUCER_KEY_MAX], vb[24];
	if (plen > LS_MAX_PRODUCER_ID)
		return ST_ERROR;
	MDB_val k = { producer_key(kb, id, who, pid, plen), kb }, v = { 24, vb };
	be64(vb, ps->epoch);
	be64(vb + 8, ps->last_seq);
	be64(vb + 16, (uint64_t)ps->updated_ms);
	int rc = mdb_put(t->txn, t->st->producers, &k, &v, 0);
	return map_rc(t->st, rc, "put producer");
}

/* Producer state idle for longer than LS_PRODUCER_TTL_MS is forgotten by
 * the protocol (a new epoch starts from seq 0), and its row goes too: a
 * sweep over the producers database, SWEEP_ROWS rows per transaction, each
 * process on from where its last pass stopped. */
#define SWEEP_ROWS 64

static int producer_sweep(struct store_txn *t, int64_t now, int *budget)
{
	struct store *st = t->st;
	MDB_cursor *c;
	MDB_val k, v;
	pthread_mutex_lock(&st->sweep_mu);
	int rc = mdb_cursor_open(t->txn, st->producers, &c);
	if (rc) {
		pthread_mutex_unlock(&st->sweep_mu);
		return map_rc(st, rc, "cursor_open");
	}
	k.mv_size = st->sweep_len;
	k.mv_data = st->sweep_at;
	rc = mdb_cursor_get(c, &k, &v, st->sweep_len ? MDB_SET_RANGE : MDB_FIRST);
	for (int n = 0; rc == 0 && n < SWEEP_ROWS && *budget > 0; n++) {
		const unsigned char *p = v.mv_data;
		if (v.mv_size == 24 && now - (int64_t)get_be64(p + 16) > LS_PRODUCER_TTL_MS) {
			if ((rc = mdb_cursor_del(c, 0)))
				break;
			(*budget)--;
		}
		/* After a deletion the cursor already stands on the next row,
		 * and MDB_NEXT returns that one. */
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	if (rc == 0 && k.mv_size <= sizeof st->sweep_at) {
		memcpy(st->sweep_at, k.mv_data, k.mv_size);
		st->sweep_len = k.mv_size;
	} else {
		st->sweep_len = 0; /* the end (or an error): the next pass starts over */
	}
	mdb_cursor_close(c);
	pthread_mutex_unlock(&st->sweep_mu);
	return rc == 0 || rc == MDB_NOTFOUND ? ST_OK : map_rc(st, rc, "producer sweep");
}

/* --- sliding TTL touches ----------------------------------------------- */

/* Whether a flush of the touches may start now; touch_mu held. */
static int touch_flush_due(struct store *st)
{
	return st->ntouch && !st->touch_flushing &&
	       (st->ntouch == TOUCH_MAX || store_mono_ms() - st->touch_flushed >= LS_TTL_TOUCH_FLUSH_MS);
}

int store_touch_note(struct store *st, const char *name, size_t len, uint64_t id, int64_t at)
{
	if (len > LS_MAX_PATH_HARD)
		return 0;
	pthread_mutex_lock(&st->touch_mu);
	if (!st->touches)
		st->touches = malloc(TOUCH_MAX * sizeof *st->touches);
	size_t i = 0;
	while (i < st->ntouch && st->touches[i].id != id)
		i++;
	if (st->touches && i < TOUCH_MAX) {
		struct touch *t = &st->touches[i];
		if (i == st->ntouch) {
			st->ntouch++;
			t->id = id;
			t->len = len;
			memcpy(t->name, name, len);
		}
		t->at = at;
	}
	/* A full table drops the touch: the next read notes it again. */
	int due = touch_flush_due(st);
	pthread_mutex_unlock(&st->touch_mu);
	return due;
}

/* Moves the pending touches to out (TOUCH_MAX entries); touch_mu held. */
static size_t touch_take(struct store *st, struct touch *out)
{
	size_t n = st->ntouch;
	if (n)
		memcpy(out, st->touches, n * sizeof *out);
	st->ntouch = 0;
	return n;
}

/* Writes touches in the write transaction t: access_ms moves forward, for
 * the stream of that id only, and never for one already expired. */
static int touch_apply(struct store_txn *t, const struct touch *v, size_t n)
{
	struct stream_meta *m = n ? malloc(sizeof *m) : NULL;
	int rc = n && !m ? ST_ERROR : ST_OK;
	for (size_t i = 0; i < n && rc == ST_OK; i++) {
		int g = store_meta_get(t, v[i].name, v[i].len, m);
		int64_t e = g == ST_OK ? store_meta_expiry(m) : 0;
		if (g != ST_OK || m->id != v[i].id || !m->has_ttl || (e && e <= v[i].at) || m->access_ms >= v[i].at)
			continue;
		m->access_ms = v[i].at;
		rc = store_meta_put(t, v[i].name, v[i].len, m);
	}
	free(m);
	return rc;
}

/* In every write transaction of the process (store_housekeep). */
static int touch_pending(struct store_txn *t)
{
	struct store *st = t->st;
	if (!st->ntouch) /* a racy peek: a touch missed here is written by its flusher */
		return ST_OK;
	struct touch *v = malloc(TOUCH_MAX * sizeof *v);
	if (!v)
		return ST_OK;
	pthread_mutex_lock(&st->touch_mu);
	size_t n = touch_take(st, v);
	pthread_mutex_unlock(&st->touch_mu);
	int rc = touch_apply(t, v, n);
	free(v);
	return rc;
}

int store_touch_flush(struct store *st, int always)
{
	pthread_mutex_lock(&st->touch_mu);
	if (!(always ? st->ntouch && !st->touch_flushing : touch_flush_due(st))) {
		pthread_mutex_unlock(&st->touch_mu);
		return ST_OK;
	}
	struct touch *v = malloc(TOUCH_MAX * sizeof *v);
	if (!v) {
		pthread_mutex_unlock(&st->touch_mu);
		return ST_ERROR;
	}
	/* One pass: touches noted meanwhile wait for the next. */
	st->touch_flushing = 1;
	size_t n = touch_take(st, v);
	pthread_mutex_unlock(&st->touch_mu);
	struct store_txn w;
	int rc = store_write_begin(&w, st);
	if (rc == ST_OK) {
		if ((rc = touch_apply(&w, v, n)) == ST_OK)
			/* Nobody was promised an access time: no meta page flush. */
			rc = store_commit(&w, 1);
		else
			store_abort(&w);
	}
	pthread_mutex_lock(&st->touch_mu);
	st->touch_flushing = 0;
	st->touch_flushed = store_mono_ms();
	pthread_mutex_unlock(&st->touch_mu);
	free(v);
	return rc;
}

/* --- housekeeping ------------------------------------------------------ */

/* Deletes up to *budget rows of dbi whose key starts with be64(id). Returns
 * 1 when none are left, 0 when the budget ran out, or an error. */
static int delete_prefix(struct store_txn *t, MDB_dbi dbi, uint64_t id, int *budget)
{
	unsigned char kb[8];
	MDB_val k = { 8, kb }, v;
	MDB_cursor *c;
	int rc = mdb_cursor_open(t->txn, dbi, &c);
	if (rc)
		return map_rc(t->st, rc, "cursor_open");
	int done = 0;
	for (;;) {
		/* Position afresh after every delete: simple and O(log n). */
		be64(kb, id);
		k.mv_size = 8;
		k.mv_data = kb;
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		if (rc)
			break;
		if (k.mv_size < 8 || get_be64(k.mv_data) != id) {
			done = 1;
			break;
		}
		if (*budget <= 0)
			break;
		rc = mdb_cursor_del(c, 0);
		if (rc)
			break;
		(*budget)--;
	}
	mdb_cursor_close(c);
	if (rc == MDB_NOTFOUND)
		return 1;
	if (rc)
		return map_rc(t->st, rc, "gc delete");
	return done;
}

/* --- State streams -------------------------------------------------------- */

static size_t state_key(unsigned char *kb, uint64_t sid, const void *rk, size_t rk_len)
{
	be64(kb, sid);
	if (rk_len) /* rk may be NULL when empty */
		memcpy(kb + 8, rk, rk_len);
	return 8 + rk_len;
}

int store_state_put(struct store_txn *t, uint64_t sid, const void *rk, size_t rk_len, uint64_t seq,
                    const void *value, size_t value_len)
{
	unsigned char kb[8 + 511];
	if (rk_len > 511 - 8)
		return ST_ERROR;
	MDB_val k = { state_key(kb, sid, rk, rk_len), kb }, v = { 8 + value_len, NULL };
	int rc = mdb_put(t->txn, t->st->state, &k, &v, MDB_RESERVE);
	if (rc)
		return map_rc(t->st, rc, "put state");
	be64(v.mv_data, seq);
	memcpy((unsigned char *)v.mv_data + 8, value, value_len);
	return ST_OK;
}

int store_state_del(struct store_txn *t, uint64_t sid, const void *rk, size_t rk_len)
{
	unsigned char kb[8 + 511];
	if (rk_len > 511 - 8)
		return ST_ERROR;
	MDB_val k = { state_key(kb, sid, rk, rk_len), kb };
	int rc = mdb_del(t->txn, t->st->state, &k, NULL);
	return rc == MDB_NOTFOUND ? ST_OK : map_rc(t->st, rc, "del state");
}

int store_state_reset(struct store_txn *t, struct stream_meta *m)
{
	if (m->state_id) {
		unsigned char idb[8];
		MDB_val gk = { 8, idb }, gv = { 0, "" };
		be64(idb, m->state_id);
		int rc = mdb_put(t->txn, t->st->gc, &gk, &gv, 0);
		if (rc)
			return map_rc(t->st, rc, "put gc");
	}
	return store_new_id(t, &m->state_id);
}

int store_state_scan(struct store_txn *t, uint64_t sid, const void *after, size_t after_len,
                     store_row_fn fn, void *ctx)
{
	unsigned char kb[8 + 511];
	MDB_cursor *c;
	if (after_len > 511 - 8)
		return ST_ERROR;
	MDB_val k = { state_key(kb, sid, after, after_len), kb }, v;
	int rc = mdb_cursor_open(t->txn, t->st->state, &c);
	if (rc)
		return map_rc(t->st, rc, "cursor_open");
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	if (rc == 0 && after_len && k.mv_size == 8 + after_len && !memcmp(k.mv_data, kb, 8 + after_len))
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	while (rc == 0) {
		if (k.mv_size < 8 || get_be64(k.mv_data) != sid)
			break;
		if (v.mv_size < 8) {
			rc = EINVAL;
			break;
		}
		if (fn(ctx, (const unsigned char *)k.mv_data + 8, k.mv_size - 8, get_be64(v.mv_data),
		       (const char *)v.mv_data + 8, v.mv_size - 8))
			break;
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	if (rc == MDB_NOTFOUND)
		rc = 0;
	return map_rc(t->st, rc, "scan state");
}

/* --- Retention -------------------------------------------------------------- */

/* How far apart the age bound's time marks are: a 64th of the bound, at
 * least a second. History is kept up to that much longer than the bound. */
static int64_t mark_interval(const struct stream_meta *m)
{
	int64_t every = (int64_t)m->ret_age_s * 1000 / 64;
	return every < 1000 ? 1000 : every;
}

uint64_t store_first_seq(const struct stream_meta *m, int64_t now, uint64_t *bytes)
{
	if (m->ret_age_s && m->last_append_ms && m->tail_seq > m->first_seq &&
	    m->last_append_ms <= now - (int64_t)m->ret_age_s * 1000) {
		*bytes = m->tail_bytes;
		return m->tail_seq;
	}
	*bytes = m->first_bytes;
	return m->first_seq;
}

int store_retain_note(struct store_txn *t, struct stream_meta *m, int64_t now)
{
	if (m->ret_age_s && m->last_append_ms && m->tail_seq > m->first_seq &&
	    now - m->last_mark_ms >= mark_interval(m)) {
		unsigned char kb[16], vb[8];
		MDB_val k = { 16, kb }, v = { 8, vb };
		be64(kb, m->id);
		be64(kb + 8, m->tail_seq);
		be64(vb, (uint64_t)m->last_append_ms);
		int rc = mdb_put(t->txn, t->st->marks, &k, &v, 0);
		if (rc)
			return map_rc(t->st, rc, "put mark");
		m->last_mark_ms = now;
	}
	m->last_append_ms = now;
	return ST_OK;
}

/* The age bound: the latest mark at or before the cutoff. Marks it passes
 * are deleted. */
static int retain_age(struct store_txn *t, struct stream_meta *m, int64_t now, uint64_t *first,
                      int *budget)
{
	int64_t cutoff = now - (int64_t)m->ret_age_s * 1000;
	unsigned char kb[16];
	MDB_val k = { 16, kb }, v;
	MDB_cursor *c;
	uint64_t best = *first;
	int rc = mdb_cursor_open(t->txn, t->st->marks, &c);
	if (rc)
		return map_rc(t->st, rc, "cursor_open");
	be64(kb, m->id);
	be64(kb + 8, 0);
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && *budget > 0) {
		if (k.mv_size != 16 || get_be64(k.mv_data) != m->id || v.mv_size != 8 ||
		    (int64_t)get_be64(v.mv_data) > cutoff)
			break;
		uint64_t seq = get_be64((unsigned char *)k.mv_data + 8);
		if (seq > best && seq <= m->tail_seq)
			best = seq;
		if ((rc = mdb_cursor_del(c, 0)))
			break;
		(*budget)--;
		/* Position afresh after a delete (as delete_prefix does). */
		be64(kb, m->id);
		be64(kb + 8, seq + 1);
		k.mv_size = 16;
		k.mv_data = kb;
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	}
	mdb_cursor_close(c);
	if (rc && rc != MDB_NOTFOUND)
		return map_rc(t->st, rc, "age marks");
	if (m->last_append_ms && m->last_append_ms <= cutoff)
		best = m->tail_seq;
	*first = best;
	return ST_OK;
}

/* Deletes the stream's own rows in [from, to), at most *budget of them.
 * Returns the first seq not known to be deleted. */
static int purge(struct store_txn *t, uint64_t id, uint64_t from, uint64_t to, int *budget,
                 uint64_t *done)
{
	unsigned char kb[16];
	MDB_val k = { 16, kb }, v;
	MDB_cursor *c;
	int rc = mdb_cursor_open(t->txn, t->st->data, &c);
	if (rc)
		return map_rc(t->st, rc, "cursor_open");
	be64(kb, id);
	be64(kb + 8, from);
	*done = from;
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (rc == 0) {
		uint64_t seq;
		if (k.mv_size != 16 || get_be64(k.mv_data) != id ||
		    (seq = get_be64((unsigned char *)k.mv_data + 8)) >= to) {
			*done = to;
			break;
		}
		if (*budget <= 0) {
			*done = seq;
			break;
		}
		if ((rc = mdb_cursor_del(c, 0)))
			break;
		(*budget)--;
		*done = seq + 1;
		be64(kb, id);
		be64(kb + 8, seq + 1);
		k.mv_size = 16;
		k.mv_data = kb;
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	}
	mdb_cursor_close(c);
	if (rc == MDB_NOTFOUND) {
		*done = to;
		rc = 0;
	}
	return map_rc(t->st, rc, "purge");
}

int store_retain(struct store_txn *t, struct stream_meta *m, int64_t now, int *budget)
{
	uint64_t first = m->first_seq, fbytes = m->first_bytes;
	int rc;

	if (m->ret_age_s) {
		if ((rc = retain_age(t, m, now, &first, budget)))
			return rc;
		if (first > m->first_seq) {
			if (first == m->tail_seq)
				fbytes = m->tail_bytes;
			else if ((rc = store_stream_end_bytes(t, m, first, &fbytes)))
				return rc;
		}
	}
	if (m->ret_bytes && m->tail_bytes - fbytes > m->ret_bytes && m->tail_seq > first + 1) {
		/* The smallest s that leaves at most ret_bytes (and at least the
		 * last message): end bytes grow with s, so search. */
		uint64_t lo = first + 1, hi = m->tail_seq - 1, b;
		while (lo < hi) {
			uint64_t mid = lo + (hi - lo) / 2;
			if ((rc = store_stream_end_bytes(t, m, mid, &b)))
				return rc;
			if (m->tail_bytes - b <= m->ret_bytes)
				hi = mid;
			else
				lo = mid + 1;
		}
		if ((rc = store_stream_end_bytes(t, m, lo, &fbytes)))
			return rc;
		first = lo;
	}
	m->first_seq = first;
	m->first_bytes = fbytes;

	/* Delete own rows before first, unless a fork may read them. */
	uint64_t from = m->purged_seq > m->base_seq ? m->purged_seq : m->base_seq;
	if (!m->fork_refs && first > from && *budget > 0) {
		uint64_t done;
		if ((rc = purge(t, m->id, from, first, budget, &done)))
			return rc;
		m->purged_seq = done;
	}
	return ST_OK;
}

/* One stream of the retain index per call, round robin (sys "retain_at"). */
static int retain_pass(struct store_txn *t, int64_t now, int *budget)
{
	unsigned char kb[8];
	MDB_val k = { 7 + 2, "retain_at" }, v, ck = { 8, kb }, cv;
	MDB_cursor *c;
	uint64_t at = 0;
	int rc = mdb_get(t->txn, t->st->sys, &k, &v);
	if (rc == 0 && v.mv_size == 8)
		at = get_be64(v.mv_data);
	rc = mdb_cursor_open(t->txn, t->st->retain, &c);
	if (rc)
		return map_rc(t->st, rc, "cursor_open");
	be64(kb, at + 1);
	rc = mdb_cursor_get(c, &ck, &cv, MDB_SET_RANGE);
	if (rc == MDB_NOTFOUND)
		rc = mdb_cursor_get(c, &ck, &cv, MDB_FIRST);
	if (rc || ck.mv_size != 8) {
		mdb_cursor_close(c);
		return rc == MDB_NOTFOUND || rc == 0 ? ST_OK : map_rc(t->st, rc, "retain first");
	}
	uint64_t id = get_be64(ck.mv_data);
	char name[LS_MAX_PATH_HARD + 1];
	size_t nlen = cv.mv_size < sizeof name ? cv.mv_size : sizeof name - 1;
	memcpy(name, cv.mv_data, nlen);
	mdb_cursor_close(c);

	unsigned char ab[8];
	be64(ab, id);
	v.mv_size = 8;
	v.mv_data = ab;
	if ((rc = mdb_put(t->txn, t->st->sys, &k, &v, 0)))
		return map_rc(t->st, rc, "put retain_at");
	struct stream_meta *m = malloc(sizeof *m);
	if (!m)
		return ST_ERROR;
	rc = store_meta_get(t, name, nlen, m);
	if (rc == ST_OK && m->id == id) {
		uint64_t first = m->first_seq, purged = m->purged_seq;
		rc = store_retain(t, m, now, budget);
		if (rc == ST_OK && (m->first_seq != first || m->purged_seq != purged))
			rc = store_meta_put(t, name, nlen, m);
		if (rc == ST_OK && !needs_retain(m)) {
			ck.mv_size = 8;
			ck.mv_data = ab;
			rc = mdb_del(t->txn, t->st->retain, &ck, NULL);
			rc = rc == MDB_NOTFOUND ? ST_OK : map_rc(t->st, rc, "del retain");
		}
	} else if (rc == ST_OK || rc == ST_NOTFOUND) {
		/* A stale entry: the stream is gone or was re-created. */
		ck.mv_size = 8;
		ck.mv_data = ab;
		rc = mdb_del(t->txn, t->st->retain, &ck, NULL);
		rc = rc == MDB_NOTFOUND ? ST_OK : map_rc(t->st, rc, "del retain");
	}
	free(m);
	return rc;
}

/* Up to 16 expired streams become deleted streams. */
static int expire_pass(struct store_txn *t, int64_t now_ms, int *budget_p)
{
	MDB_cursor *c;
	MDB_val k, v;
	int budget = *budget_p, rc;

	for (int n = 0; n < 16 && budget > 0; n++) {
		rc = mdb_cursor_open(t->txn, t->st->expiry, &c);
		if (rc)
			return map_rc(t->st, rc, "cursor_open");
		rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
		if (rc || k.mv_size != 16 || expiry_of_key(k.mv_data) > now_ms) {
			mdb_cursor_close(c);
			break;
		}
		char name[LS_MAX_PATH_HARD + 1];
		size_t nlen = v.mv_size < sizeof name ? v.mv_size : sizeof name - 1;
		memcpy(name, v.mv_data, nlen);
		uint64_t id = get_be64((unsigned char *)k.mv_data + 8);
		mdb_cursor_del(c, 0);
		mdb_cursor_close(c);
		struct stream_meta m;
		if (store_meta_get(t, name, nlen, &m) == ST_OK && m.id == id) {
			int64_t e = store_meta_expiry(&m);
			if (e && e <= now_ms) {
				if ((rc = store_meta_del(t, name, nlen, &m)))
					return rc;
			} else if (e) {
				/* Stale index entry: put the right one back. */
				unsigned char kb[16];
				MDB_val ek = { 16, kb }, ev = { nlen, name };
				expiry_key(kb, e, id);
				if ((rc = mdb_put(t->txn, t->st->expiry, &ek, &ev, 0)))
					return map_rc(t->st, rc, "put expiry");
			}
		}
		budget--;
	}
	*budget_p = budget;
	return ST_OK;
}

int store_housekeep(struct store_txn *t, int64_t now_ms, int max)
{
	MDB_cursor *c;
	MDB_val k, v;
	int budget = max, rc;

	if ((rc = touch_pending(t)))
		return rc;
	/* Expired streams first: they become deleted streams. */
	if ((rc = expire_pass(t, now_ms, &budget)))
		return rc;

	/* Then reclaim the rows of deleted streams. */
	while (budget > 0) {
		rc = mdb_cursor_open(t->txn, t->st->gc, &c);
		if (rc)
			return map_rc(t->st, rc, "cursor_open");
		rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
		if (rc || k.mv_size != 8) {
			mdb_cursor_close(c);
			if (rc == MDB_NOTFOUND || rc == 0)
				break;
			return map_rc(t->st, rc, "gc first");
		}
		uint64_t id = get_be64(k.mv_data);
		mdb_cursor_close(c);
		/* An id names a stream (data, producers, marks) or a state. */
		int d1 = delete_prefix(t, t->st->data, id, &budget);
		if (d1 < 0)
			return d1;
		int d2 = d1 ? delete_prefix(t, t->st->producers, id, &budget) : 0;
		if (d2 < 0)
			return d2;
		int d3 = d2 ? delete_prefix(t, t->st->state, id, &budget) : 0;
		if (d3 < 0)
			return d3;
		int d4 = d3 ? delete_prefix(t, t->st->marks, id, &budget) : 0;
		if (d4 < 0)
			return d4;
		if (d4 == 1) {
			unsigned char idb[8];
			MDB_val gk = { 8, idb };
			be64(idb, id);
			if ((rc = mdb_del(t->txn, t->st->gc, &gk, NULL)))
				return map_rc(t->st, rc, "del gc");
		} else {
			break;
		}
	}
	if (budget > 0 && (rc = producer_sweep(t, now_ms, &budget)))
		return rc;
	return budget > 0 ? retain_pass(t, now_ms, &budget) : ST_OK;
}
