/*
 * cryo bremove: delete a stopped VM, its directory, its checkpoints and its hibernation
 * image. Disk images named by disk= are not touched: they belong to the user.
 */
#include "cli/cli.h"

#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct arg_spec bremove_args[] = {
	{ "jname", ARG_NAME, ARG_REQUIRED, NULL, "name of the VM" },
	{ .key = NULL },
};

int cmd_bremove(struct cli *cli, int argc, char **argv)
{
	struct vm_paths paths;
	struct vm_def *def = NULL;
	struct args a;
	const char *name;
	int lock = -1, ret, status = CLI_EXIT_ERROR;

	ret = cli_parse_args(&a, "bremove", "Delete a stopped VM with its checkpoints and "
			     "hibernation image. Disk images are kept.", bremove_args, argc, argv,
			     0);
	if (ret) {
		args_free(&a);
		return ret > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
	}
	name = args_get(&a, "jname");

	def = malloc(sizeof(*def));
	if (!def || cli_find_vm(cli, "bremove", name, def, &paths))
		goto out;
	if (cli_lock_vm("bremove", &paths, name, &lock))
		goto out;
	if (vm_instance_alive(&paths)) {
		log_error("bremove", "%s is running; stop it first with 'cryo bstop jname=%s'",
			  name, name);
		goto out;
	}

	ret = registry_vm_remove(cli->reg, name);
	if (ret) {
		log_error("bremove", "cannot remove %s from the registry: %s", name,
			  registry_errmsg(cli->reg));
		goto out;
	}
	ret = remove_tree(paths.dir);
	if (ret) {
		log_error("bremove", "%s was removed from the registry, but deleting %s failed: %s",
			  name, paths.dir, strerror(-ret));
		goto out;
	}
	printf("%s removed\n", name);
	status = CLI_EXIT_OK;

out:
	vm_unlock(lock);
	free(def);
	args_free(&a);
	return status;
}
