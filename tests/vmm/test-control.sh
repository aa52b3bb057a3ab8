#!/usr/bin/env bash
# The control socket against hostile clients, with memtouch running (it runs until
# it reads 'q' and replies to other console input with "verify ok N"). After each
# attack, `status` must still reply "ok state=running" and the guest must still
# answer on its console. Attacks: unknown requests, over-long lines, a client that
# leaves in the middle of a request, binary garbage with NUL bytes, a request flood
# that is never read, two clients at once, 20 idle clients (16 is the limit), a
# checkpoint requested while another one is being written, and bad arguments.
source "$(dirname "$0")/lib.sh"
require_built
POKE=$BUILD/sockpoke
[ -x "$POKE" ] || skip "sockpoke is not built at $POKE"

sock=$work/mt.sock
out=$work/mt.out

# Like start_vmm, but the console input is a FIFO that fd 3 keeps open, so the test
# can type to the guest.
mkfifo "$work/mt.in"
exec 3<>"$work/mt.in"
"$VMM" --control "$sock" --console stdio --kernel "$GUESTS/memtouch.elf" --memory 256 \
	--cmdline "touch=100 dirty=0" <"$work/mt.in" >"$out" 2>"$work/mt.log" &
VMM_PID=$!
started_pids+=("$VMM_PID")
for i in $(seq 1 200); do
	[ -S "$sock" ] && break
	kill -0 "$VMM_PID" 2>/dev/null || { cat "$work/mt.log" >&2; fail "cryo-vmm exited early"; }
	sleep 0.05
done
[ -S "$sock" ] || fail "cryo-vmm did not open its control socket"
wait_for_output "$out" "touched "

# Sends one request with a 30 s limit; prints the reply lines.
request() {
	timeout 30 "$CTL" "$sock" "$@" || true
}

# Sends one byte to the guest and waits for its next "verify ok" line.
guest_answers() {
	local before i
	before=$(grep -c '^verify ok' "$out" || true)
	printf v >&3
	for i in $(seq 1 200); do
		[ "$(grep -c '^verify ok' "$out" || true)" -gt "$before" ] && return 0
		sleep 0.05
	done
	return 1
}

# The VM survived attack $1: control socket and guest console both work.
check_alive() {
	local reply
	kill -0 "$VMM_PID" 2>/dev/null || { cat "$work/mt.log" >&2; fail "$1: cryo-vmm died"; }
	reply=$(request status)
	[[ $reply == "ok state=running "* ]] || fail "$1: status replied '$reply' afterwards"
	guest_answers || fail "$1: the guest stopped answering on its console"
	echo "ok $1"
}

# expect_reply WHAT EXPECTED_LINE REQUEST...: the reply must be exactly EXPECTED_LINE.
expect_reply() {
	local what=$1 expected=$2 reply
	shift 2
	reply=$(request "$@")
	[ "$reply" = "$expected" ] || fail "$what: got '$reply', expected '$expected'"
}

check_alive "baseline"

# Unknown requests get the exact error, and the connection stays usable.
hint="use status, pause, resume, checkpoint or stop"
expect_reply "unknown request" "error unknown request 'frobnicate': $hint" frobnicate
expect_reply "request in capitals" "error unknown request 'STATUS': $hint" STATUS
expect_reply "unknown request with args" "error unknown request 'reboot': $hint" reboot now=1
long_word=$(printf 'y%.0s' $(seq 1 200))
expect_reply "long unknown word" "error unknown request '$(printf 'y%.0s' $(seq 1 64))': $hint" \
	"$long_word"
expect_reply "too many words" "error too many arguments" $(seq 1 20)
reply=$("$POKE" "$sock" 'send=frobnicate\nstatus\n' lines=2:5000) || fail "pipelined requests: no 2 replies"
[[ $(sed -n 2p <<<"$reply") == "ok state=running "* ]] ||
	fail "pipelined requests: second reply was '$(sed -n 2p <<<"$reply")'"
check_alive "unknown requests"

# A line of exactly 4096 bytes with its newline is served; one byte more is not.
reply=$("$POKE" "$sock" repeat=4095:x 'send=\n' lines=1:5000 'send=status\n' lines=1:5000) ||
	fail "4096-byte line: connection not kept open"
[[ $(sed -n 1p <<<"$reply") == "error unknown request 'xxxx"* ]] ||
	fail "4096-byte line: got '$(sed -n 1p <<<"$reply")'"
[[ $(sed -n 2p <<<"$reply") == "ok state=running "* ]] || fail "4096-byte line: status after it failed"
reply=$("$POKE" "$sock" repeat=4096:x 'send=\n' lines=1:5000 eof=5000) ||
	fail "4097-byte line: the connection was not closed"
[ "$reply" = "error request too long" ] || fail "4097-byte line: got '$reply'"
reply=$("$POKE" "$sock" repeat=100000:z lines=1:5000 eof=5000) ||
	fail "100000 bytes without a newline: the connection was not closed"
[ "$reply" = "error request too long" ] || fail "100000 bytes without a newline: got '$reply'"
check_alive "over-long lines"

# A client that leaves in the middle of a request: nothing of it is executed.
"$POKE" "$sock" send=stat || fail "half a request: sockpoke failed"
"$POKE" "$sock" "send=checkpoint dir=$work/half.ckp" || fail "half a checkpoint: sockpoke failed"
"$POKE" "$sock" "send=stop force=1" shutdown read=300 || fail "half a stop: sockpoke failed"
"$POKE" "$sock" 'send=pause' sleep=200 || fail "half a pause: sockpoke failed"
sleep 0.3
[ ! -e "$work/half.ckp" ] || fail "half a request: the checkpoint was written"
check_alive "clients leaving mid-request"

# Binary garbage: every byte value in order, NUL included, then random bytes. Each
# line gets an error reply; none is taken for a request.
for i in $(seq 0 255); do printf "\\x$(printf %02x "$i")"; done >"$work/bytes"
cat "$work/bytes" "$work/bytes" "$work/bytes" >"$work/garbage"
head -c 8192 /dev/urandom >>"$work/garbage"
printf '\n' >>"$work/garbage"
"$POKE" "$sock" "sendfile=$work/garbage" read=1000 >"$work/garbage.reply" ||
	fail "garbage: sockpoke failed"
grep -qx 'error request contains a NUL byte' "$work/garbage.reply" ||
	fail "garbage: no 'error request contains a NUL byte' reply"
if grep -a -v '^error ' "$work/garbage.reply" | grep -aq .; then
	fail "garbage: a reply that is not an error: $(grep -a -v '^error ' "$work/garbage.reply" | head -n1)"
fi
check_alive "binary garbage ($(wc -l <"$work/garbage.reply") error replies)"

# A flood of requests whose replies are never read: the VMM drops the replies
# instead of blocking on the full socket.
"$POKE" "$sock" 'repeat=50000:status\n' sleep=500 || fail "flood: sockpoke failed"
check_alive "request flood with unread replies"

# Two clients at once: one starts a request and waits, the other is served meanwhile,
# then the first completes its line and is served too.
"$POKE" "$sock" send=sta sleep=700 'send=tus\n' lines=1:5000 >"$work/slow.reply" &
slow=$!
sleep 0.2
reply=$(request status)
[[ $reply == "ok state=running "* ]] || fail "two clients: the second got '$reply'"
wait "$slow" || fail "two clients: the first got no reply"
[[ $(cat "$work/slow.reply") == "ok state=running "* ]] ||
	fail "two clients: the first got '$(cat "$work/slow.reply")'"
check_alive "two clients at once"

# 20 idle clients: 16 are kept, the others are rejected with an error and closed.
idle_pids=()
for i in $(seq 1 20); do
	"$POKE" "$sock" read=6000 >"$work/idle-$i.out" 2>/dev/null &
	idle_pids+=("$!")
	sleep 0.05
done
sleep 0.5
# sockpoke, not cryo-ctl: the VMM may close the rejected connection before the
# request is written, and cryo-ctl dies of SIGPIPE then.
reply=$("$POKE" "$sock" 'send=status\n' lines=1:5000 2>/dev/null) || true
[ "$reply" = "error too many control clients" ] || fail "idle clients: a 21st client got '$reply'"
rejected=$(grep -lx 'error too many control clients' "$work"/idle-*.out | wc -l)
[ "$rejected" -eq 4 ] || fail "idle clients: $rejected of 20 rejected, expected 4"
for i in 17 18 19 20; do
	grep -qx 'error too many control clients' "$work/idle-$i.out" ||
		fail "idle clients: client $i was not the one rejected"
done
for pid in "${idle_pids[@]}"; do
	wait "$pid" || fail "idle clients: a sockpoke failed"
done
check_alive "20 idle clients (4 rejected), served again once they left"

# A checkpoint requested while another is being written: the first is written by a
# worker thread, `status` says so, and the second gets a clear refusal at once.
"$POKE" "$sock" "send=checkpoint dir=$work/first.ckp\\n" lines=1:60000 >"$work/first.reply" &
first=$!
seen=""
for i in $(seq 1 400); do
	if "$CTL" "$sock" status | grep -q " checkpoint=running"; then
		seen=1
		break
	fi
	sleep 0.005
done
[ -n "$seen" ] || fail "concurrent checkpoints: status never showed checkpoint=running"
reply=$(timeout 10 "$CTL" "$sock" checkpoint "dir=$work/second.ckp" || true)
pause_reply=$(timeout 10 "$CTL" "$sock" pause || true)
wait "$first" || fail "concurrent checkpoints: the first got no reply in 60 s"
[[ $(cat "$work/first.reply") == "ok path=$work/first.ckp "* ]] ||
	fail "concurrent checkpoints: the first got '$(cat "$work/first.reply")'"
[ "$reply" = "error checkpoint already in progress" ] ||
	fail "concurrent checkpoints: the second got '$reply'"
[ "$pause_reply" = "error checkpoint already in progress" ] ||
	fail "pause during a checkpoint got '$pause_reply'"
[ -f "$work/first.ckp/manifest" ] || fail "concurrent checkpoints: the first is incomplete"
[ ! -e "$work/second.ckp" ] || fail "concurrent checkpoints: the refused one left $work/second.ckp"
check_alive "checkpoint during a checkpoint: refused while the first was written"

# A request sent as soon as the checkpoint's reply arrives is served, not refused.
"$POKE" "$sock" "send=checkpoint dir=$work/third.ckp\\n" lines=1:60000 "send=resume\\n" lines=1:5000 \
	>"$work/third.reply" || fail "request after a checkpoint: sockpoke failed"
[ "$(sed -n 2p "$work/third.reply")" = "ok state=running" ] ||
	fail "request right after a checkpoint's reply got '$(sed -n 2p "$work/third.reply")'"
rm -rf "$work/third.ckp"
check_alive "a request right after a checkpoint's reply is served"
rm -rf "$work/first.ckp" "$work/second.ckp"

# Bad arguments: each gets an error and changes nothing.
expect_reply "checkpoint without dir" "error checkpoint needs dir=PATH" checkpoint
expect_reply "checkpoint with empty dir" "error checkpoint needs dir=PATH" checkpoint dir=
expect_reply "then=bogus" "error invalid then=bogus: use run, poweroff or exit" \
	checkpoint "dir=$work/bogus.ckp" then=bogus
expect_reply "progress=2" "error invalid progress=2: use progress=1" \
	checkpoint "dir=$work/bogus.ckp" progress=2
expect_reply "unknown checkpoint argument" "error unknown argument 'compress=1' for checkpoint" \
	checkpoint "dir=$work/bogus.ckp" compress=1
[ ! -e "$work/bogus.ckp" ] || fail "bad checkpoint arguments: a checkpoint was written"
reply=$(request checkpoint "dir=$work/no/such/dir/x.ckp")
[[ $reply == "error cannot create checkpoint $work/no/such/dir/x.ckp: "* ]] ||
	fail "checkpoint into a missing directory: got '$reply'"
printf 'precious\n' >"$work/precious"
reply=$(request checkpoint "dir=$work/precious")
[[ $reply == "error "* ]] || fail "checkpoint over a file: got '$reply'"
[ "$(cat "$work/precious")" = precious ] || fail "checkpoint over a file: the file changed"
expect_reply "stop force=2" "error invalid force=2: use force=1, or no force" stop force=2
expect_reply "stop with unknown argument" "error unknown argument 'now' for stop" stop now
expect_reply "pause now" "error pause takes no arguments" pause now
expect_reply "resume now" "error resume takes no arguments" resume now
expect_reply "status all" "error status takes no arguments" status all
check_alive "bad arguments"

# Requests queued behind a forced stop on the same connection are rejected, not
# carried out on a VM whose vCPUs are already leaving.
"$POKE" "$sock" "send=stop force=1\\ncheckpoint dir=$work/after-stop.ckp\\nstatus\\n" read=3000 \
	>"$work/stop.reply" 2>/dev/null || fail "stop force=1: sockpoke failed"
[ "$(sed -n 1p "$work/stop.reply")" = "ok stopped" ] ||
	fail "stop force=1: got '$(sed -n 1p "$work/stop.reply")'"
if sed 1d "$work/stop.reply" | grep -qv '^error cryo-vmm is exiting$'; then
	fail "stop force=1: a request after it got '$(sed 1d "$work/stop.reply" | grep -v '^error cryo-vmm is exiting$' | head -n1)'"
fi
wait_exit "$VMM_PID"
[ "$EXIT_STATUS" -eq 0 ] || fail "stop force=1: cryo-vmm exited $EXIT_STATUS, expected 0"
[ ! -e "$work/after-stop.ckp" ] || fail "stop force=1: a checkpoint requested after it was written"
[ ! -e "$sock" ] || fail "stop force=1: the control socket was left behind"
echo "ok stop force=1 ends cryo-vmm with status 0 and rejects the requests behind it"
