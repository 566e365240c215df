#!/usr/bin/env bash
# Issue 6's benchmark: build the probe, run it and the PyTorch reference on the same GPU, print
# the ratio table. Run from the repository root on a machine with an NVIDIA GPU, Vulkan and
# PyTorch. Outputs go to ${OUT_DIR:-bench-out}/.
set -euo pipefail
out="${OUT_DIR:-bench-out}"
mkdir -p "$out"
bin="${HEADROOM_BIN:-}"
if [ -z "$bin" ]; then
    cargo build --release -p headroom-probe
    bin=target/release/headroom
fi
# PROBE_ARGS: extra flags for both probe runs, e.g. "--backend vulkan".
# shellcheck disable=SC2086
"$bin" probe ${PROBE_ARGS:-} --out "$out/probe-full.json" | tee "$out/probe-full.txt"
# shellcheck disable=SC2086
"$bin" probe ${PROBE_ARGS:-} --quick --out "$out/probe-quick.json" | tee "$out/probe-quick.txt"
python3 "$(dirname "$0")/torch_reference.py" > "$out/torch-reference.json"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv > "$out/gpu.csv" 2>/dev/null || true
python3 "$(dirname "$0")/ratios.py" "$out/probe-full.json" "$out/torch-reference.json" | tee "$out/ratios.md"
