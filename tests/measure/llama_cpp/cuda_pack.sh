#!/usr/bin/env bash
# Copy what a CUDA build of llama-bench needs out of the llama.cpp that build.sh fetched into DEST
# (default .lcp-cuda in the repository root, which .git/info/exclude should ignore), small enough
# to travel to the GPU machine: the library, ggml with only its CPU and CUDA backends, common,
# vendor, llama-bench alone among the tools, and gguf-py for make_gguf.py.
#
# usage: cuda_pack.sh [WORK_DIR] [DEST]   (WORK_DIR as for build.sh, default /tmp/lcp)
set -euo pipefail
WORK="${1:-/tmp/lcp}"
HERE="$(cd "$(dirname "$0")" && pwd)"
DEST="${2:-$HERE/../../../.lcp-cuda}"
SRC="$WORK/llama_cpp_python-0.3.36/vendor/llama.cpp"
[ -d "$SRC" ] || { echo "no llama.cpp source at $SRC: run build.sh first" >&2; exit 2; }
rm -rf "$DEST"
mkdir -p "$DEST/src/tools" "$DEST/src/ggml/src"
cp -r "$SRC"/{CMakeLists.txt,cmake,include,src,common,vendor,licenses,LICENSE} "$DEST/src/" 2>/dev/null || true
cp -r "$SRC/gguf-py" "$DEST/gguf-py"
cp -r "$SRC"/ggml/{CMakeLists.txt,cmake,include,.gitignore} "$DEST/src/ggml/" 2>/dev/null || true
for f in "$SRC"/ggml/src/*; do
    case "$(basename "$f")" in
        ggml-*) [ -d "$f" ] || cp "$f" "$DEST/src/ggml/src/" ;;
        *) cp -r "$f" "$DEST/src/ggml/src/" ;;
    esac
done
cp -r "$SRC"/ggml/src/{ggml-cpu,ggml-cuda} "$DEST/src/ggml/src/"
cp -r "$SRC/tools/llama-bench" "$DEST/src/tools/"
printf 'llama_add_compile_flags()\nadd_subdirectory(llama-bench)\n' > "$DEST/src/tools/CMakeLists.txt"
du -sh "$DEST"
