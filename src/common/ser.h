/*
 * Byte-order-fixed (little-endian) serialisation of device and CPU state for
 * checkpoints. A writer grows its buffer; a reader never reads past its end: an
 * overrun sets `err` and every later read returns zeros, so a load function reads
 * all its fields and checks `err` once before it trusts any of them.
 */
#ifndef CRYO_COMMON_SER_H
#define CRYO_COMMON_SER_H

#include <stddef.h>
#include <stdint.h>

struct ser_writer {
	uint8_t *buf;
	size_t len;
	size_t cap;
	int err; /* 0 or -ENOMEM */
};

struct ser_reader {
	const uint8_t *buf;
	size_t len;
	size_t pos;
	int err; /* 0 or -EBADMSG once a read ran past the end */
};

void ser_writer_init(struct ser_writer *w);
void ser_writer_free(struct ser_writer *w);
void ser_u8(struct ser_writer *w, uint8_t v);
void ser_u16(struct ser_writer *w, uint16_t v);
void ser_u32(struct ser_writer *w, uint32_t v);
void ser_u64(struct ser_writer *w, uint64_t v);
void ser_bytes(struct ser_writer *w, const void *p, size_t n);

void ser_reader_init(struct ser_reader *r, const void *buf, size_t len);
uint8_t de_u8(struct ser_reader *r);
uint16_t de_u16(struct ser_reader *r);
uint32_t de_u32(struct ser_reader *r);
uint64_t de_u64(struct ser_reader *r);
void de_bytes(struct ser_reader *r, void *p, size_t n);
/* Returns 0 when every byte was consumed without overrun, else -EBADMSG. */
int de_finish(struct ser_reader *r);

#endif
