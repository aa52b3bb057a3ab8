/*
 * virtio entropy device over PCI (virtio 1.1, section 5.4): fills each device-writable
 * buffer from getrandom(2).
 */
#ifndef CRYO_DEVICES_VIRTIO_RNG_H
#define CRYO_DEVICES_VIRTIO_RNG_H

#include "devices/device.h"

/* Adds the device to env->pci and fills dev_out. Returns 0 or -errno (logged). */
int virtio_rng_create(const struct device_env *env, struct device *dev_out);

#endif
