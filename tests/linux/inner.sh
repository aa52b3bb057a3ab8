# Helpers for scripts that run inside the nested test host (sourced there).
# Expects VMM, CTL, ART and CRYO_SCRATCH.
set -euo pipefail

# Starts cryo-vmm with the Linux test guest in the background. NAME names its files
# in $CRYO_SCRATCH: NAME.console (serial output), NAME.log (cryo-vmm's messages),
# /tmp/NAME.sock (control socket). Console input goes through a FIFO in the host's own
# /tmp, because the shared directory (9p) cannot hold FIFOs or sockets.
# Further arguments go to cryo-vmm. Sets VMM_PID.
start_linux() {
	local name=$1; shift
	local dir=$CRYO_SCRATCH fifo=/tmp/$name.in
	rm -f "$fifo" "/tmp/$name.sock"
	mkfifo "$fifo"
	"$VMM" --console stdio --control "/tmp/$name.sock" "$@" \
		<"$fifo" >"$dir/$name.console" 2>"$dir/$name.log" &
	VMM_PID=$!
	# Hold the FIFO open for writing so the guest's console input never sees end-of-file.
	exec {CONSOLE_FD}>"$fifo"
}

# Boots the test guest from $ART with 2 vCPUs and 512 MiB; extra arguments are added.
start_test_guest() {
	local name=$1 mode=$2; shift 2
	start_linux "$name" --kernel "$ART/vmlinuz" --initrd "$ART/initramfs.cpio.gz" \
		--cmdline "console=ttyS0 panic=-1 quiet cryo.test=$mode" --memory 512 --cpus 2 "$@"
}

# Waits until the console of NAME shows the fixed string TEXT, at most LIMIT seconds.
wait_console() {
	local name=$1 text=$2 limit=${3:-120} i
	for i in $(seq 1 $((limit * 10))); do
		grep -qF -- "$text" "$CRYO_SCRATCH/$name.console" && return 0
		kill -0 "$VMM_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "timed out waiting for '$text' on the console of $name" >&2
	return 1
}

# Types a line into the guest's console.
type_line() {
	printf '%s\n' "$1" >&"$CONSOLE_FD"
}

# Waits for cryo-vmm to exit (at most LIMIT seconds) and writes its status to NAME.status.
finish() {
	local name=$1 limit=${2:-120} status=0 i
	for i in $(seq 1 $((limit * 10))); do
		kill -0 "$VMM_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$VMM_PID" 2>/dev/null; then
		kill -KILL "$VMM_PID"
		echo "cryo-vmm $name did not exit within ${limit}s; killed" >&2
	fi
	wait "$VMM_PID" || status=$?
	exec {CONSOLE_FD}>&-
	echo "$status" >"$CRYO_SCRATCH/$name.status"
}
