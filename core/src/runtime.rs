//! Runtime profiles: what each inference/training engine allocates beyond weights, KV and
//! activations, and how it lays out its cache.
//!
//! Every constant here names its source. The profiles are summarised, with the reasoning behind
//! each choice, in `core/docs/MEMORY.md`.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::{
    CoreError,
    devices::{DeviceSpec, MemoryKind},
    kv_cache::KvDtype,
    quant::WeightFormat,
    units::MIB,
};

/// An engine that runs the model. Each has its own overhead and cache behaviour (documented on
/// its profile).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Runtime {
    /// Hugging Face transformers on PyTorch with CUDA.
    TransformersCuda,
    /// Hugging Face transformers on PyTorch with Apple's MPS backend.
    TransformersMps,
    /// llama.cpp (GGUF).
    LlamaCpp,
    /// Apple MLX.
    Mlx,
    /// vLLM, which pre-allocates `gpu_memory_utilization` of the GPU.
    Vllm {
        /// Share of GPU memory vLLM takes at start (default 0.9).
        gpu_memory_utilization: f64,
    },
}

/// vLLM's default `gpu_memory_utilization` (engine argument default, vLLM docs "Engine Arguments").
pub const VLLM_DEFAULT_GPU_MEMORY_UTILIZATION: f64 = 0.9;

/// Memory a CUDA context takes on the device before any tensor is allocated: driver state and the
/// kernels of the CUDA runtime and cuBLAS, loaded lazily (`CUDA_MODULE_LOADING=LAZY`, the default
/// since CUDA 11.7). Measured on an H200 (driver 580, PyTorch 2.11 + CUDA 13.0): device memory used
/// outside PyTorch's allocator was 619 MiB after the first tensor and 685 MiB after the first bf16
/// matmul (`tests/data/measured/h200-transformers-5.17.json`, `runtime_empty`); older stacks
/// report 300–600 MiB. It is *not* counted by `torch.cuda.max_memory_allocated`.
pub const CUDA_CONTEXT_BYTES: u64 = 685 * MIB;

/// cuBLAS workspace PyTorch allocates through its caching allocator on first GEMM: 4 MiB × 8 by
/// default (`CUBLAS_WORKSPACE_CONFIG=:4096:8`, PyTorch "Reproducibility" notes), counted by
/// `torch.cuda.memory_allocated`.
pub const CUBLAS_WORKSPACE_BYTES: u64 = 32 * MIB;

/// Memory vLLM keeps outside its KV pool for CUDA graphs of the decode batch sizes it captures.
/// vLLM logs "Graph capturing finished ... took 0.3–0.6 GiB" for 7–8B models on one GPU; we take
/// 512 MiB. Disabled with `--enforce-eager`.
pub const VLLM_CUDA_GRAPH_BYTES: u64 = 512 * MIB;

/// llama.cpp's micro-batch (`n_ubatch`, `-ub`) default: the prompt is evaluated 512 tokens at a
/// time (llama.cpp `common/common.h`, `n_ubatch = 512`).
pub const LLAMA_CPP_N_UBATCH: u64 = 512;

/// llama.cpp pads the sliding-window cache to a multiple of this many cells (`n_pad` = 256 with
/// flash attention, `llama_kv_cache::get_padding`).
pub const LLAMA_CPP_KV_PAD: u64 = 256;

/// mlx-lm's `prefill_step_size` default: the prompt is evaluated 2048 tokens at a time
/// (`mlx_lm/generate.py`, `generate_step(..., prefill_step_size=2048)`).
pub const MLX_PREFILL_STEP_TOKENS: u64 = 2048;

/// vLLM's chunked-prefill token budget per step (`max_num_batched_tokens`); the V1 engine's
/// default for offline/GPU use is 8192 tokens (vLLM docs, "Optimization and Tuning: chunked
/// prefill"). vLLM's profiling run uses this budget to size activations.
pub const VLLM_MAX_NUM_BATCHED_TOKENS: u64 = 8192;

/// How an engine stores sliding-window layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlidingWindowCache {
    /// The cache holds `min(tokens, window)` per sequence.
    Window,
    /// llama.cpp's SWA cache: `min(batch·tokens, pad256(window·batch + n_ubatch))` cells
    /// (`llama_kv_cache_iswa`, unless `--swa-full`).
    WindowPlusUbatch,
    /// transformers' `DynamicSlidingWindowLayer`: keeps `window − 1` tokens, but right after a
    /// prefill the kept slice is a *view* of the whole prompt's key/value tensor, so the full
    /// prompt stays allocated until the first decode step replaces it. The peak holds every token.
    FullUntilFirstDecode,
}

/// How an engine stores MLA (DeepSeek-V2/V3) attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MlaCache {
    /// The compressed latent `kv_lora_rank + qk_rope_head_dim` per token per layer (vLLM's MLA
    /// backends; llama.cpp's "V-less" MLA cache, PR #19067, Jan 2026).
    Latent,
    /// Decompressed per-head keys (`qk_nope + qk_rope`) and values (`v_head_dim`) for every
    /// attention head (transformers' `DeepseekV2Attention` caches `key_states`/`value_states`).
    Decompressed,
}

/// What one runtime allocates and how, for one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuntimeProfile {
    /// Display name, e.g. `transformers (CUDA)`.
    pub name: String,
    /// Fixed memory on the device before the model: context, workspaces, graphs.
    pub fixed_overhead_bytes: u64,
    /// Where `fixed_overhead_bytes` comes from, in words.
    pub overhead_source: String,
    /// Prompt tokens evaluated per forward pass (per sequence); `None` = the whole prompt at once.
    pub prefill_chunk_tokens: Option<u64>,
    /// Whether attention is fused by default (flash / memory-efficient kernels: no score matrix).
    pub fused_attention: bool,
    /// Bytes of one activation element during inference (bf16/f16 = 2; ggml computes in f32 = 4).
    pub activation_element_bytes: u64,
    /// Whether a plain forward computes logits for every prompt position (else only the last).
    pub logits_all_positions: bool,
    /// Whether the input embeddings stay alive through the whole layer loop (transformers keeps
    /// `inputs_embeds` referenced in the model's `forward`).
    pub keeps_input_embeddings: bool,
    /// Whether MoE layers run every selected expert of every token at once (grouped GEMM:
    /// transformers 5 `grouped_mm`, llama.cpp `mul_mat_id`, vLLM `fused_moe`, MLX `gather_mm`).
    pub moe_all_experts_at_once: bool,
    /// Bytes of one logit element.
    pub logits_element_bytes: u64,
    /// Sliding-window cache behaviour.
    pub sliding_window: SlidingWindowCache,
    /// MLA cache behaviour.
    pub mla: MlaCache,
    /// Whether the KV cache for the whole context is allocated up front (llama.cpp, vLLM) or
    /// grows with the tokens seen (transformers' `DynamicCache`, MLX's `KVCache` in steps).
    pub kv_preallocated: bool,
    /// Allocator behaviour and other notes, in words.
    pub notes: String,
}

impl Runtime {
    /// The vLLM runtime with its default share of GPU memory.
    pub fn vllm_default() -> Runtime {
        Runtime::Vllm {
            gpu_memory_utilization: VLLM_DEFAULT_GPU_MEMORY_UTILIZATION,
        }
    }

    /// Every runtime kind, for listings (vLLM with its default share).
    pub fn all() -> Vec<Runtime> {
        vec![
            Runtime::TransformersCuda,
            Runtime::TransformersMps,
            Runtime::LlamaCpp,
            Runtime::Mlx,
            Runtime::vllm_default(),
        ]
    }

    /// The engine people would use on `device` for weights in `format`: GGUF → llama.cpp;
    /// MLX-quantized weights → MLX; fp32/fp16/bf16 on Apple silicon → MLX (which loads Hugging
    /// Face float checkpoints directly); other formats on Apple silicon (GPTQ, AWQ, fp8,
    /// bitsandbytes) → transformers on MPS; other unified-memory adapters (integrated GPUs,
    /// lavapipe, a browser) → llama.cpp; discrete GPUs → transformers on CUDA.
    pub fn default_for(device: &DeviceSpec, format: &WeightFormat) -> Runtime {
        if format.is_gguf() {
            return Runtime::LlamaCpp;
        }
        if matches!(format, WeightFormat::Mlx { .. }) {
            return Runtime::Mlx;
        }
        // MLX runs only on Apple silicon and loads float checkpoints and its own quantized
        // formats; GPTQ/AWQ/bitsandbytes/fp8 checkpoints on a Mac go through PyTorch's MPS
        // backend. A measured non-Apple adapter that shares host memory (an integrated GPU,
        // lavapipe, a browser benchmark) has neither CUDA nor Metal: llama.cpp's Vulkan backend
        // is what runs there. Discrete GPUs get the PyTorch CUDA profile.
        let is_apple = device.is_apple_silicon();
        let float_checkpoint = matches!(
            format,
            WeightFormat::F32 | WeightFormat::F16 | WeightFormat::Bf16
        );
        match (device.memory_kind, is_apple) {
            (MemoryKind::Unified, true) if float_checkpoint => Runtime::Mlx,
            (MemoryKind::Unified, true) => Runtime::TransformersMps,
            (MemoryKind::Unified, false) => Runtime::LlamaCpp,
            (MemoryKind::Discrete, _) => Runtime::TransformersCuda,
        }
    }

    /// Whether this engine can hold its KV cache in `dtype`.
    ///
    /// f16/bf16 everywhere; fp8 in vLLM (`--kv-cache-dtype fp8`); q8_0/q4_0 in llama.cpp
    /// (`--cache-type-k/-v`).
    pub fn supports_kv_dtype(&self, dtype: KvDtype) -> bool {
        match dtype {
            KvDtype::F16 | KvDtype::Bf16 => true,
            KvDtype::Fp8 => matches!(self, Runtime::Vllm { .. }),
            KvDtype::Q8_0 | KvDtype::Q4_0 => matches!(self, Runtime::LlamaCpp),
        }
    }

    /// How this engine stores sliding-window layers.
    pub fn sliding_window_cache(&self) -> SlidingWindowCache {
        match self {
            Runtime::TransformersCuda | Runtime::TransformersMps => {
                SlidingWindowCache::FullUntilFirstDecode
            }
            Runtime::LlamaCpp => SlidingWindowCache::WindowPlusUbatch,
            Runtime::Mlx | Runtime::Vllm { .. } => SlidingWindowCache::Window,
        }
    }

    /// How this engine stores MLA attention.
    pub fn mla_cache(&self) -> MlaCache {
        match self {
            // transformers 5.x caches the compressed latent (keys [b, 1, t, kv_lora_rank],
            // values [b, 1, t, qk_rope_head_dim]: measured with 5.17, tests/data/measured);
            // 4.x cached decompressed per-head keys and values.
            Runtime::LlamaCpp
            | Runtime::Vllm { .. }
            | Runtime::TransformersCuda
            | Runtime::TransformersMps => MlaCache::Latent,
            Runtime::Mlx => MlaCache::Decompressed,
        }
    }

    /// Share of device memory the engine may use, when it limits itself (vLLM).
    pub fn memory_share(&self) -> Option<f64> {
        match self {
            Runtime::Vllm {
                gpu_memory_utilization,
            } => Some(*gpu_memory_utilization),
            _ => None,
        }
    }

    /// The profile of this engine on `device`.
    pub fn profile(&self, device: &DeviceSpec) -> RuntimeProfile {
        // A CUDA/ROCm/Level Zero context exists on discrete GPUs; Metal (unified memory) has no
        // comparable fixed allocation inside the GPU working set.
        let discrete = device.memory_kind == MemoryKind::Discrete;
        let context_bytes = if discrete { CUDA_CONTEXT_BYTES } else { 0 };
        match self {
            Runtime::TransformersCuda => RuntimeProfile {
                name: self.to_string(),
                fixed_overhead_bytes: CUDA_CONTEXT_BYTES + CUBLAS_WORKSPACE_BYTES,
                overhead_source: format!(
                    "CUDA context {} MiB (driver, lazily loaded kernels; not seen by \
                     torch.cuda.memory_allocated) + cuBLAS workspace {} MiB",
                    CUDA_CONTEXT_BYTES / MIB,
                    CUBLAS_WORKSPACE_BYTES / MIB
                ),
                prefill_chunk_tokens: None,
                fused_attention: true,
                activation_element_bytes: 2,
                logits_all_positions: false,
                keeps_input_embeddings: true,
                moe_all_experts_at_once: true,
                logits_element_bytes: 2,
                sliding_window: self.sliding_window_cache(),
                mla: self.mla_cache(),
                kv_preallocated: false,
                notes: "PyTorch caching allocator: blocks rounded to 512 B, large segments of \
                        20 MiB+; freed blocks stay reserved, so nvidia-smi shows reserved, not \
                        allocated, memory. attn_implementation defaults to \"sdpa\" (fused \
                        flash/mem-efficient kernels). generate() computes logits for the last \
                        position only (logits_to_keep=1); transformers 5 keeps them in the model \
                        dtype. MoE experts run as one grouped GEMM (experts_implementation \
                        grouped_mm)."
                    .into(),
            },
            Runtime::TransformersMps => RuntimeProfile {
                name: self.to_string(),
                fixed_overhead_bytes: 0,
                overhead_source: "Metal has no device-side context inside the working set; \
                                  the Python process's own memory is host memory"
                    .into(),
                prefill_chunk_tokens: None,
                // PyTorch's MPS scaled_dot_product_attention materializes the score matrix for
                // prompts (math path) in the versions we know of: assume not fused.
                fused_attention: false,
                activation_element_bytes: 2,
                logits_all_positions: false,
                keeps_input_embeddings: true,
                moe_all_experts_at_once: true,
                logits_element_bytes: 2,
                sliding_window: self.sliding_window_cache(),
                mla: self.mla_cache(),
                kv_preallocated: false,
                notes: "MPS allocator stops at PYTORCH_MPS_HIGH_WATERMARK_RATIO (1.7) × Metal's \
                        working set, beyond which macOS swaps; we hold estimates to the working \
                        set itself."
                    .into(),
            },
            Runtime::LlamaCpp => RuntimeProfile {
                name: self.to_string(),
                fixed_overhead_bytes: context_bytes,
                overhead_source: if discrete {
                    format!(
                        "CUDA/ROCm/Vulkan context {} MiB (same driver cost as PyTorch's)",
                        CUDA_CONTEXT_BYTES / MIB
                    )
                } else {
                    if device.vendor == crate::machine::CPU_VENDOR {
                        "CPU only: no device context; the compute buffer is in RAM".into()
                    } else {
                        "Metal: no fixed device allocation beyond the compute buffer".into()
                    }
                },
                prefill_chunk_tokens: Some(LLAMA_CPP_N_UBATCH),
                // flash_attn defaults to "auto" (on where the backend supports it: CUDA, Metal,
                // Vulkan) since llama.cpp b6xxx (Aug 2025).
                fused_attention: true,
                activation_element_bytes: 4,
                logits_all_positions: false,
                keeps_input_embeddings: false,
                moe_all_experts_at_once: true,
                logits_element_bytes: 4,
                sliding_window: self.sliding_window_cache(),
                mla: self.mla_cache(),
                kv_preallocated: true,
                notes: "ggml-alloc reserves one compute buffer sized for the worst-case graph \
                        at start (n_ubatch tokens against every KV cell, with logits for every \
                        one of them); KV cells for n_ctx, rounded up to 256, are allocated up \
                        front; the output buffer keeps one token's logits per sequence."
                    .into(),
            },
            Runtime::Mlx => RuntimeProfile {
                name: self.to_string(),
                fixed_overhead_bytes: 0,
                overhead_source: "Metal: no fixed device allocation; MLX's buffer cache reuses \
                                  freed buffers"
                    .into(),
                prefill_chunk_tokens: Some(MLX_PREFILL_STEP_TOKENS),
                fused_attention: true,
                activation_element_bytes: 2,
                logits_all_positions: false,
                keeps_input_embeddings: false,
                moe_all_experts_at_once: true,
                logits_element_bytes: 4,
                sliding_window: self.sliding_window_cache(),
                mla: self.mla_cache(),
                kv_preallocated: false,
                notes: "mlx-lm grows its KVCache in steps of 256 tokens and uses a \
                        RotatingKVCache of the window size for sliding layers (Gemma-2/3, \
                        gpt-oss); mx.fast.scaled_dot_product_attention is fused. MLA: mlx-lm's \
                        DeepSeek-V2 caches decompressed keys/values (not verified for V3)."
                    .into(),
            },
            Runtime::Vllm { .. } => RuntimeProfile {
                name: self.to_string(),
                fixed_overhead_bytes: CUDA_CONTEXT_BYTES + VLLM_CUDA_GRAPH_BYTES,
                overhead_source: format!(
                    "CUDA context {} MiB + CUDA graphs {} MiB",
                    CUDA_CONTEXT_BYTES / MIB,
                    VLLM_CUDA_GRAPH_BYTES / MIB
                ),
                prefill_chunk_tokens: Some(VLLM_MAX_NUM_BATCHED_TOKENS),
                fused_attention: true,
                activation_element_bytes: 2,
                logits_all_positions: false,
                keeps_input_embeddings: false,
                moe_all_experts_at_once: true,
                logits_element_bytes: 4,
                sliding_window: self.sliding_window_cache(),
                mla: self.mla_cache(),
                kv_preallocated: true,
                notes: "vLLM takes gpu_memory_utilization × GPU memory at start, profiles one \
                        forward pass of max_num_batched_tokens, and turns everything left into \
                        paged KV blocks (16 tokens each). The model fits when weights, \
                        activations, overhead and the KV this request needs fit in that share."
                    .into(),
            },
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Runtime::TransformersCuda => write!(f, "transformers"),
            Runtime::TransformersMps => write!(f, "transformers-mps"),
            Runtime::LlamaCpp => write!(f, "llama.cpp"),
            Runtime::Mlx => write!(f, "mlx"),
            Runtime::Vllm {
                gpu_memory_utilization,
            } => write!(f, "vllm:{gpu_memory_utilization}"),
        }
    }
}

/// The names `Runtime::from_str` accepts, for error messages.
pub const RUNTIME_NAMES: &str =
    "transformers, transformers-mps, llama.cpp (llamacpp), mlx, vllm, vllm:SHARE (e.g. vllm:0.85)";

impl FromStr for Runtime {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let unknown = || CoreError::Unknown {
            kind: "runtime".into(),
            name: s.to_string(),
            hint: format!("use one of: {RUNTIME_NAMES}"),
        };
        match lower.as_str() {
            "transformers" | "transformers-cuda" | "hf" | "pytorch" | "torch" => {
                Ok(Runtime::TransformersCuda)
            }
            "transformers-mps" | "mps" => Ok(Runtime::TransformersMps),
            "llama.cpp" | "llamacpp" | "llama-cpp" | "gguf" => Ok(Runtime::LlamaCpp),
            "mlx" | "mlx-lm" => Ok(Runtime::Mlx),
            "vllm" => Ok(Runtime::vllm_default()),
            other => {
                let Some(share) = other.strip_prefix("vllm:") else {
                    return Err(unknown());
                };
                let value: f64 = share.parse().map_err(|_| CoreError::OutOfRange {
                    field: "runtime vllm:SHARE".into(),
                    value: share.to_string(),
                    problem: "SHARE must be a number between 0 and 1, e.g. vllm:0.85".into(),
                })?;
                if !(value > 0.0 && value <= 1.0) {
                    return Err(CoreError::OutOfRange {
                        field: "runtime vllm:SHARE".into(),
                        value: share.to_string(),
                        problem: "gpu_memory_utilization must be in (0, 1], e.g. vllm:0.85".into(),
                    });
                }
                Ok(Runtime::Vllm {
                    gpu_memory_utilization: value,
                })
            }
        }
    }
}
