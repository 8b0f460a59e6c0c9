/* batch.c: group commit for the threads of one process (see batch.h). */
#include "store/batch.h"
#include "lib/limits.h"
#include "lib/log.h"
#include "lib/metrics.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct batch {
	struct store *st;
	pthread_mutex_t mu;
	pthread_cond_t queued;       /* for the writer: jobs wait, or stop */
	pthread_cond_t committed;    /* for the flusher: commits wait, or the writer ended */
	struct batch_job *head, **tail;   /* waiting, oldest first */
	int nwaiting;
	struct batch_job *chead, **ctail; /* run, waiting for the flush */
	uint64_t cmax;               /* the last commit among them (0: none) */
	int writing;                 /* the writer has jobs in hand */
	int stopping, writer_ended, running;
	pthread_t writer, flusher;
	int max_jobs;
	size_t max_bytes;
};

/* One transaction for the jobs of list: each in a nested transaction, then
 * the housekeeping a write does on the side, then one commit without the
 * flush. Sets each job's rc (and txnid, first); returns the commit's ID, or
 * 0 when there is nothing to flush. */
static uint64_t run_list(struct store *st, struct batch_job *list)
{
	struct store_txn w, c;
	int rc = store_write_begin(&w, st);
	int kept = 0, reclaim = 0;
	for (struct batch_job *j = list; j; j = j->next) {
		j->txnid = 0;
		j->first = 0;
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
	for (struct batch_job *j = list; j; j = j->next) {
		if (j->rc != ST_OK)
			continue;
		if (rc) {
			j->rc = rc;
			continue;
		}
		j->txnid = w.committed_txnid;
		j->first = 1;
		for (struct batch_job *k = list; k != j; k = k->next)
			if (k->rc == ST_OK && k->key == j->key)
				j->first = 0;
	}
	return rc ? 0 : w.committed_txnid;
}

/* Makes commit id durable (0: nothing to flush) and hands every job of list
 * its answer. A done callback may end its job: read next first. */
static void finish_list(struct store *st, struct batch_job *list, uint64_t id)
{
	int rc = id ? store_sync(st, id) : ST_OK;
	for (struct batch_job *j = list, *next; j; j = next) {
		next = j->next;
		if (j->rc == ST_OK && rc) {
			j->rc = rc;
			j->txnid = 0;
		}
		j->done(j);
	}
}

static void *writer_main(void *arg)
{
	struct batch *b = arg;
	pthread_mutex_lock(&b->mu);
	for (;;) {
		while (!b->head && !b->stopping)
			pthread_cond_wait(&b->queued, &b->mu);
		if (!b->head)
			break;
		/* The oldest jobs, up to the limits (at least one). */
		struct batch_job *list = b->head, *last = list;
		int n = 1;
		size_t sz = last->bytes;
		while (last->next && n < b->max_jobs && sz + last->next->bytes <= b->max_bytes) {
			last = last->next;
			n++;
			sz += last->bytes;
		}
		b->head = last->next;
		if (!b->head)
			b->tail = &b->head;
		b->nwaiting -= n;
		last->next = NULL;
		b->writing = 1;
		pthread_mutex_unlock(&b->mu);

		uint64_t id = run_list(b->st, list);

		pthread_mutex_lock(&b->mu);
		*b->ctail = list;
		b->ctail = &last->next;
		if (id > b->cmax)
			b->cmax = id;
		b->writing = 0;
		pthread_cond_signal(&b->committed);
	}
	b->writer_ended = 1;
	pthread_cond_signal(&b->committed);
	pthread_mutex_unlock(&b->mu);
	return NULL;
}

/* One flush covers every commit made before it: the flusher takes all the
 * commits waiting, flushes once for the last, and answers their jobs.
 * Under load it need not flush at all: every commit flushes its data
 * pages, and that flush takes the meta page of the commit before it along
 * (store.h, store_sync_needed). So while the writer runs another batch,
 * the flusher waits for that commit rather than flush the same file
 * beside it; it flushes itself when the writer has nothing more, or has
 * not committed within LS_FLUSH_WAIT_US (another process may hold LMDB's
 * writer lock for a long transaction). */
static void *flusher_main(void *arg)
{
	struct batch *b = arg;
	pthread_mutex_lock(&b->mu);
	for (;;) {
		while (!b->chead && !b->writer_ended)
			pthread_cond_wait(&b->committed, &b->mu);
		if (!b->chead)
			break;
		struct batch_job *list = b->chead;
		uint64_t id = b->cmax;
		b->chead = NULL;
		b->ctail = &b->chead;
		b->cmax = 0;
		if (id && b->writing && store_sync_needed(b->st, id)) {
			struct timespec until;
			clock_gettime(CLOCK_MONOTONIC, &until);
			until.tv_nsec += LS_FLUSH_WAIT_US * 1000L;
			if (until.tv_nsec >= 1000000000L) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			while (b->writing && store_sync_needed(b->st, id) &&
			       pthread_cond_timedwait(&b->committed, &b->mu, &until) != ETIMEDOUT)
				;
		}
		pthread_mutex_unlock(&b->mu);
		finish_list(b->st, list, id);
		pthread_mutex_lock(&b->mu);
	}
	pthread_mutex_unlock(&b->mu);
	return NULL;
}

struct batch *batch_new(struct store *st, int max_jobs, size_t max_bytes)
{
	struct batch *b = calloc(1, sizeof *b);
	if (!b)
		return NULL;
	b->st = st;
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->queued, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&b->committed, &ca);
	pthread_condattr_destroy(&ca);
	b->tail = &b->head;
	b->ctail = &b->chead;
	b->max_jobs = max_jobs > 0 ? max_jobs : 1;
	b->max_bytes = max_bytes;
	/* The threads block every signal: the process's own threads take them. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int e = pthread_create(&b->writer, NULL, writer_main, b);
	if (!e && (e = pthread_create(&b->flusher, NULL, flusher_main, b))) {
		b->stopping = 1;
		pthread_cond_signal(&b->queued);
		pthread_join(b->writer, NULL);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e) {
		log_error("cannot start the writer threads: %s", strerror(e));
		pthread_cond_destroy(&b->committed);
		pthread_cond_destroy(&b->queued);
		pthread_mutex_destroy(&b->mu);
		free(b);
		return NULL;
	}
	b->running = 1;
	return b;
}

void batch_stop(struct batch *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&b->mu);
	int was = b->running && !b->stopping;
	b->stopping = 1;
	pthread_cond_signal(&b->queued);
	pthread_mutex_unlock(&b->mu);
	if (!was)
		return;
	pthread_join(b->writer, NULL);
	pthread_join(b->flusher, NULL);
	pthread_mutex_lock(&b->mu);
	b->running = 0;
	pthread_mutex_unlock(&b->mu);
}

void batch_free(struct batch *b)
{
	if (!b)
		return;
	batch_stop(b);
	pthread_cond_destroy(&b->committed);
	pthread_cond_destroy(&b->queued);
	pthread_mutex_destroy(&b->mu);
	free(b);
}

int batch_queues(struct batch *b)
{
	if (!b)
		return 0;
	pthread_mutex_lock(&b->mu);
	int q = b->running && !b->stopping;
	pthread_mutex_unlock(&b->mu);
	return q;
}

int batch_waiting(struct batch *b)
{
	pthread_mutex_lock(&b->mu);
	int n = b->nwaiting;
	pthread_mutex_unlock(&b->mu);
	return n;
}

void batch_submit(struct batch *b, struct store *st, struct batch_job *j)
{
	j->next = NULL;
	if (b) {
		pthread_mutex_lock(&b->mu);
		if (!b->stopping) {
			*b->tail = j;
			b->tail = &j->next;
			b->nwaiting++;
			pthread_cond_signal(&b->queued);
			pthread_mutex_unlock(&b->mu);
			return;
		}
		pthread_mutex_unlock(&b->mu);
	}
	/* Alone: the writer lock serialises this with every other writer. */
	finish_list(st, j, run_list(st, j));
}

/* batch_run's wait for its job: the job runs fn on arg and wakes it. */
struct waiter {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done;
	batch_fn fn;
	void *arg;
};

static int waiter_fn(struct store_txn *t, void *arg, uint64_t *key)
{
	struct waiter *w = arg;
	return w->fn(t, w->arg, key);
}

static void waiter_done(struct batch_job *j)
{
	struct waiter *w = j->arg;
	pthread_mutex_lock(&w->mu);
	w->done = 1;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

int batch_run(struct batch *b, struct store *st, struct batch_job *j)
{
	struct waiter w = { .fn = j->fn, .arg = j->arg };
	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cv, NULL);
	struct batch_job mine = { .fn = waiter_fn, .arg = &w, .bytes = j->bytes, .done = waiter_done };
	batch_submit(b, st, &mine);
	pthread_mutex_lock(&w.mu);
	while (!w.done)
		pthread_cond_wait(&w.cv, &w.mu);
	pthread_mutex_unlock(&w.mu);
	pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.mu);
	j->rc = mine.rc;
	j->txnid = mine.txnid;
	j->key = mine.key;
	j->first = mine.first;
	return j->rc;
}
