/* buf.h: growable byte buffer. */
#ifndef LS_BUF_H
#define LS_BUF_H
#include <stddef.h>

/* A buffer owns its bytes (malloc); buf_free releases them. data is NUL
 * terminated after every successful append (not counted in len). */
struct buf {
	char  *data;
	size_t len;
	size_t cap;
	int    failed;   /* sticky: set when an allocation failed */
};

void buf_init(struct buf *b);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);              /* len = 0, keeps memory */
int  buf_reserve(struct buf *b, size_t extra); /* 0 or -1 */
int  buf_append(struct buf *b, const void *p, size_t n);
int  buf_puts(struct buf *b, const char *s);
int  buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
