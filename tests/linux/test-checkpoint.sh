#!/usr/bin/env bash
# Checkpoint, restore, hibernation and pause of a stock Debian guest with 2 vCPUs in
# the nested test host. The guest's shell loop prints count=N every 100 ms and
# appends it to /mnt/counter.txt on its virtio-blk disk, while two busy loops keep
# both vCPUs working. The test checks that:
#  - after a restore the count goes on from the value at the checkpoint: the console
#    output up to the checkpoint plus the restored VM's output count 1, 2, 3, ...
#    with no value repeated or skipped, even though the first VM ran on past it;
#  - the file on the disk holds exactly the lines 1..N, so no block written after the
#    checkpoint survived the restore;
#  - restoring the same checkpoint a second time continues the same way, and that
#    VM, hibernated (cryo-vmm exits 3) and restored, continues the same way too;
#  - 100 pause/resume cycles leave the guest counting;
#  - the console answers typed input, and dmesg has no soft lockup, RCU stall,
#    clocksource, hung task, virtio or I/O warning.
source "$(dirname "$0")/common.sh"

s=$CRYO_SCRATCH
"$repo/tests/linux/make-disk" "$s/disk.img" 32 test.sh='busy() { while [ ! -e /tmp/stop ]; do :; done; }
busy & busy &
i=0
while [ ! -e /tmp/stop ]; do
	i=$((i + 1))
	echo "count=$i"
	echo "count=$i" >>/mnt/counter.txt
	sleep 0.1
done &
echo "guest counting"
exec setsid cttyhack sh' >/dev/null

cat >"$s/inner.sh" <<INNER
set -euo pipefail
VMM=$VMM CTL=$CTL ART=$ART
source "$repo/tests/linux/inner.sh"
s=$s

# Pauses NAME, records its console size (the checkpoint's position in the output)
# into NAME.pos, and writes a checkpoint with then=\$3.
checkpoint_at() {
	local name=\$1 dir=\$2 then=\$3
	"\$CTL" /tmp/\$name.sock pause >/dev/null
	stat -c %s "\$s/\$name.console" >"\$s/\$name.pos"
	"\$CTL" /tmp/\$name.sock checkpoint dir=\$dir then=\$then >"\$s/\$name.ckpt-reply"
	if [ "\$then" = run ]; then
		"\$CTL" /tmp/\$name.sock resume >/dev/null
	fi
}

# Types into a restored guest: a sum, then stops the loops, saves dmesg and powers off.
finish_restored() {
	local name=\$1
	wait_console \$name "count=" 120
	sleep 3
	type_line 'echo "typed=\$((6*7))"'
	wait_console \$name "typed=42" 60 || true
	type_line "touch /tmp/stop; sleep 1; dmesg >/mnt/dmesg-\$name.txt; sync; echo synced-\$name"
	wait_console \$name "synced-\$name" 60 || true
	type_line 'poweroff'
	finish \$name 120
}

start_test_guest first script --disk "\$s/disk.img"
wait_console first "count=20" 300
checkpoint_at first /tmp/ck.ckp run
wait_console first "count=\$(( \$(grep -c count= "\$s/first.console") + 15 ))" 120 || true
"\$CTL" /tmp/first.sock stop force=1 >/dev/null || true
finish first 60

start_linux restore1 --restore /tmp/ck.ckp
finish_restored restore1
cp "\$s/disk.img" "\$s/disk-restore1.img"

# The second restore of the same checkpoint runs on, then is hibernated.
start_linux second --restore /tmp/ck.ckp
wait_console second "count=" 120
sleep 3
checkpoint_at second /tmp/hib.ckp exit
finish second 60

start_linux thawed --restore /tmp/hib.ckp
wait_console thawed "count=" 120
for i in \$(seq 1 100); do
	"\$CTL" /tmp/thawed.sock pause >/dev/null
	"\$CTL" /tmp/thawed.sock resume >/dev/null
done
echo 100 >"\$s/thawed.cycles"
finish_restored thawed
cp "\$s/disk.img" "\$s/disk-thawed.img"
INNER

"$repo/tests/host/run" --timeout 1800 bash "$s/inner.sh" >"$s/host.log" 2>&1 || {
	tail -30 "$s/host.log" >&2
	fail "the nested test host failed"
}

# Prints the count values in FILE's first BYTES bytes followed by all of FILE2.
count_sequence() {
	# A kernel message may share a line with a count, so the value is taken from
	# anywhere in the line; the guest runs with "quiet" to keep that rare.
	{ head -c "$2" "$1"; cat "$3"; } | tr -d '\r' | grep -o 'count=[0-9]*' | sed 's/^count=//'
}

# Fails unless the values on stdin are exactly 1..N for some N > $2.
assert_consecutive() {
	local what=$1 min=$2
	awk -v min="$min" 'BEGIN { want = 1 }
		{ if ($1 != want) { printf "expected %d, got %d\n", want, $1; bad = 1; exit 1 } want++ }
		END { if (!bad && want - 1 <= min) { printf "only %d values\n", want - 1; exit 1 } }' ||
		fail "$what: the count is not 1, 2, 3, ... without gaps or repeats"
	echo "ok $what"
}

status_is() { # NAME EXPECTED
	local got
	got=$(cat "$s/$1.status" 2>/dev/null || echo none)
	[ "$got" = "$2" ] || { tail -20 "$s/$1.log" "$s/$1.console" >&2; fail "$1 exited $got, expected $2"; }
}

status_is first 0
assert_contains "$s/first.ckpt-reply" "ok path=/tmp/ck.ckp" "checkpoint of a running guest"
pos=$(cat "$s/first.pos")
at_ckpt=$(count_sequence "$s/first.console" "$pos" /dev/null | tail -n1)
ran_to=$(count_sequence "$s/first.console" 999999999 /dev/null | tail -n1)
[ "$ran_to" -gt $((at_ckpt + 5)) ] || fail "the first VM did not run on after the checkpoint ($at_ckpt -> $ran_to)"
echo "ok the first VM counted on from $at_ckpt to $ran_to after the checkpoint"

status_is restore1 0
count_sequence "$s/first.console" "$pos" "$s/restore1.console" |
	assert_consecutive "restore 1 continues from count=$at_ckpt" "$((at_ckpt + 3))"
assert_contains "$s/restore1.console" "typed=42" "restore 1: console answers typed input"
disk_cat "$s/disk-restore1.img" /counter.txt | sed -n 's/^count=//p' |
	assert_consecutive "restore 1: counter.txt on the disk holds 1..N only" "$at_ckpt"
disk_cat "$s/disk-restore1.img" /dmesg-restore1.txt | grep -v 'fpu/xstate.c' >"$s/dmesg1.txt" || true
[ -s "$s/dmesg1.txt" ] || fail "restore 1: no dmesg saved on the disk"
assert_absent_re "$s/dmesg1.txt" "$CLOCK_WARNINGS" "restore 1: no clock, lockup, virtio or I/O warning in dmesg"

status_is second 3
pos2=$(cat "$s/second.pos")
count_sequence "$s/first.console" "$pos" <(head -c "$pos2" "$s/second.console") |
	assert_consecutive "restore 2 of the same checkpoint continues from count=$at_ckpt" "$((at_ckpt + 3))"
assert_contains "$s/second.ckpt-reply" "ok path=/tmp/hib.ckp" "hibernation checkpoint of the second restore"
at_hib=$(count_sequence "$s/second.console" "$pos2" /dev/null | tail -n1)
status_is thawed 0
[ "$(cat "$s/thawed.cycles")" = 100 ] || fail "the pause/resume cycles did not complete"
{ head -c "$pos" "$s/first.console"; head -c "$pos2" "$s/second.console"; } >"$s/before-thaw.console"
count_sequence "$s/before-thaw.console" 999999999 "$s/thawed.console" |
	assert_consecutive "hibernated guest continues from count=$at_hib through 100 pause/resume cycles" "$((at_hib + 3))"
disk_cat "$s/disk-thawed.img" /counter.txt | sed -n 's/^count=//p' |
	assert_consecutive "after restore, hibernation and thaw, counter.txt holds 1..N only" "$at_hib"
assert_contains "$s/thawed.console" "typed=42" "thawed guest: console answers typed input"
disk_cat "$s/disk-thawed.img" /dmesg-thawed.txt | grep -v 'fpu/xstate.c' >"$s/dmesg-thawed.txt" || true
[ -s "$s/dmesg-thawed.txt" ] || fail "thawed guest: no dmesg saved on the disk"
assert_absent_re "$s/dmesg-thawed.txt" "$CLOCK_WARNINGS" "thawed guest: no clock, lockup, virtio or I/O warning in dmesg"
