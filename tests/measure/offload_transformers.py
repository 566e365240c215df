"""Decode speed of a transformers model offloaded with accelerate's device_map (weights beyond
`--gpu-gib` stay in host memory and are copied to the GPU on every forward pass), to hold
headroom's transformers offload estimate to. Random bf16 weights from a config.json; prints one
JSON object with the split accelerate chose, the bytes on each side and the decode tokens/s.

    python3 tests/measure/offload_transformers.py --config tests/data/hf-configs/Llama-3.1-8B.json \
        --gpu-gib 8 --out offload.json
"""
import argparse
import json
import time

import torch
from accelerate import dispatch_model, infer_auto_device_map
from transformers import AutoConfig, AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--gpu-gib", type=float, default=8.0)
    ap.add_argument("--prompt", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--out")
    a = ap.parse_args()
    started = time.perf_counter()

    def say(what):
        print(f"[{time.perf_counter() - started:6.1f} s] {what}", flush=True)

    cfg = AutoConfig.from_pretrained(a.config)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02)
        for b in model.buffers():
            if b.is_floating_point():
                b.zero_()
    model.eval()
    say("built on the CPU")
    # Rotary frequencies are buffers computed at build time: build them again on the CPU.
    for m in model.modules():
        if hasattr(m, "rope_init_fn") and hasattr(m, "inv_freq"):
            inv_freq, scale = m.rope_init_fn(m.config, "cpu")
            m.inv_freq = inv_freq
            m.attention_scaling = scale
    max_memory = {0: f"{a.gpu_gib}GiB", "cpu": "200GiB"}
    no_split = getattr(model, "_no_split_modules", None) or []
    device_map = infer_auto_device_map(model, max_memory=max_memory, no_split_module_classes=no_split)
    model = dispatch_model(model, device_map=device_map)
    say("dispatched")
    sizes = {"gpu": 0, "cpu": 0}
    for name, p in model.named_parameters():
        dev = "gpu" if p.device.type == "cuda" else "cpu"
        sizes[dev] += p.numel() * p.element_size()
    layers_gpu = sum(1 for k, v in device_map.items() if ".layers." in k and v == 0)
    layers_cpu = sum(1 for k, v in device_map.items() if ".layers." in k and v == "cpu")
    ids = torch.randint(0, cfg.vocab_size, (1, a.prompt), device="cuda")
    with torch.no_grad():
        model.generate(ids, max_new_tokens=2, min_new_tokens=2, do_sample=False)
        torch.cuda.synchronize()
        say("warmed up")
        t0 = time.perf_counter()
        model.generate(ids, max_new_tokens=1, min_new_tokens=1, do_sample=False)
        torch.cuda.synchronize()
        prefill_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        model.generate(ids, max_new_tokens=a.new_tokens, min_new_tokens=a.new_tokens, do_sample=False)
        torch.cuda.synchronize()
        total_s = time.perf_counter() - t0
    decode_s = (total_s - prefill_s) / max(a.new_tokens - 1, 1)
    out = {
        "config": a.config,
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0),
        "gpu_gib": a.gpu_gib,
        "decoder_layers_gpu": layers_gpu,
        "decoder_layers_cpu": layers_cpu,
        "gpu_param_bytes": sizes["gpu"],
        "cpu_param_bytes": sizes["cpu"],
        "prompt_tokens": a.prompt,
        "new_tokens": a.new_tokens,
        "prefill_s": prefill_s,
        "decode_tokens_per_s": 1.0 / decode_s,
    }
    text = json.dumps(out, indent=1)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
