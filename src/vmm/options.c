#include "vmm/options.h"

#include "common/log.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
	"Usage: cryo-vmm --kernel PATH --memory SIZE [OPTION]...\n"
	"       cryo-vmm --restore DIR [--console SPEC] [--control PATH]\n"
	"Run one virtual machine on KVM until it powers off.\n"
	"\n"
	"  --kernel PATH       Linux bzImage, or an ELF image with a PVH entry note\n"
	"  --initrd PATH       initial ramdisk loaded beside the kernel\n"
	"  --cmdline STRING    kernel command line\n"
	"  --memory SIZE       guest RAM: MiB, or a number with an M or G suffix (default 256)\n"
	"  --cpus N            number of vCPUs, 1 to 8 (default 1)\n"
	"  --disk PATH[,ro]    raw disk image as a virtio-blk device; repeat for more\n"
	"                      disks; ',ro' makes the guest see a read-only disk\n"
	"  --console SPEC      serial console: 'stdio' (default), 'socket:PATH' (Unix\n"
	"                      socket replaying the last 64 KiB of output), or 'none'\n"
	"  --control PATH      Unix socket for the control protocol (docs/CONTROL.md)\n"
	"  --restore DIR       start from the checkpoint directory DIR instead of\n"
	"                      booting; the VM's definition comes from the checkpoint\n"
	"  --no-verify-memory  with --restore: skip checking the memory image's\n"
	"                      checksums, which reads the whole image; restore time\n"
	"                      then no longer grows with the memory in use, but a\n"
	"                      damaged memory image goes undetected\n"
	"  --pidfile PATH      write the process id to PATH\n"
	"  --help              print this help\n"
	"\n"
	"Exit status: 0 guest powered off, 1 error, 2 guest rebooted, 3 hibernated,\n"
	"4 guest crashed, 16+N a test guest wrote N to port 0x501.\n";

int vmm_parse_size(const char *s, uint64_t *bytes)
{
	char *end;
	unsigned long long v;
	uint64_t unit = 1ULL << 20;

	errno = 0;
	if (!*s || *s == '-')
		return -EINVAL;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	if (*end == 'M' || *end == 'm') {
		end++;
	} else if (*end == 'G' || *end == 'g') {
		unit = 1ULL << 30;
		end++;
	}
	if (*end || v > (UINT64_MAX / unit))
		return -EINVAL;
	*bytes = v * unit;
	return 0;
}

static int bad_option(const char *opt, const char *value, const char *why)
{
	log_error("options", "invalid %s '%s': %s", opt, value, why);
	return -EINVAL;
}

static int copy_path(char *dst, const char *src, const char *opt)
{
	if (strlen(src) >= MACHINE_PATH_MAX)
		return bad_option(opt, src, "too long");
	strcpy(dst, src);
	return 0;
}

static int add_disk(struct vm_config *cfg, const char *arg)
{
	char path[MACHINE_PATH_MAX];
	size_t len = strlen(arg);
	bool ro = false;

	if (len > 3 && strcmp(arg + len - 3, ",ro") == 0) {
		ro = true;
		len -= 3;
	}
	if (len == 0 || len >= sizeof(path))
		return bad_option("--disk", arg, "expected PATH or PATH,ro");
	if (cfg->nr_disks == MACHINE_MAX_DISKS)
		return bad_option("--disk", arg, "too many disks (at most 8)");
	memcpy(path, arg, len);
	path[len] = 0;
	if (access(path, ro ? R_OK : R_OK | W_OK) < 0)
		return bad_option("--disk", arg, strerror(errno));
	strcpy(cfg->disks[cfg->nr_disks].path, path);
	cfg->disks[cfg->nr_disks].readonly = ro;
	cfg->nr_disks++;
	return 0;
}

int vmm_parse_options(int argc, char **argv, struct vmm_options *o)
{
	enum { OPT_VERIFY = 256, OPT_NO_VERIFY, OPT_PIDFILE };
	static const struct option longopts[] = {
		{ "kernel", required_argument, NULL, 'k' },
		{ "initrd", required_argument, NULL, 'i' },
		{ "cmdline", required_argument, NULL, 'a' },
		{ "memory", required_argument, NULL, 'm' },
		{ "cpus", required_argument, NULL, 'c' },
		{ "disk", required_argument, NULL, 'd' },
		{ "console", required_argument, NULL, 's' },
		{ "control", required_argument, NULL, 'C' },
		{ "restore", required_argument, NULL, 'r' },
		{ "verify-memory", no_argument, NULL, OPT_VERIFY },
		{ "no-verify-memory", no_argument, NULL, OPT_NO_VERIFY },
		{ "pidfile", required_argument, NULL, OPT_PIDFILE },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	char *end;
	long n;
	int c, ret;

	memset(o, 0, sizeof(*o));
	o->cfg.mem_size = 256ULL << 20;
	o->cfg.nr_cpus = 1;
	o->console = "stdio";
	o->verify_memory = true;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'k':
			if ((ret = copy_path(o->cfg.kernel, optarg, "--kernel")) < 0)
				return ret;
			break;
		case 'i':
			if ((ret = copy_path(o->cfg.initrd, optarg, "--initrd")) < 0)
				return ret;
			break;
		case 'a':
			if ((ret = copy_path(o->cfg.cmdline, optarg, "--cmdline")) < 0)
				return ret;
			break;
		case 'm':
			if (vmm_parse_size(optarg, &o->cfg.mem_size) < 0)
				return bad_option("--memory", optarg,
						  "expected MiB, or a number with an M or G suffix");
			break;
		case 'c':
			errno = 0;
			n = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || n < 1 || n > MACHINE_MAX_CPUS)
				return bad_option("--cpus", optarg, "expected a number from 1 to 8");
			o->cfg.nr_cpus = (unsigned)n;
			break;
		case 'd':
			if ((ret = add_disk(&o->cfg, optarg)) < 0)
				return ret;
			break;
		case 's':
			o->console = optarg;
			break;
		case 'C':
			o->control = optarg;
			break;
		case 'r':
			o->restore = optarg;
			break;
		case OPT_VERIFY:
			o->verify_memory = true;
			break;
		case OPT_NO_VERIFY:
			o->verify_memory = false;
			break;
		case OPT_PIDFILE:
			o->pidfile = optarg;
			break;
		case 'h':
			fputs(usage, stdout);
			return 1;
		default:
			fputs("Try 'cryo-vmm --help'.\n", stderr);
			return -EINVAL;
		}
	}
	if (optind < argc)
		return bad_option("argument", argv[optind], "cryo-vmm takes only options");
	if (o->restore) {
		if (o->cfg.kernel[0] || o->cfg.nr_disks)
			return bad_option("--restore", o->restore,
					  "the checkpoint defines the VM; drop --kernel and --disk");
		return 0;
	}
	if (!o->cfg.kernel[0]) {
		log_error("options", "missing --kernel (or --restore); try 'cryo-vmm --help'");
		return -EINVAL;
	}
	if (access(o->cfg.kernel, R_OK) < 0)
		return bad_option("--kernel", o->cfg.kernel, strerror(errno));
	if (o->cfg.initrd[0] && access(o->cfg.initrd, R_OK) < 0)
		return bad_option("--initrd", o->cfg.initrd, strerror(errno));
	return 0;
}
