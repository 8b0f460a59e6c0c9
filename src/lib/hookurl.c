/* hookurl.c: the SSRF policy of webhook URLs and of the addresses they
 * resolve to. */
#include "lib/hookurl.h"
#include "lib/limits.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <curl/curl.h>

/* What a target is: reachable, loopback (development only), or refused. */
enum target { T_PUBLIC, T_LOOPBACK, T_REFUSED };

/* IPv4 blocks that are not the public internet (the IANA special-purpose
 * registry's blocks that are not globally reachable, and multicast). */
static const struct {
	uint32_t net;
	unsigned bits;
	enum target t;
	const char *why;
} v4_blocks[] = {
	{ 0x00000000, 8, T_REFUSED, "unspecified address" },     /* 0.0.0.0/8 */
	{ 0x0a000000, 8, T_REFUSED, "private address" },         /* 10.0.0.0/8 */
	{ 0x64400000, 10, T_REFUSED, "shared (CGNAT) address" }, /* 100.64.0.0/10 */
	{ 0x7f000000, 8, T_LOOPBACK, "loopback address" },       /* 127.0.0.0/8 */
	{ 0xa9fe0000, 16, T_REFUSED, "link-local address" },     /* 169.254.0.0/16, metadata */
	{ 0xac100000, 12, T_REFUSED, "private address" },        /* 172.16.0.0/12 */
	{ 0xc0000000, 24, T_REFUSED, "reserved address" },       /* 192.0.0.0/24 */
	{ 0xc0000200, 24, T_REFUSED, "documentation address" },  /* 192.0.2.0/24 */
	{ 0xc0a80000, 16, T_REFUSED, "private address" },        /* 192.168.0.0/16 */
	{ 0xc6120000, 15, T_REFUSED, "benchmarking address" },   /* 198.18.0.0/15 */
	{ 0xc6336400, 24, T_REFUSED, "documentation address" },  /* 198.51.100.0/24 */
	{ 0xcb007100, 24, T_REFUSED, "documentation address" },  /* 203.0.113.0/24 */
	{ 0xe0000000, 4, T_REFUSED, "multicast address" },       /* 224.0.0.0/4 */
	{ 0xffffffff, 32, T_REFUSED, "broadcast address" },      /* before 240/4 */
	{ 0xf0000000, 4, T_REFUSED, "reserved address" },        /* 240.0.0.0/4 */
};

/* a: an IPv4 address in host byte order. */
static enum target v4_target(uint32_t a, const char **why)
{
	for (size_t i = 0; i < sizeof v4_blocks / sizeof v4_blocks[0]; i++) {
		uint32_t mask = 0xffffffffu << (32 - v4_blocks[i].bits);
		if ((a & mask) == v4_blocks[i].net) {
			*why = v4_blocks[i].why;
			return v4_blocks[i].t;
		}
	}
	return T_PUBLIC;
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Whether the first bits of the 16-byte address a are those of prefix. */
static int v6_in(const unsigned char *a, const unsigned char *prefix, unsigned bits)
{
	unsigned whole = bits / 8, rest = bits % 8;
	if (memcmp(a, prefix, whole))
		return 0;
	return !rest || ((a[whole] ^ prefix[whole]) & (0xff << (8 - rest)) & 0xff) == 0;
}

static enum target v6_target(const unsigned char *a, const char **why)
{
	static const unsigned char zero[16], mapped[12] = { [10] = 0xff, [11] = 0xff },
	                           translated[12] = { [8] = 0xff, [9] = 0xff },
	                           nat64[12] = { 0x00, 0x64, 0xff, 0x9b },
	                           nat64_local[6] = { 0x00, 0x64, 0xff, 0x9b, 0x00, 0x01 },
	                           sixto4[2] = { 0x20, 0x02 }, doc[4] = { 0x20, 0x01, 0x0d, 0xb8 },
	                           discard[8] = { 0x01, 0x00 }, ula[1] = { 0xfc }, ll[2] = { 0xfe, 0x80 },
	                           site[2] = { 0xfe, 0xc0 }, mcast[1] = { 0xff };

	if (!memcmp(a, zero, 15) && a[15] <= 1) {
		*why = a[15] ? "loopback address" : "unspecified address";
		return a[15] ? T_LOOPBACK : T_REFUSED;
	}
	/* IPv4 inside IPv6: the IPv4 rules decide. ::a.b.c.d (IPv4-compatible,
	 * deprecated), ::ffff:a.b.c.d (mapped), ::ffff:0:a.b.c.d (translated,
	 * SIIT), 64:ff9b::a.b.c.d (NAT64), 2002:AABB:CCDD::/48 (6to4). */
	if (v6_in(a, zero, 96) || v6_in(a, mapped, 96) || v6_in(a, translated, 96) || v6_in(a, nat64, 96))
		return v4_target(be32(a + 12), why);
	if (v6_in(a, sixto4, 16))
		return v4_target(be32(a + 2), why);
	const struct {
		const unsigned char *prefix;
		unsigned bits;
		const char *why;
	} blocks[] = {
		{ nat64_local, 48, "local-use NAT64 address" },
		{ discard, 64, "discard-only address" },
		{ doc, 32, "documentation address" },
		{ ula, 7, "unique-local address" },
		{ ll, 10, "link-local address" },
		{ site, 10, "site-local address" },
		{ mcast, 8, "multicast address" },
	};
	for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++) {
		if (v6_in(a, blocks[i].prefix, blocks[i].bits)) {
			*why = blocks[i].why;
			return T_REFUSED;
		}
	}
	return T_PUBLIC;
}

/* The verdict on a target, given the development exception. */
static int allowed(enum target t, int allow_loopback, const char *reason, const char **why)
{
	if (t == T_PUBLIC || (t == T_LOOPBACK && allow_loopback))
		return 1;
	if (why)
		*why = reason;
	return 0;
}

int hookaddr_allowed(const struct sockaddr *sa, int allow_loopback, const char **why)
{
	const char *reason = "not an IP address";
	enum target t = T_REFUSED;

	if (sa && sa->sa_family == AF_INET) {
		struct sockaddr_in in;
		memcpy(&in, sa, sizeof in);
		t = v4_target(ntohl(in.sin_addr.s_addr), &reason);
	} else if (sa && sa->sa_family == AF_INET6) {
		struct sockaddr_in6 in6;
		memcpy(&in6, sa, sizeof in6);
		t = v6_target(in6.sin6_addr.s6_addr, &reason);
	}
	return allowed(t, allow_loopback, reason, why);
}

/* Whether the last label of a host name is a number (digits, or 0x and
 * hex digits): what browsers and inet_aton read as an IPv4 address. */
static int numeric_tail(const char *host)
{
	const char *label = strrchr(host, '.');
	label = label ? label + 1 : host;
	size_t n = strlen(label), i = 0;
	int hex = n >= 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X');
	if (hex)
		i = 2;
	else if (n == 0)
		return 0;
	for (; i < n; i++) {
		char c = label[i];
		if (!(c >= '0' && c <= '9') && !(hex && ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))))
			return 0;
	}
	return 1;
}

/* The target a URL's host (as libcurl gives it: IPv6 in brackets, IPv4 in
 * dotted decimal when it could read it) names. */
static enum target host_target(char *host, const char **why)
{
	size_t n = strlen(host);
	unsigned char a[16];
	struct in_addr v4;

	if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
		host[n - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, a) != 1) {
			*why = "bad IPv6 address";
			return T_REFUSED;
		}
		return v6_target(a, why);
	}
	if (n > 1 && host[n - 1] == '.')
		host[--n] = '\0'; /* the root of the DNS: the same host */
	if (inet_pton(AF_INET, host, a) == 1)
		return v4_target(be32(a), why);
	if (numeric_tail(host) || inet_aton(host, &v4)) {
		*why = "odd IPv4 spelling";
		return T_REFUSED;
	}
	/* RFC 6761: localhost and the names under it are the loopback. */
	if (!strcasecmp(host, "localhost") || (n > 10 && !strcasecmp(host + n - 10, ".localhost"))) {
		*why = "loopback host";
		return T_LOOPBACK;
	}
	if (!strcasecmp(host, "metadata") || !strcasecmp(host, "metadata.google.internal")) {
		*why = "cloud metadata host";
		return T_REFUSED;
	}
	return T_PUBLIC;
}

/* Whether the parsed URL u has a part (user, password, ...). */
static int has_part(CURLU *u, CURLUPart part)
{
	char *s = NULL;
	CURLUcode rc = curl_url_get(u, part, &s, 0);
	curl_free(s);
	return rc == CURLUE_OK;
}

/* The verdict on the parsed URL u. */
static int check_parsed(CURLU *u, int allow_loopback, const char **why)
{
	char *scheme = NULL, *h = NULL, host[260];
	int ok = 0;

	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcmp(scheme, "https") && strcmp(scheme, "http")))
		*why = "scheme must be https";
	else if (has_part(u, CURLUPART_USER) || has_part(u, CURLUPART_PASSWORD) ||
	         has_part(u, CURLUPART_OPTIONS))
		*why = "credentials in the URL";
	else if (has_part(u, CURLUPART_ZONEID))
		*why = "zone id in the URL";
	else if (curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK || !*h)
		*why = "no host";
	else if (strlen(h) >= sizeof host)
		*why = "host name too long";
	else {
		strcpy(host, h);
		const char *reason = "";
		enum target t = host_target(host, &reason);
		ok = allowed(t, allow_loopback, reason, why);
		if (ok && !strcmp(scheme, "http") && t != T_LOOPBACK) {
			*why = allow_loopback ? "http only to loopback" : "scheme must be https";
			ok = 0;
		}
	}
	curl_free(scheme);
	curl_free(h);
	return ok;
}

int hookurl_check(const char *url, int allow_loopback, const char **why)
{
	const char *reason = "not a valid URL";
	CURLU *u = NULL;
	int ok = 0;

	if (!url || !*url)
		reason = "no URL";
	else if (strlen(url) > LS_MAX_WEBHOOK_URL)
		reason = "URL too long";
	else if (!(u = curl_url()))
		reason = "out of memory";
	else if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK)
		ok = check_parsed(u, allow_loopback, &reason);
	curl_url_cleanup(u);
	if (!ok && why)
		*why = reason;
	return ok ? 0 : -1;
}
