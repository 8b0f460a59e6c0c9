/* listen.h: the listen address of lmstream-live ("HOST:PORT") as a socket address. */
#ifndef LS_LIVE_LISTEN_H
#define LS_LIVE_LISTEN_H
#include <sys/socket.h>

/* Parses s, "HOST:PORT": HOST a numeric IPv4 or IPv6 address, the IPv6 one
 * in brackets ("127.0.0.1:8081", "[::1]:8081"); PORT decimal digits, 1 to
 * 65535. A bracket without its partner, or anything between "]" and ":",
 * is refused. Fills *ss and *len and returns 0, or returns -1 (then *ss and
 * *len may have been written). */
int parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len);

#endif
