//! The bundled catalog of widely used open models (data in `core/data/models.json`).
//!
//! Each entry keeps the `config.json` fields headroom reads (parsed by
//! [`crate::config::model_from_config_value`], exactly like a downloaded config) and the parameter
//! count its publisher states, with the source; `tests/catalog.rs` checks every computed count
//! against it.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::{CoreError, config::model_from_config_value, model::ModelSpec};

/// The catalog data, embedded at build time.
const MODELS_JSON: &str = include_str!("../data/models.json");

/// One catalog entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogModel {
    /// Short catalog id, e.g. `llama-3.1-8b`.
    pub id: String,
    /// Hugging Face repository id, e.g. `meta-llama/Llama-3.1-8B`.
    pub hub_id: String,
    /// Model family for grouping in listings, e.g. `Llama 3.1`.
    pub family: String,
    /// Total parameters as the publisher writes them, e.g. `8.03B`, `494M`, `671B`.
    pub published_params: String,
    /// Active parameters per token as published, for MoE models.
    #[serde(default)]
    pub published_active_params: Option<String>,
    /// What the published count covers: `text` (the language model) or `text+vision`.
    pub published_scope: String,
    /// Where the published count comes from.
    pub source: String,
    /// Anything a reader of the numbers should know.
    #[serde(default)]
    pub note: Option<String>,
    /// The `config.json` fields headroom reads (a subset of the published file).
    pub config: serde_json::Value,
}

impl CatalogModel {
    /// The model's shape, parsed from the stored config like a downloaded `config.json`.
    pub fn model(&self) -> Result<ModelSpec, CoreError> {
        model_from_config_value(&self.id, &self.config)
    }
}

#[derive(Deserialize)]
struct CatalogFile {
    models: Vec<CatalogModel>,
}

/// Every catalog entry, in catalog order.
pub fn entries() -> &'static [CatalogModel] {
    static ENTRIES: OnceLock<Vec<CatalogModel>> = OnceLock::new();
    ENTRIES.get_or_init(|| {
        // The file is part of the crate and tests/catalog.rs parses it; a failure here is a
        // build defect, not user input.
        serde_json::from_str::<CatalogFile>(MODELS_JSON)
            .map(|f| f.models)
            .unwrap_or_else(|e| panic!("core/data/models.json is invalid: {e}"))
    })
}

/// Every catalog id, in catalog order (for listings and suggestions).
pub fn names() -> Vec<String> {
    entries().iter().map(|e| e.id.clone()).collect()
}

/// Parse a published count such as `8.03B`, `494M` or `1.2T` into parameters and the value of one
/// unit of its last digit (publishers round or truncate to the digits they show, so the true count
/// lies within one such unit). `None` for text that is not such a count.
pub fn parse_published_count(text: &str) -> Option<(f64, f64)> {
    let t = text.trim();
    let (number, scale) = match t.chars().last()? {
        'K' | 'k' => (&t[..t.len() - 1], 1e3),
        'M' | 'm' => (&t[..t.len() - 1], 1e6),
        'B' | 'b' => (&t[..t.len() - 1], 1e9),
        'T' | 't' => (&t[..t.len() - 1], 1e12),
        _ => return None,
    };
    let value: f64 = number.parse().ok()?;
    let decimals = number.split_once('.').map_or(0, |(_, frac)| frac.len());
    let unit = scale / 10f64.powi(decimals as i32);
    Some((value * scale, unit))
}

/// The catalog entry matching `name`: its catalog id, its Hub id, or the Hub id's name part
/// (`Llama-3.1-8B`), case-insensitively.
pub fn find_entry(name: &str) -> Result<&'static CatalogModel, CoreError> {
    let wanted = name.trim().to_ascii_lowercase();
    let found = entries().iter().find(|e| {
        let hub = e.hub_id.to_ascii_lowercase();
        let repo = hub.rsplit('/').next().unwrap_or(&hub).to_string();
        e.id == wanted || hub == wanted || repo == wanted
    });
    found.ok_or_else(|| CoreError::Unknown {
        kind: "model".into(),
        name: name.to_string(),
        hint: unknown_hint(&wanted),
    })
}

/// The [`ModelSpec`] of the catalog entry matching `name` (see [`find_entry`]).
pub fn find(name: &str) -> Result<ModelSpec, CoreError> {
    find_entry(name)?.model()
}

/// Catalog models whose shape stands in for a model known only by its size: dense Llama-family
/// decoders (grouped-query attention, SwiGLU MLP) from 1B to 405B, the shape most open models
/// of each size share.
pub const SIZE_REFERENCE_MODELS: &[&str] = &[
    "llama-3.2-1b",
    "llama-3.2-3b",
    "llama-3.1-8b",
    "llama-3.1-70b",
    "llama-3.1-405b",
];

/// Smallest and largest parameter count [`model_of_size`] accepts: 0.1 B to 2 T.
pub const MODEL_SIZE_LIMITS: (u64, u64) = (100_000_000, 2_000_000_000_000);

/// A dense model of about `parameters` parameters, for a model that is in no catalog and has no
/// `config.json` at hand. It takes the shape of the [`SIZE_REFERENCE_MODELS`] entry nearest in
/// size (on a log scale) and sets the layer count so the total comes closest to `parameters`;
/// it is marked approximate and says so: weights follow the size, but the KV cache and
/// activations follow the reference's attention (grouped-query, its head count and width), and
/// a mixture-of-experts model's speed (which reads only the active experts) is not captured.
pub fn model_of_size(parameters: u64) -> Result<ModelSpec, CoreError> {
    let (lo, hi) = MODEL_SIZE_LIMITS;
    if !(lo..=hi).contains(&parameters) {
        return Err(CoreError::OutOfRange {
            field: "model size".into(),
            value: parameters.to_string(),
            problem: format!(
                "must be between {} B and {} B parameters",
                lo as f64 / 1e9,
                hi as f64 / 1e9
            ),
        });
    }
    let mut best: Option<(f64, &CatalogModel, u64)> = None;
    for id in SIZE_REFERENCE_MODELS {
        let entry = find_entry(id)?;
        let total = crate::params::param_counts(&entry.model()?).total;
        let distance = ((total as f64).ln() - (parameters as f64).ln()).abs();
        if best.is_none_or(|(d, _, _)| distance < d) {
            best = Some((distance, entry, total));
        }
    }
    let Some((_, entry, _)) = best else {
        return Err(CoreError::Unknown {
            kind: "model".into(),
            name: "size reference".into(),
            hint: "the catalog has none of the size reference models".into(),
        });
    };
    let reference = entry.model()?;
    let layers = reference.num_layers.max(1);
    let total = crate::params::param_counts(&reference).total;
    let one_layer = {
        let mut config = entry.config.clone();
        config["num_hidden_layers"] = serde_json::json!(layers + 1);
        crate::params::param_counts(&model_from_config_value(&entry.id, &config)?).total - total
    };
    let outside_layers = total.saturating_sub(one_layer * layers);
    let wanted_layers = (parameters.saturating_sub(outside_layers) as f64 / one_layer as f64)
        .round()
        .max(1.0) as u64;
    let mut config = entry.config.clone();
    config["num_hidden_layers"] = serde_json::json!(wanted_layers);
    let name = format!("{:.3} B-parameter model", parameters as f64 / 1e9);
    let mut spec = model_from_config_value(&name, &config)?;
    let got = crate::params::param_counts(&spec).total;
    spec.approximate = true;
    spec.approximations.push(format!(
        "model by size: {} parameters asked, shaped like {} ({}) with {wanted_layers} layers = \
         {got} parameters; weights follow the size, but the KV cache, activations and speed \
         follow that shape (grouped-query attention, dense MLP), not the real model's — for a \
         mixture-of-experts or differently shaped model give its config.json",
        parameters, entry.id, entry.hub_id
    ));
    Ok(spec)
}

/// Largest edit distance still suggested as a close match.
const MAX_SUGGESTION_DISTANCE: usize = 4;
/// Most close matches listed in an error.
const MAX_SUGGESTIONS: usize = 5;

fn unknown_hint(wanted: &str) -> String {
    let mut scored: Vec<(usize, &str)> = entries()
        .iter()
        .map(|e| {
            let d = edit_distance(wanted, &e.id);
            // Substring matches ("llama-3") are close whatever their length difference.
            let d = if !wanted.is_empty() && e.id.contains(wanted) {
                d.min(1)
            } else {
                d
            };
            (d, e.id.as_str())
        })
        .filter(|(d, _)| *d <= MAX_SUGGESTION_DISTANCE)
        .collect();
    scored.sort();
    let close: Vec<&str> = scored
        .iter()
        .take(MAX_SUGGESTIONS)
        .map(|(_, id)| *id)
        .collect();
    let list = "`headroom models` lists the catalog; a Hugging Face id (owner/name) or a path to a \
                config.json also works";
    if close.is_empty() {
        list.to_string()
    } else {
        format!("did you mean {}? {list}", close.join(", "))
    }
}

/// Levenshtein distance over bytes (catalog ids are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}
