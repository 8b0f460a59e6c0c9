/* sign.h: Ed25519 signing of webhook deliveries (PROTOCOL.md 6.5, 7.1), and
 * unpadded base64url (RFC 4648 section 5) for them and for callback tokens.
 *
 * Keys are raw 32-byte Ed25519 keys (RFC 8032): the private key is the seed,
 * the public key derives from it. All the cryptography and the base64 are
 * OpenSSL's (EVP); nothing here allocates memory the caller must free. Text
 * outputs are NUL terminated and functions that write them return the
 * length written (NUL not counted), or -1 when it does not fit cap (out is
 * then an empty string when cap > 0). */
#ifndef LS_SIGN_H
#define LS_SIGN_H
#include <stddef.h>
#include <stdint.h>

#define SIGN_KEY_LEN 32 /* bytes of a raw Ed25519 private or public key */
#define SIGN_SIG_LEN 64 /* bytes of an Ed25519 signature */
/* Characters of unpadded base64url for n bytes, NUL not counted. */
#define B64URL_LEN(n) (((n) / 3) * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))
/* A kid: "ds_" and the base64url of a SHA-256 thumbprint (3 + 43). */
#define SIGN_KID_LEN  (3 + B64URL_LEN(32))
/* Room enough for a Webhook-Signature value and its NUL. */
#define SIGN_HEADER_MAX (sizeof "t=-9223372036854775808,kid=,ed25519=" + SIGN_KID_LEN + B64URL_LEN(SIGN_SIG_LEN))
/* Room enough for sign_jwk's text and its NUL. */
#define SIGN_JWK_MAX 192

/* A new random private key into priv (EVP_PKEY_keygen, ED25519). Returns 0,
 * or -1 when OpenSSL fails. */
int sign_keygen(unsigned char priv[SIGN_KEY_LEN]);

/* The public key of priv into pub. Returns 0, or -1. */
int sign_public(const unsigned char priv[SIGN_KEY_LEN], unsigned char pub[SIGN_KEY_LEN]);

/* The key id of pub: "ds_" and the unpadded base64url of its RFC 7638 JWK
 * thumbprint, the SHA-256 of {"crv":"Ed25519","kty":"OKP","x":"<pub>"}
 * (SIGN_KID_LEN characters, stable for the key, and any receiver can
 * recompute it from the JWK). */
int sign_kid(const unsigned char pub[SIGN_KEY_LEN], char *out, size_t cap);

/* The JWK of pub, one object as a JWK Set lists it (PROTOCOL.md 6.5):
 * {"kty":"OKP","crv":"Ed25519","kid":"<kid>","use":"sig","alg":"EdDSA","x":"<pub>"}. */
int sign_jwk(const unsigned char pub[SIGN_KEY_LEN], char *out, size_t cap);

/* The Ed25519 signature of the len bytes at msg with priv into sig (RFC
 * 8032, pure Ed25519: no prehash, no context). Returns 0, or -1. */
int sign_message(const unsigned char priv[SIGN_KEY_LEN], const void *msg, size_t len,
                 unsigned char sig[SIGN_SIG_LEN]);

/* Whether sig is pub's Ed25519 signature of the len bytes at msg: 1 when
 * it is, 0 when it is not (or pub is not a valid key). */
int sign_verify(const unsigned char pub[SIGN_KEY_LEN], const void *msg, size_t len,
                const unsigned char sig[SIGN_SIG_LEN]);

/* The Webhook-Signature header value for a delivery of body (len bytes) at
 * Unix time t, signed with priv (PROTOCOL.md 7.1):
 * t=<t>,kid=<kid>,ed25519=<base64url signature>, the signature being over
 * the bytes "<t>.<body>" (t in decimal, a dot, the exact body). cap of
 * SIGN_HEADER_MAX always fits. */
int sign_header(const unsigned char priv[SIGN_KEY_LEN], int64_t t, const char *body, size_t len,
                char *out, size_t cap);

/* Unpadded base64url of n bytes of in: B64URL_LEN(n) characters and a NUL,
 * no '+', '/' or '='. */
int b64url_encode(const unsigned char *in, size_t n, char *out, size_t cap);

/* Decodes len characters of unpadded base64url s into out (at most cap
 * bytes). Returns the number of bytes, or -1 when s is not the canonical
 * encoding of some bytes (a character outside the alphabet, padding, a
 * length of 4k + 1, nonzero unused bits) or they do not fit cap. */
long b64url_decode(const char *s, size_t len, unsigned char *out, size_t cap);

#endif
