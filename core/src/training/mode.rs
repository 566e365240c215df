//! What is trained and how: [`Mode`] with its LoRA and full fine-tune settings, their text form
//! (`lora:r=16:ckpt`, see [`MODE_GRAMMAR`]) and the LoRA layer-list grammar.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::{
    CoreError,
    error::{Fix, Setting},
};

/// What the memory is for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
#[non_exhaustive]
pub enum Mode {
    /// Generation only.
    Inference,
    /// LoRA on a frozen base in the chosen weight format.
    Lora(LoraSettings),
    /// QLoRA: LoRA on a 4-bit (nf4) base.
    Qlora(LoraSettings),
    /// Every weight trained.
    Full(FullSettings),
}

/// LoRA settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraSettings {
    /// Rank r of the adapters.
    pub rank: u64,
    /// Module roles adapted, e.g. q, k, v, o, gate, up, down.
    pub target_modules: Vec<String>,
    /// Recompute activations in the backward pass instead of keeping them.
    pub gradient_checkpointing: bool,
    /// Decoder layers (0-based) that get adapters, like peft's `layers_to_transform`; `None`
    /// adapts every layer. Layers before the first adapted one keep no activations for the
    /// backward pass (see [`training_activation_bytes_for`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<u64>>,
}

/// Optimizer of a full fine-tune.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Optimizer {
    /// AdamW, two fp32 moments per parameter.
    AdamW,
    /// bitsandbytes 8-bit Adam.
    Adam8bit,
    /// bitsandbytes `PagedAdamW`: 32-bit AdamW whose two moments live in CUDA managed memory,
    /// which the driver moves to host RAM when the GPU is full.
    PagedAdamW,
    /// bitsandbytes `PagedAdamW8bit`: 8-bit AdamW in CUDA managed memory.
    PagedAdam8bit,
    /// Plain SGD (no state).
    Sgd,
}

impl Optimizer {
    /// Name in the mode grammar ([`MODE_GRAMMAR`]).
    pub fn name(self) -> &'static str {
        match self {
            Optimizer::AdamW => "adamw",
            Optimizer::Adam8bit => "adam8bit",
            Optimizer::PagedAdamW => "paged-adamw",
            Optimizer::PagedAdam8bit => "paged-adam8bit",
            Optimizer::Sgd => "sgd",
        }
    }

    /// Whether the state sits in CUDA managed memory that the driver pages out to host RAM.
    pub fn is_paged(self) -> bool {
        matches!(self, Optimizer::PagedAdamW | Optimizer::PagedAdam8bit)
    }
}

/// Precision of a full fine-tune.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainingPrecision {
    /// Everything in fp32.
    Fp32,
    /// bf16 mixed precision: bf16 weights and gradients with an fp32 master copy.
    Bf16Mixed,
    /// Pure bf16: weights, gradients and optimizer state all in bf16 (what a model loaded in
    /// bf16 and handed to `torch.optim.AdamW` does; numerically fragile).
    Bf16,
}

/// Full fine-tune settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FullSettings {
    /// Precision.
    pub precision: TrainingPrecision,
    /// Optimizer.
    pub optimizer: Optimizer,
    /// Recompute activations in the backward pass.
    pub gradient_checkpointing: bool,
}

/// Default LoRA rank when none is given (peft's `LoraConfig` default is 8; 16 is the common
/// recipe value in published fine-tuning guides — we use 16 and say so).
pub const DEFAULT_LORA_RANK: u64 = 16;

/// Default LoRA targets: every attention and MLP projection (the QLoRA paper's finding that
/// adapting all linear layers is needed to match full fine-tuning; Dettmers et al. 2023 §4).
pub const DEFAULT_LORA_TARGETS: &[&str] = &["q", "k", "v", "o", "gate", "up", "down"];

/// Whether QLoRA checkpoints by default: peft's `prepare_model_for_kbit_training`, which QLoRA
/// scripts call before adding adapters, enables gradient checkpointing unless told not to.
pub const QLORA_DEFAULT_CHECKPOINTING: bool = true;

/// Target names `lora_target_roles` understands.
pub const LORA_TARGET_NAMES: &str = "q, k, v, o, qkv, gate, up, down, gate_up, q_a, q_b, kv_a, \
     kv_b, experts, all-linear (also the `*_proj` spellings and Mixtral's w1/w2/w3)";

impl LoraSettings {
    /// LoRA with rank [`DEFAULT_LORA_RANK`] on [`DEFAULT_LORA_TARGETS`], no checkpointing.
    pub fn default_settings() -> LoraSettings {
        LoraSettings {
            rank: DEFAULT_LORA_RANK,
            target_modules: DEFAULT_LORA_TARGETS.iter().map(|s| s.to_string()).collect(),
            gradient_checkpointing: false,
            layers: None,
        }
    }

    /// QLoRA's usual setup: [`LoraSettings::default_settings`] with gradient checkpointing on,
    /// as peft's `prepare_model_for_kbit_training` turns it on by default
    /// (`use_gradient_checkpointing=True`) and every QLoRA recipe calls it.
    pub fn qlora_default_settings() -> LoraSettings {
        LoraSettings {
            gradient_checkpointing: QLORA_DEFAULT_CHECKPOINTING,
            ..LoraSettings::default_settings()
        }
    }

    /// Whether decoder layer `layer` gets adapters.
    pub fn adapts_layer(&self, layer: u64) -> bool {
        self.layers.as_ref().is_none_or(|l| l.contains(&layer))
    }

    /// The adapted layers of a `num_layers`-layer model, sorted and deduplicated; an error
    /// names the first index outside `0..num_layers` or an empty list.
    pub fn adapted_layers(&self, num_layers: u64) -> Result<Vec<u64>, CoreError> {
        let Some(list) = &self.layers else {
            return Ok((0..num_layers).collect());
        };
        if list.is_empty() {
            return Err(CoreError::setting(
                Setting::LoraLayers,
                "[]",
                "names no layer; give at least one",
                vec![Fix::new(Setting::LoraLayers, "all")],
            ));
        }
        if let Some(bad) = list.iter().find(|&&l| l >= num_layers) {
            return Err(CoreError::setting(
                Setting::LoraLayers,
                bad,
                format!(
                    "the model has {num_layers} layers, numbered 0 to {}",
                    num_layers.saturating_sub(1)
                ),
                vec![],
            ));
        }
        let mut v = list.clone();
        v.sort_unstable();
        v.dedup();
        Ok(v)
    }

    /// Adapters on the last `k` of `num_layers` layers (`k` is clamped to `1..=num_layers`).
    pub fn last_layers(num_layers: u64, k: u64) -> Vec<u64> {
        let k = k.clamp(1, num_layers.max(1));
        (num_layers.saturating_sub(k)..num_layers).collect()
    }
}

/// Largest layer count assumed when a layer list is parsed without a model (`Mode::from_str`):
/// 2^16, far above any published model (the deepest open LLMs have under 200 decoder layers);
/// it bounds the list a typo like `0-99999999999` would allocate.
pub const MAX_LORA_LAYER_INDEX: u64 = 1 << 16;

/// A layer list written compactly: sorted, runs as `A-B`, e.g. `0,4,8-11`.
pub fn compact_layers(layers: &[u64]) -> String {
    let mut v = layers.to_vec();
    v.sort_unstable();
    v.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            v[i].to_string()
        } else {
            format!("{}-{}", v[i], v[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

/// Longest LoRA layer spec accepted, bytes: 64 KiB, more than a comma-separated list of every
/// index of a model with [`crate::config::MAX_LAYERS`] layers takes (under 50 KB).
pub const MAX_LORA_LAYERS_SPEC_BYTES: usize = 64 << 10;

fn mark(chosen: &mut [bool], index: u64) {
    if let Some(slot) = usize::try_from(index).ok().and_then(|i| chosen.get_mut(i)) {
        *slot = true;
    }
}

/// The grammar [`parse_lora_layers`] accepts, for help texts.
pub const LORA_LAYERS_GRAMMAR: &str =
    "all | last:K | first:K | A-B | a list of indices and ranges such as 0,4,8-11 (0-based)";

/// Parses a LoRA layer spec against a `num_layers`-layer model: `all` (→ `None`), `last:K`,
/// `first:K`, or comma-separated indices and inclusive ranges `A-B`. Indices outside the model
/// and empty or reversed ranges are errors that name the value.
pub fn parse_lora_layers(spec: &str, num_layers: u64) -> Result<Option<Vec<u64>>, CoreError> {
    let s = spec.trim().to_ascii_lowercase();
    let bad = |value: &str, problem: String| {
        CoreError::setting(Setting::LoraLayers, value, problem, vec![])
    };
    let range_hint = || {
        format!(
            "the model has {num_layers} layers, numbered 0 to {}; use {LORA_LAYERS_GRAMMAR}",
            num_layers.saturating_sub(1)
        )
    };
    if s == "all" {
        return Ok(None);
    }
    let count = |k: &str| -> Result<u64, CoreError> {
        match k.trim().parse::<u64>() {
            Ok(k) if (1..=num_layers).contains(&k) => Ok(k),
            _ => Err(bad(
                spec,
                format!(
                    "K must be a whole number from 1 to {num_layers}; {}",
                    range_hint()
                ),
            )),
        }
    };
    if let Some(k) = s.strip_prefix("last:") {
        return Ok(Some(LoraSettings::last_layers(num_layers, count(k)?)));
    }
    if let Some(k) = s.strip_prefix("first:") {
        return Ok(Some((0..count(k)?).collect()));
    }
    let index = |x: &str| -> Result<u64, CoreError> {
        match x.trim().parse::<u64>() {
            Ok(i) if i < num_layers => Ok(i),
            _ => Err(bad(x.trim(), range_hint())),
        }
    };
    if spec.len() > MAX_LORA_LAYERS_SPEC_BYTES {
        return Err(bad(
            &format!("{}…", spec.chars().take(16).collect::<String>()),
            format!(
                "is {} bytes long; a list naming every layer of the largest model takes under \
                 {} KiB — use ranges such as 0-15 or {LORA_LAYERS_GRAMMAR}",
                spec.len(),
                MAX_LORA_LAYERS_SPEC_BYTES >> 10
            ),
        ));
    }
    // One flag per layer, not one entry per index written: `0-9999,0-9999,…` must not grow a
    // list with every repetition.
    let mut chosen = vec![
        false;
        usize::try_from(num_layers)
            .unwrap_or(usize::MAX)
            .min(1 << 20)
    ];
    for part in s.split(',') {
        if part.trim().is_empty() {
            return Err(bad(spec, format!("has an empty entry; {}", range_hint())));
        }
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (index(a)?, index(b)?);
                if a > b {
                    return Err(bad(
                        part,
                        "the range runs backwards; write it low-high".into(),
                    ));
                }
                let (a, b) = (
                    usize::try_from(a).unwrap_or(usize::MAX),
                    usize::try_from(b).unwrap_or(usize::MAX),
                );
                if let Some(span) = chosen.get_mut(a..=b) {
                    span.fill(true);
                }
            }
            None => mark(&mut chosen, index(part)?),
        }
    }
    Ok(Some(
        (0u64..)
            .zip(chosen)
            .filter_map(|(i, on)| on.then_some(i))
            .collect(),
    ))
}

/// A human description of a layer list: `all`, `last 8 of 32 (24-31)`, or the indices.
pub fn describe_layers(layers: Option<&[u64]>, num_layers: u64) -> String {
    let Some(l) = layers else {
        return "all".to_string();
    };
    let mut v = l.to_vec();
    v.sort_unstable();
    v.dedup();
    let contiguous = v.windows(2).all(|w| w[1] == w[0] + 1);
    match (v.first(), v.last()) {
        (Some(&a), Some(&b)) if contiguous && b + 1 == num_layers && a > 0 => {
            format!("last {} of {num_layers} ({a}-{b})", v.len())
        }
        (Some(&a), Some(&b)) if contiguous && a == 0 && b + 1 == num_layers => "all".to_string(),
        (Some(&a), Some(&b)) if contiguous && a != b => {
            format!("{a}-{b} of {num_layers}")
        }
        _ => format!(
            "{} of {num_layers}",
            v.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
        ),
    }
}

impl FullSettings {
    /// bf16 mixed precision with AdamW, no checkpointing.
    pub fn default_settings() -> FullSettings {
        FullSettings {
            precision: TrainingPrecision::Bf16Mixed,
            optimizer: Optimizer::AdamW,
            gradient_checkpointing: false,
        }
    }
}

impl Mode {
    /// Whether gradients flow (anything but inference).
    pub fn is_training(&self) -> bool {
        !matches!(self, Mode::Inference)
    }

    /// Whether activations are recomputed in the backward pass.
    pub fn gradient_checkpointing(&self) -> bool {
        match self {
            Mode::Inference => false,
            Mode::Lora(l) | Mode::Qlora(l) => l.gradient_checkpointing,
            Mode::Full(f) => f.gradient_checkpointing,
        }
    }

    /// Whether `name`'s mode ([`Mode::name`]) checkpoints unless told otherwise: QLoRA does
    /// ([`QLORA_DEFAULT_CHECKPOINTING`]); LoRA and full fine-tunes do not (transformers'
    /// `Trainer` default).
    pub fn default_checkpointing(name: &str) -> bool {
        name == "qlora" && QLORA_DEFAULT_CHECKPOINTING
    }

    /// The mode's short name: `inference`, `lora`, `qlora`, `full`.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Inference => "inference",
            Mode::Lora(_) => "lora",
            Mode::Qlora(_) => "qlora",
            Mode::Full(_) => "full",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Inference => write!(f, "inference"),
            Mode::Lora(l) | Mode::Qlora(l) => {
                write!(
                    f,
                    "{}:r={}:targets={}",
                    self.name(),
                    l.rank,
                    l.target_modules.join(",")
                )?;
                // Written whenever it differs from the mode's default, so the text parses back.
                if l.gradient_checkpointing {
                    write!(f, ":ckpt")?;
                } else if Mode::default_checkpointing(self.name()) {
                    write!(f, ":no-ckpt")?;
                }
                if let Some(layers) = &l.layers {
                    write!(f, ":layers={}", compact_layers(layers))?;
                }
                Ok(())
            }
            Mode::Full(s) => {
                let p = match s.precision {
                    TrainingPrecision::Fp32 => "fp32",
                    TrainingPrecision::Bf16Mixed => "bf16-mixed",
                    TrainingPrecision::Bf16 => "bf16",
                };
                write!(f, "full:{p}:{}", s.optimizer.name())?;
                if s.gradient_checkpointing {
                    write!(f, ":ckpt")?;
                }
                Ok(())
            }
        }
    }
}

/// The compact grammar `Mode::from_str` accepts, for help texts.
pub const MODE_GRAMMAR: &str = "inference | lora[:r=N][:targets=q,k,v,...][:ckpt][:layers=24-31] \
     | qlora[:r=N][:targets=...][:no-ckpt][:layers=0,4,8-11] | full[:fp32|bf16-mixed|bf16][:adamw|adam8bit|paged-adamw|paged-adam8bit|sgd][:ckpt]";

impl FromStr for Mode {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let mut parts = lower.split(':');
        let head = parts.next().unwrap_or("");
        let bad = |part: &str| CoreError::Unknown {
            kind: "mode option".into(),
            name: part.to_string(),
            hint: format!("the mode grammar is {MODE_GRAMMAR}"),
        };
        match head {
            "inference" | "infer" => match parts.next() {
                None => Ok(Mode::Inference),
                Some(p) => Err(bad(p)),
            },
            "lora" | "qlora" => {
                let mut l = if head == "qlora" {
                    LoraSettings::qlora_default_settings()
                } else {
                    LoraSettings::default_settings()
                };
                for part in parts {
                    if let Some(r) = part.strip_prefix("r=").or(part.strip_prefix("rank=")) {
                        l.rank = r.parse().map_err(|_| CoreError::OutOfRange {
                            field: "LoRA rank".into(),
                            value: r.to_string(),
                            problem: "must be a whole number ≥ 1, e.g. r=16".into(),
                        })?;
                        if l.rank == 0 {
                            return Err(CoreError::OutOfRange {
                                field: "LoRA rank".into(),
                                value: r.to_string(),
                                problem: "must be ≥ 1, e.g. r=16".into(),
                            });
                        }
                    } else if let Some(t) = part.strip_prefix("targets=") {
                        l.target_modules = t
                            .split(',')
                            .filter(|x| !x.is_empty())
                            .map(str::to_string)
                            .collect();
                    } else if let Some(spec) = part.strip_prefix("layers=") {
                        // The layer count is not known here: indices are checked against the
                        // model by `lora_params`; `last:K` needs the count (CLI --lora-layers).
                        l.layers = parse_lora_layers(spec, MAX_LORA_LAYER_INDEX)?;
                    } else if matches!(part, "ckpt" | "checkpointing" | "gc") {
                        l.gradient_checkpointing = true;
                    } else if matches!(part, "no-ckpt" | "nockpt") {
                        l.gradient_checkpointing = false;
                    } else {
                        return Err(bad(part));
                    }
                }
                Ok(if head == "lora" {
                    Mode::Lora(l)
                } else {
                    Mode::Qlora(l)
                })
            }
            "full" => {
                let mut f = FullSettings::default_settings();
                for part in parts {
                    match part {
                        "fp32" | "f32" => f.precision = TrainingPrecision::Fp32,
                        "bf16-mixed" | "mixed" | "amp" => {
                            f.precision = TrainingPrecision::Bf16Mixed
                        }
                        "bf16" | "bf16-pure" => f.precision = TrainingPrecision::Bf16,
                        "adamw" | "adam" => f.optimizer = Optimizer::AdamW,
                        "adam8bit" | "adamw8bit" | "8bit" => f.optimizer = Optimizer::Adam8bit,
                        "paged-adamw" | "paged_adamw" | "paged-adamw32bit" => {
                            f.optimizer = Optimizer::PagedAdamW
                        }
                        "paged-adam8bit" | "paged-adamw8bit" | "paged_adamw_8bit" => {
                            f.optimizer = Optimizer::PagedAdam8bit
                        }
                        "sgd" => f.optimizer = Optimizer::Sgd,
                        "ckpt" | "checkpointing" | "gc" => f.gradient_checkpointing = true,
                        "no-ckpt" | "nockpt" => f.gradient_checkpointing = false,
                        other => return Err(bad(other)),
                    }
                }
                Ok(Mode::Full(f))
            }
            _ => Err(CoreError::Unknown {
                kind: "mode".into(),
                name: s.to_string(),
                hint: format!("use {MODE_GRAMMAR}"),
            }),
        }
    }
}
