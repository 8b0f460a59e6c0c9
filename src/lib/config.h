/* config.h: the one configuration file both binaries read, plus overrides. */
#ifndef LS_CONFIG_H
#define LS_CONFIG_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum durability {
	DURABILITY_DURABLE, /* acknowledge after the commit is on disk (group commit) */
	DURABILITY_FAST,    /* acknowledge after the commit; power loss may undo the last commits */
};

enum auth_mode {
	AUTH_NONE,          /* every request may do anything */
	AUTH_TOKEN,         /* rights from signed tokens, the web server's user and public_* */
};

/* Every field has one key in config.c's table; enums are stored as int. */
struct config {
	char     data_dir[512];
	uint64_t map_size;
	uint64_t map_reserve;      /* writes that add data stop when less of the map is free */
	int      durability;       /* enum durability */
	uint64_t max_body;
	size_t   max_path;
	int      long_poll_ms;
	int      sse_lifetime_ms;
	int      heartbeat_ms;     /* SSE comment interval (lmstream-live) */
	char     prefix[128];
	char     public_url[256];  /* scheme://host[:port] of Location; "" = from the request */
	char     listen[128];      /* HOST:PORT or unix:PATH of lmstream-live */
	char     listen_group[64]; /* group of the unix: socket; "" = the process's */
	int      max_connections;  /* lmstream-live connection cap */
	int      threads;          /* lmstream-live worker threads (per process) */
	int      worker_threads;   /* lmstream.fcgi threads (per FastCGI process) */
	int      exit_with_parent; /* a FastCGI process stops when the one that started it ends */
	int      max_live_reads;   /* live reads lmstream.fcgi serves at once, all its processes together */
	int      live_processes;   /* lmstream-live processes sharing the port (SO_REUSEPORT) */
	uint64_t conn_memory;      /* lmstream-live bytes per connection for headers and writes */
	uint64_t memory_budget;    /* lmstream-live bytes of bodies and unsent events, per process */
	int      header_timeout_ms; /* lmstream-live: headers must arrive within this */
	int      max_connections_per_ip; /* lmstream-live on TCP; 0 = no cap */
	char     notify_path[512]; /* AF_UNIX socket of lmstream-live; "" = <data_dir>/live.sock */
	char     cache_control[128]; /* Cache-Control of reads that return data */
	char     www[512];         /* static files lmstream-live serves outside the prefix; "" = none */
	uint64_t retention_age_s;  /* default ?retention-age of new streams; 0 = keep everything */
	uint64_t retention_bytes;  /* default ?retention-bytes of new streams; 0 = keep everything */
	int      max_forks;        /* forks one stream may have at once */
	uint64_t snapshot_page;    /* bytes of one GET ?snapshot page (one read transaction each) */
	int      auth;             /* enum auth_mode */
	char     auth_key[1024];   /* key files, space-separated; "" = <data_dir>/auth.key */
	int      auth_skew_s;      /* clock skew allowed for exp and nbf */
	char     auth_cookie[64];  /* cookie that may carry a token */
	char     public_read[1024];  /* patterns anyone may read */
	char     public_write[1024]; /* patterns anyone may write */
	char     user_read[1024];    /* patterns with {user}: the web server's user may read */
	char     user_write[1024];   /* likewise, write */
	char     user_admin[1024];   /* likewise, admin */
	char     cors_origins[1024]; /* origins allowed with credentials; "*": any, without */
	int      metrics;          /* count requests, commits and live reads in DATA_DIR/lmstream.metrics */
	char     metrics_path[128]; /* URL path of the Prometheus scrape; "" = none */
	char     access_log[512];  /* lmstream-live's access log: a file, "-" stderr, "" none */
	int      log_level;        /* LOG_LVL_* of lib/log.h */
	int      subscriptions_allow_loopback; /* webhooks to http://localhost, 127.x, ::1 (development) */
	int      webhook_timeout_ms; /* one webhook delivery attempt, connect to answer */
	int      webhook_concurrency; /* webhooks one process sends at once */
	char     webhook_ca_file[512]; /* PEM file of the CAs webhook receivers are checked against; "" = the system's */
};

/* Fills cfg with the built-in defaults. */
void config_defaults(struct config *cfg);

/* Applies one "key = value" setting. Returns 0, or -1 with a reason in err. */
int config_set(struct config *cfg, const char *key, const char *value, char *err, size_t errlen);

/* Reads a config file ("key = value" lines, '#' comments). A relative path
 * in data_dir, notify_socket, www or auth_key is taken relative to the
 * file's own directory. Returns 0 or -1 with "file:line: reason" in err. */
int config_load(struct config *cfg, const char *path, char *err, size_t errlen);

/* Applies LMSTREAM_CONFIG (a file) and then LMSTREAM_<KEY> variables of the
 * environment (for example LMSTREAM_DATA_DIR). Returns 0 or -1 with err. */
int config_from_env(struct config *cfg, char *err, size_t errlen);

/* Applies the LMSTREAM_<KEY> variables only. Returns 0 or -1 with err. */
int config_env_only(struct config *cfg, char *err, size_t errlen);

/* Prints the effective configuration: one "key = value" line per key, in
 * the table's order, each value as config_set accepts it (sizes in bytes). */
void config_print(FILE *f, const struct config *cfg);

/* Prints every key with its help and default (for --help). */
void config_help(FILE *f);

/* The keys, in the table's order: how many, and the name of key i (NULL
 * past the end). */
size_t config_nkeys(void);
const char *config_key_name(size_t i);

/* Applies the command-line option at argv[i]: "--config FILE",
 * "--data DIR", "--set key=value", or "--KEY value" for any setting, with
 * '-' for '_' (--max-connections 500). Returns how many arguments it used,
 * 0 when argv[i] is none of these, or -1 with a reason in err. */
int config_arg(struct config *cfg, int argc, char **argv, int i, char *err, size_t errlen);

/* How both programs start. One precedence, highest first: command-line
 * flags, then LMSTREAM_<KEY> variables, then the configuration file (the
 * last --config FILE, else LMSTREAM_CONFIG, else the file given to
 * config_fallback), then the built-in defaults.
 * Besides the settings' flags it knows --help/-h (usage and every key on
 * stdout), --version, --print-config (the effective configuration on
 * stdout, see config_print) and the flags listed in extra (NULL-terminated;
 * accepted and ignored). Returns -1 to go on, or the status to exit with:
 * 0 after --help, --version or --print-config, 2 after an error (logged) or
 * an unknown flag (usage on stderr). */
int config_main(struct config *cfg, int argc, char **argv, const char *program,
                void (*usage)(FILE *), const char *const *extra);

/* The file config_main reads when neither --config nor LMSTREAM_CONFIG
 * names one (lmstream.cgi's, beside the program); NULL or "": none. */
void config_fallback(const char *path);

/* Parses sizes such as "64M", "8G", "512". Returns 0 or -1. */
int config_parse_size(const char *s, uint64_t *out);

#endif
