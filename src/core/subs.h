/* subs.h: subscriptions, the reserved control APIs of PROTOCOL.md 6-7.
 *
 * A subscription links streams (by a glob pattern and by explicit paths),
 * keeps one acked offset per linked stream, and wakes a consumer when a
 * linked stream has events past it: by a signed webhook, or by a wake
 * event appended to a wake stream that workers read and claim. Everything
 * is in the store (its subs database), so any process may serve any call
 * and a restart loses nothing.
 *
 * Writes never wait for a delivery. A commit that gives an idle
 * subscription pending work only marks it due, in the same transaction
 * (subs_on_write); a deliverer (lmstream-live's thread, a worker after its
 * answer, lmstreamctl deliver) takes due subscriptions one at a time with
 * subs_take, which also appends pull-wake events, sends the webhooks
 * subs_take hands it, and reports each with subs_attempt_end. Only one
 * attempt per subscription runs at a time across all processes: taking
 * one is a write to the store. */
#ifndef LS_SUBS_H
#define LS_SUBS_H
#include <stddef.h>
#include <stdint.h>
#include "lib/config.h"
#include "store/store.h"

struct proto_ctx;
struct req;
struct proto_response;

/* A request under {prefix}__ds/ (req->ctl set): the whole answer. */
void subs_handle(struct proto_ctx *ctx, const struct req *q, struct proto_response *resp);

/* In a write transaction that created or appended to stream name (m after
 * the write; before_seq/before_bytes its tail before it): links the stream
 * to subscriptions whose pattern matches it, and marks linked idle
 * subscriptions with pending work due. Returns ST_OK or a store error. */
int subs_on_write(struct store_txn *w, const char *name, size_t nlen, uint64_t before_seq,
                  uint64_t before_bytes, const struct stream_meta *m);
/* In the transaction that deletes stream name: its links go. */
int subs_on_delete(struct store_txn *w, const char *name, size_t nlen);

/* Set (never cleared here) when this process marked a subscription due:
 * a front without lmstream-live delivers after its answer when it sees it. */
int subs_marked(void);
void subs_unmark(void);

/* Whether a subscription may be due at now, from a read transaction:
 * *next_ms is the earliest time one will be (0: none scheduled). Cheap:
 * it reads each subscription's fixed header only. */
int subs_due(struct store *st, int64_t now, int64_t *next_ms);

/* One webhook to send. */
#define SUBS_MAX_URL 2048
struct subs_attempt {
	char id[132];
	uint64_t gen;
	char wake_id[40];
	int64_t taken_ms;          /* marks the attempt in the store */
	char url[SUBS_MAX_URL];
	char *body;                /* owned: subs_attempt_free */
	size_t body_len;
	unsigned char key[32];     /* the active signing key (Ed25519, raw) */
};
void subs_attempt_free(struct subs_attempt *a);

/* What subs_take did besides: the wake streams it appended to (so the
 * caller wakes their readers) and the commit they are in. */
struct subs_woke {
	size_t n;
	uint64_t ids[16];
	uint64_t txnid;
};

/* In one write transaction at now: ends leases and attempts that ran out,
 * writes the pull-wake events that are due (into *woke), and takes the
 * first webhook due whose attempt nobody runs. Returns 1 with *a to send,
 * 0 when nothing is left to send now, or a negative store error. */
int subs_take(struct store *st, const struct config *cfg, int64_t now, struct subs_attempt *a,
              struct subs_woke *woke);
/* The result of an attempt: status 0 when no HTTP answer came (refused,
 * timed out, not allowed), body what came back (its JSON {"done": true}
 * acks the wake), why what went wrong when no answer came (logged). A
 * failure schedules a retry, 1 s doubling to 60 s with
 * 20 % jitter. */
int subs_attempt_end(struct store *st, const struct subs_attempt *a, int64_t now, long status,
                     const char *body, size_t len, const char *why);

/* What the metrics show of subscriptions (counted in their records, so
 * they survive restarts and cover every process). */
struct subs_stats {
	uint64_t subscriptions[2];  /* webhook, pull-wake */
	uint64_t busy;              /* with a wake due, outstanding or claimed */
	uint64_t failing;           /* webhook retries scheduled */
	uint64_t webhooks_ok, webhooks_failed, wake_events;
};
int subs_stats(struct store_txn *t, struct subs_stats *s);

/* The webhook signing key: rotates it (the old public key stays in the
 * JWKS for LS_SUB_KEY_KEEP_MS). Returns ST_OK or an error; kid gets the new
 * key's id (48 bytes). */
int subs_key_rotate(struct store *st, char kid[48]);

#endif
