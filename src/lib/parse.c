/* parse.c: header value, path and query parsers. */
#include "lib/parse.h"
#include "lib/num.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

static int is_digit(char c) { return c >= '0' && c <= '9'; }

int parse_ttl(const char *s, size_t len, uint64_t *seconds)
{
	if (len > 1 && s[0] == '0')
		return -1;
	return num_decimal(s, len, 10, seconds);
}

int parse_uint53(const char *s, size_t len, uint64_t *out)
{
	uint64_t v;
	if (num_decimal(s, len, 16, &v) || v > 9007199254740991ULL)
		return -1;
	*out = v;
	return 0;
}

static int fixed_digits(const char *s, size_t n, int *out)
{
	uint64_t v;
	if (num_decimal(s, n, n, &v))
		return -1;
	*out = (int)v;
	return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static int64_t days_from_civil(int y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

int parse_expires_at(const char *s, size_t len, int64_t *ms)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int y, mo, d, h, mi, sec, frac_ms = 0;
	size_t i;

	/* YYYY-MM-DDTHH:MM:SS is 19 characters. */
	if (len < 20 || len > 64)
		return -1;
	if (fixed_digits(s, 4, &y) || s[4] != '-' || fixed_digits(s + 5, 2, &mo) || s[7] != '-' ||
	    fixed_digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
	    fixed_digits(s + 11, 2, &h) || s[13] != ':' || fixed_digits(s + 14, 2, &mi) ||
	    s[16] != ':' || fixed_digits(s + 17, 2, &sec))
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 60)
		return -1;
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (mo == 2 && d == 29 && !leap)
		return -1;
	i = 19;
	if (i < len && s[i] == '.') {
		size_t start = ++i;
		uint64_t f;
		while (i < len && is_digit(s[i]))
			i++;
		size_t nd = i - start; /* milliseconds are the first three digits */
		if (nd == 0 || nd > 9 || num_decimal(s + start, nd < 3 ? nd : 3, 3, &f))
			return -1;
		frac_ms = (int)f * (nd == 1 ? 100 : nd == 2 ? 10 : 1);
	}
	int64_t tz = 0;
	if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
		i++;
	} else if (i < len && (s[i] == '+' || s[i] == '-')) {
		int th, tm;
		if (len - i != 6 || fixed_digits(s + i + 1, 2, &th) || s[i + 3] != ':' ||
		    fixed_digits(s + i + 4, 2, &tm) || th > 23 || tm > 59)
			return -1;
		tz = (int64_t)(th * 60 + tm) * 60 * (s[i] == '+' ? 1 : -1);
		i += 6;
	} else {
		return -1;
	}
	if (i != len)
		return -1;
	int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - tz;
	*ms = secs * 1000 + frac_ms;
	return 0;
}

static int is_token(char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c))
		return 1;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int parse_media_type(const char *s, size_t len, char *out, size_t cap)
{
	size_t i = 0, n = 0;
	int slash = 0;

	while (i < len && (s[i] == ' ' || s[i] == '\t'))
		i++;
	size_t start = i;
	for (; i < len && s[i] != ';' && s[i] != ' ' && s[i] != '\t'; i++) {
		char c = s[i];
		if (c == '/') {
			if (slash || i == start)
				return -1;
			slash = 1;
		} else if (!is_token(c)) {
			return -1;
		}
		if (n + 1 >= cap)
			return -1;
		out[n++] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
	}
	if (!slash || out[n - 1] == '/')
		return -1;
	while (i < len && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (i < len && s[i] != ';')
		return -1;
	out[n] = '\0';
	return (int)n;
}

int parse_header_safe(const char *s, size_t len, size_t max)
{
	if (len == 0 || len > max)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c >= 0x7f)
			return -1;
	}
	return 0;
}

/* The byte of the escape "%XY" at in[i] (i + 2 < len), or -1. */
static int unescape(const char *in, size_t len, size_t i)
{
	unsigned char b;
	if (i + 2 >= len || num_hex_decode(in + i + 1, 1, &b))
		return -1;
	return b;
}

long parse_percent_decode(const char *in, size_t len, char *out, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		if (c == '%') {
			int b = unescape(in, len, i);
			if (b < 0)
				return -1;
			c = (char)b;
			i += 2;
		}
		if (n + 1 >= cap)
			return -1;
		out[n++] = c;
	}
	if (cap == 0)
		return -1;
	out[n] = '\0';
	return (long)n;
}

enum path_error parse_stream_path(const char *target, size_t len, const char *prefix,
                                  size_t max_name, char *out, size_t *outlen)
{
	size_t plen = strlen(prefix);
	if (len < plen || memcmp(target, prefix, plen))
		return PATH_NOT_PREFIX;
	target += plen;
	len -= plen;
	if (len == 0)
		return PATH_EMPTY;
	/* Every escape shrinks the text, so more than 3x the limit is too long. */
	if (len > max_name * 3)
		return PATH_TOO_LONG;
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		char c = target[i];
		if (c == '%') {
			int b = unescape(target, len, i);
			if (b < 0)
				return PATH_BAD_ESCAPE;
			/* A web server matches its path rules (Apache's <Location>,
			 * with AllowEncodedSlashes NoDecode) against "a%2Fb", not
			 * "a/b": the name it checked must be the name used. */
			if (b == '/')
				return PATH_ENCODED_SLASH;
			c = (char)b;
			i += 2;
		}
		if ((unsigned char)c < 0x20 || c == 0x7f)
			return PATH_BAD_CHAR;
		if (n >= max_name)
			return PATH_TOO_LONG;
		out[n++] = c;
	}
	out[n] = '\0';
	/* Reject "." and ".." as any segment of the decoded name. */
	for (size_t s = 0; s < n;) {
		size_t e = s;
		while (e < n && out[e] != '/')
			e++;
		size_t sl = e - s;
		if ((sl == 1 && out[s] == '.') || (sl == 2 && out[s] == '.' && out[s + 1] == '.'))
			return PATH_DOT_SEGMENT;
		s = e + 1;
	}
	*outlen = n;
	return PATH_OK;
}

int parse_next_word(const char *list, size_t *pos, const char **w, size_t *n)
{
	if (!list)
		return 0;
	const char *s = list + *pos;
	s += strspn(s, " \t");
	if (!*s)
		return 0;
	*w = s;
	*n = strcspn(s, " \t");
	*pos = (size_t)(s + *n - list);
	return 1;
}

int parse_query_next(const char *q, size_t qlen, size_t *pos, struct query_pair *p)
{
	size_t i = *pos, e = i;
	if (i > qlen)
		return 0;
	while (e < qlen && q[e] != '&')
		e++;
	const char *eq = memchr(q + i, '=', e - i);
	p->key = q + i;
	p->klen = eq ? (size_t)(eq - p->key) : e - i;
	p->val = eq ? eq + 1 : "";
	p->vlen = eq ? e - i - p->klen - 1 : 0;
	*pos = e + 1;
	return 1;
}

enum media_kind parse_media_kind(const char *mt)
{
	size_t n = strlen(mt);
	const char *slash = strchr(mt, '/');
	/* A structured syntax suffix (RFC 6839): "application/vnd.example+json". */
	if (!strcmp(mt, "application/json") || (slash && n - (size_t)(slash - mt) > 6 && !strcmp(mt + n - 5, "+json")))
		return MEDIA_JSON;
	return parse_media_kind_legacy(mt);
}

enum media_kind parse_media_kind_legacy(const char *mt)
{
	if (!strcmp(mt, "application/json"))
		return MEDIA_JSON;
	return strncmp(mt, "text/", 5) ? MEDIA_BINARY : MEDIA_TEXT;
}

/* One value of a Forwarded pair at p: a token, or a quoted-string with
 * backslash escapes. Copies it into out when out is not NULL (cap bytes
 * with the NUL; *too_long when it does not fit). Returns the position after
 * it, or NULL when malformed. */
static const char *forwarded_value(const char *p, char *out, size_t cap, size_t *len, int *too_long)
{
	int quoted = *p == '"';
	*len = 0;
	p += quoted;
	for (; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		if (quoted && ch == '"')
			return p + 1;
		if (!quoted && (ch == ';' || ch == ',' || ch == ' ' || ch == '\t'))
			break;
		if (quoted && ch == '\\' && !*++p)
			return NULL;
		ch = (unsigned char)*p;
		if (ch < 0x20 || ch == 0x7f || (!quoted && ch == '"'))
			return NULL;
		if (out && *len + 1 < cap)
			out[*len] = (char)ch;
		else if (out)
			*too_long = 1;
		(*len)++;
	}
	return quoted ? NULL : p;
}

int parse_forwarded_last(const char *h, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name);
	int found = -1, too_long = 0;
	const char *p = h;
	for (;;) {
		p += strspn(p, " \t");
		if (*p == ',') { /* an empty element */
			p++;
			found = -1;
			continue;
		}
		if (!*p)
			return found;
		size_t kn = strcspn(p, "=;, \t\"");
		int match = kn == nl && !strncasecmp(p, name, nl);
		if (!kn || p[kn] != '=')
			return -1;
		size_t vlen;
		too_long = 0;
		p = forwarded_value(p + kn + 1, match ? out : NULL, cap, &vlen, &too_long);
		if (!p)
			return -1;
		if (match) {
			found = too_long || vlen > INT_MAX ? -1 : (int)vlen;
			if (found >= 0)
				out[vlen] = '\0';
		}
		p += strspn(p, " \t");
		if (*p == ',')
			found = -1; /* a later element: only the last counts */
		else if (*p && *p != ';')
			return -1;
		if (*p)
			p++;
	}
}

static int in4_loopback(const struct in_addr *a)
{
	return (ntohl(a->s_addr) >> 24) == 127;
}

static int in6_loopback(const struct in6_addr *a)
{
	if (IN6_IS_ADDR_LOOPBACK(a))
		return 1;
	if (!IN6_IS_ADDR_V4MAPPED(a))
		return 0;
	struct in_addr v4;
	memcpy(&v4, a->s6_addr + 12, 4);
	return in4_loopback(&v4);
}

int parse_is_loopback(const char *addr)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (!addr)
		return 0;
	if (inet_pton(AF_INET, addr, &a4) == 1)
		return in4_loopback(&a4);
	return inet_pton(AF_INET6, addr, &a6) == 1 && in6_loopback(&a6);
}

int sockaddr_is_loopback(const struct sockaddr *sa)
{
	if (sa && sa->sa_family == AF_INET)
		return in4_loopback(&((const struct sockaddr_in *)(const void *)sa)->sin_addr);
	if (sa && sa->sa_family == AF_INET6)
		return in6_loopback(&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr);
	return 0;
}
