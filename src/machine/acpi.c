/*
 * Builds the machine's ACPI tables in one pass into a caller's buffer. Fixed tables are
 * packed structs filled field by field. The DSDT's AML is emitted by the small helpers
 * below (names, integers, packages, buffers, resource descriptors) in the encodings
 * the ACPI specification defines. After a change, `iasl -d` and `acpiexec` from
 * acpica-tools decode and evaluate the DSDT.
 *
 * Layout, offsets from the start of the buffer: the RSDP at 0 (16-byte aligned, as a
 * guest scanning 0xE0000..0xFFFFF requires), the FACS at 64 (64-byte aligned), then
 * DSDT, FADT, MADT and XSDT, each 8-byte aligned.
 */
#include "machine/acpi.h"

#include <assert.h>
#include <endian.h>
#include <stdbool.h>
#include <string.h>

#include "common/log.h"
#include "machine/layout.h"

#define ACPI_OEM_ID "CRYO  "
#define ACPI_OEM_TABLE_ID "CRYOVM  "
#define ACPI_CREATOR_ID "CRYO"

/* ---- table formats (little-endian on the wire, as on x86) ---- */

struct acpi_rsdp {
	char signature[8];
	uint8_t checksum; /* covers the first 20 bytes (the ACPI 1.0 part) */
	char oem_id[6];
	uint8_t revision;
	uint32_t rsdt_addr;
	uint32_t length;
	uint64_t xsdt_addr;
	uint8_t ext_checksum; /* covers all 36 bytes */
	uint8_t reserved[3];
} __attribute__((packed));
_Static_assert(sizeof(struct acpi_rsdp) == 36, "RSDP is 36 bytes");

struct acpi_header {
	char signature[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	char creator_id[4];
	uint32_t creator_revision;
} __attribute__((packed));
_Static_assert(sizeof(struct acpi_header) == 36, "table header is 36 bytes");

/* Generic Address Structure. */
struct acpi_gas {
	uint8_t space_id;
	uint8_t bit_width;
	uint8_t bit_offset;
	uint8_t access_size; /* 0: undefined, the width of the register decides */
	uint64_t address;
} __attribute__((packed));
_Static_assert(sizeof(struct acpi_gas) == 12, "GAS is 12 bytes");

#define ACPI_GAS_SYSTEM_IO 1

struct acpi_fadt {
	struct acpi_header header;
	uint32_t firmware_ctrl;
	uint32_t dsdt;
	uint8_t reserved0;
	uint8_t preferred_pm_profile;
	uint16_t sci_int;
	uint32_t smi_cmd;
	uint8_t acpi_enable;
	uint8_t acpi_disable;
	uint8_t s4bios_req;
	uint8_t pstate_cnt;
	uint32_t pm1a_evt_blk;
	uint32_t pm1b_evt_blk;
	uint32_t pm1a_cnt_blk;
	uint32_t pm1b_cnt_blk;
	uint32_t pm2_cnt_blk;
	uint32_t pm_tmr_blk;
	uint32_t gpe0_blk;
	uint32_t gpe1_blk;
	uint8_t pm1_evt_len;
	uint8_t pm1_cnt_len;
	uint8_t pm2_cnt_len;
	uint8_t pm_tmr_len;
	uint8_t gpe0_blk_len;
	uint8_t gpe1_blk_len;
	uint8_t gpe1_base;
	uint8_t cst_cnt;
	uint16_t p_lvl2_lat;
	uint16_t p_lvl3_lat;
	uint16_t flush_size;
	uint16_t flush_stride;
	uint8_t duty_offset;
	uint8_t duty_width;
	uint8_t day_alrm;
	uint8_t mon_alrm;
	uint8_t century;
	uint16_t iapc_boot_arch;
	uint8_t reserved1;
	uint32_t flags;
	struct acpi_gas reset_reg;
	uint8_t reset_value;
	uint16_t arm_boot_arch;
	uint8_t minor_version;
	uint64_t x_firmware_ctrl;
	uint64_t x_dsdt;
	struct acpi_gas x_pm1a_evt_blk;
	struct acpi_gas x_pm1b_evt_blk;
	struct acpi_gas x_pm1a_cnt_blk;
	struct acpi_gas x_pm1b_cnt_blk;
	struct acpi_gas x_pm2_cnt_blk;
	struct acpi_gas x_pm_tmr_blk;
	struct acpi_gas x_gpe0_blk;
	struct acpi_gas x_gpe1_blk;
	struct acpi_gas sleep_control_reg;
	struct acpi_gas sleep_status_reg;
	uint64_t hypervisor_vendor_id;
} __attribute__((packed));
_Static_assert(sizeof(struct acpi_fadt) == 276, "FADT revision 6 is 276 bytes");
_Static_assert(__builtin_offsetof(struct acpi_fadt, iapc_boot_arch) == 109, "FADT layout");
_Static_assert(__builtin_offsetof(struct acpi_fadt, x_pm1a_evt_blk) == 148, "FADT layout");

/* IAPC_BOOT_ARCH bits. */
#define FADT_BOOT_LEGACY_DEVICES (1u << 0)
#define FADT_BOOT_8042 (1u << 1)
#define FADT_BOOT_VGA_NOT_PRESENT (1u << 2)

/* FADT flags. */
#define FADT_F_WBINVD (1u << 0)
#define FADT_F_PROC_C1 (1u << 2)
#define FADT_F_SLP_BUTTON (1u << 5) /* set: no fixed-feature sleep button */
#define FADT_F_FIX_RTC (1u << 6)    /* set: no RTC wake status in PM1 */
#define FADT_F_TMR_VAL_EXT (1u << 8) /* set: the PM timer counts 32 bits */

struct acpi_facs {
	char signature[4];
	uint32_t length;
	uint32_t hardware_signature;
	uint32_t firmware_waking_vector;
	uint32_t global_lock;
	uint32_t flags;
	uint64_t x_firmware_waking_vector;
	uint8_t version;
	uint8_t reserved0[3];
	uint32_t ospm_flags;
	uint8_t reserved1[24];
} __attribute__((packed));
_Static_assert(sizeof(struct acpi_facs) == 64, "FACS is 64 bytes");

struct acpi_madt {
	struct acpi_header header;
	uint32_t lapic_addr;
	uint32_t flags;
} __attribute__((packed));

#define MADT_PCAT_COMPAT (1u << 0) /* the machine also has dual 8259 PICs */

enum madt_entry_type {
	MADT_LOCAL_APIC = 0,
	MADT_IO_APIC = 1,
	MADT_INT_SRC_OVERRIDE = 2,
	MADT_LOCAL_APIC_NMI = 4,
};

/* MPS INTI flags of interrupt source overrides. */
#define MPS_INTI_ACTIVE_HIGH 0x1
#define MPS_INTI_LEVEL 0xC

/* ---- a bounded writer over the caller's buffer ---- */

struct acpi_writer {
	uint8_t *buf;
	size_t size;
	size_t pos;
	bool overflow;
};

/* Returns room for n more bytes, or NULL (and marks overflow) when they do not fit. */
static uint8_t *writer_reserve(struct acpi_writer *w, size_t n)
{
	uint8_t *p;

	if (w->overflow || n > w->size - w->pos) {
		w->overflow = true;
		return NULL;
	}
	p = w->buf + w->pos;
	w->pos += n;
	return p;
}

static void writer_bytes(struct acpi_writer *w, const void *src, size_t n)
{
	uint8_t *p = writer_reserve(w, n);

	if (p)
		memcpy(p, src, n);
}

static void writer_u8(struct acpi_writer *w, uint8_t v)
{
	writer_bytes(w, &v, 1);
}

static void writer_u16(struct acpi_writer *w, uint16_t v)
{
	v = htole16(v);
	writer_bytes(w, &v, 2);
}

static void writer_u32(struct acpi_writer *w, uint32_t v)
{
	v = htole32(v);
	writer_bytes(w, &v, 4);
}

static void writer_u64(struct acpi_writer *w, uint64_t v)
{
	v = htole64(v);
	writer_bytes(w, &v, 8);
}

/* Pads with zeros to a multiple of `align` (a power of two) and returns the new offset. */
static size_t writer_align(struct acpi_writer *w, size_t align)
{
	size_t pad = (align - (w->pos & (align - 1))) & (align - 1);
	uint8_t *p = writer_reserve(w, pad);

	if (p)
		memset(p, 0, pad);
	return w->pos;
}

static uint8_t acpi_checksum(const uint8_t *p, size_t n)
{
	uint8_t sum = 0;

	for (size_t i = 0; i < n; i++)
		sum += p[i];
	return (uint8_t)-sum;
}

/* ---- system description tables ---- */

static void header_fill(struct acpi_header *h, const char *signature, uint8_t revision)
{
	memset(h, 0, sizeof(*h));
	memcpy(h->signature, signature, 4);
	h->revision = revision;
	memcpy(h->oem_id, ACPI_OEM_ID, 6);
	memcpy(h->oem_table_id, ACPI_OEM_TABLE_ID, 8);
	h->oem_revision = htole32(1);
	memcpy(h->creator_id, ACPI_CREATOR_ID, 4);
	h->creator_revision = htole32(1);
}

/* Writes a header with length and checksum left 0; returns the table's offset. */
static size_t table_begin(struct acpi_writer *w, const char *signature, uint8_t revision)
{
	struct acpi_header h;
	size_t start = writer_align(w, 8);

	header_fill(&h, signature, revision);
	writer_bytes(w, &h, sizeof(h));
	return start;
}

/* Sets the length and checksum of the table that starts at `start` and ends here. */
static void table_end(struct acpi_writer *w, size_t start)
{
	struct acpi_header *h;

	if (w->overflow)
		return;
	h = (struct acpi_header *)(w->buf + start);
	h->length = htole32((uint32_t)(w->pos - start));
	h->checksum = 0;
	h->checksum = acpi_checksum(w->buf + start, w->pos - start);
}

static struct acpi_gas gas_io(uint16_t port, uint8_t len)
{
	return (struct acpi_gas){
		.space_id = ACPI_GAS_SYSTEM_IO,
		.bit_width = port ? (uint8_t)(len * 8) : 0,
		.address = htole64(port),
	};
}

static size_t facs_write(struct acpi_writer *w)
{
	struct acpi_facs facs = {
		.length = htole32(sizeof(facs)),
		.version = 2,
	};
	size_t start = writer_align(w, 64);

	memcpy(facs.signature, "FACS", 4);
	writer_bytes(w, &facs, sizeof(facs));
	return start;
}

static size_t fadt_write(struct acpi_writer *w, const struct acpi_config *cfg, uint32_t facs_gpa,
			 uint32_t dsdt_gpa)
{
	struct acpi_fadt f;
	uint8_t tmr_len = cfg->pm_tmr_port ? 4 : 0;
	uint32_t flags = FADT_F_WBINVD | FADT_F_PROC_C1 | FADT_F_SLP_BUTTON | FADT_F_FIX_RTC;
	size_t start = writer_align(w, 8);

	/* PWR_BUTTON (bit 4) stays clear: the power button is the fixed-feature one. */
	if (tmr_len)
		flags |= FADT_F_TMR_VAL_EXT;

	memset(&f, 0, sizeof(f));
	header_fill(&f.header, "FACP", 6);
	f.firmware_ctrl = htole32(facs_gpa);
	f.dsdt = htole32(dsdt_gpa);
	f.sci_int = htole16(cfg->sci_irq);
	/* SMI_CMD 0: no SMI handshake, the machine is always in ACPI mode (SCI_EN set). */
	f.smi_cmd = 0;
	f.pm1a_evt_blk = htole32(cfg->pm1a_evt_port);
	f.pm1a_cnt_blk = htole32(cfg->pm1a_cnt_port);
	f.pm_tmr_blk = htole32(cfg->pm_tmr_port);
	f.pm1_evt_len = 4;
	f.pm1_cnt_len = 2;
	f.pm_tmr_len = tmr_len;
	/* Latencies above 100 and 1000 microseconds mean C2 and C3 are not supported. */
	f.p_lvl2_lat = htole16(101);
	f.p_lvl3_lat = htole16(1001);
	f.century = 0x32; /* the CMOS RTC's century register */
	/*
	 * NOTE: the DSDT declares no PNP0303 keyboard controller, so Linux 6.1 logs "PNP:
	 * No PS/2 controller found" and leaves the i8042 alone despite the 8042 flag.
	 */
	f.iapc_boot_arch = htole16(FADT_BOOT_LEGACY_DEVICES | FADT_BOOT_8042 |
				   FADT_BOOT_VGA_NOT_PRESENT);
	f.flags = htole32(flags);
	f.minor_version = 0;
	/* X_FIRMWARE_CTRL stays 0: the spec requires it to be zero when FIRMWARE_CTRL is set. */
	f.x_dsdt = htole64(dsdt_gpa);
	f.x_pm1a_evt_blk = gas_io(cfg->pm1a_evt_port, 4);
	f.x_pm1a_cnt_blk = gas_io(cfg->pm1a_cnt_port, 2);
	if (tmr_len)
		f.x_pm_tmr_blk = gas_io(cfg->pm_tmr_port, tmr_len);

	writer_bytes(w, &f, sizeof(f));
	table_end(w, start);
	return start;
}

static void madt_int_src_override(struct acpi_writer *w, uint8_t irq, uint32_t gsi, uint16_t flags)
{
	writer_u8(w, MADT_INT_SRC_OVERRIDE);
	writer_u8(w, 10);
	writer_u8(w, 0); /* bus: ISA */
	writer_u8(w, irq);
	writer_u32(w, gsi);
	writer_u16(w, flags);
}

static size_t madt_write(struct acpi_writer *w, const struct acpi_config *cfg)
{
	size_t start = table_begin(w, "APIC", 4);

	writer_u32(w, cfg->lapic_addr);
	writer_u32(w, MADT_PCAT_COMPAT);

	for (unsigned cpu = 0; cpu < cfg->nr_cpus; cpu++) {
		writer_u8(w, MADT_LOCAL_APIC);
		writer_u8(w, 8);
		writer_u8(w, (uint8_t)cpu); /* ACPI processor UID */
		writer_u8(w, (uint8_t)cpu); /* APIC id */
		writer_u32(w, 1);	    /* enabled */
	}

	writer_u8(w, MADT_IO_APIC);
	writer_u8(w, 12);
	writer_u8(w, (uint8_t)cfg->nr_cpus);
	writer_u8(w, 0);
	writer_u32(w, cfg->ioapic_addr);
	writer_u32(w, 0); /* GSI base */

	/* The PIT's IRQ 0 is wired to IOAPIC pin 2, as on a PC. Flags 0: ISA defaults. */
	madt_int_src_override(w, 0, 2, 0);
	madt_int_src_override(w, cfg->sci_irq, cfg->sci_irq, MPS_INTI_LEVEL | MPS_INTI_ACTIVE_HIGH);

	/* LINT1 of every local APIC (UID 0xFF) is the NMI input. */
	writer_u8(w, MADT_LOCAL_APIC_NMI);
	writer_u8(w, 6);
	writer_u8(w, 0xFF);
	writer_u16(w, 0);
	writer_u8(w, 1);

	table_end(w, start);
	return start;
}

static size_t xsdt_write(struct acpi_writer *w, const uint64_t *entries, unsigned n)
{
	size_t start = table_begin(w, "XSDT", 1);

	for (unsigned i = 0; i < n; i++)
		writer_u64(w, entries[i]);
	table_end(w, start);
	return start;
}

/* ---- AML ---- */

#define AML_ZERO_OP 0x00
#define AML_ONE_OP 0x01
#define AML_NAME_OP 0x08
#define AML_BYTE_PREFIX 0x0A
#define AML_WORD_PREFIX 0x0B
#define AML_DWORD_PREFIX 0x0C
#define AML_QWORD_PREFIX 0x0E
#define AML_SCOPE_OP 0x10
#define AML_BUFFER_OP 0x11
#define AML_PACKAGE_OP 0x12
#define AML_EXT_OP_PREFIX 0x5B
#define AML_DEVICE_OP 0x82 /* after AML_EXT_OP_PREFIX */
#define AML_ROOT_CHAR '\\'

/* The largest PkgLength encoding takes 4 bytes and covers lengths below 2^28. */
#define AML_PKG_LENGTH_MAX_BYTES 4

/*
 * Reserves the largest PkgLength; aml_pkg_end() shrinks it once the contents are
 * known. Returns the offset where the PkgLength starts.
 */
static size_t aml_pkg_begin(struct acpi_writer *w)
{
	size_t start = w->pos;

	writer_reserve(w, AML_PKG_LENGTH_MAX_BYTES);
	return start;
}

static void aml_pkg_end(struct acpi_writer *w, size_t start)
{
	size_t content, nbytes, total;
	uint8_t *p;

	if (w->overflow)
		return;
	content = w->pos - start - AML_PKG_LENGTH_MAX_BYTES;

	/* The encoded length counts the PkgLength bytes themselves. */
	if (content + 1 < 0x40)
		nbytes = 1;
	else if (content + 2 < 0x1000)
		nbytes = 2;
	else if (content + 3 < 0x100000)
		nbytes = 3;
	else
		nbytes = 4;
	total = content + nbytes;
	assert(total < (1u << 28));

	p = w->buf + start;
	memmove(p + nbytes, p + AML_PKG_LENGTH_MAX_BYTES, content);
	if (nbytes == 1) {
		p[0] = (uint8_t)total;
	} else {
		/* Lead byte: count of following bytes in bits 7-6, the low nibble in 3-0. */
		p[0] = (uint8_t)(((nbytes - 1) << 6) | (total & 0xF));
		for (size_t i = 1; i < nbytes; i++)
			p[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
	}
	w->pos -= AML_PKG_LENGTH_MAX_BYTES - nbytes;
}

/* Writes a NameString: an optional leading '\' and one 4-character NameSeg. */
static void aml_name(struct acpi_writer *w, const char *name)
{
	if (name[0] == AML_ROOT_CHAR) {
		writer_u8(w, AML_ROOT_CHAR);
		name++;
	}
	assert(strlen(name) == 4);
	writer_bytes(w, name, 4);
}

static void aml_integer(struct acpi_writer *w, uint64_t v)
{
	if (v == 0) {
		writer_u8(w, AML_ZERO_OP);
	} else if (v == 1) {
		writer_u8(w, AML_ONE_OP);
	} else if (v <= UINT8_MAX) {
		writer_u8(w, AML_BYTE_PREFIX);
		writer_u8(w, (uint8_t)v);
	} else if (v <= UINT16_MAX) {
		writer_u8(w, AML_WORD_PREFIX);
		writer_u16(w, (uint16_t)v);
	} else if (v <= UINT32_MAX) {
		writer_u8(w, AML_DWORD_PREFIX);
		writer_u32(w, (uint32_t)v);
	} else {
		writer_u8(w, AML_QWORD_PREFIX);
		writer_u64(w, v);
	}
}

/*
 * Compresses a PNP id such as "PNP0A03" the way ASL's EISAID() does: three letters
 * of 5 bits each and four hex digits, stored big-endian in a 32-bit integer.
 */
static uint32_t aml_eisa_id(const char *id)
{
	uint16_t vendor, product = 0;

	assert(strlen(id) == 7);
	vendor = (uint16_t)(((id[0] - '@') << 10) | ((id[1] - '@') << 5) | (id[2] - '@'));
	for (int i = 3; i < 7; i++) {
		char c = id[i];
		unsigned digit = (c >= '0' && c <= '9') ? (unsigned)(c - '0') : (unsigned)(c - 'A' + 10);

		product = (uint16_t)((product << 4) | digit);
	}
	return (uint32_t)__builtin_bswap16(vendor) | (uint32_t)__builtin_bswap16(product) << 16;
}

/* Name(name, value) with an integer value. */
static void aml_name_integer(struct acpi_writer *w, const char *name, uint64_t v)
{
	writer_u8(w, AML_NAME_OP);
	aml_name(w, name);
	aml_integer(w, v);
}

static void aml_name_eisa_id(struct acpi_writer *w, const char *name, const char *id)
{
	writer_u8(w, AML_NAME_OP);
	aml_name(w, name);
	writer_u8(w, AML_DWORD_PREFIX);
	writer_u32(w, aml_eisa_id(id));
}

/* Package(n) { ... }: returns what aml_pkg_end() needs; the caller writes n elements. */
static size_t aml_package_begin(struct acpi_writer *w, uint8_t nr_elements)
{
	size_t start;

	writer_u8(w, AML_PACKAGE_OP);
	start = aml_pkg_begin(w);
	writer_u8(w, nr_elements);
	return start;
}

static size_t aml_scope_begin(struct acpi_writer *w, const char *name)
{
	size_t start;

	writer_u8(w, AML_SCOPE_OP);
	start = aml_pkg_begin(w);
	aml_name(w, name);
	return start;
}

static size_t aml_device_begin(struct acpi_writer *w, const char *name)
{
	size_t start;

	writer_u8(w, AML_EXT_OP_PREFIX);
	writer_u8(w, AML_DEVICE_OP);
	start = aml_pkg_begin(w);
	aml_name(w, name);
	return start;
}

/* Name(name, Package(4) { slp_typ, slp_typ, 0, 0 }): a sleep state's PM1a/PM1b SLP_TYP. */
static void aml_sleep_state(struct acpi_writer *w, const char *name, uint8_t slp_typ)
{
	size_t pkg;

	writer_u8(w, AML_NAME_OP);
	aml_name(w, name);
	pkg = aml_package_begin(w, 4);
	aml_integer(w, slp_typ);
	aml_integer(w, slp_typ);
	aml_integer(w, 0);
	aml_integer(w, 0);
	aml_pkg_end(w, pkg);
}

/* ---- resource descriptors, collected before they become one AML Buffer ---- */

struct aml_resources {
	uint8_t bytes[128];
	size_t len;
};

static void res_bytes(struct aml_resources *r, const void *src, size_t n)
{
	/* Templates are fixed by this file, so outgrowing the array is a bug here. */
	assert(n <= sizeof(r->bytes) - r->len);
	memcpy(r->bytes + r->len, src, n);
	r->len += n;
}

static void res_u8(struct aml_resources *r, uint8_t v)
{
	res_bytes(r, &v, 1);
}

static void res_u16(struct aml_resources *r, uint16_t v)
{
	v = htole16(v);
	res_bytes(r, &v, 2);
}

static void res_u32(struct aml_resources *r, uint32_t v)
{
	v = htole32(v);
	res_bytes(r, &v, 4);
}

#define RES_IO_PORT 0x47  /* small item, 7 data bytes */
#define RES_IRQ_NO_FLAGS 0x22 /* small item, 2 data bytes */
#define RES_END_TAG 0x79   /* small item, 1 data byte */
#define RES_DWORD_ADDR 0x87 /* large item */
#define RES_WORD_ADDR 0x88  /* large item */

#define RES_TYPE_MEMORY 0
#define RES_TYPE_IO 1
#define RES_TYPE_BUS 2

/* General flags of a window the root bridge produces: min and max fixed, positive decode. */
#define RES_FLAGS_PRODUCER_FIXED 0x0C
#define RES_IO_ENTIRE_RANGE 0x03
#define RES_MEM_READ_WRITE 0x01 /* and non-cacheable */

/* IO(Decode16, base, base, 1, len): a fixed range of ports. */
static void res_io(struct aml_resources *r, uint16_t base, uint8_t len)
{
	res_u8(r, RES_IO_PORT);
	res_u8(r, 1); /* decodes 16 address bits */
	res_u16(r, base);
	res_u16(r, base);
	res_u8(r, 1);
	res_u8(r, len);
}

static void res_irq(struct aml_resources *r, uint8_t irq)
{
	res_u8(r, RES_IRQ_NO_FLAGS);
	res_u16(r, (uint16_t)(1u << irq));
}

/* WordBusNumber / WordIO producing [min, max], without translation. */
static void res_word_window(struct aml_resources *r, uint8_t type, uint8_t type_flags,
			    uint16_t min, uint16_t max)
{
	res_u8(r, RES_WORD_ADDR);
	res_u16(r, 13);
	res_u8(r, type);
	res_u8(r, RES_FLAGS_PRODUCER_FIXED);
	res_u8(r, type_flags);
	res_u16(r, 0); /* granularity */
	res_u16(r, min);
	res_u16(r, max);
	res_u16(r, 0); /* translation offset */
	res_u16(r, (uint16_t)(max - min + 1));
}

/* DWordMemory producing [min, max], read-write and non-cacheable. */
static void res_dword_memory(struct aml_resources *r, uint32_t min, uint32_t max)
{
	res_u8(r, RES_DWORD_ADDR);
	res_u16(r, 23);
	res_u8(r, RES_TYPE_MEMORY);
	res_u8(r, RES_FLAGS_PRODUCER_FIXED);
	res_u8(r, RES_MEM_READ_WRITE);
	res_u32(r, 0);
	res_u32(r, min);
	res_u32(r, max);
	res_u32(r, 0);
	res_u32(r, max - min + 1);
}

/* Name(name, ResourceTemplate() { ... }): ends the list and wraps it in a Buffer. */
static void aml_name_resources(struct acpi_writer *w, const char *name, struct aml_resources *r)
{
	size_t pkg;

	res_u8(r, RES_END_TAG);
	res_u8(r, 0); /* checksum 0: "treat as correct" */

	writer_u8(w, AML_NAME_OP);
	aml_name(w, name);
	writer_u8(w, AML_BUFFER_OP);
	pkg = aml_pkg_begin(w);
	aml_integer(w, r->len);
	writer_bytes(w, r->bytes, r->len);
	aml_pkg_end(w, pkg);
}

/* PCI Address of a _PRT entry: device in the high word, 0xFFFF for all functions. */
#define PRT_ADDR(slot) (((uint32_t)(slot) << 16) | 0xFFFF)
#define PCI_FIRST_INTX_SLOT 1
#define PCI_NR_SLOTS 32
#define PCI_NR_INTX_PINS 4

/* Name(_PRT, Package() { Package(4) { addr, pin, 0, gsi }, ... }): static GSI routing. */
static void aml_pci_routing(struct acpi_writer *w, const struct acpi_config *cfg)
{
	size_t prt;

	writer_u8(w, AML_NAME_OP);
	aml_name(w, "_PRT");
	prt = aml_package_begin(w, (PCI_NR_SLOTS - PCI_FIRST_INTX_SLOT) * PCI_NR_INTX_PINS);
	for (unsigned slot = PCI_FIRST_INTX_SLOT; slot < PCI_NR_SLOTS; slot++) {
		for (unsigned pin = 0; pin < PCI_NR_INTX_PINS; pin++) {
			size_t entry = aml_package_begin(w, 4);

			aml_integer(w, PRT_ADDR(slot));
			aml_integer(w, pin);
			aml_integer(w, 0); /* no link device: the last field is a GSI */
			aml_integer(w, cfg->pci_intx_gsi(slot, pin));
			aml_pkg_end(w, entry);
		}
	}
	aml_pkg_end(w, prt);
}

static void aml_pci_root(struct acpi_writer *w, const struct acpi_config *cfg)
{
	struct aml_resources crs = { .len = 0 };
	size_t dev = aml_device_begin(w, "PCI0");

	aml_name_eisa_id(w, "_HID", "PNP0A03");
	aml_name_integer(w, "_UID", 0);
	aml_name_integer(w, "_BBN", 0);

	res_word_window(&crs, RES_TYPE_BUS, 0, 0, 0xFF);
	res_io(&crs, 0xCF8, 8); /* the configuration ports belong to the bridge itself */
	res_word_window(&crs, RES_TYPE_IO, RES_IO_ENTIRE_RANGE, 0x0000, 0x0CF7);
	res_word_window(&crs, RES_TYPE_IO, RES_IO_ENTIRE_RANGE, 0x0D00, 0xFFFF);
	res_dword_memory(&crs, (uint32_t)cfg->pci_mmio_base,
			 (uint32_t)(cfg->pci_mmio_base + cfg->pci_mmio_size - 1));
	aml_name_resources(w, "_CRS", &crs);

	if (cfg->pci_intx_gsi)
		aml_pci_routing(w, cfg);

	aml_pkg_end(w, dev);
}

static void aml_com1(struct acpi_writer *w)
{
	struct aml_resources crs = { .len = 0 };
	size_t dev = aml_device_begin(w, "COM1");

	aml_name_eisa_id(w, "_HID", "PNP0501");
	aml_name_integer(w, "_UID", 1);
	res_io(&crs, PORT_COM1, 8);
	res_irq(&crs, IRQ_COM1);
	aml_name_resources(w, "_CRS", &crs);
	aml_pkg_end(w, dev);
}

static size_t dsdt_write(struct acpi_writer *w, const struct acpi_config *cfg)
{
	/* Revision 2: AML integers are 64 bits wide. */
	size_t start = table_begin(w, "DSDT", 2);
	size_t scope;

	aml_sleep_state(w, "\\_S0_", ACPI_SLP_TYP_S0);
	aml_sleep_state(w, "\\_S5_", ACPI_SLP_TYP_S5);

	scope = aml_scope_begin(w, "\\_SB_");
	aml_pci_root(w, cfg);
	aml_com1(w);
	aml_pkg_end(w, scope);

	table_end(w, start);
	return start;
}

/* ---- the whole set ---- */

static bool config_valid(const struct acpi_config *cfg, uint64_t buf_gpa, size_t buf_size)
{
	uint64_t mmio_end = cfg->pci_mmio_base + cfg->pci_mmio_size;

	if (cfg->nr_cpus < 1 || cfg->nr_cpus > ACPI_MAX_CPUS) {
		log_error("acpi", "invalid CPU count %u (1 to %u)", cfg->nr_cpus, ACPI_MAX_CPUS);
		return false;
	}
	if (cfg->sci_irq == 0 || cfg->sci_irq == 2 || cfg->sci_irq > 15) {
		log_error("acpi", "invalid SCI IRQ %u (an ISA IRQ from 1 to 15 other than 2)",
			  cfg->sci_irq);
		return false;
	}
	if (!cfg->pm1a_evt_port || !cfg->pm1a_cnt_port) {
		log_error("acpi", "missing PM1a event or control port");
		return false;
	}
	if (cfg->pci_mmio_size == 0 || mmio_end < cfg->pci_mmio_base || mmio_end > (1ULL << 32)) {
		log_error("acpi", "invalid PCI window 0x%llx size 0x%llx (must lie below 4 GiB)",
			  (unsigned long long)cfg->pci_mmio_base,
			  (unsigned long long)cfg->pci_mmio_size);
		return false;
	}
	if ((buf_gpa & 63) || buf_gpa + buf_size > (1ULL << 32) || buf_gpa + buf_size < buf_gpa) {
		log_error("acpi", "invalid table address 0x%llx (64-byte aligned, below 4 GiB)",
			  (unsigned long long)buf_gpa);
		return false;
	}
	return true;
}

static void rsdp_fill(struct acpi_rsdp *rsdp, uint64_t xsdt_gpa)
{
	memset(rsdp, 0, sizeof(*rsdp));
	memcpy(rsdp->signature, "RSD PTR ", 8);
	memcpy(rsdp->oem_id, ACPI_OEM_ID, 6);
	rsdp->revision = 2; /* ACPI 2.0 and later: the XSDT is used, there is no RSDT */
	rsdp->length = htole32(sizeof(*rsdp));
	rsdp->xsdt_addr = htole64(xsdt_gpa);
	rsdp->checksum = acpi_checksum((const uint8_t *)rsdp, 20);
	rsdp->ext_checksum = acpi_checksum((const uint8_t *)rsdp, sizeof(*rsdp));
}

size_t acpi_build_tables(void *buf, size_t buf_size, uint64_t buf_gpa, const struct acpi_config *cfg,
			 uint64_t *rsdp_gpa)
{
	struct acpi_writer w = { .buf = buf, .size = buf_size };
	size_t rsdp, facs, dsdt, fadt, madt, xsdt;
	uint64_t xsdt_entries[2];

	if (!config_valid(cfg, buf_gpa, buf_size))
		return 0;
	memset(buf, 0, buf_size);

	/* The RSDP is filled last, once the XSDT's address is known. */
	rsdp = w.pos;
	writer_reserve(&w, sizeof(struct acpi_rsdp));
	facs = facs_write(&w);
	dsdt = dsdt_write(&w, cfg);
	fadt = fadt_write(&w, cfg, (uint32_t)(buf_gpa + facs), (uint32_t)(buf_gpa + dsdt));
	madt = madt_write(&w, cfg);
	xsdt_entries[0] = buf_gpa + fadt;
	xsdt_entries[1] = buf_gpa + madt;
	xsdt = xsdt_write(&w, xsdt_entries, 2);
	if (w.overflow) {
		log_error("acpi", "ACPI tables do not fit in %zu bytes", buf_size);
		return 0;
	}

	rsdp_fill((struct acpi_rsdp *)(w.buf + rsdp), buf_gpa + xsdt);
	*rsdp_gpa = buf_gpa + rsdp;
	return w.pos;
}
