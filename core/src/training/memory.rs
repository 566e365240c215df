//! The whole training step's memory ([`training_memory`]): weights, gradients, master copy,
//! optimizer state and its step temporary, and activations, for each [`Mode`].

use serde::{Deserialize, Serialize};

use super::{
    mode::{Mode, Optimizer, TrainingPrecision, describe_layers},
    saved_activations::{training_activation_bytes_for, training_uses_math_attention},
};
use crate::{CoreError, facts::ModelFacts, model::ModelSpec};

/// Memory of one training step beyond the (frozen or trained) weights.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainingBytes {
    /// Bytes of the weights as they sit in memory during training (the estimate's
    /// `weights_bytes` for full fine-tuning; for LoRA/QLoRA the caller's frozen-base bytes).
    pub weights_bytes: u64,
    /// Parameters that receive gradients.
    pub trainable_params: u64,
    /// Gradients.
    pub gradients_bytes: u64,
    /// fp32 master weights (mixed precision) or fp32 adapters (LoRA).
    pub master_weights_bytes: u64,
    /// Optimizer state (moments).
    pub optimizer_bytes: u64,
    /// Temporary of the optimizer step (PyTorch foreach AdamW).
    pub optimizer_step_temp_bytes: u64,
    /// Activations kept for the backward pass, loss included.
    pub activation_bytes: u64,
    /// Everything but `weights_bytes`: master + optimizer state +
    /// `max(activations, gradients + optimizer step temporary)`. The backward pass frees
    /// activations as it fills gradients, and the step's temporary comes after the activations
    /// are gone; measured peaks (H200, tests/data/measured) follow this shape.
    pub training_bytes: u64,
    /// What was assumed, in words.
    pub assumptions: Vec<String>,
}

/// Training memory for `mode` at `batch × seq`. `frozen_weights_bytes` are the base weights in
/// their format for LoRA/QLoRA (ignored for full fine-tuning, whose weights follow the training
/// precision). `fused_attention` is the attention kernel (SDPA/flash: true).
pub fn training_memory(
    model: &ModelSpec,
    mode: &Mode,
    frozen_weights_bytes: u64,
    batch: u64,
    seq: u64,
    fused_attention: bool,
) -> Result<TrainingBytes, CoreError> {
    let facts = ModelFacts::new(model);
    training_memory_with(
        &facts,
        mode,
        frozen_weights_bytes,
        batch,
        seq,
        fused_attention,
    )
}

/// [`training_memory`] of `facts`' model, with its counts computed at most once.
pub(crate) fn training_memory_with(
    facts: &ModelFacts<'_>,
    mode: &Mode,
    frozen_weights_bytes: u64,
    batch: u64,
    seq: u64,
    fused_attention: bool,
) -> Result<TrainingBytes, CoreError> {
    let model = facts.model();
    let mut assumptions = Vec::new();
    let attn = if training_uses_math_attention(model, mode, fused_attention) {
        "SDPA on PyTorch's math path (fp32 activations with grouped key/value heads: no fused \
         kernel takes them): the fp32 attention probabilities are stored per head, and the keys \
         and values repeated to every query head"
    } else if fused_attention {
        "fused attention (SDPA/flash): no score matrix stored"
    } else {
        "eager attention: scores stored in bf16 and fp32 per head"
    };
    match mode {
        Mode::Inference => Ok(TrainingBytes {
            weights_bytes: frozen_weights_bytes,
            trainable_params: 0,
            gradients_bytes: 0,
            master_weights_bytes: 0,
            optimizer_bytes: 0,
            optimizer_step_temp_bytes: 0,
            activation_bytes: 0,
            training_bytes: 0,
            assumptions,
        }),
        Mode::Full(s) => {
            let p = facts.counts().total;
            let (w, g, master, state_elem, state_count) = match s.precision {
                TrainingPrecision::Fp32 => (4, 4, 0, 4, 2),
                TrainingPrecision::Bf16Mixed => (2, 2, 4, 4, 2),
                TrainingPrecision::Bf16 => (2, 2, 0, 2, 2),
            };
            // Bytes of state per parameter, and of the step's temporary (PyTorch's foreach
            // AdamW only; bitsandbytes steps in place).
            let (state_per_param, temp_per_param) = match s.optimizer {
                Optimizer::AdamW => (state_elem * state_count, state_elem),
                Optimizer::Adam8bit | Optimizer::PagedAdam8bit => (2, 0),
                Optimizer::PagedAdamW => (8, 0),
                Optimizer::Sgd => (0, 0),
            };
            // Paged state lives in CUDA managed memory: resident on the GPU while there is room,
            // moved to host RAM by the driver when there is not, so the GPU does not need it.
            let opt_per_param = if s.optimizer.is_paged() {
                assumptions.push(format!(
                    "{} keeps its {state_per_param} B/param of state in CUDA managed memory: \
                     paged to host RAM ({:.2} GiB) when the GPU is full, so not counted on the GPU \
                     (steps slow down while it is paged out)",
                    s.optimizer.name(),
                    crate::units::gib(p.saturating_mul(state_per_param))
                ));
                0
            } else {
                state_per_param
            };
            let activation_bytes =
                training_activation_bytes_for(model, mode, batch, seq, fused_attention, None);
            let gradients_bytes = p.saturating_mul(g);
            let master_weights_bytes = p.saturating_mul(master);
            let optimizer_bytes = p.saturating_mul(opt_per_param);
            let temp = p.saturating_mul(temp_per_param);
            assumptions.push(format!(
                "full fine-tune {mode}: {w} B/param weights + {g} B grads + {master} B fp32 \
                 master + {opt_per_param} B optimizer state = {} B/param",
                w + g + master + opt_per_param
            ));
            if temp_per_param > 0 {
                assumptions.push(format!(
                    "PyTorch foreach AdamW step allocates one more {temp_per_param} B/param \
                     temporary (after activations are freed)"
                ));
            }
            assumptions.push(format!(
                "training activations for batch {batch} × {seq} tokens: {attn}; {}",
                if s.gradient_checkpointing {
                    "gradient checkpointing per decoder layer"
                } else {
                    "all layer activations kept"
                }
            ));
            Ok(TrainingBytes {
                weights_bytes: p.saturating_mul(w),
                trainable_params: p,
                gradients_bytes,
                master_weights_bytes,
                optimizer_bytes,
                optimizer_step_temp_bytes: temp,
                activation_bytes,
                training_bytes: master_weights_bytes
                    .saturating_add(optimizer_bytes)
                    .saturating_add(activation_bytes.max(gradients_bytes.saturating_add(temp))),
                assumptions,
            })
        }
        Mode::Lora(l) | Mode::Qlora(l) => {
            let lp = facts.lora_params(l)?;
            let a = lp.trainable_params;
            // peft upcasts adapters to fp32 (`autocast_adapter_dtype=True`); grads fp32; AdamW
            // two fp32 moments; foreach step temporary one fp32 copy.
            let master_weights_bytes = a.saturating_mul(4);
            let gradients_bytes = a.saturating_mul(4);
            let optimizer_bytes = a.saturating_mul(8);
            let temp = a.saturating_mul(4);
            let mut activation_bytes =
                training_activation_bytes_for(model, mode, batch, seq, fused_attention, Some(&lp));
            if lp.materialized_expert_bytes_per_layer > 0 {
                assumptions.push(format!(
                    "MoE: peft puts the gate/up/down adapters on the stacked experts (all \
                     experts, gate_up at rank 2r) and materializes W + ΔW of every expert, \
                     {:.0} MiB per MoE layer, kept for the backward pass; name only attention \
                     targets (q,k,v,o) to avoid it",
                    lp.materialized_expert_bytes_per_layer as f64 / (1u64 << 20) as f64
                ));
            }
            let mut upcast_bytes = 0;
            if let Mode::Qlora(_) = mode {
                // bitsandbytes' 4-bit matmul dequantizes each weight matrix to bf16 for the
                // product (forward and backward): one transient of the largest quantized matrix.
                let largest = facts.largest_matrix_elements();
                activation_bytes = activation_bytes.saturating_add(largest.saturating_mul(2));
                assumptions.push(format!(
                    "QLoRA: one bf16 dequantized copy of the largest 4-bit matrix ({:.0} MiB) \
                     during each matmul",
                    largest.saturating_mul(2) as f64 / (1u64 << 20) as f64
                ));
                // peft's prepare_model_for_kbit_training, which QLoRA recipes call before adding
                // adapters, upcasts every parameter left 16-bit to fp32: 2 more bytes each.
                let kept_16bit = facts.bnb_unquantized_elements();
                upcast_bytes = kept_16bit.saturating_mul(2);
                assumptions.push(format!(
                    "QLoRA as peft runs it: prepare_model_for_kbit_training upcasts the {kept_16bit} \
                     parameters not stored in 4-bit (embeddings, norms, output head) to fp32 \
                     (+{:.0} MiB), so activations flow in fp32 (the norms and bitsandbytes' \
                     4-bit layers return fp32) and peft's lora_A keeps each projection's fp32 \
                     input itself, one tensor shared by q/k/v and one by gate/up",
                    upcast_bytes as f64 / (1u64 << 20) as f64
                ));
            }
            assumptions.push(format!(
                "{} rank {} on {} ({} matrices): {} trainable parameters, fp32 adapters + fp32 \
                 grads + AdamW = 16 B each",
                mode.name(),
                l.rank,
                l.target_modules.join(","),
                lp.adapted_matrices,
                a
            ));
            if l.layers.is_some() {
                assumptions.push(format!(
                    "adapters on layers {} (peft layers_to_transform): {}; not yet measured on \
                     a GPU",
                    describe_layers(l.layers.as_deref(), model.num_layers),
                    if l.gradient_checkpointing {
                        "with checkpointing the embedding output requires grad, so every \
                         layer keeps its input"
                    } else {
                        "layers before the first adapted one keep no activations (nothing \
                         there requires grad)"
                    }
                ));
            }
            assumptions.push(format!(
                "training activations for batch {batch} × {seq} tokens: {attn}; {}; frozen \
                 linear layers keep no inputs, adapted ones {} for peft",
                if l.gradient_checkpointing {
                    "gradient checkpointing per decoder layer"
                } else if lp.first_adapted_layer > 0 {
                    "activations kept from the first adapted layer to the loss"
                } else {
                    "all layer activations kept"
                },
                if matches!(mode, Mode::Qlora(_)) {
                    "their fp32 input"
                } else {
                    "an fp32 copy of their input each"
                }
            ));
            Ok(TrainingBytes {
                weights_bytes: frozen_weights_bytes,
                trainable_params: a,
                gradients_bytes,
                master_weights_bytes,
                optimizer_bytes,
                optimizer_step_temp_bytes: temp,
                activation_bytes,
                training_bytes: master_weights_bytes
                    .saturating_add(upcast_bytes)
                    .saturating_add(optimizer_bytes)
                    .saturating_add(activation_bytes.max(gradients_bytes.saturating_add(temp))),
                assumptions,
            })
        }
    }
}
