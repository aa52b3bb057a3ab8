/*
 * Kernel loading. Two formats are accepted, told apart by their magic numbers:
 * - a bzImage ("HdrS" setup header, protocol 2.12 or later with a 64-bit entry):
 *   the protected-mode part goes to 1 MiB and the vCPU starts in long mode at its
 *   64-bit entry, with identity page tables for the first 4 GiB;
 * - an ELF64 or ELF32 with a PT_NOTE holding XEN_ELFNOTE_PHYS32_ENTRY: segments go
 *   to their physical addresses and the vCPU starts in 32-bit protected mode with
 *   paging off, EBX pointing at a struct hvm_start_info (the PVH boot ABI).
 * Real-mode kernel entry and compressed ELF images are not supported.
 */
#include "machine/boot.h"

#include <asm/bootparam.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "machine/layout.h"

#define E820_RAM 1
#define E820_RESERVED 2
#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define HVM_START_MAGIC 0x336ec578
#define BZIMAGE_MIN_VERSION 0x020c /* first protocol with the 64-bit entry flag */

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};

struct hvm_memmap_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};

struct memmap {
	struct boot_e820_entry e[8];
	unsigned n;
};

static int fail(char *err, size_t errlen, int ret, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int ret, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return ret;
}

static int read_file(const char *path, uint8_t **data, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	ssize_t n;
	size_t done = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return fail(err, errlen, -errno, "cannot open %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return fail(err, errlen, -EINVAL, "%s is not a regular file", path);
	}
	*len = (size_t)st.st_size;
	*data = malloc(*len ? *len : 1);
	if (!*data) {
		close(fd);
		return fail(err, errlen, -ENOMEM, "out of memory reading %s", path);
	}
	while (done < *len) {
		n = read(fd, *data + done, *len - done);
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;

			close(fd);
			free(*data);
			return fail(err, errlen, -e, "cannot read %s: %s", path, strerror(e));
		}
		done += (size_t)n;
	}
	close(fd);
	return 0;
}

static void memmap_build(const struct guest_mem *mem, struct memmap *mm)
{
	mm->n = 0;
	mm->e[mm->n++] = (struct boot_e820_entry){ 0, LAYOUT_EBDA, E820_RAM };
	mm->e[mm->n++] = (struct boot_e820_entry){ LAYOUT_EBDA, LAYOUT_KERNEL_BASE - LAYOUT_EBDA,
						   E820_RESERVED };
	for (unsigned i = 0; i < mem->nr_regions; i++) {
		uint64_t start = mem->regions[i].gpa;
		uint64_t end = start + mem->regions[i].size;

		if (start < LAYOUT_KERNEL_BASE)
			start = LAYOUT_KERNEL_BASE;
		if (end > start)
			mm->e[mm->n++] = (struct boot_e820_entry){ start, end - start, E820_RAM };
	}
}

/* Returns the end of RAM below 4 GiB, where the initrd is placed under. */
static uint64_t low_ram_end(const struct guest_mem *mem)
{
	return mem->regions[0].gpa + mem->regions[0].size;
}

static int copy_to_guest(const struct guest_mem *mem, uint64_t gpa, const void *src, size_t len,
			 const char *what, char *err, size_t errlen)
{
	void *dst = guest_mem_ptr(mem, gpa, len);

	if (!dst)
		return fail(err, errlen, -ENOMEM,
			    "%s (%zu bytes at 0x%llx) does not fit in guest memory; give the VM more memory",
			    what, len, (unsigned long long)gpa);
	memcpy(dst, src, len);
	return 0;
}

static int load_initrd(const struct guest_mem *mem, const char *path, uint64_t max_addr,
		       uint64_t kernel_end, uint64_t *gpa, uint64_t *size, char *err, size_t errlen)
{
	uint8_t *data;
	size_t len;
	uint64_t top = low_ram_end(mem);
	int ret = read_file(path, &data, &len, err, errlen);

	if (ret < 0)
		return ret;
	if (max_addr && top > max_addr + 1)
		top = max_addr + 1;
	if (len > top || ((top - len) & ~0xfffULL) < kernel_end) {
		free(data);
		return fail(err, errlen, -ENOMEM,
			    "initrd %s (%zu bytes) does not fit in guest memory beside the kernel; give the VM more memory",
			    path, len);
	}
	*gpa = (top - len) & ~0xfffULL;
	*size = len;
	ret = copy_to_guest(mem, *gpa, data, len, "initrd", err, errlen);
	free(data);
	return ret;
}

static int write_cmdline(const struct guest_mem *mem, const char *cmdline, size_t max,
			 char *err, size_t errlen)
{
	size_t len = strlen(cmdline) + 1;

	if (len > max)
		return fail(err, errlen, -E2BIG, "kernel command line is %zu bytes; the kernel accepts %zu",
			    len - 1, max - 1);
	return copy_to_guest(mem, LAYOUT_CMDLINE, cmdline, len, "command line", err, errlen);
}

static void setup_gdt(const struct guest_mem *mem)
{
	uint64_t *gdt = guest_mem_ptr(mem, LAYOUT_GDT, 4 * sizeof(uint64_t));

	gdt[0] = 0;
	gdt[1] = 0x00cf9b000000ffffULL; /* 0x08: 32-bit code, for the PVH entry */
	gdt[2] = 0x00af9b000000ffffULL; /* 0x10: 64-bit code, __BOOT_CS of the Linux boot protocol */
	gdt[3] = 0x00cf93000000ffffULL; /* 0x18: flat data */
}

static struct kvm_segment flat_segment(uint16_t selector, uint8_t type, bool code64)
{
	return (struct kvm_segment){
		.base = 0, .limit = 0xffffffff, .selector = selector, .type = type,
		.present = 1, .dpl = 0, .db = code64 ? 0 : 1, .s = 1, .l = code64 ? 1 : 0, .g = 1,
	};
}

static void setup_page_tables(const struct guest_mem *mem)
{
	uint64_t *pml4 = guest_mem_ptr(mem, LAYOUT_PML4, 4096);
	uint64_t *pdpt = guest_mem_ptr(mem, LAYOUT_PDPT, 4096);
	uint64_t *pd = guest_mem_ptr(mem, LAYOUT_PD, 4 * 4096);

	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	pml4[0] = LAYOUT_PDPT | 0x3;
	for (unsigned i = 0; i < 4; i++)
		pdpt[i] = (LAYOUT_PD + i * 4096) | 0x3;
	for (unsigned i = 0; i < 4 * 512; i++)
		pd[i] = ((uint64_t)i << 21) | 0x83; /* present, writable, 2 MiB page */
}

static int set_fpu_defaults(struct kvm_vcpu *vcpu)
{
	struct kvm_fpu fpu = { .fcw = 0x37f, .mxcsr = 0x1f80 };

	return ioctl(vcpu->fd, KVM_SET_FPU, &fpu) < 0 ? -errno : 0;
}

static int enter_long_mode(struct kvm_vcpu *vcpu, uint64_t rip, uint64_t rsi)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs = { .rflags = 2, .rip = rip, .rsi = rsi, .rsp = LAYOUT_BOOT_STACK };

	if (ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	sregs.gdt.base = LAYOUT_GDT;
	sregs.gdt.limit = 4 * 8 - 1;
	sregs.cs = flat_segment(0x10, 0xb, true);
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = flat_segment(0x18, 0x3, false);
	sregs.cr3 = LAYOUT_PML4;
	sregs.cr4 = 1u << 5;			  /* PAE */
	sregs.cr0 = (1u << 0) | (1u << 31) | 0x10; /* PE, PG, ET */
	sregs.efer = (1u << 8) | (1u << 10);	  /* LME, LMA */
	if (ioctl(vcpu->fd, KVM_SET_SREGS, &sregs) < 0 || ioctl(vcpu->fd, KVM_SET_REGS, &regs) < 0)
		return -errno;
	return set_fpu_defaults(vcpu);
}

static int enter_protected_mode(struct kvm_vcpu *vcpu, uint64_t eip, uint64_t ebx)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs = { .rflags = 2, .rip = eip, .rbx = ebx };

	if (ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	sregs.gdt.base = LAYOUT_GDT;
	sregs.gdt.limit = 4 * 8 - 1;
	sregs.cs = flat_segment(0x08, 0xb, false);
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = flat_segment(0x18, 0x3, false);
	sregs.cr0 = (1u << 0) | 0x10; /* PE, ET */
	sregs.cr4 = 0;
	sregs.efer = 0;
	if (ioctl(vcpu->fd, KVM_SET_SREGS, &sregs) < 0 || ioctl(vcpu->fd, KVM_SET_REGS, &regs) < 0)
		return -errno;
	return set_fpu_defaults(vcpu);
}

static int load_bzimage(const struct guest_mem *mem, const struct boot_params_in *in,
			const uint8_t *img, size_t len, struct kvm_vcpu *bsp, char *err,
			size_t errlen)
{
	const struct setup_header *hdr = (const void *)(img + 0x1f1);
	struct boot_params *zp = guest_mem_ptr(mem, LAYOUT_ZERO_PAGE, sizeof(struct boot_params));
	struct memmap mm;
	size_t setup_size, hdr_len, kernel_len;
	unsigned setup_sects;
	uint64_t kernel_end, initrd_gpa = 0, initrd_size = 0;
	int ret;

	if (hdr->version < BZIMAGE_MIN_VERSION || !(hdr->xloadflags & XLF_KERNEL_64))
		return fail(err, errlen, -ENOEXEC,
			    "%s: boot protocol %u.%02u without a 64-bit entry point is not supported",
			    in->kernel_path, hdr->version >> 8, hdr->version & 0xff);
	setup_sects = hdr->setup_sects ? hdr->setup_sects : 4;
	setup_size = (setup_sects + 1) * 512ULL;
	hdr_len = 0x202 + img[0x201] - 0x1f1; /* the header's own length byte */
	if (setup_size >= len || 0x1f1 + hdr_len > setup_size || hdr_len > sizeof(zp->hdr) + 16)
		return fail(err, errlen, -ENOEXEC, "%s: corrupt setup header", in->kernel_path);
	kernel_len = len - setup_size;
	kernel_end = LAYOUT_KERNEL_BASE + (hdr->init_size > kernel_len ? hdr->init_size : kernel_len);

	ret = copy_to_guest(mem, LAYOUT_KERNEL_BASE, img + setup_size, kernel_len, "kernel", err,
			    errlen);
	if (ret < 0)
		return ret;
	if (!guest_mem_ptr(mem, LAYOUT_KERNEL_BASE, kernel_end - LAYOUT_KERNEL_BASE))
		return fail(err, errlen, -ENOMEM,
			    "%s needs %llu MiB of memory to decompress; give the VM more memory",
			    in->kernel_path,
			    (unsigned long long)((kernel_end + MiB - 1) / MiB));

	memset(zp, 0, sizeof(*zp));
	memcpy(&zp->hdr, hdr, hdr_len < sizeof(zp->hdr) ? hdr_len : sizeof(zp->hdr));
	zp->hdr.type_of_loader = 0xff;
	zp->hdr.loadflags |= CAN_USE_HEAP | LOADED_HIGH;
	zp->hdr.heap_end_ptr = 0xfe00;
	zp->hdr.cmd_line_ptr = (uint32_t)LAYOUT_CMDLINE;
	zp->hdr.code32_start = (uint32_t)LAYOUT_KERNEL_BASE;
	zp->acpi_rsdp_addr = in->rsdp_gpa;

	ret = write_cmdline(mem, in->cmdline,
			    hdr->cmdline_size ? hdr->cmdline_size + 1ULL : 256, err, errlen);
	if (ret < 0)
		return ret;
	if (in->initrd_path) {
		ret = load_initrd(mem, in->initrd_path, hdr->initrd_addr_max, kernel_end,
				  &initrd_gpa, &initrd_size, err, errlen);
		if (ret < 0)
			return ret;
		zp->hdr.ramdisk_image = (uint32_t)initrd_gpa;
		zp->hdr.ramdisk_size = (uint32_t)initrd_size;
	}

	memmap_build(mem, &mm);
	for (unsigned i = 0; i < mm.n; i++)
		zp->e820_table[i] = mm.e[i];
	zp->e820_entries = (uint8_t)mm.n;

	setup_gdt(mem);
	setup_page_tables(mem);
	return enter_long_mode(bsp, LAYOUT_KERNEL_BASE + 0x200, LAYOUT_ZERO_PAGE);
}

/* Parses the ELF program headers; returns the PVH entry or 0 when there is none. */
static int load_elf(const struct guest_mem *mem, const struct boot_params_in *in,
		    const uint8_t *img, size_t len, struct kvm_vcpu *bsp, char *err, size_t errlen)
{
	const Elf64_Ehdr *eh64 = (const void *)img;
	const Elf32_Ehdr *eh32 = (const void *)img;
	bool is64 = img[EI_CLASS] == ELFCLASS64;
	uint64_t phoff = is64 ? eh64->e_phoff : eh32->e_phoff;
	unsigned phnum = is64 ? eh64->e_phnum : eh32->e_phnum;
	size_t phsz = is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
	uint64_t entry = 0, image_end = 0;
	struct hvm_start_info *si;
	struct hvm_memmap_entry *me;
	struct memmap mm;
	int ret;

	if ((!is64 && img[EI_CLASS] != ELFCLASS32) || len < sizeof(Elf64_Ehdr) ||
	    phoff > len || phnum * phsz > len - phoff)
		return fail(err, errlen, -ENOEXEC, "%s: corrupt ELF header", in->kernel_path);

	for (unsigned i = 0; i < phnum; i++) {
		const uint8_t *ph = img + phoff + i * phsz;
		uint32_t type = is64 ? ((const Elf64_Phdr *)ph)->p_type : ((const Elf32_Phdr *)ph)->p_type;
		uint64_t off = is64 ? ((const Elf64_Phdr *)ph)->p_offset : ((const Elf32_Phdr *)ph)->p_offset;
		uint64_t filesz = is64 ? ((const Elf64_Phdr *)ph)->p_filesz : ((const Elf32_Phdr *)ph)->p_filesz;
		uint64_t memsz = is64 ? ((const Elf64_Phdr *)ph)->p_memsz : ((const Elf32_Phdr *)ph)->p_memsz;
		uint64_t paddr = is64 ? ((const Elf64_Phdr *)ph)->p_paddr : ((const Elf32_Phdr *)ph)->p_paddr;

		if (off > len || filesz > len - off || filesz > memsz)
			return fail(err, errlen, -ENOEXEC, "%s: segment %u lies outside the file",
				    in->kernel_path, i);
		if (type == PT_LOAD) {
			uint8_t *dst = guest_mem_ptr(mem, paddr, memsz);

			if (!dst)
				return fail(err, errlen, -ENOMEM,
					    "%s: segment %u (0x%llx, %llu bytes) lies outside guest memory; give the VM more memory",
					    in->kernel_path, i, (unsigned long long)paddr,
					    (unsigned long long)memsz);
			memcpy(dst, img + off, filesz);
			memset(dst + filesz, 0, memsz - filesz);
			if (paddr + memsz > image_end)
				image_end = paddr + memsz;
		} else if (type == PT_NOTE) {
			uint64_t pos = off;

			/* Notes are 4-byte aligned: namesz, descsz, type, name, desc. */
			while (pos + 12 <= off + filesz) {
				const uint32_t *n = (const void *)(img + pos);
				uint64_t name_len = (n[0] + 3ULL) & ~3ULL;
				uint64_t desc_len = (n[1] + 3ULL) & ~3ULL;
				uint64_t desc = pos + 12 + name_len;

				if (desc + desc_len > off + filesz)
					break;
				if (n[2] == XEN_ELFNOTE_PHYS32_ENTRY && n[0] == 4 &&
				    memcmp(img + pos + 12, "Xen", 4) == 0 && n[1] >= 4) {
					uint32_t e32;

					memcpy(&e32, img + desc, 4);
					entry = e32;
				}
				pos = desc + desc_len;
			}
		}
	}
	if (!entry)
		return fail(err, errlen, -ENOEXEC,
			    "%s: ELF image has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)",
			    in->kernel_path);

	ret = write_cmdline(mem, in->cmdline, LAYOUT_CMDLINE_MAX, err, errlen);
	if (ret < 0)
		return ret;

	si = guest_mem_ptr(mem, LAYOUT_PVH_START_INFO, 4096);
	memset(si, 0, 4096);
	si->magic = HVM_START_MAGIC;
	si->version = 1;
	si->cmdline_paddr = LAYOUT_CMDLINE;
	si->rsdp_paddr = in->rsdp_gpa;

	memmap_build(mem, &mm);
	me = (void *)(si + 1);
	for (unsigned i = 0; i < mm.n; i++)
		me[i] = (struct hvm_memmap_entry){ mm.e[i].addr, mm.e[i].size, mm.e[i].type, 0 };
	si->memmap_paddr = LAYOUT_PVH_START_INFO + sizeof(*si);
	si->memmap_entries = mm.n;

	if (in->initrd_path) {
		struct hvm_modlist_entry *mod = (void *)(me + mm.n);
		uint64_t gpa, size;

		ret = load_initrd(mem, in->initrd_path, 0, image_end, &gpa, &size, err, errlen);
		if (ret < 0)
			return ret;
		*mod = (struct hvm_modlist_entry){ .paddr = gpa, .size = size };
		si->modlist_paddr = LAYOUT_PVH_START_INFO + (uint64_t)((uint8_t *)mod - (uint8_t *)si);
		si->nr_modules = 1;
	}

	setup_gdt(mem);
	return enter_protected_mode(bsp, entry, LAYOUT_PVH_START_INFO);
}

int boot_load(const struct guest_mem *mem, const struct boot_params_in *in, struct kvm_vcpu *bsp,
	      char *err, size_t errlen)
{
	uint8_t *img;
	size_t len;
	int ret = read_file(in->kernel_path, &img, &len, err, errlen);

	if (ret < 0)
		return ret;
	if (len >= 0x260 && memcmp(img + 0x202, "HdrS", 4) == 0)
		ret = load_bzimage(mem, in, img, len, bsp, err, errlen);
	else if (len >= sizeof(Elf32_Ehdr) && memcmp(img, ELFMAG, SELFMAG) == 0)
		ret = load_elf(mem, in, img, len, bsp, err, errlen);
	else
		ret = fail(err, errlen, -ENOEXEC,
			   "%s is not a kernel: neither a bzImage nor an ELF with a PVH entry note",
			   in->kernel_path);
	free(img);
	return ret;
}
