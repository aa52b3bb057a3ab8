#include "devices/bus.h"

#include <errno.h>
#include <string.h>

void bus_init(struct bus *b)
{
	memset(b, 0, sizeof(*b));
	pthread_rwlock_init(&b->lock, NULL);
}

void bus_destroy(struct bus *b)
{
	pthread_rwlock_destroy(&b->lock);
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

int bus_register(struct bus *b, uint64_t base, uint64_t len, bus_access_fn access, void *dev,
		 const char *name)
{
	int ret = 0;

	if (len == 0 || base + len < base)
		return -EINVAL;

	pthread_rwlock_wrlock(&b->lock);
	for (unsigned i = 0; i < b->nr_windows; i++) {
		if (ranges_overlap(base, len, b->windows[i].base, b->windows[i].len)) {
			ret = -EEXIST;
			goto out;
		}
	}
	if (b->nr_windows == BUS_MAX_WINDOWS) {
		ret = -ENOSPC;
		goto out;
	}
	b->windows[b->nr_windows++] = (struct bus_window){
		.base = base, .len = len, .access = access, .dev = dev, .name = name,
	};
out:
	pthread_rwlock_unlock(&b->lock);
	return ret;
}

int bus_unregister(struct bus *b, uint64_t base, void *dev)
{
	int ret = -ENOENT;

	pthread_rwlock_wrlock(&b->lock);
	for (unsigned i = 0; i < b->nr_windows; i++) {
		if (b->windows[i].base == base && b->windows[i].dev == dev) {
			b->windows[i] = b->windows[--b->nr_windows];
			ret = 0;
			break;
		}
	}
	pthread_rwlock_unlock(&b->lock);
	return ret;
}

bool bus_dispatch(struct bus *b, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	pthread_rwlock_rdlock(&b->lock);
	for (unsigned i = 0; i < b->nr_windows; i++) {
		struct bus_window *w = &b->windows[i];

		if (addr >= w->base && addr - w->base < w->len) {
			if (!is_write)
				memset(data, 0xff, len);
			w->access(w->dev, addr - w->base, data, len, is_write);
			pthread_rwlock_unlock(&b->lock);
			return true;
		}
	}
	__atomic_fetch_add(&b->unhandled, 1, __ATOMIC_RELAXED);
	pthread_rwlock_unlock(&b->lock);
	if (!is_write)
		memset(data, 0xff, len);
	return false;
}
