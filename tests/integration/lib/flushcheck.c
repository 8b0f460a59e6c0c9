/* flushcheck.c: an LD_PRELOAD shim that watches LMDB's meta page writes, the
 * flushes of data.mdb and the responses a process writes to its sockets, for
 * tests/integration/durability.test.mjs. It changes nothing: every call goes
 * on to the C library unaltered, and the shim only writes lines to a log.
 *
 *   cc -shared -fPIC -O2 -o flushcheck.so flushcheck.c -ldl -lpthread
 *
 *   FLUSHCHECK_LOG    the log file (appended to, one write(2) per line)
 *   FLUSHCHECK_STATE  optional: a file holding the counters below, mapped
 *                     shared, so that every process of a deployment sees the
 *                     same ones (one process's flush makes another's meta
 *                     page durable too: fdatasync flushes the file, not the
 *                     descriptor); without it each process counts alone
 *
 * The counters, all transaction IDs:
 *
 *   written  the highest txnid whose meta page a write to data.mdb carried
 *            (raised once that write has returned)
 *   durable  the highest txnid known to be on disk: the `written` sampled at
 *            the start of an fdatasync or fsync of data.mdb that then
 *            returned 0, or of an msync with MS_SYNC over its meta pages; a
 *            meta page written through a descriptor opened with O_DSYNC or
 *            O_SYNC is durable once the write returns
 *   begun    the highest txnid whose commit has written data pages (beyond
 *            the two meta pages): `written` + 1 when such a write returns.
 *            LMDB writes a commit's pages while it holds the writer lock,
 *            after the previous commit wrote its meta page, so that is the
 *            ID of the commit writing them. (A transaction too large for
 *            its dirty page list spills pages before its commit; were it
 *            then aborted, the next one would reuse its ID and `begun`
 *            would be one too high. The tests' transactions are small.)
 *
 * A request read from a socket once a commit has begun to write its pages
 * cannot be in that commit (its transaction was built before), nor in an
 * earlier one: its commit's ID is above max(written, begun) at the read.
 *
 * sync_file_range is logged but raises nothing: it writes pages out but
 * neither the file's metadata nor the disk's cache (sync_file_range(2)).
 * sync() and syncfs() are not watched; LMDB calls neither.
 *
 * Where the meta page's txnid is. LMDB 0.9 keeps two meta pages, page 0 and
 * page 1 of data.mdb; a commit with ID t writes page t & 1 (mdb.c,
 * mdb_env_write_meta: toggle = txn->mt_txnid & 1). A page starts with the
 * 16-byte page header (PAGEHDRSZ = offsetof(MDB_page, mp_ptrs): pgno_t
 * mp_pgno, uint16_t mp_pad, mp_flags, mp_lower, mp_upper), then MDB_meta
 * (lmdb.h does not declare it; mdb.c does):
 *
 *     uint32_t mm_magic            0
 *     uint32_t mm_version          4
 *     void    *mm_address          8
 *     size_t   mm_mapsize         16
 *     MDB_db   mm_dbs[2]          24   (48 bytes each: uint32_t md_pad,
 *                                       uint16_t md_flags, md_depth, then
 *                                       five 8-byte pgno_t/size_t fields)
 *     pgno_t   mm_last_pg        120
 *     txnid_t  mm_txnid          128   (8 bytes, the host's byte order)
 *
 * so mm_txnid is at byte 16 + 128 = 144 of the page, on 64-bit Linux. Without
 * MDB_WRITEMAP, mdb_env_write_meta pwrite()s the meta from mm_mapsize to its
 * end (since 0.9.14; up to 0.9.13 from mm_dbs[0].md_depth unless the map
 * grew) to data.mdb at page * psize + 16 + that field's offset: the write
 * always ends with mm_txnid. A new environment writes both pages whole, each with txnid 0
 * (mdb_env_init_meta). The page size is LMDB's me_psize, which for a file
 * it creates is the OS page size (sysconf); the tests always start on an
 * empty data directory. With MDB_WRITEMAP the meta would be stored through
 * the map and this shim would see no meta writes at all, which the test
 * notices (it expects one per commit).
 *
 * Log lines, one per event, fields as key=value:
 *
 *   open  pid= fd= dsync=            data.mdb opened
 *   meta  pid= fd= page= txnid= written= durable=
 *   flush pid= call= fd= rc= from= written= durable=
 *         (from: `written` at the start of the call; the other two after it)
 *   req   pid= fd= method= below=    a request's first bytes read from a
 *                                    socket (an HTTP request line, or the
 *                                    FastCGI REQUEST_METHOD parameter);
 *                                    below: max(written, begun) after the
 *                                    read, which its commit's ID exceeds
 *   resp  pid= fd= status= method= req= written= durable= call=
 *         a 2xx response with a Stream-Next-Offset header written to a
 *         socket; written and durable just before the bytes went; req the
 *         `below` of the fd's last req line (-1 if none)
 *
 * Only a process that has opened data.mdb logs requests and responses: the
 * shim is loaded into every process deploy/run starts (the web server, the
 * shell), and the web server passes the workers' responses on. */
#undef _FORTIFY_SOURCE
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define META_TXNID_AT 144   /* 16-byte page header + offsetof(MDB_meta, mm_txnid) */
#define MAX_FD 65536        /* descriptors above this are not followed */
#define SCAN_MAX 8192       /* bytes of a call looked at for a request or response */
#define MAX_MAPS 16

enum { FD_DATA = 1, FD_DSYNC = 2 };

struct counters {
	uint64_t written, durable, begun;
};

static struct counters own_counters, *cnt = &own_counters;
static unsigned char fdkind[MAX_FD];        /* FD_DATA | FD_DSYNC */
static struct {
	int64_t below;
	char method[8];                     /* "": no request seen */
} reqs[MAX_FD];
static struct {
	char *addr;
	off_t off;
} maps[MAX_MAPS];                           /* shared maps of data.mdb */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;  /* reqs, maps, logfd */
static pthread_once_t attach_once = PTHREAD_ONCE_INIT;
static int attached;                        /* this process opened data.mdb */
static int logfd = -1;
static long psize;

/* --- the real functions -------------------------------------------------- */

#define REAL(name, ret, args) \
	static ret(*real_##name) args; \
	static ret(*get_##name(void)) args \
	{ \
		ret(*f) args = __atomic_load_n(&real_##name, __ATOMIC_ACQUIRE); \
		if (!f) { \
			f = (ret(*) args)dlsym(RTLD_NEXT, #name); \
			__atomic_store_n(&real_##name, f, __ATOMIC_RELEASE); \
		} \
		return f; \
	}

REAL(open, int, (const char *, int, ...))
REAL(open64, int, (const char *, int, ...))
REAL(openat, int, (int, const char *, int, ...))
REAL(openat64, int, (int, const char *, int, ...))
REAL(close, int, (int))
REAL(dup, int, (int))
REAL(dup2, int, (int, int))
REAL(dup3, int, (int, int, int))
REAL(pwrite, ssize_t, (int, const void *, size_t, off_t))
REAL(pwrite64, ssize_t, (int, const void *, size_t, off64_t))
REAL(pwritev, ssize_t, (int, const struct iovec *, int, off_t))
REAL(pwritev64, ssize_t, (int, const struct iovec *, int, off64_t))
REAL(write, ssize_t, (int, const void *, size_t))
REAL(writev, ssize_t, (int, const struct iovec *, int))
REAL(send, ssize_t, (int, const void *, size_t, int))
REAL(sendto, ssize_t, (int, const void *, size_t, int, const struct sockaddr *, socklen_t))
REAL(sendmsg, ssize_t, (int, const struct msghdr *, int))
REAL(read, ssize_t, (int, void *, size_t))
REAL(readv, ssize_t, (int, const struct iovec *, int))
REAL(recv, ssize_t, (int, void *, size_t, int))
REAL(recvfrom, ssize_t, (int, void *, size_t, int, struct sockaddr *, socklen_t *))
REAL(recvmsg, ssize_t, (int, struct msghdr *, int))
REAL(fsync, int, (int))
REAL(fdatasync, int, (int))
REAL(msync, int, (void *, size_t, int))
REAL(sync_file_range, int, (int, off64_t, off64_t, unsigned int))
REAL(mmap, void *, (void *, size_t, int, int, int, off_t))
REAL(mmap64, void *, (void *, size_t, int, int, int, off64_t))
REAL(munmap, int, (void *, size_t))

/* --- counters and log ----------------------------------------------------- */

static uint64_t load(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

static void raise_to(uint64_t *p, uint64_t v)
{
	uint64_t cur = load(p);
	while (cur < v && !__atomic_compare_exchange_n(p, &cur, v, 1, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		;
}

/* Maps FLUSHCHECK_STATE, if set, in place of this process's own counters. */
static void attach(void)
{
	psize = sysconf(_SC_PAGESIZE);
	const char *f = getenv("FLUSHCHECK_STATE");
	if (f && *f) {
		int fd = get_open()(f, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (fd >= 0 && ftruncate(fd, sizeof(struct counters)) == 0) {
			void *p = get_mmap()(NULL, sizeof(struct counters), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
			if (p != MAP_FAILED)
				cnt = p;
		}
		if (fd >= 0)
			get_close()(fd);
	}
	__atomic_store_n(&attached, 1, __ATOMIC_RELEASE);
}

static int is_attached(void)
{
	return __atomic_load_n(&attached, __ATOMIC_ACQUIRE);
}

static void logf_(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n <= 0)
		return;
	if ((size_t)n >= sizeof line)
		n = sizeof line - 1;
	int saved = errno;
	pthread_mutex_lock(&mu);
	if (logfd < 0) {
		const char *f = getenv("FLUSHCHECK_LOG");
		if (f && *f)
			logfd = get_open()(f, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	}
	if (logfd >= 0)
		(void)!get_write()(logfd, line, (size_t)n);
	pthread_mutex_unlock(&mu);
	errno = saved;
}

/* --- descriptors ------------------------------------------------------------ */

static int kind_of(int fd)
{
	return fd >= 0 && fd < MAX_FD ? __atomic_load_n(&fdkind[fd], __ATOMIC_ACQUIRE) : 0;
}

static void set_kind(int fd, int kind)
{
	if (fd >= 0 && fd < MAX_FD)
		__atomic_store_n(&fdkind[fd], (unsigned char)kind, __ATOMIC_RELEASE);
}

/* fd was just opened (or closed: path NULL, fd reused later). */
static void note_fd(int fd, const char *path, int flags)
{
	if (fd < 0)
		return;
	size_t n = path ? strlen(path) : 0;
	int data = n >= 9 && !strcmp(path + n - 9, "/data.mdb");
	if (data) {
		pthread_once(&attach_once, attach);
		set_kind(fd, FD_DATA | ((flags & O_DSYNC) ? FD_DSYNC : 0));
		logf_("open pid=%d fd=%d dsync=%d\n", (int)getpid(), fd, (flags & O_DSYNC) != 0);
		if (fd >= MAX_FD)
			logf_("untracked pid=%d fd=%d\n", (int)getpid(), fd);
	} else {
		set_kind(fd, 0);
	}
	if (fd < MAX_FD && is_attached()) {
		pthread_mutex_lock(&mu);
		reqs[fd].method[0] = 0;
		if (fd == logfd)
			logfd = -1;
		pthread_mutex_unlock(&mu);
	}
}

static void copy_fd(int from, int to)
{
	if (to < 0)
		return;
	note_fd(to, NULL, 0);
	set_kind(to, kind_of(from));
}

static int is_socket(int fd)
{
	struct stat sb;
	return fstat(fd, &sb) == 0 && S_ISSOCK(sb.st_mode);
}

/* Copies up to cap bytes of the first `total` bytes of iov into out. */
static size_t gather(char *out, size_t cap, const struct iovec *iov, int cnt_, size_t total)
{
	size_t n = 0;
	for (int i = 0; i < cnt_ && n < cap && n < total; i++) {
		size_t k = iov[i].iov_len;
		if (k > cap - n)
			k = cap - n;
		if (k > total - n)
			k = total - n;
		memcpy(out + n, iov[i].iov_base, k);
		n += k;
	}
	return n;
}

/* --- meta pages and flushes -------------------------------------------------- */

/* A write of n bytes at file offset off to data.mdb through fd returned:
 * if it covered a meta page's txnid, raise `written` (and `durable` for a
 * synchronous descriptor); if it wrote data pages, raise `begun`. */
static void note_data_write(int fd, const struct iovec *iov, int niov, off_t off, ssize_t n)
{
	if (n <= 0 || off < 0)
		return;
	if (off + n > 2 * psize)
		raise_to(&cnt->begun, load(&cnt->written) + 1);
	for (int page = 0; page < 2; page++) {
		off_t at = (off_t)page * psize + META_TXNID_AT;
		if (at < off || at + 8 > off + n)
			continue;
		/* the 8 bytes at position at - off of the written bytes */
		unsigned char b[8];
		size_t skip = (size_t)(at - off), got = 0;
		for (int i = 0; i < niov && got < 8; i++) {
			size_t len = iov[i].iov_len;
			if (skip >= len) {
				skip -= len;
				continue;
			}
			size_t k = len - skip < 8 - got ? len - skip : 8 - got;
			memcpy(b + got, (char *)iov[i].iov_base + skip, k);
			got += k;
			skip = 0;
		}
		uint64_t txnid;
		memcpy(&txnid, b, 8);
		raise_to(&cnt->written, txnid);
		if (kind_of(fd) & FD_DSYNC)
			raise_to(&cnt->durable, txnid);
		logf_("meta pid=%d fd=%d page=%d txnid=%llu written=%llu durable=%llu\n", (int)getpid(), fd, page,
		      (unsigned long long)txnid, (unsigned long long)load(&cnt->written),
		      (unsigned long long)load(&cnt->durable));
	}
}

static void note_flush(const char *call, int fd, int rc, uint64_t from)
{
	if (rc == 0)
		raise_to(&cnt->durable, from);
	logf_("flush pid=%d call=%s fd=%d rc=%d from=%llu written=%llu durable=%llu\n", (int)getpid(), call, fd, rc,
	      (unsigned long long)from, (unsigned long long)load(&cnt->written),
	      (unsigned long long)load(&cnt->durable));
}

/* Whether [addr, addr + len) covers both meta pages of a map of data.mdb. */
static int covers_meta(const char *addr, size_t len)
{
	int hit = 0;
	pthread_mutex_lock(&mu);
	for (int i = 0; i < MAX_MAPS && !hit; i++) {
		if (!maps[i].addr || maps[i].off != 0)
			continue;
		const char *meta = maps[i].addr, *end = meta + 2 * psize;
		hit = addr <= meta && addr + len >= end;
	}
	pthread_mutex_unlock(&mu);
	return hit;
}

static void note_map(void *p, int flags, int fd, off_t off)
{
	if (p == MAP_FAILED || !(kind_of(fd) & FD_DATA) || !(flags & MAP_SHARED))
		return;
	pthread_mutex_lock(&mu);
	for (int i = 0; i < MAX_MAPS; i++) {
		if (!maps[i].addr) {
			maps[i].addr = p;
			maps[i].off = off;
			break;
		}
	}
	pthread_mutex_unlock(&mu);
}

/* --- requests and responses ------------------------------------------------- */

/* The method of an HTTP request line at the start of b, or of a FastCGI
 * REQUEST_METHOD parameter in b (a name-value pair: name length 14 and
 * value length in one byte each, the name, the value), into m. */
static int request_method(const char *b, size_t n, char *m)
{
	size_t i = 0;
	while (i < n && i < 7 && b[i] >= 'A' && b[i] <= 'Z')
		i++;
	if (i > 0 && i < n && b[i] == ' ' && memmem(b, n < 300 ? n : 300, " HTTP/1.", 8)) {
		memcpy(m, b, i);
		m[i] = 0;
		return 1;
	}
	const char *p = memmem(b, n, "REQUEST_METHOD", 14);
	if (p && p - b >= 2 && p[-2] == 14 && p[-1] > 0 && p[-1] < 8 && (size_t)(p - b) + 14 + p[-1] <= n) {
		memcpy(m, p + 14, (size_t)p[-1]);
		m[(int)p[-1]] = 0;
		return 1;
	}
	return 0;
}

static void note_read(int fd, const struct iovec *iov, int niov, ssize_t n)
{
	if (n <= 0 || !is_attached() || fd < 0 || fd >= MAX_FD)
		return;
	char b[SCAN_MAX], m[8];
	size_t k = gather(b, sizeof b, iov, niov, (size_t)n);
	if (!request_method(b, k, m) || !is_socket(fd))
		return;
	uint64_t w = load(&cnt->written), begun = load(&cnt->begun);
	if (begun > w)
		w = begun;
	pthread_mutex_lock(&mu);
	reqs[fd].below = (int64_t)w;
	memcpy(reqs[fd].method, m, sizeof m);
	pthread_mutex_unlock(&mu);
	logf_("req pid=%d fd=%d method=%s below=%llu\n", (int)getpid(), fd, m, (unsigned long long)w);
}

/* The status of a 2xx response with a Stream-Next-Offset header in b (an
 * HTTP/1.1 status line, or a FastCGI Status header), into s; 0 if none. */
static int response_status(const char *b, size_t n, char *s)
{
	const char *p = memmem(b, n, "HTTP/1.1 2", 10);
	size_t skip = 9;
	if (!p) {
		p = memmem(b, n, "Status: 2", 9);
		skip = 8;
	}
	if (!p || (size_t)(p - b) + skip + 3 > n || !memmem(b, n, "\r\nStream-Next-Offset: ", 22))
		return 0;
	memcpy(s, p + skip, 3);
	s[3] = 0;
	return 1;
}

/* Before a write of iov to fd: the response line to log once it is written,
 * in line; 0 if there is none. */
static int check_response(int fd, const struct iovec *iov, int niov, size_t total, const char *call,
                          char *line, size_t cap)
{
	if (!is_attached() || fd < 0 || fd >= MAX_FD)
		return 0;
	char b[SCAN_MAX], s[4];
	size_t k = gather(b, sizeof b, iov, niov, total);
	if (!response_status(b, k, s) || !is_socket(fd))
		return 0;
	pthread_mutex_lock(&mu);
	long long req = reqs[fd].method[0] ? reqs[fd].below : -1;
	char m[8];
	memcpy(m, reqs[fd].method, sizeof m);
	pthread_mutex_unlock(&mu);
	snprintf(line, cap, "resp pid=%d fd=%d status=%s method=%s req=%lld written=%llu durable=%llu call=%s\n",
	         (int)getpid(), fd, s, m[0] ? m : "-", req, (unsigned long long)load(&cnt->written),
	         (unsigned long long)load(&cnt->durable), call);
	return 1;
}

/* Runs a write-like call: meta page bookkeeping for data.mdb, the response
 * line for a socket. off < 0: at the descriptor's own offset. */
#define WRITE_CALL(call, fd, iov, niov, total, off, expr) \
	do { \
		ssize_t r_; \
		if (kind_of(fd) & FD_DATA) { \
			off_t at_ = (off) >= 0 ? (off) : lseek(fd, 0, SEEK_CUR); \
			r_ = (expr); \
			note_data_write(fd, iov, niov, at_, r_); \
			return r_; \
		} \
		char line_[512]; \
		int resp_ = check_response(fd, iov, niov, total, call, line_, sizeof line_); \
		r_ = (expr); \
		if (resp_ && r_ > 0) \
			logf_("%s", line_); \
		return r_; \
	} while (0)

static size_t iov_total(const struct iovec *iov, int n)
{
	size_t t = 0;
	for (int i = 0; i < n; i++)
		t += iov[i].iov_len;
	return t;
}

/* --- the wrappers ---------------------------------------------------------------- */

static mode_t mode_arg(int flags, va_list ap)
{
	return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(ap, mode_t) : 0;
}

int open(const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t mode = mode_arg(flags, ap);
	va_end(ap);
	int fd = get_open()(path, flags, mode);
	note_fd(fd, path, flags);
	return fd;
}

int open64(const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t mode = mode_arg(flags, ap);
	va_end(ap);
	int fd = get_open64()(path, flags, mode);
	note_fd(fd, path, flags);
	return fd;
}

int openat(int dir, const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t mode = mode_arg(flags, ap);
	va_end(ap);
	int fd = get_openat()(dir, path, flags, mode);
	note_fd(fd, path, flags);
	return fd;
}

int openat64(int dir, const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t mode = mode_arg(flags, ap);
	va_end(ap);
	int fd = get_openat64()(dir, path, flags, mode);
	note_fd(fd, path, flags);
	return fd;
}

int close(int fd)
{
	note_fd(fd, NULL, 0);
	return get_close()(fd);
}

int dup(int fd)
{
	int r = get_dup()(fd);
	copy_fd(fd, r);
	return r;
}

int dup2(int fd, int to)
{
	int r = get_dup2()(fd, to);
	if (r >= 0 && fd != to)
		copy_fd(fd, r);
	return r;
}

int dup3(int fd, int to, int flags)
{
	int r = get_dup3()(fd, to, flags);
	copy_fd(fd, r);
	return r;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	struct iovec v = { (void *)buf, n };
	WRITE_CALL("pwrite", fd, &v, 1, n, off, get_pwrite()(fd, buf, n, off));
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
	struct iovec v = { (void *)buf, n };
	WRITE_CALL("pwrite64", fd, &v, 1, n, off, get_pwrite64()(fd, buf, n, off));
}

ssize_t pwritev(int fd, const struct iovec *iov, int niov, off_t off)
{
	WRITE_CALL("pwritev", fd, iov, niov, iov_total(iov, niov), off, get_pwritev()(fd, iov, niov, off));
}

ssize_t pwritev64(int fd, const struct iovec *iov, int niov, off64_t off)
{
	WRITE_CALL("pwritev64", fd, iov, niov, iov_total(iov, niov), off, get_pwritev64()(fd, iov, niov, off));
}

ssize_t write(int fd, const void *buf, size_t n)
{
	struct iovec v = { (void *)buf, n };
	WRITE_CALL("write", fd, &v, 1, n, -1, get_write()(fd, buf, n));
}

ssize_t writev(int fd, const struct iovec *iov, int niov)
{
	WRITE_CALL("writev", fd, iov, niov, iov_total(iov, niov), -1, get_writev()(fd, iov, niov));
}

ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	struct iovec v = { (void *)buf, n };
	WRITE_CALL("send", fd, &v, 1, n, -1, get_send()(fd, buf, n, flags));
}

ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *to, socklen_t tolen)
{
	struct iovec v = { (void *)buf, n };
	WRITE_CALL("sendto", fd, &v, 1, n, -1, get_sendto()(fd, buf, n, flags, to, tolen));
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	WRITE_CALL("sendmsg", fd, msg->msg_iov, (int)msg->msg_iovlen, iov_total(msg->msg_iov, (int)msg->msg_iovlen),
	           -1, get_sendmsg()(fd, msg, flags));
}

ssize_t read(int fd, void *buf, size_t n)
{
	ssize_t r = get_read()(fd, buf, n);
	struct iovec v = { buf, n };
	note_read(fd, &v, 1, r);
	return r;
}

ssize_t readv(int fd, const struct iovec *iov, int niov)
{
	ssize_t r = get_readv()(fd, iov, niov);
	note_read(fd, iov, niov, r);
	return r;
}

ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	ssize_t r = get_recv()(fd, buf, n, flags);
	struct iovec v = { buf, n };
	note_read(fd, &v, 1, r);
	return r;
}

ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *from, socklen_t *fromlen)
{
	ssize_t r = get_recvfrom()(fd, buf, n, flags, from, fromlen);
	struct iovec v = { buf, n };
	note_read(fd, &v, 1, r);
	return r;
}

ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	ssize_t r = get_recvmsg()(fd, msg, flags);
	note_read(fd, msg->msg_iov, (int)msg->msg_iovlen, r);
	return r;
}

int fsync(int fd)
{
	if (!(kind_of(fd) & FD_DATA))
		return get_fsync()(fd);
	uint64_t from = load(&cnt->written);
	int rc = get_fsync()(fd);
	int saved = errno;
	note_flush("fsync", fd, rc, from);
	errno = saved;
	return rc;
}

int fdatasync(int fd)
{
	if (!(kind_of(fd) & FD_DATA))
		return get_fdatasync()(fd);
	uint64_t from = load(&cnt->written);
	int rc = get_fdatasync()(fd);
	int saved = errno;
	note_flush("fdatasync", fd, rc, from);
	errno = saved;
	return rc;
}

int msync(void *addr, size_t len, int flags)
{
	if (!is_attached() || !(flags & MS_SYNC) || !covers_meta(addr, len))
		return get_msync()(addr, len, flags);
	uint64_t from = load(&cnt->written);
	int rc = get_msync()(addr, len, flags);
	int saved = errno;
	note_flush("msync", -1, rc, from);
	errno = saved;
	return rc;
}

int sync_file_range(int fd, off64_t off, off64_t n, unsigned int flags)
{
	int rc = get_sync_file_range()(fd, off, n, flags);
	if (kind_of(fd) & FD_DATA) {
		int saved = errno;
		logf_("sync_file_range pid=%d fd=%d rc=%d (not a flush)\n", (int)getpid(), fd, rc);
		errno = saved;
	}
	return rc;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	void *p = get_mmap()(addr, len, prot, flags, fd, off);
	note_map(p, flags, fd, off);
	return p;
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off)
{
	void *p = get_mmap64()(addr, len, prot, flags, fd, off);
	note_map(p, flags, fd, off);
	return p;
}

int munmap(void *addr, size_t len)
{
	if (is_attached()) {
		pthread_mutex_lock(&mu);
		for (int i = 0; i < MAX_MAPS; i++)
			if (maps[i].addr == addr)
				maps[i].addr = NULL;
		pthread_mutex_unlock(&mu);
	}
	return get_munmap()(addr, len);
}
