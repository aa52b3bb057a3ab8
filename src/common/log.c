#include "common/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOG_BURST_PER_SECOND 10

static enum log_level max_level = LOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {
	[LOG_ERROR] = "error",
	[LOG_WARN] = "warning",
	[LOG_INFO] = "info",
	[LOG_DEBUG] = "debug",
};

void log_set_level(enum log_level level)
{
	max_level = level;
}

void log_init_from_env(void)
{
	const char *v = getenv("CRYO_LOG");

	if (!v)
		return;
	for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(v, level_names[i]) == 0 || (i == LOG_WARN && strcmp(v, "warn") == 0))
			max_level = (enum log_level)i;
	}
}

static int64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void log_vmsg(enum log_level level, const char *prefix, uint64_t suppressed,
		     const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));

static void log_vmsg(enum log_level level, const char *prefix, uint64_t suppressed,
		     const char *fmt, va_list ap)
{
	char line[1024];
	int n;

	n = snprintf(line, sizeof(line), "cryo %s: %s: ", level_names[level], prefix);
	if (n < 0 || (size_t)n >= sizeof(line))
		n = 0;
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);

	pthread_mutex_lock(&log_lock);
	if (suppressed)
		fprintf(stderr, "%s (%llu similar messages suppressed)\n", line,
			(unsigned long long)suppressed);
	else
		fprintf(stderr, "%s\n", line);
	fflush(stderr);
	pthread_mutex_unlock(&log_lock);
}

void log_msg(enum log_level level, const char *prefix, const char *fmt, ...)
{
	va_list ap;

	if (level > max_level)
		return;
	va_start(ap, fmt);
	log_vmsg(level, prefix, 0, fmt, ap);
	va_end(ap);
}

void log_msg_ratelimited(struct log_ratelimit *rl, enum log_level level, const char *prefix,
			 const char *fmt, ...)
{
	int64_t now = monotonic_ns();
	uint64_t suppressed;
	va_list ap;

	if (level > max_level)
		return;

	pthread_mutex_lock(&log_lock);
	if (now - rl->window_start_ns >= 1000000000) {
		rl->window_start_ns = now;
		rl->printed = 0;
	}
	if (rl->printed >= LOG_BURST_PER_SECOND) {
		rl->suppressed++;
		pthread_mutex_unlock(&log_lock);
		return;
	}
	rl->printed++;
	suppressed = rl->suppressed;
	rl->suppressed = 0;
	pthread_mutex_unlock(&log_lock);

	va_start(ap, fmt);
	log_vmsg(level, prefix, suppressed, fmt, ap);
	va_end(ap);
}
