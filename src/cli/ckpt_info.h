/*
 * What the manager reads from a checkpoint directory through the checkpoint reader of
 * src/snapshot: whether it is complete and intact, its creation time and its size on disk.
 * It also reads the VM definition saved in it, so that bstart can reject a checkpoint
 * whose VM has been redefined since.
 */
#ifndef CRYO_CLI_CKPT_INFO_H
#define CRYO_CLI_CKPT_INFO_H

#include "cli/registry.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ckpt_info {
	int64_t created;	/* seconds since the epoch, from the checkpoint's manifest */
	uint64_t size_bytes;	/* allocated on disk: holes in sparse memory images do not count */
};

/*
 * Open dir with ckpt_reader_open(), which checks the manifest, every file's presence and
 * size, and the checksums of `state` and its sections, then fill in info. When def is not
 * NULL, also decode the definition from the "vm" section into def (name, created and the
 * exit fields are left zero). Returns 0, -ENOENT when dir or one of its files is missing,
 * or another negative errno, always with a message in err that names the file and the fault.
 */
int ckpt_info_read(const char *dir, struct ckpt_info *info, struct vm_def *def, char *err,
		   size_t errlen);

/*
 * Decode the definition part of a "vm" section payload into def. Returns 0, -ENOTSUP for a
 * section version this cryo does not know, or -EBADMSG with a message in err.
 */
int ckpt_info_decode_vm(const void *payload, size_t len, struct vm_def *def, char *err,
			size_t errlen);

/*
 * Compare the definition saved in a checkpoint with the current one (RAM, vCPUs, kernel,
 * initrd, command line, disks and their order and read-only flags). Returns true when they
 * match; otherwise false with the differences, separated by "; ", in diff.
 */
bool ckpt_info_same_definition(const struct vm_def *saved, const struct vm_def *current,
			       char *diff, size_t difflen);

#endif
