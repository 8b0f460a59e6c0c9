/* metrics.c: the node's counters in one shared, memory-mapped file (see
 * metrics.h). The file is a header and METRICS_SLOTS slots; all of it is
 * valid when zero, so a new file needs no initialisation beyond its magic,
 * and two processes creating it at once both end with the same file. */
#include "lib/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define METRICS_SLOTS 256
/* "LMSMETR" and the layout's version: a file of another layout (an older or
 * newer lmstream still running) is left alone and this process counts
 * nothing (the log says so). */
#define METRICS_MAGIC 0x4c4d534d45545201ULL

const uint64_t metrics_bounds[MH__COUNT][METRICS_BUCKETS] = {
	[MH_BATCH] = { 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024 },
	[MH_COMMIT] = { 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000,
	                500000, 1000000, 2500000 },
	[MH_FLUSH] = { 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000,
	               500000, 1000000, 2500000 },
};
const int metrics_nbounds[MH__COUNT] = { 11, 15, 15 };

const char *const metrics_front_names[MF__COUNT] = { "-", "fcgi", "cgi", "live", "ctl" };

struct slot {
	_Atomic uint32_t pid;     /* the owner; 0: free */
	_Atomic uint32_t front;
	_Atomic uint64_t start;   /* the owner's start time (/proc), against a reused pid */
	_Atomic uint64_t c[MC__COUNT];
	_Atomic int64_t g[MG__COUNT];
	_Atomic uint64_t hist[MH__COUNT][METRICS_BUCKETS];
	_Atomic uint64_t hsum[MH__COUNT];
	_Atomic uint64_t resp[METRICS_RESPONSES];
} __attribute__((aligned(64)));  /* no two processes write one cache line */

struct metrics_file {
	_Atomic uint64_t magic;
	_Atomic uint64_t created_s;
	uint64_t reserved[6];
	struct slot slot[METRICS_SLOTS]; /* slot 0: shared by processes that found no free one */
};

static struct metrics_file *file;
/* NULL: not counting. Set once the file is mapped: FastCGI threads may
 * already count while the first of them opens the store. */
static struct slot *_Atomic mine;
static pid_t owner;                /* the process that attached (a forked child must attach anew) */

static struct slot *my_slot(void)
{
	return atomic_load_explicit(&mine, memory_order_acquire);
}

/* The start time of a process, in clock ticks since boot (field 22 of
 * /proc/PID/stat); 0 when unknown. */
static uint64_t proc_start(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	char *p = strrchr(buf, ')'); /* the command name may hold spaces and ')' */
	if (!p)
		return 0;
	/* after ')': field 3 (state) ... field 22 (starttime) */
	for (int field = 2; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	unsigned long long v;
	return p && sscanf(p + 1, "%llu", &v) == 1 ? (uint64_t)v : 0;
}

/* Whether the process that owns s is still running. */
static int owner_alive(struct slot *s)
{
	pid_t pid = (pid_t)atomic_load_explicit(&s->pid, memory_order_acquire);
	if (pid <= 0)
		return 0;
	if (kill(pid, 0) < 0 && errno != EPERM)
		return 0;
	uint64_t was = atomic_load_explicit(&s->start, memory_order_relaxed);
	uint64_t now = was ? proc_start(pid) : 0;
	return !was || !now || was == now;
}

static struct slot *take_slot(enum metric_front front)
{
	uint32_t me = (uint32_t)getpid();
	uint64_t start = proc_start((pid_t)me);
	for (int i = 1; i < METRICS_SLOTS; i++) {
		struct slot *s = &file->slot[i];
		uint32_t pid = atomic_load(&s->pid);
		if (pid && (pid == me || owner_alive(s)))
			continue;
		if (!atomic_compare_exchange_strong(&s->pid, &pid, me))
			continue; /* another process took it first */
		for (int g = 0; g < MG__COUNT; g++)
			atomic_store(&s->g[g], 0); /* the gauges of a process that is gone */
		atomic_store(&s->front, (uint32_t)front);
		atomic_store(&s->start, start);
		return s;
	}
	return &file->slot[0];
}

int metrics_attach(const char *data_dir, enum metric_front front, int create, char *err, size_t errlen)
{
	char path[600];
	if (file && owner != getpid()) {
		/* a child after fork(): the slot is its parent's */
		atomic_store(&mine, NULL);
		munmap(file, sizeof *file);
		file = NULL;
	}
	if (file)
		return 0;
	snprintf(path, sizeof path, "%s/lmstream.metrics", data_dir);
	int fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0660);
	if (fd < 0) {
		snprintf(err, errlen, "open %s: %s", path, strerror(errno));
		return -1;
	}
	struct stat sb;
	if (fstat(fd, &sb) < 0 || (sb.st_size < (off_t)sizeof *file && ftruncate(fd, (off_t)sizeof *file) < 0)) {
		snprintf(err, errlen, "size %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	void *p = mmap(NULL, sizeof *file, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		snprintf(err, errlen, "mmap %s: %s", path, strerror(errno));
		return -1;
	}
	struct metrics_file *f = p;
	uint64_t zero = 0;
	if (atomic_compare_exchange_strong(&f->magic, &zero, METRICS_MAGIC))
		atomic_store(&f->created_s, (uint64_t)time(NULL));
	else if (zero != METRICS_MAGIC) {
		snprintf(err, errlen, "%s has another layout (another version of lmstream still running?);"
		         " nothing is counted by this process: remove the file once they have stopped", path);
		munmap(p, sizeof *file);
		return -1;
	}
	file = f;
	owner = getpid();
	atomic_store_explicit(&mine, take_slot(front), memory_order_release);
	return 0;
}

void metrics_detach(void)
{
	if (!file)
		return;
	struct slot *s = my_slot();
	atomic_store(&mine, NULL);
	if (s && s != &file->slot[0] && owner == getpid()) {
		for (int g = 0; g < MG__COUNT; g++)
			atomic_store(&s->g[g], 0);
		atomic_store(&s->start, 0);
		atomic_store_explicit(&s->pid, 0, memory_order_release);
	}
	munmap(file, sizeof *file);
	file = NULL;
}

int metrics_on(void)
{
	return my_slot() != NULL;
}

void metrics_add(enum metric_counter c, uint64_t n)
{
	struct slot *s = my_slot();
	if (s)
		atomic_fetch_add_explicit(&s->c[c], n, memory_order_relaxed);
}

void metrics_gauge(enum metric_gauge g, int64_t delta)
{
	struct slot *s = my_slot();
	if (s && s != &file->slot[0])
		atomic_fetch_add_explicit(&s->g[g], delta, memory_order_relaxed);
}

void metrics_observe(enum metric_hist h, uint64_t v)
{
	struct slot *s = my_slot();
	if (!s)
		return;
	int b = 0;
	while (b < metrics_nbounds[h] && v > metrics_bounds[h][b])
		b++;
	atomic_fetch_add_explicit(&s->hist[h][b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&s->hsum[h], v, memory_order_relaxed);
}

void metrics_response(unsigned idx)
{
	struct slot *s = my_slot();
	if (s && idx < METRICS_RESPONSES)
		atomic_fetch_add_explicit(&s->resp[idx], 1, memory_order_relaxed);
}

uint64_t metrics_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int metrics_sum(struct metrics_sum *out)
{
	memset(out, 0, sizeof *out);
	struct slot *me = my_slot();
	if (!me)
		return -1;
	out->created_s = atomic_load(&file->created_s);
	for (int i = 0; i < METRICS_SLOTS; i++) {
		struct slot *s = &file->slot[i];
		for (int k = 0; k < MC__COUNT; k++)
			out->c[k] += atomic_load_explicit(&s->c[k], memory_order_relaxed);
		for (int k = 0; k < MH__COUNT; k++) {
			for (int b = 0; b < METRICS_BUCKETS; b++)
				out->hist[k][b] += atomic_load_explicit(&s->hist[k][b], memory_order_relaxed);
			out->hsum[k] += atomic_load_explicit(&s->hsum[k], memory_order_relaxed);
		}
		for (int k = 0; k < METRICS_RESPONSES; k++)
			out->resp[k] += atomic_load_explicit(&s->resp[k], memory_order_relaxed);
		if (i == 0 || !atomic_load(&s->pid) || (s != me && !owner_alive(s)))
			continue;
		for (int k = 0; k < MG__COUNT; k++)
			out->g[k] += atomic_load_explicit(&s->g[k], memory_order_relaxed);
		uint32_t f = atomic_load(&s->front);
		out->processes[f < MF__COUNT ? f : MF_NONE]++;
	}
	/* A gauge's rises and falls can land in two slots' sums in either
	 * order while they are read: never show a negative count. */
	for (int k = 0; k < MG__COUNT; k++)
		if (out->g[k] < 0)
			out->g[k] = 0;
	return 0;
}
