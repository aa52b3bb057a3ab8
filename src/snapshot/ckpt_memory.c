/*
 * Guest RAM as the checkpoint file `memory`: the regions concatenated in order,
 * one sparse file. Zero pages are never written and stay holes. Non-zero pages go
 * out in runs of up to CKPT_RUN_MAX bytes with one pwrite each, straight from guest
 * memory. Each CKPT_CHUNK_SIZE chunk is checksummed on the way; an all-zero chunk
 * is not hashed at all but gets the precomputed zero-chunk checksum.
 *
 * The caller keeps guest memory still (vCPUs and devices stopped) during the write.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "snapshot/ckpt_internal.h"

/* Maximum length of one pwrite: large enough for full disk bandwidth, small enough that a
 * partly zero region does not wait for one huge write. */
#define CKPT_RUN_MAX (4u << 20)
#define CKPT_PROGRESS_STEP (64ull << 20)

struct ckpt_mem_writer {
	int fd;
	uint64_t total;
	uint64_t *chunks;

	/* The run of non-zero pages not yet written. */
	const uint8_t *run_host;
	uint64_t run_off;
	uint64_t run_len;

	/* The chunk being checksummed. Leading zero pages are only counted, and fed to
	 * the hash if a non-zero page follows in the same chunk. */
	XXH3_state_t chunk_state;
	uint64_t chunk_index;
	uint64_t chunk_len;
	uint64_t chunk_zero_prefix;
	bool chunk_nonzero;

	ckpt_progress_fn progress;
	void *opaque;
	uint64_t next_progress;
};

static int ckpt_mem_flush_run(struct ckpt_mem_writer *mw)
{
	int ret;

	if (mw->run_len == 0)
		return 0;
	ret = ckpt_pwrite_full(mw->fd, mw->run_host, mw->run_len, mw->run_off);
	mw->run_len = 0;
	return ret;
}

static void ckpt_mem_finish_chunk(struct ckpt_mem_writer *mw)
{
	if (mw->chunk_len == 0)
		return;
	mw->chunks[mw->chunk_index++] = mw->chunk_nonzero ? XXH3_64bits_digest(&mw->chunk_state)
							  : ckpt_hash_zero_chunk(mw->chunk_len);
	mw->chunk_len = 0;
	mw->chunk_zero_prefix = 0;
	mw->chunk_nonzero = false;
}

static void ckpt_mem_hash_page(struct ckpt_mem_writer *mw, const uint8_t *page, bool zero)
{
	static const uint8_t zero_page[CKPT_PAGE_SIZE];

	if (zero && !mw->chunk_nonzero) {
		mw->chunk_zero_prefix += CKPT_PAGE_SIZE;
	} else if (zero) {
		XXH3_64bits_update(&mw->chunk_state, zero_page, CKPT_PAGE_SIZE);
	} else {
		if (!mw->chunk_nonzero) {
			XXH3_64bits_reset(&mw->chunk_state);
			for (uint64_t i = 0; i < mw->chunk_zero_prefix; i += CKPT_PAGE_SIZE)
				XXH3_64bits_update(&mw->chunk_state, zero_page, CKPT_PAGE_SIZE);
			mw->chunk_nonzero = true;
		}
		XXH3_64bits_update(&mw->chunk_state, page, CKPT_PAGE_SIZE);
	}
	mw->chunk_len += CKPT_PAGE_SIZE;
}

static int ckpt_mem_write_region(struct ckpt_mem_writer *mw, const uint8_t *host, uint64_t size,
				 uint64_t file_off)
{
	int ret;

	for (uint64_t pos = 0; pos < size; pos += CKPT_PAGE_SIZE) {
		uint64_t off = file_off + pos;
		const uint8_t *page = host + pos;
		bool zero = ckpt_page_is_zero(page);

		if (off % CKPT_CHUNK_SIZE == 0)
			ckpt_mem_finish_chunk(mw);
		ckpt_mem_hash_page(mw, page, zero);

		if (zero || mw->run_len == CKPT_RUN_MAX) {
			ret = ckpt_mem_flush_run(mw);
			if (ret)
				return ret;
		}
		if (!zero) {
			if (mw->run_len == 0) {
				mw->run_host = page;
				mw->run_off = off;
			}
			mw->run_len += CKPT_PAGE_SIZE;
		}

		if (mw->progress && off + CKPT_PAGE_SIZE >= mw->next_progress) {
			mw->progress(off + CKPT_PAGE_SIZE, mw->total, mw->opaque);
			mw->next_progress += CKPT_PROGRESS_STEP;
		}
	}
	/* The next region is elsewhere in host memory, so a run cannot continue into it. */
	return ckpt_mem_flush_run(mw);
}

/* Checks the layout and records it in the manifest; returns the total size or -errno. */
static int64_t ckpt_mem_record_layout(struct ckpt_writer *w, const struct guest_mem *m)
{
	uint64_t total = 0;

	if (m->nr_regions == 0 || m->nr_regions > GUEST_MEM_MAX_REGIONS)
		return -EINVAL;
	for (unsigned i = 0; i < m->nr_regions; i++) {
		const struct guest_mem_region *r = &m->regions[i];

		if (r->size == 0 || r->size % CKPT_PAGE_SIZE || r->gpa % CKPT_PAGE_SIZE ||
		    (uintptr_t)r->host % 8 || r->size > INT64_MAX - total)
			return -EINVAL;
		w->manifest.region_gpa[i] = r->gpa;
		w->manifest.region_size[i] = r->size;
		total += r->size;
	}
	w->manifest.nr_regions = m->nr_regions;
	return (int64_t)total;
}

int ckpt_writer_add_memory(struct ckpt_writer *w, const struct guest_mem *m,
			   ckpt_progress_fn progress, void *opaque)
{
	struct ckpt_mem_writer mw = {
		.fd = -1,
		.progress = progress,
		.opaque = opaque,
		.next_progress = CKPT_PROGRESS_STEP,
	};
	uint64_t file_off = 0;
	int64_t total;
	int ret;

	if (ckpt_manifest_find(&w->manifest, CKPT_MEMORY_FILE) >= 0 || w->manifest.nr_chunks) {
		log_error("ckpt", "%s: memory written twice", w->tmp_path);
		return -EEXIST;
	}
	total = ckpt_mem_record_layout(w, m);
	if (total < 0) {
		log_error("ckpt", "%s: guest memory layout is invalid (regions must be non-empty, page-aligned, at most %d)",
			  w->tmp_path, GUEST_MEM_MAX_REGIONS);
		return (int)total;
	}
	mw.total = (uint64_t)total;
	mw.chunks = calloc(ckpt_nr_chunks(mw.total), sizeof(uint64_t));
	if (!mw.chunks)
		return -ENOMEM;

	mw.fd = openat(w->dir_fd, CKPT_MEMORY_FILE, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (mw.fd < 0) {
		ret = -errno;
		goto out;
	}
	/* Sets the apparent size at once: everything not written below stays a hole. */
	if (ftruncate(mw.fd, (off_t)mw.total) < 0) {
		ret = -errno;
		goto out;
	}
	for (unsigned i = 0; i < m->nr_regions; i++) {
		ret = ckpt_mem_write_region(&mw, m->regions[i].host, m->regions[i].size, file_off);
		if (ret)
			goto out;
		file_off += m->regions[i].size;
	}
	ckpt_mem_finish_chunk(&mw);
	if (progress)
		progress(mw.total, mw.total, opaque);

	ret = ckpt_fault("memory");
	if (ret)
		goto out;
	if (fsync(mw.fd) < 0) {
		ret = -errno;
		goto out;
	}
	ret = ckpt_writer_list_file(w, CKPT_MEMORY_FILE, CKPT_FILE_MEMORY, mw.total,
				    ckpt_hash_chunks(mw.chunks, mw.chunk_index));
	if (ret)
		goto out;
	w->manifest.nr_chunks = mw.chunk_index;
	w->manifest.chunk_hashes = mw.chunks;
	mw.chunks = NULL;

out:
	if (ret) {
		log_error("ckpt", "cannot write %s/%s: %s", w->tmp_path, CKPT_MEMORY_FILE,
			  strerror(-ret));
		w->manifest.nr_regions = 0;
		if (mw.fd >= 0)
			unlinkat(w->dir_fd, CKPT_MEMORY_FILE, 0);
	}
	if (mw.fd >= 0)
		close(mw.fd);
	free(mw.chunks);
	return ret;
}
