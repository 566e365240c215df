//! What a model is made of, part by part: parameters per component (embedding, decoder layers,
//! output head, vision/audio encoders and projectors, multi-token-prediction layers), the layer
//! types in order, and the cache each kind of layer keeps per token or per sequence.
//!
//! Everything here is derived from [`ModelSpec::layers`] and the tensor walk
//! ([`crate::tensors::tensors`]), so the components always add up to
//! [`crate::params::param_counts`] (MTP layers aside, which transformers does not load).

use serde::{Deserialize, Serialize};

use crate::{
    kv_cache::{KvDtype, layer_cache, layer_state_elements},
    model::{ComponentKind, LayerSpec, Mixer, Mlp, ModelSpec},
    runtime::Runtime,
    tensors::{TensorRole, layer_params, shape_elements, walk},
};

/// Parameters of one component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    /// Which part.
    pub kind: ComponentKind,
    /// Stored parameters.
    pub params: u64,
    /// Parameters one generated token uses (routed experts in proportion `top_k / experts`; the
    /// whole embedding table, as vendors count it; 0 for encoders and projectors, which run once
    /// per image or clip).
    pub active_params: u64,
    /// Whether the component is in [`crate::params::ParamCounts::total`] (false for MTP layers,
    /// which transformers does not load).
    pub in_total: bool,
}

/// The components of `model` with their parameter counts, in checkpoint order; only those
/// present (an untied head, encoders, MTP layers when the checkpoint has them).
pub fn components(model: &ModelSpec) -> Vec<Component> {
    let mut out: Vec<Component> = Vec::new();
    walk(model, |e| {
        if e.role == TensorRole::Buffer {
            return;
        }
        let n = shape_elements(e.shape());
        let active = match e.component {
            ComponentKind::Embedding => n,
            _ => e.active_elements,
        };
        match out.iter_mut().find(|c| c.kind == e.component) {
            Some(c) => {
                c.params = c.params.saturating_add(n);
                c.active_params = c.active_params.saturating_add(active);
            }
            None => out.push(Component {
                kind: e.component,
                params: n,
                active_params: active,
                in_total: true,
            }),
        }
    });
    if let Some(mtp) = &model.mtp {
        let h = model.hidden_size;
        // eh_proj [h, 2h], enorm, hnorm and the shared head's norm around one decoder layer;
        // DeepSeek-V3 and GLM-4.5 checkpoints also repeat the embedding and the head in it.
        let mut one = layer_params(model, &mtp.layer)
            .saturating_add(h.saturating_mul(h).saturating_mul(2))
            .saturating_add(h.saturating_mul(3));
        if mtp.own_embedding {
            one = one.saturating_add(model.vocab_size.saturating_mul(h).saturating_mul(2));
        }
        let active_one = layer_active_params(model, &mtp.layer)
            .saturating_add(one.saturating_sub(layer_params(model, &mtp.layer)));
        out.push(Component {
            kind: ComponentKind::Mtp,
            params: one.saturating_mul(mtp.layers),
            active_params: active_one.saturating_mul(mtp.layers),
            in_total: false,
        });
    }
    out
}

/// Active parameters of one decoder layer.
fn layer_active_params(model: &ModelSpec, layer: &LayerSpec) -> u64 {
    let mut probe = model.clone();
    probe.layers = vec![layer.clone()];
    probe.num_layers = 1;
    let mut n = 0u64;
    walk(&probe, |e| {
        if e.component == ComponentKind::Decoder
            && e.layer.is_some()
            && e.role != TensorRole::Buffer
        {
            n = n.saturating_add(e.active_elements);
        }
    });
    n
}

/// A run of the model's layers of one kind: how many layers have this mixer and MLP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerKindCount {
    /// The mixer's name ([`Mixer::name`]).
    pub mixer: String,
    /// The MLP's name ([`Mlp::name`]).
    pub mlp: String,
    /// Layers of this kind.
    pub layers: u64,
}

/// How many layers of each (mixer, MLP) kind the model has, in order of first appearance.
pub fn layer_kinds(model: &ModelSpec) -> Vec<LayerKindCount> {
    let mut out: Vec<LayerKindCount> = Vec::new();
    for l in model.layers().iter() {
        let (mixer, mlp) = (l.mixer.name(), l.mlp.name());
        match out.iter_mut().find(|k| k.mixer == mixer && k.mlp == mlp) {
            Some(k) => k.layers += 1,
            None => out.push(LayerKindCount {
                mixer,
                mlp,
                layers: 1,
            }),
        }
    }
    out
}

/// The cache of all layers of one mixer kind, for one sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheComponent {
    /// The mixer's name ([`Mixer::name`]).
    pub mixer: String,
    /// Layers of this kind.
    pub layers: u64,
    /// Bytes one token adds over all these layers, in the requested cache dtype (0 for
    /// per-sequence states).
    pub bytes_per_token: u64,
    /// The most tokens each layer caches (`None`: all of them).
    pub token_limit: Option<u64>,
    /// Bytes of the per-sequence state over all these layers (conv in 16 bits, recurrent/SSM
    /// state in fp32), independent of context.
    pub state_bytes_per_sequence: u64,
    /// Elements of the per-sequence state over all these layers: `(conv, recurrent)`.
    pub state_elements_per_sequence: (u64, u64),
}

/// The cache, grouped by mixer kind and window: per token (attention, MLA, indexer) and per
/// sequence (Gated DeltaNet, Mamba-2, short conv), as `runtime` keeps MLA, in `dtype`.
pub fn cache_components(
    model: &ModelSpec,
    dtype: KvDtype,
    runtime: Runtime,
) -> Vec<CacheComponent> {
    let mut out: Vec<CacheComponent> = Vec::new();
    // Most models repeat a few layer kinds: price each distinct layer once (a one-layer model
    // per layer cloned the whole spec, quadratic in the layer count).
    let mut priced: Vec<(&LayerSpec, u64, u64)> = Vec::new();
    let layers = model.layers();
    for l in layers.iter() {
        let c = layer_cache(model, l, runtime);
        let (per_token, state_bytes) = match priced.iter().find(|(p, _, _)| *p == l) {
            Some((_, bytes, state)) => (*bytes, *state),
            None => {
                let one =
                    crate::kv_cache::kv_cache_bytes(&single_layer(model, l), 1, 1, dtype, runtime);
                priced.push((l, one.bytes_per_token, one.state_bytes_per_sequence));
                (one.bytes_per_token, one.state_bytes_per_sequence)
            }
        };
        let (conv, state) = layer_state_elements(model, l);
        let name = l.mixer.name();
        let limit = if per_token > 0 { c.token_limit } else { None };
        match out
            .iter_mut()
            .find(|k| k.mixer == name && k.token_limit == limit)
        {
            Some(k) => {
                k.layers += 1;
                k.bytes_per_token = k.bytes_per_token.saturating_add(per_token);
                k.state_bytes_per_sequence = k.state_bytes_per_sequence.saturating_add(state_bytes);
                k.state_elements_per_sequence.0 =
                    k.state_elements_per_sequence.0.saturating_add(conv);
                k.state_elements_per_sequence.1 =
                    k.state_elements_per_sequence.1.saturating_add(state);
            }
            None => out.push(CacheComponent {
                mixer: name,
                layers: 1,
                bytes_per_token: per_token,
                token_limit: limit,
                state_bytes_per_sequence: state_bytes,
                state_elements_per_sequence: (conv, state),
            }),
        }
    }
    out
}

/// `model` with only `layer`, for pricing one layer's cache.
fn single_layer(model: &ModelSpec, layer: &LayerSpec) -> ModelSpec {
    let mut one = ModelSpec {
        layers: Vec::new(),
        encoders: Vec::new(),
        projectors: Vec::new(),
        mtp: None,
        ..model.clone()
    };
    one.layers = vec![layer.clone()];
    one.num_layers = 1;
    one
}

impl Mixer {
    /// A short name: `attention`, `sliding_attention`, `chunked_attention`, `mla`,
    /// `mla_indexer`, `linear_attention`, `mamba2`, `short_conv`, `cross_attention`,
    /// `lightning_attention`, `kimi_delta_attention`, `compressed_attention`, `none`; parallel mixers join theirs with `+`.
    pub fn name(&self) -> String {
        match self {
            Mixer::Attention(a) => match a.span {
                crate::model::LayerAttention::Full => "attention",
                crate::model::LayerAttention::Sliding { .. } => "sliding_attention",
                crate::model::LayerAttention::Chunked { .. } => "chunked_attention",
            },
            Mixer::Mla { indexer: None, .. } => "mla",
            Mixer::Mla {
                indexer: Some(_), ..
            } => "mla_indexer",
            Mixer::LinearAttention(_) => "linear_attention",
            Mixer::Mamba2(_) => "mamba2",
            Mixer::ShortConv(_) => "short_conv",
            Mixer::CrossAttention(_) => "cross_attention",
            Mixer::Lightning(_) => "lightning_attention",
            Mixer::KimiDelta(_) => "kimi_delta_attention",
            Mixer::CompressedAttention(_) => "compressed_attention",
            Mixer::Parallel(parts) => {
                return parts.iter().map(Mixer::name).collect::<Vec<_>>().join("+");
            }
            Mixer::None => "none",
        }
        .to_string()
    }
}

impl Mlp {
    /// A short name: `gated`, `ungated`, `moe`, `none`.
    pub fn name(&self) -> String {
        match self {
            Mlp::Dense(d) if d.gated => "gated",
            Mlp::Dense(_) => "ungated",
            Mlp::Moe(_) => "moe",
            Mlp::None => "none",
        }
        .to_string()
    }
}
