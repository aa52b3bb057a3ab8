/*
 * Checkpoint and restore of a whole VM: vCPUs, irqchip and clocks, devices, memory
 * and disks, through the format of src/snapshot. The order is: park the vCPUs, read
 * every state, write and fsync it all, rename the directory into place, then
 * resume, power off or exit as requested.
 */
#ifndef CRYO_VMM_CHECKPOINT_H
#define CRYO_VMM_CHECKPOINT_H

#include <stdbool.h>

#include "vmm/control.h"
#include "vmm/options.h"

struct vmm;

enum checkpoint_then {
	CHECKPOINT_THEN_RUN,
	CHECKPOINT_THEN_POWEROFF,
	CHECKPOINT_THEN_EXIT, /* hibernation */
};

struct checkpoint_request {
	const char *dir;
	enum checkpoint_then then;
	bool progress;
	control_reply_fn reply; /* gets progress lines, then one final ok/error line */
	void *reply_opaque;
};

void vmm_checkpoint(struct vmm *v, const struct checkpoint_request *req);

/*
 * Rebuilds the VM in `v` from the checkpoint directory in o->restore; on failure
 * returns -errno with a message naming the file and the fault in err, and nothing
 * has run.
 */
int vmm_restore(struct vmm *v, const struct vmm_options *o, const struct machine_events *ev,
		char *err, size_t errlen);

#endif
