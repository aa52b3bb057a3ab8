/*
 * The MC146818 CMOS real-time clock at ports 0x70 (index, bit 7 masks NMI) and 0x71 (data).
 * Its interrupt line, IRQ 8, is never raised: there are no alarm, periodic or
 * update-ended interrupts.
 */
#ifndef CRYO_DEVICES_RTC_H
#define CRYO_DEVICES_RTC_H

#include "devices/device.h"

#define RTC_INDEX_PORT 0x70
#define RTC_DATA_PORT 0x71

struct rtc;

/*
 * Creates the clock, registers ports 0x70-0x71 on env->pio and fills dev_out. The clock
 * starts at the host's CLOCK_REALTIME, read as UTC. Returns NULL on failure (logged).
 */
struct rtc *rtc_create(const struct device_env *env, struct device *dev_out);

#endif
