/* main.c: lmstream-live's start-up: configuration, one daemon (serve) or a group, stop. */
#include "core/auth.h"
#include "front/live/listen.h"
#include "front/deliver.h"
#include "front/live/live.h"
#include "lib/limits.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "store/batch.h"
#include "store/store.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

struct live live = { .group_fd = -1, .listen_fd = -1 };

/* Every connection needs one descriptor; keep room for the store, logs and
 * the notify socket. */
static int raise_fd_limit(int connections)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)connections + 64;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 0;
	if (rl.rlim_cur >= need)
		return 0;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
		log_error("max_connections = %d needs %llu file descriptors but the hard limit is %llu; "
		          "lower max_connections or raise the limit (ulimit -Hn, LimitNOFILE=)",
		          connections, (unsigned long long)need, (unsigned long long)rl.rlim_max);
		return -1;
	}
	rl.rlim_cur = need;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		log_error("setrlimit(RLIMIT_NOFILE, %llu): %s", (unsigned long long)need, strerror(errno));
		return -1;
	}
	return 0;
}

/* libmicrohttpd reports every client that hangs up mid-stream; that is
 * normal for live readers, so its messages go to the debug level. */
__attribute__((format(printf, 2, 0)))
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	(void)cls;
	vsnprintf(line, sizeof line, fmt, ap);
	line[strcspn(line, "\n")] = '\0';
	log_debug("libmicrohttpd: %s", line);
}

static void usage(FILE *f)
{
	fputs("usage: lmstream-live [--config FILE] [--data DIR] [--listen HOST:PORT|unix:PATH]\n"
	      "                     [--threads N] [--max-connections N] [--set key=value]...\n"
	      "Serves the Durable Streams protocol over HTTP from the LMDB data directory:\n"
	      "live reads (SSE, long-poll) behind lighttpd or Apache, or everything when alone.\n"
	      "Environment: LMSTREAM_CONFIG=FILE, LMSTREAM_<KEY>=value for any config key.\n", f);
}

/* The keys of auth = token. The daemon does not start without them. */
static int open_keys(const struct config *cfg, struct auth **out)
{
	char err[600];
	*out = NULL;
	if (cfg->auth != AUTH_TOKEN)
		return 0;
	if (auth_open(out, cfg, err, sizeof err)) {
		log_error("auth = token: %s", err);
		return -1;
	}
	log_info("auth = token: %zu key(s) loaded", auth_nkeys(*out));
	return 0;
}

/* What the daemon needs before it listens: descriptors for mhd_limit
 * connections, the store, the batcher, the per-thread contexts, the
 * registry and the notifier's sockets. Returns 0, or -1 (logged). */
static int serve_setup(int mhd_limit)
{
	if (raise_fd_limit(mhd_limit) < 0)
		return -1;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || edge_open((int)(rl.rlim_cur > 1 << 22 ? 1 << 22 : rl.rlim_cur)) < 0) {
		log_error("out of memory for the connection table");
		return -1;
	}
	if (store_open(&live.store, &live.cfg) != ST_OK)
		return -1;
	char err[700];
	if (live.cfg.metrics && metrics_attach(live.cfg.data_dir, MF_LIVE, 1, err, sizeof err))
		log_warn("metrics: %s", err);
	live.batch = batch_new(live.store, LS_BATCH_MAX_JOBS, LS_BATCH_MAX_BYTES);
	if (open_keys(&live.cfg, &live.auth) < 0)
		return -1;
	if (http_init() < 0) {
		log_error("cannot make the per-thread protocol contexts: %s", strerror(errno));
		return -1;
	}
	if (reg_init(&live.reg, &conn_reg_ops, &live.draining) < 0) {
		log_error("out of memory for the waiter registry");
		return -1;
	}
	if (bg_open() < 0)
		return -1;
	return tail_open();
}

/* Starts libmicrohttpd on ss with its own limit of mhd_limit connections.
 * Returns the daemon, or NULL. */
static struct MHD_Daemon *start_daemon(struct sockaddr_storage *ss, int mhd_limit)
{
	const struct config *cfg = &live.cfg;
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
	                 MHD_USE_TURBO;
	/* A unix: socket is bound already (main), shared by a group's processes. */
	if (ss->ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	return MHD_start_daemon(
		flags, 0, NULL, NULL, on_request, NULL,
		/* first, so that it also gets the warnings about later options */
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)ss,
		MHD_OPTION_LISTEN_SOCKET, (MHD_socket)live.listen_fd,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(cfg->threads > 1 ? cfg->threads : 0),
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)mhd_limit,
		/* ignored on a unix: socket, whose one client is the web server */
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->max_connections_per_ip,
		/* Idle connections are closed after this; suspended ones are exempt,
		 * and a live response writes at least every heartbeat. */
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(cfg->heartbeat_ms / 1000 * 2 + 60),
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)cfg->conn_memory,
		MHD_OPTION_CONNECTION_MEMORY_INCREMENT, (size_t)512,
		MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)4096,
		MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
		MHD_OPTION_UNESCAPE_CALLBACK, keep_escapes, NULL,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
		MHD_OPTION_END);
}

/* Waits for a signal of sigs: on SIGHUP reopens the access log (logrotate
 * renamed it) and logs statistics; returns any other. */
static int wait_for_stop(const sigset_t *sigs)
{
	int sig = 0;
	while (sigwait(sigs, &sig) == 0 && sig == SIGHUP) {
		access_reopen();
		/* connections: libmicrohttpd's and the SSE subscribers tail.c holds */
		log_info("%d connections, %ld requests, %ld wake-ups, %d in progress, %zu waiting, "
		         "%llu bytes buffered, %ld commit notices ignored, %d SSE subscribers",
		         atomic_load(&live.nconn) + atomic_load(&live.nsubs), atomic_load(&live.requests),
		         atomic_load(&live.reg.wakeups), atomic_load(&live.nreq), reg_count(&live.reg),
		         (unsigned long long)edge_buffered(), atomic_load(&live.ignored_notices),
		         atomic_load(&live.nsubs));
	}
	return sig;
}

/* Drain: stop accepting, end live responses, give them a moment; then stop
 * the threads and the daemon and release everything. */
static void drain(int sig)
{
	log_info("signal %d: draining %d connection(s)", sig, atomic_load(&live.nconn) + atomic_load(&live.nsubs));
	atomic_store(&live.draining, 1);
	MHD_socket lfd = MHD_quiesce_daemon(live.mhd);
	reg_scan(&live.reg, store_mono_ms(), 1);
	for (int i = 0; i < 100 && atomic_load(&live.nreq) + atomic_load(&live.nsubs) > 0; i++) {
		usleep(20000);
		reg_scan(&live.reg, store_mono_ms(), 1);
	}
	/* Queued writes are answered (their connections resumed) while
	 * libmicrohttpd still runs; later ones commit in the request thread. */
	batch_stop(live.batch);
	deliver_thread_stop();
	bg_stop();
	tail_stop();
	reg_scan(&live.reg, store_mono_ms(), 1);
	MHD_stop_daemon(live.mhd);
	live.mhd = NULL;
	bg_close();
	reg_fini(&live.reg);
	if (lfd != MHD_INVALID_SOCKET)
		close(lfd);
	batch_free(live.batch);
	auth_close(live.auth);
	metrics_detach();
	store_close(live.store);
	edge_close();
}

int serve(const struct sockaddr_storage *ssp, const sigset_t *sigsp)
{
	struct sockaddr_storage ss = *ssp;
	sigset_t sigs = *sigsp;
	sigdelset(&sigs, SIGCHLD); /* stays blocked; a group's parent waits for it */
	/* The daemon's own limit sits a little above the cap so that the cap
	 * can be answered with 503 instead of a refused connection. */
	int mhd_limit = live.cfg.max_connections + 32;
	if (serve_setup(mhd_limit) < 0)
		return 1;
	live.mhd = start_daemon(&ss, mhd_limit);
	if (!live.mhd) {
		log_error("cannot listen on %s", live.cfg.listen);
		return 1;
	}
	if (bg_start() < 0 || tail_start() < 0 || deliver_thread_start(live.store, &live.cfg, bg_woke, NULL) < 0)
		return 1;
	log_info("listening on %s (data %s, %d thread(s), max %d connections%s)", live.cfg.listen,
	         live.cfg.data_dir, live.cfg.threads, live.cfg.max_connections,
	         live.group_fd >= 0 ? ", one process of a group" : "");
	drain(wait_for_stop(&sigs));
	log_info("stopped");
	return 0;
}

int main(int argc, char **argv)
{
	/* --standalone is accepted for clarity: it always serves everything. */
	static const char *const extra[] = { "--standalone", NULL };

	/* Files and directories are created 0660/0770: the daemon and the web
	 * server's workers run as two users of one group and share the store.
	 * A web server's umask of 022 would make them 0640 and lock one out. */
	umask(007);
	log_init("lmstream-live", getenv("LMSTREAM_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_INFO);
	int cstatus = config_main(&live.cfg, argc, argv, "lmstream-live", usage, extra);
	if (cstatus >= 0)
		return cstatus;
	log_init("lmstream-live", getenv("LMSTREAM_DEBUG") ? LOG_LVL_DEBUG : live.cfg.log_level);
	/* Before a group forks: its processes share the descriptor. */
	if (access_open() < 0)
		return 1;

	struct sockaddr_storage ss;
	socklen_t sslen;
	if (parse_listen(live.cfg.listen, &ss, &sslen)) {
		log_error("invalid listen address '%s' (expected HOST:PORT or unix:/PATH)", live.cfg.listen);
		return 2;
	}
	if (ss.ss_family == AF_UNIX) {
		char err[600];
		live.listen_fd = listen_unix(&ss, sslen, live.cfg.listen_group, err, sizeof err);
		if (live.listen_fd < 0) {
			log_error("cannot listen on %s: %s", live.cfg.listen, err);
			return 1;
		}
		live.behind_proxy = 1;
	}
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	if (live.cfg.live_processes > 1)
		sigaddset(&sigs, SIGCHLD); /* only the parent of a group waits for it */
	pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* every thread inherits this */
	signal(SIGPIPE, SIG_IGN);
	int status = live.cfg.live_processes > 1 ? run_group(&ss, &sigs) : serve(&ss, &sigs);
	if (live.behind_proxy)
		unlink(live.cfg.listen + 5); /* the socket file of "unix:PATH" */
	return status;
}
