/*
 * Checkpoint directories as a whole: temporary names, removal, cleanup of
 * temporaries left by a writer that died, and the fault hook used by tests.
 * A checkpoint directory is flat (regular files only), so removal never recurses.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "snapshot/ckpt_internal.h"

static ckpt_fault_hook_fn ckpt_fault_hook;

void ckpt_set_fault_hook(ckpt_fault_hook_fn hook)
{
	ckpt_fault_hook = hook;
}

int ckpt_fault(const char *step)
{
	int ret;

	if (!ckpt_fault_hook)
		return 0;
	ret = ckpt_fault_hook(step);
	return ret < 0 ? ret : 0;
}

int ckpt_temp_name(char *buf, size_t len, const char *base)
{
	uint32_t rnd;
	int n;

	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		return -errno;
	n = snprintf(buf, len, ".%s.tmp-%d-%08x", base, (int)getpid(), rnd);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

int ckpt_remove_dir(int parent_fd, const char *name)
{
	struct dirent *de;
	DIR *dir;
	int fd;
	int ret = 0;

	fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	dir = fdopendir(fd);
	if (!dir) {
		ret = -errno;
		close(fd);
		return ret;
	}
	while ((de = readdir(dir)) != NULL) {
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		/* Only files go: a subdirectory is not ours, so rmdir below fails on it. */
		if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || S_ISDIR(st.st_mode))
			continue;
		if (unlinkat(fd, de->d_name, 0) < 0 && ret == 0)
			ret = -errno;
	}
	closedir(dir);
	if (unlinkat(parent_fd, name, AT_REMOVEDIR) < 0 && ret == 0)
		ret = -errno;
	return ret;
}

bool ckpt_dir_is_complete(const char *dir)
{
	struct stat st;
	char *path;
	bool complete;

	if (asprintf(&path, "%s/%s", dir, CKPT_MANIFEST_FILE) < 0)
		return false;
	complete = lstat(path, &st) == 0 && S_ISREG(st.st_mode);
	free(path);
	return complete;
}

/* Parses ".BASE.tmp-PID-RANDOM" and returns PID, or -1 when name is not of that form. */
static long ckpt_temp_name_pid(const char *name)
{
	const char *tag;
	char *end;
	long pid;

	if (name[0] != '.')
		return -1;
	tag = strstr(name, ".tmp-");
	if (!tag || tag == name)
		return -1;
	/* The last ".tmp-" wins, in case BASE itself contains one. */
	for (const char *next; (next = strstr(tag + 1, ".tmp-")) != NULL;)
		tag = next;
	pid = strtol(tag + 5, &end, 10);
	if (end == tag + 5 || *end != '-' || pid <= 0 || strlen(end + 1) != 8)
		return -1;
	for (const char *p = end + 1; *p; p++) {
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return -1;
	}
	return pid;
}

int ckpt_cleanup_stale(const char *parent_dir)
{
	struct dirent *de;
	DIR *dir;
	int removed = 0;
	int fd;

	fd = open(parent_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	dir = fdopendir(fd);
	if (!dir) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	while ((de = readdir(dir)) != NULL) {
		long pid = ckpt_temp_name_pid(de->d_name);
		int ret;

		/* NOTE: a PID reused by an unrelated process keeps its temporary until
		 * that process exits; kill(0) cannot tell the two apart. */
		if (pid < 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		ret = ckpt_remove_dir(fd, de->d_name);
		if (ret) {
			log_warn("ckpt", "cannot remove stale %s/%s: %s", parent_dir, de->d_name,
				 strerror(-ret));
			continue;
		}
		log_info("ckpt", "removed stale temporary checkpoint %s/%s", parent_dir,
			 de->d_name);
		removed++;
	}
	closedir(dir);
	return removed;
}
