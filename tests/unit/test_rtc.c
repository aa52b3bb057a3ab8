/* CMOS RTC: time in BCD, binary and 12-hour formats, setting the clock, RAM, checkpoint state. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include <cmocka.h>

#include "device_fakes.h"
#include "devices/rtc.h"

struct test_ctx {
	struct fake_env f;
	struct device dev;
};

/* The guest's view of the clock: the fields as decoded from the registers. */
struct guest_time {
	int sec, min, hour, wday, mday, mon, year; /* year with century, month 1-12 */
};

static void rtc_write(struct test_ctx *t, uint8_t reg, uint8_t val)
{
	fake_out(&t->f.pio, 0x70, reg, 1);
	fake_out(&t->f.pio, 0x71, val, 1);
}

static uint8_t rtc_read(struct test_ctx *t, uint8_t reg)
{
	fake_out(&t->f.pio, 0x70, reg, 1);
	return (uint8_t)fake_in(&t->f.pio, 0x71, 1);
}

static int from_bcd(uint8_t v)
{
	assert_true((v >> 4) <= 9);
	assert_true((v & 0xF) <= 9);
	return (v >> 4) * 10 + (v & 0xF);
}

static uint8_t to_bcd(int v)
{
	return (uint8_t)((v / 10) << 4 | v % 10);
}

static int decode(uint8_t v, bool binary)
{
	return binary ? v : from_bcd(v);
}

static int decode_hour(uint8_t v, bool binary, bool h24)
{
	int hour;

	if (h24)
		return decode(v, binary);
	hour = decode(v & 0x7F, binary);
	assert_in_range(hour, 1, 12);
	return hour % 12 + (v & 0x80 ? 12 : 0);
}

/* Reads every time register, and again if the seconds changed meanwhile. */
static struct guest_time read_time(struct test_ctx *t)
{
	uint8_t b = rtc_read(t, 0x0B);
	bool binary = b & 0x04, h24 = b & 0x02;
	struct guest_time g;
	uint8_t sec;

	do {
		sec = rtc_read(t, 0x00);
		g.sec = decode(sec, binary);
		g.min = decode(rtc_read(t, 0x02), binary);
		g.hour = decode_hour(rtc_read(t, 0x04), binary, h24);
		g.wday = decode(rtc_read(t, 0x06), binary);
		g.mday = decode(rtc_read(t, 0x07), binary);
		g.mon = decode(rtc_read(t, 0x08), binary);
		g.year = decode(rtc_read(t, 0x32), binary) * 100 + decode(rtc_read(t, 0x09), binary);
	} while (rtc_read(t, 0x00) != sec);
	return g;
}

static int64_t guest_time_seconds(const struct guest_time *g)
{
	struct tm tm = {
		.tm_sec = g->sec,
		.tm_min = g->min,
		.tm_hour = g->hour,
		.tm_mday = g->mday,
		.tm_mon = g->mon - 1,
		.tm_year = g->year - 1900,
	};
	int64_t seconds = timegm(&tm);

	assert_int_equal(tm.tm_wday + 1, g->wday); /* and the fields were in range */
	assert_int_equal(tm.tm_mday, g->mday);
	return seconds;
}

static int64_t host_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec;
}

/*
 * Asserts the guest's clock reads between `offset_min` and `offset_max` seconds from the
 * host's, with the host's time taken just before and after the guest's.
 */
static void assert_clock_offset(struct test_ctx *t, int64_t offset_min, int64_t offset_max)
{
	int64_t before = host_now();
	struct guest_time g = read_time(t);
	int64_t after = host_now();
	int64_t guest = guest_time_seconds(&g);

	assert_true(guest >= before + offset_min);
	assert_true(guest <= after + offset_max);
}

/* Sets the clock with SET held, in BCD 24-hour format, and restores register B. */
static void set_time_bcd(struct test_ctx *t, int year, int mon, int mday, int hour, int min,
			 int sec)
{
	rtc_write(t, 0x0B, 0x82);
	rtc_write(t, 0x00, to_bcd(sec));
	rtc_write(t, 0x02, to_bcd(min));
	rtc_write(t, 0x04, to_bcd(hour));
	rtc_write(t, 0x07, to_bcd(mday));
	rtc_write(t, 0x08, to_bcd(mon));
	rtc_write(t, 0x09, to_bcd(year % 100));
	rtc_write(t, 0x32, to_bcd(year / 100));
	rtc_write(t, 0x0B, 0x02);
}

static int64_t utc_seconds(int year, int mon, int mday, int hour, int min, int sec)
{
	struct tm tm = {
		.tm_sec = sec,
		.tm_min = min,
		.tm_hour = hour,
		.tm_mday = mday,
		.tm_mon = mon - 1,
		.tm_year = year - 1900,
	};

	return timegm(&tm);
}

static int setup(void **state)
{
	struct test_ctx *t = calloc(1, sizeof(*t));

	fake_env_init(&t->f, 4096);
	assert_non_null(rtc_create(&t->f.env, &t->dev));
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct test_ctx *t = *state;

	assert_int_equal(t->f.irq.set_calls, 0); /* IRQ 8 is never raised */
	t->dev.ops->destroy(t->dev.priv);
	fake_env_free(&t->f);
	free(t);
	return 0;
}

static void test_status_registers_at_power_on(void **state)
{
	struct test_ctx *t = *state;

	assert_string_equal(t->dev.id, "rtc");
	assert_int_equal(rtc_read(t, 0x0A), 0x26);
	assert_int_equal(rtc_read(t, 0x0B), 0x02);
	assert_int_equal(rtc_read(t, 0x0C), 0x00);
	assert_int_equal(rtc_read(t, 0x0D), 0x80);

	rtc_write(t, 0x0A, 0xA6); /* UIP is read-only */
	assert_int_equal(rtc_read(t, 0x0A), 0x26);
	rtc_write(t, 0x0A, 0x2F);
	assert_int_equal(rtc_read(t, 0x0A), 0x2F);
	rtc_write(t, 0x0C, 0xFF);
	rtc_write(t, 0x0D, 0x00);
	assert_int_equal(rtc_read(t, 0x0C), 0x00);
	assert_int_equal(rtc_read(t, 0x0D), 0x80);
}

static void test_bcd_time_matches_host(void **state)
{
	struct test_ctx *t = *state;

	assert_clock_offset(t, 0, 0);
}

static void test_binary_time_matches_host(void **state)
{
	struct test_ctx *t = *state;

	rtc_write(t, 0x0B, 0x06);
	assert_clock_offset(t, 0, 0);
}

static void test_12_hour_mode(void **state)
{
	struct test_ctx *t = *state;

	rtc_write(t, 0x0B, 0x00); /* 12-hour, BCD */
	assert_clock_offset(t, 0, 0);
	rtc_write(t, 0x0B, 0x04); /* 12-hour, binary */
	assert_clock_offset(t, 0, 0);

	/* 12 AM is midnight. Minutes and seconds start at 0 so the hour stays the same during the test. */
	rtc_write(t, 0x0B, 0x80);
	rtc_write(t, 0x00, 0x00);
	rtc_write(t, 0x02, 0x00);
	rtc_write(t, 0x04, 0x12);
	rtc_write(t, 0x0B, 0x00);
	rtc_write(t, 0x0B, 0x02);
	assert_int_equal(rtc_read(t, 0x04), 0x00);

	/* 12 PM is noon, 1 PM is 13:00. */
	rtc_write(t, 0x0B, 0x80);
	rtc_write(t, 0x00, 0x00);
	rtc_write(t, 0x02, 0x00);
	rtc_write(t, 0x04, 0x80 | 0x12);
	rtc_write(t, 0x0B, 0x00);
	assert_int_equal(rtc_read(t, 0x04), 0x80 | 0x12);
	rtc_write(t, 0x0B, 0x02);
	assert_int_equal(rtc_read(t, 0x04), 0x12);

	rtc_write(t, 0x0B, 0x84); /* binary this time */
	rtc_write(t, 0x00, 0);
	rtc_write(t, 0x02, 0);
	rtc_write(t, 0x04, 0x80 | 1);
	rtc_write(t, 0x0B, 0x04);
	assert_int_equal(rtc_read(t, 0x04), 0x80 | 1);
	rtc_write(t, 0x0B, 0x06);
	assert_int_equal(rtc_read(t, 0x04), 13);
}

static void test_set_time_applies_offset(void **state)
{
	struct test_ctx *t = *state;
	int64_t target = utc_seconds(2031, 7, 15, 10, 20, 30);
	int64_t before = host_now();
	int64_t after;

	set_time_bcd(t, 2031, 7, 15, 10, 20, 30);
	after = host_now();
	assert_clock_offset(t, target - after, target - before);

	/* Binary reads of the same clock. */
	rtc_write(t, 0x0B, 0x06);
	assert_int_equal(rtc_read(t, 0x09), 31);
	assert_int_equal(rtc_read(t, 0x32), 20);
	assert_int_equal(rtc_read(t, 0x08), 7);
	assert_int_equal(rtc_read(t, 0x06), 3); /* 15 July 2031 is a Tuesday */
}

static void test_set_holds_time_registers(void **state)
{
	struct test_ctx *t = *state;

	rtc_write(t, 0x0B, 0x92); /* SET with UIE: setting SET clears UIE */
	assert_int_equal(rtc_read(t, 0x0B), 0x82);
	rtc_write(t, 0x00, 0x45);
	rtc_write(t, 0x02, 0x00);
	rtc_write(t, 0x04, 0x00); /* so the year stays the same during the test */
	rtc_write(t, 0x09, 0x99);
	rtc_write(t, 0x32, 0x19);
	assert_int_equal(rtc_read(t, 0x00), 0x45);
	assert_int_equal(rtc_read(t, 0x09), 0x99);
	assert_int_equal(rtc_read(t, 0x32), 0x19);
	rtc_write(t, 0x0B, 0x02);
	assert_int_equal(rtc_read(t, 0x09), 0x99);
	assert_int_equal(rtc_read(t, 0x32), 0x19);
}

static void test_write_one_field_while_running(void **state)
{
	struct test_ctx *t = *state;
	struct guest_time g;

	set_time_bcd(t, 2030, 3, 10, 8, 0, 0);
	rtc_write(t, 0x09, 0x42);
	g = read_time(t);
	assert_int_equal(g.year, 2042);
	assert_int_equal(g.mon, 3);
	assert_int_equal(g.mday, 10);
	assert_int_equal(g.hour, 8);
}

static void test_invalid_time_keeps_clock(void **state)
{
	struct test_ctx *t = *state;
	static const uint8_t bad[][2] = {
		{ 0x08, 0x13 }, /* month 13 */
		{ 0x08, 0x00 }, /* month 0 */
		{ 0x07, 0x31 }, /* 31 April */
		{ 0x00, 0x5A }, /* not BCD */
		{ 0x04, 0x24 }, /* hour 24 */
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rtc_write(t, 0x0B, 0x82);
		rtc_write(t, 0x00, 0x00);
		rtc_write(t, 0x02, 0x00);
		rtc_write(t, 0x04, 0x00);
		rtc_write(t, 0x07, 0x01);
		rtc_write(t, 0x08, 0x04);
		rtc_write(t, 0x09, 0x35);
		rtc_write(t, 0x32, 0x20);
		rtc_write(t, bad[i][0], bad[i][1]);
		rtc_write(t, 0x0B, 0x02);
		assert_clock_offset(t, 0, 0);
	}
}

static void test_ram_and_alarm_bytes(void **state)
{
	struct test_ctx *t = *state;

	for (unsigned reg = 0x0E; reg < 0x80; reg++) {
		if (reg != 0x32)
			assert_int_equal(rtc_read(t, (uint8_t)reg), 0);
	}
	for (unsigned reg = 0x0E; reg < 0x80; reg++) {
		if (reg != 0x32)
			rtc_write(t, (uint8_t)reg, (uint8_t)(reg ^ 0xA5));
	}
	for (unsigned reg = 0x0E; reg < 0x80; reg++) {
		if (reg != 0x32)
			assert_int_equal(rtc_read(t, (uint8_t)reg), reg ^ 0xA5);
	}

	rtc_write(t, 0x01, 0x11);
	rtc_write(t, 0x03, 0x22);
	rtc_write(t, 0x05, 0x33);
	assert_int_equal(rtc_read(t, 0x01), 0x11);
	assert_int_equal(rtc_read(t, 0x03), 0x22);
	assert_int_equal(rtc_read(t, 0x05), 0x33);
}

static void test_index_with_nmi_bit(void **state)
{
	struct test_ctx *t = *state;

	rtc_write(t, 0x80 | 0x0F, 0x5A); /* shutdown status byte, NMI masked */
	assert_int_equal(rtc_read(t, 0x0F), 0x5A);
	assert_int_equal(rtc_read(t, 0x80 | 0x0F), 0x5A);
	assert_int_equal(fake_in(&t->f.pio, 0x70, 1), 0xFF); /* write-only */

	/* Wider accesses are ignored and read as open bus. */
	assert_int_equal(fake_in(&t->f.pio, 0x70, 2), 0xFFFF);
	fake_out(&t->f.pio, 0x70, 0x0F0F, 2);
	assert_int_equal(rtc_read(t, 0x0F), 0x5A);
}

static void save_state(struct test_ctx *t, struct ser_writer *w)
{
	ser_writer_init(w);
	t->dev.ops->save(t->dev.priv, w);
	assert_int_equal(w->err, 0);
}

static int load_state(struct test_ctx *t, const uint8_t *buf, size_t len)
{
	struct ser_reader r;

	ser_reader_init(&r, buf, len);
	return t->dev.ops->load(t->dev.priv, &r);
}

static void test_state_round_trip(void **state)
{
	struct test_ctx *t = *state;
	int64_t target = utc_seconds(2040, 2, 29, 23, 59, 0);
	int64_t before = host_now();
	int64_t after;
	struct ser_writer w;

	set_time_bcd(t, 2040, 2, 29, 23, 59, 0);
	after = host_now();
	rtc_write(t, 0x0A, 0x2A);
	rtc_write(t, 0x0B, 0x06);
	rtc_write(t, 0x05, 0x77);
	rtc_write(t, 0x40, 0x99);
	fake_out(&t->f.pio, 0x70, 0x80 | 0x40, 1);
	save_state(t, &w);
	assert_int_equal(w.buf[1], 0x40); /* index */
	assert_int_equal(w.buf[2], 1);	  /* NMI masked */

	rtc_write(t, 0x0A, 0x26);
	rtc_write(t, 0x0B, 0x02);
	rtc_write(t, 0x05, 0x00);
	rtc_write(t, 0x40, 0x00);
	set_time_bcd(t, 2001, 1, 1, 0, 0, 0);

	assert_int_equal(load_state(t, w.buf, w.len), 0);
	assert_int_equal(fake_in(&t->f.pio, 0x71, 1), 0x99); /* index 0x40 restored */
	assert_int_equal(rtc_read(t, 0x0A), 0x2A);
	assert_int_equal(rtc_read(t, 0x0B), 0x06);
	assert_int_equal(rtc_read(t, 0x05), 0x77);
	assert_clock_offset(t, target - after, target - before);
	ser_writer_free(&w);
}

static void test_load_rejects_bad_state(void **state)
{
	struct test_ctx *t = *state;
	struct ser_writer w;
	uint8_t *copy;

	rtc_write(t, 0x40, 0x99);
	save_state(t, &w);
	copy = malloc(w.len + 1);
	memcpy(copy, w.buf, w.len);
	copy[w.len] = 0;
	rtc_write(t, 0x40, 0x11);

	for (size_t len = 0; len < w.len; len++)
		assert_int_equal(load_state(t, copy, len), -EBADMSG);
	assert_int_equal(load_state(t, copy, w.len + 1), -EBADMSG); /* trailing byte */

	copy[0] = 2; /* unknown version */
	assert_int_equal(load_state(t, copy, w.len), -EBADMSG);
	copy[0] = w.buf[0];
	copy[1] = 0x80; /* index out of range */
	assert_int_equal(load_state(t, copy, w.len), -EBADMSG);
	copy[1] = w.buf[1];
	copy[2] = 2; /* NMI mask not a bool */
	assert_int_equal(load_state(t, copy, w.len), -EBADMSG);
	copy[2] = w.buf[2];
	copy[3 + 0x0A] = 0xA6; /* register A with UIP */
	assert_int_equal(load_state(t, copy, w.len), -EBADMSG);
	copy[3 + 0x0A] = w.buf[3 + 0x0A];
	copy[w.len - 1] = 0x40; /* offset of about 146 billion years */
	assert_int_equal(load_state(t, copy, w.len), -EBADMSG);
	copy[w.len - 1] = w.buf[w.len - 1];

	/* Nothing was applied by the rejected loads. */
	assert_int_equal(rtc_read(t, 0x40), 0x11);
	assert_int_equal(load_state(t, copy, w.len), 0);
	assert_int_equal(rtc_read(t, 0x40), 0x99);
	free(copy);
	ser_writer_free(&w);
}

static void test_reset_clears_interrupt_enables(void **state)
{
	struct test_ctx *t = *state;

	rtc_write(t, 0x0B, 0x7E);
	rtc_write(t, 0x50, 0x12);
	t->dev.ops->reset(t->dev.priv);
	assert_int_equal(rtc_read(t, 0x0B), 0x06);
	assert_int_equal(rtc_read(t, 0x50), 0x12);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_status_registers_at_power_on),
		T(test_bcd_time_matches_host),
		T(test_binary_time_matches_host),
		T(test_12_hour_mode),
		T(test_set_time_applies_offset),
		T(test_set_holds_time_registers),
		T(test_write_one_field_while_running),
		T(test_invalid_time_keeps_clock),
		T(test_ram_and_alarm_bytes),
		T(test_index_with_nmi_bit),
		T(test_state_round_trip),
		T(test_load_rejects_bad_state),
		T(test_reset_clears_interrupt_enables),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
