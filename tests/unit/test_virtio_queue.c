/*
 * Split virtqueue walker: normal and indirect chains, and hostile rings that must be
 * rejected, counted and consumed without hanging or touching memory outside the guest.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "device_fakes.h"
#include "devices/virtio_queue.h"

#define RAM_SIZE 0x100000
#define QSIZE 8
#define DESC_GPA 0x1000
#define AVAIL_GPA 0x2000
#define USED_GPA 0x3000
#define INDIRECT_GPA 0x4000
#define BUF_GPA 0x10000

struct test_ctx {
	struct fake_env f;
	struct virtq q;
	struct virtq_chain chain;
};

static void put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

static uint16_t get16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return v;
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static void write_desc(uint8_t *table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
		       uint16_t next)
{
	uint8_t *d = table + 16 * i;

	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

static void set_desc(struct test_ctx *t, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	write_desc(t->f.ram + DESC_GPA, i, addr, len, flags, next);
}

/* Makes `head` available, as the driver does, and returns the new avail idx. */
static uint16_t make_avail(struct test_ctx *t, uint16_t head)
{
	uint8_t *avail = t->f.ram + AVAIL_GPA;
	uint16_t idx = get16(avail + 2);

	put16(avail + 4 + 2 * (idx % QSIZE), head);
	put16(avail + 2, (uint16_t)(idx + 1));
	return (uint16_t)(idx + 1);
}

static int setup(void **state)
{
	struct test_ctx *t = calloc(1, sizeof(*t));

	fake_env_init(&t->f, RAM_SIZE);
	virtq_reset(&t->q, QSIZE);
	t->q.desc_gpa = DESC_GPA;
	t->q.avail_gpa = AVAIL_GPA;
	t->q.used_gpa = USED_GPA;
	assert_int_equal(virtq_enable(&t->q, &t->f.mem), 0);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct test_ctx *t = *state;

	fake_env_free(&t->f);
	free(t);
	return 0;
}

static void test_enable_rejects_bad_rings(void **state)
{
	struct test_ctx *t = *state;
	struct virtq q;

	virtq_reset(&q, QSIZE);
	q.desc_gpa = RAM_SIZE - 64; /* 8 descriptors need 128 bytes */
	q.avail_gpa = AVAIL_GPA;
	q.used_gpa = USED_GPA;
	assert_int_equal(virtq_enable(&q, &t->f.mem), -EINVAL);
	assert_false(q.enabled);

	q.desc_gpa = DESC_GPA + 8; /* misaligned */
	assert_int_equal(virtq_enable(&q, &t->f.mem), -EINVAL);

	q.desc_gpa = DESC_GPA;
	q.size = 6; /* not a power of two */
	assert_int_equal(virtq_enable(&q, &t->f.mem), -EINVAL);
	q.size = 16; /* above the maximum */
	assert_int_equal(virtq_enable(&q, &t->f.mem), -EINVAL);
}

static void test_empty_queue(void **state)
{
	struct test_ctx *t = *state;

	assert_int_equal(virtq_pop(&t->q, &t->chain), VIRTQ_POP_EMPTY);
}

static void test_normal_chain(void **state)
{
	struct test_ctx *t = *state;

	set_desc(t, 3, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 5);
	set_desc(t, 5, BUF_GPA + 0x100, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 0);
	set_desc(t, 0, BUF_GPA + 0x400, 1, VIRTQ_DESC_F_WRITE, 0);
	make_avail(t, 3);

	assert_int_equal(virtq_pop(&t->q, &t->chain), VIRTQ_POP_OK);
	assert_int_equal(t->chain.head, 3);
	assert_int_equal(t->chain.nr_segs, 3);
	assert_int_equal(t->chain.nr_readable, 1);
	assert_int_equal(t->chain.readable_len, 16);
	assert_int_equal(t->chain.writable_len, 513);
	assert_ptr_equal(t->chain.segs[0].host, t->f.ram + BUF_GPA);
	assert_ptr_equal(t->chain.segs[1].host, t->f.ram + BUF_GPA + 0x100);
	assert_true(t->chain.segs[2].write);
	assert_int_equal(virtq_pop(&t->q, &t->chain), VIRTQ_POP_EMPTY);
	assert_int_equal(t->q.bad_chains, 0);
}

static void test_push_updates_used_ring(void **state)
{
	struct test_ctx *t = *state;
	uint8_t *used = t->f.ram + USED_GPA;

	set_desc(t, 2, BUF_GPA, 8, VIRTQ_DESC_F_WRITE, 0);
	make_avail(t, 2);
	assert_int_equal(virtq_pop(&t->q, &t->chain), VIRTQ_POP_OK);
	virtq_push(&t->q, t->chain.head, 8);
	assert_int_equal(get16(used + 2), 1);
	assert_int_equal(get32(used + 4), 2);
	assert_int_equal(get32(used + 8), 8);
	assert_true(virtq_need_interrupt(&t->q));

	/* The driver suppresses interrupts with VIRTQ_AVAIL_F_NO_INTERRUPT. */
	put16(t->f.ram + AVAIL_GPA, VIRTQ_AVAIL_F_NO_INTERRUPT);
	assert_false(virtq_need_interrupt(&t->q));
}

static void test_event_idx_suppression(void **state)
{
	struct test_ctx *t = *state;
	uint8_t *avail = t->f.ram + AVAIL_GPA;
	uint8_t *used = t->f.ram + USED_GPA;

	t->q.event_idx = true;
	set_desc(t, 0, BUF_GPA, 8, VIRTQ_DESC_F_WRITE, 0);
	for (int i = 0; i < 3; i++)
		make_avail(t, 0);
	/* used_event = 2: interrupt only once used->idx passes 2. */
	put16(avail + 4 + 2 * QSIZE, 2);

	assert_int_equal(virtq_pop(&t->q, &t->chain), VIRTQ_POP_OK);
	virtq_push(&t->q, 0, 0);
	assert_true(virtq_need_interrupt(&t->q)); /* first interrupt is always sent */
	assert_int_equal(virtq_pop(&t->q, &t->chain), VIRTQ_POP_OK);
	virtq_push(&t->q, 0, 0);
	assert_false(virtq_need_interrupt(&t->q));
	assert_int_equal(virtq_pop(&t->q, &t->chain), VIRTQ_POP_OK);
	virtq_push(&t->q, 0, 0);
	assert_true(virtq_need_interrupt(&t->q));

	/* Once empty, the device publishes avail_event = its next index. */
	assert_int_equal(virtq_pop(&t->q, &t->chain), VIRTQ_POP_EMPTY);
	assert_int_equal(get16(used + 4 + 8 * QSIZE), 3);
}

static void test_indirect_chain(void **state)
{
	struct test_ctx *t = *state;
	uint8_t *table = t->f.ram + INDIRECT_GPA;

	write_desc(table, 0, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	write_desc(table, 1, BUF_GPA + 0x200, 4096, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
	write_desc(table, 2, BUF_GPA + 0x100, 1, VIRTQ_DESC_F_WRITE, 0);
	set_desc(t, 1, INDIRECT_GPA, 3 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	make_avail(t, 1);

	assert_int_equal(virtq_pop(&t->q, &t->chain), VIRTQ_POP_OK);
	assert_int_equal(t->chain.head, 1);
	assert_int_equal(t->chain.nr_segs, 3);
	assert_int_equal(t->chain.writable_len, 4097);
	assert_ptr_equal(t->chain.segs[1].host, t->f.ram + BUF_GPA + 0x200);
}

/* Pops one chain that must be rejected, and checks it was consumed and counted. */
static void expect_bad_chain(struct test_ctx *t, uint16_t head)
{
	uint64_t before = t->q.bad_chains;

	assert_int_equal(virtq_pop(&t->q, &t->chain), -EBADMSG);
	assert_int_equal(t->chain.head, head);
	assert_int_equal(t->q.bad_chains, before + 1);
	assert_false(t->q.broken);
	assert_int_equal(virtq_pop(&t->q, &t->chain), VIRTQ_POP_EMPTY);
}

static void test_loop_rejected(void **state)
{
	struct test_ctx *t = *state;

	set_desc(t, 0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 1);
	set_desc(t, 1, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 0);
	make_avail(t, 0);
	expect_bad_chain(t, 0);

	/* A descriptor that points at itself. */
	set_desc(t, 4, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 4);
	make_avail(t, 4);
	expect_bad_chain(t, 4);
}

static void test_buffer_outside_memory_rejected(void **state)
{
	struct test_ctx *t = *state;

	set_desc(t, 0, RAM_SIZE, 8, 0, 0);
	make_avail(t, 0);
	expect_bad_chain(t, 0);

	/* Starts inside, ends past the end of guest memory. */
	set_desc(t, 0, RAM_SIZE - 4, 8, VIRTQ_DESC_F_WRITE, 0);
	make_avail(t, 0);
	expect_bad_chain(t, 0);

	/* A length that wraps the address space. */
	set_desc(t, 0, 0xFFFFFFFFFFFFF000ull, 0x2000, 0, 0);
	make_avail(t, 0);
	expect_bad_chain(t, 0);
}

static void test_chain_longer_than_queue_rejected(void **state)
{
	struct test_ctx *t = *state;
	uint8_t *table = t->f.ram + INDIRECT_GPA;

	/* An indirect table without loops but with QSIZE + 1 buffers. */
	for (unsigned i = 0; i <= QSIZE; i++)
		write_desc(table, i, BUF_GPA, 8, i < QSIZE ? VIRTQ_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	set_desc(t, 0, INDIRECT_GPA, (QSIZE + 1) * 16, VIRTQ_DESC_F_INDIRECT, 0);
	make_avail(t, 0);
	expect_bad_chain(t, 0);
}

static void test_next_index_out_of_range_rejected(void **state)
{
	struct test_ctx *t = *state;

	set_desc(t, 0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 100);
	make_avail(t, 0);
	expect_bad_chain(t, 0);
}

static void test_readable_after_writable_rejected(void **state)
{
	struct test_ctx *t = *state;

	set_desc(t, 0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	set_desc(t, 1, BUF_GPA, 8, 0, 0);
	make_avail(t, 0);
	expect_bad_chain(t, 0);
}

static void test_nested_indirect_rejected(void **state)
{
	struct test_ctx *t = *state;
	uint8_t *table = t->f.ram + INDIRECT_GPA;

	write_desc(table, 0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 1);
	write_desc(table, 1, INDIRECT_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
	set_desc(t, 0, INDIRECT_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
	make_avail(t, 0);
	expect_bad_chain(t, 0);
}

static void test_bad_indirect_tables_rejected(void **state)
{
	struct test_ctx *t = *state;

	set_desc(t, 0, INDIRECT_GPA, 0, VIRTQ_DESC_F_INDIRECT, 0);
	make_avail(t, 0);
	expect_bad_chain(t, 0);

	set_desc(t, 0, INDIRECT_GPA, 24, VIRTQ_DESC_F_INDIRECT, 0); /* not whole descriptors */
	make_avail(t, 0);
	expect_bad_chain(t, 0);

	set_desc(t, 0, RAM_SIZE - 16, 32, VIRTQ_DESC_F_INDIRECT, 0); /* table past memory */
	make_avail(t, 0);
	expect_bad_chain(t, 0);

	set_desc(t, 0, INDIRECT_GPA, 32, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
	make_avail(t, 0);
	expect_bad_chain(t, 0);
}

static void test_avail_idx_jump_breaks_queue(void **state)
{
	struct test_ctx *t = *state;

	put16(t->f.ram + AVAIL_GPA + 2, QSIZE + 1);
	assert_int_equal(virtq_pop(&t->q, &t->chain), -EIO);
	assert_true(t->q.broken);
	assert_int_equal(t->q.bad_chains, 1);
	/* A broken queue stays stopped: no walk over stale entries. */
	assert_int_equal(virtq_pop(&t->q, &t->chain), -EIO);
	assert_int_equal(t->q.last_avail_idx, 0);
}

static void test_head_past_queue_breaks_queue(void **state)
{
	struct test_ctx *t = *state;

	make_avail(t, QSIZE);
	assert_int_equal(virtq_pop(&t->q, &t->chain), -EIO);
	assert_true(t->q.broken);
	assert_int_equal(t->q.bad_chains, 1);
}

static void test_good_chain_after_bad_one(void **state)
{
	struct test_ctx *t = *state;

	set_desc(t, 0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 0);
	make_avail(t, 0);
	set_desc(t, 1, BUF_GPA, 8, VIRTQ_DESC_F_WRITE, 0);
	make_avail(t, 1);
	assert_int_equal(virtq_pop(&t->q, &t->chain), -EBADMSG);
	assert_int_equal(virtq_pop(&t->q, &t->chain), VIRTQ_POP_OK);
	assert_int_equal(t->chain.head, 1);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_enable_rejects_bad_rings),
		T(test_empty_queue),
		T(test_normal_chain),
		T(test_push_updates_used_ring),
		T(test_event_idx_suppression),
		T(test_indirect_chain),
		T(test_loop_rejected),
		T(test_buffer_outside_memory_rejected),
		T(test_chain_longer_than_queue_rejected),
		T(test_next_index_out_of_range_rejected),
		T(test_readable_after_writable_rejected),
		T(test_nested_indirect_rejected),
		T(test_bad_indirect_tables_rejected),
		T(test_avail_idx_jump_breaks_queue),
		T(test_head_past_queue_breaks_queue),
		T(test_good_chain_after_bad_one),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
