/*
 * Guest physical memory as devices see it: a few contiguous regions of host
 * memory. Every guest-supplied address enters the VMM through guest_mem_ptr(),
 * which checks the whole range, not just its start.
 */
#ifndef CRYO_DEVICES_GUEST_MEM_H
#define CRYO_DEVICES_GUEST_MEM_H

#include <stdbool.h>
#include <stdint.h>

#define GUEST_MEM_MAX_REGIONS 4

struct guest_mem_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *host;
};

struct guest_mem {
	struct guest_mem_region regions[GUEST_MEM_MAX_REGIONS];
	unsigned nr_regions;
};

/*
 * Returns the host address of guest range [gpa, gpa + len), or NULL when any byte of
 * it lies outside one region (a range never straddles two regions, as on real
 * hardware where the hole between them is not RAM). len 0 is treated as 1.
 */
static inline void *guest_mem_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	if (len == 0)
		len = 1;
	for (unsigned i = 0; i < m->nr_regions; i++) {
		const struct guest_mem_region *r = &m->regions[i];

		if (gpa >= r->gpa && gpa - r->gpa < r->size && len <= r->size - (gpa - r->gpa))
			return r->host + (gpa - r->gpa);
	}
	return 0;
}

#endif
