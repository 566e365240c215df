#!/usr/bin/env python3
"""Follow-up measurements that explain residuals of measure_memory.py (see core/docs/ACCURACY.md).

1. What a model allocates beyond its parameters right after the build (gemma-3-1b, DeepSeek-V2-Lite):
   every live CUDA tensor that is neither a parameter nor a registered buffer, before and after
   gc.collect().
2. Mixtral: prefill vs generate peak (generate(max_new_tokens=1), one manual decode step).
3. AdamW step temporaries: foreach (default) vs fused=True vs foreach=False on bf16 Llama-3.2-1B.
4. LoRA adapters in fp32 (peft default) vs in bf16 (autocast_adapter_dtype=False).

Writes one JSON (incrementally); every probe in try/except.
"""

import argparse
import gc
import json
import os
import time
import traceback

import torch

import measure_memory as mm

MIB = 2 ** 20


def live_cuda_tensors():
    out = {}
    for o in gc.get_objects():
        try:
            if isinstance(o, torch.Tensor) and o.is_cuda:
                s = o.untyped_storage()
                out[s.data_ptr()] = (s.nbytes(), tuple(o.shape), str(o.dtype))
        except Exception:  # noqa: BLE001 - some objects refuse inspection
            pass
    return out


def extras(model, label):
    owned = set()
    for t in list(model.parameters()) + list(model.buffers()):
        owned.add(t.untyped_storage().data_ptr())
    live = live_cuda_tensors()
    rest = [(v[0], v[1], v[2]) for k, v in live.items() if k not in owned]
    rest.sort(reverse=True)
    before_gc = torch.cuda.memory_allocated()
    gc.collect()
    after_gc = torch.cuda.memory_allocated()
    return dict(label=label, unowned_tensor_bytes=sum(r[0] for r in rest),
                unowned_top=[dict(bytes=r[0], shape=list(r[1]), dtype=r[2]) for r in rest[:12]],
                allocated_before_gc=before_gc, allocated_after_gc=after_gc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--probes", default="weights,mixtral,adamw,lora",
                    help="comma-separated: weights, mixtral, adamw, lora, mixtral_snapshot, eager_qwen")
    ap.add_argument("--snapshot", default="", help="where mixtral_snapshot writes its pickle")
    args = ap.parse_args()
    want = set(args.probes.split(","))
    res = {"meta": mm.meta(), "probes": []}

    def save():
        with open(args.out + ".tmp", "w") as f:
            json.dump(res, f, indent=1)
        os.replace(args.out + ".tmp", args.out)

    def probe(name, fn):
        t = time.time()
        try:
            r = fn()
            r["status"] = "ok"
        except Exception as e:  # noqa: BLE001
            r = mm.err(e)
        r["probe"] = name
        r["seconds"] = round(time.time() - t, 1)
        res["probes"].append(r)
        mm.log(name, json.dumps(r)[:1500])
        save()
        mm.clean()

    case_by_id = {c["id"]: c for c in mm.CASES}

    # 1. weights extras
    def weights_extra(cid, layers):
        def run():
            cfg, _ = mm.make_config_dict(args.fixtures, case_by_id[cid], layers)
            base = torch.cuda.memory_allocated()
            model, info = mm.build(cfg, "sdpa")
            r = extras(model, cid)
            r["base_allocated"] = base
            r["build"] = {k: info[k] for k in ("params", "param_bytes", "weights_allocated_bytes",
                                               "buffer_bytes")}
            r["allocated_over_params_after_gc"] = r["allocated_after_gc"] - base - info["param_bytes"]
            del model
            return r
        return run

    if "weights" in want:
        probe("weights_extra_gemma3", weights_extra("gemma-3-1b", None))
        probe("weights_extra_deepseek", weights_extra("deepseek-v2-lite-l8", 8))
        probe("weights_extra_llama32", weights_extra("llama-3.2-1b", None))

    # 2. Mixtral prefill vs generate
    def mixtral():
        cfg, _ = mm.make_config_dict(args.fixtures, case_by_id["mixtral-8x7b-l4"], 4)
        model, _ = mm.build(cfg, "sdpa")
        model.eval()
        model.generation_config.eos_token_id = None
        out = {}
        v = cfg["vocab_size"]
        for (b, L) in ((1, 2048), (4, 2048)):
            ids = torch.randint(0, v, (b, L), device="cuda")
            mask = torch.ones_like(ids)
            for label, kw in (("forward_keep1_mask", dict(attention_mask=mask, logits_to_keep=1)),
                              ("forward_keep1_nomask", dict(logits_to_keep=1)),
                              ("forward_keep1_nocache", dict(attention_mask=mask, logits_to_keep=1,
                                                             use_cache=False))):
                mm.clean()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
                with torch.inference_mode():
                    o = model(input_ids=ids, **kw)
                torch.cuda.synchronize()
                out[f"b{b}_L{L}_{label}"] = (torch.cuda.max_memory_allocated() - base) / MIB
                # one decode step on top of the prefill cache
                if label == "forward_keep1_mask":
                    pkv = o.past_key_values
                    nxt = torch.randint(0, v, (b, 1), device="cuda")
                    m2 = torch.ones((b, L + 1), dtype=mask.dtype, device="cuda")
                    torch.cuda.reset_peak_memory_stats()
                    base2 = torch.cuda.memory_allocated()
                    with torch.inference_mode():
                        model(input_ids=nxt, attention_mask=m2, past_key_values=pkv, logits_to_keep=1)
                    torch.cuda.synchronize()
                    out[f"b{b}_L{L}_decode_step_over_prefill_state"] = (
                        torch.cuda.max_memory_allocated() - base2) / MIB
                del o
            for n in (1, 2):
                mm.clean()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
                with torch.inference_mode():
                    model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n,
                                   do_sample=False, pad_token_id=0)
                torch.cuda.synchronize()
                out[f"b{b}_L{L}_generate_{n}"] = (torch.cuda.max_memory_allocated() - base) / MIB
            del ids, mask
        out["experts_implementation"] = getattr(model.config, "_experts_implementation", None)
        del model
        return {"peaks_mib": out}

    if "mixtral" in want:
        probe("mixtral_prefill_vs_generate", mixtral)

    def mixtral_snapshot():
        # Which allocations are alive at the peak of generate(max_new_tokens=2), with stacks.
        cfg, _ = mm.make_config_dict(args.fixtures, case_by_id["mixtral-8x7b-l4"], 4)
        model, _ = mm.build(cfg, "sdpa")
        model.eval()
        model.generation_config.eos_token_id = None
        ids = torch.randint(0, cfg["vocab_size"], (1, 2048), device="cuda")
        mask = torch.ones_like(ids)
        mm.clean()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        torch.cuda.memory._record_memory_history(max_entries=200000)
        with torch.inference_mode():
            model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=2, do_sample=False,
                           pad_token_id=0)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
        snap = torch.cuda.memory._snapshot()
        torch.cuda.memory._record_memory_history(enabled=None)
        # Replay the trace: find the moment of the largest live total and list what was alive.
        live, total, best, best_live = {}, 0, 0, {}
        for ev in snap["device_traces"][0]:
            a, sz = ev["addr"], ev["size"]
            if ev["action"] == "alloc":
                live[a] = ev
                total += sz
                if total > best:
                    best, best_live = total, dict(live)
            elif ev["action"] in ("free_requested", "free_completed") and a in live:
                if ev["action"] == "free_requested":
                    total -= live.pop(a)["size"]
        top = sorted(best_live.values(), key=lambda e: -e["size"])[:25]

        def frames(e):
            fr = [f"{f['filename'].split('/')[-1]}:{f['line']}:{f['name']}" for f in e.get("frames", [])
                  if "torch/" not in f["filename"] or "transformers" in f["filename"]]
            return fr[:8]
        if args.snapshot:
            import pickle
            with open(args.snapshot, "wb") as f:
                pickle.dump(snap, f)
        del model
        return dict(peak_mib=peak / MIB, trace_peak_live_mib=best / MIB,
                    top=[dict(mib=e["size"] / MIB, frames=frames(e)) for e in top])

    if "mixtral_snapshot" in want:
        probe("mixtral_snapshot", mixtral_snapshot)

    def eager_qwen():
        cfg, _ = mm.make_config_dict(args.fixtures, case_by_id["qwen2.5-0.5b"], None)
        model, _ = mm.build(cfg, "eager")
        model.eval()
        out = []
        for (b, L) in ((1, 2048), (1, 4096)):
            r = mm.prefill(model, cfg["vocab_size"], b, L, 1)
            out.append(dict(batch=b, context=L, peak_mib=r["peak_over_weights_bytes"] / MIB,
                            kv_mib=r["cache"]["storage_nbytes"] / MIB))
        del model
        return dict(heads=cfg["num_attention_heads"], prefill=out)

    if "eager_qwen" in want:
        probe("eager_qwen", eager_qwen)

    # 3. AdamW variants, 4. LoRA adapter dtype
    def adamw_variants():
        cfg, _ = mm.make_config_dict(args.fixtures, case_by_id["llama-3.2-1b"], None)
        model, info = mm.build(cfg, "sdpa")
        model.train()
        v = cfg["vocab_size"]
        ids = torch.randint(0, v, (2, 1024), device="cuda")
        out = {}
        for label, kw in (("foreach_default", {}), ("fused", dict(fused=True)),
                          ("for_loop", dict(foreach=False))):
            opt = torch.optim.AdamW(model.parameters(), lr=1e-5, **kw)
            mm.clean()
            base = torch.cuda.memory_allocated()
            steps = []
            for _ in range(2):
                o = model(input_ids=ids, labels=ids, use_cache=False)
                o.loss.backward()
                del o
                torch.cuda.reset_peak_memory_stats()
                before_step = torch.cuda.memory_allocated() - base
                opt.step()
                torch.cuda.synchronize()
                steps.append(dict(before_step=before_step / MIB,
                                  step_peak=(torch.cuda.max_memory_allocated() - base) / MIB,
                                  after_step=(torch.cuda.memory_allocated() - base) / MIB))
                opt.zero_grad(set_to_none=True)
            out[label] = dict(steps=steps, param_mib=info["param_bytes"] / MIB)
            del opt
            mm.clean()
        del model
        return out

    if "adamw" in want:
        probe("adamw_variants_llama32", adamw_variants)

    def lora_dtype():
        out = {}
        for autocast in (True, False):
            cfg, _ = mm.make_config_dict(args.fixtures, case_by_id["llama-3.2-1b"], None)
            model, _ = mm.build(cfg, "sdpa")
            for p in model.parameters():
                p.requires_grad_(False)
            lcfg = mm.peft.LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0,
                                      target_modules=mm.lora_targets(model), task_type="CAUSAL_LM")
            pm = mm.peft.get_peft_model(model, lcfg, autocast_adapter_dtype=autocast)
            r = mm.train_steps(pm, cfg["vocab_size"], 2, 1024, f"lora_autocast_{autocast}", False,
                               autocast=False)
            out[f"autocast_adapter_dtype_{autocast}"] = dict(
                trainable_dtypes=r["trainable_dtypes"],
                after_forward_mib=r["steps"][1]["after_forward_bytes"] / MIB,
                peak_mib=r["peak_over_base_bytes"] / MIB)
            del pm, model
            mm.clean()
        return out

    if "lora" in want:
        probe("lora_adapter_dtype_llama32", lora_dtype)
    res["meta"]["wall_seconds"] = round(time.time() - mm.T0, 1)
    save()


if __name__ == "__main__":
    try:
        main()
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        raise
