/*
 * PCI bus 0: configuration mechanism #1, BAR placement and moves, MSI-X and INTx.
 * See pci.h for what is modelled, what is left out and the lock order.
 */
#include "devices/pci.h"

#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define PCI_CONFIG_ADDRESS_PORT 0xCF8
#define PCI_CONFIG_DATA_PORT 0xCFC
#define PCI_CF8_ENABLE 0x80000000u
/* Enable, bus, device, function and register bits; bits 30:24 and 1:0 read as zero. */
#define PCI_CF8_MASK 0x80FFFFFCu

#define PCI_CLASS_REVISION 0x08
#define PCI_HEADER_TYPE 0x0E
#define PCI_SUBSYSTEM_VENDOR_ID 0x2C
#define PCI_SUBSYSTEM_ID 0x2E
#define PCI_CAP_START 0x40
#define PCI_MSIX_BAR_SIZE 0x1000
#define PCI_MSIX_PBA_OFFSET 0x800

static const uint32_t pci_intx_gsis[] = { 10, 11 };

struct pci_bar {
	uint32_t size; /* 0: BAR not implemented */
	bus_access_fn access;
	void *opaque;
	bool mapped;
	uint32_t mapped_addr;
};

struct pci_dev {
	struct pci_bus *bus;
	unsigned slot;
	char name[32];

	/* Guarded by bus->lock. */
	uint8_t config[PCI_CONFIG_SIZE];
	uint8_t wmask[PCI_CONFIG_SIZE]; /* bits the guest may write */
	uint8_t cap_end;
	uint8_t last_cap;
	struct pci_bar bars[PCI_NUM_BARS];
	uint8_t msix_cap; /* config offset of the MSI-X capability, 0 if none */

	uint32_t gsi; /* 0: no INTx pin */
	unsigned msix_nr;

	/* Interrupt state, guarded by irq_lock. The flags mirror config space bits. */
	pthread_mutex_t irq_lock;
	int intx_level;	/* as the device drives it */
	int intx_line;	/* as last sent to the irq sink */
	bool intx_disabled;
	bool msix_enabled;
	bool msix_masked;
	uint8_t msix_table[PCI_MSIX_MAX_VECTORS * PCI_MSIX_ENTRY_SIZE];
	uint64_t msix_pending;
};

struct pci_bus {
	pthread_mutex_t lock;
	struct bus *pio;
	struct bus *mmio;
	struct irq_sink irq;
	uint64_t mmio_base;
	uint64_t mmio_end;
	uint64_t mmio_next;
	uint32_t cf8;
	struct pci_dev *slots[PCI_MAX_SLOTS];
};

static uint16_t cfg16(const struct pci_dev *d, unsigned off)
{
	return (uint16_t)(d->config[off] | d->config[off + 1] << 8);
}

static uint32_t cfg32(const struct pci_dev *d, unsigned off)
{
	return (uint32_t)cfg16(d, off) | (uint32_t)cfg16(d, off + 2) << 16;
}

static void set_cfg16(uint8_t *cfg, unsigned off, uint16_t v)
{
	cfg[off] = (uint8_t)v;
	cfg[off + 1] = (uint8_t)(v >> 8);
}

static void set_cfg32(uint8_t *cfg, unsigned off, uint32_t v)
{
	set_cfg16(cfg, off, (uint16_t)v);
	set_cfg16(cfg, off + 2, (uint16_t)(v >> 16));
}

static bool ranges_touch(unsigned off, unsigned len, unsigned start, unsigned n)
{
	return off < start + n && start < off + len;
}

/* ---- interrupts (irq_lock held) ---- */

static bool msix_entry_masked(const struct pci_dev *d, unsigned vector)
{
	return d->msix_table[vector * PCI_MSIX_ENTRY_SIZE + 12] & 1;
}

static void msix_send(struct pci_dev *d, unsigned vector)
{
	const uint8_t *e = &d->msix_table[vector * PCI_MSIX_ENTRY_SIZE];
	uint64_t addr;
	uint32_t data;

	memcpy(&addr, e, 8);
	memcpy(&data, e + 8, 4);
	irq_send_msi(&d->bus->irq, le64toh(addr), le32toh(data));
}

static void msix_deliver_pending(struct pci_dev *d)
{
	if (!d->msix_enabled || d->msix_masked)
		return;
	for (unsigned v = 0; v < d->msix_nr; v++) {
		if ((d->msix_pending & (1ull << v)) && !msix_entry_masked(d, v)) {
			d->msix_pending &= ~(1ull << v);
			msix_send(d, v);
		}
	}
}

static void intx_update_line(struct pci_dev *d)
{
	/* A function with MSI-X enabled must not use INTx (PCI Local Bus 3.0, 6.8.2). */
	int line = d->intx_level && !d->intx_disabled && !d->msix_enabled;

	if (d->gsi && line != d->intx_line) {
		d->intx_line = line;
		irq_set_line(&d->bus->irq, d->gsi, line);
	}
}

/* Copies the interrupt-related config bits into the irq_lock side. Bus lock held. */
static void pci_dev_sync_irq(struct pci_dev *d)
{
	pthread_mutex_lock(&d->irq_lock);
	d->intx_disabled = cfg16(d, PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE;
	if (d->msix_cap) {
		uint16_t ctrl = cfg16(d, d->msix_cap + 2);

		d->msix_enabled = ctrl & PCI_MSIX_FLAGS_ENABLE;
		d->msix_masked = ctrl & PCI_MSIX_FLAGS_MASKALL;
	}
	intx_update_line(d);
	msix_deliver_pending(d);
	pthread_mutex_unlock(&d->irq_lock);
}

bool pci_msix_enabled(struct pci_dev *d)
{
	bool enabled;

	pthread_mutex_lock(&d->irq_lock);
	enabled = d->msix_enabled;
	pthread_mutex_unlock(&d->irq_lock);
	return enabled;
}

unsigned pci_msix_nr_vectors(const struct pci_dev *d)
{
	return d->msix_nr;
}

void pci_msix_notify(struct pci_dev *d, unsigned vector)
{
	pthread_mutex_lock(&d->irq_lock);
	if (vector < d->msix_nr && d->msix_enabled) {
		if (d->msix_masked || msix_entry_masked(d, vector))
			d->msix_pending |= 1ull << vector;
		else
			msix_send(d, vector);
	}
	pthread_mutex_unlock(&d->irq_lock);
}

void pci_dev_set_intx(struct pci_dev *d, int level)
{
	pthread_mutex_lock(&d->irq_lock);
	d->intx_level = level ? 1 : 0;
	intx_update_line(d);
	pthread_mutex_unlock(&d->irq_lock);
}

/* MMIO handler of the MSI-X BAR: the table, then the pending bit array at 0x800. */
static void pci_msix_access(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_dev *d = opaque;
	uint64_t table_len = (uint64_t)d->msix_nr * PCI_MSIX_ENTRY_SIZE;

	/* The PCI spec allows only aligned DWORD and QWORD accesses to the table and PBA. */
	if ((len != 4 && len != 8) || off % len) {
		log_warn_rl(d->name, "ignored MSI-X access of %u bytes at offset 0x%llx", len,
			    (unsigned long long)off);
		return;
	}

	pthread_mutex_lock(&d->irq_lock);
	if (off + len <= table_len) {
		unsigned vector = (unsigned)(off / PCI_MSIX_ENTRY_SIZE);

		if (is_write) {
			bool was_masked = msix_entry_masked(d, vector);
			uint8_t *ctrl = &d->msix_table[vector * PCI_MSIX_ENTRY_SIZE + 12];

			memcpy(&d->msix_table[off], data, len);
			/* Only the mask bit of vector control is implemented; the rest reads 0. */
			ctrl[0] &= 1;
			memset(ctrl + 1, 0, 3);
			if (was_masked && !msix_entry_masked(d, vector))
				msix_deliver_pending(d);
		} else {
			memcpy(data, &d->msix_table[off], len);
		}
	} else if (off >= PCI_MSIX_PBA_OFFSET && off + len <= PCI_MSIX_PBA_OFFSET + 8) {
		uint64_t pba = htole64(d->msix_pending);

		if (!is_write)
			memcpy(data, (uint8_t *)&pba + (off - PCI_MSIX_PBA_OFFSET), len);
	} else if (!is_write) {
		memset(data, 0, len);
	}
	pthread_mutex_unlock(&d->irq_lock);
}

/* ---- configuration space (bus lock held) ---- */

/*
 * Brings the bus windows of d's BARs in line with its BAR registers and memory-enable
 * bit. Returns 0, or the first bus_register error (that BAR stays unmapped, as a
 * conflicting BAR on real hardware decodes unpredictably).
 */
static int pci_dev_update_mappings(struct pci_dev *d)
{
	bool mem_on = cfg16(d, PCI_COMMAND) & PCI_COMMAND_MEMORY;
	int ret = 0;

	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		struct pci_bar *b = &d->bars[i];
		uint32_t addr = cfg32(d, PCI_BASE_ADDRESS_0 + 4 * i) & ~0xFu;
		bool want = b->size && mem_on && addr != 0;
		int rc;

		if (b->mapped && (!want || b->mapped_addr != addr)) {
			bus_unregister(d->bus->mmio, b->mapped_addr, b->opaque);
			b->mapped = false;
		}
		if (!want || b->mapped)
			continue;
		rc = bus_register(d->bus->mmio, addr, b->size, b->access, b->opaque, d->name);
		if (rc) {
			log_warn_rl(d->name, "BAR%u at 0x%x (size 0x%x) not mapped: %s", i, addr,
				    b->size, strerror(-rc));
			if (!ret)
				ret = rc;
			continue;
		}
		b->mapped = true;
		b->mapped_addr = addr;
	}
	return ret;
}

static void pci_config_read(struct pci_dev *d, unsigned off, uint8_t *data, unsigned len)
{
	memcpy(data, &d->config[off], len);
	if (ranges_touch(off, len, PCI_STATUS, 1)) {
		pthread_mutex_lock(&d->irq_lock);
		if (d->intx_level)
			data[PCI_STATUS - off] |= PCI_STATUS_INTERRUPT;
		pthread_mutex_unlock(&d->irq_lock);
	}
}

static void pci_config_write(struct pci_dev *d, unsigned off, const uint8_t *data, unsigned len)
{
	for (unsigned i = 0; i < len; i++) {
		uint8_t m = d->wmask[off + i];

		d->config[off + i] = (uint8_t)((d->config[off + i] & ~m) | (data[i] & m));
	}

	if (ranges_touch(off, len, PCI_COMMAND, 2) ||
	    ranges_touch(off, len, PCI_BASE_ADDRESS_0, 4 * PCI_NUM_BARS))
		pci_dev_update_mappings(d);
	if (ranges_touch(off, len, PCI_COMMAND, 2) ||
	    (d->msix_cap && ranges_touch(off, len, d->msix_cap + 2, 2)))
		pci_dev_sync_irq(d);
}

/* Port handler of 0xCF8: only a 32-bit access reaches the address latch. */
static void pci_cf8_access(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_bus *bus = opaque;
	uint32_t v;

	if (off != 0 || len != 4)
		return;
	pthread_mutex_lock(&bus->lock);
	if (is_write) {
		memcpy(&v, data, 4);
		bus->cf8 = le32toh(v) & PCI_CF8_MASK;
	} else {
		v = htole32(bus->cf8);
		memcpy(data, &v, 4);
	}
	pthread_mutex_unlock(&bus->lock);
}

/* Port handler of 0xCFC-0xCFF: the register the latch selects, plus the port offset. */
static void pci_cfc_access(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_bus *bus = opaque;
	struct pci_dev *d;
	unsigned slot, reg;
	uint32_t cf8;

	if (off + len > 4)
		return;

	pthread_mutex_lock(&bus->lock);
	cf8 = bus->cf8;
	slot = (cf8 >> 11) & 0x1F;
	/* Only bus 0 function 0 exists; anything else reads as all ones (no device). */
	if (!(cf8 & PCI_CF8_ENABLE) || ((cf8 >> 16) & 0xFF) != 0 || ((cf8 >> 8) & 7) != 0)
		goto out;
	d = bus->slots[slot];
	if (!d)
		goto out;
	reg = (cf8 & 0xFC) + (unsigned)off;
	if (is_write)
		pci_config_write(d, reg, data, len);
	else
		pci_config_read(d, reg, data, len);
out:
	pthread_mutex_unlock(&bus->lock);
}

/* ---- construction ---- */

static struct pci_dev *pci_dev_alloc(struct pci_bus *bus, unsigned slot, const struct pci_dev_id *id,
				     const char *name)
{
	struct pci_dev *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->bus = bus;
	d->slot = slot;
	snprintf(d->name, sizeof(d->name), "%s@%02x", name, slot);
	pthread_mutex_init(&d->irq_lock, NULL);
	d->cap_end = PCI_CAP_START;

	set_cfg16(d->config, PCI_VENDOR_ID, id->vendor_id);
	set_cfg16(d->config, PCI_DEVICE_ID, id->device_id);
	set_cfg32(d->config, PCI_CLASS_REVISION, id->class_code << 8 | id->revision);
	d->config[PCI_HEADER_TYPE] = 0;
	set_cfg16(d->config, PCI_SUBSYSTEM_VENDOR_ID, id->subsystem_vendor_id);
	set_cfg16(d->config, PCI_SUBSYSTEM_ID, id->subsystem_id);

	/* Writable: I/O, memory, bus master, INTx disable; cache line; latency; line. */
	d->wmask[PCI_COMMAND] = 0x07;
	d->wmask[PCI_COMMAND + 1] = PCI_COMMAND_INTX_DISABLE >> 8;
	d->wmask[0x0C] = 0xFF;
	d->wmask[0x0D] = 0xFF;
	d->wmask[PCI_INTERRUPT_LINE] = 0xFF;
	return d;
}

struct pci_dev *pci_dev_add(struct pci_bus *bus, const struct pci_dev_id *id, const char *name)
{
	struct pci_dev *d = NULL;

	pthread_mutex_lock(&bus->lock);
	for (unsigned slot = 1; slot < PCI_MAX_SLOTS; slot++) {
		if (bus->slots[slot])
			continue;
		d = pci_dev_alloc(bus, slot, id, name);
		if (!d)
			break;
		d->gsi = pci_intx_gsis[slot % 2];
		d->config[PCI_INTERRUPT_PIN] = 1;
		d->config[PCI_INTERRUPT_LINE] = (uint8_t)d->gsi;
		set_cfg16(d->config, PCI_COMMAND, PCI_COMMAND_MEMORY);
		bus->slots[slot] = d;
		break;
	}
	pthread_mutex_unlock(&bus->lock);
	if (!d)
		log_error("pci", "cannot add %s: no free slot or out of memory", name);
	return d;
}

void pci_dev_remove(struct pci_dev *d)
{
	struct pci_bus *bus = d->bus;

	pthread_mutex_lock(&bus->lock);
	set_cfg16(d->config, PCI_COMMAND, 0);
	pci_dev_update_mappings(d);
	bus->slots[d->slot] = NULL;
	pthread_mutex_unlock(&bus->lock);
	pci_dev_set_intx(d, 0);
	pthread_mutex_destroy(&d->irq_lock);
	free(d);
}

unsigned pci_dev_slot(const struct pci_dev *d)
{
	return d->slot;
}

uint32_t pci_dev_intx_gsi(const struct pci_dev *d)
{
	return d->gsi;
}

int pci_dev_add_bar(struct pci_dev *d, unsigned index, uint32_t size, bus_access_fn access,
		    void *opaque)
{
	struct pci_bus *bus = d->bus;
	uint64_t addr;
	int ret = 0;

	if (index >= PCI_NUM_BARS || size < 0x1000 || (size & (size - 1)))
		return -EINVAL;

	pthread_mutex_lock(&bus->lock);
	if (d->bars[index].size) {
		ret = -EBUSY;
		goto out;
	}
	/* A BAR is naturally aligned, as the guest's sizing protocol assumes. */
	addr = (bus->mmio_next + size - 1) & ~(uint64_t)(size - 1);
	if (addr + size > bus->mmio_end) {
		ret = -ENOSPC;
		goto out;
	}
	bus->mmio_next = addr + size;
	d->bars[index] = (struct pci_bar){ .size = size, .access = access, .opaque = opaque };
	set_cfg32(d->config, PCI_BASE_ADDRESS_0 + 4 * index, (uint32_t)addr);
	set_cfg32(d->wmask, PCI_BASE_ADDRESS_0 + 4 * index, ~(size - 1));
	ret = pci_dev_update_mappings(d);
out:
	pthread_mutex_unlock(&bus->lock);
	return ret;
}

uint64_t pci_dev_bar_mapped_addr(struct pci_dev *d, unsigned index)
{
	uint64_t addr = 0;

	if (index >= PCI_NUM_BARS)
		return 0;
	pthread_mutex_lock(&d->bus->lock);
	if (d->bars[index].mapped)
		addr = d->bars[index].mapped_addr;
	pthread_mutex_unlock(&d->bus->lock);
	return addr;
}

int pci_dev_add_cap(struct pci_dev *d, uint8_t cap_id, const void *body, uint8_t body_len)
{
	unsigned off;
	int ret;

	pthread_mutex_lock(&d->bus->lock);
	off = (d->cap_end + 3u) & ~3u;
	if (off + 2u + body_len > PCI_CONFIG_SIZE) {
		ret = -ENOSPC;
		goto out;
	}
	d->config[off] = cap_id;
	d->config[off + 1] = 0;
	memcpy(&d->config[off + 2], body, body_len);
	if (d->last_cap)
		d->config[d->last_cap + 1] = (uint8_t)off;
	else
		d->config[PCI_CAPABILITY_LIST] = (uint8_t)off;
	set_cfg16(d->config, PCI_STATUS, cfg16(d, PCI_STATUS) | PCI_STATUS_CAP_LIST);
	d->last_cap = (uint8_t)off;
	d->cap_end = (uint8_t)(off + 2 + body_len);
	ret = (int)off;
out:
	pthread_mutex_unlock(&d->bus->lock);
	return ret;
}

int pci_dev_add_msix(struct pci_dev *d, unsigned bar, unsigned nr_vectors)
{
	uint8_t body[10];
	int off, ret;

	if (nr_vectors == 0 || nr_vectors > PCI_MSIX_MAX_VECTORS || d->msix_nr)
		return -EINVAL;

	set_cfg16(body, 0, (uint16_t)(nr_vectors - 1));
	set_cfg32(body, 2, 0 | bar);			  /* table at offset 0 of `bar` */
	set_cfg32(body, 6, PCI_MSIX_PBA_OFFSET | bar);	  /* PBA at 0x800 of `bar` */
	off = pci_dev_add_cap(d, PCI_CAP_ID_MSIX, body, sizeof(body));
	if (off < 0)
		return off;

	pthread_mutex_lock(&d->bus->lock);
	d->msix_cap = (uint8_t)off;
	d->wmask[off + 3] = (PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL) >> 8;
	pthread_mutex_unlock(&d->bus->lock);

	pthread_mutex_lock(&d->irq_lock);
	d->msix_nr = nr_vectors;
	/* Every vector starts masked (PCI Local Bus 3.0, 6.8.2.9). */
	for (unsigned v = 0; v < nr_vectors; v++)
		d->msix_table[v * PCI_MSIX_ENTRY_SIZE + 12] = 1;
	pthread_mutex_unlock(&d->irq_lock);

	ret = pci_dev_add_bar(d, bar, PCI_MSIX_BAR_SIZE, pci_msix_access, d);
	return ret;
}

/* ---- checkpoint ---- */

void pci_dev_save(struct pci_dev *d, struct ser_writer *w)
{
	pthread_mutex_lock(&d->bus->lock);
	ser_bytes(w, d->config, PCI_CONFIG_SIZE);
	pthread_mutex_unlock(&d->bus->lock);

	pthread_mutex_lock(&d->irq_lock);
	ser_u16(w, (uint16_t)d->msix_nr);
	ser_bytes(w, d->msix_table, d->msix_nr * PCI_MSIX_ENTRY_SIZE);
	ser_u64(w, d->msix_pending);
	ser_u8(w, (uint8_t)d->intx_level);
	pthread_mutex_unlock(&d->irq_lock);
}

int pci_dev_read_state(struct pci_dev *d, struct ser_reader *r, struct pci_dev_state *st)
{
	unsigned nr;
	int ret = 0;

	memset(st, 0, sizeof(*st));
	de_bytes(r, st->config, PCI_CONFIG_SIZE);
	nr = de_u16(r);
	if (r->err || nr != d->msix_nr) {
		log_error(d->name, "invalid state: %u MSI-X vectors saved, device has %u", nr,
			  d->msix_nr);
		return -EBADMSG;
	}
	de_bytes(r, st->msix_table, nr * PCI_MSIX_ENTRY_SIZE);
	st->msix_pending = de_u64(r);
	st->intx_level = de_u8(r);
	if (r->err)
		return -EBADMSG;

	pthread_mutex_lock(&d->bus->lock);
	/* Read-only bytes (IDs, class, capabilities, BAR type and alignment bits) must match. */
	for (unsigned i = 0; i < PCI_CONFIG_SIZE; i++) {
		if ((st->config[i] ^ d->config[i]) & ~d->wmask[i]) {
			log_error(d->name, "invalid state: read-only config byte 0x%02x is 0x%02x, "
				  "expected 0x%02x", i, st->config[i], d->config[i]);
			ret = -EBADMSG;
			break;
		}
	}
	pthread_mutex_unlock(&d->bus->lock);
	if (ret)
		return ret;

	for (unsigned v = 0; v < nr; v++) {
		const uint8_t *ctrl = &st->msix_table[v * PCI_MSIX_ENTRY_SIZE + 12];

		if ((ctrl[0] & ~1) || ctrl[1] || ctrl[2] || ctrl[3]) {
			log_error(d->name, "invalid state: MSI-X vector %u control reserved bits set", v);
			return -EBADMSG;
		}
	}
	if ((nr < 64 && (st->msix_pending >> nr)) || st->intx_level > 1) {
		log_error(d->name, "invalid state: pending bits 0x%llx or INTx level %u out of range",
			  (unsigned long long)st->msix_pending, st->intx_level);
		return -EBADMSG;
	}
	return 0;
}

int pci_dev_apply_state(struct pci_dev *d, const struct pci_dev_state *st)
{
	uint8_t old[PCI_CONFIG_SIZE];
	int ret;

	pthread_mutex_lock(&d->bus->lock);
	memcpy(old, d->config, sizeof(old));
	memcpy(d->config, st->config, sizeof(old));
	ret = pci_dev_update_mappings(d);
	if (ret) {
		log_error(d->name, "cannot map saved BARs: %s", strerror(-ret));
		memcpy(d->config, old, sizeof(old));
		pci_dev_update_mappings(d);
		pthread_mutex_unlock(&d->bus->lock);
		return ret;
	}

	pthread_mutex_lock(&d->irq_lock);
	memcpy(d->msix_table, st->msix_table, sizeof(d->msix_table));
	d->msix_pending = st->msix_pending;
	d->intx_level = st->intx_level;
	pthread_mutex_unlock(&d->irq_lock);
	/* Re-drives INTx at the restored level and sends pending vectors that are unmasked. */
	pci_dev_sync_irq(d);
	pthread_mutex_unlock(&d->bus->lock);
	return 0;
}

/* ---- the bus and its host bridge ---- */

static void pci_bridge_save(void *opaque, struct ser_writer *w)
{
	struct pci_bus *bus = opaque;

	pthread_mutex_lock(&bus->lock);
	ser_u32(w, bus->cf8);
	pthread_mutex_unlock(&bus->lock);
	pci_dev_save(bus->slots[0], w);
}

static int pci_bridge_load(void *opaque, struct ser_reader *r)
{
	struct pci_bus *bus = opaque;
	struct pci_dev_state st;
	uint32_t cf8 = de_u32(r);
	int ret;

	ret = pci_dev_read_state(bus->slots[0], r, &st);
	if (ret)
		return ret;
	if (de_finish(r) || (cf8 & ~PCI_CF8_MASK)) {
		log_error("pci", "invalid state: address latch 0x%x or trailing bytes", cf8);
		return -EBADMSG;
	}
	ret = pci_dev_apply_state(bus->slots[0], &st);
	if (ret)
		return ret;
	pthread_mutex_lock(&bus->lock);
	bus->cf8 = cf8;
	pthread_mutex_unlock(&bus->lock);
	return 0;
}

static const struct device_ops pci_bridge_ops = {
	.name = "pci-host-bridge",
	.save = pci_bridge_save,
	.load = pci_bridge_load,
};

void pci_bus_get_device(struct pci_bus *bus, struct device *dev_out)
{
	dev_out->ops = &pci_bridge_ops;
	dev_out->priv = bus;
	snprintf(dev_out->id, sizeof(dev_out->id), "pci-host-bridge");
}

struct pci_bus *pci_bus_create(const struct device_env *env, uint64_t mmio_base, uint64_t mmio_size)
{
	static const struct pci_dev_id bridge_id = {
		.vendor_id = 0x8086, .device_id = 0x1237, /* Intel 440FX host bridge */
		.class_code = 0x060000, .revision = 2,
	};
	struct pci_bus *bus;
	int ret;

	if (mmio_size == 0 || mmio_base + mmio_size > (1ull << 32) || mmio_base + mmio_size < mmio_base) {
		log_error("pci", "invalid MMIO window 0x%llx+0x%llx: must lie below 4 GiB",
			  (unsigned long long)mmio_base, (unsigned long long)mmio_size);
		return NULL;
	}
	bus = calloc(1, sizeof(*bus));
	if (!bus)
		return NULL;
	pthread_mutex_init(&bus->lock, NULL);
	bus->pio = env->pio;
	bus->mmio = env->mmio;
	bus->irq = env->irq;
	bus->mmio_base = mmio_base;
	bus->mmio_end = mmio_base + mmio_size;
	bus->mmio_next = mmio_base;

	bus->slots[0] = pci_dev_alloc(bus, 0, &bridge_id, "pci-host-bridge");
	if (!bus->slots[0])
		goto err_free;
	set_cfg16(bus->slots[0]->config, PCI_COMMAND, PCI_COMMAND_MEMORY);

	ret = bus_register(env->pio, PCI_CONFIG_ADDRESS_PORT, 4, pci_cf8_access, bus, "pci-cf8");
	if (ret)
		goto err_bridge;
	ret = bus_register(env->pio, PCI_CONFIG_DATA_PORT, 4, pci_cfc_access, bus, "pci-cfc");
	if (ret)
		goto err_cf8;
	return bus;

err_cf8:
	bus_unregister(env->pio, PCI_CONFIG_ADDRESS_PORT, bus);
err_bridge:
	log_error("pci", "cannot register ports 0xCF8-0xCFF: %s", strerror(-ret));
	free(bus->slots[0]);
err_free:
	pthread_mutex_destroy(&bus->lock);
	free(bus);
	return NULL;
}

void pci_bus_destroy(struct pci_bus *bus)
{
	if (!bus)
		return;
	bus_unregister(bus->pio, PCI_CONFIG_DATA_PORT, bus);
	bus_unregister(bus->pio, PCI_CONFIG_ADDRESS_PORT, bus);
	pthread_mutex_destroy(&bus->slots[0]->irq_lock);
	free(bus->slots[0]);
	pthread_mutex_destroy(&bus->lock);
	free(bus);
}

size_t pci_bus_intx_routes(struct pci_bus *bus, struct pci_intx_route *routes, size_t max)
{
	size_t n = 0;

	pthread_mutex_lock(&bus->lock);
	for (unsigned slot = 1; slot < PCI_MAX_SLOTS; slot++) {
		struct pci_dev *d = bus->slots[slot];

		if (!d || !d->gsi)
			continue;
		if (n < max)
			routes[n] = (struct pci_intx_route){ .slot = (uint8_t)slot, .pin = 1, .gsi = d->gsi };
		n++;
	}
	pthread_mutex_unlock(&bus->lock);
	return n;
}
