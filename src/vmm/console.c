#include "vmm/console.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "common/log.h"

#define CONSOLE_MAX_CLIENTS 8
#define CONSOLE_INPUT_BUF 4096

struct console {
	struct loop *loop;
	struct machine *m;
	pthread_mutex_t lock; /* output side: history and client list */

	int in_fd;  /* stdio: 0; -1 when none */
	int out_fd; /* stdio: 1; -1 when none */
	bool restore_tty;
	struct termios saved_tty;

	int listen_fd;
	char path[108];
	int clients[CONSOLE_MAX_CLIENTS];
	unsigned nr_clients;
	uint8_t history[CONSOLE_HISTORY];
	size_t history_len;  /* bytes stored, up to CONSOLE_HISTORY */
	size_t history_head; /* next write position */

	uint8_t input[CONSOLE_INPUT_BUF];
	size_t input_len;
};

static void history_append(struct console *c, const uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		c->history[c->history_head] = buf[i];
		c->history_head = (c->history_head + 1) % CONSOLE_HISTORY;
	}
	c->history_len = c->history_len + len > CONSOLE_HISTORY ? CONSOLE_HISTORY
								 : c->history_len + len;
}

static void write_all_nonblocking(int fd, const uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		/* A client too slow to take the output loses it; the guest never waits on it. */
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

void console_output(struct console *c, const uint8_t *buf, size_t len)
{
	pthread_mutex_lock(&c->lock);
	if (c->out_fd >= 0) {
		while (len) {
			ssize_t n = write(c->out_fd, buf, len);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			buf += n;
			len -= (size_t)n;
		}
	} else if (c->listen_fd >= 0) {
		history_append(c, buf, len);
		for (unsigned i = 0; i < c->nr_clients; i++)
			write_all_nonblocking(c->clients[i], buf, len);
	}
	pthread_mutex_unlock(&c->lock);
}

int console_flush_input(struct console *c)
{
	size_t taken;

	if (!c->input_len)
		return 0;
	taken = machine_console_input(c->m, c->input, c->input_len);
	memmove(c->input, c->input + taken, c->input_len - taken);
	c->input_len -= taken;
	return c->input_len != 0;
}

/* Reads what is there into the input buffer; returns false at end of file. */
static bool read_input(struct console *c, int fd)
{
	ssize_t n;

	if (c->input_len == sizeof(c->input))
		return true; /* the guest is not reading; keep the rest in the kernel's buffer */
	n = read(fd, c->input + c->input_len, sizeof(c->input) - c->input_len);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	if (n <= 0)
		return false;
	c->input_len += (size_t)n;
	console_flush_input(c);
	return true;
}

static void on_stdin(void *opaque, int fd, short revents)
{
	struct console *c = opaque;

	if (!read_input(c, fd))
		loop_remove(c->loop, fd);
}

static void drop_client(struct console *c, int fd)
{
	loop_remove(c->loop, fd);
	pthread_mutex_lock(&c->lock);
	for (unsigned i = 0; i < c->nr_clients; i++) {
		if (c->clients[i] == fd) {
			c->clients[i] = c->clients[--c->nr_clients];
			break;
		}
	}
	pthread_mutex_unlock(&c->lock);
	close(fd);
}

static void on_client(void *opaque, int fd, short revents)
{
	struct console *c = opaque;

	if (!read_input(c, fd) || (revents & (POLLERR | POLLHUP | POLLNVAL)))
		drop_client(c, fd);
}

static void on_accept(void *opaque, int fd, short revents)
{
	struct console *c = opaque;
	int client = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	size_t start;

	if (client < 0)
		return;
	pthread_mutex_lock(&c->lock);
	if (c->nr_clients == CONSOLE_MAX_CLIENTS) {
		pthread_mutex_unlock(&c->lock);
		log_warn("console", "too many console clients (%d); refusing one",
			 CONSOLE_MAX_CLIENTS);
		close(client);
		return;
	}
	/* Replay the history, oldest byte first. */
	start = (c->history_head + CONSOLE_HISTORY - c->history_len) % CONSOLE_HISTORY;
	if (start + c->history_len <= CONSOLE_HISTORY) {
		write_all_nonblocking(client, c->history + start, c->history_len);
	} else {
		write_all_nonblocking(client, c->history + start, CONSOLE_HISTORY - start);
		write_all_nonblocking(client, c->history, c->history_len - (CONSOLE_HISTORY - start));
	}
	c->clients[c->nr_clients++] = client;
	pthread_mutex_unlock(&c->lock);
	if (loop_add(c->loop, client, POLLIN, on_client, c) < 0)
		drop_client(c, client);
}

static int open_socket(struct console *c, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };

	if (strlen(path) >= sizeof(addr.sun_path)) {
		snprintf(err, errlen, "console socket path is too long (at most %zu bytes): %s",
			 sizeof(addr.sun_path) - 1, path);
		return -ENAMETOOLONG;
	}
	strcpy(addr.sun_path, path);
	snprintf(c->path, sizeof(c->path), "%s", path);
	c->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->listen_fd < 0 || bind(c->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(c->listen_fd, 4) < 0) {
		int e = errno;

		snprintf(err, errlen, "cannot listen on console socket %s: %s", path, strerror(e));
		return -e;
	}
	return loop_add(c->loop, c->listen_fd, POLLIN, on_accept, c);
}

static void setup_stdio(struct console *c)
{
	struct termios raw;

	c->in_fd = STDIN_FILENO;
	c->out_fd = STDOUT_FILENO;
	if (isatty(c->in_fd) && tcgetattr(c->in_fd, &c->saved_tty) == 0) {
		/* Raw mode: Ctrl-C and every other key go to the guest, not to cryo-vmm. */
		raw = c->saved_tty;
		cfmakeraw(&raw);
		raw.c_oflag |= OPOST | ONLCR;
		if (tcsetattr(c->in_fd, TCSANOW, &raw) == 0)
			c->restore_tty = true;
	}
	fcntl(c->in_fd, F_SETFL, fcntl(c->in_fd, F_GETFL) | O_NONBLOCK);
	loop_add(c->loop, c->in_fd, POLLIN, on_stdin, c);
}

struct console *console_create(const char *spec, struct loop *loop, struct machine *m, char *err,
			       size_t errlen)
{
	struct console *c = calloc(1, sizeof(*c));

	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->loop = loop;
	c->m = m;
	c->in_fd = c->out_fd = c->listen_fd = -1;
	pthread_mutex_init(&c->lock, NULL);

	if (strcmp(spec, "stdio") == 0) {
		setup_stdio(c);
	} else if (strncmp(spec, "socket:", 7) == 0 && spec[7]) {
		if (open_socket(c, spec + 7, err, errlen) < 0) {
			console_destroy(c);
			return NULL;
		}
	} else if (strcmp(spec, "none") != 0) {
		snprintf(err, errlen, "invalid --console value '%s': use stdio, socket:PATH or none",
			 spec);
		console_destroy(c);
		return NULL;
	}
	return c;
}

void console_destroy(struct console *c)
{
	if (!c)
		return;
	if (c->restore_tty)
		tcsetattr(c->in_fd, TCSANOW, &c->saved_tty);
	if (c->in_fd >= 0)
		fcntl(c->in_fd, F_SETFL, fcntl(c->in_fd, F_GETFL) & ~O_NONBLOCK);
	for (unsigned i = 0; i < c->nr_clients; i++)
		close(c->clients[i]);
	if (c->listen_fd >= 0) {
		close(c->listen_fd);
		unlink(c->path);
	}
	pthread_mutex_destroy(&c->lock);
	free(c);
}
