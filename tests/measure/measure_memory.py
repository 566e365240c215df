#!/usr/bin/env python3
"""Measure real GPU memory use of Hugging Face transformers models (PyTorch, CUDA).

For each case (an architecture from tests/data/measured/configs or the hf-config fixtures, full size
or with fewer layers) this builds the model from its config with random weights in bf16 directly on
the GPU and records, with versions, device, driver and date:

* parameters and weight bytes (torch.cuda.memory_allocated after the build);
* for several (batch, context) pairs: KV-cache bytes after a prefill (the cache tensors' nbytes and
  the bytes of the storages behind them), the prefill peak over the weights, and the generation
  peak (greedy, fixed number of new tokens), each with logits for the last position only
  (logits_to_keep=1) and for every position (logits_to_keep=0);
* training peaks for AdamW steps (bf16 weights; optionally fp32 weights + bf16 autocast), with and
  without gradient checkpointing, and for LoRA through peft.

Every measurement is wrapped in try/except (an out-of-memory is recorded as such), the caching
allocator is emptied between measurements, and the results JSON is rewritten after each one, so a
run cut short keeps what it measured. See tests/measure/README.md.
"""

import argparse
import copy
import datetime
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback

import torch

import transformers
from transformers import AutoConfig, AutoModelForCausalLM

try:
    import peft
except Exception:  # noqa: BLE001 - recorded, LoRA cases are then skipped loudly
    peft = None

DEV = "cuda"

# ----------------------------------------------------------------------------------------------
# The cases. `layers`: None = full size; otherwise num_hidden_layers is set to this value (and a
# `layer_types` list is cut to it) -- the exact config used is stored in the results.
# `train_layers`: layer count for the training cases (None = same model as inference; 0 = no
# training cases).
# ----------------------------------------------------------------------------------------------
CASES = [
    dict(id="llama-3.2-1b", fixture="Llama-3.2-1B.json", layers=None, train_layers=None,
         attn="sdpa", train_mixed=True, eager_variant=True),
    dict(id="qwen2.5-0.5b", fixture="Qwen2.5-0.5B.json", layers=None, train_layers=None,
         attn="sdpa", train_mixed=True),
    dict(id="gemma-3-1b", fixture="gemma-3-1b-it.json", layers=None, train_layers=None, attn="sdpa"),
    dict(id="llama-3.1-8b", fixture="Llama-3.1-8B.json", layers=None, train_layers=8, attn="sdpa"),
    dict(id="mistral-7b", fixture="Mistral-7B-v0.1.json", layers=None, train_layers=0, attn="sdpa"),
    dict(id="gemma-2-9b", fixture="gemma-2-9b.json", layers=None, train_layers=8, attn="sdpa"),
    dict(id="llama-2-7b", fixture="Llama-2-7b-hf.json", layers=None, train_layers=0, attn="sdpa"),
    dict(id="qwen3-30b-a3b-l8", fixture="Qwen3-30B-A3B.json", layers=8, train_layers=4, attn="sdpa"),
    dict(id="mixtral-8x7b-l4", fixture="Mixtral-8x7B-v0.1.json", layers=4, train_layers=2, attn="sdpa"),
    dict(id="deepseek-v2-lite-l8", fixture="DeepSeek-V2-Lite.json", layers=8, train_layers=4,
         attn="sdpa"),
    # gpt-oss declares no SDPA support in transformers (attention sinks): eager is what runs.
    dict(id="gpt-oss-20b-l8", fixture="gpt-oss-20b.json", layers=8, train_layers=0, attn="eager"),
    dict(id="phi-3-mini", fixture="Phi-3-mini-4k-instruct.json", layers=None, train_layers=0,
         attn="sdpa"),
    # MLA in transformers: prefill decompresses every head's keys and values (kv_b_proj) for the
    # whole prompt. 4 layers: 3 dense + 1 MoE, as the full model's first layers.
    dict(id="deepseek-v3-l4", fixture="DeepSeek-V3.json", layers=4, train_layers=0, attn="sdpa",
         pairs=[(1, 4096), (1, 16384)]),
]

# Setups as people run them (--setups): QLoRA through peft's kbit preparation, bitsandbytes
# 8-bit and paged AdamW on a full bf16 fine-tune.
SETUP_CASES = dict(
    qlora=dict(id="llama-3.2-3b-qlora", fixture="Llama-3.2-3B.json", batch=2, seq=2048),
    optim=dict(id="llama-3.2-1b-optim", fixture="Llama-3.2-1B.json", batch=2, seq=1024),
)

PAIRS = [(1, 2048), (4, 2048), (1, 8192)]
NEW_TOKENS = 32
TRAIN_BATCH = 2
TRAIN_SEQ = 1024
LORA_RANK = 16
LORA_ALPHA = 32
LORA_TARGET_NAMES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
                     "qkv_proj", "gate_up_proj"]

T0 = time.time()


def log(*a):
    print(f"[{time.time() - T0:7.1f}s]", *a, flush=True)


# ----------------------------------------------------------------------------------------------
# memory helpers
# ----------------------------------------------------------------------------------------------
def cuda_ok():
    return torch.cuda.is_available()


def sync():
    if cuda_ok():
        torch.cuda.synchronize()


def allocated():
    return torch.cuda.memory_allocated() if cuda_ok() else 0


def max_allocated():
    return torch.cuda.max_memory_allocated() if cuda_ok() else 0


def reserved():
    return torch.cuda.memory_reserved() if cuda_ok() else 0


def reset_peak():
    if cuda_ok():
        torch.cuda.reset_peak_memory_stats()


def clean():
    gc.collect()
    if cuda_ok():
        torch.cuda.empty_cache()


def device_used_bytes():
    """Device memory in use by everything (this process's context + allocator), via cudaMemGetInfo."""
    if not cuda_ok():
        return 0
    free, total = torch.cuda.mem_get_info()
    return total - free


def nvidia_smi():
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,memory.used",
             "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=20).stdout
        name, driver, total, used = [x.strip() for x in out.strip().splitlines()[0].split(",")]
        return dict(name=name, driver=driver, total_mib=int(total), used_mib=int(used))
    except Exception as e:  # noqa: BLE001
        return dict(error=repr(e))


def runtime_snapshot():
    """allocated / reserved / device-used: device-used minus reserved is the CUDA context,
    cuBLAS/cuDNN handles and loaded kernels (memory outside PyTorch's caching allocator)."""
    used = device_used_bytes()
    res = reserved()
    smi = nvidia_smi()
    return dict(allocated_bytes=allocated(), reserved_bytes=res, device_used_bytes=used,
                non_pytorch_bytes=used - res, nvidia_smi_used_mib=smi.get("used_mib"))


def is_oom(e):
    return isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in str(e).lower()


def err(e):
    return dict(status="oom" if is_oom(e) else "error", error=f"{type(e).__name__}: {str(e)[:600]}",
                traceback=traceback.format_exc()[-1500:])


# ----------------------------------------------------------------------------------------------
# cache inspection
# ----------------------------------------------------------------------------------------------
def cache_tensors(cache):
    """Every per-token tensor a cache object holds (dim >= 3), with the layer class it sits in."""
    found = []

    def add(t, where):
        if isinstance(t, torch.Tensor) and t.dim() >= 3:
            found.append((t, where))

    if cache is None:
        return found
    if hasattr(cache, "layers"):
        for i, layer in enumerate(cache.layers):
            for name, val in vars(layer).items():
                add(val, (i, type(layer).__name__, name))
    elif isinstance(cache, (tuple, list)):
        for i, layer in enumerate(cache):
            for j, t in enumerate(layer):
                add(t, (i, "tuple", str(j)))
    else:
        for name in ("key_cache", "value_cache"):
            for i, t in enumerate(getattr(cache, name, []) or []):
                add(t, (i, type(cache).__name__, name))
    return found


def describe_cache(cache):
    ts = cache_tensors(cache)
    view_bytes = sum(t.nbytes for t, _ in ts)
    storages = {}
    for t, _ in ts:
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
    layer_classes = {}
    shapes = {}
    for t, (i, cls, name) in ts:
        layer_classes[cls] = layer_classes.get(cls, 0) + 1
        key = f"{cls}.{name}"
        if key not in shapes:
            shapes[key] = dict(layer=i, shape=list(t.shape), dtype=str(t.dtype).replace("torch.", ""))
    n_layers = len(getattr(cache, "layers", [])) if cache is not None else 0
    return dict(cache_class=type(cache).__name__, n_cache_layers=n_layers,
                tensor_count=len(ts), tensor_nbytes=view_bytes,
                storage_nbytes=sum(storages.values()), layer_tensor_classes=layer_classes,
                first_shapes=shapes)


# ----------------------------------------------------------------------------------------------
# config and model
# ----------------------------------------------------------------------------------------------
def make_config_dict(fixture_dir, case, layers):
    with open(os.path.join(fixture_dir, case["fixture"])) as f:
        d = json.load(f)
    changes = []
    for k in ("quantization_config", "auto_map"):
        if k in d:
            d.pop(k)
            changes.append(f"removed {k}")
    if layers is not None:
        d["num_hidden_layers"] = layers
        changes.append(f"num_hidden_layers={layers}")
        if isinstance(d.get("layer_types"), list):
            d["layer_types"] = d["layer_types"][:layers]
            changes.append("layer_types cut to num_hidden_layers")
    return d, changes


def build(cfg_dict, attn):
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(cfg_dict, f)
        cfg = AutoConfig.from_pretrained(tmp)
    clean()
    reset_peak()
    before = allocated()
    t = time.time()
    with torch.device(DEV):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation=attn)
    sync()
    after = allocated()
    by_dtype = {}
    n_params = 0
    param_bytes = 0
    for p in model.parameters():  # parameters() yields a tied tensor once
        n_params += p.numel()
        param_bytes += p.numel() * p.element_size()
        k = str(p.dtype).replace("torch.", "")
        by_dtype[k] = by_dtype.get(k, 0) + p.numel()
    buf_bytes = sum(b.numel() * b.element_size() for b in model.buffers())
    info = dict(
        params=n_params, param_bytes=param_bytes, params_by_dtype=by_dtype, buffer_bytes=buf_bytes,
        weights_allocated_bytes=after - before, build_peak_bytes=max_allocated() - before,
        build_seconds=round(time.time() - t, 2),
        attn_implementation=getattr(model.config, "_attn_implementation", None),
        model_class=type(model).__name__, tied=bool(getattr(model.config, "tie_word_embeddings", False)),
        runtime_after_build=runtime_snapshot())
    return model, info


# ----------------------------------------------------------------------------------------------
# inference
# ----------------------------------------------------------------------------------------------
def prefill(model, vocab, batch, ctx, keep):
    ids = torch.randint(0, vocab, (batch, ctx), device=DEV)
    mask = torch.ones_like(ids)
    clean()
    reset_peak()
    base = allocated()
    with torch.inference_mode():
        out = model(input_ids=ids, attention_mask=mask, use_cache=True, logits_to_keep=keep)
    sync()
    r = dict(kind="prefill", batch=batch, context=ctx, logits_to_keep=keep,
             peak_over_weights_bytes=max_allocated() - base,
             held_after_bytes=allocated() - base,
             logits_bytes=out.logits.nbytes, logits_shape=list(out.logits.shape),
             logits_dtype=str(out.logits.dtype).replace("torch.", ""),
             cache=describe_cache(out.past_key_values), runtime=runtime_snapshot(), status="ok")
    del out, ids, mask
    clean()
    return r


def generate(model, vocab, batch, ctx, keep):
    ids = torch.randint(0, vocab, (batch, ctx), device=DEV)
    mask = torch.ones_like(ids)
    clean()
    reset_peak()
    base = allocated()
    kwargs = dict(max_new_tokens=NEW_TOKENS, do_sample=False, return_dict_in_generate=True,
                  pad_token_id=0)
    if keep is not None:
        kwargs["logits_to_keep"] = keep
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, **kwargs)
    sync()
    r = dict(kind="generate", batch=batch, context=ctx, logits_to_keep=keep,
             new_tokens=int(out.sequences.shape[1] - ctx),
             peak_over_weights_bytes=max_allocated() - base,
             held_after_bytes=allocated() - base,
             cache=describe_cache(getattr(out, "past_key_values", None)),
             runtime=runtime_snapshot(), status="ok")
    del out, ids, mask
    clean()
    return r


# ----------------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------------
def lora_targets(model):
    names = set()
    for n, m in model.named_modules():
        last = n.split(".")[-1]
        if isinstance(m, torch.nn.Linear) and last in LORA_TARGET_NAMES:
            names.add(last)
    return sorted(names)


def train_steps(model, vocab, batch, seq, label, gc_on, autocast, steps=2, optimizer=None):
    """Two optimizer steps of `model`, peaks per phase. `optimizer`: (name, factory(params)) for
    another optimizer than torch's AdamW (bitsandbytes 8-bit or paged AdamW)."""
    model.train()
    if gc_on:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    elif getattr(model, "is_gradient_checkpointing", False):
        model.gradient_checkpointing_disable()
    params = [p for p in model.parameters() if p.requires_grad]
    trainable = sum(p.numel() for p in params)
    trainable_bytes = sum(p.numel() * p.element_size() for p in params)
    tdtypes = sorted({str(p.dtype).replace("torch.", "") for p in params})
    if optimizer is None:
        opt_name, opt = "torch.optim.AdamW(lr=1e-5) defaults (foreach on CUDA)", torch.optim.AdamW(params, lr=1e-5)
    else:
        opt_name, opt = optimizer[0], optimizer[1](params)
    ids = torch.randint(0, vocab, (batch, seq), device=DEV)
    clean()
    base = allocated()
    rec = dict(kind="train", label=label, batch=batch, seq=seq, gradient_checkpointing=gc_on,
               autocast_bf16=autocast, trainable_params=trainable,
               trainable_bytes=trainable_bytes, trainable_dtypes=tdtypes,
               optimizer=opt_name, base_allocated_bytes=base,
               base_runtime=runtime_snapshot(), steps=[])
    for s in range(steps):
        st = {}
        reset_peak()
        if autocast:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out = model(input_ids=ids, labels=ids, use_cache=False)
        else:
            out = model(input_ids=ids, labels=ids, use_cache=False)
        sync()
        st["forward_peak_bytes"] = max_allocated() - base
        st["after_forward_bytes"] = allocated() - base
        reset_peak()
        out.loss.backward()
        sync()
        st["backward_peak_bytes"] = max_allocated() - base
        st["after_backward_bytes"] = allocated() - base
        del out
        reset_peak()
        opt.step()
        sync()
        st["step_peak_bytes"] = max_allocated() - base
        st["after_step_bytes"] = allocated() - base
        # Paged optimizers keep their state in CUDA managed memory, which the caching allocator
        # does not count: the device's own figure (cudaMemGetInfo) shows it while it is resident.
        st["after_step_runtime"] = runtime_snapshot()
        opt.zero_grad(set_to_none=True)
        st["after_zero_grad_bytes"] = allocated() - base
        st["peak_bytes"] = max(st["forward_peak_bytes"], st["backward_peak_bytes"],
                               st["step_peak_bytes"])
        rec["steps"].append(st)
    rec["peak_over_base_bytes"] = max(x["peak_bytes"] for x in rec["steps"])
    rec["runtime"] = runtime_snapshot()
    rec["status"] = "ok"
    del opt, ids, params
    model.zero_grad(set_to_none=True)
    if gc_on:
        model.gradient_checkpointing_disable()
    clean()
    return rec


# ----------------------------------------------------------------------------------------------
# driver
# ----------------------------------------------------------------------------------------------
class Results:
    def __init__(self, path):
        self.path = path
        self.data = dict(meta={}, cases=[])

    def save(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.data, f, indent=1)
        os.replace(tmp, self.path)


def meta():
    m = dict(
        date_utc=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        python=platform.python_version(), torch=torch.__version__,
        transformers=transformers.__version__, peft=getattr(peft, "__version__", None),
        cuda_runtime=torch.version.cuda, host=platform.node(),
        pairs=PAIRS, new_tokens=NEW_TOKENS, train_batch=TRAIN_BATCH, train_seq=TRAIN_SEQ,
        lora=dict(rank=LORA_RANK, alpha=LORA_ALPHA, dropout=0.0, target_name_candidates=LORA_TARGET_NAMES,
                  autocast_adapter_dtype="peft default (True)"),
        alloc_conf=os.environ.get("PYTORCH_CUDA_ALLOC_CONF"),
        sdpa_backends=dict(flash=torch.backends.cuda.flash_sdp_enabled(),
                           mem_efficient=torch.backends.cuda.mem_efficient_sdp_enabled(),
                           math=torch.backends.cuda.math_sdp_enabled(),
                           cudnn=getattr(torch.backends.cuda, "cudnn_sdp_enabled", lambda: None)()))
    if cuda_ok():
        p = torch.cuda.get_device_properties(0)
        m.update(device_name=p.name, device_total_bytes=p.total_memory, sm_count=p.multi_processor_count,
                 nvidia_smi=nvidia_smi())
        # The CUDA context: create it with one tiny tensor, then after a first matmul (cuBLAS
        # handle and workspace) -- device-used minus reserved is memory PyTorch does not see.
        m["runtime_empty"] = dict(before_init=nvidia_smi())
        x = torch.zeros(1, device=DEV)
        sync()
        m["runtime_empty"]["after_first_tensor"] = runtime_snapshot()
        a = torch.randn(1024, 1024, device=DEV, dtype=torch.bfloat16)
        (a @ a).sum().item()
        sync()
        m["runtime_empty"]["after_first_bf16_matmul"] = runtime_snapshot()
        del a, x
        clean()
        m["runtime_empty"]["after_empty_cache"] = runtime_snapshot()
    return m


def main():
    global DEV, PAIRS, TRAIN_SEQ, NEW_TOKENS
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", required=True, help="directory with the hf config.json fixtures")
    ap.add_argument("--out", required=True, help="results JSON path")
    ap.add_argument("--deadline-s", type=float, default=480.0,
                    help="stop starting new measurements after this many seconds")
    ap.add_argument("--only", default="", help="comma-separated case ids")
    ap.add_argument("--skip", default="", help="comma-separated case ids")
    ap.add_argument("--no-train", action="store_true")
    ap.add_argument("--pairs", default="", help="override pairs, e.g. 1x64,2x32 (dry runs)")
    ap.add_argument("--train-seq", type=int, default=TRAIN_SEQ)
    ap.add_argument("--new-tokens", type=int, default=NEW_TOKENS)
    ap.add_argument("--lora-layers-last", default="",
                    help="comma-separated K values: for each case with training, also run LoRA on "
                         "the last K decoder layers only (peft layers_to_transform), with and "
                         "without gradient checkpointing (labels lora_lastK, lora_lastK_gc)")
    ap.add_argument("--lora-layers-only", action="store_true",
                    help="with --lora-layers-last: skip inference, full training, all-layer LoRA "
                         "and mixed precision; run only the LoRA-on-a-subset runs")
    ap.add_argument("--setups", default="",
                    help="comma-separated: qlora (peft prepare_model_for_kbit_training + LoRA on "
                         "an nf4 base, checkpointing off/on, and the same without kbit "
                         "preparation), optim (full bf16 fine-tune with bitsandbytes AdamW8bit, "
                         "PagedAdamW, PagedAdamW8bit); runs only these, not CASES")
    args = ap.parse_args()
    args.lora_last = [int(k) for k in args.lora_layers_last.split(",") if k]
    if args.lora_layers_only and not args.lora_last:
        ap.error("--lora-layers-only needs --lora-layers-last K[,K2]")
    if any(k <= 0 for k in args.lora_last):
        ap.error("--lora-layers-last: every K must be a positive layer count")

    if not cuda_ok():
        DEV = "cpu"
        log("WARNING: no CUDA device: dry run on the CPU, memory numbers are all 0")
    if args.pairs:
        PAIRS = [tuple(int(v) for v in p.split("x")) for p in args.pairs.split(",")]
    TRAIN_SEQ = args.train_seq
    NEW_TOKENS = args.new_tokens

    res = Results(args.out)
    res.data["meta"] = meta()
    res.data["meta"]["lora_layers_last"] = args.lora_last
    res.data["meta"]["lora_layers_only"] = args.lora_layers_only
    res.save()
    log("meta", json.dumps({k: v for k, v in res.data["meta"].items() if k != "runtime_empty"}))

    only = {s for s in args.only.split(",") if s}
    skip = {s for s in args.skip.split(",") if s}

    def late():
        return time.time() - T0 > args.deadline_s

    for name in [x for x in args.setups.split(",") if x]:
        if name not in SETUP_CASES:
            ap.error(f"--setups: unknown setup {name!r}; use {', '.join(SETUP_CASES)}")
        if late():
            log("deadline reached: skipping setup", name)
            continue
        (qlora_setup if name == "qlora" else optim_setup)(SETUP_CASES[name], args, res, late)
    for case in ([] if args.setups else CASES):
        if (only and case["id"] not in only) or case["id"] in skip:
            continue
        if late():
            log("deadline reached: skipping", case["id"])
            res.data["cases"].append(dict(id=case["id"], status="skipped: deadline"))
            res.save()
            continue
        run_case(case, args, res, late)
    res.data["meta"]["wall_seconds"] = round(time.time() - T0, 1)
    res.save()
    summary(res.data)


def run_case(case, args, res, late):
    cfg_dict, changes = make_config_dict(args.fixtures, case, case["layers"])
    rec = dict(id=case["id"], fixture=case["fixture"], config_changes=changes, config_used=cfg_dict,
               attn_implementation=case["attn"], inference=[], training=[])
    res.data["cases"].append(rec)
    vocab = cfg_dict.get("vocab_size") or cfg_dict.get("text_config", {}).get("vocab_size")
    log("case", case["id"], changes)
    model = None
    try:
        model, info = build(cfg_dict, case["attn"])
        model.eval()
        model.generation_config.eos_token_id = None  # generate exactly NEW_TOKENS tokens
        rec["build"] = info
        rec["generation_cache_implementation"] = getattr(model.generation_config,
                                                         "cache_implementation", None)
        log("  built", info["params"], "params", info["weights_allocated_bytes"], "bytes",
            info["build_seconds"], "s")
    except Exception as e:  # noqa: BLE001
        rec["build"] = err(e)
        log("  build failed", rec["build"]["error"])
        res.save()
        return
    res.save()

    for (b, L) in ([] if args.lora_layers_only else case.get("pairs", PAIRS)):
        for keep in (1, 0):
            if late():
                break
            try:
                r = prefill(model, vocab, b, L, keep)
            except Exception as e:  # noqa: BLE001
                r = dict(kind="prefill", batch=b, context=L, logits_to_keep=keep, **err(e))
                clean()
            rec["inference"].append(r)
            log("  prefill", b, L, keep, r.get("status"), r.get("peak_over_weights_bytes"),
                r.get("cache", {}).get("tensor_nbytes"), r.get("cache", {}).get("storage_nbytes"))
            res.save()
        for keep in (None, 0):
            if late():
                break
            try:
                r = generate(model, vocab, b, L, keep)
            except Exception as e:  # noqa: BLE001
                r = dict(kind="generate", batch=b, context=L, logits_to_keep=keep, **err(e))
                clean()
            rec["inference"].append(r)
            log("  generate", b, L, keep, r.get("status"), r.get("peak_over_weights_bytes"))
            res.save()

    if case.get("eager_variant") and not late() and not args.lora_layers_only:
        try:
            model.set_attn_implementation("eager")
            rec["eager_inference"] = []
            for (b, L) in PAIRS:
                for keep in (1,):
                    try:
                        r = prefill(model, vocab, b, L, keep)
                    except Exception as e:  # noqa: BLE001
                        r = dict(kind="prefill", batch=b, context=L, logits_to_keep=keep, **err(e))
                        clean()
                    r["attn_implementation"] = "eager"
                    rec["eager_inference"].append(r)
                    log("  eager prefill", b, L, r.get("status"), r.get("peak_over_weights_bytes"))
                    res.save()
            model.set_attn_implementation(case["attn"])
        except Exception as e:  # noqa: BLE001
            rec["eager_inference_error"] = err(e)

    if args.no_train or case["train_layers"] == 0:
        del model
        clean()
        return

    # Training model: the same one when train_layers is None, else rebuilt with fewer layers.
    if case["train_layers"] is not None:
        del model
        clean()
        tcfg, tchanges = make_config_dict(args.fixtures, case, case["train_layers"])
        rec["train_config_used"] = tcfg
        rec["train_config_changes"] = tchanges
        try:
            model, tinfo = build(tcfg, case["attn"])
            rec["train_build"] = tinfo
        except Exception as e:  # noqa: BLE001
            rec["train_build"] = err(e)
            res.save()
            return
    else:
        rec["train_config_used"] = None  # same as config_used

    tvocab = vocab
    if args.lora_layers_only:
        if peft is None:
            rec["training"].append(dict(kind="train", label="lora_last",
                                        status="skipped: peft not installed"))
        else:
            lora_subset_runs(model, rec, res, args, tvocab, late)
        del model
        clean()
        return
    for label, gc_on in (("full_bf16_adamw", False), ("full_bf16_adamw_gc", True)):
        if late():
            break
        try:
            r = train_steps(model, tvocab, TRAIN_BATCH, TRAIN_SEQ, label, gc_on, autocast=False)
        except Exception as e:  # noqa: BLE001
            r = dict(kind="train", label=label, batch=TRAIN_BATCH, seq=TRAIN_SEQ,
                     gradient_checkpointing=gc_on, **err(e))
            model.zero_grad(set_to_none=True)
            clean()
        rec["training"].append(r)
        log("  train", label, r.get("status"), r.get("peak_over_base_bytes"))
        res.save()

    if peft is None:
        rec["training"].append(dict(kind="train", label="lora", status="skipped: peft not installed"))
    elif not late():
        try:
            targets = lora_targets(model)
            for p in model.parameters():
                p.requires_grad_(False)
            lcfg = peft.LoraConfig(r=LORA_RANK, lora_alpha=LORA_ALPHA, lora_dropout=0.0,
                                   target_modules=targets, task_type="CAUSAL_LM")
            clean()
            before = allocated()
            pmodel = peft.get_peft_model(model, lcfg)
            sync()
            adapter_bytes = allocated() - before
            for label, gc_on in (("lora", False), ("lora_gc", True)):
                if late():
                    break
                try:
                    r = train_steps(pmodel, tvocab, TRAIN_BATCH, TRAIN_SEQ, label, gc_on, autocast=False)
                except Exception as e:  # noqa: BLE001
                    r = dict(kind="train", label=label, batch=TRAIN_BATCH, seq=TRAIN_SEQ,
                             gradient_checkpointing=gc_on, **err(e))
                    pmodel.zero_grad(set_to_none=True)
                    clean()
                r.update(lora_rank=LORA_RANK, lora_alpha=LORA_ALPHA, lora_targets=targets,
                         adapter_allocated_bytes=adapter_bytes)
                rec["training"].append(r)
                log("  train", label, r.get("status"), r.get("peak_over_base_bytes"))
                res.save()
            if args.lora_last:
                # Take the adapters out again (peft's unload restores the plain base modules) so
                # the subset runs start from the same frozen base model.
                model = pmodel.unload()
                del pmodel
                clean()
                lora_subset_runs(model, rec, res, args, tvocab, late)
            else:
                del pmodel
        except Exception as e:  # noqa: BLE001
            rec["training"].append(dict(kind="train", label="lora", **err(e)))
            res.save()
    del model
    clean()

    # bf16 mixed precision (HF Trainer bf16=True): fp32 weights, bf16 autocast, fp32 AdamW.
    if case.get("train_mixed") and not late():
        cfgd = rec["train_config_used"] or cfg_dict
        try:
            with tempfile.TemporaryDirectory() as tmp:
                with open(os.path.join(tmp, "config.json"), "w") as f:
                    json.dump(cfgd, f)
                cfg = AutoConfig.from_pretrained(tmp)
            clean()
            before = allocated()
            with torch.device(DEV):
                m32 = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32,
                                                       attn_implementation=case["attn"])
            sync()
            w32 = allocated() - before
            for label, gc_on in (("mixed_bf16_fp32master_adamw", False),
                                 ("mixed_bf16_fp32master_adamw_gc", True)):
                if late():
                    break
                try:
                    r = train_steps(m32, tvocab, TRAIN_BATCH, TRAIN_SEQ, label, gc_on, autocast=True)
                except Exception as e:  # noqa: BLE001
                    r = dict(kind="train", label=label, **err(e))
                    m32.zero_grad(set_to_none=True)
                    clean()
                r["fp32_weights_allocated_bytes"] = w32
                rec["training"].append(r)
                log("  train", label, r.get("status"), r.get("peak_over_base_bytes"))
                res.save()
            del m32
        except Exception as e:  # noqa: BLE001
            rec["training"].append(dict(kind="train", label="mixed_bf16_fp32master_adamw", **err(e)))
        clean()
        res.save()


def params_by_dtype(model):
    out = {}
    for p in model.parameters():
        k = str(p.dtype).replace("torch.", "")
        out[k] = out.get(k, 0) + p.numel()
    return out


def qlora_setup(case, args, res, late):
    """QLoRA as peft + bitsandbytes run it: the bf16 random model is saved, loaded back in nf4
    with double quantization (bf16 compute), then either prepared with
    `prepare_model_for_kbit_training` (which upcasts every parameter that is not 4-bit to fp32 and,
    with checkpointing, enables it) or not, and wrapped in LoRA adapters on every linear layer."""
    from transformers import BitsAndBytesConfig
    cfgd, changes = make_config_dict(args.fixtures, case, None)
    rec = dict(id=case["id"], fixture=case["fixture"], setup="qlora", config_changes=changes,
               config_used=cfgd, attn_implementation="sdpa", inference=[], training=[])
    res.data["cases"].append(rec)
    vocab = cfgd["vocab_size"]
    try:
        import bitsandbytes as bnb
        rec["bitsandbytes"] = bnb.__version__
        model, info = build(cfgd, "sdpa")
        rec["build"] = info
        tmp = tempfile.mkdtemp(prefix="qlora-")
        model.save_pretrained(tmp)
        del model
        clean()
    except Exception as e:  # noqa: BLE001
        rec["build"] = err(e)
        res.save()
        return
    res.save()
    for kbit, gc_on in ((True, False), (True, True), (False, False), (False, True)):
        if late():
            break
        label = ("qlora_kbit" if kbit else "qlora_plain") + ("_gc" if gc_on else "")
        try:
            qcfg = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                      bnb_4bit_use_double_quant=True,
                                      bnb_4bit_compute_dtype=torch.bfloat16)
            clean()
            before = allocated()
            m = AutoModelForCausalLM.from_pretrained(tmp, quantization_config=qcfg,
                                                     dtype=torch.bfloat16,
                                                     attn_implementation="sdpa",
                                                     device_map={"": 0})
            sync()
            loaded = allocated() - before
            loaded_dtypes = params_by_dtype(m)
            if kbit:
                m = peft.prepare_model_for_kbit_training(m, use_gradient_checkpointing=gc_on)
            sync()
            prepared = allocated() - before
            prepared_dtypes = params_by_dtype(m)
            targets = lora_targets(m)  # bitsandbytes' Linear4bit is an nn.Linear
            lcfg = peft.LoraConfig(r=LORA_RANK, lora_alpha=LORA_ALPHA, lora_dropout=0.0,
                                   target_modules=targets, task_type="CAUSAL_LM")
            pm = peft.get_peft_model(m, lcfg)
            sync()
            with_adapters = allocated() - before
            # With checkpointing, kbit preparation enabled it (reentrant, its default) and made
            # the embeddings' output require grad; train_steps enables it again non-reentrant, as
            # every other checkpointed run here, so the runs differ only in the preparation.
            r = train_steps(pm, vocab, case["batch"], case["seq"], label, gc_on, autocast=False)
            r.update(kbit_preparation=kbit, gradient_checkpointing=gc_on,
                     lora_rank=LORA_RANK, lora_alpha=LORA_ALPHA, lora_targets=targets,
                     loaded_bytes=loaded, loaded_params_by_dtype=loaded_dtypes,
                     prepared_bytes=prepared, prepared_params_by_dtype=prepared_dtypes,
                     with_adapters_bytes=with_adapters,
                     weight_format="nf4+dq (bitsandbytes, compute bf16)")
            del pm, m
        except Exception as e:  # noqa: BLE001
            r = dict(kind="train", label=label, batch=case["batch"], seq=case["seq"],
                     kbit_preparation=kbit, gradient_checkpointing=gc_on, **err(e))
        clean()
        rec["training"].append(r)
        log("  train", label, r.get("status"), r.get("peak_over_base_bytes"), r.get("error", "")[:200])
        res.save()


def optim_setup(case, args, res, late):
    """Full bf16 fine-tune (model loaded in bf16, every weight trained) with bitsandbytes'
    AdamW8bit, PagedAdamW and PagedAdamW8bit, checkpointing off and on."""
    cfgd, changes = make_config_dict(args.fixtures, case, None)
    rec = dict(id=case["id"], fixture=case["fixture"], setup="optim", config_changes=changes,
               config_used=cfgd, attn_implementation="sdpa", inference=[], training=[])
    res.data["cases"].append(rec)
    vocab = cfgd["vocab_size"]
    try:
        import bitsandbytes as bnb
        rec["bitsandbytes"] = bnb.__version__
        model, info = build(cfgd, "sdpa")
        rec["build"] = info
    except Exception as e:  # noqa: BLE001
        rec["build"] = err(e)
        res.save()
        return
    res.save()
    optims = [
        ("adam8bit", "bitsandbytes.optim.AdamW8bit(lr=1e-5)", lambda ps: bnb.optim.AdamW8bit(ps, lr=1e-5)),
        ("paged_adamw", "bitsandbytes.optim.PagedAdamW(lr=1e-5)", lambda ps: bnb.optim.PagedAdamW(ps, lr=1e-5)),
        ("paged_adamw8bit", "bitsandbytes.optim.PagedAdamW8bit(lr=1e-5)",
         lambda ps: bnb.optim.PagedAdamW8bit(ps, lr=1e-5)),
    ]
    for key, name, factory in optims:
        for gc_on in (False, True):
            if late():
                break
            label = f"full_bf16_{key}" + ("_gc" if gc_on else "")
            try:
                r = train_steps(model, vocab, case["batch"], case["seq"], label, gc_on,
                                autocast=False, optimizer=(name, factory))
            except Exception as e:  # noqa: BLE001
                r = dict(kind="train", label=label, batch=case["batch"], seq=case["seq"],
                         gradient_checkpointing=gc_on, **err(e))
                model.zero_grad(set_to_none=True)
                clean()
            r["optimizer_key"] = key
            rec["training"].append(r)
            log("  train", label, r.get("status"), r.get("peak_over_base_bytes"),
                (r.get("steps") or [{}])[-1].get("after_step_runtime"))
            res.save()
    del model
    clean()


def remove_input_require_grads_hook(model):
    """Remove transformers' enable_input_require_grads hook if present; True if one was."""
    if hasattr(model, "_require_grads_hook"):
        model.disable_input_require_grads()
        return True
    return False


def lora_subset_runs(model, rec, res, args, tvocab, late):
    """LoRA on the last K decoder layers only (peft `layers_to_transform`), same rank, alpha and
    target names as the all-layer runs, with and without gradient checkpointing. `model` is the
    plain (un-wrapped) training model; it is left un-wrapped again afterwards."""
    n_layers = model.config.num_hidden_layers
    targets = lora_targets(model)
    for k in args.lora_last:
        if late():
            break
        base_label = f"lora_last{k}"
        if k > n_layers:
            rec["training"].append(dict(kind="train", label=base_label,
                                        status=f"skipped: K={k} > num_hidden_layers={n_layers}"))
            res.save()
            continue
        layers = list(range(n_layers - k, n_layers))
        try:
            for p in model.parameters():
                p.requires_grad_(False)
            lcfg = peft.LoraConfig(r=LORA_RANK, lora_alpha=LORA_ALPHA, lora_dropout=0.0,
                                   target_modules=targets, layers_to_transform=layers,
                                   task_type="CAUSAL_LM")
            clean()
            before = allocated()
            pmodel = peft.get_peft_model(model, lcfg)
            sync()
            adapter_bytes = allocated() - before
            for label, gc_on in ((base_label, False), (base_label + "_gc", True)):
                if late():
                    break
                # An input-embedding hook that makes the embeddings' output require grad (what
                # enable_input_require_grads installs) outlives gradient_checkpointing_disable and
                # makes every frozen layer below the first adapter keep activations for backward.
                # Each run starts without it; whether one was there after the run is recorded.
                hook_before = remove_input_require_grads_hook(model)
                try:
                    r = train_steps(pmodel, tvocab, TRAIN_BATCH, TRAIN_SEQ, label, gc_on,
                                    autocast=False)
                except Exception as e:  # noqa: BLE001
                    r = dict(kind="train", label=label, batch=TRAIN_BATCH, seq=TRAIN_SEQ,
                             gradient_checkpointing=gc_on, **err(e))
                    pmodel.zero_grad(set_to_none=True)
                    clean()
                r.update(lora_rank=LORA_RANK, lora_alpha=LORA_ALPHA, lora_targets=targets,
                         lora_layers=layers, adapter_allocated_bytes=adapter_bytes,
                         input_require_grads_hook_removed_before=hook_before,
                         input_require_grads_hook_after=hasattr(model, "_require_grads_hook"))
                rec["training"].append(r)
                log("  train", label, r.get("status"), r.get("peak_over_base_bytes"),
                    "trainable", r.get("trainable_params"))
                res.save()
            model = pmodel.unload()
            del pmodel
            clean()
        except Exception as e:  # noqa: BLE001
            rec["training"].append(dict(kind="train", label=base_label, lora_layers=layers, **err(e)))
            res.save()


def summary(data):
    gib = 2 ** 30
    print("\n=== summary (GiB) ===")
    for c in data["cases"]:
        b = c.get("build", {})
        print(f"{c['id']:24s} weights {b.get('weights_allocated_bytes', 0) / gib:8.3f}  "
              f"params {b.get('params', 0)}  {b.get('status', '')} {b.get('error', '')[:80]}")
        for r in c.get("inference", []):
            print(f"   {r['kind']:8s} b{r['batch']} L{r['context']} keep={r['logits_to_keep']}: "
                  f"{r.get('status')} peak {r.get('peak_over_weights_bytes', 0) / gib:.3f} "
                  f"kv {r.get('cache', {}).get('tensor_nbytes', 0) / gib:.3f}/"
                  f"{r.get('cache', {}).get('storage_nbytes', 0) / gib:.3f} {r.get('error', '')[:80]}")
        for r in c.get("training", []):
            print(f"   train {r.get('label')}: {r.get('status')} "
                  f"peak {r.get('peak_over_base_bytes', 0) / gib:.3f} {r.get('error', '')[:80]}")


if __name__ == "__main__":
    try:
        main()
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        sys.exit(1)
