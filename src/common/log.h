/*
 * One logger for every layer: a level, a subsystem prefix, and a rate-limited form
 * for messages a guest can trigger at will. Output goes to stderr, which cryo-vmm
 * points at the VM's log file when it runs detached.
 */
#ifndef CRYO_COMMON_LOG_H
#define CRYO_COMMON_LOG_H

#include <stdint.h>

enum log_level {
	LOG_ERROR,
	LOG_WARN,
	LOG_INFO,
	LOG_DEBUG,
};

/* Messages above this level are dropped; set from CRYO_LOG (error|warn|info|debug). */
void log_set_level(enum log_level level);
void log_init_from_env(void);

void log_msg(enum log_level level, const char *prefix, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * State of one rate-limited call site: at most `burst` messages per second, and a
 * count of those dropped, printed with the next one that passes.
 */
struct log_ratelimit {
	int64_t window_start_ns;
	uint32_t printed;
	uint64_t suppressed;
};

void log_msg_ratelimited(struct log_ratelimit *rl, enum log_level level, const char *prefix,
			 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define log_error(prefix, ...) log_msg(LOG_ERROR, prefix, __VA_ARGS__)
#define log_warn(prefix, ...) log_msg(LOG_WARN, prefix, __VA_ARGS__)
#define log_info(prefix, ...) log_msg(LOG_INFO, prefix, __VA_ARGS__)
#define log_debug(prefix, ...) log_msg(LOG_DEBUG, prefix, __VA_ARGS__)

/* Rate-limited warning with a private limiter per call site. */
#define log_warn_rl(prefix, ...)                                                    \
	do {                                                                        \
		static struct log_ratelimit log_rl__;                               \
		log_msg_ratelimited(&log_rl__, LOG_WARN, prefix, __VA_ARGS__);      \
	} while (0)

#endif
