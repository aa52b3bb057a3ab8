/*
 * Per-VM files, locks and process checks. Nothing here talks to the registry.
 */
#include "cli/vm.h"

#include "cli/control.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define VM_PROBE_TIMEOUT_MS 2000

static int path_join(char *out, const char *dir, const char *file)
{
	int n = snprintf(out, PATH_MAX, "%s/%s", dir, file);

	return (n < 0 || n >= PATH_MAX) ? -ENAMETOOLONG : 0;
}

int vm_paths_init(struct vm_paths *p, const char *home, const char *name)
{
	struct sockaddr_un addr;
	int n, ret = 0;

	n = snprintf(p->dir, sizeof(p->dir), "%s/vms/%s", home, name);
	if (n < 0 || (size_t)n >= sizeof(p->dir))
		return -ENAMETOOLONG;

	ret |= path_join(p->lock, p->dir, "lock");
	ret |= path_join(p->run_lock, p->dir, "run.lock");
	ret |= path_join(p->pid, p->dir, "vm.pid");
	ret |= path_join(p->control, p->dir, "control.sock");
	ret |= path_join(p->console, p->dir, "console.sock");
	ret |= path_join(p->log, p->dir, "vm.log");
	ret |= path_join(p->hibernate, p->dir, "hibernate.ckp");
	ret |= path_join(p->checkpoints, p->dir, "checkpoints");
	if (ret)
		return -ENAMETOOLONG;

	if (strlen(p->control) >= sizeof(addr.sun_path) ||
	    strlen(p->console) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	return 0;
}

int mkdir_parents(const char *dir, mode_t mode)
{
	char buf[PATH_MAX];
	size_t len = strlen(dir);

	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, dir, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static void read_small_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = -1;

	buf[0] = '\0';
	if (fd < 0)
		return;
	n = read(fd, buf, len - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
}

static bool holder_is_checkpoint(const char *holder)
{
	return strncmp(holder, "bcheckpoint ", 12) == 0 || strncmp(holder, "bsuspend ", 9) == 0;
}

int vm_lock(const struct vm_paths *p, const char *command, int *fd, char *holder,
	    size_t holderlen)
{
	char line[128];
	int lfd, ret, n;

	ret = mkdir_parents(p->dir, 0750);
	if (ret)
		return ret;
	lfd = open(p->lock, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (lfd < 0)
		return -errno;

	if (flock(lfd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK) {
			ret = -errno;
			goto fail;
		}
		read_small_file(p->lock, holder, holderlen);
		if (holder_is_checkpoint(holder)) {
			ret = -EBUSY;
			goto fail;
		}
		while (flock(lfd, LOCK_EX) < 0) {
			if (errno != EINTR) {
				ret = -errno;
				goto fail;
			}
		}
	}

	n = snprintf(line, sizeof(line), "%s %d\n", command, (int)getpid());
	if (ftruncate(lfd, 0) < 0 || pwrite(lfd, line, (size_t)n, 0) != n) {
		ret = -errno;
		goto fail;
	}
	*fd = lfd;
	return 0;

fail:
	close(lfd);
	return ret;
}

void vm_unlock(int fd)
{
	if (fd >= 0)
		close(fd);
}

bool vm_instance_alive(const struct vm_paths *p)
{
	int fd = open(p->run_lock, O_RDONLY | O_CLOEXEC);
	bool alive = false;

	if (fd < 0)
		return false;
	if (flock(fd, LOCK_SH | LOCK_NB) < 0)
		alive = errno == EWOULDBLOCK;
	close(fd);
	return alive;
}

int proc_stat_read(pid_t pid, uint64_t *cpu_ticks, uint64_t *start_ticks)
{
	unsigned long long utime, stime, start;
	char path[64], buf[1024];
	const char *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	read_small_file(path, buf, sizeof(buf));
	if (!buf[0])
		return -ESRCH;

	/* The command name in parentheses may contain spaces; fields resume after the last ')'. */
	p = strrchr(buf, ')');
	if (!p)
		return -EPROTO;
	if (sscanf(p + 2,
		   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d "
		   "%llu", &utime, &stime, &start) != 3)
		return -EPROTO;
	if (cpu_ticks)
		*cpu_ticks = utime + stime;
	if (start_ticks)
		*start_ticks = start;
	return 0;
}

int proc_rss_kib(pid_t pid, uint64_t *kib)
{
	char path[64], line[256];
	unsigned long long v;
	FILE *f;
	int ret = -ENOENT;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -ESRCH;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "VmRSS: %llu kB", &v) == 1) {
			*kib = v;
			ret = 0;
			break;
		}
	}
	fclose(f);
	return ret;
}

int vm_read_pid(const struct vm_paths *p, pid_t *pid)
{
	unsigned long long start_recorded;
	uint64_t start_now;
	char buf[64];
	int v;

	read_small_file(p->pid, buf, sizeof(buf));
	if (sscanf(buf, "%d %llu", &v, &start_recorded) != 2 || v <= 0)
		return -ESRCH;
	if (proc_stat_read(v, NULL, &start_now) || start_now != start_recorded)
		return -ESRCH;
	*pid = v;
	return 0;
}

int vm_write_pid(const struct vm_paths *p, pid_t pid)
{
	char tmp[PATH_MAX + 8], line[64];
	uint64_t start;
	int fd, n, ret;

	ret = proc_stat_read(pid, NULL, &start);
	if (ret)
		return ret;
	n = snprintf(tmp, sizeof(tmp), "%s.tmp", p->pid);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	n = snprintf(line, sizeof(line), "%d %llu\n", (int)pid, (unsigned long long)start);
	if (write(fd, line, (size_t)n) != n) {
		ret = -errno;
		close(fd);
		return ret ? ret : -EIO;
	}
	close(fd);
	if (rename(tmp, p->pid) < 0)
		return -errno;
	return 0;
}

void vm_clean_stale(const struct vm_paths *p)
{
	if (vm_instance_alive(p))
		return;
	unlink(p->pid);
	unlink(p->control);
	unlink(p->console);
}

void vm_probe(const struct vm_paths *p, struct vm_runtime *rt)
{
	char reply[CONTROL_LINE_MAX + 1], state[32];
	struct stat st;

	rt->status = VM_OFF;
	rt->pid = 0;
	rt->control_ok = false;

	if (!vm_instance_alive(p)) {
		if (stat(p->hibernate, &st) == 0)
			rt->status = VM_SUSPENDED;
		return;
	}

	rt->status = VM_ON;
	if (vm_read_pid(p, &rt->pid))
		rt->pid = 0;
	if (control_call(p->control, "status", reply, sizeof(reply), VM_PROBE_TIMEOUT_MS) == 0) {
		rt->control_ok = true;
		if (control_reply_get(reply, "state", state, sizeof(state)) &&
		    strcmp(state, "paused") == 0)
			rt->status = VM_PAUSED;
	}
}

const char *vm_status_name(enum vm_status s)
{
	switch (s) {
	case VM_ON:
		return "On";
	case VM_PAUSED:
		return "Paused";
	case VM_SUSPENDED:
		return "Suspended";
	case VM_OFF:
		break;
	}
	return "Off";
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int vm_wait_exit(const struct vm_paths *p, int timeout_ms, bool countdown, const char *what)
{
	int64_t deadline = mono_ms() + timeout_ms;
	int64_t last_shown = -1;

	while (vm_instance_alive(p)) {
		int64_t left = deadline - mono_ms();

		if (left <= 0) {
			if (countdown)
				printf("\n");
			return -ETIMEDOUT;
		}
		if (countdown && (left + 999) / 1000 != last_shown) {
			last_shown = (left + 999) / 1000;
			printf("\r%s: %lld s left  ", what, (long long)last_shown);
			fflush(stdout);
		}
		usleep(50 * 1000);
	}
	if (countdown && last_shown >= 0)
		printf("\n");
	return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	if (remove(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int remove_tree(const char *path)
{
	struct stat st;
	int ret;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlink(path) < 0 ? -errno : 0;
	ret = nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	if (ret < 0)
		return -errno;
	return ret;
}
