/* fuzz_config.c: fuzz harness for the configuration loader (config_load and
 * config_parse_size in src/lib/config.c).
 *
 * The input is the configuration file: it is written to an unlinked temporary
 * file that config_load opens by its /proc/self/fd path, after
 * config_defaults.
 *
 * Properties:
 *  - config_load returns 0 or -1; on -1, err is NUL-terminated within its
 *    size, non-empty, and reads "<path>:<line>: <reason>" with a line number
 *    that exists in the input; a smaller err buffer gets a truncated,
 *    NUL-terminated prefix of the same message;
 *  - whatever the outcome, every string of the config is NUL-terminated within
 *    its array and every setting is within the range config_set enforces (a
 *    refused line changes nothing, so this holds after a failure too);
 *  - loading the same file twice gives the same result;
 *  - the configuration config_print writes, loaded again over the defaults,
 *    is accepted and gives the same configuration (success or not);
 *  - config_parse_size agrees with a reference implementation on every
 *    line's value (digits, one optional K/M/G/T, an optional "i", "B" or
 *    "iB"; refused on overflow).
 */
#include "lib/config.h"
#include "lib/limits.h"
#include "fuzz.h"

#include <ctype.h>
#include <fcntl.h>
#include <unistd.h>

/* A file config_load can open by name: created once and unlinked at once
 * (nothing is left behind, even after a crash), rewritten per run, opened
 * through /proc/self/fd. */
struct pathfile {
	int fd;
	char path[64];
};
static struct pathfile input = { -1, "" }, printed = { -1, "" };

static void write_file(struct pathfile *t, const void *data, size_t size)
{
	if (t->fd < 0) {
		const char *tmp = getenv("TMPDIR");
		char tmpl[512];
		snprintf(tmpl, sizeof tmpl, "%s/lmstream-fuzz-config-XXXXXX", tmp && *tmp ? tmp : "/tmp");
		t->fd = mkstemp(tmpl);
		FUZZ_ASSERT(t->fd >= 0);
		unlink(tmpl);
		snprintf(t->path, sizeof t->path, "/proc/self/fd/%d", t->fd);
	}
	FUZZ_ASSERT(ftruncate(t->fd, 0) == 0);
	size_t done = 0;
	while (done < size) {
		ssize_t w = pwrite(t->fd, (const char *)data + done, size - done, (off_t)done);
		FUZZ_ASSERT(w > 0);
		done += (size_t)w;
	}
}

/* The same settings (strings compared as strings: a shorter value leaves
 * the tail of an earlier one behind its NUL). */
static int same_config(const struct config *a, const struct config *b)
{
	return !strcmp(a->data_dir, b->data_dir) && a->map_size == b->map_size &&
	       a->durability == b->durability && a->max_body == b->max_body &&
	       a->max_path == b->max_path && a->long_poll_ms == b->long_poll_ms &&
	       a->sse_lifetime_ms == b->sse_lifetime_ms && a->heartbeat_ms == b->heartbeat_ms &&
	       !strcmp(a->prefix, b->prefix) && !strcmp(a->listen, b->listen) &&
	       a->max_connections == b->max_connections && a->threads == b->threads &&
	       a->worker_threads == b->worker_threads && a->live_processes == b->live_processes &&
	       a->conn_memory == b->conn_memory && !strcmp(a->notify_path, b->notify_path) &&
	       !strcmp(a->cache_control, b->cache_control) && !strcmp(a->www, b->www) &&
	       a->retention_age_s == b->retention_age_s && a->retention_bytes == b->retention_bytes &&
	       a->snapshot_page == b->snapshot_page;
}

/* config_print's output, loaded over the defaults, is the same config. */
static void check_print(const struct config *c)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	FUZZ_ASSERT(f != NULL);
	config_print(f, c);
	FUZZ_ASSERT(fclose(f) == 0);
	write_file(&printed, text, len);

	struct config back;
	char err[512] = "";
	config_defaults(&back);
	int rc = config_load(&back, printed.path, err, sizeof err);
	if (rc != 0 || !same_config(&back, c)) {
		fprintf(stderr, "config_print wrote:\n%s\nloading it: %d %s\n", text, rc, err);
		FUZZ_ASSERT(rc == 0);
		FUZZ_ASSERT(same_config(&back, c));
	}
	free(text);
}

static int terminated(const char *s, size_t cap)
{
	return memchr(s, '\0', cap) != NULL;
}

/* Every field is one config_set could have produced (or the default). */
static void check_config(const struct config *c)
{
	FUZZ_ASSERT(terminated(c->data_dir, sizeof c->data_dir) && c->data_dir[0]);
	FUZZ_ASSERT(terminated(c->prefix, sizeof c->prefix));
	size_t pl = strlen(c->prefix);
	FUZZ_ASSERT(pl >= 1 && c->prefix[0] == '/' && c->prefix[pl - 1] == '/');
	FUZZ_ASSERT(terminated(c->listen, sizeof c->listen) && strchr(c->listen, ':'));
	FUZZ_ASSERT(terminated(c->notify_path, sizeof c->notify_path));
	FUZZ_ASSERT(terminated(c->cache_control, sizeof c->cache_control));
	FUZZ_ASSERT(c->cache_control[0] && !strpbrk(c->cache_control, "\r\n"));
	FUZZ_ASSERT(terminated(c->www, sizeof c->www));
	FUZZ_ASSERT(c->map_size >= (1ULL << 20));
	FUZZ_ASSERT(c->durability == DURABILITY_DURABLE || c->durability == DURABILITY_FAST);
	FUZZ_ASSERT(c->max_body >= 1 && c->max_body <= (1ULL << 31));
	FUZZ_ASSERT(c->max_path >= 16 && c->max_path <= LS_MAX_PATH_HARD);
	FUZZ_ASSERT(c->long_poll_ms >= 100 && c->long_poll_ms <= 3600 * 1000);
	FUZZ_ASSERT(c->sse_lifetime_ms >= 100 && c->sse_lifetime_ms <= 24 * 3600 * 1000);
	FUZZ_ASSERT(c->heartbeat_ms >= 100 && c->heartbeat_ms <= 3600 * 1000);
	FUZZ_ASSERT(c->max_connections >= 1 && c->max_connections <= 1000000);
	FUZZ_ASSERT(c->threads >= 1 && c->threads <= 64);
	FUZZ_ASSERT(c->worker_threads >= 1 && c->worker_threads <= 256);
	FUZZ_ASSERT(c->live_processes >= 1 && c->live_processes <= 64);
	FUZZ_ASSERT(c->conn_memory >= 2048 && c->conn_memory <= (1 << 20));
	FUZZ_ASSERT(c->retention_age_s <= 10ULL * 366 * 86400);
	FUZZ_ASSERT(c->snapshot_page >= (64 << 10) && c->snapshot_page <= (256ULL << 20));
}

/* Lines config_load can count: each '\n' ends one, a last unterminated line
 * is one more, and a line that starts with a NUL and is longer than the
 * loader's 1023-byte buffer is read in pieces (each counted). */
static size_t max_lines(const uint8_t *data, size_t size)
{
	size_t n = 1;
	for (size_t i = 0; i < size; i++)
		n += data[i] == '\n';
	return n + size / 1023;
}

static void check_error(const char *err, size_t cap, const uint8_t *data, size_t size)
{
	FUZZ_ASSERT(terminated(err, cap));
	FUZZ_ASSERT(err[0] != '\0');
	size_t pl = strlen(input.path);
	FUZZ_ASSERT(!strncmp(err, input.path, pl) && err[pl] == ':');
	const char *p = err + pl + 1;
	char *end;
	unsigned long line = strtoul(p, &end, 10);
	FUZZ_ASSERT(end > p && isdigit((unsigned char)*p));
	FUZZ_ASSERT(line >= 1 && line <= max_lines(data, size));
	FUZZ_ASSERT(end[0] == ':' && end[1] == ' ' && end[2] != '\0');
}

/* config_parse_size, independently: digits (no sign, no space), then one
 * optional K, M, G or T (either case), then an optional "iB", "i" or "B";
 * refused when the number or the scaled value does not fit 64 bits. */
static int ref_parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	size_t i = 0;
	if (!isdigit((unsigned char)s[0]))
		return -1;
	for (; isdigit((unsigned char)s[i]); i++) {
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	unsigned shift = 0;
	const char *u = strchr("KMGT", toupper((unsigned char)s[i]));
	if (s[i] && u) {
		shift = 10 * (unsigned)(u - "KMGT" + 1);
		i++;
	} else if (s[i]) {
		return -1;
	}
	if (s[i] == 'i' && s[i + 1] == 'B')
		i += 2;
	else if (s[i] == 'i' || s[i] == 'B')
		i++;
	if (s[i])
		return -1;
	if (shift && v > (UINT64_MAX >> shift))
		return -1;
	*out = v << shift;
	return 0;
}

static void check_size(const char *s)
{
	uint64_t got = 0x1234, want = 0x5678;
	int rc = config_parse_size(s, &got);
	int ref = ref_parse_size(s, &want);
	if (rc != ref)
		fprintf(stderr, "config_parse_size(\"%s\") = %d, reference %d\n", s, rc, ref);
	FUZZ_ASSERT(rc == ref);
	if (rc == 0)
		FUZZ_ASSERT(got == want);
	else
		FUZZ_ASSERT(got == 0x1234);    /* untouched on failure */
}

/* Each line's value (after the first '=', trimmed; or the whole line) and the
 * whole input, as NUL-terminated strings. */
static void check_sizes(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	FUZZ_ASSERT(s != NULL);
	if (size)
		memcpy(s, data, size);
	s[size] = '\0';
	check_size(s);
	for (char *line = s; line && line < s + size;) {
		char *nl = memchr(line, '\n', (size_t)(s + size - line));
		if (nl)
			*nl = '\0';
		char *v = strchr(line, '=');
		v = v ? v + 1 : line;
		while (isspace((unsigned char)*v))
			v++;
		size_t l = strlen(v);
		while (l && isspace((unsigned char)v[l - 1]))
			v[--l] = '\0';
		check_size(v);
		line = nl ? nl + 1 : NULL;
	}
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t caps[] = { 512, 40, 2, 1 };
	struct config first, again;
	char first_err[512];

	write_file(&input, data, size);
	for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
		struct config *c = k == 0 ? &first : &again;
		char *err = malloc(caps[k]);     /* exact size: ASan sees an overrun */
		FUZZ_ASSERT(err != NULL);
		memset(err, 'E', caps[k]);
		config_defaults(c);
		int rc = config_load(c, input.path, err, caps[k]);
		FUZZ_ASSERT(rc == 0 || rc == -1);
		check_config(c);
		if (k == 0) {
			if (rc < 0) {
				check_error(err, caps[k], data, size);
				memcpy(first_err, err, strlen(err) + 1);
			} else {
				first_err[0] = '\0';
			}
		} else {
			/* Same outcome, same settings, the same message cut to fit. */
			FUZZ_ASSERT((rc < 0) == (first_err[0] != '\0'));
			FUZZ_ASSERT(!memcmp(c, &first, sizeof first));   /* the same steps, byte for byte */
			if (rc < 0) {
				FUZZ_ASSERT(terminated(err, caps[k]));
				size_t el = strlen(err);
				FUZZ_ASSERT(el == caps[k] - 1 || el == strlen(first_err));
				FUZZ_ASSERT(!strncmp(err, first_err, el));
			}
		}
		free(err);
	}
	check_print(&first);
	check_sizes(data, size);
	return 0;
}
