/* test_batch.c: group commit (src/store/batch.c) with real threads against a
 * fresh LMDB environment: jobs of several threads share commits, a refused
 * job leaves nothing behind and takes nothing from the others, and every
 * job that batch_run acknowledges is already durable; queued jobs are
 * answered on the flusher thread, durable, in order. */
#include "store/batch.h"
#include "lib/log.h"
#include "store/store.h"
#include "unit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static char tmpdir[64];

/* A job writes message seq of stream id; it refuses (after writing) when
 * refuse is set, or blocks until the batch has `hold` jobs waiting. */
struct tjob {
	struct batch *b;
	uint64_t id, seq;
	int refuse;
	int hold;
	int entered;   /* the job's function has started */
	/* results */
	int rc, first;
	uint64_t txnid;
	int durable;   /* store_sync_needed was 0 on return */
};

static struct store *g_st;

static void pause_ns(long ns)
{
	struct timespec ts = { 0, ns };
	nanosleep(&ts, NULL);
}

static int tjob_fn(struct store_txn *w, void *arg, uint64_t *key)
{
	struct tjob *j = arg;
	char data[32];
	int n = snprintf(data, sizeof data, "m%" PRIu64 "-%" PRIu64, j->id, j->seq);
	if (store_msg_put(w, j->id, j->seq, j->seq + 1, data, (size_t)n) != ST_OK)
		return 0;
	*key = j->id;
	__atomic_store_n(&j->entered, 1, __ATOMIC_SEQ_CST);
	if (j->hold) {
		/* Let the other threads queue up behind this batch (10 s at most). */
		for (int i = 0; i < 10000 && batch_waiting(j->b) < j->hold; i++)
			pause_ns(1000000);
	}
	return !j->refuse;
}

static void run_job(struct tjob *j)
{
	struct batch_job d = { .fn = tjob_fn, .arg = j, .bytes = 100 };
	j->rc = batch_run(j->b, g_st, &d);
	j->txnid = d.txnid;
	j->first = d.first;
	j->durable = j->rc == ST_OK && !store_sync_needed(g_st, j->txnid);
}

static int msg_present(uint64_t id, uint64_t seq)
{
	struct store_txn r;
	uint64_t bytes = 0;
	store_txn_init(&r, g_st);
	if (store_read_begin(&r) != ST_OK)
		return -1;
	/* end bytes of seq+1 exist only if message seq does */
	int rc = store_msg_end_bytes(&r, id, seq + 1, &bytes);
	store_read_end(&r);
	store_txn_release(&r);
	return rc == ST_OK && bytes == seq + 1;
}

static uint64_t new_id(void)
{
	struct store_txn w;
	uint64_t id = 0;
	if (store_write_begin(&w, g_st) != ST_OK)
		return 0;
	store_new_id(&w, &id);
	store_commit(&w, 0);
	return id;
}

/* Without a batch: the job commits alone. */
static void test_alone(void)
{
	uint64_t id = new_id();
	struct tjob a = { .b = NULL, .id = id, .seq = 0 };
	run_job(&a);
	CHECK_INT(a.rc, ST_OK);
	CHECK(a.txnid > 0);
	CHECK_INT(a.first, 1);
	CHECK_INT(a.durable, 1);
	CHECK_INT(msg_present(id, 0), 1);

	struct tjob r = { .b = NULL, .id = id, .seq = 1, .refuse = 1 };
	run_job(&r);
	CHECK_INT(r.rc, BATCH_REFUSED);
	CHECK_INT(msg_present(id, 1), 0);
}

static void *thread_one(void *arg)
{
	run_job(arg);
	return NULL;
}

/* One thread's job holds its batch open until the six others are queued:
 * they then share the next commit, one of them refused, two on one key. */
static void test_shared(void)
{
	struct batch *b = batch_new(g_st, 64, 1 << 20);
	CHECK(b != NULL);
	if (!b)
		return;
	uint64_t ids[6];
	for (int i = 0; i < 6; i++)
		ids[i] = new_id();
	struct tjob jobs[7] = {
		{ .b = b, .id = ids[0], .seq = 0, .hold = 6 },
		{ .b = b, .id = ids[1], .seq = 0 },
		{ .b = b, .id = ids[2], .seq = 0 },
		{ .b = b, .id = ids[2], .seq = 1 },     /* same key as the one before */
		{ .b = b, .id = ids[3], .seq = 0, .refuse = 1 },
		{ .b = b, .id = ids[4], .seq = 0 },
		{ .b = b, .id = ids[5], .seq = 0 },
	};
	pthread_t t[7];
	pthread_create(&t[0], NULL, thread_one, &jobs[0]);
	/* the holder leads first; the others queue while it holds */
	for (int i = 0; i < 10000 && !__atomic_load_n(&jobs[0].entered, __ATOMIC_SEQ_CST); i++)
		pause_ns(1000000);
	for (int i = 1; i < 7; i++) {
		/* in order, so that ids[2] seq 0 is queued before seq 1 */
		pthread_create(&t[i], NULL, thread_one, &jobs[i]);
		for (int k = 0; k < 10000 && batch_waiting(b) < i; k++)
			pause_ns(100000);
	}
	for (int i = 0; i < 7; i++)
		pthread_join(t[i], NULL);

	CHECK_INT(jobs[0].rc, ST_OK);
	CHECK_INT(jobs[4].rc, BATCH_REFUSED);
	CHECK_INT(msg_present(ids[3], 0), 0);
	uint64_t shared = jobs[1].txnid;
	CHECK(shared > jobs[0].txnid);
	for (int i = 1; i < 7; i++) {
		if (i == 4)
			continue;
		CHECK_INT(jobs[i].rc, ST_OK);
		CHECK_UINT(jobs[i].txnid, shared);
		CHECK_INT(jobs[i].durable, 1);
		CHECK_INT(msg_present(jobs[i].id, jobs[i].seq), 1);
	}
	CHECK_INT(jobs[2].first, 1);
	CHECK_INT(jobs[3].first, 0);
	CHECK_INT(jobs[1].first, 1);
	CHECK_INT(jobs[0].first, 1);
	CHECK_INT(jobs[0].durable, 1);
	batch_free(b);
}

/* Many threads, many jobs: nothing lost, nothing refused kept, every
 * acknowledgement durable, and fewer commits than jobs. */
#define NT 8
#define NJ 150
struct worker { struct batch *b; uint64_t id; int bad, acked; uint64_t txn[NJ]; };

static void *thread_many(void *arg)
{
	struct worker *w = arg;
	for (int i = 0; i < NJ; i++) {
		struct tjob j = { .b = w->b, .id = w->id, .seq = (uint64_t)i, .refuse = i % 7 == 3 };
		run_job(&j);
		w->txn[i] = j.txnid;
		if (j.refuse ? j.rc != BATCH_REFUSED : (j.rc != ST_OK || !j.durable))
			w->bad++;
		w->acked += j.rc == ST_OK;
	}
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void test_many(void)
{
	struct batch *b = batch_new(g_st, 64, 1 << 20);
	CHECK(b != NULL);
	if (!b)
		return;
	struct worker ws[NT];
	pthread_t t[NT];
	for (int i = 0; i < NT; i++) {
		memset(&ws[i], 0, sizeof ws[i]);
		ws[i].b = b;
		ws[i].id = new_id();
		pthread_create(&t[i], NULL, thread_many, &ws[i]);
	}
	static uint64_t all[NT * NJ];
	size_t n = 0;
	for (int i = 0; i < NT; i++) {
		pthread_join(t[i], NULL);
		CHECK_INT(ws[i].bad, 0);
		int present = 0, wrong = 0;
		for (int s = 0; s < NJ; s++) {
			int want = s % 7 != 3;
			int got = msg_present(ws[i].id, (uint64_t)s);
			present += got == 1;
			wrong += got != want;
			if (want)
				all[n++] = ws[i].txn[s];
		}
		CHECK_INT(wrong, 0);
		CHECK_INT(present, ws[i].acked);
	}
	qsort(all, n, sizeof all[0], cmp_u64);
	size_t commits = 0;
	for (size_t i = 0; i < n; i++)
		commits += i == 0 || all[i] != all[i - 1];
	printf("test_batch: %zu acknowledged appends of %d threads in %zu commits\n", n, NT, commits);
	batch_free(b);
}

/* Queued jobs (batch_submit): each done callback runs on the flusher
 * thread, once, after its commit is durable; the submitter never waits.
 * After batch_stop, a job runs in the submitter's thread before
 * batch_submit returns. */
#define NQ 200
struct qjob {
	struct batch_job job;
	struct tjob t;
	pthread_t done_by;
	int done_count;
	int durable;
};
static atomic_int q_done;

static void qjob_done(struct batch_job *bj)
{
	struct qjob *q = (struct qjob *)bj;
	q->done_by = pthread_self();
	q->durable = bj->rc == ST_OK && !store_sync_needed(g_st, bj->txnid);
	__atomic_add_fetch(&q->done_count, 1, __ATOMIC_SEQ_CST);
	atomic_fetch_add(&q_done, 1);
}

static void test_queued(void)
{
	struct batch *b = batch_new(g_st, 64, 1 << 20);
	CHECK(b != NULL);
	if (!b)
		return;
	CHECK_INT(batch_queues(b), 1);
	static struct qjob qs[NQ];
	uint64_t id = new_id();
	atomic_store(&q_done, 0);
	for (int i = 0; i < NQ; i++) {
		memset(&qs[i], 0, sizeof qs[i]);
		qs[i].t = (struct tjob){ .b = b, .id = id, .seq = (uint64_t)i, .refuse = i % 10 == 9 };
		qs[i].job = (struct batch_job){ .fn = tjob_fn, .arg = &qs[i].t, .bytes = 100, .done = qjob_done };
		batch_submit(b, g_st, &qs[i].job);
	}
	for (int i = 0; i < 10000 && atomic_load(&q_done) < NQ; i++)
		pause_ns(1000000);
	CHECK_INT(atomic_load(&q_done), NQ);
	int wrong = 0, once = 0, elsewhere = 0, durable = 0;
	uint64_t prev = 0;
	size_t commits = 0;
	for (int i = 0; i < NQ; i++) {
		int want = i % 10 != 9;
		once += qs[i].done_count == 1;
		elsewhere += !pthread_equal(qs[i].done_by, pthread_self());
		wrong += want ? qs[i].job.rc != ST_OK || msg_present(id, (uint64_t)i) != 1
		              : qs[i].job.rc != BATCH_REFUSED || msg_present(id, (uint64_t)i) != 0;
		if (want) {
			durable += qs[i].durable;
			/* in submission order: commits never go back */
			wrong += qs[i].job.txnid < prev;
			commits += qs[i].job.txnid != prev;
			prev = qs[i].job.txnid;
		}
	}
	CHECK_INT(once, NQ);
	CHECK_INT(elsewhere, NQ);
	CHECK_INT(wrong, 0);
	CHECK_INT(durable, NQ - NQ / 10);
	/* 200 jobs queued at once cannot take 180 commits */
	CHECK(commits < (size_t)(NQ - NQ / 10));
	printf("test_batch: %d queued jobs in %zu commits\n", NQ - NQ / 10, commits);

	batch_stop(b);
	CHECK_INT(batch_queues(b), 0);
	struct qjob late = { 0 };
	late.t = (struct tjob){ .b = b, .id = id, .seq = NQ };
	late.job = (struct batch_job){ .fn = tjob_fn, .arg = &late.t, .bytes = 100, .done = qjob_done };
	batch_submit(b, g_st, &late.job);
	CHECK_INT(late.done_count, 1);
	CHECK(pthread_equal(late.done_by, pthread_self()));
	CHECK_INT(late.job.rc, ST_OK);
	CHECK_INT(late.durable, 1);
	CHECK_INT(msg_present(id, NQ), 1);
	batch_free(b);
}

/* A commit is answered even while the writer's next transaction takes
 * long (as one of another process holding LMDB's writer lock would): the
 * flusher waits only so long for the next commit to flush it, then
 * flushes itself. Job B runs in the transaction after job A's and waits
 * (5 s at most) for A's answer. */
static struct qjob lock_a, lock_b;
static int b_saw_a_answered;

static int wait_for_a(struct store_txn *w, void *arg, uint64_t *key)
{
	int r = tjob_fn(w, arg, key);
	for (int i = 0; i < 5000 && !__atomic_load_n(&lock_a.done_count, __ATOMIC_SEQ_CST); i++)
		pause_ns(1000000);
	b_saw_a_answered = __atomic_load_n(&lock_a.done_count, __ATOMIC_SEQ_CST) == 1;
	return r;
}

static void test_long_next(void)
{
	struct batch *b = batch_new(g_st, 64, 1 << 20);
	CHECK(b != NULL);
	if (!b)
		return;
	uint64_t id = new_id();
	atomic_store(&q_done, 0);
	/* A holds its transaction until B is queued behind it */
	lock_a.t = (struct tjob){ .b = b, .id = id, .seq = 0, .hold = 1 };
	lock_a.job = (struct batch_job){ .fn = tjob_fn, .arg = &lock_a.t, .bytes = 100, .done = qjob_done };
	lock_b.t = (struct tjob){ .b = b, .id = id, .seq = 1 };
	lock_b.job = (struct batch_job){ .fn = wait_for_a, .arg = &lock_b.t, .bytes = 100, .done = qjob_done };
	batch_submit(b, g_st, &lock_a.job);
	for (int i = 0; i < 10000 && !__atomic_load_n(&lock_a.t.entered, __ATOMIC_SEQ_CST); i++)
		pause_ns(100000);
	batch_submit(b, g_st, &lock_b.job);
	for (int i = 0; i < 10000 && atomic_load(&q_done) < 2; i++)
		pause_ns(1000000);
	CHECK_INT(b_saw_a_answered, 1);
	CHECK_INT(lock_a.job.rc, ST_OK);
	CHECK_INT(lock_a.durable, 1);
	CHECK_INT(lock_b.job.rc, ST_OK);
	CHECK_INT(lock_b.durable, 1);
	CHECK(lock_b.job.txnid > lock_a.job.txnid);
	batch_free(b);
}

int main(void)
{
	log_init("test_batch", LOG_LVL_WARN);
	if (unit_tmpdir(tmpdir, sizeof tmpdir, "batch"))
		return 99;
	struct config cfg;
	config_defaults(&cfg);
	snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", tmpdir);
	cfg.map_size = 64ULL << 20;
	if (store_open(&g_st, &cfg) != ST_OK) {
		printf("cannot open a store in %s\n", tmpdir);
		return 99;
	}
	test_alone();
	test_shared();
	test_many();
	test_queued();
	test_long_next();
	store_close(g_st);
	unit_rm_rf(tmpdir);
	return unit_done();
}
