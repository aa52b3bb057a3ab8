/*
 * ckpt-forge SRC DST [cpus=N] [cpuid=unsupported]: copies checkpoint SRC to DST
 * with its VM definition changed, and valid checksums, so tests can check that
 * cryo-vmm rejects a well-formed checkpoint its host cannot run. Test tool only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "snapshot/ckpt.h"
#include "vmm/vmstate.h"

static int forge_vm(const void *data, size_t len, int cpus, int bad_cpuid,
		    struct ser_writer *out)
{
	struct vm_section vs;
	struct ser_reader r;
	char err[256];

	ser_reader_init(&r, data, len);
	if (vmstate_load_vm(&r, &vs, err, sizeof(err)) < 0) {
		fprintf(stderr, "ckpt-forge: %s\n", err);
		return -1;
	}
	if (cpus > 0)
		vs.cfg.nr_cpus = (unsigned)cpus;
	for (unsigned i = 0; bad_cpuid && i < vs.cpuid->nent; i++) {
		if (vs.cpuid->entries[i].function == 7 && vs.cpuid->entries[i].index == 0)
			vs.cpuid->entries[i].ebx = 0xffffffff;
	}
	ser_writer_init(out);
	vmstate_save_vm(out, &vs);
	free(vs.cpuid);
	return out->err;
}

int main(int argc, char **argv)
{
	struct ckpt_reader *r;
	struct ckpt_writer *w;
	struct guest_mem mem = { .nr_regions = 1 };
	char err[1024];
	int cpus = 0, bad_cpuid = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: ckpt-forge SRC DST [cpus=N] [cpuid=unsupported]\n");
		return 2;
	}
	for (int i = 3; i < argc; i++) {
		if (strncmp(argv[i], "cpus=", 5) == 0)
			cpus = atoi(argv[i] + 5);
		else if (strcmp(argv[i], "cpuid=unsupported") == 0)
			bad_cpuid = 1;
	}
	if (ckpt_reader_open(&r, argv[1], err, sizeof(err)) < 0) {
		fprintf(stderr, "ckpt-forge: %s\n", err);
		return 1;
	}
	if (ckpt_writer_open(&w, argv[2]) < 0)
		return 1;
	for (unsigned i = 0; i < ckpt_reader_section_count(r); i++) {
		const char *name = ckpt_reader_section_name(r, i);
		size_t len;
		const void *data = ckpt_reader_section(r, name, &len);
		struct ser_writer s;

		if (strcmp(name, "vm") == 0) {
			if (forge_vm(data, len, cpus, bad_cpuid, &s) < 0)
				return 1;
			ckpt_writer_add_section(w, name, s.buf, s.len);
			ser_writer_free(&s);
		} else {
			ckpt_writer_add_section(w, name, data, len);
		}
	}
	mem.regions[0].size = ckpt_reader_memory_size(r);
	mem.regions[0].host = mmap(NULL, mem.regions[0].size, PROT_READ, MAP_PRIVATE,
				   ckpt_reader_memory_fd(r), 0);
	if (mem.regions[0].host == MAP_FAILED || ckpt_writer_add_memory(w, &mem, NULL, NULL) < 0)
		return 1;
	for (unsigned i = 0; i < ckpt_reader_disk_count(r); i++) {
		char path[4096];

		snprintf(path, sizeof(path), "%s/%s", argv[1], ckpt_reader_disk_name(r, i));
		if (ckpt_writer_add_disk(w, ckpt_reader_disk_name(r, i), path, NULL) < 0)
			return 1;
	}
	ckpt_reader_close(r);
	return ckpt_writer_commit(w, NULL) < 0;
}
