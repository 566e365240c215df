//! Training memory: full fine-tune (fp32, bf16 mixed precision + AdamW, pure bf16, 8-bit Adam,
//! SGD), LoRA, QLoRA, gradient checkpointing.
//!
//! ## Bytes per trained parameter
//! | precision | weights | grads | master | AdamW | 8-bit Adam | SGD |
//! |---|---|---|---|---|---|---|
//! | fp32 | 4 | 4 | – | 8 | 2 | 0 |
//! | bf16 mixed | 2 | 2 | 4 | 8 | 2 | 0 |
//! | pure bf16 | 2 | 2 | – | 4 | 2 | 0 |
//!
//! bf16 mixed precision is 16 bytes per parameter with AdamW, not 8 (ZeRO, Rajbhandari et al.
//! 2020, §3.1: 2 + 2 + 4 + 4 + 4). PyTorch AMP with fp32 parameters arrives at the same 16
//! (4 weights + 4 grads + 8 moments). *Pure* bf16 (a model loaded in bf16 handed to
//! `torch.optim.AdamW`) keeps the moments in the parameters' dtype: 8 bytes per parameter.
//! bitsandbytes 8-bit Adam keeps two 8-bit moments (2 bytes; its per-2048-block fp32 absmax is
//! 0.004 B/param, ignored). SGD here is plain SGD without momentum (no state).
//!
//! PyTorch's default AdamW on CUDA is the `foreach` implementation: its step allocates one
//! temporary the size of all moments' dtype (`torch._foreach_sqrt(exp_avg_sqs)`), so the step
//! peak adds one more state-sized copy (4 B/param fp32 moments, 2 B/param bf16). It happens after
//! the backward pass has freed the activations, so the peak is `max(activations, step temp)`.
//!
//! ## Activations per layer (stored for the backward pass)
//! Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer Models", §4)
//! count `s·b·h·(34 + 5·a·s/h)` bytes per layer for a GPT layer in 16-bit with dropout. For the
//! Llama-style layers here (RMSNorm, no dropout, GQA, SwiGLU) the same bookkeeping of what each
//! operation saves gives, per token, in elements of the activation type (2 bytes in bf16):
//! `2·h + 2·q_dim + 2·kv_dim + 4·I` — norm outputs feeding projections (2·h), rotated q and k and
//! v saved by attention (`q_dim + 2·kv_dim`, unexpanded), attention output feeding `o_proj`
//! (`q_dim`), and the MLP's gate, SiLU(gate), up, and product (`4·I`) — plus the norms' own saved
//! tensors in bytes: transformers' RMSNorm runs in fp32 and keeps an fp32 input copy, and with a
//! trained weight the normalized tensor (see [`norm_saved_bytes_per_token`]). A frozen base
//! (LoRA) drops the norm outputs and `down_proj`'s input: frozen linears keep no inputs. MoE
//! layers store `3·h + 4·I_expert` for each of the `k` experts a token visits when the experts
//! are trained (transformers 5's grouped_mm working set, see `activations`), `h + 4·I_expert` when
//! they are frozen (LoRA: a frozen GEMM keeps no input for a weight gradient), plus the shared
//! experts and the router logits.
//! Without fused attention the scores are stored too: `heads · s` per token, in the activation
//! type (for `attn @ V`) and fp32 (softmax output), Korthikanti's `5·a·s/h` term.
//! The loss: `b·s·vocab` logits in bf16, their fp32 upcast, and the fp32 log-softmax saved by
//! cross-entropy (transformers' `ForCausalLMLoss`).
//!
//! With gradient checkpointing (transformers wraps each decoder layer) only each layer's input
//! (`h` per token) is stored, plus one layer's full activations while it is recomputed.
//!
//! LoRA uses the same per-layer count without what only trained weights need (the frozen-base
//! rules above: no norm outputs, no `down_proj` input) plus what peft keeps per adapted matrix: the fp32 copy of its input
//! (`in · 4` bytes, adapters are fp32) and `lora_A`'s fp32 output (`r · 4`). On MoE models peft
//! turns gate/up/down targets into adapters on the stacked experts, which materialize `W + ΔW`
//! of every expert (bf16) per MoE layer and keep it for the backward pass. QLoRA adds one bf16
//! dequantized copy of the largest 4-bit matrix (bitsandbytes dequantizes per matmul).
//!
//! LoRA on a subset of layers (peft's `layers_to_transform`, [`LoraSettings::layers`]): only
//! those layers' adapters are trained, and without checkpointing autograd keeps activations only
//! from the first adapted layer to the loss (earlier layers have no input that requires grad).
//! With checkpointing peft makes the embedding output require grad, so every layer keeps its
//! input as before. Not yet measured on a GPU (core/docs/MEMORY.md).

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::{
    CoreError,
    activations::{FP32_BYTES, attention_widths},
    error::{Fix, Setting},
    facts::ModelFacts,
    model::{Architecture, ModelSpec},
    tensors::TensorRole,
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
    /// Plain SGD (no state) .
    Sgd,
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
    let mut layers = Vec::new();
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
                layers.extend(a..=b);
            }
            None => layers.push(index(part)?),
        }
    }
    layers.sort_unstable();
    layers.dedup();
    Ok(Some(layers))
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
                let o = match s.optimizer {
                    Optimizer::AdamW => "adamw",
                    Optimizer::Adam8bit => "adam8bit",
                    Optimizer::Sgd => "sgd",
                };
                write!(f, "full:{p}:{o}")?;
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
     | qlora[:r=N][:targets=...][:no-ckpt][:layers=0,4,8-11] | full[:fp32|bf16-mixed|bf16][:adamw|adam8bit|sgd][:ckpt]";

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

/// Tensor roles a LoRA target name adapts on `model`.
pub fn lora_target_roles(model: &ModelSpec, target: &str) -> Result<Vec<TensorRole>, CoreError> {
    use TensorRole::*;
    let t = target.trim().to_ascii_lowercase();
    let t = t.strip_suffix("_proj").unwrap_or(&t).to_string();
    let mla = model.mla.is_some();
    let roles = match t.as_str() {
        "q" => vec![AttnQ, AttnQA, AttnQB, AttnQkv],
        "k" if mla => vec![AttnKvA, AttnKvB],
        "v" if mla => vec![AttnKvA, AttnKvB],
        "k" => vec![AttnK, AttnQkv],
        "v" => vec![AttnV, AttnQkv],
        "qkv" => vec![AttnQkv],
        "o" | "out" | "dense" => vec![AttnOutput],
        "q_a" => vec![AttnQA],
        "q_b" => vec![AttnQB],
        "kv_a" | "kv_a_proj_with_mqa" => vec![AttnKvA],
        "kv_b" => vec![AttnKvB],
        "gate" | "w1" => vec![FfnGate, FfnGateShared, FfnGateUp],
        "up" | "w3" => vec![FfnUp, FfnUpShared, FfnGateUp],
        "down" | "w2" => vec![FfnDown, FfnDownShared],
        "gate_up" => vec![FfnGateUp],
        "experts" => vec![FfnGateExperts, FfnUpExperts, FfnDownExperts],
        "all-linear" | "all" | "all_linear" => vec![
            AttnQ,
            AttnK,
            AttnV,
            AttnQkv,
            AttnOutput,
            AttnQA,
            AttnQB,
            AttnKvA,
            AttnKvB,
            FfnGate,
            FfnUp,
            FfnGateUp,
            FfnDown,
            FfnGateExperts,
            FfnUpExperts,
            FfnDownExperts,
            FfnGateShared,
            FfnUpShared,
            FfnDownShared,
        ],
        _ => {
            return Err(CoreError::Unknown {
                kind: "LoRA target module".into(),
                name: target.to_string(),
                hint: format!("use any of: {LORA_TARGET_NAMES}"),
            });
        }
    };
    Ok(roles)
}

/// Adapter size of LoRA with `settings` on `model`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoraParams {
    /// Trainable parameters: `r · (in + out)` per adapted matrix (each expert of a stacked
    /// expert tensor is one matrix).
    pub trainable_params: u64,
    /// Adapted matrices.
    pub adapted_matrices: u64,
    /// Adapted matrices in one layer (the most in any layer).
    pub adapted_per_layer: u64,
    /// Activation bytes the adapters store per token in the layer where they store the most:
    /// peft casts each adapted matrix's input to the adapters' fp32 (`in_features · 4` bytes,
    /// saved for `lora_A`'s backward) and saves `lora_A`'s fp32 output (`r · 4`). Routed experts
    /// count `experts_per_token` matrices per token.
    pub activation_bytes_per_token_layer: u64,
    /// Bytes of expert weights peft's `ParamWrapper` materializes (W + ΔW, bf16) in each MoE
    /// layer and keeps for the backward pass, when gate/up/down targets land on stacked experts.
    #[serde(default)]
    pub materialized_expert_bytes_per_layer: u64,
    /// The first (lowest-numbered) adapted decoder layer: autograd keeps activations from here
    /// to the loss; 0 when every layer is adapted.
    #[serde(default)]
    pub first_adapted_layer: u64,
    /// How many decoder layers carry adapters.
    #[serde(default)]
    pub adapted_layers: u64,
}

/// Exact LoRA trainable parameters from the tensor shapes. On MoE models, gate/up/down targets
/// follow peft's conversion to adapters on the stacked experts (see the code). An answer keeps
/// them per settings in [`crate::facts::ModelFacts`].
pub fn lora_params(model: &ModelSpec, settings: &LoraSettings) -> Result<LoraParams, CoreError> {
    lora_params_of(model, settings)
}

/// Elements of the largest single weight matrix outside the embedding and the output head
/// (one expert's matrix for stacked experts).
pub fn largest_matrix_elements(model: &ModelSpec) -> u64 {
    let mut largest = 0u64;
    crate::tensors::walk(model, |t| {
        let shape = t.shape();
        if shape.len() > 1 && !matches!(t.role, TensorRole::TokenEmbedding | TensorRole::Output) {
            let one = crate::tensors::shape_elements(shape)
                / crate::tensors::shape_matrices(shape).max(1);
            largest = largest.max(one);
        }
    });
    largest
}

fn lora_params_of(model: &ModelSpec, settings: &LoraSettings) -> Result<LoraParams, CoreError> {
    use TensorRole::*;
    // peft's `layers_to_transform`: only modules of the listed decoder layers get adapters.
    let adapted_layers = settings.adapted_layers(model.num_layers)?;
    let mut roles = Vec::new();
    for t in &settings.target_modules {
        roles.extend(lora_target_roles(model, t)?);
    }
    // peft ≥ 0.21 on a transformers-5 MoE model (fused expert tensors) rewrites the MLP targets
    // gate/up/down (Mixtral: w1/w3/w2) into `ParamWrapper` adapters on the stacked experts —
    // gate_up at rank 2r, down at rank r, spanning all experts — and drops them as module
    // targets, so dense and shared MLPs get no adapter (`_convert_peft_config_moe`; measured:
    // DeepSeek-V2-Lite, 41,091,072 trainable parameters exactly, core/docs/ACCURACY.md).
    let names: Vec<String> = settings
        .target_modules
        .iter()
        .map(|t| {
            let t = t.trim().to_ascii_lowercase();
            t.strip_suffix("_proj").unwrap_or(&t).to_string()
        })
        .collect();
    let has = |a: &str, b: &str| names.iter().any(|n| n == a || n == b);
    let (moe_gate_up, moe_down) = match &model.moe {
        Some(_) => (has("gate", "w1") || has("up", "w3"), has("down", "w2")),
        None => (false, false),
    };
    if moe_gate_up || moe_down {
        roles.retain(|r| {
            !matches!(
                r,
                FfnGate | FfnUp | FfnDown | FfnGateUp | FfnGateShared | FfnUpShared | FfnDownShared
            )
        });
    }
    let mut trainable: u64 = 0;
    let mut matrices: u64 = 0;
    let mut per_layer: std::collections::BTreeMap<u64, u64> = Default::default();
    let mut act_per_layer: std::collections::BTreeMap<u64, u64> = Default::default();
    let k = model.moe.as_ref().map_or(1, |m| m.experts_per_token);
    // Name-free walk: this runs on every calculator change in a training mode, and building
    // ~1000 tensor names per estimate cost milliseconds (DeepSeek-V3).
    crate::tensors::walk(model, |tensor| {
        let shape = tensor.shape();
        if shape.len() <= 1 || !roles.contains(&tensor.role) {
            return;
        }
        if tensor.layer.is_some_and(|l| !settings.adapts_layer(l)) {
            return;
        }
        let n = crate::tensors::shape_matrices(shape);
        let cols = crate::tensors::shape_row_len(shape);
        let rows = shape[shape.len() - 2];
        trainable = trainable.saturating_add(
            n.saturating_mul(settings.rank)
                .saturating_mul(rows.saturating_add(cols)),
        );
        matrices = matrices.saturating_add(n);
        if let Some(layer) = tensor.layer {
            *per_layer.entry(layer).or_default() += n;
            let per_token_matrices = if n > 1 { k.min(n) } else { 1 };
            let bytes = per_token_matrices
                .saturating_mul(cols.saturating_add(settings.rank))
                .saturating_mul(FP32_BYTES);
            let entry = act_per_layer.entry(layer).or_default();
            *entry = entry.saturating_add(bytes);
        }
    });
    let mut materialized = 0u64;
    if let Some(moe) = &model.moe {
        let moe_layers = adapted_layers
            .iter()
            .filter(|l| !moe.dense_layers.contains(l))
            .count() as u64;
        let (h, i, e) = (
            model.hidden_size,
            moe.expert_intermediate_size,
            moe.num_experts,
        );
        let mut per_layer_params = 0u64;
        if moe_gate_up {
            per_layer_params = per_layer_params.saturating_add(
                e.saturating_mul(settings.rank.saturating_mul(2))
                    .saturating_mul(h.saturating_add(i.saturating_mul(2))),
            );
            // W + ΔW of gate_up, materialized in bf16 on every forward and kept for backward.
            materialized = materialized
                .saturating_add(e.saturating_mul(i.saturating_mul(2)).saturating_mul(h));
        }
        if moe_down {
            per_layer_params = per_layer_params.saturating_add(
                e.saturating_mul(settings.rank)
                    .saturating_mul(i.saturating_add(h)),
            );
            materialized = materialized.saturating_add(e.saturating_mul(i).saturating_mul(h));
        }
        if per_layer_params > 0 {
            trainable = trainable.saturating_add(per_layer_params.saturating_mul(moe_layers));
            matrices = matrices.saturating_add(
                moe_layers.saturating_mul(u64::from(moe_gate_up) + u64::from(moe_down)),
            );
        }
    }
    // peft refuses a config whose targets match no module ("Target modules ... not found in the
    // base model"); an estimate of training nothing would be silently wrong.
    if matrices == 0 {
        return Err(CoreError::Unknown {
            kind: "LoRA target module".into(),
            name: settings.target_modules.join(","),
            hint: format!(
                "none of these names a weight matrix of {}; use any of: {LORA_TARGET_NAMES}",
                model.name
            ),
        });
    }
    Ok(LoraParams {
        first_adapted_layer: adapted_layers.first().copied().unwrap_or(0),
        adapted_layers: adapted_layers.len() as u64,
        trainable_params: trainable,
        adapted_matrices: matrices,
        adapted_per_layer: per_layer.values().copied().max().unwrap_or(0),
        activation_bytes_per_token_layer: act_per_layer.values().copied().max().unwrap_or(0),
        materialized_expert_bytes_per_layer: materialized.saturating_mul(2),
    })
}

/// Activation element size during training: bf16 (mixed and pure) or fp32.
fn training_activation_bytes(mode: &Mode) -> u64 {
    match mode {
        Mode::Full(FullSettings {
            precision: TrainingPrecision::Fp32,
            ..
        }) => 4,
        _ => 2,
    }
}

/// Activations stored per token of one layer, in elements (see the module docs).
/// `experts_trained`: whether the base weights (routed experts included) receive gradients
/// (full fine-tuning); frozen linear layers keep no input for a weight gradient.
pub fn layer_activation_elements_per_token(
    model: &ModelSpec,
    layer: u64,
    experts_trained: bool,
) -> u64 {
    let h = model.hidden_size;
    let (q_dim, kv_dim) = attention_widths(model);
    let mlp = match &model.moe {
        // Per (token, expert) slot the grouped_mm path keeps gate_up, its masked copy, SiLU and
        // the product (4·I) and the down output the routing weights multiply (h); when the
        // experts are trained it also keeps the gathered input for their weight gradient and
        // the down output's copy (2·h more): the inference working set of activations.rs.
        Some(moe) if !moe.dense_layers.contains(&layer) => {
            let slot_h = if experts_trained { 3 } else { 1 };
            moe.experts_per_token
                .saturating_mul(
                    h.saturating_mul(slot_h)
                        .saturating_add(moe.expert_intermediate_size.saturating_mul(4)),
                )
                .saturating_add(moe.shared_intermediate_size.saturating_mul(4))
                .saturating_add(moe.num_experts)
        }
        // gate output (SiLU's input), SiLU(gate) and up (the product's inputs), and the product
        // itself when `down_proj` is trained (a frozen linear keeps no input).
        _ => model
            .intermediate_size
            .saturating_mul(if experts_trained { 4 } else { 3 }),
    };
    // The outputs of the two norms that feed projections (2·h), kept by trained projections
    // only (peft's own fp32 input copies are counted with the adapters); the norms' own saved
    // tensors are counted in bytes by `norm_saved_bytes_per_token`.
    let norm_outputs = if experts_trained {
        h.saturating_mul(2)
    } else {
        0
    };
    norm_outputs
        .saturating_add(q_dim.saturating_mul(2))
        .saturating_add(kv_dim.saturating_mul(2))
        .saturating_add(mlp)
}

/// Bytes the RMSNorms of one layer save per token for the backward pass. transformers computes
/// RMSNorm in fp32 (`hidden_states.to(torch.float32)`): each norm keeps its fp32 input copy
/// (4·h bytes); when the norm weight is trained it also keeps the normalized tensor its weight
/// multiplies (Llama-style: in the activation dtype; Gemma-style `(1 + weight)` scaling: fp32).
/// Gemma-2/3 have four norms per layer, the others two.
pub fn norm_saved_bytes_per_token(model: &ModelSpec, weights_trained: bool, e: u64) -> u64 {
    let gemma = matches!(
        model.architecture,
        Architecture::Gemma | Architecture::Gemma2 | Architecture::Gemma3
    );
    let norms: u64 = if matches!(
        model.architecture,
        Architecture::Gemma2 | Architecture::Gemma3
    ) {
        4
    } else {
        2
    };
    let input_copy = FP32_BYTES.max(e);
    let normalized = match (weights_trained, gemma) {
        (false, _) => 0,
        (true, true) => FP32_BYTES.max(e),
        (true, false) => e,
    };
    norms
        .saturating_mul(input_copy.saturating_add(normalized))
        .saturating_mul(model.hidden_size)
}

/// Memory of one training step beyond the (frozen or trained) weights.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainingBytes {
    /// Bytes of the weights as they sit in memory during training (the estimate's
    /// `weights_bytes` for full fine-tuning; for LoRA/QLoRA the caller's frozen-base bytes).
    pub weights_bytes: u64,
    /// Parameters that receive gradients.
    pub trainable_params: u64,
    /// Gradients.
    pub gradients_bytes: u64,
    /// fp32 master weights (mixed precision) or fp32 adapters (LoRA).
    pub master_weights_bytes: u64,
    /// Optimizer state (moments).
    pub optimizer_bytes: u64,
    /// Temporary of the optimizer step (PyTorch foreach AdamW).
    pub optimizer_step_temp_bytes: u64,
    /// Activations kept for the backward pass, loss included.
    pub activation_bytes: u64,
    /// Everything but `weights_bytes`: master + optimizer state +
    /// `max(activations, gradients + optimizer step temporary)`. The backward pass frees
    /// activations as it fills gradients, and the step's temporary comes after the activations
    /// are gone; measured peaks (H200, tests/data/measured) follow this shape.
    pub training_bytes: u64,
    /// What was assumed, in words.
    pub assumptions: Vec<String>,
}

/// Activation bytes of one training step: stored activations for `batch × seq`, logits and loss.
pub fn training_activation_bytes_for(
    model: &ModelSpec,
    mode: &Mode,
    batch: u64,
    seq: u64,
    fused_attention: bool,
    lora: Option<&LoraParams>,
) -> u64 {
    let e = training_activation_bytes(mode);
    let tokens = batch.saturating_mul(seq);
    let scores_per_token = if fused_attention {
        0
    } else {
        model
            .num_attention_heads
            .saturating_mul(seq)
            .saturating_mul(e.saturating_add(FP32_BYTES))
    };
    let experts_trained = matches!(mode, Mode::Full(_));
    let materialized = lora.map_or(0, |l| l.materialized_expert_bytes_per_layer);
    let norm_bytes = norm_saved_bytes_per_token(model, experts_trained, e);
    // LoRA on a subset of layers (peft's `layers_to_transform`): only adapted layers carry
    // peft's fp32 input copies and materialized experts.
    let settings = match mode {
        Mode::Lora(l) | Mode::Qlora(l) => Some(l),
        _ => None,
    };
    let adapted = |layer: u64| settings.is_none_or(|l| l.adapts_layer(layer));
    let layer_bytes = |layer: u64| {
        let moe_layer = model
            .moe
            .as_ref()
            .is_some_and(|m| !m.dense_layers.contains(&layer));
        let (lora_per_token, materialized) = if adapted(layer) {
            (
                lora.map_or(0, |l| l.activation_bytes_per_token_layer),
                materialized,
            )
        } else {
            (0, 0)
        };
        tokens
            .saturating_mul(
                layer_activation_elements_per_token(model, layer, experts_trained)
                    .saturating_mul(e)
                    .saturating_add(norm_bytes)
                    .saturating_add(scores_per_token)
                    .saturating_add(lora_per_token),
            )
            .saturating_add(if moe_layer { materialized } else { 0 })
    };
    // Autograd records (and keeps saved tensors for) only operations with an input that
    // requires grad. With a frozen base and a frozen embedding, nothing before the first
    // adapted layer does: those layers run as if under `no_grad`. From the first adapted layer
    // on, every layer (adapted or not) keeps what its input gradient needs. Without
    // checkpointing peft does not make the embedding output require grad (it does so only
    // when the model has gradient checkpointing on); a script that calls
    // `enable_input_require_grads` itself keeps every layer's activations.
    let first_kept = lora.map_or(0, |l| l.first_adapted_layer);
    // Final norm input/output, and the loss at the start of the backward pass: the logits in the
    // activation dtype (kept by the model output), cross-entropy's saved fp32 log-softmax, the
    // fp32 gradient arriving at it and the fp32 gradient it returns (the peak measured on an H200
    // is exactly one fp32 logits tensor above the forward peak).
    let final_hidden = tokens
        .saturating_mul(model.hidden_size)
        .saturating_mul(2)
        .saturating_mul(e);
    let logits = tokens
        .saturating_mul(model.vocab_size)
        .saturating_mul(e.saturating_add(FP32_BYTES.saturating_mul(3)));
    let loss = final_hidden.saturating_add(logits);
    let layers = model.num_layers;
    if mode.gradient_checkpointing() {
        // Each layer's input stays; the loss's backward comes first, then one layer at a time is
        // recomputed and differentiated after the loss tensors are gone (its gradients are
        // transient and smaller than its saved activations).
        let inputs = tokens
            .saturating_mul(model.hidden_size)
            .saturating_mul(e)
            .saturating_mul(layers);
        // With checkpointing on, peft (`PeftModel._prepare_model_for_gradient_checkpointing`,
        // guarded by `is_gradient_checkpointing`) and transformers' `gradient_checkpointing_enable`
        // call `enable_input_require_grads`: the embedding output requires grad, so every layer
        // is in the graph and keeps its input, whichever layers are adapted.
        let largest = (0..layers).map(layer_bytes).max().unwrap_or(0);
        inputs.saturating_add(loss.max(largest))
    } else {
        (first_kept..layers)
            .fold(0u64, |acc, l| acc.saturating_add(layer_bytes(l)))
            .saturating_add(loss)
    }
}

/// Training memory for `mode` at `batch × seq`. `frozen_weights_bytes` are the base weights in
/// their format for LoRA/QLoRA (ignored for full fine-tuning, whose weights follow the training
/// precision). `fused_attention` is the attention kernel (SDPA/flash: true).
pub fn training_memory(
    model: &ModelSpec,
    mode: &Mode,
    frozen_weights_bytes: u64,
    batch: u64,
    seq: u64,
    fused_attention: bool,
) -> Result<TrainingBytes, CoreError> {
    let facts = ModelFacts::new(model);
    training_memory_with(
        &facts,
        mode,
        frozen_weights_bytes,
        batch,
        seq,
        fused_attention,
    )
}

/// [`training_memory`] of `facts`' model, with its counts computed at most once.
pub(crate) fn training_memory_with(
    facts: &ModelFacts<'_>,
    mode: &Mode,
    frozen_weights_bytes: u64,
    batch: u64,
    seq: u64,
    fused_attention: bool,
) -> Result<TrainingBytes, CoreError> {
    let model = facts.model();
    let mut assumptions = Vec::new();
    let attn = if fused_attention {
        "fused attention (SDPA/flash): no score matrix stored"
    } else {
        "eager attention: scores stored in bf16 and fp32 per head"
    };
    match mode {
        Mode::Inference => Ok(TrainingBytes {
            weights_bytes: frozen_weights_bytes,
            trainable_params: 0,
            gradients_bytes: 0,
            master_weights_bytes: 0,
            optimizer_bytes: 0,
            optimizer_step_temp_bytes: 0,
            activation_bytes: 0,
            training_bytes: 0,
            assumptions,
        }),
        Mode::Full(s) => {
            let p = facts.counts().total;
            let (w, g, master, state_elem, state_count) = match s.precision {
                TrainingPrecision::Fp32 => (4, 4, 0, 4, 2),
                TrainingPrecision::Bf16Mixed => (2, 2, 4, 4, 2),
                TrainingPrecision::Bf16 => (2, 2, 0, 2, 2),
            };
            let (opt_per_param, temp_per_param) = match s.optimizer {
                Optimizer::AdamW => (state_elem * state_count, state_elem),
                Optimizer::Adam8bit => (2, 0),
                Optimizer::Sgd => (0, 0),
            };
            let activation_bytes =
                training_activation_bytes_for(model, mode, batch, seq, fused_attention, None);
            let gradients_bytes = p.saturating_mul(g);
            let master_weights_bytes = p.saturating_mul(master);
            let optimizer_bytes = p.saturating_mul(opt_per_param);
            let temp = p.saturating_mul(temp_per_param);
            assumptions.push(format!(
                "full fine-tune {mode}: {w} B/param weights + {g} B grads + {master} B fp32 \
                 master + {opt_per_param} B optimizer state = {} B/param",
                w + g + master + opt_per_param
            ));
            if temp_per_param > 0 {
                assumptions.push(format!(
                    "PyTorch foreach AdamW step allocates one more {temp_per_param} B/param \
                     temporary (after activations are freed)"
                ));
            }
            assumptions.push(format!(
                "training activations for batch {batch} × {seq} tokens: {attn}; {}",
                if s.gradient_checkpointing {
                    "gradient checkpointing per decoder layer"
                } else {
                    "all layer activations kept"
                }
            ));
            Ok(TrainingBytes {
                weights_bytes: p.saturating_mul(w),
                trainable_params: p,
                gradients_bytes,
                master_weights_bytes,
                optimizer_bytes,
                optimizer_step_temp_bytes: temp,
                activation_bytes,
                training_bytes: master_weights_bytes
                    .saturating_add(optimizer_bytes)
                    .saturating_add(activation_bytes.max(gradients_bytes.saturating_add(temp))),
                assumptions,
            })
        }
        Mode::Lora(l) | Mode::Qlora(l) => {
            let lp = facts.lora_params(l)?;
            let a = lp.trainable_params;
            // peft upcasts adapters to fp32 (`autocast_adapter_dtype=True`); grads fp32; AdamW
            // two fp32 moments; foreach step temporary one fp32 copy.
            let master_weights_bytes = a.saturating_mul(4);
            let gradients_bytes = a.saturating_mul(4);
            let optimizer_bytes = a.saturating_mul(8);
            let temp = a.saturating_mul(4);
            let mut activation_bytes =
                training_activation_bytes_for(model, mode, batch, seq, fused_attention, Some(&lp));
            if lp.materialized_expert_bytes_per_layer > 0 {
                assumptions.push(format!(
                    "MoE: peft puts the gate/up/down adapters on the stacked experts (all \
                     experts, gate_up at rank 2r) and materializes W + ΔW of every expert, \
                     {:.0} MiB per MoE layer, kept for the backward pass; name only attention \
                     targets (q,k,v,o) to avoid it",
                    lp.materialized_expert_bytes_per_layer as f64 / (1u64 << 20) as f64
                ));
            }
            if let Mode::Qlora(_) = mode {
                // bitsandbytes' 4-bit matmul dequantizes each weight matrix to bf16 for the
                // product (forward and backward): one transient of the largest quantized matrix.
                let largest = facts.largest_matrix_elements();
                activation_bytes = activation_bytes.saturating_add(largest.saturating_mul(2));
                assumptions.push(format!(
                    "QLoRA: one bf16 dequantized copy of the largest 4-bit matrix ({:.0} MiB) \
                     during each matmul",
                    largest.saturating_mul(2) as f64 / (1u64 << 20) as f64
                ));
            }
            assumptions.push(format!(
                "{} rank {} on {} ({} matrices): {} trainable parameters, fp32 adapters + fp32 \
                 grads + AdamW = 16 B each",
                mode.name(),
                l.rank,
                l.target_modules.join(","),
                lp.adapted_matrices,
                a
            ));
            if l.layers.is_some() {
                assumptions.push(format!(
                    "adapters on layers {} (peft layers_to_transform): {}; not yet measured on \
                     a GPU",
                    describe_layers(l.layers.as_deref(), model.num_layers),
                    if l.gradient_checkpointing {
                        "with checkpointing the embedding output requires grad, so every \
                         layer keeps its input"
                    } else {
                        "layers before the first adapted one keep no activations (nothing \
                         there requires grad)"
                    }
                ));
            }
            assumptions.push(format!(
                "training activations for batch {batch} × {seq} tokens: {attn}; {}; frozen \
                 linear layers keep no inputs, adapted ones an fp32 copy for peft",
                if l.gradient_checkpointing {
                    "gradient checkpointing per decoder layer"
                } else if lp.first_adapted_layer > 0 {
                    "activations kept from the first adapted layer to the loss"
                } else {
                    "all layer activations kept"
                }
            ));
            Ok(TrainingBytes {
                weights_bytes: frozen_weights_bytes,
                trainable_params: a,
                gradients_bytes,
                master_weights_bytes,
                optimizer_bytes,
                optimizer_step_temp_bytes: temp,
                activation_bytes,
                training_bytes: master_weights_bytes
                    .saturating_add(optimizer_bytes)
                    .saturating_add(activation_bytes.max(gradients_bytes.saturating_add(temp))),
                assumptions,
            })
        }
    }
}
