/* webhook.h: sending one webhook request (PROTOCOL.md 7.1) with libcurl.
 *
 * One blocking POST per call on its own easy handle, so threads may call it
 * at once (after webhook_global_init). The transport is locked down against
 * server-side request forgery: the URL must pass hookurl_check, only https
 * is spoken (and http when allow_loopback), redirects are not followed,
 * proxies from the environment are ignored, TLS peers are verified, and
 * every address the host name resolves to is checked with hookaddr_allowed
 * just before the connection is opened, so a name that resolves (or
 * rebinds) to a private or loopback address is never connected to. */
#ifndef LS_WEBHOOK_H
#define LS_WEBHOOK_H
#include <stddef.h>

/* What came back. body holds the first sizeof body - 1 bytes of the answer
 * and a NUL (truncated says whether there was more); status is 0 when no
 * HTTP answer came; error is "" or one line saying what failed. */
struct webhook_result {
	long status;
	char body[4096];
	size_t body_len;
	int truncated;
	char error[160];
};

/* curl_global_init, once per process however often it is called; call it
 * before threads use webhook_post. Returns 0, or -1. */
int webhook_global_init(void);

/* POSTs body (len bytes) to url with the extra request headers in headers
 * (NULL, or a NULL-terminated array of "Name: value" strings; give the
 * Content-Type and Webhook-Signature there), waiting at most timeout_ms
 * (> 0) in all. ca_file: NULL or "" to check the receiver's certificate
 * against the system's authorities, else a PEM file of the ones to trust. Fills *res and returns 0 when an HTTP answer came in full,
 * whatever its status; returns -1 when the URL or an address was refused,
 * the connection or TLS failed, the time ran out, or the answer was longer
 * than LS_WEBHOOK_ANSWER_MAX (res->error says which; res->status may still
 * be set). No redirect is followed: a 3xx is an answer like any other. */
int webhook_post(const char *url, const char *const *headers, const char *body, size_t len, int timeout_ms,
                 int allow_loopback, const char *ca_file, struct webhook_result *res);

#endif
