#!/usr/bin/env bash
# Checkpoint and restore with the deterministic counter guest, 1 and 2 vCPUs:
# for checkpoints taken at several moments, the console output before the
# checkpoint plus the output of the restored VM equals an uninterrupted run's,
# final memory digest included; restoring the same checkpoint twice gives the
# same continuation; a checkpoint is not changed by restoring it.
source "$(dirname "$0")/lib.sh"
require_built

check_guest() { # GUEST CPUS
	local guest=$1 cpus=$2
	local expected=$EXPECTED/$guest.txt
	local ticks=(20 90 160)
	local sizes=()

	start_vmm "$guest" --kernel "$GUESTS/$guest.elf" --memory 64 --cpus "$cpus"
	for t in "${ticks[@]}"; do
		wait_for_output "$work/$guest.out" "tick $t "
		# Pausing first fixes the output position the checkpoint corresponds to.
		ctl "$work/$guest.sock" pause >/dev/null || fail "pause refused"
		sizes+=("$(stat -c %s "$work/$guest.out")")
		ctl "$work/$guest.sock" checkpoint "dir=$work/$guest-$t.ckp" >"$work/reply" ||
			{ cat "$work/reply" "$work/$guest.log" >&2; fail "checkpoint at tick $t failed"; }
		ctl "$work/$guest.sock" resume >/dev/null || fail "resume refused"
	done
	wait_exit "$VMM_PID"
	[ "$EXIT_STATUS" -eq 16 ] || fail "$guest: first run exited $EXIT_STATUS, expected 16"
	cmp "$work/$guest.out" "$expected" || fail "$guest: checkpointing changed the output of the running VM"
	echo "ok $guest: ran on unchanged through ${#ticks[@]} checkpoints"

	for i in "${!ticks[@]}"; do
		local t=${ticks[$i]} ckp=$work/$guest-${ticks[$i]}.ckp
		local sum_before
		sum_before=$(find "$ckp" -type f -exec sha256sum {} + | sort)
		for round in 1 2; do
			local out=$work/$guest-restore-$t-$round.out status=0
			head -c "${sizes[$i]}" "$work/$guest.out" >"$out"
			timeout 120 "$VMM" --restore "$ckp" --console stdio </dev/null >>"$out" \
				2>"$work/restore.log" || status=$?
			[ "$status" -eq 16 ] || { cat "$work/restore.log" >&2; fail "$guest: restore at tick $t exited $status"; }
			cmp "$out" "$expected" || { diff "$out" "$expected" | head >&2; fail "$guest: output after restoring tick $t (round $round) differs"; }
		done
		[ "$(find "$ckp" -type f -exec sha256sum {} + | sort)" = "$sum_before" ] ||
			fail "$guest: restoring changed checkpoint $ckp"
		echo "ok $guest: restore at tick $t continues exactly, twice; checkpoint unchanged"
	done
}

check_guest counter 1
check_guest counter-smp 2
