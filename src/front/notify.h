/* notify.h: commit notifications from any process to lmstream-live.
 *
 * After a commit a writer sends one best-effort datagram (stream id, txn id)
 * to the daemon's AF_UNIX socket. Nothing waits for it and nothing breaks
 * when no daemon runs; the daemon reconciles lost datagrams against the
 * store's last transaction id. */
#ifndef LS_NOTIFY_H
#define LS_NOTIFY_H
#include <stdint.h>
#include "lib/config.h"

struct notify_msg {
	uint64_t stream_id;
	uint64_t txnid;
};

/* Socket path for cfg (notify_socket, else <data_dir>/live.sock) into out.
 * Returns 0, or -1 when it does not fit a socket address. */
int notify_path(const struct config *cfg, char *out, size_t cap);

/* Sender side (any process). notify_send never blocks and never fails
 * loudly; it returns 1 when a daemon is there to take it, 0 when none
 * listens (then nobody delivers subscriptions but the workers). */
void notify_sender_init(const struct config *cfg);
int notify_send(uint64_t stream_id, uint64_t txnid);

/* Receiver side (lmstream-live): binds the socket (replacing a stale one)
 * and returns its descriptor, or -1 with errno. */
int notify_listen(const struct config *cfg);
/* Reads one datagram; returns 1 with *msg, 2 when it was ignored (short,
 * or from a sender other than root, this process's user or group, or the
 * data directory's owner or group), 0 when none is pending, -1 on error. */
int notify_recv(int fd, struct notify_msg *msg);

/* A connected pair of non-blocking datagram sockets, for a parent that
 * relays commits to the processes of an lmstream-live group. Returns 0 or
 * -1 with errno. */
int notify_pair(int sv[2]);
/* Sends one commit on a connected datagram socket; best effort, never blocks. */
void notify_post(int fd, uint64_t stream_id, uint64_t txnid);

#endif
