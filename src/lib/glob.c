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

/* The path being matched, and the user a "{user}" segment stands for
 * (NULL: none, and such a segment matches nothing). */
struct subject {
	const char *path;
	size_t len;
	const char *user;
	size_t user_len;
};

/* Whether pattern segment ps (pn bytes) matches path segment ss (sn). */
static int seg_matches(const char *ps, size_t pn, const char *ss, size_t sn, const struct subject *s)
{
	if (is_seg(ps, pn, "*"))
		return 1;
	if (is_seg(ps, pn, "{user}"))
		return s->user && sn == s->user_len && !memcmp(ss, s->user, sn);
	return pn == sn && !memcmp(ps, ss, pn);
}

/* Matches from pattern position pi and path position si. "**" tries every
 * number of segments; patterns are short, so the recursion is shallow (at
 * most one level per pattern segment). */
static int match_from(const char *pat, size_t pl, size_t pi, const struct subject *s, size_t si)
{
	const char *path = s->path;
	size_t sl = s->len;
	const char *ps, *ss;
	size_t pn, sn;
	size_t pnext = pi, snext = si;
	if (!next_seg(pat, pl, &pnext, &ps, &pn))
		return !next_seg(path, sl, &snext, &ss, &sn); /* both at their end */
	if (is_seg(ps, pn, "**")) {
		for (size_t k = si;;) {
			if (match_from(pat, pl, pnext, s, k))
				return 1;
			if (!next_seg(path, sl, &k, &ss, &sn))
				return 0;
		}
	}
	if (!next_seg(path, sl, &snext, &ss, &sn))
		return 0;
	if (!seg_matches(ps, pn, ss, sn, s))
		return 0;
	return match_from(pat, pl, pnext, s, snext);
}

int glob_match(const char *pat, size_t pat_len, const char *path, size_t path_len)
{
	struct subject s = { path, path_len, NULL, 0 };
	return match_from(pat, pat_len, 0, &s, 0);
}

int glob_match_list_user(const char *list, const char *path, size_t path_len, const char *user)
{
	struct subject s = { path, path_len, user, user ? strlen(user) : 0 };
	const char *w;
	size_t n;
	if (user && (!s.user_len || memchr(user, '/', s.user_len)))
		s.user = NULL; /* no name, or one that is not a single segment */
	for (size_t pos = 0; parse_next_word(list, &pos, &w, &n);)
		if (match_from(w, n, 0, &s, 0))
			return 1;
	return 0;
}

int glob_match_list(const char *list, const char *path, size_t path_len)
{
	return glob_match_list_user(list, path, path_len, NULL);
}

/* Whether pattern position pi covers every path the subscription pattern
 * s matches from si on: s's "*" and "**" segments are wildcards, which
 * only a "*" (for "*") or a "**" (for either) of the pattern covers. Sound
 * rather than complete: an unusual pair may be refused that a longer proof
 * would accept, never the reverse. */
static int covers_from(const char *pat, size_t pl, size_t pi, const struct subject *s, size_t si)
{
	const char *ps, *ss = NULL;
	size_t pn, sn = 0, pnext = pi, snext = si;
	int more = next_seg(s->path, s->len, &snext, &ss, &sn);
	if (!next_seg(pat, pl, &pnext, &ps, &pn))
		return !more;
	if (is_seg(ps, pn, "**"))
		return covers_from(pat, pl, pnext, s, si) || (more && covers_from(pat, pl, pi, s, snext));
	if (!more || is_seg(ss, sn, "**"))
		return 0;
	if (is_seg(ss, sn, "*"))
		return is_seg(ps, pn, "*") && covers_from(pat, pl, pnext, s, snext);
	return seg_matches(ps, pn, ss, sn, s) && covers_from(pat, pl, pnext, s, snext);
}

int glob_covers_list_user(const char *list, const char *sub, size_t sub_len, const char *user)
{
	struct subject s = { sub, sub_len, user, user ? strlen(user) : 0 };
	const char *w;
	size_t n;
	if (user && (!s.user_len || memchr(user, '/', s.user_len)))
		s.user = NULL;
	for (size_t pos = 0; parse_next_word(list, &pos, &w, &n);)
		if (covers_from(w, n, 0, &s, 0))
			return 1;
	return 0;
}

int glob_covers(const char *pat, size_t pat_len, const char *sub, size_t sub_len)
{
	struct subject s = { sub, sub_len, NULL, 0 };
	return covers_from(pat, pat_len, 0, &s, 0);
}
