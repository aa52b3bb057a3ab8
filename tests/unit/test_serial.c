/*
 * 16550A UART: registers, Linux's 8250 probe sequence, FIFO, interrupts, loopback,
 * host input, and checkpoint state.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "device_fakes.h"
#include "devices/serial.h"

#define BASE 0x3F8
#define GSI 4
#define RBR 0
#define THR 0
#define IER 1
#define IIR 2
#define FCR 2
#define LCR 3
#define MCR 4
#define LSR 5
#define MSR 6
#define SCR 7

struct test_ctx {
	struct fake_env f;
	struct serial *s;
	struct device dev;
	uint8_t out[64];
	size_t out_len;
};

static void capture_output(void *opaque, const uint8_t *buf, size_t len)
{
	struct test_ctx *t = opaque;

	for (size_t i = 0; i < len && t->out_len < sizeof(t->out); i++)
		t->out[t->out_len++] = buf[i];
}

static void out8(struct test_ctx *t, unsigned reg, uint8_t v)
{
	fake_out(&t->f.pio, BASE + reg, v, 1);
}

static uint8_t in8(struct test_ctx *t, unsigned reg)
{
	return (uint8_t)fake_in(&t->f.pio, BASE + reg, 1);
}

static int setup(void **state)
{
	struct test_ctx *t = calloc(1, sizeof(*t));

	fake_env_init(&t->f, 4096);
	t->s = serial_create(&t->f.env, BASE, GSI, capture_output, t, &t->dev);
	assert_non_null(t->s);
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

static void test_reset_values(void **state)
{
	struct test_ctx *t = *state;

	assert_int_equal(in8(t, IER), 0);
	assert_int_equal(in8(t, IIR), 0x01);
	assert_int_equal(in8(t, LSR), 0x60);
	assert_int_equal(t->f.irq.level[GSI], 0);
}

static void test_scratch_and_divisor_latch(void **state)
{
	struct test_ctx *t = *state;

	out8(t, SCR, 0x5A);
	assert_int_equal(in8(t, SCR), 0x5A);
	out8(t, LCR, 0x83);
	out8(t, 0, 0x01);
	out8(t, 1, 0x02);
	assert_int_equal(in8(t, 0), 0x01);
	assert_int_equal(in8(t, 1), 0x02);
	out8(t, LCR, 0x03);
	assert_int_equal(in8(t, IER), 0);
	/* With DLAB clear, offset 0 transmits. */
	out8(t, THR, 'x');
	assert_int_equal(t->out_len, 1);
	assert_int_equal(t->out[0], 'x');
}

/* The checks of autoconfig() in Linux's drivers/tty/serial/8250/8250_port.c. */
static void test_linux_autoconfig_sees_16550a(void **state)
{
	struct test_ctx *t = *state;

	out8(t, IER, 0);
	assert_int_equal(in8(t, IER) & 0x0F, 0);
	out8(t, IER, 0x0F);
	assert_int_equal(in8(t, IER) & 0x0F, 0x0F);
	out8(t, IER, 0);

	/* Loopback with RTS and OUT2: MSR shows CTS and DCD. */
	out8(t, MCR, 0x10 | 0x0A);
	assert_int_equal(in8(t, MSR) & 0xF0, 0x90);
	out8(t, MCR, 0);

	out8(t, LCR, 0xBF);
	out8(t, FCR, 0);
	out8(t, LCR, 0);
	out8(t, FCR, 0x01);
	assert_int_equal(in8(t, IIR) >> 6, 3);

	/* No EFR behind LCR 0x80 or 0xBF: offset 2 reads as IIR, never 0. */
	out8(t, LCR, 0x80);
	assert_int_not_equal(in8(t, IIR), 0);
	out8(t, LCR, 0xBF);
	assert_int_not_equal(in8(t, IIR), 0);

	/* Not a 16750: IIR bit 5 stays clear with the 64-byte FIFO bit, DLAB or not. */
	out8(t, LCR, 0);
	out8(t, FCR, 0x21);
	assert_int_equal(in8(t, IIR) & 0x20, 0);
	out8(t, LCR, 0x80);
	out8(t, FCR, 0x21);
	assert_int_equal(in8(t, IIR) & 0x20, 0);
	out8(t, LCR, 0);

	/* Not an XScale: IER bit 6 is not writable. */
	out8(t, IER, 0x40);
	assert_int_equal(in8(t, IER) & 0x40, 0);
}

/* serial8250_do_startup() expects THRE to be raised again each time IER.THRI is set. */
static void test_thre_reasserts(void **state)
{
	struct test_ctx *t = *state;

	out8(t, FCR, 0x01);
	out8(t, IER, 0x02);
	assert_int_equal(t->f.irq.level[GSI], 1);
	assert_int_equal(in8(t, IIR) & 0x0F, 0x02);
	/* Reading IIR acknowledged it. */
	assert_int_equal(in8(t, IIR) & 0x0F, 0x01);
	assert_int_equal(t->f.irq.level[GSI], 0);
	out8(t, IER, 0);
	out8(t, IER, 0x02);
	assert_int_equal(in8(t, IIR) & 0x0F, 0x02);

	/* Writing THR clears and, as the byte leaves at once, raises THRE again. */
	out8(t, THR, 'a');
	assert_int_equal(in8(t, IIR) & 0x0F, 0x02);
	out8(t, IER, 0);
	assert_int_equal(t->f.irq.level[GSI], 0);
}

static void test_loopback(void **state)
{
	struct test_ctx *t = *state;

	out8(t, FCR, 0x01);
	out8(t, MCR, 0x10);
	out8(t, THR, 'L');
	assert_int_equal(t->out_len, 0);
	assert_int_equal(in8(t, LSR) & 0x01, 1);
	assert_int_equal(in8(t, RBR), 'L');
	assert_int_equal(in8(t, LSR) & 0x01, 0);
	/* Host input is disconnected in loopback. */
	assert_int_equal(serial_input(t->s, (const uint8_t *)"z", 1), 0);
}

static void test_loopback_overrun(void **state)
{
	struct test_ctx *t = *state;

	out8(t, FCR, 0x01);
	out8(t, MCR, 0x10);
	for (int i = 0; i < 17; i++)
		out8(t, THR, (uint8_t)i);
	assert_int_equal(in8(t, LSR) & 0x03, 0x03);
	assert_int_equal(in8(t, LSR) & 0x02, 0); /* OE clears on read */
	for (int i = 0; i < 16; i++)
		assert_int_equal(in8(t, RBR), i);
}

static void test_input_fills_fifo_and_interrupts(void **state)
{
	struct test_ctx *t = *state;
	uint8_t buf[20];

	for (int i = 0; i < 20; i++)
		buf[i] = (uint8_t)('a' + i);
	out8(t, FCR, 0x01 | 0xC0); /* trigger level 14 */
	out8(t, IER, 0x01);
	assert_int_equal(serial_input(t->s, buf, 20), 16);
	assert_int_equal(t->f.irq.level[GSI], 1);
	assert_int_equal(in8(t, IIR), 0xC4);
	for (int i = 0; i < 3; i++)
		assert_int_equal(in8(t, RBR), 'a' + i);
	/* Below the trigger level the data is reported as a character timeout. */
	assert_int_equal(in8(t, IIR), 0xCC);
	while (in8(t, LSR) & 0x01)
		in8(t, RBR);
	assert_int_equal(in8(t, IIR), 0xC1);
	assert_int_equal(t->f.irq.level[GSI], 0);
}

static void test_input_without_fifo_takes_one_byte(void **state)
{
	struct test_ctx *t = *state;

	assert_int_equal(serial_input(t->s, (const uint8_t *)"ab", 2), 1);
	assert_int_equal(in8(t, RBR), 'a');
	assert_int_equal(serial_input(t->s, (const uint8_t *)"b", 1), 1);
}

static void test_fifo_clear(void **state)
{
	struct test_ctx *t = *state;

	out8(t, FCR, 0x01);
	serial_input(t->s, (const uint8_t *)"abc", 3);
	out8(t, FCR, 0x03);
	assert_int_equal(in8(t, LSR) & 0x01, 0);
}

static void test_modem_status_interrupt(void **state)
{
	struct test_ctx *t = *state;

	out8(t, MCR, 0x10);
	in8(t, MSR);
	out8(t, IER, 0x08);
	out8(t, MCR, 0x10 | 0x02); /* RTS -> CTS in loopback */
	assert_int_equal(in8(t, IIR) & 0x0F, 0x00);
	assert_int_equal(t->f.irq.level[GSI], 1);
	assert_int_equal(in8(t, MSR), 0x11);
	assert_int_equal(t->f.irq.level[GSI], 0);
}

static void test_state_round_trip(void **state)
{
	struct test_ctx *t = *state;
	struct fake_env f2;
	struct device dev2;
	struct serial *s2;
	struct ser_writer w;
	struct ser_reader r;

	out8(t, FCR, 0x81);
	out8(t, LCR, 0x03);
	out8(t, SCR, 0x42);
	out8(t, IER, 0x01);
	serial_input(t->s, (const uint8_t *)"hello", 5);
	in8(t, RBR);
	ser_writer_init(&w);
	t->dev.ops->save(t->dev.priv, &w);
	assert_int_equal(w.err, 0);

	fake_env_init(&f2, 4096);
	s2 = serial_create(&f2.env, BASE, GSI, NULL, NULL, &dev2);
	assert_non_null(s2);
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(dev2.ops->load(dev2.priv, &r), 0);
	assert_int_equal(f2.irq.level[GSI], 1); /* the pending interrupt is driven again */
	assert_int_equal(fake_in(&f2.pio, BASE + SCR, 1), 0x42);
	assert_int_equal(fake_in(&f2.pio, BASE + LCR, 1), 0x03);
	assert_int_equal(fake_in(&f2.pio, BASE + IIR, 1), 0xCC);
	for (const char *p = "ello"; *p; p++)
		assert_int_equal(fake_in(&f2.pio, BASE + RBR, 1), *p);
	assert_int_equal(fake_in(&f2.pio, BASE + LSR, 1) & 0x01, 0);

	dev2.ops->destroy(dev2.priv);
	fake_env_free(&f2);
	ser_writer_free(&w);
}

static void test_state_rejects_corruption(void **state)
{
	struct test_ctx *t = *state;
	struct ser_writer w;
	struct ser_reader r;
	/* Offsets in the saved state: version, ier, fcr, lcr, mcr, scr, dll, dlm, msr delta,
	 * overrun, thr pending, rx count, rx bytes. */
	static const struct {
		size_t off;
		uint8_t value;
	} bad[] = {
		{ 0, 9 },     /* unknown version */
		{ 1, 0x10 },  /* IER reserved bits */
		{ 2, 0x20 },  /* FCR bit not kept */
		{ 4, 0x20 },  /* MCR reserved bit */
		{ 8, 0x10 },  /* MSR delta bits only */
		{ 9, 2 },     /* overrun is a flag */
		{ 11, 17 },   /* more bytes than the FIFO size */
	};

	out8(t, FCR, 0x01);
	out8(t, SCR, 0x77);
	serial_input(t->s, (const uint8_t *)"xy", 2);
	ser_writer_init(&w);
	t->dev.ops->save(t->dev.priv, &w);
	out8(t, SCR, 0x11);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t saved = w.buf[bad[i].off];

		w.buf[bad[i].off] = bad[i].value;
		ser_reader_init(&r, w.buf, w.len);
		assert_int_equal(t->dev.ops->load(t->dev.priv, &r), -EBADMSG);
		w.buf[bad[i].off] = saved;
	}
	ser_reader_init(&r, w.buf, w.len - 1);
	assert_int_equal(t->dev.ops->load(t->dev.priv, &r), -EBADMSG);
	/* A FIFO count above 1 while FIFOs are off is also rejected. */
	w.buf[2] = 0;
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(t->dev.ops->load(t->dev.priv, &r), -EBADMSG);
	/* None of the failed loads changed the device. */
	assert_int_equal(in8(t, SCR), 0x11);
	ser_writer_free(&w);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_reset_values),
		T(test_scratch_and_divisor_latch),
		T(test_linux_autoconfig_sees_16550a),
		T(test_thre_reasserts),
		T(test_loopback),
		T(test_loopback_overrun),
		T(test_input_fills_fifo_and_interrupts),
		T(test_input_without_fifo_takes_one_byte),
		T(test_fifo_clear),
		T(test_modem_status_interrupt),
		T(test_state_round_trip),
		T(test_state_rejects_corruption),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
