/*
 * cryo-vmm: runs one VM until the guest powers off, reboots, is stopped or is
 * hibernated. The main thread owns the event loop (signals, console, control
 * socket); each vCPU has its own thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "common/log.h"
#include "vmm/checkpoint.h"
#include "vmm/console.h"
#include "vmm/control.h"
#include "vmm/options.h"
#include "vmm/vmm.h"

static struct vmm the_vmm;

static void on_poweroff(void *opaque)
{
	log_info("vmm", "guest powered off");
	vmm_request_exit(opaque, VMM_EXIT_POWEROFF);
}

static void on_reset(void *opaque)
{
	log_info("vmm", "guest requested a reset");
	vmm_request_exit(opaque, VMM_EXIT_REBOOT);
}

static void on_test_result(void *opaque, uint32_t value)
{
	if (value > VMM_TEST_RESULT_MAX)
		value = VMM_TEST_RESULT_MAX;
	vmm_request_exit(opaque, VMM_EXIT_TEST_BASE + (int)value);
}

static void on_console_output(void *opaque, const uint8_t *buf, size_t len)
{
	struct vmm *v = opaque;

	if (v->console)
		console_output(v->console, buf, len);
}

static void on_wake(void *opaque, int fd, short revents)
{
	uint64_t count;

	if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		log_warn("vmm", "cannot read the wake-up eventfd: %s", strerror(errno));
}

static void on_signal(void *opaque, int fd, short revents)
{
	struct vmm *v = opaque;
	struct signalfd_siginfo si;

	if (read(fd, &si, sizeof(si)) != sizeof(si))
		return;
	if (si.ssi_signo == SIGTERM) {
		/* As bhyve does: SIGTERM asks the guest to shut down through the power button. */
		log_info("vmm", "SIGTERM: pressing the power button");
		if (v->state == VMM_PAUSED) {
			vmm_unpark_vcpus(v);
			v->state = VMM_RUNNING;
		}
		machine_power_button(&v->m);
	} else {
		log_info("vmm", "signal %u: stopping the VM at once", si.ssi_signo);
		vmm_request_exit(v, VMM_EXIT_POWEROFF);
	}
}

static int setup_signals(struct loop *loop, struct vmm *v)
{
	sigset_t set;
	int fd;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (fd < 0)
		return -errno;
	return loop_add(loop, fd, POLLIN, on_signal, v);
}

static int write_pidfile(const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -errno;
	fprintf(f, "%d\n", (int)getpid());
	return fclose(f) ? -errno : 0;
}

static bool is_stopping(struct vmm *v)
{
	bool stopping;

	pthread_mutex_lock(&v->lock);
	stopping = v->stopping;
	pthread_mutex_unlock(&v->lock);
	return stopping;
}

int main(int argc, char **argv)
{
	struct vmm *v = &the_vmm;
	struct machine_events ev = {
		.poweroff = on_poweroff,
		.reset = on_reset,
		.test_result = on_test_result,
		.console_output = on_console_output,
		.opaque = v,
	};
	struct vmm_options opts;
	struct loop loop;
	char err[1024] = "";
	int ret, status;

	log_init_from_env();
	ret = vmm_parse_options(argc, argv, &opts);
	if (ret != 0)
		return ret > 0 ? 0 : VMM_EXIT_ERROR;

	pthread_mutex_init(&v->lock, NULL);
	pthread_cond_init(&v->cond, NULL);
	loop_init(&loop);
	v->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (v->wake_fd < 0 || loop_add(&loop, v->wake_fd, POLLIN, on_wake, v) < 0 ||
	    setup_signals(&loop, v) < 0) {
		log_error("vmm", "cannot set up the event loop: %s", strerror(errno));
		return VMM_EXIT_ERROR;
	}

	if (opts.restore)
		ret = vmm_restore(v, &opts, &ev, err, sizeof(err));
	else {
		ret = machine_create(&v->m, &opts.cfg, &ev, err, sizeof(err));
		if (ret == 0) {
			ret = machine_boot(&v->m, err, sizeof(err));
			if (ret < 0)
				machine_destroy(&v->m);
		}
	}
	if (ret < 0) {
		log_error("vmm", "%s", err);
		return VMM_EXIT_ERROR;
	}

	v->console = console_create(opts.console, &loop, &v->m, err, sizeof(err));
	if (!v->console) {
		log_error("vmm", "%s", err);
		machine_destroy(&v->m);
		return VMM_EXIT_ERROR;
	}
	if (opts.control) {
		v->control = control_create(opts.control, &loop, v, err, sizeof(err));
		if (!v->control) {
			log_error("vmm", "%s", err);
			console_destroy(v->console);
			machine_destroy(&v->m);
			return VMM_EXIT_ERROR;
		}
	}
	if (opts.pidfile && write_pidfile(opts.pidfile) < 0)
		log_warn("vmm", "cannot write pid file %s: %s", opts.pidfile, strerror(errno));

	log_info("vmm", "%s VM: %u vCPUs, %llu MiB, pid %d", opts.restore ? "restored" : "starting",
		 v->m.cfg.nr_cpus, (unsigned long long)(v->m.cfg.mem_size >> 20), (int)getpid());
	if (vmm_start_vcpus(v) < 0)
		log_error("vmm", "cannot start the vCPU threads");

	while (!is_stopping(v)) {
		/* While typed input waits for room in the UART's FIFO, poll for it often. */
		int pending = console_flush_input(v->console);

		if (loop_run_once(&loop, pending ? 5 : -1) < 0)
			break;
	}

	control_wait_checkpoint(v);
	vmm_join_vcpus(v);
	status = v->exit_status;
	control_destroy(v->control);
	console_destroy(v->console);
	machine_destroy(&v->m);
	if (opts.pidfile)
		unlink(opts.pidfile);
	log_info("vmm", "exiting with status %d", status);
	return status;
}
