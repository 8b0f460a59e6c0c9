/* webhook.c: one webhook POST over libcurl, never to a local target. */
#include "front/webhook.h"
#include "lib/hookurl.h"
#include "lib/limits.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <curl/curl.h>

/* One call's state, seen by the callbacks. */
struct post {
	struct webhook_result *res;
	int allow_loopback;
	size_t received; /* bytes of answer body, kept or not */
	int too_long;
	char refused[96]; /* the last address refused, and why */
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc = -1;

static void global_init(void)
{
	init_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

int webhook_global_init(void)
{
	pthread_once(&init_once, global_init);
	return init_rc;
}

/* CURLOPT_WRITEFUNCTION: keeps the start of the answer, gives up past
 * LS_WEBHOOK_ANSWER_MAX (returning less than given fails the transfer). */
static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
	struct post *post = arg;
	struct webhook_result *res = post->res;
	size_t len = size * n;

	if (len > LS_WEBHOOK_ANSWER_MAX - post->received) {
		post->too_long = 1;
		return 0;
	}
	post->received += len;
	size_t room = sizeof res->body - 1 - res->body_len;
	size_t take = len < room ? len : room;
	memcpy(res->body + res->body_len, p, take);
	res->body_len += take;
	res->body[res->body_len] = '\0';
	if (take < len)
		res->truncated = 1;
	return len;
}

/* CURLOPT_OPENSOCKETFUNCTION: the check on each resolved address, just
 * before connecting to it (DNS rebinding cannot slip past it). */
static curl_socket_t on_open(void *arg, curlsocktype purpose, struct curl_sockaddr *addr)
{
	struct post *post = arg;
	const char *why = "not an outgoing connection";
	char text[INET6_ADDRSTRLEN] = "?";
	size_t need = addr->family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);

	if (purpose == CURLSOCKTYPE_IPCXN && addr->addrlen >= need &&
	    hookaddr_allowed(&addr->addr, post->allow_loopback, &why))
		return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
	if (addr->family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)&addr->addr)->sin_addr, text, sizeof text);
	else if (addr->family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)&addr->addr)->sin6_addr, text,
		          sizeof text);
	snprintf(post->refused, sizeof post->refused, "refused to connect to %s: %s", text, why);
	return CURL_SOCKET_BAD;
}

/* The request headers: the caller's, and an empty Expect (no waiting for
 * "100 Continue" before a body over 1 KiB). NULL when out of memory. */
static struct curl_slist *header_list(const char *const *headers)
{
	struct curl_slist *list = curl_slist_append(NULL, "Expect:");
	for (size_t i = 0; list && headers && headers[i]; i++) {
		struct curl_slist *more = curl_slist_append(list, headers[i]);
		if (!more) {
			curl_slist_free_all(list);
			return NULL;
		}
		list = more;
	}
	return list;
}

/* The locked-down options of one POST; CURLE_OK when libcurl took them all
 * (any other value is the failures' codes or-ed: only its being set counts). */
static CURLcode set_options(CURL *c, const char *url, struct curl_slist *hl, const char *body, size_t len,
                            int timeout_ms, const char *ca_file, struct post *post, char *errbuf)
{
	const char *protocols = post->allow_loopback ? "https,http" : "https";
	CURLcode rc = CURLE_OK;

	rc |= curl_easy_setopt(c, CURLOPT_URL, url);
	rc |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, protocols);
	rc |= curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, protocols);
	rc |= curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	rc |= curl_easy_setopt(c, CURLOPT_MAXREDIRS, 0L);
	rc |= curl_easy_setopt(c, CURLOPT_PROXY, ""); /* not even one from the environment */
	rc |= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	rc |= curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
	rc |= curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	rc |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	rc |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (ca_file && ca_file[0])
		rc |= curl_easy_setopt(c, CURLOPT_CAINFO, ca_file);
	rc |= curl_easy_setopt(c, CURLOPT_USERAGENT, PACKAGE_NAME "/" PACKAGE_VERSION);
	rc |= curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	rc |= curl_easy_setopt(c, CURLOPT_POST, 1L);
	/* Never NULL: libcurl would then read the body from stdin. */
	rc |= curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
	rc |= curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? len : 0));
	rc |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	rc |= curl_easy_setopt(c, CURLOPT_WRITEDATA, post);
	rc |= curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, on_open);
	rc |= curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, post);
	rc |= curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	return rc;
}

int webhook_post(const char *url, const char *const *headers, const char *body, size_t len, int timeout_ms,
                 int allow_loopback, const char *ca_file, struct webhook_result *res)
{
	struct post post = { .res = res, .allow_loopback = allow_loopback };
	char errbuf[CURL_ERROR_SIZE] = "";
	const char *why = "";

	memset(res, 0, sizeof *res);
	if (timeout_ms <= 0) {
		snprintf(res->error, sizeof res->error, "no time given");
		return -1;
	}
	if (hookurl_check(url, allow_loopback, &why) < 0) {
		snprintf(res->error, sizeof res->error, "webhook URL refused: %s", why);
		return -1;
	}
	if (webhook_global_init() < 0) {
		snprintf(res->error, sizeof res->error, "curl_global_init failed");
		return -1;
	}
	CURL *c = curl_easy_init();
	struct curl_slist *hl = header_list(headers);
	CURLcode rc = CURLE_OUT_OF_MEMORY;
	if (c && hl && set_options(c, url, hl, body, len, timeout_ms, ca_file, &post, errbuf) != CURLE_OK)
		rc = CURLE_FAILED_INIT; /* this libcurl lacks an option (too old) */
	else if (c && hl)
		rc = curl_easy_perform(c);
	if (c)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &res->status);
	if (rc != CURLE_OK) {
		const char *msg = post.too_long ? "answer longer than LS_WEBHOOK_ANSWER_MAX"
		                  : post.refused[0] ? post.refused
		                  : errbuf[0]       ? errbuf
		                                    : curl_easy_strerror(rc);
		snprintf(res->error, sizeof res->error, "%s", msg);
	}
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
	return rc == CURLE_OK ? 0 : -1;
}
