/* PCI bus: configuration mechanism #1, BAR sizing and moves, INTx, MSI-X, checkpoint state. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "device_fakes.h"
#include "devices/pci.h"

#define MMIO_BASE 0xC0000000u
#define MMIO_SIZE 0x3EC00000u

struct test_ctx {
	struct fake_env f;
	struct pci_bus *bus;
	struct pci_dev *dev;
	unsigned bar_hits;
	uint64_t last_offset;
};

static void test_bar_access(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct test_ctx *t = opaque;

	t->bar_hits++;
	t->last_offset = off;
	if (!is_write)
		memset(data, 0x5A, len);
}

static int setup(void **state)
{
	static const struct pci_dev_id id = {
		.vendor_id = 0x1234, .device_id = 0x5678, .class_code = 0xFF0000,
	};
	struct test_ctx *t = calloc(1, sizeof(*t));

	fake_env_init(&t->f, 4096);
	t->bus = pci_bus_create(&t->f.env, MMIO_BASE, MMIO_SIZE);
	assert_non_null(t->bus);
	t->f.env.pci = t->bus;
	t->dev = pci_dev_add(t->bus, &id, "test");
	assert_non_null(t->dev);
	assert_int_equal(pci_dev_add_bar(t->dev, 0, 0x4000, test_bar_access, t), 0);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct test_ctx *t = *state;

	pci_dev_remove(t->dev);
	pci_bus_destroy(t->bus);
	fake_env_free(&t->f);
	free(t);
	return 0;
}

static void test_host_bridge_ids(void **state)
{
	struct test_ctx *t = *state;

	assert_int_equal(fake_pci_read(&t->f, 0, 0x00, 2), 0x8086);
	assert_int_equal(fake_pci_read(&t->f, 0, 0x02, 2), 0x1237);
	assert_int_equal(fake_pci_read(&t->f, 0, 0x08, 4) >> 8, 0x060000);
	assert_int_equal(fake_pci_read(&t->f, 1, 0x00, 4), 0x56781234);
}

static void test_address_latch_reads_back(void **state)
{
	struct test_ctx *t = *state;

	fake_out(&t->f.pio, 0xCF8, 0x80000000, 4);
	assert_int_equal(fake_in(&t->f.pio, 0xCF8, 4), 0x80000000);
	/* Bits 1:0 and 30:24 are not part of the latch. */
	fake_out(&t->f.pio, 0xCF8, 0xFF000803, 4);
	assert_int_equal(fake_in(&t->f.pio, 0xCF8, 4), 0x80000800);
}

static void test_absent_device_reads_ones(void **state)
{
	struct test_ctx *t = *state;

	assert_int_equal(fake_pci_read(&t->f, 7, 0x00, 2), 0xFFFF);
	assert_int_equal(fake_pci_read(&t->f, 7, 0x00, 4), 0xFFFFFFFF);
	/* Function 1 and bus 1 do not exist either. */
	fake_out(&t->f.pio, 0xCF8, 0x80000100, 4);
	assert_int_equal(fake_in(&t->f.pio, 0xCFC, 2), 0xFFFF);
	fake_out(&t->f.pio, 0xCF8, 0x80010000, 4);
	assert_int_equal(fake_in(&t->f.pio, 0xCFC, 2), 0xFFFF);
	/* Enable bit clear: no configuration cycle. */
	fake_out(&t->f.pio, 0xCF8, 0x00000800, 4);
	assert_int_equal(fake_in(&t->f.pio, 0xCFC, 2), 0xFFFF);
}

static void test_read_only_ids_ignore_writes(void **state)
{
	struct test_ctx *t = *state;

	fake_pci_write(&t->f, 1, 0x00, 0xFFFFFFFF, 4);
	assert_int_equal(fake_pci_read(&t->f, 1, 0x00, 4), 0x56781234);
	fake_pci_write(&t->f, 1, PCI_INTERRUPT_LINE, 0x0B, 1);
	assert_int_equal(fake_pci_read(&t->f, 1, PCI_INTERRUPT_LINE, 1), 0x0B);
	assert_int_equal(fake_pci_read(&t->f, 1, PCI_INTERRUPT_PIN, 1), 1);
}

static void test_bar_initial_placement(void **state)
{
	struct test_ctx *t = *state;
	uint8_t buf[4];

	assert_int_equal(fake_pci_read(&t->f, 1, PCI_BASE_ADDRESS_0, 4), MMIO_BASE);
	assert_int_equal(pci_dev_bar_mapped_addr(t->dev, 0), MMIO_BASE);
	assert_true(bus_dispatch(&t->f.mmio, MMIO_BASE + 0x10, buf, 4, false));
	assert_int_equal(t->bar_hits, 1);
	assert_int_equal(t->last_offset, 0x10);
	assert_int_equal(buf[0], 0x5A);
}

static void test_bar_sizing(void **state)
{
	struct test_ctx *t = *state;

	/* Linux turns memory decoding off around the sizing writes. */
	fake_pci_write(&t->f, 1, PCI_COMMAND, 0, 2);
	fake_pci_write(&t->f, 1, PCI_BASE_ADDRESS_0, 0xFFFFFFFF, 4);
	assert_int_equal(fake_pci_read(&t->f, 1, PCI_BASE_ADDRESS_0, 4), 0xFFFFC000);
	/* Unimplemented BARs read as zero whatever is written. */
	fake_pci_write(&t->f, 1, PCI_BASE_ADDRESS_0 + 8, 0xFFFFFFFF, 4);
	assert_int_equal(fake_pci_read(&t->f, 1, PCI_BASE_ADDRESS_0 + 8, 4), 0);
	fake_pci_write(&t->f, 1, PCI_BASE_ADDRESS_0, MMIO_BASE, 4);
	fake_pci_write(&t->f, 1, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
	assert_int_equal(pci_dev_bar_mapped_addr(t->dev, 0), MMIO_BASE);
}

static void test_bar_move(void **state)
{
	struct test_ctx *t = *state;
	uint8_t buf[4];

	/* The low bits of a misaligned address are masked by the BAR size. */
	fake_pci_write(&t->f, 1, PCI_BASE_ADDRESS_0, 0xD0001234, 4);
	assert_int_equal(fake_pci_read(&t->f, 1, PCI_BASE_ADDRESS_0, 4), 0xD0000000);
	assert_int_equal(pci_dev_bar_mapped_addr(t->dev, 0), 0xD0000000);
	assert_false(bus_dispatch(&t->f.mmio, MMIO_BASE, buf, 4, false));
	assert_true(bus_dispatch(&t->f.mmio, 0xD0000000 + 0x3FFC, buf, 4, false));
	assert_int_equal(t->last_offset, 0x3FFC);
}

static void test_memory_enable_gates_bar(void **state)
{
	struct test_ctx *t = *state;
	uint8_t buf[4];

	fake_pci_write(&t->f, 1, PCI_COMMAND, 0, 2);
	assert_int_equal(pci_dev_bar_mapped_addr(t->dev, 0), 0);
	assert_false(bus_dispatch(&t->f.mmio, MMIO_BASE, buf, 4, false));
	fake_pci_write(&t->f, 1, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
	assert_true(bus_dispatch(&t->f.mmio, MMIO_BASE, buf, 4, false));
}

static void test_intx_follows_level_and_disable(void **state)
{
	struct test_ctx *t = *state;
	uint32_t gsi = pci_dev_intx_gsi(t->dev);

	assert_true(gsi == 10 || gsi == 11);
	pci_dev_set_intx(t->dev, 1);
	assert_int_equal(t->f.irq.level[gsi], 1);
	assert_true(fake_pci_read(&t->f, 1, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	fake_pci_write(&t->f, 1, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_INTX_DISABLE, 2);
	assert_int_equal(t->f.irq.level[gsi], 0);
	fake_pci_write(&t->f, 1, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
	assert_int_equal(t->f.irq.level[gsi], 1);
	pci_dev_set_intx(t->dev, 0);
	assert_int_equal(t->f.irq.level[gsi], 0);
	assert_false(fake_pci_read(&t->f, 1, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
}

static unsigned find_cap(struct fake_env *f, unsigned slot, uint8_t id)
{
	unsigned off = fake_pci_read(f, slot, PCI_CAPABILITY_LIST, 1);

	while (off) {
		if (fake_pci_read(f, slot, off, 1) == id)
			return off;
		off = fake_pci_read(f, slot, off + 1, 1);
	}
	return 0;
}

static void test_msix_mask_and_pending(void **state)
{
	struct test_ctx *t = *state;
	unsigned cap;
	uint64_t table;

	assert_int_equal(pci_dev_add_msix(t->dev, 1, 2), 0);
	cap = find_cap(&t->f, 1, PCI_CAP_ID_MSIX);
	assert_int_not_equal(cap, 0);
	assert_int_equal(fake_pci_read(&t->f, 1, cap + 2, 2) & 0x7FF, 1); /* table size - 1 */
	table = fake_pci_read(&t->f, 1, PCI_BASE_ADDRESS_0 + 4, 4);
	assert_int_equal(table & 0xFFF, 0);

	/* Disabled: nothing is sent or recorded. */
	pci_msix_notify(t->dev, 1);
	assert_int_equal(t->f.irq.nr_msi, 0);

	fake_pci_write(&t->f, 1, cap + 2, PCI_MSIX_FLAGS_ENABLE, 2);
	assert_true(pci_msix_enabled(t->dev));
	fake_out(&t->f.mmio, table + 16, 0xFEE00000, 4);
	fake_out(&t->f.mmio, table + 20, 0, 4);
	fake_out(&t->f.mmio, table + 24, 0x4041, 4);

	/* Vector 1 is still masked: the message waits in the PBA. */
	pci_msix_notify(t->dev, 1);
	assert_int_equal(t->f.irq.nr_msi, 0);
	assert_int_equal(fake_in(&t->f.mmio, table + 0x800, 4), 2);

	fake_out(&t->f.mmio, table + 28, 0, 4);
	assert_int_equal(t->f.irq.nr_msi, 1);
	assert_int_equal(t->f.irq.msi_addr[0], 0xFEE00000);
	assert_int_equal(t->f.irq.msi_data[0], 0x4041);
	assert_int_equal(fake_in(&t->f.mmio, table + 0x800, 4), 0);

	pci_msix_notify(t->dev, 1);
	assert_int_equal(t->f.irq.nr_msi, 2);
	/* The function mask keeps it pending, and clearing the mask delivers it. */
	fake_pci_write(&t->f, 1, cap + 2, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL, 2);
	pci_msix_notify(t->dev, 1);
	assert_int_equal(t->f.irq.nr_msi, 2);
	fake_pci_write(&t->f, 1, cap + 2, PCI_MSIX_FLAGS_ENABLE, 2);
	assert_int_equal(t->f.irq.nr_msi, 3);
	/* Vectors past the table are ignored. */
	pci_msix_notify(t->dev, 5);
	assert_int_equal(t->f.irq.nr_msi, 3);
}

static void test_state_round_trip(void **state)
{
	struct test_ctx *t = *state;
	struct pci_dev_state st;
	struct ser_writer w;
	struct ser_reader r;

	fake_pci_write(&t->f, 1, PCI_BASE_ADDRESS_0, 0xD0000000, 4);
	ser_writer_init(&w);
	pci_dev_save(t->dev, &w);
	assert_int_equal(w.err, 0);

	fake_pci_write(&t->f, 1, PCI_BASE_ADDRESS_0, 0xE0000000, 4);
	fake_pci_write(&t->f, 1, PCI_INTERRUPT_LINE, 3, 1);
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(pci_dev_read_state(t->dev, &r, &st), 0);
	assert_int_equal(de_finish(&r), 0);
	assert_int_equal(pci_dev_apply_state(t->dev, &st), 0);
	assert_int_equal(fake_pci_read(&t->f, 1, PCI_BASE_ADDRESS_0, 4), 0xD0000000);
	assert_int_equal(pci_dev_bar_mapped_addr(t->dev, 0), 0xD0000000);
	assert_int_not_equal(fake_pci_read(&t->f, 1, PCI_INTERRUPT_LINE, 1), 3);
	ser_writer_free(&w);
}

static void test_state_rejects_foreign_device(void **state)
{
	struct test_ctx *t = *state;
	struct pci_dev_state st;
	struct ser_writer w;
	struct ser_reader r;

	ser_writer_init(&w);
	pci_dev_save(t->dev, &w);
	w.buf[PCI_DEVICE_ID] ^= 1; /* another device's state */
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(pci_dev_read_state(t->dev, &r, &st), -EBADMSG);

	w.buf[PCI_DEVICE_ID] ^= 1;
	w.buf[PCI_BASE_ADDRESS_0] |= 0x10; /* below the BAR's alignment */
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(pci_dev_read_state(t->dev, &r, &st), -EBADMSG);

	w.buf[PCI_BASE_ADDRESS_0] &= (uint8_t)~0x10;
	ser_reader_init(&r, w.buf, w.len - 1); /* truncated */
	assert_int_equal(pci_dev_read_state(t->dev, &r, &st), -EBADMSG);
	ser_writer_free(&w);
}

static void test_bridge_state_round_trip(void **state)
{
	struct test_ctx *t = *state;
	struct device dev;
	struct ser_writer w;
	struct ser_reader r;

	pci_bus_get_device(t->bus, &dev);
	fake_out(&t->f.pio, 0xCF8, 0x80000808, 4);
	ser_writer_init(&w);
	dev.ops->save(dev.priv, &w);
	fake_out(&t->f.pio, 0xCF8, 0, 4);
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(dev.ops->load(dev.priv, &r), 0);
	assert_int_equal(fake_in(&t->f.pio, 0xCF8, 4), 0x80000808);

	w.buf[0] = 0x01; /* reserved latch bits */
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(dev.ops->load(dev.priv, &r), -EBADMSG);
	ser_writer_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_host_bridge_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_address_latch_reads_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_absent_device_reads_ones, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_only_ids_ignore_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bar_initial_placement, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bar_sizing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bar_move, setup, teardown),
		cmocka_unit_test_setup_teardown(test_memory_enable_gates_bar, setup, teardown),
		cmocka_unit_test_setup_teardown(test_intx_follows_level_and_disable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msix_mask_and_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_rejects_foreign_device, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bridge_state_round_trip, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
