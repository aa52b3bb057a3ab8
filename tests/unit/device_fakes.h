/*
 * What device unit tests run against instead of a VM: guest memory is one malloc'd
 * region at guest address 0, the interrupt sink records every call, and the port and
 * MMIO buses are the real ones. Header-only so each test program stays one file.
 */
#ifndef CRYO_TESTS_DEVICE_FAKES_H
#define CRYO_TESTS_DEVICE_FAKES_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "devices/bus.h"
#include "devices/device.h"
#include "devices/guest_mem.h"
#include "devices/irq.h"

#define FAKE_MAX_GSI 32
#define FAKE_MAX_MSI 64

struct fake_irq {
	int level[FAKE_MAX_GSI];
	unsigned raises[FAKE_MAX_GSI]; /* 0 -> 1 transitions */
	unsigned set_calls;
	unsigned nr_msi;
	uint64_t msi_addr[FAKE_MAX_MSI];
	uint32_t msi_data[FAKE_MAX_MSI];
};

struct fake_env {
	struct bus pio;
	struct bus mmio;
	struct guest_mem mem;
	uint8_t *ram;
	size_t ram_size;
	struct fake_irq irq;
	struct device_env env;
};

static inline int fake_set_line(void *opaque, uint32_t gsi, int level)
{
	struct fake_irq *f = opaque;

	f->set_calls++;
	if (gsi < FAKE_MAX_GSI) {
		if (level && !f->level[gsi])
			f->raises[gsi]++;
		f->level[gsi] = level;
	}
	return 0;
}

static inline int fake_send_msi(void *opaque, uint64_t addr, uint32_t data)
{
	struct fake_irq *f = opaque;

	if (f->nr_msi < FAKE_MAX_MSI) {
		f->msi_addr[f->nr_msi] = addr;
		f->msi_data[f->nr_msi] = data;
	}
	f->nr_msi++;
	return 0;
}

static const struct irq_sink_ops fake_irq_ops = {
	.set_line = fake_set_line,
	.send_msi = fake_send_msi,
};

static inline void fake_env_init(struct fake_env *f, size_t ram_size)
{
	memset(f, 0, sizeof(*f));
	bus_init(&f->pio);
	bus_init(&f->mmio);
	f->ram = calloc(1, ram_size);
	f->ram_size = ram_size;
	f->mem.regions[0] = (struct guest_mem_region){ .gpa = 0, .size = ram_size, .host = f->ram };
	f->mem.nr_regions = 1;
	f->env.pio = &f->pio;
	f->env.mmio = &f->mmio;
	f->env.mem = &f->mem;
	f->env.irq = (struct irq_sink){ .ops = &fake_irq_ops, .opaque = &f->irq };
}

static inline void fake_env_free(struct fake_env *f)
{
	bus_destroy(&f->pio);
	bus_destroy(&f->mmio);
	free(f->ram);
}

static inline void fake_out(struct bus *b, uint64_t addr, uint32_t val, uint32_t len)
{
	uint8_t data[4];

	for (uint32_t i = 0; i < len; i++)
		data[i] = (uint8_t)(val >> (8 * i));
	bus_dispatch(b, addr, data, len, true);
}

static inline uint32_t fake_in(struct bus *b, uint64_t addr, uint32_t len)
{
	uint8_t data[4];
	uint32_t val = 0;

	bus_dispatch(b, addr, data, len, false);
	for (uint32_t i = 0; i < len; i++)
		val |= (uint32_t)data[i] << (8 * i);
	return val;
}

/* PCI configuration access through mechanism #1, bus 0 function 0. */
static inline uint32_t fake_pci_read(struct fake_env *f, unsigned slot, unsigned reg, uint32_t len)
{
	fake_out(&f->pio, 0xCF8, 0x80000000u | slot << 11 | (reg & 0xFC), 4);
	return fake_in(&f->pio, 0xCFC + (reg & 3), len);
}

static inline void fake_pci_write(struct fake_env *f, unsigned slot, unsigned reg, uint32_t val,
				  uint32_t len)
{
	fake_out(&f->pio, 0xCF8, 0x80000000u | slot << 11 | (reg & 0xFC), 4);
	fake_out(&f->pio, 0xCFC + (reg & 3), val, len);
}

#endif
