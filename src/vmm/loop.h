/* A small poll(2) loop for the main thread: each file descriptor has one callback. */
#ifndef CRYO_VMM_LOOP_H
#define CRYO_VMM_LOOP_H

#include <poll.h>

#define LOOP_MAX_FDS 64

typedef void (*loop_fn)(void *opaque, int fd, short revents);

struct loop {
	struct pollfd pfds[LOOP_MAX_FDS];
	loop_fn fns[LOOP_MAX_FDS];
	void *opaques[LOOP_MAX_FDS];
	unsigned nr;
};

void loop_init(struct loop *l);
/* Returns 0 or -ENOSPC. */
int loop_add(struct loop *l, int fd, short events, loop_fn fn, void *opaque);
void loop_set_events(struct loop *l, int fd, short events);
void loop_remove(struct loop *l, int fd);
/* Waits up to timeout_ms (-1 forever) and runs the callbacks of ready descriptors. */
int loop_run_once(struct loop *l, int timeout_ms);

#endif
