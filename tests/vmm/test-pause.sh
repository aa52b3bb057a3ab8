#!/usr/bin/env bash
# 100 pause/resume cycles under counter-smp, whose two vCPUs both compute until the
# end of the run (they meet at a barrier after each tick). The guest's output must
# equal the uninterrupted run's byte for byte and it must exit 16. `status` must
# report paused and running correctly, and while paused the console must stay
# silent and neither vCPU thread may use CPU time.
#
# 90 cycles are fast ones on one connection, with 0 to 3 ms of running time between
# them, so the guest is stopped at many different points. Every tenth cycle is a
# slow one driven by cryo-ctl, which samples the output size and the vCPU threads'
# CPU time twice, 200 ms apart. The guest runs only between cycles, for about 1 s in
# all (an estimate), so the 100 cycles end before it does: a whole run took 16 s on
# the loaded 2-core development machine and should take about 2.5 s on an idle one.
source "$(dirname "$0")/lib.sh"
require_built
POKE=$BUILD/sockpoke
[ -x "$POKE" ] || skip "sockpoke is not built at $POKE"

sock=$work/smp.sock
out=$work/smp.out

expect_reply() { # WHAT EXPECTED_PREFIX REQUEST...
	local what=$1 expected=$2 reply
	shift 2
	reply=$(timeout 30 "$CTL" "$sock" "$@" || true)
	[[ $reply == "$expected"* ]] || fail "$what: got '$reply', expected '$expected...'"
}

# Prints the CPU time (utime + stime, in clock ticks) of each vCPU thread.
vcpu_times() {
	local task
	for task in /proc/"$VMM_PID"/task/*; do
		[[ $(cat "$task/comm" 2>/dev/null) == vcpu* ]] || continue
		# Fields after the ")" that ends the name: utime and stime are 14 and 15 overall.
		sed 's/.*) //' "$task/stat" | awk '{ print $12 + $13 }'
	done
}

slow_cycle() { # CYCLE
	local n=$1 size1 size2 times1 times2
	expect_reply "cycle $n: pause" "ok state=paused" pause
	expect_reply "cycle $n: pause again" "ok state=paused" pause
	expect_reply "cycle $n: status while paused" "ok state=paused vcpus=2 " status
	size1=$(stat -c %s "$out")
	times1=$(vcpu_times)
	sleep 0.2
	size2=$(stat -c %s "$out")
	times2=$(vcpu_times)
	[ "$size1" -eq "$size2" ] || fail "cycle $n: console output grew from $size1 to $size2 bytes while paused"
	[ "$(wc -l <<<"$times1")" -eq 2 ] || fail "cycle $n: expected 2 vCPU threads, found: $times1"
	local before=($times1) after=($times2) i
	for i in 0 1; do
		# One tick (10 ms) of slack for the time a thread needs to park.
		[ $((after[i] - before[i])) -le 1 ] ||
			fail "cycle $n: vCPU thread $i used $((after[i] - before[i])) ticks of CPU while paused"
	done
	expect_reply "cycle $n: status still paused" "ok state=paused " status
	expect_reply "cycle $n: resume" "ok state=running" resume
	expect_reply "cycle $n: resume again" "ok state=running" resume
	expect_reply "cycle $n: status after resume" "ok state=running vcpus=2 " status
}

# FIRST: runs 9 fast cycles numbered FIRST.. on one connection and checks every reply.
fast_cycles() {
	local first=$1 actions=() expected=() i
	for i in $(seq 0 8); do
		actions+=('send=pause\n' lines=1:10000 'send=status\n' lines=1:10000
			'send=resume\n' lines=1:10000 'send=status\n' lines=1:10000 "sleep=$((i % 4))")
		expected+=("ok state=paused" "ok state=paused vcpus=2" "ok state=running"
			"ok state=running vcpus=2")
	done
	"$POKE" "$sock" "${actions[@]}" >"$work/fast.reply" ||
		fail "cycles $first to $((first + 8)): no reply in time (guest finished early?)"
	mapfile -t replies <"$work/fast.reply"
	[ "${#replies[@]}" -eq 36 ] || fail "cycles $first to $((first + 8)): ${#replies[@]} replies, expected 36"
	for i in "${!expected[@]}"; do
		[[ ${replies[$i]} == "${expected[$i]}"* ]] ||
			fail "cycle $((first + i / 4)): reply '${replies[$i]}', expected '${expected[$i]}...'"
	done
}

start_vmm smp --kernel "$GUESTS/counter-smp.elf" --memory 64 --cpus 2
wait_for_output "$out" "tick 5 "
expect_reply "status before" "ok state=running vcpus=2 " status

cycle=1
for batch in $(seq 1 10); do
	kill -0 "$VMM_PID" 2>/dev/null || fail "the guest finished after $((cycle - 1)) cycles, before 100"
	fast_cycles "$cycle"
	cycle=$((cycle + 9))
	slow_cycle "$cycle"
	cycle=$((cycle + 1))
done
ticks_at_end=$(grep -c '^tick ' "$out")
echo "ok 100 pause/resume cycles; the guest was at tick $ticks_at_end of 200 afterwards"

wait_exit "$VMM_PID"
[ "$EXIT_STATUS" -eq 16 ] || fail "counter-smp exited $EXIT_STATUS after the cycles, expected 16"
cmp "$out" "$EXPECTED/counter-smp.txt" ||
	{ diff "$out" "$EXPECTED/counter-smp.txt" | head >&2; fail "the output differs from an uninterrupted run"; }
echo "ok counter-smp output unchanged by 100 pauses, exit status 16"
