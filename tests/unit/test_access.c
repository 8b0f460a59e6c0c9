/* test_access.c: unit tests of src/core/access.c through proto_handle: the
 * rights of the user the web server authenticated (REMOTE_USER, {user} in
 * user_read / user_write / user_admin) beside public and token rights. */
#include "core/auth.h"
#include "protocol_harness.h"

#include <stdio.h>

static struct auth *keys;

/* One request; returns the status (R holds the response). */
static int ask(enum proto_method m, const char *path, const char *user, const char *origin,
               const char *authorization)
{
	struct proto_request q;
	memset(&q, 0, sizeof q);
	q.method = m;
	q.target = path;
	q.target_len = strlen(path);
	q.query = m == M_GET ? "offset=-1" : "";
	q.query_len = strlen(q.query);
	q.h[H_HOST] = "streams.example";
	q.h[H_ORIGIN] = origin;
	q.h[H_AUTHORIZATION] = authorization;
	q.h[H_CONTENT_TYPE] = m == M_PUT || m == M_POST ? "text/plain" : NULL;
	q.body = m == M_POST ? "x" : NULL;
	q.body_len = m == M_POST ? 1 : 0;
	q.remote_user = user;
	proto_response_reset(&R);
	proto_handle(&ctx, &q, &R, &L);
	proto_live_clear(&L);
	return R.status;
}

static const struct {
	int line;
	enum proto_method m;
	const char *path, *user, *origin;
	int status;
} rows[] = {
	/* the user's own subtree: read, write and admin as the patterns give */
	{ __LINE__, M_PUT, P("users/alice/a"), "alice", NULL, 201 },
	{ __LINE__, M_POST, P("users/alice/a"), "alice", NULL, 204 },
	{ __LINE__, M_GET, P("users/alice/a"), "alice", NULL, 200 },
	{ __LINE__, M_HEAD, P("users/alice/a"), "alice", NULL, 200 },
	{ __LINE__, M_PUT, P("users/alice/deep/er/b"), "alice", NULL, 201 },
	{ __LINE__, M_DELETE, P("users/alice/deep/er/b"), "alice", NULL, 204 },
	/* user_read alone: read, nothing else */
	{ __LINE__, M_PUT, P("shared/alice/s"), NULL, NULL, 401 },
	{ __LINE__, M_GET, P("shared/alice/x"), "alice", NULL, 404 },
	{ __LINE__, M_PUT, P("shared/alice/x"), "alice", NULL, 403 },
	/* someone else's subtree: 403 (an identity is known), before any 404 */
	{ __LINE__, M_GET, P("users/alice/a"), "bob", NULL, 403 },
	{ __LINE__, M_POST, P("users/alice/a"), "bob", NULL, 403 },
	{ __LINE__, M_DELETE, P("users/alice/a"), "bob", NULL, 403 },
	{ __LINE__, M_GET, P("users/bob-not-there/x"), "alice", NULL, 403 },
	{ __LINE__, M_GET, P("users/alicex/a"), "alice", NULL, 403 }, /* {user} is a whole segment */
	{ __LINE__, M_GET, P("users/alice"), "alice", NULL, 404 },    /* "**" covers the subtree's root too */
	/* no user: the public rights only, 401 beyond them */
	{ __LINE__, M_GET, P("users/alice/a"), NULL, NULL, 401 },
	{ __LINE__, M_GET, P("pub/x"), NULL, NULL, 404 },
	/* a name is a literal segment, never a pattern */
	{ __LINE__, M_GET, P("users/alice/a"), "*", NULL, 403 },
	{ __LINE__, M_GET, P("users/alice/a"), "**", NULL, 403 },
	/* names that cannot stand for one segment give no identity (401) */
	{ __LINE__, M_GET, P("users/alice/a"), "", NULL, 401 },
	{ __LINE__, M_GET, P("users/alice/a"), "alice/a", NULL, 401 },
	{ __LINE__, M_GET, P("users/alice/a"), "..", NULL, 401 },
	{ __LINE__, M_GET, P("users/alice/a"), ".", NULL, 401 },
	{ __LINE__, M_GET, P("users/alice/a"), "ali\nce", NULL, 401 },
	{ __LINE__, M_GET, P("users/alice/a"), "ali\x7f" "ce", NULL, 401 },
	/* the web server's login is sent by the browser from any page: writes
	 * only from this site or a listed origin; reads from anywhere */
	{ __LINE__, M_POST, P("users/alice/a"), "alice", "http://evil.example", 403 },
	{ __LINE__, M_DELETE, P("users/alice/a"), "alice", "http://evil.example", 403 },
	{ __LINE__, M_POST, P("users/alice/a"), "alice", "https://streams.example", 204 },
	{ __LINE__, M_POST, P("users/alice/a"), "alice", "http://app.example", 204 },
	{ __LINE__, M_GET, P("users/alice/a"), "alice", "http://evil.example", 200 },
};

static void test_rows(void)
{
	for (size_t i = 0; i < NELEM(rows); i++) {
		int got = ask(rows[i].m, rows[i].path, rows[i].user, rows[i].origin, NULL);
		CHECK_INT_AT(rows[i].line, got, rows[i].status);
	}
}

/* A read granted to the user is private; a denial names the right. */
static void test_answers(void)
{
	CHECK_INT(ask(M_GET, P("users/alice/a"), "alice", NULL, NULL), 200);
	const char *cc = proto_get_header(&R, "Cache-Control");
	CHECK(cc && strstr(cc, "private") && !strstr(cc, "public"));
	CHECK_INT(ask(M_GET, P("users/alice/a"), "bob", NULL, NULL), 403);
	CHECK(strstr(R.body.data ? R.body.data : "", "read on users/alice/a") != NULL);
}

/* Authorization: Basic (the web server's own login) is not a token: no
 * invalid_token, with or without the user it authenticated. */
static void test_basic_is_no_token(void)
{
	const char *basic = "Basic YWxpY2U6cHc=";
	CHECK_INT(ask(M_GET, P("users/alice/a"), NULL, NULL, basic), 401);
	const char *wa = proto_get_header(&R, "WWW-Authenticate");
	CHECK(wa && !strncmp(wa, "Bearer", 6) && !strstr(wa, "invalid_token"));
	CHECK_INT(ask(M_GET, P("users/alice/a"), "alice", NULL, basic), 200);
	/* a bad bearer token is still 401 invalid_token, user or not */
	CHECK_INT(ask(M_GET, P("users/alice/a"), "alice", NULL, "Bearer not.a.token"), 401);
	wa = proto_get_header(&R, "WWW-Authenticate");
	CHECK(wa && strstr(wa, "invalid_token"));
}

/* A name as long as allowed works; one byte more gives no identity. */
static void test_long_names(void)
{
	char name[LS_MAX_USER + 2], path[LS_MAX_USER + 64];
	memset(name, 'u', sizeof name - 1);
	name[LS_MAX_USER] = '\0';
	snprintf(path, sizeof path, P("users/%s/a"), name);
	CHECK_INT(ask(M_PUT, path, name, NULL, NULL), 201);
	name[LS_MAX_USER] = 'u';
	name[LS_MAX_USER + 1] = '\0';
	snprintf(path, sizeof path, P("users/%s/a"), name);
	CHECK_INT(ask(M_GET, path, name, NULL, NULL), 401);
}

int main(void)
{
	int rc = harness_open("test_access", "access");
	if (rc)
		return rc;
	char keyfile[128], err[256];
	snprintf(keyfile, sizeof keyfile, "%s/hs.key", tmpdir);
	FILE *f = fopen(keyfile, "w");
	CHECK(f != NULL);
	if (!f)
		return unit_done();
	fputs("0123456789abcdef0123456789abcdef0123456789abcdef\n", f);
	fclose(f);
	cfg.auth = AUTH_TOKEN;
	snprintf(cfg.auth_key, sizeof cfg.auth_key, "%s", keyfile);
	snprintf(cfg.public_read, sizeof cfg.public_read, "pub/**");
	snprintf(cfg.user_read, sizeof cfg.user_read, "users/{user}/** shared/{user}/**");
	snprintf(cfg.user_write, sizeof cfg.user_write, "users/{user}/**");
	snprintf(cfg.user_admin, sizeof cfg.user_admin, "users/{user}/**");
	snprintf(cfg.cors_origins, sizeof cfg.cors_origins, "http://app.example");
	if (auth_open(&keys, &cfg, err, sizeof err)) {
		printf("%s:%d: FAIL: auth_open: %s\n", __FILE__, __LINE__, err);
		harness_close();
		return 1;
	}
	ctx.auth = keys;
	test_rows();
	test_answers();
	test_basic_is_no_token();
	test_long_names();
	auth_close(keys);
	harness_close();
	return unit_done();
}
