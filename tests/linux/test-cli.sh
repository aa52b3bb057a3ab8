#!/usr/bin/env bash
# The cryo manager end to end with a stock Debian guest (2 vCPUs, 512 MiB, busybox
# initramfs, ext4 disk) in the nested test host. The guest's /test.sh prints count=N
# every 0.2 s and appends it to /mnt/counter.txt, then runs a shell on the console.
# The test checks every message and column a user reads while it:
#  - defines and starts the VM, and follows bls STATUS through On, Paused, On,
#    Suspended, On and Off, with bpause mode=on, off and auto;
#  - checkpoints the paused guest (bcheckpoint mode=create name=c1), lets it run on,
#    stops it and starts it from c1 twice: the console before the checkpoint plus the
#    console after each restore count 1, 2, 3, ... with no value skipped or repeated;
#  - hibernates the restored guest (bsuspend) and resumes it (bstart): the count goes on
#    through the checkpoint, the restore and the hibernation without a gap;
#  - types a line into the console and reads the shell's reply;
#  - lists, destroys and destroys all checkpoints;
#  - stops the guest with the ACPI power button (busybox acpid powers it off), after
#    which counter.txt on the disk holds exactly 1..N.
# Everything runs in one nested host, whose start and guest boot take most of the time.
#
# Usage: BUILD=/abs/build tests/linux/test-cli.sh
# Exit: 0 pass, 1 fail, 77 skip (cryo or cryo-vmm not built, no Debian kernel).
source "$(dirname "$0")/common.sh"

CRYO=$BUILD/cryo
[ -x "$CRYO" ] || skip "cryo is not built at $CRYO"

s=$CRYO_SCRATCH
"$repo/tests/linux/make-disk" "$s/disk.img" 32 test.sh='i=0
while true; do
	i=$((i + 1))
	echo "count=$i"
	echo "count=$i" >>/mnt/counter.txt
	sleep 0.2
done &
echo "guest counting"
exec setsid cttyhack sh' >/dev/null

# The inner script runs in the nested host. Each cryo command NAME leaves its output in
# $s/NAME.out, its exit status in NAME.rc and its duration in NAME.secs. Each bls STATUS
# probe leaves NAME.status, and each console capture leaves NAME.console.
{
	printf 'CRYO=%q VMM=%q ART=%q s=%q\n' "$CRYO" "$VMM" "$ART" "$s"
	cat <<'INNER'
set -u
export CRYO_HOME=$(mktemp -d /tmp/cryo-cli.XXXXXX)
export CRYO_VMM=$VMM
echo "$CRYO_HOME" >"$s/home"
vm=deb
console_pids=

cleanup() {
	local pid
	for pid in $console_pids; do
		kill "$pid" 2>/dev/null
	done
	if [ "$("$CRYO" bls display=status header=0 $vm 2>/dev/null | tr -d ' ')" != Off ]; then
		"$CRYO" bstop jname=$vm noacpi=1 >/dev/null 2>&1
	fi
	cp "$CRYO_HOME/vms/$vm/vm.log" "$s/vm.log" 2>/dev/null
	rm -rf "$CRYO_HOME"
}
trap cleanup EXIT

abort() {
	echo "inner: $*"
	exit 1
}

# step NAME ARG...: runs cryo ARG... and records its output, exit status and duration.
step() {
	local name=$1 start=$SECONDS rc=0
	shift
	"$CRYO" "$@" >"$s/$name.out" 2>&1 || rc=$?
	echo "$rc" >"$s/$name.rc"
	echo $((SECONDS - start)) >"$s/$name.secs"
	echo "[$SECONDS s] cryo $* -> exit $rc in $((SECONDS - start)) s"
}

status() {
	"$CRYO" bls display=status header=0 $vm 2>&1 | tr -d ' ' >"$s/$1.status"
}

# Saves the console output that cryo-vmm replays (its last 64 KiB) into NAME.console.
capture() {
	timeout 2 "$CRYO" bconsole jname=$vm </dev/null >"$s/$1.console" 2>/dev/null
}

# Copies the console into NAME.console in the background until cryo-vmm exits.
capture_until_exit() {
	timeout 300 "$CRYO" bconsole jname=$vm </dev/null >"$s/$1.console" 2>/dev/null &
	console_pids="$console_pids $!"
	CAPTURE_PID=$!
}

last_count() {
	tr -d '\r' | grep -o 'count=[0-9]*' | tail -n1 | sed 's/^count=//'
}

# Waits until the console shows count=VALUE or more, at most LIMIT seconds.
wait_count() {
	local value=$1 limit=$2 start=$SECONDS c
	while [ $((SECONDS - start)) -lt "$limit" ]; do
		c=$(timeout 1 "$CRYO" bconsole jname=$vm </dev/null 2>/dev/null | last_count)
		[ -n "$c" ] && [ "$c" -ge "$value" ] && return 0
		sleep 0.5
	done
	abort "the guest did not reach count=$value within $limit s (last: ${c:-none})"
}

step create bcreate jname=$vm ram=512 cpus=2 kernel="$ART/vmlinuz" \
	initrd="$ART/initramfs.cpio.gz" cmdline="console=ttyS0 panic=-1 quiet cryo.test=script" \
	disk="$s/disk.img"
step start bstart jname=$vm
wait_count 10 240
status on1
"$CRYO" bls >"$s/bls.out" 2>&1
cut -d' ' -f1 "$CRYO_HOME/vms/$vm/vm.pid" >"$s/vm.pid"

step pause_on bpause jname=$vm mode=on
status paused1
step pause_off bpause jname=$vm mode=off
status on2
step auto_on bpause jname=$vm mode=auto
status paused2
step auto_off bpause jname=$vm mode=auto
status on3

# The pause pins the checkpoint's place in the console output.
step ck_pause bpause jname=$vm mode=on
capture before-c1
step ck_create bcheckpoint mode=create jname=$vm name=c1
status ck_paused
capture before-c1-again
step ck_resume bpause jname=$vm mode=off
at=$(last_count <"$s/before-c1.console")
wait_count $((${at:-0} + 15)) 60
capture ran-on
step stop1 bstop jname=$vm noacpi=1
status off1

for round in 1 2; do
	step restore$round bstart jname=$vm checkpoint=c1
	status restored$round
	wait_count $((${at:-0} + 10)) 60
	capture after-c1-$round
	[ $round = 2 ] && break
	step stop-restore$round bstop jname=$vm noacpi=1
	status off-restore$round
done

printf 'echo typed=$((6*7))\n' | timeout 3 "$CRYO" bconsole jname=$vm >"$s/typed.out" 2>&1

# The capture replays the restored guest's output from its start and ends when
# cryo-vmm exits, so it contains everything up to the hibernation.
capture_until_exit before-suspend
sleep 1
step suspend bsuspend jname=$vm
status suspended
wait "$CAPTURE_PID"
step resume bstart jname=$vm
status resumed
suspended_at=$(last_count <"$s/before-suspend.console")
wait_count $((${suspended_at:-0} + 10)) 60
capture after-suspend

step list1 bcheckpoint mode=list jname=$vm
step ck2_create bcheckpoint mode=create jname=$vm name=c2
step destroy bcheckpoint mode=destroy jname=$vm name=c1
step list2 bcheckpoint mode=list jname=$vm
step destroyall bcheckpoint mode=destroyall jname=$vm
step list3 bcheckpoint mode=list jname=$vm
ls -A "$CRYO_HOME/vms/$vm/checkpoints" >"$s/checkpoints-left" 2>&1

capture_until_exit final
step acpi_stop bstop jname=$vm
status off-final
wait "$CAPTURE_PID"
echo "[$SECONDS s] inner script done"
INNER
} >"$s/inner.sh"

host_status=0
"$repo/tests/host/run" --timeout 900 bash "$s/inner.sh" >"$s/host.log" 2>&1 || host_status=$?

# Prints the end of the logs that explain a failure, keeps every file of the run in a
# directory whose path it prints, then fails with MESSAGE.
fail_with_logs() {
	local kept
	kept=$(mktemp -d /tmp/cryo-test-cli-failed.XXXXXX)
	cp -a "$s/." "$kept/"
	rm -f "$kept/disk.img"
	{
		echo "--- nested host (exit status $host_status):"
		tail -25 "$s/host.log"
		echo "--- vm.log:"
		tail -25 "$s/vm.log" 2>/dev/null
		echo "--- the files of this run are kept in $kept"
	} >&2
	fail "$*"
}

# step_ok NAME TEXT: command NAME exited 0 and printed a line containing TEXT.
step_ok() {
	[ -f "$s/$1.rc" ] || fail_with_logs "step $1 did not run: the inner script stopped before it"
	[ "$(cat "$s/$1.rc")" = 0 ] ||
		fail_with_logs "step $1 exited $(cat "$s/$1.rc"), expected 0; it printed: $(cat "$s/$1.out")"
	grep -qF -- "$2" "$s/$1.out" ||
		fail_with_logs "step $1: expected '$2' in its output: $(cat "$s/$1.out")"
	echo "ok $1: $2"
}

# step_line NAME LINE: as step_ok, and LINE is a whole line of the output.
step_line() {
	step_ok "$1" "$2"
	grep -qxF -- "$2" "$s/$1.out" || fail_with_logs "step $1: '$2' is not a whole line: $(cat "$s/$1.out")"
}

# step_is NAME TEXT: command NAME exited 0 and its whole output, lines joined by |, is TEXT.
step_is() {
	local got
	[ "$(cat "$s/$1.rc" 2>/dev/null)" = 0 ] ||
		fail_with_logs "step $1 did not run or failed; it printed: $(cat "$s/$1.out" 2>/dev/null)"
	got=$(paste -sd'|' "$s/$1.out")
	[ "$got" = "$2" ] || fail_with_logs "step $1 printed '$got', expected '$2'"
	echo "ok $1: $2"
}

status_is() {
	local got
	got=$(cat "$s/$1.status" 2>/dev/null) || fail_with_logs "status probe $1 did not run"
	[ "$got" = "$2" ] || fail_with_logs "bls STATUS at $1 is '$got', expected '$2'"
	echo "ok bls STATUS at $1 is $2"
}

# Prints the count values in the given console captures, in order.
count_sequence() {
	# A kernel message may share a line with a count, so the value is taken from
	# anywhere in the line. A capture may end in the middle of a line that the next
	# one completes, so the captures are joined before the values are taken.
	cat "$@" | tr -d '\r' | grep -o 'count=[0-9]*' | sed 's/^count=//'
}

# Fails unless the values on stdin are exactly 1..N for some N > MIN.
assert_consecutive() {
	local what=$1 min=$2
	awk -v min="$min" 'BEGIN { want = 1 }
		{ if ($1 != want) { printf "expected %d, got %d\n", want, $1; bad = 1; exit 1 } want++ }
		END { if (!bad && want - 1 <= min) { printf "only %d values\n", want - 1; exit 1 } }' ||
		fail_with_logs "$what: the count is not 1, 2, 3, ... without gaps or repeats"
	echo "ok $what"
}

[ -f "$s/home" ] || fail_with_logs "the inner script did not start"
home=$(cat "$s/home")
vmdir=$home/vms/deb
ck=$vmdir/checkpoints

echo "== define, start, bls"
step_line create "deb created: ram=512 MiB, cpus=2, disks=1"
step_ok start "deb started (pid "
status_is on1 On
pid=$(cat "$s/vm.pid")
[ "$(head -1 "$s/bls.out" | tr -s ' ' | sed 's/ $//')" = \
	"JNAME JID VM_RAM VM_CURMEM VM_CPUS PCPU VM_OS_TYPE IP4_ADDR STATUS VNC_PORT" ] ||
	fail "bls header: $(head -1 "$s/bls.out")"
row=$(grep '^deb ' "$s/bls.out" | tr -s ' ' | sed 's/ $//')
[[ $row =~ ^deb\ $pid\ 512\ [0-9]+\ 2\ [0-9]+\.[0-9]\ linux\ DHCP\ On\ 0$ ]] ||
	fail "bls row of deb is '$row', expected 'deb $pid 512 CURMEM 2 PCPU linux DHCP On 0'"
curmem=$(echo "$row" | cut -d' ' -f4)
[ "$curmem" -ge 16 ] && [ "$curmem" -le 1024 ] || fail "VM_CURMEM of a booted 512 MiB guest is $curmem MiB"
echo "ok bls columns: $row"

echo "== bpause"
step_line pause_on "deb paused"
status_is paused1 Paused
step_line pause_off "deb resumed"
status_is on2 On
step_line auto_on "deb paused"
status_is paused2 Paused
step_line auto_off "deb resumed"
status_is on3 On

echo "== checkpoint, run on, stop, restore twice"
step_line ck_pause "deb paused"
step_line ck_create "Checkpoint was created!: $ck/c1.ckp"
status_is ck_paused Paused
cmp -s "$s/before-c1.console" "$s/before-c1-again.console" ||
	fail "the console of the paused guest changed during the checkpoint"
echo "ok the console of the paused guest did not change during the checkpoint"
step_line ck_resume "deb resumed"
at=$(count_sequence "$s/before-c1.console" | tail -n1)
ran_to=$(count_sequence "$s/ran-on.console" | tail -n1)
[ -n "$at" ] && [ -n "$ran_to" ] && [ "$ran_to" -ge $((at + 15)) ] ||
	fail_with_logs "the guest did not run on after the checkpoint (count=${at:-none} -> count=${ran_to:-none})"
echo "ok the guest ran on from count=$at to count=$ran_to after the checkpoint"
step_line stop1 "deb stopped"
status_is off1 Off
for round in 1 2; do
	step_line restore$round "Checkpoint found, starting from: $ck/c1.ckp"
	step_ok restore$round "deb started (pid "
	status_is restored$round On
	count_sequence "$s/before-c1.console" "$s/after-c1-$round.console" |
		assert_consecutive "restore $round of c1 continues from count=$at" $((at + 5))
done
step_line stop-restore1 "deb stopped"
status_is off-restore1 Off

echo "== console input"
grep -q 'typed=42' "$s/typed.out" || fail_with_logs "the shell did not answer typed=42: $(tail -5 "$s/typed.out")"
echo "ok a line typed into bconsole reached the guest's shell"

echo "== bsuspend, bstart resumes"
step_line suspend "deb suspended to $vmdir/hibernate.ckp"
status_is suspended Suspended
step_line resume "Resuming from the hibernation image $vmdir/hibernate.ckp"
step_ok resume "deb started (pid "
status_is resumed On
suspended_at=$(count_sequence "$s/before-suspend.console" | tail -n1)
count_sequence "$s/before-c1.console" "$s/before-suspend.console" "$s/after-suspend.console" |
	assert_consecutive "resume after bsuspend continues from count=$suspended_at" $((suspended_at + 5))

echo "== bcheckpoint list, destroy, destroyall"
step_is list1 "Created checkpoint for deb:|c1"
step_line ck2_create "Checkpoint was created!: $ck/c2.ckp"
step_line destroy "Checkpoint was destroyed: $ck/c1.ckp"
step_is list2 "Created checkpoint for deb:|c2"
step_line destroyall "Checkpoint was destroyed: $ck/c2.ckp"
step_is list3 "Created checkpoint for deb:"
[ ! -s "$s/checkpoints-left" ] || fail "files left in $ck after destroyall: $(cat "$s/checkpoints-left")"
echo "ok destroyall left $ck empty"

echo "== bstop through the ACPI power button"
step_line acpi_stop "deb stopped"
grep -qF "forcing it off" "$s/acpi_stop.out" &&
	fail_with_logs "bstop had to force the guest off: $(cat "$s/acpi_stop.out")"
status_is off-final Off
assert_contains "$s/final.console" "cryo-init: power button pressed, powering off" \
	"the guest saw the power button"
echo "ok the guest powered itself off in $(cat "$s/acpi_stop.secs") s"
disk_cat "$s/disk.img" /counter.txt | sed -n 's/^count=//p' |
	assert_consecutive "counter.txt on the disk holds exactly 1..N" "$suspended_at"

[ "$host_status" = 0 ] || fail_with_logs "the nested test host exited $host_status"
echo "PASS"
