#!/usr/bin/python3
"""Times torch.load(FILE, weights_only=True) + summing every tensor's bytes, in-process
(import time excluded): the peer of bench/torch_bench. Usage: bench_torch_load.py FILE [REPS]"""
import statistics, sys, time

import torch


def touch(tensor):
    """Sums the tensor's bytes as little-endian 64-bit words, as ../shared/bench's peers do
    (a uint8 sum would cost torch 10x more than the load itself)."""
    raw = tensor.reshape(-1).view(torch.uint8)
    whole = raw.numel() // 8 * 8
    return int(raw[:whole].view(torch.int64).sum()) if whole else 0


def main():
    path, reps = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 5
    times = []
    for _ in range(reps + 1):
        start = time.perf_counter()
        sd = torch.load(path, weights_only=True)
        total = sum(touch(t) for t in sd.values())
        times.append(time.perf_counter() - start)
    times = times[1:]  # the first call is colder
    print(f"torch.load {path}: median {statistics.median(times) * 1e3:.1f} ms over {reps} (checksum {total})")


if __name__ == "__main__":
    main()
