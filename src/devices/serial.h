/*
 * 16550A UART on the ISA port bus: the register file Linux's 8250 driver probes and
 * uses, with 16-byte receive FIFO and interrupts on one ISA line.
 */
#ifndef CRYO_DEVICES_SERIAL_H
#define CRYO_DEVICES_SERIAL_H

#include <stddef.h>
#include <stdint.h>

#include "devices/device.h"

#define SERIAL_FIFO_SIZE 16

struct serial;

/* Receives bytes the guest transmits; called with the UART's lock held, so it must not
 * call back into the UART. */
typedef void (*serial_output_fn)(void *opaque, const uint8_t *buf, size_t len);

/*
 * Creates a UART at ports [port_base, port_base + 8) raising `gsi`, registers it on
 * env->pio and fills dev_out. Returns NULL on failure (logged).
 */
struct serial *serial_create(const struct device_env *env, uint16_t port_base, uint32_t gsi,
			     serial_output_fn out, void *out_opaque, struct device *dev_out);
/*
 * Feeds host console input into the receive FIFO and raises the interrupt the guest
 * enabled. Returns the bytes accepted: the free FIFO space (1 byte while the guest
 * keeps FIFOs off, 0 in loopback mode). The caller retries the rest later.
 */
size_t serial_input(struct serial *s, const uint8_t *buf, size_t len);

#endif
