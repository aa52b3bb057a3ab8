/*
 * Loading a guest kernel into guest memory and setting the boot vCPU's registers:
 * a Linux bzImage through the 64-bit boot protocol, or an ELF with a Xen PVH entry
 * note (a Linux vmlinux built with CONFIG_PVH, or one of the small test guests).
 */
#ifndef CRYO_MACHINE_BOOT_H
#define CRYO_MACHINE_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "devices/guest_mem.h"
#include "kvm/kvm.h"

struct boot_params_in {
	const char *kernel_path;
	const char *initrd_path; /* NULL for none */
	const char *cmdline;	 /* "" for none */
	uint64_t rsdp_gpa;	 /* 0 when no ACPI tables */
};

/*
 * Loads the kernel (and initrd) and writes the boot structures. On failure
 * returns -errno and writes a message for a person into err.
 */
int boot_load(const struct guest_mem *mem, const struct boot_params_in *in, struct kvm_vcpu *bsp,
	      char *err, size_t errlen);

#endif
