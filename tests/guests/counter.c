/*
 * Deterministic workload for checkpoint/restore tests. Each CPU runs a 64-bit LCG (Knuth's MMIX
 * constants) in ring 3. After every COUNTER_ITERATIONS steps it fills one 4 KiB page of its data
 * area from the state, and CPU 0 prints "tick K s=HEX". After COUNTER_TICKS ticks CPU 0 prints an
 * FNV-1a digest of the whole data area and writes result 0. The output depends only on the
 * arithmetic, never on timing, so a run restored from any checkpoint prints the same bytes.
 *
 * Built with COUNTER_CPUS=2 as counter-smp: CPU 0 starts CPU 1 with INIT-SIPI-SIPI through the
 * xAPIC (MMIO from ring 3, since the identity map is user-accessible), both CPUs meet at a spin
 * barrier after each tick, and CPU 0 prints both states. Only CPU 0 prints.
 */
#include "guest.h"

#ifndef COUNTER_CPUS
#define COUNTER_CPUS 1
#endif

#define COUNTER_ITERATIONS 2000000
#define COUNTER_TICKS 200
#define PAGE_SIZE 4096
#define LCG_MULTIPLIER 6364136223846793005ULL
#define LCG_INCREMENT 1442695040888963407ULL
#define FNV_OFFSET_BASIS 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static uint8_t data_area[COUNTER_CPUS][COUNTER_TICKS][PAGE_SIZE]
	__attribute__((aligned(PAGE_SIZE)));

/* Per-CPU state after each tick, and the last tick each CPU has finished (barrier arrivals). */
static uint64_t tick_state[COUNTER_CPUS][COUNTER_TICKS + 1];
static volatile uint32_t ticks_done[COUNTER_CPUS];

static uint64_t lcg_run(uint64_t s, uint32_t steps)
{
	for (uint32_t i = 0; i < steps; i++)
		s = s * LCG_MULTIPLIER + LCG_INCREMENT;
	return s;
}

static void page_fill(uint64_t *page, uint64_t s)
{
	for (uint64_t i = 0; i < PAGE_SIZE / sizeof(uint64_t); i++)
		page[i] = s ^ (i * 0x9e3779b97f4a7c15ULL);
}

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
	uint64_t h = FNV_OFFSET_BASIS;

	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= FNV_PRIME;
	}
	return h;
}

/* Wait until every CPU has finished tick k. Arrivals only grow, so the barrier needs no reset. */
static void barrier_wait(uint32_t k)
{
	for (int c = 0; c < COUNTER_CPUS; c++) {
		while (__atomic_load_n(&ticks_done[c], __ATOMIC_ACQUIRE) < k)
			cpu_relax();
	}
}

/* Compute COUNTER_TICKS ticks of CPU cpu's stream. CPU 0 also prints after each barrier. */
static void counter_run(uint32_t cpu)
{
	uint64_t s = cpu;

	for (uint32_t k = 1; k <= COUNTER_TICKS; k++) {
		s = lcg_run(s, COUNTER_ITERATIONS);
		page_fill((uint64_t *)data_area[cpu][k - 1], s);
		tick_state[cpu][k] = s;
		__atomic_store_n(&ticks_done[cpu], k, __ATOMIC_RELEASE);
		barrier_wait(k);
		if (cpu != 0)
			continue;

		serial_puts("tick ");
		serial_put_dec(k);
		if (COUNTER_CPUS == 1) {
			serial_puts(" s=");
			serial_put_hex64(tick_state[0][k]);
		} else {
			serial_puts(" s0=");
			serial_put_hex64(tick_state[0][k]);
			serial_puts(" s1=");
			serial_put_hex64(tick_state[1][k]);
		}
		serial_putc('\n');
	}
}

#if COUNTER_CPUS > 1
#define LAPIC_SVR 0xf0
#define LAPIC_ICR_LOW 0x300
#define LAPIC_ICR_HIGH 0x310
#define LAPIC_ICR_BUSY (1U << 12)
#define ICR_INIT_ASSERT 0x4500
#define ICR_STARTUP 0x4600
#define AP_TRAMPOLINE_ADDR 0x8000
/* TSC ticks to wait: between INIT and SIPI, before a second SIPI, and for the AP at most. */
#define INIT_DELAY_TSC 10000000ULL
#define SIPI_DELAY_TSC 1000000ULL
#define AP_START_TIMEOUT_TSC 20000000000ULL

static volatile uint32_t ap_started;

static void tsc_delay(uint64_t ticks)
{
	uint64_t start = rdtsc();

	while (rdtsc() - start < ticks)
		cpu_relax();
}

static void lapic_send_ipi(uint32_t apic_id, uint32_t icr_low)
{
	mmio_write32(LAPIC_BASE + LAPIC_ICR_HIGH, apic_id << 24);
	mmio_write32(LAPIC_BASE + LAPIC_ICR_LOW, icr_low);
	for (int i = 0; i < 1000 && (mmio_read32(LAPIC_BASE + LAPIC_ICR_LOW) & LAPIC_ICR_BUSY); i++)
		cpu_relax();
}

/*
 * Start CPU 1 (APIC ID 1) at the real-mode trampoline with INIT, a delay, then a startup IPI.
 * A second startup IPI is sent only if CPU 1 has not reached ring 3 after the first.
 */
static bool ap_start(void)
{
	uint64_t start;

	memcpy((void *)AP_TRAMPOLINE_ADDR, ap_trampoline_start,
	       (size_t)(ap_trampoline_end - ap_trampoline_start));
	boot_ap_cpu = 1;
	mmio_write32(LAPIC_BASE + LAPIC_SVR, 0x100 | IRQ_VECTOR_SPURIOUS);

	lapic_send_ipi(1, ICR_INIT_ASSERT);
	tsc_delay(INIT_DELAY_TSC);
	lapic_send_ipi(1, ICR_STARTUP | AP_TRAMPOLINE_ADDR >> 12);
	tsc_delay(SIPI_DELAY_TSC);
	if (!ap_started)
		lapic_send_ipi(1, ICR_STARTUP | AP_TRAMPOLINE_ADDR >> 12);

	start = rdtsc();
	while (!__atomic_load_n(&ap_started, __ATOMIC_ACQUIRE)) {
		if (rdtsc() - start > AP_START_TIMEOUT_TSC)
			return false;
		cpu_relax();
	}
	return true;
}

void guest_ap_main(uint32_t cpu)
{
	__atomic_store_n(&ap_started, 1, __ATOMIC_RELEASE);
	counter_run(cpu);
}
#endif

int guest_main(const struct hvm_start_info *si)
{
	memset(data_area, 0, sizeof(data_area));
#if COUNTER_CPUS > 1
	if (!ap_start()) {
		serial_puts("cpu 1 did not start\n");
		return GUEST_RESULT_FAIL;
	}
#endif
	counter_run(0);
	serial_puts("done digest=");
	serial_put_hex64(fnv1a(&data_area[0][0][0], sizeof(data_area)));
	serial_putc('\n');
	return GUEST_RESULT_PASS;
}
