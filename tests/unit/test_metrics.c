/* test_metrics.c: unit tests of src/lib/metrics.c, the node's counters
 * shared by its processes: counts of several processes add up, a process
 * that is gone keeps its counts and loses its gauges, its slot is taken
 * over without losing them, histograms land in the right bucket, and a
 * file of another layout or no file at all means no counting. */
#include "lib/metrics.h"
#include "unit.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

static char dir[256];

/* Runs fn in a child process that attaches as front and exits (or stays
 * until killed when hold is set: then its pid is returned). */
static pid_t child(void (*fn)(void), enum metric_front front, int hold, int pipefd)
{
	pid_t pid = fork();
	if (pid == 0) {
		char err[300];
		if (metrics_attach(dir, front, 1, err, sizeof err))
			_exit(2);
		fn();
		if (hold) {
			(void)!write(pipefd, "x", 1);
			pause();
		}
		metrics_detach();
		_exit(0);
	}
	return pid;
}

static void add_three(void)
{
	metrics_add(MC_APPENDED_MESSAGES, 3);
	metrics_gauge(MG_LIVE_SSE, 1);
	metrics_gauge(MG_LIVE_SSE, -1);
	metrics_observe(MH_BATCH, 3);
}

static void open_two_sse(void)
{
	metrics_add(MC_APPENDED_MESSAGES, 10);
	metrics_gauge(MG_LIVE_SSE, 2);
	metrics_gauge(MG_WAITING, 2);
}

static int wait_ok(pid_t pid)
{
	int st;
	return waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

int main(void)
{
	char err[300];
	struct metrics_sum s;

	if (unit_tmpdir(dir, sizeof dir, "metrics"))
		return 1;

	/* Not attached: nothing is counted, and a sum says so. */
	metrics_add(MC_COMMITS, 1);
	CHECK(!metrics_on());
	CHECK_INT(metrics_sum(&s), -1);

	/* No file and create not asked (lmstreamctl before any server): no counting. */
	CHECK_INT(metrics_attach(dir, MF_CTL, 0, err, sizeof err), -1);
	CHECK(strstr(err, "lmstream.metrics") != NULL);
	CHECK(!metrics_on());

	CHECK_INT(metrics_attach(dir, MF_LIVE, 1, err, sizeof err), 0);
	CHECK(metrics_on());
	metrics_add(MC_APPENDED_MESSAGES, 5);
	metrics_gauge(MG_LIVE_LONGPOLL, 1);
	metrics_observe(MH_COMMIT, 50);      /* on the first bound: its bucket */
	metrics_observe(MH_COMMIT, 51);      /* just above: the next */
	metrics_observe(MH_COMMIT, 1u << 30); /* past every bound: +Inf */
	metrics_response(7);
	metrics_response(METRICS_RESPONSES); /* out of range: ignored */

	/* Two other processes count into the same file. */
	pid_t a = child(add_three, MF_FCGI, 0, -1), b = child(add_three, MF_CGI, 0, -1);
	CHECK(wait_ok(a));
	CHECK(wait_ok(b));
	CHECK_INT(metrics_sum(&s), 0);
	CHECK_UINT(s.c[MC_APPENDED_MESSAGES], 11);
	CHECK_INT(s.g[MG_LIVE_LONGPOLL], 1);
	CHECK_INT(s.g[MG_LIVE_SSE], 0);
	CHECK_UINT(s.hist[MH_COMMIT][0], 1);
	CHECK_UINT(s.hist[MH_COMMIT][1], 1);
	CHECK_UINT(s.hist[MH_COMMIT][metrics_nbounds[MH_COMMIT]], 1);
	CHECK_UINT(s.hsum[MH_COMMIT], 101 + (1u << 30));
	CHECK_UINT(s.hist[MH_BATCH][2], 2);  /* 3 writes: the bucket "4" */
	CHECK_UINT(s.resp[7], 1);
	CHECK_INT(s.processes[MF_LIVE], 1);   /* the two children detached: not running */
	CHECK_INT(s.processes[MF_FCGI], 0);
	CHECK(s.created_s > 0);

	/* A process killed with live connections open: its counts stay, its
	 * gauges no longer count once it is gone. */
	int p[2];
	CHECK(pipe(p) == 0);
	pid_t k = child(open_two_sse, MF_FCGI, 1, p[1]);
	char c;
	CHECK(read(p[0], &c, 1) == 1);
	CHECK_INT(metrics_sum(&s), 0);
	CHECK_INT(s.g[MG_LIVE_SSE], 2);
	CHECK_INT(s.g[MG_WAITING], 2);
	CHECK_INT(s.processes[MF_FCGI], 1);
	kill(k, SIGKILL);
	waitpid(k, NULL, 0);
	CHECK_INT(metrics_sum(&s), 0);
	CHECK_INT(s.g[MG_LIVE_SSE], 0);
	CHECK_INT(s.g[MG_WAITING], 0);
	CHECK_INT(s.processes[MF_FCGI], 0);
	CHECK_UINT(s.c[MC_APPENDED_MESSAGES], 21);

	/* Its slot is taken over by the next process: the counts go on. */
	pid_t n = child(add_three, MF_CGI, 0, -1);
	CHECK(wait_ok(n));
	CHECK_INT(metrics_sum(&s), 0);
	CHECK_UINT(s.c[MC_APPENDED_MESSAGES], 24);
	CHECK_INT(s.g[MG_LIVE_SSE], 0);

	/* Detaching gives the slot back, keeping what it counted. */
	metrics_detach();
	CHECK(!metrics_on());
	CHECK_INT(metrics_attach(dir, MF_CTL, 0, err, sizeof err), 0);
	CHECK_INT(metrics_sum(&s), 0);
	CHECK_UINT(s.c[MC_APPENDED_MESSAGES], 24);
	CHECK_INT(s.g[MG_LIVE_LONGPOLL], 0);
	CHECK_INT(s.processes[MF_LIVE], 0);
	CHECK_INT(s.processes[MF_CTL], 1);
	metrics_detach();

	/* A file of another layout is left alone. */
	char path[300];
	snprintf(path, sizeof path, "%s/lmstream.metrics", dir);
	int fd = open(path, O_WRONLY);
	CHECK(fd >= 0);
	CHECK(pwrite(fd, "LMSMETR9", 8, 0) == 8); /* a magic of some other layout */
	close(fd);
	CHECK_INT(metrics_attach(dir, MF_LIVE, 1, err, sizeof err), -1);
	CHECK(strstr(err, "another layout") != NULL);
	CHECK(!metrics_on());

	unit_rm_rf(dir);
	return unit_done();
}
