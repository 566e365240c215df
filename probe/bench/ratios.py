#!/usr/bin/env python3
"""Prints issue 6's ratio table from a `headroom probe` report and torch_reference.py's JSON.

usage: ratios.py PROBE_REPORT.json TORCH_REFERENCE.json  (Markdown table on stdout)
"""
import json
import sys


def best(report, prefix, field, **params):
    values = []
    for stage in report["stages"]:
        for m in stage.get("measurements", []):
            if m["status"] != "ok" or not m["name"].startswith(prefix) or field not in m:
                continue
            if all(m["params"].get(k) == v for k, v in params.items()):
                values.append(m[field])
    return max(values) if values else None


def param(report, name, key, field):
    """`params[key][field]` of the measurement called `name` (None if absent or skipped)."""
    for stage in report["stages"]:
        for m in stage.get("measurements", []):
            if m["name"] == name and m["status"] == "ok":
                value = m["params"].get(key)
                if isinstance(value, dict):
                    return value.get(field)
    return None


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    probe = json.load(open(sys.argv[1]))
    torch = json.load(open(sys.argv[2]))
    ref = torch["results"]
    rows = []

    def row(kernel, ours, theirs, target, unit, scale):
        # The target's threshold, e.g. "≥ 30%" -> 0.30; "report" rows have none.
        threshold = None
        if target.startswith("≥ "):
            threshold = float(target[2:].split("%")[0]) / 100
        if ours is None or theirs is None:
            rows.append((kernel, "-" if ours is None else f"{ours / scale:.2f}",
                         "-" if theirs is None else f"{theirs / scale:.2f}", "-", target,
                         "not measured" if threshold is not None else "—"))
            return
        ratio = ours / theirs
        met = "—" if threshold is None else ("yes" if ratio >= threshold else "**no**")
        rows.append((kernel, f"{ours / scale:.2f} {unit}", f"{theirs / scale:.2f} {unit}",
                     f"{ratio * 100:.1f}%", target, met))

    for n in (4096, 8192):
        row(f"GEMM f32 {n}³", best(probe, "gemm.f32", "flops_per_s", n=n),
            ref.get(f"matmul.fp32.{n}", {}).get("flops_per_s"), "≥ 50%", "TFLOP/s", 1e12)
    for n in (4096, 8192):
        row(f"GEMM f16 coop-matrix, f32 acc {n}³", best(probe, "gemm.coop.f16.acc_f32", "flops_per_s", n=n),
            ref.get(f"matmul.fp16.{n}", {}).get("flops_per_s"), "≥ 30%", "TFLOP/s", 1e12)
    for n in (4096, 8192):
        fp32 = ref.get(f"matmul.fp32.{n}", {}).get("flops_per_s")
        row(f"GEMM f16 vector, f32 acc {n}³", best(probe, "gemm.f16.acc_f32", "flops_per_s", n=n),
            None if fp32 is None else 2 * fp32, "report (vs cuBLAS fp32 × 2)", "TFLOP/s", 1e12)
        row(f"GEMM f16 vector, f16 acc {n}³", best(probe, "gemm.f16.acc_f16", "flops_per_s", n=n),
            None if fp32 is None else 2 * fp32, "report (vs cuBLAS fp32 × 2)", "TFLOP/s", 1e12)
    for mask in ("full", "causal"):
        row(f"attention fp16 B8 H32 S2048 D128 {mask}",
            best(probe, f"attention.f16.d128.{mask}", "flops_per_s", batch=8, heads=32, seq=2048),
            ref.get(f"sdpa.fp16.d128.{mask}", {}).get("flops_per_s"), "≥ 20%", "TFLOP/s", 1e12)
    row("copy (read + written)", best(probe, "bandwidth.copy", "bytes_per_s"),
        ref.get("copy.4GiB", {}).get("bytes_per_s"), "≥ 95%", "GB/s", 1e9)
    row("read (torch sum)", best(probe, "bandwidth.read", "bytes_per_s"),
        ref.get("sum.4GiB", {}).get("bytes_per_s"), "≥ 95%", "GB/s", 1e9)
    row("write (torch fill)", best(probe, "bandwidth.write", "bytes_per_s"),
        ref.get("fill.4GiB", {}).get("bytes_per_s"), "≥ 95%", "GB/s", 1e9)
    # The driver's own fill (vkCmdFillBuffer on Vulkan) of the same buffer, timed by the probe:
    # what the Vulkan path itself reaches, beside CUDA's fill above.
    row("write (driver's fill, same probe run)", best(probe, "bandwidth.write", "bytes_per_s"),
        param(probe, "bandwidth.write", "driver_fill", "bytes_per_s"), "report", "GB/s", 1e9)
    read = best(probe, "bandwidth.read", "bytes_per_s")
    for fmt in ("q4_0", "q8_0", "fp16"):
        row(f"decode {fmt} (weight bytes/s)", best(probe, f"decode.{fmt}", "bytes_per_s"), read,
            "≥ 85% of probe read", "GB/s", 1e9)
    print("| kernel | probe | reference | ratio | target | met? |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
