/*
 * Typed wrappers over the KVM ioctls cryo uses: one VM with an in-kernel irqchip
 * and PIT, its memory slots, its vCPUs, and the state a checkpoint needs from each.
 * Every function returns 0 or a negative errno and logs nothing: callers know
 * which failure matters to the person running the VM.
 */
#ifndef CRYO_KVM_KVM_H
#define CRYO_KVM_KVM_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kvm_vm {
	int sys_fd;
	int vm_fd;
	size_t run_size; /* size of each vCPU's struct kvm_run mapping */
	struct kvm_cpuid2 *supported_cpuid;
	struct kvm_msr_list *msr_list;
	uint32_t xsave_size; /* bytes for KVM_GET_XSAVE2, at least 4096 */
};

struct kvm_vcpu {
	int fd;
	unsigned id;
	struct kvm_run *run;
	struct kvm_vm *vm;
};

int kvm_vm_create(struct kvm_vm *vm);
void kvm_vm_destroy(struct kvm_vm *vm);
int kvm_vm_check_extension(struct kvm_vm *vm, long cap);
int kvm_vm_set_memory(struct kvm_vm *vm, uint32_t slot, uint64_t gpa, uint64_t size, void *host,
		      uint32_t flags);
int kvm_vm_irq_line(struct kvm_vm *vm, uint32_t gsi, int level);
int kvm_vm_signal_msi(struct kvm_vm *vm, uint64_t addr, uint32_t data);

int kvm_vcpu_create(struct kvm_vm *vm, unsigned id, struct kvm_vcpu *vcpu);
void kvm_vcpu_destroy(struct kvm_vcpu *vcpu);
int kvm_vcpu_set_cpuid(struct kvm_vcpu *vcpu, const struct kvm_cpuid2 *cpuid);
/* Runs the vCPU until an exit; returns 0, or -EINTR when a signal interrupted it. */
int kvm_vcpu_run(struct kvm_vcpu *vcpu);

/* Writes one MSR; returns 0 or -errno (-EINVAL when KVM rejects the value). */
int kvm_vcpu_set_msr(struct kvm_vcpu *vcpu, uint32_t index, uint64_t value);
/* Returns the vCPU's TSC frequency in kHz, or -errno. */
int kvm_vcpu_get_tsc_khz(struct kvm_vcpu *vcpu);
/*
 * Tells the guest's kvmclock that the vCPU was stopped by the host, so its soft
 * lockup watchdog does not count the stop as a lockup. -EINVAL when the guest has
 * not enabled kvmclock, which callers may ignore.
 */
int kvm_vcpu_kvmclock_ctrl(struct kvm_vcpu *vcpu);

/*
 * Everything KVM holds of one vCPU. kvm_vcpu_set_state restores it in the order
 * KVM needs: special registers (EFER, APIC base), the LAPIC, then the MSRs, then
 * pending events, with MP state last.
 */
struct kvm_vcpu_state {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xcrs xcrs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	struct kvm_mp_state mp_state;
	struct kvm_debugregs debugregs;
	uint32_t xsave_size;
	void *xsave;		 /* xsave_size bytes */
	struct kvm_msrs *msrs; /* nmsrs entries that KVM reported */
};

int kvm_vcpu_get_state(struct kvm_vcpu *vcpu, struct kvm_vcpu_state *st);
int kvm_vcpu_set_state(struct kvm_vcpu *vcpu, const struct kvm_vcpu_state *st);
void kvm_vcpu_state_free(struct kvm_vcpu_state *st);

/* VM-wide state: the two PICs, the IOAPIC, the PIT and kvmclock. */
struct kvm_vm_state {
	struct kvm_irqchip pic_master;
	struct kvm_irqchip pic_slave;
	struct kvm_irqchip ioapic;
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;
};

int kvm_vm_get_state(struct kvm_vm *vm, struct kvm_vm_state *st);
int kvm_vm_set_state(struct kvm_vm *vm, const struct kvm_vm_state *st);

#endif
