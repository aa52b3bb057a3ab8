/*
 * Unit tests of the VM registry (src/cli/registry.c) on a SQLite file in a temporary
 * directory. The CLI is an executable, so its source file is compiled in directly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/cli/registry.c"

#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

struct fixture {
	char dir[64];
	char path[128];
	struct registry *reg;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];

	snprintf(f->dir, sizeof(f->dir), "/tmp/test_cli_registry.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/registry.sqlite", f->dir);
	if (registry_open(&f->reg, f->path, err, sizeof(err)))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	registry_close(f->reg);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static struct vm_def *make_def(const char *name, size_t ndisks)
{
	struct vm_def *def = calloc(1, sizeof(*def));

	snprintf(def->name, sizeof(def->name), "%s", name);
	def->ram_mib = 512;
	def->cpus = 2;
	snprintf(def->kernel, sizeof(def->kernel), "/boot/%s", name);
	snprintf(def->cmdline, sizeof(def->cmdline), "console=ttyS0 quiet");
	def->created = 1700000000;
	for (size_t i = 0; i < ndisks; i++) {
		snprintf(def->disks[i].path, sizeof(def->disks[i].path), "/disk%zu", i);
		def->disks[i].readonly = i % 2;
	}
	def->ndisks = ndisks;
	return def;
}

static void test_add_and_get(void **state)
{
	struct fixture *f = *state;
	struct vm_def *def = make_def("vm1", 3), *got = calloc(1, sizeof(*got));

	assert_int_equal(registry_vm_add(f->reg, def), 0);
	assert_int_equal(registry_vm_get(f->reg, "vm1", got), 0);
	assert_string_equal(got->name, "vm1");
	assert_int_equal(got->ram_mib, 512);
	assert_int_equal(got->cpus, 2);
	assert_string_equal(got->kernel, "/boot/vm1");
	assert_string_equal(got->initrd, "");
	assert_string_equal(got->cmdline, "console=ttyS0 quiet");
	assert_int_equal(got->created, 1700000000);
	assert_int_equal(got->last_exit, -1);
	assert_int_equal(got->ndisks, 3);
	assert_string_equal(got->disks[2].path, "/disk2");
	assert_false(got->disks[0].readonly);
	assert_true(got->disks[1].readonly);
	free(def);
	free(got);
}

static void test_add_duplicate(void **state)
{
	struct fixture *f = *state;
	struct vm_def *def = make_def("vm1", 1);

	assert_int_equal(registry_vm_add(f->reg, def), 0);
	def->ram_mib = 1024;
	assert_int_equal(registry_vm_add(f->reg, def), -EEXIST);
	assert_int_equal(registry_vm_get(f->reg, "vm1", def), 0);
	assert_int_equal(def->ram_mib, 512);
	free(def);
}

static void test_get_unknown(void **state)
{
	struct fixture *f = *state;
	struct vm_def *def = calloc(1, sizeof(*def));

	assert_int_equal(registry_vm_get(f->reg, "nope", def), -ENOENT);
	assert_int_equal(registry_vm_remove(f->reg, "nope"), -ENOENT);
	assert_int_equal(registry_vm_set_exit(f->reg, "nope", 0, 1), -ENOENT);
	free(def);
}

static void test_remove_deletes_disks(void **state)
{
	struct fixture *f = *state;
	struct vm_def *def = make_def("vm1", 2);
	sqlite3_stmt *st;

	assert_int_equal(registry_vm_add(f->reg, def), 0);
	assert_int_equal(registry_vm_remove(f->reg, "vm1"), 0);
	assert_int_equal(registry_vm_get(f->reg, "vm1", def), -ENOENT);

	assert_int_equal(sqlite3_prepare_v2(f->reg->db, "SELECT COUNT(*) FROM disks", -1, &st,
					    NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 0);
	sqlite3_finalize(st);

	/* The name can be used again with other disks. */
	assert_int_equal(registry_vm_add(f->reg, def), 0);
	free(def);
}

static void test_set_exit(void **state)
{
	struct fixture *f = *state;
	struct vm_def *def = make_def("vm1", 0);

	assert_int_equal(registry_vm_add(f->reg, def), 0);
	assert_int_equal(registry_vm_set_exit(f->reg, "vm1", 3, 1700000100), 0);
	assert_int_equal(registry_vm_get(f->reg, "vm1", def), 0);
	assert_int_equal(def->last_exit, 3);
	assert_int_equal(def->last_exit_time, 1700000100);
	free(def);
}

static int collect_names(const struct vm_def *def, void *arg)
{
	char *out = arg;

	strcat(out, def->name);
	strcat(out, def->ndisks ? "+," : ",");
	return 0;
}

static int stop_at_second(const struct vm_def *def, void *arg)
{
	int *count = arg;

	return ++*count == 2 ? 42 : 0;
}

static void test_foreach_sorted(void **state)
{
	struct fixture *f = *state;
	const char *names[] = { "zeta", "alpha", "mid" };
	char seen[64] = "";
	int count = 0;

	for (size_t i = 0; i < 3; i++) {
		struct vm_def *def = make_def(names[i], i);

		assert_int_equal(registry_vm_add(f->reg, def), 0);
		free(def);
	}
	assert_int_equal(registry_vm_foreach(f->reg, collect_names, seen), 0);
	assert_string_equal(seen, "alpha+,mid+,zeta,");
	assert_int_equal(registry_vm_foreach(f->reg, stop_at_second, &count), 42);
	assert_int_equal(count, 2);
}

static void test_reopen_keeps_data(void **state)
{
	struct fixture *f = *state;
	struct vm_def *def = make_def("vm1", 1);
	char err[256];

	assert_int_equal(registry_vm_add(f->reg, def), 0);
	registry_close(f->reg);
	assert_int_equal(registry_open(&f->reg, f->path, err, sizeof(err)), 0);
	assert_int_equal(registry_vm_get(f->reg, "vm1", def), 0);
	assert_int_equal(def->ndisks, 1);
	free(def);
}

static void test_newer_schema_rejected(void **state)
{
	struct fixture *f = *state;
	struct registry *other;
	char err[256] = "";

	assert_int_equal(sqlite3_exec(f->reg->db, "UPDATE schema_version SET version = 99", NULL,
				      NULL, NULL), SQLITE_OK);
	assert_int_equal(registry_open(&other, f->path, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "version 99 is newer"));
}

static void test_open_unwritable_dir(void **state)
{
	struct registry *r;
	char err[256] = "";

	assert_true(registry_open(&r, "/nonexistent-dir/registry.sqlite", err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "/nonexistent-dir/registry.sqlite"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_add_and_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_add_duplicate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_unknown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_deletes_disks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_exit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreach_sorted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_keeps_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_schema_rejected, setup, teardown),
		cmocka_unit_test(test_open_unwritable_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
