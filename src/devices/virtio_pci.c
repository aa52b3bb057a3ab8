/*
 * virtio 1.x PCI transport: capabilities, the BAR 0 register file, feature and status
 * negotiation, queue setup, interrupts and checkpoint state. See virtio_pci.h.
 */
#include "devices/virtio_pci.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"

/* cfg_type values of struct virtio_pci_cap (virtio 1.1, 4.1.4). */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG 3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4

#define VIRTIO_STATUS_KNOWN                                                              \
	(VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK |    \
	 VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED)

static void put16(uint8_t *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, 2);
}

static void put32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static uint16_t get16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return le16toh(v);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

bool virtio_pci_negotiated(const struct virtio_pci *vp, uint64_t feature)
{
	return (vp->status & VIRTIO_STATUS_FEATURES_OK) && (vp->driver_features & feature);
}

static struct virtq *virtio_pci_selected_queue(struct virtio_pci *vp)
{
	return vp->queue_select < vp->nr_queues ? &vp->queues[vp->queue_select] : NULL;
}

/* A vector the MSI-X table does not have reads back as NO_VECTOR (virtio 1.1, 4.1.5.1.2). */
static uint16_t virtio_pci_checked_vector(struct virtio_pci *vp, uint16_t vector)
{
	return vector < pci_msix_nr_vectors(vp->pdev) ? vector : VIRTIO_NO_VECTOR;
}

/* ---- interrupts ---- */

static void virtio_pci_interrupt(struct virtio_pci *vp, uint8_t isr_bit, uint16_t vector)
{
	vp->isr |= isr_bit;
	if (pci_msix_enabled(vp->pdev)) {
		if (vector != VIRTIO_NO_VECTOR)
			pci_msix_notify(vp->pdev, vector);
	} else {
		pci_dev_set_intx(vp->pdev, 1);
	}
}

void virtio_pci_notify_queue(struct virtio_pci *vp, unsigned index)
{
	virtio_pci_interrupt(vp, VIRTIO_ISR_QUEUE, vp->queue_vectors[index]);
}

void virtio_pci_set_needs_reset(struct virtio_pci *vp)
{
	if (vp->status & VIRTIO_STATUS_NEEDS_RESET)
		return;
	vp->status |= VIRTIO_STATUS_NEEDS_RESET;
	log_warn_rl(vp->name, "device needs reset after a driver error");
	if (vp->status & VIRTIO_STATUS_DRIVER_OK)
		virtio_pci_interrupt(vp, VIRTIO_ISR_CONFIG, vp->msix_config);
}

/* ---- register file ---- */

static void virtio_pci_reset(struct virtio_pci *vp)
{
	vp->driver_features = 0;
	vp->device_feature_select = 0;
	vp->driver_feature_select = 0;
	vp->msix_config = VIRTIO_NO_VECTOR;
	vp->status = 0;
	vp->isr = 0;
	vp->queue_select = 0;
	for (unsigned i = 0; i < vp->nr_queues; i++) {
		virtq_reset(&vp->queues[i], vp->queue_max_size);
		vp->queue_vectors[i] = VIRTIO_NO_VECTOR;
	}
	pci_dev_set_intx(vp->pdev, 0);
}

static void virtio_pci_set_status(struct virtio_pci *vp, uint8_t status)
{
	if (status == 0) {
		virtio_pci_reset(vp);
		return;
	}
	if ((status & VIRTIO_STATUS_FEATURES_OK) && !(vp->status & VIRTIO_STATUS_FEATURES_OK)) {
		uint64_t extra = vp->driver_features & ~vp->device_features;

		/* Leaving FEATURES_OK clear tells the driver its feature set was not accepted. */
		if (extra || !(vp->driver_features & VIRTIO_F_VERSION_1)) {
			log_warn_rl(vp->name, "rejected driver features 0x%llx (device offers 0x%llx)",
				    (unsigned long long)vp->driver_features,
				    (unsigned long long)vp->device_features);
			status &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
		}
	}
	/* NEEDS_RESET belongs to the device: the driver can neither set nor clear it. */
	vp->status = (uint8_t)((status & ~VIRTIO_STATUS_NEEDS_RESET) |
			       (vp->status & VIRTIO_STATUS_NEEDS_RESET));
}

static void virtio_pci_enable_queue(struct virtio_pci *vp, unsigned index)
{
	struct virtq *q = &vp->queues[index];

	q->event_idx = virtio_pci_negotiated(vp, VIRTIO_F_EVENT_IDX);
	if (virtq_enable(q, vp->mem)) {
		log_warn_rl(vp->name, "queue %u not enabled: invalid ring addresses or size", index);
		virtio_pci_set_needs_reset(vp);
	}
}

/* Renders the common configuration structure as the driver reads it. */
static void virtio_pci_common_image(struct virtio_pci *vp, uint8_t *img)
{
	struct virtq *q = virtio_pci_selected_queue(vp);
	uint32_t dfs = vp->device_feature_select;
	uint32_t gfs = vp->driver_feature_select;

	memset(img, 0, VIRTIO_PCI_COMMON_SIZE);
	put32(img + VIRTIO_PCI_COMMON_DFSELECT, dfs);
	put32(img + VIRTIO_PCI_COMMON_DF, dfs < 2 ? (uint32_t)(vp->device_features >> (32 * dfs)) : 0);
	put32(img + VIRTIO_PCI_COMMON_GFSELECT, gfs);
	put32(img + VIRTIO_PCI_COMMON_GF, gfs < 2 ? (uint32_t)(vp->driver_features >> (32 * gfs)) : 0);
	put16(img + VIRTIO_PCI_COMMON_MSIX, vp->msix_config);
	put16(img + VIRTIO_PCI_COMMON_NUMQ, (uint16_t)vp->nr_queues);
	img[VIRTIO_PCI_COMMON_STATUS] = vp->status;
	img[VIRTIO_PCI_COMMON_CFGGENERATION] = vp->config_generation;
	put16(img + VIRTIO_PCI_COMMON_Q_SELECT, vp->queue_select);
	if (!q)
		return;
	put16(img + VIRTIO_PCI_COMMON_Q_SIZE, q->size);
	put16(img + VIRTIO_PCI_COMMON_Q_MSIX, vp->queue_vectors[vp->queue_select]);
	put16(img + VIRTIO_PCI_COMMON_Q_ENABLE, q->enabled);
	put16(img + VIRTIO_PCI_COMMON_Q_NOFF, vp->queue_select);
	put64(img + VIRTIO_PCI_COMMON_Q_DESC, q->desc_gpa);
	put64(img + VIRTIO_PCI_COMMON_Q_AVAIL, q->avail_gpa);
	put64(img + VIRTIO_PCI_COMMON_Q_USED, q->used_gpa);
}

/* Applies the queue registers of `img` that the write [off, off + len) touched. */
static void virtio_pci_write_queue_regs(struct virtio_pci *vp, const uint8_t *img, unsigned off,
					unsigned len)
{
	struct virtq *q = virtio_pci_selected_queue(vp);
	unsigned end = off + len;

	if (!q)
		return;
	if (off < VIRTIO_PCI_COMMON_Q_MSIX + 2 && end > VIRTIO_PCI_COMMON_Q_MSIX)
		vp->queue_vectors[vp->queue_select] =
			virtio_pci_checked_vector(vp, get16(img + VIRTIO_PCI_COMMON_Q_MSIX));

	/* Size and ring addresses are fixed once the queue is enabled (virtio 1.1, 4.1.4.3.2). */
	if (q->enabled)
		return;
	if (off < VIRTIO_PCI_COMMON_Q_SIZE + 2 && end > VIRTIO_PCI_COMMON_Q_SIZE) {
		uint16_t size = get16(img + VIRTIO_PCI_COMMON_Q_SIZE);

		if (size && size <= q->max_size && !(size & (size - 1)))
			q->size = size;
		else
			log_warn_rl(vp->name, "ignored invalid queue size %u", size);
	}
	if (off < VIRTIO_PCI_COMMON_Q_USED + 8 && end > VIRTIO_PCI_COMMON_Q_DESC) {
		q->desc_gpa = get64(img + VIRTIO_PCI_COMMON_Q_DESC);
		q->avail_gpa = get64(img + VIRTIO_PCI_COMMON_Q_AVAIL);
		q->used_gpa = get64(img + VIRTIO_PCI_COMMON_Q_USED);
	}
	if (off < VIRTIO_PCI_COMMON_Q_ENABLE + 2 && end > VIRTIO_PCI_COMMON_Q_ENABLE &&
	    get16(img + VIRTIO_PCI_COMMON_Q_ENABLE) == 1)
		virtio_pci_enable_queue(vp, vp->queue_select);
}

/*
 * Writes [off, off + len) of the common configuration: the bytes are merged into the
 * current register image, then every register the write touched is applied, so any
 * access width works, including 64-bit addresses written as two 32-bit halves.
 */
static void virtio_pci_common_write(struct virtio_pci *vp, unsigned off, const uint8_t *data,
				    unsigned len)
{
	uint8_t img[VIRTIO_PCI_COMMON_SIZE];
	unsigned end = off + len;

	virtio_pci_common_image(vp, img);
	memcpy(img + off, data, len);

	if (off < VIRTIO_PCI_COMMON_DFSELECT + 4)
		vp->device_feature_select = get32(img + VIRTIO_PCI_COMMON_DFSELECT);
	if (off < VIRTIO_PCI_COMMON_GFSELECT + 4 && end > VIRTIO_PCI_COMMON_GFSELECT)
		vp->driver_feature_select = get32(img + VIRTIO_PCI_COMMON_GFSELECT);
	if (off < VIRTIO_PCI_COMMON_GF + 4 && end > VIRTIO_PCI_COMMON_GF &&
	    !(vp->status & VIRTIO_STATUS_FEATURES_OK) && vp->driver_feature_select < 2) {
		unsigned shift = 32 * vp->driver_feature_select;

		vp->driver_features &= ~(0xFFFFFFFFull << shift);
		vp->driver_features |= (uint64_t)get32(img + VIRTIO_PCI_COMMON_GF) << shift;
	}
	if (off < VIRTIO_PCI_COMMON_MSIX + 2 && end > VIRTIO_PCI_COMMON_MSIX)
		vp->msix_config = virtio_pci_checked_vector(vp, get16(img + VIRTIO_PCI_COMMON_MSIX));
	if (off <= VIRTIO_PCI_COMMON_STATUS && end > VIRTIO_PCI_COMMON_STATUS)
		virtio_pci_set_status(vp, img[VIRTIO_PCI_COMMON_STATUS]);
	if (off < VIRTIO_PCI_COMMON_Q_SELECT + 2 && end > VIRTIO_PCI_COMMON_Q_SELECT)
		vp->queue_select = get16(img + VIRTIO_PCI_COMMON_Q_SELECT);
	virtio_pci_write_queue_regs(vp, img, off, len);
}

static void virtio_pci_notify_write(struct virtio_pci *vp, uint64_t off)
{
	unsigned index = (unsigned)(off / VIRTIO_PCI_NOTIFY_MULTIPLIER);

	if (off % VIRTIO_PCI_NOTIFY_MULTIPLIER || index >= vp->nr_queues) {
		log_warn_rl(vp->name, "ignored notification at offset 0x%llx", (unsigned long long)off);
		return;
	}
	if (vp->queues[index].enabled && (vp->status & VIRTIO_STATUS_DRIVER_OK))
		vp->ops->queue_notify(vp, index);
}

/* MMIO handler of BAR 0. */
static void virtio_pci_bar_access(void *opaque, uint64_t off, uint8_t *data, uint32_t len,
				  bool is_write)
{
	struct virtio_pci *vp = opaque;

	pthread_mutex_lock(&vp->lock);
	if (off < VIRTIO_PCI_ISR_OFFSET) {
		uint8_t img[VIRTIO_PCI_COMMON_SIZE];

		if (off + len > VIRTIO_PCI_COMMON_SIZE) {
			if (!is_write)
				memset(data, 0, len);
		} else if (is_write) {
			virtio_pci_common_write(vp, (unsigned)off, data, len);
		} else {
			virtio_pci_common_image(vp, img);
			memcpy(data, img + off, len);
		}
	} else if (off < VIRTIO_PCI_DEVICE_OFFSET) {
		/* Reading ISR clears it and deasserts INTx (virtio 1.1, 4.1.4.5). */
		if (!is_write) {
			memset(data, 0, len);
			if (off == VIRTIO_PCI_ISR_OFFSET) {
				data[0] = vp->isr;
				vp->isr = 0;
				pci_dev_set_intx(vp->pdev, 0);
			}
		}
	} else if (off < VIRTIO_PCI_NOTIFY_OFFSET) {
		uint64_t cfg_off = off - VIRTIO_PCI_DEVICE_OFFSET;

		if (cfg_off + len > vp->config_size) {
			if (!is_write)
				memset(data, 0, len);
		} else if (!is_write) {
			vp->ops->config_read(vp, (uint32_t)cfg_off, data, len);
		} else if (vp->ops->config_write) {
			vp->ops->config_write(vp, (uint32_t)cfg_off, data, len);
		}
	} else if (is_write) {
		virtio_pci_notify_write(vp, off - VIRTIO_PCI_NOTIFY_OFFSET);
	} else {
		memset(data, 0, len);
	}
	pthread_mutex_unlock(&vp->lock);
}

/* ---- construction ---- */

static int virtio_pci_add_cap(struct virtio_pci *vp, uint8_t cfg_type, uint32_t offset,
			      uint32_t length, bool notify)
{
	/* struct virtio_pci_cap after cap_vndr and cap_next, plus notify_off_multiplier. */
	uint8_t body[18] = { 0 };
	uint8_t body_len = notify ? 18 : 14;

	body[0] = (uint8_t)(body_len + 2); /* cap_len */
	body[1] = cfg_type;
	body[2] = 0; /* bar */
	put32(body + 6, offset);
	put32(body + 10, length);
	if (notify)
		put32(body + 14, VIRTIO_PCI_NOTIFY_MULTIPLIER);
	return pci_dev_add_cap(vp->pdev, PCI_CAP_ID_VNDR, body, body_len);
}

int virtio_pci_init(struct virtio_pci *vp, const struct device_env *env,
		    const struct virtio_pci_params *params)
{
	struct pci_dev_id id = {
		.vendor_id = VIRTIO_PCI_VENDOR_ID,
		.device_id = (uint16_t)(VIRTIO_PCI_DEVICE_ID_BASE + params->virtio_type),
		.subsystem_vendor_id = VIRTIO_PCI_VENDOR_ID,
		.subsystem_id = 0x1100,
		.class_code = params->class_code,
		.revision = 1, /* modern-only devices have revision 1 or more (virtio 1.1, 4.1.2.1) */
	};
	int ret;

	if (!env->pci || params->nr_queues == 0 || params->nr_queues > VIRTIO_PCI_MAX_QUEUES ||
	    params->queue_max_size > VIRTQ_MAX_SIZE || params->config_size > 0x1000)
		return -EINVAL;

	memset(vp, 0, sizeof(*vp));
	pthread_mutex_init(&vp->lock, NULL);
	snprintf(vp->name, sizeof(vp->name), "%s", params->name);
	vp->mem = env->mem;
	vp->ops = params->ops;
	vp->opaque = params->opaque;
	vp->device_features = params->features | VIRTIO_F_VERSION_1;
	vp->config_size = params->config_size;
	vp->nr_queues = params->nr_queues;
	vp->queue_max_size = params->queue_max_size;

	vp->pdev = pci_dev_add(env->pci, &id, params->name);
	if (!vp->pdev) {
		ret = -ENOSPC;
		goto err_lock;
	}
	snprintf(vp->name, sizeof(vp->name), "%s@%02x", params->name, pci_dev_slot(vp->pdev));
	virtio_pci_reset(vp);

	ret = virtio_pci_add_cap(vp, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_COMMON_OFFSET,
				 VIRTIO_PCI_COMMON_SIZE, false);
	if (ret >= 0)
		ret = virtio_pci_add_cap(vp, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_NOTIFY_OFFSET,
					 VIRTIO_PCI_NOTIFY_MULTIPLIER * params->nr_queues, true);
	if (ret >= 0)
		ret = virtio_pci_add_cap(vp, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_ISR_OFFSET, 1, false);
	if (ret >= 0 && params->config_size)
		ret = virtio_pci_add_cap(vp, VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_DEVICE_OFFSET,
					 params->config_size, false);
	if (ret >= 0)
		ret = pci_dev_add_msix(vp->pdev, VIRTIO_PCI_MSIX_BAR, params->nr_queues + 1);
	if (ret >= 0)
		ret = pci_dev_add_bar(vp->pdev, 0, VIRTIO_PCI_BAR_SIZE, virtio_pci_bar_access, vp);
	if (ret < 0)
		goto err_pdev;
	return 0;

err_pdev:
	log_error(vp->name, "cannot set up PCI function: %s", strerror(-ret));
	pci_dev_remove(vp->pdev);
err_lock:
	pthread_mutex_destroy(&vp->lock);
	return ret;
}

void virtio_pci_uninit(struct virtio_pci *vp)
{
	pci_dev_remove(vp->pdev);
	pthread_mutex_destroy(&vp->lock);
}

/* ---- checkpoint ---- */

void virtio_pci_save(struct virtio_pci *vp, struct ser_writer *w)
{
	pci_dev_save(vp->pdev, w);

	pthread_mutex_lock(&vp->lock);
	ser_u64(w, vp->driver_features);
	ser_u32(w, vp->device_feature_select);
	ser_u32(w, vp->driver_feature_select);
	ser_u16(w, vp->msix_config);
	ser_u8(w, vp->status);
	ser_u8(w, vp->config_generation);
	ser_u8(w, vp->isr);
	ser_u16(w, vp->queue_select);
	ser_u16(w, (uint16_t)vp->nr_queues);
	for (unsigned i = 0; i < vp->nr_queues; i++) {
		const struct virtq *q = &vp->queues[i];

		ser_u16(w, q->size);
		ser_u16(w, vp->queue_vectors[i]);
		ser_u8(w, q->enabled);
		ser_u8(w, q->broken);
		ser_u64(w, q->desc_gpa);
		ser_u64(w, q->avail_gpa);
		ser_u64(w, q->used_gpa);
		ser_u16(w, q->last_avail_idx);
		ser_u16(w, q->used_idx);
		ser_u64(w, q->bad_chains);
	}
	pthread_mutex_unlock(&vp->lock);
}

static int virtio_pci_check_queue(struct virtio_pci *vp, struct virtio_pci_state *st, unsigned i,
				  uint8_t enabled, uint8_t broken)
{
	struct virtq *q = &st->queues[i];
	uint16_t vector = st->queue_vectors[i];

	if (enabled > 1 || broken > 1 || q->size == 0 || q->size > vp->queue_max_size ||
	    (q->size & (q->size - 1))) {
		log_error(vp->name, "invalid state: queue %u size %u (max %u) or flags", i, q->size,
			  vp->queue_max_size);
		return -EBADMSG;
	}
	if (vector != VIRTIO_NO_VECTOR && vector >= pci_msix_nr_vectors(vp->pdev)) {
		log_error(vp->name, "invalid state: queue %u MSI-X vector %u", i, vector);
		return -EBADMSG;
	}
	q->broken = broken;
	q->event_idx = (st->status & VIRTIO_STATUS_FEATURES_OK) &&
		       (st->driver_features & VIRTIO_F_EVENT_IDX);
	if (enabled && virtq_enable(q, vp->mem)) {
		log_error(vp->name, "invalid state: queue %u rings outside guest memory", i);
		return -EBADMSG;
	}
	return 0;
}

int virtio_pci_read_state(struct virtio_pci *vp, struct ser_reader *r, struct virtio_pci_state *st)
{
	unsigned nr_queues;
	int ret;

	memset(st, 0, sizeof(*st));
	ret = pci_dev_read_state(vp->pdev, r, &st->pci);
	if (ret)
		return ret;

	st->driver_features = de_u64(r);
	st->device_feature_select = de_u32(r);
	st->driver_feature_select = de_u32(r);
	st->msix_config = de_u16(r);
	st->status = de_u8(r);
	st->config_generation = de_u8(r);
	st->isr = de_u8(r);
	st->queue_select = de_u16(r);
	nr_queues = de_u16(r);
	if (r->err || nr_queues != vp->nr_queues) {
		log_error(vp->name, "invalid state: truncated, or %u queues saved for %u", nr_queues,
			  vp->nr_queues);
		return -EBADMSG;
	}
	if ((st->status & ~VIRTIO_STATUS_KNOWN) || (st->isr & ~(VIRTIO_ISR_QUEUE | VIRTIO_ISR_CONFIG)) ||
	    (st->msix_config != VIRTIO_NO_VECTOR && st->msix_config >= pci_msix_nr_vectors(vp->pdev))) {
		log_error(vp->name, "invalid state: status 0x%x, ISR 0x%x or config vector %u",
			  st->status, st->isr, st->msix_config);
		return -EBADMSG;
	}
	if ((st->status & VIRTIO_STATUS_FEATURES_OK) &&
	    ((st->driver_features & ~vp->device_features) ||
	     !(st->driver_features & VIRTIO_F_VERSION_1))) {
		log_error(vp->name, "invalid state: driver features 0x%llx not offered (0x%llx)",
			  (unsigned long long)st->driver_features,
			  (unsigned long long)vp->device_features);
		return -EBADMSG;
	}

	for (unsigned i = 0; i < nr_queues; i++) {
		struct virtq *q = &st->queues[i];
		uint8_t enabled, broken;

		virtq_reset(q, vp->queue_max_size);
		q->size = de_u16(r);
		st->queue_vectors[i] = de_u16(r);
		enabled = de_u8(r);
		broken = de_u8(r);
		q->desc_gpa = de_u64(r);
		q->avail_gpa = de_u64(r);
		q->used_gpa = de_u64(r);
		q->last_avail_idx = de_u16(r);
		q->used_idx = de_u16(r);
		q->bad_chains = de_u64(r);
		if (r->err)
			return -EBADMSG;
		ret = virtio_pci_check_queue(vp, st, i, enabled, broken);
		if (ret)
			return ret;
	}
	return 0;
}

int virtio_pci_apply_state(struct virtio_pci *vp, const struct virtio_pci_state *st)
{
	int ret = pci_dev_apply_state(vp->pdev, &st->pci);

	if (ret)
		return ret;

	pthread_mutex_lock(&vp->lock);
	vp->driver_features = st->driver_features;
	vp->device_feature_select = st->device_feature_select;
	vp->driver_feature_select = st->driver_feature_select;
	vp->msix_config = st->msix_config;
	vp->status = st->status;
	vp->config_generation = st->config_generation;
	vp->isr = st->isr;
	vp->queue_select = st->queue_select;
	for (unsigned i = 0; i < vp->nr_queues; i++) {
		vp->queues[i] = st->queues[i];
		vp->queue_vectors[i] = st->queue_vectors[i];
	}
	pthread_mutex_unlock(&vp->lock);
	return 0;
}
