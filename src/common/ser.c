#include "common/ser.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void ser_writer_init(struct ser_writer *w)
{
	memset(w, 0, sizeof(*w));
}

void ser_writer_free(struct ser_writer *w)
{
	free(w->buf);
	memset(w, 0, sizeof(*w));
}

void ser_bytes(struct ser_writer *w, const void *p, size_t n)
{
	if (w->err)
		return;
	if (w->len + n > w->cap) {
		size_t cap = w->cap ? w->cap : 256;
		uint8_t *nb;

		while (cap < w->len + n)
			cap *= 2;
		nb = realloc(w->buf, cap);
		if (!nb) {
			w->err = -ENOMEM;
			return;
		}
		w->buf = nb;
		w->cap = cap;
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

static void ser_le(struct ser_writer *w, uint64_t v, unsigned bytes)
{
	uint8_t b[8];

	for (unsigned i = 0; i < bytes; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	ser_bytes(w, b, bytes);
}

void ser_u8(struct ser_writer *w, uint8_t v) { ser_le(w, v, 1); }
void ser_u16(struct ser_writer *w, uint16_t v) { ser_le(w, v, 2); }
void ser_u32(struct ser_writer *w, uint32_t v) { ser_le(w, v, 4); }
void ser_u64(struct ser_writer *w, uint64_t v) { ser_le(w, v, 8); }

void ser_reader_init(struct ser_reader *r, const void *buf, size_t len)
{
	r->buf = buf;
	r->len = len;
	r->pos = 0;
	r->err = 0;
}

void de_bytes(struct ser_reader *r, void *p, size_t n)
{
	if (r->err || n > r->len - r->pos) {
		r->err = -EBADMSG;
		memset(p, 0, n);
		return;
	}
	memcpy(p, r->buf + r->pos, n);
	r->pos += n;
}

static uint64_t de_le(struct ser_reader *r, unsigned bytes)
{
	uint8_t b[8];
	uint64_t v = 0;

	de_bytes(r, b, bytes);
	for (unsigned i = 0; i < bytes; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

uint8_t de_u8(struct ser_reader *r) { return (uint8_t)de_le(r, 1); }
uint16_t de_u16(struct ser_reader *r) { return (uint16_t)de_le(r, 2); }
uint32_t de_u32(struct ser_reader *r) { return (uint32_t)de_le(r, 4); }
uint64_t de_u64(struct ser_reader *r) { return de_le(r, 8); }

int de_finish(struct ser_reader *r)
{
	if (r->err)
		return r->err;
	return r->pos == r->len ? 0 : -EBADMSG;
}
