#!/usr/bin/env bash
# Every test headroom has: installs what the tests need when missing (Mesa's lavapipe so the GPU
# kernels run on the CPU, Chromium and the site's tools), then runs the Rust tests (core math,
# CLI, probe kernels on lavapipe) and the site's tests in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
step() { printf '\n== %s (%ss)\n' "$*" "$((SECONDS - started))"; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
for pkg in mesa-vulkan-drivers libvulkan1; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${missing[*]} (lavapipe: Vulkan on the CPU, so every kernel runs without a GPU)"
  as_root apt-get update
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y --no-install-recommends "${missing[@]}"
fi

# The probe's tests validate reports against core/src/report.schema.json with Python's jsonschema,
# run by whichever python3 is first on PATH.
if ! python3 -c 'import jsonschema' 2>/dev/null; then
  step "installing Python's jsonschema for $(command -v python3)"
  python3 -m pip install --quiet jsonschema || {
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y --no-install-recommends python3-jsonschema
  }
fi

step "cargo test --workspace (the fuzz step follows on its own)"
cargo test --workspace -- --skip fuzz::

step "fuzz: 10,000 seeded mutations of configs, reports, GGUF and safetensors headers and the LoRA grammar (tests/fuzz.rs, seconds)"
fuzz_started=$SECONDS
cargo test -p headroom-tests fuzz:: -- --nocapture
echo "fuzz step: $((SECONDS - fuzz_started)) s"

step "headroom probe --quick on this machine (lavapipe without a GPU): the report the site's tests drop"
probe_report="$PWD/target/run-all-probe-report.json"
# A small sweep budget: on lavapipe the sweep fills host RAM slowly; the site needs a real report, not a big one.
cargo run --quiet -p headroom-probe -- probe --quick --budget 1GiB --out "$probe_report"
cargo run --quiet -p headroom-probe -- show "$probe_report" >/dev/null

step "site: install tools (skips what is there), build, test in headless Chromium"
bash web/ci/install-tools.sh
bash web/ci/build.sh
HEADROOM_PROBE_REPORT="$probe_report" bash web/ci/test.sh
step "all tests done in $((SECONDS - started)) s"
