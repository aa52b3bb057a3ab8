/*
 * How a device raises interrupts without knowing KVM: a legacy line (GSI) and a
 * message-signalled interrupt. The VMM binds these to the in-kernel irqchip; unit
 * tests bind them to a recorder.
 */
#ifndef CRYO_DEVICES_IRQ_H
#define CRYO_DEVICES_IRQ_H

#include <stdint.h>

struct irq_sink_ops {
	/* Drives line `gsi` to `level` (1 asserted, 0 deasserted). Returns 0 or -errno. */
	int (*set_line)(void *opaque, uint32_t gsi, int level);
	/* Delivers one MSI with the given address and data. Returns 0 or -errno. */
	int (*send_msi)(void *opaque, uint64_t addr, uint32_t data);
};

struct irq_sink {
	const struct irq_sink_ops *ops;
	void *opaque;
};

static inline int irq_set_line(const struct irq_sink *s, uint32_t gsi, int level)
{
	return s->ops->set_line(s->opaque, gsi, level);
}

static inline int irq_send_msi(const struct irq_sink *s, uint64_t addr, uint32_t data)
{
	return s->ops->send_msi(s->opaque, addr, data);
}

#endif
