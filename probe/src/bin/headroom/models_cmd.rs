//! `headroom models [FILTER] [--json]`: the bundled model catalog, with parameter counts computed
//! from each model's shape (the same code `headroom fit` uses) beside the published ones.
//!
//! `headroom models --fits [DEVICE] | --probe REPORT`: what can this device run? Every catalog
//! model that fits, ranked by `headroom_core::ranking::rank_models`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::ValueEnum;
use headroom_core::{
    limits::MAX_DEVICES,
    model::ModelSpec,
    model_catalog::{self, CatalogModel},
    params::param_counts,
    ranking::{ArchitectureFilter, ModelFilter, RankRequest, RankSort, Ranking, rank_models},
    training::Mode,
};
use serde::Serialize;

use crate::fit::{
    args::{ContextArg, flag, parse_context},
    model_input::normalize,
    table::{Align, Table, gib, params_short, thousands, tokens_per_s},
};

/// What the memory is for, in a ranking.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RankMode {
    /// Generation only.
    Inference,
    /// LoRA (rank 16, attention and MLP projections) on a frozen base.
    Lora,
    /// LoRA on a 4-bit NF4 base.
    Qlora,
    /// Every weight trained (AdamW, bf16 mixed precision).
    Full,
}

/// The ranking's order.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SortArg {
    /// Largest model first.
    Size,
    /// Fastest decode first.
    Speed,
}

/// Arguments of `headroom models`.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("ranking").args(["fits", "probe"]).multiple(true)))]
pub struct ModelsArgs {
    /// Show only models whose id, Hub id or family contain every word of FILTER (case and
    /// punctuation ignored), e.g. `qwen`, `llama 3.1`, `moe`.
    #[arg(value_name = "FILTER")]
    filter: Vec<String>,

    /// What can DEVICE run? Every catalog model that fits, ranked, each with the best format
    /// that fits, its memory, decode and prefill speed and longest context. DEVICE is a catalog
    /// name (`headroom devices`); `--fits` alone means this machine (./headroom-probe.json if
    /// present, else a quick discovery; no GPU: the CPU and its RAM).
    #[arg(long, value_name = "DEVICE", num_args = 0..=1, default_missing_value = "")]
    fits: Option<String>,

    /// Rank for the device a `headroom probe` report measured (with --fits DEVICE: the catalog
    /// entry with the measured figures).
    #[arg(long, value_name = "REPORT.json")]
    probe: Option<PathBuf>,

    /// Ranking order.
    #[arg(long, value_enum, default_value_t = SortArg::Size, requires = "ranking")]
    sort: SortArg,

    /// What the memory is for (training modes use transformers' defaults: LoRA rank 16, AdamW).
    #[arg(long, value_enum, default_value_t = RankMode::Inference, requires = "ranking")]
    mode: RankMode,

    /// Context every model is estimated at (capped at each model's maximum): 8192, 32k, ...
    #[arg(long, short = 'c', value_name = "TOKENS", value_parser = parse_context,
          allow_negative_numbers = true, requires = "ranking")]
    context: Option<ContextArg>,

    /// Identical devices each model is split over.
    #[arg(long = "devices", value_name = "N", default_value_t = 1, allow_negative_numbers = true,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_DEVICES)),
          requires = "ranking")]
    device_count: u32,

    /// Keep models whose longest context that fits reaches TOKENS (32k, 131072, ...).
    #[arg(long, value_name = "TOKENS", value_parser = parse_context, allow_negative_numbers = true,
          requires = "ranking")]
    min_context: Option<ContextArg>,

    /// Keep models that decode at least this many tokens per second.
    #[arg(
        long,
        value_name = "RATE",
        allow_negative_numbers = true,
        requires = "ranking"
    )]
    min_tokens_per_s: Option<f64>,

    /// Pick formats that store their quantized matrices in at least BITS bits per weight
    /// (default 3: IQ3_XXS and up, no 1- or 2-bit files such as IQ1_S or Q2_K; 1.5 allows them).
    #[arg(
        long,
        value_name = "BITS",
        allow_negative_numbers = true,
        requires = "ranking"
    )]
    min_bits: Option<f64>,

    /// Keep one model family (`qwen3`, `llama 3.1`, `gemma`; a prefix keeps every family it
    /// starts).
    #[arg(long, value_name = "FAMILY", requires = "ranking")]
    family: Option<String>,

    /// Keep mixture-of-experts models only.
    #[arg(long, conflicts_with = "dense", requires = "ranking")]
    moe: bool,

    /// Keep dense models only.
    #[arg(long, requires = "ranking")]
    dense: bool,

    /// Print JSON instead of a table: the catalog as an array of entries (id, hub_id, family,
    /// published_params, ... with params_total, params_active, layers, max_context and
    /// architecture computed from its config); with --fits/--probe the ranking as one object
    /// {device, device_id, device_count, mode, context, sort, min_bits_per_weight, considered, fitting, models:
    /// [{id, hub_id, family, moe, params_total, params_active, format, runtime, verdict,
    /// total_bytes, usable_bytes, decode_tokens_per_s, prefill_tokens_per_s, context,
    /// longest_context, max_context, launch}], empty_reason, assumptions, this_machine}.
    #[arg(long)]
    json: bool,
}

/// `--fits` and `--probe` are the ranking's; the other ranking flags require one of them.
impl ModelsArgs {
    fn ranking(&self) -> bool {
        self.fits.is_some() || self.probe.is_some()
    }
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
    if args.ranking() {
        return rank(&args);
    }
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

/// The ranking in JSON: core's [`Ranking`] and how this machine was found.
#[derive(Serialize)]
struct RankingJson<'a> {
    #[serde(flatten)]
    ranking: &'a Ranking,
    #[serde(skip_serializing_if = "Option::is_none")]
    this_machine: Option<&'a str>,
}

/// `--min-context` and `--context` as tokens (`max` has no meaning across models).
fn tokens(arg: Option<ContextArg>, name: &str) -> anyhow::Result<Option<u64>> {
    match arg {
        None => Ok(None),
        Some(ContextArg::Tokens(t)) => Ok(Some(t)),
        Some(ContextArg::Max) => {
            bail!("{name} max: every model has its own maximum; give a token count such as 32k")
        }
    }
}

/// `headroom models --fits DEVICE | --probe REPORT`.
fn rank(args: &ModelsArgs) -> anyhow::Result<()> {
    // What was typed, before touching the system.
    let context = tokens(args.context, "--context")?;
    let min_context = tokens(args.min_context, "--min-context")?;
    if let Some(rate) = args.min_tokens_per_s
        && !(rate.is_finite() && rate >= 0.0)
    {
        bail!("--min-tokens-per-s {rate}: give a rate of 0 or more tokens per second, e.g. 20");
    }
    let mode: Mode = match args.mode {
        RankMode::Inference => "inference",
        RankMode::Lora => "lora",
        RankMode::Qlora => "qlora",
        RankMode::Full => "full",
    }
    .parse()
    .context("--mode")?;
    let named = args.fits.as_deref().filter(|d| !d.trim().is_empty());
    let Some(chosen) = crate::machine::choose(named, args.probe.as_deref(), "--fits")? else {
        bail!(
            "no GPU adapter found and this machine's RAM is unknown: name a device with --fits \
             DEVICE (`headroom devices` lists them) or give --probe REPORT.json"
        );
    };
    let request = RankRequest {
        device_count: args.device_count,
        mode,
        context: context.unwrap_or(headroom_core::ranking::DEFAULT_RANK_CONTEXT_TOKENS),
        sort: match args.sort {
            SortArg::Size => RankSort::Size,
            SortArg::Speed => RankSort::Speed,
        },
        filter: ModelFilter {
            family: args.family.clone(),
            architecture: if args.moe {
                Some(ArchitectureFilter::Moe)
            } else if args.dense {
                Some(ArchitectureFilter::Dense)
            } else {
                None
            },
            min_context,
            min_decode_tokens_per_s: args.min_tokens_per_s,
        },
        min_bits_per_weight: args
            .min_bits
            .unwrap_or(headroom_core::ranking::DEFAULT_MIN_BITS_PER_WEIGHT),
        ..RankRequest::new(chosen.device.clone())
    };
    let mut ranking = rank_models(&request).map_err(|err| {
        anyhow::anyhow!(
            "{}",
            err.worded(
                |s| rank_flag(s).to_owned(),
                |s, v| format!("{} {v}", rank_flag(s))
            )
        )
    })?;
    let words = args.filter.join(" ");
    if !words.trim().is_empty() {
        let before = ranking.models.len();
        ranking.models.retain(|m| {
            let haystack = normalize(&format!("{} {} {}", m.id, m.hub_id, m.family));
            words.split_whitespace().all(|w| {
                let w = normalize(w);
                haystack.contains(&w) || (w == "moe" && m.moe)
            })
        });
        if ranking.models.is_empty() && before > 0 {
            bail!(
                "no model that fits {} matches `{words}`; drop the words or see `headroom \
                 models --fits` for every model that fits",
                ranking.device
            );
        }
    }
    let mut out = String::new();
    if args.json {
        if let Some(how) = &chosen.this_machine {
            eprintln!("note: {how}");
        }
        out.push_str(&serde_json::to_string_pretty(&RankingJson {
            ranking: &ranking,
            this_machine: chosen.this_machine.as_deref(),
        })?);
        out.push('\n');
    } else {
        render_ranking(&mut out, &ranking, chosen.this_machine.as_deref());
    }
    crate::fit::write_stdout(&out)
}

/// The flag that sets `setting` in `headroom models --fits`.
fn rank_flag(setting: headroom_core::error::Setting) -> &'static str {
    use headroom_core::error::Setting;
    match setting {
        Setting::Family => "--family",
        Setting::Architecture => "--moe/--dense",
        Setting::MinContext => "--min-context",
        Setting::MinTokensPerS => "--min-tokens-per-s",
        Setting::Sort => "--sort",
        Setting::MinBits => "--min-bits",
        Setting::Device => "--fits",
        other => flag(other),
    }
}

/// The ranking as a table.
fn render_ranking(out: &mut String, r: &Ranking, this_machine: Option<&str>) {
    use std::fmt::Write;
    let count = if r.device_count > 1 {
        format!("{} × ", r.device_count)
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "What can {count}{} run? {} · {} tokens of context · formats of ≥ {} bits per weight · \
         sorted by {}",
        r.device,
        r.mode,
        thousands(r.context),
        r.min_bits_per_weight,
        r.sort
    );
    if let Some(how) = this_machine {
        let _ = writeln!(out, "{how}");
    }
    out.push('\n');
    if r.models.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            r.empty_reason
                .as_deref()
                .unwrap_or("no model is left after the filters")
        );
        return;
    }
    let mut table = Table::new(&[
        ("#", Align::Right),
        ("model", Align::Left),
        ("params", Align::Right),
        ("format", Align::Left),
        ("runtime", Align::Left),
        ("memory", Align::Right),
        ("usable", Align::Right),
        ("decode tok/s", Align::Right),
        ("prefill tok/s", Align::Right),
        ("longest context", Align::Right),
    ]);
    for (i, m) in r.models.iter().enumerate() {
        table.row(vec![
            (i + 1).to_string(),
            if m.moe {
                format!("{} (MoE)", m.id)
            } else {
                m.id.clone()
            },
            params_short(m.params_total),
            m.format.clone(),
            m.runtime.clone(),
            gib(m.total_bytes),
            gib(m.usable_bytes),
            tokens_per_s(m.decode_tokens_per_s),
            tokens_per_s(m.prefill_tokens_per_s),
            m.longest_context
                .map_or_else(|| "none".to_owned(), thousands),
        ]);
    }
    out.push_str(&table.render());
    let _ = writeln!(
        out,
        "\n{} of {} models fit ({} shown after filters). Memory per device, GiB = 2^30 bytes.",
        r.fitting,
        r.considered,
        r.models.len()
    );
    for a in &r.assumptions {
        let _ = writeln!(out, "  - {a}");
    }
    if let Some(first) = r.models.first() {
        let _ = writeln!(
            out,
            "launch the first ({}): {}\nOne model in detail: headroom fit ID --device DEVICE --quant FORMAT",
            first.launch.runtime,
            first
                .launch
                .command
                .lines()
                .collect::<Vec<_>>()
                .join(" && ")
        );
    }
}
