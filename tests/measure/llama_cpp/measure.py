#!/usr/bin/env python3
"""Hold headroom to llama.cpp: GGUF tensor bytes per file type, and what a context allocates.

Two parts, per config (tests/data/hf-configs):

* **weights**: a full-depth F16 GGUF written as header only (make_gguf.py --sparse: the data is a
  hole), and ``llama-quantize --dry-run`` to every file type: llama.cpp's own choice of block type
  for every tensor, priced with ggml's block sizes. The same at the cut depth for the files that
  are really quantized (random weights), whose bytes are read back from the written GGUF header.
* **loads**: the cut-depth file (random weights), really quantized to Q8_0, loaded by load_ctx at
  several contexts, KV types, flash attention on/off, micro-batches and parallel sequences: the
  model / KV / compute / output buffer sizes llama.cpp logs.

usage: measure.py --work /tmp/lcp --out tests/data/measured/llama-cpp-<version>.json
                  --log tests/data/measured/llama-cpp-<version>.log [--only id,id]
Run build.sh first. About 10 minutes on two loaded cores.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))

# (case id, config file, decoder layers kept for the loads and the really quantized files).
# Layers are cut so the random-weight files stay small; gemma-3 keeps 6 layers so one global
# layer (every 6th) stands beside five sliding ones.
CASES = [
    ("qwen3-0.6b", "Qwen3-0.6B.json", 2),
    ("qwen2.5-0.5b", "Qwen2.5-0.5B.json", 2),
    ("llama-3.2-1b", "Llama-3.2-1B.json", 2),
    ("mistral-7b-v0.1", "Mistral-7B-v0.1.json", 1),
    ("gemma-3-1b", "gemma-3-1b-it.json", 6),
    ("phi-3-mini", "Phi-3-mini-4k-instruct.json", 1),
    ("gemma-2-9b", "gemma-2-9b.json", 2),
    ("qwen3-30b-a3b", "Qwen3-30B-A3B.json", 1),
]
# The largest cut files (over a billion parameters) are only quantized to the type they are
# loaded in, to keep the run short.
LARGE = {"gemma-2-9b", "qwen3-30b-a3b"}

# Every file type llama-quantize offers that headroom's core knows (core/src/gguf.rs,
# LlamaFileType), F16 being the source itself.
FTYPES = [
    "F32", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_1", "Q5_0", "Q4_K_M", "Q4_K_S",
    "Q4_1", "Q4_0", "IQ4_NL", "IQ4_XS", "MXFP4_MOE", "Q3_K_L", "Q3_K_M", "Q3_K_S", "IQ3_M",
    "IQ3_S", "IQ3_XS", "IQ3_XXS", "Q2_K", "Q2_K_S", "IQ2_M", "IQ2_S", "IQ2_XS", "IQ2_XXS",
    "TQ2_0", "IQ1_M", "TQ1_0", "IQ1_S",
]
# Really quantized at the cut depth (bytes read back from the header); Q8_0 is loaded.
REAL_FTYPES = ["Q8_0", "Q4_K_M", "Q4_0"]
LOAD_FTYPE = "Q8_0"

# (n_ctx, type_k, type_v, flash_attn, n_ubatch, n_seq_max, kv_unified)
LOADS = [
    (4096, "f16", "f16", 1, 512, 1, 1),
    (5000, "f16", "f16", 1, 512, 1, 1),
    (32768, "f16", "f16", 1, 512, 1, 1),
    (4096, "q8_0", "q8_0", 1, 512, 1, 1),
    (4096, "q4_0", "q4_0", 1, 512, 1, 1),
    (4096, "f16", "f16", 0, 512, 1, 1),
    (32768, "f16", "f16", 0, 512, 1, 1),
    (4096, "q8_0", "q8_0", 0, 512, 1, 1),
    (4096, "f16", "f16", 1, 2048, 1, 1),
    (4096, "f16", "f16", 0, 2048, 1, 1),
    (16384, "f16", "f16", 1, 512, 4, 1),
    (16384, "f16", "f16", 1, 512, 4, 0),
    (16384, "f16", "f16", 0, 512, 4, 0),
]

MIB = 1024 * 1024


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def ggml_sizes(gguf):
    """ggml type name (upper case) → (block elements, block bytes)."""
    return {t.name: v for t, v in gguf.GGML_QUANT_SIZES.items()}


# File types whose quantization needs an importance matrix (llama-quantize refuses them without
# one): their dry runs get a neutral one (every value 1.0), as core assumes an imatrix for them.
IMATRIX_FTYPES = {"IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ3_XXS", "Q2_K_S"}


def write_neutral_imatrix(gguf, model_path, out_path):
    """A legacy-format imatrix with 1.0 for every input column of every matrix (per expert for
    3-D expert tensors): it changes which types llama-quantize may pick, not the bytes."""
    import struct

    r = gguf.GGUFReader(model_path)
    entries = []
    for t in r.tensors:
        ne = [int(x) for x in t.shape]
        if len(ne) < 2:
            continue
        nval = ne[0] * (ne[2] if len(ne) > 2 else 1)
        entries.append((t.name, nval))
    with open(out_path, "wb") as f:
        f.write(struct.pack("<i", len(entries)))
        for name, nval in entries:
            b = name.encode()
            f.write(struct.pack("<i", len(b)))
            f.write(b)
            f.write(struct.pack("<ii", 1, nval))
            f.write(struct.pack(f"<{nval}f", *([1.0] * nval)))


def dry_run(quantize, src, ftype, sizes, imatrix=None):
    """Per-tensor target types of `llama-quantize --dry-run`, priced: {type: bytes}, n tensors."""
    extra = ["--imatrix", imatrix] if imatrix else []
    p = run([quantize, "--dry-run"] + extra + [src, ftype, "1"])
    text = p.stdout + p.stderr
    line_re = re.compile(
        r"\]\s+(\S+)\s+- \[([\d,\s]+)\], type =\s*(\w+), size =\s*[\d.]+ MiB(?: ->\s*[\d.]+ MiB \((\w+)\))?"
    )
    by_type = {}
    n = 0
    for m in line_re.finditer(text):
        ne = [int(x) for x in m.group(2).split(",")]
        t = (m.group(4) or m.group(3)).upper()
        blk, bts = sizes[t]
        rows = 1
        for d in ne[1:]:
            rows *= d
        b = rows * (ne[0] // blk) * bts
        by_type[t] = by_type.get(t, 0) + b
        n += 1
    if n == 0:
        raise RuntimeError(f"dry run {ftype} of {src} printed no tensors:\n{text[-2000:]}")
    needs_imatrix = "will require an imatrix" in text
    return by_type, n, needs_imatrix


def header_bytes(gguf, path):
    r = gguf.GGUFReader(path)
    by_type = {}
    for t in r.tensors:
        k = t.tensor_type.name
        by_type[k] = by_type.get(k, 0) + int(t.n_bytes)
    return by_type, len(r.tensors)


LOG_PATTERNS = {
    "model": re.compile(r"(\S+) model buffer size =\s*([\d.]+) MiB"),
    "kv": re.compile(r"(\S+) KV buffer size =\s*([\d.]+) MiB"),
    "compute": re.compile(r"(\S+) compute buffer size =\s*([\d.]+) MiB"),
    "output": re.compile(r"(\S+)\s+output buffer size =\s*([\d.]+) MiB"),
}
KV_SIZE_RE = re.compile(
    r"llama_kv_cache: size =\s*([\d.]+) MiB \(\s*(\d+) cells,\s*(\d+) layers,\s*(\d+)/\s*(\d+) seqs\)"
)


def parse_load(text):
    out = {k: {} for k in LOG_PATTERNS}
    for k, pat in LOG_PATTERNS.items():
        for m in pat.finditer(text):
            out[k][m.group(1)] = round(out[k].get(m.group(1), 0.0) + float(m.group(2)), 2)
    caches = [
        {"mib": float(m.group(1)), "cells": int(m.group(2)), "layers": int(m.group(3)),
         "seqs": int(m.group(4))}
        for m in KV_SIZE_RE.finditer(text)
    ]
    n_ctx = re.search(r"llama_context: n_ctx\s+= (\d+)", text)
    n_ctx_seq = re.search(r"llama_context: n_ctx_seq\s+= (\d+)", text)
    return {
        "model_buffers_mib": out["model"],
        "kv_buffers_mib": out["kv"],
        "compute_buffers_mib": out["compute"],
        "output_buffers_mib": out["output"],
        "kv_caches": caches,
        "n_ctx_logged": int(n_ctx.group(1)) if n_ctx else None,
        "n_ctx_seq": int(n_ctx_seq.group(1)) if n_ctx_seq else None,
    }


KEEP_LOG = re.compile(
    r"buffer size|llama_kv_cache|n_ctx|n_ubatch|flash_attn|kv_unified|n_seq_max|LOAD_CTX|"
    r"error|failed|SWA|swa|print_info: (arch|n_layer|n_embd|n_head|n_swa|n_vocab|file type)"
)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="/tmp/lcp")
    ap.add_argument("--configs", default=os.path.join(REPO, "tests", "data", "hf-configs"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--only", default="")
    ap.add_argument("--no-dry", action="store_true", help="skip the full-depth dry runs")
    a = ap.parse_args()

    src = os.path.join(a.work, "llama_cpp_python-0.3.36", "vendor", "llama.cpp")
    gguf_py = os.path.join(src, "gguf-py")
    sys.path.insert(0, gguf_py)
    import gguf  # the vendored gguf-py of the llama.cpp measured

    sizes = ggml_sizes(gguf)
    bindir = os.path.join(a.work, "build", "bin")
    quantize = os.path.join(bindir, "llama-quantize")
    loader = os.path.join(bindir, "load_ctx")
    ggufdir = os.path.join(a.work, "gguf")
    os.makedirs(ggufdir, exist_ok=True)
    commit = run(["git", "-C", src, "rev-parse", "HEAD"]).stdout.strip() or "unknown"
    only = set(x for x in a.only.split(",") if x)

    result = {
        "meta": {
            "llama_cpp_commit": commit,
            "source": "llama.cpp vendored in llama-cpp-python 0.3.36 (PyPI sdist)",
            "build": "CPU only: cmake -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=ON "
                     "-DGGML_OPENMP=OFF, Release (tests/measure/llama_cpp/build.sh)",
            "weights": "random F16 (normal, std 0.02) matrices, F32 norms/biases/routers; dummy "
                       "vocabulary of the config's size; full-depth files are header-only for "
                       "llama-quantize --dry-run",
            "loads": "load_ctx.c: llama_model_load_from_file (n_gpu_layers 0, mmap) + "
                     "llama_init_from_model with n_batch = max(2048, n_ubatch), swa_full off "
                     "(llama-server's default; the C API's is on), 1 thread",
            "units": "buffers in MiB as llama.cpp logs them (2 decimals); tensor bytes exact",
        },
        "cases": [],
    }
    log = open(a.log, "w")
    t0 = time.time()

    def save():
        with open(a.out, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")

    for cid, cfg_file, layers in CASES:
        if only and cid not in only:
            continue
        cfg_path = os.path.join(a.configs, cfg_file)
        full_cfg = json.load(open(cfg_path))
        case = {"id": cid, "config": cfg_file, "weights": [], "loads": []}
        result["cases"].append(case)
        # Full depth, dry runs.
        if not a.no_dry:
            full = os.path.join(ggufdir, f"{cid}-full-f16.gguf")
            p = run([sys.executable, os.path.join(HERE, "make_gguf.py"), cfg_path,
                     str(full_cfg["num_hidden_layers"]), full, "--gguf-py", gguf_py, "--sparse"])
            if p.returncode != 0:
                raise RuntimeError(p.stderr)
            by_type, n = header_bytes(gguf, full)
            case["weights"].append({"layers": full_cfg["num_hidden_layers"], "ftype": "F16",
                                    "method": "header", "tensors": n, "bytes_by_type": by_type})
            imatrix = full + ".imatrix.dat"
            write_neutral_imatrix(gguf, full, imatrix)
            for ft in FTYPES:
                try:
                    by_type, n, imx = dry_run(quantize, full, ft, sizes,
                                              imatrix if ft in IMATRIX_FTYPES else None)
                except RuntimeError as e:
                    log.write(f"# {cid} full dry-run {ft} failed: {e}\n")
                    continue
                case["weights"].append({"layers": full_cfg["num_hidden_layers"], "ftype": ft,
                                        "method": "dry-run", "tensors": n,
                                        "imatrix": ft in IMATRIX_FTYPES,
                                        "needs_imatrix": imx, "bytes_by_type": by_type})
            os.remove(full)
            os.remove(imatrix)
            print(f"[{time.time() - t0:6.0f}s] {cid}: full-depth dry runs done", flush=True)
            save()
        # Cut depth: random weights, really quantized, loaded.
        f16 = os.path.join(ggufdir, f"{cid}-l{layers}-f16.gguf")
        p = run([sys.executable, os.path.join(HERE, "make_gguf.py"), cfg_path, str(layers), f16,
                 "--gguf-py", gguf_py])
        if p.returncode != 0:
            raise RuntimeError(p.stderr)
        case["config_used"] = json.loads(p.stdout)
        case["layers"] = layers
        by_type, n = header_bytes(gguf, f16)
        case["weights"].append({"layers": layers, "ftype": "F16", "method": "header",
                                "tensors": n, "bytes_by_type": by_type})
        files = {"F16": f16}
        for ft in ([LOAD_FTYPE] if cid in LARGE else REAL_FTYPES):
            out = os.path.join(ggufdir, f"{cid}-l{layers}-{ft}.gguf")
            p = run(["nice", "-n", "10", quantize, f16, out, ft, "2"])
            if p.returncode != 0:
                log.write(f"# {cid} quantize {ft} failed:\n{p.stdout[-1500:]}{p.stderr[-1500:]}\n")
                continue
            by_type, n = header_bytes(gguf, out)
            dry, _, _ = dry_run(quantize, f16, ft, sizes)
            case["weights"].append({"layers": layers, "ftype": ft, "method": "header",
                                    "tensors": n, "bytes_by_type": by_type,
                                    "dry_run_matches": dry == by_type})
            files[ft] = out
        print(f"[{time.time() - t0:6.0f}s] {cid}: quantized {list(files)}", flush=True)
        save()
        loads = [(LOAD_FTYPE,) + l for l in LOADS] + [
            ("F16", 4096, "f16", "f16", 1, 512, 1, 1),
            ("Q4_0", 4096, "f16", "f16", 1, 512, 1, 1),
        ]
        for ft, n_ctx, tk, tv, fa, ub, ns, uni in loads:
            if ft not in files:
                continue
            cmd = [loader, files[ft], str(n_ctx), tk, tv, str(fa), str(ub), str(ns), str(uni)]
            p = run(cmd)
            text = p.stderr + p.stdout
            log.write(f"### {cid} {ft} n_ctx={n_ctx} type_k={tk} type_v={tv} fa={fa} "
                      f"n_ubatch={ub} n_seq={ns} kv_unified={uni} rc={p.returncode}\n")
            for line in text.splitlines():
                if KEEP_LOG.search(line):
                    log.write(line + "\n")
            rec = {"ftype": ft, "n_ctx": n_ctx, "type_k": tk, "type_v": tv,
                   "flash_attn": bool(fa), "n_ubatch": ub, "n_seq": ns,
                   "kv_unified": bool(uni), "ok": p.returncode == 0}
            rec.update(parse_load(text))
            if p.returncode != 0:
                errs = [l for l in text.splitlines() if "error" in l.lower() or "failed" in l]
                rec["error"] = errs[-3:]
            case["loads"].append(rec)
        print(f"[{time.time() - t0:6.0f}s] {cid}: {len(case['loads'])} loads", flush=True)
        save()
        for path in files.values():
            os.remove(path)
    log.close()
    save()


if __name__ == "__main__":
    main()
