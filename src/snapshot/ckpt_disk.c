/*
 * Disk images in and out of a checkpoint. A reflink (ioctl FICLONE) shares extents
 * and costs no data I/O, but the checksum still needs one read of the data. Without
 * reflinks (ext4, tmpfs) the data extents found by SEEK_DATA/SEEK_HOLE are read once,
 * checksummed and written. Zero pages are skipped so the copy is as sparse as the
 * original or sparser. copy_file_range is not used because the checksum needs the
 * data in user space anyway, and a second read would cost more than it saves.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "snapshot/ckpt_internal.h"

const char *ckpt_copy_method_name(enum ckpt_copy_method method)
{
	switch (method) {
	case CKPT_COPY_REFLINK:
		return "reflink";
	case CKPT_COPY_SPARSE:
		return "sparse-copy";
	}
	return "unknown";
}

/*
 * Copies size bytes of src_fd to the empty file dst_fd, fsyncs it, and stores the
 * chunked checksum of the data in *hash. Returns 0 or a negative errno.
 */
int ckpt_copy_image(int src_fd, int dst_fd, uint64_t size, enum ckpt_copy_method *method,
		    uint64_t *hash)
{
	struct ckpt_scan scan = {
		.src_fd = src_fd,
		.size = size,
		.dst_fd = dst_fd,
	};
	int ret;

	if (ioctl(dst_fd, FICLONE, src_fd) == 0) {
		*method = CKPT_COPY_REFLINK;
		scan.dst_fd = -1;
	} else {
		*method = CKPT_COPY_SPARSE;
	}
	ret = ckpt_scan_file(&scan);
	if (ret)
		return ret;
	if (fsync(dst_fd) < 0)
		return -errno;
	*hash = scan.hash;
	return 0;
}

int ckpt_writer_add_disk(struct ckpt_writer *w, const char *name, const char *src_path,
			 enum ckpt_copy_method *method)
{
	enum ckpt_copy_method used;
	struct stat st;
	uint64_t hash;
	int src = -1;
	int dst = -1;
	int ret;

	if (!ckpt_name_valid(name) || strcmp(name, CKPT_STATE_FILE) == 0 ||
	    strcmp(name, CKPT_MEMORY_FILE) == 0 || strcmp(name, CKPT_MANIFEST_FILE) == 0) {
		log_error("ckpt", "invalid disk name \"%s\"", name);
		return -EINVAL;
	}
	if (ckpt_manifest_find(&w->manifest, name) >= 0) {
		log_error("ckpt", "disk %s added twice", name);
		return -EEXIST;
	}

	src = open(src_path, O_RDONLY | O_CLOEXEC);
	if (src < 0 || fstat(src, &st) < 0) {
		ret = -errno;
		log_error("ckpt", "cannot open disk image %s: %s", src_path, strerror(-ret));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = -EINVAL;
		log_error("ckpt", "disk image %s is not a regular file", src_path);
		goto out;
	}
	dst = openat(w->dir_fd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (dst < 0) {
		ret = -errno;
		log_error("ckpt", "cannot create %s/%s: %s", w->tmp_path, name, strerror(-ret));
		goto out;
	}
	ret = ckpt_copy_image(src, dst, (uint64_t)st.st_size, &used, &hash);
	if (ret == 0)
		ret = ckpt_fault("disk");
	if (ret == 0)
		ret = ckpt_writer_list_file(w, name, CKPT_FILE_DISK, (uint64_t)st.st_size, hash);
	if (ret) {
		log_error("ckpt", "cannot copy disk image %s to %s/%s: %s", src_path, w->tmp_path,
			  name, strerror(-ret));
		unlinkat(w->dir_fd, name, 0);
		goto out;
	}
	log_info("ckpt", "disk %s: captured %s (%lld bytes) by %s", name, src_path,
		 (long long)st.st_size, ckpt_copy_method_name(used));
	if (method)
		*method = used;

out:
	if (dst >= 0)
		close(dst);
	if (src >= 0)
		close(src);
	return ret;
}
