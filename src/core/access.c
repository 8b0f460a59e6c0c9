/* access.c: who may do what, decided once per request in the core, so that
 * every front (FastCGI, CGI, lmstream-live alone or behind a proxy) enforces
 * the same rules (README, "Access control").
 *
 * read = GET and HEAD in every mode; write = PUT (create), POST (append,
 * close); admin = DELETE and POST ?compact. A fork needs read on its source
 * and write on its own path. Rights come from public_read / public_write
 * (anyone), from user_read / user_write / user_admin for the user the web
 * server authenticated (REMOTE_USER), and from the request's token. Without
 * a credential or a user only the public rights count (401 when they do not
 * cover); a bad token is 401 whatever else is granted; a known user or a
 * valid token whose rights do not cover is 403. Credentials the browser
 * sends by itself (a cookie, the web server's login) authorize writes only
 * from the same site or an origin of cors_origins. */
#include "core/access.h"
#include "core/core.h"
#include "lib/glob.h"
#include "lib/log.h"
#include "lib/parse.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* What a request needs: up to two (right, path) pairs. */
struct need {
	enum right right;
	const struct stream_name *path;
};

static int needs_of(const struct req *q, struct need need[2])
{
	switch (q->method) {
	case M_GET:
	case M_HEAD:
		need[0] = (struct need){ RIGHT_READ, &q->name };
		return 1;
	case M_PUT:
		need[0] = (struct need){ RIGHT_WRITE, &q->name };
		if (!q->is_fork)
			return 1;
		need[1] = (struct need){ RIGHT_READ, &q->fork_src };
		return 2;
	case M_POST:
		need[0] = (struct need){ q->compact ? RIGHT_ADMIN : RIGHT_WRITE, &q->name };
		return 1;
	case M_DELETE:
		need[0] = (struct need){ RIGHT_ADMIN, &q->name };
		return 1;
	default:
		return 0;
	}
}

static const char *const right_names[RIGHT__COUNT] = { "read", "write", "admin" };

static int public_covers(const struct config *cfg, enum right r, const struct stream_name *n)
{
	const char *list = r == RIGHT_READ ? cfg->public_read : r == RIGHT_WRITE ? cfg->public_write : "";
	return glob_match_list(list, n->s, n->len);
}

static int user_covers(const struct config *cfg, enum right r, const char *user, const struct stream_name *n)
{
	const char *list = r == RIGHT_READ ? cfg->user_read : r == RIGHT_WRITE ? cfg->user_write : cfg->user_admin;
	return user && glob_match_list_user(list, n->s, n->len, user);
}

/* The host of an origin ("https://a.example:8443" -> "a.example:8443"). */
static const char *origin_host(const char *origin)
{
	const char *p = strstr(origin, "://");
	return p ? p + 3 : origin;
}

int access_origin_listed(const struct config *cfg, const char *origin)
{
	const char *w;
	size_t k, n = strlen(origin);
	for (size_t pos = 0; parse_next_word(cfg->cors_origins, &pos, &w, &k);)
		if (k == n && !strncasecmp(w, origin, n))
			return 1;
	return 0;
}

/* A cookie, like the web server's login, is sent by the browser whatever
 * page asks: it authorizes a write only when the page is of this site or
 * an allowed origin. */
static int ambient_write_allowed(const struct config *cfg, const struct req *q)
{
	if (!q->origin)
		return 1; /* not a browser's cross-site request: they always send Origin */
	if (q->host && !strcasecmp(origin_host(q->origin), q->host))
		return 1;
	return access_origin_listed(cfg, q->origin);
}

static void log_denial(const struct proto_ctx *ctx, const struct req *q, const char *sub,
                       const char *why)
{
	static const char *const methods[] = { "GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "-" };
	int metrics = q->metrics; /* its own path, not a stream's */
	log_info("denied: front=%s %s %s%.*s sub=%s user=%s: %s", ctx->front ? ctx->front : "-",
	         methods[q->method], metrics ? ctx->cfg->metrics_path : ctx->cfg->prefix,
	         metrics ? 0 : (int)q->name.len, q->name.s, sub && *sub ? sub : "-",
	         q->user ? q->user : "-", why);
}

/* Whether a right granted by something the browser sends by itself may be
 * used: reads always, writes only from this site or a listed origin. */
static enum proto_err ambient_ok(const struct proto_ctx *ctx, const struct req *q, enum right r,
                                 const char **why)
{
	if (r == RIGHT_READ || ambient_write_allowed(ctx->cfg, q))
		return E_OK;
	*why = "the page's origin is not in cors_origins";
	return E_CROSS_SITE;
}

/* Whether a list of patterns names everything: the word "**" itself. */
static int list_has_all(const char *list)
{
	const char *w;
	size_t k;
	for (size_t pos = 0; parse_next_word(list, &pos, &w, &k);)
		if (k == 2 && !memcmp(w, "**", 2))
			return 1;
	return 0;
}

/* The node's metrics tell of every stream: they need admin on everything
 * ("**" among a token's admin patterns, or in user_admin for the web
 * server's user), unless the client is on this machine. */
static enum proto_err check_metrics(const struct proto_ctx *ctx, const struct req *q, const struct grant *g,
                                    int *credentialed, const char **why)
{
	if (q->loopback)
		return E_OK;
	*why = "admin";
	if (q->user && list_has_all(ctx->cfg->user_admin)) {
		*credentialed = 1;
		return E_OK;
	}
	if (!g)
		return q->user ? E_FORBIDDEN : E_AUTH_REQUIRED;
	for (size_t i = 0; i < g->rights[RIGHT_ADMIN].n; i++)
		if (!strcmp(g->rights[RIGHT_ADMIN].v[i], "**")) {
			*credentialed = 1;
			return E_OK;
		}
	return E_FORBIDDEN;
}

/* The rights of a request with a verified token g (NULL: none). Sets
 * *credentialed when a right came from the token or the user, not from the
 * public lists (the answer is then private). */
static enum proto_err check_needs(const struct proto_ctx *ctx, const struct req *q, const struct grant *g,
                                  int *credentialed, const char **why)
{
	struct need need[2];
	if (q->metrics)
		return check_metrics(ctx, q, g, credentialed, why);
	int n = needs_of(q, need);
	for (int i = 0; i < n; i++) {
		const struct stream_name *p = need[i].path;
		enum right r = need[i].right;
		enum proto_err e = E_OK;
		if (public_covers(ctx->cfg, r, p))
			continue;
		*why = right_names[r];
		if (user_covers(ctx->cfg, r, q->user, p))
			e = ambient_ok(ctx, q, r, why);
		else if (!g)
			return q->user ? E_FORBIDDEN : E_AUTH_REQUIRED;
		else if (!patterns_match(&g->rights[r], p->s, p->len))
			return E_FORBIDDEN;
		else if (q->cred == CRED_COOKIE)
			e = ambient_ok(ctx, q, r, why);
		if (e)
			return e;
		*credentialed = 1;
	}
	return E_OK;
}

/* The answer to a denial: which right on which stream, or why the token
 * is refused (never the token itself). */
static void deny(struct proto_response *resp, enum proto_err e, const struct req *q, const char *why)
{
	char detail[LS_MAX_PATH_HARD + 32];
	if (e == E_AUTH_REQUIRED || e == E_FORBIDDEN) {
		snprintf(detail, sizeof detail, "%s on %.*s", why, (int)q->name.len, q->name.s);
		why = detail;
	}
	proto_fail_detail(resp, e, why);
}

/* The principal of a producer: who the token says (its sub, "" when it has
 * none: tokens without sub share one space), else the web server's user. */
static void principal_of(const struct req *q, const struct grant *g, struct access *out)
{
	if (g)
		out->has_principal = !auth_principal("t:", g->sub, out->principal);
	else if (q->user)
		out->has_principal = !auth_principal("u:", q->user, out->principal);
}

/* The request's credential: E_OK, with *g filled and *have set when it
 * carries a token that verifies (none: E_OK, *have 0), or why not. */
static enum proto_err credential(const struct proto_ctx *ctx, const struct req *q, struct grant *g, int *have,
                                 const char **why)
{
	*have = 0;
	if (!ctx->auth) {
		*why = "no key was loaded";
		return E_AUTH_UNAVAILABLE;
	}
	if (q->cred == CRED_NONE)
		return E_OK;
	if (q->cred_too_long) {
		*why = "too long";
		return E_TOKEN_INVALID;
	}
	if (auth_verify(ctx->auth, q->cred_token, store_now_ms(), ctx->cfg->auth_skew_s, g, why))
		return E_TOKEN_INVALID;
	*have = 1;
	return E_OK;
}

enum proto_err access_check(const struct proto_ctx *ctx, const struct req *q, struct access *out,
                            struct proto_response *resp)
{
	struct grant g;
	int have_grant = 0;
	const char *why = NULL;
	enum proto_err e;

	memset(out, 0, sizeof *out);
	if (ctx->cfg->auth == AUTH_NONE)
		return E_OK;
	/* The control APIs decide for themselves (core/subs_api.c): what a
	 * subscription needs depends on its patterns, and callbacks, acks and
	 * releases carry a wake token, not a token of ours. */
	if (q->ctl != CTL_NONE)
		return E_OK;
	if (!(e = credential(ctx, q, &g, &have_grant, &why))) {
		e = check_needs(ctx, q, have_grant ? &g : NULL, &out->credentialed, &why);
		if (!e && q->method == M_POST && q->has_producer)
			principal_of(q, have_grant ? &g : NULL, out);
		if (have_grant)
			/* as long as the token is accepted (exp + auth_skew): ending
			 * a live read sooner would only bring the client straight
			 * back with the same token, accepted again */
			out->expires_ms = g.exp_ms + (int64_t)ctx->cfg->auth_skew_s * 1000;
	}
	if (e) {
		log_denial(ctx, q, have_grant ? g.sub : NULL, why);
		deny(resp, e, q, why);
	}
	if (have_grant)
		grant_free(&g);
	return e;
}

/* Whether right r over every path of pattern p comes from the public
 * lists, the web server's user or the grant g (NULL: none). */
static enum proto_err covers(const struct proto_ctx *ctx, const struct req *q, const struct grant *g,
                             enum right r, const char *p, size_t plen, int *credentialed)
{
	const struct config *cfg = ctx->cfg;
	const char *pub = r == RIGHT_READ ? cfg->public_read : r == RIGHT_WRITE ? cfg->public_write : "";
	const char *usr = r == RIGHT_READ ? cfg->user_read : r == RIGHT_WRITE ? cfg->user_write : cfg->user_admin;
	if (glob_covers_list_user(pub, p, plen, NULL))
		return E_OK;
	*credentialed = 1;
	const char *why;
	if (q->user && glob_covers_list_user(usr, p, plen, q->user))
		return ambient_ok(ctx, q, r, &why);
	if (!g)
		return q->user ? E_FORBIDDEN : E_AUTH_REQUIRED;
	for (size_t i = 0; i < g->rights[r].n; i++)
		if (glob_covers(g->rights[r].v[i], strlen(g->rights[r].v[i]), p, plen))
			return q->cred == CRED_COOKIE ? ambient_ok(ctx, q, r, &why) : E_OK;
	return E_FORBIDDEN;
}

enum proto_err access_check_cover(const struct proto_ctx *ctx, const struct req *q,
                                  const struct access_need *need, size_t n, struct access *out,
                                  struct proto_response *resp)
{
	struct grant g;
	int have_grant = 0;
	const char *why = NULL;
	char detail[LS_MAX_PATH_HARD + 32];
	enum proto_err e = E_OK;

	memset(out, 0, sizeof *out);
	if (ctx->cfg->auth == AUTH_NONE)
		return E_OK;
	if (!(e = credential(ctx, q, &g, &have_grant, &why))) {
		for (size_t i = 0; i < n && !e; i++) {
			e = covers(ctx, q, have_grant ? &g : NULL, need[i].right, need[i].pattern, need[i].len,
			           &out->credentialed);
			if (e) {
				snprintf(detail, sizeof detail, "%s on every stream of %.*s", right_names[need[i].right],
				         (int)need[i].len, need[i].pattern);
				why = detail;
			}
		}
	}
	if (e) {
		log_denial(ctx, q, have_grant ? g.sub : NULL, why);
		proto_fail_detail(resp, e, why);
	}
	if (have_grant)
		grant_free(&g);
	return e;
}
