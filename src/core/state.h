/* state.h: State Protocol change events (STATE-PROTOCOL.md of npm
 * @durable-streams/state): parsing and validation of appended messages, and
 * the JSON of snapshots. Pure: no I/O, no store.
 *
 * A State stream is a JSON stream whose every message is a change event
 *   {"type":T,"key":K,"value":V,"old_value":O,"headers":{"operation":OP,...}}
 * (OP is insert, update, upsert or delete; value is required except for
 * delete) or a control message {"headers":{"control":C,"offset":S}} (C is
 * snapshot-start, snapshot-end or reset). The server keeps, per stream, the
 * latest value of every (type, key): insert, update and upsert set it,
 * delete removes it, reset removes every entry, snapshot-start and
 * snapshot-end change nothing. That is what @durable-streams/state's
 * MaterializedState builds when it applies the same events in order (with
 * its application clearing the state on reset).
 *
 * A (type, key) pair is identified by its "row key": a 2-byte big-endian
 * length of the type, the type, then the key, both as the UTF-8 of the
 * decoded JSON string. Escapes are decoded, so "a" and "\u0061" are one key;
 * a lone UTF-16 surrogate escape (which a JavaScript string can hold) is
 * kept as its 3-byte generalised UTF-8 form, so distinct JavaScript strings
 * give distinct row keys and state_put_row writes them back unchanged. */
#ifndef LS_STATE_H
#define LS_STATE_H
#include <stddef.h>
#include <stdint.h>
#include "lib/buf.h"

/* Longest row key: LMDB keys hold at most 511 bytes, and the store puts an
 * 8-byte state id in front. So the type and key together may have at most
 * STATE_MAX_ROW_KEY - 2 bytes after decoding. */
#define STATE_MAX_ROW_KEY 500

enum state_op {
	STATE_INSERT,
	STATE_UPDATE,
	STATE_UPSERT,
	STATE_DELETE,
	STATE_SNAPSHOT_START,
	STATE_SNAPSHOT_END,
	STATE_RESET,
};

/* One parsed message. value_off/value_len locate the exact bytes of the
 * "value" member in the message (value_len 0 when absent); the row key is
 * stored in the arena given to state_parse, at rk_off, rk_len bytes long
 * (rk_len 0 for control messages). */
struct state_event {
	uint8_t op;            /* enum state_op */
	uint16_t rk_len;
	uint32_t rk_off;
	uint32_t value_off, value_len;
};

/* Parses one message (the exact bytes of one JSON value, as json_split
 * delivers them) as a change event or a control message. The input should
 * already be valid JSON; on any input, state_parse reads only msg[0..len)
 * and never crashes. Returns 0 and fills *ev (appending the row key to
 * arena), or -1 with a static one-line reason in *why and the arena
 * unchanged. Returns -1 with *why = NULL when the arena could not grow. */
int state_parse(const char *msg, size_t len, struct state_event *ev, struct buf *arena,
                const char **why);

/* True for the operations that set a value (insert, update, upsert). */
int state_op_sets(enum state_op op);

/* Appends to out the JSON of one snapshot row as an insert event:
 * {"type":T,"key":K,"value":V,"headers":{"operation":"insert"}} where T and K
 * come from the row key rk (rk_len bytes) and V is value, copied verbatim.
 * Returns 0, or -1 when rk is malformed or out failed. */
int state_put_row(struct buf *out, const unsigned char *rk, size_t rk_len,
                  const char *value, size_t value_len);

/* Appends {"headers":{"control":"<control>","offset":"<offset>"}}. */
int state_put_control(struct buf *out, const char *control, const char *offset);

/* Appends s as a JSON string literal (quotes included): '"', '\' and bytes
 * below 0x20 are escaped, and the 3-byte forms of lone surrogates become
 * \uXXXX escapes. */
int state_put_string(struct buf *out, const unsigned char *s, size_t len);

#endif
