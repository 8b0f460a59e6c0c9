/* live.h: what lmstream-live's modules share: struct conn, the daemon state, entry points. */
#ifndef LS_LIVE_H
#define LS_LIVE_H
/* lmstream-live holds live readers (SSE and long-poll) and serves the whole
 * protocol when it runs alone.
 *
 * A waiting connection is suspended in libmicrohttpd and listed under its
 * stream id in the waiter registry (registry.h); it holds its offset (struct
 * proto_live) and no queue. A commit by any process reaches the notifier
 * thread (background.c) as a datagram (front/notify.h) or, for this daemon's
 * own writes, as a direct call (http.c); the waiters of that stream, and only
 * those, are resumed and read what follows their offset from the store. A
 * lost datagram is caught by comparing the store's last transaction id with
 * the last one notified.
 *
 * An SSE subscriber leaves libmicrohttpd once its response head is decided:
 * tail.c holds its socket and sends its events (see there).
 *
 * The modules: main.c starts the daemon (serve) or a group of them (group.c);
 * http.c answers requests; tail.c serves SSE subscribers; edge.c refuses
 * what must not reach them and keeps the header deadline and the memory
 * budget; background.c runs the notifier and housekeeping threads; access.c
 * writes the access log; listen.c parses the listen address. */
#include "core/protocol.h"
#include "front/live/registry.h"
#include "lib/buf.h"
#include "lib/config.h"

#include <microhttpd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

struct batch;
struct store;

/* K_HANDED: an SSE response whose socket tail.c took over; libmicrohttpd
 * only closes its own descriptor of it. */
enum conn_kind { K_NEW, K_PLAIN, K_WRITING, K_LONGPOLL, K_SSE, K_HANDED };

/* A queued write's hand-over (struct conn's wflags): the request thread
 * has suspended the connection; the flusher thread has the answer. Whoever
 * sets the second resumes it. */
enum { W_SUSPENDED = 1, W_WRITTEN = 2 };

/* One request (libmicrohttpd's per-request context). */
struct conn {
	enum conn_kind kind;
	struct MHD_Connection *mc;
	struct proto_request req;
	struct proto_live live;
	struct buf body;         /* request body (standalone writes) */
	struct proto_response *wresp; /* a write's answer, filled by the writer threads */
	atomic_int wflags;       /* W_SUSPENDED, W_WRITTEN */
	char *target;            /* raw path */
	char *query;             /* raw query rebuilt from the arguments */
	char *user;              /* the web server's user (Forwarded remote_user), or NULL */
	/* in the waiter registry; w.fired: the long-poll timed out */
	struct reg_entry w;
	/* timers (monotonic ms) */
	int64_t deadline;        /* long-poll timeout */
	/* bytes of the memory budget this request holds (edge.c): its body's
	 * Content-Length, or what came of a body without one */
	uint64_t reserved;
	int over_budget;         /* the body did not fit in the budget: 503 */
	uint64_t resp_held;      /* bytes of the queued response's body counted there */
	/* hang-up watch (under live.reg's lock): the socket is in the notifier's
	 * epoll set from its first wait until completion; a completed conn is
	 * freed by the notifier */
	int watched;
	int dead;
	struct conn *grave_next;
	/* the access log's record (access.c) */
	int64_t started;         /* monotonic ms when the headers were in */
	int status;              /* status queued; 0: none yet */
	uint64_t sent;           /* body bytes: a whole response's, or SSE bytes handed out */
	char method[16];         /* as the request line had it (cut short) */
	char client[64];         /* the client's address, when there is an access log */
};

/* The state the modules of one daemon process share. */
struct live {
	struct config cfg;
	struct store *store;
	struct batch *batch;     /* the writer and flusher threads: writes are queued to it */
	struct auth *auth;       /* keys of auth = token; NULL: none (requests get 503) */
	struct MHD_Daemon *mhd;
	struct registry reg;     /* waiting connections */
	atomic_int nconn;        /* open connections */
	atomic_int nreq;         /* requests in progress (not idle keep-alive) */
	atomic_int nsubs;        /* SSE subscribers held by tail.c */
	atomic_int draining;     /* shutting down: answer and end, wait no more */
	atomic_long requests;    /* statistics: requests since the start */
	atomic_long ignored_notices; /* commit notices from senders not allowed, or not of a commit */
	/* Listening on a unix: socket, which only the web server can reach: its
	 * Forwarded element (user, scheme) is trusted. Never on a TCP port. */
	int behind_proxy;
	int listen_fd;           /* the unix: socket bound before any fork, or -1 */
	/* In a group of processes (live_processes > 1): this process's end of
	 * the datagram pair to the parent, which relays every commit to every
	 * process; -1 otherwise. */
	int group_fd;
};

/* The one daemon of this process (defined in main.c). */
extern struct live live;

/* --- main.c ---------------------------------------------------------------- */

/* Runs one daemon process until SIGTERM/SIGINT (SIGHUP logs statistics and
 * reopens the access log): the only process, or one of a group
 * (live.group_fd >= 0), which then takes its commit datagrams from the
 * parent instead of binding the notify socket.
 * sigs are the signals blocked in every thread. Returns the exit status. */
int serve(const struct sockaddr_storage *ss, const sigset_t *sigs);

/* --- group.c --------------------------------------------------------------- */

/* Runs live.cfg.live_processes daemon processes on the address ss, each
 * with its share of max_connections, relaying commits among them, until
 * SIGTERM/SIGINT or too many restarts. sigs are the blocked signals,
 * SIGCHLD included. Returns the exit status. */
int run_group(const struct sockaddr_storage *ss, const sigset_t *sigs);

/* --- http.c ---------------------------------------------------------------- */

/* What the registry does to a connection: suspend it in libmicrohttpd (and
 * watch its socket for a hang-up), resume it, peek whether its client left. */
extern const struct reg_ops conn_reg_ops;

/* Prepares the per-thread protocol contexts (each freed when its thread
 * ends). Returns 0, or -1 with errno. */
int http_init(void);

/* The value of the last request header called name (case-insensitive),
 * or NULL: the one a proxy appended comes last. */
const char *conn_last_header(struct MHD_Connection *mc, const char *name);

/* The socket of c, or -1 when libmicrohttpd does not say. */
int conn_fd(const struct conn *c);

/* libmicrohttpd callbacks, given to MHD_start_daemon: the request handler
 * (the default handler) ... */
enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url,
                           const char *method, const char *version, const char *upload_data,
                           size_t *upload_data_size, void **con_cls);
/* ... MHD_OPTION_NOTIFY_COMPLETED: frees the request's conn (or hands it to
 * the notifier) ... */
void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                  enum MHD_RequestTerminationCode toe);
/* ... MHD_OPTION_NOTIFY_CONNECTION: counts open connections (live.nconn) ... */
void on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                   enum MHD_ConnectionNotificationCode toe);
/* ... and MHD_OPTION_UNESCAPE_CALLBACK: keeps escapes as they are, since the
 * core decodes paths and query values itself. */
size_t keep_escapes(void *cls, struct MHD_Connection *mc, char *s);

/* --- edge.c ---------------------------------------------------------------- */

/* Prepares one slot per descriptor number below nfds. Returns 0, or -1. */
int edge_open(int nfds);
void edge_close(void);

/* The first call of c's request (method, url and version as libmicrohttpd
 * handed them): E_OK, or why the daemon refuses it before reading a body
 * (behind a web server anything but GET, HEAD and OPTIONS; a NUL byte in
 * the request line or a header; two lengths; Content-Length over max_body
 * or over what is left of the memory budget, which it reserves). */
enum proto_err edge_check(struct conn *c, const char *method, const char *url, const char *version);

/* The memory budget (memory_budget bytes per process) for request bodies
 * and unsent events: take n bytes (0, or -1 when they do not fit), give
 * them back, and what is taken now. */
int edge_budget_take(uint64_t n);
void edge_budget_add(uint64_t n); /* taken even when they do not fit */
void edge_budget_give(uint64_t n);
uint64_t edge_buffered(void);

/* From on_connection: a connection starts (its header deadline starts) or
 * closes (a first line libmicrohttpd dropped without an answer gets 400). */
void edge_connection(struct MHD_Connection *mc, int started);

/* A request begins on mc (the deadline stops), or ends (mc waits for the
 * next one: the deadline starts again). */
void edge_request_begins(struct MHD_Connection *mc);
void edge_request_ends(struct MHD_Connection *mc);

/* From the notifier's tick: answers 408 to connections that have waited
 * longer than header_timeout for a request's headers, and closes them. */
void edge_scan(int64_t now);

/* --- access.c -------------------------------------------------------------- */

/* Opens cfg.access_log ("-": stderr; "": none). Returns 0, or -1 (logged). */
int access_open(void);

/* On SIGHUP (after logrotate renamed the file): the file's path is opened
 * again and takes the old one's place; on failure lines go on to the old. */
void access_reopen(void);

/* The request c begins (its method as the request line named it): stamps
 * the start and, with an access log, notes the client's address. */
void access_begin(struct conn *c, const char *method);

/* A response is queued for c: its status and body bytes (0 for HEAD). */
void access_sent(struct conn *c, int status, uint64_t bytes);

/* From on_completed: writes c's line (completed: libmicrohttpd sent the
 * whole response). Never the query, Authorization or a cookie. */
void access_end(const struct conn *c, int completed);

/* From on_completed, for a connection that leaves libmicrohttpd (an SSE
 * subscriber, tail.c): the fields of its line known now (CLIENT METHOD PATH
 * LIVE, malloc'd), NULL without an access log; and its line when it ends. */
char *access_fields(const struct conn *c);
void access_end_fields(const char *fields, int status, uint64_t bytes, int64_t started);

/* --- tail.c ---------------------------------------------------------------- */

/* SSE subscribers once their response head is decided. The thread of
 * tail.c holds their sockets outside libmicrohttpd (which keeps no memory
 * for them), wakes them through the waiter registry, prepares each event
 * once for all subscribers at the same place in the same stream and hands
 * it to each socket with one send. */

/* Opens the epoll set and the wake-up descriptor. Returns 0, or -1 (logged). */
int tail_open(void);

/* Starts the thread. Returns 0, or -1 (logged). */
int tail_start(void);

/* Takes over c's SSE response whose head is r (c->live moves to it, c's
 * socket is duplicated): after 0 the caller returns MHD_NO, so that
 * libmicrohttpd closes its own descriptor without a word. -1: nothing was
 * taken (out of descriptors or memory, or its address holds
 * max_connections_per_ip subscribers already). */
int tail_adopt(struct conn *c, const struct proto_response *r);

/* Ends every subscriber (their connections close) and stops the thread. */
void tail_stop(void);

/* --- background.c ---------------------------------------------------------- */

/* A commit made by the subscription deliverer (a wake event): wakes the
 * stream's readers here and, in a group, in the other processes. */
void bg_woke(void *arg, uint64_t stream_id, uint64_t txnid);

/* Opens what the notifier listens to: the notify socket (or live.group_fd)
 * and the epoll set for it and for waiting clients' hang-ups; records the
 * store's last commit as announced. Returns 0, or -1 (logged). */
int bg_open(void);

/* Starts the notifier and housekeeping threads. Returns 0, or -1 (logged). */
int bg_start(void);

/* Stops and joins the threads bg_start started. */
void bg_stop(void);

/* After the daemon has stopped: frees the conns left to the notifier, closes
 * the epoll set and the notify socket (removing its file). */
void bg_close(void);

/* Under live.reg's lock, when c starts to wait: watches its socket for a
 * hang-up, once (libmicrohttpd does not watch suspended sockets). */
void bg_watch(struct conn *c);

/* Under live.reg's lock, when c completes: when its socket is watched, takes
 * it out of the watch and hands c to the notifier, which frees it (it may
 * hold an event for it), and returns 1; else returns 0 (the caller frees c). */
int bg_bury(struct conn *c);

#endif
