#!/usr/bin/env bash
# Restoring damaged or foreign checkpoints. A real checkpoint of the counter guest
# with a raw disk attached is taken at tick 50. Each case damages a copy of it:
# truncation, one flipped byte per file, another format version, a missing file,
# a definition the host cannot run. For each, cryo-vmm --restore must exit 1
# before the guest runs, with a message naming the checkpoint, the file and the
# fault; the damaged copy and the VM's disk image must be unchanged, byte for
# byte; and no staging file (*.cryo-restore, *.tmp-*) may be left beside the disk.
# Last, the undamaged checkpoint must restore and finish, to show that the
# failures come from the damage.
source "$(dirname "$0")/lib.sh"
require_built
FORGE=$BUILD/ckpt-forge
[ -x "$FORGE" ] || skip "ckpt-forge is not built at $FORGE"

disk=$work/disks/disk.img
mkdir "$work/disks"
# 1 MiB with data at the start and a hole after it, so the disk file has both.
head -c 65536 /dev/urandom >"$disk"
truncate -s 1M "$disk"

start_vmm counter --kernel "$GUESTS/counter.elf" --memory 64 --disk "$disk"
wait_for_output "$work/counter.out" "tick 50 "
ctl "$work/counter.sock" pause >/dev/null || fail "pause refused"
size_at_checkpoint=$(stat -c %s "$work/counter.out")
ctl "$work/counter.sock" checkpoint "dir=$work/good.ckp" >"$work/reply" ||
	{ cat "$work/reply" "$work/counter.log" >&2; fail "checkpoint at tick 50 failed"; }
ctl "$work/counter.sock" resume >/dev/null || fail "resume refused"
wait_exit "$VMM_PID"
[ "$EXIT_STATUS" -eq 16 ] || fail "the checkpointed guest exited $EXIT_STATUS, expected 16"
[ -f "$work/good.ckp/disk0" ] || fail "the checkpoint has no disk0 file"
disk_sum=$(sha256sum <"$disk")
good_sum=$(cd "$work/good.ckp" && sha256sum -- * | sort)

# Prints the sha256 of every file under directory $1, sorted by path.
tree_sums() {
	(cd "$1" && find . -type f -exec sha256sum {} + | sort -k2)
}

# Inverts the byte at offset $2 of file $1, in place.
flip_byte() {
	local file=$1 offset=$2 old
	old=$(od -An -tu1 -j "$offset" -N1 "$file" | tr -d ' ')
	[ -n "$old" ] || fail "flip_byte: $file has no byte at offset $offset"
	printf "\\x$(printf %02x $((old ^ 0xff)))" |
		dd of="$file" bs=1 seek="$offset" conv=notrunc status=none
}

# Writes the little-endian u32 $3 at offset $2 of file $1, in place.
put_u32() {
	local file=$1 offset=$2 value=$3
	printf "\\x$(printf %02x $((value & 255)))\\x$(printf %02x $(((value >> 8) & 255)))\\x$(printf %02x $(((value >> 16) & 255)))\\x$(printf %02x $(((value >> 24) & 255)))" |
		dd of="$file" bs=1 seek="$offset" conv=notrunc status=none
}

fresh_copy() { # NAME: copies the good checkpoint to $work/NAME.ckp (sparse) and prints its path
	rm -rf "$work/$1.ckp"
	cp -r --sparse=always "$work/good.ckp" "$work/$1.ckp"
	echo "$work/$1.ckp"
}

# expect_rejected WHAT CKP WORD... [-- VMM_ARGS...]: cryo-vmm --restore CKP exits 1,
# before the guest printed anything, with a message that names CKP and contains
# every WORD; nothing changed on disk.
expect_rejected() {
	local what=$1 ckp=$2 status=0 word before after
	shift 2
	local words=() extra=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		words+=("$1")
		shift
	done
	[ $# -gt 0 ] && shift && extra=("$@")

	before=$(tree_sums "$ckp")
	timeout 60 "$VMM" --restore "$ckp" --console stdio "${extra[@]}" </dev/null \
		>"$work/restore.out" 2>"$work/restore.err" || status=$?
	[ "$status" -eq 1 ] || { cat "$work/restore.err" >&2; fail "$what: exit status $status, expected 1"; }
	[ ! -s "$work/restore.out" ] || fail "$what: the guest ran and printed '$(head -c 80 "$work/restore.out")'"
	grep -qF -- "checkpoint $ckp" "$work/restore.err" ||
		{ cat "$work/restore.err" >&2; fail "$what: the message does not name the checkpoint"; }
	for word in "${words[@]}"; do
		grep -qF -- "$word" "$work/restore.err" ||
			{ cat "$work/restore.err" >&2; fail "$what: the message lacks '$word'"; }
	done
	after=$(tree_sums "$ckp")
	[ "$after" = "$before" ] || fail "$what: restoring changed the checkpoint"
	[ "$(sha256sum <"$disk")" = "$disk_sum" ] || fail "$what: restoring changed the disk image"
	[ -z "$(ls -A "$work/disks" | grep -v '^disk\.img$')" ] ||
		fail "$what: files left beside the disk: $(ls -A "$work/disks" | tr '\n' ' ')"
	echo "ok $what: $(grep -m1 'checkpoint ' "$work/restore.err")"
}

# Truncated files.
ckp=$(fresh_copy trunc-memory)
truncate -s -4096 "$ckp/memory"
expect_rejected "memory truncated by a page" "$ckp" "file memory: size" "truncated?"
ckp=$(fresh_copy trunc-disk)
truncate -s 4096 "$ckp/disk0"
expect_rejected "disk truncated" "$ckp" "file disk0: size" "truncated?"
ckp=$(fresh_copy trunc-manifest)
truncate -s 20 "$ckp/manifest"
expect_rejected "manifest truncated" "$ckp" "manifest"
ckp=$(fresh_copy empty-state)
truncate -s 0 "$ckp/state"
expect_rejected "state emptied" "$ckp" "file state: size 0"
ckp=$(fresh_copy appended-memory)
truncate -s +4096 "$ckp/memory"
expect_rejected "memory appended to" "$ckp" "file memory: size" "appended to?"

# One flipped byte in each file.
ckp=$(fresh_copy flip-manifest)
flip_byte "$ckp/manifest" 100
expect_rejected "manifest byte 100 flipped" "$ckp" "manifest: checksum mismatch"
ckp=$(fresh_copy flip-manifest-sum)
flip_byte "$ckp/manifest" $(($(stat -c %s "$ckp/manifest") - 1))
expect_rejected "manifest checksum byte flipped" "$ckp" "manifest: checksum mismatch"
ckp=$(fresh_copy flip-magic)
flip_byte "$ckp/manifest" 0
expect_rejected "manifest magic flipped" "$ckp" "manifest"
ckp=$(fresh_copy flip-state)
flip_byte "$ckp/state" $(($(stat -c %s "$ckp/state") / 2))
expect_rejected "state byte flipped" "$ckp" "checksum mismatch"
ckp=$(fresh_copy flip-state-header)
flip_byte "$ckp/state" 20
expect_rejected "state first section name flipped" "$ckp" "checksum mismatch"
# 0x101000 is the counter's data segment (page tables and variables), a non-zero
# page in memory chunk 0 (bytes 0 to 2 MiB).
offset=$((0x101000 + 256))
[ "$(od -An -tu1 -j "$((0x101000))" -N4096 "$work/good.ckp/memory" | tr -d ' 0\n')" != "" ] ||
	fail "the page at 0x101000 is zero in the checkpoint; the test needs a non-zero page there"
ckp=$(fresh_copy flip-memory)
flip_byte "$ckp/memory" "$offset"
expect_rejected "memory byte at 0x101100 flipped" "$ckp" \
	"file memory: checksum mismatch in chunk 0 (bytes 0 to 2097151)" -- --verify-memory
ckp=$(fresh_copy flip-disk)
flip_byte "$ckp/disk0" 1000
expect_rejected "disk byte flipped" "$ckp" "file disk0: checksum mismatch"

# Another format version: the version is read before the checksum, so it is
# reported as such although the checksum no longer matches.
ckp=$(fresh_copy version)
put_u32 "$ckp/manifest" 8 7
expect_rejected "format version 7" "$ckp" "format version 7 is not supported (this cryo reads version 1)"
ckp=$(fresh_copy version0)
put_u32 "$ckp/manifest" 8 0
expect_rejected "format version 0" "$ckp" "format version 0 is not supported"

# Missing files, and files that are not regular ones.
for f in memory state disk0; do
	ckp=$(fresh_copy "missing-$f")
	rm "$ckp/$f"
	expect_rejected "$f removed" "$ckp" "file $f: missing"
done
ckp=$(fresh_copy missing-manifest)
rm "$ckp/manifest"
expect_rejected "manifest removed" "$ckp" "manifest missing"
ckp=$(fresh_copy symlink-memory)
rm "$ckp/memory"
ln -s "$work/good.ckp/memory" "$ckp/memory"
expect_rejected "memory replaced by a symbolic link" "$ckp" "file memory"
ckp=$(fresh_copy dir-state)
rm "$ckp/state"
mkdir "$ckp/state"
expect_rejected "state replaced by a directory" "$ckp" "file state"

# Well-formed checkpoints that this host cannot run, forged with valid checksums.
"$FORGE" "$work/good.ckp" "$work/cpus9.ckp" cpus=9 || fail "ckpt-forge cpus=9 failed"
expect_rejected "definition with 9 vCPUs" "$work/cpus9.ckp" "cannot run on this host" \
	"invalid vCPU count 9"
"$FORGE" "$work/good.ckp" "$work/cpuid.ckp" cpuid=unsupported || fail "ckpt-forge cpuid failed"
expect_rejected "CPU features the host lacks" "$work/cpuid.ckp" \
	"the checkpoint needs CPU features this host lacks: CPUID leaf 0x7"
# Two vCPUs in the definition but one saved: this passes every check before the
# disks are staged, and fails at the missing vcpu1 section afterwards.
"$FORGE" "$work/good.ckp" "$work/cpus2.ckp" cpus=2 || fail "ckpt-forge cpus=2 failed"
expect_rejected "definition with a vCPU not saved" "$work/cpus2.ckp" "section vcpu1 is missing"

[ "$(cd "$work/good.ckp" && sha256sum -- * | sort)" = "$good_sum" ] ||
	fail "the original checkpoint changed while its copies were tested"

# The undamaged checkpoint restores and finishes exactly as an uninterrupted run.
status=0
head -c "$size_at_checkpoint" "$work/counter.out" >"$work/restored.out"
timeout 120 "$VMM" --restore "$work/good.ckp" --verify-memory --console stdio </dev/null \
	>>"$work/restored.out" 2>"$work/restore.err" || status=$?
[ "$status" -eq 16 ] || { cat "$work/restore.err" >&2; fail "undamaged checkpoint: exit status $status"; }
cmp "$work/restored.out" "$EXPECTED/counter.txt" || fail "undamaged checkpoint: output differs"
[ "$(sha256sum <"$disk")" = "$disk_sum" ] || fail "undamaged checkpoint: the disk differs from the saved one"
[ -z "$(ls -A "$work/disks" | grep -v '^disk\.img$')" ] ||
	fail "undamaged checkpoint: files left beside the disk: $(ls -A "$work/disks" | tr '\n' ' ')"
echo "ok undamaged checkpoint restores, finishes with the expected output and keeps the disk"
