/* sign.c: Ed25519 webhook signatures, JWK and key ids over OpenSSL EVP. */
#include "lib/sign.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

/* Fails a text output: an empty string when there is room for one. */
static int too_small(char *out, size_t cap)
{
	if (cap > 0)
		out[0] = '\0';
	return -1;
}

/* Standard base64 (EVP_EncodeBlock, without its padding) to base64url in
 * place, NUL terminated; returns the length. */
static size_t to_url(char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '+')
			s[i] = '-';
		else if (s[i] == '/')
			s[i] = '_';
	}
	s[n] = '\0';
	return n;
}

int b64url_encode(const unsigned char *in, size_t n, char *out, size_t cap)
{
	if (n > (size_t)INT_MAX / 4 * 3 || cap < B64URL_LEN(n) + 1)
		return too_small(out, cap);
	/* Whole groups of three straight into out; the last one or two bytes
	 * through a small buffer, as EVP pads them to four characters: only
	 * their two or three data characters are copied. */
	size_t whole = n / 3 * 3;
	EVP_EncodeBlock((unsigned char *)out, in, (int)whole);
	size_t len = whole / 3 * 4;
	if (n > whole) {
		unsigned char tail[5];
		EVP_EncodeBlock(tail, in + whole, (int)(n - whole));
		memcpy(out + len, tail, n - whole + 1);
		len += n - whole + 1;
	}
	return (int)to_url(out, len);
}

static int is_b64url(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
	       c == '_';
}

long b64url_decode(const char *s, size_t len, unsigned char *out, size_t cap)
{
	if (len % 4 == 1 || len > (size_t)INT_MAX - 3)
		return -1;
	size_t n = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
	if (n > cap)
		return -1;
	size_t padded = (len + 3) / 4 * 4;
	unsigned char *text = malloc(padded + padded / 4 * 3 + 1);
	if (!text)
		return -1;
	unsigned char *bytes = text + padded;
	long ret = -1;
	for (size_t i = 0; i < padded; i++) {
		if (i >= len)
			text[i] = '=';
		else if (!is_b64url(s[i]))
			goto out;
		else
			text[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : (unsigned char)s[i];
	}
	/* EVP_DecodeBlock counts the padding as zero bytes: the byte after the
	 * n decoded ones holds the unused bits of the last character, which a
	 * canonical encoding leaves zero. */
	if (EVP_DecodeBlock(bytes, text, (int)padded) != (int)(padded / 4 * 3))
		goto out;
	if (n < padded / 4 * 3 && bytes[n] != 0)
		goto out;
	memcpy(out, bytes, n);
	ret = (long)n;
out:
	free(text);
	return ret;
}

int sign_keygen(unsigned char priv[SIGN_KEY_LEN])
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
	EVP_PKEY *key = NULL;
	size_t n = SIGN_KEY_LEN;
	int ok = ctx && EVP_PKEY_keygen_init(ctx) == 1 && EVP_PKEY_keygen(ctx, &key) == 1 &&
	         EVP_PKEY_get_raw_private_key(key, priv, &n) == 1 && n == SIGN_KEY_LEN;
	EVP_PKEY_free(key);
	EVP_PKEY_CTX_free(ctx);
	return ok ? 0 : -1;
}

int sign_public(const unsigned char priv[SIGN_KEY_LEN], unsigned char pub[SIGN_KEY_LEN])
{
	EVP_PKEY *key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, priv, SIGN_KEY_LEN);
	size_t n = SIGN_KEY_LEN;
	int ok = key && EVP_PKEY_get_raw_public_key(key, pub, &n) == 1 && n == SIGN_KEY_LEN;
	EVP_PKEY_free(key);
	return ok ? 0 : -1;
}

int sign_kid(const unsigned char pub[SIGN_KEY_LEN], char *out, size_t cap)
{
	/* RFC 7638: the required members only, in lexicographic order, no
	 * whitespace. */
	char x[B64URL_LEN(SIGN_KEY_LEN) + 1], json[96];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;

	if (cap < SIGN_KID_LEN + 1 || b64url_encode(pub, SIGN_KEY_LEN, x, sizeof x) < 0)
		return too_small(out, cap);
	int n = snprintf(json, sizeof json, "{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"%s\"}", x);
	if (n < 0 || (size_t)n >= sizeof json ||
	    EVP_Digest(json, (size_t)n, md, &md_len, EVP_sha256(), NULL) != 1 || md_len != 32)
		return too_small(out, cap);
	memcpy(out, "ds_", 3);
	int len = b64url_encode(md, md_len, out + 3, cap - 3);
	return len < 0 ? too_small(out, cap) : len + 3;
}

int sign_jwk(const unsigned char pub[SIGN_KEY_LEN], char *out, size_t cap)
{
	char x[B64URL_LEN(SIGN_KEY_LEN) + 1], kid[SIGN_KID_LEN + 1];

	if (b64url_encode(pub, SIGN_KEY_LEN, x, sizeof x) < 0 || sign_kid(pub, kid, sizeof kid) < 0)
		return too_small(out, cap);
	int n = snprintf(out, cap,
	                 "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"%s\",\"use\":\"sig\",\"alg\":\"EdDSA\",\"x\":\"%s\"}",
	                 kid, x);
	return n < 0 || (size_t)n >= cap ? too_small(out, cap) : n;
}

int sign_message(const unsigned char priv[SIGN_KEY_LEN], const void *msg, size_t len,
                 unsigned char sig[SIGN_SIG_LEN])
{
	EVP_PKEY *key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, priv, SIGN_KEY_LEN);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t n = SIGN_SIG_LEN;
	/* Ed25519 signs in one pass, without a separate digest (NULL). */
	int ok = key && ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
	         EVP_DigestSign(ctx, sig, &n, msg, len) == 1 && n == SIGN_SIG_LEN;
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(key);
	return ok ? 0 : -1;
}

int sign_verify(const unsigned char pub[SIGN_KEY_LEN], const void *msg, size_t len,
                const unsigned char sig[SIGN_SIG_LEN])
{
	EVP_PKEY *key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, SIGN_KEY_LEN);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = key && ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1 &&
	         EVP_DigestVerify(ctx, sig, SIGN_SIG_LEN, msg, len) == 1;
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(key);
	return ok;
}

int sign_header(const unsigned char priv[SIGN_KEY_LEN], int64_t t, const char *body, size_t len,
                char *out, size_t cap)
{
	unsigned char pub[SIGN_KEY_LEN], sig[SIGN_SIG_LEN];
	char kid[SIGN_KID_LEN + 1], sig64[B64URL_LEN(SIGN_SIG_LEN) + 1], stamp[24];

	int stamp_len = snprintf(stamp, sizeof stamp, "%" PRId64 ".", t);
	if (stamp_len < 0 || (size_t)stamp_len >= sizeof stamp || len > SIZE_MAX - sizeof stamp ||
	    sign_public(priv, pub) < 0 || sign_kid(pub, kid, sizeof kid) < 0)
		return too_small(out, cap);
	/* The signed bytes: "<t>." then the body, in one piece. */
	unsigned char *msg = malloc((size_t)stamp_len + len + 1);
	if (!msg)
		return too_small(out, cap);
	memcpy(msg, stamp, (size_t)stamp_len);
	if (len)
		memcpy(msg + stamp_len, body, len);
	int ok = sign_message(priv, msg, (size_t)stamp_len + len, sig) == 0 &&
	         b64url_encode(sig, sizeof sig, sig64, sizeof sig64) >= 0;
	free(msg);
	if (!ok)
		return too_small(out, cap);
	int n = snprintf(out, cap, "t=%" PRId64 ",kid=%s,ed25519=%s", t, kid, sig64);
	return n < 0 || (size_t)n >= cap ? too_small(out, cap) : n;
}
