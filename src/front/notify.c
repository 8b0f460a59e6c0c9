/* notify.c: best-effort commit notifications over an AF_UNIX datagram socket. */
#include "front/notify.h"
#include "lib/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int send_fd = -1;
static struct {
	uid_t uid[2];
	gid_t gid[2];
} allowed;
static struct sockaddr_un send_addr;
static socklen_t send_len;

int notify_path(const struct config *cfg, char *out, size_t cap)
{
	size_t max = sizeof(((struct sockaddr_un *)0)->sun_path);
	int n = cfg->notify_path[0] ? snprintf(out, cap, "%s", cfg->notify_path)
	                            : snprintf(out, cap, "%s/live.sock", cfg->data_dir);
	if (n < 0 || (size_t)n >= cap || (size_t)n >= max)
		return -1;
	return 0;
}

static int fill_addr(const struct config *cfg, struct sockaddr_un *a, socklen_t *len)
{
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	if (notify_path(cfg, a->sun_path, sizeof a->sun_path))
		return -1;
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(a->sun_path) + 1);
	return 0;
}

void notify_sender_init(const struct config *cfg)
{
	if (send_fd >= 0)
		return;
	if (fill_addr(cfg, &send_addr, &send_len)) {
		log_warn("notify socket path too long; lmstream-live will rely on polling");
		return;
	}
	send_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

int notify_send(uint64_t stream_id, uint64_t txnid)
{
	struct notify_msg m = { stream_id, txnid };
	if (send_fd < 0)
		return 0;
	/* ENOENT / ECONNREFUSED: no daemon. EAGAIN: its queue is full; it will
	 * notice the commit through the store's transaction id. */
	ssize_t r = sendto(send_fd, &m, sizeof m, MSG_DONTWAIT | MSG_NOSIGNAL,
	                   (struct sockaddr *)&send_addr, send_len);
	return r >= 0 || errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS;
}

int notify_listen(const struct config *cfg)
{
	struct sockaddr_un a;
	socklen_t len;
	if (fill_addr(cfg, &a, &len)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	unlink(a.sun_path);
	if (bind(fd, (struct sockaddr *)&a, len) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	/* Writers may run as another user of the same group. Each datagram
	 * carries its sender's credentials (notify_recv checks them). */
	chmod(a.sun_path, 0660);
	int on = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof on) < 0) {
		int e = errno;
		close(fd);
		unlink(a.sun_path);
		errno = e;
		return -1;
	}
	struct stat sb;
	allowed.uid[0] = geteuid();
	allowed.gid[0] = getegid();
	if (stat(cfg->data_dir, &sb) == 0) {
		allowed.uid[1] = sb.st_uid;
		allowed.gid[1] = sb.st_gid;
	} else {
		allowed.uid[1] = allowed.uid[0];
		allowed.gid[1] = allowed.gid[0];
	}
	int sz = 4 << 20;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
	return fd;
}

/* Who may announce commits on the notify socket: root, this process's
 * user or group, and the owner or group of the data directory (the
 * workers, which must write the store). */
static int sender_allowed(const struct ucred *cr)
{
	for (int i = 0; i < 2; i++)
		if (cr->uid == allowed.uid[i] || cr->gid == allowed.gid[i])
			return 1;
	return cr->uid == 0;
}

int notify_recv(int fd, struct notify_msg *msg)
{
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(sizeof(struct ucred))];
	} ctl;
	struct iovec iov = { msg, sizeof *msg };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl, .msg_controllen = sizeof ctl };
	ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
	if (n != (ssize_t)sizeof *msg || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
		return 2;
	/* The notify socket has SO_PASSCRED: the kernel attaches the sender's
	 * credentials to every datagram. A socketpair of a group has not. */
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
			struct ucred cr;
			memcpy(&cr, CMSG_DATA(c), sizeof cr);
			return sender_allowed(&cr) ? 1 : 2;
		}
	}
	return 1;
}

int notify_pair(int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	int sz = 4 << 20;
	for (int i = 0; i < 2; i++) {
		setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
		setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
	}
	return 0;
}

void notify_post(int fd, uint64_t stream_id, uint64_t txnid)
{
	struct notify_msg m = { stream_id, txnid };
	/* A full queue drops the datagram; the receiver reconciles through the
	 * store's transaction id. */
	ssize_t r = send(fd, &m, sizeof m, MSG_DONTWAIT | MSG_NOSIGNAL);
	(void)r;
}
