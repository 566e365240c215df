//! Advice: the longest context that fits, the best format that fits, training settings that fit,
//! and the speeds with their assumptions.
//!
//! Every answer is found by running [`estimate`] itself (binary search over context, batch,
//! sequence length; a walk down the format list), so advice and estimate can never disagree.

use serde::{Deserialize, Serialize};

use crate::{
    CoreError,
    estimate::{Estimate, EstimateRequest, MAX_BATCH, MAX_CONTEXT_TOKENS, Verdict, estimate},
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

/// What would fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Advice {
    /// The estimate of the request as given.
    pub estimate: Estimate,
    /// Longest context (tokens, up to the model's maximum) that fits (fits or fits tightly) with
    /// everything else as given; `None` if not even 1 token does.
    pub longest_context: Option<u64>,
    /// Highest-precision format that fits (preferring "fits" over "fits tightly"), with its
    /// runtime and verdict; `None` if none does.
    pub best_format: Option<FormatChoice>,
    /// Training settings that fit, for training requests.
    pub training: Option<TrainingAdvice>,
    /// The assumptions behind the advice, in words.
    pub assumptions: Vec<String>,
}

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

fn fits(req: &EstimateRequest) -> Result<bool, CoreError> {
    Ok(estimate(req)?.fits)
}

/// The longest context that fits for `req` (up to the model's maximum).
pub fn longest_context(req: &EstimateRequest) -> Result<Option<u64>, CoreError> {
    let hi = req.model.max_context.clamp(1, MAX_CONTEXT_TOKENS);
    let mut r = req.clone();
    search_max(1, hi, |c| {
        r.context = Some(c);
        fits(&r)
    })
}

/// The runtime that runs `format` on the request's device: the request's own when it can,
/// else the usual one ([`Runtime::default_for`]).
pub fn runtime_for_format(req: &EstimateRequest, format: &WeightFormat) -> Runtime {
    let own_ok = match req.runtime {
        Runtime::LlamaCpp => format.is_gguf(),
        Runtime::Mlx => !format.is_gguf(),
        _ => !format.is_gguf() && !matches!(format, WeightFormat::Mlx { .. }),
    };
    if own_ok {
        req.runtime
    } else {
        Runtime::default_for(&req.device, format)
    }
}

/// The highest-precision format of [`WeightFormat::all`] that fits, preferring one that
/// fits with room (≤ 90%) over one that fits tightly.
pub fn best_format(req: &EstimateRequest) -> Result<Option<FormatChoice>, CoreError> {
    let mut tight: Option<FormatChoice> = None;
    for format in WeightFormat::all() {
        let mut r = req.clone();
        r.runtime = runtime_for_format(req, &format);
        r.format = format.clone();
        // Formats the runtime/device/mode combination cannot run are skipped, not errors.
        let Ok(e) = estimate(&r) else { continue };
        let choice = FormatChoice {
            format: e.quant.clone(),
            runtime: r.runtime.to_string(),
            verdict: e.verdict,
            total_bytes: e.total_bytes,
            decode_tokens_per_s: e.decode_tokens_per_s,
        };
        match e.verdict {
            Verdict::Fits => return Ok(Some(choice)),
            Verdict::FitsTightly if tight.is_none() => tight = Some(choice),
            _ => {}
        }
    }
    Ok(tight)
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
    if !req.mode.is_training() {
        return Ok(None);
    }
    let fits_as_given = fits(req)?;
    let mut ckpt = req.clone();
    ckpt.mode = with_checkpointing(&req.mode, true);
    let fits_with_checkpointing = !fits_as_given && fits(&ckpt)?;
    // Search around the lighter setting when the given one does not fit.
    let base = if fits_as_given || !fits_with_checkpointing {
        req.clone()
    } else {
        ckpt
    };
    let mut r = base.clone();
    let max_batch = search_max(1, MAX_ADVISED_BATCH.min(MAX_BATCH), |b| {
        r.batch = b;
        fits(&r)
    })?;
    let mut r = base.clone();
    r.batch = 1;
    let max_seq = search_max(
        1,
        base.model.max_context.clamp(1, MAX_CONTEXT_TOKENS),
        |s| {
            r.context = Some(s);
            fits(&r)
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
            if fits(&r)? {
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
            if fits(&r)? {
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
                    fits(&r)
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

/// Everything: the estimate, the longest context, the best format, training settings.
pub fn advise(req: &EstimateRequest) -> Result<Advice, CoreError> {
    let est = estimate(req)?;
    let longest = longest_context(req)?;
    let best = best_format(req)?;
    let training = training_advice(req)?;
    let mut assumptions = vec![
        "longest context: binary search up to the model's max_position_embeddings with batch, \
         format and runtime as given; \"fits\" includes fits tightly"
            .to_string(),
        "best format: the first of headroom's format list (highest precision first) that \
         fits with ≤ 90% of usable memory, else the first that fits tightly; formats the \
         requested runtime cannot load are tried with the usual runtime for the device"
            .to_string(),
    ];
    if training.is_some() {
        assumptions.push(format!(
            "training settings: batch searched up to {MAX_ADVISED_BATCH}, sequence length up to \
             the model's maximum at batch 1, LoRA ranks {LORA_RANKS:?}; gradient checkpointing \
             used for the searches when the given setting only fits with it; LoRA on the last \
             k layers searched for the largest k, without checkpointing first"
        ));
    }
    assumptions.extend(est.assumptions.iter().cloned());
    Ok(Advice {
        estimate: est,
        longest_context: longest,
        best_format: best,
        training,
        assumptions,
    })
}
