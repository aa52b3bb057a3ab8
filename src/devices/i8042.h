/*
 * The PS/2 controller (Intel 8042) at ports 0x60 and 0x64, with enough of a keyboard
 * behind it for Linux's probe, and the reset line that `reboot=k` and the kernel's
 * Ctrl-Alt-Del path pulse.
 */
#ifndef CRYO_DEVICES_I8042_H
#define CRYO_DEVICES_I8042_H

#include "devices/device.h"

#define I8042_KBD_GSI 1
#define I8042_AUX_GSI 12

struct i8042;

/*
 * Creates the controller, registers its ports on env->pio and fills dev_out. `reset`
 * is called, without any device lock held, from the vCPU thread that requests a CPU
 * reset (command 0xFE, or output port bit 0 cleared). Returns NULL on failure (logged).
 */
struct i8042 *i8042_create(const struct device_env *env, void (*reset)(void *opaque), void *opaque,
			   struct device *dev_out);

#endif
