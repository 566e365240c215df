//! `headroom fit`'s arguments: the clap types, the `--help` text, and the first layer of checks
//! (numbers in range, names that parse, a device given), which need no file system or network.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::ValueEnum;
use headroom_core::{
    error::Setting,
    kv_cache::KvDtype,
    limits::{MAX_BATCH, MAX_CONTEXT_TOKENS, MAX_DEVICES, MAX_LORA_RANK, MAX_MEMORY_GIB},
    macos::MacosVersion,
    quant::WeightFormat,
    runtime::Runtime,
    training::{
        DEFAULT_LORA_RANK, DEFAULT_LORA_TARGETS, FullSettings, LoraSettings, Mode, Optimizer,
        TrainingPrecision,
    },
};

/// What the memory is for.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum ModeArg {
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
    pub(super) fn name(self) -> &'static str {
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
pub(super) enum KvDtypeArg {
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
pub(super) enum OptimizerArg {
    /// AdamW: two fp32 moments per parameter.
    Adamw,
    /// bitsandbytes 8-bit Adam.
    Adam8bit,
    /// bitsandbytes PagedAdamW: fp32 moments in CUDA managed memory, paged to host RAM when the
    /// GPU is full (not counted on the GPU).
    PagedAdamw,
    /// bitsandbytes PagedAdamW8bit: 8-bit moments in CUDA managed memory.
    PagedAdam8bit,
    /// SGD without momentum: no optimizer state.
    Sgd,
}

/// Precision of a full fine-tune.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum PrecisionArg {
    /// Everything in fp32.
    Fp32,
    /// bf16 weights and gradients with an fp32 master copy.
    Bf16Mixed,
    /// Pure bf16: the model loaded in bf16 and handed to the optimizer (weights, gradients and
    /// optimizer state in bf16; what a Trainer does with a bf16 model and no mixed precision).
    Bf16,
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
    pub(super) model: String,

    /// Weight format, e.g. bf16, fp8, Q4_K_M, nf4, gptq-4bit-g128, mlx-4bit; or `all` to compare
    /// every format side by side. Default: the checkpoint's own precision (NF4 with double
    /// quantization for --mode qlora).
    #[arg(long, short = 'q', value_name = "Q|all")]
    pub(super) quant: Option<String>,

    /// Context length in tokens (prompt + generated): a count such as 8192, with a k or m suffix
    /// (32k = 32,768; 1m = 1,048,576), or `max` for the model's maximum. Default: 4096, or the
    /// model's maximum if smaller — never silently the maximum.
    #[arg(long, short = 'c', value_name = "TOKENS", allow_negative_numbers = true,
          value_parser = parse_context)]
    pub(super) context: Option<ContextArg>,

    /// Concurrent users a server holds, each at --context (vllm, llama.cpp, mlx): the verdict and
    /// speeds are for N sequences decoding together (llama.cpp: -np N -c N×context). Without it,
    /// serving runtimes still show how many users fit. Use instead of --batch.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub(super) users: Option<String>,

    /// Sequences processed together.
    #[arg(long, short = 'b', value_name = "B", default_value_t = 1, allow_negative_numbers = true,
          value_parser = clap::value_parser!(u64).range(1..=MAX_BATCH))]
    pub(super) batch: u64,

    /// What the memory is for.
    #[arg(long, value_enum, default_value_t = ModeArg::Inference)]
    pub(super) mode: ModeArg,

    /// Engine: transformers (PyTorch CUDA), transformers-mps, llama.cpp, mlx, vllm, or
    /// vllm:SHARE (e.g. vllm:0.85, its gpu_memory_utilization). Default: llama.cpp for GGUF
    /// formats, MLX for MLX formats and on Apple silicon, transformers on discrete GPUs.
    #[arg(long, short = 'r', value_name = "R")]
    pub(super) runtime: Option<String>,

    /// Device from the catalog (see `headroom devices`), e.g. rtx-4090, h100-sxm, m2-10c-16gb.
    /// With --probe, the catalog entry's figures are replaced by the measured ones. Without
    /// --device and --probe: this machine (./headroom-probe.json if present, else a quick
    /// discovery of its GPU matched to the catalog; no GPU: the CPU and its RAM).
    #[arg(long, short = 'd', value_name = "NAME")]
    pub(super) device: Option<String>,

    /// Identical devices the model is split over, 1 to 64: tensor parallel inside one host
    /// (memory divides; speed grows less than N, paying two all-reduces per layer).
    #[arg(long = "devices", value_name = "N", default_value_t = 1, allow_negative_numbers = true,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_DEVICES)))]
    pub(super) device_count: u32,

    /// KV cache element type. Default: f16 in llama.cpp and for float16 checkpoints, else bf16
    /// (the model's own dtype).
    #[arg(long, value_enum, value_name = "T")]
    pub(super) kv_dtype: Option<KvDtypeArg>,

    /// LoRA rank (--mode lora|qlora). Default: 16.
    #[arg(long, value_name = "R", allow_negative_numbers = true,
          value_parser = clap::value_parser!(u64).range(1..=MAX_LORA_RANK))]
    pub(super) lora_rank: Option<u64>,

    /// Modules adapted by LoRA, comma-separated (--mode lora|qlora): q, k, v, o, gate, up, down,
    /// the fused qkv and gate_up (Phi-3), MLA's q_a, q_b, kv_a, kv_b, experts, or all-linear.
    /// Default: q,k,v,o,gate,up,down.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub(super) lora_targets: Option<Vec<String>>,

    /// Decoder layers that get LoRA adapters (--mode lora|qlora), like peft's
    /// `layers_to_transform`: all, last:K, first:K, A-B, or a list such as 0,4,8-11 (0-based).
    /// Adapting only the last K layers keeps activations for those K layers only.
    /// Default: all.
    #[arg(long, value_name = "SPEC")]
    pub(super) lora_layers: Option<String>,

    /// Gradient checkpointing: recompute activations in the backward pass (training modes).
    /// Default: on for qlora (as peft's prepare_model_for_kbit_training does), off for lora and
    /// full.
    #[arg(long, conflicts_with = "no_checkpointing")]
    pub(super) checkpointing: bool,

    /// Keep every activation for the backward pass (turns off qlora's default checkpointing).
    #[arg(long)]
    pub(super) no_checkpointing: bool,

    /// Optimizer of a full fine-tune (--mode full). Default: adamw.
    #[arg(long, value_enum)]
    pub(super) optimizer: Option<OptimizerArg>,

    /// Precision of a full fine-tune (--mode full). Default: bf16-mixed.
    #[arg(long, value_enum)]
    pub(super) precision: Option<PrecisionArg>,

    /// macOS `iogpu.wired_limit_mb` (MiB), when raised with `sudo sysctl iogpu.wired_limit_mb=N`:
    /// replaces Metal's default share of unified memory on Apple devices.
    #[arg(long, value_name = "MB",
          value_parser = clap::value_parser!(u64).range(1..=MAX_MEMORY_GIB * 1024))]
    pub(super) wired_limit_mb: Option<u64>,

    /// macOS release of the Mac, e.g. 26, 15.5 or 14: the GPU's share of unified memory depends
    /// on it (macOS 26 gives large Macs more than the older 2/3 and 3/4). Default: the newest
    /// release with reports (26). A --probe report's measured working set and --wired-limit-mb
    /// take precedence.
    #[arg(long, value_name = "VERSION")]
    pub(super) macos: Option<String>,

    /// Host RAM beside a discrete GPU, GiB, for the offload verdict. Default: core's assumption
    /// (stated in the assumptions).
    #[arg(long, value_name = "GIB",
          value_parser = clap::value_parser!(u64).range(1..=MAX_MEMORY_GIB))]
    pub(super) host_memory_gib: Option<u64>,

    /// llama.cpp `-ngl N`: the layers on the GPU (the output layer counts as one; the model's
    /// layer count + 1 puts everything there), the rest and their KV cache in host memory.
    /// Default: when the model does not fit the GPU, the largest share that fits.
    #[arg(long, value_name = "N", conflicts_with = "n_cpu_moe")]
    pub(super) gpu_layers: Option<u64>,

    /// llama.cpp `--n-cpu-moe N`: the expert tensors of the first N layers stay in host memory,
    /// everything else (attention, KV cache) on the GPU. MoE models only. Default: when a MoE
    /// does not fit the GPU, the smallest N that fits, if faster than --gpu-layers.
    #[arg(long, value_name = "N")]
    pub(super) n_cpu_moe: Option<u64>,

    /// A report written by `headroom probe`: its measured memory, bandwidth and compute replace
    /// the catalog's figures (alone, or on top of --device).
    #[arg(long, value_name = "REPORT.json")]
    pub(super) probe: Option<PathBuf>,

    /// Leave out the vision and audio encoders and their projectors: memory for text
    /// generation only.
    #[arg(long)]
    pub(super) text_only: bool,

    /// Load the model's multi-token-prediction (MTP) layers too, as vLLM, SGLang and llama.cpp
    /// do for speculative decoding (DeepSeek-V3, GLM-4.5/5, ...). Default: left out, as
    /// transformers does.
    #[arg(long)]
    pub(super) mtp: bool,

    /// Load the vision projector too and reserve one image's compute memory. llama.cpp keeps a
    /// multimodal model's vision/audio towers in a separate `--mmproj` GGUF (f16) and leaves
    /// them out unless this is given; transformers, vLLM and MLX load them with the model.
    #[arg(long, visible_alias = "vision")]
    pub(super) mmproj: bool,

    /// A draft model for speculative decoding on the same device: a catalog name, config.json,
    /// .gguf file, folder or Hugging Face id, read as MODEL is. Its weights, its KV cache at the
    /// same context and its compute memory are added; the answer gives its decode speed and the
    /// cost of one speculative step.
    #[arg(long, value_name = "DRAFT_MODEL")]
    pub(super) draft: Option<String>,

    /// The draft's weight format. Default: the main model's format (a .gguf draft: its own).
    #[arg(long, value_name = "FORMAT", requires = "draft")]
    pub(super) draft_quant: Option<String>,

    /// Draft tokens proposed per step, 1 to 64. Default: llama.cpp's --draft-max (16), else 5.
    #[arg(long, value_name = "K", requires = "draft")]
    pub(super) draft_tokens: Option<u64>,

    /// The share of draft tokens the model accepts (between 0 and 1, e.g. 0.7), stated by you:
    /// only then does the answer give an expected speed with the draft.
    #[arg(long, value_name = "RATE", requires = "draft")]
    pub(super) draft_acceptance: Option<String>,

    /// What does the model need? The memory, then per device class (Apple, NVIDIA consumer,
    /// NVIDIA datacenter, AMD, Intel) the smallest catalog device that holds it and how many of
    /// the class's largest, with decode speed: in --quant FORMAT, or the best format per device.
    #[arg(long)]
    pub(super) devices_that_fit: bool,

    /// llama.cpp's flash attention (`-fa`). Off, llama.cpp keeps f32 attention scores of
    /// n_ubatch × context × heads in its compute buffer, and cannot quantize the V cache.
    /// Default: on (llama-server's `auto` on every backend with the kernel).
    #[arg(long, value_enum, value_name = "on|off")]
    pub(super) flash_attn: Option<OnOff>,

    /// llama.cpp's micro-batch (`-ub`, n_ubatch): tokens per graph; its compute buffer holds
    /// logits for every one of them. Default: 512.
    #[arg(long, value_name = "N", allow_negative_numbers = true,
          value_parser = clap::value_parser!(u64).range(1..=headroom_core::llama_cpp::MAX_UBATCH))]
    pub(super) ubatch: Option<u64>,

    /// llama.cpp with several sequences (--users or --batch): one KV cache shared by all
    /// (`--kv-unified`, on) or one per sequence (off; sliding-window layers then keep a window
    /// per sequence). Default: on (llama-server's default when it picks the slots itself).
    #[arg(long, value_enum, value_name = "on|off")]
    pub(super) kv_unified: Option<OnOff>,

    /// Print JSON instead of a table: one object, or with --quant all an array of objects.
    #[arg(long)]
    pub(super) json: bool,
}

/// A switch given as on or off.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum OnOff {
    On,
    Off,
}

impl OnOff {
    pub(super) fn is_on(self) -> bool {
        self == OnOff::On
    }
}

const AFTER_HELP: &str = "\
JSON (--json): one object with model, params_total, params_active, quant, context, batch,
weights_bytes, kv_cache_bytes, activation_bytes, overhead_bytes, training_bytes (0 for inference),
total_bytes, per_device_bytes, device, device_id, device_count, usable_bytes (one device),
devices_needed, fits, verdict (fits | fits_tightly | needs_offload | does_not_fit),
decode_tokens_per_s, prefill_tokens_per_s, assumptions (array of strings), runtime, mode,
kv_cache_dtype, largest_buffer (Macs and probed devices: {kind: weight_tensor | kv_layer, name,
bytes, max_buffer_bytes, limit_source, exceeds, fix, whole_weights_note}, else null), mps_high_watermark_bytes
(transformers-mps: 1.7 × the working set, else null), llama_cpp (llama.cpp only, else null:
{settings: {flash_attn, n_ubatch, kv_unified}, sequences, compute: {total_bytes, tokens, kv_cells,
logits_bytes, attention_bytes, scores_bytes, ffn_bytes, mask_bytes}, output_buffer_bytes,
output_buffer_counted}), serving (with --users or a serving runtime,
one format only: {engine, context, users_asked, max_users, limited_by, kv_bytes_per_user,
kv_pool_bytes (vLLM), block_tokens, max_num_seqs, engine_settings, at_users and at_max_users
({users, per_user_tokens_per_s, aggregate_tokens_per_s, compute_bound}), assumptions}), model_source and, for one format, longest_context (null if nothing fits),
best_format ({format, runtime, verdict, total_bytes, decode_tokens_per_s} or null) and, for
training, training_advice; for lora/qlora, lora_layers (the adapted layers, 0-based); for a
.gguf file or safetensors checkpoint, checkpoint ({checkpoint_parameters, config_parameters,
parameters_agree, checkpoint_bytes, computed_bytes}); launch ({runtime, command, notes}: the
command that runs it, null when it does not fit); offload (when it does not fit the GPU with
llama.cpp or transformers, or --gpu-layers / --n-cpu-moe forced a split: {chosen, alternative
(each {split: {kind: gpu_layers | cpu_moe | device_map, n_gpu_layers | n_cpu_moe |
gpu_decoder_layers}, description, gpu_bytes, gpu_capacity_bytes, host_bytes,
host_capacity_bytes, fits, gpu_read_bytes_per_token, host_read_bytes_per_token,
decode_tokens_per_s, prefill_tokens_per_s}, alternative may be null), host_bandwidth_bytes_per_s,
host_bandwidth_basis, host_to_device_bytes_per_s, host_to_device_basis}, else null); extra_models (with --mmproj/--draft: [{kind
(mmproj | draft), name, format, params, weights_bytes, kv_cache_bytes, compute_bytes,
total_bytes, decode_tokens_per_s}], in total_bytes and the verdict) and speculation (with --draft:
{draft_tokens, draft_token_ms, verify_ms, step_ms, acceptance, expected_tokens_per_step,
expected_tokens_per_s, plain_tokens_per_s}); speed_bands (how far speeds for this engine and
kind of device were from published measurements: [{runtime, family, kind, rows, low_percent,
high_percent, median_percent, sources}]); this_machine (how this machine was found,
without --device/--probe). Byte counts are integers. With --quant all: a JSON array of such
objects, one per format that could be estimated, highest precision first (without the advice).
With --devices-that-fit: one object {model, mode, context, format, format_fixed, weights_bytes,
min_total_bytes, max_total_bytes, classes: [{class, label, smallest, largest, none_reason}],
assumptions}, smallest/largest being {device_id, device, device_count, memory_bytes, format,
runtime, verdict, per_device_bytes, usable_bytes, decode_tokens_per_s, launch} or null.

Units: GiB = 2^30 bytes in tables; JSON gives bytes.

Environment (Hugging Face ids only):
  HF_ENDPOINT              the Hub to ask (default https://huggingface.co)
  HF_TOKEN                 access token for gated or private models
  HF_HUB_OFFLINE=1         read only the local Hugging Face cache
  HF_HUB_CACHE, HF_HOME    where that cache is (default ~/.cache/huggingface/hub); it is also
                           used when the Hub cannot be reached
  HF_HUB_DOWNLOAD_TIMEOUT  seconds before giving up (default 30)

Examples:
  headroom fit llama-3.1-8b                     # this machine
  headroom fit llama-3.1-70b --devices-that-fit # what does it need?
  headroom fit llama-3.1-8b --device rtx-4090
  headroom fit ./Llama-3.1-8B/config.json --quant Q4_K_M --context 32768 --device m2-10c-16gb
  headroom fit Qwen/Qwen2.5-7B --quant all --context 32k --device h100-sxm
  headroom fit llama-3.1-8b --mode qlora --batch 4 --context 2048 --checkpointing --device rtx-4090
  headroom fit llama-3.1-8b --mode lora --lora-layers last:8 --context 2048 --device rtx-4090
  headroom fit llama-3.1-8b --probe report.json
  headroom fit llama-3.1-70b --quant Q4_K_M --device m3-max-40c-64gb --macos 15
  headroom fit llama-3.1-8b --runtime vllm --context 32k --users 16 --device h100-sxm
  headroom fit gemma-3-12b --quant Q4_K_M --mmproj --device m4-pro-20c-24gb
  headroom fit llama-3.1-8b --quant Q4_K_M --draft llama-3.2-1b --draft-acceptance 0.7 --device rtx-4090";

/// `--context`: a token count or the model's maximum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContextArg {
    /// This many tokens.
    Tokens(u64),
    /// `max_position_embeddings`.
    Max,
}

/// Parse `--context`: `8192`, `32k`/`32K` (× 1024, as context lengths are quoted: "128K" =
/// 131,072), `1m` (× 1024²), or `max`; within 1..=[`MAX_CONTEXT_TOKENS`].
pub fn parse_context(text: &str) -> Result<ContextArg, String> {
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
pub(super) enum QuantChoice {
    /// The default for the model and mode.
    Default,
    /// One format.
    One(WeightFormat),
    /// Every format, side by side.
    All,
}

/// The arguments after the checks that need no I/O.
pub(super) struct Checked {
    pub(super) quant: QuantChoice,
    /// `--draft-quant`, parsed.
    pub(super) draft_format: Option<WeightFormat>,
    /// `--draft-acceptance`, parsed (its range is core's check).
    pub(super) draft_acceptance: Option<f64>,
    pub(super) users: Option<u64>,
    pub(super) macos: Option<MacosVersion>,
    pub(super) runtime: Option<Runtime>,
    pub(super) mode: Mode,
    pub(super) mode_name: &'static str,
}

/// First layer: every argument that can be checked without I/O.
pub(super) fn check(args: &FitArgs) -> anyhow::Result<Checked> {
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
        (
            "--no-checkpointing",
            args.no_checkpointing && args.mode == ModeArg::Inference,
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
            "--checkpointing" | "--no-checkpointing" => "--mode lora, qlora or full",
            "--lora-rank" | "--lora-targets" | "--lora-layers" => "--mode lora or qlora",
            _ => "--mode full",
        };
        bail!(
            "{flag} applies to {modes}, not --mode {}; add the mode or drop {flag}",
            args.mode.name()
        );
    }
    let checkpointing = if args.checkpointing {
        true
    } else if args.no_checkpointing {
        false
    } else {
        Mode::default_checkpointing(args.mode.name())
    };
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
                gradient_checkpointing: checkpointing,
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
                PrecisionArg::Bf16 => TrainingPrecision::Bf16,
            },
            optimizer: match args.optimizer.unwrap_or(OptimizerArg::Adamw) {
                OptimizerArg::Adamw => Optimizer::AdamW,
                OptimizerArg::Adam8bit => Optimizer::Adam8bit,
                OptimizerArg::PagedAdamw => Optimizer::PagedAdamW,
                OptimizerArg::PagedAdam8bit => Optimizer::PagedAdam8bit,
                OptimizerArg::Sgd => Optimizer::Sgd,
            },
            gradient_checkpointing: checkpointing,
        }),
    };
    if args.devices_that_fit {
        if args.device.is_some() || args.probe.is_some() {
            bail!(
                "--devices-that-fit tries every catalog device; drop --device/--probe, or drop \
                 --devices-that-fit to ask about one device"
            );
        }
        if args.device_count > 1 {
            bail!("--devices-that-fit finds how many devices it takes itself; drop --devices");
        }
        if matches!(quant, QuantChoice::All) {
            bail!(
                "--devices-that-fit takes one format (--quant FORMAT) or none (the best format \
                 per device), not --quant all"
            );
        }
    }
    let macos = match args.macos.as_deref() {
        None => None,
        Some(v) => Some(v.parse::<MacosVersion>().map_err(|e| {
            anyhow::anyhow!(
                "{}",
                e.worded(|s| flag(s).to_owned(), |s, v| format!("{} {v}", flag(s)))
            )
        })?),
    };
    let users = match args.users.as_deref().map(str::trim) {
        None => None,
        Some(text) => Some(text.parse::<u64>().map_err(|_| {
            anyhow::anyhow!(
                "--users `{text}`: expected a count of concurrent users, 1 to {}",
                headroom_core::serving::MAX_USERS
            )
        })?),
    };
    let draft_format = match args.draft_quant.as_deref().map(str::trim) {
        None => None,
        Some(q) => Some(q.parse::<WeightFormat>().with_context(|| {
            format!("--draft-quant `{q}`: list the formats with `headroom fit MODEL --quant all`")
        })?),
    };
    let draft_acceptance = match args.draft_acceptance.as_deref().map(str::trim) {
        None => None,
        Some(text) => Some(text.parse::<f64>().map_err(|_| {
            anyhow::anyhow!(
                "--draft-acceptance `{text}`: expected a share between 0 and 1, such as 0.7"
            )
        })?),
    };
    if args.devices_that_fit && (args.draft.is_some() || args.mmproj) {
        bail!(
            "--devices-that-fit answers for the model alone; drop {}",
            if args.mmproj { "--mmproj" } else { "--draft" }
        );
    }
    Ok(Checked {
        quant,
        draft_format,
        draft_acceptance,
        users,
        macos,
        runtime,
        mode,
        mode_name: args.mode.name(),
    })
}

/// The flag that sets `setting`, for core's errors.
pub fn flag(setting: Setting) -> &'static str {
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
        Setting::MacosVersion => "--macos",
        Setting::Users => "--users",
        Setting::FlashAttn => "--flash-attn",
        Setting::Ubatch => "--ubatch",
        Setting::GpuLayers => "--gpu-layers",
        Setting::NCpuMoe => "--n-cpu-moe",
        Setting::Mmproj => "--mmproj",
        Setting::Draft => "--draft",
        Setting::DraftFormat => "--draft-quant",
        Setting::DraftTokens => "--draft-tokens",
        Setting::DraftAcceptance => "--draft-acceptance",
        // `Setting` is non-exhaustive: a new one is named by core's own word until it gets a flag.
        _ => setting.name(),
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
