/*
 * Unit tests of the key=value parser of the cryo commands (src/cli/args.c). The CLI is an
 * executable, not a library, so its source file is compiled into this test directly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/cli/args.c"

#include <stdio.h>
#include <unistd.h>

static const struct arg_spec test_spec[] = {
	{ "jname", ARG_NAME, ARG_REQUIRED, NULL, "name" },
	{ "ram", ARG_SIZE_MIB, 0, NULL, "ram" },
	{ "cpus", ARG_UINT, 0, NULL, "cpus" },
	{ "timeout", ARG_UINT0, 0, NULL, "timeout" },
	{ "fresh", ARG_BOOL, 0, NULL, "fresh" },
	{ "mode", ARG_ENUM, 0, "on|off|auto", "mode" },
	{ "disk", ARG_STRING, ARG_MULTI, NULL, "disk" },
	{ "jconf", ARG_CONF, 0, NULL, "conf" },
	{ .key = NULL },
};

/* Parse a NULL-terminated list of arguments. */
static int parse(struct args *a, unsigned options, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;

	va_start(ap, options);
	while (argc < 31 && (argv[argc] = va_arg(ap, char *)) != NULL)
		argc++;
	va_end(ap);
	return args_parse(a, test_spec, argc, argv, options);
}

static void test_parse_valid_keys(void **state)
{
	struct args a;

	assert_int_equal(parse(&a, 0, "ram=2G", "jname=vm-1.a", "cpus=4", "fresh=1", "mode=auto",
			       "timeout=0", NULL), 0);
	assert_string_equal(args_get(&a, "jname"), "vm-1.a");
	assert_int_equal(args_get_u64(&a, "ram", 0), 2048);
	assert_int_equal(args_get_u64(&a, "cpus", 0), 4);
	assert_int_equal(args_get_u64(&a, "timeout", 30), 0);
	assert_int_equal(args_get_u64(&a, "fresh", 0), 1);
	assert_string_equal(args_get(&a, "mode"), "auto");
	assert_false(args_has(&a, "disk"));
	assert_int_equal(args_get_u64(&a, "disk", 7), 7);
	args_free(&a);
}

static void test_parse_unknown_key(void **state)
{
	struct args a;

	assert_int_equal(parse(&a, 0, "jname=x", "colour=red", NULL), -EINVAL);
	assert_non_null(strstr(a.err, "unknown key colour="));
	args_free(&a);
}

static void test_parse_missing_required(void **state)
{
	struct args a;

	assert_int_equal(parse(&a, 0, "ram=64", NULL), -EINVAL);
	assert_non_null(strstr(a.err, "missing required key jname="));
	args_free(&a);
}

static void test_parse_bad_values(void **state)
{
	static const char *const bad[] = {
		"ram=0", "ram=12X", "ram=-5", "ram=1536K1", "cpus=0", "cpus=two", "cpus=1x",
		"timeout=-1", "fresh=2", "fresh=yes", "mode=toggle", "jname=.hidden",
		"jname=a/b", "jname=", "disk=",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char key[32];
		struct args a;

		snprintf(key, sizeof(key), "%.*s", (int)strcspn(bad[i], "="), bad[i]);
		assert_int_equal(parse(&a, 0, "jname=ok", bad[i], NULL), -EINVAL);
		/* The message names the key so the user knows which argument to fix. */
		assert_non_null(strstr(a.err, key));
		args_free(&a);
	}
}

static void test_parse_repeated_key(void **state)
{
	const char *disks[4];
	struct args a;

	assert_int_equal(parse(&a, 0, "jname=x", "disk=/a", "disk=/b,ro", NULL), 0);
	assert_int_equal(args_get_all(&a, "disk", disks, 4), 2);
	assert_string_equal(disks[0], "/a");
	assert_string_equal(disks[1], "/b,ro");
	args_free(&a);

	assert_int_equal(parse(&a, 0, "jname=x", "cpus=1", "cpus=2", NULL), -EINVAL);
	assert_non_null(strstr(a.err, "cpus= given more than once"));
	args_free(&a);
}

static void test_parse_positional_and_json(void **state)
{
	struct args a;

	assert_int_equal(parse(&a, 0, "jname=x", "vm1", NULL), -EINVAL);
	args_free(&a);
	assert_int_equal(parse(&a, 0, "jname=x", "--json", NULL), -EINVAL);
	args_free(&a);

	assert_int_equal(parse(&a, ARGS_POSITIONAL | ARGS_JSON, "vm1", "jname=x", "--json", "vm2",
			       NULL), 0);
	assert_true(a.json);
	assert_int_equal(a.npositional, 2);
	assert_string_equal(a.positional[0], "vm1");
	assert_string_equal(a.positional[1], "vm2");
	args_free(&a);
}

static void test_parse_help_skips_checks(void **state)
{
	struct args a;

	assert_int_equal(parse(&a, 0, "--help", NULL), 0);
	assert_true(a.help);
	args_free(&a);
}

static void test_size_suffixes(void **state)
{
	static const struct {
		const char *text;
		uint64_t mib;
	} cases[] = {
		{ "512", 512 }, { "512M", 512 }, { "512m", 512 }, { "512MB", 512 },
		{ "512MiB", 512 }, { "2G", 2048 }, { "2g", 2048 }, { "1T", 1048576 },
		{ "2048K", 2 },
	};
	uint64_t mib;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(args_parse_size_mib(cases[i].text, &mib), 0);
		assert_int_equal(mib, cases[i].mib);
	}
	assert_int_not_equal(args_parse_size_mib("1000K", &mib), 0);
	assert_int_not_equal(args_parse_size_mib("G", &mib), 0);
	assert_int_not_equal(args_parse_size_mib("99999999999999999999", &mib), 0);
}

static char *write_conf(const char *text)
{
	static char path[] = "/tmp/test_cli_args.XXXXXX";
	int fd;

	memcpy(path + strlen(path) - 6, "XXXXXX", 6);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void test_jconf_merges_keys(void **state)
{
	char *path = write_conf("# a VM\njname=\"fromfile\"\n\n  ram = 1G \ndisk=/d1\n");
	char arg[64];
	struct args a;

	snprintf(arg, sizeof(arg), "jconf=%s", path);
	assert_int_equal(parse(&a, 0, arg, "disk=/d0", NULL), 0);
	assert_string_equal(args_get(&a, "jname"), "fromfile");
	assert_int_equal(args_get_u64(&a, "ram", 0), 1024);
	assert_int_equal(args_get_all(&a, "disk", (const char *[4]){ 0 }, 4), 2);
	args_free(&a);

	/* A single key both on the command line and in the file is ambiguous. */
	assert_int_equal(parse(&a, 0, arg, "ram=2G", NULL), -EINVAL);
	assert_non_null(strstr(a.err, "ram= given more than once"));
	args_free(&a);
	unlink(path);
}

static void test_jconf_errors_name_line(void **state)
{
	char *path = write_conf("jname=x\ncpus=zero\n");
	char arg[64];
	struct args a;

	snprintf(arg, sizeof(arg), "jconf=%s", path);
	assert_int_equal(parse(&a, 0, arg, NULL), -EINVAL);
	assert_non_null(strstr(a.err, ":2: invalid cpus=zero"));
	args_free(&a);
	unlink(path);

	assert_int_equal(parse(&a, 0, "jconf=/nonexistent/file", NULL), -EINVAL);
	assert_non_null(strstr(a.err, "cannot open jconf="));
	args_free(&a);
}

static void test_valid_names(void **state)
{
	assert_true(args_valid_name("vm1"));
	assert_true(args_valid_name("a.b-c_d"));
	assert_false(args_valid_name(""));
	assert_false(args_valid_name(".x"));
	assert_false(args_valid_name("a b"));
	assert_false(args_valid_name("a/b"));
	assert_false(args_valid_name("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_valid_keys),
		cmocka_unit_test(test_parse_unknown_key),
		cmocka_unit_test(test_parse_missing_required),
		cmocka_unit_test(test_parse_bad_values),
		cmocka_unit_test(test_parse_repeated_key),
		cmocka_unit_test(test_parse_positional_and_json),
		cmocka_unit_test(test_parse_help_skips_checks),
		cmocka_unit_test(test_size_suffixes),
		cmocka_unit_test(test_jconf_merges_keys),
		cmocka_unit_test(test_jconf_errors_name_line),
		cmocka_unit_test(test_valid_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
