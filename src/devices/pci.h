/*
 * PCI bus 0 behind a host bridge, reached through configuration mechanism #1 (ports
 * 0xCF8 and 0xCFC-0xCFF). The bus owns every function's configuration space, places
 * 32-bit memory BARs in one MMIO window, moves their bus windows when the guest
 * reprograms them, and implements MSI-X and INTx for the functions on it.
 *
 * Left out: buses other than 0, multi-function devices, I/O BARs, 64-bit BARs,
 * expansion ROMs, MSI (only MSI-X), PCIe extended configuration space (ECAM).
 *
 * Locking: one bus mutex guards every configuration space and BAR placement, and is
 * taken from port-I/O exits only. A BAR move takes the MMIO bus's write lock while
 * holding it, so no MMIO handler may take the bus mutex. Interrupt state (INTx
 * level, MSI-X table and pending bits) has its own per-function lock, which device
 * models take from their MMIO handlers and which takes no other lock.
 */
#ifndef CRYO_DEVICES_PCI_H
#define CRYO_DEVICES_PCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/device.h"

#define PCI_MAX_SLOTS 32
#define PCI_NUM_BARS 6
#define PCI_CONFIG_SIZE 256
#define PCI_MSIX_MAX_VECTORS 64
#define PCI_MSIX_ENTRY_SIZE 16

/* Configuration space offsets and bits used by the device models and tests. */
#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define PCI_COMMAND_MEMORY 0x0002
#define PCI_COMMAND_MASTER 0x0004
#define PCI_COMMAND_INTX_DISABLE 0x0400
#define PCI_STATUS 0x06
#define PCI_STATUS_INTERRUPT 0x0008
#define PCI_STATUS_CAP_LIST 0x0010
#define PCI_BASE_ADDRESS_0 0x10
#define PCI_CAPABILITY_LIST 0x34
#define PCI_INTERRUPT_LINE 0x3C
#define PCI_INTERRUPT_PIN 0x3D
#define PCI_CAP_ID_VNDR 0x09
#define PCI_CAP_ID_MSIX 0x11
#define PCI_MSIX_FLAGS_ENABLE 0x8000
#define PCI_MSIX_FLAGS_MASKALL 0x4000

struct pci_bus;
struct pci_dev;

struct pci_dev_id {
	uint16_t vendor_id;
	uint16_t device_id;
	uint16_t subsystem_vendor_id;
	uint16_t subsystem_id;
	uint32_t class_code; /* base class << 16 | subclass << 8 | programming interface */
	uint8_t revision;
};

/* Where a slot's INTA# goes, for the machine's MP table. */
struct pci_intx_route {
	uint8_t slot;
	uint8_t pin; /* 1 = INTA# */
	uint32_t gsi;
};

/*
 * Creates bus 0 with the host bridge at slot 0 and registers ports 0xCF8-0xCFF on
 * env->pio. Memory BARs are placed in [mmio_base, mmio_base + mmio_size), which
 * must lie below 4 GiB. Returns NULL on failure (logged).
 */
struct pci_bus *pci_bus_create(const struct device_env *env, uint64_t mmio_base, uint64_t mmio_size);
/* Unregisters the ports and frees the bus; every function must be removed first. */
void pci_bus_destroy(struct pci_bus *bus);
/* Fills dev_out with the host bridge's checkpoint interface (address latch, bridge config). */
void pci_bus_get_device(struct pci_bus *bus, struct device *dev_out);
/* Copies up to max INTx routes into routes; returns how many functions use INTx. */
size_t pci_bus_intx_routes(struct pci_bus *bus, struct pci_intx_route *routes, size_t max);

/*
 * Adds a function in the first free slot, with memory decoding enabled (the VMM acts
 * as firmware) and INTA# routed to a level-triggered GSI (10 or 11 by slot parity).
 * Returns NULL when the bus is full.
 */
struct pci_dev *pci_dev_add(struct pci_bus *bus, const struct pci_dev_id *id, const char *name);
/* Unregisters the function's BAR windows and frees it. */
void pci_dev_remove(struct pci_dev *d);
unsigned pci_dev_slot(const struct pci_dev *d);
uint32_t pci_dev_intx_gsi(const struct pci_dev *d);

/*
 * Adds 32-bit memory BAR `index` of `size` bytes (a power of two, at least 4 KiB)
 * served by `access(opaque, ...)`, places it in the bus's MMIO window and maps it.
 * Returns 0, -EINVAL, -EBUSY (index in use) or -ENOSPC (window full).
 */
int pci_dev_add_bar(struct pci_dev *d, unsigned index, uint32_t size, bus_access_fn access,
		    void *opaque);
/* Returns the address BAR `index` is mapped at, or 0 when it is not mapped. */
uint64_t pci_dev_bar_mapped_addr(struct pci_dev *d, unsigned index);
/*
 * Appends a capability: `body` is what follows the ID and next-pointer bytes and is
 * read-only to the guest. Returns the capability's config offset, or -ENOSPC.
 */
int pci_dev_add_cap(struct pci_dev *d, uint8_t cap_id, const void *body, uint8_t body_len);

/*
 * Adds an MSI-X capability with `nr_vectors` entries, table at offset 0 and pending
 * bit array at 0x800 of a new 4 KiB BAR `bar` that the bus serves itself.
 */
int pci_dev_add_msix(struct pci_dev *d, unsigned bar, unsigned nr_vectors);
bool pci_msix_enabled(struct pci_dev *d);
unsigned pci_msix_nr_vectors(const struct pci_dev *d);
/*
 * Sends MSI-X `vector`, or sets its pending bit when the vector or the function is
 * masked. Vectors past the table are ignored: the caller validated what it stored.
 */
void pci_msix_notify(struct pci_dev *d, unsigned vector);
/* Drives INTA# to `level`; the line follows the command register's INTx disable bit. */
void pci_dev_set_intx(struct pci_dev *d, int level);

/* A function's checkpoint state, parsed and checked before any of it is applied. */
struct pci_dev_state {
	uint8_t config[PCI_CONFIG_SIZE];
	uint8_t msix_table[PCI_MSIX_MAX_VECTORS * PCI_MSIX_ENTRY_SIZE];
	uint64_t msix_pending;
	uint8_t intx_level;
};

void pci_dev_save(struct pci_dev *d, struct ser_writer *w);
/*
 * Reads a state written by pci_dev_save into `st` and checks it against this
 * function's layout: read-only bytes must match (a state from another device model
 * or version is rejected), BARs must be aligned, MSI-X fields in range. Changes
 * nothing. Returns 0 or -EBADMSG.
 */
int pci_dev_read_state(struct pci_dev *d, struct ser_reader *r, struct pci_dev_state *st);
/*
 * Makes `st` the function's state and maps its BARs at the saved addresses. Returns 0,
 * or -EEXIST when a saved BAR overlaps another window, in which case the function's
 * previous state and mappings are kept.
 */
int pci_dev_apply_state(struct pci_dev *d, const struct pci_dev_state *st);

#endif
