//! Parameter counts from the tensor list.

use serde::{Deserialize, Serialize};

use crate::model::{ComponentKind, ModelSpec};

/// Parameter counts of a model.
///
/// The definitions match `tests/data/hf-configs/param_counts.json` (checked to the parameter for
/// every fixture): `active` counts the whole input embedding table, as vendors do for "active
/// parameters" (Mixtral-8x7B: 12,879,925,248); `active_excluding_input_embedding` counts none of
/// it (Mixtral: 12,748,853,248 = active − 32000 × 4096). Bytes read per token add one embedding row
/// on top of the latter (see [`crate::quant::active_weights_bytes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamCounts {
    /// Every stored weight.
    pub total: u64,
    /// Weights one token touches, including the whole input embedding table (the vendors' count).
    /// Equals `total` for dense text models; vision/audio towers and projectors are not active
    /// (they run once per image or clip, not per generated token).
    pub active: u64,
    /// `active` less the input embedding table. When the embedding is tied to the output head the
    /// table stays counted, because the head reads all of it every token.
    pub active_excluding_input_embedding: u64,
}

/// Count `model`'s parameters from its exact tensor list ([`crate::tensors::tensors`], walked
/// without names and grouped). One answer counts once: see [`crate::facts::ModelFacts`].
pub fn param_counts(model: &ModelSpec) -> ParamCounts {
    let mut total = 0u64;
    let mut active = 0u64;
    let mut embedding = 0u64;
    crate::tensors::walk(model, |e| {
        // Buffers are stored but are not parameters.
        if e.role == crate::tensors::TensorRole::Buffer {
            return;
        }
        let n = crate::tensors::shape_elements(e.shape());
        total = total.saturating_add(n);
        match e.component {
            ComponentKind::Embedding => {
                active = active.saturating_add(n);
                if !model.tie_word_embeddings {
                    embedding = embedding.saturating_add(n);
                }
            }
            // Encoders and projectors are not used to generate a token (their per-token reads
            // are 0): not active, as transformers-based counts define it.
            _ => active = active.saturating_add(e.active_elements),
        }
    });
    ParamCounts {
        total,
        active,
        active_excluding_input_embedding: active - embedding,
    }
}
