/*
 * The control socket: the line protocol of docs/CONTROL.md, served by the main
 * thread one request at a time. A checkpoint is written synchronously inside its
 * request, so a second one cannot start while the first runs; clients that ask
 * meanwhile are answered when it is done.
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

/* Runs one request line and writes the reply through `reply`; exposed for tests. */
typedef void (*control_reply_fn)(void *opaque, const char *line);
void control_execute(struct vmm *v, char *line, control_reply_fn reply, void *opaque);

#endif
