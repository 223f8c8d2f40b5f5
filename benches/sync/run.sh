#!/usr/bin/env bash
# The no-change sync benchmark: N small files (default 100,000), already in
# step, synced again with nothing to do. deltasync sync beside rsync -a
# (finding nothing to copy) and unison -batch, locally and over an sshd this
# script starts on 127.0.0.1 (generated keys, its own known_hosts, killed at
# the end). Each figure is the median of RUNS runs (default 5).
#
#   benches/sync/run.sh                 # 100,000 files
#   FILES=20000 RUNS=3 benches/sync/run.sh
#
# Installs unison with apt-get when it is missing and we are root. Prints a
# Markdown table (the one in docs/benchmarks.md). Not part of the default
# test run. Traffic goes only to 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/../.."
FILES=${FILES:-100000}
RUNS=${RUNS:-5}
if ! command -v unison >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends unison >/dev/null
  else
    echo "benches/sync: install unison (sudo apt-get install unison)" >&2
    exit 1
  fi
fi
for t in rsync ssh ssh-keygen python3 /usr/sbin/sshd; do
  command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 1; }
done

cargo build --release -q
bin=$PWD/target/release/deltasync
work=$(mktemp -d /tmp/dssync.XXXXXX)
sshd_pid=
cleanup() {
  [ -n "$sshd_pid" ] && kill "$sshd_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export HOME=$work/home UNISON=$work/unison
mkdir -p "$HOME" "$UNISON"

python3 benches/sync/tree.py "$work/src" "$FILES"

# sshd on a free loopback port, with keys made here.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ssh-keygen -q -t ed25519 -N "" -f "$work/host" && ssh-keygen -q -t ed25519 -N "" -f "$work/id"
cp "$work/id.pub" "$work/authorized_keys"
mkdir -p /run/sshd
cat > "$work/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $work/host
AuthorizedKeysFile $work/authorized_keys
PidFile $work/sshd.pid
StrictModes no
UsePAM no
PasswordAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
Subsystem sftp internal-sftp
SetEnv HOME=$HOME UNISON=$UNISON
LogLevel QUIET
EOF
/usr/sbin/sshd -D -f "$work/sshd_config" & sshd_pid=$!
echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$work/host.pub")" > "$work/known_hosts"
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
sshopt=(--identity "$work/id" --known-hosts "$work/known_hosts" --remote-bin "$bin")
rsh="ssh -p $port -i $work/id -o UserKnownHostsFile=$work/known_hosts -o BatchMode=yes"

# Median wall seconds of RUNS runs of "$@".
median() {
  local times=()
  for _ in $(seq "$RUNS"); do
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null 2>&1
    t1=$(date +%s.%N)
    times+=("$(echo "$t1 - $t0" | bc)")
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((RUNS + 1) / 2))p" | xargs printf '%.2f'
}

# Bring every copy in step first (timed once, for the record).
first() { local t0; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; echo "$(date +%s.%N) - $t0" | bc | xargs printf '%.2f'; }
mk() { mkdir -p "$work/$1"; cp -a "$work/src/." "$work/$1/"; }
for d in ds-a rs-a un-a dsr-a; do mk "$d"; done
mkdir -p "$work/ds-b" "$work/un-b" "$work/dsr-b" "$work/rs-b" "$work/rsr-b" "$work/unr-b"
t_ds_first=$(first "$bin" sync -q "$work/ds-a" "$work/ds-b")
t_rs_first=$(first rsync -a "$work/rs-a/" "$work/rs-b/")
t_un_first=$(first unison -batch -silent -times -perms 0 "$work/un-a" "$work/un-b")
t_dsr_first=$(first "$bin" sync -q "${sshopt[@]}" "$work/dsr-a" "ssh://127.0.0.1:$port$work/dsr-b")
t_rsr_first=$(first rsync -a -e "$rsh" "$work/rs-a/" "127.0.0.1:$work/rsr-b/")
t_unr_first=$(first unison -batch -silent -times -perms 0 -sshargs "-p $port -i $work/id -o UserKnownHostsFile=$work/known_hosts" "$work/un-a" "ssh://127.0.0.1/$work/unr-b")
# One more deltasync run each: the first run wrote to B, so its digest was
# not kept; this one lists in full, finds nothing, and records the digests.
"$bin" sync -q "$work/ds-a" "$work/ds-b"
"$bin" sync -q "${sshopt[@]}" "$work/dsr-a" "ssh://127.0.0.1:$port$work/dsr-b"

t_ds=$(median "$bin" sync -q "$work/ds-a" "$work/ds-b")
t_rs=$(median rsync -a "$work/rs-a/" "$work/rs-b/")
t_un=$(median unison -batch -silent -times -perms 0 "$work/un-a" "$work/un-b")
t_dsr=$(median "$bin" sync -q "${sshopt[@]}" "$work/dsr-a" "ssh://127.0.0.1:$port$work/dsr-b")
t_rsr=$(median rsync -a -e "$rsh" "$work/rs-a/" "127.0.0.1:$work/rsr-b/")
t_unr=$(median unison -batch -silent -times -perms 0 -sshargs "-p $port -i $work/id -o UserKnownHostsFile=$work/known_hosts" "$work/un-a" "ssh://127.0.0.1/$work/unr-b")

# Bytes on the wire of one more no-change remote run.
ds_bytes=$("$bin" sync --json "${sshopt[@]}" "$work/dsr-a" "ssh://127.0.0.1:$port$work/dsr-b" |
  python3 -c 'import json,sys; v=json.load(sys.stdin); assert not v["changes"], v; print(v["sent_bytes"] + v["received_bytes"])')
rs_bytes=$(rsync -a --stats -e "$rsh" "$work/rs-a/" "127.0.0.1:$work/rsr-b/" |
  awk '/Total bytes sent/ {gsub(",", "", $4); s=$4} /Total bytes received/ {gsub(",", "", $4); r=$4} END {print s + r}')
for pair in "ds-a ds-b" "dsr-a dsr-b" "rs-a rs-b" "rs-a rsr-b" "un-a un-b" "un-a unr-b"; do
  set -- $pair
  diff -r --exclude=.deltasync -q "$work/$1" "$work/$2" >/dev/null || { echo "$1 and $2 differ" >&2; exit 1; }
done

ratio() { echo "scale=2; $1 / $2" | bc; }
echo "$FILES files, $(du -sh "$work/src" | cut -f1) on disk; medians of $RUNS runs (seconds)"
echo
echo "| run | deltasync sync | rsync -a | unison -batch | deltasync / rsync |"
echo "|---|---|---|---|---|"
echo "| first sync, local | $t_ds_first | $t_rs_first | $t_un_first | $(ratio "$t_ds_first" "$t_rs_first")× |"
echo "| first sync, loopback sshd | $t_dsr_first | $t_rsr_first | $t_unr_first | $(ratio "$t_dsr_first" "$t_rsr_first")× |"
echo "| no change, local | $t_ds | $t_rs | $t_un | $(ratio "$t_ds" "$t_rs")× |"
echo "| no change, loopback sshd | $t_dsr | $t_rsr | $t_unr | $(ratio "$t_dsr" "$t_rsr")× |"
echo
echo "bytes on the wire, no-change run over sshd: deltasync $ds_bytes, rsync $rs_bytes (rsync --stats: sent + received)"
