//! llama.cpp as it runs: its settings (flash attention, micro-batch, parallel sequences with or
//! without a unified KV cache) and what a context allocates for them.
//!
//! Read from llama.cpp's source (the copy vendored by llama-cpp-python 0.3.36) and held to what
//! that build logs (`tests/data/measured/llama-cpp-*.json`, `tests/llama_cpp.rs`):
//!
//! * **Context.** `llama_context` rounds `n_ctx` up to a multiple of 256. With `n_seq` parallel
//!   sequences and a unified cache, one stream holds all `n_ctx` cells; without it each of the
//!   `n_seq` streams holds `pad256(n_ctx / n_seq)` cells.
//! * **Sliding-window layers** (architectures whose llama.cpp implementation applies the window:
//!   Gemma 2/3, gpt-oss, ...) get their own cache of `pad256(min(cells, window × n_seq + n_ubatch))`
//!   cells per stream (`window + n_ubatch` per stream without a unified cache). llama.cpp's
//!   `llama` architecture, which runs Mistral-7B-v0.1, and its `phi3` architecture keep every
//!   layer full-length whatever the config's `sliding_window` says.
//! * **Compute buffer.** At start llama.cpp reserves the worst-case graph: `n_ubatch` tokens
//!   against every KV cell, with logits for every token of the micro-batch. ggml's allocator
//!   reuses memory between tensors, so the buffer is the largest set of f32 tensors alive at one
//!   node (see [`compute_buffer`]).
//! * **Output buffer.** Logits for one token per sequence, f32, reserved at start in host memory
//!   (`llama_context::output_reserve`).
//! * The CPU backend also keeps repacked copies of some weight types (a `CPU_REPACK` buffer,
//!   e.g. Q4_0 and IQ4_NL on CPUs with AVX2 or ARM dot-product instructions): CPU only, never on
//!   a GPU, and not counted.

use serde::{Deserialize, Serialize};

use crate::{
    CoreError,
    error::{Fix, Setting},
    model::{Architecture, LayerAttention, ModelSpec},
    runtime::{LLAMA_CPP_KV_PAD, LLAMA_CPP_N_UBATCH},
};

/// Bytes of an f32: every activation, score and logit in llama.cpp's graph.
pub const F32_BYTES: u64 = 4;
/// Bytes of an f16: the attention mask as flash attention reads it.
pub const F16_BYTES: u64 = 2;
/// The largest micro-batch accepted (llama.cpp takes any, but beyond this the compute buffer of a
/// real model no longer fits any device).
pub const MAX_UBATCH: u64 = 1 << 16;
/// llama-server's logical batch (`-b`, `n_batch = 2048`); a larger `-ub` needs `-b` as large.
pub const LLAMA_SERVER_N_BATCH: u64 = 2048;

/// The llama.cpp settings a question can carry. Defaults are llama-server's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LlamaCppSettings {
    /// Flash attention (`-fa on|off`). llama-server's default `auto` turns it on wherever the
    /// backend has the kernel (CUDA, Metal, Vulkan and the CPU all do), so the default is on.
    pub flash_attn: bool,
    /// Micro-batch (`-ub`, `n_ubatch`): tokens evaluated in one graph; default 512.
    pub n_ubatch: u64,
    /// One KV cache shared by the parallel sequences (`--kv-unified`). llama-server turns it on
    /// when it picks the number of slots itself (its default); an explicit `-np N` leaves it off
    /// unless asked.
    pub kv_unified: bool,
}

impl Default for LlamaCppSettings {
    fn default() -> Self {
        LlamaCppSettings {
            flash_attn: true,
            n_ubatch: LLAMA_CPP_N_UBATCH,
            kv_unified: true,
        }
    }
}

impl LlamaCppSettings {
    /// Check the numbers a request can carry from anywhere (a link, JSON).
    pub fn validate(&self) -> Result<(), CoreError> {
        if self.n_ubatch == 0 || self.n_ubatch > MAX_UBATCH {
            return Err(CoreError::setting(
                Setting::Ubatch,
                self.n_ubatch,
                format!("must be between 1 and {MAX_UBATCH} tokens"),
                vec![Fix::new(Setting::Ubatch, "512")],
            ));
        }
        Ok(())
    }

    /// The settings in words, for the assumptions.
    pub fn statement(&self, n_seq: u64) -> String {
        let mut s = format!(
            "llama.cpp settings: flash attention {}, n_ubatch {}",
            if self.flash_attn { "on" } else { "off" },
            self.n_ubatch
        );
        if n_seq > 1 {
            s.push_str(&format!(
                ", {n_seq} parallel sequences with {} KV cache",
                if self.kv_unified {
                    "one unified"
                } else {
                    "a separate (non-unified)"
                }
            ));
        }
        s
    }
}

/// `x` rounded up to a multiple of `to` (ggml's `GGML_PAD`).
fn pad(x: u64, to: u64) -> u64 {
    x.div_ceil(to).saturating_mul(to)
}

/// KV cells per stream and the number of streams for `n_ctx` cells over `n_seq` sequences
/// (`llama_context`: `n_ctx = pad256(n_ctx)`, and without a unified cache
/// `n_ctx_seq = pad256(n_ctx / n_seq)` per sequence).
pub fn kv_streams(n_ctx: u64, n_seq: u64, unified: bool) -> (u64, u64) {
    let n_ctx = pad(n_ctx.max(1), LLAMA_CPP_KV_PAD);
    if unified || n_seq <= 1 {
        (n_ctx, 1)
    } else {
        (pad((n_ctx / n_seq).max(1), LLAMA_CPP_KV_PAD), n_seq)
    }
}

/// Cells per stream of a sliding-window layer (`llama_kv_cache_iswa`:
/// `pad256(min(size, n_swa × (unified ? n_seq : 1) + n_ubatch))`).
pub fn swa_cells(per_stream: u64, window: u64, n_seq: u64, settings: &LlamaCppSettings) -> u64 {
    let seqs = if settings.kv_unified { n_seq.max(1) } else { 1 };
    pad(
        per_stream.min(
            window
                .saturating_mul(seqs)
                .saturating_add(settings.n_ubatch),
        ),
        LLAMA_CPP_KV_PAD,
    )
}

/// Whether llama.cpp's implementation of `arch` applies a sliding window from the config.
/// `convert_hf_to_gguf.py` maps Mistral (v0.1) onto the `llama` architecture, which has no
/// sliding window; `phi3` reads the window but disables it ("Phi SWA is currently disabled").
pub fn applies_sliding_window(arch: &Architecture) -> bool {
    !matches!(arch, Architecture::Mistral | Architecture::Phi3)
}

/// Bytes of the output buffer: f32 logits of `max(1, n_seq)` tokens over the vocabulary.
pub fn output_buffer_bytes(model: &ModelSpec, n_seq: u64) -> u64 {
    model
        .vocab_size
        .saturating_mul(n_seq.max(1))
        .saturating_mul(F32_BYTES)
}

/// The compute buffer llama.cpp reserves, and what sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComputeBuffer {
    /// The buffer: `max(logits, attention + mask, feed-forward + mask)`.
    pub total_bytes: u64,
    /// Tokens of the worst-case graph: `min(n_ubatch, n_ctx)`.
    pub tokens: u64,
    /// KV cells the attention reads (the longest layer's, per stream).
    pub kv_cells: u64,
    /// Logits of every token of the micro-batch with the final hidden states.
    pub logits_bytes: u64,
    /// The attention phase: projections, and the f32 scores when flash attention is off.
    pub attention_bytes: u64,
    /// Of which scores (0 with flash attention).
    pub scores_bytes: u64,
    /// The feed-forward phase.
    pub ffn_bytes: u64,
    /// The attention masks the layers read (f16 with flash attention, else f32; one per cache
    /// kind).
    pub mask_bytes: u64,
}

/// The compute buffer of `model` with `n_ctx` cells over `n_seq` sequences.
///
/// Per phase, the f32 tensors alive at its widest node for the `t` tokens of the micro-batch
/// (`h` hidden, `q`/`kv` the query and key widths, `n_kv` cells per stream):
/// * logits: the normed hidden state and the residual beside the logits, `t · (vocab + 2h)`;
/// * attention: the residual, the normed input, q, k, v and the attention output,
///   `t · (2h + 2q + 2kv)`, plus without flash attention the scores `heads · t · n_kv` (the
///   softmax runs in place);
/// * feed-forward: residual, normed input, gate, up and their product, `t · (2h + 3·ff)` (MoE:
///   every selected expert of every token, `t · top_k · 3 · ff_expert`, plus the router);
/// * masks: `t · n_kv` per cache kind (full, sliding), f16 with flash attention, else f32,
///   alive from the first layer's attention to the last one's.
///
/// The buffer is `max(logits, attention + mask, feed-forward + mask)` (the last layer's
/// feed-forward runs without the mask: for a one-layer model, `feed-forward` alone).
pub fn compute_buffer(
    model: &ModelSpec,
    n_ctx: u64,
    n_seq: u64,
    settings: &LlamaCppSettings,
) -> ComputeBuffer {
    let (per_stream, streams) = kv_streams(n_ctx, n_seq, settings.kv_unified);
    let t = settings
        .n_ubatch
        .min(per_stream.saturating_mul(streams))
        .max(1);
    let h = model.hidden_size;
    let q = model.num_attention_heads.saturating_mul(model.head_dim);
    let kv = model.num_kv_heads.saturating_mul(model.head_dim);
    let swa = applies_sliding_window(&model.architecture);
    let windows: Vec<u64> = model
        .layer_attention
        .iter()
        .filter_map(|a| match a {
            LayerAttention::Sliding { window } if swa => Some(*window),
            _ => None,
        })
        .collect();
    let has_full = model.layer_attention.is_empty()
        || model
            .layer_attention
            .iter()
            .any(|a| !matches!(a, LayerAttention::Sliding { .. }) || !swa);
    let swa_cells_max = windows
        .iter()
        .map(|w| swa_cells(per_stream, *w, n_seq, settings))
        .max();
    let n_kv = if has_full {
        per_stream
    } else {
        swa_cells_max.unwrap_or(per_stream)
    };
    // Scores: the micro-batch's tokens are split over the streams, each against its own cells.
    let scores = if settings.flash_attn {
        0
    } else {
        model
            .num_attention_heads
            .saturating_mul(t)
            .saturating_mul(n_kv)
    };
    let attention = t
        .saturating_mul(
            h.saturating_mul(2)
                .saturating_add(q.saturating_mul(2))
                .saturating_add(kv.saturating_mul(2)),
        )
        .saturating_add(scores);
    let ffn = match &model.moe {
        Some(moe) => {
            let routed = t
                .saturating_mul(moe.experts_per_token)
                .saturating_mul(moe.expert_intermediate_size.saturating_mul(3));
            let router = t.saturating_mul(moe.num_experts.saturating_mul(2));
            let shared = t.saturating_mul(moe.shared_intermediate_size.saturating_mul(3));
            t.saturating_mul(h.saturating_mul(2))
                .saturating_add(routed)
                .saturating_add(router)
                .saturating_add(shared)
        }
        None => t.saturating_mul(
            h.saturating_mul(2)
                .saturating_add(model.intermediate_size.saturating_mul(3)),
        ),
    };
    let logits = t.saturating_mul(model.vocab_size.saturating_add(h.saturating_mul(2)));
    let mask_kinds: Vec<u64> = [has_full.then_some(per_stream), swa_cells_max]
        .into_iter()
        .flatten()
        .collect();
    let mask_cells = mask_kinds
        .iter()
        .map(|cells| t.saturating_mul(*cells))
        .fold(0u64, u64::saturating_add);
    // `build_attn_inp_kq_mask`: "flash attention requires an f16 mask", else f32.
    let mask = mask_cells.saturating_mul(if settings.flash_attn {
        F16_BYTES
    } else {
        F32_BYTES
    });
    let b = |x: u64| x.saturating_mul(F32_BYTES);
    // The mask is read by every layer's attention and freed after the last one: it sits beside
    // every attention phase and beside the feed-forward phases of all layers but the last,
    // never beside the logits.
    let ffn_phase = if model.num_layers > 1 {
        b(ffn).saturating_add(mask)
    } else {
        b(ffn)
    };
    let total = b(logits)
        .max(b(attention).saturating_add(mask))
        .max(ffn_phase);
    ComputeBuffer {
        total_bytes: total,
        tokens: t,
        kv_cells: n_kv,
        logits_bytes: b(logits),
        attention_bytes: b(attention),
        scores_bytes: b(scores),
        ffn_bytes: b(ffn),
        mask_bytes: mask,
    }
}

/// What an answer states about llama.cpp: the settings it ran with and the buffers it allocates
/// beside the weights and the KV cache (`--json`: `llama_cpp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlamaCppBuffers {
    /// The settings.
    pub settings: LlamaCppSettings,
    /// Parallel sequences (`n_seq_max`).
    pub sequences: u64,
    /// The compute buffer (the answer's activations).
    pub compute: ComputeBuffer,
    /// The output buffer, bytes.
    pub output_buffer_bytes: u64,
    /// Whether the output buffer is counted: it lives in host memory, which is the device's own
    /// only where memory is unified (a CPU, Apple silicon).
    pub output_buffer_counted: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_by_hand() {
        // 5,000 tokens: llama.cpp settles on 5,120 cells (its log: n_ctx = 5120).
        assert_eq!(kv_streams(5000, 1, true), (5120, 1));
        // 4 sequences over 16,384 cells: one stream, or four of 4,096.
        assert_eq!(kv_streams(16384, 4, true), (16384, 1));
        assert_eq!(kv_streams(16384, 4, false), (4096, 4));
        // 3 sequences over 1,000 tokens without a unified cache: pad256(1024 / 3) = 512 each.
        assert_eq!(kv_streams(1000, 3, false), (512, 3));
        let s = LlamaCppSettings::default();
        // Gemma-3's window of 512 + n_ubatch 512 = 1,024 cells; never more than the cache.
        assert_eq!(swa_cells(32768, 512, 1, &s), 1024);
        assert_eq!(swa_cells(768, 512, 1, &s), 768);
        // Unified: the window of every sequence; split: one window per stream.
        assert_eq!(swa_cells(16384, 4096, 4, &s), 16384);
        let split = LlamaCppSettings {
            kv_unified: false,
            ..s
        };
        assert_eq!(swa_cells(4096, 512, 4, &split), 1024);
    }

    #[test]
    fn settings_are_checked() {
        assert!(LlamaCppSettings::default().validate().is_ok());
        for bad in [0, MAX_UBATCH + 1] {
            let s = LlamaCppSettings {
                n_ubatch: bad,
                ..LlamaCppSettings::default()
            };
            assert!(matches!(
                s.validate(),
                Err(CoreError::Setting {
                    setting: Setting::Ubatch,
                    ..
                })
            ));
        }
    }
}
