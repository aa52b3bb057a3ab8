/*
 * Checkpoint sections for what the VMM itself owns: the VM's definition ("vm"),
 * each vCPU ("vcpuN") and the VM-wide KVM state ("kvm"). Devices write their own
 * sections through struct device_ops. Every decoder checks sizes and limits and
 * returns -EBADMSG with a message rather than trusting the file.
 */
#ifndef CRYO_VMM_VMSTATE_H
#define CRYO_VMM_VMSTATE_H

#include "common/ser.h"
#include "kvm/kvm.h"
#include "machine/machine.h"

/* The "vm" section: the definition plus facts needed to resume on this host. */
struct vm_section {
	struct vm_config cfg;
	uint64_t realtime_ns; /* host CLOCK_REALTIME when the vCPUs stopped */
	uint32_t tsc_khz;
	struct kvm_cpuid2 *cpuid; /* vCPU 0's table, malloc'd by the decoder */
};

void vmstate_save_vm(struct ser_writer *w, const struct vm_section *s);
int vmstate_load_vm(struct ser_reader *r, struct vm_section *s, char *err, size_t errlen);

void vmstate_save_vcpu(struct ser_writer *w, const struct kvm_vcpu_state *st);
/* Fills st (its buffers malloc'd); xsave must be exactly `xsave_size` bytes long. */
int vmstate_load_vcpu(struct ser_reader *r, struct kvm_vcpu_state *st, uint32_t xsave_size,
		      uint32_t max_msrs, char *err, size_t errlen);

void vmstate_save_kvm(struct ser_writer *w, const struct kvm_vm_state *st);
int vmstate_load_kvm(struct ser_reader *r, struct kvm_vm_state *st, char *err, size_t errlen);

#endif
