#include "vmm/vmstate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VM_SECTION_VERSION 1
#define MAX_CPUID_ENTRIES 256

static void ser_string(struct ser_writer *w, const char *s)
{
	uint32_t len = (uint32_t)strlen(s);

	ser_u32(w, len);
	ser_bytes(w, s, len);
}

static int de_string(struct ser_reader *r, char *dst, size_t cap)
{
	uint32_t len = de_u32(r);

	if (r->err || len >= cap || len > r->len - r->pos)
		return -EBADMSG;
	de_bytes(r, dst, len);
	dst[len] = 0;
	return memchr(dst, 0, len) ? -EBADMSG : 0;
}

/* A fixed-size KVM struct, prefixed by its size so a layout change is caught. */
static void ser_blob(struct ser_writer *w, const void *p, uint32_t size)
{
	ser_u32(w, size);
	ser_bytes(w, p, size);
}

static int de_blob(struct ser_reader *r, void *p, uint32_t size)
{
	if (de_u32(r) != size)
		return -EBADMSG;
	de_bytes(r, p, size);
	return r->err;
}

static int bad(char *err, size_t errlen, const char *section, const char *what)
{
	snprintf(err, errlen, "section %s: %s", section, what);
	return -EBADMSG;
}

void vmstate_save_vm(struct ser_writer *w, const struct vm_section *s)
{
	const struct vm_config *c = &s->cfg;

	ser_u32(w, VM_SECTION_VERSION);
	ser_string(w, c->kernel);
	ser_string(w, c->initrd);
	ser_string(w, c->cmdline);
	ser_u64(w, c->mem_size);
	ser_u32(w, c->nr_cpus);
	ser_u32(w, c->nr_disks);
	for (unsigned i = 0; i < c->nr_disks; i++) {
		ser_string(w, c->disks[i].path);
		ser_u8(w, c->disks[i].readonly);
	}
	ser_u64(w, s->realtime_ns);
	ser_u32(w, s->tsc_khz);
	ser_u32(w, s->cpuid->nent);
	ser_bytes(w, s->cpuid->entries, s->cpuid->nent * sizeof(struct kvm_cpuid_entry2));
}

int vmstate_load_vm(struct ser_reader *r, struct vm_section *s, char *err, size_t errlen)
{
	struct vm_config *c = &s->cfg;
	uint32_t version, nent;

	memset(s, 0, sizeof(*s));
	version = de_u32(r);
	if (version != VM_SECTION_VERSION)
		return bad(err, errlen, "vm", "unknown version");
	if (de_string(r, c->kernel, sizeof(c->kernel)) < 0 ||
	    de_string(r, c->initrd, sizeof(c->initrd)) < 0 ||
	    de_string(r, c->cmdline, sizeof(c->cmdline)) < 0)
		return bad(err, errlen, "vm", "malformed path or command line");
	c->mem_size = de_u64(r);
	c->nr_cpus = de_u32(r);
	c->nr_disks = de_u32(r);
	if (c->nr_disks > MACHINE_MAX_DISKS)
		return bad(err, errlen, "vm", "too many disks");
	for (unsigned i = 0; i < c->nr_disks; i++) {
		if (de_string(r, c->disks[i].path, sizeof(c->disks[i].path)) < 0)
			return bad(err, errlen, "vm", "malformed disk path");
		c->disks[i].readonly = de_u8(r) != 0;
	}
	s->realtime_ns = de_u64(r);
	s->tsc_khz = de_u32(r);
	nent = de_u32(r);
	if (r->err || nent == 0 || nent > MAX_CPUID_ENTRIES)
		return bad(err, errlen, "vm", "malformed CPUID table");
	s->cpuid = calloc(1, sizeof(*s->cpuid) + nent * sizeof(struct kvm_cpuid_entry2));
	if (!s->cpuid)
		return -ENOMEM;
	s->cpuid->nent = nent;
	de_bytes(r, s->cpuid->entries, nent * sizeof(struct kvm_cpuid_entry2));
	if (de_finish(r) < 0) {
		free(s->cpuid);
		s->cpuid = NULL;
		return bad(err, errlen, "vm", "truncated or has trailing bytes");
	}
	return 0;
}

void vmstate_save_vcpu(struct ser_writer *w, const struct kvm_vcpu_state *st)
{
	ser_blob(w, &st->regs, sizeof(st->regs));
	ser_blob(w, &st->sregs, sizeof(st->sregs));
	ser_blob(w, &st->xcrs, sizeof(st->xcrs));
	ser_blob(w, &st->lapic, sizeof(st->lapic));
	ser_blob(w, &st->events, sizeof(st->events));
	ser_blob(w, &st->mp_state, sizeof(st->mp_state));
	ser_blob(w, &st->debugregs, sizeof(st->debugregs));
	ser_u32(w, st->xsave_size);
	ser_bytes(w, st->xsave, st->xsave_size);
	ser_u32(w, st->msrs->nmsrs);
	for (uint32_t i = 0; i < st->msrs->nmsrs; i++) {
		ser_u32(w, st->msrs->entries[i].index);
		ser_u64(w, st->msrs->entries[i].data);
	}
}

int vmstate_load_vcpu(struct ser_reader *r, struct kvm_vcpu_state *st, uint32_t xsave_size,
		      uint32_t max_msrs, char *err, size_t errlen)
{
	uint32_t n;

	memset(st, 0, sizeof(*st));
	if (de_blob(r, &st->regs, sizeof(st->regs)) < 0 ||
	    de_blob(r, &st->sregs, sizeof(st->sregs)) < 0 ||
	    de_blob(r, &st->xcrs, sizeof(st->xcrs)) < 0 ||
	    de_blob(r, &st->lapic, sizeof(st->lapic)) < 0 ||
	    de_blob(r, &st->events, sizeof(st->events)) < 0 ||
	    de_blob(r, &st->mp_state, sizeof(st->mp_state)) < 0 ||
	    de_blob(r, &st->debugregs, sizeof(st->debugregs)) < 0)
		return bad(err, errlen, "vcpu", "register block of the wrong size");
	if (st->xcrs.nr_xcrs > KVM_MAX_XCRS)
		return bad(err, errlen, "vcpu", "too many XCRs");
	st->xsave_size = de_u32(r);
	if (st->xsave_size != xsave_size)
		return bad(err, errlen, "vcpu",
			   "XSAVE area size differs from this host's (the host CPU differs)");
	st->xsave = calloc(1, xsave_size);
	if (!st->xsave)
		return -ENOMEM;
	de_bytes(r, st->xsave, xsave_size);
	n = de_u32(r);
	if (r->err || n > max_msrs) {
		kvm_vcpu_state_free(st);
		return bad(err, errlen, "vcpu", "malformed MSR list");
	}
	st->msrs = calloc(1, sizeof(*st->msrs) + n * sizeof(struct kvm_msr_entry));
	if (!st->msrs) {
		kvm_vcpu_state_free(st);
		return -ENOMEM;
	}
	st->msrs->nmsrs = n;
	for (uint32_t i = 0; i < n; i++) {
		st->msrs->entries[i].index = de_u32(r);
		st->msrs->entries[i].data = de_u64(r);
	}
	if (de_finish(r) < 0) {
		kvm_vcpu_state_free(st);
		return bad(err, errlen, "vcpu", "truncated or has trailing bytes");
	}
	return 0;
}

void vmstate_save_kvm(struct ser_writer *w, const struct kvm_vm_state *st)
{
	ser_blob(w, &st->pic_master, sizeof(st->pic_master));
	ser_blob(w, &st->pic_slave, sizeof(st->pic_slave));
	ser_blob(w, &st->ioapic, sizeof(st->ioapic));
	ser_blob(w, &st->pit, sizeof(st->pit));
	ser_blob(w, &st->clock, sizeof(st->clock));
}

int vmstate_load_kvm(struct ser_reader *r, struct kvm_vm_state *st, char *err, size_t errlen)
{
	memset(st, 0, sizeof(*st));
	if (de_blob(r, &st->pic_master, sizeof(st->pic_master)) < 0 ||
	    de_blob(r, &st->pic_slave, sizeof(st->pic_slave)) < 0 ||
	    de_blob(r, &st->ioapic, sizeof(st->ioapic)) < 0 ||
	    de_blob(r, &st->pit, sizeof(st->pit)) < 0 ||
	    de_blob(r, &st->clock, sizeof(st->clock)) < 0 || de_finish(r) < 0)
		return bad(err, errlen, "kvm", "truncated, or a block of the wrong size");
	if (st->pic_master.chip_id != KVM_IRQCHIP_PIC_MASTER ||
	    st->pic_slave.chip_id != KVM_IRQCHIP_PIC_SLAVE ||
	    st->ioapic.chip_id != KVM_IRQCHIP_IOAPIC)
		return bad(err, errlen, "kvm", "irqchip ids out of place");
	return 0;
}
