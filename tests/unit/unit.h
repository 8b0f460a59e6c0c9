/* unit.h: a tiny harness for the unit test programs: CHECK macros that count
 * and print one "file:line: ..." line per failure, and unit_done() that prints
 * "N passed, N failed" and gives the exit status (0 when nothing failed).
 *
 * Table-driven tests pass the row's __LINE__ to the *_AT variants so a
 * failure names the row, not the loop. The end of the file has the helpers
 * several programs share (unit_dup_exact, unit_tmpdir, unit_rm_rf, ...). */
#ifndef LS_UNIT_H
#define LS_UNIT_H
#include <dirent.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int unit_passed, unit_failed;

static inline void unit_result(int ok, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static inline void unit_result(int ok, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	if (ok) {
		unit_passed++;
		return;
	}
	unit_failed++;
	printf("%s:%d: FAIL: ", file, line);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

/* Prints bytes for a failure message: printable ASCII as is, the rest as \xHH,
 * at most 120 bytes. Uses one of two static buffers (two per message). */
static inline const char *unit_show(const void *p, size_t len)
{
	static char bufs[2][600];
	static int which;
	char *out = bufs[which ^= 1];
	const unsigned char *s = p;
	size_t n = 0;

	if (!p)
		return "(null)";
	for (size_t i = 0; i < len && n + 8 < sizeof bufs[0]; i++) {
		if (i == 120) {
			n += (size_t)snprintf(out + n, sizeof bufs[0] - n, "...(%zu bytes)", len);
			break;
		}
		if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\')
			out[n++] = (char)s[i];
		else
			n += (size_t)snprintf(out + n, sizeof bufs[0] - n, "\\x%02x", s[i]);
	}
	out[n] = '\0';
	return out;
}

#define CHECK_AT(line, cond) \
	unit_result(!!(cond), __FILE__, (line), "%s", #cond)
#define CHECK(cond) CHECK_AT(__LINE__, cond)

/* Integers are compared as intmax_t / uintmax_t and printed on failure. */
#define CHECK_INT_AT(line, got, want) do { \
	intmax_t g_ = (intmax_t)(got), w_ = (intmax_t)(want); \
	unit_result(g_ == w_, __FILE__, (line), "%s == %s: got %jd, want %jd", #got, #want, g_, w_); \
} while (0)
#define CHECK_INT(got, want) CHECK_INT_AT(__LINE__, got, want)

#define CHECK_UINT_AT(line, got, want) do { \
	uintmax_t g_ = (uintmax_t)(got), w_ = (uintmax_t)(want); \
	unit_result(g_ == w_, __FILE__, (line), "%s == %s: got %ju, want %ju", #got, #want, g_, w_); \
} while (0)
#define CHECK_UINT(got, want) CHECK_UINT_AT(__LINE__, got, want)

/* NUL-terminated strings; NULL equals only NULL. */
#define CHECK_STR_AT(line, got, want) do { \
	const char *g_ = (got), *w_ = (want); \
	int ok_ = (!g_ && !w_) || (g_ && w_ && !strcmp(g_, w_)); \
	unit_result(ok_, __FILE__, (line), "%s == %s: got \"%s\", want \"%s\"", #got, #want, \
	            unit_show(g_, g_ ? strlen(g_) : 0), unit_show(w_, w_ ? strlen(w_) : 0)); \
} while (0)
#define CHECK_STR(got, want) CHECK_STR_AT(__LINE__, got, want)

/* Byte ranges. */
#define CHECK_MEM_AT(line, got, glen, want, wlen) do { \
	const void *g_ = (got), *w_ = (want); \
	size_t gl_ = (glen), wl_ = (wlen); \
	int ok_ = gl_ == wl_ && (gl_ == 0 || !memcmp(g_, w_, gl_)); \
	unit_result(ok_, __FILE__, (line), "%s == %s: got \"%s\" (%zu), want \"%s\" (%zu)", #got, #want, \
	            unit_show(g_, gl_), gl_, unit_show(w_, wl_), wl_); \
} while (0)
#define CHECK_MEM(got, glen, want, wlen) CHECK_MEM_AT(__LINE__, got, glen, want, wlen)

/* Prints the summary line and returns the exit status for main. */
static inline int unit_done(void)
{
	printf("%d passed, %d failed\n", unit_passed, unit_failed);
	return unit_failed ? 1 : 0;
}

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* --- helpers shared by the test programs ---------------------------------------
 * Static inline, so a program that uses none of them gets no warning. The fuzz
 * harnesses (tests/fuzz) include this header for the pure ones. */

/* A heap copy of exactly len bytes, not NUL terminated, so that
 * AddressSanitizer and valgrind see any read past the length. Aborts when
 * out of memory; the caller frees it. */
static inline char *unit_dup_exact(const char *s, size_t len)
{
	char *p = malloc(len ? len : 1);
	if (!p)
		abort();
	if (len)
		memcpy(p, s, len);
	return p;
}

/* JSON whitespace (RFC 8259): space, tab, LF, CR. */
static inline int unit_is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The payload an SSE client recovers from data lines: CRLF and CR become LF.
 * Writes at most len bytes and a NUL to out (len + 1 bytes); returns the
 * length written, NUL not counted. */
static inline size_t unit_sse_normalize(const char *s, size_t len, char *out)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\r') {
			out[n++] = '\n';
			if (i + 1 < len && s[i + 1] == '\n')
				i++;
		} else {
			out[n++] = s[i];
		}
	}
	out[n] = '\0';
	return n;
}

/* Creates a fresh directory /tmp/lmstream-test-<name>-XXXXXX (short, so that
 * socket paths under it fit a sockaddr_un) and writes its path to dir.
 * Returns 0, or -1 after printing why. */
static inline int unit_tmpdir(char *dir, size_t cap, const char *name)
{
	int n = snprintf(dir, cap, "/tmp/lmstream-test-%s-XXXXXX", name);
	if (n < 0 || (size_t)n >= cap) {
		fprintf(stderr, "unit_tmpdir: name too long: %s\n", name);
		return -1;
	}
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return -1;
	}
	return 0;
}

/* Removes path and, for a directory, everything under it (symbolic links are
 * removed, not followed). Best effort: errors are ignored. */
static inline void unit_rm_rf(const char *path)
{
	DIR *d = opendir(path);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d))) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			char sub[1024];
			int n = snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
			if (n < 0 || (size_t)n >= sizeof sub)
				continue;
			struct stat st;
			if (!lstat(sub, &st) && S_ISDIR(st.st_mode))
				unit_rm_rf(sub);
			else
				unlink(sub);
		}
		closedir(d);
		rmdir(path);
	} else {
		unlink(path);
	}
}

#endif
