#include "vmm/loop.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

void loop_init(struct loop *l)
{
	memset(l, 0, sizeof(*l));
}

int loop_add(struct loop *l, int fd, short events, loop_fn fn, void *opaque)
{
	if (l->nr == LOOP_MAX_FDS)
		return -ENOSPC;
	l->pfds[l->nr] = (struct pollfd){ .fd = fd, .events = events };
	l->fns[l->nr] = fn;
	l->opaques[l->nr] = opaque;
	l->nr++;
	return 0;
}

void loop_set_events(struct loop *l, int fd, short events)
{
	for (unsigned i = 0; i < l->nr; i++) {
		if (l->pfds[i].fd == fd)
			l->pfds[i].events = events;
	}
}

void loop_remove(struct loop *l, int fd)
{
	for (unsigned i = 0; i < l->nr; i++) {
		if (l->pfds[i].fd == fd) {
			l->nr--;
			l->pfds[i] = l->pfds[l->nr];
			l->fns[i] = l->fns[l->nr];
			l->opaques[i] = l->opaques[l->nr];
			return;
		}
	}
}

static bool still_registered(const struct loop *l, int fd, void *opaque)
{
	for (unsigned i = 0; i < l->nr; i++) {
		if (l->pfds[i].fd == fd && l->opaques[i] == opaque)
			return true;
	}
	return false;
}

int loop_run_once(struct loop *l, int timeout_ms)
{
	struct pollfd ready[LOOP_MAX_FDS];
	loop_fn fns[LOOP_MAX_FDS];
	void *opaques[LOOP_MAX_FDS];
	unsigned nr = l->nr;
	int n;

	/* Callbacks may add or remove descriptors, so they run over a copy. */
	memcpy(ready, l->pfds, nr * sizeof(ready[0]));
	memcpy(fns, l->fns, nr * sizeof(fns[0]));
	memcpy(opaques, l->opaques, nr * sizeof(opaques[0]));
	n = poll(ready, nr, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (unsigned i = 0; i < nr && n > 0; i++) {
		if (!ready[i].revents)
			continue;
		n--;
		/* An earlier callback of this round may have closed it. */
		if (!still_registered(l, ready[i].fd, opaques[i]))
			continue;
		fns[i](opaques[i], ready[i].fd, ready[i].revents);
	}
	return 0;
}
