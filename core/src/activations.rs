//! Activation memory: the prefill peak for batch × context with the runtime's chunk size, with
//! and without fused attention, plus logits.
//!
//! Inference keeps no activations between layers (no autograd graph), so the peak is one
//! layer's working set for the tokens of one forward pass, or the logits at the end, whichever
//! is larger. The mechanisms, per runtime (see [`crate::runtime::RuntimeProfile`]):
//!
//! * **Chunk.** transformers runs the whole prompt of every sequence in one forward pass;
//!   llama.cpp evaluates `n_ubatch` (512) tokens at a time across all sequences; vLLM reserves
//!   activations for a profiling pass of its whole `max_num_batched_tokens` (8192) budget;
//!   mlx-lm `prefill_step_size` (2048) per sequence.
//! * **Layer working set** (elements per token in the chunk): attention phase
//!   `2·hidden + 3·q_dim + 3·kv_dim` (residual input, normed input; q, rotated q, attention
//!   output; k, v, rotated k) and MLP phase `2·hidden + 3·I` (residual, normed input; gate,
//!   up, and their product alive together before `down_proj`). transformers also keeps the
//!   embedding output (`hidden`) alive for the whole layer loop. MoE: every (token, expert) slot
//!   (`tokens × experts_per_token`) holds `3·hidden + 4·I_expert` when the engine computes all
//!   selected experts at once (transformers 5 `grouped_mm`, llama.cpp `mul_mat_id`, vLLM
//!   `fused_moe`, MLX `gather_mm`): gathered input, down output and its copies, the fused gate/up
//!   output, its masked copy and the SwiGLU product. Shared experts add `3·I_shared`.
//! * **Attention scores** when attention is *not* fused: `batch · heads · chunk · kv_len`
//!   scores, each held in the activation type and once more in fp32 for the softmax
//!   (transformers eager: `softmax(..., dtype=float32)`; ggml: f32 KQ and f32 softmax).
//!   transformers eager keeps three activation-type copies and one fp32 copy alive at the
//!   softmax, and materializes a `batch · chunk · kv_len` mask; with SDPA it builds a boolean mask
//!   only when a sliding window is shorter than the prompt. llama.cpp always builds an f16
//!   `chunk · kv_len` mask. gpt-oss (attention sinks) runs eager attention in transformers, with
//!   its softmax in the activation type (three copies, no fp32).
//! * **Logits**: a plain transformers forward computes `batch · tokens · vocab` logits in the
//!   model dtype (transformers 5 no longer upcasts them); `generate()` only the last position
//!   (`logits_to_keep=1`); llama.cpp, vLLM and MLX only the last position, in fp32. Gemma-2's
//!   final logit soft-capping holds two copies of the logits in transformers.
//! * **Decode steps** (unless `ActivationOptions::decode` is `Some(false)`): on CUDA,
//!   transformers' `generate()` runs MoE experts through `batched_mm`, which gathers the selected
//!   experts' weights per (sequence, expert) slot: `batch · top_k · 3 · hidden · I_expert`
//!   elements per layer, beside the full cache.

use serde::{Deserialize, Serialize};

use crate::{
    model::{Architecture, LayerAttention, ModelSpec},
    runtime::{Runtime, RuntimeProfile},
};

/// Bytes of one fp32 element: softmax and upcast logits.
pub const FP32_BYTES: u64 = 4;
/// Bytes of one f16 element: llama.cpp's attention mask.
pub const F16_BYTES: u64 = 2;

/// Choices that change the activation peak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ActivationOptions {
    /// Force fused (`Some(true)`) or materialized (`Some(false)`) attention; `None` = the
    /// runtime's default.
    pub fused_attention: Option<bool>,
    /// Compute logits for every prompt position (a plain forward / evaluation) instead of the
    /// last one only (`generate()`); `None` = the runtime's default.
    pub logits_all_positions: Option<bool>,
    /// Include the decode steps that follow the prefill (`None` or `Some(true)`: a `generate()`
    /// run) or size the prefill alone (`Some(false)`: one forward pass).
    #[serde(default)]
    pub decode: Option<bool>,
}

/// The activation peak of one prefill and what it is made of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationBytes {
    /// The peak: `max(max(MLP phase, attention phase + scores) + mask, logits + final hidden,
    /// decode step)`.
    pub total_bytes: u64,
    /// Largest layer working set (hidden states, projections, MLP intermediates).
    pub layer_bytes: u64,
    /// Materialized attention scores (0 when fused).
    pub attention_scores_bytes: u64,
    /// Attention mask.
    pub mask_bytes: u64,
    /// Logits.
    pub logits_bytes: u64,
    /// Tokens in one forward pass, summed over the batch.
    pub chunk_tokens: u64,
    /// Whether attention was taken as fused.
    pub fused_attention: bool,
    /// Whether logits were computed for every position.
    pub logits_all_positions: bool,
    /// Transient of one decode step beyond the cache (transformers' `batched_mm` MoE decode
    /// gathers the selected experts' weights); 0 when not counted.
    pub decode_step_bytes: u64,
}

/// Tokens (over the whole batch) one forward pass of the prefill processes.
pub fn chunk_tokens(profile: &RuntimeProfile, runtime: Runtime, context: u64, batch: u64) -> u64 {
    let all = context.saturating_mul(batch);
    match (runtime, profile.prefill_chunk_tokens) {
        (_, None) => all,
        // mlx-lm steps each sequence's prompt separately.
        (Runtime::Mlx, Some(step)) => context.min(step).saturating_mul(batch),
        // vLLM sizes its activation reserve with a profiling forward of the whole
        // max_num_batched_tokens budget at start, whatever the requests will be.
        (Runtime::Vllm { .. }, Some(budget)) => budget,
        (_, Some(chunk)) => all.min(chunk),
    }
}

/// Width of a query row (`heads · head_dim`) and of a key/value row as the engine computes them
/// during the prefill (MLA decompresses keys and values per head for the attention itself).
pub fn attention_widths(model: &ModelSpec) -> (u64, u64) {
    match &model.mla {
        Some(mla) => {
            let qk = mla.qk_nope_head_dim.saturating_add(mla.qk_rope_head_dim);
            let q = model.num_attention_heads.saturating_mul(qk);
            let kv = model
                .num_attention_heads
                .saturating_mul(qk.max(mla.v_head_dim));
            (q, kv)
        }
        None => (
            model.num_attention_heads.saturating_mul(model.head_dim),
            model.num_kv_heads.saturating_mul(model.head_dim),
        ),
    }
}

/// Longest key length any layer attends to with `context` tokens cached (windows limit sliding
/// layers).
pub fn max_kv_len(model: &ModelSpec, context: u64) -> u64 {
    if model.layer_attention.is_empty() {
        return context;
    }
    model
        .layer_attention
        .iter()
        .map(|a| a.limit().map_or(context, |w| context.min(w)))
        .max()
        .unwrap_or(context)
}

/// Whether transformers' router for `architecture` hands the experts fp32 routing weights: the
/// DeepSeek-style sigmoid router computes its logits in fp32 and never casts the top-k weights
/// back, so the weighted expert outputs (`proj_out * weights` and its reordered copy in
/// `grouped_mm_experts_forward`) are fp32, each `2·h` bf16-equivalents per (token, expert) slot. Read in transformers 5.17's `*TopkRouter.forward` of each family listed, and
/// measured on an H100 (DeepSeek-V3 cut to 4 layers: the prefill peak is the MoE layer's).
/// Softmax routers (Mixtral, Qwen MoE) cast the weights back to the hidden dtype.
fn transformers_routes_in_fp32(architecture: &Architecture) -> bool {
    matches!(
        architecture,
        Architecture::DeepseekV2
            | Architecture::DeepseekV3
            | Architecture::DeepseekV32
            | Architecture::Glm4Moe
            | Architecture::Glm4MoeLite
            | Architecture::GlmMoeDsa
            | Architecture::MimoV2Flash
    )
}

/// MLP elements alive for the `n` tokens of one chunk (see the module docs); `fp32_routing`:
/// the weighted expert outputs are fp32 ([`transformers_routes_in_fp32`]).
fn mlp_elements(model: &ModelSpec, n: u64, all_experts_at_once: bool, fp32_routing: bool) -> u64 {
    let h = model.hidden_size;
    let dense = n.saturating_mul(3).saturating_mul(model.intermediate_size);
    let Some(moe) = &model.moe else {
        return dense;
    };
    let routed_token_slots = n.saturating_mul(moe.experts_per_token);
    let routed_tokens_alive = if all_experts_at_once {
        routed_token_slots
    } else {
        routed_token_slots.div_ceil(moe.num_experts.max(1))
    };
    // Per (token, expert) slot, as transformers 5's grouped_mm path allocates it (read from the
    // source and checked against the H200 measurements, core/docs/ACCURACY.md): the gathered
    // input, the down output and its copies (3·h), the fused gate_up output, its `masked_fill`
    // copy and the SwiGLU product (4·I).
    let per_slot = h
        .saturating_mul(3)
        .saturating_add(moe.expert_intermediate_size.saturating_mul(4));
    // With fp32 routing weights the expert phase ends with the gathered input and the down
    // output (2·h) beside the fp32 weighted output and its reordered copy (2 × 2·h in bf16
    // elements): a later peak than the gate/up phase when the hidden size is large.
    let per_slot = if fp32_routing {
        per_slot.max(h.saturating_mul(6))
    } else {
        per_slot
    };
    let routed = routed_tokens_alive.saturating_mul(per_slot);
    let shared = n
        .saturating_mul(3)
        .saturating_mul(moe.shared_intermediate_size);
    // Layers listed as dense use the dense MLP.
    let moe_layer = routed.saturating_add(shared);
    if moe.dense_layers.is_empty() {
        moe_layer
    } else {
        moe_layer.max(dense)
    }
}

/// The activation peak of a prefill of `context` tokens for `batch` sequences on `runtime`.
pub fn prefill_activation_bytes(
    model: &ModelSpec,
    context: u64,
    batch: u64,
    runtime: Runtime,
    profile: &RuntimeProfile,
    options: ActivationOptions,
) -> ActivationBytes {
    let e = profile.activation_element_bytes;
    let transformers = matches!(
        runtime,
        Runtime::TransformersCuda | Runtime::TransformersMps
    );
    // gpt-oss's attention sinks have no SDPA kernel in transformers: it runs eager attention.
    let gpt_oss = model.architecture == Architecture::GptOss;
    let fused = options
        .fused_attention
        .unwrap_or(profile.fused_attention && !(transformers && gpt_oss));
    let logits_all = options
        .logits_all_positions
        .unwrap_or(profile.logits_all_positions);
    let n = chunk_tokens(profile, runtime, context, batch);
    let h = model.hidden_size;
    let (q_dim, kv_dim) = attention_widths(model);
    let attn_elems = n.saturating_mul(
        h.saturating_mul(2)
            .saturating_add(q_dim.saturating_mul(3))
            .saturating_add(kv_dim.saturating_mul(3)),
    );
    let mlp_elems = n
        .saturating_mul(h.saturating_mul(2))
        .saturating_add(mlp_elements(
            model,
            n,
            profile.moe_all_experts_at_once,
            transformers && transformers_routes_in_fp32(&model.architecture),
        ));
    // transformers keeps the embedding output referenced for the whole layer loop.
    let embeds = if profile.keeps_input_embeddings {
        n.saturating_mul(h)
    } else {
        0
    };
    let kv_len = max_kv_len(model, context);
    // Queries per sequence in this pass.
    let q_per_seq = match (runtime, profile.prefill_chunk_tokens) {
        (_, None) => context,
        (Runtime::Mlx, Some(step)) => context.min(step),
        // A chunk of n tokens over the batch: n query rows in total.
        _ => 1,
    };
    let score_rows = if q_per_seq == 1 {
        n
    } else {
        q_per_seq.saturating_mul(batch)
    };
    let scores_elems = score_rows
        .saturating_mul(model.num_attention_heads)
        .saturating_mul(kv_len);
    // transformers eager: `matmul(q, kᵀ)`, `* scaling` and `+ mask` each make a new tensor in
    // the activation type, the softmax runs in fp32, and its `.to(dtype)` copy is made while the
    // fp32 result and the pre-softmax scores are still referenced: 3 activation-type copies and
    // one fp32 copy alive at once. ggml: f32 KQ and f32 softmax.
    let score_bytes = if transformers && gpt_oss {
        // gpt-oss appends the sink logit and runs the softmax in the activation type:
        // `cat`, `- max` and `softmax` copies, no fp32.
        e.saturating_mul(3)
    } else if transformers {
        e.saturating_mul(3).saturating_add(FP32_BYTES)
    } else {
        e.saturating_add(FP32_BYTES)
    };
    let attention_scores_bytes = if fused {
        0
    } else {
        scores_elems.saturating_mul(score_bytes)
    };
    // Sliding-window layers cannot use SDPA's built-in causal flag once the prompt is longer
    // than the window: transformers then materializes a boolean batch × q × kv mask.
    let windowed_prompt = model
        .layer_attention
        .iter()
        .any(|a| matches!(a, LayerAttention::Sliding { window } if *window < context));
    let mask_bytes = match runtime {
        Runtime::LlamaCpp => n.saturating_mul(kv_len).saturating_mul(F16_BYTES),
        _ if transformers && !fused => score_rows.saturating_mul(kv_len).saturating_mul(e),
        _ if transformers && windowed_prompt => score_rows.saturating_mul(kv_len),
        _ => 0,
    };
    let layer_bytes = attn_elems
        .max(mlp_elems)
        .saturating_add(embeds)
        .saturating_mul(e);
    // Scores exist during the attention phase only, not beside the MLP's intermediates; the
    // mask is built once before the layer loop and lives through all of it.
    let attn_phase_bytes = attn_elems
        .saturating_add(embeds)
        .saturating_mul(e)
        .saturating_add(attention_scores_bytes);
    let logits_positions = if logits_all {
        context.saturating_mul(batch)
    } else {
        batch
    };
    // Gemma-2's final logit soft-capping (`logits / cap`, `tanh`, `* cap`) holds two copies of
    // the logits at once in transformers.
    let logits_copies = if transformers && model.architecture == Architecture::Gemma2 {
        2
    } else {
        1
    };
    let logits_bytes = logits_positions
        .saturating_mul(model.vocab_size)
        .saturating_mul(profile.logits_element_bytes)
        .saturating_mul(logits_copies);
    let final_hidden = n.saturating_mul(h).saturating_add(embeds).saturating_mul(e);
    let layer_peak = layer_bytes.max(attn_phase_bytes).saturating_add(mask_bytes);
    // transformers' generate() swaps MoE experts to `batched_mm` for the decode steps on a GPU,
    // which gathers the weights of every selected (sequence, expert) slot: gate_up (2·I × h) and
    // down (h × I) alive at once, `batch · top_k · 3 · h · I` elements per layer (found by the
    // accuracy measurements, core/docs/ACCURACY.md: Mixtral b1 704 MiB vs a 577 MiB prefill).
    let decode_step_bytes = match (&model.moe, runtime, options.decode.unwrap_or(true)) {
        (Some(moe), Runtime::TransformersCuda, true) => batch
            .saturating_mul(moe.experts_per_token.min(moe.num_experts))
            .saturating_mul(3)
            .saturating_mul(h)
            .saturating_mul(moe.expert_intermediate_size)
            .saturating_mul(e),
        _ => 0,
    };
    let total = layer_peak
        .max(logits_bytes.saturating_add(final_hidden))
        .max(decode_step_bytes);
    ActivationBytes {
        total_bytes: total,
        layer_bytes,
        attention_scores_bytes,
        mask_bytes,
        logits_bytes,
        chunk_tokens: n,
        fused_attention: fused,
        logits_all_positions: logits_all,
        decode_step_bytes,
    }
}
