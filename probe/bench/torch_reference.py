#!/usr/bin/env python3
"""PyTorch reference figures for the probe's kernels on the same GPU (issue 6).

Prints one JSON object: cuBLAS matmul fp32 (TF32 off) and fp16 at 4096^3 and 8192^3,
scaled_dot_product_attention fp16 at B8 H32 S2048 D128 (causal and not), and copy / sum / fill
over 4 GiB. Timing: CUDA events around repeated calls after warm-up, each measurement at least
0.2 s; copy counts bytes read + written, sum counts bytes read, fill counts bytes written —
the same conventions as `headroom probe`.
"""
import json
import sys

import torch

TARGET_S = 0.2
WARMUP = 3


def timed(fn):
    for _ in range(WARMUP):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    torch.cuda.synchronize()
    once = max(start.elapsed_time(end) / 1e3, 1e-6)
    reps = max(1, int(TARGET_S / once))
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / 1e3 / reps


def main():
    if not torch.cuda.is_available():
        print(json.dumps({"error": "no CUDA device"}))
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    props = torch.cuda.get_device_properties(0)
    out = {
        "device": props.name,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "multiprocessors": props.multi_processor_count,
        "memory_bytes": props.total_memory,
        "results": {},
    }
    r = out["results"]
    for n in (4096, 8192):
        for name, dtype in (("fp32", torch.float32), ("fp16", torch.float16)):
            a = torch.randn(n, n, device="cuda", dtype=dtype)
            b = torch.randn(n, n, device="cuda", dtype=dtype)
            c = torch.empty(n, n, device="cuda", dtype=dtype)
            s = timed(lambda: torch.matmul(a, b, out=c))
            r[f"matmul.{name}.{n}"] = {"flops_per_s": 2 * n**3 / s, "per_iter_s": s}
            del a, b, c
    bsz, heads, seq, dim = 8, 32, 2048, 128
    q, k, v = (torch.randn(bsz, heads, seq, dim, device="cuda", dtype=torch.float16) for _ in range(3))
    for causal in (False, True):
        s = timed(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal))
        work = 4 * bsz * heads * seq * seq * dim
        if causal:
            work /= 2
        r[f"sdpa.fp16.d128.{'causal' if causal else 'full'}"] = {"flops_per_s": work / s, "per_iter_s": s}
    del q, k, v
    nbytes = 4 << 30
    src = torch.randint(0, 2**31 - 1, (nbytes // 4,), device="cuda", dtype=torch.int32)
    dst = torch.empty_like(src)
    s = timed(lambda: dst.copy_(src))
    r["copy.4GiB"] = {"bytes_per_s": 2 * nbytes / s, "bytes_counted": "read + written", "per_iter_s": s}
    srcf = src.view(torch.float32)
    s = timed(lambda: torch.sum(srcf))
    r["sum.4GiB"] = {"bytes_per_s": nbytes / s, "bytes_counted": "read", "per_iter_s": s}
    s = timed(lambda: dst.fill_(7))
    r["fill.4GiB"] = {"bytes_per_s": nbytes / s, "bytes_counted": "written", "per_iter_s": s}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
