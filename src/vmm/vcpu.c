/*
 * vCPU threads. Each runs KVM_RUN in a loop and handles port I/O and MMIO exits by
 * dispatching them on the machine's buses. To stop a thread, the main thread sets
 * the request under the lock, sets the vCPU's immediate_exit and sends SIGUSR1:
 * whichever of the two the thread meets first makes KVM_RUN return -EINTR.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/log.h"
#include "vmm/vmm.h"

struct vcpu_thread_arg {
	struct vmm *v;
	unsigned id;
};

static struct vcpu_thread_arg thread_args[MACHINE_MAX_CPUS];

static void kick_signal_handler(int sig)
{
	(void)sig;
}

static void wake_main_loop(struct vmm *v)
{
	uint64_t one = 1;

	if (write(v->wake_fd, &one, sizeof(one)) < 0)
		log_warn("vmm", "cannot wake the main loop: %s", strerror(errno));
}

void vmm_request_exit(struct vmm *v, int status)
{
	pthread_mutex_lock(&v->lock);
	if (!v->stopping) {
		v->stopping = true;
		v->exit_status = status;
	}
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->lock);

	for (unsigned i = 0; i < v->m.cfg.nr_cpus; i++) {
		if (!v->thread_started[i])
			continue;
		__atomic_store_n(&v->m.vcpus[i].run->immediate_exit, 1, __ATOMIC_SEQ_CST);
		pthread_kill(v->threads[i], SIGUSR1);
	}
	wake_main_loop(v);
}

static void handle_io(struct vmm *v, struct kvm_run *run)
{
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool is_write = run->io.direction == KVM_EXIT_IO_OUT;

	/* String I/O repeats the access `count` times over consecutive buffer slots. */
	for (uint32_t i = 0; i < run->io.count; i++) {
		bus_dispatch(&v->m.pio, run->io.port, data, run->io.size, is_write);
		data += run->io.size;
	}
}

static void handle_mmio(struct vmm *v, struct kvm_run *run)
{
	uint32_t len = run->mmio.len;

	if (len > sizeof(run->mmio.data))
		len = sizeof(run->mmio.data);
	bus_dispatch(&v->m.mmio, run->mmio.phys_addr, run->mmio.data, len, run->mmio.is_write);
}

/*
 * Waits here while a pause is requested. An I/O exit is only complete once KVM_RUN
 * has been re-entered (an IN's value lands in RAX then), so before parking the
 * thread re-enters once with immediate_exit set, which finishes the access and
 * returns at once.
 */
static bool vcpu_pause_point(struct vmm *v, struct kvm_vcpu *vcpu, bool io_pending)
{
	bool stop;

	pthread_mutex_lock(&v->lock);
	if (v->pause_requested && !v->stopping && io_pending) {
		pthread_mutex_unlock(&v->lock);
		__atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
		kvm_vcpu_run(vcpu);
		pthread_mutex_lock(&v->lock);
	}
	/*
	 * Broadcast once on arrival only: parked threads share `cond`, so one that
	 * broadcast after every wake-up would wake the others, which would wake it in
	 * turn, and paused vCPUs would spin on the lock instead of sleeping.
	 */
	if (v->pause_requested && !v->stopping) {
		v->nr_parked++;
		pthread_cond_broadcast(&v->cond);
		while (v->pause_requested && !v->stopping)
			pthread_cond_wait(&v->cond, &v->lock);
		v->nr_parked--;
	}
	stop = v->stopping;
	__atomic_store_n(&vcpu->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&v->lock);
	return stop;
}

static void *vcpu_thread(void *opaque)
{
	struct vcpu_thread_arg *arg = opaque;
	struct vmm *v = arg->v;
	struct kvm_vcpu *vcpu = &v->m.vcpus[arg->id];
	struct kvm_run *run = vcpu->run;
	bool io_pending = false;
	char name[16];

	snprintf(name, sizeof(name), "vcpu%u", arg->id);
	pthread_setname_np(pthread_self(), name);

	while (!vcpu_pause_point(v, vcpu, io_pending)) {
		int ret = kvm_vcpu_run(vcpu);

		io_pending = false;
		if (ret == -EINTR || ret == -EAGAIN)
			continue;
		if (ret < 0) {
			log_error("vcpu", "vCPU %u: KVM_RUN failed: %s", arg->id, strerror(-ret));
			vmm_request_exit(v, VMM_EXIT_CRASH);
			break;
		}
		switch (run->exit_reason) {
		case KVM_EXIT_IO:
			handle_io(v, run);
			io_pending = true;
			break;
		case KVM_EXIT_MMIO:
			handle_mmio(v, run);
			io_pending = true;
			break;
		case KVM_EXIT_INTR:
			break;
		case KVM_EXIT_SHUTDOWN:
			/* A triple fault resets a PC; Linux's last-resort reboot method relies on it. */
			log_info("vcpu", "vCPU %u: shutdown (triple fault): treating it as a reset",
				 arg->id);
			vmm_request_exit(v, VMM_EXIT_REBOOT);
			break;
		case KVM_EXIT_SYSTEM_EVENT:
			vmm_request_exit(v, run->system_event.type == KVM_SYSTEM_EVENT_RESET
						    ? VMM_EXIT_REBOOT
						    : VMM_EXIT_POWEROFF);
			break;
		case KVM_EXIT_HLT:
			/* Only without an in-kernel irqchip; a halted CPU with IF=0 stays halted. */
			log_error("vcpu", "vCPU %u halted for good", arg->id);
			vmm_request_exit(v, VMM_EXIT_CRASH);
			break;
		case KVM_EXIT_FAIL_ENTRY:
			log_error("vcpu", "vCPU %u: entry failed, hardware reason 0x%llx", arg->id,
				  (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
			vmm_request_exit(v, VMM_EXIT_CRASH);
			break;
		case KVM_EXIT_INTERNAL_ERROR:
			log_error("vcpu", "vCPU %u: KVM internal error, suberror %u", arg->id,
				  run->internal.suberror);
			vmm_request_exit(v, VMM_EXIT_CRASH);
			break;
		default:
			log_warn_rl("vcpu", "vCPU %u: unhandled exit reason %u", arg->id,
				    run->exit_reason);
			break;
		}
	}
	return NULL;
}

int vmm_start_vcpus(struct vmm *v)
{
	struct sigaction sa = { .sa_handler = kick_signal_handler };
	sigset_t set;
	int ret;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);

	/* vCPU threads take only SIGUSR1; the main thread handles the rest. */
	sigfillset(&set);
	sigdelset(&set, SIGUSR1);
	sigdelset(&set, SIGSEGV);
	sigdelset(&set, SIGBUS);
	sigdelset(&set, SIGFPE);
	sigdelset(&set, SIGILL);
	for (unsigned i = 0; i < v->m.cfg.nr_cpus; i++) {
		sigset_t old;

		thread_args[i] = (struct vcpu_thread_arg){ .v = v, .id = i };
		pthread_sigmask(SIG_SETMASK, &set, &old);
		ret = pthread_create(&v->threads[i], NULL, vcpu_thread, &thread_args[i]);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (ret) {
			vmm_request_exit(v, VMM_EXIT_ERROR);
			return -ret;
		}
		v->thread_started[i] = true;
	}
	return 0;
}

bool vmm_is_stopping(struct vmm *v)
{
	bool stopping;

	pthread_mutex_lock(&v->lock);
	stopping = v->stopping;
	pthread_mutex_unlock(&v->lock);
	return stopping;
}

void vmm_join_vcpus(struct vmm *v)
{
	for (unsigned i = 0; i < v->m.cfg.nr_cpus; i++) {
		if (v->thread_started[i])
			pthread_join(v->threads[i], NULL);
		v->thread_started[i] = false;
	}
}

void vmm_park_vcpus(struct vmm *v)
{
	pthread_mutex_lock(&v->lock);
	v->pause_requested = true;
	pthread_mutex_unlock(&v->lock);

	for (unsigned i = 0; i < v->m.cfg.nr_cpus; i++) {
		if (!v->thread_started[i])
			continue;
		__atomic_store_n(&v->m.vcpus[i].run->immediate_exit, 1, __ATOMIC_SEQ_CST);
		pthread_kill(v->threads[i], SIGUSR1);
	}

	pthread_mutex_lock(&v->lock);
	while (v->nr_parked < v->m.cfg.nr_cpus && !v->stopping)
		pthread_cond_wait(&v->cond, &v->lock);
	pthread_mutex_unlock(&v->lock);
}

void vmm_unpark_vcpus(struct vmm *v)
{
	pthread_mutex_lock(&v->lock);
	v->pause_requested = false;
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->lock);
}
