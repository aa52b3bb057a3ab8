/* i8042: self test, command byte, keyboard identify, reset line, checkpoint state. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "device_fakes.h"
#include "devices/i8042.h"

struct test_ctx {
	struct fake_env f;
	struct device dev;
	unsigned resets;
};

static void count_reset(void *opaque)
{
	struct test_ctx *t = opaque;

	t->resets++;
}

static void cmd(struct test_ctx *t, uint8_t v)
{
	fake_out(&t->f.pio, 0x64, v, 1);
}

static void data_out(struct test_ctx *t, uint8_t v)
{
	fake_out(&t->f.pio, 0x60, v, 1);
}

static uint8_t status(struct test_ctx *t)
{
	return (uint8_t)fake_in(&t->f.pio, 0x64, 1);
}

static uint8_t data_in(struct test_ctx *t)
{
	assert_true(status(t) & 0x01);
	return (uint8_t)fake_in(&t->f.pio, 0x60, 1);
}

static int setup(void **state)
{
	struct test_ctx *t = calloc(1, sizeof(*t));

	fake_env_init(&t->f, 4096);
	assert_non_null(i8042_create(&t->f.env, count_reset, t, &t->dev));
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct test_ctx *t = *state;

	t->dev.ops->destroy(t->dev.priv);
	fake_env_free(&t->f);
	free(t);
	return 0;
}

static void test_self_test_and_command_byte(void **state)
{
	struct test_ctx *t = *state;

	assert_int_equal(status(t) & 0x01, 0);
	cmd(t, 0xAA);
	assert_int_equal(data_in(t), 0x55);
	cmd(t, 0x60);
	data_out(t, 0x44);
	cmd(t, 0x20);
	assert_int_equal(data_in(t), 0x44);
	assert_int_equal(status(t) & 0x01, 0);
}

static void test_keyboard_identify_raises_irq1(void **state)
{
	struct test_ctx *t = *state;

	data_out(t, 0xF2);
	assert_int_equal(t->f.irq.level[I8042_KBD_GSI], 1);
	assert_int_equal(data_in(t), 0xFA);
	assert_int_equal(data_in(t), 0xAB);
	assert_int_equal(data_in(t), 0x83);
	assert_int_equal(t->f.irq.level[I8042_KBD_GSI], 0);
}

static void test_aux_loopback_and_absent_mouse(void **state)
{
	struct test_ctx *t = *state;

	cmd(t, 0xD3);
	data_out(t, 0x5A);
	assert_int_equal(status(t) & 0x20, 0x20);
	assert_int_equal(t->f.irq.level[I8042_AUX_GSI], 1);
	assert_int_equal(data_in(t), 0x5A);
	cmd(t, 0xD4);
	data_out(t, 0xF2);
	assert_int_equal(status(t) & 0x60, 0x60); /* aux data with timeout */
	assert_int_equal(data_in(t), 0xFE);
}

static void test_reset_commands(void **state)
{
	struct test_ctx *t = *state;

	cmd(t, 0xFE);
	assert_int_equal(t->resets, 1);
	cmd(t, 0xFF); /* pulses nothing */
	assert_int_equal(t->resets, 1);
	cmd(t, 0xD1);
	data_out(t, 0x02); /* output port bit 0 low */
	assert_int_equal(t->resets, 2);
}

static void test_state_round_trip(void **state)
{
	struct test_ctx *t = *state;
	struct ser_writer w;
	struct ser_reader r;

	cmd(t, 0x60);
	data_out(t, 0x45);
	data_out(t, 0xFF);
	cmd(t, 0xD1);
	ser_writer_init(&w);
	t->dev.ops->save(t->dev.priv, &w);
	data_in(t);
	data_in(t);

	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(t->dev.ops->load(t->dev.priv, &r), 0);
	assert_int_equal(data_in(t), 0xFA);
	assert_int_equal(data_in(t), 0xAA);
	data_out(t, 0x03); /* the pending 0xD1 survived: output port write, no reset */
	assert_int_equal(t->resets, 0);
	cmd(t, 0x20);
	assert_int_equal(data_in(t), 0x45);

	w.buf[3] = 0x99; /* not a command that takes a data byte */
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(t->dev.ops->load(t->dev.priv, &r), -EBADMSG);
	w.buf[3] = 0xD1;
	ser_reader_init(&r, w.buf, w.len - 1);
	assert_int_equal(t->dev.ops->load(t->dev.priv, &r), -EBADMSG);
	ser_writer_free(&w);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_self_test_and_command_byte),
		T(test_keyboard_identify_raises_irq1),
		T(test_aux_loopback_and_absent_mouse),
		T(test_reset_commands),
		T(test_state_round_trip),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
