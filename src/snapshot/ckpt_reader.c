/*
 * Reading a checkpoint, which is untrusted input. Every size, count and offset
 * read back is checked before use, and a failure produces a message naming the
 * checkpoint, the file or section, and the fault. Every file is opened read-only
 * and memory is mapped MAP_PRIVATE, so nothing the reader does can modify the
 * checkpoint. Restoring a disk writes only a new file beside the destination.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "snapshot/ckpt_internal.h"

/* A section record's header: name, length, checksum. */
#define CKPT_SECTION_HEADER (CKPT_NAME_FIELD + 16)
#define CKPT_STATE_HEADER (CKPT_MAGIC_LEN + 8)

struct ckpt_section_ref {
	const char *name; /* points into the state buffer, NUL-terminated */
	const uint8_t *data;
	uint64_t len;
};

struct ckpt_reader {
	char *dir;
	int dir_fd;
	struct ckpt_manifest manifest;
	int fds[CKPT_MAX_FILES];
	int memory_index; /* index into manifest.files, or -1 */
	uint8_t *state;
	size_t state_len;
	struct ckpt_section_ref *sections;
	unsigned nr_sections;
	uint64_t disk_usage;
};

/* Formats "checkpoint DIR: MESSAGE" into errbuf and returns err. */
static int __attribute__((format(printf, 5, 6)))
ckpt_reader_fail(const char *dir, char *errbuf, size_t errlen, int err, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!errbuf || errlen == 0)
		return err;
	n = snprintf(errbuf, errlen, "checkpoint %s: ", dir);
	if (n >= 0 && (size_t)n < errlen) {
		va_start(ap, fmt);
		vsnprintf(errbuf + n, errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return err;
}

static uint64_t ckpt_le64_at(const uint8_t *p)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static int ckpt_reader_load_manifest(struct ckpt_reader *r, char *errbuf, size_t errlen)
{
	char msg[256];
	struct stat st;
	uint8_t *buf = NULL;
	int fd;
	int ret;

	fd = openat(r->dir_fd, CKPT_MANIFEST_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return ckpt_reader_fail(r->dir, errbuf, errlen, -ENOENT,
					"manifest missing (an incomplete checkpoint, or not a checkpoint)");
	if (fd < 0)
		return ckpt_reader_fail(r->dir, errbuf, errlen, -errno, "manifest: cannot open: %s",
					strerror(errno));
	if (fstat(fd, &st) < 0) {
		ret = ckpt_reader_fail(r->dir, errbuf, errlen, -errno, "manifest: cannot stat: %s",
				       strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    (uint64_t)st.st_size > CKPT_MAX_MANIFEST_BYTES) {
		ret = ckpt_reader_fail(r->dir, errbuf, errlen, -EBADMSG,
				       "manifest: not a regular file of 1 to %u bytes (size %lld)",
				       CKPT_MAX_MANIFEST_BYTES, (long long)st.st_size);
		goto out;
	}
	r->disk_usage += (uint64_t)st.st_blocks * 512;

	buf = malloc((size_t)st.st_size);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	ret = ckpt_pread_full(fd, buf, (size_t)st.st_size, 0);
	if (ret) {
		ckpt_reader_fail(r->dir, errbuf, errlen, ret, "manifest: read failed: %s",
				 strerror(-ret));
		goto out;
	}
	ret = ckpt_manifest_decode(&r->manifest, buf, (size_t)st.st_size, msg, sizeof(msg));
	if (ret)
		ckpt_reader_fail(r->dir, errbuf, errlen, ret, "%s", msg);
out:
	free(buf);
	close(fd);
	return ret;
}

/* Opens every listed file and checks that it is a regular file of the listed size. */
static int ckpt_reader_open_files(struct ckpt_reader *r, char *errbuf, size_t errlen)
{
	for (unsigned i = 0; i < r->manifest.nr_files; i++) {
		const struct ckpt_file_entry *f = &r->manifest.files[i];
		struct stat st;
		int fd;

		fd = openat(r->dir_fd, f->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			if (errno == ENOENT)
				return ckpt_reader_fail(r->dir, errbuf, errlen, -ENOENT,
							"file %s: missing", f->name);
			return ckpt_reader_fail(r->dir, errbuf, errlen, -errno,
						"file %s: cannot open: %s", f->name, strerror(errno));
		}
		r->fds[i] = fd;
		if (fstat(fd, &st) < 0)
			return ckpt_reader_fail(r->dir, errbuf, errlen, -errno,
						"file %s: cannot stat: %s", f->name, strerror(errno));
		if (!S_ISREG(st.st_mode))
			return ckpt_reader_fail(r->dir, errbuf, errlen, -EBADMSG,
						"file %s: not a regular file", f->name);
		if ((uint64_t)st.st_size != f->size)
			return ckpt_reader_fail(r->dir, errbuf, errlen, -EBADMSG,
						"file %s: size %lld but the manifest says %" PRIu64 " (%s)",
						f->name, (long long)st.st_size, f->size,
						(uint64_t)st.st_size < f->size ? "truncated?"
									       : "appended to?");
		r->disk_usage += (uint64_t)st.st_blocks * 512;
		if (f->kind == CKPT_FILE_MEMORY)
			r->memory_index = (int)i;
	}
	return 0;
}

/* Walks the section records of `state`, checking bounds, names and checksums. */
static int ckpt_reader_parse_sections(struct ckpt_reader *r, char *errbuf, size_t errlen)
{
	const uint8_t *buf = r->state;
	size_t len = r->state_len;
	uint32_t nr;
	size_t pos;

	if (len < CKPT_STATE_HEADER || memcmp(buf, CKPT_STATE_MAGIC, CKPT_MAGIC_LEN) != 0)
		return ckpt_reader_fail(r->dir, errbuf, errlen, -EBADMSG, "file state: bad magic");
	nr = (uint32_t)buf[8] | (uint32_t)buf[9] << 8 | (uint32_t)buf[10] << 16 |
	     (uint32_t)buf[11] << 24;
	if (nr > CKPT_MAX_SECTIONS)
		return ckpt_reader_fail(r->dir, errbuf, errlen, -EBADMSG,
					"file state: %" PRIu32 " sections (at most %d)", nr,
					CKPT_MAX_SECTIONS);
	r->sections = calloc(nr ? nr : 1, sizeof(*r->sections));
	if (!r->sections)
		return -ENOMEM;

	pos = CKPT_STATE_HEADER;
	for (uint32_t i = 0; i < nr; i++) {
		const uint8_t *rec = buf + pos;
		const char *name = (const char *)rec;
		uint64_t plen;
		uint64_t padded;
		XXH3_state_t st;

		if (len - pos < CKPT_SECTION_HEADER)
			return ckpt_reader_fail(r->dir, errbuf, errlen, -EBADMSG,
						"file state: section %" PRIu32 " of %" PRIu32
						" runs past the end of the file", i, nr);
		if (memchr(name, '\0', CKPT_NAME_FIELD) == NULL || !ckpt_name_valid(name))
			return ckpt_reader_fail(r->dir, errbuf, errlen, -EBADMSG,
						"file state: section %" PRIu32 " has an invalid name", i);
		plen = ckpt_le64_at(rec + CKPT_NAME_FIELD);
		padded = plen + (8 - plen % 8) % 8;
		if (plen > len - pos - CKPT_SECTION_HEADER ||
		    padded > len - pos - CKPT_SECTION_HEADER)
			return ckpt_reader_fail(r->dir, errbuf, errlen, -EBADMSG,
						"section %s: length %" PRIu64
						" runs past the end of the state file", name, plen);

		XXH3_64bits_reset(&st);
		XXH3_64bits_update(&st, rec, CKPT_NAME_FIELD + 8);
		XXH3_64bits_update(&st, rec + CKPT_SECTION_HEADER, plen);
		if (XXH3_64bits_digest(&st) != ckpt_le64_at(rec + CKPT_NAME_FIELD + 8))
			return ckpt_reader_fail(r->dir, errbuf, errlen, -EBADMSG,
						"section %s: checksum mismatch", name);
		if (ckpt_reader_section(r, name, NULL))
			return ckpt_reader_fail(r->dir, errbuf, errlen, -EBADMSG,
						"section %s: appears twice", name);

		r->sections[i].name = name;
		r->sections[i].data = rec + CKPT_SECTION_HEADER;
		r->sections[i].len = plen;
		r->nr_sections = i + 1;
		pos += CKPT_SECTION_HEADER + padded;
	}
	if (pos != len)
		return ckpt_reader_fail(r->dir, errbuf, errlen, -EBADMSG,
					"file state: %zu bytes after the last section", len - pos);
	return 0;
}

static int ckpt_reader_load_state(struct ckpt_reader *r, char *errbuf, size_t errlen)
{
	int idx = ckpt_manifest_find(&r->manifest, CKPT_STATE_FILE);
	const struct ckpt_file_entry *f = &r->manifest.files[idx];
	int ret;

	/* The manifest decoder guarantees one state file of at most CKPT_MAX_STATE_BYTES. */
	r->state_len = (size_t)f->size;
	r->state = malloc(r->state_len ? r->state_len : 1);
	if (!r->state)
		return -ENOMEM;
	ret = ckpt_pread_full(r->fds[idx], r->state, r->state_len, 0);
	if (ret)
		return ckpt_reader_fail(r->dir, errbuf, errlen, ret, "file state: read failed: %s",
					strerror(-ret));

	ret = ckpt_reader_parse_sections(r, errbuf, errlen);
	if (ret)
		return ret;
	if (ckpt_hash_buffer(r->state, r->state_len) != f->hash)
		return ckpt_reader_fail(r->dir, errbuf, errlen, -EBADMSG,
					"file state: checksum mismatch");
	return 0;
}

int ckpt_reader_open(struct ckpt_reader **rp, const char *dir, char *errbuf, size_t errlen)
{
	struct ckpt_reader *r;
	struct stat st;
	int ret;

	*rp = NULL;
	if (errbuf && errlen)
		errbuf[0] = '\0';
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	for (unsigned i = 0; i < CKPT_MAX_FILES; i++)
		r->fds[i] = -1;
	r->memory_index = -1;
	r->dir = strdup(dir);
	if (!r->dir) {
		free(r);
		return -ENOMEM;
	}

	r->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->dir_fd < 0) {
		ret = ckpt_reader_fail(dir, errbuf, errlen, -errno, "cannot open: %s",
				       strerror(errno));
		goto fail;
	}
	if (fstat(r->dir_fd, &st) == 0)
		r->disk_usage = (uint64_t)st.st_blocks * 512;

	ret = ckpt_reader_load_manifest(r, errbuf, errlen);
	if (ret)
		goto fail;
	ret = ckpt_reader_open_files(r, errbuf, errlen);
	if (ret)
		goto fail;
	ret = ckpt_reader_load_state(r, errbuf, errlen);
	if (ret)
		goto fail;
	*rp = r;
	return 0;

fail:
	if (ret == -ENOMEM)
		ckpt_reader_fail(dir, errbuf, errlen, ret, "out of memory");
	ckpt_reader_close(r);
	return ret;
}

void ckpt_reader_close(struct ckpt_reader *r)
{
	if (!r)
		return;
	for (unsigned i = 0; i < CKPT_MAX_FILES; i++) {
		if (r->fds[i] >= 0)
			close(r->fds[i]);
	}
	if (r->dir_fd >= 0)
		close(r->dir_fd);
	ckpt_manifest_free(&r->manifest);
	free(r->sections);
	free(r->state);
	free(r->dir);
	free(r);
}

int ckpt_reader_verify_memory(struct ckpt_reader *r, char *errbuf, size_t errlen)
{
	const struct ckpt_file_entry *f;
	struct ckpt_scan scan = { .dst_fd = -1 };
	int ret;

	if (r->memory_index < 0)
		return 0;
	f = &r->manifest.files[r->memory_index];
	scan.src_fd = r->fds[r->memory_index];
	scan.size = f->size;
	scan.expect = r->manifest.chunk_hashes;
	ret = ckpt_scan_file(&scan);
	if (ret == -EBADMSG)
		return ckpt_reader_fail(r->dir, errbuf, errlen, ret,
					"file memory: checksum mismatch in chunk %" PRIu64
					" (bytes %" PRIu64 " to %" PRIu64 ")", scan.bad_chunk,
					scan.bad_chunk * CKPT_CHUNK_SIZE,
					(scan.bad_chunk + 1) * CKPT_CHUNK_SIZE - 1);
	if (ret)
		return ckpt_reader_fail(r->dir, errbuf, errlen, ret, "file memory: read failed: %s",
					strerror(-ret));
	return 0;
}

static int ckpt_reader_find_disk(const struct ckpt_reader *r, const char *name)
{
	int idx = ckpt_manifest_find(&r->manifest, name);

	if (idx < 0 || r->manifest.files[idx].kind != CKPT_FILE_DISK)
		return -1;
	return idx;
}

int ckpt_reader_verify_disk(struct ckpt_reader *r, const char *name, char *errbuf,
			    size_t errlen)
{
	struct ckpt_scan scan = { .dst_fd = -1 };
	int idx = ckpt_reader_find_disk(r, name);
	int ret;

	if (idx < 0)
		return ckpt_reader_fail(r->dir, errbuf, errlen, -ENOENT,
					"disk %s: not in this checkpoint", name);
	scan.src_fd = r->fds[idx];
	scan.size = r->manifest.files[idx].size;
	ret = ckpt_scan_file(&scan);
	if (ret)
		return ckpt_reader_fail(r->dir, errbuf, errlen, ret, "file %s: read failed: %s",
					name, strerror(-ret));
	if (scan.hash != r->manifest.files[idx].hash)
		return ckpt_reader_fail(r->dir, errbuf, errlen, -EBADMSG,
					"file %s: checksum mismatch", name);
	return 0;
}

int ckpt_reader_verify_all(struct ckpt_reader *r, char *errbuf, size_t errlen)
{
	int ret = ckpt_reader_verify_memory(r, errbuf, errlen);

	for (unsigned i = 0; ret == 0 && i < r->manifest.nr_files; i++) {
		if (r->manifest.files[i].kind == CKPT_FILE_DISK)
			ret = ckpt_reader_verify_disk(r, r->manifest.files[i].name, errbuf, errlen);
	}
	return ret;
}

int64_t ckpt_reader_created(const struct ckpt_reader *r)
{
	return r->manifest.created;
}

uint64_t ckpt_reader_disk_usage(const struct ckpt_reader *r)
{
	return r->disk_usage;
}

const void *ckpt_reader_section(const struct ckpt_reader *r, const char *name, size_t *len)
{
	for (unsigned i = 0; i < r->nr_sections; i++) {
		if (strcmp(r->sections[i].name, name) == 0) {
			if (len)
				*len = (size_t)r->sections[i].len;
			return r->sections[i].data;
		}
	}
	return NULL;
}

unsigned ckpt_reader_section_count(const struct ckpt_reader *r)
{
	return r->nr_sections;
}

const char *ckpt_reader_section_name(const struct ckpt_reader *r, unsigned i)
{
	return i < r->nr_sections ? r->sections[i].name : NULL;
}

int ckpt_reader_memory_fd(const struct ckpt_reader *r)
{
	return r->memory_index < 0 ? -1 : r->fds[r->memory_index];
}

uint64_t ckpt_reader_memory_size(const struct ckpt_reader *r)
{
	return r->memory_index < 0 ? 0 : r->manifest.files[r->memory_index].size;
}

unsigned ckpt_reader_memory_region_count(const struct ckpt_reader *r)
{
	return r->manifest.nr_regions;
}

int ckpt_reader_memory_region(const struct ckpt_reader *r, unsigned i, uint64_t *gpa,
			      uint64_t *size)
{
	if (i >= r->manifest.nr_regions)
		return -ENOENT;
	*gpa = r->manifest.region_gpa[i];
	*size = r->manifest.region_size[i];
	return 0;
}

int ckpt_reader_map_memory(struct ckpt_reader *r, const struct guest_mem *m, char *errbuf,
			   size_t errlen)
{
	const struct ckpt_manifest *man = &r->manifest;
	uint64_t off = 0;

	if (r->memory_index < 0)
		return ckpt_reader_fail(r->dir, errbuf, errlen, -ENOENT, "no memory image");
	if (m->nr_regions != man->nr_regions)
		return ckpt_reader_fail(r->dir, errbuf, errlen, -EINVAL,
					"memory: saved with %u RAM regions, the VM has %u",
					man->nr_regions, m->nr_regions);
	for (unsigned i = 0; i < m->nr_regions; i++) {
		const struct guest_mem_region *reg = &m->regions[i];

		if (reg->gpa != man->region_gpa[i] || reg->size != man->region_size[i] ||
		    (uintptr_t)reg->host % CKPT_PAGE_SIZE)
			return ckpt_reader_fail(r->dir, errbuf, errlen, -EINVAL,
						"memory: region %u saved as gpa 0x%" PRIx64 " size 0x%" PRIx64
						", the VM has gpa 0x%" PRIx64 " size 0x%" PRIx64
						" (or an unaligned host address)", i, man->region_gpa[i],
						man->region_size[i], reg->gpa, reg->size);
	}

	for (unsigned i = 0; i < m->nr_regions; i++) {
		const struct guest_mem_region *reg = &m->regions[i];
		void *p = mmap(reg->host, reg->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED,
			       r->fds[r->memory_index], (off_t)off);

		if (p == MAP_FAILED)
			return ckpt_reader_fail(r->dir, errbuf, errlen, -errno,
						"memory: mmap of region %u failed: %s", i,
						strerror(errno));
		off += reg->size;
	}
	return 0;
}

unsigned ckpt_reader_disk_count(const struct ckpt_reader *r)
{
	unsigned n = 0;

	for (unsigned i = 0; i < r->manifest.nr_files; i++)
		n += r->manifest.files[i].kind == CKPT_FILE_DISK;
	return n;
}

const char *ckpt_reader_disk_name(const struct ckpt_reader *r, unsigned i)
{
	for (unsigned f = 0; f < r->manifest.nr_files; f++) {
		if (r->manifest.files[f].kind != CKPT_FILE_DISK)
			continue;
		if (i-- == 0)
			return r->manifest.files[f].name;
	}
	return NULL;
}

int64_t ckpt_reader_disk_size(const struct ckpt_reader *r, const char *name)
{
	int idx = ckpt_reader_find_disk(r, name);

	return idx < 0 ? -ENOENT : (int64_t)r->manifest.files[idx].size;
}

/* fsyncs the directory containing path, so a rename into it is durable. */
static int ckpt_fsync_parent(const char *path)
{
	char *copy = strdup(path);
	int fd;
	int ret = 0;

	if (!copy)
		return -ENOMEM;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		ret = -errno;
	if (fd >= 0)
		close(fd);
	free(copy);
	return ret;
}

int ckpt_reader_restore_disk(struct ckpt_reader *r, const char *name, const char *dest_path,
			     enum ckpt_copy_method *method, char *errbuf, size_t errlen)
{
	int idx = ckpt_reader_find_disk(r, name);
	enum ckpt_copy_method used;
	char tmp_name[64];
	char *tmp = NULL;
	struct stat st;
	mode_t mode = 0600;
	uint64_t hash;
	int fd = -1;
	int ret;

	if (idx < 0)
		return ckpt_reader_fail(r->dir, errbuf, errlen, -ENOENT,
					"disk %s: not in this checkpoint", name);
	/* The new file takes the permissions of the image it replaces. */
	if (stat(dest_path, &st) == 0)
		mode = st.st_mode & 07777;
	ret = ckpt_temp_name(tmp_name, sizeof(tmp_name), "x");
	if (ret)
		return ret;
	/* tmp_name is ".x.tmp-PID-RANDOM": the new file is DEST.tmp-PID-RANDOM. */
	if (asprintf(&tmp, "%s%s", dest_path, tmp_name + 2) < 0)
		return -ENOMEM;

	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		ret = ckpt_reader_fail(r->dir, errbuf, errlen, -errno,
				       "disk %s: cannot create %s: %s", name, tmp, strerror(errno));
		free(tmp);
		return ret;
	}
	ret = ckpt_copy_image(r->fds[idx], fd, r->manifest.files[idx].size, &used, &hash);
	if (ret) {
		ckpt_reader_fail(r->dir, errbuf, errlen, ret, "disk %s: copy to %s failed: %s", name,
				 tmp, strerror(-ret));
		goto fail;
	}
	if (hash != r->manifest.files[idx].hash) {
		ret = ckpt_reader_fail(r->dir, errbuf, errlen, -EBADMSG,
				       "file %s: checksum mismatch (%s left unchanged)", name,
				       dest_path);
		goto fail;
	}
	if (rename(tmp, dest_path) < 0) {
		ret = ckpt_reader_fail(r->dir, errbuf, errlen, -errno,
				       "disk %s: cannot rename %s to %s: %s", name, tmp, dest_path,
				       strerror(errno));
		goto fail;
	}
	ret = ckpt_fsync_parent(dest_path);
	if (ret)
		log_warn("ckpt", "cannot fsync the directory containing %s: %s", dest_path,
			 strerror(-ret));
	close(fd);
	free(tmp);
	if (method)
		*method = used;
	return 0;

fail:
	close(fd);
	unlink(tmp);
	free(tmp);
	return ret;
}
