/* deliver.c: sends the webhooks of subscriptions that are due (deliver.h). */
#include "front/deliver.h"
#include "core/subs.h"
#include "front/webhook.h"
#include "lib/log.h"
#include "lib/sign.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One attempt: signed at the time it is sent. */
static void send_one(const struct config *cfg, struct subs_attempt *a, struct webhook_result *res)
{
	char sig[SIGN_HEADER_MAX], hdr[SIGN_HEADER_MAX + 32];
	int64_t t = store_now_ms() / 1000;
	memset(res, 0, sizeof *res);
	if (sign_header(a->key, t, a->body, a->body_len, sig, sizeof sig) < 0) {
		snprintf(res->error, sizeof res->error, "cannot sign the delivery");
		return;
	}
	snprintf(hdr, sizeof hdr, "Webhook-Signature: %s", sig);
	const char *headers[] = { "Content-Type: application/json", hdr, "User-Agent: lmstream", NULL };
	webhook_post(a->url, headers, a->body, a->body_len, cfg->webhook_timeout_ms,
	             cfg->subscriptions_allow_loopback, cfg->webhook_ca_file, res);
}

/* --- the senders ------------------------------------------------------------------
 * Each attempt is sent by a thread of its own, at most webhook_concurrency
 * at once in the process, so that a receiver that hangs holds only its own
 * attempt. The store makes attempts exclusive (subs_take), so two senders
 * never work on one subscription, here or in another process. */

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;   /* a sender ended */
	int busy;            /* senders running */
	int failed;          /* a sender's report to the store failed */
} senders = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

struct send_job {
	struct store *st;
	const struct config *cfg;
	struct subs_attempt a;
};

/* Sends j's attempt and reports how it went; 0, or -1 when the store failed. */
static int send_and_report(struct send_job *j)
{
	struct webhook_result *res = malloc(sizeof *res);
	int rc;
	if (res) {
		send_one(j->cfg, &j->a, res);
		rc = subs_attempt_end(j->st, &j->a, store_now_ms(), res->status, res->body, res->body_len, res->error);
		free(res);
	} else {
		rc = subs_attempt_end(j->st, &j->a, store_now_ms(), 0, NULL, 0, "out of memory");
	}
	subs_attempt_free(&j->a);
	free(j);
	return rc < 0 ? -1 : 0;
}

static void *sender(void *arg)
{
	int rc = send_and_report(arg);
	pthread_mutex_lock(&senders.mu);
	senders.busy--;
	if (rc < 0)
		senders.failed = 1;
	pthread_cond_broadcast(&senders.cv);
	pthread_mutex_unlock(&senders.mu);
	deliver_kick(); /* the deliverer thread, if any: a retry may be due sooner than it looked */
	return NULL;
}

static void deadline(struct timespec *ts, int64_t ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static pthread_once_t senders_once = PTHREAD_ONCE_INIT;

/* Makes cv wait on CLOCK_MONOTONIC (as deadline() counts). */
static void cond_monotonic(pthread_cond_t *cv)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_destroy(cv);
	pthread_cond_init(cv, &ca);
	pthread_condattr_destroy(&ca);
}

static void senders_init(void)
{
	cond_monotonic(&senders.cv);
}

/* Waits until fewer than cap senders run, for at most ms; 1 when one is free. */
static int sender_slot(int cap, int64_t ms)
{
	struct timespec ts;
	deadline(&ts, ms > 0 ? ms : 0);
	pthread_mutex_lock(&senders.mu);
	while (senders.busy >= cap && pthread_cond_timedwait(&senders.cv, &senders.mu, &ts) == 0)
		;
	int free_one = senders.busy < cap;
	if (free_one)
		senders.busy++; /* taken: given back by the sender, or below */
	pthread_mutex_unlock(&senders.mu);
	return free_one;
}

static void sender_slot_give_back(void)
{
	pthread_mutex_lock(&senders.mu);
	senders.busy--;
	pthread_cond_broadcast(&senders.cv);
	pthread_mutex_unlock(&senders.mu);
}

/* Waits until every sender has ended; -1 when one of them saw the store fail. */
static int senders_drain(void)
{
	pthread_mutex_lock(&senders.mu);
	while (senders.busy > 0)
		pthread_cond_wait(&senders.cv, &senders.mu);
	int failed = senders.failed;
	senders.failed = 0;
	pthread_mutex_unlock(&senders.mu);
	return failed ? -1 : 0;
}

/* Hands a taken attempt to a sender thread (a slot is held); sends it here
 * when no thread can be made. -1 when the store failed. */
static int send_off(struct store *st, const struct config *cfg, struct subs_attempt *a)
{
	struct send_job *j = malloc(sizeof *j);
	pthread_attr_t at;
	pthread_t t;
	int made = 0;
	if (j) {
		j->st = st;
		j->cfg = cfg;
		j->a = *a;
		memset(a, 0, sizeof *a);
		if (!pthread_attr_init(&at)) {
			pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
			made = pthread_create(&t, &at, sender, j) == 0;
			pthread_attr_destroy(&at);
		}
		if (made)
			return 0;
		sender_slot_give_back();
		return send_and_report(j);
	}
	sender_slot_give_back();
	int rc = subs_attempt_end(st, a, store_now_ms(), 0, NULL, 0, "out of memory");
	subs_attempt_free(a);
	return rc < 0 ? -1 : 0;
}

/* Takes what is due and hands it to senders; with wait, returns only once
 * they have all ended. */
static int run(struct store *st, const struct config *cfg, int64_t budget_ms, deliver_woke_fn woke, void *arg,
               int64_t *next_ms, int wait)
{
	int64_t start = store_mono_ms(), next = 0;
	int sent = 0, cap = cfg->webhook_concurrency > 0 ? cfg->webhook_concurrency : 1;
	webhook_global_init();
	pthread_once(&senders_once, senders_init);
	for (;;) {
		if (!subs_due(st, store_now_ms(), &next))
			break;
		if (!sender_slot(cap, budget_ms - (store_mono_ms() - start)))
			break; /* all busy until the budget ran out: the next run takes it */
		struct subs_attempt a;
		struct subs_woke w = { 0 };
		int took = subs_take(st, cfg, store_now_ms(), &a, &w);
		for (size_t i = 0; woke && i < w.n; i++)
			woke(arg, w.ids[i], w.txnid);
		if (took == 1) {
			sent++;
			if (send_off(st, cfg, &a) < 0)
				took = -1;
		} else {
			sender_slot_give_back();
		}
		if (took < 0) {
			sent = -1;
			break;
		}
		if (store_mono_ms() - start >= budget_ms)
			break;
		if (took == 0 && !w.n)
			break;  /* due, but running elsewhere: its own deliverer reports back */
	}
	if (wait && senders_drain() < 0)
		sent = -1;
	if (next_ms)
		*next_ms = next;
	return sent;
}

int deliver_run(struct store *st, const struct config *cfg, int64_t budget_ms, deliver_woke_fn woke,
                void *arg, int64_t *next_ms)
{
	return run(st, cfg, budget_ms, woke, arg, next_ms, 1);
}

/* --- the deliverer thread ------------------------------------------------------ */

#define IDLE_LOOK_MS 1000   /* looks at least this often: timers, lost notices */
#define RUN_GAP_MS 2        /* commits in a burst share one look */
#define RUN_BUDGET_MS 5000

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	int started, stop, kicked;
	struct store *st;
	const struct config *cfg;
	deliver_woke_fn woke;
	void *arg;
} dt = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static void sleep_until(int64_t until_mono)
{
	pthread_mutex_lock(&dt.mu);
	while (!dt.stop && !dt.kicked) {
		int64_t left = until_mono - store_mono_ms();
		if (left <= 0)
			break;
		struct timespec ts;
		deadline(&ts, left);
		pthread_cond_timedwait(&dt.cv, &dt.mu, &ts);
	}
	dt.kicked = 0;
	pthread_mutex_unlock(&dt.mu);
}

static void *deliverer(void *arg)
{
	(void)arg;
	int64_t wake = 0;
	while (!dt.stop) {
		sleep_until(wake);
		if (dt.stop)
			break;
		int64_t next = 0, now = store_now_ms(), mono = store_mono_ms();
		run(dt.st, dt.cfg, RUN_BUDGET_MS, dt.woke, dt.arg, &next, 0);
		wake = mono + IDLE_LOOK_MS;
		if (next && next - now < IDLE_LOOK_MS)
			wake = mono + (next > now ? next - now : 0);
		if (wake < mono + RUN_GAP_MS)
			wake = mono + RUN_GAP_MS;
	}
	return NULL;
}

int deliver_thread_start(struct store *st, const struct config *cfg, deliver_woke_fn woke, void *arg)
{
	pthread_mutex_lock(&dt.mu);
	int rc = 0;
	if (!dt.started) {
		cond_monotonic(&dt.cv);
		dt.st = st;
		dt.cfg = cfg;
		dt.woke = woke;
		dt.arg = arg;
		dt.stop = 0;
		rc = pthread_create(&dt.thread, NULL, deliverer, NULL) ? -1 : 0;
		dt.started = rc == 0;
	}
	pthread_mutex_unlock(&dt.mu);
	if (rc)
		log_error("cannot start the subscription deliverer thread");
	return rc;
}

void deliver_kick(void)
{
	pthread_mutex_lock(&dt.mu);
	if (!dt.kicked) {
		dt.kicked = 1;
		pthread_cond_signal(&dt.cv);
	}
	pthread_mutex_unlock(&dt.mu);
}

void deliver_thread_stop(void)
{
	pthread_mutex_lock(&dt.mu);
	int started = dt.started;
	dt.stop = 1;
	pthread_cond_signal(&dt.cv);
	pthread_mutex_unlock(&dt.mu);
	if (started)
		pthread_join(dt.thread, NULL);
	dt.started = 0;
	senders_drain(); /* none may outlive the store */
}

