/* glob.c: matching stream paths against the patterns of access rights. */
#include "lib/glob.h"
#include "lib/parse.h"

#include <string.h>

/* The next segment at or after *i in s: its start and length, or 0 at the
 * end. Empty segments (repeated slashes) are skipped. */
static int next_seg(const char *s, size_t len, size_t *i, const char **seg, size_t *seg_len)
{
	while (*i < len && s[*i] == '/')
		(*i)++;
	if (*i >= len)
		return 0;
	size_t start = *i;
	while (*i < len && s[*i] != '/')
		(*i)++;
	*seg = s + start;
	*seg_len = *i - start;
	return 1;
}

static int is_seg(const char *seg, size_t n, const char *what)
{
	return n == strlen(what) && !memcmp(seg, what, n);
}

/* Matches from pattern position pi and path position si. "**" tries every
 * number of segments; patterns are short, so the recursion is shallow (at
 * most one level per pattern segment). */
static int match_from(const char *pat, size_t pl, size_t pi, const char *path, size_t sl, size_t si)
{
	const char *ps, *ss;
	size_t pn, sn;
	size_t pnext = pi, snext = si;
	if (!next_seg(pat, pl, &pnext, &ps, &pn))
		return !next_seg(path, sl, &snext, &ss, &sn); /* both at their end */
	if (is_seg(ps, pn, "**")) {
		for (size_t k = si;;) {
			if (match_from(pat, pl, pnext, path, sl, k))
				return 1;
			if (!next_seg(path, sl, &k, &ss, &sn))
				return 0;
		}
	}
	if (!next_seg(path, sl, &snext, &ss, &sn))
		return 0;
	if (!is_seg(ps, pn, "*") && (pn != sn || memcmp(ps, ss, pn)))
		return 0;
	return match_from(pat, pl, pnext, path, sl, snext);
}

int glob_match(const char *pat, size_t pat_len, const char *path, size_t path_len)
{
	return match_from(pat, pat_len, 0, path, path_len, 0);
}

int glob_match_list(const char *list, const char *path, size_t path_len)
{
	const char *w;
	size_t n;
	for (size_t pos = 0; parse_next_word(list, &pos, &w, &n);)
		if (glob_match(w, n, path, path_len))
			return 1;
	return 0;
}
