/*
 * cryo bcheckpoint: create, list and destroy the named checkpoints of a VM, each a
 * directory VMDIR/checkpoints/NAME.ckp written by cryo-vmm. cli_checkpoint() here is also
 * the checkpoint step of bsuspend.
 */
#include "cli/cli.h"

#include "cli/ckpt_info.h"
#include "cli/control.h"
#include "common/log.h"
#include "snapshot/ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* Wait at most this long for any line from cryo-vmm while it writes a checkpoint. */
#define CHECKPOINT_IDLE_TIMEOUT_MS 300000
#define CHECKPOINT_POWEROFF_WAIT_MS 30000
#define CHECKPOINT_NAMES_MAX 4096
#define CKP_SUFFIX ".ckp"

static const struct arg_spec bcheckpoint_args[] = {
	{ "mode", ARG_ENUM, ARG_REQUIRED, "create|list|destroy|destroyall", "what to do" },
	{ "jname", ARG_NAME, ARG_REQUIRED, NULL, "name of the VM" },
	{ "name", ARG_STRING, 0, NULL, "checkpoint name (create: default 'checkpoint')" },
	{ "poweroff", ARG_BOOL, 0, NULL, "create, 1: power the VM off once the checkpoint is durable" },
	{ "suspend", ARG_BOOL, 0, NULL, "create, 1: the same as poweroff=1 (CBSD's newer name)" },
	{ "display", ARG_STRING, 0, NULL, "list: columns name,created,size" },
	{ .key = NULL },
};

static const char bcheckpoint_summary[] =
	"mode=create jname=NAME [name=CKP] [poweroff=1|suspend=1]: checkpoint a running or\n"
	"  paused VM, which then goes on as it was, or powers off with poweroff=1 (or suspend=1)\n"
	"mode=list jname=NAME [display=name,created,size] [--json]: list its checkpoints\n"
	"mode=destroy jname=NAME name=CKP: delete one checkpoint\n"
	"mode=destroyall jname=NAME: delete all its checkpoints";

struct progress_state {
	bool drawn;
	bool syncing;
};

static void progress_draw(uint64_t written, uint64_t total, void *arg)
{
	struct progress_state *ps = arg;

	if (!cli_interactive())
		return;
	/* "progress sync" carries no counts; by then the whole image was written. */
	if (ps->syncing && total == 0)
		return;
	if (total && written >= total) {
		if (!ps->syncing)
			printf("\rWritten %llu MiB; syncing to disk...          ",
			       (unsigned long long)(total >> 20));
		ps->syncing = true;
	} else {
		printf("\rWriting checkpoint: %llu of %llu MiB (%llu%%)   ",
		       (unsigned long long)(written >> 20), (unsigned long long)(total >> 20),
		       (unsigned long long)(total ? written * 100 / total : 0));
	}
	ps->drawn = true;
	fflush(stdout);
}

int cli_checkpoint(const char *command, const char *name, const struct vm_paths *paths,
		   const char *dir, const char *then)
{
	char request[CONTROL_LINE_MAX], reply[CONTROL_LINE_MAX + 1];
	struct progress_state ps = { false, false };
	struct control_conn c;
	int ret;

	if (strchr(dir, ' ')) {
		log_error(command, "checkpoint path %s contains a space, which the control "
			  "protocol cannot carry", dir);
		return -EINVAL;
	}
	snprintf(request, sizeof(request), "checkpoint dir=%s then=%s progress=1", dir, then);

	ret = control_connect(&c, paths->control, CHECKPOINT_IDLE_TIMEOUT_MS);
	if (ret) {
		log_error(command, "cannot connect to %s: %s", paths->control, strerror(-ret));
		return ret;
	}
	ret = control_request(&c, request, reply, sizeof(reply), CHECKPOINT_IDLE_TIMEOUT_MS,
			      progress_draw, &ps);
	control_close(&c);
	if (ps.drawn)
		printf("\n");

	if (ret == -EREMOTEIO)
		log_error(command, "checkpoint of %s failed: %s", name, reply + strlen("error"));
	else if (ret == -EPIPE && strcmp(then, "run") != 0)
		log_error(command, "cryo-vmm of %s closed the connection before it confirmed the "
			  "checkpoint; see %s", name, paths->log);
	else if (ret)
		log_error(command, "checkpoint of %s failed: %s", name, strerror(-ret));
	return ret;
}

/* A checkpoint name becomes a file name and a control-protocol value. */
static bool checkpoint_name_valid(const char *s)
{
	if (!*s || s[0] == '.' || strlen(s) > 200)
		return false;
	for (; *s; s++) {
		if (*s == '/' || *s == ' ' || (unsigned char)*s < 0x20)
			return false;
	}
	return true;
}

static int checkpoint_path(const struct vm_paths *paths, const char *ckp, char *out, size_t len)
{
	if (!checkpoint_name_valid(ckp)) {
		log_error("bcheckpoint", "invalid name=%s: a checkpoint name must not be empty, "
			  "start with '.', or contain '/', spaces or control characters", ckp);
		return -EINVAL;
	}
	if ((size_t)snprintf(out, len, "%s/%s" CKP_SUFFIX, paths->checkpoints, ckp) >= len) {
		log_error("bcheckpoint", "checkpoint path too long: %s/%s", paths->checkpoints, ckp);
		return -ENAMETOOLONG;
	}
	return 0;
}

static int bcheckpoint_create(const struct args *a, const char *name,
			      const struct vm_paths *paths)
{
	const char *ckp = args_get(a, "name") ? args_get(a, "name") : "checkpoint";
	/* CBSD renamed poweroff=1 to suspend=1; both are accepted with the same meaning. */
	bool poweroff = args_get_u64(a, "poweroff", 0) == 1 || args_get_u64(a, "suspend", 0) == 1;
	char path[PATH_MAX];
	struct stat st;
	int ret;

	ret = checkpoint_path(paths, ckp, path, sizeof(path));
	if (ret)
		return ret;
	if (!vm_instance_alive(paths)) {
		log_error("bcheckpoint", "%s is not running; only a running VM can be "
			  "checkpointed", name);
		return -ESRCH;
	}
	ret = mkdir_parents(paths->checkpoints, 0750);
	if (ret) {
		log_error("bcheckpoint", "cannot create %s: %s", paths->checkpoints, strerror(-ret));
		return ret;
	}
	if (stat(path, &st) == 0)
		printf("Replacing the existing checkpoint %s\n", path);

	ret = cli_checkpoint("bcheckpoint", name, paths, path, poweroff ? "poweroff" : "run");
	if (ret)
		return ret;
	printf("Checkpoint was created!: %s\n", path);

	if (poweroff) {
		if (vm_wait_exit(paths, CHECKPOINT_POWEROFF_WAIT_MS, false, NULL))
			log_warn("bcheckpoint", "%s has not exited %d s after the checkpoint",
				 name, CHECKPOINT_POWEROFF_WAIT_MS / 1000);
		else
			printf("%s powered off\n", name);
	}
	return 0;
}

static int compare_names(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Names (without .ckp) of the VM's checkpoints, sorted; free with free_names(). */
static size_t list_names(const struct vm_paths *paths, char **names)
{
	size_t n = 0, slen = strlen(CKP_SUFFIX);
	struct dirent *e;
	DIR *d;

	d = opendir(paths->checkpoints);
	if (!d)
		return 0;
	while ((e = readdir(d)) != NULL && n < CHECKPOINT_NAMES_MAX) {
		size_t len = strlen(e->d_name);

		/* cryo-vmm writes into a hidden or differently named folder until it is durable. */
		if (e->d_name[0] == '.' || len <= slen || strcmp(e->d_name + len - slen, CKP_SUFFIX))
			continue;
		names[n] = strndup(e->d_name, len - slen);
		if (names[n])
			n++;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), compare_names);
	return n;
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
}

enum list_column { LIST_NAME, LIST_CREATED, LIST_SIZE };

static int parse_list_display(const char *display, enum list_column *cols, int *ncols)
{
	char buf[256], *tok, *save;

	*ncols = 0;
	if (!display) {
		cols[(*ncols)++] = LIST_NAME;
		return 0;
	}
	snprintf(buf, sizeof(buf), "%s", display);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (*ncols == 3)
			goto invalid;
		if (strcasecmp(tok, "name") == 0)
			cols[(*ncols)++] = LIST_NAME;
		else if (strcasecmp(tok, "created") == 0)
			cols[(*ncols)++] = LIST_CREATED;
		else if (strcasecmp(tok, "size") == 0)
			cols[(*ncols)++] = LIST_SIZE;
		else
			goto invalid;
	}
	return 0;

invalid:
	log_error("bcheckpoint", "invalid display=%s: columns are name,created,size", display);
	return -EINVAL;
}

static void format_created(int64_t t, char *out, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	localtime_r(&tt, &tm);
	strftime(out, len, "%Y-%m-%dT%H:%M:%S%z", &tm);
}

static void print_list_row(const char *ckp, const struct ckpt_info *info,
			   const enum list_column *cols, int ncols, bool json, bool first)
{
	char created[64];

	format_created(info->created, created, sizeof(created));
	if (json) {
		/* Checkpoint names contain no quotes, backslashes or control characters. */
		printf("%s{\"name\": \"%s\", \"created\": \"%s\", \"created_epoch\": %lld, "
		       "\"size\": %llu}", first ? "" : ",\n ", ckp, created,
		       (long long)info->created, (unsigned long long)info->size_bytes);
		return;
	}
	for (int i = 0; i < ncols; i++) {
		const char *sep = i + 1 < ncols ? "  " : "\n";

		if (cols[i] == LIST_NAME)
			printf("%s%s", ckp, sep);
		else if (cols[i] == LIST_CREATED)
			printf("%s%s", created, sep);
		else
			printf("%llu%s", (unsigned long long)info->size_bytes, sep);
	}
}

static int bcheckpoint_list(const struct args *a, const char *name, const struct vm_paths *paths)
{
	enum list_column cols[3];
	char **names, path[2 * PATH_MAX], err[2 * PATH_MAX + 64];
	struct ckpt_info info;
	size_t n;
	int ncols;
	bool first = true;

	if (parse_list_display(args_get(a, "display"), cols, &ncols))
		return -EINVAL;
	names = calloc(CHECKPOINT_NAMES_MAX, sizeof(*names));
	if (!names)
		return -ENOMEM;
	n = list_names(paths, names);

	if (a->json)
		printf("[");
	else
		printf("Created checkpoint for %s:\n", name);
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s" CKP_SUFFIX, paths->checkpoints, names[i]);
		/* One that a crash left without its manifest was never finished: not listed. */
		if (!ckpt_dir_is_complete(path))
			continue;
		if (ckpt_info_read(path, &info, NULL, err, sizeof(err))) {
			log_warn("bcheckpoint", "skipping %s", err);
			continue;
		}
		print_list_row(names[i], &info, cols, ncols, a->json, first);
		first = false;
	}
	if (a->json)
		printf("]\n");

	free_names(names, n);
	free(names);
	return 0;
}

static int bcheckpoint_destroy(const struct args *a, const struct vm_paths *paths)
{
	const char *ckp = args_get(a, "name");
	char path[PATH_MAX];
	struct stat st;
	int ret;

	if (!ckp) {
		log_error("bcheckpoint", "missing required key name= for mode=destroy");
		return -EINVAL;
	}
	ret = checkpoint_path(paths, ckp, path, sizeof(path));
	if (ret)
		return ret;
	if (stat(path, &st) < 0) {
		log_error("bcheckpoint", "Checkpoint not found: %s", path);
		return -ENOENT;
	}
	ret = remove_tree(path);
	if (ret) {
		log_error("bcheckpoint", "cannot delete %s: %s", path, strerror(-ret));
		return ret;
	}
	printf("Checkpoint was destroyed: %s\n", path);
	return 0;
}

static int bcheckpoint_destroyall(const char *name, const struct vm_paths *paths)
{
	char **names, path[2 * PATH_MAX];
	int ret = 0;
	size_t n;

	names = calloc(CHECKPOINT_NAMES_MAX, sizeof(*names));
	if (!names)
		return -ENOMEM;
	n = list_names(paths, names);
	if (n == 0)
		printf("No checkpoints for %s\n", name);
	for (size_t i = 0; i < n; i++) {
		int r;

		snprintf(path, sizeof(path), "%s/%s" CKP_SUFFIX, paths->checkpoints, names[i]);
		r = remove_tree(path);
		if (r) {
			log_error("bcheckpoint", "cannot delete %s: %s", path, strerror(-r));
			ret = r;
			continue;
		}
		printf("Checkpoint was destroyed: %s\n", path);
	}
	free_names(names, n);
	free(names);
	return ret;
}

/* Keys that only one mode reads are rejected in the others, so a typo does not go unseen. */
static int bcheckpoint_check_keys(const struct args *a, const char *mode)
{
	static const struct {
		const char *key;
		const char *modes;
	} key_modes[] = {
		{ "name", "create destroy" },
		{ "poweroff", "create" },
		{ "suspend", "create" },
		{ "display", "list" },
	};

	for (size_t i = 0; i < sizeof(key_modes) / sizeof(key_modes[0]); i++) {
		if (args_has(a, key_modes[i].key) && !strstr(key_modes[i].modes, mode)) {
			log_error("bcheckpoint", "%s= is not valid with mode=%s", key_modes[i].key,
				  mode);
			return -EINVAL;
		}
	}
	if (a->json && strcmp(mode, "list") != 0) {
		log_error("bcheckpoint", "--json is only valid with mode=list");
		return -EINVAL;
	}
	return 0;
}

static int bcheckpoint_run(struct cli *cli, const struct args *a)
{
	const char *mode = args_get(a, "mode"), *name = args_get(a, "jname");
	struct vm_paths paths;
	struct vm_def *def;
	int lock = -1, ret;

	ret = bcheckpoint_check_keys(a, mode);
	if (ret)
		return ret;
	def = malloc(sizeof(*def));
	if (!def)
		return -ENOMEM;
	ret = cli_find_vm(cli, "bcheckpoint", name, def, &paths);
	if (ret)
		goto out;

	if (strcmp(mode, "list") == 0) {
		ret = bcheckpoint_list(a, name, &paths);
		goto out;
	}
	/* Only create marks the lock as a checkpoint, which makes others fail fast. */
	ret = cli_lock_vm(strcmp(mode, "create") == 0 ? "bcheckpoint" : "bcheckpoint-destroy",
			  &paths, name, &lock);
	if (ret)
		goto out;
	if (strcmp(mode, "create") == 0)
		ret = bcheckpoint_create(a, name, &paths);
	else if (strcmp(mode, "destroy") == 0)
		ret = bcheckpoint_destroy(a, &paths);
	else
		ret = bcheckpoint_destroyall(name, &paths);

out:
	vm_unlock(lock);
	free(def);
	return ret;
}

int cmd_bcheckpoint(struct cli *cli, int argc, char **argv)
{
	struct args a;
	int ret;

	ret = cli_parse_args(&a, "bcheckpoint", bcheckpoint_summary, bcheckpoint_args, argc, argv,
			     ARGS_JSON);
	if (ret) {
		args_free(&a);
		return ret > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
	}
	ret = bcheckpoint_run(cli, &a);
	args_free(&a);
	if (ret == -EINVAL)
		return CLI_EXIT_USAGE;
	return ret ? CLI_EXIT_ERROR : CLI_EXIT_OK;
}
