/* test_config.c: unit tests of src/lib/config.c (sizes, settings, file, environment). */
/* By path: a plain "config.h" would find autoconf's config.h in the build
 * directory first (-I. comes before -I$(top_srcdir)/src). */
#include "lib/config.h"
#include "lib/limits.h"
#include "unit.h"

#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

/* --- config_parse_size ----------------------------------------------------- */

static const struct {
	int line;
	const char *s;
	int rc;
	uint64_t want;
} size_rows[] = {
	{ __LINE__, "0", 0, 0 },
	{ __LINE__, "512", 0, 512 },
	{ __LINE__, "1K", 0, 1024 },
	{ __LINE__, "1k", 0, 1024 },
	{ __LINE__, "64M", 0, 64ULL << 20 },
	{ __LINE__, "64m", 0, 64ULL << 20 },
	{ __LINE__, "8G", 0, 8ULL << 30 },
	{ __LINE__, "2T", 0, 2ULL << 40 },
	{ __LINE__, "1KiB", 0, 1024 },
	{ __LINE__, "1KB", 0, 1024 },
	{ __LINE__, "16MiB", 0, 16ULL << 20 },
	{ __LINE__, "18446744073709551615", 0, UINT64_MAX },
	{ __LINE__, "17179869183G", 0, 17179869183ULL << 30 },
	{ __LINE__, "", -1, 0 },
	{ __LINE__, "M", -1, 0 },
	{ __LINE__, "-1", -1, 0 },
	{ __LINE__, "+1", -1, 0 },
	{ __LINE__, " 1", -1, 0 },
	{ __LINE__, "1 ", -1, 0 },
	{ __LINE__, "1 M", -1, 0 },
	{ __LINE__, "1.5G", -1, 0 },
	{ __LINE__, "1X", -1, 0 },
	{ __LINE__, "1P", -1, 0 },
	{ __LINE__, "1GG", -1, 0 },
	{ __LINE__, "1Gx", -1, 0 },
	{ __LINE__, "1MiBx", -1, 0 },
	{ __LINE__, "0x10", -1, 0 },
	{ __LINE__, "abc", -1, 0 },
	{ __LINE__, "18446744073709551616", -1, 0 },
	{ __LINE__, "99999999999999999999999", -1, 0 },
	{ __LINE__, "17179869184G", -1, 0 },     /* 2^64 */
	{ __LINE__, "16777216T", -1, 0 },
};

static void test_parse_size(void)
{
	for (size_t i = 0; i < NELEM(size_rows); i++) {
		uint64_t v = 4242;
		int rc = config_parse_size(size_rows[i].s, &v);
		CHECK_INT_AT(size_rows[i].line, rc, size_rows[i].rc);
		if (rc == 0 && size_rows[i].rc == 0)
			CHECK_UINT_AT(size_rows[i].line, v, size_rows[i].want);
	}
}

/* --- config_set ----------------------------------------------------------------- */

enum kind { K_U64, K_SIZE, K_INT, K_DUR, K_STR, K_NONE };

#define F(field) offsetof(struct config, field)

/* Values at and past the length limits, filled in by fill_long_values(). */
static char dir511[512], dir512[513], pfx127[128], pfx128[129];

static void fill_long_values(void)
{
	memset(dir511, 'a', 511);
	dir511[0] = '/';
	memset(dir512, 'a', 512);
	dir512[0] = '/';
	memset(pfx127, 'p', 127);
	pfx127[0] = pfx127[126] = '/';
	memset(pfx128, 'p', 128);
	pfx128[0] = pfx128[127] = '/';
}

#define DEFAULT_CC "public, max-age=60, stale-while-revalidate=300"
#define DEFAULT_LIVE_READS 16   /* max_live_reads */

struct set_row {
	int line;
	const char *key;
	const char *value;
	int rc;
	enum kind kind;
	size_t off;
	int64_t want;        /* numbers and durability */
	const char *want_s;  /* strings; NULL: the value itself */
};

static const struct set_row set_rows[] = {
	{ __LINE__, "data_dir", "/tmp/x", 0, K_STR, F(data_dir), 0, NULL },
	{ __LINE__, "data_dir", dir511, 0, K_STR, F(data_dir), 0, NULL },
	{ __LINE__, "data_dir", dir512, -1, K_STR, F(data_dir), 0, LS_DEFAULT_DATA_DIR },
	{ __LINE__, "data_dir", "", -1, K_STR, F(data_dir), 0, LS_DEFAULT_DATA_DIR },

	{ __LINE__, "map_size", "1M", 0, K_U64, F(map_size), 1 << 20, NULL },
	{ __LINE__, "map_size", "64G", 0, K_U64, F(map_size), 64LL << 30, NULL },
	{ __LINE__, "map_size", "1048576", 0, K_U64, F(map_size), 1 << 20, NULL },
	{ __LINE__, "map_size", "1048575", -1, K_U64, F(map_size), (int64_t)LS_DEFAULT_MAP_SIZE, NULL },
	{ __LINE__, "map_size", "0", -1, K_U64, F(map_size), (int64_t)LS_DEFAULT_MAP_SIZE, NULL },
	{ __LINE__, "map_size", "lots", -1, K_U64, F(map_size), (int64_t)LS_DEFAULT_MAP_SIZE, NULL },

	{ __LINE__, "durability", "durable", 0, K_DUR, F(durability), DURABILITY_DURABLE, NULL },
	{ __LINE__, "durability", "fast", 0, K_DUR, F(durability), DURABILITY_FAST, NULL },
	{ __LINE__, "durability", "Fast", -1, K_DUR, F(durability), DURABILITY_DURABLE, NULL },
	{ __LINE__, "durability", "", -1, K_DUR, F(durability), DURABILITY_DURABLE, NULL },
	{ __LINE__, "durability", "none", -1, K_DUR, F(durability), DURABILITY_DURABLE, NULL },

	{ __LINE__, "max_body", "1", 0, K_U64, F(max_body), 1, NULL },
	{ __LINE__, "max_body", "64M", 0, K_U64, F(max_body), 64 << 20, NULL },
	{ __LINE__, "max_body", "2G", 0, K_U64, F(max_body), 1LL << 31, NULL },
	{ __LINE__, "max_body", "2049M", -1, K_U64, F(max_body), (int64_t)LS_DEFAULT_MAX_BODY, NULL },
	{ __LINE__, "max_body", "0", -1, K_U64, F(max_body), (int64_t)LS_DEFAULT_MAX_BODY, NULL },
	{ __LINE__, "max_body", "-1", -1, K_U64, F(max_body), (int64_t)LS_DEFAULT_MAX_BODY, NULL },

	{ __LINE__, "max_path", "16", 0, K_SIZE, F(max_path), 16, NULL },
	{ __LINE__, "max_path", "480", 0, K_SIZE, F(max_path), LS_MAX_PATH_HARD, NULL },
	{ __LINE__, "max_path", "15", -1, K_SIZE, F(max_path), LS_DEFAULT_MAX_PATH, NULL },
	{ __LINE__, "max_path", "481", -1, K_SIZE, F(max_path), LS_DEFAULT_MAX_PATH, NULL },
	{ __LINE__, "max_path", "abc", -1, K_SIZE, F(max_path), LS_DEFAULT_MAX_PATH, NULL },
	{ __LINE__, "max_path", "", -1, K_SIZE, F(max_path), LS_DEFAULT_MAX_PATH, NULL },
	{ __LINE__, "max_path", "100x", -1, K_SIZE, F(max_path), LS_DEFAULT_MAX_PATH, NULL },
	{ __LINE__, "max_path", "99999999999999999999", -1, K_SIZE, F(max_path), LS_DEFAULT_MAX_PATH, NULL },

	{ __LINE__, "long_poll_timeout", "100", 0, K_INT, F(long_poll_ms), 100, NULL },
	{ __LINE__, "long_poll_timeout", "3600000", 0, K_INT, F(long_poll_ms), 3600000, NULL },
	{ __LINE__, "long_poll_timeout", "99", -1, K_INT, F(long_poll_ms), LS_DEFAULT_LONG_POLL_MS, NULL },
	{ __LINE__, "long_poll_timeout", "3600001", -1, K_INT, F(long_poll_ms), LS_DEFAULT_LONG_POLL_MS, NULL },
	{ __LINE__, "long_poll_timeout", "20s", -1, K_INT, F(long_poll_ms), LS_DEFAULT_LONG_POLL_MS, NULL },

	{ __LINE__, "sse_lifetime", "100", 0, K_INT, F(sse_lifetime_ms), 100, NULL },
	{ __LINE__, "sse_lifetime", "86400000", 0, K_INT, F(sse_lifetime_ms), 86400000, NULL },
	{ __LINE__, "sse_lifetime", "86400001", -1, K_INT, F(sse_lifetime_ms), LS_DEFAULT_SSE_LIFETIME_MS, NULL },
	{ __LINE__, "sse_lifetime", "0", -1, K_INT, F(sse_lifetime_ms), LS_DEFAULT_SSE_LIFETIME_MS, NULL },

	{ __LINE__, "heartbeat", "100", 0, K_INT, F(heartbeat_ms), 100, NULL },
	{ __LINE__, "heartbeat", "3600000", 0, K_INT, F(heartbeat_ms), 3600000, NULL },
	{ __LINE__, "heartbeat", "3600001", -1, K_INT, F(heartbeat_ms), 15000, NULL },
	{ __LINE__, "heartbeat", "-5", -1, K_INT, F(heartbeat_ms), 15000, NULL },

	{ __LINE__, "prefix", "/v1/stream/", 0, K_STR, F(prefix), 0, NULL },
	{ __LINE__, "prefix", "/", 0, K_STR, F(prefix), 0, NULL },
	{ __LINE__, "prefix", "/streams/", 0, K_STR, F(prefix), 0, NULL },
	{ __LINE__, "prefix", "v1/", -1, K_STR, F(prefix), 0, LS_DEFAULT_PREFIX },
	{ __LINE__, "prefix", "/v1", -1, K_STR, F(prefix), 0, LS_DEFAULT_PREFIX },
	{ __LINE__, "prefix", "", -1, K_STR, F(prefix), 0, LS_DEFAULT_PREFIX },
	{ __LINE__, "prefix", pfx127, 0, K_STR, F(prefix), 0, NULL },
	{ __LINE__, "prefix", pfx128, -1, K_STR, F(prefix), 0, LS_DEFAULT_PREFIX },

	{ __LINE__, "listen", "127.0.0.1:8081", 0, K_STR, F(listen), 0, NULL },
	{ __LINE__, "listen", "[::1]:80", 0, K_STR, F(listen), 0, NULL },
	{ __LINE__, "listen", ":9000", 0, K_STR, F(listen), 0, NULL },
	{ __LINE__, "listen", "localhost", -1, K_STR, F(listen), 0, LS_DEFAULT_LISTEN },
	{ __LINE__, "listen", "", -1, K_STR, F(listen), 0, LS_DEFAULT_LISTEN },

	{ __LINE__, "max_connections", "1", 0, K_INT, F(max_connections), 1, NULL },
	{ __LINE__, "max_connections", "1000000", 0, K_INT, F(max_connections), 1000000, NULL },
	{ __LINE__, "max_connections", "0", -1, K_INT, F(max_connections), 10000, NULL },
	{ __LINE__, "max_connections", "1000001", -1, K_INT, F(max_connections), 10000, NULL },

	{ __LINE__, "threads", "1", 0, K_INT, F(threads), 1, NULL },
	{ __LINE__, "threads", "64", 0, K_INT, F(threads), 64, NULL },
	{ __LINE__, "threads", "0", -1, K_INT, F(threads), 2, NULL },
	{ __LINE__, "threads", "65", -1, K_INT, F(threads), 2, NULL },
	{ __LINE__, "threads", "two", -1, K_INT, F(threads), 2, NULL },

	/* 0: the workers serve no live read; at most 1000 (LMDB reader slots) */
	{ __LINE__, "max_live_reads", "0", 0, K_INT, F(max_live_reads), 0, NULL },
	{ __LINE__, "max_live_reads", "1", 0, K_INT, F(max_live_reads), 1, NULL },
	{ __LINE__, "max_live_reads", "1000", 0, K_INT, F(max_live_reads), 1000, NULL },
	{ __LINE__, "max_live_reads", "1001", -1, K_INT, F(max_live_reads), DEFAULT_LIVE_READS, NULL },
	{ __LINE__, "max_live_reads", "-1", -1, K_INT, F(max_live_reads), DEFAULT_LIVE_READS, NULL },
	{ __LINE__, "max_live_reads", "4k", -1, K_INT, F(max_live_reads), DEFAULT_LIVE_READS, NULL },
	{ __LINE__, "max_live_reads", "", -1, K_INT, F(max_live_reads), DEFAULT_LIVE_READS, NULL },
	{ __LINE__, "max_live_reads", " 2", -1, K_INT, F(max_live_reads), DEFAULT_LIVE_READS, NULL },

	{ __LINE__, "live_processes", "1", 0, K_INT, F(live_processes), 1, NULL },
	{ __LINE__, "live_processes", "64", 0, K_INT, F(live_processes), 64, NULL },
	{ __LINE__, "live_processes", "0", -1, K_INT, F(live_processes), 1, NULL },
	{ __LINE__, "live_processes", "65", -1, K_INT, F(live_processes), 1, NULL },

	{ __LINE__, "retention_age", "0", 0, K_U64, F(retention_age_s), 0, NULL },
	{ __LINE__, "retention_age", "86400", 0, K_U64, F(retention_age_s), 86400, NULL },
	{ __LINE__, "retention_age", "316224000", 0, K_U64, F(retention_age_s), 316224000, NULL },
	{ __LINE__, "retention_age", "316224001", -1, K_U64, F(retention_age_s), 0, NULL },
	{ __LINE__, "retention_age", "1d", -1, K_U64, F(retention_age_s), 0, NULL },
	{ __LINE__, "retention_age", "-1", -1, K_U64, F(retention_age_s), 0, NULL },

	{ __LINE__, "snapshot_page", "64K", 0, K_U64, F(snapshot_page), 64 << 10, NULL },
	{ __LINE__, "snapshot_page", "256M", 0, K_U64, F(snapshot_page), 256 << 20, NULL },
	{ __LINE__, "snapshot_page", "63K", -1, K_U64, F(snapshot_page), (int64_t)LS_DEFAULT_SNAPSHOT_PAGE, NULL },
	{ __LINE__, "snapshot_page", "257M", -1, K_U64, F(snapshot_page), (int64_t)LS_DEFAULT_SNAPSHOT_PAGE, NULL },

	{ __LINE__, "retention_bytes", "0", 0, K_U64, F(retention_bytes), 0, NULL },
	{ __LINE__, "retention_bytes", "100M", 0, K_U64, F(retention_bytes), 100 << 20, NULL },
	{ __LINE__, "retention_bytes", "lots", -1, K_U64, F(retention_bytes), 0, NULL },

	{ __LINE__, "notify_socket", "/run/lmstream/live.sock", 0, K_STR, F(notify_path), 0, NULL },
	{ __LINE__, "notify_socket", "", 0, K_STR, F(notify_path), 0, NULL },
	{ __LINE__, "notify_socket", dir511, 0, K_STR, F(notify_path), 0, NULL },
	{ __LINE__, "notify_socket", dir512, -1, K_STR, F(notify_path), 0, "" },

	{ __LINE__, "cache_control", "no-store", 0, K_STR, F(cache_control), 0, NULL },
	{ __LINE__, "cache_control", "public, max-age=5", 0, K_STR, F(cache_control), 0, NULL },
	{ __LINE__, "cache_control", "", -1, K_STR, F(cache_control), 0, DEFAULT_CC },
	{ __LINE__, "cache_control", "a\r\nSet-Cookie: x=1", -1, K_STR, F(cache_control), 0, DEFAULT_CC },
	{ __LINE__, "cache_control", "a\nb", -1, K_STR, F(cache_control), 0, DEFAULT_CC },
	{ __LINE__, "cache_control", dir511, -1, K_STR, F(cache_control), 0, DEFAULT_CC },

	{ __LINE__, "no_such_key", "1", -1, K_NONE, 0, 0, NULL },
	{ __LINE__, "", "1", -1, K_NONE, 0, 0, NULL },
	{ __LINE__, "Threads", "4", -1, K_NONE, 0, 0, NULL },
	{ __LINE__, "data_dir ", "/x", -1, K_NONE, 0, 0, NULL },
};

static void test_set(void)
{
	for (size_t i = 0; i < NELEM(set_rows); i++) {
		const struct set_row *r = &set_rows[i];
		struct config cfg, def;
		char err[256] = "";
		const char *v = r->value;

		config_defaults(&cfg);
		config_defaults(&def);
		int rc = config_set(&cfg, r->key, v, err, sizeof err);
		CHECK_INT_AT(r->line, rc, r->rc);
		if (rc)
			CHECK_AT(r->line, err[0] != '\0' && (r->kind == K_NONE || strstr(err, r->key)));
		const char *base = (const char *)&cfg;
		switch (r->kind) {
		case K_U64: CHECK_UINT_AT(r->line, *(const uint64_t *)(base + r->off), (uint64_t)r->want); break;
		case K_SIZE: CHECK_UINT_AT(r->line, *(const size_t *)(base + r->off), (size_t)r->want); break;
		case K_INT: CHECK_INT_AT(r->line, *(const int *)(base + r->off), r->want); break;
		case K_DUR: CHECK_INT_AT(r->line, *(const enum durability *)(base + r->off), r->want); break;
		case K_STR: CHECK_STR_AT(r->line, base + r->off, r->want_s ? r->want_s : v); break;
		case K_NONE: CHECK_AT(r->line, !memcmp(&cfg, &def, sizeof cfg)); break;
		}
	}
}

static void test_defaults(void)
{
	struct config cfg;
	memset(&cfg, 0x5a, sizeof cfg);
	config_defaults(&cfg);
	CHECK_STR(cfg.data_dir, LS_DEFAULT_DATA_DIR);
	CHECK_UINT(cfg.map_size, LS_DEFAULT_MAP_SIZE);
	CHECK_INT(cfg.durability, DURABILITY_DURABLE);
	CHECK_UINT(cfg.max_body, LS_DEFAULT_MAX_BODY);
	CHECK_UINT(cfg.max_path, LS_DEFAULT_MAX_PATH);
	CHECK_INT(cfg.long_poll_ms, LS_DEFAULT_LONG_POLL_MS);
	CHECK_INT(cfg.sse_lifetime_ms, LS_DEFAULT_SSE_LIFETIME_MS);
	CHECK_STR(cfg.prefix, LS_DEFAULT_PREFIX);
	CHECK_STR(cfg.listen, LS_DEFAULT_LISTEN);
	CHECK_STR(cfg.notify_path, "");
	CHECK_STR(cfg.cache_control, DEFAULT_CC);
	CHECK_INT(cfg.max_live_reads, DEFAULT_LIVE_READS);
}

/* --- config_load ------------------------------------------------------------------ */

static char tmpdir[64];

static const char *write_file(const char *name, const char *text)
{
	static char path[4][128];
	static int w;
	char *p = path[w++ & 3];
	snprintf(p, sizeof path[0], "%s/%s", tmpdir, name);
	FILE *f = fopen(p, "w");
	if (!f) {
		perror(p);
		abort();
	}
	fputs(text, f);
	fclose(f);
	return p;
}

static void test_load(void)
{
	struct config cfg;
	char err[512];

	const char *good = write_file("good.conf",
		"# lmstream test configuration\n"
		"\n"
		"   \n"
		"data_dir = /tmp/lmstream-test   # where the data lives\n"
		"map_size=64M\n"
		"durability = fast\n"
		"\tthreads\t=\t4\t\n"
		"prefix = /s/\n"
		"long_poll_timeout = 1500\r\n"
		"notify_socket =\n"
		"  # indented comment\n"
		"max_body = 1M");   /* no final newline */
	config_defaults(&cfg);
	err[0] = '\0';
	CHECK_INT(config_load(&cfg, good, err, sizeof err), 0);
	CHECK_STR(err, "");
	CHECK_STR(cfg.data_dir, "/tmp/lmstream-test");
	CHECK_UINT(cfg.map_size, 64ULL << 20);
	CHECK_INT(cfg.durability, DURABILITY_FAST);
	CHECK_INT(cfg.threads, 4);
	CHECK_STR(cfg.prefix, "/s/");
	CHECK_INT(cfg.long_poll_ms, 1500);
	CHECK_STR(cfg.notify_path, "");
	CHECK_UINT(cfg.max_body, 1ULL << 20);
	CHECK_UINT(cfg.max_path, LS_DEFAULT_MAX_PATH);   /* untouched */

	const char *empty = write_file("empty.conf", "");
	config_defaults(&cfg);
	CHECK_INT(config_load(&cfg, empty, err, sizeof err), 0);

	/* Errors name the file and the line. */
	static const struct {
		int line;
		const char *name, *text;
		const char *why;
		int errline;
	} bad[] = {
		{ __LINE__, "noeq.conf", "threads = 2\nnonsense\n", "expected 'key = value'", 2 },
		{ __LINE__, "unknown.conf", "# c\n\nbogus = 1\n", "unknown setting 'bogus'", 3 },
		{ __LINE__, "badval.conf", "threads = 2\nthreads = 0\n", "invalid value for threads: '0'", 2 },
		{ __LINE__, "nokey.conf", "= 5\n", "unknown setting ''", 1 },
		{ __LINE__, "colon.conf", "threads: 4\n", "expected 'key = value'", 1 },
		{ __LINE__, "late.conf", "a_very_long_comment = 1 # x\n", "unknown setting 'a_very_long_comment'", 1 },
	};
	for (size_t i = 0; i < NELEM(bad); i++) {
		const char *p = write_file(bad[i].name, bad[i].text);
		char want[512];
		snprintf(want, sizeof want, "%s:%d: %s", p, bad[i].errline, bad[i].why);
		config_defaults(&cfg);
		err[0] = '\0';
		CHECK_INT_AT(bad[i].line, config_load(&cfg, p, err, sizeof err), -1);
		CHECK_STR_AT(bad[i].line, err, want);
	}

	/* A missing file names the file. */
	char missing[128];
	snprintf(missing, sizeof missing, "%s/does-not-exist.conf", tmpdir);
	err[0] = '\0';
	CHECK_INT(config_load(&cfg, missing, err, sizeof err), -1);
	CHECK(strstr(err, missing) != NULL);

	/* A comment line longer than the line buffer is still one comment line. */
	char *text = malloc(5000);
	size_t n = (size_t)snprintf(text, 5000, "# ");
	memset(text + n, 'x', 3000);
	n += 3000;
	snprintf(text + n, 5000 - n, "\nthreads = 3\n");
	const char *longc = write_file("longcomment.conf", text);
	config_defaults(&cfg);
	err[0] = '\0';
	CHECK_INT(config_load(&cfg, longc, err, sizeof err), 0);
	CHECK_STR(err, "");
	CHECK_INT(cfg.threads, 3);

	/* ...so a setting at its end stays commented out. */
	n = (size_t)snprintf(text, 5000, "# ");
	memset(text + n, 'x', 1021);
	n += 1021;
	snprintf(text + n, 5000 - n, "threads = 64\n");
	const char *hidden = write_file("hidden.conf", text);
	config_defaults(&cfg);
	config_load(&cfg, hidden, err, sizeof err);
	CHECK_INT(cfg.threads, 2);
	free(text);

	/* A NUL byte is refused where it is, and never hides the next line. */
	char nul_path[128];
	snprintf(nul_path, sizeof nul_path, "%s/nul.conf", tmpdir);
	FILE *f = fopen(nul_path, "w");
	fwrite("# note\0x\nthreads = bad\n", 1, 24, f);
	fclose(f);
	config_defaults(&cfg);
	err[0] = '\0';
	CHECK_INT(config_load(&cfg, nul_path, err, sizeof err), -1);
	CHECK(strstr(err, ":1: NUL byte in line") != NULL);
}

static void clear_env(void)
{
	static const char *vars[] = {
		"LMSTREAM_CONFIG", "LMSTREAM_DATA_DIR", "LMSTREAM_MAP_SIZE", "LMSTREAM_DURABILITY",
		"LMSTREAM_MAX_BODY", "LMSTREAM_MAX_PATH", "LMSTREAM_LONG_POLL_TIMEOUT",
		"LMSTREAM_SSE_LIFETIME", "LMSTREAM_HEARTBEAT", "LMSTREAM_PREFIX", "LMSTREAM_LISTEN",
		"LMSTREAM_MAX_CONNECTIONS", "LMSTREAM_THREADS", "LMSTREAM_NOTIFY_SOCKET",
		"LMSTREAM_CACHE_CONTROL", "LMSTREAM_MAX_LIVE_READS",
	};
	for (size_t i = 0; i < NELEM(vars); i++)
		unsetenv(vars[i]);
}

/* --- --print-config and the key table ------------------------------------------------ */

/* One "key = value" line per key of the table, in its order; loading the
 * output again gives the same configuration. */
static void test_print(void)
{
	struct config cfg, back;
	char err[512], *text = NULL;
	size_t len = 0;
	config_defaults(&cfg);
	CHECK_INT(config_set(&cfg, "durability", "fast", err, sizeof err), 0);
	CHECK_INT(config_set(&cfg, "max_body", "1K", err, sizeof err), 0);
	CHECK_INT(config_set(&cfg, "www", "", err, sizeof err), 0);
	CHECK_INT(config_set(&cfg, "max_live_reads", "0", err, sizeof err), 0);
	FILE *f = open_memstream(&text, &len);
	config_print(f, &cfg);
	fclose(f);
	size_t n = 0;
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"), n++) {
		const char *key = config_key_name(n);
		CHECK(key != NULL);
		if (!key)
			break;
		CHECK(!strncmp(line, key, strlen(key)) && !strncmp(line + strlen(key), " = ", 3));
	}
	CHECK_UINT(n, config_nkeys());
	CHECK(config_nkeys() >= 21);
	free(text);
	/* The round trip, through a file. */
	text = NULL;
	f = open_memstream(&text, &len);
	config_print(f, &cfg);
	fclose(f);
	const char *p = write_file("printed.conf", text);
	free(text);
	config_defaults(&back);
	err[0] = '\0';
	CHECK_INT(config_load(&back, p, err, sizeof err), 0);
	CHECK_STR(err, "");
	CHECK(!memcmp(&cfg, &back, sizeof cfg));
	CHECK_UINT(back.max_body, 1024);
	CHECK_INT(back.durability, DURABILITY_FAST);
	CHECK_INT(back.max_live_reads, 0);   /* a real value, not "unset" */
}

static void usage_none(FILE *f)
{
	(void)f;
}

/* Paths in a file are relative to the file's directory (lmstream.cgi's
 * folder may be uploaded anywhere); other strings, and absolute paths, are
 * kept as written; from the environment a path stays as given. */
static void test_relative_paths(void)
{
	struct config cfg;
	char err[512], want[256];
	const char *file = write_file("rel.conf",
		"data_dir = data\n"
		"auth_key = auth.key  /etc/lmstream/rsa.pub keys/es.pub\n"
		"www = ../www\n"
		"notify_socket = /run/live.sock\n"
		"prefix = /a/\n"
		"cache_control = public, max-age=60\n");
	config_defaults(&cfg);
	CHECK_INT(config_load(&cfg, file, err, sizeof err), 0);
	snprintf(want, sizeof want, "%s/data", tmpdir);
	CHECK_STR(cfg.data_dir, want);
	snprintf(want, sizeof want, "%s/auth.key  /etc/lmstream/rsa.pub %s/keys/es.pub", tmpdir, tmpdir);
	CHECK_STR(cfg.auth_key, want);
	snprintf(want, sizeof want, "%s/../www", tmpdir);
	CHECK_STR(cfg.www, want);
	CHECK_STR(cfg.notify_path, "/run/live.sock");
	CHECK_STR(cfg.prefix, "/a/");
	CHECK_STR(cfg.cache_control, "public, max-age=60");

	/* A path that no longer fits once placed is refused with the line. */
	char line[sizeof cfg.data_dir + 32];
	memset(line, 'd', sizeof line);
	memcpy(line, "data_dir = ", 11);
	snprintf(line + sizeof cfg.data_dir - 4, 5, "\n");
	config_defaults(&cfg);
	CHECK_INT(config_load(&cfg, write_file("long.conf", line), err, sizeof err), -1);
	CHECK(strstr(err, "long.conf:1: data_dir: the path is too long") != NULL);

	clear_env();
	setenv("LMSTREAM_DATA_DIR", "rel/data", 1);
	config_defaults(&cfg);
	CHECK_INT(config_env_only(&cfg, err, sizeof err), 0);
	CHECK_STR(cfg.data_dir, "rel/data");
	clear_env();
}

/* config_fallback: read when neither --config nor LMSTREAM_CONFIG names a
 * file (lmstream.cgi's private/lmstream.conf); a missing one is an error. */
static void test_fallback(void)
{
	struct config cfg;
	char *argv1[] = { "prog", NULL };
	const char *file = write_file("fallback.conf", "threads = 7\n");
	const char *other = write_file("other.conf", "threads = 9\n");
	char *argv2[] = { "prog", "--config", (char *)other, NULL };

	clear_env();
	config_fallback(file);
	CHECK_INT(config_main(&cfg, 1, argv1, "prog", usage_none, NULL), -1);
	CHECK_INT(cfg.threads, 7);
	CHECK_INT(config_main(&cfg, 3, argv2, "prog", usage_none, NULL), -1);
	CHECK_INT(cfg.threads, 9);
	setenv("LMSTREAM_CONFIG", other, 1);
	CHECK_INT(config_main(&cfg, 1, argv1, "prog", usage_none, NULL), -1);
	CHECK_INT(cfg.threads, 9);
	clear_env();
	char missing[128];
	snprintf(missing, sizeof missing, "%s/private/lmstream.conf", tmpdir);
	config_fallback(missing);
	CHECK_INT(config_main(&cfg, 1, argv1, "prog", usage_none, NULL), 2);
	config_fallback(NULL);
	CHECK_INT(config_main(&cfg, 1, argv1, "prog", usage_none, NULL), -1);
	CHECK_INT(cfg.threads, LS_DEFAULT_THREADS);
}

/* config_main: flags, then LMSTREAM_<KEY>, then the file, then defaults,
 * whichever way the file is named. */
static void test_precedence(void)
{
	struct config cfg;
	const char *file = write_file("prec.conf", "max_body = 64M\nthreads = 5\nheartbeat = 1000\n");
	char *argv1[] = { "prog", "--config", (char *)file, "--heartbeat", "2000", NULL };
	char *argv2[] = { "prog", "--heartbeat", "2000", NULL };

	clear_env();
	setenv("LMSTREAM_MAX_BODY", "1K", 1);
	setenv("LMSTREAM_HEARTBEAT", "3000", 1);
	CHECK_INT(config_main(&cfg, 5, argv1, "prog", usage_none, NULL), -1);
	CHECK_UINT(cfg.max_body, 1024);     /* the environment over the file */
	CHECK_INT(cfg.threads, 5);          /* the file over the default */
	CHECK_INT(cfg.heartbeat_ms, 2000);  /* the flag over the environment */
	CHECK_UINT(cfg.map_size, LS_DEFAULT_MAP_SIZE);

	setenv("LMSTREAM_CONFIG", file, 1);
	CHECK_INT(config_main(&cfg, 3, argv2, "prog", usage_none, NULL), -1);
	CHECK_UINT(cfg.max_body, 1024);
	CHECK_INT(cfg.threads, 5);
	CHECK_INT(cfg.heartbeat_ms, 2000);
	clear_env();
}

/* --- config_from_env ------------------------------------------------------------------ */

static void test_env(void)
{
	struct config cfg, def;
	char err[512];

	clear_env();
	config_defaults(&cfg);
	config_defaults(&def);
	CHECK_INT(config_from_env(&cfg, err, sizeof err), 0);
	CHECK(!memcmp(&cfg, &def, sizeof cfg));

	setenv("LMSTREAM_DATA_DIR", "/tmp/from-env", 1);
	CHECK_INT(config_from_env(&cfg, err, sizeof err), 0);
	CHECK_STR(cfg.data_dir, "/tmp/from-env");

	/* Every key has its variable. */
	setenv("LMSTREAM_MAP_SIZE", "2G", 1);
	setenv("LMSTREAM_DURABILITY", "fast", 1);
	setenv("LMSTREAM_MAX_BODY", "1K", 1);
	setenv("LMSTREAM_MAX_PATH", "100", 1);
	setenv("LMSTREAM_LONG_POLL_TIMEOUT", "5000", 1);
	setenv("LMSTREAM_SSE_LIFETIME", "7000", 1);
	setenv("LMSTREAM_HEARTBEAT", "900", 1);
	setenv("LMSTREAM_PREFIX", "/p/", 1);
	setenv("LMSTREAM_LISTEN", "0.0.0.0:1", 1);
	setenv("LMSTREAM_MAX_CONNECTIONS", "7", 1);
	setenv("LMSTREAM_THREADS", "3", 1);
	setenv("LMSTREAM_NOTIFY_SOCKET", "/tmp/n.sock", 1);
	setenv("LMSTREAM_CACHE_CONTROL", "no-store", 1);
	setenv("LMSTREAM_MAX_LIVE_READS", "3", 1);
	config_defaults(&cfg);
	CHECK_INT(config_from_env(&cfg, err, sizeof err), 0);
	CHECK_UINT(cfg.map_size, 2ULL << 30);
	CHECK_INT(cfg.durability, DURABILITY_FAST);
	CHECK_UINT(cfg.max_body, 1024);
	CHECK_UINT(cfg.max_path, 100);
	CHECK_INT(cfg.long_poll_ms, 5000);
	CHECK_INT(cfg.sse_lifetime_ms, 7000);
	CHECK_INT(cfg.heartbeat_ms, 900);
	CHECK_STR(cfg.prefix, "/p/");
	CHECK_STR(cfg.listen, "0.0.0.0:1");
	CHECK_INT(cfg.max_connections, 7);
	CHECK_INT(cfg.threads, 3);
	CHECK_STR(cfg.notify_path, "/tmp/n.sock");
	CHECK_STR(cfg.cache_control, "no-store");
	CHECK_INT(cfg.max_live_reads, 3);

	/* An empty variable is ignored; a bad one names the variable. */
	clear_env();
	setenv("LMSTREAM_THREADS", "", 1);
	config_defaults(&cfg);
	CHECK_INT(config_from_env(&cfg, err, sizeof err), 0);
	CHECK_INT(cfg.threads, 2);
	setenv("LMSTREAM_THREADS", "0", 1);
	err[0] = '\0';
	CHECK_INT(config_from_env(&cfg, err, sizeof err), -1);
	CHECK(strstr(err, "LMSTREAM_THREADS") != NULL);

	/* LMSTREAM_CONFIG is read first; variables override it. */
	clear_env();
	const char *file = write_file("env.conf", "data_dir = /from/file\nthreads = 5\n");
	setenv("LMSTREAM_CONFIG", file, 1);
	setenv("LMSTREAM_DATA_DIR", "/from/env", 1);
	config_defaults(&cfg);
	CHECK_INT(config_from_env(&cfg, err, sizeof err), 0);
	CHECK_STR(cfg.data_dir, "/from/env");
	CHECK_INT(cfg.threads, 5);

	/* A broken file is reported with its line. */
	const char *broken = write_file("broken.conf", "threads = 5\nthreads = many\n");
	setenv("LMSTREAM_CONFIG", broken, 1);
	err[0] = '\0';
	CHECK_INT(config_from_env(&cfg, err, sizeof err), -1);
	char want[256];
	snprintf(want, sizeof want, "%s:2:", broken);
	CHECK(!strncmp(err, want, strlen(want)));

	setenv("LMSTREAM_CONFIG", "/nonexistent/lmstream.conf", 1);
	CHECK_INT(config_from_env(&cfg, err, sizeof err), -1);
	clear_env();
}

/* Command-line options shared by both binaries. */
static void test_args(void)
{
	static const struct {
		int line;
		const char *argv[3];
		int used;          /* what config_arg returns */
	} rows[] = {
		{ __LINE__, { "prog", "--data", "/tmp/x" }, 2 },
		{ __LINE__, { "prog", "--max-connections", "500" }, 2 },
		{ __LINE__, { "prog", "--set", "heartbeat=3000" }, 2 },
		{ __LINE__, { "prog", "--long-poll-timeout", "1500" }, 2 },
		{ __LINE__, { "prog", "--max-live-reads", "4" }, 2 },
		{ __LINE__, { "prog", "--max-live-reads", "1001" }, -1 },
		{ __LINE__, { "prog", "--help", "x" }, 0 },       /* the binary's own */
		{ __LINE__, { "prog", "--standalone", "x" }, 0 },
		{ __LINE__, { "prog", "-h", "x" }, 0 },
		{ __LINE__, { "prog", "--threads", "x" }, -1 },   /* known key, bad value */
		{ __LINE__, { "prog", "--set", "novalue" }, -1 },
		{ __LINE__, { "prog", "--set", "bogus=1" }, -1 },
		{ __LINE__, { "prog", "--config", "/nonexistent/lmstream.conf" }, -1 },
	};
	for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
		struct config cfg;
		char err[512] = "";
		config_defaults(&cfg);
		int got = config_arg(&cfg, 3, (char **)rows[r].argv, 1, err, sizeof err);
		CHECK_INT_AT(rows[r].line, got, rows[r].used);
		CHECK_AT(rows[r].line, got >= 0 || err[0]);
	}
	struct config cfg;
	char err[512];
	const char *argv[] = { "prog", "--max-connections", "500", "--data", "/tmp/y", "--set", "heartbeat=3000" };
	config_defaults(&cfg);
	for (int i = 1; i < 7;) {
		int used = config_arg(&cfg, 7, (char **)argv, i, err, sizeof err);
		CHECK_INT(used, 2);
		if (used <= 0)
			break;
		i += used;
	}
	CHECK_INT(cfg.max_connections, 500);
	CHECK_STR(cfg.data_dir, "/tmp/y");
	CHECK_INT(cfg.heartbeat_ms, 3000);
	/* An option without its value is left to the caller. */
	const char *lone[] = { "prog", "--data" };
	CHECK_INT(config_arg(&cfg, 2, (char **)lone, 1, err, sizeof err), 0);
}

int main(void)
{
	if (unit_tmpdir(tmpdir, sizeof tmpdir, "config"))
		return 99;
	fill_long_values();
	test_parse_size();
	test_defaults();
	test_set();
	test_load();
	test_env();
	test_args();
	test_print();
	test_precedence();
	test_relative_paths();
	test_fallback();
	unit_rm_rf(tmpdir);
	return unit_done();
}
