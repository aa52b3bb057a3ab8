/*
 * ACPI fixed-hardware registers of a PC chipset: the PM1a event block (PM1_STS with
 * write-1-to-clear bits, PM1_EN), the PM1a control block (PM1_CNT: SCI_EN, SLP_TYP,
 * SLP_EN) and a free-running 32-bit PM timer at 3.579545 MHz.
 *
 * The SCI is a level-triggered line, asserted while SCI_EN is set and a status bit is
 * enabled. Of the status bits only PWRBTN_STS is ever set (by the virtual power
 * button). Left out: the PM1b blocks, the timer's overflow status (TMR_STS), the
 * global lock handshake (GBL_STS, GBL_RLS), the sleep and RTC buttons, wake status
 * after a sleep state, and GPE blocks. PM1_EN keeps every enable bit the guest writes
 * so it reads back, though only PWRBTN_EN has an effect.
 *
 * A guest may access the blocks with any width at any offset. Bytes beyond a block
 * read as open bus, and writes to them are dropped.
 */
#include "devices/acpi_pm.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"

#define PM_EVT_LEN 4 /* PM1_STS at 0, PM1_EN at 2 */
#define PM_CNT_LEN 2
#define PM_TMR_LEN 4

#define PM1_STS_MASK ACPI_PM1_PWRBTN
#define PM1_EN_MASK                                                                          \
	(ACPI_PM1_TMR | ACPI_PM1_GBL | ACPI_PM1_PWRBTN | ACPI_PM1_SLPBTN | ACPI_PM1_RTC |   \
	 ACPI_PM1_PCIEXP_WAKE)
/* Bits of PM1_CNT that keep state. GBL_RLS and SLP_EN are write-only and read as 0. */
#define PM1_CNT_MASK (ACPI_PM1_CNT_SCI_EN | ACPI_PM1_CNT_BM_RLD | ACPI_PM1_CNT_SLP_TYP_MASK)

#define ACPI_PM_STATE_VERSION 1
#define ACPI_PM_STATE_SIZE 11 /* bytes, see pm_save() */

struct acpi_pm {
	pthread_mutex_t lock; /* vCPU threads and the power button race on the registers */
	struct bus *pio;
	struct irq_sink irq;
	uint16_t evt_port;
	uint16_t cnt_port;
	uint16_t tmr_port; /* 0: no PM timer */
	uint32_t sci_gsi;
	acpi_pm_sleep_fn sleep;
	void *opaque;

	uint16_t pm1_sts;
	uint16_t pm1_en;
	uint16_t pm1_cnt;
	int sci_level; /* level last driven on the SCI line, -1 before the first */

	/* Timer value = host ticks + tmr_offset, modulo 2^32, unless paused. */
	uint64_t tmr_offset;
	bool tmr_paused;
	uint32_t tmr_paused_value;
};

/* CLOCK_MONOTONIC in PM timer ticks. */
static uint64_t host_ticks(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * ACPI_PM_TIMER_HZ +
	       (uint64_t)ts.tv_nsec * ACPI_PM_TIMER_HZ / 1000000000;
}

static uint32_t pm_timer_value(const struct acpi_pm *pm)
{
	if (pm->tmr_paused)
		return pm->tmr_paused_value;
	return (uint32_t)(host_ticks() + pm->tmr_offset);
}

/* Makes the timer read `value` now and count on from there. */
static void pm_timer_set(struct acpi_pm *pm, uint32_t value)
{
	pm->tmr_offset = (uint64_t)value - host_ticks();
	pm->tmr_paused_value = value;
}

/* Drives the SCI line to the level the registers select, or always when `force` is set. */
static void pm_update_sci(struct acpi_pm *pm, bool force)
{
	int level = (pm->pm1_cnt & ACPI_PM1_CNT_SCI_EN) && (pm->pm1_sts & pm->pm1_en) != 0;
	int ret;

	if (level == pm->sci_level && !force)
		return;
	pm->sci_level = level;
	ret = irq_set_line(&pm->irq, pm->sci_gsi, level);
	if (ret < 0)
		log_warn_rl("acpi-pm", "driving SCI line %u to %d failed: %s", pm->sci_gsi, level,
			    strerror(-ret));
}

/* Copies the bytes of a `size`-byte little-endian register block that an access covers. */
static void block_read(uint64_t value, unsigned size, uint64_t offset, uint8_t *data, uint32_t len)
{
	for (uint32_t i = 0; i < len && offset + i < size; i++)
		data[i] = (uint8_t)(value >> (8 * (offset + i)));
}

/* Collects a write to a `size`-byte block as the value written and a mask of the bits written. */
static void block_write(unsigned size, uint64_t offset, const uint8_t *data, uint32_t len,
			uint32_t *value, uint32_t *mask)
{
	*value = 0;
	*mask = 0;
	for (uint32_t i = 0; i < len && offset + i < size; i++) {
		*value |= (uint32_t)data[i] << (8 * (offset + i));
		*mask |= 0xFFu << (8 * (offset + i));
	}
}

static void pm_evt_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
			  bool is_write)
{
	struct acpi_pm *pm = opaque;
	uint32_t value, mask;
	uint16_t en_mask;

	pthread_mutex_lock(&pm->lock);
	if (!is_write) {
		block_read(pm->pm1_sts | (uint32_t)pm->pm1_en << 16, PM_EVT_LEN, offset, data, len);
		goto out;
	}

	block_write(PM_EVT_LEN, offset, data, len, &value, &mask);
	/* Status bits are cleared by writing 1 to them; writing 0 leaves them alone. */
	pm->pm1_sts &= (uint16_t)~(value & mask);
	en_mask = (uint16_t)(mask >> 16);
	pm->pm1_en = (uint16_t)(((pm->pm1_en & ~en_mask) | ((value >> 16) & en_mask)) & PM1_EN_MASK);
	pm_update_sci(pm, false);
out:
	pthread_mutex_unlock(&pm->lock);
}

static void pm_cnt_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
			  bool is_write)
{
	struct acpi_pm *pm = opaque;
	uint32_t value, mask, written;
	bool sleep = false;
	unsigned slp_typ = 0;

	pthread_mutex_lock(&pm->lock);
	if (!is_write) {
		block_read(pm->pm1_cnt, PM_CNT_LEN, offset, data, len);
		pthread_mutex_unlock(&pm->lock);
		return;
	}

	block_write(PM_CNT_LEN, offset, data, len, &value, &mask);
	written = (pm->pm1_cnt & ~mask) | (value & mask);
	pm->pm1_cnt = (uint16_t)(written & PM1_CNT_MASK);
	if (written & ACPI_PM1_CNT_SLP_EN) {
		sleep = true;
		slp_typ = (written & ACPI_PM1_CNT_SLP_TYP_MASK) >> ACPI_PM1_CNT_SLP_TYP_SHIFT;
	}
	pm_update_sci(pm, false);
	pthread_mutex_unlock(&pm->lock);

	if (sleep) {
		log_info("acpi-pm", "guest requested sleep state SLP_TYP %u", slp_typ);
		if (pm->sleep)
			pm->sleep(pm->opaque, slp_typ);
	}
}

static void pm_tmr_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
			  bool is_write)
{
	struct acpi_pm *pm = opaque;

	/* The timer is read-only: writes are dropped, as on hardware. */
	if (is_write)
		return;
	pthread_mutex_lock(&pm->lock);
	block_read(pm_timer_value(pm), PM_TMR_LEN, offset, data, len);
	pthread_mutex_unlock(&pm->lock);
}

void acpi_pm_press_power_button(struct acpi_pm *pm)
{
	pthread_mutex_lock(&pm->lock);
	pm->pm1_sts |= ACPI_PM1_PWRBTN;
	pm_update_sci(pm, false);
	pthread_mutex_unlock(&pm->lock);
}

/* ---- device operations ---- */

/*
 * State layout, version 1: u8 version, u16 PM1_STS, u16 PM1_EN, u16 PM1_CNT, u32 PM
 * timer value. The timer's value, not host time, is kept so it resumes without a jump.
 */
static void pm_save(void *dev, struct ser_writer *w)
{
	struct acpi_pm *pm = dev;

	pthread_mutex_lock(&pm->lock);
	ser_u8(w, ACPI_PM_STATE_VERSION);
	ser_u16(w, pm->pm1_sts);
	ser_u16(w, pm->pm1_en);
	ser_u16(w, pm->pm1_cnt);
	ser_u32(w, pm_timer_value(pm));
	pthread_mutex_unlock(&pm->lock);
}

static int pm_load(void *dev, struct ser_reader *r)
{
	struct acpi_pm *pm = dev;
	uint8_t version = de_u8(r);
	uint16_t sts = de_u16(r);
	uint16_t en = de_u16(r);
	uint16_t cnt = de_u16(r);
	uint32_t timer = de_u32(r);

	if (de_finish(r) < 0) {
		log_error("acpi-pm", "invalid saved state: %zu bytes, expected %d", r->len,
			  ACPI_PM_STATE_SIZE);
		return -EBADMSG;
	}
	if (version != ACPI_PM_STATE_VERSION) {
		log_error("acpi-pm", "unsupported saved state version %u (expected %u)", version,
			  ACPI_PM_STATE_VERSION);
		return -EBADMSG;
	}
	if ((sts & ~PM1_STS_MASK) || (en & ~PM1_EN_MASK) || (cnt & ~PM1_CNT_MASK)) {
		log_error("acpi-pm", "invalid saved registers: PM1_STS 0x%x PM1_EN 0x%x PM1_CNT 0x%x",
			  sts, en, cnt);
		return -EBADMSG;
	}

	pthread_mutex_lock(&pm->lock);
	pm->pm1_sts = sts;
	pm->pm1_en = en;
	pm->pm1_cnt = cnt;
	pm_timer_set(pm, timer);
	pm_update_sci(pm, true);
	pthread_mutex_unlock(&pm->lock);
	return 0;
}

/* The timer stops while the VM is paused, as guest time does. */
static void pm_pause(void *dev)
{
	struct acpi_pm *pm = dev;

	pthread_mutex_lock(&pm->lock);
	if (!pm->tmr_paused) {
		pm->tmr_paused_value = pm_timer_value(pm);
		pm->tmr_paused = true;
	}
	pthread_mutex_unlock(&pm->lock);
}

static void pm_resume(void *dev)
{
	struct acpi_pm *pm = dev;

	pthread_mutex_lock(&pm->lock);
	if (pm->tmr_paused) {
		pm->tmr_paused = false;
		pm_timer_set(pm, pm->tmr_paused_value);
	}
	pthread_mutex_unlock(&pm->lock);
}

/* Power-on state; the PM timer keeps counting, since only power-on resets it. */
static void pm_reset(void *dev)
{
	struct acpi_pm *pm = dev;

	pthread_mutex_lock(&pm->lock);
	pm->pm1_sts = 0;
	pm->pm1_en = 0;
	pm->pm1_cnt = ACPI_PM1_CNT_SCI_EN;
	pm_update_sci(pm, false);
	pthread_mutex_unlock(&pm->lock);
}

static void pm_destroy(void *dev)
{
	struct acpi_pm *pm = dev;

	if (pm->tmr_port)
		bus_unregister(pm->pio, pm->tmr_port, pm);
	bus_unregister(pm->pio, pm->cnt_port, pm);
	bus_unregister(pm->pio, pm->evt_port, pm);
	pthread_mutex_destroy(&pm->lock);
	free(pm);
}

static const struct device_ops acpi_pm_ops = {
	.name = "acpi-pm",
	.save = pm_save,
	.load = pm_load,
	.pause = pm_pause,
	.resume = pm_resume,
	.reset = pm_reset,
	.destroy = pm_destroy,
};

struct acpi_pm *acpi_pm_create(const struct device_env *env, uint16_t evt_port, uint16_t cnt_port,
			       uint16_t tmr_port, uint32_t sci_gsi, acpi_pm_sleep_fn sleep,
			       void *opaque, struct device *dev_out)
{
	struct acpi_pm *pm;
	int ret;

	pm = calloc(1, sizeof(*pm));
	if (!pm) {
		log_error("acpi-pm", "out of memory");
		return NULL;
	}
	pthread_mutex_init(&pm->lock, NULL);
	pm->pio = env->pio;
	pm->irq = env->irq;
	pm->evt_port = evt_port;
	pm->cnt_port = cnt_port;
	pm->tmr_port = tmr_port;
	pm->sci_gsi = sci_gsi;
	pm->sleep = sleep;
	pm->opaque = opaque;
	pm->pm1_cnt = ACPI_PM1_CNT_SCI_EN;
	pm->sci_level = -1;
	pm_timer_set(pm, 0);

	ret = bus_register(pm->pio, evt_port, PM_EVT_LEN, pm_evt_access, pm, "acpi-pm1-evt");
	if (ret < 0)
		goto err_free;
	ret = bus_register(pm->pio, cnt_port, PM_CNT_LEN, pm_cnt_access, pm, "acpi-pm1-cnt");
	if (ret < 0)
		goto err_evt;
	if (tmr_port) {
		ret = bus_register(pm->pio, tmr_port, PM_TMR_LEN, pm_tmr_access, pm, "acpi-pm-tmr");
		if (ret < 0)
			goto err_cnt;
	}

	pthread_mutex_lock(&pm->lock);
	pm_update_sci(pm, true);
	pthread_mutex_unlock(&pm->lock);

	dev_out->ops = &acpi_pm_ops;
	dev_out->priv = pm;
	snprintf(dev_out->id, sizeof(dev_out->id), "acpi-pm");
	return pm;

err_cnt:
	bus_unregister(pm->pio, cnt_port, pm);
err_evt:
	bus_unregister(pm->pio, evt_port, pm);
err_free:
	log_error("acpi-pm", "registering ports 0x%x/0x%x/0x%x failed: %s", evt_port, cnt_port,
		  tmr_port, strerror(-ret));
	pthread_mutex_destroy(&pm->lock);
	free(pm);
	return NULL;
}
