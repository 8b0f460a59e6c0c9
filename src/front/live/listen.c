/* listen.c: parses the listen address of lmstream-live into a socket address. */
#include "front/live/listen.h"
#include "lib/num.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

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

int parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[128];
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
