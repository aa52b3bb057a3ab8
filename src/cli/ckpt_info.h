/*
 * Checkpoint directory information for bls-style listings: validity, creation time and
 * disk usage.
 */
#ifndef CRYO_CLI_CKPT_INFO_H
#define CRYO_CLI_CKPT_INFO_H

#include <stddef.h>
#include <stdint.h>

struct ckpt_info {
	int64_t created;	/* seconds since the epoch */
	uint64_t size_bytes;	/* allocated on disk: holes in sparse memory images do not count */
};

/*
 * Check that dir is a checkpoint and read its info. Returns 0, -ENOENT when absent, or
 * another negative errno with a message in err.
 */
int ckpt_info_read(const char *dir, struct ckpt_info *info, char *err, size_t errlen);

#endif
