/* fuzz_state.c: fuzz harness for the State Protocol change-event parser
 * (state_parse in src/core/state.c) and the snapshot rows it round-trips
 * through (state_put_row).
 *
 * Properties, on any input (the whole input as one message):
 *  - state_parse returns 0 or -1 and reads only msg[0..len) (the input is an
 *    exact-size heap copy, so ASan/valgrind catch a read past it);
 *  - on -1, the reason is a non-empty single line (NULL only when the arena
 *    could not grow) and the arena is left exactly as it was;
 *  - on 0, op is a known operation; a control message has no row key and no
 *    value; a change event appended exactly one row key at the arena's old end,
 *    2 + type + key bytes with a big-endian type length, both parts non-empty,
 *    at most STATE_MAX_ROW_KEY bytes; the value lies inside the message,
 *    without surrounding whitespace, and is present for insert/update/upsert;
 *  - the result does not depend on what the arena already holds, and an
 *    arena that cannot grow turns exactly the successful change events into
 *    (-1, why NULL) and leaves everything else as it was.
 * On input json_split accepts (the parser's precondition), for every
 * message it delivers (a top-level array gives one per element):
 *  - an accepted value is itself valid JSON;
 *  - an accepted change event with a value, written back as a snapshot row by
 *    state_put_row, parses again as an insert of the same row key with the
 *    same value bytes; a control message has only headers. */
#include "core/state.h"
#include "lib/jsonsplit.h"
#include "fuzz.h"
#include "../unit/unit.h"   /* unit_is_ws */

struct result {
	int rc;
	const char *why;
	struct state_event ev;
	size_t mark;           /* arena length before the call */
};

/* Runs state_parse with an arena that already holds `pre` bytes and checks
 * the properties that hold on any input. */
static struct result parse_checked(const char *msg, size_t len, struct buf *arena, size_t pre)
{
	struct result r;
	unsigned char *before;

	buf_reset(arena);
	for (size_t i = 0; i < pre; i++)
		buf_append(arena, &"0123456789abcdef"[i & 15], 1);
	FUZZ_ASSERT(!arena->failed && arena->len == pre);
	before = malloc(pre ? pre : 1);
	FUZZ_ASSERT(before != NULL);
	if (pre)
		memcpy(before, arena->data, pre);

	memset(&r.ev, 0xA5, sizeof r.ev);
	r.why = "(unset)";
	r.mark = arena->len;
	r.rc = state_parse(msg, len, &r.ev, arena, &r.why);
	FUZZ_ASSERT(r.rc == 0 || r.rc == -1);
	FUZZ_ASSERT(!arena->failed);
	/* What was in the arena stays, whatever the outcome. */
	FUZZ_ASSERT(arena->len >= pre && (pre == 0 || !memcmp(arena->data, before, pre)));
	free(before);

	if (r.rc < 0) {
		/* The arena grows in this harness, so a reason is always given. */
		FUZZ_ASSERT(r.why != NULL);
		FUZZ_ASSERT(r.why[0] != '\0' && strchr(r.why, '\n') == NULL);
		FUZZ_ASSERT(arena->len == pre);
		return r;
	}
	const struct state_event *ev = &r.ev;
	FUZZ_ASSERT(ev->op <= STATE_RESET);
	if (ev->op >= STATE_SNAPSHOT_START) {
		/* A control message: nothing in the arena, no row key, no value. */
		FUZZ_ASSERT(ev->rk_len == 0 && ev->rk_off == 0);
		FUZZ_ASSERT(ev->value_off == 0 && ev->value_len == 0);
		FUZZ_ASSERT(arena->len == pre);
		return r;
	}
	/* A change event: one row key appended at the old end of the arena. */
	FUZZ_ASSERT(ev->rk_off == r.mark);
	FUZZ_ASSERT(arena->len == r.mark + ev->rk_len);
	FUZZ_ASSERT(ev->rk_len >= 4 && ev->rk_len <= STATE_MAX_ROW_KEY);
	FUZZ_ASSERT(arena->data[arena->len] == '\0');    /* buf's promise */
	const unsigned char *rk = (const unsigned char *)arena->data + ev->rk_off;
	size_t tlen = ((size_t)rk[0] << 8) | rk[1];
	FUZZ_ASSERT(tlen >= 1 && tlen + 3 <= ev->rk_len);   /* non-empty type and key */
	/* The value: inside the message, trimmed, required when the op sets one. */
	FUZZ_ASSERT(ev->value_off <= len && ev->value_len <= len - ev->value_off);
	if (state_op_sets((enum state_op)ev->op))
		FUZZ_ASSERT(ev->value_len > 0);
	if (ev->value_len) {
		FUZZ_ASSERT(ev->value_off > 0);                 /* after '{' at least */
		FUZZ_ASSERT(!unit_is_ws(msg[ev->value_off]));
		FUZZ_ASSERT(!unit_is_ws(msg[ev->value_off + ev->value_len - 1]));
	} else {
		FUZZ_ASSERT(ev->value_off == 0);
	}
	return r;
}

/* The same message with an arena that cannot grow: change events that were
 * accepted fail with why NULL; every other outcome is unchanged. */
static void check_failed_arena(const char *msg, size_t len, const struct result *ok)
{
	struct buf arena;
	struct state_event ev;
	const char *why = "(unset)";

	buf_init(&arena);
	buf_append(&arena, "xy", 2);
	arena.failed = 1;
	int rc = state_parse(msg, len, &ev, &arena, &why);
	FUZZ_ASSERT(arena.len == 2 && !memcmp(arena.data, "xy", 2));
	if (ok->rc == 0 && ok->ev.op < STATE_SNAPSHOT_START) {
		FUZZ_ASSERT(rc == -1 && why == NULL);
	} else if (ok->rc == 0) {
		FUZZ_ASSERT(rc == 0 && ev.op == ok->ev.op);
	} else {
		FUZZ_ASSERT(rc == -1 && why == ok->why);
	}
	buf_free(&arena);
}

/* One message json_split delivered: stronger properties. */
struct ctx {
	struct buf arena;       /* grows across the messages, as in a batch */
	size_t n;
};

static int on_message(void *vctx, const char *msg, size_t len)
{
	struct ctx *c = vctx;
	struct state_event ev;
	const char *why = "(unset)";
	size_t mark = c->arena.len;
	size_t cnt;
	const char *jwhy;

	c->n++;
	int rc = state_parse(msg, len, &ev, &c->arena, &why);
	FUZZ_ASSERT(rc == 0 || rc == -1);
	if (rc < 0) {
		FUZZ_ASSERT(why && why[0] && c->arena.len == mark);
		return 0;
	}
	if (ev.op >= STATE_SNAPSHOT_START) {
		FUZZ_ASSERT(c->arena.len == mark && ev.rk_len == 0);
		return 0;
	}
	FUZZ_ASSERT(ev.rk_off == mark && c->arena.len == mark + ev.rk_len);
	if (ev.value_len == 0)
		return 0;
	FUZZ_ASSERT(json_split(msg + ev.value_off, ev.value_len, NULL, NULL, &cnt, &jwhy) == 0);

	/* Written back as a snapshot row, it reads as the same key and value. */
	struct buf row;
	buf_init(&row);
	FUZZ_ASSERT(state_put_row(&row, (const unsigned char *)c->arena.data + ev.rk_off, ev.rk_len,
	                          msg + ev.value_off, ev.value_len) == 0);
	FUZZ_ASSERT(json_split(row.data, row.len, NULL, NULL, &cnt, &jwhy) == 0 && cnt == 1);
	struct state_event back;
	size_t mark2 = c->arena.len;
	why = "(unset)";
	rc = state_parse(row.data, row.len, &back, &c->arena, &why);
	if (rc != 0)
		fprintf(stderr, "row %.*s refused: %s\n", (int)(row.len > 600 ? 600 : row.len), row.data,
		        why ? why : "(null)");
	FUZZ_ASSERT(rc == 0);
	FUZZ_ASSERT(back.op == STATE_INSERT);
	FUZZ_ASSERT(back.rk_off == mark2 && back.rk_len == ev.rk_len);
	FUZZ_ASSERT(!memcmp(c->arena.data + back.rk_off, c->arena.data + ev.rk_off, ev.rk_len));
	FUZZ_ASSERT(back.value_len == ev.value_len &&
	            !memcmp(row.data + back.value_off, msg + ev.value_off, ev.value_len));
	buf_free(&row);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *msg = (const char *)data;
	struct buf arena;

	buf_init(&arena);
	struct result a = parse_checked(msg, size, &arena, 0);
	/* With 300 bytes already in the arena (an earlier message of a batch),
	 * the outcome is the same and the row key is the same bytes. */
	unsigned char *rk = NULL;
	if (a.rc == 0 && a.ev.rk_len) {
		rk = malloc(a.ev.rk_len);
		FUZZ_ASSERT(rk != NULL);
		memcpy(rk, arena.data + a.ev.rk_off, a.ev.rk_len);
	}
	struct result b = parse_checked(msg, size, &arena, 300);
	FUZZ_ASSERT(b.rc == a.rc);
	if (a.rc < 0) {
		FUZZ_ASSERT(b.why == a.why);
	} else {
		FUZZ_ASSERT(b.ev.op == a.ev.op && b.ev.rk_len == a.ev.rk_len);
		FUZZ_ASSERT(b.ev.value_off == a.ev.value_off && b.ev.value_len == a.ev.value_len);
		if (rk)
			FUZZ_ASSERT(!memcmp(arena.data + b.ev.rk_off, rk, a.ev.rk_len));
	}
	free(rk);
	buf_free(&arena);
	check_failed_arena(msg, size, &a);

	/* The parser's precondition: the message is valid JSON. */
	struct ctx c = { .n = 0 };
	size_t count = 0;
	const char *why = NULL;
	buf_init(&c.arena);
	if (json_split(msg, size, on_message, &c, &count, &why) == 0)
		FUZZ_ASSERT(c.n == count);
	buf_free(&c.arena);
	return 0;
}
