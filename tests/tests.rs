//! headroom's cross-crate tests: one binary, modules grouped by intent. Test data lives in
//! `tests/data`, the workspace's one fixture folder (the probe crate's tests and the site's
//! end-to-end tests read it too). CLI and probe end-to-end tests live beside the binary in
//! `probe/tests/` (one binary, `probe/tests/tests.rs`).

mod accuracy;
mod advice;
mod catalog;
mod extra_models;
mod formats;
mod fuzz;
mod hostile;
mod layers;
mod llama_cpp;
mod llama_cpp_offload;
mod macos;
mod memory;
mod offload;
mod params;
mod properties;
mod published_speeds;
mod report;
mod serving;
mod transformers_counts;
