//! Golden test: headroom's counts equal transformers' own, to the parameter, for every config
//! committed under `tests/data/hf-configs` that `tests/data/transformers-counts.json` measured
//! (transformers builds each model on the meta device and counts `numel()` of every parameter;
//! `tests/measure/README.md` describes the file).
//!
//! For every model headroom calls exact ([`ModelSpec::exact`]): `params_total`, `params_active`
//! and each component (embedding, decoder layers + final norm, output head, vision tower,
//! projector, audio tower) must be equal, every layer must have a MoE block exactly where
//! transformers built one, and the cache transformers measured per token and per sequence must
//! equal headroom's for the transformers runtime in bf16. A model headroom does not
//! count exactly must say so (approximations, or a refusal naming the field) and be listed in
//! [`KNOWN_GAPS`] with the reason, so a new gap cannot appear silently.

use headroom_core::{
    components::components,
    config::{VISION_TOWER_ONLY, model_from_config_json},
    kv_cache::{KvDtype, kv_cache_bytes},
    model::{ComponentKind, Mixer, Mlp, ModelSpec},
    params::param_counts,
    runtime::Runtime,
};
use headroom_tests::{data_dir, fixture_config_text};
use serde_json::Value;

/// Model types headroom does not count exactly yet, with the reason; each such config must be
/// refused or marked approximate.
const KNOWN_GAPS: &[(&str, &str)] = &[
    ("minimax_m3_vl", "MiniMax-M3's vision tower not modelled"),
    ("step3p7", "Step-3.7 layers not modelled"),
    ("nemotron-nas", "heterogeneous DeciLM blocks not modelled"),
];

/// Above this many constant bytes per sequence transformers holds real state, not the 8-byte
/// position counters its sliding-window layers keep (Gemma-3-1B: 22 × 8 = 176 B).
const POSITION_COUNTERS_MAX_BYTES: f64 = 4096.0;

/// `tests/data/transformers-counts.json`.
fn truth() -> Value {
    let path = data_dir().join("transformers-counts.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn component(model: &ModelSpec, kind: ComponentKind) -> u64 {
    components(model)
        .iter()
        .filter(|c| c.kind == kind)
        .map(|c| c.params)
        .sum()
}

/// transformers' component names and the headroom components that make each (its `projector`
/// holds every multimodal projector, Gemma-3n's `embed_audio` included: tests/measure/README.md).
const COMPONENTS: &[(&str, &[ComponentKind])] = &[
    ("lm_head", &[ComponentKind::OutputHead]),
    ("vision", &[ComponentKind::VisionEncoder]),
    (
        "projector",
        &[
            ComponentKind::VisionProjector,
            ComponentKind::AudioProjector,
        ],
    ),
    ("audio", &[ComponentKind::AudioEncoder]),
];

/// Differences between headroom and transformers for one exact model (empty when equal).
fn differences(name: &str, model: &ModelSpec, want: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let counts = param_counts(model);
    let mut check = |what: &str, mine: u64, theirs: u64| {
        if mine != theirs {
            out.push(format!(
                "{name}: {what} {mine} != transformers {theirs} (diff {})",
                mine as i128 - theirs as i128
            ));
        }
    };
    let total = want["params_total"].as_u64().unwrap_or(0);
    check("params_total", counts.total, total);
    if let Some(active) = want["active"]["params_active"].as_u64() {
        check("params_active", counts.active, active);
    }
    let comps = want["components"].as_object().cloned().unwrap_or_default();
    let theirs = |k: &str| comps.get(k).and_then(Value::as_u64).unwrap_or(0);
    check(
        "decoder (layers + final_norm + other)",
        component(model, ComponentKind::Decoder),
        theirs("layers") + theirs("final_norm") + theirs("other"),
    );
    check(
        "embedding (embed + embed_per_layer + embed_other)",
        component(model, ComponentKind::Embedding),
        theirs("embed") + theirs("embed_per_layer") + theirs("embed_other"),
    );
    for (key, kinds) in COMPONENTS {
        let mine: u64 = kinds.iter().map(|k| component(model, *k)).sum();
        check(key, mine, theirs(key));
    }
    for key in comps.keys() {
        let known = [
            "layers",
            "final_norm",
            "other",
            "embed",
            "embed_per_layer",
            "embed_other",
        ]
        .contains(&key.as_str())
            || COMPONENTS.iter().any(|(k, _)| k == key);
        if !known {
            out.push(format!(
                "{name}: transformers component `{key}` has no headroom counterpart"
            ));
        }
    }
    // Layer by layer: where transformers built a MoE block, headroom's layer has one too (and
    // nowhere else).
    // transformers' labeller recognises a MoE block where it computed active parameters; where it
    // did not (Gemma-4's experts sit beside the MLP), its labels say nothing about MoE.
    let moe_recognised = want["active"]["moe_layers"].as_u64().is_some()
        || !model.layers().iter().any(|l| matches!(l.mlp, Mlp::Moe(_)));
    if let Some(kinds) = want["layer_types"].as_array().filter(|_| moe_recognised) {
        let layers = model.layers();
        if kinds.len() != layers.len() {
            out.push(format!(
                "{name}: {} layers != transformers {}",
                layers.len(),
                kinds.len()
            ));
        }
        for (i, (kind, layer)) in kinds.iter().zip(layers.iter()).enumerate() {
            let tokens: Vec<&str> = kind.as_str().unwrap_or_default().split('+').collect();
            let theirs = tokens.contains(&"moe");
            let mine = matches!(layer.mlp, Mlp::Moe(_));
            // Only the MLP is held per layer: transformers' labels of the mixer follow module
            // names (Kimi-Linear's MLA layers are labelled linear_attention), while the mixer's
            // weights are held by the decoder count and its cache by the cache checks. A label
            // naming no MLP at all ("attention+mamba" for gpt-oss's router/experts block) is the
            // labeller not recognising it, not a missing MLP.
            let labelled = theirs || tokens.contains(&"mlp") || matches!(layer.mlp, Mlp::None);
            if labelled && theirs != mine {
                out.push(format!(
                    "{name}: layer {i} is `{kind}` in transformers, headroom has {} + {}",
                    layer.mixer.name(),
                    layer.mlp.name()
                ));
            }
        }
    }
    // Cache: transformers' DynamicCache in bf16, measured below every window.
    let cache = &want["cache"];
    if !affine_cache(model) {
        // DeepSeek-V4's compressor grows in steps (a row per window, a buffer that drains):
        // hold headroom's cache at every token count transformers measured, and its straight
        // line through the two short counts to transformers' (how both were fitted).
        cache_at_tokens(name, model, cache, &mut out);
        return out;
    }
    if let Some(per_token) = cache["bytes_per_token_below_window"].as_f64() {
        let kv = kv_cache_bytes(model, 1, 1, KvDtype::Bf16, Runtime::TransformersCuda);
        if kv.bytes_per_token as f64 != per_token {
            out.push(format!(
                "{name}: cache per token {} != transformers {per_token}",
                kv.bytes_per_token
            ));
        }
        // Compared where either side keeps real state: in a pure attention model transformers'
        // constant bytes are its sliding layers' 8-byte position counters, not model state.
        if let Some(state) = cache["bytes_per_sequence_constant"].as_f64()
            && (kv.state_bytes_per_sequence > 0 || state > POSITION_COUNTERS_MAX_BYTES)
            && kv.state_bytes_per_sequence as f64 != state
        {
            out.push(format!(
                "{name}: state per sequence {} != transformers {state}",
                kv.state_bytes_per_sequence
            ));
        }
    }
    out
}

/// Whether every layer's cache grows by the same bytes each token (below its window): false
/// where a DeepSeek-V4 compressor holds rows per window and a draining buffer.
fn affine_cache(model: &ModelSpec) -> bool {
    !model
        .layers()
        .iter()
        .any(|l| matches!(&l.mixer, Mixer::CompressedAttention(c) if c.compress_ratio > 0))
}

/// headroom's cache after a prefill and one decode step (`steady_bytes`) at `tokens`, for
/// transformers in bf16.
fn steady_at(model: &ModelSpec, tokens: u64) -> u64 {
    kv_cache_bytes(model, tokens, 1, KvDtype::Bf16, Runtime::TransformersCuda).steady_bytes
}

/// Cache differences of a model whose cache is not affine in tokens: the bytes at every
/// measured token count, and the per-token / per-sequence fit through the two shortest.
fn cache_at_tokens(name: &str, model: &ModelSpec, cache: &Value, out: &mut Vec<String>) {
    let Some(at) = cache["bytes_at_tokens"].as_object() else {
        return; // transformers could not run the cache: nothing to hold headroom to
    };
    let mut counts: Vec<(u64, u64)> = at
        .iter()
        .filter_map(|(k, v)| Some((k.parse().ok()?, v.as_u64()?)))
        .collect();
    counts.sort_unstable();
    for &(tokens, theirs) in &counts {
        let mine = steady_at(model, tokens);
        if mine != theirs {
            out.push(format!(
                "{name}: cache at {tokens} tokens {mine} != transformers {theirs} (diff {})",
                mine as i128 - theirs as i128
            ));
        }
    }
    let (Some(&(a, _)), Some(&(b, _))) = (counts.first(), counts.get(1)) else {
        out.push(format!("{name}: fewer than two measured token counts"));
        return;
    };
    let (ya, yb) = (steady_at(model, a) as f64, steady_at(model, b) as f64);
    let per_token = (yb - ya) / (b - a) as f64;
    let constant = ya - per_token * a as f64;
    if Some(per_token) != cache["bytes_per_token_below_window"].as_f64() {
        out.push(format!(
            "{name}: cache per token (fit {a}..{b}) {per_token} != transformers {}",
            cache["bytes_per_token_below_window"]
        ));
    }
    if Some(constant) != cache["bytes_per_sequence_constant"].as_f64() {
        out.push(format!(
            "{name}: state per sequence (fit {a}..{b}) {constant} != transformers {}",
            cache["bytes_per_sequence_constant"]
        ));
    }
}

#[test]
fn every_committed_config_equals_transformers_or_says_why_not() {
    let truth = truth();
    let models = truth["models"].as_object().expect("models");
    assert!(!models.is_empty(), "no models in transformers-counts.json");
    let mut failures = Vec::new();
    let mut exact = 0;
    for (file, want) in models {
        let Some(name) = file.strip_suffix(".json") else {
            failures.push(format!("{file}: not a .json name"));
            continue;
        };
        if want["params_total"].as_u64().is_none() {
            // transformers could not build it: nothing to hold headroom to.
            continue;
        }
        let model_type = want["model_type"].as_str().unwrap_or_default();
        let gap = KNOWN_GAPS.iter().find(|(t, _)| *t == model_type);
        match model_from_config_json(name, &fixture_config_text(name)) {
            Ok(model) if model.exact() => {
                let d = differences(name, &model, want);
                if d.is_empty() {
                    exact += 1;
                }
                failures.extend(d);
            }
            // Only the cache approximated: the parameters are still held to transformers.
            Ok(model)
                if !model.approximate
                    && model.approximations.iter().all(|a| a.starts_with("cache:")) =>
            {
                let d: Vec<String> = differences(name, &model, want)
                    .into_iter()
                    .filter(|d| !d.contains("cache per token") && !d.contains("state per"))
                    .collect();
                if d.is_empty() {
                    exact += 1;
                }
                failures.extend(d);
            }
            // Only the vision tower left out: every other part is still held, the total and the
            // tower aside.
            Ok(model)
                if !model.approximate
                    && !model.approximations.is_empty()
                    && model
                        .approximations
                        .iter()
                        .all(|a| a.starts_with(VISION_TOWER_ONLY)) =>
            {
                let d: Vec<String> = differences(name, &model, want)
                    .into_iter()
                    .filter(|d| !d.contains(": params_total ") && !d.contains(": vision "))
                    .collect();
                failures.extend(d);
                if gap.is_none() {
                    failures.push(format!(
                        "{name} ({model_type}): vision tower not counted ({:?}) but not a known gap",
                        model.approximations
                    ));
                }
            }
            Ok(model) => {
                if gap.is_none() {
                    failures.push(format!(
                        "{name} ({model_type}): approximate ({:?}) but not a known gap",
                        model.approximations
                    ));
                }
            }
            Err(e) => {
                if gap.is_none() {
                    failures.push(format!(
                        "{name} ({model_type}): refused ({e}), not a known gap"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(exact >= 100, "only {exact} models counted exactly");
}

#[test]
fn known_gaps_are_still_gaps() {
    // A family that became exact must leave KNOWN_GAPS (so the list stays the truth).
    let truth = truth();
    let models = truth["models"].as_object().expect("models");
    for (file, want) in models {
        let model_type = want["model_type"].as_str().unwrap_or_default();
        if !KNOWN_GAPS.iter().any(|(t, _)| *t == model_type) {
            continue;
        }
        let Some(name) = file.strip_suffix(".json") else {
            continue;
        };
        if let Ok(model) = model_from_config_json(name, &fixture_config_text(name)) {
            assert!(
                !model.exact(),
                "{name} ({model_type}) is counted as exact now: remove it from KNOWN_GAPS"
            );
        }
    }
}
