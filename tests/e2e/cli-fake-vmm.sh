#!/usr/bin/env bash
# The cryo manager against a stand-in for cryo-vmm, for the two cases that the real cryo-vmm
# and the small test guests cannot provoke (everything else is in cli-guest.sh, with the
# real cryo-vmm):
#   - the guest reboots (cryo-vmm exits with status 2): the supervisor starts cryo-vmm again
#     from the VM's definition;
#   - cryo-vmm hangs and ignores "stop force=1": bstop kills it by its recorded pid.
# The stand-in is a Python 3 program that uses only the standard library. It serves the
# status and stop requests of docs/CONTROL.md and runs no guest, so this needs no /dev/kvm.
#
# Usage: BUILD=/abs/build tests/e2e/cli-fake-vmm.sh   (or the build directory as $1)
# Exit: 0 pass, 1 fail, 77 skip (cryo not built, or no python3).
set -u

BUILD=${1:-${BUILD:-build}}
CRYO=$BUILD/cryo
if [ ! -x "$CRYO" ]; then
	echo "SKIP: $CRYO is not built"
	exit 77
fi
if ! command -v python3 >/dev/null; then
	echo "SKIP: python3 is needed for the stand-in cryo-vmm"
	exit 77
fi

WORK=$(mktemp -d /tmp/cryo-fake-vmm.XXXXXX)
export CRYO_HOME=$WORK/home
export CRYO_VMM=$WORK/fake-vmm
FAILED=0

cleanup() {
	local pidfile
	for pidfile in "$CRYO_HOME"/vms/*/vm.pid; do
		[ -f "$pidfile" ] && kill -9 "$(cut -d' ' -f1 "$pidfile")" 2>/dev/null
	done
	sleep 0.3
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
	echo "FAIL: $*"
	FAILED=1
}

# expect_ok DESCRIPTION TEXT COMMAND...: exit 0 and TEXT (fixed string) in the output.
expect_ok() {
	local desc=$1 text=$2
	shift 2
	if ! out=$("$@" 2>&1); then
		fail "$desc: '$*' exited non-zero: $out"
	elif ! printf '%s\n' "$out" | grep -qF -- "$text"; then
		fail "$desc: expected '$text' in: $out"
	fi
}

expect_status() {
	local got
	got=$("$CRYO" bls display=status header=0 "$1" 2>&1 | tr -d ' ')
	[ "$got" = "$2" ] || fail "bls status of $1: expected $2, got '$got'"
}

vm_pid() {
	cut -d' ' -f1 "$CRYO_HOME/vms/$1/vm.pid" 2>/dev/null
}

cat > "$CRYO_VMM" <<'PY'
#!/usr/bin/env python3
# Stand-in for cryo-vmm: "status", "stop" and "stop force=1" of the control protocol, plus
# "reboot" (exit status 2, as cryo-vmm after a guest reboot). With FAKE_VMM_HANG=1 in its
# environment it ignores every stop request, as a hung cryo-vmm would.
import os, socket, sys

args = sys.argv[1:]
opts = {}
for i in range(0, len(args) - 1, 2):
    opts[args[i]] = args[i + 1]
print("fake-vmm: started %s" % ("from " + opts["--restore"] if "--restore" in opts else "fresh"),
      file=sys.stderr, flush=True)
hang = os.environ.get("FAKE_VMM_HANG") == "1"

console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
console.bind(opts["--console"][len("socket:"):])
console.listen(8)
control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
control.bind(opts["--control"])
control.listen(8)

while True:
    conn, _ = control.accept()
    request = conn.makefile("rb").readline().decode().split()
    if request == ["status"]:
        conn.sendall(b"ok state=running vcpus=1 memory_mib=16 pid=%d\n" % os.getpid())
    elif request[:1] == ["stop"]:
        conn.sendall(b"ok stopped\n")
        if not hang:
            sys.exit(0)
    elif request == ["reboot"]:
        conn.sendall(b"ok rebooting\n")
        sys.exit(2)
    else:
        conn.sendall(b"error unknown request\n")
    conn.close()
PY
chmod +x "$CRYO_VMM"
printf 'not a real kernel' > "$WORK/kernel"

expect_ok "bcreate" "vm1 created" "$CRYO" bcreate jname=vm1 ram=16 cpus=1 kernel="$WORK/kernel"

# Reboot: the supervisor starts cryo-vmm again, from the definition.
expect_ok "bstart" "vm1 started" "$CRYO" bstart jname=vm1
old=$(vm_pid vm1)
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"reboot\n")
s.recv(100)' "$CRYO_HOME/vms/vm1/control.sock"
new=""
for i in $(seq 1 50); do
	new=$(vm_pid vm1)
	[ -n "$new" ] && [ "$new" != "$old" ] && "$CRYO" bls vm1 >/dev/null 2>&1 && break
	sleep 0.1
done
[ -n "$new" ] && [ "$new" != "$old" ] || fail "cryo-vmm was not started again after the reboot ($old -> $new)"
expect_status vm1 On
grep -q "guest vm1 rebooted; booting it again" "$CRYO_HOME/vms/vm1/vm.log" ||
	fail "the supervisor did not log the reboot: $(cat "$CRYO_HOME/vms/vm1/vm.log")"
expect_ok "bstop" "vm1 stopped" "$CRYO" bstop jname=vm1 noacpi=1
expect_status vm1 Off

# A hung cryo-vmm: ACPI, then "stop force=1", then SIGKILL by its recorded pid.
FAKE_VMM_HANG=1 "$CRYO" bstart jname=vm1 >/dev/null 2>&1
pid=$(vm_pid vm1)
expect_ok "bstop of a hung cryo-vmm" "forcing it off" "$CRYO" bstop jname=vm1 timeout=1
printf '%s\n' "$out" | grep -qF "killing cryo-vmm of vm1 (pid $pid)" ||
	fail "bstop did not kill pid $pid: $out"
printf '%s\n' "$out" | grep -qx "vm1 stopped" || fail "bstop said: $out"
expect_status vm1 Off
expect_ok "bremove" "vm1 removed" "$CRYO" bremove jname=vm1

if [ $FAILED -ne 0 ]; then
	echo "FAILED"
	exit 1
fi
echo "PASS"
