/*
 * Console, result port and small runtime of the small test guests. Everything here runs in ring 3
 * (IOPL 3 allows the port I/O) and is also used by the ring-0 exception report.
 */
#include "guest.h"

/* Polls of LSR.THRE before a byte is written anyway: a VMM's UART may never clear the bit. */
#define SERIAL_THRE_POLLS 8

volatile uint64_t irq_count_lapic_timer, irq_count_ioapic;

__attribute__((weak)) const bool guest_map_all_ram = false;

void guest_user_entry(uint32_t cpu);

void serial_putc(char c)
{
	for (int i = 0; i < SERIAL_THRE_POLLS; i++) {
		if (inb(UART_LSR) & UART_LSR_THRE)
			break;
	}
	outb(COM1_BASE, (uint8_t)c);
}

void serial_puts(const char *s)
{
	while (*s)
		serial_putc(*s++);
}

void serial_put_hex64(uint64_t value)
{
	static const char digits[] = "0123456789abcdef";

	for (int shift = 60; shift >= 0; shift -= 4)
		serial_putc(digits[value >> shift & 0xf]);
}

void serial_put_dec(uint64_t value)
{
	char buf[21];
	int n = 0;

	do {
		buf[n++] = (char)('0' + value % 10);
		value /= 10;
	} while (value);
	while (n)
		serial_putc(buf[--n]);
}

bool serial_byte_ready(void)
{
	return inb(UART_LSR) & UART_LSR_DATA_READY;
}

uint8_t serial_read_byte(void)
{
	return inb(COM1_BASE);
}

void guest_exit(uint32_t result)
{
	outl(GUEST_RESULT_PORT, result);
	/* Reached only when the VMM ignores the result port. */
	for (;;)
		cpu_relax();
}

const struct hvm_start_info *guest_start_info(void)
{
	return (const struct hvm_start_info *)(uintptr_t)boot_start_info;
}

void *memset(void *dst, int c, size_t n)
{
	uint8_t *d = dst;

	while (n--)
		*d++ = (uint8_t)c;
	return dst;
}

void *memcpy(void *dst, const void *src, size_t n)
{
	uint8_t *d = dst;
	const uint8_t *s = src;

	while (n--)
		*d++ = *s++;
	return dst;
}

__attribute__((weak)) void guest_ap_main(uint32_t cpu)
{
	for (;;)
		cpu_relax();
}

/* Ring-3 entry from boot.S: CPU 0 runs the guest, the others run guest_ap_main. */
void guest_user_entry(uint32_t cpu)
{
	const struct hvm_start_info *si = guest_start_info();

	if (cpu != 0) {
		guest_ap_main(cpu);
		for (;;)
			cpu_relax();
	}
	if (si->magic != HVM_START_MAGIC) {
		serial_puts("bad hvm_start_info magic\n");
		guest_exit(GUEST_RESULT_BAD_BOOT);
	}
	guest_exit((uint32_t)guest_main(si));
}
