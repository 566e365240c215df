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

step "cargo test --workspace"
cargo test --workspace

if [ -x web/ci/test.sh ]; then
  step "site: install tools, build, test in headless Chromium"
  bash web/ci/install-tools.sh
  bash web/ci/build.sh
  bash web/ci/test.sh
else
  echo "!! SKIPPED: the site's browser tests (web/ci/test.sh does not exist yet)"
fi
step "all tests done in $((SECONDS - started)) s"
