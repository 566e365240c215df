//! `headroom fit`: will MODEL fit on a device, and how fast will it run?
//!
//! Two layers, as in ripgrep: [`FitArgs`] is checked first (numbers in range, names that parse,
//! a device given) without touching the file system or the network; only then is the model read,
//! fetched or looked up, and the estimate computed by `headroom-core`.

pub mod model_input;
pub mod table;

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::ValueEnum;
use headroom_core::{
    CoreError,
    advice::{FormatChoice, RowOutcome, TrainingAdvice},
    answer::{Answer, CheckpointCheck, CheckpointSize, ContextAsk, Question, answer},
    components::{CacheComponent, Component, LayerKindCount},
    devices::{self, DeviceSpec},
    error::Setting,
    estimate::{Estimate, Verdict},
    kv_cache::KvDtype,
    limits::{MAX_BATCH, MAX_CONTEXT_TOKENS, MAX_DEVICES, MAX_LORA_RANK, MAX_MEMORY_GIB},
    model::ModelSpec,
    quant::WeightFormat,
    report::ProbeReport,
    runtime::Runtime,
    training::{
        DEFAULT_LORA_RANK, DEFAULT_LORA_TARGETS, FullSettings, LoraSettings, Mode, Optimizer,
        TrainingPrecision, describe_layers,
    },
    units::{GIB, MIB},
};
use serde::Serialize;

use self::{
    model_input::{ModelSource, ResolvedModel},
    table::{Align, Table, gib, thousands, tokens_per_s},
};

/// The JSON output, one object per format.
///
/// `headroom fit MODEL --json` prints one such object; `--quant all --json` prints an array of
/// them, one per format that could be estimated, in the order of `WeightFormat::all()`.
///
/// ```json
/// {"model": "Llama-3.1-8B", "params_total": 8030261248, "params_active": 8030261248,
///  "quant": "Q4_K_M", "context": 4096, "batch": 1, "weights_bytes": 4912898048,
///  "kv_cache_bytes": 536870912, "activation_bytes": 109051904, "overhead_bytes": 524288000,
///  "training_bytes": 0, "total_bytes": 6083108864, "per_device_bytes": 6083108864,
///  "device": "NVIDIA GeForce RTX 4090", "usable_bytes": 25769803776, "devices_needed": 1,
///  "fits": true, "verdict": "fits", "decode_tokens_per_s": 167.86,
///  "prefill_tokens_per_s": 16389.35, "assumptions": ["context 4096 tokens (default: ...)"],
///  "runtime": "llama.cpp", "mode": "inference", "kv_cache_dtype": "f16", "device_count": 1,
///  "device_id": "rtx-4090", "model_source": "config Llama-3.1-8B.json",
///  "longest_context": 131072, "best_format": {"format": "bf16", "runtime": "transformers",
///  "verdict": "fits", "total_bytes": 17574666240, "decode_tokens_per_s": 55.7}}
/// ```
#[derive(Serialize)]
struct FitJson<'a> {
    #[serde(flatten)]
    estimate: &'a Estimate,
    /// Catalog id of the device (`measured` when it came from a probe report alone).
    device_id: &'a str,
    /// Where the model came from: a file, the catalog, or a Hub URL.
    model_source: String,
    /// Longest context that fits with everything else as given (`null` if none); one format only.
    #[serde(skip_serializing_if = "Option::is_none")]
    longest_context: Option<Option<u64>>,
    /// Highest-precision format that fits (`null` if none); one format only.
    #[serde(skip_serializing_if = "Option::is_none")]
    best_format: Option<Option<&'a FormatChoice>>,
    /// Training settings that fit; training modes, one format only.
    #[serde(skip_serializing_if = "Option::is_none")]
    training_advice: Option<&'a TrainingAdvice>,
    /// Decoder layers (0-based) that carry LoRA adapters; every layer unless --lora-layers
    /// names fewer. LoRA/QLoRA only.
    #[serde(skip_serializing_if = "Option::is_none")]
    lora_layers: Option<Vec<u64>>,
    /// The checkpoint's headers against the config (a .gguf file or safetensors shards).
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpoint: Option<&'a CheckpointCheck>,
    /// Whether every count is exact; one format only.
    #[serde(skip_serializing_if = "Option::is_none")]
    exact: Option<bool>,
    /// What is approximated and why; one format only.
    #[serde(skip_serializing_if = "Option::is_none")]
    approximations: Option<&'a [String]>,
    /// Parameters per component; one format only.
    #[serde(skip_serializing_if = "Option::is_none")]
    components: Option<&'a [Component]>,
    /// Decoder layers per (mixer, MLP) kind; one format only.
    #[serde(skip_serializing_if = "Option::is_none")]
    layer_kinds: Option<&'a [LayerKindCount]>,
    /// Cache per mixer kind for one sequence (bytes per token, state bytes per sequence); one
    /// format only.
    #[serde(skip_serializing_if = "Option::is_none")]
    cache: Option<&'a [CacheComponent]>,
}

/// What the memory is for.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ModeArg {
    /// Generation only.
    Inference,
    /// LoRA adapters on a frozen base in the chosen format.
    Lora,
    /// LoRA adapters on a 4-bit NF4 base.
    Qlora,
    /// Every weight trained.
    Full,
}

impl ModeArg {
    fn name(self) -> &'static str {
        match self {
            Self::Inference => "inference",
            Self::Lora => "lora",
            Self::Qlora => "qlora",
            Self::Full => "full",
        }
    }
}

/// KV cache element type.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum KvDtypeArg {
    F16,
    Bf16,
    Fp8,
    #[value(name = "q8_0")]
    Q8_0,
    #[value(name = "q4_0")]
    Q4_0,
}

impl From<KvDtypeArg> for KvDtype {
    fn from(arg: KvDtypeArg) -> Self {
        match arg {
            KvDtypeArg::F16 => KvDtype::F16,
            KvDtypeArg::Bf16 => KvDtype::Bf16,
            KvDtypeArg::Fp8 => KvDtype::Fp8,
            KvDtypeArg::Q8_0 => KvDtype::Q8_0,
            KvDtypeArg::Q4_0 => KvDtype::Q4_0,
        }
    }
}

/// Optimizer of a full fine-tune.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OptimizerArg {
    /// AdamW: two fp32 moments per parameter.
    Adamw,
    /// bitsandbytes 8-bit Adam.
    Adam8bit,
    /// SGD without momentum: no optimizer state.
    Sgd,
}

/// Precision of a full fine-tune.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PrecisionArg {
    /// Everything in fp32.
    Fp32,
    /// bf16 weights and gradients with an fp32 master copy.
    Bf16Mixed,
}

/// Arguments of `headroom fit`.
#[derive(clap::Args)]
#[command(after_long_help = AFTER_HELP)]
pub struct FitArgs {
    /// A catalog name (see `headroom models`), a path to a config.json or to a folder holding one,
    /// or a Hugging Face id owner/name or its model page URL (config.json fetched from $HF_ENDPOINT,
    /// default https://huggingface.co, with $HF_TOKEN when set). Checked in that order: existing
    /// path, catalog, Hub.
    #[arg(value_name = "MODEL")]
    model: String,

    /// Weight format, e.g. bf16, fp8, Q4_K_M, nf4, gptq-4bit-g128, mlx-4bit; or `all` to compare
    /// every format side by side. Default: the checkpoint's own precision (NF4 with double
    /// quantization for --mode qlora).
    #[arg(long, short = 'q', value_name = "Q|all")]
    quant: Option<String>,

    /// Context length in tokens (prompt + generated): a count such as 8192, with a k or m suffix
    /// (32k = 32,768; 1m = 1,048,576), or `max` for the model's maximum. Default: 4096, or the
    /// model's maximum if smaller — never silently the maximum.
    #[arg(long, short = 'c', value_name = "TOKENS", allow_negative_numbers = true,
          value_parser = parse_context)]
    context: Option<ContextArg>,

    /// Sequences processed together.
    #[arg(long, short = 'b', value_name = "B", default_value_t = 1, allow_negative_numbers = true,
          value_parser = clap::value_parser!(u64).range(1..=MAX_BATCH))]
    batch: u64,

    /// What the memory is for.
    #[arg(long, value_enum, default_value_t = ModeArg::Inference)]
    mode: ModeArg,

    /// Engine: transformers (PyTorch CUDA), transformers-mps, llama.cpp, mlx, vllm, or
    /// vllm:SHARE (e.g. vllm:0.85, its gpu_memory_utilization). Default: llama.cpp for GGUF
    /// formats, MLX for MLX formats and on Apple silicon, transformers on discrete GPUs.
    #[arg(long, short = 'r', value_name = "R")]
    runtime: Option<String>,

    /// Device from the catalog (see `headroom devices`), e.g. rtx-4090, h100-sxm, m2-10c-16gb.
    /// With --probe, the catalog entry's figures are replaced by the measured ones.
    #[arg(long, short = 'd', value_name = "NAME")]
    device: Option<String>,

    /// Identical devices the model is split over (tensor or pipeline parallel).
    #[arg(long = "devices", value_name = "N", default_value_t = 1, allow_negative_numbers = true,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_DEVICES)))]
    device_count: u32,

    /// KV cache element type. Default: f16 in llama.cpp and for float16 checkpoints, else bf16
    /// (the model's own dtype).
    #[arg(long, value_enum, value_name = "T")]
    kv_dtype: Option<KvDtypeArg>,

    /// LoRA rank (--mode lora|qlora). Default: 16.
    #[arg(long, value_name = "R", allow_negative_numbers = true,
          value_parser = clap::value_parser!(u64).range(1..=MAX_LORA_RANK))]
    lora_rank: Option<u64>,

    /// Modules adapted by LoRA, comma-separated (--mode lora|qlora): q, k, v, o, gate, up, down,
    /// the fused qkv and gate_up (Phi-3), MLA's q_a, q_b, kv_a, kv_b, experts, or all-linear.
    /// Default: q,k,v,o,gate,up,down.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    lora_targets: Option<Vec<String>>,

    /// Decoder layers that get LoRA adapters (--mode lora|qlora), like peft's
    /// `layers_to_transform`: all, last:K, first:K, A-B, or a list such as 0,4,8-11 (0-based).
    /// Adapting only the last K layers keeps activations for those K layers only.
    /// Default: all.
    #[arg(long, value_name = "SPEC")]
    lora_layers: Option<String>,

    /// Gradient checkpointing: recompute activations in the backward pass (training modes).
    #[arg(long)]
    checkpointing: bool,

    /// Optimizer of a full fine-tune (--mode full). Default: adamw.
    #[arg(long, value_enum)]
    optimizer: Option<OptimizerArg>,

    /// Precision of a full fine-tune (--mode full). Default: bf16-mixed.
    #[arg(long, value_enum)]
    precision: Option<PrecisionArg>,

    /// macOS `iogpu.wired_limit_mb` (MiB), when raised with `sudo sysctl iogpu.wired_limit_mb=N`:
    /// replaces Metal's default share of unified memory on Apple devices.
    #[arg(long, value_name = "MB",
          value_parser = clap::value_parser!(u64).range(1..=MAX_MEMORY_GIB * 1024))]
    wired_limit_mb: Option<u64>,

    /// Host RAM beside a discrete GPU, GiB, for the offload verdict. Default: core's assumption
    /// (stated in the assumptions).
    #[arg(long, value_name = "GIB",
          value_parser = clap::value_parser!(u64).range(1..=MAX_MEMORY_GIB))]
    host_memory_gib: Option<u64>,

    /// A report written by `headroom probe`: its measured memory, bandwidth and compute replace
    /// the catalog's figures (alone, or on top of --device).
    #[arg(long, value_name = "REPORT.json")]
    probe: Option<PathBuf>,

    /// Leave out the vision and audio encoders and their projectors: memory for text
    /// generation only.
    #[arg(long)]
    text_only: bool,

    /// Print JSON instead of a table: one object, or with --quant all an array of objects.
    #[arg(long)]
    json: bool,
}

const AFTER_HELP: &str = "\
JSON (--json): one object with model, params_total, params_active, quant, context, batch,
weights_bytes, kv_cache_bytes, activation_bytes, overhead_bytes, training_bytes (0 for inference),
total_bytes, per_device_bytes, device, device_id, device_count, usable_bytes (one device),
devices_needed, fits, verdict (fits | fits_tightly | needs_offload | does_not_fit),
decode_tokens_per_s, prefill_tokens_per_s, assumptions (array of strings), runtime, mode,
kv_cache_dtype, model_source and, for one format, longest_context (null if nothing fits),
best_format ({format, runtime, verdict, total_bytes, decode_tokens_per_s} or null) and, for
training, training_advice; for lora/qlora, lora_layers (the adapted layers, 0-based); for a
.gguf file or safetensors checkpoint, checkpoint ({checkpoint_parameters, config_parameters,
parameters_agree, checkpoint_bytes, computed_bytes}). Byte counts are integers. With --quant
all: a JSON array of such objects, one per format that could be estimated, highest precision
first (without the advice).

Units: GiB = 2^30 bytes in tables; JSON gives bytes.

Environment (Hugging Face ids only):
  HF_ENDPOINT              the Hub to ask (default https://huggingface.co)
  HF_TOKEN                 access token for gated or private models
  HF_HUB_OFFLINE=1         read only the local Hugging Face cache
  HF_HUB_CACHE, HF_HOME    where that cache is (default ~/.cache/huggingface/hub); it is also
                           used when the Hub cannot be reached
  HF_HUB_DOWNLOAD_TIMEOUT  seconds before giving up (default 30)

Examples:
  headroom fit llama-3.1-8b --device rtx-4090
  headroom fit ./Llama-3.1-8B/config.json --quant Q4_K_M --context 32768 --device m2-10c-16gb
  headroom fit Qwen/Qwen2.5-7B --quant all --context 32k --device h100-sxm
  headroom fit llama-3.1-8b --mode qlora --batch 4 --context 2048 --checkpointing --device rtx-4090
  headroom fit llama-3.1-8b --mode lora --lora-layers last:8 --context 2048 --device rtx-4090
  headroom fit llama-3.1-8b --probe report.json";

/// `--context`: a token count or the model's maximum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ContextArg {
    /// This many tokens.
    Tokens(u64),
    /// `max_position_embeddings`.
    Max,
}

/// Parse `--context`: `8192`, `32k`/`32K` (× 1024, as context lengths are quoted: "128K" =
/// 131,072), `1m` (× 1024²), or `max`; within 1..=[`MAX_CONTEXT_TOKENS`].
fn parse_context(text: &str) -> Result<ContextArg, String> {
    let t = text.trim().to_ascii_lowercase();
    if t == "max" {
        return Ok(ContextArg::Max);
    }
    let (digits, scale) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1u64 << 20),
        _ => (t.as_str(), 1),
    };
    let expected = "expected a token count such as 8192, 32k or max";
    let count: u64 = digits.parse().map_err(|_| expected.to_owned())?;
    let tokens = count
        .checked_mul(scale)
        .ok_or_else(|| expected.to_owned())?;
    if !(1..=MAX_CONTEXT_TOKENS).contains(&tokens) {
        return Err(format!(
            "{tokens} tokens is not in 1..={MAX_CONTEXT_TOKENS}; give the tokens one request holds"
        ));
    }
    Ok(ContextArg::Tokens(tokens))
}

/// Which formats to estimate.
enum QuantChoice {
    /// The default for the model and mode.
    Default,
    /// One format.
    One(WeightFormat),
    /// Every format, side by side.
    All,
}

/// The arguments after the checks that need no I/O.
struct Checked {
    quant: QuantChoice,
    runtime: Option<Runtime>,
    mode: Mode,
    mode_name: &'static str,
}

/// First layer: every argument that can be checked without I/O.
fn check(args: &FitArgs) -> anyhow::Result<Checked> {
    let quant = match args.quant.as_deref().map(str::trim) {
        None => QuantChoice::Default,
        Some(q) if q.eq_ignore_ascii_case("all") => QuantChoice::All,
        Some(q) => QuantChoice::One(q.parse::<WeightFormat>().with_context(|| {
            format!("--quant `{q}`: list the formats with `headroom fit MODEL --quant all`")
        })?),
    };
    let runtime = match args.runtime.as_deref() {
        None => None,
        Some(r) => Some(
            r.parse::<Runtime>()
                .with_context(|| format!("--runtime `{r}`"))?,
        ),
    };
    // A training option in the wrong mode is a mistake worth stopping for: silently ignoring
    // it would answer a question the user did not ask.
    let lora = matches!(args.mode, ModeArg::Lora | ModeArg::Qlora);
    let misplaced = [
        (
            "--checkpointing",
            args.checkpointing && args.mode == ModeArg::Inference,
        ),
        ("--lora-rank", args.lora_rank.is_some() && !lora),
        ("--lora-targets", args.lora_targets.is_some() && !lora),
        ("--lora-layers", args.lora_layers.is_some() && !lora),
        (
            "--optimizer",
            args.optimizer.is_some() && args.mode != ModeArg::Full,
        ),
        (
            "--precision",
            args.precision.is_some() && args.mode != ModeArg::Full,
        ),
    ];
    if let Some((flag, _)) = misplaced.iter().find(|(_, wrong)| *wrong) {
        let modes = match *flag {
            "--checkpointing" => "--mode lora, qlora or full",
            "--lora-rank" | "--lora-targets" | "--lora-layers" => "--mode lora or qlora",
            _ => "--mode full",
        };
        bail!(
            "{flag} applies to {modes}, not --mode {}; add the mode or drop {flag}",
            args.mode.name()
        );
    }
    let mode = match args.mode {
        ModeArg::Inference => Mode::Inference,
        ModeArg::Lora | ModeArg::Qlora => {
            let mut targets: Vec<String> = Vec::new();
            let given = args.lora_targets.clone().unwrap_or_else(|| {
                DEFAULT_LORA_TARGETS
                    .iter()
                    .map(|t| (*t).to_owned())
                    .collect()
            });
            for target in given {
                let target = target.trim().to_owned();
                if target.is_empty() {
                    bail!(
                        "--lora-targets has an empty name; give a comma-separated list such as \
                         q,k,v,o"
                    );
                }
                if !targets.contains(&target) {
                    targets.push(target);
                }
            }
            let settings = LoraSettings {
                rank: args.lora_rank.unwrap_or(DEFAULT_LORA_RANK),
                target_modules: targets,
                gradient_checkpointing: args.checkpointing,
                // Checked against the model's layer count once the model is read (`run`).
                layers: None,
            };
            if args.mode == ModeArg::Lora {
                Mode::Lora(settings)
            } else {
                Mode::Qlora(settings)
            }
        }
        ModeArg::Full => Mode::Full(FullSettings {
            precision: match args.precision.unwrap_or(PrecisionArg::Bf16Mixed) {
                PrecisionArg::Fp32 => TrainingPrecision::Fp32,
                PrecisionArg::Bf16Mixed => TrainingPrecision::Bf16Mixed,
            },
            optimizer: match args.optimizer.unwrap_or(OptimizerArg::Adamw) {
                OptimizerArg::Adamw => Optimizer::AdamW,
                OptimizerArg::Adam8bit => Optimizer::Adam8bit,
                OptimizerArg::Sgd => Optimizer::Sgd,
            },
            gradient_checkpointing: args.checkpointing,
        }),
    };
    if args.device.is_none() && args.probe.is_none() {
        bail!(
            "no device given: pass --device NAME (list them with `headroom devices`, e.g. \
             --device rtx-4090) or --probe REPORT.json from `headroom probe`"
        );
    }
    Ok(Checked {
        quant,
        runtime,
        mode,
        mode_name: args.mode.name(),
    })
}

/// The device from the catalog, a probe report, or both.
fn resolve_device(args: &FitArgs) -> anyhow::Result<DeviceSpec> {
    let catalog = match args.device.as_deref() {
        Some(name) => Some(devices::find(name).context("--device")?),
        None => None,
    };
    let Some(path) = args.probe.as_deref() else {
        // `check` made sure one of the two was given.
        return catalog.context("no device given: pass --device NAME or --probe REPORT.json");
    };
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read probe report {}; check the path (write one with `headroom probe`)",
            path.display()
        )
    })?;
    let report = ProbeReport::from_json(&text)
        .with_context(|| format!("probe report {}", path.display()))?;
    let measured = report.measured_device();
    Ok(match catalog {
        Some(device) => {
            if !same_device(&device, &measured.name) {
                eprintln!(
                    "note: {} measured `{}`; its figures replace the catalog's for `{}`",
                    path.display(),
                    measured.name,
                    device.name
                );
            }
            device.with_measurements(&measured)
        }
        None => {
            if measured.memory_bytes.is_none() && measured.usable_bytes.is_none() {
                bail!(
                    "probe report {} does not say how much memory {} has; add --device NAME \
                     to take the memory size from the catalog (`headroom devices`)",
                    path.display(),
                    measured.name
                );
            }
            DeviceSpec::from_measured(&measured)
        }
    })
}

/// Whether a probe's adapter name plausibly names the catalog `device`: the first part of the
/// catalog id that holds a digit (`h100`, `4090`, `m2`) appears in the adapter name, ignoring case
/// and punctuation.
fn same_device(device: &DeviceSpec, adapter_name: &str) -> bool {
    let adapter = model_input::normalize(adapter_name);
    device
        .id
        .split('-')
        .find(|part| part.chars().any(|c| c.is_ascii_digit()))
        .is_none_or(|part| adapter.contains(&model_input::normalize(part)))
}

/// Run the command.
pub fn run(args: FitArgs) -> anyhow::Result<()> {
    let checked = check(&args)?;
    let device = resolve_device(&args)?;
    let ResolvedModel {
        spec,
        source,
        checkpoint,
    } = model_input::resolve(&args.model)?;
    if let Some(weights) = &checkpoint {
        eprintln!("{}", model_input::describe_checkpoint(weights));
    }
    let question = Question {
        model: spec.clone(),
        format: match &checked.quant {
            QuantChoice::One(format) => Some(format.clone()),
            QuantChoice::Default | QuantChoice::All => None,
        },
        context: match args.context {
            None => ContextAsk::Default,
            Some(ContextArg::Max) => ContextAsk::Max,
            Some(ContextArg::Tokens(tokens)) => ContextAsk::Tokens(tokens),
        },
        batch: args.batch,
        mode: checked.mode.clone(),
        lora_layers: args.lora_layers.clone(),
        runtime: checked.runtime,
        kv_dtype: args.kv_dtype.map(KvDtype::from),
        device: device.clone(),
        device_count: args.device_count,
        wired_limit_bytes: args.wired_limit_mb.map(|mb| mb * MIB),
        host_memory_bytes: args.host_memory_gib.map(|g| g * GIB),
        text_only: args.text_only,
        checkpoint: checkpoint.as_ref().map(CheckpointSize::from),
    };
    let answer = answer(&question).map_err(|err| {
        let about = match (&err, &question.format) {
            (
                CoreError::Setting {
                    setting: Setting::LoraLayers,
                    ..
                },
                _,
            ) => {
                format!("{} ({} layers)", spec.name, spec.num_layers)
            }
            (_, Some(format)) => format!("{} as {format}", spec.name),
            (_, None) => spec.name.clone(),
        };
        anyhow::anyhow!(
            "{about}: {}",
            err.worded(|s| flag(s).to_owned(), |s, v| format!("{} {v}", flag(s)))
        )
    })?;
    if answer.context_beyond_model_max {
        // Not an error: people run models past their trained length with rope scaling, but the
        // answer must say so.
        eprintln!(
            "note: --context {} is beyond {}'s max_position_embeddings ({}); quality past it is \
             not guaranteed",
            thousands(answer.estimate.context),
            spec.name,
            thousands(spec.max_context)
        );
    }
    let ctx = OutputContext {
        args: &args,
        checked: &checked,
        device: &device,
        spec: &spec,
        source: &source,
    };
    let mut out = String::new();
    if matches!(checked.quant, QuantChoice::All) {
        if args.json {
            let all: Vec<FitJson<'_>> = answer
                .formats
                .iter()
                .filter_map(|row| row.estimate().map(|e| ctx.json(e, None)))
                .collect();
            out.push_str(&serde_json::to_string_pretty(&all)?);
            out.push('\n');
        } else {
            ctx.comparison(&mut out, &answer);
        }
    } else if args.json {
        let json = ctx.json(&answer.estimate, Some(&answer));
        out.push_str(&serde_json::to_string_pretty(&json)?);
        out.push('\n');
    } else {
        ctx.human(&mut out, &answer);
    }
    write_stdout(&out)
}

/// The flag that sets `setting`, for core's errors.
fn flag(setting: Setting) -> &'static str {
    match setting {
        Setting::Format => "--quant",
        Setting::Context => "--context",
        Setting::Batch => "--batch",
        Setting::Mode => "--mode",
        Setting::Runtime => "--runtime",
        Setting::KvDtype => "--kv-dtype",
        Setting::Device => "--device",
        Setting::DeviceCount => "--devices",
        Setting::LoraRank => "--lora-rank",
        Setting::LoraLayers => "--lora-layers",
        Setting::WiredLimit => "--wired-limit-mb",
        Setting::HostMemory => "--host-memory-gib",
        // `Setting` is non-exhaustive: a new one is named by core's own word until it gets a flag.
        _ => setting.name(),
    }
}

/// Write everything at once; a closed pipe surfaces as an `io::Error` that `main` treats as
/// success.
pub fn write_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// Everything the output needs besides one result.
struct OutputContext<'a> {
    args: &'a FitArgs,
    checked: &'a Checked,
    device: &'a DeviceSpec,
    spec: &'a ModelSpec,
    source: &'a ModelSource,
}

/// `part` as a percentage of `whole`.
fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "n/a".to_owned()
    } else {
        format!("{:.0}%", part as f64 * 100.0 / whole as f64)
    }
}

/// The verdict in words a user acts on.
fn verdict_words(estimate: &Estimate) -> String {
    let usage = format!(
        "{} of {} usable ({})",
        gib(estimate.per_device_bytes),
        gib(estimate.usable_bytes),
        percent(estimate.per_device_bytes, estimate.usable_bytes)
    );
    let needed = estimate
        .devices_needed
        .filter(|n| *n > estimate.device_count.max(1))
        .map(|n| format!("; needs at least {n} such devices (--devices {n})"))
        .unwrap_or_default();
    match estimate.verdict {
        Verdict::Fits => format!("fits — {usage}"),
        Verdict::FitsTightly => {
            format!("fits tightly — {usage}; over 90% leaves little room for anything else")
        }
        Verdict::NeedsOffload => format!(
            "does not fit in GPU memory — {usage}; runs only with layers offloaded to the CPU \
             (much slower){needed}"
        ),
        Verdict::DoesNotFit => format!("does not fit — {usage}{needed}"),
    }
}

/// `~rate` or `n/a`.
fn approx_rate(rate: f64) -> String {
    let text = tokens_per_s(rate);
    if text == "n/a" {
        text
    } else {
        format!("~{text}")
    }
}

/// Short verdict for the comparison table.
fn verdict_short(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Fits => "fits",
        Verdict::FitsTightly => "fits tightly",
        Verdict::NeedsOffload => "needs offload",
        Verdict::DoesNotFit => "does not fit",
    }
}

/// The training settings that fit, one line each.
fn training_lines(out: &mut String, t: &TrainingAdvice) {
    use std::fmt::Write;
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let _ = writeln!(out, "training settings that fit:");
    let _ = writeln!(
        out,
        "  as given:                       {}",
        yes_no(t.fits_as_given)
    );
    if !t.fits_as_given {
        let _ = writeln!(
            out,
            "  with gradient checkpointing:    {}",
            yes_no(t.fits_with_checkpointing)
        );
    }
    let or_none = |v: Option<u64>| v.map_or_else(|| "none".to_owned(), thousands);
    let _ = writeln!(
        out,
        "  largest batch at this length:   {}",
        or_none(t.max_batch)
    );
    let _ = writeln!(
        out,
        "  longest sequence at batch 1:    {} tokens",
        or_none(t.max_sequence_tokens)
    );
    if let Some(rank) = t.max_lora_rank {
        let _ = writeln!(out, "  largest LoRA rank:              {rank}");
    }
    if let Some(targets) = &t.lora_targets {
        let _ = writeln!(
            out,
            "  widest LoRA targets:            {}",
            targets.join(",")
        );
    }
    if let Some(k) = t.max_lora_last_layers {
        let ckpt = if t.lora_last_layers_need_checkpointing {
            " (with checkpointing)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  LoRA on the last k layers:      k = {k}{ckpt} (--lora-layers last:{k})"
        );
    }
    if !t.suggestions.is_empty() {
        let _ = writeln!(out, "suggestions:");
        for s in &t.suggestions {
            let _ = writeln!(out, "  - {s}");
        }
    }
}

/// Effective bits per stored weight: weight bytes × 8 ÷ parameters.
fn bits_per_weight(estimate: &Estimate) -> String {
    if estimate.params_total == 0 {
        return "n/a".to_owned();
    }
    format!(
        "{:.2}",
        estimate.weights_bytes as f64 * 8.0 / estimate.params_total as f64
    )
}

impl OutputContext<'_> {
    /// One format's JSON object; `answer` adds the advice (one format only).
    fn json<'r>(&'r self, estimate: &'r Estimate, answer: Option<&'r Answer>) -> FitJson<'r> {
        FitJson {
            estimate,
            device_id: &self.device.id,
            model_source: self.source.to_string(),
            longest_context: answer.map(|a| a.longest_context),
            best_format: answer.map(|a| a.best_format.as_ref()),
            training_advice: answer.and_then(|a| a.training.as_ref()),
            lora_layers: answer.and_then(|a| a.lora_layers.clone()),
            checkpoint: answer.and_then(|a| a.checkpoint.as_ref()),
            exact: answer.map(|a| a.exact),
            approximations: answer.map(|a| a.approximations.as_slice()),
            components: answer.map(|a| a.components.as_slice()),
            layer_kinds: answer.map(|a| a.layer_kinds.as_slice()),
            cache: answer.map(|a| a.cache.as_slice()),
        }
    }

    /// The header lines: model, settings, device.
    fn header(&self, out: &mut String, answer: &Answer, runtime: Option<&str>) {
        let estimate = &answer.estimate;
        use std::fmt::Write;
        let spec = self.spec;
        let active = if estimate.params_active != estimate.params_total {
            format!(", {} active", thousands(estimate.params_active))
        } else {
            String::new()
        };
        let approximate = if spec.approximate {
            " [approximate: unknown architecture, generic fields]"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "{} — {} parameters{active}{approximate} (from {})",
            spec.name,
            thousands(estimate.params_total),
            self.source
        );
        let runtime = runtime.map(|r| format!(" · {r}")).unwrap_or_default();
        let kv = &estimate.kv_cache_dtype;
        let layers = match &answer.request.mode {
            Mode::Lora(l) | Mode::Qlora(l) => format!(
                " on layers {}",
                describe_layers(l.layers.as_deref(), spec.num_layers)
            ),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "context {} tokens · batch {} · {}{layers}{runtime} · KV cache {kv}",
            thousands(estimate.context),
            estimate.batch,
            self.checked.mode_name,
        );
        let count = if self.args.device_count > 1 {
            format!(" × {}", self.args.device_count)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "device: {} ({} memory){count}",
            estimate.device,
            gib(self.device.memory_bytes)
        );
        if self.args.probe.is_some() {
            let _ = writeln!(out, "device figures: {}", self.device.source);
        }
    }

    /// The model part by part: parameters per component, the layer kinds, the cache per mixer
    /// kind, and what is approximated.
    fn model_parts(&self, out: &mut String, answer: &Answer) {
        use std::fmt::Write;
        let mut parts = Table::new(&[
            ("part", Align::Left),
            ("parameters", Align::Right),
            ("active", Align::Right),
        ]);
        for c in &answer.components {
            let name = if c.in_total {
                c.kind.name().replace('_', " ")
            } else {
                format!("{} (not loaded)", c.kind.name().replace('_', " "))
            };
            parts.row(vec![name, thousands(c.params), thousands(c.active_params)]);
        }
        out.push('\n');
        out.push_str(&parts.render());
        let kinds: Vec<String> = answer
            .layer_kinds
            .iter()
            .map(|k| format!("{} × {} + {}", k.layers, k.mixer, k.mlp))
            .collect();
        let _ = writeln!(out, "layers: {}", kinds.join(", "));
        for c in answer
            .cache
            .iter()
            .filter(|c| c.bytes_per_token > 0 || c.state_bytes_per_sequence > 0)
        {
            let per_token = if c.bytes_per_token > 0 {
                let limit = c
                    .token_limit
                    .map(|t| format!(", at most {} tokens", thousands(t)))
                    .unwrap_or_default();
                format!("{} B per token{limit}", thousands(c.bytes_per_token))
            } else {
                "no per-token cache".to_owned()
            };
            let state = if c.state_bytes_per_sequence > 0 {
                format!(
                    " + {} B state per sequence",
                    thousands(c.state_bytes_per_sequence)
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "cache of {} {} layers: {per_token}{state}",
                c.layers, c.mixer
            );
        }
        if answer.text_only {
            let _ = writeln!(out, "text only: vision/audio parts left out (--text-only)");
        }
        if !answer.exact {
            let _ = writeln!(out, "approximate:");
            for a in &answer.approximations {
                let _ = writeln!(out, "  - {a}");
            }
        }
    }

    /// One format in full: components, verdict, speed, advice, assumptions.
    fn human(&self, out: &mut String, answer: &Answer) {
        use std::fmt::Write;
        let e = &answer.estimate;
        let advice = answer;
        self.header(out, answer, Some(&e.runtime));
        let _ = writeln!(
            out,
            "format: {} ({} bits per weight)\n",
            e.quant,
            bits_per_weight(e)
        );
        let mut table = Table::new(&[
            ("component", Align::Left),
            ("GiB", Align::Right),
            ("bytes", Align::Right),
        ]);
        let mut row = |name: &str, bytes: u64| {
            table.row(vec![
                name.to_owned(),
                format!("{:.2}", bytes as f64 / headroom_core::units::GIB as f64),
                thousands(bytes),
            ]);
        };
        row("weights", e.weights_bytes);
        row("KV cache", e.kv_cache_bytes);
        row("activations", e.activation_bytes);
        row("runtime overhead", e.overhead_bytes);
        if !matches!(answer.request.mode, Mode::Inference) {
            row("training", e.training_bytes);
        }
        row("total", e.total_bytes);
        if self.args.device_count > 1 {
            row(
                &format!("per device (of {})", self.args.device_count),
                e.per_device_bytes,
            );
        }
        row("usable (one device)", e.usable_bytes);
        out.push_str(&table.render());
        self.model_parts(out, answer);
        let _ = writeln!(out, "\nverdict: {}", verdict_words(e));
        let speed = if matches!(answer.request.mode, Mode::Inference) {
            format!(
                "{} tokens/s decode per sequence, {} tokens/s prefill (estimates{})",
                approx_rate(e.decode_tokens_per_s),
                approx_rate(e.prefill_tokens_per_s),
                if e.fits {
                    ""
                } else {
                    "; with everything in GPU memory, which it is not"
                }
            )
        } else {
            "not estimated for training".to_owned()
        };
        let _ = writeln!(out, "speed:   {speed}");
        let longest = match advice.longest_context {
            Some(tokens) => format!(
                "{} tokens (model maximum {})",
                thousands(tokens),
                thousands(self.spec.max_context)
            ),
            None => "none — not even a short context fits with these settings".to_owned(),
        };
        let _ = writeln!(out, "longest context that fits: {longest}");
        let best = match &advice.best_format {
            Some(choice) => format!(
                "{} ({}, {} total, {} tokens/s decode, {})",
                choice.format,
                verdict_short(choice.verdict),
                gib(choice.total_bytes),
                approx_rate(choice.decode_tokens_per_s),
                choice.runtime
            ),
            None => "none — no format fits at this context and batch".to_owned(),
        };
        let _ = writeln!(out, "best format that fits:     {best}");
        if let Some(training) = &advice.training {
            training_lines(out, training);
        }
        if !e.assumptions.is_empty() {
            let _ = writeln!(out, "\nassumptions:");
            for assumption in &e.assumptions {
                let _ = writeln!(out, "  - {assumption}");
            }
        }
    }

    /// Every format side by side.
    fn comparison(&self, out: &mut String, answer: &Answer) {
        use std::fmt::Write;
        let runtime = self.checked.runtime.map(|r| r.to_string());
        self.header(out, answer, runtime.as_deref());
        if runtime.is_none() {
            let _ = writeln!(
                out,
                "runtime: each format's usual engine (column `runtime`); pick one with --runtime"
            );
        }
        out.push('\n');
        let mut table = Table::new(&[
            ("format", Align::Left),
            ("bpw", Align::Right),
            ("weights", Align::Right),
            ("total", Align::Right),
            ("usable", Align::Right),
            ("verdict", Align::Left),
            ("decode tok/s", Align::Right),
            ("prefill tok/s", Align::Right),
            ("runtime", Align::Left),
        ]);
        // One line per reason: a training comparison skips every GGUF type for the same one.
        let mut reasons: Vec<(&str, Vec<&str>)> = Vec::new();
        for row in &answer.formats {
            match &row.outcome {
                RowOutcome::Estimated(e) => table.row(vec![
                    e.quant.clone(),
                    bits_per_weight(e),
                    gib(e.weights_bytes),
                    gib(e.per_device_bytes),
                    gib(e.usable_bytes),
                    verdict_short(e.verdict).to_owned(),
                    tokens_per_s(e.decode_tokens_per_s),
                    tokens_per_s(e.prefill_tokens_per_s),
                    if e.kv_cache_dtype == answer.estimate.kv_cache_dtype {
                        row.runtime.clone()
                    } else {
                        format!("{} (KV {})", row.runtime, e.kv_cache_dtype)
                    },
                ]),
                RowOutcome::Skipped(why) => {
                    match reasons.iter_mut().find(|(reason, _)| reason == why) {
                        Some((_, formats)) => formats.push(&row.format),
                        None => reasons.push((why, vec![&row.format])),
                    }
                }
            }
        }
        out.push_str(&table.render());
        let fitting = answer
            .formats
            .iter()
            .filter(|r| r.estimate().is_some_and(|e| e.fits))
            .count();
        let _ = writeln!(
            out,
            "\n{fitting} of {} formats fit; `total` is per device, GiB = 2^30 bytes.",
            table.len()
        );
        for (why, formats) in reasons {
            let _ = writeln!(out, "skipped {}: {why}", formats.join(", "));
        }
        let _ = writeln!(
            out,
            "For one format's components and assumptions: headroom fit {} --quant FORMAT ...",
            self.args.model
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_forms() {
        assert_eq!(parse_context("8192"), Ok(ContextArg::Tokens(8192)));
        assert_eq!(parse_context("32k"), Ok(ContextArg::Tokens(32_768)));
        assert_eq!(parse_context("128K"), Ok(ContextArg::Tokens(131_072)));
        assert_eq!(parse_context("1m"), Ok(ContextArg::Tokens(1_048_576)));
        assert_eq!(parse_context("max"), Ok(ContextArg::Max));
        for bad in [
            "0",
            "0k",
            "-1",
            "lots",
            "",
            "k",
            "17m",
            "99999999999999999999k",
        ] {
            assert!(parse_context(bad).is_err(), "{bad}");
        }
    }
}
