//! Weight formats (precisions and quantizations) and the bytes a model takes in each.

use serde::{Deserialize, Serialize};

/// A weight format: how a checkpoint or runtime stores the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum WeightFormat {
    /// 32-bit float.
    F32,
    /// 16-bit float.
    F16,
    /// bfloat16.
    Bf16,
}
