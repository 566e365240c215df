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
        // Saturating: configs are range-checked, but a product must never panic.
        self.shape
            .iter()
            .fold(1u64, |acc, d| acc.saturating_mul(*d))
    }

    /// Elements of one row (the last dimension; 1 for a scalar).
    pub fn row_len(&self) -> u64 {
        self.shape.last().copied().unwrap_or(1)
    }

    /// Rows: elements / row length (every expert's rows for a stacked expert tensor).
    pub fn rows(&self) -> u64 {
        self.shape
            .iter()
            .rev()
            .skip(1)
            .fold(1u64, |acc, d| acc.saturating_mul(*d))
    }

    /// Matrices stacked in this tensor: the expert count for `[experts, rows, cols]`, else 1.
    pub fn matrices(&self) -> u64 {
        if self.shape.len() >= 3 {
            self.shape
                .iter()
                .rev()
                .skip(2)
                .fold(1u64, |acc, d| acc.saturating_mul(*d))
        } else {
            1
        }
    }

    /// True for 1-D tensors (norms, biases, sinks), which quantizers keep in full precision.
    pub fn is_vector(&self) -> bool {
        self.shape.len() <= 1
    }
}

/// Builds the list, one layer at a time.
struct Builder<'a> {
    model: &'a ModelSpec,
    out: Vec<Tensor>,
}

impl Builder<'_> {
    fn push(&mut self, name: String, role: TensorRole, layer: Option<u64>, shape: Vec<u64>) {
        let elements = shape.iter().fold(1u64, |acc, d| acc.saturating_mul(*d));
        self.out.push(Tensor {
            name,
            role,
            layer,
            shape,
            active_elements: elements,
        });
    }

    fn layer(&mut self, i: u64, suffix: &str, role: TensorRole, shape: Vec<u64>) {
        self.push(format!("blk.{i}.{suffix}"), role, Some(i), shape);
    }

    /// A routed-expert tensor: one token reads `experts_per_token` of the `experts` matrices.
    fn experts(&mut self, i: u64, suffix: &str, role: TensorRole, shape: Vec<u64>, k: u64) {
        let experts = shape.first().copied().unwrap_or(1).max(1);
        let elements = shape.iter().fold(1u64, |acc, d| acc.saturating_mul(*d));
        self.out.push(Tensor {
            name: format!("blk.{i}.{suffix}"),
            role,
            layer: Some(i),
            shape,
            // Exact: elements is a multiple of `experts`.
            active_elements: (elements / experts).saturating_mul(k),
        });
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
    let m = model;
    let mut b = Builder {
        model: m,
        out: Vec::new(),
    };
    let h = m.hidden_size;
    let arch = &m.architecture;

    b.push(
        "token_embd.weight".into(),
        TensorRole::TokenEmbedding,
        None,
        vec![m.vocab_size, h],
    );
    if !m.tie_word_embeddings
        && let Some(t) = b.out.last_mut()
    {
        t.active_elements = h;
    }

    for i in 0..m.num_layers {
        b.layer(i, "attn_norm.weight", TensorRole::Norm, vec![h]);
        if m.mla.is_some() {
            mla_attention(&mut b, i);
        } else {
            attention(&mut b, i);
        }
        let gemma_post_norms = matches!(arch, Architecture::Gemma2 | Architecture::Gemma3);
        if gemma_post_norms {
            b.layer(i, "post_attention_norm.weight", TensorRole::Norm, vec![h]);
        }
        b.layer(i, "ffn_norm.weight", TensorRole::Norm, vec![h]);
        if gemma_post_norms {
            b.layer(i, "post_ffw_norm.weight", TensorRole::Norm, vec![h]);
        }
        mlp(&mut b, i);
    }

    b.push("output_norm.weight".into(), TensorRole::Norm, None, vec![h]);
    if !m.tie_word_embeddings {
        b.push(
            "output.weight".into(),
            TensorRole::Output,
            None,
            vec![m.vocab_size, h],
        );
    }
    let _ = b.model;
    b.out
}

/// Grouped-query attention (every family except DeepSeek's MLA).
fn attention(b: &mut Builder<'_>, i: u64) {
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
            vec![q_dim.saturating_add(kv_dim.saturating_mul(2)), h],
        );
        b.layer(
            i,
            "attn_output.weight",
            TensorRole::AttnOutput,
            vec![h, q_dim],
        );
        return;
    }

    let qkv_bias = m.attention_bias || matches!(arch, Architecture::Qwen2 | Architecture::Qwen2Moe);
    b.layer(i, "attn_q.weight", TensorRole::AttnQ, vec![q_dim, h]);
    if qkv_bias {
        b.layer(i, "attn_q.bias", TensorRole::Bias, vec![q_dim]);
    }
    b.layer(i, "attn_k.weight", TensorRole::AttnK, vec![kv_dim, h]);
    if qkv_bias {
        b.layer(i, "attn_k.bias", TensorRole::Bias, vec![kv_dim]);
    }
    b.layer(i, "attn_v.weight", TensorRole::AttnV, vec![kv_dim, h]);
    if qkv_bias {
        b.layer(i, "attn_v.bias", TensorRole::Bias, vec![kv_dim]);
    }
    if matches!(
        arch,
        Architecture::Qwen3 | Architecture::Qwen3Moe | Architecture::Gemma3
    ) {
        b.layer(i, "attn_q_norm.weight", TensorRole::Norm, vec![m.head_dim]);
        b.layer(i, "attn_k_norm.weight", TensorRole::Norm, vec![m.head_dim]);
    }
    b.layer(
        i,
        "attn_output.weight",
        TensorRole::AttnOutput,
        vec![h, q_dim],
    );
    if m.attention_bias {
        b.layer(i, "attn_output.bias", TensorRole::Bias, vec![h]);
    }
    if *arch == Architecture::GptOss {
        // One learned sink logit per head.
        b.layer(
            i,
            "attn_sinks.weight",
            TensorRole::Bias,
            vec![m.num_attention_heads],
        );
    }
}

/// DeepSeek multi-head latent attention.
fn mla_attention(b: &mut Builder<'_>, i: u64) {
    let m = b.model;
    let Some(mla) = m.mla.as_ref() else {
        return;
    };
    let h = m.hidden_size;
    let heads = m.num_attention_heads;
    let q_head = mla.qk_nope_head_dim.saturating_add(mla.qk_rope_head_dim);
    match mla.q_lora_rank {
        Some(r) => {
            b.layer(i, "attn_q_a.weight", TensorRole::AttnQA, vec![r, h]);
            b.layer(i, "attn_q_a_norm.weight", TensorRole::Norm, vec![r]);
            b.layer(
                i,
                "attn_q_b.weight",
                TensorRole::AttnQB,
                vec![heads.saturating_mul(q_head), r],
            );
        }
        None => {
            b.layer(
                i,
                "attn_q.weight",
                TensorRole::AttnQ,
                vec![heads.saturating_mul(q_head), h],
            );
        }
    }
    b.layer(
        i,
        "attn_kv_a_mqa.weight",
        TensorRole::AttnKvA,
        vec![mla.kv_lora_rank.saturating_add(mla.qk_rope_head_dim), h],
    );
    b.layer(
        i,
        "attn_kv_a_norm.weight",
        TensorRole::Norm,
        vec![mla.kv_lora_rank],
    );
    b.layer(
        i,
        "attn_kv_b.weight",
        TensorRole::AttnKvB,
        vec![
            heads.saturating_mul(mla.qk_nope_head_dim.saturating_add(mla.v_head_dim)),
            mla.kv_lora_rank,
        ],
    );
    b.layer(
        i,
        "attn_output.weight",
        TensorRole::AttnOutput,
        vec![h, heads.saturating_mul(mla.v_head_dim)],
    );
}

/// The feed-forward block of layer `i`: dense, or router + routed experts (+ shared experts).
fn mlp(b: &mut Builder<'_>, i: u64) {
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
                vec![inter.saturating_mul(2), h],
            );
        } else {
            b.layer(i, "ffn_gate.weight", TensorRole::FfnGate, vec![inter, h]);
            if m.mlp_bias {
                b.layer(i, "ffn_gate.bias", TensorRole::Bias, vec![inter]);
            }
            b.layer(i, "ffn_up.weight", TensorRole::FfnUp, vec![inter, h]);
            if m.mlp_bias {
                b.layer(i, "ffn_up.bias", TensorRole::Bias, vec![inter]);
            }
        }
        b.layer(i, "ffn_down.weight", TensorRole::FfnDown, vec![h, inter]);
        if m.mlp_bias {
            b.layer(i, "ffn_down.bias", TensorRole::Bias, vec![h]);
        }
        return;
    };

    let e = moe.num_experts;
    let k = moe.experts_per_token;
    let ei = moe.expert_intermediate_size;
    let gpt_oss = *arch == Architecture::GptOss;
    b.layer(i, "ffn_gate_inp.weight", TensorRole::FfnRouter, vec![e, h]);
    if gpt_oss {
        b.layer(i, "ffn_gate_inp.bias", TensorRole::Bias, vec![e]);
    }
    if *arch == Architecture::DeepseekV3 {
        // V3's aux-loss-free routing adds a per-expert score correction bias.
        b.layer(i, "exp_probs_b.bias", TensorRole::Bias, vec![e]);
    }
    b.experts(
        i,
        "ffn_gate_exps.weight",
        TensorRole::FfnGateExperts,
        vec![e, ei, h],
        k,
    );
    if gpt_oss {
        b.experts(i, "ffn_gate_exps.bias", TensorRole::Bias, vec![e, ei], k);
    }
    b.experts(
        i,
        "ffn_up_exps.weight",
        TensorRole::FfnUpExperts,
        vec![e, ei, h],
        k,
    );
    if gpt_oss {
        b.experts(i, "ffn_up_exps.bias", TensorRole::Bias, vec![e, ei], k);
    }
    b.experts(
        i,
        "ffn_down_exps.weight",
        TensorRole::FfnDownExperts,
        vec![e, h, ei],
        k,
    );
    if gpt_oss {
        b.experts(i, "ffn_down_exps.bias", TensorRole::Bias, vec![e, h], k);
    }
    if moe.num_shared_experts > 0 && moe.shared_intermediate_size > 0 {
        let si = moe.shared_intermediate_size;
        if *arch == Architecture::Qwen2Moe {
            // Qwen2-MoE gates its shared expert with a sigmoid of a [1, hidden] projection.
            b.layer(
                i,
                "ffn_gate_inp_shexp.weight",
                TensorRole::FfnRouter,
                vec![1, h],
            );
        }
        b.layer(
            i,
            "ffn_gate_shexp.weight",
            TensorRole::FfnGateShared,
            vec![si, h],
        );
        b.layer(
            i,
            "ffn_up_shexp.weight",
            TensorRole::FfnUpShared,
            vec![si, h],
        );
        b.layer(
            i,
            "ffn_down_shexp.weight",
            TensorRole::FfnDownShared,
            vec![h, si],
        );
    }
}
