#!/usr/bin/env bash
# The WAN benchmark: deltasync copy and sync beside rsync -az and unison,
# over a link this script builds itself: a network namespace joined to ours
# by a veth pair, shaped with tc tbf (netem is missing on these kernels),
# latency from a small delaying TCP proxy in front of an sshd in the
# namespace. Bytes on the wire come from the veth counters (ip -s link),
# both directions, so SSH, TCP and IP overhead count for every tool alike.
#
#   sudo benches/wan/run.sh                 # 8 Mbit/s, ~40 ms RTT, full sizes
#   sudo RATE=2mbit DELAY_MS=50 benches/wan/run.sh
#   sudo benches/wan/run.sh --quick         # smaller files, for a check
#   sudo DELTASYNC_SINGLE_ROUND=1 benches/wan/run.sh   # deltasync without rounds
#   sudo ONLY=renamed benches/wan/run.sh --quick       # only matching scenarios
#   sudo DS_EXTRA="--compress-level 15" TOOLS="copy sync" benches/wan/run.sh
#   sudo FUZZY=1 ONLY="new version" benches/wan/run.sh   # -y for rsync, copy and sync,
#                                                         # and a scenario for it
#
# It prints a Markdown table (the one in docs/benchmarks.md) and the
# geometric means of deltasync's bytes and seconds over the better peer's.
# Not part of the default test run. Traffic goes only to the namespace it
# creates. Needs rsync, unison, iproute2 and openssh-server.
set -euo pipefail
cd "$(dirname "$0")/../.."
RATE=${RATE:-8mbit}
DELAY_MS=${DELAY_MS:-20}
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
[ "$(id -u)" = 0 ] || { echo "run as root (it creates a network namespace)" >&2; exit 1; }
for t in ip tc rsync unison ssh ssh-keygen python3 /usr/sbin/sshd; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install rsync unison iproute2 openssh-server)" >&2; exit 1; }
done

NS=dswan$$
HOSTIF=dsw$$h
PEERIF=dsw$$p
HOST_IP=10.77.0.1
PEER_IP=10.77.0.2
work=$(mktemp -d /tmp/dswan.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  ip link del "$HOSTIF" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --release -q
BIN=$PWD/target/release/deltasync

# The link.
ip netns add "$NS"
ip link add "$HOSTIF" type veth peer name "$PEERIF"
ip link set "$PEERIF" netns "$NS"
ip addr add "$HOST_IP/24" dev "$HOSTIF"
ip link set "$HOSTIF" up
ip netns exec "$NS" ip addr add "$PEER_IP/24" dev "$PEERIF"
ip netns exec "$NS" ip link set "$PEERIF" up
ip netns exec "$NS" ip link set lo up
tc qdisc add dev "$HOSTIF" root tbf rate "$RATE" burst 32kbit latency 400ms
ip netns exec "$NS" tc qdisc add dev "$PEERIF" root tbf rate "$RATE" burst 32kbit latency 400ms

# sshd in the namespace, behind the delaying proxy.
ssh-keygen -q -t ed25519 -N "" -f "$work/host_key"
ssh-keygen -q -t ed25519 -N "" -f "$work/id"
cp "$work/id.pub" "$work/authorized_keys"
mkdir -p /run/sshd
cat > "$work/sshd_config" <<CFG
Port 2201
ListenAddress 127.0.0.1
HostKey $work/host_key
AuthorizedKeysFile $work/authorized_keys
PidFile $work/sshd.pid
StrictModes no
UsePAM no
PasswordAuthentication no
PermitRootLogin prohibit-password
LogLevel QUIET
CFG
ip netns exec "$NS" /usr/sbin/sshd -D -f "$work/sshd_config" & pids+=($!)
ip netns exec "$NS" python3 benches/wan/delay_proxy.py --listen "$PEER_IP:2200" --target 127.0.0.1:2201 --delay-ms "$DELAY_MS" & pids+=($!)
echo "[$PEER_IP]:2200 $(cut -d' ' -f1,2 "$work/host_key.pub")" > "$work/known_hosts"
sleep 1
SSH="ssh -p 2200 -i $work/id -o UserKnownHostsFile=$work/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes"

wire_bytes() {
  ip -j -s link show "$HOSTIF" | python3 -c 'import json,sys; s=json.load(sys.stdin)[0]["stats64"]; print(s["rx"]["bytes"]+s["tx"]["bytes"])'
}

# run TOOL DST: brings DST on the far side up to $work/src; prints "bytes seconds".
UNISON_OPTS=(-batch -auto -silent -times -confirmbigdel=false -servercmd "env UNISON=$work/unison-far unison"
  -sshargs "-C -p 2200 -i $work/id -o UserKnownHostsFile=$work/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes")
DS_OPTS=(--identity "$work/id" --known-hosts "$work/known_hosts" --remote-bin "$BIN")
# DS_EXTRA: more options for deltasync copy and sync (e.g. "--compress-level 15").
read -r -a extra <<< "${DS_EXTRA:-}"
DS_OPTS+=("${extra[@]}")
RSYNC_OPTS=(-az --delete)
if [ "${FUZZY:-0}" = 1 ]; then
  RSYNC_OPTS+=(-y)
  DS_OPTS+=(-y)
fi
export UNISON=$work/unison-near
run() {
  local tool=$1 dst=$2 b0 b1 t0 t1
  b0=$(wire_bytes); t0=$(date +%s.%N)
  case $tool in
    rsync) rsync "${RSYNC_OPTS[@]}" -e "$SSH" "$work/src/" "root@$PEER_IP:$dst/" ;;
    unison) unison "$work/src" "ssh://root@$PEER_IP/$dst" "${UNISON_OPTS[@]}" >/dev/null ;;
    copy) "$BIN" copy --delete "${DS_OPTS[@]}" "$work/src/" "ssh://root@$PEER_IP:2200$dst/" ;;
    sync) "$BIN" sync "${DS_OPTS[@]}" "$work/src" "ssh://root@$PEER_IP:2200$dst" >/dev/null ;;
  esac
  t1=$(date +%s.%N); b1=$(wire_bytes)
  echo "$((b1 - b0)) $(python3 -c "print(f'{$t1 - $t0:.2f}')")"
}

G="python3 benches/wan/gen.py"
if [ $QUICK = 1 ]; then BIG=$((8 << 20)); FILES=500; else BIG=$((64 << 20)); FILES=3000; fi
read -r -a TOOLS <<< "${TOOLS:-rsync unison copy sync}"

# scenario NAME PREPARE EDIT: PREPARE fills $work/base; EDIT changes $work/src.
# unison and sync keep state: each first syncs the unedited pair (not
# measured), so what is measured is the edit, as in daily use.
results=()
rows=()
scenario() {
  local name=$1 prepare=$2 edit=$3
  # ONLY=pattern runs just the scenarios whose names match.
  [[ -z "${ONLY:-}" || "$name" == *$ONLY* ]] || return 0
  rm -rf "$work/base"
  mkdir -p "$work/base"
  $prepare "$work/base"
  # Age the basis: rsync compares whole seconds, and an edit made in the same
  # second as the original would look unchanged to it.
  find "$work/base" -exec touch -h -d @1600000000 {} +
  local line="| $name |" nums=""
  for tool in "${TOOLS[@]}"; do
    rm -rf "$work/src" "$work/dst" "$work"/unison-*
    cp -a "$work/base" "$work/src"
    if [ "$prepare" = empty_dir ]; then mkdir -p "$work/dst"; else cp -a "$work/base" "$work/dst"; fi
    if [ "$prepare" != empty_dir ] && { [ "$tool" = unison ] || [ "$tool" = sync ]; }; then
      run "$tool" "$work/dst" >/dev/null
    fi
    $edit "$work/src"
    read -r bytes secs < <(run "$tool" "$work/dst")
    diff -r --exclude=.deltasync "$work/src" "$work/dst" >/dev/null || { echo "$tool: $name: trees differ" >&2; exit 1; }
    line="$line $bytes | $secs |"
    nums="$nums $bytes $secs"
  done
  results+=("$line")
  rows+=("$nums")
  echo "$line" >&2
}

prep_big() { $G random "$1/big.bin" "$BIG" 1; }
prep_shift() { $G random "$1/data.bin" $((BIG / 2)) 2; }
prep_log() { $G log "$1/app.log" $((BIG / 4)) 3; }
prep_tree() { $G tree "$1" "$FILES" 4; }
prep_mixed() {
  $G tree "$1/notes" $((FILES / 3)) 5
  for i in 1 2 3 4 5; do $G random "$1/blob$i.bin" $((1 << 20)) $((10 + i)); done
  $G log "$1/server.log" $((4 << 20)) 6
}
edit_scatter() { $G scatter "$1/big.bin" 30 7; }
edit_shift() { $G shift "$1/data.bin" 10 8; }
edit_append() { $G append-log "$1/app.log" $((512 << 10)) 9; }
edit_some() { $G touch-some "$1" 20 10; }
edit_none() { :; }
edit_rename() { mv "$1/dir07" "$1/dir07-renamed"; }
edit_version() { cp "$1/big.bin" "$1/big-2.bin"; $G scatter "$1/big-2.bin" 30 11; }
empty_dir() { :; }
move_mixed() { rm -rf "${1:?}"/*; prep_mixed "$1"; }

scenario "initial copy of a mixed tree" empty_dir move_mixed
scenario "big file, 30 scattered 100-byte edits" prep_big edit_scatter
scenario "inserts and deletes that shift offsets" prep_shift edit_shift
scenario "appended log (+512 KiB)" prep_log edit_append
scenario "$FILES small files, 20 changed" prep_tree edit_some
scenario "a folder of $((FILES / 50)) files renamed" prep_tree edit_rename
scenario "no change ($FILES files)" prep_tree edit_none
if [ "${FUZZY:-0}" = 1 ]; then
  scenario "a new version beside the old one, 30 edits" prep_big edit_version
fi

echo
echo "Link: $RATE each way (tc tbf), ${DELAY_MS} ms delay each way (proxy). Bytes: veth rx+tx during the run."
echo
echo "| scenario | rsync bytes | rsync s | unison bytes | unison s | copy bytes | copy s | sync bytes | sync s |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${results[@]}"
echo
[ ${#TOOLS[@]} = 4 ] && printf '%s\n' "${rows[@]}" | python3 -c '
import math, sys
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
def gm(xs): return math.exp(sum(math.log(max(x, 1e-9)) for x in xs) / len(xs))
for name, col in (("copy", 4), ("sync", 6)):
    b = [r[col] / min(r[0], r[2]) for r in rows]
    t = [r[col + 1] / min(r[1], r[3]) for r in rows]
    print(f"{name}: bytes {gm(b):.2f}x the better peer (worst {max(b):.2f}x), seconds {gm(t):.2f}x (worst {max(t):.2f}x)")
'
