/* group.c: several lmstream-live processes on one port: start, relay commits, restart, stop. */
#include "front/live/live.h"
#include "front/notify.h"
#include "lib/log.h"
#include "store/store.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* With live_processes = N > 1 the started process becomes a small parent: it
 * binds the notify socket, starts N daemon processes that each listen on the
 * same address (SO_REUSEPORT: the kernel spreads new connections over them,
 * so each holds about 1/N of the connections and descriptors), and relays
 * every commit datagram to all of them: those of other programs' writers
 * arriving on the notify socket, and those of each process's own writes to
 * the others. It forwards SIGHUP (after reopening the access log, which
 * the processes it starts inherit), restarts a process that dies (at most
 * RESTARTS_PER_MINUTE times a minute, then it stops the group and exits 1)
 * and on SIGTERM/SIGINT drains every process and waits for them. */

#define RESTARTS_PER_MINUTE 5
#define GROUP_STOP_MS 15000
#define RELAY_FROM_SOCKET UINT32_MAX

struct member {
	pid_t pid;              /* 0: not running */
	int fd;                 /* parent's end of the datagram pair, -1 when closed */
};

static struct {
	pthread_mutex_t lock;   /* members, n and their fds */
	struct member *members;
	int n;
	int relay_ep;           /* epoll set: the notify socket and every member's fd */
	int live_fd;            /* the notify socket, or -1 */
	atomic_int relay_stop;
	int64_t restarts[RESTARTS_PER_MINUTE]; /* when the last restarts were */
	int nrestarts;
} grp = { .lock = PTHREAD_MUTEX_INITIALIZER, .relay_ep = -1, .live_fd = -1 };

/* Relay thread of the parent: each datagram goes to every process but the
 * one it came from. It neither allocates nor logs (the parent forks while it
 * runs). */
static void *relay(void *arg)
{
	(void)arg;
	while (!atomic_load(&grp.relay_stop)) {
		struct epoll_event evs[32];
		int r = epoll_wait(grp.relay_ep, evs, 32, 200);
		for (int i = 0; i < r; i++) {
			uint32_t from = evs[i].data.u32;
			struct notify_msg m;
			pthread_mutex_lock(&grp.lock);
			int fd = from == RELAY_FROM_SOCKET ? grp.live_fd
			       : (int)from < grp.n ? grp.members[from].fd : -1;
			int got;
			/* 2: a datagram notify_recv refused; the members check
			 * the transaction ids of the others themselves */
			while (fd >= 0 && (got = notify_recv(fd, &m)) > 0)
				for (int k = 0; got == 1 && k < grp.n; k++)
					if ((uint32_t)k != from && grp.members[k].fd >= 0)
						notify_post(grp.members[k].fd, m.stream_id, m.txnid);
			pthread_mutex_unlock(&grp.lock);
		}
	}
	return NULL;
}

/* In the child of spawn_member: closes the parent's descriptors, runs the
 * daemon on its end of the pair and exits with its status. */
static _Noreturn void member_main(int parent_fd, int fd, pid_t parent,
                                  const struct sockaddr_storage *ss, const sigset_t *sigs)
{
	/* It must not outlive the parent, which deploy/run and systemd watch. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		_exit(0);
	close(parent_fd);
	close(grp.relay_ep);
	close(grp.live_fd);
	for (int j = 0; j < grp.n; j++)
		if (grp.members[j].fd >= 0)
			close(grp.members[j].fd);
	live.group_fd = fd;
	exit(serve(ss, sigs));
}

/* Starts process k of the group. In the child it never returns: the child
 * runs the daemon and exits with its status. */
static int spawn_member(int k, const struct sockaddr_storage *ss, const sigset_t *sigs)
{
	int sv[2];
	if (notify_pair(sv) < 0) {
		log_error("socketpair: %s", strerror(errno));
		return -1;
	}
	pid_t parent = getpid();
	pthread_mutex_lock(&grp.lock);
	pid_t pid = fork();
	if (pid == 0)
		member_main(sv[0], sv[1], parent, ss, sigs);
	if (pid < 0) {
		int e = errno;
		pthread_mutex_unlock(&grp.lock);
		close(sv[0]);
		close(sv[1]);
		log_error("fork: %s", strerror(e));
		return -1;
	}
	close(sv[1]);
	grp.members[k].pid = pid;
	grp.members[k].fd = sv[0];
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)k };
	epoll_ctl(grp.relay_ep, EPOLL_CTL_ADD, sv[0], &ev);
	pthread_mutex_unlock(&grp.lock);
	return 0;
}

/* Reaps ended processes; returns how many of them had been running, their
 * numbers in which (at most cap). */
static int reap_members(int *which, int cap)
{
	int n = 0, status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		pthread_mutex_lock(&grp.lock);
		for (int k = 0; k < grp.n; k++) {
			if (grp.members[k].pid != pid)
				continue;
			grp.members[k].pid = 0;
			if (grp.members[k].fd >= 0)
				close(grp.members[k].fd); /* also leaves relay_ep */
			grp.members[k].fd = -1;
			if (n < cap)
				which[n++] = k;
		}
		pthread_mutex_unlock(&grp.lock);
		if (WIFSIGNALED(status))
			log_warn("process %d ended by signal %d", (int)pid, WTERMSIG(status));
		else
			log_info("process %d exited with status %d", (int)pid, WEXITSTATUS(status));
	}
	return n;
}

static void signal_members(int sig)
{
	pthread_mutex_lock(&grp.lock);
	for (int k = 0; k < grp.n; k++)
		if (grp.members[k].pid > 0)
			kill(grp.members[k].pid, sig);
	pthread_mutex_unlock(&grp.lock);
}

static int members_running(void)
{
	int n = 0;
	pthread_mutex_lock(&grp.lock);
	for (int k = 0; k < grp.n; k++)
		n += grp.members[k].pid > 0;
	pthread_mutex_unlock(&grp.lock);
	return n;
}

/* After SIGCHLD: restarts the processes that ended. Returns -1 when one
 * cannot be restarted or they restart too often: the group must stop. */
static int restart_ended(const struct sockaddr_storage *ss, const sigset_t *sigs)
{
	int ended[64];
	int ne = reap_members(ended, 64);
	int64_t now = store_mono_ms();
	for (int i = 0; i < ne; i++) {
		int64_t oldest = grp.restarts[grp.nrestarts % RESTARTS_PER_MINUTE];
		if (grp.nrestarts >= RESTARTS_PER_MINUTE && now - oldest < 60000) {
			log_error("%d restarts within a minute: stopping", RESTARTS_PER_MINUTE);
			return -1;
		}
		grp.restarts[grp.nrestarts++ % RESTARTS_PER_MINUTE] = now;
		log_warn("restarting process %d of the group", ended[i]);
		if (spawn_member(ended[i], ss, sigs) < 0)
			return -1;
	}
	return 0;
}

/* Waits for signals: reopens the access log and forwards SIGHUP, restarts
 * on SIGCHLD, returns on anything else with 0, or with 1 when the group
 * failed. */
static int supervise(const struct sockaddr_storage *ss, const sigset_t *sigs)
{
	int sig = 0;
	while (sigwait(sigs, &sig) == 0) {
		if (sig == SIGHUP) {
			access_reopen(); /* for the processes it starts from now on */
			signal_members(SIGHUP);
			continue;
		}
		if (sig != SIGCHLD)
			break;
		if (restart_ended(ss, sigs) < 0)
			return 1;
	}
	log_info("signal %d: stopping %d process(es)", sig, members_running());
	return 0;
}

/* Sends SIGTERM to every process and waits for them, with SIGKILL for those
 * still running after GROUP_STOP_MS. */
static void stop_members(void)
{
	int64_t until = store_mono_ms() + GROUP_STOP_MS;
	int ended[64];
	signal_members(SIGTERM);
	while (members_running() > 0) {
		reap_members(ended, 64);
		if (members_running() == 0)
			break;
		if (store_mono_ms() > until) {
			log_warn("processes still running after %d ms: killing them", GROUP_STOP_MS);
			signal_members(SIGKILL);
			until = INT64_MAX;
		}
		usleep(20000);
	}
}

/* The parent's table of n members, the notify socket and the relay's epoll
 * set. Returns 0, or -1 (logged when it is not out of memory). */
static int group_open(int n)
{
	grp.members = calloc((size_t)n, sizeof *grp.members);
	if (!grp.members)
		return -1;
	grp.n = n;
	for (int k = 0; k < n; k++)
		grp.members[k].fd = -1;
	grp.live_fd = notify_listen(&live.cfg);
	if (grp.live_fd < 0)
		log_warn("cannot bind the notify socket (%s): commits by other processes are seen "
		         "by polling only", strerror(errno));
	grp.relay_ep = epoll_create1(EPOLL_CLOEXEC);
	if (grp.relay_ep < 0) {
		log_error("epoll_create1: %s", strerror(errno));
		return -1;
	}
	if (grp.live_fd >= 0) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = RELAY_FROM_SOCKET };
		epoll_ctl(grp.relay_ep, EPOLL_CTL_ADD, grp.live_fd, &ev);
	}
	return 0;
}

static void group_close(void)
{
	close(grp.relay_ep);
	if (grp.live_fd >= 0) {
		char path[600];
		close(grp.live_fd);
		if (notify_path(&live.cfg, path, sizeof path) == 0)
			unlink(path);
	}
	free(grp.members);
}

int run_group(const struct sockaddr_storage *ss, const sigset_t *sigs)
{
	int n = live.cfg.live_processes;
	/* max_connections is the group's total; each process gets its share. */
	int total = live.cfg.max_connections;
	live.cfg.max_connections = (total + n - 1) / n;
	if (group_open(n) < 0)
		return 1;
	log_info("starting %d processes on %s (max %d connections each)", n, live.cfg.listen,
	         live.cfg.max_connections);
	for (int k = 0; k < n; k++)
		if (spawn_member(k, ss, sigs) < 0)
			return 1;
	pthread_t rt;
	if (pthread_create(&rt, NULL, relay, NULL)) {
		log_error("cannot start the relay thread");
		signal_members(SIGTERM);
		return 1;
	}
	int status = supervise(ss, sigs);
	stop_members();
	atomic_store(&grp.relay_stop, 1);
	pthread_join(rt, NULL);
	group_close();
	log_info("stopped");
	return status;
}
