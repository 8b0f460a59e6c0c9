/* listen.h: the listen address of lmstream-live ("HOST:PORT" or
 * "unix:PATH") as a socket address, and the unix: socket itself. */
#ifndef LS_LIVE_LISTEN_H
#define LS_LIVE_LISTEN_H
#include <sys/socket.h>

/* Parses s, "HOST:PORT": HOST a numeric IPv4 or IPv6 address, the IPv6 one
 * in brackets ("127.0.0.1:8081", "[::1]:8081"); PORT decimal digits, 1 to
 * 65535. A bracket without its partner, or anything between "]" and ":",
 * is refused. Or s is "unix:PATH", PATH absolute and shorter than
 * sun_path (107 bytes). Fills *ss and *len and returns 0, or returns -1
 * (then *ss and *len may have been written). */
int parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len);

/* Binds and listens on the unix: address ss: a stale socket file left at
 * its path is replaced (not one a running server answers on, nor any other
 * kind of file), and the socket gets mode
 * 0660 and group (a name; "" keeps the process's). Returns the listening
 * descriptor, or -1 with a reason in err. */
int listen_unix(const struct sockaddr_storage *ss, socklen_t len, const char *group, char *err,
                size_t errlen);

#endif
