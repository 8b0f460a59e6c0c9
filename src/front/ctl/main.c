/* main.c: lmstreamctl's commands, the options they share, and the path
 * from a command to the protocol core. */
#include "front/ctl/ctl.h"
#include "front/notify.h"
#include "core/response.h"
#include "lib/log.h"
#include "lib/metrics.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fputs("Usage: lmstreamctl [--config FILE] [--data DIR] COMMAND [ARGUMENTS]\n"
	      "Works on the store itself (the data directory, no HTTP), beside running servers.\n"
	      "Run it as the user the servers run as (lmstream with the Debian package).\n"
	      "\n"
	      "Streams (NAME: the path after the prefix, as in a URL, e.g. chat/room-1):\n"
	      "  ls [PATTERN] [--json]      streams: type, messages, bytes, tail offset, expiry,\n"
	      "                             closed, forks, producers (PATTERN as in tokens: * **)\n"
	      "  stat NAME [--json]         one stream's metadata\n"
	      "  cat NAME [--from OFFSET] [--follow]\n"
	      "                             its messages on stdout (JSON: one a line); --follow\n"
	      "                             waits for more until the stream is closed\n"
	      "  append NAME [--type TYPE] [--close] [--stream-seq SEQ]\n"
	      "                             stdin as one append (JSON: an array appends each\n"
	      "                             element); prints the next offset\n"
	      "  create NAME [--type TYPE] [--ttl SECONDS | --expires-at TIME] [--closed] [--state]\n"
	      "              [--retention-age SECONDS] [--retention-bytes BYTES]\n"
	      "              [--fork-of SOURCE [--fork-offset OFFSET]]\n"
	      "  close NAME                 close the stream\n"
	      "  delete NAME                delete the stream\n"
	      "  export NAME                the stream with its offsets, producers, closure and TTL\n"
	      "                             on stdout, for import (on another node)\n"
	      "  import [NAME]              create the stream exported on stdin (as NAME)\n"
	      "Store:\n"
	      "  backup DEST                a consistent online copy, compacted, into the new\n"
	      "                             directory DEST, with the configuration and key files\n"
	      "  restore BACKUP [--force]   put a backup's files and store back in place (with\n"
	      "                             the servers stopped); the store gets a new incarnation\n"
	      "  verify                     check the store's consistency (exit 1 on a problem)\n"
	      "  readers [--clear]          LMDB reader slots; --clear frees those of dead processes\n"
	      "  stats                      space used and free, pages, rows, readers\n"
	      "  metrics                    the node's metrics (Prometheus text), as metrics_path\n"
	      "  deliver [--for S]          sends the subscription webhooks and wake events due now,\n"
	      "                             for at most S seconds (default 50): from cron where no\n"
	      "                             lmstream-live runs\n"
	      "  webhook-key rotate         a new webhook signing key; the old one stays published\n"
	      "                             in __ds/jwks.json for an hour\n"
	      "                             serves them\n"
	      "Tokens:\n"
	      "  token ...                  a signed token (lmstreamctl token --help)\n"
	      "\n"
	      "  --config FILE  configuration file (default: $LMSTREAM_CONFIG, else\n"
	      "                 " LS_SYSCONFDIR "/lmstream/lmstream.conf if it exists, else the built-in\n"
	      "                 defaults); LMSTREAM_<KEY> variables override it\n"
	      "  --data DIR     the data directory, overriding the configuration's data_dir\n"
	      "  --help, -h     this text\n"
	      "  --version      the version\n"
	      "Exit status: 0 done; 1 refused (the status and reason on stderr, as HTTP would\n"
	      "answer), or verify found a problem; 2 a usage or setup error.\n", f);
}

int ctl_fail(const char *fmt, ...)
{
	va_list ap;
	fputs("lmstreamctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return CTL_USAGE;
}

const char *ctl_value(int argc, char **argv, int *i)
{
	if (*i + 1 >= argc || !argv[*i + 1][0]) {
		ctl_fail("%s needs a value", argv[*i]);
		return NULL;
	}
	return argv[++*i];
}

int ctl_args(const char *cmd, int argc, char **argv, const struct ctl_opt *opts, const char **arg,
             const char *need)
{
	for (int i = 0; i < argc; i++) {
		const struct ctl_opt *o = opts;
		while (o && o->name && strcmp(o->name, argv[i]))
			o++;
		if (o && o->name && o->value) {
			if (!(*o->value = ctl_value(argc, argv, &i)))
				return CTL_USAGE;
		} else if (o && o->name) {
			*o->flag = 1;
		} else if (argv[i][0] == '-' || !arg || *arg) {
			return ctl_fail("%s: unexpected %s (see --help)", cmd, argv[i]);
		} else {
			*arg = argv[i];
		}
	}
	if (need && !*arg)
		return ctl_fail("%s: %s is needed (see --help)", cmd, need);
	return 0;
}

void ctl_time(char out[32], int64_t ms)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	if (ms <= 0 || !gmtime_r(&s, &tm) || !strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, 32, "-");
}

/* Tell lmstream-live (if it runs) which stream changed: an SSE tail sees
 * a command's append at once, as it sees an HTTP one. */
static void announce(void *arg, uint64_t stream_id, uint64_t txnid)
{
	(void)arg;
	notify_send(stream_id, txnid);
}

int ctl_open(struct ctl *c)
{
	if ((c->keep_readers ? store_open_keep_readers : store_open)(&c->st, &c->cfg) != ST_OK)
		return ctl_fail("cannot open the store in %s (see the line above)", c->cfg.data_dir);
	notify_sender_init(&c->cfg);
	/* Its writes count in the node's metrics, once a server made the file. */
	char err[700];
	if (c->cfg.metrics)
		(void)metrics_attach(c->cfg.data_dir, MF_CTL, 0, err, sizeof err);
	/* Whoever may open the data directory owns the data: every right. */
	c->cfg.auth = AUTH_NONE;
	proto_init(&c->ctx, &c->cfg, c->st);
	c->ctx.front = "ctl";
	c->ctx.on_commit = announce;
	return 0;
}

void ctl_close(struct ctl *c)
{
	if (!c->st)
		return;
	proto_fini(&c->ctx);
	metrics_detach();
	store_close(c->st);
	c->st = NULL;
}

void ctl_request(struct ctl *c, enum proto_method method, const char *name, const char *query,
                 const int *hdr, const char *const *values, const char *body, size_t body_len,
                 struct proto_response *resp)
{
	static char target[LS_MAX_URL];
	struct proto_request req = { .method = method, .body = body ? body : "", .body_len = body_len };
	struct proto_live live;
	memset(&live, 0, sizeof live);
	while (*name == '/')
		name++;
	if (!ctl_url_path(c, name, target, sizeof target)) {
		proto_response_reset(resp);
		proto_fail(resp, E_PATH_TOO_LONG);
		return;
	}
	req.target = target;
	req.target_len = strlen(target);
	req.query = query ? query : "";
	req.query_len = strlen(req.query);
	req.h[H_HOST] = "localhost";
	for (int i = 0; hdr && hdr[i] != H__COUNT; i++)
		req.h[hdr[i]] = values[i];
	req.body_too_large = body_len > c->cfg.max_body;
	proto_response_reset(resp);
	proto_handle(&c->ctx, &req, resp, &live);
	proto_live_clear(&live);
}

size_t ctl_url_path(const struct ctl *c, const char *name, char *out, size_t cap)
{
	while (*name == '/')
		name++;
	return resp_url_path(out, cap, c->cfg.prefix, name, strlen(name));
}

char *ctl_key(const char *name, char *buf, size_t cap)
{
	while (*name == '/')
		name++;
	if (snprintf(buf, cap, "%s", name) >= (int)cap)
		return NULL;
	return buf;
}

int ctl_refused(const char *name, const struct proto_response *resp)
{
	const char *body = resp->body.len ? resp->body.data : "";
	size_t n = resp->body.len;
	while (n && (body[n - 1] == '\n' || body[n - 1] == '\r'))
		n--;
	fprintf(stderr, "lmstreamctl: %s: %d %.*s\n", name, resp->status, (int)n, n ? body : resp->reason ? resp->reason : "");
	return CTL_REFUSED;
}

/* The global options (anywhere among the arguments) out of argv, into c;
 * the others stay, in order. Returns the new argc, or -1 after an error. */
static int global_options(struct ctl *c, int argc, char **argv)
{
	int n = 0;
	static const char installed[] = LS_SYSCONFDIR "/lmstream/lmstream.conf";
	c->config_file = getenv("LMSTREAM_CONFIG");
	if (c->config_file && !*c->config_file)
		c->config_file = NULL;
	if (!c->config_file && access(installed, F_OK) == 0)
		c->config_file = installed;
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--config") || !strcmp(argv[i], "--data")) {
			const char *v = ctl_value(argc, argv, &i);
			if (!v)
				return -1;
			*(argv[i - 1][2] == 'c' ? &c->config_file : &c->data_dir) = v;
			continue;
		}
		argv[n++] = argv[i];
	}
	return n;
}

int ctl_load_config(struct ctl *c)
{
	char err[600];
	config_defaults(&c->cfg);
	if (c->config_file && config_load(&c->cfg, c->config_file, err, sizeof err))
		return ctl_fail("%s", err);
	if (config_env_only(&c->cfg, err, sizeof err))
		return ctl_fail("%s", err);
	if (c->data_dir && config_set(&c->cfg, "data_dir", c->data_dir, err, sizeof err))
		return ctl_fail("--data: %s", err);
	log_init("lmstreamctl", c->cfg.log_level);
	return 0;
}

static const struct {
	const char *name;
	int (*fn)(struct ctl *c, int argc, char **argv);
	int opens;  /* the command needs the configuration and the store open
	             * (2: leaving the reader slots of dead processes) */
} commands[] = {
	{ "ls", cmd_ls, 1 },           { "stat", cmd_stat, 1 },       { "cat", cmd_cat, 1 },
	{ "append", cmd_append, 1 },   { "create", cmd_create, 1 },   { "close", cmd_close, 1 },
	{ "delete", cmd_delete, 1 },   { "export", cmd_export, 1 },   { "import", cmd_import, 1 },
	{ "backup", cmd_backup, 1 },   { "restore", cmd_restore, 0 }, { "verify", cmd_verify, 1 },
	{ "readers", cmd_readers, 2 }, { "stats", cmd_stats, 1 },     { "metrics", cmd_metrics, 1 },
	{ "deliver", cmd_deliver, 1 }, { "webhook-key", cmd_webhook_key, 1 },
};

int main(int argc, char **argv)
{
	/* Files and directories are created 0660/0770: the daemon and the web
	 * server's workers run as two users of one group and share the store.
	 * A web server's umask of 022 would make them 0640 and lock one out. */
	umask(007);
	/* Until ctl_load_config has read log_level: warnings and errors. */
	log_init("lmstreamctl", LOG_LVL_WARN);
	if (argc >= 2 && !strcmp(argv[1], "token"))
		return cmd_token(argc, argv);
	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return 0;
	}
	if (argc == 2 && !strcmp(argv[1], "--version")) {
		printf("lmstreamctl %s\n", PACKAGE_VERSION);
		return 0;
	}
	static struct ctl c; /* large: not on the stack */
	int n = global_options(&c, argc - 1, argv + 1);
	if (n < 0)
		return CTL_USAGE;
	if (n == 0)
		return ctl_fail("a command is needed (see --help)");
	char **args = argv + 1;
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		if (strcmp(args[0], commands[i].name))
			continue;
		for (int j = 1; j < n; j++)
			if (!strcmp(args[j], "--help") || !strcmp(args[j], "-h")) {
				usage(stdout);
				return 0;
			}
		c.keep_readers = commands[i].opens == 2;
		if (commands[i].opens && (ctl_load_config(&c) || ctl_open(&c)))
			return CTL_USAGE;
		int rc = commands[i].fn(&c, n - 1, args + 1);
		ctl_close(&c);
		return rc;
	}
	return ctl_fail("%s: unknown command (see --help)", args[0]);
}
