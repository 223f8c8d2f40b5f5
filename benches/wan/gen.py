#!/usr/bin/env python3
"""Test data for the WAN benchmark, deterministic by seed.

gen.py random PATH SIZE SEED        random bytes
gen.py log PATH SIZE SEED           log-like text lines
gen.py scatter PATH COUNT SEED      overwrite COUNT 100-byte spots
gen.py shift PATH COUNT SEED        COUNT inserts and COUNT deletes (offsets shift)
gen.py append-log PATH SIZE SEED    append SIZE bytes of log lines
gen.py tree DIR FILES SEED          FILES small text files in subdirectories
gen.py touch-some DIR COUNT SEED    append a line to COUNT files of a tree
"""
import os
import random
import sys


def log_lines(rng, size):
    words = ["GET", "POST", "/api/v1/items", "/login", "200", "404", "500", "user", "ok", "timeout", "retry"]
    out, n = [], 0
    while n < size:
        line = f"2026-11-25T{rng.randrange(24):02}:{rng.randrange(60):02}:{rng.randrange(60):02} " \
               f"host{rng.randrange(40)} {' '.join(rng.choice(words) for _ in range(8))} id={rng.getrandbits(48):x}\n"
        out.append(line)
        n += len(line)
    return "".join(out).encode()[:size]


def main():
    cmd, path, n, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(seed)
    if cmd == "random":
        with open(path, "wb") as f:
            left = n
            while left:
                k = min(left, 1 << 20)
                f.write(rng.randbytes(k))
                left -= k
    elif cmd == "log":
        open(path, "wb").write(log_lines(rng, n))
    elif cmd == "scatter":
        size = os.path.getsize(path)
        with open(path, "r+b") as f:
            for _ in range(n):
                f.seek(rng.randrange(size - 100))
                f.write(rng.randbytes(100))
    elif cmd == "shift":
        data = bytearray(open(path, "rb").read())
        for _ in range(n):
            at = rng.randrange(len(data))
            data[at:at] = rng.randbytes(rng.randrange(1, 200))
            at = rng.randrange(len(data) - 300)
            del data[at:at + rng.randrange(1, 300)]
        open(path, "wb").write(data)
    elif cmd == "append-log":
        open(path, "ab").write(log_lines(rng, n))
    elif cmd == "tree":
        for i in range(n):
            d = os.path.join(path, f"dir{i % 50:02}")
            os.makedirs(d, exist_ok=True)
            open(os.path.join(d, f"note{i:05}.txt"), "wb").write(log_lines(rng, rng.randrange(500, 4000)))
    elif cmd == "touch-some":
        files = sorted(os.path.join(r, f) for r, _, fs in os.walk(path) for f in fs)
        for f in rng.sample(files, n):
            open(f, "ab").write(b"one more line\n")
    else:
        sys.exit(f"unknown command {cmd}")


main()
