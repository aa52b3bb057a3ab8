/*
 * Tests of the ACPI tables (src/machine/acpi.c) and the fixed-hardware PM registers
 * (src/devices/acpi_pm.c). The tables are checked byte by byte, and the DSDT's AML is
 * parsed just far enough to find \_S5 and _PRT. The PM device is driven through a
 * real port bus with a recording interrupt sink.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/acpi_pm.h"
#include "devices/bus.h"
#include "machine/acpi.h"

#define TABLES_GPA 0xE0000ULL
#define TABLES_SIZE 0x20000

/* ---- helpers for the tables ---- */

static uint8_t tables[TABLES_SIZE];

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)get16(p) | (uint32_t)get16(p + 2) << 16;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static uint8_t sum_bytes(const uint8_t *p, size_t n)
{
	uint8_t sum = 0;

	while (n--)
		sum += *p++;
	return sum;
}

static uint32_t intx_gsi(unsigned slot, unsigned pin)
{
	return ((slot + pin) & 1) ? 11 : 10;
}

static struct acpi_config test_config(unsigned nr_cpus)
{
	return (struct acpi_config){
		.nr_cpus = nr_cpus,
		.ioapic_addr = 0xFEC00000,
		.lapic_addr = 0xFEE00000,
		.pm1a_evt_port = 0x600,
		.pm1a_cnt_port = 0x604,
		.pm_tmr_port = 0x608,
		.sci_irq = 9,
		.pci_mmio_base = 0xC0000000,
		.pci_mmio_size = 0x3EC00000,
		.pci_intx_gsi = intx_gsi,
	};
}

static size_t build(const struct acpi_config *cfg)
{
	uint64_t rsdp_gpa = 0;
	size_t used;

	memset(tables, 0xAA, sizeof(tables));
	used = acpi_build_tables(tables, sizeof(tables), TABLES_GPA, cfg, &rsdp_gpa);
	assert_true(used > 0);
	assert_int_equal(rsdp_gpa, TABLES_GPA);
	return used;
}

/* Returns the table at guest address `gpa` after checking that it lies in the buffer. */
static const uint8_t *table_at(uint64_t gpa, size_t used)
{
	const uint8_t *t;

	assert_true(gpa >= TABLES_GPA);
	assert_true(gpa - TABLES_GPA + 36 <= used);
	t = tables + (gpa - TABLES_GPA);
	assert_true(gpa - TABLES_GPA + get32(t + 4) <= used);
	return t;
}

static void assert_table(const uint8_t *t, const char *signature)
{
	assert_memory_equal(t, signature, 4);
	assert_true(get32(t + 4) >= 36);
	assert_int_equal(sum_bytes(t, get32(t + 4)), 0);
}

/* Finds the XSDT entry whose table has `signature`. */
static const uint8_t *find_table(const char *signature, size_t used)
{
	const uint8_t *xsdt = table_at(get64(tables + 24), used);
	unsigned n = (get32(xsdt + 4) - 36) / 8;

	for (unsigned i = 0; i < n; i++) {
		const uint8_t *t = table_at(get64(xsdt + 36 + 8 * i), used);

		if (memcmp(t, signature, 4) == 0)
			return t;
	}
	fail_msg("table %s not in the XSDT", signature);
	return NULL;
}

/* ---- tables ---- */

static void rsdp_checksums_and_signature(void **state)
{
	struct acpi_config cfg = test_config(1);
	size_t used = build(&cfg);

	assert_memory_equal(tables, "RSD PTR ", 8);
	assert_int_equal(tables[15], 2);
	assert_int_equal(get32(tables + 20), 36);
	assert_int_equal(sum_bytes(tables, 20), 0);
	assert_int_equal(sum_bytes(tables, 36), 0);
	assert_int_equal(TABLES_GPA % 16, 0);
	assert_true(used <= TABLES_SIZE);
}

static void xsdt_lists_fadt_and_madt(void **state)
{
	struct acpi_config cfg = test_config(2);
	size_t used = build(&cfg);
	const uint8_t *xsdt = table_at(get64(tables + 24), used);

	assert_table(xsdt, "XSDT");
	assert_int_equal(get32(xsdt + 4), 36 + 2 * 8);
	assert_table(table_at(get64(xsdt + 36), used), "FACP");
	assert_table(table_at(get64(xsdt + 44), used), "APIC");
}

static void fadt_points_to_dsdt_and_facs(void **state)
{
	struct acpi_config cfg = test_config(2);
	size_t used = build(&cfg);
	const uint8_t *fadt = find_table("FACP", used);
	const uint8_t *facs, *dsdt;

	assert_int_equal(get32(fadt + 4), 276);
	assert_int_not_equal(get32(fadt + 36), 0); /* FIRMWARE_CTRL */
	assert_int_equal(get64(fadt + 132), 0);	    /* X_FIRMWARE_CTRL must then be 0 */
	assert_int_equal(get32(fadt + 40), get64(fadt + 140)); /* DSDT, X_DSDT */

	facs = tables + (get32(fadt + 36) - TABLES_GPA);
	assert_int_equal(get32(fadt + 36) % 64, 0);
	assert_memory_equal(facs, "FACS", 4);
	assert_int_equal(get32(facs + 4), 64);

	dsdt = table_at(get32(fadt + 40), used);
	assert_table(dsdt, "DSDT");
}

static void fadt_describes_pm_blocks(void **state)
{
	struct acpi_config cfg = test_config(1);
	size_t used = build(&cfg);
	const uint8_t *fadt = find_table("FACP", used);

	assert_int_equal(get16(fadt + 46), 9);	   /* SCI_INT */
	assert_int_equal(get32(fadt + 48), 0);	   /* SMI_CMD: always in ACPI mode */
	assert_int_equal(get32(fadt + 56), 0x600); /* PM1a_EVT_BLK */
	assert_int_equal(get32(fadt + 64), 0x604); /* PM1a_CNT_BLK */
	assert_int_equal(get32(fadt + 76), 0x608); /* PM_TMR_BLK */
	assert_int_equal(fadt[88], 4);
	assert_int_equal(fadt[89], 2);
	assert_int_equal(fadt[91], 4);
	assert_int_equal(get32(fadt + 112) & (1u << 4), 0); /* fixed power button */
	assert_int_not_equal(get32(fadt + 112) & (1u << 8), 0); /* 32-bit timer */
	/* X_PM1a_EVT_BLK: system I/O, 32 bits wide. */
	assert_int_equal(fadt[148], 1);
	assert_int_equal(fadt[149], 32);
	assert_int_equal(get64(fadt + 152), 0x600);
	assert_int_equal(get64(fadt + 176), 0x604);
	assert_int_equal(get64(fadt + 212), 0x608);
}

static void fadt_without_pm_timer(void **state)
{
	struct acpi_config cfg = test_config(1);
	const uint8_t *fadt;
	size_t used;

	cfg.pm_tmr_port = 0;
	used = build(&cfg);
	fadt = find_table("FACP", used);
	assert_int_equal(get32(fadt + 76), 0);
	assert_int_equal(fadt[91], 0);
	assert_int_equal(get64(fadt + 212), 0);
	assert_int_equal(get32(fadt + 112) & (1u << 8), 0);
}

struct madt_counts {
	unsigned lapic, ioapic, iso, nmi, other;
	unsigned ioapic_id;
	uint32_t irq0_gsi;
	uint16_t sci_flags;
	unsigned lapic_ids_seen; /* bit per APIC id */
};

static struct madt_counts madt_count(const uint8_t *madt)
{
	struct madt_counts c = { 0 };
	uint32_t len = get32(madt + 4);
	uint32_t off = 44;

	while (off < len) {
		const uint8_t *e = madt + off;

		assert_true(off + 2 <= len);
		assert_true(e[1] >= 2);
		assert_true(off + e[1] <= len);
		switch (e[0]) {
		case 0:
			assert_int_equal(e[1], 8);
			c.lapic++;
			c.lapic_ids_seen |= 1u << e[3];
			assert_int_equal(get32(e + 4), 1);
			break;
		case 1:
			assert_int_equal(e[1], 12);
			c.ioapic++;
			c.ioapic_id = e[2];
			assert_int_equal(get32(e + 4), 0xFEC00000);
			assert_int_equal(get32(e + 8), 0);
			break;
		case 2:
			assert_int_equal(e[1], 10);
			c.iso++;
			if (e[3] == 0)
				c.irq0_gsi = get32(e + 4);
			if (e[3] == 9) {
				assert_int_equal(get32(e + 4), 9);
				c.sci_flags = get16(e + 8);
			}
			break;
		case 4:
			assert_int_equal(e[1], 6);
			c.nmi++;
			break;
		default:
			c.other++;
		}
		off += e[1];
	}
	assert_int_equal(off, len);
	return c;
}

static void madt_entries_one_cpu(void **state)
{
	struct acpi_config cfg = test_config(1);
	size_t used = build(&cfg);
	const uint8_t *madt = find_table("APIC", used);
	struct madt_counts c;

	assert_table(madt, "APIC");
	assert_int_equal(get32(madt + 36), 0xFEE00000);
	c = madt_count(madt);
	assert_int_equal(c.lapic, 1);
	assert_int_equal(c.lapic_ids_seen, 0x1);
	assert_int_equal(c.ioapic, 1);
	assert_int_equal(c.ioapic_id, 1);
	assert_int_equal(c.iso, 2);
	assert_int_equal(c.irq0_gsi, 2);
	assert_int_equal(c.sci_flags, 0xD); /* level-triggered, active-high */
	assert_int_equal(c.nmi, 1);
	assert_int_equal(c.other, 0);
}

static void madt_entries_eight_cpus(void **state)
{
	struct acpi_config cfg = test_config(8);
	size_t used = build(&cfg);
	const uint8_t *madt = find_table("APIC", used);
	struct madt_counts c;

	assert_table(madt, "APIC");
	c = madt_count(madt);
	assert_int_equal(c.lapic, 8);
	assert_int_equal(c.lapic_ids_seen, 0xFF);
	assert_int_equal(c.ioapic, 1);
	assert_int_equal(c.ioapic_id, 8);
	assert_int_equal(c.iso, 2);
	assert_int_equal(c.nmi, 1);
}

/* ---- AML, parsed just far enough ---- */

/* Decodes a PkgLength at p; stores its encoded size in *nbytes and returns the length. */
static uint32_t aml_pkg_length(const uint8_t *p, unsigned *nbytes)
{
	unsigned follow = p[0] >> 6;
	uint32_t len;

	if (follow == 0) {
		*nbytes = 1;
		return p[0] & 0x3F;
	}
	len = p[0] & 0xF;
	for (unsigned i = 0; i < follow; i++)
		len |= (uint32_t)p[1 + i] << (4 + 8 * i);
	*nbytes = 1 + follow;
	return len;
}

/* Decodes an integer data object at p; stores its size in *size. */
static uint64_t aml_integer(const uint8_t *p, unsigned *size)
{
	switch (p[0]) {
	case 0x00:
		*size = 1;
		return 0;
	case 0x01:
		*size = 1;
		return 1;
	case 0x0A:
		*size = 2;
		return p[1];
	case 0x0B:
		*size = 3;
		return get16(p + 1);
	case 0x0C:
		*size = 5;
		return get32(p + 1);
	case 0x0E:
		*size = 9;
		return get64(p + 1);
	}
	fail_msg("not an AML integer: opcode 0x%02x", p[0]);
	return 0;
}

/* Returns the offset of `needle` in the DSDT's body, or 0 when absent. */
static size_t dsdt_find(const uint8_t *dsdt, const void *needle, size_t n)
{
	uint32_t len = get32(dsdt + 4);

	for (size_t off = 36; off + n <= len; off++) {
		if (memcmp(dsdt + off, needle, n) == 0)
			return off;
	}
	return 0;
}

static const uint8_t *built_dsdt(const struct acpi_config *cfg)
{
	size_t used = build(cfg);
	const uint8_t *fadt = find_table("FACP", used);

	return table_at(get32(fadt + 40), used);
}

static void dsdt_s5_package(void **state)
{
	struct acpi_config cfg = test_config(2);
	const uint8_t *dsdt = built_dsdt(&cfg);
	static const uint8_t name_s5[] = { 0x08, '\\', '_', 'S', '5', '_', 0x12 };
	size_t off = dsdt_find(dsdt, name_s5, sizeof(name_s5));
	const uint8_t *p, *end;
	unsigned nbytes, size;
	uint32_t pkg_len;

	assert_int_not_equal(off, 0);
	p = dsdt + off + sizeof(name_s5);
	pkg_len = aml_pkg_length(p, &nbytes);
	end = p + pkg_len;
	assert_true(end <= dsdt + get32(dsdt + 4));
	p += nbytes;
	assert_int_equal(*p++, 4); /* NumElements */

	assert_int_equal(aml_integer(p, &size), ACPI_SLP_TYP_S5); /* PM1a SLP_TYP */
	p += size;
	assert_int_equal(aml_integer(p, &size), ACPI_SLP_TYP_S5); /* PM1b SLP_TYP */
	p += size;
	for (int i = 0; i < 2; i++) {
		assert_int_equal(aml_integer(p, &size), 0);
		p += size;
	}
	assert_ptr_equal(p, end);
}

static void dsdt_pci_root_and_routing(void **state)
{
	struct acpi_config cfg = test_config(2);
	const uint8_t *dsdt = built_dsdt(&cfg);
	/* Name(_HID, EisaId("PNP0A03")) */
	static const uint8_t pci_hid[] = { 0x08, '_', 'H', 'I', 'D', 0x0C, 0x41, 0xD0, 0x0A, 0x03 };
	/* Package(4) { 0x0001FFFF, 0, 0, GSI } is the first _PRT entry. */
	static const uint8_t prt[] = { 0x08, '_', 'P', 'R', 'T', 0x12 };
	size_t off;
	const uint8_t *p;
	unsigned nbytes, size;

	assert_int_not_equal(dsdt_find(dsdt, pci_hid, sizeof(pci_hid)), 0);
	off = dsdt_find(dsdt, prt, sizeof(prt));
	assert_int_not_equal(off, 0);
	p = dsdt + off + sizeof(prt);
	aml_pkg_length(p, &nbytes);
	p += nbytes;
	assert_int_equal(*p++, 31 * 4);
	assert_int_equal(*p++, 0x12);
	aml_pkg_length(p, &nbytes);
	p += nbytes;
	assert_int_equal(*p++, 4);
	assert_int_equal(aml_integer(p, &size), 0x0001FFFF);
	p += size;
	assert_int_equal(aml_integer(p, &size), 0); /* INTA */
	p += size;
	assert_int_equal(aml_integer(p, &size), 0);
	p += size;
	assert_int_equal(aml_integer(p, &size), intx_gsi(1, 0));
}

static void dsdt_without_routing(void **state)
{
	struct acpi_config cfg = test_config(2);
	const uint8_t *dsdt;

	cfg.pci_intx_gsi = NULL;
	dsdt = built_dsdt(&cfg);
	assert_table(dsdt, "DSDT");
	assert_int_equal(dsdt_find(dsdt, "_PRT", 4), 0);
	assert_int_not_equal(dsdt_find(dsdt, "_S5_", 4), 0);
}

static void tables_overflow_returns_zero(void **state)
{
	struct acpi_config cfg = test_config(8);
	uint64_t rsdp_gpa = 0;
	size_t used = build(&cfg);

	assert_int_equal(acpi_build_tables(tables, used - 1, TABLES_GPA, &cfg, &rsdp_gpa), 0);
	assert_int_equal(acpi_build_tables(tables, 100, TABLES_GPA, &cfg, &rsdp_gpa), 0);
	assert_int_equal(acpi_build_tables(tables, used, TABLES_GPA, &cfg, &rsdp_gpa), used);
}

static void tables_invalid_config(void **state)
{
	struct acpi_config cfg = test_config(0);
	uint64_t rsdp_gpa = 0;

	assert_int_equal(acpi_build_tables(tables, sizeof(tables), TABLES_GPA, &cfg, &rsdp_gpa), 0);
	cfg = test_config(9);
	assert_int_equal(acpi_build_tables(tables, sizeof(tables), TABLES_GPA, &cfg, &rsdp_gpa), 0);
	cfg = test_config(1);
	cfg.sci_irq = 2;
	assert_int_equal(acpi_build_tables(tables, sizeof(tables), TABLES_GPA, &cfg, &rsdp_gpa), 0);
	cfg = test_config(1);
	assert_int_equal(acpi_build_tables(tables, sizeof(tables), TABLES_GPA + 8, &cfg, &rsdp_gpa),
			 0);
}

/* ---- PM registers ---- */

#define EVT 0x600
#define CNT 0x604
#define TMR 0x608
#define SCI 9

struct pm_fixture {
	struct bus pio;
	struct device_env env;
	struct device dev;
	struct acpi_pm *pm;
	int sci_level;
	unsigned sci_calls;
	unsigned sleep_calls;
	unsigned last_slp_typ;
};

static int record_set_line(void *opaque, uint32_t gsi, int level)
{
	struct pm_fixture *f = opaque;

	assert_int_equal(gsi, SCI);
	f->sci_level = level;
	f->sci_calls++;
	return 0;
}

static int record_send_msi(void *opaque, uint64_t addr, uint32_t data)
{
	fail_msg("the PM device sent an MSI");
	return -EINVAL;
}

static const struct irq_sink_ops record_irq_ops = {
	.set_line = record_set_line,
	.send_msi = record_send_msi,
};

static void record_sleep(void *opaque, unsigned slp_typ)
{
	struct pm_fixture *f = opaque;

	f->sleep_calls++;
	f->last_slp_typ = slp_typ;
}

static void fixture_init(struct pm_fixture *f)
{
	memset(f, 0, sizeof(*f));
	bus_init(&f->pio);
	f->env.pio = &f->pio;
	f->env.irq = (struct irq_sink){ .ops = &record_irq_ops, .opaque = f };
	f->sci_level = -1;
	f->pm = acpi_pm_create(&f->env, EVT, CNT, TMR, SCI, record_sleep, f, &f->dev);
	assert_non_null(f->pm);
	assert_ptr_equal(f->dev.priv, f->pm);
	assert_string_equal(f->dev.ops->name, "acpi-pm");
}

static int pm_setup(void **state)
{
	struct pm_fixture *f = malloc(sizeof(*f));

	assert_non_null(f);
	fixture_init(f);
	*state = f;
	return 0;
}

static void fixture_fini(struct pm_fixture *f)
{
	f->dev.ops->destroy(f->dev.priv);
	bus_destroy(&f->pio);
}

static int pm_teardown(void **state)
{
	struct pm_fixture *f = *state;

	fixture_fini(f);
	free(f);
	return 0;
}

static uint32_t port_read(struct pm_fixture *f, uint16_t port, uint32_t len)
{
	uint8_t data[4];
	uint32_t v = 0;

	assert_true(bus_dispatch(&f->pio, port, data, len, false));
	for (uint32_t i = 0; i < len; i++)
		v |= (uint32_t)data[i] << (8 * i);
	return v;
}

static void port_write(struct pm_fixture *f, uint16_t port, uint32_t v, uint32_t len)
{
	uint8_t data[4];

	for (uint32_t i = 0; i < len; i++)
		data[i] = (uint8_t)(v >> (8 * i));
	assert_true(bus_dispatch(&f->pio, port, data, len, true));
}

static void pm_reset_state(void **state)
{
	struct pm_fixture *f = *state;

	assert_int_equal(port_read(f, EVT, 2), 0);
	assert_int_equal(port_read(f, EVT + 2, 2), 0);
	assert_int_equal(port_read(f, CNT, 2), ACPI_PM1_CNT_SCI_EN);
	assert_int_equal(f->sci_level, 0); /* driven low at creation */
}

static void pm_status_write_one_to_clear(void **state)
{
	struct pm_fixture *f = *state;

	acpi_pm_press_power_button(f->pm);
	assert_int_equal(port_read(f, EVT, 2), ACPI_PM1_PWRBTN);

	port_write(f, EVT, 0, 2); /* writing 0 keeps the bit */
	assert_int_equal(port_read(f, EVT, 2), ACPI_PM1_PWRBTN);
	port_write(f, EVT, (uint16_t)~ACPI_PM1_PWRBTN, 2);
	assert_int_equal(port_read(f, EVT, 2), ACPI_PM1_PWRBTN);

	port_write(f, EVT, ACPI_PM1_PWRBTN, 2);
	assert_int_equal(port_read(f, EVT, 2), 0);
}

static void pm_sci_follows_status_and_enable(void **state)
{
	struct pm_fixture *f = *state;

	acpi_pm_press_power_button(f->pm);
	assert_int_equal(f->sci_level, 0); /* PWRBTN_EN still clear */

	port_write(f, EVT + 2, ACPI_PM1_PWRBTN, 2);
	assert_int_equal(port_read(f, EVT + 2, 2), ACPI_PM1_PWRBTN);
	assert_int_equal(f->sci_level, 1);

	port_write(f, EVT + 2, 0, 2);
	assert_int_equal(f->sci_level, 0);
	port_write(f, EVT + 2, ACPI_PM1_PWRBTN, 2);
	assert_int_equal(f->sci_level, 1);

	port_write(f, EVT, ACPI_PM1_PWRBTN, 2);
	assert_int_equal(f->sci_level, 0);

	/* Pressed while enabled: raised at once. */
	acpi_pm_press_power_button(f->pm);
	assert_int_equal(f->sci_level, 1);
}

static void pm_sci_gated_by_sci_en(void **state)
{
	struct pm_fixture *f = *state;

	port_write(f, EVT + 2, ACPI_PM1_PWRBTN, 2);
	acpi_pm_press_power_button(f->pm);
	assert_int_equal(f->sci_level, 1);
	port_write(f, CNT, 0, 2);
	assert_int_equal(f->sci_level, 0);
	port_write(f, CNT, ACPI_PM1_CNT_SCI_EN, 2);
	assert_int_equal(f->sci_level, 1);
}

static void pm_dword_access_spans_both_registers(void **state)
{
	struct pm_fixture *f = *state;

	acpi_pm_press_power_button(f->pm);
	port_write(f, EVT, (uint32_t)ACPI_PM1_PWRBTN << 16, 4); /* enable only, status kept */
	assert_int_equal(port_read(f, EVT, 4), ACPI_PM1_PWRBTN | (uint32_t)ACPI_PM1_PWRBTN << 16);
	assert_int_equal(f->sci_level, 1);

	/* One byte write to the high byte of PM1_STS clears PWRBTN_STS. */
	port_write(f, EVT + 1, ACPI_PM1_PWRBTN >> 8, 1);
	assert_int_equal(port_read(f, EVT, 2), 0);
	assert_int_equal(f->sci_level, 0);
}

static void pm_unmodelled_enable_bits_masked(void **state)
{
	struct pm_fixture *f = *state;

	port_write(f, EVT + 2, 0xFFFF, 2);
	assert_int_equal(port_read(f, EVT + 2, 2),
			 ACPI_PM1_TMR | ACPI_PM1_GBL | ACPI_PM1_PWRBTN | ACPI_PM1_SLPBTN |
				 ACPI_PM1_RTC | ACPI_PM1_PCIEXP_WAKE);
}

static void pm_sleep_on_slp_en(void **state)
{
	struct pm_fixture *f = *state;
	uint32_t slp_typ5 = ACPI_SLP_TYP_S5 << ACPI_PM1_CNT_SLP_TYP_SHIFT;

	/* SLP_TYP written alone selects a state but does not enter it. */
	port_write(f, CNT, ACPI_PM1_CNT_SCI_EN | slp_typ5, 2);
	assert_int_equal(f->sleep_calls, 0);
	assert_int_equal(port_read(f, CNT, 2), ACPI_PM1_CNT_SCI_EN | slp_typ5);

	port_write(f, CNT, ACPI_PM1_CNT_SCI_EN | slp_typ5 | ACPI_PM1_CNT_SLP_EN, 2);
	assert_int_equal(f->sleep_calls, 1);
	assert_int_equal(f->last_slp_typ, ACPI_SLP_TYP_S5);
	/* SLP_EN is write-only. */
	assert_int_equal(port_read(f, CNT, 2) & ACPI_PM1_CNT_SLP_EN, 0);

	/* A write of the high byte alone carries SLP_TYP and SLP_EN too. */
	port_write(f, CNT + 1, (ACPI_PM1_CNT_SLP_EN | (3u << ACPI_PM1_CNT_SLP_TYP_SHIFT)) >> 8, 1);
	assert_int_equal(f->sleep_calls, 2);
	assert_int_equal(f->last_slp_typ, 3);
	assert_int_equal(port_read(f, CNT, 2) & ACPI_PM1_CNT_SCI_EN, ACPI_PM1_CNT_SCI_EN);
}

static void pm_timer_counts_up(void **state)
{
	struct pm_fixture *f = *state;
	uint32_t t0 = port_read(f, TMR, 4);
	uint32_t t1;

	usleep(10000);
	t1 = port_read(f, TMR, 4);
	/* 10 ms is about 35795 ticks; allow a slow, loaded machine. */
	assert_true(t1 - t0 >= 35000);
	assert_true(t1 - t0 < 3579545 * 5u);

	port_write(f, TMR, 0, 4); /* read-only: ignored */
	assert_true(port_read(f, TMR, 4) - t1 < 3579545 * 5u);
}

static void pm_timer_stops_while_paused(void **state)
{
	struct pm_fixture *f = *state;
	uint32_t t0, t1;

	f->dev.ops->pause(f->dev.priv);
	t0 = port_read(f, TMR, 4);
	usleep(5000);
	assert_int_equal(port_read(f, TMR, 4), t0);
	f->dev.ops->resume(f->dev.priv);
	t1 = port_read(f, TMR, 4);
	assert_true(t1 - t0 < 3579545 / 100); /* no jump by the paused 5 ms */
}

static void save_state(struct pm_fixture *f, struct ser_writer *w)
{
	ser_writer_init(w);
	f->dev.ops->save(f->dev.priv, w);
	assert_int_equal(w->err, 0);
}

static int load_state(struct pm_fixture *f, const void *buf, size_t len)
{
	struct ser_reader r;

	ser_reader_init(&r, buf, len);
	return f->dev.ops->load(f->dev.priv, &r);
}

static void pm_save_load_round_trip(void **state)
{
	struct pm_fixture *f = *state;
	struct pm_fixture *g = malloc(sizeof(*g));
	struct ser_writer w;
	uint32_t cnt = ACPI_PM1_CNT_SCI_EN | (ACPI_SLP_TYP_S5 << ACPI_PM1_CNT_SLP_TYP_SHIFT);
	uint32_t t_saved, t_loaded;

	assert_non_null(g);
	port_write(f, EVT + 2, ACPI_PM1_PWRBTN | ACPI_PM1_GBL, 2);
	port_write(f, CNT, cnt, 2);
	acpi_pm_press_power_button(f->pm);
	assert_int_equal(f->sci_level, 1);

	f->dev.ops->pause(f->dev.priv);
	t_saved = port_read(f, TMR, 4);
	save_state(f, &w);

	fixture_init(g);
	assert_int_equal(g->sci_level, 0);
	assert_int_equal(load_state(g, w.buf, w.len), 0);
	t_loaded = port_read(g, TMR, 4);

	assert_int_equal(port_read(g, EVT, 2), ACPI_PM1_PWRBTN);
	assert_int_equal(port_read(g, EVT + 2, 2), ACPI_PM1_PWRBTN | ACPI_PM1_GBL);
	assert_int_equal(port_read(g, CNT, 2), cnt);
	assert_int_equal(g->sci_level, 1); /* the loaded state drives the line */
	/* The timer continues from the saved value, not from host time. */
	assert_true(t_loaded - t_saved < 3579545 / 10);

	ser_writer_free(&w);
	fixture_fini(g);
	free(g);
}

static void pm_load_rejects_truncated_state(void **state)
{
	struct pm_fixture *f = *state;
	struct ser_writer w;
	uint8_t longer[64];

	save_state(f, &w);
	for (size_t len = 0; len < w.len; len++)
		assert_int_equal(load_state(f, w.buf, len), -EBADMSG);

	assert_true(w.len < sizeof(longer));
	memcpy(longer, w.buf, w.len);
	longer[w.len] = 0;
	assert_int_equal(load_state(f, longer, w.len + 1), -EBADMSG);
	assert_int_equal(load_state(f, w.buf, w.len), 0);
	ser_writer_free(&w);
}

static void pm_load_rejects_invalid_values(void **state)
{
	struct pm_fixture *f = *state;
	struct ser_writer w;
	uint8_t bad[32];

	save_state(f, &w);
	assert_true(w.len <= sizeof(bad));

	memcpy(bad, w.buf, w.len);
	bad[0] = 99; /* version */
	assert_int_equal(load_state(f, bad, w.len), -EBADMSG);

	memcpy(bad, w.buf, w.len);
	bad[1] = 0x01; /* PM1_STS: TMR_STS is never set by this device */
	assert_int_equal(load_state(f, bad, w.len), -EBADMSG);

	memcpy(bad, w.buf, w.len);
	bad[6] = 0x20; /* PM1_CNT: SLP_EN (bit 13) is write-only */
	assert_int_equal(load_state(f, bad, w.len), -EBADMSG);

	/* Nothing changed by the rejected loads. */
	assert_int_equal(port_read(f, CNT, 2), ACPI_PM1_CNT_SCI_EN);
	ser_writer_free(&w);
}

static void pm_reset_clears_registers(void **state)
{
	struct pm_fixture *f = *state;

	port_write(f, EVT + 2, ACPI_PM1_PWRBTN, 2);
	acpi_pm_press_power_button(f->pm);
	port_write(f, CNT, 0, 2);
	f->dev.ops->reset(f->dev.priv);
	assert_int_equal(port_read(f, EVT, 4), 0);
	assert_int_equal(port_read(f, CNT, 2), ACPI_PM1_CNT_SCI_EN);
	assert_int_equal(f->sci_level, 0);
}

static void pm_create_fails_on_taken_port(void **state)
{
	struct pm_fixture *f = *state;
	struct device dev;

	/* The event block of the fixture's device already covers 0x600. */
	assert_null(acpi_pm_create(&f->env, EVT, 0x700, 0, SCI, NULL, NULL, &dev));
	assert_null(acpi_pm_create(&f->env, 0x700, CNT, 0, SCI, NULL, NULL, &dev));
	/* The failed attempts left no window behind. */
	assert_false(bus_dispatch(&f->pio, 0x700, (uint8_t[2]){ 0 }, 2, false));
}

#define PM_TEST(fn) cmocka_unit_test_setup_teardown(fn, pm_setup, pm_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(rsdp_checksums_and_signature),
		cmocka_unit_test(xsdt_lists_fadt_and_madt),
		cmocka_unit_test(fadt_points_to_dsdt_and_facs),
		cmocka_unit_test(fadt_describes_pm_blocks),
		cmocka_unit_test(fadt_without_pm_timer),
		cmocka_unit_test(madt_entries_one_cpu),
		cmocka_unit_test(madt_entries_eight_cpus),
		cmocka_unit_test(dsdt_s5_package),
		cmocka_unit_test(dsdt_pci_root_and_routing),
		cmocka_unit_test(dsdt_without_routing),
		cmocka_unit_test(tables_overflow_returns_zero),
		cmocka_unit_test(tables_invalid_config),
		PM_TEST(pm_reset_state),
		PM_TEST(pm_status_write_one_to_clear),
		PM_TEST(pm_sci_follows_status_and_enable),
		PM_TEST(pm_sci_gated_by_sci_en),
		PM_TEST(pm_dword_access_spans_both_registers),
		PM_TEST(pm_unmodelled_enable_bits_masked),
		PM_TEST(pm_sleep_on_slp_en),
		PM_TEST(pm_timer_counts_up),
		PM_TEST(pm_timer_stops_while_paused),
		PM_TEST(pm_save_load_round_trip),
		PM_TEST(pm_load_rejects_truncated_state),
		PM_TEST(pm_load_rejects_invalid_values),
		PM_TEST(pm_reset_clears_registers),
		PM_TEST(pm_create_fails_on_taken_port),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
