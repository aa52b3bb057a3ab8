/*
 * virtio-blk: read, write, flush and get-id requests on a raw image file, served in
 * the notifying vCPU thread with pread/pwrite/fdatasync. A request is a descriptor
 * chain of a 16-byte header (readable), data buffers, and a one-byte status (the
 * last writable byte). Every request completes: a malformed one with IOERR when its
 * status byte can be found, else with a used length of 0.
 *
 * Left out: discard, write-zeroes, multiple queues, topology, writeback toggling
 * (the device always reports a volatile cache and honours flushes).
 */
#include "devices/virtio_blk.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "devices/virtio_pci.h"

#define VIRTIO_TYPE_BLOCK 2
#define VIRTIO_BLK_F_SEG_MAX (1ull << 2)
#define VIRTIO_BLK_F_RO (1ull << 5)
#define VIRTIO_BLK_F_BLK_SIZE (1ull << 6)
#define VIRTIO_BLK_F_FLUSH (1ull << 9)

#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8

#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2

#define VIRTIO_BLK_SECTOR_SIZE 512
#define VIRTIO_BLK_HEADER_SIZE 16
#define VIRTIO_BLK_ID_BYTES 20
/* capacity, size_max, seg_max, geometry, blk_size: the fields the offered features use. */
#define VIRTIO_BLK_CONFIG_SIZE 24

struct virtio_blk {
	struct virtio_pci vp;
	int fd;
	bool readonly;
	uint64_t capacity; /* in 512-byte sectors */
	char serial[VIRTIO_BLK_ID_BYTES];
	uint64_t bad_requests;
	struct virtq_chain chain; /* scratch for the request being served, under vp.lock */
};

/* One request's data: a window of the chain's segments, as byte ranges. */
struct blk_data_iter {
	const struct virtq_chain *chain;
	unsigned seg;
	uint64_t seg_off;
	uint64_t left;
};

static void blk_iter_init(struct blk_data_iter *it, const struct virtq_chain *c, unsigned first_seg,
			  uint64_t skip, uint64_t len)
{
	it->chain = c;
	it->seg = first_seg;
	it->seg_off = 0;
	it->left = len;
	while (it->seg < c->nr_segs && skip >= c->segs[it->seg].len) {
		skip -= c->segs[it->seg].len;
		it->seg++;
	}
	it->seg_off = skip;
}

/* Returns the next contiguous piece of the window, or 0 bytes when it is exhausted. */
static size_t blk_iter_next(struct blk_data_iter *it, uint8_t **host)
{
	const struct virtq_chain *c = it->chain;
	uint64_t n;

	while (it->left && it->seg < c->nr_segs && it->seg_off == c->segs[it->seg].len) {
		it->seg++;
		it->seg_off = 0;
	}
	if (!it->left || it->seg >= c->nr_segs)
		return 0;
	n = c->segs[it->seg].len - it->seg_off;
	if (n > it->left)
		n = it->left;
	*host = c->segs[it->seg].host + it->seg_off;
	it->seg_off += n;
	it->left -= n;
	return (size_t)n;
}

static int blk_transfer(struct virtio_blk *b, struct blk_data_iter *it, uint64_t sector, bool write)
{
	off_t pos = (off_t)(sector * VIRTIO_BLK_SECTOR_SIZE);
	uint8_t *host;
	size_t len;

	while ((len = blk_iter_next(it, &host)) > 0) {
		while (len > 0) {
			ssize_t n = write ? pwrite(b->fd, host, len, pos) : pread(b->fd, host, len, pos);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				log_warn_rl(b->vp.name, "%s at byte %lld failed: %s",
					    write ? "write" : "read", (long long)pos,
					    n < 0 ? strerror(errno) : "end of file");
				return -EIO;
			}
			host += n;
			len -= (size_t)n;
			pos += n;
		}
	}
	return 0;
}

static bool blk_range_ok(const struct virtio_blk *b, uint64_t sector, uint64_t bytes)
{
	return bytes % VIRTIO_BLK_SECTOR_SIZE == 0 && sector <= b->capacity &&
	       bytes / VIRTIO_BLK_SECTOR_SIZE <= b->capacity - sector;
}

/*
 * Serves one well-formed chain. Returns the status byte to write; *data_written gets
 * the bytes stored into the driver's data buffers.
 */
static uint8_t blk_serve(struct virtio_blk *b, const struct virtq_chain *c, uint64_t *data_written)
{
	uint8_t hdr[VIRTIO_BLK_HEADER_SIZE];
	uint64_t in_len = c->writable_len - 1; /* writable bytes before the status byte */
	uint64_t out_len = c->readable_len - VIRTIO_BLK_HEADER_SIZE;
	struct blk_data_iter it;
	uint8_t *host;
	uint32_t type;
	uint64_t sector;
	size_t n, copied = 0;

	blk_iter_init(&it, c, 0, 0, VIRTIO_BLK_HEADER_SIZE);
	while ((n = blk_iter_next(&it, &host)) > 0) {
		memcpy(hdr + copied, host, n);
		copied += n;
	}
	memcpy(&type, hdr, 4);
	memcpy(&sector, hdr + 8, 8);
	type = le32toh(type);
	sector = le64toh(sector);
	*data_written = 0;

	switch (type) {
	case VIRTIO_BLK_T_IN:
		if (!blk_range_ok(b, sector, in_len))
			goto range_error;
		blk_iter_init(&it, c, c->nr_readable, 0, in_len);
		if (blk_transfer(b, &it, sector, false))
			return VIRTIO_BLK_S_IOERR;
		*data_written = in_len;
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_OUT:
		if (b->readonly)
			return VIRTIO_BLK_S_IOERR;
		if (!blk_range_ok(b, sector, out_len))
			goto range_error;
		blk_iter_init(&it, c, 0, VIRTIO_BLK_HEADER_SIZE, out_len);
		return blk_transfer(b, &it, sector, true) ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_FLUSH:
		if (!b->readonly && fdatasync(b->fd)) {
			log_warn_rl(b->vp.name, "fdatasync failed: %s", strerror(errno));
			return VIRTIO_BLK_S_IOERR;
		}
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_GET_ID: {
		uint64_t len = in_len < VIRTIO_BLK_ID_BYTES ? in_len : VIRTIO_BLK_ID_BYTES;
		size_t done = 0;

		blk_iter_init(&it, c, c->nr_readable, 0, len);
		while ((n = blk_iter_next(&it, &host)) > 0) {
			memcpy(host, b->serial + done, n);
			done += n;
		}
		*data_written = len;
		return VIRTIO_BLK_S_OK;
	}
	default:
		b->bad_requests++;
		log_warn_rl(b->vp.name, "unsupported request type %u", type);
		return VIRTIO_BLK_S_UNSUPP;
	}

range_error:
	b->bad_requests++;
	log_warn_rl(b->vp.name, "request type %u for %llu bytes at sector %llu is outside the %llu "
		    "sectors of the disk, or not whole sectors", type,
		    (unsigned long long)(type == VIRTIO_BLK_T_OUT ? out_len : in_len),
		    (unsigned long long)sector, (unsigned long long)b->capacity);
	return VIRTIO_BLK_S_IOERR;
}

/* Completes one chain; `walk_ok` is false when the walker rejected it. Returns the used length. */
static uint32_t blk_complete(struct virtio_blk *b, const struct virtq_chain *c, bool walk_ok)
{
	const struct virtq_seg *last = c->nr_segs ? &c->segs[c->nr_segs - 1] : NULL;
	uint64_t data_written = 0;
	uint8_t status;

	/* Without a writable last byte there is nowhere to report an error. */
	if (!last || !last->write || last->len == 0) {
		b->bad_requests++;
		log_warn_rl(b->vp.name, "request at head %u has no status byte", c->head);
		return 0;
	}
	if (!walk_ok || c->readable_len < VIRTIO_BLK_HEADER_SIZE) {
		b->bad_requests++;
		if (walk_ok)
			log_warn_rl(b->vp.name, "request at head %u has a %llu-byte header", c->head,
				    (unsigned long long)c->readable_len);
		status = VIRTIO_BLK_S_IOERR;
	} else {
		status = blk_serve(b, c, &data_written);
	}
	last->host[last->len - 1] = status;
	return (uint32_t)(data_written + 1);
}

static void blk_queue_notify(struct virtio_pci *vp, unsigned index)
{
	struct virtio_blk *b = vp->opaque;
	struct virtq *q = &vp->queues[index];
	bool pushed = false;

	for (;;) {
		int rc = virtq_pop(q, &b->chain);

		if (rc == VIRTQ_POP_EMPTY)
			break;
		if (rc == -EIO) {
			virtio_pci_set_needs_reset(vp);
			break;
		}
		/*
		 * A chain the walker rejected is still completed: its segments before the
		 * fault are trusted only if the last one is a writable status byte, so a
		 * truncated chain gets a used length of 0.
		 */
		virtq_push(q, b->chain.head, blk_complete(b, &b->chain, rc == VIRTQ_POP_OK));
		pushed = true;
	}
	if (pushed && virtq_need_interrupt(q))
		virtio_pci_notify_queue(vp, index);
}

static void blk_config_read(struct virtio_pci *vp, uint32_t off, uint8_t *data, uint32_t len)
{
	struct virtio_blk *b = vp->opaque;
	uint8_t cfg[VIRTIO_BLK_CONFIG_SIZE] = { 0 };
	uint64_t capacity = htole64(b->capacity);
	uint32_t seg_max = htole32(VIRTIO_BLK_QUEUE_SIZE - 2);
	uint32_t blk_size = htole32(VIRTIO_BLK_SECTOR_SIZE);

	memcpy(cfg + 0, &capacity, 8);
	memcpy(cfg + 12, &seg_max, 4);
	memcpy(cfg + 20, &blk_size, 4);
	memcpy(data, cfg + off, len);
}

static const struct virtio_dev_ops blk_virtio_ops = {
	.queue_notify = blk_queue_notify,
	.config_read = blk_config_read,
};

/* ---- device interface ---- */

static void blk_save(void *opaque, struct ser_writer *w)
{
	struct virtio_blk *b = opaque;

	virtio_pci_save(&b->vp, w);
	ser_u64(w, b->capacity);
	ser_u8(w, b->readonly);
}

static int blk_load(void *opaque, struct ser_reader *r)
{
	struct virtio_blk *b = opaque;
	struct virtio_pci_state *st;
	uint64_t capacity;
	uint8_t readonly;
	int ret;

	st = malloc(sizeof(*st));
	if (!st)
		return -ENOMEM;
	ret = virtio_pci_read_state(&b->vp, r, st);
	if (ret)
		goto out;
	capacity = de_u64(r);
	readonly = de_u8(r);
	ret = de_finish(r);
	if (ret) {
		log_error(b->vp.name, "invalid state: truncated or trailing bytes");
		goto out;
	}
	/* The image and its mode are configuration, but the guest saw them: they must match. */
	if (capacity != b->capacity || readonly != b->readonly) {
		log_error(b->vp.name, "disk does not match the checkpoint: %llu sectors %s, saved "
			  "%llu sectors %s", (unsigned long long)b->capacity,
			  b->readonly ? "read-only" : "read-write", (unsigned long long)capacity,
			  readonly ? "read-only" : "read-write");
		ret = -EBADMSG;
		goto out;
	}
	ret = virtio_pci_apply_state(&b->vp, st);
out:
	free(st);
	return ret;
}

static void blk_destroy(void *opaque)
{
	struct virtio_blk *b = opaque;

	virtio_pci_uninit(&b->vp);
	close(b->fd);
	free(b);
}

static const struct device_ops blk_device_ops = {
	.name = "virtio-blk",
	.save = blk_save,
	.load = blk_load,
	.destroy = blk_destroy,
};

int virtio_blk_create(const struct device_env *env, const char *path, bool readonly,
		      struct device *dev_out)
{
	struct virtio_pci_params params = {
		.name = "virtio-blk",
		.virtio_type = VIRTIO_TYPE_BLOCK,
		.class_code = 0x018000, /* mass storage, other */
		.features = VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_FLUSH |
			    VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX |
			    (readonly ? VIRTIO_BLK_F_RO : 0),
		.nr_queues = 1,
		.queue_max_size = VIRTIO_BLK_QUEUE_SIZE,
		.config_size = VIRTIO_BLK_CONFIG_SIZE,
		.ops = &blk_virtio_ops,
	};
	struct virtio_blk *b;
	const char *base;
	struct stat stbuf;
	int ret;

	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->readonly = readonly;
	b->fd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (b->fd < 0) {
		ret = -errno;
		log_error("virtio-blk", "cannot open disk image %s: %s", path, strerror(errno));
		goto err_free;
	}
	if (fstat(b->fd, &stbuf)) {
		ret = -errno;
		log_error("virtio-blk", "cannot stat disk image %s: %s", path, strerror(errno));
		goto err_close;
	}
	b->capacity = (uint64_t)stbuf.st_size / VIRTIO_BLK_SECTOR_SIZE;
	if (stbuf.st_size % VIRTIO_BLK_SECTOR_SIZE)
		log_warn("virtio-blk", "%s: last %lld bytes are not a whole sector and are not used",
			 path, (long long)(stbuf.st_size % VIRTIO_BLK_SECTOR_SIZE));
	/* GET_ID returns the image's file name, truncated to 20 bytes and not terminated. */
	base = strrchr(path, '/');
	base = base ? base + 1 : path;
	memcpy(b->serial, base, strnlen(base, sizeof(b->serial)));

	params.opaque = b;
	ret = virtio_pci_init(&b->vp, env, &params);
	if (ret)
		goto err_close;

	dev_out->ops = &blk_device_ops;
	dev_out->priv = b;
	snprintf(dev_out->id, sizeof(dev_out->id), "%s", b->vp.name);
	return 0;

err_close:
	close(b->fd);
err_free:
	free(b);
	return ret;
}
