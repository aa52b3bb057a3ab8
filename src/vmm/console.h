/*
 * Where the guest's serial console goes: the process's own stdin/stdout, or a Unix
 * socket that any number of clients attach to. The socket form keeps the last
 * CONSOLE_HISTORY bytes of output and replays them to each new client, so a
 * person who attaches late sees the recent output.
 */
#ifndef CRYO_VMM_CONSOLE_H
#define CRYO_VMM_CONSOLE_H

#include <stddef.h>
#include <stdint.h>

#include "machine/machine.h"
#include "vmm/loop.h"

#define CONSOLE_HISTORY (64 * 1024)

struct console;

/* spec: "stdio", "socket:PATH" or "none". Returns NULL with a message in err. */
struct console *console_create(const char *spec, struct loop *loop, struct machine *m, char *err,
			       size_t errlen);
/* Thread-safe; called by vCPU threads with the serial port's output. */
void console_output(struct console *c, const uint8_t *buf, size_t len);
/* Moves buffered input into the UART; returns nonzero while input is still waiting. */
int console_flush_input(struct console *c);
void console_destroy(struct console *c);

#endif
