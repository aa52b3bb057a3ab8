/*
 * An address space of device windows: one instance for x86 port I/O, one for MMIO.
 * vCPU threads dispatch exits through it concurrently; PCI BAR moves take the
 * write side of its lock, so a window never moves under a running access.
 */
#ifndef CRYO_DEVICES_BUS_H
#define CRYO_DEVICES_BUS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * Handles one access of `len` bytes (1, 2, 4 or 8) at `offset` from the window's
 * base. On a read the handler fills `data`; bytes it leaves alone read as 0xff.
 */
typedef void (*bus_access_fn)(void *dev, uint64_t offset, uint8_t *data, uint32_t len,
			      bool is_write);

struct bus_window {
	uint64_t base;
	uint64_t len;
	bus_access_fn access;
	void *dev;
	const char *name;
};

#define BUS_MAX_WINDOWS 64

struct bus {
	pthread_rwlock_t lock;
	struct bus_window windows[BUS_MAX_WINDOWS];
	unsigned nr_windows;
	uint64_t unhandled; /* accesses that hit no window */
};

void bus_init(struct bus *b);
void bus_destroy(struct bus *b);
/* Returns 0, -EEXIST if [base, base+len) overlaps a window, or -ENOSPC. */
int bus_register(struct bus *b, uint64_t base, uint64_t len, bus_access_fn access, void *dev,
		 const char *name);
/* Removes the window owned by `dev` that starts at `base`; returns 0 or -ENOENT. */
int bus_unregister(struct bus *b, uint64_t base, void *dev);
/*
 * Routes an access to the window containing it. Returns false (and fills reads with
 * 0xff) when no window does, so a guest probing empty space sees open bus.
 */
bool bus_dispatch(struct bus *b, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);

#endif
