#!/usr/bin/env python3
"""Ground truth for headroom's parameter and cache model, held to transformers itself.

For every ``*.json`` config in a folder, build the model with transformers on the **meta device**
(no weights are ever allocated), then record:

* exact parameter counts: total, per component (embeddings, lm_head, final norm, vision / audio
  towers, projector, MTP layers, anything else by module name) and per decoder layer, grouped by
  what the layer actually is (mixer kind, dense MLP / routed experts / shared experts / router,
  norms), with the full tensor list (name, shape) of one layer of each distinct shape;
* ``params_active`` for MoE models (total minus the routed experts a token does not use);
* the cache transformers keeps: a meta-device forward with ``use_cache=True`` at several prompt
  lengths, then one decode step, reading every tensor of the returned cache object (meta tensors
  know their shape and dtype), so per-token and per-sequence bytes come from transformers' own
  cache code;
* a hand-worked cache-per-token figure from the config alone, for cross-checking.

Nothing here needs a GPU or downloads anything. Usage::

    python3 tests/measure/count_params.py --configs tests/data/hf-configs \\
        --sources tests/data/hf-configs/sources.json --out tests/data/transformers-counts.json

``--only A,B`` limits the run to some files (stems); results are merged into an existing ``--out``
file (other entries kept), so the fixture can be grown a few configs at a time.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import copy
import datetime
import gc
import json
import math
import os
import re
import signal
import sys
import time
import traceback

import torch
import transformers
from torch import nn
from transformers import AutoConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

# Keys removed from a published config before building: they select a weight format (FP8 blocks,
# NVFP4, …) or remote code, not the architecture. Counts are of the architecture's bf16 tensors.
STRIP_KEYS = ("quantization_config", "compression_config", "auto_map")

VISION_WORDS = ("vision", "visual", "image_encoder", "siglip", "vit")
AUDIO_WORDS = ("audio", "speech", "whisper")
PROJECTOR_WORDS = ("multi_modal_projector", "mm_projector", "projector", "embed_vision", "embed_audio",
                   "connector", "aligner")
MTP_WORDS = ("mtp", "nextn", "next_n")

SEQ_LENS = (16, 32)          # two prompt lengths below every window: per-token = difference
DECODE_STEPS = 1             # one decode step after each prefill, so sliding layers have trimmed
MAX_LONG_LEN = 9000          # measure beyond a sliding window only up to this many tokens


def now_utc() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Timeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: int):
    def handler(signum, frame):
        raise Timeout(f"timed out after {seconds} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# --------------------------------------------------------------------------------------------
# building
# --------------------------------------------------------------------------------------------

def load_config(raw: dict):
    """A transformers config object from a published config.json dict.

    Returns (config, notes). The config class comes from ``model_type``; where transformers does
    not know the ``model_type`` (e.g. Kimi-K2's ``kimi_k2``) but knows the class named in
    ``architectures`` (``DeepseekV3ForCausalLM``), that class's config is used.
    """
    notes = []
    d = copy.deepcopy(raw)
    for k in STRIP_KEYS:
        if k in d:
            d.pop(k)
            notes.append(f"removed {k}")
    for sub in ("text_config", "llm_config", "language_config"):
        if isinstance(d.get(sub), dict):
            for k in STRIP_KEYS:
                if k in d[sub]:
                    d[sub].pop(k)
                    notes.append(f"removed {sub}.{k}")
    mt = d.get("model_type")
    if mt in CONFIG_MAPPING:
        cls = CONFIG_MAPPING[mt]
    else:
        arch = (d.get("architectures") or [None])[0]
        model_cls = getattr(transformers, arch, None) if arch else None
        if model_cls is None:
            raise RuntimeError(f"transformers {transformers.__version__} knows neither model_type "
                               f"{mt!r} nor architecture {arch!r}")
        cls = model_cls.config_class
        notes.append(f"model_type {mt!r} unknown to transformers; built with {cls.__name__} "
                     f"(the config class of architectures[0] = {arch})")
        d["model_type"] = cls.model_type
    cfg = cls.from_dict(d)
    return cfg, notes


def model_class_for(cfg, raw: dict):
    arch = (raw.get("architectures") or [None])[0]
    if arch and hasattr(transformers, arch):
        c = getattr(transformers, arch)
        if isinstance(c, type) and issubclass(c, transformers.PreTrainedModel):
            if c.config_class is None or isinstance(cfg, c.config_class):
                return c, f"transformers.{arch}"
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText
    for auto in (AutoModelForCausalLM, AutoModelForImageTextToText):
        try:
            c = auto._model_mapping[type(cfg)]
            return c, f"{auto.__name__} -> {c.__name__}"
        except KeyError:
            continue
    raise RuntimeError(f"no in-library model class for {type(cfg).__name__} / {arch}")


def build(cfg, cls, attn="eager"):
    torch.manual_seed(0)
    with torch.device("meta"):
        try:
            model = cls._from_config(cfg, dtype=torch.bfloat16, attn_implementation=attn)
        except TypeError:
            model = cls._from_config(cfg, torch_dtype=torch.bfloat16, attn_implementation=attn)
    model.eval()
    return model


# --------------------------------------------------------------------------------------------
# parameter accounting
# --------------------------------------------------------------------------------------------

def text_config_of(cfg):
    for attr in ("text_config", "llm_config", "language_config", "thinker_config"):
        sub = getattr(cfg, attr, None)
        if sub is not None and hasattr(sub, "num_hidden_layers"):
            return sub
    if hasattr(cfg, "get_text_config"):
        try:
            return cfg.get_text_config()
        except Exception:
            pass
    return cfg


def has_word(path: str, words) -> bool:
    parts = re.split(r"[._]", path.lower())
    joined = path.lower()
    for w in words:
        if "_" in w:
            if w in joined:
                return True
        elif w in parts:
            return True
    return False


def find_decoder_layers(model, tcfg):
    """(path, ModuleList) of the text decoder's layers: the longest ModuleList outside any
    vision/audio tower whose length is the text config's num_hidden_layers (or the longest one)."""
    n = getattr(tcfg, "num_hidden_layers", None)
    best = None
    for name, mod in model.named_modules():
        if not isinstance(mod, nn.ModuleList) or len(mod) == 0:
            continue
        if has_word(name, VISION_WORDS + AUDIO_WORDS) or has_word(name, MTP_WORDS):
            continue
        last = name.split(".")[-1]
        if last not in ("layers", "h", "blocks", "layer", "decoder_layers"):
            continue
        score = (len(mod) == n, len(mod))
        if best is None or score > best[0]:
            best = (score, name, mod)
    if best is None:
        raise RuntimeError("no decoder layer list found")
    return best[1], best[2]


def numel(mod_or_params) -> int:
    return sum(p.numel() for p in mod_or_params)


def has_experts(mod: nn.Module) -> bool:
    return any(n.split(".")[-1] == "experts" for n, _ in mod.named_modules()) or \
        any(EXPERTS_RE.search(n) for n, _ in mod.named_parameters())


def _strip_model_prefix(cname: str, layer_cname: str) -> str:
    """``KimiLinearAttention`` in ``KimiLinearDecoderLayer`` -> ``Attention``: class names carry the
    model's own prefix, which must not be read as a kind (Kimi-*Linear*, Glm*Moe*Dsa, Gpt*Oss*…)."""
    n = 0
    while n < min(len(cname), len(layer_cname)) and cname[n] == layer_cname[n]:
        n += 1
    while n > 0 and not cname[n:n + 1].isupper():
        n -= 1
    return cname[n:] if n < len(cname) else cname


def classify_child(name: str, mod: nn.Module, layer_cname: str = "") -> tuple[str, str]:
    """(role, kind) of a direct child of a decoder layer, from what the module is.

    role: "mixer" | "mlp" | "norm" | "other";  kind: a short name ("attention", "mla",
    "cross_attention", "mamba", "linear_attention", "short_conv", "dense", "moe", "experts",
    "router", "shared_experts", …). Structure decides where it can (an ``experts`` submodule means
    MoE, ``kv_a_proj_with_mqa`` means MLA, ``A_log`` + ``D`` means Mamba); class names are read
    with the model's prefix removed."""
    cname = type(mod).__name__
    r = _strip_model_prefix(cname, layer_cname).lower()
    sub_names = {n.split(".")[-1] for n, _ in mod.named_modules()}
    pnames = {n.split(".")[-1] for n, _ in mod.named_parameters()}
    nparams = len(list(mod.parameters()))
    if "norm" in r and not has_experts(mod) and nparams <= 2:
        return "norm", cname
    if "kv_a_proj_with_mqa" in sub_names or {"q_a_proj", "kv_a_proj"} <= sub_names:
        return "mixer", "mla"
    if "mamba" in r or name == "mamba" or {"A_log", "D"} <= pnames:
        return "mixer", "mamba"
    if any(x in r for x in ("deltanet", "delta", "lightning", "linearattention", "kda")) or "A_log" in pnames:
        return "mixer", "linear_attention"
    if "shortconv" in r or r.endswith("conv"):
        return "mixer", "short_conv"
    if "crossattention" in r or name.startswith("cross_attn"):
        return "mixer", "cross_attention"
    if "attention" in r or "attn" in r or name in ("self_attn", "attention", "attn"):
        return "mixer", "attention"
    if name == "experts" or r.endswith("experts"):
        return "mlp", "experts"
    if name in ("router", "gate") or "router" in r:
        return "mlp", "router"
    if has_experts(mod):
        return "mlp", "moe"
    if "shared" in name:
        return "mlp", "shared_experts"
    if "mlp" in r or "feedforward" in r or "ffn" in r or name in ("mlp", "feed_forward", "ffn"):
        return "mlp", "dense"
    return "other", cname


ROUTER_RE = re.compile(r"(^|\.)(gate|router|gating|wg)(\.|$)|e_score_correction_bias|expert_bias")
SHARED_RE = re.compile(r"shared_expert|shared_mlp|shared_experts")
EXPERTS_RE = re.compile(r"(^|\.)experts(\.|$)")


def split_moe(mod: nn.Module) -> dict:
    """Split an MoE block's parameters into routed experts / shared experts / router / dense."""
    out = collections.Counter()
    for pname, p in mod.named_parameters():
        if SHARED_RE.search(pname):
            out["shared_experts"] += p.numel()
        elif EXPERTS_RE.search(pname):
            out["experts"] += p.numel()
        elif ROUTER_RE.search(pname) and "gate_proj" not in pname and "gate_up" not in pname:
            out["router"] += p.numel()
        else:
            out["dense"] += p.numel()
    return dict(out)


def count_experts(mod: nn.Module):
    """(num_experts, params_of_one_expert) of an MoE block, from the modules transformers built."""
    for n, m in mod.named_modules():
        if n.split(".")[-1] != "experts":
            continue
        if isinstance(m, nn.ModuleList):
            e = len(m)
            return e, numel(m.parameters()) // e
        # fused experts: every parameter has num_experts as its first dimension
        ps = list(m.parameters(recurse=False)) or list(m.parameters())
        e = getattr(m, "num_experts", None) or (ps[0].shape[0] if ps else None)
        if e:
            total = numel(m.parameters())
            assert total % e == 0, (n, total, e)
            return e, total // e
    return None, None


TOPK_KEYS = ("num_experts_per_tok", "top_k_experts", "num_experts_per_token", "moe_topk", "top_k", "moe_k",
             "experts_per_token", "num_activated_experts")


def topk_of(mod: nn.Module, tcfg):
    for m in [mod] + [x for _, x in mod.named_modules()]:
        for k in ("top_k", "num_experts_per_tok", "topk", "k"):
            v = getattr(m, k, None)
            if isinstance(v, int) and v > 0 and k != "k" or (k == "k" and isinstance(v, int) and v > 0
                                                              and "router" in type(m).__name__.lower()):
                return v, f"{type(m).__name__}.{k}"
    for k in TOPK_KEYS:
        v = getattr(tcfg, k, None)
        if isinstance(v, int) and v > 0:
            v2 = v[0] if isinstance(v, (list, tuple)) else v
            return v2, f"config.{k}"
    return None, None


def layer_record(i: int, layer: nn.Module, tcfg) -> dict:
    rec = {"mixer": {}, "mlp": {}, "norms": 0, "other": {}}
    mixers, mlps = [], []
    moe = None
    lc = type(layer).__name__
    router_child = None
    for cname, child in layer.named_children():
        n = numel(child.parameters())
        role, kind = classify_child(cname, child, lc)
        if role == "norm":
            rec["norms"] += n
        elif role == "mixer":
            rec["mixer"][kind] = rec["mixer"].get(kind, 0) + n
            mixers.append(kind)
        elif role == "mlp":
            if kind == "moe":
                for k, v in split_moe(child).items():
                    rec["mlp"][k] = rec["mlp"].get(k, 0) + v
                e, per = count_experts(child)
                k_, ksrc = topk_of(child, tcfg)
                moe = {"module": cname, "num_experts": e, "params_per_expert": per,
                       "top_k": k_, "top_k_from": ksrc}
                mlps.append("moe")
            elif kind in ("experts", "router", "shared_experts"):
                # MoE parts held directly by the layer (Gemma-4: layer.router, layer.experts)
                rec["mlp"][kind] = rec["mlp"].get(kind, 0) + n
                if kind == "experts":
                    e, per = count_experts(layer)
                    moe = dict(moe or {}, module=cname, num_experts=e, params_per_expert=per)
                    mlps.append("moe")
                elif kind == "router":
                    router_child = child
            else:
                rec["mlp"]["dense"] = rec["mlp"].get("dense", 0) + n
                mlps.append("mlp")
        elif n:
            rec["other"][cname] = {"class": kind, "params": n}
    if moe is not None and "top_k" not in moe:
        k_, ksrc = topk_of(router_child if router_child is not None else layer, tcfg)
        moe.update(top_k=k_, top_k_from=ksrc)
    direct = numel(layer.parameters(recurse=False))
    if direct:
        rec["other"]["<direct parameters>"] = {"class": lc, "params": direct}
    rec["total"] = numel(layer.parameters())
    kinds = mixers + mlps
    rec["kind"] = "+".join(kinds) if kinds else "none"
    rec["class"] = lc
    if moe:
        rec["moe"] = moe
    return rec


def tensor_list(mod: nn.Module) -> list:
    return [[n, list(p.shape)] for n, p in mod.named_parameters()]


def account(model, cfg) -> dict:
    tcfg = text_config_of(cfg)
    layers_path, layers = find_decoder_layers(model, tcfg)

    # unique parameters (tied ones once), with the module owning each
    seen = {}
    for name, p in model.named_parameters():  # remove_duplicate=True by default
        seen[name] = p
    total = sum(p.numel() for p in seen.values())

    in_emb = model.get_input_embeddings()
    out_emb = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    tied = bool(out_emb is not None and in_emb is not None and out_emb.weight is in_emb.weight)
    module_of = {}
    for mname, mod in model.named_modules():
        for pname, p in mod.named_parameters(recurse=False):
            module_of.setdefault(f"{mname}.{pname}" if mname else pname, (mname, mod))
    emb_names = {n for n, m in model.named_modules() if m is in_emb}
    head_names = {n for n, m in model.named_modules() if out_emb is not None and m is out_emb}
    text_root = layers_path.rsplit(".", 1)[0] if "." in layers_path else ""

    comp = collections.Counter()
    other = collections.Counter()
    vision_detail = collections.Counter()
    audio_detail = collections.Counter()
    embed_detail = collections.Counter()
    for name, p in seen.items():
        mname, mod = module_of.get(name, ("", None))
        n = p.numel()
        if name.startswith(layers_path + "."):
            continue  # decoder layers, accounted below
        low = name.lower()
        if mname in head_names:
            comp["lm_head"] += n
        elif mname in emb_names:
            comp["embed"] += n
            embed_detail[name] += n
        elif has_word(name, PROJECTOR_WORDS):
            comp["projector"] += n
        elif has_word(name, AUDIO_WORDS):
            comp["audio"] += n
            audio_detail[".".join(name.split(".")[:3])] += n
        elif has_word(name, VISION_WORDS):
            comp["vision"] += n
            vision_detail[".".join(name.split(".")[:3])] += n
        elif has_word(name, MTP_WORDS):
            comp["mtp"] += n
        elif isinstance(mod, nn.Embedding):
            # further embedding tables of the text model (Gemma-3n / Gemma-4 per-layer inputs)
            key = "embed_per_layer" if "per_layer" in low else "embed_other"
            comp[key] += n
            embed_detail[name] += n
        elif mname.startswith(text_root) and mname.count(".") == text_root.count(".") + (1 if text_root else 0) \
                and "norm" in type(mod).__name__.lower():
            comp["final_norm"] += n
        else:
            comp["other"] += n
            other[name] += n

    layer_recs = [layer_record(i, layer, tcfg) for i, layer in enumerate(layers)]
    comp["layers"] = sum(r["total"] for r in layer_recs)

    # group identical layers; one tensor list per distinct layer signature
    groups = collections.OrderedDict()
    for i, (layer, r) in enumerate(zip(layers, layer_recs)):
        tl = tensor_list(layer)
        sig = json.dumps([r["kind"], tl])
        if sig not in groups:
            groups[sig] = {"kind": r["kind"], "class": r["class"], "layers": [], "params_per_layer": r["total"],
                           "mixer": r["mixer"], "mlp": r["mlp"], "norms": r["norms"], "other": r["other"],
                           "moe": r.get("moe"), "tensors": tl}
        groups[sig]["layers"].append(i)
    layer_groups = []
    for g in groups.values():
        if g["moe"] is None:
            g.pop("moe")
        if not g["other"]:
            g.pop("other")
        layer_groups.append(g)

    assert sum(comp.values()) == total, (dict(comp), total)

    # active parameters per token
    active = None
    moe_layers = [r for r in layer_recs if "moe" in r]
    if moe_layers:
        unused = 0
        ok = True
        for r in moe_layers:
            m = r["moe"]
            if not (m["num_experts"] and m["top_k"] and m["params_per_expert"]):
                ok = False
                break
            unused += (m["num_experts"] - m["top_k"]) * m["params_per_expert"]
        if ok:
            active = {
                "params_active": total - unused - comp.get("vision", 0) - comp.get("audio", 0)
                - comp.get("projector", 0) - comp.get("mtp", 0),
                "params_active_including_towers_and_mtp": total - unused,
                "formula": "params_total - sum over MoE layers of (num_experts - top_k) * params_of_one_expert"
                           " (params_active also leaves out vision/audio towers, projector and MTP layers;"
                           " the input embedding table and lm_head are counted whole)",
                "moe_layers": len(moe_layers),
                "unused_routed_params": unused,
            }

    return {
        "params_total": total,
        "tied": tied,
        "components": {k: v for k, v in comp.items()},
        "embed_tensors": dict(embed_detail),
        "vision_detail": dict(vision_detail) or None,
        "audio_detail": dict(audio_detail) or None,
        "other_params": dict(other) or None,
        "decoder_layers_path": layers_path,
        "num_layers_built": len(layers),
        "layer_types": [r["kind"] for r in layer_recs],
        "layer_groups": layer_groups,
        "active": active,
        "_layers": layers,
        "_layer_recs": layer_recs,
    }


# --------------------------------------------------------------------------------------------
# cache measurement
# --------------------------------------------------------------------------------------------

def cache_tensors(obj, path="cache", out=None, seen=None, depth=0):
    """Every tensor reachable from a cache object: [(path, tensor)], each tensor once."""
    if out is None:
        out, seen = [], set()
    if depth > 8 or obj is None:
        return out
    if isinstance(obj, torch.Tensor):
        if id(obj) not in seen:
            seen.add(id(obj))
            out.append((path, obj))
        return out
    if isinstance(obj, (list, tuple)):
        for i, x in enumerate(obj):
            cache_tensors(x, f"{path}[{i}]", out, seen, depth + 1)
        return out
    if isinstance(obj, dict):
        for k, x in obj.items():
            cache_tensors(x, f"{path}[{k!r}]", out, seen, depth + 1)
        return out
    if isinstance(obj, (int, float, str, bool, torch.dtype, torch.device)):
        return out
    if hasattr(obj, "__dict__") and not isinstance(obj, nn.Module):
        for k, x in vars(obj).items():
            cache_tensors(x, f"{path}.{k}", out, seen, depth + 1)
    return out


def layer_index(path: str):
    m = re.search(r"\.layers\[(\d+)\]", path) or re.search(r"\[(\d+)\]", path)
    return int(m.group(1)) if m else None


def summarize_cache(cache) -> dict:
    ts = cache_tensors(cache)
    per_layer = collections.OrderedDict()
    total = 0
    book = 0
    dtypes = collections.Counter()
    for path, t in ts:
        if t.numel() == 0:
            continue
        b = t.numel() * t.element_size()
        if not (t.is_floating_point() or t.is_complex()):
            # integer scalars the cache keeps for its own bookkeeping (sliding-window size,
            # cumulative lengths): reported apart, not part of the state per token/sequence
            book += b
            continue
        total += b
        dtypes[str(t.dtype).replace("torch.", "")] += b
        li = layer_index(path)
        key = li if li is not None else path
        field = re.sub(r"^cache\.layers\[\d+\]\.?", "", path) or path
        per_layer.setdefault(key, {})[field] = {"shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", ""),
                                                "bytes": b}
    return {"bytes": total, "bookkeeping_bytes": book, "dtype_bytes": dict(dtypes), "per_layer": per_layer,
            "cache_class": type(cache).__name__}


class Passthrough(nn.Module):
    """Stands in for an MLP / MoE block during the cache run: returns its input unchanged.

    MLPs never touch the cache, and MoE routing is data-dependent (nonzero/where), which meta
    tensors cannot run."""

    tuple_out = False  # set where the decoder layer unpacks (hidden, router_logits) from its MoE block (Llama-4)

    def __init__(self, orig, kind="dense"):
        super().__init__()
        self.orig_class = type(orig).__name__
        self.kind = kind

    def forward(self, hidden_states=None, *args, **kwargs):
        if hidden_states is None:
            hidden_states = kwargs.get("x", args[0] if args else None)
        return (hidden_states, None) if Passthrough.tuple_out and self.kind == "moe" else hidden_states


def stub_mlps(layers, recs):
    stubbed = []
    for li, (layer, r) in enumerate(zip(layers, recs)):
        for cname, child in list(layer.named_children()):
            role, kind = classify_child(cname, child, type(layer).__name__)
            if role == "mlp" and kind in ("dense", "moe", "shared_experts", "experts"):
                setattr(layer, cname, Passthrough(child, kind))
                stubbed.append(f"{li}.{cname}:{type(child).__name__}")
    return stubbed


def forward_cache(model, prompt_len: int, decode_steps: int, cfg):
    dev = torch.device("meta")
    ids = torch.zeros(1, prompt_len, dtype=torch.long, device=dev)
    kwargs = {}
    sig = model.forward.__code__.co_varnames
    if "logits_to_keep" in sig:
        kwargs["logits_to_keep"] = 1
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=True, **kwargs)
        pkv = out.past_key_values
        for s in range(decode_steps):
            nid = torch.zeros(1, 1, dtype=torch.long, device=dev)
            pos = torch.tensor([prompt_len + s], device=dev)
            out = model(input_ids=nid, past_key_values=pkv, use_cache=True, cache_position=pos, **kwargs)
            pkv = out.past_key_values
    return pkv


def windows_of(tcfg):
    w = {}
    for k in ("sliding_window", "attention_chunk_size", "window_size", "local_window_size"):
        v = getattr(tcfg, k, None)
        if isinstance(v, int) and v > 0:
            w[k] = v
    lt = getattr(tcfg, "layer_types", None)
    uses = None
    if isinstance(lt, (list, tuple)):
        uses = any(isinstance(x, str) and ("sliding" in x or "chunked" in x or "local" in x) for x in lt)
    if getattr(tcfg, "use_sliding_window", None) is False and not uses:
        w["sliding_window_disabled_by_use_sliding_window_false"] = True
    return w, uses


def measure_cache(model, cfg, acc, timeout_s: int) -> dict:
    tcfg = text_config_of(cfg)
    stubbed = stub_mlps(acc["_layers"], acc["_layer_recs"])
    res = {"method": f"meta-device forward, use_cache=True, batch 1, prompt of N tokens then {DECODE_STEPS} decode "
                     f"step(s); bytes = sum over every tensor reachable from the returned cache of numel x "
                     f"element_size; MLP/MoE blocks replaced by identity for this run (they do not touch "
                     f"the cache)",
           "mlp_blocks_stubbed": len(stubbed)}
    wins, uses = windows_of(tcfg)
    res["windows"] = wins or None
    lens = list(SEQ_LENS)
    wmax = max([v for k, v in wins.items() if isinstance(v, int) and not isinstance(v, bool)] or [0])
    if wmax and (uses is not False) and wmax + 64 <= MAX_LONG_LEN:
        lens.append(wmax + 64)
    sizes = {}
    details = {}
    # transformers' mask code checks position_ids for packed sequences with `.all()`, a data-dependent
    # test meta tensors cannot answer; a single unpadded sequence is never packed
    import transformers.masking_utils as mu
    orig_fpsi = mu.find_packed_sequence_indices
    mu.find_packed_sequence_indices = lambda *a, **k: None
    Passthrough.tuple_out = False
    try:
        with time_limit(timeout_s):
            try:
                forward_cache(model, SEQ_LENS[0], 0, cfg)
            except ValueError as e:
                if "unpack" not in str(e):
                    raise
                Passthrough.tuple_out = True
                res["mlp_stub_returns_tuple"] = True
            _measure_lengths(model, cfg, lens, sizes, details)
    finally:
        mu.find_packed_sequence_indices = orig_fpsi
        Passthrough.tuple_out = False
    return _finish(res, lens, sizes, details)


def _measure_lengths(model, cfg, lens, sizes, details):
    for L in lens:
        pkv = forward_cache(model, L, DECODE_STEPS, cfg)
        s = summarize_cache(pkv)
        n_tokens = L + DECODE_STEPS
        sizes[n_tokens] = s["bytes"]
        details[n_tokens] = s
        del pkv


def _finish(res, lens, sizes, details):
    a, b = [L + DECODE_STEPS for L in SEQ_LENS]
    per_tok = (sizes[b] - sizes[a]) / (b - a)
    const = sizes[a] - per_tok * a
    res["bytes_at_tokens"] = {str(k): v for k, v in sizes.items()}
    res["bytes_per_token_below_window"] = per_tok
    res["bytes_per_sequence_constant"] = const
    res["cache_class"] = details[a]["cache_class"]
    res["bookkeeping_bytes_not_counted"] = details[b]["bookkeeping_bytes"]
    res["dtype_bytes_at_%d" % b] = details[b]["dtype_bytes"]
    # per layer: bytes per token and constant bytes, from the two short lengths
    pl = {}
    for key in details[b]["per_layer"]:
        ba = sum(v["bytes"] for v in details[a]["per_layer"].get(key, {}).values())
        bb = sum(v["bytes"] for v in details[b]["per_layer"].get(key, {}).values())
        ptl = (bb - ba) / (b - a)
        entry = {"bytes_per_token": ptl, "bytes_constant": ba - ptl * a,
                 "tensors_at_%d" % b: {f: [v["shape"], v["dtype"]] for f, v in details[b]["per_layer"][key].items()}}
        if len(lens) > 2:
            c = lens[-1] + DECODE_STEPS
            entry["bytes_at_%d" % c] = sum(v["bytes"] for v in details[c]["per_layer"].get(key, {}).values())
        pl[str(key)] = entry
    res["per_layer"] = pl
    if len(lens) > 2:
        c = lens[-1] + DECODE_STEPS
        res["long_tokens"] = c
        res["bytes_at_long"] = sizes[c]
    return res


# --------------------------------------------------------------------------------------------
# hand-worked cache per token, from the config alone (transformers' storage convention)
# --------------------------------------------------------------------------------------------

def hand_cache(cfg, acc, dtype_bytes=2) -> dict | None:
    """Bytes per token of the growing (attention) cache as transformers stores it, worked from the
    config alone, for comparison with the measured figure below the sliding window.

    Per attention layer: num_key_value_heads x (head_dim for K + head_dim for V) x bytes, where the
    config gives per-layer geometry it is used: transformers' per_layer_config[i] (Gemma-4), sliding layers with swa_num_key_value_heads /
    swa_head_dim / swa_v_head_dim (MiMo-V2), full layers with num_global_key_value_heads /
    global_head_dim (Gemma-4), V with v_head_dim where a non-MLA config has one.
    MLA (DeepSeek-V2/V3 style): transformers 5.x caches the compressed latent, one "head":
      kv_lora_rank + qk_rope_head_dim elements per token, plus index_head_dim for the DSA
      indexer's keys where the config has one (DeepSeek-V3.2, GLM-5).
    The last num_kv_shared_layers layers (Gemma-3n, Gemma-4 E-models) reuse earlier layers' cache: 0.
    Layers without attention (Mamba, linear attention, short conv) add nothing per token.
    """
    tcfg = text_config_of(cfg)
    types = acc["layer_types"]

    def get(k, default=None):
        try:
            v = getattr(tcfg, k, default)
        except Exception:  # noqa: BLE001  (Gemma-4 raises on ambiguous per-layer attributes)
            return default
        return default if v is None else v

    h = get("num_attention_heads")
    kvh = get("num_key_value_heads") or h
    hd = get("head_dim") or (tcfg.hidden_size // h if h else None)
    lt = get("layer_types")
    lt = list(lt) if isinstance(lt, (list, tuple)) else None
    shared = get("num_kv_shared_layers", 0) or 0
    n = len(types)
    per = 0
    terms = collections.Counter()
    for i, t in enumerate(types):
        parts = t.split("+")
        if shared and i >= n - shared and ("attention" in parts or "mla" in parts):
            terms["kv-shared layer: 0"] += 1
            continue
        if "mla" in parts:
            rank = get("kv_lora_rank", 0)
            rope = get("qk_rope_head_dim", 0)
            idx = get("index_head_dim", 0)
            per += (rank + rope + idx) * dtype_bytes
            terms[f"MLA: (kv_lora_rank {rank} + qk_rope_head_dim {rope}"
                  + (f" + index_head_dim {idx}" if idx else "") + f") x {dtype_bytes} B"] += 1
        elif "attention" in parts:
            ltype = lt[i] if lt and i < len(lt) and isinstance(lt[i], str) else "full_attention"
            sliding = any(w in ltype for w in ("sliding", "chunk", "local"))
            lc = None
            try:  # heterogeneous configs (Gemma-4 in transformers 5.x) keep geometry per layer
                lc = tcfg.per_layer_config[i]
            except Exception:  # noqa: BLE001
                lc = None
            if sliding and get("swa_num_key_value_heads"):
                kv, kd = get("swa_num_key_value_heads"), get("swa_head_dim") or hd
                vd = get("swa_v_head_dim") or kd
            elif lc is not None and getattr(lc, "num_key_value_heads", None) and getattr(lc, "head_dim", None):
                kv, kd = lc.num_key_value_heads, lc.head_dim
                vd = getattr(lc, "v_head_dim", None) or kd
            elif not sliding and get("num_global_key_value_heads"):
                kv, kd = get("num_global_key_value_heads"), get("global_head_dim") or hd
                vd = kd
            else:
                kv, kd = kvh, hd
                vd = get("v_head_dim") or hd
            per += kv * (kd + vd) * dtype_bytes
            terms[f"{ltype}: {kv} kv heads x (K {kd} + V {vd}) x {dtype_bytes} B"] += 1
    if not terms:
        return {"bytes_per_token": 0, "formula": "no attention layers"}
    return {"bytes_per_token": per,
            "formula": " + ".join(f"{c} x [{t}]" for t, c in terms.items()),
            "note": "from the config alone; layers counted as attention / MLA by what transformers built "
                    "(layer_types); sliding layers count in full below their window"}


# --------------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------------

def run_one(path: str, source: dict | None, timeout_s: int, do_cache: bool) -> dict:
    raw = json.load(open(path))
    rec = {"model_type": raw.get("model_type"), "architectures": raw.get("architectures")}
    if source:
        rec["source"] = source.get("source")
    t0 = time.time()
    try:
        cfg, notes = load_config(raw)
        cls, how = model_class_for(cfg, raw)
        arch0 = (raw.get("architectures") or [None])[0]
        if arch0 and not hasattr(transformers, arch0):
            notes.append(f"architectures[0] = {arch0} is not a transformers class; built {how} from the "
                         f"config class instead, which may not be the published checkpoint's layout")
        rec["config_notes"] = notes
        rec["model_class"] = how
        with time_limit(timeout_s):
            model = build(cfg, cls)
        rec["attn_implementation"] = getattr(model.config, "_attn_implementation", None)
    except Exception as e:  # noqa: BLE001
        rec["status"] = "failed_build"
        rec["error"] = f"{type(e).__name__}: {e}"[:2000]
        rec["traceback_tail"] = traceback.format_exc()[-1500:]
        return rec
    rec["build_s"] = round(time.time() - t0, 2)
    acc = account(model, cfg)
    layers, recs = acc.pop("_layers"), acc.pop("_layer_recs")
    rec.update(acc)
    rec["status"] = "counted"
    tcfg = text_config_of(cfg)
    for k in ("num_nextn_predict_layers", "mtp_num_layers", "num_mtp_layers", "num_mtp_modules"):
        v = getattr(tcfg, k, None) or raw.get(k) or (raw.get("text_config") or {}).get(k)
        if isinstance(v, int) and v > 0 and not acc["components"].get("mtp"):
            rec.setdefault("notes", []).append(
                f"config has {k}={v} but transformers builds no MTP layer: params_total excludes them "
                f"(a checkpoint may store them)")
    rec["cache_dtype"] = "bfloat16 (model built in bf16; per-tensor dtypes in cache.dtype_bytes)"
    try:
        rec["hand_cache_per_token"] = hand_cache(cfg, acc)
    except Exception as e:  # noqa: BLE001
        rec["hand_cache_per_token"] = None
        rec["hand_cache_error"] = f"{type(e).__name__}: {e}"[:500]
    if do_cache:
        acc["_layers"], acc["_layer_recs"] = layers, recs
        t1 = time.time()
        try:
            rec["cache"] = measure_cache(model, cfg, acc, timeout_s)
            rec["status"] = "counted+cache"
        except Exception as e:  # noqa: BLE001
            rec["cache"] = None
            rec["cache_error"] = f"{type(e).__name__}: {e}"[:2000]
            rec["cache_traceback_tail"] = traceback.format_exc()[-2500:]
        rec["cache_s"] = round(time.time() - t1, 2)
        hc = rec["hand_cache_per_token"]
        if rec.get("cache") and hc is not None:
            rec["hand_cache_matches_measured"] = abs(hc["bytes_per_token"] - rec["cache"]["bytes_per_token_below_window"]) < 0.5
    del model
    gc.collect()
    return rec


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default="tests/data/hf-configs")
    ap.add_argument("--sources", default=None, help="sources.json manifest (file -> {source, …})")
    ap.add_argument("--out", default="tests/data/transformers-counts.json")
    ap.add_argument("--only", default=None, help="comma-separated file stems")
    ap.add_argument("--skip", default=None)
    ap.add_argument("--no-cache", action="store_true")
    ap.add_argument("--timeout-s", type=int, default=300)
    args = ap.parse_args()

    files = sorted(f for f in os.listdir(args.configs)
                   if f.endswith(".json") and f not in ("param_counts.json", "sources.json"))
    if args.only:
        want = set(args.only.split(","))
        files = [f for f in files if f[:-5] in want or f in want]
    if args.skip:
        skip = set(args.skip.split(","))
        files = [f for f in files if f[:-5] not in skip and f not in skip]
    sources = json.load(open(args.sources)) if args.sources and os.path.exists(args.sources) else {}

    if os.path.exists(args.out):
        doc = json.load(open(args.out))
    else:
        doc = {"meta": {}, "models": {}}
    doc["meta"] = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "date": now_utc(),
        "command": "python3 tests/measure/count_params.py " + " ".join(sys.argv[1:]),
        "device": "meta (no weights allocated)",
        "param_dtype": "bfloat16",
        "format": "see tests/measure/README.md",
    }
    for f in files:
        t0 = time.time()
        print(f"== {f}", flush=True)
        try:
            rec = run_one(os.path.join(args.configs, f), sources.get(f), args.timeout_s, not args.no_cache)
        except Exception as e:  # noqa: BLE001
            rec = {"status": "failed", "error": f"{type(e).__name__}: {e}"[:2000],
                   "traceback_tail": traceback.format_exc()[-2000:]}
        rec["measured_with"] = {"transformers": transformers.__version__, "torch": torch.__version__}
        doc["models"][f] = rec
        c = rec.get("cache") or {}
        print(f"   {rec['status']}: total={rec.get('params_total')} active={(rec.get('active') or {}).get('params_active')}"
              f" cache/token={c.get('bytes_per_token_below_window')} const={c.get('bytes_per_sequence_constant')}"
              f" hand={ (rec.get('hand_cache_per_token') or {}).get('bytes_per_token')}"
              f" {rec.get('error') or rec.get('cache_error') or ''}"[:600]
              + f" ({time.time() - t0:.1f}s)", flush=True)
        doc["models"] = dict(sorted(doc["models"].items()))
        with open(args.out + ".tmp", "w") as fh:
            json.dump(doc, fh, indent=1, sort_keys=False)
            fh.write("\n")
        os.replace(args.out + ".tmp", args.out)


if __name__ == "__main__":
    main()
