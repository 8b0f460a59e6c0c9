/* test_hookurl.c: unit tests of src/lib/hookurl.c, the SSRF policy of
 * webhook URLs (PROTOCOL.md 6.2) and of resolved addresses. */
#include "lib/hookurl.h"
#include "unit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

/* ok: accepted without allow_loopback; dev: accepted with it. */
static const struct {
	int line;
	const char *url;
	int ok, dev;
} url_rows[] = {
	/* public https */
	{ __LINE__, "https://worker.example/hooks", 1, 1 },
	{ __LINE__, "HTTPS://Worker.Example:8443/hooks?a=1#f", 1, 1 },
	{ __LINE__, "https://93.184.216.34/hook", 1, 1 },
	{ __LINE__, "https://[2606:2800:220:1:248:1893:25c8:1946]/hook", 1, 1 },
	{ __LINE__, "https://1.2.3.4./hook", 1, 1 },
	{ __LINE__, "https://[::ffff:93.184.216.34]/", 1, 1 },
	{ __LINE__, "https://[2002:5db8:d822::1]/", 1, 1 },       /* 6to4 of a public address */
	{ __LINE__, "https://xn--bcher-kva.example/", 1, 1 },
	{ __LINE__, "https://metadata.example/", 1, 1 },
	/* other schemes, and http off loopback */
	{ __LINE__, "http://worker.example/hooks", 0, 0 },
	{ __LINE__, "http://93.184.216.34/", 0, 0 },
	{ __LINE__, "ftp://worker.example/", 0, 0 },
	{ __LINE__, "file:///etc/passwd", 0, 0 },
	{ __LINE__, "gopher://worker.example/", 0, 0 },
	{ __LINE__, "ws://localhost/", 0, 0 },
	{ __LINE__, "worker.example/hooks", 0, 0 },
	{ __LINE__, "//worker.example/hooks", 0, 0 },
	{ __LINE__, "", 0, 0 },
	{ __LINE__, "https://", 0, 0 },
	{ __LINE__, "https://exa mple.com/", 0, 0 },
	{ __LINE__, "https://example.com:99999/", 0, 0 },
	/* credentials */
	{ __LINE__, "https://user:pw@worker.example/", 0, 0 },
	{ __LINE__, "https://user@worker.example/", 0, 0 },
	{ __LINE__, "https://@worker.example/", 0, 0 },
	{ __LINE__, "https://:@worker.example/", 0, 0 },
	{ __LINE__, "http://user@localhost/", 0, 0 },
	/* loopback: development only, over http or https */
	{ __LINE__, "http://localhost/hook", 0, 1 },
	{ __LINE__, "http://localhost:8080/hook", 0, 1 },
	{ __LINE__, "http://LocalHost./hook", 0, 1 },
	{ __LINE__, "http://api.localhost/hook", 0, 1 },
	{ __LINE__, "http://127.0.0.1:9000/hook", 0, 1 },
	{ __LINE__, "http://127.0.0.7/hook", 0, 1 },
	{ __LINE__, "http://127.255.255.254/", 0, 1 },
	{ __LINE__, "http://[::1]:9000/hook", 0, 1 },
	{ __LINE__, "http://[::ffff:127.0.0.1]/", 0, 1 },
	{ __LINE__, "https://localhost/hook", 0, 1 },
	{ __LINE__, "https://127.0.0.1/hook", 0, 1 },
	{ __LINE__, "https://[::1]/hook", 0, 1 },
	{ __LINE__, "http://localhostx/", 0, 0 },
	{ __LINE__, "http://notlocalhost/", 0, 0 },
	/* odd spellings of 127.0.0.1: libcurl reads them as 127.0.0.1 */
	{ __LINE__, "http://2130706433/", 0, 1 },
	{ __LINE__, "http://0x7f.1/", 0, 1 },
	{ __LINE__, "http://0177.0.0.1/", 0, 1 },
	{ __LINE__, "http://127.1/", 0, 1 },
	/* ... and of others, never */
	{ __LINE__, "https://167772161/", 0, 0 },                 /* 10.0.0.1 */
	{ __LINE__, "https://0xa9.0xfe.0xa9.0xfe/", 0, 0 },       /* 169.254.169.254 */
	{ __LINE__, "https://%31%30.0.0.1/", 0, 0 },
	{ __LINE__, "https://999.1.1.1/", 0, 0 },
	{ __LINE__, "https://08.1.1.1/", 0, 0 },
	{ __LINE__, "https://1.2.3.4.5/", 0, 0 },
	{ __LINE__, "https://0x/", 0, 0 },
	{ __LINE__, "https://host.0x1f/", 0, 0 },
	{ __LINE__, "https://host.123/", 0, 0 },
	/* private, link-local, shared, special */
	{ __LINE__, "http://10.0.0.1/hook", 0, 0 },
	{ __LINE__, "https://10.0.0.1/hook", 0, 0 },
	{ __LINE__, "https://10.255.255.255/", 0, 0 },
	{ __LINE__, "https://172.16.0.1/", 0, 0 },
	{ __LINE__, "https://172.31.255.255/", 0, 0 },
	{ __LINE__, "https://172.15.255.255/", 1, 1 },
	{ __LINE__, "https://172.32.0.1/", 1, 1 },
	{ __LINE__, "https://192.168.1.1/", 0, 0 },
	{ __LINE__, "https://192.169.1.1/", 1, 1 },
	{ __LINE__, "https://169.254.169.254/latest/meta-data/", 0, 0 },
	{ __LINE__, "http://169.254.169.254/", 0, 0 },
	{ __LINE__, "https://100.64.0.1/", 0, 0 },
	{ __LINE__, "https://100.127.255.255/", 0, 0 },
	{ __LINE__, "https://100.128.0.1/", 1, 1 },
	{ __LINE__, "https://100.63.255.255/", 1, 1 },
	{ __LINE__, "https://0.0.0.0/", 0, 0 },
	{ __LINE__, "http://0.0.0.0:8080/", 0, 0 },
	{ __LINE__, "https://0.1.2.3/", 0, 0 },
	{ __LINE__, "https://224.0.0.1/", 0, 0 },
	{ __LINE__, "https://239.255.255.250/", 0, 0 },
	{ __LINE__, "https://255.255.255.255/", 0, 0 },
	{ __LINE__, "https://240.0.0.1/", 0, 0 },
	{ __LINE__, "https://192.0.2.1/", 0, 0 },
	{ __LINE__, "https://198.18.0.1/", 0, 0 },
	/* IPv6 */
	{ __LINE__, "https://[::]/", 0, 0 },
	{ __LINE__, "https://[fe80::1]/", 0, 0 },
	{ __LINE__, "https://[fe80::1%25eth0]/", 0, 0 },
	{ __LINE__, "https://[febf::1]/", 0, 0 },
	{ __LINE__, "https://[fec0::1]/", 0, 0 },
	{ __LINE__, "https://[fc00::1]/", 0, 0 },
	{ __LINE__, "https://[fd12:3456::1]/", 0, 0 },
	{ __LINE__, "https://[ff02::1]/", 0, 0 },
	{ __LINE__, "https://[2001:db8::1]/", 0, 0 },
	{ __LINE__, "https://[::ffff:10.0.0.1]/", 0, 0 },
	{ __LINE__, "https://[::ffff:a9fe:a9fe]/", 0, 0 },        /* 169.254.169.254 */
	{ __LINE__, "https://[::ffff:192.168.0.1]/", 0, 0 },
	{ __LINE__, "http://[::ffff:10.0.0.1]/", 0, 0 },
	{ __LINE__, "https://[::10.0.0.1]/", 0, 0 },              /* IPv4-compatible */
	{ __LINE__, "https://[::ffff:0:10.0.0.1]/", 0, 0 },       /* IPv4-translated */
	{ __LINE__, "https://[::ffff:0:93.184.216.34]/", 1, 1 },
	{ __LINE__, "https://[64:ff9b::10.0.0.1]/", 0, 0 },       /* NAT64 */
	{ __LINE__, "https://[64:ff9b:1::1]/", 0, 0 },
	{ __LINE__, "https://[2002:a00:1::]/", 0, 0 },            /* 6to4 of 10.0.0.1 */
	{ __LINE__, "https://[2002:7f00:1::]/", 0, 1 },           /* 6to4 of 127.0.0.1 */
	/* metadata names */
	{ __LINE__, "https://metadata.google.internal/computeMetadata/v1/", 0, 0 },
	{ __LINE__, "https://METADATA.google.internal./", 0, 0 },
	{ __LINE__, "https://metadata/", 0, 0 },
	{ __LINE__, "http://metadata/", 0, 0 },
};

static void test_urls(void)
{
	for (size_t i = 0; i < NELEM(url_rows); i++) {
		for (int dev = 0; dev <= 1; dev++) {
			const char *why = NULL;
			int want = dev ? url_rows[i].dev : url_rows[i].ok;
			int got = hookurl_check(url_rows[i].url, dev, &why) == 0;
			unit_result(got == want, __FILE__, url_rows[i].line, "hookurl_check(\"%s\", %d): got %s (%s)",
			            url_rows[i].url, dev, got ? "accepted" : "refused", why ? why : "no reason");
			CHECK_AT(url_rows[i].line, got || (why && *why));
		}
	}

	/* The reasons are short and to the point. */
	const char *why = NULL;
	CHECK_INT(hookurl_check("http://10.0.0.1/hook", 1, &why), -1);
	CHECK_STR(why, "private address");
	CHECK_INT(hookurl_check("http://worker.example/", 1, &why), -1);
	CHECK_STR(why, "http only to loopback");
	CHECK_INT(hookurl_check("http://worker.example/", 0, &why), -1);
	CHECK_STR(why, "scheme must be https");
	CHECK_INT(hookurl_check("https://localhost/", 0, &why), -1);
	CHECK_STR(why, "loopback host");
	CHECK_INT(hookurl_check("https://169.254.169.254/", 1, &why), -1);
	CHECK_STR(why, "link-local address");
	CHECK_INT(hookurl_check("https://u@worker.example/", 1, &why), -1);
	CHECK_STR(why, "credentials in the URL");
	CHECK_INT(hookurl_check(NULL, 1, NULL), -1);

	/* A URL of the longest length passes; one byte more does not. */
	char url[2100];
	memset(url, 'a', sizeof url);
	memcpy(url, "https://worker.example/", 23);
	url[2048] = '\0';
	CHECK_INT(hookurl_check(url, 0, NULL), 0);
	url[2048] = 'a';
	url[2049] = '\0';
	CHECK_INT(hookurl_check(url, 0, &why), -1);
	CHECK_STR(why, "URL too long");
}

static const struct {
	int line;
	const char *addr;
	int ok, dev;
} addr_rows[] = {
	{ __LINE__, "93.184.216.34", 1, 1 },
	{ __LINE__, "8.8.8.8", 1, 1 },
	{ __LINE__, "127.0.0.1", 0, 1 },
	{ __LINE__, "127.10.20.30", 0, 1 },
	{ __LINE__, "10.1.2.3", 0, 0 },
	{ __LINE__, "172.20.0.1", 0, 0 },
	{ __LINE__, "192.168.255.255", 0, 0 },
	{ __LINE__, "169.254.169.254", 0, 0 },
	{ __LINE__, "100.100.100.200", 0, 0 },
	{ __LINE__, "0.0.0.0", 0, 0 },
	{ __LINE__, "224.0.0.251", 0, 0 },
	{ __LINE__, "255.255.255.255", 0, 0 },
	{ __LINE__, "2606:4700::1111", 1, 1 },
	{ __LINE__, "::1", 0, 1 },
	{ __LINE__, "::", 0, 0 },
	{ __LINE__, "::ffff:127.0.0.1", 0, 1 },
	{ __LINE__, "::ffff:10.0.0.1", 0, 0 },
	{ __LINE__, "::ffff:169.254.169.254", 0, 0 },
	{ __LINE__, "::ffff:8.8.8.8", 1, 1 },
	{ __LINE__, "fe80::1", 0, 0 },
	{ __LINE__, "fd00:ec2::254", 0, 0 },                       /* AWS IMDS over IPv6 */
	{ __LINE__, "ff05::2", 0, 0 },
	{ __LINE__, "64:ff9b::a9fe:a9fe", 0, 0 },
	{ __LINE__, "64:ff9b::808:808", 1, 1 },
};

/* The address text as a sockaddr of its family. */
static int to_sockaddr(const char *text, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof *ss);
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons(443);
		return 0;
	}
	if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(443);
		return 0;
	}
	return -1;
}

static void test_addrs(void)
{
	for (size_t i = 0; i < NELEM(addr_rows); i++) {
		struct sockaddr_storage ss;
		CHECK_AT(addr_rows[i].line, to_sockaddr(addr_rows[i].addr, &ss) == 0);
		for (int dev = 0; dev <= 1; dev++) {
			const char *why = NULL;
			int want = dev ? addr_rows[i].dev : addr_rows[i].ok;
			int got = hookaddr_allowed((struct sockaddr *)&ss, dev, &why);
			unit_result(got == want, __FILE__, addr_rows[i].line, "hookaddr_allowed(%s, %d): got %d (%s)",
			            addr_rows[i].addr, dev, got, why ? why : "no reason");
		}
	}
	/* Not an IP address: refused. */
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	const char *why = NULL;
	CHECK_INT(hookaddr_allowed((struct sockaddr *)&un, 1, &why), 0);
	CHECK_STR(why, "not an IP address");
	CHECK_INT(hookaddr_allowed(NULL, 1, NULL), 0);
}

int main(void)
{
	test_urls();
	test_addrs();
	return unit_done();
}
