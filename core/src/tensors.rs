//! The exact list of weight tensors a checkpoint stores, derived from a [`ModelSpec`].
//!
//! Names follow llama.cpp's GGUF convention (`token_embd.weight`, `blk.N.attn_v.weight`,
//! `blk.N.ffn_down_exps.weight`, `output.weight`, ...) because GGUF file types pick a block type
//! per tensor by name and layer (see [`crate::gguf`]).

use serde::{Deserialize, Serialize};

use crate::model::ModelSpec;

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
    /// Shape, outermost first (`[experts, rows, cols]` for stacked experts; `[n]` for vectors).
    pub shape: Vec<u64>,
    /// Elements one token reads: all of them for dense tensors, `experts_per_token / num_experts`
    /// of them for routed experts, one row (`hidden_size`) for the token embedding.
    pub active_elements: u64,
}

impl Tensor {
    /// Number of elements (parameters).
    pub fn elements(&self) -> u64 {
        self.shape.iter().product()
    }
}

/// Every weight tensor a checkpoint of `model` stores, in checkpoint order.
pub fn tensors(model: &ModelSpec) -> Vec<Tensor> {
    let _ = model;
    todo!("issue #2: tensors from ModelSpec (weights helper)")
}
