#!/usr/bin/env bash
# A stock Debian kernel boots in cryo-vmm inside the nested test host, with 2 vCPUs,
# 512 MiB, a busybox initramfs and an ext4 virtio-blk disk:
#  1. poweroff: the guest sees 2 CPUs and its memory, reads a file the test put on
#     the disk, writes one, syncs and powers off; cryo-vmm exits 0 and the file is in
#     the image;
#  2. reboot: the guest reboots and cryo-vmm exits 2;
#  3. power button: SIGTERM to cryo-vmm makes acpid in the guest power it off (exit 0);
#  4. console: a line typed into the serial console reaches the guest's shell.
# All four run in one nested host to pay its start-up once.
source "$(dirname "$0")/common.sh"

s=$CRYO_SCRATCH
"$repo/tests/linux/make-disk" "$s/poweroff.img" 32 hello.txt="greetings from the host" \
	test.sh='echo "guest cpus=$(grep -c ^processor /proc/cpuinfo)"
grep MemTotal /proc/meminfo
echo "guest read: $(cat /mnt/hello.txt)"
echo "written by the guest" >/mnt/out.txt
dmesg >/mnt/dmesg.txt
sync' >/dev/null
"$repo/tests/linux/make-disk" "$s/reboot.img" 16 test.sh='echo "guest rebooting"; reboot -f' >/dev/null
"$repo/tests/linux/make-disk" "$s/button.img" 16 test.sh='echo "guest waiting"; sleep 600' >/dev/null

cat >"$s/inner.sh" <<INNER
set -euo pipefail
VMM=$VMM CTL=$CTL ART=$ART
source "$repo/tests/linux/inner.sh"

start_test_guest poweroff script --disk "$s/poweroff.img"
finish poweroff 240

start_test_guest reboot script --disk "$s/reboot.img"
finish reboot 240

start_test_guest button script --disk "$s/button.img"
wait_console button "guest waiting" 240 || true
kill -TERM "\$VMM_PID"
finish button 120

start_test_guest console shell
wait_console console "cryo-init: starting a shell" 240 || true
sleep 1
type_line 'echo "sum=\$((40+2))"'
wait_console console "sum=42" 60 || true
type_line 'poweroff'
finish console 120
INNER

"$repo/tests/host/run" --timeout 1200 bash "$s/inner.sh" >"$s/host.log" 2>&1 || {
	tail -30 "$s/host.log" >&2
	fail "the nested test host failed"
}

echo "== poweroff"
[ "$(cat "$s/poweroff.status")" = 0 ] || { tail -30 "$s/poweroff.console" "$s/poweroff.log" >&2; fail "poweroff run exited $(cat "$s/poweroff.status"), expected 0"; }
echo "ok cryo-vmm exited 0 after the guest powered off"
assert_contains "$s/poweroff.console" "guest cpus=2" "guest sees 2 CPUs"
mem_kb=$(sed -n 's/^MemTotal: *\([0-9]*\) kB.*/\1/p' "$s/poweroff.console" | tr -d '\r')
[ -n "$mem_kb" ] && [ "$mem_kb" -gt 400000 ] && [ "$mem_kb" -le 524288 ] ||
	fail "guest MemTotal ${mem_kb:-?} kB is not that of 512 MiB"
echo "ok guest memory is 512 MiB (MemTotal $mem_kb kB)"
assert_contains "$s/poweroff.console" "guest read: greetings from the host" "guest reads the host's file from virtio-blk"
[ "$(disk_cat "$s/poweroff.img" /out.txt)" = "written by the guest" ] || fail "out.txt in the image does not hold the guest's line"
echo "ok the guest's file is in the disk image"
disk_cat "$s/poweroff.img" /dmesg.txt >"$s/dmesg.txt"
assert_contains "$s/dmesg.txt" "virtio_blk virtio" "virtio-blk probed"
assert_absent_re "$s/dmesg.txt" "virtio.*(error|broken)|I/O error|EXT4-fs error|BUG:|Oops" "no virtio or I/O errors in dmesg"

echo "== reboot"
[ "$(cat "$s/reboot.status")" = 2 ] || { tail -30 "$s/reboot.console" "$s/reboot.log" >&2; fail "reboot run exited $(cat "$s/reboot.status"), expected 2"; }
assert_contains "$s/reboot.console" "guest rebooting" "guest ran its reboot script"
echo "ok cryo-vmm exited 2 after the guest rebooted"

echo "== power button"
[ "$(cat "$s/button.status")" = 0 ] || { tail -30 "$s/button.console" "$s/button.log" >&2; fail "power-button run exited $(cat "$s/button.status"), expected 0"; }
assert_contains "$s/button.log" "pressing the power button" "SIGTERM pressed the virtual power button"
assert_contains "$s/button.log" "guest requested sleep state SLP_TYP 5" "guest shut itself down through ACPI S5"
echo "ok cryo-vmm exited 0 after the power button"

echo "== console input"
[ "$(cat "$s/console.status")" = 0 ] || { tail -30 "$s/console.console" "$s/console.log" >&2; fail "console run exited $(cat "$s/console.status"), expected 0"; }
assert_contains "$s/console.console" "sum=42" "typed command ran in the guest's shell"
