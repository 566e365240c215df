#!/usr/bin/env bash
# Fetch the llama.cpp that llama-cpp-python 0.3.36 vendors and build, on the CPU, what the
# measurement needs: libllama, llama-quantize and load_ctx (load_ctx.c, beside this script).
#
# usage: build.sh [WORK_DIR]   (default /tmp/lcp; nothing is written into the repository)
# Needs curl, a C/C++ compiler, cmake (apt-get install cmake, or pip install cmake).
set -euo pipefail

WORK="${1:-/tmp/lcp}"
HERE="$(cd "$(dirname "$0")" && pwd)"
SDIST_URL="https://pypi.org/packages/ec/e9/e7de2b0463ea3ffbf0ede6cb21b58c1258a8f6521aae45ca773a59fe7cf3/llama_cpp_python-0.3.36.tar.gz"
JOBS="${JOBS:-2}"

mkdir -p "$WORK"
cd "$WORK"
if [ ! -f lcp.tar.gz ]; then
    # `pip download` of this sdist hangs building its metadata: fetch the file itself.
    curl -fL --retry 3 -o lcp.tar.gz.part "$SDIST_URL"
    mv lcp.tar.gz.part lcp.tar.gz
fi
if [ ! -d llama_cpp_python-0.3.36 ]; then
    tar xzf lcp.tar.gz
fi
SRC="$WORK/llama_cpp_python-0.3.36/vendor/llama.cpp"

mkdir -p build
cd build
if [ ! -f CMakeCache.txt ]; then
    # A portable CPU build (no -march=native), no curl, no server, no tests: only the library and
    # the quantizer.
    cmake "$SRC" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
        -DBUILD_SHARED_LIBS=ON -DGGML_OPENMP=OFF
fi
nice -n 10 cmake --build . --target llama-quantize -j"$JOBS"

# The loader links the shared libllama just built.
nice -n 10 cc -O2 -o "$WORK/build/bin/load_ctx" "$HERE/load_ctx.c" \
    -I"$SRC/include" -I"$SRC/ggml/include" -L"$WORK/build/bin" -lllama -lggml -lggml-base \
    -Wl,-rpath,"$WORK/build/bin"
echo "built: $WORK/build/bin/llama-quantize $WORK/build/bin/load_ctx"
