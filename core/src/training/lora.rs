//! LoRA targets ([`lora_target_roles`]) and the adapters' trainable parameters per settings
//! ([`lora_params`]), with what peft keeps per adapted matrix.

use serde::{Deserialize, Serialize};

use super::mode::{LORA_TARGET_NAMES, LoraSettings};
use crate::{CoreError, activations::FP32_BYTES, model::ModelSpec, tensors::TensorRole};

/// Tensor roles a LoRA target name adapts on `model`.
pub fn lora_target_roles(model: &ModelSpec, target: &str) -> Result<Vec<TensorRole>, CoreError> {
    use TensorRole::*;
    let t = target.trim().to_ascii_lowercase();
    let t = t.strip_suffix("_proj").unwrap_or(&t).to_string();
    let mla = model.mla.is_some();
    let roles = match t.as_str() {
        "q" => vec![AttnQ, AttnQA, AttnQB, AttnQkv],
        "k" if mla => vec![AttnKvA, AttnKvB],
        "v" if mla => vec![AttnKvA, AttnKvB],
        "k" => vec![AttnK, AttnQkv],
        "v" => vec![AttnV, AttnQkv],
        "qkv" => vec![AttnQkv],
        "o" | "out" | "dense" => vec![AttnOutput],
        "q_a" => vec![AttnQA],
        "q_b" => vec![AttnQB],
        "kv_a" | "kv_a_proj_with_mqa" => vec![AttnKvA],
        "kv_b" => vec![AttnKvB],
        "gate" | "w1" => vec![FfnGate, FfnGateShared, FfnGateUp],
        "up" | "w3" => vec![FfnUp, FfnUpShared, FfnGateUp],
        "down" | "w2" => vec![FfnDown, FfnDownShared],
        "gate_up" => vec![FfnGateUp],
        "experts" => vec![FfnGateExperts, FfnUpExperts, FfnDownExperts],
        "all-linear" | "all" | "all_linear" => vec![
            AttnQ,
            AttnK,
            AttnV,
            AttnQkv,
            AttnOutput,
            AttnQA,
            AttnQB,
            AttnKvA,
            AttnKvB,
            FfnGate,
            FfnUp,
            FfnGateUp,
            FfnDown,
            FfnGateExperts,
            FfnUpExperts,
            FfnDownExperts,
            FfnGateShared,
            FfnUpShared,
            FfnDownShared,
        ],
        _ => {
            return Err(CoreError::Unknown {
                kind: "LoRA target module".into(),
                name: target.to_string(),
                hint: format!("use any of: {LORA_TARGET_NAMES}"),
            });
        }
    };
    Ok(roles)
}

/// Adapter size of LoRA with `settings` on `model`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoraParams {
    /// Trainable parameters: `r · (in + out)` per adapted matrix (each expert of a stacked
    /// expert tensor is one matrix).
    pub trainable_params: u64,
    /// Adapted matrices.
    pub adapted_matrices: u64,
    /// Adapted matrices in one layer (the most in any layer).
    pub adapted_per_layer: u64,
    /// Activation bytes the adapters store per token in the layer where they store the most:
    /// peft casts each adapted matrix's input to the adapters' fp32 (`in_features · 4` bytes,
    /// saved for `lora_A`'s backward) and saves `lora_A`'s fp32 output (`r · 4`). Routed experts
    /// count `experts_per_token` matrices per token.
    pub activation_bytes_per_token_layer: u64,
    /// The same when activations already flow in the adapters' fp32 (QLoRA after peft's
    /// `prepare_model_for_kbit_training`): peft's `_cast_input_dtype` returns its input
    /// unchanged when the dtypes match (`peft/tuners/tuners_utils.py`), so `lora_A` saves the
    /// module's input itself. q/k/v (and the MLA down-projections) share one saved tensor, the
    /// input norm's output (`in · 4` once); gate/up share the post-attention norm's output;
    /// `o_proj`'s input is the attention output the attention itself keeps (not counted again);
    /// the others keep their input as before. Plus `lora_A`'s fp32 output (`r · 4`) each.
    #[serde(default)]
    pub shared_input_activation_bytes_per_token_layer: u64,
    /// Bytes of expert weights peft's `ParamWrapper` materializes (W + ΔW, bf16) in each MoE
    /// layer and keeps for the backward pass, when gate/up/down targets land on stacked experts.
    #[serde(default)]
    pub materialized_expert_bytes_per_layer: u64,
    /// The first (lowest-numbered) adapted decoder layer: autograd keeps activations from here
    /// to the loss; 0 when every layer is adapted.
    #[serde(default)]
    pub first_adapted_layer: u64,
    /// How many decoder layers carry adapters.
    #[serde(default)]
    pub adapted_layers: u64,
}

/// Exact LoRA trainable parameters from the tensor shapes. On MoE models, gate/up/down targets
/// follow peft's conversion to adapters on the stacked experts (see the code). An answer keeps
/// them per settings in [`crate::facts::ModelFacts`].
pub fn lora_params(model: &ModelSpec, settings: &LoraSettings) -> Result<LoraParams, CoreError> {
    lora_params_of(model, settings)
}

/// Elements of the largest single weight matrix outside the embedding and the output head
/// (one expert's matrix for stacked experts).
pub fn largest_matrix_elements(model: &ModelSpec) -> u64 {
    let mut largest = 0u64;
    crate::tensors::walk(model, |t| {
        let shape = t.shape();
        if shape.len() > 1 && !matches!(t.role, TensorRole::TokenEmbedding | TensorRole::Output) {
            let one = crate::tensors::shape_elements(shape)
                / crate::tensors::shape_matrices(shape).max(1);
            largest = largest.max(one);
        }
    });
    largest
}

fn lora_params_of(model: &ModelSpec, settings: &LoraSettings) -> Result<LoraParams, CoreError> {
    use TensorRole::*;
    // peft's `layers_to_transform`: only modules of the listed decoder layers get adapters.
    let adapted_layers = settings.adapted_layers(model.num_layers)?;
    let mut roles = Vec::new();
    for t in &settings.target_modules {
        roles.extend(lora_target_roles(model, t)?);
    }
    // peft ≥ 0.21 on a transformers-5 MoE model (fused expert tensors) rewrites the MLP targets
    // gate/up/down (Mixtral: w1/w3/w2) into `ParamWrapper` adapters on the stacked experts —
    // gate_up at rank 2r, down at rank r, spanning all experts — and drops them as module
    // targets, so dense and shared MLPs get no adapter (`_convert_peft_config_moe`; measured:
    // DeepSeek-V2-Lite, 41,091,072 trainable parameters exactly, core/docs/ACCURACY.md).
    let names: Vec<String> = settings
        .target_modules
        .iter()
        .map(|t| {
            let t = t.trim().to_ascii_lowercase();
            t.strip_suffix("_proj").unwrap_or(&t).to_string()
        })
        .collect();
    let has = |a: &str, b: &str| names.iter().any(|n| n == a || n == b);
    let (moe_gate_up, moe_down) = match &model.moe {
        Some(_) => (has("gate", "w1") || has("up", "w3"), has("down", "w2")),
        None => (false, false),
    };
    if moe_gate_up || moe_down {
        roles.retain(|r| {
            !matches!(
                r,
                FfnGate | FfnUp | FfnDown | FfnGateUp | FfnGateShared | FfnUpShared | FfnDownShared
            )
        });
    }
    let mut trainable: u64 = 0;
    let mut matrices: u64 = 0;
    let mut per_layer: std::collections::BTreeMap<u64, u64> = Default::default();
    let mut act_per_layer: std::collections::BTreeMap<u64, u64> = Default::default();
    // Per layer: the bytes with fp32 activations (see `shared_input_activation_bytes_per_token_layer`)
    // and whether the shared norm outputs (attention input, MLP input) are counted yet.
    let mut shared_per_layer: std::collections::BTreeMap<u64, (u64, bool, bool)> =
        Default::default();
    let k = model.moe.as_ref().map_or(1, |m| m.experts_per_token);
    // Name-free walk: this runs on every calculator change in a training mode, and building
    // ~1000 tensor names per estimate cost milliseconds (DeepSeek-V3).
    crate::tensors::walk(model, |tensor| {
        let shape = tensor.shape();
        if shape.len() <= 1 || !roles.contains(&tensor.role) {
            return;
        }
        if tensor.layer.is_some_and(|l| !settings.adapts_layer(l)) {
            return;
        }
        let n = crate::tensors::shape_matrices(shape);
        let cols = crate::tensors::shape_row_len(shape);
        let rows = shape[shape.len() - 2];
        trainable = trainable.saturating_add(
            n.saturating_mul(settings.rank)
                .saturating_mul(rows.saturating_add(cols)),
        );
        matrices = matrices.saturating_add(n);
        if let Some(layer) = tensor.layer {
            *per_layer.entry(layer).or_default() += n;
            let per_token_matrices = if n > 1 { k.min(n) } else { 1 };
            let bytes = per_token_matrices
                .saturating_mul(cols.saturating_add(settings.rank))
                .saturating_mul(FP32_BYTES);
            let entry = act_per_layer.entry(layer).or_default();
            *entry = entry.saturating_add(bytes);
            let adapter_out = per_token_matrices
                .saturating_mul(settings.rank)
                .saturating_mul(FP32_BYTES);
            let input = per_token_matrices
                .saturating_mul(cols)
                .saturating_mul(FP32_BYTES);
            let (shared, attn_in_counted, mlp_in_counted) =
                shared_per_layer.entry(layer).or_default();
            let input = match tensor.role {
                AttnQ | AttnK | AttnV | AttnQkv | AttnQA | AttnKvA => {
                    if std::mem::replace(attn_in_counted, true) {
                        0
                    } else {
                        input
                    }
                }
                FfnGate | FfnUp | FfnGateUp | FfnGateShared | FfnUpShared => {
                    if std::mem::replace(mlp_in_counted, true) {
                        0
                    } else {
                        input
                    }
                }
                AttnOutput => 0,
                _ => input,
            };
            *shared = shared.saturating_add(input).saturating_add(adapter_out);
        }
    });
    let mut materialized = 0u64;
    if let Some(moe) = &model.moe {
        let moe_layers = adapted_layers
            .iter()
            .filter(|l| !moe.dense_layers.contains(l))
            .count() as u64;
        let (h, i, e) = (
            model.hidden_size,
            moe.expert_intermediate_size,
            moe.num_experts,
        );
        let mut per_layer_params = 0u64;
        if moe_gate_up {
            per_layer_params = per_layer_params.saturating_add(
                e.saturating_mul(settings.rank.saturating_mul(2))
                    .saturating_mul(h.saturating_add(i.saturating_mul(2))),
            );
            // W + ΔW of gate_up, materialized in bf16 on every forward and kept for backward.
            materialized = materialized
                .saturating_add(e.saturating_mul(i.saturating_mul(2)).saturating_mul(h));
        }
        if moe_down {
            per_layer_params = per_layer_params.saturating_add(
                e.saturating_mul(settings.rank)
                    .saturating_mul(i.saturating_add(h)),
            );
            materialized = materialized.saturating_add(e.saturating_mul(i).saturating_mul(h));
        }
        if per_layer_params > 0 {
            trainable = trainable.saturating_add(per_layer_params.saturating_mul(moe_layers));
            matrices = matrices.saturating_add(
                moe_layers.saturating_mul(u64::from(moe_gate_up) + u64::from(moe_down)),
            );
        }
    }
    // peft refuses a config whose targets match no module ("Target modules ... not found in the
    // base model"); an estimate of training nothing would be silently wrong.
    if matrices == 0 {
        return Err(CoreError::Unknown {
            kind: "LoRA target module".into(),
            name: settings.target_modules.join(","),
            hint: format!(
                "none of these names a weight matrix of {}; use any of: {LORA_TARGET_NAMES}",
                model.name
            ),
        });
    }
    Ok(LoraParams {
        first_adapted_layer: adapted_layers.first().copied().unwrap_or(0),
        adapted_layers: adapted_layers.len() as u64,
        trainable_params: trainable,
        adapted_matrices: matrices,
        adapted_per_layer: per_layer.values().copied().max().unwrap_or(0),
        activation_bytes_per_token_layer: act_per_layer.values().copied().max().unwrap_or(0),
        shared_input_activation_bytes_per_token_layer: shared_per_layer
            .values()
            .map(|(bytes, _, _)| *bytes)
            .max()
            .unwrap_or(0),
        materialized_expert_bytes_per_layer: materialized.saturating_mul(2),
    })
}
