/*
 * Interrupt delivery check: runs the local APIC timer in periodic mode and PIT channel 0 routed
 * through the IOAPIC, enables interrupts from ring 3 (IOPL 3 allows sti), and waits until each
 * source has delivered IRQTEST_COUNT interrupts to its ring-0 handler. Prints "irq ok", or
 * "irq timeout lapic=N ioapic=M" and result 1 when either source falls short within
 * IRQTEST_TIMEOUT_TSC TSC ticks.
 *
 * The PIT is ISA IRQ 0, which QEMU wires to IOAPIC pin 2 and other VMMs may wire to pin 0. Both
 * pins are programmed with the same vector, so the test passes with either wiring. The 8259 PICs
 * and LINT0 are masked so that the legacy path cannot deliver the same ticks.
 */
#include "guest.h"

#define IRQTEST_COUNT 20
#define IRQTEST_TIMEOUT_TSC 40000000000ULL

#define LAPIC_SVR 0xf0
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_LVT_LINT0 0x350
#define LAPIC_TIMER_INITIAL 0x380
#define LAPIC_TIMER_DIVIDE 0x3e0
#define LVT_MASKED (1U << 16)
#define LVT_TIMER_PERIODIC (1U << 17)
#define LAPIC_TIMER_DIVIDE_BY_16 0x3
#define LAPIC_TIMER_COUNT 100000

#define IOAPIC_REGSEL 0x00
#define IOAPIC_WINDOW 0x10
#define IOAPIC_REDIRECTION_LOW(pin) (0x10 + 2 * (pin))
#define IOAPIC_REDIRECTION_HIGH(pin) (0x11 + 2 * (pin))
#define IOAPIC_MASKED (1U << 16)

#define PIT_CHANNEL0 0x40
#define PIT_COMMAND 0x43
#define PIT_CH0_RATE_GENERATOR 0x34
#define PIT_DIVISOR_1KHZ 1193

static void ioapic_write(uint32_t reg, uint32_t value)
{
	mmio_write32(IOAPIC_BASE + IOAPIC_REGSEL, reg);
	mmio_write32(IOAPIC_BASE + IOAPIC_WINDOW, value);
}

/* Route an edge-triggered, active-high pin to `vector` on APIC ID 0, or mask it. */
static void ioapic_route(uint32_t pin, uint32_t vector, bool masked)
{
	ioapic_write(IOAPIC_REDIRECTION_HIGH(pin), 0);
	ioapic_write(IOAPIC_REDIRECTION_LOW(pin), vector | (masked ? IOAPIC_MASKED : 0));
}

static void sources_start(void)
{
	outb(0x21, 0xff);
	outb(0xa1, 0xff);
	mmio_write32(LAPIC_BASE + LAPIC_SVR, 0x100 | IRQ_VECTOR_SPURIOUS);
	mmio_write32(LAPIC_BASE + LAPIC_LVT_LINT0, LVT_MASKED);

	mmio_write32(LAPIC_BASE + LAPIC_TIMER_DIVIDE, LAPIC_TIMER_DIVIDE_BY_16);
	mmio_write32(LAPIC_BASE + LAPIC_LVT_TIMER, LVT_TIMER_PERIODIC | IRQ_VECTOR_LAPIC_TIMER);
	mmio_write32(LAPIC_BASE + LAPIC_TIMER_INITIAL, LAPIC_TIMER_COUNT);

	ioapic_route(0, IRQ_VECTOR_IOAPIC, false);
	ioapic_route(2, IRQ_VECTOR_IOAPIC, false);
	outb(PIT_COMMAND, PIT_CH0_RATE_GENERATOR);
	outb(PIT_CHANNEL0, PIT_DIVISOR_1KHZ & 0xff);
	outb(PIT_CHANNEL0, PIT_DIVISOR_1KHZ >> 8);
}

static void sources_stop(void)
{
	mmio_write32(LAPIC_BASE + LAPIC_LVT_TIMER, LVT_MASKED | IRQ_VECTOR_LAPIC_TIMER);
	mmio_write32(LAPIC_BASE + LAPIC_TIMER_INITIAL, 0);
	ioapic_route(0, IRQ_VECTOR_IOAPIC, true);
	ioapic_route(2, IRQ_VECTOR_IOAPIC, true);
}

int guest_main(const struct hvm_start_info *si)
{
	uint64_t start;
	bool done = false;

	sources_start();
	start = rdtsc();
	__asm__ volatile("sti" ::: "memory");
	while (!done && rdtsc() - start < IRQTEST_TIMEOUT_TSC) {
		done = irq_count_lapic_timer >= IRQTEST_COUNT && irq_count_ioapic >= IRQTEST_COUNT;
		cpu_relax();
	}
	__asm__ volatile("cli" ::: "memory");
	sources_stop();

	if (done) {
		serial_puts("irq ok\n");
		return GUEST_RESULT_PASS;
	}
	serial_puts("irq timeout lapic=");
	serial_put_dec(irq_count_lapic_timer);
	serial_puts(" ioapic=");
	serial_put_dec(irq_count_ioapic);
	serial_putc('\n');
	return GUEST_RESULT_FAIL;
}
