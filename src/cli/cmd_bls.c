/*
 * cryo bls: list VMs with CBSD's bls columns. What runs is read from each VM's run.lock,
 * pid file and control socket, so a crashed or killed VM shows as Off (or Suspended) at once.
 *
 * PCPU is the CPU time cryo-vmm (all its threads) used during a 200 ms window sampled while
 * bls runs, as a percentage of one host CPU, so a VM with busy vCPUs can exceed 100.
 * VM_CURMEM is the resident set (VmRSS) of cryo-vmm in MiB: guest memory the host has
 * actually backed, plus the VMM's own small share.
 */
#include "cli/cli.h"

#include "common/log.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define BLS_SAMPLE_MS 200
#define BLS_ROWS_MAX 1024
#define BLS_CELL_LEN 80

enum bls_column {
	COL_JNAME,
	COL_JID,
	COL_VM_RAM,
	COL_VM_CURMEM,
	COL_VM_CPUS,
	COL_PCPU,
	COL_VM_OS_TYPE,
	COL_IP4_ADDR,
	COL_STATUS,
	COL_VNC_PORT,
	COL_COUNT,
};

static const struct {
	const char *name;
	bool numeric;	/* printed without quotes in JSON */
} bls_columns[COL_COUNT] = {
	[COL_JNAME] = { "JNAME", false },     [COL_JID] = { "JID", true },
	[COL_VM_RAM] = { "VM_RAM", true },    [COL_VM_CURMEM] = { "VM_CURMEM", true },
	[COL_VM_CPUS] = { "VM_CPUS", true },  [COL_PCPU] = { "PCPU", true },
	[COL_VM_OS_TYPE] = { "VM_OS_TYPE", false }, [COL_IP4_ADDR] = { "IP4_ADDR", false },
	[COL_STATUS] = { "STATUS", false },   [COL_VNC_PORT] = { "VNC_PORT", true },
};

struct bls_row {
	char cells[COL_COUNT][BLS_CELL_LEN];
	pid_t pid;
	uint64_t cpu_ticks;
};

struct bls_state {
	struct cli *cli;
	struct bls_row *rows;
	size_t nrows;
};

static const struct arg_spec bls_args[] = {
	{ "display", ARG_STRING, 0, NULL, "comma-separated columns to show (default: all)" },
	{ "header", ARG_BOOL, 0, NULL, "0: leave out the header line" },
	{ .key = NULL },
};

static int bls_add_row(const struct vm_def *def, void *arg)
{
	struct bls_state *st = arg;
	struct vm_paths paths;
	struct vm_runtime rt;
	struct bls_row *row;
	uint64_t rss_kib = 0;

	if (st->nrows == BLS_ROWS_MAX)
		return -E2BIG;
	row = &st->rows[st->nrows++];
	memset(row, 0, sizeof(*row));

	if (vm_paths_init(&paths, st->cli->home, def->name) == 0)
		vm_probe(&paths, &rt);
	else
		rt = (struct vm_runtime){ .status = VM_OFF };
	row->pid = rt.pid;
	if (rt.pid)
		proc_stat_read(rt.pid, &row->cpu_ticks, NULL);
	if (rt.pid)
		proc_rss_kib(rt.pid, &rss_kib);

	snprintf(row->cells[COL_JNAME], BLS_CELL_LEN, "%s", def->name);
	snprintf(row->cells[COL_JID], BLS_CELL_LEN, "%d", (int)rt.pid);
	snprintf(row->cells[COL_VM_RAM], BLS_CELL_LEN, "%llu", (unsigned long long)def->ram_mib);
	snprintf(row->cells[COL_VM_CURMEM], BLS_CELL_LEN, "%llu",
		 (unsigned long long)(rss_kib / 1024));
	snprintf(row->cells[COL_VM_CPUS], BLS_CELL_LEN, "%u", def->cpus);
	snprintf(row->cells[COL_PCPU], BLS_CELL_LEN, "0.0");
	snprintf(row->cells[COL_VM_OS_TYPE], BLS_CELL_LEN, "linux");
	snprintf(row->cells[COL_IP4_ADDR], BLS_CELL_LEN, "DHCP");
	snprintf(row->cells[COL_STATUS], BLS_CELL_LEN, "%s", vm_status_name(rt.status));
	snprintf(row->cells[COL_VNC_PORT], BLS_CELL_LEN, "0");
	return 0;
}

/* Sample CPU time again after BLS_SAMPLE_MS and fill in PCPU of every running VM. */
static void bls_sample_pcpu(struct bls_state *st)
{
	long ticks_per_s = sysconf(_SC_CLK_TCK);
	bool any = false;

	for (size_t i = 0; i < st->nrows; i++)
		any |= st->rows[i].pid != 0;
	if (!any || ticks_per_s <= 0)
		return;

	usleep(BLS_SAMPLE_MS * 1000);
	for (size_t i = 0; i < st->nrows; i++) {
		struct bls_row *row = &st->rows[i];
		uint64_t now;
		double pct;

		if (!row->pid || proc_stat_read(row->pid, &now, NULL))
			continue;
		pct = (double)(now - row->cpu_ticks) * 100.0 * 1000.0 /
		      ((double)ticks_per_s * BLS_SAMPLE_MS);
		snprintf(row->cells[COL_PCPU], BLS_CELL_LEN, "%.1f", pct);
	}
}

/* Parse display= into a list of columns; returns how many, or -EINVAL after logging. */
static int bls_parse_display(const char *display, enum bls_column *cols)
{
	char buf[512], *tok, *save;
	int n = 0;

	if (!display) {
		for (int c = 0; c < COL_COUNT; c++)
			cols[n++] = (enum bls_column)c;
		return n;
	}
	snprintf(buf, sizeof(buf), "%s", display);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int c;

		for (c = 0; c < COL_COUNT; c++) {
			if (strcasecmp(tok, bls_columns[c].name) == 0)
				break;
		}
		if (c == COL_COUNT || n == COL_COUNT) {
			log_error("bls", "invalid display=%s: unknown column '%s'; columns are "
				  "jname,jid,vm_ram,vm_curmem,vm_cpus,pcpu,vm_os_type,ip4_addr,"
				  "status,vnc_port", display, tok);
			return -EINVAL;
		}
		cols[n++] = (enum bls_column)c;
	}
	return n;
}

static void bls_print_table(const struct bls_state *st, const enum bls_column *cols, int ncols,
			    bool header)
{
	size_t width[COL_COUNT] = { 0 };

	for (int i = 0; i < ncols; i++) {
		width[i] = header ? strlen(bls_columns[cols[i]].name) : 0;
		for (size_t r = 0; r < st->nrows; r++) {
			size_t len = strlen(st->rows[r].cells[cols[i]]);

			if (len > width[i])
				width[i] = len;
		}
	}

	if (header) {
		for (int i = 0; i < ncols; i++)
			printf(i + 1 < ncols ? "%-*s  " : "%-*s\n", i + 1 < ncols ? (int)width[i] : 0,
			       bls_columns[cols[i]].name);
	}
	for (size_t r = 0; r < st->nrows; r++) {
		for (int i = 0; i < ncols; i++)
			printf(i + 1 < ncols ? "%-*s  " : "%-*s\n", i + 1 < ncols ? (int)width[i] : 0,
			       st->rows[r].cells[cols[i]]);
	}
}

static void json_print_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void bls_print_json(const struct bls_state *st, const enum bls_column *cols, int ncols)
{
	printf("[");
	for (size_t r = 0; r < st->nrows; r++) {
		printf("%s{", r ? ",\n " : "");
		for (int i = 0; i < ncols; i++) {
			char key[32];
			size_t k;

			for (k = 0; bls_columns[cols[i]].name[k] && k + 1 < sizeof(key); k++)
				key[k] = (char)tolower((unsigned char)bls_columns[cols[i]].name[k]);
			key[k] = '\0';
			printf("%s\"%s\": ", i ? ", " : "", key);
			if (bls_columns[cols[i]].numeric)
				printf("%s", st->rows[r].cells[cols[i]]);
			else
				json_print_string(st->rows[r].cells[cols[i]]);
		}
		printf("}");
	}
	printf("]\n");
}

static int bls_collect(struct cli *cli, const struct args *a, struct bls_state *st)
{
	struct registry *reg = cli_registry(cli);
	struct vm_paths paths;
	struct vm_def *def;
	int ret = 0;

	if (!reg)
		return -EIO;
	if (a->npositional == 0) {
		ret = registry_vm_foreach(reg, bls_add_row, st);
		if (ret)
			log_error("bls", "cannot list VMs: %s", ret == -E2BIG ?
				  "too many" : registry_errmsg(reg));
		return ret;
	}

	def = malloc(sizeof(*def));
	if (!def)
		return -ENOMEM;
	for (size_t i = 0; i < a->npositional && !ret; i++) {
		ret = cli_find_vm(cli, "bls", a->positional[i], def, &paths);
		if (!ret)
			ret = bls_add_row(def, st);
	}
	free(def);
	return ret;
}

int cmd_bls(struct cli *cli, int argc, char **argv)
{
	struct bls_state st = { .cli = cli };
	enum bls_column cols[COL_COUNT];
	struct args a;
	int ret, ncols, status = CLI_EXIT_ERROR;

	ret = cli_parse_args(&a, "bls", "List VMs. STATUS is On, Off, Paused or Suspended "
			     "(hibernated); PCPU is the VMM's share of one CPU over 200 ms.",
			     bls_args, argc, argv, ARGS_POSITIONAL | ARGS_JSON);
	if (ret) {
		args_free(&a);
		return ret > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
	}
	ncols = bls_parse_display(args_get(&a, "display"), cols);
	if (ncols < 0) {
		status = CLI_EXIT_USAGE;
		goto out;
	}

	st.rows = calloc(BLS_ROWS_MAX, sizeof(*st.rows));
	if (!st.rows || bls_collect(cli, &a, &st))
		goto out;
	bls_sample_pcpu(&st);

	if (a.json)
		bls_print_json(&st, cols, ncols);
	else
		bls_print_table(&st, cols, ncols, args_get_u64(&a, "header", 1) == 1);
	status = CLI_EXIT_OK;

out:
	free(st.rows);
	args_free(&a);
	return status;
}
