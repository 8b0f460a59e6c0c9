/* test_registry.c: unit tests of src/front/live/registry.c with fake connections. */
#include "front/live/registry.h"
#include "unit.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

/* A fake connection: what the operations did to it. */
struct fake {
	struct reg_entry w;
	uint64_t stream;
	int64_t due;
	int suspended;       /* suspend calls */
	int resumed;         /* resume calls */
	int gone;            /* what peer_gone answers */
	int probed;          /* peer_gone calls */
	int order;           /* 1 + its place in the resume order */
};

static struct registry *cur;     /* the registry under test, for the lock checks */
static int resumes, unlocked_calls;

/* Every operation must run with the registry's lock held. */
static void check_locked(void)
{
	if (pthread_mutex_trylock(&cur->lock) != EBUSY) {
		unlocked_calls++;
		pthread_mutex_unlock(&cur->lock);
	}
}

static void fake_suspend(void *owner)
{
	struct fake *f = owner;
	check_locked();
	f->suspended++;
}

static void fake_resume(void *owner)
{
	struct fake *f = owner;
	check_locked();
	f->resumed++;
	f->order = ++resumes;
}

static int fake_peer_gone(void *owner)
{
	struct fake *f = owner;
	check_locked();
	f->probed++;
	return f->gone;
}

static const struct reg_ops fake_ops = { fake_suspend, fake_resume, fake_peer_gone };

static void setup(struct registry *r, atomic_int *closing)
{
	CHECK_INT(reg_init(r, &fake_ops, closing), 0);
	cur = r;
	resumes = 0;
}

static struct fake *fakes(size_t n)
{
	struct fake *f = calloc(n, sizeof *f);
	if (!f)
		abort();
	for (size_t i = 0; i < n; i++) {
		reg_entry_init(&f[i].w, &f[i], NULL);
		f[i].due = INT64_MAX;
	}
	return f;
}

/* Makes f wait for its stream with its due time; the wait must succeed. */
static void wait_on(struct registry *r, struct fake *f, int line)
{
	CHECK_INT_AT(line, reg_wait(r, &f->w, f->stream, f->due, reg_seq(r)), 1);
}

/* The heap and bucket invariants, for the n fakes in f. */
static void check_invariants(struct registry *r, struct fake *f, size_t n, int line)
{
	size_t waiting = 0, bad_heap = 0, bad_index = 0, bad_bucket = 0;
	for (size_t i = 0; i < r->heap_len; i++) {
		if (r->heap[i]->hidx != i)
			bad_index++;
		if (i > 0 && r->heap[(i - 1) / 2]->due > r->heap[i]->due)
			bad_heap++;
	}
	for (size_t i = 0; i < n; i++) {
		if (!f[i].w.waiting) {
			bad_index += f[i].w.hidx != REG_NO_HEAP;
			continue;
		}
		waiting++;
		bad_index += f[i].w.hidx >= r->heap_len || r->heap[f[i].w.hidx] != &f[i].w;
		int found = 0;
		for (size_t k = 0; k < r->nbuckets && !found; k++)
			for (struct reg_entry *e = r->buckets[k]; e && !found; e = e->next)
				found = e == &f[i].w;
		bad_bucket += !found;
	}
	CHECK_UINT_AT(line, bad_heap, 0);
	CHECK_UINT_AT(line, bad_index, 0);
	CHECK_UINT_AT(line, bad_bucket, 0);
	CHECK_UINT_AT(line, r->count, waiting);
	CHECK_UINT_AT(line, r->heap_len, waiting);
	CHECK_UINT_AT(line, r->unheaped, 0);
}

/* A wake-up resumes the waiters of its stream and no other. */
static void test_wake_by_stream(void)
{
	struct registry r;
	struct fake *f = fakes(5);
	setup(&r, NULL);
	uint64_t streams[5] = { 1, 1, 2, 3, 1025 };
	for (int i = 0; i < 5; i++) {
		f[i].stream = streams[i];
		wait_on(&r, &f[i], __LINE__);
		CHECK_INT(f[i].suspended, 1);
		CHECK_INT(f[i].resumed, 0);
	}
	CHECK_UINT(reg_count(&r), 5);

	uint64_t seq = reg_seq(&r);
	reg_wake(&r, 99); /* nobody waits for it */
	for (int i = 0; i < 5; i++)
		CHECK_INT(f[i].resumed, 0);
	CHECK_UINT(reg_count(&r), 5);
	CHECK(reg_seq(&r) != seq); /* but it counts as a wake-up */

	reg_wake(&r, 1);
	CHECK_INT(f[0].resumed, 1);
	CHECK_INT(f[1].resumed, 1);
	CHECK_INT(f[2].resumed + f[3].resumed + f[4].resumed, 0);
	CHECK(!f[0].w.waiting && !f[1].w.waiting && f[2].w.waiting);
	CHECK_INT(f[0].w.fired, 0); /* woken, not timed out */
	CHECK_UINT(reg_count(&r), 3);
	CHECK_INT(atomic_load(&r.wakeups), 2);

	reg_wake(&r, 1); /* again: nobody left */
	CHECK_INT(f[0].resumed, 1);
	CHECK_INT(atomic_load(&r.wakeups), 2);

	reg_wake(&r, 3);
	CHECK_INT(f[3].resumed, 1);
	CHECK_INT(f[2].resumed + f[4].resumed, 0);
	check_invariants(&r, f, 5, __LINE__);
	CHECK_INT(unlocked_calls, 0);
	reg_fini(&r);
	free(f);
}

/* Streams that share a bucket: 3000 streams in at most 2048 buckets (the
 * registry doubles them at twice as many waiters), so some buckets hold
 * several streams; each wake-up resumes exactly its stream's one waiter. */
static void test_wake_shared_buckets(void)
{
	enum { N = 3000 };
	struct registry r;
	struct fake *f = fakes(N);
	setup(&r, NULL);
	for (int i = 0; i < N; i++) {
		f[i].stream = (uint64_t)i * 3 + 1;
		wait_on(&r, &f[i], __LINE__);
	}
	CHECK(r.nbuckets <= 2048);
	int wrong = 0;
	for (int i = 0; i < N; i++) {
		reg_wake(&r, f[i].stream);
		wrong += resumes != i + 1 || f[i].resumed != 1;
	}
	CHECK_INT(wrong, 0);
	CHECK_UINT(reg_count(&r), 0);
	reg_fini(&r);
	free(f);
}

/* reg_wait refuses when a wake-up happened since the caller read the
 * count (it must look at the store again), while closing, and when the
 * client hung up. */
static void test_wait_refusals(void)
{
	struct registry r;
	atomic_int closing = 0;
	struct fake *f = fakes(1);
	setup(&r, &closing);
	f->stream = 7;

	uint64_t seq = reg_seq(&r);
	reg_wake(&r, 8); /* a commit to any stream between the look and the wait */
	CHECK_INT(reg_wait(&r, &f->w, 7, INT64_MAX, seq), 0);
	CHECK_INT(f->suspended, 0);
	CHECK(!f->w.waiting);
	CHECK_UINT(reg_count(&r), 0);

	seq = reg_seq(&r);
	reg_scan(&r, 0, 1); /* everyone's wake-up counts too */
	CHECK_INT(reg_wait(&r, &f->w, 7, INT64_MAX, seq), 0);

	seq = reg_seq(&r);
	reg_scan(&r, 0, 0); /* a timer tick does not */
	atomic_store(&closing, 1);
	CHECK_INT(reg_wait(&r, &f->w, 7, INT64_MAX, seq), 0);
	atomic_store(&closing, 0);
	atomic_store(&f->w.hung_up, 1);
	CHECK_INT(reg_wait(&r, &f->w, 7, INT64_MAX, seq), 0);
	atomic_store(&f->w.hung_up, 0);
	CHECK_INT(f->suspended, 0);

	CHECK_INT(reg_wait(&r, &f->w, 7, INT64_MAX, seq), 1);
	CHECK_INT(f->suspended, 1);
	CHECK_UINT(reg_count(&r), 1);
	reg_wake(&r, 7);
	CHECK_INT(f->resumed, 1);
	CHECK_INT(unlocked_calls, 0);
	reg_fini(&r);
	free(f);
}

/* Due timers fire in due order, and only those that are due. */
static void test_timer_order(void)
{
	enum { N = 200 };
	struct registry r;
	struct fake *f = fakes(N + 1);
	setup(&r, NULL);
	for (int i = 0; i < N; i++) {
		f[i].stream = (uint64_t)i % 7;
		f[i].due = 1000 + (int64_t)((i * 7919) % N) * 10; /* 1000..2990, shuffled */
		wait_on(&r, &f[i], __LINE__);
	}
	f[N].stream = 3; /* no timer */
	wait_on(&r, &f[N], __LINE__);
	check_invariants(&r, f, N + 1, __LINE__);

	reg_scan(&r, 999, 0);
	CHECK_INT(resumes, 0);
	reg_scan(&r, 1995, 0); /* due 1000..1990: 100 of them */
	CHECK_INT(resumes, 100);
	int wrong = 0;
	for (int i = 0; i < N; i++) {
		int due = f[i].due <= 1995;
		wrong += f[i].resumed != due || f[i].w.fired != due || f[i].w.waiting == due ||
		         f[i].probed != due;
		/* the resume order is the due order: due = 1000 + 10 * (order - 1) */
		if (due)
			wrong += f[i].due != 1000 + 10 * (int64_t)(f[i].order - 1);
	}
	CHECK_INT(wrong, 0);
	check_invariants(&r, f, N + 1, __LINE__);

	reg_scan(&r, 2990, 0); /* the rest, still in order */
	CHECK_INT(resumes, N);
	wrong = 0;
	for (int i = 0; i < N; i++)
		wrong += f[i].resumed != 1 || f[i].due != 1000 + 10 * (int64_t)(f[i].order - 1);
	CHECK_INT(wrong, 0);
	CHECK_INT(f[N].resumed, 0); /* INT64_MAX: never due */
	CHECK(f[N].w.waiting);
	CHECK_UINT(reg_count(&r), 1);
	CHECK_INT(unlocked_calls, 0);
	reg_fini(&r);
	free(f);
}

/* A due waiter whose client left is resumed marked hung up. */
static void test_timer_probe(void)
{
	struct registry r;
	struct fake *f = fakes(2);
	setup(&r, NULL);
	for (int i = 0; i < 2; i++) {
		f[i].stream = 1;
		f[i].due = 50;
		wait_on(&r, &f[i], __LINE__);
	}
	f[1].gone = 1;
	reg_scan(&r, 60, 0);
	CHECK_INT(f[0].resumed + f[1].resumed, 2);
	CHECK_INT(atomic_load(&f[0].w.hung_up), 0);
	CHECK_INT(atomic_load(&f[1].w.hung_up), 1);
	CHECK_INT(f[1].w.fired, 1);
	reg_fini(&r);
	free(f);
}

/* Removal from anywhere (completions, wake-ups, hang-ups, timers) keeps the
 * heap a heap and every index right. */
static void test_random_heap(void)
{
	enum { N = 3000, STEPS = 30000 };
	struct registry r;
	struct fake *f = fakes(N);
	unsigned seed = 12345;
	setup(&r, NULL);
	for (int step = 0; step < STEPS; step++) {
		struct fake *x = &f[rand_r(&seed) % N];
		int op = rand_r(&seed) % 4;
		if (!x->w.waiting && op != 3) {
			x->stream = (uint64_t)(rand_r(&seed) % 50);
			x->due = rand_r(&seed) % 5 ? rand_r(&seed) % 1000 : INT64_MAX;
			wait_on(&r, x, __LINE__);
		} else if (op == 0) {
			reg_lock(&r);
			reg_remove(&r, &x->w);
			reg_unlock(&r);
		} else if (op == 1) {
			reg_lock(&r);
			reg_hang_up(&r, &x->w);
			reg_unlock(&r);
			atomic_store(&x->w.hung_up, 0);
		} else if (op == 2 && step % 97 == 0) {
			reg_wake(&r, x->stream);
		} else if (step % 501 == 0) {
			reg_scan(&r, rand_r(&seed) % 1000, 0);
		}
		if (step % 1000 == 0)
			check_invariants(&r, f, N, __LINE__);
	}
	check_invariants(&r, f, N, __LINE__);
	/* Whatever is left fires in due order. */
	int64_t last = INT64_MIN;
	int out_of_order = 0;
	resumes = 0;
	for (int i = 0; i < N; i++)
		f[i].order = 0;
	reg_scan(&r, INT64_MAX - 1, 0);
	for (int k = 1; k <= resumes; k++)
		for (int i = 0; i < N; i++)
			if (f[i].order == k) {
				out_of_order += f[i].due < last;
				last = f[i].due;
			}
	CHECK_INT(out_of_order, 0);
	check_invariants(&r, f, N, __LINE__);
	CHECK_INT(unlocked_calls, 0);
	reg_fini(&r);
	free(f);
}

/* Past the first buckets the registry grows, and every waiter is still
 * found by its stream. */
static void test_growth(void)
{
	enum { N = 5000 };
	struct registry r;
	struct fake *f = fakes(N);
	setup(&r, NULL);
	size_t first = r.nbuckets;
	for (int i = 0; i < N; i++) {
		/* pairs of waiters per stream, ids spread over 64 bits */
		f[i].stream = (uint64_t)(i / 2) * 0x10000000001ULL + 1;
		wait_on(&r, &f[i], __LINE__);
	}
	CHECK(r.nbuckets > first);
	CHECK_UINT(reg_count(&r), N);
	check_invariants(&r, f, N, __LINE__);
	int wrong = 0;
	for (int i = 0; i < N; i += 2) {
		reg_wake(&r, f[i].stream);
		wrong += f[i].resumed != 1 || f[i + 1].resumed != 1;
		if (i + 2 < N)
			wrong += f[i + 2].resumed != 0;
	}
	CHECK_INT(wrong, 0);
	CHECK_UINT(reg_count(&r), 0);
	CHECK_INT(unlocked_calls, 0);
	reg_fini(&r);
	free(f);
}

/* Everyone's wake-up (a lost notification, draining) resumes every waiter
 * without probing, marking fired only those whose timer is due. */
static void test_scan_all(void)
{
	enum { N = 40 };
	struct registry r;
	struct fake *f = fakes(N);
	setup(&r, NULL);
	for (int i = 0; i < N; i++) {
		f[i].stream = (uint64_t)i;
		f[i].due = i % 2 ? 100 : 10000;
		f[i].gone = 1;
		wait_on(&r, &f[i], __LINE__);
	}
	uint64_t seq = reg_seq(&r);
	reg_scan(&r, 500, 1);
	CHECK(reg_seq(&r) != seq);
	int wrong = 0;
	for (int i = 0; i < N; i++)
		wrong += f[i].resumed != 1 || f[i].w.waiting || f[i].w.fired != (i % 2) ||
		         f[i].probed != 0 || atomic_load(&f[i].w.hung_up) != 0;
	CHECK_INT(wrong, 0);
	CHECK_UINT(reg_count(&r), 0);
	CHECK_UINT(r.heap_len, 0);
	CHECK_INT(unlocked_calls, 0);
	reg_fini(&r);
	free(f);
}

/* A hang-up resumes a waiter; on a busy connection it only sets the flag. */
static void test_hang_up(void)
{
	struct registry r;
	struct fake *f = fakes(2);
	setup(&r, NULL);
	f[0].stream = 4;
	wait_on(&r, &f[0], __LINE__);
	reg_lock(&r);
	reg_hang_up(&r, &f[0].w);
	reg_hang_up(&r, &f[1].w);
	reg_remove(&r, &f[1].w); /* not waiting: nothing to do */
	reg_unlock(&r);
	CHECK_INT(f[0].resumed, 1);
	CHECK(!f[0].w.waiting);
	CHECK_INT(atomic_load(&f[0].w.hung_up), 1);
	CHECK_INT(f[1].resumed, 0);
	CHECK_INT(atomic_load(&f[1].w.hung_up), 1);
	CHECK_UINT(reg_count(&r), 0);
	CHECK_INT(unlocked_calls, 0);
	reg_fini(&r);
	free(f);
}

static void test_txnid(void)
{
	struct registry r;
	setup(&r, NULL);
	CHECK_UINT(reg_notified_txnid(&r), 0);
	reg_note_txnid(&r, 10);
	reg_note_txnid(&r, 7); /* late datagrams do not go back */
	CHECK_UINT(reg_notified_txnid(&r), 10);
	reg_note_txnid(&r, 11);
	CHECK_UINT(reg_notified_txnid(&r), 11);
	reg_fini(&r);
}

/* reg_count reads under the lock (the SIGHUP statistics line used to read
 * the count while other threads changed it). */
struct count_arg {
	struct registry *r;
	atomic_int done;
	size_t n;
};

static void *count_thread(void *p)
{
	struct count_arg *a = p;
	a->n = reg_count(a->r);
	atomic_store(&a->done, 1);
	return NULL;
}

static void test_count_locks(void)
{
	struct registry r;
	struct fake *f = fakes(1);
	struct count_arg a = { .r = &r };
	pthread_t t;
	setup(&r, NULL);
	wait_on(&r, f, __LINE__);
	reg_lock(&r);
	CHECK_INT(pthread_create(&t, NULL, count_thread, &a), 0);
	nanosleep(&(struct timespec){ .tv_nsec = 100 * 1000 * 1000 }, NULL);
	CHECK_INT(atomic_load(&a.done), 0); /* it waits for the lock */
	reg_unlock(&r);
	pthread_join(t, NULL);
	CHECK_INT(atomic_load(&a.done), 1);
	CHECK_UINT(a.n, 1);
	reg_fini(&r);
	free(f);
}

int main(void)
{
	test_wake_by_stream();
	test_wake_shared_buckets();
	test_wait_refusals();
	test_timer_order();
	test_timer_probe();
	test_random_heap();
	test_growth();
	test_scan_all();
	test_hang_up();
	test_txnid();
	test_count_locks();
	return unit_done();
}
