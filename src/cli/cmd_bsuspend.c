/*
 * cryo bsuspend: hibernate a VM. cryo-vmm writes VMDIR/hibernate.ckp and exits with status 3;
 * the next plain bstart resumes from that image.
 */
#include "cli/cli.h"

#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#define SUSPEND_EXIT_WAIT_MS 30000

static const struct arg_spec bsuspend_args[] = {
	{ "jname", ARG_NAME, ARG_REQUIRED, NULL, "name of the VM" },
	{ .key = NULL },
};

static int bsuspend_run(struct cli *cli, const char *name)
{
	struct vm_paths paths;
	struct vm_def *def;
	int lock = -1, ret;

	def = malloc(sizeof(*def));
	if (!def)
		return -ENOMEM;
	ret = cli_find_vm(cli, "bsuspend", name, def, &paths);
	if (ret)
		goto out;
	ret = cli_lock_vm("bsuspend", &paths, name, &lock);
	if (ret)
		goto out;
	if (!vm_instance_alive(&paths)) {
		log_error("bsuspend", "%s is not running; only a running VM can be suspended", name);
		ret = -ESRCH;
		goto out;
	}

	ret = cli_checkpoint("bsuspend", name, &paths, paths.hibernate, "exit");
	if (ret)
		goto out;
	if (vm_wait_exit(&paths, SUSPEND_EXIT_WAIT_MS, false, NULL))
		log_warn("bsuspend", "%s has not exited %d s after writing its hibernation image",
			 name, SUSPEND_EXIT_WAIT_MS / 1000);
	printf("%s suspended to %s\n", name, paths.hibernate);

out:
	vm_unlock(lock);
	free(def);
	return ret;
}

int cmd_bsuspend(struct cli *cli, int argc, char **argv)
{
	struct args a;
	int ret;

	ret = cli_parse_args(&a, "bsuspend", "Hibernate a VM: write its state to the hibernation "
			     "image and exit. 'cryo bstart' resumes it.", bsuspend_args, argc,
			     argv, 0);
	if (ret) {
		args_free(&a);
		return ret > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
	}
	ret = bsuspend_run(cli, args_get(&a, "jname"));
	args_free(&a);
	return ret ? CLI_EXIT_ERROR : CLI_EXIT_OK;
}
