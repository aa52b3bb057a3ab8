/*
 * virtio-blk over PCI (virtio 1.1, section 5.2) backed by a raw image file. Requests
 * are served synchronously in the vCPU thread that notifies the queue, so none is in
 * flight once the vCPUs are stopped and a checkpoint needs no request state.
 */
#ifndef CRYO_DEVICES_VIRTIO_BLK_H
#define CRYO_DEVICES_VIRTIO_BLK_H

#include <stdbool.h>

#include "devices/device.h"

#define VIRTIO_BLK_QUEUE_SIZE 256

/*
 * Opens `path` (read-only when `readonly`) and adds the device to env->pci. The image
 * size, rounded down to 512-byte sectors, is the capacity. Fills dev_out. Returns 0 or
 * -errno (logged).
 */
int virtio_blk_create(const struct device_env *env, const char *path, bool readonly,
		      struct device *dev_out);

#endif
