/*
 * ACPI tables for the x86 machine: RSDP, XSDT, FADT, FACS, MADT and a DSDT whose AML
 * is generated here. The FADT describes the fixed-hardware PM1a event and control
 * blocks of src/devices/acpi_pm.c, so a guest powers off by writing the \_S5 value
 * into PM1_CNT and handles the fixed power button. The MADT lists the local APICs and
 * the IOAPIC. The DSDT declares the PCI root bridge with its bus, I/O and 32-bit
 * memory windows, and COM1.
 *
 * Left out: GPE blocks, the reset register, sleep states other than S0 and S5,
 * processor objects (Linux brings CPUs up from the MADT alone), HPET, MCFG, and a
 * 64-bit PCI memory window.
 */
#ifndef CRYO_MACHINE_ACPI_H
#define CRYO_MACHINE_ACPI_H

#include <stddef.h>
#include <stdint.h>

/* SLP_TYP values the DSDT's \_S0 and \_S5 packages give the guest for PM1_CNT. */
#define ACPI_SLP_TYP_S0 0
#define ACPI_SLP_TYP_S5 5

#define ACPI_MAX_CPUS 8

struct acpi_config {
	unsigned nr_cpus;	/* 1..ACPI_MAX_CPUS, APIC ids 0..nr_cpus-1 */
	uint32_t ioapic_addr;	/* the IOAPIC's id is nr_cpus, its GSI base 0 */
	uint32_t lapic_addr;
	uint16_t pm1a_evt_port; /* 4 bytes: PM1_STS (2) then PM1_EN (2) */
	uint16_t pm1a_cnt_port; /* 2 bytes: PM1_CNT */
	uint16_t pm_tmr_port;	/* 4 bytes, 32-bit PM timer; 0 for none */
	uint8_t sci_irq;	/* ISA IRQ 1..15 other than 2, identity-mapped to its GSI */
	uint64_t pci_mmio_base; /* 32-bit PCI memory window of the root bridge */
	uint64_t pci_mmio_size;
	/*
	 * Optional: returns the GSI that INTx pin `pin` (0 = INTA .. 3 = INTD) of PCI
	 * device `slot` (1..31) on bus 0 drives, so the DSDT can carry a _PRT. When
	 * NULL there is no _PRT, and the guest must take each function's IRQ from its
	 * Interrupt Line register.
	 */
	uint32_t (*pci_intx_gsi)(unsigned slot, unsigned pin);
};

/*
 * Writes every table into `buf`, which the guest finds at `buf_gpa`. That address
 * must lie below 4 GiB and be 64-byte aligned, because the FACS must be. At 0xE0000 a
 * guest also finds the RSDP by scanning. The RSDP comes first, at `buf_gpa`, and is stored in *rsdp_gpa.
 * Returns the number of bytes used, or 0 when the tables do not fit in `buf_size`
 * or `cfg` is invalid (the reason is logged).
 */
size_t acpi_build_tables(void *buf, size_t buf_size, uint64_t buf_gpa, const struct acpi_config *cfg,
			 uint64_t *rsdp_gpa);

#endif
