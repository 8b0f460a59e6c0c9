/* test_sign.c: unit tests of src/lib/sign.c, webhook signatures (Ed25519),
 * key ids, JWKs and base64url. The RFC 8032 and RFC 8037 vectors tie the
 * keys, signatures (verified by sign_verify, which is EVP_DigestVerify) and
 * thumbprints to the standards. */
#include "lib/num.h"
#include "lib/sign.h"
#include "unit.h"

#include <string.h>

/* RFC 8032 section 7.1, TEST 1 (the empty message); RFC 8037 appendix A
 * uses the same key and gives its JWK x and thumbprint. */
#define T1_SECRET "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
#define T1_PUBLIC "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
#define T1_SIG \
	"e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
#define T1_X     "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
#define T1_THUMB "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"

static int has_std_chars(const char *s)
{
	return strchr(s, '+') || strchr(s, '/') || strchr(s, '=');
}

static void test_vector(void)
{
	unsigned char priv[32], pub[32], want_pub[32], sig[64], want_sig[64];
	char text[SIGN_JWK_MAX];

	CHECK(num_hex_decode(T1_SECRET, 32, priv) == 0);
	CHECK(num_hex_decode(T1_PUBLIC, 32, want_pub) == 0);
	CHECK(num_hex_decode(T1_SIG, 64, want_sig) == 0);
	CHECK_INT(sign_public(priv, pub), 0);
	CHECK_MEM(pub, 32, want_pub, 32);
	CHECK_INT(sign_message(priv, "", 0, sig), 0);
	CHECK_MEM(sig, 64, want_sig, 64);
	CHECK_INT(sign_verify(pub, "", 0, sig), 1);
	CHECK_INT(sign_verify(pub, "", 0, want_sig), 1);
	want_sig[10] ^= 0x40;
	CHECK_INT(sign_verify(pub, "", 0, want_sig), 0);
	CHECK_INT(sign_verify(pub, "x", 1, sig), 0);

	CHECK_INT(b64url_encode(pub, 32, text, sizeof text), 43);
	CHECK_STR(text, T1_X);
	CHECK_INT(sign_kid(pub, text, sizeof text), SIGN_KID_LEN);
	CHECK_STR(text, "ds_" T1_THUMB);
	CHECK_INT(sign_jwk(pub, text, sizeof text), (intmax_t)strlen(text));
	CHECK_STR(text, "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"ds_" T1_THUMB
	                "\",\"use\":\"sig\",\"alg\":\"EdDSA\",\"x\":\"" T1_X "\"}");
	/* Too small: -1 and an empty string. */
	CHECK_INT(sign_kid(pub, text, SIGN_KID_LEN), -1);
	CHECK_STR(text, "");
	CHECK_INT(sign_jwk(pub, text, 40), -1);
	CHECK_STR(text, "");
}

/* Splits a Webhook-Signature value into t, kid and the decoded signature. */
static int parse_header(const char *h, long long *t, char *kid, size_t kid_cap, unsigned char sig[64])
{
	const char *k = strstr(h, ",kid="), *e = strstr(h, ",ed25519=");
	if (strncmp(h, "t=", 2) || !k || !e || e < k || (size_t)(e - k - 5) >= kid_cap)
		return -1;
	*t = strtoll(h + 2, NULL, 10);
	memcpy(kid, k + 5, (size_t)(e - k - 5));
	kid[e - k - 5] = '\0';
	return b64url_decode(e + 9, strlen(e + 9), sig, 64) == 64 ? 0 : -1;
}

static void test_header(void)
{
	unsigned char priv[32], pub[32], sig[64];
	char h[SIGN_HEADER_MAX], kid[SIGN_KID_LEN + 1], kid2[SIGN_KID_LEN + 1], got_kid[64];
	const char body[] = "{\"subscription_id\":\"sub-1\",\"generation\":7}";
	long long t = 0;

	CHECK_INT(sign_keygen(priv), 0);
	CHECK_INT(sign_public(priv, pub), 0);
	CHECK_INT(sign_kid(pub, kid, sizeof kid), SIGN_KID_LEN);
	CHECK_INT(sign_kid(pub, kid2, sizeof kid2), SIGN_KID_LEN);
	CHECK_STR(kid, kid2); /* stable */
	CHECK(!strncmp(kid, "ds_", 3));
	CHECK(!has_std_chars(kid));

	int n = sign_header(priv, 1767225600, body, strlen(body), h, sizeof h);
	CHECK(n > 0 && (size_t)n == strlen(h));
	CHECK(!strncmp(h, "t=1767225600,kid=", 17));
	CHECK(strstr(h, "ed25519=") && !has_std_chars(strstr(h, "ed25519=") + 8));
	CHECK_INT(parse_header(h, &t, got_kid, sizeof got_kid, sig), 0);
	CHECK_INT(t, 1767225600);
	CHECK_STR(got_kid, kid);

	/* The signature covers "<t>.<body>", and nothing else. */
	char msg[128];
	snprintf(msg, sizeof msg, "%lld.%s", t, body);
	CHECK(sign_verify(pub, msg, strlen(msg), sig));
	CHECK(!sign_verify(pub, body, strlen(body), sig));
	msg[strlen(msg) - 2] ^= 1; /* a tampered body */
	CHECK(!sign_verify(pub, msg, strlen(msg), sig));
	snprintf(msg, sizeof msg, "%lld.%s", t + 1, body); /* another time */
	CHECK(!sign_verify(pub, msg, strlen(msg), sig));

	/* Another key: another kid, and its signatures do not verify with pub. */
	unsigned char priv2[32], pub2[32];
	CHECK_INT(sign_keygen(priv2), 0);
	CHECK_INT(sign_public(priv2, pub2), 0);
	CHECK(memcmp(priv, priv2, 32) != 0);
	CHECK_INT(sign_kid(pub2, kid2, sizeof kid2), SIGN_KID_LEN);
	CHECK(strcmp(kid, kid2) != 0);
	CHECK(sign_header(priv2, 1767225600, body, strlen(body), h, sizeof h) > 0);
	CHECK_INT(parse_header(h, &t, got_kid, sizeof got_kid, sig), 0);
	snprintf(msg, sizeof msg, "%lld.%s", t, body);
	CHECK(!sign_verify(pub, msg, strlen(msg), sig));
	CHECK(sign_verify(pub2, msg, strlen(msg), sig));

	/* An empty body and a negative time; a buffer one byte short. */
	n = sign_header(priv, -5, "", 0, h, sizeof h);
	CHECK(n > 0 && !strncmp(h, "t=-5,kid=", 9));
	CHECK_INT(parse_header(h, &t, got_kid, sizeof got_kid, sig), 0);
	CHECK(sign_verify(pub, "-5.", 3, sig));
	CHECK_INT(sign_header(priv, -5, "", 0, h, (size_t)n), -1);
	CHECK_STR(h, "");
}

static const struct {
	int line;
	const char *bytes; /* NULL: the text is not canonical base64url */
	size_t len;
	const char *text;
} b64_rows[] = {
	{ __LINE__, "", 0, "" },
	{ __LINE__, "f", 1, "Zg" },
	{ __LINE__, "fo", 2, "Zm8" },
	{ __LINE__, "foo", 3, "Zm9v" },
	{ __LINE__, "foob", 4, "Zm9vYg" },
	{ __LINE__, "fooba", 5, "Zm9vYmE" },
	{ __LINE__, "foobar", 6, "Zm9vYmFy" },
	{ __LINE__, "\xfb\xff", 2, "-_8" },       /* "+/8=" in standard base64 */
	{ __LINE__, "\xfb\xef\xbe", 3, "----" },
	{ __LINE__, "\xff\xff\xff", 3, "____" },
	{ __LINE__, "\0\0", 2, "AAA" },
	{ __LINE__, NULL, 0, "Zg==" },            /* padding */
	{ __LINE__, NULL, 0, "Zm8=" },
	{ __LINE__, NULL, 0, "+_8" },             /* the standard alphabet */
	{ __LINE__, NULL, 0, "-/8" },
	{ __LINE__, NULL, 0, "Z" },               /* 4k + 1 characters */
	{ __LINE__, NULL, 0, "Zm9vY" },
	{ __LINE__, NULL, 0, "Zh" },              /* unused bits set */
	{ __LINE__, NULL, 0, "Zm9" },
	{ __LINE__, NULL, 0, "Zm 9v" },           /* white space */
	{ __LINE__, NULL, 0, " Zm9v" },
	{ __LINE__, NULL, 0, "Zm9v\n" },
	{ __LINE__, NULL, 0, "Zm\0v" },
};

static void test_b64url(void)
{
	for (size_t i = 0; i < NELEM(b64_rows); i++) {
		int line = b64_rows[i].line;
		const char *text = b64_rows[i].text;
		/* The last row has a NUL inside: its four characters count. */
		size_t tlen = i == NELEM(b64_rows) - 1 ? 4 : strlen(text);
		unsigned char got[16];
		char enc[32];

		long n = b64url_decode(text, tlen, got, sizeof got);
		if (!b64_rows[i].bytes) {
			CHECK_INT_AT(line, n, -1);
			continue;
		}
		CHECK_INT_AT(line, n, (intmax_t)b64_rows[i].len);
		if (n >= 0)
			CHECK_MEM_AT(line, got, (size_t)n, b64_rows[i].bytes, b64_rows[i].len);
		CHECK_INT_AT(line, b64url_encode((const unsigned char *)b64_rows[i].bytes, b64_rows[i].len, enc,
		                                 sizeof enc),
		             (intmax_t)strlen(text));
		CHECK_STR_AT(line, enc, text);
		CHECK_INT_AT(line, B64URL_LEN(b64_rows[i].len), strlen(text));
		/* Exactly the room needed (on the heap, so that AddressSanitizer
		 * sees a write past it), and one byte less. */
		char *exact = malloc(strlen(text) + 1);
		if (!exact)
			abort();
		CHECK_INT_AT(line, b64url_encode((const unsigned char *)b64_rows[i].bytes, b64_rows[i].len, exact,
		                                 strlen(text) + 1),
		             (intmax_t)strlen(text));
		CHECK_STR_AT(line, exact, text);
		CHECK_INT_AT(line, b64url_encode((const unsigned char *)b64_rows[i].bytes, b64_rows[i].len, exact,
		                                 strlen(text)),
		             -1);
		free(exact);
		if (b64_rows[i].len > 0)
			CHECK_INT_AT(line, b64url_decode(text, strlen(text), got, b64_rows[i].len - 1), -1);
	}

	/* Every byte value, every length up to 64: a round trip with no '+',
	 * '/' or '='. */
	unsigned char all[256], back[256];
	char enc[B64URL_LEN(256) + 1];
	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)(255 - i);
	for (size_t len = 0; len <= 64; len++) {
		for (size_t off = 0; off + len <= 256; off += 61) {
			char *exact = malloc(B64URL_LEN(len) + 1);
			if (!exact)
				abort();
			int n = b64url_encode(all + off, len, exact, B64URL_LEN(len) + 1);
			CHECK_INT(n, B64URL_LEN(len));
			CHECK(!has_std_chars(exact));
			CHECK_INT(b64url_decode(exact, (size_t)n, back, sizeof back), (intmax_t)len);
			CHECK_MEM(back, len, all + off, len);
			free(exact);
		}
	}
	CHECK_INT(b64url_encode(all, 256, enc, sizeof enc), B64URL_LEN(256));
	CHECK(!has_std_chars(enc));
}

int main(void)
{
	test_vector();
	test_header();
	test_b64url();
	return unit_done();
}
