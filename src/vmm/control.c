#include "vmm/control.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "vmm/checkpoint.h"
#include "vmm/vmm.h"

struct control_client {
	int fd;
	char buf[CONTROL_LINE_MAX];
	size_t len;
};

struct control {
	struct loop *loop;
	struct vmm *v;
	int listen_fd;
	char path[108];
	struct control_client *clients[CONTROL_MAX_CLIENTS];
};

static void send_line(int fd, const char *line)
{
	size_t len = strlen(line);
	char *msg = malloc(len + 2);

	if (!msg)
		return;
	memcpy(msg, line, len);
	msg[len] = '\n';
	/* Replies are short; a client that does not read them loses them, the VMM never blocks. */
	if (send(fd, msg, len + 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		log_debug("control", "reply lost: %s", strerror(errno));
	free(msg);
}

static void reply_to_fd(void *opaque, const char *line)
{
	send_line(*(int *)opaque, line);
}

static void replyf(control_reply_fn reply, void *opaque, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void replyf(control_reply_fn reply, void *opaque, const char *fmt, ...)
{
	char line[CONTROL_LINE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	reply(opaque, line);
}

/* Splits "key=value" words; returns the value of `key`, or NULL. */
static const char *arg_value(char **words, unsigned nr, const char *key)
{
	size_t klen = strlen(key);

	for (unsigned i = 1; i < nr; i++) {
		if (strncmp(words[i], key, klen) == 0 && words[i][klen] == '=')
			return words[i] + klen + 1;
	}
	return NULL;
}

static bool args_known(char **words, unsigned nr, const char *const *keys, char *bad,
		       size_t badlen)
{
	for (unsigned i = 1; i < nr; i++) {
		bool ok = false;

		for (const char *const *k = keys; *k; k++) {
			size_t klen = strlen(*k);

			if (strncmp(words[i], *k, klen) == 0 && words[i][klen] == '=')
				ok = true;
		}
		if (!ok) {
			snprintf(bad, badlen, "%s", words[i]);
			return false;
		}
	}
	return true;
}

static void do_status(struct vmm *v, control_reply_fn reply, void *opaque)
{
	bool busy = __atomic_load_n(&v->checkpoint_running, __ATOMIC_ACQUIRE);

	replyf(reply, opaque, "ok state=%s vcpus=%u memory_mib=%llu pid=%d%s",
	       v->state == VMM_PAUSED ? "paused" : "running", v->m.cfg.nr_cpus,
	       (unsigned long long)(v->m.cfg.mem_size >> 20), (int)getpid(),
	       busy ? " checkpoint=running" : "");
}

static void do_pause(struct vmm *v, control_reply_fn reply, void *opaque)
{
	if (v->state != VMM_PAUSED) {
		vmm_park_vcpus(v);
		v->state = VMM_PAUSED;
	}
	reply(opaque, "ok state=paused");
}

static void do_resume(struct vmm *v, control_reply_fn reply, void *opaque)
{
	if (v->state == VMM_PAUSED) {
		vmm_unpark_vcpus(v);
		v->state = VMM_RUNNING;
	}
	reply(opaque, "ok state=running");
}

static void do_stop(struct vmm *v, char **words, unsigned nr, control_reply_fn reply, void *opaque)
{
	static const char *const keys[] = { "force", NULL };
	const char *force = arg_value(words, nr, "force");
	char bad[64];

	if (!args_known(words, nr, keys, bad, sizeof(bad))) {
		replyf(reply, opaque, "error unknown argument '%s' for stop", bad);
		return;
	}
	/* Only force=1 exists; anything else would otherwise fall through to a power-button stop. */
	if (force && strcmp(force, "1") != 0) {
		replyf(reply, opaque, "error invalid force=%.64s: use force=1, or no force", force);
		return;
	}
	if (force) {
		reply(opaque, "ok stopped");
		log_info("control", "forced stop requested");
		vmm_request_exit(v, VMM_EXIT_POWEROFF);
		return;
	}
	if (v->state == VMM_PAUSED) {
		/* A paused guest cannot react to the button; let it run to shut down. */
		vmm_unpark_vcpus(v);
		v->state = VMM_RUNNING;
	}
	log_info("control", "pressing the power button");
	machine_power_button(&v->m);
	reply(opaque, "ok stopping");
}

/*
 * A checkpoint runs on its own thread so the main loop keeps serving the console and
 * the control socket meanwhile: `status` adds "checkpoint=running" to its reply and
 * every other request gets "error checkpoint already in progress". The worker
 * replies on its own duplicate of the client's socket, so a client that disconnects
 * mid-checkpoint frees nothing the worker uses.
 */
struct checkpoint_job {
	struct vmm *v;
	struct checkpoint_request req;
	char dir[CONTROL_LINE_MAX];
	int fd;
};

/*
 * Sends a worker's reply line. The final one (not "progress ...") first marks the
 * checkpoint as done, so a request the client sends on receiving it is served.
 */
static void worker_reply(void *opaque, const char *line)
{
	struct checkpoint_job *job = opaque;

	if (strncmp(line, "progress", 8) != 0)
		__atomic_store_n(&job->v->checkpoint_running, false, __ATOMIC_RELEASE);
	send_line(job->fd, line);
}

static void *checkpoint_worker(void *opaque)
{
	struct checkpoint_job *job = opaque;

	vmm_checkpoint(job->v, &job->req);
	close(job->fd);
	free(job);
	return NULL;
}

static void start_checkpoint(struct vmm *v, const char *dir, enum checkpoint_then then,
			     bool progress, int client_fd, control_reply_fn reply, void *opaque)
{
	struct checkpoint_job *job = calloc(1, sizeof(*job));
	sigset_t all, old;
	int ret;

	if (!job) {
		reply(opaque, "error out of memory");
		return;
	}
	job->fd = fcntl(client_fd, F_DUPFD_CLOEXEC, 0);
	if (job->fd < 0) {
		replyf(reply, opaque, "error cannot start the checkpoint: %s", strerror(errno));
		free(job);
		return;
	}
	job->v = v;
	snprintf(job->dir, sizeof(job->dir), "%s", dir);
	job->req = (struct checkpoint_request){
		.dir = job->dir,
		.then = then,
		.progress = progress,
		.reply = worker_reply,
		.reply_opaque = job,
	};

	/* The previous worker has sent its final reply; reap it (it may still be closing). */
	if (v->checkpoint_thread_started)
		pthread_join(v->checkpoint_thread, NULL);
	v->checkpoint_thread_started = false;

	__atomic_store_n(&v->checkpoint_running, true, __ATOMIC_RELEASE);
	/* Signals stay with the main thread's signalfd. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = pthread_create(&v->checkpoint_thread, NULL, checkpoint_worker, job);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret) {
		__atomic_store_n(&v->checkpoint_running, false, __ATOMIC_RELEASE);
		close(job->fd);
		free(job);
		replyf(reply, opaque, "error cannot start the checkpoint: %s", strerror(ret));
		return;
	}
	v->checkpoint_thread_started = true;
}

void control_wait_checkpoint(struct vmm *v)
{
	if (v->checkpoint_thread_started)
		pthread_join(v->checkpoint_thread, NULL);
	v->checkpoint_thread_started = false;
}

static void do_checkpoint(struct vmm *v, char **words, unsigned nr, control_reply_fn reply,
			  void *opaque)
{
	static const char *const keys[] = { "dir", "then", "progress", NULL };
	const char *dir = arg_value(words, nr, "dir");
	const char *then = arg_value(words, nr, "then");
	const char *progress = arg_value(words, nr, "progress");
	struct checkpoint_request req = { .then = CHECKPOINT_THEN_RUN };
	char bad[64];

	if (!args_known(words, nr, keys, bad, sizeof(bad))) {
		replyf(reply, opaque, "error unknown argument '%s' for checkpoint", bad);
		return;
	}
	if (!dir || !*dir) {
		reply(opaque, "error checkpoint needs dir=PATH");
		return;
	}
	if (then && strcmp(then, "run") == 0)
		req.then = CHECKPOINT_THEN_RUN;
	else if (then && strcmp(then, "poweroff") == 0)
		req.then = CHECKPOINT_THEN_POWEROFF;
	else if (then && strcmp(then, "exit") == 0)
		req.then = CHECKPOINT_THEN_EXIT;
	else if (then) {
		replyf(reply, opaque, "error invalid then=%.64s: use run, poweroff or exit", then);
		return;
	}
	if (progress && strcmp(progress, "1") != 0) {
		replyf(reply, opaque, "error invalid progress=%.64s: use progress=1", progress);
		return;
	}
	start_checkpoint(v, dir, req.then, progress != NULL, *(int *)opaque, reply, opaque);
}

/* Runs one request line; `opaque` is the client's socket (an int *), which a checkpoint duplicates. */
static void control_execute(struct vmm *v, char *line, control_reply_fn reply, void *opaque)
{
	char *words[16];
	unsigned nr = 0;
	char *save = NULL;

	for (char *w = strtok_r(line, " \t\r", &save); w && nr < 16; w = strtok_r(NULL, " \t\r", &save))
		words[nr++] = w;
	if (nr == 0) {
		reply(opaque, "error empty request");
		return;
	}
	if (nr == 16) {
		reply(opaque, "error too many arguments");
		return;
	}
	/*
	 * Requests that follow a stop or a hibernation on the same connection, or that
	 * were queued behind it, would otherwise pause or checkpoint vCPUs that are
	 * already leaving their loops, and vmm_park_vcpus does not wait for those.
	 */
	if (vmm_is_stopping(v)) {
		reply(opaque, "error cryo-vmm is exiting");
		return;
	}
	if (__atomic_load_n(&v->checkpoint_running, __ATOMIC_ACQUIRE) &&
	    strcmp(words[0], "status") != 0) {
		reply(opaque, "error checkpoint already in progress");
		return;
	}
	if (strcmp(words[0], "status") == 0 && nr == 1)
		do_status(v, reply, opaque);
	else if (strcmp(words[0], "pause") == 0 && nr == 1)
		do_pause(v, reply, opaque);
	else if (strcmp(words[0], "resume") == 0 && nr == 1)
		do_resume(v, reply, opaque);
	else if (strcmp(words[0], "stop") == 0)
		do_stop(v, words, nr, reply, opaque);
	else if (strcmp(words[0], "checkpoint") == 0)
		do_checkpoint(v, words, nr, reply, opaque);
	else if (nr > 1 && (strcmp(words[0], "status") == 0 || strcmp(words[0], "pause") == 0 ||
			    strcmp(words[0], "resume") == 0))
		replyf(reply, opaque, "error %s takes no arguments", words[0]);
	else
		replyf(reply, opaque,
		       "error unknown request '%.64s': use status, pause, resume, checkpoint or stop",
		       words[0]);
}

static void drop_client(struct control *c, unsigned slot)
{
	struct control_client *cl = c->clients[slot];

	loop_remove(c->loop, cl->fd);
	close(cl->fd);
	free(cl);
	c->clients[slot] = NULL;
}

static void on_client(void *opaque, int fd, short revents)
{
	struct control *c = opaque;
	struct control_client *cl = NULL;
	unsigned slot;
	ssize_t n;
	char *nl;

	for (slot = 0; slot < CONTROL_MAX_CLIENTS; slot++) {
		if (c->clients[slot] && c->clients[slot]->fd == fd) {
			cl = c->clients[slot];
			break;
		}
	}
	if (!cl)
		return;

	n = recv(fd, cl->buf + cl->len, sizeof(cl->buf) - cl->len, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		drop_client(c, slot);
		return;
	}
	cl->len += (size_t)n;

	while ((nl = memchr(cl->buf, '\n', cl->len))) {
		size_t line_len = (size_t)(nl - cl->buf);
		char line[CONTROL_LINE_MAX];

		memcpy(line, cl->buf, line_len);
		line[line_len] = 0;
		memmove(cl->buf, nl + 1, cl->len - line_len - 1);
		cl->len -= line_len + 1;
		if (memchr(line, 0, line_len)) {
			send_line(fd, "error request contains a NUL byte");
			continue;
		}
		control_execute(c->v, line, reply_to_fd, &cl->fd);
	}
	if (cl->len == sizeof(cl->buf)) {
		send_line(fd, "error request too long");
		log_warn_rl("control", "closing a client whose request exceeds %d bytes",
			    CONTROL_LINE_MAX);
		drop_client(c, slot);
	}
}

static void on_accept(void *opaque, int fd, short revents)
{
	struct control *c = opaque;
	int client = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (client < 0)
		return;
	for (unsigned i = 0; i < CONTROL_MAX_CLIENTS; i++) {
		if (c->clients[i])
			continue;
		c->clients[i] = calloc(1, sizeof(*c->clients[i]));
		if (!c->clients[i])
			break;
		c->clients[i]->fd = client;
		if (loop_add(c->loop, client, POLLIN, on_client, c) < 0) {
			free(c->clients[i]);
			c->clients[i] = NULL;
			break;
		}
		return;
	}
	send_line(client, "error too many control clients");
	close(client);
}

struct control *control_create(const char *path, struct loop *loop, struct vmm *v, char *err,
			       size_t errlen)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct control *c;

	if (strlen(path) >= sizeof(addr.sun_path)) {
		snprintf(err, errlen, "control socket path is too long (at most %zu bytes): %s",
			 sizeof(addr.sun_path) - 1, path);
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->loop = loop;
	c->v = v;
	strcpy(addr.sun_path, path);
	snprintf(c->path, sizeof(c->path), "%s", path);
	c->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->listen_fd < 0 || bind(c->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(c->listen_fd, 8) < 0 || loop_add(loop, c->listen_fd, POLLIN, on_accept, c) < 0) {
		snprintf(err, errlen, "cannot listen on control socket %s: %s", path,
			 strerror(errno));
		if (c->listen_fd >= 0)
			close(c->listen_fd);
		free(c);
		return NULL;
	}
	return c;
}

void control_destroy(struct control *c)
{
	if (!c)
		return;
	for (unsigned i = 0; i < CONTROL_MAX_CLIENTS; i++) {
		if (c->clients[i])
			drop_client(c, i);
	}
	loop_remove(c->loop, c->listen_fd);
	close(c->listen_fd);
	unlink(c->path);
	free(c);
}
