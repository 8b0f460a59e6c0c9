/* background.c: lmstream-live's notifier thread (commits, hang-ups, timers) and housekeeper. */
#include "front/live/live.h"
#include "front/deliver.h"
#include "front/notify.h"
#include "lib/limits.h"
#include "lib/log.h"
#include "store/store.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define TICK_MS 100            /* timer scan and lost-notification check */
#define RECONCILE_AFTER_MS 200 /* a commit not notified within this wakes everyone */
#define READER_CHECK_MS 10000  /* stale LMDB reader slots */

static struct {
	int notify_fd;             /* commit datagrams: the notify socket or live.group_fd */
	int watch_ep;              /* epoll set: notify_fd (data.ptr NULL) and waiting sockets' hang-ups */
	struct conn *graveyard;    /* completed conns the notifier frees (under live.reg's lock) */
	pthread_t notifier, housekeeper;
	atomic_int notifier_stop, housekeeper_stop;
} bg = { .notify_fd = -1, .watch_ep = -1 };

int bg_open(void)
{
	bg.notify_fd = live.group_fd >= 0 ? live.group_fd : notify_listen(&live.cfg);
	if (bg.notify_fd < 0)
		log_warn("cannot bind the notify socket (%s): commits by other processes are seen "
		         "by polling only", strerror(errno));
	reg_note_txnid(&live.reg, store_last_txnid(live.store));
	bg.watch_ep = epoll_create1(EPOLL_CLOEXEC);
	if (bg.watch_ep < 0) {
		log_error("epoll_create1: %s", strerror(errno));
		return -1;
	}
	if (bg.notify_fd >= 0) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
		epoll_ctl(bg.watch_ep, EPOLL_CTL_ADD, bg.notify_fd, &ev);
	}
	return 0;
}

void bg_watch(struct conn *c)
{
	if (c->watched || bg.watch_ep < 0)
		return;
	/* libmicrohttpd does not watch suspended sockets: learn of a client
	 * that leaves while waiting from an edge-triggered hang-up event. */
	int fd = conn_fd(c);
	struct epoll_event ev = { .events = EPOLLRDHUP | EPOLLET, .data.ptr = c };
	if (fd >= 0 && epoll_ctl(bg.watch_ep, EPOLL_CTL_ADD, fd, &ev) == 0)
		c->watched = 1;
}

int bg_bury(struct conn *c)
{
	if (!c->watched)
		return 0;
	int fd = conn_fd(c);
	if (fd >= 0)
		epoll_ctl(bg.watch_ep, EPOLL_CTL_DEL, fd, NULL);
	c->dead = 1;
	c->grave_next = bg.graveyard;
	bg.graveyard = c;
	return 1;
}

static void free_graves(struct conn *grave)
{
	while (grave) {
		struct conn *next = grave->grave_next;
		free(grave);
		grave = next;
	}
}

/* --- notifier thread ---------------------------------------------------------- */

/* Wakes the waiters of every commit datagram pending on the notify socket. */
static void take_datagrams(void)
{
	struct notify_msg m;
	int r;
	while ((r = notify_recv(bg.notify_fd, &m)) > 0) {
		/* A transaction id past the store's last is no commit's: taking
		 * it would hide real commits from reconcile() until a restart. */
		if (r == 2 || m.txnid > store_last_txnid(live.store)) {
			atomic_fetch_add(&live.ignored_notices, 1);
			continue;
		}
		reg_note_txnid(&live.reg, m.txnid);
		reg_wake(&live.reg, m.stream_id);
		deliver_kick();
	}
}

void bg_woke(void *arg, uint64_t stream_id, uint64_t txnid)
{
	(void)arg;
	reg_note_txnid(&live.reg, txnid);
	reg_wake(&live.reg, stream_id);
	if (live.group_fd >= 0)
		notify_post(live.group_fd, stream_id, txnid);
}

/* A client hung up. The edge comes once: if the connection is busy right
 * now, the flag makes its next step end it instead of waiting again; if it
 * waits, resume it to end it. */
static void hung_up(struct conn *c)
{
	reg_lock(&live.reg);
	if (!c->dead)
		reg_hang_up(&live.reg, &c->w);
	reg_unlock(&live.reg);
}

/* A commit that was never announced: wake everyone once to reconcile. */
struct reconcile {
	uint64_t since_txn;        /* the first commit seen unannounced; 0: none */
	int64_t since;             /* when it was seen */
};

static void reconcile(struct reconcile *rc, int64_t now)
{
	uint64_t last = store_last_txnid(live.store);
	if (last <= reg_notified_txnid(&live.reg)) {
		rc->since_txn = 0;
		return;
	}
	if (rc->since_txn == 0) {
		rc->since_txn = last;
		rc->since = now;
	} else if (now - rc->since >= RECONCILE_AFTER_MS) {
		log_debug("commit %llu was not announced: waking all waiters", (unsigned long long)last);
		reg_note_txnid(&live.reg, rc->since_txn);
		reg_scan(&live.reg, now, 1);
		rc->since_txn = 0;
	}
}

static void *notifier(void *arg)
{
	struct reconcile rc = { 0, 0 };
	int64_t last_tick = store_mono_ms(), last_reader_check = last_tick;
	(void)arg;

	while (!atomic_load(&bg.notifier_stop)) {
		/* Completed conns: no event from before their removal is pending now. */
		reg_lock(&live.reg);
		struct conn *grave = bg.graveyard;
		bg.graveyard = NULL;
		reg_unlock(&live.reg);
		free_graves(grave);

		struct epoll_event evs[64];
		int r = epoll_wait(bg.watch_ep, evs, 64, TICK_MS);
		for (int i = 0; i < r; i++) {
			if (!evs[i].data.ptr)
				take_datagrams();
			else
				hung_up(evs[i].data.ptr);
		}
		int64_t now = store_mono_ms();
		if (now - last_tick < TICK_MS)
			continue;
		last_tick = now;
		reg_scan(&live.reg, now, 0);
		edge_scan(now);
		reconcile(&rc, now);
		if (now - last_reader_check > READER_CHECK_MS) {
			last_reader_check = now;
			int dead = store_reader_check(live.store);
			if (dead)
				log_info("cleared %d stale reader slot(s)", dead);
		}
	}
	return NULL;
}

/* --- housekeeping -------------------------------------------------------------- */

/* Writers reclaim deleted streams, expire streams and trim retained history a
 * few hundred rows per commit. Streams nobody writes to would keep what they
 * should lose, so the daemon runs one bounded pass every few seconds too,
 * off the notifier thread (it may wait for the writer lock). A pass with
 * nothing to do commits an empty transaction, which writes nothing. */
static void *housekeeper(void *arg)
{
	(void)arg;
	int64_t last = store_mono_ms();
	while (!atomic_load(&bg.housekeeper_stop)) {
		usleep(200 * 1000);
		store_touch_flush(live.store, 0); /* TTL touches no write took along */
		int64_t now = store_mono_ms();
		if (now - last < LS_HOUSEKEEP_MS)
			continue;
		last = now;
		struct store_txn w;
		if (store_write_begin(&w, live.store) != ST_OK)
			continue;
		if (store_housekeep(&w, store_now_ms(), LS_GC_ROWS_PER_WRITE) != ST_OK) {
			store_abort(&w);
			continue;
		}
		/* Nobody was promised these deletions: no flush to wait for. */
		store_commit(&w, 1);
	}
	return NULL;
}

/* --- start and stop -------------------------------------------------------------- */

int bg_start(void)
{
	if (pthread_create(&bg.notifier, NULL, notifier, NULL)) {
		log_error("cannot start the notifier thread");
		return -1;
	}
	if (pthread_create(&bg.housekeeper, NULL, housekeeper, NULL)) {
		log_error("cannot start the housekeeping thread");
		return -1;
	}
	return 0;
}

void bg_stop(void)
{
	atomic_store(&bg.notifier_stop, 1);
	pthread_join(bg.notifier, NULL);
	atomic_store(&bg.housekeeper_stop, 1);
	pthread_join(bg.housekeeper, NULL);
}

void bg_close(void)
{
	free_graves(bg.graveyard);
	bg.graveyard = NULL;
	close(bg.watch_ep);
	bg.watch_ep = -1;
	if (bg.notify_fd >= 0) {
		char path[600];
		close(bg.notify_fd);
		if (live.group_fd < 0 && notify_path(&live.cfg, path, sizeof path) == 0)
			unlink(path);
		bg.notify_fd = -1;
	}
}
