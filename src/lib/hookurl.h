/* hookurl.h: which webhook URLs and addresses lmstream may send to, the
 * defence against server-side request forgery of PROTOCOL.md 6.2.
 *
 * A webhook URL must be https://, name no credentials and no local target:
 * private (RFC 1918), loopback, link-local (and so the 169.254.169.254 cloud
 * metadata service), unique-local, shared (CGNAT), unspecified, multicast,
 * broadcast, reserved and documentation addresses are refused, written as
 * IPv4, as IPv6, or as IPv4 inside IPv6 (mapped, compatible, NAT64, 6to4);
 * so are the metadata host names. With allow_loopback (development), http://
 * is accepted too, but only to localhost or a loopback address, and https://
 * may name loopback targets. A host name passes here; the address it
 * resolves to is checked again at connect time with hookaddr_allowed
 * (front/webhook.c does), which is what stops DNS rebinding.
 *
 * Pure functions, no I/O (the URL is parsed by libcurl's URL API). Every
 * reason is a static string. tests/unit/test_hookurl.c has the cases. */
#ifndef LS_HOOKURL_H
#define LS_HOOKURL_H

struct sockaddr;

/* Whether url may receive webhooks. Returns 0, or -1 with *why (when why
 * is not NULL) saying why not, e.g. "private address". */
int hookurl_check(const char *url, int allow_loopback, const char **why);

/* Whether lmstream may connect to the resolved address sa (AF_INET or
 * AF_INET6; any other family is refused): 1 when it may, 0 when not, with
 * *why (when why is not NULL). */
int hookaddr_allowed(const struct sockaddr *sa, int allow_loopback, const char **why);

#endif
