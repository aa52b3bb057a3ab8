/*
 * The manifest: the last file written to a checkpoint and the first one read. Its
 * presence marks the checkpoint complete. Layout (little-endian, version 1):
 *
 *   "CRYOCKPT"  u32 version  i64 created (UTC seconds)
 *   u32 nr_files, then per file: name[32] (NUL-padded), u32 kind, u64 size, u64 checksum
 *   u32 nr_regions, then per region: u64 gpa, u64 size
 *   u32 chunk_size, u64 nr_chunks, then u64 checksum per memory chunk
 *   u64 XXH3_64bits of every byte before it
 *
 * The decoder trusts nothing: it checks magic and version first (so a newer format
 * is reported as such, not as damage), then the checksum, then every field.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot/ckpt_internal.h"

bool ckpt_name_valid(const char *name)
{
	size_t len = strnlen(name, CKPT_NAME_FIELD);

	if (len == 0 || len > CKPT_NAME_MAX || name[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

int ckpt_manifest_find(const struct ckpt_manifest *m, const char *name)
{
	for (unsigned i = 0; i < m->nr_files; i++) {
		if (strcmp(m->files[i].name, name) == 0)
			return (int)i;
	}
	return -1;
}

void ckpt_manifest_free(struct ckpt_manifest *m)
{
	free(m->chunk_hashes);
	m->chunk_hashes = NULL;
}

int ckpt_manifest_encode(const struct ckpt_manifest *m, struct ser_writer *out)
{
	ser_bytes(out, CKPT_MANIFEST_MAGIC, CKPT_MAGIC_LEN);
	ser_u32(out, m->version);
	ser_u64(out, (uint64_t)m->created);

	ser_u32(out, m->nr_files);
	for (unsigned i = 0; i < m->nr_files; i++) {
		const struct ckpt_file_entry *f = &m->files[i];
		char name[CKPT_NAME_FIELD] = { 0 };

		strncpy(name, f->name, CKPT_NAME_MAX);
		ser_bytes(out, name, sizeof(name));
		ser_u32(out, f->kind);
		ser_u64(out, f->size);
		ser_u64(out, f->hash);
	}

	ser_u32(out, m->nr_regions);
	for (unsigned i = 0; i < m->nr_regions; i++) {
		ser_u64(out, m->region_gpa[i]);
		ser_u64(out, m->region_size[i]);
	}
	ser_u32(out, CKPT_CHUNK_SIZE);
	ser_u64(out, m->nr_chunks);
	for (uint64_t i = 0; i < m->nr_chunks; i++)
		ser_u64(out, m->chunk_hashes[i]);

	if (out->err)
		return out->err;
	ser_u64(out, XXH3_64bits(out->buf, out->len));
	return out->err;
}

static uint64_t ckpt_get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* Checks the file list; fills msg and returns -EBADMSG on the first bad entry. */
static int ckpt_manifest_check_files(const struct ckpt_manifest *m, char *msg, size_t msglen)
{
	unsigned nr_state = 0;
	unsigned nr_memory = 0;

	for (unsigned i = 0; i < m->nr_files; i++) {
		const struct ckpt_file_entry *f = &m->files[i];

		if (f->name[CKPT_NAME_MAX] != '\0' || !ckpt_name_valid(f->name)) {
			snprintf(msg, msglen, "manifest: file entry %u has an invalid name", i);
			return -EBADMSG;
		}
		if (strcmp(f->name, CKPT_MANIFEST_FILE) == 0 || ckpt_manifest_find(m, f->name) != (int)i) {
			snprintf(msg, msglen, "manifest: file %s is listed twice or is reserved",
				 f->name);
			return -EBADMSG;
		}
		switch (f->kind) {
		case CKPT_FILE_STATE:
			nr_state++;
			if (strcmp(f->name, CKPT_STATE_FILE) != 0 || f->size > CKPT_MAX_STATE_BYTES) {
				snprintf(msg, msglen, "manifest: state entry %s is invalid", f->name);
				return -EBADMSG;
			}
			break;
		case CKPT_FILE_MEMORY:
			nr_memory++;
			if (strcmp(f->name, CKPT_MEMORY_FILE) != 0) {
				snprintf(msg, msglen, "manifest: memory entry %s is invalid", f->name);
				return -EBADMSG;
			}
			break;
		case CKPT_FILE_DISK:
			if (strcmp(f->name, CKPT_STATE_FILE) == 0 || strcmp(f->name, CKPT_MEMORY_FILE) == 0) {
				snprintf(msg, msglen, "manifest: disk entry %s uses a reserved name",
					 f->name);
				return -EBADMSG;
			}
			break;
		default:
			snprintf(msg, msglen, "manifest: file %s has unknown kind %" PRIu32, f->name,
				 f->kind);
			return -EBADMSG;
		}
	}
	if (nr_state != 1 || nr_memory > 1) {
		snprintf(msg, msglen, "manifest: lists %u state and %u memory files (expected 1 and at most 1)",
			 nr_state, nr_memory);
		return -EBADMSG;
	}
	return 0;
}

/* Checks the RAM layout and chunk list against the memory file entry, if any. */
static int ckpt_manifest_check_memory(const struct ckpt_manifest *m, char *msg, size_t msglen)
{
	int idx = ckpt_manifest_find(m, CKPT_MEMORY_FILE);
	uint64_t total = 0;

	if (idx < 0) {
		if (m->nr_regions != 0 || m->nr_chunks != 0) {
			snprintf(msg, msglen, "manifest: memory layout present without a memory file");
			return -EBADMSG;
		}
		return 0;
	}
	if (m->nr_regions == 0) {
		snprintf(msg, msglen, "manifest: memory file without a memory layout");
		return -EBADMSG;
	}
	for (unsigned i = 0; i < m->nr_regions; i++) {
		uint64_t size = m->region_size[i];

		if (size == 0 || size % CKPT_PAGE_SIZE || size > UINT64_MAX - total ||
		    m->region_gpa[i] % CKPT_PAGE_SIZE || m->region_gpa[i] > UINT64_MAX - size) {
			snprintf(msg, msglen, "manifest: memory region %u (gpa 0x%" PRIx64
				 " size 0x%" PRIx64 ") is invalid", i, m->region_gpa[i], size);
			return -EBADMSG;
		}
		total += size;
	}
	if (total != m->files[idx].size) {
		snprintf(msg, msglen, "manifest: memory regions add up to %" PRIu64
			 " bytes but the memory file is listed as %" PRIu64, total,
			 m->files[idx].size);
		return -EBADMSG;
	}
	if (ckpt_hash_chunks(m->chunk_hashes, m->nr_chunks) != m->files[idx].hash) {
		snprintf(msg, msglen, "manifest: memory chunk checksums do not match the memory file checksum");
		return -EBADMSG;
	}
	return 0;
}

int ckpt_manifest_decode(struct ckpt_manifest *m, const uint8_t *buf, size_t len, char *msg,
			 size_t msglen)
{
	struct ser_reader rd;
	uint32_t chunk_size;
	int idx;
	int ret;

	memset(m, 0, sizeof(*m));
	if (len < CKPT_MAGIC_LEN + 4 || memcmp(buf, CKPT_MANIFEST_MAGIC, CKPT_MAGIC_LEN) != 0) {
		snprintf(msg, msglen, "manifest: bad magic (not a cryo checkpoint)");
		return -EBADMSG;
	}
	ser_reader_init(&rd, buf + CKPT_MAGIC_LEN, 4);
	m->version = de_u32(&rd);
	if (m->version != CKPT_FORMAT_VERSION) {
		snprintf(msg, msglen, "format version %" PRIu32 " is not supported (this cryo reads version %d)",
			 m->version, CKPT_FORMAT_VERSION);
		return -ENOTSUP;
	}
	if (len < CKPT_MAGIC_LEN + 4 + 8 + 8 ||
	    ckpt_get_le64(buf + len - 8) != XXH3_64bits(buf, len - 8)) {
		snprintf(msg, msglen, "manifest: checksum mismatch");
		return -EBADMSG;
	}

	ser_reader_init(&rd, buf + CKPT_MAGIC_LEN + 4, len - 8 - CKPT_MAGIC_LEN - 4);
	m->created = (int64_t)de_u64(&rd);
	m->nr_files = de_u32(&rd);
	if (m->nr_files > CKPT_MAX_FILES) {
		snprintf(msg, msglen, "manifest: %u files listed (at most %d)", m->nr_files,
			 CKPT_MAX_FILES);
		return -EBADMSG;
	}
	for (unsigned i = 0; i < m->nr_files; i++) {
		struct ckpt_file_entry *f = &m->files[i];

		de_bytes(&rd, f->name, sizeof(f->name));
		f->kind = de_u32(&rd);
		f->size = de_u64(&rd);
		f->hash = de_u64(&rd);
	}

	m->nr_regions = de_u32(&rd);
	if (m->nr_regions > GUEST_MEM_MAX_REGIONS) {
		snprintf(msg, msglen, "manifest: %u memory regions (at most %d)", m->nr_regions,
			 GUEST_MEM_MAX_REGIONS);
		return -EBADMSG;
	}
	for (unsigned i = 0; i < m->nr_regions; i++) {
		m->region_gpa[i] = de_u64(&rd);
		m->region_size[i] = de_u64(&rd);
	}
	chunk_size = de_u32(&rd);
	m->nr_chunks = de_u64(&rd);
	if (rd.err || chunk_size != CKPT_CHUNK_SIZE || m->nr_chunks > (rd.len - rd.pos) / 8) {
		snprintf(msg, msglen, "manifest: invalid memory chunk list (chunk size %" PRIu32
			 ", %" PRIu64 " chunks)", chunk_size, m->nr_chunks);
		return -EBADMSG;
	}
	if (m->nr_chunks) {
		m->chunk_hashes = calloc(m->nr_chunks, sizeof(uint64_t));
		if (!m->chunk_hashes)
			return -ENOMEM;
	}
	for (uint64_t i = 0; i < m->nr_chunks; i++)
		m->chunk_hashes[i] = de_u64(&rd);
	if (de_finish(&rd)) {
		snprintf(msg, msglen, "manifest: length does not match its contents");
		ret = -EBADMSG;
		goto fail;
	}

	ret = ckpt_manifest_check_files(m, msg, msglen);
	if (ret)
		goto fail;
	idx = ckpt_manifest_find(m, CKPT_MEMORY_FILE);
	if (m->nr_chunks != (idx < 0 ? 0 : ckpt_nr_chunks(m->files[idx].size))) {
		snprintf(msg, msglen, "manifest: %" PRIu64 " memory chunks do not cover the memory file",
			 m->nr_chunks);
		ret = -EBADMSG;
		goto fail;
	}
	ret = ckpt_manifest_check_memory(m, msg, msglen);
	if (ret)
		goto fail;
	return 0;

fail:
	ckpt_manifest_free(m);
	return ret;
}
