/* batch.h: group commit for the threads of one process.
 *
 * Each commit waits for a flush of the data file, and LMDB holds its writer
 * lock meanwhile, so a process that commits every append on its own is held
 * to one append per flush. Here the writes of a process go to its writer
 * thread instead: it takes every write that is waiting into one
 * transaction, each in a nested transaction of its own, and commits once.
 * A flusher thread then makes that commit durable (one flush for every
 * commit made since the last) and tells each write's owner, while the
 * writer already runs the next batch. Writes that arrive meanwhile form
 * that next batch, so nobody waits for a batch to fill: a lone write
 * commits at once.
 *
 * Nobody blocks on a commit unless they ask to: batch_submit queues a job
 * and returns; the job's done callback runs on the flusher thread once the
 * job's commit is durable (or refused, or failed). batch_run is the same
 * for callers that wait.
 *
 * A job either keeps its writes (it returns BATCH_KEEP: its response is
 * ready for a successful commit) or refuses (0: its nested transaction is
 * undone, the response it set is final, and the other jobs are not
 * affected). BATCH_RECLAIM refuses the same way and asks the transaction to
 * reclaim deleted rows all the same (a write refused because the map is
 * nearly full: nothing else would give room back). */
#ifndef LS_BATCH_H
#define LS_BATCH_H
#include <stddef.h>
#include <stdint.h>
#include "store/store.h"

struct batch;

/* key: what the job wrote to (a stream ID), for struct batch_job's first. */
typedef int (*batch_fn)(struct store_txn *w, void *arg, uint64_t *key);

#define BATCH_KEEP 1
#define BATCH_RECLAIM 2
#define BATCH_REFUSED ST_REFUSED  /* the job returned 0: nothing of it was written */

/* One write. The caller fills fn, arg, bytes (its share of max_bytes) and,
 * for batch_submit, done; the job must stay in place until done is called. */
struct batch_job {
	batch_fn fn;
	void *arg;
	size_t bytes;
	void (*done)(struct batch_job *j);
	/* Set before done: ST_OK (kept and durable), BATCH_REFUSED, or the
	 * store error that failed the commit or its flush (the job's writes are
	 * then lost with the rest of its batch). For a kept job: its commit,
	 * what fn set as key, and whether it is the first job of that commit
	 * with this key (so one wake-up per stream and commit is enough). */
	int rc;
	uint64_t txnid;
	uint64_t key;
	int first;
	struct batch_job *next;   /* the batch's */
};

/* A batch for this process, with its writer and flusher threads; at most
 * max_jobs writes (and about max_bytes of request bodies) go into one
 * transaction. NULL when out of memory or threads: writes then commit
 * alone, in the caller's thread. */
struct batch *batch_new(struct store *st, int max_jobs, size_t max_bytes);

/* Runs every job queued, stops the threads, and frees b (NULL: nothing). */
void batch_free(struct batch *b);

/* Runs every job queued and stops the threads: jobs submitted afterwards
 * run at once in the caller's thread (before a daemon stops the
 * connections the done callbacks would answer). */
void batch_stop(struct batch *b);

/* Whether jobs submitted to b are queued (its threads run). */
int batch_queues(struct batch *b);

/* Jobs queued and not yet taken into a transaction (for tests and statistics). */
int batch_waiting(struct batch *b);

/* Queues j; j->done(j) is called from the flusher thread. With b NULL or
 * stopped, the job runs and done is called before batch_submit returns. */
void batch_submit(struct batch *b, struct store *st, struct batch_job *j);

/* Runs fn(w, arg, &key) as a job and returns once its transaction is
 * committed and durable (as configured): j->rc, with the rest of *j set. */
int batch_run(struct batch *b, struct store *st, struct batch_job *j);

#endif
