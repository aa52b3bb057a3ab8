/*
 * Ring-0 part of the small test guests: per-CPU TSS, the IDT, the optional mapping of RAM above
 * 4 GiB, and the report of an unexpected exception. Every instruction here is emulated on the KVM
 * this project is tested on, so the code does the minimum and loops only over tables.
 *
 * Left out: page faults are never handled (they are reported and end the run), and RAM above
 * KERNEL_MAP_LIMIT is not mapped.
 */
#include "guest.h"

#define SEL_KCODE64 0x10
#define KSTACK_SIZE 0x4000
#define IDT_GATE_INTERRUPT 0x8e
#define TSS_TYPE_AVAILABLE 0x89

#define GIB (1ULL << 30)
#define PTE_TABLE_USER 0x07
#define PDE_USER_LARGE 0x87
/* The page-directory pages reserved below cover RAM up to this physical address. */
#define KERNEL_MAP_LIMIT (64 * GIB)
#define HIGH_PD_PAGES ((KERNEL_MAP_LIMIT - 4 * GIB) / GIB)

struct tss64 {
	uint32_t reserved0;
	uint64_t rsp0;
	uint64_t rsp1;
	uint64_t rsp2;
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iomap_base;
} __attribute__((packed));

extern uint64_t gdt_tss[GUEST_MAX_CPUS * 2];
extern uint64_t idt[256 * 2];
extern uint64_t pdpt[512];
extern uint8_t kernel_stacks[];
extern const uint64_t exception_stub_table[32];
extern const uint8_t irq_stub_lapic_timer[], irq_stub_ioapic[], irq_stub_spurious[];
extern const uint8_t gp_stub[];

void kernel_cpu_init(uint32_t cpu);
void kernel_exception(const uint64_t *frame);
int kernel_emulate_gp(uint64_t *regs);

/* Highest physical address that ring 3 can reach through the identity map. */
uint64_t guest_mapped_limit = 4 * GIB;

static struct tss64 tss[GUEST_MAX_CPUS];
static uint64_t high_pd[HIGH_PD_PAGES][512] __attribute__((aligned(4096)));

static void idt_set_gate(unsigned int vector, uint64_t handler)
{
	idt[vector * 2] = (handler & 0xffff) | ((uint64_t)SEL_KCODE64 << 16) |
			  ((uint64_t)IDT_GATE_INTERRUPT << 40) | ((handler >> 16 & 0xffff) << 48);
	idt[vector * 2 + 1] = handler >> 32;
}

static void idt_init(void)
{
	for (unsigned int v = 0; v < 32; v++)
		idt_set_gate(v, exception_stub_table[v]);
	idt_set_gate(13, (uint64_t)gp_stub);
	idt_set_gate(IRQ_VECTOR_LAPIC_TIMER, (uint64_t)irq_stub_lapic_timer);
	idt_set_gate(IRQ_VECTOR_IOAPIC, (uint64_t)irq_stub_ioapic);
	idt_set_gate(IRQ_VECTOR_SPURIOUS, (uint64_t)irq_stub_spurious);
}

static void tss_init(uint32_t cpu)
{
	uint64_t base = (uint64_t)&tss[cpu];
	uint64_t limit = sizeof(struct tss64) - 1;

	tss[cpu].rsp0 = (uint64_t)(kernel_stacks + (cpu + 1) * KSTACK_SIZE);
	tss[cpu].iomap_base = sizeof(struct tss64);
	gdt_tss[cpu * 2] = (limit & 0xffff) | ((base & 0xffffff) << 16) |
			   ((uint64_t)TSS_TYPE_AVAILABLE << 40) | ((limit >> 16 & 0xf) << 48) |
			   ((base >> 24 & 0xff) << 56);
	gdt_tss[cpu * 2 + 1] = base >> 32;
}

static bool cpu_has_1gib_pages(void)
{
	uint32_t eax = 0x80000001, ebx, ecx, edx;

	__asm__ volatile("cpuid" : "+a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx));
	return edx & (1U << 26);
}

/* End of the highest RAM range in the PVH memory map, or 0 when there is no valid map. */
static uint64_t memmap_ram_end(void)
{
	const struct hvm_start_info *si = guest_start_info();
	const struct hvm_memmap_table_entry *map;
	uint64_t end = 0;

	if (si->magic != HVM_START_MAGIC || si->version < 1 || si->memmap_paddr >= 4 * GIB)
		return 0;
	map = (const struct hvm_memmap_table_entry *)si->memmap_paddr;
	for (uint32_t i = 0; i < si->memmap_entries; i++) {
		if (map[i].type == HVM_MEMMAP_TYPE_RAM && map[i].addr + map[i].size > end)
			end = map[i].addr + map[i].size;
	}
	return end;
}

/*
 * Map RAM above 4 GiB, one whole GiB at a time, with 1 GiB pages where the CPU has them and
 * otherwise with 2 MiB pages. The new entries were not present before, so no TLB flush is needed.
 */
static void map_high_ram(void)
{
	uint64_t end = memmap_ram_end();
	uint64_t gib_count;
	bool large = cpu_has_1gib_pages();

	if (end > KERNEL_MAP_LIMIT)
		end = KERNEL_MAP_LIMIT;
	gib_count = (end + GIB - 1) / GIB;
	for (uint64_t g = 4; g < gib_count; g++) {
		if (large) {
			pdpt[g] = g * GIB + PDE_USER_LARGE;
			continue;
		}
		for (uint64_t i = 0; i < 512; i++)
			high_pd[g - 4][i] = g * GIB + (i << 21) + PDE_USER_LARGE;
		pdpt[g] = (uint64_t)high_pd[g - 4] + PTE_TABLE_USER;
	}
	if (gib_count > 4)
		guest_mapped_limit = gib_count * GIB;
}

void kernel_cpu_init(uint32_t cpu)
{
	if (cpu >= GUEST_MAX_CPUS) {
		for (;;)
			__asm__ volatile("cli; hlt");
	}
	tss_init(cpu);
	if (cpu != 0)
		return;
	idt_init();
	if (guest_map_all_ram)
		map_high_ram();
}

/* frame: vector, error code, RIP, CS, RFLAGS, RSP, SS (see exception_common in boot.S). */
void kernel_exception(const uint64_t *frame)
{
	uint64_t cr2;

	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	serial_puts("\nexception ");
	serial_put_dec(frame[0]);
	serial_puts(" error=");
	serial_put_hex64(frame[1]);
	serial_puts(" rip=");
	serial_put_hex64(frame[2]);
	serial_puts(" rsp=");
	serial_put_hex64(frame[5]);
	serial_puts(" cr2=");
	serial_put_hex64(cr2);
	serial_putc('\n');
	guest_exit(GUEST_RESULT_EXCEPTION + (uint32_t)frame[0]);
}

/* Register slots saved by gp_stub, then the CPU's frame. */
enum {
	GP_R11, GP_R10, GP_R9, GP_R8, GP_RDI, GP_RSI, GP_RDX, GP_RCX, GP_RAX,
	GP_ERROR, GP_RIP, GP_CS, GP_RFLAGS,
};

#define RFLAGS_IF (1u << 9)

static uint32_t port_in(uint16_t port, unsigned int size)
{
	uint32_t v = 0;

	if (size == 1) {
		uint8_t b;
		__asm__ volatile("inb %1, %0" : "=a"(b) : "Nd"(port));
		v = b;
	} else if (size == 2) {
		uint16_t w;
		__asm__ volatile("inw %1, %0" : "=a"(w) : "Nd"(port));
		v = w;
	} else {
		__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	}
	return v;
}

static void port_out(uint16_t port, uint32_t v, unsigned int size)
{
	if (size == 1)
		__asm__ volatile("outb %b0, %1" : : "a"(v), "Nd"(port));
	else if (size == 2)
		__asm__ volatile("outw %w0, %1" : : "a"(v), "Nd"(port));
	else
		__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

/*
 * Performs the ring-3 instruction at the faulting RIP when it is IN, OUT (DX or
 * immediate port, 8/16/32 bits), CLI or STI, and moves RIP past it. Returns 0 for
 * any other instruction, so the fault is reported.
 */
int kernel_emulate_gp(uint64_t *regs)
{
	const uint8_t *ip = (const uint8_t *)regs[GP_RIP];
	unsigned int len = 0, size = 4;
	uint16_t port = (uint16_t)regs[GP_RDX];
	uint8_t op;

	if ((regs[GP_CS] & 3) != 3)
		return 0;
	if (ip[0] == 0x66) {
		size = 2;
		len = 1;
	}
	op = ip[len++];
	switch (op) {
	case 0xe4: case 0xe5: case 0xe6: case 0xe7:
		port = ip[len++];
		break;
	case 0xec: case 0xed: case 0xee: case 0xef:
		break;
	case 0xfa:
		regs[GP_RFLAGS] &= ~(uint64_t)RFLAGS_IF;
		regs[GP_RIP] += len;
		return 1;
	case 0xfb:
		regs[GP_RFLAGS] |= RFLAGS_IF;
		regs[GP_RIP] += len;
		return 1;
	default:
		return 0;
	}
	if (!(op & 1))
		size = 1;
	if (op & 2) {
		port_out(port, (uint32_t)regs[GP_RAX], size);
	} else {
		uint64_t mask = size == 4 ? 0xffffffffULL : (1ULL << (size * 8)) - 1;
		uint64_t v = port_in(port, size);

		/* A 32-bit IN zero-extends into RAX; 8- and 16-bit ones keep the upper bits. */
		regs[GP_RAX] = size == 4 ? v : (regs[GP_RAX] & ~mask) | v;
	}
	regs[GP_RIP] += len;
	return 1;
}
