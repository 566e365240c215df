//! The whole answer to one question, decided once for every front end.
//!
//! A [`Question`] is what a person asks: a model, a format (or the checkpoint's own), settings,
//! a device and how many of it, a runtime, a mode. [`answer`] turns it into an [`Answer`]: the
//! defaults it chose, the memory components, the verdict and speed, every format side by side,
//! the best format that fits, the longest context that fits, training settings that fit and the
//! assumptions behind all of it. The CLI (`headroom fit`) and the site's calculator both call
//! [`answer`] and only render what it returns, so they cannot disagree.
//!
//! Data flow:
//!
//! ```text
//! Question ──► defaults (format, runtime, KV type, context) ──► EstimateRequest
//!                                                                   │
//!            estimate ◄────────────────────────────────────────────┤
//!            format_rows (every format, the runtime that loads it) ┤
//!            longest_context, training_advice ◄────────────────────┘
//!                          └──► Answer
//! ```

use serde::{Deserialize, Serialize};

use crate::{
    CoreError,
    advice::{
        FormatChoice, FormatRow, TrainingAdvice, best_of_rows, format_rows_with,
        longest_context_with, training_advice_with,
    },
    components::{
        CacheComponent, Component, LayerKindCount, cache_components, components, layer_kinds,
    },
    devices::DeviceSpec,
    error::{Fix, Setting},
    estimate::{
        CheckpointBytes, Estimate, EstimateRequest, Verdict, estimate_with, qlora_base_format,
    },
    extra_models::{ExtraAsk, ExtraModel, ExtraModelKind, Speculation, towers_in_separate_file},
    facts::ModelFacts,
    kv_cache::KvDtype,
    launch::{LaunchCommand, ModelRef, launch_command},
    limits::{MAX_CONTEXT_TOKENS, MAX_LORA_RANK, MAX_MEMORY_GIB},
    llama_cpp::LlamaCppSettings,
    macos::MacosVersion,
    model::{ComponentKind, ModelSpec},
    offload::{OffloadPlan, OffloadSettings},
    published::{SpeedBand, bands_for},
    quant::WeightFormat,
    runtime::Runtime,
    serving::{Serving, serves, serving_with},
    training::{Mode, parse_lora_layers},
    units::GIB,
};

/// The context a question asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContextAsk {
    /// 4096 tokens, or the model's maximum if smaller ([`ModelSpec::default_context`]) — never
    /// silently the maximum.
    #[default]
    Default,
    /// The model's maximum (`max_position_embeddings`).
    Max,
    /// This many tokens.
    Tokens(u64),
}

/// One question: everything an answer depends on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Question {
    /// The model.
    pub model: ModelSpec,
    /// Weight format; `None` = the checkpoint's own ([`default_format`]).
    pub format: Option<WeightFormat>,
    /// Context length.
    pub context: ContextAsk,
    /// Sequences processed together.
    pub batch: u64,
    /// Inference or a kind of training. LoRA layers come from [`Question::lora_layers`].
    pub mode: Mode,
    /// Decoder layers that get LoRA adapters, in the `--lora-layers` grammar (`all`, `last:8`,
    /// `0-15`, `0,4,8-11`); `None` = every layer. LoRA and QLoRA only.
    pub lora_layers: Option<String>,
    /// The engine; `None` = the usual one for device, format and mode ([`default_runtime`]).
    pub runtime: Option<Runtime>,
    /// KV cache element type; `None` = the runtime's usual one ([`default_kv_dtype`]).
    pub kv_dtype: Option<KvDtype>,
    /// The device (one of `device_count` identical ones).
    pub device: DeviceSpec,
    /// Identical devices the model is split over.
    pub device_count: u32,
    /// macOS `iogpu.wired_limit_mb` in bytes (Apple devices).
    pub wired_limit_bytes: Option<u64>,
    /// Host RAM beside a discrete GPU, bytes, for the offload verdict.
    pub host_memory_bytes: Option<u64>,
    /// Leave out vision and audio encoders and their projectors (text generation only).
    #[serde(default)]
    pub text_only: bool,
    /// Load the multi-token-prediction layers too, as engines do for speculative decoding
    /// ([`ModelSpec::with_mtp_layers`]); by default they are left out, as transformers does.
    #[serde(default)]
    pub with_mtp: bool,
    /// The checkpoint's weights as read from its headers (a `.gguf` file, safetensors shards):
    /// its format becomes the default, and in that format its bytes replace the computed
    /// weights.
    #[serde(default)]
    pub checkpoint: Option<CheckpointSize>,
    /// The macOS release of a Mac; `None` assumes the newest release with reports
    /// ([`crate::macos`]). Sets the GPU's share of unified memory.
    #[serde(default)]
    pub macos: Option<MacosVersion>,
    /// Concurrent users (sequences, each at the context) a server holds; `None` = none asked
    /// (the answer still says how many fit when the runtime serves). Replaces `batch`, which
    /// must then be 1.
    #[serde(default)]
    pub users: Option<u64>,
    /// llama.cpp's flash attention, micro-batch and unified KV cache; defaults are
    /// llama-server's. Only llama.cpp takes other values.
    #[serde(default)]
    pub llama_cpp: LlamaCppSettings,
    /// A split between GPU and host to use (llama.cpp `-ngl`, `--n-cpu-moe`); by default headroom
    /// chooses one when the model does not fit the GPU.
    #[serde(default)]
    pub offload: OffloadSettings,
    /// Models loaded beside this one: the vision projector and a draft model
    /// ([`crate::extra_models`]). Without the projector, llama.cpp's answer leaves the towers
    /// out (they live in a separate mmproj file).
    #[serde(default)]
    pub extras: ExtraAsk,
}

/// What a checkpoint's headers say about its weights ([`crate::files::CheckpointWeights`] in
/// short, so a front end can carry it in a link).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointSize {
    /// The file names.
    pub source: String,
    /// The format name headroom gives the checkpoint (`Q4_K_M`, `fp8`, `bf16`, ...), if known.
    pub format_name: Option<String>,
    /// Every tensor's bytes, side data included.
    pub bytes: u64,
    /// Parameters in the checkpoint.
    pub parameters: u64,
    /// False when `parameters` counts some packed tensors as stored (MLX without its config).
    pub parameters_exact: bool,
}

impl From<&crate::files::CheckpointWeights> for CheckpointSize {
    fn from(w: &crate::files::CheckpointWeights) -> CheckpointSize {
        CheckpointSize {
            source: w.source.clone(),
            format_name: w.format_name.clone(),
            bytes: w.bytes,
            parameters: w.parameters,
            parameters_exact: w.parameters_exact,
        }
    }
}

/// The checkpoint's headers set against the config-derived count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointCheck {
    /// Parameters in the checkpoint.
    pub checkpoint_parameters: u64,
    /// Parameters the config describes.
    pub config_parameters: u64,
    /// Whether the two counts agree (only judged when the checkpoint's count is exact).
    pub parameters_agree: bool,
    /// The checkpoint's bytes, when its format is known.
    pub checkpoint_bytes: u64,
    /// The bytes headroom computes for the same format from the config; `None` when the
    /// checkpoint's format is not one headroom knows.
    pub computed_bytes: Option<u64>,
}

impl Question {
    /// A question with every setting at its default: the checkpoint's format, the default
    /// context, batch 1, inference, the usual runtime and KV type, one device.
    pub fn new(model: ModelSpec, device: DeviceSpec) -> Question {
        Question {
            model,
            format: None,
            context: ContextAsk::Default,
            batch: 1,
            mode: Mode::Inference,
            lora_layers: None,
            runtime: None,
            kv_dtype: None,
            device,
            device_count: 1,
            wired_limit_bytes: None,
            host_memory_bytes: None,
            text_only: false,
            with_mtp: false,
            checkpoint: None,
            macos: None,
            users: None,
            llama_cpp: LlamaCppSettings::default(),
            offload: OffloadSettings::default(),
            extras: ExtraAsk::default(),
        }
    }
}

/// The answer to a [`Question`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// The request the question resolved to, every default filled in.
    pub request: EstimateRequest,
    /// The estimate for that request; its `assumptions` hold every assumption of the answer
    /// (the estimate's and the searches').
    pub estimate: Estimate,
    /// The context the question asked for lies beyond the model's `max_position_embeddings`
    /// (memory is estimated anyway; quality past it is not guaranteed).
    pub context_beyond_model_max: bool,
    /// Longest context (up to the model's maximum) that fits with everything else as given;
    /// `None` if not even one token does.
    pub longest_context: Option<u64>,
    /// Every format side by side, highest precision first, each with the runtime that loads it;
    /// formats the mode cannot use are listed with the reason.
    pub formats: Vec<FormatRow>,
    /// The highest-precision format that fits with room (else the first that fits tightly).
    pub best_format: Option<FormatChoice>,
    /// Training settings that fit (training modes only).
    pub training: Option<TrainingAdvice>,
    /// Decoder layers (0-based) that carry LoRA adapters (LoRA/QLoRA only).
    pub lora_layers: Option<Vec<u64>>,
    /// The question left out the vision/audio parts the model has.
    pub text_only: bool,
    /// The question loaded the model's MTP layers (it has some).
    pub with_mtp: bool,
    /// The checkpoint's headers against the config, when the question came with a checkpoint.
    pub checkpoint: Option<CheckpointCheck>,
    /// Parameters per component (embedding, decoder, output head, vision/audio encoders and
    /// projectors, MTP layers), each its own line.
    pub components: Vec<Component>,
    /// How many decoder layers of each (mixer, MLP) kind.
    pub layer_kinds: Vec<LayerKindCount>,
    /// The cache per mixer kind for one sequence: bytes per token (attention, MLA, indexer) and
    /// per sequence (linear-attention, Mamba and conv states), in the answer's KV type.
    pub cache: Vec<CacheComponent>,
    /// Whether every count is exact (the model's architecture is fully known).
    pub exact: bool,
    /// What is approximated and why; empty when `exact`.
    pub approximations: Vec<String>,
    /// The command that runs what was estimated, in its runtime, with the settings that produced
    /// the estimate; `None` when it does not fit (nothing to launch).
    #[serde(default)]
    pub launch: Option<LaunchCommand>,
    /// How many users a server holds at this context and how fast they decode: when users were
    /// asked, or by default when the runtime serves (vLLM, llama.cpp, MLX) in inference.
    #[serde(default)]
    pub serving: Option<Serving>,
    /// The split between GPU and host memory when the model does not fit the GPU (llama.cpp:
    /// `-ngl` or `--n-cpu-moe`, transformers: `device_map="auto"`) or the question forced one:
    /// memory per device, speeds, and the other way to split.
    #[serde(default)]
    pub offload: Option<OffloadPlan>,
    /// How far headroom's speed estimates for this runtime and kind of device were from
    /// published measurements ([`crate::published`]); empty where none were collected.
    #[serde(default)]
    pub speed_bands: Vec<SpeedBand>,
    /// Models loaded beside this one (vision projector, draft model), each with its memory;
    /// their bytes are in the estimate's total and verdict.
    #[serde(default)]
    pub extra_models: Vec<ExtraModel>,
    /// What speculative decoding with the draft costs per step and, at a stated acceptance
    /// rate, gains.
    #[serde(default)]
    pub speculation: Option<Speculation>,
}

/// `model` without its vision and audio encoders and projectors.
pub fn text_only(model: &ModelSpec) -> ModelSpec {
    ModelSpec {
        encoders: Vec::new(),
        projectors: Vec::new(),
        ..model.clone()
    }
}

/// The checkpoint's format as a [`WeightFormat`], when headroom knows its name.
fn checkpoint_format(q: &Question) -> Option<WeightFormat> {
    q.checkpoint.as_ref()?.format_name.as_deref()?.parse().ok()
}

/// The format used when the question names none: the checkpoint's own precision; for QLoRA the
/// bitsandbytes 4-bit base; for a full fine-tune of a quantized checkpoint (MXFP4, FP8) bf16,
/// since a full fine-tune trains 16/32-bit weights.
pub fn default_format(model: &ModelSpec, mode: &Mode) -> WeightFormat {
    let checkpoint = WeightFormat::default_for(model);
    match mode {
        Mode::Qlora(_) => qlora_base_format(&checkpoint),
        Mode::Full(_) if checkpoint.is_quantized() => WeightFormat::Bf16,
        _ => checkpoint,
    }
}

/// The runtime used when the question names none: PyTorch (transformers, CUDA or MPS) for
/// training, since that is what training is estimated for; for inference the usual engine for
/// the device and format ([`Runtime::default_for`]).
pub fn default_runtime(device: &DeviceSpec, format: &WeightFormat, mode: &Mode) -> Runtime {
    if mode.is_training() {
        if device.is_apple_silicon() {
            Runtime::TransformersMps
        } else {
            Runtime::TransformersCuda
        }
    } else {
        Runtime::default_for(device, format)
    }
}

/// The KV cache type used when the question names none: f16 for llama.cpp (its default
/// `--cache-type-k/-v`) and float16 checkpoints, else bf16 (PyTorch caches in the model's dtype).
pub fn default_kv_dtype(model: &ModelSpec, runtime: Runtime) -> KvDtype {
    if runtime == Runtime::LlamaCpp || model.torch_dtype.as_deref() == Some("float16") {
        KvDtype::F16
    } else {
        KvDtype::Bf16
    }
}

/// Resolve the question's defaults into the request [`estimate`] takes; checks the settings
/// that need the model (LoRA layers) and the limits of [`crate::limits`] that the request does
/// not check itself.
pub fn request(q: &Question) -> Result<EstimateRequest, CoreError> {
    // The format and runtime do not depend on the towers or MTP layers: resolve them first, so
    // llama.cpp's separate projector file can decide what the main model holds.
    let shipped = checkpoint_format(q);
    let format = match (&q.format, &shipped) {
        (Some(f), _) => f.clone(),
        // The checkpoint's own format, where the mode can use it.
        (None, Some(f)) if crate::advice::mode_accepts_format(&q.mode, f).is_ok() => f.clone(),
        (None, _) => default_format(&q.model, &q.mode),
    };
    let runtime = q
        .runtime
        .unwrap_or_else(|| default_runtime(&q.device, &format, &q.mode));
    let leave_towers = q.text_only || towers_in_separate_file(runtime);
    let shaped;
    let model = if leave_towers || q.with_mtp {
        let base = if leave_towers {
            text_only(&q.model)
        } else {
            q.model.clone()
        };
        shaped = if q.with_mtp {
            base.with_mtp_layers()
        } else {
            base
        };
        &shaped
    } else {
        &q.model
    };
    let kv_dtype = q
        .kv_dtype
        .unwrap_or_else(|| default_kv_dtype(model, runtime));
    let context = match q.context {
        ContextAsk::Default => None,
        ContextAsk::Max => Some(model.max_context.clamp(1, MAX_CONTEXT_TOKENS)),
        ContextAsk::Tokens(t) => Some(t),
    };
    let mut mode = q.mode.clone();
    match (&q.lora_layers, &mut mode) {
        (Some(text), Mode::Lora(l) | Mode::Qlora(l)) => {
            l.layers = parse_lora_layers(text, model.num_layers)?;
        }
        (Some(text), _) => {
            return Err(CoreError::setting(
                Setting::LoraLayers,
                text,
                format!("apply to LoRA and QLoRA only, not {}", q.mode.name()),
                vec![
                    Fix::new(Setting::Mode, "lora"),
                    Fix::new(Setting::Mode, "qlora"),
                ],
            ));
        }
        _ => {}
    }
    if let Mode::Lora(l) | Mode::Qlora(l) = &mode
        && (l.rank == 0 || l.rank > MAX_LORA_RANK)
    {
        return Err(CoreError::setting(
            Setting::LoraRank,
            l.rank,
            format!("must be between 1 and {MAX_LORA_RANK}"),
            vec![Fix::new(Setting::LoraRank, "16")],
        ));
    }
    let mut batch = q.batch;
    if let Some(users) = q.users {
        let runtime_named = q
            .runtime
            .unwrap_or_else(|| default_runtime(&q.device, &format, &q.mode));
        if q.mode.is_training() {
            return Err(CoreError::setting(
                Setting::Users,
                users,
                format!("concurrent users are for inference, not {}", q.mode.name()),
                vec![Fix::new(Setting::Mode, "inference")],
            ));
        }
        if q.batch != 1 {
            return Err(CoreError::setting(
                Setting::Users,
                users,
                format!(
                    "sets the sequences decoding together, as batch {} does: give one of them",
                    q.batch
                ),
                vec![Fix::new(Setting::Batch, "1")],
            ));
        }
        crate::serving::validate_users(users, runtime_named)?;
        batch = users;
    }
    let max_memory = MAX_MEMORY_GIB * GIB;
    for (setting, bytes) in [
        (Setting::WiredLimit, q.wired_limit_bytes),
        (Setting::HostMemory, q.host_memory_bytes),
    ] {
        if let Some(b) = bytes
            && (b == 0 || b > max_memory)
        {
            return Err(CoreError::setting(
                setting,
                format!("{b} bytes"),
                format!("must be between 1 byte and {MAX_MEMORY_GIB} GiB"),
                vec![],
            ));
        }
    }
    Ok(EstimateRequest {
        model: model.clone(),
        format,
        context,
        batch,
        mode,
        runtime,
        kv_dtype,
        device: q.device.clone(),
        device_count: q.device_count,
        wired_limit_bytes: q.wired_limit_bytes,
        host_memory_bytes: q.host_memory_bytes.or(q
            .device
            .host
            .ram_bytes
            .filter(|&b| b <= MAX_MEMORY_GIB * GIB)),
        activation: Default::default(),
        checkpoint: match (&q.checkpoint, shipped) {
            (Some(c), Some(format)) => Some(CheckpointBytes {
                format,
                bytes: c.bytes,
                source: c.source.clone(),
            }),
            _ => None,
        },
        macos: q.macos,
        llama_cpp: q.llama_cpp,
        offload: q.offload,
    })
}

/// The whole answer to `q`. An error names the setting that cannot be answered and what to do;
/// formats other than the asked one that cannot run are rows with a reason, not errors.
pub fn answer(q: &Question) -> Result<Answer, CoreError> {
    crate::extra_models::validate(&q.model, &q.extras, q.mode.is_training(), q.text_only)?;
    let mut req = request(q)?;
    let mut fallback_note = None;
    if q.format.is_none()
        && let Some(shipped) = checkpoint_format(q)
        && req.format == shipped
        && let Err(why) = crate::estimate::validate(&req)
    {
        // The checkpoint's own format cannot run here (an MLX checkpoint on a CUDA GPU): answer
        // for the format the config would default to, and say so.
        let mut config_default = q.clone();
        config_default.format = Some(default_format(&q.model, &q.mode));
        req = request(&config_default)?;
        fallback_note = Some(format!(
            "the checkpoint's format {shipped} cannot run as asked ({why}): estimated in {} \
             instead",
            req.format
        ));
    }
    // Every estimate below is of the same model: its counts and tensors are worked out once.
    let facts = ModelFacts::new(&req.model);
    let mut est = estimate_with(&facts, &req)?;
    let longest = longest_context_with(&facts, &req)?;
    let formats = format_rows_with(&facts, &req, q.runtime);
    let best = best_of_rows(&formats);
    let training = training_advice_with(&facts, &req)?;
    let serving = if !req.mode.is_training() && (q.users.is_some() || serves(req.runtime)) {
        Some(serving_with(&facts, &req, q.users)?)
    } else {
        None
    };
    let lora_layers = match &req.mode {
        Mode::Lora(l) | Mode::Qlora(l) => Some(l.adapted_layers(req.model.num_layers)?),
        _ => None,
    };
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
            "training settings: batch searched up to {}, sequence length up to the model's \
             maximum at batch 1, LoRA ranks {:?}; gradient checkpointing used for the searches \
             when the given setting only fits with it; LoRA on the last k layers searched for \
             the largest k, without checkpointing first",
            crate::advice::MAX_ADVISED_BATCH,
            crate::advice::LORA_RANKS
        ));
    }
    let checkpoint = q.checkpoint.as_ref().map(|c| {
        let config_parameters = est.params_total;
        let computed_bytes = checkpoint_format(q).map(|f| facts.weight_totals(&f).weights_bytes);
        let parameters_agree = !c.parameters_exact || c.parameters == config_parameters;
        if !parameters_agree {
            assumptions.push(format!(
                "checkpoint {} holds {} parameters, the config describes {config_parameters}: \
                 the weights are the checkpoint's, the cache and activations the config's",
                c.source, c.parameters
            ));
        }
        CheckpointCheck {
            checkpoint_parameters: c.parameters,
            config_parameters,
            parameters_agree,
            checkpoint_bytes: c.bytes,
            computed_bytes,
        }
    });
    assumptions.extend(fallback_note);
    if let Some(s) = &serving {
        assumptions.extend(s.assumptions.iter().map(|a| format!("serving: {a}")));
    }
    let has_towers = !q.model.encoders.is_empty() || !q.model.projectors.is_empty();
    let towers_apart = towers_in_separate_file(req.runtime) && !q.extras.mmproj;
    if towers_apart && !q.text_only && has_towers {
        assumptions.push(
            "llama.cpp: the vision/audio towers are not in the model's GGUF but in a separate \
             mmproj file, left out here (text generation); ask for the vision projector to load \
             it"
            .to_string(),
        );
    }
    if q.text_only && has_towers {
        assumptions.push(
            "text only: the vision/audio encoders and projectors are left out (weights and \
             parameters are the language model's)"
                .to_string(),
        );
    }
    if q.with_mtp
        && q.model.mtp.is_some()
        && matches!(
            req.runtime,
            Runtime::LlamaCpp | Runtime::TransformersCuda | Runtime::TransformersMps
        )
    {
        assumptions.push(format!(
            "MTP layers: {} skips them when it loads the model; counted here because they were \
             asked for (vLLM and SGLang load them for speculative decoding)",
            req.runtime
        ));
    }
    if q.with_mtp && q.model.mtp.is_some() {
        assumptions.push(
            "MTP layers loaded (speculative decoding): each counted as one more decoder layer \
             with its eh_proj, norms and, where the checkpoint repeats them, embedding and head; \
             its KV cache included"
                .to_string(),
        );
    }
    let speed_bands: Vec<SpeedBand> = if req.mode.is_training() {
        Vec::new()
    } else {
        bands_for(req.runtime, &req.device)
            .into_iter()
            .cloned()
            .collect()
    };
    assumptions.extend(
        speed_bands
            .iter()
            .map(|b| format!("speed held to published measurements: {}", b.sentence())),
    );
    let extras = crate::extra_models::extra_models(&q.model, &req, &est, &q.extras)?;
    if !extras.models.is_empty() {
        let added = extras.total_bytes();
        est.total_bytes = est.total_bytes.saturating_add(added);
        // Extra models sit on the (first) device beside the model.
        est.per_device_bytes = est.per_device_bytes.saturating_add(added);
        if est.fits {
            let fits_limit = est.usable_bytes / 100 * crate::estimate::FITS_THRESHOLD_PERCENT;
            est.verdict = if est.per_device_bytes <= fits_limit {
                Verdict::Fits
            } else if est.per_device_bytes <= est.usable_bytes {
                Verdict::FitsTightly
            } else {
                Verdict::DoesNotFit
            };
            est.fits = est.verdict.fits();
        }
        assumptions.push(format!(
            "extra models: {:.2} GiB beside the model on the same device, in the total and the \
             verdict (headroom does not offload them; the every-format table, best format, \
             longest context and serving are for the model alone)",
            added as f64 / GIB as f64
        ));
        assumptions.extend(extras.assumptions.iter().cloned());
    }
    let approximations = if req.model.approximate && req.model.approximations.is_empty() {
        vec![format!(
            "{}: unknown architecture, parameter counts approximated from generic config fields",
            req.model.name
        )]
    } else {
        req.model.approximations.clone()
    };
    assumptions.append(&mut est.assumptions);
    est.assumptions = assumptions;
    // A split that fits launches too: llama.cpp with its -ngl / --n-cpu-moe; then the extra
    // models' flags.
    let launch = (est.fits || est.verdict == crate::estimate::Verdict::NeedsOffload).then(|| {
        let mut l = crate::launch::with_offload(
            launch_command(&req, &ModelRef::for_model_name(&q.model.name)),
            est.offload.as_ref(),
        );
        let flags = crate::extra_models::launch_flags(
            req.runtime,
            &ModelRef::for_model_name(&q.model.name).path,
            &extras.models,
            extras.speculation.as_ref(),
            &q.extras,
            q.with_mtp && q.model.mtp.is_some(),
            &mut l.notes,
        );
        l.command.push_str(&flags);
        l
    });
    let offload = est.offload.clone();
    let context_beyond_model_max = matches!(q.context, ContextAsk::Tokens(t) if q.model.max_context > 0 && t > q.model.max_context);
    Ok(Answer {
        estimate: est,
        context_beyond_model_max,
        longest_context: longest,
        formats,
        best_format: best,
        training,
        lora_layers,
        text_only: (q.text_only || towers_apart) && has_towers,
        with_mtp: q.with_mtp && q.model.mtp.is_some(),
        checkpoint,
        components: {
            let mut parts = components(&req.model);
            if q.extras.mmproj && towers_in_separate_file(req.runtime) {
                // The towers are the mmproj file's: their lines come from the model as given.
                parts.extend(
                    components(&q.model)
                        .into_iter()
                        .filter(|c| c.kind.is_tower()),
                );
            }
            parts.extend(
                extras
                    .models
                    .iter()
                    .filter(|m| m.kind == ExtraModelKind::Draft)
                    .map(|m| Component {
                        kind: ComponentKind::DraftModel,
                        params: m.params,
                        active_params: m.params,
                        in_total: true,
                    }),
            );
            parts
        },
        layer_kinds: layer_kinds(&req.model),
        cache: cache_components(&req.model, req.kv_dtype, req.runtime),
        exact: req.model.exact(),
        approximations,
        launch,
        serving,
        offload,
        speed_bands,
        extra_models: extras.models,
        speculation: extras.speculation,
        request: req,
    })
}
