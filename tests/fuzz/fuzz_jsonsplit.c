/* fuzz_jsonsplit.c: fuzz harness for json_split (src/lib/jsonsplit.c).
 *
 * Properties: no crash or out-of-bounds read on any input; an invalid input
 * produces no callback and a reason; a valid one hands out in-order,
 * non-overlapping, trimmed slices of the input, each itself valid JSON; the
 * count is the same with and without a callback; a top-level array re-joined
 * from its slices splits into the same slices. */
#include "lib/jsonsplit.h"
#include "fuzz.h"
#include "../unit/unit.h"   /* unit_is_ws */

struct seen {
	const char *base;
	size_t len;
	size_t calls;
	const char *last_end;
	const char *msg[64];
	size_t mlen[64];
};

static int on_msg(void *ctx, const char *msg, size_t len)
{
	struct seen *s = ctx;
	FUZZ_ASSERT(msg >= s->base && len <= s->len && msg + len <= s->base + s->len);
	FUZZ_ASSERT(msg >= s->last_end);              /* in order, no overlap */
	FUZZ_ASSERT(len > 0 && !unit_is_ws(msg[0]) && !unit_is_ws(msg[len - 1]));
	size_t n;
	const char *why = NULL;
	FUZZ_ASSERT(json_split(msg, len, NULL, NULL, &n, &why) == 0);
	if (s->calls < 64) {
		s->msg[s->calls] = msg;
		s->mlen[s->calls] = len;
	}
	s->calls++;
	s->last_end = msg + len;
	return 0;
}

static int first_non_ws(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!unit_is_ws(s[i]))
			return (unsigned char)s[i];
	return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct seen seen = { s, size, 0, s, { 0 }, { 0 } };
	size_t count = 12345, count2 = 54321;
	const char *why = NULL, *why2 = NULL;

	int rc = json_split(s, size, on_msg, &seen, &count, &why);
	int rc2 = json_split(s, size, NULL, NULL, &count2, &why2);
	FUZZ_ASSERT(rc == 0 || rc == -1);
	FUZZ_ASSERT(rc2 == rc);
	if (rc == -1) {
		FUZZ_ASSERT(seen.calls == 0);
		FUZZ_ASSERT(why != NULL && why2 != NULL);
		return 0;
	}
	FUZZ_ASSERT(count == seen.calls && count2 == count);
	if (first_non_ws(s, size) != '[') {
		FUZZ_ASSERT(count == 1);
		return 0;
	}
	/* "[" + slices joined with "," + "]" splits into the same slices. */
	if (count > 64)
		return 0;
	size_t total = 2 + count;
	for (size_t i = 0; i < count; i++)
		total += seen.mlen[i];
	char *joined = malloc(total);
	FUZZ_ASSERT(joined != NULL);
	size_t n = 0;
	joined[n++] = '[';
	for (size_t i = 0; i < count; i++) {
		if (i)
			joined[n++] = ',';
		memcpy(joined + n, seen.msg[i], seen.mlen[i]);
		n += seen.mlen[i];
	}
	joined[n++] = ']';
	struct seen again = { joined, n, 0, joined, { 0 }, { 0 } };
	size_t c3;
	FUZZ_ASSERT(json_split(joined, n, on_msg, &again, &c3, &why) == 0);
	FUZZ_ASSERT(c3 == count);
	for (size_t i = 0; i < count; i++)
		FUZZ_ASSERT(again.mlen[i] == seen.mlen[i] && !memcmp(again.msg[i], seen.msg[i], seen.mlen[i]));
	free(joined);
	return 0;
}
