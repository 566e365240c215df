#!/usr/bin/env python3
"""Turn what cuda_bench.sh wrote (bench.jsonl, machine.txt, report.json) into the committed
fixtures: tests/data/measured/llama-cpp-cuda-h100.json (the llama-bench rows, trimmed to what
the test reads) and tests/data/reports/h100-llama-bench-host-report.json (the probe report).

Usage: cuda_fixture.py OUT_DIR_OF_CUDA_BENCH
"""

import json
import pathlib
import shutil
import sys

MODELS = {
    "llama-3.1-8b-q4_0.gguf": ("llama-3.1-8b", "tests/data/hf-configs/Llama-3.1-8B.json"),
    "qwen3-30b-a3b-q4_0.gguf": ("qwen3-30b-a3b", "tests/data/hf-configs/Qwen3-30B-A3B.json"),
}


def main() -> None:
    src = pathlib.Path(sys.argv[1])
    repo = pathlib.Path(__file__).resolve().parents[3]
    rows, build = [], None
    for line in (src / "bench.jsonl").read_text().splitlines():
        r = json.loads(line)
        name = pathlib.Path(r["model_filename"]).name
        model, config = MODELS[name]
        build = r["build_commit"]
        rows.append({
            "model": model,
            "config": config,
            "file_bytes": r["model_size"],
            "n_gpu_layers": r["n_gpu_layers"],
            "n_cpu_moe": r["n_cpu_moe"],
            "n_prompt": r["n_prompt"],
            "n_gen": r["n_gen"],
            "n_threads": r["n_threads"],
            "flash_attn": r["flash_attn"],
            "tokens_per_s": round(r["avg_ts"], 2),
            "samples_tokens_per_s": r["samples_ts"],
        })
    out = {
        "_about": (
            "llama-bench (CUDA build of the llama.cpp vendored in llama-cpp-python 0.3.36, "
            f"build {build}, sm_90, flash-attention kernels not compiled: -fa 0) on one NVIDIA "
            "H100 80GB HBM3 with a 16-core Xeon host (125 GiB RAM, no swap), random-weight Q4_0 "
            "GGUFs of the real configs at full depth (make_gguf.py --type q4_0: output.weight "
            "Q6_K), every layer on the GPU, fewer layers on it (-ngl) and MoE experts in system "
            "RAM (--n-cpu-moe). pp = n_prompt tokens of prefill, tg = n_gen tokens of decode from "
            "an empty context; tokens_per_s is llama-bench's mean over the samples. The probe "
            "report beside it (tests/data/reports/h100-llama-bench-host-report.json) measured "
            "the same machine first (--quick: bandwidth, decode, host_bandwidth, transfer). Made "
            "by tests/measure/llama_cpp/cuda_bench.sh and cuda_fixture.py."
        ),
        "llama_cpp_build": build,
        "machine": (src / "machine.txt").read_text().splitlines()[:13],
        "rows": rows,
    }
    dest = repo / "tests/data/measured/llama-cpp-cuda-h100.json"
    dest.write_text(json.dumps(out, indent=1) + "\n")
    shutil.copy(src / "report.json", repo / "tests/data/reports/h100-llama-bench-host-report.json")
    print(f"{len(rows)} rows -> {dest}")


if __name__ == "__main__":
    main()
