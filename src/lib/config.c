/* config.c: parse the configuration file, environment and flags. */
#include "lib/config.h"
#include "lib/limits.h"
#include "lib/log.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void config_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s", LS_DEFAULT_DATA_DIR);
	cfg->map_size = LS_DEFAULT_MAP_SIZE;
	cfg->durability = DURABILITY_DURABLE;
	cfg->max_body = LS_DEFAULT_MAX_BODY;
	cfg->max_path = LS_DEFAULT_MAX_PATH;
	cfg->long_poll_ms = LS_DEFAULT_LONG_POLL_MS;
	cfg->sse_lifetime_ms = LS_DEFAULT_SSE_LIFETIME_MS;
	cfg->heartbeat_ms = 15000;
	snprintf(cfg->prefix, sizeof cfg->prefix, "%s", LS_DEFAULT_PREFIX);
	snprintf(cfg->listen, sizeof cfg->listen, "%s", LS_DEFAULT_LISTEN);
	cfg->max_connections = 10000;
	cfg->threads = 2;
	cfg->worker_threads = 8;
	cfg->live_processes = 1;
	cfg->snapshot_page = LS_DEFAULT_SNAPSHOT_PAGE;
	cfg->conn_memory = 5120;
	snprintf(cfg->cache_control, sizeof cfg->cache_control, "%s", "public, max-age=60, stale-while-revalidate=300");
}

int config_parse_size(const char *s, uint64_t *out)
{
	char *end;
	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	unsigned shift = 0;
	switch (toupper((unsigned char)*end)) {
	case '\0': break;
	case 'K': shift = 10; end++; break;
	case 'M': shift = 20; end++; break;
	case 'G': shift = 30; end++; break;
	case 'T': shift = 40; end++; break;
	default: return -1;
	}
	if (*end == 'i' || *end == 'B')
		end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
	if (*end)
		return -1;
	if (shift && v > (~0ULL >> shift))
		return -1;
	*out = v << shift;
	return 0;
}

static int parse_int(const char *s, long lo, long hi, int *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}

static int set_string(char *dst, size_t cap, const char *v)
{
	if (strlen(v) >= cap)
		return -1;
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

int config_set(struct config *cfg, const char *key, const char *v, char *err, size_t errlen)
{
	uint64_t size;
	int n;

	if (!strcmp(key, "data_dir")) {
		if (!*v || set_string(cfg->data_dir, sizeof cfg->data_dir, v))
			goto bad;
	} else if (!strcmp(key, "map_size")) {
		if (config_parse_size(v, &size) || size < (1ULL << 20))
			goto bad;
		cfg->map_size = size;
	} else if (!strcmp(key, "durability")) {
		if (!strcmp(v, "durable"))
			cfg->durability = DURABILITY_DURABLE;
		else if (!strcmp(v, "fast"))
			cfg->durability = DURABILITY_FAST;
		else
			goto bad;
	} else if (!strcmp(key, "max_body")) {
		if (config_parse_size(v, &size) || size < 1 || size > (1ULL << 31))
			goto bad;
		cfg->max_body = size;
	} else if (!strcmp(key, "max_path")) {
		if (parse_int(v, 16, LS_MAX_PATH_HARD, &n))
			goto bad;
		cfg->max_path = (size_t)n;
	} else if (!strcmp(key, "long_poll_timeout")) {
		if (parse_int(v, 100, 3600 * 1000, &n))
			goto bad;
		cfg->long_poll_ms = n;
	} else if (!strcmp(key, "sse_lifetime")) {
		if (parse_int(v, 100, 24 * 3600 * 1000, &n))
			goto bad;
		cfg->sse_lifetime_ms = n;
	} else if (!strcmp(key, "heartbeat")) {
		if (parse_int(v, 100, 3600 * 1000, &n))
			goto bad;
		cfg->heartbeat_ms = n;
	} else if (!strcmp(key, "prefix")) {
		size_t l = strlen(v);
		if (l < 1 || v[0] != '/' || v[l - 1] != '/' || set_string(cfg->prefix, sizeof cfg->prefix, v))
			goto bad;
	} else if (!strcmp(key, "listen")) {
		if (!strchr(v, ':') || set_string(cfg->listen, sizeof cfg->listen, v))
			goto bad;
	} else if (!strcmp(key, "max_connections")) {
		if (parse_int(v, 1, 1000000, &n))
			goto bad;
		cfg->max_connections = n;
	} else if (!strcmp(key, "conn_memory")) {
		if (config_parse_size(v, &size) || size < 2048 || size > (1 << 20))
			goto bad;
		cfg->conn_memory = (int)size;
	} else if (!strcmp(key, "threads")) {
		if (parse_int(v, 1, 64, &n))
			goto bad;
		cfg->threads = n;
	} else if (!strcmp(key, "worker_threads")) {
		if (parse_int(v, 1, 256, &n))
			goto bad;
		cfg->worker_threads = n;
	} else if (!strcmp(key, "live_processes")) {
		if (parse_int(v, 1, 64, &n))
			goto bad;
		cfg->live_processes = n;
	} else if (!strcmp(key, "retention_age")) {
		if (parse_int(v, 0, 10 * 366 * 86400, &n))
			goto bad;
		cfg->retention_age_s = (uint64_t)n;
	} else if (!strcmp(key, "snapshot_page")) {
		if (config_parse_size(v, &size) || size < (64 << 10) || size > (256ULL << 20))
			goto bad;
		cfg->snapshot_page = size;
	} else if (!strcmp(key, "retention_bytes")) {
		if (config_parse_size(v, &size))
			goto bad;
		cfg->retention_bytes = size;
	} else if (!strcmp(key, "www")) {
		if (set_string(cfg->www, sizeof cfg->www, v))
			goto bad;
	} else if (!strcmp(key, "cache_control")) {
		if (!*v || strpbrk(v, "\r\n") || set_string(cfg->cache_control, sizeof cfg->cache_control, v))
			goto bad;
	} else if (!strcmp(key, "notify_socket")) {
		if (set_string(cfg->notify_path, sizeof cfg->notify_path, v))
			goto bad;
	} else {
		snprintf(err, errlen, "unknown setting '%s'", key);
		return -1;
	}
	return 0;
bad:
	snprintf(err, errlen, "invalid value for %s: '%s'", key, v);
	return -1;
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t l = strlen(s);
	while (l && isspace((unsigned char)s[l - 1]))
		s[--l] = '\0';
	return s;
}

int config_load(struct config *cfg, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char line[1024], why[256];
	int lineno = 0;

	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof line, f)) {
		lineno++;
		size_t ll = strlen(line);
		if (ll && line[ll - 1] != '\n' && !feof(f)) {
			/* Longer than the buffer: only a comment may be that long. */
			int c;
			while ((c = fgetc(f)) != EOF && c != '\n')
				;
			if (*trim(line) != '#') {
				snprintf(err, errlen, "%s:%d: line too long", path, lineno);
				fclose(f);
				return -1;
			}
			continue;
		}
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		char *s = trim(line);
		if (!*s)
			continue;
		char *eq = strchr(s, '=');
		if (!eq) {
			snprintf(err, errlen, "%s:%d: expected 'key = value'", path, lineno);
			fclose(f);
			return -1;
		}
		*eq = '\0';
		if (config_set(cfg, trim(s), trim(eq + 1), why, sizeof why)) {
			snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
			fclose(f);
			return -1;
		}
	}
	fclose(f);
	return 0;
}

int config_from_env(struct config *cfg, char *err, size_t errlen)
{
	static const char *keys[] = {
		"data_dir", "map_size", "durability", "max_body", "max_path",
		"long_poll_timeout", "sse_lifetime", "heartbeat", "prefix", "listen",
		"max_connections", "threads", "worker_threads", "live_processes", "conn_memory", "notify_socket", "cache_control", "www",
		"retention_age", "retention_bytes", "snapshot_page",
	};
	const char *file = getenv("LMSTREAM_CONFIG");
	char name[64], why[256];

	if (file && *file && config_load(cfg, file, err, errlen))
		return -1;
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		size_t j = 0;
		j += (size_t)snprintf(name, sizeof name, "LMSTREAM_");
		for (const char *k = keys[i]; *k && j + 1 < sizeof name; k++)
			name[j++] = (char)toupper((unsigned char)*k);
		name[j] = '\0';
		const char *v = getenv(name);
		if (v && *v && config_set(cfg, keys[i], v, why, sizeof why)) {
			snprintf(err, errlen, "%s: %s", name, why);
			return -1;
		}
	}
	return 0;
}

int config_arg(struct config *cfg, int argc, char **argv, int i, char *err, size_t errlen)
{
	const char *a = argv[i];
	char key[64], why[256];

	if (strncmp(a, "--", 2) || i + 1 >= argc)
		return 0;
	const char *v = argv[i + 1];
	if (!strcmp(a, "--config"))
		return config_load(cfg, v, err, errlen) ? -1 : 2;
	if (!strcmp(a, "--set")) {
		const char *eq = strchr(v, '=');
		if (!eq || (size_t)(eq - v) >= sizeof key) {
			snprintf(err, errlen, "--set %s: expected key=value", v);
			return -1;
		}
		memcpy(key, v, (size_t)(eq - v));
		key[eq - v] = '\0';
		v = eq + 1;
	} else if (!strcmp(a, "--data")) {
		snprintf(key, sizeof key, "data_dir");
	} else {
		size_t n = strlen(a + 2);
		if (n == 0 || n >= sizeof key)
			return 0;
		for (size_t k = 0; k <= n; k++)
			key[k] = a[2 + k] == '-' ? '_' : a[2 + k];
		struct config probe = *cfg;
		if (config_set(&probe, key, v, why, sizeof why) && !strncmp(why, "unknown setting", 15))
			return 0;
	}
	if (config_set(cfg, key, v, why, sizeof why)) {
		snprintf(err, errlen, "%s: %s", a, why);
		return -1;
	}
	return 2;
}

int config_main(struct config *cfg, int argc, char **argv, const char *program,
                void (*usage)(FILE *), const char *const *extra)
{
	char err[512];
	config_defaults(cfg);
	if (config_from_env(cfg, err, sizeof err)) {
		log_error("%s", err);
		return 2;
	}
	for (int i = 1; i < argc;) {
		const char *a = argv[i];
		int used = config_arg(cfg, argc, argv, i, err, sizeof err);
		if (used < 0) {
			log_error("%s", err);
			return 2;
		}
		if (used > 0) {
			i += used;
			continue;
		}
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return 0;
		}
		if (!strcmp(a, "--version")) {
			printf("%s %s\n", program, PACKAGE_VERSION);
			return 0;
		}
		int known = 0;
		for (const char *const *x = extra; x && *x && !known; x++)
			known = !strcmp(a, *x);
		if (!known) {
			usage(stderr);
			return 2;
		}
		i++;
	}
	return -1;
}
