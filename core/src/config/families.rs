//! Families mapped onto the layer model: each function reads a family's config fields and returns
//! its decoder layers (mixer + MLP + norms) and what surrounds them. No family has arithmetic of
//! its own: the tensor walk ([`crate::tensors`]) and the cache ([`crate::kv_cache`]) count every
//! family the same way from these layers.

use crate::{
    CoreError,
    model::{
        Architecture, AttentionSpec, DenseMlpSpec, IndexerSpec, KimiDeltaSpec, LayerAttention,
        LayerSpec, LightningSpec, LinearAttentionSpec, Mamba2Spec, Mixer, MlaSpec, Mlp, MoeMlpSpec,
        MtpSpec, QkNorm, ShortConvSpec,
    },
};

use super::{Fields, MAX_DIMENSION, MAX_EXPERTS, MAX_HEADS, MAX_LAYERS};

/// The fields every family has, already read and range-checked by [`super::build`].
pub(super) struct Common {
    pub(super) num_layers: u64,
    pub(super) heads: u64,
    pub(super) kv_heads: u64,
    pub(super) head_dim: u64,
    pub(super) intermediate: u64,
    pub(super) attention_bias: bool,
    pub(super) mlp_bias: bool,
}

/// A family's layers and parts.
pub(super) struct Family {
    pub(super) layers: Vec<LayerSpec>,
    pub(super) norm_bias: bool,
    pub(super) mtp: Option<MtpSpec>,
    pub(super) approximations: Vec<String>,
    /// Number of layers when the family derives it from a pattern (Nemotron-H).
    pub(super) num_layers: Option<u64>,
    /// Input embedding rows beyond the vocabulary (mllama).
    pub(super) embedding_extra_rows: u64,
    /// Per-layer input embeddings (Gemma-4 "E" models).
    pub(super) per_layer_embedding: Option<crate::model::PerLayerEmbeddingSpec>,
    /// Model-level weights after the final norm (DeepSeek-V4's `hc_head`).
    pub(super) extra_weights: Vec<crate::model::ExtraWeight>,
}

impl Family {
    fn new(layers: Vec<LayerSpec>) -> Family {
        Family {
            layers,
            norm_bias: false,
            mtp: None,
            approximations: Vec::new(),
            num_layers: None,
            embedding_extra_rows: 0,
            per_layer_embedding: None,
            extra_weights: Vec::new(),
        }
    }
}

/// Options of a softmax attention layer beyond the common shape.
#[derive(Clone, Copy, Default)]
struct AttnOpts {
    qkv_bias: bool,
    output_bias: bool,
    qk_norm: QkNorm,
    output_gate: bool,
}

fn attention(c: &Common, span: LayerAttention, o: AttnOpts) -> Mixer {
    Mixer::Attention(attention_spec(c, span, o))
}

fn attention_spec(c: &Common, span: LayerAttention, o: AttnOpts) -> AttentionSpec {
    AttentionSpec {
        heads: c.heads,
        kv_heads: c.kv_heads,
        head_dim: c.head_dim,
        v_head_dim: c.head_dim,
        span,
        qkv_bias: o.qkv_bias,
        output_bias: o.output_bias,
        qk_norm: o.qk_norm,
        sinks: false,
        output_gate: o.output_gate,
        fused_qkv: false,
        shares_cache: false,
        values_from_keys: false,
    }
}

fn gated(intermediate: u64, bias: bool) -> Mlp {
    Mlp::Dense(DenseMlpSpec {
        intermediate,
        gated: true,
        bias,
        fused_gate_up: false,
    })
}

fn ungated(intermediate: u64, bias: bool) -> Mlp {
    Mlp::Dense(DenseMlpSpec {
        intermediate,
        gated: false,
        bias,
        fused_gate_up: false,
    })
}

fn layer(mixer: Mixer, mlp: Mlp, norms: u64) -> LayerSpec {
    LayerSpec {
        mixer,
        mlp,
        norms,
        extra: Vec::new(),
    }
}

/// Expert count under any of transformers' names (`num_experts`, `num_local_experts`,
/// `n_routed_experts`, `moe_num_experts`).
pub(super) const EXPERT_FIELDS: &[&str] = &[
    "num_experts",
    "num_local_experts",
    "n_routed_experts",
    "moe_num_experts",
    "num_routed_experts",
];
/// Experts per token under any of transformers' names.
const TOP_K_FIELDS: &[&str] = &[
    "num_experts_per_tok",
    "num_experts_per_token",
    "experts_per_token",
    "moe_topk",
    "moe_k",
    "top_k_experts",
];

/// The first of `names` the config has, with its value.
fn first_named<'n>(f: &Fields<'_>, names: &[&'n str]) -> Result<Option<(&'n str, u64)>, CoreError> {
    for n in names {
        if let Some(v) = f.opt_u64(n)? {
            return Ok(Some((n, v)));
        }
    }
    Ok(None)
}

/// Routed experts and top-k under whichever alias the config uses, checked; errors name the
/// field the config has.
pub(super) fn experts(f: &Fields<'_>) -> Result<(u64, u64), CoreError> {
    let (field, num) = first_named(f, EXPERT_FIELDS)?.ok_or_else(|| {
        f.bad(
            "num_experts",
            "is missing (also looked for num_local_experts, n_routed_experts, moe_num_experts); \
             the config must give the expert count",
        )
    })?;
    let num = f.check_range(field, num, MAX_EXPERTS)?;
    let (k_field, k) = first_named(f, TOP_K_FIELDS)?.ok_or_else(|| {
        f.bad(
            "num_experts_per_tok",
            "is missing; the config must say how many experts each token uses",
        )
    })?;
    if k == 0 || k > num {
        return Err(f.bad(
            k_field,
            format!("is {k}; it must be between 1 and the number of experts ({num})"),
        ));
    }
    Ok((num, k))
}

fn width(f: &Fields<'_>, names: &[&str]) -> Result<u64, CoreError> {
    let first = names.first().copied().unwrap_or("width");
    match f.first_u64(names)? {
        Some(v) => f.check_range(first, v, MAX_DIMENSION),
        None => Err(f.bad(first, "is missing; the config must give it")),
    }
}

fn width_or(f: &Fields<'_>, names: &[&str], default: u64) -> Result<u64, CoreError> {
    let first = names.first().copied().unwrap_or("width");
    let v = f.first_u64(names)?.unwrap_or(default);
    f.check_range(first, v, MAX_DIMENSION)
}

fn moe(experts: (u64, u64), expert_intermediate: u64) -> MoeMlpSpec {
    MoeMlpSpec {
        experts: experts.0,
        top_k: experts.1,
        expert_intermediate,
        gated: true,
        expert_bias: false,
        router_bias: false,
        correction_bias: false,
        shared_intermediate: 0,
        shared_gate: false,
        latent: None,
    }
}

/// Sliding window from `sliding_window`, named in errors.
fn window(f: &Fields<'_>) -> Result<u64, CoreError> {
    match f.opt_u64("sliding_window")? {
        Some(w) if w > 0 => Ok(w),
        _ => Err(f.bad(
            "sliding_window",
            "is missing or 0 although the model has sliding-window layers",
        )),
    }
}

/// `layer_types` checked against the layer count.
fn layer_types(f: &Fields<'_>, n: u64) -> Result<Option<Vec<String>>, CoreError> {
    let Some(types) = f.opt_str_list("layer_types")? else {
        return Ok(None);
    };
    if types.len() as u64 != n {
        return Err(f.bad(
            "layer_types",
            format!(
                "lists {} layers but num_hidden_layers is {n}; fix the config",
                types.len()
            ),
        ));
    }
    Ok(Some(types))
}

/// Span of a softmax attention layer named in `layer_types`; `None` for a name that is not
/// softmax attention.
fn span_of(f: &Fields<'_>, t: &str) -> Result<Option<LayerAttention>, CoreError> {
    Ok(match t {
        "full_attention" | "attention" | "global_attention" => Some(LayerAttention::Full),
        "sliding_attention" | "sliding_window" | "local_attention" => {
            Some(LayerAttention::Sliding { window: window(f)? })
        }
        "chunked_attention" => Some(LayerAttention::Chunked {
            chunk: f.check_range(
                "attention_chunk_size",
                f.u64("attention_chunk_size")?,
                super::MAX_CONTEXT_TOKENS,
            )?,
        }),
        _ => None,
    })
}

/// Spans of every layer from `layer_types` (only full/sliding/chunked allowed), or all full.
fn spans(f: &Fields<'_>, n: u64) -> Result<Vec<LayerAttention>, CoreError> {
    match layer_types(f, n)? {
        Some(types) => types
            .iter()
            .map(|t| {
                span_of(f, t)?.ok_or_else(|| {
                    f.bad(
                        "layer_types",
                        format!("has `{t}`, a layer kind headroom does not know for this family"),
                    )
                })
            })
            .collect(),
        None => Ok(vec![LayerAttention::Full; n as usize]),
    }
}

/// Layers whose MLP is a MoE under Qwen's rule: not in `mlp_only_layers` and
/// `(i + 1) % decoder_sparse_step == 0`.
fn qwen_sparse(f: &Fields<'_>, n: u64) -> Result<Vec<bool>, CoreError> {
    let step = f.u64_or("decoder_sparse_step", 1)?;
    let step = f.check_range("decoder_sparse_step", step, MAX_LAYERS)?;
    let only = f.opt_u64_list("mlp_only_layers")?.unwrap_or_default();
    Ok((0..n)
        .map(|i| !only.contains(&i) && (i + 1) % step == 0)
        .collect())
}

/// Layers whose MLP is a MoE under DeepSeek's rule: `i >= first_k_dense_replace` and
/// `i % moe_layer_freq == 0` (`mlp_layer_types` when transformers 5 wrote it).
fn deepseek_sparse(f: &Fields<'_>, n: u64, first_default: u64) -> Result<Vec<bool>, CoreError> {
    if let Some(types) = f.opt_str_list("mlp_layer_types")? {
        if types.len() as u64 != n {
            return Err(f.bad(
                "mlp_layer_types",
                format!("lists {} layers but num_hidden_layers is {n}", types.len()),
            ));
        }
        return types
            .iter()
            .map(|t| match t.as_str() {
                "sparse" | "moe" => Ok(true),
                "dense" | "mlp" => Ok(false),
                other => Err(f.bad(
                    "mlp_layer_types",
                    format!("has `{other}`; headroom knows dense and sparse"),
                )),
            })
            .collect();
    }
    let first = f.u64_or("first_k_dense_replace", first_default)?;
    let freq = f.u64_or("moe_layer_freq", 1)?;
    let freq = f.check_range("moe_layer_freq", freq, MAX_LAYERS)?;
    Ok((0..n).map(|i| i >= first && i % freq == 0).collect())
}

/// The family's layers, or `None` for the classic families [`crate::model::ModelSpec::layers`]
/// derives.
pub(super) fn family(
    f: &Fields<'_>,
    arch: &Architecture,
    c: &Common,
) -> Result<Option<Family>, CoreError> {
    let n = c.num_layers;
    let out = match arch {
        Architecture::NemotronH => nemotron_h(f, c)?,
        Architecture::Qwen3Next | Architecture::Qwen35 | Architecture::Qwen35Moe => {
            qwen3_next(f, c, arch)?
        }
        Architecture::Starcoder2 => {
            let bias = f.bool_or("use_bias", true)?;
            let o = AttnOpts {
                qkv_bias: bias,
                output_bias: bias,
                ..AttnOpts::default()
            };
            let spans = starcoder_spans(f, n)?;
            let mut fam = Family::new(
                spans
                    .into_iter()
                    .map(|s| layer(attention(c, s, o), ungated(c.intermediate, bias), 2))
                    .collect(),
            );
            fam.norm_bias = true;
            fam
        }
        Architecture::Cohere | Architecture::Cohere2 => {
            // Parallel block: one LayerNorm (no bias) feeds attention and MLP; the optional q/k
            // norms are LayerNorms over [heads, head_dim].
            let qk = if f.bool_or("use_qk_norm", false)? {
                QkNorm::Whole
            } else {
                QkNorm::None
            };
            let o = AttnOpts {
                qkv_bias: c.attention_bias,
                output_bias: c.attention_bias,
                qk_norm: qk,
                ..AttnOpts::default()
            };
            let spans = if *arch == Architecture::Cohere2 {
                cohere2_spans(f, n)?
            } else {
                vec![LayerAttention::Full; n as usize]
            };
            Family::new(
                spans
                    .into_iter()
                    .map(|s| layer(attention(c, s, o), gated(c.intermediate, false), 1))
                    .collect(),
            )
        }
        Architecture::Olmo2 | Architecture::Olmo3 => {
            let o = AttnOpts {
                qkv_bias: c.attention_bias,
                output_bias: c.attention_bias,
                qk_norm: QkNorm::Whole,
                ..AttnOpts::default()
            };
            let spans = spans(f, n)?;
            Family::new(
                spans
                    .into_iter()
                    .map(|s| layer(attention(c, s, o), gated(c.intermediate, false), 2))
                    .collect(),
            )
        }
        Architecture::Olmoe => {
            let o = AttnOpts {
                qkv_bias: c.attention_bias,
                output_bias: c.attention_bias,
                qk_norm: QkNorm::Whole,
                ..AttnOpts::default()
            };
            let e = experts(f)?;
            Family::new(
                (0..n)
                    .map(|_| {
                        layer(
                            attention(c, LayerAttention::Full, o),
                            Mlp::Moe(moe(e, c.intermediate)),
                            2,
                        )
                    })
                    .collect(),
            )
        }
        Architecture::Granite
        | Architecture::Smollm3
        | Architecture::Apertus
        | Architecture::Ernie45
        | Architecture::SeedOss
        | Architecture::HunyuanV1Dense => dense_llama_like(f, c, arch)?,
        Architecture::GraniteMoe => {
            let o = AttnOpts {
                qkv_bias: c.attention_bias,
                output_bias: c.attention_bias,
                ..AttnOpts::default()
            };
            let e = experts(f)?;
            let shared = f.u64_or("shared_intermediate_size", 0)?;
            Family::new(
                (0..n)
                    .map(|_| {
                        let mut m = moe(e, c.intermediate);
                        m.shared_intermediate = shared;
                        layer(attention(c, LayerAttention::Full, o), Mlp::Moe(m), 2)
                    })
                    .collect(),
            )
        }
        Architecture::Exaone4 => {
            let o = AttnOpts {
                qk_norm: QkNorm::PerHead,
                ..AttnOpts::default()
            };
            let spans = spans(f, n)?;
            // Post-norms only: post_attention_layernorm, post_feedforward_layernorm.
            Family::new(
                spans
                    .into_iter()
                    .map(|s| layer(attention(c, s, o), gated(c.intermediate, false), 2))
                    .collect(),
            )
        }
        Architecture::Glm4 => {
            // Four norms (input, post_self_attn, post_attention, post_mlp); fused gate_up.
            let o = AttnOpts {
                qkv_bias: c.attention_bias,
                ..AttnOpts::default()
            };
            Family::new(
                (0..n)
                    .map(|_| {
                        layer(
                            attention(c, LayerAttention::Full, o),
                            Mlp::Dense(DenseMlpSpec {
                                intermediate: c.intermediate,
                                gated: true,
                                bias: false,
                                fused_gate_up: true,
                            }),
                            4,
                        )
                    })
                    .collect(),
            )
        }
        Architecture::Glm4Moe | Architecture::MinimaxM2 => glm4_moe(f, c, arch)?,
        Architecture::DeepseekV32
        | Architecture::Glm4MoeLite
        | Architecture::GlmMoeDsa
        | Architecture::Mistral4 => deepseek_like(f, c, arch)?,
        Architecture::GraniteMoeHybrid => granite_hybrid(f, c)?,
        Architecture::Minimax => minimax(f, c)?,
        Architecture::FalconH1 => falcon_h1(f, c)?,
        Architecture::KimiLinear => kimi_linear(f, c)?,
        Architecture::Mllama => mllama(f, c)?,
        Architecture::Gemma4 => gemma4(f, c)?,
        Architecture::Gemma3n => gemma3n(f, c)?,
        Architecture::DeepseekV4 => deepseek_v4(f, c)?,
        Architecture::MimoV2Flash => mimo_v2_flash(f, c)?,
        Architecture::Ernie45Moe => ernie_moe(f, c)?,
        Architecture::HunyuanV1Moe => hunyuan_moe(f, c)?,
        Architecture::Phimoe => {
            // PhiMoE: LayerNorms with biases, biased attention (`attention_bias`), a router
            // without bias and Mixtral-style experts of `intermediate_size`.
            let o = AttnOpts {
                qkv_bias: c.attention_bias,
                output_bias: c.attention_bias,
                ..AttnOpts::default()
            };
            let spans = starcoder_spans(f, n)?;
            let e = experts(f)?;
            let mut fam = Family::new(
                spans
                    .into_iter()
                    .map(|s| layer(attention(c, s, o), Mlp::Moe(moe(e, c.intermediate)), 2))
                    .collect(),
            );
            fam.norm_bias = true;
            fam
        }
        Architecture::Llama4 => llama4(f, c)?,
        Architecture::Lfm2 | Architecture::Lfm2Moe => lfm2(f, c, arch)?,
        _ => return Ok(None),
    };
    Ok(Some(out))
}

/// StarCoder2: `sliding_window` on every layer when set (as Mistral), or `layer_types`.
fn starcoder_spans(f: &Fields<'_>, n: u64) -> Result<Vec<LayerAttention>, CoreError> {
    if f.has("layer_types") {
        return spans(f, n);
    }
    Ok(match f.opt_u64("sliding_window")? {
        Some(w) if w > 0 => vec![LayerAttention::Sliding { window: w }; n as usize],
        _ => vec![LayerAttention::Full; n as usize],
    })
}

/// Cohere-2: `layer_types`, else every `sliding_window_pattern`-th layer global.
fn cohere2_spans(f: &Fields<'_>, n: u64) -> Result<Vec<LayerAttention>, CoreError> {
    if f.has("layer_types") {
        return spans(f, n);
    }
    let pattern = f.u64_or("sliding_window_pattern", 4)?;
    let pattern = f.check_range("sliding_window_pattern", pattern, MAX_LAYERS)?;
    let w = window(f)?;
    Ok((0..n)
        .map(|i| {
            if (i + 1) % pattern != 0 {
                LayerAttention::Sliding { window: w }
            } else {
                LayerAttention::Full
            }
        })
        .collect())
}

/// Llama-shaped dense families that differ only in biases, q/k norms and MLP gating.
fn dense_llama_like(f: &Fields<'_>, c: &Common, arch: &Architecture) -> Result<Family, CoreError> {
    let n = c.num_layers;
    let spans = spans(f, n)?;
    let mut o = AttnOpts {
        qkv_bias: c.attention_bias,
        output_bias: c.attention_bias,
        ..AttnOpts::default()
    };
    let mut mlp = gated(c.intermediate, c.mlp_bias);
    let mut extra = Vec::new();
    match arch {
        // Ernie 4.5: `use_bias` on every attention and MLP projection.
        Architecture::Ernie45 => {
            let b = f.bool_or("use_bias", false)?;
            o.qkv_bias = b;
            o.output_bias = b;
            mlp = gated(c.intermediate, b);
        }
        // Seed-OSS: q/k/v biases (`attention_bias`), output bias (`attention_out_bias`).
        Architecture::SeedOss => {
            o.output_bias = f.bool_or("attention_out_bias", false)?;
        }
        // Hunyuan: per-head query/key RMSNorms.
        Architecture::HunyuanV1Dense => o.qk_norm = QkNorm::PerHead,
        // Apertus: per-head q/k norms; an ungated MLP whose xIELU activation learns two
        // scalars (alpha_p, alpha_n) per layer.
        Architecture::Apertus => {
            o.qk_norm = QkNorm::PerHead;
            mlp = ungated(c.intermediate, c.mlp_bias);
            for _ in 0..2 {
                extra.push(crate::model::ExtraWeight {
                    what: crate::model::ExtraWeightKind::Gate,
                    shape: vec![1],
                });
            }
        }
        _ => {}
    }
    Ok(Family::new(
        spans
            .into_iter()
            .map(|s| LayerSpec {
                mixer: attention(c, s, o),
                mlp: mlp.clone(),
                norms: 2,
                extra: extra.clone(),
            })
            .collect(),
    ))
}

/// A field that is one integer for every layer or a list with one per layer (Hunyuan's
/// `num_experts`, `moe_topk`): `n` values, or `None` when the config leaves it out.
fn per_layer_u64(f: &Fields<'_>, field: &str, n: u64) -> Result<Option<Vec<u64>>, CoreError> {
    match f.get(field) {
        None => Ok(None),
        Some(serde_json::Value::Array(_)) => {
            let list = f.opt_u64_list(field)?.unwrap_or_default();
            if list.len() as u64 != n {
                return Err(f.bad(
                    field,
                    format!(
                        "lists {} values for {n} layers; it must give one per layer",
                        list.len()
                    ),
                ));
            }
            Ok(Some(list))
        }
        Some(_) => Ok(f.opt_u64(field)?.map(|v| vec![v; n as usize])),
    }
}

/// Hunyuan-MoE (`HunYuanMoEV1`): Llama attention with per-head q/k norms and biases from
/// `attention_bias`; every layer a MoE block of `num_experts` experts (an int or one per layer)
/// choosing `moe_topk` (likewise), each expert and the always-on `shared_mlp` a gated MLP of
/// `intermediate_size` (transformers builds both from it; `moe_intermediate_size` is unread).
fn hunyuan_moe(f: &Fields<'_>, c: &Common) -> Result<Family, CoreError> {
    let n = c.num_layers;
    let o = AttnOpts {
        qkv_bias: c.attention_bias,
        output_bias: c.attention_bias,
        qk_norm: QkNorm::PerHead,
        ..AttnOpts::default()
    };
    // HunYuanMoEV1Config: num_experts and moe_topk default to 1.
    let experts = per_layer_u64(f, "num_experts", n)?.unwrap_or_else(|| vec![1; n as usize]);
    let top_k = per_layer_u64(f, "moe_topk", n)?.unwrap_or_else(|| vec![1; n as usize]);
    let mut layers = Vec::with_capacity(n as usize);
    for (e, k) in experts.into_iter().zip(top_k) {
        let e = f.check_range("num_experts", e, MAX_EXPERTS)?;
        if k == 0 || k > e {
            return Err(f.bad(
                "moe_topk",
                format!("is {k}; it must be between 1 and the number of experts ({e})"),
            ));
        }
        let mut m = moe((e, k), c.intermediate);
        m.shared_intermediate = c.intermediate;
        layers.push(layer(attention(c, LayerAttention::Full, o), Mlp::Moe(m), 2));
    }
    Ok(Family::new(layers))
}

/// Nemotron-H's block kinds in order: `hybrid_override_pattern` (`M`, `*`, `-`, `E`) or
/// `layers_block_type` / `layer_types`.
fn nemotron_h_kinds(f: &Fields<'_>) -> Result<Vec<String>, CoreError> {
    let kinds: Vec<String> = match f.opt_str("hybrid_override_pattern")? {
        Some(p) => p
            .chars()
            .map(|ch| match ch {
                'M' => Ok("mamba".to_string()),
                '*' => Ok("attention".to_string()),
                '-' => Ok("mlp".to_string()),
                'E' => Ok("moe".to_string()),
                other => Err(f.bad(
                    "hybrid_override_pattern",
                    format!(
                        "has `{other}`; headroom knows M (Mamba), * (attention), - (MLP), E (MoE)"
                    ),
                )),
            })
            .collect::<Result<_, _>>()?,
        None => match f
            .opt_str_list("layers_block_type")?
            .or(f.opt_str_list("layer_types")?)
        {
            Some(list) => list,
            None => {
                return Err(f.bad(
                    "hybrid_override_pattern",
                    "is missing (and so is layers_block_type); Nemotron-H needs its layer pattern",
                ));
            }
        },
    };
    Ok(kinds)
}

/// Nemotron-H's depth: the length of its layer pattern.
pub(super) fn nemotron_h_depth(f: &Fields<'_>) -> Result<u64, CoreError> {
    f.check_range(
        "hybrid_override_pattern",
        nemotron_h_kinds(f)?.len() as u64,
        MAX_LAYERS,
    )
}

/// Nemotron-H: one block per layer, each a Mamba-2 mixer, an attention, an MLP or a MoE, after
/// one RMSNorm (`hybrid_override_pattern`: `M`, `*`, `-`, `E`; or `layers_block_type`).
fn nemotron_h(f: &Fields<'_>, c: &Common) -> Result<Family, CoreError> {
    let kinds = nemotron_h_kinds(f)?;
    let n = f.check_range("hybrid_override_pattern", kinds.len() as u64, MAX_LAYERS)?;
    let m2 = Mamba2Spec {
        heads: width(f, &["mamba_num_heads"])?,
        head_dim: width(f, &["mamba_head_dim"])?,
        state_size: width_or(f, &["ssm_state_size"], 128)?,
        groups: width_or(f, &["n_groups", "mamba_n_groups"], 8)?,
        conv_kernel: width_or(f, &["conv_kernel", "mamba_d_conv"], 4)?,
        proj_bias: f.bool_or("use_bias", false)?,
        conv_bias: match f.opt_bool("use_conv_bias")? {
            Some(b) => b,
            None => f.bool_or("mamba_conv_bias", true)?,
        },
        gated_norm: true,
    };
    let o = AttnOpts {
        qkv_bias: c.attention_bias,
        output_bias: c.attention_bias,
        ..AttnOpts::default()
    };
    let moe_mlp = || -> Result<Mlp, CoreError> {
        let e = experts(f)?;
        let mut m = moe(e, width(f, &["moe_intermediate_size"])?);
        m.gated = false;
        m.correction_bias = true;
        m.shared_intermediate = if f.u64_or("n_shared_experts", 1)? > 0 {
            width_or(f, &["moe_shared_expert_intermediate_size"], 7688)?
        } else {
            0
        };
        m.latent = match f.opt_u64("moe_latent_size")? {
            Some(l) => Some(f.check_range("moe_latent_size", l, MAX_DIMENSION)?),
            None => None,
        };
        Ok(Mlp::Moe(m))
    };
    let mut layers = Vec::with_capacity(kinds.len());
    for k in &kinds {
        let l = match k.as_str() {
            "mamba" | "linear_attention" => layer(Mixer::Mamba2(m2.clone()), Mlp::None, 1),
            "attention" | "full_attention" => {
                layer(attention(c, LayerAttention::Full, o), Mlp::None, 1)
            }
            "mlp" => layer(Mixer::None, ungated(c.intermediate, c.mlp_bias), 1),
            "moe" => layer(Mixer::None, moe_mlp()?, 1),
            other => {
                return Err(f.bad(
                    "layers_block_type",
                    format!("has `{other}`; headroom knows mamba, attention, mlp, moe"),
                ));
            }
        };
        layers.push(l);
    }
    let mut fam = Family::new(layers);
    fam.num_layers = Some(n);
    let mtp = f.u64_or("num_nextn_predict_layers", 0)?;
    if mtp > 0 {
        // MTP blocks are an attention and a MoE layer (`mtp_layers_block_type`).
        fam.mtp = Some(MtpSpec {
            layers: mtp,
            layer: layer(attention(c, LayerAttention::Full, o), moe_mlp()?, 2),
            own_embedding: false,
        });
    }
    Ok(fam)
}

/// Qwen3-Next / Qwen3.5: Gated DeltaNet and gated full attention (`layer_types`, else every
/// `full_attention_interval`-th layer full), MoE (Qwen3-Next, Qwen3.5-MoE) or dense MLPs.
fn qwen3_next(f: &Fields<'_>, c: &Common, arch: &Architecture) -> Result<Family, CoreError> {
    let n = c.num_layers;
    let kinds: Vec<bool> = match layer_types(f, n)? {
        Some(types) => types
            .iter()
            .map(|t| match t.as_str() {
                "linear_attention" => Ok(true),
                "full_attention" => Ok(false),
                other => Err(f.bad(
                    "layer_types",
                    format!("has `{other}`; headroom knows linear_attention and full_attention"),
                )),
            })
            .collect::<Result<_, _>>()?,
        None => {
            let every = f.u64_or("full_attention_interval", 4)?;
            let every = f.check_range("full_attention_interval", every, MAX_LAYERS)?;
            (0..n).map(|i| (i + 1) % every != 0).collect()
        }
    };
    let la = LinearAttentionSpec {
        key_heads: width(f, &["linear_num_key_heads"])?,
        value_heads: width(f, &["linear_num_value_heads"])?,
        key_head_dim: width(f, &["linear_key_head_dim"])?,
        value_head_dim: width(f, &["linear_value_head_dim"])?,
        conv_kernel: width_or(f, &["linear_conv_kernel_dim"], 4)?,
        split_projections: *arch != Architecture::Qwen3Next,
    };
    let o = AttnOpts {
        qkv_bias: c.attention_bias,
        output_bias: false,
        qk_norm: QkNorm::PerHead,
        output_gate: true,
    };
    let is_moe = *arch != Architecture::Qwen35;
    let sparse = if is_moe {
        qwen_sparse(f, n)?
    } else {
        vec![false; n as usize]
    };
    let moe_spec = if is_moe {
        let e = experts(f)?;
        let mut m = moe(e, width(f, &["moe_intermediate_size"])?);
        m.shared_intermediate = f.u64_or("shared_expert_intermediate_size", 0)?;
        m.shared_gate = m.shared_intermediate > 0;
        Some(m)
    } else {
        None
    };
    let mut layers = Vec::with_capacity(n as usize);
    for (i, linear) in kinds.iter().enumerate() {
        let mixer = if *linear {
            Mixer::LinearAttention(la.clone())
        } else {
            attention(c, LayerAttention::Full, o)
        };
        let mlp = match (&moe_spec, sparse.get(i).copied().unwrap_or(false)) {
            (Some(m), true) => Mlp::Moe(m.clone()),
            // A dense layer needs the config's own dense width (never the expert width).
            _ => gated(width(f, &["intermediate_size"])?, false),
        };
        layers.push(layer(mixer, mlp, 2));
    }
    let mut fam = Family::new(layers);
    let mtp = f.u64_or("mtp_num_hidden_layers", 0)?;
    if mtp > 0 {
        let mlp = match &moe_spec {
            Some(m) => Mlp::Moe(m.clone()),
            None => gated(c.intermediate, false),
        };
        fam.mtp = Some(MtpSpec {
            layers: mtp,
            layer: layer(attention(c, LayerAttention::Full, o), mlp, 2),
            own_embedding: false,
        });
    }
    Ok(fam)
}

/// GLM-4.5 (`glm4_moe`) and MiniMax-M2: attention + MoE with a score correction bias; GLM has
/// shared experts and dense first layers, MiniMax q/k norms over the whole projection.
fn glm4_moe(f: &Fields<'_>, c: &Common, arch: &Architecture) -> Result<Family, CoreError> {
    let n = c.num_layers;
    let spans = spans(f, n)?;
    let e = experts(f)?;
    let minimax = *arch == Architecture::MinimaxM2;
    let (o, expert_width, sparse, shared) = if minimax {
        (
            AttnOpts {
                qk_norm: if f.bool_or("use_qk_norm", true)? {
                    QkNorm::Whole
                } else {
                    QkNorm::None
                },
                ..AttnOpts::default()
            },
            c.intermediate,
            vec![true; n as usize],
            0,
        )
    } else {
        let ew = width(f, &["moe_intermediate_size"])?;
        let shared = f.u64_or("n_shared_experts", 0)?;
        if shared > MAX_EXPERTS {
            return Err(f.bad("n_shared_experts", "is implausibly large; fix the config"));
        }
        (
            AttnOpts {
                qkv_bias: c.attention_bias,
                qk_norm: if f.bool_or("use_qk_norm", false)? {
                    QkNorm::PerHead
                } else {
                    QkNorm::None
                },
                ..AttnOpts::default()
            },
            ew,
            deepseek_sparse(f, n, 1)?,
            shared.saturating_mul(ew),
        )
    };
    let mut m = moe(e, expert_width);
    m.correction_bias = !minimax || f.bool_or("use_routing_bias", true)?;
    m.shared_intermediate = shared;
    let layers: Vec<LayerSpec> = spans
        .into_iter()
        .zip(sparse)
        .map(|(s, sp)| {
            let mlp = if sp {
                Mlp::Moe(m.clone())
            } else {
                gated(c.intermediate, false)
            };
            layer(attention(c, s, o), mlp, 2)
        })
        .collect();
    let mut fam = Family::new(layers);
    let mtp = f.u64_or("num_nextn_predict_layers", 0)?;
    if mtp > 0 && !minimax {
        fam.mtp = Some(MtpSpec {
            layers: mtp,
            layer: layer(attention(c, LayerAttention::Full, o), Mlp::Moe(m), 2),
            own_embedding: true,
        });
    }
    Ok(fam)
}

/// MLA shapes from the DeepSeek fields.
fn mla_of(f: &Fields<'_>) -> Result<MlaSpec, CoreError> {
    let q_lora_rank = match f.opt_u64("q_lora_rank")? {
        Some(r) => Some(f.check_range("q_lora_rank", r, MAX_DIMENSION)?),
        None => None,
    };
    Ok(MlaSpec {
        q_lora_rank,
        kv_lora_rank: width(f, &["kv_lora_rank"])?,
        qk_rope_head_dim: width(f, &["qk_rope_head_dim"])?,
        qk_nope_head_dim: width(f, &["qk_nope_head_dim"])?,
        v_head_dim: width(f, &["v_head_dim"])?,
    })
}

/// DeepSeek-V3-shaped families outside `deepseek_v3`: MLA (with the V3.2 / GLM-5 indexer where
/// the config names one) and MoE with shared experts, dense first layers and a correction bias.
fn deepseek_like(f: &Fields<'_>, c: &Common, arch: &Architecture) -> Result<Family, CoreError> {
    let n = c.num_layers;
    let mla = mla_of(f)?;
    let indexer = if matches!(arch, Architecture::DeepseekV32 | Architecture::GlmMoeDsa)
        || f.has("index_head_dim")
    {
        Some(IndexerSpec {
            heads: width(f, &["index_n_heads"])?,
            head_dim: width(f, &["index_head_dim"])?,
            topk: width(f, &["index_topk"])?,
        })
    } else {
        None
    };
    let e = experts(f)?;
    let ew = width(f, &["moe_intermediate_size"])?;
    let shared = f.u64_or("n_shared_experts", 0)?;
    if shared > MAX_EXPERTS {
        return Err(f.bad("n_shared_experts", "is implausibly large; fix the config"));
    }
    let mut m = moe(e, ew);
    m.correction_bias = true;
    m.shared_intermediate = shared.saturating_mul(ew);
    // Class defaults: Glm4MoeLiteConfig keeps its first layer dense, the others none.
    let first_default = u64::from(*arch == Architecture::Glm4MoeLite);
    let sparse = deepseek_sparse(f, n, first_default)?;
    let mixer = Mixer::Mla {
        heads: c.heads,
        mla,
        indexer,
    };
    let layers: Vec<LayerSpec> = sparse
        .iter()
        .map(|sp| {
            let mlp = if *sp {
                Mlp::Moe(m.clone())
            } else {
                gated(c.intermediate, false)
            };
            layer(mixer.clone(), mlp, 2)
        })
        .collect();
    let mut fam = Family::new(layers);
    let mtp = f.u64_or("num_nextn_predict_layers", 0)?;
    if mtp > 0 {
        fam.mtp = Some(MtpSpec {
            layers: mtp,
            layer: layer(mixer, Mlp::Moe(m), 2),
            own_embedding: true,
        });
    }
    Ok(fam)
}

/// Llama 4 text: chunked attention on RoPE layers and full attention on NoPE layers
/// (`no_rope_layers`, or `layer_types`), MoE every `interleave_moe_layer_step`-th layer (or
/// `moe_layers`) with one shared expert, dense `intermediate_size_mlp` elsewhere.
fn llama4(f: &Fields<'_>, c: &Common) -> Result<Family, CoreError> {
    let n = c.num_layers;
    let chunk = f.opt_u64("attention_chunk_size")?;
    let spans: Vec<LayerAttention> = if f.has("layer_types") {
        spans(f, n)?
    } else {
        let no_rope = match f.opt_u64_list("no_rope_layers")? {
            Some(l) if !l.is_empty() => {
                if l.len() as u64 != n {
                    return Err(f.bad(
                        "no_rope_layers",
                        format!("lists {} layers but num_hidden_layers is {n}", l.len()),
                    ));
                }
                l
            }
            // Llama4TextConfig: every 4th layer is NoPE (`int((i + 1) % 4 != 0)`).
            _ => (0..n).map(|i| u64::from((i + 1) % 4 != 0)).collect(),
        };
        no_rope
            .iter()
            .map(|&rope| match (rope, chunk) {
                (1, Some(ch)) if ch > 0 => LayerAttention::Chunked { chunk: ch },
                _ => LayerAttention::Full,
            })
            .collect()
    };
    let moe_layers: Vec<u64> = match f.opt_u64_list("moe_layers")? {
        Some(l) => l,
        None => {
            let step = f.u64_or("interleave_moe_layer_step", 1)?;
            let step = f.check_range("interleave_moe_layer_step", step, MAX_LAYERS)?;
            (0..n).filter(|i| (i + 1) % step == 0).collect()
        }
    };
    let e = experts(f)?;
    let mut m = moe(e, c.intermediate);
    // One shared expert of the expert width (Llama4TextMoe.shared_expert).
    m.shared_intermediate = c.intermediate;
    let dense_width = width_or(f, &["intermediate_size_mlp"], c.intermediate)?;
    let o = AttnOpts {
        qkv_bias: c.attention_bias,
        output_bias: c.attention_bias,
        ..AttnOpts::default()
    };
    Ok(Family::new(
        spans
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let mlp = if moe_layers.contains(&(i as u64)) {
                    Mlp::Moe(m.clone())
                } else {
                    gated(dense_width, false)
                };
                layer(attention(c, s, o), mlp, 2)
            })
            .collect(),
    ))
}

/// LFM2 / LFM2-MoE: short-conv and attention layers (`layer_types`: `conv`, `full_attention`),
/// per-head q/k norms, gated MLPs (LFM2's width rule) or MoE after `num_dense_layers`.
fn lfm2(f: &Fields<'_>, c: &Common, arch: &Architecture) -> Result<Family, CoreError> {
    let n = c.num_layers;
    // Lfm2Config: `layer_types`, else attention on `full_attn_idxs` (all layers without it).
    let types = match layer_types(f, n)? {
        Some(t) => t,
        None => {
            let full = f.opt_u64_list("full_attn_idxs")?;
            (0..n)
                .map(|i| match &full {
                    Some(idx) if !idx.contains(&i) => "conv".to_string(),
                    _ => "full_attention".to_string(),
                })
                .collect()
        }
    };
    let sc = ShortConvSpec {
        kernel: width_or(f, &["conv_L_cache"], 3)?,
        bias: f.bool_or("conv_bias", false)?,
    };
    let o = AttnOpts {
        qk_norm: QkNorm::PerHead,
        ..AttnOpts::default()
    };
    let dense_width = if *arch == Architecture::Lfm2 {
        // Lfm2Config reads the original checkpoints' `block_ff_dim` over `intermediate_size`.
        let base = width_or(f, &["block_ff_dim"], c.intermediate)?;
        lfm2_ff_width(f, base)?
    } else {
        c.intermediate
    };
    let moe_spec = if *arch == Architecture::Lfm2Moe {
        let e = experts(f)?;
        let mut m = moe(e, width(f, &["moe_intermediate_size"])?);
        m.correction_bias = f.bool_or("use_expert_bias", true)?;
        Some((m, f.u64_or("num_dense_layers", 0)?))
    } else {
        None
    };
    let mut layers = Vec::with_capacity(types.len());
    for (i, t) in types.iter().enumerate() {
        let mixer = match t.as_str() {
            "conv" | "short_conv" => Mixer::ShortConv(sc.clone()),
            other => match span_of(f, other)? {
                Some(s) => attention(c, s, o),
                None => {
                    return Err(f.bad(
                        "layer_types",
                        format!("has `{other}`; headroom knows conv and full_attention"),
                    ));
                }
            },
        };
        let mlp = match &moe_spec {
            Some((m, dense)) if i as u64 >= *dense => Mlp::Moe(m.clone()),
            _ => gated(dense_width, false),
        };
        layers.push(layer(mixer, mlp, 2));
    }
    Ok(Family::new(layers))
}

/// LFM2's MLP width: `int(2·I/3)` when `block_auto_adjust_ff_dim`, then × `block_ffn_dim_multiplier`
/// rounded up to `block_multiple_of` (an explicit `null` multiplier skips the rounding).
fn lfm2_ff_width(f: &Fields<'_>, intermediate: u64) -> Result<u64, CoreError> {
    // Lfm2Config defaults: block_auto_adjust_ff_dim true, block_ffn_dim_multiplier 1.0,
    // block_multiple_of 256 (LFM2-2.6B lists none of them: 10752 → 7168).
    if !f.bool_or("block_auto_adjust_ff_dim", true)? {
        return Ok(intermediate);
    }
    let mut w = 2 * intermediate / 3;
    let multiplier = match f.map.get("block_ffn_dim_multiplier") {
        None => Some(1.0),
        Some(serde_json::Value::Null) => None,
        Some(_) => f.opt_f64("block_ffn_dim_multiplier")?,
    };
    if let Some(mult) = multiplier {
        w = (mult * w as f64) as u64;
        let multiple = f.u64_or("block_multiple_of", 256)?.max(1);
        w = w.div_ceil(multiple).saturating_mul(multiple);
    }
    f.check_range("intermediate_size", w, MAX_DIMENSION)
}

/// Granite 4 (`granitemoehybrid`): Mamba-2 (Bamba's mixer) or attention per `layer_types` /
/// `layers_block_type`, a MoE block when `num_local_experts` > 0 and always the shared MLP
/// (`shared_intermediate_size`, gated, fused input_linear).
fn granite_hybrid(f: &Fields<'_>, c: &Common) -> Result<Family, CoreError> {
    let n = c.num_layers;
    let types: Vec<String> = match f
        .opt_str_list("layer_types")?
        .or(f.opt_str_list("layers_block_type")?)
    {
        Some(t) => t,
        None => vec!["mamba".to_string(); n as usize],
    };
    if types.len() as u64 != n {
        return Err(f.bad(
            "layer_types",
            format!("lists {} layers but num_hidden_layers is {n}", types.len()),
        ));
    }
    let heads = width(f, &["mamba_n_heads"])?;
    let m2 = Mamba2Spec {
        heads,
        head_dim: width(f, &["mamba_d_head"])?,
        state_size: width(f, &["mamba_d_state"])?,
        groups: width_or(f, &["mamba_n_groups"], 1)?,
        conv_kernel: width_or(f, &["mamba_d_conv"], 4)?,
        proj_bias: f.bool_or("mamba_proj_bias", false)?,
        conv_bias: f.bool_or("mamba_conv_bias", true)?,
        gated_norm: true,
    };
    let o = AttnOpts {
        qkv_bias: c.attention_bias,
        output_bias: c.attention_bias,
        ..AttnOpts::default()
    };
    let shared = f.u64_or("shared_intermediate_size", 0)?;
    let num_experts = f.u64_or("num_local_experts", 0)?;
    let mlp = if num_experts > 0 {
        let mut m = moe(experts(f)?, c.intermediate);
        m.shared_intermediate = shared;
        Mlp::Moe(m)
    } else {
        gated(
            f.check_range("shared_intermediate_size", shared, MAX_DIMENSION)?,
            false,
        )
    };
    let layers = types
        .iter()
        .map(|t| {
            let mixer = match t.as_str() {
                "mamba" | "linear_attention" => Mixer::Mamba2(m2.clone()),
                "attention" | "full_attention" => attention(c, LayerAttention::Full, o),
                other => {
                    return Err(f.bad(
                        "layer_types",
                        format!("has `{other}`; headroom knows mamba and attention"),
                    ));
                }
            };
            Ok(layer(mixer, mlp.clone(), 2))
        })
        .collect::<Result<Vec<_>, CoreError>>()?;
    Ok(Family::new(layers))
}

/// Ernie 4.5 MoE: MoE on layers `moe_layer_start_index..=moe_layer_end_index` every
/// `moe_layer_interval`-th, shared experts of `moe_num_shared_experts · moe_intermediate_size`,
/// a per-expert correction bias stored as a parameter (`moe_statics`), `use_bias` everywhere.
fn ernie_moe(f: &Fields<'_>, c: &Common) -> Result<Family, CoreError> {
    let n = c.num_layers;
    let b = f.bool_or("use_bias", false)?;
    let o = AttnOpts {
        qkv_bias: b,
        output_bias: b,
        ..AttnOpts::default()
    };
    let e = experts(f)?;
    let ew = width(f, &["moe_intermediate_size"])?;
    let shared = f.u64_or("moe_num_shared_experts", 0)?;
    let start = f.u64_or("moe_layer_start_index", 0)?;
    let end = f.u64_or("moe_layer_end_index", n.saturating_sub(1))?;
    let interval = f.u64_or("moe_layer_interval", 1)?;
    let interval = f.check_range("moe_layer_interval", interval, MAX_LAYERS)?;
    let mut m = moe(e, ew);
    m.shared_intermediate = shared.saturating_mul(ew);
    let layers = (0..n)
        .map(|i| {
            let sparse = (i + 1) % interval == 0 && i >= start && i <= end;
            let mlp = if sparse {
                Mlp::Moe(m.clone())
            } else {
                gated(c.intermediate, b)
            };
            let mut l = layer(attention(c, LayerAttention::Full, o), mlp, 2);
            if sparse {
                // moe_statics.e_score_correction_bias: an nn.Parameter of [1, experts].
                l.extra.push(crate::model::ExtraWeight {
                    what: crate::model::ExtraWeightKind::Gate,
                    shape: vec![1, e.0],
                });
            }
            l
        })
        .collect();
    Ok(Family::new(layers))
}

/// MiniMax-01 (`minimax`): lightning attention and softmax attention per `layer_types` (or the
/// original `attn_type_list`: 0 lightning, 1 softmax), Mixtral-style MoE of `intermediate_size`.
fn minimax(f: &Fields<'_>, c: &Common) -> Result<Family, CoreError> {
    let n = c.num_layers;
    let linear: Vec<bool> = match layer_types(f, n)? {
        Some(types) => types
            .iter()
            .map(|t| match t.as_str() {
                "linear_attention" => Ok(true),
                "full_attention" => Ok(false),
                other => Err(f.bad(
                    "layer_types",
                    format!("has `{other}`; headroom knows linear_attention and full_attention"),
                )),
            })
            .collect::<Result<_, _>>()?,
        None => match f.opt_u64_list("attn_type_list")? {
            Some(l) if l.len() as u64 == n => l.iter().map(|t| *t == 0).collect(),
            _ => {
                return Err(f.bad(
                    "layer_types",
                    "is missing (and attn_type_list too); MiniMax needs its layer kinds",
                ));
            }
        },
    };
    let e = experts(f)?;
    let lightning = LightningSpec {
        heads: c.heads,
        head_dim: c.head_dim,
    };
    let o = AttnOpts {
        qkv_bias: c.attention_bias,
        output_bias: c.attention_bias,
        ..AttnOpts::default()
    };
    let span = match f.opt_u64("sliding_window")? {
        Some(w) if w > 0 => LayerAttention::Sliding { window: w },
        _ => LayerAttention::Full,
    };
    Ok(Family::new(
        linear
            .iter()
            .map(|lin| {
                let mixer = if *lin {
                    Mixer::Lightning(lightning.clone())
                } else {
                    attention(c, span, o)
                };
                layer(mixer, Mlp::Moe(moe(e, c.intermediate)), 2)
            })
            .collect(),
    ))
}

/// Falcon-H1: every layer runs attention and a Mamba-2 mixer side by side (no gated norm unless
/// `mamba_rms_norm`), then a gated MLP; norms `input_layernorm` and `pre_ff_layernorm`.
fn falcon_h1(f: &Fields<'_>, c: &Common) -> Result<Family, CoreError> {
    let heads = width(f, &["mamba_n_heads"])?;
    let head_dim = match f.opt_u64("mamba_d_head")? {
        Some(d) => f.check_range("mamba_d_head", d, MAX_DIMENSION)?,
        None => width(f, &["mamba_d_ssm"])? / heads,
    };
    let m2 = Mamba2Spec {
        heads,
        head_dim,
        state_size: width(f, &["mamba_d_state"])?,
        groups: width_or(f, &["mamba_n_groups"], 1)?,
        conv_kernel: width_or(f, &["mamba_d_conv"], 4)?,
        proj_bias: f.bool_or("mamba_proj_bias", false)?,
        conv_bias: f.bool_or("mamba_conv_bias", true)?,
        gated_norm: f.bool_or("mamba_rms_norm", false)?,
    };
    let o = AttnOpts {
        qkv_bias: c.attention_bias,
        output_bias: c.attention_bias,
        ..AttnOpts::default()
    };
    Ok(Family::new(
        (0..c.num_layers)
            .map(|_| {
                layer(
                    Mixer::Parallel(vec![
                        attention(c, LayerAttention::Full, o),
                        Mixer::Mamba2(m2.clone()),
                    ]),
                    gated(c.intermediate, c.mlp_bias),
                    2,
                )
            })
            .collect(),
    ))
}

/// MiMo-V2-Flash: `hybrid_layer_pattern` (1: sliding-window layer with its own `swa_*` head
/// shapes, 0: full attention), value heads of `v_head_dim`, learned sinks where
/// `add_swa_attention_sink_bias` / `add_full_attention_sink_bias`, MoE per `moe_layer_freq`
/// (a list) with a correction bias, dense `intermediate_size` elsewhere.
fn mimo_v2_flash(f: &Fields<'_>, c: &Common) -> Result<Family, CoreError> {
    let n = c.num_layers;
    let list = |field: &str| -> Result<Vec<u64>, CoreError> {
        match f.opt_u64_list(field)? {
            Some(l) if l.len() as u64 == n => Ok(l),
            Some(l) => Err(f.bad(
                field,
                format!("lists {} layers but num_hidden_layers is {n}", l.len()),
            )),
            None => Err(f.bad(field, "is missing; MiMo-V2 needs its layer pattern")),
        }
    };
    let pattern = list("hybrid_layer_pattern")?;
    let moe_layers = list("moe_layer_freq")?;
    let window = window(f)?;
    let full = AttentionSpec {
        heads: c.heads,
        kv_heads: c.kv_heads,
        head_dim: c.head_dim,
        v_head_dim: width_or(f, &["v_head_dim"], c.head_dim)?,
        span: LayerAttention::Full,
        qkv_bias: c.attention_bias,
        output_bias: false,
        qk_norm: QkNorm::None,
        sinks: f.bool_or("add_full_attention_sink_bias", false)?,
        output_gate: false,
        fused_qkv: false,
        shares_cache: false,
        values_from_keys: false,
    };
    let swa_head = width_or(f, &["swa_head_dim"], c.head_dim)?;
    let swa = AttentionSpec {
        heads: width_or(f, &["swa_num_attention_heads"], c.heads)?,
        kv_heads: width_or(f, &["swa_num_key_value_heads"], c.kv_heads)?,
        head_dim: swa_head,
        v_head_dim: width_or(f, &["swa_v_head_dim"], swa_head)?,
        span: LayerAttention::Sliding { window },
        sinks: f.bool_or("add_swa_attention_sink_bias", false)?,
        ..full.clone()
    };
    let e = experts(f)?;
    let mut m = moe(e, width(f, &["moe_intermediate_size"])?);
    m.correction_bias = true;
    Ok(Family::new(
        pattern
            .iter()
            .zip(&moe_layers)
            .map(|(p, sparse)| {
                let mixer = Mixer::Attention(if *p == 1 { swa.clone() } else { full.clone() });
                let mlp = if *sparse == 1 {
                    Mlp::Moe(m.clone())
                } else {
                    gated(c.intermediate, false)
                };
                layer(mixer, mlp, 2)
            })
            .collect(),
    ))
}

/// Kimi-Linear: Kimi Delta Attention and MLA per `layer_types`, MoE per `mlp_layer_types` (or
/// `first_k_dense_replace`) with shared experts (`num_shared_experts`).
fn kimi_linear(f: &Fields<'_>, c: &Common) -> Result<Family, CoreError> {
    let n = c.num_layers;
    let types = layer_types(f, n)?.ok_or_else(|| {
        f.bad(
            "layer_types",
            "is missing; Kimi-Linear needs its layer kinds",
        )
    })?;
    let kda = KimiDeltaSpec {
        heads: width(f, &["linear_num_heads"])?,
        head_dim: width(f, &["linear_head_dim"])?,
        conv_kernel: width_or(f, &["linear_conv_kernel_dim"], 4)?,
    };
    let mla = Mixer::Mla {
        heads: c.heads,
        mla: mla_of(f)?,
        indexer: None,
    };
    let e = experts(f)?;
    let ew = width(f, &["moe_intermediate_size"])?;
    let shared = f
        .first_u64(&["num_shared_experts", "n_shared_experts"])?
        .unwrap_or(0);
    if shared > MAX_EXPERTS {
        return Err(f.bad("num_shared_experts", "is implausibly large; fix the config"));
    }
    let mut m = moe(e, ew);
    m.shared_intermediate = shared.saturating_mul(ew);
    let sparse = deepseek_sparse(f, n, 1)?;
    types
        .iter()
        .zip(sparse)
        .map(|(t, sp)| {
            let mixer = match t.as_str() {
                "linear_attention" => Mixer::KimiDelta(kda.clone()),
                "full_attention" => mla.clone(),
                other => {
                    return Err(f.bad(
                        "layer_types",
                        format!(
                            "has `{other}`; headroom knows linear_attention and full_attention"
                        ),
                    ));
                }
            };
            let mlp = if sp {
                Mlp::Moe(m.clone())
            } else {
                gated(c.intermediate, false)
            };
            Ok(layer(mixer, mlp, 2))
        })
        .collect::<Result<Vec<_>, CoreError>>()
        .map(Family::new)
}

/// mllama's text model: self-attention layers and, at `cross_attention_layers`, gated
/// cross-attention layers (per-head q/k norms, an attention and an MLP gate); the input
/// embedding has 8 rows more than the vocabulary (`vocab_size + 8`, the image tokens).
fn mllama(f: &Fields<'_>, c: &Common) -> Result<Family, CoreError> {
    let cross = f
        .opt_u64_list("cross_attention_layers")?
        .unwrap_or_default();
    let o = AttnOpts::default();
    let layers = (0..c.num_layers)
        .map(|i| {
            if cross.contains(&i) {
                let mut a = attention_spec(c, LayerAttention::Full, o);
                a.qk_norm = QkNorm::PerHead;
                let mut l = layer(Mixer::CrossAttention(a), gated(c.intermediate, false), 2);
                for _ in 0..2 {
                    l.extra.push(crate::model::ExtraWeight {
                        what: crate::model::ExtraWeightKind::Gate,
                        shape: vec![1],
                    });
                }
                l
            } else {
                layer(
                    attention(c, LayerAttention::Full, o),
                    gated(c.intermediate, false),
                    2,
                )
            }
        })
        .collect();
    let mut fam = Family::new(layers);
    fam.embedding_extra_rows = MLLAMA_IMAGE_TOKEN_ROWS;
    Ok(fam)
}

/// `MllamaTextModel.embed_tokens = nn.Embedding(vocab_size + 8, hidden_size)`.
const MLLAMA_IMAGE_TOKEN_ROWS: u64 = 8;

/// Gemma 4 text: local (`sliding_attention`) and global layers per `layer_types`; global layers
/// use `global_head_dim` and `num_global_key_value_heads` and, with `attention_k_eq_v`, no
/// v_proj; the last `num_kv_shared_layers` layers read earlier layers' keys and values (no k/v
/// projections, no cache) and, with `use_double_wide_mlp`, have twice the MLP width; per-head
/// q/k norms; four norms per layer. With `enable_moe_block` every layer adds a MoE block beside
/// its dense MLP (router with a scale vector and per-expert scales, three more norms). With
/// `hidden_size_per_layer_input` every layer takes a per-layer input (gate, projection, norm).
fn gemma4(f: &Fields<'_>, c: &Common) -> Result<Family, CoreError> {
    use crate::model::{ExtraWeight, ExtraWeightKind, PerLayerEmbeddingSpec};
    let n = c.num_layers;
    let types = layer_types(f, n)?.ok_or_else(|| {
        f.bad(
            "layer_types",
            "is missing; Gemma 4 needs its local/global layout",
        )
    })?;
    let global_head = width_or(f, &["global_head_dim"], c.head_dim)?;
    let global_kv = width_or(f, &["num_global_key_value_heads"], c.kv_heads)?;
    let k_eq_v = f.bool_or("attention_k_eq_v", false)?;
    let shared_from = n.saturating_sub(f.u64_or("num_kv_shared_layers", 0)?);
    let double_wide = f.bool_or("use_double_wide_mlp", false)?;
    let moe_block = if f.bool_or("enable_moe_block", false)? {
        let e = experts(f)?;
        let mut m = moe(
            e,
            width(f, &["moe_intermediate_size", "expert_intermediate_size"])?,
        );
        // The dense MLP beside the experts runs for every token, as a shared expert would.
        m.shared_intermediate = c.intermediate;
        Some((m, e.0))
    } else {
        None
    };
    let ple_width = f.u64_or("hidden_size_per_layer_input", 0)?;
    let o = AttnOpts {
        qkv_bias: c.attention_bias,
        output_bias: c.attention_bias,
        qk_norm: QkNorm::PerHead,
        output_gate: false,
    };
    let mut layers = Vec::with_capacity(types.len());
    for (i, t) in types.iter().enumerate() {
        let i = i as u64;
        let span = span_of(f, t)?.ok_or_else(|| {
            f.bad(
                "layer_types",
                format!("has `{t}`; headroom knows sliding_attention and full_attention"),
            )
        })?;
        let mut a = attention_spec(c, span, o);
        if span == LayerAttention::Full {
            a.head_dim = global_head;
            a.v_head_dim = global_head;
            a.kv_heads = global_kv;
            a.values_from_keys = k_eq_v;
        }
        let shared = i >= shared_from;
        a.shares_cache = shared;
        let width = if shared && double_wide {
            c.intermediate.saturating_mul(2)
        } else {
            c.intermediate
        };
        let mut extra = Vec::new();
        let mlp = match &moe_block {
            Some((m, experts)) => {
                let hidden = f.check_range("hidden_size", f.u64("hidden_size")?, MAX_DIMENSION)?;
                // router.scale [hidden], router.per_expert_scale [experts], and the block's
                // post_feedforward_layernorm_1/_2 and pre_feedforward_layernorm_2.
                extra.push(ExtraWeight {
                    what: ExtraWeightKind::Gate,
                    shape: vec![hidden],
                });
                extra.push(ExtraWeight {
                    what: ExtraWeightKind::Gate,
                    shape: vec![*experts],
                });
                extra.push(ExtraWeight {
                    what: ExtraWeightKind::Norm,
                    shape: vec![hidden.saturating_mul(3)],
                });
                let mut m = m.clone();
                m.shared_intermediate = width;
                Mlp::Moe(m)
            }
            None => gated(width, false),
        };
        if ple_width > 0 {
            let hidden = f.check_range("hidden_size", f.u64("hidden_size")?, MAX_DIMENSION)?;
            // per_layer_input_gate [ple, hidden], per_layer_projection [hidden, ple],
            // post_per_layer_input_norm [hidden].
            extra.push(ExtraWeight {
                what: ExtraWeightKind::Projection,
                shape: vec![ple_width, hidden],
            });
            extra.push(ExtraWeight {
                what: ExtraWeightKind::Projection,
                shape: vec![hidden, ple_width],
            });
            extra.push(ExtraWeight {
                what: ExtraWeightKind::Norm,
                shape: vec![hidden],
            });
        }
        layers.push(LayerSpec {
            mixer: Mixer::Attention(a),
            mlp,
            norms: 4,
            extra,
        });
    }
    let mut fam = Family::new(layers);
    if ple_width > 0 {
        fam.per_layer_embedding = Some(PerLayerEmbeddingSpec {
            vocab: width(f, &["vocab_size_per_layer_input"])?,
            width: f.check_range("hidden_size_per_layer_input", ple_width, MAX_DIMENSION)?,
        });
    }
    Ok(fam)
}

/// Gemma-3n's text model (`Gemma3nTextModel`), layer by layer from its config:
/// - attention with per-head q/k norms (the v norm has no weight), sliding or full per
///   `layer_types`, the last `num_kv_shared_layers` layers reading an earlier layer's cache (no
///   k/v projections nor k norm); four `hidden_size` norms;
/// - a gated MLP of `intermediate_size[i]` (one width per layer, or one for all);
/// - AltUp (`altup_num_inputs` = m): `correct_output_scale` [hidden], `correction_coefs`
///   [m, m], `prediction_coefs` [m², m], `modality_router` [m, hidden], `router_norm` [hidden];
/// - LAuReL (`laurel_rank` = r): `linear_left` [r, hidden], `linear_right` [hidden, r],
///   `post_laurel_norm` [hidden];
/// - per-layer inputs (`hidden_size_per_layer_input` = p): `per_layer_input_gate` [p, hidden],
///   `per_layer_projection` [hidden, p], `post_per_layer_input_norm` [hidden];
///
/// and after the layers the model's `altup_projections` and `altup_unembed_projections`,
/// m − 1 of each, [hidden, hidden].
fn gemma3n(f: &Fields<'_>, c: &Common) -> Result<Family, CoreError> {
    use crate::model::{ExtraWeight, ExtraWeightKind, PerLayerEmbeddingSpec};
    let n = c.num_layers;
    let types = layer_types(f, n)?.ok_or_else(|| {
        f.bad(
            "layer_types",
            "is missing; Gemma-3n needs its local/global layout",
        )
    })?;
    let hidden = f.check_range("hidden_size", f.u64("hidden_size")?, MAX_DIMENSION)?;
    let widths = per_layer_u64(f, "intermediate_size", n)?
        .unwrap_or_else(|| vec![c.intermediate; n as usize]);
    let shared = f.u64_or("num_kv_shared_layers", 0)?;
    if shared > n {
        return Err(f.bad(
            "num_kv_shared_layers",
            format!("is {shared}, more than the {n} layers; fix the config"),
        ));
    }
    let shared_from = n - shared;
    // Gemma3nTextConfig's defaults: 4 AltUp inputs, LAuReL rank 64.
    let altup = f.check_range(
        "altup_num_inputs",
        f.u64_or("altup_num_inputs", 4)?,
        MAX_HEADS,
    )?;
    let laurel = width_or(f, &["laurel_rank"], 64)?;
    let ple = width(f, &["hidden_size_per_layer_input"])?;
    let o = AttnOpts {
        qkv_bias: c.attention_bias,
        output_bias: c.attention_bias,
        qk_norm: QkNorm::PerHead,
        output_gate: false,
    };
    let w = |what, shape: Vec<u64>| ExtraWeight { what, shape };
    let extra = vec![
        // AltUp.
        w(ExtraWeightKind::Gate, vec![hidden]),
        w(ExtraWeightKind::Projection, vec![altup, altup]),
        w(
            ExtraWeightKind::Projection,
            vec![altup.saturating_mul(altup), altup],
        ),
        w(ExtraWeightKind::Projection, vec![altup, hidden]),
        w(ExtraWeightKind::Norm, vec![hidden]),
        // LAuReL.
        w(ExtraWeightKind::Projection, vec![laurel, hidden]),
        w(ExtraWeightKind::Projection, vec![hidden, laurel]),
        w(ExtraWeightKind::Norm, vec![hidden]),
        // Per-layer input.
        w(ExtraWeightKind::Projection, vec![ple, hidden]),
        w(ExtraWeightKind::Projection, vec![hidden, ple]),
        w(ExtraWeightKind::Norm, vec![hidden]),
    ];
    let mut layers = Vec::with_capacity(types.len());
    for (i, (t, width)) in types.iter().zip(widths).enumerate() {
        let span = span_of(f, t)?.ok_or_else(|| {
            f.bad(
                "layer_types",
                format!("has `{t}`; headroom knows sliding_attention and full_attention"),
            )
        })?;
        let width = f.check_range("intermediate_size", width, MAX_DIMENSION)?;
        let mut a = attention_spec(c, span, o);
        a.shares_cache = i as u64 >= shared_from;
        layers.push(LayerSpec {
            mixer: Mixer::Attention(a),
            mlp: gated(width, false),
            norms: 4,
            extra: extra.clone(),
        });
    }
    let mut fam = Family::new(layers);
    fam.per_layer_embedding = Some(PerLayerEmbeddingSpec {
        vocab: width(f, &["vocab_size_per_layer_input"])?,
        width: ple,
    });
    for _ in 0..altup.saturating_sub(1).saturating_mul(2) {
        fam.extra_weights
            .push(w(ExtraWeightKind::Projection, vec![hidden, hidden]));
    }
    Ok(fam)
}

/// DeepSeek-V4: every layer's attention is [`crate::model::CompressedAttentionSpec`] (its
/// compressor ratio from `compress_ratios`, an indexer on ratio-4 layers), every MLP a MoE with
/// shared experts (the first `num_hash_layers` route by token hash, with the same router
/// weight), and two hyper-connection mixers per layer (`attn_hc`, `ffn_hc`: fn
/// `[(2 + m)·m, m·hidden]`, base `[(2 + m)·m]`, scale `[3]` for `hc_mult` m), plus `hc_head`
/// (fn `[m, m·hidden]`, base `[m]`, scale `[1]`) after the final norm.
fn deepseek_v4(f: &Fields<'_>, c: &Common) -> Result<Family, CoreError> {
    use crate::model::{CompressedAttentionSpec, ExtraWeight, ExtraWeightKind};
    let n = c.num_layers;
    let ratios = f.opt_u64_list("compress_ratios")?.unwrap_or_default();
    if (ratios.len() as u64) < n {
        return Err(f.bad(
            "compress_ratios",
            format!("lists {} layers but num_hidden_layers is {n}", ratios.len()),
        ));
    }
    let hidden = f.check_range("hidden_size", f.u64("hidden_size")?, MAX_DIMENSION)?;
    let q_lora_rank = width(f, &["q_lora_rank"])?;
    let indexer = IndexerSpec {
        heads: width(f, &["index_n_heads"])?,
        head_dim: width(f, &["index_head_dim"])?,
        topk: width(f, &["index_topk"])?,
    };
    let base = CompressedAttentionSpec {
        heads: c.heads,
        head_dim: c.head_dim,
        q_lora_rank,
        o_groups: width(f, &["o_groups"])?,
        o_lora_rank: width(f, &["o_lora_rank"])?,
        window: window(f)?,
        compress_ratio: 0,
        indexer: None,
    };
    let e = experts(f)?;
    let ew = width(f, &["moe_intermediate_size"])?;
    let shared = f.u64_or("n_shared_experts", 0)?;
    if shared > MAX_EXPERTS {
        return Err(f.bad("n_shared_experts", "is implausibly large; fix the config"));
    }
    let mut m = moe(e, ew);
    m.correction_bias = true;
    m.shared_intermediate = shared.saturating_mul(ew);
    let hc = f.check_range("hc_mult", f.u64_or("hc_mult", 4)?, MAX_HEADS)?;
    let mix = hc.saturating_add(2).saturating_mul(hc);
    let wide = hc.saturating_mul(hidden);
    let hc_weights = || {
        vec![
            ExtraWeight {
                what: ExtraWeightKind::Projection,
                shape: vec![mix, wide],
            },
            ExtraWeight {
                what: ExtraWeightKind::Gate,
                shape: vec![mix],
            },
            ExtraWeight {
                what: ExtraWeightKind::Gate,
                shape: vec![3],
            },
        ]
    };
    let layers = ratios
        .iter()
        .take(n as usize)
        .map(|r| {
            let mut a = base.clone();
            a.compress_ratio = *r;
            a.indexer = (*r == 4).then(|| indexer.clone());
            let mut extra = hc_weights();
            extra.extend(hc_weights());
            LayerSpec {
                mixer: Mixer::CompressedAttention(a),
                mlp: Mlp::Moe(m.clone()),
                norms: 2,
                extra,
            }
        })
        .collect();
    let mut fam = Family::new(layers);
    fam.extra_weights = vec![
        ExtraWeight {
            what: ExtraWeightKind::Projection,
            shape: vec![hc, wide],
        },
        ExtraWeight {
            what: ExtraWeightKind::Gate,
            shape: vec![hc],
        },
        ExtraWeight {
            what: ExtraWeightKind::Gate,
            shape: vec![1],
        },
    ];
    Ok(fam)
}
