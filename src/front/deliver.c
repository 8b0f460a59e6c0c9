/* deliver.c: sends the webhooks of subscriptions that are due (deliver.h). */
#include "front/deliver.h"
#include "core/subs.h"
#include "front/webhook.h"
#include "lib/log.h"
#include "lib/sign.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	             cfg->subscriptions_allow_loopback, res);
}

int deliver_run(struct store *st, const struct config *cfg, int64_t budget_ms, deliver_woke_fn woke,
                void *arg, int64_t *next_ms)
{
	int64_t start = store_mono_ms(), next = 0;
	int sent = 0;
	webhook_global_init();
	for (;;) {
		int64_t now = store_now_ms();
		if (!subs_due(st, now, &next))
			break;
		struct subs_attempt a;
		struct subs_woke w = { 0 };
		int rc = subs_take(st, cfg, now, &a, &w);
		for (size_t i = 0; woke && i < w.n; i++)
			woke(arg, w.ids[i], w.txnid);
		if (rc < 0) {
			sent = -1;
			break;
		}
		if (rc == 1) {
			struct webhook_result *res = malloc(sizeof *res);
			if (res) {
				send_one(cfg, &a, res);
				sent++;
				if (subs_attempt_end(st, &a, store_now_ms(), res->status, res->body, res->body_len, res->error) < 0)
					sent = -1;
				free(res);
			}
			subs_attempt_free(&a);
			if (sent < 0)
				break;
		}
		if (store_mono_ms() - start >= budget_ms)
			break;
		if (rc == 0 && !w.n)
			break;  /* due, but running elsewhere: its own deliverer reports back */
	}
	if (next_ms)
		*next_ms = next;
	return sent;
}

/* --- the deliverer thread ------------------------------------------------------ */

#include <pthread.h>
#include <time.h>

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
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += left / 1000;
		ts.tv_nsec += (left % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
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
		deliver_run(dt.st, dt.cfg, RUN_BUDGET_MS, dt.woke, dt.arg, &next);
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
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_destroy(&dt.cv);
		pthread_cond_init(&dt.cv, &ca);
		pthread_condattr_destroy(&ca);
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
}
