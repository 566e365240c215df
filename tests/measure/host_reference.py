"""Reference figures for the probe's host_bandwidth and transfer stages, measured with PyTorch on
the same machine in the same run: host RAM read bandwidth (a sum over a buffer much larger than
the caches, on every core torch uses) and host -> device / device -> host copy rates from pageable
and from pinned memory. Prints one JSON object; needs torch with CUDA.

    python3 tests/measure/host_reference.py --out host-reference.json
"""
import argparse
import json
import time

import torch


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2], times[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gib", type=float, default=2.0, help="buffer size, GiB")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out")
    a = ap.parse_args()
    n = int(a.gib * (1 << 30)) // 4
    host = torch.ones(n, dtype=torch.float32)
    nbytes = host.numel() * 4
    out = {
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0),
        "cpu_threads": torch.get_num_threads(),
        "buffer_bytes": nbytes,
    }
    # Host read: a float32 sum reads every byte once.
    host.sum()
    med, best = best_of(lambda: host.sum(), a.repeats)
    out["host_read_bytes_per_s"] = {"median": nbytes / med, "best": nbytes / best}
    dev = torch.empty_like(host, device="cuda")
    dev.copy_(host)
    med, best = best_of(lambda: dev.copy_(host), a.repeats)
    out["h2d_pageable_bytes_per_s"] = {"median": nbytes / med, "best": nbytes / best}
    med, best = best_of(lambda: host.copy_(dev), a.repeats)
    out["d2h_pageable_bytes_per_s"] = {"median": nbytes / med, "best": nbytes / best}
    pinned = host.pin_memory()
    med, best = best_of(lambda: dev.copy_(pinned, non_blocking=True), a.repeats)
    out["h2d_pinned_bytes_per_s"] = {"median": nbytes / med, "best": nbytes / best}
    med, best = best_of(lambda: pinned.copy_(dev, non_blocking=True), a.repeats)
    out["d2h_pinned_bytes_per_s"] = {"median": nbytes / med, "best": nbytes / best}
    text = json.dumps(out, indent=1)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
