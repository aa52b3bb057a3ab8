/*
 * The registry: the definitions of the VMs that cryo manages, in one SQLite file
 * (registry.sqlite under the state directory). It stores what a VM is (RAM, vCPUs, kernel,
 * disks), not whether it runs: that is read from the VM's directory and its processes each
 * time, so a crash never leaves the registry out of date. The schema carries a version
 * number; a file written by a newer cryo is rejected instead of being misread.
 */
#ifndef CRYO_CLI_REGISTRY_H
#define CRYO_CLI_REGISTRY_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REGISTRY_SCHEMA_VERSION 1
#define VM_NAME_LEN 65
#define VM_DISKS_MAX 16
#define VM_CMDLINE_LEN 4096

struct registry;

struct vm_disk {
	char path[PATH_MAX];
	bool readonly;
};

struct vm_def {
	char name[VM_NAME_LEN];
	uint64_t ram_mib;
	unsigned cpus;
	char kernel[PATH_MAX];
	char initrd[PATH_MAX];		/* empty when none */
	char cmdline[VM_CMDLINE_LEN];	/* empty when none */
	struct vm_disk disks[VM_DISKS_MAX];
	size_t ndisks;
	int64_t created;		/* seconds since the epoch */
	int last_exit;			/* last exit status of cryo-vmm, -1 when never run */
	int64_t last_exit_time;		/* seconds since the epoch, 0 when never run */
};

/*
 * Open (creating when absent) the registry file at path and bring its schema to the current
 * version. Returns 0 or a negative errno, with a message in err.
 */
int registry_open(struct registry **out, const char *path, char *err, size_t errlen);
void registry_close(struct registry *r);

/* Add a VM; -EEXIST when the name is taken. */
int registry_vm_add(struct registry *r, const struct vm_def *def);
/* Read a VM into def; -ENOENT when unknown. */
int registry_vm_get(struct registry *r, const char *name, struct vm_def *def);
/* Delete a VM and its disks; -ENOENT when unknown. */
int registry_vm_remove(struct registry *r, const char *name);
/* Record how cryo-vmm last exited (status as in docs/CONTROL.md, or 128+signal). */
int registry_vm_set_exit(struct registry *r, const char *name, int status, int64_t when);
/*
 * Call fn for every VM in name order, stopping at the first non-zero return, which is
 * returned. def is only valid during the call.
 */
int registry_vm_foreach(struct registry *r, int (*fn)(const struct vm_def *def, void *arg),
			void *arg);
/* Message of the last SQLite error, for logs. */
const char *registry_errmsg(struct registry *r);

#endif
