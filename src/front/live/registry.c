/* registry.c: lmstream-live's waiter registry: buckets by stream id, a min-heap of timers. */
#include "front/live/registry.h"
#include "lib/metrics.h"

#include <stdlib.h>

#define FIRST_BUCKETS 1024
#define FIRST_HEAP 1024

static const struct reg_ops *ops_of(const struct registry *r, const struct reg_entry *e)
{
	return e->ops ? e->ops : r->ops;
}

static size_t bucket_of(const struct registry *r, uint64_t id)
{
	return (size_t)((id * 0x9E3779B97F4A7C15ULL) >> 20) & (r->nbuckets - 1);
}

/* Doubles the buckets (or makes the first ones); on failure keeps the old. */
static void reg_grow(struct registry *r)
{
	size_t n = r->nbuckets ? r->nbuckets * 2 : FIRST_BUCKETS;
	struct reg_entry **b = calloc(n, sizeof *b);
	if (!b)
		return;
	struct reg_entry **old = r->buckets;
	size_t oldn = r->nbuckets;
	r->buckets = b;
	r->nbuckets = n;
	for (size_t i = 0; i < oldn; i++) {
		struct reg_entry *e = old[i];
		while (e) {
			struct reg_entry *next = e->next;
			size_t k = bucket_of(r, e->stream);
			e->prev = NULL;
			e->next = r->buckets[k];
			if (e->next)
				e->next->prev = e;
			r->buckets[k] = e;
			e = next;
		}
	}
	free(old);
}

/* The heap, under the lock. */
static void heap_set(struct registry *r, size_t i, struct reg_entry *e)
{
	r->heap[i] = e;
	e->hidx = i;
}

static void heap_up(struct registry *r, size_t i)
{
	struct reg_entry *e = r->heap[i];
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (r->heap[parent]->due <= e->due)
			break;
		heap_set(r, i, r->heap[parent]);
		i = parent;
	}
	heap_set(r, i, e);
}

static void heap_down(struct registry *r, size_t i)
{
	struct reg_entry *e = r->heap[i];
	for (;;) {
		size_t l = 2 * i + 1, m = i;
		int64_t best = e->due;
		if (l < r->heap_len && r->heap[l]->due < best)
			m = l, best = r->heap[l]->due;
		if (l + 1 < r->heap_len && r->heap[l + 1]->due < best)
			m = l + 1;
		if (m == i)
			break;
		heap_set(r, i, r->heap[m]);
		i = m;
	}
	heap_set(r, i, e);
}

static void heap_push(struct registry *r, struct reg_entry *e)
{
	if (r->heap_len == r->heap_cap) {
		size_t n = r->heap_cap ? r->heap_cap * 2 : FIRST_HEAP;
		struct reg_entry **h = realloc(r->heap, n * sizeof *h);
		if (!h) {
			e->hidx = REG_NO_HEAP;
			r->unheaped++;
			return;
		}
		r->heap = h;
		r->heap_cap = n;
	}
	heap_set(r, r->heap_len++, e);
	heap_up(r, e->hidx);
}

static void heap_del(struct registry *r, struct reg_entry *e)
{
	size_t i = e->hidx;
	if (i == REG_NO_HEAP) {
		r->unheaped--;
		return;
	}
	e->hidx = REG_NO_HEAP;
	struct reg_entry *last = r->heap[--r->heap_len];
	if (i == r->heap_len)
		return;
	heap_set(r, i, last);
	heap_up(r, i);
	heap_down(r, last->hidx);
}

int reg_init(struct registry *r, const struct reg_ops *ops, atomic_int *closing)
{
	*r = (struct registry){ .ops = ops, .closing = closing };
	if (pthread_mutex_init(&r->lock, NULL))
		return -1;
	atomic_init(&r->notify_seq, 0);
	atomic_init(&r->notified_txnid, 0);
	atomic_init(&r->wakeups, 0);
	reg_grow(r);
	if (!r->nbuckets) {
		pthread_mutex_destroy(&r->lock);
		return -1;
	}
	return 0;
}

void reg_fini(struct registry *r)
{
	free(r->buckets);
	free(r->heap);
	r->buckets = r->heap = NULL;
	r->nbuckets = r->count = r->heap_len = r->heap_cap = r->unheaped = 0;
	pthread_mutex_destroy(&r->lock);
}

void reg_entry_init(struct reg_entry *e, void *owner, const struct reg_ops *ops)
{
	*e = (struct reg_entry){ .owner = owner, .ops = ops, .hidx = REG_NO_HEAP };
	atomic_init(&e->hung_up, 0);
}

void reg_lock(struct registry *r)
{
	pthread_mutex_lock(&r->lock);
}

void reg_unlock(struct registry *r)
{
	pthread_mutex_unlock(&r->lock);
}

uint64_t reg_seq(struct registry *r)
{
	return atomic_load(&r->notify_seq);
}

/* Under the lock. */
static void reg_add(struct registry *r, struct reg_entry *e, uint64_t stream, int64_t due)
{
	if (r->count >= r->nbuckets * 2)
		reg_grow(r);
	size_t k = bucket_of(r, stream);
	e->stream = stream;
	e->prev = NULL;
	e->next = r->buckets[k];
	if (e->next)
		e->next->prev = e;
	r->buckets[k] = e;
	e->waiting = 1;
	r->count++;
	metrics_gauge(MG_WAITING, 1);
	e->due = due;
	heap_push(r, e);
}

void reg_remove(struct registry *r, struct reg_entry *e)
{
	if (!e->waiting)
		return;
	if (e->prev)
		e->prev->next = e->next;
	else
		r->buckets[bucket_of(r, e->stream)] = e->next;
	if (e->next)
		e->next->prev = e->prev;
	e->next = e->prev = NULL;
	e->waiting = 0;
	r->count--;
	metrics_gauge(MG_WAITING, -1);
	heap_del(r, e);
}

int reg_wait(struct registry *r, struct reg_entry *e, uint64_t stream, int64_t due, uint64_t seq)
{
	pthread_mutex_lock(&r->lock);
	if (atomic_load(&r->notify_seq) != seq || (r->closing && atomic_load(r->closing)) ||
	    atomic_load(&e->hung_up)) {
		pthread_mutex_unlock(&r->lock);
		return 0;
	}
	reg_add(r, e, stream, due);
	ops_of(r, e)->suspend(e->owner);
	pthread_mutex_unlock(&r->lock);
	return 1;
}

void reg_wake(struct registry *r, uint64_t stream)
{
	pthread_mutex_lock(&r->lock);
	atomic_fetch_add(&r->notify_seq, 1);
	if (r->nbuckets) {
		struct reg_entry *e = r->buckets[bucket_of(r, stream)];
		while (e) {
			struct reg_entry *next = e->next;
			if (e->stream == stream) {
				reg_remove(r, e);
				ops_of(r, e)->resume(e->owner);
				atomic_fetch_add(&r->wakeups, 1);
				metrics_add(MC_WAKEUPS, 1);
			}
			e = next;
		}
	}
	pthread_mutex_unlock(&r->lock);
}

/* Resumes e if its timer is due at now, or anyway when forced (the heap
 * says it is due; everyone's wake-up: all), marking why. Under the lock. */
static void reg_fire(struct registry *r, struct reg_entry *e, int64_t now, int force, int all)
{
	int due = force || all;
	if (now >= e->due)
		due = e->fired = 1;
	if (!due)
		return;
	if (!all && ops_of(r, e)->peer_gone(e->owner))
		atomic_store(&e->hung_up, 1);
	reg_remove(r, e);
	ops_of(r, e)->resume(e->owner);
}

void reg_scan(struct registry *r, int64_t now, int all)
{
	pthread_mutex_lock(&r->lock);
	if (all)
		atomic_fetch_add(&r->notify_seq, 1);
	while (!all && r->heap_len && r->heap[0]->due <= now)
		reg_fire(r, r->heap[0], now, 1, 0);
	for (size_t i = 0; (all || r->unheaped) && i < r->nbuckets; i++) {
		struct reg_entry *e = r->buckets[i];
		while (e) {
			struct reg_entry *next = e->next;
			if (all || e->hidx == REG_NO_HEAP)
				reg_fire(r, e, now, 0, all);
			e = next;
		}
	}
	pthread_mutex_unlock(&r->lock);
}

void reg_hang_up(struct registry *r, struct reg_entry *e)
{
	atomic_store(&e->hung_up, 1);
	if (e->waiting) {
		reg_remove(r, e);
		ops_of(r, e)->resume(e->owner);
	}
}

void reg_note_txnid(struct registry *r, uint64_t txnid)
{
	uint64_t cur = atomic_load(&r->notified_txnid);
	while (cur < txnid && !atomic_compare_exchange_weak(&r->notified_txnid, &cur, txnid))
		;
}

uint64_t reg_notified_txnid(struct registry *r)
{
	return atomic_load(&r->notified_txnid);
}

size_t reg_count(struct registry *r)
{
	pthread_mutex_lock(&r->lock);
	size_t n = r->count;
	pthread_mutex_unlock(&r->lock);
	return n;
}
