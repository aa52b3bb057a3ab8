/*
 * The x86 machine cryo gives a guest, built in one place from one table: RAM, the
 * vCPUs with their CPUID, the in-kernel irqchip, and the devices (16550A serial,
 * i8042, ACPI PM block, PCI host bridge, virtio-blk per disk, virtio-rng).
 */
#ifndef CRYO_MACHINE_MACHINE_H
#define CRYO_MACHINE_MACHINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/bus.h"
#include "devices/device.h"
#include "devices/guest_mem.h"
#include "kvm/kvm.h"

#define MACHINE_MAX_CPUS 8
#define MACHINE_MAX_DISKS 8
#define MACHINE_MAX_DEVICES 16
#define MACHINE_MIN_MEMORY (16ULL << 20)
#define MACHINE_PATH_MAX 4096

/* The VM's definition: everything needed to build the same machine again. */
struct vm_config {
	char kernel[MACHINE_PATH_MAX];
	char initrd[MACHINE_PATH_MAX]; /* "" for none */
	char cmdline[MACHINE_PATH_MAX];
	uint64_t mem_size; /* bytes, a multiple of 2 MiB */
	unsigned nr_cpus;
	unsigned nr_disks;
	struct {
		char path[MACHINE_PATH_MAX];
		bool readonly;
	} disks[MACHINE_MAX_DISKS];
};

/* What the machine reports to the process that runs it. Called from vCPU threads. */
struct machine_events {
	void (*poweroff)(void *opaque);
	void (*reset)(void *opaque);
	void (*test_result)(void *opaque, uint32_t value);
	void (*console_output)(void *opaque, const uint8_t *buf, size_t len);
	void *opaque;
};

struct serial;
struct acpi_pm;
struct pci_bus;

struct machine {
	struct vm_config cfg;
	struct machine_events events;
	struct kvm_vm kvm;
	struct guest_mem mem;
	struct kvm_vcpu vcpus[MACHINE_MAX_CPUS];
	struct kvm_cpuid2 *cpuid[MACHINE_MAX_CPUS];
	struct bus pio;
	struct bus mmio;
	struct device devices[MACHINE_MAX_DEVICES];
	unsigned nr_devices;
	struct serial *serial;
	struct acpi_pm *pm;
	struct pci_bus *pci;
	uint64_t rsdp_gpa;
};

/*
 * Builds the VM: anonymous memory (a restore maps its image over it afterwards),
 * vCPUs, irqchip and devices. Does not load a kernel. Returns 0 or -errno with a
 * message for a person in err.
 */
int machine_create(struct machine *m, const struct vm_config *cfg,
		   const struct machine_events *events, char *err, size_t errlen);
/* Loads the kernel, initrd and ACPI tables and sets the boot vCPU's registers. */
int machine_boot(struct machine *m, char *err, size_t errlen);
void machine_destroy(struct machine *m);
/* Sum of the RAM regions' sizes, which is also the memory image's size. */
uint64_t machine_mem_bytes(const struct machine *m);
/* Checks a definition against this host and cryo's limits; err names the bad value. */
int machine_check_config(const struct vm_config *cfg, char *err, size_t errlen);
/* Presses the ACPI power button. */
void machine_power_button(struct machine *m);
/* Feeds console input to the serial port; returns the bytes it took. */
size_t machine_console_input(struct machine *m, const uint8_t *buf, size_t len);

#endif
