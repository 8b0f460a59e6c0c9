/* test_offset.c: unit tests of src/lib/offset.c (offset_parse, offset_format). */
#include "lib/offset.h"
#include "unit.h"

#include <stdlib.h>

static const struct {
	int line;
	const char *s;
	size_t len;          /* 0: strlen(s) */
	int rc;
	enum offset_kind kind;
	uint64_t seq, bytes;
} parse_rows[] = {
	{ __LINE__, "-1", 0, 0, OFFSET_START, 0, 0 },
	{ __LINE__, "now", 0, 0, OFFSET_NOW, 0, 0 },
	{ __LINE__, "0000000000000000_0000000000000000", 0, 0, OFFSET_AT, 0, 0 },
	{ __LINE__, "0000000000000001_0000000000000005", 0, 0, OFFSET_AT, 1, 5 },
	{ __LINE__, "0000000000000042_0000000000123456", 0, 0, OFFSET_AT, 42, 123456 },
	{ __LINE__, "9999999999999999_9999999999999999", 0, 0, OFFSET_AT, 9999999999999999ULL, 9999999999999999ULL },
	/* Only the length counts: bytes after it are not read. */
	{ __LINE__, "-1garbage", 2, 0, OFFSET_START, 0, 0 },
	{ __LINE__, "nowhere", 3, 0, OFFSET_NOW, 0, 0 },
	{ __LINE__, "0000000000000001_0000000000000002_3", 33, 0, OFFSET_AT, 1, 2 },
	/* Other spellings of a position: one spelling each (400). */
	{ __LINE__, "0_0", 0, -1, 0, 0, 0 },
	{ __LINE__, "7_12", 0, -1, 0, 0, 0 },
	{ __LINE__, "000000000000001_0000000000000005", 0, -1, 0, 0, 0 },   /* 15 digits */
	{ __LINE__, "00000000000000001_0000000000000005", 0, -1, 0, 0, 0 }, /* 17 digits */
	{ __LINE__, "0000000000000001_000000000000005", 0, -1, 0, 0, 0 },
	{ __LINE__, "0000000000000001_00000000000000005", 0, -1, 0, 0, 0 },
	{ __LINE__, "000000000000000001_000000000000005", 0, -1, 0, 0, 0 }, /* 33 long, '_' misplaced */
	{ __LINE__, "9999999999999999999_9999999999999999999", 0, -1, 0, 0, 0 },

	{ __LINE__, "", 0, -1, 0, 0, 0 },
	{ __LINE__, "abc", 0, -1, 0, 0, 0 },
	{ __LINE__, "1", 0, -1, 0, 0, 0 },
	{ __LINE__, "_1", 0, -1, 0, 0, 0 },
	{ __LINE__, "1_", 0, -1, 0, 0, 0 },
	{ __LINE__, "_", 0, -1, 0, 0, 0 },
	{ __LINE__, "1__2", 0, -1, 0, 0, 0 },
	{ __LINE__, "1_2_3", 0, -1, 0, 0, 0 },
	{ __LINE__, "-2", 0, -1, 0, 0, 0 },
	{ __LINE__, "-0", 0, -1, 0, 0, 0 },
	{ __LINE__, "-1 ", 0, -1, 0, 0, 0 },
	{ __LINE__, " -1", 0, -1, 0, 0, 0 },
	{ __LINE__, "-10", 0, -1, 0, 0, 0 },
	{ __LINE__, "0,1", 0, -1, 0, 0, 0 },
	{ __LINE__, "0 1", 0, -1, 0, 0, 0 },
	{ __LINE__, "0_ 1", 0, -1, 0, 0, 0 },
	{ __LINE__, " 0_1", 0, -1, 0, 0, 0 },
	{ __LINE__, "0_1 ", 0, -1, 0, 0, 0 },
	{ __LINE__, "0 _1", 0, -1, 0, 0, 0 },
	{ __LINE__, "+1_2", 0, -1, 0, 0, 0 },
	{ __LINE__, "1_-2", 0, -1, 0, 0, 0 },
	{ __LINE__, "1_0x2", 0, -1, 0, 0, 0 },
	{ __LINE__, "a_1", 0, -1, 0, 0, 0 },
	{ __LINE__, "1_a", 0, -1, 0, 0, 0 },
	{ __LINE__, "now ", 0, -1, 0, 0, 0 },
	{ __LINE__, " now", 0, -1, 0, 0, 0 },
	{ __LINE__, "NOW", 0, -1, 0, 0, 0 },
	{ __LINE__, "no", 0, -1, 0, 0, 0 },
	{ __LINE__, "now_1", 0, -1, 0, 0, 0 },
	{ __LINE__, "../x", 0, -1, 0, 0, 0 },
	{ __LINE__, "../0_0", 0, -1, 0, 0, 0 },
	{ __LINE__, "0_0/..", 0, -1, 0, 0, 0 },
	/* 20-digit parts. */
	{ __LINE__, "00000000000000000000_0", 0, -1, 0, 0, 0 },
	{ __LINE__, "0_00000000000000000000", 0, -1, 0, 0, 0 },
	{ __LINE__, "18446744073709551616_0", 0, -1, 0, 0, 0 },
	{ __LINE__, "99999999999999999999_99999999999999999999", 0, -1, 0, 0, 0 },
	/* A NUL inside the length. */
	{ __LINE__, "0\0_1", 4, -1, 0, 0, 0 },
	{ __LINE__, "0_1\0", 4, -1, 0, 0, 0 },
	{ __LINE__, "\0_1", 3, -1, 0, 0, 0 },
	{ __LINE__, "-1\0", 3, -1, 0, 0, 0 },
	{ __LINE__, "now\0", 4, -1, 0, 0, 0 },
	{ __LINE__, "\0", 1, -1, 0, 0, 0 },
	/* Length cut short. */
	{ __LINE__, "now", 2, -1, 0, 0, 0 },
	{ __LINE__, "-1", 1, -1, 0, 0, 0 },
	{ __LINE__, "0_1", 2, -1, 0, 0, 0 },
};

static void test_parse(void)
{
	for (size_t i = 0; i < NELEM(parse_rows); i++) {
		int line = parse_rows[i].line;
		size_t len = parse_rows[i].len ? parse_rows[i].len : strlen(parse_rows[i].s);
		/* A heap copy of exactly len bytes lets ASan catch reads past len. */
		char *s = malloc(len ? len : 1);
		memcpy(s, parse_rows[i].s, len);
		struct offset o = { OFFSET_AT, 777, 777 };
		int rc = offset_parse(s, len, &o);
		CHECK_INT_AT(line, rc, parse_rows[i].rc);
		if (rc == 0 && parse_rows[i].rc == 0) {
			CHECK_INT_AT(line, o.kind, parse_rows[i].kind);
			CHECK_UINT_AT(line, o.seq, parse_rows[i].seq);
			CHECK_UINT_AT(line, o.bytes, parse_rows[i].bytes);
		}
		free(s);
	}
}

static const struct {
	int line;
	uint64_t seq, bytes;
	const char *want;
} format_rows[] = {
	{ __LINE__, 0, 0, "0000000000000000_0000000000000000" },
	{ __LINE__, 1, 5, "0000000000000001_0000000000000005" },
	{ __LINE__, 42, 123456, "0000000000000042_0000000000123456" },
	{ __LINE__, 1000000, 1, "0000000001000000_0000000000000001" },
	{ __LINE__, 9999999999999999ULL, 9999999999999999ULL, "9999999999999999_9999999999999999" },
	{ __LINE__, 1234567890123456ULL, 6543210987654321ULL, "1234567890123456_6543210987654321" },
};

static void test_format(void)
{
	for (size_t i = 0; i < NELEM(format_rows); i++) {
		int line = format_rows[i].line;
		char out[OFFSET_LEN + 1 + 8];
		memset(out, 'X', sizeof out);
		offset_format(out, format_rows[i].seq, format_rows[i].bytes);
		CHECK_STR_AT(line, out, format_rows[i].want);
		CHECK_UINT_AT(line, strlen(out), OFFSET_LEN);
		CHECK_AT(line, out[OFFSET_LEN + 1] == 'X'); /* nothing written past the NUL */

		/* The token parses back to the same position. */
		struct offset o;
		CHECK_INT_AT(line, offset_parse(out, strlen(out), &o), 0);
		CHECK_INT_AT(line, o.kind, OFFSET_AT);
		CHECK_UINT_AT(line, o.seq, format_rows[i].seq);
		CHECK_UINT_AT(line, o.bytes, format_rows[i].bytes);
	}
}

/* A small deterministic generator (xorshift64*), so failures reproduce. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

static uint64_t rand_part(void)
{
	/* Mostly small values, sometimes up to the 16-digit maximum. */
	static const uint64_t mod[] = { 10, 1000, 1000000, 10000000000000000ULL };
	return rng() % mod[rng() % 4];
}

static int sign(long v) { return (v > 0) - (v < 0); }

static void test_order(void)
{
	int bad = 0;

	/* Stream order is (seq, bytes); the tokens must sort the same way. */
	for (int i = 0; i < 20000; i++) {
		uint64_t s1 = rand_part(), b1 = rand_part(), s2, b2;
		switch (rng() % 3) {
		case 0: s2 = s1; b2 = rand_part(); break;
		case 1: s2 = s1 + rng() % 3; b2 = b1; break;
		default: s2 = rand_part(); b2 = rand_part(); break;
		}
		if (s2 >= 10000000000000000ULL)
			s2 = s1;
		char a[OFFSET_LEN + 1], b[OFFSET_LEN + 1];
		offset_format(a, s1, b1);
		offset_format(b, s2, b2);
		int want = s1 != s2 ? (s1 < s2 ? -1 : 1) : (b1 != b2 ? (b1 < b2 ? -1 : 1) : 0);
		int got = sign(strcmp(a, b));
		if (got != want || strlen(a) != OFFSET_LEN || strlen(b) != OFFSET_LEN) {
			if (bad++ < 5)
				CHECK_INT(got, want);
		}
	}
	CHECK_INT(bad, 0);
}

int main(void)
{
	test_parse();
	test_format();
	test_order();
	return unit_done();
}
