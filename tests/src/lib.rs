//! Shared helpers for headroom's cross-crate tests: loading the data under `tests/data`.
#![deny(missing_docs)]

use std::path::PathBuf;

use headroom_core::{config::model_from_config_json, model::ModelSpec};

/// `tests/data`, resolved from this crate's manifest so tests run from any directory.
pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data")
}

/// Names of the fixtures whose checkpoints were counted (`tests/data/hf-configs/NAME.json` with
/// an entry in `param_counts.json`), sorted. The other configs there are held to transformers'
/// counts by `tests/transformers_counts.rs`.
pub fn fixture_names() -> Vec<String> {
    let expected = expected_param_counts();
    let mut names: Vec<String> = expected
        .as_object()
        .map(|m| m.keys().filter(|k| !k.starts_with('_')).cloned().collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// The text of fixture `NAME.json`.
pub fn fixture_config_text(name: &str) -> String {
    let path = data_dir().join("hf-configs").join(format!("{name}.json"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Fixture `NAME.json` parsed into a [`ModelSpec`] (panics with the error if it does not parse).
pub fn fixture_model(name: &str) -> ModelSpec {
    model_from_config_json(name, &fixture_config_text(name))
        .unwrap_or_else(|e| panic!("fixture {name} does not parse: {e}"))
}

/// The expected counts in `tests/data/hf-configs/param_counts.json`.
pub fn expected_param_counts() -> serde_json::Value {
    let path = data_dir().join("hf-configs").join("param_counts.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
