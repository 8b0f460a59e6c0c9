/* log.c: one line per event on stderr, with control bytes filtered out. */
#include "lib/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *log_program = "lmstream";
static int log_level = LOG_LVL_INFO;

void log_init(const char *program, int level)
{
	log_program = program;
	log_level = level;
}

const char *const log_level_names[] = { "error", "warn", "info", "debug", NULL };

void log_msg(int level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (level > log_level)
		return;
	int n = snprintf(line, sizeof line, "%s[%d]: %s: ", log_program, (int)getpid(), log_level_names[level]);
	if (n < 0 || (size_t)n >= sizeof line)
		return;
	size_t head = (size_t)n;
	va_start(ap, fmt);
	vsnprintf(line + head, sizeof line - head - 1, fmt, ap);
	va_end(ap);
	size_t len = strlen(line);
	for (size_t i = head; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c < 0x20 || c == 0x7f)
			line[i] = '?';
	}
	line[len++] = '\n';
	/* One write per line so lines from many workers do not interleave. */
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
}
