/*
 * 16550A UART: THR/RBR, IER, IIR, FCR, LCR with the divisor latch, MCR with loopback,
 * LSR, MSR and SCR, as Linux's 8250 driver probes them ("ttyS0 ... is a 16550A").
 *
 * Transmission is instant: a byte written to THR goes to the output callback (or, in
 * loopback, into the receive FIFO) at once, so THR and the transmitter are always
 * empty and no transmit FIFO is kept. Line speed and framing are stored but do not
 * pace anything.
 *
 * Interrupts: the ISA line follows "an interrupt is pending" as a level, so on an
 * edge-triggered IOAPIC pin each newly pending interrupt after the line went low is
 * one edge. Linux's handler reads IIR until nothing is pending, which lowers it.
 *
 * Left out: the character timeout delay, so received data below the FIFO trigger level
 * is reported at once as a timeout interrupt. Also left out: break, parity and framing
 * errors, DMA mode, and the modem lines of a real port. Outside loopback, CTS, DSR and
 * DCD always read as asserted.
 */
#include "devices/serial.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

/* Register offsets; DLL and DLM replace RBR/THR and IER while LCR.DLAB is set. */
#define UART_RX 0
#define UART_TX 0
#define UART_DLL 0
#define UART_IER 1
#define UART_DLM 1
#define UART_IIR 2
#define UART_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_MSR 6
#define UART_SCR 7

#define UART_IER_RDI 0x01
#define UART_IER_THRI 0x02
#define UART_IER_RLSI 0x04
#define UART_IER_MSI 0x08
#define UART_IER_MASK 0x0F

#define UART_IIR_NO_INT 0x01
#define UART_IIR_MSI 0x00
#define UART_IIR_THRI 0x02
#define UART_IIR_RDI 0x04
#define UART_IIR_RLSI 0x06
#define UART_IIR_RX_TIMEOUT 0x0C
#define UART_IIR_FIFO_ENABLED 0xC0

#define UART_FCR_ENABLE_FIFO 0x01
#define UART_FCR_CLEAR_RCVR 0x02
#define UART_FCR_CLEAR_XMIT 0x04
#define UART_FCR_DMA_SELECT 0x08
#define UART_FCR_TRIGGER_MASK 0xC0
#define UART_FCR_STORED (UART_FCR_ENABLE_FIFO | UART_FCR_DMA_SELECT | UART_FCR_TRIGGER_MASK)

#define UART_LCR_DLAB 0x80

#define UART_MCR_DTR 0x01
#define UART_MCR_RTS 0x02
#define UART_MCR_OUT1 0x04
#define UART_MCR_OUT2 0x08
#define UART_MCR_LOOP 0x10
#define UART_MCR_MASK 0x1F

#define UART_LSR_DR 0x01
#define UART_LSR_OE 0x02
#define UART_LSR_THRE 0x20
#define UART_LSR_TEMT 0x40

#define UART_MSR_DCTS 0x01
#define UART_MSR_DDSR 0x02
#define UART_MSR_TERI 0x04
#define UART_MSR_DDCD 0x08
#define UART_MSR_DELTA_MASK 0x0F
#define UART_MSR_CTS 0x10
#define UART_MSR_DSR 0x20
#define UART_MSR_RI 0x40
#define UART_MSR_DCD 0x80

#define SERIAL_STATE_VERSION 1

struct serial {
	pthread_mutex_t lock;
	struct bus *pio;
	struct irq_sink irq;
	uint16_t base;
	uint32_t gsi;
	serial_output_fn out;
	void *out_opaque;
	char name[16];

	uint8_t ier;
	uint8_t fcr;
	uint8_t lcr;
	uint8_t mcr;
	uint8_t scr;
	uint8_t dll;
	uint8_t dlm;
	uint8_t msr_delta; /* MSR bits 3:0, cleared when MSR is read */
	bool overrun;	   /* LSR.OE, cleared when LSR is read */
	bool thr_ipending; /* THR-empty interrupt not yet acknowledged */
	uint8_t rx[SERIAL_FIFO_SIZE];
	unsigned rx_head;
	unsigned rx_count;
	int irq_level;
};

static unsigned serial_rx_capacity(const struct serial *s)
{
	return (s->fcr & UART_FCR_ENABLE_FIFO) ? SERIAL_FIFO_SIZE : 1;
}

static unsigned serial_rx_trigger(const struct serial *s)
{
	static const unsigned levels[] = { 1, 4, 8, 14 };

	return (s->fcr & UART_FCR_ENABLE_FIFO) ? levels[s->fcr >> 6] : 1;
}

/* Modem status lines: wired to MCR outputs in loopback, else a connected modem. */
static uint8_t serial_modem_lines(const struct serial *s)
{
	uint8_t lines = 0;

	if (!(s->mcr & UART_MCR_LOOP))
		return UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS;
	if (s->mcr & UART_MCR_RTS)
		lines |= UART_MSR_CTS;
	if (s->mcr & UART_MCR_DTR)
		lines |= UART_MSR_DSR;
	if (s->mcr & UART_MCR_OUT1)
		lines |= UART_MSR_RI;
	if (s->mcr & UART_MCR_OUT2)
		lines |= UART_MSR_DCD;
	return lines;
}

/* The highest-priority pending interrupt, as IIR reports it (16550A datasheet, table 4). */
static uint8_t serial_iir(const struct serial *s)
{
	uint8_t fifo = (s->fcr & UART_FCR_ENABLE_FIFO) ? UART_IIR_FIFO_ENABLED : 0;

	if ((s->ier & UART_IER_RLSI) && s->overrun)
		return fifo | UART_IIR_RLSI;
	if ((s->ier & UART_IER_RDI) && s->rx_count)
		return fifo | (s->rx_count >= serial_rx_trigger(s) ? UART_IIR_RDI : UART_IIR_RX_TIMEOUT);
	if ((s->ier & UART_IER_THRI) && s->thr_ipending)
		return fifo | UART_IIR_THRI;
	if ((s->ier & UART_IER_MSI) && s->msr_delta)
		return fifo | UART_IIR_MSI;
	return fifo | UART_IIR_NO_INT;
}

static void serial_update_irq(struct serial *s)
{
	int level = !(serial_iir(s) & UART_IIR_NO_INT);

	if (level != s->irq_level) {
		s->irq_level = level;
		irq_set_line(&s->irq, s->gsi, level);
	}
}

static void serial_rx_push(struct serial *s, uint8_t byte)
{
	if (s->rx_count == serial_rx_capacity(s)) {
		s->overrun = true;
		return;
	}
	s->rx[(s->rx_head + s->rx_count) % SERIAL_FIFO_SIZE] = byte;
	s->rx_count++;
}

static uint8_t serial_rx_pop(struct serial *s)
{
	uint8_t byte;

	if (!s->rx_count)
		return 0;
	byte = s->rx[s->rx_head];
	s->rx_head = (s->rx_head + 1) % SERIAL_FIFO_SIZE;
	s->rx_count--;
	return byte;
}

static void serial_rx_clear(struct serial *s)
{
	s->rx_head = 0;
	s->rx_count = 0;
}

static void serial_write_mcr(struct serial *s, uint8_t val)
{
	uint8_t before = serial_modem_lines(s);
	uint8_t after, changed;

	s->mcr = val & UART_MCR_MASK;
	after = serial_modem_lines(s);
	changed = before ^ after;
	if (changed & UART_MSR_CTS)
		s->msr_delta |= UART_MSR_DCTS;
	if (changed & UART_MSR_DSR)
		s->msr_delta |= UART_MSR_DDSR;
	if (changed & UART_MSR_DCD)
		s->msr_delta |= UART_MSR_DDCD;
	/* TERI flags only the trailing edge of ring indicate. */
	if ((before & UART_MSR_RI) && !(after & UART_MSR_RI))
		s->msr_delta |= UART_MSR_TERI;
}

static void serial_write_ier(struct serial *s, uint8_t val)
{
	uint8_t changed = (uint8_t)((val & UART_IER_MASK) ^ s->ier);

	s->ier = val & UART_IER_MASK;
	/*
	 * Enabling THRI while THR is empty raises THRE again even if it was acknowledged;
	 * Linux's startup test toggles IER.THRI and expects exactly this.
	 */
	if (changed & UART_IER_THRI)
		s->thr_ipending = s->ier & UART_IER_THRI;
}

static void serial_write_fcr(struct serial *s, uint8_t val)
{
	/* Changing the FIFO enable bit clears both FIFOs. */
	if ((val ^ s->fcr) & UART_FCR_ENABLE_FIFO)
		serial_rx_clear(s);
	if (val & UART_FCR_CLEAR_RCVR)
		serial_rx_clear(s);
	s->fcr = val & UART_FCR_STORED;
}

static void serial_transmit(struct serial *s, uint8_t byte)
{
	if (s->mcr & UART_MCR_LOOP)
		serial_rx_push(s, byte);
	else if (s->out)
		s->out(s->out_opaque, &byte, 1);
	/* The byte left at once, so THR is empty again and THRE is pending anew. */
	s->thr_ipending = true;
}

static void serial_write(struct serial *s, unsigned reg, uint8_t val)
{
	bool dlab = s->lcr & UART_LCR_DLAB;

	switch (reg) {
	case UART_TX:
		if (dlab)
			s->dll = val;
		else
			serial_transmit(s, val);
		break;
	case UART_IER:
		if (dlab)
			s->dlm = val;
		else
			serial_write_ier(s, val);
		break;
	case UART_FCR:
		serial_write_fcr(s, val);
		break;
	case UART_LCR:
		s->lcr = val;
		break;
	case UART_MCR:
		serial_write_mcr(s, val);
		break;
	case UART_SCR:
		s->scr = val;
		break;
	default: /* LSR and MSR writes are factory-test only on a real 16550A */
		break;
	}
}

static uint8_t serial_read(struct serial *s, unsigned reg)
{
	bool dlab = s->lcr & UART_LCR_DLAB;
	uint8_t val;

	switch (reg) {
	case UART_RX:
		return dlab ? s->dll : serial_rx_pop(s);
	case UART_IER:
		return dlab ? s->dlm : s->ier;
	case UART_IIR:
		val = serial_iir(s);
		/* Reading IIR acknowledges a THRE interrupt when that is what it reports. */
		if ((val & 0x0F) == UART_IIR_THRI)
			s->thr_ipending = false;
		return val;
	case UART_LCR:
		return s->lcr;
	case UART_MCR:
		return s->mcr;
	case UART_LSR:
		val = UART_LSR_THRE | UART_LSR_TEMT;
		if (s->rx_count)
			val |= UART_LSR_DR;
		if (s->overrun)
			val |= UART_LSR_OE;
		s->overrun = false;
		return val;
	case UART_MSR:
		val = serial_modem_lines(s) | s->msr_delta;
		s->msr_delta = 0;
		return val;
	default:
		return s->scr;
	}
}

/* Port handler: byte accesses only, as the 8250 driver makes; wider ones are split. */
static void serial_access(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct serial *s = opaque;

	pthread_mutex_lock(&s->lock);
	for (uint32_t i = 0; i < len && off + i < 8; i++) {
		if (is_write)
			serial_write(s, (unsigned)(off + i), data[i]);
		else
			data[i] = serial_read(s, (unsigned)(off + i));
	}
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

size_t serial_input(struct serial *s, const uint8_t *buf, size_t len)
{
	size_t n = 0;

	pthread_mutex_lock(&s->lock);
	/* In loopback the receiver is disconnected from the outside line. */
	if (!(s->mcr & UART_MCR_LOOP)) {
		while (n < len && s->rx_count < serial_rx_capacity(s))
			serial_rx_push(s, buf[n++]);
	}
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* Power-on state. The divisor latch is 12 (9600 baud) until the guest sets its own. */
static void serial_reset_locked(struct serial *s)
{
	s->ier = 0;
	s->fcr = 0;
	s->lcr = 0;
	s->mcr = 0;
	s->scr = 0;
	s->dll = 12;
	s->dlm = 0;
	s->msr_delta = 0;
	s->overrun = false;
	s->thr_ipending = false;
	serial_rx_clear(s);
	serial_update_irq(s);
}

static void serial_reset(void *opaque)
{
	struct serial *s = opaque;

	pthread_mutex_lock(&s->lock);
	serial_reset_locked(s);
	pthread_mutex_unlock(&s->lock);
}

static void serial_save(void *opaque, struct ser_writer *w)
{
	struct serial *s = opaque;

	pthread_mutex_lock(&s->lock);
	ser_u8(w, SERIAL_STATE_VERSION);
	ser_u8(w, s->ier);
	ser_u8(w, s->fcr);
	ser_u8(w, s->lcr);
	ser_u8(w, s->mcr);
	ser_u8(w, s->scr);
	ser_u8(w, s->dll);
	ser_u8(w, s->dlm);
	ser_u8(w, s->msr_delta);
	ser_u8(w, s->overrun);
	ser_u8(w, s->thr_ipending);
	ser_u8(w, (uint8_t)s->rx_count);
	for (unsigned i = 0; i < s->rx_count; i++)
		ser_u8(w, s->rx[(s->rx_head + i) % SERIAL_FIFO_SIZE]);
	pthread_mutex_unlock(&s->lock);
}

static int serial_load(void *opaque, struct ser_reader *r)
{
	struct serial *s = opaque;
	struct serial st = { 0 };
	uint8_t version, overrun, thr_ipending;

	version = de_u8(r);
	st.ier = de_u8(r);
	st.fcr = de_u8(r);
	st.lcr = de_u8(r);
	st.mcr = de_u8(r);
	st.scr = de_u8(r);
	st.dll = de_u8(r);
	st.dlm = de_u8(r);
	st.msr_delta = de_u8(r);
	overrun = de_u8(r);
	thr_ipending = de_u8(r);
	st.rx_count = de_u8(r);
	if (r->err || version != SERIAL_STATE_VERSION || (st.ier & ~UART_IER_MASK) ||
	    (st.fcr & ~UART_FCR_STORED) || (st.mcr & ~UART_MCR_MASK) ||
	    (st.msr_delta & ~UART_MSR_DELTA_MASK) || overrun > 1 || thr_ipending > 1 ||
	    st.rx_count > serial_rx_capacity(&st)) {
		log_error(s->name, "invalid state: version %u or a register out of range", version);
		return -EBADMSG;
	}
	de_bytes(r, st.rx, st.rx_count);
	if (de_finish(r)) {
		log_error(s->name, "invalid state: truncated or trailing bytes");
		return -EBADMSG;
	}

	pthread_mutex_lock(&s->lock);
	s->ier = st.ier;
	s->fcr = st.fcr;
	s->lcr = st.lcr;
	s->mcr = st.mcr;
	s->scr = st.scr;
	s->dll = st.dll;
	s->dlm = st.dlm;
	s->msr_delta = st.msr_delta;
	s->overrun = overrun;
	s->thr_ipending = thr_ipending;
	memcpy(s->rx, st.rx, sizeof(s->rx));
	s->rx_head = 0;
	s->rx_count = st.rx_count;
	/* Drive the line at the restored level even if this process never raised it. */
	s->irq_level = !(serial_iir(s) & UART_IIR_NO_INT);
	irq_set_line(&s->irq, s->gsi, s->irq_level);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

static void serial_destroy(void *opaque)
{
	struct serial *s = opaque;

	bus_unregister(s->pio, s->base, s);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static const struct device_ops serial_ops = {
	.name = "serial",
	.save = serial_save,
	.load = serial_load,
	.reset = serial_reset,
	.destroy = serial_destroy,
};

struct serial *serial_create(const struct device_env *env, uint16_t port_base, uint32_t gsi,
			     serial_output_fn out, void *out_opaque, struct device *dev_out)
{
	struct serial *s = calloc(1, sizeof(*s));
	int ret;

	if (!s)
		return NULL;
	pthread_mutex_init(&s->lock, NULL);
	s->pio = env->pio;
	s->irq = env->irq;
	s->base = port_base;
	s->gsi = gsi;
	s->out = out;
	s->out_opaque = out_opaque;
	snprintf(s->name, sizeof(s->name), "serial@%x", port_base);
	serial_reset_locked(s);

	ret = bus_register(env->pio, port_base, 8, serial_access, s, "serial");
	if (ret) {
		log_error(s->name, "cannot register ports 0x%x-0x%x: %s", port_base, port_base + 7,
			  strerror(-ret));
		pthread_mutex_destroy(&s->lock);
		free(s);
		return NULL;
	}
	dev_out->ops = &serial_ops;
	dev_out->priv = s;
	snprintf(dev_out->id, sizeof(dev_out->id), "%s", s->name);
	return s;
}
