/* log.h: one line per event on stderr. */
#ifndef LS_LOG_H
#define LS_LOG_H

enum { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };
/* Their names, in that order (NULL-terminated): in log lines and log_level. */
extern const char *const log_level_names[];

void log_init(const char *program, int level);
/* Writes "program[pid]: LEVEL message\n". Control bytes in the formatted
 * message are replaced by '?' so request bytes can never forge log lines. */
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
