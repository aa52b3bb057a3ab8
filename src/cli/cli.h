/*
 * What every cryo command shares: the state directory, the registry (opened on first use)
 * and the lookup of a VM by name with the CBSD-style error for an unknown one.
 */
#ifndef CRYO_CLI_CLI_H
#define CRYO_CLI_CLI_H

#include "cli/args.h"
#include "cli/registry.h"
#include "cli/vm.h"

#include <stdbool.h>

#define CLI_DEFAULT_HOME "/var/lib/cryo"

/* Exit statuses of cryo. */
enum cli_exit {
	CLI_EXIT_OK = 0,
	CLI_EXIT_ERROR = 1,	/* the command failed */
	CLI_EXIT_USAGE = 2,	/* invalid arguments */
};

struct cli {
	char home[PATH_MAX];
	struct registry *reg;	/* NULL until cli_registry() */
};

/* The registry, opened (and created) on the first call; NULL after logging an error. */
struct registry *cli_registry(struct cli *cli);

/*
 * Read VM name from the registry and fill in its paths. Logs "No such domains: NAME" for an
 * unknown one. Returns 0 or a negative errno.
 */
int cli_find_vm(struct cli *cli, const char *command, const char *name, struct vm_def *def,
		struct vm_paths *paths);

/* Take the command lock of a VM, logging why when that fails. */
int cli_lock_vm(const char *command, const struct vm_paths *paths, const char *name, int *fd);

/*
 * Parse the arguments of a command and handle --help. Returns 0 to go on, 1 when help was
 * printed, or -EINVAL after logging the error.
 */
int cli_parse_args(struct args *a, const char *command, const char *summary,
		   const struct arg_spec *spec, int argc, char **argv, unsigned options);

/*
 * Ask cryo-vmm for a checkpoint into dir (then= run, poweroff or exit) and wait until it is
 * durable, drawing progress on a terminal. Logs failures. Returns 0 or a negative errno.
 */
int cli_checkpoint(const char *command, const char *name, const struct vm_paths *paths,
		   const char *dir, const char *then);

/* Whether stdout is a terminal (progress and countdowns are drawn only then). */
bool cli_interactive(void);

int cmd_bcreate(struct cli *cli, int argc, char **argv);
int cmd_bremove(struct cli *cli, int argc, char **argv);
int cmd_bstart(struct cli *cli, int argc, char **argv);
int cmd_bstop(struct cli *cli, int argc, char **argv);
int cmd_bls(struct cli *cli, int argc, char **argv);
int cmd_bcheckpoint(struct cli *cli, int argc, char **argv);
int cmd_bsuspend(struct cli *cli, int argc, char **argv);
int cmd_bpause(struct cli *cli, int argc, char **argv);
int cmd_bconsole(struct cli *cli, int argc, char **argv);

/* Start the supervisor of a VM in the background (cmd_bstart.c). */
int supervisor_spawn(struct cli *cli, const struct vm_def *def, const struct vm_paths *paths,
		     const char *restore_dir, int run_lock_fd, int cmd_lock_fd);

#endif
