/*
 * virtio-rng: one request queue whose device-writable buffers are filled from the
 * host's getrandom(2), without blocking. Readable buffers in a chain are ignored.
 * The device has no configuration and no state beyond its transport.
 */
#include "devices/virtio_rng.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/log.h"
#include "devices/virtio_pci.h"

#define VIRTIO_TYPE_RNG 4
#define VIRTIO_RNG_QUEUE_SIZE 64
/* Bytes served per request, so one request cannot hold a vCPU for long. */
#define VIRTIO_RNG_MAX_REQUEST 65536

struct virtio_rng {
	struct virtio_pci vp;
	struct virtq_chain chain; /* scratch, under vp.lock */
};

/* Fills the chain's writable buffers; returns the bytes written. */
static uint32_t rng_fill(struct virtio_rng *rng, const struct virtq_chain *c)
{
	uint32_t total = 0;

	for (unsigned i = c->nr_readable; i < c->nr_segs; i++) {
		const struct virtq_seg *seg = &c->segs[i];
		uint32_t want = seg->len;
		uint32_t done = 0;

		if (want > VIRTIO_RNG_MAX_REQUEST - total)
			want = VIRTIO_RNG_MAX_REQUEST - total;
		while (done < want) {
			ssize_t n = getrandom(seg->host + done, want - done, GRND_NONBLOCK);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				log_warn_rl(rng->vp.name, "getrandom failed: %s",
					    n < 0 ? strerror(errno) : "no bytes");
				return total + done;
			}
			done += (uint32_t)n;
		}
		total += done;
		if (total == VIRTIO_RNG_MAX_REQUEST)
			break;
	}
	return total;
}

static void rng_queue_notify(struct virtio_pci *vp, unsigned index)
{
	struct virtio_rng *rng = vp->opaque;
	struct virtq *q = &vp->queues[index];
	bool pushed = false;

	for (;;) {
		int rc = virtq_pop(q, &rng->chain);

		if (rc == VIRTQ_POP_EMPTY)
			break;
		if (rc == -EIO) {
			virtio_pci_set_needs_reset(vp);
			break;
		}
		/* A rejected chain is returned with nothing written. */
		virtq_push(q, rng->chain.head, rc == VIRTQ_POP_OK ? rng_fill(rng, &rng->chain) : 0);
		pushed = true;
	}
	if (pushed && virtq_need_interrupt(q))
		virtio_pci_notify_queue(vp, index);
}

static void rng_config_read(struct virtio_pci *vp, uint32_t off, uint8_t *data, uint32_t len)
{
	/* config_size is 0, so the transport never calls this. */
}

static const struct virtio_dev_ops rng_virtio_ops = {
	.queue_notify = rng_queue_notify,
	.config_read = rng_config_read,
};

static void rng_save(void *opaque, struct ser_writer *w)
{
	struct virtio_rng *rng = opaque;

	virtio_pci_save(&rng->vp, w);
}

static int rng_load(void *opaque, struct ser_reader *r)
{
	struct virtio_rng *rng = opaque;
	struct virtio_pci_state *st;
	int ret;

	st = malloc(sizeof(*st));
	if (!st)
		return -ENOMEM;
	ret = virtio_pci_read_state(&rng->vp, r, st);
	if (!ret && de_finish(r)) {
		log_error(rng->vp.name, "invalid state: trailing bytes");
		ret = -EBADMSG;
	}
	if (!ret)
		ret = virtio_pci_apply_state(&rng->vp, st);
	free(st);
	return ret;
}

static void rng_destroy(void *opaque)
{
	struct virtio_rng *rng = opaque;

	virtio_pci_uninit(&rng->vp);
	free(rng);
}

static const struct device_ops rng_device_ops = {
	.name = "virtio-rng",
	.save = rng_save,
	.load = rng_load,
	.destroy = rng_destroy,
};

int virtio_rng_create(const struct device_env *env, struct device *dev_out)
{
	struct virtio_pci_params params = {
		.name = "virtio-rng",
		.virtio_type = VIRTIO_TYPE_RNG,
		.class_code = 0x00FF00, /* unclassified device */
		.features = VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX,
		.nr_queues = 1,
		.queue_max_size = VIRTIO_RNG_QUEUE_SIZE,
		.config_size = 0,
		.ops = &rng_virtio_ops,
	};
	struct virtio_rng *rng;
	int ret;

	rng = calloc(1, sizeof(*rng));
	if (!rng)
		return -ENOMEM;
	params.opaque = rng;
	ret = virtio_pci_init(&rng->vp, env, &params);
	if (ret) {
		free(rng);
		return ret;
	}
	dev_out->ops = &rng_device_ops;
	dev_out->priv = rng;
	snprintf(dev_out->id, sizeof(dev_out->id), "%s", rng->vp.name);
	return 0;
}
