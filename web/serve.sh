#!/usr/bin/env bash
# One command: install the tools if missing, build the site for release, serve it locally.
#   web/serve.sh [PORT]     (default 8080) then open http://127.0.0.1:PORT/
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/ci/install-tools.sh"
"$here/ci/build.sh"
port=${1:-8080}
echo "serving $here/dist on http://127.0.0.1:$port/ (Ctrl-C to stop)"
exec python3 -m http.server "$port" --bind 127.0.0.1 --directory "$here/dist"
