//! [`ModelSpec`]: the shape of a transformer language model, everything the estimates need.
//!
//! A `ModelSpec` is built from a Hugging Face `config.json` by [`crate::config`] or taken from the
//! bundled [`crate::model_catalog`]. It is plain data; [`crate::tensors::tensors`] turns it into the
//! exact list of stored weights.

use serde::{Deserialize, Serialize};

/// The model families headroom knows exactly (parameter counts equal to the checkpoint's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    /// `llama` (Llama 1/2/3.x and many derivatives).
    Llama,
    /// `mistral`.
    Mistral,
    /// `mixtral` (sparse MoE).
    Mixtral,
    /// `qwen2` (q/k/v biases).
    Qwen2,
    /// `qwen2_moe` (routed + shared experts).
    Qwen2Moe,
    /// `qwen3` (q/k norms, explicit head_dim).
    Qwen3,
    /// `qwen3_moe`.
    Qwen3Moe,
    /// `gemma`.
    Gemma,
    /// `gemma2` (four norms per layer, alternating sliding window).
    Gemma2,
    /// `gemma3` / `gemma3_text` (q/k norms, 5 local : 1 global layers).
    Gemma3,
    /// `phi3` (fused qkv and gate_up projections).
    Phi3,
    /// `deepseek_v2` (MLA, shared experts, dense first layers).
    DeepseekV2,
    /// `deepseek_v3`.
    DeepseekV3,
    /// `gpt_oss` (attention sinks, biases, MoE).
    GptOss,
    /// An unknown `model_type` whose generic fields sufficed: the estimate is approximate.
    Other(String),
}

/// Attention of one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum LayerAttention {
    /// Attends to every earlier token.
    Full,
    /// Attends to the last `window` tokens only (the KV cache holds at most `window` tokens).
    Sliding {
        /// Window length in tokens.
        window: u64,
    },
}

/// Mixture-of-experts layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoeSpec {
    /// Routed experts per MoE layer.
    pub num_experts: u64,
    /// Routed experts each token goes through.
    pub experts_per_token: u64,
    /// Intermediate size of one routed expert.
    pub expert_intermediate_size: u64,
    /// Shared experts (always active), 0 if none.
    pub num_shared_experts: u64,
    /// Intermediate size of the shared expert block (all shared experts together), 0 if none.
    pub shared_intermediate_size: u64,
    /// Layers that use a dense MLP instead of experts (e.g. DeepSeek's `first_k_dense_replace`),
    /// as layer indices.
    pub dense_layers: Vec<u64>,
}

/// Multi-head latent attention (DeepSeek-V2/V3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MlaSpec {
    /// Rank of the query compression; `None` when queries are projected directly.
    pub q_lora_rank: Option<u64>,
    /// Rank of the compressed key/value latent (what an MLA-aware cache stores).
    pub kv_lora_rank: u64,
    /// Per-head dimension that carries rotary position (shared key part, cached).
    pub qk_rope_head_dim: u64,
    /// Per-head dimension without rotary position.
    pub qk_nope_head_dim: u64,
    /// Per-head value dimension.
    pub v_head_dim: u64,
}

/// The shape of a model: everything the estimates need, nothing they don't.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Display name (catalog name, Hub id or file name).
    pub name: String,
    /// Family, which decides the exact tensor list.
    pub architecture: Architecture,
    /// True when the family was not known and the counts are an estimate from generic fields.
    pub approximate: bool,
    /// `hidden_size`.
    pub hidden_size: u64,
    /// `num_hidden_layers`.
    pub num_layers: u64,
    /// `num_attention_heads`.
    pub num_attention_heads: u64,
    /// `num_key_value_heads` (equals `num_attention_heads` without grouped-query attention).
    pub num_kv_heads: u64,
    /// Per-head dimension: explicit `head_dim` when the config has one, else hidden / heads.
    pub head_dim: u64,
    /// `vocab_size`.
    pub vocab_size: u64,
    /// Dense MLP `intermediate_size`.
    pub intermediate_size: u64,
    /// Whether the output projection shares the input embedding's weights.
    pub tie_word_embeddings: bool,
    /// `max_position_embeddings`: the longest context the model was built for.
    pub max_context: u64,
    /// Attention of every layer, `num_layers` entries.
    pub layer_attention: Vec<LayerAttention>,
    /// Mixture-of-experts layout, if any.
    pub moe: Option<MoeSpec>,
    /// Multi-head latent attention, if any.
    pub mla: Option<MlaSpec>,
    /// `torch_dtype` of the checkpoint, e.g. `bfloat16`.
    pub torch_dtype: Option<String>,
    /// Checkpoint quantization method from `quantization_config.quant_method`, e.g. `mxfp4`.
    pub checkpoint_quantization: Option<String>,
    /// `attention_bias`: the q/k/v/o projections carry biases (Llama variants, gpt-oss). Qwen2's
    /// q/k/v biases are part of its architecture and do not depend on this flag.
    #[serde(default)]
    pub attention_bias: bool,
    /// `mlp_bias`: the dense MLP projections carry biases.
    #[serde(default)]
    pub mlp_bias: bool,
}

/// The context used when the user gives none: 4096 tokens, or the model's maximum if smaller.
/// Never silently the maximum (a 128K–262K default makes nothing fit).
pub const DEFAULT_CONTEXT_TOKENS: u64 = 4096;

impl ModelSpec {
    /// The default context for this model: [`DEFAULT_CONTEXT_TOKENS`] or `max_context` if smaller.
    pub fn default_context(&self) -> u64 {
        DEFAULT_CONTEXT_TOKENS.min(self.max_context.max(1))
    }
}
