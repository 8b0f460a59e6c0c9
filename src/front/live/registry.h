/* registry.h: lmstream-live's waiter registry: suspended readers by stream and due time. */
#ifndef LS_LIVE_REGISTRY_H
#define LS_LIVE_REGISTRY_H
/* A waiting connection is listed under the stream it waits for (hash
 * buckets, for a commit's wake-up) and in a min-heap by the time its timer
 * is due (for the timer tick). The registry does not know what a connection
 * is: it holds a struct reg_entry embedded in the caller's connection and
 * suspends, resumes and probes that connection through struct reg_ops.
 *
 * Locking: one mutex. reg_wait, reg_wake, reg_scan and reg_count take it;
 * reg_remove and reg_hang_up expect the caller to hold it (reg_lock). The
 * operations are called with it held: suspend within reg_wait after the
 * entry is listed, so that a wake-up that finds the entry finds it suspended. */
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* What the registry does to a connection; owner is reg_entry.owner. Each is
 * called with the registry's lock held, so none may call back into it. */
struct reg_ops {
	void (*suspend)(void *owner);   /* stop serving it until resume */
	void (*resume)(void *owner);    /* serve it again (after a wake-up or a timer) */
	int (*peer_gone)(void *owner);  /* 1 when its client has closed its side */
};

#define REG_NO_HEAP ((size_t)-1)

/* One connection's place in the registry. The fields other than owner and
 * hung_up are the registry's, under its lock. */
struct reg_entry {
	void *owner;                    /* handed to the operations */
	const struct reg_ops *ops;      /* its own operations; NULL: the registry's */
	struct reg_entry *next, *prev;  /* in its bucket */
	int waiting;                    /* listed (suspended) */
	uint64_t stream;                /* the stream it waits for */
	size_t hidx;                    /* place in the heap, or REG_NO_HEAP */
	int64_t due;                    /* when its timer fires (monotonic ms) */
	int fired;                      /* its timer was due when it was resumed; the owner clears it */
	atomic_int hung_up;             /* its client left (set by the registry's probe or the owner) */
};

struct registry {
	pthread_mutex_t lock;
	const struct reg_ops *ops;
	atomic_int *closing;            /* while set, reg_wait refuses to wait (NULL: never) */
	struct reg_entry **buckets;
	size_t nbuckets;                /* power of two */
	size_t count;                   /* entries waiting */
	/* Waiters by due time, a binary min-heap: a timer tick looks at the
	 * waiters whose timer is due and at no other. A waiter that could not
	 * be put in it (out of memory) is found by a walk of the buckets. */
	struct reg_entry **heap;
	size_t heap_len, heap_cap, unheaped;
	_Atomic uint64_t notify_seq;    /* bumped by every wake-up */
	_Atomic uint64_t notified_txnid;/* the highest commit announced */
	atomic_long wakeups;            /* statistics: waiters resumed by reg_wake */
};

/* Prepares r with its operations and its first buckets. closing, when not
 * NULL, is a flag that makes reg_wait refuse (a draining daemon). Returns 0,
 * or -1 when out of memory (r then needs no reg_fini). */
int reg_init(struct registry *r, const struct reg_ops *ops, atomic_int *closing);

/* Frees what r holds. Nobody may wait in it any more. */
void reg_fini(struct registry *r);

/* Prepares e for a new connection owned by owner: not waiting, not hung up.
 * ops: what the registry does to this owner; NULL: the registry's. */
void reg_entry_init(struct reg_entry *e, void *owner, const struct reg_ops *ops);

/* Take and release r's lock, for reg_remove, reg_hang_up and whatever the
 * caller keeps under the same lock. */
void reg_lock(struct registry *r);
void reg_unlock(struct registry *r);

/* The wake-up count, read before looking at the store: reg_wait refuses when
 * it has changed since, so that a commit between the look and the wait is
 * never missed. */
uint64_t reg_seq(struct registry *r);

/* Lists e as a waiter for stream, its timer due at due (monotonic ms,
 * INT64_MAX: none), and suspends it, unless a wake-up happened since seq was
 * read (reg_seq), r is closing or e's client hung up: then it returns 0 and
 * the caller must look at the store again (or end). Returns 1 when e waits. */
int reg_wait(struct registry *r, struct reg_entry *e, uint64_t stream, int64_t due, uint64_t seq);

/* Under the lock: takes e out of the registry if it waits there; it is not
 * resumed. Does nothing to an entry that does not wait. */
void reg_remove(struct registry *r, struct reg_entry *e);

/* Resumes every waiter of stream, and only those, and bumps the wake-up
 * count. */
void reg_wake(struct registry *r, uint64_t stream);

/* Resumes the waiters whose timer is due at now (setting their fired flag,
 * and hung_up when the peer_gone probe says so), or every waiter when all is
 * set (then fired only for those whose timer is due, no probe, and the wake-up
 * count is bumped). */
void reg_scan(struct registry *r, int64_t now, int all);

/* Under the lock: marks e's client gone and resumes e if it waits, so that
 * it ends instead of waiting again. */
void reg_hang_up(struct registry *r, struct reg_entry *e);

/* Records that commit txnid was announced (the highest one counts). */
void reg_note_txnid(struct registry *r, uint64_t txnid);

/* The highest commit announced so far. */
uint64_t reg_notified_txnid(struct registry *r);

/* How many entries wait, read under the lock. */
size_t reg_count(struct registry *r);

#endif
