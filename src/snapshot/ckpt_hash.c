/*
 * Checksums and bulk I/O for checkpoint files. Every file is checksummed the same
 * way: XXH3_64bits per CKPT_CHUNK_SIZE chunk, then XXH3_64bits over those chunk
 * values. Chunks let memory be verified piece by piece and let holes be skipped,
 * because an all-zero chunk has a checksum known in advance.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snapshot/ckpt_internal.h"

/* Zero-filled, so hashing a hole costs no I/O; in .bss it costs no memory until read. */
static uint8_t ckpt_zeros[CKPT_CHUNK_SIZE];

uint64_t ckpt_nr_chunks(uint64_t size)
{
	return size / CKPT_CHUNK_SIZE + (size % CKPT_CHUNK_SIZE != 0);
}

static uint64_t ckpt_zero_chunk_hash;
static pthread_once_t ckpt_zero_chunk_once = PTHREAD_ONCE_INIT;

static void ckpt_init_zero_chunk_hash(void)
{
	ckpt_zero_chunk_hash = XXH3_64bits(ckpt_zeros, CKPT_CHUNK_SIZE);
}

uint64_t ckpt_hash_zero_chunk(uint64_t len)
{
	if (len != CKPT_CHUNK_SIZE)
		return XXH3_64bits(ckpt_zeros, len);
	pthread_once(&ckpt_zero_chunk_once, ckpt_init_zero_chunk_hash);
	return ckpt_zero_chunk_hash;
}

static void ckpt_le64(uint8_t out[8], uint64_t v)
{
	for (unsigned i = 0; i < 8; i++)
		out[i] = (uint8_t)(v >> (8 * i));
}

uint64_t ckpt_hash_chunks(const uint64_t *chunk_hashes, uint64_t nr_chunks)
{
	XXH3_state_t st;
	uint8_t le[8];

	XXH3_64bits_reset(&st);
	for (uint64_t i = 0; i < nr_chunks; i++) {
		ckpt_le64(le, chunk_hashes[i]);
		XXH3_64bits_update(&st, le, sizeof(le));
	}
	return XXH3_64bits_digest(&st);
}

uint64_t ckpt_hash_buffer(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	XXH3_state_t st;
	uint8_t le[8];

	XXH3_64bits_reset(&st);
	for (size_t off = 0; off < len; off += CKPT_CHUNK_SIZE) {
		size_t n = len - off < CKPT_CHUNK_SIZE ? len - off : CKPT_CHUNK_SIZE;

		ckpt_le64(le, XXH3_64bits(p + off, n));
		XXH3_64bits_update(&st, le, sizeof(le));
	}
	return XXH3_64bits_digest(&st);
}

bool ckpt_page_is_zero(const void *p)
{
	const uint64_t *w = p;

	/* OR eight words per step: the compiler vectorises this, and a non-zero page
	 * usually fails within its first few words. */
	for (unsigned i = 0; i < CKPT_PAGE_SIZE / 8; i += 8) {
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] |
		    w[i + 7])
			return false;
	}
	return true;
}

int ckpt_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int ckpt_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/*
 * Returns whether [off, off + len) lies entirely in a hole of fd. *next_data caches
 * the start of the next data extent at or after an earlier offset, so a long run of
 * holes costs one lseek, not one per chunk.
 */
static bool ckpt_range_is_hole(int fd, uint64_t off, uint64_t len, uint64_t *next_data)
{
	off_t data;

	if (off + len <= *next_data)
		return true;
	if (off < *next_data)
		return false;

	data = lseek(fd, (off_t)off, SEEK_DATA);
	if (data < 0) {
		/* ENXIO: no data after off. Any other error (SEEK_DATA unsupported):
		 * treat everything as data, which is correct, only slower. */
		*next_data = errno == ENXIO ? UINT64_MAX : off;
		return errno == ENXIO;
	}
	*next_data = (uint64_t)data;
	return off + len <= *next_data;
}

/* Writes the non-zero pages of buf to fd at off, in runs as long as buf allows. */
static int ckpt_write_nonzero_pages(int fd, const uint8_t *buf, size_t len, uint64_t off)
{
	size_t run_start = 0;
	size_t run_len = 0;
	int ret;

	for (size_t pos = 0; pos < len; pos += CKPT_PAGE_SIZE) {
		size_t n = len - pos < CKPT_PAGE_SIZE ? len - pos : CKPT_PAGE_SIZE;
		bool zero = n == CKPT_PAGE_SIZE ? ckpt_page_is_zero(buf + pos)
						: memcmp(buf + pos, ckpt_zeros, n) == 0;

		if (!zero) {
			if (run_len == 0)
				run_start = pos;
			run_len += n;
			continue;
		}
		if (run_len) {
			ret = ckpt_pwrite_full(fd, buf + run_start, run_len, off + run_start);
			if (ret)
				return ret;
			run_len = 0;
		}
	}
	if (run_len)
		return ckpt_pwrite_full(fd, buf + run_start, run_len, off + run_start);
	return 0;
}

int ckpt_scan_file(struct ckpt_scan *s)
{
	uint64_t nr_chunks = ckpt_nr_chunks(s->size);
	uint64_t next_data = 0;
	uint8_t *buf = NULL;
	XXH3_state_t whole;
	int ret = 0;

	if (s->dst_fd >= 0 && ftruncate(s->dst_fd, (off_t)s->size) < 0)
		return -errno;

	XXH3_64bits_reset(&whole);
	for (uint64_t i = 0; i < nr_chunks; i++) {
		uint64_t off = i * CKPT_CHUNK_SIZE;
		uint64_t len = s->size - off < CKPT_CHUNK_SIZE ? s->size - off : CKPT_CHUNK_SIZE;
		uint64_t h;
		uint8_t le[8];

		if (ckpt_range_is_hole(s->src_fd, off, len, &next_data)) {
			h = ckpt_hash_zero_chunk(len);
		} else {
			if (!buf) {
				/* Page-aligned so ckpt_page_is_zero may read it in words. */
				if (posix_memalign((void **)&buf, CKPT_PAGE_SIZE, CKPT_CHUNK_SIZE)) {
					ret = -ENOMEM;
					goto out;
				}
			}
			ret = ckpt_pread_full(s->src_fd, buf, len, off);
			if (ret)
				goto out;
			h = XXH3_64bits(buf, len);
			if (s->dst_fd >= 0) {
				ret = ckpt_write_nonzero_pages(s->dst_fd, buf, len, off);
				if (ret)
					goto out;
			}
		}

		if (s->chunks_out)
			s->chunks_out[i] = h;
		if (s->expect && s->expect[i] != h) {
			s->bad_chunk = i;
			ret = -EBADMSG;
			goto out;
		}
		ckpt_le64(le, h);
		XXH3_64bits_update(&whole, le, sizeof(le));
	}
	s->hash = XXH3_64bits_digest(&whole);
out:
	free(buf);
	return ret;
}
