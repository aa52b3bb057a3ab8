#include "machine/cpuid.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CPUID_HYPERVISOR_BIT (1u << 31) /* leaf 1 ECX */
#define CPUID_HTT_BIT (1u << 28)	/* leaf 1 EDX */
#define CPUID_TSC_DEADLINE_BIT (1u << 24) /* leaf 1 ECX */

static unsigned bits_for(unsigned n)
{
	unsigned b = 0;

	while ((1u << b) < n)
		b++;
	return b;
}

struct kvm_cpuid2 *cpuid_for_vcpu(const struct kvm_cpuid2 *supported, unsigned id,
				  unsigned nr_cpus, bool tsc_deadline)
{
	size_t size = sizeof(*supported) + supported->nent * sizeof(struct kvm_cpuid_entry2);
	struct kvm_cpuid2 *c = malloc(size);
	unsigned shift = bits_for(nr_cpus);

	if (!c)
		return NULL;
	memcpy(c, supported, size);

	for (unsigned i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		switch (e->function) {
		case 1:
			e->ebx = (e->ebx & 0x0000ffff) | (id << 24) | ((nr_cpus & 0xff) << 16);
			e->ecx |= CPUID_HYPERVISOR_BIT;
			if (tsc_deadline)
				e->ecx |= CPUID_TSC_DEADLINE_BIT;
			if (nr_cpus > 1)
				e->edx |= CPUID_HTT_BIT;
			break;
		case 4:
			/* One core per vCPU, all in one package. */
			e->eax = (e->eax & 0x3ff) | ((nr_cpus - 1) << 26);
			break;
		case 0xb:
			/* Level 0: one thread per core; level 1: nr_cpus cores per package. */
			if (e->index == 0) {
				e->eax = 0;
				e->ebx = 1;
				e->ecx = (1u << 8) | 0;
			} else if (e->index == 1) {
				e->eax = shift;
				e->ebx = nr_cpus;
				e->ecx = (2u << 8) | 1;
			} else {
				e->eax = e->ebx = 0;
				e->ecx = e->index;
			}
			e->edx = id;
			break;
		case 0x80000008:
			/* AMD core count: NC and ApicIdCoreIdSize. */
			e->ecx = (e->ecx & ~0xf0ffu) | (shift << 12) | ((nr_cpus - 1) & 0xff);
			break;
		default:
			break;
		}
	}
	return c;
}

static const struct kvm_cpuid_entry2 *find_leaf(const struct kvm_cpuid2 *c, uint32_t fn,
						uint32_t index)
{
	for (unsigned i = 0; i < c->nent; i++) {
		if (c->entries[i].function == fn && c->entries[i].index == index)
			return &c->entries[i];
	}
	return NULL;
}

int cpuid_check_compatible(const struct kvm_cpuid2 *saved, const struct kvm_cpuid2 *supported,
			   char *err, size_t errlen)
{
	static const struct {
		uint32_t fn, index;
		uint32_t ignore[4]; /* bits in eax..edx cryo itself sets or that carry no feature */
	} leaves[] = {
		{ 1, 0, { ~0u, ~0u, CPUID_HYPERVISOR_BIT | CPUID_TSC_DEADLINE_BIT, CPUID_HTT_BIT } },
		{ 7, 0, { ~0u, 0, 0, 0 } },
		{ 0xd, 1, { 0, ~0u, ~0u, ~0u } },
		{ 0x80000001, 0, { ~0u, ~0u, 0, 0 } },
	};
	static const char *const reg_names[] = { "eax", "ebx", "ecx", "edx" };

	for (unsigned i = 0; i < sizeof(leaves) / sizeof(leaves[0]); i++) {
		const struct kvm_cpuid_entry2 *s = find_leaf(saved, leaves[i].fn, leaves[i].index);
		const struct kvm_cpuid_entry2 *h = find_leaf(supported, leaves[i].fn, leaves[i].index);
		uint32_t sv[4], hv[4] = { 0 };

		if (!s)
			continue;
		sv[0] = s->eax, sv[1] = s->ebx, sv[2] = s->ecx, sv[3] = s->edx;
		if (h)
			hv[0] = h->eax, hv[1] = h->ebx, hv[2] = h->ecx, hv[3] = h->edx;
		for (unsigned r = 0; r < 4; r++) {
			uint32_t missing = sv[r] & ~hv[r] & ~leaves[i].ignore[r];

			if (missing) {
				snprintf(err, errlen,
					 "the checkpoint needs CPU features this host lacks: CPUID leaf 0x%x subleaf %u %s bits 0x%08x",
					 leaves[i].fn, leaves[i].index, reg_names[r], missing);
				return -ENOTSUP;
			}
		}
	}
	return 0;
}
