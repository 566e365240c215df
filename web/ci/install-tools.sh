#!/usr/bin/env bash
# Install what building and testing the site needs, skipping whatever is already there at the
# right version. Idempotent; never downloads a browser or a prebuilt binary (trunk runs --offline).
#   apt: chromium, chromium-driver, nodejs, npm     rustup: wasm32-unknown-unknown
#   cargo: trunk 0.21.14, wasm-bindgen-cli = the wasm-bindgen version in Cargo.lock
#   npm (web/e2e, from package-lock.json): playwright-core, binaryen 132 (wasm-opt)
set -euo pipefail
source "$(dirname "$0")/env.sh"

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
command -v python3 >/dev/null || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== apt: ${missing[*]}"
  # Not 'binaryen': Debian's wasm-opt 108 breaks the site (see TOOLCHAIN.md).
  timed $SUDO apt-get update -qq
  timed $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "chromium: $(chromium --version 2>/dev/null)"; echo "chromedriver: $(chromedriver --version)"

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  echo "== rustup target add wasm32-unknown-unknown"
  timed rustup target add wasm32-unknown-unknown
fi

# trunk's and wasm-bindgen's own release profiles (trunk: fat LTO, one codegen unit) make most of
# a fresh machine's install time; these tools only orchestrate the build, so build them quickly
# instead (config overrides a package's own profile).
fast_tool_build=(env CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=256
  CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_DEBUG=false
  CARGO_PROFILE_RELEASE_INCREMENTAL=false)

if [ "$(trunk --version 2>/dev/null)" != "trunk $TRUNK_VERSION" ]; then
  echo "== cargo install trunk $TRUNK_VERSION"
  timed "${fast_tool_build[@]}" cargo install --locked --force "trunk@$TRUNK_VERSION"
fi
echo "$(trunk --version)"

if [ -z "$WASM_BINDGEN_VERSION" ]; then
  echo "error: no wasm-bindgen in Cargo.lock" >&2; exit 1
fi
if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $WASM_BINDGEN_VERSION" ]; then
  echo "== cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION"
  # No --locked: the CLI's own lock file pins a webpki-roots version this registry lacks.
  timed "${fast_tool_build[@]}" cargo install --force "wasm-bindgen-cli@$WASM_BINDGEN_VERSION"
fi
echo "$(wasm-bindgen --version)"

cd "$WEB_DIR/e2e"
want_pw=$(node -p 'require("./package-lock.json").packages["node_modules/playwright-core"].version')
want_bn=$(node -p 'require("./package-lock.json").packages["node_modules/binaryen"].version')
have_pw=$(node -p 'try { require("./node_modules/playwright-core/package.json").version } catch { "" }')
have_bn=$(node -p 'try { require("./node_modules/binaryen/package.json").version } catch { "" }')
if [ "$have_pw" != "$want_pw" ] || [ "$have_bn" != "$want_bn" ]; then
  echo "== npm ci (playwright-core $want_pw, binaryen $want_bn)"
  timed npm ci --no-audit --no-fund
fi
echo "playwright-core $want_pw, $(wasm-opt --version)"
echo "== site tools ready"
