/* config.c: the configuration as data: one table of keys {name, type,
 * default, limits, help} from which the defaults, the file, the
 * environment, the flags, --help and --print-config all come. */
#include "lib/config.h"
#include "lib/limits.h"
#include "lib/log.h"
#include "lib/num.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum key_type {
	T_STR,        /* char[cap] */
	T_SIZE,       /* uint64_t from "64M" and the like */
	T_INT,        /* int, decimal */
	T_U64,        /* uint64_t, decimal */
	T_SIZE_T,     /* size_t, decimal */
	T_ENUM,       /* an int: the index of the value in names */
};

/* What a string value must look like beyond fitting its array. */
enum str_rule {
	S_ANY,
	S_NONEMPTY,
	S_PREFIX,     /* starts and ends with '/' */
	S_HOSTPORT,   /* has a ':' before the port */
	S_HEADER,     /* non-empty, no CR or LF: it goes into a response header */
	S_TOKEN,      /* non-empty, letters, digits, '-' and '_' (a cookie name) */
	S_PRINTABLE,  /* printable ASCII and spaces (lists of patterns or origins) */
	S_ORIGIN,     /* empty, or http(s)://host[:port] with no path */
	S_URLPATH,    /* empty, or '/' then printable ASCII without spaces, '?', '#' or '%' */
};

struct config_key {
	const char *name;
	enum key_type type;
	size_t off, cap;        /* where in struct config; cap for strings */
	enum str_rule rule;
	const char *def_s;      /* default of a string or an enum */
	uint64_t def, min, max; /* default and bounds of a number */
	const char *help;
	const char *const *names; /* the values of an enum, in enum order */
	int paths;              /* PATH_ONE or PATH_LIST: relative to the file that sets it */
};

/* Keys whose values name files: in a configuration file, a relative path is
 * taken relative to that file's directory (so an uploaded directory works
 * wherever it lands). From the environment or a flag it stays as given. */
enum { PATH_NONE, PATH_ONE, PATH_LIST };

static const char *const durability_names[] = { "durable", "fast", NULL };
static const char *const auth_names[] = { "none", "token", NULL };
static const char *const onoff_names[] = { "off", "on", NULL };

/* max_live_reads: live reads that lmstream.fcgi serves itself (no
 * lmstream-live), each holding a thread or a CGI process meanwhile. A
 * FastCGI process keeps a thread for other requests whatever this says
 * (front/fcgi.c); this bounds the processes a CGI site gives them, below
 * the few dozen concurrent processes a shared host allows. At most 1000:
 * each one holds one of LMDB's LS_MAX_READERS reader slots. */
#define LS_DEFAULT_MAX_LIVE_READS 16
#define LS_MAX_LIVE_READS_HARD    1000

#define F(field) offsetof(struct config, field), sizeof(((struct config *)0)->field)
#define NUM(field) offsetof(struct config, field), 0

/* In the order --help and --print-config list them. */
static const struct config_key keys[] = {
	{ "data_dir", T_STR, F(data_dir), S_NONEMPTY, LS_DEFAULT_DATA_DIR, 0, 0, 0,
	  "directory of the LMDB environment, shared by every lmstream process", NULL, PATH_ONE },
	{ "map_size", T_SIZE, NUM(map_size), 0, NULL, LS_DEFAULT_MAP_SIZE, 1ULL << 20, UINT64_MAX,
	  "largest size the database may grow to (address space reserved, not disk used)", NULL, PATH_NONE },
	{ "map_reserve", T_SIZE, NUM(map_reserve), 0, NULL, LS_DEFAULT_MAP_RESERVE, 0, UINT64_MAX,
	  "part of the map kept free for deletions and reclaiming: writes that add data get 507 once less"
	  " is left (at most an eighth of map_size is kept)", NULL, PATH_NONE },
	{ "durability", T_ENUM, NUM(durability), 0, LS_DEFAULT_DURABILITY, 0, 0, 0,
	  "durable: acknowledge a write once on disk; fast: once committed", durability_names, PATH_NONE },
	{ "max_body", T_SIZE, NUM(max_body), 0, NULL, LS_DEFAULT_MAX_BODY, 1, 1ULL << 31,
	  "largest request body accepted, in bytes (413 above)", NULL, PATH_NONE },
	{ "max_path", T_SIZE_T, NUM(max_path), 0, NULL, LS_DEFAULT_MAX_PATH, 16, LS_MAX_PATH_HARD,
	  "longest stream name after the prefix, in decoded bytes", NULL, PATH_NONE },
	{ "long_poll_timeout", T_INT, NUM(long_poll_ms), 0, NULL, LS_DEFAULT_LONG_POLL_MS, 100, 3600 * 1000,
	  "how long a long-poll read waits before answering 204, in ms", NULL, PATH_NONE },
	{ "sse_lifetime", T_INT, NUM(sse_lifetime_ms), 0, NULL, LS_DEFAULT_SSE_LIFETIME_MS, 100, 24 * 3600 * 1000,
	  "how long one SSE response lasts before the client reconnects, in ms", NULL, PATH_NONE },
	{ "heartbeat", T_INT, NUM(heartbeat_ms), 0, NULL, LS_DEFAULT_HEARTBEAT_MS, 100, 3600 * 1000,
	  "interval of SSE keep-alive comments, in ms", NULL, PATH_NONE },
	{ "prefix", T_STR, F(prefix), S_PREFIX, LS_DEFAULT_PREFIX, 0, 0, 0,
	  "URL prefix under which streams are served; starts and ends with '/'", NULL, PATH_NONE },
	{ "public_url", T_STR, F(public_url), S_ORIGIN, LS_DEFAULT_PUBLIC_URL, 0, 0, 0,
	  "scheme://host[:port] clients reach the site at, for Location; empty: from the request's Host"
	  " (which a client chooses)", NULL, PATH_NONE },
	{ "listen", T_STR, F(listen), S_HOSTPORT, LS_DEFAULT_LISTEN, 0, 0, 0,
	  "where lmstream-live listens: HOST:PORT, or unix:PATH (behind a web server: only it may connect,"
	  " and only there are its identity headers trusted)", NULL, PATH_NONE },
	{ "listen_group", T_STR, F(listen_group), S_ANY, LS_DEFAULT_LISTEN_GROUP, 0, 0, 0,
	  "group of a unix: listen socket (mode 0660): the web server's; empty: the process's", NULL, PATH_NONE },
	{ "max_connections", T_INT, NUM(max_connections), 0, NULL, LS_DEFAULT_MAX_CONNECTIONS, 1, 1000000,
	  "requests lmstream-live holds at once, all processes together (503 above)", NULL, PATH_NONE },
	{ "threads", T_INT, NUM(threads), 0, NULL, LS_DEFAULT_THREADS, 1, 64,
	  "lmstream-live request threads per process (writes commit on the process's writer thread)", NULL, PATH_NONE },
	{ "worker_threads", T_INT, NUM(worker_threads), 0, NULL, LS_DEFAULT_WORKER_THREADS, 1, 256,
	  "threads of one lmstream.fcgi process that take requests (a queued write holds none)", NULL, PATH_NONE },
	{ "exit_with_parent", T_ENUM, NUM(exit_with_parent), 0, "on", 0, 0, 0,
	  "on: a FastCGI lmstream.fcgi stops when the process that started it (the web server) ends, even"
	  " killed; off: it goes on (spawn-fcgi, which exits once the workers run)", onoff_names, PATH_NONE },
	{ "max_live_reads", T_INT, NUM(max_live_reads), 0, NULL,
	  LS_DEFAULT_MAX_LIVE_READS, 0, LS_MAX_LIVE_READS_HARD,
	  "live reads (long-poll, SSE) lmstream.fcgi serves at once, all its processes on the data directory"
	  " together; a FastCGI process also keeps one of its worker_threads free of them. Above: 503 with"
	  " Retry-After. 0: none (lmstream-live serves them all)", NULL, PATH_NONE },
	{ "live_processes", T_INT, NUM(live_processes), 0, NULL, LS_DEFAULT_LIVE_PROCESSES, 1, 64,
	  "lmstream-live processes sharing the listen port", NULL, PATH_NONE },
	{ "conn_memory", T_SIZE, NUM(conn_memory), 0, NULL, LS_DEFAULT_CONN_MEMORY, 2048, 1 << 20,
	  "bytes per lmstream-live connection for headers and writes", NULL, PATH_NONE },
	{ "memory_budget", T_SIZE, NUM(memory_budget), 0, NULL, LS_DEFAULT_MEMORY_BUDGET, 1 << 20, UINT64_MAX,
	  "bytes one lmstream-live process may hold for request bodies, responses and unsent events"
	  " (503 with Retry-After above)", NULL, PATH_NONE },
	{ "header_timeout", T_INT, NUM(header_timeout_ms), 0, NULL, LS_DEFAULT_HEADER_TIMEOUT_MS, 100, 3600 * 1000,
	  "time a client has to send a request's headers, and an idle keep-alive connection"
	  " waits for the next request, in ms (lmstream-live)", NULL, PATH_NONE },
	{ "max_connections_per_ip", T_INT, NUM(max_connections_per_ip), 0, NULL,
	  LS_DEFAULT_MAX_CONNECTIONS_PER_IP, 0, 1000000,
	  "connections one client address may hold to lmstream-live on a TCP port; 0: no cap"
	  " (a unix: socket has one client, the web server)", NULL, PATH_NONE },
	{ "notify_socket", T_STR, F(notify_path), S_ANY, LS_DEFAULT_NOTIFY_SOCKET, 0, 0, 0,
	  "AF_UNIX socket of lmstream-live for commit notices; empty: DATA_DIR/live.sock", NULL, PATH_ONE },
	{ "cache_control", T_STR, F(cache_control), S_HEADER, LS_DEFAULT_CACHE_CONTROL, 0, 0, 0,
	  "Cache-Control of reads that return data", NULL, PATH_NONE },
	{ "www", T_STR, F(www), S_ANY, LS_DEFAULT_WWW, 0, 0, 0,
	  "static files lmstream-live serves outside the prefix; empty: none", NULL, PATH_ONE },
	{ "retention_age", T_U64, NUM(retention_age_s), 0, NULL, LS_DEFAULT_RETENTION_AGE, 0, 10ULL * 366 * 86400,
	  "default ?retention-age of new streams, in seconds; 0 keeps everything", NULL, PATH_NONE },
	{ "retention_bytes", T_SIZE, NUM(retention_bytes), 0, NULL, LS_DEFAULT_RETENTION_BYTES, 0, UINT64_MAX,
	  "default ?retention-bytes of new streams; 0 keeps everything", NULL, PATH_NONE },
	{ "max_forks", T_INT, NUM(max_forks), 0, NULL, LS_DEFAULT_MAX_FORKS, 1, 1000000,
	  "forks one stream may have at once (409 above); a chain of forks is at most 32 long", NULL, PATH_NONE },
	{ "snapshot_page", T_SIZE, NUM(snapshot_page), 0, NULL, LS_DEFAULT_SNAPSHOT_PAGE, 64 << 10, 256ULL << 20,
	  "bytes of one GET ?snapshot page", NULL, PATH_NONE },
	{ "auth", T_ENUM, NUM(auth), 0, LS_DEFAULT_AUTH, 0, 0, 0,
	  "none: anyone may do anything; token: rights come from signed tokens, user_* and public_*",
	  auth_names, PATH_NONE },
	{ "auth_key", T_STR, F(auth_key), S_PRINTABLE, LS_DEFAULT_AUTH_KEY, 0, 0, 0,
	  "key files that verify tokens, separated by spaces; empty: DATA_DIR/auth.key", NULL, PATH_LIST },
	{ "auth_skew", T_INT, NUM(auth_skew_s), 0, NULL, LS_DEFAULT_AUTH_SKEW_S, 0, 3600,
	  "seconds of clock difference allowed for a token's exp and nbf", NULL, PATH_NONE },
	{ "auth_cookie", T_STR, F(auth_cookie), S_TOKEN, LS_DEFAULT_AUTH_COOKIE, 0, 0, 0,
	  "name of the cookie that may carry a token", NULL, PATH_NONE },
	{ "public_read", T_STR, F(public_read), S_PRINTABLE, LS_DEFAULT_PUBLIC_READ, 0, 0, 0,
	  "streams anyone may read without a token: patterns separated by spaces (* one segment, ** any)", NULL, PATH_NONE },
	{ "public_write", T_STR, F(public_write), S_PRINTABLE, LS_DEFAULT_PUBLIC_WRITE, 0, 0, 0,
	  "streams anyone may create and append to without a token, likewise", NULL, PATH_NONE },
	{ "user_read", T_STR, F(user_read), S_PRINTABLE, LS_DEFAULT_USER_READ, 0, 0, 0,
	  "streams the user the web server authenticated (REMOTE_USER) may read: patterns where"
	  " a segment {user} stands for that user's name", NULL, PATH_NONE },
	{ "user_write", T_STR, F(user_write), S_PRINTABLE, LS_DEFAULT_USER_WRITE, 0, 0, 0,
	  "streams that user may create and append to, likewise", NULL, PATH_NONE },
	{ "user_admin", T_STR, F(user_admin), S_PRINTABLE, LS_DEFAULT_USER_ADMIN, 0, 0, 0,
	  "streams that user may delete and compact, likewise", NULL, PATH_NONE },
	{ "cors_origins", T_STR, F(cors_origins), S_PRINTABLE, LS_DEFAULT_CORS_ORIGINS, 0, 0, 0,
	  "origins whose pages may use lmstream with credentials, separated by spaces; * lets any page read without them", NULL, PATH_NONE },
	{ "metrics", T_ENUM, NUM(metrics), 0, LS_DEFAULT_METRICS, 0, 0, 0,
	  "on: every process counts requests, commits and live reads in DATA_DIR/lmstream.metrics,"
	  " shared by the node's processes; off: nothing is counted", onoff_names, PATH_NONE },
	{ "metrics_path", T_STR, F(metrics_path), S_URLPATH, LS_DEFAULT_METRICS_PATH, 0, 0, 0,
	  "URL path of the node's metrics (Prometheus text), readable from loopback or with an admin"
	  " right on **; empty: none", NULL, PATH_NONE },
	{ "access_log", T_STR, F(access_log), S_ANY, LS_DEFAULT_ACCESS_LOG, 0, 0, 0,
	  "lmstream-live's access log, one line per request: a file, - for stderr; empty: none",
	  NULL, PATH_ONE },
	{ "log_level", T_ENUM, NUM(log_level), 0, LS_DEFAULT_LOG_LEVEL, 0, 0, 0,
	  "least severity logged on stderr: error, warn, info or debug", log_level_names, PATH_NONE },
	{ "subscriptions_allow_loopback", T_ENUM, NUM(subscriptions_allow_loopback), 0, "off", 0, 0, 0,
	  "on: webhook subscriptions may call http://localhost, 127.0.0.x and [::1] (development and"
	  " tests); off: https only, and never a private, loopback or link-local address", onoff_names, PATH_NONE },
	{ "webhook_timeout_ms", T_INT, NUM(webhook_timeout_ms), 0, NULL, 10000, 100, 600000,
	  "time one webhook delivery may take, connecting included; a slower receiver counts as failed"
	  " and is retried", NULL, PATH_NONE },
	{ "webhook_concurrency", T_INT, NUM(webhook_concurrency), 0, NULL, 8, 1, 256,
	  "webhooks one process sends at once; a receiver that hangs holds one of them", NULL, PATH_NONE },
	{ "webhook_ca_file", T_STR, F(webhook_ca_file), S_ANY, "", 0, 0, 0,
	  "PEM file of the certificate authorities webhook receivers' certificates are checked against;"
	  " empty: the system's (libcurl's default)", NULL, PATH_ONE },
};
#define NKEYS (sizeof keys / sizeof keys[0])

static const struct config_key *find_key(const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (!strcmp(keys[i].name, name))
			return &keys[i];
	return NULL;
}

size_t config_nkeys(void)
{
	return NKEYS;
}

const char *config_key_name(size_t i)
{
	return i < NKEYS ? keys[i].name : NULL;
}

/* --- values ------------------------------------------------------------------ */

int config_parse_size(const char *s, uint64_t *out)
{
	size_t digits = strspn(s, "0123456789");
	uint64_t v;
	unsigned shift = 0;
	const char *end = s + digits;
	if (digits == 0)
		return -1;
	if (digits > 19 || num_decimal(s, digits, 19, &v)) {
		/* 20 digits may still fit: 18446744073709551615 */
		char *e;
		errno = 0;
		unsigned long long w = strtoull(s, &e, 10);
		if (errno || e != end)
			return -1;
		v = w;
	}
	switch (toupper((unsigned char)*end)) {
	case '\0': break;
	case 'K': shift = 10; end++; break;
	case 'M': shift = 20; end++; break;
	case 'G': shift = 30; end++; break;
	case 'T': shift = 40; end++; break;
	default: return -1;
	}
	if (*end == 'i' || *end == 'B')
		end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
	if (*end || (shift && v > (~0ULL >> shift)))
		return -1;
	*out = v << shift;
	return 0;
}

static int str_ok(const struct config_key *k, const char *v)
{
	size_t l = strlen(v);
	if (l >= k->cap)
		return 0;
	switch (k->rule) {
	case S_ANY: return 1;
	case S_NONEMPTY: return l > 0;
	case S_PREFIX: return l > 0 && v[0] == '/' && v[l - 1] == '/';
	case S_HOSTPORT: return strchr(v, ':') != NULL;
	case S_ORIGIN: {
		size_t s = !strncmp(v, "https://", 8) ? 8 : !strncmp(v, "http://", 7) ? 7 : 0;
		return l == 0 || (s && l > s &&
		                  strspn(v + s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]") == l - s);
	}
	case S_HEADER: return l > 0 && !strpbrk(v, "\r\n");
	case S_URLPATH:
		if (l && v[0] != '/')
			return 0;
		for (size_t i = 0; i < l; i++)
			if ((unsigned char)v[i] <= 0x20 || (unsigned char)v[i] > 0x7e || strchr("?#%\"\\", v[i]))
				return 0;
		return 1;
	case S_TOKEN:
		return l > 0 && strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") == l;
	case S_PRINTABLE:
		for (size_t i = 0; i < l; i++)
			if ((unsigned char)v[i] < 0x20 || (unsigned char)v[i] > 0x7e)
				return 0;
		return 1;
	}
	return 0;
}

/* Parses v for k into *n (numbers) or checks it (strings). */
static int value_ok(const struct config_key *k, const char *v, uint64_t *n)
{
	switch (k->type) {
	case T_STR:
		return str_ok(k, v);
	case T_ENUM:
		for (uint64_t i = 0; k->names[i]; i++) {
			if (!strcmp(v, k->names[i])) {
				*n = i;
				return 1;
			}
		}
		return 0;
	case T_SIZE:
		return !config_parse_size(v, n) && *n >= k->min && *n <= k->max;
	default:
		return !num_decimal(v, strlen(v), 19, n) && *n >= k->min && *n <= k->max;
	}
}

static void store_value(struct config *cfg, const struct config_key *k, const char *v, uint64_t n)
{
	char *dst = (char *)cfg + k->off;
	switch (k->type) {
	case T_STR: memcpy(dst, v, strlen(v) + 1); break;
	case T_ENUM:
	case T_INT: *(int *)(void *)dst = (int)n; break;
	case T_SIZE_T: *(size_t *)(void *)dst = (size_t)n; break;
	case T_SIZE:
	case T_U64: *(uint64_t *)(void *)dst = n; break;
	}
}

void config_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	for (size_t i = 0; i < NKEYS; i++) {
		const struct config_key *k = &keys[i];
		uint64_t n = k->def;
		if (k->type == T_STR || k->type == T_ENUM)
			value_ok(k, k->def_s, &n);
		store_value(cfg, k, k->def_s, n);
	}
}

int config_set(struct config *cfg, const char *key, const char *v, char *err, size_t errlen)
{
	const struct config_key *k = find_key(key);
	uint64_t n = 0;
	if (!k) {
		snprintf(err, errlen, "unknown setting '%s'", key);
		return -1;
	}
	if (!value_ok(k, v, &n)) {
		snprintf(err, errlen, "invalid value for %s: '%s'", key, v);
		return -1;
	}
	store_value(cfg, k, v, n);
	return 0;
}

/* The effective value of key i, as text that config_set accepts. */
static void format_value(const struct config *cfg, const struct config_key *k, char *out, size_t cap)
{
	const char *src = (const char *)cfg + k->off;
	switch (k->type) {
	case T_STR: snprintf(out, cap, "%s", src); break;
	case T_ENUM: snprintf(out, cap, "%s", k->names[*(const int *)(const void *)src]); break;
	case T_INT: snprintf(out, cap, "%d", *(const int *)(const void *)src); break;
	case T_SIZE_T: snprintf(out, cap, "%zu", *(const size_t *)(const void *)src); break;
	case T_SIZE:
	case T_U64: snprintf(out, cap, "%llu", (unsigned long long)*(const uint64_t *)(const void *)src); break;
	}
}

void config_print(FILE *f, const struct config *cfg)
{
	char v[600];
	for (size_t i = 0; i < NKEYS; i++) {
		format_value(cfg, &keys[i], v, sizeof v);
		fprintf(f, "%s = %s\n", keys[i].name, v);
	}
}

void config_help(FILE *f)
{
	struct config def;
	char v[600];
	config_defaults(&def);
	fputs("Settings (config file 'key = value', environment LMSTREAM_<KEY>, flag --key value):\n", f);
	for (size_t i = 0; i < NKEYS; i++) {
		format_value(&def, &keys[i], v, sizeof v);
		fprintf(f, "  %-18s %s (default: %s)\n", keys[i].name, keys[i].help, *v ? v : "\"\"");
	}
}

/* --- the file -------------------------------------------------------------------- */

#define LINE_MAX_BYTES 1023

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t l = strlen(s);
	while (l && isspace((unsigned char)s[l - 1]))
		s[--l] = '\0';
	return s;
}

/* v with each relative path of key k put under dir (the file's directory,
 * with its '/'), into out. Returns -1 when it does not fit. */
static int under_dir(const struct config_key *k, const char *dir, const char *v, char *out, size_t cap)
{
	size_t o = 0, dl = strlen(dir);
	for (const char *p = v; *p;) {
		size_t sp = k->paths == PATH_LIST ? strspn(p, " \t") : 0, wl;
		if (o + sp >= cap)
			return -1;
		memcpy(out + o, p, sp);
		o += sp;
		p += sp;
		wl = k->paths == PATH_LIST ? strcspn(p, " \t") : strlen(p);
		if (wl && *p != '/') {
			if (o + dl >= cap)
				return -1;
			memcpy(out + o, dir, dl);
			o += dl;
		}
		if (o + wl >= cap)
			return -1;
		memcpy(out + o, p, wl);
		o += wl;
		p += wl;
	}
	out[o] = '\0';
	return 0;
}

/* One line of a file (comment already cut); dir is the file's directory
 * ending in '/', or "" when the file was named without one. Returns 0, or
 * -1 with why. */
static int load_line(struct config *cfg, char *line, const char *dir, char *why, size_t cap)
{
	char *s = trim(line);
	if (!*s)
		return 0;
	char *eq = strchr(s, '=');
	if (!eq) {
		snprintf(why, cap, "expected 'key = value'");
		return -1;
	}
	*eq = '\0';
	const char *key = trim(s), *v = trim(eq + 1);
	const struct config_key *k = find_key(key);
	char placed[LINE_MAX_BYTES + 4096 + 1];
	if (k && k->paths && *dir && *v) {
		if (under_dir(k, dir, v, placed, sizeof placed) || strlen(placed) >= k->cap) {
			snprintf(why, cap, "%s: the path is too long once put under the file's directory", key);
			return -1;
		}
		v = placed;
	}
	return config_set(cfg, key, v, why, cap);
}

/* The reason a raw line of n bytes cannot be read, or NULL. Only a
 * comment may be longer than LINE_MAX_BYTES. */
static const char *line_problem(char *line, size_t n)
{
	if (memchr(line, '\0', n))
		return "NUL byte in line";
	if (n > LINE_MAX_BYTES && *trim(line) != '#')
		return "line too long";
	return NULL;
}

int config_load(struct config *cfg, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *line = NULL, why[256];
	size_t cap = 0;
	ssize_t n;
	int lineno = 0, rc = 0;
	char dir[4096] = "";
	const char *slash = strrchr(path, '/');

	if (slash && (size_t)(slash - path) + 2 <= sizeof dir) {
		memcpy(dir, path, (size_t)(slash - path) + 1);
		dir[slash - path + 1] = '\0';
	}
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
		const char *bad = line_problem(line, (size_t)n);
		lineno++;
		if (bad) {
			snprintf(why, sizeof why, "%s", bad);
			rc = -1;
			break;
		}
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		rc = load_line(cfg, line, dir, why, sizeof why);
	}
	if (rc)
		snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
	free(line);
	fclose(f);
	return rc;
}

/* --- the environment and the command line ----------------------------------------- */

int config_env_only(struct config *cfg, char *err, size_t errlen)
{
	char name[64], why[256];
	for (size_t i = 0; i < NKEYS; i++) {
		size_t j = (size_t)snprintf(name, sizeof name, "LMSTREAM_");
		for (const char *k = keys[i].name; *k && j + 1 < sizeof name; k++)
			name[j++] = (char)toupper((unsigned char)*k);
		name[j] = '\0';
		const char *v = getenv(name);
		if (v && *v && config_set(cfg, keys[i].name, v, why, sizeof why)) {
			snprintf(err, errlen, "%s: %s", name, why);
			return -1;
		}
	}
	return 0;
}

int config_from_env(struct config *cfg, char *err, size_t errlen)
{
	const char *file = getenv("LMSTREAM_CONFIG");
	if (file && *file && config_load(cfg, file, err, errlen))
		return -1;
	return config_env_only(cfg, err, errlen);
}

/* "--max-connections" -> "max_connections" when that is a key. */
static const struct config_key *flag_key(const char *a, char *key, size_t cap)
{
	size_t n = strlen(a + 2);
	if (n == 0 || n >= cap)
		return NULL;
	for (size_t k = 0; k <= n; k++)
		key[k] = a[2 + k] == '-' ? '_' : a[2 + k];
	return find_key(key);
}

int config_arg(struct config *cfg, int argc, char **argv, int i, char *err, size_t errlen)
{
	const char *a = argv[i];
	char key[64], why[256];

	if (strncmp(a, "--", 2) || i + 1 >= argc)
		return 0;
	const char *v = argv[i + 1];
	if (!strcmp(a, "--config"))
		return config_load(cfg, v, err, errlen) ? -1 : 2;
	if (!strcmp(a, "--set")) {
		const char *eq = strchr(v, '=');
		if (!eq || (size_t)(eq - v) >= sizeof key) {
			snprintf(err, errlen, "--set %s: expected key=value", v);
			return -1;
		}
		memcpy(key, v, (size_t)(eq - v));
		key[eq - v] = '\0';
		v = eq + 1;
	} else if (!strcmp(a, "--data")) {
		snprintf(key, sizeof key, "data_dir");
	} else if (!flag_key(a, key, sizeof key)) {
		return 0;
	}
	if (config_set(cfg, key, v, why, sizeof why)) {
		snprintf(err, errlen, "%s: %s", a, why);
		return -1;
	}
	return 2;
}

static char fallback_file[4096];

void config_fallback(const char *path)
{
	snprintf(fallback_file, sizeof fallback_file, "%s", path ? path : "");
}

/* The configuration file: the last --config FILE, else LMSTREAM_CONFIG,
 * else the program's fallback (none unless it set one). */
static const char *config_file(int argc, char **argv)
{
	const char *file = getenv("LMSTREAM_CONFIG");
	for (int i = 1; i + 1 < argc; i++)
		if (!strcmp(argv[i], "--config"))
			file = argv[i + 1];
	if (file && *file)
		return file;
	return *fallback_file ? fallback_file : NULL;
}

/* A flag that is not a setting: 0 to go on, else the exit status + 1. */
static int other_flag(const char *a, const char *program, const struct config *cfg,
                      void (*usage)(FILE *), const char *const *extra)
{
	if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
		usage(stdout);
		config_help(stdout);
		return 1;
	}
	if (!strcmp(a, "--version")) {
		printf("%s %s\n", program, PACKAGE_VERSION);
		return 1;
	}
	if (!strcmp(a, "--print-config"))
		return 0;
	for (const char *const *x = extra; x && *x; x++)
		if (!strcmp(a, *x))
			return 0;
	(void)cfg;
	usage(stderr);
	return 3;
}

int config_main(struct config *cfg, int argc, char **argv, const char *program,
                void (*usage)(FILE *), const char *const *extra)
{
	char err[512];
	const char *file = config_file(argc, argv);
	int print = 0;
	config_defaults(cfg);
	/* Precedence: flags, then the environment, then the file, then defaults. */
	if ((file && config_load(cfg, file, err, sizeof err)) || config_env_only(cfg, err, sizeof err)) {
		log_error("%s", err);
		return 2;
	}
	for (int i = 1; i < argc;) {
		if (!strcmp(argv[i], "--config") && i + 1 < argc) {
			i += 2; /* read above */
			continue;
		}
		int used = config_arg(cfg, argc, argv, i, err, sizeof err);
		if (used < 0) {
			log_error("%s", err);
			return 2;
		}
		if (used > 0) {
			i += used;
			continue;
		}
		int st = other_flag(argv[i], program, cfg, usage, extra);
		if (st)
			return st - 1;
		print |= !strcmp(argv[i], "--print-config");
		i++;
	}
	if (print) {
		config_print(stdout, cfg);
		return 0;
	}
	return -1;
}
