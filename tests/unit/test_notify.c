/* test_notify.c: unit tests of src/front/notify.c (commit notifications over
 * AF_UNIX datagram sockets): the socket path a config names, a listener in a
 * temporary data directory receiving what notify_send sends, a stale socket
 * file replaced, a full queue that drops instead of blocking, and the
 * notify_pair / notify_post relay. */
#include "front/notify.h"
#include "lib/log.h"
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define SUN_PATH_MAX sizeof(((struct sockaddr_un *)0)->sun_path)   /* 108 on Linux */

static char tmpdir[64];

/* "/" followed by n - 1 copies of c: a path of exactly n bytes. */
static const char *path_of(size_t n, char c)
{
	static char bufs[2][600];
	static int which;
	char *p = bufs[which ^= 1];
	if (n == 0)
		return "";
	p[0] = '/';
	memset(p + 1, c, n - 1);
	p[n] = '\0';
	return p;
}

/* --- notify_path ------------------------------------------------------------------- */

static const struct {
	int line;
	const char *data_dir, *notify_socket;
	const char *want;   /* NULL: refused */
} path_rows[] = {
	{ __LINE__, "/var/lib/lmstream", "", "/var/lib/lmstream/live.sock" },
	{ __LINE__, "/var/lib/lmstream", "/run/lmstream/live.sock", "/run/lmstream/live.sock" },
	{ __LINE__, "/var/lib/lmstream/", "", "/var/lib/lmstream//live.sock" },   /* joined as is */
	{ __LINE__, "relative", "", "relative/live.sock" },
	{ __LINE__, "/ignored", "relative.sock", "relative.sock" },
	{ __LINE__, "", "", "/live.sock" },
};

/* Lengths around the limit of a socket address: the path and its NUL must
 * fit sun_path. */
static const struct {
	int line;
	size_t dir_len;     /* data_dir of this many bytes */
	size_t sock_len;    /* notify_socket of this many bytes, 0 = unset */
	int rc;
} len_rows[] = {
	{ __LINE__, SUN_PATH_MAX - 11, 0, 0 },    /* + "/live.sock" = 107 bytes */
	{ __LINE__, SUN_PATH_MAX - 10, 0, -1 },   /* 108: no room for the NUL */
	{ __LINE__, 511, 0, -1 },
	{ __LINE__, 1, SUN_PATH_MAX - 1, 0 },
	{ __LINE__, 1, SUN_PATH_MAX, -1 },
	{ __LINE__, 1, 511, -1 },
	{ __LINE__, 511, 20, 0 },                 /* a long data_dir does not matter then */
};

/* The output buffer's size: exact fits, one byte short fails. */
static const struct {
	int line;
	size_t cap;
	int rc;
} cap_rows[] = {
	{ __LINE__, sizeof "/d/live.sock", 0 },
	{ __LINE__, sizeof "/d/live.sock" - 1, -1 },
	{ __LINE__, 1, -1 },
	{ __LINE__, 0, -1 },
	{ __LINE__, 512, 0 },
};

static void test_path(void)
{
	struct config cfg;
	char out[512];

	for (size_t i = 0; i < NELEM(path_rows); i++) {
		int line = path_rows[i].line;
		config_defaults(&cfg);
		snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", path_rows[i].data_dir);
		snprintf(cfg.notify_path, sizeof cfg.notify_path, "%s", path_rows[i].notify_socket);
		CHECK_INT_AT(line, notify_path(&cfg, out, sizeof out), 0);
		CHECK_STR_AT(line, out, path_rows[i].want);
	}

	for (size_t i = 0; i < NELEM(len_rows); i++) {
		int line = len_rows[i].line;
		config_defaults(&cfg);
		snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", path_of(len_rows[i].dir_len, 'd'));
		snprintf(cfg.notify_path, sizeof cfg.notify_path, "%s", path_of(len_rows[i].sock_len, 's'));
		CHECK_UINT_AT(line, strlen(cfg.data_dir), len_rows[i].dir_len);
		CHECK_UINT_AT(line, strlen(cfg.notify_path), len_rows[i].sock_len);
		int rc = notify_path(&cfg, out, sizeof out);
		CHECK_INT_AT(line, rc, len_rows[i].rc);
		if (rc == 0) {
			CHECK_AT(line, strlen(out) < SUN_PATH_MAX);
			if (len_rows[i].sock_len)
				CHECK_STR_AT(line, out, cfg.notify_path);
			else
				CHECK_AT(line, strlen(out) == len_rows[i].dir_len + 10 &&
				               !strcmp(out + len_rows[i].dir_len, "/live.sock"));
		}
	}

	for (size_t i = 0; i < NELEM(cap_rows); i++) {
		int line = cap_rows[i].line;
		/* Exactly cap bytes on the heap, so ASan sees a write past them. */
		char *o = malloc(cap_rows[i].cap ? cap_rows[i].cap : 1);
		config_defaults(&cfg);
		snprintf(cfg.data_dir, sizeof cfg.data_dir, "/d");
		int rc = notify_path(&cfg, o, cap_rows[i].cap);
		CHECK_INT_AT(line, rc, cap_rows[i].rc);
		if (rc == 0)
			CHECK_STR_AT(line, o, "/d/live.sock");
		free(o);
	}
}

/* --- listener and sender ------------------------------------------------------------- */

static int is_nonblocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl >= 0 && (fl & O_NONBLOCK);
}

static int is_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);
	return fl >= 0 && (fl & FD_CLOEXEC);
}

/* Receives everything pending on fd into msgs (at most max); returns how many. */
static size_t drain(int fd, struct notify_msg *msgs, size_t max)
{
	size_t n = 0;
	struct notify_msg m;
	while (notify_recv(fd, &m) == 1) {
		if (n < max)
			msgs[n] = m;
		n++;
	}
	return n;
}

static const struct {
	int line;
	uint64_t stream_id, txnid;
} msg_rows[] = {
	{ __LINE__, 1, 2 },
	{ __LINE__, 0, 0 },
	{ __LINE__, UINT64_MAX, UINT64_MAX },
	{ __LINE__, 42, 1ULL << 63 },
	{ __LINE__, 0x0102030405060708ULL, 0x1122334455667788ULL },
};

/* The listener's config (data_dir = the temporary directory), its socket
 * path, and a config whose path cannot fit a socket address. */
static struct config live_cfg, long_cfg;
static char sock[SUN_PATH_MAX];

static void setup_configs(void)
{
	config_defaults(&live_cfg);
	snprintf(live_cfg.data_dir, sizeof live_cfg.data_dir, "%s", tmpdir);
	CHECK_INT(notify_path(&live_cfg, sock, sizeof sock), 0);
	config_defaults(&long_cfg);
	snprintf(long_cfg.data_dir, sizeof long_cfg.data_dir, "%s", path_of(200, 'd'));
}

/* Before any notify_sender_init, and after one whose path cannot fit,
 * sending is a silent no-op (run first: the sender is set up once). */
static void test_send_unset(void)
{
	notify_send(1, 1);
	notify_sender_init(&long_cfg);
	notify_send(1, 1);
}

/* A listener in data_dir gets what notify_send sends, in order. Returns the
 * listener (or -1). */
static int test_send_recv(void)
{
	struct notify_msg m;
	struct stat st;

	int fd = notify_listen(&live_cfg);
	CHECK(fd >= 0);
	if (fd < 0) {
		printf("  notify_listen(%s): %s\n", sock, strerror(errno));
		return -1;
	}
	CHECK(is_nonblocking(fd));
	CHECK(is_cloexec(fd));
	CHECK_INT(stat(sock, &st), 0);
	CHECK(S_ISSOCK(st.st_mode));
	CHECK_INT(st.st_mode & 0777, 0660);   /* writers of the same group may send */

	/* Nothing pending: 0, not -1, and no blocking. */
	CHECK_INT(notify_recv(fd, &m), 0);
	CHECK_INT(notify_recv(fd, &m), 0);

	notify_sender_init(&live_cfg);
	notify_send(7, 42);
	memset(&m, 0, sizeof m);
	CHECK_INT(notify_recv(fd, &m), 1);
	CHECK_UINT(m.stream_id, 7);
	CHECK_UINT(m.txnid, 42);
	CHECK_INT(notify_recv(fd, &m), 0);

	/* Several, in order, each value intact. */
	for (size_t i = 0; i < NELEM(msg_rows); i++)
		notify_send(msg_rows[i].stream_id, msg_rows[i].txnid);
	for (size_t i = 0; i < NELEM(msg_rows); i++) {
		int line = msg_rows[i].line;
		memset(&m, 0, sizeof m);
		CHECK_INT_AT(line, notify_recv(fd, &m), 1);
		CHECK_UINT_AT(line, m.stream_id, msg_rows[i].stream_id);
		CHECK_UINT_AT(line, m.txnid, msg_rows[i].txnid);
	}
	CHECK_INT(notify_recv(fd, &m), 0);

	/* A second sender_init keeps the first socket (and its address). */
	notify_sender_init(&long_cfg);
	notify_send(8, 43);
	CHECK_INT(notify_recv(fd, &m), 1);
	CHECK(m.stream_id == 8 && m.txnid == 43);
	return fd;
}

/* Only root, this process's user or group and the data directory's owner
 * or group may announce commits: a datagram from another account (the
 * socket file opened to it, as a careless chmod would) is ignored. Needs
 * root to send as another user; the README's test command runs as root. */
static void test_credentials(int fd)
{
	struct notify_msg m;
	if (geteuid() != 0) {
		printf("  test_credentials: not root, cannot send as another user\n");
		CHECK(0);
		return;
	}
	struct stat dir;
	CHECK_INT(stat(tmpdir, &dir), 0);
	CHECK_INT(chmod(tmpdir, 0711), 0);
	CHECK_INT(chmod(sock, 0666), 0);
	pid_t pid = fork();
	if (pid == 0) {
		if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
			_exit(2);
		int s = socket(AF_UNIX, SOCK_DGRAM, 0);
		struct sockaddr_un a = { .sun_family = AF_UNIX };
		snprintf(a.sun_path, sizeof a.sun_path, "%s", sock);
		struct notify_msg fake = { 1, UINT64_MAX };
		_exit(sendto(s, &fake, sizeof fake, 0, (struct sockaddr *)&a, sizeof a) == sizeof fake ? 0 : 3);
	}
	int status = -1;
	waitpid(pid, &status, 0);
	CHECK_INT(status, 0);
	CHECK_INT(notify_recv(fd, &m), 2);
	/* root may */
	notify_send(5, 6);
	CHECK_INT(notify_recv(fd, &m), 1);
	CHECK(m.stream_id == 5 && m.txnid == 6);
	CHECK_INT(notify_recv(fd, &m), 0);
	chmod(sock, 0660);
	chmod(tmpdir, dir.st_mode & 07777);
}

/* A full queue: sends never block; what arrives is a prefix, in order. */
static void test_send_flood(int fd)
{
	enum { FLOOD = 5000 };
	static struct notify_msg got[FLOOD];
	struct notify_msg m;

	for (uint64_t i = 0; i < FLOOD; i++)
		notify_send(99, i);
	size_t n = drain(fd, got, FLOOD);
	CHECK(n >= 1 && n <= FLOOD);
	size_t bad = (size_t)-1;
	for (size_t i = 0; i < n && i < FLOOD && bad == (size_t)-1; i++)
		if (got[i].stream_id != 99 || got[i].txnid != i)
			bad = i;
	CHECK_UINT(bad, (size_t)-1);
	CHECK_INT(notify_recv(fd, &m), 0);
}

/* Listens again where a stale socket file is, and checks the sender (which
 * addresses the path) reaches the new listener. */
static void relisten(int line, uint64_t id)
{
	struct notify_msg m;
	struct stat st;

	CHECK_INT_AT(line, stat(sock, &st), 0);   /* the stale file is there */
	int fd = notify_listen(&live_cfg);
	CHECK_AT(line, fd >= 0);
	if (fd < 0)
		return;
	CHECK_INT_AT(line, notify_recv(fd, &m), 0);   /* nothing from before */
	notify_send(id, id + 1);
	CHECK_INT_AT(line, notify_recv(fd, &m), 1);
	CHECK_AT(line, m.stream_id == id && m.txnid == id + 1);
	close(fd);
}

static void test_stale(int fd)
{
	/* The daemon died: its socket file stays behind. */
	if (fd >= 0)
		close(fd);
	notify_send(3, 3);   /* nobody listens: dropped, no error, no signal */
	relisten(__LINE__, 5);

	/* A socket file some other process bound and left. */
	unlink(sock);
	int other = socket(AF_UNIX, SOCK_DGRAM, 0);
	struct sockaddr_un a;
	memset(&a, 0, sizeof a);
	a.sun_family = AF_UNIX;
	snprintf(a.sun_path, sizeof a.sun_path, "%s", sock);
	CHECK_INT(bind(other, (struct sockaddr *)&a, sizeof a), 0);
	close(other);
	relisten(__LINE__, 10);

	/* No socket file at all: sending is still silent. */
	unlink(sock);
	notify_send(12, 13);
}

static void test_listen_errors(void)
{
	struct config cfg;

	/* A path that cannot be a socket address. */
	config_defaults(&cfg);
	snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", path_of(200, 'd'));
	errno = 0;
	CHECK_INT(notify_listen(&cfg), -1);
	CHECK_INT(errno, ENAMETOOLONG);

	config_defaults(&cfg);
	snprintf(cfg.notify_path, sizeof cfg.notify_path, "%s", path_of(SUN_PATH_MAX, 's'));
	errno = 0;
	CHECK_INT(notify_listen(&cfg), -1);
	CHECK_INT(errno, ENAMETOOLONG);

	/* A directory that does not exist. */
	config_defaults(&cfg);
	snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s/missing/dir", tmpdir);
	errno = 0;
	CHECK_INT(notify_listen(&cfg), -1);
	CHECK_INT(errno, ENOENT);

	/* notify_recv on a descriptor that is not open reports the error. */
	struct notify_msg m;
	CHECK_INT(notify_recv(-1, &m), -1);
}

/* --- notify_pair / notify_post ----------------------------------------------------------- */

static void test_pair(void)
{
	int sv[2] = { -1, -1 };
	struct notify_msg m;

	CHECK_INT(notify_pair(sv), 0);
	if (sv[0] < 0 || sv[1] < 0)
		return;
	for (int i = 0; i < 2; i++) {
		CHECK_AT(__LINE__, is_nonblocking(sv[i]));
		CHECK_AT(__LINE__, is_cloexec(sv[i]));
	}

	CHECK_INT(notify_recv(sv[1], &m), 0);
	notify_post(sv[0], 5, 6);
	CHECK_INT(notify_recv(sv[1], &m), 1);
	CHECK(m.stream_id == 5 && m.txnid == 6);
	CHECK_INT(notify_recv(sv[1], &m), 0);
	CHECK_INT(notify_recv(sv[0], &m), 0);   /* nothing echoed back */

	/* Both directions, in order. */
	for (size_t i = 0; i < NELEM(msg_rows); i++) {
		notify_post(sv[0], msg_rows[i].stream_id, msg_rows[i].txnid);
		notify_post(sv[1], msg_rows[i].txnid, msg_rows[i].stream_id);
	}
	for (size_t i = 0; i < NELEM(msg_rows); i++) {
		int line = msg_rows[i].line;
		CHECK_INT_AT(line, notify_recv(sv[1], &m), 1);
		CHECK_AT(line, m.stream_id == msg_rows[i].stream_id && m.txnid == msg_rows[i].txnid);
		CHECK_INT_AT(line, notify_recv(sv[0], &m), 1);
		CHECK_AT(line, m.stream_id == msg_rows[i].txnid && m.txnid == msg_rows[i].stream_id);
	}

	/* A short datagram is ignored (2), and the next one still arrives. */
	CHECK_INT((int)send(sv[0], "abc", 3, 0), 3);
	CHECK_INT(notify_recv(sv[1], &m), 2);
	notify_post(sv[0], 1, 2);
	CHECK_INT(notify_recv(sv[1], &m), 1);
	CHECK(m.stream_id == 1 && m.txnid == 2);

	/* A full queue drops; posting never blocks; the prefix arrives in order. */
	enum { FLOOD = 5000 };
	static struct notify_msg got[FLOOD];
	for (uint64_t i = 0; i < FLOOD; i++)
		notify_post(sv[0], 77, i);
	size_t n = drain(sv[1], got, FLOOD);
	CHECK(n >= 1 && n <= FLOOD);
	size_t bad = (size_t)-1;
	for (size_t i = 0; i < n && i < FLOOD && bad == (size_t)-1; i++)
		if (got[i].stream_id != 77 || got[i].txnid != i)
			bad = i;
	CHECK_UINT(bad, (size_t)-1);

	/* The other end closed: posting is silent. */
	close(sv[1]);
	notify_post(sv[0], 1, 1);
	close(sv[0]);
}

int main(void)
{
	log_init("test_notify", LOG_LVL_ERROR);   /* the too-long path warns */
	if (unit_tmpdir(tmpdir, sizeof tmpdir, "notify"))
		return 99;
	test_path();
	setup_configs();
	test_send_unset();
	int fd = test_send_recv();
	if (fd >= 0) {
		test_credentials(fd);
		test_send_flood(fd);
	}
	test_stale(fd);
	test_listen_errors();
	test_pair();
	unit_rm_rf(tmpdir);
	return unit_done();
}
