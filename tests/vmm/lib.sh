# Shared helpers for the cryo-vmm tests with small test guests. Sourced, not run.
# Expects BUILD (the build directory, absolute); tests/run-all sets it.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-$repo/build}
VMM=${VMM:-$BUILD/cryo-vmm}
CTL=$BUILD/cryo-ctl
GUESTS=$BUILD/tests/guests
EXPECTED=$repo/tests/guests/expected

work=$(mktemp -d /tmp/cryo-test.XXXXXX)
started_pids=()

cleanup() {
	local pid
	for pid in "${started_pids[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

skip() {
	echo "SKIP: $*"
	exit 77
}

require_built() {
	[ -x "$VMM" ] || skip "cryo-vmm is not built at $VMM"
	[ -x "$CTL" ] || skip "cryo-ctl is not built at $CTL"
	[ -r /dev/kvm ] || skip "/dev/kvm is not available"
}

# Starts cryo-vmm in the background with its console in $work/NAME.out and its
# control socket at $work/NAME.sock; sets VMM_PID. Extra arguments go to cryo-vmm.
start_vmm() {
	local name=$1; shift
	rm -f "$work/$name.sock"
	"$VMM" --control "$work/$name.sock" --console stdio "$@" \
		</dev/null >"$work/$name.out" 2>"$work/$name.log" &
	VMM_PID=$!
	started_pids+=("$VMM_PID")
	local i
	for i in $(seq 1 200); do
		[ -S "$work/$name.sock" ] && return 0
		kill -0 "$VMM_PID" 2>/dev/null || { cat "$work/$name.log" >&2; fail "cryo-vmm $name exited early"; }
		sleep 0.05
	done
	fail "cryo-vmm $name did not open its control socket"
}

# Waits until file $1 contains the fixed string $2, for at most $3 seconds (default 60).
wait_for_output() {
	local file=$1 text=$2 limit=${3:-60} i
	for i in $(seq 1 $((limit * 20))); do
		grep -qF -- "$text" "$file" 2>/dev/null && return 0
		sleep 0.05
	done
	fail "timed out after ${limit}s waiting for '$text' in $file"
}

# Waits for pid $1 (started by this shell) to exit; sets EXIT_STATUS.
wait_exit() {
	EXIT_STATUS=0
	wait "$1" || EXIT_STATUS=$?
}

ctl() { # SOCKET REQUEST...
	"$CTL" "$@"
}
