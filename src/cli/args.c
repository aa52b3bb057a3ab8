/*
 * key=value argument parsing against a per-command table. The file format of jconf= is the
 * same pairs one per line; '#' starts a comment line and a value may be wrapped in double
 * quotes (CBSD writes its jconf files that way). Escapes inside quotes are not supported.
 */
#include "cli/args.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN 64

static int args_fail(struct args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int args_fail(struct args *a, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(a->err, sizeof(a->err), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static const struct arg_spec *args_find_spec(const struct args *a, const char *key)
{
	for (size_t i = 0; i < a->nspec; i++) {
		if (strcmp(a->spec[i].key, key) == 0)
			return &a->spec[i];
	}
	return NULL;
}

static int parse_u64(const char *s, uint64_t *out, char **end)
{
	unsigned long long v;

	if (!isdigit((unsigned char)s[0]))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, end, 10);
	if (errno)
		return -ERANGE;
	*out = v;
	return 0;
}

int args_parse_size_mib(const char *s, uint64_t *mib)
{
	uint64_t v, shift_kib;
	char *end;

	if (parse_u64(s, &v, &end))
		return -EINVAL;

	switch (tolower((unsigned char)*end)) {
	case '\0':
	case 'm':
		shift_kib = 10;
		break;
	case 'k':
		shift_kib = 0;
		break;
	case 'g':
		shift_kib = 20;
		break;
	case 't':
		shift_kib = 30;
		break;
	default:
		return -EINVAL;
	}
	if (*end) {
		end++;
		/* Accept "512M", "512MB" and "512MiB" alike. */
		if (strcasecmp(end, "b") != 0 && strcasecmp(end, "ib") != 0 && *end)
			return -EINVAL;
	}

	if (v > (UINT64_MAX >> 40))
		return -ERANGE;
	v <<= shift_kib;
	if (v % 1024)
		return -EINVAL;
	*mib = v / 1024;
	return *mib ? 0 : -EINVAL;
}

bool args_valid_name(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > NAME_MAX_LEN || s[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!isalnum(c) && c != '_' && c != '-' && c != '.')
			return false;
	}
	return true;
}

static bool enum_contains(const char *choices, const char *value)
{
	size_t len = strlen(value);
	const char *p = choices;

	while (*p) {
		const char *bar = strchr(p, '|');
		size_t wlen = bar ? (size_t)(bar - p) : strlen(p);

		if (wlen == len && strncmp(p, value, len) == 0)
			return true;
		if (!bar)
			break;
		p = bar + 1;
	}
	return false;
}

static int args_check_value(struct args *a, const struct arg_spec *s, const char *value)
{
	uint64_t v;
	char *end;

	if (!*value)
		return args_fail(a, "empty value for %s=", s->key);

	switch (s->type) {
	case ARG_STRING:
	case ARG_CONF:
		return 0;
	case ARG_NAME:
		if (!args_valid_name(value))
			return args_fail(a, "invalid %s=%s: use up to %d letters, digits, '_', '-' "
					 "or '.', not starting with '.'",
					 s->key, value, NAME_MAX_LEN);
		return 0;
	case ARG_UINT:
	case ARG_UINT0:
		if (parse_u64(value, &v, &end) || *end || (s->type == ARG_UINT && v == 0))
			return args_fail(a, "invalid %s=%s: expected an integer >= %d", s->key,
					 value, s->type == ARG_UINT ? 1 : 0);
		return 0;
	case ARG_SIZE_MIB:
		if (args_parse_size_mib(value, &v))
			return args_fail(a, "invalid %s=%s: expected a size in MiB, or with a "
					 "M/G/T suffix (e.g. 512 or 2G)", s->key, value);
		return 0;
	case ARG_BOOL:
		if (strcmp(value, "0") != 0 && strcmp(value, "1") != 0)
			return args_fail(a, "invalid %s=%s: expected 0 or 1", s->key, value);
		return 0;
	case ARG_ENUM:
		if (!enum_contains(s->choices, value))
			return args_fail(a, "invalid %s=%s: expected one of %s", s->key, value,
					 s->choices);
		return 0;
	}
	return args_fail(a, "internal error: no type for %s=", s->key);
}

int args_add(struct args *a, const char *key, const char *value)
{
	const struct arg_spec *s = args_find_spec(a, key);
	int ret;

	if (!s)
		return args_fail(a, "unknown key %s= (see --help)", key);
	if (!(s->flags & ARG_MULTI) && args_has(a, key))
		return args_fail(a, "%s= given more than once", key);
	if (a->n == ARGS_MAX)
		return args_fail(a, "too many arguments (maximum %d)", ARGS_MAX);

	ret = args_check_value(a, s, value);
	if (ret)
		return ret;

	a->values[a->n] = strdup(value);
	if (!a->values[a->n])
		return args_fail(a, "out of memory");
	a->keys[a->n] = s->key;
	a->n++;
	return 0;
}

static char *trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

static int args_load_conf(struct args *a, const char *path)
{
	char line[8192];
	unsigned lineno = 0;
	int ret = 0;
	FILE *f;

	f = fopen(path, "r");
	if (!f)
		return args_fail(a, "cannot open jconf=%s: %s", path, strerror(errno));

	while (fgets(line, sizeof(line), f)) {
		char *p = trim(line), *eq, *key, *value;
		size_t vlen;

		lineno++;
		if (!*p || *p == '#')
			continue;
		eq = strchr(p, '=');
		if (!eq) {
			ret = args_fail(a, "%s:%u: expected key=value", path, lineno);
			break;
		}
		*eq = '\0';
		key = trim(p);
		value = trim(eq + 1);
		vlen = strlen(value);
		if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"') {
			value[vlen - 1] = '\0';
			value++;
		}

		if (args_find_spec(a, key) && args_find_spec(a, key)->type == ARG_CONF) {
			ret = args_fail(a, "%s:%u: jconf= cannot be nested", path, lineno);
			break;
		}
		ret = args_add(a, key, value);
		if (ret) {
			char msg[ARGS_ERR_LEN];

			snprintf(msg, sizeof(msg), "%s", a->err);
			args_fail(a, "%s:%u: %s", path, lineno, msg);
			break;
		}
	}
	fclose(f);
	return ret;
}

int args_parse(struct args *a, const struct arg_spec *spec, int argc, char **argv,
	       unsigned options)
{
	int ret;

	memset(a, 0, sizeof(*a));
	a->spec = spec;
	while (spec[a->nspec].key)
		a->nspec++;

	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i];
		const char *eq = strchr(arg, '=');
		char key[64];

		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			a->help = true;
			return 0;
		}
		if (strcmp(arg, "--json") == 0 && (options & ARGS_JSON)) {
			a->json = true;
			continue;
		}
		if (arg[0] == '-')
			return args_fail(a, "unknown option %s (see --help)", arg);
		if (!eq) {
			if (!(options & ARGS_POSITIONAL))
				return args_fail(a, "expected key=value, got '%s' (see --help)",
						 arg);
			if (a->npositional == ARGS_MAX)
				return args_fail(a, "too many arguments (maximum %d)", ARGS_MAX);
			a->positional[a->npositional++] = arg;
			continue;
		}
		if ((size_t)(eq - arg) >= sizeof(key) || eq == arg)
			return args_fail(a, "invalid argument '%s': expected key=value", arg);
		memcpy(key, arg, (size_t)(eq - arg));
		key[eq - arg] = '\0';
		ret = args_add(a, key, eq + 1);
		if (ret)
			return ret;
	}

	for (size_t i = 0; i < a->nspec; i++) {
		if (a->spec[i].type == ARG_CONF && args_has(a, a->spec[i].key)) {
			ret = args_load_conf(a, args_get(a, a->spec[i].key));
			if (ret)
				return ret;
		}
	}

	for (size_t i = 0; i < a->nspec; i++) {
		if ((a->spec[i].flags & ARG_REQUIRED) && !args_has(a, a->spec[i].key))
			return args_fail(a, "missing required key %s=", a->spec[i].key);
	}
	return 0;
}

void args_free(struct args *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->values[i]);
	a->n = 0;
}

const char *args_get(const struct args *a, const char *key)
{
	for (size_t i = 0; i < a->n; i++) {
		if (strcmp(a->keys[i], key) == 0)
			return a->values[i];
	}
	return NULL;
}

size_t args_get_all(const struct args *a, const char *key, const char **out, size_t max)
{
	size_t count = 0;

	for (size_t i = 0; i < a->n && count < max; i++) {
		if (strcmp(a->keys[i], key) == 0)
			out[count++] = a->values[i];
	}
	return count;
}

bool args_has(const struct args *a, const char *key)
{
	return args_get(a, key) != NULL;
}

uint64_t args_get_u64(const struct args *a, const char *key, uint64_t def)
{
	const struct arg_spec *s = args_find_spec(a, key);
	const char *v = args_get(a, key);
	uint64_t out;

	if (!v || !s)
		return def;
	if (s->type == ARG_SIZE_MIB)
		return args_parse_size_mib(v, &out) ? def : out;
	return strtoull(v, NULL, 10);
}

void args_print_help(const char *command, const char *summary, const struct arg_spec *spec,
		     unsigned options)
{
	printf("usage: cryo %s", command);
	for (const struct arg_spec *s = spec; s->key; s++) {
		bool req = s->flags & ARG_REQUIRED;

		printf(" %s%s=...%s%s", req ? "" : "[", s->key, req ? "" : "]",
		       (s->flags & ARG_MULTI) ? "..." : "");
	}
	if (options & ARGS_JSON)
		printf(" [--json]");
	if (options & ARGS_POSITIONAL)
		printf(" [NAME...]");
	printf("\n\n%s\n\n", summary);
	for (const struct arg_spec *s = spec; s->key; s++)
		printf("  %-12s %s%s\n", s->key, s->help,
		       (s->flags & ARG_REQUIRED) ? " (required)" : "");
}
