#!/usr/bin/env python3
"""Write an F16 GGUF with random weights from a Hugging Face config.json.

The tensor names and shapes are the ones llama.cpp's loader asks for (``src/models/<arch>.cpp``,
``load_arch_tensors``): the file loads in llama.cpp and quantizes with ``llama-quantize`` like a
converted checkpoint. 1-D tensors (norms, biases) and MoE routers are F32, as
``convert_hf_to_gguf.py`` writes them; every matrix is F16. The vocabulary is a dummy one of the
config's real size (``tokenizer.ggml.model = none`` plus ``<arch>.vocab_size``): tokens do not
change memory, the vocabulary size does.

``--type q4_0`` / ``q8_0`` writes the matrices directly in that block format instead (random quants,
a fixed valid scale per block; ``output.weight`` in Q6_K, as ``llama-quantize`` writes it for these
file types), with no F16 file and no quantizer: for speed measurements, where values do not matter
and a 30B model's F16 file would not fit the disk.

Usage: make_gguf.py CONFIG.json LAYERS OUT.gguf [--gguf-py DIR] [--type f16|q4_0|q8_0]
Prints the config actually used (layers cut) as JSON on stdout.
"""

import argparse
import json
import sys

import numpy as np

ARCH_OF = {
    "LlamaForCausalLM": "llama",
    # convert_hf_to_gguf.py maps Mistral (v0.1) onto the llama architecture.
    "MistralForCausalLM": "llama",
    "Qwen2ForCausalLM": "qwen2",
    "Qwen3ForCausalLM": "qwen3",
    "Qwen3MoeForCausalLM": "qwen3moe",
    "Gemma2ForCausalLM": "gemma2",
    "Gemma3ForCausalLM": "gemma3",
    "Phi3ForCausalLM": "phi3",
}


def cut_config(cfg: dict, layers: int) -> dict:
    """The config with only the first `layers` decoder layers (per-layer lists cut too)."""
    c = dict(cfg)
    c["num_hidden_layers"] = layers
    if isinstance(c.get("layer_types"), list):
        c["layer_types"] = c["layer_types"][:layers]
    if isinstance(c.get("mlp_only_layers"), list):
        c["mlp_only_layers"] = [i for i in c["mlp_only_layers"] if i < layers]
    return c


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("layers", type=int)
    ap.add_argument("out")
    ap.add_argument("--gguf-py", required=True)
    ap.add_argument("--sparse", action="store_true", help="header only, zero data (a hole)")
    ap.add_argument("--type", default="f16", choices=["f16", "q4_0", "q8_0"])
    a = ap.parse_args()
    sys.path.insert(0, a.gguf_py)
    import gguf  # noqa: E402  (the vendored gguf-py of the llama.cpp being measured)

    cfg = cut_config(json.load(open(a.config)), a.layers)
    hf_arch = cfg["architectures"][0]
    arch = ARCH_OF[hf_arch]
    n_embd = cfg["hidden_size"]
    n_head = cfg["num_attention_heads"]
    n_kv = cfg.get("num_key_value_heads") or n_head
    head_dim = cfg.get("head_dim") or n_embd // n_head
    n_ff = cfg["intermediate_size"]
    n_vocab = cfg["vocab_size"]
    n_layer = cfg["num_hidden_layers"]
    tied = cfg.get("tie_word_embeddings", arch in ("gemma2", "gemma3"))
    if arch in ("gemma2", "gemma3"):
        tied = True

    w = gguf.GGUFWriter(a.out, arch)
    w.add_context_length(cfg.get("max_position_embeddings", 4096))
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(float(cfg.get("rope_theta", 10000.0)))
    w.add_layer_norm_rms_eps(float(cfg.get("rms_norm_eps", 1e-6)))
    w.add_vocab_size(n_vocab)
    # llama_ftype: MOSTLY_F16 = 1, MOSTLY_Q4_0 = 2, MOSTLY_Q8_0 = 7.
    w.add_file_type({"f16": 1, "q4_0": 2, "q8_0": 7}[a.type])
    w.add_tokenizer_model("none")
    if arch in ("gemma2", "gemma3") and cfg.get("sliding_window"):
        w.add_sliding_window(cfg["sliding_window"])
    if arch == "gemma2":
        if cfg.get("attn_logit_softcapping"):
            w.add_attn_logit_softcapping(float(cfg["attn_logit_softcapping"]))
        if cfg.get("final_logit_softcapping"):
            w.add_final_logit_softcapping(float(cfg["final_logit_softcapping"]))
    if arch == "qwen3moe":
        w.add_expert_count(cfg["num_experts"])
        w.add_expert_used_count(cfg["num_experts_per_tok"])
        w.add_expert_feed_forward_length(cfg["moe_intermediate_size"])

    # (name, ggml ne, is_matrix): matrices are F16, everything else F32.
    specs: list[tuple[str, tuple[int, ...], bool]] = []

    def mat(name: str, *ne: int) -> None:
        specs.append((name, ne, True))

    def vec(name: str, n: int) -> None:
        specs.append((name, (n,), False))

    q = n_head * head_dim
    kv = n_kv * head_dim
    mat("token_embd.weight", n_embd, n_vocab)
    vec("output_norm.weight", n_embd)
    if not tied:
        mat("output.weight", n_embd, n_vocab)
    for i in range(n_layer):
        b = f"blk.{i}."
        vec(b + "attn_norm.weight", n_embd)
        if arch == "phi3":
            mat(b + "attn_qkv.weight", n_embd, q + 2 * kv)
        else:
            mat(b + "attn_q.weight", n_embd, q)
            mat(b + "attn_k.weight", n_embd, kv)
            mat(b + "attn_v.weight", n_embd, kv)
        if arch == "qwen2":
            vec(b + "attn_q.bias", q)
            vec(b + "attn_k.bias", kv)
            vec(b + "attn_v.bias", kv)
        if arch in ("qwen3", "qwen3moe", "gemma3"):
            vec(b + "attn_q_norm.weight", head_dim)
            vec(b + "attn_k_norm.weight", head_dim)
        mat(b + "attn_output.weight", q, n_embd)
        if arch in ("gemma2", "gemma3"):
            vec(b + "post_attention_norm.weight", n_embd)
            vec(b + "post_ffw_norm.weight", n_embd)
        vec(b + "ffn_norm.weight", n_embd)
        if arch == "qwen3moe":
            n_exp = cfg["num_experts"]
            n_ff_exp = cfg["moe_intermediate_size"]
            # The router stays F32 (llama.cpp never quantizes ffn_gate_inp).
            specs.append((b + "ffn_gate_inp.weight", (n_embd, n_exp), False))
            mat(b + "ffn_gate_exps.weight", n_embd, n_ff_exp, n_exp)
            mat(b + "ffn_up_exps.weight", n_embd, n_ff_exp, n_exp)
            mat(b + "ffn_down_exps.weight", n_ff_exp, n_embd, n_exp)
        elif arch == "phi3":
            mat(b + "ffn_up.weight", n_embd, 2 * n_ff)
            mat(b + "ffn_down.weight", n_ff, n_embd)
        else:
            mat(b + "ffn_gate.weight", n_embd, n_ff)
            mat(b + "ffn_up.weight", n_embd, n_ff)
            mat(b + "ffn_down.weight", n_ff, n_embd)

    if a.sparse:
        # Header only, data left as a hole: llama-quantize --dry-run and a mmap'd load read the
        # header and shapes, never the (zero) weights, so a full-depth model costs no disk.
        for name, ne, is_mat in specs:
            dt = np.float16 if is_mat else np.float32
            shape = tuple(reversed(ne))
            w.add_tensor_info(name, shape, np.dtype(dt), int(np.prod(ne)) * np.dtype(dt).itemsize)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        w.close()
        align = 32
        with open(a.out, "r+b") as f:
            f.seek(0, 2)
            size = f.tell()
            size += (-size) % align
            for name, ne, is_mat in specs:
                n = int(np.prod(ne)) * (2 if is_mat else 4)
                size += n + (-n) % align
            f.truncate(size)
        json.dump(cfg, sys.stdout)
        return

    rng = np.random.default_rng(0)
    if a.type != "f16":
        write_blocks(w, gguf, specs, a.type, rng)
        json.dump(cfg, sys.stdout)
        return
    for name, ne, is_mat in specs:
        shape = tuple(reversed(ne))
        if is_mat:
            # ggml's ne[0] is the innermost (row) dimension: numpy's shape is reversed.
            arr = (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float16)
        elif name.endswith("ffn_gate_inp.weight"):
            arr = (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32)
        else:
            arr = np.ones(shape, dtype=np.float32)
        w.add_tensor(name, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    json.dump(cfg, sys.stdout)


# (elements per block, bytes per block, byte offset of the f16 scale `d`, scale) of ggml's blocks:
# block_q4_0 {d; qs[16]}, block_q8_0 {d; qs[32]}, block_q6_K {ql[128]; qh[64]; scales[16]; d}.
BLOCKS = {
    "q4_0": (32, 18, 0, 0.01),
    "q8_0": (32, 34, 0, 0.0005),
    "q6_k": (256, 210, 208, 0.0001),
}


def block_pool(kind: str, rng, n_blocks: int = 1 << 20) -> np.ndarray:
    """`n_blocks` random blocks of `kind` (uint8, one row per block) with a fixed, finite scale."""
    _, nbytes, d_at, d = BLOCKS[kind]
    pool = rng.integers(0, 256, size=(n_blocks, nbytes), dtype=np.uint8)
    pool[:, d_at : d_at + 2] = np.frombuffer(np.float16(d).tobytes(), dtype=np.uint8)
    return pool


def write_blocks(w, gguf, specs, kind: str, rng) -> None:
    """Writes every tensor, matrices as random `kind` blocks (output.weight as Q6_K), streaming."""
    pools = {k: block_pool(k, rng) for k in (kind, "q6_k")}
    qtype = {"q4_0": gguf.GGMLQuantizationType.Q4_0, "q8_0": gguf.GGMLQuantizationType.Q8_0,
             "q6_k": gguf.GGMLQuantizationType.Q6_K}
    arrays = []
    for name, ne, is_mat in specs:
        shape = tuple(reversed(ne))
        if not is_mat:
            arr = np.ones(shape, dtype=np.float32)
            if name.endswith("ffn_gate_inp.weight"):
                arr = (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32)
            w.add_tensor(name, arr)
            arrays.append(None)
            continue
        k = "q6_k" if name == "output.weight" else kind
        per, nbytes, _, _ = BLOCKS[k]
        if ne[0] % per:
            raise SystemExit(f"{name}: row of {ne[0]} is not a whole number of {k} blocks")
        n_blocks = int(np.prod(ne)) // per
        data = np.resize(pools[k], (n_blocks, nbytes))
        w.add_tensor(name, data.reshape(*shape[:-1], ne[0] // per * nbytes), raw_dtype=qtype[k])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
