/*
 * Writing a checkpoint atomically. Files go into a hidden sibling directory. Commit
 * writes `state` and the manifest last, fsyncs every file and the directory, and
 * renames the directory into place. A crash at any moment leaves either nothing or
 * a temporary directory (removed by ckpt_cleanup_stale) next to the old checkpoint.
 * Memory and disks are written by ckpt_memory.c and ckpt_disk.c.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "snapshot/ckpt_internal.h"

#define CKPT_TEMP_NAME_MAX 256

/* Returns 1 when directory name in parent_fd has no entries, 0 when it has, or -errno. */
static int ckpt_dir_is_empty(int parent_fd, const char *name)
{
	struct dirent *de;
	DIR *dir;
	int fd;
	int empty = 1;

	fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return -ENOMEM;
	}
	while ((de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
			empty = 0;
			break;
		}
	}
	closedir(dir);
	return empty;
}

/*
 * Returns 0 when final_dir may be created or replaced: it is absent, an empty
 * directory, or a committed checkpoint. Anything else is not ours to replace.
 */
static int ckpt_check_target(int parent_fd, const char *name, const char *final_dir)
{
	struct stat st;

	if (fstatat(parent_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode)) {
		log_error("ckpt", "%s exists and is not a directory; not replacing it", final_dir);
		return -EEXIST;
	}
	if (ckpt_dir_is_complete(final_dir) || ckpt_dir_is_empty(parent_fd, name) == 1)
		return 0;
	log_error("ckpt", "%s exists and is not a checkpoint (no manifest); not replacing it",
		  final_dir);
	return -EEXIST;
}

static void ckpt_writer_free(struct ckpt_writer *w)
{
	if (w->dir_fd >= 0)
		close(w->dir_fd);
	if (w->parent_fd >= 0)
		close(w->parent_fd);
	ser_writer_free(&w->sections);
	ckpt_manifest_free(&w->manifest);
	free(w->section_names);
	free(w->final_dir);
	free(w->tmp_path);
	free(w->final_name);
	free(w->tmp_name);
	free(w);
}

int ckpt_writer_open(struct ckpt_writer **wp, const char *final_dir)
{
	struct ckpt_writer *w;
	char *copy1 = NULL;
	char *copy2 = NULL;
	char tmp[CKPT_TEMP_NAME_MAX];
	const char *base;
	const char *parent;
	int ret;

	*wp = NULL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->parent_fd = -1;
	w->dir_fd = -1;
	ser_writer_init(&w->sections);
	w->manifest.version = CKPT_FORMAT_VERSION;

	copy1 = strdup(final_dir);
	copy2 = strdup(final_dir);
	w->final_dir = strdup(final_dir);
	if (!copy1 || !copy2 || !w->final_dir) {
		ret = -ENOMEM;
		goto fail;
	}
	base = basename(copy1);
	if (base[0] == '\0' || base[0] == '.' || strchr(base, '/')) {
		log_error("ckpt", "invalid checkpoint path %s: the last component must be a name not starting with '.'",
			  final_dir);
		ret = -EINVAL;
		goto fail;
	}
	parent = dirname(copy2);
	w->final_name = strdup(base);
	w->parent_fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (!w->final_name || w->parent_fd < 0) {
		ret = w->final_name ? -errno : -ENOMEM;
		log_error("ckpt", "cannot open the directory that is to contain %s: %s", final_dir,
			  strerror(-ret));
		goto fail;
	}
	ret = ckpt_check_target(w->parent_fd, w->final_name, final_dir);
	if (ret)
		goto fail;

	ret = ckpt_temp_name(tmp, sizeof(tmp), w->final_name);
	if (ret)
		goto fail;
	w->tmp_name = strdup(tmp);
	if (!w->tmp_name || asprintf(&w->tmp_path, "%s/%s", parent, tmp) < 0) {
		w->tmp_path = NULL;
		ret = -ENOMEM;
		goto fail;
	}
	if (mkdirat(w->parent_fd, tmp, 0700) < 0) {
		ret = -errno;
		log_error("ckpt", "cannot create %s: %s", w->tmp_path, strerror(-ret));
		goto fail;
	}
	w->dir_fd = openat(w->parent_fd, tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (w->dir_fd < 0) {
		ret = -errno;
		unlinkat(w->parent_fd, tmp, AT_REMOVEDIR);
		goto fail;
	}
	free(copy1);
	free(copy2);
	*wp = w;
	return 0;

fail:
	free(copy1);
	free(copy2);
	ckpt_writer_free(w);
	return ret;
}

void ckpt_writer_abort(struct ckpt_writer *w)
{
	int ret;

	if (!w)
		return;
	if (w->dir_fd >= 0) {
		close(w->dir_fd);
		w->dir_fd = -1;
		ret = ckpt_remove_dir(w->parent_fd, w->tmp_name);
		if (ret)
			log_warn("ckpt", "cannot remove %s: %s", w->tmp_path, strerror(-ret));
	}
	ckpt_writer_free(w);
}

int ckpt_writer_list_file(struct ckpt_writer *w, const char *name, enum ckpt_file_kind kind,
			  uint64_t size, uint64_t hash)
{
	struct ckpt_manifest *m = &w->manifest;
	struct ckpt_file_entry *f;

	if (ckpt_manifest_find(m, name) >= 0)
		return -EEXIST;
	if (m->nr_files >= CKPT_MAX_FILES)
		return -E2BIG;
	f = &m->files[m->nr_files++];
	memset(f, 0, sizeof(*f));
	strncpy(f->name, name, CKPT_NAME_MAX);
	f->kind = kind;
	f->size = size;
	f->hash = hash;
	return 0;
}

int ckpt_writer_add_section(struct ckpt_writer *w, const char *name, const void *data,
			    size_t len)
{
	char field[CKPT_NAME_FIELD] = { 0 };
	char (*names)[CKPT_NAME_FIELD];
	static const uint8_t pad[8];
	size_t start;
	uint8_t *rec;

	if (!ckpt_name_valid(name) || strlen(name) > CKPT_NAME_MAX) {
		log_error("ckpt", "invalid section name \"%s\"", name);
		return -EINVAL;
	}
	for (unsigned i = 0; i < w->nr_sections; i++) {
		if (strcmp(w->section_names[i], name) == 0) {
			log_error("ckpt", "section %s added twice", name);
			return -EEXIST;
		}
	}
	if (w->nr_sections >= CKPT_MAX_SECTIONS ||
	    len > CKPT_MAX_STATE_BYTES - w->sections.len - 64) {
		log_error("ckpt", "section %s does not fit: state is limited to %u sections and %u bytes",
			  name, CKPT_MAX_SECTIONS, CKPT_MAX_STATE_BYTES);
		return -E2BIG;
	}
	names = realloc(w->section_names, (w->nr_sections + 1) * sizeof(*names));
	if (!names)
		return -ENOMEM;
	w->section_names = names;

	/* Record: name[32] u64 length u64 checksum payload, zero-padded to 8 bytes. The
	 * checksum covers name and length too, so damage there names this section. */
	strncpy(field, name, CKPT_NAME_MAX);
	start = w->sections.len;
	ser_bytes(&w->sections, field, sizeof(field));
	ser_u64(&w->sections, len);
	ser_u64(&w->sections, 0);
	ser_bytes(&w->sections, data, len);
	ser_bytes(&w->sections, pad, (8 - len % 8) % 8);
	if (w->sections.err)
		return w->sections.err;

	rec = w->sections.buf + start;
	{
		XXH3_state_t st;
		uint64_t h;

		XXH3_64bits_reset(&st);
		XXH3_64bits_update(&st, rec, CKPT_NAME_FIELD + 8);
		XXH3_64bits_update(&st, rec + CKPT_NAME_FIELD + 16, len);
		h = XXH3_64bits_digest(&st);
		for (unsigned i = 0; i < 8; i++)
			rec[CKPT_NAME_FIELD + 8 + i] = (uint8_t)(h >> (8 * i));
	}

	memcpy(w->section_names[w->nr_sections++], field, sizeof(field));
	return 0;
}

/* Creates file name in the temporary directory, writes buf, fsyncs and closes it. */
static int ckpt_write_small_file(struct ckpt_writer *w, const char *name, const void *buf,
				 size_t len)
{
	int fd;
	int ret;

	fd = openat(w->dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	ret = ckpt_pwrite_full(fd, buf, len, 0);
	if (ret == 0 && fsync(fd) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

static int ckpt_writer_write_state(struct ckpt_writer *w)
{
	struct ser_writer out;
	int ret;

	ser_writer_init(&out);
	ser_bytes(&out, CKPT_STATE_MAGIC, CKPT_MAGIC_LEN);
	ser_u32(&out, w->nr_sections);
	ser_u32(&out, 0);
	ser_bytes(&out, w->sections.buf, w->sections.len);
	ret = out.err;
	if (ret == 0)
		ret = ckpt_fault("state");
	if (ret == 0)
		ret = ckpt_write_small_file(w, CKPT_STATE_FILE, out.buf, out.len);
	if (ret == 0)
		ret = ckpt_writer_list_file(w, CKPT_STATE_FILE, CKPT_FILE_STATE, out.len,
					    ckpt_hash_buffer(out.buf, out.len));
	if (ret)
		log_error("ckpt", "cannot write %s/%s: %s", w->tmp_path, CKPT_STATE_FILE,
			  strerror(-ret));
	ser_writer_free(&out);
	return ret;
}

static int ckpt_writer_write_manifest(struct ckpt_writer *w)
{
	struct ser_writer out;
	int ret;

	w->manifest.created = (int64_t)time(NULL);
	ser_writer_init(&out);
	ret = ckpt_manifest_encode(&w->manifest, &out);
	if (ret == 0)
		ret = ckpt_fault("manifest");
	if (ret == 0)
		ret = ckpt_write_small_file(w, CKPT_MANIFEST_FILE, out.buf, out.len);
	if (ret)
		log_error("ckpt", "cannot write %s/%s: %s", w->tmp_path, CKPT_MANIFEST_FILE,
			  strerror(-ret));
	ser_writer_free(&out);
	return ret;
}

/*
 * Moves the temporary directory to final_name. With an existing checkpoint there,
 * RENAME_EXCHANGE swaps the two in one step, and the old one ends up under the
 * temporary name. Filesystems without renameat2 flags get a two-step fallback.
 */
static int ckpt_writer_rename(struct ckpt_writer *w, bool *replaced)
{
	char aside[CKPT_TEMP_NAME_MAX];
	int ret;

	*replaced = false;
	ret = ckpt_fault("rename");
	if (ret)
		return ret;
	if (renameat2(w->parent_fd, w->tmp_name, w->parent_fd, w->final_name,
		      RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EEXIST && errno != EINVAL)
		return -errno;
	if (errno == EINVAL && faccessat(w->parent_fd, w->final_name, F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
		/* No renameat2 flags here, and nothing to replace. */
		return renameat(w->parent_fd, w->tmp_name, w->parent_fd, w->final_name) < 0 ? -errno : 0;
	}

	ret = ckpt_check_target(w->parent_fd, w->final_name, w->final_dir);
	if (ret)
		return ret;
	if (renameat2(w->parent_fd, w->tmp_name, w->parent_fd, w->final_name,
		      RENAME_EXCHANGE) == 0) {
		*replaced = true;
		return 0;
	}
	if (errno == ENOENT) {
		/* final_dir vanished since the first attempt: nothing to replace now. */
		return renameat2(w->parent_fd, w->tmp_name, w->parent_fd, w->final_name,
				 RENAME_NOREPLACE) < 0 ? -errno : 0;
	}
	if (errno != EINVAL)
		return -errno;

	/* NOTE: this fallback leaves final_dir absent between the two renames, though
	 * never with a partial checkpoint in it. */
	ret = ckpt_temp_name(aside, sizeof(aside), w->final_name);
	if (ret)
		return ret;
	if (renameat(w->parent_fd, w->final_name, w->parent_fd, aside) < 0)
		return -errno;
	if (renameat(w->parent_fd, w->tmp_name, w->parent_fd, w->final_name) < 0) {
		ret = -errno;
		renameat(w->parent_fd, aside, w->parent_fd, w->final_name);
		return ret;
	}
	free(w->tmp_name);
	w->tmp_name = strdup(aside);
	*replaced = true;
	return w->tmp_name ? 0 : -ENOMEM;
}

int ckpt_writer_commit(struct ckpt_writer *w, bool *replaced)
{
	bool did_replace = false;
	int ret;

	ret = ckpt_writer_write_state(w);
	if (ret)
		goto fail;
	ret = ckpt_writer_write_manifest(w);
	if (ret)
		goto fail;
	if (fsync(w->dir_fd) < 0) {
		ret = -errno;
		log_error("ckpt", "cannot fsync %s: %s", w->tmp_path, strerror(-ret));
		goto fail;
	}

	ret = ckpt_writer_rename(w, &did_replace);
	if (ret) {
		log_error("ckpt", "cannot rename %s to %s: %s", w->tmp_path, w->final_dir,
			  strerror(-ret));
		goto fail;
	}
	if (fsync(w->parent_fd) < 0)
		log_warn("ckpt", "cannot fsync the directory containing %s: %s", w->final_dir,
			 strerror(errno));

	if (did_replace) {
		/* The old checkpoint now sits under the temporary name. If it cannot be
		 * removed, ckpt_cleanup_stale removes it after this process exits. */
		ret = ckpt_remove_dir(w->parent_fd, w->tmp_name);
		if (ret)
			log_warn("ckpt", "cannot remove the replaced checkpoint %s: %s", w->tmp_path,
				 strerror(-ret));
	}
	close(w->dir_fd);
	w->dir_fd = -1;
	if (replaced)
		*replaced = did_replace;
	ckpt_writer_free(w);
	return 0;

fail:
	ckpt_writer_abort(w);
	return ret;
}
