//! Parameter counts from the tensor list.

use serde::{Deserialize, Serialize};

use crate::model::ModelSpec;

/// Parameter counts of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamCounts {
    /// Every stored weight.
    pub total: u64,
    /// Weights one token touches, including the whole input embedding table (the vendors' count).
    pub active: u64,
    /// Weights one token reads, counting one row of the input embedding: bytes read per token.
    pub active_excluding_input_embedding: u64,
}

/// Count `model`'s parameters from its exact tensor list.
pub fn param_counts(model: &ModelSpec) -> ParamCounts {
    let _ = model;
    todo!("issue #2: params (weights helper)")
}
