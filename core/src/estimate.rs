//! The answer: memory components, verdict and speed for one model, format, setting and device.

use serde::{Deserialize, Serialize};

use crate::{
    CoreError, devices::DeviceSpec, kv_cache::KvDtype, model::ModelSpec, quant::WeightFormat,
    runtime::Runtime, training::Mode,
};

/// Everything an estimate depends on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EstimateRequest {
    /// The model.
    pub model: ModelSpec,
    /// Weight format.
    pub format: WeightFormat,
    /// Context length in tokens; `None` uses [`ModelSpec::default_context`].
    pub context: Option<u64>,
    /// Sequences processed together.
    pub batch: u64,
    /// Inference or a kind of training.
    pub mode: Mode,
    /// The engine.
    pub runtime: Runtime,
    /// KV cache element type.
    pub kv_dtype: KvDtype,
    /// The device (one of `device_count` identical ones).
    pub device: DeviceSpec,
    /// Identical devices the model is split over (tensor or pipeline parallel), at least 1.
    pub device_count: u32,
}

/// Will it fit?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Total ≤ 90% of usable memory.
    Fits,
    /// Total between 90% and 100% of usable memory.
    FitsTightly,
    /// Does not fit in usable memory but fits in device + host memory (layers offloaded).
    NeedsOffload,
    /// Does not fit at all.
    DoesNotFit,
}

/// The answer for one request. Byte counts are integers; speeds carry their assumptions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Model name.
    pub model: String,
    /// Every stored parameter.
    pub params_total: u64,
    /// Parameters a token touches (MoE: routed experts only), including the input embedding.
    pub params_active: u64,
    /// Format name, e.g. `Q4_K_M`.
    pub quant: String,
    /// Context in tokens actually used.
    pub context: u64,
    /// Batch.
    pub batch: u64,
    /// Weights.
    pub weights_bytes: u64,
    /// KV cache.
    pub kv_cache_bytes: u64,
    /// Activations (prefill peak, logits).
    pub activation_bytes: u64,
    /// Runtime overhead (CUDA context, allocator slack, ...).
    pub overhead_bytes: u64,
    /// Gradients, optimizer state, adapters, training activations (0 for inference).
    pub training_bytes: u64,
    /// Sum of the above.
    pub total_bytes: u64,
    /// Memory needed on each device when split over `device_count`.
    pub per_device_bytes: u64,
    /// Device name.
    pub device: String,
    /// Usable memory of one device.
    pub usable_bytes: u64,
    /// Devices needed at minimum for this to fit.
    pub devices_needed: Option<u32>,
    /// `verdict` is `Fits` or `FitsTightly`.
    pub fits: bool,
    /// The verdict.
    pub verdict: Verdict,
    /// Estimated decode speed, tokens per second (per sequence).
    pub decode_tokens_per_s: f64,
    /// Estimated prefill speed, tokens per second.
    pub prefill_tokens_per_s: f64,
    /// Every assumption behind the numbers, in words.
    pub assumptions: Vec<String>,
}

/// Compute the estimate for `req`.
pub fn estimate(req: &EstimateRequest) -> Result<Estimate, CoreError> {
    let _ = req;
    todo!("issue #2: estimate (memory helper)")
}
