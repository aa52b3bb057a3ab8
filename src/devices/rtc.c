/*
 * MC146818 CMOS real-time clock: the time and date registers (0x00-0x09 and the
 * century byte at 0x32, which the FADT names), registers A-D, and the CMOS RAM around
 * them.
 *
 * The clock does not tick by itself. Every read of a time register computes the time
 * from the host's CLOCK_REALTIME, taken as UTC, plus an offset in seconds that the guest
 * sets by writing the time. So a guest that never sets the clock sees the host's time, and
 * after a restore the guest's wall clock has caught up with real time, keeping the offset
 * its guest chose. Reads follow register B: BCD or binary (bit 2, DM), 12- or 24-hour
 * (bit 1). Setting register B's SET bit freezes the time registers at their current
 * values so the guest can write a new time; clearing it stores the written time as the
 * new offset, decoded in the format register B had while SET was held.
 *
 * Left out: the update cycle, so register A's UIP bit always reads 0 and a read never
 * races an update. No interrupts: register B's PIE, AIE and UIE bits are stored but
 * IRQ 8 is never raised, and register C always reads 0. Alarms (0x01, 0x03, 0x05) are
 * stored only. Register A's divider and rate bits are stored and change nothing.
 * The weekday is always computed from the date, so a written weekday is dropped.
 * Daylight saving (register B bit 0) is ignored.
 */
#include "devices/rtc.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"

#define RTC_SECONDS 0x00
#define RTC_SECONDS_ALARM 0x01
#define RTC_MINUTES 0x02
#define RTC_MINUTES_ALARM 0x03
#define RTC_HOURS 0x04
#define RTC_HOURS_ALARM 0x05
#define RTC_WEEKDAY 0x06
#define RTC_DAY_OF_MONTH 0x07
#define RTC_MONTH 0x08
#define RTC_YEAR 0x09
#define RTC_REG_A 0x0A
#define RTC_REG_B 0x0B
#define RTC_REG_C 0x0C
#define RTC_REG_D 0x0D
#define RTC_RAM_START 0x0E
#define RTC_CENTURY 0x32
#define RTC_NR_REGS 0x80

#define RTC_INDEX_NMI_MASK 0x80

#define RTC_A_UIP 0x80
#define RTC_A_DEFAULT 0x26 /* 32.768 kHz time base, 1024 Hz periodic rate */

#define RTC_B_SET 0x80
#define RTC_B_PIE 0x40
#define RTC_B_AIE 0x20
#define RTC_B_UIE 0x10
#define RTC_B_SQWE 0x08
#define RTC_B_DM_BINARY 0x04
#define RTC_B_24H 0x02
#define RTC_B_DEFAULT RTC_B_24H /* 24-hour, BCD */

#define RTC_D_VRT 0x80 /* valid RAM and time: the battery is good */

#define RTC_HOUR_PM 0x80

/*
 * About 10,000 years, the span of years 0-9999 the registers can hold. The bound keeps a
 * restored offset far from time_t overflow in gmtime_r.
 */
#define RTC_MAX_OFFSET_S (10000LL * 366 * 86400)

#define RTC_STATE_VERSION 1

struct rtc {
	pthread_mutex_t lock;
	struct bus *pio;

	uint8_t index; /* register selected through port 0x70, NMI bit removed */
	bool nmi_masked;
	/*
	 * Every register's byte. The time registers' bytes are used only while SET is held,
	 * and registers C and D are computed on each read.
	 */
	uint8_t regs[RTC_NR_REGS];
	int64_t offset_s; /* guest time minus host CLOCK_REALTIME, in seconds */
	uint64_t invalid_time_writes;
};

static bool rtc_is_time_reg(uint8_t reg)
{
	switch (reg) {
	case RTC_SECONDS:
	case RTC_MINUTES:
	case RTC_HOURS:
	case RTC_WEEKDAY:
	case RTC_DAY_OF_MONTH:
	case RTC_MONTH:
	case RTC_YEAR:
	case RTC_CENTURY:
		return true;
	default:
		return false;
	}
}

static int64_t rtc_host_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec;
}

static bool rtc_binary(const struct rtc *c)
{
	return c->regs[RTC_REG_B] & RTC_B_DM_BINARY;
}

/* `value` is below 100. */
static uint8_t rtc_encode(const struct rtc *c, unsigned value)
{
	if (rtc_binary(c))
		return (uint8_t)value;
	return (uint8_t)((value / 10) << 4 | value % 10);
}

/* Returns false for a BCD byte with a digit above 9. */
static bool rtc_decode(const struct rtc *c, uint8_t raw, unsigned *value)
{
	if (rtc_binary(c)) {
		*value = raw;
		return true;
	}
	if ((raw >> 4) > 9 || (raw & 0xF) > 9)
		return false;
	*value = (raw >> 4) * 10 + (raw & 0xF);
	return true;
}

static uint8_t rtc_encode_hour(const struct rtc *c, unsigned hour)
{
	unsigned hour12 = hour % 12;

	if (c->regs[RTC_REG_B] & RTC_B_24H)
		return rtc_encode(c, hour);
	if (hour12 == 0)
		hour12 = 12;
	return rtc_encode(c, hour12) | (hour >= 12 ? RTC_HOUR_PM : 0);
}

static bool rtc_decode_hour(const struct rtc *c, uint8_t raw, unsigned *hour)
{
	unsigned hour12;

	if (c->regs[RTC_REG_B] & RTC_B_24H)
		return rtc_decode(c, raw, hour) && *hour < 24;
	if (!rtc_decode(c, raw & (uint8_t)~RTC_HOUR_PM, &hour12) || hour12 < 1 || hour12 > 12)
		return false;
	*hour = hour12 % 12 + (raw & RTC_HOUR_PM ? 12 : 0);
	return true;
}

/* Writes the time registers of `regs` for `t` seconds since the epoch, in register B's format. */
static void rtc_time_to_regs(const struct rtc *c, int64_t t, uint8_t regs[RTC_NR_REGS])
{
	time_t tt = (time_t)t;
	struct tm tm;
	long year;

	if (!gmtime_r(&tt, &tm)) {
		/* Unreachable while the offset stays within RTC_MAX_OFFSET_S. */
		log_warn_rl("rtc", "cannot convert time %" PRId64 ", showing the epoch", t);
		tt = 0;
		gmtime_r(&tt, &tm);
	}
	/* The registers count years 0-9999 and wrap beyond, as a four-digit counter would. */
	year = ((tm.tm_year + 1900L) % 10000 + 10000) % 10000;
	regs[RTC_SECONDS] = rtc_encode(c, (unsigned)tm.tm_sec % 60);
	regs[RTC_MINUTES] = rtc_encode(c, (unsigned)tm.tm_min);
	regs[RTC_HOURS] = rtc_encode_hour(c, (unsigned)tm.tm_hour);
	regs[RTC_WEEKDAY] = rtc_encode(c, (unsigned)tm.tm_wday + 1); /* 1 is Sunday */
	regs[RTC_DAY_OF_MONTH] = rtc_encode(c, (unsigned)tm.tm_mday);
	regs[RTC_MONTH] = rtc_encode(c, (unsigned)tm.tm_mon + 1);
	regs[RTC_YEAR] = rtc_encode(c, (unsigned)(year % 100));
	regs[RTC_CENTURY] = rtc_encode(c, (unsigned)(year / 100 % 100));
}

/*
 * Decodes the time registers of `regs` in register B's format into seconds since the
 * epoch. Returns false when a field is out of range or names a day its month lacks.
 * The weekday register is not read.
 */
static bool rtc_regs_to_time(const struct rtc *c, const uint8_t regs[RTC_NR_REGS], int64_t *t)
{
	unsigned sec, min, hour, mday, mon, year, century;
	struct tm tm = { 0 };

	if (!rtc_decode(c, regs[RTC_SECONDS], &sec) || sec > 59 ||
	    !rtc_decode(c, regs[RTC_MINUTES], &min) || min > 59 ||
	    !rtc_decode_hour(c, regs[RTC_HOURS], &hour) ||
	    !rtc_decode(c, regs[RTC_DAY_OF_MONTH], &mday) || mday < 1 || mday > 31 ||
	    !rtc_decode(c, regs[RTC_MONTH], &mon) || mon < 1 || mon > 12 ||
	    !rtc_decode(c, regs[RTC_YEAR], &year) || year > 99 ||
	    !rtc_decode(c, regs[RTC_CENTURY], &century) || century > 99)
		return false;

	tm.tm_sec = (int)sec;
	tm.tm_min = (int)min;
	tm.tm_hour = (int)hour;
	tm.tm_mday = (int)mday;
	tm.tm_mon = (int)mon - 1;
	tm.tm_year = (int)(century * 100 + year) - 1900;
	*t = timegm(&tm);

	/* timegm moves 31 April to 1 May; a real chip would not, so such a date is invalid. */
	return tm.tm_mday == (int)mday && tm.tm_mon == (int)mon - 1;
}

/* Stores the time in `regs` as the guest's time, or logs and keeps the clock if invalid. */
static void rtc_set_time_from(struct rtc *c, const uint8_t regs[RTC_NR_REGS])
{
	int64_t t;

	if (!rtc_regs_to_time(c, regs, &t)) {
		c->invalid_time_writes++;
		log_warn_rl("rtc",
			    "ignored invalid time %02x%02x-%02x-%02x %02x:%02x:%02x "
			    "(raw bytes, register B 0x%02x), clock unchanged",
			    regs[RTC_CENTURY], regs[RTC_YEAR], regs[RTC_MONTH],
			    regs[RTC_DAY_OF_MONTH], regs[RTC_HOURS], regs[RTC_MINUTES],
			    regs[RTC_SECONDS], c->regs[RTC_REG_B]);
		return;
	}
	c->offset_s = t - rtc_host_now();
}

/* A time register written while the clock runs changes that one field of the current time. */
static void rtc_write_running_time(struct rtc *c, uint8_t reg, uint8_t val)
{
	uint8_t regs[RTC_NR_REGS];

	rtc_time_to_regs(c, rtc_host_now() + c->offset_s, regs);
	regs[reg] = val;
	rtc_set_time_from(c, regs);
}

static void rtc_write_b(struct rtc *c, uint8_t val)
{
	uint8_t old = c->regs[RTC_REG_B];

	/* As on the chip, setting SET clears UIE. */
	if (val & RTC_B_SET)
		val &= (uint8_t)~RTC_B_UIE;

	if ((old & RTC_B_SET) && !(val & RTC_B_SET))
		rtc_set_time_from(c, c->regs); /* decoded in the format the guest wrote it in */

	c->regs[RTC_REG_B] = val;

	if (!(old & RTC_B_SET) && (val & RTC_B_SET))
		rtc_time_to_regs(c, rtc_host_now() + c->offset_s, c->regs);
}

static void rtc_write_data(struct rtc *c, uint8_t reg, uint8_t val)
{
	switch (reg) {
	case RTC_REG_A:
		c->regs[RTC_REG_A] = val & (uint8_t)~RTC_A_UIP;
		break;
	case RTC_REG_B:
		rtc_write_b(c, val);
		break;
	case RTC_REG_C:
	case RTC_REG_D:
		break; /* read-only */
	default:
		if (rtc_is_time_reg(reg) && !(c->regs[RTC_REG_B] & RTC_B_SET))
			rtc_write_running_time(c, reg, val);
		else
			c->regs[reg] = val;
		break;
	}
}

static uint8_t rtc_read_data(const struct rtc *c, uint8_t reg)
{
	uint8_t regs[RTC_NR_REGS];

	switch (reg) {
	case RTC_REG_C:
		return 0; /* no interrupt flags, because no interrupt is ever raised */
	case RTC_REG_D:
		return RTC_D_VRT;
	default:
		if (rtc_is_time_reg(reg) && !(c->regs[RTC_REG_B] & RTC_B_SET)) {
			rtc_time_to_regs(c, rtc_host_now() + c->offset_s, regs);
			return regs[reg];
		}
		return c->regs[reg];
	}
}

static void rtc_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct rtc *c = opaque;

	if (len != 1) {
		log_warn_rl("rtc", "ignored %u-byte access to port 0x%" PRIx64, len,
			    RTC_INDEX_PORT + offset);
		return;
	}

	pthread_mutex_lock(&c->lock);
	if (offset == 0 && is_write) {
		c->index = data[0] & (uint8_t)~RTC_INDEX_NMI_MASK;
		c->nmi_masked = data[0] & RTC_INDEX_NMI_MASK;
	} else if (offset == 0) {
		data[0] = 0xFF; /* the index port is write-only */
	} else if (is_write) {
		rtc_write_data(c, c->index, data[0]);
	} else {
		data[0] = rtc_read_data(c, c->index);
	}
	pthread_mutex_unlock(&c->lock);
}

/* The chip's RESET pin: interrupt enables and square-wave output off; time and RAM kept. */
static void rtc_reset(void *opaque)
{
	struct rtc *c = opaque;

	pthread_mutex_lock(&c->lock);
	c->regs[RTC_REG_B] &= (uint8_t)~(RTC_B_PIE | RTC_B_AIE | RTC_B_UIE | RTC_B_SQWE);
	pthread_mutex_unlock(&c->lock);
}

/*
 * The state keeps the offset from real time and not the time itself, so a restored
 * guest's clock shows real time plus the offset its guest set.
 */
static void rtc_save(void *opaque, struct ser_writer *w)
{
	struct rtc *c = opaque;

	pthread_mutex_lock(&c->lock);
	ser_u8(w, RTC_STATE_VERSION);
	ser_u8(w, c->index);
	ser_u8(w, c->nmi_masked);
	ser_bytes(w, c->regs, RTC_REG_A); /* held time (while SET) and alarms */
	ser_u8(w, c->regs[RTC_REG_A]);
	ser_u8(w, c->regs[RTC_REG_B]);
	ser_bytes(w, &c->regs[RTC_RAM_START], RTC_NR_REGS - RTC_RAM_START);
	ser_u64(w, (uint64_t)c->offset_s);
	pthread_mutex_unlock(&c->lock);
}

static int rtc_load(void *opaque, struct ser_reader *r)
{
	struct rtc *c = opaque;
	uint8_t regs[RTC_NR_REGS] = { 0 };
	uint8_t version, index, nmi_masked;
	int64_t offset_s;

	version = de_u8(r);
	index = de_u8(r);
	nmi_masked = de_u8(r);
	de_bytes(r, regs, RTC_REG_A);
	regs[RTC_REG_A] = de_u8(r);
	regs[RTC_REG_B] = de_u8(r);
	de_bytes(r, &regs[RTC_RAM_START], RTC_NR_REGS - RTC_RAM_START);
	offset_s = (int64_t)de_u64(r);
	if (de_finish(r)) {
		log_error("rtc", "invalid state: truncated or trailing bytes");
		return -EBADMSG;
	}
	if (version != RTC_STATE_VERSION) {
		log_error("rtc", "invalid state: version %u, expected %u", version,
			  RTC_STATE_VERSION);
		return -EBADMSG;
	}
	if (index >= RTC_NR_REGS || nmi_masked > 1 || (regs[RTC_REG_A] & RTC_A_UIP)) {
		log_error("rtc", "invalid state: index 0x%02x, NMI mask %u, register A 0x%02x",
			  index, nmi_masked, regs[RTC_REG_A]);
		return -EBADMSG;
	}
	if (offset_s > RTC_MAX_OFFSET_S || offset_s < -RTC_MAX_OFFSET_S) {
		log_error("rtc", "invalid state: offset %" PRId64 " s from real time", offset_s);
		return -EBADMSG;
	}

	pthread_mutex_lock(&c->lock);
	c->index = index;
	c->nmi_masked = nmi_masked;
	memcpy(c->regs, regs, sizeof(regs));
	c->offset_s = offset_s;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

static void rtc_destroy(void *opaque)
{
	struct rtc *c = opaque;

	bus_unregister(c->pio, RTC_INDEX_PORT, c);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static const struct device_ops rtc_ops = {
	.name = "rtc",
	.save = rtc_save,
	.load = rtc_load,
	.reset = rtc_reset,
	.destroy = rtc_destroy,
};

struct rtc *rtc_create(const struct device_env *env, struct device *dev_out)
{
	struct rtc *c = calloc(1, sizeof(*c));
	int ret;

	if (!c)
		return NULL;
	pthread_mutex_init(&c->lock, NULL);
	c->pio = env->pio;
	c->regs[RTC_REG_A] = RTC_A_DEFAULT;
	c->regs[RTC_REG_B] = RTC_B_DEFAULT;

	ret = bus_register(env->pio, RTC_INDEX_PORT, 2, rtc_access, c, "rtc");
	if (ret) {
		log_error("rtc", "cannot register ports 0x70-0x71: %s", strerror(-ret));
		pthread_mutex_destroy(&c->lock);
		free(c);
		return NULL;
	}
	dev_out->ops = &rtc_ops;
	dev_out->priv = c;
	snprintf(dev_out->id, sizeof(dev_out->id), "rtc");
	return c;
}
