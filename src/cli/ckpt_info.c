/*
 * Checkpoint information through the checkpoint reader. Only the cheap checks of
 * ckpt_reader_open() run here (manifest, file sizes, `state` checksums): reading the whole
 * memory image for every listing would cost seconds per GiB, and cryo-vmm checks what it
 * maps when it restores.
 *
 * The "vm" section is written by cryo-vmm (vmstate_save_vm in src/vmm/vmstate.c), and its
 * first fields are the VM's definition. Section version 1 lays them out as:
 *   u32 version, string kernel, string initrd, string cmdline, u64 memory in bytes,
 *   u32 vCPUs, u32 disks, then per disk: string path, u8 read-only.
 * A string is a u32 length and that many bytes without a NUL. The host-specific fields
 * after them (clock, CPUID) are not read here. tests/unit/test_cli_ckpt_info.c decodes
 * what vmstate_save_vm writes, so a layout change that this file misses fails there.
 */
#include "cli/ckpt_info.h"

#include "common/ser.h"
#include "snapshot/ckpt.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define VM_SECTION_VERSION_KNOWN 1
#define MIB (1024ull * 1024)

int ckpt_info_read(const char *dir, struct ckpt_info *info, struct vm_def *def, char *err,
		   size_t errlen)
{
	struct ckpt_reader *r;
	const void *vm;
	size_t vm_len;
	int ret;

	ret = ckpt_reader_open(&r, dir, err, errlen);
	if (ret)
		return ret;
	info->created = ckpt_reader_created(r);
	info->size_bytes = ckpt_reader_disk_usage(r);

	if (def) {
		vm = ckpt_reader_section(r, "vm", &vm_len);
		if (!vm) {
			snprintf(err, errlen, "checkpoint %s: file state: no section vm", dir);
			ret = -EBADMSG;
		} else {
			char why[128];

			ret = ckpt_info_decode_vm(vm, vm_len, def, why, sizeof(why));
			if (ret)
				snprintf(err, errlen, "checkpoint %s: file state: %s", dir, why);
		}
	}
	ckpt_reader_close(r);
	return ret;
}

/* Read a string of the "vm" section into dst of cap bytes; -EBADMSG when it does not fit. */
static int vm_section_string(struct ser_reader *r, char *dst, size_t cap)
{
	uint32_t len = de_u32(r);

	if (r->err || len >= cap || len > r->len - r->pos)
		return -EBADMSG;
	de_bytes(r, dst, len);
	dst[len] = '\0';
	return memchr(dst, '\0', len) ? -EBADMSG : 0;
}

int ckpt_info_decode_vm(const void *payload, size_t len, struct vm_def *def, char *err,
			size_t errlen)
{
	struct ser_reader r;
	uint32_t version, ndisks;
	uint64_t mem_bytes;

	memset(def, 0, sizeof(*def));
	ser_reader_init(&r, payload, len);
	version = de_u32(&r);
	if (r.err) {
		snprintf(err, errlen, "section vm: truncated");
		return -EBADMSG;
	}
	if (version != VM_SECTION_VERSION_KNOWN) {
		snprintf(err, errlen, "section vm: version %u, but this cryo reads version %d",
			 version, VM_SECTION_VERSION_KNOWN);
		return -ENOTSUP;
	}
	if (vm_section_string(&r, def->kernel, sizeof(def->kernel)) ||
	    vm_section_string(&r, def->initrd, sizeof(def->initrd)) ||
	    vm_section_string(&r, def->cmdline, sizeof(def->cmdline))) {
		snprintf(err, errlen, "section vm: malformed kernel, initrd or command line");
		return -EBADMSG;
	}
	mem_bytes = de_u64(&r);
	def->cpus = de_u32(&r);
	ndisks = de_u32(&r);
	if (r.err || ndisks > VM_DISKS_MAX || mem_bytes % MIB) {
		snprintf(err, errlen, "section vm: malformed memory size or disk count");
		return -EBADMSG;
	}
	def->ram_mib = mem_bytes / MIB;
	for (uint32_t i = 0; i < ndisks; i++) {
		if (vm_section_string(&r, def->disks[i].path, sizeof(def->disks[i].path))) {
			snprintf(err, errlen, "section vm: malformed path of disk %u", i);
			return -EBADMSG;
		}
		def->disks[i].readonly = de_u8(&r) != 0;
	}
	if (r.err) {
		snprintf(err, errlen, "section vm: truncated");
		return -EBADMSG;
	}
	def->ndisks = ndisks;
	def->last_exit = -1;
	return 0;
}

/*
 * Append "WHAT SAVED in the checkpoint, CURRENT now" to diff, separated from earlier ones
 * by "; ". Text values are quoted so that an empty one still shows.
 */
static void diff_add(char *diff, size_t difflen, const char *what, const char *saved,
		     const char *current, bool quote)
{
	const char *q = quote ? "'" : "";
	size_t used = strlen(diff);

	if (used + 3 >= difflen)
		return;
	if (used) {
		strcpy(diff + used, "; ");
		used += 2;
	}
	snprintf(diff + used, difflen - used, "%s %s%s%s in the checkpoint, %s%s%s now", what,
		 q, saved, q, q, current, q);
}

static void diff_string(char *diff, size_t difflen, const char *what, const char *saved,
			const char *current)
{
	if (strcmp(saved, current) != 0)
		diff_add(diff, difflen, what, saved, current, true);
}

static void diff_number(char *diff, size_t difflen, const char *what, const char *unit,
			uint64_t saved, uint64_t current)
{
	char a[48], b[48];

	if (saved == current)
		return;
	snprintf(a, sizeof(a), "%llu%s", (unsigned long long)saved, unit);
	snprintf(b, sizeof(b), "%llu%s", (unsigned long long)current, unit);
	diff_add(diff, difflen, what, a, b, false);
}

bool ckpt_info_same_definition(const struct vm_def *saved, const struct vm_def *current,
			       char *diff, size_t difflen)
{
	size_t n = saved->ndisks > current->ndisks ? saved->ndisks : current->ndisks;

	diff[0] = '\0';
	diff_number(diff, difflen, "ram", " MiB", saved->ram_mib, current->ram_mib);
	diff_number(diff, difflen, "cpus", "", saved->cpus, current->cpus);
	diff_string(diff, difflen, "kernel", saved->kernel, current->kernel);
	diff_string(diff, difflen, "initrd", saved->initrd, current->initrd);
	diff_string(diff, difflen, "cmdline", saved->cmdline, current->cmdline);
	diff_number(diff, difflen, "disks", "", saved->ndisks, current->ndisks);
	for (size_t i = 0; i < n && i < VM_DISKS_MAX; i++) {
		char what[32], a[PATH_MAX + 4], b[PATH_MAX + 4];

		snprintf(what, sizeof(what), "disk %zu", i + 1);
		snprintf(a, sizeof(a), "%s%s", i < saved->ndisks ? saved->disks[i].path : "(none)",
			 i < saved->ndisks && saved->disks[i].readonly ? ",ro" : "");
		snprintf(b, sizeof(b), "%s%s",
			 i < current->ndisks ? current->disks[i].path : "(none)",
			 i < current->ndisks && current->disks[i].readonly ? ",ro" : "");
		diff_string(diff, difflen, what, a, b);
	}
	return diff[0] == '\0';
}
