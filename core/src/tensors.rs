//! The exact list of weight tensors a checkpoint stores, derived from a [`ModelSpec`].
//!
//! Names follow llama.cpp's GGUF convention (`token_embd.weight`, `blk.N.attn_v.weight`,
//! `blk.N.ffn_down_exps.weight`, `output.weight`, ...) because GGUF file types pick a block type
//! per tensor by name and layer (see [`crate::gguf`]).

use serde::{Deserialize, Serialize};

use crate::model::{
    AttentionSpec, ComponentKind, CompressedAttentionSpec, DenseMlpSpec, EncoderSpec,
    ExtraWeightKind, KimiDeltaSpec, LayerSpec, LightningSpec, LinearAttentionSpec, Mamba2Spec,
    Mixer, MlaSpec, Mlp, ModelSpec, MoeMlpSpec, ProjectorSpec, QkNorm, ShortConvSpec,
};

/// What a tensor is for; decides its format in mixed quantizations and whether it is trainable by LoRA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TensorRole {
    /// Input token embedding table.
    TokenEmbedding,
    /// Output projection (`lm_head`), absent when tied.
    Output,
    /// Any 1-D normalization weight (kept in full precision by quantizers).
    Norm,
    /// Any 1-D bias, or other small vector (attention sinks).
    Bias,
    /// A state-space or linear-attention mixer's input projection (Mamba `in_proj`, Gated
    /// DeltaNet `in_proj_qkvz`, LFM2 `in_proj`).
    SsmIn,
    /// A mixer's causal convolution.
    SsmConv,
    /// A state-space or linear-attention mixer's output projection.
    SsmOut,
    /// A small per-head vector of a state-space mixer (`A_log`, `D`, `dt_bias`).
    SsmVector,
    /// Encoder (vision/audio tower) or projector weights.
    Encoder,
    /// A persistent buffer the checkpoint stores but that is not a parameter (DeepSeek-V3's
    /// `e_score_correction_bias`, registered with `register_buffer`): in the weight bytes, not
    /// in the parameter count.
    Buffer,
    /// Query projection (or MLA's query up-projection).
    AttnQ,
    /// Key projection.
    AttnK,
    /// Value projection.
    AttnV,
    /// Fused query/key/value projection (Phi-3).
    AttnQkv,
    /// Attention output projection.
    AttnOutput,
    /// MLA: query down-projection (`q_a_proj`).
    AttnQA,
    /// MLA: query up-projection (`q_b_proj`).
    AttnQB,
    /// MLA: key/value down-projection incl. rope part (`kv_a_proj_with_mqa`).
    AttnKvA,
    /// MLA: key/value up-projection (`kv_b_proj`).
    AttnKvB,
    /// Dense MLP gate projection.
    FfnGate,
    /// Dense MLP up projection.
    FfnUp,
    /// Fused gate+up projection (Phi-3).
    FfnGateUp,
    /// Dense MLP down projection.
    FfnDown,
    /// MoE router.
    FfnRouter,
    /// Routed experts' gate projections, stacked.
    FfnGateExperts,
    /// Routed experts' up projections, stacked.
    FfnUpExperts,
    /// Routed experts' down projections, stacked.
    FfnDownExperts,
    /// Shared experts' gate projection.
    FfnGateShared,
    /// Shared experts' up projection.
    FfnUpShared,
    /// Shared experts' down projection.
    FfnDownShared,
    /// Anything else.
    Other,
}

/// One stored weight tensor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tensor {
    /// GGUF-style name, e.g. `blk.3.attn_v.weight`.
    pub name: String,
    /// What it is for.
    pub role: TensorRole,
    /// Layer index for per-layer tensors.
    pub layer: Option<u64>,
    /// The component it belongs to.
    pub component: ComponentKind,
    /// Shape, outermost first, in PyTorch's `[out_features, in_features]` order: the last entry is
    /// the row length a quantizer's blocks run along (`[experts, rows, cols]` for stacked experts;
    /// `[n]` for vectors).
    pub shape: Vec<u64>,
    /// Elements one token reads: all of them for dense tensors, `experts_per_token / num_experts`
    /// of them for routed experts, one row (`hidden_size`) for an untied token embedding. A tied
    /// embedding is also the output head, which reads all of it every token, so it counts in full.
    pub active_elements: u64,
}

impl Tensor {
    /// Number of elements (parameters).
    pub fn elements(&self) -> u64 {
        shape_elements(&self.shape)
    }

    /// Elements of one row (the last dimension; 1 for a scalar).
    pub fn row_len(&self) -> u64 {
        shape_row_len(&self.shape)
    }

    /// Rows: elements / row length (every expert's rows for a stacked expert tensor).
    pub fn rows(&self) -> u64 {
        shape_rows(&self.shape)
    }

    /// Matrices stacked in this tensor: the expert count for `[experts, rows, cols]`, else 1.
    pub fn matrices(&self) -> u64 {
        shape_matrices(&self.shape)
    }

    /// True for 1-D tensors (norms, biases, sinks), which quantizers keep in full precision.
    pub fn is_vector(&self) -> bool {
        self.shape.len() <= 1
    }
}

/// [`Tensor::elements`] of a shape.
pub(crate) fn shape_elements(shape: &[u64]) -> u64 {
    // Saturating: configs are range-checked, but a product must never panic.
    shape.iter().fold(1u64, |acc, d| acc.saturating_mul(*d))
}

/// [`Tensor::row_len`] of a shape.
pub(crate) fn shape_row_len(shape: &[u64]) -> u64 {
    shape.last().copied().unwrap_or(1)
}

/// [`Tensor::rows`] of a shape.
pub(crate) fn shape_rows(shape: &[u64]) -> u64 {
    shape
        .iter()
        .rev()
        .skip(1)
        .fold(1u64, |acc, d| acc.saturating_mul(*d))
}

/// [`Tensor::matrices`] of a shape.
pub(crate) fn shape_matrices(shape: &[u64]) -> u64 {
    if shape.len() >= 3 {
        shape
            .iter()
            .rev()
            .skip(2)
            .fold(1u64, |acc, d| acc.saturating_mul(*d))
    } else {
        1
    }
}

/// Most dimensions a weight tensor has (`[experts, rows, cols]`).
pub(crate) const MAX_DIMS: usize = 3;

/// One tensor of [`walk`]: everything [`Tensor`] holds except the name string, which is built
/// only where someone reads it ([`TensorEntry::name`]). The byte rules run on these: a new model
/// in the calculator walks about a thousand tensors (DeepSeek-V3), and formatting a name for each
/// cost more than every format's rules together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TensorEntry {
    /// The GGUF name without the `blk.N.` prefix of per-layer tensors (`attn_v.weight`), or the
    /// whole name of the others (`token_embd.weight`).
    pub(crate) suffix: &'static str,
    /// What it is for.
    pub(crate) role: TensorRole,
    /// Layer index for per-layer tensors.
    pub(crate) layer: Option<u64>,
    /// The component it belongs to.
    pub(crate) component: ComponentKind,
    /// The shape's dimensions, `ndims` of them used.
    pub(crate) dims: [u64; MAX_DIMS],
    /// Dimensions used in `dims`.
    pub(crate) ndims: usize,
    /// [`Tensor::active_elements`].
    pub(crate) active_elements: u64,
}

impl TensorEntry {
    /// The shape, outermost first (as [`Tensor::shape`]).
    pub(crate) fn shape(&self) -> &[u64] {
        &self.dims[..self.ndims]
    }

    /// The GGUF name, e.g. `blk.3.attn_v.weight`; encoder and projector tensors carry
    /// llama.cpp's mmproj prefixes (`v.`, `a.`, `mm.`, `mm.a.`).
    pub(crate) fn name(&self) -> String {
        match (self.layer, self.component) {
            (Some(i), _) => format!("blk.{i}.{}", self.suffix),
            (None, ComponentKind::VisionEncoder) => format!("v.{}", self.suffix),
            (None, ComponentKind::AudioEncoder) => format!("a.{}", self.suffix),
            (None, ComponentKind::VisionProjector) => format!("mm.{}", self.suffix),
            (None, ComponentKind::AudioProjector) => format!("mm.a.{}", self.suffix),
            (None, _) => self.suffix.to_string(),
        }
    }

    /// The [`Tensor`] with its name.
    pub(crate) fn to_tensor(self) -> Tensor {
        Tensor {
            name: self.name(),
            role: self.role,
            layer: self.layer,
            component: self.component,
            shape: self.shape().to_vec(),
            active_elements: self.active_elements,
        }
    }
}

/// Builds the list, one layer at a time, handing each tensor to `sink`.
struct Builder<'a, F: FnMut(TensorEntry)> {
    model: &'a ModelSpec,
    sink: F,
    /// Component of the tensors being walked.
    component: ComponentKind,
}

impl<F: FnMut(TensorEntry)> Builder<'_, F> {
    fn entry(
        &mut self,
        suffix: &'static str,
        role: TensorRole,
        layer: Option<u64>,
        shape: &[u64],
        active_elements: Option<u64>,
    ) {
        let mut dims = [0u64; MAX_DIMS];
        // Every call passes at most MAX_DIMS dimensions; `min` keeps a longer one from panicking.
        let ndims = shape.len().min(MAX_DIMS);
        dims[..ndims].copy_from_slice(&shape[..ndims]);
        let elements = shape_elements(shape);
        (self.sink)(TensorEntry {
            suffix,
            role,
            layer,
            component: self.component,
            dims,
            ndims,
            active_elements: active_elements.unwrap_or(elements),
        });
    }

    fn push(&mut self, name: &'static str, role: TensorRole, shape: &[u64]) {
        self.entry(name, role, None, shape, None);
    }

    fn layer(&mut self, i: u64, suffix: &'static str, role: TensorRole, shape: &[u64]) {
        self.entry(suffix, role, Some(i), shape, None);
    }

    /// A routed-expert tensor: one token reads `experts_per_token` of the `experts` matrices.
    fn experts(&mut self, i: u64, suffix: &'static str, role: TensorRole, shape: &[u64], k: u64) {
        let experts = shape.first().copied().unwrap_or(1).max(1);
        let elements = shape_elements(shape);
        // Exact: elements is a multiple of `experts`.
        let active = (elements / experts).saturating_mul(k);
        self.entry(suffix, role, Some(i), shape, Some(active));
    }

    /// A part's tensor (encoder, projector): not read per generated token.
    fn part(&mut self, suffix: &'static str, shape: &[u64]) {
        let role = if shape.len() <= 1 {
            TensorRole::Bias
        } else {
            TensorRole::Encoder
        };
        self.entry(suffix, role, None, shape, Some(0));
    }
}

/// Every weight tensor a checkpoint of `model` stores, in checkpoint order (embedding, layers,
/// final norm, output head, then encoders and projectors).
///
/// What is counted follows the `transformers` modeling code of each family, layer by layer from
/// [`ModelSpec::layers`] (see `tests/params.rs` and `tests/transformers_counts.rs`): every norm
/// (with its bias for LayerNorm models), biases, q/k norms, sinks, MLA projections and indexers,
/// Mamba-2 / Gated DeltaNet / short-conv mixers, dense (gated or not) and MoE MLPs with routers,
/// correction biases, shared experts and their gates, and the vision/audio encoders and projectors.
/// Not counted: non-persistent buffers (Llama-2 `inv_freq`) and multi-token-prediction layers
/// (transformers does not load them; [`crate::components`] lists them separately).
pub fn tensors(model: &ModelSpec) -> Vec<Tensor> {
    let mut out = Vec::new();
    walk(model, |e| out.push(e.to_tensor()));
    out
}

/// [`tensors`] without names: hands every tensor of `model`, in checkpoint order, to `sink`.
pub(crate) fn walk(model: &ModelSpec, sink: impl FnMut(TensorEntry)) {
    let m = model;
    let mut b = Builder {
        model: m,
        sink,
        component: ComponentKind::Embedding,
    };
    let h = m.hidden_size;

    // An untied embedding is read one row per token; a tied one is the output head too.
    let embedding_active = if m.tie_word_embeddings { None } else { Some(h) };
    b.entry(
        "token_embd.weight",
        TensorRole::TokenEmbedding,
        None,
        &[m.vocab_size.saturating_add(m.embedding_extra_rows), h],
        embedding_active,
    );

    let layers = m.layers();
    if let Some(ple) = &m.per_layer_embedding {
        // One row of every layer's input per token.
        let all = ple.width.saturating_mul(layers.len() as u64);
        b.entry(
            "per_layer_token_embd.weight",
            TensorRole::TokenEmbedding,
            None,
            &[ple.vocab, all],
            Some(all),
        );
    }

    b.component = ComponentKind::Decoder;
    for (i, layer) in layers.iter().enumerate() {
        decoder_layer(&mut b, i as u64, layer);
    }

    norm(&mut b, None, "output_norm.weight", "output_norm.bias", h);
    for x in &m.extra_weights {
        let name = match x.what {
            ExtraWeightKind::Gate => "model_gate.weight",
            ExtraWeightKind::Norm => "model_extra_norm.weight",
            ExtraWeightKind::Projection => "model_extra_proj.weight",
        };
        b.entry(name, TensorRole::Other, None, &x.shape, None);
    }
    if let Some(ple) = &m.per_layer_embedding {
        let all = ple.width.saturating_mul(layers.len() as u64);
        b.push("per_layer_model_proj.weight", TensorRole::Other, &[all, h]);
        b.push("per_layer_proj_norm.weight", TensorRole::Norm, &[ple.width]);
    }
    if !m.tie_word_embeddings {
        b.component = ComponentKind::OutputHead;
        b.push("output.weight", TensorRole::Output, &[m.vocab_size, h]);
    }

    for e in &m.encoders {
        b.component = e.kind;
        encoder(&mut b, e);
    }
    for p in &m.projectors {
        b.component = p.kind;
        projector(&mut b, p);
    }
}

/// Parameters of one decoder layer (as [`walk`] counts them): the MTP component's per-layer
/// count and per-layer breakdowns use it.
pub(crate) fn layer_params(model: &ModelSpec, layer: &LayerSpec) -> u64 {
    let mut n = 0u64;
    let mut b = Builder {
        model,
        sink: |e: TensorEntry| {
            if e.role != TensorRole::Buffer {
                n = n.saturating_add(shape_elements(e.shape()));
            }
        },
        component: ComponentKind::Decoder,
    };
    decoder_layer(&mut b, 0, layer);
    n
}

/// A norm weight of width `w` (and its bias in a LayerNorm model).
fn norm<F: FnMut(TensorEntry)>(
    b: &mut Builder<'_, F>,
    layer: Option<u64>,
    weight: &'static str,
    bias: &'static str,
    w: u64,
) {
    b.entry(weight, TensorRole::Norm, layer, &[w], None);
    if b.model.norm_bias {
        b.entry(bias, TensorRole::Bias, layer, &[w], None);
    }
}

/// One decoder layer in checkpoint order: norms, mixer, MLP, extras.
fn decoder_layer<F: FnMut(TensorEntry)>(b: &mut Builder<'_, F>, i: u64, layer: &LayerSpec) {
    let h = b.model.hidden_size;
    let l = Some(i);
    norm(b, l, "attn_norm.weight", "attn_norm.bias", h);
    mixer(b, i, &layer.mixer);
    if layer.norms >= 4 {
        norm(
            b,
            l,
            "post_attention_norm.weight",
            "post_attention_norm.bias",
            h,
        );
    }
    if layer.norms >= 2 {
        norm(b, l, "ffn_norm.weight", "ffn_norm.bias", h);
    }
    if layer.norms == 3 || layer.norms >= 4 {
        norm(b, l, "post_ffw_norm.weight", "post_ffw_norm.bias", h);
    }
    match &layer.mlp {
        Mlp::Dense(d) => dense_mlp(b, i, d),
        Mlp::Moe(moe) => moe_mlp(b, i, moe),
        Mlp::None => {}
    }
    for x in &layer.extra {
        let (name, role) = match x.what {
            ExtraWeightKind::Gate => ("layer_gate.weight", TensorRole::Bias),
            ExtraWeightKind::Norm => ("layer_extra_norm.weight", TensorRole::Norm),
            ExtraWeightKind::Projection => ("layer_extra_proj.weight", TensorRole::Other),
        };
        b.layer(i, name, role, &x.shape);
    }
}

/// The weights of one mixer (recursing into parallel mixers).
fn mixer<F: FnMut(TensorEntry)>(b: &mut Builder<'_, F>, i: u64, m: &Mixer) {
    let h = b.model.hidden_size;
    match m {
        Mixer::Attention(a) => attention(b, i, a),
        Mixer::CrossAttention(a) => attention(b, i, a),
        Mixer::Mla {
            heads,
            mla,
            indexer,
        } => {
            mla_attention(b, i, *heads, mla);
            if let Some(ix) = indexer {
                // DeepSeek-V3.2 `Indexer`: wq_b from the query latent, wk + LayerNorm, weights_proj.
                let q_in = mla.q_lora_rank.unwrap_or(h);
                let q_out = ix.heads.saturating_mul(ix.head_dim);
                b.layer(i, "indexer.q_b.weight", TensorRole::Other, &[q_out, q_in]);
                b.layer(i, "indexer.k.weight", TensorRole::Other, &[ix.head_dim, h]);
                b.layer(i, "indexer.k_norm.weight", TensorRole::Norm, &[ix.head_dim]);
                b.layer(i, "indexer.k_norm.bias", TensorRole::Bias, &[ix.head_dim]);
                b.layer(i, "indexer.proj.weight", TensorRole::Other, &[ix.heads, h]);
            }
        }
        Mixer::LinearAttention(la) => linear_attention(b, i, la),
        Mixer::Mamba2(m2) => mamba2(b, i, m2),
        Mixer::ShortConv(sc) => short_conv(b, i, sc),
        Mixer::Lightning(l) => lightning(b, i, l),
        Mixer::KimiDelta(k) => kimi_delta(b, i, k),
        Mixer::CompressedAttention(c) => compressed_attention(b, i, c),
        Mixer::Parallel(parts) => {
            for part in parts {
                mixer(b, i, part);
            }
        }
        Mixer::None => {}
    }
}

/// MiniMax-01's lightning attention (`MiniMaxLightningAttention`): fused qkv, RMSNorm over the
/// heads, output gate, out_proj; no biases.
fn lightning<F: FnMut(TensorEntry)>(b: &mut Builder<'_, F>, i: u64, l: &LightningSpec) {
    let h = b.model.hidden_size;
    let inner = l.heads.saturating_mul(l.head_dim);
    b.layer(i, "lightning.norm.weight", TensorRole::Norm, &[inner]);
    b.layer(
        i,
        "lightning.qkv.weight",
        TensorRole::SsmIn,
        &[inner.saturating_mul(3), h],
    );
    b.layer(i, "lightning.out.weight", TensorRole::SsmOut, &[h, inner]);
    b.layer(i, "lightning.gate.weight", TensorRole::SsmIn, &[inner, h]);
}

/// DeepSeek-V4's attention (`DeepseekV4Attention`): sinks, q_a + norm + q_b, one kv_proj + norm,
/// grouped o_a and o_b; the compressor (position bias, kv and gate projections of
/// `overlap · head_dim`, norm) and on ratio-4 layers its indexer (the same of the index width,
/// q_b from the query latent, weights_proj).
fn compressed_attention<F: FnMut(TensorEntry)>(
    b: &mut Builder<'_, F>,
    i: u64,
    c: &CompressedAttentionSpec,
) {
    let h = b.model.hidden_size;
    let q_dim = c.heads.saturating_mul(c.head_dim);
    let groups = c.o_groups.max(1);
    let o_rank = groups.saturating_mul(c.o_lora_rank);
    b.layer(i, "attn_sinks.weight", TensorRole::Bias, &[c.heads]);
    b.layer(
        i,
        "attn_q_a.weight",
        TensorRole::AttnQA,
        &[c.q_lora_rank, h],
    );
    b.layer(
        i,
        "attn_q_a_norm.weight",
        TensorRole::Norm,
        &[c.q_lora_rank],
    );
    b.layer(
        i,
        "attn_q_b.weight",
        TensorRole::AttnQB,
        &[q_dim, c.q_lora_rank],
    );
    b.layer(i, "attn_kv.weight", TensorRole::AttnKvA, &[c.head_dim, h]);
    b.layer(i, "attn_kv_norm.weight", TensorRole::Norm, &[c.head_dim]);
    b.layer(
        i,
        "attn_o_a.weight",
        TensorRole::AttnOutput,
        &[o_rank, q_dim / groups],
    );
    b.layer(i, "attn_o_b.weight", TensorRole::AttnOutput, &[h, o_rank]);
    if c.compress_ratio == 0 {
        return;
    }
    let rows = c.overlap().saturating_mul(c.head_dim);
    b.layer(
        i,
        "compressor.pos_bias",
        TensorRole::Bias,
        &[c.compress_ratio, rows],
    );
    b.layer(i, "compressor.kv.weight", TensorRole::Other, &[rows, h]);
    b.layer(i, "compressor.gate.weight", TensorRole::Other, &[rows, h]);
    b.layer(
        i,
        "compressor.kv_norm.weight",
        TensorRole::Norm,
        &[c.head_dim],
    );
    if let Some(ix) = &c.indexer {
        let rows = c.overlap().saturating_mul(ix.head_dim);
        b.layer(
            i,
            "indexer.pos_bias",
            TensorRole::Bias,
            &[c.compress_ratio, rows],
        );
        b.layer(i, "indexer.kv.weight", TensorRole::Other, &[rows, h]);
        b.layer(i, "indexer.gate.weight", TensorRole::Other, &[rows, h]);
        b.layer(
            i,
            "indexer.kv_norm.weight",
            TensorRole::Norm,
            &[ix.head_dim],
        );
        b.layer(
            i,
            "indexer.q_b.weight",
            TensorRole::Other,
            &[ix.heads.saturating_mul(ix.head_dim), c.q_lora_rank],
        );
        b.layer(i, "indexer.proj.weight", TensorRole::Other, &[ix.heads, h]);
    }
}

/// Kimi Delta Attention (`KimiDeltaAttention`): q, k, v, a depthwise conv over all three (no
/// bias), the forget gate (`dt_bias` per channel, `A_log` per head, f_a/f_b low-rank), `b_proj`,
/// the output gate (g_a/g_b low-rank), a norm of one head, o_proj.
fn kimi_delta<F: FnMut(TensorEntry)>(b: &mut Builder<'_, F>, i: u64, k: &KimiDeltaSpec) {
    let h = b.model.hidden_size;
    let inner = k.heads.saturating_mul(k.head_dim);
    b.layer(i, "kda.q.weight", TensorRole::SsmIn, &[inner, h]);
    b.layer(i, "kda.k.weight", TensorRole::SsmIn, &[inner, h]);
    b.layer(i, "kda.v.weight", TensorRole::SsmIn, &[inner, h]);
    b.layer(
        i,
        "ssm_conv1d.weight",
        TensorRole::SsmConv,
        &[inner.saturating_mul(3), k.conv_kernel],
    );
    b.layer(i, "ssm_dt.bias", TensorRole::SsmVector, &[inner]);
    b.layer(i, "ssm_a", TensorRole::SsmVector, &[k.heads]);
    b.layer(i, "kda.f_a.weight", TensorRole::SsmIn, &[k.head_dim, h]);
    b.layer(i, "kda.f_b.weight", TensorRole::SsmIn, &[inner, k.head_dim]);
    b.layer(i, "kda.b.weight", TensorRole::SsmIn, &[k.heads, h]);
    b.layer(i, "kda.g_a.weight", TensorRole::SsmIn, &[k.head_dim, h]);
    b.layer(i, "kda.g_b.weight", TensorRole::SsmIn, &[inner, k.head_dim]);
    b.layer(i, "ssm_norm.weight", TensorRole::Norm, &[k.head_dim]);
    b.layer(i, "ssm_out.weight", TensorRole::SsmOut, &[h, inner]);
}

/// Softmax attention (also cross-attention, whose keys and values come from encoder tokens).
fn attention<F: FnMut(TensorEntry)>(b: &mut Builder<'_, F>, i: u64, a: &AttentionSpec) {
    let h = b.model.hidden_size;
    let q_dim = a.heads.saturating_mul(a.head_dim);
    let k_dim = a.kv_heads.saturating_mul(a.head_dim);
    let v_dim = a.kv_heads.saturating_mul(a.v_head_dim);
    let o_in = a.heads.saturating_mul(a.v_head_dim);
    // The output gate doubles q_proj's rows (Qwen3-Next: query and gate per head).
    let q_rows = if a.output_gate {
        q_dim.saturating_mul(2)
    } else {
        q_dim
    };

    if a.shares_cache {
        // KV sharing: only the query side and the output projection.
        b.layer(i, "attn_q.weight", TensorRole::AttnQ, &[q_rows, h]);
        if a.qkv_bias {
            b.layer(i, "attn_q.bias", TensorRole::Bias, &[q_rows]);
        }
        if a.qk_norm != QkNorm::None {
            let w = if a.qk_norm == QkNorm::PerHead {
                a.head_dim
            } else {
                q_dim
            };
            b.layer(i, "attn_q_norm.weight", TensorRole::Norm, &[w]);
        }
        b.layer(i, "attn_output.weight", TensorRole::AttnOutput, &[h, o_in]);
        if a.output_bias {
            b.layer(i, "attn_output.bias", TensorRole::Bias, &[h]);
        }
        return;
    }
    if a.fused_qkv {
        // Phi-3 stores one fused qkv projection.
        let rows = q_rows.saturating_add(k_dim).saturating_add(v_dim);
        b.layer(i, "attn_qkv.weight", TensorRole::AttnQkv, &[rows, h]);
        if a.qkv_bias {
            b.layer(i, "attn_qkv.bias", TensorRole::Bias, &[rows]);
        }
    } else {
        b.layer(i, "attn_q.weight", TensorRole::AttnQ, &[q_rows, h]);
        if a.qkv_bias {
            b.layer(i, "attn_q.bias", TensorRole::Bias, &[q_rows]);
        }
        b.layer(i, "attn_k.weight", TensorRole::AttnK, &[k_dim, h]);
        if a.qkv_bias {
            b.layer(i, "attn_k.bias", TensorRole::Bias, &[k_dim]);
        }
        if !a.values_from_keys {
            b.layer(i, "attn_v.weight", TensorRole::AttnV, &[v_dim, h]);
            if a.qkv_bias {
                b.layer(i, "attn_v.bias", TensorRole::Bias, &[v_dim]);
            }
        }
    }
    match a.qk_norm {
        QkNorm::None => {}
        QkNorm::PerHead => {
            b.layer(i, "attn_q_norm.weight", TensorRole::Norm, &[a.head_dim]);
            b.layer(i, "attn_k_norm.weight", TensorRole::Norm, &[a.head_dim]);
        }
        QkNorm::Whole => {
            b.layer(i, "attn_q_norm.weight", TensorRole::Norm, &[q_dim]);
            b.layer(i, "attn_k_norm.weight", TensorRole::Norm, &[k_dim]);
        }
    }
    b.layer(i, "attn_output.weight", TensorRole::AttnOutput, &[h, o_in]);
    if a.output_bias {
        b.layer(i, "attn_output.bias", TensorRole::Bias, &[h]);
    }
    if a.sinks {
        // One learned sink logit per head.
        b.layer(i, "attn_sinks.weight", TensorRole::Bias, &[a.heads]);
    }
}

/// DeepSeek multi-head latent attention.
fn mla_attention<F: FnMut(TensorEntry)>(b: &mut Builder<'_, F>, i: u64, heads: u64, mla: &MlaSpec) {
    let h = b.model.hidden_size;
    let q_head = mla.qk_nope_head_dim.saturating_add(mla.qk_rope_head_dim);
    match mla.q_lora_rank {
        Some(r) => {
            b.layer(i, "attn_q_a.weight", TensorRole::AttnQA, &[r, h]);
            b.layer(i, "attn_q_a_norm.weight", TensorRole::Norm, &[r]);
            b.layer(
                i,
                "attn_q_b.weight",
                TensorRole::AttnQB,
                &[heads.saturating_mul(q_head), r],
            );
        }
        None => {
            b.layer(
                i,
                "attn_q.weight",
                TensorRole::AttnQ,
                &[heads.saturating_mul(q_head), h],
            );
        }
    }
    b.layer(
        i,
        "attn_kv_a_mqa.weight",
        TensorRole::AttnKvA,
        &[mla.kv_lora_rank.saturating_add(mla.qk_rope_head_dim), h],
    );
    b.layer(
        i,
        "attn_kv_a_norm.weight",
        TensorRole::Norm,
        &[mla.kv_lora_rank],
    );
    b.layer(
        i,
        "attn_kv_b.weight",
        TensorRole::AttnKvB,
        &[
            heads.saturating_mul(mla.qk_nope_head_dim.saturating_add(mla.v_head_dim)),
            mla.kv_lora_rank,
        ],
    );
    b.layer(
        i,
        "attn_output.weight",
        TensorRole::AttnOutput,
        &[h, heads.saturating_mul(mla.v_head_dim)],
    );
}

/// Gated DeltaNet (transformers `Qwen3NextGatedDeltaNet`): `in_proj_qkvz`, `in_proj_ba`, a
/// depthwise conv over q, k, v without bias, `dt_bias`, `A_log`, a gated RMS norm of one value
/// head, `out_proj`.
fn linear_attention<F: FnMut(TensorEntry)>(
    b: &mut Builder<'_, F>,
    i: u64,
    la: &LinearAttentionSpec,
) {
    let h = b.model.hidden_size;
    let qkvz = la.qk_dim().saturating_add(la.value_dim().saturating_mul(2));
    b.layer(i, "ssm_in.weight", TensorRole::SsmIn, &[qkvz, h]);
    b.layer(
        i,
        "ssm_ba.weight",
        TensorRole::SsmIn,
        &[la.value_heads.saturating_mul(2), h],
    );
    b.layer(
        i,
        "ssm_conv1d.weight",
        TensorRole::SsmConv,
        &[la.conv_dim(), la.conv_kernel],
    );
    b.layer(i, "ssm_dt.bias", TensorRole::SsmVector, &[la.value_heads]);
    b.layer(i, "ssm_a", TensorRole::SsmVector, &[la.value_heads]);
    b.layer(i, "ssm_norm.weight", TensorRole::Norm, &[la.value_head_dim]);
    b.layer(
        i,
        "ssm_out.weight",
        TensorRole::SsmOut,
        &[h, la.value_dim()],
    );
}

/// Mamba-2 (transformers `Mamba2Mixer` / `NemotronHMamba2Mixer` / `GraniteMoeHybridMambaLayer`):
/// `in_proj` to z, x, B, C and dt; a depthwise conv over x, B, C; `dt_bias`, `A_log`, `D`; the
/// gated norm; `out_proj`.
fn mamba2<F: FnMut(TensorEntry)>(b: &mut Builder<'_, F>, i: u64, m2: &Mamba2Spec) {
    let h = b.model.hidden_size;
    let inner = m2.inner();
    let in_rows = inner.saturating_add(m2.conv_dim()).saturating_add(m2.heads);
    b.layer(i, "ssm_in.weight", TensorRole::SsmIn, &[in_rows, h]);
    if m2.proj_bias {
        b.layer(i, "ssm_in.bias", TensorRole::Bias, &[in_rows]);
    }
    b.layer(
        i,
        "ssm_conv1d.weight",
        TensorRole::SsmConv,
        &[m2.conv_dim(), m2.conv_kernel],
    );
    if m2.conv_bias {
        b.layer(i, "ssm_conv1d.bias", TensorRole::Bias, &[m2.conv_dim()]);
    }
    b.layer(i, "ssm_dt.bias", TensorRole::SsmVector, &[m2.heads]);
    b.layer(i, "ssm_a", TensorRole::SsmVector, &[m2.heads]);
    b.layer(i, "ssm_d", TensorRole::SsmVector, &[m2.heads]);
    if m2.gated_norm {
        b.layer(i, "ssm_norm.weight", TensorRole::Norm, &[inner]);
    }
    b.layer(i, "ssm_out.weight", TensorRole::SsmOut, &[h, inner]);
    if m2.proj_bias {
        b.layer(i, "ssm_out.bias", TensorRole::Bias, &[h]);
    }
}

/// LFM2's short conv (transformers `Lfm2ShortConv`): `in_proj` to B, C, x; a depthwise conv;
/// `out_proj`.
fn short_conv<F: FnMut(TensorEntry)>(b: &mut Builder<'_, F>, i: u64, sc: &ShortConvSpec) {
    let h = b.model.hidden_size;
    let three = h.saturating_mul(3);
    b.layer(
        i,
        "shortconv.in_proj.weight",
        TensorRole::SsmIn,
        &[three, h],
    );
    if sc.bias {
        b.layer(i, "shortconv.in_proj.bias", TensorRole::Bias, &[three]);
    }
    b.layer(
        i,
        "shortconv.conv.weight",
        TensorRole::SsmConv,
        &[h, sc.kernel],
    );
    if sc.bias {
        b.layer(i, "shortconv.conv.bias", TensorRole::Bias, &[h]);
    }
    b.layer(i, "shortconv.out_proj.weight", TensorRole::SsmOut, &[h, h]);
    if sc.bias {
        b.layer(i, "shortconv.out_proj.bias", TensorRole::Bias, &[h]);
    }
}

/// A dense MLP: gate (when gated), up, down, with optional biases.
fn dense_mlp<F: FnMut(TensorEntry)>(b: &mut Builder<'_, F>, i: u64, d: &DenseMlpSpec) {
    let h = b.model.hidden_size;
    let inter = d.intermediate;
    if d.fused_gate_up {
        // Phi-3 fuses gate and up; llama.cpp names the fused matrix ffn_up.
        b.layer(
            i,
            "ffn_up.weight",
            TensorRole::FfnGateUp,
            &[inter.saturating_mul(2), h],
        );
    } else {
        if d.gated {
            b.layer(i, "ffn_gate.weight", TensorRole::FfnGate, &[inter, h]);
            if d.bias {
                b.layer(i, "ffn_gate.bias", TensorRole::Bias, &[inter]);
            }
        }
        b.layer(i, "ffn_up.weight", TensorRole::FfnUp, &[inter, h]);
        if d.bias {
            b.layer(i, "ffn_up.bias", TensorRole::Bias, &[inter]);
        }
    }
    b.layer(i, "ffn_down.weight", TensorRole::FfnDown, &[h, inter]);
    if d.bias {
        b.layer(i, "ffn_down.bias", TensorRole::Bias, &[h]);
    }
}

/// Router, routed experts (stacked), shared experts and their gate.
fn moe_mlp<F: FnMut(TensorEntry)>(b: &mut Builder<'_, F>, i: u64, moe: &MoeMlpSpec) {
    let h = b.model.hidden_size;
    let e = moe.experts;
    let k = moe.top_k;
    let ei = moe.expert_intermediate;
    b.layer(i, "ffn_gate_inp.weight", TensorRole::FfnRouter, &[e, h]);
    if moe.router_bias {
        b.layer(i, "ffn_gate_inp.bias", TensorRole::Bias, &[e]);
    }
    if moe.correction_bias {
        // Aux-loss-free routing adds a per-expert score correction bias.
        b.layer(i, "exp_probs_b.bias", TensorRole::Buffer, &[e]);
    }
    // Experts read and write the latent width when the model projects into one.
    let io = moe.latent.unwrap_or(h);
    if let Some(latent) = moe.latent {
        b.layer(i, "ffn_latent_in.weight", TensorRole::Other, &[latent, h]);
        b.layer(i, "ffn_latent_out.weight", TensorRole::Other, &[h, latent]);
    }
    if moe.gated {
        b.experts(
            i,
            "ffn_gate_exps.weight",
            TensorRole::FfnGateExperts,
            &[e, ei, io],
            k,
        );
        if moe.expert_bias {
            b.experts(i, "ffn_gate_exps.bias", TensorRole::Bias, &[e, ei], k);
        }
    }
    b.experts(
        i,
        "ffn_up_exps.weight",
        TensorRole::FfnUpExperts,
        &[e, ei, io],
        k,
    );
    if moe.expert_bias {
        b.experts(i, "ffn_up_exps.bias", TensorRole::Bias, &[e, ei], k);
    }
    b.experts(
        i,
        "ffn_down_exps.weight",
        TensorRole::FfnDownExperts,
        &[e, io, ei],
        k,
    );
    if moe.expert_bias {
        b.experts(i, "ffn_down_exps.bias", TensorRole::Bias, &[e, io], k);
    }
    if moe.shared_intermediate > 0 {
        let si = moe.shared_intermediate;
        if moe.shared_gate {
            // A sigmoid of a [1, hidden] projection scales the shared expert.
            b.layer(
                i,
                "ffn_gate_inp_shexp.weight",
                TensorRole::FfnRouter,
                &[1, h],
            );
        }
        if moe.gated {
            b.layer(
                i,
                "ffn_gate_shexp.weight",
                TensorRole::FfnGateShared,
                &[si, h],
            );
        }
        b.layer(i, "ffn_up_shexp.weight", TensorRole::FfnUpShared, &[si, h]);
        b.layer(
            i,
            "ffn_down_shexp.weight",
            TensorRole::FfnDownShared,
            &[h, si],
        );
    }
}

/// A vision or audio tower: its layers stacked (`[layers, rows, cols]`).
fn encoder<F: FnMut(TensorEntry)>(b: &mut Builder<'_, F>, e: &EncoderSpec) {
    let h = e.hidden;
    let n = e.layers;
    let a = e.attention_dim;
    if e.patch_inputs > 0 {
        b.part("patch_embd.weight", &[h, e.patch_inputs]);
        if e.patch_bias {
            b.part("patch_embd.bias", &[h]);
        }
    }
    if e.class_token {
        b.part("class_embd", &[h]);
    }
    if e.positions > 0 {
        b.part("position_embd.weight", &[e.positions, h]);
    }
    let enc_norm = |b: &mut Builder<'_, F>, w: &'static str, bias: &'static str, shape: &[u64]| {
        b.part(w, shape);
        if e.norm_bias {
            b.part(bias, shape);
        }
    };
    if e.pre_norm {
        enc_norm(b, "pre_ln.weight", "pre_ln.bias", &[h]);
    }
    // A tower without transformer layers (a conv net such as MobileNet-v5) has only `extra`.
    if n > 0 {
        enc_norm(b, "enc.ln1.weight", "enc.ln1.bias", &[n, h]);
        for (w, bias, rows, cols) in [
            ("enc.q.weight", "enc.q.bias", a, h),
            ("enc.k.weight", "enc.k.bias", a, h),
            ("enc.v.weight", "enc.v.bias", a, h),
            ("enc.o.weight", "enc.o.bias", h, a),
        ] {
            b.part(w, &[n, rows, cols]);
            if e.attention_bias {
                b.part(bias, &[n, rows]);
            }
        }
        enc_norm(b, "enc.ln2.weight", "enc.ln2.bias", &[n, h]);
        let i = e.intermediate;
        let mut mlp = vec![("enc.fc1.weight", "enc.fc1.bias", i, h)];
        if e.mlp_gated {
            mlp.push(("enc.gate.weight", "enc.gate.bias", i, h));
        }
        mlp.push(("enc.fc2.weight", "enc.fc2.bias", h, i));
        for (w, bias, rows, cols) in mlp {
            b.part(w, &[n, rows, cols]);
            if e.mlp_bias {
                b.part(bias, &[n, rows]);
            }
        }
    }
    if e.post_norm {
        enc_norm(b, "post_ln.weight", "post_ln.bias", &[h]);
    }
    for x in &e.extra {
        let name = match x.what {
            ExtraWeightKind::Gate => "gate.weight",
            ExtraWeightKind::Norm => "extra_norm.weight",
            ExtraWeightKind::Projection => "extra_embd.weight",
        };
        b.part(name, &x.shape);
    }
}

/// A projector's linear maps and norms.
fn projector<F: FnMut(TensorEntry)>(b: &mut Builder<'_, F>, p: &ProjectorSpec) {
    for &(width, bias) in &p.norms {
        b.part("norm.weight", &[width]);
        if bias {
            b.part("norm.bias", &[width]);
        }
    }
    for &(inp, out, bias) in &p.linears {
        b.part("proj.weight", &[out, inp]);
        if bias {
            b.part("proj.bias", &[out]);
        }
    }
}
