/*
 * KVM ioctl wrappers. The VM always gets the in-kernel irqchip (PIC + IOAPIC +
 * LAPICs) and PIT, because a stock Linux guest expects them and emulating them in
 * user space would cost an exit per timer tick.
 */
#include "kvm/kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

/* Reserved guest-physical pages KVM needs for real-mode emulation on Intel hosts. */
#define KVM_TSS_ADDR 0xfeffd000ULL
#define KVM_IDENTITY_MAP_ADDR 0xfeffc000ULL
#define MAX_CPUID_ENTRIES 256

static int xioctl(int fd, unsigned long req, void *arg)
{
	int ret;

	do {
		ret = ioctl(fd, req, arg);
	} while (ret < 0 && errno == EINTR);
	return ret < 0 ? -errno : ret;
}

static int kvm_load_supported(struct kvm_vm *vm)
{
	struct kvm_msr_list probe = { .nmsrs = 0 };
	int ret;

	vm->supported_cpuid = calloc(1, sizeof(*vm->supported_cpuid) +
					       MAX_CPUID_ENTRIES * sizeof(struct kvm_cpuid_entry2));
	if (!vm->supported_cpuid)
		return -ENOMEM;
	vm->supported_cpuid->nent = MAX_CPUID_ENTRIES;
	ret = xioctl(vm->sys_fd, KVM_GET_SUPPORTED_CPUID, vm->supported_cpuid);
	if (ret < 0)
		return ret;

	/* The first call fails with E2BIG and stores the number of MSRs in nmsrs. */
	ret = ioctl(vm->sys_fd, KVM_GET_MSR_INDEX_LIST, &probe);
	if (ret < 0 && errno != E2BIG)
		return -errno;
	vm->msr_list = calloc(1, sizeof(*vm->msr_list) + probe.nmsrs * sizeof(uint32_t));
	if (!vm->msr_list)
		return -ENOMEM;
	vm->msr_list->nmsrs = probe.nmsrs;
	ret = xioctl(vm->sys_fd, KVM_GET_MSR_INDEX_LIST, vm->msr_list);
	if (ret < 0)
		return ret;

	ret = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	vm->xsave_size = ret > 4096 ? (uint32_t)ret : 4096;
	return 0;
}

int kvm_vm_create(struct kvm_vm *vm)
{
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	uint64_t identity = KVM_IDENTITY_MAP_ADDR;
	int ret;

	memset(vm, 0, sizeof(*vm));
	vm->vm_fd = -1;
	vm->sys_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->sys_fd < 0)
		return -errno;
	if (ioctl(vm->sys_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
		ret = -ENOTSUP;
		goto fail;
	}
	ret = ioctl(vm->sys_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (ret < 0) {
		ret = -errno;
		goto fail;
	}
	vm->run_size = (size_t)ret;

	ret = ioctl(vm->sys_fd, KVM_CREATE_VM, 0);
	if (ret < 0) {
		ret = -errno;
		goto fail;
	}
	vm->vm_fd = ret;

	ret = kvm_load_supported(vm);
	if (ret < 0)
		goto fail;
	ret = xioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (void *)(uintptr_t)KVM_TSS_ADDR);
	if (ret < 0)
		goto fail;
	ret = xioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &identity);
	if (ret < 0)
		goto fail;
	ret = xioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, NULL);
	if (ret < 0)
		goto fail;
	ret = xioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit);
	if (ret < 0)
		goto fail;
	return 0;

fail:
	kvm_vm_destroy(vm);
	return ret;
}

void kvm_vm_destroy(struct kvm_vm *vm)
{
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->sys_fd >= 0)
		close(vm->sys_fd);
	free(vm->supported_cpuid);
	free(vm->msr_list);
	vm->vm_fd = vm->sys_fd = -1;
	vm->supported_cpuid = NULL;
	vm->msr_list = NULL;
}

int kvm_vm_check_extension(struct kvm_vm *vm, long cap)
{
	int ret = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, cap);

	return ret < 0 ? -errno : ret;
}

int kvm_vm_set_memory(struct kvm_vm *vm, uint32_t slot, uint64_t gpa, uint64_t size, void *host,
		      uint32_t flags)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot,
		.flags = flags,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)host,
	};

	return xioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r);
}

int kvm_vm_irq_line(struct kvm_vm *vm, uint32_t gsi, int level)
{
	struct kvm_irq_level irq = { .irq = gsi, .level = (uint32_t)level };

	return xioctl(vm->vm_fd, KVM_IRQ_LINE, &irq);
}

int kvm_vm_signal_msi(struct kvm_vm *vm, uint64_t addr, uint32_t data)
{
	struct kvm_msi msi = {
		.address_lo = (uint32_t)addr,
		.address_hi = (uint32_t)(addr >> 32),
		.data = data,
	};
	int ret = xioctl(vm->vm_fd, KVM_SIGNAL_MSI, &msi);

	/* 0 means the interrupt was blocked (masked by the guest), which is not an error. */
	return ret < 0 ? ret : 0;
}

int kvm_vcpu_create(struct kvm_vm *vm, unsigned id, struct kvm_vcpu *vcpu)
{
	int ret;

	memset(vcpu, 0, sizeof(*vcpu));
	vcpu->vm = vm;
	vcpu->id = id;
	ret = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)id);
	if (ret < 0)
		return -errno;
	vcpu->fd = ret;
	vcpu->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
	if (vcpu->run == MAP_FAILED) {
		ret = -errno;
		close(vcpu->fd);
		vcpu->fd = -1;
		vcpu->run = NULL;
		return ret;
	}
	return 0;
}

void kvm_vcpu_destroy(struct kvm_vcpu *vcpu)
{
	if (vcpu->run)
		munmap(vcpu->run, vcpu->vm->run_size);
	if (vcpu->fd >= 0)
		close(vcpu->fd);
	vcpu->run = NULL;
	vcpu->fd = -1;
}

int kvm_vcpu_set_cpuid(struct kvm_vcpu *vcpu, const struct kvm_cpuid2 *cpuid)
{
	return xioctl(vcpu->fd, KVM_SET_CPUID2, (void *)cpuid);
}

int kvm_vcpu_run(struct kvm_vcpu *vcpu)
{
	int ret = ioctl(vcpu->fd, KVM_RUN, 0);

	return ret < 0 ? -errno : 0;
}

int kvm_vcpu_set_msr(struct kvm_vcpu *vcpu, uint32_t index, uint64_t value)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry entry;
	} msrs = { .hdr.nmsrs = 1, .entry = { .index = index, .data = value } };
	int ret = xioctl(vcpu->fd, KVM_SET_MSRS, &msrs);

	if (ret < 0)
		return ret;
	return ret == 1 ? 0 : -EINVAL;
}

int kvm_vcpu_get_tsc_khz(struct kvm_vcpu *vcpu)
{
	int ret = ioctl(vcpu->fd, KVM_GET_TSC_KHZ, 0);

	return ret < 0 ? -errno : ret;
}

int kvm_vcpu_kvmclock_ctrl(struct kvm_vcpu *vcpu)
{
	return xioctl(vcpu->fd, KVM_KVMCLOCK_CTRL, NULL);
}

/*
 * Reads every MSR in `list` that this vCPU can read. KVM_GET_MSRS stops at the first
 * index it cannot read and returns how many it did; such an index (listed by KVM
 * but not valid for this CPUID) is dropped and the read goes on after it.
 */
static int get_msrs(struct kvm_vcpu *vcpu, const struct kvm_msr_list *list, struct kvm_msrs *out)
{
	uint32_t done = 0, next = 0;
	struct kvm_msrs *batch;
	int ret = 0;

	batch = calloc(1, sizeof(*batch) + list->nmsrs * sizeof(struct kvm_msr_entry));
	if (!batch)
		return -ENOMEM;
	while (next < list->nmsrs) {
		batch->nmsrs = list->nmsrs - next;
		for (uint32_t i = 0; i < batch->nmsrs; i++)
			batch->entries[i] = (struct kvm_msr_entry){ .index = list->indices[next + i] };
		ret = xioctl(vcpu->fd, KVM_GET_MSRS, batch);
		if (ret < 0)
			break;
		memcpy(&out->entries[done], batch->entries, (size_t)ret * sizeof(batch->entries[0]));
		done += (uint32_t)ret;
		next += (uint32_t)ret + 1; /* skip the one KVM could not read */
		ret = 0;
	}
	out->nmsrs = done;
	free(batch);
	return ret;
}

int kvm_vcpu_get_state(struct kvm_vcpu *vcpu, struct kvm_vcpu_state *st)
{
	struct kvm_msr_list *list = vcpu->vm->msr_list;
	int ret;

	memset(st, 0, sizeof(*st));
	st->xsave_size = vcpu->vm->xsave_size;
	st->xsave = calloc(1, st->xsave_size);
	st->msrs = calloc(1, sizeof(*st->msrs) + list->nmsrs * sizeof(struct kvm_msr_entry));
	if (!st->xsave || !st->msrs) {
		ret = -ENOMEM;
		goto fail;
	}

	/* Pending exceptions and interrupts must be read before anything disturbs them. */
	if ((ret = xioctl(vcpu->fd, KVM_GET_MP_STATE, &st->mp_state)) < 0 ||
	    (ret = xioctl(vcpu->fd, KVM_GET_REGS, &st->regs)) < 0 ||
	    (ret = xioctl(vcpu->fd, KVM_GET_SREGS, &st->sregs)) < 0 ||
	    (ret = xioctl(vcpu->fd, KVM_GET_XCRS, &st->xcrs)) < 0 ||
	    (ret = xioctl(vcpu->fd, KVM_GET_LAPIC, &st->lapic)) < 0 ||
	    (ret = xioctl(vcpu->fd, KVM_GET_VCPU_EVENTS, &st->events)) < 0 ||
	    (ret = xioctl(vcpu->fd, KVM_GET_DEBUGREGS, &st->debugregs)) < 0)
		goto fail;

	ret = xioctl(vcpu->fd, st->xsave_size > 4096 ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, st->xsave);
	if (ret < 0)
		goto fail;

	ret = get_msrs(vcpu, list, st->msrs);
	if (ret < 0)
		goto fail;
	return 0;

fail:
	kvm_vcpu_state_free(st);
	return ret;
}

int kvm_vcpu_set_state(struct kvm_vcpu *vcpu, const struct kvm_vcpu_state *st)
{
	int ret;

	/*
	 * The special registers carry the APIC base (xAPIC or x2APIC mode), which the
	 * LAPIC state needs. The LAPIC must be in place before the MSRs, because KVM
	 * drops a write of IA32_TSC_DEADLINE unless the LAPIC timer is already in
	 * TSC-deadline mode. A guest whose armed timer is lost waits for it forever.
	 */
	if ((ret = xioctl(vcpu->fd, KVM_SET_SREGS, (void *)&st->sregs)) < 0 ||
	    (ret = xioctl(vcpu->fd, KVM_SET_REGS, (void *)&st->regs)) < 0 ||
	    (ret = xioctl(vcpu->fd, KVM_SET_XSAVE, st->xsave)) < 0 ||
	    (ret = xioctl(vcpu->fd, KVM_SET_XCRS, (void *)&st->xcrs)) < 0 ||
	    (ret = xioctl(vcpu->fd, KVM_SET_LAPIC, (void *)&st->lapic)) < 0)
		return ret;

	ret = xioctl(vcpu->fd, KVM_SET_MSRS, st->msrs);
	if (ret < 0)
		return ret;
	if ((uint32_t)ret != st->msrs->nmsrs)
		return -EINVAL;

	if ((ret = xioctl(vcpu->fd, KVM_SET_VCPU_EVENTS, (void *)&st->events)) < 0 ||
	    (ret = xioctl(vcpu->fd, KVM_SET_DEBUGREGS, (void *)&st->debugregs)) < 0 ||
	    (ret = xioctl(vcpu->fd, KVM_SET_MP_STATE, (void *)&st->mp_state)) < 0)
		return ret;
	return 0;
}

void kvm_vcpu_state_free(struct kvm_vcpu_state *st)
{
	free(st->xsave);
	free(st->msrs);
	st->xsave = NULL;
	st->msrs = NULL;
}

int kvm_vm_get_state(struct kvm_vm *vm, struct kvm_vm_state *st)
{
	int ret;

	memset(st, 0, sizeof(*st));
	st->pic_master.chip_id = KVM_IRQCHIP_PIC_MASTER;
	st->pic_slave.chip_id = KVM_IRQCHIP_PIC_SLAVE;
	st->ioapic.chip_id = KVM_IRQCHIP_IOAPIC;
	if ((ret = xioctl(vm->vm_fd, KVM_GET_IRQCHIP, &st->pic_master)) < 0 ||
	    (ret = xioctl(vm->vm_fd, KVM_GET_IRQCHIP, &st->pic_slave)) < 0 ||
	    (ret = xioctl(vm->vm_fd, KVM_GET_IRQCHIP, &st->ioapic)) < 0 ||
	    (ret = xioctl(vm->vm_fd, KVM_GET_PIT2, &st->pit)) < 0 ||
	    (ret = xioctl(vm->vm_fd, KVM_GET_CLOCK, &st->clock)) < 0)
		return ret;
	return 0;
}

int kvm_vm_set_state(struct kvm_vm *vm, const struct kvm_vm_state *st)
{
	struct kvm_clock_data clock = { .clock = st->clock.clock };
	int ret;

	if ((ret = xioctl(vm->vm_fd, KVM_SET_IRQCHIP, (void *)&st->pic_master)) < 0 ||
	    (ret = xioctl(vm->vm_fd, KVM_SET_IRQCHIP, (void *)&st->pic_slave)) < 0 ||
	    (ret = xioctl(vm->vm_fd, KVM_SET_IRQCHIP, (void *)&st->ioapic)) < 0 ||
	    (ret = xioctl(vm->vm_fd, KVM_SET_PIT2, (void *)&st->pit)) < 0)
		return ret;
	/*
	 * Only the clock value is restored: the flags and host timestamps in the saved
	 * copy describe the old host's clocks and would be rejected or misread here.
	 */
	return xioctl(vm->vm_fd, KVM_SET_CLOCK, &clock);
}
