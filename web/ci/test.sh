#!/usr/bin/env bash
# Browser tests of the site (run web/ci/build.sh first):
#  1. wasm-bindgen-test component tests (web/tests/browser.rs) in headless Chromium via chromedriver
#     (web/webdriver.json passes --enable-unsafe-webgpu);
#  2. the playwright-core end-to-end suite (web/e2e/run.js) against web/dist served on 127.0.0.1,
#     screenshots saved under target/screenshots/.
# HEADROOM_PROBE_REPORT=path.json: a report from `headroom probe` to drop on the Reports page
# (default: the checked-in tests/data/reports/lavapipe-report.json).
set -euo pipefail
source "$(dirname "$0")/env.sh"

echo "== wasm-bindgen-test in headless Chromium"
cd "$WEB_DIR"
timed cargo test --target wasm32-unknown-unknown --test browser -- --nocapture

echo "== end-to-end (playwright-core, Debian chromium, WebGPU through SwiftShader)"
[ -f "$WEB_DIR/dist/index.html" ] || { echo "error: web/dist is missing: run web/ci/build.sh first" >&2; exit 1; }
log=$(mktemp)
# Port 0: the OS picks a free port; http.server prints it.
python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$WEB_DIR/dist" >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -f "$log"' EXIT
port=""
for _ in $(seq 100); do
  port=$(sed -n 's/.*port \([0-9]*\).*/\1/p' "$log" | head -n 1)
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { echo "error: the static server did not start:" >&2; cat "$log" >&2; exit 1; }
export SCREENSHOT_DIR="$REPO_DIR/target/screenshots"
rm -rf "$SCREENSHOT_DIR"; mkdir -p "$SCREENSHOT_DIR"
timed node "$WEB_DIR/e2e/run.js" "http://127.0.0.1:$port/"
echo "screenshots: $SCREENSHOT_DIR"
