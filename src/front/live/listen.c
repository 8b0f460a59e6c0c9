/* listen.c: the listen address of lmstream-live: parsed, and bound when it is a unix: socket. */
#include "front/live/listen.h"
#include "lib/num.h"

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* The port after the last ':': decimal digits only, 1 to 65535; else -1. */
static int parse_port(const char *p)
{
	uint64_t port;
	if (num_decimal(p, strlen(p), 5, &port) || port == 0 || port > 65535)
		return -1;
	return (int)port;
}

/* Removes the brackets around host in place: "[addr]" becomes "addr".
 * Returns the address, or NULL when the brackets do not pair up. */
static char *unbracket(char *host, size_t n)
{
	int open = n > 0 && host[0] == '[';
	int close = n > 0 && host[n - 1] == ']';
	if (!open && !close)
		return memchr(host, '[', n) || memchr(host, ']', n) ? NULL : host;
	if (!open || !close || n < 2)
		return NULL;
	host[n - 1] = '\0';
	host++;
	return strpbrk(host, "[]") ? NULL : host;
}

/* "unix:PATH": an absolute path that fits sun_path. */
static int parse_unix(const char *path, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_un *un = (struct sockaddr_un *)ss;
	size_t n = strlen(path);
	if (path[0] != '/' || n >= sizeof un->sun_path)
		return -1;
	memset(ss, 0, sizeof *ss);
	un->sun_family = AF_UNIX;
	memcpy(un->sun_path, path, n + 1);
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	return 0;
}

int parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[128];
	if (!strncmp(s, "unix:", 5))
		return parse_unix(s + 5, ss, len);
	const char *colon = strrchr(s, ':');
	if (!colon || (size_t)(colon - s) >= sizeof host)
		return -1;
	size_t n = (size_t)(colon - s);
	memcpy(host, s, n);
	host[n] = '\0';
	int port = parse_port(colon + 1);
	if (port < 0)
		return -1;
	char *h = unbracket(host, n);
	if (!h)
		return -1;
	memset(ss, 0, sizeof *ss);
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, h, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		*len = sizeof *a4;
		return 0;
	}
	if (inet_pton(AF_INET6, h, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		*len = sizeof *a6;
		return 0;
	}
	return -1;
}

/* The group id of name, or -1 with err. */
static int group_id(const char *name, gid_t *gid, char *err, size_t errlen)
{
	struct group gr, *found = NULL;
	char buf[4096];
	if (getgrnam_r(name, &gr, buf, sizeof buf, &found) || !found) {
		snprintf(err, errlen, "listen_group: no group named '%s'", name);
		return -1;
	}
	*gid = found->gr_gid;
	return 0;
}

int listen_unix(const struct sockaddr_storage *ss, socklen_t len, const char *group, char *err,
                size_t errlen)
{
	const char *path = ((const struct sockaddr_un *)ss)->sun_path;
	struct stat st;
	gid_t gid = (gid_t)-1;
	if (*group && group_id(group, &gid, err, errlen))
		return -1;
	if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket", path);
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (const struct sockaddr *)ss, len) == 0) {
		snprintf(err, errlen, "%s is in use by a running server", path);
		close(fd);
		return -1;
	}
	close(fd);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	unlink(path); /* a stale socket of an earlier run: nobody answers there */
	/* Created with no rights for others, then opened to the group: no
	 * moment where anyone else could connect. */
	mode_t old = umask(0177);
	int r = bind(fd, (const struct sockaddr *)ss, len);
	umask(old);
	if (r < 0 || (gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) < 0) || chmod(path, 0660) < 0 ||
	    listen(fd, 4096) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}
