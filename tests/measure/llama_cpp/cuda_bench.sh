#!/usr/bin/env bash
# On a CUDA machine: build llama-bench (the llama.cpp that cuda_pack.sh copied, CUDA for sm_90),
# write random-weight Q4_0 GGUFs of real configs (make_gguf.py --type q4_0, full depth), run the
# headroom probe's bandwidth stages, then llama-bench with every layer on the GPU, with fewer layers
# on it (-ngl) and with MoE experts in system RAM (--n-cpu-moe). Results go to OUT as they come
# (bench.jsonl: llama-bench's own JSON lines; report.json: the probe's report; machine.txt).
# Steps already done (build, files) are skipped, so a second run on the same machine resumes.
#
# usage: cuda_bench.sh PACK OUT [HEADROOM_BINARY] [CONFIG_DIR]
#   PACK: the folder cuda_pack.sh wrote; CONFIG_DIR holds Llama-3.1-8B.json and Qwen3-30B-A3B.json.
# Env: DEADLINE_S (default 570): no new benchmark starts after this many seconds; FA (default OFF):
# compile llama.cpp's flash-attention kernels (ON adds minutes to the build).
set -uo pipefail
PACK="$(cd "$1" && pwd)"; OUT="$2"; HEADROOM="${3:-}"; CONFIGS="${4:-$(dirname "$0")/../../data/hf-configs}"
HERE="$(cd "$(dirname "$0")" && pwd)"
W=/tmp/lcb; mkdir -p "$W" "$OUT"
DEADLINE_S="${DEADLINE_S:-570}"; FA="${FA:-OFF}"; T0=$SECONDS
export PATH=/usr/local/cuda/bin:$PATH
log() { printf '[%4ds] %s\n' "$((SECONDS - T0))" "$*" | tee -a "$OUT/run.log"; }

{ nvidia-smi -L; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv
  nproc; lscpu | grep -E 'Model name|Socket|Core|Thread'; free -g; nvcc --version | tail -2; } > "$OUT/machine.txt" 2>&1

# 1. The probe first, on a quiet machine (the build would disturb the host bandwidth reading).
if [ -n "$HEADROOM" ] && [ ! -s "$OUT/report.json" ]; then
    log "probe: bandwidth, decode, host_bandwidth, transfer"
    "$HEADROOM" probe --quick --only bandwidth,decode,host_bandwidth,transfer --out "$OUT/report.json" > "$OUT/probe.log" 2>&1 \
        || log "probe failed: $(tail -3 "$OUT/probe.log")"
fi

# 2. Build llama-bench in the background.
BENCH="$W/build/bin/llama-bench"
if [ ! -x "$BENCH" ]; then
    log "build: configure + llama-bench (CUDA sm_90, FA=$FA)"
    ( cmake -S "$PACK/src" -B "$W/build" -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON \
        -DCMAKE_CUDA_ARCHITECTURES=90 -DGGML_CUDA_FA="$FA" -DGGML_CUDA_NCCL=OFF -DGGML_NATIVE=ON \
        -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
        -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF > "$W/cmake.log" 2>&1 \
      && cmake --build "$W/build" --target llama-bench -j"$(nproc)" > "$W/build.log" 2>&1 ) &
    BUILD_PID=$!
fi

# 3. The model files, meanwhile.
gguf() {  # gguf NAME CONFIG LAYERS
    local f="$W/$1.gguf"
    if [ ! -s "$f" ]; then
        log "gguf: $1"
        python3 "$HERE/make_gguf.py" "$CONFIGS/$2" "$3" "$f.part" --gguf-py "$PACK/gguf-py" --type q4_0 > /dev/null \
            && mv "$f.part" "$f" || log "gguf $1 failed"
    fi
}
gguf llama-3.1-8b-q4_0 Llama-3.1-8B.json 32
gguf qwen3-30b-a3b-q4_0 Qwen3-30B-A3B.json 48
ls -la "$W"/*.gguf >> "$OUT/machine.txt" 2>&1

if [ -n "${BUILD_PID:-}" ]; then
    wait "$BUILD_PID" || true
    log "build done: $(tail -1 "$W/build.log")"
    tail -30 "$W/build.log" > "$OUT/build-tail.log"; cp "$W/cmake.log" "$OUT/" 2>/dev/null
fi
[ -x "$BENCH" ] || { log "no llama-bench: see build-tail.log"; exit 1; }

# 4. Benchmarks, most important first; each appends llama-bench's JSON lines.
bench() {  # bench LABEL ARGS...
    local left=$((DEADLINE_S - (SECONDS - T0)))
    if [ "$left" -lt 20 ]; then log "skipped (deadline): $1"; return; fi
    log "bench $1: ${*:2}"
    timeout "$left" "$BENCH" "${@:2}" -fa 0 -o jsonl >> "$OUT/bench.jsonl" 2>> "$W/bench.err" \
        || log "bench $1 failed or cut: $(tail -2 "$W/bench.err")"
}
L8="$W/llama-3.1-8b-q4_0.gguf"; Q30="$W/qwen3-30b-a3b-q4_0.gguf"
bench l8-full     -m "$L8"  -ngl 99 -p 512 -n 128 -r 2
bench q30-full    -m "$Q30" -ngl 99 -p 512 -n 128 -r 2
bench q30-cpumoe  -m "$Q30" -ngl 99 -ncmoe 48,24 -p 0 -n 64 -r 2
bench l8-partial  -m "$L8"  -ngl 24,16 -p 0 -n 64 -r 2
bench l8-cpu      -m "$L8"  -ngl 0 -p 0 -n 32 -r 2
bench q30-cpumoe2 -m "$Q30" -ngl 99 -ncmoe 36,12 -p 0 -n 64 -r 2
bench q30-partial -m "$Q30" -ngl 24 -p 0 -n 64 -r 2
bench pp-offload  -m "$L8"  -ngl 16 -p 512 -n 0 -r 2
tail -40 "$W/bench.err" > "$OUT/bench-err-tail.log"
log "done"
