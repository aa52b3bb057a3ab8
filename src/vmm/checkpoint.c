#include "vmm/checkpoint.h"

#include <errno.h>
#include <stdio.h>

#include "vmm/vmm.h"

/* TODO: write checkpoints through src/snapshot; until then every request fails. */
void vmm_checkpoint(struct vmm *v, const struct checkpoint_request *req)
{
	req->reply(req->reply_opaque, "error checkpoints are not implemented yet");
}

int vmm_restore(struct vmm *v, const struct vmm_options *o, const struct machine_events *ev,
		char *err, size_t errlen)
{
	snprintf(err, errlen, "restore is not implemented yet");
	return -ENOSYS;
}
