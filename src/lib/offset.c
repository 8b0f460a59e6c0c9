/* offset.c: parse and format stream offsets. */
#include "lib/offset.h"
#include "lib/num.h"

#include <stdio.h>
#include <string.h>

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
	/* One spelling per position: exactly the 16 + 1 + 16 characters
	 * offset_format writes, so that a cache never holds one read under two
	 * keys and clients comparing tokens never see two for one place. */
	if (len != OFFSET_LEN || s[16] != '_')
		return -1;
	if (num_decimal(s, 16, 16, &out->seq) || num_decimal(s + 17, 16, 16, &out->bytes))
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
