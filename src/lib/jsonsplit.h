/* jsonsplit.h: validate a JSON text and split it into stream messages.
 *
 * A JSON stream stores each message as the exact bytes the client sent for
 * it. A body that is an array contributes one message per element (one level
 * flattened); any other value is one message. Nothing is re-printed, so
 * numbers, escapes and key order reach readers unchanged. */
#ifndef LS_JSONSPLIT_H
#define LS_JSONSPLIT_H
#include <stddef.h>

/* Called once per message with its bytes (a slice of the input, without
 * surrounding whitespace). Returns 0 to go on, non-zero to stop with that
 * value as the result of json_split. */
typedef int (*json_message_fn)(void *ctx, const char *msg, size_t len);

/* Validates s (strict RFC 8259: UTF-8, no control bytes in strings, no
 * trailing commas, nesting at most LS_JSON_MAX_DEPTH) and, when valid, calls
 * fn for each message. Validation completes before the first call, so an
 * invalid body produces no calls. Returns 0 with *count messages, -1 with a
 * static reason in *why when invalid, or what fn returned. fn may be NULL to
 * validate and count only. */
int json_split(const char *s, size_t len, json_message_fn fn, void *ctx,
               size_t *count, const char **why);

#endif
