/* store.h: the LMDB store, the only module that knows LMDB.
 *
 * One environment per data directory, opened by every process (FastCGI and
 * CGI workers, lmstream-live). Named databases:
 *   streams   decoded stream name      -> struct stream_meta (serialised)
 *   data      be64 id, be64 seq        -> be64 end byte count, message bytes
 *   producers be64 id, [0, principal,] producer id -> epoch, last seq, last update
 *   expiry    be64 expiry ms, be64 id  -> stream name (TTL / Expires-At index)
 *   gc        be64 id                  -> (empty) data of deleted streams to reclaim
 *   sys       "next_id"                -> be64; "retain_at" -> be64 (housekeeping cursor);
 *             "format"                 -> be64 format of the store (store.c)
 *   state     be64 state id, row key   -> be64 seq of the message that set it, value bytes
 *   marks     be64 id, be64 seq        -> be64 ms: every message before seq was appended by then
 *   retain    be64 id                  -> stream name: streams with a retention bound or
 *                                         trimmed rows still to delete
 *   subs      byte-string keys         -> records of the subscriptions (core/subs.c
 *                                         encodes them; store_sub_* move bytes): a
 *                                         database older releases never open, so
 *                                         adding it changed no format
 *
 * Forks (docs/forks.md) copy nothing: a fork's metadata lists the ranges of
 * its ancestors' data it inherits, as (data id, first seq, end seq), and its
 * own messages are stored under its own id from seq base_seq on, so offsets
 * continue the source's. A stream that forks still read is only
 * soft-deleted; the last fork to go deletes it, in the same transaction.
 *
 * Values returned by a read (message bytes in store_msg_scan) point into the
 * memory map and are valid only until the transaction ends: copy them first.
 * A read transaction must never be held across a wait. */
#ifndef LS_STORE_H
#define LS_STORE_H
#include <stddef.h>
#include <stdint.h>
#include "lib/config.h"
#include "lib/limits.h"

enum store_rc {
	ST_OK = 0,
	ST_NOTFOUND = 1,
	ST_REFUSED = 2,   /* a batch job (batch.h) refused: nothing of it was written */
	ST_ERROR = -1,    /* I/O or internal error, logged */
	ST_MAPFULL = -2,  /* the map is full: 507 */
	ST_BUSY = -3,     /* out of reader slots or a transient open failure: 503 */
};

/* A range of inherited messages: seqs [from, to) of the data stored under id. */
struct store_segment {
	uint64_t id, from, to;
};

struct stream_meta {
	uint64_t id;              /* unique per creation: a re-created path gets a new id */
	uint64_t tail_seq;        /* number of messages */
	uint64_t tail_bytes;      /* number of payload bytes */
	int64_t  created_ms;
	int64_t  access_ms;       /* last read or write, for the sliding TTL */
	int64_t  expires_ms;      /* absolute expiry from Stream-Expires-At, 0 = none */
	uint64_t ttl_s;           /* Stream-TTL seconds when has_ttl */
	int      has_ttl;
	int      closed;
	int      closed_by_producer;
	uint64_t cb_epoch, cb_seq;
	size_t   cb_id_len;
	char     cb_id[LS_MAX_PRODUCER_ID + 1];
	int      has_last_seq;
	size_t   last_seq_len;
	char     last_seq[LS_MAX_STREAM_SEQ + 1];     /* last Stream-Seq accepted */
	char     content_type[LS_MAX_CONTENT_TYPE + 1]; /* as given at creation */
	int      media;           /* enum media_kind of content_type, parsed once when
	                           * the type is set; its JSON mode is recorded in
	                           * the metadata (store_meta_set_json) */
	char     expires_at[LS_MAX_EXPIRES_AT + 1];   /* Stream-Expires-At as given */
	/* Forks. */
	uint64_t fork_refs;       /* forks that read this stream's data */
	int      soft_deleted;    /* deleted while forks still read it: 410, name kept */
	int      is_fork;
	int      ttl_inherited;   /* the fork's TTL / Expires-At came from its source */
	int      expires_inherited;
	uint64_t base_seq;        /* first seq stored under id (0 unless a fork) */
	uint64_t source_id;       /* the source stream (forks only) */
	uint64_t fork_seq, fork_bytes, fork_sub; /* the Stream-Fork-Offset and sub-offset asked for */
	size_t   source_len;
	char     source[LS_MAX_PATH_HARD + 1];    /* decoded name of the source */
	int      nseg;
	struct store_segment seg[LS_MAX_FORK_DEPTH]; /* inherited ranges, in seq order */
	/* State streams (state.h): the materialised state lives under state_id,
	 * a fresh id from store_new_id (a reset moves it to another). */
	int      state;
	uint64_t state_id;
	/* Retention. Messages before first_seq are gone for readers (410); own
	 * rows before purged_seq are deleted from the data database. */
	uint64_t first_seq, first_bytes, purged_seq;
	uint64_t ret_age_s;       /* 0 = no age bound */
	uint64_t ret_bytes;       /* 0 = no size bound */
	int64_t  last_append_ms;  /* for the age bound */
	int64_t  last_mark_ms;
};

struct producer_state {
	uint64_t epoch;
	uint64_t last_seq;
	int64_t  updated_ms;
};

struct store;

/* A transaction handle. Read handles are reusable: begin/end many times on
 * one thread. Write handles live for one transaction. */
struct store_txn {
	struct store *st;
	void *txn;      /* MDB_txn *, opaque to callers */
	int write;
	int active;
	int child;      /* nested in another write transaction */
	uint64_t committed_txnid; /* set by a successful store_commit */
};

/* Opens (creating if needed) the environment in cfg->data_dir, opens every
 * database once and clears reader slots left by dead processes. Returns
 * ST_OK with *out set, or an error (logged). */
int store_open(struct store **out, const struct config *cfg);
/* store_open, leaving the reader slots of dead processes as they are
 * (lmstreamctl readers shows them). */
int store_open_keep_readers(struct store **out, const struct config *cfg);
/* The name of the network filesystem statfs(2) calls f_type, or NULL for
 * any other: store_open refuses a data directory on one. */
const char *store_network_fs(long f_type);
void store_close(struct store *st);

/* ID of the last committed write transaction of any process: a lock-free read
 * of the meta page, used to notice commits. */
uint64_t store_last_txnid(struct store *st);

/* Clears reader slots of dead processes. Returns how many were cleared. */
int store_reader_check(struct store *st);

/* Milliseconds since the epoch, and a monotonic clock. */
int64_t store_now_ms(void);
int64_t store_mono_ms(void);

/* Read transactions. store_read_begin returns ST_OK or ST_BUSY/ST_ERROR. */
void store_txn_init(struct store_txn *t, struct store *st);
int  store_read_begin(struct store_txn *t);
void store_read_end(struct store_txn *t);
void store_txn_release(struct store_txn *t); /* frees a reusable read handle */

/* Write transactions (one at a time per process; they serialise across
 * processes). store_commit makes the commit durable as configured before it
 * returns, unless nosync is set (for metadata nobody was promised). */
int  store_write_begin(struct store_txn *t, struct store *st);
int  store_commit(struct store_txn *t, int nosync);
void store_abort(struct store_txn *t);
/* Makes every commit up to txnid durable as configured (after a commit with
 * nosync set, outside the writer lock): the flush of the meta page that
 * store_commit would have done, shared with any other process's. */
int  store_sync(struct store *st, uint64_t txnid);
/* Whether store_sync(st, txnid) would still flush: a commit also makes the
 * commit before it durable, so under steady writes most need no flush. */
int  store_sync_needed(struct store *st, uint64_t txnid);

/* A transaction nested in the write transaction parent, on the parent's
 * thread: store_commit merges it into the parent (nothing is durable until
 * the parent commits), store_abort undoes it alone. Group commit runs each
 * request of a batch in one, so a refused request leaves the others. */
int  store_child_begin(struct store_txn *t, struct store_txn *parent);

/* Room for a write of about bytes more in the write transaction t: ST_OK,
 * or ST_MAPFULL when it would leave less than map_reserve of the map free
 * (writes that add data are refused then, so that deletions, which need
 * pages too, and the housekeeping that reclaims their rows still run). */
int store_room(struct store_txn *t, uint64_t bytes);
/* Bytes of the map in use in t's snapshot (free pages not counted). */
uint64_t store_used_bytes(struct store_txn *t);

/* Stream metadata, in a read or write transaction. */
int store_meta_get(struct store_txn *t, const char *name, size_t len, struct stream_meta *m);
/* Writes metadata and keeps the expiry index in step. */
int store_meta_put(struct store_txn *t, const char *name, size_t len, const struct stream_meta *m);
/* Removes the stream; its messages and producer state are reclaimed by
 * later write transactions (store_housekeep). A stream forks still read is
 * soft-deleted instead (kept, marked, out of the expiry index). Removing a
 * fork releases its source, and a soft-deleted source released by its last
 * fork is removed too, up the chain. */
int store_meta_del(struct store_txn *t, const char *name, size_t len, const struct stream_meta *m);
/* Allocates a new stream id. */
int store_new_id(struct store_txn *t, uint64_t *id);

/* Fills the fork part of *fork (segments, base_seq, source) for a fork of
 * src at seq (src->tail_seq at most) and takes a reference on src, whose
 * metadata the caller stores with store_meta_put. Returns ST_OK, or
 * ST_ERROR when the chain would exceed LS_MAX_FORK_DEPTH ranges. */
int store_fork_link(struct stream_meta *fork, struct stream_meta *src, const char *src_name,
                    size_t src_len, uint64_t seq);

/* Effective expiry of a stream in ms since the epoch, or 0 when it never
 * expires (soft-deleted streams never expire: their forks release them). */
/* Sets m's content type (truncated to fit) and its parsed media kind:
 * application/json and +json types are JSON (parse_media_kind). */
void store_meta_set_type(struct stream_meta *m, const char *content_type);
/* Fixes m's JSON mode, which its metadata records: a stream keeps the mode
 * it was created with (a fork its source's), whatever later releases make
 * of its type. json 0 leaves a +json type as text or bytes. Metadata
 * written before the mode was recorded reads as only application/json
 * being JSON, as it was then. */
void store_meta_set_json(struct stream_meta *m, int json);

int64_t store_meta_expiry(const struct stream_meta *m);

/* Messages. end_bytes is the stream's byte count after this message. */
int store_msg_put(struct store_txn *t, uint64_t id, uint64_t seq, uint64_t end_bytes,
                  const void *data, size_t len);
/* Calls fn for messages seq >= from in order until fn returns non-zero or
 * the stream ends. Returns ST_OK or an error. */
typedef int (*store_msg_fn)(void *ctx, uint64_t seq, uint64_t end_bytes, const char *data, size_t len);
int store_msg_scan(struct store_txn *t, uint64_t id, uint64_t from, store_msg_fn fn, void *ctx);
/* Byte count of the stream after message seq - 1 (0 for seq 0). */
int store_msg_end_bytes(struct store_txn *t, uint64_t id, uint64_t seq, uint64_t *bytes);

/* The same for a stream as its readers see it: inherited ranges first, then
 * its own messages, up to m->tail_seq. */
int store_stream_scan(struct store_txn *t, const struct stream_meta *m, uint64_t from,
                      store_msg_fn fn, void *ctx);
int store_stream_end_bytes(struct store_txn *t, const struct stream_meta *m, uint64_t seq,
                           uint64_t *bytes);

/* --- State streams: the materialised state, one row per (type, key) --- */

/* Sets the row rk (a row key from state.h) of state sid to value, set by
 * message seq; deletes it. Both in the append's write transaction. */
int store_state_put(struct store_txn *t, uint64_t sid, const void *rk, size_t rk_len, uint64_t seq,
                    const void *value, size_t value_len);
int store_state_del(struct store_txn *t, uint64_t sid, const void *rk, size_t rk_len);
/* Empties the state of m at once: m->state_id gets a fresh id and the old
 * rows are reclaimed by store_housekeep. The caller stores m. */
int store_state_reset(struct store_txn *t, struct stream_meta *m);
/* Calls fn for the rows of sid in row-key order, starting after the row key
 * after (after_len 0: from the first), until fn returns non-zero. Row keys
 * and values point into the map: valid until the transaction ends. */
typedef int (*store_row_fn)(void *ctx, const unsigned char *rk, size_t rk_len, uint64_t seq,
                            const char *value, size_t value_len);
int store_state_scan(struct store_txn *t, uint64_t sid, const void *after, size_t after_len,
                     store_row_fn fn, void *ctx);

/* --- Retention ---------------------------------------------------------- */

/* The first message readers may still read (and the byte count before it):
 * first_seq, or the tail when everything is older than the age bound. */
uint64_t store_first_seq(const struct stream_meta *m, int64_t now, uint64_t *bytes);
/* Before an append at now: records the time marks the age bound needs. */
int store_retain_note(struct store_txn *t, struct stream_meta *m, int64_t now);
/* Advances m->first_seq as the bounds allow, then deletes at most *budget
 * of the stream's own rows before it (none while forks read the stream).
 * The caller stores m. */
int store_retain(struct store_txn *t, struct stream_meta *m, int64_t now, int *budget);

/* Idempotent producer state, of a producer id on a stream. When writers
 * are identified (auth on), each principal (who: STORE_PRINCIPAL_LEN bytes
 * that name it, a digest of the token's sub or the web server's user) has
 * producer ids of its own, so nobody can take over another's; who NULL: the
 * shared space of anonymous writers. */
#define STORE_PRINCIPAL_LEN 16
int store_producer_get(struct store_txn *t, uint64_t id, const unsigned char *who, const char *pid,
                       size_t plen, struct producer_state *ps);
int store_producer_put(struct store_txn *t, uint64_t id, const unsigned char *who, const char *pid,
                       size_t plen, const struct producer_state *ps);

/* Sliding TTLs: a read counts as access to the stream (name, id) at at.
 * Touches are written with the next write transaction of the process
 * (store_housekeep), or by store_touch_flush: one write transaction for
 * all the touches pending, at most one per LS_TTL_TOUCH_FLUSH_MS per
 * process, and without the meta page flush (a crash may lose an access
 * time, never data). So reads of many TTL streams cost a few commits a
 * second, not one per stream. store_touch_note returns 1 when the caller
 * should call store_touch_flush(st, 0) now; a process calls it every
 * LS_TTL_TOUCH_FLUSH_MS or so too (lmstream-live's housekeeper, the
 * FastCGI main thread), and store_touch_flush(st, 1) before it exits. */
int store_touch_note(struct store *st, const char *name, size_t len, uint64_t id, int64_t at);
int store_touch_flush(struct store *st, int always);

/* Housekeeping inside a write transaction, bounded by max rows: write the
 * touches pending (store_touch_note), reclaim deleted streams and delete expired ones, forget producer state idle for
 * longer than LS_PRODUCER_TTL_MS (a few rows per call, round robin), then
 * apply the retention bounds of one stream (round robin over the retain
 * index). */
int store_housekeep(struct store_txn *t, int64_t now_ms, int max);

/* --- Subscriptions (subs.c): opaque records under byte-string keys ------ */

/* The value under key, pointing into the map (valid until t ends):
 * ST_OK, ST_NOTFOUND or an error. */
int store_sub_get(struct store_txn *t, const void *key, size_t klen, const void **val, size_t *vlen);
int store_sub_put(struct store_txn *t, const void *key, size_t klen, const void *val, size_t vlen);
/* Deletes key; ST_OK also when it was absent. */
int store_sub_del(struct store_txn *t, const void *key, size_t klen);
/* Calls fn for every key that starts with prefix, in key order, until fn
 * returns non-zero. fn may not write through t. */
typedef int (*store_sub_fn)(void *ctx, const unsigned char *key, size_t klen, const void *val,
                            size_t vlen);
int store_sub_scan(struct store_txn *t, const void *prefix, size_t plen, store_sub_fn fn, void *ctx);

/* --- Operations (admin.c, verify.c): what lmstreamctl reads and does ------ */

/* The store's incarnation: a random value written when the store is made
 * and renewed by store_renew_incarnation (lmstreamctl restore). ETags
 * carry it, so nothing cached from another copy of the store matches. */
uint64_t store_incarnation(const struct store *st);
int store_renew_incarnation(struct store *st);

/* Calls fn for every stream (soft-deleted ones too) in name order, from
 * the first name after after (after_len 0: from the first), until fn
 * returns non-zero. Returns ST_OK or an error. */
typedef int (*store_meta_fn)(void *ctx, const char *name, size_t len, const struct stream_meta *m);
int store_meta_scan(struct store_txn *t, const char *after, size_t after_len, store_meta_fn fn, void *ctx);

/* The producer state rows of stream id: key is the row's key after the id
 * (the principal, if any, and the producer id), as store_producer_put_raw
 * takes it back. */
typedef int (*store_producer_fn)(void *ctx, const unsigned char *key, size_t klen,
                                 const struct producer_state *ps);
int store_producer_scan(struct store_txn *t, uint64_t id, store_producer_fn fn, void *ctx);
int store_producer_put_raw(struct store_txn *t, uint64_t id, const unsigned char *key, size_t klen,
                           const struct producer_state *ps);

/* A consistent copy of the store, compacted (free pages left out), into
 * dir/data.mdb, flushed to disk. dir must exist and hold no data.mdb. Runs
 * beside writers: it holds one read transaction. Returns ST_OK or an error. */
int store_backup(struct store *st, const char *dir);

/* Whether a process has the store in dir open: 1, 0 (or no store), or -1
 * with errno. */
int store_in_use(const char *dir);

/* The reader slots in use: the process and thread of each, the snapshot it
 * reads (0: none now), and whether the process is gone (a stale slot). */
struct store_reader {
	long pid;
	unsigned long thread;
	uint64_t txnid;
	int stale;
};
/* Fills out with at most max slots and *n with how many there are. */
int store_readers(struct store *st, struct store_reader *out, int max, int *n);

struct store_stats {
	uint64_t map_size, page_size, used_bytes, file_bytes, last_page, free_pages;
	uint64_t last_txnid;
	unsigned max_readers, readers;
	uint64_t streams, messages_rows, producer_rows, state_rows, expiry_rows, gc_rows;
	uint64_t format, incarnation, next_id;
};
int store_stats(struct store *st, struct store_stats *s);

/* Walks everything in t's snapshot and calls report once per problem: a
 * stream's rows that do not match its metadata, fork ranges and reference
 * counts, the expiry and retain indexes, rows that belong to nothing.
 * name is the stream concerned (len 0: none). Returns the number of
 * problems, or a negative store_rc. */
typedef void (*store_report_fn)(void *ctx, const char *name, size_t len, const char *problem);
long store_verify(struct store_txn *t, store_report_fn report, void *ctx);

#endif
