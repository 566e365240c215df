//! headroom's cross-crate tests: one binary, modules grouped by intent. Test data lives in
//! `tests/data`. CLI and probe end-to-end tests live beside the binary in `probe/tests/`.

mod accuracy;
mod advice;
mod catalog;
mod formats;
mod layers;
mod memory;
mod params;
mod properties;
mod report;
mod transformers_counts;
