/*
 * auth-verify: the cost of one auth_verify call (src/core/auth.c), without
 * HTTP: THREADS threads call it on one struct auth with the token of
 * TOKEN_FILE for SECONDS, at the current time, as src/core/access.c does for
 * every request. Prints one line: calls, calls_s (all threads), us_per_call
 * (wall time per call and thread), and the cache's hits, misses, entries and
 * bytes (auth_cache_stats). With LMSTREAM_BENCH_NO_AUTH_CACHE=1 every call
 * verifies the signature.
 *
 * usage: auth-verify SECONDS THREADS TOKEN_FILE KEY_FILE...
 * Build (tests/bench/run does): cc -O2 -include BUILD/autoconfig.h -Isrc
 *   tests/bench/auth-verify.c BUILD/src/libls.a -ljwt -lcjson -lcrypto -llmdb -lpthread
 */
#include "core/auth.h"
#include "lib/config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const struct auth *a;
static char token[8192];
static double seconds;

struct worker {
	pthread_t th;
	long calls, failed;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *run(void *p)
{
	struct worker *w = p;
	double end = now_s() + seconds;
	while (now_s() < end) {
		for (int i = 0; i < 64; i++) {
			struct grant g;
			const char *why;
			if (auth_verify(a, token, wall_ms(), 30, &g, &why) == 0)
				grant_free(&g);
			else
				w->failed++;
			w->calls++;
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	static struct config cfg;
	char err[600];
	struct auth *opened = NULL;
	int nthreads = argc > 2 ? atoi(argv[2]) : 0;
	seconds = argc > 1 ? atof(argv[1]) : 0;
	if (argc < 5 || seconds <= 0 || nthreads < 1 || nthreads > 64) {
		fputs("usage: auth-verify SECONDS THREADS TOKEN_FILE KEY_FILE...\n", stderr);
		return 2;
	}
	FILE *f = fopen(argv[3], "r");
	size_t n = f ? fread(token, 1, sizeof token - 1, f) : 0;
	if (f)
		fclose(f);
	while (n && (token[n - 1] == '\n' || token[n - 1] == '\r'))
		n--;
	token[n] = '\0';
	if (!n) {
		fprintf(stderr, "auth-verify: no token in %s\n", argv[3]);
		return 2;
	}
	config_defaults(&cfg);
	for (int i = 4; i < argc; i++) {
		size_t used = strlen(cfg.auth_key);
		snprintf(cfg.auth_key + used, sizeof cfg.auth_key - used, "%s%s", used ? " " : "", argv[i]);
	}
	if (auth_open(&opened, &cfg, err, sizeof err)) {
		fprintf(stderr, "auth-verify: %s\n", err);
		return 2;
	}
	a = opened;
	struct worker *ws = calloc((size_t)nthreads, sizeof *ws);
	double t0 = now_s();
	for (int i = 0; i < nthreads; i++)
		pthread_create(&ws[i].th, NULL, run, &ws[i]);
	long calls = 0, failed = 0;
	for (int i = 0; i < nthreads; i++) {
		pthread_join(ws[i].th, NULL);
		calls += ws[i].calls;
		failed += ws[i].failed;
	}
	double el = now_s() - t0;
	struct auth_cache_stats st;
	auth_cache_stats(a, &st);
	printf("calls=%ld failed=%ld calls_s=%.0f us_per_call=%.3f hits=%llu misses=%llu entries=%zu bytes=%zu\n",
	       calls, failed, calls / el, el * 1e6 * nthreads / (double)(calls ? calls : 1),
	       (unsigned long long)st.hits, (unsigned long long)st.misses, st.entries, st.bytes);
	free(ws);
	auth_close(opened);
	return failed ? 1 : 0;
}
