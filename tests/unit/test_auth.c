/* test_auth.c: unit tests of src/core/auth.c (keys, auth_verify, patterns) and of lmstreamctl token. */
#include "core/auth.h"
#include "lib/config.h"
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <sys/wait.h>
#include <time.h>

#define T0 1700000000LL /* the "now" of the table rows, in seconds */

static char dir[256];

/* --- files and keys ------------------------------------------------------- */

/* dir/name in a static buffer (one of four, so a few may be used at once). */
static const char *at(const char *name)
{
	static char bufs[4][512];
	static int which;
	char *out = bufs[which++ & 3];
	snprintf(out, sizeof bufs[0], "%s/%s", dir, name);
	return out;
}

static void write_file(const char *name, const void *data, size_t len, mode_t mode)
{
	const char *path = at(name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f)) {
		fprintf(stderr, "cannot write %s\n", path);
		exit(99);
	}
	chmod(path, mode);
}

/* The bytes of dir/name (owned; NUL after *len bytes). Exits when missing. */
static char *read_file(const char *name, size_t *len)
{
	FILE *f = fopen(at(name), "rb");
	char *buf = malloc(70000);
	size_t n = f && buf ? fread(buf, 1, 69999, f) : 0;
	if (!f || !buf || !n) {
		fprintf(stderr, "cannot read %s\n", at(name));
		exit(99);
	}
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
}

static void sh(const char *cmd)
{
	char line[2048];
	snprintf(line, sizeof line, "cd '%s' && %s", dir, cmd);
	if (system(line) != 0) {
		fprintf(stderr, "failed: %s\n", line);
		exit(99);
	}
}

/* A secret: hex of 32 random bytes and a newline (the newline is not part of it). */
static void make_secret(const char *name)
{
	unsigned char raw[32];
	char hex[80];
	if (RAND_bytes(raw, sizeof raw) != 1)
		exit(99);
	for (size_t i = 0; i < sizeof raw; i++)
		snprintf(hex + 2 * i, 3, "%02x", raw[i]);
	strcat(hex, "\n");
	write_file(name, hex, strlen(hex), 0600);
}

/* Every key file the tests use, generated in dir. */
static void make_keys(void)
{
	unsigned char bin[40];
	make_secret("hs.key");
	make_secret("old.key");
	RAND_bytes(bin, sizeof bin);
	bin[5] = 0;
	bin[sizeof bin - 1] = 'x'; /* binary, with a NUL, and no trailing newline */
	write_file("bin.key", bin, sizeof bin, 0600);
	sh("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.pem 2>/dev/null"
	   " && openssl pkey -in rsa.pem -pubout -out rsa.pub"
	   " && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa2.pem 2>/dev/null"
	   " && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.pem"
	   " && openssl pkey -in ec.pem -pubout -out ec.pub"
	   " && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out ec384.pem"
	   " && openssl pkey -in ec384.pem -pubout -out ec384.pub"
	   " && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out rsa1024.pem 2>/dev/null"
	   " && openssl pkey -in rsa1024.pem -pubout -out rsa1024.pub"
	   " && openssl genpkey -algorithm ED25519 -out ed.pem && openssl pkey -in ed.pem -pubout -out ed.pub"
	   " && openssl rsa -in rsa.pem -RSAPublicKey_out -out pkcs1.pub 2>/dev/null"
	   " && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -aes256 -pass pass:x -out enc.pem"
	   " && chmod 600 *.pem && chmod 644 *.pub");
}

/* --- minting -------------------------------------------------------------- */

enum signer {
	S_HS, S_OLD, S_BIN, S_RSA, S_RSA2, S_EC,
	S_RSA_PUB_HMAC,      /* HS256 whose secret is rsa.pub's bytes (libjwt #200) */
	S_RSA_PUB_HMAC_TRIM, /* the same without the trailing newline */
	S_EC_PUB_HMAC,       /* HS256 whose secret is ec.pub's bytes */
	S_NONE,              /* unsigned: {"alg":"none"} */
	S__COUNT
};

static const struct { const char *file; jwt_alg_t alg; int trim; } signers[S__COUNT] = {
	[S_HS] = { "hs.key", JWT_ALG_HS256, 1 },
	[S_OLD] = { "old.key", JWT_ALG_HS256, 1 },
	[S_BIN] = { "bin.key", JWT_ALG_HS256, 0 },
	[S_RSA] = { "rsa.pem", JWT_ALG_RS256, 0 },
	[S_RSA2] = { "rsa2.pem", JWT_ALG_RS256, 0 },
	[S_EC] = { "ec.pem", JWT_ALG_ES256, 0 },
	[S_RSA_PUB_HMAC] = { "rsa.pub", JWT_ALG_HS256, 0 },
	[S_RSA_PUB_HMAC_TRIM] = { "rsa.pub", JWT_ALG_HS256, 1 },
	[S_EC_PUB_HMAC] = { "ec.pub", JWT_ALG_HS256, 0 },
	[S_NONE] = { NULL, JWT_ALG_NONE, 0 },
};

/* base64url of len bytes of s, without padding (owned). */
static char *b64url(const void *s, size_t len)
{
	char *out = malloc(4 * (len / 3 + 1) + 1);
	int n = EVP_EncodeBlock((unsigned char *)out, s, (int)len);
	while (n > 0 && out[n - 1] == '=')
		n--;
	out[n] = '\0';
	for (char *p = out; *p; p++)
		*p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
	return out;
}

/* A token of header_json and claims_json with an empty signature (owned). */
static char *unsigned_token(const char *header_json, const char *claims)
{
	char *h = b64url(header_json, strlen(header_json)), *p = b64url(claims, strlen(claims));
	char *t = malloc(strlen(h) + strlen(p) + 3);
	sprintf(t, "%s.%s.", h, p);
	free(h);
	free(p);
	return t;
}

/* A token of claims (a JSON object) signed by who, with header kid (NULL:
 * none). Owned. */
static char *mint(enum signer who, const char *kid, const char *claims)
{
	jwt_t *j = NULL;
	size_t len = 0;
	char *key = NULL, *t;
	if (who == S_NONE)
		return unsigned_token(kid ? "{\"alg\":\"none\",\"kid\":\"hs\"}" : "{\"alg\":\"none\"}", claims);
	key = read_file(signers[who].file, &len);
	while (signers[who].trim && len && (key[len - 1] == '\n' || key[len - 1] == '\r'))
		len--;
	if (jwt_new(&j) || jwt_add_grants_json(j, claims) || (kid && jwt_add_header(j, "kid", kid)) ||
	    jwt_set_alg(j, signers[who].alg, (unsigned char *)key, (int)len) || !(t = jwt_encode_str(j))) {
		fprintf(stderr, "cannot mint %s\n", claims);
		exit(99);
	}
	jwt_free(j);
	free(key);
	return t;
}

/* Opens the keys of auth_key, a list of names in dir (or "" for the default
 * dir/auth.key). Returns auth_open's result; err gets its reason. */
static int open_keys(const char *names, struct auth **a, char *err, size_t errlen)
{
	static struct config cfg;
	char list[sizeof cfg.auth_key] = "";
	config_defaults(&cfg);
	snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", dir);
	for (const char *s = names; *(s += strspn(s, " "));) {
		size_t n = strcspn(s, " ");
		snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s/%.*s", *list ? " " : "", dir, (int)n, s);
		s += n;
	}
	if (!*names && strlen(names))
		snprintf(list, sizeof list, "%s", names); /* only spaces: kept as is */
	snprintf(cfg.auth_key, sizeof cfg.auth_key, "%s", list);
	err[0] = '\0';
	return auth_open(a, &cfg, err, errlen);
}

/* --- auth_verify: the table ----------------------------------------------- */

static const struct vrow {
	int line;
	const char *keys;     /* auth_key: names in dir */
	enum signer who;
	const char *kid;      /* the header's kid; NULL: none */
	const char *claims;
	long long now;        /* seconds */
	int skew;
	const char *why;      /* NULL: accepted */
} vrows[] = {
	/* Each algorithm, with and without kid. */
	{ __LINE__, "hs.key", S_HS, "hs", "{\"exp\":1700000100}", T0, 30, NULL },
	{ __LINE__, "rsa.pub", S_RSA, "rsa", "{\"exp\":1700000100}", T0, 30, NULL },
	{ __LINE__, "ec.pub", S_EC, "ec", "{\"exp\":1700000100}", T0, 30, NULL },
	{ __LINE__, "bin.key", S_BIN, NULL, "{\"exp\":1700000100}", T0, 30, NULL },
	{ __LINE__, "hs.key rsa.pub ec.pub", S_HS, NULL, "{\"exp\":1700000100}", T0, 30, NULL },
	{ __LINE__, "hs.key rsa.pub ec.pub", S_RSA, NULL, "{\"exp\":1700000100}", T0, 30, NULL },
	{ __LINE__, "hs.key rsa.pub ec.pub", S_EC, NULL, "{\"exp\":1700000100}", T0, 30, NULL },
	{ __LINE__, "hs.key rsa.pub ec.pub", S_EC, "ec", "{\"exp\":1700000100}", T0, 30, NULL },
	{ __LINE__, "pkcs1.pub", S_RSA, NULL, "{\"exp\":1700000100}", T0, 30, NULL },
	{ __LINE__, "pkcs1.pub", S_RSA, "pkcs1", "{\"exp\":1700000100}", T0, 30, NULL },
	/* exp and nbf, with skew: expired from exp + skew on, valid from nbf - skew on. */
	{ __LINE__, "hs.key", S_HS, "hs", "{\"exp\":1699999900}", T0, 30, "expired" },
	{ __LINE__, "hs.key", S_HS, "hs", "{\"exp\":1699999990}", T0, 30, NULL },
	{ __LINE__, "hs.key", S_HS, "hs", "{\"exp\":1699999971}", T0, 30, NULL },
	{ __LINE__, "hs.key", S_HS, "hs", "{\"exp\":1699999970}", T0, 30, "expired" },
	{ __LINE__, "hs.key", S_HS, "hs", "{\"exp\":1700000000}", T0, 0, "expired" },
	{ __LINE__, "hs.key", S_HS, "hs", "{\"exp\":1700000001}", T0, 0, NULL },
	{ __LINE__, "hs.key", S_HS, "hs", "{\"exp\":1700000001.5}", T0, 0, NULL },
	{ __LINE__, "hs.key", S_HS, "hs", "{\"exp\":1700000100,\"nbf\":1700000100}", T0, 30, "not yet valid" },
	{ __LINE__, "hs.key", S_HS, "hs", "{\"exp\":1700000100,\"nbf\":1700000031}", T0, 30, "not yet valid" },
	{ __LINE__, "hs.key", S_HS, "hs", "{\"exp\":1700000100,\"nbf\":1700000030}", T0, 30, NULL },
	{ __LINE__, "hs.key", S_HS, "hs", "{\"exp\":1700000100,\"nbf\":1700000010}", T0, 30, NULL },
	{ __LINE__, "hs.key", S_HS, "hs", "{\"exp\":1700000100,\"nbf\":1700000001}", T0, 0, "not yet valid" },
	{ __LINE__, "hs.key", S_HS, "hs", "{\"exp\":1700000100,\"nbf\":1699999000}", T0, 0, NULL },
	{ __LINE__, "hs.key", S_HS, "hs", "{\"exp\":1700000100,\"nbf\":\"1699999000\"}", T0, 0, "bad nbf" },
	{ __LINE__, "hs.key", S_HS, "hs", "{}", T0, 30, "no exp" },
	{ __LINE__, "hs.key", S_HS, "hs", "{\"nbf\":1600000000}", T0, 30, "no exp" },
	{ __LINE__, "hs.key", S_HS, "hs", "{\"exp\":\"1700000100\"}", T0, 30, "no exp" },
	{ __LINE__, "hs.key", S_HS, "hs", "{\"exp\":null}", T0, 30, "no exp" },
	{ __LINE__, "hs.key", S_HS, "hs", "{\"exp\":-1}", T0, 30, "no exp" },
	{ __LINE__, "hs.key", S_HS, "hs", "{\"exp\":1e300}", T0, 30, "no exp" },
	/* Wrong keys and algorithms. */
	{ __LINE__, "hs.key", S_OLD, "hs", "{\"exp\":1700000100}", T0, 30, "bad signature" },
	{ __LINE__, "hs.key", S_OLD, NULL, "{\"exp\":1700000100}", T0, 30, "bad signature" },
	{ __LINE__, "rsa.pub", S_RSA2, "rsa", "{\"exp\":1700000100}", T0, 30, "bad signature" },
	{ __LINE__, "hs.key", S_RSA, NULL, "{\"exp\":1700000100}", T0, 30, "bad signature" },
	{ __LINE__, "hs.key", S_RSA, "hs", "{\"exp\":1700000100}", T0, 30, "bad signature" },
	{ __LINE__, "rsa.pub", S_EC, NULL, "{\"exp\":1700000100}", T0, 30, "bad signature" },
	/* libjwt #200: an HS256 token whose secret is the configured public key. */
	{ __LINE__, "rsa.pub", S_RSA_PUB_HMAC, "rsa", "{\"exp\":1700000100}", T0, 30, "bad signature" },
	{ __LINE__, "rsa.pub", S_RSA_PUB_HMAC, NULL, "{\"exp\":1700000100}", T0, 30, "bad signature" },
	{ __LINE__, "rsa.pub", S_RSA_PUB_HMAC_TRIM, NULL, "{\"exp\":1700000100}", T0, 30, "bad signature" },
	{ __LINE__, "hs.key rsa.pub", S_RSA_PUB_HMAC, "rsa", "{\"exp\":1700000100}", T0, 30, "bad signature" },
	{ __LINE__, "ec.pub", S_EC_PUB_HMAC, NULL, "{\"exp\":1700000100}", T0, 30, "bad signature" },
	/* alg none. */
	{ __LINE__, "hs.key", S_NONE, NULL, "{\"exp\":1700000100}", T0, 30, "alg none" },
	{ __LINE__, "hs.key", S_NONE, "hs", "{\"exp\":1700000100}", T0, 30, "alg none" },
	/* kid: rotation and unknown ids. */
	{ __LINE__, "old.key hs.key", S_OLD, "old", "{\"exp\":1700000100}", T0, 30, NULL },
	{ __LINE__, "old.key hs.key", S_HS, "hs", "{\"exp\":1700000100}", T0, 30, NULL },
	{ __LINE__, "old.key hs.key", S_OLD, NULL, "{\"exp\":1700000100}", T0, 30, NULL },
	{ __LINE__, "old.key hs.key", S_OLD, "hs", "{\"exp\":1700000100}", T0, 30, "bad signature" },
	{ __LINE__, "hs.key", S_OLD, "old", "{\"exp\":1700000100}", T0, 30, "unknown key" },
	{ __LINE__, "hs.key", S_HS, "nope", "{\"exp\":1700000100}", T0, 30, "unknown key" },
	{ __LINE__, "hs.key", S_HS, "", "{\"exp\":1700000100}", T0, 30, "unknown key" },
	{ __LINE__, "hs.key rsa.pub", S_HS, "rsa", "{\"exp\":1700000100}", T0, 30, "bad signature" },
	/* The lmstream claim and sub. */
	{ __LINE__, "hs.key", S_HS, "hs", "{\"exp\":1700000100,\"lmstream\":{}}", T0, 30, NULL },
	{ __LINE__, "hs.key", S_HS, "hs", "{\"exp\":1700000100,\"lmstream\":{\"read\":[]}}", T0, 30, NULL },
	{ __LINE__, "hs.key", S_HS, "hs", "{\"exp\":1700000100,\"lmstream\":5}", T0, 30, "malformed lmstream claim" },
	{ __LINE__, "hs.key", S_HS, "hs", "{\"exp\":1700000100,\"lmstream\":[\"a\"]}", T0, 30, "malformed lmstream claim" },
	{ __LINE__, "hs.key", S_HS, "hs", "{\"exp\":1700000100,\"lmstream\":\"a/*\"}", T0, 30, "malformed lmstream claim" },
	{ __LINE__, "hs.key", S_HS, "hs", "{\"exp\":1700000100,\"lmstream\":null}", T0, 30, "malformed lmstream claim" },
	{ __LINE__, "hs.key", S_HS, "hs", "{\"exp\":1700000100,\"lmstream\":{\"read\":\"a\"}}", T0, 30,
	  "malformed lmstream claim" },
	{ __LINE__, "hs.key", S_HS, "hs", "{\"exp\":1700000100,\"lmstream\":{\"read\":null}}", T0, 30,
	  "malformed lmstream claim" },
	{ __LINE__, "hs.key", S_HS, "hs", "{\"exp\":1700000100,\"lmstream\":{\"read\":[\"a\",1]}}", T0, 30,
	  "malformed lmstream claim" },
	{ __LINE__, "hs.key", S_HS, "hs", "{\"exp\":1700000100,\"lmstream\":{\"write\":[[\"a\"]]}}", T0, 30,
	  "malformed lmstream claim" },
	{ __LINE__, "hs.key", S_HS, "hs", "{\"exp\":1700000100,\"lmstream\":{\"delete\":[\"a\"]}}", T0, 30,
	  "malformed lmstream claim" },
	{ __LINE__, "hs.key", S_HS, "hs", "{\"exp\":1700000100,\"sub\":42}", T0, 30, "malformed sub" },
	{ __LINE__, "hs.key", S_HS, "hs", "{\"exp\":1700000100,\"sub\":\"\"}", T0, 30, NULL },
};

static void test_verify_table(void)
{
	for (size_t i = 0; i < NELEM(vrows); i++) {
		const struct vrow *r = &vrows[i];
		struct auth *a = NULL;
		char err[600];
		struct grant g;
		const char *why = "unset";
		CHECK_INT_AT(r->line, open_keys(r->keys, &a, err, sizeof err), 0);
		if (!a) {
			printf("%d: %s\n", r->line, err);
			continue;
		}
		char *t = mint(r->who, r->kid, r->claims);
		int rc = auth_verify(a, t, r->now * 1000, r->skew, &g, &why);
		CHECK_INT_AT(r->line, rc, r->why ? -1 : 0);
		CHECK_STR_AT(r->line, why, r->why);
		CHECK_AT(r->line, !why || !strstr(why, t));
		if (rc == 0)
			grant_free(&g);
		else
			CHECK_AT(r->line, g.sub[0] == '\0' && g.exp_ms == 0 && !g.rights[RIGHT_READ].v);
		free(t);
		auth_close(a);
	}
}

/* --- malformed and tampered tokens ---------------------------------------- */

static const struct {
	int line;
	const char *header;   /* JSON of the header; NULL: token is used as is */
	const char *token;
	const char *why;
} grows[] = {
	{ __LINE__, NULL, "", "no token" },
	{ __LINE__, NULL, "a", "malformed token" },
	{ __LINE__, NULL, "a.b", "malformed token" },
	{ __LINE__, NULL, "a.b.c.d", "malformed token" },
	{ __LINE__, NULL, "a.b.c", "malformed token" },
	{ __LINE__, NULL, "..", "malformed token" },
	{ __LINE__, NULL, ".b.c", "malformed token" },
	{ __LINE__, NULL, "a..c", "malformed token" },
	{ __LINE__, NULL, "eyJhbGciOiJIUzI1NiJ9.e30.abc ", "malformed token" },
	{ __LINE__, NULL, "eyJhbGciOiJIUzI1NiJ9.e30=.abc", "malformed token" },
	{ __LINE__, NULL, "eyJhbGciOiJIUzI1NiJ9.e30.a+c", "malformed token" },
	{ __LINE__, NULL, "eyJhbGciOiJIUzI1NiJ9.e30.a\nc", "malformed token" },
	{ __LINE__, NULL, "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.abc", "malformed token" }, /* payload "not json" */
	{ __LINE__, "{}", NULL, "malformed token" },
	{ __LINE__, "[]", NULL, "malformed token" },
	{ __LINE__, "{\"alg\":5}", NULL, "malformed token" },
	{ __LINE__, "{\"alg\":\"HS512\"}", NULL, "unsupported alg" },
	{ __LINE__, "{\"alg\":\"RS384\"}", NULL, "unsupported alg" },
	{ __LINE__, "{\"alg\":\"hs256\"}", NULL, "unsupported alg" },
	{ __LINE__, "{\"alg\":\"XS256\"}", NULL, "malformed token" },
	{ __LINE__, "{\"alg\":\"None\"}", NULL, "alg none" },
	{ __LINE__, "{\"alg\":\"NONE\",\"kid\":\"hs\"}", NULL, "alg none" },
	{ __LINE__, "{\"alg\":\"HS256\",\"kid\":5}", NULL, "malformed kid" },
	{ __LINE__, "{\"alg\":\"HS256\",\"typ\":\"XYZ\"}", NULL, "malformed token" },
	{ __LINE__, "{\"alg\":\"HS256\",\"alg\":\"RS256\"}", NULL, "bad signature" },
	/* No signature at all: libjwt 1.10 would write past a malloc(0) decoding
	 * an empty RS256/ES256 one (valgrind sees it), so it never gets them. */
	{ __LINE__, "{\"alg\":\"HS256\"}", NULL, "bad signature" },
	{ __LINE__, "{\"alg\":\"RS256\"}", NULL, "bad signature" },
	{ __LINE__, "{\"alg\":\"ES256\"}", NULL, "bad signature" },
	{ __LINE__, "{\"alg\":\"ES256\",\"kid\":\"ec\"}", NULL, "bad signature" },
};

static void test_garbage(void)
{
	struct auth *a = NULL;
	char err[600];
	struct grant g;
	const char *why;
	CHECK_INT(open_keys("hs.key rsa.pub ec.pub", &a, err, sizeof err), 0);
	for (size_t i = 0; a && i < NELEM(grows); i++) {
		char *t = grows[i].header ? unsigned_token(grows[i].header, "{\"exp\":1700000100}")
		                          : strdup(grows[i].token);
		CHECK_INT_AT(grows[i].line, auth_verify(a, t, T0 * 1000, 30, &g, &why), -1);
		CHECK_STR_AT(grows[i].line, why, grows[i].why);
		free(t);
	}
	/* Long tokens: refused before any decoding. */
	static const size_t lens[] = { 4097, 5000, 100000 };
	for (size_t i = 0; a && i < NELEM(lens); i++) {
		char *t = malloc(lens[i] + 1);
		memset(t, 'a', lens[i]);
		t[lens[i]] = '\0';
		t[10] = t[20] = '.';
		CHECK_INT(auth_verify(a, t, T0 * 1000, 30, &g, &why), -1);
		CHECK_STR(why, "token too long");
		free(t);
	}
	CHECK_INT(auth_verify(a, NULL, T0 * 1000, 30, &g, &why), -1);
	CHECK_STR(why, "no token");
	auth_close(a);
}

/* The parts of token split at its dots: ends[0], ends[1] are the dots. */
static void split(const char *t, size_t dots[2])
{
	dots[0] = strchr(t, '.') - t;
	dots[1] = strchr(t + dots[0] + 1, '.') - t;
}

static void test_tampered(void)
{
	static const struct { int line; enum signer who; const char *keys, *kid; } rows[] = {
		{ __LINE__, S_HS, "hs.key", "hs" },
		{ __LINE__, S_RSA, "rsa.pub", "rsa" },
		{ __LINE__, S_EC, "ec.pub", "ec" },
	};
	for (size_t i = 0; i < NELEM(rows); i++) {
		int line = rows[i].line;
		struct auth *a = NULL;
		char err[600], spliced[8192];
		struct grant g;
		const char *why;
		size_t d1[2], d2[2];
		CHECK_INT_AT(line, open_keys(rows[i].keys, &a, err, sizeof err), 0);
		char *t1 = mint(rows[i].who, rows[i].kid, "{\"exp\":1700000100,\"lmstream\":{\"read\":[\"a\"]}}");
		char *t2 = mint(rows[i].who, rows[i].kid, "{\"exp\":1700000100,\"lmstream\":{\"read\":[\"**\"]}}");
		split(t1, d1);
		split(t2, d2);
		CHECK_INT_AT(line, auth_verify(a, t1, T0 * 1000, 30, &g, &why), 0);
		grant_free(&g);
		/* t1's header and signature around t2's payload. */
		snprintf(spliced, sizeof spliced, "%.*s%.*s%s", (int)d1[0], t1, (int)(d2[1] - d2[0]), t2 + d2[0],
		         t1 + d1[1]);
		CHECK_INT_AT(line, auth_verify(a, spliced, T0 * 1000, 30, &g, &why), -1);
		CHECK_STR_AT(line, why, "bad signature");
		/* One character of the signature changed, in its middle. */
		size_t mid = d1[1] + 1 + (strlen(t1) - d1[1]) / 2;
		t1[mid] = t1[mid] == 'A' ? 'B' : 'A';
		CHECK_INT_AT(line, auth_verify(a, t1, T0 * 1000, 30, &g, &why), -1);
		CHECK_STR_AT(line, why, "bad signature");
		/* No signature, and a truncated one. */
		t1[d1[1] + 1] = '\0';
		CHECK_INT_AT(line, auth_verify(a, t1, T0 * 1000, 30, &g, &why), -1);
		CHECK_STR_AT(line, why, "bad signature");
		t2[strlen(t2) - 4] = '\0';
		CHECK_INT_AT(line, auth_verify(a, t2, T0 * 1000, 30, &g, &why), -1);
		CHECK_STR_AT(line, why, "bad signature");
		free(t1);
		free(t2);
		auth_close(a);
	}
}

/* --- what a grant carries ------------------------------------------------- */

static void test_grant(void)
{
	static const struct { int line; const char *path; int read, write, admin; } rows[] = {
		{ __LINE__, "a", 0, 0, 0 },
		{ __LINE__, "a/x", 1, 0, 0 },
		{ __LINE__, "a/x/y", 0, 0, 0 },
		{ __LINE__, "b", 1, 1, 0 },
		{ __LINE__, "b/c/d", 1, 1, 0 },
		{ __LINE__, "bb/c", 0, 0, 0 },
		{ __LINE__, "c", 0, 0, 1 },
		{ __LINE__, "c/d", 0, 0, 0 },
		{ __LINE__, "users/7/inbox", 1, 0, 1 },
		{ __LINE__, "users/7/inbox/x", 1, 0, 0 },
	};
	struct auth *a = NULL;
	char err[600];
	struct grant g;
	const char *why;
	CHECK_INT(open_keys("hs.key", &a, err, sizeof err), 0);
	char *t = mint(S_HS, "hs", "{\"exp\":1700000100,\"sub\":\"alice\",\"lmstream\":{\"read\":[\"a/*\",\"b/**\","
	               "\"users/*/**\"],\"write\":[\"b/**\"],\"admin\":[\"c\",\"users/*/inbox\"]}}");
	CHECK_INT(auth_verify(a, t, T0 * 1000, 30, &g, &why), 0);
	CHECK_STR(g.sub, "alice");
	CHECK_INT(g.exp_ms, 1700000100000LL);
	CHECK_UINT(g.rights[RIGHT_READ].n, 3);
	CHECK_UINT(g.rights[RIGHT_WRITE].n, 1);
	CHECK_UINT(g.rights[RIGHT_ADMIN].n, 2);
	for (size_t i = 0; i < NELEM(rows); i++) {
		size_t n = strlen(rows[i].path);
		CHECK_INT_AT(rows[i].line, patterns_match(&g.rights[RIGHT_READ], rows[i].path, n), rows[i].read);
		CHECK_INT_AT(rows[i].line, patterns_match(&g.rights[RIGHT_WRITE], rows[i].path, n), rows[i].write);
		CHECK_INT_AT(rows[i].line, patterns_match(&g.rights[RIGHT_ADMIN], rows[i].path, n), rows[i].admin);
	}
	grant_free(&g);
	CHECK(g.rights[RIGHT_READ].n == 0 && g.rights[RIGHT_READ].v == NULL);
	free(t);
	/* Without the claim: no rights, no sub. */
	t = mint(S_HS, "hs", "{\"exp\":1700000100}");
	CHECK_INT(auth_verify(a, t, T0 * 1000, 30, &g, &why), 0);
	CHECK_STR(g.sub, "");
	for (int r = 0; r < RIGHT__COUNT; r++)
		CHECK_INT_AT(r, patterns_match(&g.rights[r], "a", 1), 0);
	grant_free(&g);
	free(t);
	auth_close(a);
}

static void test_sub_cut(void)
{
	static const struct { int line; size_t ascii; const char *tail; size_t want; } rows[] = {
		{ __LINE__, 127, "", 127 },
		{ __LINE__, 200, "", 127 },
		{ __LINE__, 126, "\xc3\xa9", 126 },          /* é would end at byte 128 */
		{ __LINE__, 125, "\xc3\xa9", 127 },          /* é fits */
		{ __LINE__, 125, "\xe2\x82\xac", 125 },      /* € would end at byte 128 */
		{ __LINE__, 124, "\xf0\x9f\x98\x80", 124 },  /* a 4-byte character */
	};
	struct auth *a = NULL;
	char err[600], claims[600], sub[300];
	struct grant g;
	const char *why;
	CHECK_INT(open_keys("hs.key", &a, err, sizeof err), 0);
	for (size_t i = 0; i < NELEM(rows); i++) {
		memset(sub, 'x', rows[i].ascii);
		strcpy(sub + rows[i].ascii, rows[i].tail);
		snprintf(claims, sizeof claims, "{\"exp\":1700000100,\"sub\":\"%s\"}", sub);
		char *t = mint(S_HS, "hs", claims);
		CHECK_INT_AT(rows[i].line, auth_verify(a, t, T0 * 1000, 30, &g, &why), 0);
		CHECK_UINT_AT(rows[i].line, strlen(g.sub), rows[i].want);
		CHECK_AT(rows[i].line, !memcmp(g.sub, sub, rows[i].want));
		grant_free(&g);
		free(t);
	}
	auth_close(a);
}

/* --- patterns ------------------------------------------------------------- */

static void test_patterns(void)
{
	static const struct { int line; const char *list; size_t n; const char *path; int match; } rows[] = {
		{ __LINE__, "", 0, "a", 0 },
		{ __LINE__, "   \t ", 0, "a", 0 },
		{ __LINE__, "a", 1, "a", 1 },
		{ __LINE__, " a  b/* ", 2, "b/c", 1 },
		{ __LINE__, " a  b/* ", 2, "b/c/d", 0 },
		{ __LINE__, "\ta\tb/**\t", 2, "b/c/d", 1 },
		{ __LINE__, "**", 1, "x/y/z", 1 },
		{ __LINE__, "*", 1, "x", 1 },
		{ __LINE__, "*", 1, "x/y", 0 },
		{ __LINE__, "chat/*/messages", 1, "chat/room1/messages", 1 },
		{ __LINE__, "chat/*/messages", 1, "chat/room1/other", 0 },
	};
	for (size_t i = 0; i < NELEM(rows); i++) {
		struct patterns p;
		CHECK_INT_AT(rows[i].line, patterns_parse(&p, rows[i].list), 0);
		CHECK_UINT_AT(rows[i].line, p.n, rows[i].n);
		CHECK_INT_AT(rows[i].line, patterns_match(&p, rows[i].path, strlen(rows[i].path)), rows[i].match);
		patterns_free(&p);
		CHECK_AT(rows[i].line, p.n == 0 && p.v == NULL);
	}
	struct patterns p;
	CHECK_INT(patterns_parse(&p, NULL), 0);
	CHECK_UINT(p.n, 0);
	patterns_free(&p);
}

/* --- auth_open ------------------------------------------------------------ */

static void make_bad_files(void)
{
	char big[70000];
	memset(big, 'k', sizeof big);
	write_file("short.key", "0123456789abcdef0123456789abcde\n", 32, 0600);     /* 31 bytes and LF */
	write_file("exact.key", "0123456789abcdef0123456789abcdef\r\n", 34, 0600);  /* 32 bytes and CRLF */
	write_file("ww.key", "0123456789abcdef0123456789abcdef", 32, 0666);
	write_file("gw.key", "0123456789abcdef0123456789abcdef", 32, 0620);
	write_file("empty.key", "", 0, 0600);
	write_file("big.key", big, sizeof big, 0600);
	write_file("junk.pem", "-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n", 62, 0644);
	write_file("hs.txt", "0123456789abcdef0123456789abcdef", 32, 0600); /* kid "hs", as hs.key */
	mkdir(at("sub.key"), 0700);
	mkfifo(at("fifo.key"), 0600);
	mkdir(at("default"), 0700);
	mkdir(at("nodefault"), 0700);
	write_file("default/auth.key", "0123456789abcdef0123456789abcdef", 32, 0600);
}

static void test_open(void)
{
	static const struct {
		int line;
		const char *keys;  /* names in dir; "@X": the default auth.key of data_dir dir/X */
		size_t nkeys;      /* 0: refused */
		const char *err;   /* part of the reason */
	} rows[] = {
		{ __LINE__, "hs.key rsa.pub ec.pub old.key", 4, NULL },
		{ __LINE__, "exact.key", 1, NULL },
		{ __LINE__, "@default", 1, NULL },
		{ __LINE__, "@nodefault", 0, "/nodefault/auth.key: No such file or directory" },
		{ __LINE__, "missing.key", 0, "/missing.key: No such file or directory" },
		{ __LINE__, "hs.key missing.key", 0, "/missing.key: No such file or directory" },
		{ __LINE__, "short.key", 0, "/short.key: a secret of 31 bytes: at least 32" },
		{ __LINE__, "empty.key", 0, "/empty.key: a secret of 0 bytes" },
		{ __LINE__, "big.key", 0, "/big.key: larger than 64 KiB" },
		{ __LINE__, "ww.key", 0, "/ww.key: writable by group or others" },
		{ __LINE__, "gw.key", 0, "/gw.key: writable by group or others" },
		{ __LINE__, "sub.key", 0, "/sub.key: not a regular file" },
		{ __LINE__, "fifo.key", 0, "/fifo.key: not a regular file" },
		{ __LINE__, "ec384.pub", 0, "/ec384.pub: EC key on curve secp384r1: only P-256" },
		{ __LINE__, "rsa1024.pub", 0, "/rsa1024.pub: RSA key of 1024 bits: at least 2048" },
		{ __LINE__, "ed.pub", 0, "/ed.pub: ED25519 key: only RSA (RS256) and EC P-256" },
		{ __LINE__, "rsa.pem", 0, "/rsa.pem: a private key: lmstream verifies with the public key" },
		{ __LINE__, "enc.pem", 0, "/enc.pem: a private key" },
		{ __LINE__, "pkcs1.pub", 1, NULL }, /* "BEGIN RSA PUBLIC KEY": OpenSSL 3 (and so libjwt) reads it */
		{ __LINE__, "junk.pem", 0, "/junk.pem: a PEM file without a public key" },
		{ __LINE__, "hs.key hs.txt", 0, "/hs.txt: key id \"hs\" is another key file's too" },
		{ __LINE__, "hs.key hs.key", 0, "key id \"hs\"" },
	};
	for (size_t i = 0; i < NELEM(rows); i++) {
		int line = rows[i].line;
		struct auth *a = NULL;
		char err[600];
		int rc;
		if (rows[i].keys[0] == '@') {
			struct config cfg;
			config_defaults(&cfg);
			snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", at(rows[i].keys + 1));
			cfg.auth_key[0] = '\0';
			rc = auth_open(&a, &cfg, err, sizeof err);
		} else {
			rc = open_keys(rows[i].keys, &a, err, sizeof err);
		}
		CHECK_INT_AT(line, rc, rows[i].nkeys ? 0 : -1);
		CHECK_UINT_AT(line, auth_nkeys(a), rows[i].nkeys);
		if (rows[i].err) {
			CHECK_AT(line, strstr(err, rows[i].err) != NULL);
			CHECK_AT(line, !strchr(err, '\n'));
			if (!strstr(err, rows[i].err))
				printf("  got: %s\n", err);
		}
		CHECK_AT(line, rc == 0 ? a != NULL : a == NULL);
		auth_close(a);
	}
	auth_close(NULL);
}

static void test_key_file(void)
{
	static struct config cfg;
	char out[64];
	config_defaults(&cfg);
	snprintf(cfg.data_dir, sizeof cfg.data_dir, "/d");
	snprintf(cfg.auth_key, sizeof cfg.auth_key, "  a.key\t b.pub ");
	CHECK_INT(auth_key_file(&cfg, 0, out, sizeof out), 0);
	CHECK_STR(out, "a.key");
	CHECK_INT(auth_key_file(&cfg, 1, out, sizeof out), 0);
	CHECK_STR(out, "b.pub");
	CHECK_INT(auth_key_file(&cfg, 2, out, sizeof out), 1);
	CHECK_INT(auth_key_file(&cfg, 0, out, 5), -1);
	snprintf(cfg.auth_key, sizeof cfg.auth_key, "   ");
	CHECK_INT(auth_key_file(&cfg, 0, out, sizeof out), 0);
	CHECK_STR(out, "/d/auth.key");
	CHECK_INT(auth_key_file(&cfg, 1, out, sizeof out), 1);
	/* Key ids: no directory, no last extension; a leading dot is no extension. */
	static const struct { int line; const char *file; int private_key; const char *kid; int alg; size_t len; } ids[] = {
		{ __LINE__, "hs.key", 0, "hs", AUTH_HS256, 64 },
		{ __LINE__, "hs.key", 1, "hs", AUTH_HS256, 64 },
		{ __LINE__, "bin.key", 0, "bin", AUTH_HS256, 40 },
		{ __LINE__, "exact.key", 0, "exact", AUTH_HS256, 32 },
		{ __LINE__, "default/auth.key", 0, "auth", AUTH_HS256, 32 },
		{ __LINE__, "rsa.pub", 0, "rsa", AUTH_RS256, 0 },
		{ __LINE__, "rsa.pem", 1, "rsa", AUTH_RS256, 0 },
		{ __LINE__, "ec.pub", 0, "ec", AUTH_ES256, 0 },
		{ __LINE__, "ec.pem", 1, "ec", AUTH_ES256, 0 },
	};
	for (size_t i = 0; i < NELEM(ids); i++) {
		struct auth_keyfile k;
		char err[600];
		CHECK_INT_AT(ids[i].line, auth_keyfile_load(&k, at(ids[i].file), ids[i].private_key, err, sizeof err), 0);
		CHECK_STR_AT(ids[i].line, k.kid, ids[i].kid);
		CHECK_INT_AT(ids[i].line, k.alg, ids[i].alg);
		if (ids[i].len)
			CHECK_UINT_AT(ids[i].line, k.len, ids[i].len);
		auth_keyfile_free(&k);
	}
	char *json = auth_rights_json((struct patterns[RIGHT__COUNT]){ { 0, NULL } });
	CHECK_STR(json, "{}");
	free(json);
}

/* --- many threads, one struct auth ---------------------------------------- */

struct thread_arg {
	const struct auth *a;
	char *tokens[4];      /* HS, RS, ES accepted; the last refused */
	int bad;
};

static void *verify_many(void *p)
{
	struct thread_arg *arg = p;
	for (int i = 0; i < 40; i++) {
		struct grant g;
		const char *why;
		int k = i % 4;
		int rc = auth_verify(arg->a, arg->tokens[k], T0 * 1000, 30, &g, &why);
		if (rc != (k == 3 ? -1 : 0) || (rc == 0 && strcmp(g.sub, "t")))
			__atomic_add_fetch(&arg->bad, 1, __ATOMIC_RELAXED);
		if (rc == 0)
			grant_free(&g);
	}
	return NULL;
}

static void test_threads(void)
{
	struct thread_arg arg = { 0 };
	struct auth *a = NULL;
	char err[600];
	pthread_t th[6];
	const char *claims = "{\"exp\":1700000100,\"sub\":\"t\",\"lmstream\":{\"read\":[\"**\"]}}";
	CHECK_INT(open_keys("hs.key rsa.pub ec.pub", &a, err, sizeof err), 0);
	arg.a = a;
	arg.tokens[0] = mint(S_HS, "hs", claims);
	arg.tokens[1] = mint(S_RSA, NULL, claims);
	arg.tokens[2] = mint(S_EC, "ec", claims);
	arg.tokens[3] = mint(S_RSA_PUB_HMAC, NULL, claims);
	for (size_t i = 0; i < NELEM(th); i++)
		CHECK_INT(pthread_create(&th[i], NULL, verify_many, &arg), 0);
	for (size_t i = 0; i < NELEM(th); i++)
		pthread_join(th[i], NULL);
	CHECK_INT(arg.bad, 0);
	for (int i = 0; i < 4; i++)
		free(arg.tokens[i]);
	auth_close(a);
}

/* --- lmstreamctl token ---------------------------------------------------- */

extern char **environ;

/* Runs lmstreamctl with args ("@x" stands for dir/x) and, in its
 * environment, no LMSTREAM_ variable but env (NULL: none). Returns the exit
 * status with stdout and stderr in out and errout. */
static int run_ctl(const char *const *args, const char *env, char *out, size_t cap, char *errout, size_t ecap)
{
	const char *ctl = getenv("LMSTREAMCTL") ? getenv("LMSTREAMCTL") : "src/lmstreamctl";
	char *argv[32], *envp[512], envbuf[1024], errfile[512];
	size_t n = 0, e = 0;
	argv[n++] = (char *)ctl;
	for (size_t i = 0; args[i] && n + 1 < NELEM(argv); i++)
		argv[n++] = args[i][0] == '@' ? strdup(at(args[i] + 1)) : strdup(args[i]);
	argv[n] = NULL;
	for (char **v = environ; *v && e + 2 < NELEM(envp); v++)
		if (strncmp(*v, "LMSTREAM_", 9))
			envp[e++] = *v;
	if (env) {
		/* "NAME=@x": the value is dir/x. */
		const char *eq = strchr(env, '=');
		snprintf(envbuf, sizeof envbuf, "%.*s%s", (int)(eq - env + 1), env, eq[1] == '@' ? at(eq + 2) : eq + 1);
		envp[e++] = envbuf;
	}
	envp[e] = NULL;
	snprintf(errfile, sizeof errfile, "%s", at("ctl.err"));
	int fds[2], status = -1;
	if (pipe(fds))
		exit(99);
	pid_t pid = fork();
	if (pid == 0) {
		int ef = open(errfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fds[1], 1);
		dup2(ef, 2);
		close(fds[0]);
		execve(ctl, argv, envp);
		fprintf(stderr, "cannot run %s: %s\n", ctl, strerror(errno));
		_exit(127);
	}
	close(fds[1]);
	size_t got = 0;
	ssize_t r;
	while ((r = read(fds[0], out + got, cap - 1 - got)) > 0)
		got += (size_t)r;
	out[got] = '\0';
	close(fds[0]);
	waitpid(pid, &status, 0);
	for (size_t i = 1; i < n; i++)
		free(argv[i]);
	FILE *f = fopen(errfile, "r");
	size_t en = f ? fread(errout, 1, ecap - 1, f) : 0;
	errout[en] = '\0';
	if (f)
		fclose(f);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

#define X20 "xxxxxxxxxxxxxxxxxxxx"
#define X200 X20 X20 X20 X20 X20 X20 X20 X20 X20 X20
#define NO_TOKEN NULL, NULL, NULL, 0, NULL, { 0 }, NULL

static const struct crow {
	int line;
	const char *args[16];
	const char *env;        /* one LMSTREAM_ variable ("NAME=@x": dir/x); NULL: none */
	int status;
	const char *out;        /* status 2: part of stderr; --help: part of stdout */
	/* A token: the keys that verify it, its header, claims and result. */
	const char *keys, *alg, *kid;
	long long ttl;
	const char *sub, *rights[RIGHT__COUNT];
	const char *why;
} crows[] = {
	{ __LINE__, { "token", "--read", "a/*", "--write", "b/**", "--admin", "c", "--ttl", "2h", "--sub", "alice",
	              "--key", "@hs.key" }, NULL, 0, NULL,
	  "hs.key", "HS256", "hs", 7200, "alice", { "a/*", "b/**", "c" }, NULL },
	{ __LINE__, { "token", "--read", "a/*", "--read", "x/**", "--ttl", "10m", "--key", "@rsa.pem" }, NULL, 0, NULL,
	  "rsa.pub", "RS256", "rsa", 600, "", { "a/* x/**", "", "" }, NULL },
	{ __LINE__, { "token", "--admin", "**", "--ttl", "90s", "--key", "@ec.pem", "--sub", "ops" }, NULL, 0, NULL,
	  "hs.key ec.pub", "ES256", "ec", 90, "ops", { "", "", "**" }, NULL },
	{ __LINE__, { "token", "--read", "a", "--ttl", "7d", "--key", "@hs.key" }, NULL, 0, NULL,
	  "hs.key", "HS256", "hs", 7 * 86400, "", { "a", "", "" }, NULL },
	{ __LINE__, { "token", "--read", "a", "--ttl", "3600", "--key", "@hs.key" }, NULL, 0, NULL,
	  "hs.key", "HS256", "hs", 3600, "", { "a", "", "" }, NULL },
	{ __LINE__, { "token", "--ttl", "1h", "--key", "@hs.key" }, NULL, 0, NULL,
	  "hs.key", "HS256", "hs", 3600, "", { "", "", "" }, NULL },
	{ __LINE__, { "token", "--read", "a", "--ttl", "1h", "--key", "@hs.key", "--kid", "custom" }, NULL, 0, NULL,
	  "hs.key", "HS256", "custom", 3600, "", { "a", "", "" }, "unknown key" },
	/* The key from the configuration: --config, LMSTREAM_CONFIG, LMSTREAM_AUTH_KEY, data_dir. */
	{ __LINE__, { "token", "--read", "a", "--ttl", "1h", "--config", "@ctl.conf" }, NULL, 0, NULL,
	  "hs.key", "HS256", "hs", 3600, "", { "a", "", "" }, NULL },
	{ __LINE__, { "token", "--read", "a", "--ttl", "1h" }, "LMSTREAM_CONFIG=@ctl.conf", 0, NULL,
	  "hs.key", "HS256", "hs", 3600, "", { "a", "", "" }, NULL },
	{ __LINE__, { "token", "--ttl", "1h", "--config", "@ctl.conf" }, "LMSTREAM_AUTH_KEY=@ec.pem", 0, NULL,
	  "ec.pub", "ES256", "ec", 3600, "", { "", "", "" }, NULL },
	{ __LINE__, { "token", "--ttl", "1h", "--config", "@ctl.conf", "--key", "@rsa.pem" }, NULL, 0, NULL,
	  "rsa.pub", "RS256", "rsa", 3600, "", { "", "", "" }, NULL },
	{ __LINE__, { "token", "--ttl", "1h" }, "LMSTREAM_DATA_DIR=@default", 0, NULL,
	  "default/auth.key", "HS256", "auth", 3600, "", { "", "", "" }, NULL },
	{ __LINE__, { "token", "--help" }, NULL, 0, "Usage: lmstreamctl token", NO_TOKEN },
	{ __LINE__, { "--help" }, NULL, 0, "Usage: lmstreamctl [--config FILE] [--data DIR] COMMAND", NO_TOKEN },
	/* Refusals: one line on stderr, status 2. */
	{ __LINE__, { "token", "--ttl", "1h", "--key", "@rsa.pub" }, NULL, 2,
	  "rsa.pub is a public key: lmstream only verifies with it; sign with the matching private key (--key)\n", NO_TOKEN },
	{ __LINE__, { "token", "--ttl", "1h", "--key", "@missing.key" }, NULL, 2, "missing.key: No such file or directory", NO_TOKEN },
	{ __LINE__, { "token", "--ttl", "1h", "--key", "@enc.pem" }, NULL, 2, "enc.pem: an encrypted private key", NO_TOKEN },
	{ __LINE__, { "token", "--ttl", "1h", "--key", "@rsa1024.pem" }, NULL, 2, "RSA key of 1024 bits", NO_TOKEN },
	{ __LINE__, { "token", "--ttl", "1h", "--key", "@ec384.pem" }, NULL, 2, "EC key on curve secp384r1", NO_TOKEN },
	{ __LINE__, { "token", "--ttl", "1h", "--key", "@ed.pem" }, NULL, 2, "ED25519 key", NO_TOKEN },
	{ __LINE__, { "token", "--ttl", "1h", "--key", "@short.key" }, NULL, 2, "a secret of 31 bytes", NO_TOKEN },
	{ __LINE__, { "token", "--ttl", "1h", "--key", "@ww.key" }, NULL, 2, "writable by group or others", NO_TOKEN },
	{ __LINE__, { "token", "--ttl", "1h" }, "LMSTREAM_DATA_DIR=@nodefault", 2, "nodefault/auth.key: No such file", NO_TOKEN },
	{ __LINE__, { "token", "--ttl", "1h", "--config", "@nope.conf" }, NULL, 2, "nope.conf", NO_TOKEN },
	{ __LINE__, { "token", "--ttl", "0", "--key", "@hs.key" }, NULL, 2, "--ttl 0: a duration", NO_TOKEN },
	{ __LINE__, { "token", "--ttl", "5x", "--key", "@hs.key" }, NULL, 2, "--ttl 5x: a duration", NO_TOKEN },
	{ __LINE__, { "token", "--ttl", "-1", "--key", "@hs.key" }, NULL, 2, "--ttl -1: a duration", NO_TOKEN },
	{ __LINE__, { "token", "--ttl", "1.5h", "--key", "@hs.key" }, NULL, 2, "--ttl 1.5h: a duration", NO_TOKEN },
	{ __LINE__, { "token", "--ttl", "h", "--key", "@hs.key" }, NULL, 2, "--ttl h: a duration", NO_TOKEN },
	{ __LINE__, { "token", "--ttl", "36501d", "--key", "@hs.key" }, NULL, 2, "--ttl 36501d: a duration", NO_TOKEN },
	{ __LINE__, { "token", "--ttl", "99999999999999999999", "--key", "@hs.key" }, NULL, 2, "a duration", NO_TOKEN },
	{ __LINE__, { "token", "--ttl", "", "--key", "@hs.key" }, NULL, 2, "--ttl needs a value", NO_TOKEN },
	{ __LINE__, { "token", "--read", "a", "--key", "@hs.key" }, NULL, 2, "--ttl DURATION is required", NO_TOKEN },
	{ __LINE__, { "token", "--ttl", "1h", "--key" }, NULL, 2, "--key needs a value", NO_TOKEN },
	{ __LINE__, { "token", "--ttl", "1h", "--bogus", "1" }, NULL, 2, "unknown option --bogus", NO_TOKEN },
	{ __LINE__, { "token", "--ttl", "1h", "--key", "@hs.key", "--sub", X200 }, NULL, 2, "--sub: longer than 127", NO_TOKEN },
	{ __LINE__, { NULL }, NULL, 2, "a command is needed", NO_TOKEN },
	{ __LINE__, { "mint" }, NULL, 2, "mint: unknown command", NO_TOKEN },
};

/* Whether the patterns of p, joined by spaces, are want. */
static int rights_are(const struct patterns *p, const char *want)
{
	char got[512] = "";
	for (size_t i = 0; i < p->n; i++)
		snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", i ? " " : "", p->v[i]);
	return !strcmp(got, want);
}

/* Checks the token lmstreamctl printed for row r, between times t1 and t2. */
static void check_ctl_token(const struct crow *r, char *out, long long t1, long long t2)
{
	struct auth *a = NULL;
	char err[600];
	struct grant g;
	const char *why;
	jwt_t *j = NULL;
	size_t len = strlen(out);
	CHECK_AT(r->line, len > 1 && out[len - 1] == '\n' && !memchr(out, '\n', len - 1));
	out[len ? len - 1 : 0] = '\0';
	CHECK_INT_AT(r->line, jwt_decode(&j, out, NULL, 0), 0);
	CHECK_STR_AT(r->line, j ? jwt_get_header(j, "alg") : NULL, r->alg);
	CHECK_STR_AT(r->line, j ? jwt_get_header(j, "kid") : NULL, r->kid);
	long iat = j ? jwt_get_grant_int(j, "iat") : 0;
	CHECK_AT(r->line, iat >= t1 && iat <= t2);
	jwt_free(j);
	CHECK_INT_AT(r->line, open_keys(r->keys, &a, err, sizeof err), 0);
	int rc = a ? auth_verify(a, out, (int64_t)time(NULL) * 1000, 30, &g, &why) : -2;
	CHECK_INT_AT(r->line, rc, r->why ? -1 : 0);
	if (rc == 0) {
		CHECK_STR_AT(r->line, g.sub, r->sub);
		CHECK_AT(r->line, g.exp_ms >= (t1 + r->ttl) * 1000 && g.exp_ms <= (t2 + r->ttl) * 1000);
		for (int k = 0; k < RIGHT__COUNT; k++)
			CHECK_AT(r->line, rights_are(&g.rights[k], r->rights[k]));
		grant_free(&g);
	} else {
		CHECK_STR_AT(r->line, why, r->why);
	}
	auth_close(a);
}

static void test_ctl(void)
{
	char conf[1200];
	snprintf(conf, sizeof conf, "# lmstreamctl test\nauth_key = %s %s\n", at("hs.key"), at("rsa.pub"));
	write_file("ctl.conf", conf, strlen(conf), 0644);
	for (size_t i = 0; i < NELEM(crows); i++) {
		const struct crow *r = &crows[i];
		char out[8192], errout[2048];
		long long t1 = (long long)time(NULL);
		int st = run_ctl(r->args, r->env, out, sizeof out, errout, sizeof errout);
		long long t2 = (long long)time(NULL);
		CHECK_INT_AT(r->line, st, r->status);
		if (st == 127 || st == -1)
			printf("  %s", errout);
		if (r->status == 2) {
			CHECK_AT(r->line, strstr(errout, r->out) != NULL);
			CHECK_AT(r->line, !strncmp(errout, "lmstreamctl: ", 13) && strchr(errout, '\n') == errout + strlen(errout) - 1);
			CHECK_STR_AT(r->line, out, "");
			if (!strstr(errout, r->out))
				printf("  got: %s", errout);
		} else if (r->out) {
			CHECK_AT(r->line, strstr(out, r->out) != NULL);
		} else if (st == 0) {
			check_ctl_token(r, out, t1, t2);
		}
	}
}

/* --- the cache of verified tokens ---------------------------------------- */

static struct auth_cache_stats stats_of(const struct auth *a)
{
	struct auth_cache_stats st;
	auth_cache_stats(a, &st);
	return st;
}

/* Whether a and b grant the same, in memory of their own. */
static int grants_equal(const struct grant *a, const struct grant *b)
{
	if (strcmp(a->sub, b->sub) || a->exp_ms != b->exp_ms)
		return 0;
	for (int r = 0; r < RIGHT__COUNT; r++) {
		if (a->rights[r].n != b->rights[r].n || (a->rights[r].n && a->rights[r].v == b->rights[r].v))
			return 0;
		for (size_t i = 0; i < a->rights[r].n; i++)
			if (strcmp(a->rights[r].v[i], b->rights[r].v[i]) || a->rights[r].v[i] == b->rights[r].v[i])
				return 0;
	}
	return 1;
}

static void test_cache_hit(void)
{
	struct auth *a = NULL;
	char err[600];
	struct grant g1, g2, g3;
	const char *why;
	CHECK_INT(open_keys("hs.key rsa.pub ec.pub", &a, err, sizeof err), 0);
	struct auth_cache_stats st = stats_of(a);
	CHECK_UINT(st.capacity, 512);
	CHECK_UINT(st.entries, 0);
	CHECK(st.bytes > 0 && st.bytes < 64 * 1024);
	static const struct { int line; enum signer who; } rows[] = {
		{ __LINE__, S_HS }, { __LINE__, S_RSA }, { __LINE__, S_EC },
	};
	for (size_t k = 0; k < NELEM(rows); k++) {
		int line = rows[k].line;
		char *t = mint(rows[k].who, NULL, "{\"exp\":1700000100,\"sub\":\"alice\",\"lmstream\":{\"read\":[\"a/*\","
		               "\"b/**\"],\"write\":[\"b/**\"],\"admin\":[\"c\"]}}");
		struct auth_cache_stats before = stats_of(a);
		CHECK_INT_AT(line, auth_verify(a, t, T0 * 1000, 30, &g1, &why), 0);
		st = stats_of(a);
		CHECK_UINT_AT(line, st.misses, before.misses + 1);
		CHECK_UINT_AT(line, st.entries, before.entries + 1);
		CHECK_INT_AT(line, auth_verify(a, t, T0 * 1000 + 5000, 30, &g2, &why), 0);
		CHECK_INT_AT(line, auth_verify(a, t, T0 * 1000, 30, &g3, &why), 0);
		st = stats_of(a);
		CHECK_UINT_AT(line, st.hits, before.hits + 2);
		CHECK_UINT_AT(line, st.entries, before.entries + 1);
		/* The same grant, each an independent copy the caller frees. */
		CHECK_AT(line, grants_equal(&g1, &g2) && grants_equal(&g2, &g3));
		CHECK_STR_AT(line, g2.sub, "alice");
		CHECK_INT_AT(line, g2.exp_ms, 1700000100000LL);
		CHECK_AT(line, rights_are(&g2.rights[RIGHT_READ], "a/* b/**"));
		CHECK_AT(line, rights_are(&g2.rights[RIGHT_WRITE], "b/**"));
		CHECK_AT(line, rights_are(&g2.rights[RIGHT_ADMIN], "c"));
		g2.rights[RIGHT_READ].v[0][0] = 'z';
		grant_free(&g1);
		grant_free(&g2);
		CHECK_INT_AT(line, auth_verify(a, t, T0 * 1000, 30, &g1, &why), 0);
		CHECK_AT(line, grants_equal(&g1, &g3));
		grant_free(&g1);
		grant_free(&g3);
		free(t);
	}
	/* No sub, no rights. */
	char *t = mint(S_HS, "hs", "{\"exp\":1700000100}");
	CHECK_INT(auth_verify(a, t, T0 * 1000, 30, &g1, &why), 0);
	CHECK_INT(auth_verify(a, t, T0 * 1000, 30, &g2, &why), 0);
	CHECK_STR(g2.sub, "");
	CHECK(g2.exp_ms == 1700000100000LL && !g2.rights[RIGHT_READ].v && !g2.rights[RIGHT_WRITE].n);
	grant_free(&g1);
	grant_free(&g2);
	free(t);
	/* A refused token is never kept: verified again each time. */
	st = stats_of(a);
	t = mint(S_OLD, NULL, "{\"exp\":1700000100}");
	for (int i = 0; i < 3; i++) {
		CHECK_INT(auth_verify(a, t, T0 * 1000, 30, &g1, &why), -1);
		CHECK_STR(why, "bad signature");
	}
	free(t);
	t = mint(S_HS, "hs", "{\"exp\":1699999000}");
	for (int i = 0; i < 3; i++) {
		CHECK_INT(auth_verify(a, t, T0 * 1000, 30, &g1, &why), -1);
		CHECK_STR(why, "expired");
	}
	free(t);
	struct auth_cache_stats after = stats_of(a);
	CHECK_UINT(after.hits, st.hits);
	CHECK_UINT(after.misses, st.misses + 6);
	CHECK_UINT(after.entries, st.entries);
	auth_close(a);
}

/* exp and nbf are checked at every hit, with the skew of the call. */
static void test_cache_times(void)
{
	static const struct { int line; long long now_ms; int skew; const char *why; } rows[] = {
		/* exp 1700000100, nbf 1700000050 */
		{ __LINE__, (T0 + 50) * 1000, 0, NULL },          /* verified: in the cache */
		{ __LINE__, (T0 + 99) * 1000 + 999, 0, NULL },
		{ __LINE__, (T0 + 129) * 1000 + 999, 30, NULL },
		{ __LINE__, (T0 + 20) * 1000, 30, NULL },
		{ __LINE__, (T0 + 20) * 1000 - 1, 30, "not yet valid" },
		{ __LINE__, (T0 + 49) * 1000, 0, "not yet valid" },
		{ __LINE__, (T0 + 60) * 1000, 0, NULL },
		{ __LINE__, (T0 + 100) * 1000, 0, "expired" },
		{ __LINE__, (T0 + 60) * 1000, 0, NULL },
		{ __LINE__, (T0 + 130) * 1000, 30, "expired" },
		{ __LINE__, (T0 + 100) * 1000, 0, "expired" },
		{ __LINE__, T0 * 1000, 0, "not yet valid" },
		{ __LINE__, (T0 + 99) * 1000, 0, NULL },
	};
	struct auth *a = NULL;
	char err[600];
	struct grant g;
	const char *why;
	CHECK_INT(open_keys("hs.key", &a, err, sizeof err), 0);
	char *t = mint(S_HS, "hs", "{\"exp\":1700000100,\"nbf\":1700000050,\"sub\":\"bob\"}");
	for (size_t i = 0; i < NELEM(rows); i++) {
		struct auth_cache_stats before = stats_of(a);
		int rc = auth_verify(a, t, rows[i].now_ms, rows[i].skew, &g, &why);
		CHECK_INT_AT(rows[i].line, rc, rows[i].why ? -1 : 0);
		CHECK_STR_AT(rows[i].line, why, rows[i].why);
		if (rc == 0) {
			CHECK_STR_AT(rows[i].line, g.sub, "bob");
			grant_free(&g);
		} else {
			CHECK_AT(rows[i].line, g.sub[0] == '\0' && g.exp_ms == 0);
		}
		/* A refusal drops the entry: the next call verifies again. */
		struct auth_cache_stats st = stats_of(a);
		int was_cached = i > 0 && !rows[i - 1].why;
		CHECK_UINT_AT(rows[i].line, st.hits - before.hits, was_cached);
		CHECK_UINT_AT(rows[i].line, st.entries, rows[i].why ? 0 : 1);
	}
	free(t);
	auth_close(a);
}

/* Only the same bytes are served from the cache. */
static void test_cache_one_byte(void)
{
	struct auth *a = NULL;
	char err[600];
	struct grant g;
	const char *why;
	size_t d[2];
	CHECK_INT(open_keys("hs.key ec.pub", &a, err, sizeof err), 0);
	static const struct { int line; enum signer who; } rows[] = { { __LINE__, S_HS }, { __LINE__, S_EC } };
	for (size_t k = 0; k < NELEM(rows); k++) {
		int line = rows[k].line;
		char *t = mint(rows[k].who, NULL, "{\"exp\":1700000100,\"lmstream\":{\"read\":[\"a\"]}}");
		size_t len = strlen(t);
		split(t, d);
		CHECK_INT(auth_verify(a, t, T0 * 1000, 30, &g, &why), 0);
		grant_free(&g);
		/* Each byte of the header, of the payload, and of the signature but
		 * its last character (whose low bits base64url decoding drops). */
		size_t bad = 0;
		for (size_t i = 0; i + 1 < len; i++) {
			char *u = strdup(t);
			u[i] = u[i] == '.' ? 'A' : u[i] == 'A' ? 'B' : 'A';
			struct auth_cache_stats before = stats_of(a);
			int rc = auth_verify(a, u, T0 * 1000, 30, &g, &why);
			if (rc == 0)
				grant_free(&g);
			/* A base64url character may differ only in bits that decoding
			 * drops (the last of a part); anything else is refused. */
			int last_of_part = i == d[0] - 1 || i == d[1] - 1;
			bad += stats_of(a).hits != before.hits || (rc == 0 && !last_of_part);
			free(u);
		}
		CHECK_UINT_AT(line, bad, 0);
		/* Shorter, longer. */
		char *u = malloc(len + 2);
		memcpy(u, t, len - 1);
		u[len - 1] = '\0';
		struct auth_cache_stats before = stats_of(a);
		CHECK_INT_AT(line, auth_verify(a, u, T0 * 1000, 30, &g, &why), -1);
		memcpy(u, t, len);
		u[len] = 'A';
		u[len + 1] = '\0';
		CHECK_INT_AT(line, auth_verify(a, u, T0 * 1000, 30, &g, &why), -1);
		CHECK_UINT_AT(line, stats_of(a).hits, before.hits);
		/* The token itself still is. */
		CHECK_INT_AT(line, auth_verify(a, t, T0 * 1000, 30, &g, &why), 0);
		CHECK_UINT_AT(line, stats_of(a).hits, before.hits + 1);
		grant_free(&g);
		free(u);
		free(t);
	}
	auth_close(a);
}

/* Many distinct tokens: the cache keeps at most its capacity, a token in
 * use stays, and the memory stays bounded. */
static void test_cache_bounded(void)
{
	/* 4000 tokens in 128 sets of 4: every set fills but about once in 10^7 runs
	 * (2000 left one set short in about 1.7% of runs). */
	enum { N = 4000, LAST = 16 };
	struct auth *a = NULL;
	char err[600], claims[200], want[32], pattern[32];
	struct grant g;
	const char *why;
	char **tokens = calloc(N, sizeof *tokens);
	CHECK_INT(open_keys("hs.key", &a, err, sizeof err), 0);
	char *hot = mint(S_HS, "hs", "{\"exp\":1700000100,\"sub\":\"hot\"}");
	size_t max_entries = 0, max_bytes = 0, hot_misses = 0, refused = 0, wrong = 0;
	for (int i = 0; i < N; i++) {
		snprintf(claims, sizeof claims, "{\"exp\":1700000100,\"sub\":\"u%d\",\"lmstream\":{\"read\":[\"u/%d/**\"]}}",
		         i, i);
		tokens[i] = mint(S_HS, "hs", claims);
		refused += auth_verify(a, tokens[i], T0 * 1000, 30, &g, &why) != 0;
		grant_free(&g);
		/* A token in use between the others. */
		struct auth_cache_stats before = stats_of(a);
		refused += auth_verify(a, hot, T0 * 1000, 30, &g, &why) != 0;
		wrong += strcmp(g.sub, "hot") != 0;
		grant_free(&g);
		struct auth_cache_stats st = stats_of(a);
		hot_misses += st.hits == before.hits;
		if (st.entries > max_entries)
			max_entries = st.entries;
		if (st.bytes > max_bytes)
			max_bytes = st.bytes;
	}
	struct auth_cache_stats st = stats_of(a);
	CHECK_UINT(max_entries, st.capacity);
	CHECK_UINT(st.entries, st.capacity);
	CHECK_UINT(hot_misses, 1); /* only the first call */
	/* The table (45 KiB) and 512 copies of a ~180-byte token and its grant. */
	CHECK(max_bytes < 160 * 1024);
	/* The last tokens are there (unless five of them share a set: about
	 * one run in 60,000), hardly any of the first ones, and every one is
	 * still accepted with its own grant. */
	size_t hits_before = st.hits;
	for (int i = N - LAST; i < N; i++) {
		refused += auth_verify(a, tokens[i], T0 * 1000, 30, &g, &why) != 0;
		grant_free(&g);
	}
	CHECK_UINT(stats_of(a).hits - hits_before, LAST);
	hits_before = stats_of(a).hits;
	for (int i = 0; i < 256; i++) {
		snprintf(want, sizeof want, "u%d", i);
		snprintf(pattern, sizeof pattern, "u/%d/**", i);
		refused += auth_verify(a, tokens[i], T0 * 1000, 30, &g, &why) != 0;
		wrong += strcmp(g.sub, want) != 0 || !rights_are(&g.rights[RIGHT_READ], pattern);
		grant_free(&g);
	}
	CHECK(stats_of(a).hits - hits_before < 32);
	CHECK_UINT(stats_of(a).entries, st.capacity);
	CHECK_UINT(refused, 0);
	CHECK_UINT(wrong, 0);
	for (int i = 0; i < N; i++)
		free(tokens[i]);
	free(tokens);
	free(hot);
	auth_close(a);
}

/* The cache belongs to one struct auth: a key no longer loaded verifies
 * nothing, cached or not. */
static void test_cache_keys(void)
{
	struct auth *a = NULL, *b = NULL;
	char err[600];
	struct grant g;
	const char *why;
	char *with_kid = mint(S_OLD, "old", "{\"exp\":1700000100}");
	char *no_kid = mint(S_OLD, NULL, "{\"exp\":1700000100}");
	CHECK_INT(open_keys("old.key hs.key", &a, err, sizeof err), 0);
	for (int i = 0; i < 2; i++) {
		CHECK_INT(auth_verify(a, with_kid, T0 * 1000, 30, &g, &why), 0);
		grant_free(&g);
		CHECK_INT(auth_verify(a, no_kid, T0 * 1000, 30, &g, &why), 0);
		grant_free(&g);
	}
	CHECK_UINT(stats_of(a).hits, 2);
	/* Another struct auth, at the same time, without old.key. */
	CHECK_INT(open_keys("hs.key", &b, err, sizeof err), 0);
	CHECK_INT(auth_verify(b, with_kid, T0 * 1000, 30, &g, &why), -1);
	CHECK_STR(why, "unknown key");
	CHECK_INT(auth_verify(b, no_kid, T0 * 1000, 30, &g, &why), -1);
	CHECK_STR(why, "bad signature");
	CHECK_UINT(stats_of(b).hits, 0);
	auth_close(b);
	/* A reload: the old struct closed, a new one opened without old.key. */
	auth_close(a);
	CHECK_INT(open_keys("hs.key", &a, err, sizeof err), 0);
	CHECK_INT(auth_verify(a, with_kid, T0 * 1000, 30, &g, &why), -1);
	CHECK_STR(why, "unknown key");
	CHECK_INT(auth_verify(a, no_kid, T0 * 1000, 30, &g, &why), -1);
	CHECK_STR(why, "bad signature");
	CHECK_UINT(stats_of(a).entries, 0);
	auth_close(a);
	/* Turned off for benchmarks: the same answers, nothing kept. */
	setenv("LMSTREAM_BENCH_NO_AUTH_CACHE", "1", 1);
	CHECK_INT(open_keys("old.key", &a, err, sizeof err), 0);
	unsetenv("LMSTREAM_BENCH_NO_AUTH_CACHE");
	for (int i = 0; i < 2; i++) {
		CHECK_INT(auth_verify(a, with_kid, T0 * 1000, 30, &g, &why), 0);
		grant_free(&g);
	}
	struct auth_cache_stats st = stats_of(a);
	CHECK(st.capacity == 0 && st.entries == 0 && st.hits == 0 && st.bytes == 0);
	auth_close(a);
	free(with_kid);
	free(no_kid);
}

/* Threads sharing one struct auth over more tokens than it holds: every
 * grant is its own token's, in hits and misses alike. */
struct churn_arg {
	const struct auth *a;
	char **tokens;
	int n, seed, bad;
};

static void *churn(void *p)
{
	struct churn_arg *arg = p;
	unsigned x = (unsigned)arg->seed * 2654435761u + 1;
	for (int i = 0; i < 1500; i++) {
		struct grant g;
		const char *why;
		char want[32];
		x = x * 1103515245u + 12345u;
		int k = (int)((x >> 8) % (unsigned)arg->n);
		snprintf(want, sizeof want, "u%d", k);
		int64_t now = T0 * 1000 + (k % 7 == 0 ? 200000 : 0); /* some expired */
		int rc = auth_verify(arg->a, arg->tokens[k], now, 30, &g, &why);
		if (k % 7 == 0 ? rc != -1 || strcmp(why, "expired")
		               : rc != 0 || strcmp(g.sub, want) || !rights_are(&g.rights[RIGHT_WRITE], want + 1))
			arg->bad++;
		if (rc == 0)
			grant_free(&g);
	}
	return NULL;
}

static void test_cache_threads(void)
{
	enum { N = 700, T = 4 };
	struct auth *a = NULL;
	char err[600], claims[200];
	char **tokens = calloc(N, sizeof *tokens);
	struct churn_arg args[T];
	pthread_t th[T];
	CHECK_INT(open_keys("hs.key", &a, err, sizeof err), 0);
	for (int i = 0; i < N; i++) {
		snprintf(claims, sizeof claims, "{\"exp\":1700000100,\"sub\":\"u%d\",\"lmstream\":{\"write\":[\"%d\"]}}", i, i);
		tokens[i] = mint(S_HS, "hs", claims);
	}
	for (int i = 0; i < T; i++) {
		args[i] = (struct churn_arg){ a, tokens, N, i + 1, 0 };
		CHECK_INT(pthread_create(&th[i], NULL, churn, &args[i]), 0);
	}
	for (int i = 0; i < T; i++) {
		pthread_join(th[i], NULL);
		CHECK_INT(args[i].bad, 0);
	}
	struct auth_cache_stats st = stats_of(a);
	CHECK_UINT(st.hits + st.misses, T * 1500);
	CHECK(st.hits > 0 && st.entries <= st.capacity);
	for (int i = 0; i < N; i++)
		free(tokens[i]);
	free(tokens);
	auth_close(a);
}

int main(void)
{
	umask(022);
	if (unit_tmpdir(dir, sizeof dir, "auth"))
		return 99;
	make_keys();
	make_bad_files();
	test_patterns();
	test_key_file();
	test_open();
	test_verify_table();
	test_garbage();
	test_tampered();
	test_grant();
	test_sub_cut();
	test_threads();
	test_cache_hit();
	test_cache_times();
	test_cache_one_byte();
	test_cache_bounded();
	test_cache_keys();
	test_cache_threads();
	test_ctl();
	unit_rm_rf(dir);
	return unit_done();
}
