/* test_webhook.c: unit tests of src/front/webhook.c against a listener of
 * its own on the loopback: a delivery and its answer, and the refusals
 * (scheme, URL, and the resolved address at connect time) that must happen
 * before any connection is made. */
#include "front/webhook.h"
#include "lib/hookurl.h"
#include "lib/sign.h"
#include "unit.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* A one-connection HTTP server on a thread. */
struct server {
	int fd;                 /* listening */
	const char *answer;     /* sent once the request is in; NULL: none */
	size_t answer_len;
	char request[8192];     /* what came, NUL terminated */
	size_t request_len;
	int accepted;
	pthread_t thread;
};

/* A listening socket on addr (numeric) port 0; its port into *port. */
static int listen_on(const char *addr, int *port)
{
	struct sockaddr_in in = { .sin_family = AF_INET };
	socklen_t len = sizeof in;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || inet_pton(AF_INET, addr, &in.sin_addr) != 1 || bind(fd, (struct sockaddr *)&in, sizeof in) ||
	    listen(fd, 8) || getsockname(fd, (struct sockaddr *)&in, &len)) {
		perror("listen_on");
		exit(99);
	}
	*port = ntohs(in.sin_port);
	return fd;
}

/* Whether a connection waited to be accepted (one made and closed counts);
 * it is taken and closed, so that the next check starts clean. */
static int pending(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (poll(&p, 1, 0) <= 0)
		return 0;
	int c = accept(fd, NULL, NULL);
	if (c >= 0)
		close(c);
	return 1;
}

/* Whether the request is complete: its headers and Content-Length bytes. */
static int request_done(const char *req, size_t len)
{
	const char *end = strstr(req, "\r\n\r\n");
	if (!end)
		return 0;
	const char *cl = strcasestr(req, "\r\nContent-Length:");
	size_t body = cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
	return len >= (size_t)(end + 4 - req) + body;
}

static void *serve(void *arg)
{
	struct server *s = arg;
	struct pollfd p = { .fd = s->fd, .events = POLLIN };
	if (poll(&p, 1, 5000) <= 0)
		return NULL;
	int c = accept(s->fd, NULL, NULL);
	if (c < 0)
		return NULL;
	s->accepted = 1;
	struct pollfd q = { .fd = c, .events = POLLIN };
	while (!request_done(s->request, s->request_len) && s->request_len < sizeof s->request - 1 &&
	       poll(&q, 1, 5000) > 0) {
		ssize_t n = read(c, s->request + s->request_len, sizeof s->request - 1 - s->request_len);
		if (n <= 0)
			break;
		s->request_len += (size_t)n;
		s->request[s->request_len] = '\0';
	}
	if (s->answer) {
		for (size_t off = 0; off < s->answer_len;) {
			ssize_t n = send(c, s->answer + off, s->answer_len - off, MSG_NOSIGNAL);
			if (n <= 0)
				break;
			off += (size_t)n;
		}
	} else {
		char sink[256];
		while (poll(&q, 1, 3000) > 0 && read(c, sink, sizeof sink) > 0)
			; /* until the client gives up */
	}
	close(c);
	return NULL;
}

static void server_start(struct server *s, int fd, const char *answer, size_t answer_len)
{
	memset(s, 0, sizeof *s);
	s->fd = fd;
	s->answer = answer;
	s->answer_len = answer_len;
	if (pthread_create(&s->thread, NULL, serve, s)) {
		perror("pthread_create");
		exit(99);
	}
}

#define OK_ANSWER "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n" \
	"Connection: close\r\n\r\n{\"done\":true}"

static void test_delivery(int fd, int port)
{
	unsigned char priv[SIGN_KEY_LEN];
	char url[64], sig[SIGN_HEADER_MAX + 32];
	const char body[] = "{\"subscription_id\":\"sub-1\",\"wake_id\":\"w_1\",\"generation\":7}";
	struct webhook_result res;
	struct server s;

	CHECK_INT(sign_keygen(priv), 0);
	memcpy(sig, "Webhook-Signature: ", 19);
	CHECK(sign_header(priv, 1767225600, body, strlen(body), sig + 19, sizeof sig - 19) > 0);
	const char *headers[] = { "Content-Type: application/json", sig, NULL };

	snprintf(url, sizeof url, "http://127.0.0.1:%d/hook", port);
	server_start(&s, fd, OK_ANSWER, strlen(OK_ANSWER));
	CHECK_INT(webhook_post(url, headers, body, strlen(body), 5000, 1, NULL, &res), 0);
	pthread_join(s.thread, NULL);
	CHECK_INT(res.status, 200);
	CHECK_STR(res.body, "{\"done\":true}");
	CHECK_UINT(res.body_len, 13);
	CHECK_INT(res.truncated, 0);
	CHECK_STR(res.error, "");
	CHECK(s.accepted);
	CHECK(!strncmp(s.request, "POST /hook HTTP/1.1\r\n", 21));
	CHECK(strstr(s.request, "\r\nContent-Type: application/json\r\n") != NULL);
	CHECK(strstr(s.request, sig) != NULL);
	CHECK(strcasestr(s.request, "\r\nExpect:") == NULL);
	const char *got = strstr(s.request, "\r\n\r\n");
	CHECK(got && !strcmp(got + 4, body));
	CHECK(!pending(fd));
}

/* The refusals: none of them may reach the listener. */
static void test_refused(int fd, int port)
{
	static const struct {
		int line;
		const char *base; /* the URL up to its port */
		int allow_loopback;
		const char *error;
	} rows[] = {
		{ __LINE__, "http://127.0.0.1:", 0, "webhook URL refused: loopback address" },
		{ __LINE__, "http://localhost:", 0, "webhook URL refused: loopback host" },
		{ __LINE__, "http://localhost.:", 0, "webhook URL refused: loopback host" },
		{ __LINE__, "https://localhost:", 0, "webhook URL refused: loopback host" },
		{ __LINE__, "https://127.0.0.1:", 0, "webhook URL refused: loopback address" },
		{ __LINE__, "http://[::ffff:127.0.0.1]:", 0, "webhook URL refused: loopback address" },
		{ __LINE__, "http://2130706433:", 0, "webhook URL refused: loopback address" },
		{ __LINE__, "ftp://127.0.0.1:", 1, "webhook URL refused: scheme must be https" },
		{ __LINE__, "http://u:p@127.0.0.1:", 1, "webhook URL refused: credentials in the URL" },
		{ __LINE__, "http://10.0.0.1:", 1, "webhook URL refused: private address" },
	};
	for (size_t i = 0; i < NELEM(rows); i++) {
		char url[80];
		struct webhook_result res;
		snprintf(url, sizeof url, "%s%d/hook", rows[i].base, port);
		CHECK_INT_AT(rows[i].line, webhook_post(url, NULL, "{}", 2, 2000, rows[i].allow_loopback, NULL, &res), -1);
		CHECK_INT_AT(rows[i].line, res.status, 0);
		CHECK_STR_AT(rows[i].line, res.error, rows[i].error);
		CHECK_AT(rows[i].line, !pending(fd));
	}
	struct webhook_result res;
	CHECK_INT(webhook_post("https://worker.example/", NULL, "", 0, 0, 0, NULL, &res), -1);
	CHECK_STR(res.error, "no time given");
}

/* A name that is not "localhost" but resolves to 127.0.0.1 (this machine's
 * own name, on most systems) passes the URL check: the connect-time check
 * must refuse it. */
static void test_resolved(int fd, int port)
{
	char name[256], url[320];
	struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *ai = NULL;
	struct webhook_result res;

	if (gethostname(name, sizeof name) || getaddrinfo(name, NULL, &hints, &ai) ||
	    ((struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr != htonl(INADDR_LOOPBACK)) {
		printf("test_resolved: skipped: this host's name does not resolve to 127.0.0.1\n");
		if (ai)
			freeaddrinfo(ai);
		return;
	}
	freeaddrinfo(ai);
	snprintf(url, sizeof url, "https://%s:%d/hook", name, port);
	CHECK_INT(hookurl_check(url, 0, NULL), 0);
	CHECK_INT(webhook_post(url, NULL, "{}", 2, 2000, 0, NULL, &res), -1);
	CHECK_INT(res.status, 0);
	CHECK_STR(res.error, "refused to connect to 127.0.0.1: loopback address");
	CHECK(!pending(fd));
	/* Over http, as a development setup would, with loopback allowed the
	 * URL check refuses a name that is not localhost; it never connects. */
	snprintf(url, sizeof url, "http://%s:%d/hook", name, port);
	CHECK_INT(webhook_post(url, NULL, "{}", 2, 2000, 1, NULL, &res), -1);
	CHECK_STR(res.error, "webhook URL refused: http only to loopback");
	CHECK(!pending(fd));
}

/* Answers that are not simply 200: a redirect (not followed), one longer
 * than the body kept, one too long, and none at all (the time runs out). */
static void test_answers(int fd, int port)
{
	static char big[80000];
	char url[64], redirect[200];
	struct webhook_result res;
	struct server s;

	snprintf(url, sizeof url, "http://127.0.0.1:%d/hook", port);
	int n = snprintf(redirect, sizeof redirect,
	                 "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:%d/other\r\nContent-Length: 0\r\n"
	                 "Connection: close\r\n\r\n", port);
	server_start(&s, fd, redirect, (size_t)n);
	CHECK_INT(webhook_post(url, NULL, "{}", 2, 5000, 1, NULL, &res), 0);
	pthread_join(s.thread, NULL);
	CHECK_INT(res.status, 302);
	CHECK_UINT(res.body_len, 0);
	CHECK(!pending(fd)); /* the Location was not visited */

	for (int over = 0; over <= 1; over++) {
		size_t body = over ? 70000 : 5000;
		n = snprintf(big, sizeof big, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", body);
		memset(big + n, 'x', body);
		server_start(&s, fd, big, (size_t)n + body);
		int rc = webhook_post(url, NULL, "{}", 2, 5000, 1, NULL, &res);
		pthread_join(s.thread, NULL);
		CHECK_INT(res.status, 200);
		CHECK_UINT(res.body_len, sizeof res.body - 1);
		CHECK_UINT(strlen(res.body), sizeof res.body - 1);
		CHECK_INT(res.truncated, 1);
		CHECK_INT(rc, over ? -1 : 0);
		CHECK_STR(res.error, over ? "answer longer than LS_WEBHOOK_ANSWER_MAX" : "");
	}

	server_start(&s, fd, NULL, 0);
	CHECK_INT(webhook_post(url, NULL, "{}", 2, 300, 1, NULL, &res), -1);
	pthread_join(s.thread, NULL);
	CHECK(s.accepted);
	CHECK_INT(res.status, 0);
	CHECK(strstr(res.error, "imed out") != NULL);
}

int main(void)
{
	int port;
	signal(SIGPIPE, SIG_IGN);
	CHECK_INT(webhook_global_init(), 0);
	CHECK_INT(webhook_global_init(), 0);
	int fd = listen_on("127.0.0.1", &port);
	test_delivery(fd, port);
	test_refused(fd, port);
	test_resolved(fd, port);
	test_answers(fd, port);
	close(fd);
	return unit_done();
}
