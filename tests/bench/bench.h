/* bench.h: helpers shared by the benchmark clients (publish.c, sse-load.c). */
#ifndef LS_BENCH_H
#define LS_BENCH_H
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Microseconds since the epoch (the clock messages carry). */
static inline int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Splits http://HOST:PORT/path?query into the Host header, the request
 * target and a loopback IPv4 address. Returns NULL, or why the URL is not
 * usable (only loopback targets are accepted: these tools load a server). */
static inline const char *parse_loopback_url(const char *url, char *host, size_t hcap, char *path,
                                             size_t pcap, struct sockaddr_in *dst)
{
	if (strncmp(url, "http://", 7))
		return "only http:// URLs";
	const char *h = url + 7, *slash = strchr(h, '/');
	if (!slash)
		slash = h + strlen(h);
	if ((size_t)(slash - h) >= hcap)
		return "host too long";
	memcpy(host, h, (size_t)(slash - h));
	host[slash - h] = '\0';
	snprintf(path, pcap, "%s", *slash ? slash : "/");
	char hostonly[300];
	snprintf(hostonly, sizeof hostonly, "%s", host);
	int port = 80;
	char *colon = strrchr(hostonly, ':');
	if (colon) {
		*colon = '\0';
		port = atoi(colon + 1);
	}
	if (!strcmp(hostonly, "localhost"))
		strcpy(hostonly, "127.0.0.1");
	memset(dst, 0, sizeof *dst);
	dst->sin_family = AF_INET;
	dst->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, hostonly, &dst->sin_addr) != 1)
		return "host must be an IPv4 address (loopback)";
	if ((ntohl(dst->sin_addr.s_addr) >> 24) != 127)
		return "refusing a non-loopback target: this tool is for loopback benchmarks only";
	return NULL;
}

#endif
