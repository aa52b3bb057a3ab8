/*
 * Split virtqueue: ring validation, the one descriptor-chain walker, and used-ring
 * updates with the barriers the driver relies on. See virtio_queue.h.
 *
 * The driver runs on other vCPUs while the device reads its rings, so every
 * descriptor is copied out of guest memory once and only the copy is checked and used.
 */
#include "devices/virtio_queue.h"

#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "common/log.h"

#define VIRTQ_DESC_SIZE 16

struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

static uint16_t load_le16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return le16toh(v);
}

static void store_le16(uint8_t *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, 2);
}

static void store_le32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void virtq_read_desc(const uint8_t *table, uint32_t idx, struct virtq_desc *d)
{
	uint8_t raw[VIRTQ_DESC_SIZE];

	memcpy(raw, table + (size_t)idx * VIRTQ_DESC_SIZE, sizeof(raw));
	memcpy(&d->addr, raw, 8);
	memcpy(&d->len, raw + 8, 4);
	memcpy(&d->flags, raw + 12, 2);
	memcpy(&d->next, raw + 14, 2);
	d->addr = le64toh(d->addr);
	d->len = le32toh(d->len);
	d->flags = le16toh(d->flags);
	d->next = le16toh(d->next);
}

void virtq_reset(struct virtq *q, uint16_t max_size)
{
	memset(q, 0, sizeof(*q));
	q->max_size = max_size;
	q->size = max_size;
}

int virtq_enable(struct virtq *q, const struct guest_mem *mem)
{
	uint64_t n = q->size;

	if (n == 0 || n > q->max_size || (n & (n - 1))) {
		log_warn_rl("virtq", "invalid queue size %llu (max %u)", (unsigned long long)n,
			    q->max_size);
		return -EINVAL;
	}
	/* Alignments from virtio 1.1, 2.6: descriptors 16, available ring 2, used ring 4. */
	if ((q->desc_gpa & 15) || (q->avail_gpa & 1) || (q->used_gpa & 3)) {
		log_warn_rl("virtq", "misaligned rings: desc 0x%llx avail 0x%llx used 0x%llx",
			    (unsigned long long)q->desc_gpa, (unsigned long long)q->avail_gpa,
			    (unsigned long long)q->used_gpa);
		return -EINVAL;
	}
	/* Each ring includes its event word, which exists whether or not EVENT_IDX is used. */
	q->desc = guest_mem_ptr(mem, q->desc_gpa, VIRTQ_DESC_SIZE * n);
	q->avail = guest_mem_ptr(mem, q->avail_gpa, 6 + 2 * n);
	q->used = guest_mem_ptr(mem, q->used_gpa, 6 + 8 * n);
	if (!q->desc || !q->avail || !q->used) {
		log_warn_rl("virtq", "rings outside guest memory: desc 0x%llx avail 0x%llx used 0x%llx "
			    "(size %llu)", (unsigned long long)q->desc_gpa,
			    (unsigned long long)q->avail_gpa, (unsigned long long)q->used_gpa,
			    (unsigned long long)n);
		q->desc = q->avail = q->used = NULL;
		return -EINVAL;
	}
	q->mem = mem;
	q->enabled = true;
	return 0;
}

/* Logs and counts a malformed chain; always returns -EBADMSG. */
static int virtq_chain_fault(struct virtq *q, const struct virtq_chain *c, const char *what,
			     unsigned long long value)
{
	q->bad_chains++;
	log_warn_rl("virtq", "rejected chain at head %u: %s (%llu); %llu rejected so far", c->head,
		    what, value, (unsigned long long)q->bad_chains);
	return -EBADMSG;
}

/*
 * Walks the chain starting at `head` (already checked < q->size) into `c`.
 * Contract: returns 0 with every segment translated and bounds-checked, or -EBADMSG
 * with c->head set and c->segs holding the segments read before the fault. It
 * terminates on any input: each step either adds a segment, capped at the queue
 * size, or enters the single indirect table a chain may have.
 */
static int virtq_walk(struct virtq *q, uint16_t head, struct virtq_chain *c)
{
	const uint8_t *table = q->desc;
	uint32_t table_size = q->size;
	uint32_t idx = head;
	bool in_indirect = false;

	memset(c, 0, offsetof(struct virtq_chain, segs));
	c->head = head;

	for (;;) {
		struct virtq_desc d;
		struct virtq_seg *seg;
		uint8_t *host;

		if (idx >= table_size)
			return virtq_chain_fault(q, c, "descriptor index past its table", idx);
		virtq_read_desc(table, idx, &d);

		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			if (in_indirect)
				return virtq_chain_fault(q, c, "nested indirect table", idx);
			if (d.flags & VIRTQ_DESC_F_NEXT)
				return virtq_chain_fault(q, c, "indirect descriptor with NEXT", idx);
			if (d.len == 0 || d.len % VIRTQ_DESC_SIZE)
				return virtq_chain_fault(q, c, "indirect table length invalid", d.len);
			table = guest_mem_ptr(q->mem, d.addr, d.len);
			if (!table)
				return virtq_chain_fault(q, c, "indirect table outside guest memory",
							 d.addr);
			table_size = d.len / VIRTQ_DESC_SIZE;
			idx = 0;
			in_indirect = true;
			continue;
		}

		/* A chain longer than the queue is forbidden (virtio 1.1, 2.6.5.3.1); loops end here. */
		if (c->nr_segs >= q->size)
			return virtq_chain_fault(q, c, "chain longer than queue size", q->size);
		host = guest_mem_ptr(q->mem, d.addr, d.len);
		if (!host)
			return virtq_chain_fault(q, c, "buffer outside guest memory", d.addr);
		if (!(d.flags & VIRTQ_DESC_F_WRITE) && c->nr_segs > c->nr_readable)
			return virtq_chain_fault(q, c, "readable buffer after a writable one", idx);

		seg = &c->segs[c->nr_segs++];
		seg->host = host;
		seg->len = d.len;
		seg->write = d.flags & VIRTQ_DESC_F_WRITE;
		if (seg->write) {
			c->writable_len += d.len;
		} else {
			c->nr_readable++;
			c->readable_len += d.len;
		}

		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		idx = d.next;
	}
}

static uint16_t virtq_load_avail_idx(const struct virtq *q)
{
	/*
	 * Acquire: the ring entries and descriptors the driver published with this index
	 * must be read after it, pairing with the driver's write barrier before its store.
	 */
	return le16toh(__atomic_load_n((const uint16_t *)(q->avail + 2), __ATOMIC_ACQUIRE));
}

static void virtq_mark_broken(struct virtq *q, const char *what, unsigned value)
{
	q->broken = true;
	q->bad_chains++;
	log_warn_rl("virtq", "queue stopped until reset: %s (%u)", what, value);
}

int virtq_pop(struct virtq *q, struct virtq_chain *chain)
{
	uint16_t avail_idx, pending, head;

	if (q->broken)
		return -EIO;
	if (!q->enabled)
		return VIRTQ_POP_EMPTY;

	avail_idx = virtq_load_avail_idx(q);
	if (avail_idx == q->last_avail_idx && q->event_idx) {
		/* avail_event: ask for a notification when the driver passes this index. */
		store_le16(q->used + 4 + 8 * (size_t)q->size, q->last_avail_idx);
		/*
		 * Full barrier: the avail_event store must be visible before the index is read
		 * again. Otherwise a driver that published a buffer in between, and then read
		 * the old avail_event, would skip its notification and the buffer would wait.
		 */
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		avail_idx = virtq_load_avail_idx(q);
	}

	pending = (uint16_t)(avail_idx - q->last_avail_idx);
	if (pending == 0)
		return VIRTQ_POP_EMPTY;
	if (pending > q->size) {
		virtq_mark_broken(q, "available index ahead by more than the queue size", pending);
		return -EIO;
	}

	head = load_le16(q->avail + 4 + 2 * (size_t)(q->last_avail_idx % q->size));
	q->last_avail_idx++;
	if (head >= q->size) {
		virtq_mark_broken(q, "head index past the queue", head);
		return -EIO;
	}
	if (virtq_walk(q, head, chain))
		return -EBADMSG;
	return VIRTQ_POP_OK;
}

void virtq_push(struct virtq *q, uint16_t head, uint32_t len)
{
	uint8_t *elem = q->used + 4 + 8 * (size_t)(q->used_idx % q->size);

	store_le32(elem, head);
	store_le32(elem + 4, len);
	q->used_idx++;
	/*
	 * Release: the used element and the data written into the chain's buffers must be
	 * visible before the index that hands them to the driver.
	 */
	__atomic_store_n((uint16_t *)(q->used + 2), htole16(q->used_idx), __ATOMIC_RELEASE);
}

bool virtq_need_interrupt(struct virtq *q)
{
	uint16_t used_event, old;
	bool valid;

	/*
	 * Full barrier: the used->idx store must be visible before the driver's suppression
	 * flag or used_event is read. The driver re-enables interrupts and then re-reads
	 * used->idx; without this pairing both sides could miss the new entries.
	 */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);

	if (!q->event_idx)
		return !(load_le16(q->avail) & VIRTQ_AVAIL_F_NO_INTERRUPT);

	old = q->signalled_used;
	valid = q->signalled_used_valid;
	q->signalled_used = q->used_idx;
	q->signalled_used_valid = true;
	if (!valid)
		return true;
	used_event = load_le16(q->avail + 4 + 2 * (size_t)q->size);
	/* vring_need_event(): did used_idx pass used_event since the last interrupt? */
	return (uint16_t)(q->used_idx - used_event - 1) < (uint16_t)(q->used_idx - old);
}
