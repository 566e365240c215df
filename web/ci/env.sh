# Sourced by the web/ci scripts: paths and pinned tool versions, in one place.
# shellcheck shell=bash
WEB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO_DIR=$(cd "$WEB_DIR/.." && pwd)
TRUNK_VERSION=0.21.14            # every 0.22.x needs rustc >= 1.96.1
# wasm-bindgen-cli must equal the wasm-bindgen crate in Cargo.lock exactly.
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' "$REPO_DIR/Cargo.lock")
# Cargo-installed tools first, then npm's binaryen 132 (wasm-opt) ahead of any Debian binaryen
# (Debian's wasm-opt 108 produces a wasm that crashes at load).
export PATH="$WEB_DIR/e2e/node_modules/.bin:${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
export CHROMEDRIVER=${CHROMEDRIVER:-/usr/bin/chromedriver}
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
timed() { local s=$SECONDS; "$@"; echo "  [time] $*: $((SECONDS - s)) s" >&2; }
