/* inspect.c: lmstreamctl verify, readers, stats, export and import. */
#include "front/ctl/ctl.h"
#include "front/notify.h"
#include "core/ops.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int64_t elapsed_ms(int64_t since)
{
	return store_mono_ms() - since;
}

static void report(void *ctx, const char *name, size_t len, const char *problem)
{
	(void)ctx;
	if (len)
		printf("%.*s: %s\n", (int)len, name, problem);
	else
		printf("store: %s\n", problem);
}

int cmd_verify(struct ctl *c, int argc, char **argv)
{
	if (ctl_args("verify", argc, argv, NULL, NULL, NULL))
		return CTL_USAGE;
	struct store_stats s;
	int64_t t0 = store_mono_ms();
	long n = core_verify(c->st, report, NULL);
	if (n < 0)
		return ctl_fail("verify: the store could not be read to the end");
	store_stats(c->st, &s);
	printf("verify: %" PRIu64 " stream(s), %" PRIu64 " message row(s), %" PRIu64 " MiB in use: %ld problem(s) (%.1f s)\n",
	       s.streams, s.messages_rows, s.used_bytes >> 20, n, (double)elapsed_ms(t0) / 1000);
	fflush(stdout);
	return n ? CTL_REFUSED : CTL_OK;
}

int cmd_readers(struct ctl *c, int argc, char **argv)
{
	int clear = 0;
	const struct ctl_opt opts[] = { { "--clear", &clear, NULL }, { NULL, NULL, NULL } };
	if (ctl_args("readers", argc, argv, opts, NULL, NULL))
		return CTL_USAGE;
	if (clear)
		printf("cleared %d stale slot(s)\n", store_reader_check(c->st));
	struct store_reader r[LS_MAX_READERS];
	int n = 0;
	if (store_readers(c->st, r, LS_MAX_READERS, &n))
		return ctl_fail("readers: cannot list the reader table");
	printf("%-10s %-16s %-12s %s\n", "PID", "THREAD", "SNAPSHOT", "STATE");
	for (int i = 0; i < n && i < LS_MAX_READERS; i++) {
		char txn[24] = "-";
		if (r[i].txnid)
			snprintf(txn, sizeof txn, "%" PRIu64, r[i].txnid);
		printf("%-10ld %-16lx %-12s %s\n", r[i].pid, r[i].thread, txn,
		       r[i].stale ? "stale (the process is gone: readers --clear)" : r[i].txnid ? "reading" : "idle");
	}
	printf("%d slot(s) in use of %d\n", n, LS_MAX_READERS);
	return CTL_OK;
}

int cmd_stats(struct ctl *c, int argc, char **argv)
{
	struct store_stats s;
	if (ctl_args("stats", argc, argv, NULL, NULL, NULL))
		return CTL_USAGE;
	if (store_stats(c->st, &s))
		return ctl_fail("stats: cannot read the store");
	uint64_t free_bytes = s.free_pages * s.page_size;
	printf("data_dir        %s\n", c->cfg.data_dir);
	printf("map_size        %" PRIu64 "\n", s.map_size);
	printf("used            %" PRIu64 " (%.1f%% of the map)\n", s.used_bytes,
	       s.map_size ? 100.0 * (double)s.used_bytes / (double)s.map_size : 0.0);
	printf("file            %" PRIu64 "\n", s.file_bytes);
	printf("page_size       %" PRIu64 "\n", s.page_size);
	printf("pages           %" PRIu64 " (up to the last page written)\n", s.last_page + 1);
	printf("free_pages      %" PRIu64 " (%" PRIu64 " bytes, reused by later writes)\n", s.free_pages, free_bytes);
	printf("streams         %" PRIu64 "\n", s.streams);
	printf("message_rows    %" PRIu64 "\n", s.messages_rows);
	printf("producer_rows   %" PRIu64 "\n", s.producer_rows);
	printf("state_rows      %" PRIu64 "\n", s.state_rows);
	printf("expiry_rows     %" PRIu64 "\n", s.expiry_rows);
	printf("reclaim_pending %" PRIu64 "\n", s.gc_rows);
	printf("readers         %u of %u\n", s.readers, s.max_readers);
	printf("last_txnid      %" PRIu64 "\n", s.last_txnid);
	printf("format          %" PRIu64 "\n", s.format);
	printf("incarnation     %016" PRIx64 "\n", s.incarnation);
	return fflush(stdout) ? ctl_fail("cannot write: %s", strerror(errno)) : CTL_OK;
}

static int put_line(void *ctx, const char *line, size_t len)
{
	return fwrite(line, 1, len, ctx) == len ? 0 : -1;
}

static long get_line(void *ctx, char **line, size_t *cap)
{
	ssize_t n = getline(line, cap, ctx);
	return n < 0 ? (ferror((FILE *)ctx) ? -1 : 0) : (long)n;
}

int cmd_export(struct ctl *c, int argc, char **argv)
{
	char err[512];
	int status;
	const char *name = NULL;
	char key[LS_MAX_PATH_HARD + 2];
	if (ctl_args("export", argc, argv, NULL, &name, "a stream name"))
		return CTL_USAGE;
	if (!ctl_key(name, key, sizeof key))
		return ctl_fail("export: the name is too long");
	if (core_export(c->st, key, strlen(key), put_line, stdout, &status, err, sizeof err) || fflush(stdout)) {
		if (status == 200)
			snprintf(err, sizeof err, "cannot write: %s", strerror(errno));
		fprintf(stderr, "lmstreamctl: %s: %d %s\n", name, status, err);
		return status < 500 ? CTL_REFUSED : CTL_USAGE;
	}
	return CTL_OK;
}

int cmd_import(struct ctl *c, int argc, char **argv)
{
	char err[512];
	int status;
	uint64_t id, txnid;
	const char *name = NULL;
	char key[LS_MAX_PATH_HARD + 2] = "";
	if (ctl_args("import", argc, argv, NULL, &name, NULL))
		return CTL_USAGE;
	if (!name)
		name = "";
	if (*name && !ctl_key(name, key, sizeof key))
		return ctl_fail("import: the name is too long");
	if (core_import(c->st, get_line, stdin, key, strlen(key), &id, &txnid, &status, err, sizeof err)) {
		fprintf(stderr, "lmstreamctl: import%s%s: %d %s\n", *name ? " " : "", name, status, err);
		return CTL_REFUSED;
	}
	notify_send(id, txnid);
	printf("imported%s%s\n", *name ? " as " : "", name);
	return CTL_OK;
}

/* What a scrape of metrics_path shows, on stdout (a cron job can leave it
 * for node_exporter's textfile collector; a shared host has no other way
 * to read it from the web if it keeps the path unrouted). */
int cmd_metrics(struct ctl *c, int argc, char **argv)
{
	static struct proto_response resp;
	struct proto_live live;
	if (ctl_args("metrics", argc, argv, NULL, NULL, NULL))
		return CTL_USAGE;
	if (!c->cfg.metrics_path[0])
		return ctl_fail("metrics: metrics_path is empty in the configuration");
	struct proto_request req = { .method = M_GET, .target = c->cfg.metrics_path,
	                             .target_len = strlen(c->cfg.metrics_path), .query = "", .loopback = 1 };
	memset(&live, 0, sizeof live);
	proto_response_init(&resp);
	proto_handle(&c->ctx, &req, &resp, &live);
	int rc = resp.status == 200 ? 0 : ctl_refused("metrics", &resp);
	if (!rc)
		fwrite(resp.body.data, 1, resp.body.len, stdout);
	proto_response_free(&resp);
	return rc;
}
