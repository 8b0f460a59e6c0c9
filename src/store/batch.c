/* batch.c: group commit across the threads of one process (see batch.h). */
#include "store/batch.h"
#include "lib/limits.h"
#include "lib/metrics.h"

#include <pthread.h>
#include <stdlib.h>

struct job {
	batch_fn fn;
	void *arg;
	size_t bytes;
	int rc;
	uint64_t key;
	int first;                   /* the first kept job of its commit with key */
	uint64_t txnid;
	int taken, done;             /* in a batch; answered */
	pthread_cond_t cv;           /* its owner waits on it */
	struct job *next;
};

struct batch {
	struct store *st;
	pthread_mutex_t mu;
	pthread_cond_t committed;   /* a leader has committed (or given up) */
	struct job *head, **tail;   /* waiting, oldest first */
	int leading;                /* a thread is running a batch */
	int max_jobs;
	size_t max_bytes;
};

struct batch *batch_new(struct store *st, int max_jobs, size_t max_bytes)
{
	struct batch *b = calloc(1, sizeof *b);
	if (!b)
		return NULL;
	b->st = st;
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->committed, NULL);
	b->tail = &b->head;
	b->max_jobs = max_jobs > 0 ? max_jobs : 1;
	b->max_bytes = max_bytes;
	return b;
}

void batch_free(struct batch *b)
{
	if (!b)
		return;
	pthread_cond_destroy(&b->committed);
	pthread_mutex_destroy(&b->mu);
	free(b);
}

int batch_waiting(struct batch *b)
{
	int n = 0;
	pthread_mutex_lock(&b->mu);
	for (struct job *j = b->head; j; j = j->next)
		n++;
	pthread_mutex_unlock(&b->mu);
	return n;
}

/* One transaction for the jobs of list: each in a nested transaction, then
 * the housekeeping a write does on the side, then one commit. Returns the
 * ID of that commit, or 0 when there is nothing to flush (every job has its
 * answer then). The flush that makes the commit durable is left to the
 * caller, so that the next batch can form meanwhile. */
static uint64_t run_list(struct store *st, struct job *list)
{
	struct store_txn w, c;
	int rc = store_write_begin(&w, st);
	int kept = 0, reclaim = 0;
	for (struct job *j = list; j; j = j->next) {
		int r = rc ? rc : store_child_begin(&c, &w);
		if (r) {
			j->rc = r;
			continue;
		}
		r = j->fn(&c, j->arg, &j->key);
		if (r == BATCH_KEEP) {
			j->rc = store_commit(&c, 0);
			kept += j->rc == ST_OK;
		} else {
			store_abort(&c);
			j->rc = BATCH_REFUSED;
			reclaim |= r == BATCH_RECLAIM;
		}
	}
	if (rc)
		return 0;
	if (!kept && !reclaim) {
		store_abort(&w);
		return 0;
	}
	/* A job refused for want of room asks for a larger share of
	 * reclaiming: deleted streams' rows are what gives room back. */
	if (store_child_begin(&c, &w) == ST_OK) {
		if (store_housekeep(&c, store_now_ms(), LS_GC_ROWS_PER_WRITE * (reclaim ? 8 : 1)) >= 0)
			store_commit(&c, 0);
		else
			store_abort(&c);
	}
	rc = store_commit(&w, 1);
	if (!rc)
		metrics_observe(MH_BATCH, (uint64_t)kept);
	for (struct job *j = list; j; j = j->next)
		if (j->rc == ST_OK && rc)
			j->rc = rc;
	return rc ? 0 : w.committed_txnid;
}

/* After run_list and the flush: give the kept jobs their commit's ID (or
 * the flush's error), and mark the first of each key. */
static void finish_list(struct job *list, uint64_t txnid, int rc)
{
	for (struct job *j = list; j; j = j->next) {
		if (j->rc != ST_OK)
			continue;
		if (rc) {
			j->rc = rc;
			continue;
		}
		j->txnid = txnid;
		j->first = 1;
		for (struct job *k = list; k != j; k = k->next)
			if (k->rc == ST_OK && k->key == j->key)
				j->first = 0;
	}
}

int batch_run(struct batch *b, struct store *st, size_t bytes, batch_fn fn, void *arg,
              struct batch_done *done)
{
	struct job me = { .fn = fn, .arg = arg, .bytes = bytes };
	if (!b) {
		uint64_t id = run_list(st, &me);
		finish_list(&me, id, id ? store_sync(st, id) : ST_OK);
		*done = (struct batch_done){ me.txnid, me.key, me.first };
		return me.rc;
	}
	/* Every wake-up is aimed at one thread: the owner of the oldest
	 * waiting job when the lead is free, each owner when its job is done. */
	pthread_cond_init(&me.cv, NULL);
	pthread_mutex_lock(&b->mu);
	*b->tail = &me;
	b->tail = &me.next;
	while (!me.done) {
		if (b->leading || me.taken) {
			pthread_cond_wait(&me.cv, &b->mu);
			continue;
		}
		/* Lead: take the oldest jobs, up to the limits (at least one). */
		b->leading = 1;
		struct job *list = b->head, *last = list;
		int n = 1;
		size_t sz = last->bytes;
		last->taken = 1;
		while (last->next && n < b->max_jobs && sz + last->next->bytes <= b->max_bytes) {
			last = last->next;
			last->taken = 1;
			n++;
			sz += last->bytes;
		}
		b->head = last->next;
		if (!b->head)
			b->tail = &b->head;
		last->next = NULL;
		pthread_mutex_unlock(&b->mu);

		uint64_t id = run_list(b->st, list);

		/* The writer lock is free again: let the next batch form and
		 * commit. Its commit flushes this one's meta page too, so if it
		 * is under way, wait for it rather than flush twice. */
		pthread_mutex_lock(&b->mu);
		b->leading = 0;
		pthread_cond_broadcast(&b->committed);
		if (b->head)
			pthread_cond_signal(&b->head->cv);
		if (id && b->leading && store_sync_needed(b->st, id))
			pthread_cond_wait(&b->committed, &b->mu);
		pthread_mutex_unlock(&b->mu);

		int rc = id ? store_sync(b->st, id) : ST_OK;

		pthread_mutex_lock(&b->mu);
		finish_list(list, id, rc);
		/* An owner may return, and its job (on its stack) end, as soon as
		 * the lock is free: read next first. */
		for (struct job *j = list, *next; j; j = next) {
			next = j->next;
			j->done = 1;
			if (j != &me)
				pthread_cond_signal(&j->cv);
		}
	}
	pthread_mutex_unlock(&b->mu);
	pthread_cond_destroy(&me.cv);
	*done = (struct batch_done){ me.txnid, me.key, me.first };
	return me.rc;
}
