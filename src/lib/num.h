/* num.h: the one decimal parser and the one hex decoder of lmstream. Pure
 * functions over (const char *, size_t); every other parser builds on them. */
#ifndef LS_NUM_H
#define LS_NUM_H
#include <stddef.h>
#include <stdint.h>

/* Parses s[0..len) as decimal digits only (no sign, no spaces), between 1
 * and max_digits of them (at most 19, so the value cannot overflow).
 * Returns 0 with *out, or -1. Leading zeros are accepted. */
int num_decimal(const char *s, size_t len, size_t max_digits, uint64_t *out);

/* The value of a hex digit (either case), or -1. */
int num_hex_digit(char c);

/* Decodes 2 * n hex digits of s into n bytes of out. Returns 0, or -1 on a
 * character that is not a hex digit (out is then partly written). */
int num_hex_decode(const char *s, size_t n, unsigned char *out);

/* Writes the lowercase hex of n bytes of p and a NUL into out (2n + 1 bytes). */
void num_hex_encode(const unsigned char *p, size_t n, char *out);

#endif
