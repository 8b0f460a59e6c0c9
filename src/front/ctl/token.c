/* token.c: lmstreamctl token, a signed token (JWT) that lmstream accepts. */
#include "front/ctl/ctl.h"
#include "core/auth.h"
#include "lib/config.h"
#include "lib/num.h"

#include <errno.h>
#include <jwt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define TTL_MAX_S (100ULL * 365 * 86400) /* exp stays a date lmstream accepts */

/* The options of "lmstreamctl token". */
struct token_opts {
	struct patterns rights[RIGHT__COUNT];  /* --read, --write, --admin */
	uint64_t ttl_s;                        /* --ttl; 0: not given */
	const char *sub, *key, *kid, *config;  /* NULL: not given */
};

static void token_usage(FILE *f)
{
	fputs("Usage: lmstreamctl token [--read PATTERN]... [--write PATTERN]... [--admin PATTERN]...\n"
	      "                         --ttl DURATION [--sub ID] [--key FILE] [--kid KID] [--config FILE]\n"
	      "Prints one signed token (JWT) on stdout. It grants read (GET, HEAD), write (PUT, POST)\n"
	      "or admin (DELETE, ?compact) on the streams its patterns match: segments separated by\n"
	      "'/', \"*\" matches one segment, \"**\" any number. Quote patterns for the shell.\n"
	      "  --ttl DURATION  lifetime: 90s, 10m, 2h, 7d or seconds (exp = now + DURATION)\n"
	      "  --sub ID        who the token is for (logged with every refusal)\n"
	      "  --key FILE      signing key: a secret (HS256), or a PEM private key, RSA (RS256)\n"
	      "                  or EC P-256 (ES256) whose public key is in auth_key. Default: the\n"
	      "                  first file of auth_key in the configuration\n"
	      "  --kid KID       key id in the header; default: FILE's name without directory and\n"
	      "                  extension, as lmstream names the keys of auth_key\n"
	      "  --config FILE   configuration file (default: $LMSTREAM_CONFIG); LMSTREAM_<KEY>\n"
	      "                  variables override it, as for lmstream-live\n"
	      "Exit status: 0 with a token, 2 on an error (one line on stderr).\n", f);
}


/* Parses DURATION: decimal seconds, or a number followed by s, m, h or d.
 * Returns 0 with *out in seconds (1 to TTL_MAX_S), or -1. */
static int parse_duration(const char *s, uint64_t *out)
{
	static const struct { char unit; uint64_t s; } units[] = {
		{ 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 },
	};
	size_t len = strlen(s);
	uint64_t mul = 1, v;
	for (size_t i = 0; len && i < sizeof units / sizeof units[0]; i++) {
		if (s[len - 1] == units[i].unit) {
			mul = units[i].s;
			len--;
			break;
		}
	}
	if (num_decimal(s, len, 12, &v) || v == 0 || v > TTL_MAX_S / mul)
		return -1;
	*out = v * mul;
	return 0;
}

/* Appends a copy of s to p. Returns 0 or -1 when out of memory. */
static int push_pattern(struct patterns *p, const char *s)
{
	char **v = realloc(p->v, (p->n + 1) * sizeof *v);
	if (!v)
		return -1;
	p->v = v;
	if (!(v[p->n] = strdup(s)))
		return -1;
	p->n++;
	return 0;
}

/* The right an option names ("--read" ...), or -1. */
static int right_of(const char *opt)
{
	static const char *const names[RIGHT__COUNT] = { "--read", "--write", "--admin" };
	for (int r = 0; r < RIGHT__COUNT; r++)
		if (!strcmp(opt, names[r]))
			return r;
	return -1;
}

/* Parses the options after "token" into o. Returns -1 to go on, or the
 * exit status: 0 after --help, 2 after an error (printed). */
static int parse_token_args(int argc, char **argv, struct token_opts *o)
{
	for (int i = 2; i < argc; i += 2) {
		const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		const char **str = !strcmp(opt, "--sub") ? &o->sub : !strcmp(opt, "--key") ? &o->key
		                 : !strcmp(opt, "--kid") ? &o->kid : !strcmp(opt, "--config") ? &o->config : NULL;
		int r = right_of(opt);
		if (!strcmp(opt, "--help") || !strcmp(opt, "-h")) {
			token_usage(stdout);
			return 0;
		}
		if (!str && r < 0 && strcmp(opt, "--ttl"))
			return ctl_fail("token: unknown option %s (see --help)", opt);
		if (!val || !*val)
			return ctl_fail("%s needs a value", opt);
		if (str)
			*str = val;
		else if (r >= 0 && push_pattern(&o->rights[r], val))
			return ctl_fail("out of memory");
		else if (r < 0 && parse_duration(val, &o->ttl_s))
			return ctl_fail("--ttl %s: a duration such as 90s, 10m, 2h, 7d or 3600 (at most 36500d)", val);
	}
	if (!o->ttl_s)
		return ctl_fail("--ttl DURATION is required (see --help)");
	if (o->sub && strlen(o->sub) >= sizeof ((struct grant *)0)->sub)
		return ctl_fail("--sub: longer than %zu bytes", sizeof ((struct grant *)0)->sub - 1);
	if (o->kid && strlen(o->kid) >= AUTH_KID_MAX)
		return ctl_fail("--kid: longer than %d bytes", AUTH_KID_MAX - 1);
	return -1;
}

/* The signing key's file: --key, else the first file of auth_key in the
 * configuration (--config, else LMSTREAM_CONFIG; then LMSTREAM_<KEY>).
 * Returns -1 with the name in out, or 2 after an error (printed). */
static int key_path(const struct token_opts *o, char *out, size_t outlen)
{
	static struct config cfg; /* large: not on the stack */
	char err[600];
	const char *file = o->config ? o->config : getenv("LMSTREAM_CONFIG");
	if (o->key) {
		if (strlen(o->key) >= outlen)
			return ctl_fail("--key: the file name is too long");
		strcpy(out, o->key);
		return -1;
	}
	config_defaults(&cfg);
	if ((file && *file && config_load(&cfg, file, err, sizeof err)) || config_env_only(&cfg, err, sizeof err))
		return ctl_fail("%s", err);
	if (auth_key_file(&cfg, 0, out, outlen))
		return ctl_fail("auth_key: the first file name is too long");
	return -1;
}

/* Signs the claims of o with k at now. Returns the token (owned: free) or
 * NULL with why in err. */
static char *mint(const struct token_opts *o, const struct auth_keyfile *k, time_t now, char *err, size_t errlen)
{
	jwt_t *j = NULL;
	char *json = auth_rights_json(o->rights), *token = NULL;
	int e = json ? jwt_new(&j) : ENOMEM;
	if (!e)
		e = jwt_add_header(j, "kid", o->kid ? o->kid : k->kid);
	if (!e)
		e = jwt_add_grant_int(j, "exp", (long)(now + (time_t)o->ttl_s));
	if (!e)
		e = jwt_add_grant_int(j, "iat", (long)now);
	if (!e && o->sub)
		e = jwt_add_grant(j, "sub", o->sub);
	if (!e)
		e = jwt_add_grants_json(j, json);
	if (!e)
		e = jwt_set_alg(j, jwt_str_alg(auth_alg_name(k->alg)), k->key, (int)k->len);
	if (!e && !(token = jwt_encode_str(j)))
		e = errno ? errno : EINVAL;
	if (e)
		snprintf(err, errlen, "cannot sign the token: %s", strerror(e));
	jwt_free(j);
	free(json);
	return token;
}

static void free_opts(struct token_opts *o)
{
	for (int r = 0; r < RIGHT__COUNT; r++)
		patterns_free(&o->rights[r]);
}

/* Signs o with the key file path and prints the token. Returns the exit status. */
static int sign_and_print(const struct token_opts *o, const char *path)
{
	struct auth_keyfile k;
	char err[1200];
	if (auth_keyfile_load(&k, path, 1, err, sizeof err))
		return ctl_fail("%s", err);
	char *token = mint(o, &k, time(NULL), err, sizeof err);
	auth_keyfile_free(&k);
	if (!token)
		return ctl_fail("%s", err);
	int st = puts(token) == EOF || fflush(stdout) ? ctl_fail("cannot write the token: %s", strerror(errno)) : 0;
	free(token);
	return st;
}

/* lmstreamctl token ...: prints one token. Returns the exit status. */
int cmd_token(int argc, char **argv)
{
	struct token_opts o = { 0 };
	char path[2048];
	int st = parse_token_args(argc, argv, &o);
	if (st < 0)
		st = key_path(&o, path, sizeof path);
	if (st < 0)
		st = sign_and_print(&o, path);
	free_opts(&o);
	return st;
}
