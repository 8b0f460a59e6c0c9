/* test_listen.c: unit tests of src/front/live/listen.c (parse_listen). */
#include "front/live/listen.h"
#include "unit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static const struct {
	int line;
	const char *s;
	int rc;
	int family;          /* AF_INET, AF_INET6 (when rc is 0) */
	const char *addr;    /* as inet_ntop writes it */
	int port;
} rows[] = {
	/* What worked before and still does. */
	{ __LINE__, "127.0.0.1:8081", 0, AF_INET, "127.0.0.1", 8081 },
	{ __LINE__, "0.0.0.0:80", 0, AF_INET, "0.0.0.0", 80 },
	{ __LINE__, "[::1]:8081", 0, AF_INET6, "::1", 8081 },
	{ __LINE__, "[::]:1", 0, AF_INET6, "::", 1 },
	{ __LINE__, "[2001:db8::7]:65535", 0, AF_INET6, "2001:db8::7", 65535 },
	{ __LINE__, "[::ffff:10.0.0.1]:443", 0, AF_INET6, "::ffff:10.0.0.1", 443 },
	{ __LINE__, "[127.0.0.1]:8081", 0, AF_INET, "127.0.0.1", 8081 },
	{ __LINE__, "255.255.255.255:1", 0, AF_INET, "255.255.255.255", 1 },
	{ __LINE__, "10.1.2.3:008", 0, AF_INET, "10.1.2.3", 8 },
	/* An IPv6 address without brackets: the port is what follows the last
	 * ':', as before (kept for configurations that use it). */
	{ __LINE__, "::1:8081", 0, AF_INET6, "::1", 8081 },

	/* Brackets that do not pair up (with "[" the old code wrote before
	 * its buffer: h[strlen(h) - 1] on an empty string). */
	{ __LINE__, "[:8081", -1, 0, NULL, 0 },
	{ __LINE__, "[:80", -1, 0, NULL, 0 },
	{ __LINE__, "]:80", -1, 0, NULL, 0 },
	{ __LINE__, "[]:80", -1, 0, NULL, 0 },
	{ __LINE__, "[::1:8081", -1, 0, NULL, 0 },   /* was accepted as [::]:8081 */
	{ __LINE__, "[::1", -1, 0, NULL, 0 },
	{ __LINE__, "::1]:80", -1, 0, NULL, 0 },
	{ __LINE__, "[[::1]]:80", -1, 0, NULL, 0 },
	{ __LINE__, "[::1]]:80", -1, 0, NULL, 0 },
	{ __LINE__, "[[::1]:80", -1, 0, NULL, 0 },
	{ __LINE__, "[::1]x:80", -1, 0, NULL, 0 },   /* was cut to "::1]" */
	{ __LINE__, "x[::1]:80", -1, 0, NULL, 0 },
	{ __LINE__, "[::1]:", -1, 0, NULL, 0 },
	{ __LINE__, "[::1]", -1, 0, NULL, 0 },
	{ __LINE__, "1.2.3.4[:80", -1, 0, NULL, 0 },
	{ __LINE__, "1.2.3.4]:80", -1, 0, NULL, 0 },
	/* Hosts. */
	{ __LINE__, ":8081", -1, 0, NULL, 0 },
	{ __LINE__, "localhost:8081", -1, 0, NULL, 0 },
	{ __LINE__, "1.2.3:80", -1, 0, NULL, 0 },
	{ __LINE__, "256.0.0.1:80", -1, 0, NULL, 0 },
	{ __LINE__, " 127.0.0.1:80", -1, 0, NULL, 0 },
	{ __LINE__, "::1]", -1, 0, NULL, 0 },
	{ __LINE__, "::", -1, 0, NULL, 0 },
	{ __LINE__, "123456789012345678901234567890123456789012345678901234567890"
	            "1234567890123456789012345678901234567890123456789012345678901234567890:80",
	  -1, 0, NULL, 0 },
	/* Ports. */
	{ __LINE__, "127.0.0.1", -1, 0, NULL, 0 },
	{ __LINE__, "127.0.0.1:", -1, 0, NULL, 0 },
	{ __LINE__, "127.0.0.1:0", -1, 0, NULL, 0 },
	{ __LINE__, "127.0.0.1:65536", -1, 0, NULL, 0 },
	{ __LINE__, "127.0.0.1:99999999999999999999", -1, 0, NULL, 0 },
	{ __LINE__, "127.0.0.1:-80", -1, 0, NULL, 0 },
	{ __LINE__, "127.0.0.1:+80", -1, 0, NULL, 0 },
	{ __LINE__, "127.0.0.1: 80", -1, 0, NULL, 0 },
	{ __LINE__, "127.0.0.1:80 ", -1, 0, NULL, 0 },
	{ __LINE__, "127.0.0.1:80x", -1, 0, NULL, 0 },
	{ __LINE__, "127.0.0.1:0x50", -1, 0, NULL, 0 },
	{ __LINE__, "", -1, 0, NULL, 0 },
	{ __LINE__, ":", -1, 0, NULL, 0 },
	{ __LINE__, "[", -1, 0, NULL, 0 },
	{ __LINE__, "[:", -1, 0, NULL, 0 },
};

static void test_rows(void)
{
	for (size_t i = 0; i < NELEM(rows); i++) {
		int line = rows[i].line;
		struct sockaddr_storage ss;
		socklen_t len = 0;
		char got[INET6_ADDRSTRLEN] = "";
		int rc = parse_listen(rows[i].s, &ss, &len);
		CHECK_INT_AT(line, rc, rows[i].rc);
		if (rc != 0 || rows[i].rc != 0)
			continue;
		CHECK_INT_AT(line, ss.ss_family, rows[i].family);
		if (ss.ss_family == AF_INET) {
			const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
			CHECK_INT_AT(line, len, sizeof *a);
			CHECK_INT_AT(line, ntohs(a->sin_port), rows[i].port);
			inet_ntop(AF_INET, &a->sin_addr, got, sizeof got);
		} else if (ss.ss_family == AF_INET6) {
			const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
			CHECK_INT_AT(line, len, sizeof *a);
			CHECK_INT_AT(line, ntohs(a->sin6_port), rows[i].port);
			CHECK_INT_AT(line, a->sin6_flowinfo, 0);
			CHECK_INT_AT(line, a->sin6_scope_id, 0);
			inet_ntop(AF_INET6, &a->sin6_addr, got, sizeof got);
		}
		CHECK_STR_AT(line, got, rows[i].addr);
	}
}

/* The input is only read: a string in read-only memory parses (the old code
 * wrote into a copy, which must stay so). */
static void test_const_input(void)
{
	static const char s[] = "[::1]:9";
	struct sockaddr_storage ss;
	socklen_t len;
	CHECK_INT(parse_listen(s, &ss, &len), 0);
	CHECK_STR(s, "[::1]:9");
}

/* "unix:PATH": an absolute path that fits sun_path. */
static void test_unix(void)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char longp[200];
	CHECK_INT(parse_listen("unix:/run/lmstream/live.sock", &ss, &len), 0);
	CHECK_INT(ss.ss_family, AF_UNIX);
	CHECK_STR(((struct sockaddr_un *)&ss)->sun_path, "/run/lmstream/live.sock");
	CHECK_INT(len, offsetof(struct sockaddr_un, sun_path) + strlen("/run/lmstream/live.sock") + 1);
	CHECK_INT(parse_listen("unix:relative.sock", &ss, &len), -1);
	CHECK_INT(parse_listen("unix:", &ss, &len), -1);
	memset(longp, 'a', sizeof longp);
	memcpy(longp, "unix:/", 6);
	longp[5 + 108] = '\0'; /* a path of 108 bytes: no room left for the NUL in sun_path */
	CHECK_INT(parse_listen(longp, &ss, &len), -1);
	longp[5 + 107] = '\0';
	CHECK_INT(parse_listen(longp, &ss, &len), 0);
}

/* listen_unix: mode 0660, a stale socket replaced, a live one or another
 * kind of file left alone. */
static void test_listen_unix(void)
{
	char dir[64], path[128], addr[160], err[256];
	struct sockaddr_storage ss;
	socklen_t len;
	struct stat st;
	if (unit_tmpdir(dir, sizeof dir, "listen"))
		return;
	snprintf(path, sizeof path, "%s/live.sock", dir);
	snprintf(addr, sizeof addr, "unix:%s", path);
	CHECK_INT(parse_listen(addr, &ss, &len), 0);
	int fd = listen_unix(&ss, len, "", err, sizeof err);
	CHECK(fd >= 0);
	CHECK(stat(path, &st) == 0 && S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0660);
	CHECK_INT(listen_unix(&ss, len, "", err, sizeof err), -1); /* in use */
	CHECK(strstr(err, "in use") != NULL);
	close(fd); /* the file stays: a stale socket, replaced next time */
	fd = listen_unix(&ss, len, "", err, sizeof err);
	CHECK(fd >= 0);
	close(fd);
	unlink(path);
	FILE *f = fopen(path, "w"); /* a regular file is never removed */
	if (f)
		fclose(f);
	CHECK_INT(listen_unix(&ss, len, "", err, sizeof err), -1);
	CHECK(stat(path, &st) == 0 && S_ISREG(st.st_mode));
	unlink(path);
	CHECK_INT(listen_unix(&ss, len, "no-such-group-lmstream", err, sizeof err), -1);
	CHECK(strstr(err, "no group") != NULL);
	unit_rm_rf(dir);
}

int main(void)
{
	test_unix();
	test_listen_unix();
	test_rows();
	test_const_input();
	return unit_done();
}
