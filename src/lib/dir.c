/* dir.c: mkdir -p. */
#include "lib/dir.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

int dir_make(const char *dir)
{
	char tmp[4096];
	size_t len = strlen(dir);
	if (len == 0 || len >= sizeof tmp) {
		errno = len ? ENAMETOOLONG : ENOENT;
		return -1;
	}
	memcpy(tmp, dir, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (tmp[i] == '/' || tmp[i] == '\0') {
			char c = tmp[i];
			tmp[i] = '\0';
			if (mkdir(tmp, 0770) < 0 && errno != EEXIST)
				return -1;
			tmp[i] = c;
		}
	}
	return 0;
}
