/*
 * The checkpoint format: a directory that is either complete or absent. It contains
 * `manifest` (written last: magic, version, creation time, every file's size and
 * checksum), `state` (named sections such as "vm", "vcpu0", "irqchip", one per
 * device), `memory` (guest RAM as one sparse file, holes for zero pages) and one
 * raw image per captured disk. docs/CHECKPOINT-FORMAT.md gives the byte layout.
 *
 * Writing: ckpt_writer_open, then add sections, memory and disks, then
 * ckpt_writer_commit (durable, atomic rename into place) or ckpt_writer_abort.
 * Writer errors are logged with the path and returned as a negative errno.
 *
 * Reading: every byte of a checkpoint is untrusted. ckpt_reader_open checks the
 * manifest, the presence and size of every file and the checksums of `state` and
 * each section; ckpt_reader_verify_all reads memory and disks as well. A reader
 * opens every file read-only and never modifies the checkpoint. Reader errors are
 * returned as a negative errno with a message in errbuf of the form
 * "checkpoint DIR: file NAME: FAULT".
 */
#ifndef CRYO_SNAPSHOT_CKPT_H
#define CRYO_SNAPSHOT_CKPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/guest_mem.h"

#define CKPT_FORMAT_VERSION 1
/* Maximum length of a section, disk or file name, in characters (the NUL is not counted). */
#define CKPT_NAME_MAX 31
/* Memory and disk checksums are computed per chunk of this many bytes. */
#define CKPT_CHUNK_SIZE (2u << 20)
#define CKPT_PAGE_SIZE 4096u

struct ckpt_writer;
struct ckpt_reader;

/* Method used to copy a disk image into or out of a checkpoint. */
enum ckpt_copy_method {
	CKPT_COPY_REFLINK,     /* ioctl FICLONE: shared extents, no data copied */
	CKPT_COPY_SPARSE,      /* read and write of data extents only, holes kept */
};

const char *ckpt_copy_method_name(enum ckpt_copy_method method);

/* Called during ckpt_writer_add_memory with bytes of the image done so far and the total. */
typedef void (*ckpt_progress_fn)(uint64_t done, uint64_t total, void *opaque);

/*
 * Starts a checkpoint that will appear at final_dir on commit. Creates the hidden
 * sibling directory ".BASENAME.tmp-PID-RANDOM" for the files being written. Fails with
 * -EEXIST when final_dir exists but is neither a checkpoint nor an empty directory,
 * so a commit never replaces anything else.
 */
int ckpt_writer_open(struct ckpt_writer **wp, const char *final_dir);

/*
 * Adds section `name` (1 to CKPT_NAME_MAX characters of [A-Za-z0-9._-]) with a copy
 * of data. Returns -EEXIST for a name already added, -EINVAL for an invalid name.
 */
int ckpt_writer_add_section(struct ckpt_writer *w, const char *name, const void *data,
			    size_t len);

/*
 * Writes guest RAM as the file `memory`: the regions of m concatenated in order,
 * each region's size a multiple of CKPT_PAGE_SIZE. Zero pages stay holes. progress
 * may be NULL. May be called once per checkpoint.
 */
int ckpt_writer_add_memory(struct ckpt_writer *w, const struct guest_mem *m,
			   ckpt_progress_fn progress, void *opaque);

/*
 * Captures the raw image at src_path as file `name` of the checkpoint, by reflink
 * when the filesystem supports it, else by a sparse copy. The caller keeps the image
 * unchanged until this returns. *method (may be NULL) receives the method used.
 */
int ckpt_writer_add_disk(struct ckpt_writer *w, const char *name, const char *src_path,
			 enum ckpt_copy_method *method);

/*
 * Writes `state` and `manifest`, fsyncs every file and the directory, then renames
 * the directory to final_dir. An existing checkpoint at final_dir is swapped out
 * atomically (renameat2 RENAME_EXCHANGE) and then removed. *replaced (may be NULL)
 * is set to whether that happened. Always frees w: on failure the temporary directory is
 * removed and final_dir is as it was.
 */
int ckpt_writer_commit(struct ckpt_writer *w, bool *replaced);

/* Removes the temporary directory and frees w. w may be NULL. */
void ckpt_writer_abort(struct ckpt_writer *w);

/*
 * Test hook: when set, the writer calls hook(step) at each named step ("memory",
 * "disk", "state", "manifest", "rename") and fails with its return value when
 * that is negative. NULL (the default) disables it.
 */
typedef int (*ckpt_fault_hook_fn)(const char *step);
void ckpt_set_fault_hook(ckpt_fault_hook_fn hook);

/*
 * Opens the checkpoint at dir and checks everything that costs little to check: the
 * manifest (magic, version, checksum, well-formed entries), that every listed file
 * is a regular file of the listed size, the checksum of `state` and of each section.
 * On failure returns a negative errno and a message in errbuf: -ENOENT for a missing
 * manifest or file, -ENOTSUP for an unknown format version, -EBADMSG for damage.
 */
int ckpt_reader_open(struct ckpt_reader **rp, const char *dir, char *errbuf, size_t errlen);
void ckpt_reader_close(struct ckpt_reader *r);

/* Reads memory and every disk and compares their checksums. Returns -EBADMSG on damage. */
int ckpt_reader_verify_all(struct ckpt_reader *r, char *errbuf, size_t errlen);
/* Checks every memory chunk; 0 when the checkpoint has no memory. */
int ckpt_reader_verify_memory(struct ckpt_reader *r, char *errbuf, size_t errlen);
int ckpt_reader_verify_disk(struct ckpt_reader *r, const char *name, char *errbuf,
			    size_t errlen);

/* Creation time, UTC seconds since the epoch. */
int64_t ckpt_reader_created(const struct ckpt_reader *r);
/* Space the checkpoint occupies: allocated blocks of the directory and its files, in bytes. */
uint64_t ckpt_reader_disk_usage(const struct ckpt_reader *r);

/* Returns the payload of section `name` and its length, or NULL when absent. */
const void *ckpt_reader_section(const struct ckpt_reader *r, const char *name, size_t *len);
unsigned ckpt_reader_section_count(const struct ckpt_reader *r);
/* Name of section i, in the order they were written; NULL when i is out of range. */
const char *ckpt_reader_section_name(const struct ckpt_reader *r, unsigned i);

/* Read-only fd of the memory image, owned by r; -1 when the checkpoint has no memory. */
int ckpt_reader_memory_fd(const struct ckpt_reader *r);
uint64_t ckpt_reader_memory_size(const struct ckpt_reader *r);
/* Number of RAM regions saved; region i's guest address and size through gpa and size. */
unsigned ckpt_reader_memory_region_count(const struct ckpt_reader *r);
int ckpt_reader_memory_region(const struct ckpt_reader *r, unsigned i, uint64_t *gpa,
			      uint64_t *size);

/*
 * Maps the memory image over the host addresses of m with MAP_PRIVATE | MAP_FIXED,
 * so pages are read lazily and guest writes never reach the file. m must have the
 * saved layout (same regions, addresses and sizes) with page-aligned host addresses.
 * Does not verify checksums: call ckpt_reader_verify_memory first for that.
 */
int ckpt_reader_map_memory(struct ckpt_reader *r, const struct guest_mem *m, char *errbuf,
			   size_t errlen);

unsigned ckpt_reader_disk_count(const struct ckpt_reader *r);
/* Name of disk i; NULL when i is out of range. */
const char *ckpt_reader_disk_name(const struct ckpt_reader *r, unsigned i);
/* Size of disk `name` in bytes, or -ENOENT. */
int64_t ckpt_reader_disk_size(const struct ckpt_reader *r, const char *name);

/*
 * Copies disk `name` to a new file next to dest_path and renames it over dest_path,
 * so dest_path is either the old image or the complete restored one. The copy is
 * checked against the manifest checksum before the rename. *method may be NULL.
 */
int ckpt_reader_restore_disk(struct ckpt_reader *r, const char *name, const char *dest_path,
			     enum ckpt_copy_method *method, char *errbuf, size_t errlen);

/* True when dir contains a manifest, i.e. it was committed (its contents are not checked). */
bool ckpt_dir_is_complete(const char *dir);

/*
 * Removes temporary directories ".NAME.tmp-PID-RANDOM" in parent_dir whose PID no
 * longer runs. Returns how many were removed, or a negative errno.
 */
int ckpt_cleanup_stale(const char *parent_dir);

#endif
