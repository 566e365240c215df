#!/usr/bin/env bash
# Build the site for release into web/dist (any static host can serve it) and check the budget:
# the gzip-compressed wasm must be at most 1 MB (10^6 bytes).
set -euo pipefail
source "$(dirname "$0")/env.sh"
GZIP_WASM_BUDGET_BYTES=1000000

cd "$WEB_DIR"
# --offline: trunk must use the wasm-bindgen and wasm-opt on PATH, never download them.
timed trunk build --release --offline
wasm=$(ls dist/*_bg.wasm)
raw=$(stat -c %s "$wasm")
gz=$(gzip -9 -c "$wasm" | wc -c)
echo "wasm size: $raw bytes raw, $gz bytes gzip -9 (budget $GZIP_WASM_BUDGET_BYTES)"
if [ "$gz" -gt "$GZIP_WASM_BUDGET_BYTES" ]; then
  echo "FAIL: gzip wasm $gz bytes is over the $GZIP_WASM_BUDGET_BYTES-byte budget" >&2
  exit 1
fi
echo "wasm budget OK"
# Pre-compressed copies beside each asset for static hosts that serve them (nginx gzip_static and
# brotli_static, Caddy's precompressed, ...): .gz with gzip -9, .br at quality 11 with Node's
# built-in zlib (Node is already here for the end-to-end tests).
for f in dist/*.wasm dist/*.js dist/*.css dist/*.html; do
  [ -f "$f" ] || continue
  gzip -9 -k -f "$f"
done
node -e '
  const fs = require("fs"), zlib = require("zlib");
  for (const f of process.argv.slice(1)) {
    fs.writeFileSync(f + ".br", zlib.brotliCompressSync(fs.readFileSync(f),
      { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11 } }));
  }' $(ls dist/*.wasm dist/*.js dist/*.css dist/*.html 2>/dev/null)
echo "pre-compressed: $(ls dist/*.gz | wc -l) .gz, $(ls dist/*.br | wc -l) .br; wasm brotli $(stat -c %s dist/*_bg.wasm.br) bytes"
