#!/usr/bin/env bash
# Bad options to cryo-vmm: each gets a message naming what is wrong, exit status 1,
# and leaves every file as it was (no socket, pid file or disk change).
source "$(dirname "$0")/lib.sh"
require_built

kernel=$GUESTS/hello.elf
mkdir "$work/files"
printf 'not a kernel at all\n' >"$work/files/notakernel"
head -c 1048576 /dev/zero >"$work/files/disk.img"
cp "$work/files/disk.img" "$work/files/disk2.img"
touch "$work/files/unreadable"
chmod 000 "$work/files/unreadable"
before=$(cd "$work/files" && ls -l --time-style=full-iso && sha256sum disk.img disk2.img)

expect_error() { # DESCRIPTION EXPECTED_MESSAGE_PART ARGS...
	local what=$1 msg=$2; shift 2
	local status=0
	timeout 30 "$VMM" --console none --control "$work/files/ctl.sock" --pidfile "$work/files/pid" \
		"$@" </dev/null >"$work/out" 2>"$work/err" || status=$?
	[ "$status" -eq 1 ] || fail "$what: exit status $status, expected 1"
	grep -qF -- "$msg" "$work/err" || { cat "$work/err" >&2; fail "$what: message lacks '$msg'"; }
	local now
	now=$(cd "$work/files" && ls -l --time-style=full-iso && sha256sum disk.img disk2.img)
	[ "$now" = "$before" ] || fail "$what: files changed"
	echo "ok $what: $(head -n1 "$work/err")"
}

expect_error "missing kernel" "invalid --kernel '$work/files/nope'" --kernel "$work/files/nope"
if [ "$(id -u)" -ne 0 ]; then
	expect_error "unreadable kernel" "Permission denied" --kernel "$work/files/unreadable"
fi
expect_error "not a kernel" "is not a kernel" --kernel "$work/files/notakernel"
expect_error "no kernel option" "missing --kernel" --memory 64
expect_error "memory too small for the kernel" "give the VM more memory" \
	--kernel "$(ls /boot/vmlinuz-* | head -n1)" --memory 16
expect_error "memory below the minimum" "invalid memory size" --kernel "$kernel" --memory 8
expect_error "memory larger than the host" "the host has only" --kernel "$kernel" --memory 100000G
expect_error "memory not a number" "invalid --memory" --kernel "$kernel" --memory lots
expect_error "zero vCPUs" "invalid --cpus '0'" --kernel "$kernel" --cpus 0
expect_error "nine vCPUs" "invalid --cpus '9'" --kernel "$kernel" --cpus 9
expect_error "missing disk" "invalid --disk '$work/files/missing.img'" \
	--kernel "$kernel" --disk "$work/files/missing.img"
expect_error "same disk twice" "is given twice" --kernel "$kernel" \
	--disk "$work/files/disk.img" --disk "$work/files/disk.img"
expect_error "unknown option" "Try 'cryo-vmm --help'" --kernel "$kernel" --frobnicate
expect_error "bad console" "invalid --console value" --kernel "$kernel" --console bogus
