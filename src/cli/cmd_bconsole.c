/*
 * cryo bconsole: connect the terminal to a VM's serial console socket. On a terminal, stdin
 * is put in raw mode so every key reaches the guest; Ctrl-] followed by '.' detaches, and
 * Ctrl-] typed twice sends one Ctrl-] to the guest. The command holds no VM lock, so other
 * commands run while a console is attached. When stdin reaches end of file (a pipe), output
 * keeps being copied until the VM closes the socket.
 */
#include "cli/cli.h"

#include "common/log.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#define CONSOLE_ESCAPE 0x1d	/* Ctrl-] */

static const struct arg_spec bconsole_args[] = {
	{ "jname", ARG_NAME, ARG_REQUIRED, NULL, "name of the VM" },
	{ .key = NULL },
};

static int console_connect(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd;

	if ((size_t)snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	return fd;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Copy keys from in to out, handling the escape sequence. Returns 1 when the user asked to
 * detach, else 0 or a negative errno.
 */
static int console_keys(const char *in, size_t len, bool *escape_pending, int sock)
{
	char out[2 * 4096];
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		char c = in[i];

		if (*escape_pending) {
			*escape_pending = false;
			if (c == '.')
				return 1;
			out[n++] = CONSOLE_ESCAPE;
			if (c == CONSOLE_ESCAPE)
				continue;
		} else if (c == CONSOLE_ESCAPE) {
			*escape_pending = true;
			continue;
		}
		out[n++] = c;
	}
	return write_all(sock, out, n);
}

static int console_loop(int sock)
{
	struct pollfd fds[2] = {
		{ .fd = sock, .events = POLLIN },
		{ .fd = STDIN_FILENO, .events = POLLIN },
	};
	bool escape_pending = false;
	char buf[4096];

	for (;;) {
		ssize_t n;
		int ret;

		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			n = read(sock, buf, sizeof(buf));
			if (n <= 0)
				return 0;
			ret = write_all(STDOUT_FILENO, buf, (size_t)n);
			if (ret)
				return ret;
		}
		if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			n = read(STDIN_FILENO, buf, sizeof(buf));
			if (n <= 0) {
				fds[1].fd = -1;
				continue;
			}
			ret = console_keys(buf, (size_t)n, &escape_pending, sock);
			if (ret)
				return ret > 0 ? 1 : ret;
		}
	}
}

int cmd_bconsole(struct cli *cli, int argc, char **argv)
{
	struct termios saved, raw;
	struct vm_paths paths;
	struct vm_def *def = NULL;
	struct args a;
	bool tty = isatty(STDIN_FILENO);
	int sock, ret, status = CLI_EXIT_ERROR;

	ret = cli_parse_args(&a, "bconsole", "Attach the terminal to the serial console of a "
			     "VM. Detach with Ctrl-] then '.'.", bconsole_args, argc, argv, 0);
	if (ret) {
		args_free(&a);
		return ret > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
	}
	def = malloc(sizeof(*def));
	if (!def || cli_find_vm(cli, "bconsole", args_get(&a, "jname"), def, &paths))
		goto out;
	if (!vm_instance_alive(&paths)) {
		log_error("bconsole", "%s is not running", def->name);
		goto out;
	}
	sock = console_connect(paths.console);
	if (sock < 0) {
		log_error("bconsole", "cannot connect to %s: %s", paths.console, strerror(-sock));
		goto out;
	}

	signal(SIGPIPE, SIG_IGN);
	log_info("bconsole", "connected to the console of %s; type Ctrl-] then . to detach",
		 def->name);
	if (tty && tcgetattr(STDIN_FILENO, &saved) == 0) {
		raw = saved;
		cfmakeraw(&raw);
		tcsetattr(STDIN_FILENO, TCSANOW, &raw);
	} else {
		tty = false;
	}

	ret = console_loop(sock);

	if (tty)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved);
	close(sock);
	if (ret == 1)
		log_info("bconsole", "detached from %s", def->name);
	else if (ret == 0)
		log_info("bconsole", "console of %s closed: the VM stopped", def->name);
	else
		log_error("bconsole", "console of %s failed: %s", def->name, strerror(-ret));
	status = ret < 0 ? CLI_EXIT_ERROR : CLI_EXIT_OK;

out:
	free(def);
	args_free(&a);
	return status;
}
