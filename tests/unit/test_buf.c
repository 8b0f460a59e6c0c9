/* test_buf.c: unit tests of src/lib/buf.c (the growable byte buffer): growth
 * keeps every byte and the NUL after them, buf_printf on both sides of its
 * 256-byte stack buffer, requests too large to ever fit set the sticky failed
 * flag without touching the contents, buf_reset makes the buffer usable
 * again, and buf_free is safe on an initialised or zeroed buffer. */
#include "lib/buf.h"
#include "unit.h"

#include <stdint.h>
#include <stdlib.h>

/* The invariants every buffer keeps after a successful call. */
static void check_valid(int line, const struct buf *b)
{
	CHECK_AT(line, b->data != NULL);
	CHECK_AT(line, b->cap > b->len);
	if (b->data)
		CHECK_AT(line, b->data[b->len] == '\0');
	CHECK_INT_AT(line, b->failed, 0);
}

/* --- init, free, reset -------------------------------------------------------------- */

static void test_init_free(void)
{
	struct buf b;
	memset(&b, 0x5a, sizeof b);
	buf_init(&b);
	CHECK(b.data == NULL);
	CHECK_UINT(b.len, 0);
	CHECK_UINT(b.cap, 0);
	CHECK_INT(b.failed, 0);

	/* buf_free on a fresh buffer, twice, and on a zeroed struct. */
	buf_free(&b);
	buf_free(&b);
	CHECK(b.data == NULL && b.len == 0 && b.cap == 0 && b.failed == 0);
	struct buf z = { 0 };
	buf_free(&z);
	CHECK(z.data == NULL && z.len == 0 && z.cap == 0);
	static struct buf s;   /* zero-initialised storage, never buf_init'ed */
	buf_free(&s);
	CHECK(s.data == NULL);

	/* buf_reset on a buffer that never allocated. */
	buf_reset(&z);
	CHECK(z.data == NULL && z.len == 0 && z.failed == 0);

	/* A zeroed buffer can be used without buf_init. */
	CHECK_INT(buf_puts(&z, "abc"), 0);
	CHECK_MEM(z.data, z.len, "abc", 3);
	check_valid(__LINE__, &z);

	/* buf_free releases and leaves an initialised buffer behind. */
	buf_free(&z);
	CHECK(z.data == NULL && z.len == 0 && z.cap == 0 && z.failed == 0);
	CHECK_INT(buf_puts(&z, "again"), 0);
	CHECK_STR(z.data, "again");
	buf_free(&z);
}

static void test_reset(void)
{
	struct buf b;
	buf_init(&b);
	buf_puts(&b, "hello world");
	size_t cap = b.cap;
	char *data = b.data;
	buf_reset(&b);
	CHECK_UINT(b.len, 0);
	CHECK(b.data == data);          /* keeps its memory */
	CHECK_UINT(b.cap, cap);
	CHECK_STR(b.data, "");          /* and is an empty string again */
	CHECK_INT(buf_puts(&b, "x"), 0);
	CHECK_STR(b.data, "x");
	buf_free(&b);
}

/* --- appends and growth ------------------------------------------------------------- */

static const struct {
	int line;
	size_t n;           /* appends */
	size_t sizes[4];    /* their lengths, in turn */
} growth_rows[] = {
	{ __LINE__, 1, { 0 } },                 /* an empty append still gives a string */
	{ __LINE__, 1, { 1 } },
	{ __LINE__, 1, { 254 } },
	{ __LINE__, 1, { 255 } },               /* + NUL = 256, the first allocation */
	{ __LINE__, 1, { 256 } },               /* one past it */
	{ __LINE__, 2, { 255, 1 } },
	{ __LINE__, 3, { 100, 200, 300 } },
	{ __LINE__, 4, { 1000, 1, 10000, 1 } },
	{ __LINE__, 3, { 65535, 65536, 1 } },
	{ __LINE__, 1, { 1 << 20 } },
	{ __LINE__, 3, { 3, 0, 5 } },           /* 0 in the middle: appends nothing */
	{ __LINE__, 2, { 0, 0 } },
};

static void test_growth(void)
{
	for (size_t r = 0; r < NELEM(growth_rows); r++) {
		int line = growth_rows[r].line;
		struct buf b;
		size_t total = 0;
		buf_init(&b);
		for (size_t i = 0; i < growth_rows[r].n; i++) {
			size_t n = growth_rows[r].sizes[i];
			/* Bytes that tell their position: total + k, every value of a byte. */
			unsigned char *chunk = malloc(n ? n : 1);
			for (size_t k = 0; k < n; k++)
				chunk[k] = (unsigned char)((total + k) * 7 + 1);
			CHECK_INT_AT(line, buf_append(&b, chunk, n), 0);
			free(chunk);
			total += n;
			CHECK_UINT_AT(line, b.len, total);
			check_valid(line, &b);
		}
		size_t bad = (size_t)-1;
		for (size_t k = 0; k < total && bad == (size_t)-1; k++)
			if ((unsigned char)b.data[k] != (unsigned char)(k * 7 + 1))
				bad = k;
		CHECK_UINT_AT(line, bad, (size_t)-1);
		buf_free(&b);
	}

	/* One byte at a time: every step is NUL-terminated, and the buffer does
	 * not reallocate on every append (capacity grows geometrically). */
	struct buf b;
	buf_init(&b);
	size_t grows = 0, cap = 0;
	for (size_t i = 0; i < 100000; i++) {
		char c = (char)('a' + i % 26);
		if (buf_append(&b, &c, 1) != 0 || b.data[i] != c || b.data[i + 1] != '\0') {
			CHECK_UINT(i, (size_t)-1);   /* names the failing step */
			break;
		}
		if (b.cap != cap) {
			grows++;
			cap = b.cap;
		}
	}
	CHECK_UINT(b.len, 100000);
	CHECK(grows <= 20);
	check_valid(__LINE__, &b);

	/* Embedded NULs are bytes like any other. */
	buf_reset(&b);
	CHECK_INT(buf_append(&b, "a\0b\0", 4), 0);
	CHECK_UINT(b.len, 4);
	CHECK_MEM(b.data, b.len + 1, "a\0b\0\0", 5);
	/* buf_puts stops at the NUL of its argument. */
	CHECK_INT(buf_puts(&b, "cd\0ef"), 0);
	CHECK_MEM(b.data, b.len, "a\0b\0cd", 6);
	CHECK_INT(buf_puts(&b, ""), 0);
	CHECK_UINT(b.len, 6);
	buf_free(&b);

	/* Doubling the contents, from a copy of them, eight times. */
	buf_init(&b);
	buf_puts(&b, "0123456789");
	for (int i = 0; i < 8; i++) {
		char *copy = malloc(b.len);
		memcpy(copy, b.data, b.len);
		size_t len = b.len;
		CHECK_INT(buf_append(&b, copy, len), 0);
		CHECK(!memcmp(b.data, b.data + len, len));
		free(copy);
	}
	CHECK_UINT(b.len, 10u << 8);
	buf_free(&b);
}

/* --- buf_printf ------------------------------------------------------------------- */

static const struct {
	int line;
	const char *prefix;   /* already in the buffer */
	int width;            /* "%*s" of "" : that many spaces */
	const char *tail;     /* then "%s|%d" with tail and 42 */
} printf_rows[] = {
	{ __LINE__, "", 0, "" },
	{ __LINE__, "", 0, "x" },
	{ __LINE__, "pre:", 10, "tail" },
	{ __LINE__, "", 252, "" },            /* 252 + "|42" = 255 bytes: fits the stack buffer */
	{ __LINE__, "", 253, "" },            /* 256: one too many, formatted in place */
	{ __LINE__, "", 254, "" },
	{ __LINE__, "abc", 253, "" },
	{ __LINE__, "", 1000, "end" },
	{ __LINE__, "0123456789", 100000, "end" },
};

static void test_printf(void)
{
	for (size_t r = 0; r < NELEM(printf_rows); r++) {
		int line = printf_rows[r].line;
		const char *pre = printf_rows[r].prefix, *tail = printf_rows[r].tail;
		int w = printf_rows[r].width;
		struct buf b;
		buf_init(&b);
		buf_puts(&b, pre);
		CHECK_INT_AT(line, buf_printf(&b, "%*s%s|%d", w, "", tail, 42), 0);
		size_t pl = strlen(pre), tl = strlen(tail);
		size_t want = pl + (size_t)w + tl + 3;
		CHECK_UINT_AT(line, b.len, want);
		check_valid(line, &b);
		if (b.len == want) {
			CHECK_MEM_AT(line, b.data, pl, pre, pl);
			size_t spaces = 0;
			while (spaces < (size_t)w && b.data[pl + spaces] == ' ')
				spaces++;
			CHECK_UINT_AT(line, spaces, (size_t)w);
			CHECK_MEM_AT(line, b.data + pl + (size_t)w, tl, tail, tl);
			CHECK_MEM_AT(line, b.data + want - 3, 3, "|42", 3);
		}
		buf_free(&b);
	}

	/* Consecutive calls append; a formatted NUL byte is kept. */
	struct buf b;
	buf_init(&b);
	CHECK_INT(buf_printf(&b, "%d-%s", 7, "x"), 0);
	CHECK_INT(buf_printf(&b, "%c%c", 'a', '\0'), 0);
	CHECK_MEM(b.data, b.len, "7-xa\0", 5);
	CHECK_INT(buf_printf(&b, "%s", ""), 0);
	CHECK_UINT(b.len, 5);
	/* A long one after short ones: the earlier bytes stay. */
	CHECK_INT(buf_printf(&b, "%0300d", 5), 0);
	CHECK_UINT(b.len, 305);
	CHECK_MEM(b.data, 5, "7-xa\0", 5);
	CHECK(b.data[5] == '0' && b.data[303] == '0' && b.data[304] == '5' && b.data[305] == '\0');
	buf_free(&b);
}

/* --- requests that can never fit ---------------------------------------------------- */

static const struct {
	int line;
	size_t extra;        /* SIZE_MAX-ish, or relative to SIZE_MAX / 2 below */
	int minus_len;       /* subtract the buffer's length first */
} huge_rows[] = {
	{ __LINE__, SIZE_MAX, 0 },
	{ __LINE__, SIZE_MAX - 1, 0 },
	{ __LINE__, SIZE_MAX - 256, 0 },
	{ __LINE__, SIZE_MAX / 2 + 1, 0 },
	{ __LINE__, SIZE_MAX / 2 + 1, 1 },   /* just past the limit with len counted */
	{ __LINE__, SIZE_MAX / 2, 0 },       /* the limit minus 0: over once len > 0 */
};

static void test_huge(void)
{
	for (size_t r = 0; r < NELEM(huge_rows); r++) {
		int line = huge_rows[r].line;
		struct buf b;
		buf_init(&b);
		buf_puts(&b, "keep me");
		char *data = b.data;
		size_t cap = b.cap;
		size_t extra = huge_rows[r].extra - (huge_rows[r].minus_len ? b.len : 0);

		CHECK_INT_AT(line, buf_reserve(&b, extra), -1);
		CHECK_INT_AT(line, b.failed, 1);
		/* Nothing moved, nothing lost: still the same bytes and a string. */
		CHECK_AT(line, b.data == data && b.cap == cap);
		CHECK_MEM_AT(line, b.data, b.len, "keep me", 7);
		CHECK_AT(line, b.data[b.len] == '\0');

		/* Sticky: later appends fail and change nothing. */
		CHECK_INT_AT(line, buf_append(&b, "x", 1), -1);
		CHECK_INT_AT(line, buf_puts(&b, "y"), -1);
		CHECK_INT_AT(line, buf_printf(&b, "%d", 1), -1);
		CHECK_INT_AT(line, buf_reserve(&b, 1), -1);
		CHECK_MEM_AT(line, b.data, b.len, "keep me", 7);

		/* buf_reset clears the flag and the buffer works again. */
		buf_reset(&b);
		CHECK_INT_AT(line, b.failed, 0);
		CHECK_INT_AT(line, buf_puts(&b, "fresh"), 0);
		CHECK_MEM_AT(line, b.data, b.len, "fresh", 5);
		check_valid(line, &b);
		buf_free(&b);
	}

	/* buf_append of a huge length fails before reading the source. */
	struct buf b;
	buf_init(&b);
	CHECK_INT(buf_append(&b, "z", SIZE_MAX), -1);
	CHECK_INT(b.failed, 1);
	CHECK(b.data == NULL && b.len == 0);
	buf_reset(&b);
	CHECK_INT(buf_append(&b, "z", 1), 0);
	CHECK_STR(b.data, "z");
	buf_free(&b);

	/* On an empty, never-allocated buffer too; buf_free then is a no-op. */
	buf_init(&b);
	CHECK_INT(buf_reserve(&b, SIZE_MAX), -1);
	CHECK(b.data == NULL && b.failed == 1);
	buf_free(&b);
	CHECK(b.data == NULL && b.failed == 0);

	/* A reasonable reserve is honoured: the bytes fit without moving. */
	buf_init(&b);
	CHECK_INT(buf_reserve(&b, 5000), 0);
	CHECK(b.cap >= 5001);
	char *data = b.data;
	char big[5000];
	memset(big, 'q', sizeof big);
	CHECK_INT(buf_append(&b, big, sizeof big), 0);
	CHECK(b.data == data);
	check_valid(__LINE__, &b);
	buf_free(&b);
}

int main(void)
{
	test_init_free();
	test_reset();
	test_growth();
	test_printf();
	test_huge();
	return unit_done();
}
