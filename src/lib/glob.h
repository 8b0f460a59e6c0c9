/* glob.h: path patterns of access rights: segments separated by '/', where
 * a segment "*" matches exactly one segment, a segment "**" zero or more,
 * a segment "{user}" exactly the segment that is the given user's name
 * (never a pattern: a user named "*" matches only a segment "*"), and any
 * other segment itself. Leading, trailing and repeated slashes do
 * not count: "a" then "**" covers a, a/b and a/b/c; "a" then "*" covers a/b
 * but neither ab/x nor a/x/y (tests/unit/test_glob.c has the cases). Pure
 * functions over (const char *, size_t); no I/O. */
#ifndef LS_GLOB_H
#define LS_GLOB_H
#include <stddef.h>

/* Whether path (path_len bytes) matches pattern (pat_len bytes). */
int glob_match(const char *pat, size_t pat_len, const char *path, size_t path_len);

/* Whether path matches any of the space-separated patterns in list. */
int glob_match_list(const char *list, const char *path, size_t path_len);

/* The same, with "{user}" segments standing for user (NUL terminated; NULL,
 * empty or containing '/': such segments match nothing). */
int glob_match_list_user(const char *list, const char *path, size_t path_len, const char *user);

/* Whether one of the patterns of list covers every path the subscription
 * pattern sub matches (its "*" is one segment, its "**" any number, as
 * here): a then ** covers a then *, and a/b then **; a then * covers a
 * then *, but not a then **. A path without wildcards is covered when it
 * matches (tests/unit/test_glob.c has the cases). */
int glob_covers(const char *pat, size_t pat_len, const char *sub, size_t sub_len);
int glob_covers_list_user(const char *list, const char *sub, size_t sub_len, const char *user);

#endif
