/* deliver.h: the deliverer of subscriptions (core/subs.h): takes what is
 * due from the store and sends it, signed, with libcurl (front/webhook.h).
 * lmstream-live runs one in a thread; without it a worker runs one after
 * its answer, and lmstreamctl deliver from cron. */
#ifndef LS_DELIVER_H
#define LS_DELIVER_H
#include <stdint.h>
#include "lib/config.h"
#include "store/store.h"

/* What a CGI process may spend on deliveries after its answer. */
#define DELIVER_CGI_BUDGET_MS 10000

/* Called for each wake stream a pull-wake event was appended to. */
typedef void (*deliver_woke_fn)(void *arg, uint64_t stream_id, uint64_t txnid);

/* Sends what is due until nothing is, or until budget_ms have passed
 * (an attempt already begun finishes: at most webhook_timeout_ms more),
 * up to webhook_concurrency at once, each from a thread of its own.
 * Returns how many webhooks were sent (answered or not), or -1 when the
 * store failed; *next_ms (when not NULL) is when the next one is due
 * (0: none scheduled). */
int deliver_run(struct store *st, const struct config *cfg, int64_t budget_ms, deliver_woke_fn woke,
                void *arg, int64_t *next_ms);

/* A thread of the process that hands what is due to senders when kicked
 * (after a commit, after a send) and on its own when a retry or a lease
 * comes due, and at least once a second; it does not wait for the
 * receivers. One per process; start returns 0 or -1. */
int deliver_thread_start(struct store *st, const struct config *cfg, deliver_woke_fn woke, void *arg);
void deliver_kick(void);
/* Stops it, once the attempts under way have ended (webhook_timeout_ms at most). */
void deliver_thread_stop(void);

#endif
