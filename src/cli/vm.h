/*
 * The files of one VM under the state directory, and what its running processes look like
 * from outside. The registry stores what a VM is; these files show whether it runs:
 *
 *   vms/NAME/lock          flock held by each cryo command on NAME for its whole duration,
 *                          containing "COMMAND PID" of the holder
 *   vms/NAME/run.lock      flock held by the instance (supervisor and cryo-vmm, which inherits
 *                          the descriptor) for as long as either lives: the kernel drops it on
 *                          any death, kill -9 included, so it never goes stale
 *   vms/NAME/vm.pid        "PID STARTTIME" of the current cryo-vmm (start time in clock ticks
 *                          since boot, from /proc/PID/stat), so a reused pid is not mistaken
 *   vms/NAME/control.sock  control socket of cryo-vmm (docs/CONTROL.md)
 *   vms/NAME/console.sock  serial console socket of cryo-vmm
 *   vms/NAME/vm.log        stdout and stderr of the supervisor and cryo-vmm, appended
 *   vms/NAME/hibernate.ckp checkpoint of a hibernated (suspended) VM
 *   vms/NAME/checkpoints/  named checkpoints, CKP.ckp each
 */
#ifndef CRYO_CLI_VM_H
#define CRYO_CLI_VM_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct vm_paths {
	char dir[PATH_MAX];
	char lock[PATH_MAX];
	char run_lock[PATH_MAX];
	char pid[PATH_MAX];
	char control[PATH_MAX];
	char console[PATH_MAX];
	char log[PATH_MAX];
	char hibernate[PATH_MAX];
	char checkpoints[PATH_MAX];
};

enum vm_status {
	VM_OFF,
	VM_ON,
	VM_PAUSED,
	VM_SUSPENDED,	/* hibernated: hibernate.ckp exists and nothing runs */
};

struct vm_runtime {
	enum vm_status status;
	pid_t pid;		/* cryo-vmm, 0 when none or between restarts */
	bool control_ok;	/* the control socket returned a status */
};

/*
 * Fill in the paths of VM name under home. Returns -ENAMETOOLONG when a socket path would
 * not fit in sun_path (107 bytes), which a long --home can cause.
 */
int vm_paths_init(struct vm_paths *p, const char *home, const char *name);

/*
 * Take the per-VM command lock, creating the VM directory's lock file if needed. While
 * another command holds it: if that command is a checkpoint (bcheckpoint, bsuspend),
 * returns -EBUSY at once with "COMMAND PID" of the holder in holder; otherwise waits.
 * On success *fd holds the lock until vm_unlock().
 */
int vm_lock(const struct vm_paths *p, const char *command, int *fd, char *holder,
	    size_t holderlen);
void vm_unlock(int fd);

/* Whether an instance (supervisor or cryo-vmm) of this VM is alive. */
bool vm_instance_alive(const struct vm_paths *p);

/* Read the cryo-vmm pid; -ESRCH when the file is stale (process gone or pid reused). */
int vm_read_pid(const struct vm_paths *p, pid_t *pid);

/* Write the pid file for pid atomically. */
int vm_write_pid(const struct vm_paths *p, pid_t pid);

/* Remove pid file and sockets left by an instance that is no longer alive. */
void vm_clean_stale(const struct vm_paths *p);

/* Find out whether the VM runs, and in which state. */
void vm_probe(const struct vm_paths *p, struct vm_runtime *rt);
const char *vm_status_name(enum vm_status s);

/*
 * Wait until no instance is alive, up to timeout_ms. When countdown is set, a line counting
 * down the seconds is redrawn on stdout. Returns 0 or -ETIMEDOUT.
 */
int vm_wait_exit(const struct vm_paths *p, int timeout_ms, bool countdown, const char *what);

/* Values from /proc/PID/stat, in clock ticks. */
int proc_stat_read(pid_t pid, uint64_t *cpu_ticks, uint64_t *start_ticks);
/* VmRSS from /proc/PID/status, in KiB. */
int proc_rss_kib(pid_t pid, uint64_t *kib);

/* Remove a directory tree (a checkpoint); returns 0 or a negative errno. */
int remove_tree(const char *path);
/* Create dir and its parents with mode. */
int mkdir_parents(const char *dir, mode_t mode);

#endif
