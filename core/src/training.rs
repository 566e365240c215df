//! Training memory: full fine-tune (fp32, bf16 mixed precision + AdamW, 8-bit Adam, SGD), LoRA,
//! QLoRA, gradient checkpointing.

use serde::{Deserialize, Serialize};

/// What the memory is for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
#[non_exhaustive]
pub enum Mode {
    /// Generation only.
    Inference,
    /// LoRA on a frozen base in the chosen weight format.
    Lora(LoraSettings),
    /// QLoRA: LoRA on a 4-bit (nf4) base.
    Qlora(LoraSettings),
    /// Every weight trained.
    Full(FullSettings),
}

/// LoRA settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraSettings {
    /// Rank r of the adapters.
    pub rank: u64,
    /// Module roles adapted, e.g. q, k, v, o, gate, up, down.
    pub target_modules: Vec<String>,
    /// Recompute activations in the backward pass instead of keeping them.
    pub gradient_checkpointing: bool,
}

/// Optimizer of a full fine-tune.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Optimizer {
    /// AdamW, two fp32 moments per parameter.
    AdamW,
    /// bitsandbytes 8-bit Adam.
    Adam8bit,
    /// Plain SGD (no state) .
    Sgd,
}

/// Precision of a full fine-tune.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainingPrecision {
    /// Everything in fp32.
    Fp32,
    /// bf16 mixed precision: bf16 weights and gradients with an fp32 master copy.
    Bf16Mixed,
}

/// Full fine-tune settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FullSettings {
    /// Precision.
    pub precision: TrainingPrecision,
    /// Optimizer.
    pub optimizer: Optimizer,
    /// Recompute activations in the backward pass.
    pub gradient_checkpointing: bool,
}
