/* offset.c: parse and format stream offsets. */
#include "lib/offset.h"

#include <stdio.h>
#include <string.h>

static int parse_digits(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	if (len == 0 || len > 19)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

int offset_parse(const char *s, size_t len, struct offset *out)
{
	if (len == 2 && !memcmp(s, "-1", 2)) {
		out->kind = OFFSET_START;
		out->seq = out->bytes = 0;
		return 0;
	}
	if (len == 3 && !memcmp(s, "now", 3)) {
		out->kind = OFFSET_NOW;
		out->seq = out->bytes = 0;
		return 0;
	}
	const char *us = memchr(s, '_', len);
	if (!us)
		return -1;
	size_t a = (size_t)(us - s);
	if (parse_digits(s, a, &out->seq) || parse_digits(us + 1, len - a - 1, &out->bytes))
		return -1;
	out->kind = OFFSET_AT;
	return 0;
}

void offset_format(char out[OFFSET_LEN + 1], uint64_t seq, uint64_t bytes)
{
	snprintf(out, OFFSET_LEN + 1, "%016llu_%016llu",
	         (unsigned long long)(seq % 10000000000000000ULL),
	         (unsigned long long)(bytes % 10000000000000000ULL));
}
