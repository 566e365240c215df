//! Hugging Face `config.json` → [`ModelSpec`].
//!
//! The text is parsed into a JSON value first (so a syntax error reports its line and column), then
//! each field is read by name, so a missing or wrong-typed field is reported by its dotted path.
//! Defaults for fields a config may omit follow the `transformers` configuration class of the family
//! (e.g. `Gemma3TextConfig` for the text part of a multimodal Gemma-3 config).

use serde_json::{Map, Value};

use crate::{
    CoreError,
    limits::MAX_CONFIG_JSON_BYTES,
    model::{Architecture, LayerAttention, LayerSpec, Mixer, MlaSpec, Mlp, ModelSpec, MoeSpec},
};

mod encoders;
mod families;
mod nonfinite;

/// The `model_type` values headroom counts exactly.
pub const SUPPORTED_MODEL_TYPES: &[&str] = &[
    "llama",
    "mistral",
    "mixtral",
    "qwen2",
    "qwen2_moe",
    "qwen3",
    "qwen3_moe",
    "gemma",
    "gemma2",
    "gemma3",
    "gemma3_text",
    "phi3",
    "deepseek_v2",
    "deepseek_v3",
    "gpt_oss",
    "kimi_k2",
    "nemotron_h",
    "llama4",
    "llama4_text",
    "deepseek_v32",
    "glm4_moe_lite",
    "glm_moe_dsa",
    "qwen3_next",
    "qwen3_5",
    "qwen3_5_text",
    "qwen3_5_moe",
    "qwen3_5_moe_text",
    "starcoder2",
    "cohere",
    "cohere2",
    "olmo2",
    "olmo3",
    "olmoe",
    "granite",
    "granitemoe",
    "exaone4",
    "smollm3",
    "seed_oss",
    "ernie4_5",
    "hunyuan_v1_dense",
    "hunyuan_v1_moe",
    "apertus",
    "glm4",
    "glm4_moe",
    "minimax_m2",
    "lfm2",
    "lfm2_moe",
    "granitemoehybrid",
    "ernie4_5_moe",
    "phimoe",
    "mistral4",
    "minimax",
    "falcon_h1",
    "kimi_linear",
    "mllama",
    "gemma4",
    "gemma4_text",
    "gemma3n",
    "gemma3n_text",
    "deepseek_v4",
    "mimo_v2_flash",
    "qwen2_5_vl",
    "qwen2_5_vl_text",
    "qwen3_vl",
    "qwen3_vl_text",
    "qwen3_vl_moe",
    "qwen3_vl_moe_text",
    "llava",
    "mistral3",
];

/// Model types whose layers headroom knows to be unlike attention + MLP but does not model yet:
/// refused with the reason rather than counted as a Llama-like model.
const NOT_MODELLED: &[(&str, &str)] = &[
    (
        "mamba",
        "Mamba-1 layers (selective scan without heads) have no mapping",
    ),
    (
        "falcon_mamba",
        "Mamba-1 layers (selective scan without heads) have no mapping",
    ),
    (
        "mamba2",
        "pure Mamba-2 models have no mapping yet (only hybrids do)",
    ),
    (
        "jamba",
        "Jamba's Mamba-1 + attention + MoE pattern has no mapping",
    ),
    ("zamba", "Zamba's shared attention blocks have no mapping"),
    (
        "zamba2",
        "Zamba-2's shared attention blocks have no mapping",
    ),
    (
        "bamba",
        "Bamba's Mamba-2 + attention pattern has no mapping",
    ),
    (
        "rwkv",
        "RWKV's time-mix and channel-mix blocks have no mapping",
    ),
    (
        "recurrent_gemma",
        "RecurrentGemma's RG-LRU blocks have no mapping",
    ),
    ("xlstm", "xLSTM blocks have no mapping"),
];

/// Names transformers' configuration classes accept for the shape fields (their
/// `attribute_map`s: GPT-2's `n_embd`, `n_layer`, `n_head`; Falcon's `n_head_kv`; ChatGLM's
/// `multi_query_group_num`, `ffn_hidden_size`; ...), the canonical name first.
const FIELD_ALIASES: &[(&str, &[&str])] = &[
    ("hidden_size", &["hidden_size", "d_model", "n_embd"]),
    (
        "num_hidden_layers",
        &["num_hidden_layers", "n_layer", "num_layers"],
    ),
    (
        "num_attention_heads",
        &["num_attention_heads", "n_head", "num_heads"],
    ),
    (
        "num_key_value_heads",
        &[
            "num_key_value_heads",
            "num_kv_heads",
            "n_head_kv",
            "multi_query_group_num",
        ],
    ),
    (
        "intermediate_size",
        &["intermediate_size", "ffn_hidden_size", "n_inner"],
    ),
];

/// Generic fields that let an unknown `model_type` get a llama-like, approximate estimate.
const GENERIC_FIELDS: &[&str] = &[
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "vocab_size",
];

/// Largest width (hidden, intermediate, vocabulary, head) accepted. The largest real models are far
/// below (vocabularies ~10^6, hidden sizes ~2·10^4); anything above is a typo or a corrupt file.
pub const MAX_DIMENSION: u64 = 10_000_000;
/// Largest layer count accepted (real models: ≤ ~200). Also bounds the tensor list's length.
pub const MAX_LAYERS: u64 = 10_000;
/// Largest head count accepted.
pub const MAX_HEADS: u64 = 100_000;
/// Largest expert count accepted (real models: ≤ ~1024).
pub const MAX_EXPERTS: u64 = 1_000_000;
/// Largest `max_position_embeddings` accepted (2^32 tokens; real models ≤ 10^7).
pub const MAX_CONTEXT_TOKENS: u64 = 1 << 32;
/// Largest total parameter count accepted: 10^15 (500× the largest published models). Keeps every
/// byte count far below `u64::MAX`.
pub const MAX_PARAMS: u64 = 1_000_000_000_000_000;

/// How an approximation begins when it leaves out only a vision tower headroom cannot derive from
/// the config (Gemma-3n's timm MobileNet-v5): every other part of the model, and the cache, is
/// counted exactly, and the total lacks just the tower.
pub const VISION_TOWER_ONLY: &str = "vision tower only";

/// Parse a `config.json` text. `name` is what the model is called in output (file name, Hub id).
/// Unknown fields are ignored; a multimodal config's `text_config` is used for the language model.
///
/// Errors: [`CoreError::MalformedJson`] with line and column for invalid JSON or a non-object;
/// [`CoreError::BadField`] naming a missing, wrong-typed or absurd field;
/// [`CoreError::UnsupportedArchitecture`] for an unknown `model_type` lacking the generic fields.
pub fn model_from_config_json(name: &str, json: &str) -> Result<ModelSpec, CoreError> {
    // Python's json writes NaN / Infinity / -Infinity (Nemotron-H's `time_step_limit`), which
    // serde_json refuses: they become marker strings, accepted in fields headroom does not read
    // and refused by name in the fields it does.
    if json.len() as u64 > MAX_CONFIG_JSON_BYTES {
        return Err(CoreError::TooLarge {
            what: format!("config.json of {name}"),
            bytes: json.len() as u64,
            cap_bytes: MAX_CONFIG_JSON_BYTES,
        });
    }
    let json = nonfinite::mark_non_finite(json);
    let value: Value = serde_json::from_str(&json).map_err(|e| CoreError::MalformedJson {
        what: format!("config.json of {name}"),
        detail: format!("{e} — fix the file or fetch it again"),
    })?;
    model_from_config_value(name, &value)
}

/// Like [`model_from_config_json`] for an already parsed JSON value.
pub fn model_from_config_value(name: &str, value: &Value) -> Result<ModelSpec, CoreError> {
    let root = value.as_object().ok_or_else(|| CoreError::MalformedJson {
        what: format!("config.json of {name}"),
        detail: "the top level is not a JSON object".into(),
    })?;
    let what = format!("config.json of {name}");
    let outer = Fields {
        what: &what,
        prefix: String::new(),
        map: root,
    };
    let outer_type = outer.opt_str("model_type")?;
    let classes = outer.opt_str_list("architectures")?.unwrap_or_default();
    let outer_tie = outer.opt_bool("tie_word_embeddings")?;

    // Multimodal configs (Gemma-3, Llava, Mistral-3, ...) nest the language model.
    let (fields, model_type) = match root.get("text_config") {
        Some(Value::Object(text)) => {
            let inner = Fields {
                what: &what,
                prefix: "text_config.".into(),
                map: text,
            };
            let inner_type = inner.opt_str("model_type")?;
            let model_type = match (inner_type, outer_type.as_deref()) {
                (Some(t), _) => t,
                // transformers' Gemma3Config defaults its text part to Gemma3TextConfig.
                (None, Some("gemma3")) => "gemma3_text".to_string(),
                (None, Some(t)) => t.to_string(),
                (None, None) => String::new(),
            };
            (inner, model_type)
        }
        Some(Value::Null) | None => (outer, outer_type.clone().unwrap_or_default()),
        Some(_) => {
            return Err(CoreError::BadField {
                what,
                field: "text_config".into(),
                problem: "is not an object".into(),
            });
        }
    };
    let quant_method = quantization_method(root);
    let outer_tie = if fields.prefix.is_empty() {
        None
    } else {
        outer_tie
    };
    let mut spec = build(
        name,
        &fields,
        &model_type,
        &classes,
        outer_tie,
        quant_method,
    )?;
    // A wrapper's vision/audio towers: counted when headroom knows their layout, else named
    // in the approximations (never silently left out).
    let root_fields = Fields {
        what: &what,
        prefix: String::new(),
        map: root,
    };
    let parts = encoders::parts(
        &root_fields,
        outer_type.as_deref().unwrap_or_default(),
        spec.hidden_size,
    )?;
    spec.encoders = parts.encoders;
    spec.projectors = parts.projectors;
    spec.approximations.extend(parts.approximations);
    Ok(spec)
}

/// Check a [`ModelSpec`] that did not come from [`model_from_config_json`] (deserialized from a
/// link, a file header, a saved request) against the same limits a config gets: every width in
/// `1..=`[`MAX_DIMENSION`], layers in `1..=`[`MAX_LAYERS`], heads in `1..=`[`MAX_HEADS`], experts
/// in `1..=`[`MAX_EXPERTS`], and at most [`MAX_PARAMS`] parameters. Within these limits every byte
/// count in core stays far below `u64::MAX`, so no later product can overflow.
///
/// Errors: [`CoreError::BadField`] naming the field, or [`CoreError::OutOfRange`] for the
/// parameter count.
pub fn check_model_spec(spec: &ModelSpec) -> Result<(), CoreError> {
    let bad = |field: &str, value: u64, max: u64| CoreError::BadField {
        what: format!("model {}", spec.name),
        field: field.to_string(),
        problem: format!("is {value}; it must be between 1 and {max} — fix the model description"),
    };
    let check = |field: &str, value: u64, max: u64| {
        if value == 0 || value > max {
            Err(bad(field, value, max))
        } else {
            Ok(())
        }
    };
    check("hidden_size", spec.hidden_size, MAX_DIMENSION)?;
    check("vocab_size", spec.vocab_size, MAX_DIMENSION)?;
    check("intermediate_size", spec.intermediate_size, MAX_DIMENSION)?;
    check("head_dim", spec.head_dim, MAX_DIMENSION)?;
    check("num_hidden_layers", spec.num_layers, MAX_LAYERS)?;
    check("num_attention_heads", spec.num_attention_heads, MAX_HEADS)?;
    check("num_key_value_heads", spec.num_kv_heads, MAX_HEADS)?;
    check(
        "max_position_embeddings",
        spec.max_context,
        MAX_CONTEXT_TOKENS,
    )?;
    if let Some(moe) = &spec.moe {
        check("num_experts", moe.num_experts, MAX_EXPERTS)?;
        check(
            "num_experts_per_tok",
            moe.experts_per_token,
            moe.num_experts,
        )?;
        check(
            "moe_intermediate_size",
            moe.expert_intermediate_size,
            MAX_DIMENSION,
        )?;
        if moe.num_shared_experts > MAX_EXPERTS {
            return Err(bad("n_shared_experts", moe.num_shared_experts, MAX_EXPERTS));
        }
        // All shared experts together (DeepSeek: n_shared_experts · moe_intermediate_size).
        let max_shared = MAX_DIMENSION.saturating_mul(MAX_EXPERTS);
        if moe.shared_intermediate_size > max_shared {
            return Err(bad(
                "shared_expert_intermediate_size",
                moe.shared_intermediate_size,
                max_shared,
            ));
        }
    }
    if let Some(mla) = &spec.mla {
        if let Some(r) = mla.q_lora_rank {
            check("q_lora_rank", r, MAX_DIMENSION)?;
        }
        check("kv_lora_rank", mla.kv_lora_rank, MAX_DIMENSION)?;
        check("qk_rope_head_dim", mla.qk_rope_head_dim, MAX_DIMENSION)?;
        check("qk_nope_head_dim", mla.qk_nope_head_dim, MAX_DIMENSION)?;
        check("v_head_dim", mla.v_head_dim, MAX_DIMENSION)?;
    }
    if let Some(w) = spec.layer_attention.iter().find_map(|a| match a {
        LayerAttention::Sliding { window } if *window == 0 => Some(*window),
        _ => None,
    }) {
        return Err(bad("sliding_window", w, MAX_CONTEXT_TOKENS));
    }
    for layer in &spec.layers {
        check_layer(layer, &check)?;
    }
    if spec.layers.len() as u64 > MAX_LAYERS {
        return Err(bad("layers", spec.layers.len() as u64, MAX_LAYERS));
    }
    let total = crate::params::param_counts(spec).total;
    if total > MAX_PARAMS {
        return Err(CoreError::OutOfRange {
            field: format!("parameter count of {}", spec.name),
            value: if total == u64::MAX {
                format!("more than {}", u64::MAX)
            } else {
                total.to_string()
            },
            problem: format!("above {MAX_PARAMS} (10^15); the model's sizes are not a real model"),
        });
    }
    Ok(())
}

/// The widths of one explicit layer against the same limits (a spec from a link can carry any).
fn check_layer(
    layer: &LayerSpec,
    check: &dyn Fn(&str, u64, u64) -> Result<(), CoreError>,
) -> Result<(), CoreError> {
    check_mixer(&layer.mixer, check)?;
    check_mlp(&layer.mlp, check)
}

/// [`check_layer`] for one mixer (recursing into parallel mixers).
fn check_mixer(
    mixer: &Mixer,
    check: &dyn Fn(&str, u64, u64) -> Result<(), CoreError>,
) -> Result<(), CoreError> {
    match mixer {
        Mixer::Attention(a) | Mixer::CrossAttention(a) => {
            check("num_attention_heads", a.heads, MAX_HEADS)?;
            check("num_key_value_heads", a.kv_heads, MAX_HEADS)?;
            check("head_dim", a.head_dim, MAX_DIMENSION)?;
            check("v_head_dim", a.v_head_dim, MAX_DIMENSION)?;
            if let Some(w) = a.span.limit() {
                check("sliding_window", w, MAX_CONTEXT_TOKENS)?;
            }
        }
        Mixer::Mla {
            heads,
            mla,
            indexer,
        } => {
            check("num_attention_heads", *heads, MAX_HEADS)?;
            check("kv_lora_rank", mla.kv_lora_rank, MAX_DIMENSION)?;
            check("qk_rope_head_dim", mla.qk_rope_head_dim, MAX_DIMENSION)?;
            check("qk_nope_head_dim", mla.qk_nope_head_dim, MAX_DIMENSION)?;
            check("v_head_dim", mla.v_head_dim, MAX_DIMENSION)?;
            if let Some(ix) = indexer {
                check("index_n_heads", ix.heads, MAX_HEADS)?;
                check("index_head_dim", ix.head_dim, MAX_DIMENSION)?;
            }
        }
        Mixer::LinearAttention(la) => {
            check("linear_num_key_heads", la.key_heads, MAX_HEADS)?;
            check("linear_num_value_heads", la.value_heads, MAX_HEADS)?;
            check("linear_key_head_dim", la.key_head_dim, MAX_DIMENSION)?;
            check("linear_value_head_dim", la.value_head_dim, MAX_DIMENSION)?;
            check("linear_conv_kernel_dim", la.conv_kernel, MAX_DIMENSION)?;
        }
        Mixer::Mamba2(m) => {
            check("mamba_num_heads", m.heads, MAX_HEADS)?;
            check("mamba_head_dim", m.head_dim, MAX_DIMENSION)?;
            check("ssm_state_size", m.state_size, MAX_DIMENSION)?;
            check("n_groups", m.groups, MAX_HEADS)?;
            check("conv_kernel", m.conv_kernel, MAX_DIMENSION)?;
        }
        Mixer::ShortConv(sc) => check("conv_L_cache", sc.kernel, MAX_DIMENSION)?,
        Mixer::Lightning(l) => {
            check("num_attention_heads", l.heads, MAX_HEADS)?;
            check("head_dim", l.head_dim, MAX_DIMENSION)?;
        }
        Mixer::CompressedAttention(c) => {
            check("num_attention_heads", c.heads, MAX_HEADS)?;
            check("head_dim", c.head_dim, MAX_DIMENSION)?;
            check("q_lora_rank", c.q_lora_rank, MAX_DIMENSION)?;
            check("o_groups", c.o_groups, MAX_HEADS)?;
            check("o_lora_rank", c.o_lora_rank, MAX_DIMENSION)?;
            check("sliding_window", c.window, MAX_CONTEXT_TOKENS)?;
        }
        Mixer::KimiDelta(k) => {
            check("linear_num_heads", k.heads, MAX_HEADS)?;
            check("linear_head_dim", k.head_dim, MAX_DIMENSION)?;
            check("linear_conv_kernel_dim", k.conv_kernel, MAX_DIMENSION)?;
        }
        Mixer::Parallel(parts) => {
            for p in parts {
                check_mixer(p, check)?;
            }
        }
        Mixer::None => {}
    }
    Ok(())
}

/// [`check_layer`] for one MLP.
fn check_mlp(
    mlp: &Mlp,
    check: &dyn Fn(&str, u64, u64) -> Result<(), CoreError>,
) -> Result<(), CoreError> {
    match mlp {
        Mlp::Dense(d) => check("intermediate_size", d.intermediate, MAX_DIMENSION)?,
        Mlp::Moe(m) => {
            check("num_experts", m.experts, MAX_EXPERTS)?;
            check("num_experts_per_tok", m.top_k, m.experts)?;
            check(
                "moe_intermediate_size",
                m.expert_intermediate,
                MAX_DIMENSION,
            )?;
            if m.shared_intermediate > 0 {
                check(
                    "shared_expert_intermediate_size",
                    m.shared_intermediate,
                    MAX_DIMENSION.saturating_mul(MAX_EXPERTS),
                )?;
            }
        }
        Mlp::None => {}
    }
    Ok(())
}

/// Reads fields of one JSON object and reports problems with their dotted path.
struct Fields<'a> {
    what: &'a str,
    prefix: String,
    map: &'a Map<String, Value>,
}

impl Fields<'_> {
    fn bad(&self, field: &str, problem: impl Into<String>) -> CoreError {
        CoreError::BadField {
            what: self.what.to_string(),
            field: format!("{}{}", self.prefix, field),
            problem: problem.into(),
        }
    }

    /// A field that is present and not null.
    fn get(&self, field: &str) -> Option<&Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    fn has(&self, field: &str) -> bool {
        self.get(field).is_some()
    }

    fn opt_u64(&self, field: &str) -> Result<Option<u64>, CoreError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => {
                self.finite(field, v)?;
                if let Some(n) = v.as_u64() {
                    return Ok(Some(n));
                }
                // Some configs write integers as floats (`4096.0`).
                if let Some(f) = v.as_f64()
                    && f >= 0.0
                    && f.fract() == 0.0
                    && f < 1.8e19
                {
                    return Ok(Some(f as u64));
                }
                Err(self.bad(
                    field,
                    format!("must be a non-negative integer, found {v}; fix the config"),
                ))
            }
        }
    }

    /// A float field (`block_ffn_dim_multiplier`); NaN or infinite values are refused by name.
    fn opt_f64(&self, field: &str) -> Result<Option<f64>, CoreError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => {
                self.finite(field, v)?;
                match v.as_f64() {
                    Some(x) => Ok(Some(x)),
                    None => Err(self.bad(field, format!("must be a number, found {v}"))),
                }
            }
        }
    }

    /// Refuses a NaN / Infinity marker ([`nonfinite`]) in a field that shapes the model.
    fn finite(&self, field: &str, v: &Value) -> Result<(), CoreError> {
        match v.as_str().and_then(nonfinite::marked) {
            Some(what) => Err(self.bad(
                field,
                format!(
                    "is {what}; Python writes that for a non-finite float, but this field sets \
                     the model's shape and must be a finite number — fix the config"
                ),
            )),
            None => Ok(()),
        }
    }

    /// `field` under any name transformers' `attribute_map`s accept for it ([`FIELD_ALIASES`]).
    fn aliased_u64(&self, field: &str) -> Result<Option<u64>, CoreError> {
        match FIELD_ALIASES.iter().find(|(name, _)| *name == field) {
            Some((_, names)) => self.first_u64(names),
            None => self.opt_u64(field),
        }
    }

    fn u64(&self, field: &str) -> Result<u64, CoreError> {
        self.opt_u64(field)?.ok_or_else(|| {
            self.bad(
                field,
                "is missing; the config must give it (copy the model's config.json from its Hub page)",
            )
        })
    }

    fn u64_or(&self, field: &str, default: u64) -> Result<u64, CoreError> {
        Ok(self.opt_u64(field)?.unwrap_or(default))
    }

    /// First present field among `names`, as a positive integer.
    fn first_u64(&self, names: &[&str]) -> Result<Option<u64>, CoreError> {
        for n in names {
            if let Some(v) = self.opt_u64(n)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    fn opt_bool(&self, field: &str) -> Result<Option<bool>, CoreError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => {
                self.finite(field, v)?;
                Err(self.bad(field, format!("must be true or false, found {v}")))
            }
        }
    }

    fn bool_or(&self, field: &str, default: bool) -> Result<bool, CoreError> {
        Ok(self.opt_bool(field)?.unwrap_or(default))
    }

    fn opt_str(&self, field: &str) -> Result<Option<String>, CoreError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.bad(field, format!("must be a string, found {v}"))),
        }
    }

    /// `layer_types` (or similar): a list of strings.
    fn opt_str_list(&self, field: &str) -> Result<Option<Vec<String>>, CoreError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Array(items)) if items.len() as u64 > MAX_LAYERS => {
                Err(self.too_long(field, items.len()))
            }
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| self.bad(field, format!("must list strings, found {v}")))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(v) => Err(self.bad(field, format!("must be a list, found {v}"))),
        }
    }

    fn opt_u64_list(&self, field: &str) -> Result<Option<Vec<u64>>, CoreError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Array(items)) if items.len() as u64 > MAX_LAYERS => {
                Err(self.too_long(field, items.len()))
            }
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_u64().ok_or_else(|| {
                        self.bad(field, format!("must list non-negative integers, found {v}"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(v) => Err(self.bad(field, format!("must be a list, found {v}"))),
        }
    }

    /// A list longer than any model has layers: every list a config holds names layers or a
    /// few sizes, so a longer one is damage, refused before any per-layer work looks into it.
    fn too_long(&self, field: &str, len: usize) -> CoreError {
        self.bad(
            field,
            format!(
                "lists {len} entries, more than the {MAX_LAYERS} layers any model has; fix the \
                 config"
            ),
        )
    }

    /// Check `1 ≤ value ≤ max`.
    fn check_range(&self, field: &str, value: u64, max: u64) -> Result<u64, CoreError> {
        if value == 0 {
            return Err(self.bad(field, "is 0; a model needs at least 1 — fix the config"));
        }
        if value > max {
            return Err(self.bad(
                field,
                format!("is {value}, above the plausible maximum {max}; fix the config"),
            ));
        }
        Ok(value)
    }
}

fn quantization_method(root: &Map<String, Value>) -> Option<String> {
    root.get("quantization_config")
        .and_then(|q| q.get("quant_method"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn architecture_of(model_type: &str) -> Option<Architecture> {
    Some(match model_type {
        "llama" => Architecture::Llama,
        "mistral" => Architecture::Mistral,
        "mixtral" => Architecture::Mixtral,
        "qwen2" => Architecture::Qwen2,
        "qwen2_moe" => Architecture::Qwen2Moe,
        "qwen3" => Architecture::Qwen3,
        "qwen3_moe" => Architecture::Qwen3Moe,
        "gemma" => Architecture::Gemma,
        "gemma2" => Architecture::Gemma2,
        "gemma3" | "gemma3_text" => Architecture::Gemma3,
        "phi3" => Architecture::Phi3,
        "deepseek_v2" => Architecture::DeepseekV2,
        "deepseek_v3" => Architecture::DeepseekV3,
        "gpt_oss" => Architecture::GptOss,
        // Kimi-K2 is DeepSeek-V3's architecture (`DeepseekV3ForCausalLM`).
        "kimi_k2" => Architecture::DeepseekV3,
        "nemotron_h" => Architecture::NemotronH,
        "llama4" | "llama4_text" => Architecture::Llama4,
        "deepseek_v32" => Architecture::DeepseekV32,
        "glm4_moe_lite" => Architecture::Glm4MoeLite,
        "glm_moe_dsa" => Architecture::GlmMoeDsa,
        "qwen3_next" => Architecture::Qwen3Next,
        "qwen3_5" | "qwen3_5_text" => Architecture::Qwen35,
        "qwen3_5_moe" | "qwen3_5_moe_text" => Architecture::Qwen35Moe,
        "starcoder2" => Architecture::Starcoder2,
        "cohere" => Architecture::Cohere,
        "cohere2" => Architecture::Cohere2,
        "olmo2" => Architecture::Olmo2,
        "olmo3" => Architecture::Olmo3,
        "olmoe" => Architecture::Olmoe,
        "granite" => Architecture::Granite,
        "granitemoe" => Architecture::GraniteMoe,
        "exaone4" => Architecture::Exaone4,
        "smollm3" => Architecture::Smollm3,
        "seed_oss" => Architecture::SeedOss,
        "ernie4_5" => Architecture::Ernie45,
        "hunyuan_v1_dense" => Architecture::HunyuanV1Dense,
        "hunyuan_v1_moe" => Architecture::HunyuanV1Moe,
        "apertus" => Architecture::Apertus,
        "glm4" => Architecture::Glm4,
        "glm4_moe" => Architecture::Glm4Moe,
        "minimax_m2" => Architecture::MinimaxM2,
        "lfm2" => Architecture::Lfm2,
        "lfm2_moe" => Architecture::Lfm2Moe,
        "granitemoehybrid" => Architecture::GraniteMoeHybrid,
        "ernie4_5_moe" => Architecture::Ernie45Moe,
        "phimoe" => Architecture::Phimoe,
        "mistral4" => Architecture::Mistral4,
        "minimax" => Architecture::Minimax,
        "falcon_h1" => Architecture::FalconH1,
        "kimi_linear" => Architecture::KimiLinear,
        "mllama" | "mllama_text_model" => Architecture::Mllama,
        "gemma4" | "gemma4_text" => Architecture::Gemma4,
        "gemma3n" | "gemma3n_text" => Architecture::Gemma3n,
        "deepseek_v4" => Architecture::DeepseekV4,
        "mimo_v2_flash" => Architecture::MimoV2Flash,
        // The text halves of vision-language models are the text families'.
        "qwen2_5_vl" | "qwen2_5_vl_text" => Architecture::Qwen2,
        "qwen3_vl" | "qwen3_vl_text" => Architecture::Qwen3,
        "qwen3_vl_moe" | "qwen3_vl_moe_text" => Architecture::Qwen3Moe,
        _ => return None,
    })
}

/// The family of a config whose `model_type` is unknown but whose `architectures` names a known
/// class (`DeepseekV3ForCausalLM` → `deepseek_v3`): the class name without its head suffix,
/// compared with each known `model_type` without underscores.
fn architecture_from_classes(classes: &[String]) -> Option<Architecture> {
    const HEADS: &[&str] = &[
        "ForCausalLM",
        "ForConditionalGeneration",
        "LMHeadModel",
        "Model",
    ];
    classes.iter().find_map(|class| {
        let stem = HEADS
            .iter()
            .find_map(|h| class.strip_suffix(h))
            .unwrap_or(class)
            .to_ascii_lowercase();
        SUPPORTED_MODEL_TYPES
            .iter()
            .find(|t| t.replace('_', "") == stem)
            .and_then(|t| architecture_of(t))
    })
}

/// `tie_word_embeddings` when the config omits it: the transformers configuration class's
/// default for the family.
fn tie_default(arch: &Architecture) -> bool {
    matches!(
        arch,
        Architecture::Gemma
            | Architecture::Gemma2
            | Architecture::Gemma3
            | Architecture::Gemma4
            | Architecture::Gemma3n
            | Architecture::Starcoder2
            | Architecture::Cohere
            | Architecture::Cohere2
            | Architecture::Smollm3
            | Architecture::Ernie45
            | Architecture::Ernie45Moe
            | Architecture::Lfm2
            | Architecture::Lfm2Moe
    )
}

/// Field defaults of `transformers`' `Gemma3TextConfig`, used when a multimodal Gemma-3 config's
/// `text_config` leaves them out (the 4B checkpoint lists only a handful of fields).
mod gemma3_defaults {
    pub const VOCAB_SIZE: u64 = 262_208;
    pub const HIDDEN_SIZE: u64 = 2304;
    pub const INTERMEDIATE_SIZE: u64 = 9216;
    pub const NUM_HIDDEN_LAYERS: u64 = 26;
    pub const NUM_ATTENTION_HEADS: u64 = 8;
    pub const NUM_KEY_VALUE_HEADS: u64 = 4;
    pub const HEAD_DIM: u64 = 256;
    pub const MAX_POSITION_EMBEDDINGS: u64 = 131_072;
    pub const SLIDING_WINDOW: u64 = 4096;
    pub const SLIDING_WINDOW_PATTERN: u64 = 6;
}

/// `HunYuanMoEV1Config` default `max_position_embeddings` (2048).
const HUNYUAN_DEFAULT_MAX_POSITION_EMBEDDINGS: u64 = 2048;

/// `GemmaConfig` / `Gemma2Config` default `head_dim` (256).
const GEMMA_DEFAULT_HEAD_DIM: u64 = 256;

fn build(
    name: &str,
    f: &Fields<'_>,
    model_type: &str,
    classes: &[String],
    outer_tie: Option<bool>,
    quant_method: Option<String>,
) -> Result<ModelSpec, CoreError> {
    if let Some((_, why)) = NOT_MODELLED.iter().find(|(t, _)| *t == model_type) {
        return Err(CoreError::Unsupported(format!(
            "model_type `{model_type}` is not counted by headroom yet: {why}; a generic count \
             would be wrong, so none is given"
        )));
    }
    let arch = match architecture_of(model_type).or_else(|| architecture_from_classes(classes)) {
        Some(a) => a,
        None => {
            let missing: Vec<&str> = GENERIC_FIELDS
                .iter()
                .copied()
                .filter(|n| !matches!(f.aliased_u64(n), Ok(Some(_))))
                .collect();
            if !missing.is_empty() || model_type.is_empty() {
                let missing = if missing.is_empty() {
                    "`model_type`".to_string()
                } else {
                    missing
                        .iter()
                        .map(|m| format!("`{}{m}`", f.prefix))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                return Err(CoreError::UnsupportedArchitecture {
                    model_type: if model_type.is_empty() {
                        "(none)".into()
                    } else {
                        model_type.into()
                    },
                    missing,
                    supported: SUPPORTED_MODEL_TYPES.join(", "),
                });
            }
            Architecture::Other(model_type.to_string())
        }
    };
    let approximate = matches!(arch, Architecture::Other(_));
    let is_gemma3 = arch == Architecture::Gemma3;

    let dim = |field: &str, gemma3_default: u64| -> Result<u64, CoreError> {
        let v = match (f.aliased_u64(field)?, is_gemma3) {
            (Some(v), _) => v,
            (None, true) => gemma3_default,
            (None, false) => f.u64(field)?,
        };
        f.check_range(field, v, MAX_DIMENSION)
    };
    let hidden_size = dim("hidden_size", gemma3_defaults::HIDDEN_SIZE)?;
    let vocab_size = dim("vocab_size", gemma3_defaults::VOCAB_SIZE)?;
    // Families whose layers may all be MoE can omit the dense width (Qwen3.5-MoE): the expert
    // width stands in for the summary field, and a dense layer there asks for the real one.
    // Gemma-3n lists one MLP width per layer: the first stands in for the summary field, the
    // family reads them all.
    let listed_widths = match f.get("intermediate_size") {
        Some(Value::Array(_)) if arch == Architecture::Gemma3n => {
            f.opt_u64_list("intermediate_size")?
        }
        _ => None,
    };
    let intermediate_size = match (
        listed_widths.is_some() || f.aliased_u64("intermediate_size")?.is_some(),
        &arch,
    ) {
        (true, _) if listed_widths.is_some() => {
            let first = listed_widths
                .as_ref()
                .and_then(|w| w.first().copied())
                .ok_or_else(|| f.bad("intermediate_size", "is an empty list; fix the config"))?;
            f.check_range("intermediate_size", first, MAX_DIMENSION)?
        }
        (
            false,
            Architecture::Qwen35Moe
            | Architecture::Qwen3Next
            | Architecture::MinimaxM2
            | Architecture::DeepseekV4,
        ) => f.check_range(
            "moe_intermediate_size",
            f.u64("moe_intermediate_size")?,
            MAX_DIMENSION,
        )?,
        _ => dim("intermediate_size", gemma3_defaults::INTERMEDIATE_SIZE)?,
    };
    let num_layers = match (&arch, f.aliased_u64("num_hidden_layers")?) {
        (_, Some(n)) => n,
        (Architecture::Gemma3, None) => gemma3_defaults::NUM_HIDDEN_LAYERS,
        // Nemotron-H derives its depth from the layer pattern (num_hidden_layers is deprecated).
        (Architecture::NemotronH, None) => families::nemotron_h_depth(f)?,
        (_, None) => f.u64("num_hidden_layers")?,
    };
    let num_layers = f.check_range("num_hidden_layers", num_layers, MAX_LAYERS)?;
    let heads = match (f.aliased_u64("num_attention_heads")?, is_gemma3) {
        (Some(h), _) => h,
        (None, true) => gemma3_defaults::NUM_ATTENTION_HEADS,
        (None, false) => f.u64("num_attention_heads")?,
    };
    let heads = f.check_range("num_attention_heads", heads, MAX_HEADS)?;
    let kv_default = if is_gemma3 {
        gemma3_defaults::NUM_KEY_VALUE_HEADS
    } else {
        heads
    };
    let kv_heads = f.aliased_u64("num_key_value_heads")?.unwrap_or(kv_default);
    let kv_heads = f.check_range("num_key_value_heads", kv_heads, MAX_HEADS)?;
    if heads % kv_heads != 0 {
        return Err(f.bad(
            "num_key_value_heads",
            format!(
                "is {kv_heads}, which does not divide num_attention_heads = {heads}; fix the config"
            ),
        ));
    }
    let head_dim_default = match arch {
        Architecture::Gemma | Architecture::Gemma2 => GEMMA_DEFAULT_HEAD_DIM,
        Architecture::Gemma3 => gemma3_defaults::HEAD_DIM,
        // Glm4MoeAttention: `getattr(config, "head_dim", hidden_size // num_attention_heads)`,
        // floor division (the published GLM-4.5 configs give head_dim 128 explicitly).
        Architecture::Glm4Moe => hidden_size / heads,
        // MLA families: transformers sets head_dim to qk_rope_head_dim; the real per-head
        // widths are the MLA fields.
        Architecture::DeepseekV32
        | Architecture::Glm4MoeLite
        | Architecture::GlmMoeDsa
        | Architecture::Mistral4
        | Architecture::KimiLinear
            if hidden_size % heads != 0 =>
        {
            f.u64("qk_rope_head_dim")?
        }
        _ => {
            if hidden_size % heads != 0 && !f.has("head_dim") {
                return Err(f.bad(
                    "head_dim",
                    format!(
                        "is missing and hidden_size {hidden_size} is not a multiple of \
                         num_attention_heads {heads}; add head_dim to the config"
                    ),
                ));
            }
            hidden_size / heads
        }
    };
    let head_dim = f.u64_or("head_dim", head_dim_default)?;
    let head_dim = f.check_range("head_dim", head_dim, MAX_DIMENSION)?;

    // The family's class default when the config omits it (Gemma, Cohere, StarCoder2 tie;
    // LFM2 names the flag `tie_embedding`).
    let tie_word_embeddings = match (outer_tie, f.opt_bool("tie_word_embeddings")?) {
        // A multimodal wrapper's own flag decides for the whole model (transformers 5 reads the
        // top-level config: Mistral-3's `true` ties even where its text_config says false).
        (Some(t), _) => t,
        (None, Some(t)) => t,
        (None, None) => f.bool_or("tie_embedding", tie_default(&arch))?,
    };

    let max_context = match f.first_u64(&[
        "max_position_embeddings",
        "max_sequence_length",
        "n_positions",
        "seq_length",
        "model_max_length",
    ])? {
        Some(v) => v,
        None if is_gemma3 => gemma3_defaults::MAX_POSITION_EMBEDDINGS,
        // `HunYuanMoEV1Config`'s default (Hunyuan-A13B's config.json leaves it out).
        None if arch == Architecture::HunyuanV1Moe => HUNYUAN_DEFAULT_MAX_POSITION_EMBEDDINGS,
        None => {
            return Err(f.bad(
                "max_position_embeddings",
                "is missing; the config must say the longest context the model supports",
            ));
        }
    };
    let max_context = f.check_range("max_position_embeddings", max_context, MAX_CONTEXT_TOKENS)?;

    // gpt-oss always has biases on its attention projections; elsewhere the config says.
    let attention_bias = f.bool_or("attention_bias", arch == Architecture::GptOss)?;
    let mlp_bias = f.bool_or("mlp_bias", false)?;

    let common = families::Common {
        num_layers,
        heads,
        kv_heads,
        head_dim,
        intermediate: intermediate_size,
        attention_bias,
        mlp_bias,
    };
    let family = families::family(f, &arch, &common)?;
    let (layer_attention, moe, mla, num_layers) = match &family {
        Some(fam) => {
            let n = fam.num_layers.unwrap_or(num_layers);
            let (attn, moe, mla) = summary_of(&fam.layers);
            (attn, moe, mla, n)
        }
        None => (
            layer_attention(f, &arch, num_layers)?,
            moe_spec(f, &arch, num_layers, intermediate_size)?,
            mla_spec(f, &arch)?,
            num_layers,
        ),
    };

    let torch_dtype = match f.opt_str("torch_dtype")? {
        Some(d) => Some(d),
        // transformers ≥ 4.56 writes `dtype`.
        None => f.opt_str("dtype")?,
    };

    let spec = ModelSpec {
        name: name.to_string(),
        architecture: arch,
        approximate,
        hidden_size,
        num_layers,
        num_attention_heads: heads,
        num_kv_heads: kv_heads,
        head_dim,
        vocab_size,
        intermediate_size,
        tie_word_embeddings,
        max_context,
        layer_attention,
        moe,
        mla,
        torch_dtype,
        checkpoint_quantization: quant_method,
        attention_bias,
        mlp_bias,
        layers: Vec::new(),
        norm_bias: false,
        encoders: Vec::new(),
        projectors: Vec::new(),
        mtp: None,
        approximations: Vec::new(),
        embedding_extra_rows: 0,
        per_layer_embedding: None,
        extra_weights: Vec::new(),
    };
    let mut spec = spec;
    match family {
        Some(fam) => {
            spec.layers = fam.layers;
            spec.norm_bias = fam.norm_bias;
            spec.mtp = fam.mtp;
            spec.approximations = fam.approximations;
            spec.embedding_extra_rows = fam.embedding_extra_rows;
            spec.per_layer_embedding = fam.per_layer_embedding;
            spec.extra_weights = fam.extra_weights;
        }
        // The classic families keep `layers` empty: ModelSpec::layers derives them from the
        // summary fields, which stay the one source of truth for specs edited by hand.
        None => spec.mtp = classic_mtp(f, &spec)?,
    }
    if let Architecture::Other(t) = &spec.architecture {
        spec.approximations.push(format!(
            "model_type `{t}` is not a family headroom knows: every layer is counted as \
             attention + MLP from the generic fields"
        ));
    }
    let total = crate::params::param_counts(&spec).total;
    if total > MAX_PARAMS {
        return Err(CoreError::OutOfRange {
            field: format!("parameter count of {name}"),
            // The count saturates at u64::MAX: say "more than" rather than print that bound.
            value: if total == u64::MAX {
                format!("more than {}", u64::MAX)
            } else {
                total.to_string()
            },
            problem: format!(
                "above {MAX_PARAMS} (10^15); the config's sizes (hidden_size, \
                 intermediate_size, vocab_size, num_hidden_layers, expert counts and widths) \
                 are not a real model — check them"
            ),
        });
    }
    Ok(spec)
}

/// The summary fields older callers read (`layer_attention`, `moe`, `mla`) from a family's
/// layers: each layer's span (full for layers without softmax attention), the first MoE layer
/// with the indices of the others, the first MLA layer's shapes.
fn summary_of(layers: &[LayerSpec]) -> (Vec<LayerAttention>, Option<MoeSpec>, Option<MlaSpec>) {
    let spans = layers
        .iter()
        .map(|l| match &l.mixer {
            Mixer::Attention(a) => a.span,
            _ => LayerAttention::Full,
        })
        .collect();
    let moe = layers.iter().find_map(|l| match &l.mlp {
        Mlp::Moe(m) => Some(MoeSpec {
            num_experts: m.experts,
            experts_per_token: m.top_k,
            expert_intermediate_size: m.expert_intermediate,
            num_shared_experts: u64::from(m.shared_intermediate > 0),
            shared_intermediate_size: m.shared_intermediate,
            dense_layers: layers
                .iter()
                .enumerate()
                .filter(|(_, l)| !matches!(l.mlp, Mlp::Moe(_)))
                .map(|(i, _)| i as u64)
                .collect(),
        }),
        _ => None,
    });
    let mla = layers.iter().find_map(|l| match &l.mixer {
        Mixer::Mla { mla, .. } => Some(mla.clone()),
        _ => None,
    });
    (spans, moe, mla)
}

/// DeepSeek-V2/V3's multi-token-prediction layers (`num_nextn_predict_layers`): a decoder layer
/// like the last one, with its own embedding and head copies in the checkpoint.
fn classic_mtp(
    f: &Fields<'_>,
    spec: &ModelSpec,
) -> Result<Option<crate::model::MtpSpec>, CoreError> {
    if !matches!(
        spec.architecture,
        Architecture::DeepseekV2 | Architecture::DeepseekV3
    ) {
        return Ok(None);
    }
    let n = f.u64_or("num_nextn_predict_layers", 0)?;
    let layers = spec.layers();
    let Some(last) = layers.last() else {
        return Ok(None);
    };
    Ok((n > 0).then(|| crate::model::MtpSpec {
        layers: n,
        layer: last.clone(),
        own_embedding: true,
    }))
}

/// The attention of each layer: from `layer_types` when the config lists them, else the family rule.
fn layer_attention(
    f: &Fields<'_>,
    arch: &Architecture,
    num_layers: u64,
) -> Result<Vec<LayerAttention>, CoreError> {
    let n = num_layers as usize;
    let window = f.opt_u64("sliding_window")?;
    let sliding = |w: u64| LayerAttention::Sliding { window: w };

    if let Some(types) = f.opt_str_list("layer_types")? {
        if types.len() != n {
            return Err(f.bad(
                "layer_types",
                format!(
                    "lists {} layers but num_hidden_layers is {num_layers}; fix the config",
                    types.len()
                ),
            ));
        }
        let default_window = if *arch == Architecture::Gemma3 {
            Some(gemma3_defaults::SLIDING_WINDOW)
        } else {
            None
        };
        return types
            .iter()
            .map(|t| match t.as_str() {
                "full_attention" => Ok(LayerAttention::Full),
                "sliding_attention" | "sliding_window" | "local_attention" => {
                    match window.or(default_window) {
                        Some(w) if w > 0 => Ok(sliding(w)),
                        _ => Err(f.bad(
                            "sliding_window",
                            "is missing or 0 although layer_types names sliding layers",
                        )),
                    }
                }
                other => Err(f.bad(
                    "layer_types",
                    format!("has `{other}`; headroom knows full_attention and sliding_attention"),
                )),
            })
            .collect();
    }

    let all = |a: LayerAttention| Ok(vec![a; n]);
    match arch {
        // Mistral applies its window to every layer when the config sets one (v0.1: 4096).
        // Phi-3 does the same (`sliding_window` 2047 on the 4k models).
        Architecture::Mistral | Architecture::Mixtral | Architecture::Phi3 => match window {
            Some(w) if w > 0 && w < u64::MAX => all(sliding(w)),
            _ => all(LayerAttention::Full),
        },
        // Qwen2/Qwen3: the window only applies with `use_sliding_window`, to layers from
        // `max_window_layers` on (transformers' Qwen2Config.layer_types).
        Architecture::Qwen2
        | Architecture::Qwen2Moe
        | Architecture::Qwen3
        | Architecture::Qwen3Moe => {
            let use_swa = f.bool_or("use_sliding_window", false)?;
            match (use_swa, window) {
                (true, Some(w)) if w > 0 => {
                    let from = f.u64_or("max_window_layers", num_layers)?;
                    Ok((0..num_layers)
                        .map(|i| {
                            if i >= from {
                                sliding(w)
                            } else {
                                LayerAttention::Full
                            }
                        })
                        .collect())
                }
                _ => all(LayerAttention::Full),
            }
        }
        // Gemma-2: even layers (0, 2, ...) are local (transformers: `not bool(layer_idx % 2)`).
        Architecture::Gemma2 => {
            let w = window.filter(|w| *w > 0).ok_or_else(|| {
                f.bad(
                    "sliding_window",
                    "is missing; Gemma-2 alternates local and global layers",
                )
            })?;
            Ok((0..num_layers)
                .map(|i| {
                    if i % 2 == 0 {
                        sliding(w)
                    } else {
                        LayerAttention::Full
                    }
                })
                .collect())
        }
        // Gemma-3: every `sliding_window_pattern`-th layer is global, the rest local
        // (transformers: `bool((layer_idx + 1) % pattern)`).
        Architecture::Gemma3 => {
            let w = window.unwrap_or(gemma3_defaults::SLIDING_WINDOW);
            if w == 0 {
                return Err(f.bad(
                    "sliding_window",
                    "is 0; Gemma-3's local layers need a window of at least 1 token (4096 in \
                     the published checkpoints) — fix the config",
                ));
            }
            let pattern = f.u64_or(
                "sliding_window_pattern",
                gemma3_defaults::SLIDING_WINDOW_PATTERN,
            )?;
            let pattern = f.check_range("sliding_window_pattern", pattern, MAX_LAYERS)?;
            Ok((0..num_layers)
                .map(|i| {
                    if (i + 1) % pattern != 0 {
                        sliding(w)
                    } else {
                        LayerAttention::Full
                    }
                })
                .collect())
        }
        _ => all(LayerAttention::Full),
    }
}

fn moe_spec(
    f: &Fields<'_>,
    arch: &Architecture,
    num_layers: u64,
    intermediate_size: u64,
) -> Result<Option<MoeSpec>, CoreError> {
    let check_experts = |field: &str, num: u64, k: u64| -> Result<(), CoreError> {
        f.check_range(field, num, MAX_EXPERTS)?;
        if k == 0 || k > num {
            return Err(f.bad(
                "num_experts_per_tok",
                format!("is {k}; it must be between 1 and the number of experts ({num})"),
            ));
        }
        Ok(())
    };
    let spec = match arch {
        Architecture::Mixtral | Architecture::GptOss => {
            // Every alias transformers accepts (num_local_experts, num_experts, ...).
            let (num, k) = families::experts(f)?;
            MoeSpec {
                num_experts: num,
                experts_per_token: k,
                expert_intermediate_size: intermediate_size,
                num_shared_experts: 0,
                shared_intermediate_size: 0,
                dense_layers: vec![],
            }
        }
        Architecture::Qwen2Moe | Architecture::Qwen3Moe => {
            // transformers 5 saves Qwen3-MoE's num_experts as num_local_experts.
            let (num, k) = families::experts(f)?;
            let expert_inter = f.u64("moe_intermediate_size")?;
            f.check_range("moe_intermediate_size", expert_inter, MAX_DIMENSION)?;
            let step = f.u64_or("decoder_sparse_step", 1)?;
            let step = f.check_range("decoder_sparse_step", step, MAX_LAYERS)?;
            let mlp_only = f.opt_u64_list("mlp_only_layers")?.unwrap_or_default();
            // transformers: a layer is sparse when it is not in mlp_only_layers and
            // (layer_idx + 1) % decoder_sparse_step == 0.
            let dense_layers = (0..num_layers)
                .filter(|i| mlp_only.contains(i) || (i + 1) % step != 0)
                .collect();
            let (shared, shared_inter) = if *arch == Architecture::Qwen2Moe {
                let s = f.u64("shared_expert_intermediate_size")?;
                let s = shared_size_in_range(f, "shared_expert_intermediate_size", s)?;
                if s > 0 { (1, s) } else { (0, 0) }
            } else {
                (0, 0)
            };
            MoeSpec {
                num_experts: num,
                experts_per_token: k,
                expert_intermediate_size: expert_inter,
                num_shared_experts: shared,
                shared_intermediate_size: shared_inter,
                dense_layers,
            }
        }
        Architecture::DeepseekV2 | Architecture::DeepseekV3 => {
            // Without routed experts every layer is dense.
            if f.first_u64(families::EXPERT_FIELDS)?.is_none() {
                return Ok(None);
            }
            let (num, k) = families::experts(f)?;
            let expert_inter = f.u64("moe_intermediate_size")?;
            f.check_range("moe_intermediate_size", expert_inter, MAX_DIMENSION)?;
            let shared = f.u64_or("n_shared_experts", 0)?;
            if shared > MAX_EXPERTS {
                return Err(f.bad(
                    "n_shared_experts",
                    format!(
                        "is {shared}, above the plausible maximum {MAX_EXPERTS}; fix the config"
                    ),
                ));
            }
            let first_dense = f.u64_or("first_k_dense_replace", 0)?;
            let freq = f.u64_or("moe_layer_freq", 1)?;
            let freq = f.check_range("moe_layer_freq", freq, MAX_LAYERS)?;
            // modeling_deepseek: MoE when layer_idx >= first_k_dense_replace and
            // layer_idx % moe_layer_freq == 0.
            let dense_layers = (0..num_layers)
                .filter(|i| *i < first_dense || i % freq != 0)
                .collect();
            MoeSpec {
                num_experts: num,
                experts_per_token: k,
                expert_intermediate_size: expert_inter,
                num_shared_experts: shared,
                // Both factors are range-checked, so the product stays far below u64::MAX.
                shared_intermediate_size: shared * expert_inter,
                dense_layers,
            }
        }
        // An unknown family that names experts: approximate every layer (but DeepSeek-style
        // `first_k_dense_replace` ones) as router + routed experts (+ shared experts).
        Architecture::Other(_) => {
            let Some(num) =
                f.first_u64(&["num_local_experts", "num_experts", "n_routed_experts"])?
            else {
                return Ok(None);
            };
            if num <= 1 {
                return Ok(None);
            }
            let Some(k) = f.first_u64(&["num_experts_per_tok", "experts_per_token", "moe_topk"])?
            else {
                return Ok(None);
            };
            check_experts("num_experts", num, k)?;
            let expert_inter = f.u64_or("moe_intermediate_size", intermediate_size)?;
            f.check_range("moe_intermediate_size", expert_inter, MAX_DIMENSION)?;
            let shared_inter = match f.opt_u64("shared_expert_intermediate_size")? {
                Some(s) => shared_size_in_range(f, "shared_expert_intermediate_size", s)?,
                None => {
                    let n = f.u64_or("n_shared_experts", 0)?;
                    if n > MAX_EXPERTS {
                        return Err(f.bad(
                            "n_shared_experts",
                            format!(
                                "is {n}, above the plausible maximum {MAX_EXPERTS}; fix the config"
                            ),
                        ));
                    }
                    n * expert_inter
                }
            };
            let first_dense = f.u64_or("first_k_dense_replace", 0)?;
            MoeSpec {
                num_experts: num,
                experts_per_token: k,
                expert_intermediate_size: expert_inter,
                num_shared_experts: u64::from(shared_inter > 0),
                shared_intermediate_size: shared_inter,
                dense_layers: (0..num_layers.min(first_dense)).collect(),
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(spec))
}

/// A shared-expert width: 0 (no shared expert) or at most [`MAX_DIMENSION`].
fn shared_size_in_range(f: &Fields<'_>, field: &str, value: u64) -> Result<u64, CoreError> {
    if value > MAX_DIMENSION {
        return Err(f.bad(
            field,
            format!("is {value}, above the plausible maximum {MAX_DIMENSION}; fix the config"),
        ));
    }
    Ok(value)
}

fn mla_spec(f: &Fields<'_>, arch: &Architecture) -> Result<Option<MlaSpec>, CoreError> {
    if !matches!(arch, Architecture::DeepseekV2 | Architecture::DeepseekV3) {
        return Ok(None);
    }
    let q_lora_rank = match f.opt_u64("q_lora_rank")? {
        Some(r) => Some(f.check_range("q_lora_rank", r, MAX_DIMENSION)?),
        None => None,
    };
    let kv_lora_rank = f.check_range("kv_lora_rank", f.u64("kv_lora_rank")?, MAX_DIMENSION)?;
    let qk_rope_head_dim = f.check_range(
        "qk_rope_head_dim",
        f.u64("qk_rope_head_dim")?,
        MAX_DIMENSION,
    )?;
    let qk_nope_head_dim = f.check_range(
        "qk_nope_head_dim",
        f.u64("qk_nope_head_dim")?,
        MAX_DIMENSION,
    )?;
    let v_head_dim = f.check_range("v_head_dim", f.u64("v_head_dim")?, MAX_DIMENSION)?;
    Ok(Some(MlaSpec {
        q_lora_rank,
        kv_lora_rank,
        qk_rope_head_dim,
        qk_nope_head_dim,
        v_head_dim,
    }))
}
