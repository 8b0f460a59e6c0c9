/* admin.c: the store as lmstreamctl sees it: streams and producers listed,
 * online backups, reader slots, space, the incarnation. */
#include "store/internal.h"
#include "lib/log.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

uint64_t store_incarnation(const struct store *st)
{
	return st->incarnation;
}

int store_renew_incarnation(struct store *st)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(st->env, NULL, 0, &txn);
	if (rc)
		return map_rc(st, rc, "txn_begin (incarnation)");
	if ((rc = read_incarnation(st, txn, 1)) != ST_OK) {
		mdb_txn_abort(txn);
		return rc;
	}
	/* Made durable at once, whatever the durability mode. */
	if ((rc = mdb_txn_commit(txn)) || (rc = mdb_env_sync(st->env, 1)))
		return map_rc(st, rc, "commit (incarnation)");
	return ST_OK;
}

int store_meta_scan(struct store_txn *t, const char *after, size_t after_len, store_meta_fn fn, void *ctx)
{
	MDB_cursor *c;
	MDB_val k = { after_len, (void *)after }, v;
	struct stream_meta *m = malloc(sizeof *m);
	int rc = m ? mdb_cursor_open(t->txn, t->st->streams, &c) : ENOMEM;
	if (rc) {
		free(m);
		return rc == ENOMEM ? ST_ERROR : map_rc(t->st, rc, "cursor_open");
	}
	if (after_len) {
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		if (rc == 0 && k.mv_size == after_len && !memcmp(k.mv_data, after, after_len))
			rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	} else {
		rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	}
	for (; rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size > LS_MAX_PATH_HARD || meta_decode(v.mv_data, v.mv_size, m)) {
			log_error("unreadable metadata of a stream (%zu bytes): skipped", v.mv_size);
			continue;
		}
		if (fn(ctx, k.mv_data, k.mv_size, m))
			break;
	}
	mdb_cursor_close(c);
	free(m);
	return rc == MDB_NOTFOUND ? ST_OK : map_rc(t->st, rc, "scan streams");
}

int store_producer_scan(struct store_txn *t, uint64_t id, store_producer_fn fn, void *ctx)
{
	unsigned char kb[8];
	MDB_val k = { 8, kb }, v;
	MDB_cursor *c;
	int rc = mdb_cursor_open(t->txn, t->st->producers, &c);
	if (rc)
		return map_rc(t->st, rc, "cursor_open");
	be64(kb, id);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size < 8 || get_be64(k.mv_data) != id)
			break;
		if (v.mv_size != 24)
			continue;
		struct producer_state ps = {
			.epoch = get_be64(v.mv_data),
			.last_seq = get_be64((unsigned char *)v.mv_data + 8),
			.updated_ms = (int64_t)get_be64((unsigned char *)v.mv_data + 16),
		};
		if (fn(ctx, (const unsigned char *)k.mv_data + 8, k.mv_size - 8, &ps))
			break;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND || rc == 0 ? ST_OK : map_rc(t->st, rc, "scan producers");
}

int store_producer_put_raw(struct store_txn *t, uint64_t id, const unsigned char *key, size_t klen,
                           const struct producer_state *ps)
{
	unsigned char kb[PRODUCER_KEY_MAX], vb[24];
	if (klen == 0 || klen > PRODUCER_KEY_MAX - 8)
		return ST_ERROR;
	be64(kb, id);
	memcpy(kb + 8, key, klen);
	MDB_val k = { 8 + klen, kb }, v = { 24, vb };
	be64(vb, ps->epoch);
	be64(vb + 8, ps->last_seq);
	be64(vb + 16, (uint64_t)ps->updated_ms);
	return map_rc(t->st, mdb_put(t->txn, t->st->producers, &k, &v, 0), "put producer");
}

int store_backup(struct store *st, const char *dir)
{
	char path[1024];
	struct stat sb;
	if (snprintf(path, sizeof path, "%s/data.mdb", dir) >= (int)sizeof path)
		return ST_ERROR;
	if (stat(path, &sb) == 0) {
		log_error("backup: %s exists already", path);
		return ST_ERROR;
	}
	/* One read transaction: the copy is the store as of one commit. */
	int rc = mdb_env_copy2(st->env, dir, MDB_CP_COMPACT);
	if (rc) {
		log_error("backup to %s: %s", dir, mdb_strerror(rc));
		return ST_ERROR;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ok = fd >= 0 && dfd >= 0 && fsync(fd) == 0 && fsync(dfd) == 0;
	if (!ok)
		log_error("backup: cannot flush %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	return ok ? ST_OK : ST_ERROR;
}

int store_in_use(const char *dir)
{
	char path[1024];
	if (snprintf(path, sizeof path, "%s/lock.mdb", dir) >= (int)sizeof path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	/* Every process with the environment open holds a shared lock on the
	 * lock file's first byte (LMDB's test for the first opener): a write
	 * lock would conflict with it. */
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };
	int r = fcntl(fd, F_GETLK, &fl);
	int e = errno;
	close(fd);
	if (r < 0) {
		errno = e;
		return -1;
	}
	return fl.l_type != F_UNLCK;
}

struct reader_list {
	struct store_reader *out;
	int max, n;
};

/* One line of mdb_reader_list: "pid thread txnid", txnid "-" when idle. */
static int reader_line(const char *msg, void *ctx)
{
	struct reader_list *rl = ctx;
	long pid;
	unsigned long thread;
	char txn[32];
	if (sscanf(msg, "%ld %lx %31s", &pid, &thread, txn) != 3)
		return 0;
	if (rl->n < rl->max) {
		struct store_reader *r = &rl->out[rl->n];
		r->pid = pid;
		r->thread = thread;
		r->txnid = strcmp(txn, "-") ? strtoull(txn, NULL, 10) : 0;
		r->stale = kill((pid_t)pid, 0) < 0 && errno == ESRCH;
	}
	rl->n++;
	return 0;
}

int store_readers(struct store *st, struct store_reader *out, int max, int *n)
{
	struct reader_list rl = { out, max, 0 };
	if (mdb_reader_list(st->env, reader_line, &rl) < 0)
		return ST_ERROR;
	*n = rl.n;
	return ST_OK;
}

/* Entries of a database in t. */
static uint64_t entries(MDB_txn *txn, MDB_dbi dbi)
{
	MDB_stat s;
	return mdb_stat(txn, dbi, &s) == 0 ? s.ms_entries : 0;
}

int store_stats(struct store *st, struct store_stats *s)
{
	MDB_envinfo info;
	struct store_txn t;
	char path[1024];
	struct stat sb;

	memset(s, 0, sizeof *s);
	mdb_env_info(st->env, &info);
	s->map_size = info.me_mapsize;
	s->page_size = st->psize;
	s->last_page = info.me_last_pgno;
	s->last_txnid = info.me_last_txnid;
	s->max_readers = info.me_maxreaders;
	s->readers = info.me_numreaders;
	s->incarnation = st->incarnation;
	snprintf(path, sizeof path, "%s/data.mdb", st->dir);
	if (stat(path, &sb) == 0)
		s->file_bytes = (uint64_t)sb.st_size;
	store_txn_init(&t, st);
	int rc = store_read_begin(&t);
	if (rc)
		return rc;
	MDB_txn *txn = t.txn;
	s->used_bytes = store_used_bytes(&t);
	s->streams = entries(txn, st->streams);
	s->messages_rows = entries(txn, st->data);
	s->producer_rows = entries(txn, st->producers);
	s->state_rows = entries(txn, st->state);
	s->expiry_rows = entries(txn, st->expiry);
	s->gc_rows = entries(txn, st->gc);
	MDB_val k = { 6, "format" }, v;
	s->format = mdb_get(txn, st->sys, &k, &v) == 0 && v.mv_size == 8 ? get_be64(v.mv_data) : 1;
	k.mv_size = 7;
	k.mv_data = "next_id";
	s->next_id = mdb_get(txn, st->sys, &k, &v) == 0 && v.mv_size == 8 ? get_be64(v.mv_data) : 1;
	/* Free pages: each row of LMDB's free list (database 0) is a page
	 * list whose first word is its length. */
	MDB_cursor *c;
	if (mdb_cursor_open(txn, 0, &c) == 0) {
		while (mdb_cursor_get(c, &k, &v, MDB_NEXT) == 0)
			if (v.mv_size >= sizeof(size_t)) {
				size_t n;
				memcpy(&n, v.mv_data, sizeof n);
				s->free_pages += n;
			}
		mdb_cursor_close(c);
	}
	store_read_end(&t);
	store_txn_release(&t);
	return ST_OK;
}
