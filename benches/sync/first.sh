#!/usr/bin/env bash
# A first sync of N small files (default 20,000) into a fresh ext4, beside
# rsync -a: the step-by-step table of issue 10, way 6, in docs/benchmarks.md.
# Each run gets a new filesystem (a loop-mounted image, mkfs'd anew), since
# deleting the last run's tree leaves ext4 slower to allocate inodes and
# the timings drift. Prints wall, user and system seconds per run, then a
# no-change run of deltasync on the synced pair. deltasync makes every
# file durable before it records it; rsync -a makes nothing durable, so
# each run also times rsync -a followed by one `sync -f` of the
# destination (the same bytes on disk at the end, with no order among
# them), and with RSYNC_FSYNC=1 rsync's own durable mode, rsync -a --fsync
# (slow: one fsync per file). With STRACE=1 it also counts system calls
# per file of one more first sync (strace -f -c).
#
#   sudo benches/sync/first.sh
#   sudo FILES=20000 RUNS=3 STRACE=1 benches/sync/first.sh
#   sudo DELTASYNC=/tmp/old/deltasync benches/sync/first.sh   # another build
#   sudo DELTASYNC_NO_BATCH=1 benches/sync/first.sh   # without batches
#
# Needs root (mount), mkfs.ext4 and rsync. Not part of the default test run.
set -euo pipefail
cd "$(dirname "$0")/../.."
FILES=${FILES:-20000}
RUNS=${RUNS:-3}
[ "$(id -u)" = 0 ] || { echo "run as root (it mounts a loop image)" >&2; exit 1; }
for t in mkfs.ext4 rsync python3; do
  command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 1; }
done
cargo build --release -q
bin=${DELTASYNC:-$PWD/target/release/deltasync}
work=$(mktemp -d /tmp/dsfirst.XXXXXX)
mnt=$work/mnt
mkdir -p "$mnt"
cleanup() {
  umount "$mnt" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

python3 benches/sync/tree.py "$work/src" "$FILES"
truncate -s 3G "$work/img"

# A fresh filesystem at $mnt with an empty dst/, and no sync state.
fresh() {
  umount "$mnt" 2>/dev/null || true
  mkfs.ext4 -q -F "$work/img"
  mount -o loop "$work/img" "$mnt"
  mkdir "$mnt/dst"
  rm -rf "$work/src/.deltasync" # the pair's state lives in A/.deltasync/
  sync
}
timed() { /usr/bin/time -f "$1: %e s wall, %U s user, %S s system" "${@:2}" >/dev/null; }

echo "$FILES files; first sync into a fresh ext4 each run"
for _ in $(seq "$RUNS"); do
  fresh; timed "deltasync sync" "$bin" sync -q "$work/src" "$mnt/dst"
  diff -r --exclude=.deltasync -q "$work/src" "$mnt/dst" >/dev/null || { echo "trees differ" >&2; exit 1; }
  fresh; timed "rsync -a" rsync -a "$work/src/" "$mnt/dst/"
  fresh; timed "rsync -a; sync -f" sh -c 'rsync -a "$1/" "$2/" && sync -f "$2"' - "$work/src" "$mnt/dst"
  if [ "${RSYNC_FSYNC:-0}" = 1 ]; then
    fresh; timed "rsync -a --fsync" rsync -a --fsync "$work/src/" "$mnt/dst/"
  fi
done
fresh; "$bin" sync -q "$work/src" "$mnt/dst"
for _ in $(seq "$RUNS"); do
  timed "deltasync sync, no change" "$bin" sync -q "$work/src" "$mnt/dst"
  timed "rsync -a, no change" rsync -a "$work/src/" "$mnt/dst/"
done
if [ "${STRACE:-0}" = 1 ]; then
  fresh
  strace -f -c -o "$work/strace" "$bin" sync -q "$work/src" "$mnt/dst" >/dev/null
  echo "system calls per file (strace -f -c, one first sync):"
  awk -v n="$FILES" '$4 ~ /^[0-9]+$/ && $NF != "total" { printf "  %-14s %6.1f\n", $NF, $4 / n }' "$work/strace" | sort -k2 -nr | head -15
fi
