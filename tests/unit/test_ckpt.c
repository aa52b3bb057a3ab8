/*
 * Checkpoint format tests: write a checkpoint with sections, a fake guest memory
 * (two regions, mostly zero pages) and a sparse disk; read it back and compare;
 * then damage copies of it one way at a time and check the exact message and that
 * the reader left the damaged files as they were. Also: atomic replacement, a
 * failed write at every step, ENOSPC on a tiny tmpfs, stale temporary cleanup,
 * and random manifest mutations with a valid checksum (run under ASan to be useful).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "snapshot/ckpt.h"
#include "snapshot/ckpt_internal.h"

/* Test paths are short (under /tmp); a truncated one would fail its assert anyway. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

#define PAGE CKPT_PAGE_SIZE
#define REGION0_SIZE (5 * 1024 * 1024 + 2 * PAGE)
#define REGION1_SIZE (3 * 1024 * 1024)
#define REGION1_GPA 0x100000000ull
#define DISK_SIZE (16 * 1024 * 1024 + 100)

struct fixture {
	char root[64];       /* temporary directory of this test */
	char ckpt[128];      /* root/good.ckp: the checkpoint written in setup */
	char disk[128];      /* root/disk.img: the source disk image */
	struct guest_mem mem;
	uint64_t progress_done;
	uint64_t progress_total;
	unsigned progress_calls;
};

static const struct {
	const char *name;
	const char *payload;
} sections[] = {
	{ "vm", "memory=8M vcpus=2 kernel=/boot/vmlinuz" },
	{ "vcpu0", "registers of vcpu 0, with a length that needs padding" },
	{ "vcpu1", "registers of vcpu 1" },
	{ "irqchip", "pic ioapic pit" },
	{ "clock", "kvmclock 123456789" },
	{ "serial0", "16550A: lcr=3 ier=1" },
	{ "empty", "" },
};

static uint32_t rng_state = 12345;

static uint32_t rng_next(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

static void fill_random(uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(rng_next() | 1);
}

/* Page i (counted across both regions) is non-zero in this pattern. */
static bool page_is_data(uint64_t i)
{
	uint64_t r0_pages = REGION0_SIZE / PAGE;

	return i % 61 == 7 || (i >= 600 && i < 700) || i == r0_pages - 1 || i == r0_pages ||
	       i == 1500 || i == 1501;
}

static void alloc_guest_mem(struct guest_mem *m)
{
	memset(m, 0, sizeof(*m));
	m->nr_regions = 2;
	m->regions[0].gpa = 0;
	m->regions[0].size = REGION0_SIZE;
	m->regions[1].gpa = REGION1_GPA;
	m->regions[1].size = REGION1_SIZE;
	for (unsigned i = 0; i < 2; i++) {
		void *p = mmap(NULL, m->regions[i].size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		assert_true(p != MAP_FAILED);
		m->regions[i].host = p;
	}
}

static void free_guest_mem(struct guest_mem *m)
{
	for (unsigned i = 0; i < m->nr_regions; i++)
		munmap(m->regions[i].host, m->regions[i].size);
	m->nr_regions = 0;
}

static uint8_t *guest_page(struct guest_mem *m, uint64_t i)
{
	uint64_t r0_pages = REGION0_SIZE / PAGE;

	if (i < r0_pages)
		return m->regions[0].host + i * PAGE;
	return m->regions[1].host + (i - r0_pages) * PAGE;
}

static void fill_guest_mem(struct guest_mem *m)
{
	uint64_t pages = (REGION0_SIZE + REGION1_SIZE) / PAGE;

	for (uint64_t i = 0; i < pages; i++) {
		uint8_t *p = guest_page(m, i);

		if (!page_is_data(i))
			continue;
		if (i == 1500) {
			p[PAGE - 1] = 1; /* only the last byte is set */
		} else if (i == 1501) {
			p[0] = 1; /* only the first byte is set */
		} else {
			fill_random(p, PAGE);
		}
	}
}

static void write_file_at(const char *path, uint64_t off, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT, 0644);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static void make_disk(const char *path)
{
	static uint8_t buf[1024 * 1024];
	int fd;

	fill_random(buf, sizeof(buf));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, DISK_SIZE), 0);
	assert_int_equal(pwrite(fd, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	assert_int_equal(pwrite(fd, buf, PAGE, 7 * 1024 * 1024), PAGE);
	assert_int_equal(pwrite(fd, buf, 100, DISK_SIZE - 100), 100);
	close(fd);
}

static uint8_t *read_whole(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(ckpt_pread_full(fd, buf, (size_t)st.st_size, 0), 0);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

static void assert_files_equal(const char *a, const char *b)
{
	size_t la;
	size_t lb;
	uint8_t *ba = read_whole(a, &la);
	uint8_t *bb = read_whole(b, &lb);

	assert_int_equal(la, lb);
	assert_memory_equal(ba, bb, la);
	free(ba);
	free(bb);
}

static void on_progress(uint64_t done, uint64_t total, void *opaque)
{
	struct fixture *f = opaque;

	assert_true(done >= f->progress_done);
	assert_true(done <= total);
	f->progress_done = done;
	f->progress_total = total;
	f->progress_calls++;
}

static int write_checkpoint(struct fixture *f, const char *dir, const char *gen, bool *replaced)
{
	struct ckpt_writer *w;
	enum ckpt_copy_method method;
	int ret;

	ret = ckpt_writer_open(&w, dir);
	if (ret)
		return ret;
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
		ret = ckpt_writer_add_section(w, sections[i].name, sections[i].payload,
					      strlen(sections[i].payload));
		if (ret)
			goto fail;
	}
	ret = ckpt_writer_add_section(w, "generation", gen, strlen(gen));
	if (ret)
		goto fail;
	ret = ckpt_writer_add_memory(w, &f->mem, on_progress, f);
	if (ret)
		goto fail;
	ret = ckpt_writer_add_disk(w, "disk0", f->disk, &method);
	if (ret)
		goto fail;
	return ckpt_writer_commit(w, replaced);

fail:
	ckpt_writer_abort(w);
	return ret;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	strcpy(f->root, "/tmp/test_ckpt.XXXXXX");
	assert_non_null(mkdtemp(f->root));
	snprintf(f->ckpt, sizeof(f->ckpt), "%s/good.ckp", f->root);
	snprintf(f->disk, sizeof(f->disk), "%s/disk.img", f->root);
	make_disk(f->disk);
	alloc_guest_mem(&f->mem);
	fill_guest_mem(&f->mem);
	assert_int_equal(write_checkpoint(f, f->ckpt, "1", NULL), 0);
	*state = f;
	return 0;
}

static void remove_tree(const char *path)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	assert_int_equal(system(cmd), 0);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	ckpt_set_fault_hook(NULL);
	free_guest_mem(&f->mem);
	remove_tree(f->root);
	free(f);
	return 0;
}

/* Number of entries in dir whose name starts with '.', other than . and .. */
static unsigned count_hidden(const char *dir)
{
	struct dirent *de;
	unsigned n = 0;
	DIR *d = opendir(dir);

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' && strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	}
	closedir(d);
	return n;
}

static void test_ckpt_roundtrip(void **state)
{
	struct fixture *f = *state;
	struct ckpt_reader *r;
	char err[512];
	char path[256];
	struct stat st;
	struct guest_mem restored;
	uint64_t gpa;
	uint64_t size;
	size_t len;
	const char *p;
	time_t now = time(NULL);

	assert_int_equal(ckpt_reader_open(&r, f->ckpt, err, sizeof(err)), 0);
	assert_int_equal(ckpt_reader_verify_all(r, err, sizeof(err)), 0);
	assert_true(ckpt_dir_is_complete(f->ckpt));

	/* Sections, in order, byte for byte. */
	assert_int_equal(ckpt_reader_section_count(r), sizeof(sections) / sizeof(sections[0]) + 1);
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
		p = ckpt_reader_section(r, sections[i].name, &len);
		assert_non_null(p);
		assert_int_equal(len, strlen(sections[i].payload));
		assert_memory_equal(p, sections[i].payload, len);
		assert_string_equal(ckpt_reader_section_name(r, (unsigned)i), sections[i].name);
	}
	assert_null(ckpt_reader_section(r, "vcpu2", &len));
	assert_null(ckpt_reader_section_name(r, 100));

	assert_true(ckpt_reader_created(r) >= now - 60 && ckpt_reader_created(r) <= now + 1);
	assert_true(ckpt_reader_disk_usage(r) > 0);

	/* Memory: layout, contents through the fd, sparseness. */
	assert_int_equal(ckpt_reader_memory_size(r), REGION0_SIZE + REGION1_SIZE);
	assert_int_equal(ckpt_reader_memory_region_count(r), 2);
	assert_int_equal(ckpt_reader_memory_region(r, 1, &gpa, &size), 0);
	assert_int_equal(gpa, REGION1_GPA);
	assert_int_equal(size, REGION1_SIZE);
	assert_int_equal(ckpt_reader_memory_region(r, 2, &gpa, &size), -ENOENT);
	assert_int_equal(fstat(ckpt_reader_memory_fd(r), &st), 0);
	assert_int_equal(st.st_size, REGION0_SIZE + REGION1_SIZE);
	assert_true((uint64_t)st.st_blocks * 512 < (uint64_t)st.st_size / 4);

	/* Progress reached the total. */
	assert_true(f->progress_calls > 0);
	assert_int_equal(f->progress_done, REGION0_SIZE + REGION1_SIZE);
	assert_int_equal(f->progress_total, REGION0_SIZE + REGION1_SIZE);

	/* Map it over fresh guest memory and compare every byte. */
	alloc_guest_mem(&restored);
	assert_int_equal(ckpt_reader_map_memory(r, &restored, err, sizeof(err)), 0);
	for (unsigned i = 0; i < 2; i++)
		assert_memory_equal(restored.regions[i].host, f->mem.regions[i].host,
				    f->mem.regions[i].size);
	/* A guest write lands in private memory, never in the file. */
	restored.regions[0].host[0] ^= 0xff;
	free_guest_mem(&restored);
	assert_int_equal(ckpt_reader_verify_memory(r, err, sizeof(err)), 0);

	/* A layout that differs is rejected. */
	alloc_guest_mem(&restored);
	restored.regions[1].gpa += PAGE;
	assert_int_equal(ckpt_reader_map_memory(r, &restored, err, sizeof(err)), -EINVAL);
	free_guest_mem(&restored);

	/* Disk: listed, sparse in the checkpoint, restored over an existing file. */
	assert_int_equal(ckpt_reader_disk_count(r), 1);
	assert_string_equal(ckpt_reader_disk_name(r, 0), "disk0");
	assert_null(ckpt_reader_disk_name(r, 1));
	assert_int_equal(ckpt_reader_disk_size(r, "disk0"), DISK_SIZE);
	assert_int_equal(ckpt_reader_disk_size(r, "disk9"), -ENOENT);
	snprintf(path, sizeof(path), "%s/disk0", f->ckpt);
	assert_files_equal(path, f->disk);
	assert_int_equal(stat(path, &st), 0);
	assert_true((uint64_t)st.st_blocks * 512 < DISK_SIZE / 4);

	snprintf(path, sizeof(path), "%s/restored.img", f->root);
	write_file_at(path, 0, "old contents", 12);
	assert_int_equal(chmod(path, 0604), 0);
	{
		enum ckpt_copy_method method;

		assert_int_equal(ckpt_reader_restore_disk(r, "disk0", path, &method, err, sizeof(err)),
				 0);
		assert_true(method == CKPT_COPY_SPARSE || method == CKPT_COPY_REFLINK);
	}
	assert_files_equal(path, f->disk);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0604);
	assert_int_equal(ckpt_reader_restore_disk(r, "disk9", path, NULL, err, sizeof(err)), -ENOENT);
	ckpt_reader_close(r);

	/* The checkpoint is reusable: reading it again still verifies. */
	assert_int_equal(ckpt_reader_open(&r, f->ckpt, err, sizeof(err)), 0);
	assert_int_equal(ckpt_reader_verify_all(r, err, sizeof(err)), 0);
	ckpt_reader_close(r);
	assert_int_equal(count_hidden(f->root), 0);
}

/* Copies the flat directory src to dst, byte for byte. */
static void copy_dir(const char *src, const char *dst)
{
	struct dirent *de;
	DIR *d = opendir(src);

	assert_non_null(d);
	assert_int_equal(mkdir(dst, 0700), 0);
	while ((de = readdir(d)) != NULL) {
		char a[256];
		char b[256];
		uint8_t *buf;
		size_t len;

		if (de->d_name[0] == '.')
			continue;
		snprintf(a, sizeof(a), "%s/%s", src, de->d_name);
		snprintf(b, sizeof(b), "%s/%s", dst, de->d_name);
		buf = read_whole(a, &len);
		write_file_at(b, 0, buf, len);
		free(buf);
	}
	closedir(d);
}

struct file_print {
	char name[64];
	off_t size;
	struct timespec mtime;
	uint64_t hash;
};

/* Records size, mtime and a hash of every file in dir, to prove the reader wrote nothing. */
static unsigned fingerprint_dir(const char *dir, struct file_print *out, unsigned max)
{
	struct dirent *de;
	unsigned n = 0;
	DIR *d = opendir(dir);

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		char path[256];
		struct stat st;
		uint8_t *buf;
		size_t len;

		if (de->d_name[0] == '.')
			continue;
		assert_true(n < max);
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		assert_int_equal(stat(path, &st), 0);
		buf = read_whole(path, &len);
		snprintf(out[n].name, sizeof(out[n].name), "%s", de->d_name);
		out[n].size = st.st_size;
		out[n].mtime = st.st_mtim;
		out[n].hash = XXH3_64bits(buf, len);
		free(buf);
		n++;
	}
	closedir(d);
	return n;
}

static void flip_byte(const char *dir, const char *file, uint64_t off)
{
	char path[256];
	uint8_t b;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	if (pread(fd, &b, 1, (off_t)off) != 1)
		b = 0;
	b ^= 0x20;
	assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
	close(fd);
}

/* Rewrites the manifest's trailing checksum so a forged edit passes that check. */
static void fix_manifest_checksum(const char *dir)
{
	char path[256];
	uint8_t *buf;
	size_t len;
	uint64_t h;

	snprintf(path, sizeof(path), "%s/manifest", dir);
	buf = read_whole(path, &len);
	h = XXH3_64bits(buf, len - 8);
	for (unsigned i = 0; i < 8; i++)
		buf[len - 8 + i] = (uint8_t)(h >> (8 * i));
	write_file_at(path, 0, buf, len);
	free(buf);
}

static uint64_t file_size(const char *dir, const char *file)
{
	char path[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	assert_int_equal(stat(path, &st), 0);
	return (uint64_t)st.st_size;
}

/* Offset of section name's payload in the state file. */
static uint64_t section_payload_offset(const char *dir, const char *name)
{
	char path[256];
	uint8_t *buf;
	size_t len;
	size_t pos = 16;
	uint64_t off = 0;

	snprintf(path, sizeof(path), "%s/state", dir);
	buf = read_whole(path, &len);
	while (pos + 48 <= len) {
		uint64_t plen = 0;

		for (unsigned i = 0; i < 8; i++)
			plen |= (uint64_t)buf[pos + 32 + i] << (8 * i);
		if (strcmp((char *)buf + pos, name) == 0) {
			off = pos + 48;
			break;
		}
		pos += 48 + plen + (8 - plen % 8) % 8;
	}
	free(buf);
	assert_true(off != 0);
	return off;
}

/*
 * Opens (and if that passes, fully verifies) the damaged copy at dir, checks the error
 * and message, and checks that no file changed.
 */
static void expect_rejected(const char *dir, int expected_ret, const char *expected_msg)
{
	struct file_print before[16];
	struct file_print after[16];
	struct ckpt_reader *r = NULL;
	char expected[512];
	char err[512] = "";
	unsigned n_before;
	unsigned n_after;
	int ret;

	n_before = fingerprint_dir(dir, before, 16);
	ret = ckpt_reader_open(&r, dir, err, sizeof(err));
	if (ret == 0) {
		ret = ckpt_reader_verify_all(r, err, sizeof(err));
		ckpt_reader_close(r);
	}
	snprintf(expected, sizeof(expected), "checkpoint %s: %s", dir, expected_msg);
	assert_string_equal(err, expected);
	assert_int_equal(ret, expected_ret);

	n_after = fingerprint_dir(dir, after, 16);
	assert_int_equal(n_before, n_after);
	for (unsigned i = 0; i < n_before; i++) {
		assert_string_equal(before[i].name, after[i].name);
		assert_int_equal(before[i].size, after[i].size);
		assert_int_equal(before[i].hash, after[i].hash);
		assert_int_equal(before[i].mtime.tv_sec, after[i].mtime.tv_sec);
		assert_int_equal(before[i].mtime.tv_nsec, after[i].mtime.tv_nsec);
	}
}

static void damaged_copy(struct fixture *f, const char *tag, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s/%s.ckp", f->root, tag);
	copy_dir(f->ckpt, out);
}

static void test_ckpt_damage_sizes_and_files(void **state)
{
	struct fixture *f = *state;
	char dir[256];
	char msg[256];
	char path[512];
	uint64_t mem_size = REGION0_SIZE + REGION1_SIZE;

	damaged_copy(f, "truncated", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/memory", dir);
	assert_int_equal(truncate(path, (off_t)(mem_size - 1000)), 0);
	snprintf(msg, sizeof(msg), "file memory: size %" PRIu64 " but the manifest says %" PRIu64
		 " (truncated?)", mem_size - 1000, mem_size);
	expect_rejected(dir, -EBADMSG, msg);

	damaged_copy(f, "extended", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/disk0", dir);
	write_file_at(path, DISK_SIZE, "x", 1);
	snprintf(msg, sizeof(msg), "file disk0: size %d but the manifest says %d (appended to?)",
		 DISK_SIZE + 1, DISK_SIZE);
	expect_rejected(dir, -EBADMSG, msg);

	damaged_copy(f, "missing", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/disk0", dir);
	assert_int_equal(unlink(path), 0);
	expect_rejected(dir, -ENOENT, "file disk0: missing");

	damaged_copy(f, "nomanifest", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/manifest", dir);
	assert_int_equal(unlink(path), 0);
	assert_false(ckpt_dir_is_complete(dir));
	expect_rejected(dir, -ENOENT, "manifest missing (an incomplete checkpoint, or not a checkpoint)");

	damaged_copy(f, "version", dir, sizeof(dir));
	{
		uint8_t v = 7;

		snprintf(path, sizeof(path), "%s/manifest", dir);
		write_file_at(path, 8, &v, 1);
	}
	expect_rejected(dir, -ENOTSUP, "format version 7 is not supported (this cryo reads version 1)");

	damaged_copy(f, "magic", dir, sizeof(dir));
	flip_byte(dir, "manifest", 0);
	expect_rejected(dir, -EBADMSG, "manifest: bad magic (not a cryo checkpoint)");

	damaged_copy(f, "state-magic", dir, sizeof(dir));
	flip_byte(dir, "state", 1);
	expect_rejected(dir, -EBADMSG, "file state: bad magic");
}

static void test_ckpt_damage_flipped_bytes(void **state)
{
	struct fixture *f = *state;
	char dir[256];
	char msg[256];
	char tag[64];
	uint64_t r0_pages = REGION0_SIZE / PAGE;

	damaged_copy(f, "flip-manifest", dir, sizeof(dir));
	flip_byte(dir, "manifest", file_size(dir, "manifest") / 2);
	expect_rejected(dir, -EBADMSG, "manifest: checksum mismatch");

	damaged_copy(f, "flip-manifest-sum", dir, sizeof(dir));
	flip_byte(dir, "manifest", file_size(dir, "manifest") - 1);
	expect_rejected(dir, -EBADMSG, "manifest: checksum mismatch");

	/* The reserved word of the state header: no section notices, the file checksum does. */
	damaged_copy(f, "flip-state", dir, sizeof(dir));
	flip_byte(dir, "state", 12);
	expect_rejected(dir, -EBADMSG, "file state: checksum mismatch");

	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
		if (sections[i].payload[0] == '\0')
			continue;
		snprintf(tag, sizeof(tag), "flip-section-%s", sections[i].name);
		damaged_copy(f, tag, dir, sizeof(dir));
		flip_byte(dir, "state", section_payload_offset(dir, sections[i].name) + 1);
		snprintf(msg, sizeof(msg), "section %s: checksum mismatch", sections[i].name);
		expect_rejected(dir, -EBADMSG, msg);
	}

	/* A section's length pointing past the end of the file. */
	damaged_copy(f, "flip-section-length", dir, sizeof(dir));
	flip_byte(dir, "state", section_payload_offset(dir, "vcpu1") - 16 + 3);
	snprintf(msg, sizeof(msg), "section vcpu1: length %d runs past the end of the state file",
		 (int)strlen("registers of vcpu 1") ^ (0x20 << 24));
	expect_rejected(dir, -EBADMSG, msg);

	/* A data page in chunk 1 (pages 512 to 1023). */
	damaged_copy(f, "flip-memory", dir, sizeof(dir));
	flip_byte(dir, "memory", 650 * PAGE + 17);
	expect_rejected(dir, -EBADMSG, "file memory: checksum mismatch in chunk 1 (bytes 2097152 to 4194303)");

	/* A hole in region 1 that someone wrote into. */
	damaged_copy(f, "flip-memory-hole", dir, sizeof(dir));
	assert_false(page_is_data(r0_pages + 300));
	flip_byte(dir, "memory", (r0_pages + 300) * PAGE);
	{
		uint64_t chunk = (r0_pages + 300) * PAGE / CKPT_CHUNK_SIZE;

		snprintf(msg, sizeof(msg), "file memory: checksum mismatch in chunk %" PRIu64
			 " (bytes %" PRIu64 " to %" PRIu64 ")", chunk, chunk * CKPT_CHUNK_SIZE,
			 (chunk + 1) * CKPT_CHUNK_SIZE - 1);
		expect_rejected(dir, -EBADMSG, msg);
	}

	damaged_copy(f, "flip-disk", dir, sizeof(dir));
	flip_byte(dir, "disk0", DISK_SIZE - 50);
	expect_rejected(dir, -EBADMSG, "file disk0: checksum mismatch");
}

/* A damaged disk image is never restored: the destination keeps its contents. */
static void test_ckpt_restore_damaged_disk(void **state)
{
	struct fixture *f = *state;
	struct ckpt_reader *r;
	char dir[256];
	char dest[256];
	char expected[512];
	char err[512];
	size_t len;
	uint8_t *buf;

	damaged_copy(f, "restore-damaged", dir, sizeof(dir));
	flip_byte(dir, "disk0", 5);
	snprintf(dest, sizeof(dest), "%s/keep.img", f->root);
	write_file_at(dest, 0, "precious", 8);

	assert_int_equal(ckpt_reader_open(&r, dir, err, sizeof(err)), 0);
	assert_int_equal(ckpt_reader_restore_disk(r, "disk0", dest, NULL, err, sizeof(err)),
			 -EBADMSG);
	snprintf(expected, sizeof(expected), "checkpoint %s: file disk0: checksum mismatch (%s left unchanged)",
		 dir, dest);
	assert_string_equal(err, expected);
	ckpt_reader_close(r);

	buf = read_whole(dest, &len);
	assert_int_equal(len, 8);
	assert_memory_equal(buf, "precious", 8);
	free(buf);
	assert_int_equal(count_hidden(f->root), 0);
}

/* Forged manifests: edits with a recomputed checksum reach the field checks. */
static void test_ckpt_forged_manifest(void **state)
{
	struct fixture *f = *state;
	char dir[256];
	char path[512];
	/* Offsets: magic 8, version 4, created 8, nr_files 4, then 60-byte entries. */
	const uint64_t entry0 = 24;

	damaged_copy(f, "forged-name", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/manifest", dir);
	write_file_at(path, entry0, "../escape", 9);
	fix_manifest_checksum(dir);
	expect_rejected(dir, -EBADMSG, "manifest: file entry 0 has an invalid name");

	damaged_copy(f, "forged-count", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/manifest", dir);
	write_file_at(path, 20, "\xff\xff\x00\x00", 4);
	fix_manifest_checksum(dir);
	expect_rejected(dir, -EBADMSG, "manifest: 65535 files listed (at most 64)");

	damaged_copy(f, "forged-kind", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/manifest", dir);
	write_file_at(path, entry0 + 32, "\x09", 1);
	fix_manifest_checksum(dir);
	expect_rejected(dir, -EBADMSG, "manifest: file memory has unknown kind 9");
}

/* Random single-byte edits of the manifest with a valid checksum: never a crash. */
static void test_ckpt_manifest_mutations(void **state)
{
	struct fixture *f = *state;
	char dir[256];
	char path[512];
	uint8_t *orig;
	size_t len;

	damaged_copy(f, "mutate", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/manifest", dir);
	orig = read_whole(path, &len);
	for (unsigned iter = 0; iter < 3000; iter++) {
		struct ckpt_reader *r;
		char err[512];
		uint8_t *buf = malloc(len);
		size_t pos = rng_next() % (len - 8);

		memcpy(buf, orig, len);
		buf[pos] ^= (uint8_t)(1u << (rng_next() % 8));
		write_file_at(path, 0, buf, len);
		fix_manifest_checksum(dir);
		if (ckpt_reader_open(&r, dir, err, sizeof(err)) == 0) {
			/* Only fields that are not checked can change without rejection. */
			ckpt_reader_verify_all(r, err, sizeof(err));
			ckpt_reader_close(r);
		} else {
			assert_true(strncmp(err, "checkpoint ", 11) == 0);
		}
		free(buf);
	}
	write_file_at(path, 0, orig, len);
	free(orig);
}

/*
 * Random single-byte edits of `state`, with the manifest updated to match, so only
 * the section walker checks the edit: it must reject it cleanly, never crash.
 */
static void test_ckpt_state_mutations(void **state)
{
	struct fixture *f = *state;
	char dir[256];
	char state_path[512];
	char manifest_path[512];
	/* The state entry is the third one listed (memory, disk0, state); its checksum
	 * follows name[32], kind and size. */
	const uint64_t state_hash_off = 24 + 2 * 60 + 32 + 4 + 8;
	uint8_t *orig;
	size_t len;
	unsigned accepted = 0;

	damaged_copy(f, "mutate-state", dir, sizeof(dir));
	snprintf(state_path, sizeof(state_path), "%s/state", dir);
	snprintf(manifest_path, sizeof(manifest_path), "%s/manifest", dir);
	orig = read_whole(state_path, &len);
	for (unsigned iter = 0; iter < 3000; iter++) {
		struct ckpt_reader *r;
		char err[512];
		uint8_t *buf = malloc(len);
		uint8_t le[8];
		uint64_t h;

		memcpy(buf, orig, len);
		buf[rng_next() % len] ^= (uint8_t)(1u << (rng_next() % 8));
		write_file_at(state_path, 0, buf, len);
		h = ckpt_hash_buffer(buf, len);
		for (unsigned i = 0; i < 8; i++)
			le[i] = (uint8_t)(h >> (8 * i));
		write_file_at(manifest_path, state_hash_off, le, 8);
		fix_manifest_checksum(dir);
		if (ckpt_reader_open(&r, dir, err, sizeof(err)) == 0) {
			accepted++;
			ckpt_reader_close(r);
		} else {
			assert_true(strncmp(err, "checkpoint ", 11) == 0);
		}
		free(buf);
	}
	/* Only edits of padding bytes can pass, and padding is a small part of the file. */
	assert_true(accepted < 3000 / 4);
	free(orig);
}

static int fail_at_step;
static const char *fail_step;

static int fault_hook(const char *step)
{
	if (strcmp(step, fail_step) == 0)
		return fail_at_step;
	return 0;
}

static void expect_generation(const char *dir, const char *gen)
{
	struct ckpt_reader *r;
	char err[512];
	const char *p;
	size_t len;

	assert_int_equal(ckpt_reader_open(&r, dir, err, sizeof(err)), 0);
	assert_int_equal(ckpt_reader_verify_all(r, err, sizeof(err)), 0);
	p = ckpt_reader_section(r, "generation", &len);
	assert_non_null(p);
	assert_int_equal(len, strlen(gen));
	assert_memory_equal(p, gen, len);
	ckpt_reader_close(r);
}

static void test_ckpt_replace_and_failures(void **state)
{
	struct fixture *f = *state;
	static const char *steps[] = { "memory", "disk", "state", "manifest", "rename" };
	bool replaced = false;

	assert_int_equal(write_checkpoint(f, f->ckpt, "2", &replaced), 0);
	assert_true(replaced);
	expect_generation(f->ckpt, "2");
	assert_int_equal(count_hidden(f->root), 0);

	/* A failure at every step leaves generation 2 in place and no temporary behind. */
	ckpt_set_fault_hook(fault_hook);
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		fail_step = steps[i];
		fail_at_step = -EIO;
		assert_int_equal(write_checkpoint(f, f->ckpt, "3", &replaced), -EIO);
		expect_generation(f->ckpt, "2");
		assert_int_equal(count_hidden(f->root), 0);
	}
	ckpt_set_fault_hook(NULL);

	/* A new name is created, not replaced. */
	{
		char other[256];

		snprintf(other, sizeof(other), "%s/other.ckp", f->root);
		assert_int_equal(write_checkpoint(f, other, "4", &replaced), 0);
		assert_false(replaced);
		expect_generation(other, "4");
	}
}

static void test_ckpt_rejects_foreign_target(void **state)
{
	struct fixture *f = *state;
	struct ckpt_writer *w;
	char path[256];
	char inner[300];

	snprintf(path, sizeof(path), "%s/notckpt", f->root);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(inner, sizeof(inner), "%s/data", path);
	write_file_at(inner, 0, "x", 1);
	assert_int_equal(ckpt_writer_open(&w, path), -EEXIST);

	snprintf(path, sizeof(path), "%s/plainfile", f->root);
	write_file_at(path, 0, "x", 1);
	assert_int_equal(ckpt_writer_open(&w, path), -EEXIST);

	/* An empty directory may be replaced. */
	snprintf(path, sizeof(path), "%s/empty.ckp", f->root);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(ckpt_writer_open(&w, path), 0);
	assert_int_equal(ckpt_writer_add_section(w, "vm", "x", 1), 0);
	assert_int_equal(ckpt_writer_add_section(w, "vm", "y", 1), -EEXIST);
	assert_int_equal(ckpt_writer_add_section(w, "a-name-that-is-32-characters-lon", "x", 1),
			 -EINVAL);
	assert_int_equal(ckpt_writer_add_section(w, "../x", "x", 1), -EINVAL);
	assert_int_equal(ckpt_writer_add_disk(w, "state", f->disk, NULL), -EINVAL);
	assert_int_equal(ckpt_writer_commit(w, NULL), 0);
	{
		struct ckpt_reader *r;
		char err[512];

		assert_int_equal(ckpt_reader_open(&r, path, err, sizeof(err)), 0);
		assert_int_equal(ckpt_reader_memory_fd(r), -1);
		assert_int_equal(ckpt_reader_disk_count(r), 0);
		ckpt_reader_close(r);
	}
}

static void test_ckpt_cleanup_stale(void **state)
{
	struct fixture *f = *state;
	char path[256];
	char file[300];

	/* 4194305 is above PID_MAX_LIMIT, so no process has it. */
	snprintf(path, sizeof(path), "%s/.dead.ckp.tmp-4194305-0000abcd", f->root);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(file, sizeof(file), "%s/memory", path);
	write_file_at(file, 0, "x", 1);
	snprintf(path, sizeof(path), "%s/.alive.ckp.tmp-%d-0000abcd", f->root, (int)getpid());
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/.unrelated", f->root);
	assert_int_equal(mkdir(path, 0700), 0);

	assert_int_equal(ckpt_cleanup_stale(f->root), 1);
	assert_int_equal(count_hidden(f->root), 2);
	assert_int_equal(ckpt_cleanup_stale(f->root), 0);
}

/* ENOSPC on a 1 MiB tmpfs: the old checkpoint survives and nothing is left behind. */
static void test_ckpt_enospc(void **state)
{
	struct fixture *f = *state;
	struct ckpt_writer *w;
	struct guest_mem small;
	char mnt[256];
	char dir[300];
	bool replaced;
	int ret;

	snprintf(mnt, sizeof(mnt), "%s/tiny", f->root);
	assert_int_equal(mkdir(mnt, 0700), 0);
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=1m") != 0)
		skip();
	snprintf(dir, sizeof(dir), "%s/a.ckp", mnt);

	assert_int_equal(ckpt_writer_open(&w, dir), 0);
	assert_int_equal(ckpt_writer_add_section(w, "generation", "1", 1), 0);
	assert_int_equal(ckpt_writer_commit(w, &replaced), 0);

	/* 8 MiB of non-zero memory cannot fit in 1 MiB. */
	alloc_guest_mem(&small);
	for (unsigned i = 0; i < small.nr_regions; i++)
		memset(small.regions[i].host, 0x5a, small.regions[i].size);
	assert_int_equal(ckpt_writer_open(&w, dir), 0);
	assert_int_equal(ckpt_writer_add_section(w, "generation", "2", 1), 0);
	ret = ckpt_writer_add_memory(w, &small, NULL, NULL);
	assert_int_equal(ret, -ENOSPC);
	ckpt_writer_abort(w);
	free_guest_mem(&small);

	expect_generation(dir, "1");
	assert_int_equal(count_hidden(mnt), 0);
	assert_int_equal(umount(mnt), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ckpt_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ckpt_damage_sizes_and_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ckpt_damage_flipped_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ckpt_restore_damaged_disk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ckpt_forged_manifest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ckpt_manifest_mutations, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ckpt_state_mutations, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ckpt_replace_and_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ckpt_rejects_foreign_target, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ckpt_cleanup_stale, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ckpt_enospc, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
