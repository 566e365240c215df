//! The limits every front end applies to a question, stated once.
//!
//! Each bound is far beyond any real use and small enough that the arithmetic behind an answer
//! stays exact; a number past one is a typo, and the answer says which setting and what range.
//! The CLI builds its argument ranges from these constants and the site its input bounds, so
//! the two never disagree about what is accepted.

/// Longest context accepted: 2^24 = 16,777,216 tokens. The longest context any open model
/// advertises today is 10M tokens (Llama 4 Scout).
pub const MAX_CONTEXT_TOKENS: u64 = 1 << 24;

/// Largest batch accepted: 2^16 sequences. Serving engines cap concurrent sequences far lower
/// (vLLM's default `max_num_seqs` is 256).
pub const MAX_BATCH: u64 = 1 << 16;

/// Most identical devices one model may be split over: 64. The estimate models tensor
/// parallelism inside one host (the largest hold 8–16 GPUs, a rack-scale NVLink domain 72);
/// past that, communication makes the speed fall, and a split over more hosts is a different
/// question (pipeline parallelism over a network).
pub const MAX_DEVICES: u32 = 64;

/// Largest LoRA rank accepted: 2^14 = 16,384, above the hidden size of any current model (a rank
/// above it cannot be applied). Published recipes use 8–256.
pub const MAX_LORA_RANK: u64 = 1 << 14;

/// Largest memory size accepted for a wired limit or host memory: 2^16 GiB = 64 TiB, beyond the
/// largest single machine sold.
pub const MAX_MEMORY_GIB: u64 = 1 << 16;

/// Largest `config.json` read: 16 MiB. The largest published ones (long quantization ignore
/// lists, e.g. MiniMax NVFP4) are about 3 MB.
pub const MAX_CONFIG_JSON_BYTES: u64 = 16 << 20;

/// Largest `model.safetensors.index.json` read: 64 MiB. One entry per tensor: the largest
/// checkpoints (about 100,000 tensors) write under 10 MB.
pub const MAX_INDEX_JSON_BYTES: u64 = 64 << 20;

/// Largest probe report read: 64 MiB. A full run writes tens of KB; even an allocation stage of
/// thousands of steps stays far below.
pub const MAX_REPORT_JSON_BYTES: u64 = 64 << 20;
