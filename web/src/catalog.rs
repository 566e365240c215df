//! The one place the site calls into `headroom-core`: catalogs, settings parsed from the URL, and
//! the calculation behind the Calculator page (estimate, advice, every format side by side).
//! Pure (no browser calls), so it is tested natively and timed in the browser tests.

use std::str::FromStr;

use headroom_core::{
    answer::{self, Answer, CheckpointSize, ContextAsk, Question},
    devices::{self, DeviceSpec, MemoryKind},
    error::Setting,
    extra_models::DraftAsk,
    kv_cache::KvDtype,
    limits::MAX_MEMORY_GIB,
    llama_cpp::LlamaCppSettings,
    macos::MacosVersion,
    model::ModelSpec,
    model_catalog,
    quant::WeightFormat,
    ranking::{DeviceNeeds, devices_that_fit},
    runtime::Runtime,
    training::Mode,
    units::GIB,
    usable_memory,
};

use crate::{error::WebError, url_state::Query};

/// Where the model comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSource {
    /// A catalog id, e.g. `llama-3.1-8b` (`model=`).
    Catalog(String),
    /// A Hugging Face repository id, fetched in the browser (`hf=`).
    Hub(String),
    /// A pasted `config.json` (`cfg=`, with `name=`).
    Config {
        /// Display name.
        name: String,
        /// The JSON text.
        json: String,
    },
    /// A spec read from a model file's header (`spec=`: [`ModelSpec`] as JSON).
    Spec(String),
    /// A model known only by its size, as typed (`size=`: `8B`, `70`, `1.5B`, `494M`); shaped
    /// by core's [`model_catalog::model_of_size`], approximate and saying so.
    Size(String),
}

/// Exact weights read from a dropped model file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExactWeights {
    /// File name.
    pub file: String,
    /// Sum of the file's tensor data, bytes.
    pub bytes: u64,
    /// Parameters in the file.
    pub parameters: u64,
    /// The file's format in headroom's names (`Q4_K_M`, `fp8`, `bf16`), when known (`wformat=`).
    pub format: Option<String>,
    /// False when packed tensors were counted as stored (`wexact=0`).
    pub parameters_exact: bool,
}

/// The `device=` value that asks for no device: what the model needs.
pub const ANY_DEVICE: &str = "any";

/// The device: a catalog entry, a measured one, one described by its figures, or none.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceChoice {
    /// Catalog id (`device=`).
    Catalog(String),
    /// A device built from a probe report or the browser benchmark (`devspec=`: JSON).
    Measured(String),
    /// A device that is in no catalog, by its memory, bandwidth and compute.
    Custom(CustomDevice),
    /// No device (`device=any`): the answer is what the model needs and the catalog devices
    /// that hold it.
    Any,
}

impl DeviceChoice {
    /// Write the choice into a link's query (`device=`, `devspec=` or the custom device's
    /// `cmem=`, `cbw=`, `ctflops=`, `cunified=`).
    pub fn write_query(&self, q: &mut Query) {
        match self {
            DeviceChoice::Catalog(id) => q.set("device", id.clone()),
            DeviceChoice::Any => q.set("device", ANY_DEVICE),
            DeviceChoice::Measured(s) => q.set("devspec", s.clone()),
            DeviceChoice::Custom(c) => {
                q.set("cmem", c.memory_gib.to_string());
                q.set("cbw", c.bandwidth_gb_s.to_string());
                q.set("ctflops", c.fp16_tflops.to_string());
                if c.unified {
                    q.set("cunified", "1");
                }
            }
        }
    }
}

/// A device described by its datasheet figures (`cmem=`, `cbw=`, `ctflops=`, `cunified=1`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CustomDevice {
    /// Memory, GiB (VRAM, or RAM for unified memory).
    pub memory_gib: f64,
    /// Memory bandwidth, GB/s (10^9 bytes per second, as datasheets give it).
    pub bandwidth_gb_s: f64,
    /// FP16 matrix rate, TFLOP/s (10^12).
    pub fp16_tflops: f64,
    /// Unified memory (Apple silicon, integrated GPUs) rather than a discrete GPU's own.
    pub unified: bool,
}

impl Default for CustomDevice {
    /// An RTX 4090's figures, a starting point to edit.
    fn default() -> Self {
        CustomDevice {
            memory_gib: 24.0,
            bandwidth_gb_s: 1008.0,
            fp16_tflops: 165.0,
            unified: false,
        }
    }
}

/// Every Calculator setting; round-trips through the URL. Each setting of `headroom fit` has
/// one here.
#[derive(Debug, Clone, PartialEq)]
pub struct CalcSettings {
    /// The model.
    pub model: ModelSource,
    /// Weight format name; empty = the checkpoint's own format.
    pub format: String,
    /// Context tokens; `None` = the model's default.
    pub context: Option<u64>,
    /// Batch.
    pub batch: u64,
    /// Mode in core's grammar (`inference`, `lora`, `qlora`, `full`, or a link's longer form
    /// such as `qlora:ckpt`); the controls below override its parts.
    pub mode: String,
    /// Gradient checkpointing (`ckpt=1|0`); `None` = the mode's default (on for QLoRA).
    pub checkpointing: Option<bool>,
    /// LoRA rank (`rank=`); `None` = core's default.
    pub lora_rank: Option<u64>,
    /// LoRA target modules, comma-separated (`targets=`); empty = core's default.
    pub lora_targets: String,
    /// Layers that get LoRA adapters (`layers=`), in the CLI's `--lora-layers` grammar
    /// (`last:8`, `0-15`, ...); empty = all. LoRA and QLoRA only.
    pub lora_layers: String,
    /// Optimizer of a full fine-tune (`opt=`: adamw, adam8bit, sgd); empty = adamw.
    pub optimizer: String,
    /// Precision of a full fine-tune (`prec=`: bf16-mixed, fp32, bf16); empty = bf16-mixed.
    pub precision: String,
    /// Runtime name; empty = the usual one for device and format.
    pub runtime: String,
    /// KV cache type name; empty = the runtime's usual one.
    pub kv: String,
    /// Identical devices.
    pub device_count: u32,
    /// The device.
    pub device: DeviceChoice,
    /// macOS `iogpu.wired_limit_mb` (`wired=`, MiB), Apple devices.
    pub wired_limit_mb: Option<u64>,
    /// Host RAM beside a discrete GPU (`host=`, GiB), for the offload verdict.
    pub host_memory_gib: Option<u64>,
    /// The Mac's macOS release (`macos=`, e.g. `15` or `26.1`); empty = the newest.
    pub macos: String,
    /// Users a server holds at the context (`users=`); `None` = none asked.
    pub users: Option<u64>,
    /// llama.cpp layers on the GPU (`ngl=`, `-ngl`); `None` = headroom's split when needed.
    pub gpu_layers: Option<u64>,
    /// llama.cpp layers whose experts stay on the host (`ncmoe=`, `--n-cpu-moe`).
    pub n_cpu_moe: Option<u64>,
    /// Exact weights from a dropped file (`wbytes=`, `wparams=`, `wfile=`).
    pub exact: Option<ExactWeights>,
    /// Leave out vision/audio encoders and projectors (`text=1`).
    pub text_only: bool,
    /// Load the MTP layers for speculative decoding (`mtp=1`).
    pub with_mtp: bool,
    /// llama.cpp's flash attention (`fa=on|off`); `None` = on, llama-server's default.
    pub flash_attn: Option<bool>,
    /// llama.cpp's micro-batch (`ub=`); `None` = 512, llama-server's default.
    pub ubatch: Option<u64>,
    /// llama.cpp's unified KV cache for several sequences (`kvu=on|off`); `None` = on.
    pub kv_unified: Option<bool>,
    /// Load the vision projector and one image's compute (`mmproj=1`).
    pub mmproj: bool,
    /// A catalog model as the draft for speculative decoding (`draft=`); empty = none.
    pub draft: String,
    /// The draft's weight format (`dformat=`); empty = the model's.
    pub draft_format: String,
    /// Draft tokens per step (`dtokens=`); `None` = the runtime's usual number.
    pub draft_tokens: Option<u64>,
    /// The acceptance rate the user states (`daccept=`); `None` = no expected speed.
    pub draft_acceptance: Option<f64>,
}

/// Model of the first screen when the URL names none: a popular pairing that fits.
pub const DEFAULT_MODEL: &str = "llama-3.1-8b";
/// Device of the first screen when the URL names none and this browser has measured none: the
/// most common card of local model runners, which holds the default model in its own bf16.
pub const DEFAULT_DEVICE: &str = "rtx-4090";

impl Default for CalcSettings {
    fn default() -> Self {
        CalcSettings {
            model: ModelSource::Catalog(DEFAULT_MODEL.into()),
            format: String::new(),
            context: None,
            batch: 1,
            mode: "inference".into(),
            checkpointing: None,
            lora_rank: None,
            lora_targets: String::new(),
            lora_layers: String::new(),
            optimizer: String::new(),
            precision: String::new(),
            runtime: String::new(),
            kv: String::new(),
            device_count: 1,
            device: DeviceChoice::Catalog(DEFAULT_DEVICE.into()),
            wired_limit_mb: None,
            host_memory_gib: None,
            macos: String::new(),
            users: None,
            gpu_layers: None,
            n_cpu_moe: None,
            exact: None,
            text_only: false,
            with_mtp: false,
            flash_attn: None,
            ubatch: None,
            kv_unified: None,
            mmproj: false,
            draft: String::new(),
            draft_format: String::new(),
            draft_tokens: None,
            draft_acceptance: None,
        }
    }
}

impl CalcSettings {
    /// Read settings from a query; anything missing or unreadable keeps its default (the
    /// calculation then reports what is wrong with what was given). `remembered_device` is
    /// this browser's measured device (JSON), used when the query names no device.
    pub fn from_query_or(q: &Query, remembered_device: Option<String>) -> CalcSettings {
        let d = CalcSettings::default();
        let model = if let Some(id) = q.get("hf") {
            ModelSource::Hub(id.to_string())
        } else if let Some(json) = q.get("cfg") {
            ModelSource::Config {
                name: q.get("name").unwrap_or("pasted config.json").to_string(),
                json: json.to_string(),
            }
        } else if let Some(spec) = q.get("spec") {
            ModelSource::Spec(spec.to_string())
        } else if let Some(size) = q.get("size") {
            ModelSource::Size(size.to_string())
        } else if let Some(id) = q.get("model") {
            ModelSource::Catalog(id.to_string())
        } else {
            d.model
        };
        let number = |key: &str| q.get(key).and_then(|v| v.trim().parse::<f64>().ok());
        let device = if let Some(spec) = q.get("devspec") {
            DeviceChoice::Measured(spec.to_string())
        } else if let Some(memory_gib) = number("cmem") {
            let base = CustomDevice::default();
            DeviceChoice::Custom(CustomDevice {
                memory_gib,
                bandwidth_gb_s: number("cbw").unwrap_or(base.bandwidth_gb_s),
                fp16_tflops: number("ctflops").unwrap_or(base.fp16_tflops),
                unified: q.get("cunified") == Some("1"),
            })
        } else if q.get("device") == Some(ANY_DEVICE) {
            DeviceChoice::Any
        } else if let Some(id) = q.get("device") {
            DeviceChoice::Catalog(id.to_string())
        } else if let Some(spec) = remembered_device {
            DeviceChoice::Measured(spec)
        } else {
            d.device
        };
        let exact = match (q.get("wbytes"), q.get("wparams")) {
            (Some(b), Some(p)) => match (b.parse(), p.parse()) {
                (Ok(bytes), Ok(parameters)) => Some(ExactWeights {
                    file: q.get("wfile").unwrap_or("model file").to_string(),
                    format: q.get("wformat").map(str::to_string),
                    parameters_exact: q.get("wexact") != Some("0"),
                    bytes,
                    parameters,
                }),
                _ => None,
            },
            _ => None,
        };
        let text = |key: &str| q.get(key).unwrap_or("").to_string();
        CalcSettings {
            model,
            format: text("format"),
            context: q.get("ctx").and_then(|c| c.parse().ok()),
            batch: q.get("batch").and_then(|b| b.parse().ok()).unwrap_or(1),
            mode: q.get("mode").unwrap_or(&d.mode).to_string(),
            checkpointing: match q.get("ckpt") {
                Some("1") => Some(true),
                Some("0") => Some(false),
                _ => None,
            },
            lora_rank: q.get("rank").and_then(|r| r.parse().ok()),
            lora_targets: text("targets"),
            lora_layers: text("layers"),
            optimizer: text("opt"),
            precision: text("prec"),
            runtime: text("runtime"),
            kv: text("kv"),
            device_count: q.get("n").and_then(|n| n.parse().ok()).unwrap_or(1),
            device,
            wired_limit_mb: q.get("wired").and_then(|w| w.parse().ok()),
            host_memory_gib: q.get("host").and_then(|h| h.parse().ok()),
            macos: text("macos"),
            users: q.get("users").and_then(|u| u.parse().ok()),
            gpu_layers: q.get("ngl").and_then(|n| n.parse().ok()),
            n_cpu_moe: q.get("ncmoe").and_then(|n| n.parse().ok()),
            exact,
            text_only: q.get("text") == Some("1"),
            with_mtp: q.get("mtp") == Some("1"),
            flash_attn: on_off(q.get("fa")),
            ubatch: q.get("ub").and_then(|u| u.parse().ok()),
            kv_unified: on_off(q.get("kvu")),
            mmproj: q.get("mmproj") == Some("1"),
            draft: text("draft"),
            draft_format: text("dformat"),
            draft_tokens: q.get("dtokens").and_then(|t| t.parse().ok()),
            draft_acceptance: number("daccept"),
        }
    }

    /// [`CalcSettings::from_query_or`] with no remembered device.
    pub fn from_query(q: &Query) -> CalcSettings {
        CalcSettings::from_query_or(q, None)
    }

    /// The settings as a query (with `page=calculator`).
    pub fn to_query(&self) -> Query {
        let mut q = Query::new();
        q.set("page", "calculator");
        match &self.model {
            ModelSource::Catalog(id) => q.set("model", id.clone()),
            ModelSource::Hub(id) => q.set("hf", id.clone()),
            ModelSource::Config { name, json } => {
                q.set("name", name.clone());
                q.set("cfg", json.clone());
            }
            ModelSource::Spec(s) => q.set("spec", s.clone()),
            ModelSource::Size(s) => q.set("size", s.clone()),
        }
        if let Some(e) = &self.exact {
            q.set("wfile", e.file.clone());
            q.set("wbytes", e.bytes.to_string());
            q.set("wparams", e.parameters.to_string());
            if let Some(f) = &e.format {
                q.set("wformat", f.clone());
            }
            if !e.parameters_exact {
                q.set("wexact", "0");
            }
        }
        let mut text = |key: &str, value: &str| {
            if !value.is_empty() {
                q.set(key, value.to_string());
            }
        };
        text("format", &self.format);
        if self.mode != "inference" {
            text("mode", &self.mode);
        }
        text("targets", &self.lora_targets);
        text("layers", &self.lora_layers);
        text("opt", &self.optimizer);
        text("prec", &self.precision);
        text("runtime", &self.runtime);
        text("kv", &self.kv);
        if let Some(c) = self.context {
            q.set("ctx", c.to_string());
        }
        if self.batch != 1 {
            q.set("batch", self.batch.to_string());
        }
        if let Some(c) = self.checkpointing {
            q.set("ckpt", if c { "1" } else { "0" });
        }
        if let Some(r) = self.lora_rank {
            q.set("rank", r.to_string());
        }
        if self.device_count != 1 {
            q.set("n", self.device_count.to_string());
        }
        if let Some(w) = self.wired_limit_mb {
            q.set("wired", w.to_string());
        }
        if let Some(h) = self.host_memory_gib {
            q.set("host", h.to_string());
        }
        if !self.macos.is_empty() {
            q.set("macos", self.macos.clone());
        }
        if let Some(u) = self.users {
            q.set("users", u.to_string());
        }
        if let Some(n) = self.gpu_layers {
            q.set("ngl", n.to_string());
        }
        if let Some(n) = self.n_cpu_moe {
            q.set("ncmoe", n.to_string());
        }
        if self.text_only {
            q.set("text", "1");
        }
        if self.with_mtp {
            q.set("mtp", "1");
        }
        let word = |on: bool| if on { "on" } else { "off" };
        if let Some(fa) = self.flash_attn {
            q.set("fa", word(fa));
        }
        if let Some(ub) = self.ubatch {
            q.set("ub", ub.to_string());
        }
        if let Some(kvu) = self.kv_unified {
            q.set("kvu", word(kvu));
        }
        if self.mmproj {
            q.set("mmproj", "1");
        }
        if !self.draft.is_empty() {
            q.set("draft", self.draft.clone());
        }
        if !self.draft_format.is_empty() {
            q.set("dformat", self.draft_format.clone());
        }
        if let Some(t) = self.draft_tokens {
            q.set("dtokens", t.to_string());
        }
        if let Some(a) = self.draft_acceptance {
            q.set("daccept", a.to_string());
        }
        self.device.write_query(&mut q);
        q
    }

    /// The mode as core reads it, with the separate controls (checkpointing, LoRA rank and
    /// targets, optimizer, precision) applied on top of the `mode` text.
    pub fn mode(&self) -> Result<Mode, WebError> {
        let mut mode = Mode::from_str(&self.mode).map_err(|e| WebError::Setting {
            control: control(Setting::Mode),
            problem: e.to_string(),
        })?;
        match &mut mode {
            Mode::Inference => {}
            Mode::Lora(l) | Mode::Qlora(l) => {
                if let Some(c) = self.checkpointing {
                    l.gradient_checkpointing = c;
                }
                if let Some(r) = self.lora_rank {
                    l.rank = r;
                }
                let targets: Vec<String> = self
                    .lora_targets
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect();
                if !targets.is_empty() {
                    l.target_modules = targets;
                }
            }
            Mode::Full(f) => {
                if let Some(c) = self.checkpointing {
                    f.gradient_checkpointing = c;
                }
                // Optimizer and precision in core's own mode grammar (`full:fp32:sgd`).
                let parts = format!("full:{}:{}", self.precision.trim(), self.optimizer.trim());
                let parts = parts.replace("::", ":");
                let parsed =
                    Mode::from_str(parts.trim_end_matches(':')).map_err(|e| WebError::Setting {
                        control: "Optimizer / precision",
                        problem: e.to_string(),
                    })?;
                if let Mode::Full(p) = parsed {
                    if !self.precision.trim().is_empty() {
                        f.precision = p.precision;
                    }
                    if !self.optimizer.trim().is_empty() {
                        f.optimizer = p.optimizer;
                    }
                }
            }
            // `Mode` is non-exhaustive: a new mode has no separate controls yet.
            _ => {}
        }
        Ok(mode)
    }
}

/// `(id, name)` of every catalog device.
pub fn device_choices() -> Vec<(String, String)> {
    devices::catalog()
        .iter()
        .map(|d| (d.id.clone(), d.name.clone()))
        .collect()
}

/// Every weight format name, highest precision first.
pub fn format_names() -> Vec<String> {
    WeightFormat::all().iter().map(|f| f.to_string()).collect()
}

/// Every catalog model id (the draft model's choices).
pub fn model_ids() -> Vec<String> {
    model_catalog::entries()
        .iter()
        .map(|e| e.id.clone())
        .collect()
}

/// Every runtime name.
pub fn runtime_names() -> Vec<String> {
    Runtime::all().iter().map(|r| r.to_string()).collect()
}

/// Every KV cache type name.
pub fn kv_names() -> Vec<String> {
    KvDtype::all().iter().map(|k| k.to_string()).collect()
}

/// The mode names the Mode control offers.
pub const MODE_NAMES: [&str; 4] = ["inference", "lora", "qlora", "full"];
/// Optimizers of a full fine-tune, in core's mode grammar.
pub const OPTIMIZER_NAMES: [&str; 3] = ["adamw", "adam8bit", "sgd"];
/// Precisions of a full fine-tune, in core's mode grammar.
pub const PRECISION_NAMES: [&str; 3] = ["bf16-mixed", "fp32", "bf16"];

/// The catalog model `id`.
pub fn catalog_model(id: &str) -> Result<ModelSpec, WebError> {
    model_catalog::find(id).map_err(|e| WebError::Model(e.to_string()))
}

/// A model from `config.json` text.
pub fn model_from_config(name: &str, json: &str) -> Result<ModelSpec, WebError> {
    headroom_core::config::model_from_config_json(name, json)
        .map_err(|e| WebError::Model(format!("config.json: {e}")))
}

/// A model known only by its size: `8B`, `70b`, `494M`, or a number of billions (`8`, `1.5`).
pub fn model_of_size(text: &str) -> Result<ModelSpec, WebError> {
    let t = text.trim();
    let parameters = match t.parse::<f64>() {
        Ok(billions) => Some(billions * 1e9),
        Err(_) => model_catalog::parse_published_count(t).map(|(p, _)| p),
    };
    let (lo, hi) = model_catalog::MODEL_SIZE_LIMITS;
    let parameters = parameters
        .filter(|p| p.is_finite() && *p > 0.0)
        .ok_or_else(|| WebError::Setting {
            control: "Model size",
            problem: format!(
                "`{t}` is not a size: write billions of parameters, e.g. 8 or 8B (or 494M)"
            ),
        })?;
    model_catalog::model_of_size(parameters.round() as u64).map_err(|_| WebError::Setting {
        control: "Model size",
        problem: format!(
            "{t} is outside {} B – {} B parameters",
            lo as f64 / 1e9,
            hi as f64 / 1e9
        ),
    })
}

/// The device a custom description stands for, after checking every figure.
pub fn custom_device(c: &CustomDevice) -> Result<DeviceSpec, WebError> {
    let check = |control: &'static str, value: f64, max: f64, unit: &str| {
        if value.is_finite() && value > 0.0 && value <= max {
            Ok(())
        } else {
            Err(WebError::Setting {
                control,
                problem: format!("{value} {unit} must be above 0 and at most {max} {unit}"),
            })
        }
    };
    check(
        "Custom device memory",
        c.memory_gib,
        MAX_MEMORY_GIB as f64,
        "GiB",
    )?;
    check("Custom device bandwidth", c.bandwidth_gb_s, 1e5, "GB/s")?;
    check("Custom device compute", c.fp16_tflops, 1e5, "TFLOP/s")?;
    Ok(DeviceSpec {
        id: "custom".into(),
        name: format!(
            "custom device ({} GiB, {} GB/s, {} TFLOP/s)",
            c.memory_gib, c.bandwidth_gb_s, c.fp16_tflops
        ),
        vendor: "custom".into(),
        memory_kind: if c.unified {
            MemoryKind::Unified
        } else {
            MemoryKind::Discrete
        },
        memory_bytes: (c.memory_gib * GIB as f64) as u64,
        bandwidth_bytes_per_s: c.bandwidth_gb_s * 1e9,
        // Datasheets of GPUs with matrix units give fp32 vector rates near half the fp16
        // matrix rate or lower; half is the assumption stated in `source`.
        fp32_flops: c.fp16_tflops * 1e12 / 2.0,
        fp16_flops: c.fp16_tflops * 1e12,
        max_buffer_bytes: None,
        source: "figures typed in the calculator (FP32 rate assumed half the FP16 rate)".into(),
        measured_usable_bytes: None,
        measured_usable_basis: None,
        memory_basis: None,
        bandwidth_measured: false,
        compute_measured: false,
        fp16_fp32_accumulate_flops: None,
        sm_count: None,
        boost_clock_mhz: None,
        host: Default::default(),
    })
}

/// Resolve the device choice.
pub fn device(choice: &DeviceChoice) -> Result<DeviceSpec, WebError> {
    match choice {
        DeviceChoice::Catalog(id) => devices::find(id).map_err(|e| WebError::Device(e.to_string())),
        DeviceChoice::Measured(json) => serde_json::from_str(json).map_err(|e| {
            WebError::Device(format!(
                "the measured device in this link is unreadable ({e}): choose a device again"
            ))
        }),
        DeviceChoice::Custom(c) => custom_device(c),
        DeviceChoice::Any => Err(WebError::Device(
            "no device chosen: the devices that hold the model are listed; choose one for its \
             verdict"
                .into(),
        )),
    }
}

/// The main result: what must update at once on every change.
#[derive(Debug, Clone, PartialEq)]
pub struct Calculation {
    /// Core's whole answer: estimate, every format, best format, longest context, training
    /// advice, assumptions.
    pub answer: Answer,
    /// The device used.
    pub device: DeviceSpec,
    /// Whether the device has unified memory (draw the 70–75% guide).
    pub unified: bool,
    /// Exact weights from a file, when one was dropped.
    pub exact: Option<ExactWeights>,
}

/// `on` / `off` in a link, else nothing.
fn on_off(v: Option<&str>) -> Option<bool> {
    match v {
        Some("on") => Some(true),
        Some("off") => Some(false),
        _ => None,
    }
}

/// The question the settings ask about `model`. Each bad setting is named by its control.
pub fn question(settings: &CalcSettings, model: &ModelSpec) -> Result<Question, WebError> {
    question_on(settings, model, device(&settings.device)?)
}

/// The question the settings ask about `model` on `device`.
fn question_on(
    settings: &CalcSettings,
    model: &ModelSpec,
    device: DeviceSpec,
) -> Result<Question, WebError> {
    let mut q = Question::new(model.clone(), device);
    let bad = |setting: Setting, e: headroom_core::CoreError| WebError::Setting {
        control: control(setting),
        problem: e.to_string(),
    };
    if !settings.format.is_empty() {
        q.format =
            Some(WeightFormat::from_str(&settings.format).map_err(|e| bad(Setting::Format, e))?);
    }
    q.context = match settings.context {
        Some(tokens) => ContextAsk::Tokens(tokens),
        None => ContextAsk::Default,
    };
    q.batch = settings.batch;
    q.mode = settings.mode()?;
    if !settings.lora_layers.trim().is_empty() && matches!(q.mode, Mode::Lora(_) | Mode::Qlora(_)) {
        q.lora_layers = Some(settings.lora_layers.clone());
    }
    if !settings.runtime.is_empty() {
        q.runtime =
            Some(Runtime::from_str(&settings.runtime).map_err(|e| bad(Setting::Runtime, e))?);
    }
    if !settings.kv.is_empty() {
        q.kv_dtype = Some(KvDtype::from_str(&settings.kv).map_err(|e| bad(Setting::KvDtype, e))?);
    }
    q.device_count = settings.device_count;
    q.wired_limit_bytes = settings.wired_limit_mb.map(|mb| mb.saturating_mul(1 << 20));
    q.host_memory_bytes = settings.host_memory_gib.map(|g| g.saturating_mul(GIB));
    if !settings.macos.trim().is_empty() {
        q.macos = Some(
            MacosVersion::from_str(&settings.macos).map_err(|e| bad(Setting::MacosVersion, e))?,
        );
    }
    q.users = settings.users;
    let d = LlamaCppSettings::default();
    q.llama_cpp = LlamaCppSettings {
        flash_attn: settings.flash_attn.unwrap_or(d.flash_attn),
        n_ubatch: settings.ubatch.unwrap_or(d.n_ubatch),
        kv_unified: settings.kv_unified.unwrap_or(d.kv_unified),
    };
    q.offload = headroom_core::offload::OffloadSettings {
        gpu_layers: settings.gpu_layers,
        n_cpu_moe: settings.n_cpu_moe,
    };
    q.text_only = settings.text_only;
    q.with_mtp = settings.with_mtp;
    q.extras.mmproj = settings.mmproj;
    if !settings.draft.trim().is_empty() {
        let draft = model_catalog::find(settings.draft.trim()).map_err(|e| WebError::Setting {
            control: control(Setting::Draft),
            problem: e.to_string(),
        })?;
        let format = if settings.draft_format.trim().is_empty() {
            None
        } else {
            Some(
                WeightFormat::from_str(settings.draft_format.trim())
                    .map_err(|e| bad(Setting::DraftFormat, e))?,
            )
        };
        q.extras.draft = Some(DraftAsk {
            model: draft,
            format,
            tokens: settings.draft_tokens,
            acceptance: settings.draft_acceptance,
            path: None,
        });
    }
    q.checkpoint = settings.exact.as_ref().map(|e| CheckpointSize {
        source: e.file.clone(),
        format_name: e.format.clone(),
        bytes: e.bytes,
        parameters: e.parameters,
        parameters_exact: e.parameters_exact,
    });
    Ok(q)
}

/// The label of the calculator's control for `setting`, for core's errors.
pub fn control(setting: Setting) -> &'static str {
    match setting {
        Setting::Format => "Weight format",
        Setting::Context => "Context",
        Setting::Batch => "Batch",
        Setting::Mode => "Mode",
        Setting::Runtime => "Runtime",
        Setting::KvDtype => "KV cache",
        Setting::Device => "Device",
        Setting::DeviceCount => "Number of identical devices",
        Setting::LoraRank => "LoRA rank",
        Setting::LoraLayers => "LoRA layers",
        Setting::WiredLimit => "Wired limit",
        Setting::HostMemory => "Host memory",
        Setting::MacosVersion => "macOS release",
        Setting::Users => "Users",
        Setting::FlashAttn => "Flash attention",
        Setting::Ubatch => "Micro-batch",
        Setting::Mmproj => "Vision projector",
        Setting::Draft => "Draft model",
        Setting::DraftFormat => "Draft format",
        Setting::DraftTokens => "Draft tokens",
        Setting::DraftAcceptance => "Draft acceptance rate",
        Setting::GpuLayers => "GPU layers",
        Setting::NCpuMoe => "Expert layers on the host",
        // `Setting` is non-exhaustive: a new one is named by core's word until it gets a control.
        _ => setting.name(),
    }
}

/// Core's error in the site's words: controls by their labels, never command-line flags.
pub fn worded(e: &headroom_core::CoreError) -> String {
    e.worded(
        |s| control(s).to_owned(),
        |s, value| format!("{} {value}", control(s)),
    )
}

/// The Calculator page's result: core's answer to the settings.
pub fn calculate(settings: &CalcSettings, model: &ModelSpec) -> Result<Calculation, WebError> {
    let q = question(settings, model)?;
    let answer = answer::answer(&q).map_err(|e| WebError::Answer(worded(&e)))?;
    Ok(Calculation {
        unified: q.device.memory_kind == MemoryKind::Unified,
        device: q.device,
        exact: settings.exact.clone(),
        answer,
    })
}

/// What `model` needs with the settings (the device aside) and, per device class, the catalog
/// devices that hold it: core's `devices_that_fit`, the answer of `headroom fit MODEL
/// --devices-that-fit`. The device-only settings (count, wired limit, macOS, host RAM) do not
/// apply.
pub fn needs(settings: &CalcSettings, model: &ModelSpec) -> Result<DeviceNeeds, WebError> {
    let catalog = devices::catalog();
    let Some(first) = catalog.first() else {
        return Err(WebError::Device("the device catalog is empty".into()));
    };
    let mut q = question_on(settings, model, first.clone())?;
    q.device_count = 1;
    q.wired_limit_bytes = None;
    q.host_memory_bytes = None;
    q.macos = None;
    devices_that_fit(&q, catalog).map_err(|e| WebError::Answer(worded(&e)))
}

/// The "use at most 70–75%" guide for unified memory (FACTS.md, Apple silicon): lower and upper
/// share, percent.
pub const UNIFIED_GUIDE_PERCENT: (u64, u64) = (70, 75);

/// Usable bytes of a device for a runtime (exposed for the chart's marker).
pub fn usable_bytes(device: &DeviceSpec, runtime: &str) -> Option<u64> {
    let runtime = Runtime::from_str(runtime).ok()?;
    Some(usable_memory::usable_memory(device, runtime, None).usable_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_device_answers_what_the_model_needs() {
        let q = Query::parse("?model=qwen3-8b&device=any&format=Q4_K_M&ctx=8192");
        let s = CalcSettings::from_query_or(&q, Some("{}".into()));
        assert_eq!(s.device, DeviceChoice::Any);
        assert_eq!(
            CalcSettings::from_query_or(&Query::parse(&s.to_query().to_search()), None),
            s
        );
        let model = catalog_model("qwen3-8b").unwrap();
        let needs = needs(&s, &model).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(needs.context, 8192);
        assert_eq!(needs.format, "Q4_K_M");
        // The same answer as `headroom fit qwen3-8b --quant Q4_K_M -c 8192 --devices-that-fit`.
        let mut cli_q = Question::new(model.clone(), devices::catalog()[0].clone());
        cli_q.format = Some(WeightFormat::from_str("Q4_K_M").unwrap());
        cli_q.context = ContextAsk::Tokens(8192);
        assert_eq!(
            needs,
            devices_that_fit(&cli_q, devices::catalog()).unwrap_or_else(|e| panic!("{e}"))
        );
        assert!(needs.classes.iter().all(|c| c.smallest.is_some()));
        let err = calculate(&s, &model).unwrap_err().to_string();
        assert!(err.contains("no device chosen"), "{err}");
    }

    #[test]
    fn lora_layers_setting_reaches_the_request() {
        let model = catalog_model(DEFAULT_MODEL).unwrap();
        let s = CalcSettings {
            mode: "lora".into(),
            lora_layers: "last:8".into(),
            ..CalcSettings::default()
        };
        let c = calculate(&s, &model).unwrap();
        match &c.answer.request.mode {
            Mode::Lora(l) => assert_eq!(l.layers, Some((24..32).collect::<Vec<u64>>())),
            other => panic!("{other:?}"),
        }
        assert_eq!(c.answer.lora_layers, Some((24..32).collect::<Vec<u64>>()));
        let bad = CalcSettings {
            lora_layers: "40".into(),
            ..s
        };
        let err = calculate(&bad, &model).unwrap_err().to_string();
        assert!(err.contains("LoRA layers"), "{err}");
        assert!(
            !err.contains("--"),
            "no command-line flags in the site: {err}"
        );
    }

    #[test]
    fn llama_cpp_settings_reach_the_request_and_errors_name_controls() {
        let model = catalog_model(DEFAULT_MODEL).unwrap();
        let s = CalcSettings {
            format: "Q4_K_M".into(),
            flash_attn: Some(false),
            ubatch: Some(1024),
            kv_unified: Some(false),
            ..CalcSettings::default()
        };
        let c = calculate(&s, &model).unwrap();
        let l = c.answer.request.llama_cpp;
        assert_eq!(
            (l.flash_attn, l.n_ubatch, l.kv_unified),
            (false, 1024, false)
        );
        let bad = CalcSettings {
            kv: "q8_0".into(),
            ..s
        };
        let err = calculate(&bad, &model).unwrap_err().to_string();
        assert!(err.contains("Flash attention"), "{err}");
        assert!(
            !err.contains("--"),
            "no command-line flags in the site: {err}"
        );
    }

    #[test]
    fn settings_round_trip_through_the_url() {
        let s = CalcSettings {
            model: ModelSource::Config {
                name: "my model".into(),
                json: r#"{"model_type":"llama"}"#.into(),
            },
            format: "Q4_K_M".into(),
            context: Some(32768),
            batch: 2,
            mode: "lora".into(),
            checkpointing: Some(true),
            lora_rank: Some(8),
            lora_targets: "q,v".into(),
            lora_layers: "last:8".into(),
            optimizer: "sgd".into(),
            precision: "fp32".into(),
            runtime: "llama.cpp".into(),
            kv: "q8_0".into(),
            device_count: 2,
            device: DeviceChoice::Custom(CustomDevice {
                memory_gib: 12.0,
                bandwidth_gb_s: 360.0,
                fp16_tflops: 30.5,
                unified: true,
            }),
            wired_limit_mb: Some(12000),
            host_memory_gib: Some(64),
            macos: "15.5".into(),
            users: Some(8),
            gpu_layers: Some(20),
            n_cpu_moe: Some(3),
            exact: Some(ExactWeights {
                file: "x.gguf".into(),
                bytes: 123,
                parameters: 45,
                format: Some("Q4_K_M".into()),
                parameters_exact: false,
            }),
            text_only: true,
            with_mtp: true,
            flash_attn: Some(false),
            ubatch: Some(1024),
            kv_unified: Some(false),
            mmproj: true,
            draft: "llama-3.2-1b".into(),
            draft_format: "Q8_0".into(),
            draft_tokens: Some(4),
            draft_acceptance: Some(0.7),
        };
        let q = Query::parse(&s.to_query().to_search());
        assert_eq!(CalcSettings::from_query(&q), s);
        let sized = CalcSettings {
            model: ModelSource::Size("13B".into()),
            device: DeviceChoice::Catalog("rtx-4090".into()),
            ..CalcSettings::default()
        };
        let q = Query::parse(&sized.to_query().to_search());
        assert_eq!(CalcSettings::from_query(&q), sized);
        assert_eq!(
            CalcSettings::from_query(&Query::new()),
            CalcSettings::default()
        );
        // This browser's measured device is the first screen's device when the link names none.
        let mine = CalcSettings::from_query_or(&Query::new(), Some("{}".into()));
        assert_eq!(mine.device, DeviceChoice::Measured("{}".into()));
    }

    #[test]
    fn every_cli_setting_reaches_the_question() {
        let model = catalog_model(DEFAULT_MODEL).unwrap();
        let s = CalcSettings {
            mode: "qlora".into(),
            lora_rank: Some(64),
            lora_targets: "q, v".into(),
            ..CalcSettings::default()
        };
        match question(&s, &model).unwrap().mode {
            Mode::Qlora(l) => {
                // QLoRA checkpoints by default, as peft's kbit preparation does.
                assert!(l.gradient_checkpointing);
                assert_eq!(l.rank, 64);
                assert_eq!(l.target_modules, ["q", "v"]);
            }
            other => panic!("{other:?}"),
        }
        let off = CalcSettings {
            checkpointing: Some(false),
            ..s.clone()
        };
        assert!(
            !question(&off, &model)
                .unwrap()
                .mode
                .gradient_checkpointing()
        );
        // A link's long mode text still works, and its kind is what the Mode control shows.
        let long = CalcSettings {
            mode: "qlora:no-ckpt".into(),
            ..CalcSettings::default()
        };
        let mode = long.mode().unwrap();
        assert_eq!(mode.name(), "qlora");
        assert!(!mode.gradient_checkpointing());
        let full = CalcSettings {
            mode: "full".into(),
            optimizer: "sgd".into(),
            precision: "fp32".into(),
            checkpointing: Some(true),
            ..CalcSettings::default()
        };
        match question(&full, &model).unwrap().mode {
            Mode::Full(f) => {
                assert_eq!(f.optimizer, headroom_core::training::Optimizer::Sgd);
                assert_eq!(
                    f.precision,
                    headroom_core::training::TrainingPrecision::Fp32
                );
                assert!(f.gradient_checkpointing);
            }
            other => panic!("{other:?}"),
        }
        let apple = CalcSettings {
            device: DeviceChoice::Catalog("m2-10c-16gb".into()),
            wired_limit_mb: Some(14000),
            host_memory_gib: Some(64),
            macos: "15".into(),
            users: Some(4),
            runtime: "llama.cpp".into(),
            ..CalcSettings::default()
        };
        let q = question(&apple, &model).unwrap();
        let split = CalcSettings {
            gpu_layers: Some(10),
            ..CalcSettings::default()
        };
        assert_eq!(
            question(&split, &model).unwrap().offload.gpu_layers,
            Some(10)
        );
        assert_eq!(q.wired_limit_bytes, Some(14000 << 20));
        assert_eq!(q.host_memory_bytes, Some(64 * GIB));
        assert_eq!(q.macos.map(|m| m.major), Some(15));
        assert_eq!(q.users, Some(4));
        let bad_macos = CalcSettings {
            macos: "19".into(),
            ..apple.clone()
        };
        let err = question(&bad_macos, &model).unwrap_err().to_string();
        assert!(err.starts_with("macOS release"), "{err}");
        let c = calculate(&apple, &model).unwrap();
        assert!(
            c.answer
                .estimate
                .assumptions
                .iter()
                .any(|a| a.contains("wired_limit")),
            "the wired limit reaches the usable memory"
        );
    }

    #[test]
    fn the_first_screen_fits_and_names_its_best_format() {
        let s = CalcSettings::default();
        let model = catalog_model(DEFAULT_MODEL).unwrap();
        let c = calculate(&s, &model).unwrap();
        let a = &c.answer;
        assert!(a.estimate.fits, "{:?}", a.estimate.verdict);
        let rows: Vec<_> = a.formats.iter().filter_map(|r| r.estimate()).collect();
        assert!(rows.len() >= 10, "{}", rows.len());
        assert!(a.best_format.is_some());
        assert!(a.longest_context.is_some_and(|l| l >= 4096));
    }

    #[test]
    fn custom_devices_and_models_by_size_are_checked() {
        let model = model_of_size("13B").unwrap();
        assert!(model.approximate);
        assert!(model_of_size("8").is_ok());
        let err = model_of_size("lots").unwrap_err().to_string();
        assert!(err.starts_with("Model size"), "{err}");
        assert!(model_of_size("0.001").is_err());
        let s = CalcSettings {
            device: DeviceChoice::Custom(CustomDevice {
                memory_gib: 24.0,
                ..CustomDevice::default()
            }),
            ..CalcSettings::default()
        };
        let c = calculate(&s, &model).unwrap();
        assert_eq!(c.device.memory_bytes, 24 * GIB);
        assert!(
            !c.answer.exact,
            "a model by size is approximate and says so"
        );
        let bad = CalcSettings {
            device: DeviceChoice::Custom(CustomDevice {
                memory_gib: 0.0,
                ..CustomDevice::default()
            }),
            ..CalcSettings::default()
        };
        let err = calculate(&bad, &model).unwrap_err().to_string();
        assert!(err.starts_with("Custom device memory"), "{err}");
    }

    #[test]
    fn every_offered_choice_parses_back() {
        let model = catalog_model(DEFAULT_MODEL).unwrap();
        for format in format_names() {
            let s = CalcSettings {
                format: format.clone(),
                ..CalcSettings::default()
            };
            question(&s, &model).unwrap_or_else(|e| panic!("format {format}: {e}"));
        }
        for runtime in runtime_names() {
            let s = CalcSettings {
                runtime: runtime.clone(),
                ..CalcSettings::default()
            };
            question(&s, &model).unwrap_or_else(|e| panic!("runtime {runtime}: {e}"));
        }
        for kv in kv_names() {
            let s = CalcSettings {
                kv: kv.clone(),
                ..CalcSettings::default()
            };
            question(&s, &model).unwrap_or_else(|e| panic!("kv {kv}: {e}"));
        }
        for mode in MODE_NAMES {
            for optimizer in OPTIMIZER_NAMES {
                for precision in PRECISION_NAMES {
                    let s = CalcSettings {
                        mode: mode.into(),
                        optimizer: optimizer.into(),
                        precision: precision.into(),
                        ..CalcSettings::default()
                    };
                    question(&s, &model).unwrap_or_else(|e| panic!("mode {mode}: {e}"));
                }
            }
        }
        for (id, _) in device_choices() {
            device(&DeviceChoice::Catalog(id.clone())).unwrap_or_else(|e| panic!("{id}: {e}"));
        }
        for c in crate::search::model_candidates() {
            catalog_model(&c.id).unwrap_or_else(|e| panic!("{}: {e}", c.id));
        }
    }

    #[test]
    fn bad_settings_are_named() {
        let model = catalog_model(DEFAULT_MODEL).unwrap();
        let mut s = CalcSettings {
            format: "Q9_Z".into(),
            ..CalcSettings::default()
        };
        let err = calculate(&s, &model).unwrap_err().to_string();
        assert!(err.starts_with("Weight format:"), "{err}");
        s.format.clear();
        s.device = DeviceChoice::Catalog("no-such-gpu".into());
        assert!(
            calculate(&s, &model)
                .unwrap_err()
                .to_string()
                .contains("no-such-gpu")
        );
        s.device = DeviceChoice::Measured("{".into());
        assert!(
            calculate(&s, &model)
                .unwrap_err()
                .to_string()
                .contains("measured device")
        );
    }

    #[test]
    fn extra_models_reach_the_question_and_errors_name_controls() {
        let model = catalog_model(DEFAULT_MODEL).unwrap();
        let s = CalcSettings {
            format: "Q4_K_M".into(),
            draft: "llama-3.2-1b".into(),
            draft_tokens: Some(4),
            draft_acceptance: Some(0.7),
            ..CalcSettings::default()
        };
        let c = calculate(&s, &model).unwrap();
        assert_eq!(c.answer.extra_models.len(), 1);
        let sp = c.answer.speculation.expect("speculation");
        assert_eq!(sp.draft_tokens, 4);
        assert!(sp.expected_tokens_per_s.is_some());
        for (bad, control) in [
            (
                CalcSettings {
                    draft: "qwen3-0.6b".into(),
                    ..s.clone()
                },
                "Draft model",
            ),
            (
                CalcSettings {
                    draft_acceptance: Some(2.0),
                    ..s.clone()
                },
                "Draft acceptance rate",
            ),
            (
                CalcSettings {
                    draft_format: "q5".into(),
                    ..s.clone()
                },
                "Draft format",
            ),
            (
                CalcSettings {
                    mmproj: true,
                    ..s.clone()
                },
                "Vision projector",
            ),
        ] {
            let err = calculate(&bad, &model).unwrap_err().to_string();
            assert!(err.contains(control), "{err}");
            assert!(
                !err.contains("--"),
                "no command-line flags in the site: {err}"
            );
        }
    }
}
