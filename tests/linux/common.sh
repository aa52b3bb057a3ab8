# Shared set-up for the Linux guest tests (tests/linux/test-*.sh): builds the guest
# artefacts, makes a scratch directory the nested test host can write, and offers
# helpers that run inside it. Sourced, not run. Expects BUILD (absolute).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-$repo/build}
VMM=$BUILD/cryo-vmm
CTL=$BUILD/cryo-ctl
ART=$BUILD/linux-artifacts

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

skip() {
	echo "SKIP: $*"
	exit 77
}

[ -x "$VMM" ] || skip "cryo-vmm is not built at $VMM"
ls /boot/vmlinuz-* >/dev/null 2>&1 || skip "no Debian kernel in /boot (install linux-image-amd64)"
"$repo/tests/linux/build-artifacts" "$ART" >/dev/null

CRYO_SCRATCH=$(mktemp -d /tmp/cryo-linux.XXXXXX)
export CRYO_SCRATCH
# CRYO_KEEP_SCRATCH=1 keeps the guests' consoles and logs for a look after a failure.
trap '[ -n "${CRYO_KEEP_SCRATCH:-}" ] || rm -rf "$CRYO_SCRATCH"' EXIT

# Prints file $2 of ext4 image $1.
disk_cat() {
	debugfs -R "cat $2" "$1" 2>/dev/null
}

# Fails unless file $1 contains the fixed string $2; $3 describes the check.
assert_contains() {
	grep -qF -- "$2" "$1" || { echo "--- $1:"; tail -40 "$1"; fail "$3: '$2' not found"; } >&2
	echo "ok $3"
}

assert_absent_re() {
	if grep -qiE -- "$2" "$1"; then
		grep -iE -- "$2" "$1" >&2
		fail "$3"
	fi
	echo "ok $3"
}

# Kinds of kernel message that mean a checkpoint, restore or pause hurt the guest.
CLOCK_WARNINGS='soft lockup|rcu.*(stall|self-detected)|clocksource.*(unstable|watchdog|skew)|hung_task|blocked for more than|virtio.*(error|broken)|I/O error|Buffer I/O|EXT4-fs error|BUG:|Oops|WARNING: CPU'
