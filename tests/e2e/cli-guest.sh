#!/bin/sh
# End-to-end test of the cryo manager with the real cryo-vmm and the small test guest
# tests/guests/counter.elf, which prints "tick K ..." lines on its serial port with K
# counting up. It checks what a user sees: start, console, pause, checkpoint and restore,
# hibernation, stop, and recovery after cryo-vmm is killed.
#
# Usage: tests/e2e/cli-guest.sh [BUILD_DIR]   (default: $BUILD or ./build)
# Skips (exit 77) when cryo, cryo-vmm or the guest is not built, or /dev/kvm is missing.
set -u

BUILD=${1:-${BUILD:-build}}
CRYO=$BUILD/cryo
GUEST=$BUILD/tests/guests/counter.elf
for f in "$CRYO" "$BUILD/cryo-vmm"; do
	if [ ! -x "$f" ]; then
		echo "SKIP: $f is not built"
		exit 77
	fi
done
if [ ! -f "$GUEST" ]; then
	echo "SKIP: $GUEST is not built"
	exit 77
fi
if [ ! -w /dev/kvm ]; then
	echo "SKIP: /dev/kvm is not usable"
	exit 77
fi

WORK=$(mktemp -d /tmp/cryo-guest.XXXXXX)
export CRYO_HOME=$WORK/home
export CRYO_VMM=$BUILD/cryo-vmm
FAILED=0

cleanup() {
	"$CRYO" bstop jname=g noacpi=1 >/dev/null 2>&1
	rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*"
	FAILED=1
}

run() {
	if ! out=$("$@" 2>&1); then
		fail "'$*' exited non-zero: $out"
		return 1
	fi
	return 0
}

expect_status() {
	got=$("$CRYO" bls display=status header=0 g 2>&1 | tr -d ' ')
	[ "$got" = "$1" ] || fail "bls status: expected $1, got '$got'"
}

# Highest tick number in the console output (replay plus one second of live output).
last_tick() {
	timeout 1 "$CRYO" bconsole jname=g </dev/null 2>/dev/null |
		grep -o 'tick [0-9]*' | tail -1 | cut -d' ' -f2
}

# Lowest tick number in the console output of the current cryo-vmm.
first_tick() {
	timeout 1 "$CRYO" bconsole jname=g </dev/null 2>/dev/null |
		grep -o 'tick [0-9]*' | head -1 | cut -d' ' -f2
}

run "$CRYO" bcreate jname=g ram=16 cpus=1 kernel="$GUEST" || exit 1

# Boot and see ticks on the console.
run "$CRYO" bstart jname=g
expect_status On
sleep 2
t1=$(last_tick)
[ -n "$t1" ] || fail "no tick lines on the console; see $CRYO_HOME/vms/g/vm.log"
jid=$("$CRYO" bls display=jid header=0 g | tr -d ' ')
[ "$jid" -gt 0 ] 2>/dev/null || fail "JID is '$jid'"

# Paused: no new ticks.
run "$CRYO" bpause jname=g mode=on
expect_status Paused
p1=$(last_tick)
sleep 1
p2=$(last_tick)
[ "$p1" = "$p2" ] || fail "ticks went on while paused: $p1 -> $p2"
run "$CRYO" bpause jname=g mode=off
expect_status On

# Checkpoint, let the guest run on, stop, restore: counting resumes from the checkpoint.
sleep 1
run "$CRYO" bcheckpoint mode=create jname=g name=c1
echo "$out" | grep -q "Checkpoint was created!: .*/c1.ckp" || fail "bcheckpoint said: $out"
k_ckpt=$(last_tick)
sleep 2
k_stop=$(last_tick)
run "$CRYO" bstop jname=g timeout=5
expect_status Off
run "$CRYO" bstart jname=g checkpoint=c1
echo "$out" | grep -q "Checkpoint found, starting from: .*/c1.ckp" || fail "bstart said: $out"
sleep 1
k_first=$(first_tick)
if [ -z "$k_first" ] || [ -z "$k_ckpt" ]; then
	fail "no ticks around the checkpoint (checkpoint $k_ckpt, after restore '$k_first')"
elif [ "$k_first" -le 1 ] || [ "$k_first" -gt $((k_ckpt + 1)) ]; then
	fail "restored guest started at tick $k_first; checkpoint was at about $k_ckpt"
elif [ "$k_stop" -gt $((k_ckpt + 1)) ] && [ "$k_first" -ge "$k_stop" ]; then
	fail "restored guest continued from the stop ($k_stop), not the checkpoint"
fi

# Hibernate and resume.
k_hib=$(last_tick)
run "$CRYO" bsuspend jname=g
expect_status Suspended
run "$CRYO" bstart jname=g
echo "$out" | grep -q "Resuming from the hibernation image" || fail "resume said: $out"
expect_status On
[ ! -e "$CRYO_HOME/vms/g/hibernate.ckp" ] || fail "hibernation image kept after resume"
sleep 1
k_res=$(first_tick)
[ -n "$k_res" ] && [ "$k_res" -ge "$k_hib" ] || fail "resume started at tick '$k_res', hibernated at $k_hib"

# kill -9 of cryo-vmm: bls shows Off at once and bstart works again.
kill -9 "$(cut -d' ' -f1 "$CRYO_HOME/vms/g/vm.pid")"
sleep 0.5
expect_status Off
run "$CRYO" bstart jname=g fresh=1
expect_status On
run "$CRYO" bstop jname=g noacpi=1
expect_status Off
run "$CRYO" bremove jname=g

if [ $FAILED -ne 0 ]; then
	echo "FAILED"
	exit 1
fi
echo "PASS"
