//! KV cache size: grouped-query heads, explicit head_dim, sliding windows, local/global layers,
//! MLA latent caches, cache dtype, batch.

use serde::{Deserialize, Serialize};

/// Element type of the KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KvDtype {
    /// 16-bit float.
    F16,
    /// bfloat16.
    Bf16,
    /// 8-bit float.
    Fp8,
    /// llama.cpp q8_0 blocks (34 bytes per 32).
    Q8_0,
    /// llama.cpp q4_0 blocks (18 bytes per 32).
    Q4_0,
}
