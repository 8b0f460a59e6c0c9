/* batch.h: group commit across the threads of one process.
 *
 * Each commit waits for a flush of the data file, and LMDB holds its writer
 * lock meanwhile, so a process that commits every append on its own is held
 * to one append per flush. Here the threads of a process hand their writes
 * to one of them (the first to arrive, while no other leads): it runs every
 * write that is waiting in one transaction, each in a nested transaction of
 * its own, commits once, flushes once, and wakes the others. Writes that
 * arrive during a flush form the next batch, so nobody waits for a batch to
 * fill: a lone writer commits at once.
 *
 * A job either keeps its writes (it returns BATCH_KEEP: its response is
 * ready for a successful commit) or refuses (0: its nested transaction is
 * undone, the response it set is final, and the other jobs are not
 * affected). BATCH_RECLAIM refuses the same way and asks the transaction to
 * reclaim deleted rows all the same (a write refused because the map is
 * nearly full: nothing else would give room back). */
#ifndef LS_BATCH_H
#define LS_BATCH_H
#include <stdint.h>
#include "store/store.h"

struct batch;

/* key: what the job wrote to (a stream ID), for batch_run's first. */
typedef int (*batch_fn)(struct store_txn *w, void *arg, uint64_t *key);

/* A batch for this process's threads; at most max_jobs writes (and about
 * max_bytes of request bodies) go into one transaction. NULL when out of
 * memory: batch_run then commits each job on its own. */
struct batch *batch_new(struct store *st, int max_jobs, size_t max_bytes);
void batch_free(struct batch *b);

/* Jobs queued and not yet taken into a batch (for tests and statistics). */
int batch_waiting(struct batch *b);

#define BATCH_KEEP 1
#define BATCH_RECLAIM 2
#define BATCH_REFUSED ST_REFUSED  /* the job returned 0: nothing of it was written */

/* What batch_run tells of a job that kept its writes. */
struct batch_done {
	uint64_t txnid;   /* its commit */
	uint64_t key;     /* what fn set */
	int first;        /* the first job of that commit with this key (so one
	                   * wake-up per stream and commit is enough) */
};

/* Runs fn(w, arg, &key) in a write transaction and returns once that
 * transaction is committed and durable (as configured): ST_OK with *done
 * filled, or BATCH_REFUSED, or the store error that failed the commit (the
 * job's writes are then lost with the rest of its batch). bytes is the
 * job's share of max_bytes. With b NULL the job runs alone. */
int batch_run(struct batch *b, struct store *st, size_t bytes, batch_fn fn, void *arg,
              struct batch_done *done);

#endif
