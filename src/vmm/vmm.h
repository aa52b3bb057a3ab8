/*
 * The cryo-vmm process: one VM, its vCPU threads, and the main thread's event loop
 * that serves the console, the control socket and signals.
 */
#ifndef CRYO_VMM_VMM_H
#define CRYO_VMM_VMM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "machine/machine.h"

/* Exit statuses of cryo-vmm; docs/CONTROL.md lists them for users. */
enum vmm_exit {
	VMM_EXIT_POWEROFF = 0,
	VMM_EXIT_ERROR = 1,
	VMM_EXIT_REBOOT = 2,
	VMM_EXIT_HIBERNATED = 3,
	VMM_EXIT_CRASH = 4,
	VMM_EXIT_TEST_BASE = 16, /* plus the value a test guest wrote to its result port */
};
#define VMM_TEST_RESULT_MAX 99

enum vmm_state {
	VMM_RUNNING,
	VMM_PAUSED,
};

struct console;
struct control;

struct vmm {
	struct machine m;
	pthread_t threads[MACHINE_MAX_CPUS];
	bool thread_started[MACHINE_MAX_CPUS];

	/* Guards everything below; vCPU threads wait on `cond` while paused. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool pause_requested;
	unsigned nr_parked;   /* vCPU threads waiting at the pause point */
	bool stopping;
	int exit_status;      /* valid once stopping */
	enum vmm_state state; /* what the user asked for: running or paused */

	int wake_fd; /* eventfd: a vCPU thread asks the main loop to look at `stopping` */
	struct console *console;
	struct control *control;
	bool checkpoint_running; /* atomic: set by the main thread, cleared by the worker */
	pthread_t checkpoint_thread;
	bool checkpoint_thread_started; /* main thread only */
};

int vmm_start_vcpus(struct vmm *v);
/* Asks every vCPU thread to stop for good and records the status; the first call wins. */
void vmm_request_exit(struct vmm *v, int status);
void vmm_join_vcpus(struct vmm *v);
/* Returns true once vmm_request_exit has been called: the VM is on its way out. */
bool vmm_is_stopping(struct vmm *v);
/*
 * Parks every vCPU at a point where its state is complete in KVM (pending I/O
 * finished). Returns when all are parked, or early once the VM is stopping.
 */
void vmm_park_vcpus(struct vmm *v);
void vmm_unpark_vcpus(struct vmm *v);

#endif
