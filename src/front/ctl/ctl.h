/* ctl.h: lmstreamctl, the operator's tool. It works on the store itself
 * (the data directory, no HTTP), beside running servers: requests on
 * streams go through the protocol core like an HTTP request (the same
 * rules; a commit wakes the live readers of lmstream-live), with every
 * right, since whoever can run it on the data directory owns the data. */
#ifndef LS_CTL_H
#define LS_CTL_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "core/protocol.h"
#include "lib/config.h"
#include "store/store.h"

/* Exit statuses: 0 done; 1 the store refused (the request's 4xx/5xx, or
 * verify found problems); 2 usage or setup errors. */
enum { CTL_OK = 0, CTL_REFUSED = 1, CTL_USAGE = 2 };

struct ctl {
	struct config cfg;
	const char *config_file;  /* --config, else $LMSTREAM_CONFIG; NULL: none */
	const char *data_dir;     /* --data; NULL: the configuration's */
	struct store *st;         /* after ctl_open */
	int keep_readers;         /* ctl_open leaves stale reader slots (readers) */
	struct proto_ctx ctx;
};

/* Prints "lmstreamctl: message" on stderr. Returns CTL_USAGE. */
int ctl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The value of option argv[*i] (the next argument), advancing *i; NULL
 * with the error printed when it is missing. */
const char *ctl_value(int argc, char **argv, int *i);

/* One option of a command: a flag (*flag set to 1), or with value, one
 * that takes the next argument. A table of them ends with a NULL name. */
struct ctl_opt {
	const char *name;
	int *flag;
	const char **value;
};

/* Parses a command's arguments: the options of opts anywhere, and at
 * most one other argument, into *arg (arg NULL: none is taken). need
 * names that argument when it is required ("a stream name"), else NULL.
 * Returns 0, or CTL_USAGE after printing why. */
int ctl_args(const char *cmd, int argc, char **argv, const struct ctl_opt *opts, const char **arg,
             const char *need);

/* ms since the epoch as "2026-12-06T04:16:53Z" ("-" for 0 or less). */
void ctl_time(char out[32], int64_t ms);

/* Reads the configuration: c->config_file, LMSTREAM_<KEY> variables, then
 * --data. Returns 0 or CTL_USAGE (printed). */
int ctl_load_config(struct ctl *c);

/* Opens the store of c->cfg and binds the protocol context (auth off,
 * commits announced to lmstream-live). Returns 0 or CTL_USAGE (printed). */
int ctl_open(struct ctl *c);
void ctl_close(struct ctl *c);

/* A request on the stream name (as clients write it after the prefix),
 * with query (NULL: none), headers (pairs of enum proto_hdr and value,
 * ended by H__COUNT) and body. resp must be initialised. */
void ctl_request(struct ctl *c, enum proto_method method, const char *name, const char *query,
                 const int *hdr, const char *const *values, const char *body, size_t body_len,
                 struct proto_response *resp);

/* The path of the stream name's URL (the prefix, then the name
 * percent-encoded as Location writes it) in out. Returns its length, or 0
 * when it does not fit. */
size_t ctl_url_path(const struct ctl *c, const char *name, char *out, size_t cap);

/* The store's key of a stream name: the path after the prefix, without a
 * leading '/' ("/chat/a" is stored as "chat/a"). Returns buf or NULL when
 * the name is too long. */
char *ctl_key(const char *name, char *buf, size_t cap);

/* For a response of 400 or more: "lmstreamctl: NAME: STATUS reason" on
 * stderr, and CTL_REFUSED. */
int ctl_refused(const char *name, const struct proto_response *resp);

/* The commands, each given the arguments after its name. */
/* lmstreamctl token ... (argv[1] is "token"): its own options, --config included. */
int cmd_token(int argc, char **argv);
int cmd_ls(struct ctl *c, int argc, char **argv);
int cmd_stat(struct ctl *c, int argc, char **argv);
int cmd_cat(struct ctl *c, int argc, char **argv);
int cmd_append(struct ctl *c, int argc, char **argv);
int cmd_create(struct ctl *c, int argc, char **argv);
int cmd_close(struct ctl *c, int argc, char **argv);
int cmd_delete(struct ctl *c, int argc, char **argv);
int cmd_export(struct ctl *c, int argc, char **argv);
int cmd_import(struct ctl *c, int argc, char **argv);
int cmd_backup(struct ctl *c, int argc, char **argv);
int cmd_restore(struct ctl *c, int argc, char **argv);
int cmd_verify(struct ctl *c, int argc, char **argv);
int cmd_readers(struct ctl *c, int argc, char **argv);
int cmd_stats(struct ctl *c, int argc, char **argv);
int cmd_metrics(struct ctl *c, int argc, char **argv);
int cmd_deliver(struct ctl *c, int argc, char **argv);
int cmd_webhook_key(struct ctl *c, int argc, char **argv);

#endif
