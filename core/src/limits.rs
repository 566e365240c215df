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

/// Most identical devices one model may be split over: 2^12, more GPUs than a large cluster pod
/// holds.
pub const MAX_DEVICES: u32 = 1 << 12;

/// Largest LoRA rank accepted: 2^14 = 16,384, above the hidden size of any current model (a rank
/// above it cannot be applied). Published recipes use 8–256.
pub const MAX_LORA_RANK: u64 = 1 << 14;

/// Largest memory size accepted for a wired limit or host memory: 2^16 GiB = 64 TiB, beyond the
/// largest single machine sold.
pub const MAX_MEMORY_GIB: u64 = 1 << 16;
