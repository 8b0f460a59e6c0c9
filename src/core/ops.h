/* ops.h: what lmstreamctl asks of the core besides requests (which it
 * makes through proto_handle, with the same rules as HTTP): checking the
 * whole store, and moving a stream between stores with its offsets. */
#ifndef LS_OPS_H
#define LS_OPS_H
#include <stddef.h>
#include <stdint.h>
#include "store/store.h"

/* store_verify, then every State stream's rows against its log. Returns
 * the number of problems reported, or a negative store_rc. */
long core_verify(struct store *st, store_report_fn report, void *ctx);

/* The caller's I/O (the core does none): put takes one line of len bytes,
 * '\n' included, and returns 0 or -1; get reads the next line into *line
 * (grown with realloc as getline(3) does) and returns its length, 0 at
 * the end, -1 on an error. */
typedef int (*core_line_out)(void *ctx, const char *line, size_t len);
typedef long (*core_line_in)(void *ctx, char **line, size_t *cap);

/* Hands the stream name (len bytes) to put in the export format
 * (docs/operations.md): a header line, one line per message from the
 * earliest offset a reader may read, the State rows, an end line. A fork
 * is written whole, as a stream of its own. Returns 0, or -1 with a
 * one-line reason in err (404 when the stream does not exist: *status). */
int core_export(struct store *st, const char *name, size_t len, core_line_out put, void *put_ctx, int *status,
                char *err, size_t errlen);

/* Reads an export from get and creates the stream it describes, under name
 * (len 0: the name in the export) with the same offsets, closure, TTL or
 * expiry, producers and State rows, in one transaction. Refuses a stream
 * that exists (*status 409) and an incomplete or malformed export (400).
 * Returns 0 with the new stream's id and commit in *id and *txnid, or -1
 * with a reason in err. */
int core_import(struct store *st, core_line_in get, void *get_ctx, const char *name, size_t len, uint64_t *id,
                uint64_t *txnid, int *status, char *err, size_t errlen);

#endif
