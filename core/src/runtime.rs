//! Runtime profiles: what each inference/training engine allocates beyond weights, KV and
//! activations, and how it lays out its cache.

use serde::{Deserialize, Serialize};

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
