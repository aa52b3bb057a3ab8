/*
 * cryo bstart and the supervisor of a running VM.
 *
 * bstart forks twice (setsid between) so that the second child, the supervisor, is detached
 * from the terminal and reparented away from the caller. The supervisor runs cryo-vmm as
 * its child, starts it again from the VM definition when it exits with status 2 (the guest
 * rebooted), and otherwise records the exit status in the registry and exits. Both hold the
 * VM's run.lock through one inherited descriptor: every other command tests that lock
 * to find out whether the VM runs.
 *
 * bstart itself returns once the control socket replies to "status", or fails with the tail of
 * the VM's log when the instance dies first.
 */
#include "cli/cli.h"

#include "cli/ckpt_info.h"
#include "cli/control.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define START_TIMEOUT_MS 60000
#define START_POLL_MS 100
#define LOG_TAIL_BYTES 4096
/* Status of cryo-vmm for a guest reboot, from docs/CONTROL.md. */
#define VMM_EXIT_REBOOT 2
/* The supervisor's copy of run.lock is moved to this descriptor before the rest are closed. */
#define SUPERVISOR_RUN_LOCK_FD 3
#define VMM_ARGV_MAX (16 + 2 * VM_DISKS_MAX)

static const struct arg_spec bstart_args[] = {
	{ "jname", ARG_NAME, ARG_REQUIRED, NULL, "name of the VM" },
	{ "checkpoint", ARG_STRING, 0, NULL,
	  "start from this checkpoint: a name from 'bcheckpoint mode=list' or a path" },
	{ "fresh", ARG_BOOL, 0, NULL, "1: boot from the kernel, discarding a hibernation image" },
	{ .key = NULL },
};

static const char bstart_summary[] =
	"Start a VM in the background. A hibernated VM resumes from its image unless\n"
	"checkpoint= or fresh=1 is given. A damaged checkpoint, or one taken of another\n"
	"definition of the VM, is rejected before anything changes.";

/* Path of cryo-vmm: $CRYO_VMM, else next to this cryo binary, else found through $PATH. */
static void supervisor_find_vmm(char *out, size_t len)
{
	const char *env = getenv("CRYO_VMM");
	char self[PATH_MAX];
	ssize_t n;

	if (env && *env) {
		snprintf(out, len, "%s", env);
		return;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		snprintf(out, len, "%s/cryo-vmm", dirname(self));
		if (access(out, X_OK) == 0)
			return;
	}
	snprintf(out, len, "cryo-vmm");
}

struct vmm_argv {
	char *argv[VMM_ARGV_MAX];
	size_t n;
	char memory[32], cpus[16];
	char console[PATH_MAX + 16];
	char disks[VM_DISKS_MAX][PATH_MAX + 4];
};

static void vmm_argv_push(struct vmm_argv *v, const char *a, const char *b)
{
	v->argv[v->n++] = (char *)a;
	if (b)
		v->argv[v->n++] = (char *)b;
	v->argv[v->n] = NULL;
}

/* Build the cryo-vmm command line: from restore_dir when given, else from the definition. */
static void vmm_argv_build(struct vmm_argv *v, const char *vmm, const struct vm_def *def,
			   const struct vm_paths *paths, const char *restore_dir)
{
	v->n = 0;
	vmm_argv_push(v, vmm, NULL);
	snprintf(v->console, sizeof(v->console), "socket:%s", paths->console);
	vmm_argv_push(v, "--console", v->console);
	vmm_argv_push(v, "--control", paths->control);
	if (restore_dir) {
		vmm_argv_push(v, "--restore", restore_dir);
		return;
	}

	snprintf(v->memory, sizeof(v->memory), "%llu", (unsigned long long)def->ram_mib);
	snprintf(v->cpus, sizeof(v->cpus), "%u", def->cpus);
	vmm_argv_push(v, "--kernel", def->kernel);
	if (def->initrd[0])
		vmm_argv_push(v, "--initrd", def->initrd);
	if (def->cmdline[0])
		vmm_argv_push(v, "--cmdline", def->cmdline);
	vmm_argv_push(v, "--memory", v->memory);
	vmm_argv_push(v, "--cpus", v->cpus);
	for (size_t i = 0; i < def->ndisks; i++) {
		snprintf(v->disks[i], sizeof(v->disks[i]), "%s%s", def->disks[i].path,
			 def->disks[i].readonly ? ",ro" : "");
		vmm_argv_push(v, "--disk", v->disks[i]);
	}
}

static int exit_status_of(int wstatus)
{
	if (WIFEXITED(wstatus))
		return WEXITSTATUS(wstatus);
	if (WIFSIGNALED(wstatus))
		return 128 + WTERMSIG(wstatus);
	return 255;
}

static void supervisor_record_exit(const char *home, const char *name, int status)
{
	char path[PATH_MAX + 32], err[256];
	struct registry *reg;
	int ret;

	snprintf(path, sizeof(path), "%s/registry.sqlite", home);
	ret = registry_open(&reg, path, err, sizeof(err));
	if (ret) {
		log_error("supervisor", "cannot record the exit of %s: %s", name, err);
		return;
	}
	ret = registry_vm_set_exit(reg, name, status, time(NULL));
	if (ret)
		log_error("supervisor", "cannot record the exit of %s: %s", name,
			  registry_errmsg(reg));
	registry_close(reg);
}

/* Run cryo-vmm until it exits with anything but a reboot; never returns. */
static void supervisor_run(const char *home, const struct vm_def *def,
			   const struct vm_paths *paths, const char *restore_dir)
{
	struct vmm_argv *v = malloc(sizeof(*v));
	char vmm[PATH_MAX];
	int status = 1;

	if (!v) {
		log_error("supervisor", "out of memory");
		_exit(1);
	}
	supervisor_find_vmm(vmm, sizeof(vmm));

	for (;;) {
		time_t started = time(NULL);
		int wstatus, ret;
		pid_t pid;

		vmm_argv_build(v, vmm, def, paths, restore_dir);
		unlink(paths->control);
		unlink(paths->console);
		log_info("supervisor", "starting %s for %s%s%s", vmm, def->name,
			 restore_dir ? " from " : "", restore_dir ? restore_dir : "");

		pid = fork();
		if (pid < 0) {
			log_error("supervisor", "fork failed: %s", strerror(errno));
			break;
		}
		if (pid == 0) {
			execvp(v->argv[0], v->argv);
			log_error("supervisor", "cannot run %s: %s (set CRYO_VMM to its path)",
				  v->argv[0], strerror(errno));
			_exit(127);
		}

		ret = vm_write_pid(paths, pid);
		if (ret)
			log_warn("supervisor", "cannot write %s: %s", paths->pid, strerror(-ret));
		while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
			;
		status = exit_status_of(wstatus);
		log_info("supervisor", "cryo-vmm pid %d of %s exited with status %d", (int)pid,
			 def->name, status);
		if (status != VMM_EXIT_REBOOT)
			break;

		log_info("supervisor", "guest %s rebooted; booting it again", def->name);
		restore_dir = NULL;
		/* A guest that reboots at once in a loop would otherwise spin the host CPU. */
		if (time(NULL) - started < 1)
			sleep(1);
	}

	unlink(paths->pid);
	unlink(paths->control);
	unlink(paths->console);
	supervisor_record_exit(home, def->name, status);
	_exit(0);
}

/* Set up the detached process: its own session, stdin from /dev/null, output to the log. */
static int supervisor_detach(const struct vm_paths *paths, int run_lock_fd)
{
	int null_fd, log_fd;

	null_fd = open("/dev/null", O_RDONLY);
	log_fd = open(paths->log, O_WRONLY | O_APPEND | O_CREAT, 0640);
	if (null_fd < 0 || log_fd < 0)
		return -errno;
	if (dup2(null_fd, STDIN_FILENO) < 0 || dup2(log_fd, STDOUT_FILENO) < 0 ||
	    dup2(log_fd, STDERR_FILENO) < 0)
		return -errno;
	if (dup2(run_lock_fd, SUPERVISOR_RUN_LOCK_FD) < 0)
		return -errno;
	/* Drops the caller's lock file and registry descriptors; cryo-vmm inherits the rest. */
	for (int fd = SUPERVISOR_RUN_LOCK_FD + 1; fd < 1024; fd++)
		close(fd);
	if (chdir("/") < 0)
		return -errno;
	signal(SIGHUP, SIG_IGN);
	return 0;
}

int supervisor_spawn(struct cli *cli, const struct vm_def *def, const struct vm_paths *paths,
		     const char *restore_dir, int run_lock_fd, int cmd_lock_fd)
{
	int wstatus;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		if (setsid() < 0)
			_exit(1);
		pid = fork();
		if (pid != 0)
			_exit(pid < 0 ? 1 : 0);
		close(cmd_lock_fd);
		if (supervisor_detach(paths, run_lock_fd))
			_exit(1);
		supervisor_run(cli->home, def, paths, restore_dir);
	}

	while (waitpid(pid, &wstatus, 0) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return exit_status_of(wstatus) == 0 ? 0 : -ECHILD;
}

static void print_log_tail(const char *log, off_t from)
{
	char buf[LOG_TAIL_BYTES + 1], *line, *save;
	struct stat st;
	ssize_t n;
	int fd;

	fd = open(log, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		if (fd >= 0)
			close(fd);
		return;
	}
	if (st.st_size - from > LOG_TAIL_BYTES)
		from = st.st_size - LOG_TAIL_BYTES;
	n = pread(fd, buf, LOG_TAIL_BYTES, from);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';

	log_error("bstart", "last lines of %s:", log);
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		log_error("vm.log", "%s", line);
}

/*
 * Check a checkpoint before anything changes. The reader rejects a damaged, incomplete or
 * foreign one with a message naming the file and the fault. Then the VM definition saved in
 * it must equal def, because cryo-vmm --restore rebuilds the VM from the checkpoint and would
 * silently run the old definition. what names the image in messages.
 */
static int bstart_check_checkpoint(const struct vm_def *def, const char *dir, const char *what)
{
	char err[PATH_MAX + 256], diff[1024];
	struct ckpt_info info;
	struct vm_def *saved;
	int ret;

	saved = malloc(sizeof(*saved));
	if (!saved)
		return -ENOMEM;
	ret = ckpt_info_read(dir, &info, saved, err, sizeof(err));
	if (ret) {
		log_error("bstart", "cannot start %s from %s: %s", def->name, what, err);
		goto out;
	}
	if (!ckpt_info_same_definition(saved, def, diff, sizeof(diff))) {
		log_error("bstart", "cannot start %s from %s: the VM definition changed since the "
			  "checkpoint was taken: %s", def->name, what, diff);
		log_error("bstart", "start it with fresh=1, or define a VM that matches the "
			  "checkpoint");
		ret = -ESTALE;
	}
out:
	free(saved);
	return ret;
}

/* Resolve checkpoint=: a name in the VM's checkpoints/ folder, or a path when it has a '/'. */
static int bstart_find_checkpoint(const struct vm_def *def, const struct vm_paths *paths,
				  const char *arg, char *out, size_t len)
{
	char resolved[PATH_MAX];
	struct stat st;
	int ret;

	if (strchr(arg, '/'))
		snprintf(out, len, "%s", arg);
	else
		snprintf(out, len, "%s/%s.ckp", paths->checkpoints, arg);
	if (stat(out, &st) < 0) {
		log_error("bstart", "Checkpoint not found: %s", out);
		return -ENOENT;
	}
	ret = bstart_check_checkpoint(def, out, "the checkpoint");
	if (ret)
		return ret;
	/* The supervisor runs from "/", so a relative path would change meaning there. */
	if (!realpath(out, resolved)) {
		ret = -errno;
		log_error("bstart", "cannot resolve %s: %s", out, strerror(errno));
		return ret;
	}
	snprintf(out, len, "%s", resolved);
	if (strchr(out, ' ')) {
		log_error("bstart", "checkpoint path %s contains a space, which the control "
			  "protocol cannot carry", out);
		return -EINVAL;
	}
	printf("Checkpoint found, starting from: %s\n", out);
	return 0;
}

/* Wait until cryo-vmm responds on its control socket, or the instance dies. */
static int bstart_wait_ready(const struct vm_paths *paths, pid_t *pid)
{
	char reply[CONTROL_LINE_MAX + 1], value[32];

	for (int waited = 0; waited < START_TIMEOUT_MS; waited += START_POLL_MS) {
		if (!vm_instance_alive(paths))
			return -ECHILD;
		if (control_call(paths->control, "status", reply, sizeof(reply), 1000) == 0) {
			*pid = 0;
			if (control_reply_get(reply, "pid", value, sizeof(value)))
				*pid = (pid_t)atoi(value);
			return 0;
		}
		usleep(START_POLL_MS * 1000);
	}
	return -ETIMEDOUT;
}

static int bstart_choose_source(const struct args *a, const struct vm_def *def,
				const struct vm_paths *paths, char *restore, size_t len,
				bool *drop_hibernate)
{
	struct stat st;
	bool hibernated = stat(paths->hibernate, &st) == 0;
	const char *ckp = args_get(a, "checkpoint");
	bool fresh = args_get_u64(a, "fresh", 0) == 1;

	restore[0] = '\0';
	*drop_hibernate = false;
	if (ckp && fresh) {
		log_error("bstart", "checkpoint= and fresh=1 cannot be used together");
		return -EINVAL;
	}
	if (ckp) {
		int ret = bstart_find_checkpoint(def, paths, ckp, restore, len);

		if (ret)
			return ret;
	}

	if (hibernated && (ckp || fresh)) {
		printf("The hibernation image %s is discarded: starting %s\n", paths->hibernate,
		       ckp ? "from the checkpoint instead" : "fresh");
		*drop_hibernate = true;
	} else if (hibernated) {
		if (bstart_check_checkpoint(def, paths->hibernate, "its hibernation image")) {
			log_error("bstart", "'cryo bstart jname=%s fresh=1' boots it instead and "
				  "discards the image %s", def->name, paths->hibernate);
			return -EINVAL;
		}
		printf("Resuming from the hibernation image %s\n", paths->hibernate);
		snprintf(restore, len, "%s", paths->hibernate);
		*drop_hibernate = true;
	}
	return 0;
}

static int bstart_open_run_lock(const struct vm_paths *paths, int *fd)
{
	/* No O_CLOEXEC: the supervisor and cryo-vmm keep this descriptor, and the lock with it. */
	*fd = open(paths->run_lock, O_RDWR | O_CREAT, 0640);
	if (*fd < 0)
		return -errno;
	if (flock(*fd, LOCK_EX | LOCK_NB) < 0) {
		int ret = -errno;

		close(*fd);
		*fd = -1;
		return ret;
	}
	return 0;
}

static int bstart_run(struct cli *cli, const struct args *a)
{
	const char *name = args_get(a, "jname");
	char restore[PATH_MAX];
	struct vm_paths paths;
	struct vm_def *def;
	bool drop_hibernate;
	int lock = -1, run_lock = -1, ret;
	struct stat st;
	off_t log_start;
	pid_t pid = 0;

	def = malloc(sizeof(*def));
	if (!def)
		return -ENOMEM;
	ret = cli_find_vm(cli, "bstart", name, def, &paths);
	if (ret)
		goto out;
	ret = cli_lock_vm("bstart", &paths, name, &lock);
	if (ret)
		goto out;

	vm_clean_stale(&paths);
	if (vm_instance_alive(&paths)) {
		log_error("bstart", "%s is already running", name);
		ret = -EALREADY;
		goto out;
	}
	ret = bstart_choose_source(a, def, &paths, restore, sizeof(restore), &drop_hibernate);
	if (ret)
		goto out;
	ret = bstart_open_run_lock(&paths, &run_lock);
	if (ret) {
		log_error("bstart", "%s is already running (%s is locked)", name, paths.run_lock);
		goto out;
	}

	log_start = stat(paths.log, &st) == 0 ? st.st_size : 0;
	ret = supervisor_spawn(cli, def, &paths, restore[0] ? restore : NULL, run_lock, lock);
	close(run_lock);
	if (ret) {
		log_error("bstart", "cannot start the supervisor of %s: %s", name, strerror(-ret));
		goto out;
	}

	ret = bstart_wait_ready(&paths, &pid);
	if (ret == -ECHILD) {
		log_error("bstart", "cryo-vmm of %s exited during start", name);
		print_log_tail(paths.log, log_start);
		goto out;
	}
	if (ret) {
		log_error("bstart", "%s did not respond on %s within %d s; it may still be starting, "
			  "see %s", name, paths.control, START_TIMEOUT_MS / 1000, paths.log);
		goto out;
	}

	if (drop_hibernate) {
		ret = remove_tree(paths.hibernate);
		if (ret)
			log_warn("bstart", "cannot remove the hibernation image %s: %s",
				 paths.hibernate, strerror(-ret));
		ret = 0;
	}
	printf("%s started (pid %d)\n", name, (int)pid);

out:
	vm_unlock(lock);
	free(def);
	return ret;
}

int cmd_bstart(struct cli *cli, int argc, char **argv)
{
	struct args a;
	int ret;

	ret = cli_parse_args(&a, "bstart", bstart_summary, bstart_args, argc, argv, 0);
	if (ret) {
		args_free(&a);
		return ret > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
	}
	ret = bstart_run(cli, &a);
	args_free(&a);
	return ret ? CLI_EXIT_ERROR : CLI_EXIT_OK;
}
