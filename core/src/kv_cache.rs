//! KV cache size: grouped-query heads, explicit head_dim, sliding windows, local/global layers,
//! MLA latent caches, cache dtype, batch.
//!
//! Per layer and sequence a standard attention layer stores a key and a value row of
//! `n_kv_heads · head_dim` elements for every cached token:
//! `2 · n_kv_heads · head_dim · tokens · bytes_per_element`.
//! Sliding-window layers cache at most the window (how exactly depends on the engine, see
//! [`SlidingWindowCache`]); MLA layers cache either the compressed latent or decompressed per-head
//! keys and values (see [`MlaCache`]). The engine is part of the answer: see `core/docs/MEMORY.md`.
//!
//! The cache is counted layer by layer from each layer's mixer ([`crate::model::Mixer`]): softmax
//! attention, MLA and the sparse-attention indexer grow with every token; Gated DeltaNet, Mamba-2
//! and short-conv layers hold a fixed state per sequence ([`layer_state_bytes`]); layers without a
//! mixer, layers that share another layer's cache, and cross-attention over encoder tokens add
//! nothing per prompt token.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::{
    CoreError,
    llama_cpp::{self, LlamaCppSettings},
    model::{CompressedAttentionSpec, LayerAttention, LayerSpec, Mixer, ModelSpec},
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

/// Bytes one element of a per-sequence recurrent or SSM state takes: fp32. transformers keeps
/// the Gated DeltaNet recurrent state in float32 (its chunked kernels accumulate and return it in
/// fp32); vLLM's Mamba layers and llama.cpp's `ssm_s` cache keep fp32 state by default.
pub const STATE_BYTES_PER_ELEMENT: u64 = 4;
/// Bytes one element of a per-sequence convolution state takes: the activation dtype (bf16/f16).
pub const CONV_STATE_BYTES_PER_ELEMENT: u64 = 2;
/// Bytes one element of MiniMax-01's lightning-attention state takes: the model dtype (bf16),
/// as transformers' `MiniMaxCache` keeps it.
pub const LIGHTNING_STATE_BYTES_PER_ELEMENT: u64 = 2;

/// The cache one decoder layer keeps for one sequence, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LayerCache {
    /// Elements one cached token adds (keys + values, an MLA latent, an indexer key), before the
    /// cache dtype prices them.
    pub elements_per_token: u64,
    /// The most tokens the layer caches (`None`: every token; a sliding window or chunk else).
    pub token_limit: Option<u64>,
    /// Bytes of the fixed per-sequence state (conv + recurrent/SSM state), independent of context.
    pub state_bytes_per_sequence: u64,
}

/// Elements of a per-sequence state: `(conv, recurrent)`; both 0 for a per-token mixer.
pub fn layer_state_elements(model: &ModelSpec, layer: &LayerSpec) -> (u64, u64) {
    mixer_state(model, &layer.mixer).0
}

/// `((conv, recurrent) elements, bytes)` of one mixer's per-sequence state.
fn mixer_state(model: &ModelSpec, mixer: &Mixer) -> ((u64, u64), u64) {
    let priced = |conv: u64, state: u64, state_bytes: u64| {
        (
            (conv, state),
            conv.saturating_mul(CONV_STATE_BYTES_PER_ELEMENT)
                .saturating_add(state.saturating_mul(state_bytes)),
        )
    };
    match mixer {
        // transformers: conv_states [b, conv_dim, kernel], recurrent_states
        // [b, value_heads, key_head_dim, value_head_dim] in fp32.
        Mixer::LinearAttention(la) => priced(
            la.conv_dim().saturating_mul(la.conv_kernel),
            la.value_heads
                .saturating_mul(la.key_head_dim)
                .saturating_mul(la.value_head_dim),
            STATE_BYTES_PER_ELEMENT,
        ),
        // Mamba-2: conv_states [b, conv_dim, kernel], ssm_states [b, heads, head_dim, d_state]
        // in fp32.
        Mixer::Mamba2(m) => priced(
            m.conv_dim().saturating_mul(m.conv_kernel),
            m.inner().saturating_mul(m.state_size),
            STATE_BYTES_PER_ELEMENT,
        ),
        // LFM2: conv state [b, hidden, L_cache].
        Mixer::ShortConv(sc) => priced(model.hidden_size.saturating_mul(sc.kernel), 0, 0),
        // MiniMax-01: one head_dim × head_dim state per head, kept in the model dtype
        // (measured: 1 MiB per layer for 32 heads of 128 in bf16).
        Mixer::Lightning(l) => priced(
            0,
            l.heads
                .saturating_mul(l.head_dim)
                .saturating_mul(l.head_dim),
            LIGHTNING_STATE_BYTES_PER_ELEMENT,
        ),
        // Kimi-Linear: conv states of q, k and v [b, 3·heads·head_dim, kernel] in bf16 and a
        // recurrent state [b, heads, head_dim, head_dim] in fp32 (measured, transformers 5).
        Mixer::KimiDelta(k) => {
            let inner = k.heads.saturating_mul(k.head_dim);
            priced(
                inner.saturating_mul(3).saturating_mul(k.conv_kernel),
                inner.saturating_mul(k.head_dim),
                STATE_BYTES_PER_ELEMENT,
            )
        }
        Mixer::Parallel(parts) => parts.iter().fold(((0, 0), 0), |acc, p| {
            let ((c, r), b) = mixer_state(model, p);
            (
                (acc.0.0.saturating_add(c), acc.0.1.saturating_add(r)),
                acc.1.saturating_add(b),
            )
        }),
        _ => ((0, 0), 0),
    }
}

/// Bytes of one layer's per-sequence state: conv in [`CONV_STATE_BYTES_PER_ELEMENT`], recurrent
/// or SSM state in [`STATE_BYTES_PER_ELEMENT`] (lightning attention's in the model dtype).
pub fn layer_state_bytes(model: &ModelSpec, layer: &LayerSpec) -> u64 {
    mixer_state(model, &layer.mixer).1
}

/// The span of a layer's softmax attention (full for layers without one).
fn mixer_span(mixer: &Mixer) -> LayerAttention {
    match mixer {
        Mixer::Attention(a) => a.span,
        Mixer::CompressedAttention(c) => LayerAttention::Sliding { window: c.window },
        Mixer::Parallel(parts) => parts
            .iter()
            .map(mixer_span)
            .find(|s| *s != LayerAttention::Full)
            .unwrap_or(LayerAttention::Full),
        _ => LayerAttention::Full,
    }
}

/// What one layer caches, with MLA priced as `runtime` keeps it.
pub fn layer_cache(model: &ModelSpec, layer: &LayerSpec, runtime: Runtime) -> LayerCache {
    LayerCache {
        elements_per_token: mixer_token_elements(&layer.mixer, runtime),
        token_limit: mixer_span(&layer.mixer).limit(),
        state_bytes_per_sequence: layer_state_bytes(model, layer),
    }
}

/// Elements one token adds to a mixer's cache.
fn mixer_token_elements(mixer: &Mixer, runtime: Runtime) -> u64 {
    match mixer {
        Mixer::Parallel(parts) => parts
            .iter()
            .map(|p| mixer_token_elements(p, runtime))
            .fold(0u64, u64::saturating_add),
        Mixer::CompressedAttention(c) => {
            c.head_dim
                .saturating_mul(if c.compress_ratio == 0 { 2 } else { 1 })
        }
        Mixer::Attention(a) if a.shares_cache => 0,
        Mixer::Attention(a) => a
            .kv_heads
            .saturating_mul(a.head_dim.saturating_add(a.v_head_dim)),
        Mixer::Mla {
            heads,
            mla,
            indexer,
        } => {
            let main = match runtime.mla_cache() {
                MlaCache::Latent => mla.kv_lora_rank.saturating_add(mla.qk_rope_head_dim),
                MlaCache::Decompressed => heads.saturating_mul(
                    mla.qk_nope_head_dim
                        .saturating_add(mla.qk_rope_head_dim)
                        .saturating_add(mla.v_head_dim),
                ),
            };
            main.saturating_add(indexer.as_ref().map_or(0, |ix| ix.head_dim))
        }
        _ => 0,
    }
}

/// KV cache size of one model at one setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvCacheBytes {
    /// The most the cache holds (at the end of a prefill that fills the context): what the
    /// memory estimate uses. Includes the per-sequence states of recurrent layers.
    pub total_bytes: u64,
    /// What the cache holds while decoding at full context (windows honoured). Equal to
    /// `total_bytes` except for transformers' sliding layers, which shrink after the first
    /// decode step.
    pub steady_bytes: u64,
    /// `total_bytes` of each layer, `num_layers` entries.
    pub per_layer_bytes: Vec<u64>,
    /// Tokens (cells) each layer holds at the peak, summed over the batch (0 for layers that
    /// cache no tokens).
    pub per_layer_tokens: Vec<u64>,
    /// Bytes one cached token takes in one full-attention layer (key + value or latent); for a
    /// model whose layers differ, the largest per-token cost of any layer.
    pub bytes_per_token_per_layer: u64,
    /// Bytes one token adds to the whole model's cache (every per-token layer, before windows).
    pub bytes_per_token: u64,
    /// Bytes of the per-sequence states (Gated DeltaNet, Mamba-2, short conv; DeepSeek-V4's
    /// compressor overlap state and rolling buffers at their fullest) of one sequence.
    pub state_bytes_per_sequence: u64,
    /// Whether MLA layers cache the compressed latent.
    pub mla_latent: bool,
    /// Whether any layer is limited by a sliding window at this setting.
    pub windowed: bool,
}

/// Bytes one token adds to one layer's cache for `model` in `dtype` on `runtime`: the largest
/// per-token cost of any of its layers (every layer of a classic model costs the same).
pub fn bytes_per_token_per_layer(model: &ModelSpec, dtype: KvDtype, runtime: Runtime) -> u64 {
    model
        .layers()
        .iter()
        .map(|l| token_row_bytes(l, dtype, runtime))
        .max()
        .unwrap_or(0)
}

/// Bytes one token adds to `layer`'s cache: rows are quantized separately (K and V; MLA's latent
/// is one row; the indexer key is another row).
fn token_row_bytes(layer: &LayerSpec, dtype: KvDtype, runtime: Runtime) -> u64 {
    mixer_row_bytes(&layer.mixer, dtype, runtime)
}

/// Bytes one token adds to a mixer's cache (the sum over parallel mixers).
fn mixer_row_bytes(mixer: &Mixer, dtype: KvDtype, runtime: Runtime) -> u64 {
    match mixer {
        // The raw (windowed) rows; the compressed rows are added per `compress_ratio` tokens.
        Mixer::CompressedAttention(c) => compressed_raw_row_bytes(c, dtype),
        Mixer::Parallel(parts) => parts
            .iter()
            .map(|p| mixer_row_bytes(p, dtype, runtime))
            .fold(0u64, u64::saturating_add),
        Mixer::Attention(a) if !a.shares_cache => {
            let k = dtype.row_bytes(a.kv_heads.saturating_mul(a.head_dim));
            let v = dtype.row_bytes(a.kv_heads.saturating_mul(a.v_head_dim));
            k.saturating_add(v)
        }
        Mixer::Mla {
            heads,
            mla,
            indexer,
        } => {
            let main =
                match runtime.mla_cache() {
                    // One latent row; the key's rope part is shared across heads (llama.cpp stores
                    // it in the K cache and has no V cache for MLA; vLLM's MLA backends likewise).
                    MlaCache::Latent => {
                        dtype.row_bytes(mla.kv_lora_rank.saturating_add(mla.qk_rope_head_dim))
                    }
                    // transformers: key_states = [k_nope, k_pe expanded] per head, values per head.
                    MlaCache::Decompressed => dtype
                        .row_bytes(heads.saturating_mul(
                            mla.qk_nope_head_dim.saturating_add(mla.qk_rope_head_dim),
                        ))
                        .saturating_add(dtype.row_bytes(heads.saturating_mul(mla.v_head_dim))),
                };
            main.saturating_add(
                indexer
                    .as_ref()
                    .map_or(0, |ix| dtype.row_bytes(ix.head_dim)),
            )
        }
        _ => 0,
    }
}

/// Cells a layer holds for `batch` sequences of `tokens`, at the peak and while decoding.
/// `llama`: llama.cpp's own layout (padded context, streams, its SWA cells) with these settings,
/// and whether its implementation of the architecture applies sliding windows.
fn layer_cells(
    attention: LayerAttention,
    tokens: u64,
    batch: u64,
    runtime: Runtime,
    llama: Option<(&LlamaCppSettings, bool)>,
) -> (u64, u64) {
    let full = tokens.saturating_mul(batch);
    if let (Runtime::LlamaCpp, Some((settings, applies_swa))) = (runtime, llama) {
        let (per_stream, streams) = llama_cpp::kv_streams(full, batch, settings.kv_unified);
        let cells = match attention.limit() {
            Some(window) if applies_swa => {
                llama_cpp::swa_cells(per_stream, window, batch, settings)
            }
            _ => per_stream,
        };
        let cells = cells.saturating_mul(streams);
        return (cells, cells);
    }
    let Some(window) = attention.limit() else {
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

/// KV cache (and recurrent state) for `batch` sequences of `tokens` cached tokens each, in
/// `dtype`, as `runtime` stores it. Saturating arithmetic: never overflows, even for absurd
/// inputs.
pub fn kv_cache_bytes(
    model: &ModelSpec,
    tokens: u64,
    batch: u64,
    dtype: KvDtype,
    runtime: Runtime,
) -> KvCacheBytes {
    kv_cache_bytes_inner(model, tokens, batch, dtype, runtime, None)
}

/// [`kv_cache_bytes`] as the engine allocates it for a whole context: on llama.cpp, with its
/// `settings`, the context is rounded up to whole 256-cell blocks per stream, sliding-window
/// layers get llama.cpp's SWA cells and architectures whose llama.cpp implementation has no
/// sliding window keep every layer full ([`crate::llama_cpp`]). `batch` sequences are its
/// parallel sequences. Other runtimes: the same as [`kv_cache_bytes`].
pub fn kv_cache_bytes_with(
    model: &ModelSpec,
    tokens: u64,
    batch: u64,
    dtype: KvDtype,
    runtime: Runtime,
    settings: &LlamaCppSettings,
) -> KvCacheBytes {
    let applies_swa = llama_cpp::applies_sliding_window(&model.architecture);
    kv_cache_bytes_inner(
        model,
        tokens,
        batch,
        dtype,
        runtime,
        Some((settings, applies_swa)),
    )
}

fn kv_cache_bytes_inner(
    model: &ModelSpec,
    tokens: u64,
    batch: u64,
    dtype: KvDtype,
    runtime: Runtime,
    llama: Option<(&LlamaCppSettings, bool)>,
) -> KvCacheBytes {
    let layers = model.layers();
    let mut per_layer_bytes = Vec::with_capacity(layers.len());
    let mut per_layer_tokens = Vec::with_capacity(layers.len());
    let mut total: u64 = 0;
    let mut steady: u64 = 0;
    let mut windowed = false;
    let mut per_token_all: u64 = 0;
    let mut max_per_token: u64 = 0;
    let mut states: u64 = 0;
    let mut mla = false;
    for layer in layers.iter() {
        if let Mixer::CompressedAttention(c) = &layer.mixer {
            // Raw rows for the last `window` tokens, plus the compressor's rows, rolling
            // buffers and overlap state ([`compressor_bytes`]).
            let raw = compressed_raw_row_bytes(c, dtype);
            let span = LayerAttention::Sliding { window: c.window };
            let (peak, steady_cells) = layer_cells(span, tokens, batch, runtime, llama);
            let compressor = compressor_bytes(c, tokens, dtype);
            let compressed_cells = compressor.compressed_rows.saturating_mul(batch);
            let extra = compressor.total().saturating_mul(batch);
            let bytes = peak.saturating_mul(raw).saturating_add(extra);
            windowed |= steady_cells < tokens.saturating_mul(batch);
            let per_token = raw
                .saturating_add(compressed_row_bytes(c, dtype).div_ceil(c.compress_ratio.max(1)));
            per_token_all = per_token_all.saturating_add(per_token);
            max_per_token = max_per_token.max(per_token);
            states = states.saturating_add(compressor_state_bytes(c, dtype));
            per_layer_bytes.push(bytes);
            per_layer_tokens.push(peak.saturating_add(compressed_cells));
            total = total.saturating_add(bytes);
            steady = steady.saturating_add(steady_cells.saturating_mul(raw).saturating_add(extra));
            continue;
        }
        let per_token = token_row_bytes(layer, dtype, runtime);
        let state = layer_state_bytes(model, layer);
        mla |= has_mla(&layer.mixer);
        per_token_all = per_token_all.saturating_add(per_token);
        max_per_token = max_per_token.max(per_token);
        states = states.saturating_add(state);
        let span = mixer_span(&layer.mixer);
        let (peak_cells, steady_cells) = if per_token > 0 {
            layer_cells(span, tokens, batch, runtime, llama)
        } else {
            (0, 0)
        };
        if per_token > 0 && steady_cells < tokens.saturating_mul(batch) {
            windowed = true;
        }
        let state_bytes = state.saturating_mul(batch);
        let bytes = peak_cells
            .saturating_mul(per_token)
            .saturating_add(state_bytes);
        per_layer_bytes.push(bytes);
        per_layer_tokens.push(peak_cells);
        total = total.saturating_add(bytes);
        steady = steady.saturating_add(
            steady_cells
                .saturating_mul(per_token)
                .saturating_add(state_bytes),
        );
    }
    KvCacheBytes {
        total_bytes: total,
        steady_bytes: steady,
        per_layer_bytes,
        per_layer_tokens,
        bytes_per_token_per_layer: max_per_token,
        bytes_per_token: per_token_all,
        state_bytes_per_sequence: states,
        mla_latent: mla && runtime.mla_cache() == MlaCache::Latent,
        windowed,
    }
}

/// Bytes of one raw (windowed) token of DeepSeek-V4's attention: the shared key row, and a value
/// row too on layers without a compressor (measured, transformers 5: keys and values of 512 on
/// those, keys only on the others).
fn compressed_raw_row_bytes(c: &CompressedAttentionSpec, dtype: KvDtype) -> u64 {
    let rows = if c.compress_ratio == 0 { 2 } else { 1 };
    dtype.row_bytes(c.head_dim).saturating_mul(rows)
}

/// Bytes of one compressed row of DeepSeek-V4's attention (one per `compress_ratio` tokens): the
/// compressed key/value row and the indexer's compressed key.
fn compressed_row_bytes(c: &CompressedAttentionSpec, dtype: KvDtype) -> u64 {
    if c.compress_ratio == 0 {
        return 0;
    }
    dtype.row_bytes(c.head_dim).saturating_add(
        c.indexer
            .as_ref()
            .map_or(0, |ix| dtype.row_bytes(ix.head_dim)),
    )
}

/// Bytes of element type fp32: transformers' DeepSeek-V4 compressor keeps its overlap gate in
/// fp32 (the gate plus the fp32 `position_bias`).
pub const COMPRESSOR_GATE_BYTES_PER_ELEMENT: u64 = 4;

/// What DeepSeek-V4's compressor holds for one sequence of `tokens` on one layer, beside the
/// raw sliding-window keys (transformers 5 `DeepseekV4HCACache` / `DeepseekV4CSACache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CompressorBytes {
    /// Compressed rows emitted so far: `⌊tokens / compress_ratio⌋`.
    pub compressed_rows: u64,
    /// Bytes of the compressed rows (`compressed_kv`): a `head_dim` row and, on indexer layers,
    /// an `index_head_dim` row each.
    pub compressed: u64,
    /// Tokens waiting in the rolling buffer for their window to close:
    /// `tokens mod compress_ratio`.
    pub buffered_rows: u64,
    /// Bytes of the rolling buffers (`buffer_kv` and `buffer_gate`): each buffered token keeps
    /// its projected kv and gate, `overlap · head_dim` wide (and `overlap · index_head_dim` for
    /// the indexer), in the cache dtype.
    pub buffers: u64,
    /// Bytes of the overlap state (`overlap_kv` in the cache dtype, `overlap_gate` in fp32) of
    /// the overlapping (ratio-4) compressor and its indexer: `compress_ratio` rows of `head_dim`
    /// (and `index_head_dim`) each, held once the first window has closed.
    pub overlap: u64,
}

impl CompressorBytes {
    /// Everything the compressor holds.
    pub fn total(&self) -> u64 {
        self.compressed
            .saturating_add(self.buffers)
            .saturating_add(self.overlap)
    }
}

/// What DeepSeek-V4's compressor holds for one sequence of `tokens` on a layer (all zero for a
/// layer without one). With ratio `r`, overlap `o` (2 on the ratio-4 layers, else 1), head
/// width `d`, indexer width `i` (0 without an indexer) and `B(n)` the bytes of an `n`-element
/// row in `dtype`:
///
/// - compressed: `⌊T/r⌋ · (B(d) + B(i))`
/// - buffers: `(T mod r) · 2 · (B(o·d) + B(o·i))` (kv and gate)
/// - overlap (o = 2, `T ≥ r`): `r · (B(d) + B(i) + 4·(d + i))`
pub fn compressor_bytes(
    c: &CompressedAttentionSpec,
    tokens: u64,
    dtype: KvDtype,
) -> CompressorBytes {
    let r = c.compress_ratio;
    if r == 0 {
        return CompressorBytes::default();
    }
    let index_dim = c.indexer.as_ref().map_or(0, |ix| ix.head_dim);
    let o = c.overlap();
    let compressed_rows = tokens / r;
    let buffered_rows = tokens % r;
    let buffer_row = dtype
        .row_bytes(o.saturating_mul(c.head_dim))
        .saturating_add(if index_dim > 0 {
            dtype.row_bytes(o.saturating_mul(index_dim))
        } else {
            0
        })
        .saturating_mul(2);
    let overlap = if o > 1 && compressed_rows > 0 {
        compressed_row_bytes(c, dtype)
            .saturating_add(
                c.head_dim
                    .saturating_add(index_dim)
                    .saturating_mul(COMPRESSOR_GATE_BYTES_PER_ELEMENT),
            )
            .saturating_mul(r)
    } else {
        0
    };
    CompressorBytes {
        compressed_rows,
        compressed: compressed_rows.saturating_mul(compressed_row_bytes(c, dtype)),
        buffered_rows,
        buffers: buffered_rows.saturating_mul(buffer_row),
        overlap,
    }
}

/// The most DeepSeek-V4's compressor holds per sequence beside its compressed rows: the
/// overlap state and the rolling buffers at their fullest (`compress_ratio − 1` tokens).
pub fn compressor_state_bytes(c: &CompressedAttentionSpec, dtype: KvDtype) -> u64 {
    let r = c.compress_ratio;
    if r == 0 {
        return 0;
    }
    // `r · (r + 1) − 1` tokens: r − 1 buffered, and at least one window closed.
    let at = r.saturating_mul(r.saturating_add(1)).saturating_sub(1);
    let b = compressor_bytes(c, at, dtype);
    b.buffers.saturating_add(b.overlap)
}

/// Whether a mixer is (or contains) MLA.
fn has_mla(mixer: &Mixer) -> bool {
    match mixer {
        Mixer::Mla { .. } => true,
        Mixer::Parallel(parts) => parts.iter().any(has_mla),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::IndexerSpec;

    /// A DeepSeek-V4-Flash layer: head_dim 512, window 128, ratio `r` (an indexer of width 128
    /// on the ratio-4 layers).
    fn flash_layer(r: u64) -> CompressedAttentionSpec {
        CompressedAttentionSpec {
            heads: 64,
            head_dim: 512,
            q_lora_rank: 1024,
            o_groups: 8,
            o_lora_rank: 1024,
            window: 128,
            compress_ratio: r,
            indexer: (r == 4).then_some(IndexerSpec {
                heads: 64,
                head_dim: 128,
                topk: 512,
            }),
        }
    }

    #[test]
    fn csa_compressor_at_33_tokens_by_hand() {
        // 33 tokens, ratio 4: 8 compressed rows, 1 buffered token.
        // compressed: 8 · (512 + 128) · 2 B = 10240
        // buffers: 1 · 2 (kv, gate) · (1024 + 256) · 2 B = 5120
        // overlap: 4 · ((512 + 128) · 2 B + (512 + 128) · 4 B) = 4 · 3840 = 15360
        let b = compressor_bytes(&flash_layer(4), 33, KvDtype::Bf16);
        assert_eq!(
            b,
            CompressorBytes {
                compressed_rows: 8,
                compressed: 10240,
                buffered_rows: 1,
                buffers: 5120,
                overlap: 15360,
            }
        );
        // Plus the raw keys (K = V, one row of 512 · 2 B per token): transformers measured
        // 64512 B on such a layer at 33 tokens.
        assert_eq!(33 * 1024 + b.total(), 64512);
        // Before the first window closes there is no overlap state.
        let b3 = compressor_bytes(&flash_layer(4), 3, KvDtype::Bf16);
        assert_eq!((b3.compressed, b3.buffers, b3.overlap), (0, 3 * 5120, 0));
    }

    #[test]
    fn hca_compressor_at_193_tokens_by_hand() {
        // 193 tokens, ratio 128: 1 compressed row of 512 · 2 B, 65 buffered tokens of kv and
        // gate 512 wide each: 65 · 2 · 1024 = 133120; no overlap, no indexer.
        let b = compressor_bytes(&flash_layer(128), 193, KvDtype::Bf16);
        assert_eq!((b.compressed_rows, b.compressed), (1, 1024));
        assert_eq!((b.buffered_rows, b.buffers, b.overlap), (65, 133120, 0));
        // Plus the window's 127 raw keys: transformers measured 264192 B.
        assert_eq!(127 * 1024 + b.total(), 264192);
        // The fullest buffers: 127 tokens.
        assert_eq!(
            compressor_state_bytes(&flash_layer(128), KvDtype::Bf16),
            127 * 2048
        );
        assert_eq!(
            compressor_bytes(&flash_layer(0), 193, KvDtype::Bf16).total(),
            0
        );
    }
}
