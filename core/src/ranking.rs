//! The inverse questions, answered from the catalogs with the same estimates as [`answer`]:
//!
//! * [`rank_models`] — *what can this device run?* Every catalog model with the best format
//!   that fits, its memory, decode and prefill speed and longest context, ranked by size or
//!   speed, filtered by family, MoE or dense, minimum context and minimum speed.
//! * [`devices_that_fit`] — *what does this model need?* The memory it needs, then per device
//!   class (Apple, NVIDIA consumer, NVIDIA datacenter, AMD, Intel) the smallest catalog device
//!   that holds it and how many of the class's largest it takes.
//! * [`practical_limits`] — for every catalog device, the largest catalog model that fits at
//!   4-bit and at 8-bit with a 4k context: the "practical limit" table, computed.
//!
//! Each request is resolved with [`crate::answer::request`] (the same defaults as the one
//! answer); formats are walked in [`WeightFormat::all`]'s order (highest precision first) and
//! the first that fits with room wins, as in [`crate::advice::best_of_rows`].
//!
//! [`answer`]: crate::answer::answer

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::{
    CoreError,
    advice::{longest_context_with, mode_accepts_format, runtime_for_format},
    answer::{ContextAsk, Question, default_format, default_kv_dtype, request},
    devices::{DeviceSpec, MemoryKind},
    error::{Fix, Setting},
    estimate::{Estimate, EstimateRequest, Verdict, estimate_with},
    facts::ModelFacts,
    gguf::LlamaFileType,
    kv_cache::KvDtype,
    launch::{LaunchCommand, ModelRef, launch_command},
    limits::MAX_DEVICES,
    model::ModelSpec,
    model_catalog::{self, CatalogModel},
    quant::WeightFormat,
    runtime::Runtime,
    training::Mode,
    units::GIB,
};

/// Context a ranking and the limits table use unless told otherwise: the 4k tokens of the
/// default question ([`ModelSpec::default_context`]) and of the published "practical limit"
/// tables, which assume a short chat.
pub const DEFAULT_RANK_CONTEXT_TOKENS: u64 = 4096;

/// The order of a ranking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RankSort {
    /// Largest model first (total parameters).
    #[default]
    Size,
    /// Fastest decode first.
    Speed,
}

impl RankSort {
    /// `size` or `speed`.
    pub fn name(self) -> &'static str {
        match self {
            RankSort::Size => "size",
            RankSort::Speed => "speed",
        }
    }
}

impl fmt::Display for RankSort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RankSort {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "size" | "params" | "parameters" => Ok(RankSort::Size),
            "speed" | "tokens" | "tokens/s" | "decode" => Ok(RankSort::Speed),
            _ => Err(CoreError::setting(
                Setting::Sort,
                s,
                "orders by size (largest model first) or speed (fastest decode first)",
                vec![
                    Fix::new(Setting::Sort, "size"),
                    Fix::new(Setting::Sort, "speed"),
                ],
            )),
        }
    }
}

/// Mixture-of-experts or dense models only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArchitectureFilter {
    /// Mixture-of-experts models.
    Moe,
    /// Dense models.
    Dense,
}

/// Which catalog models a ranking keeps.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ModelFilter {
    /// Keep models of this family (case and punctuation ignored: `qwen3`, `Llama 3.1`).
    pub family: Option<String>,
    /// Keep MoE or dense models only.
    pub architecture: Option<ArchitectureFilter>,
    /// Keep models whose longest context that fits reaches this many tokens.
    pub min_context: Option<u64>,
    /// Keep models that decode at least this fast (tokens/s per sequence).
    pub min_decode_tokens_per_s: Option<f64>,
}

/// A ranking's question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankRequest {
    /// The device.
    pub device: DeviceSpec,
    /// Identical devices the models are split over.
    pub device_count: u32,
    /// Inference or a kind of training.
    pub mode: Mode,
    /// Context in tokens (capped at each model's maximum).
    pub context: u64,
    /// The order.
    pub sort: RankSort,
    /// What to keep.
    pub filter: ModelFilter,
    /// The fewest bits per weight a format may store its quantized matrices in to be picked
    /// ([`WeightFormat::nominal_bits_per_weight`]): below about 3 bits the quality loss is large
    /// enough that a smaller model in a better format is usually the better choice.
    #[serde(default = "default_min_bits")]
    pub min_bits_per_weight: f64,
}

/// The default of [`RankRequest::min_bits_per_weight`]: 3 bits per weight keeps IQ3_XXS (3.06)
/// and the Q3_K files (3.44) and leaves out the 1- and 2-bit ones (IQ1_S, IQ2_XXS, Q2_K ...).
pub const DEFAULT_MIN_BITS_PER_WEIGHT: f64 = 3.0;

/// The most [`RankRequest::min_bits_per_weight`] may be (fp32).
pub const MAX_MIN_BITS_PER_WEIGHT: f64 = 32.0;

fn default_min_bits() -> f64 {
    DEFAULT_MIN_BITS_PER_WEIGHT
}

impl RankRequest {
    /// Inference at [`DEFAULT_RANK_CONTEXT_TOKENS`] on one `device`, largest model first, no
    /// filter.
    pub fn new(device: DeviceSpec) -> RankRequest {
        RankRequest {
            device,
            device_count: 1,
            mode: Mode::Inference,
            context: DEFAULT_RANK_CONTEXT_TOKENS,
            sort: RankSort::Size,
            filter: ModelFilter::default(),
            min_bits_per_weight: DEFAULT_MIN_BITS_PER_WEIGHT,
        }
    }
}

/// One model of a ranking: the best format that fits and what it gives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankedModel {
    /// Catalog id.
    pub id: String,
    /// Hugging Face id.
    pub hub_id: String,
    /// Family.
    pub family: String,
    /// Mixture of experts.
    pub moe: bool,
    /// Every stored parameter.
    pub params_total: u64,
    /// Parameters a token touches.
    pub params_active: u64,
    /// The best format that fits (highest precision, never above the checkpoint's own).
    pub format: String,
    /// The runtime that runs it.
    pub runtime: String,
    /// Fits or fits tightly.
    pub verdict: Verdict,
    /// Memory per device.
    pub total_bytes: u64,
    /// Usable memory of one device.
    pub usable_bytes: u64,
    /// Decode speed estimate, tokens/s per sequence.
    pub decode_tokens_per_s: f64,
    /// Prefill speed estimate, tokens/s.
    pub prefill_tokens_per_s: f64,
    /// The context the row is estimated at.
    pub context: u64,
    /// The longest context that fits in this format (up to the model's maximum).
    pub longest_context: Option<u64>,
    /// The model's maximum context.
    pub max_context: u64,
    /// The command that runs it.
    pub launch: LaunchCommand,
}

/// Every catalog model that fits one device, ranked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ranking {
    /// Device name.
    pub device: String,
    /// Device id (catalog id, `measured`, `cpu`, ...).
    pub device_id: String,
    /// Identical devices.
    pub device_count: u32,
    /// The mode, e.g. `inference`.
    pub mode: String,
    /// The context asked for.
    pub context: u64,
    /// The order.
    pub sort: RankSort,
    /// The fewest bits per weight a picked format has.
    pub min_bits_per_weight: f64,
    /// Models the family and architecture filters kept.
    pub considered: usize,
    /// Models that fit, before the minimum-context and minimum-speed filters.
    pub fitting: usize,
    /// The ranked models.
    pub models: Vec<RankedModel>,
    /// Why `models` is empty, in words (names no flag or control); `None` when it is not.
    pub empty_reason: Option<String>,
    /// The rules behind the ranking.
    pub assumptions: Vec<String>,
}

/// Normalized for matching: lower-case ASCII letters and digits.
fn normalize(text: &str) -> String {
    text.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Every family in the catalog, in catalog order, each once.
pub fn families() -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in model_catalog::entries() {
        if !out.contains(&e.family) {
            out.push(e.family.clone());
        }
    }
    out
}

/// Whether `entry` belongs to `family`: its family equals it (normalized), or, when no family
/// equals it, starts with it (`qwen` keeps Qwen2.5, Qwen3, ...).
fn family_matches(entry: &CatalogModel, wanted: &str, exact_exists: bool) -> bool {
    let have = normalize(&entry.family);
    if exact_exists {
        have == wanted
    } else {
        have.starts_with(wanted)
    }
}

/// The catalog models `filter`'s family and architecture keep, each with its shape.
fn selected_models(
    filter: &ModelFilter,
) -> Result<Vec<(&'static CatalogModel, ModelSpec)>, CoreError> {
    let family = filter.family.as_deref().map(normalize);
    let known = families();
    let exact = family
        .as_ref()
        .is_some_and(|f| known.iter().any(|k| normalize(k) == *f));
    if let (Some(raw), Some(f)) = (&filter.family, &family)
        && (f.is_empty() || !known.iter().any(|k| normalize(k).starts_with(f.as_str())))
    {
        return Err(CoreError::Unknown {
            kind: "family".into(),
            name: raw.clone(),
            hint: format!("the catalog's families are: {}", known.join(", ")),
        });
    }
    let mut out = Vec::new();
    for entry in model_catalog::entries() {
        if let Some(f) = &family
            && !family_matches(entry, f, exact)
        {
            continue;
        }
        let spec = entry.model()?;
        let keep = match filter.architecture {
            None => true,
            Some(ArchitectureFilter::Moe) => spec.moe.is_some(),
            Some(ArchitectureFilter::Dense) => spec.moe.is_none(),
        };
        if keep {
            out.push((entry, spec));
        }
    }
    if out.is_empty() {
        let arch = match filter.architecture {
            Some(ArchitectureFilter::Moe) => "mixture-of-experts",
            _ => "dense",
        };
        return Err(CoreError::setting(
            Setting::Architecture,
            arch,
            format!(
                "no {arch} model in the catalog{}",
                filter
                    .family
                    .as_ref()
                    .map(|f| format!(" of family {f}"))
                    .unwrap_or_default()
            ),
            vec![],
        ));
    }
    Ok(out)
}

/// The formats a model is tried in, highest precision first: those of [`WeightFormat::all`]
/// the mode can use whose weights are no larger than the checkpoint's own format's (a ranking
/// never up-casts) and store their quantized matrices in at least `min_bits` bits per weight
/// ([`WeightFormat::nominal_bits_per_weight`]), with the checkpoint's own
/// format first when the list lacks it (MXFP4).
fn candidate_formats(
    facts: &ModelFacts<'_>,
    own: &WeightFormat,
    mode: &Mode,
    min_bits: f64,
) -> Vec<WeightFormat> {
    let own_bytes = facts.weight_totals(own).weights_bytes;
    let mut out: Vec<WeightFormat> = Vec::new();
    let all = WeightFormat::all();
    if !all.contains(own) && mode_accepts_format(mode, own).is_ok() {
        out.push(own.clone());
    }
    out.extend(all.into_iter().filter(|f| {
        mode_accepts_format(mode, f).is_ok()
            && facts.weight_totals(f).weights_bytes <= own_bytes
            && f.nominal_bits_per_weight() >= min_bits
    }));
    out
}

/// The runtime and KV type a question names, if any: kept wherever they apply.
#[derive(Clone, Copy, Default)]
struct Asked {
    runtime: Option<Runtime>,
    kv_dtype: Option<KvDtype>,
}

/// `req` set to `format` as [`crate::answer::answer`] resolves a question asking for that
/// format: the asked runtime where it loads the format, else the usual one; the asked KV type
/// where that runtime keeps it, else its usual one. The model is not cloned.
fn set_format(req: &mut EstimateRequest, asked: Asked, format: &WeightFormat) {
    req.runtime = runtime_for_format(asked.runtime, &req.device, format, &req.mode);
    req.format = format.clone();
    req.kv_dtype = asked
        .kv_dtype
        .filter(|k| req.runtime.supports_kv_dtype(*k))
        .unwrap_or_else(|| default_kv_dtype(&req.model, req.runtime));
}

/// The first format of `formats` that fits `req` with room, else the first that fits tightly;
/// `req` is left set to it. When none fits, [`Fit::None`] holds the smallest estimate of them
/// all (what even the lightest format needs), if any could be made.
///
/// With `prune`, formats that cannot fit are not estimated: within one runtime and KV type every
/// part of an inference estimate but the weights is the same for every format, so whether it
/// fits is monotone in the weights — once a format of such a group does not fit at all, no
/// heavier one of the group does. Each group's lightest format is tried first, so a group whose
/// lightest does not fit is skipped whole (and the smallest need is among them). Not so in
/// training (a quantized base adds its own buffers) or when a checkpoint's own bytes replace one
/// format's weights: there every format is estimated.
fn best_fit(
    facts: &ModelFacts<'_>,
    req: &mut EstimateRequest,
    asked: Asked,
    formats: &[WeightFormat],
    prune: bool,
) -> Fit {
    let prune = prune && matches!(req.mode, Mode::Inference) && req.checkpoint.is_none();
    let weights = |f: &WeightFormat| facts.weight_totals(f).weights_bytes;
    // (runtime, KV type) → the lightest weights known not to fit.
    let mut dead: Vec<((Runtime, KvDtype), u64)> = Vec::new();
    let mut smallest: Option<Estimate> = None;
    if prune {
        let mut lightest: Vec<((Runtime, KvDtype), &WeightFormat)> = Vec::new();
        for f in formats {
            set_format(req, asked, f);
            let group = (req.runtime, req.kv_dtype);
            match lightest.iter_mut().find(|(g, _)| *g == group) {
                Some((_, l)) if weights(f) < weights(l) => *l = f,
                Some(_) => {}
                None => lightest.push((group, f)),
            }
        }
        for (group, f) in lightest {
            set_format(req, asked, f);
            if let Ok(e) = estimate_with(facts, req)
                && !e.fits
            {
                note(&mut dead, &mut smallest, &e, group, weights(f));
            }
        }
    }
    let mut tight: Option<(WeightFormat, Estimate)> = None;
    for f in formats {
        set_format(req, asked, f);
        let group = (req.runtime, req.kv_dtype);
        if prune && dead.iter().any(|(g, w)| *g == group && weights(f) >= *w) {
            continue;
        }
        let Ok(e) = estimate_with(facts, req) else {
            continue;
        };
        match e.verdict {
            Verdict::Fits => return Fit::Fits(e),
            Verdict::FitsTightly => {
                if tight.is_none() {
                    tight = Some((f.clone(), e));
                }
            }
            Verdict::NeedsOffload | Verdict::DoesNotFit => {
                note(&mut dead, &mut smallest, &e, group, weights(f))
            }
        }
    }
    let Some((f, e)) = tight else {
        return Fit::None(smallest);
    };
    set_format(req, asked, &f);
    Fit::Fits(e)
}

/// Records that `e` (of `group`, with `weights`) does not fit: no heavier format of the group
/// does, and it may be the smallest need.
fn note(
    dead: &mut Vec<((Runtime, KvDtype), u64)>,
    smallest: &mut Option<Estimate>,
    e: &Estimate,
    group: (Runtime, KvDtype),
    weights: u64,
) {
    match dead.iter_mut().find(|(g, _)| *g == group) {
        Some((_, known)) => *known = (*known).min(weights),
        None => dead.push((group, weights)),
    }
    if smallest
        .as_ref()
        .is_none_or(|s| e.per_device_bytes < s.per_device_bytes)
    {
        *smallest = Some(e.clone());
    }
}

/// What [`best_fit`] found.
enum Fit {
    /// The best format's estimate.
    Fits(Estimate),
    /// Nothing fits; the smallest estimate, if any.
    None(Option<Estimate>),
}

/// A question about `model` on `device` with the ranking's settings.
fn question(
    model: &ModelSpec,
    device: &DeviceSpec,
    device_count: u32,
    mode: &Mode,
    context: u64,
) -> Question {
    Question {
        context: ContextAsk::Tokens(context.min(model.max_context.max(1))),
        mode: mode.clone(),
        device_count,
        ..Question::new(model.clone(), device.clone())
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / GIB as f64)
}

/// Every catalog model that fits `r.device`, ranked. Unknown families, filters that leave no
/// model, and minimum filters no fitting model reaches are errors naming the setting; when no
/// model fits at all the ranking is empty and [`Ranking::empty_reason`] says why.
pub fn rank_models(r: &RankRequest) -> Result<Ranking, CoreError> {
    rank_models_with(r, true)
}

/// [`rank_models`], with or without skipping formats that cannot fit ([`best_fit`]).
fn rank_models_with(r: &RankRequest, prune: bool) -> Result<Ranking, CoreError> {
    if r.device_count == 0 || r.device_count > MAX_DEVICES {
        return Err(CoreError::setting(
            Setting::DeviceCount,
            r.device_count,
            format!("must be between 1 and {MAX_DEVICES} identical devices"),
            vec![],
        ));
    }
    let min_bits = r.min_bits_per_weight;
    if !(min_bits.is_finite() && min_bits > 0.0 && min_bits <= MAX_MIN_BITS_PER_WEIGHT) {
        return Err(CoreError::setting(
            Setting::MinBits,
            min_bits,
            format!(
                "must be a number of bits per weight above 0 and at most {MAX_MIN_BITS_PER_WEIGHT}"
            ),
            vec![Fix::new(
                Setting::MinBits,
                DEFAULT_MIN_BITS_PER_WEIGHT.to_string(),
            )],
        ));
    }
    let selected = selected_models(&r.filter)?;
    let considered = selected.len();
    let mut fitting: Vec<RankedModel> = Vec::new();
    let mut smallest: Option<(String, Estimate)> = None;
    for (entry, spec) in &selected {
        let q = question(spec, &r.device, r.device_count, &r.mode, r.context);
        let mut req = request(&q)?;
        let facts_model = req.model.clone();
        let facts = ModelFacts::new(&facts_model);
        let own = default_format(&facts_model, &r.mode);
        let formats = candidate_formats(&facts, &own, &r.mode, r.min_bits_per_weight);
        let e = match best_fit(&facts, &mut req, Asked::default(), &formats, prune) {
            Fit::Fits(e) => e,
            Fit::None(need) => {
                if let Some(need) = need
                    && smallest
                        .as_ref()
                        .is_none_or(|(_, s)| need.per_device_bytes < s.per_device_bytes)
                {
                    smallest = Some((entry.id.clone(), need));
                }
                continue;
            }
        };
        let longest = longest_context_with(&facts, &req)?;
        fitting.push(RankedModel {
            id: entry.id.clone(),
            hub_id: entry.hub_id.clone(),
            family: entry.family.clone(),
            moe: spec.moe.is_some(),
            params_total: e.params_total,
            params_active: e.params_active,
            format: e.quant.clone(),
            runtime: e.runtime.clone(),
            verdict: e.verdict,
            total_bytes: e.per_device_bytes,
            usable_bytes: e.usable_bytes,
            decode_tokens_per_s: e.decode_tokens_per_s,
            prefill_tokens_per_s: e.prefill_tokens_per_s,
            context: e.context,
            longest_context: longest,
            max_context: spec.max_context,
            launch: launch_command(&req, &ModelRef::for_model_name(&entry.id)),
        });
    }
    let fitting_count = fitting.len();
    let usable = crate::usable_memory::usable_memory(
        &r.device,
        crate::answer::default_runtime(
            &r.device,
            &WeightFormat::Gguf(LlamaFileType::Q4_K_M),
            &r.mode,
        ),
        None,
    )
    .usable_bytes;
    let empty_reason = if fitting.is_empty() {
        Some(match &smallest {
            Some((id, need)) => format!(
                "nothing fits {} at {} tokens of context{} in formats of at least {} bits per \
                 weight; the smallest, {id} in {}, needs {} ({} usable)",
                r.device.name,
                r.context,
                if matches!(r.mode, Mode::Inference) {
                    String::new()
                } else {
                    format!(" for {}", r.mode.name())
                },
                min_bits,
                need.quant,
                gib(need.per_device_bytes),
                gib(need.usable_bytes)
            ),
            None => format!(
                "no catalog model can be estimated on {} for {} ({} usable)",
                r.device.name,
                r.mode.name(),
                gib(usable)
            ),
        })
    } else {
        None
    };
    let mut models: Vec<RankedModel> = fitting;
    if let Some(min) = r.filter.min_context {
        let best = models.iter().filter_map(|m| m.longest_context).max();
        models.retain(|m| m.longest_context.is_some_and(|c| c >= min));
        if models.is_empty() && fitting_count > 0 {
            return Err(CoreError::setting(
                Setting::MinContext,
                min,
                format!(
                    "no model that fits {} reaches it; the longest context that fits is {} \
                     tokens",
                    r.device.name,
                    best.unwrap_or(0)
                ),
                best.map(|b| vec![Fix::new(Setting::MinContext, b.to_string())])
                    .unwrap_or_default(),
            ));
        }
    }
    if let Some(min) = r.filter.min_decode_tokens_per_s {
        let best = models
            .iter()
            .map(|m| m.decode_tokens_per_s)
            .fold(0.0f64, f64::max);
        models.retain(|m| m.decode_tokens_per_s >= min);
        if models.is_empty() && fitting_count > 0 {
            return Err(CoreError::setting(
                Setting::MinTokensPerS,
                min,
                if best > 0.0 {
                    format!(
                        "no model that fits {} decodes that fast; the fastest does {best:.1} \
                         tokens/s",
                        r.device.name
                    )
                } else {
                    format!(
                        "no decode speed is known for {} (its bandwidth is not known; a probe \
                         report measures it)",
                        r.device.name
                    )
                },
                vec![],
            ));
        }
    }
    match r.sort {
        RankSort::Size => models.sort_by(|a, b| {
            b.params_total
                .cmp(&a.params_total)
                .then_with(|| a.id.cmp(&b.id))
        }),
        RankSort::Speed => models.sort_by(|a, b| {
            b.decode_tokens_per_s
                .total_cmp(&a.decode_tokens_per_s)
                .then_with(|| a.id.cmp(&b.id))
        }),
    }
    Ok(Ranking {
        device: r.device.name.clone(),
        device_id: r.device.id.clone(),
        device_count: r.device_count,
        mode: r.mode.to_string(),
        context: r.context,
        sort: r.sort,
        min_bits_per_weight: min_bits,
        considered,
        fitting: fitting_count,
        models,
        empty_reason,
        assumptions: vec![
            format!(
                "each model at {} tokens of context (or its maximum if smaller), batch 1, in \
                 the highest-precision format that fits with ≤ 90% of usable memory (else the \
                 first that fits tightly), never above the checkpoint's own precision, each \
                 format in its usual runtime",
                r.context
            ),
            format!(
                "formats storing their quantized matrices in at least {min_bits} bits per \
                 weight (Q2_K: 2.6, IQ3_XXS: 3.1, Q4_K: 4.5); below about 3 the quality loss \
                 makes a smaller model in a better format the usual choice"
            ),
            "longest context: the longest that fits in that format, up to the model's maximum"
                .to_string(),
        ],
    })
}

/// A class of devices, as buyers compare them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceClass {
    /// Apple silicon Macs.
    Apple,
    /// NVIDIA GeForce cards.
    NvidiaConsumer,
    /// NVIDIA datacenter GPUs (A100, H100, H200, B200, L4, L40S).
    NvidiaDatacenter,
    /// AMD Radeon and Instinct.
    Amd,
    /// Intel Arc.
    Intel,
}

impl DeviceClass {
    /// Every class, in display order.
    pub const ALL: [DeviceClass; 5] = [
        DeviceClass::Apple,
        DeviceClass::NvidiaConsumer,
        DeviceClass::NvidiaDatacenter,
        DeviceClass::Amd,
        DeviceClass::Intel,
    ];

    /// `Apple`, `NVIDIA consumer`, ...
    pub fn label(self) -> &'static str {
        match self {
            DeviceClass::Apple => "Apple",
            DeviceClass::NvidiaConsumer => "NVIDIA consumer",
            DeviceClass::NvidiaDatacenter => "NVIDIA datacenter",
            DeviceClass::Amd => "AMD",
            DeviceClass::Intel => "Intel",
        }
    }

    /// The class of a catalog device; `None` for devices of no class (measured ones).
    pub fn of(device: &DeviceSpec) -> Option<DeviceClass> {
        match device.vendor.to_ascii_lowercase().as_str() {
            "apple" => Some(DeviceClass::Apple),
            "nvidia" if device.name.contains("GeForce") || device.id.starts_with("rtx-") => {
                Some(DeviceClass::NvidiaConsumer)
            }
            "nvidia" => Some(DeviceClass::NvidiaDatacenter),
            "amd" => Some(DeviceClass::Amd),
            "intel" => Some(DeviceClass::Intel),
            _ => None,
        }
    }
}

/// One device (or several identical ones) that holds the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceFit {
    /// Catalog id.
    pub device_id: String,
    /// Name.
    pub device: String,
    /// How many of it.
    pub device_count: u32,
    /// Memory of one, bytes.
    pub memory_bytes: u64,
    /// The format.
    pub format: String,
    /// The runtime.
    pub runtime: String,
    /// Fits or fits tightly.
    pub verdict: Verdict,
    /// Memory per device.
    pub per_device_bytes: u64,
    /// Usable memory of one device.
    pub usable_bytes: u64,
    /// Decode speed estimate, tokens/s per sequence.
    pub decode_tokens_per_s: f64,
    /// The command that runs it.
    pub launch: LaunchCommand,
}

/// One class's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassFit {
    /// The class.
    pub class: DeviceClass,
    /// Its label, e.g. `NVIDIA consumer`.
    pub label: String,
    /// The device of the class with the least memory that holds the model on its own.
    pub smallest: Option<DeviceFit>,
    /// How many of the class's largest device hold it in the question's format (discrete GPUs;
    /// Macs are not split).
    pub largest: Option<DeviceFit>,
    /// Why neither exists, in words.
    pub none_reason: Option<String>,
}

/// What one model needs, and which catalog devices hold it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceNeeds {
    /// Model name.
    pub model: String,
    /// The mode.
    pub mode: String,
    /// Context in tokens.
    pub context: u64,
    /// The question's format (asked, or the checkpoint's own).
    pub format: String,
    /// True when the format was asked: every device is tried in it; else each device gets the
    /// best format that fits it.
    pub format_fixed: bool,
    /// Weights in that format.
    pub weights_bytes: u64,
    /// Least total memory over the catalog's engines in that format (one device).
    pub min_total_bytes: u64,
    /// Most total memory over the catalog's engines in that format (one device).
    pub max_total_bytes: u64,
    /// Per device class.
    pub classes: Vec<ClassFit>,
    /// The rules behind the answer.
    pub assumptions: Vec<String>,
}

fn device_fit(
    e: &Estimate,
    req: &EstimateRequest,
    model: &ModelRef,
    memory_bytes: u64,
) -> DeviceFit {
    DeviceFit {
        device_id: req.device.id.clone(),
        device: req.device.name.clone(),
        device_count: req.device_count,
        memory_bytes,
        format: e.quant.clone(),
        runtime: e.runtime.clone(),
        verdict: e.verdict,
        per_device_bytes: e.per_device_bytes,
        usable_bytes: e.usable_bytes,
        decode_tokens_per_s: e.decode_tokens_per_s,
        launch: launch_command(req, model),
    }
}

/// What `q.model` needs with `q`'s settings, and per device class of `devices` the smallest
/// device that holds it and how many of the class's largest. `q.device` and `q.device_count`
/// are ignored; `q.format` fixes the format, else each device gets the best format that fits.
pub fn devices_that_fit(q: &Question, devices: &[DeviceSpec]) -> Result<DeviceNeeds, CoreError> {
    let Some(first) = devices.first() else {
        return Err(CoreError::Unsupported("no devices to try".into()));
    };
    let model_ref = ModelRef::for_model_name(&q.model.name);
    let probe_q = Question {
        device: first.clone(),
        device_count: 1,
        ..q.clone()
    };
    let base = request(&probe_q)?;
    let shaped = base.model.clone();
    let facts = ModelFacts::new(&shaped);
    let asked = q.format.clone();
    let asked_settings = Asked {
        runtime: q.runtime,
        kv_dtype: q.kv_dtype,
    };
    let own = asked
        .clone()
        .unwrap_or_else(|| default_format(&shaped, &q.mode));
    let formats = match &asked {
        Some(f) => vec![f.clone()],
        None => candidate_formats(&facts, &own, &q.mode, DEFAULT_MIN_BITS_PER_WEIGHT),
    };
    let weights_bytes = facts.weight_totals(&own).weights_bytes;
    let (mut min_total, mut max_total) = (u64::MAX, 0u64);
    let mut classes = Vec::new();
    for class in DeviceClass::ALL {
        let mut members: Vec<&DeviceSpec> = devices
            .iter()
            .filter(|d| DeviceClass::of(d) == Some(class))
            .collect();
        if members.is_empty() {
            continue;
        }
        // Least memory first; among equal memory the entry-level part (least compute).
        members.sort_by(|a, b| {
            a.memory_bytes
                .cmp(&b.memory_bytes)
                .then_with(|| a.fp16_flops.total_cmp(&b.fp16_flops))
        });
        let mut smallest = None;
        for d in &members {
            let mut req = base.clone();
            req.device = (*d).clone();
            req.device_count = 1;
            set_format(&mut req, asked_settings, &own);
            if let Ok(e) = estimate_with(&facts, &req) {
                min_total = min_total.min(e.per_device_bytes);
                max_total = max_total.max(e.per_device_bytes);
            }
            if smallest.is_none()
                && let Fit::Fits(e) = best_fit(&facts, &mut req, asked_settings, &formats, true)
            {
                smallest = Some(device_fit(&e, &req, &model_ref, d.memory_bytes));
            }
        }
        let largest = members
            .iter()
            .rev()
            .find(|d| d.memory_kind == MemoryKind::Discrete)
            .and_then(|d| {
                let mut req = base.clone();
                req.device = (*d).clone();
                req.device_count = 1;
                set_format(&mut req, asked_settings, &own);
                let e = estimate_with(&facts, &req).ok()?;
                let n = if e.fits { 1 } else { e.devices_needed? };
                req.device_count = n;
                let e = estimate_with(&facts, &req).ok()?;
                e.fits
                    .then(|| device_fit(&e, &req, &model_ref, d.memory_bytes))
            });
        let none_reason = (smallest.is_none() && largest.is_none()).then(|| {
            let biggest = members.last().map(|d| d.name.as_str()).unwrap_or("none");
            if members.iter().all(|d| d.memory_kind == MemoryKind::Unified) {
                format!(
                    "no {} device holds it, not even the {biggest} (Macs are not split)",
                    class.label()
                )
            } else {
                format!(
                    "no {} device holds it, nor up to {MAX_DEVICES} of the {biggest}",
                    class.label()
                )
            }
        });
        classes.push(ClassFit {
            class,
            label: class.label().to_string(),
            smallest,
            largest,
            none_reason,
        });
    }
    Ok(DeviceNeeds {
        model: shaped.name.clone(),
        mode: q.mode.to_string(),
        context: base.context_tokens(),
        format: own.to_string(),
        format_fixed: asked.is_some(),
        weights_bytes,
        min_total_bytes: if min_total == u64::MAX { 0 } else { min_total },
        max_total_bytes: max_total,
        classes,
        assumptions: vec![
            "smallest: the device of the class with the least memory that holds the model on \
             its own (among equal memory, the one with the least compute)"
                .to_string(),
            "largest: how many of the class's largest discrete GPU hold the model in the \
             question's format, split evenly (tensor/pipeline parallel)"
                .to_string(),
            if asked.is_some() {
                "every device tried in the asked format".to_string()
            } else {
                "smallest devices: the highest-precision format that fits each, never above the \
                 checkpoint's own"
                    .to_string()
            },
        ],
    })
}

/// The 4-bit format of the limits table: llama.cpp's Q4_K_M, the usual download, runnable on
/// every device of the catalog.
pub const LIMITS_4BIT: WeightFormat = WeightFormat::Gguf(LlamaFileType::Q4_K_M);
/// The 8-bit format of the limits table: llama.cpp's Q8_0.
pub const LIMITS_8BIT: WeightFormat = WeightFormat::Gguf(LlamaFileType::Q8_0);

/// The largest model that fits one device in one format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LimitModel {
    /// Catalog id.
    pub id: String,
    /// Every stored parameter.
    pub params_total: u64,
    /// Memory it takes.
    pub total_bytes: u64,
    /// Decode speed estimate, tokens/s.
    pub decode_tokens_per_s: f64,
}

/// One row of the practical-limits table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceLimit {
    /// Catalog id.
    pub device_id: String,
    /// Name.
    pub device: String,
    /// Memory, bytes.
    pub memory_bytes: u64,
    /// Usable memory for llama.cpp, bytes.
    pub usable_bytes: u64,
    /// The largest catalog model that fits at 4-bit ([`LIMITS_4BIT`]).
    pub largest_4bit: Option<LimitModel>,
    /// The largest catalog model that fits at 8-bit ([`LIMITS_8BIT`]).
    pub largest_8bit: Option<LimitModel>,
}

/// For every device of `devices`, the largest catalog model (by parameters) that fits at 4-bit
/// and at 8-bit with a [`DEFAULT_RANK_CONTEXT_TOKENS`] context, batch 1, in llama.cpp.
pub fn practical_limits(devices: &[DeviceSpec]) -> Result<Vec<DeviceLimit>, CoreError> {
    let Some(first) = devices.first() else {
        return Ok(Vec::new());
    };
    let mut models: Vec<ModelSpec> = model_catalog::entries()
        .iter()
        .map(CatalogModel::model)
        .collect::<Result<_, _>>()?;
    let facts_models = models.clone();
    let facts: Vec<ModelFacts<'_>> = facts_models.iter().map(ModelFacts::new).collect();
    let mut order: Vec<usize> = (0..models.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(facts[i].counts().total));
    let mut requests: Vec<[EstimateRequest; 2]> = Vec::with_capacity(models.len());
    for m in models.drain(..) {
        let context = DEFAULT_RANK_CONTEXT_TOKENS.min(m.max_context.max(1));
        let make = |format: WeightFormat| {
            let mut r = EstimateRequest::new(m.clone(), format, first.clone());
            r.context = Some(context);
            r
        };
        requests.push([make(LIMITS_4BIT), make(LIMITS_8BIT)]);
    }
    let mut out = Vec::with_capacity(devices.len());
    for d in devices {
        let mut largest: [Option<LimitModel>; 2] = [None, None];
        for (slot, best) in largest.iter_mut().enumerate() {
            for &i in &order {
                let req = &mut requests[i][slot];
                req.device = d.clone();
                req.runtime = Runtime::LlamaCpp;
                let Ok(e) = estimate_with(&facts[i], req) else {
                    continue;
                };
                if e.fits {
                    *best = Some(LimitModel {
                        id: model_catalog::entries()[i].id.clone(),
                        params_total: e.params_total,
                        total_bytes: e.per_device_bytes,
                        decode_tokens_per_s: e.decode_tokens_per_s,
                    });
                    break;
                }
            }
        }
        let [largest_4bit, largest_8bit] = largest;
        out.push(DeviceLimit {
            device_id: d.id.clone(),
            device: d.name.clone(),
            memory_bytes: d.memory_bytes,
            usable_bytes: crate::usable_memory::usable_memory(d, Runtime::LlamaCpp, None)
                .usable_bytes,
            largest_4bit,
            largest_8bit,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices;

    fn device(name: &str) -> DeviceSpec {
        devices::find(name).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn bigger_devices_run_more_models() {
        let small =
            rank_models(&RankRequest::new(device("rtx-4060"))).unwrap_or_else(|e| panic!("{e}"));
        let big = rank_models(&RankRequest::new(device("h200"))).unwrap_or_else(|e| panic!("{e}"));
        assert!(!small.models.is_empty());
        assert!(
            big.models.len() > small.models.len(),
            "{} vs {}",
            big.models.len(),
            small.models.len()
        );
        for m in small.models.iter().chain(&big.models) {
            assert!(m.verdict.fits(), "{}: {:?}", m.id, m.verdict);
            assert!(m.total_bytes <= m.usable_bytes, "{}", m.id);
            assert!(!m.launch.command.is_empty());
        }
        // Largest first.
        assert!(
            small
                .models
                .windows(2)
                .all(|w| w[0].params_total >= w[1].params_total)
        );
    }

    #[test]
    fn skipping_formats_that_cannot_fit_changes_nothing() {
        for name in [
            "rtx-4060",
            "m1-7c-8gb",
            "rtx-4090",
            "m2-max-38c-96gb",
            "h100-sxm",
        ] {
            for context in [4096, 65_536] {
                let mut r = RankRequest::new(device(name));
                r.context = context;
                let pruned = rank_models_with(&r, true).unwrap_or_else(|e| panic!("{e}"));
                let every = rank_models_with(&r, false).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(pruned, every, "{name} at {context}");
            }
        }
        let mut tiny = device("rtx-4060");
        tiny.memory_bytes = GIB / 8;
        let r = RankRequest::new(tiny);
        assert_eq!(
            rank_models_with(&r, true).map(|x| x.empty_reason).ok(),
            rank_models_with(&r, false).map(|x| x.empty_reason).ok()
        );
    }

    #[test]
    fn ranking_rows_agree_with_the_one_answer() {
        let d = device("rtx-4090");
        let ranking = rank_models(&RankRequest::new(d.clone())).unwrap_or_else(|e| panic!("{e}"));
        let row = ranking
            .models
            .iter()
            .find(|m| m.id == "llama-3.1-8b")
            .unwrap_or_else(|| panic!("llama-3.1-8b fits a 4090"));
        let q = Question {
            format: Some(row.format.parse().unwrap_or_else(|e| panic!("{e}"))),
            context: ContextAsk::Tokens(4096),
            ..Question::new(
                model_catalog::find("llama-3.1-8b").unwrap_or_else(|e| panic!("{e}")),
                d,
            )
        };
        let a = crate::answer::answer(&q).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.estimate.per_device_bytes, row.total_bytes);
        assert_eq!(a.estimate.decode_tokens_per_s, row.decode_tokens_per_s);
        assert_eq!(a.longest_context, row.longest_context);
        assert_eq!(
            a.launch.as_ref().map(|l| &l.command),
            Some(&row.launch.command)
        );
        // Never above the checkpoint's own precision.
        assert_eq!(row.format, "bf16");
    }

    #[test]
    fn speed_order_and_filters() {
        let mut r = RankRequest::new(device("m3-max-40c-128gb"));
        r.sort = RankSort::Speed;
        r.filter.architecture = Some(ArchitectureFilter::Moe);
        r.filter.family = Some("qwen3".into());
        let ranking = rank_models(&r).unwrap_or_else(|e| panic!("{e}"));
        assert!(!ranking.models.is_empty());
        assert!(ranking.models.iter().all(|m| m.moe && m.family == "Qwen3"));
        assert!(
            ranking
                .models
                .windows(2)
                .all(|w| w[0].decode_tokens_per_s >= w[1].decode_tokens_per_s)
        );
        r.filter.min_context = Some(32_768);
        let long = rank_models(&r).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            long.models
                .iter()
                .all(|m| m.longest_context.unwrap_or(0) >= 32_768)
        );
    }

    #[test]
    fn bad_filters_name_the_setting() {
        let mut r = RankRequest::new(device("rtx-4090"));
        r.filter.family = Some("nosuchfamily".into());
        let err = rank_models(&r).map(|_| ()).unwrap_err();
        assert!(
            err.to_string().contains("unknown family `nosuchfamily`"),
            "{err}"
        );
        let mut r = RankRequest::new(device("rtx-4090"));
        r.filter.min_decode_tokens_per_s = Some(1e9);
        let err = rank_models(&r).map(|_| ()).unwrap_err();
        assert!(
            matches!(
                err,
                CoreError::Setting {
                    setting: Setting::MinTokensPerS,
                    ..
                }
            ),
            "{err}"
        );
        assert!("fastest".parse::<RankSort>().is_err());
    }

    #[test]
    fn the_bits_floor_keeps_1_and_2_bit_files_out_unless_lowered() {
        // A 12 GB card reaches 1- and 2-bit files of 27-47B models without a floor.
        let mut r = RankRequest::new(device("rtx-3060-12gb"));
        let floor = |ranking: &Ranking| {
            ranking
                .models
                .iter()
                .map(|m| {
                    m.format
                        .parse::<WeightFormat>()
                        .map(|f| f.nominal_bits_per_weight())
                        .unwrap_or_else(|e| panic!("{}: {e}", m.format))
                })
                .fold(f64::INFINITY, f64::min)
        };
        let default = rank_models(&r).unwrap_or_else(|e| panic!("{e}"));
        assert!(floor(&default) >= 3.0, "{}", floor(&default));
        r.min_bits_per_weight = 1.5;
        let any = rank_models(&r).unwrap_or_else(|e| panic!("{e}"));
        assert!(floor(&any) < 2.0, "{}", floor(&any));
        // Lowering the floor only adds models or lowers formats: never fewer models.
        assert!(any.fitting >= default.fitting);
        r.min_bits_per_weight = 4.0;
        let four = rank_models(&r).unwrap_or_else(|e| panic!("{e}"));
        assert!(floor(&four) >= 4.0, "{}", floor(&four));
        assert!(four.fitting <= default.fitting);
        for bad in [0.0, -1.0, 33.0, f64::NAN] {
            r.min_bits_per_weight = bad;
            let err = rank_models(&r).map(|_| ()).unwrap_err();
            assert!(
                matches!(
                    err,
                    CoreError::Setting {
                        setting: Setting::MinBits,
                        ..
                    }
                ),
                "{err}"
            );
        }
    }

    #[test]
    fn an_empty_ranking_says_what_the_smallest_needs() {
        let mut d = device("rtx-4060");
        d.memory_bytes = GIB / 8;
        d.name = "tiny GPU".into();
        let ranking = rank_models(&RankRequest::new(d)).unwrap_or_else(|e| panic!("{e}"));
        assert!(ranking.models.is_empty());
        let why = ranking.empty_reason.unwrap_or_default();
        assert!(
            why.starts_with(
                "nothing fits tiny GPU at 4096 tokens of context in formats of at least 3 bits \
                 per weight; the smallest, "
            ),
            "{why}"
        );
        assert!(why.contains(" needs "), "{why}");
    }

    #[test]
    fn devices_that_fit_a_big_model() {
        let q = Question::new(
            model_catalog::find("llama-3.1-70b").unwrap_or_else(|e| panic!("{e}")),
            device("rtx-4090"),
        );
        let needs = devices_that_fit(&q, devices::catalog()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(needs.format, "bf16");
        assert!(needs.weights_bytes > 130 * GIB);
        let class = |c: DeviceClass| {
            needs
                .classes
                .iter()
                .find(|x| x.class == c)
                .unwrap_or_else(|| panic!("{c:?}"))
        };
        let dc = class(DeviceClass::NvidiaDatacenter);
        let largest = dc
            .largest
            .as_ref()
            .unwrap_or_else(|| panic!("datacenter split"));
        assert!(largest.device_count >= 1 && largest.format == "bf16");
        let consumer = class(DeviceClass::NvidiaConsumer);
        let smallest = consumer
            .smallest
            .as_ref()
            .unwrap_or_else(|| panic!("some quant on some card"));
        assert!(smallest.verdict.fits());
        let many = consumer
            .largest
            .as_ref()
            .unwrap_or_else(|| panic!("several 5090s"));
        assert!(many.device_count >= 5, "{}", many.device_count);
    }

    #[test]
    fn limits_grow_with_memory() {
        let devs = [device("m1-7c-8gb"), device("m2-ultra-76c-192gb")];
        let limits = practical_limits(&devs).unwrap_or_else(|e| panic!("{e}"));
        let p = |l: &DeviceLimit, four: bool| {
            let m = if four {
                &l.largest_4bit
            } else {
                &l.largest_8bit
            };
            m.as_ref().map_or(0, |m| m.params_total)
        };
        assert!(p(&limits[0], true) > 0);
        assert!(p(&limits[1], true) > p(&limits[0], true));
        assert!(p(&limits[0], true) >= p(&limits[0], false));
    }
}
