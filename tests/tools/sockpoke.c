/*
 * sockpoke SOCKET ACTION...: connects to a Unix stream socket and runs the actions in
 * order, printing every byte that arrives on stdout as it is. For tests that play
 * a misbehaving client (half requests, binary garbage, idle connections), which
 * bash cannot do because it has no Unix sockets. Test tool only.
 *
 * Actions:
 *   send=TEXT       send TEXT, with the escapes \n \r \t \\ \0 and \xHH decoded
 *   repeat=N:TEXT   send TEXT (escapes decoded) N times
 *   sendfile=PATH   send the bytes of PATH ('-' for stdin)
 *   sleep=MS        wait MS milliseconds, reading nothing
 *   read=MS         print what arrives within MS milliseconds, less if the peer closes
 *   lines=N:MS      print what arrives until N more newlines came; exit 3 after MS ms
 *   eof=MS          print what arrives until the peer closes; exit 4 after MS ms
 *   shutdown        close the sending direction only (the peer reads end of file)
 *
 * The connection is closed when the actions are done, so a client that stops after
 * "send=sta" is one that disconnects in the middle of a request. Exit status: 0 done,
 * 2 usage, connect or send failure, 3 lines= timed out, 4 eof= timed out. End of file
 * and ECONNRESET from the peer both count as "closed"; "sockpoke: closed by peer"
 * goes to stderr when it happens. A send that finds the peer gone (EPIPE, ECONNRESET)
 * is not an error: later sends are skipped, and what the peer sent can still be read.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct conn {
	int fd;
	bool peer_closed; /* reading found end of file or ECONNRESET */
	bool send_closed; /* sending failed with EPIPE or ECONNRESET; later sends are skipped */
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes the escapes of TEXT into a new buffer; returns its length, or -1 if invalid. */
static ssize_t unescape(const char *text, char **out)
{
	size_t len = strlen(text), n = 0;
	char *buf = malloc(len + 1);

	if (!buf)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (text[i] != '\\' || i + 1 == len) {
			buf[n++] = text[i];
			continue;
		}
		i++;
		switch (text[i]) {
		case 'n':
			buf[n++] = '\n';
			break;
		case 'r':
			buf[n++] = '\r';
			break;
		case 't':
			buf[n++] = '\t';
			break;
		case '0':
			buf[n++] = 0;
			break;
		case '\\':
			buf[n++] = '\\';
			break;
		case 'x':
			if (i + 2 >= len || hex_digit(text[i + 1]) < 0 || hex_digit(text[i + 2]) < 0) {
				free(buf);
				return -1;
			}
			buf[n++] = (char)(hex_digit(text[i + 1]) * 16 + hex_digit(text[i + 2]));
			i += 2;
			break;
		default:
			free(buf);
			return -1;
		}
	}
	*out = buf;
	return (ssize_t)n;
}

static int send_all(struct conn *c, const char *buf, size_t len)
{
	while (len && !c->send_closed) {
		ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
			/* What the peer sent before it closed can still be read. */
			fprintf(stderr, "sockpoke: closed by peer while sending: %s\n",
				strerror(errno));
			c->send_closed = true;
			return 0;
		}
		if (n < 0) {
			fprintf(stderr, "sockpoke: send failed: %s\n", strerror(errno));
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int send_file(struct conn *c, const char *path)
{
	int fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY);
	char buf[65536];
	ssize_t n;
	int ret = 0;

	if (fd < 0) {
		fprintf(stderr, "sockpoke: cannot open %s: %s\n", path, strerror(errno));
		return -1;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		ret = send_all(c, buf, (size_t)n);
		if (ret < 0)
			break;
	}
	if (n < 0) {
		fprintf(stderr, "sockpoke: cannot read %s: %s\n", path, strerror(errno));
		ret = -1;
	}
	if (fd != STDIN_FILENO)
		close(fd);
	return ret;
}

/*
 * Prints what arrives for at most `ms` milliseconds. Stops early when the peer
 * closes, or once `*newlines` reaches zero (when newlines is not NULL). Returns
 * true if it stopped early.
 */
static bool receive(struct conn *c, long long ms, long *newlines)
{
	long long deadline = now_ms() + ms;
	char buf[65536];

	while (!c->peer_closed) {
		long long left = deadline - now_ms();
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		ssize_t n;

		if (newlines && *newlines <= 0)
			return true;
		if (left <= 0)
			return false;
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		n = recv(c->fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			c->peer_closed = true;
			fprintf(stderr, "sockpoke: closed by peer\n");
			break;
		}
		fwrite(buf, 1, (size_t)n, stdout);
		fflush(stdout);
		for (ssize_t i = 0; newlines && i < n; i++) {
			if (buf[i] == '\n')
				(*newlines)--;
		}
	}
	return true;
}

static int run_action(struct conn *c, const char *action)
{
	char *text, *end;
	ssize_t len;
	long count, ms;
	int ret;

	if (strncmp(action, "send=", 5) == 0 || strncmp(action, "repeat=", 7) == 0) {
		count = 1;
		if (action[0] == 'r') {
			count = strtol(action + 7, &end, 10);
			if (*end != ':' || count < 0)
				return -2;
			action = end + 1;
		} else {
			action += 5;
		}
		len = unescape(action, &text);
		if (len < 0)
			return -2;
		ret = 0;
		for (long i = 0; i < count && ret == 0; i++)
			ret = send_all(c, text, (size_t)len);
		free(text);
		return ret;
	}
	if (strncmp(action, "sendfile=", 9) == 0)
		return send_file(c, action + 9);
	if (strncmp(action, "sleep=", 6) == 0) {
		ms = strtol(action + 6, &end, 10);
		if (*end || ms < 0)
			return -2;
		usleep((useconds_t)ms * 1000);
		return 0;
	}
	if (strncmp(action, "read=", 5) == 0) {
		ms = strtol(action + 5, &end, 10);
		if (*end || ms < 0)
			return -2;
		receive(c, ms, NULL);
		return 0;
	}
	if (strncmp(action, "lines=", 6) == 0) {
		count = strtol(action + 6, &end, 10);
		if (*end != ':' || count < 1)
			return -2;
		ms = strtol(end + 1, &end, 10);
		if (*end || ms < 0)
			return -2;
		receive(c, ms, &count);
		if (count > 0) {
			fprintf(stderr, "sockpoke: timed out after %ld ms waiting for %ld more lines\n",
				ms, count);
			return -3;
		}
		return 0;
	}
	if (strncmp(action, "eof=", 4) == 0) {
		ms = strtol(action + 4, &end, 10);
		if (*end || ms < 0)
			return -2;
		receive(c, ms, NULL);
		if (!c->peer_closed) {
			fprintf(stderr, "sockpoke: timed out after %ld ms waiting for the peer to close\n",
				ms);
			return -4;
		}
		return 0;
	}
	if (strcmp(action, "shutdown") == 0) {
		if (shutdown(c->fd, SHUT_WR) < 0) {
			fprintf(stderr, "sockpoke: shutdown failed: %s\n", strerror(errno));
			return -1;
		}
		return 0;
	}
	return -2;
}

int main(int argc, char **argv)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct conn c = { .fd = -1 };

	if (argc < 2 || strlen(argv[1]) >= sizeof(addr.sun_path)) {
		fprintf(stderr, "usage: sockpoke SOCKET ACTION... (see the header of sockpoke.c)\n");
		return 2;
	}
	strcpy(addr.sun_path, argv[1]);
	c.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c.fd < 0 || connect(c.fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		fprintf(stderr, "sockpoke: cannot connect to %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		int ret = run_action(&c, argv[i]);

		if (ret == -2) {
			fprintf(stderr, "sockpoke: invalid action '%s'\n", argv[i]);
			return 2;
		}
		if (ret < 0) {
			close(c.fd);
			return ret == -1 ? 2 : -ret;
		}
	}
	close(c.fd);
	return 0;
}
