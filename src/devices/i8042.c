/*
 * Intel 8042 PS/2 controller: the command byte, self tests, the output port and its
 * reset line, an output buffer shared by the keyboard and auxiliary ports, and their
 * interrupts (GSI 1 and 12, level-tracked like the UART's line).
 *
 * The keyboard behind it only responds to commands: it acknowledges each, returns its ID
 * (0xAB 0x83) and passes its reset test, but never sends a key. There is no mouse:
 * bytes sent to the auxiliary device come back as 0xFE with the timeout flag, which
 * Linux's psmouse driver treats as "no device". Left out: scancode translation,
 * password and input-port commands, A20 gating (the output port is stored only).
 */
#include "devices/i8042.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define I8042_DATA_PORT 0x60
#define I8042_CMD_PORT 0x64

#define I8042_STR_OBF 0x01
#define I8042_STR_SYS 0x04
#define I8042_STR_CMD 0x08
#define I8042_STR_UNLOCKED 0x10
#define I8042_STR_AUXDATA 0x20
#define I8042_STR_TIMEOUT 0x40

#define I8042_CTR_KBDINT 0x01
#define I8042_CTR_AUXINT 0x02
#define I8042_CTR_SYS 0x04
#define I8042_CTR_KBDDIS 0x10
#define I8042_CTR_AUXDIS 0x20
#define I8042_CTR_XLATE 0x40

#define I8042_QUEUE_SIZE 16
#define I8042_BYTE_AUX 0x01
#define I8042_BYTE_TIMEOUT 0x02

#define I8042_STATE_VERSION 1

struct i8042_byte {
	uint8_t value;
	uint8_t flags; /* I8042_BYTE_* */
};

struct i8042 {
	pthread_mutex_t lock;
	struct bus *pio;
	struct irq_sink irq;
	void (*reset)(void *opaque);
	void *reset_opaque;

	uint8_t ctr;	      /* controller command byte */
	uint8_t out_port;     /* bit 0: reset line (active low), bit 1: A20 */
	uint8_t pending_cmd;  /* controller command awaiting its data byte, or 0 */
	uint8_t kbd_param_for; /* keyboard command awaiting its parameter, or 0 */
	bool last_write_cmd;  /* status bit 3: the last write went to port 0x64 */
	struct i8042_byte queue[I8042_QUEUE_SIZE];
	unsigned head;
	unsigned count;
	int kbd_irq_level;
	int aux_irq_level;
};

static void i8042_push(struct i8042 *c, uint8_t value, uint8_t flags)
{
	if (c->count == I8042_QUEUE_SIZE) {
		log_warn_rl("i8042", "output buffer full, dropped 0x%02x", value);
		return;
	}
	c->queue[(c->head + c->count) % I8042_QUEUE_SIZE] = (struct i8042_byte){ value, flags };
	c->count++;
}

static void i8042_update_irq(struct i8042 *c)
{
	const struct i8042_byte *b = &c->queue[c->head];
	int kbd = c->count && !(b->flags & I8042_BYTE_AUX) && (c->ctr & I8042_CTR_KBDINT);
	int aux = c->count && (b->flags & I8042_BYTE_AUX) && (c->ctr & I8042_CTR_AUXINT);

	if (kbd != c->kbd_irq_level) {
		c->kbd_irq_level = kbd;
		irq_set_line(&c->irq, I8042_KBD_GSI, kbd);
	}
	if (aux != c->aux_irq_level) {
		c->aux_irq_level = aux;
		irq_set_line(&c->irq, I8042_AUX_GSI, aux);
	}
}

static uint8_t i8042_status(const struct i8042 *c)
{
	uint8_t st = I8042_STR_UNLOCKED;

	if (c->ctr & I8042_CTR_SYS)
		st |= I8042_STR_SYS;
	if (c->last_write_cmd)
		st |= I8042_STR_CMD;
	if (c->count) {
		st |= I8042_STR_OBF;
		if (c->queue[c->head].flags & I8042_BYTE_AUX)
			st |= I8042_STR_AUXDATA;
		if (c->queue[c->head].flags & I8042_BYTE_TIMEOUT)
			st |= I8042_STR_TIMEOUT;
	}
	return st;
}

/* A keyboard that acknowledges every command and sends no keys. */
static void i8042_kbd_write(struct i8042 *c, uint8_t val)
{
	if (c->kbd_param_for) {
		c->kbd_param_for = 0;
		i8042_push(c, 0xFA, 0);
		return;
	}
	switch (val) {
	case 0xED: /* set LEDs */
	case 0xF0: /* scancode set */
	case 0xF3: /* typematic rate */
		c->kbd_param_for = val;
		i8042_push(c, 0xFA, 0);
		break;
	case 0xEE: /* echo */
		i8042_push(c, 0xEE, 0);
		break;
	case 0xF2: /* identify: an MF2 keyboard */
		i8042_push(c, 0xFA, 0);
		i8042_push(c, 0xAB, 0);
		i8042_push(c, 0x83, 0);
		break;
	case 0xFF: /* reset, then basic assurance test passed */
		i8042_push(c, 0xFA, 0);
		i8042_push(c, 0xAA, 0);
		break;
	default:
		i8042_push(c, 0xFA, 0);
		break;
	}
}

/* Returns true when the write requests a CPU reset. */
static bool i8042_data_write(struct i8042 *c, uint8_t val)
{
	uint8_t cmd = c->pending_cmd;

	c->pending_cmd = 0;
	switch (cmd) {
	case 0x60: /* write command byte */
		c->ctr = val;
		return false;
	case 0xD1: /* write output port: bit 0 low keeps the CPU in reset */
		c->out_port = val;
		return !(val & 1);
	case 0xD2: /* write keyboard output buffer */
		i8042_push(c, val, 0);
		return false;
	case 0xD3: /* write auxiliary output buffer (loopback) */
		i8042_push(c, val, I8042_BYTE_AUX);
		return false;
	case 0xD4: /* write to auxiliary device: none is attached */
		i8042_push(c, 0xFE, I8042_BYTE_AUX | I8042_BYTE_TIMEOUT);
		return false;
	default:
		i8042_kbd_write(c, val);
		return false;
	}
}

/* Returns true when the command requests a CPU reset. */
static bool i8042_command(struct i8042 *c, uint8_t cmd)
{
	switch (cmd) {
	case 0x20: /* read command byte */
		i8042_push(c, c->ctr, 0);
		break;
	case 0x60:
	case 0xD1:
	case 0xD2:
	case 0xD3:
	case 0xD4:
		c->pending_cmd = cmd;
		break;
	case 0xA7:
		c->ctr |= I8042_CTR_AUXDIS;
		break;
	case 0xA8:
		c->ctr &= (uint8_t)~I8042_CTR_AUXDIS;
		break;
	case 0xA9: /* test auxiliary port: passed */
	case 0xAB: /* test keyboard port: passed */
		i8042_push(c, 0x00, 0);
		break;
	case 0xAA: /* controller self test: passed */
		i8042_push(c, 0x55, 0);
		break;
	case 0xAD:
		c->ctr |= I8042_CTR_KBDDIS;
		break;
	case 0xAE:
		c->ctr &= (uint8_t)~I8042_CTR_KBDDIS;
		break;
	case 0xD0: /* read output port */
		i8042_push(c, c->out_port, 0);
		break;
	default:
		/* 0xF0-0xFF pulse the output port bits that are 0 in the command's low nibble. */
		if (cmd >= 0xF0)
			return !(cmd & 1);
		log_warn_rl("i8042", "ignored unsupported command 0x%02x", cmd);
		break;
	}
	return false;
}

static void i8042_access(struct i8042 *c, bool cmd_port, uint8_t *data, uint32_t len, bool is_write)
{
	bool reset = false;

	if (len != 1)
		return;

	pthread_mutex_lock(&c->lock);
	if (!cmd_port && is_write) {
		c->last_write_cmd = false;
		reset = i8042_data_write(c, data[0]);
	} else if (!cmd_port) {
		data[0] = c->count ? c->queue[c->head].value : 0;
		if (c->count) {
			c->head = (c->head + 1) % I8042_QUEUE_SIZE;
			c->count--;
		}
	} else if (is_write) {
		c->last_write_cmd = true;
		reset = i8042_command(c, data[0]);
	} else {
		data[0] = i8042_status(c);
	}
	i8042_update_irq(c);
	pthread_mutex_unlock(&c->lock);

	/* Outside the lock: the machine may stop every vCPU, this one included, to reset. */
	if (reset && c->reset)
		c->reset(c->reset_opaque);
}

static void i8042_data_access(void *opaque, uint64_t off, uint8_t *data, uint32_t len,
			      bool is_write)
{
	i8042_access(opaque, false, data, len, is_write);
}

static void i8042_cmd_access(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	i8042_access(opaque, true, data, len, is_write);
}

static void i8042_reset_locked(struct i8042 *c)
{
	c->ctr = I8042_CTR_KBDINT | I8042_CTR_AUXINT | I8042_CTR_SYS | I8042_CTR_XLATE;
	c->out_port = 0x03; /* reset line released, A20 enabled */
	c->pending_cmd = 0;
	c->kbd_param_for = 0;
	c->last_write_cmd = false;
	c->head = 0;
	c->count = 0;
	i8042_update_irq(c);
}

static void i8042_reset_op(void *opaque)
{
	struct i8042 *c = opaque;

	pthread_mutex_lock(&c->lock);
	i8042_reset_locked(c);
	pthread_mutex_unlock(&c->lock);
}

static void i8042_save(void *opaque, struct ser_writer *w)
{
	struct i8042 *c = opaque;

	pthread_mutex_lock(&c->lock);
	ser_u8(w, I8042_STATE_VERSION);
	ser_u8(w, c->ctr);
	ser_u8(w, c->out_port);
	ser_u8(w, c->pending_cmd);
	ser_u8(w, c->kbd_param_for);
	ser_u8(w, c->last_write_cmd);
	ser_u8(w, (uint8_t)c->count);
	for (unsigned i = 0; i < c->count; i++) {
		const struct i8042_byte *b = &c->queue[(c->head + i) % I8042_QUEUE_SIZE];

		ser_u8(w, b->value);
		ser_u8(w, b->flags);
	}
	pthread_mutex_unlock(&c->lock);
}

static bool i8042_pending_cmd_valid(uint8_t cmd)
{
	return cmd == 0 || cmd == 0x60 || (cmd >= 0xD1 && cmd <= 0xD4);
}

static int i8042_load(void *opaque, struct ser_reader *r)
{
	struct i8042 *c = opaque;
	struct i8042_byte queue[I8042_QUEUE_SIZE];
	uint8_t version, ctr, out_port, pending_cmd, kbd_param_for, last_write_cmd, count;

	version = de_u8(r);
	ctr = de_u8(r);
	out_port = de_u8(r);
	pending_cmd = de_u8(r);
	kbd_param_for = de_u8(r);
	last_write_cmd = de_u8(r);
	count = de_u8(r);
	if (r->err || version != I8042_STATE_VERSION || !i8042_pending_cmd_valid(pending_cmd) ||
	    (kbd_param_for && kbd_param_for != 0xED && kbd_param_for != 0xF0 &&
	     kbd_param_for != 0xF3) || last_write_cmd > 1 || count > I8042_QUEUE_SIZE) {
		log_error("i8042", "invalid state: version %u or a field out of range", version);
		return -EBADMSG;
	}
	for (unsigned i = 0; i < count; i++) {
		queue[i].value = de_u8(r);
		queue[i].flags = de_u8(r);
		if (queue[i].flags & ~(I8042_BYTE_AUX | I8042_BYTE_TIMEOUT)) {
			log_error("i8042", "invalid state: output byte flags 0x%x", queue[i].flags);
			return -EBADMSG;
		}
	}
	if (de_finish(r)) {
		log_error("i8042", "invalid state: truncated or trailing bytes");
		return -EBADMSG;
	}

	pthread_mutex_lock(&c->lock);
	c->ctr = ctr;
	c->out_port = out_port;
	c->pending_cmd = pending_cmd;
	c->kbd_param_for = kbd_param_for;
	c->last_write_cmd = last_write_cmd;
	memcpy(c->queue, queue, count * sizeof(queue[0]));
	c->head = 0;
	c->count = count;
	/* Re-drive both lines from the restored state. */
	c->kbd_irq_level = -1;
	c->aux_irq_level = -1;
	i8042_update_irq(c);
	pthread_mutex_unlock(&c->lock);
	return 0;
}

static void i8042_destroy(void *opaque)
{
	struct i8042 *c = opaque;

	bus_unregister(c->pio, I8042_CMD_PORT, c);
	bus_unregister(c->pio, I8042_DATA_PORT, c);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static const struct device_ops i8042_ops = {
	.name = "i8042",
	.save = i8042_save,
	.load = i8042_load,
	.reset = i8042_reset_op,
	.destroy = i8042_destroy,
};

struct i8042 *i8042_create(const struct device_env *env, void (*reset)(void *opaque), void *opaque,
			   struct device *dev_out)
{
	struct i8042 *c = calloc(1, sizeof(*c));
	int ret;

	if (!c)
		return NULL;
	pthread_mutex_init(&c->lock, NULL);
	c->pio = env->pio;
	c->irq = env->irq;
	c->reset = reset;
	c->reset_opaque = opaque;
	i8042_reset_locked(c);

	/* Two one-port windows, because 0x61 between them belongs to the PIT's speaker gate. */
	ret = bus_register(env->pio, I8042_DATA_PORT, 1, i8042_data_access, c, "i8042-data");
	if (!ret) {
		ret = bus_register(env->pio, I8042_CMD_PORT, 1, i8042_cmd_access, c, "i8042-cmd");
		if (ret)
			bus_unregister(env->pio, I8042_DATA_PORT, c);
	}
	if (ret) {
		log_error("i8042", "cannot register ports 0x60 and 0x64: %s", strerror(-ret));
		pthread_mutex_destroy(&c->lock);
		free(c);
		return NULL;
	}
	dev_out->ops = &i8042_ops;
	dev_out->priv = c;
	snprintf(dev_out->id, sizeof(dev_out->id), "i8042");
	return c;
}
