//! `headroom models [FILTER] [--json]`: the bundled model catalog, with parameter counts computed
//! from each model's shape (the same code `headroom fit` uses) beside the published ones.

use anyhow::{Context, bail};
use headroom_core::{
    model::ModelSpec,
    model_catalog::{self, CatalogModel},
    params::param_counts,
};
use serde::Serialize;

use crate::fit::{
    model_input::normalize,
    table::{Align, Table, params_short, thousands},
};

/// Arguments of `headroom models`.
#[derive(clap::Args)]
pub struct ModelsArgs {
    /// Show only models whose id, Hub id or family contain every word of FILTER (case and
    /// punctuation ignored), e.g. `qwen`, `llama 3.1`, `moe`.
    #[arg(value_name = "FILTER")]
    filter: Vec<String>,

    /// Print a JSON array instead of a table: each catalog entry (id, hub_id, family,
    /// published_params, ...) with params_total, params_active, layers, max_context and
    /// architecture computed from its config.
    #[arg(long)]
    json: bool,
}

/// One model in `--json`.
#[derive(Serialize)]
struct ModelJson<'a> {
    id: &'a str,
    hub_id: &'a str,
    family: &'a str,
    architecture: String,
    params_total: u64,
    params_active: u64,
    published_params: &'a str,
    published_active_params: Option<&'a str>,
    layers: u64,
    max_context: u64,
    moe: bool,
    source: &'a str,
    note: Option<&'a str>,
}

/// Whether every word of `filter` occurs in the entry's id, Hub id or family, or is `moe` for a
/// mixture-of-experts model.
fn matches(entry: &CatalogModel, spec: &ModelSpec, filter: &str) -> bool {
    let haystack = normalize(&format!("{} {} {}", entry.id, entry.hub_id, entry.family));
    filter.split_whitespace().all(|word| {
        let word = normalize(word);
        haystack.contains(&word) || (word == "moe" && spec.moe.is_some())
    })
}

/// The architecture as its `model_type`-style name.
fn architecture_name(spec: &ModelSpec) -> String {
    serde_json::to_value(&spec.architecture)
        .ok()
        .and_then(|v| match v {
            serde_json::Value::String(s) => Some(s),
            // `Other(model_type)` serializes as {"other": "..."}.
            serde_json::Value::Object(map) => map
                .values()
                .next()
                .and_then(|v| v.as_str().map(str::to_owned)),
            _ => None,
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Run the command.
pub fn run(args: ModelsArgs) -> anyhow::Result<()> {
    let filter = args.filter.join(" ");
    let filter = filter.as_str();
    let mut selected = Vec::new();
    for entry in model_catalog::entries() {
        let spec = entry
            .model()
            .with_context(|| format!("catalog entry `{}`", entry.id))?;
        if matches(entry, &spec, filter) {
            selected.push((entry, spec));
        }
    }
    if selected.is_empty() {
        bail!(
            "no model in the catalog matches `{filter}`; run `headroom models` for the full list, \
             or give `headroom fit` a config.json path or a Hugging Face id"
        );
    }
    let mut out = String::new();
    if args.json {
        let items: Vec<ModelJson<'_>> = selected
            .iter()
            .map(|(entry, spec)| {
                let counts = param_counts(spec);
                ModelJson {
                    id: &entry.id,
                    hub_id: &entry.hub_id,
                    family: &entry.family,
                    architecture: architecture_name(spec),
                    params_total: counts.total,
                    params_active: counts.active,
                    published_params: &entry.published_params,
                    published_active_params: entry.published_active_params.as_deref(),
                    layers: spec.num_layers,
                    max_context: spec.max_context,
                    moe: spec.moe.is_some(),
                    source: &entry.source,
                    note: entry.note.as_deref(),
                }
            })
            .collect();
        out.push_str(&serde_json::to_string_pretty(&items)?);
        out.push('\n');
    } else {
        let mut table = Table::new(&[
            ("id", Align::Left),
            ("hub id", Align::Left),
            ("architecture", Align::Left),
            ("params", Align::Right),
            ("published", Align::Right),
            ("active", Align::Right),
            ("layers", Align::Right),
            ("max context", Align::Right),
        ]);
        for (entry, spec) in &selected {
            let counts = param_counts(spec);
            let active = if counts.active == counts.total {
                String::new()
            } else {
                params_short(counts.active)
            };
            table.row(vec![
                entry.id.clone(),
                entry.hub_id.clone(),
                architecture_name(spec),
                params_short(counts.total),
                entry.published_params.clone(),
                active,
                spec.num_layers.to_string(),
                thousands(spec.max_context),
            ]);
        }
        out.push_str(&table.render());
        out.push_str(&format!(
            "\n{} models. params: every stored weight, counted from the config (B = 10^9); \
             published: the publisher's figure; active: per token, for MoE models.\nUse an id with `headroom fit ID --device DEVICE`.\n",
            table.len()
        ));
    }
    crate::fit::write_stdout(&out)
}
