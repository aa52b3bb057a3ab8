/*
 * virtio-blk through its PCI transport, driven as a driver would: feature
 * negotiation, queue setup in fake guest memory, requests on a temporary image file,
 * interrupts (INTx and MSI-X), and checkpoint state.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <unistd.h>
#include <cmocka.h>

#include "device_fakes.h"
#include "devices/pci.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_pci.h"

#define RAM_SIZE 0x100000
#define QSIZE 16
#define DESC_GPA 0x1000
#define AVAIL_GPA 0x2000
#define USED_GPA 0x3000
#define HDR_GPA 0x8000
#define STATUS_GPA 0x8100
#define DATA_GPA 0x10000
#define DISK_SECTORS 64
#define SLOT 1

#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4
#define T_GET_ID 8
#define S_OK 0
#define S_IOERR 1
#define S_UNSUPP 2

struct test_ctx {
	struct fake_env f;
	struct pci_bus *bus;
	struct device dev;
	char path[64];
	int fd;
	uint64_t bar;
	uint16_t avail_idx;
};

static void mmio_write(struct test_ctx *t, uint64_t off, uint32_t val, uint32_t len)
{
	fake_out(&t->f.mmio, t->bar + off, val, len);
}

static uint32_t mmio_read(struct test_ctx *t, uint64_t off, uint32_t len)
{
	return fake_in(&t->f.mmio, t->bar + off, len);
}

static uint16_t used_idx(struct test_ctx *t)
{
	uint16_t v;

	memcpy(&v, t->f.ram + USED_GPA + 2, 2);
	return v;
}

static uint32_t used_len(struct test_ctx *t, uint16_t idx)
{
	uint32_t v;

	memcpy(&v, t->f.ram + USED_GPA + 4 + 8 * (idx % QSIZE) + 4, 4);
	return v;
}

static void write_desc(struct test_ctx *t, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
		       uint16_t next)
{
	uint8_t *d = t->f.ram + DESC_GPA + 16 * i;

	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

static void make_avail(struct test_ctx *t, uint16_t head)
{
	uint8_t *avail = t->f.ram + AVAIL_GPA;

	memcpy(avail + 4 + 2 * (t->avail_idx % QSIZE), &head, 2);
	t->avail_idx++;
	memcpy(avail + 2, &t->avail_idx, 2);
}

/* Negotiates VERSION_1 (+ `features_lo`) and sets up queue 0, as Linux's driver does. */
static void driver_init(struct test_ctx *t, uint32_t features_lo)
{
	mmio_write(t, VIRTIO_PCI_COMMON_STATUS, 0, 1);
	mmio_write(t, VIRTIO_PCI_COMMON_STATUS, VIRTIO_STATUS_ACKNOWLEDGE, 1);
	mmio_write(t, VIRTIO_PCI_COMMON_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER, 1);
	mmio_write(t, VIRTIO_PCI_COMMON_GFSELECT, 0, 4);
	mmio_write(t, VIRTIO_PCI_COMMON_GF, features_lo, 4);
	mmio_write(t, VIRTIO_PCI_COMMON_GFSELECT, 1, 4);
	mmio_write(t, VIRTIO_PCI_COMMON_GF, 1, 4);
	mmio_write(t, VIRTIO_PCI_COMMON_STATUS, 0x0B, 1);
	assert_int_equal(mmio_read(t, VIRTIO_PCI_COMMON_STATUS, 1), 0x0B);

	mmio_write(t, VIRTIO_PCI_COMMON_Q_SELECT, 0, 2);
	assert_int_equal(mmio_read(t, VIRTIO_PCI_COMMON_Q_SIZE, 2), VIRTIO_BLK_QUEUE_SIZE);
	mmio_write(t, VIRTIO_PCI_COMMON_Q_SIZE, QSIZE, 2);
	mmio_write(t, VIRTIO_PCI_COMMON_Q_DESC, DESC_GPA, 4);
	mmio_write(t, VIRTIO_PCI_COMMON_Q_DESC + 4, 0, 4);
	mmio_write(t, VIRTIO_PCI_COMMON_Q_AVAIL, AVAIL_GPA, 4);
	mmio_write(t, VIRTIO_PCI_COMMON_Q_AVAIL + 4, 0, 4);
	mmio_write(t, VIRTIO_PCI_COMMON_Q_USED, USED_GPA, 4);
	mmio_write(t, VIRTIO_PCI_COMMON_Q_USED + 4, 0, 4);
	mmio_write(t, VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
	assert_int_equal(mmio_read(t, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 1);
	mmio_write(t, VIRTIO_PCI_COMMON_STATUS, 0x0F, 1);
	memset(t->f.ram + AVAIL_GPA, 0, 0x2000);
	t->avail_idx = 0;
}

/*
 * Submits header + optional data + status as descriptors 0..2, notifies, and returns
 * the status byte the device wrote.
 */
static uint8_t submit(struct test_ctx *t, uint32_t type, uint64_t sector, uint32_t data_len,
		      bool data_writable)
{
	uint8_t *hdr = t->f.ram + HDR_GPA;
	uint16_t before = used_idx(t);
	unsigned status_desc = data_len ? 2 : 1;

	memcpy(hdr, &type, 4);
	memset(hdr + 4, 0, 4);
	memcpy(hdr + 8, &sector, 8);
	t->f.ram[STATUS_GPA] = 0xEE;
	write_desc(t, 0, HDR_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	if (data_len)
		write_desc(t, 1, DATA_GPA, data_len,
			   VIRTQ_DESC_F_NEXT | (data_writable ? VIRTQ_DESC_F_WRITE : 0), 2);
	write_desc(t, status_desc, STATUS_GPA, 1, VIRTQ_DESC_F_WRITE, 0);
	make_avail(t, 0);
	mmio_write(t, VIRTIO_PCI_NOTIFY_OFFSET, 0, 2);
	assert_int_equal(used_idx(t), (uint16_t)(before + 1));
	return t->f.ram[STATUS_GPA];
}

static int setup_common(void **state, bool readonly)
{
	struct test_ctx *t = calloc(1, sizeof(*t));
	uint8_t sector[512];

	fake_env_init(&t->f, RAM_SIZE);
	t->bus = pci_bus_create(&t->f.env, 0xC0000000, 0x3EC00000);
	assert_non_null(t->bus);
	t->f.env.pci = t->bus;

	snprintf(t->path, sizeof(t->path), "/tmp/cryo-test-blk-XXXXXX");
	t->fd = mkstemp(t->path);
	assert_true(t->fd >= 0);
	for (unsigned s = 0; s < DISK_SECTORS; s++) {
		memset(sector, (int)s, sizeof(sector));
		assert_int_equal(pwrite(t->fd, sector, sizeof(sector), (off_t)s * 512), 512);
	}
	assert_int_equal(virtio_blk_create(&t->f.env, t->path, readonly, &t->dev), 0);
	t->bar = fake_pci_read(&t->f, SLOT, PCI_BASE_ADDRESS_0, 4);
	assert_int_equal(fake_pci_read(&t->f, SLOT, PCI_VENDOR_ID, 2), 0x1AF4);
	assert_int_equal(fake_pci_read(&t->f, SLOT, PCI_DEVICE_ID, 2), 0x1042);
	*state = t;
	return 0;
}

static int setup(void **state)
{
	return setup_common(state, false);
}

static int setup_readonly(void **state)
{
	return setup_common(state, true);
}

static int teardown(void **state)
{
	struct test_ctx *t = *state;

	t->dev.ops->destroy(t->dev.priv);
	pci_bus_destroy(t->bus);
	close(t->fd);
	unlink(t->path);
	fake_env_free(&t->f);
	free(t);
	return 0;
}

static void test_config_reports_capacity(void **state)
{
	struct test_ctx *t = *state;

	assert_int_equal(mmio_read(t, VIRTIO_PCI_DEVICE_OFFSET, 4), DISK_SECTORS);
	assert_int_equal(mmio_read(t, VIRTIO_PCI_DEVICE_OFFSET + 4, 4), 0);
	assert_int_equal(mmio_read(t, VIRTIO_PCI_DEVICE_OFFSET + 20, 4), 512);
	mmio_write(t, VIRTIO_PCI_COMMON_DFSELECT, 1, 4);
	assert_int_equal(mmio_read(t, VIRTIO_PCI_COMMON_DF, 4) & 1, 1); /* VERSION_1 */
	mmio_write(t, VIRTIO_PCI_COMMON_DFSELECT, 0, 4);
	assert_int_equal(mmio_read(t, VIRTIO_PCI_COMMON_DF, 4) & (1u << 5), 0); /* not RO */
}

static void test_features_without_version_1_rejected(void **state)
{
	struct test_ctx *t = *state;

	mmio_write(t, VIRTIO_PCI_COMMON_STATUS, 3, 1);
	mmio_write(t, VIRTIO_PCI_COMMON_GFSELECT, 1, 4);
	mmio_write(t, VIRTIO_PCI_COMMON_GF, 0, 4);
	mmio_write(t, VIRTIO_PCI_COMMON_STATUS, 0x0B, 1);
	assert_int_equal(mmio_read(t, VIRTIO_PCI_COMMON_STATUS, 1), 3);
}

static void test_read_request(void **state)
{
	struct test_ctx *t = *state;

	driver_init(t, 0);
	assert_int_equal(submit(t, T_IN, 5, 1024, true), S_OK);
	assert_int_equal(t->f.ram[DATA_GPA], 5);
	assert_int_equal(t->f.ram[DATA_GPA + 511], 5);
	assert_int_equal(t->f.ram[DATA_GPA + 512], 6);
	assert_int_equal(used_len(t, 0), 1025);
}

static void test_write_and_flush(void **state)
{
	struct test_ctx *t = *state;
	uint8_t buf[512];

	driver_init(t, 0);
	memset(t->f.ram + DATA_GPA, 0xAB, 512);
	assert_int_equal(submit(t, T_OUT, 9, 512, false), S_OK);
	assert_int_equal(used_len(t, 0), 1);
	assert_int_equal(pread(t->fd, buf, 512, 9 * 512), 512);
	assert_int_equal(buf[0], 0xAB);
	assert_int_equal(buf[511], 0xAB);
	assert_int_equal(pread(t->fd, buf, 1, 10 * 512), 1);
	assert_int_equal(buf[0], 10);
	assert_int_equal(submit(t, T_FLUSH, 0, 0, false), S_OK);
}

static void test_get_id(void **state)
{
	struct test_ctx *t = *state;
	const char *base = strrchr(t->path, '/') + 1;

	driver_init(t, 0);
	assert_int_equal(submit(t, T_GET_ID, 0, 20, true), S_OK);
	assert_memory_equal(t->f.ram + DATA_GPA, base, strlen(base));
}

static void test_out_of_range_and_unknown(void **state)
{
	struct test_ctx *t = *state;

	driver_init(t, 0);
	assert_int_equal(submit(t, T_IN, DISK_SECTORS, 512, true), S_IOERR);
	assert_int_equal(submit(t, T_IN, DISK_SECTORS - 1, 1024, true), S_IOERR);
	assert_int_equal(submit(t, T_OUT, UINT64_MAX, 512, false), S_IOERR);
	assert_int_equal(submit(t, T_IN, 0, 100, true), S_IOERR); /* not whole sectors */
	assert_int_equal(submit(t, 77, 0, 0, false), S_UNSUPP);
	assert_int_equal(submit(t, T_IN, DISK_SECTORS - 1, 512, true), S_OK);
}

static void test_readonly_rejects_writes(void **state)
{
	struct test_ctx *t = *state;
	uint8_t buf[1];

	mmio_write(t, VIRTIO_PCI_COMMON_DFSELECT, 0, 4);
	assert_true(mmio_read(t, VIRTIO_PCI_COMMON_DF, 4) & (1u << 5));
	driver_init(t, 1u << 5);
	memset(t->f.ram + DATA_GPA, 0xCD, 512);
	assert_int_equal(submit(t, T_OUT, 3, 512, false), S_IOERR);
	assert_int_equal(pread(t->fd, buf, 1, 3 * 512), 1);
	assert_int_equal(buf[0], 3);
	assert_int_equal(submit(t, T_IN, 3, 512, true), S_OK);
}

static void test_malformed_chain_completed(void **state)
{
	struct test_ctx *t = *state;
	uint16_t before;

	driver_init(t, 0);
	/* Header descriptor loops back on itself: consumed with used length 0. */
	write_desc(t, 0, HDR_GPA, 16, VIRTQ_DESC_F_NEXT, 0);
	make_avail(t, 0);
	before = used_idx(t);
	mmio_write(t, VIRTIO_PCI_NOTIFY_OFFSET, 0, 2);
	assert_int_equal(used_idx(t), (uint16_t)(before + 1));
	assert_int_equal(used_len(t, before), 0);
	/* A header shorter than 16 bytes gets IOERR in its status byte. */
	write_desc(t, 0, HDR_GPA, 8, VIRTQ_DESC_F_NEXT, 1);
	write_desc(t, 1, STATUS_GPA, 1, VIRTQ_DESC_F_WRITE, 0);
	make_avail(t, 0);
	mmio_write(t, VIRTIO_PCI_NOTIFY_OFFSET, 0, 2);
	assert_int_equal(t->f.ram[STATUS_GPA], S_IOERR);
	/* The device still works. */
	assert_int_equal(submit(t, T_IN, 1, 512, true), S_OK);
}

static void test_broken_ring_needs_reset(void **state)
{
	struct test_ctx *t = *state;
	uint16_t idx = 100;

	driver_init(t, 0);
	memcpy(t->f.ram + AVAIL_GPA + 2, &idx, 2);
	mmio_write(t, VIRTIO_PCI_NOTIFY_OFFSET, 0, 2);
	assert_true(mmio_read(t, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_NEEDS_RESET);
	/* Reset clears it, and the device works again. */
	driver_init(t, 0);
	assert_false(mmio_read(t, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_NEEDS_RESET);
	assert_int_equal(submit(t, T_IN, 1, 512, true), S_OK);
}

static void test_intx_and_isr(void **state)
{
	struct test_ctx *t = *state;
	unsigned gsi = fake_pci_read(&t->f, SLOT, PCI_INTERRUPT_LINE, 1);

	driver_init(t, 0);
	submit(t, T_IN, 0, 512, true);
	assert_int_equal(t->f.irq.level[gsi], 1);
	assert_int_equal(mmio_read(t, VIRTIO_PCI_ISR_OFFSET, 1), VIRTIO_ISR_QUEUE);
	assert_int_equal(t->f.irq.level[gsi], 0);
	assert_int_equal(mmio_read(t, VIRTIO_PCI_ISR_OFFSET, 1), 0);
}

static void test_msix_queue_vector(void **state)
{
	struct test_ctx *t = *state;
	uint64_t table = fake_pci_read(&t->f, SLOT, PCI_BASE_ADDRESS_0 + 4 * VIRTIO_PCI_MSIX_BAR, 4);
	unsigned cap = 0x40;

	while (fake_pci_read(&t->f, SLOT, cap, 1) != PCI_CAP_ID_MSIX)
		cap = fake_pci_read(&t->f, SLOT, cap + 1, 1);
	fake_pci_write(&t->f, SLOT, cap + 2, PCI_MSIX_FLAGS_ENABLE, 2);
	fake_out(&t->f.mmio, table + 16, 0xFEE01000, 4);
	fake_out(&t->f.mmio, table + 24, 0x31, 4);
	fake_out(&t->f.mmio, table + 28, 0, 4);

	driver_init(t, 0);
	mmio_write(t, VIRTIO_PCI_COMMON_Q_MSIX, 1, 2);
	assert_int_equal(mmio_read(t, VIRTIO_PCI_COMMON_Q_MSIX, 2), 1);
	mmio_write(t, VIRTIO_PCI_COMMON_MSIX, 7, 2); /* no such vector */
	assert_int_equal(mmio_read(t, VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_NO_VECTOR);

	submit(t, T_IN, 0, 512, true);
	assert_int_equal(t->f.irq.nr_msi, 1);
	assert_int_equal(t->f.irq.msi_data[0], 0x31);
	/* With MSI-X on, INTx stays low. */
	assert_int_equal(t->f.irq.level[fake_pci_read(&t->f, SLOT, PCI_INTERRUPT_LINE, 1)], 0);
}

static void test_state_round_trip(void **state)
{
	struct test_ctx *t = *state;
	struct ser_writer w;
	struct ser_reader r;

	driver_init(t, 0);
	assert_int_equal(submit(t, T_IN, 2, 512, true), S_OK);
	ser_writer_init(&w);
	t->dev.ops->save(t->dev.priv, &w);
	assert_int_equal(w.err, 0);

	/* Reset the device, move its BAR, then restore: queue and BAR come back. */
	mmio_write(t, VIRTIO_PCI_COMMON_STATUS, 0, 1);
	fake_pci_write(&t->f, SLOT, PCI_BASE_ADDRESS_0, 0xD0000000, 4);
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(t->dev.ops->load(t->dev.priv, &r), 0);
	assert_int_equal(fake_pci_read(&t->f, SLOT, PCI_BASE_ADDRESS_0, 4), t->bar);
	assert_int_equal(mmio_read(t, VIRTIO_PCI_COMMON_STATUS, 1), 0x0F);
	assert_int_equal(submit(t, T_IN, 4, 512, true), S_OK);
	assert_int_equal(t->f.ram[DATA_GPA], 4);
	assert_int_equal(used_idx(t), 2);
	ser_writer_free(&w);
}

static void test_state_rejects_corruption(void **state)
{
	struct test_ctx *t = *state;
	struct ser_writer w;
	struct ser_reader r;
	size_t queue_size_off;
	uint8_t saved;

	driver_init(t, 0);
	ser_writer_init(&w);
	t->dev.ops->save(t->dev.priv, &w);
	mmio_write(t, VIRTIO_PCI_COMMON_STATUS, 0, 1);

	ser_reader_init(&r, w.buf, w.len - 1);
	assert_int_equal(t->dev.ops->load(t->dev.priv, &r), -EBADMSG);

	/* Layout after the PCI state: features 8, selects 8, vector 2, status/gen/isr 3,
	 * select 2, queue count 2, then queue 0's size. */
	queue_size_off = w.len - 9 - (2 + 2 + 1 + 1 + 24 + 2 + 2 + 8);
	saved = w.buf[queue_size_off];
	w.buf[queue_size_off] = 3; /* not a power of two */
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(t->dev.ops->load(t->dev.priv, &r), -EBADMSG);
	w.buf[queue_size_off] = saved;

	w.buf[queue_size_off + 6 + 4] = 0xFF; /* desc address far outside guest memory */
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(t->dev.ops->load(t->dev.priv, &r), -EBADMSG);

	/* Nothing was half-loaded: the device is still in reset. */
	assert_int_equal(mmio_read(t, VIRTIO_PCI_COMMON_STATUS, 1), 0);
	ser_writer_free(&w);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_config_reports_capacity),
		T(test_features_without_version_1_rejected),
		T(test_read_request),
		T(test_write_and_flush),
		T(test_get_id),
		T(test_out_of_range_and_unknown),
		cmocka_unit_test_setup_teardown(test_readonly_rejects_writes, setup_readonly, teardown),
		T(test_malformed_chain_completed),
		T(test_broken_ring_needs_reset),
		T(test_intx_and_isr),
		T(test_msix_queue_vector),
		T(test_state_round_trip),
		T(test_state_rejects_corruption),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
