/*
 * The one interface every device model implements. A device is created by its own
 * constructor, which registers its windows on the buses in `struct device_env`;
 * after that the VMM reaches it only through these operations. A device that
 * cannot say what a checkpoint keeps of it cannot be added: save and load are
 * required.
 */
#ifndef CRYO_DEVICES_DEVICE_H
#define CRYO_DEVICES_DEVICE_H

#include "common/ser.h"
#include "devices/bus.h"
#include "devices/guest_mem.h"
#include "devices/irq.h"

/* What a device constructor gets from the machine that hosts it. */
struct device_env {
	struct bus *pio;
	struct bus *mmio;
	const struct guest_mem *mem;
	struct irq_sink irq;
	struct pci_bus *pci; /* NULL until the PCI host bridge exists */
};

struct device_ops {
	const char *name;
	/* Appends the device's whole state to `w`. Called with every vCPU stopped. */
	void (*save)(void *dev, struct ser_writer *w);
	/*
	 * Replaces the device's state with what `r` holds, checking every value
	 * against the device's own limits. Returns 0 or -errno (-EBADMSG for state
	 * that is malformed or out of range); on failure the VM is not started.
	 */
	int (*load)(void *dev, struct ser_reader *r);
	/* Optional: stop or restart background work (queues, timers) for pause. */
	void (*pause)(void *dev);
	void (*resume)(void *dev);
	/* Optional: return to power-on state, for a guest reboot handled in-process. */
	void (*reset)(void *dev);
	void (*destroy)(void *dev);
};

struct device {
	const struct device_ops *ops;
	void *priv;
	char id[32]; /* unique within the machine, names its checkpoint section */
};

#endif
