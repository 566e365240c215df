//! The exact list of weight tensors a checkpoint stores, derived from a [`ModelSpec`].
//!
//! Names follow llama.cpp's GGUF convention (`token_embd.weight`, `blk.N.attn_v.weight`,
//! `blk.N.ffn_down_exps.weight`, `output.weight`, ...) because GGUF file types pick a block type
//! per tensor by name and layer (see [`crate::gguf`]).

use serde::{Deserialize, Serialize};

use crate::model::{Architecture, ModelSpec};

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

    /// The GGUF name, e.g. `blk.3.attn_v.weight`.
    pub(crate) fn name(&self) -> String {
        match self.layer {
            Some(i) => format!("blk.{i}.{}", self.suffix),
            None => self.suffix.to_string(),
        }
    }

    /// The [`Tensor`] with its name.
    pub(crate) fn to_tensor(self) -> Tensor {
        Tensor {
            name: self.name(),
            role: self.role,
            layer: self.layer,
            shape: self.shape().to_vec(),
            active_elements: self.active_elements,
        }
    }
}

/// Builds the list, one layer at a time, handing each tensor to `sink`.
struct Builder<'a, F: FnMut(TensorEntry)> {
    model: &'a ModelSpec,
    sink: F,
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
}

/// Every weight tensor a checkpoint of `model` stores, in checkpoint order (embedding, layers,
/// final norm, output head).
///
/// What is counted follows the `transformers` modeling code of each family (the parameter counts
/// equal the checkpoint's; see `tests/params.rs`): all norms, biases (Qwen2 q/k/v; `attention_bias`
/// and `mlp_bias`), q/k norms (Qwen3, Gemma-3), four norms per layer (Gemma-2/3), MoE routers and
/// every expert, shared experts and Qwen2-MoE's shared-expert gate, DeepSeek's dense first layers,
/// MLA projections and V3's router correction bias, gpt-oss attention sinks and expert biases.
/// Not counted: non-persistent buffers (Llama-2 `inv_freq`), DeepSeek-V3's multi-token-prediction
/// layer (not loaded by transformers), and vision towers of multimodal checkpoints.
pub fn tensors(model: &ModelSpec) -> Vec<Tensor> {
    let mut out = Vec::new();
    walk(model, |e| out.push(e.to_tensor()));
    out
}

/// [`tensors`] without names: hands every tensor of `model`, in checkpoint order, to `sink`.
pub(crate) fn walk(model: &ModelSpec, sink: impl FnMut(TensorEntry)) {
    let m = model;
    let mut b = Builder { model: m, sink };
    let h = m.hidden_size;
    let arch = &m.architecture;

    // An untied embedding is read one row per token; a tied one is the output head too.
    let embedding_active = if m.tie_word_embeddings { None } else { Some(h) };
    b.entry(
        "token_embd.weight",
        TensorRole::TokenEmbedding,
        None,
        &[m.vocab_size, h],
        embedding_active,
    );

    for i in 0..m.num_layers {
        b.layer(i, "attn_norm.weight", TensorRole::Norm, &[h]);
        if m.mla.is_some() {
            mla_attention(&mut b, i);
        } else {
            attention(&mut b, i);
        }
        let gemma_post_norms = matches!(arch, Architecture::Gemma2 | Architecture::Gemma3);
        if gemma_post_norms {
            b.layer(i, "post_attention_norm.weight", TensorRole::Norm, &[h]);
        }
        b.layer(i, "ffn_norm.weight", TensorRole::Norm, &[h]);
        if gemma_post_norms {
            b.layer(i, "post_ffw_norm.weight", TensorRole::Norm, &[h]);
        }
        mlp(&mut b, i);
    }

    b.push("output_norm.weight", TensorRole::Norm, &[h]);
    if !m.tie_word_embeddings {
        b.push("output.weight", TensorRole::Output, &[m.vocab_size, h]);
    }
}

/// Grouped-query attention (every family except DeepSeek's MLA).
fn attention<F: FnMut(TensorEntry)>(b: &mut Builder<'_, F>, i: u64) {
    let m = b.model;
    let h = m.hidden_size;
    let q_dim = m.num_attention_heads.saturating_mul(m.head_dim);
    let kv_dim = m.num_kv_heads.saturating_mul(m.head_dim);
    let arch = &m.architecture;

    if *arch == Architecture::Phi3 {
        // Phi-3 stores one fused qkv projection.
        b.layer(
            i,
            "attn_qkv.weight",
            TensorRole::AttnQkv,
            &[q_dim.saturating_add(kv_dim.saturating_mul(2)), h],
        );
        b.layer(i, "attn_output.weight", TensorRole::AttnOutput, &[h, q_dim]);
        return;
    }

    let qkv_bias = m.attention_bias || matches!(arch, Architecture::Qwen2 | Architecture::Qwen2Moe);
    b.layer(i, "attn_q.weight", TensorRole::AttnQ, &[q_dim, h]);
    if qkv_bias {
        b.layer(i, "attn_q.bias", TensorRole::Bias, &[q_dim]);
    }
    b.layer(i, "attn_k.weight", TensorRole::AttnK, &[kv_dim, h]);
    if qkv_bias {
        b.layer(i, "attn_k.bias", TensorRole::Bias, &[kv_dim]);
    }
    b.layer(i, "attn_v.weight", TensorRole::AttnV, &[kv_dim, h]);
    if qkv_bias {
        b.layer(i, "attn_v.bias", TensorRole::Bias, &[kv_dim]);
    }
    if matches!(
        arch,
        Architecture::Qwen3 | Architecture::Qwen3Moe | Architecture::Gemma3
    ) {
        b.layer(i, "attn_q_norm.weight", TensorRole::Norm, &[m.head_dim]);
        b.layer(i, "attn_k_norm.weight", TensorRole::Norm, &[m.head_dim]);
    }
    b.layer(i, "attn_output.weight", TensorRole::AttnOutput, &[h, q_dim]);
    if m.attention_bias {
        b.layer(i, "attn_output.bias", TensorRole::Bias, &[h]);
    }
    if *arch == Architecture::GptOss {
        // One learned sink logit per head.
        b.layer(
            i,
            "attn_sinks.weight",
            TensorRole::Bias,
            &[m.num_attention_heads],
        );
    }
}

/// DeepSeek multi-head latent attention.
fn mla_attention<F: FnMut(TensorEntry)>(b: &mut Builder<'_, F>, i: u64) {
    let m = b.model;
    let Some(mla) = m.mla.as_ref() else {
        return;
    };
    let h = m.hidden_size;
    let heads = m.num_attention_heads;
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

/// The feed-forward block of layer `i`: dense, or router + routed experts (+ shared experts).
fn mlp<F: FnMut(TensorEntry)>(b: &mut Builder<'_, F>, i: u64) {
    let m = b.model;
    let h = m.hidden_size;
    let arch = &m.architecture;
    let moe = m.moe.as_ref().filter(|moe| !moe.dense_layers.contains(&i));
    let Some(moe) = moe else {
        let inter = m.intermediate_size;
        if *arch == Architecture::Phi3 {
            // Phi-3 fuses gate and up; llama.cpp names the fused matrix ffn_up.
            b.layer(
                i,
                "ffn_up.weight",
                TensorRole::FfnGateUp,
                &[inter.saturating_mul(2), h],
            );
        } else {
            b.layer(i, "ffn_gate.weight", TensorRole::FfnGate, &[inter, h]);
            if m.mlp_bias {
                b.layer(i, "ffn_gate.bias", TensorRole::Bias, &[inter]);
            }
            b.layer(i, "ffn_up.weight", TensorRole::FfnUp, &[inter, h]);
            if m.mlp_bias {
                b.layer(i, "ffn_up.bias", TensorRole::Bias, &[inter]);
            }
        }
        b.layer(i, "ffn_down.weight", TensorRole::FfnDown, &[h, inter]);
        if m.mlp_bias {
            b.layer(i, "ffn_down.bias", TensorRole::Bias, &[h]);
        }
        return;
    };

    let e = moe.num_experts;
    let k = moe.experts_per_token;
    let ei = moe.expert_intermediate_size;
    let gpt_oss = *arch == Architecture::GptOss;
    b.layer(i, "ffn_gate_inp.weight", TensorRole::FfnRouter, &[e, h]);
    if gpt_oss {
        b.layer(i, "ffn_gate_inp.bias", TensorRole::Bias, &[e]);
    }
    if *arch == Architecture::DeepseekV3 {
        // V3's aux-loss-free routing adds a per-expert score correction bias.
        b.layer(i, "exp_probs_b.bias", TensorRole::Bias, &[e]);
    }
    b.experts(
        i,
        "ffn_gate_exps.weight",
        TensorRole::FfnGateExperts,
        &[e, ei, h],
        k,
    );
    if gpt_oss {
        b.experts(i, "ffn_gate_exps.bias", TensorRole::Bias, &[e, ei], k);
    }
    b.experts(
        i,
        "ffn_up_exps.weight",
        TensorRole::FfnUpExperts,
        &[e, ei, h],
        k,
    );
    if gpt_oss {
        b.experts(i, "ffn_up_exps.bias", TensorRole::Bias, &[e, ei], k);
    }
    b.experts(
        i,
        "ffn_down_exps.weight",
        TensorRole::FfnDownExperts,
        &[e, h, ei],
        k,
    );
    if gpt_oss {
        b.experts(i, "ffn_down_exps.bias", TensorRole::Bias, &[e, h], k);
    }
    if moe.num_shared_experts > 0 && moe.shared_intermediate_size > 0 {
        let si = moe.shared_intermediate_size;
        if *arch == Architecture::Qwen2Moe {
            // Qwen2-MoE gates its shared expert with a sigmoid of a [1, hidden] projection.
            b.layer(
                i,
                "ffn_gate_inp_shexp.weight",
                TensorRole::FfnRouter,
                &[1, h],
            );
        }
        b.layer(
            i,
            "ffn_gate_shexp.weight",
            TensorRole::FfnGateShared,
            &[si, h],
        );
        b.layer(i, "ffn_up_shexp.weight", TensorRole::FfnUpShared, &[si, h]);
        b.layer(
            i,
            "ffn_down_shexp.weight",
            TensorRole::FfnDownShared,
            &[h, si],
        );
    }
}
