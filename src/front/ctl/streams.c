/* streams.c: lmstreamctl ls, stat, cat, append, create, close, delete.
 * Listing reads the store; everything else is a request to the core. */
#include "front/ctl/ctl.h"
#include "lib/glob.h"
#include "lib/jsonsplit.h"
#include "lib/offset.h"

#include <cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* --- describing a stream ------------------------------------------------------ */

static int count_producer(void *ctx, const unsigned char *key, size_t klen, const struct producer_state *ps)
{
	(void)key;
	(void)klen;
	(void)ps;
	(*(uint64_t *)ctx)++;
	return 0;
}

static void add_offset(cJSON *o, const char *key, uint64_t seq, uint64_t bytes)
{
	char off[OFFSET_LEN + 1];
	offset_format(off, seq, bytes);
	cJSON_AddStringToObject(o, key, off);
}

/* What ls and stat say of a stream. */
static cJSON *describe(struct store_txn *t, const char *name, size_t len, const struct stream_meta *m, int full)
{
	cJSON *o = cJSON_CreateObject();
	char when[32];
	int64_t now = store_now_ms(), exp = store_meta_expiry(m);
	uint64_t first_bytes, first = store_first_seq(m, now, &first_bytes), producers = 0;
	if (!o)
		return NULL;
	store_producer_scan(t, m->id, count_producer, &producers);
	char *nm = strndup(name, len);
	cJSON_AddStringToObject(o, "name", nm ? nm : "");
	free(nm);
	cJSON_AddStringToObject(o, "type", m->content_type);
	cJSON_AddNumberToObject(o, "messages", (double)(m->tail_seq - first));
	cJSON_AddNumberToObject(o, "bytes", (double)(m->tail_bytes - first_bytes));
	add_offset(o, "tail", m->tail_seq, m->tail_bytes);
	if (m->has_ttl)
		cJSON_AddNumberToObject(o, "ttl_s", (double)m->ttl_s);
	if (m->expires_at[0])
		cJSON_AddStringToObject(o, "expires_at", m->expires_at);
	if (exp) {
		ctl_time(when, exp);
		cJSON_AddStringToObject(o, "expires", when);
	}
	cJSON_AddBoolToObject(o, "expired", exp && exp <= now);
	cJSON_AddBoolToObject(o, "closed", m->closed);
	cJSON_AddBoolToObject(o, "deleted", m->soft_deleted);
	cJSON_AddBoolToObject(o, "state", m->state);
	cJSON_AddNumberToObject(o, "forks", (double)m->fork_refs);
	cJSON_AddNumberToObject(o, "producers", (double)producers);
	if (m->is_fork) {
		char *src = strndup(m->source, m->source_len);
		cJSON_AddStringToObject(o, "fork_of", src ? src : "");
		free(src);
		add_offset(o, "fork_offset", m->base_seq, m->fork_bytes);
	}
	if (!full)
		return o;
	add_offset(o, "earliest", first, first_bytes);
	cJSON_AddNumberToObject(o, "id", (double)m->id);
	ctl_time(when, m->created_ms);
	cJSON_AddStringToObject(o, "created", when);
	ctl_time(when, m->access_ms);
	cJSON_AddStringToObject(o, "accessed", when);
	ctl_time(when, m->last_append_ms);
	cJSON_AddStringToObject(o, "appended", when);
	if (m->has_last_seq) {
		char *s = strndup(m->last_seq, m->last_seq_len);
		cJSON_AddStringToObject(o, "stream_seq", s ? s : "");
		free(s);
	}
	if (m->closed_by_producer) {
		char *s = strndup(m->cb_id, m->cb_id_len);
		cJSON_AddStringToObject(o, "closed_by_producer", s ? s : "");
		free(s);
	}
	if (m->ret_age_s)
		cJSON_AddNumberToObject(o, "retention_age_s", (double)m->ret_age_s);
	if (m->ret_bytes)
		cJSON_AddNumberToObject(o, "retention_bytes", (double)m->ret_bytes);
	return o;
}

/* A member as text: strings as they are, numbers as integers. */
static void value_text(const cJSON *x, char *out, size_t cap)
{
	if (cJSON_IsString(x))
		snprintf(out, cap, "%s", x->valuestring);
	else if (cJSON_IsBool(x))
		snprintf(out, cap, "%s", cJSON_IsTrue(x) ? "yes" : "no");
	else if (cJSON_IsNumber(x))
		snprintf(out, cap, "%.0f", x->valuedouble);
	else
		snprintf(out, cap, "-");
}

static int print_json(cJSON *o)
{
	char *s = cJSON_PrintUnformatted(o);
	int ok = s && printf("%s\n", s) >= 0;
	free(s);
	return ok ? 0 : -1;
}

/* --- ls ------------------------------------------------------------------------- */

struct listing {
	struct store_txn *t;
	const char *pattern;
	int json;
	uint64_t n;
};

static int list_one(void *ctx, const char *name, size_t len, const struct stream_meta *m)
{
	struct listing *l = ctx;
	if (l->pattern && !glob_match(l->pattern, strlen(l->pattern), name, len))
		return 0;
	cJSON *o = describe(l->t, name, len, m, 0);
	if (!o)
		return 1;
	l->n++;
	if (l->json) {
		print_json(o);
	} else {
		char flags[64] = "", exp[40];
		const cJSON *e = cJSON_GetObjectItem(o, "expires");
		snprintf(exp, sizeof exp, "%s", e ? e->valuestring : "-");
		static const char *const names[] = { "closed", "deleted", "expired", "state" };
		for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
			if (cJSON_IsTrue(cJSON_GetObjectItem(o, names[i])))
				snprintf(flags + strlen(flags), sizeof flags - strlen(flags), "%s%s", *flags ? "," : "", names[i]);
		if (m->is_fork)
			snprintf(flags + strlen(flags), sizeof flags - strlen(flags), "%sfork", *flags ? "," : "");
		printf("%-32s %-24s %9.0f %11.0f %s %-20s %-14s %5.0f %9.0f\n",
		       cJSON_GetObjectItem(o, "name")->valuestring, m->content_type,
		       cJSON_GetObjectItem(o, "messages")->valuedouble, cJSON_GetObjectItem(o, "bytes")->valuedouble,
		       cJSON_GetObjectItem(o, "tail")->valuestring, exp, *flags ? flags : "-",
		       cJSON_GetObjectItem(o, "forks")->valuedouble, cJSON_GetObjectItem(o, "producers")->valuedouble);
	}
	cJSON_Delete(o);
	return 0;
}

int cmd_ls(struct ctl *c, int argc, char **argv)
{
	struct store_txn t;
	struct listing l = { .t = &t };
	const struct ctl_opt opts[] = { { "--json", &l.json, NULL }, { NULL, NULL, NULL } };
	if (ctl_args("ls", argc, argv, opts, &l.pattern, NULL))
		return CTL_USAGE;
	store_txn_init(&t, c->st);
	if (store_read_begin(&t))
		return ctl_fail("cannot read the store");
	if (!l.json)
		printf("%-32s %-24s %9s %11s %-33s %-20s %-14s %5s %9s\n", "NAME", "TYPE", "MESSAGES", "BYTES", "TAIL",
		       "EXPIRES", "FLAGS", "FORKS", "PRODUCERS");
	int rc = store_meta_scan(&t, NULL, 0, list_one, &l);
	store_read_end(&t);
	store_txn_release(&t);
	if (rc)
		return ctl_fail("cannot read the store");
	return fflush(stdout) ? ctl_fail("cannot write: %s", strerror(errno)) : CTL_OK;
}

/* --- stat ----------------------------------------------------------------------- */

int cmd_stat(struct ctl *c, int argc, char **argv)
{
	int json = 0;
	const char *name = NULL;
	const struct ctl_opt opts[] = { { "--json", &json, NULL }, { NULL, NULL, NULL } };
	struct store_txn t;
	struct stream_meta m;
	char key[LS_MAX_PATH_HARD + 2];
	if (ctl_args("stat", argc, argv, opts, &name, "a stream name"))
		return CTL_USAGE;
	if (!ctl_key(name, key, sizeof key))
		return ctl_fail("stat: the name is too long");
	store_txn_init(&t, c->st);
	if (store_read_begin(&t))
		return ctl_fail("cannot read the store");
	int rc = store_meta_get(&t, key, strlen(key), &m);
	cJSON *o = rc == ST_OK ? describe(&t, key, strlen(key), &m, 1) : NULL;
	store_read_end(&t);
	store_txn_release(&t);
	if (rc == ST_NOTFOUND) {
		fprintf(stderr, "lmstreamctl: %s: 404 stream not found\n", name);
		return CTL_REFUSED;
	}
	if (!o)
		return ctl_fail("cannot read the store");
	if (json) {
		print_json(o);
	} else {
		const cJSON *x;
		cJSON_ArrayForEach(x, o) {
			char v[1024];
			value_text(x, v, sizeof v);
			printf("%-12s %s\n", x->string, v);
		}
	}
	cJSON_Delete(o);
	return fflush(stdout) ? ctl_fail("cannot write: %s", strerror(errno)) : CTL_OK;
}

/* --- cat -------------------------------------------------------------------------- */

static int print_message(void *ctx, const char *msg, size_t len)
{
	(void)ctx;
	return fwrite(msg, 1, len, stdout) != len || putchar('\n') == EOF;
}

int cmd_cat(struct ctl *c, int argc, char **argv)
{
	const char *name = NULL, *from = "-1";
	int follow = 0;
	const struct ctl_opt opts[] = { { "--from", NULL, &from }, { "--follow", &follow, NULL }, { NULL, NULL, NULL } };
	if (ctl_args("cat", argc, argv, opts, &name, "a stream name"))
		return CTL_USAGE;
	char offset[OFFSET_LEN + 1], query[OFFSET_LEN + 16];
	snprintf(offset, sizeof offset, "%s", from);
	struct proto_response resp;
	proto_response_init(&resp);
	int st = CTL_OK;
	for (;;) {
		uint64_t seen = store_last_txnid(c->st);
		snprintf(query, sizeof query, "offset=%s", offset);
		ctl_request(c, M_GET, name, query, NULL, NULL, NULL, 0, &resp);
		if (resp.status != 200) {
			st = ctl_refused(name, &resp);
			break;
		}
		const char *ct = proto_get_header(&resp, "Content-Type"), *next = proto_get_header(&resp, "Stream-Next-Offset");
		int json = ct && !strncmp(ct, "application/json", 16);
		size_t count;
		const char *why;
		if (json ? json_split(resp.body.data ? resp.body.data : "[]", resp.body.len, print_message, NULL, &count, &why) != 0
		         : fwrite(resp.body.data, 1, resp.body.len, stdout) != resp.body.len) {
			st = ctl_fail("cannot write: %s", strerror(errno));
			break;
		}
		fflush(stdout);
		if (next)
			snprintf(offset, sizeof offset, "%s", next);
		if (!proto_get_header(&resp, "Stream-Up-To-Date"))
			continue;
		if (!follow || proto_get_header(&resp, "Stream-Closed"))
			break;
		/* Caught up: wait for a commit of any process. */
		while (store_last_txnid(c->st) == seen)
			usleep(LS_POLL_INTERVAL_MS * 1000);
	}
	proto_response_free(&resp);
	return st;
}

/* --- writes ------------------------------------------------------------------------ */

/* Reads all of stdin (at most max bytes, one more to notice more). */
static char *read_stdin(size_t max, size_t *len)
{
	size_t cap = 65536, n = 0;
	char *b = malloc(cap);
	while (b) {
		if (n == cap) {
			if (cap > max) 
				break;
			char *nb = realloc(b, cap * 2);
			if (!nb) {
				free(b);
				return NULL;
			}
			b = nb;
			cap *= 2;
		}
		size_t got = fread(b + n, 1, cap - n, stdin);
		n += got;
		if (got == 0)
			break;
	}
	*len = n;
	return b;
}

/* The stream's content type, as HEAD answers it; NULL after an error. */
static char *stream_type(struct ctl *c, const char *name, int *st)
{
	struct proto_response resp;
	char *ct = NULL;
	proto_response_init(&resp);
	ctl_request(c, M_HEAD, name, NULL, NULL, NULL, NULL, 0, &resp);
	const char *h = proto_get_header(&resp, "Content-Type");
	if (resp.status != 200 || !h)
		*st = ctl_refused(name, &resp);
	else if (!(ct = strdup(h)))
		*st = ctl_fail("out of memory");
	proto_response_free(&resp);
	return ct;
}

int cmd_append(struct ctl *c, int argc, char **argv)
{
	const char *name = NULL, *type = NULL, *seq = NULL;
	int close = 0, st = CTL_OK;
	const struct ctl_opt opts[] = { { "--type", NULL, &type }, { "--stream-seq", NULL, &seq },
	                                { "--close", &close, NULL }, { NULL, NULL, NULL } };
	if (ctl_args("append", argc, argv, opts, &name, "a stream name"))
		return CTL_USAGE;
	char *ct = type ? strdup(type) : stream_type(c, name, &st);
	if (!ct)
		return st ? st : ctl_fail("out of memory");
	size_t len;
	char *body = read_stdin(c->cfg.max_body, &len);
	if (!body) {
		free(ct);
		return ctl_fail("cannot read standard input: %s", strerror(errno));
	}
	int hdr[4], n = 0;
	const char *val[4];
	hdr[n] = H_CONTENT_TYPE, val[n++] = ct;
	if (close)
		hdr[n] = H_STREAM_CLOSED, val[n++] = "true";
	if (seq)
		hdr[n] = H_STREAM_SEQ, val[n++] = seq;
	hdr[n] = H__COUNT;
	struct proto_response resp;
	proto_response_init(&resp);
	ctl_request(c, M_POST, name, NULL, hdr, val, body, len, &resp);
	const char *next = proto_get_header(&resp, "Stream-Next-Offset");
	if (resp.status >= 300)
		st = ctl_refused(name, &resp);
	else if (next)
		printf("%s\n", next);
	proto_response_free(&resp);
	free(body);
	free(ct);
	return st;
}

int cmd_create(struct ctl *c, int argc, char **argv)
{
	const char *v[7] = { 0 }, *name = NULL;
	int closed = 0, state = 0;
	const struct ctl_opt opts[] = {
		{ "--type", NULL, &v[0] }, { "--ttl", NULL, &v[1] }, { "--expires-at", NULL, &v[2] },
		{ "--retention-age", NULL, &v[3] }, { "--retention-bytes", NULL, &v[4] },
		{ "--fork-of", NULL, &v[5] }, { "--fork-offset", NULL, &v[6] },
		{ "--closed", &closed, NULL }, { "--state", &state, NULL }, { NULL, NULL, NULL },
	};
	if (ctl_args("create", argc, argv, opts, &name, "a stream name"))
		return CTL_USAGE;
	char query[128] = "", source[LS_MAX_URL];
	if (state)
		snprintf(query, sizeof query, "state");
	if (v[3])
		snprintf(query + strlen(query), sizeof query - strlen(query), "%sretention-age=%.40s", *query ? "&" : "", v[3]);
	if (v[4])
		snprintf(query + strlen(query), sizeof query - strlen(query), "%sretention-bytes=%.40s", *query ? "&" : "", v[4]);
	int hdr[8], n = 0;
	const char *val[8];
	if (v[0])
		hdr[n] = H_CONTENT_TYPE, val[n++] = v[0];
	if (v[1])
		hdr[n] = H_STREAM_TTL, val[n++] = v[1];
	if (v[2])
		hdr[n] = H_STREAM_EXPIRES_AT, val[n++] = v[2];
	if (closed)
		hdr[n] = H_STREAM_CLOSED, val[n++] = "true";
	if (v[5]) {
		if (!ctl_url_path(c, v[5], source, sizeof source))
			return ctl_fail("create: the source's name is too long");
		hdr[n] = H_FORKED_FROM, val[n++] = source;
	}
	if (v[6])
		hdr[n] = H_FORK_OFFSET, val[n++] = v[6];
	hdr[n] = H__COUNT;
	struct proto_response resp;
	proto_response_init(&resp);
	ctl_request(c, M_PUT, name, query, hdr, val, NULL, 0, &resp);
	int st = resp.status >= 300 ? ctl_refused(name, &resp) : CTL_OK;
	if (!st)
		printf("%s %s\n", resp.status == 201 ? "created" : "exists", name);
	proto_response_free(&resp);
	return st;
}

/* close and delete: a request without a body. */
static int simple(struct ctl *c, const char *cmd, int argc, char **argv, enum proto_method method)
{
	const char *name = NULL;
	if (ctl_args(cmd, argc, argv, NULL, &name, "a stream name"))
		return CTL_USAGE;
	int hdr[] = { H_STREAM_CLOSED, H__COUNT };
	const char *val[] = { "true" };
	struct proto_response resp;
	proto_response_init(&resp);
	ctl_request(c, method, name, NULL, method == M_POST ? hdr : NULL, val, NULL, 0, &resp);
	int st = resp.status >= 300 ? ctl_refused(name, &resp) : CTL_OK;
	if (!st)
		printf("%s %s\n", method == M_POST ? "closed" : "deleted", name);
	proto_response_free(&resp);
	return st;
}

int cmd_close(struct ctl *c, int argc, char **argv)
{
	return simple(c, "close", argc, argv, M_POST);
}

int cmd_delete(struct ctl *c, int argc, char **argv)
{
	return simple(c, "delete", argc, argv, M_DELETE);
}
