/*
 * key=value arguments of the cryo commands, in the style of CBSD's bhyve commands.
 *
 * Each command declares a table of the keys it accepts, with a type, whether the key is
 * required and whether it may repeat. args_parse() checks every argument against that table
 * and converts nothing in place: values stay strings that are known to be valid for their
 * type, so the typed getters cannot fail. Options that start with "--" (--help, --json) and
 * bare words (VM names for bls) are kept apart from the key=value pairs.
 */
#ifndef CRYO_CLI_ARGS_H
#define CRYO_CLI_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARGS_MAX 64
#define ARGS_ERR_LEN 256

enum arg_type {
	ARG_STRING,	/* any non-empty text */
	ARG_NAME,	/* a VM name: letters, digits, '_', '-', '.', not starting with '.' */
	ARG_UINT,	/* a decimal integer >= 1 */
	ARG_UINT0,	/* a decimal integer >= 0 */
	ARG_SIZE_MIB,	/* a size: plain number in MiB, or with a K/M/G/T suffix */
	ARG_BOOL,	/* 0 or 1 */
	ARG_ENUM,	/* one of the '|'-separated words in arg_spec.choices */
	ARG_CONF,	/* a file of key=value lines, one per line, merged into the arguments */
};

enum arg_flags {
	ARG_REQUIRED = 1 << 0,
	ARG_MULTI = 1 << 1,	/* may be given more than once */
};

struct arg_spec {
	const char *key;
	enum arg_type type;
	unsigned flags;
	const char *choices;	/* ARG_ENUM only */
	const char *help;	/* one line for --help, including the unit */
};

/* Options of args_parse(). */
enum args_options {
	ARGS_POSITIONAL = 1 << 0,	/* bare words are accepted (bls NAME...) */
	ARGS_JSON = 1 << 1,		/* --json is accepted */
};

struct args {
	const struct arg_spec *spec;
	size_t nspec;
	size_t n;
	const char *keys[ARGS_MAX];
	char *values[ARGS_MAX];		/* owned copies */
	const char *positional[ARGS_MAX];
	size_t npositional;
	bool json;
	bool help;
	char err[ARGS_ERR_LEN];
};

/*
 * Parse argv[0..argc) against spec (terminated by an entry with key NULL). Returns 0, or
 * -EINVAL with a message naming the key in a->err: unknown key, repeated single key, bad
 * value, missing required key. When --help is seen, returns 0 at once with a->help set and
 * skips the checks. A key of type ARG_CONF loads its file before required keys are checked.
 * A key given both on the command line and in the file is an error. Call args_free() after
 * any return.
 */
int args_parse(struct args *a, const struct arg_spec *spec, int argc, char **argv,
	       unsigned options);
void args_free(struct args *a);

/* Check and add one key=value pair (also used for the lines of a jconf file). */
int args_add(struct args *a, const char *key, const char *value);

/* First value of key, or NULL when absent. */
const char *args_get(const struct args *a, const char *key);
/* Every value of key in the order given; returns how many were stored in out (<= max). */
size_t args_get_all(const struct args *a, const char *key, const char **out, size_t max);
bool args_has(const struct args *a, const char *key);
/* Value of an ARG_UINT/ARG_UINT0/ARG_SIZE_MIB/ARG_BOOL key, or def when absent. */
uint64_t args_get_u64(const struct args *a, const char *key, uint64_t def);

/* Parse a size in MiB: "512" and "512M" are 512 MiB, "2G" is 2048; K must be whole MiB. */
int args_parse_size_mib(const char *s, uint64_t *mib);
/* Whether s is a valid VM name (also used for checkpoint names with dots allowed inside). */
bool args_valid_name(const char *s);

/* Print the usage of a command, generated from its table, to stdout. */
void args_print_help(const char *command, const char *summary, const struct arg_spec *spec,
		     unsigned options);

#endif
