#!/bin/sh
# End-to-end test of the cryo manager against a stand-in for cryo-vmm: a small Python
# program that speaks the control protocol of docs/CONTROL.md and writes checkpoint
# directories without running a guest. It covers what cryo itself does (registry, locks,
# supervisor, stale state, checkpoint bookkeeping) and runs without /dev/kvm.
#
# Usage: tests/e2e/cli-fake-vmm.sh [BUILD_DIR]   (default: $BUILD or ./build)
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

WORK=$(mktemp -d /tmp/cryo-e2e.XXXXXX)
export CRYO_HOME=$WORK/home
export CRYO_VMM=$WORK/fake-vmm
FAILED=0

cleanup() {
	for pidfile in "$CRYO_HOME"/vms/*/vm.pid; do
		[ -f "$pidfile" ] && kill -9 "$(cut -d' ' -f1 "$pidfile")" 2>/dev/null
	done
	sleep 0.3
	rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*"
	FAILED=1
}

# expect_ok DESCRIPTION COMMAND...: the command must exit 0.
expect_ok() {
	desc=$1
	shift
	if ! out=$("$@" 2>&1); then
		fail "$desc: '$*' exited non-zero: $out"
	fi
}

# expect_fail DESCRIPTION PATTERN COMMAND...: non-zero exit and PATTERN in the output.
expect_fail() {
	desc=$1
	pattern=$2
	shift 2
	if out=$("$@" 2>&1); then
		fail "$desc: '$*' succeeded: $out"
	elif ! printf '%s\n' "$out" | grep -q -- "$pattern"; then
		fail "$desc: expected '$pattern' in: $out"
	fi
}

# expect_status NAME STATUS: bls must report STATUS for NAME.
expect_status() {
	got=$("$CRYO" bls display=status header=0 "$1" 2>&1 | tr -d ' ')
	[ "$got" = "$2" ] || fail "bls status of $1: expected $2, got '$got'"
}

cat > "$CRYO_VMM" <<'PY'
#!/usr/bin/env python3
# Stand-in for cryo-vmm: control protocol only, no guest.
import os, socket, sys, threading, time, select

args = sys.argv[1:]
opts = {}
i = 0
while i < len(args):
    opts.setdefault(args[i], []).append(args[i + 1])
    i += 2
if os.environ.get("FAKE_VMM_FAIL"):
    print("fake-vmm: failing on purpose", file=sys.stderr)
    sys.exit(1)
restore = opts.get("--restore", [None])[0]
if restore and not os.path.isfile(os.path.join(restore, "state")):
    print("fake-vmm: %s is not a checkpoint" % restore, file=sys.stderr)
    sys.exit(1)
print("fake-vmm: started %s" % ("from " + restore if restore else "fresh"), file=sys.stderr)
sys.stderr.flush()

def listen(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(8)
    return s

state = "paused" if False else "running"
console_path = opts["--console"][0][len("socket:"):]
console = listen(console_path)
control = listen(opts["--control"][0])
clients = []

def console_thread():
    tick = 0
    while True:
        r, _, _ = select.select([console], [], [], 0.1)
        if r:
            c, _ = console.accept()
            clients.append(c)
        tick += 1
        if tick % 5 == 0 and state == "running":
            for c in list(clients):
                try:
                    c.sendall(b"tick %d\n" % (tick // 5))
                except OSError:
                    clients.remove(c)

threading.Thread(target=console_thread, daemon=True).start()

def checkpoint_delay():
    # Tests slow a checkpoint down with a file next to the control socket.
    try:
        with open(os.path.join(os.path.dirname(opts["--control"][0]), "fake-delay")) as f:
            return float(f.read())
    except OSError:
        return 0.05

def checkpoint(conn, words):
    kv = dict(w.split("=", 1) for w in words[1:])
    path, then = kv["dir"], kv.get("then", "run")
    tmp = path + ".tmp"
    os.makedirs(tmp)
    total = 4 << 20
    with open(os.path.join(tmp, "state"), "wb") as f:
        for n in range(4):
            f.write(b"x" * (1 << 20))
            if kv.get("progress") == "1":
                conn.sendall(b"progress written=%d total=%d\n" % ((n + 1) << 20, total))
            time.sleep(checkpoint_delay())
        f.flush()
        os.fsync(f.fileno())
    replaced = os.path.exists(path)
    if replaced:
        os.rename(path, path + ".old")
    os.rename(tmp, path)
    if replaced:
        import shutil
        shutil.rmtree(path + ".old")
    conn.sendall(b"ok path=%s bytes=%d downtime_us=100%s\n" %
                 (path.encode(), total, b" replaced=1" if replaced else b""))
    if then == "exit":
        sys.exit(3)
    if then == "poweroff":
        sys.exit(0)

while True:
    conn, _ = control.accept()
    f = conn.makefile("rb")
    for raw in f:
        words = raw.decode().split()
        if not words:
            continue
        cmd = words[0]
        if cmd == "status":
            conn.sendall(b"ok state=%s vcpus=1 memory_mib=64 pid=%d\n" % (state.encode(), os.getpid()))
        elif cmd == "pause":
            state = "paused"
            conn.sendall(b"ok state=paused\n")
        elif cmd == "resume":
            state = "running"
            conn.sendall(b"ok state=running\n")
        elif cmd == "checkpoint":
            checkpoint(conn, words)
        elif cmd == "stop":
            if "force=1" in words:
                conn.sendall(b"ok stopped\n")
                sys.exit(0)
            conn.sendall(b"ok stopping\n")
            if os.environ.get("FAKE_VMM_IGNORE_ACPI"):
                continue
            sys.exit(0)
        elif cmd == "reboot":
            conn.sendall(b"ok rebooting\n")
            sys.exit(2)
        else:
            conn.sendall(b"error unknown request\n")
    conn.close()
PY
chmod +x "$CRYO_VMM"

KERNEL=$WORK/kernel
DISK=$WORK/disk.img
printf 'not a real kernel' > "$KERNEL"
truncate -s 1M "$DISK"

# Usage and argument errors.
expect_fail "cryo alone" "usage: cryo" "$CRYO"
expect_fail "unknown command" "unknown command" "$CRYO" bfoo
expect_ok "bcreate --help" "$CRYO" bcreate --help
expect_fail "missing key" "missing required key cpus=" \
	"$CRYO" bcreate jname=a ram=64 kernel="$KERNEL"
expect_fail "unknown key" "unknown key foo=" \
	"$CRYO" bcreate jname=a ram=64 cpus=1 kernel="$KERNEL" foo=1
expect_fail "bad ram" "invalid ram=lots" \
	"$CRYO" bcreate jname=a ram=lots cpus=1 kernel="$KERNEL"
expect_fail "bad name" "invalid jname=" \
	"$CRYO" bcreate jname=../x ram=64 cpus=1 kernel="$KERNEL"
expect_fail "missing kernel file" "invalid kernel=" \
	"$CRYO" bcreate jname=a ram=64 cpus=1 kernel="$WORK/none"

# Define VMs, one from a jconf file.
expect_ok "bcreate vm1" "$CRYO" bcreate jname=vm1 ram=64M cpus=1 kernel="$KERNEL" \
	cmdline="console=ttyS0 quiet" disk="$DISK"
printf 'jname="vm2"\nram=1G\ncpus=2\nkernel=%s\n' "$KERNEL" > "$WORK/vm2.conf"
expect_ok "bcreate jconf" "$CRYO" bcreate jconf="$WORK/vm2.conf"
expect_fail "bcreate twice" "already exists" \
	"$CRYO" bcreate jname=vm1 ram=64 cpus=1 kernel="$KERNEL"
expect_status vm1 Off
expect_status vm2 Off
"$CRYO" bls display=jname,vm_ram header=0 vm2 | grep -q 'vm2 *1024' || fail "bls ram of vm2"
expect_fail "unknown VM" "No such domains: nope" "$CRYO" bstart jname=nope
expect_fail "bls unknown column" "unknown column" "$CRYO" bls display=foo
expect_fail "checkpoint of stopped VM" "not running" \
	"$CRYO" bcheckpoint mode=create jname=vm1

# Start, pause, checkpoint.
expect_ok "bstart vm1" "$CRYO" bstart jname=vm1
expect_status vm1 On
expect_fail "bstart running" "already running" "$CRYO" bstart jname=vm1
expect_fail "bremove running" "is running" "$CRYO" bremove jname=vm1
"$CRYO" bls --json vm1 | grep -q '"status": "On"' || fail "bls --json"
jid=$("$CRYO" bls display=jid header=0 vm1 | tr -d ' ')
[ "$jid" -gt 0 ] 2>/dev/null || fail "JID of running vm1 is '$jid'"
expect_ok "bpause on" "$CRYO" bpause jname=vm1 mode=on
expect_status vm1 Paused
out=$("$CRYO" bpause jname=vm1 mode=auto)
[ "$out" = "vm1 resumed" ] || fail "bpause auto said '$out'"
expect_status vm1 On
expect_fail "bpause bad mode" "invalid mode=x" "$CRYO" bpause jname=vm1 mode=x

out=$("$CRYO" bcheckpoint mode=create jname=vm1 name=first 2>&1)
echo "$out" | grep -q "Checkpoint was created!: .*/vm1/checkpoints/first.ckp" ||
	fail "bcheckpoint create: $out"
expect_ok "bcheckpoint default name" "$CRYO" bcheckpoint mode=create jname=vm1
out=$("$CRYO" bcheckpoint mode=create jname=vm1 name=first 2>&1)
echo "$out" | grep -q "Replacing the existing checkpoint" || fail "replace message: $out"
expect_ok "bcheckpoint dotted name" "$CRYO" bcheckpoint mode=create jname=vm1 name=v1.2
for bad in a/b .hidden ""; do
	expect_fail "bad checkpoint name '$bad'" "name=" \
		"$CRYO" bcheckpoint mode=create jname=vm1 name="$bad"
done
out=$("$CRYO" bcheckpoint mode=list jname=vm1)
expected=$(printf 'Created checkpoint for vm1:\ncheckpoint\nfirst\nv1.2')
[ "$out" = "$expected" ] || fail "bcheckpoint list: $out"
"$CRYO" bcheckpoint mode=list jname=vm1 --json | grep -q '"name": "first", "created": ' ||
	fail "bcheckpoint list --json"
"$CRYO" bcheckpoint mode=list jname=vm1 display=name,size | grep -q '^first  [0-9]' ||
	fail "bcheckpoint list display="

# A second checkpoint while one runs fails fast.
echo 0.5 > "$CRYO_HOME/vms/vm1/fake-delay"
"$CRYO" bcheckpoint mode=create jname=vm1 name=slow >/dev/null 2>&1 &
slow=$!
sleep 0.5
expect_fail "concurrent checkpoint" "checkpoint of vm1 is in progress" \
	"$CRYO" bcheckpoint mode=create jname=vm1 name=other
expect_fail "bstop during checkpoint" "checkpoint of vm1 is in progress" \
	"$CRYO" bstop jname=vm1
wait $slow || fail "slow checkpoint failed"
rm "$CRYO_HOME/vms/vm1/fake-delay"

# Reboot: the supervisor starts cryo-vmm again.
sock=$CRYO_HOME/vms/vm1/control.sock
old=$(cut -d' ' -f1 "$CRYO_HOME/vms/vm1/vm.pid")
python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b'reboot\n'); s.recv(100)" "$sock"
sleep 1.5
new=$(cut -d' ' -f1 "$CRYO_HOME/vms/vm1/vm.pid" 2>/dev/null)
[ -n "$new" ] && [ "$new" != "$old" ] || fail "no restart after reboot ($old -> $new)"
expect_status vm1 On

# Stop, start from a checkpoint.
expect_ok "bstop" "$CRYO" bstop jname=vm1
expect_status vm1 Off
expect_fail "bstop stopped" "not running" "$CRYO" bstop jname=vm1
expect_fail "missing checkpoint" "Checkpoint not found: .*/nope.ckp" \
	"$CRYO" bstart jname=vm1 checkpoint=nope
out=$("$CRYO" bstart jname=vm1 checkpoint=first 2>&1)
echo "$out" | grep -q "Checkpoint found, starting from: .*/first.ckp" || fail "bstart checkpoint: $out"
grep -q "fake-vmm: started from .*/first.ckp" "$CRYO_HOME/vms/vm1/vm.log" || fail "restore not passed"
[ -d "$CRYO_HOME/vms/vm1/checkpoints/first.ckp" ] || fail "checkpoint was removed by bstart"

# Hibernation.
expect_ok "bsuspend" "$CRYO" bsuspend jname=vm1
expect_status vm1 Suspended
out=$("$CRYO" bstart jname=vm1 2>&1)
echo "$out" | grep -q "Resuming from the hibernation image" || fail "resume: $out"
[ ! -e "$CRYO_HOME/vms/vm1/hibernate.ckp" ] || fail "hibernation image kept after resume"
expect_ok "bsuspend again" "$CRYO" bsuspend jname=vm1
out=$("$CRYO" bstart jname=vm1 fresh=1 2>&1)
echo "$out" | grep -q "hibernation image .* is discarded" || fail "fresh=1 message: $out"
[ ! -e "$CRYO_HOME/vms/vm1/hibernate.ckp" ] || fail "hibernation image kept after fresh=1"

# ACPI ignored: bstop falls back to a forced stop after timeout=.
"$CRYO" bstop jname=vm1 >/dev/null
FAKE_VMM_IGNORE_ACPI=1 "$CRYO" bstart jname=vm1 >/dev/null
out=$("$CRYO" bstop jname=vm1 timeout=1 2>&1)
echo "$out" | grep -q "forcing it off" || fail "bstop fallback: $out"
expect_status vm1 Off

# Console replay through the socket.
expect_ok "bstart for console" "$CRYO" bstart jname=vm1
out=$(timeout 2 "$CRYO" bconsole jname=vm1 </dev/null 2>/dev/null)
echo "$out" | grep -q "^tick " || fail "bconsole printed no tick lines: $out"

# kill -9: bls shows the truth and bstart works again.
kill -9 "$(cut -d' ' -f1 "$CRYO_HOME/vms/vm1/vm.pid")"
sleep 0.5
expect_status vm1 Off
expect_ok "bstart after kill -9" "$CRYO" bstart jname=vm1
expect_status vm1 On
expect_ok "bstop after restart" "$CRYO" bstop jname=vm1 noacpi=1

# A VMM that fails at start: bstart fails and shows its log.
expect_fail "failing VMM" "failing on purpose" env FAKE_VMM_FAIL=1 "$CRYO" bstart jname=vm2

# Destroy and remove.
expect_ok "destroy" "$CRYO" bcheckpoint mode=destroy jname=vm1 name=first
expect_fail "destroy missing" "Checkpoint not found" \
	"$CRYO" bcheckpoint mode=destroy jname=vm1 name=first
expect_ok "destroyall" "$CRYO" bcheckpoint mode=destroyall jname=vm1
out=$("$CRYO" bcheckpoint mode=list jname=vm1)
[ "$out" = "Created checkpoint for vm1:" ] || fail "list after destroyall: $out"
expect_ok "bremove" "$CRYO" bremove jname=vm1
[ ! -d "$CRYO_HOME/vms/vm1" ] || fail "bremove left the VM directory"
[ -f "$DISK" ] || fail "bremove deleted the disk image"
expect_fail "bremove twice" "No such domains: vm1" "$CRYO" bremove jname=vm1

if [ $FAILED -ne 0 ]; then
	echo "FAILED"
	exit 1
fi
echo "PASS"
