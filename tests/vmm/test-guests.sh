#!/usr/bin/env bash
# cryo-vmm runs the small test guests on this machine's /dev/kvm: serial output,
# the test-result port, 1 and 2 vCPUs, and deterministic output.
source "$(dirname "$0")/lib.sh"
require_built

run_guest() { # NAME EXPECTED_STATUS VMM_ARGS...
	local name=$1 want=$2; shift 2
	local status=0
	timeout 120 "$VMM" --console stdio "$@" </dev/null >"$work/$name.out" 2>"$work/$name.log" || status=$?
	if [ "$status" -ne "$want" ]; then
		cat "$work/$name.log" >&2
		fail "$name: exit status $status, expected $want"
	fi
}

run_guest hello 16 --kernel "$GUESTS/hello.elf" --memory 32
cmp "$work/hello.out" "$EXPECTED/hello.txt" || fail "hello: console output differs from $EXPECTED/hello.txt"
echo "ok hello: output and exit status 16"

run_guest counter 16 --kernel "$GUESTS/counter.elf" --memory 64
cmp "$work/counter.out" "$EXPECTED/counter.txt" || fail "counter: output differs from $EXPECTED/counter.txt"
echo "ok counter: deterministic output"

run_guest counter-smp 16 --kernel "$GUESTS/counter-smp.elf" --memory 64 --cpus 2
cmp "$work/counter-smp.out" "$EXPECTED/counter-smp.txt" || fail "counter-smp: output differs"
echo "ok counter-smp: 2 vCPUs, deterministic output"

if [ -f "$GUESTS/irqtest.elf" ]; then
	run_guest irqtest 16 --kernel "$GUESTS/irqtest.elf" --memory 32
	cmp "$work/irqtest.out" "$EXPECTED/irqtest.txt" || fail "irqtest: output differs"
	echo "ok irqtest: interrupts delivered"
fi
