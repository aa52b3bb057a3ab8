/*
 * Unit tests of the manager's checkpoint information (src/cli/ckpt_info.c): the "vm" section
 * is written here by cryo-vmm's own encoder (src/vmm/vmstate.c), so a change of its layout
 * that the manager's decoder does not follow fails these tests; checkpoints are real ones
 * from the snapshot writer. The CLI and cryo-vmm are executables, so their source files are
 * compiled in directly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/cli/ckpt_info.c"
#include "../../src/vmm/vmstate.c"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static struct kvm_cpuid2 *make_cpuid(void)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + sizeof(struct kvm_cpuid_entry2));

	c->nent = 1;
	c->entries[0].function = 0;
	c->entries[0].eax = 0xd;
	return c;
}

/* The "vm" section payload that cryo-vmm writes for a VM of this shape. */
static struct ser_writer encode_vm(uint64_t mem_mib, unsigned cpus, unsigned ndisks)
{
	struct vm_section vs;
	struct ser_writer w;

	memset(&vs, 0, sizeof(vs));
	snprintf(vs.cfg.kernel, sizeof(vs.cfg.kernel), "/guests/memtouch.elf");
	snprintf(vs.cfg.cmdline, sizeof(vs.cfg.cmdline), "touch=50 dirty=200");
	vs.cfg.mem_size = mem_mib << 20;
	vs.cfg.nr_cpus = cpus;
	vs.cfg.nr_disks = ndisks;
	for (unsigned i = 0; i < ndisks; i++) {
		snprintf(vs.cfg.disks[i].path, sizeof(vs.cfg.disks[i].path), "/disks/d%u.img", i);
		vs.cfg.disks[i].readonly = i == 1;
	}
	vs.realtime_ns = 123456789;
	vs.tsc_khz = 2000000;
	vs.cpuid = make_cpuid();
	ser_writer_init(&w);
	vmstate_save_vm(&w, &vs);
	free(vs.cpuid);
	return w;
}

/* The registry's definition that matches encode_vm(). */
static struct vm_def *make_def(uint64_t ram_mib, unsigned cpus, unsigned ndisks)
{
	struct vm_def *d = calloc(1, sizeof(*d));

	snprintf(d->name, sizeof(d->name), "m");
	snprintf(d->kernel, sizeof(d->kernel), "/guests/memtouch.elf");
	snprintf(d->cmdline, sizeof(d->cmdline), "touch=50 dirty=200");
	d->ram_mib = ram_mib;
	d->cpus = cpus;
	d->ndisks = ndisks;
	for (unsigned i = 0; i < ndisks; i++) {
		snprintf(d->disks[i].path, sizeof(d->disks[i].path), "/disks/d%u.img", i);
		d->disks[i].readonly = i == 1;
	}
	return d;
}

static void test_decode_matches_vmm_encoder(void **state)
{
	struct ser_writer w = encode_vm(64, 2, 3);
	struct vm_def *got = calloc(1, sizeof(*got)), *want = make_def(64, 2, 3);
	char err[128], diff[1024];

	(void)state;
	assert_int_equal(ckpt_info_decode_vm(w.buf, w.len, got, err, sizeof(err)), 0);
	assert_int_equal(got->ram_mib, 64);
	assert_int_equal(got->cpus, 2);
	assert_string_equal(got->kernel, "/guests/memtouch.elf");
	assert_string_equal(got->initrd, "");
	assert_string_equal(got->cmdline, "touch=50 dirty=200");
	assert_int_equal(got->ndisks, 3);
	assert_string_equal(got->disks[2].path, "/disks/d2.img");
	assert_true(got->disks[1].readonly);
	assert_false(got->disks[0].readonly);
	assert_true(ckpt_info_same_definition(got, want, diff, sizeof(diff)));
	assert_string_equal(diff, "");

	ser_writer_free(&w);
	free(got);
	free(want);
}

static void test_decode_rejects_truncated(void **state)
{
	struct ser_writer w = encode_vm(64, 1, 2);
	struct vm_def *got = calloc(1, sizeof(*got));
	char err[128];

	(void)state;
	/* Version, kernel, initrd, cmdline, memory, vCPUs, disk count, two disks. */
	size_t def_len = 4 + (4 + 20) + 4 + (4 + 18) + 8 + 4 + 4 + 2 * (4 + 13 + 1);

	/* Every cut inside the definition part must be reported, never read past the end. */
	for (size_t len = 0; len < def_len; len++) {
		int ret = ckpt_info_decode_vm(w.buf, len, got, err, sizeof(err));

		assert_int_equal(ret, -EBADMSG);
		assert_non_null(strstr(err, "section vm: "));
	}
	ser_writer_free(&w);
	free(got);
}

static void test_decode_rejects_unknown_version(void **state)
{
	struct ser_writer w = encode_vm(64, 1, 0);
	struct vm_def *got = calloc(1, sizeof(*got));
	char err[128];

	(void)state;
	w.buf[0] = 7;
	assert_int_equal(ckpt_info_decode_vm(w.buf, w.len, got, err, sizeof(err)), -ENOTSUP);
	assert_string_equal(err, "section vm: version 7, but this cryo reads version 1");
	ser_writer_free(&w);
	free(got);
}

static void test_decode_rejects_too_many_disks(void **state)
{
	struct ser_writer w;
	struct vm_def *got = calloc(1, sizeof(*got));
	char err[128];

	(void)state;
	ser_writer_init(&w);
	ser_u32(&w, 1);
	ser_u32(&w, 0);
	ser_u32(&w, 0);
	ser_u32(&w, 0);
	ser_u64(&w, 64 << 20);
	ser_u32(&w, 1);
	ser_u32(&w, VM_DISKS_MAX + 1);
	assert_int_equal(ckpt_info_decode_vm(w.buf, w.len, got, err, sizeof(err)), -EBADMSG);
	assert_string_equal(err, "section vm: malformed memory size or disk count");
	ser_writer_free(&w);
	free(got);
}

static void test_same_definition_lists_differences(void **state)
{
	struct vm_def *saved = make_def(64, 1, 1), *now = make_def(128, 2, 2);
	char diff[1024];

	(void)state;
	snprintf(now->cmdline, sizeof(now->cmdline), "touch=50");
	assert_false(ckpt_info_same_definition(saved, now, diff, sizeof(diff)));
	assert_string_equal(diff, "ram 64 MiB in the checkpoint, 128 MiB now; "
				  "cpus 1 in the checkpoint, 2 now; "
				  "cmdline 'touch=50 dirty=200' in the checkpoint, 'touch=50' now; "
				  "disks 1 in the checkpoint, 2 now; "
				  "disk 2 '(none)' in the checkpoint, '/disks/d1.img,ro' now");
	free(saved);
	free(now);
}

static void test_same_definition_readonly_flag(void **state)
{
	struct vm_def *saved = make_def(64, 1, 1), *now = make_def(64, 1, 1);
	char diff[1024];

	(void)state;
	now->disks[0].readonly = true;
	assert_false(ckpt_info_same_definition(saved, now, diff, sizeof(diff)));
	assert_string_equal(diff, "disk 1 '/disks/d0.img' in the checkpoint, '/disks/d0.img,ro' now");
	free(saved);
	free(now);
}

static void test_same_definition_small_buffer(void **state)
{
	struct vm_def *saved = make_def(64, 1, 0), *now = make_def(128, 2, 0);
	char diff[16];

	(void)state;
	assert_false(ckpt_info_same_definition(saved, now, diff, sizeof(diff)));
	assert_int_equal(strlen(diff), sizeof(diff) - 1);
	free(saved);
	free(now);
}

struct fixture {
	char dir[64];
	char ckp[96];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/test_cli_ckpt_info.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->ckp, sizeof(f->ckp), "%s/c1.ckp", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void write_checkpoint(const char *dir, bool with_vm)
{
	struct ser_writer w = encode_vm(64, 1, 0);
	struct ckpt_writer *cw;

	assert_int_equal(ckpt_writer_open(&cw, dir), 0);
	if (with_vm)
		assert_int_equal(ckpt_writer_add_section(cw, "vm", w.buf, w.len), 0);
	assert_int_equal(ckpt_writer_add_section(cw, "vcpu0", "regs", 4), 0);
	assert_int_equal(ckpt_writer_commit(cw, NULL), 0);
	ser_writer_free(&w);
}

static void test_read_real_checkpoint(void **state)
{
	struct fixture *f = *state;
	struct vm_def *def = calloc(1, sizeof(*def));
	struct ckpt_info info;
	int64_t before = time(NULL);
	char err[512];

	write_checkpoint(f->ckp, true);
	assert_int_equal(ckpt_info_read(f->ckp, &info, def, err, sizeof(err)), 0);
	assert_in_range(info.created, before - 1, time(NULL) + 1);
	assert_true(info.size_bytes > 0);
	assert_int_equal(def->ram_mib, 64);
	assert_int_equal(ckpt_info_read(f->ckp, &info, NULL, err, sizeof(err)), 0);
	free(def);
}

static void test_read_damaged_checkpoint(void **state)
{
	struct fixture *f = *state;
	struct ckpt_info info;
	char path[160], err[512];
	struct stat st;
	FILE *fp;
	int c;

	write_checkpoint(f->ckp, true);
	snprintf(path, sizeof(path), "%s/state", f->ckp);
	assert_int_equal(stat(path, &st), 0);
	fp = fopen(path, "r+b");
	assert_non_null(fp);
	fseek(fp, st.st_size / 2, SEEK_SET);
	c = fgetc(fp);
	fseek(fp, st.st_size / 2, SEEK_SET);
	fputc(c ^ 0xff, fp);
	fclose(fp);

	assert_int_equal(ckpt_info_read(f->ckp, &info, NULL, err, sizeof(err)), -EBADMSG);
	/* The reader's message names the checkpoint; the fault follows. */
	assert_non_null(strstr(err, f->ckp));
	assert_non_null(strstr(err, "checksum mismatch"));
}

static void test_read_missing_and_incomplete(void **state)
{
	struct fixture *f = *state;
	struct ckpt_info info;
	char err[512];

	assert_int_equal(ckpt_info_read(f->ckp, &info, NULL, err, sizeof(err)), -ENOENT);
	assert_int_equal(mkdir(f->ckp, 0700), 0);
	assert_false(ckpt_dir_is_complete(f->ckp));
	assert_int_equal(ckpt_info_read(f->ckp, &info, NULL, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "manifest"));
}

static void test_read_without_vm_section(void **state)
{
	struct fixture *f = *state;
	struct vm_def *def = calloc(1, sizeof(*def));
	struct ckpt_info info;
	char err[512], want[256];

	write_checkpoint(f->ckp, false);
	assert_int_equal(ckpt_info_read(f->ckp, &info, def, err, sizeof(err)), -EBADMSG);
	snprintf(want, sizeof(want), "checkpoint %s: file state: no section vm", f->ckp);
	assert_string_equal(err, want);
	free(def);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode_matches_vmm_encoder),
		cmocka_unit_test(test_decode_rejects_truncated),
		cmocka_unit_test(test_decode_rejects_unknown_version),
		cmocka_unit_test(test_decode_rejects_too_many_disks),
		cmocka_unit_test(test_same_definition_lists_differences),
		cmocka_unit_test(test_same_definition_readonly_flag),
		cmocka_unit_test(test_same_definition_small_buffer),
		cmocka_unit_test_setup_teardown(test_read_real_checkpoint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_damaged_checkpoint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_missing_and_incomplete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_without_vm_section, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
