/* backup.c: lmstreamctl backup and restore.
 *
 * A backup is a directory:
 *   data.mdb       the store as of one commit, compacted (store_backup)
 *   files/N-NAME   the configuration file and every key file it names
 *   MANIFEST       what is there, with SHA-256 sums, and where each file
 *                  was found: "lmstream-backup 1", then lines
 *                    created TIME | version V | data_dir DIR | incarnation HEX
 *                    store data.mdb SHA256 BYTES
 *                    config|file RELPATH SHA256 BYTES MODE ORIGINAL-PATH
 * restore checks every sum first, puts the files back where they were
 * (never over a different file without --force), then the store into the
 * data directory the restored configuration names, and gives it a new
 * incarnation (store.h): offsets past a stream's restored tail are
 * refused, and no ETag of the old store matches. */
#include "front/ctl/ctl.h"
#include "core/auth.h"
#include "core/ops.h"
#include "lib/dir.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MANIFEST_HEAD "lmstream-backup 1"

/* SHA-256 of a file as hex, and its size. Returns 0 or -1 with errno. */
static int sha256_file(const char *path, char hex[65], uint64_t *size)
{
	unsigned char buf[1 << 16], md[32];
	unsigned mdlen = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	int ok = m && EVP_DigestInit_ex(m, EVP_sha256(), NULL);
	ssize_t n;
	*size = 0;
	while (ok && (n = read(fd, buf, sizeof buf)) > 0) {
		ok = EVP_DigestUpdate(m, buf, (size_t)n);
		*size += (uint64_t)n;
	}
	if (ok && n < 0)
		ok = 0;
	ok = ok && EVP_DigestFinal_ex(m, md, &mdlen);
	EVP_MD_CTX_free(m);
	int e = errno;
	close(fd);
	if (!ok) {
		errno = e ? e : EIO;
		return -1;
	}
	for (unsigned i = 0; i < mdlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return 0;
}

/* Copies src to dst (created with mode, failing if it exists unless
 * replace), flushed. Returns 0 or -1 with errno. */
static int copy_file(const char *src, const char *dst, mode_t mode, int replace)
{
	char buf[1 << 16];
	int in = open(src, O_RDONLY | O_CLOEXEC), out = -1, ok = 0;
	ssize_t n = 0;
	if (in >= 0)
		out = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC | (replace ? O_TRUNC : O_EXCL), mode);
	if (out >= 0) {
		ok = 1;
		while (ok && (n = read(in, buf, sizeof buf)) > 0)
			ok = write(out, buf, (size_t)n) == n;
		ok = ok && n == 0 && fsync(out) == 0;
	}
	int e = errno;
	if (in >= 0)
		close(in);
	if (out >= 0 && close(out) && ok) {
		ok = 0;
		e = errno;
	}
	errno = e;
	return ok ? 0 : -1;
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

/* Adds one file to the backup and its line to the manifest. */
static int backup_file(FILE *man, const char *dest, int n, const char *kind, const char *path)
{
	char rel[600], abs_dst[1200], real[4096], sum[65];
	uint64_t size;
	struct stat sb;
	if (!realpath(path, real) || stat(real, &sb))
		return ctl_fail("backup: %s: %s", path, strerror(errno));
	snprintf(rel, sizeof rel, "files/%d-%.500s", n, base_name(real));
	snprintf(abs_dst, sizeof abs_dst, "%s/%s", dest, rel);
	if (copy_file(real, abs_dst, 0600, 0) || sha256_file(abs_dst, sum, &size))
		return ctl_fail("backup: cannot copy %s: %s", real, strerror(errno));
	fprintf(man, "%s %s %s %" PRIu64 " %04o %s\n", kind, rel, sum, size, (unsigned)(sb.st_mode & 07777), real);
	return 0;
}

/* DEST must be new, or an empty directory. */
static int make_dest(const char *dest)
{
	char files[1100];
	if (mkdir(dest, 0700) && errno != EEXIST)
		return ctl_fail("backup: cannot create %s: %s", dest, strerror(errno));
	snprintf(files, sizeof files, "%s/files", dest);
	if (mkdir(files, 0700))
		return ctl_fail("backup: %s must be a new or empty directory (%s: %s)", dest, files, strerror(errno));
	return 0;
}

int cmd_backup(struct ctl *c, int argc, char **argv)
{
	const char *dest = NULL;
	if (ctl_args("backup", argc, argv, NULL, &dest, "the destination directory"))
		return CTL_USAGE;
	char path[1100], sum[65], key[2048], when[32];
	uint64_t size;
	int64_t t0 = store_mono_ms();
	if (make_dest(dest))
		return CTL_USAGE;
	if (store_backup(c->st, dest))
		return ctl_fail("backup: the copy of the store failed (see the line above)");
	snprintf(path, sizeof path, "%s/data.mdb", dest);
	if (sha256_file(path, sum, &size))
		return ctl_fail("backup: cannot read %s back: %s", path, strerror(errno));
	snprintf(path, sizeof path, "%s/MANIFEST.part", dest);
	FILE *man = fopen(path, "wx");
	if (!man)
		return ctl_fail("backup: cannot write %s: %s", path, strerror(errno));
	ctl_time(when, store_now_ms());
	fprintf(man, "%s\ncreated %s\nversion %s\ndata_dir %s\nincarnation %016" PRIx64 "\nstore data.mdb %s %" PRIu64 "\n",
	        MANIFEST_HEAD, when, PACKAGE_VERSION, c->cfg.data_dir, store_incarnation(c->st), sum, size);
	int n = 0, st = 0;
	if (c->config_file)
		st = backup_file(man, dest, n++, "config", c->config_file);
	for (size_t i = 0; !st && auth_key_file(&c->cfg, i, key, sizeof key) == 0; i++)
		if (access(key, F_OK) == 0)
			st = backup_file(man, dest, n++, "file", key);
	if (fflush(man) || fsync(fileno(man)))
		st = ctl_fail("backup: cannot write the manifest: %s", strerror(errno));
	fclose(man);
	char final[1100];
	snprintf(final, sizeof final, "%s/MANIFEST", dest);
	if (!st && rename(path, final))
		st = ctl_fail("backup: cannot write the manifest: %s", strerror(errno));
	if (st)
		return st;
	printf("backup: %s: store %" PRIu64 " bytes and %d file(s) in %.1f s\n", dest, size, n,
	       (double)(store_mono_ms() - t0) / 1000);
	return CTL_OK;
}

/* --- restore --------------------------------------------------------------------- */

struct entry {
	char kind[8], rel[600], sum[65], path[4096];
	uint64_t size;
	unsigned mode;
};

struct manifest {
	struct entry store;
	struct entry files[64];
	int nfiles;
	char data_dir[600];
};

/* Reads BACKUP/MANIFEST and checks every sum. */
static int read_manifest(const char *dir, struct manifest *m)
{
	char path[1100], line[5000];
	snprintf(path, sizeof path, "%s/MANIFEST", dir);
	FILE *f = fopen(path, "r");
	if (!f)
		return ctl_fail("restore: %s: %s (not a backup made by lmstreamctl backup?)", path, strerror(errno));
	memset(m, 0, sizeof *m);
	int ok = fgets(line, sizeof line, f) && !strncmp(line, MANIFEST_HEAD "\n", sizeof MANIFEST_HEAD);
	while (ok && fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = '\0';
		struct entry e = { 0 };
		int at = 0;
		if (!strncmp(line, "data_dir ", 9)) {
			snprintf(m->data_dir, sizeof m->data_dir, "%.590s", line + 9);
		} else if (sscanf(line, "store %599s %64s %" SCNu64, e.rel, e.sum, &e.size) == 3) {
			snprintf(e.kind, sizeof e.kind, "store");
			m->store = e;
		} else if (sscanf(line, "%7s %599s %64s %" SCNu64 " %o %n", e.kind, e.rel, e.sum, &e.size, &e.mode, &at) == 5 &&
		           at && (!strcmp(e.kind, "config") || !strcmp(e.kind, "file")) && m->nfiles < 64) {
			snprintf(e.path, sizeof e.path, "%s", line + at);
			m->files[m->nfiles++] = e;
		}
	}
	fclose(f);
	if (!ok || !m->store.rel[0])
		return ctl_fail("restore: %s is not a manifest of lmstreamctl backup", path);
	struct entry *all[65] = { &m->store };
	for (int i = 0; i < m->nfiles; i++)
		all[i + 1] = &m->files[i];
	for (int i = 0; i <= m->nfiles; i++) {
		char sum[65], p[1200];
		uint64_t size;
		snprintf(p, sizeof p, "%s/%s", dir, all[i]->rel);
		if (strstr(all[i]->rel, ".."))
			return ctl_fail("restore: %s: a path with '..' in the manifest", all[i]->rel);
		if (sha256_file(p, sum, &size))
			return ctl_fail("restore: %s: %s", p, strerror(errno));
		if (strcmp(sum, all[i]->sum) || size != all[i]->size)
			return ctl_fail("restore: %s is damaged: its SHA-256 or size differs from the manifest's", p);
	}
	return 0;
}

/* Puts one file back at its original path. */
static int restore_file(const char *dir, const struct entry *e, const char *to, int force)
{
	char src[1200], sum[65], have[65];
	uint64_t size;
	snprintf(src, sizeof src, "%s/%s", dir, e->rel);
	if (sha256_file(to, have, &size) == 0) {
		if (!strcmp(have, e->sum))
			return 0; /* the same file is there */
		if (!force)
			return ctl_fail("restore: %s exists and differs from the backup's (--force replaces it)", to);
	}
	char tmp[4200], parent[600];
	snprintf(parent, sizeof parent, "%s", to);
	char *slash = strrchr(parent, '/');
	if (slash && slash != parent) {
		*slash = '\0';
		if (dir_make(parent))
			return ctl_fail("restore: cannot create %s: %s", parent, strerror(errno));
	}
	snprintf(tmp, sizeof tmp, "%s.restore", to);
	unlink(tmp);
	if (copy_file(src, tmp, (mode_t)e->mode, 0) || sha256_file(tmp, sum, &size) || strcmp(sum, e->sum) ||
	    rename(tmp, to)) {
		int err = errno;
		unlink(tmp);
		return ctl_fail("restore: cannot write %s: %s", to, strerror(err));
	}
	printf("restored %s\n", to);
	return 0;
}

/* The files a store's directory holds: when root restores for servers
 * that run as another user, they get the directory's owner and group. */
static void give_to_owner(const char *data_dir)
{
	static const char *const names[] = { "data.mdb", "lock.mdb", "lmstream.sync" };
	struct stat sb;
	if (geteuid() != 0 || stat(data_dir, &sb))
		return;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		char p[700];
		snprintf(p, sizeof p, "%s/%s", data_dir, names[i]);
		if (chown(p, sb.st_uid, sb.st_gid) && errno != ENOENT)
			fprintf(stderr, "lmstreamctl: restore: chown %s: %s\n", p, strerror(errno));
	}
}

/* The store into cfg's data directory. */
static int restore_store(struct ctl *c, const char *dir, const struct manifest *m, int force)
{
	char src[1200], dst[700], tmp[720];
	const char *data = c->cfg.data_dir;
	if (dir_make(data))
		return ctl_fail("restore: cannot create %s: %s", data, strerror(errno));
	int used = store_in_use(data);
	if (used != 0)
		return ctl_fail("restore: the store in %s is %s: stop lmstream-live and the web server's workers first",
		                data, used > 0 ? "open in a running process" : "not readable");
	snprintf(dst, sizeof dst, "%s/data.mdb", data);
	if (access(dst, F_OK) == 0 && !force)
		return ctl_fail("restore: %s holds a store (--force replaces it)", data);
	snprintf(src, sizeof src, "%s/%s", dir, m->store.rel);
	snprintf(tmp, sizeof tmp, "%s.restore", dst);
	unlink(tmp);
	if (copy_file(src, tmp, 0660, 0) || rename(tmp, dst)) {
		int e = errno;
		unlink(tmp);
		return ctl_fail("restore: cannot write %s: %s", dst, strerror(e));
	}
	/* The old store's lock file and sync page describe another file. */
	char p[720];
	snprintf(p, sizeof p, "%s/lock.mdb", data);
	unlink(p);
	snprintf(p, sizeof p, "%s/lmstream.sync", data);
	unlink(p);
	if (ctl_open(c))
		return CTL_USAGE;
	if (store_renew_incarnation(c->st))
		return ctl_fail("restore: cannot write the new incarnation");
	printf("restored the store into %s (incarnation %016" PRIx64 ")\n", data, store_incarnation(c->st));
	return 0;
}

static void quiet_report(void *ctx, const char *name, size_t len, const char *problem)
{
	(void)ctx;
	fprintf(stderr, "lmstreamctl: restore: verify: %.*s: %s\n", (int)len, len ? name : "store", problem);
}

int cmd_restore(struct ctl *c, int argc, char **argv)
{
	const char *dir = NULL;
	int force = 0;
	const struct ctl_opt opts[] = { { "--force", &force, NULL }, { NULL, NULL, NULL } };
	if (ctl_args("restore", argc, argv, opts, &dir, "the backup directory"))
		return CTL_USAGE;
	static struct manifest m;
	if (read_manifest(dir, &m))
		return CTL_USAGE;
	/* The configuration first: it names the data directory and the keys.
	 * --config FILE puts it there instead of where it was found. */
	for (int i = 0; i < m.nfiles; i++) {
		if (strcmp(m.files[i].kind, "config"))
			continue;
		const char *to = c->config_file ? c->config_file : m.files[i].path;
		if (restore_file(dir, &m.files[i], to, force))
			return CTL_USAGE;
		c->config_file = to;
	}
	if (ctl_load_config(c))
		return CTL_USAGE;
	for (int i = 0; i < m.nfiles; i++)
		if (!strcmp(m.files[i].kind, "file") && restore_file(dir, &m.files[i], m.files[i].path, force))
			return CTL_USAGE;
	int st = restore_store(c, dir, &m, force);
	if (st)
		return st;
	long problems = core_verify(c->st, quiet_report, NULL);
	ctl_close(c);
	give_to_owner(c->cfg.data_dir);
	if (problems) {
		fprintf(stderr, "lmstreamctl: restore: the restored store has %ld problem(s)\n", problems);
		return CTL_REFUSED;
	}
	printf("restore: done; the store verifies. Start the servers.\n");
	return CTL_OK;
}
