/*
 * Control socket client. Replies are read through a small line buffer per connection;
 * a line longer than the protocol allows is a protocol error, not something to truncate.
 */
#include "cli/control.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int wait_fd(int fd, short events, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	int n;

	do {
		n = poll(&p, 1, timeout_ms);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n == 0 ? -ETIMEDOUT : 0;
}

int control_connect(struct control_conn *c, const char *path, int timeout_ms)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd, ret;

	c->fd = -1;
	c->len = 0;
	if (strlen(path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	memcpy(addr.sun_path, path, strlen(path) + 1);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		ret = -errno;
		if (ret != -EINPROGRESS && ret != -EAGAIN)
			goto fail;
		ret = wait_fd(fd, POLLOUT, timeout_ms);
		if (ret)
			goto fail;
	}
	c->fd = fd;
	return 0;

fail:
	close(fd);
	return ret;
}

void control_close(struct control_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->len = 0;
}

static int control_send(struct control_conn *c, const char *request, int timeout_ms)
{
	char line[CONTROL_LINE_MAX + 1];
	size_t len, off = 0;
	int n, ret;

	n = snprintf(line, sizeof(line), "%s\n", request);
	if (n < 0 || (size_t)n >= sizeof(line))
		return -E2BIG;
	len = (size_t)n;

	while (off < len) {
		ssize_t w = send(c->fd, line + off, len - off, MSG_NOSIGNAL);

		if (w < 0 && errno == EAGAIN) {
			ret = wait_fd(c->fd, POLLOUT, timeout_ms);
			if (ret)
				return ret;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		off += (size_t)w;
	}
	return 0;
}

/* Read one line (without newline) into line; waits at most timeout_ms for it. */
static int control_read_line(struct control_conn *c, char *line, size_t linelen, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;

	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		int64_t left;
		ssize_t r;
		int ret;

		if (nl) {
			size_t n = (size_t)(nl - c->buf);

			snprintf(line, linelen, "%.*s", (int)n, c->buf);
			memmove(c->buf, nl + 1, c->len - n - 1);
			c->len -= n + 1;
			return 0;
		}
		if (c->len == CONTROL_LINE_MAX)
			return -EPROTO;

		left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		ret = wait_fd(c->fd, POLLIN, (int)left);
		if (ret)
			return ret;
		r = recv(c->fd, c->buf + c->len, CONTROL_LINE_MAX - c->len, 0);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EPIPE;
		c->len += (size_t)r;
	}
}

static void control_parse_progress(const char *line, control_progress_fn progress, void *arg)
{
	char value[32];
	uint64_t written = 0, total = 0;

	if (control_reply_get(line, "written", value, sizeof(value)))
		written = strtoull(value, NULL, 10);
	if (control_reply_get(line, "total", value, sizeof(value)))
		total = strtoull(value, NULL, 10);
	if (progress)
		progress(written, total, arg);
}

int control_request(struct control_conn *c, const char *request, char *reply, size_t replylen,
		    int idle_timeout_ms, control_progress_fn progress, void *arg)
{
	char line[CONTROL_LINE_MAX + 1];
	int ret;

	ret = control_send(c, request, idle_timeout_ms);
	if (ret)
		return ret;

	for (;;) {
		ret = control_read_line(c, line, sizeof(line), idle_timeout_ms);
		if (ret)
			return ret;
		if (strncmp(line, "progress", 8) == 0 && (line[8] == ' ' || !line[8])) {
			control_parse_progress(line, progress, arg);
			continue;
		}
		snprintf(reply, replylen, "%s", line);
		if (strcmp(line, "ok") == 0 || strncmp(line, "ok ", 3) == 0)
			return 0;
		if (strcmp(line, "error") == 0 || strncmp(line, "error ", 6) == 0)
			return -EREMOTEIO;
		return -EPROTO;
	}
}

int control_call(const char *path, const char *request, char *reply, size_t replylen,
		 int timeout_ms)
{
	struct control_conn c;
	int ret;

	ret = control_connect(&c, path, timeout_ms);
	if (ret)
		return ret;
	ret = control_request(&c, request, reply, replylen, timeout_ms, NULL, NULL);
	control_close(&c);
	return ret;
}

bool control_reply_get(const char *reply, const char *key, char *out, size_t outlen)
{
	size_t klen = strlen(key);
	const char *p = reply;

	while ((p = strstr(p, key)) != NULL) {
		bool at_word_start = p == reply || p[-1] == ' ';

		if (at_word_start && p[klen] == '=') {
			const char *v = p + klen + 1;
			size_t vlen = strcspn(v, " ");

			snprintf(out, outlen, "%.*s", (int)vlen, v);
			return true;
		}
		p += klen;
	}
	return false;
}
