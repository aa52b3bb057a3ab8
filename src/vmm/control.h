/*
 * The control socket: the line protocol of docs/CONTROL.md, served by the main
 * thread one request at a time. A checkpoint is written by a worker thread, and
 * while it runs every request but `status` is rejected.
 */
#ifndef CRYO_VMM_CONTROL_H
#define CRYO_VMM_CONTROL_H

#include <stddef.h>

#include "vmm/loop.h"

#define CONTROL_LINE_MAX 4096
#define CONTROL_MAX_CLIENTS 16

struct vmm;
struct control;

struct control *control_create(const char *path, struct loop *loop, struct vmm *v, char *err,
			       size_t errlen);
void control_destroy(struct control *c);

/* Sends one reply line to a client. */
typedef void (*control_reply_fn)(void *opaque, const char *line);

/* Waits for a checkpoint still being written; called before the VM is torn down. */
void control_wait_checkpoint(struct vmm *v);

#endif
