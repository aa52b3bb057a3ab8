/*
 * The CPUID table each vCPU gets: what KVM supports on this host, with the APIC ID
 * and topology of that vCPU filled in and the hypervisor bit set, so the guest finds
 * KVM's paravirtual leaves (kvmclock) at 0x40000000.
 */
#ifndef CRYO_MACHINE_CPUID_H
#define CRYO_MACHINE_CPUID_H

#include <stdbool.h>

#include "kvm/kvm.h"

/*
 * Returns a malloc'd table for vCPU `id` of `nr_cpus`, or NULL when out of memory.
 * `tsc_deadline` adds the TSC-deadline timer, which KVM emulates with its in-kernel
 * LAPIC but does not list among the supported CPUID bits.
 */
struct kvm_cpuid2 *cpuid_for_vcpu(const struct kvm_cpuid2 *supported, unsigned id,
				  unsigned nr_cpus, bool tsc_deadline);

/*
 * Checks that every feature flag set in `saved` (leaves 1, 7, 0xD and 0x80000001)
 * is also in `supported`, so a checkpoint taken on another host can run here.
 * Returns 0, or -ENOTSUP with the first missing leaf/register/bit in err.
 */
int cpuid_check_compatible(const struct kvm_cpuid2 *saved, const struct kvm_cpuid2 *supported,
			   char *err, size_t errlen);

#endif
