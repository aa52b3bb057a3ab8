/*
 * The virtio 1.x PCI transport (virtio spec 1.1, section 4.1) shared by the virtio
 * device models: a modern-only function with the common, notify, ISR and device
 * configuration structures in memory BAR 0, MSI-X (one vector for configuration
 * changes, one per queue) in BAR 1, and INTA# when the driver leaves MSI-X off.
 *
 * Left out: the legacy (0.9.5) interface, VIRTIO_PCI_CAP_PCI_CFG (Linux does not use
 * it), VIRTIO_F_NOTIFICATION_DATA, per-queue reset, shared memory regions.
 *
 * Locking: vp->lock serialises the transport registers, the queues and the device's
 * request processing. It is taken from MMIO handlers, so it must not be held while
 * calling into the PCI bus's configuration functions (pci_dev_save, _apply_state).
 */
#ifndef CRYO_DEVICES_VIRTIO_PCI_H
#define CRYO_DEVICES_VIRTIO_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/device.h"
#include "devices/pci.h"
#include "devices/virtio_queue.h"

#define VIRTIO_PCI_VENDOR_ID 0x1AF4
#define VIRTIO_PCI_DEVICE_ID_BASE 0x1040 /* plus the virtio device type */
#define VIRTIO_PCI_MAX_QUEUES 4
#define VIRTIO_NO_VECTOR 0xFFFF

/* BAR 0 layout: one 4 KiB page per structure. */
#define VIRTIO_PCI_COMMON_OFFSET 0x0000
#define VIRTIO_PCI_COMMON_SIZE 0x38
#define VIRTIO_PCI_ISR_OFFSET 0x1000
#define VIRTIO_PCI_DEVICE_OFFSET 0x2000
#define VIRTIO_PCI_NOTIFY_OFFSET 0x3000
#define VIRTIO_PCI_NOTIFY_MULTIPLIER 4
#define VIRTIO_PCI_BAR_SIZE 0x4000
#define VIRTIO_PCI_MSIX_BAR 1

/* Common configuration registers (struct virtio_pci_common_cfg). */
#define VIRTIO_PCI_COMMON_DFSELECT 0x00
#define VIRTIO_PCI_COMMON_DF 0x04
#define VIRTIO_PCI_COMMON_GFSELECT 0x08
#define VIRTIO_PCI_COMMON_GF 0x0C
#define VIRTIO_PCI_COMMON_MSIX 0x10
#define VIRTIO_PCI_COMMON_NUMQ 0x12
#define VIRTIO_PCI_COMMON_STATUS 0x14
#define VIRTIO_PCI_COMMON_CFGGENERATION 0x15
#define VIRTIO_PCI_COMMON_Q_SELECT 0x16
#define VIRTIO_PCI_COMMON_Q_SIZE 0x18
#define VIRTIO_PCI_COMMON_Q_MSIX 0x1A
#define VIRTIO_PCI_COMMON_Q_ENABLE 0x1C
#define VIRTIO_PCI_COMMON_Q_NOFF 0x1E
#define VIRTIO_PCI_COMMON_Q_DESC 0x20
#define VIRTIO_PCI_COMMON_Q_AVAIL 0x28
#define VIRTIO_PCI_COMMON_Q_USED 0x30

#define VIRTIO_STATUS_ACKNOWLEDGE 0x01
#define VIRTIO_STATUS_DRIVER 0x02
#define VIRTIO_STATUS_DRIVER_OK 0x04
#define VIRTIO_STATUS_FEATURES_OK 0x08
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED 0x80

#define VIRTIO_F_INDIRECT_DESC (1ull << 28)
#define VIRTIO_F_EVENT_IDX (1ull << 29)
#define VIRTIO_F_VERSION_1 (1ull << 32)

#define VIRTIO_ISR_QUEUE 0x1
#define VIRTIO_ISR_CONFIG 0x2

struct virtio_pci;

/* What a device model adds to the transport. Every callback runs with vp->lock held. */
struct virtio_dev_ops {
	/* Processes the available buffers of queue `index` (enabled, below nr_queues). */
	void (*queue_notify)(struct virtio_pci *vp, unsigned index);
	/* Accesses device configuration; off + len <= config_size. Write is optional. */
	void (*config_read)(struct virtio_pci *vp, uint32_t off, uint8_t *data, uint32_t len);
	void (*config_write)(struct virtio_pci *vp, uint32_t off, const uint8_t *data, uint32_t len);
};

struct virtio_pci_params {
	const char *name;
	uint16_t virtio_type; /* 2 block, 4 entropy source, ... */
	uint32_t class_code;
	uint64_t features;    /* VIRTIO_F_VERSION_1 is added */
	unsigned nr_queues;
	uint16_t queue_max_size;
	uint32_t config_size; /* bytes of device configuration, at most 4 KiB */
	const struct virtio_dev_ops *ops;
	void *opaque;
};

struct virtio_pci {
	pthread_mutex_t lock;
	char name[32];
	struct pci_dev *pdev;
	const struct guest_mem *mem;
	const struct virtio_dev_ops *ops;
	void *opaque;
	uint64_t device_features;
	uint32_t config_size;
	unsigned nr_queues;
	uint16_t queue_max_size;

	/* Driver-visible state, saved in checkpoints. */
	uint64_t driver_features;
	uint32_t device_feature_select;
	uint32_t driver_feature_select;
	uint16_t msix_config;
	uint8_t status;
	uint8_t config_generation;
	uint8_t isr;
	uint16_t queue_select;
	struct virtq queues[VIRTIO_PCI_MAX_QUEUES];
	uint16_t queue_vectors[VIRTIO_PCI_MAX_QUEUES];
};

/*
 * Adds the PCI function to env->pci with its capabilities, BAR 0 and MSI-X, in reset
 * state. Returns 0 or -errno (logged).
 */
int virtio_pci_init(struct virtio_pci *vp, const struct device_env *env,
		    const struct virtio_pci_params *params);
void virtio_pci_uninit(struct virtio_pci *vp);

/* Returns whether `feature` (a VIRTIO_F_* bit mask) was negotiated. Lock held. */
bool virtio_pci_negotiated(const struct virtio_pci *vp, uint64_t feature);
/* Interrupts the driver for used buffers on queue `index`. Lock held. */
void virtio_pci_notify_queue(struct virtio_pci *vp, unsigned index);
/* Sets DEVICE_NEEDS_RESET and sends a configuration change interrupt. Lock held. */
void virtio_pci_set_needs_reset(struct virtio_pci *vp);

/* The transport's checkpoint state, PCI function included. */
struct virtio_pci_state {
	struct pci_dev_state pci;
	uint64_t driver_features;
	uint32_t device_feature_select;
	uint32_t driver_feature_select;
	uint16_t msix_config;
	uint8_t status;
	uint8_t config_generation;
	uint8_t isr;
	uint16_t queue_select;
	struct virtq queues[VIRTIO_PCI_MAX_QUEUES];
	uint16_t queue_vectors[VIRTIO_PCI_MAX_QUEUES];
};

/* Appends the transport state; every vCPU is stopped. Takes vp->lock itself. */
void virtio_pci_save(struct virtio_pci *vp, struct ser_writer *w);
/*
 * Reads and checks a state written by virtio_pci_save: queue sizes, vectors, status
 * bits, features, and each enabled queue's rings against guest memory. Changes
 * nothing. Returns 0 or -EBADMSG.
 */
int virtio_pci_read_state(struct virtio_pci *vp, struct ser_reader *r,
			  struct virtio_pci_state *st);
/* Makes `st` the transport state; fails only when a saved BAR cannot be mapped. */
int virtio_pci_apply_state(struct virtio_pci *vp, const struct virtio_pci_state *st);

#endif
