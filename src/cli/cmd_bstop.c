/*
 * cryo bstop: shut a VM down in three steps, each only when the one before did not work:
 * the ACPI power button ("stop", skipped with noacpi=1) with timeout= seconds for the guest,
 * then "stop force=1", then SIGKILL to cryo-vmm by its recorded pid once the pid file's
 * start time shows the pid still belongs to it.
 */
#include "cli/cli.h"

#include "cli/control.h"
#include "common/log.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BSTOP_DEFAULT_TIMEOUT_S 30
#define BSTOP_FORCE_WAIT_MS 5000
/*
 * After SIGKILL the process may still need seconds to end: when its memory image
 * was deleted while mapped (a resumed hibernation image), the kernel frees the
 * file's blocks as the last mapping goes, one extent at a time.
 */
#define BSTOP_KILL_WAIT_MS 60000
#define BSTOP_CONTROL_TIMEOUT_MS 5000

static const struct arg_spec bstop_args[] = {
	{ "jname", ARG_NAME, ARG_REQUIRED, NULL, "name of the VM" },
	{ "noacpi", ARG_BOOL, 0, NULL, "1: skip the ACPI shutdown and power off at once" },
	{ "timeout", ARG_UINT0, 0, NULL, "seconds the guest gets to shut down (default 30)" },
	{ .key = NULL },
};

static bool bstop_acpi(const char *name, const struct vm_paths *paths, unsigned timeout_s)
{
	char reply[CONTROL_LINE_MAX + 1], what[128];
	struct vm_runtime rt;
	int ret;

	vm_probe(paths, &rt);
	if (rt.status == VM_PAUSED) {
		/* A paused guest cannot see the power button. */
		printf("%s is paused; resuming it so that the guest can shut down\n", name);
		control_call(paths->control, "resume", reply, sizeof(reply),
			     BSTOP_CONTROL_TIMEOUT_MS);
	}

	ret = control_call(paths->control, "stop", reply, sizeof(reply), BSTOP_CONTROL_TIMEOUT_MS);
	if (ret) {
		log_warn("bstop", "ACPI shutdown request to %s failed: %s", name,
			 ret == -EREMOTEIO ? reply : strerror(-ret));
		return false;
	}
	snprintf(what, sizeof(what), "Waiting for %s to shut down", name);
	if (vm_wait_exit(paths, (int)timeout_s * 1000, cli_interactive(), what) == 0)
		return true;
	printf("%s did not shut down within %u s; forcing it off\n", name, timeout_s);
	return false;
}

static bool bstop_force(const char *name, const struct vm_paths *paths)
{
	char reply[CONTROL_LINE_MAX + 1];
	int ret;

	ret = control_call(paths->control, "stop force=1", reply, sizeof(reply),
			   BSTOP_CONTROL_TIMEOUT_MS);
	if (ret)
		log_warn("bstop", "forced stop request to %s failed: %s", name,
			 ret == -EREMOTEIO ? reply : strerror(-ret));
	return vm_wait_exit(paths, BSTOP_FORCE_WAIT_MS, false, NULL) == 0;
}

static bool bstop_kill(const char *name, const struct vm_paths *paths)
{
	pid_t pid;

	if (vm_read_pid(paths, &pid) == 0) {
		log_warn("bstop", "killing cryo-vmm of %s (pid %d)", name, (int)pid);
		kill(pid, SIGKILL);
	}
	return vm_wait_exit(paths, BSTOP_KILL_WAIT_MS, false, NULL) == 0;
}

static int bstop_run(struct cli *cli, const struct args *a)
{
	const char *name = args_get(a, "jname");
	unsigned timeout_s = (unsigned)args_get_u64(a, "timeout", BSTOP_DEFAULT_TIMEOUT_S);
	bool noacpi = args_get_u64(a, "noacpi", 0) == 1;
	struct vm_paths paths;
	struct vm_def *def;
	int lock = -1, ret;
	bool stopped;

	def = malloc(sizeof(*def));
	if (!def)
		return -ENOMEM;
	ret = cli_find_vm(cli, "bstop", name, def, &paths);
	if (ret)
		goto out;
	ret = cli_lock_vm("bstop", &paths, name, &lock);
	if (ret)
		goto out;

	vm_clean_stale(&paths);
	if (!vm_instance_alive(&paths)) {
		log_error("bstop", "%s is not running", name);
		ret = -ESRCH;
		goto out;
	}

	stopped = !noacpi && timeout_s > 0 && bstop_acpi(name, &paths, timeout_s);
	if (!stopped)
		stopped = bstop_force(name, &paths);
	if (!stopped)
		stopped = bstop_kill(name, &paths);
	if (!stopped) {
		log_error("bstop", "%s is still running after SIGKILL; see %s", name, paths.log);
		ret = -ETIMEDOUT;
		goto out;
	}
	vm_clean_stale(&paths);
	printf("%s stopped\n", name);

out:
	vm_unlock(lock);
	free(def);
	return ret;
}

int cmd_bstop(struct cli *cli, int argc, char **argv)
{
	struct args a;
	int ret;

	ret = cli_parse_args(&a, "bstop", "Shut a VM down: ACPI power button, then a forced "
			     "power-off, then SIGKILL.", bstop_args, argc, argv, 0);
	if (ret) {
		args_free(&a);
		return ret > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
	}
	ret = bstop_run(cli, &a);
	args_free(&a);
	return ret ? CLI_EXIT_ERROR : CLI_EXIT_OK;
}
