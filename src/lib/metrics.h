/* metrics.h: the node's counters, shared by every lmstream process of a
 * data directory through one memory-mapped file, DATA_DIR/lmstream.metrics.
 *
 * A FastCGI worker, a CGI run, lmstream-live and lmstreamctl each take a
 * slot of the file when they start (metrics_attach) and add to their own
 * slot with relaxed atomic additions: no lock, no system call, no LMDB
 * transaction per count. A scrape (metrics_sum) adds every slot up, so
 * whichever process answers it, it shows the whole node.
 *
 * Counters only grow: a slot left by a process that exited or was killed
 * keeps its counts, and the next process to start takes it over and goes
 * on from there. Gauges (live connections, waiting reads) belong to a
 * living process: those of a slot whose process is gone are not added up,
 * and are cleared when the slot is taken over. A process that finds every
 * slot taken by a living one counts in the shared slot 0, counters only.
 *
 * Without metrics_attach (metrics = off, or no file) nothing is counted:
 * each call below returns at once. */
#ifndef LS_METRICS_H
#define LS_METRICS_H
#include <stddef.h>
#include <stdint.h>

enum metric_counter {
	MC_APPENDED_MESSAGES,    /* messages appended (POST, and PUT with a body) */
	MC_APPENDED_BYTES,       /* their bytes */
	MC_COMMITS,              /* write transactions committed */
	MC_FLUSHES,              /* flushes of the data file (group commit: one for many commits) */
	MC_READS_CATCHUP,        /* GET requests by mode */
	MC_READS_LONGPOLL,
	MC_READS_SSE,
	MC_READS_SNAPSHOT,
	MC_WAKEUPS,              /* live reads woken by a commit */
	MC_DELIVERED_MESSAGES,   /* messages sent on live reads (SSE, long-poll) */
	MC_DELIVERED_BYTES,
	MC__COUNT
};

enum metric_gauge {
	MG_LIVE_LONGPOLL,        /* live responses open, by mode */
	MG_LIVE_SSE,
	MG_WAITING,              /* live reads waiting for a commit now */
	MG__COUNT
};

enum metric_hist {
	MH_BATCH,                /* writes per commit (group commit) */
	MH_COMMIT,               /* seconds of a commit (LMDB's writer lock held) */
	MH_FLUSH,                /* seconds of a flush (fsync) */
	MH__COUNT
};

/* Buckets of a histogram: upper bounds, in its unit (writes, or
 * microseconds for the two in seconds), the last one +Inf. */
#define METRICS_BUCKETS 16
extern const uint64_t metrics_bounds[MH__COUNT][METRICS_BUCKETS];
extern const int metrics_nbounds[MH__COUNT]; /* finite bounds of each */

/* Responses are counted by an index the caller chooses (the core: one per
 * error of its table, then one per success status), below this. */
#define METRICS_RESPONSES 160

/* Which program a slot belongs to (the "front" label). */
enum metric_front { MF_NONE, MF_FCGI, MF_CGI, MF_LIVE, MF_CTL, MF__COUNT };
extern const char *const metrics_front_names[MF__COUNT];

/* Maps DATA_DIR/lmstream.metrics (creating it when create is set, mode
 * 0660 like the store's files) and takes a slot for this process. Returns 0,
 * or -1 with a one-line reason in err (nothing is counted then). Call once,
 * before the threads start; again after fork() in the child. */
int metrics_attach(const char *data_dir, enum metric_front front, int create, char *err, size_t errlen);
/* Gives the slot back (its gauges cleared, its counts kept) and unmaps. */
void metrics_detach(void);
/* Whether this process counts. */
int metrics_on(void);

void metrics_add(enum metric_counter c, uint64_t n);
void metrics_gauge(enum metric_gauge g, int64_t delta);
/* v: writes for MH_BATCH, microseconds for the others. */
void metrics_observe(enum metric_hist h, uint64_t v);
void metrics_response(unsigned idx);

/* Microseconds of the monotonic clock, for timing what metrics_observe takes. */
uint64_t metrics_now_us(void);

/* The node's sums: every slot's counters, histograms and responses; the
 * gauges of slots whose process is alive; and how many living processes of
 * each front there are. */
struct metrics_sum {
	uint64_t c[MC__COUNT];
	int64_t g[MG__COUNT];
	uint64_t hist[MH__COUNT][METRICS_BUCKETS]; /* per bucket, not cumulative */
	uint64_t hsum[MH__COUNT];
	uint64_t resp[METRICS_RESPONSES];
	int processes[MF__COUNT];
	uint64_t created_s;      /* when the file was made (seconds since the epoch) */
};
/* Returns 0, or -1 when this process does not count. */
int metrics_sum(struct metrics_sum *out);

#endif
