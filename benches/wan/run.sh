#!/usr/bin/env bash
# The WAN benchmark: deltasync copy beside rsync -az --partial, over a link
# this script builds itself: a network namespace joined to ours by a veth
# pair, shaped with tc tbf (netem is missing on these kernels), latency from
# a small delaying TCP proxy in front of an sshd in the namespace. Bytes on
# the wire come from the veth counters (ip -s link), both directions.
#
#   sudo benches/wan/run.sh                 # 4 Mbit/s, ~40 ms RTT, full sizes
#   sudo RATE=2mbit DELAY_MS=50 benches/wan/run.sh
#   sudo benches/wan/run.sh --quick         # smaller files, for a check
#
# It prints a Markdown table (the one in docs/benchmarks.md). Not part of
# the default test run. Traffic goes only to the namespace it creates.
set -euo pipefail
cd "$(dirname "$0")/../.."
RATE=${RATE:-4mbit}
DELAY_MS=${DELAY_MS:-20}
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
[ "$(id -u)" = 0 ] || { echo "run as root (it creates a network namespace)" >&2; exit 1; }
for t in ip tc rsync ssh ssh-keygen python3 /usr/sbin/sshd; do
  command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 1; }
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

# run TOOL DST: copies $work/src/ to DST on the far side; prints "bytes seconds".
run() {
  local tool=$1 dst=$2 b0 b1 t0 t1
  b0=$(wire_bytes); t0=$(date +%s.%N)
  if [ "$tool" = rsync ]; then
    rsync -az --partial -e "$SSH" "$work/src/" "root@$PEER_IP:$dst/"
  else
    "$BIN" copy --identity "$work/id" --known-hosts "$work/known_hosts" --remote-bin "$BIN" \
      "$work/src/" "ssh://root@$PEER_IP:2200$dst/"
  fi
  t1=$(date +%s.%N); b1=$(wire_bytes)
  echo "$((b1 - b0)) $(python3 -c "print(f'{$t1 - $t0:.2f}')")"
}

G="python3 benches/wan/gen.py"
if [ $QUICK = 1 ]; then BIG=$((8 << 20)); FILES=500; else BIG=$((64 << 20)); FILES=3000; fi

# scenario NAME PREPARE EDIT: PREPARE fills $work/base; EDIT changes $work/src.
results=()
scenario() {
  local name=$1 prepare=$2 edit=$3
  rm -rf "$work/base" "$work/src" "$work"/dst_*
  mkdir -p "$work/base"
  $prepare "$work/base"
  # Age the basis: rsync compares whole seconds, and an edit made in the same
  # second as the original would look unchanged to it.
  find "$work/base" -exec touch -h -d @1600000000 {} +
  cp -a "$work/base" "$work/src"

  $edit "$work/src"
  local line="| $name |"
  local rs ds
  for tool in rsync deltasync; do
    local dst=$work/dst_$tool
    if [ "$name" = "initial copy of a mixed tree" ]; then mkdir -p "$dst"; else cp -a "$work/base" "$dst"; fi
    read -r bytes secs < <(run "$tool" "$dst")
    diff -r --exclude=.deltasync "$work/src" "$dst" >/dev/null || { echo "$tool: $name: trees differ" >&2; exit 1; }
    [ "$tool" = rsync ] && rs=$bytes || ds=$bytes
    line="$line $bytes | $secs |"
  done
  line="$line $(python3 -c "print(f'{$ds/$rs:.2f}×')") |"
  results+=("$line")
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
empty_dir() { :; }
move_mixed() { rm -rf "$1"/*; prep_mixed "$1"; }

scenario "big file, 30 scattered 100-byte edits" prep_big edit_scatter
scenario "inserts and deletes that shift offsets" prep_shift edit_shift
scenario "appended log (+512 KiB)" prep_log edit_append
scenario "$FILES small files, 20 changed" prep_tree edit_some
scenario "initial copy of a mixed tree" empty_dir move_mixed
scenario "no change ($FILES files)" prep_tree edit_none

echo
echo "Link: $RATE each way (tc tbf), ${DELAY_MS} ms delay each way (proxy). Bytes: veth rx+tx during the run."
echo
echo "| scenario | rsync bytes | rsync s | deltasync bytes | deltasync s | bytes ratio |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${results[@]}"
