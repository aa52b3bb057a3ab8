/*
 * Checkpoint information from the file system alone.
 *
 * TODO: switch to ckpt_reader_open() of src/snapshot once it exists, so that a damaged or
 * foreign directory is reported here and the creation time comes from the checkpoint's
 * header. Until then the creation time is the directory's mtime (cryo-vmm renames the
 * finished directory into place, so it is close) and any directory passes.
 */
#include "cli/ckpt_info.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static uint64_t ckpt_size_sum;

static int ckpt_add_blocks(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	/* st_blocks counts 512-byte units whatever the file system's block size is. */
	ckpt_size_sum += (uint64_t)st->st_blocks * 512;
	return 0;
}

int ckpt_info_read(const char *dir, struct ckpt_info *info, char *err, size_t errlen)
{
	struct stat st;

	if (stat(dir, &st) < 0) {
		int ret = -errno;

		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return ret;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: not a checkpoint directory", dir);
		return -ENOTDIR;
	}

	ckpt_size_sum = 0;
	if (nftw(dir, ckpt_add_blocks, 16, FTW_PHYS) < 0) {
		int ret = -errno;

		snprintf(err, errlen, "%s: cannot read: %s", dir, strerror(errno));
		return ret;
	}
	info->created = st.st_mtime;
	info->size_bytes = ckpt_size_sum;
	return 0;
}
