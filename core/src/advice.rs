//! Advice: the longest context that fits, the best format that fits, training settings that fit,
//! and the speeds with their assumptions.
//!
//! Every answer is found by running [`estimate`] itself (binary search over context, batch,
//! sequence length; a walk down the format list), so advice and estimate can never disagree.

use serde::{Deserialize, Serialize};

use crate::{
    CoreError,
    devices::DeviceSpec,
    estimate::{Estimate, EstimateRequest, Verdict, estimate_with},
    facts::ModelFacts,
    limits::{MAX_BATCH, MAX_CONTEXT_TOKENS},
    quant::WeightFormat,
    runtime::Runtime,
    training::{LoraSettings, Mode},
};

/// LoRA ranks tried by [`training_advice`], largest first.
pub const LORA_RANKS: &[u64] = &[256, 128, 64, 32, 16, 8, 4];

/// LoRA target sets tried by [`training_advice`], most capable first.
pub const LORA_TARGET_SETS: &[&[&str]] = &[
    &["q", "k", "v", "o", "gate", "up", "down"],
    &["q", "k", "v", "o"],
    &["q", "v"],
];

/// Largest batch [`training_advice`] searches up to.
pub const MAX_ADVISED_BATCH: u64 = 1024;

/// A format that fits and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FormatChoice {
    /// Format name, e.g. `Q6_K`.
    pub format: String,
    /// The runtime that runs it (the request's, or the usual one where the request's cannot).
    pub runtime: String,
    /// Its verdict.
    pub verdict: Verdict,
    /// Its total bytes.
    pub total_bytes: u64,
    /// Its decode speed estimate.
    pub decode_tokens_per_s: f64,
}

/// Training settings that fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingAdvice {
    /// Whether the request fits as given.
    pub fits_as_given: bool,
    /// Whether turning on gradient checkpointing makes the given setting fit (when it does not
    /// fit as given).
    pub fits_with_checkpointing: bool,
    /// Largest batch at the given sequence length (with checkpointing if that is needed).
    pub max_batch: Option<u64>,
    /// Longest sequence at batch 1 (with checkpointing if that is needed).
    pub max_sequence_tokens: Option<u64>,
    /// Largest LoRA rank from [`LORA_RANKS`] that fits (LoRA/QLoRA only).
    pub max_lora_rank: Option<u64>,
    /// Widest LoRA target set from [`LORA_TARGET_SETS`] that fits at the given rank.
    pub lora_targets: Option<Vec<String>>,
    /// Largest `k` such that LoRA on the last `k` decoder layers only (peft's
    /// `layers_to_transform`) fits with rank and targets as given; searched only when the
    /// request does not fit as given (LoRA/QLoRA only). `k` is below the layer count.
    #[serde(default)]
    pub max_lora_last_layers: Option<u64>,
    /// Whether [`TrainingAdvice::max_lora_last_layers`] needs gradient checkpointing (it is
    /// searched without first, as checkpointing keeps every layer's input anyway).
    #[serde(default)]
    pub lora_last_layers_need_checkpointing: bool,
    /// The settings that fit, in words, each with its trade-off; empty when the request fits
    /// as given.
    #[serde(default)]
    pub suggestions: Vec<String>,
}

/// Largest `x` in `lo..=hi` with `fits(x)`, assuming `fits` is monotone (true then false).
/// `Ok(None)` when `fits(lo)` is false.
fn search_max(
    lo: u64,
    hi: u64,
    mut fits: impl FnMut(u64) -> Result<bool, CoreError>,
) -> Result<Option<u64>, CoreError> {
    if lo > hi || !fits(lo)? {
        return Ok(None);
    }
    if fits(hi)? {
        return Ok(Some(hi));
    }
    let (mut good, mut bad) = (lo, hi);
    while bad - good > 1 {
        let mid = good + (bad - good) / 2;
        if fits(mid)? {
            good = mid;
        } else {
            bad = mid;
        }
    }
    Ok(Some(good))
}

fn fits(facts: &ModelFacts<'_>, req: &EstimateRequest) -> Result<bool, CoreError> {
    Ok(estimate_with(facts, req)?.fits)
}

/// The longest context that fits for `req` (up to the model's maximum).
pub fn longest_context(req: &EstimateRequest) -> Result<Option<u64>, CoreError> {
    longest_context_with(&ModelFacts::new(&req.model), req)
}

/// [`longest_context`] with the facts of `req.model` the question already has.
pub(crate) fn longest_context_with(
    facts: &ModelFacts<'_>,
    req: &EstimateRequest,
) -> Result<Option<u64>, CoreError> {
    let hi = req.model.max_context.clamp(1, MAX_CONTEXT_TOKENS);
    let mut r = req.clone();
    search_max(1, hi, |c| {
        r.context = Some(c);
        fits(facts, &r)
    })
}

/// The runtime that runs `format`: the asked one when it can load the format, else the usual
/// one for the device and mode ([`crate::answer::default_runtime`]).
pub fn runtime_for_format(
    asked: Option<Runtime>,
    device: &DeviceSpec,
    format: &WeightFormat,
    mode: &Mode,
) -> Runtime {
    let loads = |runtime: Runtime| match runtime {
        Runtime::LlamaCpp => format.is_gguf(),
        Runtime::Mlx => matches!(
            format,
            WeightFormat::F32 | WeightFormat::F16 | WeightFormat::Bf16 | WeightFormat::Mlx { .. }
        ),
        _ => !format.is_gguf() && !matches!(format, WeightFormat::Mlx { .. }),
    };
    match asked {
        Some(runtime) if loads(runtime) => runtime,
        _ => crate::answer::default_runtime(device, format, mode),
    }
}

/// Whether `mode` can use `format` at all, and if not why: LoRA trains through PyTorch (no GGUF,
/// no MLX files), QLoRA on a bitsandbytes 4-bit base, a full fine-tune on 16/32-bit weights.
pub fn mode_accepts_format(mode: &Mode, format: &WeightFormat) -> Result<(), &'static str> {
    match mode {
        Mode::Inference => Ok(()),
        Mode::Lora(_) if format.is_gguf() || matches!(format, WeightFormat::Mlx { .. }) => Err(
            "LoRA trains through PyTorch (transformers + peft), which loads neither GGUF nor MLX \
             files",
        ),
        Mode::Lora(_) => Ok(()),
        Mode::Qlora(_) => match format {
            WeightFormat::BnbNf4 { .. } | WeightFormat::BnbFp4 { .. } => Ok(()),
            _ => Err("QLoRA trains on a bitsandbytes 4-bit base (nf4 or fp4)"),
        },
        Mode::Full(_) => match format {
            WeightFormat::F32 | WeightFormat::F16 | WeightFormat::Bf16 => Ok(()),
            _ => Err("a full fine-tune trains 16/32-bit weights (fp32, bf16, fp16)"),
        },
    }
}

/// What became of one format in the every-format table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowOutcome {
    /// Estimated with the row's runtime and KV type.
    Estimated(Box<Estimate>),
    /// Not estimated, and why (the mode cannot use the format, the runtime does not run on the
    /// device, ...).
    Skipped(String),
}

/// One row of the every-format table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FormatRow {
    /// Format name, e.g. `Q4_K_M`.
    pub format: String,
    /// The runtime that loads it: the request's own when it can, else the usual one.
    pub runtime: String,
    /// The KV cache type of the row: the request's when the row's runtime supports it, else
    /// that runtime's usual one.
    pub kv_cache_dtype: String,
    /// The estimate, or why there is none.
    pub outcome: RowOutcome,
}

impl FormatRow {
    /// The estimate, when the row has one.
    pub fn estimate(&self) -> Option<&Estimate> {
        match &self.outcome {
            RowOutcome::Estimated(e) => Some(e),
            RowOutcome::Skipped(_) => None,
        }
    }
}

/// `req` in `format`, with the runtime that loads it ([`runtime_for_format`] of the `asked`
/// runtime) and a KV type that runtime supports.
pub fn request_for_format(
    req: &EstimateRequest,
    asked: Option<Runtime>,
    format: &WeightFormat,
) -> EstimateRequest {
    let mut r = req.clone();
    r.runtime = runtime_for_format(asked, &req.device, format, &req.mode);
    r.format = format.clone();
    if !r.runtime.supports_kv_dtype(r.kv_dtype) {
        r.kv_dtype = crate::answer::default_kv_dtype(&r.model, r.runtime);
    }
    // llama.cpp's own settings mean nothing to the runtime of a non-GGUF row.
    if r.runtime != Runtime::LlamaCpp {
        r.llama_cpp = crate::llama_cpp::LlamaCppSettings::default();
    }
    r
}

/// Every format of [`WeightFormat::all`] for `req`, highest precision first: each estimated with
/// [`request_for_format`] (`asked`: the runtime the question named, if any), or skipped with the
/// reason.
pub fn format_rows(req: &EstimateRequest, asked: Option<Runtime>) -> Vec<FormatRow> {
    format_rows_with(&ModelFacts::new(&req.model), req, asked)
}

/// [`format_rows`] with the facts of `req.model` the question already has.
pub(crate) fn format_rows_with(
    facts: &ModelFacts<'_>,
    req: &EstimateRequest,
    asked: Option<Runtime>,
) -> Vec<FormatRow> {
    WeightFormat::all()
        .into_iter()
        .map(|format| {
            let r = request_for_format(req, asked, &format);
            let outcome = match mode_accepts_format(&req.mode, &format) {
                Err(why) => RowOutcome::Skipped(why.to_string()),
                Ok(()) => match estimate_with(facts, &r) {
                    Ok(e) => RowOutcome::Estimated(Box::new(e)),
                    Err(e) => RowOutcome::Skipped(e.to_string()),
                },
            };
            FormatRow {
                format: format.to_string(),
                runtime: r.runtime.to_string(),
                kv_cache_dtype: r.kv_dtype.to_string(),
                outcome,
            }
        })
        .collect()
}

/// The first row (highest precision) that fits with room (≤ 90%), else the first that fits
/// tightly.
pub fn best_of_rows(rows: &[FormatRow]) -> Option<FormatChoice> {
    let choice = |row: &FormatRow, e: &Estimate| FormatChoice {
        format: e.quant.clone(),
        runtime: row.runtime.clone(),
        verdict: e.verdict,
        total_bytes: e.total_bytes,
        decode_tokens_per_s: e.decode_tokens_per_s,
    };
    let estimated = || rows.iter().filter_map(|r| r.estimate().map(|e| (r, e)));
    estimated()
        .find(|(_, e)| e.verdict == Verdict::Fits)
        .or_else(|| estimated().find(|(_, e)| e.verdict == Verdict::FitsTightly))
        .map(|(r, e)| choice(r, e))
}

/// The highest-precision format of [`WeightFormat::all`] that fits, preferring one that
/// fits with room (≤ 90%) over one that fits tightly ([`best_of_rows`] of [`format_rows`]).
pub fn best_format(
    req: &EstimateRequest,
    asked: Option<Runtime>,
) -> Result<Option<FormatChoice>, CoreError> {
    crate::estimate::validate(req)?;
    Ok(best_of_rows(&format_rows(req, asked)))
}

fn with_checkpointing(mode: &Mode, on: bool) -> Mode {
    match mode {
        Mode::Lora(l) => Mode::Lora(LoraSettings {
            gradient_checkpointing: on,
            ..l.clone()
        }),
        Mode::Qlora(l) => Mode::Qlora(LoraSettings {
            gradient_checkpointing: on,
            ..l.clone()
        }),
        Mode::Full(f) => {
            let mut f = f.clone();
            f.gradient_checkpointing = on;
            Mode::Full(f)
        }
        other => other.clone(),
    }
}

/// Training settings that fit for a training `req`; `None` for inference.
pub fn training_advice(req: &EstimateRequest) -> Result<Option<TrainingAdvice>, CoreError> {
    training_advice_with(&ModelFacts::new(&req.model), req)
}

/// [`training_advice`] with the facts of `req.model` the question already has.
pub(crate) fn training_advice_with(
    facts: &ModelFacts<'_>,
    req: &EstimateRequest,
) -> Result<Option<TrainingAdvice>, CoreError> {
    if !req.mode.is_training() {
        return Ok(None);
    }
    let fits_as_given = fits(facts, req)?;
    let mut ckpt = req.clone();
    ckpt.mode = with_checkpointing(&req.mode, true);
    let fits_with_checkpointing = !fits_as_given && fits(facts, &ckpt)?;
    // Search around the lighter setting when the given one does not fit.
    let base = if fits_as_given || !fits_with_checkpointing {
        req.clone()
    } else {
        ckpt
    };
    let mut r = base.clone();
    let max_batch = search_max(1, MAX_ADVISED_BATCH.min(MAX_BATCH), |b| {
        r.batch = b;
        fits(facts, &r)
    })?;
    let mut r = base.clone();
    r.batch = 1;
    let max_seq = search_max(
        1,
        base.model.max_context.clamp(1, MAX_CONTEXT_TOKENS),
        |s| {
            r.context = Some(s);
            fits(facts, &r)
        },
    )?;
    let (mut max_rank, mut targets) = (None, None);
    let (mut last_layers, mut last_layers_ckpt) = (None, false);
    if let Mode::Lora(l) | Mode::Qlora(l) = &base.mode {
        let rebuild = |l: LoraSettings| match &base.mode {
            Mode::Qlora(_) => Mode::Qlora(l),
            _ => Mode::Lora(l),
        };
        for rank in LORA_RANKS {
            let mut r = base.clone();
            r.mode = rebuild(LoraSettings {
                rank: *rank,
                ..l.clone()
            });
            if fits(facts, &r)? {
                max_rank = Some(*rank);
                break;
            }
        }
        for set in LORA_TARGET_SETS {
            let mut r = base.clone();
            r.mode = rebuild(LoraSettings {
                target_modules: set.iter().map(|s| s.to_string()).collect(),
                ..l.clone()
            });
            if fits(facts, &r)? {
                targets = Some(set.iter().map(|s| s.to_string()).collect());
                break;
            }
        }
        // LoRA on the last k layers: trainable parameters and kept activations both grow with
        // k (autograd keeps activations from the first adapted layer to the loss), so the
        // largest k that fits is a binary search. Without checkpointing first: that is where
        // skipping the early layers saves the most, and it avoids the recomputation.
        let n = base.model.num_layers;
        if !fits_as_given && n > 1 {
            // `l` is the base's (checkpointing on when only that fits); start from the
            // request's own setting. With checkpointing on, keeping every layer fits whenever
            // `fits_with_checkpointing`, so then there is no subset to suggest.
            let tries: &[bool] = match (req.mode.gradient_checkpointing(), fits_with_checkpointing)
            {
                (true, _) => &[true],
                (false, true) => &[false],
                (false, false) => &[false, true],
            };
            for &ckpt in tries {
                let mut r = req.clone();
                let k = search_max(1, n - 1, |k| {
                    r.mode = rebuild(LoraSettings {
                        layers: Some(LoraSettings::last_layers(n, k)),
                        gradient_checkpointing: ckpt,
                        ..l.clone()
                    });
                    fits(facts, &r)
                })?;
                if k.is_some() {
                    last_layers = k;
                    last_layers_ckpt = ckpt;
                    break;
                }
            }
        }
    }
    let mut advice = TrainingAdvice {
        fits_as_given,
        fits_with_checkpointing,
        max_batch,
        max_sequence_tokens: max_seq,
        max_lora_rank: max_rank,
        lora_targets: targets,
        max_lora_last_layers: last_layers,
        lora_last_layers_need_checkpointing: last_layers_ckpt,
        suggestions: Vec::new(),
    };
    advice.suggestions = training_suggestions(req, &advice);
    Ok(Some(advice))
}

/// The settings of `t` that make `req` fit, in words, each with its trade-off.
fn training_suggestions(req: &EstimateRequest, t: &TrainingAdvice) -> Vec<String> {
    let mut out = Vec::new();
    if t.fits_as_given {
        return out;
    }
    let lora = match &req.mode {
        Mode::Lora(l) | Mode::Qlora(l) => Some(l),
        _ => None,
    };
    let ckpt_given = req.mode.gradient_checkpointing();
    if t.fits_with_checkpointing {
        out.push(
            "turn on gradient checkpointing: keeps only each layer's input and recomputes the \
             rest in the backward pass (about one more forward pass per step, roughly 20-30% \
             slower)"
                .to_string(),
        );
    }
    let ckpt_note = if t.fits_with_checkpointing && !ckpt_given {
        " (with checkpointing)"
    } else {
        ""
    };
    if let Some(b) = t.max_batch
        && b < req.batch
    {
        out.push(format!(
            "batch {b}{ckpt_note} instead of {}: fewer sequences per step; gradient \
             accumulation over {} steps keeps the effective batch",
            req.batch,
            req.batch.div_ceil(b)
        ));
    }
    let seq = req.context.unwrap_or(0);
    if let Some(s) = t.max_sequence_tokens
        && (seq == 0 || s < seq)
    {
        out.push(format!(
            "sequences of at most {s} tokens at batch 1{ckpt_note}: longer examples must be \
             truncated or split"
        ));
    }
    if let Some(l) = lora {
        if let Some(r) = t.max_lora_rank
            && r < l.rank
        {
            out.push(format!(
                "LoRA rank {r}{ckpt_note} instead of {}: fewer trainable parameters, less \
                 capacity to learn the task",
                l.rank
            ));
        }
        if let Some(targets) = &t.lora_targets
            && targets.len() < l.target_modules.len()
        {
            out.push(format!(
                "LoRA targets {}{ckpt_note}: adapting fewer matrices learns less than all \
                 linear layers (QLoRA paper, Dettmers et al. 2023 §4)",
                targets.join(",")
            ));
        }
        if let Some(k) = t.max_lora_last_layers {
            let n = req.model.num_layers;
            out.push(format!(
                "LoRA on the last {k} of {n} layers (--lora-layers last:{k}, peft \
                 layers_to_transform){}: activations are kept only from layer {} on and \
                 fewer adapters are trained; the first {} layers stay as pretrained, which \
                 usually adapts the model less than LoRA on every layer",
                if t.lora_last_layers_need_checkpointing && !ckpt_given {
                    " with gradient checkpointing"
                } else {
                    ""
                },
                n - k,
                n - k
            ));
        }
    }
    out
}
