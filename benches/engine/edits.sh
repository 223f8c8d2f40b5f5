#!/usr/bin/env bash
# Way 7 of issue 10: the engine on 200 scattered 2,000-byte edits of a
# 256 MiB random file, beside Debian's rdiff, in one run. The signature is
# rdiff's `-H md4` (MD4 + RabinKarp, its default 16 KiB blocks for this
# size); both tools' deltas must be byte-identical (checked).
#
#   benches/engine/edits.sh                 # 5 runs each, medians
#   RUNS=9 SIZE_MIB=64 benches/engine/edits.sh
#
# Prints a Markdown table: median wall seconds and deltasync ÷ rdiff.
# `patch` is timed both with deltasync's default fsync and --no-fsync (rdiff
# does not fsync). Needs rdiff and python3. Writes ~1.3 GiB under BENCH_DIR.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-5}
SIZE_MIB=${SIZE_MIB:-256}
command -v rdiff >/dev/null || { echo "missing rdiff (apt-get install rdiff)" >&2; exit 1; }
cargo build --release -q
BIN=${DELTASYNC:-$PWD/target/release/deltasync}
work=$(mktemp -d "${BENCH_DIR:-/tmp}/dsedits.XXXXXX")
trap 'rm -rf "$work"' EXIT

python3 - "$work" "$SIZE_MIB" <<'PY'
import os, random, sys
work, mib = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
with open(f"{work}/old", "wb") as f:
    for _ in range(mib):
        f.write(rng.randbytes(1 << 20))
data = bytearray(open(f"{work}/old", "rb").read())
for _ in range(200):
    at = rng.randrange(len(data) - 2000)
    data[at:at + 2000] = rng.randbytes(2000)
open(f"{work}/new", "wb").write(data)
PY
rdiff -H md4 signature "$work/old" "$work/sig"

# time_median CMD...: the median wall seconds of RUNS runs of CMD.
time_median() {
  local t=()
  for _ in $(seq "$RUNS"); do
    rm -f "$work/out"
    local a b
    a=$(date +%s.%N); "$@" >/dev/null; b=$(date +%s.%N)
    t+=("$(python3 -c "print($b - $a)")")
  done
  printf '%s\n' "${t[@]}" | sort -g | awk '{v[NR]=$1} END {printf "%.3f", v[int((NR+1)/2)]}'
}
ratio() { python3 -c "print(f'{$2 / $1:.2f}')"; }

rd=$(time_median rdiff delta "$work/sig" "$work/new" "$work/out"); cp "$work/out" "$work/rd.delta"
dd=$(time_median "$BIN" delta "$work/sig" "$work/new" "$work/out"); cp "$work/out" "$work/ds.delta"
cmp -s "$work/rd.delta" "$work/ds.delta" || { echo "the two deltas differ" >&2; exit 1; }
rp=$(time_median rdiff patch "$work/old" "$work/rd.delta" "$work/out")
dp=$(time_median "$BIN" patch "$work/old" "$work/rd.delta" "$work/out")
dn=$(time_median "$BIN" patch --no-fsync "$work/old" "$work/rd.delta" "$work/out")
cmp -s "$work/out" "$work/new" || { echo "patch did not rebuild the new file" >&2; exit 1; }

echo "| command ($SIZE_MIB MiB, 200 scattered 2,000-byte edits, MD4 signature; median of $RUNS) | rdiff s | deltasync s | ratio |"
echo "|---|---|---|---|"
echo "| delta | $rd | $dd | $(ratio "$rd" "$dd")× |"
echo "| patch (deltasync fsyncs) | $rp | $dp | $(ratio "$rp" "$dp")× |"
echo "| patch --no-fsync | $rp | $dn | $(ratio "$rp" "$dn")× |"
