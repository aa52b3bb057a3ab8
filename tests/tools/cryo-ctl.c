/*
 * cryo-ctl SOCKET REQUEST...: sends one request line to a cryo-vmm control socket
 * and prints every reply line up to the final "ok" or "error" one. Exits 0 on "ok",
 * 1 on "error", 2 when the socket cannot be used. For tests and benchmarks.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	char req[4096] = "", buf[8192];
	size_t len = 0, used = 0;
	int fd;

	if (argc < 3 || strlen(argv[1]) >= sizeof(addr.sun_path)) {
		fprintf(stderr, "usage: cryo-ctl SOCKET REQUEST...\n");
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		int n = snprintf(req + len, sizeof(req) - len, "%s%s", i > 2 ? " " : "", argv[i]);

		if (n < 0 || (size_t)n >= sizeof(req) - len - 1) {
			fprintf(stderr, "cryo-ctl: request too long\n");
			return 2;
		}
		len += (size_t)n;
	}
	req[len++] = '\n';

	strcpy(addr.sun_path, argv[1]);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		fprintf(stderr, "cryo-ctl: cannot connect to %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	if (write(fd, req, len) != (ssize_t)len) {
		fprintf(stderr, "cryo-ctl: cannot send: %s\n", strerror(errno));
		return 2;
	}
	for (;;) {
		ssize_t n = read(fd, buf + used, sizeof(buf) - 1 - used);
		char *line, *nl;

		if (n <= 0) {
			fprintf(stderr, "cryo-ctl: connection closed before a final reply\n");
			return 2;
		}
		used += (size_t)n;
		buf[used] = 0;
		line = buf;
		while ((nl = strchr(line, '\n'))) {
			*nl = 0;
			puts(line);
			if (strncmp(line, "ok", 2) == 0 && (line[2] == 0 || line[2] == ' '))
				return 0;
			if (strncmp(line, "error", 5) == 0)
				return 1;
			line = nl + 1;
		}
		used = strlen(line);
		memmove(buf, line, used);
	}
}
