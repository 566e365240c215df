//! KV cache size: grouped-query heads, explicit head_dim, sliding windows, local/global layers,
//! MLA latent caches, cache dtype, batch.
//!
//! Per layer and sequence a standard attention layer stores a key and a value row of
//! `n_kv_heads · head_dim` elements for every cached token:
//! `2 · n_kv_heads · head_dim · tokens · bytes_per_element`.
//! Sliding-window layers cache at most the window (how exactly depends on the engine, see
//! [`SlidingWindowCache`]); MLA layers cache either the compressed latent or decompressed per-head
//! keys and values (see [`MlaCache`]). The engine is part of the answer: see `core/docs/MEMORY.md`.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::{
    CoreError,
    model::{LayerAttention, ModelSpec},
    runtime::{LLAMA_CPP_KV_PAD, LLAMA_CPP_N_UBATCH, MlaCache, Runtime, SlidingWindowCache},
};

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

/// Elements in one llama.cpp q8_0 / q4_0 block (ggml `QK8_0`, `QK4_0`).
pub const GGML_QUANT_BLOCK_ELEMENTS: u64 = 32;
/// Bytes of one q8_0 block: 32 int8 + one f16 scale (ggml `block_q8_0`).
pub const Q8_0_BLOCK_BYTES: u64 = 34;
/// Bytes of one q4_0 block: 32 4-bit values + one f16 scale (ggml `block_q4_0`).
pub const Q4_0_BLOCK_BYTES: u64 = 18;

impl KvDtype {
    /// Every cache dtype.
    pub fn all() -> [KvDtype; 5] {
        [
            KvDtype::F16,
            KvDtype::Bf16,
            KvDtype::Fp8,
            KvDtype::Q8_0,
            KvDtype::Q4_0,
        ]
    }

    /// Bytes of a row of `elements` values. Block types are quantized per row (ggml quantizes
    /// each token's `n_embd_k_gqa` key row as whole blocks), so a partial block rounds up.
    pub fn row_bytes(&self, elements: u64) -> u64 {
        let blocks = elements.div_ceil(GGML_QUANT_BLOCK_ELEMENTS);
        match self {
            KvDtype::F16 | KvDtype::Bf16 => elements.saturating_mul(2),
            KvDtype::Fp8 => elements,
            KvDtype::Q8_0 => blocks.saturating_mul(Q8_0_BLOCK_BYTES),
            KvDtype::Q4_0 => blocks.saturating_mul(Q4_0_BLOCK_BYTES),
        }
    }

    /// Average bytes per element (for display).
    pub fn bytes_per_element(&self) -> f64 {
        match self {
            KvDtype::F16 | KvDtype::Bf16 => 2.0,
            KvDtype::Fp8 => 1.0,
            KvDtype::Q8_0 => Q8_0_BLOCK_BYTES as f64 / GGML_QUANT_BLOCK_ELEMENTS as f64,
            KvDtype::Q4_0 => Q4_0_BLOCK_BYTES as f64 / GGML_QUANT_BLOCK_ELEMENTS as f64,
        }
    }
}

impl fmt::Display for KvDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KvDtype::F16 => "f16",
            KvDtype::Bf16 => "bf16",
            KvDtype::Fp8 => "fp8",
            KvDtype::Q8_0 => "q8_0",
            KvDtype::Q4_0 => "q4_0",
        })
    }
}

impl FromStr for KvDtype {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f16" | "fp16" | "float16" => Ok(KvDtype::F16),
            "bf16" | "bfloat16" => Ok(KvDtype::Bf16),
            "fp8" | "f8" | "fp8_e4m3" | "fp8_e5m2" => Ok(KvDtype::Fp8),
            "q8_0" | "q8" => Ok(KvDtype::Q8_0),
            "q4_0" | "q4" => Ok(KvDtype::Q4_0),
            _ => Err(CoreError::Unknown {
                kind: "KV cache dtype".into(),
                name: s.to_string(),
                hint: "use one of: f16, bf16, fp8, q8_0, q4_0".into(),
            }),
        }
    }
}

/// KV cache size of one model at one setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvCacheBytes {
    /// The most the cache holds (at the end of a prefill that fills the context): what the
    /// memory estimate uses.
    pub total_bytes: u64,
    /// What the cache holds while decoding at full context (windows honoured). Equal to
    /// `total_bytes` except for transformers' sliding layers, which shrink after the first
    /// decode step.
    pub steady_bytes: u64,
    /// `total_bytes` of each layer, `num_layers` entries.
    pub per_layer_bytes: Vec<u64>,
    /// Tokens (cells) each layer holds at the peak, summed over the batch.
    pub per_layer_tokens: Vec<u64>,
    /// Bytes one cached token takes in one full-attention layer (key + value or latent).
    pub bytes_per_token_per_layer: u64,
    /// Whether MLA layers cache the compressed latent.
    pub mla_latent: bool,
    /// Whether any layer is limited by a sliding window at this setting.
    pub windowed: bool,
}

/// Bytes one token adds to one layer's cache for `model` in `dtype` on `runtime`.
pub fn bytes_per_token_per_layer(model: &ModelSpec, dtype: KvDtype, runtime: Runtime) -> u64 {
    let profile_mla = runtime.mla_cache();
    match (&model.mla, profile_mla) {
        (Some(mla), MlaCache::Latent) => {
            // One latent row; the key's rope part is shared across heads (llama.cpp stores it
            // in the K cache and has no V cache for MLA; vLLM's MLA backends likewise).
            dtype.row_bytes(mla.kv_lora_rank.saturating_add(mla.qk_rope_head_dim))
        }
        (Some(mla), MlaCache::Decompressed) => {
            // transformers: key_states = [k_nope, k_pe expanded] per head, value_states per head.
            let heads = model.num_attention_heads;
            let k = heads.saturating_mul(mla.qk_nope_head_dim.saturating_add(mla.qk_rope_head_dim));
            let v = heads.saturating_mul(mla.v_head_dim);
            dtype.row_bytes(k).saturating_add(dtype.row_bytes(v))
        }
        (None, _) => {
            let row = model.num_kv_heads.saturating_mul(model.head_dim);
            dtype.row_bytes(row).saturating_mul(2)
        }
    }
}

/// Cells a layer holds for `batch` sequences of `tokens`, at the peak and while decoding.
fn layer_cells(attention: LayerAttention, tokens: u64, batch: u64, runtime: Runtime) -> (u64, u64) {
    let full = tokens.saturating_mul(batch);
    let LayerAttention::Sliding { window } = attention else {
        return (full, full);
    };
    match runtime.sliding_window_cache() {
        SlidingWindowCache::Window => {
            let w = tokens.min(window).saturating_mul(batch);
            (w, w)
        }
        SlidingWindowCache::WindowPlusUbatch => {
            // llama_kv_cache_iswa: size_swa = min(n_ctx, GGML_PAD(n_swa·n_seq + n_ubatch, 256)).
            let swa = window
                .saturating_mul(batch)
                .saturating_add(LLAMA_CPP_N_UBATCH)
                .div_ceil(LLAMA_CPP_KV_PAD)
                .saturating_mul(LLAMA_CPP_KV_PAD);
            let cells = full.min(swa);
            (cells, cells)
        }
        SlidingWindowCache::FullUntilFirstDecode => {
            // DynamicSlidingWindowLayer keeps window − 1 tokens once decoding runs.
            let steady = tokens
                .min(window.saturating_sub(1).max(1))
                .saturating_mul(batch);
            (full, steady)
        }
    }
}

/// KV cache for `batch` sequences of `tokens` cached tokens each, in `dtype`, as `runtime`
/// stores it. Saturating arithmetic: never overflows, even for absurd inputs.
pub fn kv_cache_bytes(
    model: &ModelSpec,
    tokens: u64,
    batch: u64,
    dtype: KvDtype,
    runtime: Runtime,
) -> KvCacheBytes {
    let per_token = bytes_per_token_per_layer(model, dtype, runtime);
    let layers = model.num_layers as usize;
    let mut per_layer_bytes = Vec::with_capacity(layers);
    let mut per_layer_tokens = Vec::with_capacity(layers);
    let mut total: u64 = 0;
    let mut steady: u64 = 0;
    let mut windowed = false;
    for i in 0..layers {
        // A config that lists fewer layer types than layers: treat the rest as full attention.
        let attention = model
            .layer_attention
            .get(i)
            .copied()
            .unwrap_or(LayerAttention::Full);
        let (peak_cells, steady_cells) = layer_cells(attention, tokens, batch, runtime);
        if steady_cells < tokens.saturating_mul(batch) {
            windowed = true;
        }
        let bytes = peak_cells.saturating_mul(per_token);
        per_layer_bytes.push(bytes);
        per_layer_tokens.push(peak_cells);
        total = total.saturating_add(bytes);
        steady = steady.saturating_add(steady_cells.saturating_mul(per_token));
    }
    KvCacheBytes {
        total_bytes: total,
        steady_bytes: steady,
        per_layer_bytes,
        per_layer_tokens,
        bytes_per_token_per_layer: per_token,
        mla_latent: model.mla.is_some() && runtime.mla_cache() == MlaCache::Latent,
        windowed,
    }
}
