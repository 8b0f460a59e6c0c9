/* fuzz_sse.c: fuzz harness for the SSE framing (src/lib/sse.c).
 *
 * Properties: whatever the payload, sse_data_event writes exactly one event
 * ("event: data", then only "data:" lines, then the one blank line that ends
 * it), and a client parsing it by the WHATWG rules gets the payload back with
 * its line breaks as LF; sse_base64 decodes back to the input. */
#include "lib/buf.h"
#include "lib/sse.h"
#include "fuzz.h"
#include "../unit/unit.h"   /* unit_sse_normalize */

static void check_data_event(const char *p, size_t len)
{
	struct buf out, data;
	buf_init(&out);
	buf_init(&data);
	FUZZ_ASSERT(sse_data_event(&out, p, len) == 0);

	/* Walk the lines: CRLF, LF and CR all end one. */
	int lines = 0, blank_at_end = 0, events = 0, ndata = 0;
	for (size_t i = 0; i < out.len;) {
		size_t e = i;
		while (e < out.len && out.data[e] != '\n' && out.data[e] != '\r')
			e++;
		FUZZ_ASSERT(e < out.len);   /* every line is terminated */
		const char *line = out.data + i;
		size_t ll = e - i;
		size_t next = e + ((out.data[e] == '\r' && e + 1 < out.len && out.data[e + 1] == '\n') ? 2 : 1);
		if (lines == 0) {
			FUZZ_ASSERT(ll == 11 && !memcmp(line, "event: data", 11));
		} else if (ll == 0) {
			/* The only blank line is the last one: one event, never two. */
			FUZZ_ASSERT(next == out.len);
			blank_at_end = 1;
			events++;
		} else {
			FUZZ_ASSERT(ll >= 5 && !memcmp(line, "data:", 5));
			const char *v = line + 5;
			size_t vl = ll - 5;
			if (vl && v[0] == ' ') {   /* WHATWG: one leading space is dropped */
				v++;
				vl--;
			}
			if (ndata++)
				buf_append(&data, "\n", 1);
			buf_append(&data, v, vl);
		}
		lines++;
		i = next;
	}
	FUZZ_ASSERT(blank_at_end && events == 1 && lines >= 3);

	/* The payload a client can recover: CRLF and CR become LF. */
	char *want = malloc(len + 1);
	size_t wl = unit_sse_normalize(p, len, want);
	FUZZ_ASSERT(data.len == wl && (wl == 0 || !memcmp(data.data, want, wl)));
	free(want);
	buf_free(&data);
	buf_free(&out);
}

static int b64val(char c)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p = c ? strchr(tab, c) : NULL;
	return p ? (int)(p - tab) : -1;
}

static void check_base64(const unsigned char *p, size_t len)
{
	struct buf out;
	buf_init(&out);
	FUZZ_ASSERT(sse_base64(&out, p, len) == 0);
	FUZZ_ASSERT(out.len == (len + 2) / 3 * 4);
	unsigned char *dec = malloc(len + 3);
	size_t n = 0;
	for (size_t i = 0; i < out.len; i += 4) {
		uint32_t v = 0;
		int pad = 0;
		for (int k = 0; k < 4; k++) {
			char c = out.data[i + (size_t)k];
			if (c == '=') {
				FUZZ_ASSERT(i + 4 == out.len && k >= 2);
				pad++;
				v <<= 6;
				continue;
			}
			FUZZ_ASSERT(!pad);
			int d = b64val(c);
			FUZZ_ASSERT(d >= 0);
			v = v << 6 | (uint32_t)d;
		}
		for (int k = 0; k < 3 - pad; k++)
			dec[n++] = (unsigned char)(v >> (16 - 8 * k));
	}
	FUZZ_ASSERT(n == len && (len == 0 || !memcmp(dec, p, len)));
	free(dec);

	/* Base64 text is one data line. */
	struct buf ev;
	buf_init(&ev);
	sse_data_event(&ev, out.data ? out.data : "", out.len);
	FUZZ_ASSERT(ev.len == 12 + 5 + out.len + 2 && !memcmp(ev.data, "event: data\ndata:", 17));
	buf_free(&ev);
	buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_data_event((const char *)data, size);
	check_base64(data, size);
	return 0;
}
