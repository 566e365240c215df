//! # headroom-core
//!
//! The pure math behind headroom's one question: *can this machine hold this model, and how fast
//! will it run?* No I/O, no clocks, no threads, no GPU: every function is a deterministic
//! computation over plain data, so the same code runs in the CLI and in the browser
//! (`wasm32-unknown-unknown`).
//!
//! Data flow:
//!
//! ```text
//! config.json ──► config::model_from_config_json ──► ModelSpec ──► tensors::tensors ──► quant (bytes)
//!                                                  (layers: mixer + MLP;   │
//!                                                   encoders, projectors)  ├─► components (params per part)
//!                                                        │                 └─► kv_cache (per token / per sequence)
//! devices catalog / ProbeReport ──► DeviceSpec ──► answer::Question
//!                                                        │
//!                     answer::answer ◄───────────────────┘
//!                        ├─ estimate::estimate (components, verdict, speed)
//!                        ├─ advice (every format, best format, longest context, training)
//!                        └──► Answer — what `headroom fit` and the site's calculator render
//! ```
//!
//! * [`model::ModelSpec`] — the shape of a model, from a Hugging Face `config.json`
//!   ([`config`]) or the bundled [`model_catalog`].
//! * [`model::LayerSpec`] — a model is a list of decoder layers, each a mixer (attention full,
//!   sliding or chunked, MLA with or without an indexer, Gated DeltaNet, Mamba-2, short conv,
//!   lightning attention, Kimi Delta Attention, cross-attention, parallel mixers) and an MLP
//!   (gated, ungated, MoE), plus embeddings, encoders, projectors and MTP layers;
//!   [`components`] counts them part by part, [`model::ModelSpec::exact`] and
//!   `ModelSpec::approximations` say what is not counted exactly.
//! * [`tensors`] — every stored weight tensor with its shape; [`params`] counts them.
//! * [`files`] — `.gguf` and `.safetensors` headers: the model's shape and its exact weights.
//! * [`quant`] and [`gguf`] — bytes per tensor for every precision and quantization format.
//! * [`kv_cache`], [`activations`], [`runtime`], [`training`] — the other parts of memory.
//! * [`devices`], [`usable_memory`] and [`macos`] (the GPU share of a Mac by release) — what a
//!   machine offers; [`speed`] — tokens per second.
//! * [`published`] — published llama.cpp speeds and the band of headroom's error against them.
//! * [`serving`] — how many users a server holds at a context, and their decode speed.
//! * [`answer`] — the whole answer to one question, the one function every front end calls;
//!   [`estimate`] (components, verdict, speed) and [`advice`] (what would fit) are its parts.
//! * [`extra_models`] — the vision projector and a draft model beside the main one.
//! * [`launch`] — the command that runs what an answer estimated, per runtime.
//! * [`ranking`] — the inverse questions: every catalog model ranked for one device, the catalog
//!   devices that hold one model, and the practical-limits table.
//! * [`machine`] — which device "this machine" is, from a quick discovery and the catalog.
//! * [`facts`] — what every estimate of one model needs, worked out once per question.
//! * [`limits`] — the bounds every front end applies to a question, stated once.
//! * [`report`] — the probe report schema shared by `headroom probe`, the site and `headroom fit`.
#![deny(missing_docs)]

pub mod activations;
pub mod advice;
pub mod answer;
pub mod components;
pub mod config;
pub mod devices;
pub mod error;
pub mod estimate;
pub mod extra_models;
pub mod facts;
pub mod files;
pub mod gguf;
pub mod kv_cache;
pub mod launch;
pub mod limits;
pub mod llama_cpp;
pub mod machine;
pub mod macos;
pub mod model;
pub mod model_catalog;
pub mod offload;
pub mod params;
pub mod published;
pub mod quant;
pub mod ranking;
pub mod report;
pub mod runtime;
pub mod serving;
pub mod speed;
pub mod tensors;
pub mod training;
pub mod units;
pub mod usable_memory;

pub use error::CoreError;
