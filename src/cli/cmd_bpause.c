/*
 * cryo bpause: pause a VM in memory (mode=on), resume it (mode=off), or toggle (mode=auto).
 */
#include "cli/cli.h"

#include "cli/control.h"
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BPAUSE_TIMEOUT_MS 10000

static const struct arg_spec bpause_args[] = {
	{ "jname", ARG_NAME, ARG_REQUIRED, NULL, "name of the VM" },
	{ "mode", ARG_ENUM, ARG_REQUIRED, "on|off|auto", "on: pause, off: resume, auto: toggle" },
	{ .key = NULL },
};

static int bpause_run(struct cli *cli, const char *name, const char *mode)
{
	char reply[CONTROL_LINE_MAX + 1];
	struct vm_paths paths;
	struct vm_runtime rt;
	struct vm_def *def;
	bool pause;
	int lock = -1, ret;

	def = malloc(sizeof(*def));
	if (!def)
		return -ENOMEM;
	ret = cli_find_vm(cli, "bpause", name, def, &paths);
	if (ret)
		goto out;
	ret = cli_lock_vm("bpause", &paths, name, &lock);
	if (ret)
		goto out;

	vm_probe(&paths, &rt);
	if (rt.status != VM_ON && rt.status != VM_PAUSED) {
		log_error("bpause", "%s is not running", name);
		ret = -ESRCH;
		goto out;
	}
	if (strcmp(mode, "auto") == 0)
		pause = rt.status == VM_ON;
	else
		pause = strcmp(mode, "on") == 0;

	ret = control_call(paths.control, pause ? "pause" : "resume", reply, sizeof(reply),
			   BPAUSE_TIMEOUT_MS);
	if (ret) {
		log_error("bpause", "%s of %s failed: %s", pause ? "pause" : "resume", name,
			  ret == -EREMOTEIO ? reply : strerror(-ret));
		goto out;
	}
	printf("%s %s\n", name, pause ? "paused" : "resumed");

out:
	vm_unlock(lock);
	free(def);
	return ret;
}

int cmd_bpause(struct cli *cli, int argc, char **argv)
{
	struct args a;
	int ret;

	ret = cli_parse_args(&a, "bpause", "Pause a VM in memory or resume it.", bpause_args, argc,
			     argv, 0);
	if (ret) {
		args_free(&a);
		return ret > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
	}
	ret = bpause_run(cli, args_get(&a, "jname"), args_get(&a, "mode"));
	args_free(&a);
	return ret ? CLI_EXIT_ERROR : CLI_EXIT_OK;
}
