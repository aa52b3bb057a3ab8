/* Command-line options of cryo-vmm. */
#ifndef CRYO_VMM_OPTIONS_H
#define CRYO_VMM_OPTIONS_H

#include "machine/machine.h"

struct vmm_options {
	struct vm_config cfg;
	const char *console; /* "stdio", "socket:PATH" or "none" */
	const char *control; /* control socket path, or NULL */
	const char *restore; /* checkpoint directory, or NULL */
	const char *pidfile;
	bool verify_memory; /* restore: check the memory image's checksums first (default) */
};

/*
 * Parses argv. Returns 0 to run, 1 when --help was printed, or -EINVAL after
 * printing a message that names the bad option.
 */
int vmm_parse_options(int argc, char **argv, struct vmm_options *o);
/* Parses "512", "512M", "2G" (MiB without a suffix) into bytes; returns -EINVAL if bad. */
int vmm_parse_size(const char *s, uint64_t *bytes);

#endif
