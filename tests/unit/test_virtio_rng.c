/* virtio-rng: PCI identity, buffers filled through the queue, checkpoint state. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "device_fakes.h"
#include "devices/pci.h"
#include "devices/virtio_pci.h"
#include "devices/virtio_rng.h"

#define RAM_SIZE 0x100000
#define QSIZE 8
#define DESC_GPA 0x1000
#define AVAIL_GPA 0x2000
#define USED_GPA 0x3000
#define BUF_GPA 0x10000
#define SLOT 1

struct test_ctx {
	struct fake_env f;
	struct pci_bus *bus;
	struct device dev;
	uint64_t bar;
};

static void mmio_write(struct test_ctx *t, uint64_t off, uint32_t val, uint32_t len)
{
	fake_out(&t->f.mmio, t->bar + off, val, len);
}

static uint32_t mmio_read(struct test_ctx *t, uint64_t off, uint32_t len)
{
	return fake_in(&t->f.mmio, t->bar + off, len);
}

static int setup(void **state)
{
	struct test_ctx *t = calloc(1, sizeof(*t));

	fake_env_init(&t->f, RAM_SIZE);
	t->bus = pci_bus_create(&t->f.env, 0xC0000000, 0x3EC00000);
	t->f.env.pci = t->bus;
	assert_int_equal(virtio_rng_create(&t->f.env, &t->dev), 0);
	t->bar = fake_pci_read(&t->f, SLOT, PCI_BASE_ADDRESS_0, 4);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct test_ctx *t = *state;

	t->dev.ops->destroy(t->dev.priv);
	pci_bus_destroy(t->bus);
	fake_env_free(&t->f);
	free(t);
	return 0;
}

static void driver_init(struct test_ctx *t)
{
	mmio_write(t, VIRTIO_PCI_COMMON_STATUS, 3, 1);
	mmio_write(t, VIRTIO_PCI_COMMON_GFSELECT, 1, 4);
	mmio_write(t, VIRTIO_PCI_COMMON_GF, 1, 4);
	mmio_write(t, VIRTIO_PCI_COMMON_STATUS, 0x0B, 1);
	mmio_write(t, VIRTIO_PCI_COMMON_Q_SIZE, QSIZE, 2);
	mmio_write(t, VIRTIO_PCI_COMMON_Q_DESC, DESC_GPA, 4);
	mmio_write(t, VIRTIO_PCI_COMMON_Q_AVAIL, AVAIL_GPA, 4);
	mmio_write(t, VIRTIO_PCI_COMMON_Q_USED, USED_GPA, 4);
	mmio_write(t, VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
	mmio_write(t, VIRTIO_PCI_COMMON_STATUS, 0x0F, 1);
}

static void request(struct test_ctx *t, uint16_t avail_idx, uint32_t len)
{
	uint64_t addr = BUF_GPA;
	uint16_t flags = VIRTQ_DESC_F_WRITE, head = 0;
	uint8_t *d = t->f.ram + DESC_GPA;

	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(t->f.ram + AVAIL_GPA + 4 + 2 * ((avail_idx - 1) % QSIZE), &head, 2);
	memcpy(t->f.ram + AVAIL_GPA + 2, &avail_idx, 2);
	mmio_write(t, VIRTIO_PCI_NOTIFY_OFFSET, 0, 2);
}

static void test_identity(void **state)
{
	struct test_ctx *t = *state;

	assert_int_equal(fake_pci_read(&t->f, SLOT, PCI_DEVICE_ID, 2), 0x1044);
	assert_int_equal(mmio_read(t, VIRTIO_PCI_COMMON_NUMQ, 2), 1);
}

static void test_fills_buffer(void **state)
{
	struct test_ctx *t = *state;
	uint32_t used_len;
	unsigned nonzero = 0;

	driver_init(t);
	request(t, 1, 256);
	memcpy(&used_len, t->f.ram + USED_GPA + 8, 4);
	assert_int_equal(used_len, 256);
	for (int i = 0; i < 256; i++)
		nonzero += t->f.ram[BUF_GPA + i] != 0;
	assert_true(nonzero > 200);
}

static void test_state_round_trip(void **state)
{
	struct test_ctx *t = *state;
	struct ser_writer w;
	struct ser_reader r;
	uint16_t used_idx;

	driver_init(t);
	request(t, 1, 16);
	ser_writer_init(&w);
	t->dev.ops->save(t->dev.priv, &w);
	mmio_write(t, VIRTIO_PCI_COMMON_STATUS, 0, 1);
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(t->dev.ops->load(t->dev.priv, &r), 0);
	request(t, 2, 16);
	memcpy(&used_idx, t->f.ram + USED_GPA + 2, 2);
	assert_int_equal(used_idx, 2);

	ser_reader_init(&r, w.buf, w.len - 3); /* truncated */
	assert_int_equal(t->dev.ops->load(t->dev.priv, &r), -EBADMSG);
	ser_writer_free(&w);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_identity),
		T(test_fills_buffer),
		T(test_state_round_trip),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
