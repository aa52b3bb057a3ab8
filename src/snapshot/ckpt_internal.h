/*
 * Declarations shared by the checkpoint writer and reader: the decoded manifest,
 * the chunked checksum, and file helpers. Not part of the public interface.
 */
#ifndef CRYO_SNAPSHOT_CKPT_INTERNAL_H
#define CRYO_SNAPSHOT_CKPT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* XXH3_state_t on the stack needs its definition; the library version pins the layout. */
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "common/ser.h"
#include "devices/guest_mem.h"
#include "snapshot/ckpt.h"

#define CKPT_MANIFEST_MAGIC "CRYOCKPT"
#define CKPT_STATE_MAGIC "CRYOSTAT"
#define CKPT_MAGIC_LEN 8
#define CKPT_NAME_FIELD (CKPT_NAME_MAX + 1)
#define CKPT_MAX_FILES 64
#define CKPT_MAX_SECTIONS 4096
/* Sizes beyond these limits are rejected as damage before any allocation. */
#define CKPT_MAX_MANIFEST_BYTES (64u << 20)
#define CKPT_MAX_STATE_BYTES (256u << 20)

#define CKPT_MANIFEST_FILE "manifest"
#define CKPT_STATE_FILE "state"
#define CKPT_MEMORY_FILE "memory"

enum ckpt_file_kind {
	CKPT_FILE_STATE = 1,
	CKPT_FILE_MEMORY = 2,
	CKPT_FILE_DISK = 3,
};

struct ckpt_file_entry {
	char name[CKPT_NAME_FIELD];
	uint32_t kind;
	uint64_t size;
	uint64_t hash; /* chunked checksum, see ckpt_hash_chunks */
};

struct ckpt_manifest {
	uint32_t version;
	int64_t created;
	unsigned nr_files;
	struct ckpt_file_entry files[CKPT_MAX_FILES];
	/* Guest RAM layout and one checksum per CKPT_CHUNK_SIZE of the memory file. */
	unsigned nr_regions;
	uint64_t region_gpa[GUEST_MEM_MAX_REGIONS];
	uint64_t region_size[GUEST_MEM_MAX_REGIONS];
	uint64_t nr_chunks;
	uint64_t *chunk_hashes;
};

/* Manifest encoding (ckpt_manifest.c). decode fills msg (without the directory prefix). */
int ckpt_manifest_encode(const struct ckpt_manifest *m, struct ser_writer *out);
int ckpt_manifest_decode(struct ckpt_manifest *m, const uint8_t *buf, size_t len, char *msg,
			 size_t msglen);
void ckpt_manifest_free(struct ckpt_manifest *m);
int ckpt_manifest_find(const struct ckpt_manifest *m, const char *name);

/* True when name is 1..CKPT_NAME_MAX characters of [A-Za-z0-9._-] and does not start with '.'. */
bool ckpt_name_valid(const char *name);

/*
 * The chunked checksum of a byte string: XXH3_64bits over the little-endian XXH3_64bits
 * of each CKPT_CHUNK_SIZE chunk (the last one may be shorter). All-zero chunks have a
 * known checksum, so holes need not be read.
 */
uint64_t ckpt_hash_zero_chunk(uint64_t len);
uint64_t ckpt_hash_chunks(const uint64_t *chunk_hashes, uint64_t nr_chunks);
uint64_t ckpt_hash_buffer(const void *buf, size_t len);
uint64_t ckpt_nr_chunks(uint64_t size);

/* True when the CKPT_PAGE_SIZE bytes at p, which is 8-byte aligned, are all zero. */
bool ckpt_page_is_zero(const void *p);

/*
 * One pass over a file: checksums each chunk, optionally compares with expected
 * chunk checksums and optionally copies the data to dst_fd, skipping zero pages so
 * the copy stays sparse. Chunks inside a hole of src_fd are not read.
 */
struct ckpt_scan {
	int src_fd;
	uint64_t size;
	int dst_fd;              /* -1: checksum only */
	const uint64_t *expect;  /* NULL, or one checksum per chunk */
	uint64_t *chunks_out;    /* NULL, or room for one checksum per chunk */
	uint64_t bad_chunk;      /* out: first chunk whose checksum differs from expect */
	uint64_t hash;           /* out: chunked checksum of the whole file */
};

/* Returns 0, -EBADMSG when a chunk differs from expect, or a negative errno. */
int ckpt_scan_file(struct ckpt_scan *s);

int ckpt_copy_image(int src_fd, int dst_fd, uint64_t size, enum ckpt_copy_method *method,
		    uint64_t *hash);

int ckpt_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);
/* Reads exactly len bytes; -EIO when the file ends first. */
int ckpt_pread_full(int fd, void *buf, size_t len, uint64_t off);

/* Removes a flat directory of regular files (a checkpoint or a temporary one). */
int ckpt_remove_dir(int parent_fd, const char *name);
/* Fills buf with ".BASE.tmp-PID-RANDOM". */
int ckpt_temp_name(char *buf, size_t len, const char *base);

int ckpt_fault(const char *step);

struct ckpt_writer {
	char *final_dir;
	char *tmp_path; /* the temporary directory, for messages */
	char *final_name;
	char *tmp_name;
	int parent_fd;
	int dir_fd;
	/* Section records as they follow the header of `state`. */
	struct ser_writer sections;
	unsigned nr_sections;
	char (*section_names)[CKPT_NAME_FIELD];
	struct ckpt_manifest manifest;
};

/* Lists a finished file in the manifest; -EEXIST or -E2BIG when it cannot be. */
int ckpt_writer_list_file(struct ckpt_writer *w, const char *name, enum ckpt_file_kind kind,
			  uint64_t size, uint64_t hash);

#endif
