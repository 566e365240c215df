//! The answer: memory components, verdict and speed for one model, format, setting and device.
//!
//! `total = weights + KV cache + activations + overhead + training`, exactly (checked
//! arithmetic: a total beyond 16 EiB is an error, never a wrapped number). Each component comes
//! from its own module; the runtime profile ([`crate::runtime`]) decides how the engine behaves.
//!
//! Verdict, per device: **fits** ≤ 90% of usable memory; **fits tightly** ≤ 100%; **needs
//! offload** when the total fits in the devices' usable memory plus the host memory layers can be
//! offloaded to; else **does not fit**.

use serde::{Deserialize, Serialize};

use crate::{
    CoreError,
    activations::{ActivationOptions, prefill_activation_bytes},
    devices::{DeviceSpec, MemoryKind},
    error::{Fix, Setting},
    facts::ModelFacts,
    kv_cache::{KvDtype, kv_cache_bytes_with},
    limits::{MAX_BATCH, MAX_CONTEXT_TOKENS, MAX_DEVICES},
    llama_cpp::{LlamaCppBuffers, LlamaCppSettings, compute_buffer, output_buffer_bytes},
    macos::{MacosVersion, mps_high_watermark_bytes},
    model::ModelSpec,
    offload::{OffloadEngine, OffloadInputs, OffloadPlan, OffloadSettings, SplitKind},
    quant::WeightFormat,
    runtime::Runtime,
    speed::{
        ALLREDUCE_HOP_LATENCY_S, INTERCONNECT_BYTES_PER_S, decode_tokens_per_s,
        llama_cpp_decode_step_overhead_s, llama_cpp_moe_step_overhead_s,
        llama_cpp_prefill_tokens_per_s, offloaded_tokens_per_s, prefill_tokens_per_s_accumulating,
        tensor_parallel_speedup, with_llama_cpp_bandwidth_cap, with_step_overhead,
    },
    training::{Mode, training_memory_with},
    units::GIB,
    usable_memory::{
        DEFAULT_HOST_MEMORY_BYTES, devices_needed, offload_capacity_bytes, usable_memory_on,
    },
};

/// Everything an estimate depends on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EstimateRequest {
    /// The model.
    pub model: ModelSpec,
    /// Weight format.
    pub format: WeightFormat,
    /// Context length in tokens; `None` uses [`ModelSpec::default_context`].
    pub context: Option<u64>,
    /// Sequences processed together.
    pub batch: u64,
    /// Inference or a kind of training.
    pub mode: Mode,
    /// The engine.
    pub runtime: Runtime,
    /// KV cache element type.
    pub kv_dtype: KvDtype,
    /// The device (one of `device_count` identical ones).
    pub device: DeviceSpec,
    /// Identical devices the model is split over (tensor or pipeline parallel), at least 1.
    pub device_count: u32,
    /// macOS `iogpu.wired_limit_mb` in bytes, when an administrator raised the GPU's share of
    /// unified memory; replaces Metal's default working set.
    #[serde(default)]
    pub wired_limit_bytes: Option<u64>,
    /// Host RAM beside a discrete GPU, for the offload verdict; `None` assumes
    /// [`DEFAULT_HOST_MEMORY_BYTES`].
    #[serde(default)]
    pub host_memory_bytes: Option<u64>,
    /// Attention kernel and logits choices; defaults follow the runtime.
    #[serde(default)]
    pub activation: ActivationOptions,
    /// Weights read from the checkpoint's own headers: they replace the computed weights when
    /// the request's format is the checkpoint's.
    #[serde(default)]
    pub checkpoint: Option<CheckpointBytes>,
    /// The macOS release of a Mac (sets the GPU's share of unified memory); `None` assumes the
    /// newest release with reports ([`crate::macos`]).
    #[serde(default)]
    pub macos: Option<MacosVersion>,
    /// llama.cpp's flash attention, micro-batch and unified cache (llama-server's defaults);
    /// `batch` is its number of parallel sequences. Other runtimes take the defaults only.
    #[serde(default)]
    pub llama_cpp: LlamaCppSettings,
    /// A split between GPU and host the user forced (llama.cpp `-ngl`, `--n-cpu-moe`); by
    /// default headroom chooses one when the model does not fit ([`crate::offload`]).
    #[serde(default)]
    pub offload: OffloadSettings,
}

/// A checkpoint's weight bytes as shipped, and the format they are stored in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointBytes {
    /// The checkpoint's format.
    pub format: WeightFormat,
    /// Every tensor's bytes, side data (scales, zeros) included.
    pub bytes: u64,
    /// The files they came from.
    pub source: String,
}

/// "Fits" holds up to this share of usable memory (the rest is slack for allocator
/// fragmentation and what the estimate does not see); percent.
pub const FITS_THRESHOLD_PERCENT: u64 = 90;

impl EstimateRequest {
    /// A request with the usual defaults: the model's default context, batch 1, inference, the
    /// device's usual runtime for `format`, that runtime's default KV cache type (llama.cpp f16,
    /// the others the model's 16-bit dtype, bf16), one device.
    pub fn new(model: ModelSpec, format: WeightFormat, device: DeviceSpec) -> EstimateRequest {
        let runtime = Runtime::default_for(&device, &format);
        let kv_dtype =
            if runtime == Runtime::LlamaCpp || model.torch_dtype.as_deref() == Some("float16") {
                KvDtype::F16
            } else {
                KvDtype::Bf16
            };
        EstimateRequest {
            model,
            format,
            context: None,
            batch: 1,
            mode: Mode::Inference,
            runtime,
            kv_dtype,
            device,
            device_count: 1,
            wired_limit_bytes: None,
            host_memory_bytes: None,
            activation: ActivationOptions::default(),
            checkpoint: None,
            macos: None,
            llama_cpp: LlamaCppSettings::default(),
            offload: OffloadSettings::default(),
        }
    }

    /// The context this request uses.
    pub fn context_tokens(&self) -> u64 {
        self.context.unwrap_or_else(|| self.model.default_context())
    }
}

/// Will it fit?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Total ≤ 90% of usable memory.
    Fits,
    /// Total between 90% and 100% of usable memory.
    FitsTightly,
    /// Does not fit in usable memory but fits in device + host memory (layers offloaded).
    NeedsOffload,
    /// Does not fit at all.
    DoesNotFit,
}

impl Verdict {
    /// `fits`, `fits tightly`, `needs offload`, `does not fit`.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Fits => "fits",
            Verdict::FitsTightly => "fits tightly",
            Verdict::NeedsOffload => "needs offload",
            Verdict::DoesNotFit => "does not fit",
        }
    }

    /// True for `Fits` and `FitsTightly`.
    pub fn fits(&self) -> bool {
        matches!(self, Verdict::Fits | Verdict::FitsTightly)
    }
}

/// The answer for one request. Byte counts are integers; speeds carry their assumptions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Model name.
    pub model: String,
    /// Every stored parameter.
    pub params_total: u64,
    /// Parameters a token touches (MoE: routed experts only), including the input embedding.
    pub params_active: u64,
    /// Format name, e.g. `Q4_K_M`.
    pub quant: String,
    /// Context in tokens actually used.
    pub context: u64,
    /// Batch.
    pub batch: u64,
    /// Weights.
    pub weights_bytes: u64,
    /// KV cache.
    pub kv_cache_bytes: u64,
    /// Activations (prefill peak, logits).
    pub activation_bytes: u64,
    /// Runtime overhead (CUDA context, allocator slack, ...).
    pub overhead_bytes: u64,
    /// Gradients, optimizer state, adapters, training activations (0 for inference).
    pub training_bytes: u64,
    /// Sum of the above.
    pub total_bytes: u64,
    /// Memory needed on each device when split over `device_count`.
    pub per_device_bytes: u64,
    /// Device name.
    pub device: String,
    /// Usable memory of one device.
    pub usable_bytes: u64,
    /// Devices needed at minimum for this to fit.
    pub devices_needed: Option<u32>,
    /// `verdict` is `Fits` or `FitsTightly`.
    pub fits: bool,
    /// The verdict.
    pub verdict: Verdict,
    /// Estimated decode speed, tokens per second (per sequence).
    pub decode_tokens_per_s: f64,
    /// Estimated prefill speed, tokens per second.
    pub prefill_tokens_per_s: f64,
    /// Every assumption behind the numbers, in words.
    pub assumptions: Vec<String>,
    /// The runtime the estimate follows, e.g. `llama.cpp`.
    #[serde(default)]
    pub runtime: String,
    /// The mode, e.g. `inference`, `lora:r=16:targets=q,v`.
    #[serde(default)]
    pub mode: String,
    /// KV cache element type, e.g. `f16`.
    #[serde(default)]
    pub kv_cache_dtype: String,
    /// Identical devices the estimate splits over.
    #[serde(default)]
    pub device_count: u32,
    /// The largest single buffer the runtime allocates, checked against the device's largest
    /// buffer (Metal's `maxBufferLength`); `None` where the device states no such limit.
    #[serde(default)]
    pub largest_buffer: Option<BufferCheck>,
    /// PyTorch MPS's allocation limit (1.7 × the working set), bytes; transformers-mps only.
    #[serde(default)]
    pub mps_high_watermark_bytes: Option<u64>,
    /// llama.cpp only: its settings, compute buffer (the activations) and output buffer.
    #[serde(default)]
    pub llama_cpp: Option<LlamaCppBuffers>,
    /// The split between GPU and host memory, when the model does not fit the GPU (llama.cpp,
    /// transformers) or the question forced one; its speeds are the estimate's.
    #[serde(default)]
    pub offload: Option<OffloadPlan>,
}

/// What allocates the largest single buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BufferKind {
    /// One weight tensor (every runtime keeps each tensor in one buffer; llama.cpp splits a
    /// mapped file into views at `maxBufferLength` that overlap by the largest tensor).
    WeightTensor,
    /// One layer's keys (or values) for every cached token of every sequence.
    KvLayer,
}

/// The largest single buffer against the device's largest buffer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BufferCheck {
    /// What it is.
    pub kind: BufferKind,
    /// Its name: a tensor name (`blk.0.ffn_down_exps.weight`) or the cache layer.
    pub name: String,
    /// Its bytes.
    pub bytes: u64,
    /// The device's largest single buffer, bytes.
    pub max_buffer_bytes: u64,
    /// Where that limit comes from, e.g. `Metal's maxBufferLength, estimated as half of RAM`.
    #[serde(default)]
    pub limit_source: String,
    /// `bytes > max_buffer_bytes`: the runtime fails to allocate it.
    pub exceeds: bool,
    /// What to do when it exceeds, in words that name no front end's control.
    pub fix: String,
    /// Set when the weights as a whole exceed the largest buffer although each tensor fits: a
    /// runtime that maps the whole file as one buffer fails there.
    #[serde(default)]
    pub whole_weights_note: Option<String>,
}

impl BufferCheck {
    /// The check in words, for the assumptions.
    pub fn statement(&self) -> String {
        if self.exceeds {
            format!(
                "warning: {} ({:.2} GiB) exceeds the largest single buffer the device allows \
                 ({:.2} GiB, {}): allocating it fails; {}",
                self.name,
                gib(self.bytes),
                gib(self.max_buffer_bytes),
                self.limit_source,
                self.fix
            )
        } else {
            format!(
                "largest single buffer: {} ({:.2} GiB) within the device's {:.2} GiB ({})",
                self.name,
                gib(self.bytes),
                gib(self.max_buffer_bytes),
                self.limit_source
            ) + self.whole_weights_note.as_deref().unwrap_or("")
        }
    }
}

/// The largest buffer `req`'s runtime allocates: the largest weight tensor, or one layer's keys
/// for the whole context and batch, whichever is larger.
fn largest_buffer_check(
    facts: &ModelFacts<'_>,
    format: &WeightFormat,
    req: &EstimateRequest,
    context: u64,
    max_buffer: u64,
    weights_bytes: u64,
) -> BufferCheck {
    let tensor_bytes = facts.weight_totals(format).largest_tensor_bytes;
    let limit_source = match (req.device.max_buffer_bytes, req.device.is_apple_silicon()) {
        (Some(_), true) => "Metal's maxBufferLength",
        (Some(_), false) => "the device's largest buffer, from its limits or a probe report",
        (None, _) => "Metal's maxBufferLength, estimated as half of RAM",
    }
    .to_string();
    let kv_layer_bytes = if req.mode.is_training() {
        0
    } else {
        let kv = kv_cache_bytes_with(
            &req.model,
            context,
            req.batch,
            req.kv_dtype,
            req.runtime,
            &req.llama_cpp,
        );
        // Keys and values are separate tensors; an MLA latent is one.
        let parts = if kv.mla_latent { 1 } else { 2 };
        kv.per_layer_bytes.iter().copied().max().unwrap_or(0) / parts
    };
    if kv_layer_bytes > tensor_bytes {
        let exceeds = kv_layer_bytes > max_buffer;
        return BufferCheck {
            kind: BufferKind::KvLayer,
            name: format!(
                "one layer's {} cache for {} × {context} tokens",
                if req.model.mla.is_some() {
                    "latent"
                } else {
                    "key"
                },
                req.batch
            ),
            bytes: kv_layer_bytes,
            max_buffer_bytes: max_buffer,
            limit_source,
            exceeds,
            fix: "use a shorter context, fewer sequences or a smaller KV cache type".into(),
            whole_weights_note: None,
        };
    }
    let exceeds = tensor_bytes > max_buffer;
    // Naming the tensor walks every tensor: only worth it when the check fails.
    let name = if exceeds {
        crate::quant::tensor_formats(&req.model, format)
            .into_iter()
            .max_by_key(|(_, s)| s.bytes)
            .map(|(t, s)| format!("weight tensor {} ({})", t.name, s.dtype))
            .unwrap_or_else(|| "the largest weight tensor".into())
    } else {
        "the largest weight tensor".into()
    };
    let whole_weights_note = (weights_bytes > max_buffer).then(|| {
        format!(
            "; the weights as a whole ({:.2} GiB) exceed it, so a runtime that maps the whole \
             file as one buffer fails (llama.cpp splits a mapped file into overlapping views)",
            gib(weights_bytes)
        )
    });
    BufferCheck {
        kind: BufferKind::WeightTensor,
        name,
        bytes: tensor_bytes,
        max_buffer_bytes: max_buffer,
        limit_source,
        exceeds,
        fix: "a format with fewer bits per weight shrinks it; the wired limit does not raise \
              maxBufferLength"
            .into(),
        whole_weights_note,
    }
}

fn out_of_range(field: &str, value: impl ToString, problem: impl Into<String>) -> CoreError {
    CoreError::OutOfRange {
        field: field.into(),
        value: value.to_string(),
        problem: problem.into(),
    }
}

/// Check the request's numbers and combinations before any arithmetic.
pub fn validate(req: &EstimateRequest) -> Result<u64, CoreError> {
    let context = req.context_tokens();
    if context == 0 || context > MAX_CONTEXT_TOKENS {
        return Err(CoreError::setting(
            Setting::Context,
            context,
            format!("must be between 1 and {MAX_CONTEXT_TOKENS} tokens"),
            vec![Fix::new(Setting::Context, "4096")],
        ));
    }
    if req.batch == 0 || req.batch > MAX_BATCH {
        return Err(CoreError::setting(
            Setting::Batch,
            req.batch,
            format!("must be between 1 and {MAX_BATCH} sequences"),
            vec![],
        ));
    }
    if req.device_count == 0 || req.device_count > MAX_DEVICES {
        return Err(CoreError::setting(
            Setting::DeviceCount,
            req.device_count,
            format!("must be between 1 and {MAX_DEVICES} identical devices"),
            vec![],
        ));
    }
    if let Some(v) = req.macos {
        v.validate()?;
        if req.device.memory_kind != MemoryKind::Unified || !req.device.is_apple_silicon() {
            return Err(CoreError::setting(
                Setting::MacosVersion,
                v,
                format!(
                    "sets the GPU's share of a Mac's unified memory, and {} is not a Mac",
                    req.device.name
                ),
                vec![],
            ));
        }
    }
    validate_offload(req)?;
    // A ModelSpec can arrive deserialized (a shared link, a file header) without passing the
    // config parser's checks: apply the same limits before any arithmetic.
    crate::config::check_model_spec(&req.model)?;
    if let Runtime::Vllm {
        gpu_memory_utilization,
    } = req.runtime
        && !(gpu_memory_utilization > 0.0 && gpu_memory_utilization <= 1.0)
    {
        return Err(CoreError::setting(
            Setting::Runtime,
            req.runtime,
            "vLLM's gpu_memory_utilization must be in (0, 1]",
            vec![Fix::new(Setting::Runtime, "vllm:0.9")],
        ));
    }
    // `FromStr` only makes valid formats, but a request deserialized from JSON (the site's URL
    // state, a saved request) can carry any numbers.
    match req.format {
        WeightFormat::Gptq { bits, group_size }
        | WeightFormat::Awq { bits, group_size }
        | WeightFormat::Mlx { bits, group_size }
            if bits == 0 || bits > 8 || group_size == 0 =>
        {
            return Err(CoreError::setting(
                Setting::Format,
                format!("{bits}-bit g{group_size}"),
                "bits must be 1–8 and the group size at least 1",
                vec![Fix::new(Setting::Format, "gptq-4bit-g128")],
            ));
        }
        _ => {}
    }
    req.llama_cpp.validate()?;
    if req.runtime != Runtime::LlamaCpp && req.llama_cpp != LlamaCppSettings::default() {
        let (setting, value) = if req.llama_cpp.n_ubatch != LlamaCppSettings::default().n_ubatch {
            (Setting::Ubatch, req.llama_cpp.n_ubatch.to_string())
        } else {
            (
                Setting::FlashAttn,
                if req.llama_cpp.flash_attn {
                    "on"
                } else {
                    "off"
                }
                .to_string(),
            )
        };
        return Err(CoreError::setting(
            setting,
            value,
            format!("is a llama.cpp setting, and the runtime is {}", req.runtime),
            vec![Fix::new(Setting::Runtime, "llama.cpp")],
        ));
    }
    if req.runtime == Runtime::LlamaCpp
        && !req.llama_cpp.flash_attn
        && matches!(req.kv_dtype, KvDtype::Q8_0 | KvDtype::Q4_0)
    {
        // llama_init_from_model: "V cache quantization requires flash_attn".
        return Err(CoreError::setting(
            Setting::FlashAttn,
            "off",
            format!(
                "llama.cpp needs flash attention for a quantized ({}) V cache",
                req.kv_dtype
            ),
            vec![
                Fix::new(Setting::FlashAttn, "on"),
                Fix::new(Setting::KvDtype, "f16"),
            ],
        ));
    }
    if !req.runtime.supports_kv_dtype(req.kv_dtype) {
        return Err(CoreError::setting(
            Setting::KvDtype,
            req.kv_dtype,
            format!(
                "{} cannot keep its KV cache in {}: f16/bf16 work everywhere, fp8 in vLLM, \
                 q8_0/q4_0 in llama.cpp",
                req.runtime, req.kv_dtype
            ),
            vec![Fix::new(Setting::KvDtype, "f16")],
        ));
    }
    // Which engines exist depends on the platform, not on unified memory as such: an integrated
    // or software adapter measured by a probe shares host memory but gets the PyTorch profile.
    let apple = req.device.is_apple_silicon();
    let runtimes = |names: &[&str]| -> Vec<Fix> {
        names
            .iter()
            .map(|n| Fix::new(Setting::Runtime, *n))
            .collect()
    };
    match req.runtime {
        Runtime::TransformersCuda | Runtime::Vllm { .. } if apple => {
            return Err(CoreError::setting(
                Setting::Runtime,
                req.runtime,
                format!(
                    "needs a discrete GPU (CUDA), and {} is Apple silicon",
                    req.device.name
                ),
                runtimes(&["transformers-mps", "mlx", "llama.cpp"]),
            ));
        }
        Runtime::TransformersMps | Runtime::Mlx if !apple => {
            return Err(CoreError::setting(
                Setting::Runtime,
                req.runtime,
                format!("runs on Apple silicon only, and {} is not", req.device.name),
                runtimes(&["transformers", "vllm", "llama.cpp"]),
            ));
        }
        _ => {}
    }
    if req.format.is_gguf() && req.runtime != Runtime::LlamaCpp {
        return Err(CoreError::setting(
            Setting::Runtime,
            req.runtime,
            format!("{} is a GGUF format, which runs in llama.cpp", req.format),
            vec![
                Fix::new(Setting::Runtime, "llama.cpp"),
                Fix::new(Setting::Format, "bf16"),
            ],
        ));
    }
    if matches!(req.format, WeightFormat::Mlx { .. }) && req.runtime != Runtime::Mlx {
        return Err(CoreError::setting(
            Setting::Runtime,
            req.runtime,
            format!(
                "{} is an MLX format, which runs in MLX on Apple silicon",
                req.format
            ),
            vec![Fix::new(Setting::Runtime, "mlx")],
        ));
    }
    if req.mode.is_training() {
        if !matches!(
            req.runtime,
            Runtime::TransformersCuda | Runtime::TransformersMps
        ) {
            return Err(CoreError::setting(
                Setting::Runtime,
                req.runtime,
                format!(
                    "training ({}) is estimated for transformers/PyTorch only",
                    req.mode.name()
                ),
                runtimes(if apple {
                    &["transformers-mps"]
                } else {
                    &["transformers"]
                }),
            ));
        }
        if let Mode::Full(_) = req.mode
            && !matches!(
                req.format,
                WeightFormat::F32 | WeightFormat::F16 | WeightFormat::Bf16
            )
        {
            return Err(CoreError::setting(
                Setting::Format,
                &req.format,
                "a full fine-tune trains 16/32-bit weights",
                vec![
                    Fix::new(Setting::Format, "bf16"),
                    Fix::new(Setting::Mode, "lora"),
                    Fix::new(Setting::Mode, "qlora"),
                ],
            ));
        }
    }
    Ok(context)
}

/// The forced split must be one the runtime and the model have.
fn validate_offload(req: &EstimateRequest) -> Result<(), CoreError> {
    let o = req.offload;
    let (setting, value) = match (o.gpu_layers, o.n_cpu_moe) {
        (None, None) => return Ok(()),
        (Some(_), Some(m)) => {
            return Err(CoreError::setting(
                Setting::NCpuMoe,
                m,
                "and GPU layers are two ways to split: give one of them",
                vec![],
            ));
        }
        (Some(n), None) => (Setting::GpuLayers, n),
        (None, Some(m)) => (Setting::NCpuMoe, m),
    };
    if req.runtime != Runtime::LlamaCpp {
        return Err(CoreError::setting(
            setting,
            value,
            format!("is a llama.cpp split, and the runtime is {}", req.runtime),
            vec![Fix::new(Setting::Runtime, "llama.cpp")],
        ));
    }
    if req.mode.is_training() {
        return Err(CoreError::setting(
            setting,
            value,
            "splits inference in llama.cpp, not training",
            vec![Fix::new(Setting::Mode, "inference")],
        ));
    }
    if req.device.vendor == crate::machine::CPU_VENDOR {
        return Err(CoreError::setting(
            setting,
            value,
            "splits between a GPU and the host, and this device is the CPU alone",
            vec![],
        ));
    }
    let layers = req.model.num_layers;
    if setting == Setting::GpuLayers && value > layers + 1 {
        return Err(CoreError::setting(
            setting,
            value,
            format!(
                "{} has {layers} layers plus the output layer: at most {}",
                req.model.name,
                layers + 1
            ),
            vec![Fix::new(Setting::GpuLayers, (layers + 1).to_string())],
        ));
    }
    if setting == Setting::NCpuMoe {
        let has_experts = req
            .model
            .layers()
            .iter()
            .any(|l| matches!(l.mlp, crate::model::Mlp::Moe(_)));
        if !has_experts {
            return Err(CoreError::setting(
                setting,
                value,
                format!(
                    "keeps expert tensors on the host, and {} is a dense model (no experts)",
                    req.model.name
                ),
                vec![Fix::new(Setting::GpuLayers, layers.to_string())],
            ));
        }
        if value > layers {
            return Err(CoreError::setting(
                setting,
                value,
                format!("{} has {layers} layers: at most {layers}", req.model.name),
                vec![Fix::new(Setting::NCpuMoe, layers.to_string())],
            ));
        }
    }
    Ok(())
}

/// QLoRA's base format: bitsandbytes NF4 with double quantization (the QLoRA paper's setting),
/// unless the request already names a bitsandbytes 4-bit format.
pub fn qlora_base_format(format: &WeightFormat) -> WeightFormat {
    match format {
        WeightFormat::BnbNf4 { .. } | WeightFormat::BnbFp4 { .. } => format.clone(),
        _ => WeightFormat::BnbNf4 { double_quant: true },
    }
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / GIB as f64
}

/// Compute the estimate for `req`.
pub fn estimate(req: &EstimateRequest) -> Result<Estimate, CoreError> {
    estimate_with(&ModelFacts::new(&req.model), req)
}

/// [`estimate`] with `facts` of `req.model` that earlier estimates of the same question already
/// worked out ([`crate::answer::answer`] runs about sixty per question).
pub(crate) fn estimate_with(
    facts: &ModelFacts<'_>,
    req: &EstimateRequest,
) -> Result<Estimate, CoreError> {
    debug_assert!(facts.model() == &req.model, "facts of another model");
    let context = validate(req)?;
    let model = &req.model;
    let batch = req.batch;
    let n_dev = u64::from(req.device_count);
    let profile = req.runtime.profile(&req.device);
    let counts = facts.counts();
    let mut assumptions: Vec<String> = Vec::new();

    if model.approximate {
        assumptions.push(format!(
            "{}: unknown architecture, parameter counts approximated from generic config fields",
            model.name
        ));
    }
    if req.context.is_none() {
        assumptions.push(format!(
            "context {context} tokens (default: 4096 or the model's maximum if smaller; the \
             model supports {})",
            model.max_context
        ));
    } else if context > model.max_context {
        assumptions.push(format!(
            "context {context} exceeds the model's max_position_embeddings {}: memory is \
             estimated anyway",
            model.max_context
        ));
    }
    assumptions.push(format!("runtime {}: {}", profile.name, profile.notes));

    // Weights, KV, activations, training.
    let format_used = match &req.mode {
        Mode::Qlora(_) => {
            let f = qlora_base_format(&req.format);
            if f != req.format {
                assumptions.push(format!(
                    "QLoRA base weights in {f} (bitsandbytes NF4 + double quantization), not {}",
                    req.format
                ));
            }
            f
        }
        _ => req.format.clone(),
    };
    let computed_weights = facts.weight_totals(&format_used).weights_bytes;
    let frozen_weights = match &req.checkpoint {
        Some(c) if c.format == format_used => {
            assumptions.push(format!(
                "weights: {} bytes as stored in {} (read from its headers; computed from the \
                 config: {computed_weights} bytes)",
                c.bytes, c.source
            ));
            c.bytes
        }
        _ => computed_weights,
    };
    let (weights, kv, activations, training, llama_buffers) = if req.mode.is_training() {
        let t = training_memory_with(
            facts,
            &req.mode,
            frozen_weights,
            batch,
            context,
            req.activation
                .fused_attention
                .unwrap_or(profile.fused_attention),
        )?;
        assumptions.extend(t.assumptions.iter().cloned());
        assumptions
            .push("training: no KV cache (use_cache=False); sequence length = context".to_string());
        (t.weights_bytes, 0, 0, t.training_bytes, None)
    } else {
        let kv = kv_cache_bytes_with(
            model,
            context,
            batch,
            req.kv_dtype,
            req.runtime,
            &req.llama_cpp,
        );
        let act =
            prefill_activation_bytes(model, context, batch, req.runtime, &profile, req.activation);
        // llama.cpp: the compute buffer it reserves for its worst-case graph, and its output
        // buffer (host memory: charged where the device's memory is the host's).
        let llama_buffers = (req.runtime == Runtime::LlamaCpp).then(|| {
            let compute =
                compute_buffer(model, context.saturating_mul(batch), batch, &req.llama_cpp);
            let output = output_buffer_bytes(model, batch);
            let charged_output = if req.device.memory_kind == MemoryKind::Unified {
                output
            } else {
                0
            };
            LlamaCppBuffers {
                settings: req.llama_cpp,
                sequences: batch,
                compute,
                output_buffer_bytes: output,
                output_buffer_counted: charged_output > 0,
            }
        });
        let mut kv_note = format!(
            "KV cache {} for {batch} × {context} tokens{}: {} B per token per layer{}",
            req.kv_dtype,
            if req.runtime == Runtime::LlamaCpp {
                " (llama.cpp rounds the context up to a multiple of 256 cells per stream)"
            } else {
                ""
            },
            kv.bytes_per_token_per_layer,
            if kv.mla_latent {
                " (MLA compressed latent kv_lora_rank + qk_rope_head_dim)"
            } else if model.mla.is_some() {
                " (MLA keys/values decompressed per head, as this runtime caches them)"
            } else {
                " (2 · n_kv_heads · head_dim)"
            }
        );
        if model
            .layer_attention
            .iter()
            .any(|a| matches!(a, crate::model::LayerAttention::Sliding { .. }))
        {
            kv_note.push_str(match req.runtime.sliding_window_cache() {
                crate::runtime::SlidingWindowCache::Window => {
                    "; sliding-window layers hold min(tokens, window)"
                }
                crate::runtime::SlidingWindowCache::WindowPlusUbatch => {
                    "; sliding-window layers hold window × sequences + n_ubatch cells, padded \
                     to 256 (llama.cpp SWA cache; llama.cpp's llama and phi3 architectures, \
                     which run Mistral-7B-v0.1 and Phi-3, ignore the window)"
                }
                crate::runtime::SlidingWindowCache::FullUntilFirstDecode => {
                    "; sliding-window layers keep only the window once decoding runs, but hold \
                     the whole prompt right after the prefill (transformers keeps a view of the \
                     prompt's K/V): the peak counts every token"
                }
            });
        }
        assumptions.push(kv_note);
        if let Some(LlamaCppBuffers {
            compute,
            output_buffer_bytes: output,
            output_buffer_counted,
            ..
        }) = &llama_buffers
        {
            assumptions.push(req.llama_cpp.statement(batch));
            assumptions.push(format!(
                "llama.cpp compute buffer {:.2} GiB: the worst-case graph it reserves at start, \
                 {} tokens (n_ubatch) against {} KV cells with logits for every one of them \
                 ({:.2} GiB logits, {:.2} GiB attention{}, {:.2} GiB feed-forward, {:.2} GiB \
                 masks; the largest phase plus the masks); output buffer {:.2} MiB (f32 logits \
                 of one token per sequence, in host memory{}); the CPU backend's repacked weight \
                 copies (CPU_REPACK) exist on the CPU only and are not counted",
                gib(compute.total_bytes),
                compute.tokens,
                compute.kv_cells,
                gib(compute.logits_bytes),
                gib(compute.attention_bytes),
                if req.llama_cpp.flash_attn {
                    " with flash attention".to_string()
                } else {
                    format!(" incl. {:.2} GiB f32 scores", gib(compute.scores_bytes))
                },
                gib(compute.ffn_bytes),
                gib(compute.mask_bytes),
                *output as f64 / (1u64 << 20) as f64,
                if *output_buffer_counted {
                    ", the device's own memory here: counted"
                } else {
                    ", not the GPU's: not counted"
                }
            ));
        }
        let activation_total = match &llama_buffers {
            Some(b) => b
                .compute
                .total_bytes
                .saturating_add(if b.output_buffer_counted {
                    b.output_buffer_bytes
                } else {
                    0
                }),
            None => act.total_bytes,
        };
        if llama_buffers.is_none() {
            assumptions.push(format!(
                "activations: prefill of {} tokens per forward pass, {} attention, logits for {} \
             ({:.2} GiB layer working set, {:.2} GiB scores, {:.2} GiB logits)",
                act.chunk_tokens,
                if act.fused_attention {
                    "fused (no score matrix)"
                } else {
                    "materialized"
                },
                if act.logits_all_positions {
                    "every position"
                } else {
                    "the last position only"
                },
                gib(act.layer_bytes),
                gib(act.attention_scores_bytes),
                gib(act.logits_bytes)
            ));
        }
        (
            frozen_weights,
            kv.total_bytes,
            activation_total,
            0,
            llama_buffers,
        )
    };
    let overhead_per_device = profile.fixed_overhead_bytes;
    let overhead = overhead_per_device.saturating_mul(n_dev);
    assumptions.push(format!(
        "runtime overhead {:.2} GiB per device: {}",
        gib(overhead_per_device),
        profile.overhead_source
    ));

    let components = [weights, kv, activations, overhead, training];
    let overflow = || {
        out_of_range(
            "memory estimate",
            "over 16 EiB",
            "the request needs more bytes than a 64-bit count holds; reduce context or batch",
        )
    };
    if components.contains(&u64::MAX) {
        return Err(overflow());
    }
    let total = components
        .iter()
        .try_fold(0u64, |acc, c| acc.checked_add(*c))
        .ok_or_else(overflow)?;
    let shared = total - overhead;
    let per_device = shared
        .div_ceil(n_dev)
        .checked_add(overhead_per_device)
        .ok_or_else(overflow)?;

    // Usable memory and verdict.
    let usable = usable_memory_on(&req.device, req.runtime, req.wired_limit_bytes, req.macos);
    assumptions.push(format!("usable memory: {}", usable.basis));
    let usable_bytes = usable.usable_bytes;
    let fits_limit = (usable_bytes / 100)
        .saturating_mul(FITS_THRESHOLD_PERCENT)
        .saturating_add(usable_bytes % 100 * FITS_THRESHOLD_PERCENT / 100);
    let offload = offload_capacity_bytes(&req.device, usable_bytes, req.host_memory_bytes);
    let mut verdict = if per_device <= fits_limit {
        Verdict::Fits
    } else if per_device <= usable_bytes {
        Verdict::FitsTightly
    } else if total <= usable_bytes.saturating_mul(n_dev).saturating_add(offload) {
        Verdict::NeedsOffload
    } else {
        Verdict::DoesNotFit
    };
    let offload_engine = match req.runtime {
        Runtime::LlamaCpp => Some(OffloadEngine::LlamaCpp),
        Runtime::TransformersCuda => Some(OffloadEngine::Transformers),
        _ => None,
    }
    .filter(|_| !req.mode.is_training() && req.device.vendor != crate::machine::CPU_VENDOR);
    let offload_plan = match offload_engine {
        Some(engine) if req.offload.forced() || per_device > usable_bytes => {
            let plan = offload_plan(
                facts,
                req,
                engine,
                &format_used,
                weights,
                context,
                activations.saturating_add(overhead),
                usable_bytes.saturating_mul(n_dev),
                offload,
            );
            let chosen = &plan.chosen;
            if req.offload.forced() && chosen.host_bytes > chosen.host_capacity_bytes {
                return Err(host_too_small(req, chosen));
            }
            let everything_on_gpu = matches!(
                chosen.split,
                SplitKind::GpuLayers { n_gpu_layers } if n_gpu_layers > model.num_layers
            ) || matches!(chosen.split, SplitKind::CpuMoe { n_cpu_moe: 0 });
            if !(everything_on_gpu && verdict.fits()) {
                verdict = if chosen.fits {
                    Verdict::NeedsOffload
                } else {
                    Verdict::DoesNotFit
                };
            }
            Some(plan)
        }
        _ => None,
    };
    assumptions.push(format!(
        "verdict: fits ≤ {FITS_THRESHOLD_PERCENT}% of usable memory per device, fits tightly ≤ \
         100%, needs offload if the rest fits in {:.1} GiB of host memory ({})",
        gib(offload),
        match (req.device.memory_kind, req.host_memory_bytes) {
            (MemoryKind::Unified, _) if req.device.vendor == crate::machine::CPU_VENDOR =>
                "CPU only: everything is in RAM already, nothing to offload to".to_string(),
            (MemoryKind::Unified, _) =>
                "3/4 of the unified memory outside the GPU working set".to_string(),
            (MemoryKind::Discrete, Some(h)) => format!("3/4 of {:.0} GiB host RAM", gib(h)),
            (MemoryKind::Discrete, None) => format!(
                "3/4 of an assumed {:.0} GiB host RAM; give the real figure to refine",
                gib(DEFAULT_HOST_MEMORY_BYTES)
            ),
        }
    ));
    let largest_buffer = usable.max_buffer_bytes.map(|max_buffer| {
        largest_buffer_check(
            facts,
            &format_used,
            req,
            context,
            max_buffer,
            frozen_weights,
        )
    });
    if let Some(check) = &largest_buffer {
        assumptions.push(check.statement());
    }
    let mps_high_watermark = (req.runtime == Runtime::TransformersMps
        && req.device.memory_kind == MemoryKind::Unified)
        .then(|| mps_high_watermark_bytes(usable_bytes));
    if let Some(limit) = mps_high_watermark {
        assumptions.push(if per_device > limit {
            format!(
                "PyTorch MPS: {:.2} GiB is beyond its allocation limit of {:.2} GiB \
                 (PYTORCH_MPS_HIGH_WATERMARK_RATIO 1.7 × the {:.2} GiB working set): it stops with \
                 \"MPS backend out of memory\"",
                gib(per_device),
                gib(limit),
                gib(usable_bytes)
            )
        } else if per_device > usable_bytes {
            format!(
                "PyTorch MPS: {:.2} GiB is within its allocation limit of {:.2} GiB \
                 (PYTORCH_MPS_HIGH_WATERMARK_RATIO 1.7 × the {:.2} GiB working set), so it \
                 would run, but beyond the working set macOS pages GPU memory: counted as not \
                 fitting",
                gib(per_device),
                gib(limit),
                gib(usable_bytes)
            )
        } else {
            format!(
                "PyTorch MPS stops allocating at {:.2} GiB (PYTORCH_MPS_HIGH_WATERMARK_RATIO 1.7 × \
                 the working set); the verdict holds to the working set itself",
                gib(limit)
            )
        });
    }
    // Unified memory is one machine's RAM: a laptop is not split into identical GPUs, so no
    // device count is offered there.
    let needed = match req.device.memory_kind {
        MemoryKind::Unified => None,
        MemoryKind::Discrete => {
            devices_needed(shared, overhead_per_device, usable_bytes, MAX_DEVICES)
        }
    };
    if req.device_count > 1 {
        assumptions.push(format!(
            "split over {} identical devices: weights, KV and activations divided evenly \
             (tensor/pipeline parallel), runtime overhead on each",
            req.device_count
        ));
    }

    // Speed.
    let (decode, prefill) = if req.mode.is_training() {
        assumptions.push("speeds: not estimated for training (reported as 0)".to_string());
        (0.0, 0.0)
    } else if verdict == Verdict::DoesNotFit {
        assumptions.push(
            "speeds: none, since it does not fit even with offload (reported as 0)".to_string(),
        );
        (0.0, 0.0)
    } else {
        // Checkpoint bytes scale the computed active share (a token reads its experts' share of
        // the stored bytes, scales included).
        let computed_active = facts.weight_totals(&format_used).active_weights_bytes;
        let active_bytes = if frozen_weights == computed_weights || computed_weights == 0 {
            computed_active
        } else {
            (computed_active as f64 * frozen_weights as f64 / computed_weights as f64) as u64
        };
        let kv_steady = kv_cache_bytes_with(
            model,
            context,
            batch,
            req.kv_dtype,
            req.runtime,
            &req.llama_cpp,
        )
        .steady_bytes;
        let kv_per_seq = kv_steady / batch.max(1);
        let mut d = decode_tokens_per_s(&req.device, active_bytes, kv_per_seq, batch);
        if req.runtime == Runtime::LlamaCpp {
            d = with_llama_cpp_bandwidth_cap(d, &req.device);
            let moe_s = llama_cpp_moe_step_overhead_s(&req.device, model);
            d = with_step_overhead(
                d,
                llama_cpp_decode_step_overhead_s(&req.device, model.num_layers) + moe_s,
            );
            if moe_s > 0.0 && d.tokens_per_s > 0.0 {
                d.assumptions.push(format!(
                    "decode: {:.2} ms of that is the MoE layers' routing kernels ({:.0} µs per MoE \
                     layer, derived from one measured model: Qwen3-30B-A3B on an H100)",
                    moe_s * 1e3,
                    crate::speed::llama_cpp_moe_layer_overhead_s(&req.device) * 1e6
                ));
            }
        }
        // PyTorch (transformers) and vLLM run fp16/bf16 GEMMs with fp32 accumulation;
        // llama.cpp's CUDA kernels accumulate f16 matmuls in f16 and quantized ones in int32.
        let fp32_accumulate = matches!(
            req.runtime,
            Runtime::TransformersCuda | Runtime::TransformersMps | Runtime::Vllm { .. }
        );
        let mut p = if req.runtime == Runtime::LlamaCpp {
            llama_cpp_prefill_tokens_per_s(
                &req.device,
                model,
                counts.active_excluding_input_embedding,
                context,
                &format_used,
            )
        } else {
            prefill_tokens_per_s_accumulating(
                &req.device,
                model,
                counts.active_excluding_input_embedding,
                context,
                !matches!(format_used, WeightFormat::F32),
                fp32_accumulate,
            )
        };
        if req.device_count > 1 && d.tokens_per_s > 0.0 && p.tokens_per_s > 0.0 {
            let decode_x = tensor_parallel_speedup(
                1.0 / d.tokens_per_s,
                req.device_count,
                model.num_layers,
                model.hidden_size,
                batch,
            );
            let prefill_x = tensor_parallel_speedup(
                context as f64 / p.tokens_per_s,
                req.device_count,
                model.num_layers,
                model.hidden_size,
                context,
            );
            d.tokens_per_s *= decode_x;
            p.tokens_per_s *= prefill_x;
            d.assumptions.push(format!(
                "{n_dev} devices in tensor parallel: decode × {decode_x:.2}, prefill × \
                 {prefill_x:.2} (each device works on 1/{n_dev} of the weights, then two \
                 all-reduces per layer over a {:.0} GB/s link with {:.0} µs per hop; identical \
                 devices, so none waits on a slower one)",
                INTERCONNECT_BYTES_PER_S / 1e9,
                ALLREDUCE_HOP_LATENCY_S * 1e6
            ));
        }
        if let Some(plan) = &offload_plan {
            d.tokens_per_s = plan.chosen.decode_tokens_per_s;
            p.tokens_per_s = plan.chosen.prefill_tokens_per_s;
            d.assumptions.push(plan.statement());
        } else if verdict == Verdict::NeedsOffload {
            // The part beyond the devices' usable memory lives in host memory and is read from
            // there on every token (llama.cpp runs those layers on the CPU).
            let on_devices = usable_bytes.saturating_mul(n_dev);
            let share = if total == 0 {
                0.0
            } else {
                total.saturating_sub(on_devices) as f64 / total as f64
            };
            let device_bw = req.device.bandwidth_bytes_per_s;
            let host_bw = crate::offload::host_bandwidth(&req.device)
                .0
                .min(device_bw.max(1.0));
            d.tokens_per_s = offloaded_tokens_per_s(d.tokens_per_s, device_bw, host_bw, share);
            p.tokens_per_s = offloaded_tokens_per_s(p.tokens_per_s, device_bw, host_bw, share);
            d.assumptions.push(format!(
                "offload: {:.0}% of the memory lives in host memory, read at {:.0} GB/s on every \
                 token (measured by a probe, or dual-channel DDR5 as CPUs reach it) against {:.0} GB/s on the device; \
                 decode and prefill slowed in proportion",
                share * 100.0,
                host_bw / 1e9,
                device_bw / 1e9
            ));
        }
        assumptions.extend(d.assumptions);
        assumptions.extend(p.assumptions);
        (d.tokens_per_s, p.tokens_per_s)
    };

    Ok(Estimate {
        model: model.name.clone(),
        params_total: counts.total,
        params_active: counts.active,
        quant: format_used.to_string(),
        context,
        batch,
        weights_bytes: weights,
        kv_cache_bytes: kv,
        activation_bytes: activations,
        overhead_bytes: overhead,
        training_bytes: training,
        total_bytes: total,
        per_device_bytes: per_device,
        device: req.device.name.clone(),
        usable_bytes,
        devices_needed: needed,
        fits: verdict.fits(),
        verdict,
        decode_tokens_per_s: decode,
        prefill_tokens_per_s: prefill,
        assumptions,
        runtime: req.runtime.to_string(),
        mode: req.mode.to_string(),
        kv_cache_dtype: req.kv_dtype.to_string(),
        device_count: req.device_count,
        largest_buffer,
        mps_high_watermark_bytes: mps_high_watermark,
        llama_cpp: llama_buffers,
        offload: offload_plan,
    })
}

/// The error for a forced split whose host part does not fit: on a discrete GPU the host memory
/// setting is what to raise; on unified memory the host's share is what the GPU's working set
/// leaves of RAM, so the split itself is what to change.
fn host_too_small(req: &EstimateRequest, chosen: &crate::offload::OffloadSplit) -> CoreError {
    if req.device.memory_kind == MemoryKind::Unified {
        let (setting, value) = match (req.offload.gpu_layers, req.offload.n_cpu_moe) {
            (Some(n), _) => (Setting::GpuLayers, n),
            (None, n) => (Setting::NCpuMoe, n.unwrap_or(0)),
        };
        return CoreError::setting(
            setting,
            value,
            format!(
                "keeps {:.1} GiB beside the GPU, and this machine's unified memory leaves only \
                 {:.1} GiB outside the GPU's working set: put more on the GPU",
                gib(chosen.host_bytes),
                gib(chosen.host_capacity_bytes)
            ),
            vec![],
        );
    }
    let host = req.host_memory_bytes.unwrap_or(DEFAULT_HOST_MEMORY_BYTES);
    CoreError::setting(
        Setting::HostMemory,
        format!("{:.0} GiB", gib(host)),
        format!(
            "offload may use {:.1} GiB of it (3/4), less than the {:.1} GiB the split {} keeps \
             on the host",
            gib(chosen.host_capacity_bytes),
            gib(chosen.host_bytes),
            chosen.split.flag()
        ),
        vec![Fix::new(
            Setting::HostMemory,
            format!(
                "{}",
                (chosen.host_bytes.saturating_mul(4) / 3).div_ceil(GIB)
            ),
        )],
    )
}

/// The offload plan for `req` (see [`crate::offload`]): weights grouped by placement and scaled
/// to the estimate's `weights` bytes, each layer's KV cache, and the GPU-only prefill speed.
#[allow(clippy::too_many_arguments)]
fn offload_plan(
    facts: &ModelFacts<'_>,
    req: &EstimateRequest,
    engine: OffloadEngine,
    format: &WeightFormat,
    weights: u64,
    context: u64,
    gpu_fixed_bytes: u64,
    gpu_capacity_bytes: u64,
    host_capacity_bytes: u64,
) -> OffloadPlan {
    let placement = facts.placement(format).scaled_to(weights);
    // The cache as the engine allocates it (llama.cpp's padded and SWA cells), layer by layer.
    let kv = kv_cache_bytes_with(
        &req.model,
        context,
        req.batch,
        req.kv_dtype,
        req.runtime,
        &req.llama_cpp,
    );
    let per_layer_sum: u64 = kv.per_layer_bytes.iter().sum();
    let scale = |target: u64| -> Vec<u64> {
        if per_layer_sum == 0 {
            return vec![0; kv.per_layer_bytes.len()];
        }
        let f = target as f64 / per_layer_sum as f64;
        kv.per_layer_bytes
            .iter()
            .map(|b| (*b as f64 * f) as u64)
            .collect()
    };
    let fp32_accumulate = req.runtime == Runtime::TransformersCuda;
    let active = facts.counts().active_excluding_input_embedding;
    let gpu_prefill = if req.runtime == Runtime::LlamaCpp {
        llama_cpp_prefill_tokens_per_s(&req.device, &req.model, active, context, format)
    } else {
        prefill_tokens_per_s_accumulating(
            &req.device,
            &req.model,
            active,
            context,
            !matches!(format, WeightFormat::F32),
            fp32_accumulate,
        )
    }
    .tokens_per_s;
    let inputs = OffloadInputs {
        device: &req.device,
        device_count: req.device_count,
        kv_layer_bytes: scale(kv.total_bytes),
        kv_layer_read_bytes: scale(kv.steady_bytes),
        gpu_fixed_bytes,
        gpu_capacity_bytes,
        host_capacity_bytes,
        gpu_prefill_tokens_per_s: gpu_prefill,
        context,
    };
    crate::offload::plan(engine, &placement, &inputs, req.offload)
}
