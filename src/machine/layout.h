/*
 * The guest-physical memory map cryo gives every VM. RAM fills [0, 3 GiB) and
 * continues at 4 GiB; the gap holds the PCI window and the interrupt controllers,
 * as on a PC. Boot structures sit in the low 1 MiB, away from where a kernel or a
 * test guest is loaded.
 */
#ifndef CRYO_MACHINE_LAYOUT_H
#define CRYO_MACHINE_LAYOUT_H

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

#define LAYOUT_LOW_RAM_MAX (3 * GiB)	 /* RAM below the PCI hole ends here at most */
#define LAYOUT_HIGH_RAM_BASE (4 * GiB) /* the rest of RAM starts here */

#define LAYOUT_PCI_MMIO_BASE 0xC0000000ULL
#define LAYOUT_PCI_MMIO_SIZE (0xFEC00000ULL - LAYOUT_PCI_MMIO_BASE)
#define LAYOUT_IOAPIC_BASE 0xFEC00000ULL
#define LAYOUT_LAPIC_BASE 0xFEE00000ULL

/* Low memory used while booting; the e820 map marks 0x9f000..1 MiB reserved. */
#define LAYOUT_GDT 0x500ULL
#define LAYOUT_PVH_START_INFO 0x6000ULL
#define LAYOUT_ZERO_PAGE 0x7000ULL /* Linux boot_params */
#define LAYOUT_BOOT_STACK 0x8ff0ULL
#define LAYOUT_PML4 0x9000ULL
#define LAYOUT_PDPT 0xA000ULL
#define LAYOUT_PD 0xB000ULL /* four pages: identity map of the first 4 GiB */
#define LAYOUT_CMDLINE 0x20000ULL
#define LAYOUT_CMDLINE_MAX 0x10000ULL
#define LAYOUT_EBDA 0x9F000ULL
#define LAYOUT_ACPI_BASE 0xE0000ULL
#define LAYOUT_ACPI_SIZE 0x20000ULL
#define LAYOUT_KERNEL_BASE 0x100000ULL

/* Fixed I/O ports of the machine. */
#define PORT_COM1 0x3F8
#define IRQ_COM1 4
#define PORT_ACPI_PM1_EVT 0x600
#define PORT_ACPI_PM1_CNT 0x604
#define PORT_ACPI_PM_TMR 0x608
#define IRQ_ACPI_SCI 9
/* A 32-bit write here ends a small test guest with that result (see docs/CONTROL.md). */
#define PORT_TEST_RESULT 0x501

#endif
