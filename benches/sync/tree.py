"""Makes the sync benchmarks' tree: N small text files in 1000 folders.

    python3 benches/sync/tree.py ROOT N
"""
import os
import sys

root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = f"{root}/d{i % 100:03d}/s{(i // 100) % 10}"
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/f{i}.txt", "w") as f:
        f.write(f"file {i}\n" * (1 + i % 20))
