/*
 * The split virtqueue of virtio 1.x (virtio spec 1.1, section 2.6) as a device sees
 * it: the driver's descriptor table and available ring, and the device's used ring,
 * all in guest memory. Every descriptor chain is read by one walker, virtq_pop(),
 * which is the only code that turns a guest descriptor into a host pointer.
 *
 * Left out: the packed ring (VIRTIO_F_RING_PACKED), VIRTIO_F_NOTIFICATION_DATA and
 * per-queue reset.
 *
 * A virtq is not locked: its device model serialises every call on one queue.
 */
#ifndef CRYO_DEVICES_VIRTIO_QUEUE_H
#define CRYO_DEVICES_VIRTIO_QUEUE_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/guest_mem.h"

/* Largest queue any cryo device offers; it also bounds a descriptor chain. */
#define VIRTQ_MAX_SIZE 256

#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY 1

struct virtq {
	/* Set by the driver through the transport; checked by virtq_enable(). */
	uint16_t size;
	uint16_t max_size;
	uint64_t desc_gpa;
	uint64_t avail_gpa;
	uint64_t used_gpa;
	bool event_idx; /* VIRTIO_F_EVENT_IDX negotiated */

	bool enabled;
	bool broken;	     /* ring state invalid: nothing more is processed until reset */
	uint16_t last_avail_idx; /* next available ring entry the device reads */
	uint16_t used_idx;	 /* the device's copy of used->idx */
	uint16_t signalled_used; /* used_idx when the driver was last interrupted (event_idx) */
	bool signalled_used_valid;
	uint64_t bad_chains; /* chains rejected by the walker, for logs and tests */

	/* Host addresses of the rings, valid while enabled. */
	uint8_t *desc;
	uint8_t *avail;
	uint8_t *used;
	const struct guest_mem *mem;
};

/* One guest buffer of a chain, already translated and bounds-checked. */
struct virtq_seg {
	uint8_t *host;
	uint32_t len;
	bool write; /* device-writable */
};

struct virtq_chain {
	uint16_t head;
	unsigned nr_segs;
	unsigned nr_readable; /* the first nr_readable segments are device-readable */
	uint64_t readable_len;
	uint64_t writable_len;
	struct virtq_seg segs[VIRTQ_MAX_SIZE];
};

/* Puts q back to its reset state, keeping max_size. */
void virtq_reset(struct virtq *q, uint16_t max_size);
/*
 * Checks the size (a power of two, at most max_size) and that each ring lies wholly in
 * guest memory with its required alignment, then resolves the host addresses. Returns
 * 0 or -EINVAL (logged rate-limited).
 */
int virtq_enable(struct virtq *q, const struct guest_mem *mem);

enum virtq_pop_result {
	VIRTQ_POP_EMPTY = 0,
	VIRTQ_POP_OK = 1,
};

/*
 * Takes the next available chain. Returns:
 *   VIRTQ_POP_OK:    `chain` holds a valid chain; complete it with virtq_push().
 *   VIRTQ_POP_EMPTY: nothing available.
 *   -EBADMSG:        the chain at chain->head is malformed (index out of range, loop,
 *                    too long, nested or malformed indirect table, buffer outside guest
 *                    memory, readable after writable). It was consumed and counted;
 *                    the caller completes chain->head with its error status if the
 *                    segments before the fault allow, else with length 0.
 *   -EIO:            the rings themselves are invalid (available index more than the
 *                    queue size ahead, head index past the queue): q->broken is set and
 *                    the device must ask for a reset (DEVICE_NEEDS_RESET).
 */
int virtq_pop(struct virtq *q, struct virtq_chain *chain);
/* Returns chain `head` to the driver with `len` bytes written into its buffers. */
void virtq_push(struct virtq *q, uint16_t head, uint32_t len);
/* Returns whether the driver wants an interrupt for what was pushed since the last call. */
bool virtq_need_interrupt(struct virtq *q);

#endif
