/*
 * cryo bcreate: define a VM in the registry and create its directory. Paths are stored
 * absolute (resolved now), because cryo-vmm is later started from "/" by the supervisor.
 */
#include "cli/cli.h"

#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* A sanity bound, not a KVM limit: cryo-vmm checks what the host can run. */
#define BCREATE_CPUS_MAX 255

static const struct arg_spec bcreate_args[] = {
	{ "jname", ARG_NAME, ARG_REQUIRED, NULL, "name of the VM" },
	{ "ram", ARG_SIZE_MIB, ARG_REQUIRED, NULL, "guest RAM in MiB, or with a M/G suffix" },
	{ "cpus", ARG_UINT, ARG_REQUIRED, NULL, "number of vCPUs" },
	{ "kernel", ARG_STRING, ARG_REQUIRED, NULL, "kernel image (bzImage or PVH ELF)" },
	{ "initrd", ARG_STRING, 0, NULL, "initial ramdisk" },
	{ "cmdline", ARG_STRING, 0, NULL, "kernel command line (quote it)" },
	{ "disk", ARG_STRING, ARG_MULTI, NULL, "disk image PATH or PATH,ro; repeat for more" },
	{ "jconf", ARG_CONF, 0, NULL, "file with the same keys, key=value one per line" },
	{ .key = NULL },
};

static const char bcreate_summary[] =
	"Define a new VM. It is created stopped; start it with 'cryo bstart jname=NAME'.";

/* Resolve path to an absolute one in out; logs and fails when it is not a readable file. */
static int resolve_file(const char *key, const char *path, char *out, bool need_write)
{
	struct stat st;

	if (!realpath(path, out)) {
		log_error("bcreate", "invalid %s=%s: %s", key, path, strerror(errno));
		return -errno;
	}
	if (stat(out, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))) {
		log_error("bcreate", "invalid %s=%s: not a regular file or block device", key,
			  path);
		return -EINVAL;
	}
	if (access(out, need_write ? R_OK | W_OK : R_OK) < 0) {
		log_error("bcreate", "invalid %s=%s: %s", key, path, strerror(errno));
		return -errno;
	}
	if (strchr(out, ' ')) {
		log_error("bcreate", "invalid %s=%s: paths with spaces are not supported", key,
			  path);
		return -EINVAL;
	}
	return 0;
}

static int bcreate_disks(const struct args *a, struct vm_def *def)
{
	const char *disks[VM_DISKS_MAX + 1];
	size_t n = args_get_all(a, "disk", disks, VM_DISKS_MAX + 1);

	if (n > VM_DISKS_MAX) {
		log_error("bcreate", "too many disk= keys: at most %d", VM_DISKS_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX];
		const char *comma = strchr(disks[i], ',');
		size_t len = comma ? (size_t)(comma - disks[i]) : strlen(disks[i]);
		int ret;

		if (comma && strcmp(comma, ",ro") != 0) {
			log_error("bcreate", "invalid disk=%s: the only option is ',ro'", disks[i]);
			return -EINVAL;
		}
		if (len == 0 || len >= sizeof(path)) {
			log_error("bcreate", "invalid disk=%s: expected PATH or PATH,ro", disks[i]);
			return -EINVAL;
		}
		memcpy(path, disks[i], len);
		path[len] = '\0';

		def->disks[i].readonly = comma != NULL;
		ret = resolve_file("disk", path, def->disks[i].path, !def->disks[i].readonly);
		if (ret)
			return ret;
	}
	def->ndisks = n;
	return 0;
}

static int bcreate_fill(const struct args *a, struct vm_def *def)
{
	const char *initrd = args_get(a, "initrd");
	const char *cmdline = args_get(a, "cmdline");
	int ret;

	memset(def, 0, sizeof(*def));
	snprintf(def->name, sizeof(def->name), "%s", args_get(a, "jname"));
	def->ram_mib = args_get_u64(a, "ram", 0);
	def->cpus = (unsigned)args_get_u64(a, "cpus", 0);
	def->created = time(NULL);
	def->last_exit = -1;

	if (def->cpus > BCREATE_CPUS_MAX) {
		log_error("bcreate", "invalid cpus=%u: at most %d", def->cpus, BCREATE_CPUS_MAX);
		return -EINVAL;
	}
	ret = resolve_file("kernel", args_get(a, "kernel"), def->kernel, false);
	if (ret)
		return ret;
	if (initrd) {
		ret = resolve_file("initrd", initrd, def->initrd, false);
		if (ret)
			return ret;
	}
	if (cmdline) {
		if (strlen(cmdline) >= sizeof(def->cmdline)) {
			log_error("bcreate", "invalid cmdline=: longer than %zu bytes",
				  sizeof(def->cmdline) - 1);
			return -EINVAL;
		}
		snprintf(def->cmdline, sizeof(def->cmdline), "%s", cmdline);
	}
	return bcreate_disks(a, def);
}

int cmd_bcreate(struct cli *cli, int argc, char **argv)
{
	struct registry *reg;
	struct vm_paths paths;
	struct vm_def *def;
	struct args a;
	int ret, status = CLI_EXIT_ERROR;

	ret = cli_parse_args(&a, "bcreate", bcreate_summary, bcreate_args, argc, argv, 0);
	if (ret) {
		args_free(&a);
		return ret > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
	}

	def = malloc(sizeof(*def));
	if (!def) {
		log_error("bcreate", "out of memory");
		goto out;
	}
	ret = bcreate_fill(&a, def);
	if (ret) {
		status = CLI_EXIT_USAGE;
		goto out;
	}
	if (vm_paths_init(&paths, cli->home, def->name)) {
		log_error("bcreate", "state directory %s is too long for the socket paths of %s; "
			  "use a shorter --home", cli->home, def->name);
		goto out;
	}

	reg = cli_registry(cli);
	if (!reg)
		goto out;
	ret = registry_vm_add(reg, def);
	if (ret == -EEXIST) {
		log_error("bcreate", "VM %s already exists", def->name);
		goto out;
	}
	if (ret) {
		log_error("bcreate", "cannot add %s to the registry: %s", def->name,
			  registry_errmsg(reg));
		goto out;
	}

	ret = mkdir_parents(paths.checkpoints, 0750);
	if (ret) {
		log_error("bcreate", "cannot create %s: %s", paths.checkpoints, strerror(-ret));
		registry_vm_remove(reg, def->name);
		goto out;
	}
	printf("%s created: ram=%llu MiB, cpus=%u, disks=%zu\n", def->name,
	       (unsigned long long)def->ram_mib, def->cpus, def->ndisks);
	status = CLI_EXIT_OK;

out:
	free(def);
	args_free(&a);
	return status;
}
