/*
 * Client side of the cryo-vmm control socket (docs/CONTROL.md): one request line out, any
 * number of "progress" lines and one final "ok ..." or "error ..." line back. Every wait has
 * a timeout, so a hung cryo-vmm makes a command fail instead of hang.
 */
#ifndef CRYO_CLI_CONTROL_H
#define CRYO_CLI_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONTROL_LINE_MAX 4096

struct control_conn {
	int fd;
	size_t len;
	char buf[CONTROL_LINE_MAX + 1];
};

/* Called for each "progress written=N total=N" line; total is 0 when absent. */
typedef void (*control_progress_fn)(uint64_t written, uint64_t total, void *arg);

/* Connect to the socket at path; -ENOENT or -ECONNREFUSED when no cryo-vmm listens. */
int control_connect(struct control_conn *c, const char *path, int timeout_ms);
void control_close(struct control_conn *c);

/*
 * Send request (without the newline) and wait for the final reply, copied without its
 * newline into reply. idle_timeout_ms bounds the wait for each line, so a long checkpoint
 * that keeps sending progress lines does not time out. Returns 0 when the reply starts with
 * "ok", -EREMOTEIO when it starts with "error" (reply then contains the whole line),
 * -ETIMEDOUT, -EPIPE when the connection closed, or another negative errno.
 */
int control_request(struct control_conn *c, const char *request, char *reply, size_t replylen,
		    int idle_timeout_ms, control_progress_fn progress, void *arg);

/* Connect, send one request, close. Same returns as the two calls above. */
int control_call(const char *path, const char *request, char *reply, size_t replylen,
		 int timeout_ms);

/*
 * Copy the value of key from a reply line of key=value words into out. Returns false when
 * the key is absent.
 */
bool control_reply_get(const char *reply, const char *key, char *out, size_t outlen);

#endif
