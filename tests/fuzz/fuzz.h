/* fuzz.h: the entry point shared by the fuzz harnesses.
 *
 * Each harness defines LLVMFuzzerTestOneInput and aborts when a contract is
 * broken. Built with -DLS_LIBFUZZER and -fsanitize=fuzzer, libFuzzer drives
 * it (tests/fuzz/run); otherwise this main makes it a plain program that runs
 * the files named on the command line (or standard input) once each, to
 * replay seeds and crash reproducers under ASan/UBSan or valgrind. */
#ifndef LS_FUZZ_H
#define LS_FUZZ_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Stops with a message naming the broken property (a crash for libFuzzer). */
#define FUZZ_ASSERT(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond); \
		abort(); \
	} \
} while (0)

#ifndef LS_LIBFUZZER
/* Reads all of f into a malloc'd buffer of exactly its size. */
static unsigned char *fuzz_read(FILE *f, size_t *len)
{
	size_t cap = 4096, n = 0;
	unsigned char *p = malloc(cap);
	size_t r;
	while (p && (r = fread(p + n, 1, cap - n, f)) > 0) {
		n += r;
		if (n == cap) {
			unsigned char *q = realloc(p, cap *= 2);
			if (!q) {
				free(p);
				return NULL;
			}
			p = q;
		}
	}
	if (!p)
		return NULL;
	/* An exact-size copy, so reads past the end are caught. */
	unsigned char *exact = malloc(n ? n : 1);
	if (exact)
		memcpy(exact, p, n);
	free(p);
	*len = n;
	return exact;
}

static int fuzz_run_file(FILE *f, const char *name)
{
	size_t len = 0;
	unsigned char *data = fuzz_read(f, &len);
	if (!data) {
		fprintf(stderr, "%s: cannot read\n", name);
		return 1;
	}
	LLVMFuzzerTestOneInput(data, len);
	free(data);
	return 0;
}

int main(int argc, char **argv)
{
	int rc = 0;
	if (argc < 2)
		return fuzz_run_file(stdin, "(stdin)");
	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		if (!f) {
			perror(argv[i]);
			rc = 1;
			continue;
		}
		rc |= fuzz_run_file(f, argv[i]);
		fclose(f);
	}
	return rc;
}
#endif

#endif
