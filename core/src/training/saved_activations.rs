//! Activations a training step keeps for the backward pass, per layer and for the whole step
//! (the counts in the module docs of [`crate::training`]).

use super::{
    lora::LoraParams,
    mode::{FullSettings, Mode, TrainingPrecision},
};
use crate::{
    activations::{FP32_BYTES, attention_widths},
    model::{Architecture, ModelSpec},
};

/// Activation element size during training: bf16 (mixed and pure) or fp32. QLoRA runs in fp32:
/// peft's `prepare_model_for_kbit_training` upcasts every parameter that is not 4-bit
/// (embeddings, norms, output head) to fp32, so the residual stream, the norms' outputs and the
/// 4-bit layers' outputs (bitsandbytes' `Linear4bit.forward` casts the product back to its
/// input's dtype) are fp32. With grouped key/value heads that also sends SDPA to its math path
/// ([`sdpa_math_fallback`]): measured on an H100, 2.2× the per-layer activations of the same
/// QLoRA without the preparation.
fn training_activation_bytes(mode: &Mode) -> u64 {
    match mode {
        Mode::Full(FullSettings {
            precision: TrainingPrecision::Fp32,
            ..
        })
        | Mode::Qlora(_) => 4,
        _ => 2,
    }
}

/// Whether transformers' SDPA attention runs PyTorch's math path during training, which keeps
/// the full attention probabilities. transformers passes `enable_gqa=True` when there is no
/// padding mask (`use_gqa_in_sdpa`, `transformers/integrations/sdpa_attention.py`); with fp32
/// queries PyTorch's flash and cuDNN kernels are out (fp16/bf16 only) and the memory-efficient
/// kernel admits no grouped heads (`check_batch_size_and_num_heads_dense<false>` in
/// `use_mem_efficient_attention`, `aten/src/ATen/native/transformers/cuda/sdp_utils.cpp`), so
/// fp32 activations with fewer key/value heads than query heads fall back to math.
fn sdpa_math_fallback(model: &ModelSpec, e: u64, fused_attention: bool) -> bool {
    fused_attention
        && e >= FP32_BYTES
        && model.mla.is_none()
        && model.num_kv_heads < model.num_attention_heads
}

/// Whether a training step in `mode` runs SDPA's math path ([`sdpa_math_fallback`]).
pub(crate) fn training_uses_math_attention(
    model: &ModelSpec,
    mode: &Mode,
    fused_attention: bool,
) -> bool {
    sdpa_math_fallback(model, training_activation_bytes(mode), fused_attention)
}

/// Activations stored per token of one layer, in elements (see the module docs).
/// `experts_trained`: whether the base weights (routed experts included) receive gradients
/// (full fine-tuning); frozen linear layers keep no input for a weight gradient.
pub fn layer_activation_elements_per_token(
    model: &ModelSpec,
    layer: u64,
    experts_trained: bool,
) -> u64 {
    let h = model.hidden_size;
    let (q_dim, kv_dim) = attention_widths(model);
    let mlp = match &model.moe {
        // Per (token, expert) slot the grouped_mm path keeps gate_up, its masked copy, SiLU and
        // the product (4·I) and the down output the routing weights multiply (h); when the
        // experts are trained it also keeps the gathered input for their weight gradient and
        // the down output's copy (2·h more): the inference working set of activations.rs.
        Some(moe) if !moe.dense_layers.contains(&layer) => {
            let slot_h = if experts_trained { 3 } else { 1 };
            moe.experts_per_token
                .saturating_mul(
                    h.saturating_mul(slot_h)
                        .saturating_add(moe.expert_intermediate_size.saturating_mul(4)),
                )
                .saturating_add(moe.shared_intermediate_size.saturating_mul(4))
                .saturating_add(moe.num_experts)
        }
        // gate output (SiLU's input), SiLU(gate) and up (the product's inputs), and the product
        // itself when `down_proj` is trained (a frozen linear keeps no input).
        _ => model
            .intermediate_size
            .saturating_mul(if experts_trained { 4 } else { 3 }),
    };
    // The outputs of the two norms that feed projections (2·h), kept by trained projections
    // only (peft's own fp32 input copies are counted with the adapters); the norms' own saved
    // tensors are counted in bytes by `norm_saved_bytes_per_token`.
    let norm_outputs = if experts_trained {
        h.saturating_mul(2)
    } else {
        0
    };
    norm_outputs
        .saturating_add(q_dim.saturating_mul(2))
        .saturating_add(kv_dim.saturating_mul(2))
        .saturating_add(mlp)
}

/// Bytes the RMSNorms of one layer save per token for the backward pass. transformers computes
/// RMSNorm in fp32 (`hidden_states.to(torch.float32)`): each norm keeps its fp32 input copy
/// (4·h bytes); when the norm weight is trained it also keeps the normalized tensor its weight
/// multiplies (Llama-style: in the activation dtype; Gemma-style `(1 + weight)` scaling: fp32).
/// Gemma-2/3 have four norms per layer, the others two.
pub fn norm_saved_bytes_per_token(model: &ModelSpec, weights_trained: bool, e: u64) -> u64 {
    let gemma = matches!(
        model.architecture,
        Architecture::Gemma | Architecture::Gemma2 | Architecture::Gemma3
    );
    let norms: u64 = if matches!(
        model.architecture,
        Architecture::Gemma2 | Architecture::Gemma3
    ) {
        4
    } else {
        2
    };
    let input_copy = FP32_BYTES.max(e);
    let normalized = match (weights_trained, gemma) {
        (false, _) => 0,
        (true, true) => FP32_BYTES.max(e),
        (true, false) => e,
    };
    norms
        .saturating_mul(input_copy.saturating_add(normalized))
        .saturating_mul(model.hidden_size)
}

/// Activation bytes of one training step: stored activations for `batch × seq`, logits and loss.
pub fn training_activation_bytes_for(
    model: &ModelSpec,
    mode: &Mode,
    batch: u64,
    seq: u64,
    fused_attention: bool,
    lora: Option<&LoraParams>,
) -> u64 {
    let e = training_activation_bytes(mode);
    let tokens = batch.saturating_mul(seq);
    let math_attention = sdpa_math_fallback(model, e, fused_attention);
    let (q_dim, kv_dim) = attention_widths(model);
    // PyTorch's math path (`_scaled_dot_product_attention_math`, `attention.cpp`) keeps, instead
    // of the fused kernels' q, k, v and output: the scaled query, the keys repeated to every
    // query head and scaled, the values repeated to every query head (`matmul` saves both
    // operands), the fp32 softmax output (saved by `softmax` and by the second `matmul`); the
    // output transformers makes contiguous is the output projection's input.
    let math_elements_delta = if math_attention {
        q_dim.saturating_mul(4).saturating_sub(
            q_dim
                .saturating_mul(2)
                .saturating_add(kv_dim.saturating_mul(2)),
        )
    } else {
        0
    };
    let scores_per_token = if math_attention {
        model
            .num_attention_heads
            .saturating_mul(seq)
            .saturating_mul(FP32_BYTES)
    } else if fused_attention {
        0
    } else {
        model
            .num_attention_heads
            .saturating_mul(seq)
            .saturating_mul(e.saturating_add(FP32_BYTES))
    };
    let experts_trained = matches!(mode, Mode::Full(_));
    let materialized = lora.map_or(0, |l| l.materialized_expert_bytes_per_layer);
    let norm_bytes = norm_saved_bytes_per_token(model, experts_trained, e);
    // LoRA on a subset of layers (peft's `layers_to_transform`): only adapted layers carry
    // peft's fp32 input copies and materialized experts.
    let settings = match mode {
        Mode::Lora(l) | Mode::Qlora(l) => Some(l),
        _ => None,
    };
    let adapted = |layer: u64| settings.is_none_or(|l| l.adapts_layer(layer));
    let layer_bytes = |layer: u64| {
        let moe_layer = model
            .moe
            .as_ref()
            .is_some_and(|m| !m.dense_layers.contains(&layer));
        let (lora_per_token, materialized) = if adapted(layer) {
            (
                lora.map_or(0, |l| {
                    // Activations already in the adapters' fp32: peft saves the module inputs
                    // themselves, not per-module fp32 copies.
                    if e >= FP32_BYTES {
                        l.shared_input_activation_bytes_per_token_layer
                    } else {
                        l.activation_bytes_per_token_layer
                    }
                }),
                materialized,
            )
        } else {
            (0, 0)
        };
        tokens
            .saturating_mul(
                layer_activation_elements_per_token(model, layer, experts_trained)
                    .saturating_add(math_elements_delta)
                    .saturating_mul(e)
                    .saturating_add(norm_bytes)
                    .saturating_add(scores_per_token)
                    .saturating_add(lora_per_token),
            )
            .saturating_add(if moe_layer { materialized } else { 0 })
    };
    // Autograd records (and keeps saved tensors for) only operations with an input that
    // requires grad. With a frozen base and a frozen embedding, nothing before the first
    // adapted layer does: those layers run as if under `no_grad`. From the first adapted layer
    // on, every layer (adapted or not) keeps what its input gradient needs. Without
    // checkpointing peft does not make the embedding output require grad (it does so only
    // when the model has gradient checkpointing on); a script that calls
    // `enable_input_require_grads` itself keeps every layer's activations.
    let first_kept = lora.map_or(0, |l| l.first_adapted_layer);
    // Final norm input/output, and the loss at the start of the backward pass: the logits in the
    // activation dtype (kept by the model output), cross-entropy's saved fp32 log-softmax, the
    // fp32 gradient arriving at it and the fp32 gradient it returns (the peak measured on an H200
    // is exactly one fp32 logits tensor above the forward peak).
    let final_hidden = tokens
        .saturating_mul(model.hidden_size)
        .saturating_mul(2)
        .saturating_mul(e);
    let logits = tokens
        .saturating_mul(model.vocab_size)
        .saturating_mul(e.saturating_add(FP32_BYTES.saturating_mul(3)));
    let loss = final_hidden.saturating_add(logits);
    let layers = model.num_layers;
    if mode.gradient_checkpointing() {
        // Each layer's input stays; the loss's backward comes first, then one layer at a time is
        // recomputed and differentiated after the loss tensors are gone (its gradients are
        // transient and smaller than its saved activations).
        let inputs = tokens
            .saturating_mul(model.hidden_size)
            .saturating_mul(e)
            .saturating_mul(layers);
        // With checkpointing on, peft (`PeftModel._prepare_model_for_gradient_checkpointing`,
        // guarded by `is_gradient_checkpointing`) and transformers' `gradient_checkpointing_enable`
        // call `enable_input_require_grads`: the embedding output requires grad, so every layer
        // is in the graph and keeps its input, whichever layers are adapted.
        let largest = (0..layers).map(layer_bytes).max().unwrap_or(0);
        inputs.saturating_add(loss.max(largest))
    } else {
        (first_kept..layers)
            .fold(0u64, |acc, l| acc.saturating_add(layer_bytes(l)))
            .saturating_add(loss)
    }
}
