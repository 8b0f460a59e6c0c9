/* subs_deliver.c: what a deliverer takes from the store and reports back
 * (subs.h: subs_due, subs_take, subs_attempt_end), and the figures of the
 * metrics (subs_stats). */
#include "core/subs.h"
#include "core/subs_int.h"
#include "core/core.h"
#include "lib/log.h"

#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

/* --- delivery ----------------------------------------------------------------------------- */

struct due_scan {
	int64_t now, next;
	int due;
	size_t n, cap;
	char (*ids)[LS_MAX_SUB_ID + 1];
	int collect;
};

static int due_visit(void *vctx, const unsigned char *key, size_t klen, const void *val, size_t vlen)
{
	struct due_scan *d = vctx;
	const unsigned char *p = val;
	if (vlen < HDR || klen - 2 > LS_MAX_SUB_ID)
		return 0;
	int64_t at = (int64_t)sub_get_be64(p + 1);
	if (!at)
		return 0;
	if (at <= d->now) {
		d->due = 1;
		if (d->collect && d->n < d->cap) {
			memcpy(d->ids[d->n], key + 2, klen - 2);
			d->ids[d->n++][klen - 2] = '\0';
		}
	} else if (!d->next || at < d->next) {
		d->next = at;
	}
	return 0;
}

int subs_due(struct store *st, int64_t now, int64_t *next_ms)
{
	struct store_txn t;
	struct due_scan d = { .now = now };
	store_txn_init(&t, st);
	int rc = store_read_begin(&t);
	if (rc == ST_OK) {
		rc = store_sub_scan(&t, "c/", 2, due_visit, &d);
		store_read_end(&t);
	}
	store_txn_release(&t);
	*next_ms = d.next;
	return rc ? 0 : d.due;
}

void subs_attempt_free(struct subs_attempt *a)
{
	free(a->body);
	a->body = NULL;
	OPENSSL_cleanse(a->key, sizeof a->key);
}

/* Appends a pull-wake event to the subscription's wake stream. */
static int wake_event(struct store_txn *w, struct sub *s, const struct linked *ls, int64_t now,
                      struct subs_woke *woke)
{
	const char *ws = sj_str(s->j, "wake_stream");
	struct stream_meta *m = malloc(sizeof *m);
	const char *first = "";
	for (size_t i = 0; i < ls->n; i++)
		if (link_pending(&ls->v[i])) {
			first = ls->v[i].path;
			break;
		}
	if (!m)
		return ST_ERROR;
	if (core_usable(w, ws, strlen(ws), now, m) != E_OK || m->closed) {
		log_warn("subscription %s: wake stream %s is missing or closed: no wake event written", s->id, ws);
		free(m);
		return ST_OK;
	}
	cJSON *ev = cJSON_CreateObject();
	cJSON_AddStringToObject(ev, "type", "wake");
	cJSON_AddStringToObject(ev, "subscription_id", s->id);
	cJSON_AddStringToObject(ev, "stream", first);
	cJSON_AddNumberToObject(ev, "generation", (double)sj_num(s->j, "gen"));
	cJSON_AddNumberToObject(ev, "ts", (double)now);
	char *text = cJSON_PrintUnformatted(ev);
	cJSON_Delete(ev);
	int rc = ST_ERROR;
	if (text) {
		struct messages ms = { 0 };
		size_t len = strlen(text);
		ms.one = (struct span){ 0, (uint32_t)len };
		ms.v = &ms.one;
		ms.n = 1;
		if ((rc = store_room(w, len)) == ST_OK && (rc = messages_append(w, m, text, &ms)) == ST_OK &&
		    (rc = store_meta_put(w, ws, strlen(ws), m)) == ST_OK && woke->n < 16)
			woke->ids[woke->n++] = m->id;
		free(text);
	}
	free(m);
	return rc;
}

/* The webhook body of s's current wake. */
static int webhook_body(struct store_txn *w, struct sub *s, const struct linked *ls, int64_t now,
                        struct subs_attempt *a)
{
	char token[128];
	int rc = wake_token_make(w, s, now, token, sizeof token);
	if (rc)
		return rc;
	/* the wake's snapshot of tails, as a {"done": true} would ack them */
	struct linked snap = *ls;
	struct linked_one *v = malloc((ls->n ? ls->n : 1) * sizeof *v);
	if (!v)
		return ST_ERROR;
	const cJSON *sn = cJSON_GetObjectItemCaseSensitive(s->j, "snap");
	for (size_t i = 0; i < ls->n; i++) {
		v[i] = ls->v[i];
		const char *o = sj_str(sn, ls->v[i].path);
		struct offset t;
		if (o && !offset_parse(o, strlen(o), &t) && t.kind == OFFSET_AT)
			v[i].tail = t;
	}
	snap.v = v;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "subscription_id", s->id);
	cJSON_AddStringToObject(o, "wake_id", sj_str(s->j, "wake"));
	cJSON_AddNumberToObject(o, "generation", (double)sj_num(s->j, "gen"));
	cJSON_AddItemToObject(o, "streams", links_json(&snap, 1));
	cJSON_AddStringToObject(o, "callback_url", sj_str(s->j, "callback_url"));
	cJSON_AddStringToObject(o, "callback_token", token);
	free(v);
	a->body = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!a->body)
		return ST_ERROR;
	a->body_len = strlen(a->body);
	return ST_OK;
}

/* One subscription the deliverer looks at: 1 with *a to send, 0 done. */
static int take_one(struct store_txn *w, const struct config *cfg, const char *id, int64_t now,
                    struct subs_attempt *a, struct subs_woke *woke)
{
	struct sub s = { 0 };
	struct linked ls;
	int rc = sub_load(w, id, &s), send = 0;
	if (rc)
		return rc == ST_NOTFOUND ? 0 : rc;
	if ((rc = linked_load(w, s.num, now, &ls))) {
		sub_free(&s);
		return rc;
	}
	int pull = !strcmp(sj_str(s.j, "type"), "pull-wake");
	int64_t att = sj_num(s.j, "att"), lease = sj_num(s.j, "lease"), due = sj_num(s.j, "due");
	if (att && att <= now) {
		/* an attempt that never reported back (its process died) */
		sj_set_num(s.j, "att", 0);
		att = 0;
		if (!due || due > now)
			sj_set_num(s.j, "due", due = now);
	}
	if (!att && lease && lease <= now && (sj_str(s.j, "wake") || sj_str(s.j, "holder"))) {
		wake_clear(&s);
		wake_rearm(&s, &ls, now);
		due = sj_num(s.j, "due");
	}
	if (!att && due && due <= now) {
		if (!links_pending(&ls) && !sj_str(s.j, "wake")) {
			sj_set_num(s.j, "due", 0);
		} else if (pull) {
			if (!sj_str(s.j, "wake") && !sj_str(s.j, "holder")) {
				wake_start(&s, &ls);
				rc = wake_event(w, &s, &ls, now, woke);
				sj_set_num(s.j, "n_wakes", sj_num(s.j, "n_wakes") + 1);
			}
			sj_set_num(s.j, "due", 0);
		} else {
			if (!sj_str(s.j, "wake")) {
				wake_start(&s, &ls);
				sj_set_num(s.j, "lease", now + sj_num(s.j, "lease_ttl_ms"));
			}
			struct keyscan ks = { 0 };
			if (!rc && !(rc = subs_key_active(w, 1, &ks)) && !(rc = webhook_body(w, &s, &ls, now, a))) {
				snprintf(a->id, sizeof a->id, "%s", s.id);
				snprintf(a->url, sizeof a->url, "%s", sj_str(s.j, "url"));
				snprintf(a->wake_id, sizeof a->wake_id, "%s", sj_str(s.j, "wake"));
				a->gen = (uint64_t)sj_num(s.j, "gen");
				a->taken_ms = now;
				memcpy(a->key, ks.active, 32);
				sj_set_num(s.j, "att", now + cfg->webhook_timeout_ms + 5000);
				send = 1;
			}
			OPENSSL_cleanse(ks.active, sizeof ks.active);
		}
	}
	if (!rc)
		rc = sub_store(w, &s);
	linked_free(&ls);
	sub_free(&s);
	if (rc && send)
		subs_attempt_free(a);
	return rc ? rc : send;
}

int subs_take(struct store *st, const struct config *cfg, int64_t now, struct subs_attempt *a,
              struct subs_woke *woke)
{
	char ids[64][LS_MAX_SUB_ID + 1];
	struct due_scan d = { .now = now, .ids = ids, .cap = 64, .collect = 1 };
	struct store_txn w;
	memset(a, 0, sizeof *a);
	int rc = store_write_begin(&w, st);
	if (rc)
		return rc;
	rc = store_sub_scan(&w, "c/", 2, due_visit, &d);
	int got = 0;
	for (size_t i = 0; rc == ST_OK && !got && i < d.n; i++) {
		int r = take_one(&w, cfg, ids[i], now, a, woke);
		if (r < 0)
			rc = r;
		else
			got = r;
	}
	if (rc == ST_OK && (rc = store_commit(&w, 0)) == ST_OK) {
		woke->txnid = w.committed_txnid;
		return got;
	}
	if (w.active)
		store_abort(&w);
	if (got)
		subs_attempt_free(a);
	return rc;
}

/* Backoff after the n-th failure in a row: 1 s doubling to 60 s, +-20 %. */
static int64_t retry_delay(int64_t n)
{
	int64_t base = RETRY_FIRST_MS;
	for (int64_t i = 1; i < n && base < RETRY_MAX_MS; i++)
		base *= 2;
	if (base > RETRY_MAX_MS)
		base = RETRY_MAX_MS;
	unsigned r = 0;
	RAND_bytes((unsigned char *)&r, sizeof r);
	return base + (int64_t)((double)base * 0.2 * ((double)(r % 20001) / 10000.0 - 1.0));
}

int subs_attempt_end(struct store *st, const struct subs_attempt *a, int64_t now, long status,
                     const char *body, size_t len, const char *why)
{
	struct store_txn w;
	struct sub s = { 0 };
	int rc = store_write_begin(&w, st);
	if (rc)
		return rc;
	if ((rc = sub_load(&w, a->id, &s)) == ST_NOTFOUND) {
		store_abort(&w);
		return ST_OK; /* deleted meanwhile */
	}
	int same = rc == ST_OK && (uint64_t)sj_num(s.j, "gen") == a->gen && sj_str(s.j, "wake") &&
	           !strcmp(sj_str(s.j, "wake"), a->wake_id);
	if (rc == ST_OK) {
		sj_set_num(s.j, "att", 0);
		sj_set_num(s.j, status >= 200 && status < 300 ? "n_ok" : "n_failed",
		         sj_num(s.j, status >= 200 && status < 300 ? "n_ok" : "n_failed") + 1);
		if (status >= 200 && status < 300) {
			sj_set_num(s.j, "retry", 0);
			sj_set_str(s.j, "status", "active");
			cJSON *r = cJSON_ParseWithLength(body ? body : "", len);
			if (same && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "done"))) {
				/* done: the wake's snapshot is acked */
				const cJSON *sn = cJSON_GetObjectItemCaseSensitive(s.j, "snap"), *e;
				cJSON_ArrayForEach(e, sn) {
					struct link l;
					struct offset o;
					size_t pl = strlen(e->string);
					if (cJSON_IsString(e) && !offset_parse(e->valuestring, strlen(e->valuestring), &o) &&
					    link_get(&w, s.num, e->string, pl, &l) == ST_OK && o.seq > l.acked.seq) {
						l.acked = o;
						if ((rc = link_put(&w, s.num, e->string, pl, &l)))
							break;
					}
				}
				wake_clear(&s);
			}
			cJSON_Delete(r);
			if (same && sj_str(s.j, "wake"))
				sj_set_num(s.j, "due", 0); /* now the receiver's: until its callback or the lease */
		} else if (same) {
			int64_t n = sj_num(s.j, "retry") + 1;
			sj_set_num(s.j, "retry", n);
			sj_set_str(s.j, "status", "failed");
			sj_set_num(s.j, "due", now + retry_delay(n));
			if (status)
				log_warn("subscription %s: webhook to %s answered %ld; retry %" PRId64 " in %" PRId64 " ms",
				         s.id, a->url, status, n, sj_num(s.j, "due") - now);
			else
				log_warn("subscription %s: webhook to %s failed: %s; retry %" PRId64 " in %" PRId64 " ms",
				         s.id, a->url, why && *why ? why : "no answer", n, sj_num(s.j, "due") - now);
		}
		if (!sj_str(s.j, "wake") && !sj_str(s.j, "holder") && rc == ST_OK) {
			struct linked ls;
			if ((rc = linked_load(&w, s.num, now, &ls)) == ST_OK) {
				wake_rearm(&s, &ls, now);
				linked_free(&ls);
			}
		}
	}
	if (rc == ST_OK)
		rc = sub_store(&w, &s);
	sub_free(&s);
	if (rc == ST_OK)
		return store_commit(&w, 0);
	store_abort(&w);
	return rc;
}

/* --- statistics ---------------------------------------------------------------------- */

static int stats_visit(void *vctx, const unsigned char *key, size_t klen, const void *val, size_t vlen)
{
	struct subs_stats *st = vctx;
	const unsigned char *p = val, *nl = vlen > HDR ? memchr(p + HDR, '\n', vlen - HDR) : NULL;
	(void)key;
	(void)klen;
	if (!nl)
		return 0;
	cJSON *j = cJSON_ParseWithLength((const char *)nl + 1, vlen - (size_t)(nl + 1 - p));
	if (!j)
		return 0;
	int pull = sj_str(j, "type") && !strcmp(sj_str(j, "type"), "pull-wake");
	st->subscriptions[pull]++;
	st->busy += p[0] == 'b';
	st->failing += sj_str(j, "status") && !strcmp(sj_str(j, "status"), "failed");
	st->webhooks_ok += (uint64_t)sj_num(j, "n_ok");
	st->webhooks_failed += (uint64_t)sj_num(j, "n_failed");
	st->wake_events += (uint64_t)sj_num(j, "n_wakes");
	cJSON_Delete(j);
	return 0;
}

int subs_stats(struct store_txn *t, struct subs_stats *s)
{
	memset(s, 0, sizeof *s);
	return store_sub_scan(t, "c/", 2, stats_visit, s);
}
