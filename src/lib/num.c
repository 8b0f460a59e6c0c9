/* num.c: decimal and hex digits. */
#include "lib/num.h"

int num_decimal(const char *s, size_t len, size_t max_digits, uint64_t *out)
{
	uint64_t v = 0;
	if (len == 0 || len > max_digits || len > 19)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

int num_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int num_hex_decode(const char *s, size_t n, unsigned char *out)
{
	for (size_t i = 0; i < n; i++) {
		int hi = num_hex_digit(s[2 * i]), lo = num_hex_digit(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

void num_hex_encode(const unsigned char *p, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[p[i] >> 4];
		out[2 * i + 1] = hex[p[i] & 15];
	}
	out[2 * n] = '\0';
}
