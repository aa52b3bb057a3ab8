/*
 * cryo: the VM manager. Each invocation runs one command and exits; the commands follow
 * CBSD's bhyve commands (bcreate, bstart, bls, ...) with key=value arguments.
 */
#include "cli/cli.h"

#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct command {
	const char *name;
	int (*run)(struct cli *cli, int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{ "bcreate", cmd_bcreate, "define a new VM" },
	{ "bremove", cmd_bremove, "delete a stopped VM and its checkpoints" },
	{ "bstart", cmd_bstart, "start a VM, from a checkpoint or its hibernation image" },
	{ "bstop", cmd_bstop, "shut a VM down (ACPI, then forced)" },
	{ "bls", cmd_bls, "list VMs and their state" },
	{ "bcheckpoint", cmd_bcheckpoint, "create, list or destroy checkpoints of a VM" },
	{ "bsuspend", cmd_bsuspend, "hibernate a VM: checkpoint it and power it off" },
	{ "bpause", cmd_bpause, "pause or resume a VM in memory" },
	{ "bconsole", cmd_bconsole, "attach the terminal to a VM's serial console" },
};

static void usage(void)
{
	printf("usage: cryo [--home DIR] COMMAND key=value...\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		printf("  %-12s %s\n", commands[i].name, commands[i].summary);
	printf("\nThe state directory is --home DIR, else $CRYO_HOME, else %s.\n"
	       "Run 'cryo COMMAND --help' for the keys of a command.\n", CLI_DEFAULT_HOME);
}

struct registry *cli_registry(struct cli *cli)
{
	char path[PATH_MAX + 32], err[512];
	int ret;

	if (cli->reg)
		return cli->reg;
	ret = mkdir_parents(cli->home, 0750);
	if (ret) {
		log_error("cryo", "cannot create state directory %s: %s", cli->home,
			  strerror(-ret));
		return NULL;
	}
	snprintf(path, sizeof(path), "%s/registry.sqlite", cli->home);
	ret = registry_open(&cli->reg, path, err, sizeof(err));
	if (ret) {
		log_error("cryo", "%s", err);
		cli->reg = NULL;
	}
	return cli->reg;
}

int cli_find_vm(struct cli *cli, const char *command, const char *name, struct vm_def *def,
		struct vm_paths *paths)
{
	struct registry *reg = cli_registry(cli);
	int ret;

	if (!reg)
		return -EIO;
	ret = registry_vm_get(reg, name, def);
	if (ret == -ENOENT) {
		log_error(command, "No such domains: %s", name);
		return ret;
	}
	if (ret) {
		log_error(command, "cannot read %s from the registry: %s", name,
			  registry_errmsg(reg));
		return ret;
	}
	ret = vm_paths_init(paths, cli->home, name);
	if (ret)
		log_error(command, "state directory %s is too long for the socket paths of %s; "
			  "use a shorter --home", cli->home, name);
	return ret;
}

int cli_lock_vm(const char *command, const struct vm_paths *paths, const char *name, int *fd)
{
	char holder[128] = "";
	int ret = vm_lock(paths, command, fd, holder, sizeof(holder));

	if (ret == -EBUSY)
		log_error(command, "a checkpoint of %s is in progress (cryo %s); try again when it "
			  "has finished", name, holder);
	else if (ret)
		log_error(command, "cannot lock %s: %s", paths->lock, strerror(-ret));
	return ret;
}

int cli_parse_args(struct args *a, const char *command, const char *summary,
		   const struct arg_spec *spec, int argc, char **argv, unsigned options)
{
	if (args_parse(a, spec, argc, argv, options)) {
		log_error(command, "%s", a->err);
		return -EINVAL;
	}
	if (a->help) {
		args_print_help(command, summary, spec, options);
		return 1;
	}
	return 0;
}

bool cli_interactive(void)
{
	return isatty(STDOUT_FILENO);
}

static int cli_set_home(struct cli *cli, const char *home)
{
	char abs[PATH_MAX];
	size_t len;

	/* The supervisor runs from "/", so a relative state directory is made absolute here. */
	if (home[0] != '/') {
		if (!getcwd(abs, sizeof(abs)) || strlen(abs) + 1 + strlen(home) >= sizeof(abs)) {
			log_error("cryo", "cannot resolve state directory '%s'", home);
			return -EINVAL;
		}
		strcat(abs, "/");
		strcat(abs, home);
		home = abs;
	}
	len = strlen(home);
	while (len > 1 && home[len - 1] == '/')
		len--;
	if (len == 0 || len >= sizeof(cli->home)) {
		log_error("cryo", "invalid state directory '%s'", home);
		return -EINVAL;
	}
	memcpy(cli->home, home, len);
	cli->home[len] = '\0';
	return 0;
}

int main(int argc, char **argv)
{
	const char *home = getenv("CRYO_HOME");
	struct cli cli = { .reg = NULL };
	int i = 1, status;

	log_init_from_env();

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage();
			return CLI_EXIT_OK;
		} else if (strcmp(argv[i], "--home") == 0 && i + 1 < argc) {
			home = argv[++i];
		} else if (strncmp(argv[i], "--home=", 7) == 0) {
			home = argv[i] + 7;
		} else {
			log_error("cryo", "unknown option %s (see cryo --help)", argv[i]);
			return CLI_EXIT_USAGE;
		}
	}
	if (i == argc) {
		usage();
		return CLI_EXIT_USAGE;
	}
	if (cli_set_home(&cli, home && *home ? home : CLI_DEFAULT_HOME))
		return CLI_EXIT_USAGE;

	for (size_t c = 0; c < sizeof(commands) / sizeof(commands[0]); c++) {
		if (strcmp(argv[i], commands[c].name) != 0)
			continue;
		status = commands[c].run(&cli, argc - i - 1, argv + i + 1);
		registry_close(cli.reg);
		return status;
	}
	log_error("cryo", "unknown command '%s' (see cryo --help)", argv[i]);
	return CLI_EXIT_USAGE;
}
