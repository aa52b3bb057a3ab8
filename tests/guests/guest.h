/*
 * Shared declarations for the small test guests: the PVH start-info layout, port I/O, the serial
 * console, the result port, and the symbols that boot.S and the ring-0 handlers export.
 *
 * Every guest runs its work in ring 3 of long mode with IOPL 3, so port I/O, cli/sti, rdtsc and the
 * identity-mapped local APIC and IOAPIC are usable from user code. Ring 0 runs only the boot path,
 * exception reports and interrupt handlers, because each ring-0 instruction is emulated (about
 * 1 us) on the KVM this project is tested on.
 */
#ifndef GUEST_H
#define GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GUEST_MAX_CPUS 2

/* Port of the result register: a 32-bit write of a value 0..99 ends the run with that result. */
#define GUEST_RESULT_PORT 0x501
#define GUEST_RESULT_PASS 0
#define GUEST_RESULT_FAIL 1
#define GUEST_RESULT_BAD_BOOT 2
/* An unexpected exception ends the run with this value plus the vector number (64..95). */
#define GUEST_RESULT_EXCEPTION 64

#define COM1_BASE 0x3f8
#define UART_LSR (COM1_BASE + 5)
#define UART_LSR_DATA_READY 0x01
#define UART_LSR_THRE 0x20

#define LAPIC_BASE 0xfee00000UL
#define IOAPIC_BASE 0xfec00000UL

/* struct hvm_start_info from Xen's public/arch-x86/hvm/start_info.h (version 1 adds the memmap). */
#define HVM_START_MAGIC 0x336ec578
#define HVM_MEMMAP_TYPE_RAM 1

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

struct hvm_memmap_table_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};

/* Physical address of the start info, stored by the PVH entry point from EBX. */
extern uint32_t boot_start_info;
/* Index that the next application processor started by INIT-SIPI-SIPI takes as its CPU number. */
extern volatile uint32_t boot_ap_cpu;
/* Real-mode AP entry code, copied below 1 MiB before the SIPI (see boot.S). */
extern const uint8_t ap_trampoline_start[], ap_trampoline_end[];

static inline void outb(uint16_t port, uint8_t value)
{
	__asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port));
}

static inline void outl(uint16_t port, uint32_t value)
{
	__asm__ volatile("outl %0, %1" : : "a"(value), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t value;

	__asm__ volatile("inb %1, %0" : "=a"(value) : "Nd"(port));
	return value;
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static inline void cpu_relax(void)
{
	__asm__ volatile("pause" ::: "memory");
}

static inline uint32_t mmio_read32(uintptr_t addr)
{
	return *(volatile uint32_t *)addr;
}

static inline void mmio_write32(uintptr_t addr, uint32_t value)
{
	*(volatile uint32_t *)addr = value;
}

/* lib.c: usable from ring 3 (IOPL 3) and from ring 0. */
void serial_putc(char c);
void serial_puts(const char *s);
void serial_put_hex64(uint64_t value);
void serial_put_dec(uint64_t value);
bool serial_byte_ready(void);
uint8_t serial_read_byte(void);
__attribute__((noreturn)) void guest_exit(uint32_t result);
const struct hvm_start_info *guest_start_info(void);
void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);

/*
 * Entry points each guest defines. guest_main runs in ring 3 on CPU 0, and its return value is
 * written to the result port. guest_ap_main runs in ring 3 on every started application processor,
 * and the default (weak) one spins forever.
 */
int guest_main(const struct hvm_start_info *si);
void guest_ap_main(uint32_t cpu);

/*
 * Flag that a guest sets to true when it needs all RAM of the memory map mapped, because boot.S
 * maps only the low 4 GiB. The boot CPU then maps the rest in ring 0 before it enters ring 3.
 */
extern const bool guest_map_all_ram;

/* Interrupt counters, incremented by the ring-0 handlers of vectors 0x30 and 0x31. */
extern volatile uint64_t irq_count_lapic_timer, irq_count_ioapic;
#define IRQ_VECTOR_LAPIC_TIMER 0x30
#define IRQ_VECTOR_IOAPIC 0x31
#define IRQ_VECTOR_SPURIOUS 0xff

#endif
