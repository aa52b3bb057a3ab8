#!/bin/bash
# Boot one small test guest under QEMU (TCG by default) and compare its serial output with an
# expected file. Passes when the output matches byte for byte and the guest wrote result 0 to port
# 0x501 (isa-debug-exit makes QEMU exit with status (0 << 1) | 1 = 1).
#
# usage: run-qemu.sh ELF EXPECTED [--send-after TEXT BYTES] [--timeout SECONDS] [-- QEMU_ARGS...]
#   --send-after TEXT BYTES   once TEXT is in the output, write BYTES to the guest's serial input
#   QEMU_ARGS                 replace the defaults "-accel tcg -M q35 -m 256 -smp 2"
set -u

elf=$1
expected=$2
shift 2
send_after=""
send_bytes=""
timeout_s=120
qemu_args=(-accel tcg -M q35 -m 256 -smp 2)
while [ $# -gt 0 ]; do
	case $1 in
	--send-after) send_after=$2; send_bytes=$3; shift 3 ;;
	--timeout) timeout_s=$2; shift 2 ;;
	--) shift; qemu_args=("$@"); break ;;
	*) echo "run-qemu.sh: unknown option $1" >&2; exit 2 ;;
	esac
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkfifo "$work/in"
output="$work/out"

timeout "$timeout_s" qemu-system-x86_64 "${qemu_args[@]}" -kernel "$elf" -display none \
	-serial stdio -monitor none -no-reboot -device isa-debug-exit,iobase=0x501,iosize=4 \
	<"$work/in" >"$output" 2>"$work/err" &
qemu_pid=$!
# Hold the FIFO open for writing so that QEMU never reads end of file on the serial input.
exec 3>"$work/in"

if [ -n "$send_after" ]; then
	while kill -0 "$qemu_pid" 2>/dev/null && ! grep -qF -- "$send_after" "$output"; do
		sleep 0.2
	done
	printf '%s' "$send_bytes" >&3
fi
wait "$qemu_pid"
status=$?
exec 3>&-

if ! cmp -s "$expected" "$output"; then
	echo "FAIL: $elf: serial output differs from $expected:" >&2
	diff "$expected" "$output" | head -20 >&2
	cat "$work/err" >&2
	exit 1
fi
if [ "$status" -ne 1 ]; then
	echo "FAIL: $elf: QEMU exit status $status, expected 1 (guest result 0)" >&2
	cat "$work/err" >&2
	exit 1
fi
echo "ok: $elf ($(wc -c <"$output") bytes of output)"
