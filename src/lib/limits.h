/* limits.h: every default and hard limit of lmstream, in one place. */
#ifndef LS_LIMITS_H
#define LS_LIMITS_H

/* Configurable defaults (config file keys in parentheses). */
#define LS_DEFAULT_MAP_SIZE        (8ULL << 30)   /* map_size: 8 GiB of address space */
#define LS_DEFAULT_MAP_RESERVE     (64ULL << 20)  /* map_reserve: kept free for deletions (at most map_size / 8) */
#define LS_DEFAULT_MAX_FORKS       256            /* max_forks: forks of one stream at once */
#define LS_DEFAULT_MAX_BODY        (64UL << 20)   /* max_body: 64 MiB per request body */
#define LS_DEFAULT_MAX_PATH        400            /* max_path: bytes of decoded stream name */
#define LS_DEFAULT_LONG_POLL_MS    20000          /* long_poll_timeout */
#define LS_DEFAULT_SSE_LIFETIME_MS 60000          /* sse_lifetime */
#define LS_DEFAULT_PREFIX          "/v1/stream/"  /* prefix */
#define LS_DEFAULT_PUBLIC_URL      ""             /* public_url: "" = scheme and Host of the request */
#define LS_DEFAULT_LISTEN          "127.0.0.1:8081" /* listen (lmstream-live) */
#define LS_DEFAULT_LISTEN_GROUP    ""             /* listen_group: "" = the process's group */
#define LS_DEFAULT_DATA_DIR        "/var/lib/lmstream"
#define LS_DEFAULT_SNAPSHOT_PAGE   (8UL << 20)    /* snapshot_page: bytes of one GET ?snapshot page */
#define LS_DEFAULT_DURABILITY      "durable"      /* durability */
#define LS_DEFAULT_HEARTBEAT_MS    15000          /* heartbeat: SSE comment interval */
#define LS_DEFAULT_MAX_CONNECTIONS 10000          /* max_connections (lmstream-live, all processes) */
#define LS_DEFAULT_THREADS         2              /* threads (lmstream-live, per process) */
#define LS_DEFAULT_WORKER_THREADS  8              /* worker_threads (lmstream.fcgi, per process) */
#define LS_DEFAULT_LIVE_PROCESSES  1              /* live_processes */
#define LS_DEFAULT_CONN_MEMORY     16384          /* conn_memory: bytes per lmstream-live connection (7 KiB of headers) */
#define LS_DEFAULT_MEMORY_BUDGET   (256ULL << 20) /* memory_budget: bytes per lmstream-live process */
#define LS_DEFAULT_HEADER_TIMEOUT_MS 10000        /* header_timeout */
#define LS_DEFAULT_MAX_CONNECTIONS_PER_IP 256     /* max_connections_per_ip (TCP only) */
#define LS_DEFAULT_CACHE_CONTROL   "public, max-age=60, stale-while-revalidate=300" /* cache_control */
#define LS_DEFAULT_RETENTION_AGE   0              /* retention_age: seconds, 0 = keep everything */
#define LS_DEFAULT_RETENTION_BYTES 0              /* retention_bytes: 0 = keep everything */
#define LS_DEFAULT_NOTIFY_SOCKET   ""             /* notify_socket: "" = <data_dir>/live.sock */
#define LS_DEFAULT_WWW             ""             /* www: "" = serve no static files */
#define LS_DEFAULT_AUTH            "none"         /* auth: the shipped lmstream.conf sets token */
#define LS_DEFAULT_AUTH_KEY        ""             /* auth_key: "" = <data_dir>/auth.key */
#define LS_DEFAULT_AUTH_SKEW_S     30             /* auth_skew: seconds */
#define LS_DEFAULT_AUTH_COOKIE     "lmstream_token" /* auth_cookie */
#define LS_DEFAULT_PUBLIC_READ     ""             /* public_read: patterns */
#define LS_DEFAULT_PUBLIC_WRITE    ""             /* public_write: patterns */
#define LS_DEFAULT_USER_READ       ""             /* user_read: patterns with {user} */
#define LS_DEFAULT_USER_WRITE      ""             /* user_write */
#define LS_DEFAULT_USER_ADMIN      ""             /* user_admin */
#define LS_DEFAULT_CORS_ORIGINS    "*"            /* cors_origins */
#define LS_DEFAULT_METRICS         "on"           /* metrics */
#define LS_DEFAULT_METRICS_PATH    "/__lmstream/metrics" /* metrics_path */
#define LS_DEFAULT_ACCESS_LOG      ""             /* access_log: none */
#define LS_DEFAULT_LOG_LEVEL       "info"         /* log_level */

/* Hard limits. */
#define LS_MAX_PATH_HARD      480   /* LMDB keys are at most 511 bytes */
#define LS_MAX_USER           255   /* bytes of a web server's user name ({user}) */
#define LS_MAX_PRODUCER_ID    256   /* bytes of Producer-Id */
#define LS_MAX_STREAM_SEQ     256   /* bytes of Stream-Seq */
#define LS_MAX_CONTENT_TYPE   256   /* bytes of a stream's Content-Type */
#define LS_MAX_EXPIRES_AT     64    /* bytes of Stream-Expires-At */
#define LS_MAX_PREFIX         128
#define LS_MAX_PUBLIC_URL     256   /* bytes of public_url */
/* The longest URL of a stream: public_url (or a scheme and a 255-byte Host),
 * the prefix, and the name with every byte percent-encoded. */
#define LS_MAX_URL            (LS_MAX_PUBLIC_URL + LS_MAX_PREFIX + 3 * LS_MAX_PATH_HARD + 16)
#define LS_JSON_MAX_DEPTH     256   /* nesting accepted in JSON bodies */
#define LS_MAX_BATCH_MESSAGES 100000 /* JSON array elements in one request (413 above): one transaction */
#define LS_READ_PAGE_BYTES    (1UL << 20) /* catch-up read stops after ~1 MiB (one message at least) */
#define LS_SSE_BATCH_BYTES    (64UL << 10) /* SSE writes at most ~64 KiB of messages per step */
#define LS_SSE_PIECE_BYTES    (48UL << 10) /* a longer message goes out in pieces of this (a multiple of 3: base64) */
#define LS_MAX_READERS        1022  /* LMDB reader slots; the same value in every process */
#define LS_TTL_TOUCH_MS       1000  /* a read refreshes a sliding TTL at most this often */
#define LS_TTL_TOUCH_FLUSH_MS 250   /* a process writes pending TTL touches at most this often */
#define LS_PRODUCER_TTL_MS    (7LL * 24 * 3600 * 1000) /* idle producer state is forgotten */
#define LS_GC_ROWS_PER_WRITE  512   /* rows of deleted streams reclaimed per write transaction */
#define LS_BATCH_MAX_JOBS     64    /* appends of one process in one write transaction */
#define LS_BATCH_MAX_BYTES    (16u << 20) /* ... and their request bodies, together */
#define LS_FLUSH_WAIT_US      2000  /* a commit waits at most this for the next one to flush it */
#define LS_HOUSEKEEP_MS       5000  /* lmstream-live runs one housekeeping pass this often */
#define LS_CURSOR_INTERVAL_S  20    /* Stream-Cursor interval */
#define LS_CURSOR_EPOCH_MS    1728432000000LL /* 2024-10-09T00:00:00Z */
#define LS_POLL_INTERVAL_MS   10    /* a worker checks for new commits this often while waiting */
#define LS_RETRY_AFTER_S      5     /* Retry-After on 503/507 */
/* lmstream-live: live reads (SSE, long-poll) may take max_connections but a
 * reserve of max_connections / LS_LIVE_RESERVE_DIV + LS_LIVE_RESERVE_MIN
 * (at most LS_LIVE_RESERVE_MAX, at most half), kept for writes and other
 * requests (per process of a group: max_connections is its share) */
#define LS_LIVE_RESERVE_DIV   32
#define LS_LIVE_RESERVE_MIN   8
#define LS_LIVE_RESERVE_MAX   256
#define LS_BUDGET_RETRY_MS    100   /* lmstream-live: an SSE response over the memory budget looks again after this */
#define LS_FALLBACK_BEAT_MS   2000  /* SSE heartbeat of a worker serving live reads itself */
#define LS_MAX_FORK_DEPTH     32    /* inherited ranges of a fork: a chain of at most 32 forks */
#define LS_MAX_TOKEN          4096  /* bytes of a token (401 above) */
#define LS_MAX_WEBHOOK_URL    2048  /* bytes of a subscription's webhook URL */
#define LS_WEBHOOK_ANSWER_MAX (64UL << 10) /* a webhook's answer body beyond this fails the delivery */
#define LS_ANSWER_ROOM        1024  /* lmstream-live: request headers may fill conn_memory / 2 less this (431 above) */

#endif
