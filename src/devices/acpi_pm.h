/*
 * ACPI fixed hardware: the PM1a event block (PM1_STS, PM1_EN), the PM1a control block
 * (PM1_CNT) and the optional 32-bit PM timer, as the FADT built by src/machine/acpi.c
 * describes them. The machine is always in ACPI mode: SCI_EN is set at reset and there
 * is no SMI command port.
 */
#ifndef CRYO_DEVICES_ACPI_PM_H
#define CRYO_DEVICES_ACPI_PM_H

#include <stdint.h>

#include "devices/device.h"

/* PM1_STS and PM1_EN bits. */
#define ACPI_PM1_TMR (1u << 0)
#define ACPI_PM1_GBL (1u << 5)
#define ACPI_PM1_PWRBTN (1u << 8)
#define ACPI_PM1_SLPBTN (1u << 9)
#define ACPI_PM1_RTC (1u << 10)
#define ACPI_PM1_PCIEXP_WAKE (1u << 14) /* PCIEXP_WAKE_DIS in PM1_EN */
#define ACPI_PM1_WAK (1u << 15)		/* PM1_STS only */

/* PM1_CNT bits. */
#define ACPI_PM1_CNT_SCI_EN (1u << 0)
#define ACPI_PM1_CNT_BM_RLD (1u << 1)
#define ACPI_PM1_CNT_GBL_RLS (1u << 2) /* write-only */
#define ACPI_PM1_CNT_SLP_TYP_SHIFT 10
#define ACPI_PM1_CNT_SLP_TYP_MASK (7u << ACPI_PM1_CNT_SLP_TYP_SHIFT)
#define ACPI_PM1_CNT_SLP_EN (1u << 13) /* write-only */

#define ACPI_PM_TIMER_HZ 3579545

struct acpi_pm;

/*
 * Called from the vCPU thread that wrote SLP_EN, with the SLP_TYP written along with
 * it (ACPI_SLP_TYP_S5 in src/machine/acpi.h for power-off). No lock of the device is
 * held, so the callback may stop the VM.
 */
typedef void (*acpi_pm_sleep_fn)(void *opaque, unsigned slp_typ);

/*
 * Creates the device and registers its port windows: 4 bytes at `evt_port`, 2 at
 * `cnt_port` and, unless `tmr_port` is 0, 4 at `tmr_port`. The SCI is the level-
 * triggered line `sci_gsi`. Fills *dev_out. Returns NULL on failure (logged).
 */
struct acpi_pm *acpi_pm_create(const struct device_env *env, uint16_t evt_port, uint16_t cnt_port,
			       uint16_t tmr_port, uint32_t sci_gsi, acpi_pm_sleep_fn sleep,
			       void *opaque, struct device *dev_out);

/*
 * Presses the virtual power button: sets PWRBTN_STS, which raises the SCI when the
 * guest enabled PWRBTN_EN. Safe to call from any thread while vCPUs run.
 */
void acpi_pm_press_power_button(struct acpi_pm *pm);

#endif
