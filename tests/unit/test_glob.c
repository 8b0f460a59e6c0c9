/* test_glob.c: unit tests of src/lib/glob.c, the patterns of access rights. */
#include "lib/glob.h"
#include "unit.h"

#include <string.h>

static const struct {
	int line;
	const char *pat, *path;
	int match;
} rows[] = {
	/* literal segments */
	{ __LINE__, "a", "a", 1 },
	{ __LINE__, "a", "b", 0 },
	{ __LINE__, "a/b", "a/b", 1 },
	{ __LINE__, "a/b", "a", 0 },
	{ __LINE__, "a", "a/b", 0 },
	{ __LINE__, "ab", "a", 0 },
	{ __LINE__, "a", "ab", 0 },
	/* "*": exactly one segment */
	{ __LINE__, "a/*", "a/x", 1 },
	{ __LINE__, "a/*", "ab/x", 0 },
	{ __LINE__, "a/*", "a/x/y", 0 },
	{ __LINE__, "a/*", "a", 0 },
	{ __LINE__, "*", "anything", 1 },
	{ __LINE__, "*", "a/b", 0 },
	{ __LINE__, "*/b", "x/b", 1 },
	{ __LINE__, "*/b", "x/c", 0 },
	{ __LINE__, "a*", "ab", 0 },           /* "*" is a whole segment, not a wildcard inside one */
	{ __LINE__, "a*", "a*", 1 },
	/* "**": zero or more segments */
	{ __LINE__, "a/**", "a", 1 },
	{ __LINE__, "a/**", "a/x", 1 },
	{ __LINE__, "a/**", "a/x/y/z", 1 },
	{ __LINE__, "a/**", "ab", 0 },
	{ __LINE__, "a/**", "ab/x", 0 },
	{ __LINE__, "a/**", "b/a", 0 },
	{ __LINE__, "**", "a", 1 },
	{ __LINE__, "**", "a/b/c", 1 },
	{ __LINE__, "**/c", "c", 1 },
	{ __LINE__, "**/c", "a/b/c", 1 },
	{ __LINE__, "**/c", "a/b/d", 0 },
	{ __LINE__, "a/**/z", "a/z", 1 },
	{ __LINE__, "a/**/z", "a/b/c/z", 1 },
	{ __LINE__, "a/**/z", "a/b/c", 0 },
	{ __LINE__, "a/**/*/z", "a/z", 0 },
	{ __LINE__, "a/**/*/z", "a/b/z", 1 },
	{ __LINE__, "**/**", "x", 1 },
	/* slashes do not count */
	{ __LINE__, "/a/b/", "a/b", 1 },
	{ __LINE__, "a//b", "a/b", 1 },
	{ __LINE__, "a/b", "/a//b/", 1 },
	/* the empty pattern covers nothing but the empty path */
	{ __LINE__, "", "a", 0 },
	{ __LINE__, "", "", 1 },
	/* bytes are compared as they are */
	{ __LINE__, "caf\xc3\xa9/*", "caf\xc3\xa9/x", 1 },
	{ __LINE__, "A", "a", 0 },
};

static const struct {
	int line;
	const char *list, *path;
	int match;
} list_rows[] = {
	{ __LINE__, "", "a", 0 },
	{ __LINE__, "demo/** chat/**", "chat/room", 1 },
	{ __LINE__, "demo/** chat/**", "demo", 1 },
	{ __LINE__, "demo/**  \t chat/**", "chat", 1 },
	{ __LINE__, "demo/** chat/**", "private/x", 0 },
	{ __LINE__, " a ", "a", 1 },
};

/* "{user}": exactly the segment that is the user's name, taken literally. */
static const struct {
	int line;
	const char *list, *path, *user;
	int match;
} user_rows[] = {
	{ __LINE__, "users/{user}/**", "users/alice/a", "alice", 1 },
	{ __LINE__, "users/{user}/**", "users/alice", "alice", 1 },
	{ __LINE__, "users/{user}/**", "users/bob/a", "alice", 0 },
	{ __LINE__, "users/{user}/**", "users/alicex/a", "alice", 0 },
	{ __LINE__, "users/{user}/**", "users/alic/a", "alice", 0 },
	{ __LINE__, "users/{user}/**", "users/alice/a", NULL, 0 },     /* no user: matches nothing */
	{ __LINE__, "users/{user}/**", "users/{user}/a", NULL, 0 },
	{ __LINE__, "users/{user}/**", "users//a", "", 0 },
	{ __LINE__, "users/{user}/**", "users/*/a", "*", 1 },          /* literal, not a pattern */
	{ __LINE__, "users/{user}/**", "users/alice/a", "*", 0 },
	{ __LINE__, "users/{user}/**", "users/alice/a", "**", 0 },
	{ __LINE__, "users/{user}/**", "users/a/b/c", "a/b", 0 },      /* not one segment: nothing */
	{ __LINE__, "users/{user}/**", "users/a/b", "a/b", 0 },
	{ __LINE__, "users/x{user}/**", "users/xalice/a", "alice", 0 }, /* only a whole segment */
	{ __LINE__, "{user}", "alice", "alice", 1 },
	{ __LINE__, "a/** {user}/inbox", "alice/inbox", "alice", 1 },
	{ __LINE__, "{user}/{user}", "alice/alice", "alice", 1 },
	{ __LINE__, "{user}/{user}", "alice/bob", "alice", 0 },
	{ __LINE__, "*/{user}", "x/alice", "alice", 1 },
	{ __LINE__, "teams/*/{user}/**", "teams/red/alice/x", "alice", 1 },
	{ __LINE__, "teams/*/{user}/**", "teams/red/bob/x", "alice", 0 },
};

/* glob_covers: a right's pattern over every path of a subscription's. */
static const struct {
	int line;
	const char *right, *sub;
	int covers;
} cover_rows[] = {
	{ __LINE__, "**", "a/*", 1 },
	{ __LINE__, "**", "**", 1 },
	{ __LINE__, "a/**", "a/*", 1 },
	{ __LINE__, "a/**", "a/b/**", 1 },
	{ __LINE__, "a/**", "a/**", 1 },
	{ __LINE__, "a/**", "a", 1 },
	{ __LINE__, "a/**", "**", 0 },
	{ __LINE__, "a/**", "b/*", 0 },
	{ __LINE__, "a/*", "a/*", 1 },
	{ __LINE__, "a/*", "a/b", 1 },
	{ __LINE__, "a/*", "a/**", 0 },      /* a/** also matches a and a/b/c */
	{ __LINE__, "a/*", "a/*/c", 0 },
	{ __LINE__, "a/b", "a/*", 0 },       /* one stream does not cover them all */
	{ __LINE__, "*/x", "*/x", 1 },
	{ __LINE__, "*/x", "a/x", 1 },
	{ __LINE__, "*/x", "**/x", 0 },
	{ __LINE__, "**/x", "*/x", 1 },
	{ __LINE__, "**/x", "a/**/x", 1 },
	{ __LINE__, "**/x", "a/**", 0 },
	{ __LINE__, "a/*/**", "a/*", 1 },
	{ __LINE__, "a/*/**", "a/**", 0 },    /* a itself */
	{ __LINE__, "events/*", "events/*", 1 },
	{ __LINE__, "events/*", "events/x/y", 0 },
};

int main(void)
{
	for (size_t i = 0; i < NELEM(cover_rows); i++)
		CHECK_INT_AT(cover_rows[i].line,
		             glob_covers(cover_rows[i].right, strlen(cover_rows[i].right), cover_rows[i].sub,
		                         strlen(cover_rows[i].sub)),
		             cover_rows[i].covers);
	CHECK_INT(glob_covers_list_user("x/** users/{user}/**", "users/alice/*", 13, "alice"), 1);
	CHECK_INT(glob_covers_list_user("x/** users/{user}/**", "users/bob/*", 11, "alice"), 0);
	for (size_t i = 0; i < NELEM(user_rows); i++)
		CHECK_INT_AT(user_rows[i].line,
		             glob_match_list_user(user_rows[i].list, user_rows[i].path, strlen(user_rows[i].path),
		                                  user_rows[i].user),
		             user_rows[i].match);
	/* without a user, glob_match and glob_match_list never match "{user}" */
	CHECK_INT(glob_match("{user}", 6, "{user}", 6), 0);
	CHECK_INT(glob_match_list("{user}", "alice", 5), 0);
	for (size_t i = 0; i < NELEM(rows); i++)
		CHECK_INT_AT(rows[i].line, glob_match(rows[i].pat, strlen(rows[i].pat), rows[i].path, strlen(rows[i].path)),
		             rows[i].match);
	for (size_t i = 0; i < NELEM(list_rows); i++)
		CHECK_INT_AT(list_rows[i].line, glob_match_list(list_rows[i].list, list_rows[i].path, strlen(list_rows[i].path)),
		             list_rows[i].match);
	/* The path is read only to its length. */
	CHECK_INT(glob_match("a/*", 3, "a/bc/d", 4), 1);
	return unit_done();
}
